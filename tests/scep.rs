//! Our SCEP client (RFC 8894) against a server we did not write: the
//! `scepserver` of Debian's `scep` package (micromdm), on loopback with its
//! own file depot and a challenge password. PKCSReq by POST and by GET, in
//! AES and in 3DES, a RenewalReq signed with the current certificate, a
//! wrong challenge refused, a GetCACert answer that does not chain to the
//! profile's root refused; every issued certificate checked with OpenSSL.
//! Then SCEP profiles in the pulse of ws01 in the lab: enrolled with a
//! static challenge, the subject and SANs from several variables with
//! escaping exactly as asked, renewed at the threshold, archived when the
//! profile leaves the policy.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use autoenroll::pki::keys::{KeyAlgorithm, PrivateKey};
use autoenroll::scep::client::{self, ScepClient, Server};
use autoenroll::scep::exchange::Outcome;
use autoenroll::scep::message::FailInfo;
use autoenroll::scep::request::{CsrSpec, NameAttribute, SanEntry};
use common::micromdm::{CHALLENGE, Micromdm, to_pem};
use common::run;

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

// --- SCEP profiles in the pulse ---------------------------------------------

use autoenroll::policy::Policy;
use autoenroll::pulse::{Event, PulseOptions, Report, pulse};
use common::{TestCa, TestLab, start_time};
use std::os::unix::fs::PermissionsExt;
use time::OffsetDateTime;

/// A profile whose subject uses several variables and CertStrToName
/// escaping: a quoted value with a comma, doubled quotes and a `+`.
const SUBJECT: &str = r#"CN={{DeviceName}} ({{onPremisesSamAccountName}}),OU="Mobile, Lab",O="Finance ""Group"" + Co",L={{Domain}},C=US"#;

