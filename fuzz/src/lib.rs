//! Shared pieces of the fuzz targets: the record format that carries several
//! values in one input (the attributes of a directory entry), and a scratch
//! store the store targets write their input into.
//!
//! Record format: `[tag: u8][length: u16 little-endian][value: length bytes]`,
//! repeated. A record whose length runs past the end takes what is left, so
//! every input decodes to something and the fuzzer never wastes runs on
//! framing errors. Seeds are written with [`encode_records`].

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use autoenroll::directory::entry::Entry;
use autoenroll::store::{Store, StoreLock};

/// The attributes the snapshot reads from template and enrollment service
/// entries (`directory::snapshot`), indexed by a record's tag modulo their count.
pub const ATTRIBUTES: &[&str] = &[
    "objectClass",
    "cn",
    "nTSecurityDescriptor",
    "displayName",
    "flags",
    "revision",
    "msPKI-Template-Minor-Revision",
    "msPKI-Template-Schema-Version",
    "msPKI-Cert-Template-OID",
    "pKIExpirationPeriod",
    "pKIOverlapPeriod",
    "pKIKeyUsage",
    "pKIExtendedKeyUsage",
    "pKIDefaultKeySpec",
    "pKIMaxIssuingDepth",
    "pKICriticalExtensions",
    "pKIDefaultCSPs",
    "msPKI-Minimal-Key-Size",
    "msPKI-RA-Signature",
    "msPKI-RA-Application-Policies",
    "msPKI-Supersede-Templates",
    "msPKI-Certificate-Policy",
    "msPKI-Certificate-Application-Policy",
    "msPKI-Enrollment-Flag",
    "msPKI-Private-Key-Flag",
    "msPKI-Certificate-Name-Flag",
    "msPKI-Enrollment-Servers",
    "dNSHostName",
    "certificateTemplates",
    "cACertificate",
];

/// Splits an input into (tag, value) records.
pub fn records(mut data: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    while let [tag, rest @ ..] = data {
        let (len, body) = match rest {
            [lo, hi, body @ ..] => (usize::from(u16::from_le_bytes([*lo, *hi])), body),
            _ => (rest.len(), rest),
        };
        let len = len.min(body.len());
        out.push((*tag, &body[..len]));
        data = &body[len..];
    }
    out
}

/// The input that [`records`] splits into `items` (values longer than
/// 65,535 bytes are cut).
pub fn encode_records(items: &[(u8, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (tag, value) in items {
        let len = value.len().min(usize::from(u16::MAX));
        out.push(*tag);
        out.extend_from_slice(&(len as u16).to_le_bytes());
        out.extend_from_slice(&value[..len]);
    }
    out
}

/// The tag of a name in [`ATTRIBUTES`] (for seeds).
pub fn attribute_tag(name: &str) -> Option<u8> {
    ATTRIBUTES
        .iter()
        .position(|a| a.eq_ignore_ascii_case(name))
        .map(|i| i as u8)
}

/// A directory entry with the attributes the records give, under `dn`.
pub fn entry_from_records(dn: &str, data: &[u8]) -> Entry {
    records(data)
        .into_iter()
        .fold(Entry::new(dn), |entry, (tag, value)| {
            let name = ATTRIBUTES[usize::from(tag) % ATTRIBUTES.len()];
            entry.with(name, [value.to_vec()])
        })
}

/// A store in a private scratch folder (on tmpfs when there is one), made
/// once per fuzzing process, with its writer lock held.
pub struct Scratch {
    pub root: PathBuf,
    pub lock: StoreLock,
}

impl Scratch {
    /// Empties the store (all but its lock file) and opens it again, which
    /// lays out its folders anew: every run starts from the same state.
    pub fn reset(&self) -> Store {
        if let Ok(list) = std::fs::read_dir(&self.root) {
            for e in list.flatten() {
                let p = e.path();
                if e.file_name() == "lock" {
                    continue;
                }
                let _ = if p.is_dir() && !p.is_symlink() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
            }
        }
        Store::open(&self.root).expect("open the scratch store")
    }
}

/// The process's scratch store.
pub fn scratch() -> &'static Scratch {
    static SCRATCH: OnceLock<Scratch> = OnceLock::new();
    SCRATCH.get_or_init(|| {
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let root = base.join(format!("autoenroll-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let store = Store::open(&root).expect("open the scratch store");
        let lock = store.lock().expect("lock the scratch store");
        Scratch { root, lock }
    })
}

/// Writes `bytes` at `path` (under the scratch root), creating its folder.
pub fn put(path: &Path, bytes: &[u8]) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("create a scratch folder");
    }
    std::fs::write(path, bytes).expect("write a scratch file");
}

/// A valid certificate and its key (P-256, self-signed), the neighbours of
/// a fuzzed file in a store entry, so that the reader gets past the first
/// file to the one under test.
pub struct Fixture {
    pub cert_pem: String,
    pub key_pem: String,
}

/// The process's fixture (made once).
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let key = rcgen::KeyPair::generate().expect("generate a key");
        let params = rcgen::CertificateParams::new(vec!["ws01.corp.example".to_string()])
            .expect("certificate parameters");
        let cert = params.self_signed(&key).expect("self-sign");
        Fixture {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    })
}

/// A `my/<template>/meta.toml` as the store writes it.
pub const ENTRY_META: &str = "template = \"Machine\"\nca = \"corp-CA\"\nrequest_id = \"7\"\n\
                              installed_at = \"2025-01-06T09:31:00Z\"\n";

/// A `request/<id>/meta.toml` as the store writes it.
pub const REQUEST_META: &str = "template = \"Machine\"\ncreated_at = \"2025-01-06T09:31:00Z\"\n\
                                ca = \"corp-CA\"\nca_request_id = \"8\"\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let items: Vec<(u8, &[u8])> = vec![(1, b"Machine"), (2, &[0, 1, 2]), (7, b"")];
        assert_eq!(records(&encode_records(&items)), items);
    }

    #[test]
    fn truncated_records_take_what_is_left() {
        assert_eq!(records(&[5, 10, 0, b'a', b'b']), vec![(5, &b"ab"[..])]);
        assert_eq!(records(&[5, 1]), vec![(5, &[1][..])]);
        assert_eq!(records(&[5]), vec![(5, &[][..])]);
    }
}
