//! The WSTEP client: sends a request token to a CA's enrollment endpoint and
//! reads the answer ([MS-WSTEP] 3.1.4.1). A denial is an outcome, not an
//! error: the CA answered, and its reason is shown to the user.

use std::time::Duration;

use super::route::Auth;
use super::transport::{Https, TransportError};
use crate::krb::Credentials;
use crate::pki::cms::read_certs_only;
use crate::wstep::{
    self, Disposition, Reply, RequestKind, UsernameToken, WstepError, WstepRequest,
};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("{url}: the answer is not a WSTEP message: {source}")]
    Protocol { url: String, source: WstepError },
    #[error("{url}: {what}")]
    Answer { url: String, what: String },
    /// An MS-ICPR exchange failed (`enroll::rpc`).
    #[error("{target}: {source}")]
    Rpc {
        target: String,
        source: crate::rpc::conn::RpcError,
    },
}

impl ClientError {
    /// Whether an RPC endpoint could not be reached at all (no address,
    /// nothing listening, no answer): not asked again in the same pulse.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ClientError::Rpc { source, .. } if source.is_unreachable())
    }

    /// Whether the CA did not answer within the limit.
    pub fn is_timeout(&self) -> bool {
        match self {
            ClientError::Transport(t) => t.is_timeout(),
            ClientError::Rpc { source, .. } => {
                matches!(source, crate::rpc::conn::RpcError::Timeout(_))
            }
            _ => false,
        }
    }
}

/// What the CA said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Issued {
        request_id: u64,
        certificate: Vec<u8>,
        /// Certificates of the PKCS#7 the CA sent along (its chain).
        chain: Vec<Vec<u8>>,
    },
    Pending {
        request_id: u64,
        message: String,
    },
    Denied {
        request_id: Option<u64>,
        hresult: u32,
        message: String,
        /// The CA failed rather than refused ([MS-WSTEP] 3.1.4.1.2.6: a fault
        /// whose `InvalidRequest` is false, e.g. E_FAIL while its directory is
        /// down): the request is good and is sent again later.
        retryable: bool,
    },
}

/// A client of WSTEP endpoints, with the account's credentials.
#[derive(Clone)]
pub struct EnrollmentClient {
    https: Https,
    credentials: Option<UsernameToken>,
    kerberos: Option<Credentials>,
}

impl EnrollmentClient {
    /// `roots`: DER certificates trusted for the endpoints' TLS.
    pub fn new(
        roots: &[Vec<u8>],
        credentials: Option<UsernameToken>,
        timeout: Duration,
    ) -> Result<EnrollmentClient, ClientError> {
        Ok(EnrollmentClient {
            https: Https::new(roots, timeout)?,
            credentials,
            kerberos: None,
        })
    }

    /// The client with Kerberos credentials for HTTP Negotiate endpoints.
    pub fn with_kerberos(mut self, kerberos: Option<Credentials>) -> EnrollmentClient {
        self.kerberos = kerberos;
        self
    }

    /// How requests are authenticated when the caller does not say: with
    /// the UsernameToken when there is one.
    fn default_auth(&self) -> Auth {
        if self.credentials.is_some() {
            Auth::Password
        } else {
            Auth::None
        }
    }

    pub fn https(&self) -> &Https {
        &self.https
    }

    /// Sends a PKCS#10 or a CMS renewal for `template`.
    pub async fn submit(
        &self,
        url: &str,
        token: &[u8],
        template: &str,
    ) -> Result<Outcome, ClientError> {
        self.submit_within(url, token, template, Duration::MAX)
            .await
    }

    /// [`EnrollmentClient::submit`] with the whole exchange bounded by
    /// `limit` (and by the client's timeout).
    pub async fn submit_within(
        &self,
        url: &str,
        token: &[u8],
        template: &str,
        limit: Duration,
    ) -> Result<Outcome, ClientError> {
        self.submit_as(url, self.default_auth(), token, template, limit)
            .await
    }

