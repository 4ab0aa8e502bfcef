//! The evaluation behind both [`plan`](super::plan) and [`assess`](super::assess):
//! every held certificate, pending request and template judged once, in
//! O((certificates + templates + requests) log n).
//!
//! The passes:
//! 1. index templates by cn and OID, verdicts by cn, pending requests by template;
//! 2. give each held certificate its owner (a template, an unusable template,
//!    none) and group them by template, oldest first;
//! 3. judge each group: per certificate an outcome (archive or remove now, keep,
//!    or a wish for a request that replaces it), at most one wish per group;
//! 4. grant at most one request per template: a due pending request first, then
//!    the template's own wish, then wishes of templates it supersedes, then a
//!    new enrollment; everything not granted is kept with the reason why;
//! 5. give every certificate exactly one action (its disposal, the request
//!    that replaces it, or Keep; Notify is a Keep that warns), then one Skip
//!    for each template no action names, and the wake-up candidates.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use time::OffsetDateTime;

use super::PlanInput;
use super::health::{CertificateStatus, Health};
use super::plan::{Action, ActionKind, ReenrollWhy, cmp_cn};
use super::renewal::{
    backoff_until, failure_time, fmt_span, fmt_time, notify_from, percent_remaining, renewal,
};
use crate::directory::Verdict;
use crate::model::{EnrollmentFlags, SkipReason, Template};
use crate::store::{HeldCertificate, KeyStatus, PendingRequest, TemplateFailures};

/// The name of the housekeeping option, as reasons quote it.
const HOUSEKEEPING: &str =
    "renewing expired certificates, updating pending ones and removing revoked ones";
/// The name of the update option, as reasons quote it.
const UPDATE: &str = "updating certificates that use templates";

/// Everything the planner concluded.
pub(crate) struct Evaluation {
    pub actions: Vec<Action>,
    pub wakes: Vec<OffsetDateTime>,
    pub statuses: Vec<CertificateStatus>,
}

/// Who a held certificate belongs to.
enum Owner<'a> {
    Foreign,
    Template(usize),
    /// Its template is in the directory but one of its values could not be read.
    Unusable(&'a Verdict),
    /// No usable template matches. `partial`: some template could not be read
    /// (or the directory's answer is inconsistent), so it may be that one.
    Missing {
        label: String,
        partial: bool,
    },
}

/// Lookups built once per evaluation.
struct Index<'a> {
    templates: &'a [Template],
    by_cn: HashMap<String, usize>,
    by_oid: HashMap<&'a str, usize>,
    verdicts: HashMap<String, &'a Verdict>,
    any_unusable: bool,
    thresholds: HashMap<String, u8>,
    /// Failures by lower-case cn; of two entries for one template, the latest.
    failures: HashMap<String, &'a TemplateFailures>,
}

impl<'a> Index<'a> {
    fn new(input: &PlanInput<'a>) -> Self {
        let templates = input.directory.templates;
        let mut by_cn = HashMap::with_capacity(templates.len());
        let mut by_oid = HashMap::with_capacity(templates.len());
        for (i, t) in templates.iter().enumerate() {
            by_cn.entry(lower(&t.cn)).or_insert(i);
            if let Some(oid) = t.oid.as_deref() {
                by_oid.entry(oid).or_insert(i);
            }
        }
        let mut verdicts = HashMap::with_capacity(input.directory.verdicts.len());
        let mut any_unusable = false;
        for v in input.directory.verdicts {
            any_unusable |= matches!(v.reason, Some(SkipReason::Unusable { .. }));
            verdicts.entry(lower(&v.cn)).or_insert(v);
        }
        let mut failures: HashMap<String, &'a TemplateFailures> = HashMap::new();
        for f in &input.state.failures {
            let slot = failures.entry(lower(&f.template)).or_insert(f);
            if (f.last_failure, f.count, &f.last_error)
                > (slot.last_failure, slot.count, &slot.last_error)
            {
                *slot = f;
            }
        }
        Index {
            failures,
            templates,
            by_cn,
            by_oid,
            verdicts,
            any_unusable,
            thresholds: input.settings.thresholds_by_lower_cn(),
        }
    }

    fn owner(&self, held: &HeldCertificate) -> Owner<'a> {
        let Some(id) = &held.info.template else {
            return Owner::Foreign;
        };
        // TemplateIdentity::matches: the OID decides first, then the name.
        if let Some(i) = id.oid.as_deref().and_then(|o| self.by_oid.get(o)) {
            return Owner::Template(*i);
        }
        let name = id.name.as_deref().map(lower);
        if let Some(i) = name.as_ref().and_then(|n| self.by_cn.get(n)) {
            return Owner::Template(*i);
        }
        if let Some(v) = name.as_ref().and_then(|n| self.verdicts.get(n)) {
            if matches!(v.reason, Some(SkipReason::Unusable { .. })) {
                return Owner::Unusable(v);
            }
            // A verdict without its template: inconsistent input, act on nothing.
            return Owner::Missing {
                label: v.cn.clone(),
                partial: true,
            };
        }
        Owner::Missing {
            label: id
                .name
                .clone()
                .or_else(|| id.oid.clone())
                .unwrap_or_else(|| "(unnamed template)".to_string()),
            partial: self.any_unusable,
        }
    }

    fn verdict_of(&self, cn: &str) -> Option<&'a Verdict> {
        self.verdicts.get(&lower(cn)).copied()
    }
}

/// Template names are compared without regard to ASCII case, as AD does.
fn lower(s: &str) -> String {
    s.to_ascii_lowercase()
}

/// A held certificate with the facts every rule asks about.
struct Facts<'a> {
    held: &'a HeldCertificate,
    revoked: bool,
    expired: bool,
}

impl Facts<'_> {
    fn valid(&self) -> bool {
        !self.revoked && !self.expired
    }
    fn thumb(&self) -> &str {
        &self.held.info.thumbprint
    }
}

