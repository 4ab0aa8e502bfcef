//! The extensions that tie a certificate to its template (adcs.md section 3):
//! 1.3.6.1.4.1.311.21.7 (template OID, major and minor version; schema v2+) and
//! 1.3.6.1.4.1.311.20.2 (the v1 template name, a BMPString in real certificates,
//! a `SEQUENCE { UTF8String }` in one spec text: both are accepted).
//!
//! A certificate carrying neither is *foreign*: the engine never touches it.

use thiserror::Error;
use time::OffsetDateTime;
use x509_parser::asn1_rs::{Any, BmpString, FromDer, Oid, Tag, Utf8String};
use x509_parser::prelude::X509Certificate;

/// OID of the template information extension ([MS-WCCE] 2.2.2.7.7.2).
pub const OID_TEMPLATE_INFORMATION: &str = "1.3.6.1.4.1.311.21.7";
/// OID of the v1 template name extension ([MS-WCCE] 2.2.2.7.7.1).
pub const OID_TEMPLATE_NAME: &str = "1.3.6.1.4.1.311.20.2";

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PkiError {
    #[error("not a DER X.509 certificate: {0}")]
    Certificate(String),
    #[error("extension {oid}: {problem}")]
    Extension { oid: &'static str, problem: String },
    /// A key that cannot be generated, read or used.
    #[error("key: {0}")]
    Key(String),
    /// A signature that does not verify, or an algorithm that is not accepted.
    #[error("signature: {0}")]
    Signature(String),
    /// A malformed or unacceptable PKCS#10 certificate request.
    #[error("certificate request: {0}")]
    Request(String),
    /// A malformed or unacceptable CMS message.
    #[error("CMS: {0}")]
    Cms(String),
}

/// Which template a certificate was issued from, as the certificate says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateIdentity {
    /// From 1.3.6.1.4.1.311.21.7.
    pub oid: Option<String>,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// From 1.3.6.1.4.1.311.20.2: the template's cn.
    pub name: Option<String>,
}

impl TemplateIdentity {
    /// Whether this identity names the template with this OID or cn.
    pub fn matches(&self, oid: Option<&str>, cn: &str) -> bool {
        match (&self.oid, oid) {
            (Some(a), Some(b)) if a == b => return true,
            _ => {}
        }
        self.name
            .as_deref()
            .is_some_and(|n| n.eq_ignore_ascii_case(cn))
    }
}

/// The facts of a certificate the engine decides on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    /// SHA-1 of the DER, lower-case hex: the Windows thumbprint, used to name
    /// store entries.
    pub thumbprint: String,
    /// Serial number, lower-case hex without leading zeros (as CRLs are matched).
    pub serial: String,
    /// Issuer and subject in RFC 4514 text.
    pub issuer: String,
    pub subject: String,
    /// DER of the SubjectPublicKeyInfo, to pair the certificate with its key.
    pub public_key: Vec<u8>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// None for a foreign certificate.
    pub template: Option<TemplateIdentity>,
}

impl CertificateInfo {
    /// Parses a DER certificate; errors name what was wrong.
    pub fn from_der(der: &[u8]) -> Result<Self, PkiError> {
        let (rest, cert) =
            X509Certificate::from_der(der).map_err(|e| PkiError::Certificate(e.to_string()))?;
        if !rest.is_empty() {
            return Err(PkiError::Certificate(format!(
                "{} bytes after the certificate",
                rest.len()
            )));
        }
        let mut identity = TemplateIdentity::default();
        let mut found = false;
        for ext in cert.extensions() {
            let oid = ext.oid.to_id_string();
            if oid == OID_TEMPLATE_INFORMATION {
                let (o, major, minor) = decode_template_information(ext.value)?;
                identity.oid = Some(o);
                identity.major = major;
                identity.minor = minor;
                found = true;
            } else if oid == OID_TEMPLATE_NAME {
                identity.name = Some(decode_template_name(ext.value)?);
                found = true;
            }
        }
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, der);
        Ok(CertificateInfo {
            thumbprint: hex(digest.as_ref()),
            serial: serial_hex(cert.raw_serial()),
            issuer: cert.issuer().to_string(),
            subject: cert.subject().to_string(),
            public_key: cert.public_key().raw.to_vec(),
            not_before: cert.validity().not_before.to_datetime(),
            not_after: cert.validity().not_after.to_datetime(),
            template: found.then_some(identity),
        })
    }

    /// Whether the certificate is inside its validity at `now`.
    pub fn is_valid_at(&self, now: OffsetDateTime) -> bool {
        self.not_before <= now && now < self.not_after
    }
}

/// Lower-case hex of bytes.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A serial number as hex without leading zero bytes, so that the certificate's
/// and a CRL's encodings of one serial compare equal.
pub fn serial_hex(raw: &[u8]) -> String {
    let trimmed: &[u8] = match raw.iter().position(|b| *b != 0) {
        Some(i) => &raw[i..],
        None => &[0],
    };
    hex(trimmed)
}

