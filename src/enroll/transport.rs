//! HTTPS for the enrollment client: rustls with aws-lc-rs, trusting only the
//! roots given (the directory's, not the system's: an enterprise CA's TLS
//! certificate chains to the enterprise root).

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::directory::connection::describe;
use crate::krb::Credentials;
use crate::wstep::MAX_MESSAGE_BYTES;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("{url}: {what}")]
    Setup { url: String, what: String },
    #[error("{url}: {cause}")]
    Failed { url: String, cause: String },
    #[error("{url}: no answer within {0:?}", .timeout)]
    Timeout { url: String, timeout: Duration },
    #[error("{url}: HTTP {status} and a body that is not SOAP")]
    Status { url: String, status: StatusCode },
    /// An enrollment URL that is not `https://`: the request carries the
    /// account's password, which never crosses the wire in cleartext.
    #[error(
        "{url}: refused: not an https:// URL, and enrollment requests carry the account's password"
    )]
    NotHttps { url: String },
    /// Kerberos failed on this side (no ticket for the service, a KDC that
    /// does not answer) or the server did not prove its identity.
    #[error("{url}: Kerberos: {what}")]
    Kerberos { url: String, what: String },
    /// HTTP 401 without a SOAP fault: the endpoint refused the Kerberos
    /// authentication.
    #[error("{url}: HTTP 401: the endpoint refused the Kerberos authentication")]
    Unauthorized { url: String },
    /// A redirect is an error, never followed: the request (and the password
    /// in it) goes only to the URL the directory publishes.
    #[error("{url}: HTTP {status} redirect to {location:?}: redirects are not followed")]
    Redirect {
        url: String,
        status: StatusCode,
        location: String,
    },
}

impl TransportError {
    /// Whether the server did not answer in time (as opposed to answering
    /// badly or refusing the connection).
    pub fn is_timeout(&self) -> bool {
        matches!(self, TransportError::Timeout { .. })
    }
}

