//! The enrollment client against CAs and directories that misbehave: a CA
//! that lies in what it issues, one that redirects, one that hangs, an
//! `http://` enrollment URL, a forged CRL, a CA that no longer knows the
//! certificate it is asked to renew. Every server here is real and on
//! loopback: the lab's slapd and CA, and small TLS or TCP servers made in the
//! test with the lab CA's own TLS certificate.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use autoenroll::pulse::{Event, PulseOptions, Report, pulse};
use common::{TestCa, TestLab, current, start_time, store};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use time::OffsetDateTime;

const MINUTE: Duration = Duration::from_secs(60);
const CORP_CA: &str = "CN=corp-CA,CN=Enrollment Services,CN=Public Key Services,CN=Services,CN=Configuration,DC=corp,DC=example";

async fn pulse_at(lab: &TestLab, ca: &TestCa, at: OffsetDateTime) -> Report {
    ca.clock.set(at);
    pulse(&lab.policy("ws01"), PulseOptions::at(at))
        .await
        .expect("pulse runs")
}

/// Outcomes of an event: (template, message).
fn events(report: &Report, event: Event) -> Vec<(String, String)> {
    report
        .outcomes
        .iter()
        .filter(|o| o.event == event)
        .map(|o| (o.template.clone().unwrap_or_default(), o.message.clone()))
        .collect()
}

fn templates_of(report: &Report, event: Event) -> Vec<String> {
    let mut t: Vec<String> = events(report, event).into_iter().map(|e| e.0).collect();
    t.sort();
    t
}

/// Replaces corp-CA's `msPKI-Enrollment-Servers` with `urls`, in priority order.
fn publish_endpoints(lab: &TestLab, urls: &[&str]) {
    use base64::Engine;
    let mut ldif =
        format!("dn: {CORP_CA}\nchangetype: modify\nreplace: msPKI-Enrollment-Servers\n");
    for (i, url) in urls.iter().enumerate() {
        let value = format!("{}\n4\n0\n{url}", i + 1);
        let b64 = base64::engine::general_purpose::STANDARD.encode(value);
        ldif.push_str(&format!("msPKI-Enrollment-Servers:: {b64}\n"));
    }
    lab.admin("ldapmodify", &ldif);
}

/// A plain TCP listener that accepts every connection, counts it and the
/// bytes it receives, and never answers.
struct Silent {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    bytes: Arc<AtomicUsize>,
}

fn silent_listener() -> Silent {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let bytes = Arc::new(AtomicUsize::new(0));
    let (c, b) = (connections.clone(), bytes.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            c.fetch_add(1, Ordering::SeqCst);
            let b = b.clone();
            std::thread::spawn(move || {
                use std::io::Read;
                let mut stream = stream;
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    b.fetch_add(n, Ordering::SeqCst);
                }
            });
        }
    });
    Silent {
        addr,
        connections,
        bytes,
    }
}

/// What a test TLS server answers to a POST body.
type Handler = Arc<dyn Fn(Vec<u8>) -> hyper::Response<Full<Bytes>> + Send + Sync>;

