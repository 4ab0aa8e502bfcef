//! Crash safety of the local store: every operation is interrupted at each
//! of its filesystem steps in turn (the fault injection of
//! `Store::with_fault_at` makes step n fail as if the process died there),
//! then the store is reopened, recovered and checked:
//!
//! - the certificate that was there before is still there (in `my/` or
//!   `archive/`), and exactly one certificate is current for the install;
//! - every private key the store held, and the operation's new key once it
//!   was durable, is still somewhere in the store;
//! - no work in progress is left (no `.partial-`, `.done-`, temporary files)
//!   and nothing is reported unreadable;
//! - recovery is complete (a second run finds nothing to do), also when
//!   recovery itself is interrupted at each of its steps;
//! - running the operation again succeeds and gives the intended end state.

use std::path::{Path, PathBuf};

use autoenroll::pki::CertificateInfo;
use autoenroll::pki::template_ext::encode_template_information;
use autoenroll::store::{
    CertificateMeta, State, Store, StoreError, StoreLock, TemplateFailures, TrustKind,
};
use base64::Engine as _;
use rcgen::{CertificateParams, CustomExtension, KeyPair};
use time::OffsetDateTime;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-05-01 12:00 UTC);

/// A key and a certificate for it, generated once and reused by every run.
struct Material {
    key_pem: String,
    key_bits: Vec<u8>,
    der: Vec<u8>,
    thumb: String,
}

fn material(template: bool) -> Material {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(vec!["host.example.test".to_string()]).expect("params");
    if template {
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(
                &[1, 3, 6, 1, 4, 1, 311, 21, 7],
                encode_template_information("1.3.6.1.4.1.311.21.8.7.7", 100, 2).expect("ext"),
            ));
    }
    let der = params.self_signed(&key).expect("cert").der().to_vec();
    Material {
        key_pem: key.serialize_pem(),
        key_bits: key.public_key_raw().to_vec(),
        thumb: CertificateInfo::from_der(&der).expect("parse").thumbprint,
        der,
    }
}

/// Everything the scenarios use.
struct Fixture {
    /// Installed before every operation.
    old: Material,
    /// The new certificate and key of the operation.
    new: Material,
    /// Trust certificates.
    ca: [Material; 3],
    state1: State,
    state2: State,
}

/// What the setup left for the operation (the request id, if any).
#[derive(Default)]
struct Setup {
    request: Option<String>,
}

/// Where a check is made.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// After a crash at this step and recovery. `key_durable`: the step
    /// that made the operation's new key durable has completed.
    Crashed { key_durable: bool },
    /// After the operation ran to completion.
    Done,
}

struct Case {
    name: &'static str,
    setup: fn(&Store, &StoreLock, &Fixture) -> Setup,
    op: fn(&Store, &StoreLock, &Fixture, &Setup) -> Result<(), StoreError>,
    check: fn(&View, &Fixture, &Setup, Phase),
}

fn install_old(store: &Store, lock: &StoreLock, fx: &Fixture) -> Setup {
    store
        .install(lock, &fx.old.der, fx.old.key_pem.as_bytes(), &meta())
        .expect("install old");
    Setup::default()
}

fn with_request(store: &Store, lock: &StoreLock, fx: &Fixture) -> Setup {
    install_old(store, lock, fx);
    let pr = store
        .create_request(
            lock,
            "Machine",
            fx.new.key_pem.as_bytes(),
            b"csr",
            Some(&fx.old.thumb),
            NOW,
        )
        .expect("create request");
    store
        .update_request(lock, &pr.id, Some("Lab CA"), Some("42"), Some(NOW))
        .expect("update request");
    Setup {
        request: Some(pr.id),
    }
}

