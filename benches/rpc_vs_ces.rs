//! Benchmark: the wall time of one issuance over MS-ICPR (DCE/RPC, Kerberos
//! at packet privacy) next to one over CES with Kerberos (HTTP Negotiate,
//! WSTEP over HTTPS), against the same emulated CA in the same run.
//!
//! `cargo bench --bench rpc_vs_ces` starts a lab with its KDC, the CA with
//! both doors, and sends ws01's WorkstationAuth requests alternately by
//! each (so both see the same machine load), each on a fresh connection as
//! a pulse does: RPC is `ept_map`, a bind with the Kerberos AP exchange
//! (three legs), the sealed call; CES is TLS, SPNEGO, the SOAP message. It
//! prints the median and 90th percentile of each and their ratio. Requests
//! are made beforehand (the client's key generation is not measured).

use std::sync::Arc;
use std::time::{Duration, Instant};

use autoenroll::ca::icpr::IcprSettings;
use autoenroll::ca::{Authority, CaConfig, init, server};
use autoenroll::clock::SystemClock;
use autoenroll::enroll::route::Auth;
use autoenroll::enroll::rpc::RpcTarget;
use autoenroll::enroll::{EnrollmentClient, Outcome, enrollment_request};
use autoenroll::krb::{CredentialSource, Credentials};
use autoenroll::lab::{Lab, LabOptions, SAMPLE_ACCOUNTS};
use autoenroll::pki::keys::{KeyAlgorithm, PrivateKey};

/// Issuances per method (after two warm-up rounds).
const ROUNDS: usize = 40;
const LIMIT: Duration = Duration::from_secs(60);

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let tmp = tempfile::tempdir().expect("temp dir");
    let lab = Lab::start(
        &tmp.path().join("lab"),
        LabOptions {
            kerberos: true,
            ..LabOptions::default()
        },
    )
    .expect("lab");
    lab.write_policies().expect("policies");
    let kdc = lab.kdc.as_ref().expect("the lab's KDC");
    autoenroll::krb::use_config(&kdc.krb5_conf).expect("krb5.conf");
    let path = lab.write_ca_config(0, 0).expect("ca.toml");
    let config = CaConfig::load(&path).expect("ca.toml loads");
    rt.block_on(async {
        init::init(&config, time::OffsetDateTime::now_utc())
            .await
            .expect("ca init");
        let authority =
            Arc::new(Authority::open(config.clone(), Arc::new(SystemClock)).expect("CA opens"));
        let https = server::start(authority.clone()).await.expect("CES");
        let rpc = autoenroll::ca::icpr::start(
            authority.clone(),
            IcprSettings {
                epm_listen: "127.0.0.1:0".parse().unwrap(),
                listen: "127.0.0.1:0".parse().unwrap(),
                keytab: kdc.dir.join("ca-host.keytab"),
                rcache: tmp.path().join("rpc-rcache"),
            },
        )
        .await
        .expect("ICertPassage");

        let creds = Credentials::acquire(&CredentialSource::Keytab {
            keytab: autoenroll::lab::kdc::keytab_path(&lab.dir, "ws01"),
            principal: None,
            ccache: tmp.path().join("ws01-ccache"),
        })
        .expect("ws01's credentials");
        let target = RpcTarget {
            host: autoenroll::lab::kdc::CA_HOST.into(),
            mapper: rpc.epm,
            ca_name: config.name.clone(),
        };
        let ces = EnrollmentClient::new(
            &[authority.signer().certificate_der().to_vec()],
            None,
            LIMIT,
        )
        .unwrap()
        .with_kerberos(Some(creds.clone()));
        let url = config.kerberos_endpoint_url().expect("a Kerberos endpoint");

        // The template as ws01 reads it (through its password policy).
        let ws01 = SAMPLE_ACCOUNTS.iter().find(|a| a.name == "ws01").unwrap();
        let policy =
            autoenroll::policy::Policy::load(&lab.dir.join("ws01-password.toml")).unwrap();
        let mut dir = autoenroll::directory::Directory::connect(&policy.directory)
            .await
            .unwrap();
        let template = dir
            .snapshot(ws01.dn)
            .await
            .unwrap()
            .templates
            .into_iter()
            .find(|t| t.template.cn == "WorkstationAuth")
            .unwrap()
            .template;
        let alg = KeyAlgorithm::Rsa { bits: 2048 };
        let mut requests = (0..2 * (ROUNDS + 2))
            .map(|_| enrollment_request(&template, &PrivateKey::generate(alg).unwrap(), None).unwrap());

        let mut rpc_times = Vec::new();
        let mut ces_times = Vec::new();
        for round in 0..ROUNDS + 2 {
            let one = requests.next().unwrap();
            let started = Instant::now();
            let o = autoenroll::enroll::rpc::submit(
                &creds,
                &target,
                &one,
                "WorkstationAuth",
                false,
                LIMIT,
            )
            .await
            .expect("RPC answers");
            let rpc_took = started.elapsed();
            assert!(matches!(o, Outcome::Issued { .. }), "{o:?}");
            let one = requests.next().unwrap();
            let started = Instant::now();
            let o = ces
                .submit_as(&url, Auth::Kerberos, &one, "WorkstationAuth", LIMIT)
                .await
                .expect("CES answers");
            let ces_took = started.elapsed();
            assert!(matches!(o, Outcome::Issued { .. }), "{o:?}");
            if round >= 2 {
                rpc_times.push(rpc_took);
                ces_times.push(ces_took);
            }
        }
        let (rpc_median, rpc_p90) = median_p90(&mut rpc_times);
        let (ces_median, ces_p90) = median_p90(&mut ces_times);
        println!(
            "WorkstationAuth issuance, {ROUNDS} each, alternating, fresh connections, RSA 2048 requester key:"
        );
        println!("  MS-ICPR (RPC, Kerberos, packet privacy): median {rpc_median:.1?}, p90 {rpc_p90:.1?}");
        println!("  CES Kerberos (HTTPS, Negotiate, WSTEP):  median {ces_median:.1?}, p90 {ces_p90:.1?}");
        println!(
            "  RPC / CES: {:.2} at the median, {:.2} at p90",
            rpc_median.as_secs_f64() / ces_median.as_secs_f64(),
            rpc_p90.as_secs_f64() / ces_p90.as_secs_f64()
        );
        rpc.stop().await;
        https.stop().await;
    });
}

/// The median and the 90th percentile (nearest rank) of `times`.
fn median_p90(times: &mut [Duration]) -> (Duration, Duration) {
    times.sort();
    let rank = |p: f64| times[((p * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1];
    (rank(0.5), rank(0.9))
}
