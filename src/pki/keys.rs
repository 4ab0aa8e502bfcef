//! Key pairs of requesters and of the CA, through aws-lc-rs only.
//!
//! A key is kept as its PKCS#8 DER (what the store writes as PEM) plus the
//! parsed aws-lc-rs key pair that signs. The algorithms are the ones AD CS
//! templates name ([MS-CRTD] 2.27 `msPKI-RA-Application-Policies`, adcs.md
//! section 2): RSA, ECDSA P-256 and ECDSA P-384.

use std::fmt;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, EcdsaSigningAlgorithm, KeyPair as _, RsaKeyPair, UnparsedPublicKey,
    VerificationAlgorithm,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use x509_parser::asn1_rs::Tag;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use super::der_cursor::single;
use super::template_ext::PkiError;
use crate::model::template::Template;

/// Object identifiers of the key, signature and digest algorithms handled here
/// (RFC 8017 A.1/A.2, RFC 5480 2.1, RFC 5758 3.2, RFC 5754 2).
pub mod oid {
    pub const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
    pub const SHA1_WITH_RSA: &str = "1.2.840.113549.1.1.5";
    pub const RSASSA_PSS: &str = "1.2.840.113549.1.1.10";
    pub const SHA256_WITH_RSA: &str = "1.2.840.113549.1.1.11";
    pub const SHA384_WITH_RSA: &str = "1.2.840.113549.1.1.12";
    pub const SHA512_WITH_RSA: &str = "1.2.840.113549.1.1.13";
    pub const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
    pub const ECDSA_WITH_SHA1: &str = "1.2.840.10045.4.1";
    pub const ECDSA_WITH_SHA256: &str = "1.2.840.10045.4.3.2";
    pub const ECDSA_WITH_SHA384: &str = "1.2.840.10045.4.3.3";
    pub const ECDSA_WITH_SHA512: &str = "1.2.840.10045.4.3.4";
    pub const CURVE_P256: &str = "1.2.840.10045.3.1.7";
    pub const CURVE_P384: &str = "1.3.132.0.34";
    pub const CURVE_P521: &str = "1.3.132.0.35";
    pub const SHA1: &str = "1.3.14.3.2.26";
    pub const SHA256: &str = "2.16.840.1.101.3.4.2.1";
    pub const SHA384: &str = "2.16.840.1.101.3.4.2.2";
    pub const SHA512: &str = "2.16.840.1.101.3.4.2.3";
}

/// RSA sizes aws-lc-rs can generate, smallest first.
const RSA_SIZES: [(u32, KeySize); 4] = [
    (2048, KeySize::Rsa2048),
    (3072, KeySize::Rsa3072),
    (4096, KeySize::Rsa4096),
    (8192, KeySize::Rsa8192),
];

/// AlgorithmIdentifier DER of sha256WithRSAEncryption with NULL parameters
/// (RFC 4055 5: the parameters MUST be NULL).
const ALG_SHA256_WITH_RSA: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00,
];
/// AlgorithmIdentifier DER of ecdsa-with-SHA256, parameters absent (RFC 5758 3.2).
const ALG_ECDSA_WITH_SHA256: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
];
/// AlgorithmIdentifier DER of ecdsa-with-SHA384, parameters absent (RFC 5758 3.2).
const ALG_ECDSA_WITH_SHA384: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03,
];

/// What a public or private key is: the algorithm and its strength.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyAlgorithm {
    Rsa { bits: u32 },
    EcdsaP256,
    EcdsaP384,
}

