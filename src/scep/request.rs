//! What a SCEP requester sends inside the envelope: a PKCS#10 request (RFC
//! 2986) with the subject, SANs, key usage and EKUs of a profile and the
//! challengePassword (RFC 2985 5.4.1, RFC 8894 2.2), and the transient
//! self-signed certificate that signs a first request (RFC 8894 2.3).
//!
//! Built with the `x509-cert` types (rcgen cannot hold two RDNs of one type,
//! `OU=A,OU=B`), signed with aws-lc-rs.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use der::asn1::{
    BitString, Ia5String, ObjectIdentifier, OctetString, PrintableString, SetOfVec, UtcTime,
    Utf8StringRef,
};
use der::{Any, Decode, Encode};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::attr::{Attribute, AttributeTypeAndValue};
use x509_cert::certificate::{TbsCertificate, Version};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::name::{GeneralName, OtherName};
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::request::{CertReq, CertReqInfo};
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

use super::ScepError;
use crate::pki::keys::PrivateKey;

/// challengePassword (RFC 2985 5.4.1).
const OID_CHALLENGE_PASSWORD: &str = "1.2.840.113549.1.9.7";
/// szOID_ENROLLMENT_NAME_VALUE_PAIR ([MS-WCCE] 2.2.2.7.10).
const OID_NAME_VALUE_PAIR: &str = "1.3.6.1.4.1.311.13.2.1";
/// extensionRequest (RFC 2985 5.4.2).
const OID_EXTENSION_REQUEST: &str = "1.2.840.113549.1.9.14";
const OID_SAN: &str = "2.5.29.17";
const OID_KEY_USAGE: &str = "2.5.29.15";
const OID_EKU: &str = "2.5.29.37";
/// The UPN otherName (Windows, [MS-WCCE] 2.2.2.7.7.4 szOID_NT_PRINCIPAL_NAME).
pub const OID_UPN: &str = "1.3.6.1.4.1.311.20.2.3";
const OID_EMAIL_ADDRESS: &str = "1.2.840.113549.1.9.1";
const OID_DOMAIN_COMPONENT: &str = "0.9.2342.19200300.100.1.25";
const OID_COUNTRY: &str = "2.5.4.6";

fn bad(m: impl Into<String>) -> ScepError {
    ScepError::Request(m.into())
}

fn oid_of(dotted: &str) -> Result<ObjectIdentifier, ScepError> {
    ObjectIdentifier::new(dotted).map_err(|e| bad(format!("OID {dotted}: {e}")))
}

fn enc(what: &'static str) -> impl Fn(der::Error) -> ScepError {
    move |e| bad(format!("cannot encode {what}: {e}"))
}

/// One attribute of a subject, in the order written (the first is the most
/// significant, as CertStrToName reads `CN=x,O=y` left to right into RDNs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAttribute {
    /// Dotted OID of the attribute type.
    pub oid: String,
    pub value: String,
}

/// A subject alternative name (RFC 5280 4.2.1.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SanEntry {
    Dns(String),
    Email(String),
    Uri(String),
    Ip(IpAddr),
    /// otherName userPrincipalName, UTF8String.
    Upn(String),
}

/// What the PKCS#10 request asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CsrSpec {
    pub subject: Vec<NameAttribute>,
    pub sans: Vec<SanEntry>,
    /// KeyUsage bits, bit 0 = digitalSignature (RFC 5280 4.2.1.3).
    pub key_usage: Option<u16>,
    /// Dotted OIDs of the requested extended key usages.
    pub ekus: Vec<String>,
    /// A requested validity in days, sent as the `ValidityPeriod` /
    /// `ValidityPeriodUnits` name-value pairs AD CS reads ([MS-WCCE]
    /// 2.2.2.7.10); a CA honours it only when it allows requester end dates
    /// (EDITF_ATTRIBUTEENDDATE), never past the template's or its own end.
    pub validity_days: Option<u32>,
}

/// Whether `s` fits a PrintableString (X.680 41.4).
fn is_printable(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || " '()+,-./:=?".contains(c))
}

