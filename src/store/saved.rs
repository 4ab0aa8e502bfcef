//! `directory-snapshot.json`: the last directory snapshot a pulse read, kept
//! for `status` while the directory cannot be reached. The store only keeps
//! the bytes (atomically, 0600, never through a link); what they mean is
//! `directory::saved`'s business.

use std::io::Read;

use super::error::{StoreError, io_err};
use super::{Store, StoreLock, fsutil, layout};

/// Larger files are refused before they are read into memory.
const MAX_BYTES: u64 = 256 * 1024 * 1024;

impl Store {
    /// Replaces the saved directory snapshot atomically (mode 0600: it holds
    /// the account's groups and the forest's templates and permissions).
    pub fn write_directory_snapshot(
        &self,
        lock: &StoreLock,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        self.check_lock(lock, "write the directory snapshot")?;
        let path = self.layout.root.join(layout::DIRECTORY_SNAPSHOT);
        self.fs.replace(&path, bytes, fsutil::PRIVATE_MODE)
    }

    /// Which version of the saved directory snapshot's file is in place:
    /// None when there is none (or it is not a regular file). Every write
    /// renames a new file into place (a new inode), and any change to the
    /// file moves its ctime, which no one can set back: an unchanged stamp
    /// is an unchanged file.
    pub fn directory_snapshot_stamp(&self) -> Option<FileStamp> {
        use std::os::unix::fs::MetadataExt;
        let path = self.layout.root.join(layout::DIRECTORY_SNAPSHOT);
        let m = std::fs::symlink_metadata(path).ok()?;
        m.file_type().is_file().then(|| FileStamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }

    /// The saved directory snapshot's bytes; None when no pulse saved one.
    /// A link or anything but a regular file is refused; an oversized file
    /// is an error (needs no lock: the file is only ever renamed into place).
    pub fn read_directory_snapshot(&self) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.layout.root.join(layout::DIRECTORY_SNAPSHOT);
        let file = match fsutil::open_regular(&path, false) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(_) if layout::is_link(&path) => return Err(StoreError::Link { path }),
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        let mut bytes = Vec::new();
        file.take(MAX_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(io_err("read", &path))?;
        if bytes.len() as u64 > MAX_BYTES {
            return Err(StoreError::Corrupt {
                path,
                problem: format!("larger than {MAX_BYTES} bytes: not a directory snapshot"),
            });
        }
        Ok(Some(bytes))
    }
}

/// See [`Store::directory_snapshot_stamp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}
