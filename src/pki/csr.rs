//! PKCS#10 certificate requests (RFC 2986): built by the client, checked by
//! the CA.
//!
//! What an AD CS client puts in a request ([MS-WCCE] 2.2.2.6, adcs.md
//! sections 3 and 6): usually an empty subject (the CA builds the names from
//! the directory), the public key, and an extensionRequest attribute carrying
//! the template identity. A renewal's request also carries attribute
//! 1.3.6.1.4.1.311.13.1 with the certificate being renewed.
//!
//! Requests are built with rcgen and read with x509-parser plus a walk over the
//! attributes: rcgen refuses most requests that real clients send.

use rcgen::{
    Attribute, CertificateParams, CustomExtension, DistinguishedName, DnType, SanType,
    string::Ia5String,
};
use x509_parser::asn1_rs::Tag;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, SubjectAlternativeName};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::der_cursor::{Cursor, Element, single};
use super::keys::{KeyAlgorithm, PrivateKey, oid, verify_signature};
use super::template_ext::{
    OID_TEMPLATE_INFORMATION, OID_TEMPLATE_NAME, PkiError, TemplateIdentity,
    decode_template_information, decode_template_name, encode_template_information,
    encode_template_name,
};

/// PKCS#9 extensionRequest (RFC 2985 5.4.2).
pub const OID_EXTENSION_REQUEST: &str = "1.2.840.113549.1.9.14";
/// The Microsoft predecessor of extensionRequest (szOID_CERT_EXTENSIONS), still
/// read for old clients.
pub const OID_MS_CERT_EXTENSIONS: &str = "1.3.6.1.4.1.311.2.1.14";
/// Request attribute holding the certificate being renewed
/// (szOID_RENEWAL_CERTIFICATE, [MS-WCCE] 2.2.2.7.8).
pub const OID_RENEWAL_CERTIFICATE: &str = "1.3.6.1.4.1.311.13.1";
/// subjectAltName (RFC 5280 4.2.1.6).
const OID_SUBJECT_ALT_NAME: &str = "2.5.29.17";

const ARCS_TEMPLATE_INFORMATION: &[u64] = &[1, 3, 6, 1, 4, 1, 311, 21, 7];
const ARCS_TEMPLATE_NAME: &[u64] = &[1, 3, 6, 1, 4, 1, 311, 20, 2];
const ARCS_RENEWAL_CERTIFICATE: &[u64] = &[1, 3, 6, 1, 4, 1, 311, 13, 1];

/// A PKCS#10 request whose self-signature has been verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedCsr {
    /// The request as received.
    pub der: Vec<u8>,
    /// Subject in RFC 4514 text; empty when the request has an empty subject.
    pub subject: String,
    /// The subject's commonName, if any.
    pub subject_common_name: Option<String>,
    /// SubjectPublicKeyInfo, DER.
    pub public_key: Vec<u8>,
    pub key_algorithm: KeyAlgorithm,
    /// Template identity from the requested extensions 1.3.6.1.4.1.311.21.7 / 20.2.
    pub template: Option<TemplateIdentity>,
    /// DNS names of a requested subjectAltName extension.
    pub requested_dns_names: Vec<String>,
    /// Attribute 1.3.6.1.4.1.311.13.1: DER of the certificate being renewed.
    pub renewal_certificate: Option<Vec<u8>>,
}

/// What goes into a request besides the key.
#[derive(Debug, Clone, Copy, Default)]
pub struct CsrOptions<'a> {
    /// None = empty subject (the normal AD case: the CA builds the subject).
    pub subject_common_name: Option<&'a str>,
    /// DNS names of a requested subjectAltName (only when the enrollee
    /// supplies it, ENROLLEE_SUPPLIES_SUBJECT_ALT_NAME).
    pub dns_names: &'a [String],
    /// Template OID, major and minor version: extension 1.3.6.1.4.1.311.21.7.
    pub template: Option<(&'a str, u32, u32)>,
    /// Template cn for v1 templates: extension 1.3.6.1.4.1.311.20.2.
    pub template_name: Option<&'a str>,
    /// DER of the certificate being renewed: attribute 1.3.6.1.4.1.311.13.1.
    pub renewal_certificate: Option<&'a [u8]>,
}