/// The DER of a Name from its attributes, one attribute per RDN. Values go
/// in PrintableString where they fit (as CertStrToName writes them), else
/// UTF8String; countryName is PrintableString and emailAddress and
/// domainComponent are IA5String (RFC 5280 4.1.2.4, appendix A).
pub fn name(subject: &[NameAttribute]) -> Result<Name, ScepError> {
    let mut rdns = Vec::new();
    for a in subject {
        let oid = oid_of(&a.oid)?;
        let value = match a.oid.as_str() {
            OID_EMAIL_ADDRESS | OID_DOMAIN_COMPONENT => Any::encode_from(
                &Ia5String::new(&a.value)
                    .map_err(|_| bad(format!("{}: {:?} is not ASCII", a.oid, a.value)))?,
            ),
            OID_COUNTRY => {
                if a.value.len() != 2 || !a.value.chars().all(|c| c.is_ascii_alphabetic()) {
                    return Err(bad(format!(
                        "C={:?}: a country is two letters (ISO 3166)",
                        a.value
                    )));
                }
                Any::encode_from(&PrintableString::new(&a.value).map_err(enc("C"))?)
            }
            _ if is_printable(&a.value) => {
                Any::encode_from(&PrintableString::new(&a.value).map_err(enc("a name"))?)
            }
            _ => Any::encode_from(&Utf8StringRef::new(&a.value).map_err(enc("a name"))?),
        }
        .map_err(enc("a name"))?;
        let atv = AttributeTypeAndValue { oid, value };
        rdns.push(RelativeDistinguishedName(
            SetOfVec::try_from(vec![atv]).map_err(enc("an RDN"))?,
        ));
    }
    Ok(RdnSequence(rdns))
}

fn general_names(sans: &[SanEntry]) -> Result<Vec<GeneralName>, ScepError> {
    sans.iter()
        .map(|s| {
            let ia5 = |v: &str| {
                Ia5String::new(v).map_err(|_| bad(format!("SAN {v:?} is not ASCII (IA5String)")))
            };
            Ok(match s {
                SanEntry::Dns(v) => GeneralName::DnsName(ia5(v)?),
                SanEntry::Email(v) => GeneralName::Rfc822Name(ia5(v)?),
                SanEntry::Uri(v) => GeneralName::UniformResourceIdentifier(ia5(v)?),
                SanEntry::Ip(ip) => GeneralName::from(*ip),
                SanEntry::Upn(v) => GeneralName::OtherName(OtherName {
                    type_id: oid_of(OID_UPN)?,
                    value: Any::encode_from(&Utf8StringRef::new(v).map_err(enc("a UPN"))?)
                        .map_err(enc("a UPN"))?,
                }),
            })
        })
        .collect()
}

/// KeyUsage as a DER BIT STRING: bit 0 is the most significant bit of the
/// first byte; trailing zero bits are dropped (X.690 11.2.2).
fn key_usage_bits(bits: u16) -> Result<BitString, ScepError> {
    let mut bytes = [0u8; 2];
    for i in 0..9 {
        if bits & (1 << i) != 0 {
            bytes[i / 8] |= 0x80 >> (i % 8);
        }
    }
    let len = if bytes[1] != 0 { 2 } else { 1 };
    let last = bytes[len - 1];
    let unused = if last == 0 {
        0
    } else {
        last.trailing_zeros() as u8
    };
    BitString::new(unused, &bytes[..len]).map_err(enc("keyUsage"))
}

fn extension(oid: &str, critical: bool, value: Vec<u8>) -> Result<Extension, ScepError> {
    Ok(Extension {
        extn_id: oid_of(oid)?,
        critical,
        extn_value: OctetString::new(value).map_err(enc("an extension"))?,
    })
}

fn subject_public_key(key: &PrivateKey) -> Result<SubjectPublicKeyInfoOwned, ScepError> {
    SubjectPublicKeyInfoOwned::from_der(&key.public_key_der())
        .map_err(|e| bad(format!("our public key: {e}")))
}

fn signature_algorithm(key: &PrivateKey) -> Result<AlgorithmIdentifierOwned, ScepError> {
    AlgorithmIdentifierOwned::from_der(&key.signature_algorithm_der())
        .map_err(|e| bad(format!("the signature algorithm: {e}")))
}

