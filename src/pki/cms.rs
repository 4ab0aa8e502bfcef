//! CMS SignedData (RFC 5652): renewal requests signed with the old key, and the
//! certs-only PKCS#7 that carries a chain.
//!
//! A renewal ([MS-WCCE] 2.2.2.6, adcs.md section 6) is a SignedData whose
//! encapsulated content (id-data) is the new PKCS#10, whose `certificates`
//! hold the certificate being renewed, and whose one signer is that
//! certificate's key.
//!
//! Messages are built with the RustCrypto `cms` types (which encode SETs in
//! DER order) and signed with aws-lc-rs. They are read with a hand walk over
//! the DER so that the signature is checked over the signed attributes exactly
//! as received and certificates are returned byte for byte, never re-encoded.

use aws_lc_rs::digest;
use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{ObjectIdentifier, OctetString, SetOfVec, UtcTime};
use der::{Any, Decode, Encode};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_cert::attr::Attribute;
use x509_parser::asn1_rs::Tag;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::csr::ParsedCsr;
use super::der_cursor::{Cursor, Element, single};
use super::keys::{KeyAlgorithm, PrivateKey, oid, verify_signature_with_digest};
use super::template_ext::PkiError;

/// id-data (RFC 5652 4).
pub const OID_DATA: &str = "1.2.840.113549.1.7.1";
/// id-signedData (RFC 5652 5.1).
pub const OID_SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
/// id-contentType attribute (RFC 5652 11.1).
const OID_CONTENT_TYPE: &str = "1.2.840.113549.1.9.3";
/// id-messageDigest attribute (RFC 5652 11.2).
const OID_MESSAGE_DIGEST: &str = "1.2.840.113549.1.9.4";
/// id-signingTime attribute (RFC 5652 11.3).
const OID_SIGNING_TIME: &str = "1.2.840.113549.1.9.5";
/// id-cct-PKIData: a CMC request (RFC 5272 3.2), which AD CS also accepts.
const OID_CMC_PKI_DATA: &str = "1.3.6.1.5.5.7.12.2";
/// subjectKeyIdentifier extension (RFC 5280 4.2.1.2).
const OID_SUBJECT_KEY_IDENTIFIER: &str = "2.5.29.14";

fn cms_err(m: impl Into<String>) -> PkiError {
    PkiError::Cms(m.into())
}

fn object_id(dotted: &'static str) -> Result<ObjectIdentifier, PkiError> {
    ObjectIdentifier::new(dotted).map_err(|e| cms_err(format!("OID {dotted}: {e}")))
}

fn encode_err(what: &str) -> impl Fn(der::Error) -> PkiError + '_ {
    move |e| cms_err(format!("cannot encode {what}: {e}"))
}

/// The aws-lc-rs digest for a digest algorithm OID (RFC 5754 2).
fn digest_algorithm(oid_text: &str) -> Result<&'static digest::Algorithm, PkiError> {
    match oid_text {
        oid::SHA256 => Ok(&digest::SHA256),
        oid::SHA384 => Ok(&digest::SHA384),
        oid::SHA512 => Ok(&digest::SHA512),
        oid::SHA1 => Err(cms_err("SHA-1 digests are not accepted")),
        other => Err(cms_err(format!("unsupported digest algorithm {other}"))),
    }
}

/// Decodes a certificate into the `cms` types, insisting that it encodes back
/// to the same bytes: a message must carry the certificate exactly as issued.
fn certificate_for_cms(der: &[u8], what: &str) -> Result<Certificate, PkiError> {
    let cert = Certificate::from_der(der)
        .map_err(|e| cms_err(format!("{what}: not a certificate: {e}")))?;
    if cert.to_der().map_err(encode_err(what))? != der {
        return Err(cms_err(format!(
            "{what}: the certificate is not in canonical DER"
        )));
    }
    Ok(cert)
}

/// The raw `subjectPublicKey` bits of a certificate.
fn certificate_key_bits(der: &[u8]) -> Result<Vec<u8>, String> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| format!("not a certificate: {e}"))?;
    Ok(cert.public_key().subject_public_key.data.to_vec())
}

