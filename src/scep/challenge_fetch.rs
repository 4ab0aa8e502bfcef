//! Fetching SCEP challenge passwords, the client side of NDES's challenge
//! pages. Self-contained: the pure parsing ([`parse_one_time_page`],
//! [`parse_dynamic_answer`]) is apart from the HTTP ([`one_time`],
//! [`dynamic`]).
//!
//! - [`one_time`]: GET the NDES admin page (`.../certsrv/mscep_admin/`)
//!   with the host's credentials (HTTP Negotiate from its Kerberos
//!   credentials, or Basic) and read the one-time password from the page.
//!   Real NDES serves it in UTF-16LE with a byte order mark; UTF-8 pages
//!   (proxies, other servers) are read too.
//! - [`dynamic`]: POST the binding (expected subject, DNS names, key usage)
//!   to the CA's dynamic challenge endpoint (`.../certsrv/mscep_challenge/`)
//!   and get back a challenge sealed and signed by the CA, valid once.
//!
//! Only `https://` URLs are accepted (the request carries credentials) and
//! no redirect is followed. No error quotes the password or the page.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use serde::{Deserialize, Serialize};

use crate::krb::Credentials;

/// Largest page read; NDES's pages are under 4 KiB.
pub const MAX_PAGE_BYTES: usize = 64 * 1024;

/// Why no challenge was had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    #[error("{url}: {what}")]
    Transport { url: String, what: String },
    #[error("{url}: the server refused the credentials (HTTP {status})")]
    Unauthorized { url: String, status: u16 },
    /// NDES has `PasswordMax` unused passwords out already.
    #[error(
        "the NDES page says the password cache is full: use an issued password or wait for them to expire"
    )]
    CacheFull,
    /// The account may not have challenges.
    #[error("the NDES page says this account has no permission to enroll with SCEP")]
    NoPermission,
    /// A page without a password, not one of the known refusals.
    #[error("the NDES page holds no enrollment challenge password ({0})")]
    NoPassword(String),
    #[error("the dynamic challenge answer: {0}")]
    BadAnswer(String),
}

/// How the host authenticates to the challenge page.
pub enum Auth<'a> {
    /// HTTP Negotiate (RFC 4559) to `HTTP/<host of the URL>` with these
    /// credentials (the host's keytab or a user's cache, `krb::Credentials`).
    Negotiate(&'a Credentials),
    /// Basic (RFC 7617): a directory account name and its password.
    Basic { user: &'a str, password: &'a str },
}

/// The binding a dynamic challenge is asked for: the request will have to
/// carry exactly this subject (RFC 4514 text), these DNS names and this key
/// usage (bit 0 = digitalSignature, as x509-parser numbers them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    pub subject: String,
    #[serde(default)]
    pub dns_names: Vec<String>,
    #[serde(default)]
    pub key_usage: Option<u16>,
}

/// A dynamic challenge and when it stops being valid (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DynamicChallenge {
    pub challenge: String,
    pub expires: i64,
}

/// Decodes a page: UTF-16LE or UTF-16BE by their byte order mark, UTF-8
/// (with or without one), or UTF-16LE without a mark when every other byte
/// is zero. Pure.
pub fn decode_page(body: &[u8]) -> Result<String, ChallengeError> {
    let utf16 = |bytes: &[u8], le: bool| -> Result<String, ChallengeError> {
        if !bytes.len().is_multiple_of(2) {
            return Err(ChallengeError::NoPassword(
                "the UTF-16 page has an odd number of bytes".into(),
            ));
        }
        let units: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|c| {
                if le {
                    u16::from_le_bytes([c[0], c[1]])
                } else {
                    u16::from_be_bytes([c[0], c[1]])
                }
            })
            .collect();
        String::from_utf16(&units)
            .map_err(|_| ChallengeError::NoPassword("the page is not valid UTF-16".into()))
    };
    match body {
        [0xFF, 0xFE, rest @ ..] => utf16(rest, true),
        [0xFE, 0xFF, rest @ ..] => utf16(rest, false),
        [0xEF, 0xBB, 0xBF, rest @ ..] => std::str::from_utf8(rest)
            .map(str::to_string)
            .map_err(|_| ChallengeError::NoPassword("the page is not valid UTF-8".into())),
        _ if body.len() >= 4
            && body.len().is_multiple_of(2)
            && body.iter().skip(1).step_by(2).all(|b| *b == 0) =>
        {
            utf16(body, true)
        }
        _ => std::str::from_utf8(body)
            .map(str::to_string)
            .map_err(|_| ChallengeError::NoPassword("the page is neither UTF-8 nor UTF-16".into())),
    }
}

