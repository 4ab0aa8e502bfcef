//! `ca serve`: the HTTPS server. One WSTEP endpoint (the path AD CS's
//! enrollment web service uses), and downloads of the CA certificate and the
//! current CRL at the URLs written into issued certificates, over HTTPS and,
//! when configured, plain HTTP.
//!
//! Plain HTTP serves `GET` and `HEAD` of the two downloads and nothing else
//! (405 for another method on them, 404 for every other path): the WSTEP
//! endpoint checks passwords, which must never cross the wire in cleartext
//! ([MS-WSTEP] 2.1: the UsernameToken binding requires transport security).
//!
//! Hostile clients are bounded: each peer address holds at most
//! [`Limits::max_per_peer`] connections and all peers together
//! [`Limits::max_connections`]; a connection that sends nothing is closed
//! after [`Limits::first_byte_timeout`]; TLS handshakes, request headers and
//! bodies each have a time limit; a body larger than the WSTEP limit gets 413
//! with a fault, before any of it is read when the client waits for
//! `100 Continue`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::authority::{Answer, Authority, CaError, Caller, failure};
use super::config::{CaConfig, endpoint_path, kerberos_endpoint_path};
use super::db::Authentication;
use super::ndes::{self, service::Ndes};
use crate::krb::Acceptor;
use crate::wstep::{self, FaultCode, RequestKind, WstepFault, WstepRequest};

/// What one client may hold of the server, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Open connections of all peers together, on both listeners.
    pub max_connections: usize,
    /// Open connections of one peer address, on both listeners: one client
    /// cannot take all of [`Limits::max_connections`] and lock everyone out.
    pub max_per_peer: usize,
    /// A new connection must send its first byte (the TLS ClientHello, the
    /// HTTP request line) within this; idle sockets are closed sooner than a
    /// slow handshake would be.
    pub first_byte_timeout: Duration,
    pub handshake_timeout: Duration,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    /// Whole life of a connection.
    pub connection_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 512,
            max_per_peer: 32,
            first_byte_timeout: Duration::from_secs(3),
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            connection_timeout: Duration::from_secs(120),
        }
    }
}

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
/// background with the default [`Limits`].
pub async fn start(authority: Arc<Authority>) -> Result<Listening, CaError> {
    start_with(authority, Limits::default()).await
}

/// [`start`] with explicit limits.
pub async fn start_with(authority: Arc<Authority>, limits: Limits) -> Result<Listening, CaError> {
    let tls = TlsAcceptor::from(Arc::new(tls_config(&authority)?));
    let config = authority.config().clone();
    // The Kerberos endpoint's keys: a keytab that cannot be used stops the
    // server here, with the file and what it holds.
    let acceptor = match &config.kerberos {
        Some(k) => {
            let keytab = k.keytab.clone();
            let service = config.kerberos_service();
            let rcache = config.replay_cache_path();
            let acceptor = tokio::task::spawn_blocking(move || {
                Acceptor::from_keytab(&keytab, service.as_deref(), &rcache)
            })
            .await
            .map_err(|e| CaError::State(format!("the Kerberos thread failed: {e}")))?
            .map_err(|e| CaError::State(format!("the Kerberos endpoint: {e}")))?;
            Some(Arc::new(acceptor))
        }
        None => None,
    };
    let bind = |addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|e| CaError::State(format!("cannot listen on {addr}: {e}")))
    };
    let https = bind(config.listen).await?;
    let https_addr = https
        .local_addr()
        .map_err(|e| CaError::State(format!("listener: {e}")))?;
    // The RA certificates are renewed here when they near their end.
    let ndes = Ndes::open(&config, authority.signer(), authority.now())?.map(Arc::new);
    let (shutdown, stopped) = watch::channel(false);
    let shared = Arc::new(Shared {
        authority,
        acceptor,
        ndes,
        limits,
        total: Arc::new(Semaphore::new(limits.max_connections)),
        peers: Arc::new(Mutex::new(HashMap::new())),
    });
    let mut tasks = JoinSet::new();
    tasks.spawn(accept_loop(
        https,
        Transport::Https(tls),
        shared.clone(),
        stopped.clone(),
    ));
    let mut http_addr = None;
    if let Some(addr) = config.http_listen {
        let http = bind(addr).await?;
        http_addr = http.local_addr().ok();
        tasks.spawn(accept_loop(http, Transport::PlainHttp, shared, stopped));
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
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| state("TLS", e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| state("TLS certificate and key", e.to_string()))?;
    // No TLS 1.3 session tickets (RFC 8446 4.6.1): an enrolling host makes
    // one connection per pulse, hours apart, and never resumes, so the two
    // tickets rustls sends by default were sealed, sent and kept for nothing
    // on every connection.
    config.send_tls13_tickets = 0;
    Ok(config)
}

