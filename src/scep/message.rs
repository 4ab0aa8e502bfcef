//! pkiMessage (RFC 8894 3.2): a CMS SignedData whose content is a
//! pkcsPKIEnvelope and whose signed attributes carry the SCEP transaction
//! (messageType, transactionID, senderNonce, recipientNonce, pkiStatus,
//! failInfo). Both directions: the client builds requests and reads CertRep,
//! the emulated NDES reads requests and builds CertRep.

use aws_lc_rs::digest;
use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{ObjectIdentifier, OctetString, PrintableStringRef, SetOfVec, UtcTime};
use der::{Any, Decode, Encode};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_cert::attr::Attribute;
use x509_parser::asn1_rs::Tag;

use super::ScepError;
use crate::pki::cms::{OID_DATA, OID_SIGNED_DATA, read_signed_data, verify_signer};
use crate::pki::der_cursor::{Cursor, Element, single};
use crate::pki::keys::{KeyAlgorithm, PrivateKey, oid};

/// SCEP attribute OIDs (RFC 8894 3.2.1, arc id-attributes 2.16.840.1.113733.1.9).
pub mod attr {
    pub const MESSAGE_TYPE: &str = "2.16.840.1.113733.1.9.2";
    pub const PKI_STATUS: &str = "2.16.840.1.113733.1.9.3";
    pub const FAIL_INFO: &str = "2.16.840.1.113733.1.9.4";
    pub const SENDER_NONCE: &str = "2.16.840.1.113733.1.9.5";
    pub const RECIPIENT_NONCE: &str = "2.16.840.1.113733.1.9.6";
    pub const TRANSACTION_ID: &str = "2.16.840.1.113733.1.9.7";
    /// id-scep-failInfoText (RFC 8894 3.2.1.4.1).
    pub const FAIL_INFO_TEXT: &str = "1.3.6.1.5.5.7.24.1";
    pub const CONTENT_TYPE: &str = "1.2.840.113549.1.9.3";
    pub const MESSAGE_DIGEST: &str = "1.2.840.113549.1.9.4";
    pub const SIGNING_TIME: &str = "1.2.840.113549.1.9.5";
}

/// Largest pkiMessage read; a request with a 8192-bit key is under 8 KiB.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// messageType (RFC 8894 3.2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    CertRep,
    RenewalReq,
    PkcsReq,
    CertPoll,
    GetCert,
    GetCrl,
}

impl MessageType {
    pub fn number(self) -> u32 {
        match self {
            MessageType::CertRep => 3,
            MessageType::RenewalReq => 17,
            MessageType::PkcsReq => 19,
            MessageType::CertPoll => 20,
            MessageType::GetCert => 21,
            MessageType::GetCrl => 22,
        }
    }

    fn from_text(text: &str) -> Result<MessageType, ScepError> {
        Ok(match text {
            "3" => MessageType::CertRep,
            "17" => MessageType::RenewalReq,
            "19" => MessageType::PkcsReq,
            "20" => MessageType::CertPoll,
            "21" => MessageType::GetCert,
            "22" => MessageType::GetCrl,
            other => {
                return Err(ScepError::Message(format!(
                    "messageType {:?} is not one of RFC 8894 3.2.1.2",
                    other.escape_debug().to_string()
                )));
            }
        })
    }
}

/// pkiStatus (RFC 8894 3.2.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PkiStatus {
    Success,
    Failure,
    Pending,
}

impl PkiStatus {
    fn text(self) -> &'static str {
        match self {
            PkiStatus::Success => "0",
            PkiStatus::Failure => "2",
            PkiStatus::Pending => "3",
        }
    }
}

/// failInfo (RFC 8894 3.2.1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailInfo {
    BadAlg,
    BadMessageCheck,
    BadRequest,
    BadTime,
    BadCertId,
}