fn meta() -> CertificateMeta {
    CertificateMeta {
        template: Some("Machine".into()),
        ca: Some("Lab CA".into()),
        request_id: Some("41".into()),
        installed_at: Some(NOW),
        ..CertificateMeta::default()
    }
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "install",
            setup: install_old,
            op: |s, l, fx, _| {
                s.install(l, &fx.new.der, fx.new.key_pem.as_bytes(), &meta())
                    .map(drop)
            },
            check: |v, fx, _, phase| {
                assert_eq!(
                    v.current(&fx.old.thumb),
                    1,
                    "the old certificate stays current"
                );
                let new = v.current(&fx.new.thumb);
                match phase {
                    Phase::Crashed { key_durable: true } | Phase::Done => assert_eq!(new, 1),
                    Phase::Crashed { key_durable: false } => assert!(new <= 1),
                }
                if new == 1 {
                    assert!(v.has_key(&fx.new.key_bits));
                }
            },
        },
        Case {
            name: "archive",
            setup: install_old,
            op: |s, l, fx, _| s.archive(l, &fx.old.thumb, "expired", NOW),
            check: |v, fx, _, phase| {
                let (current, archived) = (v.current(&fx.old.thumb), v.archived(&fx.old.thumb));
                assert_eq!(current + archived, 1, "in my/ or archive/, once");
                if phase == Phase::Done {
                    assert_eq!((current, archived), (0, 1));
                }
            },
        },
        Case {
            name: "create_request",
            setup: install_old,
            op: |s, l, fx, _| {
                s.create_request(
                    l,
                    "Machine",
                    fx.new.key_pem.as_bytes(),
                    b"csr",
                    Some(&fx.old.thumb),
                    NOW,
                )
                .map(drop)
            },
            check: |v, fx, _, phase| {
                assert_eq!(v.current(&fx.old.thumb), 1);
                let pending = v.snapshot.pending.len();
                match phase {
                    Phase::Crashed { key_durable: false } => assert!(pending <= 1),
                    Phase::Crashed { key_durable: true } => assert_eq!(pending, 1),
                    // The crashed attempt's request may stand beside the new one.
                    Phase::Done => assert!((1..=2).contains(&pending)),
                }
                if pending > 0 {
                    assert!(v.has_key(&fx.new.key_bits));
                    assert!(
                        v.snapshot
                            .pending
                            .iter()
                            .all(|p| p.replaces.as_deref() == Some(fx.old.thumb.as_str()))
                    );
                }
            },
        },
        Case {
            name: "complete_request",
            setup: with_request,
            op: |s, l, fx, st| {
                s.complete_request(
                    l,
                    st.request.as_deref().expect("request"),
                    &fx.new.der,
                    &meta(),
                )
                .map(drop)
            },
            check: |v, fx, st, phase| {
                let (old, new) = (v.current(&fx.old.thumb), v.current(&fx.new.thumb));
                assert_eq!(
                    old + new,
                    1,
                    "exactly one current certificate (old {old}, new {new})"
                );
                assert_eq!(
                    old + v.archived(&fx.old.thumb),
                    1,
                    "the old certificate is kept once"
                );
                assert!(
                    v.has_key(&fx.new.key_bits),
                    "the request's key is never lost"
                );
                let pending = v.snapshot.pending.len();
                assert_eq!(
                    pending, old,
                    "the request is pending until its certificate is installed"
                );
                if pending == 1 {
                    assert_eq!(v.snapshot.pending[0].id, st.request.clone().expect("id"));
                    assert_eq!(v.snapshot.pending[0].ca_request_id.as_deref(), Some("42"));
                }
                if phase == Phase::Done {
                    assert_eq!(new, 1);
                }
            },
        },
        Case {
            name: "abandon_request",
            setup: with_request,
            op: |s, l, _, st| {
                s.abandon_request(l, st.request.as_deref().expect("request"), "denied", NOW)
            },
            check: |v, fx, st, phase| {
                assert_eq!(v.current(&fx.old.thumb), 1);
                assert!(
                    v.has_key(&fx.new.key_bits),
                    "keys of abandoned requests are kept"
                );
                let id = st.request.clone().expect("id");
                let pending = v.snapshot.pending.len();
                let archived = v.root.join("archive/requests").join(&id).is_dir();
                assert!(
                    pending + usize::from(archived) == 1,
                    "pending {pending}, archived {archived}"
                );
                if phase == Phase::Done {
                    assert!(archived);
                }
            },
        },
        Case {
            name: "write_trust",
            setup: |s, l, fx| {
                let set = install_old(s, l, fx);
                s.write_trust(
                    l,
                    TrustKind::Roots,
                    &[fx.ca[0].der.clone(), fx.ca[1].der.clone()],
                )
                .expect("trust");
                set
            },
            op: |s, l, fx, _| {
                s.write_trust(
                    l,
                    TrustKind::Roots,
                    &[fx.ca[1].der.clone(), fx.ca[2].der.clone()],
                )
                .map(drop)
            },
            check: |v, fx, _, phase| {
                assert_eq!(v.current(&fx.old.thumb), 1);
                let roots = v.trust_roots();
                let all: Vec<&String> = fx.ca.iter().map(|m| &m.thumb).collect();
                assert!(roots.iter().all(|t| all.contains(&t)), "{roots:?}");
                assert!(
                    roots.contains(&fx.ca[1].thumb),
                    "a root published before and after stays"
                );
                if phase == Phase::Done {
                    let mut want = vec![fx.ca[1].thumb.clone(), fx.ca[2].thumb.clone()];
                    want.sort();
                    assert_eq!(roots, want);
                }
            },
        },
        Case {
            name: "write_state",
            setup: |s, l, fx| {
                let set = install_old(s, l, fx);
                s.write_state(l, &fx.state1).expect("state");
                set
            },
            op: |s, l, fx, _| s.write_state(l, &fx.state2),
            check: |v, fx, _, phase| {
                assert_eq!(v.current(&fx.old.thumb), 1);
                let state = v.state.clone().expect("state.toml stays readable");
                if phase == Phase::Done {
                    assert_eq!(state, fx.state2);
                } else {
                    assert!(state == fx.state1 || state == fx.state2, "{state:?}");
                }
            },
        },
    ]
}

