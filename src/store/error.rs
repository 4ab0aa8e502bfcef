//! Errors of the local store. Every message names the file or folder concerned
//! and what was being done to it, so that a person reading the log can act.

use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// What went wrong in the local store.
#[derive(Debug, Error)]
pub enum StoreError {
    /// A filesystem operation on the store failed (permissions, disk full, ...).
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done ("write", "rename to archive/...", "sync", ...).
        action: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A file the engine writes (state.toml, meta.toml) cannot be read back.
    #[error("{}: {problem}", path.display())]
    Corrupt { path: PathBuf, problem: String },
    /// The entry an operation was asked to work on is not in the store.
    #[error("{operation}: {} does not exist", path.display())]
    NotFound {
        operation: &'static str,
        path: PathBuf,
    },
    /// The operation's input was refused before anything was written.
    #[error("{operation} in {}: {problem}", path.display())]
    Refused {
        operation: &'static str,
        /// Where the operation would have written.
        path: PathBuf,
        problem: String,
    },
    /// A certificate whose public key is not the public key of the private key
    /// it was to be installed with. Nothing was written.
    #[error(
        "{operation}: certificate {thumbprint} was not issued for the key in {}; \
         refusing to install it",
        key.display()
    )]
    KeyMismatch {
        operation: &'static str,
        thumbprint: String,
        /// The key file (or the request folder's key) it was compared with.
        key: PathBuf,
    },
    /// The engine was asked to move a certificate that carries no template
    /// extension. Such certificates are someone else's and are never touched.
    #[error(
        "{operation}: {} holds certificate {thumbprint}, which has no template extension; \
         foreign certificates are never touched",
        path.display()
    )]
    Foreign {
        operation: &'static str,
        thumbprint: String,
        path: PathBuf,
    },
    /// A symbolic link where the store expects its own file or folder. The
    /// store makes no links, so one is someone else's: it is neither followed
    /// nor changed, and what it points to is not read.
    #[error(
        "{} is a symbolic link, and the store never follows a link it did not make; \
         nothing was done through it: remove it",
        path.display()
    )]
    Link { path: PathBuf },
    /// A `StoreLock` of another store was passed in.
    #[error(
        "{operation} in {}: the lock passed in belongs to the store at {}",
        store.display(),
        lock.display()
    )]
    WrongLock {
        operation: &'static str,
        store: PathBuf,
        lock: PathBuf,
    },
    /// A simulated crash (tests only; see [`crate::store::Faults`]).
    #[doc(hidden)]
    #[error("injected fault at filesystem step {step}: {action} {}", path.display())]
    InjectedFault {
        step: usize,
        action: &'static str,
        path: PathBuf,
    },
}

impl StoreError {
    /// Whether this is a simulated crash from the fault injection of tests.
    #[doc(hidden)]
    pub fn is_injected_fault(&self) -> bool {
        matches!(self, StoreError::InjectedFault { .. })
    }
}

/// `map_err` helper: an I/O error while doing `action` on `path`.
pub(crate) fn io_err(
    action: impl Into<String>,
    path: &Path,
) -> impl FnOnce(io::Error) -> StoreError {
    let action = action.into();
    let path = path.to_path_buf();
    move |source| StoreError::Io {
        action,
        path,
        source,
    }
}
