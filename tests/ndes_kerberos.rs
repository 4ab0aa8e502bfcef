//! The NDES role's challenge pages with HTTP Negotiate: a host fetches a
//! one-time challenge and a dynamic one with its own Kerberos credentials
//! (its keytab, no password anywhere) and enrolls with each through our
//! SCEP client. MIT krb5 reads `KRB5_CONFIG` per process, so this binary
//! runs one lab.

mod common;

use std::time::Duration;

use autoenroll::krb::{CredentialSource, Credentials};
use autoenroll::lab::LabOptions;
use autoenroll::pki::keys::{KeyAlgorithm, PrivateKey};
use autoenroll::scep::challenge_fetch::{self, Auth, Binding, ChallengeError};
use autoenroll::scep::client::{self, ScepClient};
use autoenroll::scep::exchange::Outcome;
use autoenroll::scep::request::{CsrSpec, NameAttribute, SanEntry};

const NDES: &str = "[ndes]\n\
    service_account = \"WEB01$\"\n\
    general_purpose_template = \"WebServer\"\n\
    admins = [\"WS01$\"]\n";

fn spec(cn: &str) -> CsrSpec {
    CsrSpec {
        subject: vec![NameAttribute {
            oid: "2.5.4.3".into(),
            value: cn.into(),
        }],
        sans: vec![SanEntry::Dns(cn.into())],
        key_usage: Some(0b101),
        ..CsrSpec::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_fetches_challenges_with_its_keytab() {
    let lab = common::start_with(LabOptions {
        kerberos: true,
        ..LabOptions::default()
    });
    let kdc = lab.lab.kdc.as_ref().expect("the lab has a KDC");
    autoenroll::krb::use_config(&kdc.krb5_conf).unwrap();
    // The CA by hand: the common helper reads the directory with a simple
    // bind, which this lab's policies do not have.
    let path = lab
        .lab
        .write_ca_config(common::free_port(), common::free_port())
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{text}\n{NDES}")).unwrap();
    let config = autoenroll::ca::CaConfig::load(&path).unwrap();
    assert!(config.kerberos.is_some(), "the lab's CA has Kerberos keys");
    let now = common::start_time();
    autoenroll::ca::init::init(&config, now)
        .await
        .expect("ca init");
    let clock = std::sync::Arc::new(autoenroll::clock::ManualClock::new(now));
    let authority = std::sync::Arc::new(autoenroll::ca::Authority::open(config, clock).unwrap());
    let ca_certificate = authority.signer().certificate_der().to_vec();
    let listening = autoenroll::ca::server::start(authority.clone())
        .await
        .expect("CA serves");
    let base = format!(
        "https://{}:{}",
        autoenroll::lab::kdc::SERVICE_HOST,
        listening.https.port()
    );
    let roots = std::slice::from_ref(&ca_certificate);
    let credentials = |account: &str| {
        Credentials::acquire(&CredentialSource::Keytab {
            keytab: autoenroll::lab::kdc::keytab_path(&lab.lab.dir, account),
            principal: None,
            ccache: lab.tmp.path().join(format!("{account}-ccache")),
        })
        .expect("credentials from the keytab")
    };
    let ws01 = credentials("ws01");
    let timeout = Duration::from_secs(20);

    let one_time = challenge_fetch::one_time(
        &format!("{base}/certsrv/mscep_admin/"),
        roots,
        Auth::Negotiate(&ws01),
        timeout,
    )
    .await
    .expect("a one-time challenge for WS01$");
    assert_eq!(one_time.len(), 16);
    let bound = challenge_fetch::dynamic(
        &format!("{base}/certsrv/mscep_challenge/"),
        roots,
        Auth::Negotiate(&ws01),
        &Binding {
            subject: "CN=ws01-dev.corp.example".into(),
            dns_names: vec!["ws01-dev.corp.example".into()],
            key_usage: Some(0b101),
        },
        timeout,
    )
    .await
    .expect("a dynamic challenge for WS01$");

    // Another host's account is not an administrator.
    let web01 = credentials("web01");
    let refused = challenge_fetch::one_time(
        &format!("{base}/certsrv/mscep_admin/"),
        roots,
        Auth::Negotiate(&web01),
        timeout,
    )
    .await;
    assert_eq!(refused, Err(ChallengeError::NoPermission));

    let mscep = format!(
        "http://127.0.0.1:{}/certsrv/mscep/mscep.dll",
        listening.http.unwrap().port()
    );
    let scep = ScepClient::new(&mscep, &[], timeout).unwrap();
    let server = client::discover(&scep, &ca_certificate).await.unwrap();
    for (cn, challenge) in [
        ("ws01-ot.corp.example", one_time.as_str()),
        ("ws01-dev.corp.example", bound.challenge.as_str()),
    ] {
        let key = PrivateKey::generate(KeyAlgorithm::Rsa { bits: 2048 }).unwrap();
        let outcome = client::enroll(&scep, &server, &key, &spec(cn), Some(challenge), None)
            .await
            .unwrap();
        assert!(
            matches!(outcome, Outcome::Issued { .. }),
            "{cn}: {outcome:?}"
        );
    }

    // The same two sources from the pulse: ws01's own policy (its keytab)
    // with one profile per challenge kind; the dynamic challenge is bound to
    // the names the pulse's request carries.
    let root = lab.tmp.path().join("ndes-root.der");
    std::fs::write(&root, &ca_certificate).unwrap();
    let profile = |name: &str, source: &str, page: &str| {
        format!(
            "[scep.{name}]\ntype = \"device\"\n\
             subject = 'CN={{{{DeviceName}}}}-{name}.{{{{Domain}}}},O=\"Lab, Devices\"'\n\
             san = [\"dns:{{{{DeviceName}}}}-{name}.{{{{Domain}}}}\"]\n\
             root = \"{}\"\nurls = [\"{mscep}\"]\n\
             challenge = \"{source}\"\nchallenge_url = \"{base}/certsrv/{page}/\"\n",
            root.display()
        )
    };
    let text = std::fs::read_to_string(lab.lab.policy_path("ws01")).unwrap();
    let path = lab.lab.dir.join("ws01-ndes.toml");
    std::fs::write(
        &path,
        format!(
            "{text}\n{}\n{}",
            profile("ot", "ndes-admin", "mscep_admin"),
            profile("dyn", "dynamic", "mscep_challenge")
        ),
    )
    .unwrap();
    let policy = autoenroll::policy::Policy::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let report = autoenroll::pulse::pulse(&policy, autoenroll::pulse::PulseOptions::at(now))
        .await
        .expect("pulse runs");
    for name in ["ot", "dyn"] {
        let installed: Vec<_> = report
            .outcomes
            .iter()
            .filter(|o| {
                o.event == autoenroll::pulse::Event::Installed && o.profile.as_deref() == Some(name)
            })
            .collect();
        assert_eq!(installed.len(), 1, "{name}: {:#?}", report.outcomes);
    }
    let held: Vec<String> = autoenroll::store::Store::open(&policy.store)
        .unwrap()
        .snapshot()
        .unwrap()
        .certificates
        .iter()
        .filter(|c| c.meta.scep_profile.is_some())
        .map(|c| c.info.subject.clone())
        .collect();
    assert_eq!(held.len(), 2, "{held:?}");
    for name in ["ot", "dyn"] {
        assert!(
            held.iter()
                .any(|s| s.starts_with(&format!("CN=WS01-{name}.corp.example,"))),
            "{name}: {held:?}"
        );
    }
    // Nothing of either challenge reached the report.
    let json = serde_json::to_string(&report).unwrap();
    assert!(!json.contains(&one_time) && !json.contains(&bound.challenge));
}
