//! `plan` and `status`: what a pulse would do now or at a given time, and the
//! health of every certificate. Both read the directory and the store and change
//! nothing. When the directory cannot be read, `status` answers from the store
//! and the last directory snapshot a pulse kept there (saying so), and `plan`
//! refuses: a plan on old knowledge could be acted on.

use std::path::Path;
use std::process::ExitCode;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use autoenroll::planner::{self, ActionKind, Health, PlanInput};
use autoenroll::policy::Policy;
use autoenroll::store::{HeldCertificate, State, Store, StoreSnapshot};

use super::error::{CliError, ErrorKind, directory, store, usage};
use super::table::Table;
use super::{load_policy, policy_account, print_json, read_directory};
use autoenroll::pulse::observe::Observation;

/// Everything a plan is made of, read once.
struct Gathered {
    policy: Policy,
    observed: Observation,
    /// Where the directory's side came from.
    source: Source,
}

/// The directory's side of a plan or status.
enum Source {
    /// Read just now.
    Live,
    /// The directory could not be read (`why`); this is the snapshot the
    /// last pulse that read it kept, taken at `as_of`.
    Saved { as_of: OffsetDateTime, why: String },
}

/// What `gather` does when the directory cannot be read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Offline {
    /// Fail, saying why no answer is given without it.
    Refuse,
    /// Use the snapshot the last pulse kept in the store.
    UseSaved,
}

/// The snapshot the last pulse kept, for a directory that failed with `e`.
fn saved_snapshot(
    policy: &Policy,
    e: CliError,
) -> Result<(autoenroll::directory::DirectorySnapshot, Source), CliError> {
    let none = |e: &CliError| {
        directory(format!(
            "{}; and no pulse kept a directory snapshot in the store {} to answer from",
            e.message,
            policy.store.display()
        ))
    };
    if !policy.store.exists() {
        return Err(none(&e));
    }
    let s = Store::open(&policy.store).map_err(store)?;
    let Some(bytes) = s.read_directory_snapshot().map_err(store)? else {
        return Err(none(&e));
    };
    let file = policy.store.join("directory-snapshot.json");
    let saved = autoenroll::directory::saved::SavedSnapshot::parse(&bytes).map_err(|p| {
        store(format!(
            "the directory cannot be read ({}), and the saved snapshot {} is unusable: {p}",
            e.message,
            file.display()
        ))
    })?;
    let snapshot = saved.raw.decode().map_err(|p| {
        store(format!(
            "the directory cannot be read ({}), and the saved snapshot {} is unusable: {p}",
            e.message,
            file.display()
        ))
    })?;
    Ok((
        snapshot,
        Source::Saved {
            as_of: saved.taken_at,
            why: e.message,
        },
    ))
}

fn gather(policy_path: &Path, now: OffsetDateTime, offline: Offline) -> Result<Gathered, CliError> {
    let policy = load_policy(policy_path)?;
    let account = policy_account(&policy)?;
    let (snapshot, source) = match read_directory(&policy, account.as_deref()) {
        Ok(s) => (s, Source::Live),
        Err(e) if e.kind == ErrorKind::Directory => match offline {
            Offline::UseSaved => saved_snapshot(&policy, e)?,
            Offline::Refuse => {
                return Err(directory(format!(
                    "{}; no plan is made without the directory (`autoenroll status` answers from the snapshot the last pulse kept)",
                    e.message
                )));
            }
        },
        Err(e) => return Err(e),
    };
    // Reading never creates the store: a host that never pulsed holds nothing.
    let (store, state) = if policy.store.exists() {
        let s = Store::open(&policy.store).map_err(store)?;
        (s.snapshot().map_err(store)?, s.read_state().map_err(store)?)
    } else {
        (StoreSnapshot::default(), State::default())
    };
    let observed = Observation::new(&policy, snapshot, store, state, now);
    for p in &observed.crl_problems {
        tracing::warn!("ignoring a CRL from the directory: {p}");
    }
    Ok(Gathered {
        policy,
        observed,
        source,
    })
}

impl Gathered {
    /// The store entry a status line is about.
    fn held(&self, s: &planner::CertificateStatus) -> Option<&HeldCertificate> {
        let th = s.thumbprint.as_deref()?;
        self.observed
            .store
            .certificates
            .iter()
            .find(|c| c.info.thumbprint == th)
    }

    fn input(&self, now: OffsetDateTime) -> PlanInput<'_> {
        self.observed.input(now)
    }
}