impl KeyAlgorithm {
    /// The algorithm of a SubjectPublicKeyInfo (RFC 5280 4.1.2.7): RSA with the
    /// bit length of its modulus, EC by its named curve (RFC 5480 2.1.1).
    pub fn from_spki(spki_der: &[u8]) -> Result<KeyAlgorithm, PkiError> {
        let bad = |m: String| PkiError::Key(format!("SubjectPublicKeyInfo: {m}"));
        let (rest, spki) = SubjectPublicKeyInfo::from_der(spki_der)
            .map_err(|e| bad(format!("malformed or truncated DER: {e}")))?;
        if !rest.is_empty() {
            return Err(bad(format!("{} bytes after the structure", rest.len())));
        }
        let alg = spki.algorithm.algorithm.to_id_string();
        match alg.as_str() {
            oid::RSA_ENCRYPTION => match spki.parsed() {
                Ok(PublicKey::RSA(rsa)) => {
                    let bits = modulus_bits(rsa.modulus);
                    if bits == 0 {
                        return Err(bad("the RSA modulus is zero".into()));
                    }
                    Ok(KeyAlgorithm::Rsa { bits })
                }
                Ok(_) => Err(bad("rsaEncryption key is not an RSAPublicKey".into())),
                Err(e) => Err(bad(format!("RSAPublicKey: {e}"))),
            },
            oid::EC_PUBLIC_KEY => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.as_oid().ok())
                    .map(|o| o.to_id_string())
                    .ok_or_else(|| {
                        bad("EC key without a named curve (explicit curve parameters are not supported)"
                            .into())
                    })?;
                match curve.as_str() {
                    oid::CURVE_P256 => Ok(KeyAlgorithm::EcdsaP256),
                    oid::CURVE_P384 => Ok(KeyAlgorithm::EcdsaP384),
                    oid::CURVE_P521 => Err(bad(
                        "ECDSA P-521 keys are not supported (P-256 and P-384 are)".into(),
                    )),
                    other => Err(bad(format!("unsupported elliptic curve {other}"))),
                }
            }
            oid::RSASSA_PSS => Err(bad("RSA-PSS keys are not supported".into())),
            other => Err(bad(format!(
                "unsupported key algorithm {other} (RSA, ECDSA P-256 and P-384 are supported)"
            ))),
        }
    }

    /// RSA modulus bits, or the curve size (256, 384).
    pub fn bits(&self) -> u32 {
        match self {
            KeyAlgorithm::Rsa { bits } => *bits,
            KeyAlgorithm::EcdsaP256 => 256,
            KeyAlgorithm::EcdsaP384 => 384,
        }
    }

    /// Human text: "RSA 2048", "ECDSA P-256".
    pub fn describe(&self) -> String {
        match self {
            KeyAlgorithm::Rsa { bits } => format!("RSA {bits}"),
            KeyAlgorithm::EcdsaP256 => "ECDSA P-256".into(),
            KeyAlgorithm::EcdsaP384 => "ECDSA P-384".into(),
        }
    }

    /// The key a client generates for a template. v3/v4 templates name the
    /// algorithm (`msPKI-Asymmetric-Algorithm`, adcs.md section 2); otherwise
    /// it is RSA of at least `msPKI-Minimal-Key-Size`, rounded up to a size
    /// aws-lc-rs can generate and never below 2048 bits.
    pub fn for_template(t: &Template) -> Result<KeyAlgorithm, PkiError> {
        match template_family(t)? {
            Family::EcdsaP256 => Ok(KeyAlgorithm::EcdsaP256),
            Family::EcdsaP384 => Ok(KeyAlgorithm::EcdsaP384),
            Family::Rsa => RSA_SIZES
                .iter()
                .map(|(bits, _)| *bits)
                .find(|bits| *bits >= t.minimal_key_size)
                .map(|bits| KeyAlgorithm::Rsa { bits })
                .ok_or_else(|| {
                    PkiError::Key(format!(
                        "template {} asks for RSA keys of at least {} bits; the largest key \
                         autoenroll can generate is RSA 8192",
                        t.cn, t.minimal_key_size
                    ))
                }),
        }
    }

    /// The weakest key the template allows, without rounding to a size we can
    /// generate: what a CA compares a request's key with (adcs.md section 6,
    /// "key size >= msPKI-Minimal-Key-Size"). A key generated by
    /// [`for_template`](Self::for_template) always satisfies it.
    pub fn template_minimum(t: &Template) -> Result<KeyAlgorithm, PkiError> {
        Ok(match template_family(t)? {
            Family::EcdsaP256 => KeyAlgorithm::EcdsaP256,
            Family::EcdsaP384 => KeyAlgorithm::EcdsaP384,
            Family::Rsa => KeyAlgorithm::Rsa {
                bits: t.minimal_key_size,
            },
        })
    }

    /// Whether a key of this algorithm meets `wanted`: the same family and at
    /// least the same size (a P-384 key meets a P-256 minimum).
    pub fn satisfies(&self, wanted: &KeyAlgorithm) -> bool {
        match (self, wanted) {
            (KeyAlgorithm::Rsa { bits }, KeyAlgorithm::Rsa { bits: min }) => bits >= min,
            (KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384, KeyAlgorithm::EcdsaP256) => true,
            (KeyAlgorithm::EcdsaP384, KeyAlgorithm::EcdsaP384) => true,
            _ => false,
        }
    }

    /// OID of the signature algorithm this crate signs with for such a key.
    pub fn signature_algorithm_oid(&self) -> &'static str {
        match self {
            KeyAlgorithm::Rsa { .. } => oid::SHA256_WITH_RSA,
            KeyAlgorithm::EcdsaP256 => oid::ECDSA_WITH_SHA256,
            KeyAlgorithm::EcdsaP384 => oid::ECDSA_WITH_SHA384,
        }
    }

    /// OID of the digest of that signature (SHA-256, SHA-384 for P-384).
    pub fn digest_algorithm_oid(&self) -> &'static str {
        match self {
            KeyAlgorithm::Rsa { .. } | KeyAlgorithm::EcdsaP256 => oid::SHA256,
            KeyAlgorithm::EcdsaP384 => oid::SHA384,
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// The key family a template names.
enum Family {
    Rsa,
    EcdsaP256,
    EcdsaP384,
}

fn template_family(t: &Template) -> Result<Family, PkiError> {
    match t.asymmetric_algorithm() {
        None => Ok(Family::Rsa),
        Some(a) if a.eq_ignore_ascii_case("RSA") => Ok(Family::Rsa),
        Some(a) if a.eq_ignore_ascii_case("ECDSA_P256") => Ok(Family::EcdsaP256),
        Some(a) if a.eq_ignore_ascii_case("ECDSA_P384") => Ok(Family::EcdsaP384),
        Some(other) => Err(PkiError::Key(format!(
            "template {} asks for key algorithm {other}, which autoenroll does not support \
             (RSA, ECDSA_P256 and ECDSA_P384 are supported)",
            t.cn
        ))),
    }
}

/// Bit length of a big-endian unsigned integer (leading zero bytes ignored).
fn modulus_bits(modulus: &[u8]) -> u32 {
    match modulus.iter().position(|b| *b != 0) {
        Some(i) => {
            let significant = u32::try_from(modulus.len() - i).unwrap_or(u32::MAX / 8);
            significant.saturating_mul(8) - modulus[i].leading_zeros()
        }
        None => 0,
    }
}

/// A private key held by a device (a PKCS#11 token): it signs there, and
/// its private part is never in this process.
pub trait ExternalKey: Send + Sync {
    /// Signs `message` as [`PrivateKey::sign`] does: RSA PKCS#1 v1.5 with
    /// SHA-256, ECDSA with SHA-256 (P-256) or SHA-384 (P-384) as a DER
    /// `Ecdsa-Sig-Value`.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, PkiError>;
    /// What the store keeps in place of a key file: where the key lives
    /// (never a secret).
    fn reference(&self) -> Vec<u8>;
}

/// What signs: an aws-lc-rs key pair, or a key on a device.
enum Signer {
    Rsa(RsaKeyPair),
    Ecdsa(EcdsaKeyPair),
    External(Box<dyn ExternalKey>),
}

/// A private key: PKCS#8 DER (empty for a key on a device), its algorithm
/// and public key.
pub struct PrivateKey {
    pkcs8: Vec<u8>,
    algorithm: KeyAlgorithm,
    spki: Vec<u8>,
    /// The raw `subjectPublicKey` bits of `spki` (what rcgen writes).
    public_bits: Vec<u8>,
    signer: Signer,
}

impl fmt::Debug for PrivateKey {
    /// Never prints key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

fn ecdsa_signing(alg: KeyAlgorithm) -> Option<&'static EcdsaSigningAlgorithm> {
    match alg {
        KeyAlgorithm::EcdsaP256 => Some(&signature::ECDSA_P256_SHA256_ASN1_SIGNING),
        KeyAlgorithm::EcdsaP384 => Some(&signature::ECDSA_P384_SHA384_ASN1_SIGNING),
        KeyAlgorithm::Rsa { .. } => None,
    }
}

impl PrivateKey {
    /// A fresh key pair.
    pub fn generate(alg: KeyAlgorithm) -> Result<PrivateKey, PkiError> {
        let failed = |_| PkiError::Key(format!("generating an {} key failed", alg.describe()));
        match alg {
            KeyAlgorithm::Rsa { bits } => {
                let size = RSA_SIZES
                    .iter()
                    .find(|(b, _)| *b == bits)
                    .map(|(_, s)| *s)
                    .ok_or_else(|| {
                        PkiError::Key(format!(
                            "cannot generate RSA {bits} keys (2048, 3072, 4096 and 8192 are possible)"
                        ))
                    })?;
                let pair = RsaKeyPair::generate(size).map_err(failed)?;
                Self::from_rsa(pair)
            }
            KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384 => {
                let signing = ecdsa_signing(alg)
                    .ok_or_else(|| PkiError::Key(format!("{alg} is not an ECDSA key")))?;
                let pair = EcdsaKeyPair::generate(signing).map_err(failed)?;
                Self::from_ecdsa(pair)
            }
        }
    }

    fn from_rsa(pair: RsaKeyPair) -> Result<PrivateKey, PkiError> {
        let pkcs8 = AsDer::<Pkcs8V1Der>::as_der(&pair)
            .map_err(|_| PkiError::Key("cannot encode the RSA key as PKCS#8".into()))?
            .as_ref()
            .to_vec();
        let spki = AsDer::<PublicKeyX509Der>::as_der(pair.public_key())
            .map_err(|_| PkiError::Key("cannot encode the RSA public key".into()))?
            .as_ref()
            .to_vec();
        Self::assemble(pkcs8, spki, Signer::Rsa(pair))
    }

    fn from_ecdsa(pair: EcdsaKeyPair) -> Result<PrivateKey, PkiError> {
        let pkcs8 = pair
            .to_pkcs8v1()
            .map_err(|_| PkiError::Key("cannot encode the EC key as PKCS#8".into()))?
            .as_ref()
            .to_vec();
        let spki = AsDer::<PublicKeyX509Der>::as_der(pair.public_key())
            .map_err(|_| PkiError::Key("cannot encode the EC public key".into()))?
            .as_ref()
            .to_vec();
        Self::assemble(pkcs8, spki, Signer::Ecdsa(pair))
    }

    fn assemble(pkcs8: Vec<u8>, spki: Vec<u8>, signer: Signer) -> Result<PrivateKey, PkiError> {
        let algorithm = KeyAlgorithm::from_spki(&spki)?;
        let public_bits = SubjectPublicKeyInfo::from_der(&spki)
            .map(|(_, s)| s.subject_public_key.data.to_vec())
            .map_err(|e| PkiError::Key(format!("SubjectPublicKeyInfo: {e}")))?;
        Ok(PrivateKey {
            pkcs8,
            algorithm,
            spki,
            public_bits,
            signer,
        })
    }

    /// A key held by a device, with its SubjectPublicKeyInfo (RSA, ECDSA
    /// P-256 or P-384, as for generated keys).
    pub fn external(spki: Vec<u8>, key: Box<dyn ExternalKey>) -> Result<PrivateKey, PkiError> {
        Self::assemble(Vec::new(), spki, Signer::External(key))
    }

    /// Whether the private part lives on a device (it cannot be exported).
    pub fn is_external(&self) -> bool {
        matches!(self.signer, Signer::External(_))
    }

    /// PKCS#8 PEM for a key in memory; None for a key on a device, which
    /// never leaves it.
    pub fn exportable_pem(&self) -> Option<String> {
        (!self.is_external()).then(|| self.to_pem())
    }

    /// What the store keeps: the PKCS#8 PEM of a key in memory, or the
    /// reference of a key on a device.
    pub fn stored_form(&self) -> Vec<u8> {
        match &self.signer {
            Signer::External(k) => k.reference(),
            _ => self.to_pem().into_bytes(),
        }
    }

    /// Reads an unencrypted PKCS#8 `PrivateKeyInfo` (RFC 5208 5). The
    /// algorithm is read from the structure first so that an unsupported key
    /// is named as such rather than reported as garbage.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<PrivateKey, PkiError> {
        let bad = |m: String| PkiError::Key(format!("PKCS#8 private key: {m}"));
        let outer = single(der, Tag::Sequence, "PrivateKeyInfo").map_err(bad)?;
        let mut c = outer.children("PrivateKeyInfo").map_err(bad)?;
        c.expect(Tag::Integer, "version").map_err(bad)?;
        let alg = c
            .expect(Tag::Sequence, "privateKeyAlgorithm")
            .map_err(bad)?;
        let mut a = alg.children("privateKeyAlgorithm").map_err(bad)?;
        let key_oid = a
            .next("algorithm")
            .and_then(|e| e.oid("algorithm"))
            .map_err(bad)?;
        match key_oid.as_str() {
            oid::RSA_ENCRYPTION => {
                let pair = RsaKeyPair::from_pkcs8(der)
                    .map_err(|e| bad(format!("RSA key rejected: {e} (2048 to 8192 bits)")))?;
                Self::from_rsa(pair)
            }
            oid::EC_PUBLIC_KEY => {
                let curve = match a.next("namedCurve") {
                    Ok(e) => e.oid("namedCurve").map_err(bad)?,
                    Err(_) => return Err(bad("EC key without a named curve".into())),
                };
                let alg = match curve.as_str() {
                    oid::CURVE_P256 => KeyAlgorithm::EcdsaP256,
                    oid::CURVE_P384 => KeyAlgorithm::EcdsaP384,
                    oid::CURVE_P521 => {
                        return Err(bad("ECDSA P-521 keys are not supported".into()));
                    }
                    other => return Err(bad(format!("unsupported elliptic curve {other}"))),
                };
                let signing = ecdsa_signing(alg).ok_or_else(|| bad("not an EC key".into()))?;
                let pair = EcdsaKeyPair::from_pkcs8(signing, der)
                    .map_err(|e| bad(format!("EC key rejected: {e}")))?;
                Self::from_ecdsa(pair)
            }
            other => Err(bad(format!(
                "unsupported key algorithm {other} (RSA, ECDSA P-256 and P-384 are supported)"
            ))),
        }
    }

    /// Reads the first private key of PEM text: PKCS#8 `PRIVATE KEY`, PKCS#1
    /// `RSA PRIVATE KEY` or SEC1 `EC PRIVATE KEY` (other blocks such as
    /// `EC PARAMETERS` or a certificate are skipped).
    pub fn from_pem(pem: &[u8]) -> Result<PrivateKey, PkiError> {
        use rustls::pki_types::PrivateKeyDer;
        let mut reader = pem;
        let found = rustls_pemfile::private_key(&mut reader)
            .map_err(|e| PkiError::Key(format!("PEM: {e}")))?;
        match found {
            Some(PrivateKeyDer::Pkcs8(k)) => Self::from_pkcs8_der(k.secret_pkcs8_der()),
            Some(PrivateKeyDer::Pkcs1(k)) => {
                let pair = RsaKeyPair::from_der(k.secret_pkcs1_der())
                    .map_err(|e| PkiError::Key(format!("PKCS#1 RSA private key rejected: {e}")))?;
                Self::from_rsa(pair)
            }
            Some(PrivateKeyDer::Sec1(k)) => {
                let der = k.secret_sec1_der();
                [
                    &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                    &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
                ]
                .into_iter()
                .find_map(|alg| EcdsaKeyPair::from_private_key_der(alg, der).ok())
                .ok_or_else(|| {
                    PkiError::Key(
                        "SEC1 EC private key rejected (only P-256 and P-384 are supported)".into(),
                    )
                })
                .and_then(Self::from_ecdsa)
            }
            Some(_) => Err(PkiError::Key("unsupported private key format".into())),
            None if pem.windows(21).any(|w| w == b"ENCRYPTED PRIVATE KEY") => Err(PkiError::Key(
                "the key is encrypted; an unencrypted key is needed".into(),
            )),
            None => Err(PkiError::Key(
                "no PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block in the PEM text".into(),
            )),
        }
    }

    /// PKCS#8 PEM (`PRIVATE KEY`), 64 characters a line. Empty for a key on
    /// a device ([`exportable_pem`](Self::exportable_pem) says which).
    pub fn to_pem(&self) -> String {
        if self.is_external() {
            return String::new();
        }
        let b64 = STANDARD.encode(&self.pkcs8);
        let mut out = String::from("-----BEGIN PRIVATE KEY-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(chunk));
            out.push('\n');
        }
        out.push_str("-----END PRIVATE KEY-----\n");
        out
    }

    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// SubjectPublicKeyInfo DER.
    pub fn public_key_der(&self) -> Vec<u8> {
        self.spki.clone()
    }

    /// Signs with RSA PKCS#1 v1.5 SHA-256, ECDSA P-256 SHA-256 or ECDSA P-384
    /// SHA-384; ECDSA signatures are the DER `Ecdsa-Sig-Value` (RFC 5480 2.2
    /// via RFC 3279 2.2.3), as X.509 and CMS carry them.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, PkiError> {
        let rng = SystemRandom::new();
        let failed = |_| PkiError::Key(format!("signing with the {} key failed", self.algorithm));
        match &self.signer {
            Signer::Rsa(pair) => {
                let mut sig = vec![0; pair.public_modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut sig)
                    .map_err(failed)?;
                Ok(sig)
            }
            Signer::Ecdsa(pair) => Ok(pair.sign(&rng, message).map_err(failed)?.as_ref().to_vec()),
            Signer::External(key) => key.sign(message),
        }
    }

    /// AlgorithmIdentifier DER of the signatures [`sign`](Self::sign) makes.
    pub fn signature_algorithm_der(&self) -> Vec<u8> {
        match self.algorithm {
            KeyAlgorithm::Rsa { .. } => ALG_SHA256_WITH_RSA,
            KeyAlgorithm::EcdsaP256 => ALG_ECDSA_WITH_SHA256,
            KeyAlgorithm::EcdsaP384 => ALG_ECDSA_WITH_SHA384,
        }
        .to_vec()
    }

    /// rcgen's name of the algorithm [`sign`](Self::sign) signs with.
    fn rcgen_algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        match self.algorithm {
            KeyAlgorithm::Rsa { .. } => &rcgen::PKCS_RSA_SHA256,
            KeyAlgorithm::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyAlgorithm::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        }
    }

    /// The same key as an rcgen key pair, for rcgen to sign CSRs,
    /// certificates and CRLs with the same algorithms as [`sign`](Self::sign).
    pub fn rcgen_key_pair(&self) -> Result<rcgen::KeyPair, PkiError> {
        if self.is_external() {
            return Err(PkiError::Key(
                "the key lives on a token; it signs there and has no PKCS#8 form".into(),
            ));
        }
        let alg = self.rcgen_algorithm();
        let der = rustls::pki_types::PrivatePkcs8KeyDer::from(self.pkcs8.as_slice());
        rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der, alg)
            .map_err(|e| PkiError::Key(format!("rcgen does not accept the key: {e}")))
    }
}

