//! Reading certificates and keys liberally, writing them plainly.
//!
//! Certificates copied in by hand come in many shapes: PEM with LF or CRLF,
//! several PEM blocks (a chain, or a key before the certificate), or DER. The
//! first `CERTIFICATE` block is the certificate. Keys may be PKCS#8, PKCS#1
//! (`RSA PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`), possibly after an
//! `EC PARAMETERS` block. Problems come back as text for people.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

/// One `-----BEGIN <label>-----` … `-----END <label>-----` block.
#[derive(Debug)]
pub(crate) struct PemBlock {
    pub label: String,
    /// The decoded content, or why it could not be decoded.
    pub der: Result<Vec<u8>, String>,
}

/// Whether the bytes look like PEM text (rather than DER).
pub(crate) fn is_pem(bytes: &[u8]) -> bool {
    bytes.windows(11).any(|w| w == b"-----BEGIN ")
}

/// The PEM blocks of a text, in order. Lines outside blocks and header lines
/// (`Key: value`) inside blocks are ignored; CR and other whitespace too.
/// A block without its END line is reported as undecodable.
pub(crate) fn blocks(bytes: &[u8]) -> Vec<PemBlock> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            if let Some((label, _)) = current.take() {
                out.push(PemBlock {
                    der: Err(format!("the {label} block has no END line")),
                    label,
                });
            }
            current = Some((label.to_string(), String::new()));
        } else if let Some(label) = line
            .strip_prefix("-----END ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            if let Some((begin, body)) = current.take() {
                let der = if begin != label {
                    Err(format!("BEGIN {begin} ends with END {label}"))
                } else {
                    STANDARD
                        .decode(body.as_bytes())
                        .map_err(|e| format!("the {begin} block is not valid base64: {e}"))
                };
                out.push(PemBlock { label: begin, der });
            }
        } else if let Some((_, body)) = current.as_mut()
            && !line.contains(':')
        {
            body.extend(line.chars().filter(|c| !c.is_whitespace()));
        }
    }
    if let Some((label, _)) = current {
        out.push(PemBlock {
            der: Err(format!(
                "the {label} block has no END line (truncated file?)"
            )),
            label,
        });
    }
    out
}

/// The DER of the certificate in a file: the first CERTIFICATE block of PEM
/// text, or the bytes themselves when they are not PEM.
pub(crate) fn certificate_der(bytes: &[u8]) -> Result<Vec<u8>, String> {
    if bytes.is_empty() {
        return Err("the file is empty".into());
    }
    if !is_pem(bytes) {
        return Ok(bytes.to_vec());
    }
    let all = blocks(bytes);
    match all
        .iter()
        .find(|b| b.label == "CERTIFICATE" || b.label == "X509 CERTIFICATE")
    {
        Some(b) => b.der.clone(),
        None if all.is_empty() => Err("no complete PEM block".into()),
        None => Err(format!(
            "no CERTIFICATE block (found {})",
            all.iter()
                .map(|b| b.label.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// PEM text of one DER object, 64 characters a line, LF line ends.
pub(crate) fn encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The public key of a private key file, as the raw `subjectPublicKey` bits
/// (RSAPublicKey DER for RSA, the point for EC), which is what a certificate's
/// SubjectPublicKeyInfo carries whatever its algorithm parameters.
pub(crate) fn key_public_bits(bytes: &[u8]) -> Result<Vec<u8>, String> {
    if bytes.is_empty() {
        return Err("the key file is empty".into());
    }
    // A key on a token: its recorded public key, so that pairing works
    // without opening the token.
    if crate::pki::keyref::KeyReference::is_reference(bytes) {
        let reference = crate::pki::keyref::KeyReference::parse(bytes)?;
        return spki_bits(&reference.public_key)
            .ok_or_else(|| "key reference: unreadable public_key".to_string());
    }
    let der = if is_pem(bytes) {
        let all = blocks(bytes);
        let block = all
            .into_iter()
            .find(|b| b.label.ends_with("PRIVATE KEY"))
            .ok_or_else(|| "no PRIVATE KEY block".to_string())?;
        if block.label == "ENCRYPTED PRIVATE KEY" {
            return Err("the key is encrypted; autoenroll needs an unencrypted key".into());
        }
        block.der?
    } else {
        bytes.to_vec()
    };
    let pair = rcgen::KeyPair::try_from(der.as_slice()).map_err(|e| {
        format!("not a private key autoenroll can use (PKCS#8, PKCS#1 RSA or SEC1 EC): {e}")
    })?;
    Ok(pair.public_key_raw().to_vec())
}

/// The raw `subjectPublicKey` bits of a SubjectPublicKeyInfo DER.
pub(crate) fn spki_bits(spki_der: &[u8]) -> Option<Vec<u8>> {
    SubjectPublicKeyInfo::from_der(spki_der)
        .ok()
        .map(|(_, spki)| spki.subject_public_key.data.to_vec())
}

/// Whether the key file holds the private key of the certificate's public key
/// (`spki_der`: the certificate's SubjectPublicKeyInfo). Err: the key cannot be read.
pub(crate) fn key_matches(spki_der: &[u8], key: &[u8]) -> Result<bool, String> {
    let key_bits = key_public_bits(key)?;
    Ok(spki_bits(spki_der).is_some_and(|bits| bits == key_bits))
}
