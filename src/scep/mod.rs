//! SCEP (RFC 8894), both sides: the messages are pure and shared by the
//! client and the emulated NDES; `client` speaks HTTP(S) to a SCEP server.
//!
//! - `caps`: GetCACaps and the algorithms they allow.
//! - `cacert`: GetCACert (CA alone, or RA + CA in a certs-only PKCS#7) and
//!   the chain check against the profile's root.
//! - `request`: the PKCS#10 with challengePassword, and the transient
//!   self-signed certificate.
//! - `envelope`: pkcsPKIEnvelope (CMS EnvelopedData, RSA key transport,
//!   AES-CBC or 3DES-CBC).
//! - `message`: pkiMessage (SignedData with the SCEP attributes).
//! - `exchange`: one transaction (PKCSReq, RenewalReq, CertPoll) as pure
//!   build and read steps.
//! - `names`: subject and SAN formats with `{{variables}}` (CertStrToName
//!   rules), filled in from the account and the host.
//! - `client`: GetCACaps, GetCACert and PKIOperation over GET or POST.
//! - `challenge_fetch`: one-time challenges from an NDES admin page and
//!   dynamic challenges from the CA's validation endpoint.

pub mod cacert;
pub mod caps;
pub mod challenge;
pub mod challenge_fetch;
pub mod client;
pub mod envelope;
pub mod exchange;
pub mod message;
pub mod names;
pub mod profile;
pub mod request;

/// What went wrong in a SCEP exchange; each names the step.
#[derive(Debug, thiserror::Error)]
pub enum ScepError {
    #[error("GetCACaps: {0}")]
    Caps(String),
    #[error("GetCACert: {0}")]
    CaCert(String),
    #[error("pkcsPKIEnvelope: {0}")]
    Envelope(String),
    #[error("pkiMessage: {0}")]
    Message(String),
    #[error("the certificate request: {0}")]
    Request(String),
    #[error("the reply: {0}")]
    Reply(String),
    #[error("{url}: {what}")]
    Transport { url: String, what: String },
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::pki::keys::{KeyAlgorithm, PrivateKey};
    use crate::scep::request::{NameAttribute, transient_certificate};

    /// An RSA key and a self-signed certificate for it.
    pub fn rsa_identity(cn: &str) -> (PrivateKey, Vec<u8>) {
        let key = PrivateKey::generate(KeyAlgorithm::Rsa { bits: 2048 }).unwrap();
        let cert = transient_certificate(
            &key,
            &[NameAttribute {
                oid: "2.5.4.3".into(),
                value: cn.into(),
            }],
            std::time::SystemTime::now(),
        )
        .unwrap();
        (key, cert)
    }

    /// Runs `f` with a directory holding `key.pem` and `cert.pem` of a fresh
    /// identity, for tests that hand our output to OpenSSL.
    pub fn with_openssl(f: impl FnOnce(&std::path::Path, &PrivateKey, &[u8])) {
        let dir = tempfile::tempdir().unwrap();
        let (key, cert) = rsa_identity("openssl-peer");
        std::fs::write(dir.path().join("key.pem"), key.to_pem()).unwrap();
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &cert)
        );
        std::fs::write(dir.path().join("cert.pem"), pem).unwrap();
        f(dir.path(), &key, &cert);
    }
}
