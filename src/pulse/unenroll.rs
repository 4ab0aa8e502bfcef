//! Offboarding (`autoenroll unenroll [--revoke]`): every managed certificate
//! of the context, template and SCEP alike, is archived (never deleted), its
//! pending requests abandoned, the exported copies and the trust anchors
//! autoenroll wrote removed, the store's trust folders emptied and its
//! failure state cleared, so that a later pulse starts as on a new host.
//! With `--revoke`, each certificate is first offered to its CA for
//! revocation with reason cessationOfOperation (RFC 5280 5.3.1, code 5)
//! where the protocol allows it; where it does not (SCEP has no revocation
//! request, stock AD CS lets only its administrators revoke), the serial is
//! reported for the CA's administrator and the command fails.
//!
//! Safe on partial knowledge: what to do is planned first ([`plan`], pure)
//! from a store that reads cleanly, else nothing is done; `--dry-run` shows
//! the plan and stops; a certificate whose revocation was asked for but
//! could not be done is kept in `my/` (a later run asks again).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use super::events::Event;
use super::report::{Outcome, Report};
use crate::enroll::transport::{Https, TransportError};
use crate::pki::revocation::{CESSATION_OF_OPERATION, RevocationRequest, url_for};
use crate::policy::{ExportFile, Policy};
use crate::store::{HeldCertificate, State, Store, StoreSnapshot, TrustKind};

/// How to unenroll.
#[derive(Debug, Clone, Copy)]
pub struct UnenrollOptions {
    pub revoke: bool,
    pub dry_run: bool,
    pub now: OffsetDateTime,
    pub timeout: Duration,
}

/// One step of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// `revoke`, `archive`, `abandon_request`, `remove_export`,
    /// `remove_nss`, `remove_anchors`, `clear_trust`, `reset_state`.
    pub kind: &'static str,
    pub template: Option<String>,
    pub profile: Option<String>,
    pub certificate: Option<String>,
    pub serial: Option<String>,
    pub path: Option<PathBuf>,
}

impl Step {
    fn new(kind: &'static str) -> Step {
        Step {
            kind,
            template: None,
            profile: None,
            certificate: None,
            serial: None,
            path: None,
        }
    }

    fn of(kind: &'static str, c: &HeldCertificate) -> Step {
        Step {
            template: c
                .meta
                .template
                .clone()
                .or_else(|| c.info.template.as_ref().and_then(|t| t.name.clone())),
            profile: c.meta.scep_profile.clone(),
            certificate: Some(c.info.thumbprint.clone()),
            serial: Some(c.info.serial.clone()),
            ..Step::new(kind)
        }
    }
}

/// What `unenroll` did (or, in a dry run, would do).
#[derive(Debug, Clone, Serialize)]
pub struct UnenrollReport {
    pub context: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub dry_run: bool,
    pub revoke: bool,
    pub steps: Vec<Step>,
    pub outcomes: Vec<Outcome>,
    /// Every step done, and every revocation asked for done by the CA.
    pub ok: bool,
}

/// Why nothing was done.
#[derive(Debug, thiserror::Error)]
pub enum UnenrollError {
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("nothing was changed: {0}")]
    Refused(String),
}

/// A certificate autoenroll manages: it has a template extension or was
/// enrolled for a SCEP profile. Foreign certificates are never touched.
fn managed(c: &HeldCertificate) -> bool {
    c.info.template.is_some() || c.meta.scep_profile.is_some()
}

/// The steps, in the order they run: revocations first (before a
/// certificate leaves `my/`), then the store, then what lies outside it.
/// Refused when the store holds entries that cannot be read: whether they
/// are managed cannot be known.
pub fn plan(policy: &Policy, store: &StoreSnapshot, revoke: bool) -> Result<Vec<Step>, String> {
    if let Some(u) = store.unparseable.first() {
        return Err(format!(
            "{} entries of the store cannot be read (first: {}: {}); repair them first",
            store.unparseable.len(),
            u.path.display(),
            u.problem
        ));
    }
    let held: Vec<&HeldCertificate> = store.certificates.iter().filter(|c| managed(c)).collect();
    let mut steps = Vec::new();
    if revoke {
        steps.extend(held.iter().map(|c| Step::of("revoke", c)));
    }
    steps.extend(held.iter().map(|c| Step::of("archive", c)));
    for p in &store.pending {
        steps.push(Step {
            template: p.scep_profile.is_none().then(|| p.template.clone()),
            profile: p.scep_profile.clone(),
            path: Some(p.path.clone()),
            ..Step::new("abandon_request")
        });
    }
    let exports = policy
        .templates
        .iter()
        .filter_map(|(cn, t)| Some((Some(cn), None, t.export.as_ref()?)))
        .chain(
            policy
                .scep
                .iter()
                .filter_map(|(name, p)| Some((None, Some(name), p.export.as_ref()?))),
        );
    for (cn, profile, export) in exports {
        for file in [
            &export.certificate,
            &export.key,
            &export.chain,
            &export.pkcs12,
        ]
        .into_iter()
        .flatten()
        {
            steps.push(Step {
                template: cn.cloned(),
                profile: profile.cloned(),
                path: Some(file.path.clone()),
                ..Step::new("remove_export")
            });
        }
        if let Some(nss) = &export.nss {
            steps.push(Step {
                template: cn.cloned(),
                profile: profile.cloned(),
                path: Some(nss.db.clone()),
                ..Step::new("remove_nss")
            });
        }
    }
    if let Some(dir) = &policy.trust_anchors_dir {
        steps.push(Step {
            path: Some(dir.clone()),
            ..Step::new("remove_anchors")
        });
    }
    steps.push(Step::new("clear_trust"));
    steps.push(Step::new("reset_state"));
    Ok(steps)
}