impl FailInfo {
    fn text(self) -> &'static str {
        match self {
            FailInfo::BadAlg => "0",
            FailInfo::BadMessageCheck => "1",
            FailInfo::BadRequest => "2",
            FailInfo::BadTime => "3",
            FailInfo::BadCertId => "4",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            FailInfo::BadAlg => "badAlg (unrecognized or unsupported algorithm)",
            FailInfo::BadMessageCheck => "badMessageCheck (integrity check failed)",
            FailInfo::BadRequest => "badRequest (transaction not permitted or supported)",
            FailInfo::BadTime => "badTime (the message time was not close to the system time)",
            FailInfo::BadCertId => "badCertId (no certificate matches the criteria)",
        }
    }
}

/// What goes into the signed attributes of a pkiMessage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    pub message_type: MessageType,
    /// PrintableString (RFC 8894 3.2.1.1).
    pub transaction_id: String,
    /// 16 random bytes (RFC 8894 3.2.1.5).
    pub sender_nonce: Vec<u8>,
    /// The sender nonce being answered (CertRep only).
    pub recipient_nonce: Option<Vec<u8>>,
    /// CertRep only.
    pub pki_status: Option<PkiStatus>,
    /// CertRep with FAILURE only.
    pub fail_info: Option<FailInfo>,
    pub fail_info_text: Option<String>,
}

/// A fresh nonce (RFC 8894 3.2.1.5: 16 bytes).
pub fn nonce() -> Result<Vec<u8>, ScepError> {
    use aws_lc_rs::rand::SecureRandom;
    let mut n = vec![0u8; 16];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut n)
        .map_err(|_| ScepError::Message("no randomness for a nonce".into()))?;
    Ok(n)
}

