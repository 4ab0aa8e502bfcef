//! The planner's rules for SCEP profiles (`[scep.<name>]`): a profile is
//! treated like a template. Enroll when nothing is held, poll a pending
//! request, renew when `renewal_threshold_percent` of the lifetime remains
//! (Intune's rule: percent of the lifetime *remaining*), enroll anew when
//! the certificate expired or was revoked (a RenewalReq signed by an expired
//! certificate is refused, RFC 8894 3.3.1.2), archive what a newer
//! certificate replaced, and archive (revoking where the profile said so
//! when it was enrolled) what a profile removed from the policy left
//! behind. Every decision carries its reason. Pure: equal inputs give equal
//! decisions.

use std::collections::BTreeMap;

use time::{Duration, OffsetDateTime};

/// What the planner needs of a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileRule {
    pub renewal_threshold_percent: u8,
}

/// A certificate of a profile in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldScep {
    pub profile: String,
    pub thumbprint: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// On a CRL of its issuer.
    pub revoked: bool,
    /// The profile's `revoke_on_remove` when the certificate was enrolled
    /// (kept with it: once the profile is gone, the policy cannot say).
    pub revoke_on_remove: bool,
}

/// What to do, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScepAction {
    Enroll {
        profile: String,
        why: EnrollWhy,
    },
    Renew {
        profile: String,
        thumbprint: String,
    },
    Poll {
        profile: String,
    },
    /// A request of a profile that left the policy: moved to
    /// `archive/requests/` (its key is kept), never polled again.
    Abandon {
        profile: String,
    },
    Archive {
        thumbprint: String,
        profile: String,
        why: ArchiveWhy,
        revoke: bool,
    },
    Keep {
        profile: String,
        thumbprint: String,
        renew_at: OffsetDateTime,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrollWhy {
    NothingHeld,
    Expired,
    Revoked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveWhy {
    ProfileRemoved,
    Replaced,
    Revoked,
}

impl ScepAction {
    /// The action's kind, named as template actions are (`plan --json`).
    pub fn kind(&self) -> &'static str {
        match self {
            ScepAction::Enroll {
                why: EnrollWhy::NothingHeld,
                ..
            } => "enroll",
            ScepAction::Enroll { .. } => "reenroll",
            ScepAction::Renew { .. } => "renew",
            ScepAction::Poll { .. } => "retrieve",
            ScepAction::Abandon { .. } => "remove",
            ScepAction::Archive {
                why: ArchiveWhy::Replaced,
                ..
            } => "archive",
            ScepAction::Archive { .. } => "remove",
            ScepAction::Keep { .. } => "keep",
        }
    }

    /// The stable code of the reason (documented with the others).
    pub fn code(&self) -> &'static str {
        match self {
            ScepAction::Enroll { why, .. } => match why {
                EnrollWhy::NothingHeld => "scep_no_certificate",
                EnrollWhy::Expired => "scep_expired",
                EnrollWhy::Revoked => "scep_revoked",
            },
            ScepAction::Renew { .. } => "scep_renewal_threshold",
            ScepAction::Poll { .. } => "scep_pending",
            ScepAction::Abandon { .. } => "scep_profile_removed",
            ScepAction::Archive { why, .. } => match why {
                ArchiveWhy::ProfileRemoved => "scep_profile_removed",
                ArchiveWhy::Replaced => "scep_replaced",
                ArchiveWhy::Revoked => "scep_certificate_revoked",
            },
            ScepAction::Keep { .. } => "scep_valid",
        }
    }

    /// The profile the action is about.
    pub fn profile(&self) -> &str {
        match self {
            ScepAction::Enroll { profile, .. }
            | ScepAction::Renew { profile, .. }
            | ScepAction::Poll { profile }
            | ScepAction::Abandon { profile }
            | ScepAction::Archive { profile, .. }
            | ScepAction::Keep { profile, .. } => profile,
        }
    }

    /// The certificate the action is about, if any.
    pub fn certificate(&self) -> Option<&str> {
        match self {
            ScepAction::Renew { thumbprint, .. }
            | ScepAction::Archive { thumbprint, .. }
            | ScepAction::Keep { thumbprint, .. } => Some(thumbprint),
            _ => None,
        }
    }

    /// A sentence a person can act on.
    pub fn reason(&self) -> String {
        match self {
            ScepAction::Enroll { profile, why } => match why {
                EnrollWhy::NothingHeld => format!("SCEP profile {profile}: no certificate yet"),
                EnrollWhy::Expired => format!(
                    "SCEP profile {profile}: the certificate expired; a new enrollment (a renewal signed by an expired certificate is refused)"
                ),
                EnrollWhy::Revoked => {
                    format!("SCEP profile {profile}: the certificate was revoked")
                }
            },
            ScepAction::Renew { profile, .. } => format!(
                "SCEP profile {profile}: the renewal threshold of the lifetime remaining was reached"
            ),
            ScepAction::Poll { profile } => {
                format!("SCEP profile {profile}: the request is pending at the CA; poll it")
            }
            ScepAction::Abandon { profile } => format!(
                "SCEP profile {profile}: the profile was removed from the policy; its pending request is abandoned"
            ),
            ScepAction::Archive {
                profile,
                why,
                revoke,
                ..
            } => {
                let what = match why {
                    ArchiveWhy::ProfileRemoved => "the profile was removed from the policy",
                    ArchiveWhy::Replaced => "a newer certificate of the profile replaced it",
                    ArchiveWhy::Revoked => "it was revoked",
                };
                if *revoke {
                    format!("SCEP profile {profile}: {what}; archive it and ask for revocation")
                } else {
                    format!("SCEP profile {profile}: {what}; archive it")
                }
            }
            ScepAction::Keep {
                profile, renew_at, ..
            } => {
                format!("SCEP profile {profile}: valid; renews at {renew_at}")
            }
        }
    }
}

