//! Notification of changes to the policy file (inotify(7)), so the idle
//! worker sleeps until its next timer instead of reading the file every
//! `policy_check`.
//!
//! The watch is on the file's folder, not the file: editors and
//! configuration tools replace a file by renaming a new one over it (a watch
//! on the file would follow the old inode), and a policy reached through a
//! symbolic link changes when the link's target folder is swapped. Any event
//! in the folder makes the worker compare the file's bytes with what it
//! loaded, so a notification never stands for a change by itself.

use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::Path;

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tokio::io::unix::AsyncFd;

struct Fd(Inotify);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// An inotify watch on the folder of a file.
pub struct PolicyWatch {
    fd: AsyncFd<Fd>,
}

impl PolicyWatch {
    /// Watches the folder of `file`. None when inotify is unavailable (the
    /// caller then polls).
    pub fn new(file: &Path) -> Option<PolicyWatch> {
        let dir = match file.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok()?;
        let flags = AddWatchFlags::IN_CLOSE_WRITE
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_ATTRIB
            | AddWatchFlags::IN_CREATE;
        inotify.add_watch(dir, flags).ok()?;
        // SAFETY: the descriptor belongs to the `Inotify` inside `Fd`, which
        // the `AsyncFd` owns: it stays open, and `as_raw_fd` returns it,
        // until the `AsyncFd` is dropped.
        let fd = unsafe { AsyncFd::register(Fd(inotify)) }.ok()?;
        Some(PolicyWatch { fd })
    }

    /// Waits for the next batch of events in the folder. An error of the
    /// descriptor ends the wait too: the caller then compares the file,
    /// which is what a change would have made it do.
    pub async fn changed(&self) {
        loop {
            let Ok(mut guard) = self.fd.readable().await else {
                return;
            };
            match guard.get_inner().0.read_events() {
                Ok(events) if !events.is_empty() => return,
                Ok(_) | Err(Errno::EAGAIN) => guard.clear_ready(),
                Err(_) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_file_renamed_over_the_policy_is_noticed_and_nothing_else_is_waited_for() {
        let tmp = tempfile::tempdir().unwrap();
        let policy = tmp.path().join("machine.toml");
        std::fs::write(&policy, "a").unwrap();
        let watch = PolicyWatch::new(&policy).expect("inotify");
        // Nothing happens: the wait does not end.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), watch.changed())
                .await
                .is_err()
        );
        let new = tmp.path().join(".machine.toml.new");
        std::fs::write(&new, "b").unwrap();
        std::fs::rename(&new, &policy).unwrap();
        tokio::time::timeout(Duration::from_secs(10), watch.changed())
            .await
            .expect("the rename is noticed");
    }
}
