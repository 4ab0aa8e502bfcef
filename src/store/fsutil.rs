//! The only code that changes files of the store.
//!
//! Two ways to write a file, both durable before they return:
//! - [`Fs::write_new`] creates a file that did not exist (inside a folder being
//!   assembled, which is itself renamed into place once complete), then fsyncs it;
//! - [`Fs::replace`] replaces a file atomically: it writes a temporary file
//!   `.<name>.tmp-<random>` in the same folder with `write_new`, renames it over
//!   the target and fsyncs the folder. A reader sees the old or the new content,
//!   never a mix; a crash leaves at worst a stray temporary file, which
//!   recovery removes.
//!
//! Folders are created 0700; key files 0600. Every change is one fault step
//! (see [`super::fault`]).

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::error::{StoreError, io_err};
use super::fault::{Faults, Step};
use super::layout;

/// Mode of the store's folders.
pub(crate) const DIR_MODE: u32 = 0o700;
/// Mode of private key files.
pub(crate) const KEY_MODE: u32 = 0o600;
/// Mode of other files (certificates, metadata); the folders are 0700 anyway.
pub(crate) const FILE_MODE: u32 = 0o644;

/// Filesystem changes, each accounted as one step of the fault plan.
#[derive(Debug, Default)]
pub(crate) struct Fs {
    pub(crate) faults: Faults,
}

impl Fs {
    fn step(&self, action: &'static str, path: &Path) -> Result<(), StoreError> {
        match self.faults.step(action, path) {
            Step::Go => Ok(()),
            Step::CrashHere(e) | Step::Dead(e) => Err(e),
        }
    }

    /// Creates one folder (mode 0700). Its parent must exist.
    pub(crate) fn create_dir(&self, path: &Path) -> Result<(), StoreError> {
        self.step("create folder", path)?;
        DirBuilder::new()
            .mode(DIR_MODE)
            .create(path)
            .map_err(io_err("create folder", path))
    }

    /// Makes sure a folder of the layout exists with mode 0700: creates it (and
    /// missing parents) or tightens a looser mode. No step when nothing changes.
    pub(crate) fn ensure_dir(&self, path: &Path) -> Result<(), StoreError> {
        match fs::metadata(path) {
            Ok(m) if m.is_dir() => {
                if m.permissions().mode() & 0o077 != 0 {
                    self.step("restrict permissions of", path)?;
                    fs::set_permissions(path, fs::Permissions::from_mode(DIR_MODE))
                        .map_err(io_err("restrict permissions of", path))?;
                }
                Ok(())
            }
            Ok(_) => Err(StoreError::Corrupt {
                path: path.to_path_buf(),
                problem: "expected a folder of the certificate store, found a file".into(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.step("create folder", path)?;
                DirBuilder::new()
                    .mode(DIR_MODE)
                    .recursive(true)
                    .create(path)
                    .map_err(io_err("create folder", path))
            }
            Err(e) => Err(io_err("read", path)(e)),
        }
    }

    /// Creates a file that must not exist yet, writes `bytes` and fsyncs it
    /// (two steps: write, sync).
    pub(crate) fn write_new(&self, path: &Path, bytes: &[u8], mode: u32) -> Result<(), StoreError> {
        let open = || {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(path)
                .map_err(io_err("create", path))
        };
        let mut file = match self.faults.step("write", path) {
            Step::Go => open()?,
            Step::Dead(e) => return Err(e),
            Step::CrashHere(e) => {
                // A crash in the middle of a write leaves part of the bytes.
                let mut f = open()?;
                f.write_all(&bytes[..bytes.len() / 2])
                    .map_err(io_err("write", path))?;
                return Err(e);
            }
        };
        file.write_all(bytes).map_err(io_err("write", path))?;
        self.step("sync", path)?;
        file.sync_all().map_err(io_err("sync", path))
    }

    /// Replaces (or creates) `path` atomically: temporary file in the same
    /// folder, fsync, rename, fsync of the folder (four steps).
    pub(crate) fn replace(&self, path: &Path, bytes: &[u8], mode: u32) -> Result<(), StoreError> {
        let (dir, name) = split(path)?;
        let tmp = dir.join(layout::temp_name(name));
        self.write_new(&tmp, bytes, mode)?;
        self.rename(&tmp, path)?;
        self.sync_dir(dir)
    }

    /// Renames a file or folder. For folders the caller makes sure that `to`
    /// does not exist (rename would replace an empty folder).
    pub(crate) fn rename(&self, from: &Path, to: &Path) -> Result<(), StoreError> {
        self.step("rename", from)?;
        fs::rename(from, to).map_err(io_err(format!("rename {} to", from.display()), to))
    }

    /// fsyncs a folder, making the creations, renames and removals in it durable.
    pub(crate) fn sync_dir(&self, dir: &Path) -> Result<(), StoreError> {
        self.step("sync folder", dir)?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("sync folder", dir))
    }

    /// Removes a file.
    pub(crate) fn remove_file(&self, path: &Path) -> Result<(), StoreError> {
        self.step("remove", path)?;
        fs::remove_file(path).map_err(io_err("remove", path))
    }

    /// Removes an empty folder.
    pub(crate) fn remove_dir(&self, path: &Path) -> Result<(), StoreError> {
        self.step("remove folder", path)?;
        fs::remove_dir(path).map_err(io_err("remove folder", path))
    }
}

/// The parent folder and file name of a path inside the store.
fn split(path: &Path) -> Result<(&Path, &str), StoreError> {
    match (path.parent(), path.file_name().and_then(|n| n.to_str())) {
        (Some(dir), Some(name)) => Ok((dir, name)),
        _ => Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            problem: "not a file name inside the store".into(),
        }),
    }
}
