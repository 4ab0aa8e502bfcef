//! The whole loop end to end: pulses of ws01 against a private slapd and the
//! real CA, with the clocks of client and CA moved by the test.

mod common;

use std::path::Path;
use std::time::Duration;

use autoenroll::lab::{DirectoryKind, LabOptions};
use autoenroll::pulse::{Event, PulseOptions, Report, pulse};
use common::{TestCa, TestLab, current, start_time, store};
use time::OffsetDateTime;

const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(86_400);

async fn pulse_at(lab: &TestLab, ca: &TestCa, at: OffsetDateTime) -> Report {
    ca.clock.set(at);
    pulse(&lab.policy("ws01"), PulseOptions::at(at))
        .await
        .expect("pulse runs")
}

fn events(report: &Report, event: Event) -> Vec<String> {
    report
        .outcomes
        .iter()
        .filter(|o| o.event == event)
        .map(|o| o.template.clone().unwrap_or_default())
        .collect()
}

fn archived(lab: &TestLab) -> Vec<String> {
    let dir = lab.policy("ws01").store.join("archive");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

const WORKSTATION_AUTH: &str = "CN=WorkstationAuth,CN=Certificate Templates,CN=Public Key Services,CN=Services,CN=Configuration,DC=corp,DC=example";
const CORP_CA: &str = "CN=corp-CA,CN=Enrollment Services,CN=Public Key Services,CN=Services,CN=Configuration,DC=corp,DC=example";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_renew_retrieve_revoke_and_update() {
    enroll_renew_retrieve_revoke_and_update_on(DirectoryKind::OpenLdap).await;
}

/// The same loop against a Samba AD DC, with the CA published there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_renew_retrieve_revoke_and_update_against_samba() {
    enroll_renew_retrieve_revoke_and_update_on(DirectoryKind::Samba).await;
}