/// The transactionID of a request for a key (RFC 8894 3.2.1.1: a hash of
/// the public key, here SHA-256 of the SubjectPublicKeyInfo in hex), so that
/// a retried or polled request keeps it.
pub fn transaction_id_for(spki_der: &[u8]) -> String {
    digest::digest(&digest::SHA256, spki_der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

fn bad(m: impl Into<String>) -> ScepError {
    ScepError::Message(m.into())
}

fn oid_of(dotted: &str) -> Result<ObjectIdentifier, ScepError> {
    ObjectIdentifier::new(dotted).map_err(|e| bad(format!("OID {dotted}: {e}")))
}

fn enc(what: &'static str) -> impl Fn(der::Error) -> ScepError {
    move |e| bad(format!("cannot encode {what}: {e}"))
}

fn attribute(oid_text: &str, value: Any) -> Result<Attribute, ScepError> {
    Ok(Attribute {
        oid: oid_of(oid_text)?,
        values: SetOfVec::try_from(vec![value]).map_err(enc("an attribute"))?,
    })
}

fn printable(oid_text: &str, text: &str) -> Result<Attribute, ScepError> {
    let value = PrintableStringRef::new(text)
        .map_err(|e| bad(format!("{text:?} is not a PrintableString: {e}")))?;
    attribute(oid_text, Any::encode_from(&value).map_err(enc("a string"))?)
}

fn octets(oid_text: &str, bytes: &[u8]) -> Result<Attribute, ScepError> {
    let value = OctetString::new(bytes).map_err(enc("a nonce"))?;
    attribute(oid_text, Any::encode_from(&value).map_err(enc("a nonce"))?)
}

/// Builds a pkiMessage: SignedData over `content` (a pkcsPKIEnvelope, or
/// nothing for a CertRep that is not SUCCESS, RFC 8894 3.3.2), signed by
/// `signer_der` with `key` (RSA PKCS#1 v1.5 with SHA-256, or ECDSA for an RA
/// that signs with one) over contentType, messageDigest, signingTime and the
/// SCEP attributes. The signer's certificate is carried in `certificates`
/// with any `extra_certificates` (RFC 8894 3.2: the recipient needs it).
pub fn build(
    tx: &Transaction,
    content: Option<&[u8]>,
    signer_der: &[u8],
    key: &PrivateKey,
    extra_certificates: &[Vec<u8>],
) -> Result<Vec<u8>, ScepError> {
    let cert = Certificate::from_der(signer_der)
        .map_err(|e| bad(format!("the signer is not a certificate: {e}")))?;
    let alg = key.algorithm();
    let digest_oid = alg.digest_algorithm_oid();
    let digest_alg = match digest_oid {
        oid::SHA384 => &digest::SHA384,
        _ => &digest::SHA256,
    };
    let body = content.unwrap_or(&[]);
    let content_digest = digest::digest(digest_alg, body);

    let mut attributes = vec![
        attribute(
            attr::CONTENT_TYPE,
            Any::encode_from(&oid_of(OID_DATA)?).map_err(enc("contentType"))?,
        )?,
        octets(attr::MESSAGE_DIGEST, content_digest.as_ref())?,
        printable(attr::MESSAGE_TYPE, &tx.message_type.number().to_string())?,
        printable(attr::TRANSACTION_ID, &tx.transaction_id)?,
        octets(attr::SENDER_NONCE, &tx.sender_nonce)?,
    ];
    if let Ok(now) = UtcTime::from_system_time(std::time::SystemTime::now()) {
        attributes.push(attribute(
            attr::SIGNING_TIME,
            Any::encode_from(&now).map_err(enc("signingTime"))?,
        )?);
    }
    if let Some(n) = &tx.recipient_nonce {
        attributes.push(octets(attr::RECIPIENT_NONCE, n)?);
    }
    if let Some(s) = tx.pki_status {
        attributes.push(printable(attr::PKI_STATUS, s.text())?);
    }
    if let Some(f) = tx.fail_info {
        attributes.push(printable(attr::FAIL_INFO, f.text())?);
    }
    if let Some(text) = &tx.fail_info_text {
        let value = der::asn1::Utf8StringRef::new(text).map_err(enc("failInfoText"))?;
        attributes.push(attribute(
            attr::FAIL_INFO_TEXT,
            Any::encode_from(&value).map_err(enc("failInfoText"))?,
        )?);
    }
    let signed_attrs = SetOfVec::try_from(attributes).map_err(enc("signed attributes"))?;
    let to_sign = signed_attrs.to_der().map_err(enc("signed attributes"))?;
    let signature = key.sign(&to_sign).map_err(|e| bad(e.to_string()))?;
    let signature_algorithm = match alg {
        KeyAlgorithm::Rsa { .. } => AlgorithmIdentifierOwned {
            oid: oid_of(oid::RSA_ENCRYPTION)?,
            parameters: Some(Any::null()),
        },
        KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384 => AlgorithmIdentifierOwned {
            oid: oid_of(alg.signature_algorithm_oid())?,
            parameters: None,
        },
    };
    let digest_alg_id = AlgorithmIdentifierOwned {
        oid: oid_of(digest_oid)?,
        parameters: None,
    };
    let signer = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: cert.tbs_certificate.issuer.clone(),
            serial_number: cert.tbs_certificate.serial_number.clone(),
        }),
        digest_alg: digest_alg_id.clone(),
        signed_attrs: Some(signed_attrs),
        signature_algorithm,
        signature: OctetString::new(signature).map_err(enc("the signature"))?,
        unsigned_attrs: None,
    };
    let mut certs = vec![CertificateChoices::Certificate(cert)];
    for extra in extra_certificates {
        if extra.as_slice() == signer_der {
            continue;
        }
        let c =
            Certificate::from_der(extra).map_err(|e| bad(format!("an extra certificate: {e}")))?;
        certs.push(CertificateChoices::Certificate(c));
    }
    let signed_data = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![digest_alg_id])
            .map_err(enc("digestAlgorithms"))?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: oid_of(OID_DATA)?,
            econtent: match content {
                Some(c) => Some(Any::new(der::Tag::OctetString, c).map_err(enc("eContent"))?),
                None => None,
            },
        },
        certificates: Some(CertificateSet::try_from(certs).map_err(enc("certificates"))?),
        crls: None,
        signer_infos: SignerInfos::try_from(vec![signer]).map_err(enc("signerInfos"))?,
    };
    ContentInfo {
        content_type: oid_of(OID_SIGNED_DATA)?,
        content: Any::encode_from(&signed_data).map_err(enc("SignedData"))?,
    }
    .to_der()
    .map_err(enc("ContentInfo"))
}

