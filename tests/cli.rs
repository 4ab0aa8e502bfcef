//! The command line's output paths with hostile or broken input: JSON error
//! objects for `--json` commands that fail, and tables that hold values far
//! beyond what a terminal shows (a 200,000-character template display name in
//! the directory, a huge template name planted in the CA's database).

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn autoenroll(args: &[&str], config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_autoenroll"))
        .args(args)
        .arg(config)
        .env("AUTOENROLL_LOG", "warn")
        .output()
        .expect("autoenroll runs")
}

/// The single JSON error object a failing `--json` command prints on stdout.
fn json_error(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let value: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON object ({e}): {stdout:?}; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(value["error"].is_string(), "{value}");
    assert_eq!(value["exit_code"], 1, "{value}");
    assert_eq!(out.status.code(), Some(1), "{value}");
    value
}

fn no_panic(out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn ca_init_json_with_a_bad_config_prints_a_json_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ca.toml");
    std::fs::write(&config, "name = \"corp-CA\"\ncolour = \"blue\"\n").unwrap();
    let out = autoenroll(&["ca", "init", "--json", "--config"], &config);
    let e = json_error(&out);
    assert_eq!(e["kind"], "config");
    let text = e["error"].as_str().unwrap();
    assert!(text.contains("ca.toml: line 2"), "{text}");
    assert!(text.contains("colour"), "{text}");

    // A missing file too, and `ca requests --json` the same way.
    let missing = dir.path().join("missing.toml");
    let e = json_error(&autoenroll(&["ca", "init", "--json", "--config"], &missing));
    assert_eq!(e["kind"], "config");
    let e = json_error(&autoenroll(
        &["ca", "requests", "--json", "--config"],
        &missing,
    ));
    assert_eq!(e["kind"], "config");
}

#[test]
fn json_commands_print_a_json_error_with_its_kind() {
    let dir = tempfile::tempdir().unwrap();
    // A directory that refuses connections (nothing listens on the port).
    let port = common::free_port();
    let policy = dir.path().join("machine.toml");
    std::fs::write(
        &policy,
        format!(
            "context = \"machine\"\naccount = \"ws01$\"\nstore = \"store\"\n[directory]\n\
             url = \"ldap://127.0.0.1:{port}\"\ntimeout = \"5s\"\nbind = \"sasl_external\"\n"
        ),
    )
    .unwrap();
    for args in [
        &["templates", "--json", "--policy"][..],
        &["plan", "--json", "--policy"],
        &["status", "--json", "--policy"],
        &["pulse", "--json", "--policy"],
    ] {
        let e = json_error(&autoenroll(args, &policy));
        assert_eq!(e["kind"], "directory", "{args:?}: {e}");
    }
    // A malformed command-line value.
    let e = json_error(&autoenroll(
        &["plan", "--json", "--at", "tomorrow", "--policy"],
        &policy,
    ));
    assert_eq!(e["kind"], "usage");
    // A policy that does not validate.
    std::fs::write(&policy, "context = \"machine\"\n").unwrap();
    let e = json_error(&autoenroll(&["status", "--json", "--policy"], &policy));
    assert_eq!(e["kind"], "config");
    // Without --json, stdout stays empty and stderr has the line.
    let out = autoenroll(&["status", "--policy"], &policy);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("machine.toml"));
}

#[test]
fn a_closed_stdout_ends_a_command_without_a_panic() {
    // The read end is gone before the command writes: every write fails
    // with a broken pipe, which the standard println! turns into a panic.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_autoenroll"))
        .args(["sddl", "encode", "O:BAG:BAD:(A;;RPWP;;;AU)"])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    no_panic(&out);
    assert_eq!(out.status.code(), Some(1));
}

/// Every line of a table stays within what the printer allows, whatever the
/// cells hold.
fn assert_bounded(stdout: &str) {
    for line in stdout.lines() {
        assert!(
            line.chars().count() < 8 * 1024,
            "a line of {} characters",
            line.chars().count()
        );
    }
}

#[test]
fn templates_prints_a_200000_character_display_name_cut() {
    let lab = common::start(None);
    let huge = "D".repeat(200_000);
    lab.admin(
        "ldapmodify",
        &format!(
            "dn: CN=WorkstationAuth,CN=Certificate Templates,CN=Public Key Services,CN=Services,CN=Configuration,DC=corp,DC=example\nchangetype: modify\nreplace: displayName\ndisplayName: {huge}\n"
        ),
    );
    let policy = lab.lab.policy_path("ws01");
    let out = autoenroll(&["templates", "--policy"], &policy);
    no_panic(&out);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_bounded(&stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("WorkstationAuth "))
        .unwrap_or_else(|| panic!("no WorkstationAuth line: {stdout}"));
    assert!(line.contains("DDD…"), "{line}");

    // JSON keeps the whole value.
    let out = autoenroll(&["templates", "--json", "--policy"], &policy);
    no_panic(&out);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["cn"] == "WorkstationAuth")
        .unwrap();
    assert_eq!(row["display_name"].as_str().map(str::len), Some(200_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_requests_prints_a_huge_planted_template_name_cut() {
    let lab = common::start(None);
    let mut ca = lab.start_ca(time::OffsetDateTime::now_utc()).await;
    let huge_template = "T".repeat(200_000);
    let huge_reason = "R".repeat(70_000);
    {
        let db = ca.authority.db();
        let (record, _) = db
            .submit(
                autoenroll::ca::db::NewRequest {
                    requester: "CN=ws01,CN=Computers,DC=corp,DC=example",
                    requester_sid: None,
                    template: Some(&huge_template),
                    request: b"not a request",
                    renewal_of: None,
                    authentication: None,
                },
                time::OffsetDateTime::now_utc(),
            )
            .unwrap();
        db.record_denied(
            record.id,
            0x8009_4800,
            &huge_reason,
            time::OffsetDateTime::now_utc(),
        )
        .unwrap();
    }
    ca.stop().await;
    let config = lab.lab.ca_config_path();
    let out = autoenroll(&["ca", "requests", "--config"], &config);
    no_panic(&out);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_bounded(&stdout);
    assert!(stdout.contains("TTT…"), "{stdout}");
    assert!(stdout.trim_end().ends_with("RRR…"), "{stdout}");

    let out = autoenroll(&["ca", "requests", "--json", "--config"], &config);
    no_panic(&out);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = rows.as_array().unwrap().last().unwrap().clone();
    assert_eq!(row["template"].as_str().map(str::len), Some(200_000));
}
