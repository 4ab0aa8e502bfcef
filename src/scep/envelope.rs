//! The pkcsPKIEnvelope (RFC 8894 3.2.2): CMS EnvelopedData (RFC 5652 6)
//! with one key-transport recipient, RSA PKCS#1 v1.5 (RFC 3370 4.2.1), and
//! the content in AES-CBC (RFC 3565) or 3DES-CBC (RFC 3370 5.1).
//!
//! Built with the RustCrypto `cms` types and opened with a walk over the DER
//! (definite lengths only); all cryptography is aws-lc-rs.

#![allow(deprecated)] // aws-lc-rs marks DES as legacy; SCEP servers still use it.

use aws_lc_rs::cipher::{
    AES_128, AES_192, AES_256, Algorithm, DES_EDE3_FOR_LEGACY_USE_ONLY, DES_FOR_LEGACY_USE_ONLY,
    DecryptionContext, EncryptionContext, PaddedBlockDecryptingKey, PaddedBlockEncryptingKey,
    UnboundCipherKey,
};
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa::{
    Pkcs1PrivateDecryptingKey, Pkcs1PublicEncryptingKey, PrivateDecryptingKey, PublicEncryptingKey,
};
use cms::cert::IssuerAndSerialNumber;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::enveloped_data::{
    EncryptedContentInfo, EnvelopedData, KeyTransRecipientInfo, RecipientIdentifier, RecipientInfo,
    RecipientInfos,
};
use der::asn1::{ObjectIdentifier, OctetString, SetOfVec};
use der::{Any, Decode, Encode};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_parser::asn1_rs::Tag;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::ScepError;
use super::caps::ContentCipher;
use crate::pki::der_cursor::{Element, single};
use crate::pki::keys::{KeyAlgorithm, PrivateKey, oid};

/// id-envelopedData (RFC 5652 6.1).
pub const OID_ENVELOPED_DATA: &str = "1.2.840.113549.1.7.3";
const OID_DATA: &str = "1.2.840.113549.1.7.1";
const OID_AES128_CBC: &str = "2.16.840.1.101.3.4.1.2";
const OID_AES192_CBC: &str = "2.16.840.1.101.3.4.1.22";
const OID_AES256_CBC: &str = "2.16.840.1.101.3.4.1.42";
const OID_DES_EDE3_CBC: &str = "1.2.840.113549.3.7";
const OID_DES_CBC: &str = "1.3.14.3.2.7";

fn bad(m: impl Into<String>) -> ScepError {
    ScepError::Envelope(m.into())
}

fn oid_of(dotted: &str) -> Result<ObjectIdentifier, ScepError> {
    ObjectIdentifier::new(dotted).map_err(|e| bad(format!("OID {dotted}: {e}")))
}

fn enc(what: &'static str) -> impl Fn(der::Error) -> ScepError {
    move |e| bad(format!("cannot encode {what}: {e}"))
}

impl ContentCipher {
    fn oid(self) -> &'static str {
        match self {
            ContentCipher::Aes128Cbc => OID_AES128_CBC,
            ContentCipher::Aes192Cbc => OID_AES192_CBC,
            ContentCipher::Aes256Cbc => OID_AES256_CBC,
            ContentCipher::DesEde3Cbc => OID_DES_EDE3_CBC,
            ContentCipher::DesCbc => OID_DES_CBC,
        }
    }

    fn from_oid(dotted: &str) -> Result<ContentCipher, ScepError> {
        Ok(match dotted {
            OID_AES128_CBC => ContentCipher::Aes128Cbc,
            OID_AES192_CBC => ContentCipher::Aes192Cbc,
            OID_AES256_CBC => ContentCipher::Aes256Cbc,
            OID_DES_EDE3_CBC => ContentCipher::DesEde3Cbc,
            OID_DES_CBC => ContentCipher::DesCbc,
            other => {
                return Err(bad(format!(
                    "content encryption {other} is not supported (AES-CBC, 3DES-CBC, DES-CBC are)"
                )));
            }
        })
    }

    fn algorithm(self) -> &'static Algorithm {
        match self {
            ContentCipher::Aes128Cbc => &AES_128,
            ContentCipher::Aes192Cbc => &AES_192,
            ContentCipher::Aes256Cbc => &AES_256,
            ContentCipher::DesEde3Cbc => &DES_EDE3_FOR_LEGACY_USE_ONLY,
            ContentCipher::DesCbc => &DES_FOR_LEGACY_USE_ONLY,
        }
    }

    fn key_len(self) -> usize {
        match self {
            ContentCipher::Aes128Cbc => 16,
            ContentCipher::Aes192Cbc | ContentCipher::DesEde3Cbc => 24,
            ContentCipher::Aes256Cbc => 32,
            ContentCipher::DesCbc => 8,
        }
    }

    fn iv_len(self) -> usize {
        self.algorithm().block_len()
    }
}

