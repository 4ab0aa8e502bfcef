//! Shared setup of the integration tests: a private lab directory per test.

#![allow(dead_code)]

pub mod dns;
pub mod micromdm;

use autoenroll::directory::{self, Directory, DirectorySnapshot, Verdict};
use autoenroll::lab::{Lab, LabOptions};
use autoenroll::policy::Policy;

pub struct TestLab {
    // Field order matters: the lab (slapd) stops before its folder is removed.
    pub lab: Lab,
    pub tmp: tempfile::TempDir,
}

pub fn start(extra_ldif: Option<String>) -> TestLab {
    start_with(LabOptions {
        extra_ldif,
        ..LabOptions::default()
    })
}

/// A lab of either directory (`LabOptions::directory`).
pub fn start_with(options: LabOptions) -> TestLab {
    let tmp = tempfile::tempdir().expect("temp dir");
    let lab = Lab::start(&tmp.path().join("lab"), options).expect("lab starts");
    lab.write_policies().expect("policies");
    TestLab { lab, tmp }
}

/// The sample forest for tests that only read it: the directory named by
/// `AUTOENROLL_TEST_DIRECTORY_URL` (with StartTLS verified against
/// `AUTOENROLL_TEST_DIRECTORY_CA_FILE`; scripts/compose-test.sh points them at
/// the compose lab's `directory` container), else a private slapd.
pub fn start_forest() -> TestLab {
    let Ok(url) = std::env::var("AUTOENROLL_TEST_DIRECTORY_URL") else {
        return start(None);
    };
    let ca = std::env::var("AUTOENROLL_TEST_DIRECTORY_CA_FILE")
        .expect("AUTOENROLL_TEST_DIRECTORY_CA_FILE: the directory's TLS CA");
    eprintln!("the sample forest at {url}");
    let tmp = tempfile::tempdir().expect("temp dir");
    let lab = Lab::attach(&tmp.path().join("lab"), &url, std::path::Path::new(&ca))
        .expect("lab attaches");
    lab.write_policies().expect("policies");
    TestLab { lab, tmp }
}

impl TestLab {
    pub fn policy(&self, account: &str) -> Policy {
        Policy::load(&self.lab.policy_path(account)).expect("lab policy loads")
    }

    pub async fn snapshot(&self, account: &str) -> DirectorySnapshot {
        let policy = self.policy(account);
        let mut dir = Directory::connect(&policy.directory)
            .await
            .expect("connects");
        let acct = match &policy.directory.bind {
            autoenroll::policy::Bind::Simple { user, .. } => user.clone(),
            _ => unreachable!("lab policies bind simply"),
        };
        dir.snapshot(&acct).await.expect("snapshot")
    }

    pub async fn verdicts(&self, account: &str) -> Vec<Verdict> {
        let policy = self.policy(account);
        let snap = self.snapshot(account).await;
        directory::judge(
            &snap,
            directory::Options {
                context: policy.context,
                allow_prompts: policy.allow_prompts,
            },
            time::OffsetDateTime::now_utc(),
        )
    }
}

/// The lab's CA, run in the test process with a clock the test moves.
pub struct TestCa {
    pub authority: std::sync::Arc<autoenroll::ca::Authority>,
    pub listening: Option<autoenroll::ca::server::Listening>,
    pub clock: std::sync::Arc<autoenroll::clock::ManualClock>,
    pub config: autoenroll::ca::CaConfig,
    /// The WSTEP endpoint with the port actually bound.
    pub endpoint: String,
    /// The CA certificate as the directory publishes it.
    pub ca_certificate: Vec<u8>,
}

impl TestLab {
    /// Writes the lab's `ca.toml`, runs `ca init` at `now` and serves.
    pub async fn start_ca(&self, now: time::OffsetDateTime) -> TestCa {
        self.start_ca_with(now, "").await
    }