/// The health of a held certificate of a profile as `status` shows it,
/// read from the plan's decision about it: `healthy` (kept; with its
/// renewal time), `due` (to be renewed), `expired`, `revoked`, `replaced`
/// (a newer one is held) or `orphaned` (its profile left the policy).
pub fn health(
    actions: &[ScepAction],
    held: &HeldScep,
    now: OffsetDateTime,
) -> (&'static str, Option<OffsetDateTime>) {
    for a in actions {
        match a {
            ScepAction::Keep {
                thumbprint,
                renew_at,
                ..
            } if *thumbprint == held.thumbprint => return ("healthy", Some(*renew_at)),
            ScepAction::Renew { thumbprint, .. } if *thumbprint == held.thumbprint => {
                return ("due", None);
            }
            ScepAction::Archive {
                thumbprint, why, ..
            } if *thumbprint == held.thumbprint => {
                return match why {
                    ArchiveWhy::ProfileRemoved => ("orphaned", None),
                    ArchiveWhy::Replaced => ("replaced", None),
                    ArchiveWhy::Revoked => ("revoked", None),
                };
            }
            _ => {}
        }
    }
    if now >= held.not_after {
        ("expired", None)
    } else {
        ("healthy", None)
    }
}

/// When a certificate with this validity renews: when `percent` of its
/// lifetime remains, i.e. at `notBefore + (100 - percent)%` of the lifetime.
/// An empty or inverted validity renews at `notAfter`.
pub fn renew_at(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    percent: u8,
) -> OffsetDateTime {
    let lifetime = not_after - not_before;
    if lifetime <= Duration::ZERO {
        return not_after;
    }
    let percent = i128::from(percent.clamp(1, 99));
    let elapsed_ns = lifetime.whole_nanoseconds() * (100 - percent) / 100;
    i64::try_from(elapsed_ns)
        .ok()
        .and_then(|ns| not_before.checked_add(Duration::nanoseconds(ns)))
        .unwrap_or(not_after)
}

