//! One SCEP transaction as pure steps: build the pkiMessage of a PKCSReq,
//! RenewalReq or CertPoll (RFC 8894 3.3.1, 3.3.3), then read the CertRep
//! that answers it (RFC 8894 3.3.2): signed by a trusted CA/RA certificate,
//! the same transactionID, our senderNonce echoed as recipientNonce, and on
//! SUCCESS an envelope to our signing certificate holding a certs-only
//! PKCS#7 with a certificate for our key.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::ScepError;
use super::cacert::{CaCerts, signed_by_one_of};
use super::caps::Caps;
use super::envelope;
use super::message::{self, FailInfo, MessageType, PkiStatus, Transaction};
use super::request::{CsrSpec, build_csr, name, transient_certificate};
use crate::pki::cms::read_certs_only;
use crate::pki::keys::{KeyAlgorithm, PrivateKey};

/// What a request is signed with.
pub enum SignWith<'a> {
    /// A transient self-signed certificate for the new key (PKCSReq).
    Transient,
    /// The current certificate and its key (RenewalReq, RFC 8894 3.3.1.2),
    /// only when the server lists the Renewal capability.
    Current {
        certificate: &'a [u8],
        key: &'a PrivateKey,
    },
}

/// What a pending request needs to be polled (RFC 8894 3.3.3), kept in the
/// request folder between pulses. It holds no secret: the key stays in the
/// folder's key file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRequest {
    pub transaction_id: String,
    /// DER of the certificate that signed the request (and receives the
    /// reply): the transient one, or the current certificate of a renewal.
    pub signer_certificate: Vec<u8>,
    /// Whether the signer is the current certificate (its key decrypts).
    pub renewal: bool,
    /// DER of the issuing CA's subject and of the requested subject.
    pub issuer_name: Vec<u8>,
    pub subject_name: Vec<u8>,
}

/// A request ready to send, and what its answer must match.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub message: Vec<u8>,
    pub sender_nonce: Vec<u8>,
    pub pending: PendingRequest,
}

/// The outcome of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The certificate for our key, and the other certificates returned.
    Issued {
        certificate: Vec<u8>,
        others: Vec<Vec<u8>>,
    },
    /// The CA holds the request; poll later with this.
    Pending(PendingRequest),
    /// The server refused (failInfo, and its text if it sent one).
    Refused {
        fail_info: FailInfo,
        text: Option<String>,
    },
}

/// Builds a PKCSReq (or RenewalReq) for `key` and `spec`, enveloped to the
/// encryption certificate of `ca` with the strongest cipher `caps` allow.
pub fn prepare_enrollment(
    caps: &Caps,
    ca: &CaCerts,
    key: &PrivateKey,
    spec: &CsrSpec,
    challenge: Option<&str>,
    sign_with: SignWith<'_>,
    now: SystemTime,
) -> Result<Prepared, ScepError> {
    if !matches!(key.algorithm(), KeyAlgorithm::Rsa { .. }) {
        return Err(ScepError::Request(
            "SCEP needs an RSA key: the answer is encrypted to it (RFC 8894 3.3.2)".into(),
        ));
    }
    caps.digest()?;
    let cipher = caps.content_cipher()?;
    let csr = build_csr(key, spec, challenge)?;
    let (signer_certificate, signer_key, renewal) = match sign_with {
        SignWith::Transient => (transient_certificate(key, &spec.subject, now)?, key, false),
        SignWith::Current { certificate, key } => {
            if !caps.renewal {
                return Err(ScepError::Request(
                    "the server does not list the Renewal capability".into(),
                ));
            }
            (certificate.to_vec(), key, true)
        }
    };
    let transaction_id = message::transaction_id_for(&key.public_key_der());
    let sender_nonce = message::nonce()?;
    let sealed = envelope::seal(&csr, &ca.encryption, cipher)?;
    let tx = Transaction {
        message_type: if renewal {
            MessageType::RenewalReq
        } else {
            MessageType::PkcsReq
        },
        transaction_id: transaction_id.clone(),
        sender_nonce: sender_nonce.clone(),
        recipient_nonce: None,
        pki_status: None,
        fail_info: None,
        fail_info_text: None,
    };
    let msg = message::build(&tx, Some(&sealed), &signer_certificate, signer_key, &[])?;
    let issuer_name = subject_of(&ca.issuer)?;
    let subject_name = der::Encode::to_der(&name(&spec.subject)?)
        .map_err(|e| ScepError::Request(format!("the subject: {e}")))?;
    Ok(Prepared {
        message: msg,
        sender_nonce,
        pending: PendingRequest {
            transaction_id,
            signer_certificate,
            renewal,
            issuer_name,
            subject_name,
        },
    })
}