/// `SEQUENCE { templateID OID, templateMajorVersion INTEGER OPTIONAL,
/// templateMinorVersion INTEGER OPTIONAL }`.
pub fn decode_template_information(
    value: &[u8],
) -> Result<(String, Option<u32>, Option<u32>), PkiError> {
    let bad = |problem: String| PkiError::Extension {
        oid: OID_TEMPLATE_INFORMATION,
        problem,
    };
    let (rest, seq) = Any::from_der(value).map_err(|e| bad(e.to_string()))?;
    if seq.tag() != Tag::Sequence || !rest.is_empty() {
        return Err(bad("expected one SEQUENCE".into()));
    }
    let (mut inner, oid) =
        Oid::from_der(seq.data).map_err(|e| bad(format!("template OID: {e}")))?;
    let mut versions = [None, None];
    for (slot, what) in versions.iter_mut().zip(["major", "minor"]) {
        if inner.is_empty() {
            break;
        }
        let (r, v) = u32::from_der(inner).map_err(|e| bad(format!("{what} version: {e}")))?;
        *slot = Some(v);
        inner = r;
    }
    if !inner.is_empty() {
        return Err(bad("unexpected data after the minor version".into()));
    }
    Ok((oid.to_id_string(), versions[0], versions[1]))
}

/// A bare BMPString (what Windows CAs emit) or `SEQUENCE { UTF8String }`.
pub fn decode_template_name(value: &[u8]) -> Result<String, PkiError> {
    let bad = |problem: String| PkiError::Extension {
        oid: OID_TEMPLATE_NAME,
        problem,
    };
    let (rest, any) = Any::from_der(value).map_err(|e| bad(e.to_string()))?;
    if !rest.is_empty() {
        return Err(bad("unexpected data after the name".into()));
    }
    let name = match any.tag() {
        Tag::BmpString => BmpString::try_from(any)
            .map_err(|e| bad(e.to_string()))?
            .string(),
        Tag::Utf8String => Utf8String::try_from(any)
            .map_err(|e| bad(e.to_string()))?
            .string(),
        Tag::Sequence => {
            let (r, s) = Utf8String::from_der(any.data).map_err(|e| bad(e.to_string()))?;
            if !r.is_empty() {
                return Err(bad("unexpected data after the name".into()));
            }
            s.string()
        }
        t => return Err(bad(format!("expected a BMPString, found tag {}", t.0))),
    };
    Ok(name)
}

/// DER of the v1 name extension's value, as Windows CAs write it (BMPString).
pub fn encode_template_name(cn: &str) -> Vec<u8> {
    let units: Vec<u8> = cn.encode_utf16().flat_map(|u| u.to_be_bytes()).collect();
    der_tlv(0x1e, &units)
}

/// DER of the template information extension's value.
pub fn encode_template_information(oid: &str, major: u32, minor: u32) -> Result<Vec<u8>, PkiError> {
    let oid: Oid = oid.parse().map_err(|_| PkiError::Extension {
        oid: OID_TEMPLATE_INFORMATION,
        problem: format!("{oid:?} is not an OID"),
    })?;
    let mut body = der_tlv(0x06, oid.as_bytes());
    body.extend(der_tlv(0x02, &der_uint(major)));
    body.extend(der_tlv(0x02, &der_uint(minor)));
    Ok(der_tlv(0x30, &body))
}

fn der_uint(v: u32) -> Vec<u8> {
    let mut b: Vec<u8> = v.to_be_bytes().to_vec();
    while b.len() > 1 && b[0] == 0 && b[1] & 0x80 == 0 {
        b.remove(0);
    }
    if b[0] & 0x80 != 0 {
        b.insert(0, 0);
    }
    b
}

/// A DER TLV with a definite length (short or long form); BER readers take
/// it too (the fuzz seeds build LDAP messages with it).
pub fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_information_round_trip() {
        let der = encode_template_information("1.3.6.1.4.1.311.21.8.1.2.3", 100, 4).unwrap();
        assert_eq!(
            decode_template_information(&der).unwrap(),
            ("1.3.6.1.4.1.311.21.8.1.2.3".to_string(), Some(100), Some(4))
        );
        // 128 needs a leading zero byte to stay positive.
        let der = encode_template_information("1.2.3", 128, 0).unwrap();
        assert_eq!(
            &der[der.len() - 7..],
            &[0x02, 0x02, 0x00, 0x80, 0x02, 0x01, 0x00]
        );
    }

    #[test]
    fn template_information_versions_optional() {
        // SEQUENCE { OID 1.2.3 }
        let der = [0x30, 0x04, 0x06, 0x02, 0x2a, 0x03];
        assert_eq!(
            decode_template_information(&der).unwrap(),
            ("1.2.3".to_string(), None, None)
        );
    }

    #[test]
    fn template_name_both_encodings() {
        assert_eq!(
            decode_template_name(&encode_template_name("Machine")).unwrap(),
            "Machine"
        );
        // SEQUENCE { UTF8String "User" }
        let seq = [0x30, 0x06, 0x0c, 0x04, b'U', b's', b'e', b'r'];
        assert_eq!(decode_template_name(&seq).unwrap(), "User");
    }

    #[test]
    fn bad_values_are_errors_not_panics() {
        for bad in [
            &[][..],
            &[0x30],
            &[0x30, 0x05, 0x06],
            &[0x04, 0x00],
            &[0x30, 0x04, 0x06, 0x02, 0x2a, 0x03, 0x00],
            &[0x30, 0x07, 0x06, 0x02, 0x2a, 0x03, 0x04, 0x01, 0x00],
        ] {
            assert!(decode_template_information(bad).is_err(), "{bad:?}");
            assert!(decode_template_name(bad).is_err(), "{bad:?}");
        }
        assert!(CertificateInfo::from_der(&[0x30, 0x03, 0x02, 0x01, 0x01]).is_err());
    }
}
