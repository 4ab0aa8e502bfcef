//! The scheduled worker (`autoenroll daemon`): pulses at start (boot for the
//! machine service, logon for the user service), on schedule (interval or
//! cron, with random jitter so a fleet does not pulse in step), when the
//! policy file changes, when the directory's Public Key Services change, when
//! the last plan's `next_wake` arrives (a renewal due between scheduled runs,
//! or the end of a failure backoff), and on SIGHUP. SIGTERM lets the running
//! pulse finish, then exits.
//!
//! One worker per store: it holds `worker.lock` in the store for its whole
//! life. Pulses take the store's own lock, so a manual `autoenroll pulse`
//! waits for a running one and never enrolls twice.
//!
//! A pulse runs on a thread of its own while the loop keeps sending systemd's
//! watchdog keep-alive ([sd_watchdog_enabled(3)]: every half of
//! `WATCHDOG_USEC`): a pulse may legitimately outlast `WatchdogSec` (hooks
//! may take 120 s each, CA timeouts add up), and a worker that is alive must
//! not be killed in the middle of it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::signal::unix::{SignalKind, signal};
use tokio::time::Instant;

use crate::directory::Directory;
use crate::policy::Policy;

mod memory;
mod watch;
use crate::pulse::{self, PulseError, PulseOptions, Report};

/// Why a pulse ran (logged with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Start,
    Schedule,
    PolicyChanged,
    DirectoryChanged,
    RenewalDue,
    Signal,
}

impl Trigger {
    pub fn name(self) -> &'static str {
        match self {
            Trigger::Start => "start",
            Trigger::Schedule => "schedule",
            Trigger::PolicyChanged => "policy_changed",
            Trigger::DirectoryChanged => "directory_changed",
            Trigger::RenewalDue => "renewal_due",
            Trigger::Signal => "sighup",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("{0}")]
    Setup(String),
}

/// The next scheduled pulse after `now`: the cron expression's next time, or
/// `interval` after `now`, plus `jitter` (a random part of the policy's jitter).
/// The sums saturate: the policy bounds its durations, and a date beyond
/// the calendar means "not in this worker's life", never a panic.
pub fn next_scheduled(policy: &Policy, now: OffsetDateTime, jitter: Duration) -> OffsetDateTime {
    let base = policy
        .schedule
        .cron
        .as_deref()
        .and_then(|c| cron::Schedule::from_str(c).ok())
        .and_then(|s| {
            let from = cron_time(now);
            s.after(&from).next()
        })
        .and_then(|t| OffsetDateTime::from_unix_timestamp(t.timestamp()).ok())
        .unwrap_or_else(|| add(now, policy.schedule.interval));
    add(base, jitter)
}

/// `at + d`, saturating at the last representable moment.
fn add(at: OffsetDateTime, d: Duration) -> OffsetDateTime {
    time::Duration::try_from(d)
        .ok()
        .and_then(|d| at.checked_add(d))
        .unwrap_or(time::PrimitiveDateTime::MAX.assume_utc())
}

/// What the worker waits for next: the earlier of the last report's
/// `next_wake` (a renewal, a pending poll, the end of a backoff) and the
/// scheduled run.
pub fn next_wake(
    due: Option<OffsetDateTime>,
    scheduled: OffsetDateTime,
) -> (OffsetDateTime, Trigger) {
    match due {
        Some(d) if d < scheduled => (d, Trigger::RenewalDue),
        _ => (scheduled, Trigger::Schedule),
    }
}

/// `cron` works on chrono times; convert through the Unix timestamp.
fn cron_time(now: OffsetDateTime) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(now.unix_timestamp(), 0).unwrap_or_default()
}

/// A random duration in `[0, max)`.
pub fn random_jitter(max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    let mut b = [0u8; 8];
    let _ = aws_lc_rs::rand::fill(&mut b);
    let millis = max.as_millis().max(1) as u64;
    Duration::from_millis(u64::from_le_bytes(b) % millis)
}

