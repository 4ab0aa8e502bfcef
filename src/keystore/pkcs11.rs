//! Keys on a PKCS#11 token, through the `cryptoki` crate: generated there
//! (CKA_SENSITIVE, never CKA_EXTRACTABLE), used there to sign requests and
//! renewals, found again by CKA_ID from the store's [`KeyReference`].
//!
//! Mechanisms (PKCS#11 3.0 section 2.1 and 2.3): RSA keys with
//! CKM_RSA_PKCS_KEY_PAIR_GEN and signatures with CKM_SHA256_RSA_PKCS (the
//! same PKCS#1 v1.5 SHA-256 signature as a key file makes); EC keys with
//! CKM_EC_KEY_PAIR_GEN on the named curve, signatures with CKM_ECDSA over a
//! digest computed here (the most widely implemented EC mechanism: SoftHSM2,
//! tpm2-pkcs11), its `r || s` turned into the DER `Ecdsa-Sig-Value` that
//! X.509 and CMS carry (RFC 5480 2.2 via RFC 3279 2.2.3).
//!
//! A module is loaded and initialised once per process and never finalised:
//! C_Initialize may be called once per process (PKCS#11 3.0 section 5.4),
//! and finalising it under another user of the same module would break that
//! user's sessions.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;

use crate::pki::PkiError;
use crate::pki::keyref::{KeyReference, TokenSettings, hex_encode};
use crate::pki::keys::{ExternalKey, KeyAlgorithm, PrivateKey};

/// Modules loaded in this process, by path.
static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();

/// DER of the OIDs used to build a SubjectPublicKeyInfo (RFC 8017 A.1,
/// RFC 5480 2.1.1).
const OID_RSA_ENCRYPTION: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

/// Loads (once) and initialises a module. A module is code run in this
/// process: it must be a regular file that neither its group nor others can
/// write.
fn module(path: &Path) -> Result<Pkcs11, String> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    let map = MODULES.get_or_init(Default::default);
    let mut map = map
        .lock()
        .map_err(|_| "PKCS#11 modules: lock poisoned".to_string())?;
    if let Some(m) = map.get(path) {
        return Ok(m.clone());
    }
    let meta = std::fs::metadata(path).map_err(|e| format!("PKCS#11 module {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("PKCS#11 module {shown}: not a regular file"));
    }
    if meta.permissions().mode() & 0o022 != 0 {
        return Err(format!(
            "PKCS#11 module {shown}: others can write it (mode {:o}); it is not loaded",
            meta.permissions().mode() & 0o777
        ));
    }
    let ctx = Pkcs11::new(path).map_err(|e| format!("PKCS#11 module {shown}: cannot load: {e}"))?;
    match ctx.initialize(CInitializeArgs::OsThreads) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(format!("PKCS#11 module {shown}: C_Initialize: {e}")),
    }
    map.insert(path.to_path_buf(), ctx.clone());
    Ok(ctx)
}

/// A read-write session on the token labelled `settings.token`, logged in
/// as the user with the PIN from `settings.pin_file` (0600, one line).
fn session(settings: &TokenSettings) -> Result<Session, String> {
    let ctx = module(&settings.module)?;
    let module = settings.module.display();
    let slots = ctx
        .get_slots_with_token()
        .map_err(|e| format!("PKCS#11 module {module}: listing slots: {e}"))?;
    let mut labels = Vec::new();
    let mut found = None;
    for slot in slots {
        let Ok(info) = ctx.get_token_info(slot) else {
            continue;
        };
        let label = info.label().trim_end().to_string();
        if label == settings.token {
            found = Some(slot);
            break;
        }
        labels.push(label);
    }
    let slot = found.ok_or_else(|| {
        format!(
            "PKCS#11 module {module}: no token labelled {:?} (tokens present: {labels:?})",
            settings.token
        )
    })?;
    let session = ctx
        .open_rw_session(slot)
        .map_err(|e| format!("token {:?}: cannot open a session: {e}", settings.token))?;
    let pin = crate::policy::read_password_file(&settings.pin_file)
        .map_err(|e| format!("token {:?}: PIN: {e}", settings.token))?;
    match session.login(UserType::User, Some(&AuthPin::new(pin))) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
        Err(e) => Err(format!(
            "token {:?}: login with the PIN of {} refused: {e}",
            settings.token,
            settings.pin_file.display()
        )),
    }
}

