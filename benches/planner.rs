//! Benchmark: planning a large store against a large directory, at three sizes,
//! to show that the planner grows linearly (O(n log n) at worst) with the
//! number of certificates and templates.
//!
//! `cargo bench --bench planner` prints, per size, the min and median wall
//! time of one plan (and of one `assess`) and the time per held certificate.
//! Certificates are built as `CertificateInfo` values directly: the planner
//! reads facts, not DER, so no CA is needed.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use autoenroll::directory::Verdict;
use autoenroll::model::{
    EnrollmentFlags, GeneralFlags, NameFlags, Period, PrivateKeyFlags, SkipReason, Template,
};
use autoenroll::pki::{CertificateInfo, Revocations, TemplateIdentity};
use autoenroll::planner::{self, DirectoryView, PlanInput, Settings};
use autoenroll::store::{
    CertificateMeta, HeldCertificate, KeyStatus, PendingRequest, State, StoreSnapshot,
    TemplateFailures,
};
use time::OffsetDateTime;
use time::macros::datetime;

const ROUNDS: usize = 25;
const SIZES: [(usize, usize); 3] = [(2_500, 125), (5_000, 250), (10_000, 500)];
const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

fn template(i: usize) -> Template {
    let cn = format!("Bench{i:04}");
    Template {
        dn: format!("CN={cn},CN=Certificate Templates,CN=Public Key Services"),
        oid: Some(format!("1.3.6.1.4.1.311.21.8.4242.{i}")),
        cn,
        display_name: None,
        flags: GeneralFlags::MACHINE_TYPE,
        revision: 100 + (i % 3) as u32,
        minor_revision: 0,
        schema_version: 2,
        validity: Some(Period::from_days(365)),
        renewal_period: Some(Period::from_days(if i.is_multiple_of(4) {
            182
        } else {
            42
        })),
        key_usage: None,
        extended_key_usage: vec![],
        default_key_spec: None,
        max_issuing_depth: None,
        critical_extensions: vec![],
        default_csps: vec![],
        minimal_key_size: 2048,
        ra_signatures: 0,
        ra_application_policies: vec![],
        supersedes: vec![],
        certificate_policies: vec![],
        application_policies: vec![],
        enrollment_flags: if i.is_multiple_of(10) {
            EnrollmentFlags::AUTO_ENROLLMENT
                | EnrollmentFlags::REMOVE_INVALID_CERTIFICATE_FROM_PERSONAL_STORE
        } else {
            EnrollmentFlags::AUTO_ENROLLMENT
        },
        private_key_flags: PrivateKeyFlags::default(),
        name_flags: NameFlags::default(),
    }
}

fn verdict(i: usize, templates: &[Template]) -> Verdict {
    // Mostly eligible; some unpublished, some superseded by their neighbour.
    let reason = match i % 25 {
        7 => Some(SkipReason::NotPublished),
        13 if i + 1 < templates.len() => {
            Some(SkipReason::SupersededBy(templates[i + 1].cn.clone()))
        }
        _ => None,
    };
    Verdict {
        cn: templates[i].cn.clone(),
        reason,
        published_by: vec!["corp-CA".into()],
        renewal_only: false,
    }
}

/// A world of `certs` held certificates spread over `templates` templates.
struct World {
    settings: Settings,
    templates: Vec<Template>,
    verdicts: Vec<Verdict>,
    store: StoreSnapshot,
    revocations: Revocations,
    state: State,
}

