//! The worker (`autoenroll daemon`) as a real process against the lab: it
//! pulses on start, on a policy file change, on a template change in the
//! directory, when a renewal falls due, and on SIGHUP; SIGTERM stops it; the
//! systemd watchdog is fed while a long pulse runs. The intervals are
//! shortened through the policy file.
//!
//! Nothing here assumes how fast the machine is: waits end as soon as the
//! awaited line arrives (no polling), and their bounds are minutes, far above
//! what any step takes, only there so that a broken worker fails the test
//! instead of hanging it.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use autoenroll::clock::Clock;

/// How long any single step may take before the test gives up.
const STEP: Duration = Duration::from_secs(180);

/// Lines collected by a thread (the daemon's stderr, its sd_notify
/// datagrams), with a wait that wakes on each new line.
#[derive(Default)]
struct Lines {
    lines: Mutex<Vec<String>>,
    added: Condvar,
}

impl Lines {
    fn push(&self, line: String) {
        self.lines.lock().unwrap().push(line);
        self.added.notify_all();
    }

    fn snapshot(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits until `done` holds for the lines so far; panics with `what` and
    /// everything seen after `within`.
    fn wait_until(&self, what: &str, within: Duration, done: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + within;
        let mut lines = self.lines.lock().unwrap();
        while !done(&lines) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{what}: not within {within:?}; seen:\n{}",
                lines.join("\n")
            );
            lines = self.added.wait_timeout(lines, left).unwrap().0;
        }
    }
}

/// The daemon, its stderr lines collected by a thread.
struct Daemon {
    child: Child,
    lines: Arc<Lines>,
}

impl Daemon {
    fn start(policy: &Path) -> Daemon {
        Daemon::start_with(policy, &[])
    }

    fn start_with(policy: &Path, env: &[(&str, &std::ffi::OsStr)]) -> Daemon {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_autoenroll"));
        cmd.args(["daemon", "--policy"])
            .arg(policy)
            .env("AUTOENROLL_LOG", "info")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("the daemon starts");
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Lines::default());
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.push(line);
            }
        });
        Daemon { child, lines }
    }

    /// Waits until `count` pulses with this trigger were logged.
    fn wait_for(&self, trigger: &str, count: usize) {
        let needle = format!("trigger=\"{trigger}\"");
        self.lines.wait_until(
            &format!("{count} pulse(s) triggered by {trigger}"),
            STEP,
            |lines| {
                lines
                    .iter()
                    .filter(|l| l.contains(" pulse") && l.contains(&needle))
                    .count()
                    >= count
            },
        );
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }

    /// SIGTERM, then the exit status (within [`STEP`]).
    fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + STEP;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the worker ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Keeps the test CA's clock on the real one (the worker runs in real time).
