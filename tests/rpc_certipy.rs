//! Certipy (`certipy req`, PyPI `certipy-ad`, on impacket), the tool AD
//! administrators and auditors use against AD CS, obtains a certificate for
//! ws01 from the emulated CA over MS-ICPR with a Kerberos ticket of the
//! lab's KDC, as it would from a Windows CA: the endpoint mapper on port
//! 135 of the CA host (`-dynamic-endpoint`), ICertPassage at packet
//! privacy with `host/ca.corp.example`. The certificate is read back with
//! openssl: ws01's names, corp-CA as issuer, a chain that verifies.
//!
//! Certipy asks the endpoint mapper on port 135 and has no option for
//! another, so this test binds 127.0.0.1:135 and needs the privilege to
//! (root or CAP_NET_BIND_SERVICE); without it, it says so and passes
//! nothing else. MIT krb5 reads `KRB5_CONFIG` per process: one lab, one
//! test.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use autoenroll::ca::db::{Authentication, Disposition};
use autoenroll::ca::icpr::IcprSettings;
use autoenroll::ca::{Authority, CaConfig};
use autoenroll::clock::ManualClock;
use autoenroll::lab::LabOptions;

const CA_DN: &str = "CN=corp-CA,CN=Enrollment Services,CN=Public Key Services,CN=Services,CN=Configuration,DC=corp,DC=example";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certipy_enrolls_ws01_over_rpc() {
    // Port 135, as Windows' endpoint mapper: certipy knows no other.
    match std::net::TcpListener::bind("127.0.0.1:135") {
        Ok(l) => drop(l),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            eprintln!(
                "skipped: certipy needs the CA's endpoint mapper on port 135, and this user may not bind it ({e})"
            );
            return;
        }
        Err(e) => panic!("127.0.0.1:135 cannot be bound: {e}"),
    }
    let lab = common::start_with(LabOptions {
        kerberos: true,
        ..LabOptions::default()
    });
    let kdc = lab.lab.kdc.as_ref().expect("the lab has a KDC");
    autoenroll::krb::use_config(&kdc.krb5_conf).unwrap();
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
    let ca = Arc::new(Authority::open(config, clock).unwrap());
    let rpc = autoenroll::ca::icpr::start(
        ca.clone(),
        IcprSettings {
            epm_listen: "127.0.0.1:135".parse().unwrap(),
            listen: "127.0.0.1:0".parse().unwrap(),
            keytab: kdc.dir.join("ca-host.keytab"),
            rcache: lab.tmp.path().join("rpc-rcache"),
        },
    )
    .await
    .expect("CA serves ICertPassage on 135");
    // No CES URL: certipy can only have come over RPC.
    lab.admin(
        "ldapmodify",
        &format!("dn: {CA_DN}\nchangetype: modify\ndelete: msPKI-Enrollment-Servers\n"),
    );

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    common::run(&mut Command::new(root.join("scripts/python-tools.sh")));
    let venv = std::env::var_os("AUTOENROLL_PYTHON_TOOLS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target/python-tools"));

    // ws01's tickets, as a joined host has them: a TGT from its keytab and
    // the CA host's service ticket (certipy uses the cache's HOST ticket).
    let ccache = lab.tmp.path().join("certipy-ccache");
    let ccache_name = format!("FILE:{}", ccache.display());
    let keytab = autoenroll::lab::kdc::keytab_path(&lab.lab.dir, "ws01");
    let mut kinit = Command::new("kinit");
    kdc.env(&mut kinit);
    common::run(
        kinit
            .env("KRB5CCNAME", &ccache_name)
            .args(["-k", "-t"])
            .arg(&keytab)
            .arg("WS01$"),
    );
    let mut kvno = Command::new("kvno");
    kdc.env(&mut kvno);
    common::run(
        kvno.env("KRB5CCNAME", &ccache_name)
            .arg("host/ca.corp.example"),
    );

    let work = lab.tmp.path().join("certipy");
    std::fs::create_dir_all(&work).unwrap();
    let mut certipy = Command::new(venv.join("bin/certipy"));
    kdc.env(&mut certipy);
    let out = common::run(
        certipy
            .current_dir(&work)
            // impacket reads a plain path, not MIT's FILE: form.
            .env("KRB5CCNAME", &ccache)
            .args([
                "req",
                "-debug",
                "-k",
                "-no-pass",
                "-u",
                "WS01$@CORP.EXAMPLE",
            ])
            .args(["-ca", "corp-CA", "-template", "WorkstationAuth"])
            .args(["-target", "ca.corp.example", "-target-ip", "127.0.0.1"])
            .args(["-dc-ip", "127.0.0.1", "-dynamic-endpoint", "-out", "ws01"]),
    );
    assert!(out.contains("Successfully requested certificate"), "{out}");
    assert!(out.contains("Using HOST ticket from cache"), "{out}");

    // The CA recorded it as an RPC request of WS01$, issued.
    let id: u64 = out
        .lines()
        .find_map(|l| l.split("Request ID is ").nth(1))
        .and_then(|id| id.trim().parse().ok())
        .unwrap_or_else(|| panic!("certipy names the request ID: {out}"));
    let record = ca.db().get(id).unwrap().expect("recorded");
    assert_eq!(record.requester, "WS01$");
    assert_eq!(record.authentication, Some(Authentication::Rpc));
    assert_eq!(record.disposition, Disposition::Issued);

    // openssl reads certipy's PFX: ws01's subject and DNS name, corp-CA as
    // issuer, and the chain to the directory's CA certificate verifies.
    let pfx = work.join("ws01.pfx");
    let cert = work.join("ws01.pem");
    common::run(
        Command::new("openssl")
            .args(["pkcs12", "-in"])
            .arg(&pfx)
            .args(["-nokeys", "-clcerts", "-passin", "pass:", "-out"])
            .arg(&cert),
    );
    let text = common::run(
        Command::new("openssl")
            .args([
                "x509",
                "-noout",
                "-subject",
                "-issuer",
                "-ext",
                "subjectAltName",
                "-in",
            ])
            .arg(&cert),
    );
    assert!(text.contains("subject=CN = ws01.corp.example"), "{text}");
    assert!(text.contains("CN = corp-CA"), "{text}");
    assert!(text.contains("DNS:ws01.corp.example"), "{text}");
    let issued = std::fs::read_to_string(&cert).unwrap();
    assert!(
        issued.contains(&pem(record
            .certificate
            .as_deref()
            .expect("issued certificate"))),
        "the PFX holds the certificate the CA recorded"
    );
    let ca_pem = work.join("corp-ca.pem");
    std::fs::write(&ca_pem, ca.signer().certificate_pem()).unwrap();
    let verified = common::run(
        Command::new("openssl")
            .arg("verify")
            .arg("-CAfile")
            .arg(&ca_pem)
            .arg(&cert),
    );
    assert!(verified.contains(": OK"), "{verified}");

    rpc.stop().await;
}

/// The base64 lines of a certificate's PEM (without the armor).
fn pem(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}
