//! No secret of the lab in any output of a full lab run.
//!
//! The lab is brought up as `autoenroll lab up` does (a private slapd with the
//! sample forest, the enterprise CA `corp-CA` serving on loopback), then a
//! machine and a user account pulse (first enrollments, then a pulse with
//! nothing to do), `status`, `plan` (now and past the renewal time),
//! `templates` and `ca requests` run with and without `--json`, and a pulse
//! whose directory bind is refused, all with trace logging on (which includes
//! debug). The CA logs at trace level too.
//!
//! Every output is then searched for every secret of the lab: stdout and
//! stderr of every command, the log files, the metrics files, the CA's
//! database and the store's files other than private keys. The secrets are
//! the account passwords of `secrets/*.secret`, the CA service account's, the
//! directory administrator's (plain and base64, as HTTP or SOAP might carry
//! them), and every private key of the lab (the store's `key.pem` files, the
//! CA key, the TLS keys): each line of their PEM bodies, and a window of the
//! DER in hex and in Rust's `{:?}` form, the shapes a debug print would take.
//! A failure names the secret and the output, never the secret itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;

const EXE: &str = env!("CARGO_BIN_EXE_autoenroll");

/// Stops the detached lab (slapd and the CA) when the test ends, however it ends.
struct LabDown(PathBuf);

impl Drop for LabDown {
    fn drop(&mut self) {
        let _ = Command::new(EXE)
            .args(["lab", "down", "--dir"])
            .arg(&self.0)
            .output();
    }
}

/// Every output of the run, by a name that says where it came from.
#[derive(Default)]
struct Outputs(BTreeMap<String, Vec<u8>>);

impl Outputs {
    /// Runs `autoenroll ARGS` at trace level and keeps its stdout and stderr.
    /// Returns the exit code and stdout.
    fn run(&mut self, name: &str, dir: &Path, args: &[&str]) -> (i32, String) {
        let out = Command::new(EXE)
            .current_dir(dir)
            .args(args)
            .env("AUTOENROLL_LOG", "trace")
            .env("RUST_LOG", "trace")
            .env_remove("JOURNAL_STREAM")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
        let code = out.status.code().unwrap_or(-1);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        self.0.insert(format!("{name}: stdout"), out.stdout);
        self.0.insert(format!("{name}: stderr"), out.stderr);
        (code, stdout)
    }

    /// Keeps the content of a file the run wrote.
    fn file(&mut self, path: &Path, root: &Path) {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let name = path.strip_prefix(root).unwrap_or(path).display();
        self.0.insert(format!("file {name}"), bytes);
    }
}

/// Every regular file under `dir`, recursively (links are not followed).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            out.extend(files_under(&path));
        } else if kind.is_file() {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn holds_private_key(bytes: &[u8]) -> bool {
    bytes.windows(11).any(|w| w == b"PRIVATE KEY")
}

/// A secret in the shapes it could leak in, under a name that can be printed.
struct Secret {
    name: String,
    needles: Vec<Vec<u8>>,
}

fn password_secret(name: String, password: &str) -> Secret {
    let password = password.trim_end_matches(['\n', '\r']);
    assert!(password.len() >= 8, "{name}: a lab password is long");
    let b64 = base64::engine::general_purpose::STANDARD.encode(password);
    Secret {
        name,
        needles: vec![password.as_bytes().to_vec(), b64.into_bytes()],
    }
}

/// The key bytes of every entry of an MIT keytab (version 0x0502; MIT's
/// "keytab file format"): the test's own reading, independent of the crate's.
fn keytab_keys(bytes: &[u8]) -> Vec<Vec<u8>> {
    let be16 = |b: &[u8], i: usize| u16::from_be_bytes([b[i], b[i + 1]]) as usize;
    assert_eq!(&bytes[..2], &[5, 2], "a version 2 keytab");
    let mut keys = Vec::new();
    let mut at = 2;
    while at + 4 <= bytes.len() {
        let size = i32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
        at += 4;
        if size <= 0 {
            at += size.unsigned_abs() as usize;
            continue;
        }
        let entry = &bytes[at..at + size as usize];
        at += size as usize;
        let components = be16(entry, 0);
        let mut i = 2 + 2 + be16(entry, 2); // the realm
        for _ in 0..components {
            i += 2 + be16(entry, i);
        }
        i += 4 + 4 + 1 + 2; // name type, timestamp, kvno, key type
        let len = be16(entry, i);
        keys.push(entry[i + 2..i + 2 + len].to_vec());
    }
    keys
}

/// The PEM body lines of every private key in `pem` and, for each key, a
/// window of 24 bytes from the middle of its DER (inside the secret material)
/// in lower and upper case hex and as `{:?}` prints a byte slice.
fn key_secrets(name: &str, pem: &[u8]) -> Vec<Secret> {
    let mut out = Vec::new();
    let text = String::from_utf8_lossy(pem);
    let mut body: Option<Vec<String>> = None;
    let mut n = 0;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("-----BEGIN") && line.contains("PRIVATE KEY") {
            body = Some(Vec::new());
        } else if line.starts_with("-----END") {
            if let Some(lines) = body.take() {
                n += 1;
                out.push(one_key(&format!("{name} (key {n})"), &lines));
            }
        } else if let Some(lines) = body.as_mut()
            && !line.is_empty()
            && !line.contains(':')
        {
            lines.push(line.to_string());
        }
    }
    assert!(n > 0, "{name}: no private key found in it");
    out
}