/// A verified pkiMessage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiMessage {
    pub transaction: Transaction,
    /// The pkcsPKIEnvelope (DER), absent in a CertRep that is not SUCCESS.
    pub envelope: Option<Vec<u8>>,
    /// The certificate whose key verified the signature.
    pub signer_certificate: Vec<u8>,
    /// Every certificate the message carries.
    pub certificates: Vec<Vec<u8>>,
}

/// Opens a pkiMessage: exactly one signer, its signature verified (RFC 5652
/// 5.4, contentType and messageDigest checked) with a certificate from
/// `signers` when given (a client accepts only the CA/RA certificates it
/// fetched), else from the message itself (a server receiving a request
/// signed with a transient self-signed or the current certificate). Then the
/// SCEP attributes are read: messageType, transactionID and senderNonce are
/// required (RFC 8894 3.2.1); a CertRep must carry pkiStatus, and failInfo
/// when it is FAILURE.
pub fn open(der: &[u8], signers: Option<&[Vec<u8>]>) -> Result<PkiMessage, ScepError> {
    open_with(der, signers, false)
}

/// [`open`], optionally accepting a SHA-1 signature from one of `signers`.
///
/// Servers sign CertRep with SHA-1 whatever the request used (micromdm's
/// does); a client accepts that only because what matters in a reply is
/// checked again on its own: the certificate of a SUCCESS must be signed by
/// a CA certificate that chains to the profile's root, and a FAILURE or
/// PENDING gains an attacker nothing a man in the middle of plain HTTP does
/// not have already. Requests (no `signers`) never get this.
pub fn open_with(
    der: &[u8],
    signers: Option<&[Vec<u8>]>,
    allow_sha1_reply: bool,
) -> Result<PkiMessage, ScepError> {
    open_inner(der, signers, allow_sha1_reply && signers.is_some())
}

/// [`open`] for a server's request that may be signed with SHA-1, as NDES
/// accepts: SCEP clients (micromdm's `scepclient`, devices) sign PKCSReq
/// with SHA-1 whatever GetCACaps lists. The signer is the transient
/// certificate of the new key, so the signature proves little beyond what
/// the PKCS#10 inside proves on its own: that request's own signature
/// (SHA-1 refused there) covers the key, the names and the challenge.
pub fn open_request(der: &[u8]) -> Result<PkiMessage, ScepError> {
    open_inner(der, None, true)
}