/// Encrypts `content` to the RSA key of `recipient_der` (a certificate),
/// which the EnvelopedData names by issuer and serial number (RFC 5652 6.2.1,
/// version 0). Returns the DER of `ContentInfo { id-envelopedData, ... }`.
pub fn seal(
    content: &[u8],
    recipient_der: &[u8],
    cipher: ContentCipher,
) -> Result<Vec<u8>, ScepError> {
    if cipher == ContentCipher::DesCbc {
        return Err(bad("single DES is never used to encrypt"));
    }
    let cert = Certificate::from_der(recipient_der)
        .map_err(|e| bad(format!("the recipient is not a certificate: {e}")))?;
    let (_, parsed) = X509Certificate::from_der(recipient_der)
        .map_err(|e| bad(format!("the recipient is not a certificate: {e}")))?;
    let spki = parsed.public_key().raw;
    if !matches!(KeyAlgorithm::from_spki(spki), Ok(KeyAlgorithm::Rsa { .. })) {
        return Err(bad(
            "the recipient's key is not RSA; SCEP key transport needs an RSA key",
        ));
    }
    let rng = SystemRandom::new();
    // A 3DES key whose parts are weak or equal is refused by aws-lc-rs; draw
    // again (it happens with negligible probability).
    let (cek, sealing) = {
        let mut tries = 0;
        loop {
            let mut cek = vec![0u8; cipher.key_len()];
            rng.fill(&mut cek)
                .map_err(|_| bad("no randomness for the content key"))?;
            let key = UnboundCipherKey::new(cipher.algorithm(), &cek)
                .map_err(|_| bad("cannot make the content key"))?;
            match PaddedBlockEncryptingKey::cbc_pkcs7(key) {
                Ok(k) => break (cek, k),
                Err(_) if tries < 8 => tries += 1,
                Err(_) => return Err(bad("cannot make the content key")),
            }
        }
    };
    let mut iv = vec![0u8; cipher.iv_len()];
    rng.fill(&mut iv)
        .map_err(|_| bad("no randomness for the IV"))?;
    let context = match iv.len() {
        16 => EncryptionContext::Iv128(FixedLength::from(
            <[u8; 16]>::try_from(iv.as_slice()).map_err(|_| bad("IV length"))?,
        )),
        8 => EncryptionContext::Iv64(FixedLength::from(
            <[u8; 8]>::try_from(iv.as_slice()).map_err(|_| bad("IV length"))?,
        )),
        _ => return Err(bad("IV length")),
    };
    let mut ciphertext = content.to_vec();
    sealing
        .less_safe_encrypt(&mut ciphertext, context)
        .map_err(|_| bad("content encryption failed"))?;

    let public = PublicEncryptingKey::from_der(spki)
        .map_err(|e| bad(format!("the recipient's RSA key is rejected: {e}")))?;
    let public = Pkcs1PublicEncryptingKey::new(public)
        .map_err(|_| bad("the recipient's RSA key is rejected"))?;
    let mut wrapped = vec![0u8; public.ciphertext_size()];
    let wrapped_len = public
        .encrypt(&cek, &mut wrapped)
        .map_err(|_| bad("RSA key transport failed"))?
        .len();
    wrapped.truncate(wrapped_len);

    let recipient = RecipientInfo::Ktri(KeyTransRecipientInfo {
        version: CmsVersion::V0,
        rid: RecipientIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: cert.tbs_certificate.issuer.clone(),
            serial_number: cert.tbs_certificate.serial_number.clone(),
        }),
        key_enc_alg: AlgorithmIdentifierOwned {
            oid: oid_of(oid::RSA_ENCRYPTION)?,
            parameters: Some(Any::null()),
        },
        enc_key: OctetString::new(wrapped).map_err(enc("the encrypted key"))?,
    });
    let enveloped = EnvelopedData {
        version: CmsVersion::V0,
        originator_info: None,
        recip_infos: RecipientInfos(
            SetOfVec::try_from(vec![recipient]).map_err(enc("recipientInfos"))?,
        ),
        encrypted_content: EncryptedContentInfo {
            content_type: oid_of(OID_DATA)?,
            content_enc_alg: AlgorithmIdentifierOwned {
                oid: oid_of(cipher.oid())?,
                parameters: Some(
                    Any::encode_from(&OctetString::new(iv).map_err(enc("the IV"))?)
                        .map_err(enc("the IV"))?,
                ),
            },
            encrypted_content: Some(OctetString::new(ciphertext).map_err(enc("the content"))?),
        },
        unprotected_attrs: None,
    };
    ContentInfo {
        content_type: oid_of(OID_ENVELOPED_DATA)?,
        content: Any::encode_from(&enveloped).map_err(enc("EnvelopedData"))?,
    }
    .to_der()
    .map_err(enc("ContentInfo"))
}

