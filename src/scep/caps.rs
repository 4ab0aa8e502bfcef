//! GetCACaps (RFC 8894 3.5.2): what a SCEP server says it can do, and the
//! strongest algorithms a client may then use.

use super::ScepError;

/// Largest GetCACaps answer read; real servers send well under 200 bytes.
pub const MAX_CAPS_BYTES: usize = 8 * 1024;

/// Content-encryption algorithms of a pkcsPKIEnvelope (RFC 8894 3.2.1, 3.5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentCipher {
    /// aes128-CBC (RFC 3565 4.1): what the "AES" capability names.
    Aes128Cbc,
    /// aes256-CBC, read when a server answers with it.
    Aes256Cbc,
    /// aes192-CBC, read when a server answers with it.
    Aes192Cbc,
    /// des-ede3-cbc (RFC 3370 5.1), the "DES3" capability.
    DesEde3Cbc,
    /// Single DES, read only (old servers answer with it); never sent.
    DesCbc,
}

impl ContentCipher {
    pub fn describe(self) -> &'static str {
        match self {
            ContentCipher::Aes128Cbc => "AES-128-CBC",
            ContentCipher::Aes192Cbc => "AES-192-CBC",
            ContentCipher::Aes256Cbc => "AES-256-CBC",
            ContentCipher::DesEde3Cbc => "3DES-CBC",
            ContentCipher::DesCbc => "DES-CBC",
        }
    }
}

/// The capabilities of RFC 8894 3.5.2, as a server listed them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caps {
    pub aes: bool,
    pub des3: bool,
    pub get_next_ca_cert: bool,
    pub post_pki_operation: bool,
    pub renewal: bool,
    pub sha1: bool,
    pub sha256: bool,
    pub sha512: bool,
    pub scep_standard: bool,
    /// Keywords this client does not know, kept for diagnostics.
    pub unknown: Vec<String>,
}

impl Caps {
    /// Parses the body of a GetCACaps answer: one keyword a line (LF or
    /// CRLF), compared without regard to case (RFC 8894 3.5.2: "clients
    /// SHOULD use case-insensitive comparison"). Unknown keywords are kept
    /// aside and not an error (servers add their own). "SCEPStandard"
    /// implies AES, POSTPKIOperation and SHA-256.
    pub fn parse(body: &[u8]) -> Result<Caps, ScepError> {
        if body.len() > MAX_CAPS_BYTES {
            return Err(ScepError::Caps(format!(
                "{} bytes; a capability list is a few lines",
                body.len()
            )));
        }
        let text = std::str::from_utf8(body)
            .map_err(|e| ScepError::Caps(format!("not text (UTF-8): {e}")))?;
        let mut caps = Caps::default();
        for line in text.lines() {
            let word = line.trim();
            if word.is_empty() {
                continue;
            }
            if word.chars().any(|c| c.is_control()) {
                return Err(ScepError::Caps(format!(
                    "a keyword holds a control character: {:?}",
                    word.escape_debug().to_string()
                )));
            }
            match word.to_ascii_lowercase().as_str() {
                "aes" => caps.aes = true,
                "des3" => caps.des3 = true,
                "getnextcacert" => caps.get_next_ca_cert = true,
                "postpkioperation" => caps.post_pki_operation = true,
                "renewal" => caps.renewal = true,
                "sha-1" => caps.sha1 = true,
                "sha-256" => caps.sha256 = true,
                "sha-512" => caps.sha512 = true,
                "scepstandard" => {
                    caps.scep_standard = true;
                    caps.aes = true;
                    caps.post_pki_operation = true;
                    caps.sha256 = true;
                }
                _ if caps.unknown.len() < 32 => caps.unknown.push(word.chars().take(64).collect()),
                _ => {}
            }
        }
        Ok(caps)
    }

    /// The cipher for requests: AES where offered, else 3DES (RFC 8894
    /// 3.5.2); a server that offers neither gets nothing, since single DES is
    /// broken and never sent.
    pub fn content_cipher(&self) -> Result<ContentCipher, ScepError> {
        if self.aes {
            Ok(ContentCipher::Aes128Cbc)
        } else if self.des3 {
            Ok(ContentCipher::DesEde3Cbc)
        } else {
            Err(ScepError::Caps(
                "the server offers neither AES nor DES3; single DES is not used".into(),
            ))
        }
    }

    /// Whether a signature with SHA-256 is acceptable to the server. Servers
    /// that list no hash at all are old and take only MD5/SHA-1, which this
    /// client does not send.
    pub fn digest(&self) -> Result<(), ScepError> {
        if self.sha256 || self.sha512 {
            Ok(())
        } else {
            Err(ScepError::Caps(
                "the server does not offer SHA-256 (only MD5 or SHA-1, which are not used)".into(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (body, aes, des3, post, renewal, sha256, cipher)
    type Case = (
        &'static str,
        bool,
        bool,
        bool,
        bool,
        bool,
        Option<ContentCipher>,
    );

    #[test]
    fn table() {
        let cases: &[Case] = &[
            (
                "Renewal\nSHA-1\nSHA-256\nAES\nDES3\nSCEPStandard\nPOSTPKIOperation",
                true,
                true,
                true,
                true,
                true,
                Some(ContentCipher::Aes128Cbc),
            ),
            (
                "POSTPKIOperation\r\nRenewal\r\nSHA-256\r\nDES3\r\n",
                false,
                true,
                true,
                true,
                true,
                Some(ContentCipher::DesEde3Cbc),
            ),
            (
                "scepstandard",
                true,
                false,
                true,
                false,
                true,
                Some(ContentCipher::Aes128Cbc),
            ),
            ("", false, false, false, false, false, None),
            (
                "GetNextCACert\nfoo\n",
                false,
                false,
                false,
                false,
                false,
                None,
            ),
            (
                "  aes  \n",
                true,
                false,
                false,
                false,
                false,
                Some(ContentCipher::Aes128Cbc),
            ),
        ];
        for (body, aes, des3, post, renewal, sha256, cipher) in cases {
            let caps = Caps::parse(body.as_bytes()).unwrap();
            assert_eq!(caps.aes, *aes, "{body:?}");
            assert_eq!(caps.des3, *des3, "{body:?}");
            assert_eq!(caps.post_pki_operation, *post, "{body:?}");
            assert_eq!(caps.renewal, *renewal, "{body:?}");
            assert_eq!(caps.sha256, *sha256, "{body:?}");
            assert_eq!(caps.content_cipher().ok(), *cipher, "{body:?}");
        }
        assert_eq!(Caps::parse(b"GetNextCACert\nfoo").unwrap().unknown, ["foo"]);
    }

    #[test]
    fn refuses_garbage() {
        assert!(Caps::parse(&[0xff, 0xfe]).is_err());
        assert!(Caps::parse(b"AES\x07").is_err());
        assert!(Caps::parse(&vec![b'a'; MAX_CAPS_BYTES + 1]).is_err());
        assert!(Caps::parse(b"SHA-1").unwrap().digest().is_err());
    }
}
