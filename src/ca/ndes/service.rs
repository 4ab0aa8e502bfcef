//! GetCACaps, GetCACert and PKIOperation (RFC 8894 4) as NDES answers
//! them. A PKCSReq is opened (signature, then the envelope to the RA
//! encryption certificate), its challenge checked, its template chosen by
//! purpose, and the CSR submitted to the CA as the NDES service account;
//! the CA's answer becomes the CertRep, signed by the RA signing
//! certificate. A PENDING answer is remembered by transactionID for the
//! CertPoll (GetCertInitial) that asks again.

use std::sync::{Arc, Mutex, RwLock};

use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, ParsedExtension, X509Certificate};

use super::challenge::{self, Diagnostic, Kind};
use super::dynamic::{self, Binding};
use super::events::{self, NdesEvent};
use super::purpose;
use super::ra::{self, RaCertificates};
use crate::ca::authority::{Answer, Authority, CaError, Caller, Signer};
use crate::ca::config::{CaConfig, NdesConfig};
use crate::ca::db::Database;
use crate::pki::cms::certs_only;
use crate::pki::csr::ParsedCsr;
use crate::scep::envelope;
use crate::scep::message::{self, FailInfo, MessageType, PkiMessage, PkiStatus, Transaction};
use crate::wstep::Disposition as WireDisposition;

/// What GetCACaps lists (RFC 8894 3.5.2). No Renewal: a renewal is a new
/// PKCSReq with a new challenge, as with NDES's default configuration.
pub const CAPS: &str = "POSTPKIOperation\nSHA-256\nSHA-512\nSHA-1\nAES\nDES3\nSCEPStandard\n";

/// The NDES role, loaded.
pub struct Ndes {
    pub config: NdesConfig,
    /// The RA identities in use, replaced when they are due.
    ra: RwLock<Arc<RaCertificates>>,
    renew_at: Mutex<Option<OffsetDateTime>>,
    sealing_key: [u8; 32],
    ca_certificate: Vec<u8>,
    ca_thumbprint: String,
}

impl Ndes {
    /// Issues the RA certificates that are missing or due and loads the
    /// role; `None` when the CA has no `[ndes]`.
    pub fn open(
        config: &CaConfig,
        signer: &Signer,
        now: OffsetDateTime,
    ) -> Result<Option<Ndes>, CaError> {
        let Some(ndes) = &config.ndes else {
            return Ok(None);
        };
        ra::ensure(config, signer, now)?;
        let sealing_key = dynamic::sealing_key(&config.ndes_dir().join("challenge-sealing.key"))
            .map_err(CaError::State)?;
        let loaded = ra::load(config)?;
        Ok(Some(Ndes {
            config: ndes.clone(),
            renew_at: Mutex::new(ra::renew_at(&loaded)),
            ra: RwLock::new(Arc::new(loaded)),
            sealing_key,
            ca_certificate: signer.certificate_der().to_vec(),
            ca_thumbprint: signer.info().thumbprint.clone(),
        }))
    }

