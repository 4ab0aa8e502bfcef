//! The events a pulse reports, each with a stable numeric ID and name (as
//! Windows logs autoenrollment events under CertificateServicesClient-
//! AutoEnrollment). Scripts, log searches and alerts key on the ID; the table
//! is in the README and must not be renumbered.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    PulseStarted,
    PulseFinished,
    PulseFailed,
    Installed,
    Replaced,
    Archived,
    Removed,
    Pending,
    StillPending,
    Expiring,
    TrustUpdated,
    Exported,
    Denied,
    Failed,
    Rejected,
    HookFailed,
    /// The metrics file could not be written (not fatal, like a failed hook).
    MetricsFailed,
    Skipped,
    TemplateUnusable,
    CrlIgnored,
    EndpointRefused,
    EnrollingAnew,
    /// A certificate to be revoked that the CA offers no way for its holder
    /// to revoke (SCEP, stock AD CS): the CA's administrator must.
    RevocationNeeded,
    /// The CA revoked a certificate at its holder's request (`unenroll --revoke`).
    Revoked,
}

impl Event {
    /// The stable numeric ID.
    pub fn id(self) -> u32 {
        match self {
            Event::PulseStarted => 1000,
            Event::PulseFinished => 1001,
            Event::PulseFailed => 1002,
            Event::Installed => 1100,
            Event::Replaced => 1101,
            Event::Archived => 1102,
            Event::Removed => 1103,
            Event::Pending => 1104,
            Event::StillPending => 1105,
            Event::Expiring => 1106,
            Event::TrustUpdated => 1107,
            Event::Exported => 1108,
            Event::Skipped => 1109,
            Event::Denied => 1200,
            Event::Failed => 1201,
            Event::Rejected => 1202,
            Event::HookFailed => 1203,
            Event::MetricsFailed => 1204,
            Event::TemplateUnusable => 1110,
            Event::CrlIgnored => 1111,
            Event::EndpointRefused => 1112,
            Event::EnrollingAnew => 1113,
            Event::RevocationNeeded => 1114,
            Event::Revoked => 1115,
        }
    }

    /// The stable name (the JSON spelling).
    pub fn name(self) -> &'static str {
        match self {
            Event::PulseStarted => "pulse_started",
            Event::PulseFinished => "pulse_finished",
            Event::PulseFailed => "pulse_failed",
            Event::Installed => "installed",
            Event::Replaced => "replaced",
            Event::Archived => "archived",
            Event::Removed => "removed",
            Event::Pending => "pending",
            Event::StillPending => "still_pending",
            Event::Expiring => "expiring",
            Event::TrustUpdated => "trust_updated",
            Event::Exported => "exported",
            Event::Skipped => "skipped",
            Event::Denied => "denied",
            Event::Failed => "failed",
            Event::Rejected => "rejected",
            Event::HookFailed => "hook_failed",
            Event::MetricsFailed => "metrics_failed",
            Event::TemplateUnusable => "template_unusable",
            Event::CrlIgnored => "crl_ignored",
            Event::EndpointRefused => "endpoint_refused",
            Event::EnrollingAnew => "enrolling_anew",
            Event::RevocationNeeded => "revocation_needed",
            Event::Revoked => "revoked",
        }
    }

    /// Whether the event is a failure (the pulse then exits non-zero).
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Event::PulseFailed | Event::Denied | Event::Failed | Event::Rejected
        )
    }

    /// Whether the event is a warning: something an administrator should fix
    /// or know about, that did not stop the pulse from doing its work.
    pub fn is_warning(self) -> bool {
        matches!(
            self,
            Event::Expiring
                | Event::MetricsFailed
                | Event::TemplateUnusable
                | Event::CrlIgnored
                | Event::EndpointRefused
                | Event::EnrollingAnew
                | Event::RevocationNeeded
        )
    }

    pub const ALL: [Event; 24] = [
        Event::PulseStarted,
        Event::PulseFinished,
        Event::PulseFailed,
        Event::Installed,
        Event::Replaced,
        Event::Archived,
        Event::Removed,
        Event::Pending,
        Event::StillPending,
        Event::Expiring,
        Event::TrustUpdated,
        Event::Exported,
        Event::Skipped,
        Event::Denied,
        Event::Failed,
        Event::Rejected,
        Event::HookFailed,
        Event::MetricsFailed,
        Event::TemplateUnusable,
        Event::CrlIgnored,
        Event::EndpointRefused,
        Event::EnrollingAnew,
        Event::RevocationNeeded,
        Event::Revoked,
    ];
}

/// Logs an event through tracing: failures as errors, warnings (see
/// [`Event::is_warning`]) as warnings, the rest as info. Fields: `event_id`, `event`, `template`,
/// `thumbprint`, then the message.
pub fn log(event: Event, template: Option<&str>, thumbprint: Option<&str>, message: &str) {
    let (id, name) = (event.id(), event.name());
    let template = template.unwrap_or("");
    let thumbprint = thumbprint.unwrap_or("");
    if event.is_failure() || event == Event::HookFailed {
        tracing::error!(
            event_id = id,
            event = name,
            template,
            thumbprint,
            "{message}"
        );
    } else if event.is_warning() {
        tracing::warn!(
            event_id = id,
            event = name,
            template,
            thumbprint,
            "{message}"
        );
    } else {
        tracing::info!(
            event_id = id,
            event = name,
            template,
            thumbprint,
            "{message}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_are_unique() {
        let mut ids: Vec<u32> = Event::ALL.iter().map(|e| e.id()).collect();
        let mut names: Vec<&str> = Event::ALL.iter().map(|e| e.name()).collect();
        ids.sort();
        ids.dedup();
        names.sort();
        names.dedup();
        assert_eq!(ids.len(), Event::ALL.len());
        assert_eq!(names.len(), Event::ALL.len());
        for e in Event::ALL {
            assert_eq!(serde_json::to_value(e).unwrap(), e.name());
        }
    }
}