/// A key-transport recipient (RFC 5652 6.2.1), by issuer and serial number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient<'a> {
    /// The issuer Name, DER.
    pub issuer: &'a [u8],
    /// The serial number's INTEGER content.
    pub serial: &'a [u8],
    pub encrypted_key: &'a [u8],
}

/// What an envelope holds before decryption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<'a> {
    pub recipients: Vec<Recipient<'a>>,
    pub cipher: ContentCipher,
    pub iv: &'a [u8],
    pub ciphertext: Vec<u8>,
}

/// Reads `ContentInfo { id-envelopedData, [0] EnvelopedData }` (RFC 5652 6.1)
/// without decrypting. Recipients other than key transport are skipped.
pub fn read(der: &[u8]) -> Result<Envelope<'_>, ScepError> {
    read_inner(der).map_err(bad)
}

fn read_inner(der: &[u8]) -> Result<Envelope<'_>, String> {
    let ci = single(der, Tag::Sequence, "ContentInfo")?;
    let mut c = ci.children("ContentInfo")?;
    let content_type = c.next("contentType")?.oid("contentType")?;
    if content_type != OID_ENVELOPED_DATA {
        return Err(format!(
            "content type {content_type} is not EnvelopedData ({OID_ENVELOPED_DATA})"
        ));
    }
    let wrapped = c
        .optional_context(0, "content")?
        .ok_or("ContentInfo: the [0] content is missing")?;
    c.finish("the content")?;
    let mut w = wrapped.children("ContentInfo content")?;
    let ed = w.expect(Tag::Sequence, "EnvelopedData")?;
    w.finish("EnvelopedData")?;

    let mut e = ed.children("EnvelopedData")?;
    e.expect(Tag::Integer, "version")?;
    e.optional_context(0, "originatorInfo")?;
    let set = e.expect(Tag::Set, "recipientInfos")?;
    let eci = e.expect(Tag::Sequence, "encryptedContentInfo")?;
    e.optional_context(1, "unprotectedAttrs")?;
    e.finish("EnvelopedData")?;

    let mut recipients = Vec::new();
    let mut list = set.children("recipientInfos")?;
    while !list.is_empty() {
        let ri = list.next("RecipientInfo")?;
        if !ri.is_universal(Tag::Sequence) {
            continue; // kari [1], kekri [2], pwri [3], ori [4]
        }
        recipients.push(read_ktri(&ri)?);
    }
    if recipients.is_empty() {
        return Err("no key-transport recipient".into());
    }

    let mut i = eci.children("encryptedContentInfo")?;
    i.next("contentType")?.oid("contentType")?;
    let alg = i.expect(Tag::Sequence, "contentEncryptionAlgorithm")?;
    let encrypted = i
        .optional_context(0, "encryptedContent")?
        .ok_or("the encrypted content is missing")?;
    i.finish("encryptedContent")?;
    // [0] IMPLICIT OCTET STRING: primitive, or constructed from primitive
    // OCTET STRING segments (X.690 8.7.3, as Go's pkcs7 writes it; definite
    // lengths only, one level).
    let ciphertext = if encrypted.any.header.is_constructed() {
        let mut joined = Vec::new();
        let mut parts = encrypted.children("encryptedContent")?;
        while !parts.is_empty() {
            let part = parts.expect(Tag::OctetString, "an encryptedContent segment")?;
            if part.any.header.is_constructed() {
                return Err("encryptedContent: nested constructed segments".into());
            }
            joined.extend_from_slice(part.content());
        }
        joined
    } else {
        encrypted.content().to_vec()
    };
    let mut a = alg.children("contentEncryptionAlgorithm")?;
    let alg_oid = a.next("algorithm")?.oid("algorithm")?;
    let cipher = ContentCipher::from_oid(&alg_oid).map_err(|e| e.to_string())?;
    let iv = a.expect(Tag::OctetString, "the IV")?;
    a.finish("the IV")?;
    if iv.content().len() != cipher.iv_len() {
        return Err(format!(
            "{}: an IV of {} bytes (expected {})",
            cipher.describe(),
            iv.content().len(),
            cipher.iv_len()
        ));
    }
    Ok(Envelope {
        recipients,
        cipher,
        iv: iv.content(),
        ciphertext,
    })
}