/// Builds and signs a PKCS#10 request with `key`.
pub fn build_csr(key: &PrivateKey, options: &CsrOptions<'_>) -> Result<Vec<u8>, PkiError> {
    let mut params = CertificateParams::default();
    // The default carries a placeholder commonName; AD requests are empty.
    params.distinguished_name = DistinguishedName::new();
    if let Some(cn) = options.subject_common_name {
        params.distinguished_name.push(DnType::CommonName, cn);
    }
    for name in options.dns_names {
        let ia5 = Ia5String::try_from(name.as_str())
            .map_err(|e| PkiError::Request(format!("DNS name {name:?}: {e}")))?;
        params.subject_alt_names.push(SanType::DnsName(ia5));
    }
    if let Some((oid, major, minor)) = options.template {
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(
                ARCS_TEMPLATE_INFORMATION,
                encode_template_information(oid, major, minor)?,
            ));
    }
    if let Some(name) = options.template_name {
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(
                ARCS_TEMPLATE_NAME,
                encode_template_name(name),
            ));
    }
    let mut attributes = Vec::new();
    if let Some(cert) = options.renewal_certificate {
        check_certificate(cert)
            .map_err(|e| PkiError::Request(format!("the certificate to renew: {e}")))?;
        attributes.push(Attribute {
            oid: ARCS_RENEWAL_CERTIFICATE,
            values: der_set_of_one(cert)?,
        });
    }
    // Signed through the key itself: a key on a token signs there.
    let csr = params
        .serialize_request_with_attributes(key, attributes)
        .map_err(|e| PkiError::Request(format!("cannot build the request: {e}")))?;
    Ok(csr.der().to_vec())
}

/// `SET { element }` (the attribute value set of RFC 2986 4.1).
fn der_set_of_one(element_der: &[u8]) -> Result<Vec<u8>, PkiError> {
    use der::{Decode, Encode};
    let bad = |e: der::Error| PkiError::Request(format!("cannot encode an attribute value: {e}"));
    let any = der::Any::from_der(element_der).map_err(bad)?;
    der::asn1::SetOfVec::try_from(vec![any])
        .and_then(|set| set.to_der())
        .map_err(bad)
}

/// Whether the bytes are exactly one X.509 certificate.
fn check_certificate(der: &[u8]) -> Result<(), String> {
    let (rest, _) =
        X509Certificate::from_der(der).map_err(|e| format!("not a certificate: {e}"))?;
    if !rest.is_empty() {
        return Err(format!("{} bytes after the certificate", rest.len()));
    }
    Ok(())
}

/// What the attributes of a request hold.
#[derive(Default)]
struct Attributes {
    template: Option<TemplateIdentity>,
    dns_names: Vec<String>,
    renewal_certificate: Option<Vec<u8>>,
}

impl ParsedCsr {
    /// Parses a DER request, verifies its self-signature (RFC 2986 4.2: over
    /// the DER of certificationRequestInfo, as received) and reads every field.
    pub fn from_der(der: &[u8]) -> Result<ParsedCsr, PkiError> {
        let bad = PkiError::Request;
        let (rest, req) = X509CertificationRequest::from_der(der)
            .map_err(|e| bad(format!("malformed or truncated DER: {e}")))?;
        if !rest.is_empty() {
            return Err(bad(format!("{} bytes after the request", rest.len())));
        }
        let info = &req.certification_request_info;
        if info.version.0 != 0 {
            return Err(bad(format!(
                "version {} (only version 1, encoded 0, exists)",
                info.version.0
            )));
        }
        let public_key = info.subject_pki.raw.to_vec();
        let key_algorithm = KeyAlgorithm::from_spki(&public_key).map_err(|e| bad(e.to_string()))?;
        let signature_oid = req.signature_algorithm.algorithm.to_id_string();
        verify_self_signature(
            &public_key,
            key_algorithm,
            &signature_oid,
            info.raw,
            req.signature_value.data.as_ref(),
        )?;
        let subject_common_name = match info.subject.iter_common_name().next() {
            Some(cn) => Some(
                cn.as_str()
                    .map_err(|e| bad(format!("subject commonName is not text: {e}")))?
                    .to_string(),
            ),
            None => None,
        };
        let attributes = read_attributes(info.raw).map_err(bad)?;
        Ok(ParsedCsr {
            der: der.to_vec(),
            subject: info.subject.to_string(),
            subject_common_name,
            public_key,
            key_algorithm,
            template: attributes.template,
            requested_dns_names: attributes.dns_names,
            renewal_certificate: attributes.renewal_certificate,
        })
    }
}