    /// [`EnrollmentClient::submit_within`] authenticated as `auth` says.
    pub async fn submit_as(
        &self,
        url: &str,
        auth: Auth,
        token: &[u8],
        template: &str,
        limit: Duration,
    ) -> Result<Outcome, ClientError> {
        self.exchange(
            url,
            auth,
            RequestKind::Issue {
                token: token.to_vec(),
            },
            vec![("CertificateTemplate".to_string(), template.to_string())],
            limit,
        )
        .await
    }

    /// Asks about a pending request.
    pub async fn query(&self, url: &str, request_id: u64) -> Result<Outcome, ClientError> {
        self.query_within(url, request_id, Duration::MAX).await
    }

    /// [`EnrollmentClient::query`] bounded by `limit`.
    pub async fn query_within(
        &self,
        url: &str,
        request_id: u64,
        limit: Duration,
    ) -> Result<Outcome, ClientError> {
        self.query_as(url, self.default_auth(), request_id, limit)
            .await
    }

    /// [`EnrollmentClient::query_within`] authenticated as `auth` says.
    pub async fn query_as(
        &self,
        url: &str,
        auth: Auth,
        request_id: u64,
        limit: Duration,
    ) -> Result<Outcome, ClientError> {
        self.exchange(
            url,
            auth,
            RequestKind::QueryTokenStatus { request_id },
            Vec::new(),
            limit,
        )
        .await
    }

    /// One request and its answer. The URL must be `https://` (checked by the
    /// transport before anything is sent): the message carries the password
    /// or a Kerberos authenticator. With Kerberos, the SOAP header carries no
    /// UsernameToken: the identity is the HTTP Negotiate one.
    async fn exchange(
        &self,
        url: &str,
        auth: Auth,
        kind: RequestKind,
        context: Vec<(String, String)>,
        limit: Duration,
    ) -> Result<Outcome, ClientError> {
        let request = WstepRequest {
            message_id: wstep::new_message_id(),
            to: Some(url.to_string()),
            credentials: match auth {
                Auth::Password => self.credentials.clone(),
                Auth::Kerberos | Auth::None | Auth::Rpc => None,
            },
            kind,
            context,
        };
        let body = match auth {
            Auth::Rpc => {
                return Err(ClientError::Answer {
                    url: url.to_string(),
                    what: "an RPC target is not a WSTEP endpoint (enroll::rpc sends to it)".into(),
                });
            }
            Auth::Kerberos => {
                let Some(kerberos) = &self.kerberos else {
                    return Err(ClientError::Answer {
                        url: url.to_string(),
                        what: "a Kerberos endpoint, and this policy has no Kerberos credentials"
                            .into(),
                    });
                };
                self.https
                    .post_soap_negotiate(url, request.to_xml(), limit, kerberos)
                    .await?
            }
            Auth::Password | Auth::None => {
                self.https
                    .post_soap_within(url, request.to_xml(), limit)
                    .await?
            }
        };
        let reply = wstep::parse_reply(&body).map_err(|source| ClientError::Protocol {
            url: url.to_string(),
            source,
        })?;
        match reply {
            Reply::Fault(f) => Ok(Outcome::Denied {
                request_id: f.request_id,
                hresult: f.hresult,
                message: f.message,
                retryable: !f.invalid_request,
            }),
            Reply::Response(r) => match (r.disposition, r.certificate) {
                (Disposition::Issued, Some(certificate)) => {
                    let chain = match &r.chain_pkcs7 {
                        Some(p7) => read_certs_only(p7).map_err(|e| ClientError::Answer {
                            url: url.to_string(),
                            what: format!("the chain PKCS#7 cannot be read: {e}"),
                        })?,
                        None => Vec::new(),
                    };
                    Ok(Outcome::Issued {
                        request_id: r.request_id,
                        certificate,
                        chain,
                    })
                }
                (Disposition::Issued, None) => Err(ClientError::Answer {
                    url: url.to_string(),
                    what: "the CA says issued but sent no certificate".into(),
                }),
                (Disposition::Pending, _) => Ok(Outcome::Pending {
                    request_id: r.request_id,
                    message: r.message,
                }),
            },
        }
    }
}