fn one_key(name: &str, lines: &[String]) -> Secret {
    let der = base64::engine::general_purpose::STANDARD
        .decode(lines.concat())
        .unwrap_or_else(|e| panic!("{name}: PEM body is not base64: {e}"));
    assert!(der.len() >= 64, "{name}: a private key is longer");
    let window = secret_window(&der);
    let hex: String = window.iter().map(|b| format!("{b:02x}")).collect();
    // A PEM line of 64 characters carries 48 bytes of the DER. Only the lines
    // over the secret window are needles: the others may hold the public key
    // (an RSA key's modulus), which every certificate of the key carries too,
    // base64-encoded in the same characters when its offset falls alike (as
    // in a saved directory snapshot's JSON).
    let start = der
        .windows(window.len())
        .position(|w| w == window)
        .expect("the window is inside the key");
    let end = start + window.len();
    let mut needles: Vec<Vec<u8>> = lines
        .iter()
        .enumerate()
        .filter(|(i, l)| l.len() >= 40 && i * 48 < end && (i + 1) * 48 > start)
        .map(|(_, l)| l.clone().into_bytes())
        .collect();
    needles.push(hex.clone().into_bytes());
    needles.push(hex.to_uppercase().into_bytes());
    let debug = format!("{window:?}");
    needles.push(
        debug
            .trim_start_matches('[')
            .trim_end_matches(']')
            .as_bytes()
            .to_vec(),
    );
    Secret {
        name: name.to_string(),
        needles,
    }
}

