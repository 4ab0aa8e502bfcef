//! Offboarding against real servers: ws01 in the lab holds template
//! certificates from the emulated CA (with exports and system trust
//! anchors) and a SCEP certificate from micromdm's scepserver. `unenroll
//! --dry-run` changes nothing; `unenroll --revoke` leaves nothing managed
//! behind (store, exports, anchors), the CA's database records the template
//! certificates revoked with reason 5 (cessationOfOperation), the SCEP one
//! is named for the administrator (SCEP has no revocation request); then a
//! pulse enrolls everything again. The CA's revocation endpoint revokes
//! only for the account the certificate was issued to.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use autoenroll::ca::db::Disposition;
use autoenroll::enroll::transport::{Https, TransportError};
use autoenroll::policy::Policy;
use autoenroll::pulse::unenroll::{UnenrollOptions, unenroll};
use autoenroll::pulse::{Event, PulseOptions, pulse};
use common::micromdm::{CHALLENGE, Micromdm};
use common::{TestLab, start_time};

/// ws01's lab policy with `top` before its first table and `tail` after it.
fn policy_with(lab: &TestLab, name: &str, top: &str, tail: &str) -> Policy {
    let text = std::fs::read_to_string(lab.lab.policy_path("ws01")).unwrap();
    let path = lab.lab.dir.join(name);
    std::fs::write(&path, format!("{top}\n{text}\n{tail}\n")).unwrap();
    Policy::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn managed(policy: &Policy) -> Vec<(String, String)> {
    autoenroll::store::Store::open(&policy.store)
        .unwrap()
        .snapshot()
        .unwrap()
        .certificates
        .iter()
        .filter(|c| c.info.template.is_some() || c.meta.scep_profile.is_some())
        .map(|c| (c.info.thumbprint.clone(), c.info.serial.clone()))
        .collect()
}

fn anchors(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("autoenroll-"))
                .collect()
        })
        .unwrap_or_default()
}