fn open_inner(
    der: &[u8],
    signers: Option<&[Vec<u8>]>,
    sha1_ok: bool,
) -> Result<PkiMessage, ScepError> {
    if der.len() > MAX_MESSAGE_BYTES {
        return Err(bad(format!(
            "{} bytes is more than a pkiMessage may be ({MAX_MESSAGE_BYTES})",
            der.len()
        )));
    }
    let view = read_signed_data(der).map_err(bad)?;
    if view.content_type != OID_DATA {
        return Err(bad(format!(
            "eContentType {} is not id-data (RFC 8894 3.2)",
            view.content_type
        )));
    }
    let signer = match view.signers.as_slice() {
        [one] => one,
        [] => return Err(bad("the message is not signed")),
        many => return Err(bad(format!("{} signers; a pkiMessage has one", many.len()))),
    };
    let content = view.content.unwrap_or(&[]);
    let candidates: Vec<&[u8]> = match signers {
        Some(list) => list.iter().map(Vec::as_slice).collect(),
        None => view.certificates.clone(),
    };
    let sha1 = sha1_ok && signer_digest(signer)? == oid::SHA1;
    let verified = if sha1 {
        verify_sha1_signer(signer, content, &candidates)
    } else {
        verify_signer(signer, OID_DATA, content, &candidates).map_err(|e| bad(e.to_string()))
    };
    let signer_certificate = verified
        .map_err(|e| match signers {
            Some(_) if e.to_string().contains("not in the message") => {
                bad("the reply is not signed by a certificate of the server's GetCACert answer")
            }
            _ => e,
        })?
        .to_vec();
    let transaction = read_attributes(signer)?;
    let envelope = view.content.filter(|c| !c.is_empty()).map(<[u8]>::to_vec);
    if transaction.message_type != MessageType::CertRep && envelope.is_none() {
        return Err(bad("a request without a pkcsPKIEnvelope"));
    }
    Ok(PkiMessage {
        transaction,
        envelope,
        signer_certificate,
        certificates: view.certificates.iter().map(|c| c.to_vec()).collect(),
    })
}

/// The digestAlgorithm OID of a SignerInfo.
fn signer_digest(signer: &Element<'_>) -> Result<String, ScepError> {
    let walk = || -> Result<String, String> {
        let mut s = signer.children("SignerInfo")?;
        s.next("version")?;
        s.next("sid")?;
        let alg = s.expect(Tag::Sequence, "digestAlgorithm")?;
        alg.children("digestAlgorithm")?
            .next("algorithm")?
            .oid("algorithm")
    };
    walk().map_err(bad)
}

/// Verifies an RSA PKCS#1 v1.5 SHA-1 SignerInfo (RFC 3370 2.1, 3.2) with
/// one of `candidates`: signed attributes required, messageDigest the SHA-1
/// of the content and contentType id-data (RFC 5652 5.4, 11.1, 11.2).
fn verify_sha1_signer<'a>(
    signer: &Element<'_>,
    content: &[u8],
    candidates: &[&'a [u8]],
) -> Result<&'a [u8], ScepError> {
    use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, UnparsedPublicKey};
    use x509_parser::prelude::{FromDer, X509Certificate};
    let walk = || -> Result<(Element<'_>, String, Element<'_>), String> {
        let mut s = signer.children("SignerInfo")?;
        s.next("version")?;
        s.next("sid")?;
        s.next("digestAlgorithm")?;
        let attrs = s
            .optional_context(0, "signedAttrs")?
            .ok_or("a SHA-1 signature without signed attributes")?;
        let alg = s.expect(Tag::Sequence, "signatureAlgorithm")?;
        let alg = alg
            .children("signatureAlgorithm")?
            .next("algorithm")?
            .oid("algorithm")?;
        let signature = s.expect(Tag::OctetString, "signature")?;
        Ok((attrs, alg, signature))
    };
    let (attrs, alg, signature) = walk().map_err(bad)?;
    if alg != oid::RSA_ENCRYPTION && alg != oid::SHA1_WITH_RSA {
        return Err(bad(format!(
            "a SHA-1 signature with {alg}: only RSA is accepted"
        )));
    }
    let mut seen_digest = false;
    let mut seen_type = false;
    let mut list = attrs.children("signedAttrs").map_err(bad)?;
    while !list.is_empty() {
        let a = list.expect(Tag::Sequence, "attribute").map_err(bad)?;
        let mut c = a.children("attribute").map_err(bad)?;
        let id = c
            .next("attrType")
            .and_then(|e| e.oid("attrType"))
            .map_err(bad)?;
        let values = c.expect(Tag::Set, "attrValues").map_err(bad)?;
        let mut v = values.children(&id).map_err(bad)?;
        let value = v.next("the value").map_err(bad)?;
        v.finish("the value (single-valued)").map_err(bad)?;
        match id.as_str() {
            attr::MESSAGE_DIGEST => {
                let sha1 = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, content);
                if seen_digest
                    || !value.is_universal(Tag::OctetString)
                    || value.content() != sha1.as_ref()
                {
                    return Err(bad("messageDigest does not match the content"));
                }
                seen_digest = true;
            }
            attr::CONTENT_TYPE => {
                if seen_type || value.oid("contentType").map_err(bad)? != OID_DATA {
                    return Err(bad("contentType is not id-data"));
                }
                seen_type = true;
            }
            _ => {}
        }
    }
    if !(seen_digest && seen_type) {
        return Err(bad("messageDigest or contentType is missing"));
    }
    let mut message = attrs.raw.to_vec();
    if let Some(tag) = message.first_mut() {
        *tag = 0x31;
    }
    candidates
        .iter()
        .copied()
        .find(|cert| {
            X509Certificate::from_der(cert).is_ok_and(|(_, c)| {
                let key = c.public_key().subject_public_key.data.as_ref();
                UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, key)
                    .verify(&message, signature.content())
                    .is_ok()
            })
        })
        .ok_or_else(|| {
            bad(
                "the SHA-1 signature does not verify with a certificate it may be signed by \
                 (a reply: the server's GetCACert certificates; RSA keys of 2048 bits or more)",
            )
        })
}