/// ws01's lab policy with `tail` after it, written beside it as `name`.
fn policy_with(lab: &TestLab, name: &str, tail: &str) -> Policy {
    let text = std::fs::read_to_string(lab.lab.policy_path("ws01")).unwrap();
    let path = lab.lab.dir.join(name);
    std::fs::write(&path, format!("{text}\n{tail}\n")).unwrap();
    Policy::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// The `[scep.wifi]` table for micromdm, with a static challenge file (0600).
fn wifi_profile(lab: &TestLab, mm: &Micromdm) -> String {
    let challenge = lab.lab.dir.join("wifi.challenge");
    std::fs::write(&challenge, format!("{CHALLENGE}\n")).unwrap();
    std::fs::set_permissions(&challenge, std::fs::Permissions::from_mode(0o600)).unwrap();
    format!(
        "[scep.wifi]\ntype = \"device\"\nsubject = '{SUBJECT}'\n\
         san = [\"dns:{{{{FullyQualifiedDomainName}}}}\", \"dns:{{{{DeviceName}}}}.wifi.{{{{Domain}}}}\"]\n\
         ekus = [\"client_auth\"]\nroot = \"{}\"\nurls = [\"{}\"]\n\
         renewal_threshold_percent = 25\nchallenge = \"file\"\nchallenge_file = \"{}\"\n\
         revoke_on_remove = true\n\
         post_install = 'echo \"$AUTOENROLL_SCEP_PROFILE $AUTOENROLL_CERTIFICATE\" > {hook}'\n\n\
         [scep.wifi.export]\ncertificate = \"out/wifi.pem\"\nkey = \"out/wifi.key\"\n",
        mm.ca_pem.display(),
        mm.url,
        challenge.display(),
        hook = lab.lab.dir.join("hook.out").display(),
    )
}

async fn pulse_at(policy: &Policy, ca: &TestCa, at: OffsetDateTime) -> Report {
    ca.clock.set(at);
    pulse(policy, PulseOptions::at(at))
        .await
        .expect("pulse runs")
}

/// The outcomes of the profile `wifi` of one event.
fn wifi(report: &Report, event: Event) -> Vec<&autoenroll::pulse::Outcome> {
    report
        .outcomes
        .iter()
        .filter(|o| o.event == event && o.profile.as_deref() == Some("wifi"))
        .collect()
}

/// Thumbprints of ws01's certificates of the profile.
fn held_scep(policy: &Policy) -> Vec<String> {
    autoenroll::store::Store::open(&policy.store)
        .unwrap()
        .snapshot()
        .unwrap()
        .certificates
        .iter()
        .filter(|c| c.meta.scep_profile.as_deref() == Some("wifi"))
        .map(|c| c.info.thumbprint.clone())
        .collect()
}

fn openssl_text(args: &[&str], cert: &Path) -> String {
    run(Command::new("openssl").args(args).arg(cert))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pulse_enrolls_renews_and_archives_a_scep_profile() {
    let lab = common::start(None);
    let t0 = start_time();
    let ca = lab.start_ca(t0).await;
    let mm = Micromdm::start();
    let with = policy_with(&lab, "ws01-scep.toml", &wifi_profile(&lab, &mm));

    // Enrolled with the static challenge, by the same pulse as the templates.
    let report = pulse_at(&with, &ca, t0).await;
    assert!(report.ok, "{:#?}", report.outcomes);
    assert_eq!(
        wifi(&report, Event::Installed).len(),
        1,
        "{:#?}",
        report.outcomes
    );
    assert!(report.planned.iter().any(|p| p.profile.as_deref() == Some("wifi")
        && p.reason_code == "scep_no_certificate"));
    let first = held_scep(&with);
    assert_eq!(first.len(), 1);
    let dir = with.store.join("my").join(&first[0]);
    let mode = std::fs::metadata(dir.join("key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let meta = std::fs::read_to_string(dir.join("meta.toml")).unwrap();
    assert!(meta.contains("scep_profile = \"wifi\""), "{meta}");
    // Exactly the subject and SANs asked for, as OpenSSL reads them: RFC
    // 2253 shows the RDNs in the format's order; the directory spells the
    // account WS01$.
    let cert = dir.join("cert.pem");
    run(Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(&mm.ca_pem)
        .arg(&cert));
    let subject = openssl_text(
        &["x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in"],
        &cert,
    );
    assert_eq!(
        subject.trim(),
        r#"subject=CN=WS01 (WS01$),OU=Mobile\, Lab,O=Finance \"Group\" \+ Co,L=corp.example,C=US"#
    );
    // Exported for services, and the hook told which profile.
    let out = lab.lab.dir.join("out");
    assert_eq!(
        std::fs::read(out.join("wifi.pem")).unwrap(),
        std::fs::read(&cert).unwrap()
    );
    let key_mode = std::fs::metadata(out.join("wifi.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);
    let hook = std::fs::read_to_string(lab.lab.dir.join("hook.out")).unwrap();
    assert_eq!(
        hook.trim(),
        format!("wifi {}", out.join("wifi.pem").display())
    );
    assert_eq!(wifi(&report, Event::Exported).len(), 1);
    let san = openssl_text(&["x509", "-noout", "-ext", "subjectAltName", "-in"], &cert);
    assert!(
        san.contains("DNS:ws01.corp.example, DNS:ws01.wifi.corp.example"),
        "{san}"
    );
    // No challenge in the store's files or the report.
    let json = serde_json::to_string(&report).unwrap();
    assert!(!json.contains(CHALLENGE));
    for entry in walk(&with.store) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !bytes
                .windows(CHALLENGE.len())
                .any(|w| w == CHALLENGE.as_bytes()),
            "{} holds the challenge",
            entry.display()
        );
    }

    // Nothing due before the threshold; the next wake is the renewal.
    let report = pulse_at(&with, &ca, t0 + time::Duration::days(10)).await;
    assert!(
        wifi(&report, Event::Installed).is_empty() && wifi(&report, Event::Replaced).is_empty()
    );
    let renew_at = report.next_wake.expect("a next wake");
    assert!(renew_at <= t0 + time::Duration::days(275), "{renew_at}");

    // 25% of the 365-day lifetime remaining: renewed (RenewalReq, micromdm
    // lists Renewal), the old certificate archived.
    let at = t0 + time::Duration::days(280);
    let report = pulse_at(&with, &ca, at).await;
    assert_eq!(
        wifi(&report, Event::Replaced).len(),
        1,
        "{:#?}",
        report.outcomes
    );
    let second = held_scep(&with);
    assert_eq!(second.len(), 1);
    assert_ne!(second, first);
    assert!(with.store.join("archive").join(&first[0]).is_dir());

    // The profile leaves the policy: archived, and since it asked for
    // revocation at removal, the administrator is told the serial (SCEP
    // has no revocation request).
    let without = lab.policy("ws01");
    let report = pulse_at(&without, &ca, at).await;
    let removed = wifi(&report, Event::Removed);
    assert_eq!(removed.len(), 1, "{:#?}", report.outcomes);
    assert!(removed[0].message.contains("removed from the policy"));
    let asked = wifi(&report, Event::RevocationNeeded);
    assert_eq!(asked.len(), 1);
    assert!(
        asked[0].message.contains("administrator"),
        "{}",
        asked[0].message
    );
    assert!(held_scep(&without).is_empty());
    assert!(with.store.join("archive").join(&second[0]).is_dir());
    drop(mm);
}

/// Every regular file under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let t = e.file_type().unwrap();
        if t.is_dir() {
            out.extend(walk(&e.path()));
        } else if t.is_file() {
            out.push(e.path());
        }
    }
    out
}