/// The smallest RSA modulus whose request signature can be checked at all
/// (aws-lc-rs verifies PKCS#1 v1.5 from 1024 bits).
pub const MIN_VERIFIABLE_RSA_BITS: u32 = 1024;

/// Verifies the request's self-signature (RFC 2986 4.2: proof of possession).
///
/// RSA keys from [`MIN_VERIFIABLE_RSA_BITS`] up to 2047 bits are verified
/// here rather than refused: whether a key is large enough is the issuance
/// policy's decision (`msPKI-Minimal-Key-Size`, CERTSRV_E_KEY_LENGTH), not a
/// parse error, and refusing it while parsing made it look like a bad
/// signature. Smaller keys cannot be verified; they come back as
/// [`PkiError::Key`], the one error of [`ParsedCsr::from_der`] with that
/// variant, so that the CA can still answer CERTSRV_E_KEY_LENGTH. A
/// signature that does not verify is a [`PkiError::Signature`].
fn verify_self_signature(
    public_key: &[u8],
    key: KeyAlgorithm,
    signature_oid: &str,
    message: &[u8],
    signature: &[u8],
) -> Result<(), PkiError> {
    match key {
        KeyAlgorithm::Rsa { bits } if bits < MIN_VERIFIABLE_RSA_BITS => {
            Err(PkiError::Key(format!(
                "RSA {bits}: below {MIN_VERIFIABLE_RSA_BITS} bits the request's signature cannot be verified"
            )))
        }
        KeyAlgorithm::Rsa { bits } if bits < 2048 => {
            verify_short_rsa(public_key, bits, signature_oid, message, signature)
        }
        _ => verify_signature(public_key, signature_oid, message, signature),
    }
}

/// PKCS#1 v1.5 with SHA-256 or SHA-512 for RSA keys of 1024 to 2047 bits.
fn verify_short_rsa(
    public_key: &[u8],
    bits: u32,
    signature_oid: &str,
    message: &[u8],
    signature: &[u8],
) -> Result<(), PkiError> {
    use aws_lc_rs::signature::{self, UnparsedPublicKey};
    let params = match signature_oid {
        oid::SHA256_WITH_RSA => &signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
        oid::SHA512_WITH_RSA => &signature::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY,
        other => {
            return Err(PkiError::Signature(format!(
                "signature algorithm {other} cannot be verified with an RSA {bits} key (sha256WithRSAEncryption and sha512WithRSAEncryption can)"
            )));
        }
    };
    // The key inside the SubjectPublicKeyInfo: aws-lc-rs takes the
    // RSAPublicKey of RFC 8017 A.1.1.
    let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(public_key)
        .map_err(|e| PkiError::Key(format!("SubjectPublicKeyInfo: {e}")))?;
    UnparsedPublicKey::new(params, spki.subject_public_key.data.as_ref())
        .verify(message, signature)
        .map_err(|_| {
            PkiError::Signature(format!(
                "the RSA signature does not verify with the RSA {bits} key"
            ))
        })
}