/// The signed attributes of a SignerInfo that has already been verified.
fn read_attributes(signer: &Element<'_>) -> Result<Transaction, ScepError> {
    let walk = || -> Result<Option<Element<'_>>, String> {
        let mut s = signer.children("SignerInfo")?;
        s.next("version")?;
        s.next("sid")?;
        s.next("digestAlgorithm")?;
        s.optional_context(0, "signedAttrs")
    };
    let attrs = walk()
        .map_err(bad)?
        .ok_or_else(|| bad("no signed attributes; SCEP carries its fields there"))?;
    let mut list = attrs.children("signedAttrs").map_err(bad)?;
    let mut message_type = None;
    let mut transaction_id = None;
    let mut sender_nonce = None;
    let mut recipient_nonce = None;
    let mut pki_status = None;
    let mut fail_info = None;
    let mut fail_info_text = None;
    while !list.is_empty() {
        let a = list.expect(Tag::Sequence, "attribute").map_err(bad)?;
        let mut c: Cursor<'_> = a.children("attribute").map_err(bad)?;
        let id = c
            .next("attrType")
            .and_then(|e| e.oid("attrType"))
            .map_err(bad)?;
        let values = c.expect(Tag::Set, "attrValues").map_err(bad)?;
        c.finish("attrValues").map_err(bad)?;
        let one = || -> Result<Element<'_>, ScepError> {
            let mut v = values.children(&id).map_err(bad)?;
            let value = v.next("the value").map_err(bad)?;
            v.finish("the value (single-valued)").map_err(bad)?;
            Ok(value)
        };
        let seen = |slot: bool| {
            if slot {
                Err(bad(format!("attribute {id} appears twice")))
            } else {
                Ok(())
            }
        };
        match id.as_str() {
            attr::MESSAGE_TYPE => {
                seen(message_type.is_some())?;
                message_type = Some(MessageType::from_text(&text(&one()?, "messageType")?)?);
            }
            attr::TRANSACTION_ID => {
                seen(transaction_id.is_some())?;
                transaction_id = Some(text(&one()?, "transactionID")?);
            }
            attr::SENDER_NONCE => {
                seen(sender_nonce.is_some())?;
                sender_nonce = Some(nonce_value(&one()?, "senderNonce")?);
            }
            attr::RECIPIENT_NONCE => {
                seen(recipient_nonce.is_some())?;
                recipient_nonce = Some(nonce_value(&one()?, "recipientNonce")?);
            }
            attr::PKI_STATUS => {
                seen(pki_status.is_some())?;
                pki_status = Some(match text(&one()?, "pkiStatus")?.as_str() {
                    "0" => PkiStatus::Success,
                    "2" => PkiStatus::Failure,
                    "3" => PkiStatus::Pending,
                    other => {
                        return Err(bad(format!(
                            "pkiStatus {:?} is not 0, 2 or 3",
                            other.escape_debug().to_string()
                        )));
                    }
                });
            }
            attr::FAIL_INFO => {
                seen(fail_info.is_some())?;
                fail_info = Some(match text(&one()?, "failInfo")?.as_str() {
                    "0" => FailInfo::BadAlg,
                    "1" => FailInfo::BadMessageCheck,
                    "2" => FailInfo::BadRequest,
                    "3" => FailInfo::BadTime,
                    "4" => FailInfo::BadCertId,
                    other => {
                        return Err(bad(format!(
                            "failInfo {:?} is not 0 to 4",
                            other.escape_debug().to_string()
                        )));
                    }
                });
            }
            attr::FAIL_INFO_TEXT => {
                seen(fail_info_text.is_some())?;
                let t = text(&one()?, "failInfoText")?;
                fail_info_text = Some(t.chars().take(256).collect());
            }
            _ => {}
        }
    }
    let message_type = message_type.ok_or_else(|| bad("messageType is missing"))?;
    let transaction_id = transaction_id.ok_or_else(|| bad("transactionID is missing"))?;
    let sender_nonce = sender_nonce.ok_or_else(|| bad("senderNonce is missing"))?;
    if message_type == MessageType::CertRep {
        match pki_status {
            None => return Err(bad("a CertRep without pkiStatus")),
            Some(PkiStatus::Failure) if fail_info.is_none() => {
                return Err(bad("a FAILURE CertRep without failInfo"));
            }
            _ => {}
        }
    }
    Ok(Transaction {
        message_type,
        transaction_id,
        sender_nonce,
        recipient_nonce,
        pki_status,
        fail_info,
        fail_info_text,
    })
}