    /// [`TestLab::start_ca`] with `extra` TOML appended to `ca.toml` (tables
    /// such as `[ndes]`).
    pub async fn start_ca_with(&self, now: time::OffsetDateTime, extra: &str) -> TestCa {
        use std::sync::Arc;
        let https = free_port();
        let http = free_port();
        let path = self.lab.write_ca_config(https, http).expect("ca.toml");
        if !extra.is_empty() {
            let mut text = std::fs::read_to_string(&path).expect("ca.toml");
            text.push('\n');
            text.push_str(extra);
            std::fs::write(&path, text).expect("ca.toml");
        }
        let config = autoenroll::ca::CaConfig::load(&path).expect("ca.toml loads");
        autoenroll::ca::init::init(&config, now)
            .await
            .expect("ca init");
        let clock = Arc::new(autoenroll::clock::ManualClock::new(now));
        let authority = Arc::new(
            autoenroll::ca::Authority::open(config.clone(), clock.clone()).expect("CA opens"),
        );
        let listening = autoenroll::ca::server::start(authority.clone())
            .await
            .expect("CA serves");
        let snap = self.snapshot("ws01").await;
        let service = snap
            .services
            .iter()
            .find(|s| s.cn == "corp-CA")
            .expect("corp-CA published");
        let ca_certificate = service
            .ca_certificates
            .first()
            .cloned()
            .expect("cACertificate published");
        let endpoint = service
            .enrollment_servers
            .first()
            .expect("msPKI-Enrollment-Servers published")
            .url
            .clone();
        TestCa {
            authority,
            listening: Some(listening),
            clock,
            config,
            endpoint,
            ca_certificate,
        }
    }
}

impl TestLab {
    /// `ldapmodify` / `ldapadd` (`tool`) as the lab's directory administrator
    /// over StartTLS.
    pub fn admin(&self, tool: &str, ldif: &str) {
        let file = self.tmp.path().join("change.ldif");
        std::fs::write(&file, ldif).expect("LDIF written");
        run(std::process::Command::new(tool)
            .env("LDAPTLS_CACERT", &self.lab.tls_ca_file)
            .args([
                "-x",
                "-Z",
                "-H",
                &self.lab.url,
                "-D",
                &self.lab.admin_dn,
                "-y",
            ])
            .arg(self.lab.dir.join("admin.secret"))
            .arg("-f")
            .arg(&file));
    }
}

impl TestCa {
    /// A WSTEP client logged in as a sample account.
    pub fn client(&self, account: &str) -> autoenroll::enroll::EnrollmentClient {
        let sample = autoenroll::lab::SAMPLE_ACCOUNTS
            .iter()
            .find(|a| a.name == account)
            .expect("a sample account");
        autoenroll::enroll::EnrollmentClient::new(
            std::slice::from_ref(&self.ca_certificate),
            Some(autoenroll::wstep::UsernameToken {
                username: sample.dn.to_string(),
                password: sample.password(),
            }),
            std::time::Duration::from_secs(20),
        )
        .expect("client")
    }

    /// A client without credentials (renewals authenticated by signature).
    pub fn anonymous_client(&self) -> autoenroll::enroll::EnrollmentClient {
        autoenroll::enroll::EnrollmentClient::new(
            std::slice::from_ref(&self.ca_certificate),
            None,
            std::time::Duration::from_secs(20),
        )
        .expect("client")
    }

    pub async fn stop(&mut self) {
        if let Some(l) = self.listening.take() {
            l.stop().await;
        }
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Runs a command and returns its stdout; panics with its stderr on failure.
pub fn run(cmd: &mut std::process::Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (is it installed?)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts that the CA database holds the denial `outcome` reports: the
/// fault's request id names a Denied record with exactly `code`.
pub fn assert_denial_recorded(ca: &TestCa, outcome: &autoenroll::enroll::Outcome, code: u32) {
    let autoenroll::enroll::Outcome::Denied {
        request_id,
        message,
        ..
    } = outcome
    else {
        panic!("expected a denial, got {outcome:?}");
    };
    let id = request_id.unwrap_or_else(|| panic!("the denial names no request: {message}"));
    let record = ca
        .authority
        .db()
        .get(id)
        .expect("database readable")
        .unwrap_or_else(|| panic!("request {id} is not in the database"));
    assert_eq!(
        record.disposition,
        autoenroll::ca::db::Disposition::Denied,
        "{record:?}"
    );
    assert_eq!(record.hresult, Some(code), "{}", record.reason);
}

/// A self-signed certificate for `cn` and its key: a certificate no CA of
/// the lab issued.
pub fn foreign_certificate(cn: &str) -> (Vec<u8>, autoenroll::pki::keys::PrivateKey) {
    use autoenroll::pki::keys::{KeyAlgorithm, PrivateKey};
    let key = PrivateKey::generate(KeyAlgorithm::Rsa { bits: 2048 }).expect("key");
    let mut params = rcgen::CertificateParams::new(vec![cn.to_string()]).expect("params");
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let cert = params
        .self_signed(&key.rcgen_key_pair().expect("key pair"))
        .expect("self-signed");
    (cert.der().to_vec(), key)
}

/// A certificate that copies the issuer name and serial number of `real`
/// (issued by the CA whose certificate is `ca_certificate`) but is signed by
/// another key: a forgery only a byte comparison tells apart.
pub fn forged_copy(
    real: &[u8],
    ca_certificate: &[u8],
) -> (Vec<u8>, autoenroll::pki::keys::PrivateKey) {
    use autoenroll::pki::keys::{KeyAlgorithm, PrivateKey};
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, parsed) = X509Certificate::from_der(real).expect("a certificate");
    let fake_ca_key = PrivateKey::generate(KeyAlgorithm::Rsa { bits: 2048 })
        .expect("key")
        .rcgen_key_pair()
        .expect("key pair");
    // The CA's name as its certificate encodes it (two DC components, which
    // rcgen writes only through the CA's stand-in).
    let issuer = autoenroll::ca::issue::ca_issuer(ca_certificate, fake_ca_key).expect("issuer");
    let key = PrivateKey::generate(KeyAlgorithm::Rsa { bits: 2048 }).expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.serial_number = Some(parsed.serial.to_bytes_be().into());
    params.not_before = parsed.validity().not_before.to_datetime();
    params.not_after = parsed.validity().not_after.to_datetime();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "forged");
    let cert = params
        .signed_by(&key.rcgen_key_pair().expect("key pair"), &issuer)
        .expect("signed");
    let der = autoenroll::ca::issue::restore_issuer_name(cert.der(), issuer.key()).expect("named");
    (der, key)
}

/// Now in whole seconds: certificates carry no fractions.
pub fn start_time() -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(time::OffsetDateTime::now_utc().unix_timestamp())
        .unwrap()
}