/// Builds a CertPoll for a pending request (RFC 8894 3.3.3): same
/// transactionID, signed by the same certificate.
pub fn prepare_poll(
    caps: &Caps,
    ca: &CaCerts,
    pending: &PendingRequest,
    signer_key: &PrivateKey,
) -> Result<Prepared, ScepError> {
    let cipher = caps.content_cipher()?;
    let body = message::issuer_and_subject(&pending.issuer_name, &pending.subject_name)?;
    let sealed = envelope::seal(&body, &ca.encryption, cipher)?;
    let sender_nonce = message::nonce()?;
    let tx = Transaction {
        message_type: MessageType::CertPoll,
        transaction_id: pending.transaction_id.clone(),
        sender_nonce: sender_nonce.clone(),
        recipient_nonce: None,
        pki_status: None,
        fail_info: None,
        fail_info_text: None,
    };
    let msg = message::build(
        &tx,
        Some(&sealed),
        &pending.signer_certificate,
        signer_key,
        &[],
    )?;
    Ok(Prepared {
        message: msg,
        sender_nonce,
        pending: pending.clone(),
    })
}

fn subject_of(cert: &[u8]) -> Result<Vec<u8>, ScepError> {
    let (_, c) = X509Certificate::from_der(cert)
        .map_err(|e| ScepError::CaCert(format!("the CA certificate: {e}")))?;
    Ok(c.tbs_certificate.subject.as_raw().to_vec())
}

/// Reads the CertRep answering `prepared`. `trusted` are the CA/RA
/// certificates that may sign it; `decrypt_key` is the key of the signing
/// certificate (the new key, or the current key of a renewal); `new_key` is
/// the key the certificate must be for.
pub fn read_reply(
    reply: &[u8],
    prepared: &Prepared,
    trusted: &[Vec<u8>],
    decrypt_key: &PrivateKey,
    new_key_spki: &[u8],
) -> Result<Outcome, ScepError> {
    let m = message::open_with(reply, Some(trusted), true)?;
    let tx = &m.transaction;
    let bad = |s: String| ScepError::Reply(s);
    if tx.message_type != MessageType::CertRep {
        return Err(bad(format!("a {:?} instead of a CertRep", tx.message_type)));
    }
    if tx.transaction_id != prepared.pending.transaction_id {
        return Err(bad("the transactionID is not ours".into()));
    }
    // RFC 8894 3.2.1.5: the recipientNonce is our senderNonce (replay).
    if tx.recipient_nonce.as_deref() != Some(prepared.sender_nonce.as_slice()) {
        return Err(bad(
            "the recipientNonce does not echo our senderNonce (a replayed answer?)".into(),
        ));
    }
    match tx.pki_status {
        Some(PkiStatus::Pending) => Ok(Outcome::Pending(prepared.pending.clone())),
        Some(PkiStatus::Failure) => Ok(Outcome::Refused {
            fail_info: tx.fail_info.unwrap_or(FailInfo::BadRequest),
            text: tx.fail_info_text.clone(),
        }),
        Some(PkiStatus::Success) => {
            let sealed = m
                .envelope
                .as_deref()
                .ok_or_else(|| bad("SUCCESS without a pkcsPKIEnvelope".into()))?;
            let inner = envelope::open(sealed, &prepared.pending.signer_certificate, decrypt_key)?;
            let certs = read_certs_only(&inner)
                .map_err(|e| bad(format!("the degenerate PKCS#7 inside: {e}")))?;
            let mine = certs
                .iter()
                .position(|c| {
                    X509Certificate::from_der(c)
                        .map(|(_, x)| x.public_key().raw == new_key_spki)
                        .unwrap_or(false)
                })
                .ok_or_else(|| bad("no certificate for our key in the answer".into()))?;
            let mut others = certs;
            let certificate = others.remove(mine);
            // The certificate is checked on its own (the reply's signature
            // may be SHA-1): a CA certificate that chains to the root signed it.
            if !signed_by_one_of(&certificate, trusted) {
                return Err(bad(
                    "the certificate returned is not signed by a CA that chains to the profile's root"
                        .into(),
                ));
            }
            Ok(Outcome::Issued {
                certificate,
                others,
            })
        }
        None => Err(bad("no pkiStatus".into())),
    }
}

#[cfg(test)]
mod tests {
    //! A whole transaction against a CA made here from the same message
    //! code (the server side the emulated NDES uses): PENDING, CertPoll,
    //! SUCCESS, and the replies a client must refuse.
    use super::*;
    use crate::pki::cms::certs_only;
    use crate::pki::csr::ParsedCsr;
    use crate::scep::caps::ContentCipher;
    use crate::scep::message::PkiMessage;
    use crate::scep::request::NameAttribute;
    use crate::scep::tests::rsa_identity;

