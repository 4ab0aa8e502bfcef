//! Names and paths of the store on disk (DESIGN.md, "The local store on disk"):
//!
//! ```text
//! lock                      single-writer lock (flock)
//! my/<thumbprint>/          cert.pem, key.pem (0600) or key.ref (a key on a token), meta.toml
//! archive/<thumbprint>/     certificates taken out of my/, same files
//! archive/requests/<id>/    abandoned (denied) requests, keys kept
//! request/<id>/             in-flight and pending requests: key.pem or key.ref, request.der, meta.toml
//! trust/{roots,ntauth,intermediates}/<thumbprint>.pem
//! state.toml                the worker's memory between pulses (0600)
//! state.toml.unreadable     a state.toml that could not be parsed, set aside
//! directory-snapshot.json   the last directory snapshot a pulse read (0600), for `status` offline
//! recovered/<name>/         what recovery could neither finish nor drop (should stay empty)
//! ```
//!
//! Names starting with a dot are the store's work in progress and are never
//! read as entries: `.partial-…` (a folder being assembled), `.done-…` (a
//! request folder being removed), `.<file>.tmp-…` (a file being replaced).

use std::path::{Path, PathBuf};

pub(crate) const LOCK: &str = "lock";
pub(crate) const MY: &str = "my";
pub(crate) const ARCHIVE: &str = "archive";
/// Sub-folder of `archive/` for abandoned requests (cannot clash with a
/// thumbprint, which is 40 hex digits).
pub(crate) const ARCHIVED_REQUESTS: &str = "requests";
pub(crate) const REQUEST: &str = "request";
pub(crate) const TRUST: &str = "trust";
pub(crate) const RECOVERED: &str = "recovered";
pub(crate) const STATE: &str = "state.toml";
/// Where a `state.toml` that cannot be parsed is kept.
pub(crate) const STATE_UNREADABLE: &str = "state.toml.unreadable";
/// The last directory snapshot a pulse read (`directory::saved`).
pub(crate) const DIRECTORY_SNAPSHOT: &str = "directory-snapshot.json";

pub(crate) const CERT: &str = "cert.pem";
pub(crate) const KEY: &str = "key.pem";
/// In place of `key.pem` when the key lives on a PKCS#11 token: a
/// reference to it (`pki::keyref`), never the key.
pub(crate) const KEY_REF: &str = "key.ref";
pub(crate) const META: &str = "meta.toml";
pub(crate) const REQUEST_DER: &str = "request.der";

/// The key file of an entry or request folder: `key.ref` when there is one
/// (a key on a token), else `key.pem`.
pub(crate) fn key_file(dir: &Path) -> PathBuf {
    let reference = dir.join(KEY_REF);
    if std::fs::symlink_metadata(&reference).is_ok() {
        reference
    } else {
        dir.join(KEY)
    }
}

/// The name under which stored key bytes are written: `key.ref` for a
/// reference to a key on a token, `key.pem` for a key.
pub(crate) fn key_name(stored: &[u8]) -> &'static str {
    if crate::pki::keyref::KeyReference::is_reference(stored) {
        KEY_REF
    } else {
        KEY
    }
}

/// Whether a file name is an entry's key (`key.pem` or `key.ref`).
pub(crate) fn is_key_name(name: &str) -> bool {
    name == KEY || name == KEY_REF
}

/// Names under which a certificate copied in by hand is looked for, in order.
pub(crate) const CERT_NAMES: [&str; 4] = [CERT, "cert.crt", "cert.cer", "cert.der"];

pub(crate) const PARTIAL: &str = ".partial-";
pub(crate) const DONE: &str = ".done-";
const TMP: &str = ".tmp-";

/// Which trust store a certificate set is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrustKind {
    /// Trusted root CAs (the directory's Certification Authorities container).
    Roots,
    /// CAs trusted to issue logon certificates (the NTAuthCertificates object).
    NtAuth,
    /// Intermediate CAs (the AIA container).
    Intermediates,
}

impl TrustKind {
    /// All kinds, for iteration.
    pub const ALL: [TrustKind; 3] = [
        TrustKind::Roots,
        TrustKind::NtAuth,
        TrustKind::Intermediates,
    ];

    /// The folder name under `trust/`.
    pub fn dir_name(self) -> &'static str {
        match self {
            TrustKind::Roots => "roots",
            TrustKind::NtAuth => "ntauth",
            TrustKind::Intermediates => "intermediates",
        }
    }
}

impl std::fmt::Display for TrustKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.dir_name())
    }
}

