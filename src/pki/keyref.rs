//! What the store keeps in place of a private key that never leaves a
//! PKCS#11 token: where the key lives (module, token, object id), where its
//! PIN is read from, and its public key.
//!
//! The public key is kept so that the store and the planner pair a
//! certificate with its key exactly as they do for a key file, without
//! opening the token. The file holds no secret (the PIN stays in its own
//! 0600 file); it is still written 0600, like a key.
//!
//! ```toml
//! # A private key on a PKCS#11 token; the key itself never leaves it.
//! storage = "pkcs11"
//! module = "/usr/lib/softhsm/libsofthsm2.so"
//! token = "autoenroll"
//! id = "6f1c..."            # CKA_ID, hex
//! pin_file = "/etc/autoenroll/token.pin"
//! public_key = "MIIB..."    # SubjectPublicKeyInfo, base64 DER
//! ```

use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::keys::KeyAlgorithm;

/// Which token keys of a template are generated on, and how to log in to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSettings {
    /// The PKCS#11 module (`/usr/lib/softhsm/libsofthsm2.so`,
    /// `/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so`).
    pub module: PathBuf,
    /// The token's label (CK_TOKEN_INFO `label`, PKCS#11 3.0 section 3.2).
    pub token: String,
    /// A file readable only by its owner holding the user PIN on one line.
    pub pin_file: PathBuf,
}

/// A key on a token, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyReference {
    pub token: TokenSettings,
    /// CKA_ID of the key pair's objects (PKCS#11 3.0 section 4.7).
    pub id: Vec<u8>,
    /// SubjectPublicKeyInfo DER of the key pair.
    pub public_key: Vec<u8>,
}

/// The value of `storage` that marks a reference.
const STORAGE: &str = "pkcs11";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    storage: String,
    module: PathBuf,
    token: String,
    id: String,
    pin_file: PathBuf,
    public_key: String,
}

impl KeyReference {
    /// Whether stored key bytes are a reference rather than a key (a key
    /// file is PEM or DER, neither of which starts like this TOML).
    pub fn is_reference(bytes: &[u8]) -> bool {
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
        text.lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .is_some_and(|l| l.starts_with("storage"))
    }

    /// Reads a reference; the error says what is wrong, never quoting the file.
    pub fn parse(bytes: &[u8]) -> Result<KeyReference, String> {
        let text =
            std::str::from_utf8(bytes).map_err(|_| "key reference: not UTF-8 text".to_string())?;
        let raw: Raw = toml::from_str(text).map_err(|e| {
            format!(
                "key reference: {} (expected storage, module, token, id, pin_file, public_key)",
                e.message().trim()
            )
        })?;
        if raw.storage != STORAGE {
            return Err(format!(
                "key reference: storage must be \"{STORAGE}\", found {:?}",
                raw.storage
            ));
        }
        let id = hex_decode(&raw.id).ok_or("key reference: id is not hexadecimal")?;
        if id.is_empty() {
            return Err("key reference: id is empty".into());
        }
        let public_key = STANDARD
            .decode(raw.public_key.trim())
            .map_err(|_| "key reference: public_key is not base64".to_string())?;
        KeyAlgorithm::from_spki(&public_key).map_err(|e| format!("key reference: {e}"))?;
        if raw.token.is_empty() {
            return Err("key reference: token (the token's label) is empty".into());
        }
        Ok(KeyReference {
            token: TokenSettings {
                module: raw.module,
                token: raw.token,
                pin_file: raw.pin_file,
            },
            id,
            public_key,
        })
    }

    /// The text the store writes.
    pub fn to_text(&self) -> String {
        let raw = Raw {
            storage: STORAGE.into(),
            module: self.token.module.clone(),
            token: self.token.token.clone(),
            id: hex_encode(&self.id),
            pin_file: self.token.pin_file.clone(),
            public_key: STANDARD.encode(&self.public_key),
        };
        let body = toml::to_string(&raw).unwrap_or_default();
        format!("# A private key on a PKCS#11 token; the key itself never leaves it.\n{body}")
    }

    /// Where the key is, for messages: `token "autoenroll" (module ...), id 6f1c...`.
    pub fn describe(&self) -> String {
        format!(
            "token {:?} of {}, object id {}",
            self.token.token,
            self.token.module.display(),
            hex_encode(&self.id)
        )
    }
}

pub(crate) fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::keys::PrivateKey;

    fn sample() -> KeyReference {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        KeyReference {
            token: TokenSettings {
                module: "/usr/lib/softhsm/libsofthsm2.so".into(),
                token: "autoenroll".into(),
                pin_file: "/etc/autoenroll/token.pin".into(),
            },
            id: vec![0x6f, 0x1c, 0x00, 0xff],
            public_key: key.public_key_der(),
        }
    }

    #[test]
    fn round_trip() {
        let r = sample();
        let text = r.to_text();
        assert!(KeyReference::is_reference(text.as_bytes()));
        assert_eq!(KeyReference::parse(text.as_bytes()).unwrap(), r);
    }

    #[test]
    fn a_key_file_is_not_a_reference() {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        assert!(!KeyReference::is_reference(key.to_pem().as_bytes()));
        assert!(!KeyReference::is_reference(key.pkcs8_der()));
        assert!(!KeyReference::is_reference(b""));
    }

    #[test]
    fn bad_references_are_named_not_quoted() {
        let good = sample().to_text();
        let cases: Vec<(String, &str)> = vec![
            (good.replace("pkcs11", "tpm"), "storage must be"),
            (good.replace("6f1c00ff", "zz"), "id is not hexadecimal"),
            (good.replace("6f1c00ff", ""), "id is empty"),
            (
                good.replace("token = \"autoenroll\"", "token = \"\""),
                "token",
            ),
            (
                good.replace("public_key = \"", "public_key = \"!"),
                "base64",
            ),
            (
                good.replace("public_key = \"", "public_key = \"AAAA"),
                "SubjectPublicKeyInfo",
            ),
            (format!("{good}extra = 1\n"), "unknown field"),
            ("storage = ".into(), "key reference"),
        ];
        for (text, wanted) in cases {
            let e = KeyReference::parse(text.as_bytes()).unwrap_err();
            assert!(e.contains(wanted), "{e} (wanted {wanted})");
            assert!(!e.contains("/etc/autoenroll"), "{e}");
        }
        assert!(KeyReference::parse(&[0xff, 0xfe]).is_err());
    }
}