/// Which listener a connection came in on.
#[derive(Clone)]
enum Transport {
    Https(TlsAcceptor),
    /// Downloads only.
    PlainHttp,
}

/// What the listeners share: the CA, the limits and the connection counts.
struct Shared {
    authority: Arc<Authority>,
    /// The Kerberos endpoint's credentials, when it is configured.
    acceptor: Option<Arc<Acceptor>>,
    /// The NDES role, when `[ndes]` is configured.
    ndes: Option<Arc<Ndes>>,
    limits: Limits,
    total: Arc<Semaphore>,
    peers: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// Counts a connection of `peer` if it stays within `max` (pure, so the rule
/// is testable without sockets).
fn admit(counts: &mut HashMap<IpAddr, usize>, peer: IpAddr, max: usize) -> bool {
    let n = counts.entry(peer).or_insert(0);
    if *n >= max {
        return false;
    }
    *n += 1;
    true
}

/// Uncounts a connection of `peer`; an address without connections leaves
/// the map, so the map holds only peers connected now.
fn release(counts: &mut HashMap<IpAddr, usize>, peer: IpAddr) {
    if let Some(n) = counts.get_mut(&peer) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            counts.remove(&peer);
        }
    }
}

/// One counted connection of a peer, uncounted when dropped.
struct PeerSlot {
    peers: Arc<Mutex<HashMap<IpAddr, usize>>>,
    peer: IpAddr,
}

impl PeerSlot {
    fn take(shared: &Shared, peer: IpAddr) -> Option<PeerSlot> {
        let mut counts = shared.peers.lock().unwrap_or_else(|p| p.into_inner());
        admit(&mut counts, peer, shared.limits.max_per_peer).then(|| PeerSlot {
            peers: shared.peers.clone(),
            peer,
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut counts = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        release(&mut counts, self.peer);
    }
}

/// The address a peer is counted under: an IPv4-mapped IPv6 address is the
/// IPv4 address it maps.
fn peer_key(addr: SocketAddr) -> IpAddr {
    addr.ip().to_canonical()
}

async fn accept_loop(
    listener: TcpListener,
    transport: Transport,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
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
        let Some(slot) = PeerSlot::take(&shared, peer_key(peer)) else {
            tracing::warn!(%peer, "too many connections from this address; refusing one");
            continue;
        };
        let Ok(permit) = shared.total.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "too many connections; refusing one");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let transport = transport.clone();
        connections.spawn(async move {
            let _held = (permit, slot);
            let limits = shared.limits;
            let served = serve_connection(stream, peer, transport, shared);
            let _ = tokio::time::timeout(limits.connection_timeout, served).await;
        });
        while connections.try_join_next().is_some() {}
    }
    while connections.join_next().await.is_some() {}
}

/// Waits for the first byte, then runs TLS (on the HTTPS listener) and HTTP/1.1.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    transport: Transport,
    shared: Arc<Shared>,
) {
    let limits = shared.limits;
    let mut first = [0u8; 1];
    match tokio::time::timeout(limits.first_byte_timeout, stream.peek(&mut first)).await {
        Ok(Ok(n)) if n > 0 => {}
        Ok(_) => return,
        Err(_) => {
            tracing::debug!(%peer, "closing a connection that sent nothing");
            return;
        }
    }
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let authority = shared.authority.clone();
    match transport {
        Transport::Https(tls) => {
            let stream =
                match tokio::time::timeout(limits.handshake_timeout, tls.accept(stream)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
            let acceptor = shared.acceptor.clone();
            let ndes = shared.ndes.clone();
            let service = service_fn(move |req| {
                route(
                    authority.clone(),
                    acceptor.clone(),
                    ndes.clone(),
                    limits,
                    req,
                )
            });
            let _ = http.serve_connection(TokioIo::new(stream), service).await;
        }
        Transport::PlainHttp => {
            let ndes = shared.ndes.clone();
            let service = service_fn(move |req| route_plain(authority.clone(), ndes.clone(), req));
            let _ = http.serve_connection(TokioIo::new(stream), service).await;
        }
    }
}

pub(super) type Reply = Response<Full<Bytes>>;

pub(super) fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

/// The two files both listeners serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Download {
    CaCertificate,
    Crl,
}