/// An HTTP/1 client over rustls (aws-lc-rs) that trusts only `roots` (DER),
/// shared by every HTTPS client of the host (CES, SCEP, challenge pages).
/// `http://` URLs pass through unencrypted: callers that send credentials
/// refuse them first. No connect timeout of its own: every exchange is
/// bounded as a whole by the caller's limit.
pub(crate) fn https_client(
    roots: &[Vec<u8>],
) -> Result<Client<HttpsConnector<HttpConnector>, Full<Bytes>>, String> {
    let mut store = rustls::RootCertStore::empty();
    for der in roots {
        store
            .add(CertificateDer::from(der.clone()))
            .map_err(|e| format!("a trusted root cannot be used: {e}"))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(store)
    .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// Refuses any URL whose scheme is not `https` (compared without regard to
/// case, RFC 3986 3.1). Enrollment requests carry a UsernameToken with the
/// password in clear text ([MS-WSTEP] 2.2.1 leaves its protection to TLS).
pub fn require_https(url: &str) -> Result<(), TransportError> {
    let https = url
        .parse::<hyper::Uri>()
        .ok()
        .and_then(|u| u.scheme_str().map(|s| s.eq_ignore_ascii_case("https")))
        .unwrap_or(false);
    if https {
        Ok(())
    } else {
        Err(TransportError::NotHttps {
            url: url.to_string(),
        })
    }
}

const SOAP: &str = "application/soap+xml; charset=utf-8";

/// A pooled HTTPS client.
#[derive(Clone)]
pub struct Https {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl Https {
    /// A client that trusts exactly `roots` (DER certificates).
    pub fn new(roots: &[Vec<u8>], timeout: Duration) -> Result<Https, TransportError> {
        let setup = |what: String| TransportError::Setup {
            url: String::new(),
            what,
        };
        if roots.is_empty() {
            return Err(setup(
                "no trusted roots: the directory publishes none under Certification Authorities"
                    .into(),
            ));
        }
        let client = https_client(roots).map_err(setup)?;
        Ok(Https { client, timeout })
    }

    /// POSTs a SOAP 1.2 message and returns the body of the answer. SOAP
    /// faults come with HTTP 400/500: their body is returned too.
    pub async fn post_soap(&self, url: &str, xml: String) -> Result<Vec<u8>, TransportError> {
        self.post_soap_within(url, xml, self.timeout).await
    }

    /// [`Https::post_soap`] bounded by `limit` (at most the client's own
    /// timeout) for the whole exchange. Only `https://` URLs are sent to, and
    /// a redirect is answered with an error, never followed.
    pub async fn post_soap_within(
        &self,
        url: &str,
        xml: String,
        limit: Duration,
    ) -> Result<Vec<u8>, TransportError> {
        self.post(url, SOAP, xml, limit, None, None).await
    }

    /// [`Https::post_soap_within`] authenticated with HTTP Negotiate ([RFC
    /// 4559]): SPNEGO/Kerberos to `HTTP/<host of the URL>` with mutual
    /// authentication. The answer is trusted only once the server's final
    /// `WWW-Authenticate: Negotiate` token completes the context; a 401 (the
    /// CA refused the authenticator) is returned as the SOAP fault it
    /// carries, or as [`TransportError::Unauthorized`].
    pub async fn post_soap_negotiate(
        &self,
        url: &str,
        xml: String,
        limit: Duration,
        credentials: &Credentials,
    ) -> Result<Vec<u8>, TransportError> {
        self.post(url, SOAP, xml, limit, Some(credentials), None)
            .await
    }

    /// POSTs a JSON body (the CA's requester revocation,
    /// `pki::revocation`) authenticated with HTTP Negotiate or, with a
    /// password, HTTP Basic (HTTPS only, as every exchange here). An answer
    /// that is not a success is [`TransportError::Status`].
    pub async fn post_json(
        &self,
        url: &str,
        json: String,
        limit: Duration,
        negotiate: Option<&Credentials>,
        basic: Option<&crate::wstep::UsernameToken>,
    ) -> Result<Vec<u8>, TransportError> {
        self.post(url, "application/json", json, limit, negotiate, basic)
            .await
    }

    async fn post(
        &self,
        url: &str,
        content_type: &'static str,
        xml: String,
        limit: Duration,
        negotiate: Option<&Credentials>,
        basic: Option<&crate::wstep::UsernameToken>,
    ) -> Result<Vec<u8>, TransportError> {
        require_https(url)?;
        let limit = limit.min(self.timeout);
        let failed = |cause: String| TransportError::Failed {
            url: url.to_string(),
            cause,
        };
        let kerberos = |what: String| TransportError::Kerberos {
            url: url.to_string(),
            what,
        };
        let uri: hyper::Uri = url.parse().map_err(|e| failed(format!("bad URL: {e}")))?;
        let exchange = async {
            let mut builder = Request::builder()
                .method(Method::POST)
                .uri(uri.clone())
                .header(hyper::header::CONTENT_TYPE, content_type);
            if let (None, Some(b)) = (negotiate, basic) {
                builder = builder.header(
                    hyper::header::AUTHORIZATION,
                    format!(
                        "Basic {}",
                        STANDARD.encode(format!("{}:{}", b.username, b.password))
                    ),
                );
            }
            let mut negotiation = None;
            if let Some(credentials) = negotiate {
                // The SPN's host is the URL's, as written: never a name
                // found by (reverse) DNS.
                let host = uri
                    .host()
                    .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string())
                    .ok_or_else(|| failed("the URL has no host".into()))?;
                let credentials = credentials.clone();
                let (n, token) =
                    tokio::task::spawn_blocking(move || credentials.negotiate("HTTP", &host))
                        .await
                        .map_err(|e| kerberos(format!("the Kerberos thread failed: {e}")))?
                        .map_err(|e| kerberos(e.to_string()))?;
                builder = builder.header(
                    hyper::header::AUTHORIZATION,
                    format!("Negotiate {}", STANDARD.encode(token)),
                );
                negotiation = Some(n);
            }
            let request = builder
                .body(Full::new(Bytes::from(xml)))
                .map_err(|e| failed(format!("bad URL: {e}")))?;
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| failed(describe(&e)))?;
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(hyper::header::LOCATION)
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .unwrap_or_default();
                return Err(TransportError::Redirect {
                    url: url.to_string(),
                    status,
                    location,
                });
            }
            let soap = response
                .headers()
                .get(hyper::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("soap+xml"));
            let server_token = negotiate_token(response.headers());
            let body = Limited::new(response.into_body(), MAX_MESSAGE_BYTES)
                .collect()
                .await
                .map_err(|e| failed(format!("reading the answer: {e}")))?
                .to_bytes();
            if let Some(n) = negotiation {
                if status == StatusCode::UNAUTHORIZED {
                    // The CA refused the authenticator: there is nothing to
                    // verify, and a refusal grants nothing.
                    if soap {
                        return Ok(body.to_vec());
                    }
                    return Err(TransportError::Unauthorized {
                        url: url.to_string(),
                    });
                }
                let token = server_token.map_err(kerberos)?;
                tokio::task::spawn_blocking(move || n.finish(token.as_deref()))
                    .await
                    .map_err(|e| kerberos(format!("the Kerberos thread failed: {e}")))?
                    .map_err(|e| kerberos(e.to_string()))?;
            }
            if !status.is_success() && !soap {
                return Err(TransportError::Status {
                    url: url.to_string(),
                    status,
                });
            }
            Ok(body.to_vec())
        };
        tokio::time::timeout(limit, exchange)
            .await
            .map_err(|_| TransportError::Timeout {
                url: url.to_string(),
                timeout: limit,
            })?
    }

    /// GETs a small file (a CRL or a CA certificate).
    pub async fn get(&self, url: &str) -> Result<Vec<u8>, TransportError> {
        let failed = |cause: String| TransportError::Failed {
            url: url.to_string(),
            cause,
        };
        let uri: hyper::Uri = url.parse().map_err(|e| failed(format!("bad URL: {e}")))?;
        let exchange = async {
            let response = self
                .client
                .get(uri)
                .await
                .map_err(|e| failed(describe(&e)))?;
            let status = response.status();
            if !status.is_success() {
                return Err(TransportError::Status {
                    url: url.to_string(),
                    status,
                });
            }
            let body = Limited::new(response.into_body(), 16 * 1024 * 1024)
                .collect()
                .await
                .map_err(|e| failed(format!("reading the answer: {e}")))?;
            Ok(body.to_bytes().to_vec())
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| TransportError::Timeout {
                url: url.to_string(),
                timeout: self.timeout,
            })?
    }
}