fn read_ktri<'a>(ri: &Element<'a>) -> Result<Recipient<'a>, String> {
    let mut k = ri.children("KeyTransRecipientInfo")?;
    k.expect(Tag::Integer, "version")?;
    let rid = k.next("rid")?;
    if !rid.is_universal(Tag::Sequence) {
        return Err(format!(
            "rid: only issuerAndSerialNumber is supported, found {}",
            rid.describe_tag()
        ));
    }
    let mut r = rid.children("issuerAndSerialNumber")?;
    let issuer = r.expect(Tag::Sequence, "issuer")?;
    let serial = r.expect(Tag::Integer, "serialNumber")?;
    r.finish("serialNumber")?;
    let alg = k.expect(Tag::Sequence, "keyEncryptionAlgorithm")?;
    let key = k.expect(Tag::OctetString, "encryptedKey")?;
    k.finish("encryptedKey")?;
    let mut a = alg.children("keyEncryptionAlgorithm")?;
    let alg_oid = a.next("algorithm")?.oid("algorithm")?;
    if alg_oid != oid::RSA_ENCRYPTION {
        return Err(format!(
            "key transport {alg_oid} is not supported (rsaEncryption is)"
        ));
    }
    Ok(Recipient {
        issuer: issuer.raw,
        serial: serial.content(),
        encrypted_key: key.content(),
    })
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let i = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    &b[i..]
}