/// A PrintableString, UTF8String or IA5String value as text.
fn text(e: &Element<'_>, what: &str) -> Result<String, ScepError> {
    if !(e.is_universal(Tag::PrintableString)
        || e.is_universal(Tag::Utf8String)
        || e.is_universal(Tag::Ia5String))
    {
        return Err(bad(format!(
            "{what}: expected a string, found {}",
            e.describe_tag()
        )));
    }
    let s = std::str::from_utf8(e.content()).map_err(|_| bad(format!("{what}: not text")))?;
    if s.is_empty() || s.len() > 256 || s.chars().any(char::is_control) {
        return Err(bad(format!(
            "{what}: empty, longer than 256 bytes or with control characters"
        )));
    }
    Ok(s.to_string())
}

fn nonce_value(e: &Element<'_>, what: &str) -> Result<Vec<u8>, ScepError> {
    if !e.is_universal(Tag::OctetString) {
        return Err(bad(format!("{what}: not an OCTET STRING")));
    }
    let n = e.content();
    if n.is_empty() || n.len() > 64 {
        return Err(bad(format!("{what}: {} bytes (16 expected)", n.len())));
    }
    Ok(n.to_vec())
}

/// `IssuerAndSubject ::= SEQUENCE { issuer Name, subject Name }`, the
/// content of CertPoll (RFC 8894 3.3.3): the names as DER.
pub fn issuer_and_subject(issuer_der: &[u8], subject_der: &[u8]) -> Result<Vec<u8>, ScepError> {
    for (what, name) in [("issuer", issuer_der), ("subject", subject_der)] {
        single(name, Tag::Sequence, what).map_err(bad)?;
    }
    let mut body = issuer_der.to_vec();
    body.extend_from_slice(subject_der);
    let any = Any::new(der::Tag::Sequence, body).map_err(enc("IssuerAndSubject"))?;
    any.to_der().map_err(enc("IssuerAndSubject"))
}

