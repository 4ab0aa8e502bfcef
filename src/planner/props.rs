//! Property tests of the planner: random worlds (templates with random
//! verdicts and flags, certificates of known, deleted, unusable and no
//! template, revocations, pending requests (some replacing a held
//! certificate), failures, both policy options)
//! must always give plans that keep the invariants, and equal inputs, in any
//! store order, must give equal plans.

use proptest::prelude::*;
use time::Duration;

use super::tests::{T0, World, cert, invariants, oid_of, verdict};
use super::*;
use crate::model::{Context, EnrollmentFlags, Period, SkipReason};
use crate::pki::TemplateIdentity;
use crate::store::KeyStatus;

/// A small deterministic generator, so one seed describes one world.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const NAMES: [&str; 6] = ["Alpha", "Beta", "Gamma", "Delta", "Epsilon", "Zeta"];

fn world(seed: u64) -> World {
    let mut r = Rng(seed | 1);
    let mut w = World::at(
        T0 + Duration::days(r.below(800) as i64) + Duration::minutes(r.below(1440) as i64),
    );
    w.settings.renew_expired_update_pending_remove_revoked = r.chance(70);
    w.settings.update_certificates_that_use_templates = r.chance(70);
    w.settings.expiry_notification_percent = r.below(30) as u8;
    w.settings.schedule_interval = Duration::hours(1 + r.below(12) as i64);
    if r.chance(30) {
        w.settings.renewal_threshold_percent.insert(
            NAMES[r.below(6) as usize].to_ascii_lowercase(),
            r.below(101) as u8,
        );
    }
    let n_templates = 1 + r.below(6) as usize;
    for (i, name) in NAMES.iter().take(n_templates).enumerate() {
        w.template(name, |t| {
            t.revision = 100 + r.below(3) as u32;
            t.renewal_period = match r.below(4) {
                0 => None,
                1 => Some(Period::from_days(42)),
                2 => Some(Period::from_days(200)),
                _ => Some(Period::from_seconds(1800)),
            };
            if r.chance(20) {
                t.enrollment_flags |= EnrollmentFlags::SKIP_AUTO_RENEWAL;
            }
            if r.chance(20) {
                t.enrollment_flags |=
                    EnrollmentFlags::REMOVE_INVALID_CERTIFICATE_FROM_PERSONAL_STORE;
            }
        });
        match r.below(8) {
            0 => {
                w.verdict(name, SkipReason::NotPublished);
            }
            1 => {
                let by = NAMES[r.below(n_templates as u64) as usize];
                w.verdict(name, SkipReason::SupersededBy(by.to_string()));
            }
            2 => {
                w.verdict(
                    name,
                    SkipReason::RightNotGranted {
                        right: "AutoEnroll",
                    },
                );
            }
            3 => {
                w.verdict(
                    name,
                    SkipReason::WrongContext {
                        template: Context::User,
                        running: Context::Machine,
                    },
                );
            }
            4 if i > 0 => {
                // Unusable: the verdict stays, the template goes.
                w.templates.retain(|t| t.cn != *name);
                w.verdicts.retain(|v| v.cn != *name);
                w.verdicts.push(verdict(
                    name,
                    Some(SkipReason::Unusable {
                        dn: format!("CN={name}"),
                        problem: "bad value".into(),
                    }),
                ));
            }
            5 => {
                w.renewal_only(name);
            }
            _ => {}
        }
    }
    let n_certs = r.below(14);
    for i in 0..n_certs {
        let thumb = format!("{:040x}", r.next() as u128 * 31 + i as u128);
        let nb = T0 + Duration::days(r.below(700) as i64) - Duration::days(200);
        let life = match r.below(4) {
            0 => Duration::hours(1),
            1 => Duration::days(90),
            _ => Duration::days(365),
        };
        let id = match r.below(10) {
            0 => None,
            1 => Some(TemplateIdentity {
                name: Some("Gone".into()),
                ..Default::default()
            }),
            n => {
                let name = NAMES[r.below(6) as usize];
                Some(if n % 2 == 0 {
                    TemplateIdentity {
                        oid: Some(oid_of(name)),
                        major: Some(99 + r.below(3) as u32),
                        minor: Some(0),
                        name: None,
                    }
                } else {
                    TemplateIdentity {
                        name: Some(name.to_ascii_uppercase()),
                        ..Default::default()
                    }
                })
            }
        };
        let mut c = cert(&thumb, id, nb, nb + life);
        c.info.serial = format!("{:x}", r.next());
        c.key = match r.below(6) {
            0 => KeyStatus::Missing,
            1 => KeyStatus::Mismatch,
            _ => KeyStatus::Paired,
        };
        if r.chance(15) {
            w.revocations.insert(&c.info.issuer, &c.info.serial, None);
        }
        w.store.certificates.push(c);
    }
    for i in 0..r.below(4) {
        let name = NAMES[r.below(6) as usize];
        let last = if r.chance(50) {
            None
        } else {
            Some(w.now - Duration::minutes(r.below(180) as i64))
        };
        let replaces = if r.chance(40) && !w.store.certificates.is_empty() {
            let n = r.below(w.store.certificates.len() as u64) as usize;
            Some(w.store.certificates[n].info.thumbprint.clone())
        } else {
            None
        };
        let p = w.pending(&format!("req{i}"), name, last);
        p.created_at = T0 + Duration::minutes(r.below(10_000) as i64);
        p.replaces = replaces;
    }
    for _ in 0..r.below(3) {
        let name = NAMES[r.below(6) as usize];
        let last = w.now - Duration::minutes(r.below(600) as i64);
        let count = r.below(7) as u32;
        if w.state.failures_of(name).is_none() {
            w.failures(name, count, last);
        }
    }
    w
}

