//! Unit tests of the store: writes, layout, reading what people copy in by
//! hand, keys, state, lock, and the life of entries.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rcgen::{CertificateParams, CustomExtension, KeyPair};
use time::OffsetDateTime;
use time::macros::datetime;

use super::*;
use crate::pki::CertificateInfo;
use crate::pki::template_ext::{encode_template_information, encode_template_name};

const NOW: OffsetDateTime = datetime!(2026-05-01 12:00 UTC);

/// Which template extension a test certificate carries.
enum Ext {
    /// 1.3.6.1.4.1.311.21.7 (OID, major, minor).
    Info(&'static str, u32, u32),
    /// 1.3.6.1.4.1.311.20.2 as a BMPString (what Windows CAs write).
    NameBmp(&'static str),
    /// 1.3.6.1.4.1.311.20.2 as SEQUENCE { UTF8String } (one spec text).
    NameSeq(&'static str),
    /// None: a foreign certificate.
    None,
}

fn key() -> KeyPair {
    KeyPair::generate().expect("key")
}

fn cert(key: &KeyPair, ext: Ext) -> Vec<u8> {
    let mut params = CertificateParams::new(vec!["host.example.test".to_string()]).expect("params");
    let (oid, content): (&[u64], Vec<u8>) = match ext {
        Ext::Info(oid, major, minor) => (
            &[1, 3, 6, 1, 4, 1, 311, 21, 7],
            encode_template_information(oid, major, minor).expect("ext"),
        ),
        Ext::NameBmp(name) => (&[1, 3, 6, 1, 4, 1, 311, 20, 2], encode_template_name(name)),
        Ext::NameSeq(name) => {
            let mut utf8 = vec![0x0c, name.len() as u8];
            utf8.extend_from_slice(name.as_bytes());
            let mut seq = vec![0x30, utf8.len() as u8];
            seq.extend(utf8);
            (&[1, 3, 6, 1, 4, 1, 311, 20, 2], seq)
        }
        Ext::None => (&[], Vec::new()),
    };
    if !oid.is_empty() {
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(oid, content));
    }
    params.self_signed(key).expect("cert").der().to_vec()
}

fn machine_cert(key: &KeyPair) -> Vec<u8> {
    cert(key, Ext::Info("1.3.6.1.4.1.311.21.8.1.2.3", 100, 4))
}

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("store")).expect("open");
    (dir, store)
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).expect("metadata").permissions().mode() & 0o777
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn meta() -> CertificateMeta {
    CertificateMeta {
        template: Some("Machine".into()),
        ca: Some("Lab CA".into()),
        request_id: Some("17".into()),
        installed_at: Some(NOW),
        ..CertificateMeta::default()
    }
}

/// Copies a certificate into `my/<name>/` by hand.
fn hand_copy(
    store: &Store,
    name: &str,
    cert_file: &str,
    bytes: &[u8],
    key: Option<&[u8]>,
) -> PathBuf {
    let dir = store.root().join("my").join(name);
    fs::create_dir_all(&dir).expect("mkdir");
    fs::write(dir.join(cert_file), bytes).expect("write");
    if let Some(k) = key {
        fs::write(dir.join("key.pem"), k).expect("write key");
    }
    dir
}

#[test]
fn atomic_replace_swaps_content_and_leaves_no_temp_file() {
    let (_d, store) = open();
    let store = store.recording();
    let path = store.root().join("state.toml");
    store
        .fs
        .replace(&path, b"one", fsutil::FILE_MODE)
        .expect("write");
    store
        .fs
        .replace(&path, b"two", fsutil::KEY_MODE)
        .expect("replace");
    assert_eq!(fs::read(&path).expect("read"), b"two");
    assert_eq!(mode(&path), 0o600);
    let names: Vec<_> = files(store.root())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(names.is_empty(), "{names:?}");
    // One step per change: write, sync, rename, sync folder.
    assert_eq!(store.fault_log().len(), 8, "{:?}", store.fault_log());
}

