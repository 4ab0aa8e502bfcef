//! The worker (`autoenroll daemon`) sleeps until the next wake of the state
//! its last pulse left: a certificate installed by the start pulse is renewed
//! at its renewal time, long before the next scheduled run, with no other
//! trigger in between (policy and directory checks are an hour apart).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The daemon with its stderr lines collected by a thread.
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
        let stderr = child.stderr.take().expect("stderr is piped");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Daemon { child, lines }
    }

    fn pulses(&self, trigger: &str) -> usize {
        let needle = format!("trigger=\"{trigger}\"");
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(" pulse") && l.contains(&needle))
            .count()
    }

    /// Waits (generously: the machine may be slow) until a pulse with this
    /// trigger was logged.
    fn wait_for(&self, trigger: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while self.pulses(trigger) == 0 {
            assert!(
                Instant::now() < deadline,
                "no pulse triggered by {trigger} within {within:?}; the daemon said:\n{}",
                self.lines.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it gives a value; fails with the daemon's log.
fn wait_until<T>(
    daemon: &Daemon,
    within: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {within:?}; the daemon said:\n{}",
            daemon.lines.lock().unwrap().join("\n")
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A period of `seconds` as `pKIExpirationPeriod` holds it, base64.
fn period(seconds: i64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode((-seconds * 10_000_000).to_le_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_wakes_at_the_renewal_of_what_its_last_pulse_installed() {
    let lab = common::start(None);
    let ca = lab.start_ca(time::OffsetDateTime::now_utc()).await;
    // The CA follows the real clock: the worker runs in real time.
    let clock = ca.clock.clone();
    let ticker = tokio::spawn(async move {
        loop {
            clock.set(time::OffsetDateTime::now_utc());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });

    // Blink lives 40 seconds and renews at its 80% point (32 s).
    let ldif = autoenroll::lab::template_variant_ldif(
        "ShortLived",
        "Blink",
        &[
            (
                "msPKI-Cert-Template-OID",
                Some(": 1.3.6.1.4.1.311.21.8.1000.2000.3000.4000.5000.6000.8782410.434343".into()),
            ),
            ("pKIExpirationPeriod", Some(format!(":: {}", period(40)))),
            ("pKIOverlapPeriod", Some(format!(":: {}", period(5)))),
        ],
    )
    .expect("ShortLived is in the forest");
    lab.admin("ldapadd", &ldif);
    lab.admin(
        "ldapmodify",
        "dn: CN=corp-CA,CN=Enrollment Services,CN=Public Key Services,CN=Services,CN=Configuration,DC=corp,DC=example\nchangetype: modify\nadd: certificateTemplates\ncertificateTemplates: Blink\n",
    );

    // Nothing but the start pulse and the last pulse's next wake can trigger
    // a pulse within the test: the schedule and the checks are an hour away.
    let policy = lab.lab.policy_path("ws01");
    let schedule = "\n[schedule]\ninterval = \"1h\"\njitter = \"0s\"\ndirectory_check = \"1h\"\npolicy_check = \"1h\"\n";
    let text = std::fs::read_to_string(&policy).unwrap() + schedule;
    std::fs::write(&policy, &text).unwrap();

    let daemon = Daemon::start(&policy);
    daemon.wait_for("start", Duration::from_secs(60));
    let store = autoenroll::store::Store::open(&lab.policy("ws01").store).unwrap();
    let blink = || -> Vec<String> {
        store
            .snapshot()
            .map(|s| s.certificates)
            .unwrap_or_default()
            .iter()
            .filter(|c| c.meta.template.as_deref() == Some("Blink"))
            .map(|c| c.info.thumbprint.clone())
            .collect()
    };
    // The start pulse installs Blink.
    let first = wait_until(&daemon, Duration::from_secs(120), "Blink installed", || {
        let b = blink();
        (b.len() == 1).then_some(b)
    });

    // The wake the start pulse left is Blink's renewal, 32 s after issuance,
    // and that pulse replaces it.
    daemon.wait_for("renewal_due", Duration::from_secs(180));
    wait_until(&daemon, Duration::from_secs(120), "Blink renewed", || {
        let b = blink();
        (b.len() == 1 && b != first).then_some(())
    });
    assert_eq!(daemon.pulses("schedule"), 0);
    ticker.abort();
}