async fn enroll_renew_retrieve_revoke_and_update_on(directory: DirectoryKind) {
    let lab = common::start_with(LabOptions {
        directory,
        ..LabOptions::default()
    });
    let t0 = start_time();
    let mut ca = lab.start_ca(t0).await;

    // A fresh ws01 enrolls what it may, pends PendingMachine, skips the rest.
    let first = pulse_at(&lab, &ca, t0).await;
    assert!(first.ok, "{first:#?}");
    // The rootDSE (with AD's change value), slapd's contextCSN, the
    // account, its groups and Public Key Services (with its change marker's
    // attributes).
    let searches = match directory {
        DirectoryKind::OpenLdap => 5,
        DirectoryKind::Samba => 4,
    };
    assert_eq!(
        first.directory_searches, searches,
        "a first pulse reads the directory in {searches} searches"
    );
    assert!(!first.directory_reused);
    let mut installed = events(&first, Event::Installed);
    installed.sort();
    assert_eq!(installed, ["ShortLived", "WorkstationAuth"], "{first:#?}");
    assert_eq!(events(&first, Event::Pending), ["PendingMachine"]);
    assert!(first.planned.iter().all(|a| {
        a.kind != "enroll"
            || ["ShortLived", "WorkstationAuth", "PendingMachine"]
                .contains(&a.template.as_deref().unwrap_or(""))
    }));
    let trust = lab.policy("ws01").store.join("trust/roots");
    assert_eq!(std::fs::read_dir(trust).unwrap().count(), 1);

    // A second pulse does nothing, and finds Public Key Services unchanged
    // by its markers instead of reading it again.
    let second = pulse_at(&lab, &ca, t0 + MINUTE).await;
    assert!(!second.changed_anything(), "{second:#?}");
    assert!(second.ok);
    assert!(second.directory_reused, "{second:#?}");
    assert!(second.directory_searches < searches, "{second:#?}");

    // ShortLived (1 hour, renewal period 30 minutes): not at the start of the
    // renewal period, but at the 80% point (48 minutes).
    let short = current(&lab, "ShortLived");
    let r = pulse_at(&lab, &ca, t0 + 35 * MINUTE).await;
    assert!(events(&r, Event::Replaced).is_empty(), "{r:#?}");
    let r = pulse_at(&lab, &ca, t0 + 49 * MINUTE).await;
    assert_eq!(events(&r, Event::Replaced), ["ShortLived"], "{r:#?}");
    let renewed = current(&lab, "ShortLived");
    assert_eq!(renewed.len(), 1);
    assert_ne!(renewed, short);
    assert!(archived(&lab).contains(&short[0]), "{:?}", archived(&lab));
    let held = store(&lab).snapshot().unwrap();
    let keys: Vec<Vec<u8>> = held
        .certificates
        .iter()
        .map(|c| c.info.public_key.clone())
        .collect();
    let old_key = std::fs::read_to_string(
        lab.policy("ws01")
            .store
            .join("archive")
            .join(&short[0])
            .join("key.pem"),
    )
    .unwrap();
    assert!(
        !held
            .certificates
            .iter()
            .any(|c| std::fs::read_to_string(c.path.join("key.pem")).unwrap() == old_key),
        "the renewal must use a new key"
    );
    assert_eq!(keys.len(), 2);

    // The administrator approves PendingMachine; the next poll installs it
    // with the key kept since the request.
    let pending = store(&lab).snapshot().unwrap().pending;
    assert_eq!(pending.len(), 1);
    let kept_key = std::fs::read(pending[0].path.join("key.pem")).unwrap();
    let id = common::ca_request_id(&pending[0]);
    ca.authority.approve(id).await.unwrap();
    let r = pulse_at(&lab, &ca, t0 + 2 * 60 * MINUTE).await;
    assert_eq!(events(&r, Event::Installed), ["PendingMachine"], "{r:#?}");
    let pm = current(&lab, "PendingMachine");
    let entry = lab.policy("ws01").store.join("my").join(&pm[0]);
    assert_eq!(std::fs::read(entry.join("key.pem")).unwrap(), kept_key);

    // Revoked and published on the CRL: moved out and enrolled again.
    let wa = current(&lab, "WorkstationAuth");
    let serial = common::serial_of(&lab, &wa[0]);
    ca.authority.revoke(&serial, 1).unwrap();
    ca.authority.publish_crl().await.unwrap();
    let r = pulse_at(&lab, &ca, t0 + 3 * 60 * MINUTE).await;
    assert!(r.ok, "{r:#?}");
    let now_wa = current(&lab, "WorkstationAuth");
    assert_eq!(now_wa.len(), 1, "{r:#?}");
    assert_ne!(now_wa, wa);
    assert!(archived(&lab).contains(&wa[0]));

    // A minor revision change does nothing; a major one re-enrolls.
    lab.admin(
        "ldapmodify",
        &format!(
            "dn: {WORKSTATION_AUTH}\nchangetype: modify\nreplace: msPKI-Template-Minor-Revision\nmsPKI-Template-Minor-Revision: 7\n"
        ),
    );
    // (ShortLived, one hour long, expired meanwhile and is re-enrolled.)
    let r = pulse_at(&lab, &ca, t0 + 4 * 60 * MINUTE).await;
    assert!(
        !events(&r, Event::Replaced).contains(&"WorkstationAuth".to_string()),
        "{r:#?}"
    );
    lab.admin(
        "ldapmodify",
        &format!("dn: {WORKSTATION_AUTH}\nchangetype: modify\nreplace: revision\nrevision: 102\n"),
    );
    let r = pulse_at(&lab, &ca, t0 + 5 * 60 * MINUTE).await;
    assert!(
        events(&r, Event::Replaced).contains(&"WorkstationAuth".to_string()),
        "{r:#?}"
    );

    // A template superseding WorkstationAuth is published: it is enrolled and
    // the old certificate archived.
    let before = current(&lab, "WorkstationAuth");
    let ldif = autoenroll::lab::template_variant_ldif(
        "WorkstationAuth",
        "WorkstationAuthV2",
        &[
            (
                "msPKI-Cert-Template-OID",
                Some(": 1.3.6.1.4.1.311.21.8.1000.2000.3000.4000.5000.6000.8782410.99999".into()),
            ),
            (
                "msPKI-Supersede-Templates",
                Some(": WorkstationAuth".into()),
            ),
            ("revision", Some(": 100".into())),
        ],
    )
    .unwrap();
    lab.admin("ldapadd", &lab.lab.ldif_for(&ldif).unwrap());
    lab.admin(
        "ldapmodify",
        &format!(
            "dn: {CORP_CA}\nchangetype: modify\nadd: certificateTemplates\ncertificateTemplates: WorkstationAuthV2\n"
        ),
    );
    let r = pulse_at(&lab, &ca, t0 + 6 * 60 * MINUTE).await;
    assert!(r.ok, "{r:#?}");
    assert_eq!(current(&lab, "WorkstationAuthV2").len(), 1, "{r:#?}");
    assert!(current(&lab, "WorkstationAuth").is_empty(), "{r:#?}");
    assert!(archived(&lab).contains(&before[0]));

    // The CA is stopped: current certificates stay, the failure backs off.
    ca.stop().await;
    let held_before = store(&lab).snapshot().unwrap().certificates.len();
    let due = t0 + 6 * 60 * MINUTE + 50 * MINUTE; // ShortLived is due again
    let r = pulse(&lab.policy("ws01"), PulseOptions::at(due))
        .await
        .unwrap();
    assert!(!r.ok);
    assert!(!events(&r, Event::Failed).is_empty(), "{r:#?}");
    assert_eq!(
        store(&lab).snapshot().unwrap().certificates.len(),
        held_before
    );
    let state = store(&lab).read_state().unwrap();
    assert_eq!(state.failures_of("ShortLived").map(|f| f.count), Some(1));
    let r = pulse(&lab.policy("ws01"), PulseOptions::at(due + MINUTE))
        .await
        .unwrap();
    assert!(events(&r, Event::Failed).is_empty(), "backoff: {r:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_down_changes_nothing() {
    let lab = common::start(None);
    let t0 = start_time();
    let _ca = lab.start_ca(t0).await;
    let policy = lab.policy("ws01");
    let report = pulse(&policy, PulseOptions::at(t0)).await.unwrap();
    assert!(report.ok);
    let before = listing(&policy.store);
    let common::TestLab { lab: l, tmp } = lab;
    l.stop();
    let e = pulse(&policy, PulseOptions::at(t0 + 400 * DAY))
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(text.contains("directory"), "{text}");
    assert!(text.contains("127.0.0.1"), "{text}");
    assert_eq!(listing(&policy.store), before);
    drop(tmp);
}

/// Every file under the store except state.toml and the lock, with contents.
fn listing(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let name = p.strip_prefix(root).unwrap().display().to_string();
                if name != "state.toml" && name != "lock" {
                    out.push((name, std::fs::read(&p).unwrap()));
                }
            }
        }
    }
    out.sort();
    out
}