#[test]
fn atomic_replace_crash_at_any_step_keeps_old_or_new_content() {
    for step in 1..=4 {
        let (_d, store) = open();
        let path = store.root().join("state.toml");
        store
            .fs
            .replace(&path, b"old content", fsutil::FILE_MODE)
            .expect("write");
        let root = store.root().to_path_buf();
        let crashing = Store::open(&root).expect("open").with_fault_at(step);
        let err = crashing
            .fs
            .replace(&path, b"new content", fsutil::FILE_MODE)
            .expect_err("fault");
        assert!(err.is_injected_fault(), "{err}");
        let content = fs::read(&path).expect("read");
        assert!(
            content == b"old content" || content == b"new content",
            "step {step}: {content:?}"
        );

        let store = Store::open(&root).expect("reopen");
        let lock = store.lock().expect("lock");
        store.recover(&lock).expect("recover");
        let temp: Vec<_> = files(&root)
            .into_iter()
            .filter(|p| p.to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(temp.is_empty(), "step {step}: {temp:?}");
    }
}

#[test]
fn open_creates_the_layout_private_and_tightens_it() {
    let (_d, store) = open();
    for sub in [
        "",
        "my",
        "archive",
        "archive/requests",
        "request",
        "trust/roots",
        "trust/ntauth",
        "trust/intermediates",
    ] {
        let p = store.root().join(sub);
        assert!(p.is_dir(), "{sub}");
        assert_eq!(mode(&p), 0o700, "{sub}");
    }
    fs::set_permissions(store.root().join("my"), fs::Permissions::from_mode(0o755)).expect("chmod");
    let store = Store::open(store.root()).expect("reopen");
    assert_eq!(mode(&store.root().join("my")), 0o700);
    assert_eq!(store.fault_steps(), 1);
    // Opening a store in good order changes nothing.
    let store = Store::open(store.root()).expect("reopen");
    assert_eq!(store.fault_steps(), 0);
}

#[test]
fn open_refuses_a_file_where_a_folder_belongs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("store");
    fs::create_dir(&root).expect("mkdir");
    fs::write(root.join("my"), b"oops").expect("write");
    let err = Store::open(&root).expect_err("a file named my");
    assert!(err.to_string().contains("my"), "{err}");
}

#[test]
fn install_writes_private_files_and_reads_back() {
    let (_d, store) = open();
    let lock = store.lock().expect("lock");
    let k = key();
    let der = machine_cert(&k);
    let t = store
        .install(&lock, &der, k.serialize_pem().as_bytes(), &meta())
        .expect("install");
    let dir = store.root().join("my").join(&t);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("key.pem")), 0o600);
    let snap = store.snapshot().expect("snapshot");
    assert_eq!(snap.certificates.len(), 1);
    let c = &snap.certificates[0];
    assert_eq!(c.info.thumbprint, t);
    assert_eq!(c.key, KeyStatus::Paired);
    assert_eq!(c.meta, meta());
    assert_eq!(c.path, dir);
    let id = c.info.template.as_ref().expect("template");
    assert_eq!(id.oid.as_deref(), Some("1.3.6.1.4.1.311.21.8.1.2.3"));
    assert!(snap.unparseable.is_empty(), "{:?}", snap.unparseable);
    // Again: nothing to do.
    assert_eq!(
        store
            .install(&lock, &der, k.serialize_pem().as_bytes(), &meta())
            .expect("again"),
        t
    );
    assert_eq!(store.snapshot().expect("snapshot").certificates.len(), 1);
}

#[test]
fn install_refuses_a_key_that_is_not_the_certificates() {
    let (_d, store) = open();
    let lock = store.lock().expect("lock");
    let der = machine_cert(&key());
    let err = store
        .install(&lock, &der, key().serialize_pem().as_bytes(), &meta())
        .expect_err("wrong key");
    assert!(err.to_string().contains("not issued for the key"), "{err}");
    let err = store
        .install(&lock, &der, b"not a key", &meta())
        .expect_err("bad key");
    assert!(err.to_string().contains("cannot be read"), "{err}");
    let err = store
        .install(&lock, b"not a cert", b"", &meta())
        .expect_err("bad cert");
    assert!(err.to_string().contains("install in"), "{err}");
    assert!(store.snapshot().expect("snapshot").certificates.is_empty());
}

