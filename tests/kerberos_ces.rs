//! The enrollment web service over Kerberos (HTTP Negotiate), end to end
//! against the lab's real KDC, slapd and CA: ws01 enrolls and renews from
//! its keytab with no password anywhere, alice from her ticket cache, a
//! password policy keeps the UsernamePassword endpoint, `[enrollment]
//! authentication = ["password"]` keeps a Kerberos host off the Kerberos
//! endpoint, and garbage or replayed Negotiate tokens are denied
//! E_ACCESSDENIED and recorded.
//!
//! MIT krb5 reads `KRB5_CONFIG` per process, so this binary runs one lab
//! (one realm) and one test.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use autoenroll::ca::db::{Authentication, Disposition, ListFilter, RequestRecord, UNAUTHENTICATED};
use autoenroll::ca::{Authority, CaConfig};
use autoenroll::clock::ManualClock;
use autoenroll::enroll::route::Auth;
use autoenroll::krb::{CredentialSource, Credentials};
use autoenroll::lab::{Lab, LabOptions};
use autoenroll::policy::{Bind, Policy};
use autoenroll::pulse::{Event, PulseOptions, Report, pulse};
use autoenroll::wstep::{self, RequestKind, WstepRequest};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MINUTE: Duration = Duration::from_secs(60);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn events(report: &Report, event: Event) -> Vec<String> {
    let mut t: Vec<String> = report
        .outcomes
        .iter()
        .filter(|o| o.event == event)
        .map(|o| o.template.clone().unwrap_or_default())
        .collect();
    t.sort();
    t
}

fn requests(ca: &Authority) -> Vec<RequestRecord> {
    ca.db().list(ListFilter::All).expect("requests listed")
}

fn by(records: &[RequestRecord], requester: &str) -> Vec<RequestRecord> {
    records
        .iter()
        .filter(|r| r.requester.eq_ignore_ascii_case(requester))
        .cloned()
        .collect()
}

async fn pulse_at(policy: &Policy, clock: &ManualClock, at: OffsetDateTime) -> Report {
    clock.set(at);
    pulse(policy, PulseOptions::at(at))
        .await
        .expect("pulse runs")
}

/// What a raw HTTPS exchange with the CA came to.
struct RawAnswer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl RawAnswer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 POST over TLS, written by hand so that the test chooses the
/// Authorization header exactly (the same token twice, or garbage).
async fn raw_post(
    port: u16,
    ca_certificate: &[u8],
    path: &str,
    authorization: Option<&str>,
    body: &str,
) -> RawAnswer {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(
            ca_certificate.to_vec(),
        ))
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.expect("TLS");
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost:{port}\r\nContent-Type: application/soap+xml; \
         charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(a) = authorization {
        head.push_str(&format!("Authorization: {a}\r\n"));
    }
    head.push_str("\r\n");
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(body.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    RawAnswer {
        status,
        headers,
        body: body.to_string(),
    }
}

