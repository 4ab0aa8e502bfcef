//! The NDES role of the emulated CA against SCEP clients we did not write
//! (Debian's `scepclient` from the `scep` package, and certmonger's
//! `scep-submit` helper) and against our own client, with one-time
//! challenges from the admin page and dynamic challenges from the
//! validation endpoint; every certificate checked with OpenSSL. Refusals
//! (a challenge reused, expired, for another subject, forged) are checked
//! for their diagnostic code and event.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use autoenroll::ca::ndes::events::{self, EventRecord};
use autoenroll::pki::keys::{KeyAlgorithm, PrivateKey};
use autoenroll::scep::challenge_fetch::{self, Auth, Binding};
use autoenroll::scep::client::{self, ScepClient, Server};
use autoenroll::scep::exchange::Outcome;
use autoenroll::scep::request::{CsrSpec, NameAttribute, SanEntry};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{TestCa, TestLab, run};

const ADMIN_DN: &str = "CN=Administrator,CN=Users,DC=corp,DC=example";
const ADMIN_PASSWORD: &str = "Administrator-Lab-Passw0rd";

/// NDES submits as WEB01$ (a Domain Computer, which may enroll for these
/// templates); general purpose requests take WebServer (the enrollee
/// supplies the subject), signature-only ones PendingMachine (CA manager
/// approval), encryption-only ones Unpublished (which no CA issues: the CA
/// denies them). Domain Admins may fetch challenges.
const NDES: &str = "[ndes]\n\
    service_account = \"WEB01$\"\n\
    signature_template = \"PendingMachine\"\n\
    encryption_template = \"Unpublished\"\n\
    general_purpose_template = \"WebServer\"\n\
    admins = [\"S-1-5-21-1000-2000-3000-512\"]\n\
    challenge_validity = \"30m\"\n\
    password_max = 3\n";

struct Ndes {
    lab: TestLab,
    ca: TestCa,
    https: String,
    http: String,
    ca_pem: std::path::PathBuf,
}

async fn start() -> Ndes {
    let lab = common::start(None);
    let ca = lab.start_ca_with(common::start_time(), NDES).await;
    let listening = ca.listening.as_ref().unwrap();
    let https = format!("https://127.0.0.1:{}", listening.https.port());
    let http = format!("http://127.0.0.1:{}", listening.http.unwrap().port());
    let ca_pem = lab.tmp.path().join("ndes-ca.pem");
    std::fs::write(&ca_pem, pem("CERTIFICATE", &ca.ca_certificate)).unwrap();
    Ndes {
        lab,
        ca,
        https,
        http,
        ca_pem,
    }
}

impl Ndes {
    fn mscep(&self) -> String {
        format!("{}/certsrv/mscep/mscep.dll", self.http)
    }

    async fn one_time(&self) -> String {
        challenge_fetch::one_time(
            &format!("{}/certsrv/mscep_admin/", self.https),
            std::slice::from_ref(&self.ca.ca_certificate),
            Auth::Basic {
                user: ADMIN_DN,
                password: ADMIN_PASSWORD,
            },
            Duration::from_secs(20),
        )
        .await
        .expect("a one-time challenge")
    }

    fn events(&self) -> Vec<EventRecord> {
        events::list(&self.ca.authority.db()).unwrap()
    }

