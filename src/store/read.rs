//! Reading the store: entries of `my/` and `request/`, and the snapshot the
//! planner and `status` work from.
//!
//! Reading never changes anything and never fails because of one bad entry:
//! what cannot be read is reported in [`StoreSnapshot::unparseable`] with its
//! problem and left in place. Only an I/O error on the store's own folders
//! fails a read. Reading takes no lock, so an entry may vanish while being
//! read (a writer moved it): it is then skipped.

use std::io;
use std::path::{Path, PathBuf};

use crate::pki::CertificateInfo;

use super::error::{StoreError, io_err};
use super::fsutil;
use super::layout::{self, Layout};
use super::meta::{self, EntryMeta, RequestMeta};
use super::pem;
use super::types::{HeldCertificate, KeyStatus, PendingRequest, StoreSnapshot, Unparseable};

/// The outcome of reading one entry.
#[derive(Debug)]
pub(crate) enum Read<T> {
    Ok(T),
    /// Reported, left in place.
    Bad(Unparseable),
    /// The folder disappeared while being read.
    Gone,
}

/// A certificate folder (`my/<name>/`, or one being assembled) as read from disk.
#[derive(Debug)]
pub(crate) struct CertEntry {
    pub dir: PathBuf,
    pub info: CertificateInfo,
    pub key: KeyStatus,
    /// The public key bits of `key.pem`, when it could be read.
    pub key_bits: Option<Vec<u8>>,
    /// Why `key.pem` could not be read, when it exists but could not.
    pub key_problem: Option<String>,
    /// `meta.toml`, or the default when it is absent or unreadable.
    pub meta: EntryMeta,
    /// Why `meta.toml` could not be read, when it exists but could not.
    pub meta_problem: Option<String>,
}

impl CertEntry {
    /// Whether the certificate carries no template extension and was not
    /// enrolled for a SCEP profile (never touched).
    pub fn is_foreign(&self) -> bool {
        self.info.template.is_none() && self.meta.scep_profile.is_none()
    }
}

/// A request folder (`request/<id>/`, or one being assembled) as read from disk.
#[derive(Debug)]
pub(crate) struct RequestEntry {
    pub dir: PathBuf,
    pub meta: RequestMeta,
    pub key_bits: Vec<u8>,
}

/// Reads a regular file without following a link at it; Ok(None) if it does
/// not exist. The problem names what the path is (a link, a FIFO, ...) or the
/// I/O error, never the content.
pub(crate) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, String> {
    match fsutil::read_regular(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => Err(e.to_string()),
        Err(e) => Err(format!("cannot read: {e}")),
    }
}

/// An entry of `my/` or `request/` that is a symbolic link: reported, never read.
fn link_entry(path: PathBuf) -> Unparseable {
    Unparseable {
        path,
        problem: fsutil::LINK_PROBLEM.into(),
    }
}

fn bad<T>(path: PathBuf, problem: impl Into<String>) -> Read<T> {
    Read::Bad(Unparseable {
        path,
        problem: problem.into(),
    })
}

