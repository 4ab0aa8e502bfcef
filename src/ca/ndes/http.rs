//! The NDES paths over HTTP. `mscep.dll` is served over plain HTTP (as NDES
//! serves it: SCEP messages are enveloped and signed) and HTTPS; the two
//! challenge paths take credentials (HTTP Negotiate where the CA has
//! Kerberos keys, or Basic against the directory) and are served over HTTPS
//! only.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};

use super::challenge::{self, Kind};
use super::dynamic::Binding;
use super::service::{CAPS, Ndes};
use std::sync::Arc;

use crate::ca::authority::Authority;
use crate::krb::Acceptor;
use crate::model::Account;
use crate::scep::message::MAX_MESSAGE_BYTES;

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

fn text(status: StatusCode, t: impl Into<String>) -> Reply {
    reply(status, "text/plain; charset=utf-8", t.into())
}

fn query_value<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        k.eq_ignore_ascii_case(name).then_some(v)
    })
}

/// `GET /certsrv/mscep/mscep.dll?operation=...` and `POST ...?operation=PKIOperation`.
pub async fn mscep(authority: &Authority, ndes: &Ndes, req: Request<Incoming>) -> Reply {
    let query = req.uri().query().unwrap_or("").to_string();
    let operation = query_value(&query, "operation").unwrap_or("");
    match (req.method().clone(), operation) {
        (Method::GET, "GetCACaps") => reply(StatusCode::OK, "text/plain", CAPS),
        (Method::GET, "GetCACert") => match ndes.ca_certs(authority) {
            Ok(p7) => reply(StatusCode::OK, "application/x-x509-ca-ra-cert", p7),
            Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        },
        (Method::GET, "PKIOperation") => {
            let raw = query_value(&query, "message").unwrap_or("");
            let decoded = percent_decode(raw);
            match STANDARD.decode(decoded.trim()) {
                Ok(der) => pki(authority, ndes, &der).await,
                Err(_) => text(StatusCode::BAD_REQUEST, "message: not base64"),
            }
        }
        (Method::POST, "PKIOperation") => {
            let body = match Limited::new(req.into_body(), MAX_MESSAGE_BYTES)
                .collect()
                .await
            {
                Ok(b) => b.to_bytes(),
                Err(_) => {
                    return text(StatusCode::PAYLOAD_TOO_LARGE, "the pkiMessage is too large");
                }
            };
            pki(authority, ndes, &body).await
        }
        _ => text(
            StatusCode::BAD_REQUEST,
            "operation: GetCACaps, GetCACert or PKIOperation (RFC 8894 4)",
        ),
    }
}

