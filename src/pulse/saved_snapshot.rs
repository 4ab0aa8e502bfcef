//! The store's saved directory snapshot as a pulse uses it: offered to the
//! directory read, whose Public Key Services entries it stands for while its
//! markers do ([`crate::directory::snapshot::reuse`]), and written back when
//! its content changed, so that a no-op pulse writes nothing.
//!
//! A process that pulses again (the worker) remembers, per store, the file
//! it last wrote or read ([`FileStamp`]) and what that file holds: while the
//! same file is in place it is neither read, nor parsed, nor encoded again.
//! Anything else (another file in place, a first pulse, a store this
//! process forgot) reads and compares the file itself.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use crate::directory::saved::SavedSnapshot;
use crate::store::{FileStamp, Store, StoreLock};

/// Stores remembered at once (a worker has one or two; a process that
/// pulses for more forgets one to remember another, rather than grow: each
/// holds a whole Public Key Services, some megabytes with hundreds of
/// templates).
const REMEMBERED: usize = 8;

/// A version of a store's saved snapshot file and what it holds.
#[derive(Clone)]
pub(super) struct Known {
    stamp: FileStamp,
    pub saved: Arc<SavedSnapshot>,
}

type Memo = HashMap<PathBuf, Known>;

fn memo<T>(f: impl FnOnce(&mut Memo) -> T) -> T {
    static MEMO: Mutex<Option<Memo>> = Mutex::new(None);
    let mut memo = MEMO.lock().unwrap_or_else(PoisonError::into_inner);
    f(memo.get_or_insert_with(Default::default))
}

fn remember(root: &Path, known: Known) {
    memo(|m| {
        if m.len() >= REMEMBERED
            && !m.contains_key(root)
            && let Some(other) = m.keys().next().cloned()
        {
            m.remove(&other);
        }
        m.insert(root.to_path_buf(), known);
    });
}

fn forget(root: &Path) {
    memo(|m| m.remove(root));
}

/// The saved snapshot of the store at `root`, if there is one this version
/// reads. Taken without the store's lock: the file is only ever renamed into
/// place, and what is remembered of it is tied to the version (stamp) read.
/// A file that cannot be read or parsed is no earlier read (the pulse reads
/// the directory in full and writes a new one).
pub(super) fn earlier(root: &Path) -> Option<Known> {
    let store = Store::for_reading(root);
    let stamp = store.directory_snapshot_stamp()?;
    if let Some(known) = memo(|m| m.get(root).filter(|k| k.stamp == stamp).cloned()) {
        return Some(known);
    }
    let bytes = store.read_directory_snapshot().ok()??;
    let saved = match SavedSnapshot::parse(&bytes) {
        Ok(saved) => Arc::new(saved),
        Err(e) => {
            tracing::debug!("the saved directory snapshot is not used: {e}");
            return None;
        }
    };
    // Known only if the file read is still the one stamped.
    (store.directory_snapshot_stamp() == Some(stamp)).then(|| {
        let known = Known { stamp, saved };
        remember(root, known.clone());
        known
    })
}

/// Keeps `saved` in the store for `status` while the directory is
/// unreachable, and for the next pulse's [`earlier`]. Not being able to is a
/// warning: this pulse needs no copy, and the previous one stays (the write
/// is atomic). Written only when its content changed: when `earlier` (what
/// this pulse's [`earlier`] found) is still the file in place and holds the
/// same, nothing is read or encoded.
pub(super) fn save(store: &Store, lock: &StoreLock, saved: SavedSnapshot, earlier: Option<&Known>) {
    let root = store.root().to_path_buf();
    if let (Some(stamp), Some(known)) = (store.directory_snapshot_stamp(), earlier)
        && known.stamp == stamp
        && known.saved.same_content(&saved)
    {
        remember(&root, known.clone());
        return;
    }
    let old = store.read_directory_snapshot().ok().flatten();
    let written = match saved.to_json_unless_same(old.as_deref()) {
        Ok(None) => Ok(()),
        Ok(Some(bytes)) => store
            .write_directory_snapshot(lock, &bytes)
            .map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    // The store's lock is held: the file now in place is the one just
    // compared or written.
    match (&written, store.directory_snapshot_stamp()) {
        (Ok(()), Some(stamp)) => remember(
            &root,
            Known {
                stamp,
                saved: Arc::new(saved),
            },
        ),
        _ => forget(&root),
    }
    if let Err(e) = written {
        tracing::warn!("cannot keep the directory snapshot for offline status: {e}");
    }
}