/// Unenrolls the policy's context.
pub async fn unenroll(
    policy: &Policy,
    options: UnenrollOptions,
) -> Result<UnenrollReport, UnenrollError> {
    let mut report = Report::new(
        &policy.context.to_string(),
        options.now,
        &crate::planner::Plan::default(),
    );
    report.dry_run = options.dry_run;
    let store = Store::open(&policy.store)?;
    let lock = if options.dry_run {
        None
    } else {
        let root = policy.store.clone();
        Some(
            tokio::task::spawn_blocking(move || Store::open(&root)?.lock())
                .await
                .map_err(|e| {
                    UnenrollError::Refused(format!("waiting for the store lock: {e}"))
                })??,
        )
    };
    if let Some(lock) = &lock {
        for r in store.recover(lock)? {
            report.note(Outcome::new(
                Event::Skipped,
                None,
                None,
                format!("recovered: {r}"),
            ));
        }
    }
    let snapshot = store.snapshot()?;
    let steps = plan(policy, &snapshot, options.revoke).map_err(UnenrollError::Refused)?;
    let finish = |report: Report, steps: Vec<Step>| UnenrollReport {
        context: policy.context.to_string(),
        at: options.now,
        dry_run: options.dry_run,
        revoke: options.revoke,
        steps,
        ok: report.ok,
        outcomes: report.outcomes,
    };
    let Some(lock) = lock else {
        return Ok(finish(report, steps));
    };
    // The CAs and credentials revocation needs, before anything changes: a
    // directory that cannot be read stops everything.
    let revoker = if options.revoke
        && steps
            .iter()
            .any(|s| s.kind == "revoke" && s.profile.is_none())
    {
        Some(
            Revoker::new(policy, options.timeout)
                .await
                .map_err(UnenrollError::Refused)?,
        )
    } else {
        None
    };
    let mut kept: Vec<String> = Vec::new();
    for step in &steps {
        let thumbprint = step.certificate.as_deref().unwrap_or("");
        match step.kind {
            "revoke" => {
                let held = snapshot
                    .certificates
                    .iter()
                    .find(|c| c.info.thumbprint == thumbprint);
                let outcome = match (&step.profile, held, &revoker) {
                    (Some(profile), _, _) => super::scep::revocation_needed(
                        profile,
                        thumbprint,
                        step.serial.as_deref().unwrap_or(""),
                    ),
                    (None, Some(c), Some(r)) => r.revoke(c).await,
                    _ => continue,
                };
                if outcome.event == Event::Failed {
                    kept.push(thumbprint.to_string());
                }
                if outcome.event == Event::RevocationNeeded {
                    report.ok = false;
                }
                report.note(outcome);
            }
            "archive" if kept.iter().any(|k| k == thumbprint) => {
                report.note(Outcome::new(
                    Event::Skipped,
                    step.template.as_deref(),
                    Some(thumbprint),
                    "kept in my/: its revocation failed; unenroll --revoke again".into(),
                ));
            }
            "archive" => {
                let outcome = match store.archive(&lock, thumbprint, "unenrolled", options.now) {
                    Ok(()) => Outcome::new(
                        Event::Removed,
                        step.template.as_deref(),
                        Some(thumbprint),
                        "unenrolled: archived".into(),
                    ),
                    Err(e) => Outcome::new(
                        Event::Failed,
                        step.template.as_deref(),
                        Some(thumbprint),
                        format!("archiving: {e}"),
                    ),
                };
                report.note(Outcome {
                    profile: step.profile.clone(),
                    ..outcome
                });
            }
            "abandon_request" => {
                let id = step
                    .path
                    .as_deref()
                    .and_then(Path::file_name)
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if let Err(e) = store.abandon_request(&lock, &id, "unenrolled", options.now) {
                    report.note(Outcome::new(
                        Event::Failed,
                        step.template.as_deref(),
                        None,
                        format!("request {id}: {e}"),
                    ));
                }
            }
            "remove_export" => {
                if let Some(file) = export_file(policy, step) {
                    remove_export(file, step.template.as_deref(), &mut report);
                }
            }
            "remove_nss" => {
                let cn = step
                    .template
                    .clone()
                    .or_else(|| step.profile.clone())
                    .unwrap_or_default();
                let nss = export_of(policy, step).and_then(|e| e.nss.clone());
                if let Some(nss) = nss {
                    match super::nss::remove(&nss, &cn).await {
                        Ok(true) => report.note(Outcome::new(
                            Event::Removed,
                            Some(&cn),
                            None,
                            format!("removed from the NSS database {}", nss.db.display()),
                        )),
                        Ok(false) => {}
                        Err(e) => report.note(Outcome::new(Event::Failed, Some(&cn), None, e)),
                    }
                }
            }
            "remove_anchors" => {
                if let Some(dir) = &policy.trust_anchors_dir
                    && dir.is_dir()
                {
                    let changed = super::export::write_anchors(dir, &[], &mut report);
                    if let (true, Some(update)) = (changed, &policy.trust_update) {
                        super::system_trust::update(update, dir, &mut report).await;
                    }
                }
            }
            "clear_trust" => {
                for kind in [
                    TrustKind::Roots,
                    TrustKind::NtAuth,
                    TrustKind::Intermediates,
                ] {
                    if let Err(e) = store.write_trust(&lock, kind, &[]) {
                        report.note(Outcome::new(
                            Event::Failed,
                            None,
                            None,
                            format!("trust {}: {e}", kind.dir_name()),
                        ));
                    }
                }
            }
            "reset_state" => {
                // Failures and backoffs start over; the last pulse is kept.
                let state = State {
                    last_pulse: store.read_state().ok().and_then(|s| s.last_pulse),
                    ..State::default()
                };
                if let Err(e) = store.write_state(&lock, &state) {
                    report.note(Outcome::new(
                        Event::Failed,
                        None,
                        None,
                        format!("state: {e}"),
                    ));
                }
            }
            _ => {}
        }
    }
    drop(lock);
    Ok(finish(report, steps))
}

