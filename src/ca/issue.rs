//! The certificate builder: turns a [`CertificateProfile`] the issuance policy
//! decided into a signed X.509 certificate for the requester's public key.
//!
//! rcgen writes the frame (version, serial, issuer, validity, the key, the
//! authority key identifier from the issuer). Every other extension
//! is encoded here, because the profile carries AD CS values that rcgen has no
//! type for: raw `pKIKeyUsage` bits, the Microsoft template and SID
//! extensions, otherName SANs, policy OIDs. The subject is written here too:
//! rcgen's `DistinguishedName` keeps one value per attribute type, and a
//! directory path subject repeats `DC` and `CN`, so the subject rcgen emits
//! (empty) is replaced in the to-be-signed part. rcgen is handed the CA key
//! as a [`SignLater`], which leaves its signature empty: the final
//! to-be-signed part is signed once, here, with the CA key (an RSA-3072
//! signature is most of an issuance's CPU, so it is not spent twice).
//!
//! Extensions and their encodings (RFC 5280 section 4.2, adcs.md section 3):
//! - SubjectKeyIdentifier: SHA-1 of the subjectPublicKey bits (RFC 5280
//!   4.2.1.2, method 1), what Windows CAs use;
//! - KeyUsage from the `pKIKeyUsage` bytes, trailing zero bits dropped (DER);
//! - ExtendedKeyUsage, certificatePolicies and the application policies
//!   1.3.6.1.4.1.311.21.10 (one PolicyInformation per OID, no qualifiers);
//! - SubjectAltName: dNSName, rfc822Name, otherName UPN 1.3.6.1.4.1.311.20.2.3
//!   (UTF8String), otherName directory GUID 1.3.6.1.4.1.311.25.1 (OCTET STRING);
//!   critical when the subject is empty (RFC 5280 4.2.1.6);
//! - 1.3.6.1.4.1.311.21.7 template information, 1.3.6.1.4.1.311.20.2 template
//!   name ([MS-WCCE] 2.2.2.7.7.1, 2.2.2.7.7.2);
//! - 1.3.6.1.4.1.311.25.2 requester SID: `SEQUENCE { [0] { OID
//!   1.3.6.1.4.1.311.25.2.1, [0] { OCTET STRING <SID text> } } }`;
//! - basicConstraints cA=false when the template asks for it for end entities;
//! - CRL distribution points (one point, every URL) and authority information
//!   access (caIssuers) when the profile includes revocation information;
//! - id-pkix-ocsp-nocheck (RFC 6960 4.2.2.2.1), a NULL.
//!
//! An extension is critical when its OID is in the profile's
//! `critical_extensions` (`pKICriticalExtensions`).

use rcgen::{
    CertificateParams, CustomExtension, DistinguishedName, IsCa, Issuer, PublicKeyData,
    SerialNumber, SignatureAlgorithm, SigningKey, SubjectPublicKeyInfo,
};
use thiserror::Error;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo as ParsedSpki;

use super::profile::{
    CertificateProfile, SubjectAltName, subject_attribute_name, subject_attribute_oid,
};
use crate::pki::template_ext::{der_tlv, encode_template_information, encode_template_name};

/// Where relying parties find the CA's CRL and certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IssuerUrls {
    /// CRL distribution point URLs (HTTP and LDAP).
    pub crl: Vec<String>,
    /// caIssuers URLs of the authority information access (HTTP and LDAP).
    pub aia: Vec<String>,
}

/// Why a certificate could not be built.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum IssueError {
    #[error("requester public key: {0}")]
    PublicKey(String),
    #[error("serial number: {0}")]
    Serial(String),
    #[error("certificate profile of template {template}: {problem}")]
    Profile { template: String, problem: String },
    #[error("signing the certificate: {0}")]
    Sign(String),
}

/// OIDs of the extensions written here.
mod oid {
    pub const SUBJECT_KEY_IDENTIFIER: &str = "2.5.29.14";
    pub const KEY_USAGE: &str = "2.5.29.15";
    pub const SUBJECT_ALT_NAME: &str = "2.5.29.17";
    pub const BASIC_CONSTRAINTS: &str = "2.5.29.19";
    pub const CRL_DISTRIBUTION_POINTS: &str = "2.5.29.31";
    pub const CERTIFICATE_POLICIES: &str = "2.5.29.32";
    pub const EXTENDED_KEY_USAGE: &str = "2.5.29.37";
    pub const AUTHORITY_INFO_ACCESS: &str = "1.3.6.1.5.5.7.1.1";
    pub const CA_ISSUERS: &str = "1.3.6.1.5.5.7.48.2";
    pub const OCSP_NOCHECK: &str = "1.3.6.1.5.5.7.48.1.5";
    pub const TEMPLATE_INFORMATION: &str = "1.3.6.1.4.1.311.21.7";
    pub const TEMPLATE_NAME: &str = "1.3.6.1.4.1.311.20.2";
    pub const APPLICATION_POLICIES: &str = "1.3.6.1.4.1.311.21.10";
    pub const REQUESTER_SID: &str = "1.3.6.1.4.1.311.25.2";
    pub const REQUESTER_SID_VALUE: &str = "1.3.6.1.4.1.311.25.2.1";
    pub const UPN: &str = "1.3.6.1.4.1.311.20.2.3";
    pub const DIRECTORY_GUID: &str = "1.3.6.1.4.1.311.25.1";
    pub const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
    pub const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
    pub const P256: &str = "1.2.840.10045.3.1.7";
    pub const P384: &str = "1.3.132.0.34";
    pub const DOMAIN_COMPONENT: &str = "0.9.2342.19200300.100.1.25";
    pub const EMAIL_ADDRESS: &str = "1.2.840.113549.1.9.1";
    pub const COUNTRY: &str = "2.5.4.6";
    pub const SERIAL_NUMBER: &str = "2.5.4.5";
}

/// Builds and signs the certificate. `public_key_spki` is the requester's
/// SubjectPublicKeyInfo DER from the CSR; `serial` positive, 16+ random bytes
/// chosen by the caller. `issuer` holds the CA key as a [`SignLater`]: the
/// certificate is signed once, after its names are final.
pub fn build_certificate<K: SigningKey>(
    profile: &CertificateProfile,
    public_key_spki: &[u8],
    serial: &[u8],
    issuer: &Issuer<'_, SignLater<K>>,
    urls: &IssuerUrls,
) -> Result<Vec<u8>, IssueError> {
    let bad = |problem: String| IssueError::Profile {
        template: profile.template_cn.clone(),
        problem,
    };
    let key = RequesterKey::from_spki(public_key_spki)?;
    let serial = check_serial(serial)?;
    if profile.not_after <= profile.not_before {
        return Err(bad(format!(
            "validity ends ({}) before it starts ({})",
            profile.not_after, profile.not_before
        )));
    }
    let subject = encode_name(&profile.subject).map_err(bad)?;

    let mut params = CertificateParams::default();
    params.serial_number = Some(SerialNumber::from_slice(serial));
    params.not_before = profile.not_before;
    params.not_after = profile.not_after;
    // Placeholder: replaced by `subject` below (see the module doc).
    params.distinguished_name = DistinguishedName::new();
    params.is_ca = IsCa::NoCa;
    params.use_authority_key_identifier_extension = true;
    params.custom_extensions = extensions(profile, &key, urls).map_err(bad)?;

    let unsigned = params
        .signed_by(&key.spki, issuer)
        .map_err(|e| IssueError::Sign(e.to_string()))?;
    let subject = (!profile.subject.is_empty()).then_some(subject.as_slice());
    rewrite_names(unsigned.der(), subject, &issuer.key().0, Signing::Always)
        .map_err(IssueError::Sign)
}

