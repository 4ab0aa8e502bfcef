//! The planner's output: a list of actions, each with the reason a person can
//! act on, and the next moment the plan would change. Also its stable JSON
//! form (`autoenroll plan --json`).

use std::cmp::Ordering;
use std::fmt;

use serde::Serialize;
use serde::ser::{SerializeStruct, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// What the planner decided for this run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Ordered by template cn (ignoring case), then kind (in the order of
    /// [`ActionKind`]), then certificate thumbprint. One action per
    /// certificate and one reason each: a certificate is named by exactly one
    /// action (its disposal, the request that replaces it, Keep or Notify), and
    /// a template is skipped only when no other action names it. A request
    /// for a certificate moved out of `my/` in the same plan names no
    /// certificate (the move happens whether or not the request succeeds).
    pub actions: Vec<Action>,
    /// The earliest moment after `now` at which the plan would be different (a
    /// renewal time, a pending poll, the end of a backoff, the start of an expiry
    /// notification, an expiry). None when nothing is scheduled.
    pub next_wake: Option<OffsetDateTime>,
}

/// One thing to do (or deliberately not do), with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub kind: ActionKind,
    /// Template cn. For requests it is the template to request (for a
    /// superseded certificate: the superseding template); for certificate
    /// actions, the certificate's template (its name or OID when the directory
    /// no longer has it).
    pub template: Option<String>,
    /// Thumbprint of the certificate acted on. For Renew and Reenroll: the
    /// certificate the new one replaces (archived once the new one is
    /// installed; None for a Reenroll whose certificate a Remove or Archive of
    /// the same plan moves out of `my/`); for Retrieve: the request's
    /// `replaces`, unless that certificate has an action of its own.
    pub certificate: Option<String>,
    /// Local id of the pending request (`request/<id>/`), for Retrieve.
    pub request: Option<String>,
    /// Keep and Notify: when the certificate renews (None: it never renews).
    /// Renew: the moment it became due.
    pub renew_at: Option<OffsetDateTime>,
    /// Why, for a person.
    pub reason: String,
    /// Why, for scripts: a stable snake_case code of the main cause (a
    /// skip's is its verdict's [`crate::model::SkipReason::code`]); the
    /// README lists them.
    pub code: &'static str,
}

/// The kinds of action, in the order a plan lists them within a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionKind {
    /// A new request for an eligible template that has no certificate.
    Enroll,
    /// A renewal request signed by the current certificate's key.
    Renew,
    /// A new request with the account's own credentials that replaces a held
    /// certificate which cannot or must not be renewed.
    Reenroll(ReenrollWhy),
    /// Ask the CA about a pending request (or send one that was never sent).
    Retrieve,
    /// Move a replaced or duplicate certificate from `my/` to `archive/`.
    Archive,
    /// Move an invalid (expired, revoked, superseded) certificate from `my/` to
    /// `archive/` now, whether or not a replacement is made.
    Remove,
    /// Leave the certificate in place; `renew_at` says when it renews.
    Keep,
    /// Keep, with an expiry notification: little of the certificate's lifetime
    /// remains and nothing in this plan replaces it. (A certificate a request
    /// of this plan replaces gets no Notify; the request's reason says how
    /// much lifetime remains.)
    Notify,
    /// The template gets no request in this plan, and no other action names
    /// it (otherwise that action says why no request is made).
    Skip,
}

/// Why a certificate is re-enrolled rather than renewed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReenrollWhy {
    /// It expired: an expired certificate cannot sign a renewal.
    Expired,
    /// The CA's CRL lists it.
    Revoked,
    /// Its template is superseded by `by` (`msPKI-Supersede-Templates`).
    Superseded { by: String },
    /// The template's major version (`revision`) went up.
    MajorVersion { held: u32, current: u32 },
    /// Its private key is missing or does not match: it cannot sign a renewal.
    KeyUnusable,
}

impl ReenrollWhy {
    /// A stable name for scripts: `expired`, `revoked`, `superseded`,
    /// `major_version`, `key_unusable`.
    pub fn name(&self) -> &'static str {
        match self {
            ReenrollWhy::Expired => "expired",
            ReenrollWhy::Revoked => "revoked",
            ReenrollWhy::Superseded { .. } => "superseded",
            ReenrollWhy::MajorVersion { .. } => "major_version",
            ReenrollWhy::KeyUnusable => "key_unusable",
        }
    }
}