    struct Ca {
        key: PrivateKey,
        cert: Vec<u8>,
        certs: CaCerts,
        caps: Caps,
    }

    fn ca() -> Ca {
        let (key, cert) = rsa_identity("SCEP test CA");
        let certs = CaCerts::parse("application/x-x509-ca-cert", &cert).unwrap();
        let caps = Caps::parse(b"AES\nSHA-256\nPOSTPKIOperation\nRenewal").unwrap();
        Ca {
            key,
            cert,
            certs,
            caps,
        }
    }

    fn spec() -> CsrSpec {
        CsrSpec {
            subject: vec![NameAttribute {
                oid: "2.5.4.3".into(),
                value: "ws01.corp.example".into(),
            }],
            ..CsrSpec::default()
        }
    }

    /// A certificate for `key` signed by `issuer_key` under `issuer_cert`.
    fn issue(issuer_cert: &[u8], issuer_key: &PrivateKey, key: &PrivateKey) -> Vec<u8> {
        let issuer = rcgen::Issuer::from_ca_cert_der(
            &rustls::pki_types::CertificateDer::from(issuer_cert.to_vec()),
            issuer_key.rcgen_key_pair().unwrap(),
        )
        .unwrap();
        let params = rcgen::CertificateParams::new(vec!["ws01.corp.example".to_string()]).unwrap();
        params
            .signed_by(&key.rcgen_key_pair().unwrap(), &issuer)
            .unwrap()
            .der()
            .to_vec()
    }

    fn reply(ca: &Ca, request: &PkiMessage, status: PkiStatus, content: Option<&[u8]>) -> Vec<u8> {
        let tx = Transaction {
            message_type: MessageType::CertRep,
            transaction_id: request.transaction.transaction_id.clone(),
            sender_nonce: message::nonce().unwrap(),
            recipient_nonce: Some(request.transaction.sender_nonce.clone()),
            pki_status: Some(status),
            fail_info: (status == PkiStatus::Failure).then_some(FailInfo::BadRequest),
            fail_info_text: None,
        };
        message::build(&tx, content, &ca.cert, &ca.key, &[]).unwrap()
    }

    #[test]
    fn pending_then_poll_then_issued() {
        let ca = ca();
        let key = PrivateKey::generate(KeyAlgorithm::Rsa { bits: 2048 }).unwrap();
        let prepared = prepare_enrollment(
            &ca.caps,
            &ca.certs,
            &key,
            &spec(),
            Some("otp-1234"),
            SignWith::Transient,
            SystemTime::now(),
        )
        .unwrap();

        // The server reads the PKCSReq: signed by the transient certificate,
        // enveloped to the CA in AES, a PKCS#10 for our key inside.
        let request = message::open(&prepared.message, None).unwrap();
        assert_eq!(request.transaction.message_type, MessageType::PkcsReq);
        let sealed = request.envelope.as_deref().unwrap();
        assert_eq!(
            envelope::read(sealed).unwrap().cipher,
            ContentCipher::Aes128Cbc
        );
        let csr = ParsedCsr::from_der(&envelope::open(sealed, &ca.cert, &ca.key).unwrap()).unwrap();
        assert_eq!(csr.public_key, key.public_key_der());

        let pending = reply(&ca, &request, PkiStatus::Pending, None);
        let trusted = std::slice::from_ref(&ca.cert);
        let Outcome::Pending(state) =
            read_reply(&pending, &prepared, trusted, &key, &key.public_key_der()).unwrap()
        else {
            panic!("not pending");
        };
        assert_eq!(state, prepared.pending);
        // The state survives the request folder (JSON) unchanged.
        let state: PendingRequest =
            serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();

        // CertPoll: same transaction, same signer, IssuerAndSubject inside.
        let poll = prepare_poll(&ca.caps, &ca.certs, &state, &key).unwrap();
        let request = message::open(&poll.message, None).unwrap();
        assert_eq!(request.transaction.message_type, MessageType::CertPoll);
        assert_eq!(request.transaction.transaction_id, state.transaction_id);
        assert_eq!(request.signer_certificate, state.signer_certificate);
        let body = envelope::open(request.envelope.as_deref().unwrap(), &ca.cert, &ca.key).unwrap();
        let (issuer, subject) = message::read_issuer_and_subject(&body).unwrap();
        assert_eq!(issuer, state.issuer_name);
        assert_eq!(subject, state.subject_name);

        let leaf = issue(&ca.cert, &ca.key, &key);
        let inner = certs_only(&[leaf.clone(), ca.cert.clone()]).unwrap();
        let sealed = envelope::seal(
            &inner,
            &request.signer_certificate,
            ContentCipher::Aes128Cbc,
        )
        .unwrap();
        let success = reply(&ca, &request, PkiStatus::Success, Some(&sealed));
        assert_eq!(
            read_reply(&success, &poll, trusted, &key, &key.public_key_der()).unwrap(),
            Outcome::Issued {
                certificate: leaf,
                others: vec![ca.cert.clone()],
            }
        );
    }

