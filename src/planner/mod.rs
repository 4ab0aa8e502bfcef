//! The autoenrollment planner: a pure function from what the directory says,
//! what the store holds, the CRLs, the worker's memory, the local policy and
//! `now` to a [`Plan`]: what to enroll, renew, re-enroll, retrieve, archive,
//! remove, keep, notify about or skip, each with a reason a person can act on,
//! and when to look again.
//!
//! Architecture invariant: the planner never does I/O and never reads the
//! clock; `now` is an input, so `autoenroll plan --at TIME` is the same code as
//! a pulse, and every rule is covered by table tests.
//!
//! The rules are those of adcs.md section 5; where this engine had to choose,
//! the choice leans toward keeping things:
//! - certificates without a template extension are foreign: never any action;
//! - a template that could not be read means partial knowledge: its
//!   certificates are kept and nothing else is done for them;
//! - a replaced certificate is archived, never deleted; `Remove` also moves to
//!   `archive/`, it only differs in that it happens whether or not a
//!   replacement is made;
//! - REMOVE_INVALID_CERTIFICATE_FROM_PERSONAL_STORE acts on expired and revoked
//!   certificates only while the housekeeping option is on, and on superseded
//!   ones only while the update option is on (an option that is off means
//!   "leave those alone");
//! - SKIP_AUTO_RENEWAL stops renewals and the re-enrollment of an expired
//!   certificate; a revocation, supersedence or major version bump still acts;
//! - `SkipReason::AlreadyInDirectory` only blocks new enrollments: a held
//!   certificate of such a template still renews (it is usually the very
//!   certificate the directory holds);
//! - so does `SkipReason::SupersedenceUnknown` (a published template that
//!   cannot be used names it in its `msPKI-Supersede-Templates`, or has a
//!   supersede list that cannot be read): no new certificate of a template that
//!   may have been replaced, but the held one stays working; the re-enrollment
//!   of a certificate of a template it supersedes is not made either;
//! - a major version bump on a renewal-only template renews on schedule, since
//!   a re-enrollment would need an enrollment agent signature;
//! - of several valid certificates of one template, the newest *with a usable
//!   key* is kept: archiving the only working one for a newer one without its
//!   key would leave nothing usable.
//!
//! Files: `settings` (the policy's share), `renewal` (the timing rules),
//! `plan` (actions and their JSON), `health` (`status`), `evaluate` (the rules).

mod evaluate;
pub mod health;
pub mod plan;
pub mod renewal;
pub mod scep;
pub mod settings;

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;

use time::OffsetDateTime;

use crate::directory::Verdict;
use crate::model::Template;
use crate::pki::Revocations;
use crate::store::{State, StoreSnapshot};

pub use health::{CertificateStatus, Health};
pub use plan::{Action, ActionKind, Plan, ReenrollWhy};
pub use renewal::{
    Renewal, RenewalBasis, backoff_until, failure_time, notify_from, renewal, renewal_time,
};
pub use settings::Settings;

/// What the planner needs from the directory.
#[derive(Debug, Clone, Copy)]
pub struct DirectoryView<'a> {
    /// Every usable template (`DirectorySnapshot::templates`, without their
    /// security descriptors).
    pub templates: &'a [Template],
    /// The verdict of every template, the unusable ones included (those have a
    /// verdict with `SkipReason::Unusable` and no entry in `templates`).
    pub verdicts: &'a [Verdict],
}

/// Everything a plan is a function of.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    pub settings: &'a Settings,
    pub directory: DirectoryView<'a>,
    pub store: &'a StoreSnapshot,
    /// Revoked (issuer, serial) pairs from the directory's CRLs.
    pub revocations: &'a Revocations,
    /// Failure counts for the backoff.
    pub state: &'a State,
    pub now: OffsetDateTime,
}

/// Plans one pulse. With autoenrollment disabled in the policy, the plan is
/// empty and schedules nothing.
pub fn plan(input: &PlanInput) -> Plan {
    if !input.settings.enabled {
        return Plan::default();
    }
    let ev = evaluate::evaluate(input);
    Plan {
        actions: ev.actions,
        next_wake: ev.wakes.into_iter().filter(|t| *t > input.now).min(),
    }
}

/// The health of every held certificate, pending request and unreadable store
/// entry, for `autoenroll status`; ordered by template, then thumbprint. It is
/// computed even when the policy is disabled.
pub fn assess(input: &PlanInput) -> Vec<CertificateStatus> {
    evaluate::evaluate(input).statuses
}