#[test]
fn hand_copied_certificates_are_recognized_from_their_extensions() {
    let (_d, store) = open();
    let k = key();
    hand_copy(
        &store,
        "info",
        "cert.pem",
        pem::encode("CERTIFICATE", &machine_cert(&k)).as_bytes(),
        Some(k.serialize_pem().as_bytes()),
    );
    hand_copy(
        &store,
        "bmp",
        "cert.pem",
        pem::encode("CERTIFICATE", &cert(&k, Ext::NameBmp("WebServer"))).as_bytes(),
        None,
    );
    hand_copy(
        &store,
        "seq",
        "cert.pem",
        pem::encode("CERTIFICATE", &cert(&k, Ext::NameSeq("User"))).as_bytes(),
        None,
    );
    hand_copy(
        &store,
        "foreign",
        "cert.pem",
        pem::encode("CERTIFICATE", &cert(&k, Ext::None)).as_bytes(),
        None,
    );
    let snap = store.snapshot().expect("snapshot");
    assert!(snap.unparseable.is_empty(), "{:?}", snap.unparseable);
    let by = |name: &str| {
        snap.certificates
            .iter()
            .find(|c| c.path.ends_with(name))
            .unwrap_or_else(|| panic!("{name} not read"))
    };
    let info = by("info").info.template.clone().expect("21.7");
    assert_eq!(
        (info.oid.as_deref(), info.major, info.minor),
        (Some("1.3.6.1.4.1.311.21.8.1.2.3"), Some(100), Some(4))
    );
    assert_eq!(by("info").key, KeyStatus::Paired);
    assert_eq!(by("info").meta, CertificateMeta::default());
    assert_eq!(
        by("bmp")
            .info
            .template
            .as_ref()
            .and_then(|t| t.name.as_deref()),
        Some("WebServer")
    );
    assert_eq!(by("bmp").key, KeyStatus::Missing);
    assert_eq!(
        by("seq")
            .info
            .template
            .as_ref()
            .and_then(|t| t.name.as_deref()),
        Some("User")
    );
    assert!(by("foreign").info.template.is_none());
}

#[test]
fn liberal_formats_crlf_several_blocks_der_and_other_names() {
    let (_d, store) = open();
    let k = key();
    let der = machine_cert(&k);
    let other = cert(&key(), Ext::None);
    // Key first, then the certificate, then a chain certificate; CRLF line ends.
    let text = format!(
        "{}junk between blocks\n{}{}",
        k.serialize_pem(),
        pem::encode("CERTIFICATE", &der),
        pem::encode("CERTIFICATE", &other)
    )
    .replace('\n', "\r\n");
    hand_copy(
        &store,
        "crlf",
        "cert.pem",
        text.as_bytes(),
        Some(k.serialize_pem().replace('\n', "\r\n").as_bytes()),
    );
    hand_copy(&store, "der", "cert.pem", &der, None);
    hand_copy(
        &store,
        "crt",
        "cert.crt",
        pem::encode("CERTIFICATE", &der).as_bytes(),
        None,
    );
    let snap = store.snapshot().expect("snapshot");
    assert!(snap.unparseable.is_empty(), "{:?}", snap.unparseable);
    assert_eq!(snap.certificates.len(), 3);
    let thumb = CertificateInfo::from_der(&der).expect("parse").thumbprint;
    assert!(snap.certificates.iter().all(|c| c.info.thumbprint == thumb));
    let crlf = snap
        .certificates
        .iter()
        .find(|c| c.path.ends_with("crlf"))
        .expect("crlf");
    assert_eq!(crlf.key, KeyStatus::Paired);
}

