//! Keys that never leave a token: SoftHSM2 (Debian's `softhsm2`, a PKCS#11
//! implementation we did not write) holds the keys of ws01's ShortLived and
//! WorkstationAuth certificates. Pulses against the lab enroll them (the
//! CSR signed on the token), renew ShortLived (the renewal CMS signed on the
//! token with the old key, a new key generated there), and the store never
//! holds a private key, only references.
//!
//! One test in this binary: SoftHSM2 reads its configuration
//! (`SOFTHSM2_CONF`) once per process, when the module is first loaded.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use autoenroll::keystore::{self, KeyStorage};
use autoenroll::pki::keyref::{KeyReference, TokenSettings};
use autoenroll::pki::keys::{KeyAlgorithm, verify_signature};
use autoenroll::policy::Policy;
use autoenroll::pulse::{Event, PulseOptions, Report, pulse};
use autoenroll::store::KeyStatus;
use common::{TestCa, run, start_time, store};
use time::OffsetDateTime;

const MINUTE: Duration = Duration::from_secs(60);
const TOKEN: &str = "autoenroll-test";
const PIN: &str = "4711-token";

fn softhsm_module() -> PathBuf {
    [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/lib64/pkcs11/libsofthsm2.so",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
    .expect("SoftHSM2's PKCS#11 module (Debian: softhsm2)")
}

/// A SoftHSM2 of this test: its own token folder and configuration, one
/// token initialised with a user PIN kept in a 0600 file.
fn softhsm(dir: &Path) -> TokenSettings {
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    // SAFETY: the only test of this binary sets it first, before any thread
    // of its own reads the environment or loads the module.
    unsafe { std::env::set_var("SOFTHSM2_CONF", &conf) };
    run(Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", &conf)
        .args(["--init-token", "--free", "--label", TOKEN, "--pin", PIN])
        .args(["--so-pin", "so-pin-0815"]));
    let pin_file = dir.join("token.pin");
    std::fs::write(&pin_file, format!("{PIN}\n")).unwrap();
    std::fs::set_permissions(&pin_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    TokenSettings {
        module: softhsm_module(),
        token: TOKEN.into(),
        pin_file,
    }
}

async fn pulse_at(policy: &Policy, ca: &TestCa, at: OffsetDateTime) -> Report {
    ca.clock.set(at);
    pulse(policy, PulseOptions::at(at))
        .await
        .expect("pulse runs")
}

fn events(report: &Report, event: Event) -> Vec<String> {
    let mut v: Vec<String> = report
        .outcomes
        .iter()
        .filter(|o| o.event == event)
        .map(|o| o.template.clone().unwrap_or_default())
        .collect();
    v.sort();
    v
}

/// Every file under `root` with its contents.
fn files(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                dirs.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap_or_default()));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_on_softhsm2_enroll_renew_and_never_reach_the_store() {
    let lab = common::start(None);
    let token = softhsm(&lab.tmp.path().join("softhsm"));

    // 1. The token's keys sign as key files do: each algorithm a template
    // may ask for, generated there, verified with the public key; and a
    // reference opens the same key again.
    let storage = KeyStorage::Pkcs11(token.clone());
    for alg in [
        KeyAlgorithm::Rsa { bits: 2048 },
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::EcdsaP384,
    ] {
        let key = keystore::generate(&storage, alg, "autoenroll test").unwrap();
        assert!(key.is_external());
        assert_eq!(key.algorithm(), alg);
        assert_eq!(key.exportable_pem(), None);
        let signature = key.sign(b"to be signed").unwrap();
        verify_signature(
            &key.public_key_der(),
            alg.signature_algorithm_oid(),
            b"to be signed",
            &signature,
        )
        .unwrap_or_else(|e| panic!("{alg}: {e}"));
        let stored = key.stored_form();
        assert!(!String::from_utf8_lossy(&stored).contains("PRIVATE KEY"));
        let again = keystore::open(&stored).unwrap();
        assert_eq!(again.public_key_der(), key.public_key_der());
        let signature = again.sign(b"again").unwrap();
        verify_signature(
            &key.public_key_der(),
            alg.signature_algorithm_oid(),
            b"again",
            &signature,
        )
        .unwrap();
    }
    // A wrong PIN is refused by the token, named, and not quoted.
    let wrong_pin = lab.tmp.path().join("wrong.pin");
    std::fs::write(&wrong_pin, "0000\n").unwrap();
    std::fs::set_permissions(&wrong_pin, std::fs::Permissions::from_mode(0o600)).unwrap();
    let wrong = KeyStorage::Pkcs11(TokenSettings {
        pin_file: wrong_pin,
        ..token.clone()
    });
    let e = keystore::generate(&wrong, KeyAlgorithm::EcdsaP256, "x").unwrap_err();
    assert!(e.contains("login") && !e.contains("0000"), "{e}");
    // A PIN file others can read is refused before the token is asked.
    let loose = lab.tmp.path().join("loose.pin");
    std::fs::write(&loose, format!("{PIN}\n")).unwrap();
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = keystore::generate(
        &KeyStorage::Pkcs11(TokenSettings {
            pin_file: loose,
            ..token.clone()
        }),
        KeyAlgorithm::EcdsaP256,
        "x",
    )
    .unwrap_err();
    assert!(e.contains("chmod 600"), "{e}");
    // No such token.
    let e = keystore::generate(
        &KeyStorage::Pkcs11(TokenSettings {
            token: "absent".into(),
            ..token.clone()
        }),
        KeyAlgorithm::EcdsaP256,
        "x",
    )
    .unwrap_err();
    assert!(e.contains("no token labelled \"absent\""), "{e}");

    // 2. Pulses: ShortLived and WorkstationAuth keep their keys on the token.
    let text = std::fs::read_to_string(lab.lab.policy_path("ws01")).unwrap();
    let pkcs11 = format!(
        "key_storage = \"pkcs11\"\npkcs11 = {{ module = \"{}\", token = \"{TOKEN}\", pin_file = \"{}\" }}\n",
        token.module.display(),
        token.pin_file.display()
    );
    let path = lab.lab.dir.join("token.toml");
    std::fs::write(
        &path,
        format!(
            "{text}\n[templates.ShortLived]\n{pkcs11}\n[templates.WorkstationAuth]\n{pkcs11}\n\
             [templates.WorkstationAuth.export]\ncertificate = \"out/ws.pem\"\nkey = \"out/ws.key\"\n"
        ),
    )
    .unwrap();
    let policy = Policy::load(&path).unwrap();
    let t0 = start_time();
    let ca = lab.start_ca(t0).await;
    let first = pulse_at(&policy, &ca, t0).await;
    assert_eq!(
        events(&first, Event::Installed),
        ["ShortLived", "WorkstationAuth"],
        "{first:#?}"
    );
    // The key cannot be exported, and says why; the certificate is.
    let hook_failed: Vec<&str> = first
        .outcomes
        .iter()
        .filter(|o| o.event == Event::HookFailed)
        .map(|o| o.message.as_str())
        .collect();
    assert_eq!(hook_failed.len(), 1, "{first:#?}");
    assert!(
        hook_failed[0].contains("never leaves it"),
        "{hook_failed:?}"
    );
    assert!(lab.lab.dir.join("out/ws.pem").is_file());
    assert!(!lab.lab.dir.join("out/ws.key").exists());

    let held = store(&lab).snapshot().unwrap();
    let on_token: Vec<_> = held
        .certificates
        .iter()
        .filter(|c| {
            matches!(
                c.meta.template.as_deref(),
                Some("ShortLived" | "WorkstationAuth")
            )
        })
        .collect();
    assert_eq!(on_token.len(), 2);
    for c in &on_token {
        // The planner's key check: paired, as with a key file.
        assert_eq!(c.key, KeyStatus::Paired, "{}", c.path.display());
        assert!(!c.path.join("key.pem").exists(), "no key file");
        let reference = std::fs::read(c.path.join("key.ref")).unwrap();
        let reference = KeyReference::parse(&reference).unwrap();
        assert_eq!(reference.public_key, c.info.public_key);
        assert_eq!(reference.token.token, TOKEN);
        let mode = std::fs::metadata(c.path.join("key.ref"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Nothing anywhere in the store is a private key of these certificates
    // (the other templates of ws01 keep key files, as by default).
    for (path, bytes) in files(&policy.store) {
        let text = String::from_utf8_lossy(&bytes);
        if text.contains("PRIVATE KEY") {
            assert!(
                !on_token.iter().any(|c| path.starts_with(&c.path)),
                "{} holds a private key",
                path.display()
            );
        }
    }

    // A second pulse does nothing: the keys' checks pass.
    let second = pulse_at(&policy, &ca, t0 + MINUTE).await;
    assert!(!second.changed_anything(), "{second:#?}");

    // 3. Renewal at ShortLived's 80% point: signed on the token with the old
    // key (the CA checks the CMS signature), a new key generated there.
    let old = on_token
        .iter()
        .find(|c| c.meta.template.as_deref() == Some("ShortLived"))
        .unwrap();
    let old_public = old.info.public_key.clone();
    let r = pulse_at(&policy, &ca, t0 + 49 * MINUTE).await;
    assert_eq!(events(&r, Event::Replaced), ["ShortLived"], "{r:#?}");
    assert!(
        events(&r, Event::EnrollingAnew).is_empty(),
        "a real renewal: {r:#?}"
    );
    let held = store(&lab).snapshot().unwrap();
    let renewed = held
        .certificates
        .iter()
        .find(|c| c.meta.template.as_deref() == Some("ShortLived"))
        .unwrap();
    assert_ne!(renewed.info.public_key, old_public, "a new key");
    assert_eq!(renewed.key, KeyStatus::Paired);
    assert!(!renewed.path.join("key.pem").exists());
    let record = ca
        .authority
        .db()
        .list(autoenroll::ca::db::ListFilter::All)
        .unwrap()
        .into_iter()
        .max_by_key(|r| r.id)
        .unwrap();
    // What the CA received is CMS SignedData (RFC 5652 5.1, id-signedData
    // 1.2.840.113549.1.7.2), not a bare PKCS#10.
    const SIGNED_DATA: [u8; 11] = [
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02,
    ];
    assert_eq!(record.template.as_deref(), Some("ShortLived"));
    assert!(
        record.request[..20].windows(11).any(|w| w == SIGNED_DATA),
        "the CA received a renewal"
    );
    // The renewed key opens from its reference and signs.
    let reference = std::fs::read(renewed.path.join("key.ref")).unwrap();
    let key = keystore::open(&reference).unwrap();
    assert_eq!(key.public_key_der(), renewed.info.public_key);
}
