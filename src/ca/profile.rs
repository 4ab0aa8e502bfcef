//! What a certificate will contain: the issuance policy decides it, the
//! certificate builder turns it into DER.
//!
//! A profile is plain data so that a request the policy pends can be stored
//! (as JSON, in the CA database) and issued unchanged once a CA manager
//! approves it: the decision is taken once, at submission, the way an AD CS
//! enterprise CA records the request's properties when it pends it.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// One subjectAltName entry ([MS-WCCE] 3.2.2.6.2.1.4.5.9, adcs.md section 3).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "value")]
pub enum SubjectAltName {
    /// dNSName.
    Dns(String),
    /// otherName 1.3.6.1.4.1.311.20.2.3 (user principal name), a UTF8String.
    Upn(String),
    /// rfc822Name.
    Email(String),
    /// otherName 1.3.6.1.4.1.311.25.1: the 16 bytes of the account's objectGUID,
    /// as an OCTET STRING.
    DirectoryGuid(Vec<u8>),
}

/// Everything the builder needs besides the requester's key, the serial number
/// and the issuer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateProfile {
    /// The template's cn, for the CA database and for messages.
    pub template_cn: String,
    /// The subject's attributes in certificate (DER) order, most significant
    /// first, the reverse of LDAP text: the directory path
    /// `CN=ws01,CN=Computers,DC=corp,DC=example` is
    /// `[("DC","example"),("DC","corp"),("CN","Computers"),("CN","ws01")]`. The type
    /// is a short name (CN, E, DC, OU, O, L, ST, C, SERIALNUMBER) or a dotted
    /// OID. One attribute per RDN.
    pub subject: Vec<(String, String)>,
    pub subject_alt_names: Vec<SubjectAltName>,
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// `pKIKeyUsage`: the bit bytes of the KeyUsage BIT STRING (`a0 00` is
    /// digitalSignature + keyEncipherment). None or all zero: no extension.
    pub key_usage: Option<Vec<u8>>,
    /// `pKIExtendedKeyUsage`.
    pub extended_key_usage: Vec<String>,
    /// `msPKI-Certificate-Application-Policy`, carried in 1.3.6.1.4.1.311.21.10.
    pub application_policies: Vec<String>,
    /// `msPKI-Certificate-Policy`, carried in certificatePolicies.
    pub issuance_policies: Vec<String>,
    /// `pKICriticalExtensions`: OIDs of the extensions to mark critical.
    pub critical_extensions: Vec<String>,
    /// 1.3.6.1.4.1.311.21.7: (template OID, major, minor), schema v2 and later.
    pub template_information: Option<(String, u32, u32)>,
    /// 1.3.6.1.4.1.311.20.2: the template cn, for v1 templates or with ADD_TEMPLATE_NAME.
    pub template_name: Option<String>,
    /// 1.3.6.1.4.1.311.25.2: the requester's SID in text form, unless the
    /// template sets NO_SECURITY_EXTENSION.
    pub requester_sid: Option<String>,
    /// basicConstraints cA=false (INCLUDE_BASIC_CONSTRAINTS_FOR_EE_CERTS).
    pub basic_constraints_end_entity: bool,
    /// CRL distribution points and authority information access; false with
    /// NOREVOCATIONINFOINISSUEDCERTS.
    pub include_revocation_info: bool,
    /// id-pkix-ocsp-nocheck (ADD_OCSP_NOCHECK).
    pub ocsp_nocheck: bool,
}

impl CertificateProfile {
    /// Same profile re-dated for issuing at `now` (after manual approval): same
    /// lifetime, capped at `ca_not_after`.
    ///
    /// A CA manager may approve a pending request days after it came in; the
    /// certificate then starts at approval, not at submission, so that it gets
    /// the whole lifetime the template grants. It never outlives the CA
    /// certificate (a CA never issues past its own expiry).
    pub fn redated(&self, now: OffsetDateTime, ca_not_after: OffsetDateTime) -> CertificateProfile {
        let lifetime = self.not_after - self.not_before;
        let not_after = now
            .checked_add(lifetime)
            .unwrap_or(ca_not_after)
            .min(ca_not_after);
        CertificateProfile {
            not_before: now,
            not_after,
            ..self.clone()
        }
    }
}

/// Short names of subject attributes and their OIDs, as Windows and OpenSSL
/// write them in text (RFC 4514 section 3, RFC 4519, PKCS #9 for E).
const SUBJECT_ATTRIBUTES: &[(&str, &str)] = &[
    ("CN", "2.5.4.3"),
    ("SN", "2.5.4.4"),
    ("SERIALNUMBER", "2.5.4.5"),
    ("C", "2.5.4.6"),
    ("L", "2.5.4.7"),
    ("ST", "2.5.4.8"),
    ("STREET", "2.5.4.9"),
    ("O", "2.5.4.10"),
    ("OU", "2.5.4.11"),
    ("T", "2.5.4.12"),
    ("G", "2.5.4.42"),
    ("I", "2.5.4.43"),
    ("UID", "0.9.2342.19200300.100.1.1"),
    ("DC", "0.9.2342.19200300.100.1.25"),
    ("E", "1.2.840.113549.1.9.1"),
];

