//! The timing rules: when a held certificate renews, when an expiry
//! notification starts, and how long a failing template waits.
//!
//! Renewal follows adcs.md section 5: from the *issued* certificate's own dates
//! (a CA may have shortened the lifetime), `max(notBefore + 80% of lifetime,
//! notAfter - renewal period)`. The renewal period alone is not enough: a period
//! longer than 20% of the lifetime waits for the 80% point, a common surprise,
//! so the explanation says which rule decided. A policy threshold (percent of
//! lifetime remaining) may bring the time forward, never push it back.
//!
//! All arithmetic is checked: odd dates give odd answers, never a panic.

use std::fmt;

use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::model::Period;

/// Which rule set a renewal time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenewalBasis {
    /// `notAfter` minus the template's renewal period (`pKIOverlapPeriod`).
    RenewalPeriod(Period),
    /// The 80% point of the lifetime: the template states no renewal period, or
    /// one longer than 20% of this certificate's lifetime.
    EightyPercent { renewal_period: Option<Period> },
    /// The policy's threshold (percent of lifetime remaining) came earlier.
    Threshold { percent: u8 },
    /// The certificate's validity is empty or inverted: renew at `notAfter`.
    NoLifetime,
}

/// A renewal time and why it is that time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Renewal {
    pub at: OffsetDateTime,
    pub basis: RenewalBasis,
    /// The certificate's lifetime (`notAfter - notBefore`).
    pub lifetime: Duration,
    /// A policy threshold that would have come later than the template's rule
    /// and was therefore ignored.
    pub ignored_threshold: Option<u8>,
}

/// The renewal time of a certificate valid from `not_before` to `not_after`,
/// for a template whose renewal period is `renewal_period`, with an optional
/// policy threshold in percent of lifetime remaining. Always within
/// `[not_before, not_after]` when `not_before <= not_after`.
pub fn renewal_time(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    renewal_period: Option<Period>,
    threshold_percent: Option<u8>,
) -> OffsetDateTime {
    renewal(not_before, not_after, renewal_period, threshold_percent).at
}

/// [`renewal_time`] with its explanation.
pub fn renewal(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    renewal_period: Option<Period>,
    threshold_percent: Option<u8>,
) -> Renewal {
    let lifetime = not_after - not_before;
    if lifetime <= Duration::ZERO {
        return Renewal {
            at: not_after,
            basis: RenewalBasis::NoLifetime,
            lifetime,
            ignored_threshold: None,
        };
    }
    let eighty = fraction_after(not_before, lifetime, 80);
    // notAfter - period; a period longer than representable is "long ago".
    let window = renewal_period.and_then(|p| not_after.checked_sub(p.duration()));
    let (mut at, mut basis) = match (window, renewal_period) {
        (Some(w), Some(p)) if w >= eighty => (w, RenewalBasis::RenewalPeriod(p)),
        _ => (eighty, RenewalBasis::EightyPercent { renewal_period }),
    };
    let mut ignored_threshold = None;
    if let Some(pct) = threshold_percent {
        let pct = pct.min(100);
        // notAfter - pct% of lifetime = notBefore + (100 - pct)% of lifetime.
        let by_threshold = fraction_after(not_before, lifetime, 100 - u32::from(pct));
        if by_threshold < at {
            at = by_threshold;
            basis = RenewalBasis::Threshold { percent: pct };
        } else if by_threshold > at {
            ignored_threshold = Some(pct);
        }
    }
    Renewal {
        at,
        basis,
        lifetime,
        ignored_threshold,
    }
}

/// `start + percent% of span`, rounded down to whole nanoseconds.
fn fraction_after(start: OffsetDateTime, span: Duration, percent: u32) -> OffsetDateTime {
    let nanos = span.whole_nanoseconds() * i128::from(percent) / 100;
    start
        .checked_add(duration_from_nanos(nanos))
        .unwrap_or(start)
}

/// A duration from a nanosecond count, saturating at the type's range.
fn duration_from_nanos(nanos: i128) -> Duration {
    let secs = nanos / 1_000_000_000;
    let sub = (nanos % 1_000_000_000) as i32;
    match i64::try_from(secs) {
        Ok(s) => Duration::new(s, sub),
        Err(_) if nanos > 0 => Duration::MAX,
        Err(_) => Duration::MIN,
    }
}

impl fmt::Display for Renewal {
    /// "renews at 2027-01-05T10:00:00Z (80% of lifetime; the renewal period of
    /// 26 weeks is longer than 20% of the lifetime of 1 year)".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "renews at {} ({}", fmt_time(self.at), self.basis_text())?;
        if let Some(pct) = self.ignored_threshold {
            write!(
                f,
                "; the policy's threshold of {pct}% of lifetime remaining would be later and is ignored"
            )?;
        }
        f.write_str(")")
    }
}

impl Renewal {
    /// The rule that decided, in words.
    pub fn basis_text(&self) -> String {
        let lifetime = fmt_span(self.lifetime);
        match self.basis {
            RenewalBasis::RenewalPeriod(p) => {
                format!("renewal period of {p} before expiry")
            }
            RenewalBasis::EightyPercent {
                renewal_period: Some(p),
            } => format!(
                "80% of lifetime; the renewal period of {p} is longer than 20% of the lifetime of {lifetime}"
            ),
            RenewalBasis::EightyPercent {
                renewal_period: None,
            } => "80% of lifetime; the template states no renewal period".to_string(),
            RenewalBasis::Threshold { percent } => format!(
                "policy renewal threshold: {percent}% of the lifetime of {lifetime} remaining, earlier than the template's rule"
            ),
            RenewalBasis::NoLifetime => {
                "the certificate's validity period is empty: renew at its end".to_string()
            }
        }
    }
}

