//! `status` with the directory stopped: it answers from the store and the
//! directory snapshot the last pulse kept (`directory-snapshot.json`, 0600),
//! says so on its first line and in `--json`, and keeps its exit codes;
//! `plan` refuses; a damaged snapshot is a clear error, never a panic.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use autoenroll::pulse::{PulseOptions, pulse};
use serde_json::Value;

fn autoenroll(args: &[&str], policy: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_autoenroll"))
        .args(args)
        .arg("--policy")
        .arg(policy)
        .output()
        .unwrap()
}

fn json(out: &Output) -> Value {
    assert!(out.status.code().is_some(), "killed: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_answers_from_the_last_snapshot_while_the_directory_is_stopped() {
    let lab = common::start(None);
    let t0 = common::start_time();
    let _ca = lab.start_ca(t0).await;
    let policy = lab.policy("ws01");
    let policy_file = lab.lab.policy_path("ws01");
    let report = pulse(&policy, PulseOptions::at(t0)).await.unwrap();
    assert!(report.ok, "{report:#?}");

    // The pulse kept the snapshot: private, and no secret of the policy in it.
    let saved = policy.store.join("directory-snapshot.json");
    let mode = std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{}", saved.display());
    let bytes = std::fs::read(&saved).unwrap();
    let autoenroll::policy::Bind::Simple { password_file, .. } = &policy.directory.bind else {
        panic!("lab policies bind simply");
    };
    let password = autoenroll::policy::read_password_file(password_file).unwrap();
    assert!(!password.is_empty());
    assert!(!String::from_utf8_lossy(&bytes).contains(password.as_str()));

    let live_out = autoenroll(&["status", "--json"], &policy_file);
    let live = json(&live_out);
    assert_eq!(live["directory"], "reachable");
    let live_text = autoenroll(&["status"], &policy_file);
    assert!(!text(&live_text).starts_with("directory unreachable"));

    // The directory goes away.
    let common::TestLab { lab: l, tmp } = lab;
    l.stop();

    let out = autoenroll(&["status", "--json"], &policy_file);
    let offline = json(&out);
    assert_eq!(offline["directory"], "unreachable", "{offline:#}");
    let as_of = time::OffsetDateTime::parse(
        offline["as_of"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(as_of, t0, "as_of is the time of the pulse that kept it");
    let why = offline["directory_error"].as_str().unwrap();
    assert!(why.contains("127.0.0.1"), "{why}");
    // The same answer as with the directory, and the same exit code.
    assert_eq!(out.status.code(), live_out.status.code());
    assert_eq!(offline["exit_code"], live["exit_code"]);
    for field in ["account", "context", "certificates", "missing"] {
        assert_eq!(offline[field], live[field], "{field}");
    }
    assert!(!offline["certificates"].as_array().unwrap().is_empty());

    // The table says so on its first line, with the time.
    let out = autoenroll(&["status"], &policy_file);
    let first = text(&out).lines().next().unwrap_or_default().to_string();
    assert!(first.starts_with("directory unreachable"), "{first}");
    assert!(
        first.contains(&offline["as_of"].as_str().unwrap().to_string()),
        "{first}"
    );
    assert_eq!(out.status.code(), live_out.status.code());

    // plan refuses, with the reason.
    let out = autoenroll(&["plan", "--json"], &policy_file);
    let refused = json(&out);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(refused["kind"], "directory");
    let message = refused["error"].as_str().unwrap();
    assert!(
        message.contains("no plan is made without the directory"),
        "{message}"
    );

    // A damaged snapshot: an error naming the file, exit 1, no panic, and
    // nothing of the file's content quoted.
    for damage in [
        b"{\"format\": 1, \"secret-looking\": ".to_vec(),
        b"\x00\xff\xfe garbage".to_vec(),
        b"{\"format\": 9}".to_vec(),
        String::from_utf8(bytes.clone())
            .unwrap()
            .replacen("\"dn\": \"", "\"dn\": 7, \"x\": \"", 1)
            .into_bytes(),
    ] {
        std::fs::write(&saved, &damage).unwrap();
        let out = autoenroll(&["status", "--json"], &policy_file);
        let e = json(&out);
        assert_eq!(out.status.code(), Some(1), "{e:#}");
        assert_eq!(e["kind"], "store", "{e:#}");
        let m = e["error"].as_str().unwrap();
        assert!(m.contains("directory-snapshot.json"), "{m}");
        assert!(m.contains("cannot be read"), "{m}");
        assert!(
            !m.contains("secret-looking") && !m.contains("garbage"),
            "{m}"
        );
    }
    // An account entry the decoders refuse is as clear.
    let broken = String::from_utf8(bytes.clone()).unwrap().replacen(
        "\"objectsid\": [",
        "\"objectsid\": [\"AAAA\", ",
        1,
    );
    std::fs::write(&saved, broken).unwrap();
    let e = json(&autoenroll(&["status", "--json"], &policy_file));
    assert_eq!(e["kind"], "store", "{e:#}");
    assert!(e["error"].as_str().unwrap().contains("objectSid"), "{e:#}");

    // A link in its place is not followed.
    let elsewhere = tmp.path().join("elsewhere.json");
    std::fs::write(&elsewhere, &bytes).unwrap();
    std::fs::remove_file(&saved).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &saved).unwrap();
    let e = json(&autoenroll(&["status", "--json"], &policy_file));
    assert_eq!(e["kind"], "store", "{e:#}");
    assert!(e["error"].as_str().unwrap().contains("link"), "{e:#}");

    // No snapshot at all: the directory's error, and that none was kept.
    std::fs::remove_file(&saved).unwrap();
    let out = autoenroll(&["status", "--json"], &policy_file);
    let e = json(&out);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(e["kind"], "directory", "{e:#}");
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("no pulse kept a directory snapshot"),
        "{e:#}"
    );
    drop(tmp);
}
