//! Hostile requests to the emulated CA, as a table: each case is denied with
//! the exact HRESULT, and recorded in the CA database where the CA records
//! denials (every request from an authenticated account that reaches the
//! issuance decision). Faults before that point (no or wrong credentials,
//! unreadable messages, oversized bodies, polls) leave no record: writing one
//! per unauthenticated message would let anyone fill the CA's disk.
//!
//! Also the transport rules: plain HTTP serves downloads only, connections
//! are limited per peer address and idle ones closed early, an oversized body
//! gets 413 before it is read, and a directory outage is an internal failure
//! that reveals nothing of the CA's directory.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use autoenroll::ca::authority::LOGIN_REFUSED;
use autoenroll::ca::db::Disposition;
use autoenroll::enroll::{EnrollmentClient, Outcome, enrollment_request, renewal_request};
use autoenroll::pki::keys::{KeyAlgorithm, PrivateKey};
use autoenroll::wstep::{Reply, UsernameToken, WstepFault, parse_reply};
use common::{TestCa, client_with, openssl_csr, row_count, rsa, start_time, template};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const DAY: Duration = Duration::from_secs(86_400);
const E_ACCESSDENIED: u32 = 0x8007_0005;
const E_INVALIDARG: u32 = 0x8007_0057;
const E_FAIL: u32 = 0x8000_4005;
const NTE_BAD_SIGNATURE: u32 = 0x8009_0006;
const CERTSRV_E_BAD_REQUESTSUBJECT: u32 = 0x8009_4001;
const CERTSRV_E_BAD_RENEWAL_CERT_ATTRIBUTE: u32 = 0x8009_400E;
const CERTSRV_E_ENROLL_DENIED: u32 = 0x8009_4011;
const CERTSRV_E_TEMPLATE_DENIED: u32 = 0x8009_4012;
const CERTSRV_E_UNSUPPORTED_CERT_TYPE: u32 = 0x8009_4800;
const CERTSRV_E_TEMPLATE_CONFLICT: u32 = 0x8009_4802;
const CERTSRV_E_BAD_RENEWAL_SUBJECT: u32 = 0x8009_4806;
const CERTSRV_E_KEY_LENGTH: u32 = 0x8009_4811;
const CRYPT_E_REVOKED: u32 = 0x8009_2010;
const CERT_E_EXPIRED: u32 = 0x800B_0101;

fn p256() -> PrivateKey {
    PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap()
}

async fn submit(client: &EnrollmentClient, ca: &TestCa, token: &[u8], cn: &str) -> Outcome {
    client.submit(&ca.endpoint, token, cn).await.unwrap()
}

fn issued(outcome: &Outcome) -> Vec<u8> {
    match outcome {
        Outcome::Issued { certificate, .. } => certificate.clone(),
        other => panic!("expected a certificate, got {other:?}"),
    }
}

fn as_outcome(f: WstepFault) -> Outcome {
    Outcome::Denied {
        request_id: f.request_id,
        hresult: f.hresult,
        message: f.message,
        retryable: !f.invalid_request,
    }
}

/// Posts raw XML to the WSTEP endpoint; the fault it gets.
async fn post_xml(ca: &TestCa, xml: String) -> Outcome {
    let answer = ca
        .anonymous_client()
        .https()
        .post_soap(&ca.endpoint, xml)
        .await
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&answer).contains("root:"),
        "a file's content in the answer"
    );
    match parse_reply(&answer).unwrap() {
        Reply::Fault(f) => as_outcome(f),
        Reply::Response(r) => panic!("expected a fault, got {r:?}"),
    }
}

/// Where a denial must (or must not) leave a trace.
enum Record {
    /// A Denied record with the fault's code, named by the fault's request id.
    Denied,
    /// No new record: the database holds `rows` records, as before the case.
    Nothing { rows: usize },
    /// The earlier record `id` is unchanged (a replay creates none).
    Unchanged { id: u64, rows: usize },
}