/// Newest last: notBefore, then notAfter, then thumbprint (then path, for
/// equal entries), so that choices never depend on the store's order.
fn age_order(a: &HeldCertificate, b: &HeldCertificate) -> std::cmp::Ordering {
    (
        a.info.not_before,
        a.info.not_after,
        &a.info.thumbprint,
        &a.path,
    )
        .cmp(&(
            b.info.not_before,
            b.info.not_after,
            &b.info.thumbprint,
            &b.path,
        ))
}

/// The certificate of a group that is kept: among the valid ones, those whose
/// key is usable first (keeping a newer certificate without its key would
/// archive the only one that works), then the newest. `certs` is oldest first.
fn kept_certificate<'f, 'a>(certs: &'f [Facts<'a>]) -> Option<&'f Facts<'a>> {
    certs
        .iter()
        .filter(|f| f.valid())
        .max_by_key(|f| f.held.key == KeyStatus::Paired)
}

/// A request a certificate's situation asks for.
struct Wish {
    /// Lower-case cn of the template to request.
    target: String,
    /// Its cn as the directory spells it.
    target_cn: String,
    kind: ActionKind,
    renew_at: Option<OffsetDateTime>,
    reason: String,
}

/// What becomes of one held certificate.
struct Outcome<'a> {
    held: &'a HeldCertificate,
    /// Template label for actions and status.
    template: String,
    health: Health,
    renew_at: Option<OffsetDateTime>,
    /// Archive or Remove now, with the reason's stable code.
    disposal: Option<(ActionKind, &'static str, String)>,
    /// The reason to keep it if it is neither disposed of nor replaced now.
    keep: String,
    /// The stable code of `keep` (by default from the health).
    keep_code: &'static str,
    /// Keep's renewal time (None: never renews).
    keep_renew_at: Option<OffsetDateTime>,
    wish: Option<Wish>,
    /// Set when a request of this plan names this certificate (its own wish
    /// granted, or a retrieved request that replaces it): the index of that
    /// action, which then speaks for the certificate.
    granted: Option<usize>,
    /// Set when the wish was refused: why.
    refused: Option<String>,
}

impl<'a> Outcome<'a> {
    /// A revoked certificate: moved out of my/ when housekeeping is on (with
    /// `context` saying what else is true of it), otherwise left in place.
    fn revoked(f: &Facts<'a>, template: &str, housekeeping: bool, context: Option<&str>) -> Self {
        let mut o = Outcome::new(
            f.held,
            template.to_string(),
            Health::Revoked,
            format!(
                "{}; left in place: {HOUSEKEEPING} is off in the policy",
                revoked_text(f)
            ),
        );
        o.keep_code = "housekeeping_off";
        if housekeeping {
            let what = match context {
                Some(c) => format!("{}; {c}", revoked_text(f)),
                None => revoked_text(f),
            };
            o.disposal = Some((
                ActionKind::Remove,
                "revoked",
                format!("{what}: moved out of my/ to archive/"),
            ));
        }
        o
    }

    fn new(held: &'a HeldCertificate, template: String, health: Health, keep: String) -> Self {
        Outcome {
            held,
            template,
            health,
            renew_at: None,
            disposal: None,
            keep,
            keep_code: keep_code(health),
            keep_renew_at: None,
            wish: None,
            granted: None,
            refused: None,
        }
    }

    fn thumb(&self) -> &str {
        &self.held.info.thumbprint
    }
}

/// Where a template stands for the certificates it issued.
enum Standing<'a> {
    /// Eligible (or eligible except that its certificate is already in the
    /// account's `userCertificate`, or that an unreadable template may
    /// supersede it: both only block new enrollments).
    Eligible(&'a Verdict),
    /// Superseded and the update option is on; `by` is the eligible template
    /// at the end of the supersedence chain.
    Replaced { by: usize },
    /// Not eligible for another reason: kept until expiry, never renewed.
    Orphaned { why: String },
    /// No verdict for a usable template: inconsistent input, act on nothing.
    Unknown,
}

