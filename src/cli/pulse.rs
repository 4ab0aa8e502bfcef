//! `pulse` (one pass by hand, like `certutil -pulse`) and `daemon` (the worker).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use autoenroll::policy::Policy;
use autoenroll::pulse::{self, PulseOptions, Report};

use super::error::{CliError, config, internal, setup, usage};
use super::table::Table;
use super::{load_policy, print_json, runtime};

/// The policy file: the one given, else the context's default.
pub fn policy_path(given: Option<PathBuf>, user: bool) -> PathBuf {
    given.unwrap_or_else(|| {
        if user {
            let base = std::env::var_os("XDG_CONFIG_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
                .unwrap_or_else(|| PathBuf::from(".config"));
            base.join("autoenroll/user.toml")
        } else {
            PathBuf::from("/etc/autoenroll/machine.toml")
        }
    })
}

fn load(path: &Path, user: bool) -> Result<Policy, CliError> {
    let policy = load_policy(path)?;
    if user && policy.context != autoenroll::model::Context::User {
        return Err(config(format!(
            "{}: --user needs a policy with context = \"user\"",
            path.display()
        )));
    }
    Ok(policy)
}

/// `--now` is for tests and rehearsals: the pulse acts as if it were then.
fn parse_now(now: Option<&str>) -> Result<OffsetDateTime, CliError> {
    match now {
        None => Ok(OffsetDateTime::now_utc()),
        Some(t) => OffsetDateTime::parse(t, &Rfc3339)
            .map_err(|e| usage(format!("--now {t:?}: expected an RFC 3339 time ({e})"))),
    }
}

pub fn pulse(
    policy: &Path,
    user: bool,
    dry_run: bool,
    json: bool,
    now: Option<&str>,
) -> Result<ExitCode, CliError> {
    let policy = load(policy, user)?;
    let options = PulseOptions {
        dry_run,
        ..PulseOptions::at(parse_now(now)?)
    };
    let report = runtime()?.block_on(pulse::pulse(&policy, options))?;
    if json {
        print_json(&report)?;
    } else {
        print_report(&report);
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_report(report: &Report) {
    if report.dry_run {
        outln!("dry run for {}: nothing was changed", report.account);
        let mut t = Table::new(["WOULD", "TEMPLATE", "CERTIFICATE", "REASON"]);
        for a in &report.planned {
            t.row([
                a.kind.to_string(),
                a.template
                    .clone()
                    .or_else(|| a.profile.as_ref().map(|p| format!("scep:{p}")))
                    .unwrap_or_default(),
                a.certificate.as_deref().map(short).unwrap_or_default(),
                a.reason.clone(),
            ]);
        }
        out!("{t}");
        return;
    }
    if report.outcomes.is_empty() {
        outln!("pulse for {}: nothing to do", report.account);
    } else {
        let mut t = Table::new(["EVENT", "ID", "TEMPLATE", "CERTIFICATE", "DETAIL"]);
        for o in &report.outcomes {
            t.row([
                o.event.name().to_string(),
                o.event_id.to_string(),
                o.template
                    .clone()
                    .or_else(|| o.profile.as_ref().map(|p| format!("scep:{p}")))
                    .unwrap_or_default(),
                o.thumbprint.as_deref().map(short).unwrap_or_default(),
                o.message.clone(),
            ]);
        }
        out!("{t}");
        outln!("{}", report.summary());
    }
    if let Some(at) = report.next_wake {
        outln!(
            "next due: {}",
            at.format(&Rfc3339).unwrap_or_else(|_| at.to_string())
        );
    }
}

fn short(thumbprint: &str) -> String {
    thumbprint.chars().take(12).collect()
}

pub fn daemon(policy: &Path, user: bool) -> Result<ExitCode, CliError> {
    load(policy, user)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| internal(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(autoenroll::worker::run(policy))
        .map_err(setup)?;
    Ok(ExitCode::SUCCESS)
}
