//! `ca serve`: the HTTPS server. One WSTEP endpoint (the path AD CS's
//! enrollment web service uses), and downloads of the CA certificate and the
//! current CRL at the URLs written into issued certificates, over HTTPS and,
//! when configured, plain HTTP.
//!
//! Hostile clients are bounded: TLS handshakes, request headers and bodies
//! each have a time limit, bodies a size limit, connections a count limit.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::authority::{Answer, Authority, CaError, failure};
use super::config::endpoint_path;
use crate::wstep::{self, FaultCode, RequestKind, WstepFault, WstepRequest};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(120);
const MAX_CONNECTIONS: usize = 512;

/// A running server.
pub struct Listening {
    pub https: SocketAddr,
    pub http: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Listening {
    /// Stops accepting, lets requests in progress finish (bounded by the
    /// connection timeout), and returns.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Binds the configured addresses (port 0 picks a free one) and serves in the
/// background.
pub async fn start(authority: Arc<Authority>) -> Result<Listening, CaError> {
    let tls = TlsAcceptor::from(Arc::new(tls_config(&authority)?));
    let config = authority.config().clone();
    let bind = |addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|e| CaError::State(format!("cannot listen on {addr}: {e}")))
    };
    let https = bind(config.listen).await?;
    let https_addr = https
        .local_addr()
        .map_err(|e| CaError::State(format!("listener: {e}")))?;
    let (shutdown, stopped) = watch::channel(false);
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut tasks = JoinSet::new();
    tasks.spawn(accept_loop(
        https,
        Some(tls),
        authority.clone(),
        stopped.clone(),
        limit.clone(),
    ));
    let mut http_addr = None;
    if let Some(addr) = config.http_listen {
        let http = bind(addr).await?;
        http_addr = http.local_addr().ok();
        tasks.spawn(accept_loop(http, None, authority, stopped, limit));
    }
    Ok(Listening {
        https: https_addr,
        http: http_addr,
        shutdown,
        tasks,
    })
}

fn tls_config(authority: &Authority) -> Result<rustls::ServerConfig, CaError> {
    let c = authority.config();
    let state = |what: &str, e: String| CaError::State(format!("{what}: {e}"));
    let chain_pem = std::fs::read(c.tls_certificate_path()).map_err(|e| {
        state(
            &c.tls_certificate_path().display().to_string(),
            e.to_string(),
        )
    })?;
    let chain: Vec<_> = rustls_pemfile::certs(&mut chain_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| state("TLS certificate", e.to_string()))?;
    let key_pem = std::fs::read(c.tls_key_path())
        .map_err(|e| state(&c.tls_key_path().display().to_string(), e.to_string()))?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| state("TLS key", e.to_string()))?
        .ok_or_else(|| state("TLS key", "no key in the file".into()))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| state("TLS", e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| state("TLS certificate and key", e.to_string()))
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    authority: Arc<Authority>,
    mut stopped: watch::Receiver<bool>,
    limit: Arc<Semaphore>,
) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stopped.changed() => break,
        };
        let Ok((stream, peer)) = accepted else {
            // Out of file descriptors and the like: wait a little, go on.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "too many connections; refusing one");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let authority = authority.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            let _permit = permit;
            let service = service_fn(move |req| route(authority.clone(), req));
            let mut http = http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(true);
            let served = async {
                match tls {
                    Some(tls) => {
                        let stream =
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await
                            {
                                Ok(Ok(s)) => s,
                                Ok(Err(e)) => {
                                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                    return;
                                }
                                Err(_) => return,
                            };
                        let _ = http.serve_connection(TokioIo::new(stream), service).await;
                    }
                    None => {
                        let _ = http.serve_connection(TokioIo::new(stream), service).await;
                    }
                }
            };
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, served).await;
        });
        while connections.try_join_next().is_some() {}
    }
    while connections.join_next().await.is_some() {}
}

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

async fn route(authority: Arc<Authority>, req: Request<Incoming>) -> Result<Reply, Infallible> {
    let c = authority.config();
    let path = req.uri().path().to_string();
    let download = |suffix: &str| path == format!("/CertEnroll/{}.{suffix}", c.name);
    let response = match (req.method(), path.as_str()) {
        (&Method::GET, _) if download("crt") => reply(
            StatusCode::OK,
            "application/pkix-cert",
            authority.signer().certificate_der().to_vec(),
        ),
        (&Method::GET, _) if download("crl") => match authority.current_crl() {
            Ok(crl) => reply(StatusCode::OK, "application/pkix-crl", crl),
            Err(e) => reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", e.to_string()),
        },
        (&Method::POST, p) if p == endpoint_path(&c.name) => wstep_exchange(&authority, req).await,
        (_, p) if p == endpoint_path(&c.name) => reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "POST a SOAP 1.2 message",
        ),
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found"),
    };
    Ok(response)
}

fn soap(status: StatusCode, xml: String) -> Reply {
    reply(status, "application/soap+xml; charset=utf-8", xml)
}

fn malformed(message: String) -> Reply {
    let f = WstepFault {
        relates_to: None,
        hresult: failure::INVALID_ARGUMENT,
        message,
        request_id: None,
        invalid_request: true,
        code: FaultCode::Sender,
        binary_response: None,
    };
    soap(StatusCode::BAD_REQUEST, f.to_xml())
}

async fn wstep_exchange(authority: &Authority, req: Request<Incoming>) -> Reply {
    let limited = Limited::new(req.into_body(), wstep::MAX_MESSAGE_BYTES);
    let body = match tokio::time::timeout(BODY_TIMEOUT, limited.collect()).await {
        Err(_) => return malformed("the request body did not arrive in time".into()),
        Ok(Err(e)) => {
            let too_big = e
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some();
            let message = if too_big {
                format!(
                    "the request is larger than {} bytes",
                    wstep::MAX_MESSAGE_BYTES
                )
            } else {
                format!("the request body could not be read: {e}")
            };
            return malformed(message);
        }
        Ok(Ok(b)) => b.to_bytes(),
    };
    let request = match WstepRequest::from_xml(&body) {
        Ok(r) => r,
        Err(e) => return malformed(format!("not a WSTEP request: {e}")),
    };
    let answer = match &request.kind {
        RequestKind::Issue { token } => {
            authority
                .issue(token, request.credentials.as_ref(), &request.context)
                .await
        }
        RequestKind::QueryTokenStatus { request_id } => {
            authority
                .query(*request_id, request.credentials.as_ref())
                .await
        }
    };
    match answer {
        Answer::Response(mut r) => {
            r.relates_to = Some(request.message_id.clone());
            soap(StatusCode::OK, r.to_xml())
        }
        Answer::Fault(mut f) => {
            f.relates_to = Some(request.message_id.clone());
            tracing::info!(
                hresult = format_args!("0x{:08X}", f.hresult),
                request_id = ?f.request_id,
                reason = %f.message,
                "request denied"
            );
            soap(StatusCode::INTERNAL_SERVER_ERROR, f.to_xml())
        }
    }
}