/// A template's request slot for this plan.
enum Slot<'a> {
    Free,
    /// A pending request is due for a poll: retrieving it is the request.
    Retrieve(&'a PendingRequest),
    /// No request may be made: why (its stable code, its text).
    Busy(&'static str, String),
}

struct Evaluator<'i, 'a> {
    input: &'i PlanInput<'a>,
    index: Index<'a>,
    now: OffsetDateTime,
    wakes: Vec<OffsetDateTime>,
}

pub(crate) fn evaluate(input: &PlanInput) -> Evaluation {
    let ev = Evaluator {
        input,
        index: Index::new(input),
        now: input.now,
        wakes: Vec::new(),
    };
    ev.run()
}

impl<'i, 'a> Evaluator<'i, 'a> {
    fn settings(&self) -> &'a super::Settings {
        self.input.settings
    }

    fn wake(&mut self, t: OffsetDateTime) {
        if t > self.now {
            self.wakes.push(t);
        }
    }

    fn run(mut self) -> Evaluation {
        let store = self.input.store;
        let now = self.now;

        // Pass 2: owners and groups.
        let mut statuses = Vec::new();
        let mut groups: BTreeMap<usize, Vec<Facts<'a>>> = BTreeMap::new();
        let mut loose: Vec<Outcome<'a>> = Vec::new();
        for held in &store.certificates {
            let facts = Facts {
                held,
                revoked: self
                    .input
                    .revocations
                    .is_revoked(&held.info.issuer, &held.info.serial),
                expired: now >= held.info.not_after,
            };
            match self.index.owner(held) {
                Owner::Foreign => statuses.push(CertificateStatus {
                    thumbprint: Some(held.info.thumbprint.clone()),
                    template: None,
                    health: Health::Foreign,
                    renew_at: None,
                    request: None,
                    detail: "no template extension: not managed by autoenrollment, never touched"
                        .to_string(),
                }),
                Owner::Template(i) => groups.entry(i).or_default().push(facts),
                Owner::Unusable(v) => loose.push(self.unknowable(
                    &facts,
                    v.cn.clone(),
                    format!("its template cannot be read ({})", reason_text(v)),
                )),
                Owner::Missing { label, partial } => {
                    let outcome = if partial {
                        let why = format!(
                            "no readable template named {label} is in the directory, and some templates could not be read: it may be one of them"
                        );
                        self.unknowable(&facts, label, why)
                    } else {
                        self.deleted(&facts, label)
                    };
                    loose.push(outcome);
                }
            }
        }
        for certs in groups.values_mut() {
            certs.sort_by(|a, b| age_order(a.held, b.held));
        }
        let keepers: HashMap<usize, &'a HeldCertificate> = groups
            .iter()
            .filter_map(|(i, certs)| kept_certificate(certs).map(|f| (*i, f.held)))
            .collect();

        // Pass 3: judge each group.
        let mut outcomes: Vec<Outcome<'a>> = Vec::new();
        for (&i, certs) in &groups {
            let t = &self.index.templates[i];
            let standing = self.standing(t);
            match standing {
                Standing::Eligible(v) => self.eligible_group(t, v, certs, &mut outcomes),
                Standing::Replaced { by } => {
                    self.superseded_group(t, by, keepers.get(&by).copied(), certs, &mut outcomes)
                }
                Standing::Orphaned { why } => self.orphaned_group(t, &why, certs, &mut outcomes),
                Standing::Unknown => {
                    for f in certs {
                        let why = format!("template {} has no verdict in this snapshot", t.cn);
                        outcomes.push(self.unknowable(f, t.cn.clone(), why));
                    }
                }
            }
        }
        outcomes.extend(loose);

        // Pass 4: one request per template.
        let mut pending: BTreeMap<String, Vec<&'a PendingRequest>> = BTreeMap::new();
        for p in &store.pending {
            pending.entry(lower(&p.template)).or_default().push(p);
        }
        for list in pending.values_mut() {
            list.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        }
        // Candidates per target template, in priority order: the template's own
        // wish (from its group) before wishes of the templates it supersedes.
        let mut wishes: BTreeMap<String, Vec<(u8, usize)>> = BTreeMap::new();
        for (n, o) in outcomes.iter().enumerate() {
            if let Some(w) = &o.wish {
                let from_superseded = matches!(
                    &w.kind,
                    ActionKind::Reenroll(ReenrollWhy::Superseded { .. })
                );
                wishes
                    .entry(w.target.clone())
                    .or_default()
                    .push((u8::from(from_superseded), n));
            }
        }
        for list in wishes.values_mut() {
            list.sort();
        }
        // Eligible templates that hold nothing ask for a new enrollment.
        let mut enroll: BTreeMap<String, usize> = BTreeMap::new();
        for (i, t) in self.index.templates.iter().enumerate() {
            let eligible = self
                .index
                .verdict_of(&t.cn)
                .is_some_and(Verdict::is_eligible);
            if eligible && !groups.contains_key(&i) {
                enroll.entry(lower(&t.cn)).or_insert(i);
            }
        }
        // Templates that get a line in the plan: every verdict, every pending
        // request's template, every target, every template with failures.
        let mut names: BTreeMap<String, String> = BTreeMap::new();
        for v in self.input.directory.verdicts {
            names.entry(lower(&v.cn)).or_insert_with(|| v.cn.clone());
        }
        for t in self.index.templates {
            names.insert(lower(&t.cn), t.cn.clone());
        }
        for p in &store.pending {
            names
                .entry(lower(&p.template))
                .or_insert_with(|| p.template.clone());
        }

        let mut actions: Vec<Action> = Vec::new();
        // What blocked a template's request, with each note's stable code.
        let mut notes: BTreeMap<String, Vec<(&'static str, String)>> = BTreeMap::new();
        let mut requested: BTreeSet<String> = BTreeSet::new();
        // One action per certificate: the first request that names one claims it.
        let by_thumb: HashMap<&'a str, usize> = outcomes
            .iter()
            .enumerate()
            .rev()
            .map(|(n, o)| (o.held.info.thumbprint.as_str(), n))
            .collect();
        let mut claimed: BTreeSet<&'a str> = BTreeSet::new();
        for (key, cn) in &names {
            let wanted = wishes.get(key).is_some_and(|w| !w.is_empty()) || enroll.contains_key(key);
            let has_pending = pending.contains_key(key);
            let failing = self.index.failures.contains_key(key);
            if !(wanted || has_pending || failing) {
                continue;
            }
            let slot = self.slot(cn, pending.get(key).map(Vec::as_slice).unwrap_or(&[]));
            let renewal_only = self.index.verdict_of(cn).is_some_and(|v| v.renewal_only);
            let mut note = |code: &'static str, text: &str| {
                let list = notes.entry(key.clone()).or_default();
                if !list.iter().any(|(_, n)| n == text) {
                    list.push((code, text.to_string()));
                }
            };
            let mut granted = false;
            let in_flight = match &slot {
                Slot::Retrieve(p) => {
                    let action = self.retrieve(p);
                    actions.push(self.claim_replaced(
                        action,
                        actions.len(),
                        &by_thumb,
                        &mut claimed,
                        &mut outcomes,
                    ));
                    granted = true;
                    format!(
                        "request {} for {cn} is already in flight (retrieved in this plan)",
                        p.id
                    )
                }
                Slot::Busy(code, why) => {
                    note(code, why);
                    why.clone()
                }
                Slot::Free => String::new(),
            };
            let only_renewal = format!(
                "{cn} is renewal-only: a new enrollment needs an enrollment agent signature (msPKI-RA-Signature 1), so only a renewal signed by a held certificate can be requested"
            );
            for &(_, n) in wishes.get(key).map(Vec::as_slice).unwrap_or(&[]) {
                let o = &mut outcomes[n];
                let Some(w) = &o.wish else { continue };
                let new_enrollment = !matches!(w.kind, ActionKind::Renew);
                let thumb = o.held.info.thumbprint.as_str();
                if o.granted.is_some() || claimed.contains(thumb) {
                    // A request of this plan (a retrieve) already replaces it.
                    o.refused = Some(format!("a request retrieved in this plan replaces {thumb}"));
                } else if granted {
                    o.refused = Some(if in_flight.is_empty() {
                        format!("the request for {cn} in this plan replaces it")
                    } else {
                        in_flight.clone()
                    });
                } else if matches!(slot, Slot::Busy(..)) {
                    o.refused = Some(in_flight.clone());
                } else if new_enrollment && renewal_only {
                    o.refused = Some(only_renewal.clone());
                    note("renewal_only", &only_renewal);
                } else {
                    // A certificate moved out of my/ in this plan is not also
                    // named by the request: its own action speaks for it.
                    let (certificate, reason) = if o.disposal.is_some() {
                        (
                            None,
                            format!(
                                "{}; {thumb} itself is moved to archive/ in this plan",
                                w.reason
                            ),
                        )
                    } else {
                        claimed.insert(thumb);
                        o.granted = Some(actions.len());
                        (Some(thumb.to_string()), w.reason.clone())
                    };
                    actions.push(Action {
                        kind: w.kind.clone(),
                        template: Some(w.target_cn.clone()),
                        certificate,
                        request: None,
                        renew_at: w.renew_at,
                        reason,
                        code: request_code(&w.kind),
                    });
                    granted = true;
                }
            }
            if let Some(&i) = enroll.get(key)
                && !granted
                && matches!(slot, Slot::Free)
            {
                if renewal_only {
                    note("renewal_only", &only_renewal);
                } else {
                    let verdict = self.index.verdict_of(cn);
                    actions.push(self.enroll(&self.index.templates[i], verdict));
                    granted = true;
                }
            }
            if granted {
                requested.insert(key.clone());
            }
        }
        // Pass 5: one action per certificate (its disposal, the request that
        // replaces it, or Keep; Notify is a Keep that warns), wakes, statuses.
        for o in &outcomes {
            let info = &o.held.info;
            let mut notifying = false;
            if o.disposal.is_none() {
                if let Some(from) = notify_from(
                    info.not_before,
                    info.not_after,
                    self.settings().expiry_notification_percent,
                ) {
                    notifying = now >= from && now < info.not_after;
                    self.wake(from);
                }
                self.wake(info.not_after);
                if let Some(at) = o.renew_at {
                    self.wake(at);
                }
            }
            let detail = match (&o.disposal, o.granted) {
                (Some((kind, code, reason)), _) => {
                    let reason = match &o.refused {
                        Some(r) => format!("{reason}; not replaced now: {r}"),
                        None => reason.clone(),
                    };
                    actions.push(self.cert_action(o, kind.clone(), code, None, reason.clone()));
                    reason
                }
                (None, Some(i)) => {
                    if notifying {
                        let text = self.notify_text(o);
                        let a = &mut actions[i];
                        a.reason = format!("{}; {text}", a.reason);
                    }
                    actions[i].reason.clone()
                }
                (None, None) => {
                    let mut reason = o.keep.clone();
                    if let Some(r) = &o.refused {
                        reason = format!("{reason}; not requested now: {r}");
                    }
                    let (kind, code) = if notifying {
                        reason = format!("{}; {reason}", self.notify_text(o));
                        (ActionKind::Notify, "expiring")
                    } else {
                        (ActionKind::Keep, o.keep_code)
                    };
                    actions.push(self.cert_action(o, kind, code, o.keep_renew_at, reason.clone()));
                    reason
                }
            };
            statuses.push(CertificateStatus {
                thumbprint: Some(o.thumb().to_string()),
                template: Some(o.template.clone()),
                health: o.health,
                renew_at: o.renew_at,
                request: None,
                detail,
            });
        }
        // One line per template: a template that no action names gets one Skip
        // with its verdict (templates of the other context belong to the other
        // context's plan) and whatever blocked a request. A template that an
        // action names gets no Skip; what blocked a request is said by the
        // Keep (or Notify) of its certificate instead.
        let mut speaks_for: HashMap<String, Option<usize>> = HashMap::new();
        for (i, a) in actions.iter().enumerate() {
            let Some(t) = a.template.as_deref() else {
                continue;
            };
            let slot = speaks_for.entry(lower(t)).or_default();
            // The first in plan order, so that the store's order never matters.
            if matches!(a.kind, ActionKind::Keep | ActionKind::Notify)
                && slot.is_none_or(|j| a.plan_order(&actions[j]).is_lt())
            {
                *slot = Some(i);
            }
        }
        for (key, cn) in &names {
            if requested.contains(key) {
                continue;
            }
            let blocked = notes.remove(key).unwrap_or_default();
            if let Some(kept) = speaks_for.get(key) {
                if let Some(i) = *kept {
                    for (_, note) in blocked {
                        if !actions[i].reason.contains(&note) {
                            actions[i].reason = format!("{}; {note}", actions[i].reason);
                        }
                    }
                }
                continue;
            }
            // The code is the verdict's, else the first thing that blocked it.
            let mut text: Vec<String> = Vec::new();
            let mut code = None;
            if let Some(v) = self.index.verdict_of(cn)
                && let Some(reason) = &v.reason
                && !matches!(reason, SkipReason::WrongContext { .. })
            {
                text.push(reason.to_string());
                code = Some(reason.code());
            }
            let code = code.or(blocked.first().map(|(c, _)| *c));
            text.extend(blocked.into_iter().map(|(_, t)| t));
            if let Some(code) = code {
                actions.push(skip(cn, code, text.join("; ")));
            }
        }
        for p in &store.pending {
            statuses.push(CertificateStatus {
                thumbprint: None,
                template: Some(p.template.clone()),
                health: Health::Pending,
                renew_at: None,
                request: Some(p.id.clone()),
                detail: self.pending_text(p),
            });
        }
        for u in &store.unparseable {
            statuses.push(CertificateStatus {
                thumbprint: None,
                template: None,
                health: Health::Unparseable,
                renew_at: None,
                request: None,
                detail: format!("{}: {} (left in place)", u.path.display(), u.problem),
            });
        }
        actions.sort_by(Action::plan_order);
        statuses.sort_by(|a, b| {
            cmp_cn(a.template.as_deref(), b.template.as_deref())
                .then_with(|| a.thumbprint.cmp(&b.thumbprint))
                .then_with(|| a.request.cmp(&b.request))
                .then_with(|| a.detail.cmp(&b.detail))
        });
        Evaluation {
            actions,
            wakes: self.wakes,
            statuses,
        }
    }

    /// The standing of a usable template for the certificates it issued.
    fn standing(&self, t: &Template) -> Standing<'a> {
        let Some(v) = self.index.verdict_of(&t.cn) else {
            return Standing::Unknown;
        };
        match &v.reason {
            // Both only block new enrollments: held certificates still renew.
            None
            | Some(SkipReason::AlreadyInDirectory)
            | Some(SkipReason::SupersedenceUnknown { .. }) => Standing::Eligible(v),
            Some(SkipReason::SupersededBy(by)) => {
                if !self.settings().update_certificates_that_use_templates {
                    return Standing::Orphaned {
                        why: format!("superseded by {by}, and {UPDATE} is off in the policy"),
                    };
                }
                match self.supersedence_target(by) {
                    Ok(i) => Standing::Replaced { by: i },
                    Err(why) => Standing::Orphaned {
                        why: format!("superseded by {by}, {why}"),
                    },
                }
            }
            Some(SkipReason::Unusable { .. }) => Standing::Unknown,
            Some(other) => Standing::Orphaned {
                why: format!("template {} is not eligible ({other})", t.cn),
            },
        }
    }

    /// Follows a supersedence chain (A by B, B by C ...) to its eligible end.
    fn supersedence_target(&self, first: &str) -> Result<usize, String> {
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut cn = first.to_string();
        loop {
            if !seen.insert(lower(&cn)) {
                return Err(format!("and the supersedence chain loops back to {cn}"));
            }
            let Some(&i) = self.index.by_cn.get(&lower(&cn)) else {
                return Err(format!(
                    "and {cn} is not a usable template of the directory"
                ));
            };
            match self.index.verdict_of(&cn).map(|v| &v.reason) {
                Some(None) => return Ok(i),
                Some(Some(SkipReason::SupersededBy(next))) => cn = next.clone(),
                Some(Some(reason)) => {
                    return Err(format!("and {cn} cannot be enrolled ({reason})"));
                }
                None => return Err(format!("and {cn} has no verdict")),
            }
        }
    }

    fn threshold(&self, t: &Template) -> Option<u8> {
        self.index.thresholds.get(&lower(&t.cn)).copied()
    }

    /// A group whose template is eligible: the full lifecycle.
    fn eligible_group(
        &self,
        t: &Template,
        v: &Verdict,
        certs: &[Facts<'a>],
        out: &mut Vec<Outcome<'a>>,
    ) {
        let s = self.settings();
        let housekeeping = s.renew_expired_update_pending_remove_revoked;
        let skip_renewal = t
            .enrollment_flags
            .contains(EnrollmentFlags::SKIP_AUTO_RENEWAL);
        let remove_invalid = t
            .enrollment_flags
            .contains(EnrollmentFlags::REMOVE_INVALID_CERTIFICATE_FROM_PERSONAL_STORE);
        let keeper = kept_certificate(certs);
        // With no valid certificate left, the newest invalid one that may be
        // re-enrolled names the re-enrollment.
        let invalid_candidate = if keeper.is_none() && housekeeping {
            certs
                .iter()
                .rev()
                .find(|f| f.revoked || (f.expired && !skip_renewal))
        } else {
            None
        };
        for f in certs {
            let info = &f.held.info;
            let is_candidate = invalid_candidate.is_some_and(|c| std::ptr::eq(c, f));
            if f.revoked {
                let mut o = Outcome::revoked(f, &t.cn, housekeeping, None);
                if housekeeping && is_candidate {
                    o.wish = Some(self.wish(
                        t,
                        ActionKind::Reenroll(ReenrollWhy::Revoked),
                        None,
                        format!(
                            "{}: enroll anew with the account's credentials",
                            revoked_text(f)
                        ),
                    ));
                }
                out.push(o);
            } else if f.expired {
                let expired = format!("expired at {}", fmt_time(info.not_after));
                let mut o = Outcome::new(f.held, t.cn.clone(), Health::Expired, String::new());
                if !housekeeping {
                    o.keep =
                        format!("{expired}; left in place: {HOUSEKEEPING} is off in the policy");
                    o.keep_code = "housekeeping_off";
                } else if let Some(k) = keeper {
                    o.disposal = Some((
                        ActionKind::Archive,
                        "replaced",
                        format!("{expired}; replaced by the valid certificate {}", k.thumb()),
                    ));
                } else {
                    if remove_invalid {
                        o.disposal = Some((
                            ActionKind::Remove,
                            "expired",
                            format!(
                                "{expired}; the template sets REMOVE_INVALID_CERTIFICATE_FROM_PERSONAL_STORE: moved out of my/ to archive/"
                            ),
                        ));
                    }
                    if skip_renewal {
                        o.keep = format!(
                            "{expired}; the template sets SKIP_AUTO_RENEWAL: enrolled once, not re-enrolled"
                        );
                        o.keep_code = "skip_auto_renewal";
                    } else if is_candidate {
                        o.keep = expired.clone();
                        o.wish = Some(self.wish(
                            t,
                            ActionKind::Reenroll(ReenrollWhy::Expired),
                            None,
                            format!(
                                "{expired}: an expired certificate cannot sign a renewal; enroll anew with the account's credentials, then archive it"
                            ),
                        ));
                    } else {
                        o.keep = format!(
                            "{expired}; archived once a new certificate of {} is installed",
                            t.cn
                        );
                    }
                }
                out.push(o);
            } else if let Some(k) = keeper.filter(|k| !std::ptr::eq(*k, f)) {
                // A duplicate is healthy until archived, unless its own key is wrong.
                let health = if f.held.key == KeyStatus::Paired {
                    Health::Healthy
                } else {
                    Health::KeyMismatch
                };
                let mut o = Outcome::new(f.held, t.cn.clone(), health, String::new());
                o.disposal = Some((
                    ActionKind::Archive,
                    "duplicate",
                    format!(
                        "duplicate: {} certificates of {} are valid; the newest with a usable key, {}, is kept{}",
                        certs.iter().filter(|c| c.valid()).count(),
                        t.cn,
                        k.thumb(),
                        key_note(f.held.key)
                    ),
                ));
                out.push(o);
            } else {
                out.push(self.keeper(t, v, f));
            }
        }
    }

    /// The newest valid certificate of an eligible template.
    fn keeper(&self, t: &Template, v: &Verdict, f: &Facts<'a>) -> Outcome<'a> {
        let info = &f.held.info;
        let key_ok = f.held.key == KeyStatus::Paired;
        let mut o = Outcome::new(
            f.held,
            t.cn.clone(),
            if key_ok {
                Health::Healthy
            } else {
                Health::KeyMismatch
            },
            String::new(),
        );
        if t.enrollment_flags
            .contains(EnrollmentFlags::SKIP_AUTO_RENEWAL)
        {
            o.keep_code = "skip_auto_renewal";
            o.keep = format!(
                "the template sets SKIP_AUTO_RENEWAL: enrolled once, never renewed; kept until it expires at {}{}",
                fmt_time(info.not_after),
                key_note(f.held.key)
            );
            return o;
        }
        let r = renewal(
            info.not_before,
            info.not_after,
            t.renewal_period,
            self.threshold(t),
        );
        o.renew_at = Some(r.at);
        o.keep_renew_at = Some(r.at);
        let bump = info
            .template
            .as_ref()
            .and_then(|id| id.major)
            .filter(|held| *held < t.revision)
            .filter(|_| self.settings().update_certificates_that_use_templates);
        let mut schedule_note = String::new();
        if let Some(held) = bump {
            let text = format!(
                "template {} is now at major version {} and this certificate has {held}: every holder re-enrolls",
                t.cn, t.revision
            );
            if !v.renewal_only {
                if key_ok {
                    o.health = Health::Due;
                }
                o.keep = text.clone();
                o.keep_code = "major_version";
                o.wish = Some(self.wish(
                    t,
                    ActionKind::Reenroll(ReenrollWhy::MajorVersion {
                        held,
                        current: t.revision,
                    }),
                    None,
                    format!("{text}; the old certificate is archived once replaced"),
                ));
                return o;
            }
            schedule_note = format!(
                "; {text}, but {} is renewal-only, so it renews on schedule instead",
                t.cn
            );
        }
        if self.now >= r.at {
            if key_ok {
                o.health = Health::Due;
            }
            let due = format!(
                "renewal due since {} ({}){schedule_note}",
                fmt_time(r.at),
                r.basis_text()
            );
            o.keep = due.clone();
            o.keep_code = "renewal_due";
            o.wish = Some(if key_ok {
                self.wish(
                    t,
                    ActionKind::Renew,
                    Some(r.at),
                    format!("{due}: renew, signed by the current certificate"),
                )
            } else {
                self.wish(
                    t,
                    ActionKind::Reenroll(ReenrollWhy::KeyUnusable),
                    Some(r.at),
                    format!(
                        "{due}, but {}: it cannot sign a renewal, so enroll anew with the account's credentials; the old certificate is archived once replaced",
                        key_problem(f.held.key)
                    ),
                )
            });
        } else {
            o.keep = format!("{r}{schedule_note}{}", key_note(f.held.key));
        }
        o
    }

    /// A group whose template is superseded (update option on) by the eligible
    /// template `by`, whose newest valid certificate is `by_keeper`.
    fn superseded_group(
        &self,
        t: &Template,
        by: usize,
        by_keeper: Option<&HeldCertificate>,
        certs: &[Facts<'a>],
        out: &mut Vec<Outcome<'a>>,
    ) {
        let housekeeping = self.settings().renew_expired_update_pending_remove_revoked;
        let target = &self.index.templates[by];
        let remove_invalid = t
            .enrollment_flags
            .contains(EnrollmentFlags::REMOVE_INVALID_CERTIFICATE_FROM_PERSONAL_STORE);
        let superseded = format!("template {} is superseded by {}", t.cn, target.cn);
        let candidate = certs.iter().rev().find(|f| !f.revoked);
        for f in certs {
            let health = if f.expired {
                Health::Expired
            } else {
                Health::Due
            };
            if f.revoked {
                out.push(Outcome::revoked(f, &t.cn, housekeeping, Some(&superseded)));
                continue;
            }
            let mut o = Outcome::new(f.held, t.cn.clone(), health, String::new());
            if let Some(k) = by_keeper {
                o.disposal = Some((
                    ActionKind::Archive,
                    "superseded",
                    format!(
                        "{superseded}, whose certificate {} is held: archived",
                        k.info.thumbprint
                    ),
                ));
                out.push(o);
                continue;
            }
            if remove_invalid {
                o.disposal = Some((
                    ActionKind::Remove,
                    "superseded",
                    format!(
                        "{superseded}; the template sets REMOVE_INVALID_CERTIFICATE_FROM_PERSONAL_STORE: moved out of my/ to archive/"
                    ),
                ));
            }
            o.keep_code = "superseded";
            if candidate.is_some_and(|c| std::ptr::eq(c, f)) {
                o.keep = superseded.clone();
                o.wish = Some(Wish {
                    target: lower(&target.cn),
                    target_cn: target.cn.clone(),
                    kind: ActionKind::Reenroll(ReenrollWhy::Superseded {
                        by: target.cn.clone(),
                    }),
                    renew_at: None,
                    reason: format!(
                        "{superseded}: enroll {}, then archive this certificate",
                        target.cn
                    ),
                });
            } else {
                o.keep = format!(
                    "{superseded}; archived once a certificate of {} is installed",
                    target.cn
                );
            }
            out.push(o);
        }
    }

    /// A group whose template is no longer published or permitted (or
    /// superseded while updates are off): kept until expiry, not renewed.
    fn orphaned_group(
        &self,
        t: &Template,
        why: &str,
        certs: &[Facts<'a>],
        out: &mut Vec<Outcome<'a>>,
    ) {
        let housekeeping = self.settings().renew_expired_update_pending_remove_revoked;
        let remove_invalid = t
            .enrollment_flags
            .contains(EnrollmentFlags::REMOVE_INVALID_CERTIFICATE_FROM_PERSONAL_STORE);
        let keeper = kept_certificate(certs);
        for f in certs {
            let info = &f.held.info;
            let mut o;
            if f.revoked {
                o = Outcome::revoked(f, &t.cn, housekeeping, Some(why));
            } else if f.expired {
                let expired = format!("expired at {}", fmt_time(info.not_after));
                o = Outcome::new(
                    f.held,
                    t.cn.clone(),
                    Health::Expired,
                    format!("{expired}; {why}: nothing replaces it"),
                );
                if housekeeping && remove_invalid {
                    o.disposal = Some((
                        ActionKind::Remove,
                        "expired",
                        format!(
                            "{expired}; {why}; the template sets REMOVE_INVALID_CERTIFICATE_FROM_PERSONAL_STORE: moved out of my/ to archive/"
                        ),
                    ));
                }
            } else if let Some(k) = keeper.filter(|k| !std::ptr::eq(*k, f)) {
                o = Outcome::new(f.held, t.cn.clone(), Health::Orphaned, String::new());
                o.disposal = Some((
                    ActionKind::Archive,
                    "duplicate",
                    format!(
                        "duplicate: the newest valid certificate of {} with a usable key, {}, is kept{}",
                        t.cn,
                        k.thumb(),
                        key_note(f.held.key)
                    ),
                ));
            } else {
                let health = if f.held.key == KeyStatus::Paired {
                    Health::Orphaned
                } else {
                    Health::KeyMismatch
                };
                o = Outcome::new(
                    f.held,
                    t.cn.clone(),
                    health,
                    format!(
                        "orphaned: {why}; kept until it expires at {}, not renewed{}",
                        fmt_time(info.not_after),
                        key_note(f.held.key)
                    ),
                );
            }
            out.push(o);
        }
    }

    /// A certificate whose template is gone from the directory: kept until it
    /// expires; a revoked one is removed (the CRL is knowledge enough).
    fn deleted(&self, f: &Facts<'a>, label: String) -> Outcome<'a> {
        let info = &f.held.info;
        let why = format!("template {label} is no longer in the directory");
        let housekeeping = self.settings().renew_expired_update_pending_remove_revoked;
        let (health, keep) = if f.revoked {
            (
                Health::Revoked,
                format!(
                    "{}; {why}; left in place: {HOUSEKEEPING} is off in the policy",
                    revoked_text(f)
                ),
            )
        } else if f.expired {
            (
                Health::Expired,
                format!(
                    "expired at {}; {why}: nothing replaces it",
                    fmt_time(info.not_after)
                ),
            )
        } else {
            (
                Health::Orphaned,
                format!(
                    "orphaned: {why}; kept until it expires at {}, not renewed",
                    fmt_time(info.not_after)
                ),
            )
        };
        let mut o = Outcome::new(f.held, label, health, keep);
        if f.revoked {
            o.keep_code = "housekeeping_off";
        } else if !f.expired {
            o.keep_code = "template_deleted";
        }
        if f.revoked && housekeeping {
            o.disposal = Some((
                ActionKind::Remove,
                "revoked",
                format!("{}; {why}: moved out of my/ to archive/", revoked_text(f)),
            ));
        }
        o
    }

    /// A certificate the planner must not act on: only Keep (and Notify).
    fn unknowable(&self, f: &Facts<'a>, label: String, why: String) -> Outcome<'a> {
        let health = if f.revoked {
            Health::Revoked
        } else if f.expired {
            Health::Expired
        } else {
            Health::Orphaned
        };
        let mut state = String::new();
        if f.revoked {
            state = format!("{}; ", revoked_text(f));
        } else if f.expired {
            state = format!("expired at {}; ", fmt_time(f.held.info.not_after));
        }
        let mut o = Outcome::new(
            f.held,
            label,
            health,
            format!("{state}{why}: nothing is done until every template can be read"),
        );
        o.keep_code = "template_unreadable";
        o
    }

    fn wish(
        &self,
        t: &Template,
        kind: ActionKind,
        renew_at: Option<OffsetDateTime>,
        reason: String,
    ) -> Wish {
        Wish {
            target: lower(&t.cn),
            target_cn: t.cn.clone(),
            kind,
            renew_at,
            reason,
        }
    }

    /// Whether template `cn` may send a request now.
    fn slot(&mut self, cn: &str, pending: &[&'a PendingRequest]) -> Slot<'a> {
        let s = self.settings();
        if let Some(&f) = self.index.failures.get(&lower(cn)) {
            let last = failure_time(f.last_failure, self.now);
            if let Some(until) = backoff_until(f.count, last, s.schedule_interval)
                && self.now < until
            {
                self.wake(until);
                let when = if last < f.last_failure {
                    format!(
                        "recorded at {}, later than now, so counted as now",
                        fmt_time(f.last_failure)
                    )
                } else {
                    format!("last at {}", fmt_time(last))
                };
                return Slot::Busy(
                    "backoff",
                    format!(
                        "backing off after {} failed attempt{} ({when}: {}): next attempt after {} ({} after the last failure)",
                        f.count,
                        if f.count == 1 { "" } else { "s" },
                        f.last_error,
                        fmt_time(until),
                        fmt_span(until - last),
                    ),
                );
            }
        }
        let Some(first) = pending.first() else {
            return Slot::Free;
        };
        if !s.renew_expired_update_pending_remove_revoked {
            return Slot::Busy(
                "housekeeping_off",
                format!(
                    "request {} is pending, and {HOUSEKEEPING} is off in the policy: it is not retrieved",
                    first.id
                ),
            );
        }
        let interval = s.pending_poll_interval;
        let mut due = None;
        let mut next_poll: Option<OffsetDateTime> = None;
        for p in pending {
            let at = p.last_poll.and_then(|t| t.checked_add(interval));
            match at {
                Some(at) if at > self.now => {
                    next_poll = Some(next_poll.map_or(at, |n| n.min(at)));
                }
                _ if due.is_none() => due = Some(*p),
                _ => {}
            }
        }
        if let Some(p) = due {
            if let Some(at) = self.now.checked_add(interval) {
                self.wake(at);
            }
            return Slot::Retrieve(p);
        }
        let next = next_poll.unwrap_or(self.now);
        self.wake(next);
        Slot::Busy(
            "request_in_flight",
            format!(
                "request {} is in flight ({}); next status check at {}",
                first.id,
                self.pending_state(first),
                fmt_time(next)
            ),
        )
    }

    fn pending_state(&self, p: &PendingRequest) -> String {
        match (&p.ca, &p.ca_request_id) {
            (Some(ca), Some(id)) => format!(
                "pending at {ca} as request {id} since {}",
                fmt_time(p.created_at)
            ),
            (Some(ca), None) => format!(
                "sent to {ca} at {} without a request ID in reply",
                fmt_time(p.created_at)
            ),
            (None, _) => format!(
                "written at {} and never sent (an interrupted run)",
                fmt_time(p.created_at)
            ),
        }
    }

    fn pending_text(&self, p: &PendingRequest) -> String {
        let last = match p.last_poll {
            Some(t) => format!("; last asked at {}", fmt_time(t)),
            None => String::new(),
        };
        let replaces = match &p.replaces {
            Some(th) => format!("; replaces {th}"),
            None => String::new(),
        };
        format!(
            "request {} for {}: {}{last}{replaces}",
            p.id,
            p.template,
            self.pending_state(p)
        )
    }

    fn retrieve(&self, p: &PendingRequest) -> Action {
        let what = if p.ca.is_none() {
            "send it and install the certificate when issued"
        } else {
            "ask the CA for its status and install the certificate when issued"
        };
        Action {
            kind: ActionKind::Retrieve,
            template: Some(p.template.clone()),
            certificate: p.replaces.clone(),
            request: Some(p.id.clone()),
            renew_at: None,
            reason: format!("request {} {}: {what}", p.id, self.pending_state(p)),
            code: if p.ca.is_none() {
                "request_unsent"
            } else {
                "request_pending"
            },
        }
    }

    /// A Retrieve that will be `actions[index]`, and the held certificate its
    /// request replaces: the Retrieve speaks for that certificate (no Keep of
    /// its own) unless the certificate has an action of its own in this plan
    /// (moved out of my/, or already named by another request), or is not ours
    /// to name (foreign); then the Retrieve does not name it.
    fn claim_replaced(
        &self,
        mut action: Action,
        index: usize,
        by_thumb: &HashMap<&'a str, usize>,
        claimed: &mut BTreeSet<&'a str>,
        outcomes: &mut [Outcome<'a>],
    ) -> Action {
        let Some(replaces) = action.certificate.clone() else {
            return action;
        };
        match by_thumb.get(replaces.as_str()) {
            Some(&n) => {
                let o = &mut outcomes[n];
                let thumb = o.held.info.thumbprint.as_str();
                if o.disposal.is_some() || o.granted.is_some() || claimed.contains(thumb) {
                    action.certificate = None;
                    action.reason = format!(
                        "{}; the certificate it replaces, {replaces}, has its own action in this plan",
                        action.reason
                    );
                } else {
                    claimed.insert(thumb);
                    o.granted = Some(index);
                    action.reason = format!("{}; it replaces {replaces}", action.reason);
                }
            }
            None => {
                let foreign = self.input.store.certificates.iter().any(|c| {
                    c.info.template.is_none() && c.info.thumbprint.eq_ignore_ascii_case(&replaces)
                });
                if foreign {
                    action.certificate = None;
                }
            }
        }
        action
    }

    fn enroll(&self, t: &Template, v: Option<&Verdict>) -> Action {
        let by = v
            .map(|v| v.published_by.join(", "))
            .filter(|s| !s.is_empty())
            .map(|s| format!(" (published by {s})"))
            .unwrap_or_default();
        Action {
            kind: ActionKind::Enroll,
            template: Some(t.cn.clone()),
            certificate: None,
            request: None,
            renew_at: None,
            reason: format!(
                "{} is eligible{by} and no certificate of it is held: enroll",
                t.cn
            ),
            code: "not_held",
        }
    }

    fn cert_action(
        &self,
        o: &Outcome<'_>,
        kind: ActionKind,
        code: &'static str,
        renew_at: Option<OffsetDateTime>,
        reason: String,
    ) -> Action {
        Action {
            kind,
            template: Some(o.template.clone()),
            certificate: Some(o.thumb().to_string()),
            request: None,
            renew_at,
            reason,
            code,
        }
    }

    fn notify_text(&self, o: &Outcome<'_>) -> String {
        let info = &o.held.info;
        format!(
            "expires at {}: {}% of its lifetime remains (notification at {}% or less)",
            fmt_time(info.not_after),
            percent_remaining(info.not_before, info.not_after, self.now),
            self.settings().expiry_notification_percent
        )
    }
}

fn skip(cn: &str, code: &'static str, reason: String) -> Action {
    Action {
        kind: ActionKind::Skip,
        template: Some(cn.to_string()),
        certificate: None,
        request: None,
        renew_at: None,
        reason,
        code,
    }
}

/// The stable code of a request a certificate's situation asks for.
fn request_code(kind: &ActionKind) -> &'static str {
    match kind {
        ActionKind::Renew => "renewal_due",
        ActionKind::Reenroll(why) => why.name(),
        ActionKind::Enroll => "not_held",
        _ => "request_pending",
    }
}

/// The stable code of keeping a certificate of this health, unless a
/// more precise one is set.
fn keep_code(health: Health) -> &'static str {
    match health {
        Health::Healthy => "valid",
        other => other.name(),
    }
}

fn reason_text(v: &Verdict) -> String {
    v.reason
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_else(|| "eligible".to_string())
}

fn revoked_text(f: &Facts<'_>) -> String {
    format!(
        "revoked: the CRL of {} lists serial {}",
        f.held.info.issuer, f.held.info.serial
    )
}

fn key_problem(key: KeyStatus) -> &'static str {
    match key {
        KeyStatus::Paired => "its private key is in place",
        KeyStatus::Missing => "its private key is missing (no key.pem)",
        KeyStatus::Mismatch => "its key.pem does not hold its private key",
    }
}

/// "; its private key is missing ..." for unpaired keys, empty otherwise.
fn key_note(key: KeyStatus) -> String {
    match key {
        KeyStatus::Paired => String::new(),
        other => format!(
            "; {}: it will be re-enrolled rather than renewed when due",
            key_problem(other)
        ),
    }
}