/// Builds a renewal request ([MS-WCCE] 2.2.2.6): SignedData around the new
/// PKCS#10, carrying the old certificate and signed with the old key over
/// signed attributes contentType, messageDigest and signingTime (RFC 5652
/// 5.3-5.4). The digest is SHA-256, SHA-384 for a P-384 key.
pub fn build_renewal_request(
    new_csr_der: &[u8],
    old_certificate_der: &[u8],
    old_key: &PrivateKey,
) -> Result<Vec<u8>, PkiError> {
    single(new_csr_der, Tag::Sequence, "the new request").map_err(cms_err)?;
    let cert = certificate_for_cms(old_certificate_der, "the old certificate")?;
    let cert_bits = certificate_key_bits(old_certificate_der)
        .map_err(|e| cms_err(format!("the old certificate: {e}")))?;
    let key_spki = old_key.public_key_der();
    let key_bits = x509_parser::x509::SubjectPublicKeyInfo::from_der(&key_spki)
        .map(|(_, s)| s.subject_public_key.data.to_vec())
        .map_err(|e| cms_err(format!("the old key's public key: {e}")))?;
    if cert_bits != key_bits {
        return Err(cms_err("the old key is not the key of the old certificate"));
    }

    let alg = old_key.algorithm();
    let digest_oid = alg.digest_algorithm_oid();
    let digest_alg = AlgorithmIdentifierOwned {
        oid: object_id(digest_oid)?,
        parameters: None,
    };
    let content_digest = digest::digest(digest_algorithm(digest_oid)?, new_csr_der);

    let attribute = |oid_text: &'static str, value: Any| -> Result<Attribute, PkiError> {
        Ok(Attribute {
            oid: object_id(oid_text)?,
            values: SetOfVec::try_from(vec![value]).map_err(encode_err("an attribute"))?,
        })
    };
    let mut attributes = vec![
        attribute(
            OID_CONTENT_TYPE,
            Any::encode_from(&object_id(OID_DATA)?).map_err(encode_err("contentType"))?,
        )?,
        attribute(
            OID_MESSAGE_DIGEST,
            Any::encode_from(
                &OctetString::new(content_digest.as_ref()).map_err(encode_err("messageDigest"))?,
            )
            .map_err(encode_err("messageDigest"))?,
        )?,
    ];
    // signingTime is optional; UTCTime until 2049 (RFC 5652 11.3), and simply
    // left out after that rather than switching encodings.
    if let Ok(now) = UtcTime::from_system_time(std::time::SystemTime::now()) {
        attributes.push(attribute(
            OID_SIGNING_TIME,
            Any::encode_from(&now).map_err(encode_err("signingTime"))?,
        )?);
    }
    let signed_attrs = SetOfVec::try_from(attributes).map_err(encode_err("signed attributes"))?;
    // The signature covers the DER of the SET OF attributes (RFC 5652 5.4).
    let to_sign = signed_attrs
        .to_der()
        .map_err(encode_err("signed attributes"))?;
    let signature = old_key.sign(&to_sign)?;

    // RSA signers name rsaEncryption (RFC 3370 3.2, what Windows and OpenSSL
    // write); ECDSA signers name ecdsa-with-SHA* (RFC 5753 7.1.3).
    let signature_algorithm = match alg {
        KeyAlgorithm::Rsa { .. } => AlgorithmIdentifierOwned {
            oid: object_id(oid::RSA_ENCRYPTION)?,
            parameters: Some(Any::null()),
        },
        KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384 => AlgorithmIdentifierOwned {
            oid: object_id(alg.signature_algorithm_oid())?,
            parameters: None,
        },
    };
    let signer = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: cert.tbs_certificate.issuer.clone(),
            serial_number: cert.tbs_certificate.serial_number.clone(),
        }),
        digest_alg: digest_alg.clone(),
        signed_attrs: Some(signed_attrs),
        signature_algorithm,
        signature: OctetString::new(signature).map_err(encode_err("the signature"))?,
        unsigned_attrs: None,
    };
    let signed_data = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![digest_alg])
            .map_err(encode_err("digestAlgorithms"))?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: object_id(OID_DATA)?,
            econtent: Some(
                Any::new(der::Tag::OctetString, new_csr_der).map_err(encode_err("eContent"))?,
            ),
        },
        certificates: Some(
            CertificateSet::try_from(vec![CertificateChoices::Certificate(cert)])
                .map_err(encode_err("certificates"))?,
        ),
        crls: None,
        signer_infos: SignerInfos::try_from(vec![signer]).map_err(encode_err("signerInfos"))?,
    };
    content_info(&signed_data)
}

/// `ContentInfo { id-signedData, [0] SignedData }`, DER.
fn content_info(signed_data: &SignedData) -> Result<Vec<u8>, PkiError> {
    ContentInfo {
        content_type: object_id(OID_SIGNED_DATA)?,
        content: Any::encode_from(signed_data).map_err(encode_err("SignedData"))?,
    }
    .to_der()
    .map_err(encode_err("ContentInfo"))
}

/// A request carried in a verified SignedData.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// The encapsulated content (a PKCS#10 request), as received.
    pub content: Vec<u8>,
    /// The certificate (from `certificates`) whose key verified the signature,
    /// as received.
    pub signer_certificate: Vec<u8>,
}

