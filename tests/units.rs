//! The systemd units in `systemd/`: they parse (`systemd-analyze verify`,
//! when the host has it), the machine unit's sandbox lets the worker write
//! every path the README's policy example writes (and what the trust-store
//! tools that hooks run rebuild), and the hardening stays in place.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo().join(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// A unit file's `[Service]` (or other) section: every value of every key,
/// in order (keys such as `ReadWritePaths=` may repeat).
fn section(text: &str, name: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = s.to_string();
            continue;
        }
        if current == name
            && let Some((k, v)) = line.split_once('=')
        {
            out.entry(k.trim().to_string())
                .or_default()
                .push(v.trim().to_string());
        }
    }
    out
}

fn one<'a>(s: &'a BTreeMap<String, Vec<String>>, key: &str) -> Option<&'a str> {
    s.get(key).and_then(|v| v.last()).map(String::as_str)
}

/// What a service may write, from the settings that decide it
/// (systemd.exec(5): ProtectSystem=, ProtectHome=, ReadWritePaths=,
/// StateDirectory=).
struct Sandbox {
    read_only: Vec<PathBuf>,
    inaccessible: Vec<PathBuf>,
    writable: Vec<PathBuf>,
}

impl Sandbox {
    fn of(service: &BTreeMap<String, Vec<String>>) -> Sandbox {
        let read_only = match one(service, "ProtectSystem") {
            Some("yes" | "true") => vec!["/usr", "/boot", "/efi"],
            Some("full") => vec!["/usr", "/boot", "/efi", "/etc"],
            Some("strict") => vec!["/"],
            _ => vec![],
        };
        let inaccessible = match one(service, "ProtectHome") {
            Some("yes" | "true") => vec!["/home", "/root", "/run/user"],
            _ => vec![],
        };
        let mut writable: Vec<PathBuf> = service
            .get("ReadWritePaths")
            .into_iter()
            .flatten()
            .flat_map(|v| v.split_whitespace())
            .map(|p| PathBuf::from(p.trim_start_matches(['-', '+'])))
            .collect();
        for dir in service
            .get("StateDirectory")
            .into_iter()
            .flatten()
            .flat_map(|v| v.split_whitespace())
        {
            writable.push(Path::new("/var/lib").join(dir));
        }
        Sandbox {
            read_only: read_only.into_iter().map(PathBuf::from).collect(),
            inaccessible: inaccessible.into_iter().map(PathBuf::from).collect(),
            writable,
        }
    }

    fn can_write(&self, path: &Path) -> bool {
        if self.inaccessible.iter().any(|p| path.starts_with(p)) {
            return false;
        }
        self.writable.iter().any(|p| path.starts_with(p))
            || !self.read_only.iter().any(|p| path.starts_with(p))
    }
}

/// The folders the README's policy example makes the worker write: the
/// store, the trust anchors folder, and the folders of the metrics file and
/// of each export (files there are written beside and renamed into place).
fn documented_write_folders() -> Vec<PathBuf> {
    let readme = read("README.md");
    let start = readme
        .find("## The policy file")
        .expect("the README has its policy file section");
    let block = &readme[start..];
    let block = &block[block.find("```toml").expect("a toml example")..];
    let block = &block[..block[7..].find("```").expect("the example ends") + 7];
    let mut folders = Vec::new();
    for line in block.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        let quoted = value
            .split('"')
            .skip(1)
            .step_by(2)
            .filter(|p| p.starts_with('/'))
            .map(PathBuf::from);
        match key {
            "store" | "trust_anchors_dir" => folders.extend(quoted),
            // `export = {...}` inline, or the files of an `[...export]` table.
            "metrics_file" | "export" | "certificate" | "chain" | "key" | "pkcs12" => {
                folders.extend(quoted.filter_map(|p| p.parent().map(Path::to_path_buf)))
            }
            _ => {}
        }
    }
    folders
}