/// rcgen signs with the key through [`PrivateKey::sign`], so a request is
/// signed the same way whether the key is in memory or on a token.
impl rcgen::PublicKeyData for PrivateKey {
    fn der_bytes(&self) -> &[u8] {
        &self.public_bits
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.rcgen_algorithm()
    }
}

impl rcgen::SigningKey for PrivateKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        PrivateKey::sign(self, msg).map_err(|e| {
            tracing::warn!("signing a request failed: {e}");
            rcgen::Error::RemoteKeyError
        })
    }
}

/// The digests a signature may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Digest {
    Sha256,
    Sha384,
    Sha512,
}

impl Digest {
    /// From a digest algorithm OID (RFC 5754 2); SHA-1 is refused.
    fn from_oid(oid: &str) -> Result<Digest, PkiError> {
        match oid {
            oid::SHA256 => Ok(Digest::Sha256),
            oid::SHA384 => Ok(Digest::Sha384),
            oid::SHA512 => Ok(Digest::Sha512),
            oid::SHA1 => Err(PkiError::Signature("SHA-1 digests are not accepted".into())),
            other => Err(PkiError::Signature(format!(
                "unsupported digest algorithm {other}"
            ))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Digest::Sha256 => "SHA-256",
            Digest::Sha384 => "SHA-384",
            Digest::Sha512 => "SHA-512",
        }
    }
}

/// The family a signature algorithm OID belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SigFamily {
    Rsa,
    Ecdsa,
}