/// The decisions for every profile and every held certificate, profiles in
/// name order, and the next time something is due.
pub fn plan(
    profiles: &BTreeMap<String, ProfileRule>,
    held: &[HeldScep],
    pending: &[String],
    now: OffsetDateTime,
) -> (Vec<ScepAction>, Option<OffsetDateTime>) {
    let mut actions = Vec::new();
    let mut next_wake: Option<OffsetDateTime> = None;
    for (name, rule) in profiles {
        let mut mine: Vec<&HeldScep> = held.iter().filter(|h| &h.profile == name).collect();
        // Newest first (latest notAfter; thumbprint breaks ties, for order).
        mine.sort_by(|a, b| {
            b.not_after
                .cmp(&a.not_after)
                .then(a.thumbprint.cmp(&b.thumbprint))
        });
        let current = mine.iter().find(|h| !h.revoked).copied();
        for h in &mine {
            if h.revoked {
                actions.push(ScepAction::Archive {
                    thumbprint: h.thumbprint.clone(),
                    profile: name.clone(),
                    why: ArchiveWhy::Revoked,
                    revoke: false,
                });
            } else if Some(*h) != current {
                actions.push(ScepAction::Archive {
                    thumbprint: h.thumbprint.clone(),
                    profile: name.clone(),
                    why: ArchiveWhy::Replaced,
                    revoke: false,
                });
            }
        }
        if pending.contains(name) {
            actions.push(ScepAction::Poll {
                profile: name.clone(),
            });
            continue;
        }
        match current {
            None => actions.push(ScepAction::Enroll {
                profile: name.clone(),
                why: if mine.is_empty() {
                    EnrollWhy::NothingHeld
                } else {
                    EnrollWhy::Revoked
                },
            }),
            Some(h) if now >= h.not_after => actions.push(ScepAction::Enroll {
                profile: name.clone(),
                why: EnrollWhy::Expired,
            }),
            Some(h) => {
                let at = renew_at(h.not_before, h.not_after, rule.renewal_threshold_percent);
                if now >= at {
                    actions.push(ScepAction::Renew {
                        profile: name.clone(),
                        thumbprint: h.thumbprint.clone(),
                    });
                } else {
                    next_wake = Some(next_wake.map_or(at, |w| w.min(at)));
                    actions.push(ScepAction::Keep {
                        profile: name.clone(),
                        thumbprint: h.thumbprint.clone(),
                        renew_at: at,
                    });
                }
            }
        }
    }
    let mut gone: Vec<&String> = pending
        .iter()
        .filter(|p| !profiles.contains_key(*p))
        .collect();
    gone.sort();
    gone.dedup();
    for profile in gone {
        actions.push(ScepAction::Abandon {
            profile: profile.clone(),
        });
    }
    for h in held.iter().filter(|h| !profiles.contains_key(&h.profile)) {
        actions.push(ScepAction::Archive {
            thumbprint: h.thumbprint.clone(),
            profile: h.profile.clone(),
            why: ArchiveWhy::ProfileRemoved,
            revoke: h.revoke_on_remove && !h.revoked,
        });
    }
    (actions, next_wake)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NB: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);
    const NA: OffsetDateTime = datetime!(2026-01-11 00:00 UTC); // 10 days

    fn held(profile: &str, thumb: &str) -> HeldScep {
        HeldScep {
            profile: profile.into(),
            thumbprint: thumb.into(),
            not_before: NB,
            not_after: NA,
            revoked: false,
            revoke_on_remove: false,
        }
    }

    fn profiles(threshold: u8) -> BTreeMap<String, ProfileRule> {
        BTreeMap::from([(
            "wifi".to_string(),
            ProfileRule {
                renewal_threshold_percent: threshold,
            },
        )])
    }

    #[test]
    fn threshold_table() {
        // (threshold %, now, renews?) on a 10-day certificate: 20% remaining
        // is day 8, 50% day 5, 1% day 9.9, 99% day 0.1.
        let cases: &[(u8, OffsetDateTime, bool)] = &[
            (20, datetime!(2026-01-08 23:59 UTC), false),
            (20, datetime!(2026-01-09 00:00 UTC), true),
            (20, datetime!(2026-01-10 12:00 UTC), true),
            (50, datetime!(2026-01-05 23:59:59 UTC), false),
            (50, datetime!(2026-01-06 00:00 UTC), true),
            (1, datetime!(2026-01-10 21:35 UTC), false),
            (1, datetime!(2026-01-10 21:36 UTC), true),
            (99, datetime!(2026-01-01 02:23 UTC), false),
            (99, datetime!(2026-01-01 02:24 UTC), true),
        ];
        for (threshold, now, renews) in cases {
            let (actions, wake) = plan(&profiles(*threshold), &[held("wifi", "A")], &[], *now);
            let renewed = matches!(actions.as_slice(), [ScepAction::Renew { .. }]);
            assert_eq!(renewed, *renews, "{threshold}% at {now}: {actions:?}");
            if !renews {
                assert_eq!(wake, Some(renew_at(NB, NA, *threshold)));
            }
        }
        assert_eq!(renew_at(NB, NA, 20), datetime!(2026-01-09 00:00 UTC));
        assert_eq!(
            renew_at(NA, NB, 20),
            NB,
            "inverted validity renews at notAfter"
        );
    }

    #[test]
    fn lifecycle_table() {
        let now = datetime!(2026-01-03 00:00 UTC);
        let later = datetime!(2026-01-12 00:00 UTC);
        let mut revoked = held("wifi", "R");
        revoked.revoked = true;
        let mut older = held("wifi", "OLD");
        older.not_after = datetime!(2026-01-10 00:00 UTC);
        let mut gone = held("vpn", "V");
        gone.revoke_on_remove = true;
        type Case<'a> = (&'a [HeldScep], &'a [&'a str], OffsetDateTime, &'a [&'a str]);
        let cases: &[Case] = &[
            (&[], &[], now, &["enroll NothingHeld"]),
            (&[held("wifi", "A")], &[], now, &["keep A"]),
            (&[held("wifi", "A")], &[], later, &["enroll Expired"]),
            (
                &[revoked.clone()],
                &[],
                now,
                &["archive R Revoked false", "enroll Revoked"],
            ),
            (&[], &["wifi"], now, &["poll"]),
            (&[], &["vpn"], now, &["enroll NothingHeld", "abandon vpn"]),
            (
                &[held("wifi", "A"), older.clone()],
                &[],
                now,
                &["archive OLD Replaced false", "keep A"],
            ),
            (
                &[gone.clone()],
                &[],
                now,
                &["enroll NothingHeld", "archive V ProfileRemoved true"],
            ),
        ];
        for (h, pending, at, want) in cases {
            let pending: Vec<String> = pending.iter().map(|s| s.to_string()).collect();
            let (actions, _) = plan(&profiles(20), h, &pending, *at);
            let got: Vec<String> = actions
                .iter()
                .map(|a| match a {
                    ScepAction::Enroll { why, .. } => format!("enroll {why:?}"),
                    ScepAction::Renew { thumbprint, .. } => format!("renew {thumbprint}"),
                    ScepAction::Poll { .. } => "poll".into(),
                    ScepAction::Abandon { profile } => format!("abandon {profile}"),
                    ScepAction::Archive {
                        thumbprint,
                        why,
                        revoke,
                        ..
                    } => {
                        format!("archive {thumbprint} {why:?} {revoke}")
                    }
                    ScepAction::Keep { thumbprint, .. } => format!("keep {thumbprint}"),
                })
                .collect();
            assert_eq!(got, *want, "{h:?} {pending:?}");
            for a in &actions {
                assert!(a.reason().starts_with("SCEP profile "), "{}", a.reason());
            }
        }
    }

    #[test]
    fn health_follows_the_decision() {
        let mut gone = held("vpn", "V");
        gone.revoke_on_remove = true;
        let cases: &[(u8, OffsetDateTime, &HeldScep, &str)] = &[
            (
                20,
                datetime!(2026-01-03 00:00 UTC),
                &held("wifi", "A"),
                "healthy",
            ),
            (
                20,
                datetime!(2026-01-09 12:00 UTC),
                &held("wifi", "A"),
                "due",
            ),
            (
                20,
                datetime!(2026-01-12 00:00 UTC),
                &held("wifi", "A"),
                "expired",
            ),
            (20, datetime!(2026-01-03 00:00 UTC), &gone, "orphaned"),
        ];
        for (threshold, now, h, want) in cases {
            let all = [(*h).clone()];
            let (actions, _) = plan(&profiles(*threshold), &all, &[], *now);
            assert_eq!(health(&actions, h, *now).0, *want, "{now}");
        }
    }

    #[test]
    fn a_removed_profile_is_archived_with_its_reason() {
        let mut gone = held("vpn", "V");
        gone.revoke_on_remove = true;
        let (actions, _) = plan(&BTreeMap::new(), &[gone], &[], NB);
        assert_eq!(actions.len(), 1);
        assert!(actions[0].reason().contains("removed from the policy"));
        assert!(actions[0].reason().contains("revocation"));
    }
}
