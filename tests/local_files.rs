//! A pulse against bad local files: a corrupt `state.toml` and a metrics
//! file that cannot be written. Neither stops the pulse; both are reported.

mod common;

use autoenroll::pulse::{Event, PulseOptions, pulse};
use autoenroll::store::Store;
use common::start_time;

/// Names in a folder, sorted.
fn names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The findings: a corrupt `state.toml` stopped `pulse` until a person
/// repaired it, and a metrics file that could not be written was only a log
/// line (the pulse said `ok`) and left a temporary file at every pulse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_state_and_an_unwritable_metrics_file_are_reported_not_fatal() {
    let lab = common::start(None);
    let t0 = start_time();
    let _ca = lab.start_ca(t0).await;
    let mut policy = lab.policy("ws01");
    let metrics_dir = lab.tmp.path().join("textfile");
    let metrics = metrics_dir.join("autoenroll.prom");
    // A folder where the file should go: it can never be renamed into place.
    std::fs::create_dir_all(metrics.join("in-the-way")).unwrap();
    policy.metrics_file = Some(metrics.clone());

    let store = Store::open(&policy.store).unwrap();
    let corrupt = "failures = [ { template = \"WorkstationAuth\", count = \"many\n";
    std::fs::write(policy.store.join("state.toml"), corrupt).unwrap();
    // Status and plan carry on with an empty state meanwhile.
    assert_eq!(store.read_state().unwrap(), Default::default());

    let report = pulse(&policy, PulseOptions::at(t0))
        .await
        .expect("pulse runs");
    let set_aside: Vec<_> = report
        .outcomes
        .iter()
        .filter(|o| o.message.contains("state.toml could not be read"))
        .collect();
    assert_eq!(set_aside.len(), 1, "{report:#?}");
    assert!(!set_aside[0].message.contains("many"), "{set_aside:?}");
    assert_eq!(
        std::fs::read_to_string(policy.store.join("state.toml.unreadable")).unwrap(),
        corrupt
    );
    assert!(report.count(Event::Installed) > 0, "{report:#?}");

    // Reported as its own event and, like a failed hook, not a failure.
    assert!(
        report.outcomes.iter().all(|o| !o.event.is_failure()),
        "{report:#?}"
    );
    let unwritten: Vec<_> = report
        .outcomes
        .iter()
        .filter(|o| o.event == Event::MetricsFailed)
        .collect();
    assert_eq!(unwritten.len(), 1, "{report:#?}");
    assert!(
        unwritten[0].message.contains("metrics file") && unwritten[0].template.is_none(),
        "{unwritten:?}"
    );
    assert!(report.ok);
    assert_eq!(names(&metrics_dir), ["autoenroll.prom"]);
    let state = store.read_state().unwrap();
    assert_eq!(state.last_pulse_ok, Some(true), "{state:?}");

    // Once the way is clear the file is written.
    std::fs::remove_dir_all(&metrics).unwrap();
    let report = pulse(&policy, PulseOptions::at(t0))
        .await
        .expect("pulse runs");
    assert!(report.ok, "{report:#?}");
    let text = std::fs::read_to_string(&metrics).unwrap();
    assert!(text.contains("autoenroll_last_pulse_success 1"), "{text}");
    assert_eq!(names(&metrics_dir), ["autoenroll.prom"]);
    assert_eq!(store.read_state().unwrap().last_pulse_ok, Some(true));
}

/// The finding: a pulse that could not read the directory wrote no metrics,
/// so monitoring went on showing the last good pulse
/// (`autoenroll_last_pulse_success 1`) while every pulse failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pulse_that_cannot_read_the_directory_says_so_in_the_metrics() {
    let lab = common::start(None);
    let t0 = start_time();
    let _ca = lab.start_ca(t0).await;
    let mut policy = lab.policy("ws01");
    let metrics = lab.tmp.path().join("autoenroll.prom");
    policy.metrics_file = Some(metrics.clone());
    let report = pulse(&policy, PulseOptions::at(t0))
        .await
        .expect("pulse runs");
    assert!(report.ok, "{report:#?}");
    let good = std::fs::read_to_string(&metrics).unwrap();
    assert!(good.contains("autoenroll_last_pulse_success 1"), "{good}");

    // The directory is gone: the pulse fails and changes no certificate...
    policy.directory.url = format!("ldap://127.0.0.1:{}", common::free_port());
    let later = t0 + time::Duration::minutes(5);
    let err = pulse(&policy, PulseOptions::at(later)).await.unwrap_err();
    assert!(err.to_string().contains("nothing was changed"), "{err}");
    // ... and the metrics say so, with the certificates still listed.
    let text = std::fs::read_to_string(&metrics).unwrap();
    assert!(text.contains("autoenroll_last_pulse_success 0"), "{text}");
    assert!(
        text.contains(&format!(
            "autoenroll_last_pulse_timestamp_seconds {}",
            later.unix_timestamp()
        )),
        "{text}"
    );
    assert!(text.contains("event=\"pulse_failed\""), "{text}");
    assert!(
        text.contains("autoenroll_certificate_not_after_seconds{template=\"WorkstationAuth\""),
        "{text}"
    );
    let store = Store::open(&policy.store).unwrap();
    assert_eq!(store.read_state().unwrap().last_pulse_ok, Some(false));
}
