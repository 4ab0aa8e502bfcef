//! The local certificate store of one context (machine or user): what is on
//! disk, how it is read, and how it is changed without ever losing a key or a
//! certificate.
//!
//! Layout (see `layout.rs` and DESIGN.md, "The local store on disk"): `my/`
//! holds current certificates with their keys, `archive/` the ones taken out
//! of use, `request/` requests whose key exists but whose certificate does
//! not (yet), `trust/` the CA certificates mirrored from the directory,
//! `state.toml` the worker's memory.
//!
//! Rules that make it safe:
//! - **One writer.** Every change takes a [`StoreLock`] (flock on `lock`).
//! - **Atomic, durable writes.** A file is replaced by writing a temporary
//!   file, fsyncing it, renaming it over the old one and fsyncing the folder.
//!   A new entry is assembled in a hidden folder (`.partial-…`) and renamed
//!   into place when complete, the key written last; moves to the archive are
//!   folder renames. A crash leaves old state, new state, or work in progress
//!   that [`Store::recover`] resolves on the next pulse.
//! - **Nothing is deleted** except copies: a request folder once its key is in
//!   `my/`, work in progress whose content exists elsewhere or was never
//!   complete, trust certificates the directory no longer publishes.
//! - **Foreign certificates** (no template extension) are read and shown,
//!   never moved.
//! - **Reading is liberal and never destructive**: a file that cannot be
//!   read is reported in [`StoreSnapshot::unparseable`] and left alone.
//! - **No link is followed.** The store makes no symbolic links, so one in
//!   it is someone else's: it is reported or refused ([`StoreError::Link`]),
//!   never read, chmodded, emptied or deleted through (see `fsutil`). Only
//!   files that are regular files are read (a FIFO would block). Messages
//!   name files and problems, never quote a file's content.

mod error;
pub mod fault;
pub(crate) mod fsutil;
mod layout;
mod lock;
mod meta;
pub(crate) mod pem;
mod read;
mod recover;
mod saved;
mod state;
pub mod types;
mod write;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use error::StoreError;
#[doc(hidden)]
pub use fault::Faults;
pub use layout::TrustKind;
pub use lock::StoreLock;
pub use saved::FileStamp;
pub use types::{
    CertificateMeta, HeldCertificate, HeldFiles, KeyStatus, PendingRequest, State, StoreSnapshot,
    TemplateFailures, Unparseable,
};
pub use write::TrustChange;

use fsutil::Fs;
use layout::Layout;

/// The local store at one root folder.
#[derive(Debug)]
pub struct Store {
    layout: Layout,
    fs: Fs,
}

