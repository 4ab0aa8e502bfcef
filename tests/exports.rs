//! Exports services can use, read by tools we did not write: a PKCS#12
//! bundle that `openssl pkcs12` opens (with a password from a file, and
//! with an empty one), PEM files with the owner, group and mode asked for
//! (the tests run as root; a group is made for them), an NSS database that
//! `certutil` lists; and the system trust update, run by Debian's own
//! `update-ca-certificates` on folders of the test, when the roots change.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use autoenroll::policy::Policy;
use autoenroll::pulse::{Event, PulseOptions, Report, pulse};
use common::{TestCa, TestLab, current, run, start_time, store};
use time::OffsetDateTime;

const MINUTE: Duration = Duration::from_secs(60);
const GROUP: &str = "autoenroll-test";

/// ws01's lab policy with `top` before its first table and `tail` after
/// everything, written beside it as `name` (relative paths are then the
/// lab's).
fn policy_with(lab: &TestLab, name: &str, top: &str, tail: &str) -> Policy {
    let text = std::fs::read_to_string(lab.lab.policy_path("ws01")).unwrap();
    let path = lab.lab.dir.join(name);
    std::fs::write(&path, format!("{top}\n{text}\n{tail}\n")).unwrap();
    Policy::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

async fn pulse_at(policy: &Policy, ca: &TestCa, at: OffsetDateTime) -> Report {
    ca.clock.set(at);
    pulse(policy, PulseOptions::at(at))
        .await
        .expect("pulse runs")
}

fn outcomes(report: &Report, event: Event) -> Vec<String> {
    report
        .outcomes
        .iter()
        .filter(|o| o.event == event)
        .map(|o| o.message.clone())
        .collect()
}

fn secret(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// The DER of the current certificate of `template` in the store.
fn held_der(lab: &TestLab, policy: &Policy, template: &str) -> Vec<u8> {
    let th = current(lab, template).pop().expect("a current certificate");
    let pem = std::fs::read(policy.store.join("my").join(th).join("cert.pem")).unwrap();
    let pem = String::from_utf8(pem).unwrap();
    use base64::Engine as _;
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

/// `openssl <args>`'s stdout.
fn openssl(args: &[&str]) -> String {
    run(Command::new("openssl").args(args))
}

/// The group the tests give files to (made when missing).
fn test_group() -> u32 {
    if nix::unistd::Group::from_name(GROUP).unwrap().is_none() {
        let out = Command::new("groupadd").args(["-f", GROUP]).output();
        assert!(
            out.as_ref().is_ok_and(|o| o.status.success()),
            "groupadd {GROUP} (the tests run as root): {out:?}"
        );
    }
    nix::unistd::Group::from_name(GROUP)
        .unwrap()
        .expect("the test group")
        .gid
        .as_raw()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkcs12_pem_owner_group_mode_and_nss_database() {
    let lab = common::start(None);
    let gid = test_group();
    let nobody = nix::unistd::User::from_name("nobody")
        .unwrap()
        .expect("user nobody")
        .uid
        .as_raw();
    let dir = lab.lab.dir.clone();
    secret(&dir.join("secrets/bundle.secret"), "bundle password\n");
    let policy = policy_with(
        &lab,
        "exports.toml",
        "",
        &format!(
            r#"
[templates.WorkstationAuth.export]
certificate = "out/ws.pem"
chain = {{ path = "out/ws-chain.pem", mode = "0444" }}
key = {{ path = "out/ws.key", owner = "nobody", group = "{GROUP}", mode = "0640" }}
pkcs12 = {{ path = "out/ws.p12", group = "{GROUP}", mode = "0640" }}
pkcs12_password_file = "secrets/bundle.secret"

[templates.ShortLived.export]
pkcs12 = "out/short.p12"
nss_db = "out/nssdb"
nss_nickname = "Short Lived"
"#
        ),
    );
    let t0 = start_time();
    let ca = lab.start_ca(t0).await;
    let r = pulse_at(&policy, &ca, t0).await;
    assert!(r.ok, "{r:#?}");
    assert!(outcomes(&r, Event::HookFailed).is_empty(), "{r:#?}");
    let out = dir.join("out");

    // Owner, group and mode as asked; the defaults otherwise.
    let meta = |name: &str| std::fs::metadata(out.join(name)).unwrap();
    let key = meta("ws.key");
    assert_eq!(
        (key.uid(), key.gid(), key.mode() & 0o7777),
        (nobody, gid, 0o640)
    );
    let bundle = meta("ws.p12");
    assert_eq!(
        (bundle.uid(), bundle.gid(), bundle.mode() & 0o7777),
        (0, gid, 0o640)
    );
    assert_eq!(meta("ws.pem").mode() & 0o7777, 0o644);
    assert_eq!(meta("ws-chain.pem").mode() & 0o7777, 0o444);
    assert_eq!(meta("short.p12").mode() & 0o7777, 0o600);
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    // OpenSSL opens the bundle with the password from the file: the
    // certificate is the store's, the key is its key, the chain is there.
    let held = held_der(&lab, &policy, "WorkstationAuth");
    let p12 = out.join("ws.p12").display().to_string();
    let pass = format!("file:{}", dir.join("secrets/bundle.secret").display());
    let leaf = dir.join("leaf.der");
    let leaf_pem = openssl(&[
        "pkcs12", "-in", &p12, "-passin", &pass, "-nokeys", "-clcerts",
    ]);
    std::fs::write(dir.join("leaf.pem"), &leaf_pem).unwrap();
    openssl(&[
        "x509",
        "-in",
        &dir.join("leaf.pem").display().to_string(),
        "-outform",
        "DER",
        "-out",
        &leaf.display().to_string(),
    ]);
    assert_eq!(std::fs::read(&leaf).unwrap(), held);
    let cacerts = openssl(&[
        "pkcs12", "-in", &p12, "-passin", &pass, "-nokeys", "-cacerts",
    ]);
    assert!(cacerts.contains("BEGIN CERTIFICATE"), "no chain: {cacerts}");
    let key_pem = openssl(&[
        "pkcs12", "-in", &p12, "-passin", &pass, "-nocerts", "-noenc",
    ]);
    std::fs::write(dir.join("bundle-key.pem"), &key_pem).unwrap();
    let from_key = openssl(&[
        "pkey",
        "-in",
        &dir.join("bundle-key.pem").display().to_string(),
        "-pubout",
    ]);
    let from_cert = openssl(&[
        "x509",
        "-in",
        &dir.join("leaf.pem").display().to_string(),
        "-pubkey",
        "-noout",
    ]);
    assert_eq!(from_key, from_cert, "the bundle's key is the certificate's");
    let wrong = Command::new("openssl")
        .args(["pkcs12", "-in", &p12, "-passin", "pass:wrong", "-nokeys"])
        .output()
        .unwrap();
    assert!(
        !wrong.status.success(),
        "a wrong password must fail the MAC"
    );
    // The PEM key export is the same key.
    let exported_key = openssl(&[
        "pkey",
        "-in",
        &out.join("ws.key").display().to_string(),
        "-pubout",
    ]);
    assert_eq!(exported_key, from_cert);

    // No password file: an empty password, as some consumers need.
    let short_p12 = out.join("short.p12").display().to_string();
    let short = openssl(&[
        "pkcs12", "-in", &short_p12, "-passin", "pass:", "-nokeys", "-clcerts",
    ]);
    assert!(short.contains("BEGIN CERTIFICATE"));

    // The NSS database: certutil lists the certificate under its nickname,
    // with its key.
    let db = format!("sql:{}", out.join("nssdb").display());
    let in_nss = |nick: &str| {
        Command::new("certutil")
            .args(["-L", "-d", &db, "-n", nick, "-r"])
            .output()
            .unwrap()
    };
    let first_short = held_der(&lab, &policy, "ShortLived");
    assert_eq!(in_nss("Short Lived").stdout, first_short);
    let keys = run(Command::new("certutil").args(["-K", "-d", &db]));
    assert_eq!(
        keys.lines().filter(|l| l.starts_with('<')).count(),
        1,
        "{keys}"
    );

    // ShortLived renewed: the bundle and the database hold the new
    // certificate, and the database only it (the old one and its key gone).
    let r = pulse_at(&policy, &ca, t0 + 49 * MINUTE).await;
    assert!(r.ok, "{r:#?}");
    assert_eq!(outcomes(&r, Event::Replaced).len(), 1, "{r:#?}");
    let renewed = held_der(&lab, &policy, "ShortLived");
    assert_ne!(renewed, first_short);
    assert_eq!(in_nss("Short Lived").stdout, renewed);
    let listed = run(Command::new("certutil").args(["-L", "-d", &db]));
    assert_eq!(listed.matches("Short Lived").count(), 1, "{listed}");
    let keys = run(Command::new("certutil").args(["-K", "-d", &db]));
    assert_eq!(
        keys.lines().filter(|l| l.starts_with('<')).count(),
        1,
        "{keys}"
    );
    let short = openssl(&[
        "pkcs12", "-in", &short_p12, "-passin", "pass:", "-nokeys", "-clcerts",
    ]);
    std::fs::write(dir.join("short.pem"), &short).unwrap();
    let short_der = openssl_der(&dir.join("short.pem"));
    assert_eq!(short_der, renewed);
}

fn openssl_der(pem: &Path) -> Vec<u8> {
    let der = pem.with_extension("der");
    openssl(&[
        "x509",
        "-in",
        &pem.display().to_string(),
        "-outform",
        "DER",
        "-out",
        &der.display().to_string(),
    ]);
    std::fs::read(der).unwrap()
}

/// An export that cannot be written (a folder where the file goes) is
/// reported, the others are written, and the certificate is installed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_that_cannot_be_written_is_reported() {
    let lab = common::start(None);
    let out = lab.lab.dir.join("out");
    std::fs::create_dir_all(out.join("ws.pem").join("in-the-way")).unwrap();
    let policy = policy_with(
        &lab,
        "exports.toml",
        "",
        r#"
[templates.WorkstationAuth.export]
certificate = "out/ws.pem"
key = { path = "out/ws.key", group = "no-such-group-here" }
chain = "out/chain.pem"
"#,
    );
    let t0 = start_time();
    let ca = lab.start_ca(t0).await;
    let r = pulse_at(&policy, &ca, t0).await;
    let failed = outcomes(&r, Event::HookFailed);
    assert_eq!(failed.len(), 2, "{r:#?}");
    assert!(failed.iter().any(|m| m.contains("ws.pem")), "{failed:?}");
    assert!(
        failed.iter().any(|m| m.contains("no-such-group-here")),
        "{failed:?}"
    );
    // As a failed hook: reported, not fatal (README, events: 1203).
    assert!(r.ok);
    assert!(out.join("chain.pem").is_file());
    assert!(!out.join("ws.key").exists());
    assert_eq!(current(&lab, "WorkstationAuth").len(), 1);
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Item 4: roots into the system. Debian's update-ca-certificates, run on
/// folders of the test (its --localcertsdir is the anchors folder), builds
/// a bundle with the directory's root; it runs again only when the folder
/// changed, and a root no longer published leaves the folder and the
/// bundle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_system_trust_update_runs_when_the_roots_change() {
    let lab = common::start(None);
    let dir = lab.lab.dir.clone();
    let sys = dir.join("system");
    for d in ["certs", "hooks", "share"] {
        std::fs::create_dir_all(sys.join(d)).unwrap();
    }
    std::fs::write(sys.join("ca-certificates.conf"), "").unwrap();
    let tool = [
        "/usr/sbin/update-ca-certificates",
        "/sbin/update-ca-certificates",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
    .expect("update-ca-certificates (Debian's ca-certificates)");
    let command = format!(
        "echo run >> {log} && {tool} --certsconf {s}/ca-certificates.conf --certsdir {s}/share \
         --localcertsdir \"$AUTOENROLL_TRUST_ANCHORS_DIR\" --etccertsdir {s}/certs --hooksdir {s}/hooks",
        log = dir.join("runs.log").display(),
        tool = tool.display(),
        s = sys.display(),
    );
    std::fs::write(dir.join("update.sh"), &command).unwrap();
    let policy = policy_with(
        &lab,
        "trust.toml",
        &format!(
            "trust_anchors_dir = \"anchors\"\ntrust_update = \"sh {}\"",
            dir.join("update.sh").display()
        ),
        "",
    );
    let runs = || {
        std::fs::read_to_string(dir.join("runs.log"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    let bundle =
        || std::fs::read_to_string(sys.join("certs/ca-certificates.crt")).unwrap_or_default();
    let t0 = start_time();
    let ca = lab.start_ca(t0).await;

    let r = pulse_at(&policy, &ca, t0).await;
    assert!(r.ok, "{r:#?}");
    assert_eq!(runs(), 1, "{r:#?}");
    assert!(
        outcomes(&r, Event::TrustUpdated)
            .iter()
            .any(|m| m.contains("system trust updated")),
        "{r:#?}"
    );
    let root_pem = autoenroll_root_pem(&ca);
    assert!(
        bundle().contains(root_pem.trim()),
        "the lab root in the bundle"
    );

    // Nothing changed: not run again.
    let r = pulse_at(&policy, &ca, t0 + MINUTE).await;
    assert!(r.ok, "{r:#?}");
    assert_eq!(runs(), 1);

    // A root of ours that the directory no longer publishes (planted, and
    // put in the bundle by the same tool): removed from the folder and,
    // by the update that follows, from the bundle.
    let (stale, _) = common::foreign_certificate("Retired Root");
    let info = autoenroll::pki::CertificateInfo::from_der(&stale).unwrap();
    let stale_pem = pem("CERTIFICATE", &stale);
    let stale_path = dir
        .join("anchors")
        .join(format!("autoenroll-{}.crt", info.thumbprint));
    std::fs::write(&stale_path, &stale_pem).unwrap();
    run(Command::new("sh")
        .arg(dir.join("update.sh"))
        .env("AUTOENROLL_TRUST_ANCHORS_DIR", dir.join("anchors")));
    assert!(bundle().contains(stale_pem.trim()));
    let r = pulse_at(&policy, &ca, t0 + 2 * MINUTE).await;
    assert!(r.ok, "{r:#?}");
    assert_eq!(runs(), 3);
    assert!(!stale_path.exists());
    assert!(
        !bundle().contains(stale_pem.trim()),
        "the retired root left the bundle"
    );
    assert!(bundle().contains(root_pem.trim()));

    // A failing update is reported (hook_failed, not fatal, as a hook).
    std::fs::write(dir.join("update.sh"), "echo cannot >&2; exit 3").unwrap();
    std::fs::write(&stale_path, &stale_pem).unwrap();
    let r = pulse_at(&policy, &ca, t0 + 3 * MINUTE).await;
    let failed = outcomes(&r, Event::HookFailed);
    assert!(failed.iter().any(|m| m.contains("cannot")), "{r:#?}");
    let _ = store(&lab);
}

fn autoenroll_root_pem(ca: &TestCa) -> String {
    pem("CERTIFICATE", &ca.ca_certificate)
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