/// The cases run, for the report: (case, HRESULT, recorded).
#[derive(Default)]
struct Table {
    rows: Vec<(String, u32, &'static str)>,
}

impl Table {
    fn check(&mut self, ca: &TestCa, case: &str, outcome: &Outcome, code: u32, record: Record) {
        let Outcome::Denied {
            hresult, message, ..
        } = outcome
        else {
            panic!("{case}: expected a denial, got {outcome:?}");
        };
        assert_eq!(
            *hresult, code,
            "{case}: 0x{hresult:08X} instead of 0x{code:08X}: {message}"
        );
        let kind = match record {
            Record::Denied => {
                common::assert_denial_recorded(ca, outcome, code);
                "recorded"
            }
            Record::Nothing { rows } => {
                assert_eq!(row_count(ca), rows, "{case}: a record was written");
                "not recorded"
            }
            Record::Unchanged { id, rows } => {
                assert_eq!(row_count(ca), rows, "{case}: a record was written");
                let r = ca.authority.db().get(id).unwrap().unwrap();
                assert_eq!(r.disposition, Disposition::Issued, "{case}: {r:?}");
                "original record kept"
            }
        };
        self.rows.push((case.to_string(), code, kind));
    }

    fn print(&self) {
        println!("hostile requests denied: {}", self.rows.len());
        for (case, code, kind) in &self.rows {
            println!("  0x{code:08X}  {kind:<20}  {case}");
        }
    }
}

fn envelope(body: &str) -> String {
    format!(
        r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>{body}</s:Body></s:Envelope>"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_are_denied_with_their_hresult_and_recorded() {
    let lab = common::start(None);
    let t0 = start_time();
    let mut ca = lab.start_ca(t0).await;
    let tmp = lab.tmp.path();
    let mut table = Table::default();
    let ws01 = ca.client("ws01");
    let web01 = ca.client("web01");
    let anonymous = ca.anonymous_client();
    let workstation = template(&lab, "WorkstationAuth").await;
    let legacy = template(&lab, "LegacyMachineAuth").await;
    let good = enrollment_request(&workstation, &rsa(), None).unwrap();

    // Certificates the renewal cases present.
    let (ws01_cert, ws01_key) = {
        let key = rsa();
        let csr = enrollment_request(&workstation, &key, None).unwrap();
        (
            issued(&submit(&ws01, &ca, &csr, "WorkstationAuth").await),
            key,
        )
    };
    let ws01_request_id = ca
        .authority
        .db()
        .by_serial(
            &autoenroll::pki::CertificateInfo::from_der(&ws01_cert)
                .unwrap()
                .serial,
        )
        .unwrap()
        .unwrap()
        .id;
    let ws01_request = ca
        .authority
        .db()
        .get(ws01_request_id)
        .unwrap()
        .unwrap()
        .request;
    let (web01_cert, web01_key) = {
        let key = rsa();
        let csr = enrollment_request(&workstation, &key, None).unwrap();
        (
            issued(&submit(&web01, &ca, &csr, "WorkstationAuth").await),
            key,
        )
    };
    let (revoked_cert, revoked_key) = {
        let key = rsa();
        let csr = enrollment_request(&workstation, &key, None).unwrap();
        let cert = issued(&submit(&ws01, &ca, &csr, "WorkstationAuth").await);
        let serial = autoenroll::pki::CertificateInfo::from_der(&cert)
            .unwrap()
            .serial;
        ca.authority.revoke(&serial, 1).unwrap();
        (cert, key)
    };
    let renew = |old: &[u8], old_key: &PrivateKey| {
        renewal_request(&workstation, &rsa(), old, old_key).unwrap()
    };

    // --- Authentication: refused before anything is recorded.
    let rows = row_count(&ca);
    let outcome = submit(&anonymous, &ca, &good, "WorkstationAuth").await;
    table.check(
        &ca,
        "no credentials",
        &outcome,
        E_ACCESSDENIED,
        Record::Nothing { rows },
    );

    let ws01_dn = "CN=ws01,CN=Computers,DC=corp,DC=example";
    let logins = [
        ("wrong password of a known account", ws01_dn, "guess"),
        (
            "unknown account",
            "CN=ghost01,CN=Computers,DC=corp,DC=example",
            "guess",
        ),
        (
            "unknown account by a name that is not a DN",
            "ghost01$",
            "guess",
        ),
        ("known account, empty password", ws01_dn, ""),
    ];
    for (case, user, password) in logins {
        let outcome = submit(
            &client_with(&ca, user, password),
            &ca,
            &good,
            "WorkstationAuth",
        )
        .await;
        // One answer for all: the fault tells no account from another.
        let Outcome::Denied { message, .. } = &outcome else {
            panic!("{case}: {outcome:?}");
        };
        assert_eq!(message, LOGIN_REFUSED, "{case}");
        table.check(
            &ca,
            case,
            &outcome,
            E_ACCESSDENIED,
            Record::Nothing { rows },
        );
    }

    let mut broken_renewal = renew(&ws01_cert, &ws01_key);
    let last = broken_renewal.len() - 1;
    broken_renewal[last] ^= 0x01;
    let outcome = submit(&anonymous, &ca, &broken_renewal, "WorkstationAuth").await;
    table.check(
        &ca,
        "renewal without credentials, bad CMS signature",
        &outcome,
        E_ACCESSDENIED,
        Record::Nothing { rows },
    );
    let (foreign_cert, foreign_key) = common::foreign_certificate("ws01.corp.example");
    let foreign_renewal = renew(&foreign_cert, &foreign_key);
    let outcome = submit(&anonymous, &ca, &foreign_renewal, "WorkstationAuth").await;
    table.check(
        &ca,
        "renewal without credentials, signed by a foreign certificate",
        &outcome,
        E_ACCESSDENIED,
        Record::Nothing { rows },
    );

    // --- Unreadable messages: E_INVALIDARG, nothing recorded.
    let bomb = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>&lol2;</s:Body></s:Envelope>"#;
    let xxe = r#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>&e;</s:Body></s:Envelope>"#;
    let depth = autoenroll::wstep::MAX_DEPTH + 1;
    let messages = [
        ("not XML", "not xml at all".to_string()),
        ("entity expansion (billion laughs)", bomb.to_string()),
        ("external entity (XXE)", xxe.to_string()),
        ("undeclared entity reference", envelope("<x>&xxe;</x>")),
        (
            "deeply nested XML",
            envelope(&format!("{}{}", "<x>".repeat(depth), "</x>".repeat(depth))),
        ),
        (
            "too many elements",
            envelope(&"<x/>".repeat(autoenroll::wstep::MAX_ELEMENTS + 1)),
        ),
        (
            "RequestSecurityToken without a token",
            envelope(
                r#"<wst:RequestSecurityToken xmlns:wst="http://docs.oasis-open.org/ws-sx/ws-trust/200512"/>"#,
            ),
        ),
        (
            "oversized XML (2 MiB body)",
            envelope(&"x".repeat(2 * 1024 * 1024)),
        ),
    ];
    for (case, xml) in messages {
        let outcome = post_xml(&ca, xml).await;
        table.check(&ca, case, &outcome, E_INVALIDARG, Record::Nothing { rows });
    }

    // --- Decisions on authenticated requests: recorded with their code.
    let ecdsa = template(&lab, "ServerAuthECDSA").await;
    let csr = enrollment_request(&ecdsa, &p256(), None).unwrap();
    let outcome = submit(&ws01, &ca, &csr, "ServerAuthECDSA").await;
    table.check(
        &ca,
        "no Enroll right",
        &outcome,
        CERTSRV_E_TEMPLATE_DENIED,
        Record::Denied,
    );

    let unpublished = template(&lab, "Unpublished").await;
    let csr = enrollment_request(&unpublished, &rsa(), None).unwrap();
    let outcome = submit(&ws01, &ca, &csr, "Unpublished").await;
    table.check(
        &ca,
        "template not published",
        &outcome,
        CERTSRV_E_UNSUPPORTED_CERT_TYPE,
        Record::Denied,
    );

    let csr = openssl_csr(tmp, "rsa:2048");
    let outcome = submit(&ws01, &ca, &csr, "NoSuchTemplate").await;
    table.check(
        &ca,
        "unknown template",
        &outcome,
        CERTSRV_E_UNSUPPORTED_CERT_TYPE,
        Record::Denied,
    );

    let csr = enrollment_request(&workstation, &rsa(), None).unwrap();
    let outcome = submit(&ws01, &ca, &csr, "LegacyMachineAuth").await;
    table.check(
        &ca,
        "two templates named (extension and request attribute)",
        &outcome,
        CERTSRV_E_TEMPLATE_CONFLICT,
        Record::Denied,
    );

    let csr = enrollment_request(&ecdsa, &rsa(), None).unwrap();
    let outcome = submit(&web01, &ca, &csr, "ServerAuthECDSA").await;
    table.check(
        &ca,
        "wrong key algorithm (RSA for an ECDSA_P256 template)",
        &outcome,
        CERTSRV_E_KEY_LENGTH,
        Record::Denied,
    );
    let csr = enrollment_request(&workstation, &p256(), None).unwrap();
    let outcome = submit(&ws01, &ca, &csr, "WorkstationAuth").await;
    table.check(
        &ca,
        "wrong key algorithm (P-256 for an RSA 2048 template)",
        &outcome,
        CERTSRV_E_KEY_LENGTH,
        Record::Denied,
    );
    for bits in ["rsa:1024", "rsa:512"] {
        let csr = openssl_csr(tmp, bits);
        let outcome = submit(&ws01, &ca, &csr, "WorkstationAuth").await;
        table.check(
            &ca,
            &format!("small key ({bits})"),
            &outcome,
            CERTSRV_E_KEY_LENGTH,
            Record::Denied,
        );
    }

    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x01;
    let outcome = submit(&ws01, &ca, &bad, "WorkstationAuth").await;
    table.check(
        &ca,
        "PKCS#10 with a bad signature",
        &outcome,
        NTE_BAD_SIGNATURE,
        Record::Denied,
    );
    let outcome = submit(&ws01, &ca, &good[..good.len() / 2], "WorkstationAuth").await;
    table.check(
        &ca,
        "truncated PKCS#10",
        &outcome,
        E_INVALIDARG,
        Record::Denied,
    );

    // Subject and SAN injection through the directory: the account writes
    // its own dNSHostName, the template builds subject and SAN from it.
    for (case, value) in [
        (
            "subject injection through dNSHostName (a DN in it)",
            "nodns01.corp.example,CN=Administrator",
        ),
        (
            "SAN injection through dNSHostName (a wildcard)",
            "*.corp.example",
        ),
    ] {
        lab.admin(
            "ldapmodify",
            &format!(
                "dn: CN=nodns01,CN=Computers,DC=corp,DC=example\nchangetype: modify\nreplace: dNSHostName\ndNSHostName: {value}\n"
            ),
        );
        let csr = enrollment_request(&workstation, &rsa(), None).unwrap();
        let outcome = submit(&ca.client("nodns01"), &ca, &csr, "WorkstationAuth").await;
        table.check(
            &ca,
            case,
            &outcome,
            CERTSRV_E_BAD_REQUESTSUBJECT,
            Record::Denied,
        );
    }

    // Renewals.
    let outcome = submit(
        &anonymous,
        &ca,
        &renew(&ws01_cert, &ws01_key),
        "WorkstationAuth",
    )
    .await;
    table.check(
        &ca,
        "renewal outside the renewal period",
        &outcome,
        CERTSRV_E_BAD_RENEWAL_CERT_ATTRIBUTE,
        Record::Denied,
    );
    ca.clock.set(t0 + 330 * DAY);
    let outcome = submit(&ws01, &ca, &broken_renewal, "WorkstationAuth").await;
    table.check(
        &ca,
        "renewal with a bad CMS signature",
        &outcome,
        NTE_BAD_SIGNATURE,
        Record::Denied,
    );
    let outcome = submit(&ws01, &ca, &foreign_renewal, "WorkstationAuth").await;
    table.check(
        &ca,
        "renewal signed by a foreign certificate",
        &outcome,
        CERTSRV_E_BAD_RENEWAL_CERT_ATTRIBUTE,
        Record::Denied,
    );
    let (forged_cert, forged_key) = common::forged_copy(&ws01_cert, &ca.ca_certificate);
    let outcome = submit(
        &anonymous,
        &ca,
        &renew(&forged_cert, &forged_key),
        "WorkstationAuth",
    )
    .await;
    table.check(
        &ca,
        "renewal signed by a forgery of an issued certificate (same issuer and serial)",
        &outcome,
        CERTSRV_E_BAD_RENEWAL_CERT_ATTRIBUTE,
        Record::Denied,
    );
    let outcome = submit(
        &ws01,
        &ca,
        &renew(&web01_cert, &web01_key),
        "WorkstationAuth",
    )
    .await;
    table.check(
        &ca,
        "renewal signed by another account's certificate",
        &outcome,
        CERTSRV_E_BAD_RENEWAL_SUBJECT,
        Record::Denied,
    );
    let outcome = submit(
        &anonymous,
        &ca,
        &renew(&revoked_cert, &revoked_key),
        "WorkstationAuth",
    )
    .await;
    table.check(
        &ca,
        "renewal signed by a revoked certificate",
        &outcome,
        CRYPT_E_REVOKED,
        Record::Denied,
    );
    let request = renewal_request(&legacy, &rsa(), &ws01_cert, &ws01_key).unwrap();
    let outcome = submit(&anonymous, &ca, &request, "LegacyMachineAuth").await;
    table.check(
        &ca,
        "renewal for a different template",
        &outcome,
        CERTSRV_E_TEMPLATE_CONFLICT,
        Record::Denied,
    );
    ca.clock.set(t0 + 400 * DAY);
    let outcome = submit(
        &anonymous,
        &ca,
        &renew(&ws01_cert, &ws01_key),
        "WorkstationAuth",
    )
    .await;
    table.check(
        &ca,
        "renewal signed by an expired certificate",
        &outcome,
        CERT_E_EXPIRED,
        Record::Denied,
    );
    ca.clock.set(t0);

    // Replay of a captured request by another account.
    let rows = row_count(&ca);
    let outcome = submit(&web01, &ca, &ws01_request, "WorkstationAuth").await;
    table.check(
        &ca,
        "replay of another account's request",
        &outcome,
        CERTSRV_E_ENROLL_DENIED,
        Record::Unchanged {
            id: ws01_request_id,
            rows,
        },
    );

    // Polling another account's pending request: the answer of a request
    // that does not exist.
    let pending = template(&lab, "PendingMachine").await;
    let csr = enrollment_request(&pending, &rsa(), None).unwrap();
    let Outcome::Pending { request_id, .. } = submit(&ws01, &ca, &csr, "PendingMachine").await
    else {
        panic!("PendingMachine pends");
    };
    let rows = row_count(&ca);
    let outcome = web01.query(&ca.endpoint, request_id).await.unwrap();
    let missing = web01.query(&ca.endpoint, request_id + 1000).await.unwrap();
    let (Outcome::Denied { message: a, .. }, Outcome::Denied { message: b, .. }) =
        (&outcome, &missing)
    else {
        panic!("{outcome:?} / {missing:?}");
    };
    assert_eq!(
        b,
        &a.replace(
            &format!("request {request_id} "),
            &format!("request {} ", request_id + 1000)
        )
    );
    table.check(
        &ca,
        "polling another account's pending request",
        &outcome,
        E_ACCESSDENIED,
        Record::Nothing { rows },
    );

    // After all of it the CA still issues.
    issued(
        &submit(
            &ws01,
            &ca,
            &enrollment_request(&workstation, &rsa(), None).unwrap(),
            "WorkstationAuth",
        )
        .await,
    );
    table.print();
    assert!(table.rows.len() >= 35, "{} cases", table.rows.len());
    ca.stop().await;
}

// ---------------------------------------------------------------------------
// Raw HTTP, for what a well-behaved client never sends.

/// Sends `request` on a new TCP connection to `addr` and reads until the
/// server closes.
async fn plain_exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    read_until_closed(&mut stream).await
}

async fn read_until_closed<S: AsyncReadExt + Unpin>(stream: &mut S) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(60), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return out,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Sends `request` over TLS to the CA's HTTPS listener (trusting the CA
/// certificate) and reads until the server closes.
async fn tls_exchange(ca: &TestCa, request: &[u8]) -> Vec<u8> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(
            ca.ca_certificate.clone(),
        ))
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let addr = ca.listening.as_ref().unwrap().https;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    tls.write_all(request).await.unwrap();
    read_until_closed(&mut tls).await
}

