//! The verdict of every sample template for every sample account, read from a
//! private slapd loaded with `ldif/`: the table of the sample forest.

mod common;

use std::collections::BTreeMap;

/// cn -> expected reason code (None: eligible), per account.
fn expected(account: &str) -> BTreeMap<&'static str, Option<&'static str>> {
    let machine = matches!(account, "ws01" | "web01" | "nodns01");
    let (m, u) = if machine {
        (None, Some("wrong_context"))
    } else {
        (Some("wrong_context"), None)
    };
    let pick = |machine_reason: Option<&'static str>, user_reason: Option<&'static str>| {
        if machine { machine_reason } else { user_reason }
    };
    BTreeMap::from([
        ("Machine", pick(Some("schema_v1"), m)),
        ("WorkstationAuth", m),
        ("LegacyMachineAuth", pick(Some("superseded"), m)),
        (
            "ServerAuthECDSA",
            pick(
                if account == "web01" {
                    None
                } else {
                    Some("right_not_granted")
                },
                m,
            ),
        ),
        ("WebServer", pick(Some("enrollee_supplies_subject"), m)),
        ("PendingMachine", m),
        ("EnrollOnly", pick(Some("right_not_granted"), m)),
        ("Unpublished", Some("not_published")),
        (
            "User",
            pick(
                u,
                if account == "bob" {
                    Some("right_denied")
                } else {
                    None
                },
            ),
        ),
        ("InteractiveUser", pick(u, Some("needs_interaction"))),
        ("ShortLived", m),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sample_verdict_matches_the_table() {
    let lab = common::start_forest();
    verdicts_match_the_table(&lab).await;
}

async fn verdicts_match_the_table(lab: &common::TestLab) {
    for account in ["ws01", "web01", "nodns01", "alice", "bob", "carol"] {
        let verdicts = lab.verdicts(account).await;
        let got: BTreeMap<&str, Option<&str>> = verdicts
            .iter()
            .map(|v| (v.cn.as_str(), v.reason.as_ref().map(|r| r.code())))
            .collect();
        let want = expected(account);
        assert_eq!(got, want, "verdicts for {account}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reasons_say_what_to_fix() {
    let lab = common::start_forest();
    let text = |vs: &[autoenroll::directory::Verdict], cn: &str| {
        vs.iter()
            .find(|v| v.cn == cn)
            .and_then(|v| v.reason.as_ref())
            .map(|r| r.to_string())
            .unwrap_or_default()
    };
    let ws01 = lab.verdicts("ws01").await;
    assert_eq!(
        text(&ws01, "LegacyMachineAuth"),
        "superseded by WorkstationAuth"
    );
    assert!(text(&ws01, "ServerAuthECDSA").starts_with("no Enroll right"));
    assert!(text(&ws01, "EnrollOnly").starts_with("no AutoEnroll right"));
    assert!(text(&ws01, "User").contains("user template: not enrolled in the machine context"));
    let alice = lab.verdicts("alice").await;
    assert!(
        text(&alice, "WorkstationAuth")
            .contains("machine template: not enrolled in the user context")
    );
    let bob = lab.verdicts("bob").await;
    let denied = text(&bob, "User");
    assert!(
        denied.starts_with("AutoEnroll right denied to Contractors (S-1-5-21-1000-2000-3000-"),
        "{denied}"
    );
    let corp_ca = ws01.iter().find(|v| v.cn == "WorkstationAuth").unwrap();
    assert_eq!(corp_ca.published_by, vec!["corp-CA".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web01_token_holds_its_nested_groups() {
    let lab = common::start_forest();
    web01_token(&lab).await;
    assert_eq!(
        lab.snapshot("web01").await.account.sid.to_string(),
        "S-1-5-21-1000-2000-3000-1202"
    );
}

/// The sample forest on a Samba AD DC: the same verdict for every account
/// and template as on slapd (one table, and compared verdict by verdict), the
/// same nested groups in web01's token with the SIDs Samba assigned, and the
/// same snapshot over LDAPS as over StartTLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_verdicts_on_samba() {
    let samba = common::start_with(autoenroll::lab::LabOptions {
        directory: autoenroll::lab::DirectoryKind::Samba,
        ..Default::default()
    });
    verdicts_match_the_table(&samba).await;
    let slapd = common::start(None);
    for account in ["ws01", "web01", "nodns01", "alice", "bob", "carol"] {
        let on_samba = samba.verdicts(account).await;
        let on_slapd = slapd.verdicts(account).await;
        let codes =
            |vs: &[autoenroll::directory::Verdict]| -> Vec<(String, Option<String>, Vec<String>)> {
                vs.iter()
                    .map(|v| {
                        (
                            v.cn.clone(),
                            v.reason.as_ref().map(|r| r.code().to_string()),
                            v.published_by.clone(),
                        )
                    })
                    .collect()
            };
        assert_eq!(codes(&on_samba), codes(&on_slapd), "verdicts for {account}");
    }
    web01_token(&samba).await;
    let snap = samba.snapshot("web01").await;
    let sid = snap.account.sid.to_string();
    assert!(sid.starts_with("S-1-5-21-"), "{sid}");
    assert!(
        !sid.starts_with("S-1-5-21-1000-2000-3000-"),
        "Samba assigns its own SIDs: {sid}"
    );

    let mut over_ldaps = samba.policy("ws01");
    over_ldaps.directory.url = samba.lab.ldaps_url.clone();
    over_ldaps.directory.starttls = false;
    let mut dir = autoenroll::directory::Directory::connect(&over_ldaps.directory)
        .await
        .expect("LDAPS to Samba");
    let ldaps = dir
        .snapshot("CN=ws01,CN=Computers,DC=corp,DC=example")
        .await
        .unwrap();
    dir.close().await;
    let starttls = samba.snapshot("ws01").await;
    assert_eq!(ldaps.templates, starttls.templates);
    assert_eq!(ldaps.account, starttls.account);
}

async fn web01_token(lab: &common::TestLab) {
    let snap = lab.snapshot("web01").await;
    let names: Vec<&str> = snap
        .account
        .token
        .iter()
        .filter_map(|s| snap.sid_names.get(s).map(String::as_str))
        .collect();
    for g in [
        "Web Servers",
        "Servers",
        "Domain Computers",
        "Everyone",
        "Authenticated Users",
    ] {
        assert!(names.contains(&g), "{g} missing from {names:?}");
    }
    assert_eq!(
        snap.account.dns_host_name.as_deref(),
        Some("web01.corp.example")
    );
    let ws01 = lab.snapshot("ws01").await;
    assert!(
        !ws01
            .account
            .token
            .iter()
            .any(|s| ws01.sid_names.get(s).is_some_and(|n| n == "Servers"))
    );
}
