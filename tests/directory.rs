//! The directory reader against a private slapd: transports, binds, clear
//! errors, malformed values, and the fixed number of searches per snapshot.

mod common;

use std::path::Path;

use autoenroll::directory::{self, Directory};
use autoenroll::lab::template_variant_ldif;
use autoenroll::policy::{Bind, Policy};

fn with_directory(
    policy: &Policy,
    edit: impl FnOnce(&mut autoenroll::policy::DirectorySettings),
) -> Policy {
    let mut p = policy.clone();
    edit(&mut p.directory);
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_value_makes_only_that_template_unusable() {
    let mut extra = String::new();
    extra += &template_variant_ldif(
        "WorkstationAuth",
        "BadPeriod",
        &[("pKIExpirationPeriod", Some(":: AEA5hy7h/g==".into()))],
    )
    .unwrap();
    extra += &template_variant_ldif(
        "WorkstationAuth",
        "BadDescriptor",
        &[("nTSecurityDescriptor", Some(":: AQAEgBQAAAA=".into()))],
    )
    .unwrap();
    extra += &template_variant_ldif(
        "WorkstationAuth",
        "PositivePeriod",
        &[("pKIOverlapPeriod", Some(":: AQAAAAAAAAA=".into()))],
    )
    .unwrap();
    let lab = common::start(Some(extra));
    let verdicts = lab.verdicts("ws01").await;
    let reason = |cn: &str| {
        verdicts
            .iter()
            .find(|v| v.cn == cn)
            .and_then(|v| v.reason.as_ref())
            .map(|r| r.to_string())
            .unwrap_or_else(|| panic!("no verdict for {cn}"))
    };
    let dn = "CN=BadPeriod,CN=Certificate Templates,CN=Public Key Services,CN=Services,CN=Configuration,DC=corp,DC=example";
    // slapd spells attribute types in DNs in lower case.
    assert_eq!(
        reason("BadPeriod").to_lowercase(),
        format!("unusable: {dn} pKIExpirationPeriod: a period is 8 bytes, found 7").to_lowercase()
    );
    assert!(
        reason("BadDescriptor").contains("nTSecurityDescriptor: "),
        "{}",
        reason("BadDescriptor")
    );
    assert!(
        reason("PositivePeriod").contains("pKIOverlapPeriod: a period is stored as a negative")
    );
    // The others are judged normally.
    let ws = verdicts.iter().find(|v| v.cn == "WorkstationAuth").unwrap();
    assert!(ws.is_eligible());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_costs_a_fixed_number_of_searches() {
    let mut extra = String::new();
    for i in 0..40 {
        extra += &template_variant_ldif("WorkstationAuth", &format!("Extra{i:03}"), &[]).unwrap();
    }
    let small = common::start(None);
    let large = common::start(Some(extra));
    let mut counts = Vec::new();
    for lab in [&small, &large] {
        let policy = lab.policy("ws01");
        let mut dir = Directory::connect(&policy.directory).await.unwrap();
        let before = dir.searches();
        let snap = dir
            .snapshot("CN=ws01,CN=Computers,DC=corp,DC=example")
            .await
            .unwrap();
        counts.push((dir.searches() - before, snap.templates.len()));
    }
    assert_eq!(counts[0].0, counts[1].0, "{counts:?}");
    assert_eq!(
        counts[0].0, 4,
        "rootDSE, account, groups, Public Key Services"
    );
    assert_eq!(counts[1].1, counts[0].1 + 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_may_be_named_by_sam_account_name() {
    let lab = common::start_forest();
    let policy = lab.policy("alice");
    let mut dir = Directory::connect(&policy.directory).await.unwrap();
    let snap = dir.snapshot("alice").await.unwrap();
    assert_eq!(
        snap.account.dn.to_lowercase(),
        "cn=alice,cn=users,dc=corp,dc=example"
    );
    let snap = dir.snapshot("CORP\\carol").await.unwrap();
    assert_eq!(snap.account.mail, None);
    let err = dir.snapshot("nobody").await.unwrap_err().to_string();
    assert!(err.contains("no account matches \"nobody\""), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_external_over_ldapi() {
    let lab = common::start(None);
    let policy = with_directory(&lab.policy("ws01"), |d| {
        d.url = lab.lab.ldapi_url.clone();
        d.starttls = false;
        d.bind = Bind::SaslExternal;
    });
    let mut dir = Directory::connect(&policy.directory).await.unwrap();
    let snap = dir.snapshot("ws01$").await.unwrap();
    let verdicts = directory::judge(
        &snap,
        directory::Options {
            context: policy.context,
            allow_prompts: false,
        },
        time::OffsetDateTime::now_utc(),
    );
    assert!(
        verdicts
            .iter()
            .any(|v| v.cn == "WorkstationAuth" && v.is_eligible())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_name_the_url_and_the_cause() {
    let lab = common::start(None);
    let base = lab.policy("ws01");

    // Refused bind: a wrong password.
    let wrong = lab.tmp.path().join("wrong.secret");
    std::fs::write(&wrong, "not-the-password").unwrap();
    std::fs::set_permissions(&wrong, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let p = with_directory(&base, |d| {
        d.bind = Bind::Simple {
            user: "CN=ws01,CN=Computers,DC=corp,DC=example".into(),
            password_file: wrong.clone(),
        }
    });
    let err = Directory::connect(&p.directory)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.starts_with(&lab.lab.url), "{err}");
    assert!(
        err.contains("bind as CN=ws01") && err.contains("invalidCredentials"),
        "{err}"
    );

    // TLS failure: the server's certificate is not signed by the CA we trust.
    let other_ca = lab.tmp.path().join("other-ca.pem");
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    std::fs::write(&other_ca, params.self_signed(&key).unwrap().pem()).unwrap();
    let p = with_directory(&base, |d| d.ca_file = Some(other_ca.clone()));
    let err = Directory::connect(&p.directory)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.starts_with(&lab.lab.url) && err.contains("cannot connect"),
        "{err}"
    );
    assert!(err.to_lowercase().contains("certificate"), "{err}");

    // Unreachable: nothing listens on the port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("ldap://127.0.0.1:{port}");
    let p = with_directory(&base, |d| d.url = url.clone());
    let err = Directory::connect(&p.directory)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.starts_with(&url) && err.contains("cannot connect"),
        "{err}"
    );
}

#[test]
fn the_cli_prints_json_and_fails_clearly() {
    let lab = common::start(None);
    let bin = env!("CARGO_BIN_EXE_autoenroll");
    let out = std::process::Command::new(bin)
        .args(["templates", "--json", "--policy"])
        .arg(lab.lab.policy_path("web01"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ecdsa = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["cn"] == "ServerAuthECDSA")
        .unwrap();
    assert_eq!(ecdsa["eligible"], true);
    assert!(ecdsa["reason"].is_null());
    let web = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["cn"] == "WebServer")
        .unwrap();
    assert_eq!(web["eligible"], false);
    assert!(
        web["reason"]
            .as_str()
            .unwrap()
            .starts_with("subject supplied in request")
    );

    // The human table names every template.
    let out = std::process::Command::new(bin)
        .args(["templates", "--policy"])
        .arg(lab.lab.policy_path("alice"))
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("InteractiveUser") && table.contains("skip: needs user interaction"),
        "{table}"
    );

    // An unreachable directory: one clear line, exit code 1.
    let policy = lab.lab.dir.join("down.toml");
    let text = std::fs::read_to_string(lab.lab.policy_path("ws01")).unwrap();
    let text = text.replace(&lab.lab.url, "ldap://127.0.0.1:1");
    std::fs::write(&policy, text).unwrap();
    let out = std::process::Command::new(bin)
        .args(["templates", "--policy"])
        .arg(&policy)
        .current_dir(Path::new("/"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ldap://127.0.0.1:1"), "{err}");
}

/// The lab's LDAPS listener serves the same forest as StartTLS, with the same
/// certificate: the verdicts over both transports are equal, and a client
/// that trusts another CA is refused on LDAPS too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldaps_serves_what_starttls_serves() {
    let lab = common::start(None);
    assert!(lab.lab.ldaps_url.starts_with("ldaps://127.0.0.1:"));
    let base = lab.policy("ws01");
    let over_ldaps = with_directory(&base, |d| {
        d.url = lab.lab.ldaps_url.clone();
        d.starttls = false;
    });
    let mut dir = Directory::connect(&over_ldaps.directory).await.unwrap();
    let snap = dir
        .snapshot("CN=ws01,CN=Computers,DC=corp,DC=example")
        .await
        .unwrap();
    dir.close().await;
    let starttls = lab.snapshot("ws01").await;
    assert_eq!(snap.templates, starttls.templates);
    assert_eq!(snap.account, starttls.account);
    assert!(!snap.templates.is_empty());

    let other_ca = lab.tmp.path().join("other-ca.pem");
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    std::fs::write(&other_ca, params.self_signed(&key).unwrap().pem()).unwrap();
    let untrusted = with_directory(&over_ldaps, |d| d.ca_file = Some(other_ca.clone()));
    let err = Directory::connect(&untrusted.directory)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.starts_with(&lab.lab.ldaps_url), "{err}");
}

/// The change marker of Public Key Services (the CA's cache key and the
/// worker's check) moves when a template the snapshot reads is modified or
/// added: its search is the snapshot's filter on `objectClass`, and must
/// keep finding what the snapshot reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_marker_follows_what_a_snapshot_reads() {
    let lab = common::start(None);
    let policy = lab.policy("ws01");
    let mut dir = Directory::connect(&policy.directory).await.unwrap();
    let pks = dir.naming_contexts().await.unwrap().public_key_services();
    let first = dir.change_marker(&pks).await.unwrap();
    assert!(
        !first.starts_with("0/"),
        "the marker sees no PKI object: {first}"
    );
    assert_eq!(dir.change_marker(&pks).await.unwrap(), first);

    let template = "CN=WorkstationAuth,CN=Certificate Templates,CN=Public Key Services,CN=Services,CN=Configuration,DC=corp,DC=example";
    lab.admin(
        "ldapmodify",
        &format!("dn: {template}\nchangetype: modify\nreplace: displayName\ndisplayName: Workstation Authentication (moved)\n"),
    );
    let after_template = dir.change_marker(&pks).await.unwrap();
    assert_ne!(
        after_template, first,
        "a modified template moves the marker"
    );

    lab.admin(
        "ldapadd",
        &template_variant_ldif("WorkstationAuth", "WorkstationAuthCopy", &[]).unwrap(),
    );
    let after_add = dir.change_marker(&pks).await.unwrap();
    assert_ne!(after_add, after_template, "a new template moves the marker");
}

/// The lab's directory shows a database-wide change value (syncprov's
/// contextCSN, the emulation of AD's highestCommittedUSN), which the CA
/// trusts to skip the change marker while it stands still: it must stand
/// still across reads and binds (a pulse writes nothing) and move with any
/// write, to an account as well as to a template.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_marker_moves_with_every_write_and_only_then() {
    use autoenroll::directory::server_marker::ServerMarkerSource;
    let lab = common::start(None);
    let policy = lab.policy("ws01");
    let mut dir = Directory::connect(&policy.directory).await.unwrap();
    let pks = dir.naming_contexts().await.unwrap().public_key_services();
    let source = dir.server_marker_source(&pks).await.unwrap();
    assert!(
        matches!(&source, ServerMarkerSource::ContextCsn { naming_context }
            if naming_context.eq_ignore_ascii_case("DC=corp,DC=example")),
        "{source:?}"
    );
    let first = dir.server_marker(&source).await.unwrap().expect("a value");

    // Reads and binds: a whole snapshot, on this and on another connection.
    dir.snapshot("ws01$").await.unwrap();
    let mut other = Directory::connect(&policy.directory).await.unwrap();
    other.snapshot("ws01$").await.unwrap();
    assert_eq!(
        dir.server_marker(&source).await.unwrap().as_ref(),
        Some(&first)
    );

    lab.admin(
        "ldapmodify",
        "dn: CN=WS01,CN=Computers,DC=corp,DC=example\nchangetype: modify\nreplace: description\ndescription: moved\n",
    );
    let after_account = dir.server_marker(&source).await.unwrap().expect("a value");
    assert_ne!(after_account, first, "a modified account moves it");

    let template = "CN=WorkstationAuth,CN=Certificate Templates,CN=Public Key Services,CN=Services,CN=Configuration,DC=corp,DC=example";
    lab.admin(
        "ldapmodify",
        &format!("dn: {template}\nchangetype: modify\nreplace: displayName\ndisplayName: moved\n"),
    );
    let after_template = other
        .server_marker(&source)
        .await
        .unwrap()
        .expect("a value");
    assert_ne!(
        after_template, after_account,
        "a modified template moves it"
    );
}