fn follow_real_time(clock: Arc<autoenroll::clock::ManualClock>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            clock.set(time::OffsetDateTime::now_utc());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// The lab policy of ws01 with a short schedule and `extra` appended.
fn policy_with(lab: &common::TestLab, extra: &str) -> (PathBuf, String) {
    let policy = lab.lab.policy_path("ws01");
    let schedule = "\n[schedule]\ninterval = \"1h\"\njitter = \"0s\"\ndirectory_check = \"1s\"\npolicy_check = \"1s\"\n";
    let text = std::fs::read_to_string(&policy).unwrap() + schedule + extra;
    std::fs::write(&policy, &text).unwrap();
    (policy, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_pulses_at_the_right_moments() {
    let lab = common::start(None);
    let ca = lab.start_ca(time::OffsetDateTime::now_utc()).await;
    // The CA follows the real clock here: the worker runs in real time.
    let ticker = follow_real_time(ca.clock.clone());

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

    let (policy, text) = policy_with(&lab, "");

    let daemon = Daemon::start(&policy);
    daemon.wait_for("start", 1);

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
    daemon.wait_for("policy_changed", 1);

    // An administrator changes a template.
    lab.admin(
        "ldapmodify",
        "dn: CN=WorkstationAuth,CN=Certificate Templates,CN=Public Key Services,CN=Services,CN=Configuration,DC=corp,DC=example\nchangetype: modify\nreplace: msPKI-Template-Minor-Revision\nmsPKI-Template-Minor-Revision: 9\n",
    );
    daemon.wait_for("directory_changed", 1);

    // Blink falls due between scheduled runs.
    daemon.wait_for("renewal_due", 1);

    // SIGHUP.
    daemon.signal(nix::sys::signal::Signal::SIGHUP);
    daemon.wait_for("sighup", 1);

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
    let status = daemon.terminate();
    assert!(status.success(), "{status}");
    ticker.abort();
    let _ = ca.clock.now();
}

/// systemd's side of sd_notify: a datagram socket the daemon is pointed at.
fn notify_socket(dir: &Path) -> (PathBuf, Arc<Lines>) {
    let path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("notify socket");
    let lines = Arc::new(Lines::default());
    let sink = lines.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 4096];
        while let Ok(n) = socket.recv(&mut buf) {
            for message in String::from_utf8_lossy(&buf[..n]).lines() {
                sink.push(message.to_string());
            }
        }
    });
    (path, lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_is_fed_while_a_long_pulse_runs() {
    let lab = common::start(None);
    let ca = lab.start_ca(time::OffsetDateTime::now_utc()).await;
    let ticker = follow_real_time(ca.clock.clone());

    // The first pulse installs WorkstationAuth and runs its hook, which holds
    // the pulse until the test has seen keep-alives arrive meanwhile (or 90 s
    // pass, within the hooks' 120 s limit).
    let started = lab.tmp.path().join("hook-started");
    let release = lab.tmp.path().join("release");
    let hook = format!(
        "touch '{}'; i=0; while [ ! -e '{}' ] && [ $i -lt 900 ]; do sleep 0.1; i=$((i+1)); done",
        started.display(),
        release.display()
    );
    let (policy, _) = policy_with(
        &lab,
        &format!("\n[templates.WorkstationAuth]\npost_install = {hook:?}\n"),
    );
    let (socket, notified) = notify_socket(lab.tmp.path());
    // WatchdogSec=1s: a keep-alive every half second.
    let daemon = Daemon::start_with(
        &policy,
        &[
            ("NOTIFY_SOCKET", socket.as_os_str()),
            ("WATCHDOG_USEC", std::ffi::OsStr::new("1000000")),
        ],
    );
    notified.wait_until("READY=1", STEP, |l| l.iter().any(|m| m == "READY=1"));

    // The hook is running, so the pulse is.
    let deadline = Instant::now() + STEP;
    while !started.exists() {
        assert!(
            Instant::now() < deadline,
            "the hook never ran; the daemon said:\n{}",
            daemon.lines.snapshot().join("\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let before = notified.snapshot().len();
    let finished = |l: &[String]| l.iter().any(|m| m.starts_with("STATUS=last pulse"));
    assert!(!finished(&notified.snapshot()), "the pulse ended early");
    notified.wait_until("two keep-alives during the pulse", STEP, |l| {
        l[before..].iter().filter(|m| *m == "WATCHDOG=1").count() >= 2
    });
    assert!(
        !finished(&notified.snapshot()),
        "the keep-alives came after the pulse"
    );
    std::fs::write(&release, "").unwrap();

    // The pulse ends and the hook's certificate is there.
    notified.wait_until("the pulse's end", STEP, finished);
    let messages = notified.snapshot();
    let end = messages
        .iter()
        .position(|m| m.starts_with("STATUS=last pulse"));
    let pulsing = messages
        .iter()
        .position(|m| m == "STATUS=pulsing (start)")
        .expect("the pulse's start is announced");
    let during = messages[pulsing..end.unwrap()]
        .iter()
        .filter(|m| *m == "WATCHDOG=1")
        .count();
    assert!(during >= 2, "{messages:?}");
    let store = autoenroll::store::Store::open(&lab.policy("ws01").store).unwrap();
    assert!(
        store
            .snapshot()
            .unwrap()
            .certificates
            .iter()
            .any(|c| c.meta.template.as_deref() == Some("WorkstationAuth"))
    );

    let mut daemon = daemon;
    let status = daemon.terminate();
    assert!(status.success(), "{status}");
    ticker.abort();
}

/// A period of `seconds` as `pKIExpirationPeriod` holds it, base64.
fn period(seconds: i64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode((-seconds * 10_000_000).to_le_bytes())
}
