//! The emulated enterprise CA against a private slapd loaded from `ldif/`:
//! issuance by template, denials with their HRESULTs, pending requests,
//! renewals and their seven checks, revocation and CRLs, hostile input, and
//! interoperability with OpenSSL.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ::time::OffsetDateTime;
use autoenroll::enroll::{Outcome, enrollment_request, renewal_request};
use autoenroll::pki::CertificateInfo;
use autoenroll::pki::csr::{CsrOptions, build_csr};
use autoenroll::pki::keys::{KeyAlgorithm, PrivateKey};
use common::{TestCa, TestLab, openssl_csr, rsa, run, start_time, template};
use x509_parser::prelude::{FromDer, X509Certificate};

const DAY: Duration = Duration::from_secs(86_400);

/// Enrolls `account` for `cn` with a fresh key; returns the outcome and the key.
async fn enroll(
    lab: &TestLab,
    ca: &TestCa,
    account: &str,
    cn: &str,
    key: PrivateKey,
) -> (Outcome, PrivateKey) {
    let t = template(lab, cn).await;
    let csr = enrollment_request(&t, &key, None).unwrap();
    let outcome = ca
        .client(account)
        .submit(&ca.endpoint, &csr, cn)
        .await
        .unwrap();
    (outcome, key)
}

/// Sends a WorkstationAuth request as `account` (None: without credentials,
/// as a renewal may come).
async fn submit_workstation_auth(ca: &TestCa, account: Option<&str>, token: &[u8]) -> Outcome {
    let client = match account {
        Some(a) => ca.client(a),
        None => ca.anonymous_client(),
    };
    client
        .submit(&ca.endpoint, token, "WorkstationAuth")
        .await
        .unwrap()
}

fn issued(outcome: &Outcome) -> Vec<u8> {
    match outcome {
        Outcome::Issued { certificate, .. } => certificate.clone(),
        other => panic!("expected a certificate, got {other:?}"),
    }
}

fn denial(outcome: &Outcome) -> (u32, String) {
    match outcome {
        Outcome::Denied {
            hresult, message, ..
        } => (*hresult, message.clone()),
        other => panic!("expected a denial, got {other:?}"),
    }
}

fn write_pem(dir: &Path, name: &str, der: &[u8]) -> std::path::PathBuf {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).unwrap());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    let p = dir.join(name);
    std::fs::write(&p, pem).unwrap();
    p
}