/// An HTTPS server on loopback with the lab CA's TLS certificate (so the
/// client trusts it as it trusts the CA), answering with `handler`.
async fn tls_server(ca: &TestCa, handler: Handler) -> SocketAddr {
    let read = |p: std::path::PathBuf| std::fs::read(&p).unwrap();
    let chain: Vec<_> =
        rustls_pemfile::certs(&mut read(ca.config.tls_certificate_path()).as_slice())
            .collect::<Result<_, _>>()
            .unwrap();
    let key = rustls_pemfile::private_key(&mut read(ca.config.tls_key_path()).as_slice())
        .unwrap()
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let handler = handler.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let handler = handler.clone();
                        async move {
                            let body = req.into_body().collect().await.map(|b| b.to_bytes());
                            let body = body.map(|b| b.to_vec()).unwrap_or_default();
                            Ok::<_, Infallible>(handler(body))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

fn soap(xml: String) -> hyper::Response<Full<Bytes>> {
    hyper::Response::builder()
        .header("content-type", "application/soap+xml; charset=utf-8")
        .body(Full::new(Bytes::from(xml)))
        .unwrap()
}

/// A CA that lies: it answers every request with a certificate the client
/// must refuse, made with the project's own certificate builder. For
/// WorkstationAuth the certificate is for another key; for ShortLived it
/// names another template; for PendingMachine it carries the right key and
/// template but is signed by another key under corp-CA's very name.
fn lying_ca(ca: &TestCa) -> Handler {
    use autoenroll::ca::authority::Signer;
    use autoenroll::ca::issue::{IssuerUrls, build_certificate};
    use autoenroll::ca::profile::{CertificateProfile, SubjectAltName};
    use autoenroll::pki::cms::{RequestToken, parse_request_token};
    use autoenroll::wstep::{RequestKind, WstepFault, WstepRequest, WstepResponse};

    let config = ca.config.clone();
    let ca_der = ca.ca_certificate.clone();
    let serial = Arc::new(AtomicUsize::new(1000));
    Arc::new(move |body: Vec<u8>| {
        let request = WstepRequest::from_xml(&body).expect("a WSTEP request");
        let template = request
            .context
            .iter()
            .find(|(n, _)| n == "CertificateTemplate")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let RequestKind::Issue { token } = &request.kind else {
            let fault =
                WstepFault::denied(Some(request.message_id.clone()), 0x8000_4005, "no", None);
            return soap(fault.to_xml());
        };
        let csr = match parse_request_token(token).expect("a request token") {
            RequestToken::Pkcs10(csr) => csr,
            RequestToken::Renewal { csr, .. } => csr,
        };
        let now = OffsetDateTime::now_utc();
        let identity = csr.template.clone().unwrap_or_default();
        let mut profile = CertificateProfile {
            template_cn: template.clone(),
            subject: Vec::new(),
            subject_alt_names: vec![SubjectAltName::Dns("ws01.corp.example".into())],
            not_before: now - time::Duration::hours(1),
            not_after: now + time::Duration::days(30),
            key_usage: Some(vec![0xa0]),
            extended_key_usage: vec!["1.3.6.1.5.5.7.3.2".into()],
            application_policies: Vec::new(),
            issuance_policies: Vec::new(),
            critical_extensions: Vec::new(),
            template_information: identity.oid.clone().map(|oid| {
                (
                    oid,
                    identity.major.unwrap_or(100),
                    identity.minor.unwrap_or(0),
                )
            }),
            template_name: identity.name.clone(),
            requester_sid: None,
            basic_constraints_end_entity: false,
            include_revocation_info: false,
            ocsp_nocheck: false,
        };
        let mut spki = csr.public_key.clone();
        let n = serial.fetch_add(1, Ordering::SeqCst) as u64;
        let mut serial_bytes = vec![0x11; 8];
        serial_bytes.extend(n.to_be_bytes());
        let signer = Signer::load(&config).expect("the CA key");
        let forger = rcgen::KeyPair::generate().unwrap();
        let certificate = match template.as_str() {
            "WorkstationAuth" => {
                spki = autoenroll::pki::keys::PrivateKey::generate(
                    autoenroll::pki::keys::KeyAlgorithm::EcdsaP256,
                )
                .unwrap()
                .public_key_der();
                build_certificate(
                    &profile,
                    &spki,
                    &serial_bytes,
                    &signer.certificate_issuer().unwrap(),
                    &IssuerUrls::default(),
                )
            }
            "ShortLived" => {
                profile.template_information = None;
                profile.template_name = Some("WorkstationAuth".into());
                build_certificate(
                    &profile,
                    &spki,
                    &serial_bytes,
                    &signer.certificate_issuer().unwrap(),
                    &IssuerUrls::default(),
                )
            }
            _ => {
                // Named exactly as the real CA (its stand-in for rcgen).
                let issuer = autoenroll::ca::issue::ca_issuer(
                    &ca_der,
                    autoenroll::ca::issue::SignLater(&forger),
                )
                .unwrap();
                build_certificate(
                    &profile,
                    &spki,
                    &serial_bytes,
                    &issuer,
                    &IssuerUrls::default(),
                )
            }
        }
        .expect("the lying certificate is built");
        let response =
            WstepResponse::issued(Some(request.message_id.clone()), n, certificate, None);
        soap(response.to_xml())
    })
}

/// Item 26: nothing a lying CA issues is installed. Each lie is a
/// `rejected` event (1202) naming what is wrong; the request is abandoned
/// (asking again would get the same answer: a CA answers a repeated request
/// with its first answer) and the template backs off like any failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_ca_gets_nothing_installed() {
    let lab = common::start(None);
    let t0 = start_time();
    let ca = lab.start_ca(t0).await;
    let liar = tls_server(&ca, lying_ca(&ca)).await;
    publish_endpoints(
        &lab,
        &[&format!(
            "https://{liar}/corp-CA_CES_UsernamePassword/service.svc/CES"
        )],
    );

    let r = pulse_at(&lab, &ca, t0).await;
    assert!(!r.ok, "{r:#?}");
    let rejected = events(&r, Event::Rejected);
    assert_eq!(
        templates_of(&r, Event::Rejected),
        ["PendingMachine", "ShortLived", "WorkstationAuth"],
        "{r:#?}"
    );
    assert!(
        r.outcomes
            .iter()
            .all(|o| o.event != Event::Rejected || o.event_id == 1202)
    );
    let why = |t: &str| rejected.iter().find(|(n, _)| n == t).unwrap().1.clone();
    assert!(
        why("WorkstationAuth").contains("another key"),
        "{}",
        why("WorkstationAuth")
    );
    assert!(
        why("ShortLived").contains("does not name template ShortLived"),
        "{}",
        why("ShortLived")
    );
    assert!(
        why("PendingMachine").contains("not signed by the CA certificates"),
        "{}",
        why("PendingMachine")
    );
    assert!(templates_of(&r, Event::Installed).is_empty(), "{r:#?}");

    let snapshot = store(&lab).snapshot().unwrap();
    assert!(
        snapshot.certificates.is_empty(),
        "{:?}",
        snapshot.certificates
    );
    assert!(
        snapshot.pending.is_empty(),
        "the requests are abandoned: {:?}",
        snapshot.pending
    );
    let state = store(&lab).read_state().unwrap();
    for t in ["WorkstationAuth", "ShortLived", "PendingMachine"] {
        assert_eq!(state.failures_of(t).map(|f| f.count), Some(1), "{t}");
    }
}

/// Item 2: a redirect is never followed (the password would go where the
/// redirect says), and an `http://` enrollment URL is never sent to: it is
/// refused with a reason and the next endpoint is used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_never_goes_over_plain_http() {
    let lab = common::start(None);
    let t0 = start_time();
    let ca = lab.start_ca(t0).await;
    let plain = silent_listener();
    let target = format!("http://{}/CES", plain.addr);
    let location = target.clone();
    let redirector = tls_server(
        &ca,
        Arc::new(move |_| {
            hyper::Response::builder()
                .status(307)
                .header("location", location.as_str())
                .body(Full::new(Bytes::new()))
                .unwrap()
        }),
    )
    .await;
    publish_endpoints(&lab, &[&format!("https://{redirector}/CES")]);

    let r = pulse_at(&lab, &ca, t0).await;
    assert!(!r.ok, "{r:#?}");
    let failed = events(&r, Event::Failed);
    assert_eq!(failed.len(), 3, "{r:#?}");
    for (_, message) in &failed {
        assert!(message.contains("redirects are not followed"), "{message}");
    }
    // The requests stay for the next pulse.
    assert_eq!(store(&lab).snapshot().unwrap().pending.len(), 3);

    // The directory now publishes the plain URL first and the CA second.
    publish_endpoints(&lab, &[&target, &ca.endpoint]);
    let r = pulse_at(&lab, &ca, t0 + 120 * MINUTE).await;
    let refused = events(&r, Event::EndpointRefused);
    assert_eq!(refused.len(), 1, "reported once per pulse: {r:#?}");
    assert!(refused[0].1.contains(&target), "{}", refused[0].1);
    assert!(
        refused[0].1.contains("not an https:// URL"),
        "{}",
        refused[0].1
    );
    assert_eq!(
        templates_of(&r, Event::Installed),
        ["ShortLived", "WorkstationAuth"],
        "{r:#?}"
    );

    assert_eq!(plain.connections.load(Ordering::SeqCst), 0);
    assert_eq!(plain.bytes.load(Ordering::SeqCst), 0);
}