/// Walks the `[0] Attributes` of a certificationRequestInfo (RFC 2986 4.1).
fn read_attributes(info_der: &[u8]) -> Result<Attributes, String> {
    let info = single(info_der, Tag::Sequence, "certificationRequestInfo")?;
    let mut c = info.children("certificationRequestInfo")?;
    c.expect(Tag::Integer, "version")?;
    c.expect(Tag::Sequence, "subject")?;
    c.expect(Tag::Sequence, "subjectPKInfo")?;
    let attrs = c
        .optional_context(0, "attributes")?
        .ok_or("certificationRequestInfo: the [0] attributes are missing")?;
    c.finish("the attributes")?;
    let mut out = Attributes::default();
    let mut seen: Vec<String> = Vec::new();
    let mut list = attrs.children("attributes")?;
    while !list.is_empty() {
        let attr = list.expect(Tag::Sequence, "attribute")?;
        let mut a = attr.children("attribute")?;
        let oid = a.next("type")?.oid("attribute type")?;
        let values = a.expect(Tag::Set, &format!("values of attribute {oid}"))?;
        a.finish(&format!("the values of attribute {oid}"))?;
        if seen.contains(&oid) {
            return Err(format!("attribute {oid} appears twice"));
        }
        seen.push(oid.clone());
        let within = format!("attribute {oid}");
        match oid.as_str() {
            OID_EXTENSION_REQUEST | OID_MS_CERT_EXTENSIONS => {
                let value = only_value(&values, &within)?;
                read_extensions(&value, &mut out)?;
            }
            OID_RENEWAL_CERTIFICATE => {
                let value = only_value(&values, &within)?;
                check_certificate(value.raw).map_err(|e| format!("{within}: {e}"))?;
                out.renewal_certificate = Some(value.raw.to_vec());
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The single value of a single-valued attribute.
fn only_value<'a>(values: &Element<'a>, within: &str) -> Result<Element<'a>, String> {
    let mut v = values.children(within)?;
    let value = v.next("the value")?;
    v.finish("the first value (the attribute is single-valued)")?;
    Ok(value)
}

/// Reads `Extensions ::= SEQUENCE OF Extension` (RFC 5280 4.1) from an
/// extension request: template identity and requested DNS names.
fn read_extensions(exts: &Element<'_>, out: &mut Attributes) -> Result<(), String> {
    if !exts.is_universal(Tag::Sequence) {
        return Err(format!(
            "extension request: expected a SEQUENCE of extensions, found {}",
            exts.describe_tag()
        ));
    }
    let mut seen: Vec<String> = Vec::new();
    let mut list = exts.children("extension request")?;
    let mut identity = TemplateIdentity::default();
    let mut found = false;
    while !list.is_empty() {
        let ext = list.expect(Tag::Sequence, "extension")?;
        let mut e: Cursor<'_> = ext.children("extension")?;
        let oid = e.next("extnID")?.oid("extnID")?;
        let within = format!("requested extension {oid}");
        let mut value = e.next("extnValue")?;
        if value.is_universal(Tag::Boolean) {
            value = e.next("extnValue")?;
        }
        if !value.is_universal(Tag::OctetString) {
            return Err(format!("{within}: extnValue is not an OCTET STRING"));
        }
        e.finish("extnValue")?;
        if seen.contains(&oid) {
            return Err(format!("{within} appears twice"));
        }
        seen.push(oid.clone());
        let value = value.content();
        match oid.as_str() {
            OID_TEMPLATE_INFORMATION => {
                let (o, major, minor) =
                    decode_template_information(value).map_err(|e| e.to_string())?;
                identity.oid = Some(o);
                identity.major = major;
                identity.minor = minor;
                found = true;
            }
            OID_TEMPLATE_NAME => {
                identity.name = Some(decode_template_name(value).map_err(|e| e.to_string())?);
                found = true;
            }
            OID_SUBJECT_ALT_NAME => {
                let (rest, san) = SubjectAlternativeName::from_der(value)
                    .map_err(|e| format!("{within}: {e}"))?;
                if !rest.is_empty() {
                    return Err(format!("{within}: bytes after the names"));
                }
                for name in san.general_names {
                    if let GeneralName::DNSName(dns) = name {
                        out.dns_names.push(dns.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    if found {
        out.template = Some(identity);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::keys::tests::{old_certificate, openssl};

    fn all_options<'a>(dns: &'a [String], old: &'a [u8]) -> CsrOptions<'a> {
        CsrOptions {
            subject_common_name: Some("ws01.corp.example"),
            dns_names: dns,
            template: Some(("1.3.6.1.4.1.311.21.8.1.2.3", 100, 5)),
            template_name: Some("Machine"),
            renewal_certificate: Some(old),
        }
    }

    #[test]
    fn round_trip_every_field() {
        let dns = vec!["ws01.corp.example".to_string(), "ws01".to_string()];
        for alg in [
            KeyAlgorithm::Rsa { bits: 2048 },
            KeyAlgorithm::EcdsaP256,
            KeyAlgorithm::EcdsaP384,
        ] {
            let key = PrivateKey::generate(alg).unwrap();
            let old = old_certificate(&key, "ws01");
            let der = build_csr(&key, &all_options(&dns, &old)).unwrap();
            let csr = ParsedCsr::from_der(&der).unwrap();
            assert_eq!(csr.der, der);
            assert_eq!(csr.subject, "CN=ws01.corp.example");
            assert_eq!(
                csr.subject_common_name.as_deref(),
                Some("ws01.corp.example")
            );
            assert_eq!(csr.public_key, key.public_key_der());
            assert_eq!(csr.key_algorithm, alg);
            assert_eq!(
                csr.template,
                Some(TemplateIdentity {
                    oid: Some("1.3.6.1.4.1.311.21.8.1.2.3".into()),
                    major: Some(100),
                    minor: Some(5),
                    name: Some("Machine".into()),
                })
            );
            assert_eq!(csr.requested_dns_names, dns);
            assert_eq!(csr.renewal_certificate.as_deref(), Some(&old[..]));
            let identity = csr.template.unwrap();
            assert!(identity.matches(Some("1.3.6.1.4.1.311.21.8.1.2.3"), "Other"));
        }
    }

    #[test]
    fn empty_subject_and_nothing_else() {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let der = build_csr(&key, &CsrOptions::default()).unwrap();
        let csr = ParsedCsr::from_der(&der).unwrap();
        assert_eq!(csr.subject, "");
        assert_eq!(csr.subject_common_name, None);
        assert_eq!(csr.template, None);
        assert!(csr.requested_dns_names.is_empty());
        assert_eq!(csr.renewal_certificate, None);
        // The subject is an empty SEQUENCE, not rcgen's placeholder name.
        assert!(!String::from_utf8_lossy(&der).contains("rcgen"));
    }

    #[test]
    fn v2_template_alone() {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let opts = CsrOptions {
            template: Some(("1.3.6.1.4.1.311.21.8.9", 3, 0)),
            ..Default::default()
        };
        let csr = ParsedCsr::from_der(&build_csr(&key, &opts).unwrap()).unwrap();
        let t = csr.template.unwrap();
        assert_eq!(t.oid.as_deref(), Some("1.3.6.1.4.1.311.21.8.9"));
        assert_eq!((t.major, t.minor, t.name), (Some(3), Some(0), None));
    }

    #[test]
    fn build_refuses_bad_input() {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let dns = vec!["caf\u{e9}.example".to_string()];
        let opts = CsrOptions {
            dns_names: &dns,
            ..Default::default()
        };
        assert!(build_csr(&key, &opts).is_err());
        let opts = CsrOptions {
            renewal_certificate: Some(b"\x30\x03\x02\x01\x01"),
            ..Default::default()
        };
        let e = build_csr(&key, &opts).unwrap_err();
        assert!(e.to_string().contains("certificate to renew"), "{e}");
        let opts = CsrOptions {
            template: Some(("not an oid", 1, 0)),
            ..Default::default()
        };
        assert!(build_csr(&key, &opts).is_err());
    }

    #[test]
    fn openssl_verifies_our_requests() {
        let dir = tempfile::tempdir().unwrap();
        let dns = vec!["ws01.corp.example".to_string()];
        for alg in [
            KeyAlgorithm::Rsa { bits: 2048 },
            KeyAlgorithm::EcdsaP256,
            KeyAlgorithm::EcdsaP384,
        ] {
            let key = PrivateKey::generate(alg).unwrap();
            let old = old_certificate(&key, "ws01");
            for opts in [CsrOptions::default(), all_options(&dns, &old)] {
                let path = dir.path().join("req.der");
                std::fs::write(&path, build_csr(&key, &opts).unwrap()).unwrap();
                let p = path.to_str().unwrap();
                openssl(&["req", "-verify", "-noout", "-inform", "DER", "-in", p]);
                let text = openssl(&["req", "-noout", "-text", "-inform", "DER", "-in", p]);
                let text = String::from_utf8_lossy(&text);
                if opts.template.is_some() {
                    assert!(text.contains("1.3.6.1.4.1.311.21.7"), "{text}");
                    assert!(text.contains("DNS:ws01.corp.example"), "{text}");
                }
            }
        }
    }

    fn openssl_request(dir: &std::path::Path, newkey: &[&str], extra: &[&str]) -> Vec<u8> {
        let out = dir.join("r.der");
        let keyout = dir.join("k.pem");
        let mut args = vec!["req", "-new", "-nodes"];
        args.extend_from_slice(newkey);
        args.extend_from_slice(&["-keyout", keyout.to_str().unwrap()]);
        args.extend_from_slice(extra);
        args.extend_from_slice(&["-outform", "DER", "-out", out.to_str().unwrap()]);
        openssl(&args);
        std::fs::read(out).unwrap()
    }

    #[test]
    fn parses_openssl_requests() {
        let dir = tempfile::tempdir().unwrap();
        let der = openssl_request(
            dir.path(),
            &["-newkey", "rsa:3072"],
            &[
                "-subj",
                "/CN=web.corp.example/O=Corp",
                "-addext",
                "subjectAltName=DNS:web.corp.example,DNS:www.corp.example,IP:10.0.0.1",
                "-addext",
                "keyUsage=digitalSignature",
            ],
        );
        let csr = ParsedCsr::from_der(&der).unwrap();
        assert_eq!(csr.key_algorithm, KeyAlgorithm::Rsa { bits: 3072 });
        assert_eq!(csr.subject_common_name.as_deref(), Some("web.corp.example"));
        assert!(
            csr.subject.contains("CN=web.corp.example"),
            "{}",
            csr.subject
        );
        assert!(csr.subject.contains("O=Corp"), "{}", csr.subject);
        assert_eq!(
            csr.requested_dns_names,
            vec![
                "web.corp.example".to_string(),
                "www.corp.example".to_string()
            ]
        );
        assert_eq!(csr.template, None);

        // P-384 signed with SHA-384, with a challengePassword attribute.
        let der = openssl_request(
            dir.path(),
            &[
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-384",
                "-sha384",
            ],
            &["-subj", "/CN=x", "-addext", "subjectAltName=DNS:x.example"],
        );
        let csr = ParsedCsr::from_der(&der).unwrap();
        assert_eq!(csr.key_algorithm, KeyAlgorithm::EcdsaP384);
        assert_eq!(csr.requested_dns_names, vec!["x.example".to_string()]);

        // A small RSA key is read (its size is the policy's to judge), its
        // signature checked all the same.
        let der = openssl_request(dir.path(), &["-newkey", "rsa:1024"], &["-subj", "/CN=x"]);
        let csr = ParsedCsr::from_der(&der).unwrap();
        assert_eq!(csr.key_algorithm, KeyAlgorithm::Rsa { bits: 1024 });
        let mut flipped = der.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x01;
        let e = ParsedCsr::from_der(&flipped).unwrap_err();
        assert!(matches!(e, PkiError::Signature(_)), "{e}");
        let der = openssl_request(
            dir.path(),
            &["-newkey", "rsa:1536", "-sha512"],
            &["-subj", "/CN=x"],
        );
        let csr = ParsedCsr::from_der(&der).unwrap();
        assert_eq!(csr.key_algorithm, KeyAlgorithm::Rsa { bits: 1536 });

        // Below 1024 bits nothing can be verified: a key error, so that the
        // CA answers with the key-length denial.
        let der = openssl_request(dir.path(), &["-newkey", "rsa:512"], &["-subj", "/CN=x"]);
        let e = ParsedCsr::from_der(&der).unwrap_err();
        assert!(matches!(e, PkiError::Key(_)), "{e}");
        assert!(e.to_string().contains("RSA 512"), "{e}");
    }

    #[test]
    fn damaged_requests_are_errors() {
        let key = PrivateKey::generate(KeyAlgorithm::Rsa { bits: 2048 }).unwrap();
        let der = build_csr(&key, &CsrOptions::default()).unwrap();
        let mut flipped = der.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x01;
        let mut trailing = der.clone();
        trailing.push(0);
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("flipped signature", flipped, "signature does not verify"),
            (
                "truncated",
                der[..der.len() - 10].to_vec(),
                "malformed or truncated",
            ),
            ("empty", vec![], "malformed or truncated"),
            (
                "garbage",
                b"not a request at all".to_vec(),
                "malformed or truncated",
            ),
            ("trailing", trailing, "1 bytes after the request"),
        ];
        for (what, bytes, text) in cases {
            let e = ParsedCsr::from_der(&bytes).unwrap_err();
            if what == "flipped signature" {
                assert!(matches!(e, PkiError::Signature(_)), "{what}: {e}");
            } else {
                assert!(matches!(e, PkiError::Request(_)), "{what}: {e}");
            }
            assert!(e.to_string().contains(text), "{what}: {e}");
        }
    }

    #[test]
    fn malformed_template_extension_is_named() {
        // A template extension whose value is not a SEQUENCE.
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(
                ARCS_TEMPLATE_INFORMATION,
                vec![0x04, 0x00],
            ));
        let pair = key.rcgen_key_pair().unwrap();
        let der = params.serialize_request(&pair).unwrap().der().to_vec();
        let e = ParsedCsr::from_der(&der).unwrap_err();
        assert!(e.to_string().contains(OID_TEMPLATE_INFORMATION), "{e}");
    }
}