/// What a check looks at, read after recovery.
struct View {
    root: PathBuf,
    snapshot: autoenroll::store::StoreSnapshot,
    state: Result<State, String>,
    /// Public key bits of every key.pem in the store.
    keys: Vec<Vec<u8>>,
}

impl View {
    fn read(store: &Store) -> View {
        let root = store.root().to_path_buf();
        let mut keys = Vec::new();
        for p in files(&root) {
            if p.file_name().is_some_and(|n| n == "key.pem") {
                let text = std::fs::read_to_string(&p).expect("read key");
                keys.push(
                    KeyPair::from_pem(&text)
                        .expect("every kept key reads")
                        .public_key_raw()
                        .to_vec(),
                );
            }
        }
        View {
            snapshot: store.snapshot().expect("snapshot"),
            state: store.read_state().map_err(|e| e.to_string()),
            keys,
            root,
        }
    }

    /// How many current certificates have this thumbprint.
    fn current(&self, thumb: &str) -> usize {
        self.snapshot
            .certificates
            .iter()
            .filter(|c| c.info.thumbprint == thumb)
            .count()
    }

    /// How many archive folders hold this certificate.
    fn archived(&self, thumb: &str) -> usize {
        std::fs::read_dir(self.root.join("archive"))
            .expect("archive")
            .flatten()
            .filter(|e| read_cert(&e.path().join("cert.pem")).is_some_and(|t| t == thumb))
            .count()
    }

    fn has_key(&self, bits: &[u8]) -> bool {
        self.keys.iter().any(|k| k == bits)
    }

    fn trust_roots(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.root.join("trust/roots"))
            .expect("trust")
            .flatten()
            .map(|e| {
                let t = read_cert(&e.path())
                    .unwrap_or_else(|| panic!("{} unreadable", e.path().display()));
                assert_eq!(e.file_name().to_string_lossy(), format!("{t}.pem"));
                t
            })
            .collect();
        v.sort();
        v
    }
}