/// The one-time password of an NDES admin page (the text after "challenge
/// password is:", inside `<B>`...`</B>`), or why the page has none. Pure.
pub fn parse_one_time_page(body: &[u8]) -> Result<String, ChallengeError> {
    let page = decode_page(body)?;
    let lower = page.to_ascii_lowercase();
    if let Some(at) = lower.find("challenge password is:") {
        let rest = &page[at + "challenge password is:".len()..];
        let rest_lower = &lower[at + "challenge password is:".len()..];
        let value = match (rest_lower.find("<b>"), rest_lower.find("</b>")) {
            (Some(open), Some(close)) if open < close => &rest[open + 3..close],
            _ => rest.split(['<', '\r', '\n']).next().unwrap_or(""),
        };
        let value = value.trim();
        if !value.is_empty() && value.len() <= 256 && !value.chars().any(char::is_whitespace) {
            return Ok(value.to_string());
        }
        return Err(ChallengeError::NoPassword(
            "the password after \"challenge password is:\" is empty or malformed".into(),
        ));
    }
    if lower.contains("password cache is full") {
        return Err(ChallengeError::CacheFull);
    }
    if lower.contains("do not have sufficient permission") {
        return Err(ChallengeError::NoPermission);
    }
    Err(ChallengeError::NoPassword(
        "no \"challenge password is:\" in the page".into(),
    ))
}

/// The JSON answer of the dynamic challenge endpoint. Pure.
pub fn parse_dynamic_answer(body: &[u8]) -> Result<DynamicChallenge, ChallengeError> {
    let answer: DynamicChallenge =
        serde_json::from_slice(body).map_err(|e| ChallengeError::BadAnswer(e.to_string()))?;
    if answer.challenge.is_empty() || answer.challenge.len() > 8 * 1024 {
        return Err(ChallengeError::BadAnswer(
            "the challenge is empty or too long".into(),
        ));
    }
    Ok(answer)
}

/// GETs the NDES admin page at `url` (`https://.../certsrv/mscep_admin/`)
/// and returns its one-time password. `tls_roots` (DER) are the only roots
/// the server may chain to.
pub async fn one_time(
    url: &str,
    tls_roots: &[Vec<u8>],
    auth: Auth<'_>,
    timeout: Duration,
) -> Result<String, ChallengeError> {
    let body = exchange(url, tls_roots, auth, timeout, Method::GET, None).await?;
    parse_one_time_page(&body)
}

/// POSTs `binding` to the dynamic challenge endpoint at `url`
/// (`https://.../certsrv/mscep_challenge/`) and returns the challenge.
pub async fn dynamic(
    url: &str,
    tls_roots: &[Vec<u8>],
    auth: Auth<'_>,
    binding: &Binding,
    timeout: Duration,
) -> Result<DynamicChallenge, ChallengeError> {
    let json = serde_json::to_vec(binding).map_err(|e| ChallengeError::BadAnswer(e.to_string()))?;
    let body = exchange(url, tls_roots, auth, timeout, Method::POST, Some(json)).await?;
    parse_dynamic_answer(&body)
}