/// Status line and body of a raw HTTP/1.1 response.
fn split_response(raw: &[u8]) -> (String, String, Vec<u8>) {
    let text = String::from_utf8_lossy(raw);
    let end = text.find("\r\n\r\n").unwrap_or(text.len());
    let head = text[..end].to_string();
    let status = head.lines().next().unwrap_or_default().to_string();
    let body = raw.get(end + 4..).unwrap_or_default().to_vec();
    (status, head, body)
}

fn soap_request(ca: &TestCa, xml: &str) -> String {
    let path = ca
        .endpoint
        .splitn(4, '/')
        .nth(3)
        .map(|p| format!("/{p}"))
        .unwrap();
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/soap+xml; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}",
        xml.len()
    )
}

/// Plain HTTP serves GET and HEAD of the two downloads and nothing else: the
/// WSTEP endpoint, which checks passwords, answers 404 there, and a wrong
/// password cannot be tried over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_serves_downloads_only() {
    let lab = common::start(None);
    let mut ca = lab.start_ca(start_time()).await;
    let http = ca
        .listening
        .as_ref()
        .unwrap()
        .http
        .expect("an HTTP listener");
    let crt = "/CertEnroll/corp-CA.crt";
    let crl = "/CertEnroll/corp-CA.crl";
    let get = |method: &str, path: &str| {
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    };

    let (status, _, body) = split_response(&plain_exchange(http, get("GET", crt).as_bytes()).await);
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(body, ca.ca_certificate);
    let (status, _, body) = split_response(&plain_exchange(http, get("GET", crl).as_bytes()).await);
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(body, ca.authority.current_crl().unwrap());
    let (status, head, body) =
        split_response(&plain_exchange(http, get("HEAD", crl).as_bytes()).await);
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert!(body.is_empty(), "HEAD with a body");
    assert!(
        head.to_ascii_lowercase().contains("content-length"),
        "{head}"
    );

    // A complete WSTEP request with a password, over plain HTTP.
    let t = template(&lab, "WorkstationAuth").await;
    let csr = enrollment_request(&t, &rsa(), None).unwrap();
    let mut request =
        autoenroll::wstep::WstepRequest::new(autoenroll::wstep::RequestKind::Issue { token: csr });
    request.credentials = Some(UsernameToken {
        username: "CN=ws01,CN=Computers,DC=corp,DC=example".into(),
        password: "guess".into(),
    });
    request.context = vec![("CertificateTemplate".into(), "WorkstationAuth".into())];
    let wstep = soap_request(&ca, &request.to_xml());
    let rows = row_count(&ca);
    let (status, _, body) = split_response(&plain_exchange(http, wstep.as_bytes()).await);
    assert!(status.starts_with("HTTP/1.1 404"), "{status}");
    assert!(
        !String::from_utf8_lossy(&body).contains("Envelope"),
        "a SOAP answer over plain HTTP"
    );
    assert_eq!(row_count(&ca), rows);

    let refused = [
        (
            get("GET", &autoenroll::ca::config::endpoint_path("corp-CA")),
            "404",
        ),
        (get("GET", "/"), "404"),
        (get("GET", "/CertEnroll/ca-key.pem"), "404"),
        (get("POST", crl), "405"),
        (get("PUT", crt), "405"),
        (get("DELETE", crt), "405"),
        (get("OPTIONS", crl), "405"),
    ];
    for (request, code) in refused {
        let (status, head, _) = split_response(&plain_exchange(http, request.as_bytes()).await);
        assert!(
            status.starts_with(&format!("HTTP/1.1 {code}")),
            "{request}: {status}"
        );
        if code == "405" {
            assert!(head.contains("GET, HEAD"), "{head}");
        }
    }

    // The same WSTEP request over HTTPS is answered (with the login refusal).
    let (status, _, body) = split_response(&tls_exchange(&ca, wstep.as_bytes()).await);
    assert!(status.starts_with("HTTP/1.1 500"), "{status}");
    let Reply::Fault(f) = parse_reply(&body).unwrap() else {
        panic!("a fault");
    };
    assert_eq!(f.hresult, E_ACCESSDENIED);
    ca.stop().await;
}