impl Store {
    /// Opens the store at `root`, creating the layout (folders 0700) where
    /// missing and tightening folders that are readable by others. Takes no
    /// lock and changes no entry: call [`Store::recover`] under the lock to
    /// resolve what a crash left. A folder of the layout that is a symbolic
    /// link is refused ([`StoreError::Link`]) before anything is changed in
    /// or through it; only `root` itself, which the policy names, may be one.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        let store = Store::for_reading(root);
        for dir in store.layout.dirs() {
            let links = if dir == store.layout.root {
                fsutil::Links::Follow
            } else {
                fsutil::Links::Refuse
            };
            store.fs.ensure_dir(&dir, links)?;
        }
        Ok(store)
    }

    /// The store at `root` as it is, for reading before anything may be
    /// touched (the saved directory snapshot, before the directory was
    /// read): no folder is made or tightened, and a reader of a missing
    /// part gets its error. Writers use [`Store::open`].
    pub fn for_reading(root: &Path) -> Store {
        Store {
            layout: Layout {
                root: root.to_path_buf(),
            },
            fs: Fs {
                faults: Faults::from_env(),
            },
        }
    }

    /// The store's root folder.
    pub fn root(&self) -> &Path {
        &self.layout.root
    }

    /// Takes the single-writer lock, waiting for another writer to finish.
    pub fn lock(&self) -> Result<StoreLock, StoreError> {
        lock::lock(&self.layout.root, &self.layout.lock())
    }

    /// Takes the single-writer lock if no one holds it; None if someone does.
    pub fn try_lock(&self) -> Result<Option<StoreLock>, StoreError> {
        lock::try_lock(&self.layout.root, &self.layout.lock())
    }

    /// Reads `my/` and `request/` and counts `archive/`. A bad entry never
    /// fails the read: it goes to [`StoreSnapshot::unparseable`]. Fails only on
    /// I/O errors of the store's own folders. Needs no lock.
    pub fn snapshot(&self) -> Result<StoreSnapshot, StoreError> {
        read::snapshot(&self.layout)
    }

    /// Reads `state.toml`. A missing file is the default state, and so is one
    /// that cannot be parsed (a warning is logged; [`Store::recover`] sets it
    /// aside). A link, a file that is not a regular file, or an I/O error is
    /// an error naming the file, never quoting it.
    pub fn read_state(&self) -> Result<State, StoreError> {
        state::read(&self.layout.state())
    }

    /// Writes `state.toml` atomically, mode 0600 like the rest of what the
    /// engine keeps to itself. One that cannot be parsed is set aside first
    /// (kept, never overwritten); a link there is refused.
    pub fn write_state(&self, lock: &StoreLock, state: &State) -> Result<(), StoreError> {
        self.check_lock(lock, "write state")?;
        let path = self.layout.state();
        let text = state::text(state, &path)?;
        self.set_aside_unreadable_state()?;
        self.fs
            .replace(&path, text.as_bytes(), fsutil::PRIVATE_MODE)
    }

    /// Renames a `state.toml` that cannot be parsed to
    /// `state.toml.unreadable` (or `-2`, `-3`, …) and returns where it went
    /// and why. Nothing to do (None) for a good or missing file.
    pub(crate) fn set_aside_unreadable_state(
        &self,
    ) -> Result<Option<(PathBuf, String)>, StoreError> {
        let path = self.layout.state();
        let Err(problem) = state::load(&path)? else {
            return Ok(None);
        };
        let dest = layout::free_name(&self.layout.root, layout::STATE_UNREADABLE);
        self.fs.rename(&path, &dest)?;
        self.fs.sync_dir(&self.layout.root)?;
        Ok(Some((dest, problem)))
    }

    /// The same store, failing its `step`-th filesystem change from now on
    /// (1-based) as if the process died there, and recording its changes.
    /// For crash tests; see [`Faults`]. Only with the `fault-injection` feature.
    #[doc(hidden)]
    #[cfg(feature = "fault-injection")]
    pub fn with_fault_at(mut self, step: usize) -> Store {
        self.fs.faults = Faults::at(step);
        self
    }

    /// The same store, recording its filesystem changes from now on (see
    /// [`Store::fault_log`]). For crash tests.
    #[doc(hidden)]
    #[cfg(feature = "fault-injection")]
    pub fn recording(mut self) -> Store {
        self.fs.faults = Faults::recording();
        self
    }

    /// How many filesystem changes this `Store` value made (since it was
    /// opened, or since `recording`/`with_fault_at`).
    #[doc(hidden)]
    #[cfg(feature = "fault-injection")]
    pub fn fault_steps(&self) -> usize {
        self.fs.faults.taken()
    }

    /// The filesystem changes recorded (see [`Store::recording`]), one
    /// "action path" line each.
    #[doc(hidden)]
    #[cfg(feature = "fault-injection")]
    pub fn fault_log(&self) -> Vec<String> {
        self.fs.faults.log()
    }

    /// Refuses a lock taken on another store.
    fn check_lock(&self, lock: &StoreLock, operation: &'static str) -> Result<(), StoreError> {
        if lock.root() == self.layout.root {
            Ok(())
        } else {
            Err(StoreError::WrongLock {
                operation,
                store: self.layout.root.clone(),
                lock: lock.root().to_path_buf(),
            })
        }
    }
}

/// Root of the machine context's store: `/var/lib/autoenroll/machine`.
pub fn machine_root() -> PathBuf {
    PathBuf::from("/var/lib/autoenroll/machine")
}

/// Root of the current user's store: `$XDG_DATA_HOME/autoenroll`, or
/// `~/.local/share/autoenroll` when `XDG_DATA_HOME` is unset, empty or
/// relative (the XDG base directory rules).
pub fn user_root() -> PathBuf {
    user_root_from(std::env::var_os("XDG_DATA_HOME"), std::env::home_dir())
}

/// [`user_root`] with its inputs explicit. Without a home folder the path is
/// relative (`.local/share/autoenroll`).
fn user_root_from(xdg_data_home: Option<std::ffi::OsString>, home: Option<PathBuf>) -> PathBuf {
    match xdg_data_home.map(PathBuf::from) {
        Some(p) if p.is_absolute() => p.join("autoenroll"),
        _ => home
            .unwrap_or_default()
            .join(".local")
            .join("share")
            .join("autoenroll"),
    }
}
