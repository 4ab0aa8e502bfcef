//! Table tests of the planner: each case builds a small world (templates,
//! verdicts, store, CRLs, failures, now) and states the whole plan it expects,
//! written as `kind template certificate` lines in plan order.

use std::path::PathBuf;

use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::*;
use crate::model::{EnrollmentFlags, GeneralFlags, NameFlags, Period, PrivateKeyFlags, SkipReason};
use crate::pki::{CertificateInfo, TemplateIdentity};
use crate::store::{CertificateMeta, HeldCertificate, KeyStatus, PendingRequest, TemplateFailures};

/// Issue date of most test certificates.
pub(super) const T0: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);
const YEAR: Duration = Duration::days(365);

/// A template as the sample forest's WorkstationAuth: machine, schema 2,
/// autoenroll, 1 year validity, 6 weeks renewal period, major version 100.
pub(super) fn template(cn: &str) -> Template {
    Template {
        dn: format!("CN={cn},CN=Certificate Templates,CN=Public Key Services"),
        cn: cn.to_string(),
        display_name: None,
        flags: GeneralFlags::MACHINE_TYPE,
        revision: 100,
        minor_revision: 0,
        schema_version: 2,
        oid: Some(oid_of(cn)),
        validity: Some(Period::from_days(365)),
        renewal_period: Some(Period::from_days(42)),
        key_usage: None,
        extended_key_usage: vec!["1.3.6.1.5.5.7.3.2".into()],
        default_key_spec: None,
        max_issuing_depth: None,
        critical_extensions: vec![],
        default_csps: vec![],
        minimal_key_size: 2048,
        ra_signatures: 0,
        ra_application_policies: vec![],
        supersedes: vec![],
        certificate_policies: vec![],
        application_policies: vec![],
        enrollment_flags: EnrollmentFlags::AUTO_ENROLLMENT,
        private_key_flags: PrivateKeyFlags::default(),
        name_flags: NameFlags::default(),
    }
}

/// A distinct template OID per cn.
pub(super) fn oid_of(cn: &str) -> String {
    let arcs: Vec<String> = cn.bytes().map(|b| b.to_string()).collect();
    format!("1.3.6.1.4.1.311.21.8.{}", arcs.join("."))
}

pub(super) fn verdict(cn: &str, reason: Option<SkipReason>) -> Verdict {
    Verdict {
        cn: cn.to_string(),
        published_by: if matches!(reason, Some(SkipReason::NotPublished)) {
            vec![]
        } else {
            vec!["corp-CA".into()]
        },
        reason,
        renewal_only: false,
    }
}

/// A certificate as the CA issued it (no DER needed: the planner reads facts).
pub(super) fn cert(
    thumb: &str,
    id: Option<TemplateIdentity>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> HeldCertificate {
    HeldCertificate {
        info: CertificateInfo {
            thumbprint: thumb.to_string(),
            serial: format!("5e{}", thumb.len()),
            issuer: "CN=corp-CA,DC=corp,DC=example".to_string(),
            subject: "CN=ws01.corp.example".to_string(),
            public_key: vec![],
            not_before,
            not_after,
            template: id,
        },
        key: KeyStatus::Paired,
        meta: CertificateMeta::default(),
        path: PathBuf::from(format!("my/{thumb}")),
    }
}

/// Everything a plan depends on, built up by each case.
pub(super) struct World {
    pub settings: Settings,
    pub templates: Vec<Template>,
    pub verdicts: Vec<Verdict>,
    pub store: StoreSnapshot,
    pub revocations: Revocations,
    pub state: State,
    pub now: OffsetDateTime,
}

impl World {
    pub fn at(now: OffsetDateTime) -> World {
        World {
            settings: Settings::default(),
            templates: vec![],
            verdicts: vec![],
            store: StoreSnapshot::default(),
            revocations: Revocations::default(),
            state: State::default(),
            now,
        }
    }

    /// An eligible template (adjust it with `f`).
    pub fn template(&mut self, cn: &str, f: impl FnOnce(&mut Template)) -> &mut Self {
        let mut t = template(cn);
        f(&mut t);
        self.templates.push(t);
        self.verdicts.push(verdict(cn, None));
        self
    }

    /// Replaces the verdict of `cn`.
    pub fn verdict(&mut self, cn: &str, reason: SkipReason) -> &mut Self {
        self.verdicts.retain(|v| v.cn != cn);
        self.verdicts.push(verdict(cn, Some(reason)));
        self
    }

    pub fn renewal_only(&mut self, cn: &str) -> &mut Self {
        for v in self.verdicts.iter_mut().filter(|v| v.cn == cn) {
            v.renewal_only = true;
        }
        self
    }

    /// A certificate of template `cn` as its CA would issue it now: the
    /// template's OID and major version when the directory knows the template,
    /// its name otherwise.
    pub fn cert(
        &mut self,
        thumb: &str,
        cn: &str,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> &mut HeldCertificate {
        let id = match self.templates.iter().find(|t| t.cn == cn) {
            Some(t) => TemplateIdentity {
                oid: t.oid.clone(),
                major: Some(t.revision),
                minor: Some(t.minor_revision),
                name: None,
            },
            None => TemplateIdentity {
                name: Some(cn.to_string()),
                ..Default::default()
            },
        };
        self.store
            .certificates
            .push(cert(thumb, Some(id), not_before, not_after));
        self.store.certificates.last_mut().expect("just pushed")
    }

    /// A one-year certificate issued at T0.
    pub fn year_cert(&mut self, thumb: &str, cn: &str) -> &mut HeldCertificate {
        self.cert(thumb, cn, T0, T0 + YEAR)
    }

    pub fn pending(
        &mut self,
        id: &str,
        cn: &str,
        last_poll: Option<OffsetDateTime>,
    ) -> &mut PendingRequest {
        self.store.pending.push(PendingRequest {
            id: id.to_string(),
            template: cn.to_string(),
            ca: Some("corp-CA".into()),
            ca_request_id: Some("17".into()),
            created_at: T0,
            last_poll,
            replaces: None,
            scep_profile: None,
            scep_state: None,
            path: PathBuf::from(format!("request/{id}")),
        });
        self.store.pending.last_mut().expect("just pushed")
    }

    pub fn failures(&mut self, cn: &str, count: u32, last: OffsetDateTime) -> &mut Self {
        self.state.failures.push(TemplateFailures {
            template: cn.to_string(),
            count,
            last_failure: last,
            last_error: "the CA did not answer".into(),
        });
        self
    }

    pub fn revoke(&mut self, thumb: &str) -> &mut Self {
        let c = self
            .store
            .certificates
            .iter()
            .find(|c| c.info.thumbprint == thumb)
            .expect("revoke a held certificate");
        let (issuer, serial) = (c.info.issuer.clone(), c.info.serial.clone());
        self.revocations.insert(&issuer, &serial, Some(1));
        self
    }

    pub fn input(&self) -> PlanInput<'_> {
        PlanInput {
            settings: &self.settings,
            directory: DirectoryView {
                templates: &self.templates,
                verdicts: &self.verdicts,
            },
            store: &self.store,
            revocations: &self.revocations,
            state: &self.state,
            now: self.now,
        }
    }

    pub fn plan(&self) -> Plan {
        plan(&self.input())
    }
}

/// `kind template certificate` per action; reenroll carries its cause.
pub(super) fn summary(p: &Plan) -> Vec<String> {
    p.actions
        .iter()
        .map(|a| {
            let kind = match &a.kind {
                ActionKind::Reenroll(why) => format!("reenroll:{}", why.name()),
                k => k.name().to_string(),
            };
            format!(
                "{kind} {} {}",
                a.template.as_deref().unwrap_or("-"),
                a.certificate.as_deref().unwrap_or("-")
            )
        })
        .collect()
}

/// One table row.
struct Case {
    name: &'static str,
    world: fn() -> World,
    /// The whole plan, in order.
    actions: &'static [&'static str],
    /// `renew_at` of the first Keep or Renew action, when checked.
    renew_at: Option<Option<OffsetDateTime>>,
    /// `next_wake`, when checked.
    next_wake: Option<Option<OffsetDateTime>>,
}

