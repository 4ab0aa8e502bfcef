//! Recovery: resolving what a crash left half done. Run by the pulse right
//! after taking the lock, before reading the store to plan.
//!
//! What a crash can leave, and what becomes of it:
//!
//! | left behind | resolution |
//! |---|---|
//! | `.<file>.tmp-…` (a replace cut short) | removed: the file it was to replace is intact |
//! | `my/.partial-…` with a readable, matching key | renamed into place (the key is written last, so the folder is complete) unless the certificate is installed already, then removed |
//! | `my/.partial-…` without a readable key | removed: the key was never completely written, the certificate is a copy |
//! | `request/.partial-…` with a readable key | renamed into place: a request never sent |
//! | `request/.partial-…` without a readable key | removed |
//! | `request/.done-…` (a completed request being deleted) | deleted, if its key is in the store elsewhere |
//! | `my/<t>` marked `archived_at` | moved to `archive/` |
//! | `request/<id>` marked `abandoned_at` | moved to `archive/requests/` |
//! | `my/<new>` whose meta.toml `replaces` a certificate still in `my/` | that certificate archived |
//! | `request/<id>` whose certificate is installed (meta.toml `local_request`) | removed |
//! | `state.toml` that cannot be parsed | kept as `state.toml.unreadable`, empty state |
//!
//! Whenever a folder would be removed while holding a readable key that
//! exists nowhere else in the store, it goes to `recovered/` instead.

use std::path::Path;

use time::OffsetDateTime;

use super::Store;
use super::error::{StoreError, io_err};
use super::layout::{self, Listed};
use super::lock::StoreLock;
use super::pem;
use super::read::{self, Read, read_optional};
use super::types::KeyStatus;

impl Store {
    /// Resolves half-written entries left by a crash (see the module doc);
    /// returns one line per thing done, for the log. Safe to run any time
    /// under the lock; does nothing on a clean store.
    pub fn recover(&self, lock: &StoreLock) -> Result<Vec<String>, StoreError> {
        self.check_lock(lock, "recover")?;
        let mut log = Vec::new();
        self.remove_temp_files(&mut log)?;
        if let Some((dest, problem)) = self.set_aside_unreadable_state()? {
            log.push(format!(
                "state.toml could not be read ({problem}); kept it as {} and started from an \
                 empty state (failure counts and backoff start again)",
                dest.display()
            ));
        }
        self.resolve_partial_requests(&mut log)?;
        self.resolve_partial_installs(&mut log)?;
        self.resolve_done_requests(&mut log)?;
        self.finish_archive_moves(&mut log)?;
        self.finish_abandons(&mut log)?;
        self.finish_replacements(&mut log)?;
        self.finish_completed_requests(&mut log)?;
        Ok(log)
    }

    /// Removes `.<file>.tmp-…` files in the folders [`super::fsutil::Fs::replace`] writes to.
    fn remove_temp_files(&self, log: &mut Vec<String>) -> Result<(), StoreError> {
        let mut dirs = vec![self.layout.root.clone()];
        dirs.extend(
            super::layout::TrustKind::ALL
                .iter()
                .map(|k| self.layout.trust_kind(*k)),
        );
        for parent in [
            self.layout.my(),
            self.layout.archive(),
            self.layout.archived_requests(),
            self.layout.request(),
        ] {
            dirs.extend(
                list_or_empty(&parent)?
                    .into_iter()
                    .filter(|e| e.is_dir && !layout::is_hidden(&e.name))
                    .map(|e| e.path),
            );
        }
        for dir in dirs {
            for e in list_or_empty(&dir)? {
                // A link with a temporary name is not ours: left alone.
                if e.is_file && layout::is_temp_name(&e.name) {
                    self.fs.remove_file(&e.path)?;
                    log.push(format!(
                        "removed {}, left by an interrupted write",
                        e.path.display()
                    ));
                }
            }
        }
        Ok(())
    }

