//! The Prometheus text file written after each pulse, for node_exporter's
//! textfile collector: certificate expiry and renewal times, health, the last
//! pulse and its result, and counts of outcomes and failures.

use std::fmt::Write as _;
use std::path::Path;

use super::events::Event;
use super::report::{Outcome, Report};
use crate::planner::CertificateStatus;
use crate::store::fsutil::Fs;
use crate::store::{State, StoreSnapshot};

/// Label values escaped per the exposition format (backslash, quote, newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes a family's HELP and TYPE lines (all ours are gauges) and returns
/// its name.
fn family(out: &mut String, name: &str, help: &str) -> String {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
    name.to_string()
}

/// A SCEP profile's certificate, as the metrics file shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScepMetric {
    pub profile: String,
    pub thumbprint: String,
    pub not_after: time::OffsetDateTime,
    pub renew_at: Option<time::OffsetDateTime>,
    /// As `status` names it (`planner::scep::health`).
    pub health: &'static str,
}

/// The SCEP health's severity on the templates' scale (`Health::severity`).
fn scep_severity(health: &str) -> u8 {
    match health {
        "healthy" | "replaced" => 0,
        "due" => 1,
        "orphaned" => 2,
        _ => 3,
    }
}

/// The SCEP profiles' families: expiry, renewal time and health by profile.
fn render_scep(out: &mut String, scep: &[ScepMetric]) {
    let expiry = family(
        out,
        "autoenroll_scep_certificate_not_after_seconds",
        "Expiry of each certificate of a SCEP profile (Unix time).",
    );
    for m in scep {
        let _ = writeln!(
            out,
            "{expiry}{{profile=\"{}\",thumbprint=\"{}\"}} {}",
            label(&m.profile),
            m.thumbprint,
            m.not_after.unix_timestamp()
        );
    }
    let renew = family(
        out,
        "autoenroll_scep_certificate_renew_at_seconds",
        "When each certificate of a SCEP profile renews (Unix time).",
    );
    for m in scep {
        if let Some(at) = m.renew_at {
            let _ = writeln!(
                out,
                "{renew}{{profile=\"{}\",thumbprint=\"{}\"}} {}",
                label(&m.profile),
                m.thumbprint,
                at.unix_timestamp()
            );
        }
    }
    let health = family(
        out,
        "autoenroll_scep_certificate_health",
        "Health of each certificate of a SCEP profile: 0 healthy, higher is worse.",
    );
    for m in scep {
        let _ = writeln!(
            out,
            "{health}{{profile=\"{}\",thumbprint=\"{}\",health=\"{}\"}} {}",
            label(&m.profile),
            m.thumbprint,
            m.health,
            scep_severity(m.health)
        );
    }
}

/// The metrics text.
pub fn render(
    report: &Report,
    statuses: &[CertificateStatus],
    store: &StoreSnapshot,
    scep: &[ScepMetric],
    state: &State,
) -> String {
    let mut out = String::new();
    let expiry = family(
        &mut out,
        "autoenroll_certificate_not_after_seconds",
        "Expiry of each managed certificate (Unix time).",
    );
    for c in &store.certificates {
        if c.info.template.is_none() {
            continue;
        }
        let template = c.meta.template.clone().unwrap_or_default();
        let _ = writeln!(
            out,
            "{expiry}{{template=\"{}\",thumbprint=\"{}\"}} {}",
            label(&template),
            c.info.thumbprint,
            c.info.not_after.unix_timestamp()
        );
    }
    let renew = family(
        &mut out,
        "autoenroll_certificate_renew_at_seconds",
        "When each certificate renews (Unix time).",
    );
    for s in statuses {
        if let (Some(th), Some(at)) = (&s.thumbprint, s.renew_at) {
            let _ = writeln!(
                out,
                "{renew}{{template=\"{}\",thumbprint=\"{th}\"}} {}",
                label(s.template.as_deref().unwrap_or("")),
                at.unix_timestamp()
            );
        }
    }
    let health = family(
        &mut out,
        "autoenroll_certificate_health",
        "Health of each certificate or pending request: 0 healthy, higher is worse (see `autoenroll status`).",
    );
    for s in statuses {
        let _ = writeln!(
            out,
            "{health}{{template=\"{}\",thumbprint=\"{}\",health=\"{}\"}} {}",
            label(s.template.as_deref().unwrap_or("")),
            s.thumbprint
                .as_deref()
                .or(s.request.as_deref())
                .unwrap_or(""),
            s.health.name(),
            s.health.severity()
        );
    }
    let last = family(
        &mut out,
        "autoenroll_last_pulse_timestamp_seconds",
        "When the last pulse ran (Unix time).",
    );
    let _ = writeln!(out, "{last} {}", report.at.unix_timestamp());
    let ok = family(
        &mut out,
        "autoenroll_last_pulse_success",
        "1 if the last pulse had no failure.",
    );
    let _ = writeln!(out, "{ok} {}", u8::from(report.ok));
    let outcomes = family(
        &mut out,
        "autoenroll_last_pulse_outcomes",
        "Outcomes of the last pulse, by event.",
    );
    for e in Event::ALL {
        let n = report.count(e);
        if n > 0 {
            let _ = writeln!(
                out,
                "{outcomes}{{event=\"{}\",event_id=\"{}\"}} {n}",
                e.name(),
                e.id()
            );
        }
    }
    let failures = family(
        &mut out,
        "autoenroll_template_consecutive_failures",
        "Consecutive failed requests per template (the backoff counts them).",
    );
    for f in &state.failures {
        let _ = writeln!(
            out,
            "{failures}{{template=\"{}\"}} {}",
            label(&f.template),
            f.count
        );
    }
    render_scep(&mut out, scep);
    out
}