const fn case(name: &'static str, world: fn() -> World, actions: &'static [&'static str]) -> Case {
    Case {
        name,
        world,
        actions,
        renew_at: None,
        next_wake: None,
    }
}

impl Case {
    const fn renews(mut self, at: Option<OffsetDateTime>) -> Case {
        self.renew_at = Some(at);
        self
    }
    const fn wakes(mut self, at: Option<OffsetDateTime>) -> Case {
        self.next_wake = Some(at);
        self
    }
}

const WS: &str = "WorkstationAuth";
const NA: OffsetDateTime = datetime!(2027-01-01 00:00 UTC); // T0 + 365 days

/// The verdict of a template an unusable, published template holds back: it
/// names it in its readable `msPKI-Supersede-Templates` (`lists_it`), or that
/// list cannot be read.
fn supersedence_unknown(lists_it: bool) -> SkipReason {
    SkipReason::SupersedenceUnknown {
        unusable: vec![crate::model::UnusableSuccessor {
            template: "Broken".into(),
            lists_it,
            problem: "flags: expected an integer, found \"x\"".into(),
        }],
    }
}

fn ws() -> World {
    let mut w = World::at(T0 + Duration::days(100));
    w.template(WS, |_| {});
    w
}

fn ws_with(f: fn(&mut Template)) -> World {
    let mut w = World::at(T0 + Duration::days(100));
    w.template(WS, f);
    w
}

fn cases() -> Vec<Case> {
    vec![
        // --- renewal timing -------------------------------------------------
        case(
            "1 year, 6 weeks: keeps until 42 days before expiry",
            || {
                let mut w = ws();
                w.year_cert("c1", WS);
                w
            },
            &["keep WorkstationAuth c1"],
        )
        .renews(Some(datetime!(2026-11-20 00:00 UTC)))
        .wakes(Some(datetime!(2026-11-20 00:00 UTC))),
        case(
            "1 year, 6 weeks: renews 42 days before expiry",
            || {
                let mut w = ws();
                w.now = NA - Duration::days(42);
                w.year_cert("c1", WS);
                w
            },
            &["renew WorkstationAuth c1"],
        )
        .renews(Some(NA - Duration::days(42))),
        case(
            "1 year, 6 months: waits for the 80% point, 73 days before expiry",
            || {
                let mut w = ws_with(|t| t.renewal_period = Some(Period::from_days(182)));
                w.year_cert("c1", WS);
                w
            },
            &["keep WorkstationAuth c1"],
        )
        .renews(Some(NA - Duration::days(73))),
        case(
            "1 year, 6 months: one day before the 80% point nothing happens",
            || {
                let mut w = ws_with(|t| t.renewal_period = Some(Period::from_days(182)));
                w.now = NA - Duration::days(74);
                w.year_cert("c1", WS);
                w
            },
            &["keep WorkstationAuth c1"],
        )
        .wakes(Some(NA - Duration::days(73))),
        case(
            "1 year, 6 months: renews at the 80% point",
            || {
                let mut w = ws_with(|t| t.renewal_period = Some(Period::from_days(182)));
                w.now = NA - Duration::days(73);
                w.year_cert("c1", WS);
                w
            },
            &["renew WorkstationAuth c1"],
        ),
        case(
            "CA shortened to 90 days, 6 weeks period: renews at day 72",
            || {
                let mut w = ws();
                w.now = T0 + Duration::days(10);
                w.cert("c1", WS, T0, T0 + Duration::days(90));
                w
            },
            &["keep WorkstationAuth c1"],
        )
        .renews(Some(T0 + Duration::days(72))),
        case(
            "ShortLived 1 hour, 30 minutes period: keeps until minute 48",
            || {
                let mut w = ws_with(|t| {
                    t.validity = Some(Period::from_seconds(3600));
                    t.renewal_period = Some(Period::from_seconds(1800));
                });
                w.now = T0 + Duration::minutes(10);
                w.cert("c1", WS, T0, T0 + Duration::hours(1));
                w
            },
            &["keep WorkstationAuth c1"],
        )
        .renews(Some(T0 + Duration::minutes(48)))
        .wakes(Some(T0 + Duration::minutes(48))),
        case(
            "ShortLived 1 hour, 30 minutes period: renews at minute 48",
            || {
                let mut w = ws_with(|t| {
                    t.validity = Some(Period::from_seconds(3600));
                    t.renewal_period = Some(Period::from_seconds(1800));
                });
                w.now = T0 + Duration::minutes(48);
                w.cert("c1", WS, T0, T0 + Duration::hours(1));
                w
            },
            &["renew WorkstationAuth c1"],
        ),
        case(
            "no renewal period: the 80% point",
            || {
                let mut w = ws_with(|t| t.renewal_period = None);
                w.year_cert("c1", WS);
                w
            },
            &["keep WorkstationAuth c1"],
        )
        .renews(Some(T0 + Duration::days(292))),
        case(
            "policy threshold 30% remaining brings renewal forward",
            || {
                let mut w = ws();
                w.settings.renewal_threshold_percent.insert(WS.into(), 30);
                w.year_cert("c1", WS);
                w
            },
            &["keep WorkstationAuth c1"],
        )
        .renews(Some(NA - Duration::hours(365 * 24 * 3 / 10))),
        case(
            "policy threshold that would be later is ignored",
            || {
                let mut w = ws();
                w.settings.renewal_threshold_percent.insert(WS.into(), 5);
                w.year_cert("c1", WS);
                w
            },
            &["keep WorkstationAuth c1"],
        )
        .renews(Some(NA - Duration::days(42))),
        case(
            "policy threshold matches the cn without regard to case",
            || {
                let mut w = ws();
                w.settings
                    .renewal_threshold_percent
                    .insert("workstationauth".into(), 50);
                w.now = T0 + Duration::days(183);
                w.year_cert("c1", WS);
                w
            },
            &["renew WorkstationAuth c1"],
        )
        .renews(Some(T0 + Duration::hours(365 * 12))),
        // --- enrollment ------------------------------------------------------
        case(
            "eligible template, nothing held: enroll",
            ws,
            &["enroll WorkstationAuth -"],
        )
        .wakes(None),
        case(
            "renewal-only template, nothing held: skip",
            || {
                let mut w = ws();
                w.renewal_only(WS);
                w
            },
            &["skip WorkstationAuth -"],
        ),
        case(
            "renewal-only template, held certificate due: renew",
            || {
                let mut w = ws();
                w.renewal_only(WS);
                w.now = NA - Duration::days(40);
                w.year_cert("c1", WS);
                w
            },
            &["renew WorkstationAuth c1"],
        ),
        case(
            "template of the other context: no line at all",
            || {
                let mut w = World::at(T0);
                w.template("User", |t| t.flags = GeneralFlags::empty());
                w.verdict(
                    "User",
                    SkipReason::WrongContext {
                        template: crate::model::Context::User,
                        running: crate::model::Context::Machine,
                    },
                );
                w
            },
            &[],
        ),
        case(
            "certificate already in userCertificate still renews",
            || {
                let mut w = ws();
                w.verdict(WS, SkipReason::AlreadyInDirectory);
                w.now = NA - Duration::days(40);
                w.year_cert("c1", WS);
                w
            },
            &["renew WorkstationAuth c1"],
        ),
        case(
            "an unusable template supersedes it: no new enrollment",
            || {
                let mut w = ws();
                w.verdict(WS, supersedence_unknown(true));
                w
            },
            &["skip WorkstationAuth -"],
        )
        .wakes(None),
        case(
            "an unusable template with an unreadable supersede list may supersede it: no new enrollment",
            || {
                let mut w = ws();
                w.verdict(WS, supersedence_unknown(false));
                w
            },
            &["skip WorkstationAuth -"],
        )
        .wakes(None),
        case(
            "an unusable template supersedes it: the held certificate still renews",
            || {
                let mut w = ws();
                w.verdict(WS, supersedence_unknown(true));
                w.now = NA - Duration::days(40);
                w.year_cert("c1", WS);
                w
            },
            &["renew WorkstationAuth c1"],
        ),
        case(
            "superseded into a template an unusable one may supersede: kept",
            || {
                let mut w = World::at(T0 + Duration::days(100));
                w.template("New", |_| {});
                w.template("Old", |_| {});
                w.verdict("New", supersedence_unknown(false));
                w.verdict("Old", SkipReason::SupersededBy("New".into()));
                w.year_cert("o1", "Old");
                w
            },
            &["skip New -", "keep Old o1"],
        )
        .renews(None),
        // --- expired ---------------------------------------------------------
        case(
            "expired: re-enrolled, never renewed",
            || {
                let mut w = ws();
                w.now = NA + Duration::days(1);
                w.year_cert("c1", WS);
                w
            },
            &["reenroll:expired WorkstationAuth c1"],
        ),
        case(
            "expired, housekeeping off: untouched",
            || {
                let mut w = ws();
                w.settings.renew_expired_update_pending_remove_revoked = false;
                w.now = NA + Duration::days(1);
                w.year_cert("c1", WS);
                w
            },
            &["keep WorkstationAuth c1"],
        ),
        case(
            "expired next to a valid one: archived",
            || {
                let mut w = ws();
                w.now = NA + Duration::days(1);
                w.year_cert("old", WS);
                w.cert("new", WS, NA - Duration::days(30), NA + Duration::days(335));
                w
            },
            &["archive WorkstationAuth old", "keep WorkstationAuth new"],
        ),
        case(
            "expired with REMOVE_INVALID, blocked by backoff: removed now",
            || {
                let mut w = ws_with(|t| {
                    t.enrollment_flags |=
                        EnrollmentFlags::REMOVE_INVALID_CERTIFICATE_FROM_PERSONAL_STORE
                });
                w.now = NA + Duration::days(1);
                w.year_cert("c1", WS);
                w.failures(WS, 1, NA + Duration::days(1) - Duration::minutes(5));
                w
            },
            &["remove WorkstationAuth c1"],
        ),
        case(
            "expired on a renewal-only template: kept, its keep says why",
            || {
                let mut w = ws();
                w.renewal_only(WS);
                w.now = NA + Duration::days(1);
                w.year_cert("c1", WS);
                w
            },
            &["keep WorkstationAuth c1"],
        ),
        // --- revoked ---------------------------------------------------------
        case(
            "revoked: removed and re-enrolled",
            || {
                let mut w = ws();
                w.year_cert("c1", WS);
                w.revoke("c1");
                w
            },
            &[
                "reenroll:revoked WorkstationAuth -",
                "remove WorkstationAuth c1",
            ],
        ),
        case(
            "revoked, housekeeping off: untouched",
            || {
                let mut w = ws();
                w.settings.renew_expired_update_pending_remove_revoked = false;
                w.year_cert("c1", WS);
                w.revoke("c1");
                w
            },
            &["keep WorkstationAuth c1"],
        ),
        case(
            "revoked next to a valid one: removed only",
            || {
                let mut w = ws();
                w.year_cert("r", WS);
                w.revoke("r");
                w.cert("v", WS, T0 + Duration::days(1), NA + Duration::days(1))
                    .info
                    .serial = "77".into();
                w
            },
            &["remove WorkstationAuth r", "keep WorkstationAuth v"],
        ),
        // --- superseded and versions -----------------------------------------
        case(
            "superseded: re-enrolled into the new template",
            || {
                let mut w = World::at(T0 + Duration::days(100));
                w.template("New", |t| t.supersedes = vec!["Old".into()]);
                w.template("Old", |_| {});
                w.verdict("Old", SkipReason::SupersededBy("New".into()));
                w.year_cert("o1", "Old");
                w
            },
            &["reenroll:superseded New o1", "skip Old -"],
        ),
        case(
            "superseded, the new template's certificate is held: archived",
            || {
                let mut w = World::at(T0 + Duration::days(100));
                w.template("New", |_| {});
                w.template("Old", |_| {});
                w.verdict("Old", SkipReason::SupersededBy("New".into()));
                w.year_cert("o1", "Old");
                w.year_cert("n1", "New");
                w
            },
            &["keep New n1", "archive Old o1"],
        ),
        case(
            "superseded, update off: kept, the new template enrolls",
            || {
                let mut w = World::at(T0 + Duration::days(100));
                w.settings.update_certificates_that_use_templates = false;
                w.template("New", |_| {});
                w.template("Old", |_| {});
                w.verdict("Old", SkipReason::SupersededBy("New".into()));
                w.year_cert("o1", "Old");
                w
            },
            &["enroll New -", "keep Old o1"],
        ),
        case(
            "superseded twice: follows the chain to its end",
            || {
                let mut w = World::at(T0 + Duration::days(100));
                w.template("A", |_| {});
                w.template("B", |_| {});
                w.template("C", |_| {});
                w.verdict("A", SkipReason::SupersededBy("B".into()));
                w.verdict("B", SkipReason::SupersededBy("C".into()));
                w.year_cert("a1", "A");
                w
            },
            &["skip A -", "skip B -", "reenroll:superseded C a1"],
        ),
        case(
            "superseded with REMOVE_INVALID: removed now and replaced",
            || {
                let mut w = World::at(T0 + Duration::days(100));
                w.template("New", |_| {});
                w.template("Old", |t| {
                    t.enrollment_flags |=
                        EnrollmentFlags::REMOVE_INVALID_CERTIFICATE_FROM_PERSONAL_STORE
                });
                w.verdict("Old", SkipReason::SupersededBy("New".into()));
                w.year_cert("o1", "Old");
                w
            },
            &["reenroll:superseded New -", "remove Old o1"],
        ),
        case(
            "major version bump: re-enrolled",
            || {
                let mut w = ws();
                w.year_cert("c1", WS)
                    .info
                    .template
                    .as_mut()
                    .expect("id")
                    .major = Some(99);
                w
            },
            &["reenroll:major_version WorkstationAuth c1"],
        ),
        case(
            "major version bump, update off: untouched",
            || {
                let mut w = ws();
                w.settings.update_certificates_that_use_templates = false;
                w.year_cert("c1", WS)
                    .info
                    .template
                    .as_mut()
                    .expect("id")
                    .major = Some(99);
                w
            },
            &["keep WorkstationAuth c1"],
        )
        .renews(Some(NA - Duration::days(42))),
        case(
            "minor version change: nothing",
            || {
                let mut w = ws_with(|t| t.minor_revision = 7);
                w.year_cert("c1", WS)
                    .info
                    .template
                    .as_mut()
                    .expect("id")
                    .minor = Some(2);
                w
            },
            &["keep WorkstationAuth c1"],
        ),
        // --- pending ---------------------------------------------------------
        case(
            "pending, never polled: retrieved",
            || {
                let mut w = ws();
                w.pending("r1", WS, None);
                w
            },
            &["retrieve WorkstationAuth -"],
        )
        .wakes(Some(T0 + Duration::days(100) + Duration::hours(1))),
        case(
            "pending, polled 30 minutes ago: waits for the poll interval",
            || {
                let mut w = ws();
                let last = w.now - Duration::minutes(30);
                w.pending("r1", WS, Some(last));
                w
            },
            &["skip WorkstationAuth -"],
        )
        .wakes(Some(T0 + Duration::days(100) + Duration::minutes(30))),
        case(
            "pending, polled an hour ago: retrieved",
            || {
                let mut w = ws();
                let last = w.now - Duration::hours(1);
                w.pending("r1", WS, Some(last));
                w
            },
            &["retrieve WorkstationAuth -"],
        ),
        case(
            "pending renewal of a due certificate: retrieve, no second request",
            || {
                let mut w = ws();
                w.now = NA - Duration::days(40);
                w.year_cert("c1", WS);
                w.pending("r1", WS, None).replaces = Some("c1".into());
                w
            },
            &["retrieve WorkstationAuth c1"],
        ),
        case(
            "two pending requests: one retrieve per plan",
            || {
                let mut w = ws();
                w.pending("r1", WS, None);
                w.pending("r2", WS, None).created_at = T0 + Duration::days(1);
                w
            },
            &["retrieve WorkstationAuth -"],
        ),
        case(
            "pending, housekeeping off: untouched and no new enrollment",
            || {
                let mut w = ws();
                w.settings.renew_expired_update_pending_remove_revoked = false;
                w.pending("r1", WS, None);
                w
            },
            &["skip WorkstationAuth -"],
        ),
        // --- duplicates ------------------------------------------------------
        case(
            "three valid certificates: newest kept, others archived",
            || {
                let mut w = ws();
                w.cert("b", WS, T0 - Duration::days(20), NA);
                w.cert("c", WS, T0, NA);
                w.cert("a", WS, T0 - Duration::days(10), NA);
                w
            },
            &[
                "archive WorkstationAuth a",
                "archive WorkstationAuth b",
                "keep WorkstationAuth c",
            ],
        ),
        case(
            "duplicates with equal notBefore: later notAfter kept",
            || {
                let mut w = ws();
                w.cert("z", WS, T0, NA);
                w.cert("y", WS, T0, NA + Duration::days(1));
                w
            },
            &["archive WorkstationAuth z", "keep WorkstationAuth y"],
        ),
        case(
            "duplicates with equal dates: thumbprint decides",
            || {
                let mut w = ws();
                w.cert("d2", WS, T0, NA);
                w.cert("d1", WS, T0, NA);
                w
            },
            &["archive WorkstationAuth d1", "keep WorkstationAuth d2"],
        ),
        case(
            "duplicates: a usable key wins over a newer certificate without one",
            || {
                let mut w = ws();
                w.cert("old", WS, T0, NA);
                w.cert("new", WS, T0 + Duration::days(5), NA + Duration::days(5))
                    .key = KeyStatus::Missing;
                w
            },
            &["archive WorkstationAuth new", "keep WorkstationAuth old"],
        ),
        // --- SKIP_AUTO_RENEWAL -----------------------------------------------
        case(
            "SKIP_AUTO_RENEWAL: kept past the renewal time, never renewed",
            || {
                let mut w = ws_with(|t| t.enrollment_flags |= EnrollmentFlags::SKIP_AUTO_RENEWAL);
                w.now = NA - Duration::days(40);
                w.year_cert("c1", WS);
                w
            },
            &["keep WorkstationAuth c1"],
        )
        .renews(None),
        case(
            "SKIP_AUTO_RENEWAL expired: not re-enrolled",
            || {
                let mut w = ws_with(|t| t.enrollment_flags |= EnrollmentFlags::SKIP_AUTO_RENEWAL);
                w.now = NA + Duration::days(1);
                w.year_cert("c1", WS);
                w
            },
            &["keep WorkstationAuth c1"],
        ),
        case(
            "SKIP_AUTO_RENEWAL, nothing held: enrolled once",
            || ws_with(|t| t.enrollment_flags |= EnrollmentFlags::SKIP_AUTO_RENEWAL),
            &["enroll WorkstationAuth -"],
        ),
        // --- orphaned, unusable, foreign -------------------------------------
        case(
            "orphaned: template unpublished, kept and not renewed",
            || {
                let mut w = ws();
                w.verdict(WS, SkipReason::NotPublished);
                w.now = NA - Duration::days(40);
                w.year_cert("c1", WS);
                w
            },
            &["keep WorkstationAuth c1"],
        )
        .renews(None)
        .wakes(Some(NA - Duration::hours(365 * 24 / 10))),
        case(
            "orphaned: enroll permission removed",
            || {
                let mut w = ws();
                w.verdict(WS, SkipReason::RightNotGranted { right: "Enroll" });
                w.now = NA - Duration::days(40);
                w.year_cert("c1", WS);
                w
            },
            &["keep WorkstationAuth c1"],
        )
        .renews(None),
        case(
            "orphaned: template deleted from the directory",
            || {
                let mut w = World::at(NA - Duration::days(40));
                w.year_cert("c1", "Gone");
                w
            },
            &["keep Gone c1"],
        )
        .renews(None),
        case(
            "orphaned and expired with REMOVE_INVALID: removed",
            || {
                let mut w = ws_with(|t| {
                    t.enrollment_flags |=
                        EnrollmentFlags::REMOVE_INVALID_CERTIFICATE_FROM_PERSONAL_STORE
                });
                w.verdict(WS, SkipReason::NotPublished);
                w.now = NA + Duration::days(1);
                w.year_cert("c1", WS);
                w
            },
            &["remove WorkstationAuth c1"],
        ),
        case(
            "unusable template: kept, nothing else, even when revoked",
            || {
                let mut w = World::at(T0 + Duration::days(100));
                w.verdicts.push(verdict(
                    "Broken",
                    Some(SkipReason::Unusable {
                        dn: "CN=Broken".into(),
                        problem: "pKIExpirationPeriod: a period is 8 bytes, found 7".into(),
                    }),
                ));
                w.year_cert("c1", "Broken");
                w.revoke("c1");
                w
            },
            &["keep Broken c1"],
        ),
        case(
            "template not found while another is unusable: nothing done",
            || {
                let mut w = World::at(T0 + Duration::days(100));
                w.verdicts.push(verdict(
                    "Broken",
                    Some(SkipReason::Unusable {
                        dn: "CN=Broken".into(),
                        problem: "bad".into(),
                    }),
                ));
                w.cert("c1", "Elsewhere", T0, NA).info.template = Some(TemplateIdentity {
                    oid: Some("1.2.3.4".into()),
                    ..Default::default()
                });
                w.revoke("c1");
                w
            },
            &["keep 1.2.3.4 c1", "skip Broken -"],
        ),
        case(
            "foreign certificate: never any action",
            || {
                let mut w = World::at(NA + Duration::days(10));
                w.store.certificates.push(cert("f1", None, T0, NA));
                w.revoke("f1");
                w
            },
            &[],
        )
        .wakes(None),
        // --- keys ------------------------------------------------------------
        case(
            "key missing, due: re-enrolled instead of renewed",
            || {
                let mut w = ws();
                w.now = NA - Duration::days(40);
                w.year_cert("c1", WS).key = KeyStatus::Missing;
                w
            },
            &["reenroll:key_unusable WorkstationAuth c1"],
        ),
        case(
            "key mismatch, not due: kept",
            || {
                let mut w = ws();
                w.year_cert("c1", WS).key = KeyStatus::Mismatch;
                w
            },
            &["keep WorkstationAuth c1"],
        )
        .renews(Some(NA - Duration::days(42))),
        // --- policy ----------------------------------------------------------
        case(
            "policy disabled: nothing at all",
            || {
                let mut w = ws();
                w.settings.enabled = false;
                w.now = NA + Duration::days(1);
                w.year_cert("c1", WS);
                w.pending("r1", "Other", None);
                w
            },
            &[],
        )
        .wakes(None),
        // --- backoff ---------------------------------------------------------
        case(
            "one failure: backs off 1 hour",
            || {
                let mut w = ws();
                let last = w.now - Duration::minutes(30);
                w.failures(WS, 1, last);
                w
            },
            &["skip WorkstationAuth -"],
        )
        .wakes(Some(T0 + Duration::days(100) + Duration::minutes(30))),
        case(
            "two failures: backs off 2 hours",
            || {
                let mut w = ws();
                let last = w.now - Duration::minutes(90);
                w.failures(WS, 2, last);
                w
            },
            &["skip WorkstationAuth -"],
        )
        .wakes(Some(T0 + Duration::days(100) + Duration::minutes(30))),
        case(
            "three failures: backs off 4 hours",
            || {
                let mut w = ws();
                let last = w.now - Duration::hours(3);
                w.failures(WS, 3, last);
                w
            },
            &["skip WorkstationAuth -"],
        )
        .wakes(Some(T0 + Duration::days(100) + Duration::hours(1))),
        case(
            "six failures: capped at the 8 hour schedule",
            || {
                let mut w = ws();
                let last = w.now - Duration::hours(7);
                w.failures(WS, 6, last);
                w
            },
            &["skip WorkstationAuth -"],
        )
        .wakes(Some(T0 + Duration::days(100) + Duration::hours(1))),
        case(
            "backoff over: enrolls again",
            || {
                let mut w = ws();
                let last = w.now - Duration::hours(3);
                w.failures(WS, 2, last);
                w
            },
            &["enroll WorkstationAuth -"],
        ),
        case(
            "failure recorded in the future counts as now: one hour, not a year",
            || {
                let mut w = ws();
                let ahead = w.now + Duration::days(365);
                w.failures(WS, 1, ahead);
                w
            },
            &["skip WorkstationAuth -"],
        )
        .wakes(Some(T0 + Duration::days(100) + Duration::hours(1))),
        case(
            "failure recorded in the future, backoff capped at the schedule",
            || {
                let mut w = ws();
                let ahead = w.now + Duration::days(3650);
                w.failures(WS, 9, ahead);
                w
            },
            &["skip WorkstationAuth -"],
        )
        .wakes(Some(T0 + Duration::days(100) + Duration::hours(8))),
        case(
            "backoff holds a due renewal",
            || {
                let mut w = ws();
                w.now = NA - Duration::days(40);
                w.year_cert("c1", WS);
                let last = w.now - Duration::minutes(10);
                w.failures(WS, 1, last);
                w
            },
            &["keep WorkstationAuth c1"],
        ),
        // --- notification ----------------------------------------------------
        case(
            "notify at 10% of lifetime remaining",
            || {
                let mut w = ws_with(|t| t.enrollment_flags |= EnrollmentFlags::SKIP_AUTO_RENEWAL);
                w.now = NA - Duration::hours(365 * 24 / 10);
                w.year_cert("c1", WS);
                w
            },
            &["notify WorkstationAuth c1"],
        )
        .wakes(Some(NA)),
        case(
            "no notification at 11% remaining",
            || {
                let mut w = ws_with(|t| t.enrollment_flags |= EnrollmentFlags::SKIP_AUTO_RENEWAL);
                w.now = NA - Duration::days(40);
                w.year_cert("c1", WS);
                w
            },
            &["keep WorkstationAuth c1"],
        )
        .wakes(Some(NA - Duration::hours(365 * 24 / 10))),
        case(
            "notification alongside a renewal",
            || {
                let mut w = ws();
                w.now = NA - Duration::days(30);
                w.year_cert("c1", WS);
                w
            },
            &["renew WorkstationAuth c1"],
        ),
        // --- one request per template -----------------------------------------
        case(
            "own expired certificate and a superseded one: one request",
            || {
                let mut w = World::at(NA + Duration::days(1));
                w.template("New", |_| {});
                w.template("Old", |_| {});
                w.verdict("Old", SkipReason::SupersededBy("New".into()));
                w.cert(
                    "o1",
                    "Old",
                    NA - Duration::days(100),
                    NA + Duration::days(200),
                );
                w.year_cert("e1", "New");
                w
            },
            &["reenroll:expired New e1", "keep Old o1"],
        ),
    ]
}

#[test]
fn table() {
    let cases = cases();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mut failures = Vec::new();
    for c in &cases {
        let w = (c.world)();
        let p = w.plan();
        let got = summary(&p);
        if std::env::var_os("PLANNER_PRINT").is_some() {
            println!("== {}", c.name);
            for a in &p.actions {
                println!(
                    "   {} {:?} {:?}: {}",
                    a.kind.name(),
                    a.template,
                    a.certificate,
                    a.reason
                );
            }
        }
        if got != c.actions {
            failures.push(format!(
                "{}:\n  expected {:?}\n  got      {:?}\n  reasons  {:#?}",
                c.name,
                c.actions,
                got,
                p.actions.iter().map(|a| &a.reason).collect::<Vec<_>>()
            ));
            continue;
        }
        if let Some(expected) = c.renew_at {
            let at = p
                .actions
                .iter()
                .find(|a| matches!(a.kind, ActionKind::Keep | ActionKind::Renew))
                .and_then(|a| a.renew_at);
            if at != expected {
                failures.push(format!(
                    "{}: renew_at expected {expected:?}, got {at:?}",
                    c.name
                ));
            }
        }
        if let Some(expected) = c.next_wake
            && p.next_wake != expected
        {
            failures.push(format!(
                "{}: next_wake expected {expected:?}, got {:?}",
                c.name, p.next_wake
            ));
        }
        // Every plan obeys the invariants the property tests check at random.
        invariants(&w, &p);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// What every plan must satisfy.
pub(super) fn invariants(w: &World, p: &Plan) {
    let mut seen = std::collections::BTreeSet::new();
    for a in p.requests() {
        let t = a.template.as_deref().unwrap_or("").to_ascii_lowercase();
        assert!(
            seen.insert(t.clone()),
            "two requests for {t}: {:?}",
            p.actions
        );
    }
    let foreign: Vec<&str> = w
        .store
        .certificates
        .iter()
        .filter(|c| c.info.template.is_none())
        .map(|c| c.info.thumbprint.as_str())
        .collect();
    for a in &p.actions {
        assert!(!a.reason.is_empty(), "an action without a reason: {a:?}");
        if let Some(c) = &a.certificate {
            assert!(
                !foreign.contains(&c.as_str()),
                "foreign certificate acted on: {a:?}"
            );
        }
    }
    // One action per certificate, and a Skip only for a template no other
    // action names: one line, one reason, for each.
    let mut certs = std::collections::BTreeSet::new();
    for a in &p.actions {
        if let Some(c) = &a.certificate {
            assert!(
                certs.insert(c.to_ascii_lowercase()),
                "certificate {c} in two actions: {:#?}",
                p.actions
            );
        }
    }
    let mut skipped = std::collections::BTreeSet::new();
    for a in p.actions.iter().filter(|a| a.kind == ActionKind::Skip) {
        let t = a.template.as_deref().unwrap_or("").to_ascii_lowercase();
        assert!(skipped.insert(t.clone()), "two skips for {t}");
        let others = p.actions.iter().filter(|b| {
            b.kind != ActionKind::Skip
                && b.template
                    .as_deref()
                    .map(str::to_ascii_lowercase)
                    .as_deref()
                    == Some(&t)
        });
        assert_eq!(
            others.count(),
            0,
            "{t} has a skip and another action: {:#?}",
            p.actions
        );
    }
    // No reason says the same thing twice.
    for a in &p.actions {
        let parts: Vec<&str> = a.reason.split("; ").collect();
        let unique: std::collections::BTreeSet<&str> = parts.iter().copied().collect();
        assert_eq!(parts.len(), unique.len(), "repeated text: {}", a.reason);
    }
    let mut sorted = p.actions.clone();
    sorted.sort_by(Action::plan_order);
    assert_eq!(sorted, p.actions, "actions out of order");
    if let Some(t) = p.next_wake {
        assert!(t > w.now, "next_wake {t} not after now {}", w.now);
    }
}

#[test]
fn reasons_read_well() {
    let mut w = ws_with(|t| t.renewal_period = Some(Period::from_days(182)));
    w.year_cert("c1", WS);
    let p = w.plan();
    assert_eq!(
        p.actions[0].reason,
        "renews at 2026-10-20T00:00:00Z (80% of lifetime; the renewal period of 26 weeks is longer than 20% of the lifetime of 1 year)"
    );

    let mut w = ws();
    w.now = NA - Duration::days(20);
    w.year_cert("c1", WS);
    assert_eq!(
        w.plan().actions[0].reason,
        "renewal due since 2026-11-20T00:00:00Z (renewal period of 6 weeks before expiry): renew, signed by the current certificate; expires at 2027-01-01T00:00:00Z: 5% of its lifetime remains (notification at 10% or less)"
    );

    let mut w = ws();
    let last = w.now - Duration::hours(3);
    w.failures(WS, 3, last);
    let skip = &w.plan().actions[0];
    assert!(
        skip.reason
            .contains("next attempt after 2026-04-11T01:00:00Z (4 hours after the last failure)"),
        "{}",
        skip.reason
    );

    let mut w = ws();
    w.now = NA - Duration::days(20);
    w.year_cert("c1", WS).key = KeyStatus::Missing;
    let r = &w.plan().actions[0].reason;
    assert!(r.contains("private key is missing"), "{r}");
}

#[test]
fn a_failure_recorded_in_the_future_counts_as_now() {
    let mut w = ws();
    let ahead = w.now + Duration::days(30);
    w.failures(WS, 2, ahead);
    let p = w.plan();
    let skip = &p.actions[0];
    assert!(
        skip.reason
            .contains("recorded at 2026-05-11T00:00:00Z, later than now, so counted as now"),
        "{}",
        skip.reason
    );
    assert!(
        skip.reason
            .contains("next attempt after 2026-04-11T02:00:00Z (2 hours after the last failure)"),
        "{}",
        skip.reason
    );
    assert_eq!(p.next_wake, Some(w.now + Duration::hours(2)));
    assert_eq!(failure_time(ahead, w.now), w.now);
    assert_eq!(
        failure_time(w.now - Duration::hours(1), w.now),
        w.now - Duration::hours(1)
    );
}

/// After a failure, a due certificate near its expiry was listed three times
/// (keep "backing off", notify, and a skip with the same text): now one action
/// says all of it once.
#[test]
fn after_a_failure_one_line_per_template_and_certificate() {
    let mut w = ws();
    w.now = NA - Duration::days(20);
    w.year_cert("c1", WS);
    let last = w.now - Duration::minutes(10);
    w.failures(WS, 1, last);
    let p = w.plan();
    assert_eq!(summary(&p), ["notify WorkstationAuth c1"]);
    let reason = &p.actions[0].reason;
    assert!(
        reason.starts_with(
            "expires at 2027-01-01T00:00:00Z: 5% of its lifetime remains (notification at 10% or less); renewal due since 2026-11-20T00:00:00Z"
        ),
        "{reason}"
    );
    assert_eq!(
        reason.matches("backing off after 1 failed attempt").count(),
        1,
        "{reason}"
    );
    assert_eq!(p.actions[0].renew_at, Some(NA - Duration::days(42)));
    assert_eq!(p.next_wake, Some(last + Duration::hours(1)));

    // A healthy certificate of a failing template: the backoff rides on its Keep.
    let mut w = ws();
    w.year_cert("c1", WS);
    w.failures(WS, 1, w.now - Duration::minutes(10));
    let p = w.plan();
    assert_eq!(summary(&p), ["keep WorkstationAuth c1"]);
    assert!(
        p.actions[0]
            .reason
            .contains("; backing off after 1 failed attempt")
    );
}

/// A pending request that replaces a held certificate speaks for it; when that
/// certificate is moved out of my/ in the same plan, each keeps its own line.
#[test]
fn a_retrieve_speaks_for_the_certificate_it_replaces() {
    let mut w = ws();
    w.now = NA - Duration::days(20);
    w.year_cert("c1", WS);
    w.pending("r1", WS, None).replaces = Some("c1".into());
    let p = w.plan();
    assert_eq!(summary(&p), ["retrieve WorkstationAuth c1"]);
    let reason = &p.actions[0].reason;
    assert!(reason.contains("; it replaces c1"), "{reason}");
    assert!(reason.contains("5% of its lifetime remains"), "{reason}");
    let status = assess(&w.input());
    let c1 = status
        .iter()
        .find(|s| s.thumbprint.as_deref() == Some("c1"))
        .expect("c1 listed");
    assert_eq!(c1.detail, *reason, "status and plan agree");

    let mut w = ws();
    w.year_cert("c1", WS);
    w.revoke("c1");
    w.pending("r1", WS, None).replaces = Some("c1".into());
    let p = w.plan();
    assert_eq!(
        summary(&p),
        ["retrieve WorkstationAuth -", "remove WorkstationAuth c1"]
    );
    assert!(
        p.actions[0]
            .reason
            .contains("the certificate it replaces, c1, has its own action in this plan")
    );

    // A foreign certificate is never named, even by a request's `replaces`.
    let mut w = ws();
    w.store.certificates.push(cert("f1", None, T0, NA));
    w.pending("r1", WS, None).replaces = Some("f1".into());
    assert_eq!(summary(&w.plan()), ["retrieve WorkstationAuth -"]);
}

#[test]
fn json_shape() {
    let mut w = ws();
    w.now = NA - Duration::days(20);
    w.year_cert("c1", WS);
    let v = serde_json::to_value(w.plan()).expect("json");
    let a = &v["actions"][0];
    assert_eq!(a["action"], "renew");
    assert_eq!(a["template"], WS);
    assert_eq!(a["certificate"], "c1");
    assert_eq!(a["renew_at"], "2026-11-20T00:00:00Z");
    assert!(
        a["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("renewal due"))
    );
    assert_eq!(
        v["next_wake"], "2027-01-01T00:00:00Z",
        "already notifying: the expiry"
    );

    let mut w = ws();
    w.settings.enabled = false;
    let v = serde_json::to_value(w.plan()).expect("json");
    assert_eq!(v, serde_json::json!({"actions": [], "next_wake": null}));

    let mut w = ws();
    w.year_cert("c1", WS)
        .info
        .template
        .as_mut()
        .expect("id")
        .major = Some(7);
    let v = serde_json::to_value(w.plan()).expect("json");
    assert_eq!(v["actions"][0]["action"], "reenroll");
    assert_eq!(v["actions"][0]["why"], "major_version");
    assert_eq!(v["actions"][0]["held_version"], 7);
    assert_eq!(v["actions"][0]["current_version"], 100);
}

#[test]
fn assess_reports_every_entry() {
    let mut w = ws();
    w.template("Old", |_| {});
    w.verdict("Old", SkipReason::NotPublished);
    w.now = NA - Duration::days(20);
    w.year_cert("due", WS);
    w.cert(
        "healthy",
        WS,
        NA - Duration::days(100),
        NA + Duration::days(265),
    );
    w.year_cert("orphan", "Old");
    w.store.certificates.push(cert("foreign", None, T0, NA));
    w.cert("expired", "Gone", T0 - YEAR, T0);
    w.cert("revoked", "Gone2", T0, NA).info.serial = "99".into();
    w.revoke("revoked");
    w.pending("r1", "Other", None);
    w.store.unparseable.push(crate::store::Unparseable {
        path: PathBuf::from("my/zz"),
        problem: "cert.pem: not PEM".into(),
    });
    w.settings.enabled = false; // status works without the policy
    let s = assess(&w.input());
    let by: std::collections::BTreeMap<String, Health> = s
        .iter()
        .map(|s| {
            (
                s.thumbprint
                    .clone()
                    .or(s.request.clone())
                    .unwrap_or_else(|| "unparseable".into()),
                s.health,
            )
        })
        .collect();
    assert_eq!(by["due"], Health::Healthy, "a duplicate of the newer one");
    assert_eq!(by["healthy"], Health::Healthy);
    assert_eq!(by["orphan"], Health::Orphaned);
    assert_eq!(by["foreign"], Health::Foreign);
    assert_eq!(by["expired"], Health::Expired);
    assert_eq!(by["revoked"], Health::Revoked);
    assert_eq!(by["r1"], Health::Pending);
    assert_eq!(by["unparseable"], Health::Unparseable);
    assert_eq!(s.len(), 8);
    let healthy = s
        .iter()
        .find(|s| s.thumbprint.as_deref() == Some("healthy"))
        .expect("listed");
    assert_eq!(healthy.renew_at, Some(NA + Duration::days(265 - 42)));

    let mut w = ws();
    w.now = NA - Duration::days(20);
    w.year_cert("c1", WS);
    w.cert("k", "Other", T0, NA).key = KeyStatus::Mismatch;
    w.template("Other", |_| {});
    let s = assess(&w.input());
    assert_eq!(
        s.iter().map(|s| s.health).collect::<Vec<_>>(),
        [Health::KeyMismatch, Health::Due]
    );
    let json = serde_json::to_value(&s[1]).expect("json");
    assert_eq!(json["health"], "due");
    assert_eq!(json["renew_at"], "2026-11-20T00:00:00Z");
}
