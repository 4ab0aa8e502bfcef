//! MS-ICPR end to end against the lab's KDC, slapd and CA: ws01 enrolls,
//! renews (CMS) and retrieves a pending request over DCE/RPC with the CA
//! publishing no CES URL at all; a denial over RPC carries the HRESULT the
//! CES endpoint gives; unauthenticated and integrity-only associations are
//! refused; the endpoint mapper answers for ICertPassage; a CA whose RPC
//! port is closed is passed over for the next; impacket decodes our
//! request's NDR, the CA's answers and its endpoint mapper's towers, and
//! obtains a certificate for ws01 over RPC with a ticket of the lab's KDC.
//!
//! MIT krb5 reads `KRB5_CONFIG` per process, so this binary runs one lab
//! (one realm) and one test.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use autoenroll::ca::db::{Authentication, Disposition, ListFilter, RequestRecord};
use autoenroll::ca::icpr::IcprSettings;
use autoenroll::ca::{Authority, CaConfig};
use autoenroll::clock::ManualClock;
use autoenroll::enroll::route::Auth;
use autoenroll::enroll::rpc::RpcTarget;
use autoenroll::enroll::{EnrollmentClient, Outcome as CaOutcome};
use autoenroll::krb::{CredentialSource, Credentials};
use autoenroll::lab::LabOptions;
use autoenroll::policy::Policy;
use autoenroll::pulse::{Event, PulseOptions, Report, pulse};
use autoenroll::rpc::ICERT_PASSAGE;
use autoenroll::rpc::conn::{Association, ClientAuth, Level, RpcError, map_endpoint};
use autoenroll::rpc::icpr::{CertServerRequest, OPNUM_CERT_SERVER_REQUEST};
use time::OffsetDateTime;

const MINUTE: Duration = Duration::from_secs(60);
const CA_DN: &str = "CN=corp-CA,CN=Enrollment Services,CN=Public Key Services,CN=Services,CN=Configuration,DC=corp,DC=example";

fn events(report: &Report, event: Event) -> Vec<String> {
    let mut t: Vec<String> = report
        .outcomes
        .iter()
        .filter(|o| o.event == event)
        .map(|o| o.template.clone().unwrap_or_default())
        .collect();
    t.sort();
    t
}

fn requests(ca: &Authority) -> Vec<RequestRecord> {
    ca.db().list(ListFilter::All).expect("requests listed")
}

fn by(records: &[RequestRecord], requester: &str) -> Vec<RequestRecord> {
    records
        .iter()
        .filter(|r| r.requester.eq_ignore_ascii_case(requester))
        .cloned()
        .collect()
}

async fn pulse_at(policy: &Policy, clock: &ManualClock, at: OffsetDateTime) -> Report {
    clock.set(at);
    pulse(policy, PulseOptions::at(at))
        .await
        .expect("pulse runs")
}

/// A copy of a lab policy that reaches the CA host over RPC on loopback.
fn rpc_policy(lab_dir: &Path, account: &str, epm: SocketAddr, extra: &str) -> Policy {
    let text = std::fs::read_to_string(lab_dir.join(format!("{account}.toml"))).unwrap();
    let path = lab_dir.join(format!("{account}-rpc.toml"));
    std::fs::write(
        &path,
        format!(
            "{text}\n[enrollment]\nrpc_port = {}\nrpc_hosts = {{ \"ca.corp.example\" = \"127.0.0.1\", \"dead.corp.example\" = \"127.0.0.2\" }}\n{extra}",
            epm.port()
        ),
    )
    .unwrap();
    Policy::load(&path).unwrap()
}