fn parse_time(at: Option<&str>) -> Result<OffsetDateTime, CliError> {
    match at {
        None => Ok(OffsetDateTime::now_utc()),
        Some(t) => OffsetDateTime::parse(t, &Rfc3339).map_err(|e| {
            usage(format!(
                "--at {t:?}: expected an RFC 3339 time such as 2027-01-31T12:00:00Z ({e})"
            ))
        }),
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

fn short(thumb: &Option<String>) -> String {
    thumb
        .as_deref()
        .map(|t| t.chars().take(12).collect())
        .unwrap_or_default()
}

pub fn plan(policy_path: &Path, at: Option<&str>, json: bool) -> Result<ExitCode, CliError> {
    let now = parse_time(at)?;
    let g = gather(policy_path, now, Offline::Refuse)?;
    let plan = planner::plan(&g.input(now));
    let (scep, scep_wake) = g.observed.scep_plan(&g.policy, now);
    let next_wake = autoenroll::pulse::earliest(plan.next_wake, scep_wake);
    if json {
        let mut value = serde_json::to_value(&plan)
            .map_err(|e| super::error::internal(format!("the plan as JSON: {e}")))?;
        value["next_wake"] = serde_json::json!(next_wake.map(rfc3339));
        value["scep"] = scep
            .iter()
            .map(|a| {
                serde_json::json!({
                    "action": a.kind(),
                    "profile": a.profile(),
                    "certificate": a.certificate(),
                    "reason": a.reason(),
                    "reason_code": a.code(),
                    "renew_at": match a {
                        planner::scep::ScepAction::Keep { renew_at, .. } => Some(rfc3339(*renew_at)),
                        _ => None,
                    },
                })
            })
            .collect();
        print_json(&value)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "plan for {} ({} context) at {}",
        g.observed.directory.account.dn,
        g.policy.context,
        rfc3339(now)
    );
    let mut t = Table::new(["ACTION", "TEMPLATE", "CERTIFICATE", "REASON"]);
    for a in &plan.actions {
        t.row([
            a.kind.name().to_string(),
            a.template.clone().unwrap_or_default(),
            short(&a.certificate),
            a.reason.clone(),
        ]);
    }
    for a in &scep {
        t.row([
            a.kind().to_string(),
            format!("scep:{}", a.profile()),
            short(&a.certificate().map(str::to_string)),
            a.reason(),
        ]);
    }
    out!("{t}");
    match next_wake {
        Some(w) => outln!("next wake: {}", rfc3339(w)),
        None => outln!("next wake: none (nothing changes until the directory or the store does)"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Exit codes of `status`, by severity (the README documents them).
/// A SCEP profile's certificate as `status` shows it.
struct ScepStatus<'g> {
    profile: String,
    held: &'g HeldCertificate,
    health: &'static str,
    renew_at: Option<OffsetDateTime>,
}

fn scep_status(g: &Gathered, now: OffsetDateTime) -> Vec<ScepStatus<'_>> {
    let (actions, _) = g.observed.scep_plan(&g.policy, now);
    let views = autoenroll::pulse::scep::held(&g.observed.scep, &g.observed.revocations);
    g.observed
        .scep
        .certificates
        .iter()
        .zip(views)
        .map(|(held, view)| {
            let (health, renew_at) = planner::scep::health(&actions, &view, now);
            ScepStatus {
                profile: view.profile.clone(),
                held,
                health,
                renew_at,
            }
        })
        .collect()
}

/// The worse of two status exit codes, in `exit_code`'s order (5, 3, 2, 4, 0).
fn worse(a: u8, b: u8) -> u8 {
    let rank = |c: u8| match c {
        5 => 4,
        3 => 3,
        2 => 2,
        4 => 1,
        _ => 0,
    };
    if rank(b) > rank(a) { b } else { a }
}

/// The exit codes of `exit_code` for SCEP profiles' certificates.
fn scep_exit_code(scep: &[ScepStatus<'_>], missing: &[String]) -> u8 {
    if scep.iter().any(|s| s.health == "expired") {
        3
    } else if !missing.is_empty() {
        2
    } else if scep.iter().any(|s| s.health == "due") {
        4
    } else {
        0
    }
}

fn exit_code(health: &[Health], missing: bool) -> u8 {
    if health.contains(&Health::KeyMismatch) {
        5
    } else if health.contains(&Health::Expired) {
        3
    } else if missing {
        2
    } else if health.contains(&Health::Due) {
        4
    } else {
        0
    }
}

pub fn status(policy_path: &Path, json: bool) -> Result<ExitCode, CliError> {
    let now = OffsetDateTime::now_utc();
    let g = gather(policy_path, now, Offline::UseSaved)?;
    let input = g.input(now);
    let statuses = planner::assess(&input);
    let plan = planner::plan(&input);
    let missing: Vec<String> = plan
        .actions
        .iter()
        .filter(|a| a.kind == ActionKind::Enroll)
        .filter_map(|a| a.template.clone())
        .collect();
    let healths: Vec<Health> = statuses.iter().map(|s| s.health).collect();
    let scep = scep_status(&g, now);
    let scep_missing: Vec<String> = g
        .policy
        .scep
        .keys()
        .filter(|p| !scep.iter().any(|s| &s.profile == *p))
        .cloned()
        .collect();
    let code = worse(
        exit_code(&healths, !missing.is_empty()),
        scep_exit_code(&scep, &scep_missing),
    );
    if json {
        let certs: Vec<serde_json::Value> = statuses
            .iter()
            .map(|s| {
                let held = g.held(s);
                serde_json::json!({
                    "certificate": s.thumbprint,
                    "request": s.request,
                    "template": s.template,
                    "ca": held.and_then(|h| h.meta.ca.clone()),
                    "subject": held.map(|h| h.info.subject.clone()),
                    "issuer": held.map(|h| h.info.issuer.clone()),
                    "not_before": held.map(|h| rfc3339(h.info.not_before)),
                    "not_after": held.map(|h| rfc3339(h.info.not_after)),
                    "health": s.health.name(),
                    "renew_at": s.renew_at.map(rfc3339),
                    "detail": s.detail,
                })
            })
            .collect();
        let (reachable, as_of, why) = match &g.source {
            Source::Live => ("reachable", now, None),
            Source::Saved { as_of, why } => ("unreachable", *as_of, Some(why.clone())),
        };
        let out = serde_json::json!({
            "directory": reachable,
            "as_of": rfc3339(as_of),
            "directory_error": why,
            "account": g.observed.directory.account.dn,
            "context": g.policy.context.to_string(),
            "certificates": certs,
            "missing": missing,
            "scep": scep.iter().map(|s| serde_json::json!({
                "certificate": s.held.info.thumbprint,
                "profile": s.profile,
                "ca": s.held.meta.ca,
                "subject": s.held.info.subject,
                "issuer": s.held.info.issuer,
                "serial": s.held.info.serial,
                "not_before": rfc3339(s.held.info.not_before),
                "not_after": rfc3339(s.held.info.not_after),
                "health": s.health,
                "renew_at": s.renew_at.map(rfc3339),
            })).collect::<Vec<_>>(),
            "scep_missing": scep_missing,
            "exit_code": code,
        });
        print_json(&out)?;
        return Ok(ExitCode::from(code));
    }
    if let Source::Saved { as_of, why } = &g.source {
        outln!(
            "directory unreachable: answering from the store and the directory as of {} ({why})",
            rfc3339(*as_of)
        );
    }
    outln!(
        "{} ({} context), store {}",
        g.observed.directory.account.dn,
        g.policy.context,
        g.policy.store.display()
    );
    let mut t = Table::new([
        "CERTIFICATE",
        "TEMPLATE",
        "CA",
        "SUBJECT",
        "NOT AFTER",
        "HEALTH",
        "RENEW AT",
        "DETAIL",
    ]);
    for s in &statuses {
        let held = g.held(s);
        t.row([
            short(&s.thumbprint),
            s.template.clone().unwrap_or_default(),
            held.and_then(|h| h.meta.ca.clone()).unwrap_or_default(),
            held.map(|h| h.info.subject.clone()).unwrap_or_default(),
            held.map(|h| rfc3339(h.info.not_after)).unwrap_or_default(),
            s.health.name().to_string(),
            s.renew_at.map(rfc3339).unwrap_or_default(),
            s.detail.clone(),
        ]);
    }
    for s in &scep {
        t.row([
            s.held.info.thumbprint.chars().take(12).collect(),
            format!("scep:{}", s.profile),
            s.held.meta.ca.clone().unwrap_or_default(),
            s.held.info.subject.clone(),
            rfc3339(s.held.info.not_after),
            s.health.to_string(),
            s.renew_at.map(rfc3339).unwrap_or_default(),
            String::new(),
        ]);
    }
    out!("{t}");
    for m in &missing {
        outln!("missing: {m} is eligible and has no certificate");
    }
    for m in &scep_missing {
        outln!("missing: SCEP profile {m} has no certificate");
    }
    Ok(ExitCode::from(code))
}
