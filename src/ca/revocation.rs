//! The requester-revocation endpoint of the emulated CA (our extension; AD
//! CS has none, see `pki::revocation`): `POST <pki::revocation::path>` over
//! HTTPS with `{"serial", "reason"}`, authenticated the way enrollment is
//! (HTTP Negotiate with Kerberos where the CA has a keytab, or the CES user
//! name and password as HTTP Basic), and honoured only for a certificate the
//! database records as issued to the same account. Every other serial, the
//! unknown and another account's alike, gets the same 404: the endpoint
//! does not tell who holds what.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use time::format_description::well_known::Rfc3339;

use super::authority::{Authority, LoginFailure};
use super::db::Disposition;
use super::server::{Reply, negotiate_authorization, reply, with_negotiate};
use crate::krb::Acceptor;
use crate::pki::revocation::{MAX_BYTES, RevocationAnswer, RevocationRequest};
use crate::wstep::UsernameToken;

/// How long the body may take to arrive.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

fn text(status: StatusCode, message: &str) -> Reply {
    reply(status, "text/plain; charset=utf-8", format!("{message}\n"))
}

/// The 401 that says which authentications are taken.
fn challenge(authority: &Authority, kerberos: bool) -> Reply {
    let mut r = text(
        StatusCode::UNAUTHORIZED,
        "authenticate as for enrollment: Negotiate (Kerberos) or Basic (the account's name and password)",
    );
    let h = r.headers_mut();
    if kerberos {
        h.append(
            hyper::header::WWW_AUTHENTICATE,
            "Negotiate".parse().expect("header"),
        );
    }
    if let Ok(v) = format!("Basic realm=\"{}\"", authority.config().name).parse() {
        h.append(hyper::header::WWW_AUTHENTICATE, v);
    }
    r
}

/// The user name and password of `Authorization: Basic`.
fn basic_authorization(headers: &hyper::HeaderMap) -> Option<UsernameToken> {
    let value = headers
        .get(hyper::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("Basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(token.trim()).ok()?).ok()?;
    let (username, password) = decoded.split_once(':')?;
    Some(UsernameToken {
        username: username.to_string(),
        password: password.to_string(),
    })
}

/// Answers one revocation request.
pub(super) async fn serve(
    authority: &Authority,
    acceptor: Option<std::sync::Arc<Acceptor>>,
    req: Request<Incoming>,
) -> Reply {
    if req.method() != Method::POST {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "POST a revocation request");
        r.headers_mut()
            .insert(hyper::header::ALLOW, "POST".parse().expect("header"));
        return r;
    }
    let negotiate = negotiate_authorization(req.headers()).map(str::to_string);
    let basic = basic_authorization(req.headers());
    let body = match tokio::time::timeout(
        BODY_TIMEOUT,
        Limited::new(req.into_body(), MAX_BYTES).collect(),
    )
    .await
    {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(_)) => return text(StatusCode::PAYLOAD_TOO_LARGE, "the request is too large"),
        Err(_) => {
            return text(
                StatusCode::REQUEST_TIMEOUT,
                "the request did not arrive in time",
            );
        }
    };
    // Who is asking, as the enrollment endpoints establish it.
    let mut mutual = None;
    let kerberos = acceptor.is_some();
    let login = match (negotiate, basic, acceptor) {
        (Some(token), _, Some(acceptor)) => {
            // GSS-API blocks: off the async threads, as the WSTEP endpoint does.
            let accepted = match STANDARD.decode(token.as_bytes()) {
                Err(_) => Err(()),
                Ok(bytes) => tokio::task::spawn_blocking(move || acceptor.accept(&bytes))
                    .await
                    .map_err(|_| ())
                    .and_then(|r| {
                        r.map_err(|e| {
                            tracing::info!(error = %e, "revocation: Kerberos authenticator refused");
                        })
                    }),
            };
            match accepted {
                Ok(a) => {
                    mutual = a.reply.clone();
                    authority.resolve_principal(&a.client).await
                }
                Err(()) => Err(LoginFailure::Refused),
            }
        }
        (_, Some(token), _) => authority.check_password(&token).await,
        _ => return challenge(authority, kerberos),
    };
    let finish = |r: Reply| with_negotiate_if(r, mutual.as_deref());
    let dn = match login {
        Ok(dn) => dn,
        Err(LoginFailure::Refused) => return challenge(authority, kerberos),
        Err(LoginFailure::Unavailable(e)) => {
            tracing::warn!(error = %e, "revocation: the directory cannot be asked");
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "the CA cannot check the account now; try again",
            );
        }
    };
    let request = match RevocationRequest::parse(&body) {
        Ok(r) => r,
        Err(e) => return finish(text(StatusCode::BAD_REQUEST, &e)),
    };
    let account = match authority.snapshot(&dn).await {
        Ok(s) => s.account,
        Err(e) => {
            tracing::warn!(error = %e, "revocation: the directory cannot be asked");
            return finish(text(
                StatusCode::SERVICE_UNAVAILABLE,
                "the CA cannot check the account now; try again",
            ));
        }
    };
    let not_yours = || {
        text(
            StatusCode::NOT_FOUND,
            "no certificate issued to this account has that serial",
        )
    };
    let record = match authority.db().by_serial(&request.serial) {
        Ok(Some(r)) if r.requester.eq_ignore_ascii_case(&account.sam_account_name) => r,
        Ok(_) | Err(_) => return finish(not_yours()),
    };
    if record.disposition == Disposition::Revoked {
        return finish(text(
            StatusCode::CONFLICT,
            "the certificate is already revoked",
        ));
    }
    match authority.revoke(&request.serial, request.reason) {
        Ok(r) => {
            tracing::info!(
                serial = r.serial.as_deref().unwrap_or(""),
                requester = %account.sam_account_name,
                reason = request.reason,
                "revoked at its requester's request"
            );
            let answer = RevocationAnswer {
                serial: r.serial.unwrap_or_default(),
                reason: request.reason,
                revoked_at: r
                    .revoked_at
                    .and_then(|t| t.format(&Rfc3339).ok())
                    .unwrap_or_default(),
            };
            finish(reply(
                StatusCode::OK,
                "application/json",
                serde_json::to_vec(&answer).unwrap_or_default(),
            ))
        }
        Err(e) => {
            tracing::warn!(error = %e, "revocation failed");
            finish(text(
                StatusCode::CONFLICT,
                "the certificate cannot be revoked",
            ))
        }
    }
}

/// The mutual-authentication token on an answer to a Negotiate request.
fn with_negotiate_if(r: Reply, token: Option<&[u8]>) -> Reply {
    match token {
        Some(t) => with_negotiate(r, Some(t)),
        None => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_authorization_is_read() {
        let mut h = hyper::HeaderMap::new();
        assert!(basic_authorization(&h).is_none());
        h.insert(
            hyper::header::AUTHORIZATION,
            format!("Basic {}", STANDARD.encode("CN=ws01:pa:ss"))
                .parse()
                .unwrap(),
        );
        let t = basic_authorization(&h).unwrap();
        assert_eq!(
            (t.username.as_str(), t.password.as_str()),
            ("CN=ws01", "pa:ss")
        );
        h.insert(
            hyper::header::AUTHORIZATION,
            "Negotiate YII".parse().unwrap(),
        );
        assert!(basic_authorization(&h).is_none());
        h.insert(hyper::header::AUTHORIZATION, "Basic !!".parse().unwrap());
        assert!(basic_authorization(&h).is_none());
    }
}