#[test]
fn unparseable_files_are_reported_and_left_in_place() {
    let (_d, store) = open();
    let garbage = hand_copy(
        &store,
        "garbage",
        "cert.pem",
        b"this is not a certificate",
        None,
    );
    let k = key();
    let full = pem::encode("CERTIFICATE", &machine_cert(&k));
    let truncated = hand_copy(
        &store,
        "truncated",
        "cert.pem",
        &full.as_bytes()[..full.len() / 2],
        None,
    );
    let only_key = hand_copy(
        &store,
        "only-key",
        "cert.pem",
        k.serialize_pem().as_bytes(),
        None,
    );
    let empty = store.root().join("my").join("empty");
    fs::create_dir(&empty).expect("mkdir");
    fs::write(store.root().join("my").join("stray.pem"), full.as_bytes()).expect("write");

    let snap = store.snapshot().expect("snapshot");
    assert!(snap.certificates.is_empty());
    let problem = |p: &Path| {
        snap.unparseable
            .iter()
            .find(|u| u.path == p)
            .unwrap_or_else(|| panic!("{} not reported: {:?}", p.display(), snap.unparseable))
            .problem
            .clone()
    };
    assert!(
        problem(&garbage.join("cert.pem")).contains("X.509"),
        "{}",
        problem(&garbage.join("cert.pem"))
    );
    assert!(problem(&truncated.join("cert.pem")).contains("END"));
    assert!(
        problem(&only_key.join("cert.pem")).contains("no CERTIFICATE block (found PRIVATE KEY)")
    );
    assert!(problem(&empty).contains("no certificate"));
    assert!(problem(&store.root().join("my/stray.pem")).contains("folder"));

    // Recovery leaves them alone too.
    let lock = store.lock().expect("lock");
    let before = files(store.root());
    assert!(store.recover(&lock).expect("recover").is_empty());
    assert_eq!(files(store.root()), before);
    assert_eq!(
        fs::read(garbage.join("cert.pem")).expect("read"),
        b"this is not a certificate"
    );
}

#[test]
fn key_status_paired_missing_mismatch_and_unreadable() {
    let (_d, store) = open();
    let k = key();
    let der = pem::encode("CERTIFICATE", &machine_cert(&k));
    hand_copy(
        &store,
        "paired",
        "cert.pem",
        der.as_bytes(),
        Some(k.serialize_pem().as_bytes()),
    );
    hand_copy(&store, "missing", "cert.pem", der.as_bytes(), None);
    hand_copy(
        &store,
        "mismatch",
        "cert.pem",
        der.as_bytes(),
        Some(key().serialize_pem().as_bytes()),
    );
    let unreadable = hand_copy(
        &store,
        "unreadable",
        "cert.pem",
        der.as_bytes(),
        Some(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
    );
    let snap = store.snapshot().expect("snapshot");
    let status = |name: &str| {
        snap.certificates
            .iter()
            .find(|c| c.path.ends_with(name))
            .expect(name)
            .key
    };
    assert_eq!(status("paired"), KeyStatus::Paired);
    assert_eq!(status("missing"), KeyStatus::Missing);
    assert_eq!(status("mismatch"), KeyStatus::Mismatch);
    // An unreadable key counts as a mismatch, and its problem is reported.
    assert_eq!(status("unreadable"), KeyStatus::Mismatch);
    assert_eq!(snap.unparseable.len(), 1, "{:?}", snap.unparseable);
    assert_eq!(snap.unparseable[0].path, unreadable.join("key.pem"));
}

#[test]
fn state_round_trips_and_missing_is_default() {
    let (_d, store) = open();
    assert_eq!(store.read_state().expect("read"), State::default());
    let state = State {
        failures: vec![TemplateFailures {
            template: "Machine".into(),
            count: 3,
            last_failure: datetime!(2026-05-01 11:59:58.123456789 UTC),
            last_error: "CA unreachable: \"connection refused\"\nretry later".into(),
        }],
        last_pulse: Some(NOW),
        last_pulse_ok: Some(false),
        directory_marker: Some("20260501115900.0Z".into()),
    };
    let lock = store.lock().expect("lock");
    store.write_state(&lock, &state).expect("write");
    assert_eq!(store.read_state().expect("read"), state);
    store.write_state(&lock, &State::default()).expect("write");
    assert_eq!(store.read_state().expect("read"), State::default());
}

/// A corrupt `state.toml` holds only counts and times: it must not stop
/// `pulse` or `status`. It reads as an empty state; recovery (run by every
/// pulse under the lock) keeps it as `state.toml.unreadable` and says so;
/// then the store is clean again.
#[test]
fn corrupt_state_is_set_aside_and_the_state_starts_empty() {
    let (_d, store) = open();
    let path = store.root().join("state.toml");
    let corrupt = "last_pulse = \"yesterday\"\n";
    fs::write(&path, corrupt).expect("write");
    assert_eq!(store.read_state().expect("read"), State::default());

    let lock = store.lock().expect("lock");
    let log = store.recover(&lock).expect("recover");
    let kept = store.root().join("state.toml.unreadable");
    assert_eq!(log.len(), 1, "{log:?}");
    assert!(
        log[0].contains("state.toml could not be read")
            && log[0].contains("line 1")
            && log[0].contains(&kept.display().to_string()),
        "{log:?}"
    );
    assert!(
        !log[0].contains("yesterday"),
        "the log quotes the file: {log:?}"
    );
    assert_eq!(fs::read_to_string(&kept).expect("kept"), corrupt);
    assert!(!path.exists());
    assert!(store.recover(&lock).expect("recover").is_empty());
    assert_eq!(store.read_state().expect("read"), State::default());

    // A writer that comes first (a pulse that could not read the directory
    // records its failure without recovering) keeps the file as well.
    fs::write(&path, "[[failures]\n").expect("write");
    store.write_state(&lock, &State::default()).expect("write");
    let second = store.root().join("state.toml.unreadable-2");
    assert_eq!(fs::read_to_string(&second).expect("kept"), "[[failures]\n");
    assert_eq!(store.read_state().expect("read"), State::default());
    assert!(store.snapshot().expect("snapshot").unparseable.is_empty());
}

/// A FIFO in place of an entry's key is reported, not read: reading it
/// would block the snapshot (and with it `status` and every pulse) forever.
#[test]
fn a_fifo_in_an_entry_is_reported_without_blocking() {
    let (_d, store) = open();
    let k = key();
    let lock = store.lock().expect("lock");
    let thumb = store
        .install(
            &lock,
            &machine_cert(&k),
            k.serialize_pem().as_bytes(),
            &CertificateMeta::default(),
        )
        .expect("install");
    let key_path = store.root().join("my").join(&thumb).join("key.pem");
    fs::remove_file(&key_path).expect("rm");
    let made = std::process::Command::new("mkfifo")
        .arg(&key_path)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let snap = store.snapshot().expect("snapshot");
    let u = snap
        .unparseable
        .iter()
        .find(|u| u.path == key_path)
        .expect("reported");
    assert!(u.problem.contains("FIFO"), "{u:?}");
    store.recover(&lock).expect("recover");
}

/// `state.toml` is the engine's private bookkeeping: 0600, like keys, also
/// when an older version left it 0644.
#[test]
fn state_is_written_private() {
    let (_d, store) = open();
    let path = store.root().join("state.toml");
    fs::write(&path, "").expect("write");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
    let lock = store.lock().expect("lock");
    store.write_state(&lock, &State::default()).expect("write");
    let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "state.toml is {mode:o}");
}