/// Holds `worker.lock` in the store: a second worker for the same store
/// refuses to start.
fn single_instance(store: &Path) -> Result<File, WorkerError> {
    std::fs::create_dir_all(store)
        .map_err(|e| WorkerError::Setup(format!("{}: {e}", store.display())))?;
    let path = store.join("worker.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| WorkerError::Setup(format!("{}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(WorkerError::Setup(format!(
            "another worker already runs for the store {} ({} is locked)",
            store.display(),
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(WorkerError::Setup(format!("{}: {e}", path.display())))
        }
    }
}

fn file_fingerprint(path: &Path) -> Option<Vec<u8>> {
    std::fs::read(path).ok()
}

async fn directory_marker(policy: &Policy) -> Option<String> {
    let mut dir = Directory::connect(&policy.directory).await.ok()?;
    let naming = dir.naming_contexts().await.ok()?;
    let marker = dir.change_marker(&naming.public_key_services()).await.ok();
    dir.close().await;
    marker
}

/// systemd's notification socket ([sd_notify(3)]): READY, STATUS, WATCHDOG.
/// Without `NOTIFY_SOCKET` (not under systemd) it does nothing.
pub fn sd_notify(message: &str) {
    use std::os::unix::net::UnixDatagram;
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(socket) = UnixDatagram::unbound() else {
        return;
    };
    let path = PathBuf::from(path);
    let text = path.to_string_lossy();
    if let Some(abstract_name) = text.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        if let Ok(addr) = std::os::unix::net::SocketAddr::from_abstract_name(abstract_name) {
            let _ = socket.send_to_addr(message.as_bytes(), &addr);
        }
    } else {
        let _ = socket.send_to(message.as_bytes(), &path);
    }
}

/// The watchdog period systemd asks for (half of `WATCHDOG_USEC`).
fn watchdog_period() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    Some(Duration::from_micros(usec / 2).max(Duration::from_millis(100)))
}

/// The longest the worker sleeps before it looks at the wall clock again.
/// Timers follow the monotonic clock, which stands still while the host is
/// suspended and ignores clock corrections; a wake-up due by the wall clock
/// is then late by at most this much.
const RECHECK: Duration = Duration::from_secs(60);

/// The monotonic instant to sleep until for a wall-clock `at`: no later than
/// [`RECHECK`] from now, never an overflow.
fn instant_at(now: OffsetDateTime, at: OffsetDateTime) -> Instant {
    let ahead = (at - now).max(time::Duration::ZERO);
    let ahead = Duration::try_from(ahead)
        .unwrap_or(Duration::ZERO)
        .min(RECHECK);
    let start = Instant::now();
    start.checked_add(ahead).unwrap_or(start)
}

/// Runs one pulse on a thread of its own with its own runtime, so nothing
/// the pulse does (blocking file work included) can stall the loop that
/// feeds the watchdog.
fn spawn_pulse(
    policy: &Policy,
    options: PulseOptions,
) -> tokio::sync::oneshot::Receiver<Result<Report, PulseError>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let policy = policy.clone();
    let spawned = std::thread::Builder::new()
        .name("pulse".into())
        .spawn(move || {
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| PulseError::Setup(format!("cannot start the pulse's runtime: {e}")))
                .and_then(|rt| rt.block_on(pulse::pulse(&policy, options)));
            let _ = tx.send(result);
        });
    if let Err(e) = spawned {
        // The sender went with the closure: the receiver reports the failure.
        tracing::error!("cannot start the pulse's thread: {e}");
    }
    rx
}

/// Drives `work` to its end while sending `WATCHDOG=1` every `period`.
async fn fed<T>(work: impl std::future::Future<Output = T>, period: Option<Duration>) -> T {
    let Some(period) = period else {
        return work.await;
    };
    let mut tick = tokio::time::interval_at(Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = tick.tick() => sd_notify("WATCHDOG=1"),
        }
    }
}

/// Runs a pulse, keeping the watchdog fed until it ends.
async fn run_pulse(
    policy: &Policy,
    now: OffsetDateTime,
    watchdog: Option<Duration>,
) -> Result<Report, PulseError> {
    fed(spawn_pulse(policy, PulseOptions::at(now)), watchdog)
        .await
        .unwrap_or_else(|_| Err(PulseError::Setup("the pulse ended without a result".into())))
}