/// Reads a certificate folder: the certificate (any of [`layout::CERT_NAMES`],
/// PEM or DER), its key and its metadata.
pub(crate) fn read_cert_dir(dir: &Path) -> Read<CertEntry> {
    if layout::is_link(dir) {
        return Read::Bad(link_entry(dir.to_path_buf()));
    }
    let mut found = None;
    for name in layout::CERT_NAMES {
        let path = dir.join(name);
        match read_optional(&path) {
            Ok(Some(bytes)) => {
                found = Some((path, bytes));
                break;
            }
            Ok(None) => {}
            Err(problem) => return bad(path, problem),
        }
    }
    let Some((cert_path, bytes)) = found else {
        if !layout::is_real_dir(dir) {
            return Read::Gone;
        }
        return bad(
            dir.to_path_buf(),
            format!(
                "no certificate in this folder (looked for {})",
                layout::CERT_NAMES.join(", ")
            ),
        );
    };
    let der = match pem::certificate_der(&bytes) {
        Ok(der) => der,
        Err(problem) => return bad(cert_path, problem),
    };
    let info = match CertificateInfo::from_der(&der) {
        Ok(info) => info,
        Err(e) => return bad(cert_path, e.to_string()),
    };

    let key_path = layout::key_file(dir);
    let (key, key_bits, key_problem) = match read_optional(&key_path) {
        Ok(None) => (KeyStatus::Missing, None, None),
        Ok(Some(k)) => match pem::key_public_bits(&k) {
            Ok(bits) => {
                let paired = pem::spki_bits(&info.public_key).is_some_and(|c| c == bits);
                let status = if paired {
                    KeyStatus::Paired
                } else {
                    KeyStatus::Mismatch
                };
                (status, Some(bits), None)
            }
            Err(p) => (KeyStatus::Mismatch, None, Some(p)),
        },
        Err(p) => (KeyStatus::Mismatch, None, Some(p)),
    };

    let meta_path = dir.join(layout::META);
    let (meta, meta_problem) = match read_optional(&meta_path) {
        Ok(None) => (EntryMeta::default(), None),
        Ok(Some(b)) => match meta::parse::<EntryMeta>(&b) {
            Ok(m) => (m, None),
            Err(p) => (EntryMeta::default(), Some(p)),
        },
        Err(p) => (EntryMeta::default(), Some(p)),
    };

    Read::Ok(CertEntry {
        dir: dir.to_path_buf(),
        info,
        key,
        key_bits,
        key_problem,
        meta,
        meta_problem,
    })
}

/// Reads a request folder: its metadata and key must both be readable.
pub(crate) fn read_request_dir(dir: &Path) -> Read<RequestEntry> {
    if layout::is_link(dir) {
        return Read::Bad(link_entry(dir.to_path_buf()));
    }
    let meta_path = dir.join(layout::META);
    let meta = match read_optional(&meta_path) {
        Ok(Some(b)) => match meta::parse::<RequestMeta>(&b) {
            Ok(m) => m,
            Err(p) => return bad(meta_path, p),
        },
        Ok(None) if !layout::is_real_dir(dir) => return Read::Gone,
        Ok(None) => return bad(dir.to_path_buf(), "request folder without meta.toml"),
        Err(p) => return bad(meta_path, p),
    };
    let key_path = layout::key_file(dir);
    let key_bits = match read_optional(&key_path) {
        Ok(Some(k)) => match pem::key_public_bits(&k) {
            Ok(bits) => bits,
            Err(p) => return bad(key_path, p),
        },
        Ok(None) if !layout::is_real_dir(dir) => return Read::Gone,
        Ok(None) => {
            return bad(
                key_path,
                "request without its key: it can never be completed; remove the folder by hand",
            );
        }
        Err(p) => return bad(key_path, p),
    };
    Read::Ok(RequestEntry {
        dir: dir.to_path_buf(),
        meta,
        key_bits,
    })
}

/// The readable certificate entries of `my/` (work in progress skipped),
/// with the unreadable ones apart.
pub(crate) fn my_entries(
    layout: &Layout,
) -> Result<(Vec<CertEntry>, Vec<Unparseable>), StoreError> {
    let my = layout.my();
    let mut good = Vec::new();
    let mut unparseable = Vec::new();
    for e in layout::list(&my).map_err(io_err("read folder", &my))? {
        // Before the work-in-progress test: a link is reported whatever its name.
        if e.is_link {
            unparseable.push(link_entry(e.path));
            continue;
        }
        if layout::is_hidden(&e.name) {
            continue;
        }
        if !e.is_dir {
            unparseable.push(Unparseable {
                path: e.path,
                problem: "a file directly in my/: certificates go in a folder, my/<name>/cert.pem"
                    .into(),
            });
            continue;
        }
        match read_cert_dir(&e.path) {
            Read::Ok(c) => good.push(c),
            Read::Bad(u) => unparseable.push(u),
            Read::Gone => {}
        }
    }
    Ok((good, unparseable))
}

