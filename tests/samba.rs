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