/// Thumbprint of a PEM certificate file.
fn read_cert(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    CertificateInfo::from_der(&der).ok().map(|i| i.thumbprint)
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Checks shared by every case after recovery.
fn check_common(store: &Store, fx: &Fixture, view: &View, context: &str) {
    for p in files(store.root()) {
        let s = p
            .strip_prefix(store.root())
            .expect("inside")
            .to_string_lossy()
            .into_owned();
        assert!(
            !s.contains("/.") && !s.starts_with('.'),
            "{context}: work in progress left: {s}"
        );
    }
    assert!(
        view.snapshot.unparseable.is_empty(),
        "{context}: {:?}",
        view.snapshot.unparseable
    );
    assert!(
        view.has_key(&fx.old.key_bits),
        "{context}: the old key is kept"
    );
    assert!(
        view.current(&fx.old.thumb) + view.archived(&fx.old.thumb) >= 1,
        "{context}: the old certificate is kept"
    );
}

fn fixture() -> Fixture {
    let failure = TemplateFailures {
        template: "Machine".into(),
        count: 2,
        last_failure: NOW,
        last_error: "CA unreachable".into(),
    };
    Fixture {
        old: material(true),
        new: material(true),
        ca: [material(false), material(false), material(false)],
        state1: State {
            failures: vec![failure.clone()],
            last_pulse: Some(NOW),
            last_pulse_ok: Some(false),
            directory_marker: Some("1".into()),
        },
        state2: State {
            failures: vec![TemplateFailures {
                count: 3,
                ..failure
            }],
            last_pulse: Some(NOW + time::Duration::hours(8)),
            last_pulse_ok: Some(true),
            directory_marker: Some("2".into()),
        },
    }
}

/// A fresh store with the case's setup done.
fn prepared(case: &Case, fx: &Fixture) -> (tempfile::TempDir, PathBuf, Setup) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("store");
    let store = Store::open(&root).expect("open");
    let lock = store.lock().expect("lock");
    let setup = (case.setup)(&store, &lock, fx);
    (dir, root, setup)
}

/// Reopens after a crash, recovers (interrupted at `recovery_fault` first, if
/// given), checks, runs the operation again and checks the end state.
fn reopen_and_check(
    case: &Case,
    fx: &Fixture,
    root: &Path,
    setup: &Setup,
    key_durable: bool,
    context: &str,
) {
    let store = Store::open(root).expect("reopen");
    let lock = store.lock().expect("lock");
    store
        .recover(&lock)
        .unwrap_or_else(|e| panic!("{context}: recover: {e}"));
    assert_eq!(
        store.recover(&lock).expect("recover again"),
        Vec::<String>::new(),
        "{context}"
    );
    let view = View::read(&store);
    check_common(&store, fx, &view, context);
    (case.check)(&view, fx, setup, Phase::Crashed { key_durable });

    (case.op)(&store, &lock, fx, setup).unwrap_or_else(|e| panic!("{context}: running again: {e}"));
    let view = View::read(&store);
    check_common(&store, fx, &view, context);
    (case.check)(&view, fx, setup, Phase::Done);
}

#[test]
fn a_crash_at_any_step_of_any_operation_loses_nothing() {
    let fx = fixture();
    for case in cases() {
        // Count the steps of an uninterrupted run, and find the one after
        // which the operation's new key is durable.
        let (_dir, root, setup) = prepared(&case, &fx);
        let store = Store::open(&root).expect("open").recording();
        let lock = store.lock().expect("lock");
        (case.op)(&store, &lock, &fx, &setup).expect(case.name);
        let steps: Vec<String> = store.fault_log();
        assert!(!steps.is_empty(), "{}: no steps", case.name);
        let key_sync = steps
            .iter()
            .position(|s| s.starts_with("sync ") && s.ends_with("/key.pem"))
            .map(|i| i + 1);
        let view = View::read(&store);
        check_common(&store, &fx, &view, case.name);
        (case.check)(&view, &fx, &setup, Phase::Done);
        drop(lock);

        for n in 1..=steps.len() {
            let context = format!("{}: crash at step {n} ({})", case.name, steps[n - 1]);
            let (_dir, root, setup) = prepared(&case, &fx);
            {
                let store = Store::open(&root).expect("open");
                let lock = store.lock().expect("lock");
                let store = store.with_fault_at(n);
                let err = (case.op)(&store, &lock, &fx, &setup)
                    .expect_err(&format!("{context}: the fault must stop the operation"));
                assert!(err.is_injected_fault(), "{context}: {err}");
            }
            let key_durable = key_sync.is_some_and(|k| n > k);
            reopen_and_check(&case, &fx, &root, &setup, key_durable, &context);
        }
    }
}