/// The readable request entries of `request/` (work in progress skipped),
/// with the unreadable ones apart.
pub(crate) fn request_entries(
    layout: &Layout,
) -> Result<(Vec<RequestEntry>, Vec<Unparseable>), StoreError> {
    let dir = layout.request();
    let mut good = Vec::new();
    let mut unparseable = Vec::new();
    for e in layout::list(&dir).map_err(io_err("read folder", &dir))? {
        if e.is_link {
            unparseable.push(link_entry(e.path));
            continue;
        }
        if layout::is_hidden(&e.name) {
            continue;
        }
        if !e.is_dir {
            unparseable.push(Unparseable {
                path: e.path,
                problem: "a file directly in request/: not a request folder".into(),
            });
            continue;
        }
        match read_request_dir(&e.path) {
            Read::Ok(r) => good.push(r),
            Read::Bad(u) => unparseable.push(u),
            Read::Gone => {}
        }
    }
    Ok((good, unparseable))
}

/// The `my/` entry holding the certificate with this thumbprint, if any:
/// `my/<thumbprint>/` first, else any folder (copied in by hand) holding it.
pub(crate) fn find_certificate(
    layout: &Layout,
    thumbprint: &str,
) -> Result<Option<CertEntry>, StoreError> {
    if layout::is_entry_name(thumbprint)
        && let Read::Ok(c) = read_cert_dir(&layout.my().join(thumbprint))
        && c.info.thumbprint == thumbprint
    {
        return Ok(Some(c));
    }
    let (entries, _) = my_entries(layout)?;
    Ok(entries
        .into_iter()
        .find(|c| c.info.thumbprint == thumbprint))
}

/// Number of archived certificates (folders of `archive/` other than
/// `archive/requests/`).
fn count_archived(layout: &Layout) -> Result<usize, StoreError> {
    let dir = layout.archive();
    Ok(layout::list(&dir)
        .map_err(io_err("read folder", &dir))?
        .iter()
        .filter(|e| e.is_dir && !layout::is_hidden(&e.name) && e.name != layout::ARCHIVED_REQUESTS)
        .count())
}

/// Everything in `recovered/`, reported so that a person looks at it.
fn recovered_entries(layout: &Layout) -> Result<Vec<Unparseable>, StoreError> {
    let dir = layout.recovered();
    match layout::list(&dir) {
        Ok(list) => Ok(list
            .into_iter()
            .map(|e| Unparseable {
                path: e.path,
                problem: "kept by recovery after an interrupted write (it may hold the only copy \
                          of a private key); inspect it and remove it by hand"
                    .into(),
            })
            .collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io_err("read folder", &dir)(e)),
    }
}

/// The whole store at one moment (see [`super::Store::snapshot`]).
pub(crate) fn snapshot(layout: &Layout) -> Result<StoreSnapshot, StoreError> {
    let (certs, mut unparseable) = my_entries(layout)?;
    let mut archived = count_archived(layout)?;
    let mut certificates = Vec::new();
    for c in certs {
        if c.meta.archived_at.is_some() {
            // Being moved to archive/ (recovery finishes the move).
            archived += 1;
            continue;
        }
        if let Some(problem) = &c.key_problem {
            unparseable.push(Unparseable {
                path: layout::key_file(&c.dir),
                problem: problem.clone(),
            });
        }
        if let Some(problem) = &c.meta_problem {
            unparseable.push(Unparseable {
                path: c.dir.join(layout::META),
                problem: problem.clone(),
            });
        }
        certificates.push(HeldCertificate {
            meta: c.meta.certificate_meta(),
            info: c.info,
            key: c.key,
            path: c.dir,
        });
    }

    let (requests, bad_requests) = request_entries(layout)?;
    unparseable.extend(bad_requests);
    let mut pending: Vec<PendingRequest> = requests
        .into_iter()
        .filter(|r| r.meta.abandoned_at.is_none())
        .filter_map(|r| {
            let id = r.dir.file_name()?.to_string_lossy().into_owned();
            Some(r.meta.pending(&id, r.dir))
        })
        .collect();
    pending.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));

    unparseable.extend(recovered_entries(layout)?);
    unparseable.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(StoreSnapshot {
        certificates,
        pending,
        unparseable,
        archived,
    })
}