    /// `request/.partial-<id>`: finished when its key is readable, else removed.
    fn resolve_partial_requests(&self, log: &mut Vec<String>) -> Result<(), StoreError> {
        let requests = self.layout.request();
        for e in hidden_dirs(&requests, layout::PARTIAL)? {
            let id = e.name[layout::PARTIAL.len()..].to_string();
            let dest = requests.join(&id);
            match read::read_request_dir(&e.path) {
                Read::Ok(_) if layout::is_entry_name(&id) && !layout::exists(&dest) => {
                    self.fs.rename(&e.path, &dest)?;
                    self.fs.sync_dir(&requests)?;
                    log.push(format!(
                        "finished writing request {id} (interrupted before it was sent)"
                    ));
                }
                Read::Gone => {}
                _ => self.drop_or_keep(&e.path, "an interrupted request", log)?,
            }
        }
        Ok(())
    }

    /// `my/.partial-<t>-<r>`: finished when its key is readable and matches,
    /// unless the certificate is installed already; else removed.
    fn resolve_partial_installs(&self, log: &mut Vec<String>) -> Result<(), StoreError> {
        let my = self.layout.my();
        for e in hidden_dirs(&my, layout::PARTIAL)? {
            let entry = match read::read_cert_dir(&e.path) {
                Read::Ok(c) if c.key == KeyStatus::Paired => c,
                Read::Gone => continue,
                _ => {
                    self.drop_or_keep(&e.path, "an interrupted install", log)?;
                    continue;
                }
            };
            let thumbprint = entry.info.thumbprint.clone();
            match read::find_certificate(&self.layout, &thumbprint)? {
                Some(existing)
                    if existing.key == KeyStatus::Paired && existing.meta.archived_at.is_none() =>
                {
                    self.remove_folder(&e.path)?;
                    log.push(format!(
                        "removed an interrupted install of {thumbprint}: it is installed in {}",
                        existing.dir.display()
                    ));
                    continue;
                }
                Some(existing) => {
                    let now = entry
                        .meta
                        .installed_at
                        .unwrap_or_else(OffsetDateTime::now_utc);
                    self.move_to_archive(
                        &existing,
                        "set aside by a new install of the same certificate with its key",
                        now,
                    )?;
                }
                None => {}
            }
            self.fs
                .rename(&e.path, &layout::free_name(&my, &thumbprint))?;
            self.fs.sync_dir(&my)?;
            log.push(format!("finished the interrupted install of {thumbprint}"));
        }
        Ok(())
    }

    /// `request/.done-…`: the rest of a request whose certificate is installed.
    fn resolve_done_requests(&self, log: &mut Vec<String>) -> Result<(), StoreError> {
        for e in hidden_dirs(&self.layout.request(), layout::DONE)? {
            self.drop_or_keep(&e.path, "a completed request", log)?;
        }
        Ok(())
    }

    /// `my/<t>` marked for the archive: moved there.
    fn finish_archive_moves(&self, log: &mut Vec<String>) -> Result<(), StoreError> {
        let (entries, _) = read::my_entries(&self.layout)?;
        for c in entries.iter().filter(|c| c.meta.archived_at.is_some()) {
            let dest = self.move_to_archive(c, "", OffsetDateTime::now_utc())?;
            log.push(format!(
                "finished archiving {} to {}",
                c.info.thumbprint,
                dest.display()
            ));
        }
        Ok(())
    }

    /// `request/<id>` marked abandoned: moved to `archive/requests/`.
    fn finish_abandons(&self, log: &mut Vec<String>) -> Result<(), StoreError> {
        let (requests, _) = read::request_entries(&self.layout)?;
        for r in requests.iter().filter(|r| r.meta.abandoned_at.is_some()) {
            let id = file_name(&r.dir);
            self.move_request_to_archive(&r.dir, &id)?;
            log.push(format!("finished abandoning request {id}"));
        }
        Ok(())
    }