async fn exchange(
    url: &str,
    tls_roots: &[Vec<u8>],
    auth: Auth<'_>,
    timeout: Duration,
    method: Method,
    body: Option<Vec<u8>>,
) -> Result<Vec<u8>, ChallengeError> {
    let failed = |what: String| ChallengeError::Transport {
        url: url.to_string(),
        what,
    };
    let uri: hyper::Uri = url.parse().map_err(|e| failed(format!("not a URL: {e}")))?;
    if !uri
        .scheme_str()
        .is_some_and(|s| s.eq_ignore_ascii_case("https"))
    {
        return Err(failed(
            "only an https:// URL: the request carries credentials".into(),
        ));
    }
    // Plain HTTP was refused above: the request carries credentials.
    let client = crate::enroll::transport::https_client(tls_roots).map_err(failed)?;

    let mut builder = Request::builder().method(method).uri(uri.clone());
    if body.is_some() {
        builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
    }
    let mut negotiation = None;
    match auth {
        Auth::Basic { user, password } => {
            let token = STANDARD.encode(format!("{user}:{password}"));
            builder = builder.header(hyper::header::AUTHORIZATION, format!("Basic {token}"));
        }
        Auth::Negotiate(credentials) => {
            // The SPN's host is the URL's, as written.
            let host = uri
                .host()
                .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string())
                .ok_or_else(|| failed("the URL has no host".into()))?;
            let credentials = credentials.clone();
            let (n, token) =
                tokio::task::spawn_blocking(move || credentials.negotiate("HTTP", &host))
                    .await
                    .map_err(|e| failed(format!("the Kerberos thread failed: {e}")))?
                    .map_err(|e| failed(format!("Kerberos: {e}")))?;
            builder = builder.header(
                hyper::header::AUTHORIZATION,
                format!("Negotiate {}", STANDARD.encode(token)),
            );
            negotiation = Some(n);
        }
    }
    let request = builder
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| failed(format!("bad request: {e}")))?;
    let run = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| failed(format!("no answer: {e}")))?;
        let status = response.status();
        if status.is_redirection() {
            return Err(failed(format!("HTTP {status}: redirects are not followed")));
        }
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            // A 403 page may still say why (no permission).
            let body = Limited::new(response.into_body(), MAX_PAGE_BYTES)
                .collect()
                .await
                .map(|b| b.to_bytes().to_vec())
                .unwrap_or_default();
            if let Err(e @ (ChallengeError::NoPermission | ChallengeError::CacheFull)) =
                parse_one_time_page(&body)
            {
                return Err(e);
            }
            return Err(ChallengeError::Unauthorized {
                url: url.to_string(),
                status: status.as_u16(),
            });
        }
        let server_token =
            crate::enroll::transport::negotiate_token(response.headers()).map_err(failed)?;
        let body = Limited::new(response.into_body(), MAX_PAGE_BYTES)
            .collect()
            .await
            .map_err(|_| failed(format!("the answer is larger than {MAX_PAGE_BYTES} bytes")))?
            .to_bytes()
            .to_vec();
        if !status.is_success() {
            return Err(failed(format!("HTTP {status}")));
        }
        // Mutual authentication: the answer counts only once the server's
        // token completes the Kerberos context.
        if let Some(n) = negotiation {
            tokio::task::spawn_blocking(move || n.finish(server_token.as_deref()))
                .await
                .map_err(|e| failed(format!("the Kerberos thread failed: {e}")))?
                .map_err(|e| failed(format!("the server did not authenticate itself: {e}")))?;
        }
        Ok(body)
    };
    tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| failed(format!("no answer within {timeout:?}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16le(s: &str, bom: bool) -> Vec<u8> {
        let mut out = if bom { vec![0xFF, 0xFE] } else { vec![] };
        for u in s.encode_utf16() {
            out.extend_from_slice(&u.to_le_bytes());
        }
        out
    }

    const NDES_2016: &str = "<HTML><Head><Meta HTTP-Equiv=\"Content-Type\" Content=\"text/html; charset=UTF-16\">\r\n<Title>Network Device Enrollment Service</Title></Head>\r\n<Body BgColor=#FFFFFF><Font ID=locPageFont Face=\"Arial\">\r\n<P ID=locPageTitle> <B> Network Device Enrollment Service</B>\r\n<P> Network Device Enrollment Service allows you to obtain certificates for routers or other network devices using the Simple Certificate Enrollment Protocol (SCEP).\r\n<P> To complete certificate enrollment for your network device you will need the following information:\r\n<P> The thumbprint (hash value) for the CA certificate is: <B> 3C9B8D7F1E5A2B4C6D8E0F1A2B3C4D5E </B>\r\n<P> The enrollment challenge password is: <B> 6E6F0A1E2C6B9B2F </B>\r\n<P> This password can be used only once and will expire within 60 minutes.\r\n";

    #[test]
    fn pages_are_read_in_every_form_ndes_serves() {
        let utf8 = NDES_2016.as_bytes().to_vec();
        let mut utf8_bom = vec![0xEF, 0xBB, 0xBF];
        utf8_bom.extend_from_slice(&utf8);
        let mut utf16be = vec![0xFE, 0xFF];
        for u in NDES_2016.encode_utf16() {
            utf16be.extend_from_slice(&u.to_be_bytes());
        }
        let lower_tags = NDES_2016.replace("<B>", "<b>").replace("</B>", "</b>");
        let cases: Vec<(&str, Vec<u8>, Result<String, ChallengeError>)> = vec![
            (
                "UTF-16LE with BOM",
                utf16le(NDES_2016, true),
                Ok("6E6F0A1E2C6B9B2F".into()),
            ),
            (
                "UTF-16LE without BOM",
                utf16le(NDES_2016, false),
                Ok("6E6F0A1E2C6B9B2F".into()),
            ),
            ("UTF-16BE with BOM", utf16be, Ok("6E6F0A1E2C6B9B2F".into())),
            ("UTF-8", utf8, Ok("6E6F0A1E2C6B9B2F".into())),
            ("UTF-8 with BOM", utf8_bom, Ok("6E6F0A1E2C6B9B2F".into())),
            (
                "lower-case tags",
                lower_tags.into_bytes(),
                Ok("6E6F0A1E2C6B9B2F".into()),
            ),
            (
                "no bold",
                b"<P> The enrollment challenge password is: 0011223344556677\r\n<P>".to_vec(),
                Ok("0011223344556677".into()),
            ),
            (
                "cache full",
                utf16le(
                    "<P> The password cache is full.\r\n<P> Use one of the passwords",
                    true,
                ),
                Err(ChallengeError::CacheFull),
            ),
            (
                "no permission",
                utf16le(
                    "<P> You do not have sufficient permission to enroll with SCEP. Please contact your system administrator.",
                    true,
                ),
                Err(ChallengeError::NoPermission),
            ),
            (
                "an empty password",
                b"The enrollment challenge password is: <B>  </B>".to_vec(),
                Err(ChallengeError::NoPassword(
                    "the password after \"challenge password is:\" is empty or malformed".into(),
                )),
            ),
            (
                "a login page",
                b"<html><body>Sign in</body></html>".to_vec(),
                Err(ChallengeError::NoPassword(
                    "no \"challenge password is:\" in the page".into(),
                )),
            ),
            (
                "odd UTF-16",
                vec![0xFF, 0xFE, 0x41],
                Err(ChallengeError::NoPassword(
                    "the UTF-16 page has an odd number of bytes".into(),
                )),
            ),
            (
                "not text",
                vec![0xC3, 0x28, 0xA0, 0xA1, 0x00],
                Err(ChallengeError::NoPassword(
                    "the page is neither UTF-8 nor UTF-16".into(),
                )),
            ),
        ];
        for (what, body, want) in cases {
            assert_eq!(parse_one_time_page(&body), want, "{what}");
        }
    }

    #[test]
    fn dynamic_answers_are_checked() {
        assert_eq!(
            parse_dynamic_answer(br#"{"challenge":"v1.a.b","expires":99}"#).unwrap(),
            DynamicChallenge {
                challenge: "v1.a.b".into(),
                expires: 99
            }
        );
        assert!(parse_dynamic_answer(br#"{"challenge":"","expires":99}"#).is_err());
        assert!(parse_dynamic_answer(b"<html>").is_err());
    }
}
