//! Benchmark: one directory snapshot (and the eligibility verdicts) against a
//! private slapd holding the sample forest plus N extra templates.
//!
//! `cargo bench --bench directory_snapshot` prints, per size, the number of LDAP
//! searches and the min / median / mean wall time of a snapshot over a warm
//! connection, and of connect + bind + snapshot.

use std::time::{Duration, Instant};

use autoenroll::directory::{self, Directory};
use autoenroll::lab::{Lab, LabOptions, template_variant_ldif};
use autoenroll::policy::Policy;

const ACCOUNT: &str = "CN=web01,CN=Computers,DC=corp,DC=example";
const ROUNDS: usize = 20;

fn stats(mut v: Vec<Duration>) -> String {
    v.sort();
    let mean = v.iter().sum::<Duration>() / v.len() as u32;
    format!(
        "min {:>7.2} ms  median {:>7.2} ms  mean {:>7.2} ms",
        v[0].as_secs_f64() * 1e3,
        v[v.len() / 2].as_secs_f64() * 1e3,
        mean.as_secs_f64() * 1e3
    )
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!("directory snapshot, {ROUNDS} rounds per size, account {ACCOUNT}");
    for extra in [0usize, 100, 500] {
        let ldif: String = (0..extra)
            .map(|i| {
                template_variant_ldif("WorkstationAuth", &format!("Bench{i:04}"), &[])
                    .expect("sample template")
            })
            .collect();
        let tmp = tempfile::tempdir().expect("temp dir");
        let lab = Lab::start(
            &tmp.path().join("lab"),
            LabOptions {
                extra_ldif: Some(ldif),
                ..LabOptions::default()
            },
        )
        .expect("lab");
        lab.write_policies().expect("policies");
        let policy = Policy::load(&lab.policy_path("web01")).expect("policy");
        rt.block_on(async {
            let mut dir = Directory::connect(&policy.directory)
                .await
                .expect("connect");
            let mut warm = Vec::new();
            let mut searches = 0;
            let mut templates = 0;
            for _ in 0..ROUNDS {
                let before = dir.searches();
                let t = Instant::now();
                let snap = dir.snapshot(ACCOUNT).await.expect("snapshot");
                let verdicts = directory::judge(
                    &snap,
                    directory::Options {
                        context: policy.context,
                        allow_prompts: false,
                    },
                    time::OffsetDateTime::now_utc(),
                );
                warm.push(t.elapsed());
                searches = dir.searches() - before;
                templates = verdicts.len();
            }
            let mut cold = Vec::new();
            for _ in 0..ROUNDS {
                let t = Instant::now();
                let mut d = Directory::connect(&policy.directory)
                    .await
                    .expect("connect");
                d.snapshot(ACCOUNT).await.expect("snapshot");
                cold.push(t.elapsed());
                d.close().await;
            }
            println!(
                "{templates:>4} templates  {searches} searches  snapshot+verdicts: {}",
                stats(warm)
            );
            println!(
                "{:>4}            StartTLS connect+bind+snapshot: {}",
                "",
                stats(cold)
            );
        });
        lab.stop();
    }
}