/// Items 25 and 22: the report's next wake comes from what the pulse left.
/// After a first enrollment it is the renewal time of the shortest-lived
/// certificate just installed (ShortLived: one hour, renewed at its 80%
/// point), not "nothing" as the plan made before acting said.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_wake_is_the_renewal_of_a_certificate_just_installed() {
    let lab = common::start(None);
    let t0 = start_time();
    let ca = lab.start_ca(t0).await;
    let r = pulse_at(&lab, &ca, t0).await;
    assert!(r.ok, "{r:#?}");
    let held = store(&lab).snapshot().unwrap();
    let short = held
        .certificates
        .iter()
        .find(|c| c.meta.template.as_deref() == Some("ShortLived"))
        .expect("ShortLived installed");
    let snapshot = lab.snapshot("ws01").await;
    let template = snapshot
        .templates
        .iter()
        .find(|t| t.template.cn == "ShortLived")
        .unwrap();
    let renew_at = autoenroll::planner::renewal_time(
        short.info.not_before,
        short.info.not_after,
        template.template.renewal_period,
        None,
    );
    assert_eq!(r.next_wake, Some(renew_at), "{r:#?}");
    // Item 23: the lab's root is published under AIA too; it is not an
    // intermediate.
    let trust = lab.policy("ws01").store.join("trust");
    assert_eq!(std::fs::read_dir(trust.join("roots")).unwrap().count(), 1);
    let intermediates = std::fs::read_dir(trust.join("intermediates"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(intermediates, 0, "a self-signed AIA certificate is a root");
}

/// Item 25: after a pulse whose every request failed, the next wake is the
/// end of the backoff it started (an hour after a first failure).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_wake_is_the_end_of_a_backoff_just_started() {
    let lab = common::start(None);
    let t0 = start_time();
    let mut ca = lab.start_ca(t0).await;
    ca.stop().await;
    let r = pulse(&lab.policy("ws01"), PulseOptions::at(t0))
        .await
        .unwrap();
    assert!(!r.ok);
    assert_eq!(events(&r, Event::Failed).len(), 3, "{r:#?}");
    assert_eq!(r.next_wake, Some(t0 + 60 * MINUTE), "{r:#?}");
}

