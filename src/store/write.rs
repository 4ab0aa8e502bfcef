//! The store's changes: installing and archiving certificates, the life of a
//! request, the trust folders.
//!
//! Each operation is ordered so that a crash at any point leaves either the
//! old state, the new state, or work in progress that [`Store::recover`]
//! finishes or drops without losing a key or a certificate:
//!
//! - **install**: `my/.partial-<t>-<r>/` gets meta.toml, cert.pem, then
//!   key.pem (each fsynced: a readable key means a complete folder), the
//!   folder is fsynced, renamed to `my/<t>/`, and `my/` fsynced.
//! - **archive**: the reason is first written into the entry's meta.toml (an
//!   intent recovery finishes), then the folder is renamed into `archive/` and
//!   both folders are fsynced.
//! - **create_request**: like install, in `request/.partial-<id>/`.
//! - **complete_request**: install (meta.toml records the request id and
//!   the certificate it replaces), archive the replaced certificate, then
//!   rename the request folder to `request/.done-…` and delete it: the key is
//!   in `my/` before its request copy goes.
//! - **abandon_request**: intent in meta.toml, rename to `archive/requests/`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use time::OffsetDateTime;
use time::macros::format_description;

use crate::pki::CertificateInfo;

use super::Store;
use super::error::{StoreError, io_err};
use super::fsutil::{FILE_MODE, KEY_MODE, Links};
use super::layout::{self, TrustKind};
use super::lock::StoreLock;
use super::meta::{self, EntryMeta, RequestMeta};
use super::pem;
use super::read::{self, CertEntry, Read, read_optional};
use super::types::{CertificateMeta, HeldCertificate, HeldFiles, KeyStatus, PendingRequest};

/// What [`Store::write_trust`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustChange {
    /// Thumbprints written that were not there before.
    pub added: Vec<String>,
    /// Thumbprints removed (no longer published).
    pub removed: Vec<String>,
}

impl TrustChange {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

impl Store {
    /// Installs a certificate with its private key (PEM) as `my/<thumbprint>/`
    /// and returns the thumbprint. Refuses a certificate that is not DER
    /// X.509, a key that cannot be read, or a key that is not the
    /// certificate's. Installing a certificate already present with its key
    /// does nothing; one present without its key is archived first.
    ///
    /// The key is durable in the store only once this returns Ok: a caller
    /// whose key exists nowhere else should go through
    /// [`Store::create_request`] / [`Store::complete_request`] instead.
    pub fn install(
        &self,
        lock: &StoreLock,
        cert_der: &[u8],
        key_pem: &[u8],
        meta: &CertificateMeta,
    ) -> Result<String, StoreError> {
        const OP: &str = "install";
        self.check_lock(lock, OP)?;
        let my = self.layout.my();
        let (der, info) = parse_certificate(OP, &my, cert_der)?;
        match pem::key_matches(&info.public_key, key_pem) {
            Ok(true) => {}
            Ok(false) => {
                return Err(StoreError::Refused {
                    operation: OP,
                    path: my,
                    problem: format!(
                        "certificate {} was not issued for the key given",
                        info.thumbprint
                    ),
                });
            }
            Err(problem) => {
                return Err(StoreError::Refused {
                    operation: OP,
                    path: my,
                    problem: format!("the key given cannot be read: {problem}"),
                });
            }
        }
        let now = meta.installed_at.unwrap_or_else(OffsetDateTime::now_utc);
        self.install_entry(
            &info,
            &der,
            key_pem,
            &EntryMeta::from_certificate_meta(meta),
            now,
        )
    }