    /// A renewal cut short between installing the new certificate and
    /// archiving the one it replaces: archive the old one now.
    fn finish_replacements(&self, log: &mut Vec<String>) -> Result<(), StoreError> {
        let (entries, _) = read::my_entries(&self.layout)?;
        for c in entries.iter().filter(|c| c.meta.archived_at.is_none()) {
            let Some(old) = &c.meta.replaces else {
                continue;
            };
            let now = OffsetDateTime::now_utc();
            if self.supersede(old, &c.info.thumbprint, now)? {
                log.push(format!(
                    "archived {old}, replaced by {} (finishing an interrupted renewal)",
                    c.info.thumbprint
                ));
            }
        }
        Ok(())
    }

    /// A request whose certificate is installed with its key (the install
    /// records the request's id): the request folder is a copy, removed.
    fn finish_completed_requests(&self, log: &mut Vec<String>) -> Result<(), StoreError> {
        let (requests, _) = read::request_entries(&self.layout)?;
        if requests.is_empty() {
            return Ok(());
        }
        let (entries, _) = read::my_entries(&self.layout)?;
        for r in &requests {
            let id = file_name(&r.dir);
            let installed = entries.iter().find(|c| {
                c.key == KeyStatus::Paired
                    && c.meta.local_request.as_deref() == Some(id.as_str())
                    && c.key_bits.as_deref() == Some(r.key_bits.as_slice())
            });
            if let Some(c) = installed {
                self.remove_request(&r.dir)?;
                log.push(format!(
                    "removed request {id}: its certificate {} is installed",
                    c.info.thumbprint
                ));
            }
        }
        Ok(())
    }

    /// Removes a work-in-progress folder, unless it holds a readable key found
    /// nowhere else in the store: that one goes to `recovered/`.
    fn drop_or_keep(
        &self,
        dir: &Path,
        what: &str,
        log: &mut Vec<String>,
    ) -> Result<(), StoreError> {
        let key = read_optional(&layout::key_file(dir))
            .ok()
            .flatten()
            .and_then(|k| pem::key_public_bits(&k).ok());
        match key {
            Some(bits) if !self.key_elsewhere(&bits)? => {
                let dest = self.keep_recovered(dir)?;
                log.push(format!(
                    "kept {what} in {}: it holds the only copy of a private key",
                    dest.display()
                ));
            }
            _ => {
                self.remove_folder(dir)?;
                log.push(format!(
                    "removed {what} ({}): nothing in it is lost",
                    dir.display()
                ));
            }
        }
        Ok(())
    }

    /// Whether a key with these public key bits is in an entry of `my/`,
    /// `request/`, `archive/`, `archive/requests/` or `recovered/`.
    fn key_elsewhere(&self, bits: &[u8]) -> Result<bool, StoreError> {
        for parent in [
            self.layout.my(),
            self.layout.request(),
            self.layout.archive(),
            self.layout.archived_requests(),
            self.layout.recovered(),
        ] {
            for e in list_or_empty(&parent)? {
                if !e.is_dir || layout::is_hidden(&e.name) {
                    continue;
                }
                let found = read_optional(&layout::key_file(&e.path))
                    .ok()
                    .flatten()
                    .and_then(|k| pem::key_public_bits(&k).ok())
                    .is_some_and(|b| b == bits);
                if found {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }
}

/// The entries of a folder; none if it does not exist.
fn list_or_empty(dir: &Path) -> Result<Vec<Listed>, StoreError> {
    match layout::list(dir) {
        Ok(l) => Ok(l),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io_err("read folder", dir)(e)),
    }
}

/// The folders of `dir` whose names start with `prefix` (work in progress).
fn hidden_dirs(dir: &Path, prefix: &str) -> Result<Vec<Listed>, StoreError> {
    Ok(list_or_empty(dir)?
        .into_iter()
        .filter(|e| e.is_dir && e.name.starts_with(prefix))
        .collect())
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