/// Item 10: an unusable template entry is a warning event naming the entry,
/// the attribute and the problem, and `pulse --json` lists its skip in
/// `planned`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_templates_are_reported() {
    let broken = autoenroll::lab::template_variant_ldif(
        "WorkstationAuth",
        "BrokenTemplate",
        &[
            (
                "msPKI-Cert-Template-OID",
                Some(": 1.3.6.1.4.1.311.21.8.1000.2000.3000.4000.5000.6000.8782410.777".into()),
            ),
            ("msPKI-Template-Schema-Version", Some(": 9".into())),
        ],
    )
    .unwrap();
    let lab = common::start(Some(broken));
    let t0 = start_time();
    let ca = lab.start_ca(t0).await;
    ca.clock.set(OffsetDateTime::now_utc());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_autoenroll"))
        .args(["pulse", "--json", "--policy"])
        .arg(lab.lab.policy_path("ws01"))
        .env("AUTOENROLL_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let warning = report["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["event"] == "template_unusable")
        .unwrap_or_else(|| panic!("no template_unusable event: {stdout}"));
    assert_eq!(warning["event_id"], 1110);
    assert_eq!(warning["template"], "BrokenTemplate");
    let message = warning["message"].as_str().unwrap();
    assert!(
        message
            .to_lowercase()
            .contains("cn=brokentemplate,cn=certificate templates"),
        "{message}"
    );
    assert!(
        message.contains("msPKI-Template-Schema-Version"),
        "{message}"
    );
    assert!(message.contains("found 9"), "{message}");
    let skip = report["planned"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "skip" && a["template"] == "BrokenTemplate")
        .unwrap_or_else(|| panic!("no skip for BrokenTemplate in planned: {stdout}"));
    assert!(
        skip["reason"]
            .as_str()
            .unwrap()
            .contains("msPKI-Template-Schema-Version"),
        "{skip}"
    );
    // Logged as a warning (the default level shows it).
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("WARN") && l.contains("BrokenTemplate")),
        "{stderr}"
    );
}

/// Item 7: a renewal reads the held certificate's key through the store,
/// which never follows a symbolic link. A post-install hook of an earlier
/// action of the same pulse (PendingMachine, retrieved) replaces
/// WorkstationAuth's `key.pem` with a link to a copy of that very key outside
/// the store, after the store was read and before WorkstationAuth is renewed:
/// the renewal is refused with a clear failure instead of signing with
/// whatever the link points to (before, it followed the link and renewed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_does_not_follow_a_link_at_the_held_key() {
    let lab = common::start(None);
    let t0 = start_time();
    let ca = lab.start_ca(t0).await;
    let first = pulse_at(&lab, &ca, t0).await;
    assert_eq!(
        events(&first, Event::Pending),
        ["PendingMachine"],
        "{first:#?}"
    );
    let wa = current(&lab, "WorkstationAuth");
    assert_eq!(wa.len(), 1, "{first:#?}");
    let entry = lab.policy("ws01").store.join("my").join(&wa[0]);
    let outside = lab.policy("ws01").store.with_file_name("outside-key.pem");
    std::fs::copy(entry.join("key.pem"), &outside).unwrap();
    let outside_before = std::fs::read(&outside).unwrap();

    let pending = store(&lab).snapshot().unwrap().pending;
    let id = common::ca_request_id(&pending[0]);
    ca.authority.approve(id).await.unwrap();
    let mut policy = lab.policy("ws01");
    let link = entry.join("key.pem");
    policy
        .templates
        .entry("PendingMachine".into())
        .or_default()
        .post_install = Some(format!(
        "ln -sf '{}' '{}'",
        outside.display(),
        link.display()
    ));
    // Renewal is due when 99% of WorkstationAuth's lifetime remains.
    policy
        .templates
        .entry("WorkstationAuth".into())
        .or_default()
        .renewal_threshold_percent = Some(99);
    let at = t0 + 5 * DAY;
    ca.clock.set(at);
    let r = pulse(&policy, PulseOptions::at(at))
        .await
        .expect("pulse runs");
    assert!(
        r.planned
            .iter()
            .any(|a| a.kind == "renew" && a.template.as_deref() == Some("WorkstationAuth")),
        "{r:#?}"
    );
    assert_eq!(events(&r, Event::Installed), ["PendingMachine"], "{r:#?}");
    assert!(
        events(&r, Event::Replaced)
            .iter()
            .all(|t| t != "WorkstationAuth"),
        "{r:#?}"
    );
    let failure = r
        .outcomes
        .iter()
        .find(|o| o.event == Event::Failed && o.template.as_deref() == Some("WorkstationAuth"))
        .unwrap_or_else(|| panic!("WorkstationAuth's renewal fails: {r:#?}"));
    assert!(
        failure.message.contains("symbolic link"),
        "{}",
        failure.message
    );
    assert!(failure.message.contains("key.pem"), "{}", failure.message);
    assert!(
        !failure.message.contains("PRIVATE KEY"),
        "never quotes the file: {}",
        failure.message
    );
    // The link and what it points to are left as they were.
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read(&outside).unwrap(), outside_before);
    assert_eq!(current(&lab, "WorkstationAuth"), wa);
}