/// Reads IssuerAndSubject; returns the two names as DER.
pub fn read_issuer_and_subject(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>), ScepError> {
    let outer = single(der, Tag::Sequence, "IssuerAndSubject").map_err(bad)?;
    let mut c = outer.children("IssuerAndSubject").map_err(bad)?;
    let issuer = c.expect(Tag::Sequence, "issuer").map_err(bad)?;
    let subject = c.expect(Tag::Sequence, "subject").map_err(bad)?;
    c.finish("subject").map_err(bad)?;
    Ok((issuer.raw.to_vec(), subject.raw.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scep::tests::rsa_identity;

    fn request() -> Transaction {
        Transaction {
            message_type: MessageType::PkcsReq,
            transaction_id: "ABC123".into(),
            sender_nonce: vec![7; 16],
            recipient_nonce: None,
            pki_status: None,
            fail_info: None,
            fail_info_text: None,
        }
    }

    #[test]
    fn round_trip() {
        let (key, cert) = rsa_identity("signer");
        let der = build(&request(), Some(b"envelope"), &cert, &key, &[]).unwrap();
        let m = open(&der, None).unwrap();
        assert_eq!(m.transaction, request());
        assert_eq!(m.envelope.as_deref(), Some(&b"envelope"[..]));
        assert_eq!(m.signer_certificate, cert);

        let reply = Transaction {
            message_type: MessageType::CertRep,
            pki_status: Some(PkiStatus::Failure),
            fail_info: Some(FailInfo::BadRequest),
            fail_info_text: Some("challenge expired".into()),
            recipient_nonce: Some(vec![7; 16]),
            ..request()
        };
        let der = build(&reply, None, &cert, &key, &[]).unwrap();
        let m = open(&der, Some(std::slice::from_ref(&cert))).unwrap();
        assert_eq!(m.transaction, reply);
        assert_eq!(m.envelope, None);
    }

    #[test]
    fn a_client_accepts_only_known_signers() {
        let (key, cert) = rsa_identity("signer");
        let (_, other) = rsa_identity("other");
        let reply = Transaction {
            message_type: MessageType::CertRep,
            pki_status: Some(PkiStatus::Pending),
            ..request()
        };
        let der = build(&reply, None, &cert, &key, &[]).unwrap();
        let e = open(&der, Some(&[other])).unwrap_err();
        assert!(e.to_string().contains("GetCACert"), "{e}");
    }

    #[test]
    fn missing_fields_are_refused() {
        let (key, cert) = rsa_identity("signer");
        let reply = Transaction {
            message_type: MessageType::CertRep,
            ..request()
        };
        let der = build(&reply, None, &cert, &key, &[]).unwrap();
        assert!(
            open(&der, None)
                .unwrap_err()
                .to_string()
                .contains("pkiStatus")
        );
        let der = build(&request(), None, &cert, &key, &[]).unwrap();
        assert!(
            open(&der, None)
                .unwrap_err()
                .to_string()
                .contains("pkcsPKIEnvelope")
        );
    }

    #[test]
    fn a_flipped_byte_never_verifies_silently() {
        let (key, cert) = rsa_identity("signer");
        let der = build(&request(), Some(b"envelope"), &cert, &key, &[]).unwrap();
        for i in (0..der.len()).step_by(7) {
            let mut d = der.clone();
            d[i] ^= 0x01;
            if let Ok(m) = open(&d, None) {
                // Only bytes outside what is signed (e.g. an unsigned
                // certificate field) may change without an error, and then
                // the signed fields are unchanged.
                assert_eq!(m.transaction, request());
            }
        }
    }

    #[test]
    fn issuer_and_subject_round_trip() {
        let a = [0x30, 0x00];
        let b = [0x30, 0x03, 0x31, 0x01, 0x00];
        let d = issuer_and_subject(&a, &b).unwrap();
        assert_eq!(
            read_issuer_and_subject(&d).unwrap(),
            (a.to_vec(), b.to_vec())
        );
        assert!(issuer_and_subject(&[0x04, 0x00], &b).is_err());
    }
}