/// A combined signature algorithm OID (hash and key type).
fn combined_signature(oid: &str) -> Result<(SigFamily, Digest), PkiError> {
    match oid {
        oid::SHA256_WITH_RSA => Ok((SigFamily::Rsa, Digest::Sha256)),
        oid::SHA384_WITH_RSA => Ok((SigFamily::Rsa, Digest::Sha384)),
        oid::SHA512_WITH_RSA => Ok((SigFamily::Rsa, Digest::Sha512)),
        oid::ECDSA_WITH_SHA256 => Ok((SigFamily::Ecdsa, Digest::Sha256)),
        oid::ECDSA_WITH_SHA384 => Ok((SigFamily::Ecdsa, Digest::Sha384)),
        oid::ECDSA_WITH_SHA512 => Ok((SigFamily::Ecdsa, Digest::Sha512)),
        oid::SHA1_WITH_RSA | oid::ECDSA_WITH_SHA1 => Err(PkiError::Signature(
            "SHA-1 signatures are not accepted".into(),
        )),
        oid::RSASSA_PSS => Err(PkiError::Signature(
            "RSA-PSS signatures are not supported (use PKCS#1 v1.5)".into(),
        )),
        other => Err(PkiError::Signature(format!(
            "unsupported signature algorithm {other}"
        ))),
    }
}

