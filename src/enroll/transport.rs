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

use crate::directory::connection::describe;
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
}

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
        let mut store = rustls::RootCertStore::empty();
        for der in roots {
            store
                .add(CertificateDer::from(der.clone()))
                .map_err(|e| setup(format!("a trusted root cannot be used: {e}")))?;
        }
        if store.is_empty() {
            return Err(setup(
                "no trusted roots: the directory publishes none under Certification Authorities"
                    .into(),
            ));
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| setup(e.to_string()))?
        .with_root_certificates(store)
        .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout));
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Https { client, timeout })
    }

    /// POSTs a SOAP 1.2 message and returns the body of the answer. SOAP
    /// faults come with HTTP 400/500: their body is returned too.
    pub async fn post_soap(&self, url: &str, xml: String) -> Result<Vec<u8>, TransportError> {
        let failed = |cause: String| TransportError::Failed {
            url: url.to_string(),
            cause,
        };
        let request = Request::builder()
            .method(Method::POST)
            .uri(url)
            .header(
                hyper::header::CONTENT_TYPE,
                "application/soap+xml; charset=utf-8",
            )
            .body(Full::new(Bytes::from(xml)))
            .map_err(|e| failed(format!("bad URL: {e}")))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| failed(describe(&e)))?;
            let status = response.status();
            let soap = response
                .headers()
                .get(hyper::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("soap+xml"));
            let body = Limited::new(response.into_body(), MAX_MESSAGE_BYTES)
                .collect()
                .await
                .map_err(|e| failed(format!("reading the answer: {e}")))?
                .to_bytes();
            if !status.is_success() && !soap {
                return Err(TransportError::Status {
                    url: url.to_string(),
                    status,
                });
            }
            Ok(body.to_vec())
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| TransportError::Timeout {
                url: url.to_string(),
                timeout: self.timeout,
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