/// `openssl verify` of `leaf` against the CA certificate, at the CA's time.
fn openssl_verify(dir: &Path, ca: &TestCa, leaf: &[u8]) {
    use autoenroll::clock::Clock;
    let at = ca.clock.now().unix_timestamp().to_string();
    let ca = &ca.ca_certificate;
    let ca_pem = write_pem(dir, "ca-from-directory.pem", ca);
    let leaf_pem = write_pem(dir, "leaf.pem", leaf);
    let out = run(Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(&ca_pem)
        .arg("-purpose")
        .arg("any")
        .arg("-attime")
        .arg(&at)
        .arg(&leaf_pem));
    assert!(out.contains(": OK"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuance_by_template_and_denials() {
    let lab = common::start(None);
    let mut ca = lab.start_ca(start_time()).await;
    let tmp = lab.tmp.path();

    // ws01 asks for another name; the CA takes subject and SAN from the directory.
    let t = template(&lab, "WorkstationAuth").await;
    let key = rsa();
    let csr = build_csr(
        &key,
        &CsrOptions {
            subject_common_name: Some("evil.example"),
            dns_names: &["evil.example".to_string()],
            template: Some((t.oid.as_deref().unwrap(), t.revision, t.minor_revision)),
            template_name: None,
            renewal_certificate: None,
        },
    )
    .unwrap();
    let outcome = submit_workstation_auth(&ca, Some("ws01"), &csr).await;
    let der = issued(&outcome);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    assert_eq!(cert.subject().to_string(), "CN=ws01.corp.example");
    let san = cert.subject_alternative_name().unwrap().unwrap();
    let names: Vec<String> = san
        .value
        .general_names
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(names, ["DNSName(ws01.corp.example)"]);
    let info = CertificateInfo::from_der(&der).unwrap();
    assert_eq!(info.public_key, key.public_key_der());
    let identity = info.template.unwrap();
    assert_eq!(identity.oid.as_deref(), t.oid.as_deref());
    assert_eq!(identity.major, Some(101));
    openssl_verify(tmp, &ca, &der);
    let text = run(Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(write_pem(tmp, "ws01.pem", &der)));
    assert!(
        text.contains("1.3.6.1.4.1.311.21.7") || text.contains("Microsoft certificate template"),
        "{text}"
    );
    assert!(text.contains("DNS:ws01.corp.example"), "{text}");
    assert!(!text.contains("evil"), "{text}");
    assert!(
        text.contains("S-1-5-21-1000-2000-3000-"),
        "SID extension: {text}"
    );

    // web01 gets ServerAuthECDSA with a P-256 key.
    let (outcome, _) = enroll(
        &lab,
        &ca,
        "web01",
        "ServerAuthECDSA",
        PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap(),
    )
    .await;
    let der = issued(&outcome);
    let info = CertificateInfo::from_der(&der).unwrap();
    assert_eq!(
        KeyAlgorithm::from_spki(&info.public_key).unwrap(),
        KeyAlgorithm::EcdsaP256
    );
    openssl_verify(tmp, &ca, &der);

    // ws01 may not enroll ServerAuthECDSA.
    let (outcome, _) = enroll(
        &lab,
        &ca,
        "ws01",
        "ServerAuthECDSA",
        PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap(),
    )
    .await;
    let (code, reason) = denial(&outcome);
    assert_eq!(code, 0x8009_4012, "{reason}");

    // nodns01 has no dNSHostName.
    let (outcome, _) = enroll(&lab, &ca, "nodns01", "WorkstationAuth", rsa()).await;
    let (code, reason) = denial(&outcome);
    assert_eq!(code, 0x8009_480F, "{reason}");

    // Unpublished is not published by corp-CA.
    let (outcome, _) = enroll(&lab, &ca, "ws01", "Unpublished", rsa()).await;
    let (code, reason) = denial(&outcome);
    assert_eq!(code, 0x8009_4800, "{reason}");

    // A key below the template's minimum: a P-256 key where RSA 2048 is
    // the minimum, and a 1024-bit RSA key (parsed, then refused by the
    // policy with the key-length code, not as a bad signature).
    let small = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let (outcome, _) = enroll(&lab, &ca, "ws01", "WorkstationAuth", small).await;
    let (code, reason) = denial(&outcome);
    assert_eq!(code, 0x8009_4811, "{reason}");
    let rsa1024 = openssl_csr(tmp, "rsa:1024");
    let (code, reason) = denial(&submit_workstation_auth(&ca, Some("ws01"), &rsa1024).await);
    assert_eq!(code, 0x8009_4811, "{reason}");
    assert!(reason.contains("RSA 1024"), "{reason}");

    // Wrong password: refused before anything else.
    let stranger = autoenroll::enroll::EnrollmentClient::new(
        std::slice::from_ref(&ca.ca_certificate),
        Some(autoenroll::wstep::UsernameToken {
            username: "CN=ws01,CN=Computers,DC=corp,DC=example".into(),
            password: "guess".into(),
        }),
        Duration::from_secs(10),
    )
    .unwrap();
    let csr = enrollment_request(&t, &rsa(), None).unwrap();
    let outcome = stranger
        .submit(&ca.endpoint, &csr, "WorkstationAuth")
        .await
        .unwrap();
    let (code, reason) = denial(&outcome);
    assert_eq!(code, 0x8007_0005, "{reason}");
    assert_eq!(reason, autoenroll::ca::authority::LOGIN_REFUSED);

    // Every denial is in the database with its HRESULT.
    let records = ca
        .authority
        .db()
        .list(autoenroll::ca::db::ListFilter::All)
        .unwrap();
    let denied: Vec<Option<u32>> = records
        .iter()
        .filter(|r| r.disposition == autoenroll::ca::db::Disposition::Denied)
        .map(|r| r.hresult)
        .collect();
    for code in [0x8009_4012, 0x8009_480F, 0x8009_4800, 0x8009_4811] {
        assert!(denied.contains(&Some(code)), "{denied:?}");
    }
    ca.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_request_is_approved_then_retrieved() {
    let lab = common::start(None);
    let mut ca = lab.start_ca(start_time()).await;
    pending_approved_then_retrieved(&lab, &ca).await;
    ca.stop().await;
}

async fn pending_approved_then_retrieved(lab: &TestLab, ca: &TestCa) {
    let (outcome, key) = enroll(lab, ca, "ws01", "PendingMachine", rsa()).await;
    let Outcome::Pending { request_id, .. } = outcome else {
        panic!("expected pending, got {outcome:?}");
    };
    let client = ca.client("ws01");
    assert!(matches!(
        client.query(&ca.endpoint, request_id).await.unwrap(),
        Outcome::Pending { .. }
    ));
    // Another account may not read it, and learns no more than from a
    // request that does not exist.
    let other = ca
        .client("web01")
        .query(&ca.endpoint, request_id)
        .await
        .unwrap();
    let (code, reason) = denial(&other);
    assert_eq!(code, 0x8007_0005, "{reason}");
    let missing = ca
        .client("web01")
        .query(&ca.endpoint, request_id + 1000)
        .await
        .unwrap();
    let (missing_code, missing_reason) = denial(&missing);
    assert_eq!(missing_code, code);
    assert_eq!(
        missing_reason,
        reason.replace(
            &format!("request {request_id} "),
            &format!("request {} ", request_id + 1000)
        )
    );

    ca.clock.advance(DAY);
    let record = ca.authority.approve(request_id).await.unwrap();
    assert!(record.approved);
    let der = issued(&client.query(&ca.endpoint, request_id).await.unwrap());
    let info = CertificateInfo::from_der(&der).unwrap();
    assert_eq!(info.public_key, key.public_key_der());
    assert_eq!(info.not_before, ca.clock_now());
    openssl_verify(lab.tmp.path(), ca, &der);

    // Approving twice is refused with a reason.
    let e = ca.authority.approve(request_id).await.unwrap_err();
    assert!(e.to_string().contains("not pending"), "{e}");
}

/// A CA manager denies a pending request; a certificate is revoked and the
/// CRL `ca crl` publishes is read back from the directory, lists it, and
/// OpenSSL verifies it with the CA certificate read back from the directory.
async fn deny_revoke_and_crl(lab: &TestLab, ca: &TestCa) {
    let (outcome, _) = enroll(lab, ca, "web01", "PendingMachine", rsa()).await;
    let Outcome::Pending { request_id, .. } = outcome else {
        panic!("expected pending, got {outcome:?}");
    };
    let record = ca.authority.deny(request_id, "not this one").unwrap();
    assert!(!record.approved);
    let (code, reason) = denial(
        &ca.client("web01")
            .query(&ca.endpoint, request_id)
            .await
            .unwrap(),
    );
    assert_ne!(code, 0, "{reason}");

    let (outcome, _) = enroll(lab, ca, "ws01", "WorkstationAuth", rsa()).await;
    let der = issued(&outcome);
    openssl_verify(lab.tmp.path(), ca, &der);
    let info = CertificateInfo::from_der(&der).unwrap();
    ca.authority.revoke(&info.serial, 1).unwrap();
    ca.authority.publish_crl().await.unwrap();
    let snap = lab.snapshot("ws01").await;
    let crl = snap
        .crls
        .iter()
        .find(|c| {
            c.dn.to_ascii_lowercase()
                .starts_with("cn=corp-ca,cn=ca,cn=cdp,")
        })
        .and_then(|c| c.base.first())
        .cloned()
        .expect("the CRL is published");
    let verified =
        autoenroll::pki::Crl::verified(&crl, std::slice::from_ref(&ca.ca_certificate), {
            use autoenroll::clock::Clock;
            ca.clock.now()
        })
        .expect("the published CRL verifies");
    assert!(verified.revoked.contains_key(&info.serial), "{verified:?}");
    let dir = lab.tmp.path();
    let ca_pem = write_pem(dir, "ca-from-directory.pem", &ca.ca_certificate);
    std::fs::write(dir.join("published.crl"), &crl).unwrap();
    let out = Command::new("openssl")
        .args(["crl", "-inform", "DER", "-noout", "-text", "-in"])
        .arg(dir.join("published.crl"))
        .arg("-CAfile")
        .arg(&ca_pem)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.contains("verify OK"), "{text}");
    assert!(
        text.contains("Issuer: DC = example, DC = corp, CN = corp-CA"),
        "{text}"
    );
    assert!(
        text.to_ascii_uppercase()
            .contains(&info.serial.to_ascii_uppercase()),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_request_and_a_revocation_on_the_crl() {
    let lab = common::start(None);
    let mut ca = lab.start_ca(start_time()).await;
    deny_revoke_and_crl(&lab, &ca).await;
    ca.stop().await;
}

/// The same checks against a Samba AD DC: `ca init` publishes into it (and
/// again, updating what exists), the objects are served as AD serves them,
/// requests are issued, approved, denied, revoked, and the CRL and the CA
/// certificate read back from Samba verify with OpenSSL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_samba() {
    let started = std::time::Instant::now();
    let lab = common::start_with(autoenroll::lab::LabOptions {
        directory: autoenroll::lab::DirectoryKind::Samba,
        ..Default::default()
    });
    let ready = started.elapsed();
    let mut ca = lab.start_ca(start_time()).await;
    ca_objects_as_ad(&lab, &ca);
    init_again(&lab, &ca).await;
    pending_approved_then_retrieved(&lab, &ca).await;
    deny_revoke_and_crl(&lab, &ca).await;
    ca.stop().await;
    highest_committed_usn_moves_with_a_write(&lab).await;
    eprintln!(
        "Samba lab ready in {:.1} s, checks done in {:.1} s",
        ready.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

/// AD's database-wide change value (rootDSE `highestCommittedUSN`, with
/// `dsServiceName`), which the CA trusts to skip the change marker of
/// Public Key Services while it stands still, is found on Samba and moves
/// with a write to a template.
async fn highest_committed_usn_moves_with_a_write(lab: &common::TestLab) {
    use autoenroll::directory::Directory;
    use autoenroll::directory::server_marker::ServerMarkerSource;
    let policy = lab.policy("ws01");
    let mut dir = Directory::connect(&policy.directory).await.unwrap();
    let naming = dir.naming_contexts().await.unwrap();
    let source = dir
        .server_marker_source(&naming.public_key_services())
        .await
        .unwrap();
    assert_eq!(source, ServerMarkerSource::HighestCommittedUsn);
    let before = dir.server_marker(&source).await.unwrap().expect("a value");
    dir.snapshot("ws01$").await.unwrap();
    let after_reading = dir.server_marker(&source).await.unwrap().expect("a value");
    lab.admin(
        "ldapmodify",
        &format!(
            "dn: CN=WorkstationAuth,CN=Certificate Templates,{}\nchangetype: modify\nreplace: displayName\ndisplayName: moved\n",
            naming.public_key_services()
        ),
    );
    let after_writing = dir.server_marker(&source).await.unwrap().expect("a value");
    assert_ne!(after_writing, after_reading, "a modified template moves it");
    eprintln!(
        "highestCommittedUSN: {before} before a snapshot, {after_reading} after it, {after_writing} after a write"
    );
}

trait ClockNow {
    fn clock_now(&self) -> OffsetDateTime;
}

impl ClockNow for TestCa {
    fn clock_now(&self) -> OffsetDateTime {
        use autoenroll::clock::Clock;
        self.clock.now()
    }
}

/// The seven renewal checks of the CA policy (rule 3), each with its
/// HRESULT and its record in the database: signature, issued by this CA,
/// not revoked, within its validity, inside its renewal period, the same
/// account, the same template.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewals_and_their_checks() {
    let lab = common::start(None);
    let t0 = start_time();
    let mut ca = lab.start_ca(t0).await;
    let t = template(&lab, "WorkstationAuth").await;
    let legacy = template(&lab, "LegacyMachineAuth").await;

    let (outcome, ws01_key) = enroll(&lab, &ca, "ws01", "WorkstationAuth", rsa()).await;
    let ws01_cert = issued(&outcome);
    let (outcome, web01_key) = enroll(&lab, &ca, "web01", "WorkstationAuth", rsa()).await;
    let web01_cert = issued(&outcome);
    let (outcome, revoked_key) = enroll(&lab, &ca, "ws01", "WorkstationAuth", rsa()).await;
    let revoked_cert = issued(&outcome);
    let revoked_serial = CertificateInfo::from_der(&revoked_cert).unwrap().serial;
    ca.authority.revoke(&revoked_serial, 1).unwrap();

    let renew =
        |old: &[u8], old_key: &PrivateKey| renewal_request(&t, &rsa(), old, old_key).unwrap();
    let denied_and_recorded = |outcome: &Outcome, code: u32, words: &str| {
        let (got, reason) = denial(outcome);
        assert_eq!(got, code, "{reason}");
        assert!(reason.contains(words), "{reason}");
        common::assert_denial_recorded(&ca, outcome, code);
    };

    // 5. Not yet inside the renewal period (6 weeks before the end of a year).
    let early = renew(&ws01_cert, &ws01_key);
    let outcome = submit_workstation_auth(&ca, None, &early).await;
    denied_and_recorded(&outcome, 0x8009_400E, "renewal period");

    // Inside it.
    ca.clock.set(t0 + 330 * DAY);
    let request = renew(&ws01_cert, &ws01_key);
    let outcome = submit_workstation_auth(&ca, None, &request).await;
    let renewed = issued(&outcome);
    let info = CertificateInfo::from_der(&renewed).unwrap();
    assert_eq!(info.subject, "CN=ws01.corp.example");
    openssl_verify(lab.tmp.path(), &ca, &renewed);
    // The same request again: the same answer (a client that crashed after
    // sending may send again).
    let again = submit_workstation_auth(&ca, None, &request).await;
    assert_eq!(issued(&again), renewed);

    // 1. A renewal whose CMS signature does not verify.
    let mut broken = renew(&ws01_cert, &ws01_key);
    let last = broken.len() - 1;
    broken[last] ^= 0x01;
    let outcome = submit_workstation_auth(&ca, Some("ws01"), &broken).await;
    denied_and_recorded(&outcome, 0x8009_0006, "signature");

    // 2. Signed by a certificate another CA issued.
    let (foreign_cert, foreign_key) = common::foreign_certificate("ws01.corp.example");
    let request = renew(&foreign_cert, &foreign_key);
    let outcome = submit_workstation_auth(&ca, Some("ws01"), &request).await;
    denied_and_recorded(&outcome, 0x8009_400E, "was not issued by corp-CA");

    // 6. web01's certificate presented by ws01: another requester.
    let request = renew(&web01_cert, &web01_key);
    let outcome = submit_workstation_auth(&ca, Some("ws01"), &request).await;
    denied_and_recorded(&outcome, 0x8009_4806, "only its own account may renew");

    // 3. A revoked certificate.
    let request = renew(&revoked_cert, &revoked_key);
    let outcome = submit_workstation_auth(&ca, None, &request).await;
    denied_and_recorded(&outcome, 0x8009_2010, "revoked");

    // 7. Another template than the certificate's.
    let request = renewal_request(&legacy, &rsa(), &ws01_cert, &ws01_key).unwrap();
    let outcome = ca
        .anonymous_client()
        .submit(&ca.endpoint, &request, "LegacyMachineAuth")
        .await
        .unwrap();
    denied_and_recorded(&outcome, 0x8009_4802, "a renewal keeps the template");

    // 4. An expired one.
    ca.clock.set(t0 + 400 * DAY);
    let request = renew(&ws01_cert, &ws01_key);
    let outcome = submit_workstation_auth(&ca, None, &request).await;
    denied_and_recorded(&outcome, 0x800B_0101, "expired");
    ca.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_cms_renewal_and_crl() {
    let lab = common::start(None);
    let t0 = start_time();
    let mut ca = lab.start_ca(t0).await;
    let tmp = lab.tmp.path();
    let t = template(&lab, "WorkstationAuth").await;
    let (outcome, old_key) = enroll(&lab, &ca, "ws01", "WorkstationAuth", rsa()).await;
    let old_cert = issued(&outcome);

    // The renewal's CMS is built and signed by `openssl cms`, not by us.
    ca.clock.set(t0 + 330 * DAY);
    let new_key = rsa();
    let csr = enrollment_request(&t, &new_key, Some(&old_cert)).unwrap();
    std::fs::write(tmp.join("renewal.csr.der"), &csr).unwrap();
    std::fs::write(tmp.join("old.key"), old_key.to_pem()).unwrap();
    let old_pem = write_pem(tmp, "old.pem", &old_cert);
    run(Command::new("openssl")
        .args([
            "cms",
            "-sign",
            "-binary",
            "-nodetach",
            "-outform",
            "DER",
            "-in",
        ])
        .arg(tmp.join("renewal.csr.der"))
        .arg("-signer")
        .arg(&old_pem)
        .arg("-inkey")
        .arg(tmp.join("old.key"))
        .arg("-out")
        .arg(tmp.join("renewal.p7")));
    let request = std::fs::read(tmp.join("renewal.p7")).unwrap();
    let outcome = submit_workstation_auth(&ca, None, &request).await;
    let renewed = issued(&outcome);
    let info = CertificateInfo::from_der(&renewed).unwrap();
    assert_eq!(info.public_key, new_key.public_key_der());

    // Revoke it and publish a CRL; `openssl crl` reads it and lists the serial.
    ca.authority.revoke(&info.serial, 1).unwrap();
    let crl = ca.authority.publish_crl().await.unwrap();
    std::fs::write(tmp.join("ca.crl"), &crl).unwrap();
    let ca_pem = write_pem(tmp, "ca.pem", &ca.ca_certificate);
    let text = run(Command::new("openssl")
        .args(["crl", "-inform", "DER", "-noout", "-text", "-in"])
        .arg(tmp.join("ca.crl"))
        .arg("-CAfile")
        .arg(&ca_pem));
    assert!(
        text.to_uppercase().contains(&info.serial.to_uppercase()),
        "{} not in {text}",
        info.serial
    );
    assert!(text.contains("Key Compromise"), "{text}");
    // The directory's CDP object carries the same CRL.
    let snap = lab.snapshot("ws01").await;
    assert!(snap.crls.iter().any(|c| c.base.iter().any(|b| b == &crl)));
    // And the HTTP URL written into certificates serves it.
    let http = ca.config.crl_url();
    let fetched = ca.anonymous_client().https().get(&http).await.unwrap();
    assert_eq!(fetched, crl);
    ca.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_faults() {
    let lab = common::start(None);
    let mut ca = lab.start_ca(start_time()).await;
    let https = ca.client("ws01");
    let https = https.https();
    let envelope = |body: &str| {
        format!(
            r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>{body}</s:Body></s:Envelope>"#
        )
    };
    let bomb = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>&lol2;</s:Body></s:Envelope>"#;
    let xxe = r#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>&e;</s:Body></s:Envelope>"#;
    let cases = [
        "not xml at all".to_string(),
        "<unclosed".to_string(),
        bomb.to_string(),
        xxe.to_string(),
        envelope(
            "<wst:RequestSecurityToken xmlns:wst=\"http://docs.oasis-open.org/ws-sx/ws-trust/200512\"/>",
        ),
    ];
    for body in cases {
        let answer = https.post_soap(&ca.endpoint, body.clone()).await.unwrap();
        match autoenroll::wstep::parse_reply(&answer).unwrap() {
            autoenroll::wstep::Reply::Fault(f) => {
                assert!(f.invalid_request, "{}", f.message);
                assert_eq!(f.hresult, 0x8007_0057, "{}", f.message);
                assert!(
                    !String::from_utf8_lossy(&answer).contains("root:"),
                    "XXE leaked"
                );
            }
            other => panic!(
                "{}: expected a fault, got {other:?}",
                &body[..body.len().min(40)]
            ),
        }
    }

    // An oversized body is refused by its declared length, with a fault.
    let answer = https
        .post_soap(&ca.endpoint, "x".repeat(2 * 1024 * 1024))
        .await
        .unwrap();
    match autoenroll::wstep::parse_reply(&answer).unwrap() {
        autoenroll::wstep::Reply::Fault(f) => assert_eq!(f.hresult, 0x8007_0057, "{}", f.message),
        other => panic!("expected a fault, got {other:?}"),
    }

    // Well-formed messages carrying bad tokens: truncated DER, garbage, a CSR
    // with a broken signature. Each a fault, recorded.
    let t = template(&lab, "WorkstationAuth").await;
    let good = enrollment_request(&t, &rsa(), None).unwrap();
    let mut bad_signature = good.clone();
    let last = bad_signature.len() - 1;
    bad_signature[last] ^= 0x01;
    for (token, code) in [
        (good[..good.len() / 2].to_vec(), 0x8007_0057),
        (vec![0x30, 0x82, 0xff], 0x8007_0057),
        (bad_signature, 0x8009_0006),
    ] {
        let outcome = submit_workstation_auth(&ca, Some("ws01"), &token).await;
        let (got, reason) = denial(&outcome);
        assert_eq!(got, code, "{reason}");
        common::assert_denial_recorded(&ca, &outcome, code);
    }
    // The server is still well.
    let outcome = submit_workstation_auth(&ca, Some("ws01"), &good).await;
    issued(&outcome);
    ca.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_again_is_harmless() {
    let lab = common::start(None);
    let mut ca = lab.start_ca(start_time()).await;
    init_again(&lab, &ca).await;
    ca.stop().await;
}

/// A second `ca init` updates what the first created, in place.
async fn init_again(lab: &TestLab, ca: &TestCa) {
    let before = lab.snapshot("ws01").await;
    let report = autoenroll::ca::init::init(&ca.config, start_time())
        .await
        .unwrap();
    assert!(!report.created_key);
    let after = lab.snapshot("ws01").await;
    assert_eq!(before.roots, after.roots);
    assert_eq!(before.ntauth, after.ntauth);
    assert_eq!(after.ntauth.len(), 1);
    assert_eq!(before.services, after.services);
}

/// RFC 5280 5.2.3: CRL numbers increase strictly, from the CRL `ca init`
/// writes through every `ca crl`, across restarts of the CA and a second
/// `ca init`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crl_numbers_increase_from_init_across_restarts() {
    use autoenroll::ca::crl::crl_number;
    let lab = common::start(None);
    let mut ca = lab.start_ca(start_time()).await;
    let first = crl_number(&ca.authority.current_crl().unwrap());
    let second = crl_number(&ca.authority.publish_crl().await.unwrap());
    assert_eq!((first, second), (Some(1), Some(2)));
    ca.stop().await;

    // A restart: a new Authority on the same state.
    let clock = std::sync::Arc::new(autoenroll::clock::ManualClock::new(start_time()));
    let restarted = autoenroll::ca::Authority::open(ca.config.clone(), clock.clone()).unwrap();
    let third = crl_number(&restarted.publish_crl().await.unwrap());
    assert_eq!(third, Some(3));

    // `ca init` again keeps the current CRL; the next one goes on counting.
    autoenroll::ca::init::init(&ca.config, start_time())
        .await
        .unwrap();
    assert_eq!(crl_number(&restarted.current_crl().unwrap()), Some(3));
    drop(restarted);

    // A database that lost count (restored from an old backup) still never
    // repeats the number of the CRL published last.
    std::fs::remove_file(&ca.config.database).unwrap();
    for suffix in ["-wal", "-shm"] {
        let mut p = ca.config.database.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
    let fresh = autoenroll::ca::Authority::open(ca.config.clone(), clock).unwrap();
    let fourth = crl_number(&fresh.publish_crl().await.unwrap());
    assert_eq!(fourth, Some(4));
}

/// The lab serves what AD serves: after `ca init`, `ldapsearch ...
/// cACertificate` returns the plain attribute (octet-string syntax, no
/// `;binary`), on objects of AD's classes only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_objects_are_served_as_ad_serves_them() {
    let lab = common::start(None);
    let mut ca = lab.start_ca(start_time()).await;
    ca_objects_as_ad(&lab, &ca);
    ca.stop().await;
}

fn ca_objects_as_ad(lab: &TestLab, ca: &TestCa) {
    let pks = "CN=Public Key Services,CN=Services,CN=Configuration,DC=corp,DC=example";
    let search = |filter: &str, attrs: &[&str]| {
        common::run(
            std::process::Command::new("ldapsearch")
                .env("LDAPTLS_CACERT", &lab.lab.tls_ca_file)
                .args(["-x", "-Z", "-LLL", "-o", "ldif-wrap=no", "-H", &lab.lab.url])
                .args(["-D", &lab.lab.admin_dn, "-y"])
                .arg(lab.lab.dir.join("admin.secret"))
                .args(["-b", pks, filter])
                .args(attrs),
        )
    };
    let cas = search(
        "(objectClass=certificationAuthority)",
        &["objectClass", "cACertificate", "certificateRevocationList"],
    );
    assert!(!cas.contains(";binary"), "{cas}");
    assert_eq!(cas.matches("\ncACertificate:: ").count(), 3, "{cas}");
    for dn in [
        "dn: CN=corp-CA,CN=Certification Authorities,",
        "dn: CN=corp-CA,CN=AIA,",
        "dn: CN=NTAuthCertificates,",
    ] {
        assert!(
            cas.to_ascii_lowercase().contains(&dn.to_ascii_lowercase()),
            "{dn} missing: {cas}"
        );
    }
    // Windows' one-byte placeholder ("AA==" is base64 of a zero byte).
    assert_eq!(cas.matches("certificateRevocationList:: AA==").count(), 3);
    let cdp = search(
        "(objectClass=cRLDistributionPoint)",
        &["certificateRevocationList"],
    );
    assert!(cdp.contains("\ncertificateRevocationList:: MII"), "{cdp}");
    let service = search(
        "(objectClass=pKIEnrollmentService)",
        &["cACertificate", "cACertificateDN"],
    );
    assert!(service.contains("\ncACertificate:: MII"), "{service}");
    // AD CS's name of an enterprise CA, in the certificate and in
    // cACertificateDN.
    assert!(
        service.contains("\ncACertificateDN: CN=corp-CA,DC=corp,DC=example\n"),
        "{service}"
    );
    let (_, cert) = x509_parser::parse_x509_certificate(&ca.ca_certificate).unwrap();
    assert_eq!(
        cert.subject().to_string(),
        "DC=example, DC=corp, CN=corp-CA"
    );
    assert!(!service.contains(";binary"), "{service}");
    let everything = search("(objectClass=*)", &["objectClass"]);
    assert!(!everything.contains("pkiCA"), "{everything}");
}

/// Submits `n` WorkstationAuth requests for ws01 at once, with slapd
/// stopped (SIGSTOP) until all of them have had the time to reach the CA and
/// wait on their first directory operation, so that they go on together;
/// each is issued.
async fn wave_of_requests(lab: &common::TestLab, ca: &common::TestCa, n: usize) {
    let t = template(lab, "WorkstationAuth").await;
    let csrs: Vec<_> = (0..n)
        .map(|_| enrollment_request(&t, &rsa(), None).unwrap())
        .collect();
    let slapd = lab.lab.slapd_pid().expect("the lab's slapd") as libc::pid_t;
    // SAFETY: signals to the lab's own child process.
    assert_eq!(unsafe { libc::kill(slapd, libc::SIGSTOP) }, 0);
    let mut tasks = tokio::task::JoinSet::new();
    for csr in csrs {
        let (client, endpoint) = (ca.client("ws01"), ca.endpoint.clone());
        tasks.spawn(async move {
            client
                .submit(&endpoint, &csr, "WorkstationAuth")
                .await
                .unwrap()
        });
    }
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(slapd, libc::SIGCONT) }, 0);
    while let Some(out) = tasks.join_next().await {
        issued(&out.unwrap());
    }
}

/// Requests that all find the cached Public Key Services stale at once (a
/// CA's first wave, the first after a template change) read it in full
/// once between them, not once each: with hundreds of templates a read in
/// full is the most expensive thing a request can do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wave_of_requests_reads_public_key_services_in_full_once() {
    let lab = common::start(None);
    let ca = lab.start_ca(start_time()).await;
    let before = ca.authority.full_directory_reads();
    wave_of_requests(&lab, &ca, 8).await;
    assert_eq!(ca.authority.full_directory_reads() - before, 1);

    wave_of_requests(&lab, &ca, 8).await;
    assert_eq!(
        ca.authority.full_directory_reads() - before,
        1,
        "nothing changed: every request of the second wave used the cache"
    );

    // The enrollment service is rewritten (same templates): its change
    // marker moves, and the next wave reads it in full once more.
    lab.admin(
        "ldapmodify",
        "dn: CN=corp-CA,CN=Enrollment Services,CN=Public Key Services,CN=Services,CN=Configuration,DC=corp,DC=example\n\
         changetype: modify\n\
         delete: certificateTemplates\n\
         certificateTemplates: WorkstationAuth\n\
         -\n\
         add: certificateTemplates\n\
         certificateTemplates: WorkstationAuth\n",
    );
    wave_of_requests(&lab, &ca, 8).await;
    assert_eq!(ca.authority.full_directory_reads() - before, 2);
}

/// The CA keeps what it read of Public Key Services behind the directory's
/// change marker: a change there reaches the very next request, and
/// requests at once each work on a connection of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_to_public_key_services_reaches_the_next_request() {
    let lab = common::start(None);
    let ca = lab.start_ca(start_time()).await;
    let (first, _) = enroll(&lab, &ca, "ws01", "WorkstationAuth", rsa()).await;
    issued(&first);

    let t = template(&lab, "WorkstationAuth").await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (client, endpoint) = (ca.client("ws01"), ca.endpoint.clone());
        let csr = enrollment_request(&t, &rsa(), None).unwrap();
        tasks.spawn(async move {
            client
                .submit(&endpoint, &csr, "WorkstationAuth")
                .await
                .unwrap()
        });
    }
    let mut serials = std::collections::BTreeSet::new();
    while let Some(out) = tasks.join_next().await {
        let der = issued(&out.unwrap());
        serials.insert(CertificateInfo::from_der(&der).unwrap().serial);
    }
    assert_eq!(serials.len(), 4, "four requests at once, four certificates");

    // The CA stops publishing WorkstationAuth: the next request is refused.
    lab.admin(
        "ldapmodify",
        "dn: CN=corp-CA,CN=Enrollment Services,CN=Public Key Services,CN=Services,CN=Configuration,DC=corp,DC=example\n\
         changetype: modify\n\
         delete: certificateTemplates\n\
         certificateTemplates: WorkstationAuth\n",
    );
    let (after, _) = enroll(&lab, &ca, "ws01", "WorkstationAuth", rsa()).await;
    let (code, reason) = denial(&after);
    assert_ne!(code, 0, "{reason}");

    // And published again, issued again.
    lab.admin(
        "ldapmodify",
        "dn: CN=corp-CA,CN=Enrollment Services,CN=Public Key Services,CN=Services,CN=Configuration,DC=corp,DC=example\n\
         changetype: modify\n\
         add: certificateTemplates\n\
         certificateTemplates: WorkstationAuth\n",
    );
    let (again, _) = enroll(&lab, &ca, "ws01", "WorkstationAuth", rsa()).await;
    issued(&again);
}