/// Which download `path` names, if any: `/CertEnroll/<CA name>.crt|.crl`,
/// the URLs written into issued certificates.
fn download(config: &CaConfig, path: &str) -> Option<Download> {
    let file = path.strip_prefix("/CertEnroll/")?;
    let (name, suffix) = file.rsplit_once('.')?;
    if name != config.name {
        return None;
    }
    match suffix {
        "crt" => Some(Download::CaCertificate),
        "crl" => Some(Download::Crl),
        _ => None,
    }
}

fn serve_download(authority: &Authority, what: Download) -> Reply {
    match what {
        Download::CaCertificate => reply(
            StatusCode::OK,
            "application/pkix-cert",
            authority.signer().certificate_der().to_vec(),
        ),
        Download::Crl => match authority.current_crl() {
            Ok(crl) => reply(StatusCode::OK, "application/pkix-crl", crl),
            Err(e) => {
                tracing::warn!(error = %e, "cannot serve the CRL");
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "the CRL cannot be read now",
                )
            }
        },
    }
}

fn method_not_allowed(allow: &'static str, text: &'static str) -> Reply {
    let mut r = reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", text);
    r.headers_mut().insert(
        hyper::header::ALLOW,
        hyper::header::HeaderValue::from_static(allow),
    );
    r
}

fn not_found() -> Reply {
    reply(StatusCode::NOT_FOUND, "text/plain", "not found")
}

/// A download asked for with `method`: GET and HEAD (hyper sends no body
/// for HEAD) are served, every other method is refused.
fn download_or_refuse(authority: &Authority, method: &Method, what: Download) -> Reply {
    if method == Method::GET || method == Method::HEAD {
        serve_download(authority, what)
    } else {
        method_not_allowed("GET, HEAD", "GET or HEAD this file")
    }
}

/// The plain-HTTP listener: downloads and NDES's `mscep.dll` (SCEP
/// messages are enveloped and signed), never WSTEP nor the challenge pages
/// (they take credentials).
async fn route_plain(
    authority: Arc<Authority>,
    ndes: Option<Arc<Ndes>>,
    req: Request<Incoming>,
) -> Result<Reply, Infallible> {
    if let Some(n) = &ndes
        && req.uri().path().eq_ignore_ascii_case(ndes::MSCEP_PATH)
    {
        return Ok(ndes::http::mscep(&authority, n, req).await);
    }
    let response = match download(authority.config(), req.uri().path()) {
        Some(what) => download_or_refuse(&authority, req.method(), what),
        None => not_found(),
    };
    Ok(response)
}

