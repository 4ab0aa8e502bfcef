//! The NDES role's events, modeled on those of Intune's certificate
//! connector: a stable numeric ID per event and a diagnostic code per
//! outcome of a challenge check. Each is logged (`tracing`, fields
//! `event_id`, `event`, `code`) and recorded in the `ndes_events` table.
//! The table is in the README and must not be renumbered.

use time::OffsetDateTime;

use crate::ca::db::{Database, DbError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdesEvent {
    /// The challenge was checked and accepted; the request goes to the CA.
    ChallengeVerified,
    /// The challenge was accepted but the CA denied the request.
    VerifiedButRejected,
    /// The challenge was refused (unknown, forged, reused, mismatched).
    VerificationFailed,
    /// The challenge was genuine but past its lifetime.
    ChallengeExpired,
    /// The CA could not decide (directory or database unavailable).
    CaUnavailable,
    /// The outcome was recorded: a certificate issued, or the request pending.
    NotifySuccess,
    /// The outcome was recorded: no certificate (denied or failed).
    NotifyFailure,
}

impl NdesEvent {
    pub fn id(self) -> u32 {
        match self {
            NdesEvent::ChallengeVerified => 4000,
            NdesEvent::VerifiedButRejected => 4001,
            NdesEvent::VerificationFailed => 4002,
            NdesEvent::ChallengeExpired => 4003,
            NdesEvent::CaUnavailable => 4004,
            NdesEvent::NotifySuccess => 4005,
            NdesEvent::NotifyFailure => 4006,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            NdesEvent::ChallengeVerified => "challenge_verified",
            NdesEvent::VerifiedButRejected => "verified_but_rejected",
            NdesEvent::VerificationFailed => "verification_failed",
            NdesEvent::ChallengeExpired => "challenge_expired",
            NdesEvent::CaUnavailable => "ca_unavailable",
            NdesEvent::NotifySuccess => "notify_success",
            NdesEvent::NotifyFailure => "notify_failure",
        }
    }
}

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    pub at: i64,
    pub event_id: u32,
    pub code: String,
    pub transaction_id: Option<String>,
    pub request_id: Option<u64>,
    pub detail: String,
}

/// Logs `event` and records it; a database failure is logged, not raised
/// (the answer to the client does not depend on it).
pub fn record(
    db: &Database,
    event: NdesEvent,
    code: &str,
    transaction_id: Option<&str>,
    request_id: Option<u64>,
    detail: &str,
    now: OffsetDateTime,
) {
    tracing::info!(
        event_id = event.id(),
        event = event.name(),
        code,
        transaction_id,
        request_id,
        "{detail}"
    );
    let stored = db.write_other("recording an NDES event", |c| {
        c.execute(
            "INSERT INTO ndes_events (at, event_id, code, transaction_id, request_id, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            rusqlite::params![
                now.unix_timestamp(),
                event.id(),
                code,
                transaction_id,
                request_id.map(|r| r as i64),
                detail
            ],
        )
    });
    if let Err(e) = stored {
        tracing::warn!(error = %e, "cannot record an NDES event");
    }
}

/// Every recorded event, oldest first.
pub fn list(db: &Database) -> Result<Vec<EventRecord>, DbError> {
    db.read_other("reading the NDES events", |c| {
        let mut stmt = c.prepare(
            "SELECT at, event_id, code, transaction_id, request_id, detail
             FROM ndes_events ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(EventRecord {
                at: r.get(0)?,
                event_id: r.get(1)?,
                code: r.get(2)?,
                transaction_id: r.get(3)?,
                request_id: r.get::<_, Option<i64>>(4)?.map(|v| v as u64),
                detail: r.get(5)?,
            })
        })?;
        rows.collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::ndes::challenge::Diagnostic;

    /// The README's tables name every event and every diagnostic code.
    #[test]
    fn the_readme_lists_every_event_and_code() {
        let readme = include_str!("../../../README.md");
        for e in [
            NdesEvent::ChallengeVerified,
            NdesEvent::VerifiedButRejected,
            NdesEvent::VerificationFailed,
            NdesEvent::ChallengeExpired,
            NdesEvent::CaUnavailable,
            NdesEvent::NotifySuccess,
            NdesEvent::NotifyFailure,
        ] {
            let row = format!("| {} | `{}` |", e.id(), e.name());
            assert!(readme.contains(&row), "README lacks {row}");
        }
        for d in [
            Diagnostic::Verified,
            Diagnostic::Missing,
            Diagnostic::Unknown,
            Diagnostic::Forged,
            Diagnostic::Expired,
            Diagnostic::Reused,
            Diagnostic::SubjectMismatch,
            Diagnostic::SanMismatch,
            Diagnostic::KeyUsageMismatch,
        ] {
            let row = format!("| `{}` |", d.code());
            assert!(readme.contains(&row), "README lacks {row}");
        }
    }
}