/// Builds and signs the PKCS#10 request of a SCEP enrollment.
pub fn build_csr(
    key: &PrivateKey,
    spec: &CsrSpec,
    challenge: Option<&str>,
) -> Result<Vec<u8>, ScepError> {
    let mut extensions = Vec::new();
    if !spec.sans.is_empty() {
        let names = general_names(&spec.sans)?;
        // The SAN is critical when the subject is empty (RFC 5280 4.2.1.6).
        extensions.push(extension(
            OID_SAN,
            spec.subject.is_empty(),
            names.to_der().map_err(enc("subjectAltName"))?,
        )?);
    }
    if let Some(bits) = spec.key_usage {
        extensions.push(extension(
            OID_KEY_USAGE,
            true,
            key_usage_bits(bits)?.to_der().map_err(enc("keyUsage"))?,
        )?);
    }
    if !spec.ekus.is_empty() {
        let oids = spec
            .ekus
            .iter()
            .map(|o| oid_of(o))
            .collect::<Result<Vec<_>, _>>()?;
        extensions.push(extension(
            OID_EKU,
            false,
            oids.to_der().map_err(enc("extKeyUsage"))?,
        )?);
    }
    let mut attributes = Vec::new();
    if let Some(challenge) = challenge {
        let value = if is_printable(challenge) {
            Any::encode_from(&PrintableString::new(challenge).map_err(enc("the challenge"))?)
        } else {
            Any::encode_from(&Utf8StringRef::new(challenge).map_err(enc("the challenge"))?)
        }
        .map_err(enc("the challenge"))?;
        attributes.push(Attribute {
            oid: oid_of(OID_CHALLENGE_PASSWORD)?,
            values: SetOfVec::try_from(vec![value]).map_err(enc("the challenge"))?,
        });
    }
    if let Some(days) = spec.validity_days {
        // One attribute whose values are EnrollmentNameValuePair ::=
        // SEQUENCE { name BMPString, value BMPString }.
        let mut pairs = Vec::new();
        for (name, value) in [
            ("ValidityPeriod", "Days".to_string()),
            ("ValidityPeriodUnits", days.to_string()),
        ] {
            let mut body = Vec::new();
            for text in [name, value.as_str()] {
                let bmp =
                    der::asn1::BmpString::from_utf8(text).map_err(enc("a name-value pair"))?;
                body.extend(bmp.to_der().map_err(enc("a name-value pair"))?);
            }
            pairs.push(Any::new(der::Tag::Sequence, body).map_err(enc("a name-value pair"))?);
        }
        attributes.push(Attribute {
            oid: oid_of(OID_NAME_VALUE_PAIR)?,
            values: SetOfVec::try_from(pairs).map_err(enc("a name-value pair"))?,
        });
    }
    if !extensions.is_empty() {
        let value = Any::encode_from(&extensions).map_err(enc("extensionRequest"))?;
        attributes.push(Attribute {
            oid: oid_of(OID_EXTENSION_REQUEST)?,
            values: SetOfVec::try_from(vec![value]).map_err(enc("extensionRequest"))?,
        });
    }
    let info = CertReqInfo {
        version: x509_cert::request::Version::V1,
        subject: name(&spec.subject)?,
        public_key: subject_public_key(key)?,
        attributes: SetOfVec::try_from(attributes).map_err(enc("attributes"))?,
    };
    let to_sign = info.to_der().map_err(enc("certificationRequestInfo"))?;
    let signature = key.sign(&to_sign).map_err(|e| bad(e.to_string()))?;
    CertReq {
        info,
        algorithm: signature_algorithm(key)?,
        signature: BitString::from_bytes(&signature).map_err(enc("the signature"))?,
    }
    .to_der()
    .map_err(enc("the request"))
}