/// The token of the server's `WWW-Authenticate: Negotiate <base64>` header
/// ([RFC 4559] 4.1), if it sent one; a header that is not base64 is an error.
pub fn negotiate_token(headers: &hyper::HeaderMap) -> Result<Option<Vec<u8>>, String> {
    for value in headers.get_all(hyper::header::WWW_AUTHENTICATE) {
        let Ok(text) = value.to_str() else { continue };
        let text = text.trim();
        let (scheme, rest) = text.split_once(' ').unwrap_or((text, ""));
        if !scheme.eq_ignore_ascii_case("Negotiate") {
            continue;
        }
        let rest = rest.trim();
        if rest.is_empty() {
            return Ok(None);
        }
        return STANDARD
            .decode(rest)
            .map(Some)
            .map_err(|e| format!("the server's Negotiate token is not base64: {e}"));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_negotiate_token_is_read_from_its_header() {
        let mut h = hyper::HeaderMap::new();
        assert_eq!(negotiate_token(&h), Ok(None));
        h.append(
            hyper::header::WWW_AUTHENTICATE,
            "Basic realm=x".parse().unwrap(),
        );
        assert_eq!(negotiate_token(&h), Ok(None));
        h.append(
            hyper::header::WWW_AUTHENTICATE,
            "negotiate  oYGHMIGE ".parse().unwrap(),
        );
        assert_eq!(
            negotiate_token(&h),
            Ok(Some(STANDARD.decode("oYGHMIGE").unwrap()))
        );
        let mut bare = hyper::HeaderMap::new();
        bare.insert(
            hyper::header::WWW_AUTHENTICATE,
            "Negotiate".parse().unwrap(),
        );
        assert_eq!(negotiate_token(&bare), Ok(None));
        let mut bad = hyper::HeaderMap::new();
        bad.insert(
            hyper::header::WWW_AUTHENTICATE,
            "Negotiate **".parse().unwrap(),
        );
        assert!(negotiate_token(&bad).unwrap_err().contains("not base64"));
    }

    #[test]
    fn only_https_urls_are_enrollment_urls() {
        assert!(require_https("https://ca.corp.example/CES").is_ok());
        assert!(require_https("HTTPS://ca.corp.example/CES").is_ok());
        for url in [
            "http://ca.corp.example/CES",
            "ldap://ca.corp.example",
            "ca.corp.example/CES",
            "",
            "https//ca",
        ] {
            let e = require_https(url).unwrap_err();
            assert!(matches!(e, TransportError::NotHttps { .. }), "{url}: {e}");
        }
    }

    /// A plain-HTTP URL is refused before any connection is made: a listener
    /// on that address sees nobody.
    #[tokio::test]
    async fn nothing_is_sent_to_a_plain_http_url() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/CES", listener.local_addr().unwrap());
        let (root, _) = test_root();
        let https = Https::new(&[root], Duration::from_secs(5)).unwrap();
        let e = https.post_soap(&url, "<secret/>".into()).await.unwrap_err();
        assert!(matches!(e, TransportError::NotHttps { .. }), "{e}");
        assert!(e.to_string().contains("password"), "{e}");
        assert!(listener.accept().is_err(), "a connection was made");
    }

    fn test_root() -> (Vec<u8>, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.der().to_vec(), key)
    }
}