/// Verifies `signature` over `message` with the key of `spki_der`, for a
/// combined signature algorithm as certificates and PKCS#10 requests name it
/// (sha256/384/512WithRSAEncryption, ecdsa-with-SHA256/384/512). SHA-1 and
/// RSA-PSS are refused with a reason, and RSA keys below 2048 bits too.
pub fn verify_signature(
    spki_der: &[u8],
    signature_algorithm_oid: &str,
    message: &[u8],
    signature: &[u8],
) -> Result<(), PkiError> {
    let (family, digest) = combined_signature(signature_algorithm_oid)?;
    verify_with(spki_der, family, digest, message, signature)
}

/// Verifies a signature named as CMS SignerInfo names it (RFC 5652 5.3): a
/// digest algorithm plus a signature algorithm that is either a bare key
/// algorithm (rsaEncryption, RFC 3370 3.2; id-ecPublicKey) or a combined one,
/// whose hash must then be the digest algorithm (RFC 5754 3, RFC 5753 7.1.3).
pub fn verify_signature_with_digest(
    spki_der: &[u8],
    digest_algorithm_oid: &str,
    signature_algorithm_oid: &str,
    message: &[u8],
    signature: &[u8],
) -> Result<(), PkiError> {
    let digest = Digest::from_oid(digest_algorithm_oid)?;
    let family = match signature_algorithm_oid {
        oid::RSA_ENCRYPTION => SigFamily::Rsa,
        oid::EC_PUBLIC_KEY => SigFamily::Ecdsa,
        combined => {
            let (family, hash) = combined_signature(combined)?;
            if hash != digest {
                return Err(PkiError::Signature(format!(
                    "signature algorithm {combined} uses {} but the digest algorithm is {}",
                    hash.name(),
                    digest.name()
                )));
            }
            family
        }
    };
    verify_with(spki_der, family, digest, message, signature)
}