#[test]
fn a_crash_during_recovery_loses_nothing_either() {
    let fx = fixture();
    for case in cases() {
        let (_dir, root, setup) = prepared(&case, &fx);
        let store = Store::open(&root).expect("open").recording();
        let lock = store.lock().expect("lock");
        (case.op)(&store, &lock, &fx, &setup).expect(case.name);
        let steps = store.fault_steps();
        drop(lock);

        for n in 1..=steps {
            // How many steps does recovering from this crash take?
            let crashed = |root: &Path, setup: &Setup| {
                let store = Store::open(root).expect("open");
                let lock = store.lock().expect("lock");
                let store = store.with_fault_at(n);
                let _ = (case.op)(&store, &lock, &fx, setup);
            };
            let (_dir, root, setup) = prepared(&case, &fx);
            crashed(&root, &setup);
            let recovery_steps = {
                let store = Store::open(&root).expect("open");
                let lock = store.lock().expect("lock");
                store.recover(&lock).expect("recover");
                store.fault_steps()
            };
            for m in 1..=recovery_steps {
                let context = format!(
                    "{}: crash at step {n}, then during recovery at step {m}",
                    case.name
                );
                let (_dir, root, setup) = prepared(&case, &fx);
                crashed(&root, &setup);
                {
                    let store = Store::open(&root).expect("open").with_fault_at(m);
                    let lock = store.lock().expect("lock");
                    let err = store.recover(&lock).expect_err(&context);
                    assert!(err.is_injected_fault(), "{context}: {err}");
                }
                // Whether the new key was durable is not tracked here: check
                // it as if it might not have been.
                reopen_and_check(&case, &fx, &root, &setup, false, &context);
            }
        }
    }
}

#[test]
fn a_hand_copied_certificate_survives_every_operation() {
    // A foreign certificate and an unreadable file in my/ are never touched
    // by writes or recovery.
    let fx = fixture();
    let foreign = material(false);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("store")).expect("open");
    let copied = store.root().join("my/from-the-admin");
    std::fs::create_dir_all(&copied).expect("mkdir");
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\r\n{}\r\n-----END CERTIFICATE-----\r\n",
        base64::engine::general_purpose::STANDARD.encode(&foreign.der)
    );
    std::fs::write(copied.join("cert.pem"), &pem).expect("write");
    let broken = store.root().join("my/broken");
    std::fs::create_dir_all(&broken).expect("mkdir");
    std::fs::write(broken.join("cert.pem"), b"\x00\x01garbage").expect("write");

    let lock = store.lock().expect("lock");
    for case in cases() {
        let setup = (case.setup)(&store, &lock, &fx);
        let _ = (case.op)(&store, &lock, &fx, &setup);
        store.recover(&lock).expect("recover");
    }
    assert_eq!(
        std::fs::read_to_string(copied.join("cert.pem")).expect("kept"),
        pem
    );
    assert_eq!(
        std::fs::read(broken.join("cert.pem")).expect("kept"),
        b"\x00\x01garbage"
    );
    let snap = store.snapshot().expect("snapshot");
    let c = snap
        .certificates
        .iter()
        .find(|c| c.path == copied)
        .expect("the copied certificate is read");
    assert!(c.info.template.is_none(), "foreign");
    assert_eq!(snap.unparseable.len(), 1, "{:?}", snap.unparseable);
    assert_eq!(snap.unparseable[0].path, broken.join("cert.pem"));
    let err = store
        .archive(&lock, &foreign.thumb, "expired", NOW)
        .expect_err("foreign");
    assert!(matches!(err, StoreError::Foreign { .. }), "{err}");
}

// ----- symbolic links: the store never follows a link it did not make -----

/// A folder outside the store with files and a mode of its own, to check
/// afterwards that nothing was done to it through a link.
struct Outside {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Outside {
    fn new() -> Outside {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("precious");
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::write(dir.join("key.pem"), "not the store's key\n").expect("write");
        std::fs::write(dir.join("meta.toml"), "owner = \"someone else\"\n").expect("write");
        // Named as the store names trust certificates: a target for removal.
        std::fs::write(dir.join(format!("{}.pem", "ab".repeat(20))), "x\n").expect("write");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        Outside { _tmp: tmp, dir }
    }