/// A state.toml that is not a regular file (a FIFO would block the read
/// forever) is refused with an error naming it.
#[test]
fn a_state_file_that_is_a_fifo_is_refused_without_blocking() {
    let (_d, store) = open();
    let path = store.root().join("state.toml");
    let made = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let err = store.read_state().expect_err("a FIFO").to_string();
    assert!(err.contains("FIFO") && err.contains("state.toml"), "{err}");
}

#[test]
fn lock_is_exclusive_between_file_handles() {
    let (_d, store) = open();
    let first = store.try_lock().expect("try_lock").expect("free");
    assert!(store.try_lock().expect("try_lock").is_none());
    let other = Store::open(store.root()).expect("open");
    assert!(other.try_lock().expect("try_lock").is_none());
    drop(first);
    assert!(other.try_lock().expect("try_lock").is_some());
    assert_eq!(mode(&store.root().join("lock")), 0o600);
}

#[test]
fn a_lock_of_another_store_is_refused() {
    let (_a, one) = open();
    let (_b, two) = open();
    let lock = two.lock().expect("lock");
    let err = one
        .write_state(&lock, &State::default())
        .expect_err("wrong lock");
    assert!(matches!(err, StoreError::WrongLock { .. }), "{err}");
}

#[test]
fn archive_moves_records_why_and_never_overwrites() {
    let (_d, store) = open();
    let lock = store.lock().expect("lock");
    let k = key();
    let der = machine_cert(&k);
    let pem_key = k.serialize_pem();
    let t = store
        .install(&lock, &der, pem_key.as_bytes(), &meta())
        .expect("install");
    store.archive(&lock, &t, "expired", NOW).expect("archive");
    // Again: already archived.
    store
        .archive(&lock, &t.to_uppercase(), "expired", NOW)
        .expect("archive again");
    let archived = store.root().join("archive").join(&t);
    let m: meta::EntryMeta =
        meta::parse(&fs::read(archived.join("meta.toml")).expect("meta")).expect("parse");
    assert_eq!(m.archived_why.as_deref(), Some("expired"));
    assert_eq!(m.archived_at, Some(NOW));
    assert_eq!(m.template.as_deref(), Some("Machine"));
    assert!(archived.join("key.pem").exists());
    // Installed and archived once more: a second archive folder.
    store
        .install(&lock, &der, pem_key.as_bytes(), &meta())
        .expect("reinstall");
    store.archive(&lock, &t, "revoked", NOW).expect("archive");
    assert!(
        store
            .root()
            .join("archive")
            .join(format!("{t}-2"))
            .join("key.pem")
            .exists()
    );
    let snap = store.snapshot().expect("snapshot");
    assert!(snap.certificates.is_empty());
    assert_eq!(snap.archived, 2);
    let err = store
        .archive(&lock, &"0".repeat(40), "x", NOW)
        .expect_err("unknown");
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
}

