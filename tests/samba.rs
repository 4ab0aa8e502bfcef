//! `autoenroll lab up --directory samba` and `lab down`: a Samba AD DC on a
//! private loopback address, stopped by its PID, the address given back.

use std::process::Command;

fn exe() -> &'static str {
    env!("CARGO_BIN_EXE_autoenroll")
}

fn addresses_on_lo() -> String {
    let out = Command::new("ip")
        .args(["-4", "addr", "show", "dev", "lo"])
        .output()
        .expect("ip runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn lab_up_samba_then_down() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lab");
    let started = std::time::Instant::now();
    let out = Command::new(exe())
        .args(["lab", "up", "--directory", "samba", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "lab up --directory samba: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let url = std::fs::read_to_string(dir.join("url")).unwrap();
    let ip = std::fs::read_to_string(dir.join("samba.address")).unwrap();
    assert_eq!(url, format!("ldap://{ip}:389"));
    assert!(ip.starts_with("127.0.0.") && ip != "127.0.0.1", "{ip}");
    assert!(text.contains(&format!("ldaps://{ip}:636")), "{text}");
    assert!(addresses_on_lo().contains(&format!("inet {ip}/32")));
    let pid: i32 = std::fs::read_to_string(dir.join("samba.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());

    // The lab's own policy reads Samba: ws01 may autoenroll WorkstationAuth.
    let out = Command::new(exe())
        .args(["templates", "--json", "--policy"])
        .arg(dir.join("ws01.toml"))
        .output()
        .unwrap();
    let json = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{json}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verdicts: serde_json::Value = serde_json::from_str(&json).unwrap();
    let text = verdicts.to_string();
    assert!(text.contains("WorkstationAuth"), "{text}");

    // The CA that `lab up` published into Samba and serves (`ca init`, `ca
    // serve`): ws01 enrolls, its pending request is approved, web01's denied,
    // a certificate revoked, and the CRL `ca crl` publishes to Samba verifies
    // with OpenSSL against the CA certificate read back from Samba.
    let cli = |args: &[&str]| {
        let out = Command::new(exe()).args(args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{args:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let policy = |name: &str| dir.join(format!("{name}.toml")).display().to_string();
    let config = dir.join("ca.toml").display().to_string();
    cli(&["pulse", "--json", "--policy", &policy("ws01")]);
    cli(&["pulse", "--json", "--policy", &policy("web01")]);
    // Kerberos through Samba's own KDC: the lab's policies bind with the
    // keytabs samba-tool exported (ws01, web01) and alice's tickets from
    // kinit, over StartTLS, and enroll at the CA's Kerberos endpoint with
    // tickets for HTTP/localhost that Samba's KDC issued.
    let ws01_policy = std::fs::read_to_string(policy("ws01")).unwrap();
    assert!(ws01_policy.contains("bind = \"kerberos\""), "{ws01_policy}");
    assert!(!ws01_policy.contains("password"), "{ws01_policy}");
    cli(&["pulse", "--user", "--json", "--policy", &policy("alice")]);
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&cli(&["ca", "requests", "--json", "--config", &config])).unwrap();
    assert!(
        rows.iter()
            .any(|r| r["requester"] == "alice" && r["disposition"] == "issued"),
        "{rows:#?}"
    );
    assert!(
        rows.iter().all(|r| r["authentication"] == "kerberos"),
        "{rows:#?}"
    );
    // Over plain LDAP the session is sealed, which Samba requires.
    let plain = dir.join("ws01-plain.toml");
    std::fs::write(
        &plain,
        ws01_policy.replace("starttls = true", "starttls = false"),
    )
    .unwrap();
    cli(&["templates", "--policy", &plain.display().to_string()]);
    let pending: Vec<&serde_json::Value> = rows
        .iter()
        .filter(|r| r["template"] == "PendingMachine" && r["disposition"] == "pending")
        .collect();
    assert_eq!(pending.len(), 2, "{rows:#?}");
    let id = |r: &serde_json::Value| r["id"].as_u64().unwrap().to_string();
    cli(&["ca", "approve", "--config", &config, &id(pending[0])]);
    cli(&[
        "ca",
        "deny",
        "--config",
        &config,
        &id(pending[1]),
        "--reason",
        "not this one",
    ]);
    let serial = rows
        .iter()
        .find(|r| r["template"] == "WorkstationAuth" && r["requester"].to_string().contains("WS01"))
        .and_then(|r| r["serial"].as_str())
        .unwrap_or_else(|| panic!("no WorkstationAuth of ws01 in {rows:#?}"))
        .to_string();
    cli(&[
        "ca", "revoke", "--config", &config, &serial, "--reason", "1",
    ]);
    cli(&["ca", "crl", "--config", &config]);
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&cli(&["ca", "requests", "--json", "--config", &config])).unwrap();
    let state = |i: &str| {
        rows.iter()
            .find(|r| r["id"].as_u64().unwrap().to_string() == i)
            .map(|r| r["disposition"].as_str().unwrap_or("").to_string())
            .unwrap()
    };
    assert_eq!(state(&id(pending[0])), "issued", "{rows:#?}");
    assert_eq!(state(&id(pending[1])), "denied", "{rows:#?}");

    let pks = "CN=Public Key Services,CN=Services,CN=Configuration,DC=corp,DC=example";
    let read = |base: &str, attr: &str| -> Vec<u8> {
        let out = Command::new("ldapsearch")
            .env("LDAPTLS_CACERT", dir.join("tls/ca.pem"))
            .args(["-x", "-ZZ", "-LLL", "-o", "ldif-wrap=no", "-H", &url])
            .args(["-D", autoenroll::lab::SAMBA_ADMIN_DN, "-y"])
            .arg(dir.join("admin.secret"))
            .args(["-s", "base", "-b", base, "(objectClass=*)", attr])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{attr}:: ")))
            .unwrap_or_else(|| panic!("no {attr} in {text}"));
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(line)
            .unwrap()
    };
    let ca_der = read(&format!("CN=corp-CA,CN=AIA,{pks}"), "cACertificate");
    let crl = read(
        &format!("CN=corp-CA,CN=ca,CN=CDP,{pks}"),
        "certificateRevocationList",
    );
    let ca_pem = dir.join("ca-from-samba.pem");
    std::fs::write(dir.join("ca-from-samba.der"), &ca_der).unwrap();
    let out = Command::new("openssl")
        .args(["x509", "-inform", "DER", "-in"])
        .arg(dir.join("ca-from-samba.der"))
        .arg("-out")
        .arg(&ca_pem)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(dir.join("crl-from-samba.der"), &crl).unwrap();
    let out = Command::new("openssl")
        .args(["crl", "-inform", "DER", "-noout", "-text", "-in"])
        .arg(dir.join("crl-from-samba.der"))
        .arg("-CAfile")
        .arg(&ca_pem)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.contains("verify OK"), "{text}");
    assert!(
        text.contains("Issuer: DC = example, DC = corp, CN = corp-CA"),
        "{text}"
    );
    assert!(
        text.to_ascii_uppercase()
            .contains(&serial.to_ascii_uppercase()),
        "{text}"
    );

    let out = Command::new(exe())
        .args(["lab", "down", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let alive = stat
        .rsplit_once(')')
        .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'));
    assert!(!alive, "samba {pid} still runs: {stat}");
    assert!(!addresses_on_lo().contains(&format!("inet {ip}/32")));
    assert!(!dir.join("samba.pid").exists());
}