fn verify_with(
    spki_der: &[u8],
    family: SigFamily,
    digest: Digest,
    message: &[u8],
    signature: &[u8],
) -> Result<(), PkiError> {
    let key = KeyAlgorithm::from_spki(spki_der)?;
    let alg: &'static dyn VerificationAlgorithm = match (key, family, digest) {
        (KeyAlgorithm::Rsa { bits }, SigFamily::Rsa, _) if bits < 2048 => {
            return Err(PkiError::Signature(format!(
                "RSA {bits} key: keys below 2048 bits are not accepted"
            )));
        }
        (KeyAlgorithm::Rsa { .. }, SigFamily::Rsa, Digest::Sha256) => {
            &signature::RSA_PKCS1_2048_8192_SHA256
        }
        (KeyAlgorithm::Rsa { .. }, SigFamily::Rsa, Digest::Sha384) => {
            &signature::RSA_PKCS1_2048_8192_SHA384
        }
        (KeyAlgorithm::Rsa { .. }, SigFamily::Rsa, Digest::Sha512) => {
            &signature::RSA_PKCS1_2048_8192_SHA512
        }
        (KeyAlgorithm::EcdsaP256, SigFamily::Ecdsa, Digest::Sha256) => {
            &signature::ECDSA_P256_SHA256_ASN1
        }
        (KeyAlgorithm::EcdsaP256, SigFamily::Ecdsa, Digest::Sha384) => {
            &signature::ECDSA_P256_SHA384_ASN1
        }
        (KeyAlgorithm::EcdsaP256, SigFamily::Ecdsa, Digest::Sha512) => {
            &signature::ECDSA_P256_SHA512_ASN1
        }
        (KeyAlgorithm::EcdsaP384, SigFamily::Ecdsa, Digest::Sha256) => {
            &signature::ECDSA_P384_SHA256_ASN1
        }
        (KeyAlgorithm::EcdsaP384, SigFamily::Ecdsa, Digest::Sha384) => {
            &signature::ECDSA_P384_SHA384_ASN1
        }
        (KeyAlgorithm::EcdsaP384, SigFamily::Ecdsa, Digest::Sha512) => {
            &signature::ECDSA_P384_SHA512_ASN1
        }
        (key, family, _) => {
            return Err(PkiError::Signature(format!(
                "an {} signature cannot come from an {} key",
                match family {
                    SigFamily::Rsa => "RSA",
                    SigFamily::Ecdsa => "ECDSA",
                },
                key.describe()
            )));
        }
    };
    UnparsedPublicKey::new(alg, spki_der)
        .verify(message, signature)
        .map_err(|_| {
            PkiError::Signature(format!(
                "the {} {} signature does not verify with the {} key",
                match family {
                    SigFamily::Rsa => "RSA",
                    SigFamily::Ecdsa => "ECDSA",
                },
                digest.name(),
                key.describe()
            ))
        })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{EnrollmentFlags, GeneralFlags, NameFlags, PrivateKeyFlags};
    use std::process::Command;

    /// Reads the key algorithm OID of a PKCS#8 structure without parsing the key;
    /// used by tests to check what was written.
    fn pkcs8_algorithm_oid(der: &[u8]) -> Result<String, String> {
        let outer = single(der, Tag::Sequence, "PrivateKeyInfo")?;
        let mut c: super::super::der_cursor::Cursor<'_> = outer.children("PrivateKeyInfo")?;
        c.expect(Tag::Integer, "version")?;
        let alg = c.expect(Tag::Sequence, "privateKeyAlgorithm")?;
        alg.children("privateKeyAlgorithm")?
            .next("algorithm")?
            .oid("algorithm")
    }

    pub(crate) fn template(schema: u32, min: u32, alg: Option<&str>) -> Template {
        Template {
            dn: "CN=T,CN=Certificate Templates".into(),
            cn: "T".into(),
            display_name: None,
            flags: GeneralFlags::empty(),
            revision: 100,
            minor_revision: 0,
            schema_version: schema,
            oid: Some("1.3.6.1.4.1.311.21.8.1.2".into()),
            validity: None,
            renewal_period: None,
            key_usage: None,
            extended_key_usage: vec![],
            default_key_spec: None,
            max_issuing_depth: None,
            critical_extensions: vec![],
            default_csps: vec![],
            minimal_key_size: min,
            ra_signatures: 0,
            ra_application_policies: alg
                .map(|a| {
                    vec![format!(
                        "msPKI-Asymmetric-Algorithm`PZPWSTR`{a}`msPKI-Hash-Algorithm`PZPWSTR`SHA256`"
                    )]
                })
                .unwrap_or_default(),
            supersedes: vec![],
            certificate_policies: vec![],
            application_policies: vec![],
            enrollment_flags: EnrollmentFlags::empty(),
            private_key_flags: PrivateKeyFlags::empty(),
            name_flags: NameFlags::empty(),
        }
    }

    /// A self-signed certificate for `key` carrying a template extension: the
    /// "old certificate" of renewal tests.
    pub(crate) fn old_certificate(key: &PrivateKey, cn: &str) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(vec![format!("{cn}.corp.example")]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x01, 0x23, 0x45, 0x67]));
        params
            .custom_extensions
            .push(rcgen::CustomExtension::from_oid_content(
                &[1, 3, 6, 1, 4, 1, 311, 21, 7],
                crate::pki::template_ext::encode_template_information(
                    "1.3.6.1.4.1.311.21.8.7",
                    100,
                    2,
                )
                .unwrap(),
            ));
        // subjectKeyIdentifier (RFC 5280 4.2.1.2 method 1), for signers
        // identified by key id.
        let (_, spki) = SubjectPublicKeyInfo::from_der(&key.spki).unwrap();
        let sha1 = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
            &spki.subject_public_key.data,
        );
        let mut ski = vec![0x04, 0x14];
        ski.extend_from_slice(sha1.as_ref());
        params
            .custom_extensions
            .push(rcgen::CustomExtension::from_oid_content(
                &[2, 5, 29, 14],
                ski,
            ));
        let pair = key.rcgen_key_pair().unwrap();
        params.self_signed(&pair).unwrap().der().to_vec()
    }

    #[test]
    fn for_template_table() {
        use KeyAlgorithm::*;
        // (schema version, minimal key size, asymmetric algorithm, outcome)
        type Case<'a> = (u32, u32, Option<&'a str>, Result<KeyAlgorithm, &'a str>);
        let cases: &[Case<'_>] = &[
            (2, 0, None, Ok(Rsa { bits: 2048 })),
            (1, 1024, None, Ok(Rsa { bits: 2048 })),
            (2, 2048, None, Ok(Rsa { bits: 2048 })),
            (2, 2049, None, Ok(Rsa { bits: 3072 })),
            (2, 3000, None, Ok(Rsa { bits: 3072 })),
            (2, 4096, None, Ok(Rsa { bits: 4096 })),
            (2, 5000, None, Ok(Rsa { bits: 8192 })),
            (2, 8192, None, Ok(Rsa { bits: 8192 })),
            (2, 16384, None, Err("at least 16384 bits")),
            (4, 2048, Some("RSA"), Ok(Rsa { bits: 2048 })),
            (4, 256, Some("ECDSA_P256"), Ok(EcdsaP256)),
            (3, 384, Some("ecdsa_p384"), Ok(EcdsaP384)),
            (4, 521, Some("ECDSA_P521"), Err("ECDSA_P521")),
            (4, 256, Some("ECDH_P256"), Err("ECDH_P256")),
            // v2 templates have plain OIDs there: the triplet is ignored.
            (2, 2048, Some("ECDSA_P256"), Ok(Rsa { bits: 2048 })),
        ];
        for (schema, min, alg, want) in cases {
            let got = KeyAlgorithm::for_template(&template(*schema, *min, *alg));
            match (want, got) {
                (Ok(w), Ok(g)) => assert_eq!(*w, g, "{schema} {min} {alg:?}"),
                (Err(text), Err(e)) => {
                    assert!(e.to_string().contains(text), "{e}");
                    assert!(e.to_string().contains("template T"), "{e}");
                }
                (w, g) => panic!("{schema} {min} {alg:?}: wanted {w:?}, got {g:?}"),
            }
        }
    }

    #[test]
    fn generated_keys_satisfy_the_template_minimum() {
        for (schema, min, alg) in [
            (2, 3000, None),
            (2, 1024, None),
            (4, 256, Some("ECDSA_P256")),
        ] {
            let t = template(schema, min, alg);
            let made = KeyAlgorithm::for_template(&t).unwrap();
            let min = KeyAlgorithm::template_minimum(&t).unwrap();
            assert!(made.satisfies(&min), "{made} vs {min}");
        }
        assert_eq!(
            KeyAlgorithm::template_minimum(&template(2, 3000, None)).unwrap(),
            KeyAlgorithm::Rsa { bits: 3000 }
        );
    }

    #[test]
    fn satisfies_table() {
        use KeyAlgorithm::*;
        let cases = [
            (Rsa { bits: 2048 }, Rsa { bits: 2048 }, true),
            (Rsa { bits: 4096 }, Rsa { bits: 2048 }, true),
            (Rsa { bits: 2048 }, Rsa { bits: 3072 }, false),
            (EcdsaP256, EcdsaP256, true),
            (EcdsaP384, EcdsaP256, true),
            (EcdsaP256, EcdsaP384, false),
            (Rsa { bits: 4096 }, EcdsaP256, false),
            (EcdsaP384, Rsa { bits: 2048 }, false),
        ];
        for (have, want, ok) in cases {
            assert_eq!(have.satisfies(&want), ok, "{have} satisfies {want}");
        }
    }

    #[test]
    fn describe_and_bits() {
        assert_eq!(KeyAlgorithm::Rsa { bits: 2048 }.describe(), "RSA 2048");
        assert_eq!(KeyAlgorithm::EcdsaP256.describe(), "ECDSA P-256");
        assert_eq!(KeyAlgorithm::EcdsaP384.to_string(), "ECDSA P-384");
        assert_eq!(KeyAlgorithm::EcdsaP384.bits(), 384);
        assert_eq!(KeyAlgorithm::Rsa { bits: 3072 }.bits(), 3072);
    }

    #[test]
    fn modulus_bits_counts_significant_bits() {
        assert_eq!(modulus_bits(&[0x00, 0x80, 0x00]), 16);
        assert_eq!(modulus_bits(&[0x01, 0x00]), 9);
        assert_eq!(modulus_bits(&[0x00, 0x00]), 0);
        assert_eq!(modulus_bits(&[]), 0);
    }

    #[test]
    fn generate_each_algorithm_and_round_trip() {
        for alg in [
            KeyAlgorithm::Rsa { bits: 2048 },
            KeyAlgorithm::Rsa { bits: 3072 },
            KeyAlgorithm::EcdsaP256,
            KeyAlgorithm::EcdsaP384,
        ] {
            let key = PrivateKey::generate(alg).unwrap();
            assert_eq!(key.algorithm(), alg);
            assert_eq!(KeyAlgorithm::from_spki(&key.public_key_der()).unwrap(), alg);
            let want_oid = match alg {
                KeyAlgorithm::Rsa { .. } => oid::RSA_ENCRYPTION,
                _ => oid::EC_PUBLIC_KEY,
            };
            assert_eq!(pkcs8_algorithm_oid(key.pkcs8_der()).unwrap(), want_oid);
            let again = PrivateKey::from_pem(key.to_pem().as_bytes()).unwrap();
            assert_eq!(again.pkcs8_der(), key.pkcs8_der());
            assert_eq!(again.public_key_der(), key.public_key_der());
            let rc = key.rcgen_key_pair().unwrap();
            use rcgen::PublicKeyData as _;
            assert_eq!(rc.subject_public_key_info(), key.public_key_der(), "{alg}");
            assert!(!format!("{key:?}").contains(&format!("{:?}", &key.pkcs8_der()[..8])));
        }
        let err = PrivateKey::generate(KeyAlgorithm::Rsa { bits: 3000 }).unwrap_err();
        assert!(err.to_string().contains("RSA 3000"), "{err}");
    }

    #[test]
    fn signature_algorithm_der_matches_der_encoding() {
        use der::Encode;
        use der::asn1::ObjectIdentifier;
        let rsa = spki::AlgorithmIdentifierOwned {
            oid: ObjectIdentifier::new_unwrap(oid::SHA256_WITH_RSA),
            parameters: Some(der::Any::null()),
        };
        assert_eq!(rsa.to_der().unwrap(), ALG_SHA256_WITH_RSA);
        for (o, bytes) in [
            (oid::ECDSA_WITH_SHA256, ALG_ECDSA_WITH_SHA256),
            (oid::ECDSA_WITH_SHA384, ALG_ECDSA_WITH_SHA384),
        ] {
            let ec = spki::AlgorithmIdentifierOwned {
                oid: ObjectIdentifier::new_unwrap(o),
                parameters: None,
            };
            assert_eq!(ec.to_der().unwrap(), bytes);
        }
    }

    #[test]
    fn sign_verify_round_trip_and_failures() {
        let msg = b"the request to sign";
        for alg in [
            KeyAlgorithm::Rsa { bits: 2048 },
            KeyAlgorithm::EcdsaP256,
            KeyAlgorithm::EcdsaP384,
        ] {
            let key = PrivateKey::generate(alg).unwrap();
            let other = PrivateKey::generate(alg).unwrap();
            let sig = key.sign(msg).unwrap();
            let so = alg.signature_algorithm_oid();
            verify_signature(&key.public_key_der(), so, msg, &sig).unwrap();
            verify_signature_with_digest(
                &key.public_key_der(),
                alg.digest_algorithm_oid(),
                so,
                msg,
                &sig,
            )
            .unwrap();
            let bare = match alg {
                KeyAlgorithm::Rsa { .. } => oid::RSA_ENCRYPTION,
                _ => oid::EC_PUBLIC_KEY,
            };
            verify_signature_with_digest(
                &key.public_key_der(),
                alg.digest_algorithm_oid(),
                bare,
                msg,
                &sig,
            )
            .unwrap();
            // Wrong key.
            let e = verify_signature(&other.public_key_der(), so, msg, &sig).unwrap_err();
            assert!(matches!(e, PkiError::Signature(_)), "{e}");
            // Flipped bit in the message and in the signature.
            let mut m2 = msg.to_vec();
            m2[0] ^= 1;
            assert!(verify_signature(&key.public_key_der(), so, &m2, &sig).is_err());
            let mut s2 = sig.clone();
            let last = s2.len() - 1;
            s2[last / 2] ^= 0x10;
            assert!(verify_signature(&key.public_key_der(), so, msg, &s2).is_err());
            // Wrong hash named.
            let wrong = match alg {
                KeyAlgorithm::Rsa { .. } => oid::SHA384_WITH_RSA,
                KeyAlgorithm::EcdsaP256 => oid::ECDSA_WITH_SHA384,
                KeyAlgorithm::EcdsaP384 => oid::ECDSA_WITH_SHA256,
            };
            assert!(verify_signature(&key.public_key_der(), wrong, msg, &sig).is_err());
        }
    }

    #[test]
    fn refused_algorithms_say_why() {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let spki = key.public_key_der();
        let cases = [
            (oid::SHA1_WITH_RSA, "SHA-1"),
            (oid::ECDSA_WITH_SHA1, "SHA-1"),
            (oid::RSASSA_PSS, "RSA-PSS"),
            ("1.2.3.4", "unsupported signature algorithm 1.2.3.4"),
            (oid::SHA256_WITH_RSA, "cannot come from an ECDSA P-256 key"),
        ];
        for (o, text) in cases {
            let e = verify_signature(&spki, o, b"m", b"s").unwrap_err();
            assert!(e.to_string().contains(text), "{o}: {e}");
        }
        let e =
            verify_signature_with_digest(&spki, oid::SHA384, oid::ECDSA_WITH_SHA256, b"m", b"s")
                .unwrap_err();
        assert!(e.to_string().contains("SHA-384"), "{e}");
        let e = verify_signature_with_digest(&spki, oid::SHA1, oid::EC_PUBLIC_KEY, b"m", b"s")
            .unwrap_err();
        assert!(e.to_string().contains("SHA-1"), "{e}");
        assert!(verify_signature(b"\x30\x00", oid::SHA256_WITH_RSA, b"m", b"s").is_err());
    }

    /// Runs the openssl command, failing the test with its stderr.
    pub(crate) fn openssl(args: &[&str]) -> Vec<u8> {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("the openssl command is needed by this test");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    #[test]
    fn reads_openssl_keys_in_every_format() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
        // PKCS#8 RSA 3000 bits (a size we cannot generate but do accept).
        openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:3000",
            "-out",
            &p("rsa.pem"),
        ]);
        let rsa8 = std::fs::read(p("rsa.pem")).unwrap();
        let k = PrivateKey::from_pem(&rsa8).unwrap();
        assert_eq!(k.algorithm(), KeyAlgorithm::Rsa { bits: 3000 });
        // PKCS#1 of the same key.
        openssl(&[
            "rsa",
            "-in",
            &p("rsa.pem"),
            "-traditional",
            "-out",
            &p("rsa1.pem"),
        ]);
        let rsa1 = std::fs::read(p("rsa1.pem")).unwrap();
        assert!(String::from_utf8_lossy(&rsa1).contains("BEGIN RSA PRIVATE KEY"));
        let k1 = PrivateKey::from_pem(&rsa1).unwrap();
        assert_eq!(k1.public_key_der(), k.public_key_der());
        // SEC1 with EC PARAMETERS before it, both curves.
        for (curve, alg) in [
            ("prime256v1", KeyAlgorithm::EcdsaP256),
            ("secp384r1", KeyAlgorithm::EcdsaP384),
        ] {
            let out = openssl(&["ecparam", "-name", curve, "-genkey"]);
            let text = String::from_utf8_lossy(&out);
            assert!(text.contains("EC PARAMETERS") && text.contains("EC PRIVATE KEY"));
            let k = PrivateKey::from_pem(&out).unwrap();
            assert_eq!(k.algorithm(), alg);
            // Our PKCS#8 is readable by openssl and has the same public key.
            std::fs::write(p("ec8.pem"), k.to_pem()).unwrap();
            let pubout = openssl(&["pkey", "-in", &p("ec8.pem"), "-pubout", "-outform", "DER"]);
            assert_eq!(pubout, k.public_key_der());
        }
        // P-521 is named, not reported as garbage.
        let out = openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-521",
        ]);
        let e = PrivateKey::from_pem(&out).unwrap_err();
        assert!(e.to_string().contains("P-521"), "{e}");
        // Encrypted keys are refused with a reason.
        let out = openssl(&[
            "pkcs8",
            "-topk8",
            "-in",
            &p("rsa.pem"),
            "-passout",
            "pass:x",
            "-v2",
            "aes-128-cbc",
        ]);
        let e = PrivateKey::from_pem(&out).unwrap_err();
        assert!(e.to_string().contains("encrypted"), "{e}");
        let e = PrivateKey::from_pem(b"nothing here").unwrap_err();
        assert!(e.to_string().contains("no PRIVATE KEY"), "{e}");
    }

    #[test]
    fn from_spki_errors() {
        let cases: &[(&[u8], &str)] = &[(b"", "malformed"), (b"\x30\x03\x02\x01\x00", "malformed")];
        for (der, text) in cases {
            let e = KeyAlgorithm::from_spki(der).unwrap_err();
            assert!(e.to_string().contains(text), "{e}");
        }
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let mut spki = key.public_key_der();
        spki.push(0);
        let e = KeyAlgorithm::from_spki(&spki).unwrap_err();
        assert!(e.to_string().contains("1 bytes after"), "{e}");
        let e = PrivateKey::from_pkcs8_der(b"\x30\x00").unwrap_err();
        assert!(e.to_string().contains("PKCS#8"), "{e}");
    }
}