fn is_access_denied(e: &RpcError) -> bool {
    matches!(e, RpcError::Fault { status: 5 })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn icpr_end_to_end() {
    let lab = common::start_with(LabOptions {
        kerberos: true,
        ..LabOptions::default()
    });
    let kdc = lab.lab.kdc.as_ref().expect("the lab has a KDC");
    autoenroll::krb::use_config(&kdc.krb5_conf).unwrap();
    let host_keytab = kdc.dir.join("ca-host.keytab");

    let t0 = common::start_time();
    let ca_toml = lab
        .lab
        .write_ca_config(common::free_port(), common::free_port())
        .unwrap();
    let config = CaConfig::load(&ca_toml).unwrap();
    autoenroll::ca::init::init(&config, t0)
        .await
        .expect("ca init");
    let clock = Arc::new(ManualClock::new(t0));
    let ca = Arc::new(Authority::open(config.clone(), clock.clone()).unwrap());
    let https = autoenroll::ca::server::start(ca.clone())
        .await
        .expect("CA serves CES");
    let rpc = autoenroll::ca::icpr::start(
        ca.clone(),
        IcprSettings {
            epm_listen: "127.0.0.1:0".parse().unwrap(),
            listen: "127.0.0.1:0".parse().unwrap(),
            keytab: host_keytab.clone(),
            rcache: lab.tmp.path().join("rpc-rcache"),
        },
    )
    .await
    .expect("CA serves ICertPassage");

    // The CA publishes no enrollment URL: only RPC can reach it.
    lab.admin(
        "ldapmodify",
        &format!("dn: {CA_DN}\nchangetype: modify\ndelete: msPKI-Enrollment-Servers\n"),
    );

    // The endpoint mapper answers for ICertPassage with its port.
    let port = map_endpoint(rpc.epm, ICERT_PASSAGE, MINUTE)
        .await
        .expect("ept_map answers");
    assert_eq!(port, rpc.icpr.port());

    // ws01, keytab only: enrolls over RPC.
    let ws01 = rpc_policy(&lab.lab.dir, "ws01", rpc.epm, "");
    let first = pulse_at(&ws01, &clock, t0).await;
    assert!(first.ok, "{first:#?}");
    assert_eq!(
        events(&first, Event::Installed),
        ["ShortLived", "WorkstationAuth"],
        "{first:#?}"
    );
    assert_eq!(
        events(&first, Event::Pending),
        ["PendingMachine"],
        "{first:#?}"
    );
    let records = by(&requests(&ca), "WS01$");
    assert_eq!(records.len(), 3, "{records:#?}");
    assert!(
        records
            .iter()
            .all(|r| r.authentication == Some(Authentication::Rpc)),
        "{records:#?}"
    );

    // Renewal at the 80% point of ShortLived: a CMS signed by the old key.
    let r = pulse_at(&ws01, &clock, t0 + 49 * MINUTE).await;
    assert_eq!(events(&r, Event::Replaced), ["ShortLived"], "{r:#?}");
    let renewal = by(&requests(&ca), "WS01$")
        .into_iter()
        .rfind(|r| r.template.as_deref() == Some("ShortLived"))
        .unwrap();
    assert!(renewal.renewal_of.is_some(), "{renewal:#?}");
    assert_eq!(renewal.authentication, Some(Authentication::Rpc));
    assert_eq!(renewal.disposition, Disposition::Issued);

    // The administrator approves PendingMachine: retrieved over RPC.
    let pending = by(&requests(&ca), "WS01$")
        .into_iter()
        .find(|r| r.disposition == Disposition::Pending)
        .expect("a pending request");
    ca.approve(pending.id).await.unwrap();
    let r = pulse_at(&ws01, &clock, t0 + 120 * MINUTE).await;
    assert_eq!(events(&r, Event::Installed), ["PendingMachine"], "{r:#?}");
    let retrieved = requests(&ca)
        .into_iter()
        .find(|r| r.id == pending.id)
        .unwrap();
    assert_eq!(retrieved.disposition, Disposition::Issued);

    // A denial over RPC carries the HRESULT the CES endpoint gives for the
    // same request: ws01 may not enroll for the User template.
    let creds = Credentials::acquire(&CredentialSource::Keytab {
        keytab: autoenroll::lab::kdc::keytab_path(&lab.lab.dir, "ws01"),
        principal: None,
        ccache: lab.tmp.path().join("test-ccache"),
    })
    .unwrap();
    let csr = common::openssl_csr(lab.tmp.path(), "rsa:2048");
    let target = RpcTarget {
        host: "ca.corp.example".into(),
        mapper: rpc.epm,
        ca_name: "corp-CA".into(),
    };
    let over_rpc = autoenroll::enroll::rpc::submit(&creds, &target, &csr, "User", false, MINUTE)
        .await
        .expect("the CA answers over RPC");
    let ces = EnrollmentClient::new(&[ca.signer().certificate_der().to_vec()], None, MINUTE)
        .unwrap()
        .with_kerberos(Some(creds.clone()));
    let url = config.kerberos_endpoint_url().expect("a Kerberos endpoint");
    let over_ces = ces
        .submit_as(&url, Auth::Kerberos, &csr, "User", MINUTE)
        .await
        .expect("the CA answers over CES");
    let hresult = |o: &CaOutcome| match o {
        CaOutcome::Denied { hresult, .. } => *hresult,
        other => panic!("expected a denial, got {other:?}"),
    };
    assert_eq!(hresult(&over_rpc), 0x8009_4012, "{over_rpc:?}");
    assert_eq!(hresult(&over_rpc), hresult(&over_ces), "{over_ces:?}");

    // Wall time of one issuance by each door, printed for the record (no
    // assertion on it: timing goals live in benches/). Each request is a
    // fresh association (RPC: ept_map, bind, three legs, the call) or a
    // fresh HTTPS connection (CES: TLS, Negotiate, SOAP).
    let mut rpc_times = Vec::new();
    let mut ces_times = Vec::new();
    for _ in 0..5 {
        let one = common::openssl_csr(lab.tmp.path(), "rsa:2048");
        let started = std::time::Instant::now();
        let o = autoenroll::enroll::rpc::submit(
            &creds,
            &target,
            &one,
            "WorkstationAuth",
            false,
            MINUTE,
        )
        .await
        .unwrap();
        rpc_times.push(started.elapsed());
        assert!(matches!(o, CaOutcome::Issued { .. }), "{o:?}");
        let one = common::openssl_csr(lab.tmp.path(), "rsa:2048");
        let started = std::time::Instant::now();
        let o = ces
            .submit_as(&url, Auth::Kerberos, &one, "WorkstationAuth", MINUTE)
            .await
            .unwrap();
        ces_times.push(started.elapsed());
        assert!(matches!(o, CaOutcome::Issued { .. }), "{o:?}");
    }
    rpc_times.sort();
    ces_times.sort();
    eprintln!(
        "issuance wall time, median of 5: RPC {:?} (min {:?}), CES Kerberos {:?} (min {:?})",
        rpc_times[2], rpc_times[0], ces_times[2], ces_times[0]
    );

    // Below packet privacy, nothing is done: unauthenticated and
    // integrity-only associations get rpc_s_access_denied, and nothing is
    // recorded.
    let count = requests(&ca).len();
    let fresh = common::openssl_csr(lab.tmp.path(), "rsa:2048");
    assert_ne!(fresh, csr);
    let request = CertServerRequest {
        flags: 0,
        authority: Some("corp-CA".into()),
        request_id: 0,
        attributes: vec![("CertificateTemplate".into(), "WorkstationAuth".into())],
        request: fresh,
    }
    .encode();
    let mut open = Association::connect(rpc.icpr, ICERT_PASSAGE, None)
        .await
        .expect("an unauthenticated bind is accepted, as Windows does");
    let e = open
        .call(OPNUM_CERT_SERVER_REQUEST, &request)
        .await
        .unwrap_err();
    assert!(is_access_denied(&e), "{e}");
    let mut signed = Association::connect(
        rpc.icpr,
        ICERT_PASSAGE,
        Some(ClientAuth {
            credentials: creds.clone(),
            spn: "host/ca.corp.example".into(),
            spnego: false,
            level: Level::Integrity,
        }),
    )
    .await
    .expect("an integrity-only bind completes");
    let e = signed
        .call(OPNUM_CERT_SERVER_REQUEST, &request)
        .await
        .unwrap_err();
    assert!(is_access_denied(&e), "{e}");
    assert_eq!(requests(&ca).len(), count);

    // The same call at packet privacy, over SPNEGO (auth type 9, the third
    // leg in alter_context as impacket sends it), is served.
    let mut private = Association::connect(
        rpc.icpr,
        ICERT_PASSAGE,
        Some(ClientAuth {
            credentials: creds.clone(),
            spn: "host/ca.corp.example".into(),
            spnego: true,
            level: Level::Privacy,
        }),
    )
    .await
    .expect("a SPNEGO bind at packet privacy");
    let answer_stub = private
        .call(OPNUM_CERT_SERVER_REQUEST, &request)
        .await
        .expect("served");
    let answer = autoenroll::rpc::icpr::CertServerResponse::decode(&answer_stub).unwrap();
    assert_eq!(answer.disposition, 3, "{}", answer.message);
    assert_eq!(requests(&ca).len(), count + 1);

    // Failover: corp-CA's host is moved to an address where nothing
    // listens, and a second service object for the same CA keeps the real
    // host. web01 enrolls through the second.
    let ca_certificate = ca.signer().certificate_der().to_vec();
    let forest = include_str!("../ldif/forest.ldif");
    let block = forest
        .split("\n\n")
        .find(|b| b.contains(&format!("dn: {CA_DN}")))
        .expect("corp-CA in the forest");
    let mut backup: Vec<String> = block
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| match l.split_once(": ") {
            Some(("dn" | "cn" | "name" | "displayName", v)) => {
                format!(
                    "{}: {}",
                    l.split_once(':').unwrap().0,
                    v.replacen("corp-CA", "corp-CA-backup", 1)
                )
            }
            Some(("objectGUID:", _)) => "objectGUID:: Ujw+JEcpsVCIEdrflYarSw==".to_string(),
            _ => l.to_string(),
        })
        .collect();
    backup.push(format!(
        "cACertificate:: {}",
        base64_encode(&ca_certificate)
    ));
    let backup = backup.join("\n") + "\n";
    lab.admin("ldapadd", &backup);
    lab.admin(
        "ldapmodify",
        &format!("dn: {CA_DN}\nchangetype: modify\nreplace: dNSHostName\ndNSHostName: dead.corp.example\n"),
    );
    // The pulse asks CAs in directory order: the unreachable one first.
    let order = common::run(
        std::process::Command::new("ldapsearch")
            .env("LDAPTLS_CACERT", &lab.lab.tls_ca_file)
            .args(["-x", "-Z", "-LLL", "-H", &lab.lab.url, "-D", &lab.lab.admin_dn, "-y"])
            .arg(lab.lab.dir.join("admin.secret"))
            .args([
                "-b",
                "CN=Enrollment Services,CN=Public Key Services,CN=Services,CN=Configuration,DC=corp,DC=example",
                "(objectClass=pKIEnrollmentService)",
                "dNSHostName",
            ]),
    );
    let dead_at = order.find("dead.corp.example").expect("corp-CA listed");
    let live_at = order
        .find("ca.corp.example")
        .expect("corp-CA-backup listed");
    assert!(dead_at < live_at, "{order}");
    let web01 = rpc_policy(&lab.lab.dir, "web01", rpc.epm, "");
    let r = pulse_at(&web01, &clock, t0 + 121 * MINUTE).await;
    let installed: Vec<_> = r
        .outcomes
        .iter()
        .filter(|o| o.event == Event::Installed && o.template.as_deref() == Some("WorkstationAuth"))
        .collect();
    assert_eq!(installed.len(), 1, "{r:#?}");
    assert!(
        installed[0].message.contains("corp-CA-backup issued"),
        "{r:#?}"
    );
    assert!(
        by(&requests(&ca), "WEB01$")
            .iter()
            .all(|r| r.authentication == Some(Authentication::Rpc)),
    );

    // Both CAs' hosts unreachable, RPC the only method: the first request
    // finds each endpoint unreachable; the pulse's next requests do not
    // ask them again, and say so.
    lab.admin(
        "ldapmodify",
        &format!(
            "dn: {}\nchangetype: modify\nreplace: dNSHostName\ndNSHostName: dead.corp.example\n",
            CA_DN.replacen("corp-CA", "corp-CA-backup", 1)
        ),
    );
    let nodns01 = rpc_policy(&lab.lab.dir, "nodns01", rpc.epm, "methods = [\"rpc\"]\n");
    let r = pulse_at(&nodns01, &clock, t0 + 122 * MINUTE).await;
    assert!(!r.ok, "{r:#?}");
    let failed: Vec<&str> = r
        .outcomes
        .iter()
        .filter(|o| o.event == Event::Failed)
        .map(|o| o.message.as_str())
        .collect();
    assert!(failed.len() >= 2, "{r:#?}");
    assert!(
        !failed[0].contains("earlier in this pulse"),
        "the first request tries both: {}",
        failed[0]
    );
    for later in &failed[1..] {
        assert_eq!(
            later
                .matches("could not be reached earlier in this pulse")
                .count(),
            2,
            "neither CA is asked over RPC again: {later}"
        );
    }

    // impacket, a DCE/RPC we did not write: our request's bytes decode
    // with its NDR definitions, and so do the CA's answers.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    common::run(&mut std::process::Command::new(
        root.join("scripts/python-tools.sh"),
    ));
    let venv = std::env::var_os("AUTOENROLL_PYTHON_TOOLS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target/python-tools"));
    let python = venv.join("bin/python");
    let script = root.join("tests/interop/impacket_icpr.py");
    let ours = autoenroll::enroll::rpc::request_for(&csr, "WorkstationAuth", false, "corp-CA");
    let hex: String = ours.encode().iter().map(|b| format!("{b:02x}")).collect();
    let decoded: serde_json::Value = serde_json::from_str(&common::run(
        std::process::Command::new(&python)
            .arg(&script)
            .args(["decode-request", &hex]),
    ))
    .unwrap();
    assert_eq!(decoded["flags"], 0x102, "{decoded}");
    assert_eq!(decoded["authority"], "corp-CA", "{decoded}");
    assert_eq!(decoded["request_id"], 0, "{decoded}");
    assert_eq!(
        decoded["attributes"], "CertificateTemplate:WorkstationAuth",
        "{decoded}"
    );
    assert_eq!(decoded["request"], base64_encode(&csr), "{decoded}");

    // The CA's answer (the one to the SPNEGO call above) decodes in
    // impacket to the same fields.
    let hex: String = answer_stub.iter().map(|b| format!("{b:02x}")).collect();
    let theirs: serde_json::Value = serde_json::from_str(&common::run(
        std::process::Command::new(&python)
            .arg(&script)
            .args(["decode-response", &hex]),
    ))
    .unwrap();
    assert_eq!(theirs["disposition"], 3, "{theirs}");
    assert_eq!(theirs["request_id"], answer.request_id, "{theirs}");
    assert_eq!(
        theirs["certificate"],
        base64_encode(&answer.certificate),
        "{theirs}"
    );
    assert_eq!(theirs["chain"], base64_encode(&answer.chain), "{theirs}");
    assert_eq!(theirs["message"], answer.message, "{theirs}");

    // impacket's ept_map (hept_map) reads our endpoint mapper's tower.
    let mapped = common::run(std::process::Command::new(&python).arg("-c").arg(format!(
        "from impacket.dcerpc.v5 import epm, icpr, transport\n\
         t = transport.DCERPCTransportFactory('ncacn_ip_tcp:127.0.0.1[{}]')\n\
         d = t.get_dce_rpc(); d.connect()\n\
         print(epm.hept_map('ca.corp.example', icpr.MSRPC_UUID_ICPR, protocol='ncacn_ip_tcp', dce=d))",
        rpc.epm.port()
    )));
    assert_eq!(
        mapped.trim(),
        format!("ncacn_ip_tcp:ca.corp.example[{}]", rpc.icpr.port())
    );

    // impacket obtains a certificate for ws01 from the CA over RPC, with
    // its ticket for host/ca.corp.example from the lab's KDC.
    let ccache = lab.tmp.path().join("impacket-ccache");
    let ccache_name = format!("FILE:{}", ccache.display());
    let keytab = autoenroll::lab::kdc::keytab_path(&lab.lab.dir, "ws01");
    let mut kinit = std::process::Command::new("kinit");
    kdc.env(&mut kinit);
    common::run(
        kinit
            .env("KRB5CCNAME", &ccache_name)
            .arg("-k")
            .arg("-t")
            .arg(&keytab)
            .arg("WS01$"),
    );
    let mut kvno = std::process::Command::new("kvno");
    kdc.env(&mut kvno);
    common::run(
        kvno.env("KRB5CCNAME", &ccache_name)
            .arg("host/ca.corp.example"),
    );
    let csr_path = lab.tmp.path().join("impacket.csr");
    std::fs::write(&csr_path, common::openssl_csr(lab.tmp.path(), "rsa:2048")).unwrap();
    let mut enroll = std::process::Command::new(&python);
    kdc.env(&mut enroll);
    let answer: serde_json::Value = serde_json::from_str(&common::run(
        enroll
            .env("KRB5CCNAME", &ccache)
            .arg(&script)
            .args([
                "enroll",
                "ca.corp.example",
                "127.0.0.1",
                &rpc.epm.port().to_string(),
                "corp-CA",
                "WorkstationAuth",
            ])
            .arg(&csr_path),
    ))
    .unwrap();
    assert_eq!(answer["port"], rpc.icpr.port(), "{answer}");
    assert_eq!(answer["disposition"], 3, "{answer}");
    let id = answer["request_id"].as_u64().expect("a request ID");
    let record = ca.db().get(id).unwrap().expect("recorded");
    assert_eq!(record.requester, "WS01$");
    assert_eq!(record.authentication, Some(Authentication::Rpc));
    assert_eq!(record.disposition, Disposition::Issued);
    assert_eq!(
        Some(answer["certificate"].as_str().unwrap().to_string()),
        record.certificate.as_deref().map(base64_encode),
        "{answer}"
    );

    rpc.stop().await;
    https.stop().await;
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}