/// The parts of a SignedData this module uses, as slices of the input.
pub(crate) struct SignedDataView<'a> {
    pub content_type: String,
    pub content: Option<&'a [u8]>,
    pub certificates: Vec<&'a [u8]>,
    pub signers: Vec<Element<'a>>,
}

/// Walks `ContentInfo { id-signedData, [0] EXPLICIT SignedData }` (RFC 5652
/// 3, 5.1-5.2). Definite-length DER only.
pub(crate) fn read_signed_data(der: &[u8]) -> Result<SignedDataView<'_>, String> {
    let ci = single(der, Tag::Sequence, "ContentInfo")?;
    let mut c = ci.children("ContentInfo")?;
    let content_type = c.next("contentType")?.oid("contentType")?;
    if content_type != OID_SIGNED_DATA {
        return Err(format!(
            "content type {content_type} is not SignedData ({OID_SIGNED_DATA})"
        ));
    }
    let wrapped = c
        .optional_context(0, "content")?
        .ok_or("ContentInfo: the [0] content is missing")?;
    c.finish("the content")?;
    let mut w = wrapped.children("ContentInfo content")?;
    let sd = w.expect(Tag::Sequence, "SignedData")?;
    w.finish("SignedData")?;

    let mut s = sd.children("SignedData")?;
    s.expect(Tag::Integer, "version")?;
    s.expect(Tag::Set, "digestAlgorithms")?;
    let encap = s.expect(Tag::Sequence, "encapContentInfo")?;
    let certs = s.optional_context(0, "certificates")?;
    s.optional_context(1, "crls")?;
    let signer_set = s.expect(Tag::Set, "signerInfos")?;
    s.finish("signerInfos")?;

    let mut e = encap.children("encapContentInfo")?;
    let econtent_type = e.next("eContentType")?.oid("eContentType")?;
    let content = match e.optional_context(0, "eContent")? {
        Some(explicit) => {
            let mut x = explicit.children("eContent")?;
            let octets = x.expect(Tag::OctetString, "eContent")?;
            x.finish("eContent")?;
            if octets.any.header.is_constructed() {
                return Err(
                    "eContent: a constructed (BER) OCTET STRING is not supported".to_string(),
                );
            }
            Some(octets.content())
        }
        None => None,
    };
    e.finish("eContent")?;

    let mut certificates = Vec::new();
    if let Some(certs) = certs {
        let mut list = certs.children("certificates")?;
        while !list.is_empty() {
            let choice = list.next("certificate")?;
            // Only the plain Certificate choice (a SEQUENCE); attribute and
            // other certificate formats are not signers of requests.
            if choice.is_universal(Tag::Sequence) {
                certificates.push(choice.raw);
            }
        }
    }
    let mut signers = Vec::new();
    let mut list = signer_set.children("signerInfos")?;
    while !list.is_empty() {
        signers.push(list.expect(Tag::Sequence, "SignerInfo")?);
    }
    Ok(SignedDataView {
        content_type: econtent_type,
        content,
        certificates,
        signers,
    })
}

/// How a SignerInfo names its certificate (RFC 5652 5.3).
enum SignerId<'a> {
    IssuerSerial { issuer: &'a [u8], serial: &'a [u8] },
    KeyId(&'a [u8]),
}

impl SignerId<'_> {
    /// Whether the certificate (DER) is the one named.
    fn matches(&self, cert_der: &[u8]) -> bool {
        let Ok((_, cert)) = X509Certificate::from_der(cert_der) else {
            return false;
        };
        match self {
            SignerId::IssuerSerial { issuer, serial } => {
                cert.tbs_certificate.issuer.as_raw() == *issuer
                    && strip_zeros(cert.raw_serial()) == strip_zeros(serial)
            }
            SignerId::KeyId(id) => {
                let ski = cert
                    .extensions()
                    .iter()
                    .find(|e| e.oid.to_id_string() == OID_SUBJECT_KEY_IDENTIFIER)
                    .and_then(|e| {
                        single(e.value, Tag::OctetString, "subjectKeyIdentifier")
                            .ok()
                            .map(|o| o.content().to_vec())
                    });
                match ski {
                    Some(ski) => ski == *id,
                    // Without the extension, the RFC 5280 4.2.1.2 method (1)
                    // identifier: SHA-1 of the subjectPublicKey bits.
                    None => {
                        let sha1 = digest::digest(
                            &digest::SHA1_FOR_LEGACY_USE_ONLY,
                            &cert.public_key().subject_public_key.data,
                        );
                        sha1.as_ref() == *id
                    }
                }
            }
        }
    }
}

/// An INTEGER's content without leading zero bytes, so 00 80 and 80 compare
/// equal whichever way a writer padded the serial.
fn strip_zeros(b: &[u8]) -> &[u8] {
    let i = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    &b[i..]
}

