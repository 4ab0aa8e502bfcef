//! One pass of autoenrollment: lock the store, finish what a previous pass
//! left half-done, snapshot the directory, the store and the CRLs, plan, carry
//! out each action crash-safely, sync trust, and report.
//!
//! Crash safety comes from the order of writes (the store's operations are
//! each atomic): the new key and request are on disk before anything is sent;
//! the issued certificate is installed before the one it replaces is
//! archived; a request interrupted anywhere is found in `request/` by the next
//! pulse and sent again (the CA answers a repeated request with its first
//! answer) or retrieved.
//!
//! Architecture invariant: nothing here decides what to do; the planner does.
//! Nothing below this module knows about the command line.

pub mod events;
mod execute;
pub mod export;
pub mod metrics;
mod nss;
pub mod observe;
pub mod report;
mod saved_snapshot;
pub mod scep;
pub mod system_trust;
pub mod unenroll;

use std::time::Duration;

use time::OffsetDateTime;

use crate::directory::saved::SavedSnapshot;
use crate::directory::{Directory, DirectoryError};
use crate::planner;
use crate::policy::{Bind, Policy, read_password_file};
use crate::store::{Store, StoreError, TrustKind};
use crate::wstep::UsernameToken;

pub use events::Event;
pub use observe::Observation;
pub use report::{Outcome, Report};

/// How to run a pulse.
#[derive(Debug, Clone, Copy)]
pub struct PulseOptions {
    /// Plan and report, change nothing.
    pub dry_run: bool,
    /// The time the pulse acts at (the system clock, or a test's).
    pub now: OffsetDateTime,
    /// Limit of each exchange with a CA.
    pub ca_timeout: Duration,
    /// Limit of all the exchanges with CAs of one pulse together: the store
    /// lock is held meanwhile, so a slow or hung CA must not hold it for a
    /// time that grows with the number of templates. Once it is spent, the
    /// remaining requests fail (and stay in the store for the next pulse).
    pub ca_budget: Duration,
}