/// The moment a failing template may try again: `last_failure + 1h * 2^(count-1)`,
/// the wait capped at `cap` (the schedule interval). None when `count` is 0.
pub fn backoff_until(
    count: u32,
    last_failure: OffsetDateTime,
    cap: Duration,
) -> Option<OffsetDateTime> {
    let wait = backoff_wait(count, cap)?;
    Some(last_failure.checked_add(wait).unwrap_or(last_failure))
}

/// The moment a recorded failure counts from: its own time, or `now` when it
/// lies in the future. A failure recorded while the clock was ahead (or a
/// crafted `state.toml`) must not hold a template back until that future
/// moment plus the backoff; counted as now, the backoff is at most one cap long.
pub fn failure_time(recorded: OffsetDateTime, now: OffsetDateTime) -> OffsetDateTime {
    recorded.min(now)
}

/// The wait after `count` consecutive failures: 1h, 2h, 4h ... capped at `cap`
/// (a cap of zero or less means no cap).
pub fn backoff_wait(count: u32, cap: Duration) -> Option<Duration> {
    if count == 0 {
        return None;
    }
    // 2^40 hours is far beyond any sensible cap; stop doubling there.
    let exponent = (count - 1).min(40);
    let wait = Duration::hours(1i64 << exponent);
    Some(if cap > Duration::ZERO && wait > cap {
        cap
    } else {
        wait
    })
}

/// When `percent`% of the lifetime remains: the start of expiry notifications.
/// None when notifications are off (0%) or the validity is empty.
pub fn notify_from(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    percent: u8,
) -> Option<OffsetDateTime> {
    let lifetime = not_after - not_before;
    if percent == 0 || lifetime <= Duration::ZERO {
        return None;
    }
    let pct = u32::from(percent.min(100));
    Some(fraction_after(not_before, lifetime, 100 - pct))
}

/// Whole percent of the lifetime left at `now` (0 when expired).
pub(crate) fn percent_remaining(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    now: OffsetDateTime,
) -> i128 {
    let lifetime = (not_after - not_before).whole_nanoseconds();
    if lifetime <= 0 {
        return 0;
    }
    let left = (not_after - now).whole_nanoseconds().max(0);
    left * 100 / lifetime
}

/// RFC 3339 text of a moment, as every reason and the JSON show it.
pub fn fmt_time(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// A span for people: "1 year", "90 days", "48 minutes", or "2h 30m".
pub(crate) fn fmt_span(d: Duration) -> String {
    let secs = d.whole_seconds();
    if secs <= 0 {
        return "0 seconds".to_string();
    }
    let secs = secs.unsigned_abs();
    let p = Period::from_seconds(secs);
    let text = p.to_string();
    // Period's display picks the largest unit that divides evenly; an odd span
    // falls through to seconds, which humantime says better.
    if text.ends_with("seconds") && secs >= 60 {
        humantime::format_duration(std::time::Duration::from_secs(secs)).to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn backoff_doubles_and_caps() {
        let cap = Duration::hours(8);
        let waits: Vec<_> = (1..=6).filter_map(|n| backoff_wait(n, cap)).collect();
        assert_eq!(
            waits,
            [1, 2, 4, 8, 8, 8].map(Duration::hours).to_vec(),
            "1h, 2h, 4h, then the cap"
        );
        assert_eq!(backoff_wait(0, cap), None);
        assert_eq!(backoff_wait(u32::MAX, cap), Some(cap));
    }

    #[test]
    fn spans_for_people() {
        assert_eq!(fmt_span(Duration::days(365)), "1 year");
        assert_eq!(fmt_span(Duration::days(90)), "90 days");
        assert_eq!(fmt_span(Duration::minutes(48)), "48 minutes");
        assert_eq!(fmt_span(Duration::seconds(9_001)), "2h 30m 1s");
    }

    #[test]
    fn explanation_reads_well() {
        let nb = datetime!(2026-01-05 10:00 UTC);
        let na = datetime!(2027-01-05 10:00 UTC);
        let r = renewal(nb, na, Some(Period::from_days(182)), None);
        assert_eq!(
            r.to_string(),
            "renews at 2026-10-24T10:00:00Z (80% of lifetime; the renewal period of 26 weeks is longer than 20% of the lifetime of 1 year)"
        );
        let r = renewal(nb, na, Some(Period::from_days(42)), Some(5));
        assert!(
            r.to_string()
                .contains("5% of lifetime remaining would be later")
        );
    }

    #[test]
    fn extreme_dates_do_not_panic() {
        let r = renewal(
            OffsetDateTime::UNIX_EPOCH,
            OffsetDateTime::UNIX_EPOCH + Duration::days(1),
            Some(Period::from_seconds(u64::MAX)),
            Some(200),
        );
        assert_eq!(r.at, OffsetDateTime::UNIX_EPOCH);
        let t = datetime!(2026-01-01 0:00 UTC);
        assert_eq!(renewal_time(t, t, None, None), t);
        assert_eq!(
            renewal_time(t + Duration::days(1), t, None, None),
            t,
            "an inverted validity renews at notAfter"
        );
    }
}