/// Fisher-Yates with the generator.
fn shuffle<T>(v: &mut [T], r: &mut Rng) {
    for i in (1..v.len()).rev() {
        let j = r.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
}

proptest! {
    // At least 512 cases; PROPTEST_CASES raises it.
    #![proptest_config(ProptestConfig {
        cases: ProptestConfig::default().cases.max(512),
        ..ProptestConfig::default()
    })]

    #[test]
    fn renewal_time_lies_within_validity(
        start in -2_000_000_000i64..4_000_000_000,
        life in 1i64..(20 * 365 * 86_400),
        period in proptest::option::of(0u64..(40 * 365 * 86_400)),
        threshold in proptest::option::of(any::<u8>()),
    ) {
        let nb = time::OffsetDateTime::from_unix_timestamp(start).expect("in range");
        let na = nb + Duration::seconds(life);
        let at = renewal_time(nb, na, period.map(Period::from_seconds), threshold);
        prop_assert!(nb <= at && at <= na, "{nb} <= {at} <= {na}");
        // A threshold never makes it later.
        let plain = renewal_time(nb, na, period.map(Period::from_seconds), None);
        prop_assert!(at <= plain);
    }

    #[test]
    fn random_worlds_keep_the_invariants(seed in any::<u64>()) {
        let w = world(seed);
        let p = w.plan();
        // No two requests per template, no action on a foreign certificate,
        // ordered, reasons everywhere, next_wake after now.
        invariants(&w, &p);
        // Archive and Remove only name certificates of my/.
        for a in &p.actions {
            if matches!(a.kind, ActionKind::Archive | ActionKind::Remove | ActionKind::Keep | ActionKind::Notify) {
                let c = a.certificate.as_deref().unwrap_or("");
                prop_assert!(w.store.certificates.iter().any(|h| h.info.thumbprint == c), "{a:?}");
            }
        }
        // Every managed certificate gets exactly one action: Keep, Notify,
        // Archive, Remove, or a request that names it.
        for h in w.store.certificates.iter().filter(|h| h.info.template.is_some()) {
            let named = p.actions.iter().filter(|a| a.certificate.as_deref() == Some(&h.info.thumbprint));
            let kinds: Vec<&str> = named.map(|a| a.kind.name()).collect();
            prop_assert!(kinds.len() == 1, "{} has {:?}: {:?}", h.info.thumbprint, kinds, p.actions);
        }
        if !w.settings.enabled {
            prop_assert!(p.actions.is_empty());
        }
    }

    #[test]
    fn plans_are_deterministic_in_any_store_order(seed in any::<u64>(), order in any::<u64>()) {
        let w = world(seed);
        let first = w.plan();
        prop_assert_eq!(&first, &w.plan());
        let mut shuffled = world(seed);
        let mut r = Rng(order | 1);
        shuffle(&mut shuffled.store.certificates, &mut r);
        shuffle(&mut shuffled.store.pending, &mut r);
        shuffle(&mut shuffled.state.failures, &mut r);
        prop_assert_eq!(&first, &shuffled.plan());
        prop_assert_eq!(assess(&w.input()), assess(&shuffled.input()));
    }

    #[test]
    fn foreign_certificates_never_get_an_action(seed in any::<u64>()) {
        let mut w = world(seed);
        let mut foreign = cert("f0f0", None, T0, T0 + Duration::days(365));
        foreign.key = KeyStatus::Missing;
        w.revocations.insert(&foreign.info.issuer, &foreign.info.serial, None);
        w.store.certificates.push(foreign);
        let p = w.plan();
        prop_assert!(p.actions.iter().all(|a| a.certificate.as_deref() != Some("f0f0")));
    }
}