/// 24 bytes of a PKCS#8 (or SEC 1) key's secret material: for an EC key (DER
/// under 300 bytes) the start of the private scalar, the first OCTET STRING of
/// 32, 48 or 66 bytes; for RSA the middle of the DER, inside the private
/// exponent or the primes. Never public-key bytes, which certificates carry.
fn secret_window(der: &[u8]) -> &[u8] {
    if der.len() < 300 {
        for i in 8..der.len().saturating_sub(26) {
            if der[i] == 0x04 && matches!(der[i + 1], 0x20 | 0x30 | 0x42) {
                return &der[i + 2..i + 26];
            }
        }
    }
    let mid = der.len() / 2;
    &der[mid..mid + 24]
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Adds `metrics_file` to a lab policy (top-level keys come before `[directory]`).
fn with_metrics(policy: &Path, metrics: &Path) {
    let text = std::fs::read_to_string(policy).expect("lab policy");
    let text = text.replacen(
        "[directory]",
        &format!("metrics_file = \"{}\"\n\n[directory]", metrics.display()),
        1,
    );
    std::fs::write(policy, text).expect("policy written");
}

#[test]
fn no_secret_in_any_output_of_a_lab_run() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("lab");
    let dir_s = dir.to_str().expect("UTF-8 temp path").to_string();
    let mut outputs = Outputs::default();
    let _down = LabDown(dir.clone());

    let (code, _) = outputs.run("lab up", tmp.path(), &["lab", "up", "--dir", &dir_s]);
    assert_eq!(
        code,
        0,
        "lab up: {:?}",
        outputs
            .0
            .get("lab up: stderr")
            .map(|e| String::from_utf8_lossy(e))
    );
    // The password policies: the passwords cross the wire (simple bind,
    // UsernameToken); the Kerberos ones (keys in keytabs) run below too.
    let ws01 = dir.join("ws01-password.toml");
    let alice = dir.join("alice-password.toml");
    let ca = dir.join("ca.toml");
    with_metrics(&ws01, &dir.join("metrics/ws01.prom"));
    with_metrics(&alice, &dir.join("metrics/alice.prom"));
    std::fs::create_dir_all(dir.join("metrics")).expect("metrics dir");
    let (ws01, alice, ca) = (
        ws01.to_str().expect("UTF-8").to_string(),
        alice.to_str().expect("UTF-8").to_string(),
        ca.to_str().expect("UTF-8").to_string(),
    );
    let kerberos = |name: &str| {
        let path = dir.join(format!("{name}.toml"));
        with_metrics(&path, &dir.join(format!("metrics/{name}-kerberos.prom")));
        path.to_str().expect("UTF-8").to_string()
    };
    let (web01_kerberos, alice_kerberos, ws01_kerberos) =
        (kerberos("web01"), kerberos("alice"), kerberos("ws01"));
    let later = (time::OffsetDateTime::now_utc() + time::Duration::minutes(50))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("a date");

    let steps: Vec<(&str, Vec<&str>)> = vec![
        ("templates ws01", vec!["templates", "--policy", &ws01]),
        (
            "templates ws01 --json",
            vec!["templates", "--policy", &ws01, "--json"],
        ),
        (
            "templates alice --json",
            vec!["templates", "--policy", &alice, "--json"],
        ),
        ("plan ws01 (empty store)", vec!["plan", "--policy", &ws01]),
        (
            "pulse ws01 --dry-run",
            vec!["pulse", "--policy", &ws01, "--dry-run"],
        ),
        ("pulse ws01 (enrolls)", vec!["pulse", "--policy", &ws01]),
        (
            "pulse alice --user --json (enrolls)",
            vec!["pulse", "--policy", &alice, "--user", "--json"],
        ),
        (
            "pulse ws01 --json (nothing to do)",
            vec!["pulse", "--policy", &ws01, "--json"],
        ),
        (
            "pulse alice --user (nothing to do)",
            vec!["pulse", "--policy", &alice, "--user"],
        ),
        ("status ws01", vec!["status", "--policy", &ws01]),
        (
            "status ws01 --json",
            vec!["status", "--policy", &ws01, "--json"],
        ),
        (
            "status alice --json",
            vec!["status", "--policy", &alice, "--json"],
        ),
        ("plan ws01", vec!["plan", "--policy", &ws01]),
        (
            "plan ws01 --json",
            vec!["plan", "--policy", &ws01, "--json"],
        ),
        (
            "plan ws01 --json --at later",
            vec!["plan", "--policy", &ws01, "--json", "--at", &later],
        ),
        (
            "plan alice --at later",
            vec!["plan", "--policy", &alice, "--at", &later],
        ),
        (
            "pulse web01 over Kerberos (enrolls)",
            vec!["pulse", "--policy", &web01_kerberos],
        ),
        (
            "pulse alice over Kerberos --json",
            vec!["pulse", "--policy", &alice_kerberos, "--user", "--json"],
        ),
        (
            "templates ws01 over Kerberos",
            vec!["templates", "--policy", &ws01_kerberos],
        ),
        ("ca requests", vec!["ca", "requests", "--config", &ca]),
        (
            "ca requests --json",
            vec!["ca", "requests", "--config", &ca, "--json"],
        ),
    ];
    for (name, args) in &steps {
        let (code, _) = outputs.run(name, &dir, args);
        // status exits non-zero by design (the README's codes); the rest succeed.
        if !name.starts_with("status") {
            let err = outputs
                .0
                .get(&format!("{name}: stderr"))
                .cloned()
                .unwrap_or_default();
            assert_eq!(code, 0, "{name}: {}", String::from_utf8_lossy(&err));
        }
    }
    // Something was issued, so passwords and keys did cross the wire.
    let (_, requests) = outputs.run(
        "ca requests --json (check)",
        &dir,
        &["ca", "requests", "--config", &ca, "--json"],
    );
    assert!(requests.contains("WorkstationAuth"), "{requests}");

    // A bind the directory refuses: ws01's password for bob's account. Its
    // error names the account, never the password it tried.
    let wrong = dir.join("wrong.toml");
    let text = std::fs::read_to_string(&ws01)
        .expect("ws01 policy")
        .replace("CN=ws01,CN=Computers", "CN=bob,CN=Users")
        .replace("stores/ws01", "stores/wrong")
        .replace("metrics/ws01.prom", "metrics/wrong.prom");
    std::fs::write(&wrong, text).expect("policy written");
    let wrong = wrong.to_str().expect("UTF-8").to_string();
    for (name, args) in [
        (
            "pulse with a refused bind",
            vec!["pulse", "--policy", wrong.as_str()],
        ),
        (
            "pulse with a refused bind --json",
            vec!["pulse", "--policy", wrong.as_str(), "--json"],
        ),
        (
            "status with a refused bind --json",
            vec!["status", "--policy", wrong.as_str(), "--json"],
        ),
    ] {
        let (code, _) = outputs.run(name, &dir, &args);
        assert_ne!(code, 0, "{name}: a refused bind is an error");
    }

    // A password file that holds a private key (a slip of the administrator):
    // whatever is refused or sent, no message quotes the file.
    let slip = dir.join("slip.toml");
    let text = std::fs::read_to_string(&ws01)
        .expect("ws01 policy")
        .replace("secrets/ws01.secret", "ca/ca-key.pem")
        .replace("stores/ws01", "stores/slip")
        .replace("metrics/ws01.prom", "metrics/slip.prom");
    std::fs::write(&slip, text).expect("policy written");
    let slip = slip.to_str().expect("UTF-8").to_string();
    for (name, args) in [
        (
            "pulse with a key as password",
            vec!["pulse", "--policy", slip.as_str()],
        ),
        (
            "templates with a key as password --json",
            vec!["templates", "--policy", slip.as_str(), "--json"],
        ),
    ] {
        let (code, _) = outputs.run(name, &dir, &args);
        assert_ne!(code, 0, "{name}: the bind fails");
    }

    // Stop the CA so that its log is complete.
    let (code, _) = outputs.run("lab down", tmp.path(), &["lab", "down", "--dir", &dir_s]);
    assert_eq!(code, 0, "lab down");

    // The files of the run: logs, metrics, the CA's state and the stores,
    // except private keys (they are secrets, not outputs).
    let mut key_files = Vec::new();
    let logs: Vec<PathBuf> = files_under(&dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    assert!(
        logs.iter().any(|p| p.ends_with("ca.log")),
        "the CA logs: {logs:?}"
    );
    for path in logs {
        outputs.file(&path, &dir);
    }
    let mut metrics = 0;
    for path in files_under(&dir.join("metrics")) {
        outputs.file(&path, &dir);
        metrics += 1;
    }
    assert!(metrics >= 2, "metrics files written");
    let mut store_files = 0;
    for root in ["stores", "ca"] {
        for path in files_under(&dir.join(root)) {
            let bytes = std::fs::read(&path).expect("readable");
            if holds_private_key(&bytes) {
                key_files.push(path);
            } else {
                outputs.file(&path, &dir);
                store_files += 1;
            }
        }
    }
    assert!(store_files > 5, "the stores hold certificates and metadata");
    let store_keys = key_files
        .iter()
        .filter(|p| p.starts_with(dir.join("stores")))
        .count();
    assert!(store_keys >= 3, "ws01 and alice hold keys: {key_files:?}");
    assert!(
        key_files.iter().any(|p| p.ends_with("ca/ca-key.pem")),
        "the CA key: {key_files:?}"
    );
    for path in files_under(&dir.join("tls")) {
        if holds_private_key(&std::fs::read(&path).expect("readable")) {
            key_files.push(path);
        }
    }

    // The secrets.
    let mut secrets = Vec::new();
    for path in files_under(&dir.join("secrets")) {
        let password = std::fs::read_to_string(&path).expect("a password file");
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        secrets.push(password_secret(format!("password of {name}"), &password));
    }
    assert!(
        secrets.iter().any(|s| s.name.contains("ca-svc")),
        "the CA service account's password is among them"
    );
    assert!(secrets.len() >= 7, "every sample account and the CA's");
    let admin = std::fs::read_to_string(dir.join("admin.secret")).expect("admin.secret");
    secrets.push(password_secret(
        "the directory administrator's password".into(),
        &admin,
    ));
    // The keys of every keytab (the computers', the directory's, the CA's).
    let keytabs: Vec<PathBuf> = files_under(&dir.join("keytabs"))
        .into_iter()
        .chain(
            files_under(&dir.join("kdc"))
                .into_iter()
                .filter(|p| p.extension().is_some_and(|e| e == "keytab")),
        )
        .collect();
    assert!(keytabs.len() >= 5, "keytabs: {keytabs:?}");
    for path in &keytabs {
        let bytes = std::fs::read(path).expect("keytab");
        for (i, key) in keytab_keys(&bytes).into_iter().enumerate() {
            let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
            let b64 = base64::engine::general_purpose::STANDARD.encode(&key);
            secrets.push(Secret {
                name: format!(
                    "key {i} of {}",
                    path.strip_prefix(&dir).unwrap_or(path).display()
                ),
                needles: vec![key.clone(), hex.into_bytes(), b64.into_bytes()],
            });
        }
    }
    for path in &key_files {
        let name = format!(
            "private key {}",
            path.strip_prefix(&dir).unwrap_or(path).display()
        );
        let pem = std::fs::read(path).expect("readable");
        for secret in key_secrets(&name, &pem) {
            assert!(
                contains(&pem, &secret.needles[0]),
                "{name}: body line found in the key file"
            );
            secrets.push(secret);
        }
    }

    // The search. Trace logging did produce output (the search means something).
    let stderr_bytes: usize = outputs
        .0
        .iter()
        .filter(|(k, _)| k.ends_with("stderr"))
        .map(|(_, v)| v.len())
        .sum();
    assert!(
        stderr_bytes > 10_000,
        "trace logging is on ({stderr_bytes} bytes)"
    );
    if let Some(dump) = std::env::var_os("SECRETS_TEST_DUMP") {
        let dump = PathBuf::from(dump);
        std::fs::create_dir_all(&dump).expect("dump dir");
        for (i, (name, bytes)) in outputs.0.iter().enumerate() {
            std::fs::write(dump.join(format!("{i:03}")), bytes).expect("dump");
            std::fs::write(dump.join(format!("{i:03}.name")), name).expect("dump");
        }
    }
    // Controls: the needles do find each secret where it is kept, and a
    // planted leak in each of its shapes is reported.
    for secret in &secrets {
        assert!(
            !secret.needles.is_empty(),
            "{}: nothing to search for",
            secret.name
        );
    }
    let ca_svc = secrets
        .iter()
        .find(|s| s.name.contains("ca-svc"))
        .expect("listed");
    let ca_key = secrets
        .iter()
        .find(|s| s.name.contains("ca/ca-key.pem"))
        .expect("listed");
    for (secret, needle) in [(ca_svc, 0), (ca_svc, 1), (ca_key, 0)]
        .into_iter()
        .chain((1..=3).map(|back| (ca_key, ca_key.needles.len() - back)))
    {
        let mut planted = Outputs::default();
        let mut text = b"DEBUG something: ".to_vec();
        text.extend_from_slice(&secret.needles[needle]);
        planted.0.insert("planted".into(), text);
        assert_eq!(
            leaks(&planted, &secrets).len(),
            1,
            "a planted {} (form {needle}) is found",
            secret.name
        );
    }

    let leaks = leaks(&outputs, &secrets);
    assert!(
        leaks.is_empty(),
        "secrets in outputs ({} outputs, {} secrets searched):\n{}",
        outputs.0.len(),
        secrets.len(),
        leaks.join("\n")
    );
}

/// "secret (form n) in output" for every secret found in an output.
fn leaks(outputs: &Outputs, secrets: &[Secret]) -> Vec<String> {
    let mut found = Vec::new();
    for (output, bytes) in &outputs.0 {
        for secret in secrets {
            if let Some(n) = secret
                .needles
                .iter()
                .position(|needle| contains(bytes, needle))
            {
                found.push(format!("{} (form {n}) in {output}", secret.name));
            }
        }
    }
    found
}