/// The transient self-signed certificate that signs a first request (RFC
/// 8894 2.3): the requested subject (or `CN=SCEP transient` when it is
/// empty), the request's key, valid from an hour before `now` for a day, a
/// random serial, no extensions.
pub fn transient_certificate(
    key: &PrivateKey,
    subject: &[NameAttribute],
    now: SystemTime,
) -> Result<Vec<u8>, ScepError> {
    use aws_lc_rs::rand::SecureRandom;
    let subject = if subject.is_empty() {
        name(&[NameAttribute {
            oid: "2.5.4.3".into(),
            value: "SCEP transient".into(),
        }])?
    } else {
        name(subject)?
    };
    let mut serial = [0u8; 16];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut serial)
        .map_err(|_| bad("no randomness for a serial"))?;
    serial[0] &= 0x7f;
    serial[0] |= 0x01;
    let time = |t: SystemTime| -> Result<Time, ScepError> {
        Ok(Time::UtcTime(
            UtcTime::from_system_time(t).map_err(enc("a time"))?,
        ))
    };
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: SerialNumber::new(&serial).map_err(enc("the serial"))?,
        signature: signature_algorithm(key)?,
        issuer: subject.clone(),
        validity: Validity {
            not_before: time(now - Duration::from_secs(3600))?,
            not_after: time(now + Duration::from_secs(86400))?,
        },
        subject,
        subject_public_key_info: subject_public_key(key)?,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: None,
    };
    let to_sign = tbs.to_der().map_err(enc("tbsCertificate"))?;
    let signature = key.sign(&to_sign).map_err(|e| bad(e.to_string()))?;
    x509_cert::Certificate {
        tbs_certificate: tbs,
        signature_algorithm: signature_algorithm(key)?,
        signature: BitString::from_bytes(&signature).map_err(enc("the signature"))?,
    }
    .to_der()
    .map_err(enc("the certificate"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::csr::ParsedCsr;
    use crate::pki::keys::KeyAlgorithm;

    fn attr(oid: &str, value: &str) -> NameAttribute {
        NameAttribute {
            oid: oid.into(),
            value: value.into(),
        }
    }

    #[test]
    fn csr_verifies_and_carries_the_spec() {
        let key = PrivateKey::generate(KeyAlgorithm::Rsa { bits: 2048 }).unwrap();
        let spec = CsrSpec {
            subject: vec![
                attr("2.5.4.3", "ws01, the first"),
                attr("2.5.4.11", "Mobile"),
                attr("2.5.4.11", "Zürich"),
                attr("2.5.4.6", "US"),
                attr(OID_EMAIL_ADDRESS, "a@corp.example"),
            ],
            sans: vec![
                SanEntry::Dns("ws01.corp.example".into()),
                SanEntry::Upn("ws01$@corp.example".into()),
                SanEntry::Ip("192.0.2.1".parse().unwrap()),
            ],
            key_usage: Some(0b101),
            ekus: vec!["1.3.6.1.5.5.7.3.2".into()],
            validity_days: None,
        };
        let der = build_csr(&key, &spec, Some("s3cret")).unwrap();
        let parsed = ParsedCsr::from_der(&der).unwrap();
        assert_eq!(parsed.requested_dns_names, ["ws01.corp.example"]);
        assert!(parsed.subject.contains("OU=Mobile"), "{}", parsed.subject);
        assert!(parsed.subject.contains("Zürich"), "{}", parsed.subject);
        let cert = transient_certificate(&key, &spec.subject, SystemTime::now()).unwrap();
        let (_, c) = x509_parser::parse_x509_certificate(&cert).unwrap();
        assert_eq!(c.subject().to_string(), c.issuer().to_string());
        assert_eq!(c.public_key().raw, key.public_key_der().as_slice());
    }

    #[test]
    fn requested_validity_is_a_name_value_pair() {
        let key = PrivateKey::generate(KeyAlgorithm::Rsa { bits: 2048 }).unwrap();
        let spec = CsrSpec {
            subject: vec![attr("2.5.4.3", "ws01")],
            validity_days: Some(180),
            ..CsrSpec::default()
        };
        let der = build_csr(&key, &spec, None).unwrap();
        ParsedCsr::from_der(&der).unwrap();
        let req = CertReq::from_der(&der).unwrap();
        let attrs: Vec<_> = req
            .info
            .attributes
            .iter()
            .filter(|a| a.oid.to_string() == OID_NAME_VALUE_PAIR)
            .collect();
        assert_eq!(attrs.len(), 1);
        let mut pairs: Vec<Vec<u8>> = attrs[0].values.iter().map(|v| v.value().to_vec()).collect();
        // A SET is in DER order; ValidityPeriod (shorter) comes first.
        pairs.sort_by_key(Vec::len);
        let bmp = |s: &str| -> Vec<u8> {
            let units: Vec<u8> = s.encode_utf16().flat_map(|u| u.to_be_bytes()).collect();
            let mut v = vec![0x1e, units.len() as u8];
            v.extend(units);
            v
        };
        assert_eq!(pairs[0], [bmp("ValidityPeriod"), bmp("Days")].concat());
        assert_eq!(pairs[1], [bmp("ValidityPeriodUnits"), bmp("180")].concat());
    }

    #[test]
    fn key_usage_bits_table() {
        // (bits, DER content bytes after the unused-bits octet)
        let cases: &[(u16, u8, &[u8])] = &[
            (0b1, 7, &[0x80]),
            (0b101, 5, &[0xa0]),
            (0b100, 5, &[0x20]),
            (1 << 8, 7, &[0x00, 0x80]),
        ];
        for (bits, unused, bytes) in cases {
            let b = key_usage_bits(*bits).unwrap();
            assert_eq!(b.unused_bits(), *unused, "{bits:b}");
            assert_eq!(b.raw_bytes(), *bytes, "{bits:b}");
        }
    }

    #[test]
    fn bad_values_are_named() {
        let e = name(&[attr(OID_COUNTRY, "USA")]).unwrap_err();
        assert!(e.to_string().contains("two letters"), "{e}");
        let e = name(&[attr(OID_EMAIL_ADDRESS, "ü@x")]).unwrap_err();
        assert!(e.to_string().contains("ASCII"), "{e}");
    }
}