/// Item 11: a CA that accepts connections and never answers is waited for
/// once per pulse: the templates after the first fail at once, without a
/// second connection, and their requests stay for the next pulse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_ca_is_waited_for_once_per_pulse() {
    let lab = common::start(None);
    let t0 = start_time();
    let ca = lab.start_ca(t0).await;
    let hung = silent_listener();
    publish_endpoints(&lab, &[&format!("https://{}/CES", hung.addr)]);
    ca.clock.set(t0);
    let options = PulseOptions {
        ca_timeout: Duration::from_secs(3),
        ..PulseOptions::at(t0)
    };
    let r = pulse(&lab.policy("ws01"), options).await.unwrap();
    let failed = events(&r, Event::Failed);
    assert_eq!(failed.len(), 3, "{r:#?}");
    assert_eq!(hung.connections.load(Ordering::SeqCst), 1, "{r:#?}");
    let timed_out = failed
        .iter()
        .filter(|(_, m)| m.contains("no answer within"))
        .count();
    let skipped = failed
        .iter()
        .filter(|(_, m)| m.contains("not asked again"))
        .count();
    assert_eq!((timed_out, skipped), (1, 2), "{failed:#?}");
    assert_eq!(store(&lab).snapshot().unwrap().pending.len(), 3);
}