    #[test]
    fn replies_a_client_refuses() {
        let ca = ca();
        let key = PrivateKey::generate(KeyAlgorithm::Rsa { bits: 2048 }).unwrap();
        let prepared = prepare_enrollment(
            &ca.caps,
            &ca.certs,
            &key,
            &spec(),
            None,
            SignWith::Transient,
            SystemTime::now(),
        )
        .unwrap();
        let request = message::open(&prepared.message, None).unwrap();
        let trusted = std::slice::from_ref(&ca.cert);
        let read = |der: &[u8]| read_reply(der, &prepared, trusted, &key, &key.public_key_der());

        // A replayed answer: another senderNonce echoed.
        let mut other = request.clone();
        other.transaction.sender_nonce = vec![9; 16];
        let e = read(&reply(&ca, &other, PkiStatus::Pending, None)).unwrap_err();
        assert!(e.to_string().contains("recipientNonce"), "{e}");

        // Another transaction.
        let mut other = request.clone();
        other.transaction.transaction_id = "OTHER".into();
        let e = read(&reply(&ca, &other, PkiStatus::Pending, None)).unwrap_err();
        assert!(e.to_string().contains("transactionID"), "{e}");

        // Signed by a key the server's GetCACert did not name.
        let (rogue_key, rogue_cert) = rsa_identity("SCEP test CA");
        let rogue = Ca {
            key: rogue_key,
            cert: rogue_cert,
            certs: ca.certs.clone(),
            caps: ca.caps.clone(),
        };
        let e = read(&reply(&rogue, &request, PkiStatus::Pending, None)).unwrap_err();
        assert!(e.to_string().contains("GetCACert"), "{e}");

        // SUCCESS with a certificate the CA did not sign.
        let forged = issue(&rogue.cert, &rogue.key, &key);
        let sealed = envelope::seal(
            &certs_only(std::slice::from_ref(&forged)).unwrap(),
            &request.signer_certificate,
            ContentCipher::Aes128Cbc,
        )
        .unwrap();
        let e = read(&reply(&ca, &request, PkiStatus::Success, Some(&sealed))).unwrap_err();
        assert!(e.to_string().contains("not signed by a CA"), "{e}");

        // SUCCESS with a certificate for another key.
        let stranger = PrivateKey::generate(KeyAlgorithm::Rsa { bits: 2048 }).unwrap();
        let sealed = envelope::seal(
            &certs_only(&[issue(&ca.cert, &ca.key, &stranger)]).unwrap(),
            &request.signer_certificate,
            ContentCipher::Aes128Cbc,
        )
        .unwrap();
        let e = read(&reply(&ca, &request, PkiStatus::Success, Some(&sealed))).unwrap_err();
        assert!(e.to_string().contains("for our key"), "{e}");

        // FAILURE is an outcome, not an error.
        assert_eq!(
            read(&reply(&ca, &request, PkiStatus::Failure, None)).unwrap(),
            Outcome::Refused {
                fail_info: FailInfo::BadRequest,
                text: None
            }
        );
    }

    #[test]
    fn requests_need_rsa_and_caps() {
        let ca = ca();
        let p256 = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let now = SystemTime::now();
        assert!(
            prepare_enrollment(
                &ca.caps,
                &ca.certs,
                &p256,
                &spec(),
                None,
                SignWith::Transient,
                now
            )
            .is_err()
        );
        let key = PrivateKey::generate(KeyAlgorithm::Rsa { bits: 2048 }).unwrap();
        let no_renewal = Caps::parse(b"AES\nSHA-256").unwrap();
        let (old_key, old_cert) = rsa_identity("old");
        let e = prepare_enrollment(
            &no_renewal,
            &ca.certs,
            &key,
            &spec(),
            None,
            SignWith::Current {
                certificate: &old_cert,
                key: &old_key,
            },
            now,
        )
        .unwrap_err();
        assert!(e.to_string().contains("Renewal"), "{e}");
        let sha1_only = Caps::parse(b"AES\nSHA-1").unwrap();
        assert!(
            prepare_enrollment(
                &sha1_only,
                &ca.certs,
                &key,
                &spec(),
                None,
                SignWith::Transient,
                now
            )
            .is_err()
        );
    }
}