/// A body declared over the limit gets 413 and a fault at once: no `100
/// Continue`, nothing read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_body_is_refused_before_it_is_sent() {
    let lab = common::start(None);
    let mut ca = lab.start_ca(start_time()).await;
    let request = soap_request(&ca, "").replace(
        "Content-Length: 0",
        "Content-Length: 10485760\r\nExpect: 100-continue",
    );
    let raw = tls_exchange(&ca, request.as_bytes()).await;
    let (status, _, body) = split_response(&raw);
    assert!(
        !String::from_utf8_lossy(&raw).contains("100 Continue"),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");
    let Reply::Fault(f) = parse_reply(&body).unwrap() else {
        panic!("a fault");
    };
    assert_eq!(f.hresult, E_INVALIDARG, "{}", f.message);
    ca.stop().await;
}

/// A second server on the lab CA's state, with its own limits and ports.
async fn serve_with(
    ca: &TestCa,
    limits: autoenroll::ca::server::Limits,
) -> autoenroll::ca::server::Listening {
    let mut config = ca.config.clone();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.http_listen = Some("127.0.0.1:0".parse().unwrap());
    let authority = Arc::new(autoenroll::ca::Authority::open(config, ca.clock.clone()).unwrap());
    autoenroll::ca::server::start_with(authority, limits)
        .await
        .unwrap()
}

