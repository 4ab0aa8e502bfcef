//! Dynamic challenges in the partner-CA style: the management side asks
//! the CA for a challenge bound to the request it expects (subject, DNS
//! SANs, key usage); the CA seals that binding with AES-256-GCM under a key
//! only it holds and signs the sealed text with the RA signing key. On
//! PKIOperation the signature is checked, the binding opened, and the CSR
//! compared with it ([`judge`], pure); the challenge is then used once.
//!
//! Wire form: `v1.<base64url(nonce | ciphertext)>.<base64url(signature)>`.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::challenge::Diagnostic;
use crate::pki::keys::{PrivateKey, verify_signature};

/// sha256WithRSAEncryption: the RA signing key is RSA.
const SIGNATURE_OID: &str = "1.2.840.113549.1.1.11";
/// Longest challenge read (a PKCS#9 challengePassword is a DirectoryString
/// without a practical limit; ours are about a kilobyte).
pub const MAX_CHALLENGE_BYTES: usize = 8 * 1024;

/// What the request must be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    /// The subject as RFC 4514 text, as the CSR parser renders it.
    pub subject: String,
    /// DNS names of the subjectAltName, compared as sets, case-insensitive.
    #[serde(default)]
    pub dns_names: Vec<String>,
    /// Key usage bits (x509-parser's numbering), `None`: no extension.
    #[serde(default)]
    pub key_usage: Option<u16>,
}

/// The sealed content of a challenge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Unique per challenge (its single use is keyed on the whole text).
    pub id: String,
    pub binding: Binding,
    pub issued_at: i64,
    pub expires_at: i64,
}

/// Seals and signs `claims`.
pub fn seal(claims: &Claims, aead_key: &[u8; 32], signer: &PrivateKey) -> Result<String, String> {
    let key = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, aead_key).map_err(|_| "bad sealing key".to_string())?,
    );
    let mut nonce = [0u8; 12];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| "no randomness".to_string())?;
    let mut data = serde_json::to_vec(claims).map_err(|e| e.to_string())?;
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(b"v1"),
        &mut data,
    )
    .map_err(|_| "sealing failed".to_string())?;
    let mut sealed = nonce.to_vec();
    sealed.extend_from_slice(&data);
    let body = format!("v1.{}", URL_SAFE_NO_PAD.encode(&sealed));
    let signature = signer.sign(body.as_bytes()).map_err(|e| e.to_string())?;
    Ok(format!("{body}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

/// Whether `text` has the form of a dynamic challenge (else it is taken
/// as a one-time password).
pub fn looks_dynamic(text: &str) -> bool {
    text.starts_with("v1.") && text.matches('.').count() == 2
}

/// Checks the signature with `signer_spki` (the RA signing certificate's
/// key) and opens the sealing. Any failure is a forgery: the text was not
/// made by this CA, or was changed.
pub fn open(text: &str, aead_key: &[u8; 32], signer_spki: &[u8]) -> Result<Claims, String> {
    if text.len() > MAX_CHALLENGE_BYTES {
        return Err(format!(
            "{} bytes is longer than a challenge is",
            text.len()
        ));
    }
    let (body, signature) = text
        .rsplit_once('.')
        .ok_or_else(|| "not a v1 challenge".to_string())?;
    let sealed = body
        .strip_prefix("v1.")
        .ok_or_else(|| "not a v1 challenge".to_string())?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| "the signature is not base64url".to_string())?;
    verify_signature(signer_spki, SIGNATURE_OID, body.as_bytes(), &signature)
        .map_err(|_| "the signature does not verify".to_string())?;
    let mut sealed = URL_SAFE_NO_PAD
        .decode(sealed)
        .map_err(|_| "the sealed part is not base64url".to_string())?;
    if sealed.len() < 12 + 16 {
        return Err("the sealed part is too short".into());
    }
    let mut ciphertext = sealed.split_off(12);
    let nonce: [u8; 12] = sealed
        .try_into()
        .map_err(|_| "the nonce is not 12 bytes".to_string())?;
    let key = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, aead_key).map_err(|_| "bad sealing key".to_string())?,
    );
    let plain = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(b"v1"),
            &mut ciphertext,
        )
        .map_err(|_| "the sealing does not open with this CA's key".to_string())?;
    serde_json::from_slice(plain).map_err(|e| format!("the sealed content: {e}"))
}

/// The verification decision, pure: the opened challenge (or why it did
/// not open), whether another transaction used it, what the CSR asks for,
/// and `now` (Unix seconds). Order: forgery, reuse, expiry, then the
/// binding (subject, SANs, key usage).
pub fn judge(
    opened: &Result<Claims, String>,
    used_by_other: bool,
    csr: &Binding,
    now: i64,
) -> Diagnostic {
    let Ok(claims) = opened else {
        return Diagnostic::Forged;
    };
    if used_by_other {
        return Diagnostic::Reused;
    }
    if now >= claims.expires_at || now < claims.issued_at - 300 {
        return Diagnostic::Expired;
    }
    let b = &claims.binding;
    if !b.subject.trim().eq_ignore_ascii_case(csr.subject.trim()) {
        return Diagnostic::SubjectMismatch;
    }
    let set = |v: &[String]| {
        let mut s: Vec<String> = v.iter().map(|n| n.to_ascii_lowercase()).collect();
        s.sort();
        s.dedup();
        s
    };
    if set(&b.dns_names) != set(&csr.dns_names) {
        return Diagnostic::SanMismatch;
    }
    if b.key_usage != csr.key_usage {
        return Diagnostic::KeyUsageMismatch;
    }
    Diagnostic::Verified
}