/// Writes the file after a pulse; a file that cannot be written is an
/// outcome of the pulse ([`Event::MetricsFailed`], no template, logged as a
/// warning): not fatal, like a failed hook (nothing is undone, no template
/// backs off, the exit code is the certificates'). Monitoring that reads this
/// file would otherwise go on showing the last pulse that could write it,
/// with nobody told.
pub fn write_reported(
    path: &Path,
    report: &mut Report,
    statuses: &[CertificateStatus],
    store: &StoreSnapshot,
    scep: &[ScepMetric],
    state: &State,
) {
    if let Err(e) = write(path, report, statuses, store, scep, state) {
        report.note(failed(path, &e));
    }
}

/// The outcome of a metrics file that could not be written: reported, not
/// fatal (the certificates are what the pulse is for), like a failed hook.
pub fn failed(path: &Path, problem: &str) -> Outcome {
    Outcome::new(
        Event::MetricsFailed,
        None,
        None,
        format!("metrics file {}: {problem}", path.display()),
    )
}

/// Writes the file atomically (node_exporter must never read half of it).
/// No temporary file is left behind when it cannot be (see `Fs::replace`).
pub fn write(
    path: &Path,
    report: &Report,
    statuses: &[CertificateStatus],
    store: &StoreSnapshot,
    scep: &[ScepMetric],
    state: &State,
) -> Result<(), String> {
    let text = render(report, statuses, store, scep, state);
    Fs::default()
        .replace(path, text.as_bytes(), 0o644)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planner::Plan;
    use time::macros::datetime;

    /// The findings: a metrics file that could not be renamed into place
    /// left a `.<name>.tmp-*` file at every pulse, and the failure was only
    /// a log line. Here a folder is in the way of the file.
    #[test]
    fn a_metrics_file_that_cannot_be_written_is_reported_and_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("autoenroll.prom");
        std::fs::create_dir_all(path.join("in-the-way")).unwrap();
        let mut report = Report::new("ws01$", datetime!(2026-05-01 12:00 UTC), &Plan::default());
        assert!(report.ok);
        for _ in 0..3 {
            write_reported(
                &path,
                &mut report,
                &[],
                &StoreSnapshot::default(),
                &[],
                &State::default(),
            );
        }
        let left: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("autoenroll.prom")]);
        assert!(report.ok);
        assert_eq!(report.count(Event::MetricsFailed), 3);
        assert!(
            report.outcomes[0].message.contains("metrics file")
                && report.outcomes[0].message.contains("autoenroll.prom"),
            "{:?}",
            report.outcomes
        );
    }

    #[test]
    fn a_metrics_file_is_replaced_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("autoenroll.prom");
        std::fs::write(&path, "old\n").unwrap();
        let mut report = Report::new("ws01$", datetime!(2026-05-01 12:00 UTC), &Plan::default());
        write_reported(
            &path,
            &mut report,
            &[],
            &StoreSnapshot::default(),
            &[ScepMetric {
                profile: "wi\"fi".into(),
                thumbprint: "ab".repeat(20),
                not_after: datetime!(2027-05-01 12:00 UTC),
                renew_at: None,
                health: "due",
            }],
            &State::default(),
        );
        assert!(report.ok, "{:?}", report.outcomes);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("autoenroll_last_pulse_success 1"), "{text}");
        assert!(
            text.contains(&format!(
                "autoenroll_scep_certificate_health{{profile=\"wi\\\"fi\",thumbprint=\"{}\",health=\"due\"}} 1",
                "ab".repeat(20)
            )),
            "{text}"
        );
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    }
}