    /// The files and the folder's mode are as [`Outside::new`] left them.
    fn assert_intact(&self, context: &str) {
        use std::os::unix::fs::PermissionsExt;
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)
            .expect("read outside")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let mut want = vec![
            format!("{}.pem", "ab".repeat(20)),
            "key.pem".to_string(),
            "meta.toml".to_string(),
        ];
        want.sort();
        assert_eq!(names, want, "{context}: files of the outside folder");
        assert_eq!(
            std::fs::read_to_string(self.dir.join("key.pem")).expect("read"),
            "not the store's key\n",
            "{context}"
        );
        let mode = std::fs::metadata(&self.dir)
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o755, "{context}: the outside folder was chmodded");
    }
}

fn link(target: &Path, at: &Path) {
    std::os::unix::fs::symlink(target, at).expect("symlink");
}

/// The finding: a link at `request/.partial-*` made recovery delete every
/// file of the folder it pointed to. Now recovery leaves it alone and the
/// snapshot reports it; the same for the other places recovery walks.
#[test]
fn recovery_never_empties_a_folder_through_a_link() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("store")).expect("open");
    let outside = Outside::new();
    let planted = [
        store
            .root()
            .join("request/.partial-20260501T120000Z-deadbeef"),
        store.root().join("request/.done-x-0123456789abcdef"),
        store.root().join("request/20260501T120000Z-cafef00d"),
        store
            .root()
            .join(format!("my/.partial-{}-0123456789abcdef", "cd".repeat(20))),
        store.root().join("my/from-a-link"),
    ];
    for at in &planted {
        link(&outside.dir, at);
    }
    let lock = store.lock().expect("lock");
    store.recover(&lock).expect("recover");
    store.recover(&lock).expect("recover again");
    outside.assert_intact("after recovery");

    let snap = store.snapshot().expect("snapshot");
    let reported: Vec<&Path> = snap.unparseable.iter().map(|u| u.path.as_path()).collect();
    for at in &planted {
        assert!(
            reported.contains(&at.as_path()),
            "{at:?} not reported: {reported:?}"
        );
        assert!(
            at.symlink_metadata()
                .expect("still there")
                .file_type()
                .is_symlink()
        );
    }
    for u in &snap.unparseable {
        assert!(u.problem.contains("symbolic link"), "{u:?}");
    }

    // Operations naming the linked request refuse it.
    let err = store
        .abandon_request(&lock, "20260501T120000Z-cafef00d", "denied", NOW)
        .expect_err("a link");
    assert!(matches!(err, StoreError::Link { .. }), "{err}");
    let err = store
        .request_key("20260501T120000Z-cafef00d")
        .expect_err("a link");
    assert!(matches!(err, StoreError::Link { .. }), "{err}");
    outside.assert_intact("after the refused operations");
}

/// The finding: a link at `trust/roots` made the store chmod the outside
/// folder and delete files there. Now opening the store refuses it before
/// anything is changed; the same for every folder of the layout.
#[test]
fn a_layout_folder_that_is_a_link_is_refused_untouched() {
    for folder in ["trust/roots", "trust", "my", "request", "archive/requests"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("store");
        let store = Store::open(&root).expect("open");
        drop(store);
        let at = root.join(folder);
        std::fs::remove_dir_all(&at).expect("rmdir");
        let outside = Outside::new();
        link(&outside.dir, &at);
        let err = Store::open(&root).expect_err("a link in the layout");
        assert!(
            matches!(err, StoreError::Link { ref path } if *path == at),
            "{folder}: {err}"
        );
        assert!(err.to_string().contains("symbolic link"), "{err}");
        outside.assert_intact(folder);
    }
}

