//! The worker (`autoenroll daemon`) as a real process against the lab: it
//! pulses on start, on a policy file change, on a template change in the
//! directory, when a renewal falls due, and on SIGHUP; SIGTERM stops it. The
//! intervals are shortened through the policy file.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use autoenroll::clock::Clock;

/// The daemon's stderr lines, collected by a thread.
struct Daemon {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    fn start(policy: &std::path::Path) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_autoenroll"))
            .args(["daemon", "--policy"])
            .arg(policy)
            .env("AUTOENROLL_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the daemon starts");
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Daemon { child, lines }
    }

    /// Waits until `count` pulses with this trigger were logged.
    fn wait_for(&self, trigger: &str, count: usize, within: Duration) {
        let needle = format!("trigger=\"{trigger}\"");
        let deadline = Instant::now() + within;
        loop {
            let seen = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.contains(" pulse") && l.contains(&needle))
                .count();
            if seen >= count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no pulse triggered by {trigger} within {within:?}; the daemon said:\n{}",
                self.lines.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_pulses_at_the_right_moments() {
    let lab = common::start(None);
    let ca = lab.start_ca(time::OffsetDateTime::now_utc()).await;
    // The CA follows the real clock here: the worker runs in real time.
    let clock = ca.clock.clone();
    let ticker = tokio::spawn(async move {
        loop {
            clock.set(time::OffsetDateTime::now_utc());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });

    // A template that lives 30 seconds and renews 10 seconds before its end
    // (at its 80% point, 24 seconds), published by corp-CA.
    let ldif = autoenroll::lab::template_variant_ldif(
        "ShortLived",
        "Blink",
        &[
            (
                "msPKI-Cert-Template-OID",
                Some(": 1.3.6.1.4.1.311.21.8.1000.2000.3000.4000.5000.6000.8782410.424242".into()),
            ),
            // -30 s and -10 s in 100 ns units, little-endian.
            ("pKIExpirationPeriod", Some(format!(":: {}", period(30)))),
            ("pKIOverlapPeriod", Some(format!(":: {}", period(10)))),
        ],
    )
    .unwrap();
    lab.admin("ldapadd", &ldif);
    lab.admin(
        "ldapmodify",
        "dn: CN=corp-CA,CN=Enrollment Services,CN=Public Key Services,CN=Services,CN=Configuration,DC=corp,DC=example\nchangetype: modify\nadd: certificateTemplates\ncertificateTemplates: Blink\n",
    );

    let policy = lab.lab.policy_path("ws01");
    let schedule = "\n[schedule]\ninterval = \"1h\"\njitter = \"0s\"\ndirectory_check = \"1s\"\npolicy_check = \"1s\"\n";
    let text = std::fs::read_to_string(&policy).unwrap() + schedule;
    std::fs::write(&policy, &text).unwrap();

    let daemon = Daemon::start(&policy);
    daemon.wait_for("start", 1, Duration::from_secs(30));

    // A second worker for the same store refuses to start.
    let second = Command::new(env!("CARGO_BIN_EXE_autoenroll"))
        .args(["daemon", "--policy"])
        .arg(&policy)
        .output()
        .unwrap();
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("another worker"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );

    // The policy file changes.
    std::fs::write(&policy, text.clone() + "# changed\n").unwrap();
    daemon.wait_for("policy_changed", 1, Duration::from_secs(20));

    // An administrator changes a template.
    lab.admin(
        "ldapmodify",
        "dn: CN=WorkstationAuth,CN=Certificate Templates,CN=Public Key Services,CN=Services,CN=Configuration,DC=corp,DC=example\nchangetype: modify\nreplace: msPKI-Template-Minor-Revision\nmsPKI-Template-Minor-Revision: 9\n",
    );
    daemon.wait_for("directory_changed", 1, Duration::from_secs(20));

    // Blink falls due between scheduled runs.
    daemon.wait_for("renewal_due", 1, Duration::from_secs(60));

    // SIGHUP.
    daemon.signal(nix::sys::signal::Signal::SIGHUP);
    daemon.wait_for("sighup", 1, Duration::from_secs(20));

    // A manual pulse meanwhile waits for the store and enrolls nothing twice.
    let manual = Command::new(env!("CARGO_BIN_EXE_autoenroll"))
        .args(["pulse", "--json", "--policy"])
        .arg(&policy)
        .output()
        .unwrap();
    assert!(
        manual.status.success(),
        "{}",
        String::from_utf8_lossy(&manual.stderr)
    );
    let store = autoenroll::store::Store::open(&lab.policy("ws01").store).unwrap();
    let held = store.snapshot().unwrap().certificates;
    for template in ["WorkstationAuth", "Blink"] {
        let n = held
            .iter()
            .filter(|c| c.meta.template.as_deref() == Some(template))
            .count();
        assert_eq!(n, 1, "{template}: {n} current certificates");
    }

    // SIGTERM: the worker exits cleanly.
    let mut daemon = daemon;
    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = daemon.child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(Instant::now() < deadline, "the worker ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    ticker.abort();
    let _ = ca.clock.now();
}

/// A period of `seconds` as `pKIExpirationPeriod` holds it, base64.
fn period(seconds: i64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode((-seconds * 10_000_000).to_le_bytes())
}