/// The CA key as rcgen sees it when it only lays out a certificate: its
/// public half and algorithm, with an empty signature that
/// [`build_certificate`] replaces by the one real signature.
pub struct SignLater<K>(pub K);

impl<K: PublicKeyData> PublicKeyData for SignLater<K> {
    fn der_bytes(&self) -> &[u8] {
        self.0.der_bytes()
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.0.algorithm()
    }
}

impl<K: SigningKey> SigningKey for SignLater<K> {
    fn sign(&self, _msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        Ok(Vec::new())
    }
}

/// The requester's key as rcgen writes it, with what the extensions need.
struct RequesterKey {
    spki: SubjectPublicKeyInfo,
    /// The subjectPublicKey BIT STRING's bits, for the key identifier.
    key_bits: Vec<u8>,
}

impl RequesterKey {
    /// Accepts RSA and ECDSA P-256 / P-384 keys: the families templates name
    /// (`msPKI-RA-Application-Policies`) and the emulated CA issues for.
    fn from_spki(der: &[u8]) -> Result<Self, IssueError> {
        let bad = |m: String| IssueError::PublicKey(m);
        let (rest, parsed) = ParsedSpki::from_der(der)
            .map_err(|e| bad(format!("not a DER SubjectPublicKeyInfo: {e}")))?;
        if !rest.is_empty() {
            return Err(bad(format!(
                "{} bytes after the SubjectPublicKeyInfo",
                rest.len()
            )));
        }
        let algorithm = parsed.algorithm.algorithm.to_id_string();
        match algorithm.as_str() {
            oid::RSA_ENCRYPTION => match parsed.parsed() {
                Ok(PublicKey::RSA(_)) => {}
                _ => return Err(bad("the RSA public key does not decode".into())),
            },
            oid::EC_PUBLIC_KEY => {
                let curve = parsed
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.as_oid().ok())
                    .map(|o| o.to_id_string());
                match curve.as_deref() {
                    Some(oid::P256) | Some(oid::P384) => {}
                    Some(other) => {
                        return Err(bad(format!(
                            "elliptic curve {other} is not supported; P-256 or P-384 expected"
                        )));
                    }
                    None => return Err(bad("an EC key without a named curve".into())),
                }
            }
            other => {
                return Err(bad(format!(
                    "key algorithm {other} is not supported; RSA or ECDSA P-256/P-384 expected"
                )));
            }
        }
        if parsed.subject_public_key.unused_bits != 0 {
            return Err(bad("the subjectPublicKey BIT STRING has unused bits".into()));
        }
        let key_bits = parsed.subject_public_key.data.to_vec();
        let spki = SubjectPublicKeyInfo::from_der(der).map_err(|e| bad(e.to_string()))?;
        Ok(RequesterKey { spki, key_bits })
    }
}

/// A serial is a positive INTEGER of at most 20 octets (RFC 5280 4.1.2.2).
fn check_serial(serial: &[u8]) -> Result<&[u8], IssueError> {
    let start = serial.iter().position(|b| *b != 0);
    let Some(start) = start else {
        return Err(IssueError::Serial(
            "must be positive; got zero or no bytes".into(),
        ));
    };
    let magnitude = &serial[start..];
    let encoded = magnitude.len() + usize::from(magnitude[0] & 0x80 != 0);
    if encoded > 20 {
        return Err(IssueError::Serial(format!(
            "encodes in {encoded} octets, at most 20 are allowed"
        )));
    }
    Ok(magnitude)
}

/// The extensions of the profile, in a fixed order (after the authority key
/// identifier rcgen writes first).
fn extensions(
    p: &CertificateProfile,
    key: &RequesterKey,
    urls: &IssuerUrls,
) -> Result<Vec<CustomExtension>, String> {
    let mut out: Vec<(&str, Vec<u8>)> = Vec::new();
    if let Some((template_oid, major, minor)) = &p.template_information {
        let v =
            encode_template_information(template_oid, *major, *minor).map_err(|e| e.to_string())?;
        out.push((oid::TEMPLATE_INFORMATION, v));
    }
    if let Some(name) = &p.template_name {
        out.push((oid::TEMPLATE_NAME, encode_template_name(name)));
    }
    if !p.extended_key_usage.is_empty() {
        let oids = p
            .extended_key_usage
            .iter()
            .map(|o| der_oid(o))
            .collect::<Result<Vec<_>, _>>()?;
        out.push((oid::EXTENDED_KEY_USAGE, seq(&oids.concat())));
    }
    if let Some(bits) = p.key_usage.as_deref().and_then(key_usage_bit_string) {
        out.push((oid::KEY_USAGE, bits));
    }
    if !p.application_policies.is_empty() {
        out.push((
            oid::APPLICATION_POLICIES,
            policies(&p.application_policies)?,
        ));
    }
    if !p.issuance_policies.is_empty() {
        out.push((oid::CERTIFICATE_POLICIES, policies(&p.issuance_policies)?));
    }
    if let Some(sid) = &p.requester_sid {
        // otherName = [0] IMPLICIT SEQUENCE { type-id, [0] EXPLICIT value }.
        let value = der_tlv(0xa0, &der_tlv(0x04, sid.as_bytes()));
        let other_name = der_tlv(0xa0, &[der_oid(oid::REQUESTER_SID_VALUE)?, value].concat());
        out.push((oid::REQUESTER_SID, seq(&other_name)));
    }
    if !p.subject_alt_names.is_empty() {
        out.push((
            oid::SUBJECT_ALT_NAME,
            subject_alt_names(&p.subject_alt_names)?,
        ));
    }
    let ski =
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &key.key_bits);
    out.push((oid::SUBJECT_KEY_IDENTIFIER, der_tlv(0x04, ski.as_ref())));
    if p.basic_constraints_end_entity {
        // cA DEFAULT FALSE is omitted in DER.
        out.push((oid::BASIC_CONSTRAINTS, seq(&[])));
    }
    if p.include_revocation_info && !urls.crl.is_empty() {
        let names = urls
            .crl
            .iter()
            .map(|u| ia5(0x86, u, "CRL distribution point URL"))
            .collect::<Result<Vec<_>, _>>()?;
        // DistributionPoint { distributionPoint [0] { fullName [0] GeneralNames } }
        let point = seq(&der_tlv(0xa0, &der_tlv(0xa0, &names.concat())));
        out.push((oid::CRL_DISTRIBUTION_POINTS, seq(&point)));
    }
    if p.include_revocation_info && !urls.aia.is_empty() {
        let mut descriptions = Vec::new();
        for url in &urls.aia {
            let location = ia5(0x86, url, "authority information access URL")?;
            descriptions.extend(seq(&[der_oid(oid::CA_ISSUERS)?, location].concat()));
        }
        out.push((oid::AUTHORITY_INFO_ACCESS, seq(&descriptions)));
    }
    if p.ocsp_nocheck {
        out.push((oid::OCSP_NOCHECK, vec![0x05, 0x00]));
    }

    out.into_iter()
        .map(|(ext_oid, value)| {
            let arcs = oid_arcs(ext_oid)?;
            let mut ext = CustomExtension::from_oid_content(&arcs, value);
            let critical = p.critical_extensions.iter().any(|c| c == ext_oid)
                || (ext_oid == oid::SUBJECT_ALT_NAME && p.subject.is_empty());
            ext.set_criticality(critical);
            Ok(ext)
        })
        .collect()
}