/// The first OID of an AlgorithmIdentifier.
fn algorithm_oid(e: &Element<'_>, what: &str) -> Result<String, String> {
    let mut c = e.children(what)?;
    c.next(what)?.oid(what)
}

/// Verifies a CMS SignedData carrying a request and returns the content and
/// the signer's certificate.
///
/// The signer is found among `certificates` by issuerAndSerialNumber or
/// subjectKeyIdentifier. With signed attributes, contentType must equal the
/// eContentType and messageDigest the digest of the content, and the signature
/// covers the attributes re-tagged as a SET (RFC 5652 5.4); without them it
/// covers the content itself.
pub fn open_signed_request(der: &[u8]) -> Result<SignedRequest, PkiError> {
    let view = read_signed_data(der).map_err(cms_err)?;
    match view.content_type.as_str() {
        OID_DATA => {}
        OID_CMC_PKI_DATA => {
            return Err(cms_err(
                "CMC requests (id-cct-PKIData) are not supported; send PKCS#10 in id-data",
            ));
        }
        other => {
            return Err(cms_err(format!(
                "eContentType {other}: a request must be id-data ({OID_DATA})"
            )));
        }
    }
    let content = view.content.ok_or_else(|| {
        cms_err("the content is detached; the request must be inside the message")
    })?;
    let signer = match view.signers.as_slice() {
        [one] => one,
        [] => return Err(cms_err("the message has no signer")),
        many => {
            return Err(cms_err(format!(
                "the message has {} signers; a request carries exactly one",
                many.len()
            )));
        }
    };
    let signer_certificate =
        verify_signer(signer, &view.content_type, content, &view.certificates)?;
    Ok(SignedRequest {
        content: content.to_vec(),
        signer_certificate: signer_certificate.to_vec(),
    })
}

/// Checks one SignerInfo (RFC 5652 5.3, 5.4, 5.6); returns its certificate.
pub(crate) fn verify_signer<'a>(
    signer: &Element<'_>,
    content_type: &str,
    content: &[u8],
    certificates: &[&'a [u8]],
) -> Result<&'a [u8], PkiError> {
    let bad = |m: String| cms_err(format!("SignerInfo: {m}"));
    let mut s = signer.children("SignerInfo").map_err(bad)?;
    s.expect(Tag::Integer, "version").map_err(bad)?;
    let sid_element = s.next("sid").map_err(bad)?;
    let sid = if sid_element.is_universal(Tag::Sequence) {
        let mut i = sid_element.children("issuerAndSerialNumber").map_err(bad)?;
        let issuer = i.expect(Tag::Sequence, "issuer").map_err(bad)?;
        let serial = i.expect(Tag::Integer, "serialNumber").map_err(bad)?;
        i.finish("serialNumber").map_err(bad)?;
        SignerId::IssuerSerial {
            issuer: issuer.raw,
            serial: serial.content(),
        }
    } else if sid_element.is_context(0) && !sid_element.any.header.is_constructed() {
        SignerId::KeyId(sid_element.content())
    } else {
        return Err(bad(format!(
            "sid: expected issuerAndSerialNumber or [0] subjectKeyIdentifier, found {}",
            sid_element.describe_tag()
        )));
    };
    let digest_oid = algorithm_oid(
        &s.expect(Tag::Sequence, "digestAlgorithm").map_err(bad)?,
        "digestAlgorithm",
    )
    .map_err(bad)?;
    let signed_attrs = s.optional_context(0, "signedAttrs").map_err(bad)?;
    let signature_oid = algorithm_oid(
        &s.expect(Tag::Sequence, "signatureAlgorithm").map_err(bad)?,
        "signatureAlgorithm",
    )
    .map_err(bad)?;
    let signature = s.expect(Tag::OctetString, "signature").map_err(bad)?;
    s.optional_context(1, "unsignedAttrs").map_err(bad)?;
    s.finish("the signer's attributes").map_err(bad)?;

    let cert = certificates
        .iter()
        .copied()
        .find(|c| sid.matches(c))
        .ok_or_else(|| cms_err("the signer's certificate is not in the message"))?;
    let (_, parsed) = X509Certificate::from_der(cert)
        .map_err(|e| cms_err(format!("the signer's certificate: {e}")))?;
    let spki = parsed.public_key().raw;

    let message: Vec<u8> = match signed_attrs {
        Some(attrs) => {
            check_signed_attributes(&attrs, &digest_oid, content_type, content)?;
            // [0] IMPLICIT (tag byte 0xA0) becomes the SET tag 0x31; length
            // and content stay exactly as received.
            let mut m = attrs.raw.to_vec();
            if let Some(tag) = m.first_mut() {
                *tag = 0x31;
            }
            m
        }
        None => content.to_vec(),
    };
    verify_signature_with_digest(
        spki,
        &digest_oid,
        &signature_oid,
        &message,
        signature.content(),
    )
    .map_err(|e| cms_err(e.to_string()))?;
    Ok(cert)
}