/// A pulse reads Public Key Services again only when it changed: while the
/// server's change value stands still no search of it is made, after a
/// write elsewhere only its change marker is read, and any change to it (a
/// modified, added or deleted template) is read in full. A saved snapshot
/// of another server, or one that cannot be parsed, is not used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_key_services_is_read_again_only_when_it_changed() {
    let lab = common::start(None);
    let t0 = start_time();
    let ca = lab.start_ca(t0).await;
    let mut at = t0;
    let mut next = || {
        at += MINUTE;
        at
    };

    let first = pulse_at(&lab, &ca, next()).await;
    assert!(first.ok && !first.directory_reused, "{first:#?}");
    // rootDSE, contextCSN, the account, its groups and Public Key Services
    // (whose change marker is computed from what it returns).
    assert_eq!(first.directory_searches, 5, "{first:#?}");
    let full = first.directory_searches;

    let still = pulse_at(&lab, &ca, next()).await;
    assert!(
        still.directory_reused && !still.changed_anything(),
        "{still:#?}"
    );
    assert_eq!(still.directory_searches, full - 1);

    // A write outside Public Key Services moves the server's value.
    lab.admin(
        "ldapmodify",
        "dn: CN=web01,CN=Computers,DC=corp,DC=example\nchangetype: modify\nreplace: description\ndescription: moved\n",
    );
    // The change marker's search takes the place of Public Key Services'.
    let elsewhere = pulse_at(&lab, &ca, next()).await;
    assert!(elsewhere.directory_reused, "{elsewhere:#?}");
    assert_eq!(elsewhere.directory_searches, full);

    // A changed template: read in full, and acted on (a new major revision
    // re-enrolls).
    lab.admin(
        "ldapmodify",
        &format!("dn: {WORKSTATION_AUTH}\nchangetype: modify\nreplace: revision\nrevision: 102\n"),
    );
    let changed = pulse_at(&lab, &ca, next()).await;
    assert!(!changed.directory_reused, "{changed:#?}");
    assert_eq!(changed.directory_searches, full + 1);
    assert_eq!(
        events(&changed, Event::Replaced),
        ["WorkstationAuth"],
        "{changed:#?}"
    );
    assert!(pulse_at(&lab, &ca, next()).await.directory_reused);

    // An added template and then its deletion, each read in full.
    let ldif = autoenroll::lab::template_variant_ldif(
        "WorkstationAuth",
        "WorkstationAuthCopy",
        &[(
            "msPKI-Cert-Template-OID",
            Some(": 1.3.6.1.4.1.311.21.8.1000.2000.3000.4000.5000.6000.8782410.77777".into()),
        )],
    )
    .unwrap();
    lab.admin("ldapadd", &lab.lab.ldif_for(&ldif).unwrap());
    let added = pulse_at(&lab, &ca, next()).await;
    assert!(!added.directory_reused, "{added:#?}");
    let copy = WORKSTATION_AUTH.replace("CN=WorkstationAuth,", "CN=WorkstationAuthCopy,");
    let saved = lab.policy("ws01").store.join("directory-snapshot.json");
    assert!(
        std::fs::read_to_string(&saved)
            .unwrap()
            .contains("WorkstationAuthCopy")
    );
    lab.admin("ldapmodify", &format!("dn: {copy}\nchangetype: delete\n"));
    let deleted = pulse_at(&lab, &ca, next()).await;
    assert!(!deleted.directory_reused, "{deleted:#?}");
    assert!(
        !std::fs::read_to_string(&saved)
            .unwrap()
            .contains("WorkstationAuthCopy")
    );

    // A saved snapshot said to come from another server is not used.
    let text = std::fs::read_to_string(&saved).unwrap();
    assert!(text.contains(&lab.lab.url));
    std::fs::write(
        &saved,
        text.replace(&lab.lab.url, "ldap://dc99.corp.example"),
    )
    .unwrap();
    let other = pulse_at(&lab, &ca, next()).await;
    assert!(other.ok && !other.directory_reused, "{other:#?}");
    assert!(
        std::fs::read_to_string(&saved)
            .unwrap()
            .contains(&lab.lab.url)
    );
    // Nor one that cannot be parsed; the pulse writes a good one again.
    std::fs::write(&saved, "{ not a snapshot").unwrap();
    let broken = pulse_at(&lab, &ca, next()).await;
    assert!(broken.ok && !broken.directory_reused, "{broken:#?}");
    assert!(!broken.changed_anything(), "{broken:#?}");
    assert!(pulse_at(&lab, &ca, next()).await.directory_reused);
}