/// Item 3: a CRL under corp-CA's name signed by another key, planted in the
/// directory's CDP object, is reported and revokes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_crl_revokes_nothing() {
    use autoenroll::ca::crl::{CrlInput, build_crl};
    use autoenroll::ca::db::RevokedEntry;
    use base64::Engine;

    let lab = common::start(None);
    let t0 = start_time();
    let ca = lab.start_ca(t0).await;
    let r = pulse_at(&lab, &ca, t0).await;
    assert!(r.ok, "{r:#?}");
    let wa = current(&lab, "WorkstationAuth");
    let serial = common::serial_of(&lab, &wa[0]);

    let forger = rcgen::KeyPair::generate().unwrap();
    // Named exactly as the real CA (its stand-in for rcgen).
    let issuer = autoenroll::ca::issue::ca_issuer(&ca.ca_certificate, &forger).unwrap();
    let revoked = [RevokedEntry {
        serial: serial.clone(),
        revoked_at: t0,
        reason: 1,
    }];
    let forged = build_crl(
        &CrlInput {
            number: 1000,
            this_update: t0,
            next_update: t0 + time::Duration::days(7),
            revoked: &revoked,
        },
        &issuer,
    )
    .unwrap();
    let cdp = lab.snapshot("ws01").await.crls[0].dn.clone();
    lab.admin(
        "ldapmodify",
        &format!(
            "dn: {cdp}\nchangetype: modify\nreplace: certificateRevocationList\ncertificateRevocationList:: {}\n",
            base64::engine::general_purpose::STANDARD.encode(&forged)
        ),
    );

    let r = pulse_at(&lab, &ca, t0 + MINUTE).await;
    assert!(r.ok, "{r:#?}");
    assert_eq!(current(&lab, "WorkstationAuth"), wa, "{r:#?}");
    assert!(events(&r, Event::Archived).is_empty(), "{r:#?}");
    let ignored = events(&r, Event::CrlIgnored);
    assert_eq!(ignored.len(), 1, "{r:#?}");
    assert!(ignored[0].1.contains(&cdp), "{}", ignored[0].1);
    assert!(
        ignored[0].1.contains("not signed by the key"),
        "{}",
        ignored[0].1
    );
}