/// A new key pair on the token; the private key is sensitive and can never
/// be extracted.
pub fn generate(
    settings: &TokenSettings,
    algorithm: KeyAlgorithm,
    label: &str,
) -> Result<PrivateKey, String> {
    let session = session(settings)?;
    let mut id = vec![0u8; 16];
    aws_lc_rs::rand::fill(&mut id).map_err(|_| "no random bytes for a key id".to_string())?;
    let common = |public: bool| {
        vec![
            Attribute::Token(true),
            Attribute::Id(id.clone()),
            Attribute::Label(label.as_bytes().to_vec()),
            if public {
                Attribute::Verify(true)
            } else {
                Attribute::Sign(true)
            },
        ]
    };
    let mut public = common(true);
    let mut private = common(false);
    private.extend([
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
    ]);
    let mechanism = match algorithm {
        KeyAlgorithm::Rsa { bits } => {
            public.extend([
                Attribute::ModulusBits((bits as std::ffi::c_ulong).into()),
                Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
            ]);
            Mechanism::RsaPkcsKeyPairGen
        }
        KeyAlgorithm::EcdsaP256 => {
            public.push(Attribute::EcParams(OID_P256.to_vec()));
            Mechanism::EccKeyPairGen
        }
        KeyAlgorithm::EcdsaP384 => {
            public.push(Attribute::EcParams(OID_P384.to_vec()));
            Mechanism::EccKeyPairGen
        }
    };
    let (public_handle, private_handle) = session
        .generate_key_pair(&mechanism, &public, &private)
        .map_err(|e| {
            format!(
                "token {:?}: generating an {algorithm} key: {e}",
                settings.token
            )
        })?;
    let spki = public_key_info(&session, public_handle, algorithm)
        .map_err(|e| format!("token {:?}: the new key's public key: {e}", settings.token))?;
    let reference = KeyReference {
        token: settings.clone(),
        id,
        public_key: spki.clone(),
    };
    TokenKey::make(session, private_handle, algorithm, reference, spki)
}

/// The key a reference names, found on its token by CKA_ID. Its public key
/// object, when the token has one, must be the reference's public key.
pub fn open(reference: &KeyReference) -> Result<PrivateKey, String> {
    let token = &reference.token.token;
    let session = session(&reference.token)?;
    let algorithm = KeyAlgorithm::from_spki(&reference.public_key).map_err(|e| e.to_string())?;
    let find = |class: ObjectClass| {
        session
            .find_objects(&[Attribute::Class(class), Attribute::Id(reference.id.clone())])
            .map_err(|e| {
                format!(
                    "token {token:?}: searching for key {}: {e}",
                    hex_encode(&reference.id)
                )
            })
    };
    let private = find(ObjectClass::PRIVATE_KEY)?
        .into_iter()
        .next()
        .ok_or_else(|| format!("{}: no private key with this id", reference.describe()))?;
    if let Some(public) = find(ObjectClass::PUBLIC_KEY)?.into_iter().next() {
        let spki = public_key_info(&session, public, algorithm)?;
        if spki != reference.public_key {
            return Err(format!(
                "{}: the token's key is not the one the store recorded",
                reference.describe()
            ));
        }
    }
    let spki = reference.public_key.clone();
    TokenKey::make(session, private, algorithm, reference.clone(), spki)
}

/// A private key object on a token and the session that reaches it.
struct TokenKey {
    session: Mutex<Session>,
    key: ObjectHandle,
    algorithm: KeyAlgorithm,
    reference: KeyReference,
}

impl TokenKey {
    fn make(
        session: Session,
        key: ObjectHandle,
        algorithm: KeyAlgorithm,
        reference: KeyReference,
        spki: Vec<u8>,
    ) -> Result<PrivateKey, String> {
        let token = TokenKey {
            session: Mutex::new(session),
            key,
            algorithm,
            reference,
        };
        PrivateKey::external(spki, Box::new(token)).map_err(|e| e.to_string())
    }
}