/// KeyUsage BIT STRING from the `pKIKeyUsage` bytes; None when no bit is set.
fn key_usage_bit_string(bytes: &[u8]) -> Option<Vec<u8>> {
    let len = bytes.iter().rposition(|b| *b != 0)? + 1;
    let bits = &bytes[..len];
    let unused = bits[len - 1].trailing_zeros() as u8;
    let mut content = vec![unused];
    content.extend_from_slice(bits);
    Some(der_tlv(0x03, &content))
}

/// `SEQUENCE OF PolicyInformation { policyIdentifier }`.
fn policies(oids: &[String]) -> Result<Vec<u8>, String> {
    let mut content = Vec::new();
    for o in oids {
        content.extend(seq(&der_oid(o)?));
    }
    Ok(seq(&content))
}

fn subject_alt_names(names: &[SubjectAltName]) -> Result<Vec<u8>, String> {
    let mut content = Vec::new();
    for name in names {
        let entry = match name {
            SubjectAltName::Dns(d) => ia5(0x82, d, "DNS name")?,
            SubjectAltName::Email(m) => ia5(0x81, m, "e-mail address")?,
            SubjectAltName::Upn(u) => der_tlv(
                0xa0,
                &[
                    der_oid(oid::UPN)?,
                    der_tlv(0xa0, &der_tlv(0x0c, u.as_bytes())),
                ]
                .concat(),
            ),
            SubjectAltName::DirectoryGuid(g) => {
                if g.len() != 16 {
                    return Err(format!("a directory GUID is 16 bytes, found {}", g.len()));
                }
                der_tlv(
                    0xa0,
                    &[
                        der_oid(oid::DIRECTORY_GUID)?,
                        der_tlv(0xa0, &der_tlv(0x04, g)),
                    ]
                    .concat(),
                )
            }
        };
        content.extend(entry);
    }
    Ok(seq(&content))
}

/// The subject Name: one attribute per RDN, in the profile's order. DC and E
/// are IA5String (RFC 4519, PKCS #9), C and serialNumber PrintableString, the
/// rest UTF8String (RFC 5280 4.1.2.6).
pub(crate) fn encode_name(attributes: &[(String, String)]) -> Result<Vec<u8>, String> {
    let mut rdns = Vec::new();
    for (name, value) in attributes {
        let attr_oid = subject_attribute_oid(name)
            .ok_or_else(|| format!("unknown subject attribute type {name:?}"))?;
        let what = || {
            format!(
                "subject attribute {}",
                subject_attribute_name(name).unwrap_or_else(|| name.clone())
            )
        };
        let encoded_value = match attr_oid.as_str() {
            oid::DOMAIN_COMPONENT | oid::EMAIL_ADDRESS => ia5(0x16, value, &what())?,
            oid::COUNTRY | oid::SERIAL_NUMBER => {
                if !value.bytes().all(is_printable) {
                    return Err(format!(
                        "{} must be a PrintableString, found {value:?}",
                        what()
                    ));
                }
                der_tlv(0x13, value.as_bytes())
            }
            _ => der_tlv(0x0c, value.as_bytes()),
        };
        let atv = seq(&[der_oid(&attr_oid)?, encoded_value].concat());
        rdns.extend(der_tlv(0x31, &atv));
    }
    Ok(seq(&rdns))
}

/// The text that marks rcgen's stand-in for an issuer name it cannot write
/// (the CN of the stand-in, followed by the real name's DER in hex).
const STAND_IN_PREFIX: &str = "autoenroll stand-in for the issuer name ";

/// The rcgen issuer of certificates and CRLs signed by the CA whose
/// certificate is `ca_der`.
///
/// rcgen's `DistinguishedName` keeps one value per attribute type, so it
/// cannot write the name AD CS gives an enterprise CA, `DC=example, DC=corp,
/// CN=corp-CA` (every DC component of the domain). For such a name the
/// issuer rcgen gets is named by a stand-in that carries the real name; the
/// builders ([`build_certificate`], `build_crl`, [`restore_issuer_name`])
/// replace the stand-in with the real name, byte for byte the CA
/// certificate's subject (RFC 5280 4.1.2.4, 5.1.2.3: the issuer field must
/// match the CA's subject for path and CRL validation), and sign again.
pub fn ca_issuer<S: SigningKey>(ca_der: &[u8], key: S) -> Result<Issuer<'static, S>, String> {
    use x509_parser::extensions::ParsedExtension;
    let (_, cert) = x509_parser::parse_x509_certificate(ca_der)
        .map_err(|e| format!("the CA certificate does not parse: {e}"))?;
    let subject = cert.subject();
    let mut types = std::collections::HashSet::new();
    let repeated = subject
        .iter_attributes()
        .any(|a| !types.insert(a.attr_type().to_id_string()));
    if !repeated {
        return Issuer::from_ca_cert_der(&ca_der.into(), key)
            .map_err(|e| format!("the CA certificate cannot issue: {e}"));
    }
    let mut params = CertificateParams::default();
    params.distinguished_name = stand_in_name_for(subject.as_raw());
    params.key_identifier_method = rcgen::KeyIdMethod::Sha256;
    for ext in cert.extensions() {
        if let ParsedExtension::SubjectKeyIdentifier(id) = ext.parsed_extension() {
            params.key_identifier_method = rcgen::KeyIdMethod::PreSpecified(id.0.to_vec());
        }
    }
    if let Ok(Some(usage)) = cert.key_usage() {
        let u = usage.value;
        for (set, purpose) in [
            (
                u.digital_signature(),
                rcgen::KeyUsagePurpose::DigitalSignature,
            ),
            (u.key_cert_sign(), rcgen::KeyUsagePurpose::KeyCertSign),
            (u.crl_sign(), rcgen::KeyUsagePurpose::CrlSign),
        ] {
            if set {
                params.key_usages.push(purpose);
            }
        }
    }
    Ok(Issuer::new(params, key))
}