/// contentType and messageDigest must be present, single-valued and right
/// (RFC 5652 5.3, 11.1, 11.2).
fn check_signed_attributes(
    attrs: &Element<'_>,
    digest_oid: &str,
    content_type: &str,
    content: &[u8],
) -> Result<(), PkiError> {
    let bad = |m: String| cms_err(format!("signed attributes: {m}"));
    let mut list = attrs.children("signedAttrs").map_err(bad)?;
    let mut seen_type = false;
    let mut seen_digest = false;
    while !list.is_empty() {
        let attr = list.expect(Tag::Sequence, "attribute").map_err(bad)?;
        let mut a: Cursor<'_> = attr.children("attribute").map_err(bad)?;
        let attr_oid = a
            .next("attrType")
            .and_then(|e| e.oid("attrType"))
            .map_err(bad)?;
        let values = a.expect(Tag::Set, "attrValues").map_err(bad)?;
        a.finish("attrValues").map_err(bad)?;
        let single_value = || -> Result<Element<'_>, PkiError> {
            let mut v = values.children(&attr_oid).map_err(bad)?;
            let value = v.next("the value").map_err(bad)?;
            v.finish("the value (single-valued attribute)")
                .map_err(bad)?;
            Ok(value)
        };
        match attr_oid.as_str() {
            OID_CONTENT_TYPE => {
                if seen_type {
                    return Err(bad("contentType appears twice".into()));
                }
                seen_type = true;
                let value = single_value()?.oid("contentType").map_err(bad)?;
                if value != content_type {
                    return Err(bad(format!(
                        "contentType {value} differs from eContentType {content_type}"
                    )));
                }
            }
            OID_MESSAGE_DIGEST => {
                if seen_digest {
                    return Err(bad("messageDigest appears twice".into()));
                }
                seen_digest = true;
                let value = single_value()?;
                if !value.is_universal(Tag::OctetString) {
                    return Err(bad("messageDigest is not an OCTET STRING".into()));
                }
                let actual = digest::digest(digest_algorithm(digest_oid)?, content);
                if value.content() != actual.as_ref() {
                    return Err(bad(
                        "messageDigest does not match the content (the content was altered)".into(),
                    ));
                }
            }
            _ => {}
        }
    }
    if !seen_type {
        return Err(bad("contentType is missing".into()));
    }
    if !seen_digest {
        return Err(bad("messageDigest is missing".into()));
    }
    Ok(())
}

/// A request token as a WSTEP BinarySecurityToken carries it ([MS-WSTEP]
/// 3.1.4.1.2.5, value type PKCS7 even for a bare PKCS#10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestToken {
    /// A bare PKCS#10 request.
    Pkcs10(ParsedCsr),
    /// A PKCS#10 inside a SignedData verified with `signer_certificate`'s key:
    /// a renewal when that is the certificate the request names in attribute
    /// 1.3.6.1.4.1.311.13.1.
    Renewal {
        csr: ParsedCsr,
        signer_certificate: Vec<u8>,
    },
}

/// Reads a request token: a ContentInfo (its first element is an OID) is
/// opened as CMS, anything else is read as PKCS#10. A CMS-wrapped request that
/// names a certificate to renew must be signed by that very certificate.
pub fn parse_request_token(der: &[u8]) -> Result<RequestToken, PkiError> {
    let looks_like_cms = single(der, Tag::Sequence, "request")
        .and_then(|outer| outer.children("request")?.next("first element"))
        .is_ok_and(|first| first.is_universal(Tag::Oid));
    if !looks_like_cms {
        return ParsedCsr::from_der(der).map(RequestToken::Pkcs10);
    }
    let signed = open_signed_request(der)?;
    let csr = ParsedCsr::from_der(&signed.content).map_err(|e| match e {
        PkiError::Request(m) => PkiError::Request(format!("inside the CMS message: {m}")),
        other => other,
    })?;
    if let Some(named) = &csr.renewal_certificate
        && *named != signed.signer_certificate
    {
        return Err(cms_err(
            "the request renews one certificate but is signed with another",
        ));
    }
    Ok(RequestToken::Renewal {
        csr,
        signer_certificate: signed.signer_certificate,
    })
}