/// Other spellings of the short names above (LDAP and OpenSSL text).
const SUBJECT_ALIASES: &[(&str, &str)] = &[
    ("S", "ST"),
    ("EMAIL", "E"),
    ("EMAILADDRESS", "E"),
    ("TITLE", "T"),
    ("GN", "G"),
    ("GIVENNAME", "G"),
    ("SURNAME", "SN"),
    ("STATEORPROVINCENAME", "ST"),
    ("COMMONNAME", "CN"),
];

/// The OID of a subject attribute type given as a short name (any case) or a
/// dotted OID; None for an unknown name.
pub fn subject_attribute_oid(name: &str) -> Option<String> {
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Some(name.to_string());
    }
    let upper = name.to_ascii_uppercase();
    let short = SUBJECT_ALIASES
        .iter()
        .find(|(alias, _)| *alias == upper)
        .map_or(upper.as_str(), |(_, s)| s);
    SUBJECT_ATTRIBUTES
        .iter()
        .find(|(n, _)| *n == short)
        .map(|(_, oid)| oid.to_string())
}

/// The canonical short name of a subject attribute (`cn` -> `CN`, a known OID
/// -> its name); an unknown dotted OID stays as it is, an unknown name is None.
pub fn subject_attribute_name(name_or_oid: &str) -> Option<String> {
    let oid = subject_attribute_oid(name_or_oid)?;
    Some(
        SUBJECT_ATTRIBUTES
            .iter()
            .find(|(_, o)| *o == oid)
            .map_or(oid.clone(), |(n, _)| n.to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn sample() -> CertificateProfile {
        CertificateProfile {
            template_cn: "WorkstationAuth".into(),
            subject: vec![("CN".into(), "ws01.corp.example".into())],
            subject_alt_names: vec![
                SubjectAltName::Dns("ws01.corp.example".into()),
                SubjectAltName::Upn("WS01$@corp.example".into()),
                SubjectAltName::Email("ws01@corp.example".into()),
                SubjectAltName::DirectoryGuid(vec![0x61, 0xcd, 0x27, 0xce]),
            ],
            not_before: datetime!(2025-03-01 10:00 UTC),
            not_after: datetime!(2026-03-01 10:00 UTC),
            key_usage: Some(vec![0xa0, 0x00]),
            extended_key_usage: vec!["1.3.6.1.5.5.7.3.2".into()],
            application_policies: vec!["1.3.6.1.5.5.7.3.2".into()],
            issuance_policies: vec![],
            critical_extensions: vec!["2.5.29.15".into()],
            template_information: Some(("1.3.6.1.4.1.311.21.8.1.2".into(), 101, 4)),
            template_name: None,
            requester_sid: Some("S-1-5-21-1000-2000-3000-1201".into()),
            basic_constraints_end_entity: false,
            include_revocation_info: true,
            ocsp_nocheck: false,
        }
    }

    #[test]
    fn json_round_trip() {
        let p = sample();
        let json = serde_json::to_string(&p).unwrap();
        assert!(
            json.contains("\"not_before\":\"2025-03-01T10:00:00Z\""),
            "{json}"
        );
        assert!(json.contains("{\"type\":\"upn\",\"value\":\"WS01$@corp.example\"}"));
        let back: CertificateProfile = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn redated_keeps_lifetime_and_respects_ca_expiry() {
        let p = sample();
        let approved = datetime!(2025-03-05 08:30 UTC);
        let far = datetime!(2030-01-01 0:00 UTC);
        let r = p.redated(approved, far);
        assert_eq!(r.not_before, approved);
        assert_eq!(r.not_after - r.not_before, p.not_after - p.not_before);
        assert_eq!(
            CertificateProfile {
                not_before: p.not_before,
                not_after: p.not_after,
                ..r.clone()
            },
            p,
            "only the dates change"
        );

        let ca_end = datetime!(2025-12-31 0:00 UTC);
        let capped = p.redated(approved, ca_end);
        assert_eq!(capped.not_before, approved);
        assert_eq!(capped.not_after, ca_end);
    }

    #[test]
    fn attribute_names() {
        let cases = [
            ("CN", Some("2.5.4.3"), Some("CN")),
            ("cn", Some("2.5.4.3"), Some("CN")),
            ("dc", Some("0.9.2342.19200300.100.1.25"), Some("DC")),
            ("emailAddress", Some("1.2.840.113549.1.9.1"), Some("E")),
            ("S", Some("2.5.4.8"), Some("ST")),
            ("2.5.4.11", Some("2.5.4.11"), Some("OU")),
            ("1.2.3.4", Some("1.2.3.4"), Some("1.2.3.4")),
            ("nonsense", None, None),
            ("", None, None),
        ];
        for (input, oid, name) in cases {
            assert_eq!(subject_attribute_oid(input).as_deref(), oid, "{input}");
            assert_eq!(subject_attribute_name(input).as_deref(), name, "{input}");
        }
    }
}