/// The sealing key, 32 random bytes in the NDES folder (0600), made on
/// first use.
pub fn sealing_key(path: &std::path::Path) -> Result<[u8; 32], String> {
    if let Ok(bytes) = std::fs::read(path) {
        return bytes
            .try_into()
            .map_err(|_| format!("{}: not a 32-byte key", path.display()));
    }
    let mut key = [0u8; 32];
    aws_lc_rs::rand::fill(&mut key).map_err(|_| "no randomness".to_string())?;
    crate::store::fsutil::Fs::default()
        .replace(path, &key, crate::store::fsutil::KEY_MODE)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::keys::KeyAlgorithm;

    fn binding() -> Binding {
        Binding {
            subject: "CN=router1.corp.example".into(),
            dns_names: vec!["router1.corp.example".into()],
            key_usage: Some(5),
        }
    }

    #[test]
    fn sealed_challenges_open_only_unchanged_and_with_our_keys() {
        let key = PrivateKey::generate(KeyAlgorithm::Rsa { bits: 2048 }).unwrap();
        let other = PrivateKey::generate(KeyAlgorithm::Rsa { bits: 2048 }).unwrap();
        let aead = [7u8; 32];
        let claims = Claims {
            id: "1".into(),
            binding: binding(),
            issued_at: 0,
            expires_at: 60,
        };
        let text = seal(&claims, &aead, &key).unwrap();
        assert!(looks_dynamic(&text));
        assert_eq!(open(&text, &aead, &key.public_key_der()).unwrap(), claims);
        // Another signer, another sealing key, a changed byte: forgeries.
        assert!(open(&text, &aead, &other.public_key_der()).is_err());
        let resigned = seal(&claims, &[8u8; 32], &key).unwrap();
        assert!(open(&resigned, &aead, &key.public_key_der()).is_err());
        let mut changed = text.clone().into_bytes();
        changed[5] = if changed[5] == b'A' { b'B' } else { b'A' };
        assert!(
            open(
                std::str::from_utf8(&changed).unwrap(),
                &aead,
                &key.public_key_der()
            )
            .is_err()
        );
        assert!(open("v1.x.y", &aead, &key.public_key_der()).is_err());
    }

    #[test]
    fn verification_decisions() {
        let claims = Claims {
            id: "1".into(),
            binding: binding(),
            issued_at: 1000,
            expires_at: 2000,
        };
        let ok: Result<Claims, String> = Ok(claims);
        let forged: Result<Claims, String> = Err("the signature does not verify".into());
        let with = |f: fn(&mut Binding)| {
            let mut b = binding();
            f(&mut b);
            b
        };
        type Opened = Result<Claims, String>;
        let cases: Vec<(&Opened, bool, Binding, i64, Diagnostic)> = vec![
            (&ok, false, binding(), 1500, Diagnostic::Verified),
            (
                &ok,
                false,
                with(|b| b.subject = "cn=ROUTER1.corp.example".into()),
                1500,
                Diagnostic::Verified,
            ),
            (
                &ok,
                false,
                with(|b| b.dns_names = vec!["ROUTER1.corp.example".into()]),
                1500,
                Diagnostic::Verified,
            ),
            (&forged, false, binding(), 1500, Diagnostic::Forged),
            (&forged, true, binding(), 5000, Diagnostic::Forged),
            (&ok, true, binding(), 1500, Diagnostic::Reused),
            (&ok, false, binding(), 2000, Diagnostic::Expired),
            (&ok, false, binding(), 100, Diagnostic::Expired),
            (
                &ok,
                false,
                with(|b| b.subject = "CN=other".into()),
                1500,
                Diagnostic::SubjectMismatch,
            ),
            (
                &ok,
                false,
                with(|b| b.dns_names.push("extra.corp.example".into())),
                1500,
                Diagnostic::SanMismatch,
            ),
            (
                &ok,
                false,
                with(|b| b.dns_names.clear()),
                1500,
                Diagnostic::SanMismatch,
            ),
            (
                &ok,
                false,
                with(|b| b.key_usage = Some(1)),
                1500,
                Diagnostic::KeyUsageMismatch,
            ),
            (
                &ok,
                false,
                with(|b| b.key_usage = None),
                1500,
                Diagnostic::KeyUsageMismatch,
            ),
        ];
        for (opened, used, csr, now, want) in cases {
            assert_eq!(judge(opened, used, &csr, now), want, "{csr:?} at {now}");
        }
    }
}