async fn pki(authority: &Authority, ndes: &Ndes, der: &[u8]) -> Reply {
    match ndes.pki_operation(authority, der).await {
        Ok(rep) => reply(StatusCode::OK, "application/x-pki-message", rep),
        Err(e) => text(StatusCode::BAD_REQUEST, format!("the pkiMessage: {e}")),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                    16,
                ) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Basic credentials from `Authorization` (RFC 7617).
fn basic(req: &Request<Incoming>) -> Option<(String, String)> {
    let value = req
        .headers()
        .get(hyper::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("Basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(token.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn unauthorized(negotiate: bool) -> Reply {
    let mut r = text(StatusCode::UNAUTHORIZED, "credentials needed");
    if negotiate {
        r.headers_mut().append(
            hyper::header::WWW_AUTHENTICATE,
            hyper::header::HeaderValue::from_static("Negotiate"),
        );
    }
    r.headers_mut().append(
        hyper::header::WWW_AUTHENTICATE,
        hyper::header::HeaderValue::from_static("Basic realm=\"NDES\", charset=\"UTF-8\""),
    );
    r
}

/// Whether `account` is one of `admins` (a sAMAccountName, or a SID of the
/// account or of a group it belongs to, nested membership included).
pub fn is_admin(admins: &[String], account: &Account) -> bool {
    admins.iter().any(|a| {
        let a = a.trim();
        if a.starts_with("S-1-") {
            account
                .token
                .iter()
                .any(|s| s.to_string().eq_ignore_ascii_case(a))
        } else {
            a.eq_ignore_ascii_case(&account.sam_account_name)
        }
    })
}

/// The token of `Authorization: Negotiate <base64>` (RFC 4559 4.2).
fn negotiate(req: &Request<Incoming>) -> Option<Vec<u8>> {
    let value = req
        .headers()
        .get(hyper::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("Negotiate") {
        return None;
    }
    STANDARD.decode(token.trim()).ok()
}

/// Who called, and the mutual authentication token to send back.
struct Caller {
    account: Account,
    reply_token: Option<Vec<u8>>,
}

/// The authenticated administrator (HTTP Negotiate where the CA has
/// Kerberos keys, or Basic against the directory), or the reply refusing
/// the caller.
async fn admin_of(
    authority: &Authority,
    acceptor: Option<&Arc<Acceptor>>,
    ndes: &Ndes,
    req: &Request<Incoming>,
) -> Result<Caller, Reply> {
    let refused = |why: String| {
        let mut r = unauthorized(acceptor.is_some());
        *r.body_mut() = Full::new(Bytes::from(why));
        r
    };
    let (account, reply_token) = if let (Some(token), Some(acceptor)) = (negotiate(req), acceptor) {
        let acceptor = acceptor.clone();
        let accepted = match tokio::task::spawn_blocking(move || acceptor.accept(&token)).await {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => {
                tracing::info!(error = %e, "Kerberos authenticator refused (NDES)");
                return Err(refused("Kerberos authentication failed".into()));
            }
            Err(e) => return Err(refused(format!("Kerberos authentication failed: {e}"))),
        };
        match authority.principal_account_of(&accepted.client).await {
            Ok(a) => (a, accepted.reply),
            Err(why) => return Err(refused(why)),
        }
    } else if let Some((user, password)) = basic(req) {
        match authority.login_account(&user, &password).await {
            Ok(a) => (a, None),
            Err(why) => return Err(refused(why)),
        }
    } else {
        return Err(unauthorized(acceptor.is_some()));
    };
    if !is_admin(&ndes.config.admins, &account) {
        return Err(with_token(
            reply(
                StatusCode::FORBIDDEN,
                "text/html; charset=utf-16",
                challenge::utf16le(&challenge::page_no_permission()),
            ),
            reply_token.as_deref(),
        ));
    }
    Ok(Caller {
        account,
        reply_token,
    })
}

/// The server's mutual authentication token on an answer (RFC 4559 5).
fn with_token(mut r: Reply, token: Option<&[u8]>) -> Reply {
    if let Some(t) = token
        && let Ok(v) = format!("Negotiate {}", STANDARD.encode(t)).parse()
    {
        r.headers_mut().insert(hyper::header::WWW_AUTHENTICATE, v);
    }
    r
}

/// `GET /certsrv/mscep_admin/`: a one-time challenge password for an
/// administrator, in NDES's page (UTF-16LE).
pub async fn admin(
    authority: &Authority,
    acceptor: Option<&Arc<Acceptor>>,
    ndes: &Ndes,
    req: Request<Incoming>,
) -> Reply {
    if req.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET this page");
    }
    let Caller {
        account,
        reply_token,
    } = match admin_of(authority, acceptor, ndes, &req).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let now = authority.now();
    let password = match challenge::new_password() {
        Ok(p) => p,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let validity = ndes.config.challenge_validity;
    let stored = challenge::store(
        &authority.db(),
        &password,
        Kind::OneTime,
        &account.sam_account_name,
        now,
        now + validity,
        Some(ndes.config.password_max),
    );
    let page = match stored {
        Ok(true) => {
            challenge::page_with_password(ndes.ca_thumbprint(), &password, validity.as_secs() / 60)
        }
        Ok(false) => challenge::page_cache_full(),
        Err(e) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the request database: {e}"),
            );
        }
    };
    with_token(
        reply(
            StatusCode::OK,
            "text/html; charset=utf-16",
            challenge::utf16le(&page),
        ),
        reply_token.as_deref(),
    )
}

/// `POST /certsrv/mscep_challenge/` with a JSON [`Binding`]: a dynamic
/// challenge, as JSON `{"challenge": ..., "expires": <unix seconds>}`.
pub async fn dynamic(
    authority: &Authority,
    acceptor: Option<&Arc<Acceptor>>,
    ndes: &Ndes,
    req: Request<Incoming>,
) -> Reply {
    if req.method() != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, "POST a JSON binding");
    }
    let Caller {
        account,
        reply_token,
    } = match admin_of(authority, acceptor, ndes, &req).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let body = match Limited::new(req.into_body(), 64 * 1024).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return text(StatusCode::PAYLOAD_TOO_LARGE, "the binding is too large"),
    };
    let binding: Binding = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("the binding: {e}")),
    };
    let now = authority.now();
    match ndes.dynamic_challenge(authority, binding, &account.sam_account_name, now) {
        Ok((challenge, expires)) => with_token(
            reply(
                StatusCode::OK,
                "application/json",
                serde_json::json!({"challenge": challenge, "expires": expires.unix_timestamp()})
                    .to_string(),
            ),
            reply_token.as_deref(),
        ),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}