/// The HTTPS listener: downloads and the WSTEP endpoint.
async fn route(
    authority: Arc<Authority>,
    acceptor: Option<Arc<Acceptor>>,
    ndes: Option<Arc<Ndes>>,
    limits: Limits,
    req: Request<Incoming>,
) -> Result<Reply, Infallible> {
    let path = req.uri().path().to_string();
    if let Some(what) = download(authority.config(), &path) {
        return Ok(download_or_refuse(&authority, req.method(), what));
    }
    if path == crate::pki::revocation::path(&authority.config().name) {
        return Ok(super::revocation::serve(&authority, acceptor.clone(), req).await);
    }
    if let Some(n) = &ndes {
        if path.eq_ignore_ascii_case(ndes::MSCEP_PATH) {
            return Ok(ndes::http::mscep(&authority, n, req).await);
        }
        if path.eq_ignore_ascii_case(ndes::ADMIN_PATH) {
            return Ok(ndes::http::admin(&authority, acceptor.as_ref(), n, req).await);
        }
        if path.eq_ignore_ascii_case(ndes::CHALLENGE_PATH) {
            return Ok(ndes::http::dynamic(&authority, acceptor.as_ref(), n, req).await);
        }
    }
    let kerberos = match &acceptor {
        Some(a) if path == kerberos_endpoint_path(&authority.config().name) => Some(a.clone()),
        _ if path == endpoint_path(&authority.config().name) => None,
        _ => return Ok(not_found()),
    };
    if req.method() != Method::POST {
        return Ok(method_not_allowed("POST", "POST a SOAP 1.2 message"));
    }
    match kerberos {
        Some(acceptor) => Ok(kerberos_exchange(&authority, &acceptor, limits, req).await),
        None => Ok(wstep_exchange(&authority, limits, req).await),
    }
}

fn soap(status: StatusCode, xml: String) -> Reply {
    reply(status, "application/soap+xml; charset=utf-8", xml)
}

fn sender_fault(message: String) -> WstepFault {
    WstepFault {
        relates_to: None,
        hresult: failure::INVALID_ARGUMENT,
        message,
        request_id: None,
        invalid_request: true,
        code: FaultCode::Sender,
        binary_response: None,
    }
}

fn malformed(message: String) -> Reply {
    soap(StatusCode::BAD_REQUEST, sender_fault(message).to_xml())
}

/// 413 with a fault; the connection closes after it, since the body was not
/// (or not wholly) read.
fn too_large() -> Reply {
    let message = format!(
        "the request is larger than {} bytes",
        wstep::MAX_MESSAGE_BYTES
    );
    let mut r = soap(
        StatusCode::PAYLOAD_TOO_LARGE,
        sender_fault(message).to_xml(),
    );
    r.headers_mut().insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("close"),
    );
    r
}

/// The declared `Content-Length`, when there is one. An unreadable value is
/// left to hyper, which refuses such a request itself.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(hyper::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// How much of a body over the limit is still read (and thrown away) before
/// the 413: a client that sends without waiting for `100 Continue` then gets
/// to read the answer, instead of a reset while it still writes.
const DRAIN_LIMIT: u64 = 16 * wstep::MAX_MESSAGE_BYTES as u64;

/// Whether the client waits for `100 Continue` before it sends the body.
fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(hyper::header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"))
}

/// What reading a request body came to.
enum BodyRead {
    Complete(Bytes),
    /// Larger than the limit; read up to [`DRAIN_LIMIT`].
    TooLarge,
    Failed(String),
}

/// Reads the body, keeping at most `limit` bytes and discarding the rest
/// up to [`DRAIN_LIMIT`].
async fn read_bounded(mut body: Incoming, limit: usize) -> BodyRead {
    let mut kept = Vec::new();
    let mut seen: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => return BodyRead::Failed(e.to_string()),
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len() as u64);
        if seen > DRAIN_LIMIT {
            return BodyRead::TooLarge;
        }
        if seen <= limit as u64 {
            kept.extend_from_slice(&data);
        }
    }
    if seen > limit as u64 {
        BodyRead::TooLarge
    } else {
        BodyRead::Complete(Bytes::from(kept))
    }
}

/// Reads and parses a WSTEP request within the limits, or the answer that
/// refuses it.
async fn read_request(limits: Limits, req: Request<Incoming>) -> Result<WstepRequest, Reply> {
    // A declared length over the limit is refused before the body is polled
    // when the client waits for `100 Continue` (hyper sends it only when the
    // body is first read) or when the body is too large to drain.
    let declared = declared_length(req.headers());
    if declared.is_some_and(|n| n > wstep::MAX_MESSAGE_BYTES as u64)
        && (expects_continue(req.headers()) || declared.is_some_and(|n| n > DRAIN_LIMIT))
    {
        return Err(too_large());
    }
    let read = read_bounded(req.into_body(), wstep::MAX_MESSAGE_BYTES);
    let body = match tokio::time::timeout(limits.body_timeout, read).await {
        Err(_) => return Err(malformed("the request body did not arrive in time".into())),
        Ok(BodyRead::TooLarge) => return Err(too_large()),
        Ok(BodyRead::Failed(e)) => {
            return Err(malformed(format!(
                "the request body could not be read: {e}"
            )));
        }
        Ok(BodyRead::Complete(b)) => b,
    };
    WstepRequest::from_xml(&body).map_err(|e| malformed(format!("not a WSTEP request: {e}")))
}

