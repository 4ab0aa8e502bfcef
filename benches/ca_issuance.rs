//! Benchmark: issuance throughput of the emulated CA over MS-WSTEP/HTTPS
//! against a private slapd, beside the raw signing rate of the CA's key in the
//! same run.
//!
//! `cargo bench --bench ca_issuance` prints requests per second for RSA 2048
//! (ws01, WorkstationAuth) and P-256 (web01, ServerAuthECDSA) requester keys,
//! sequentially and with 4 clients at once. Every request is a new one: a
//! WS-Security password check (LDAP bind), a directory snapshot, the policy,
//! a signature and a durable SQLite commit (WAL, synchronous=FULL).

use std::sync::Arc;
use std::time::{Duration, Instant};

use autoenroll::ca::{Authority, CaConfig, init, server};
use autoenroll::clock::SystemClock;
use autoenroll::enroll::{EnrollmentClient, Outcome, enrollment_request};
use autoenroll::lab::{Lab, LabOptions, SAMPLE_ACCOUNTS};
use autoenroll::pki::keys::{KeyAlgorithm, PrivateKey};
use autoenroll::wstep::UsernameToken;

const REQUESTS: usize = 40;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let tmp = tempfile::tempdir().expect("temp dir");
    let lab = Lab::start(&tmp.path().join("lab"), LabOptions::default()).expect("lab");
    lab.write_policies().expect("policies");
    let path = lab.write_ca_config(0, 0).expect("ca.toml");
    let config = CaConfig::load(&path).expect("ca.toml loads");
    rt.block_on(async {
        init::init(&config, time::OffsetDateTime::now_utc())
            .await
            .expect("ca init");
        let authority =
            Arc::new(Authority::open(config.clone(), Arc::new(SystemClock)).expect("CA opens"));

        // The CA key's raw signing rate (RSA 3072, the default).
        let key = PrivateKey::from_pem(&std::fs::read(config.key_path()).unwrap()).unwrap();
        let tbs = vec![0x5au8; 1024];
        let start = Instant::now();
        let mut n = 0;
        while start.elapsed() < Duration::from_secs(2) {
            key.sign(&tbs).unwrap();
            n += 1;
        }
        let raw = n as f64 / start.elapsed().as_secs_f64();
        println!(
            "CA key {}: {raw:.0} signatures/s (raw)",
            key.algorithm().describe()
        );

        let listening = server::start(authority.clone()).await.expect("serves");
        let endpoint = config.endpoint_url().replace(
            &format!(":{}", config.listen.port()),
            &format!(":{}", listening.https.port()),
        );
        let ca_cert = authority.signer().certificate_der().to_vec();
        for (account, template, alg) in [
            ("ws01", "WorkstationAuth", KeyAlgorithm::Rsa { bits: 2048 }),
            ("web01", "ServerAuthECDSA", KeyAlgorithm::EcdsaP256),
        ] {
            let sample = SAMPLE_ACCOUNTS.iter().find(|a| a.name == account).unwrap();
            let client = EnrollmentClient::new(
                std::slice::from_ref(&ca_cert),
                Some(UsernameToken {
                    username: sample.dn.to_string(),
                    password: sample.password(),
                }),
                Duration::from_secs(30),
            )
            .unwrap();
            let mut dir = autoenroll::directory::Directory::connect(
                &autoenroll::policy::Policy::load(&lab.policy_path(account))
                    .unwrap()
                    .directory,
            )
            .await
            .unwrap();
            let t = dir
                .snapshot(sample.dn)
                .await
                .unwrap()
                .templates
                .into_iter()
                .find(|t| t.template.cn == template)
                .unwrap()
                .template;
            // Requests are made beforehand: the client's key generation is not the CA's cost.
            let requests: Vec<Vec<u8>> = (0..2 * REQUESTS)
                .map(|_| enrollment_request(&t, &PrivateKey::generate(alg).unwrap(), None).unwrap())
                .collect();
            let (sequential, parallel) = requests.split_at(REQUESTS);

            let start = Instant::now();
            for r in sequential {
                let out = client.submit(&endpoint, r, template).await.unwrap();
                assert!(matches!(out, Outcome::Issued { .. }), "{out:?}");
            }
            let seq = REQUESTS as f64 / start.elapsed().as_secs_f64();

            let start = Instant::now();
            let mut tasks = tokio::task::JoinSet::new();
            for chunk in parallel.chunks(REQUESTS / 4) {
                let (client, endpoint, chunk) = (client.clone(), endpoint.clone(), chunk.to_vec());
                tasks.spawn(async move {
                    for r in chunk {
                        let out = client.submit(&endpoint, &r, template).await.unwrap();
                        assert!(matches!(out, Outcome::Issued { .. }), "{out:?}");
                    }
                });
            }
            while tasks.join_next().await.is_some() {}
            let par = REQUESTS as f64 / start.elapsed().as_secs_f64();
            println!(
                "{template} ({}): {seq:.1} requests/s one at a time, {par:.1} requests/s with 4 clients ({REQUESTS} requests each, durable commits)",
                alg.describe()
            );
        }
        listening.stop().await;
    });
}