#[test]
fn archive_refuses_foreign_certificates() {
    let (_d, store) = open();
    let der = cert(&key(), Ext::None);
    let dir = hand_copy(&store, "someone-elses", "cert.pem", &der, None);
    let t = CertificateInfo::from_der(&der).expect("parse").thumbprint;
    let lock = store.lock().expect("lock");
    let err = store
        .archive(&lock, &t, "expired", NOW)
        .expect_err("foreign");
    assert!(matches!(err, StoreError::Foreign { .. }), "{err}");
    assert!(err.to_string().contains("someone-elses"), "{err}");
    assert!(dir.join("cert.pem").exists());
}

#[test]
fn a_hand_copied_template_certificate_can_be_archived_by_thumbprint() {
    let (_d, store) = open();
    let der = machine_cert(&key());
    hand_copy(&store, "copied", "cert.pem", &der, None);
    let t = CertificateInfo::from_der(&der).expect("parse").thumbprint;
    let lock = store.lock().expect("lock");
    store
        .archive(&lock, &t, "superseded", NOW)
        .expect("archive");
    assert!(
        store
            .root()
            .join("archive")
            .join(&t)
            .join("cert.pem")
            .exists()
    );
    assert!(!store.root().join("my/copied").exists());
}

#[test]
fn request_life_create_update_complete() {
    let (_d, store) = open();
    let lock = store.lock().expect("lock");
    let old_key = key();
    let old = store
        .install(
            &lock,
            &machine_cert(&old_key),
            old_key.serialize_pem().as_bytes(),
            &meta(),
        )
        .expect("install");
    let k = key();
    let pr = store
        .create_request(
            &lock,
            "Machine",
            k.serialize_pem().as_bytes(),
            b"csr",
            Some(&old),
            NOW,
        )
        .expect("create");
    assert_eq!(mode(&pr.path.join("key.pem")), 0o600);
    assert_eq!(
        store.request_key(&pr.id).expect("key"),
        k.serialize_pem().as_bytes()
    );
    let snap = store.snapshot().expect("snapshot");
    assert_eq!(snap.pending, vec![pr.clone()]);

    store
        .update_request(&lock, &pr.id, Some("Lab CA"), Some("42"), Some(NOW))
        .expect("update");
    store
        .update_request(&lock, &pr.id, None, None, None)
        .expect("nothing to update");
    let p = &store.snapshot().expect("snapshot").pending[0];
    assert_eq!(
        (p.ca.as_deref(), p.ca_request_id.as_deref(), p.last_poll),
        (Some("Lab CA"), Some("42"), Some(NOW))
    );
    assert_eq!(p.replaces.as_deref(), Some(old.as_str()));

    // A certificate for another key is refused, nothing changes.
    let err = store
        .complete_request(
            &lock,
            &pr.id,
            &machine_cert(&key()),
            &CertificateMeta::default(),
        )
        .expect_err("wrong key");
    assert!(matches!(err, StoreError::KeyMismatch { .. }), "{err}");
    assert_eq!(store.snapshot().expect("snapshot").pending.len(), 1);

    let der = machine_cert(&k);
    let t = store
        .complete_request(
            &lock,
            &pr.id,
            &der,
            &CertificateMeta {
                installed_at: Some(NOW),
                ..Default::default()
            },
        )
        .expect("complete");
    let snap = store.snapshot().expect("snapshot");
    assert!(snap.pending.is_empty());
    assert_eq!(
        snap.certificates.len(),
        1,
        "the replaced certificate is archived"
    );
    let c = &snap.certificates[0];
    assert_eq!(
        (c.info.thumbprint.as_str(), c.key),
        (t.as_str(), KeyStatus::Paired)
    );
    // What the request knew fills the metadata.
    assert_eq!(c.meta.template.as_deref(), Some("Machine"));
    assert_eq!(c.meta.ca.as_deref(), Some("Lab CA"));
    assert_eq!(c.meta.request_id.as_deref(), Some("42"));
    assert_eq!(snap.archived, 1);
    assert!(
        store
            .root()
            .join("archive")
            .join(&old)
            .join("key.pem")
            .exists()
    );
    assert!(!pr.path.exists());
    // Completing again answers the same.
    assert_eq!(
        store
            .complete_request(&lock, &pr.id, &der, &CertificateMeta::default())
            .expect("again"),
        t
    );
    let err = store.request_key("../my").expect_err("not an id");
    assert!(matches!(err, StoreError::Refused { .. }), "{err}");
}