async fn connect_from(source: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

/// One address cannot hold every connection: past its share its
/// connections are closed unanswered while another address is served; a
/// connection that sends nothing is closed after the first-byte timeout even
/// when the handshake and header timeouts are long.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_limited_per_peer_and_idle_ones_closed() {
    use autoenroll::ca::server::Limits;
    let lab = common::start(None);
    let mut ca = lab.start_ca(start_time()).await;
    let long = Duration::from_secs(600);
    let limits = Limits {
        max_per_peer: 4,
        first_byte_timeout: long,
        handshake_timeout: long,
        header_timeout: long,
        ..Limits::default()
    };
    let server = serve_with(&ca, limits).await;
    let http = server.http.unwrap();
    let get = b"GET /CertEnroll/corp-CA.crt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

    let mut idle = Vec::new();
    for _ in 0..limits.max_per_peer {
        idle.push(connect_from("127.0.0.1", http).await);
    }
    // The next one from the same address: closed without an answer.
    let mut over = connect_from("127.0.0.1", http).await;
    let _ = over.write_all(get).await;
    let answer = read_until_closed(&mut over).await;
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    // Another address is served meanwhile.
    let mut other = connect_from("127.0.0.2", http).await;
    other.write_all(get).await.unwrap();
    let (status, _, _) = split_response(&read_until_closed(&mut other).await);
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    // One idle connection closes: the address may connect again (the
    // server sees the close when it next reads, so try a few times).
    drop(idle.pop());
    let mut served = false;
    for _ in 0..200 {
        let mut again = connect_from("127.0.0.1", http).await;
        let _ = again.write_all(get).await;
        if !read_until_closed(&mut again).await.is_empty() {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        served,
        "127.0.0.1 stayed locked out after a connection closed"
    );
    drop(idle);
    server.stop().await;

    // An idle connection is closed by the first-byte timeout alone.
    let server = serve_with(
        &ca,
        Limits {
            first_byte_timeout: Duration::from_millis(200),
            handshake_timeout: long,
            header_timeout: long,
            ..Limits::default()
        },
    )
    .await;
    for addr in [server.https, server.http.unwrap()] {
        let mut quiet = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(120), quiet.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "{addr}: the idle connection stayed open: {read:?}"
        );
    }
    server.stop().await;
    ca.stop().await;
}

