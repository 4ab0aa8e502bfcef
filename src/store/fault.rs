//! Fault injection for crash tests.
//!
//! Every change the store makes to the filesystem (create a folder, write a
//! file, sync a file or folder, rename, remove) is one *step* and passes
//! through [`Faults::step`]. A store built with `Store::with_fault_at` fails
//! its n-th step as if the process had died there: the step does not happen
//! (a write leaves half its bytes, as a crash in the middle of `write` would),
//! and every later step fails too, so nothing can run "after the crash". The
//! crash tests run each operation once to count its steps, then once per step
//! with the fault there, reopen the store, recover and check that nothing was
//! lost.
//!
//! **Only in test builds.** All of this, and the `AUTOENROLL_TEST_KILL_AT_STEP`
//! kill switch the crash test of the pulse uses, exists only when the crate is
//! built with the `fault-injection` feature. The package enables that feature
//! through a dev-dependency on itself, so `cargo test` (the library, the
//! integration tests and the binary they run) has it, while `cargo build` and
//! `cargo install` never do: there, [`Faults`] is an empty type whose `step`
//! always says go, and the environment is never read. A service whose
//! environment happens to hold the variable is not affected.

#[cfg(feature = "fault-injection")]
pub use enabled::{Faults, KILL_AT_STEP};

#[cfg(not(feature = "fault-injection"))]
pub use disabled::Faults;

use super::error::StoreError;

/// What a step may do.
#[derive(Debug)]
#[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
pub(crate) enum Step {
    /// Go ahead.
    Go,
    /// The simulated crash happens in this step: do a partial job if that is
    /// what a crash would leave (half a write), then return the error.
    CrashHere(StoreError),
    /// The process is "dead": do nothing, return the error.
    Dead(StoreError),
}

/// The build without fault injection: no state, no environment, every step goes.
#[cfg(not(feature = "fault-injection"))]
mod disabled {
    use std::path::Path;

    use super::Step;

    /// No fault plan: this build cannot simulate crashes.
    #[derive(Debug, Default)]
    pub struct Faults;

    impl Faults {
        /// The production plan. The environment is not read.
        pub fn from_env() -> Faults {
            Faults
        }

        /// Every step may happen.
        #[inline]
        pub(crate) fn step(&self, _action: &'static str, _path: &Path) -> Step {
            Step::Go
        }
    }
}

#[cfg(feature = "fault-injection")]
mod enabled {
    use std::path::Path;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::{Step, StoreError};

    /// The environment variable of [`Faults::from_env`].
    #[doc(hidden)]
    pub const KILL_AT_STEP: &str = "AUTOENROLL_TEST_KILL_AT_STEP";

    /// Where a simulated crash happens, and the steps taken so far.
    #[doc(hidden)]
    #[derive(Debug, Default)]
    pub struct Faults {
        /// 1-based index of the step that fails; None: no fault.
        fail_at: Option<usize>,
        /// Whether steps are recorded in `log`.
        record: bool,
        taken: AtomicUsize,
        dead: AtomicBool,
        log: Mutex<Vec<String>>,
        /// Step at which the process kills itself (SIGKILL): the crash test of
        /// the pulse uses real process deaths, set through the environment.
        kill_at: Option<usize>,
    }

    impl Faults {
        /// A plan that fails the `step`-th filesystem step (1-based).
        pub fn at(step: usize) -> Faults {
            Faults {
                fail_at: Some(step),
                record: true,
                ..Faults::default()
            }
        }

        /// No fault; the steps are recorded.
        pub fn recording() -> Faults {
            Faults {
                record: true,
                ..Faults::default()
            }
        }

        /// No fault, unless `AUTOENROLL_TEST_KILL_AT_STEP=n` is set: then the
        /// process kills itself with SIGKILL before its n-th filesystem step.
        /// Only the crash tests set it.
        pub fn from_env() -> Faults {
            Faults {
                kill_at: std::env::var(KILL_AT_STEP)
                    .ok()
                    .and_then(|v| v.parse().ok()),
                ..Faults::default()
            }
        }

        /// Accounts for one step; says whether it may happen.
        pub(crate) fn step(&self, action: &'static str, path: &Path) -> Step {
            let n = self.taken.fetch_add(1, Ordering::SeqCst) + 1;
            if self.kill_at == Some(n) {
                let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
            }
            if self.record
                && let Ok(mut log) = self.log.lock()
            {
                log.push(format!("{action} {}", path.display()));
            }
            let err = || StoreError::InjectedFault {
                step: n,
                action,
                path: path.to_path_buf(),
            };
            if self.dead.load(Ordering::SeqCst) {
                return Step::Dead(err());
            }
            if self.fail_at == Some(n) {
                self.dead.store(true, Ordering::SeqCst);
                return Step::CrashHere(err());
            }
            Step::Go
        }

        /// How many steps were taken.
        pub fn taken(&self) -> usize {
            self.taken.load(Ordering::SeqCst)
        }

        /// The steps taken so far, as "action path" lines, in order (when recording).
        pub fn log(&self) -> Vec<String> {
            self.log.lock().map(|l| l.clone()).unwrap_or_default()
        }
    }
}
