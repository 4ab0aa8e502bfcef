//! A renewal killed at each of its steps: the `autoenroll pulse` process
//! kills itself (SIGKILL) before its n-th filesystem change, for every n, then
//! a second pulse runs. Afterwards there is exactly one current certificate
//! per template and no key was lost.
//!
//! The kill switch (`AUTOENROLL_TEST_KILL_AT_STEP`) exists only in builds
//! with the `fault-injection` feature, which the package turns on for its
//! own tests (a dev-dependency on itself): the binary `cargo test` builds
//! for this file has it, a `cargo build --release` one does not (see
//! `the_kill_switch_is_only_in_test_builds`).

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use autoenroll::pulse::{PulseOptions, pulse};
use autoenroll::store::Store;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Private keys anywhere in the store (my/, archive/, request/).
fn keys(root: &Path) -> BTreeSet<Vec<u8>> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == "key.pem") {
                out.insert(std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn copy_dir(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_killed_at_every_step_recovers() {
    let lab = common::start(None);
    let t0 =
        OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp()).unwrap();
    let ca = lab.start_ca(t0).await;
    let policy = lab.policy("ws01");
    let first = pulse(&policy, PulseOptions::at(t0)).await.unwrap();
    assert!(first.ok, "{first:#?}");

    // ShortLived is due at its 80% point (48 minutes).
    let due = t0 + Duration::from_secs(49 * 60);
    ca.clock.set(due);
    let due_text = due.format(&Rfc3339).unwrap();
    let saved = lab.tmp.path().join("saved-store");
    copy_dir(&policy.store, &saved);
    let keys_before = keys(&saved);

    let mut step = 1;
    loop {
        std::fs::remove_dir_all(&policy.store).unwrap();
        copy_dir(&saved, &policy.store);
        let killed = Command::new(env!("CARGO_BIN_EXE_autoenroll"))
            .args(["pulse", "--json", "--now", &due_text, "--policy"])
            .arg(lab.lab.policy_path("ws01"))
            .env(autoenroll::store::fault::KILL_AT_STEP, step.to_string())
            .output()
            .unwrap();
        let died = std::os::unix::process::ExitStatusExt::signal(&killed.status) == Some(9);
        if !died {
            assert!(
                killed.status.success(),
                "step {step}: {}",
                String::from_utf8_lossy(&killed.stderr)
            );
            break;
        }
        // The next pulse completes or rolls back what the killed one left.
        let again = Command::new(env!("CARGO_BIN_EXE_autoenroll"))
            .args(["pulse", "--json", "--now", &due_text, "--policy"])
            .arg(lab.lab.policy_path("ws01"))
            .output()
            .unwrap();
        assert!(
            again.status.success(),
            "step {step}: the pulse after the kill failed: {}{}",
            String::from_utf8_lossy(&again.stdout),
            String::from_utf8_lossy(&again.stderr)
        );
        let store = Store::open(&policy.store).unwrap();
        let snapshot = store.snapshot().unwrap();
        for template in ["ShortLived", "WorkstationAuth"] {
            let current: Vec<_> = snapshot
                .certificates
                .iter()
                .filter(|c| c.meta.template.as_deref() == Some(template))
                .collect();
            assert_eq!(current.len(), 1, "step {step}: {template}: {current:#?}");
            assert_eq!(
                current[0].key,
                autoenroll::store::KeyStatus::Paired,
                "step {step}"
            );
        }
        let shortlived = snapshot
            .certificates
            .iter()
            .find(|c| c.meta.template.as_deref() == Some("ShortLived"))
            .unwrap();
        assert!(
            shortlived.info.not_after > due,
            "step {step}: ShortLived was not renewed"
        );
        let keys_after = keys(&policy.store);
        assert!(
            keys_before.is_subset(&keys_after),
            "step {step}: a key was lost"
        );
        assert!(
            snapshot.unparseable.is_empty(),
            "step {step}: {:?}",
            snapshot.unparseable
        );
        step += 1;
        assert!(step < 200, "the pulse never finished without being killed");
    }
    eprintln!(
        "the renewal pulse was killed at each of its {} steps",
        step - 1
    );
    assert!(step > 5, "only {step} steps: the kill hook does not work");
}

/// Cargo's own resolution, for the host: `-e normal,build` is what `cargo
/// build`, `cargo build --release` and `cargo install` compile (no
/// dev-dependencies), `dev` added is what `cargo test` compiles.
fn features_of_autoenroll(edges: &str) -> String {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "--locked",
            "--prefix",
            "none",
            "-i",
            "autoenroll",
        ])
        .args(["-e", edges])
        .arg("--manifest-path")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The finding: the kill switch was read by every build, so a service
/// whose environment held the variable died on its first write. The code
/// that reads it is compiled only with `fault-injection` (in the build
/// without it, `Faults::from_env` reads no environment: there is no such
/// code, nor the variable's name, in that binary), and cargo enables the
/// feature only where dev-dependencies are used: this test holds cargo's
/// resolution to that. The positive half (the feature is on for tests) keeps
/// it from passing because of a renamed feature.
#[test]
fn the_kill_switch_is_only_in_test_builds() {
    const FEATURE: &str = "autoenroll feature \"fault-injection\"";
    let shipped = features_of_autoenroll("normal,build,features");
    assert!(
        shipped.contains("autoenroll v0.1.0") && !shipped.contains(FEATURE),
        "a build without dev-dependencies enables fault injection:\n{shipped}"
    );
    let tested = features_of_autoenroll("normal,build,dev,features");
    assert!(
        tested.contains(FEATURE),
        "the tests no longer enable fault injection:\n{tested}"
    );
    // And this very binary was built with it (the constant exists only then).
    assert_eq!(
        autoenroll::store::fault::KILL_AT_STEP,
        "AUTOENROLL_TEST_KILL_AT_STEP"
    );
}