/// The directory goes away under the CA: a request gets E_FAIL (the CA's
/// failure, InvalidRequest false, so the client keeps it and retries), not
/// an authentication denial, and the fault names nothing of the directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_outage_is_an_internal_failure_that_reveals_nothing() {
    let lab = common::start(None);
    let mut ca = lab.start_ca(start_time()).await;
    let t = template(&lab, "WorkstationAuth").await;
    let ws01 = ca.client("ws01");
    // One request first, so that the CA holds pooled connections.
    issued(
        &submit(
            &ws01,
            &ca,
            &enrollment_request(&t, &rsa(), None).unwrap(),
            "WorkstationAuth",
        )
        .await,
    );

    let pid: i32 = std::fs::read_to_string(lab.lab.dir.join("slapd.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // Wait until nothing listens at the directory's address any more.
    let ldap: SocketAddr = lab.lab.url.trim_start_matches("ldap://").parse().unwrap();
    for _ in 0..200 {
        if TcpStream::connect(ldap).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    let csr = enrollment_request(&t, &rsa(), None).unwrap();
    for account in ["ws01", "web01"] {
        let started = std::time::Instant::now();
        let mut request =
            autoenroll::wstep::WstepRequest::new(autoenroll::wstep::RequestKind::Issue {
                token: csr.clone(),
            });
        let sample = autoenroll::lab::SAMPLE_ACCOUNTS
            .iter()
            .find(|a| a.name == account)
            .unwrap();
        request.credentials = Some(UsernameToken {
            username: sample.dn.into(),
            password: sample.password(),
        });
        request.context = vec![("CertificateTemplate".into(), "WorkstationAuth".into())];
        let answer = ca
            .anonymous_client()
            .https()
            .post_soap(&ca.endpoint, request.to_xml())
            .await
            .unwrap();
        println!("{account}: answered in {:?}", started.elapsed());
        let Reply::Fault(f) = parse_reply(&answer).unwrap() else {
            panic!("a fault");
        };
        assert_eq!(f.hresult, E_FAIL, "{}", f.message);
        assert!(!f.invalid_request, "{}", f.message);
        let text = String::from_utf8_lossy(&answer);
        for secret in [
            lab.lab.url.as_str(),
            &ldap.to_string(),
            "ldap://",
            "ca-svc",
            "result code",
            "DC=corp",
        ] {
            assert!(!text.contains(secret), "{secret:?} in {text}");
        }
    }
    ca.stop().await;
}