/// A certificate file of `trust/<kind>/` that is a link is neither read,
/// replaced nor removed: the trust update of that kind is refused.
#[test]
fn a_trust_file_that_is_a_link_is_refused() {
    let fx = fixture();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("store")).expect("open");
    let outside = Outside::new();
    let name = format!("{}.pem", "ab".repeat(20));
    let at = store.root().join("trust/roots").join(&name);
    link(&outside.dir.join(&name), &at);
    let lock = store.lock().expect("lock");
    let err = store
        .write_trust(&lock, TrustKind::Roots, &[fx.ca[0].der.clone()])
        .expect_err("a link");
    assert!(matches!(err, StoreError::Link { .. }), "{err}");
    // Not published any more: still not removed.
    let err = store
        .write_trust(&lock, TrustKind::Roots, &[])
        .expect_err("a link");
    assert!(matches!(err, StoreError::Link { .. }), "{err}");
    assert!(
        at.symlink_metadata()
            .expect("kept")
            .file_type()
            .is_symlink()
    );
    outside.assert_intact("after trust updates");
}

/// The finding: a `state.toml` link to a copy of `/etc/shadow` made an
/// error message print the first line of the target. Now the link is
/// refused by name, nothing of the target is read into any message, and the
/// target is neither renamed nor overwritten.
#[test]
fn a_state_file_that_is_a_link_is_refused_without_quoting_its_target() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("store")).expect("open");
    let secret_dir = tempfile::tempdir().expect("tempdir");
    let secret = secret_dir.path().join("shadow");
    let line = "root:$6$Zq0s3cr3tSaltAndHash:19000:0:99999:7:::";
    std::fs::write(&secret, format!("{line}\ndaemon:*:19000:0:99999:7:::\n")).expect("write");
    let state = store.root().join("state.toml");
    link(&secret, &state);

    let lock = store.lock().expect("lock");
    let errors = [
        store.read_state().expect_err("a link"),
        store
            .write_state(&lock, &State::default())
            .expect_err("a link"),
        store.recover(&lock).expect_err("a link"),
    ];
    for err in errors {
        let text = format!("{err} {err:?}");
        assert!(matches!(err, StoreError::Link { .. }), "{text}");
        assert!(
            !text.contains("Zq0s3cr3t") && !text.contains("root:"),
            "{text}"
        );
    }
    assert!(
        state
            .symlink_metadata()
            .expect("kept")
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        std::fs::read_to_string(&secret).expect("read"),
        format!("{line}\ndaemon:*:19000:0:99999:7:::\n")
    );
}

/// A key or metadata file of an entry that is a link to someone else's
/// file: reported as a link, and the report holds nothing of the target.
#[test]
fn entry_files_that_are_links_are_reported_not_read() {
    let fx = fixture();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("store")).expect("open");
    let lock = store.lock().expect("lock");
    store
        .install(&lock, &fx.old.der, fx.old.key_pem.as_bytes(), &meta())
        .expect("install");
    let entry = store.root().join("my").join(&fx.old.thumb);
    let secret_dir = tempfile::tempdir().expect("tempdir");
    let secret = secret_dir.path().join("secret.toml");
    std::fs::write(&secret, "password = \"Zq0s3cr3t\"\n").expect("write");
    std::fs::remove_file(entry.join("meta.toml")).expect("rm");
    link(&secret, &entry.join("meta.toml"));
    let snap = store.snapshot().expect("snapshot");
    let u = snap
        .unparseable
        .iter()
        .find(|u| u.path == entry.join("meta.toml"))
        .expect("reported");
    assert!(u.problem.contains("symbolic link"), "{u:?}");
    assert!(!format!("{snap:?}").contains("Zq0s3cr3t"));
    // Archiving marks the entry in meta.toml: refused, the target untouched.
    let _ = store.archive(&lock, &fx.old.thumb, "expired", NOW);
    assert_eq!(
        std::fs::read_to_string(&secret).expect("read"),
        "password = \"Zq0s3cr3t\"\n"
    );
}

/// A link at the lock file is refused: opening it for writing would open
/// (and could create) whatever it points to.
#[test]
fn a_lock_file_that_is_a_link_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("store")).expect("open");
    let outside = tempfile::tempdir().expect("tempdir");
    let target = outside.path().join("created-through-the-link");
    link(&target, &store.root().join("lock"));
    let err = store.lock().expect_err("a link");
    assert!(matches!(err, StoreError::Link { .. }), "{err}");
    assert!(!target.exists(), "the lock was created through the link");
}