impl ExternalKey for TokenKey {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, PkiError> {
        let failed = |e: String| {
            PkiError::Key(format!(
                "{}: signing failed: {e}",
                self.reference.describe()
            ))
        };
        let session = self
            .session
            .lock()
            .map_err(|_| failed("session lock poisoned".into()))?;
        match self.algorithm {
            KeyAlgorithm::Rsa { .. } => session
                .sign(&Mechanism::Sha256RsaPkcs, self.key, message)
                .map_err(|e| failed(e.to_string())),
            KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384 => {
                let (digest, size) = match self.algorithm {
                    KeyAlgorithm::EcdsaP384 => (&aws_lc_rs::digest::SHA384, 48),
                    _ => (&aws_lc_rs::digest::SHA256, 32),
                };
                let hash = aws_lc_rs::digest::digest(digest, message);
                let raw = session
                    .sign(&Mechanism::Ecdsa, self.key, hash.as_ref())
                    .map_err(|e| failed(e.to_string()))?;
                ecdsa_der(&raw, size).map_err(failed)
            }
        }
    }

    fn reference(&self) -> Vec<u8> {
        self.reference.to_text().into_bytes()
    }
}

/// The SubjectPublicKeyInfo DER of a public key object.
fn public_key_info(
    session: &Session,
    public: ObjectHandle,
    algorithm: KeyAlgorithm,
) -> Result<Vec<u8>, String> {
    let wanted: &[AttributeType] = match algorithm {
        KeyAlgorithm::Rsa { .. } => &[AttributeType::Modulus, AttributeType::PublicExponent],
        _ => &[AttributeType::EcPoint],
    };
    let attributes = session
        .get_attributes(public, wanted)
        .map_err(|e| format!("reading the public key: {e}"))?;
    let (mut modulus, mut exponent, mut point) = (None, None, None);
    for a in attributes {
        match a {
            Attribute::Modulus(m) => modulus = Some(m),
            Attribute::PublicExponent(e) => exponent = Some(e),
            Attribute::EcPoint(p) => point = Some(p),
            _ => {}
        }
    }
    let spki = match algorithm {
        KeyAlgorithm::Rsa { .. } => {
            let (Some(n), Some(e)) = (modulus, exponent) else {
                return Err("the token gave no modulus or exponent".into());
            };
            rsa_spki(&n, &e)
        }
        KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384 => {
            let point = point.ok_or("the token gave no EC point")?;
            let curve = if algorithm == KeyAlgorithm::EcdsaP256 {
                OID_P256
            } else {
                OID_P384
            };
            ec_spki(curve, &ec_point(&point, algorithm.bits() as usize / 8)?)
        }
    };
    let found = KeyAlgorithm::from_spki(&spki).map_err(|e| e.to_string())?;
    if found != algorithm {
        return Err(format!("the token made an {found} key, not {algorithm}"));
    }
    Ok(spki)
}

/// A DER TLV (short and long definite lengths, X.690 8.1.3).
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// A DER INTEGER of an unsigned big-endian value (X.690 8.3: minimal, a
/// leading zero when the top bit is set).
fn unsigned_integer(value: &[u8]) -> Vec<u8> {
    let trimmed: &[u8] = match value.iter().position(|b| *b != 0) {
        Some(i) => &value[i..],
        None => &[0],
    };
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    if trimmed[0] & 0x80 != 0 {
        content.push(0);
    }
    content.extend_from_slice(trimmed);
    tlv(0x02, &content)
}

/// SubjectPublicKeyInfo of an RSA key (RFC 8017 A.1.1, RFC 4055 1.2: NULL
/// parameters).
fn rsa_spki(modulus: &[u8], exponent: &[u8]) -> Vec<u8> {
    let mut key = unsigned_integer(modulus);
    key.extend(unsigned_integer(exponent));
    let rsa_public_key = tlv(0x30, &key);
    let mut algorithm = OID_RSA_ENCRYPTION.to_vec();
    algorithm.extend([0x05, 0x00]);
    spki(&tlv(0x30, &algorithm), &rsa_public_key)
}

/// SubjectPublicKeyInfo of an EC key on a named curve (RFC 5480 2).
fn ec_spki(curve: &[u8], point: &[u8]) -> Vec<u8> {
    let mut algorithm = OID_EC_PUBLIC_KEY.to_vec();
    algorithm.extend_from_slice(curve);
    spki(&tlv(0x30, &algorithm), point)
}

