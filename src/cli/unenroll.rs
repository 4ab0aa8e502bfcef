//! `unenroll`: offboarding a context (`pulse::unenroll`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use time::OffsetDateTime;

use autoenroll::model::Context;
use autoenroll::pulse::unenroll::{UnenrollError, UnenrollOptions, UnenrollReport, unenroll};

use super::error::{CliError, config, setup, store};
use super::table::Table;
use super::{load_policy, print_json, runtime};

/// The policy of `--context` (default machine), unless one is given.
pub fn policy_path(given: Option<PathBuf>, context: Context) -> PathBuf {
    super::pulse::policy_path(given, context == Context::User)
}

pub fn run(
    policy: &Path,
    context: Context,
    revoke: bool,
    dry_run: bool,
    json: bool,
) -> Result<ExitCode, CliError> {
    let policy = load_policy(policy)?;
    if policy.context != context {
        return Err(config(format!(
            "{}: the policy is for the {} context, not {context}",
            policy.source.display(),
            policy.context
        )));
    }
    let options = UnenrollOptions {
        revoke,
        dry_run,
        now: OffsetDateTime::now_utc(),
        timeout: Duration::from_secs(60),
    };
    let report = runtime()?
        .block_on(unenroll(&policy, options))
        .map_err(|e| match e {
            UnenrollError::Store(e) => store(e),
            e @ UnenrollError::Refused(_) => setup(e),
        })?;
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

fn print_report(report: &UnenrollReport) {
    if report.dry_run {
        outln!("dry run: nothing was changed; unenroll would:");
        let mut t = Table::new(["STEP", "TEMPLATE/PROFILE", "CERTIFICATE", "SERIAL", "PATH"]);
        for s in &report.steps {
            t.row([
                s.kind.to_string(),
                s.template
                    .clone()
                    .or_else(|| s.profile.as_ref().map(|p| format!("scep:{p}")))
                    .unwrap_or_default(),
                s.certificate.clone().unwrap_or_default(),
                s.serial.clone().unwrap_or_default(),
                s.path
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            ]);
        }
        out!("{t}");
        return;
    }
    let mut t = Table::new(["EVENT", "ID", "TEMPLATE/PROFILE", "CERTIFICATE", "DETAIL"]);
    for o in &report.outcomes {
        t.row([
            o.event.name().to_string(),
            o.event_id.to_string(),
            o.template
                .clone()
                .or_else(|| o.profile.as_ref().map(|p| format!("scep:{p}")))
                .unwrap_or_default(),
            o.thumbprint.clone().unwrap_or_default(),
            o.message.clone(),
        ]);
    }
    out!("{t}");
    outln!(
        "unenrolled the {} context{}",
        report.context,
        if report.ok {
            ""
        } else {
            "; not everything could be done (above)"
        }
    );
}
