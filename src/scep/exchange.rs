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