/// A degenerate "certs-only" SignedData (RFC 5652 5.2: no signers, no
/// content) carrying certificates, as a .p7b. DER sorts the SET, so the order
/// of `certificates` is not kept; duplicates are dropped.
pub fn certs_only(certificates: &[Vec<u8>]) -> Result<Vec<u8>, PkiError> {
    let mut choices = Vec::new();
    let mut seen: Vec<&[u8]> = Vec::new();
    for (i, der) in certificates.iter().enumerate() {
        if seen.contains(&der.as_slice()) {
            continue;
        }
        seen.push(der);
        let cert = certificate_for_cms(der, &format!("certificate {}", i + 1))?;
        choices.push(CertificateChoices::Certificate(cert));
    }
    let signed_data = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::new(),
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: object_id(OID_DATA)?,
            econtent: None,
        },
        certificates: if choices.is_empty() {
            None
        } else {
            Some(CertificateSet::try_from(choices).map_err(encode_err("certificates"))?)
        },
        crls: None,
        signer_infos: SignerInfos(SetOfVec::new()),
    };
    content_info(&signed_data)
}

/// The certificates of any SignedData (a certs-only .p7b, a CMC response, a
/// renewal request), byte for byte. Signers and content are not looked at.
pub fn read_certs_only(der: &[u8]) -> Result<Vec<Vec<u8>>, PkiError> {
    let view = read_signed_data(der).map_err(cms_err)?;
    view.certificates
        .iter()
        .enumerate()
        .map(|(i, c)| match X509Certificate::from_der(c) {
            Ok(([], _)) => Ok(c.to_vec()),
            Ok(_) => Err(cms_err(format!(
                "certificate {}: bytes after the certificate",
                i + 1
            ))),
            Err(e) => Err(cms_err(format!("certificate {}: {e}", i + 1))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::csr::{CsrOptions, build_csr};
    use crate::pki::keys::tests::{old_certificate, openssl};
    use proptest::prelude::*;
    use std::path::Path;
    use std::sync::OnceLock;

    /// An old key and certificate, a new key and its renewal request.
    struct Renewal {
        old_key: PrivateKey,
        old_cert: Vec<u8>,
        csr: Vec<u8>,
    }

    fn renewal(alg: KeyAlgorithm) -> Renewal {
        let old_key = PrivateKey::generate(alg).unwrap();
        let old_cert = old_certificate(&old_key, "ws01");
        let new_key = PrivateKey::generate(alg).unwrap();
        let csr = build_csr(
            &new_key,
            &CsrOptions {
                template: Some(("1.3.6.1.4.1.311.21.8.7", 100, 2)),
                renewal_certificate: Some(&old_cert),
                ..Default::default()
            },
        )
        .unwrap();
        Renewal {
            old_key,
            old_cert,
            csr,
        }
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p.to_str().unwrap().to_string()
    }

    /// Signs `r.csr` with `openssl cms -sign` and the old certificate and key.
    fn openssl_sign(dir: &Path, r: &Renewal, extra: &[&str]) -> Vec<u8> {
        let csr = write(dir, "csr.der", &r.csr);
        let cert_der = write(dir, "old.der", &r.old_cert);
        let cert = dir.join("old.pem").to_str().unwrap().to_string();
        openssl(&["x509", "-inform", "DER", "-in", &cert_der, "-out", &cert]);
        let key = write(dir, "old.key", r.old_key.to_pem().as_bytes());
        let mut args = vec![
            "cms",
            "-sign",
            "-binary",
            "-nodetach",
            "-outform",
            "DER",
            "-in",
            &csr,
            "-signer",
            &cert,
            "-inkey",
            &key,
        ];
        args.extend_from_slice(extra);
        openssl(&args)
    }

    fn expect_renewal(der: &[u8], r: &Renewal) {
        let opened = open_signed_request(der).unwrap();
        assert_eq!(opened.content, r.csr);
        assert_eq!(opened.signer_certificate, r.old_cert);
        match parse_request_token(der).unwrap() {
            RequestToken::Renewal {
                csr,
                signer_certificate,
            } => {
                assert_eq!(csr.der, r.csr);
                assert_eq!(csr.renewal_certificate.as_deref(), Some(&r.old_cert[..]));
                assert_eq!(signer_certificate, r.old_cert);
            }
            other => panic!("not a renewal: {other:?}"),
        }
    }

    #[test]
    fn our_renewal_verifies_here_and_with_openssl() {
        let dir = tempfile::tempdir().unwrap();
        for alg in [
            KeyAlgorithm::Rsa { bits: 2048 },
            KeyAlgorithm::EcdsaP256,
            KeyAlgorithm::EcdsaP384,
        ] {
            let r = renewal(alg);
            let der = build_renewal_request(&r.csr, &r.old_cert, &r.old_key).unwrap();
            expect_renewal(&der, &r);
            let input = write(dir.path(), "renewal.der", &der);
            let out = dir.path().join("content.der");
            openssl(&[
                "cms",
                "-verify",
                "-noverify",
                "-binary",
                "-inform",
                "DER",
                "-in",
                &input,
                "-out",
                out.to_str().unwrap(),
            ]);
            assert_eq!(std::fs::read(&out).unwrap(), r.csr, "{alg}");
            // The digest follows the key: SHA-384 for P-384.
            let text = openssl(&["cms", "-cmsout", "-print", "-inform", "DER", "-in", &input]);
            let text = String::from_utf8_lossy(&text);
            let want = if alg == KeyAlgorithm::EcdsaP384 {
                "sha384"
            } else {
                "sha256"
            };
            assert!(text.contains(want), "{alg}: {text}");
            assert!(text.contains("signingTime"), "{text}");
        }
    }

    #[test]
    fn openssl_signed_renewals_are_accepted() {
        let dir = tempfile::tempdir().unwrap();
        for alg in [KeyAlgorithm::Rsa { bits: 2048 }, KeyAlgorithm::EcdsaP256] {
            let r = renewal(alg);
            for extra in [&[][..], &["-noattr"], &["-keyid"], &["-md", "sha512"]] {
                let der = openssl_sign(dir.path(), &r, extra);
                expect_renewal(&der, &r);
            }
        }
    }

    #[test]
    fn tampering_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let r = renewal(KeyAlgorithm::EcdsaP256);
        let ours = build_renewal_request(&r.csr, &r.old_cert, &r.old_key).unwrap();
        let openssl_noattr = openssl_sign(dir.path(), &r, &["-noattr"]);
        for (der, text) in [
            (&ours, "messageDigest does not match"),
            (&openssl_noattr, "does not verify"),
        ] {
            // Flip a byte inside the encapsulated request.
            let at = find(der, &r.csr).unwrap() + r.csr.len() / 2;
            let mut bad = der.clone();
            bad[at] ^= 0x01;
            let e = open_signed_request(&bad).unwrap_err();
            assert!(e.to_string().contains(text), "{e}");
            assert!(parse_request_token(&bad).is_err());
        }
        // A changed signing time breaks the signature over the attributes.
        let mut bad = ours.clone();
        // The signing time is the last UTCTime of the message.
        let at = rfind(&bad, &[0x17, 0x0d]).unwrap() + 4;
        bad[at] ^= 0x01;
        let e = open_signed_request(&bad).unwrap_err();
        assert!(e.to_string().contains("does not verify"), "{e}");
    }

    fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
        haystack.windows(needle.len()).position(|w| w == needle)
    }

    fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
        haystack.windows(needle.len()).rposition(|w| w == needle)
    }

    #[test]
    fn wrong_signer_is_refused() {
        // Same names and serial, other key: swap the certificates (the last
        // copy of the old certificate; the first is inside the request).
        let a = renewal(KeyAlgorithm::Rsa { bits: 2048 });
        let b_key = PrivateKey::generate(KeyAlgorithm::Rsa { bits: 2048 }).unwrap();
        let b_cert = old_certificate(&b_key, "ws01");
        assert_eq!(a.old_cert.len(), b_cert.len());
        let der = build_renewal_request(&a.csr, &a.old_cert, &a.old_key).unwrap();
        let at = rfind(&der, &a.old_cert).unwrap();
        let mut swapped = der.clone();
        swapped[at..at + b_cert.len()].copy_from_slice(&b_cert);
        let e = open_signed_request(&swapped).unwrap_err();
        assert!(e.to_string().contains("does not verify"), "{e}");

        // A serial that names no certificate of the message.
        let serial = [0x02, 0x04, 0x01, 0x23, 0x45, 0x67];
        let at = rfind(&der, &serial).unwrap() + 5;
        let mut unknown = der.clone();
        unknown[at] ^= 0x01;
        let e = open_signed_request(&unknown).unwrap_err();
        assert!(e.to_string().contains("not in the message"), "{e}");

        // Building with a key that is not the certificate's.
        let e = build_renewal_request(&a.csr, &b_cert, &a.old_key).unwrap_err();
        assert!(
            e.to_string().contains("not the key of the old certificate"),
            "{e}"
        );

        // A request naming one certificate but signed with another.
        let new_key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let csr = build_csr(
            &new_key,
            &CsrOptions {
                renewal_certificate: Some(&b_cert),
                ..Default::default()
            },
        )
        .unwrap();
        let der = build_renewal_request(&csr, &a.old_cert, &a.old_key).unwrap();
        open_signed_request(&der).unwrap();
        let e = parse_request_token(&der).unwrap_err();
        assert!(e.to_string().contains("signed with another"), "{e}");
    }

    #[test]
    fn unsupported_shapes_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let r = renewal(KeyAlgorithm::EcdsaP256);
        let cmc = openssl_sign(dir.path(), &r, &["-econtent_type", OID_CMC_PKI_DATA]);
        let e = open_signed_request(&cmc).unwrap_err();
        assert!(e.to_string().contains("CMC"), "{e}");

        let csr = write(dir.path(), "csr.der", &r.csr);
        let cert_der = write(dir.path(), "old.der", &r.old_cert);
        let cert = dir.path().join("old.pem").to_str().unwrap().to_string();
        openssl(&["x509", "-inform", "DER", "-in", &cert_der, "-out", &cert]);
        let key = write(dir.path(), "old.key", r.old_key.to_pem().as_bytes());
        let detached = openssl(&[
            "cms", "-sign", "-binary", "-outform", "DER", "-in", &csr, "-signer", &cert, "-inkey",
            &key,
        ]);
        let e = open_signed_request(&detached).unwrap_err();
        assert!(e.to_string().contains("detached"), "{e}");

        let p7 = certs_only(std::slice::from_ref(&r.old_cert)).unwrap();
        let e = open_signed_request(&p7).unwrap_err();
        assert!(e.to_string().contains("detached"), "{e}");

        let e = open_signed_request(&r.csr).unwrap_err();
        assert!(matches!(e, PkiError::Cms(_)), "{e}");
        for garbage in [
            &b""[..],
            b"\x30\x80\x00\x00",
            b"hello",
            b"\x30\x03\x06\x01\x2a",
        ] {
            assert!(open_signed_request(garbage).is_err());
            assert!(parse_request_token(garbage).is_err());
            assert!(read_certs_only(garbage).is_err());
        }
    }

    #[test]
    fn bare_pkcs10_token() {
        let r = renewal(KeyAlgorithm::EcdsaP256);
        match parse_request_token(&r.csr).unwrap() {
            RequestToken::Pkcs10(csr) => assert_eq!(csr.der, r.csr),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn certs_only_round_trip_and_openssl_reads_it() {
        let keys: Vec<PrivateKey> = [KeyAlgorithm::EcdsaP256, KeyAlgorithm::EcdsaP384]
            .into_iter()
            .map(|a| PrivateKey::generate(a).unwrap())
            .collect();
        let certs = vec![
            old_certificate(&keys[0], "issuing-ca"),
            old_certificate(&keys[1], "root-ca"),
        ];
        let mut with_dup = certs.clone();
        with_dup.push(certs[0].clone());
        let p7 = certs_only(&with_dup).unwrap();
        let mut back = read_certs_only(&p7).unwrap();
        back.sort();
        let mut want = certs.clone();
        want.sort();
        assert_eq!(back, want);

        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "chain.p7b", &p7);
        let text = openssl(&["pkcs7", "-print_certs", "-inform", "DER", "-in", &path]);
        let text = String::from_utf8_lossy(&text);
        assert!(
            text.contains("CN = issuing-ca") && text.contains("CN = root-ca"),
            "{text}"
        );

        // An empty chain, and the certificates of a renewal request.
        assert!(
            read_certs_only(&certs_only(&[]).unwrap())
                .unwrap()
                .is_empty()
        );
        let r = renewal(KeyAlgorithm::EcdsaP256);
        let der = build_renewal_request(&r.csr, &r.old_cert, &r.old_key).unwrap();
        assert_eq!(read_certs_only(&der).unwrap(), vec![r.old_cert.clone()]);
        // openssl's own p7b reads too.
        let certfile = write(dir.path(), "old.der", &r.old_cert);
        let pem = dir.path().join("old.pem").to_str().unwrap().to_string();
        openssl(&["x509", "-inform", "DER", "-in", &certfile, "-out", &pem]);
        let theirs = openssl(&["crl2pkcs7", "-nocrl", "-certfile", &pem, "-outform", "DER"]);
        assert_eq!(read_certs_only(&theirs).unwrap(), vec![r.old_cert]);

        let e = certs_only(&[b"\x30\x00".to_vec()]).unwrap_err();
        assert!(e.to_string().contains("certificate 1"), "{e}");
    }

    fn fixtures() -> &'static (Vec<u8>, Vec<u8>) {
        static F: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
        F.get_or_init(|| {
            let r = renewal(KeyAlgorithm::EcdsaP256);
            let cms = build_renewal_request(&r.csr, &r.old_cert, &r.old_key).unwrap();
            (r.csr, cms)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Mutated requests are errors or (rarely) still valid, never panics.
        #[test]
        fn mutated_der_never_panics(
            which in 0usize..2,
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            cut in any::<prop::sample::Index>(),
            truncate in any::<bool>(),
        ) {
            let (csr, cms) = fixtures();
            let mut der = if which == 0 { csr.clone() } else { cms.clone() };
            for (at, byte) in edits {
                let i = at.index(der.len());
                der[i] = byte;
            }
            if truncate {
                der.truncate(cut.index(der.len()));
            }
            let _ = ParsedCsr::from_der(&der);
            let _ = parse_request_token(&der);
            let _ = open_signed_request(&der);
            let _ = read_certs_only(&der);
        }
    }
}
