//! The planner's share of the local autoenrollment policy: the switches of
//! Windows' `AEPolicy` in words, the expiry notification level, and the timing
//! knobs (backoff cap, pending poll interval, per-template renewal thresholds).
//!
//! The policy file reader builds this; the planner never reads files.

use std::collections::BTreeMap;

/// What the local policy says about autoenrollment (adcs.md section 5, "Policy").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Autoenrollment is on. Off (`AEPolicy` 0x8000) plans nothing at all.
    pub enabled: bool,
    /// "Renew expired certificates, update pending certificates, and remove
    /// revoked certificates" (`AEPolicy` 0x2|0x4): expired certificates are
    /// re-enrolled, pending requests are retrieved, revoked ones are removed.
    /// Off: expired and revoked certificates and pending requests are left alone.
    pub renew_expired_update_pending_remove_revoked: bool,
    /// "Update certificates that use certificate templates" (`AEPolicy` 0x1):
    /// superseded templates and major-version bumps trigger re-enrollment.
    pub update_certificates_that_use_templates: bool,
    /// Windows' `OfflineExpirationPercent`: a Notify is planned while this much
    /// of a certificate's lifetime, or less, remains (0 turns it off).
    pub expiry_notification_percent: u8,
    /// The worker's schedule (8 hours on Windows); the backoff after failures
    /// never waits longer than this.
    pub schedule_interval: time::Duration,
    /// How often a pending request is asked about at the CA.
    pub pending_poll_interval: time::Duration,
    /// Per-template renewal threshold, keyed by template cn (matched without
    /// regard to case): renew when this percentage of the lifetime *remains*
    /// (as Intune states it). It can only bring a renewal forward, never delay it.
    pub renewal_threshold_percent: BTreeMap<String, u8>,
}

impl Default for Settings {
    /// Enabled with both boxes ticked (`AEPolicy` 7), notification at 10%,
    /// an 8-hour schedule and hourly polls of pending requests.
    fn default() -> Self {
        Settings {
            enabled: true,
            renew_expired_update_pending_remove_revoked: true,
            update_certificates_that_use_templates: true,
            expiry_notification_percent: 10,
            schedule_interval: time::Duration::hours(8),
            pending_poll_interval: time::Duration::hours(1),
            renewal_threshold_percent: BTreeMap::new(),
        }
    }
}

impl Settings {
    /// The thresholds keyed by lower-case cn, for lookups in one step.
    pub(crate) fn thresholds_by_lower_cn(&self) -> std::collections::HashMap<String, u8> {
        self.renewal_threshold_percent
            .iter()
            .map(|(cn, pct)| (cn.to_lowercase(), *pct))
            .collect()
    }
}
