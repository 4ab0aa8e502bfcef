//! Our SCEP client (RFC 8894) against a server we did not write: the
//! `scepserver` of Debian's `scep` package (micromdm), on loopback with its
//! own file depot and a challenge password. PKCSReq by POST and by GET, in
//! AES and in 3DES, a RenewalReq signed with the current certificate, a
//! wrong challenge refused, a GetCACert answer that does not chain to the
//! profile's root refused; every issued certificate checked with OpenSSL.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use autoenroll::pki::keys::{KeyAlgorithm, PrivateKey};
use autoenroll::scep::client::{self, ScepClient, Server};
use autoenroll::scep::exchange::Outcome;
use autoenroll::scep::message::FailInfo;
use autoenroll::scep::request::{CsrSpec, NameAttribute, SanEntry};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

const CHALLENGE: &str = "s3cret-Challenge";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (is it installed?)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn pem_to_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).expect("PEM body")
}

fn to_pem(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

/// micromdm's scepserver with a fresh CA; killed on drop.
struct Micromdm {
    child: Child,
    url: String,
    ca_pem: PathBuf,
    _dir: tempfile::TempDir,
}

impl Micromdm {
    fn start() -> Micromdm {
        let dir = tempfile::tempdir().unwrap();
        let depot = dir.path().join("depot");
        run(Command::new("scepserver")
            .args([
                "ca",
                "-init",
                "-keySize",
                "2048",
                "-organization",
                "scep interop",
            ])
            .arg("-depot")
            .arg(&depot));
        let port = free_port();
        let child = Command::new("scepserver")
            .arg("-depot")
            .arg(&depot)
            .args(["-port", &port.to_string(), "-challenge", CHALLENGE])
            .args(["-allowrenew", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("scepserver (Debian package scep) is installed");
        let server = Micromdm {
            child,
            url: format!("http://127.0.0.1:{port}/scep"),
            ca_pem: depot.join("ca.pem"),
            _dir: dir,
        };
        // Wait until it listens (not a timing assertion: a bound on startup).
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("scepserver did not start listening on {port}");
    }

    fn root(&self) -> Vec<u8> {
        pem_to_der(&std::fs::read_to_string(&self.ca_pem).unwrap())
    }
}

impl Drop for Micromdm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spec(cn: &str) -> CsrSpec {
    CsrSpec {
        subject: vec![
            NameAttribute {
                oid: "2.5.4.3".into(),
                value: cn.into(),
            },
            NameAttribute {
                oid: "2.5.4.10".into(),
                value: "Finance Group".into(),
            },
        ],
        sans: vec![SanEntry::Dns(cn.into())],
        key_usage: Some(0b101),
        ekus: vec!["1.3.6.1.5.5.7.3.2".into()],
        // micromdm ignores the requested validity; it must not disturb it.
        validity_days: Some(30),
    }
}

fn rsa() -> PrivateKey {
    PrivateKey::generate(KeyAlgorithm::Rsa { bits: 2048 }).unwrap()
}

/// OpenSSL verifies the certificate against the CA and prints its subject.
fn openssl_check(dir: &Path, ca_pem: &Path, cert: &[u8], key: &PrivateKey) -> String {
    let cert_path = dir.join("issued.pem");
    std::fs::write(&cert_path, to_pem(cert)).unwrap();
    let verified = run(Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(ca_pem)
        .arg(&cert_path));
    assert!(verified.trim_end().ends_with("OK"), "{verified}");
    // The certificate is for our key: the public keys OpenSSL prints agree.
    let key_path = dir.join("key.pem");
    std::fs::write(&key_path, key.to_pem()).unwrap();
    let from_cert = run(Command::new("openssl")
        .args(["x509", "-noout", "-pubkey", "-in"])
        .arg(&cert_path));
    let from_key = run(Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&key_path));
    assert_eq!(from_cert, from_key);
    run(Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in"])
        .arg(&cert_path))
}

fn issued(outcome: Outcome) -> Vec<u8> {
    match outcome {
        Outcome::Issued { certificate, .. } => certificate,
        other => panic!("expected a certificate, got {other:?}"),
    }
}

#[tokio::test]
async fn our_client_against_micromdm_scepserver() {
    let mm = Micromdm::start();
    let work = tempfile::tempdir().unwrap();
    let client = ScepClient::new(&mm.url, &[], Duration::from_secs(30)).unwrap();
    let server: Server = client::discover(&client, &mm.root()).await.unwrap();
    assert!(server.caps.post_pki_operation && server.caps.aes && server.caps.renewal);
    assert_eq!(server.ca.encryption, mm.root());

    // PKCSReq, POST, AES.
    let key = rsa();
    let cert = issued(
        client::enroll(
            &client,
            &server,
            &key,
            &spec("ws01.corp.example"),
            Some(CHALLENGE),
            None,
        )
        .await
        .unwrap(),
    );
    let subject = openssl_check(work.path(), &mm.ca_pem, &cert, &key);
    assert!(subject.contains("CN=ws01.corp.example"), "{subject}");

    // PKCSReq by GET (no POSTPKIOperation) and in 3DES (no AES).
    let mut get_3des = server.clone();
    get_3des.caps.post_pki_operation = false;
    get_3des.caps.aes = false;
    get_3des.caps.scep_standard = false;
    let key2 = rsa();
    let cert2 = issued(
        client::enroll(
            &client,
            &get_3des,
            &key2,
            &spec("ws02.corp.example"),
            Some(CHALLENGE),
            None,
        )
        .await
        .unwrap(),
    );
    let subject = openssl_check(work.path(), &mm.ca_pem, &cert2, &key2);
    assert!(subject.contains("CN=ws02.corp.example"), "{subject}");

    // RenewalReq signed with the current certificate, for a new key.
    let key3 = rsa();
    let renewed = issued(
        client::enroll(
            &client,
            &server,
            &key3,
            &spec("ws01.corp.example"),
            Some(CHALLENGE),
            Some((&cert, &key)),
        )
        .await
        .unwrap(),
    );
    assert_ne!(renewed, cert);
    let subject = openssl_check(work.path(), &mm.ca_pem, &renewed, &key3);
    assert!(subject.contains("CN=ws01.corp.example"), "{subject}");

    // A wrong challenge is a FAILURE CertRep, read as a refusal.
    match client::enroll(
        &client,
        &server,
        &rsa(),
        &spec("ws03.corp.example"),
        Some("wrong"),
        None,
    )
    .await
    .unwrap()
    {
        Outcome::Refused { fail_info, .. } => assert_eq!(fail_info, FailInfo::BadRequest),
        other => panic!("a wrong challenge was not refused: {other:?}"),
    }

    // GetCACert that does not chain to the root the profile trusts.
    let (_, stranger) = {
        let k = rsa();
        let c =
            autoenroll::scep::request::transient_certificate(&k, &[], std::time::SystemTime::now())
                .unwrap();
        (k, c)
    };
    let e = client::discover(&client, &stranger).await.unwrap_err();
    assert!(e.to_string().contains("do not chain"), "{e}");
}