#[test]
fn abandoned_requests_keep_their_key() {
    let (_d, store) = open();
    let lock = store.lock().expect("lock");
    let k = key();
    let pr = store
        .create_request(
            &lock,
            "Machine",
            k.serialize_pem().as_bytes(),
            b"csr",
            None,
            NOW,
        )
        .expect("create");
    store
        .abandon_request(&lock, &pr.id, "denied: no enroll right", NOW)
        .expect("abandon");
    store
        .abandon_request(&lock, &pr.id, "denied", NOW)
        .expect("again");
    let kept = store.root().join("archive/requests").join(&pr.id);
    assert_eq!(
        fs::read(kept.join("key.pem")).expect("key"),
        k.serialize_pem().as_bytes()
    );
    let m: meta::RequestMeta =
        meta::parse(&fs::read(kept.join("meta.toml")).expect("meta")).expect("parse");
    assert_eq!(m.abandoned_why.as_deref(), Some("denied: no enroll right"));
    let snap = store.snapshot().expect("snapshot");
    assert!(snap.pending.is_empty());
    assert_eq!(snap.archived, 0, "archived requests are not certificates");
}

#[test]
fn create_request_refuses_bad_input() {
    let (_d, store) = open();
    let lock = store.lock().expect("lock");
    let k = key().serialize_pem();
    assert!(
        store
            .create_request(&lock, "", k.as_bytes(), b"csr", None, NOW)
            .is_err()
    );
    assert!(
        store
            .create_request(&lock, "Machine", k.as_bytes(), b"", None, NOW)
            .is_err()
    );
    let err = store
        .create_request(&lock, "Machine", b"nope", b"csr", None, NOW)
        .expect_err("bad key");
    assert!(err.to_string().contains("create request in"), "{err}");
    assert!(
        fs::read_dir(store.root().join("request"))
            .expect("list")
            .next()
            .is_none()
    );
}