/// The export settings of a step's template or profile.
fn export_of<'p>(policy: &'p Policy, step: &Step) -> Option<&'p crate::policy::Export> {
    match (&step.template, &step.profile) {
        (Some(cn), _) => policy
            .templates
            .iter()
            .find(|(k, _)| *k == cn)
            .and_then(|(_, t)| t.export.as_ref()),
        (None, Some(p)) => policy.scep.get(p).and_then(|p| p.export.as_ref()),
        (None, None) => None,
    }
}

/// The export file a `remove_export` step names.
fn export_file<'p>(policy: &'p Policy, step: &Step) -> Option<&'p ExportFile> {
    let e = export_of(policy, step)?;
    [&e.certificate, &e.key, &e.chain, &e.pkcs12]
        .into_iter()
        .flatten()
        .find(|f| Some(&f.path) == step.path.as_ref())
}

/// Removes an exported file autoenroll wrote (a regular file, or a link,
/// which is unlinked itself); a folder or device at the path is left alone
/// and reported.
fn remove_export(file: &ExportFile, template: Option<&str>, report: &mut Report) {
    let path = &file.path;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    let kind = meta.file_type();
    let outcome = if !(kind.is_file() || kind.is_symlink()) {
        Outcome::new(
            Event::Failed,
            template,
            None,
            format!(
                "{} is not a file autoenroll wrote; left alone",
                path.display()
            ),
        )
    } else {
        match std::fs::remove_file(path) {
            Ok(()) => Outcome::new(
                Event::Removed,
                template,
                None,
                format!("exported copy {} removed", path.display()),
            ),
            Err(e) => Outcome::new(
                Event::Failed,
                template,
                None,
                format!("exported copy {}: {e}", path.display()),
            ),
        }
    };
    report.note(outcome);
}

/// Asks CAs to revoke template certificates.
struct Revoker {
    services: Vec<crate::model::EnrollmentService>,
    https: Https,
    credentials: super::CaCredentials,
    timeout: Duration,
}

impl Revoker {
    async fn new(policy: &Policy, timeout: Duration) -> Result<Revoker, String> {
        let named = super::observe::policy_account(policy)?;
        let mut dir = crate::directory::Directory::connect(&policy.directory)
            .await
            .map_err(|e| format!("the directory, to find the CAs: {e}"))?;
        let read = match dir.account_for(named.as_deref()) {
            Ok(account) => dir.snapshot(&account).await,
            Err(e) => Err(e),
        };
        dir.close().await;
        let snapshot = read.map_err(|e| format!("the directory, to find the CAs: {e}"))?;
        let https = Https::new(&snapshot.roots, timeout).map_err(|e| e.to_string())?;
        let credentials = super::credentials(policy).await?;
        Ok(Revoker {
            services: snapshot.services,
            https,
            credentials,
            timeout,
        })
    }