impl PulseOptions {
    pub fn at(now: OffsetDateTime) -> PulseOptions {
        PulseOptions {
            dry_run: false,
            now,
            ca_timeout: Duration::from_secs(60),
            ca_budget: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PulseError {
    #[error("the directory cannot be read, nothing was changed: {0}")]
    Directory(#[from] DirectoryError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Setup(String),
}

/// Runs one pulse for the policy's account.
pub async fn pulse(policy: &Policy, options: PulseOptions) -> Result<Report, PulseError> {
    let now = options.now;
    let named = observe::policy_account(policy).map_err(PulseError::Setup)?;
    events::log(
        Event::PulseStarted,
        None,
        None,
        &format!(
            "pulse for {} ({})",
            named.as_deref().unwrap_or("the Kerberos identity"),
            policy.context
        ),
    );
    // The directory first: if it cannot be read, nothing is touched, not
    // even the store's recovery (no destructive step on partial knowledge).
    let DirectoryRead {
        snapshot,
        searches,
        account,
        saved,
        reused,
        earlier,
    } = match read_directory(policy, named.as_deref(), now).await {
        Ok(s) => s,
        Err(e) => {
            events::log(Event::PulseFailed, None, None, &e.to_string());
            if !options.dry_run && policy.store.exists() {
                record_failed_pulse(
                    policy,
                    named.as_deref().unwrap_or("the Kerberos identity"),
                    now,
                    &e.to_string(),
                );
            }
            return Err(e.into());
        }
    };
    // An account known only from the bind is named as the directory spells it.
    let account = match named {
        Some(_) => account,
        None => snapshot.account.dn.clone(),
    };

    if options.dry_run {
        let (store_snapshot, state) = if policy.store.exists() {
            let store = Store::open(&policy.store)?;
            (store.snapshot()?, store.read_state()?)
        } else {
            Default::default()
        };
        let observed = Observation::new(policy, snapshot, store_snapshot, state, now);
        let plan = planner::plan(&observed.input(now));
        let mut report = Report::dry_run(&account, now, &plan, &observed);
        let (scep_actions, scep_wake) = observed.scep_plan(policy, now);
        report.planned.extend(scep::planned(&scep_actions));
        report.next_wake = earliest(report.next_wake, scep_wake);
        report.directory_searches = searches;
        report.directory_reused = reused;
        note_directory_problems(&observed, &mut report);
        return Ok(report);
    }

    let store = Store::open(&policy.store)?;
    // Waits for a pulse of the worker (or another manual one) to finish: the
    // second then sees what the first did and never enrolls twice.
    let root = policy.store.clone();
    let lock = tokio::task::spawn_blocking(move || Store::open(&root)?.lock())
        .await
        .map_err(|e| PulseError::Setup(format!("waiting for the store lock: {e}")))??;
    let recovered = store.recover(&lock)?;
    saved_snapshot::save(&store, &lock, saved, earlier.as_ref());
    let observed = Observation::new(
        policy,
        snapshot,
        store.snapshot()?,
        store.read_state()?,
        now,
    );
    let plan = planner::plan(&observed.input(now));
    let mut report = Report::new(&account, now, &plan);
    let (scep_actions, _) = observed.scep_plan(policy, now);
    report.planned.extend(scep::planned(&scep_actions));
    report.directory_searches = searches;
    report.directory_reused = reused;
    note_directory_problems(&observed, &mut report);
    for r in recovered {
        report.note(Outcome::new(
            Event::Skipped,
            None,
            None,
            format!("recovered: {r}"),
        ));
    }

    // Trust first: the new certificates' chains are then in place when hooks run.
    let intermediates = observed.intermediates();
    for (kind, certs) in [
        (TrustKind::Roots, &observed.directory.roots),
        (TrustKind::NtAuth, &observed.directory.ntauth),
        (TrustKind::Intermediates, &intermediates),
    ] {
        match store.write_trust(&lock, kind, certs) {
            Ok(change) if !change.is_empty() => report.note(Outcome::new(
                Event::TrustUpdated,
                None,
                None,
                format!(
                    "{}: {} added, {} removed",
                    kind.dir_name(),
                    change.added.len(),
                    change.removed.len()
                ),
            )),
            Ok(_) => {}
            Err(e) => report.note(Outcome::new(
                Event::Failed,
                None,
                None,
                format!("trust {}: {e}", kind.dir_name()),
            )),
        }
    }
    if let Some(anchors) = &policy.trust_anchors_dir {
        let changed = export::write_anchors(anchors, &observed.directory.roots, &mut report);
        if let (true, Some(update)) = (changed, &policy.trust_update) {
            system_trust::update(update, anchors, &mut report).await;
        }
    }

    let credentials = credentials(policy).await.map_err(PulseError::Setup)?;
    let mut executor = execute::Executor::new(
        policy,
        &store,
        &lock,
        &observed,
        credentials.clone(),
        options,
    )?;
    for action in &plan.actions {
        executor.run(action, &mut report).await;
    }
    let mut state = executor.finish(now, &report);
    // The SCEP profiles, after the templates, through the same store.
    if !scep_actions.is_empty() {
        let scep_executor = scep::ScepExecutor {
            policy,
            store: &store,
            lock: &lock,
            held: &observed.scep,
            variables: scep::variables(Some(&observed.directory.account)),
            tls_roots: observed.directory.roots.clone(),
            credentials: &credentials,
            now,
            timeout: options.ca_timeout,
        };
        for action in &scep_actions {
            scep_executor.run(action, &mut report).await;
        }
    }
    // What the pulse left, planned again: its next wake is the renewal of a
    // certificate just installed, the end of a backoff just started, the
    // next poll of a request just pended.
    let after = observed.with_store(store.snapshot()?, state.clone());
    report.finish(&planner::plan(&after.input(now)));
    report.next_wake = earliest(report.next_wake, after.scep_plan(policy, now).1);
    // The metrics file before the state: a file that cannot be written is an
    // outcome of this pulse, which the state then records.
    if let Some(path) = &policy.metrics_file {
        let status = planner::assess(&after.input(now));
        let scep_metrics = scep::metrics(policy, &after, now);
        metrics::write_reported(
            path,
            &mut report,
            &status,
            &after.store,
            &scep_metrics,
            &state,
        );
    }
    state.last_pulse_ok = Some(report.ok);
    store.write_state(&lock, &state)?;
    events::log(
        if report.ok {
            Event::PulseFinished
        } else {
            Event::PulseFailed
        },
        None,
        None,
        &report.summary(),
    );
    drop(lock);
    Ok(report)
}

/// The earlier of two due times.
pub fn earliest(a: Option<OffsetDateTime>, b: Option<OffsetDateTime>) -> Option<OffsetDateTime> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Reports what the directory holds that cannot be used, as warnings: each
/// unusable template entry (its DN, the attribute and the problem; the
/// planner keeps its certificates and enrolls nothing for it) and each CRL
/// that is ignored because it cannot be read or verified.
fn note_directory_problems(observed: &Observation, report: &mut Report) {
    for u in &observed.directory.unusable {
        report.note(Outcome::new(
            Event::TemplateUnusable,
            u.cn.as_deref(),
            None,
            format!("template entry {} is unusable: {}", u.dn, u.problem),
        ));
    }
    for p in &observed.crl_problems {
        report.note(Outcome::new(
            Event::CrlIgnored,
            None,
            None,
            format!("ignored, revokes nothing: {p}"),
        ));
    }
}

/// What a pulse read of the directory.
struct DirectoryRead {
    snapshot: crate::directory::DirectorySnapshot,
    /// The LDAP searches it took.
    searches: usize,
    /// The account it is of (the policy's, else the identity the bind
    /// authenticated).
    account: String,
    /// Its entries, for the store.
    saved: SavedSnapshot,
    /// Whether Public Key Services was the saved snapshot's, not read again.
    reused: bool,
    /// The saved snapshot the read was offered (to write it only if changed).
    earlier: Option<saved_snapshot::Known>,
}

/// Reads the directory for the account `named` (else the bind's identity),
/// time-stamping its entries `now`. The store's saved snapshot is offered
/// for reuse: while its markers stand, Public Key Services is not read again.
async fn read_directory(
    policy: &Policy,
    named: Option<&str>,
    now: OffsetDateTime,
) -> Result<DirectoryRead, DirectoryError> {
    let earlier = saved_snapshot::earlier(&policy.store);
    let mut dir = Directory::connect(&policy.directory).await?;
    let read = match dir.account_for(named) {
        Ok(account) => dir
            .snapshot_with_entries(&account, earlier.as_ref().map(|k| &*k.saved))
            .await
            .map(|s| (s, account)),
        Err(e) => Err(e),
    };
    let searches = dir.searches();
    let url = dir.url().to_string();
    dir.close().await;
    let (read, account) = read?;
    if read.reused {
        tracing::debug!("Public Key Services unchanged by its markers: not read again");
    }
    Ok(DirectoryRead {
        snapshot: read.snapshot,
        searches,
        account,
        // The markers vouch for reused entries as of now, as a read would.
        saved: SavedSnapshot {
            taken_at: now,
            url,
            markers: read.markers,
            raw: read.raw,
        },
        reused: read.reused,
        earlier,
    })
}

/// A pulse that could not read the directory still says so in the state
/// (for `status`) and in the metrics file (for monitoring: without it, the
/// file would go on saying the last pulse succeeded), without touching
/// certificates. The metrics then hold the store's certificates and the
/// failure; no health, which needs the directory.
fn record_failed_pulse(policy: &Policy, account: &str, now: OffsetDateTime, why: &str) {
    let Ok(store) = Store::open(&policy.store) else {
        return;
    };
    let Ok(Some(lock)) = store.try_lock() else {
        return;
    };
    if let Ok(mut state) = store.read_state() {
        state.last_pulse = Some(now);
        state.last_pulse_ok = Some(false);
        if let Some(path) = &policy.metrics_file {
            let mut report = Report::new(account, now, &planner::Plan::default());
            report.note(Outcome::new(
                Event::PulseFailed,
                None,
                None,
                why.to_string(),
            ));
            report.ok = false;
            let held = store.snapshot().unwrap_or_default();
            metrics::write_reported(path, &mut report, &[], &held, &[], &state);
        }
        let _ = store.write_state(&lock, &state);
    }
}

/// What the pulse authenticates to CAs with.
#[derive(Clone, Default)]
pub(crate) struct CaCredentials {
    /// The WS-Security UsernameToken of a simple bind: the same account and
    /// password.
    pub token: Option<UsernameToken>,
    /// The Kerberos credentials of a Kerberos bind, for HTTP Negotiate.
    pub kerberos: Option<crate::krb::Credentials>,
}

impl CaCredentials {
    /// Whether a new (unsigned) request can be authenticated at all.
    pub fn any(&self) -> bool {
        self.token.is_some() || self.kerberos.is_some()
    }

    pub fn have(&self) -> crate::enroll::route::Have {
        crate::enroll::route::Have {
            kerberos: self.kerberos.is_some(),
            password: self.token.is_some(),
        }
    }
}

/// The credentials of the policy's bind: a simple bind's account and
/// password (a UsernameToken), a Kerberos bind's keytab or ticket cache
/// (HTTP Negotiate). With SASL EXTERNAL there is neither: only renewals
/// (signed by the current certificate) can be sent.
pub(crate) async fn credentials(policy: &Policy) -> Result<CaCredentials, String> {
    match &policy.directory.bind {
        Bind::Simple {
            user,
            password_file,
        } => Ok(CaCredentials {
            token: Some(UsernameToken {
                username: user.clone(),
                password: read_password_file(password_file)?,
            }),
            kerberos: None,
        }),
        Bind::Kerberos(source) => {
            let source = source.clone();
            let acquired =
                tokio::task::spawn_blocking(move || crate::krb::Credentials::acquire(&source))
                    .await
                    .map_err(|e| format!("the Kerberos thread failed: {e}"))?
                    .map_err(|e| e.to_string())?;
            Ok(CaCredentials {
                token: None,
                kerberos: Some(acquired),
            })
        }
        Bind::SaslExternal => Ok(CaCredentials::default()),
    }
}