/// Runs until SIGTERM or SIGINT.
pub async fn run(policy_path: &Path) -> Result<(), WorkerError> {
    memory::one_arena();
    let load = |p: &Path| Policy::load(p).map_err(|e| WorkerError::Setup(e.to_string()));
    let mut policy = load(policy_path)?;
    let _instance = single_instance(&policy.store)?;
    let mut policy_bytes = file_fingerprint(policy_path);

    let setup = |e: std::io::Error| WorkerError::Setup(format!("signals: {e}"));
    let mut hup = signal(SignalKind::hangup()).map_err(setup)?;
    let mut term = signal(SignalKind::terminate()).map_err(setup)?;
    let mut int = signal(SignalKind::interrupt()).map_err(setup)?;

    let watchdog = watchdog_period();
    let mut watchdog_tick = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
    watchdog_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The policy file's changes are notified (inotify); `policy_check` is
    // the polling period only where notification is unavailable.
    let policy_watch = watch::PolicyWatch::new(policy_path);
    if policy_watch.is_none() {
        tracing::warn!("cannot watch the policy file's folder; reading it every policy_check");
    }
    let mut policy_tick = tokio::time::interval(policy.schedule.policy_check);
    let mut directory_tick = tokio::time::interval(policy.schedule.directory_check);
    policy_tick.reset();
    directory_tick.reset();

    sd_notify("READY=1\nSTATUS=starting the first pulse");
    let mut trigger = Some(Trigger::Start);
    let mut marker: Option<String> = None;
    let mut scheduled = OffsetDateTime::now_utc();
    let mut due: Option<OffsetDateTime> = None;
    loop {
        if let Some(why) = trigger.take() {
            let now = OffsetDateTime::now_utc();
            tracing::info!(trigger = why.name(), "pulse");
            sd_notify(&format!("STATUS=pulsing ({})", why.name()));
            let result = run_pulse(&policy, now, watchdog).await;
            let status = match &result {
                Ok(report) => {
                    due = report.next_wake;
                    format!("last pulse ({}) {}", why.name(), report.summary())
                }
                Err(e) => {
                    due = None;
                    tracing::error!(trigger = why.name(), "pulse failed: {e}");
                    format!("last pulse ({}) failed: {e}", why.name())
                }
            };
            sd_notify(&format!("STATUS={status}"));
            scheduled = next_scheduled(
                &policy,
                OffsetDateTime::now_utc(),
                random_jitter(policy.schedule.jitter),
            );
            if marker.is_none() || why == Trigger::DirectoryChanged {
                marker = fed(directory_marker(&policy), watchdog).await;
            }
            // The pulse's memory is free now: back to the kernel for the
            // hours until the next one, with the program's pages it ran.
            memory::page_out_files();
            memory::release_free();
        }
        let now = OffsetDateTime::now_utc();
        let (wake, wake_trigger) = next_wake(due, scheduled);
        tokio::select! {
            _ = tokio::time::sleep_until(instant_at(now, wake)) => {
                // A capped sleep ends early: pulse only once the wall clock is there.
                if OffsetDateTime::now_utc() >= wake {
                    trigger = Some(wake_trigger);
                }
            }
            _ = hup.recv() => {
                if let Ok(p) = load(policy_path) {
                    policy = p;
                }
                trigger = Some(Trigger::Signal);
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = watchdog_tick.tick(), if watchdog.is_some() => sd_notify("WATCHDOG=1"),
            _ = async {
                match &policy_watch {
                    Some(w) => w.changed().await,
                    None => {
                        policy_tick.tick().await;
                    }
                }
            } => {
                let bytes = file_fingerprint(policy_path);
                if bytes != policy_bytes {
                    policy_bytes = bytes;
                    match load(policy_path) {
                        Ok(p) => {
                            policy = p;
                            policy_tick = tokio::time::interval(policy.schedule.policy_check);
                            policy_tick.reset();
                            directory_tick = tokio::time::interval(policy.schedule.directory_check);
                            directory_tick.reset();
                            trigger = Some(Trigger::PolicyChanged);
                        }
                        Err(e) => tracing::error!("the policy file changed but is not valid; keeping the old one: {e}"),
                    }
                }
            }
            _ = directory_tick.tick() => {
                let now_marker = fed(directory_marker(&policy), watchdog).await;
                if now_marker.is_some() && marker.is_some() && now_marker != marker {
                    marker = now_marker;
                    trigger = Some(Trigger::DirectoryChanged);
                } else if marker.is_none() {
                    marker = now_marker;
                }
                memory::page_out_files();
                memory::release_free();
            }
        }
    }
    sd_notify("STOPPING=1");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn policy(schedule: &str) -> Policy {
        Policy::parse(
            &format!(
                "context = \"machine\"\n[directory]\nurl = \"ldap://x\"\nbind = \"simple\"\nuser = \"u\"\npassword_file = \"p\"\n[schedule]\n{schedule}\n"
            ),
            Path::new("/etc/autoenroll/machine.toml"),
        )
        .unwrap()
    }

    #[test]
    fn schedule_by_interval_and_cron() {
        let now = datetime!(2026-11-22 10:15:00 UTC);
        let p = policy("interval = \"8h\"");
        assert_eq!(
            next_scheduled(&p, now, Duration::ZERO),
            datetime!(2026-11-22 18:15:00 UTC)
        );
        let p = policy("cron = \"0 0 */6 * * *\"");
        assert_eq!(
            next_scheduled(&p, now, Duration::ZERO),
            datetime!(2026-11-22 12:00:00 UTC)
        );
        assert_eq!(
            next_scheduled(&p, now, Duration::from_secs(90)),
            datetime!(2026-11-22 12:01:30 UTC)
        );
    }

    #[test]
    fn a_schedule_beyond_the_calendar_saturates_instead_of_panicking() {
        // The policy refuses such values at load; the worker must not panic
        // on one anyway (a policy built in code, a future bound that is wrong).
        let now = datetime!(2026-11-22 10:15:00 UTC);
        let mut p = policy("interval = \"8h\"");
        p.schedule.interval = Duration::from_secs(u64::MAX);
        let max = time::PrimitiveDateTime::MAX.assume_utc();
        assert_eq!(next_scheduled(&p, now, Duration::ZERO), max);
        assert_eq!(next_scheduled(&p, now, Duration::from_secs(u64::MAX)), max);
        p.schedule.interval = Duration::from_secs(3600);
        assert_eq!(
            next_scheduled(&p, max, Duration::from_secs(1)),
            max,
            "the last moment plus anything stays the last moment"
        );
        // Sleeping until then is capped, not an overflow of the monotonic clock.
        let until = instant_at(now, max);
        assert!(until <= Instant::now() + RECHECK);
    }

    #[test]
    fn the_worker_wakes_for_the_earlier_of_due_and_scheduled() {
        let scheduled = datetime!(2026-11-22 18:00:00 UTC);
        let renewal = datetime!(2026-11-22 12:00:00 UTC);
        assert_eq!(
            next_wake(Some(renewal), scheduled),
            (renewal, Trigger::RenewalDue)
        );
        assert_eq!(next_wake(None, scheduled), (scheduled, Trigger::Schedule));
        let later = datetime!(2026-11-23 00:00:00 UTC);
        assert_eq!(
            next_wake(Some(later), scheduled),
            (scheduled, Trigger::Schedule)
        );
    }

    #[test]
    fn a_wake_in_the_past_is_now_and_a_far_one_is_rechecked() {
        let now = datetime!(2026-11-22 10:15:00 UTC);
        let before = Instant::now();
        assert!(instant_at(now, now - time::Duration::hours(1)) <= Instant::now());
        let far = instant_at(now, now + time::Duration::days(20));
        assert!(far >= before + RECHECK && far <= Instant::now() + RECHECK);
    }

    #[test]
    fn jitter_stays_below_its_bound() {
        for _ in 0..200 {
            assert!(random_jitter(Duration::from_secs(30)) < Duration::from_secs(30));
        }
        assert_eq!(random_jitter(Duration::ZERO), Duration::ZERO);
    }
}
