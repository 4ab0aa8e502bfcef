//! The single-writer lock: an exclusive `flock` on the store's `lock` file.
//!
//! The pulse and the worker take it before changing anything; every writing
//! method of the store asks for the lock as a parameter, so holding it is
//! checked by the compiler. Readers (`status`, `snapshot`) do not take it:
//! every change is a rename of a complete file or folder, so they always see
//! a consistent state. The lock is released when the [`StoreLock`] is dropped
//! (or the process dies: the kernel releases flocks of a dead process).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::libc;

use super::error::{StoreError, io_err};
use super::fsutil::KEY_MODE;

/// Proof of holding the store's write lock. Released on drop.
#[derive(Debug)]
pub struct StoreLock {
    // Held for its flock; closing the file releases it.
    _file: File,
    root: PathBuf,
}

impl StoreLock {
    /// The root of the store this lock was taken on.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// Opens (or creates) the lock file. A link there is refused (`O_NOFOLLOW`):
/// opening it for writing would open whatever it points to.
fn open(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(KEY_MODE)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                StoreError::Link {
                    path: path.to_path_buf(),
                }
            } else {
                io_err("open the lock file", path)(e)
            }
        })
}

// `File::lock` and `File::try_lock` are stable since Rust 1.89.
pub(crate) fn lock(root: &Path, path: &Path) -> Result<StoreLock, StoreError> {
    let file = open(path)?;
    file.lock().map_err(io_err("lock", path))?;
    Ok(StoreLock {
        _file: file,
        root: root.to_path_buf(),
    })
}

pub(crate) fn try_lock(root: &Path, path: &Path) -> Result<Option<StoreLock>, StoreError> {
    let file = open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(StoreLock {
            _file: file,
            root: root.to_path_buf(),
        })),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(io_err("lock", path)(e)),
    }
}