impl ActionKind {
    /// The stable name of the kind: "enroll", "renew", "reenroll", "retrieve",
    /// "archive", "remove", "keep", "notify", "skip".
    pub fn name(&self) -> &'static str {
        match self {
            ActionKind::Enroll => "enroll",
            ActionKind::Renew => "renew",
            ActionKind::Reenroll(_) => "reenroll",
            ActionKind::Retrieve => "retrieve",
            ActionKind::Archive => "archive",
            ActionKind::Remove => "remove",
            ActionKind::Keep => "keep",
            ActionKind::Notify => "notify",
            ActionKind::Skip => "skip",
        }
    }

    /// Whether this kind sends something to a CA (at most one per template).
    pub fn is_request(&self) -> bool {
        matches!(
            self,
            ActionKind::Enroll | ActionKind::Renew | ActionKind::Reenroll(_) | ActionKind::Retrieve
        )
    }

    /// Position in a plan's order.
    pub(crate) fn rank(&self) -> u8 {
        match self {
            ActionKind::Enroll => 0,
            ActionKind::Renew => 1,
            ActionKind::Reenroll(_) => 2,
            ActionKind::Retrieve => 3,
            ActionKind::Archive => 4,
            ActionKind::Remove => 5,
            ActionKind::Keep => 6,
            ActionKind::Notify => 7,
            ActionKind::Skip => 8,
        }
    }
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Action {
    /// The total order of a plan: template (ignoring case), kind, thumbprint,
    /// request, then the remaining fields so that equal inputs give equal plans.
    pub(crate) fn plan_order(&self, other: &Action) -> Ordering {
        cmp_cn(self.template.as_deref(), other.template.as_deref())
            .then_with(|| self.kind.rank().cmp(&other.kind.rank()))
            .then_with(|| self.certificate.cmp(&other.certificate))
            .then_with(|| self.request.cmp(&other.request))
            .then_with(|| self.template.cmp(&other.template))
            .then_with(|| self.renew_at.cmp(&other.renew_at))
            .then_with(|| self.reason.cmp(&other.reason))
            .then_with(|| self.code.cmp(other.code))
            .then_with(|| why_key(&self.kind).cmp(&why_key(&other.kind)))
    }
}

/// Orders template names without regard to ASCII case, without allocating;
/// None (no template) first.
pub(crate) fn cmp_cn(a: Option<&str>, b: Option<&str>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a
            .bytes()
            .map(|c| c.to_ascii_lowercase())
            .cmp(b.bytes().map(|c| c.to_ascii_lowercase())),
        _ => a.is_some().cmp(&b.is_some()),
    }
}

fn why_key(kind: &ActionKind) -> Option<(&'static str, String)> {
    match kind {
        ActionKind::Reenroll(why) => Some((why.name(), format!("{why:?}"))),
        _ => None,
    }
}

impl Plan {
    /// The request actions (Enroll, Renew, Reenroll, Retrieve).
    pub fn requests(&self) -> impl Iterator<Item = &Action> {
        self.actions.iter().filter(|a| a.kind.is_request())
    }
}

/// RFC 3339 or an error serde reports (a year outside 0..=9999).
fn rfc3339<E: serde::ser::Error>(t: Option<OffsetDateTime>) -> Result<Option<String>, E> {
    t.map(|t| t.format(&Rfc3339).map_err(E::custom)).transpose()
}

impl Serialize for Action {
    /// `{"action", "template", "certificate", "request", "renew_at", "reason",
    /// "reason_code", "why"}`; `why` names the cause of a reenroll (null otherwise), and
    /// `superseded_by` / `held_version` / `current_version` detail it.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Action", 11)?;
        s.serialize_field("action", self.kind.name())?;
        s.serialize_field("template", &self.template)?;
        s.serialize_field("certificate", &self.certificate)?;
        s.serialize_field("request", &self.request)?;
        s.serialize_field("renew_at", &rfc3339::<S::Error>(self.renew_at)?)?;
        s.serialize_field("reason", &self.reason)?;
        s.serialize_field("reason_code", self.code)?;
        let why = match &self.kind {
            ActionKind::Reenroll(w) => Some(w),
            _ => None,
        };
        s.serialize_field("why", &why.map(ReenrollWhy::name))?;
        let by = match why {
            Some(ReenrollWhy::Superseded { by }) => Some(by.as_str()),
            _ => None,
        };
        s.serialize_field("superseded_by", &by)?;
        let (held, current) = match why {
            Some(ReenrollWhy::MajorVersion { held, current }) => (Some(*held), Some(*current)),
            _ => (None, None),
        };
        s.serialize_field("held_version", &held)?;
        s.serialize_field("current_version", &current)?;
        s.end()
    }
}

impl Serialize for Plan {
    /// `{"actions": [...], "next_wake": RFC 3339 or null}`.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Plan", 2)?;
        s.serialize_field("actions", &self.actions)?;
        s.serialize_field("next_wake", &rfc3339::<S::Error>(self.next_wake)?)?;
        s.end()
    }
}
