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
//!
//! **Symbolic links.** The store never makes a link, so it never follows
//! one: files are read with `O_NOFOLLOW` ([`read_regular`]), folders of the
//! layout are checked with `lstat` and opened with `O_NOFOLLOW` before their
//! mode is tightened, and a link met anywhere is refused and reported
//! ([`StoreError::Link`]), never chmodded, read, emptied or deleted through.
//! Creating (`O_EXCL`), renaming and removing never follow a link by nature.
//! The one exception is the store's root folder, which the policy names: a
//! root that is a link is the administrator's choice and is followed.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read as _, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use nix::libc;

use super::error::{StoreError, io_err};
use super::fault::{Faults, Step};
use super::layout;

/// Whether [`Fs::ensure_dir`] may follow a symbolic link at the folder itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Links {
    /// The store's root, named by the policy: followed.
    Follow,
    /// Every folder inside the store: a link is refused.
    Refuse,
}

/// What [`read_regular`] and [`open_regular`] say about a link at the path.
pub(crate) const LINK_PROBLEM: &str =
    "is a symbolic link, and the store never follows a link it did not make; remove it";

/// Opens a file for reading, refusing anything but a regular file: a FIFO
/// or device would block a read forever (or hand out endless data), a folder
/// cannot be read. `O_NONBLOCK` makes the open itself return at once on a
/// FIFO; the type is then checked on the open descriptor (no race with a
/// rename). With `follow == false` a symbolic link at the last component is
/// refused too (`O_NOFOLLOW`). Errors say what the path is, never what it holds.
pub(crate) fn open_regular(path: &Path, follow: bool) -> io::Result<File> {
    let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC;
    if !follow {
        flags |= libc::O_NOFOLLOW;
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| {
            if !follow && e.raw_os_error() == Some(libc::ELOOP) {
                io::Error::new(io::ErrorKind::InvalidInput, LINK_PROBLEM)
            } else {
                e
            }
        })?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("is {}, not a regular file", kind_name(kind)),
        ));
    }
    Ok(file)
}

/// The whole content of a regular file (see [`open_regular`]), without
/// following a symbolic link at the path.
pub(crate) fn read_regular(path: &Path) -> io::Result<Vec<u8>> {
    let mut file = open_regular(path, false)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// A file type in words, for messages.
pub(crate) fn kind_name(kind: fs::FileType) -> &'static str {
    if kind.is_dir() {
        "a folder"
    } else if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_block_device() || kind.is_char_device() {
        "a device"
    } else if kind.is_file() {
        "a regular file"
    } else {
        "an unknown kind of file"
    }
}

/// Mode of the store's folders.
pub(crate) const DIR_MODE: u32 = 0o700;
/// Mode of private key files.
pub(crate) const KEY_MODE: u32 = 0o600;
/// Mode of the engine's private bookkeeping (`state.toml`).
pub(crate) const PRIVATE_MODE: u32 = 0o600;
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

    /// Makes sure a folder of the layout exists with mode 0700: creates it or
    /// tightens a looser mode. `links`: whether a symbolic link at `path`
    /// itself is followed (the root) or refused (everything inside). The mode
    /// is changed on a descriptor opened with `O_NOFOLLOW`, so a link swapped
    /// in after the check is not followed either. No step when nothing changes.
    pub(crate) fn ensure_dir(&self, path: &Path, links: Links) -> Result<(), StoreError> {
        let found = match links {
            Links::Follow => fs::metadata(path),
            Links::Refuse => fs::symlink_metadata(path),
        };
        match found {
            Ok(m) if m.file_type().is_symlink() => Err(StoreError::Link {
                path: path.to_path_buf(),
            }),
            Ok(m) if m.is_dir() => {
                if m.permissions().mode() & 0o077 != 0 {
                    self.step("restrict permissions of", path)?;
                    open_dir(path, links)
                        .and_then(|d| d.set_permissions(fs::Permissions::from_mode(DIR_MODE)))
                        .map_err(io_err("restrict permissions of", path))?;
                }
                Ok(())
            }
            Ok(m) => Err(StoreError::Corrupt {
                path: path.to_path_buf(),
                problem: format!(
                    "expected a folder of the certificate store, found {}",
                    kind_name(m.file_type())
                ),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.step("create folder", path)?;
                // Inside the store the parent was checked just before (the
                // layout lists parents first): no missing parent to create.
                DirBuilder::new()
                    .mode(DIR_MODE)
                    .recursive(links == Links::Follow)
                    .create(path)
                    .map_err(io_err("create folder", path))
            }
            Err(e) => Err(io_err("read", path)(e)),
        }
    }

    /// Creates a file that must not exist yet, writes `bytes` and fsyncs it
    /// (two steps: write, sync). `O_EXCL` never follows a link. A file that
    /// could not be completely written is removed again, unless the failure is
    /// a simulated crash (a dead process cleans nothing up).
    pub(crate) fn write_new(&self, path: &Path, bytes: &[u8], mode: u32) -> Result<(), StoreError> {
        let open = || {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .custom_flags(libc::O_CLOEXEC)
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
        let written = file
            .write_all(bytes)
            .map_err(io_err("write", path))
            .and_then(|()| self.step("sync", path))
            .and_then(|()| file.sync_all().map_err(io_err("sync", path)));
        if let Err(e) = &written {
            discard(path, e);
        }
        written
    }

    /// Replaces (or creates) `path` atomically: temporary file in the same
    /// folder, fsync, rename, fsync of the folder (four steps). When the
    /// temporary file cannot be written or renamed into place, it is removed:
    /// a failing target (a folder in the way, a read-only mount) must not
    /// leave one more `.<name>.tmp-…` behind at every attempt.
    pub(crate) fn replace(&self, path: &Path, bytes: &[u8], mode: u32) -> Result<(), StoreError> {
        let (dir, name) = split(path)?;
        let tmp = dir.join(layout::temp_name(name));
        self.write_new(&tmp, bytes, mode)?;
        if let Err(e) = self.rename(&tmp, path) {
            discard(&tmp, &e);
            return Err(e);
        }
        self.sync_dir(dir)
    }

    /// Renames a file or folder. For folders the caller makes sure that `to`
    /// does not exist (rename would replace an empty folder).
    pub(crate) fn rename(&self, from: &Path, to: &Path) -> Result<(), StoreError> {
        self.step("rename", from)?;
        fs::rename(from, to).map_err(io_err(format!("rename {} to", from.display()), to))
    }

    /// fsyncs a folder, making the creations, renames and removals in it durable.
    /// An fsync changes nothing, so following a link here is harmless (and
    /// needed for a root that is one).
    pub(crate) fn sync_dir(&self, dir: &Path) -> Result<(), StoreError> {
        self.step("sync folder", dir)?;
        open_dir(dir, Links::Follow)
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

/// Removes a file this process created and failed to complete. Not a step:
/// it only undoes work whose error is returned anyway. After a simulated
/// crash nothing is undone, as after a real one.
fn discard(path: &Path, error: &StoreError) {
    if !error.is_injected_fault() {
        let _ = fs::remove_file(path);
    }
}

/// Opens a folder (`O_DIRECTORY`), refusing a link at it unless `links` follows.
fn open_dir(path: &Path, links: Links) -> io::Result<File> {
    let mut flags = libc::O_DIRECTORY | libc::O_CLOEXEC;
    if links == Links::Refuse {
        flags |= libc::O_NOFOLLOW;
    }
    OpenOptions::new().read(true).custom_flags(flags).open(path)
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
