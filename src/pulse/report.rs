//! What a pulse did, for people (`pulse` prints it), scripts (`--json`, a
//! stable interface) and the metrics file.

use serde::Serialize;
use time::OffsetDateTime;

use super::events::Event;
use super::observe::Observation;
use crate::planner::{ActionKind, Plan};

/// One thing that happened (or, in a dry run, would happen).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Outcome {
    pub event: Event,
    pub event_id: u32,
    pub template: Option<String>,
    /// The certificate concerned: the new one when one was installed.
    pub thumbprint: Option<String>,
    pub message: String,
    /// The SCEP profile concerned (then `template` is null).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

impl Outcome {
    pub fn new(
        event: Event,
        template: Option<&str>,
        thumbprint: Option<&str>,
        message: String,
    ) -> Outcome {
        Outcome {
            event,
            event_id: event.id(),
            template: template.map(str::to_string),
            thumbprint: thumbprint.map(str::to_string),
            message,
            profile: None,
        }
    }

    /// An outcome of a SCEP profile.
    pub fn scep(event: Event, profile: &str, thumbprint: Option<&str>, message: String) -> Outcome {
        Outcome {
            profile: Some(profile.to_string()),
            ..Outcome::new(event, None, thumbprint, message)
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub account: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub dry_run: bool,
    /// The plan's actions, by kind name, that were due, and the skips with
    /// their reasons (why a template is not enrolled: not published, no
    /// right, unusable entry...), as `plan --json` lists them; keeps are left
    /// out. A skip has kind `"skip"` and changes nothing.
    pub planned: Vec<PlannedAction>,
    pub outcomes: Vec<Outcome>,
    /// Whether no failure happened.
    pub ok: bool,
    /// When something falls due next (a renewal, a poll, the end of a
    /// backoff), planned from the state the pulse left; None when nothing is
    /// scheduled besides the worker's own schedule.
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_wake: Option<OffsetDateTime>,
    /// LDAP searches the directory snapshot took.
    pub directory_searches: usize,
    /// Whether Public Key Services was found unchanged by its markers and
    /// not read again: its entries are then those of the store's saved
    /// snapshot.
    pub directory_reused: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedAction {
    pub kind: &'static str,
    pub template: Option<String>,
    pub certificate: Option<String>,
    pub reason: String,
    /// The stable code of the reason (as in `plan --json`).
    pub reason_code: &'static str,
    /// The SCEP profile of a SCEP action (then `template` is null).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

fn planned(plan: &Plan) -> Vec<PlannedAction> {
    plan.actions
        .iter()
        .filter(|a| a.kind != ActionKind::Keep)
        .map(|a| PlannedAction {
            kind: a.kind.name(),
            template: a.template.clone(),
            certificate: a.certificate.clone(),
            reason: a.reason.clone(),
            reason_code: a.code,
            profile: None,
        })
        .collect()
}

impl Report {
    pub fn new(account: &str, at: OffsetDateTime, plan: &Plan) -> Report {
        Report {
            account: account.to_string(),
            at,
            dry_run: false,
            planned: planned(plan),
            outcomes: Vec::new(),
            ok: true,
            next_wake: plan.next_wake,
            directory_searches: 0,
            directory_reused: false,
        }
    }

    pub fn dry_run(
        account: &str,
        at: OffsetDateTime,
        plan: &Plan,
        _observed: &Observation,
    ) -> Report {
        Report {
            dry_run: true,
            ..Report::new(account, at, plan)
        }
    }

    /// Records and logs an outcome.
    pub fn note(&mut self, outcome: Outcome) {
        super::events::log(
            outcome.event,
            outcome.template.as_deref(),
            outcome.thumbprint.as_deref(),
            &outcome.message,
        );
        if outcome.event.is_failure() {
            self.ok = false;
        }
        self.outcomes.push(outcome);
    }

    /// Once all actions ran: when to pulse next, from `after`, a plan of what
    /// the pulse left (the certificates it installed, the backoffs it
    /// started, the requests left pending). The plan made before acting
    /// cannot know any of those.
    pub fn finish(&mut self, after: &Plan) {
        self.next_wake = after.next_wake;
    }

    /// Number of outcomes of an event.
    pub fn count(&self, event: Event) -> usize {
        self.outcomes.iter().filter(|o| o.event == event).count()
    }

    /// Whether the pulse changed anything in the store.
    pub fn changed_anything(&self) -> bool {
        self.outcomes.iter().any(|o| {
            matches!(
                o.event,
                Event::Installed
                    | Event::Replaced
                    | Event::Archived
                    | Event::Removed
                    | Event::Pending
                    | Event::TrustUpdated
            )
        })
    }

    /// One line for the log.
    pub fn summary(&self) -> String {
        let n = |e| self.count(e);
        format!(
            "{} installed, {} replaced, {} archived or removed, {} pending, {} failed",
            n(Event::Installed),
            n(Event::Replaced),
            n(Event::Archived) + n(Event::Removed),
            n(Event::Pending) + n(Event::StillPending),
            n(Event::Denied) + n(Event::Failed) + n(Event::Rejected),
        )
    }
}