async fn wstep_exchange(authority: &Authority, limits: Limits, req: Request<Incoming>) -> Reply {
    let request = match read_request(limits, req).await {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let caller = Caller::Token(request.credentials.as_ref());
    let answer = answer(authority, &request, caller).await;
    soap_answer(&request, answer)
}

/// The CA's answer to a request from an authenticated caller.
async fn answer(authority: &Authority, request: &WstepRequest, caller: Caller<'_>) -> Answer {
    match &request.kind {
        RequestKind::Issue { token } => authority.issue_as(token, caller, &request.context).await,
        RequestKind::QueryTokenStatus { request_id } => {
            authority.query_as(*request_id, caller).await
        }
    }
}

fn soap_answer(request: &WstepRequest, answer: Answer) -> Reply {
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

/// The client's token of `Authorization: Negotiate <base64>` ([RFC 4559]
/// 4.2), as text; `None` without such a header.
pub(super) fn negotiate_authorization(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(hyper::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("Negotiate")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

pub(super) fn with_negotiate(mut reply: Reply, token: Option<&[u8]>) -> Reply {
    let value = match token {
        Some(t) => format!("Negotiate {}", STANDARD.encode(t)),
        None => "Negotiate".to_string(),
    };
    if let Ok(v) = value.parse() {
        reply
            .headers_mut()
            .insert(hyper::header::WWW_AUTHENTICATE, v);
    }
    reply
}

/// 401 with the Negotiate challenge ([RFC 4559] 4.1) and a fault saying so.
fn negotiate_challenge() -> Reply {
    let fault = WstepFault {
        hresult: failure::ACCESS_DENIED,
        ..sender_fault(
            "this endpoint takes Kerberos: send Authorization: Negotiate (RFC 4559)".into(),
        )
    };
    with_negotiate(soap(StatusCode::UNAUTHORIZED, fault.to_xml()), None)
}

/// What a refused authenticator is told (and what the database records):
/// the kind of failure, never a key or a ticket.
fn refusal_reason(e: &crate::krb::KrbError) -> String {
    use crate::krb::errors::Kind;
    let what = match e.kind {
        Kind::Replay => "the authenticator was already used (a replay)",
        Kind::ClockSkew => "the authenticator's time is outside the clock skew Kerberos allows",
        Kind::NoTickets => "the ticket has expired",
        Kind::KeyRefused => "the ticket is not for this service's key",
        _ => "the token is not a valid Kerberos authenticator for this service",
    };
    format!("Kerberos authentication failed: {what}")
}

/// The Kerberos endpoint: HTTP Negotiate, then the request as the client
/// principal's account. Every refused authenticator is recorded
/// ([`Authority::deny_unauthenticated`]) and answered 401 with an
/// E_ACCESSDENIED fault; an accepted one gets the server's mutual
/// authentication token on the answer, whatever the answer is.
async fn kerberos_exchange(
    authority: &Authority,
    acceptor: &Arc<Acceptor>,
    limits: Limits,
    req: Request<Incoming>,
) -> Reply {
    let Some(token) = negotiate_authorization(req.headers()).map(str::to_string) else {
        return negotiate_challenge();
    };
    let request = match read_request(limits, req).await {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let accepted = match STANDARD.decode(token.as_bytes()) {
        Err(_) => Err("Kerberos authentication failed: the Negotiate token is not base64".into()),
        Ok(bytes) => {
            let acceptor = acceptor.clone();
            match tokio::task::spawn_blocking(move || acceptor.accept(&bytes)).await {
                Ok(Ok(a)) => Ok(a),
                Ok(Err(e)) => {
                    tracing::info!(error = %e, "Kerberos authenticator refused");
                    Err(refusal_reason(&e))
                }
                Err(e) => Err(format!("Kerberos authentication failed: {e}")),
            }
        }
    };
    match accepted {
        Ok(accepted) => {
            let answer = answer(authority, &request, Caller::Kerberos(&accepted.client)).await;
            with_negotiate(soap_answer(&request, answer), accepted.reply.as_deref())
        }
        Err(reason) => {
            let (template, bytes) = match &request.kind {
                RequestKind::Issue { token } => (
                    request
                        .context
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case("CertificateTemplate"))
                        .map(|(_, v)| v.as_str()),
                    token.as_slice(),
                ),
                RequestKind::QueryTokenStatus { .. } => (None, &[][..]),
            };
            let answer =
                authority.deny_unauthenticated(template, bytes, Authentication::Kerberos, reason);
            let mut reply = soap_answer(&request, answer);
            *reply.status_mut() = StatusCode::UNAUTHORIZED;
            with_negotiate(reply, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_peer_is_held_to_its_share() {
        let mut counts = HashMap::new();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(admit(&mut counts, a, 2));
        assert!(admit(&mut counts, a, 2));
        assert!(!admit(&mut counts, a, 2), "a third connection of a");
        assert!(admit(&mut counts, b, 2), "b is not held to a's count");
        release(&mut counts, a);
        assert!(admit(&mut counts, a, 2), "a closed one, may open one");
        release(&mut counts, a);
        release(&mut counts, a);
        release(&mut counts, b);
        assert!(counts.is_empty(), "{counts:?}");
        // Releasing more than was taken does not wrap around.
        release(&mut counts, a);
        assert!(counts.is_empty());
    }

    #[test]
    fn mapped_ipv6_counts_as_its_ipv4_address() {
        let v4: SocketAddr = "192.0.2.1:4000".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:192.0.2.1]:4001".parse().unwrap();
        assert_eq!(peer_key(v4), peer_key(mapped));
    }

    #[test]
    fn downloads_are_exactly_the_two_files() {
        let config = CaConfig::parse(
            "name = \"corp-CA\"\ndns_host_name = \"ca.corp.example\"\nlisten = \"127.0.0.1:0\"\nstate_dir = \"ca\"\n[directory]\nurl = \"ldap://127.0.0.1\"\nbind = \"sasl_external\"\n",
            std::path::Path::new("ca.toml"),
        )
        .unwrap();
        let cases = [
            ("/CertEnroll/corp-CA.crt", Some(Download::CaCertificate)),
            ("/CertEnroll/corp-CA.crl", Some(Download::Crl)),
            ("/CertEnroll/other-CA.crl", None),
            ("/CertEnroll/corp-CA.key", None),
            ("/CertEnroll/corp-CA", None),
            ("/certenroll/corp-CA.crt", None),
            ("/CertEnroll/../ca-key.pem", None),
            ("/corp-CA_CES_UsernamePassword/service.svc/CES", None),
            ("/", None),
        ];
        for (path, expected) in cases {
            assert_eq!(download(&config, path), expected, "{path}");
        }
    }

    #[test]
    fn the_negotiate_token_is_read_from_authorization() {
        let mut h = HeaderMap::new();
        assert_eq!(negotiate_authorization(&h), None);
        h.insert(hyper::header::AUTHORIZATION, "Basic YTpi".parse().unwrap());
        assert_eq!(negotiate_authorization(&h), None);
        h.insert(hyper::header::AUTHORIZATION, "Negotiate".parse().unwrap());
        assert_eq!(negotiate_authorization(&h), None);
        h.insert(
            hyper::header::AUTHORIZATION,
            "negotiate  YIIC ".parse().unwrap(),
        );
        assert_eq!(negotiate_authorization(&h), Some("YIIC"));
    }

    #[test]
    fn declared_length_is_read_when_it_is_a_number() {
        let mut h = HeaderMap::new();
        assert_eq!(declared_length(&h), None);
        h.insert(hyper::header::CONTENT_LENGTH, "10485760".parse().unwrap());
        assert_eq!(declared_length(&h), Some(10_485_760));
        h.insert(hyper::header::CONTENT_LENGTH, "lots".parse().unwrap());
        assert_eq!(declared_length(&h), None);
    }
}