/// The paths of one store.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn lock(&self) -> PathBuf {
        self.root.join(LOCK)
    }
    pub fn my(&self) -> PathBuf {
        self.root.join(MY)
    }
    pub fn archive(&self) -> PathBuf {
        self.root.join(ARCHIVE)
    }
    pub fn archived_requests(&self) -> PathBuf {
        self.archive().join(ARCHIVED_REQUESTS)
    }
    pub fn request(&self) -> PathBuf {
        self.root.join(REQUEST)
    }
    pub fn trust(&self) -> PathBuf {
        self.root.join(TRUST)
    }
    pub fn trust_kind(&self, kind: TrustKind) -> PathBuf {
        self.trust().join(kind.dir_name())
    }
    pub fn recovered(&self) -> PathBuf {
        self.root.join(RECOVERED)
    }
    pub fn state(&self) -> PathBuf {
        self.root.join(STATE)
    }

    /// Every folder `Store::open` creates.
    pub fn dirs(&self) -> Vec<PathBuf> {
        let mut v = vec![
            self.root.clone(),
            self.my(),
            self.archive(),
            self.archived_requests(),
            self.request(),
            self.trust(),
        ];
        v.extend(TrustKind::ALL.iter().map(|k| self.trust_kind(*k)));
        v
    }
}

/// Eight random bytes in hex, to make work-in-progress names unique.
pub(crate) fn random_hex() -> String {
    let mut b = [0u8; 8];
    if aws_lc_rs::rand::fill(&mut b).is_err() {
        // Uniqueness, not secrecy, is what matters here.
        let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
        b = (nanos as u64 ^ u64::from(std::process::id())).to_be_bytes();
    }
    crate::pki::template_ext::hex(&b)
}

/// `.<name>.tmp-<random>`: a file being written by [`super::fsutil::Fs::replace`].
pub(crate) fn temp_name(name: &str) -> String {
    format!(".{name}{TMP}{}", random_hex())
}

/// Whether a name is one of [`temp_name`]'s.
pub(crate) fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.contains(TMP)
}

/// Whether a name is work in progress (never read as an entry).
pub(crate) fn is_hidden(name: &str) -> bool {
    name.starts_with('.')
}

/// Whether `s` is a thumbprint as the store names entries: 40 lower-case hex digits.
pub(crate) fn is_thumbprint(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether `s` can name a folder of the store: not empty, no path separator,
/// not starting with a dot (work in progress, `.`, `..`).
pub(crate) fn is_entry_name(s: &str) -> bool {
    !s.is_empty() && !s.starts_with('.') && !s.contains('/') && !s.contains('\0')
}

/// A free name in `dir` for an entry called `name`: `name`, else `name-2`,
/// `name-3`, ... (archives never overwrite each other).
pub(crate) fn free_name(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if !exists(&first) {
        return first;
    }
    (2..)
        .map(|n| dir.join(format!("{name}-{n}")))
        .find(|p| !exists(p))
        .unwrap_or(first)
}

/// Whether `dir` already holds `name` or a suffixed copy of it (see [`free_name`]).
pub(crate) fn holds_name(dir: &Path, name: &str) -> bool {
    if exists(&dir.join(name)) {
        return true;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        e.file_name().to_str().is_some_and(|n| {
            n.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|suffix| {
                    !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit())
                })
        })
    })
}

/// `symlink_metadata` based existence (a dangling link still takes the name).
pub(crate) fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

/// One entry of a folder, typed without following symbolic links.
#[derive(Debug, Clone)]
pub(crate) struct Listed {
    pub path: PathBuf,
    /// The name (lossy if not UTF-8; `path` is exact).
    pub name: String,
    /// A folder (a link to one is not).
    pub is_dir: bool,
    /// A regular file (a link to one is not).
    pub is_file: bool,
    /// A symbolic link: never followed, never changed (see `fsutil`).
    pub is_link: bool,
}

/// The entries of `dir`, sorted by name. Types come from the folder entry
/// itself (`lstat`), so a link is reported as a link whatever it points to.
pub(crate) fn list(dir: &Path) -> std::io::Result<Vec<Listed>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let kind = match e.file_type() {
            Ok(kind) => kind,
            // Removed between the listing and the look.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err),
        };
        out.push(Listed {
            name: e.file_name().to_string_lossy().into_owned(),
            path: e.path(),
            is_dir: kind.is_dir(),
            is_file: kind.is_file(),
            is_link: kind.is_symlink(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Whether `path` is a symbolic link (`lstat`; false when it does not exist).
pub(crate) fn is_link(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// Whether `path` is a real folder (`lstat`: a link to a folder is not).
pub(crate) fn is_real_dir(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}