fn spki(algorithm_identifier: &[u8], key: &[u8]) -> Vec<u8> {
    let mut bits = vec![0u8];
    bits.extend_from_slice(key);
    let mut content = algorithm_identifier.to_vec();
    content.extend(tlv(0x03, &bits));
    tlv(0x30, &content)
}

/// The uncompressed point of CKA_EC_POINT: PKCS#11 3.0 section 2.3.3 says
/// a DER OCTET STRING, some tokens give the bare point.
fn ec_point(value: &[u8], field: usize) -> Result<Vec<u8>, String> {
    let bare = 1 + 2 * field;
    if value.len() == bare && value[0] == 0x04 {
        return Ok(value.to_vec());
    }
    if value.len() == bare + 2 && value[0] == 0x04 && value[1] as usize == bare && value[2] == 0x04
    {
        return Ok(value[2..].to_vec());
    }
    Err(format!(
        "CKA_EC_POINT of {} bytes is not an uncompressed point of a {}-bit curve",
        value.len(),
        field * 8
    ))
}

/// `r || s` of CKM_ECDSA as `Ecdsa-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }`.
fn ecdsa_der(raw: &[u8], size: usize) -> Result<Vec<u8>, String> {
    if raw.len() != 2 * size {
        return Err(format!(
            "an ECDSA signature of {} bytes, expected {}",
            raw.len(),
            2 * size
        ));
    }
    let (r, s) = raw.split_at(size);
    let mut content = unsigned_integer(r);
    content.extend(unsigned_integer(s));
    Ok(tlv(0x30, &content))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SPKI built from a key's parts is byte for byte the one aws-lc-rs
    /// writes for the same key.
    #[test]
    fn spki_built_from_parts_matches_aws_lc() {
        for alg in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::EcdsaP384] {
            let key = PrivateKey::generate(alg).unwrap();
            let der = key.public_key_der();
            let (_, parsed) =
                <x509_parser::x509::SubjectPublicKeyInfo as x509_parser::prelude::FromDer<_>>::from_der(&der)
                    .unwrap();
            let point = parsed.subject_public_key.data.to_vec();
            let curve = if alg == KeyAlgorithm::EcdsaP256 {
                OID_P256
            } else {
                OID_P384
            };
            let wrapped = tlv(0x04, &point);
            let size = alg.bits() as usize / 8;
            assert_eq!(ec_spki(curve, &ec_point(&wrapped, size).unwrap()), der);
            assert_eq!(ec_spki(curve, &ec_point(&point, size).unwrap()), der);
        }
        let key = PrivateKey::generate(KeyAlgorithm::Rsa { bits: 2048 }).unwrap();
        let der = key.public_key_der();
        let (_, parsed) =
            <x509_parser::x509::SubjectPublicKeyInfo as x509_parser::prelude::FromDer<_>>::from_der(&der)
                .unwrap();
        let Ok(x509_parser::public_key::PublicKey::RSA(rsa)) = parsed.parsed() else {
            panic!("an RSA key")
        };
        assert_eq!(rsa_spki(rsa.modulus, rsa.exponent), der);
    }

    /// A module is code run in this process: one that others can write,
    /// or that is not a file, is never loaded.
    #[test]
    fn a_module_others_can_write_is_not_loaded() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("libevil.so");
        std::fs::write(&path, b"not a library").unwrap();
        for mode in [0o666, 0o646, 0o664] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = module(&path).unwrap_err();
            assert!(e.contains("others can write it"), "{e}");
        }
        let e = module(tmp.path()).unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = module(&path).unwrap_err();
        assert!(e.contains("cannot load"), "{e}");
    }

    #[test]
    fn ecdsa_signatures_become_der() {
        let mut raw = vec![0u8; 64];
        raw[0] = 0x80; // r needs a leading zero
        raw[63] = 0x01; // s is 1
        let der = ecdsa_der(&raw, 32).unwrap();
        assert_eq!(&der[..4], &[0x30, 0x26, 0x02, 0x21]);
        assert_eq!(&der[der.len() - 3..], &[0x02, 0x01, 0x01]);
        assert!(ecdsa_der(&raw[..63], 32).is_err());
        assert!(ec_point(&[0x04; 10], 32).is_err());
    }
}