/// What the trust-store tools a post-install hook runs rebuild: Debian's
/// update-ca-certificates (`/etc/ssl/certs`, and the hooks it runs from
/// `/etc/ca-certificates/update.d`), Fedora's update-ca-trust (anchors under
/// `/etc/pki/ca-trust/source/anchors`, output in `/etc/pki/ca-trust/extracted`).
const TRUST_TOOL_PATHS: &[&str] = &[
    "/usr/local/share/ca-certificates",
    "/etc/ssl/certs",
    "/etc/ca-certificates/update.d",
    "/etc/pki/ca-trust/source/anchors",
    "/etc/pki/ca-trust/extracted",
];

#[test]
fn the_machine_unit_lets_the_worker_write_the_documented_paths() {
    let service = section(&read("systemd/autoenroll.service"), "Service");
    let sandbox = Sandbox::of(&service);
    let documented = documented_write_folders();
    // The store, the anchors folder, the metrics folder, four exports.
    assert!(
        documented.len() >= 6,
        "the README's example changed shape: {documented:?}"
    );
    let blocked: Vec<PathBuf> = documented
        .into_iter()
        .chain(TRUST_TOOL_PATHS.iter().map(PathBuf::from))
        .filter(|p| !sandbox.can_write(p))
        .collect();
    assert!(
        blocked.is_empty(),
        "the unit's sandbox blocks {blocked:?}; add them to ReadWritePaths="
    );
    // And it is a sandbox: the rest of /etc and /usr stays read-only.
    for p in ["/etc/autoenroll", "/usr/bin", "/etc/shadow"] {
        assert!(!sandbox.can_write(Path::new(p)), "{p} is writable");
    }
    assert!(!sandbox.can_write(Path::new("/home/alice")));
}

