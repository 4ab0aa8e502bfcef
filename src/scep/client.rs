//! The SCEP client over HTTP and HTTPS (RFC 8894 4): GetCACaps, GetCACert
//! and PKIOperation, by POST where the server lists POSTPKIOperation and by
//! GET otherwise (RFC 8894 4.3). Plain HTTP is allowed because every
//! pkiMessage is signed and enveloped and GetCACert is checked against the
//! profile's root; HTTPS verifies the server against the roots given. No
//! redirect is followed.

use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;

use super::ScepError;
use super::cacert::{CaCerts, MAX_CA_CERT_BYTES};
use super::caps::{Caps, MAX_CAPS_BYTES};
use super::exchange::{self, Outcome, PendingRequest, Prepared, SignWith};
use super::message::MAX_MESSAGE_BYTES;
use super::request::CsrSpec;
use crate::pki::keys::PrivateKey;

/// A SCEP server at one URL (the CGI path, e.g. `.../certsrv/mscep/mscep.dll`).
#[derive(Clone)]
pub struct ScepClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    url: String,
    timeout: Duration,
}

/// An answer: content type and body.
struct Answer {
    content_type: String,
    body: Vec<u8>,
}

/// RFC 3986 2.3 unreserved characters pass; everything else is %XX.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl ScepClient {
    /// A client for `url`; HTTPS trusts exactly `tls_roots` (DER).
    pub fn new(url: &str, tls_roots: &[Vec<u8>], timeout: Duration) -> Result<Self, ScepError> {
        let setup = |what: String| ScepError::Transport {
            url: url.to_string(),
            what,
        };
        let uri: hyper::Uri = url.parse().map_err(|e| setup(format!("not a URL: {e}")))?;
        match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
            Some("http") => {}
            Some("https") if tls_roots.is_empty() => {
                return Err(setup(
                    "an https:// URL needs a root to verify the server".into(),
                ));
            }
            Some("https") => {}
            _ => return Err(setup("only http:// and https:// URLs are SCEP URLs".into())),
        }
        if url.contains('?') || url.contains('#') {
            return Err(setup(
                "the URL must not have a query or fragment (the operation is added)".into(),
            ));
        }
        Ok(ScepClient {
            client: crate::enroll::transport::https_client(tls_roots).map_err(setup)?,
            url: url.to_string(),
            timeout,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn fail(&self, what: impl Into<String>) -> ScepError {
        ScepError::Transport {
            url: self.url.clone(),
            what: what.into(),
        }
    }

    async fn exchange(
        &self,
        request: Request<Full<Bytes>>,
        limit: usize,
    ) -> Result<Answer, ScepError> {
        let work = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| self.fail(crate::directory::connection::describe(&e)))?;
            let status = response.status();
            if status.is_redirection() {
                return Err(self.fail(format!("HTTP {status}: redirects are not followed")));
            }
            if !status.is_success() {
                return Err(self.fail(format!("HTTP {status}")));
            }
            let content_type = response
                .headers()
                .get(hyper::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let body = Limited::new(response.into_body(), limit)
                .collect()
                .await
                .map_err(|e| self.fail(format!("reading the answer: {e}")))?
                .to_bytes()
                .to_vec();
            Ok(Answer { content_type, body })
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| self.fail(format!("no answer within {:?}", self.timeout)))?
    }

    fn get_request(
        &self,
        operation: &str,
        message: Option<&str>,
    ) -> Result<Request<Full<Bytes>>, ScepError> {
        let mut uri = format!("{}?operation={operation}", self.url);
        if let Some(m) = message {
            uri.push_str("&message=");
            uri.push_str(&percent_encode(m));
        }
        Request::builder()
            .method(Method::GET)
            .uri(uri)
            .body(Full::new(Bytes::new()))
            .map_err(|e| self.fail(format!("cannot build the request: {e}")))
    }

    /// GetCACaps (RFC 8894 3.5.1). A server that does not implement it
    /// (HTTP error) is taken to have no capabilities, as the RFC says.
    pub async fn get_ca_caps(&self) -> Result<Caps, ScepError> {
        let request = self.get_request("GetCACaps", None)?;
        match self.exchange(request, MAX_CAPS_BYTES).await {
            Ok(a) => Caps::parse(&a.body),
            Err(ScepError::Transport { what, .. }) if what.starts_with("HTTP ") => {
                Ok(Caps::default())
            }
            Err(e) => Err(e),
        }
    }

    /// GetCACert (RFC 8894 4.2).
    pub async fn get_ca_cert(&self) -> Result<CaCerts, ScepError> {
        let request = self.get_request("GetCACert", None)?;
        let a = self.exchange(request, MAX_CA_CERT_BYTES).await?;
        CaCerts::parse(&a.content_type, &a.body)
    }

    /// PKIOperation (RFC 8894 4.3): POST of the DER where the server allows
    /// it, else GET with the base64 message in the query.
    pub async fn pki_operation(&self, caps: &Caps, message: &[u8]) -> Result<Vec<u8>, ScepError> {
        let request = if caps.post_pki_operation {
            Request::builder()
                .method(Method::POST)
                .uri(format!("{}?operation=PKIOperation", self.url))
                .header(hyper::header::CONTENT_TYPE, "application/x-pki-message")
                .body(Full::new(Bytes::from(message.to_vec())))
                .map_err(|e| self.fail(format!("cannot build the request: {e}")))?
        } else {
            self.get_request("PKIOperation", Some(&STANDARD.encode(message)))?
        };
        let a = self.exchange(request, MAX_MESSAGE_BYTES).await?;
        let media = a.content_type.split(';').next().unwrap_or("").trim();
        if !media.eq_ignore_ascii_case("application/x-pki-message") {
            return Err(self.fail(format!(
                "PKIOperation answered with content type {media:?}, not application/x-pki-message"
            )));
        }
        Ok(a.body)
    }
}