/// The name rcgen is given for `name` (DER), which it cannot write itself:
/// [`restore_issuer_name`] replaces it by `name` in the issuer field and, in
/// a self-signed certificate, the subject field.
pub fn stand_in_name_for(name: &[u8]) -> DistinguishedName {
    let hex: String = name.iter().map(|b| format!("{b:02x}")).collect();
    let mut dn = DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, format!("{STAND_IN_PREFIX}{hex}"));
    dn
}

/// Puts the real issuer name in place of rcgen's stand-in (see [`ca_issuer`])
/// in a certificate or CRL rcgen signed, and signs it again; anything else is
/// returned unchanged.
pub fn restore_issuer_name(der: &[u8], key: &impl SigningKey) -> Result<Vec<u8>, String> {
    rewrite_names(der, None, key, Signing::WhenChanged)
}

/// Whether [`rewrite_names`] signs a to-be-signed part it did not change.
#[derive(Clone, Copy, PartialEq)]
enum Signing {
    /// rcgen signed it already: sign again only what was rewritten.
    WhenChanged,
    /// rcgen left the signature empty ([`SignLater`]): always sign.
    Always,
}

/// The real name a stand-in issuer name carries, if `name` is one.
fn stand_in_name(name: &[u8]) -> Option<Vec<u8>> {
    let rdns = children(name)?;
    let [rdn] = rdns.as_slice() else { return None };
    let (tag, set, rest) = split_tlv(rdn)?;
    if tag != 0x31 || !rest.is_empty() {
        return None;
    }
    let atv = children(set)?;
    let [attr_type, value] = atv.as_slice() else {
        return None;
    };
    if *attr_type != [0x06, 0x03, 0x55, 0x04, 0x03] {
        return None;
    }
    let (_, text, _) = split_tlv(value)?;
    let hex = std::str::from_utf8(text)
        .ok()?
        .strip_prefix(STAND_IN_PREFIX)?;
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Rewrites a certificate or CRL (`SEQUENCE { tbs, algorithm, signature }`):
/// the subject when given (certificates only), the issuer when it is a
/// stand-in; signs the new to-be-signed part with `key`. Unchanged input is
/// returned as it is unless `signing` says always.
fn rewrite_names(
    der: &[u8],
    subject: Option<&[u8]>,
    key: &impl SigningKey,
    signing: Signing,
) -> Result<Vec<u8>, String> {
    let internal = |m: &str| format!("rewriting the names: {m}");
    let outer = children(der).ok_or_else(|| internal("not a SEQUENCE"))?;
    let [tbs, algorithm, _signature] = outer.as_slice() else {
        return Err(internal("not three parts"));
    };
    let mut fields = children(tbs).ok_or_else(|| internal("to-be-signed is not a SEQUENCE"))?;
    // tbsCertificate: version [0], serialNumber, signature, issuer, validity,
    // subject, ...; tbsCertList: version INTEGER (v2), signature, issuer, ...
    let is_certificate = fields.first().and_then(|f| f.first()) == Some(&0xa0);
    let issuer_index = match fields.first().and_then(|f| f.first()) {
        Some(0xa0) => 3,
        Some(0x02) => 2,
        _ => 1,
    };
    if fields.len() <= issuer_index || (is_certificate && fields.len() < 7) {
        return Err(internal("unexpected layout"));
    }
    let mut changed = false;
    let real_issuer = stand_in_name(fields[issuer_index]);
    if let Some(name) = &real_issuer {
        fields[issuer_index] = name;
        changed = true;
        // A self-signed certificate names itself twice.
        if is_certificate && stand_in_name(fields[5]).is_some() {
            fields[5] = name;
        }
    }
    if let Some(subject) = subject {
        if !is_certificate {
            return Err(internal("a CRL has no subject"));
        }
        fields[5] = subject;
        changed = true;
    }
    if !changed && signing == Signing::WhenChanged {
        return Ok(der.to_vec());
    }
    let new_tbs = seq(&fields.concat());
    let signature = key.sign(&new_tbs).map_err(|e| e.to_string())?;
    let mut bits = vec![0u8];
    bits.extend(signature);
    Ok(seq(
        &[new_tbs.as_slice(), algorithm, &der_tlv(0x03, &bits)].concat()
    ))
}

/// The complete TLVs inside a DER SEQUENCE (our own output, so short and long
/// definite lengths only).
fn children(der: &[u8]) -> Option<Vec<&[u8]>> {
    let (tag, content, rest) = split_tlv(der)?;
    if tag != 0x30 || !rest.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    let mut remaining = content;
    while !remaining.is_empty() {
        let (_, _, rest) = split_tlv(remaining)?;
        out.push(&remaining[..remaining.len() - rest.len()]);
        remaining = rest;
    }
    Some(out)
}

/// (tag, content, what follows) of the TLV at the start of `der`.
fn split_tlv(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *der.first()?;
    let first = *der.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let bytes = der.get(2..2 + n)?;
        (
            bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b)),
            2 + n,
        )
    };
    let end = header.checked_add(len)?;
    let content = der.get(header..end)?;
    Some((tag, content, &der[end..]))
}

fn seq(content: &[u8]) -> Vec<u8> {
    der_tlv(0x30, content)
}

/// An IA5String-valued field under `tag` (implicit GeneralName tags or the
/// universal IA5String tag); non-ASCII text is an error, never mangled.
fn ia5(tag: u8, value: &str, what: &str) -> Result<Vec<u8>, String> {
    if !value.is_ascii() {
        return Err(format!("{what} must be ASCII (IA5String), found {value:?}"));
    }
    Ok(der_tlv(tag, value.as_bytes()))
}

/// PrintableString characters (X.680 41.4).
fn is_printable(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b" '()+,-./:=?".contains(&b)
}

fn der_oid(dotted: &str) -> Result<Vec<u8>, String> {
    let parsed = der::asn1::ObjectIdentifier::new(dotted)
        .map_err(|e| format!("{dotted:?} is not an OID: {e}"))?;
    Ok(der_tlv(0x06, parsed.as_bytes()))
}