fn hresult_of(body: &str) -> u32 {
    match wstep::parse_reply(body.as_bytes()).expect("a WSTEP answer") {
        wstep::Reply::Fault(f) => f.hresult,
        wstep::Reply::Response(_) => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kerberos_ces_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = Lab::start(
        &tmp.path().join("lab"),
        LabOptions {
            kerberos: true,
            ..LabOptions::default()
        },
    )
    .expect("lab with its KDC starts");
    let kdc = lab.kdc.as_ref().expect("the lab has a KDC");
    autoenroll::krb::use_config(&kdc.krb5_conf).unwrap();
    lab.write_policies().unwrap();

    // The CA in this process, with a clock the test moves; its Kerberos
    // endpoint is published beside the UsernamePassword one.
    let t0 =
        OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp()).unwrap();
    let port = free_port();
    let ca_toml = lab.write_ca_config(port, free_port()).unwrap();
    let config = CaConfig::load(&ca_toml).unwrap();
    assert!(
        config.kerberos.is_some(),
        "the lab's CA has a Kerberos endpoint"
    );
    autoenroll::ca::init::init(&config, t0)
        .await
        .expect("ca init");
    let clock = Arc::new(ManualClock::new(t0));
    let ca = Arc::new(Authority::open(config.clone(), clock.clone()).unwrap());
    let listening = autoenroll::ca::server::start(ca.clone())
        .await
        .expect("CA serves");
    let ca_certificate = ca.signer().certificate_der().to_vec();
    let kerberos_path = format!("/{}_CES_Kerberos/service.svc/CES", config.name);

    // ws01: keytab only. Its policy names no password file.
    let ws01 = Policy::load(&lab.policy_path("ws01")).unwrap();
    assert!(matches!(
        &ws01.directory.bind,
        Bind::Kerberos(CredentialSource::Keytab { .. })
    ));
    let text = std::fs::read_to_string(lab.policy_path("ws01")).unwrap();
    assert!(!text.contains("password"), "{text}");

    let first = pulse_at(&ws01, &clock, t0).await;
    assert!(first.ok, "{first:#?}");
    assert_eq!(
        events(&first, Event::Installed),
        ["ShortLived", "WorkstationAuth"],
        "{first:#?}"
    );
    assert_eq!(
        events(&first, Event::Pending),
        ["PendingMachine"],
        "{first:#?}"
    );
    let records = by(&requests(&ca), "WS01$");
    assert_eq!(records.len(), 3, "{records:#?}");
    assert!(
        records
            .iter()
            .all(|r| r.authentication == Some(Authentication::Kerberos)),
        "{records:#?}"
    );

    // Renewal at the 80% point of ShortLived, over Negotiate, signed by the
    // old key: a request that renews the old serial.
    let r = pulse_at(&ws01, &clock, t0 + 49 * MINUTE).await;
    assert_eq!(events(&r, Event::Replaced), ["ShortLived"], "{r:#?}");
    let renewal = by(&requests(&ca), "WS01$")
        .into_iter()
        .rfind(|r| r.template.as_deref() == Some("ShortLived"))
        .unwrap();
    assert!(renewal.renewal_of.is_some(), "{renewal:#?}");
    assert_eq!(renewal.authentication, Some(Authentication::Kerberos));
    assert_eq!(renewal.disposition, Disposition::Issued);

    // alice from her ticket cache.
    let alice = Policy::load(&lab.policy_path("alice")).unwrap();
    assert!(matches!(
        &alice.directory.bind,
        Bind::Kerberos(CredentialSource::Cache { ccache: Some(_) })
    ));
    let r = pulse_at(&alice, &clock, t0 + 50 * MINUTE).await;
    assert!(r.ok, "{r:#?}");
    assert!(!events(&r, Event::Installed).is_empty(), "{r:#?}");
    let records = by(&requests(&ca), "alice");
    assert!(!records.is_empty());
    assert!(
        records
            .iter()
            .all(|r| r.authentication == Some(Authentication::Kerberos)),
        "{records:#?}"
    );

    // A password policy still uses the UsernamePassword endpoint.
    let web01 = Policy::load(&lab.dir.join("web01-password.toml")).unwrap();
    let r = pulse_at(&web01, &clock, t0 + 51 * MINUTE).await;
    assert!(r.ok, "{r:#?}");
    let records = by(&requests(&ca), "WEB01$");
    assert!(!records.is_empty());
    assert!(
        records
            .iter()
            .all(|r| r.authentication == Some(Authentication::Password)),
        "{records:#?}"
    );

    // ws01 allowed only the password endpoint: its pending request cannot be
    // asked about (a query needs credentials it has not there), nothing goes
    // to the Kerberos endpoint, and its next renewal goes, unauthenticated
    // but signed by the old key, to the UsernamePassword endpoint.
    let only_password = lab.dir.join("ws01-only-password.toml");
    std::fs::write(
        &only_password,
        format!("{text}\n[enrollment]\nauthentication = [\"password\"]\n"),
    )
    .unwrap();
    let ws01_pw = Policy::load(&only_password).unwrap();
    let kerberos_before = requests(&ca)
        .iter()
        .filter(|r| r.authentication == Some(Authentication::Kerberos))
        .count();
    let at = t0 + 98 * MINUTE;
    let r = pulse_at(&ws01_pw, &clock, at).await;
    assert_eq!(events(&r, Event::Replaced), ["ShortLived"], "{r:#?}");
    let failed: Vec<_> = r
        .outcomes
        .iter()
        .filter(|o| o.event == Event::Failed)
        .collect();
    assert!(
        failed
            .iter()
            .any(|o| o.template.as_deref() == Some("PendingMachine")
                && o.message
                    .contains("no enrollment endpoint takes this policy's credentials")),
        "{r:#?}"
    );
    let after = requests(&ca);
    assert_eq!(
        after
            .iter()
            .filter(|r| r.authentication == Some(Authentication::Kerberos))
            .count(),
        kerberos_before,
        "nothing went to the Kerberos endpoint"
    );
    let last = after.last().unwrap();
    assert_eq!(last.template.as_deref(), Some("ShortLived"));
    assert_eq!(
        last.authentication,
        Some(Authentication::Renewal),
        "{last:#?}"
    );
    assert_eq!(last.disposition, Disposition::Issued);

    // The client checks the server's mutual-authentication token.
    let creds = Credentials::acquire(&CredentialSource::Keytab {
        keytab: autoenroll::lab::kdc::keytab_path(&lab.dir, "ws01"),
        principal: None,
        ccache: tmp.path().join("test-ccache"),
    })
    .unwrap();
    let (n, _) = creds.negotiate("HTTP", "localhost").unwrap();
    let e = n.finish(None).unwrap_err().to_string();
    assert!(e.contains("did not prove its identity"), "{e}");
    let (n, _) = creds.negotiate("HTTP", "localhost").unwrap();
    assert!(n.finish(Some(b"not a token")).is_err());

    // Raw requests to the Kerberos endpoint.
    let id = by(&requests(&ca), "WS01$")[0].id;
    let query = WstepRequest {
        message_id: wstep::new_message_id(),
        to: None,
        credentials: None,
        kind: RequestKind::QueryTokenStatus { request_id: id },
        context: Vec::new(),
    }
    .to_xml();
    let count = requests(&ca).len();

    // No Authorization: the Negotiate challenge, nothing recorded.
    let a = raw_post(port, &ca_certificate, &kerberos_path, None, &query).await;
    assert_eq!(a.status, 401);
    assert_eq!(a.header("WWW-Authenticate"), Some("Negotiate"));
    assert_eq!(requests(&ca).len(), count);

    // Garbage: denied E_ACCESSDENIED and recorded.
    let garbage = format!("Negotiate {}", STANDARD.encode(b"garbage, not SPNEGO"));
    let a = raw_post(
        port,
        &ca_certificate,
        &kerberos_path,
        Some(&garbage),
        &query,
    )
    .await;
    assert_eq!(a.status, 401, "{}", a.body);
    assert_eq!(hresult_of(&a.body), 0x8007_0005, "{}", a.body);
    let refused = requests(&ca);
    assert_eq!(refused.len(), count + 1);
    let last = refused.last().unwrap();
    assert_eq!(last.requester, UNAUTHENTICATED);
    assert_eq!(last.disposition, Disposition::Denied);
    assert_eq!(last.hresult, Some(0x8007_0005));
    assert_eq!(last.authentication, Some(Authentication::Kerberos));

    // A good token is accepted once (with the server's token in the
    // answer), and refused as a replay the second time.
    let (n, token) = tokio::task::spawn_blocking({
        let creds = creds.clone();
        move || creds.negotiate("HTTP", "localhost").unwrap()
    })
    .await
    .unwrap();
    let header = format!("Negotiate {}", STANDARD.encode(&token));
    let a = raw_post(port, &ca_certificate, &kerberos_path, Some(&header), &query).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let genuine_answer = a.body.clone();
    let server = a
        .header("WWW-Authenticate")
        .and_then(|v| v.strip_prefix("Negotiate "))
        .map(|t| STANDARD.decode(t).unwrap());
    assert!(
        server.is_some(),
        "the answer carries the mutual-authentication token"
    );
    tokio::task::spawn_blocking(move || n.finish(server.as_deref()))
        .await
        .unwrap()
        .expect("the server proves its identity");
    let before_replay = requests(&ca).len();
    let a = raw_post(port, &ca_certificate, &kerberos_path, Some(&header), &query).await;
    assert_eq!(a.status, 401, "{}", a.body);
    assert_eq!(hresult_of(&a.body), 0x8007_0005, "{}", a.body);
    assert!(a.body.contains("replay"), "{}", a.body);
    let after_replay = requests(&ca);
    assert_eq!(after_replay.len(), before_replay + 1);
    let last = after_replay.last().unwrap();
    assert_eq!(last.hresult, Some(0x8007_0005));
    assert!(last.reason.contains("replay"), "{last:#?}");
    assert_eq!(last.authentication, Some(Authentication::Kerberos));

    // The password endpoint ignores Negotiate and still wants its token.
    let password_path = format!("/{}_CES_UsernamePassword/service.svc/CES", config.name);
    let a = raw_post(port, &ca_certificate, &password_path, Some(&header), &query).await;
    assert_eq!(hresult_of(&a.body), 0x8007_0005, "{}", a.body);

    // A stale authenticator: the same CA (its files and database) served by
    // a second process whose Kerberos allows 1 s of clock skew; a token made
    // now and sent 3 s later is refused, recorded, and never accepted.
    let strict_conf = lab.dir.join("krb5-strict.conf");
    let conf = std::fs::read_to_string(&kdc.krb5_conf).unwrap();
    std::fs::write(
        &strict_conf,
        conf.replacen("[libdefaults]\n", "[libdefaults]\n\tclockskew = 1\n", 1),
    )
    .unwrap();
    let strict_port = free_port();
    let strict_toml = lab.dir.join("ca-strict.toml");
    let ca_text = std::fs::read_to_string(&ca_toml).unwrap();
    let listen = format!("listen = \"127.0.0.1:{port}\"");
    assert!(ca_text.contains(&listen), "{ca_text}");
    let ca_text = ca_text
        .replace(&listen, &format!("listen = \"127.0.0.1:{strict_port}\""))
        .replace(
            &format!("krb5_conf = \"{}\"", kdc.krb5_conf.display()),
            &format!("krb5_conf = \"{}\"", strict_conf.display()),
        )
        .replace("http_listen", "# http_listen")
        .replace("http_url", "# http_url");
    std::fs::write(&strict_toml, ca_text).unwrap();
    let mut strict = Served(
        std::process::Command::new(env!("CARGO_BIN_EXE_autoenroll"))
            .args(["ca", "serve", "--config"])
            .arg(&strict_toml)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", strict_port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the second CA process does not listen"
        );
        assert!(
            strict.0.try_wait().unwrap().is_none(),
            "the second CA process exited"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, stale) = tokio::task::spawn_blocking({
        let creds = creds.clone();
        move || creds.negotiate("HTTP", "localhost").unwrap()
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = requests(&ca).len();
    let header = format!("Negotiate {}", STANDARD.encode(&stale));
    let a = raw_post(
        strict_port,
        &ca_certificate,
        &kerberos_path,
        Some(&header),
        &query,
    )
    .await;
    assert_eq!(a.status, 401, "{}", a.body);
    assert_eq!(hresult_of(&a.body), 0x8007_0005, "{}", a.body);
    assert!(a.body.contains("clock skew"), "{}", a.body);
    let records = requests(&ca);
    assert_eq!(records.len(), before + 1);
    let last = records.last().unwrap();
    assert_eq!(last.requester, UNAUTHENTICATED);
    assert_eq!(last.hresult, Some(0x8007_0005));
    assert!(last.reason.contains("clock skew"), "{last:#?}");
    let _ = strict.0.kill();
    let _ = strict.0.wait();

    // The client trusts an answer only with the server's proof: the real
    // CA's answer is accepted; the same answer from a server without the
    // CA's key (no token, or a forged one) is refused before it is read.
    let client = autoenroll::enroll::EnrollmentClient::new(
        std::slice::from_ref(&ca_certificate),
        None,
        Duration::from_secs(20),
    )
    .unwrap()
    .with_kerberos(Some(creds.clone()));
    let url = format!("https://localhost:{port}{kerberos_path}");
    let real = client
        .query_as(&url, Auth::Kerberos, id, Duration::from_secs(20))
        .await
        .expect("the CA answers and proves its identity");
    assert!(
        matches!(real, autoenroll::enroll::Outcome::Pending { request_id, .. } if request_id == id),
        "{real:?}"
    );
    for forged in [None, Some(STANDARD.encode(b"forged"))] {
        let impostor = impostor(&config, genuine_answer.clone(), forged.clone()).await;
        let url = format!("https://localhost:{impostor}{kerberos_path}");
        let e = client
            .query_as(&url, Auth::Kerberos, id, Duration::from_secs(20))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("did not prove its identity"), "{forged:?}: {e}");
    }

    // Its pooled connection closes, so the server stops at once.
    drop(client);
    listening.stop().await;
    assert!(Path::new(&config.replay_cache_path()).exists());
}

/// A child process, killed when the test ends however it ends.
struct Served(std::process::Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A TLS server with the CA's TLS certificate (as a thief of that key
/// would have) but not its Kerberos keys: it answers one request with
/// `body`, and `WWW-Authenticate: Negotiate <token>` when a token is given.
async fn impostor(config: &CaConfig, body: String, token: Option<String>) -> u16 {
    let chain_pem = std::fs::read(config.tls_certificate_path()).unwrap();
    let chain: Vec<_> = rustls_pemfile::certs(&mut chain_pem.as_slice())
        .collect::<Result<_, _>>()
        .unwrap();
    let key_pem = std::fs::read(config.tls_key_path()).unwrap();
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .unwrap()
        .unwrap();
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let Ok(mut stream) = acceptor.accept(tcp).await else {
            return;
        };
        // The request: headers, then Content-Length bytes.
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let Ok(n) = stream.read(&mut buf).await else {
                return;
            };
            if n == 0 {
                return;
            }
            seen.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&seen).to_ascii_lowercase();
            if let Some(end) = text.find("\r\n\r\n") {
                let length: usize = text[..end]
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if seen.len() >= end + 4 + length {
                    break;
                }
            }
        }
        let negotiate = token
            .map(|t| format!("WWW-Authenticate: Negotiate {t}\r\n"))
            .unwrap_or_default();
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/soap+xml; charset=utf-8\r\n\
             {negotiate}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(answer.as_bytes()).await;
        let _ = stream.shutdown().await;
    });
    port
}