    /// The event and code recorded last for a refusal.
    fn last_refusal(&self) -> (u32, String) {
        let e = self
            .events()
            .into_iter()
            .rev()
            .find(|e| e.event_id == 4002 || e.event_id == 4003)
            .expect("a refusal event");
        (e.event_id, e.code)
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// `openssl verify` of `cert` (PEM file) against the CA at the CA's clock,
/// and its text.
fn openssl_check(ndes: &Ndes, cert: &Path) -> String {
    let at = ndes.ca.authority.now().unix_timestamp().to_string();
    let verified = run(Command::new("openssl")
        .args(["verify", "-attime", &at, "-CAfile"])
        .arg(&ndes.ca_pem)
        .arg(cert));
    assert!(verified.contains(": OK"), "{verified}");
    run(Command::new("openssl")
        .args(["x509", "-noout", "-text", "-nameopt", "RFC2253", "-in"])
        .arg(cert))
}

fn spec(cn: &str, key_usage: Option<u16>) -> CsrSpec {
    CsrSpec {
        subject: vec![NameAttribute {
            oid: "2.5.4.3".into(),
            value: cn.into(),
        }],
        sans: vec![SanEntry::Dns(cn.into())],
        key_usage,
        ..CsrSpec::default()
    }
}

async fn ours(ndes: &Ndes) -> (ScepClient, Server) {
    let client = ScepClient::new(&ndes.mscep(), &[], Duration::from_secs(20)).unwrap();
    let server = client::discover(&client, &ndes.ca.ca_certificate)
        .await
        .expect("GetCACaps and GetCACert");
    (client, server)
}

fn refused(outcome: Outcome) -> String {
    match outcome {
        Outcome::Refused { text, .. } => text.unwrap_or_default(),
        other => panic!("not refused: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn scepclient_enrolls_with_a_one_time_challenge() {
    let ndes = start().await;
    let dir = ndes.lab.tmp.path().join("scepclient");
    std::fs::create_dir_all(&dir).unwrap();
    let challenge = ndes.one_time().await;
    assert_eq!(challenge.len(), 16, "NDES's form: 16 hex digits");

    // Each run in its own folder: scepclient keeps `csr.pem` in its working
    // directory and sends it again when it finds one.
    let scepclient = |cwd: &Path, challenge: &str| {
        let (key, cert) = ("key.pem", "cert.pem");
        Command::new("scepclient")
            .current_dir(cwd)
            .args(["-server-url", &ndes.mscep(), "-challenge", challenge])
            .args(["-private-key", key, "-certificate", cert])
            .args([
                "-cn",
                "router1.corp.example",
                "-organization",
                "Corp",
                "-ou",
                "Network",
                "-country",
                "US",
            ])
            .output()
            .expect("scepclient runs (package scep)")
    };
    let out = scepclient(&dir, &challenge);
    assert!(
        out.status.success(),
        "scepclient: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = openssl_check(&ndes, &dir.join("cert.pem"));
    assert!(
        text.contains("Subject: CN=router1.corp.example,OU=Network,O=Corp,C=US"),
        "the subject the request supplied (WebServer lets the enrollee supply it): {text}"
    );
    assert!(
        text.contains("Digital Signature, Key Encipherment"),
        "{text}"
    );
    assert!(text.contains("TLS Web Server Authentication"), "{text}");
    let events: Vec<u32> = ndes.events().iter().map(|e| e.event_id).collect();
    assert!(
        events.contains(&4000) && events.contains(&4005),
        "{events:?}"
    );
    let record = ndes
        .ca
        .authority
        .db()
        .list(autoenroll::ca::db::ListFilter::All)
        .unwrap();
    let issued = record
        .iter()
        .find(|r| r.certificate.is_some())
        .expect("a request row");
    assert_eq!(issued.template.as_deref(), Some("WebServer"));
    assert_eq!(issued.requester, "WEB01$");

    // The same challenge again, for a new key: reused.
    let again = ndes.lab.tmp.path().join("scepclient-again");
    std::fs::create_dir_all(&again).unwrap();
    let out = scepclient(&again, &challenge);
    assert!(
        !out.status.success(),
        "a reused challenge must be refused: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!again.join("cert.pem").exists());
    assert_eq!(ndes.last_refusal(), (4002, "0x00000405".to_string()));

    // A 1024-bit key: its SHA-1 signature is not verified (RSA 2048 at
    // least), the request refused before its challenge is looked at.
    let small = ndes.lab.tmp.path().join("scepclient-small");
    std::fs::create_dir_all(&small).unwrap();
    let before = ndes.events().len();
    let out = Command::new("scepclient")
        .current_dir(&small)
        .args([
            "-server-url",
            &ndes.mscep(),
            "-challenge",
            &ndes.one_time().await,
        ])
        .args(["-private-key", "key.pem", "-certificate", "cert.pem"])
        .args(["-cn", "old-router.corp.example", "-keySize", "1024"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a 1024-bit key must be refused");
    assert!(stderr.contains("2048"), "{stderr}");
    assert_eq!(ndes.events().len(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn certmonger_scep_submit_enrolls_with_a_one_time_challenge() {
    let ndes = start().await;
    let dir = ndes.lab.tmp.path().join("certmonger");
    std::fs::create_dir_all(&dir).unwrap();
    let helper = "/usr/lib/certmonger/scep-submit";
    let caps = run(Command::new(helper).args(["-u", &ndes.mscep(), "-c"]));
    assert!(
        caps.contains("POSTPKIOperation") && caps.contains("AES"),
        "{caps}"
    );
    // -C prints the RA certificate, the CA certificate, then the others.
    let certs = run(Command::new(helper).args(["-u", &ndes.mscep(), "-C"]));
    let blocks: Vec<&str> = certs
        .split("-----END CERTIFICATE-----")
        .filter(|b| b.contains("BEGIN"))
        .collect();
    assert_eq!(blocks.len(), 3, "{certs}");
    let ra_pem = format!("{}-----END CERTIFICATE-----\n", blocks[0].trim_start());
    std::fs::write(dir.join("ra.pem"), &ra_pem).unwrap();
    let ra_text = run(Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-in"])
        .arg(dir.join("ra.pem")));
    assert!(ra_text.contains("MSCEP-RA"), "{ra_text}");

    // The pkiMessage the daemon would make (its own code is not a helper):
    // a PKCSReq with a one-time challenge, enveloped to our RA.
    let (_, server) = ours(&ndes).await;
    let key = PrivateKey::generate(KeyAlgorithm::Rsa { bits: 2048 }).unwrap();
    let challenge = ndes.one_time().await;
    let prepared = autoenroll::scep::exchange::prepare_enrollment(
        &server.caps,
        &server.ca,
        &key,
        &spec("printer7.corp.example", Some(0b101)),
        Some(&challenge),
        autoenroll::scep::exchange::SignWith::Transient,
        std::time::SystemTime::now(),
    )
    .unwrap();
    std::fs::write(dir.join("req.pem"), pem("PKCS7", &prepared.message)).unwrap();
    std::fs::write(dir.join("key.pem"), key.to_pem()).unwrap();
    std::fs::write(
        dir.join("transient.pem"),
        pem("CERTIFICATE", &prepared.pending.signer_certificate),
    )
    .unwrap();
    let envelope = run(Command::new(helper)
        .args(["-u", &ndes.mscep(), "-r"])
        .arg(dir.join("ra.pem"))
        .arg("-N")
        .arg(&ndes.ca_pem)
        .arg("-p")
        .arg(dir.join("req.pem")));
    std::fs::write(dir.join("envelope.pem"), &envelope).unwrap();
    // certmonger checked the CertRep's signature; OpenSSL opens the
    // pkcsPKIEnvelope with the transient certificate's key.
    let inner = run(Command::new("openssl")
        .args(["cms", "-decrypt", "-inform", "PEM", "-in"])
        .arg(dir.join("envelope.pem"))
        .arg("-recip")
        .arg(dir.join("transient.pem"))
        .arg("-inkey")
        .arg(dir.join("key.pem"))
        .args(["-out"])
        .arg(dir.join("inner.der")));
    let _ = inner;
    let certs = run(Command::new("openssl")
        .args(["pkcs7", "-inform", "DER", "-print_certs", "-in"])
        .arg(dir.join("inner.der")));
    let leaf = format!(
        "{}-----END CERTIFICATE-----\n",
        certs.split("-----END CERTIFICATE-----").next().unwrap()
    );
    std::fs::write(dir.join("cert.pem"), leaf).unwrap();
    let text = openssl_check(&ndes, &dir.join("cert.pem"));
    assert!(text.contains("CN=printer7.corp.example"), "{text}");
    assert!(text.contains("DNS:printer7.corp.example"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn our_client_pends_then_polls_and_bad_one_time_challenges_are_refused() {
    let ndes = start().await;
    let (client, server) = ours(&ndes).await;
    assert!(!server.caps.renewal);
    assert_eq!(server.trusted.len(), 3, "RA signing, RA encryption, CA");

    // PKIOperation by GET (RFC 8894 4.3), the message in the query, from
    // curl: a request without a challenge gets a signed FAILURE.
    let key0 = PrivateKey::generate(KeyAlgorithm::Rsa { bits: 2048 }).unwrap();
    let prepared = autoenroll::scep::exchange::prepare_enrollment(
        &server.caps,
        &server.ca,
        &key0,
        &spec("get.corp.example", None),
        None,
        autoenroll::scep::exchange::SignWith::Transient,
        std::time::SystemTime::now(),
    )
    .unwrap();
    let query: String = STANDARD
        .encode(&prepared.message)
        .chars()
        .map(|c| match c {
            '+' => "%2B".to_string(),
            '/' => "%2F".to_string(),
            '=' => "%3D".to_string(),
            c => c.to_string(),
        })
        .collect();
    let reply_path = ndes.lab.tmp.path().join("get-reply.der");
    run(Command::new("curl")
        .args(["-sS", "--fail", "-o"])
        .arg(&reply_path)
        .arg(format!(
            "{}?operation=PKIOperation&message={query}",
            ndes.mscep()
        )));
    let reply = std::fs::read(&reply_path).unwrap();
    let outcome = autoenroll::scep::exchange::read_reply(
        &reply,
        &prepared,
        &server.trusted,
        &key0,
        &key0.public_key_der(),
    )
    .unwrap();
    assert!(refused(outcome).contains("0x00000401"));

    // No challenge, and one never issued.
    let key = PrivateKey::generate(KeyAlgorithm::Rsa { bits: 2048 }).unwrap();
    let general = spec("sw1.corp.example", None);
    let text = refused(
        client::enroll(&client, &server, &key, &general, None, None)
            .await
            .unwrap(),
    );
    assert!(text.contains("0x00000401"), "{text}");
    assert_eq!(ndes.last_refusal(), (4002, "0x00000401".to_string()));
    let text = refused(
        client::enroll(
            &client,
            &server,
            &key,
            &general,
            Some("0011223344556677"),
            None,
        )
        .await
        .unwrap(),
    );
    assert!(text.contains("0x00000402"), "{text}");

    // Expired: the clock moves past the lifetime.
    let late = ndes.one_time().await;
    ndes.ca.clock.advance(Duration::from_secs(31 * 60));
    let text = refused(
        client::enroll(&client, &server, &key, &general, Some(&late), None)
            .await
            .unwrap(),
    );
    assert!(text.contains("0x00000404"), "{text}");
    assert_eq!(ndes.last_refusal(), (4003, "0x00000404".to_string()));

    // Encryption only: Unpublished, which the CA denies after the challenge
    // was verified.
    let challenge = ndes.one_time().await;
    let text = refused(
        client::enroll(
            &client,
            &server,
            &key,
            &spec("sw1.corp.example", Some(0b100)),
            Some(&challenge),
            None,
        )
        .await
        .unwrap(),
    );
    assert!(text.contains("Unpublished"), "{text}");
    let last: Vec<(u32, String)> = ndes
        .events()
        .iter()
        .rev()
        .take(3)
        .map(|e| (e.event_id, e.code.clone()))
        .collect();
    assert_eq!(
        last,
        [
            (4006, "0x00000409".to_string()),
            (4001, "0x00000409".to_string()),
            (4000, "0x00000000".to_string())
        ]
    );

    // Signature only: PendingMachine, which waits for a CA manager.
    let challenge = ndes.one_time().await;
    let signing = spec("sw1.corp.example", Some(0b1));
    let pending = match client::enroll(&client, &server, &key, &signing, Some(&challenge), None)
        .await
        .unwrap()
    {
        Outcome::Pending(p) => p,
        other => panic!("not pending: {other:?}"),
    };
    let again = client::poll(&client, &server, &pending, &key, None)
        .await
        .unwrap();
    assert!(matches!(again, Outcome::Pending(_)), "{again:?}");
    let row = ndes
        .ca
        .authority
        .db()
        .list(autoenroll::ca::db::ListFilter::Pending)
        .unwrap()
        .into_iter()
        .next()
        .expect("a pending request");
    assert_eq!(row.template.as_deref(), Some("PendingMachine"));
    ndes.ca.authority.approve(row.id).await.expect("approved");
    let cert = match client::poll(&client, &server, &pending, &key, None)
        .await
        .unwrap()
    {
        Outcome::Issued { certificate, .. } => certificate,
        other => panic!("not issued: {other:?}"),
    };
    let path = ndes.lab.tmp.path().join("polled.pem");
    std::fs::write(&path, pem("CERTIFICATE", &cert)).unwrap();
    let text = openssl_check(&ndes, &path);
    // PendingMachine builds the subject from the directory (WEB01$), not
    // from the request.
    assert!(text.contains("web01.corp.example"), "{text}");

    // The RA certificates in use are those GetCACert served.
    let signing = autoenroll::ca::ndes::service::Ndes::open(
        &ndes.ca.config,
        ndes.ca.authority.signer(),
        ndes.ca.authority.now(),
    )
    .unwrap()
    .unwrap()
    .ra(&ndes.ca.authority)
    .signing
    .certificate
    .clone();
    assert!(server.ca.all.contains(&signing), "GetCACert serves it");

    // The password cache: at most password_max unused passwords.
    for _ in 0..3 {
        ndes.one_time().await;
    }
    let full = challenge_fetch::one_time(
        &format!("{}/certsrv/mscep_admin/", ndes.https),
        std::slice::from_ref(&ndes.ca.ca_certificate),
        Auth::Basic {
            user: ADMIN_DN,
            password: ADMIN_PASSWORD,
        },
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(full, Err(challenge_fetch::ChallengeError::CacheFull));
    // Not an administrator; a wrong password; plain HTTP refused by the client.
    let alice = "alice-Lab-Passw0rd".to_string();
    let denied = challenge_fetch::one_time(
        &format!("{}/certsrv/mscep_admin/", ndes.https),
        std::slice::from_ref(&ndes.ca.ca_certificate),
        Auth::Basic {
            user: "CN=alice,CN=Users,DC=corp,DC=example",
            password: &alice,
        },
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(denied, Err(challenge_fetch::ChallengeError::NoPermission));
    let wrong = challenge_fetch::one_time(
        &format!("{}/certsrv/mscep_admin/", ndes.https),
        std::slice::from_ref(&ndes.ca.ca_certificate),
        Auth::Basic {
            user: ADMIN_DN,
            password: "wrong",
        },
        Duration::from_secs(20),
    )
    .await;
    assert!(
        matches!(
            wrong,
            Err(challenge_fetch::ChallengeError::Unauthorized { status: 401, .. })
        ),
        "{wrong:?}"
    );
    let plain = challenge_fetch::one_time(
        &format!("{}/certsrv/mscep_admin/", ndes.http),
        &[],
        Auth::Basic {
            user: ADMIN_DN,
            password: ADMIN_PASSWORD,
        },
        Duration::from_secs(20),
    )
    .await;
    assert!(plain.unwrap_err().to_string().contains("https"));
    for path in ["/certsrv/mscep_admin/", "/certsrv/mscep_challenge/"] {
        let code = run(Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-u"])
            .arg(format!("{ADMIN_DN}:{ADMIN_PASSWORD}"))
            .arg(format!("{}{path}", ndes.http)));
        assert_eq!(code, "404", "{path} over plain HTTP");
    }

    // Past two thirds of their two years the running server issues the RA
    // certificates anew, and enrolls with them.
    ndes.ca.clock.advance(Duration::from_secs(500 * 86_400));
    let (client, later) = ours(&ndes).await;
    assert!(!later.ca.all.contains(&signing), "renewed RA certificates");
    let challenge = ndes.one_time().await;
    let key = PrivateKey::generate(KeyAlgorithm::Rsa { bits: 2048 }).unwrap();
    let outcome = client::enroll(
        &client,
        &later,
        &key,
        &spec("sw2.corp.example", None),
        Some(&challenge),
        None,
    )
    .await
    .unwrap();
    assert!(matches!(outcome, Outcome::Issued { .. }), "{outcome:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn dynamic_challenges_are_bound_single_use_and_unforgeable() {
    let ndes = start().await;
    let (client, server) = ours(&ndes).await;
    let url = format!("{}/certsrv/mscep_challenge/", ndes.https);
    let fetch = |binding: Binding| {
        let url = url.clone();
        let root = ndes.ca.ca_certificate.clone();
        async move {
            challenge_fetch::dynamic(
                &url,
                std::slice::from_ref(&root),
                Auth::Basic {
                    user: ADMIN_DN,
                    password: ADMIN_PASSWORD,
                },
                &binding,
                Duration::from_secs(20),
            )
            .await
            .expect("a dynamic challenge")
            .challenge
        }
    };
    let binding = |cn: &str| Binding {
        subject: format!("CN={cn}"),
        dns_names: vec![cn.to_string()],
        key_usage: Some(0b101),
    };
    let key = PrivateKey::generate(KeyAlgorithm::Rsa { bits: 2048 }).unwrap();

    // For another subject.
    let for_dev1 = fetch(binding("dev1.corp.example")).await;
    let text = refused(
        client::enroll(
            &client,
            &server,
            &key,
            &spec("dev2.corp.example", Some(0b101)),
            Some(&for_dev1),
            None,
        )
        .await
        .unwrap(),
    );
    assert!(text.contains("0x00000406"), "{text}");
    assert_eq!(ndes.last_refusal(), (4002, "0x00000406".to_string()));

    // Forged: one character of the signed text changed.
    let other = fetch(binding("dev1.corp.example")).await;
    let mut forged: Vec<char> = other.chars().collect();
    forged[5] = if forged[5] == 'A' { 'B' } else { 'A' };
    let forged: String = forged.into_iter().collect();
    let text = refused(
        client::enroll(
            &client,
            &server,
            &key,
            &spec("dev1.corp.example", Some(0b101)),
            Some(&forged),
            None,
        )
        .await
        .unwrap(),
    );
    assert!(text.contains("0x00000403"), "{text}");

    // The right request: issued, exactly as bound.
    let cert = match client::enroll(
        &client,
        &server,
        &key,
        &spec("dev1.corp.example", Some(0b101)),
        Some(&other),
        None,
    )
    .await
    .unwrap()
    {
        Outcome::Issued { certificate, .. } => certificate,
        o => panic!("not issued: {o:?}"),
    };
    let path = ndes.lab.tmp.path().join("dynamic.pem");
    std::fs::write(&path, pem("CERTIFICATE", &cert)).unwrap();
    let text = openssl_check(&ndes, &path);
    assert!(text.contains("CN=dev1.corp.example"), "{text}");

    // Reused by another request.
    let key2 = PrivateKey::generate(KeyAlgorithm::Rsa { bits: 2048 }).unwrap();
    let text = refused(
        client::enroll(
            &client,
            &server,
            &key2,
            &spec("dev1.corp.example", Some(0b101)),
            Some(&other),
            None,
        )
        .await
        .unwrap(),
    );
    assert!(text.contains("0x00000405"), "{text}");
    assert_eq!(ndes.last_refusal(), (4002, "0x00000405".to_string()));

    // Expired.
    let late = fetch(binding("dev3.corp.example")).await;
    ndes.ca.clock.advance(Duration::from_secs(31 * 60));
    let text = refused(
        client::enroll(
            &client,
            &server,
            &key2,
            &spec("dev3.corp.example", Some(0b101)),
            Some(&late),
            None,
        )
        .await
        .unwrap(),
    );
    assert!(text.contains("0x00000404"), "{text}");
    assert_eq!(ndes.last_refusal(), (4003, "0x00000404".to_string()));
}