fn options(revoke: bool, dry_run: bool) -> UnenrollOptions {
    UnenrollOptions {
        revoke,
        dry_run,
        now: time::OffsetDateTime::now_utc(),
        timeout: Duration::from_secs(30),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unenroll_leaves_nothing_managed_and_revokes_then_a_pulse_starts_over() {
    let lab = common::start(None);
    let t0 = start_time();
    let ca = lab.start_ca(t0).await;
    let mm = Micromdm::start();
    let dir = lab.lab.dir.clone();
    let challenge = dir.join("wifi.challenge");
    std::fs::write(&challenge, CHALLENGE).unwrap();
    std::fs::set_permissions(&challenge, std::fs::Permissions::from_mode(0o600)).unwrap();
    let policy = policy_with(
        &lab,
        "ws01-offboard.toml",
        "trust_anchors_dir = \"anchors\"",
        &format!(
            "[templates.WorkstationAuth.export]\ncertificate = \"out/ws.pem\"\nkey = \"out/ws.key\"\n\n\
             [scep.wifi]\ntype = \"device\"\nsubject = \"CN={{{{DeviceName}}}}\"\nroot = \"{}\"\n\
             urls = [\"{}\"]\nchallenge = \"file\"\nchallenge_file = \"{}\"\n\n\
             [scep.wifi.export]\ncertificate = \"out/wifi.pem\"\n",
            mm.ca_pem.display(),
            mm.url,
            challenge.display()
        ),
    );
    ca.clock.set(t0);
    let report = pulse(&policy, PulseOptions::at(t0)).await.unwrap();
    assert!(report.ok, "{:#?}", report.outcomes);
    let held = managed(&policy);
    assert!(held.len() >= 3, "templates and the SCEP profile: {held:?}");
    assert!(dir.join("out/ws.pem").exists() && dir.join("out/ws.key").exists());
    assert!(dir.join("out/wifi.pem").exists());
    assert!(!anchors(&dir.join("anchors")).is_empty());
    let pending_before = autoenroll::store::Store::open(&policy.store)
        .unwrap()
        .snapshot()
        .unwrap()
        .pending
        .len();
    assert!(pending_before >= 1, "PendingMachine waits for approval");

    // Only the account a certificate was issued to may have it revoked.
    let https = Https::new(
        std::slice::from_ref(&ca.ca_certificate),
        Duration::from_secs(20),
    )
    .unwrap();
    let url = autoenroll::pki::revocation::url_for(&ca.endpoint, "corp-CA").unwrap();
    let web01 = autoenroll::lab::SAMPLE_ACCOUNTS
        .iter()
        .find(|a| a.name == "web01")
        .unwrap();
    let body = format!("{{\"serial\":\"{}\",\"reason\":5}}", held[0].1);
    let as_web01 = autoenroll::wstep::UsernameToken {
        username: web01.dn.to_string(),
        password: web01.password(),
    };
    let e = https
        .post_json(
            &url,
            body.clone(),
            Duration::from_secs(20),
            None,
            Some(&as_web01),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, TransportError::Status { status, .. } if status == 404),
        "{e}"
    );
    let wrong = autoenroll::wstep::UsernameToken {
        username: web01.dn.to_string(),
        password: "wrong".into(),
    };
    let e = https
        .post_json(&url, body, Duration::from_secs(20), None, Some(&wrong))
        .await
        .unwrap_err();
    assert!(
        matches!(e, TransportError::Status { status, .. } if status == 401),
        "{e}"
    );

    // A dry run lists every step and changes nothing.
    let dry = unenroll(&policy, options(true, true)).await.unwrap();
    assert!(dry.outcomes.is_empty());
    for (thumbprint, _) in &held {
        for kind in ["revoke", "archive"] {
            assert!(
                dry.steps
                    .iter()
                    .any(|s| s.kind == kind && s.certificate.as_deref() == Some(thumbprint)),
                "{kind} {thumbprint}: {:#?}",
                dry.steps
            );
        }
    }
    assert!(dry.steps.iter().any(|s| s.kind == "remove_export"));
    assert!(dry.steps.iter().any(|s| s.kind == "abandon_request"));
    assert_eq!(managed(&policy), held);
    assert!(dir.join("out/ws.pem").exists());

    // Unenroll with revocation.
    let report = unenroll(&policy, options(true, false)).await.unwrap();
    assert!(!report.ok, "the SCEP certificate needs its administrator");
    let scep_serial = {
        let needed: Vec<_> = report
            .outcomes
            .iter()
            .filter(|o| o.event == Event::RevocationNeeded)
            .collect();
        assert_eq!(needed.len(), 1, "{:#?}", report.outcomes);
        assert_eq!(needed[0].profile.as_deref(), Some("wifi"));
        needed[0].message.clone()
    };
    let revoked = report
        .outcomes
        .iter()
        .filter(|o| o.event == Event::Revoked)
        .count();
    assert_eq!(revoked, held.len() - 1, "{:#?}", report.outcomes);
    for (_, serial) in &held {
        let record = ca.authority.db().by_serial(serial).unwrap();
        match record {
            Some(r) => {
                assert_eq!(r.disposition, Disposition::Revoked, "{serial}");
                assert_eq!(r.revocation_reason, Some(5), "{serial}");
            }
            // Not the CA's: the SCEP certificate, whose serial is named.
            None => assert!(scep_serial.contains(serial.as_str()), "{scep_serial}"),
        }
    }
    // Nothing managed is left: store, requests, exports, anchors, trust.
    assert!(managed(&policy).is_empty());
    let snap = autoenroll::store::Store::open(&policy.store)
        .unwrap()
        .snapshot()
        .unwrap();
    assert!(snap.pending.is_empty());
    assert!(!dir.join("out/ws.pem").exists() && !dir.join("out/ws.key").exists());
    assert!(!dir.join("out/wifi.pem").exists());
    assert!(anchors(&dir.join("anchors")).is_empty());
    assert_eq!(
        std::fs::read_dir(policy.store.join("trust/roots"))
            .unwrap()
            .count(),
        0
    );
    for (thumbprint, _) in &held {
        assert!(
            policy.store.join("archive").join(thumbprint).is_dir(),
            "{thumbprint} archived"
        );
    }

    // A later pulse starts fresh: everything enrolled again.
    let report = pulse(&policy, PulseOptions::at(t0)).await.unwrap();
    assert!(report.ok, "{:#?}", report.outcomes);
    let again = managed(&policy);
    assert_eq!(again.len(), held.len(), "{again:?}");
    assert!(again.iter().all(|a| !held.contains(a)));
    assert!(dir.join("out/ws.pem").exists() && dir.join("out/wifi.pem").exists());
    assert!(!anchors(&dir.join("anchors")).is_empty());
    drop(mm);
}