/// What the server offers, fetched and checked once per transaction.
#[derive(Debug, Clone)]
pub struct Server {
    pub caps: Caps,
    pub ca: CaCerts,
    /// The GetCACert certificates that chain to the profile's root.
    pub trusted: Vec<Vec<u8>>,
}

/// GetCACaps and GetCACert, the latter checked against `root`.
pub async fn discover(client: &ScepClient, root: &[u8]) -> Result<Server, ScepError> {
    let caps = client.get_ca_caps().await?;
    let ca = client.get_ca_cert().await?;
    let trusted = ca.trusted(root)?;
    Ok(Server { caps, ca, trusted })
}

/// A first enrollment (PKCSReq) or a renewal (RenewalReq with `current`).
pub async fn enroll(
    client: &ScepClient,
    server: &Server,
    key: &PrivateKey,
    spec: &CsrSpec,
    challenge: Option<&str>,
    current: Option<(&[u8], &PrivateKey)>,
) -> Result<Outcome, ScepError> {
    let sign_with = match current {
        Some((certificate, key)) => SignWith::Current { certificate, key },
        None => SignWith::Transient,
    };
    let decrypt_key = current.map(|(_, k)| k).unwrap_or(key);
    let prepared = exchange::prepare_enrollment(
        &server.caps,
        &server.ca,
        key,
        spec,
        challenge,
        sign_with,
        SystemTime::now(),
    )?;
    send(client, server, &prepared, decrypt_key, key).await
}

/// Polls a pending request (CertPoll). `key` is the new key; `current_key`
/// the key of the current certificate when the request was a renewal.
pub async fn poll(
    client: &ScepClient,
    server: &Server,
    pending: &PendingRequest,
    key: &PrivateKey,
    current_key: Option<&PrivateKey>,
) -> Result<Outcome, ScepError> {
    let signer = if pending.renewal {
        current_key.ok_or_else(|| {
            ScepError::Request("polling a renewal needs the current certificate's key".into())
        })?
    } else {
        key
    };
    let prepared = exchange::prepare_poll(&server.caps, &server.ca, pending, signer)?;
    send(client, server, &prepared, signer, key).await
}

async fn send(
    client: &ScepClient,
    server: &Server,
    prepared: &Prepared,
    decrypt_key: &PrivateKey,
    new_key: &PrivateKey,
) -> Result<Outcome, ScepError> {
    let reply = client
        .pki_operation(&server.caps, &prepared.message)
        .await?;
    exchange::read_reply(
        &reply,
        prepared,
        &server.trusted,
        decrypt_key,
        &new_key.public_key_der(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_of_base64() {
        assert_eq!(percent_encode("a+b/c=="), "a%2Bb%2Fc%3D%3D");
    }

    #[test]
    fn urls_are_checked() {
        let t = Duration::from_secs(1);
        assert!(ScepClient::new("ftp://x/scep", &[], t).is_err());
        assert!(ScepClient::new("https://x/scep", &[], t).is_err());
        assert!(ScepClient::new("http://x/scep?operation=x", &[], t).is_err());
        assert!(ScepClient::new("http://x/scep", &[], t).is_ok());
    }
}