#[test]
fn the_units_are_hardened() {
    let system = section(&read("systemd/autoenroll.service"), "Service");
    let user = section(&read("systemd/autoenroll-user.service"), "Service");
    // Both: nothing here needs privileges the worker lacks or namespaces.
    let common = [
        ("NoNewPrivileges", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("LockPersonality", "yes"),
        ("RestrictRealtime", "yes"),
        ("RestrictNamespaces", "yes"),
        ("SystemCallArchitectures", "native"),
        ("SystemCallFilter", "@system-service"),
        (
            "RestrictAddressFamilies",
            "AF_UNIX AF_INET AF_INET6 AF_NETLINK",
        ),
        ("UMask", "0077"),
        ("Type", "notify"),
        ("WatchdogSec", "10min"),
    ];
    for (unit, s) in [("system", &system), ("user", &user)] {
        for (key, want) in common {
            assert_eq!(one(s, key), Some(want), "{unit} unit: {key}=");
        }
    }
    for (key, want) in [
        (
            "CapabilityBoundingSet",
            "CAP_CHOWN CAP_DAC_OVERRIDE CAP_FOWNER",
        ),
        ("ProtectSystem", "full"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("ProtectClock", "yes"),
        ("ProtectHostname", "yes"),
        ("StateDirectory", "autoenroll"),
    ] {
        assert_eq!(one(&system, key), Some(want), "system unit: {key}=");
    }
}

/// Every `man:` page a unit names is one the package ships: those
/// `autoenroll generate-assets` writes from the command line's definition.
#[test]
fn the_units_name_no_missing_documentation() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_autoenroll"))
        .args(["generate-assets", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut named = 0;
    for unit in [
        "autoenroll.service",
        "autoenroll-user.service",
        "autoenroll.path",
    ] {
        let text = read(&format!("systemd/{unit}"));
        let docs = section(&text, "Unit");
        for d in docs
            .get("Documentation")
            .into_iter()
            .flatten()
            .flat_map(|v| v.split_whitespace())
        {
            let Some(page) = d.strip_prefix("man:") else {
                continue;
            };
            let (name, number) = page
                .strip_suffix(')')
                .and_then(|p| p.split_once('('))
                .unwrap_or_else(|| panic!("{unit}: Documentation={d}: not man:NAME(N)"));
            let file = dir.path().join(format!("man{number}/{name}.{number}"));
            assert!(file.is_file(), "{unit}: {d}: no {}", file.display());
            named += 1;
        }
    }
    assert!(named >= 3, "the units name their manual pages");
}

/// The package's units do nothing without a policy: the machine unit is
/// skipped while its policy is missing or every line of it is a comment
/// (the packaged example), and runs once a setting is there; the path unit
/// starts it when the file is saved; the user unit needs the user's policy.
#[test]
fn no_worker_starts_without_a_policy() {
    let system = read("systemd/autoenroll.service");
    let unit = section(&system, "Unit");
    assert_eq!(
        one(&unit, "ConditionPathExists"),
        Some("/etc/autoenroll/machine.toml")
    );
    let service = section(&system, "Service");
    let condition = one(&service, "ExecCondition").expect("an ExecCondition=");
    // Run the condition's shell command against the packaged example and
    // against edited copies (systemd: exit 0 runs the unit, 1 to 254 skip it).
    let command = condition
        .strip_prefix("/bin/sh -c '")
        .and_then(|c| c.strip_suffix('\''))
        .expect("/bin/sh -c '...'");
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("machine.toml");
    let example = read("packaging/machine.toml");
    let runs = |text: Option<&str>| {
        let _ = std::fs::remove_file(&policy);
        if let Some(t) = text {
            std::fs::write(&policy, t).unwrap();
        }
        let cmd = command.replace("/etc/autoenroll/machine.toml", policy.to_str().unwrap());
        let status = Command::new("/bin/sh").arg("-c").arg(cmd).status().unwrap();
        let code = status.code().expect("not killed");
        assert!(code <= 254, "exit {code} would be a failure, not a skip");
        code == 0
    };
    assert!(!runs(None), "runs without a policy");
    assert!(!runs(Some(&example)), "runs on the packaged example");
    assert!(!runs(Some("\n   \n\t# only = \"comments\"\n")));
    assert!(runs(Some(&format!("{example}\ncontext = \"machine\"\n"))));
    assert!(runs(Some("  context = \"machine\"\n")));
    // The example is comments and blank lines through and through.
    assert!(
        example
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    );

    let path = read("systemd/autoenroll.path");
    let watch = section(&path, "Path");
    assert_eq!(
        one(&watch, "PathChanged"),
        Some("/etc/autoenroll/machine.toml")
    );
    assert_eq!(one(&watch, "Unit"), Some("autoenroll.service"));
    let user = section(&read("systemd/autoenroll-user.service"), "Unit");
    assert_eq!(
        one(&user, "ConditionPathExists"),
        Some("%E/autoenroll/user.toml")
    );
}

/// `systemd-analyze verify` on each unit, with `ExecStart=` pointed at the
/// built program (verify checks that it exists). Skipped, saying so, on a
/// host without systemd-analyze; the tests above still hold.
#[test]
fn systemd_analyze_verify_finds_nothing() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("systemd-analyze is not installed; skipping the verify check");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let runtime = dir.path().join("runtime");
    std::fs::create_dir(&runtime).unwrap();
    for (unit, user) in [
        ("autoenroll.service", false),
        ("autoenroll-user.service", true),
        ("autoenroll.path", false),
    ] {
        let text = read(&format!("systemd/{unit}")).replace(
            "/usr/local/bin/autoenroll",
            env!("CARGO_BIN_EXE_autoenroll"),
        );
        let path = dir.path().join(unit);
        std::fs::write(&path, text).unwrap();
        let mut cmd = Command::new("systemd-analyze");
        if user {
            cmd.arg("--user").env("XDG_RUNTIME_DIR", &runtime);
        }
        // --man=no: the pages the units name are the package's (checked by
        // the_units_name_no_missing_documentation; scripts/test-package.sh
        // verifies the installed units with them installed).
        let out = cmd
            .arg("verify")
            .arg("--man=no")
            .arg(&path)
            .output()
            .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let about_unit: Vec<&str> = said.lines().filter(|l| l.contains(unit)).collect();
        assert!(
            out.status.success() && about_unit.is_empty(),
            "systemd-analyze verify {unit}: {said}"
        );
    }
}