    /// The RA identities, issued anew first when they are due at `now`
    /// (a long-running server renews them as `ca serve` does at start).
    pub fn ra(&self, authority: &Authority) -> Arc<RaCertificates> {
        let now = authority.now();
        let due = self
            .renew_at
            .lock()
            .map(|at| at.is_none_or(|at| now >= at))
            .unwrap_or(false);
        if due {
            let renewed = ra::ensure(authority.config(), authority.signer(), now)
                .and_then(|_| ra::load(authority.config()));
            match renewed {
                Ok(fresh) => {
                    if let Ok(mut at) = self.renew_at.lock() {
                        *at = ra::renew_at(&fresh);
                    }
                    if let Ok(mut ra) = self.ra.write() {
                        *ra = Arc::new(fresh);
                    }
                    tracing::info!("the NDES RA certificates were renewed");
                }
                Err(e) => tracing::warn!(error = %e, "cannot renew the NDES RA certificates"),
            }
        }
        self.ra
            .read()
            .map(|r| r.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// GetCACert: RA signing, RA encryption and CA certificates, as a
    /// degenerate PKCS#7 (`application/x-x509-ca-ra-cert`, RFC 8894 4.2.1.2).
    pub fn ca_certs(&self, authority: &Authority) -> Result<Vec<u8>, CaError> {
        let ra = self.ra(authority);
        Ok(certs_only(&[
            ra.signing.certificate.clone(),
            ra.encryption.certificate.clone(),
            self.ca_certificate.clone(),
        ])?)
    }

    pub fn ca_thumbprint(&self) -> &str {
        &self.ca_thumbprint
    }

    /// A new dynamic challenge for `binding`, valid for the configured time.
    pub fn dynamic_challenge(
        &self,
        authority: &Authority,
        binding: Binding,
        issued_to: &str,
        now: OffsetDateTime,
    ) -> Result<(String, OffsetDateTime), String> {
        let mut id = [0u8; 16];
        aws_lc_rs::rand::fill(&mut id).map_err(|_| "no randomness".to_string())?;
        let expires = now + self.config.challenge_validity;
        let claims = dynamic::Claims {
            id: id.iter().map(|b| format!("{b:02x}")).collect(),
            binding,
            issued_at: now.unix_timestamp(),
            expires_at: expires.unix_timestamp(),
        };
        let text = dynamic::seal(&claims, &self.sealing_key, &self.ra(authority).signing.key)?;
        challenge::store(
            &authority.db(),
            &text,
            Kind::Dynamic,
            issued_to,
            now,
            expires,
            None,
        )
        .map_err(|e| e.to_string())?;
        Ok((text, expires))
    }

    /// PKIOperation: the CertRep (DER) for a pkiMessage. `Err` only when
    /// the message cannot be read as one at all (HTTP 400).
    pub async fn pki_operation(
        &self,
        authority: &Authority,
        der: &[u8],
    ) -> Result<Vec<u8>, String> {
        let request = message::open_request(der).map_err(|e| e.to_string())?;
        let ra = self.ra(authority);
        let tx = &request.transaction;
        let now = authority.now();
        let reply = match tx.message_type {
            MessageType::PkcsReq => self.pkcs_req(authority, &ra, &request, now).await,
            MessageType::CertPoll => self.cert_poll(authority, &request),
            other => Reply::failure(
                FailInfo::BadRequest,
                format!("{other:?} is not served here (GetCACaps lists no Renewal)"),
            ),
        };
        self.cert_rep(&ra, &request, reply)
            .map_err(|e| e.to_string())
    }

    async fn pkcs_req(
        &self,
        authority: &Authority,
        ra: &RaCertificates,
        request: &PkiMessage,
        now: OffsetDateTime,
    ) -> Reply {
        let tx_id = request.transaction.transaction_id.as_str();
        let Some(sealed) = request.envelope.as_deref() else {
            return Reply::failure(FailInfo::BadRequest, "no pkcsPKIEnvelope".into());
        };
        let csr_der = match envelope::open(sealed, &ra.encryption.certificate, &ra.encryption.key)
            .or_else(|_| envelope::open(sealed, &ra.signing.certificate, &ra.signing.key))
        {
            Ok(d) => d,
            Err(e) => return Reply::failure(FailInfo::BadMessageCheck, e.to_string()),
        };
        let csr = match ParsedCsr::from_der(&csr_der) {
            Ok(c) => c,
            Err(e) => return Reply::failure(FailInfo::BadRequest, format!("the PKCS#10: {e}")),
        };
        let (password, key_usage) = csr_extras(&csr_der);
        let binding = Binding {
            subject: csr.subject.clone(),
            dns_names: csr.requested_dns_names.clone(),
            key_usage,
        };
        let db_verdict = {
            let db = authority.db();
            self.check_challenge(&db, ra, password.as_deref(), &binding, tx_id, now)
        };
        let diagnostic = match db_verdict {
            Ok(d) => d,
            Err(e) => {
                events::record(
                    &authority.db(),
                    NdesEvent::CaUnavailable,
                    "0x00000500",
                    Some(tx_id),
                    None,
                    &e,
                    now,
                );
                return Reply::failure(
                    FailInfo::BadRequest,
                    "the CA cannot check challenges now; send the request again later".into(),
                );
            }
        };
        if diagnostic != Diagnostic::Verified {
            let event = if diagnostic == Diagnostic::Expired {
                NdesEvent::ChallengeExpired
            } else {
                NdesEvent::VerificationFailed
            };
            events::record(
                &authority.db(),
                event,
                diagnostic.code(),
                Some(tx_id),
                None,
                diagnostic.describe(),
                now,
            );
            return Reply::failure(
                FailInfo::BadRequest,
                format!("{} ({})", diagnostic.describe(), diagnostic.code()),
            );
        }
        events::record(
            &authority.db(),
            NdesEvent::ChallengeVerified,
            diagnostic.code(),
            Some(tx_id),
            None,
            diagnostic.describe(),
            now,
        );
        let template = purpose::template(&self.config, purpose::of(key_usage)).to_string();
        let answer = authority
            .issue_as(
                &csr_der,
                Caller::Ra(&self.config.service_account),
                &[("CertificateTemplate".to_string(), template)],
            )
            .await;
        self.reply_of(authority, answer, tx_id, now)
    }

    /// One-time passwords and dynamic challenges, told apart by form.
    fn check_challenge(
        &self,
        db: &Database,
        ra: &RaCertificates,
        password: Option<&str>,
        binding: &Binding,
        tx_id: &str,
        now: OffsetDateTime,
    ) -> Result<Diagnostic, String> {
        let Some(password) = password else {
            return Ok(Diagnostic::Missing);
        };
        if !dynamic::looks_dynamic(password) {
            return challenge::consume(db, password, Kind::OneTime, tx_id, now)
                .map_err(|e| e.to_string());
        }
        let opened = dynamic::open(
            password,
            &self.sealing_key,
            &signing_spki(&ra.signing.certificate),
        );
        // A genuine challenge is in the table; its use there decides reuse.
        let stored = challenge::consume(db, password, Kind::Dynamic, tx_id, now)
            .map_err(|e| e.to_string())?;
        let verdict = dynamic::judge(
            &opened,
            stored == Diagnostic::Reused,
            binding,
            now.unix_timestamp(),
        );
        Ok(match (verdict, stored) {
            (Diagnostic::Verified, Diagnostic::Unknown) => Diagnostic::Forged,
            (v, _) => v,
        })
    }

    fn cert_poll(&self, authority: &Authority, request: &PkiMessage) -> Reply {
        let tx_id = &request.transaction.transaction_id;
        let found = authority
            .db()
            .read_other("finding a SCEP transaction", |c| {
                use rusqlite::OptionalExtension;
                c.query_row(
                    "SELECT request_id FROM ndes_transactions WHERE transaction_id = ?1",
                    [tx_id],
                    |r| r.get::<_, i64>(0),
                )
                .optional()
            });
        let id = match found {
            Ok(Some(id)) => id as u64,
            Ok(None) => {
                return Reply::failure(
                    FailInfo::BadCertId,
                    "no pending request has this transactionID".into(),
                );
            }
            Err(e) => {
                return Reply::failure(FailInfo::BadRequest, format!("the request database: {e}"));
            }
        };
        match authority.answer_of_request(id) {
            Ok(Some(answer)) => self.reply_of(authority, answer, tx_id, authority.now()),
            Ok(None) => Reply::failure(FailInfo::BadCertId, "the request is gone".into()),
            Err(e) => Reply::failure(FailInfo::BadRequest, e.to_string()),
        }
    }

    fn reply_of(
        &self,
        authority: &Authority,
        answer: Answer,
        tx_id: &str,
        now: OffsetDateTime,
    ) -> Reply {
        match answer {
            Answer::Response(r) => {
                let _ = authority.db().write_other("recording a SCEP transaction", |c| {
                    c.execute(
                        "INSERT OR IGNORE INTO ndes_transactions (transaction_id, request_id, created_at)
                         VALUES (?1, ?2, ?3)",
                        rusqlite::params![tx_id, r.request_id as i64, now.unix_timestamp()],
                    )
                });
                match (r.disposition, r.certificate) {
                    (WireDisposition::Issued, Some(cert)) => {
                        events::record(
                            &authority.db(),
                            NdesEvent::NotifySuccess,
                            "0x00000000",
                            Some(tx_id),
                            Some(r.request_id),
                            "issued",
                            now,
                        );
                        Reply::Success(cert)
                    }
                    (WireDisposition::Pending, _) => {
                        events::record(
                            &authority.db(),
                            NdesEvent::NotifySuccess,
                            "0x00000000",
                            Some(tx_id),
                            Some(r.request_id),
                            "pending",
                            now,
                        );
                        Reply::Pending
                    }
                    _ => Reply::failure(FailInfo::BadRequest, r.message),
                }
            }
            Answer::Fault(f) => {
                let unavailable = f.hresult == crate::ca::authority::failure::INTERNAL;
                let (event, code) = if unavailable {
                    (NdesEvent::CaUnavailable, "0x00000500")
                } else {
                    (NdesEvent::VerifiedButRejected, "0x00000409")
                };
                events::record(
                    &authority.db(),
                    event,
                    code,
                    Some(tx_id),
                    f.request_id,
                    &f.message,
                    now,
                );
                events::record(
                    &authority.db(),
                    NdesEvent::NotifyFailure,
                    code,
                    Some(tx_id),
                    f.request_id,
                    &f.message,
                    now,
                );
                Reply::failure(FailInfo::BadRequest, f.message)
            }
        }
    }

    fn cert_rep(
        &self,
        ra: &RaCertificates,
        request: &PkiMessage,
        reply: Reply,
    ) -> Result<Vec<u8>, crate::scep::ScepError> {
        let (status, fail, text, content) = match reply {
            Reply::Success(cert) => {
                // The issued certificate alone, as NDES answers: clients
                // (micromdm's) take the first certificate of the set, and a
                // SET OF is sorted, so a CA certificate could come first.
                let inner = certs_only(&[cert])
                    .map_err(|e| crate::scep::ScepError::Reply(e.to_string()))?;
                // The answer in the cipher the request came in.
                let cipher = request
                    .envelope
                    .as_deref()
                    .and_then(|e| envelope::read(e).ok())
                    .map(|e| e.cipher)
                    .filter(|c| *c != crate::scep::caps::ContentCipher::DesCbc)
                    .unwrap_or(crate::scep::caps::ContentCipher::Aes128Cbc);
                let sealed = envelope::seal(&inner, &request.signer_certificate, cipher)?;
                (PkiStatus::Success, None, None, Some(sealed))
            }
            Reply::Pending => (PkiStatus::Pending, None, None, None),
            Reply::Failure(f, t) => (PkiStatus::Failure, Some(f), Some(t), None),
        };
        let tx = Transaction {
            message_type: MessageType::CertRep,
            transaction_id: request.transaction.transaction_id.clone(),
            sender_nonce: message::nonce()?,
            recipient_nonce: Some(request.transaction.sender_nonce.clone()),
            pki_status: Some(status),
            fail_info: fail,
            fail_info_text: text,
        };
        message::build(
            &tx,
            content.as_deref(),
            &ra.signing.certificate,
            &ra.signing.key,
            std::slice::from_ref(&self.ca_certificate),
        )
    }
}

enum Reply {
    Success(Vec<u8>),
    Pending,
    Failure(FailInfo, String),
}

impl Reply {
    fn failure(f: FailInfo, text: String) -> Reply {
        Reply::Failure(f, text)
    }
}

/// The challengePassword and the requested key usage of a PKCS#10 (already
/// verified by [`ParsedCsr::from_der`]).
fn csr_extras(der: &[u8]) -> (Option<String>, Option<u16>) {
    use x509_parser::certification_request::X509CertificationRequest;
    use x509_parser::cri_attributes::ParsedCriAttribute;
    let Ok((_, csr)) = X509CertificationRequest::from_der(der) else {
        return (None, None);
    };
    let password = csr
        .certification_request_info
        .iter_attributes()
        .find_map(|a| match a.parsed_attribute() {
            ParsedCriAttribute::ChallengePassword(p) => Some(p.0.clone()),
            _ => None,
        });
    let key_usage = csr.requested_extensions().and_then(|mut exts| {
        exts.find_map(|e| match e {
            ParsedExtension::KeyUsage(ku) => Some(ku.flags),
            _ => None,
        })
    });
    (password, key_usage)
}

fn signing_spki(cert: &[u8]) -> Vec<u8> {
    X509Certificate::from_der(cert)
        .map(|(_, c)| c.public_key().raw.to_vec())
        .unwrap_or_default()
}