/// Decrypts an envelope addressed to `certificate_der` with its `key`.
pub fn open(der: &[u8], certificate_der: &[u8], key: &PrivateKey) -> Result<Vec<u8>, ScepError> {
    let envelope = read(der)?;
    let (_, cert) = X509Certificate::from_der(certificate_der)
        .map_err(|e| bad(format!("our certificate: {e}")))?;
    let issuer = cert.tbs_certificate.issuer.as_raw();
    let serial = strip_zeros(cert.raw_serial());
    let wrapped = envelope
        .recipients
        .iter()
        .find(|r| r.issuer == issuer && strip_zeros(r.serial) == serial)
        .map(|r| r.encrypted_key)
        .ok_or_else(|| bad("the envelope is not addressed to our certificate"))?;
    let private = PrivateDecryptingKey::from_pkcs8(key.pkcs8_der())
        .map_err(|_| bad("our key cannot decrypt (SCEP needs an RSA key)"))?;
    let private = Pkcs1PrivateDecryptingKey::new(private).map_err(|_| bad("our RSA key"))?;
    let mut cek = vec![0u8; private.min_output_size()];
    let cek_len = private
        .decrypt(wrapped, &mut cek)
        .map_err(|_| bad("the content key does not decrypt with our key"))?
        .len();
    cek.truncate(cek_len);
    if cek.len() != envelope.cipher.key_len() {
        return Err(bad(format!(
            "a content key of {} bytes for {}",
            cek.len(),
            envelope.cipher.describe()
        )));
    }
    let key = UnboundCipherKey::new(envelope.cipher.algorithm(), &cek)
        .map_err(|_| bad("the content key is unusable"))?;
    let opening =
        PaddedBlockDecryptingKey::cbc_pkcs7(key).map_err(|_| bad("the content key is unusable"))?;
    let context = match envelope.iv.len() {
        16 => DecryptionContext::Iv128(FixedLength::from(
            <[u8; 16]>::try_from(envelope.iv).map_err(|_| bad("IV length"))?,
        )),
        8 => DecryptionContext::Iv64(FixedLength::from(
            <[u8; 8]>::try_from(envelope.iv).map_err(|_| bad("IV length"))?,
        )),
        _ => return Err(bad("IV length")),
    };
    let mut buf = envelope.ciphertext;
    let plain = opening
        .decrypt(&mut buf, context)
        .map_err(|_| bad("the content does not decrypt (wrong key or bad padding)"))?
        .to_vec();
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scep::tests::{rsa_identity, with_openssl};

    #[test]
    fn round_trip_each_cipher() {
        let (key, cert) = rsa_identity("recipient");
        for cipher in [ContentCipher::Aes128Cbc, ContentCipher::DesEde3Cbc] {
            let sealed = seal(b"hello pkcs#10", &cert, cipher).unwrap();
            assert_eq!(read(&sealed).unwrap().cipher, cipher);
            assert_eq!(open(&sealed, &cert, &key).unwrap(), b"hello pkcs#10");
        }
        assert!(seal(b"x", &cert, ContentCipher::DesCbc).is_err());
    }

    #[test]
    fn another_recipient_cannot_open() {
        let (_, cert) = rsa_identity("recipient");
        let (other_key, other_cert) = rsa_identity("other");
        let sealed = seal(b"secret", &cert, ContentCipher::Aes128Cbc).unwrap();
        let e = open(&sealed, &other_cert, &other_key).unwrap_err();
        assert!(e.to_string().contains("not addressed"), "{e}");
    }

    #[test]
    fn truncations_are_errors() {
        let (_, cert) = rsa_identity("recipient");
        let sealed = seal(b"secret", &cert, ContentCipher::Aes128Cbc).unwrap();
        for n in 0..sealed.len() {
            assert!(read(&sealed[..n]).is_err());
        }
    }

    /// OpenSSL decrypts what we seal, and we decrypt what OpenSSL seals.
    #[test]
    fn openssl_interop() {
        with_openssl(|dir, key, cert| {
            let cert_path = dir.join("cert.pem");
            let key_path = dir.join("key.pem");
            for (cipher, ours) in [
                (ContentCipher::Aes128Cbc, "-aes128"),
                (ContentCipher::DesEde3Cbc, "-des3"),
            ] {
                let sealed = seal(b"from us", cert, cipher).unwrap();
                std::fs::write(dir.join("sealed.der"), &sealed).unwrap();
                let out = std::process::Command::new("openssl")
                    .args(["cms", "-decrypt", "-inform", "DER", "-in"])
                    .arg(dir.join("sealed.der"))
                    .arg("-recip")
                    .arg(&cert_path)
                    .arg("-inkey")
                    .arg(&key_path)
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                assert_eq!(out.stdout, b"from us");

                std::fs::write(dir.join("plain"), b"from openssl").unwrap();
                let out = std::process::Command::new("openssl")
                    .args(["cms", "-encrypt", "-binary", "-outform", "DER", ours, "-in"])
                    .arg(dir.join("plain"))
                    .arg("-recip")
                    .arg(&cert_path)
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                assert_eq!(open(&out.stdout, cert, key).unwrap(), b"from openssl");
            }
            for aes in ["-aes256", "-aes192"] {
                let out = std::process::Command::new("openssl")
                    .args(["cms", "-encrypt", "-binary", "-outform", "DER", aes, "-in"])
                    .arg(dir.join("plain"))
                    .arg("-recip")
                    .arg(&cert_path)
                    .output()
                    .unwrap();
                assert!(out.status.success());
                assert_eq!(open(&out.stdout, cert, key).unwrap(), b"from openssl");
            }
        });
    }
}