fn oid_arcs(dotted: &str) -> Result<Vec<u64>, String> {
    dotted
        .split('.')
        .map(|a| {
            a.parse::<u64>()
                .map_err(|_| format!("{dotted:?} is not an OID"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384,
        PKCS_RSA_SHA256, PublicKeyData, SignatureAlgorithm,
    };
    use std::path::Path;
    use std::process::Command;
    use time::macros::datetime;
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    use x509_parser::prelude::X509Certificate;

    use crate::pki::template_ext::CertificateInfo;

    struct TestCa {
        issuer: Issuer<'static, KeyPair>,
        der: Vec<u8>,
        pem: String,
    }

    impl TestCa {
        /// The issuer of certificates: the key signs once, after rcgen.
        fn cert_issuer(&self) -> Issuer<'static, SignLater<&KeyPair>> {
            ca_issuer(&self.der, SignLater(self.issuer.key())).unwrap()
        }
    }

    fn ca(alg: &'static SignatureAlgorithm) -> TestCa {
        let key = KeyPair::generate_for(alg).unwrap();
        let mut params = CertificateParams::default();
        // The name AD CS gives the enterprise CA, which rcgen cannot write:
        // signed as ca init signs it (stand-in, then the real name).
        let name = crate::ca::init::ca_subject("corp-CA", "DC=corp,DC=example").unwrap();
        params.distinguished_name = stand_in_name_for(&name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = datetime!(2024-01-01 0:00 UTC);
        params.not_after = datetime!(2034-01-01 0:00 UTC);
        let cert = params.self_signed(&key).unwrap();
        let der = restore_issuer_name(cert.der(), &key).unwrap();
        TestCa {
            pem: pem(&der),
            issuer: ca_issuer(&der, key).unwrap(),
            der,
        }
    }

    const TEMPLATE_OID: &str =
        "1.3.6.1.4.1.311.21.8.1000.2000.3000.4000.5000.6000.8782410.71273024";

    /// A WorkstationAuth-like machine profile with every extension switched on.
    fn machine_profile() -> CertificateProfile {
        CertificateProfile {
            template_cn: "WorkstationAuth".into(),
            subject: vec![("CN".into(), "ws01.corp.example".into())],
            subject_alt_names: vec![
                SubjectAltName::Upn("WS01$@corp.example".into()),
                SubjectAltName::DirectoryGuid(vec![
                    0x61, 0xcd, 0x27, 0xce, 0x46, 0x83, 0xf1, 0x5a, 0x9d, 0x8f, 0xfd, 0xef, 0x84,
                    0xbc, 0xa2, 0xbf,
                ]),
                SubjectAltName::Email("ws01@corp.example".into()),
                SubjectAltName::Dns("ws01.corp.example".into()),
            ],
            not_before: datetime!(2025-06-01 12:00 UTC),
            not_after: datetime!(2026-06-01 12:00 UTC),
            key_usage: Some(vec![0xa0, 0x00]),
            extended_key_usage: vec!["1.3.6.1.5.5.7.3.2".into(), "1.3.6.1.5.5.7.3.1".into()],
            application_policies: vec!["1.3.6.1.5.5.7.3.2".into()],
            issuance_policies: vec!["1.3.6.1.4.1.311.21.8.1.400".into()],
            critical_extensions: vec!["2.5.29.15".into()],
            template_information: Some((TEMPLATE_OID.into(), 101, 4)),
            template_name: Some("WorkstationAuth".into()),
            requester_sid: Some("S-1-5-21-1000-2000-3000-1201".into()),
            basic_constraints_end_entity: true,
            include_revocation_info: true,
            ocsp_nocheck: true,
        }
    }

    fn urls() -> IssuerUrls {
        IssuerUrls {
            crl: vec![
                "ldap:///CN=corp-CA,CN=ca,CN=CDP,CN=Public Key Services,CN=Services,CN=Configuration,DC=corp,DC=example?certificateRevocationList?base?objectClass=cRLDistributionPoint".into(),
                "http://ca.corp.example/pki/corp-CA.crl".into(),
            ],
            aia: vec!["http://ca.corp.example/pki/corp-CA.crt".into()],
        }
    }

    /// 2026-01-01T00:00:00Z, inside the test certificates' validity, for
    /// `openssl verify -attime`.
    const AT: &str = "1767225600";

    const SERIAL: [u8; 16] = [
        0x9a, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e,
        0x0f,
    ];

    fn ext_value<'a>(cert: &'a X509Certificate<'_>, oid_text: &str) -> Option<(bool, &'a [u8])> {
        cert.extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == oid_text)
            .map(|e| (e.critical, e.value))
    }

    fn openssl(args: &[&str], dir: &Path) -> String {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("the openssl command line tool must be installed for this test");
        assert!(
            out.status.success(),
            "openssl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn pem(der: &[u8]) -> String {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            lines.join("\n")
        )
    }

    /// Every extension, as x509-parser reads it.
    fn check_machine_certificate(der: &[u8], requester: &KeyPair, ca: &TestCa) {
        let (rest, cert) = X509Certificate::from_der(der).unwrap();
        assert!(rest.is_empty());
        assert_eq!(cert.version().0, 2, "X.509 v3");
        assert_eq!(cert.raw_serial(), &[&[0u8][..], &SERIAL].concat()[..]);
        assert_eq!(cert.subject().to_string(), "CN=ws01.corp.example");
        assert_eq!(cert.issuer().to_string(), "DC=example, DC=corp, CN=corp-CA");
        assert_eq!(
            cert.validity().not_before.to_datetime(),
            datetime!(2025-06-01 12:00 UTC)
        );
        assert_eq!(
            cert.validity().not_after.to_datetime(),
            datetime!(2026-06-01 12:00 UTC)
        );
        assert_eq!(
            cert.public_key().raw,
            requester.subject_public_key_info().as_slice(),
            "the requester's SubjectPublicKeyInfo, byte for byte"
        );

        let mut seen = Vec::new();
        for ext in cert.extensions() {
            let id = ext.oid.to_id_string();
            seen.push(id.clone());
            match ext.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(aki) => {
                    // Compared with the CA's SKI below.
                    assert!(!ext.critical);
                    assert!(aki.key_identifier.is_some());
                }
                ParsedExtension::SubjectKeyIdentifier(ski) => {
                    let d = aws_lc_rs::digest::digest(
                        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
                        requester.der_bytes(),
                    );
                    assert_eq!(ski.0, d.as_ref());
                }
                ParsedExtension::KeyUsage(ku) => {
                    assert!(ext.critical, "2.5.29.15 is in critical_extensions");
                    assert!(ku.digital_signature() && ku.key_encipherment());
                    assert!(!ku.non_repudiation() && !ku.data_encipherment());
                    assert_eq!(ext.value, &[0x03, 0x02, 0x05, 0xa0]);
                }
                ParsedExtension::ExtendedKeyUsage(eku) => {
                    assert!(!ext.critical);
                    assert!(eku.client_auth && eku.server_auth);
                }
                ParsedExtension::SubjectAlternativeName(san) => {
                    assert!(!ext.critical, "subject is not empty");
                    let names = &san.general_names;
                    assert_eq!(names.len(), 4);
                    match &names[0] {
                        GeneralName::OtherName(o, v) => {
                            assert_eq!(o.to_id_string(), "1.3.6.1.4.1.311.20.2.3");
                            assert_eq!(&v[..4], &[0xa0, 0x14, 0x0c, 0x12]);
                            assert_eq!(&v[4..], b"WS01$@corp.example");
                        }
                        other => panic!("UPN expected, got {other:?}"),
                    }
                    match &names[1] {
                        GeneralName::OtherName(o, v) => {
                            assert_eq!(o.to_id_string(), "1.3.6.1.4.1.311.25.1");
                            assert_eq!(&v[..4], &[0xa0, 0x12, 0x04, 0x10]);
                            assert_eq!(v[4], 0x61);
                        }
                        other => panic!("GUID expected, got {other:?}"),
                    }
                    assert_eq!(names[2], GeneralName::RFC822Name("ws01@corp.example"));
                    assert_eq!(names[3], GeneralName::DNSName("ws01.corp.example"));
                }
                ParsedExtension::BasicConstraints(bc) => {
                    assert!(!bc.ca);
                    assert_eq!(bc.path_len_constraint, None);
                    assert!(!ext.critical);
                }
                ParsedExtension::CertificatePolicies(policies) => {
                    assert_eq!(policies.len(), 1);
                    assert_eq!(
                        policies[0].policy_id.to_id_string(),
                        "1.3.6.1.4.1.311.21.8.1.400"
                    );
                    assert!(policies[0].policy_qualifiers.is_none());
                }
                ParsedExtension::CRLDistributionPoints(cdp) => {
                    assert_eq!(cdp.points.len(), 1);
                    let Some(x509_parser::extensions::DistributionPointName::FullName(names)) =
                        &cdp.points[0].distribution_point
                    else {
                        panic!("full name expected");
                    };
                    assert_eq!(names.len(), 2);
                    assert_eq!(
                        names[1],
                        GeneralName::URI("http://ca.corp.example/pki/corp-CA.crl")
                    );
                }
                ParsedExtension::AuthorityInfoAccess(aia) => {
                    assert_eq!(aia.accessdescs.len(), 1);
                    assert_eq!(
                        aia.accessdescs[0].access_method.to_id_string(),
                        "1.3.6.1.5.5.7.48.2"
                    );
                    assert_eq!(
                        aia.accessdescs[0].access_location,
                        GeneralName::URI("http://ca.corp.example/pki/corp-CA.crt")
                    );
                }
                _ => match id.as_str() {
                    "1.3.6.1.4.1.311.21.7" => {
                        let expected = encode_template_information(TEMPLATE_OID, 101, 4).unwrap();
                        assert_eq!(ext.value, expected.as_slice());
                    }
                    "1.3.6.1.4.1.311.20.2" => {
                        assert_eq!(ext.value, encode_template_name("WorkstationAuth"));
                    }
                    "1.3.6.1.4.1.311.21.10" => {
                        // SEQUENCE { SEQUENCE { OID 1.3.6.1.5.5.7.3.2 } }
                        assert_eq!(
                            ext.value,
                            &[
                                0x30, 0x0c, 0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05,
                                0x07, 0x03, 0x02
                            ]
                        );
                    }
                    "1.3.6.1.4.1.311.25.2" => {
                        let sid = b"S-1-5-21-1000-2000-3000-1201";
                        let mut expected = vec![0x30, 0x2e, 0xa0, 0x2c, 0x06, 0x0a];
                        expected
                            .extend([0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x19, 0x02, 0x01]);
                        expected.extend([0xa0, 0x1e, 0x04, 0x1c]);
                        expected.extend(sid);
                        assert_eq!(ext.value, expected.as_slice());
                    }
                    "1.3.6.1.5.5.7.48.1.5" => assert_eq!(ext.value, &[0x05, 0x00]),
                    other => panic!("unexpected extension {other}"),
                },
            }
        }
        let expected = vec![
            "2.5.29.35",
            "1.3.6.1.4.1.311.21.7",
            "1.3.6.1.4.1.311.20.2",
            "2.5.29.37",
            "2.5.29.15",
            "1.3.6.1.4.1.311.21.10",
            "2.5.29.32",
            "1.3.6.1.4.1.311.25.2",
            "2.5.29.17",
            "2.5.29.14",
            "2.5.29.19",
            "2.5.29.31",
            "1.3.6.1.5.5.7.1.1",
            "1.3.6.1.5.5.7.48.1.5",
        ];
        assert_eq!(seen, expected);

        // The project's own reader finds the template identity.
        let info = CertificateInfo::from_der(der).unwrap();
        let id = info.template.unwrap();
        assert_eq!(id.oid.as_deref(), Some(TEMPLATE_OID));
        assert_eq!((id.major, id.minor), (Some(101), Some(4)));
        assert_eq!(id.name.as_deref(), Some("WorkstationAuth"));

        // The AKI names the CA's key as rcgen identifies it in the CA certificate.
        let (_, ca_cert) = x509_parser::pem::parse_x509_pem(ca.pem.as_bytes()).unwrap();
        let ca_cert = ca_cert.parse_x509().unwrap();
        let ca_ski = ca_cert
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
                _ => None,
            })
            .unwrap();
        let aki = cert
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(a) => {
                    a.key_identifier.as_ref().map(|k| k.0.to_vec())
                }
                _ => None,
            })
            .unwrap();
        assert_eq!(aki, ca_ski);
    }

    /// Issues with every pairing of issuer and requester key and checks the
    /// result with x509-parser and with OpenSSL.
    #[test]
    fn issues_for_rsa_and_ecdsa_requesters_under_rsa_and_ecdsa_cas() {
        let dir = tempfile::tempdir().unwrap();
        for (ca_alg, ca_name) in [(&PKCS_RSA_SHA256, "rsa"), (&PKCS_ECDSA_P384_SHA384, "p384")] {
            let ca = ca(ca_alg);
            std::fs::write(dir.path().join("ca.pem"), &ca.pem).unwrap();
            for (req_alg, req_name) in
                [(&PKCS_RSA_SHA256, "rsa"), (&PKCS_ECDSA_P256_SHA256, "p256")]
            {
                let requester = KeyPair::generate_for(req_alg).unwrap();
                let der = build_certificate(
                    &machine_profile(),
                    &requester.subject_public_key_info(),
                    &SERIAL,
                    &ca.cert_issuer(),
                    &urls(),
                )
                .unwrap_or_else(|e| panic!("{ca_name} CA, {req_name} key: {e}"));
                check_machine_certificate(&der, &requester, &ca);

                let leaf = format!("leaf-{ca_name}-{req_name}.pem");
                std::fs::write(dir.path().join(&leaf), pem(&der)).unwrap();
                let verified = openssl(
                    &["verify", "-attime", AT, "-CAfile", "ca.pem", &leaf],
                    dir.path(),
                );
                assert!(verified.contains(": OK"), "{verified}");

                let text = openssl(&["x509", "-in", &leaf, "-noout", "-text"], dir.path());
                for expected in [
                    "Subject: CN = ws01.corp.example",
                    "Issuer: DC = example, DC = corp, CN = corp-CA",
                    "X509v3 Key Usage: critical",
                    "Digital Signature, Key Encipherment",
                    "TLS Web Client Authentication, TLS Web Server Authentication",
                    "DNS:ws01.corp.example",
                    "email:ws01@corp.example",
                    "othername: UPN::WS01$@corp.example",
                    "othername: 1.3.6.1.4.1.311.25.1::",
                    "CA:FALSE",
                    "URI:http://ca.corp.example/pki/corp-CA.crl",
                    "CA Issuers - URI:http://ca.corp.example/pki/corp-CA.crt",
                    "OCSP No Check",
                    "Policy: 1.3.6.1.4.1.311.21.8.1.400",
                    // OpenSSL has no name for the Microsoft extensions: it
                    // prints the OID and the value's bytes.
                    "1.3.6.1.4.1.311.21.7: \n",
                    "1.3.6.1.4.1.311.20.2: \n",
                    "1.3.6.1.4.1.311.21.10: \n",
                    "1.3.6.1.4.1.311.25.2: \n",
                    "S-1-5-21-1000-2000-3000-1201",
                ] {
                    assert!(text.contains(expected), "missing {expected:?} in\n{text}");
                }
                let key_text = if req_name == "rsa" {
                    "Public-Key: (2048 bit)"
                } else {
                    "NIST CURVE: P-256"
                };
                assert!(text.contains(key_text), "missing {key_text:?} in\n{text}");
            }
        }
    }

    /// The CA's name as AD CS writes it (every DC component) is the issuer of
    /// its certificates and CRLs byte for byte, and OpenSSL matches them.
    #[test]
    fn the_ca_name_with_every_dc_component_is_the_issuer_of_certificates_and_crls() {
        use crate::ca::crl::{CrlInput, build_crl};
        let dir = tempfile::tempdir().unwrap();
        let ca = ca(&PKCS_ECDSA_P256_SHA256);
        let ca_der = crate::store::pem::certificate_der(ca.pem.as_bytes()).unwrap();
        let (_, ca_cert) = X509Certificate::from_der(&ca_der).unwrap();
        assert_eq!(
            ca_cert.subject().to_string(),
            "DC=example, DC=corp, CN=corp-CA"
        );
        assert_eq!(ca_cert.issuer().as_raw(), ca_cert.subject().as_raw());
        assert_eq!(
            crate::ca::init::rfc4514_subject(&ca_der).unwrap(),
            "CN=corp-CA,DC=corp,DC=example"
        );
        let requester = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        for profile in [machine_profile(), {
            let mut p = machine_profile();
            p.subject.clear();
            p
        }] {
            let der = build_certificate(
                &profile,
                &requester.subject_public_key_info(),
                &SERIAL,
                &ca.cert_issuer(),
                &urls(),
            )
            .unwrap();
            let (_, leaf) = X509Certificate::from_der(&der).unwrap();
            assert_eq!(leaf.issuer().as_raw(), ca_cert.subject().as_raw());
            std::fs::write(dir.path().join("ca.pem"), &ca.pem).unwrap();
            std::fs::write(dir.path().join("leaf.pem"), pem(&der)).unwrap();
            let verified = openssl(
                &["verify", "-attime", AT, "-CAfile", "ca.pem", "leaf.pem"],
                dir.path(),
            );
            assert!(verified.contains(": OK"), "{verified}");
        }
        let crl = build_crl(
            &CrlInput {
                number: 7,
                this_update: datetime!(2025-06-01 12:00 UTC),
                next_update: datetime!(2025-06-08 12:00 UTC),
                revoked: &[],
            },
            &ca.issuer,
        )
        .unwrap();
        let (_, parsed) = x509_parser::prelude::CertificateRevocationList::from_der(&crl).unwrap();
        assert_eq!(parsed.issuer().as_raw(), ca_cert.subject().as_raw());
        std::fs::write(dir.path().join("crl.der"), &crl).unwrap();
        let out = Command::new("openssl")
            .args([
                "crl", "-inform", "DER", "-in", "crl.der", "-CAfile", "ca.pem", "-noout",
            ])
            .current_dir(dir.path())
            .output()
            .unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success() && all.contains("verify OK"), "{all}");
        // The project's own CRL check accepts it against this CA only.
        assert!(
            crate::pki::Crl::verified(
                &crl,
                std::slice::from_ref(&ca_der),
                datetime!(2025-06-02 12:00 UTC)
            )
            .is_ok()
        );
    }

    /// The CA key's signatures, counted.
    struct Counting<'a> {
        key: &'a KeyPair,
        signatures: std::cell::Cell<usize>,
    }

    impl PublicKeyData for Counting<'_> {
        fn der_bytes(&self) -> &[u8] {
            self.key.der_bytes()
        }
        fn algorithm(&self) -> &'static SignatureAlgorithm {
            self.key.algorithm()
        }
    }

    impl SigningKey for Counting<'_> {
        fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
            self.signatures.set(self.signatures.get() + 1);
            self.key.sign(msg)
        }
    }

    #[test]
    fn a_certificate_costs_one_signature_of_the_ca_key() {
        let ca = ca(&rcgen::PKCS_ECDSA_P256_SHA256);
        let requester = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let (_, ca_cert) = x509_parser::pem::parse_x509_pem(ca.pem.as_bytes()).unwrap();
        let ca_cert = ca_cert.parse_x509().unwrap();
        for subject in [machine_profile().subject, Vec::new()] {
            let mut profile = machine_profile();
            profile.subject = subject;
            let counting = Counting {
                key: ca.issuer.key(),
                signatures: std::cell::Cell::new(0),
            };
            let issuer = ca_issuer(&ca.der, SignLater(&counting)).unwrap();
            let der = build_certificate(
                &profile,
                &requester.subject_public_key_info(),
                &SERIAL,
                &issuer,
                &urls(),
            )
            .unwrap();
            assert_eq!(counting.signatures.get(), 1, "{:?}", profile.subject);
            let (_, cert) = X509Certificate::from_der(&der).unwrap();
            cert.verify_signature(Some(ca_cert.public_key())).unwrap();
            assert_eq!(cert.issuer().as_raw(), ca_cert.subject().as_raw());
        }
    }

    #[test]
    fn directory_path_subject_keeps_repeated_types_in_order() {
        let ca = ca(&PKCS_ECDSA_P256_SHA256);
        let requester = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut profile = machine_profile();
        profile.subject = vec![
            ("DC".into(), "example".into()),
            ("DC".into(), "corp".into()),
            ("CN".into(), "Users".into()),
            ("CN".into(), "alice".into()),
            ("E".into(), "alice@corp.example".into()),
        ];
        let der = build_certificate(
            &profile,
            &requester.subject_public_key_info(),
            &SERIAL,
            &ca.cert_issuer(),
            &urls(),
        )
        .unwrap();
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        assert_eq!(
            cert.subject().to_string(),
            "DC=example, DC=corp, CN=Users, CN=alice, Email=alice@corp.example"
        );
        // The re-signed certificate still verifies under the CA key.
        let (_, ca_cert) = x509_parser::pem::parse_x509_pem(ca.pem.as_bytes()).unwrap();
        let ca_cert = ca_cert.parse_x509().unwrap();
        cert.verify_signature(Some(ca_cert.public_key())).unwrap();

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), &ca.pem).unwrap();
        std::fs::write(dir.path().join("leaf.pem"), pem(&der)).unwrap();
        let verified = openssl(
            &["verify", "-attime", AT, "-CAfile", "ca.pem", "leaf.pem"],
            dir.path(),
        );
        assert!(verified.contains("leaf.pem: OK"), "{verified}");
        let text = openssl(
            &[
                "x509", "-in", "leaf.pem", "-noout", "-subject", "-nameopt", "RFC2253",
            ],
            dir.path(),
        );
        assert_eq!(
            text.trim(),
            "subject=emailAddress=alice@corp.example,CN=alice,CN=Users,DC=corp,DC=example"
        );
    }

    #[test]
    fn empty_subject_makes_san_critical_and_lean_profile_has_few_extensions() {
        let ca = ca(&PKCS_ECDSA_P256_SHA256);
        let requester = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let profile = CertificateProfile {
            subject: vec![],
            subject_alt_names: vec![SubjectAltName::Dns("ws01.corp.example".into())],
            key_usage: Some(vec![0x00, 0x00]),
            extended_key_usage: vec![],
            application_policies: vec![],
            issuance_policies: vec![],
            critical_extensions: vec![],
            template_information: None,
            template_name: Some("Machine".into()),
            requester_sid: None,
            basic_constraints_end_entity: false,
            include_revocation_info: false,
            ocsp_nocheck: false,
            ..machine_profile()
        };
        let der = build_certificate(
            &profile,
            &requester.subject_public_key_info(),
            &[0x01],
            &ca.cert_issuer(),
            &urls(),
        )
        .unwrap();
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        assert_eq!(cert.subject().iter().count(), 0);
        assert!(ext_value(&cert, "2.5.29.17").unwrap().0, "SAN critical");
        let ids: Vec<String> = cert
            .extensions()
            .iter()
            .map(|e| e.oid.to_id_string())
            .collect();
        assert_eq!(
            ids,
            [
                "2.5.29.35",
                "1.3.6.1.4.1.311.20.2",
                "2.5.29.17",
                "2.5.29.14"
            ],
            "no key usage (no bit set), no revocation info, no SID"
        );
    }

    #[test]
    fn key_usage_encoding() {
        let cases: [(&[u8], Option<&[u8]>); 5] = [
            (&[0xa0, 0x00], Some(&[0x03, 0x02, 0x05, 0xa0])),
            (&[0x80, 0x00], Some(&[0x03, 0x02, 0x07, 0x80])),
            (&[0x86], Some(&[0x03, 0x02, 0x01, 0x86])),
            (&[0x00, 0x80], Some(&[0x03, 0x03, 0x07, 0x00, 0x80])),
            (&[0x00, 0x00], None),
        ];
        for (input, expected) in cases {
            assert_eq!(
                key_usage_bit_string(input).as_deref(),
                expected,
                "{input:02x?}"
            );
        }
        assert_eq!(key_usage_bit_string(&[]), None);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let ca = ca(&PKCS_ECDSA_P256_SHA256);
        let requester = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let spki = requester.subject_public_key_info();
        let build = |p: &CertificateProfile, spki: &[u8], serial: &[u8]| {
            build_certificate(p, spki, serial, &ca.cert_issuer(), &urls())
        };
        let good = machine_profile();

        assert!(matches!(
            build(&good, &[0x30, 0x00], &SERIAL),
            Err(IssueError::PublicKey(_))
        ));
        let mut trailing = spki.clone();
        trailing.push(0);
        assert!(matches!(
            build(&good, &trailing, &SERIAL),
            Err(IssueError::PublicKey(_))
        ));
        let ed = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let err = build(&good, &ed.subject_public_key_info(), &SERIAL).unwrap_err();
        assert!(err.to_string().contains("1.3.101.112"), "{err}");

        assert!(matches!(
            build(&good, &spki, &[]),
            Err(IssueError::Serial(_))
        ));
        assert!(matches!(
            build(&good, &spki, &[0, 0]),
            Err(IssueError::Serial(_))
        ));
        assert!(matches!(
            build(&good, &spki, &[0xff; 20]),
            Err(IssueError::Serial(_))
        ));
        assert!(build(&good, &spki, &[0x7f; 20]).is_ok());
        assert!(build(&good, &spki, &[0x00, 0xff, 0x01]).is_ok());

        let cases: Vec<(CertificateProfile, &str)> = vec![
            (
                CertificateProfile {
                    subject: vec![("XYZ".into(), "v".into())],
                    ..good.clone()
                },
                "unknown subject attribute type \"XYZ\"",
            ),
            (
                CertificateProfile {
                    subject: vec![("DC".into(), "exämple".into())],
                    ..good.clone()
                },
                "subject attribute DC must be ASCII",
            ),
            (
                CertificateProfile {
                    subject: vec![("C".into(), "D_E".into())],
                    ..good.clone()
                },
                "subject attribute C must be a PrintableString",
            ),
            (
                CertificateProfile {
                    extended_key_usage: vec!["not.an.oid".into()],
                    ..good.clone()
                },
                "\"not.an.oid\" is not an OID",
            ),
            (
                CertificateProfile {
                    subject_alt_names: vec![SubjectAltName::Dns("wß.example".into())],
                    ..good.clone()
                },
                "DNS name must be ASCII",
            ),
            (
                CertificateProfile {
                    subject_alt_names: vec![SubjectAltName::DirectoryGuid(vec![1, 2, 3])],
                    ..good.clone()
                },
                "a directory GUID is 16 bytes, found 3",
            ),
            (
                CertificateProfile {
                    not_after: good.not_before,
                    ..good.clone()
                },
                "validity ends",
            ),
        ];
        for (profile, expected) in cases {
            let err = build(&profile, &spki, &SERIAL).unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains(expected) && text.contains("WorkstationAuth"),
                "{expected:?} not in {text:?}"
            );
        }
    }
}