#[test]
fn write_trust_mirrors_the_set() {
    let (_d, store) = open();
    let lock = store.lock().expect("lock");
    let (a, b, c) = (
        cert(&key(), Ext::None),
        cert(&key(), Ext::None),
        cert(&key(), Ext::None),
    );
    let thumb = |d: &[u8]| CertificateInfo::from_der(d).expect("parse").thumbprint;
    let dir = store.root().join("trust/roots");
    fs::write(dir.join("README"), "kept").expect("write");
    let change = store
        .write_trust(&lock, TrustKind::Roots, &[a.clone(), b.clone()])
        .expect("write");
    let mut both = vec![thumb(&a), thumb(&b)];
    both.sort();
    assert_eq!(
        change,
        TrustChange {
            added: both,
            removed: vec![]
        }
    );
    let change = store
        .write_trust(&lock, TrustKind::Roots, &[b.clone(), c.clone()])
        .expect("write");
    assert_eq!(
        change,
        TrustChange {
            added: vec![thumb(&c)],
            removed: vec![thumb(&a)]
        }
    );
    assert!(
        store
            .write_trust(&lock, TrustKind::Roots, &[b.clone(), c.clone()])
            .expect("same")
            .is_empty()
    );
    let on_disk =
        pem::certificate_der(&fs::read(dir.join(format!("{}.pem", thumb(&b)))).expect("read"))
            .expect("pem");
    assert_eq!(on_disk, b);
    assert!(dir.join("README").exists());
    let err = store
        .write_trust(&lock, TrustKind::NtAuth, &[b"junk".to_vec()])
        .expect_err("junk");
    assert!(err.to_string().contains("certificate 1 of 1"), "{err}");
}

#[test]
fn recover_finishes_a_complete_partial_install() {
    let (_d, store) = open();
    let k = key();
    let der = machine_cert(&k);
    let t = CertificateInfo::from_der(&der).expect("parse").thumbprint;
    let partial = store.root().join("my").join(format!(".partial-{t}-0011"));
    fs::create_dir(&partial).expect("mkdir");
    fs::write(partial.join("meta.toml"), "template = \"Machine\"\n").expect("write");
    fs::write(partial.join("cert.pem"), pem::encode("CERTIFICATE", &der)).expect("write");
    fs::write(partial.join("key.pem"), k.serialize_pem()).expect("write");
    assert!(
        store.snapshot().expect("snapshot").certificates.is_empty(),
        "work in progress is not read"
    );
    let lock = store.lock().expect("lock");
    let log = store.recover(&lock).expect("recover");
    assert_eq!(log.len(), 1, "{log:?}");
    assert!(store.root().join("my").join(&t).join("key.pem").exists());
    assert!(!partial.exists());
    assert!(store.recover(&lock).expect("again").is_empty());
}

#[test]
fn recover_drops_incomplete_work_but_keeps_a_lone_key() {
    let (_d, store) = open();
    let k = key();
    // An install cut short before its key was complete: nothing to keep.
    let half = store.root().join("my/.partial-abc-01");
    fs::create_dir(&half).expect("mkdir");
    fs::write(half.join("meta.toml"), "").expect("write");
    fs::write(half.join("key.pem"), &k.serialize_pem().as_bytes()[..50]).expect("write");
    // A key with a broken certificate (not something the store writes): kept.
    let odd = store.root().join("my/.partial-def-02");
    fs::create_dir(&odd).expect("mkdir");
    fs::write(odd.join("cert.pem"), "garbage").expect("write");
    fs::write(odd.join("key.pem"), k.serialize_pem()).expect("write");
    let lock = store.lock().expect("lock");
    let log = store.recover(&lock).expect("recover");
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(!half.exists() && !odd.exists());
    let kept = store.root().join("recovered/partial-def-02/key.pem");
    assert_eq!(fs::read(&kept).expect("kept"), k.serialize_pem().as_bytes());
    let snap = store.snapshot().expect("snapshot");
    assert_eq!(snap.unparseable.len(), 1, "recovered/ is shown to people");
    assert!(snap.unparseable[0].problem.contains("remove it by hand"));
}

#[test]
fn user_root_follows_xdg() {
    assert_eq!(
        user_root_from(Some("/data".into()), Some("/home/u".into())),
        PathBuf::from("/data/autoenroll")
    );
    assert_eq!(
        user_root_from(Some("relative".into()), Some("/home/u".into())),
        PathBuf::from("/home/u/.local/share/autoenroll")
    );
    assert_eq!(
        user_root_from(None, Some("/home/u".into())),
        PathBuf::from("/home/u/.local/share/autoenroll")
    );
    assert_eq!(machine_root(), PathBuf::from("/var/lib/autoenroll/machine"));
}