/// Item 18: the CA no longer knows the certificate it is asked to renew (it
/// was rebuilt without its database): the renewal is refused with
/// CERTSRV_E_BAD_RENEWAL_CERT_ATTRIBUTE and the same pulse enrolls anew with
/// the account's credentials, saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_renewal_falls_back_to_a_new_enrollment() {
    let lab = common::start(None);
    let t0 = start_time();
    let mut ca = lab.start_ca(t0).await;
    let r = pulse_at(&lab, &ca, t0).await;
    assert!(r.ok, "{r:#?}");
    let old = current(&lab, "ShortLived");
    assert_eq!(old.len(), 1);

    // The CA restarts with an empty database.
    ca.stop().await;
    for suffix in ["", "-wal", "-shm"] {
        let mut path = ca.config.database.clone().into_os_string();
        path.push(suffix);
        let _ = std::fs::remove_file(path);
    }
    ca.authority = Arc::new(
        autoenroll::ca::Authority::open(ca.config.clone(), ca.clock.clone()).expect("CA opens"),
    );
    ca.listening = Some(
        autoenroll::ca::server::start(ca.authority.clone())
            .await
            .expect("CA serves"),
    );

    let r = pulse_at(&lab, &ca, t0 + 49 * MINUTE).await;
    let anew = events(&r, Event::EnrollingAnew);
    assert_eq!(anew.len(), 1, "{r:#?}");
    assert_eq!(anew[0].0, "ShortLived");
    assert!(anew[0].1.contains("0x8009400E"), "{}", anew[0].1);
    assert_eq!(templates_of(&r, Event::Replaced), ["ShortLived"], "{r:#?}");
    assert!(events(&r, Event::Denied).is_empty(), "{r:#?}");
    let now = current(&lab, "ShortLived");
    assert_eq!(now.len(), 1);
    assert_ne!(now, old);
    let state = store(&lab).read_state().unwrap();
    assert!(state.failures_of("ShortLived").is_none(), "{state:?}");
}

/// Item 9: a CA that fails internally (E_FAIL with `InvalidRequest` false,
/// as the CA answers while its directory is down) has not judged the
/// request: nothing is denied or abandoned, the requests stay in `request/`,
/// and the next pulse sends them to a CA that works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_internal_failure_of_the_ca_keeps_the_request() {
    let lab = common::start(None);
    let t0 = start_time();
    let ca = lab.start_ca(t0).await;
    let failing = tls_server(
        &ca,
        Arc::new(|_| {
            let mut fault = autoenroll::wstep::WstepFault::denied(
                None,
                autoenroll::wstep::E_FAIL,
                "the CA could not complete the request",
                None,
            );
            fault.invalid_request = false;
            soap(fault.to_xml())
        }),
    )
    .await;
    publish_endpoints(&lab, &[&format!("https://{failing}/CES")]);

    let r = pulse_at(&lab, &ca, t0).await;
    assert!(!r.ok, "{r:#?}");
    assert!(events(&r, Event::Denied).is_empty(), "{r:#?}");
    let failed = events(&r, Event::Failed);
    assert_eq!(failed.len(), 3, "{r:#?}");
    for (_, message) in &failed {
        assert!(message.contains("0x80004005"), "{message}");
        assert!(message.contains("the request is kept"), "{message}");
    }
    let kept: Vec<String> = store(&lab)
        .snapshot()
        .unwrap()
        .pending
        .iter()
        .map(|p| p.id.clone())
        .collect();
    assert_eq!(kept.len(), 3, "{r:#?}");

    publish_endpoints(&lab, &[&ca.endpoint]);
    let r = pulse_at(&lab, &ca, t0 + 120 * MINUTE).await;
    assert_eq!(
        templates_of(&r, Event::Installed),
        ["ShortLived", "WorkstationAuth"],
        "{r:#?}"
    );
    assert!(store(&lab).snapshot().unwrap().pending.len() <= 1);
}