/// The template `cn` as ws01 reads it from the lab directory.
pub async fn template(lab: &TestLab, cn: &str) -> autoenroll::model::Template {
    lab.snapshot("ws01")
        .await
        .templates
        .into_iter()
        .find(|t| t.template.cn == cn)
        .unwrap_or_else(|| panic!("template {cn} in the directory"))
        .template
}

/// A fresh RSA 2048 key.
pub fn rsa() -> autoenroll::pki::keys::PrivateKey {
    use autoenroll::pki::keys::{KeyAlgorithm, PrivateKey};
    PrivateKey::generate(KeyAlgorithm::Rsa { bits: 2048 }).unwrap()
}

/// ws01's store in the lab.
pub fn store(lab: &TestLab) -> autoenroll::store::Store {
    autoenroll::store::Store::open(&lab.policy("ws01").store).unwrap()
}

/// Thumbprints of ws01's current certificates of a template.
pub fn current(lab: &TestLab, template: &str) -> Vec<String> {
    store(lab)
        .snapshot()
        .unwrap()
        .certificates
        .iter()
        .filter(|c| c.meta.template.as_deref() == Some(template))
        .map(|c| c.info.thumbprint.clone())
        .collect()
}

/// A PKCS#10 request made by `openssl req` with a new key (`rsa:1024`...).
pub fn openssl_csr(dir: &std::path::Path, newkey: &str) -> Vec<u8> {
    let out = dir.join("openssl-req.der");
    run(std::process::Command::new("openssl")
        .args([
            "req", "-new", "-nodes", "-newkey", newkey, "-subj", "/CN=ws01",
        ])
        .arg("-keyout")
        .arg(dir.join("openssl-req.key"))
        .args(["-outform", "DER", "-out"])
        .arg(&out));
    std::fs::read(out).unwrap()
}

/// An enrollment client of the CA that sends `username` and `password` in
/// its UsernameToken, whatever form the name takes.
pub fn client_with(
    ca: &TestCa,
    username: &str,
    password: &str,
) -> autoenroll::enroll::EnrollmentClient {
    autoenroll::enroll::EnrollmentClient::new(
        std::slice::from_ref(&ca.ca_certificate),
        Some(autoenroll::wstep::UsernameToken {
            username: username.into(),
            password: password.into(),
        }),
        std::time::Duration::from_secs(30),
    )
    .unwrap()
}

/// How many requests the CA's database holds.
pub fn row_count(ca: &TestCa) -> usize {
    ca.authority
        .db()
        .list(autoenroll::ca::db::ListFilter::All)
        .unwrap()
        .len()
}

/// The serial number of ws01's current certificate `thumbprint`.
pub fn serial_of(lab: &TestLab, thumbprint: &str) -> String {
    store(lab)
        .snapshot()
        .unwrap()
        .certificates
        .iter()
        .find(|c| c.info.thumbprint == thumbprint)
        .unwrap()
        .info
        .serial
        .clone()
}

/// The id the CA gave a request held pending there.
pub fn ca_request_id(pending: &autoenroll::store::PendingRequest) -> u64 {
    pending.ca_request_id.as_deref().unwrap().parse().unwrap()
}