    /// Asks the certificate's CA (its issuer, by the `ca` recorded at
    /// enrollment or by its certificate) to revoke it.
    async fn revoke(&self, c: &HeldCertificate) -> Outcome {
        let template = c.meta.template.as_deref();
        let thumbprint = c.info.thumbprint.as_str();
        let serial = &c.info.serial;
        let service = self.services.iter().find(|s| {
            c.meta
                .ca
                .as_deref()
                .is_some_and(|ca| ca.eq_ignore_ascii_case(&s.cn))
        });
        let Some(service) = service else {
            return administrator(
                template,
                thumbprint,
                serial,
                "its CA is not published in the directory",
            );
        };
        // The endpoint is on the origin of an enrollment URL used with the
        // credentials this host has: Kerberos (2) or password (4).
        let kerberos = self.credentials.kerberos.as_ref();
        let basic = self.credentials.token.as_ref();
        let url = service
            .enrollment_servers
            .iter()
            .filter(|e| e.url.to_ascii_lowercase().starts_with("https://"))
            .find(|e| {
                (e.authentication == 2 && kerberos.is_some())
                    || (e.authentication == 4 && basic.is_some())
            })
            .and_then(|e| url_for(&e.url, &service.cn).map(|u| (u, e.authentication)));
        let Some((url, auth)) = url else {
            return administrator(
                template,
                thumbprint,
                serial,
                &format!(
                    "{} has no HTTPS endpoint for this host's credentials",
                    service.cn
                ),
            );
        };
        let body = serde_json::to_string(&RevocationRequest {
            serial: serial.clone(),
            reason: CESSATION_OF_OPERATION,
        })
        .unwrap_or_default();
        let (negotiate, basic) = if auth == 2 {
            (kerberos, None)
        } else {
            (None, basic)
        };
        match self
            .https
            .post_json(&url, body, self.timeout, negotiate, basic)
            .await
        {
            Ok(_) => Outcome::new(
                Event::Revoked,
                template,
                Some(thumbprint),
                format!(
                    "{} revoked serial {serial} (cessationOfOperation)",
                    service.cn
                ),
            ),
            Err(TransportError::Status { status, .. }) if status.as_u16() == 409 => Outcome::new(
                Event::Revoked,
                template,
                Some(thumbprint),
                format!("{} had already revoked serial {serial}", service.cn),
            ),
            // A CA without the endpoint (stock AD CS) answers 404 or 405.
            Err(TransportError::Status { status, .. })
                if matches!(status.as_u16(), 404 | 405 | 501) =>
            {
                administrator(
                    template,
                    thumbprint,
                    serial,
                    &format!("{} offers no revocation to its requesters", service.cn),
                )
            }
            Err(e) => Outcome::new(
                Event::Failed,
                template,
                Some(thumbprint),
                format!("asking {} to revoke serial {serial}: {e}", service.cn),
            ),
        }
    }
}

fn administrator(template: Option<&str>, thumbprint: &str, serial: &str, why: &str) -> Outcome {
    Outcome::new(
        Event::RevocationNeeded,
        template,
        Some(thumbprint),
        format!("{why}: the CA's administrator must revoke serial {serial}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Unparseable;

    fn policy(extra: &str) -> Policy {
        Policy::parse(
            &format!(
                "context = \"machine\"\naccount = \"ws01$\"\nstore = \"store\"\n\
                 trust_anchors_dir = \"anchors\"\n[directory]\nurl = \"ldap://dc\"\n\
                 bind = \"sasl_external\"\n{extra}"
            ),
            Path::new("/etc/autoenroll/machine.toml"),
        )
        .unwrap()
    }

    #[test]
    fn an_unreadable_store_is_not_unenrolled() {
        let store = StoreSnapshot {
            unparseable: vec![Unparseable {
                path: "my/x".into(),
                problem: "a link".into(),
            }],
            ..StoreSnapshot::default()
        };
        let e = plan(&policy(""), &store, true).unwrap_err();
        assert!(e.contains("repair"), "{e}");
    }

    #[test]
    fn an_empty_store_still_clears_what_lies_outside() {
        let kinds: Vec<&str> = plan(&policy(""), &StoreSnapshot::default(), true)
            .unwrap()
            .iter()
            .map(|s| s.kind)
            .collect();
        assert_eq!(kinds, ["remove_anchors", "clear_trust", "reset_state"]);
    }
}