    /// Moves the certificate with this thumbprint from `my/` to
    /// `archive/<thumbprint>/` (a suffix `-2`, `-3`, … if that exists),
    /// recording why and when in its meta.toml. Never deletes. Archiving a
    /// certificate already archived does nothing. Refuses foreign certificates.
    pub fn archive(
        &self,
        lock: &StoreLock,
        thumbprint: &str,
        why: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        const OP: &str = "archive";
        self.check_lock(lock, OP)?;
        let thumbprint = thumbprint.to_ascii_lowercase();
        match read::find_certificate(&self.layout, &thumbprint)? {
            Some(entry) if entry.is_foreign() => Err(StoreError::Foreign {
                operation: OP,
                thumbprint,
                path: entry.dir,
            }),
            Some(entry) => self.move_to_archive(&entry, why, now).map(|_| ()),
            None if layout::is_entry_name(&thumbprint)
                && layout::holds_name(&self.layout.archive(), &thumbprint) =>
            {
                Ok(())
            }
            None => Err(StoreError::NotFound {
                operation: OP,
                path: self.layout.my().join(&thumbprint),
            }),
        }
    }

    /// Writes a new request (its key, the request as sent, and metadata) to
    /// `request/<id>/` before anything is sent, so that the key exists on disk
    /// whatever happens next. `replaces`: thumbprint of the certificate it
    /// renews or replaces (archived by [`Store::complete_request`]).
    pub fn create_request(
        &self,
        lock: &StoreLock,
        template: &str,
        key_pem: &[u8],
        request_der: &[u8],
        replaces: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<PendingRequest, StoreError> {
        self.create_request_for(lock, template, None, key_pem, request_der, replaces, now)
    }

    /// [`Store::create_request`] for a SCEP profile: `request.der` is the
    /// pkiMessage sent, `state` what polling it needs (JSON, no secret).
    #[allow(clippy::too_many_arguments)]
    pub fn create_scep_request(
        &self,
        lock: &StoreLock,
        profile: &str,
        state: &str,
        key_pem: &[u8],
        message: &[u8],
        replaces: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<PendingRequest, StoreError> {
        self.create_request_for(lock, profile, Some(state), key_pem, message, replaces, now)
    }

    #[allow(clippy::too_many_arguments)]
    fn create_request_for(
        &self,
        lock: &StoreLock,
        template: &str,
        scep_state: Option<&str>,
        key_pem: &[u8],
        request_der: &[u8],
        replaces: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<PendingRequest, StoreError> {
        const OP: &str = "create request";
        self.check_lock(lock, OP)?;
        let requests = self.layout.request();
        let refuse = |problem: String| StoreError::Refused {
            operation: OP,
            path: requests.clone(),
            problem,
        };
        if template.is_empty() {
            return Err(refuse("no template name".into()));
        }
        if request_der.is_empty() {
            return Err(refuse("the request is empty".into()));
        }
        pem::key_public_bits(key_pem)
            .map_err(|p| refuse(format!("the key cannot be read: {p}")))?;

        let stamp = now
            .to_offset(time::UtcOffset::UTC)
            .format(format_description!(
                "[year][month][day]T[hour][minute][second]Z"
            ))
            .unwrap_or_default();
        let id = format!("{stamp}-{}", &layout::random_hex()[..8]);
        let meta = RequestMeta {
            template: template.to_string(),
            created_at: now,
            ca: None,
            ca_request_id: None,
            last_poll: None,
            replaces: replaces.map(str::to_ascii_lowercase),
            abandoned_at: None,
            abandoned_why: None,
            scep_profile: scep_state.map(|_| template.to_string()),
            scep_state: scep_state.map(str::to_string),
        };
        let partial = requests.join(format!("{}{id}", layout::PARTIAL));
        let meta_text = meta::to_text(&meta, &partial.join(layout::META))?;
        self.fs.create_dir(&partial)?;
        self.fs
            .write_new(&partial.join(layout::META), meta_text.as_bytes(), FILE_MODE)?;
        self.fs
            .write_new(&partial.join(layout::REQUEST_DER), request_der, FILE_MODE)?;
        // The key last: a readable key.pem means a complete folder.
        self.fs
            .write_new(&partial.join(layout::key_name(key_pem)), key_pem, KEY_MODE)?;
        self.fs.sync_dir(&partial)?;
        let dir = requests.join(&id);
        self.fs.rename(&partial, &dir)?;
        self.fs.sync_dir(&requests)?;
        Ok(meta.pending(&id, dir))
    }

    /// Records what the CA said about a request: the CA it was sent to, the
    /// CA's request ID, when it was last polled. None leaves a field as it is.
    pub fn update_request(
        &self,
        lock: &StoreLock,
        id: &str,
        ca: Option<&str>,
        ca_request_id: Option<&str>,
        last_poll: Option<OffsetDateTime>,
    ) -> Result<(), StoreError> {
        const OP: &str = "update request";
        self.check_lock(lock, OP)?;
        let dir = self.request_dir(OP, id)?;
        let path = dir.join(layout::META);
        let bytes = read_existing(OP, &path)?;
        meta::parse::<RequestMeta>(&bytes).map_err(|problem| StoreError::Corrupt {
            path: path.clone(),
            problem,
        })?;
        let mut updates = Vec::new();
        if let Some(ca) = ca {
            updates.push(("ca", ca.to_string()));
        }
        if let Some(r) = ca_request_id {
            updates.push(("ca_request_id", r.to_string()));
        }
        if let Some(t) = last_poll {
            updates.push(("last_poll", meta::time_text(t)));
        }
        if updates.is_empty() {
            return Ok(());
        }
        let text = meta::merge(&bytes, &updates).map_err(|problem| StoreError::Corrupt {
            path: path.clone(),
            problem,
        })?;
        self.fs.replace(&path, text.as_bytes(), FILE_MODE)
    }

    /// The private key (PEM) kept for a request.
    pub fn request_key(&self, id: &str) -> Result<Vec<u8>, StoreError> {
        let dir = self.request_dir("read request key", id)?;
        read_existing("read request key", &layout::key_file(&dir))
    }

    /// The certificate and private key of a held certificate, read again when
    /// they are used (a renewal signs with them), with the same rules as the
    /// snapshot: no symbolic link is followed, at the folder or at either
    /// file, and only regular files are read. A link planted at
    /// `my/<name>/key.pem` is refused ([`StoreError::Link`]) and what it points
    /// to is never read.
    pub fn held_files(&self, held: &HeldCertificate) -> Result<HeldFiles, StoreError> {
        const OPERATION: &str = "read held certificate";
        let dir = &held.path;
        if dir.parent() != Some(self.layout.my().as_path()) {
            return Err(StoreError::Refused {
                operation: OPERATION,
                path: self.layout.my(),
                problem: format!("{} is not an entry of my/", dir.display()),
            });
        }
        if layout::is_link(dir) {
            return Err(StoreError::Link { path: dir.clone() });
        }
        let key_pem = read_no_link(OPERATION, &layout::key_file(dir))?;
        let mut certificate = None;
        for name in layout::CERT_NAMES {
            match read_no_link(OPERATION, &dir.join(name)) {
                Ok(bytes) => {
                    certificate = Some((dir.join(name), bytes));
                    break;
                }
                Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let (path, bytes) = certificate.ok_or_else(|| StoreError::NotFound {
            operation: OPERATION,
            path: dir.join(layout::CERT),
        })?;
        let certificate = pem::certificate_der(&bytes)
            .map_err(|problem| StoreError::Corrupt { path, problem })?;
        Ok(HeldFiles {
            certificate,
            key_pem,
        })
    }

    /// The request (DER as sent to the CA) kept for a request: a request
    /// never sent, or sent before a crash, is sent again with these bytes.
    pub fn request_der(&self, id: &str) -> Result<Vec<u8>, StoreError> {
        let dir = self.request_dir("read request", id)?;
        read_existing("read request", &dir.join(layout::REQUEST_DER))
    }

    /// Installs the certificate the CA issued for a request, with the
    /// request's key, archives the certificate the request replaces (unless
    /// foreign), then removes the request folder; returns the thumbprint.
    /// Refuses a certificate whose public key is not the request key's.
    /// Completing a request already completed returns the thumbprint again.
    pub fn complete_request(
        &self,
        lock: &StoreLock,
        id: &str,
        cert_der: &[u8],
        meta: &CertificateMeta,
    ) -> Result<String, StoreError> {
        const OP: &str = "complete request";
        self.check_lock(lock, OP)?;
        let dir = self.request_dir(OP, id)?;
        let (der, info) = parse_certificate(OP, &dir, cert_der)?;
        let request = match read::read_request_dir(&dir) {
            Read::Ok(r) => r,
            Read::Gone => {
                // Completed before (a repeated call, or one a crash cut short).
                return match read::find_certificate(&self.layout, &info.thumbprint)? {
                    Some(c)
                        if c.key == KeyStatus::Paired
                            && c.meta.local_request.as_deref() == Some(id) =>
                    {
                        Ok(info.thumbprint)
                    }
                    _ => Err(StoreError::NotFound {
                        operation: OP,
                        path: dir,
                    }),
                };
            }
            Read::Bad(u) => {
                return Err(StoreError::Corrupt {
                    path: u.path,
                    problem: u.problem,
                });
            }
        };
        if request.meta.abandoned_at.is_some() {
            return Err(StoreError::Refused {
                operation: OP,
                path: dir,
                problem: "the request is being abandoned".into(),
            });
        }
        let key_path = layout::key_file(&dir);
        if pem::spki_bits(&info.public_key).as_deref() != Some(request.key_bits.as_slice()) {
            return Err(StoreError::KeyMismatch {
                operation: OP,
                thumbprint: info.thumbprint,
                key: key_path,
            });
        }
        let key_pem = read_existing(OP, &key_path)?;
        let mut entry_meta = EntryMeta::from_certificate_meta(meta);
        entry_meta.local_request = Some(id.to_string());
        entry_meta.replaces = request.meta.replaces.clone();
        if request.meta.scep_profile.is_some() {
            entry_meta.scep_profile = request.meta.scep_profile.clone();
        } else if entry_meta.template.is_none() {
            entry_meta.template = Some(request.meta.template.clone());
        }
        if entry_meta.ca.is_none() {
            entry_meta.ca = request.meta.ca.clone();
        }
        if entry_meta.request_id.is_none() {
            entry_meta.request_id = request.meta.ca_request_id.clone();
        }
        let now = meta.installed_at.unwrap_or_else(OffsetDateTime::now_utc);
        let thumbprint = self.install_entry(&info, &der, &key_pem, &entry_meta, now)?;
        if let Some(old) = &request.meta.replaces {
            self.supersede(old, &thumbprint, now)?;
        }
        self.remove_request(&dir)?;
        Ok(thumbprint)
    }

    /// Gives up a request (denied by the CA, or its template gone): moves
    /// `request/<id>/` to `archive/requests/<id>/` with why and when. Keys are
    /// never deleted. Abandoning a request already abandoned does nothing.
    pub fn abandon_request(
        &self,
        lock: &StoreLock,
        id: &str,
        why: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        const OP: &str = "abandon request";
        self.check_lock(lock, OP)?;
        let dir = self.request_dir(OP, id)?;
        if !layout::exists(&dir) {
            if layout::holds_name(&self.layout.archived_requests(), id) {
                return Ok(());
            }
            return Err(StoreError::NotFound {
                operation: OP,
                path: dir,
            });
        }
        let marked =
            matches!(read::read_request_dir(&dir), Read::Ok(r) if r.meta.abandoned_at.is_some());
        if !marked {
            self.mark(
                &dir,
                &[
                    ("abandoned_at", meta::time_text(now)),
                    ("abandoned_why", why.to_string()),
                ],
            )?;
        }
        self.move_request_to_archive(&dir, id)
    }

    /// Makes `trust/<kind>/` hold exactly these certificates (DER), one
    /// `<thumbprint>.pem` each. Files of other names are left alone. All
    /// certificates are parsed before anything is written.
    pub fn write_trust(
        &self,
        lock: &StoreLock,
        kind: TrustKind,
        certs: &[Vec<u8>],
    ) -> Result<TrustChange, StoreError> {
        const OP: &str = "write trust";
        self.check_lock(lock, OP)?;
        let dir = self.layout.trust_kind(kind);
        let mut wanted = BTreeMap::new();
        for (i, der) in certs.iter().enumerate() {
            let info = CertificateInfo::from_der(der).map_err(|e| StoreError::Refused {
                operation: OP,
                path: dir.clone(),
                problem: format!("certificate {} of {}: {e}", i + 1, certs.len()),
            })?;
            wanted.insert(info.thumbprint, pem::encode("CERTIFICATE", der));
        }
        self.fs.ensure_dir(&dir, Links::Refuse)?;
        let mut present = BTreeSet::new();
        for e in layout::list(&dir).map_err(io_err("read folder", &dir))? {
            let Some(thumbprint) = e
                .name
                .strip_suffix(".pem")
                .filter(|t| layout::is_thumbprint(t))
            else {
                continue;
            };
            if e.is_link {
                // Neither read, replaced nor removed: someone else made it.
                return Err(StoreError::Link { path: e.path });
            }
            if e.is_file {
                present.insert(thumbprint.to_string());
            }
        }
        let mut change = TrustChange::default();
        for (thumbprint, text) in &wanted {
            let path = dir.join(format!("{thumbprint}.pem"));
            let current = read_optional(&path).map_err(|problem| StoreError::Corrupt {
                path: path.clone(),
                problem,
            })?;
            if current.as_deref() != Some(text.as_bytes()) {
                self.fs.replace(&path, text.as_bytes(), FILE_MODE)?;
            }
            if !present.contains(thumbprint) {
                change.added.push(thumbprint.clone());
            }
        }
        for thumbprint in present.iter().filter(|t| !wanted.contains_key(*t)) {
            self.fs
                .remove_file(&dir.join(format!("{thumbprint}.pem")))?;
            change.removed.push(thumbprint.clone());
        }
        if !change.removed.is_empty() {
            self.fs.sync_dir(&dir)?;
        }
        Ok(change)
    }

    // ----- building blocks, shared with recovery -----

    /// `request/<id>` after checking that `id` names a folder.
    /// A link there is refused: every file of the request would be read or
    /// changed through it.
    fn request_dir(&self, operation: &'static str, id: &str) -> Result<PathBuf, StoreError> {
        if layout::is_entry_name(id) {
            let dir = self.layout.request().join(id);
            if layout::is_link(&dir) {
                return Err(StoreError::Link { path: dir });
            }
            Ok(dir)
        } else {
            Err(StoreError::Refused {
                operation,
                path: self.layout.request(),
                problem: format!("{id:?} is not a request id"),
            })
        }
    }

    /// Installs certificate + key as `my/<thumbprint>/` (see the module doc
    /// for the order of steps). Present with its key: nothing to do; present
    /// without: that entry is archived first.
    pub(crate) fn install_entry(
        &self,
        info: &CertificateInfo,
        der: &[u8],
        key_pem: &[u8],
        entry_meta: &EntryMeta,
        now: OffsetDateTime,
    ) -> Result<String, StoreError> {
        let my = self.layout.my();
        let thumbprint = info.thumbprint.clone();
        if let Some(existing) = read::find_certificate(&self.layout, &thumbprint)? {
            if existing.key == KeyStatus::Paired && existing.meta.archived_at.is_none() {
                return Ok(thumbprint);
            }
            self.move_to_archive(
                &existing,
                "set aside by a new install of the same certificate with its key",
                now,
            )?;
        }
        let partial = my.join(format!(
            "{}{thumbprint}-{}",
            layout::PARTIAL,
            layout::random_hex()
        ));
        let meta_text = meta::to_text(entry_meta, &partial.join(layout::META))?;
        self.fs.create_dir(&partial)?;
        self.fs
            .write_new(&partial.join(layout::META), meta_text.as_bytes(), FILE_MODE)?;
        self.fs.write_new(
            &partial.join(layout::CERT),
            pem::encode("CERTIFICATE", der).as_bytes(),
            FILE_MODE,
        )?;
        // The key last: a readable key.pem means a complete folder.
        self.fs
            .write_new(&partial.join(layout::key_name(key_pem)), key_pem, KEY_MODE)?;
        self.fs.sync_dir(&partial)?;
        self.fs
            .rename(&partial, &layout::free_name(&my, &thumbprint))?;
        self.fs.sync_dir(&my)?;
        Ok(thumbprint)
    }

    /// Moves a `my/` entry to `archive/`: intent in meta.toml (unless already
    /// there), rename, fsync of both folders. Returns the new folder.
    pub(crate) fn move_to_archive(
        &self,
        entry: &CertEntry,
        why: &str,
        now: OffsetDateTime,
    ) -> Result<PathBuf, StoreError> {
        if entry.meta.archived_at.is_none() {
            self.mark(
                &entry.dir,
                &[
                    ("archived_at", meta::time_text(now)),
                    ("archived_why", why.to_string()),
                ],
            )?;
        }
        let archive = self.layout.archive();
        let dest = layout::free_name(&archive, &entry.info.thumbprint);
        self.fs.rename(&entry.dir, &dest)?;
        self.fs.sync_dir(&archive)?;
        self.fs.sync_dir(parent(&entry.dir))?;
        Ok(dest)
    }

    /// Archives the certificate `old` because `new` replaces it, unless it is
    /// gone already or foreign.
    pub(crate) fn supersede(
        &self,
        old: &str,
        new: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        if old == new {
            return Ok(false);
        }
        match read::find_certificate(&self.layout, old)? {
            Some(entry) if !entry.is_foreign() => {
                self.move_to_archive(&entry, &format!("superseded by {new}"), now)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Moves `request/<id>/` (already marked abandoned) to `archive/requests/`.
    pub(crate) fn move_request_to_archive(&self, dir: &Path, id: &str) -> Result<(), StoreError> {
        let archived = self.layout.archived_requests();
        self.fs.ensure_dir(&archived, Links::Refuse)?;
        let dest = layout::free_name(&archived, id);
        self.fs.rename(dir, &dest)?;
        self.fs.sync_dir(&archived)?;
        self.fs.sync_dir(parent(dir))
    }

    /// Removes a request folder whose key is installed in `my/`: renamed to
    /// `request/.done-…` first (so that it no longer reads as pending), then
    /// its files deleted, the key last.
    pub(crate) fn remove_request(&self, dir: &Path) -> Result<(), StoreError> {
        let requests = parent(dir);
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let done = requests.join(format!("{}{name}-{}", layout::DONE, layout::random_hex()));
        self.fs.rename(dir, &done)?;
        self.fs.sync_dir(requests)?;
        self.remove_folder(&done)
    }

    /// Deletes a folder of files, `key.pem` last. A folder holding anything
    /// but regular files (sub-folders, links, FIFOs) is moved to
    /// `recovered/` instead: not the store's shape. A link in place of the
    /// folder is refused: its target's files would be deleted.
    pub(crate) fn remove_folder(&self, dir: &Path) -> Result<(), StoreError> {
        if layout::is_link(dir) {
            return Err(StoreError::Link {
                path: dir.to_path_buf(),
            });
        }
        let list = layout::list(dir).map_err(io_err("read folder", dir))?;
        if list.iter().any(|e| !e.is_file) {
            self.keep_recovered(dir)?;
            return Ok(());
        }
        let (keys, others): (Vec<_>, Vec<_>) =
            list.into_iter().partition(|e| layout::is_key_name(&e.name));
        for e in others.into_iter().chain(keys) {
            self.fs.remove_file(&e.path)?;
        }
        self.fs.remove_dir(dir)
    }

    /// Moves a folder to `recovered/<name>` for a person to look at.
    pub(crate) fn keep_recovered(&self, dir: &Path) -> Result<PathBuf, StoreError> {
        let recovered = self.layout.recovered();
        self.fs.ensure_dir(&recovered, Links::Refuse)?;
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().trim_start_matches('.').to_string())
            .unwrap_or_default();
        let dest = layout::free_name(&recovered, &name);
        self.fs.rename(dir, &dest)?;
        self.fs.sync_dir(&recovered)?;
        self.fs.sync_dir(parent(dir))?;
        Ok(dest)
    }

    /// Sets keys in an entry's meta.toml (atomically). A meta.toml that is not
    /// TOML is kept as `meta.toml.unreadable` and a new one started.
    fn mark(&self, dir: &Path, updates: &[(&str, String)]) -> Result<(), StoreError> {
        let path = dir.join(layout::META);
        let existing = read_optional(&path).map_err(|problem| StoreError::Corrupt {
            path: path.clone(),
            problem,
        })?;
        let text = match existing {
            Some(bytes) => match meta::merge(&bytes, updates) {
                Ok(text) => text,
                Err(_) => {
                    self.fs
                        .replace(&dir.join("meta.toml.unreadable"), &bytes, FILE_MODE)?;
                    fresh(updates, &path)?
                }
            },
            None => fresh(updates, &path)?,
        };
        self.fs.replace(&path, text.as_bytes(), FILE_MODE)
    }
}

/// A meta.toml holding only `updates`.
fn fresh(updates: &[(&str, String)], path: &Path) -> Result<String, StoreError> {
    meta::merge(b"", updates).map_err(|problem| StoreError::Corrupt {
        path: path.to_path_buf(),
        problem,
    })
}

/// The parent folder (the store root for a top-level path).
fn parent(p: &Path) -> &Path {
    p.parent().unwrap_or(p)
}

/// Reads a file that must exist: NotFound if it does not.
/// Never follows a link at `path` (see [`super::fsutil::read_regular`]).
fn read_existing(operation: &'static str, path: &Path) -> Result<Vec<u8>, StoreError> {
    match super::fsutil::read_regular(path) {
        Ok(b) => Ok(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::NotFound {
            operation,
            path: path.to_path_buf(),
        }),
        Err(e) => Err(io_err("read", path)(e)),
    }
}

/// Like [`read_existing`], with a symbolic link at `path` reported as
/// [`StoreError::Link`] (the open refuses it; its target is not read).
fn read_no_link(operation: &'static str, path: &Path) -> Result<Vec<u8>, StoreError> {
    read_existing(operation, path).map_err(|e| match e {
        StoreError::Io { .. } if layout::is_link(path) => StoreError::Link {
            path: path.to_path_buf(),
        },
        other => other,
    })
}

/// Parses the certificate given to an operation (DER, or PEM for good measure).
fn parse_certificate(
    operation: &'static str,
    path: &Path,
    bytes: &[u8],
) -> Result<(Vec<u8>, CertificateInfo), StoreError> {
    let refuse = |problem: String| StoreError::Refused {
        operation,
        path: path.to_path_buf(),
        problem,
    };
    let der = pem::certificate_der(bytes).map_err(|p| refuse(format!("the certificate: {p}")))?;
    let info =
        CertificateInfo::from_der(&der).map_err(|e| refuse(format!("the certificate: {e}")))?;
    Ok((der, info))
}