fn world(certs: usize, templates: usize) -> World {
    let ts: Vec<Template> = (0..templates).map(template).collect();
    let verdicts: Vec<Verdict> = (0..templates).map(|i| verdict(i, &ts)).collect();
    let mut store = StoreSnapshot::default();
    let mut revocations = Revocations::default();
    for n in 0..certs {
        let t = &ts[n % templates];
        // Issue dates spread over the last 14 months: some expired, some due.
        let issued = NOW - time::Duration::hours(((n * 7_919) % (14 * 30 * 24)) as i64);
        let id = match n % 50 {
            0 => None, // foreign
            1 => Some(TemplateIdentity {
                name: Some(format!("Deleted{n}")),
                ..Default::default()
            }),
            2 => Some(TemplateIdentity {
                name: Some(t.cn.clone()),
                ..Default::default()
            }),
            _ => Some(TemplateIdentity {
                oid: t.oid.clone(),
                major: Some(if n % 97 == 0 { 99 } else { t.revision }),
                minor: Some(0),
                name: None,
            }),
        };
        let info = CertificateInfo {
            thumbprint: format!("{:040x}", (n as u128).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            serial: format!("{n:x}"),
            issuer: "CN=corp-CA,DC=corp,DC=example".into(),
            subject: format!("CN=host{n}.corp.example"),
            public_key: vec![],
            not_before: issued,
            not_after: issued + time::Duration::days(365),
            template: id,
        };
        if n % 101 == 0 {
            revocations.insert(&info.issuer, &info.serial, Some(1));
        }
        store.certificates.push(HeldCertificate {
            info,
            key: if n % 61 == 0 {
                KeyStatus::Missing
            } else {
                KeyStatus::Paired
            },
            meta: CertificateMeta::default(),
            path: PathBuf::from(format!("my/{n}")),
        });
    }
    for i in (0..templates).step_by(20) {
        store.pending.push(PendingRequest {
            id: format!("req{i}"),
            template: ts[i].cn.clone(),
            ca: Some("corp-CA".into()),
            ca_request_id: Some(i.to_string()),
            created_at: NOW - time::Duration::days(1),
            last_poll: None,
            replaces: None,
            scep_profile: None,
            scep_state: None,
            path: PathBuf::from(format!("request/req{i}")),
        });
    }
    let state = State {
        failures: (0..templates)
            .step_by(30)
            .map(|i| TemplateFailures {
                template: ts[i].cn.clone(),
                count: 1 + (i % 4) as u32,
                last_failure: NOW - time::Duration::minutes(30),
                last_error: "the CA did not answer".into(),
            })
            .collect(),
        ..State::default()
    };
    World {
        settings: Settings::default(),
        templates: ts,
        verdicts,
        store,
        revocations,
        state,
    }
}

fn median_min(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[0], v[v.len() / 2])
}

fn main() {
    println!(
        "planner: {ROUNDS} rounds per size (after one warm-up), time of one plan / one assess"
    );
    println!(
        "{:>8} {:>9} {:>8} | {:>10} {:>10} {:>9} | {:>10} {:>9}",
        "certs", "templates", "actions", "plan min", "median", "ns/cert", "assess med", "ns/cert"
    );
    for (certs, templates) in SIZES {
        let w = world(certs, templates);
        let input = PlanInput {
            settings: &w.settings,
            directory: DirectoryView {
                templates: &w.templates,
                verdicts: &w.verdicts,
            },
            store: &w.store,
            revocations: &w.revocations,
            state: &w.state,
            now: NOW,
        };
        let actions = planner::plan(&input).actions.len();
        let mut plans = Vec::with_capacity(ROUNDS);
        let mut assessments = Vec::with_capacity(ROUNDS);
        for _ in 0..ROUNDS {
            let start = Instant::now();
            black_box(planner::plan(black_box(&input)));
            plans.push(start.elapsed());
            let start = Instant::now();
            black_box(planner::assess(black_box(&input)));
            assessments.push(start.elapsed());
        }
        let (min, median) = median_min(plans);
        let (_, assess_median) = median_min(assessments);
        println!(
            "{certs:>8} {templates:>9} {actions:>8} | {:>7.2} ms {:>7.2} ms {:>9.0} | {:>7.2} ms {:>9.0}",
            min.as_secs_f64() * 1e3,
            median.as_secs_f64() * 1e3,
            median.as_nanos() as f64 / certs as f64,
            assess_median.as_secs_f64() * 1e3,
            assess_median.as_nanos() as f64 / certs as f64,
        );
    }
}
