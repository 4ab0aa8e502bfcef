//! `ca serve` answers MS-ICPR from its configuration (`rpc_keytab`,
//! `rpc_listen`, `rpc_epm_listen`): the CA runs as its own process, its
//! endpoint mapper tells ICertPassage's port, and ws01 enrolls over RPC from
//! it with the CA publishing no CES URL; the CA's database records the
//! method. A configuration naming RPC listeners without the keytab is
//! refused, naming the key.
//!
//! MIT krb5 reads `KRB5_CONFIG` per process, so this binary runs one lab.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use autoenroll::ca::CaConfig;
use autoenroll::lab::LabOptions;
use autoenroll::policy::Policy;
use autoenroll::pulse::{Event, PulseOptions, pulse};
use autoenroll::rpc::ICERT_PASSAGE;
use autoenroll::rpc::conn::map_endpoint;
use serde_json::Value;
use time::OffsetDateTime;

const CA_DN: &str = "CN=corp-CA,CN=Enrollment Services,CN=Public Key Services,CN=Services,CN=Configuration,DC=corp,DC=example";

/// Kills `ca serve` when the test ends, passed or failed.
struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The CA configuration with `lines` added before its first table.
fn with_top_level(text: &str, lines: &str) -> String {
    match text.find("\n[") {
        Some(i) => format!("{}\n{lines}{}", &text[..i], &text[i..]),
        None => format!("{text}\n{lines}"),
    }
}

/// Reads `ca serve`'s stdout until it says where MS-ICPR listens.
fn rpc_addresses(child: &mut Child) -> (SocketAddr, SocketAddr) {
    let stdout = child.stdout.take().expect("stdout piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("MS-ICPR (ICertPassage) on ") {
                let _ = tx.send(rest.to_string());
            }
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("ca serve says where MS-ICPR listens");
    let (icpr, epm) = line
        .split_once(", endpoint mapper on ")
        .expect("two addresses");
    (
        icpr.parse().expect("an address"),
        epm.parse().expect("an address"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_serve_answers_icert_passage_from_its_configuration() {
    let lab = common::start_with(LabOptions {
        kerberos: true,
        ..LabOptions::default()
    });
    let kdc = lab.lab.kdc.as_ref().expect("the lab has a KDC");
    autoenroll::krb::use_config(&kdc.krb5_conf).unwrap();
    let ca_toml = lab
        .lab
        .write_ca_config(common::free_port(), common::free_port())
        .unwrap();
    let text = std::fs::read_to_string(&ca_toml).unwrap();

    // RPC listeners without the keytab: refused, naming the key.
    let bad = lab.tmp.path().join("bad-ca.toml");
    std::fs::write(
        &bad,
        with_top_level(&text, "rpc_epm_listen = \"127.0.0.1:0\"\n"),
    )
    .unwrap();
    let err = CaConfig::load(&bad).expect_err("rpc_epm_listen alone");
    assert!(err.to_string().contains("rpc_epm_listen"), "{err}");

    let rpc_lines = format!(
        "rpc_keytab = \"{}\"\nrpc_listen = \"127.0.0.1:0\"\nrpc_epm_listen = \"127.0.0.1:{}\"\n",
        kdc.dir.join("ca-host.keytab").display(),
        common::free_port()
    );
    std::fs::write(&ca_toml, with_top_level(&text, &rpc_lines)).unwrap();
    let config = CaConfig::load(&ca_toml).expect("the RPC keys are read");
    assert!(config.rpc.is_some());

    let exe = env!("CARGO_BIN_EXE_autoenroll");
    let init = Command::new(exe)
        .args(["ca", "init", "--config"])
        .arg(&ca_toml)
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "ca init: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    let mut serve = Serving(
        Command::new(exe)
            .args(["ca", "serve", "--config"])
            .arg(&ca_toml)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (icpr, epm) = rpc_addresses(&mut serve.0);

    // The endpoint mapper of the CA process tells ICertPassage's port.
    let port = map_endpoint(epm, ICERT_PASSAGE, Duration::from_secs(60))
        .await
        .expect("ept_map answers");
    assert_eq!(port, icpr.port());

    // No CES URL is published: ws01 can only enroll over RPC.
    lab.admin(
        "ldapmodify",
        &format!("dn: {CA_DN}\nchangetype: modify\ndelete: msPKI-Enrollment-Servers\n"),
    );
    let base = std::fs::read_to_string(lab.lab.dir.join("ws01.toml")).unwrap();
    let policy_path = lab.lab.dir.join("ws01-rpc.toml");
    std::fs::write(
        &policy_path,
        format!(
            "{base}\n[enrollment]\nrpc_port = {}\nrpc_hosts = {{ \"ca.corp.example\" = \"127.0.0.1\" }}\n",
            epm.port()
        ),
    )
    .unwrap();
    let policy = Policy::load(&policy_path).unwrap();
    let started = Instant::now();
    let report = pulse(&policy, PulseOptions::at(OffsetDateTime::now_utc()))
        .await
        .expect("pulse runs");
    let mut installed: Vec<String> = report
        .outcomes
        .iter()
        .filter(|o| o.event == Event::Installed)
        .filter_map(|o| o.template.clone())
        .collect();
    installed.sort();
    assert_eq!(installed, ["ShortLived", "WorkstationAuth"], "{report:#?}");
    eprintln!(
        "first pulse over RPC to `ca serve`: {:?}",
        started.elapsed()
    );

    // The CA process recorded the method of every ws01 request.
    let listed = Command::new(exe)
        .args(["ca", "requests", "--json", "--config"])
        .arg(&ca_toml)
        .output()
        .unwrap();
    assert!(listed.status.success());
    let rows: Vec<Value> = serde_json::from_slice(&listed.stdout).expect("JSON rows");
    let ws01: Vec<&Value> = rows.iter().filter(|r| r["requester"] == "WS01$").collect();
    assert_eq!(ws01.len(), 3, "{rows:#?}");
    for r in ws01 {
        assert_eq!(r["authentication"], "rpc-kerberos", "{r}");
    }
}
