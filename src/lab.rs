//! A disposable local lab: a private slapd on a free loopback port, loaded with
//! the AD CS schema and the sample forest of `ldif/`, with TLS (StartTLS) from a
//! lab certificate authority, and one policy file per sample account.
//!
//! The demo (`autoenroll lab up`) and the integration tests use this same code.
//! The `ldif/` files are compiled into the binary so an installed `autoenroll`
//! can run the lab without the source tree.

use std::fs;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::model::Context;

pub mod kdc;
pub use kdc::{Kdc, REALM};
mod samba;
pub use samba::SAMBA_ADMIN_DN;

/// The files of `ldif/`, embedded.
const LDIF_FILES: [(&str, &str); 5] = [
    ("ad.schema", include_str!("../ldif/ad.schema")),
    ("rootdse.ldif", include_str!("../ldif/rootdse.ldif")),
    ("forest.ldif", include_str!("../ldif/forest.ldif")),
    ("slapd.conf.in", include_str!("../ldif/slapd.conf.in")),
    ("core.schema", include_str!("../ldif/core.schema")),
];

/// A sample account of the forest, with the password the lab gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleAccount {
    pub name: &'static str,
    pub dn: &'static str,
    pub context: Context,
}

impl SampleAccount {
    pub fn password(&self) -> String {
        format!("{}-Lab-Passw0rd", self.name)
    }
}

/// The accounts `lab up` writes policies for.
pub const SAMPLE_ACCOUNTS: [SampleAccount; 6] = [
    SampleAccount {
        name: "ws01",
        dn: "CN=ws01,CN=Computers,DC=corp,DC=example",
        context: Context::Machine,
    },
    SampleAccount {
        name: "web01",
        dn: "CN=web01,CN=Computers,DC=corp,DC=example",
        context: Context::Machine,
    },
    SampleAccount {
        name: "nodns01",
        dn: "CN=nodns01,CN=Computers,DC=corp,DC=example",
        context: Context::Machine,
    },
    SampleAccount {
        name: "alice",
        dn: "CN=alice,CN=Users,DC=corp,DC=example",
        context: Context::User,
    },
    SampleAccount {
        name: "bob",
        dn: "CN=bob,CN=Users,DC=corp,DC=example",
        context: Context::User,
    },
    SampleAccount {
        name: "carol",
        dn: "CN=carol,CN=Users,DC=corp,DC=example",
        context: Context::User,
    },
];

/// The directory administrator of the lab (slapd's rootdn).
pub const ADMIN_DN: &str = "CN=admin,DC=corp,DC=example";

#[derive(Debug, Error)]
pub enum LabError {
    #[error("{0}")]
    Io(String),
    #[error(
        "{program} not found: install OpenLDAP (Debian/Ubuntu: apt-get install -y slapd ldap-utils)"
    )]
    Missing { program: String },
    #[error(
        "{program} not found: install MIT Kerberos (Debian/Ubuntu: apt-get install -y krb5-kdc krb5-user libsasl2-modules-gssapi-mit)"
    )]
    MissingKerberos { program: String },
    #[error("the lab's Kerberos realm: {0}")]
    Kerberos(String),
    #[error(
        "{program} not found: the Samba lab needs Samba (Debian/Ubuntu: apt-get install -y samba samba-ad-dc samba-ad-provision ldb-tools ldap-utils iproute2)"
    )]
    MissingSamba { program: String },
    #[error("the lab directory did not start: {0}")]
    Start(String),
    #[error("loading {file} failed: {output}")]
    Load { file: String, output: String },
}

fn io(what: impl std::fmt::Display, e: std::io::Error) -> LabError {
    LabError::Io(format!("{what}: {e}"))
}

/// Which directory server the lab runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DirectoryKind {
    /// A private slapd with the emulated AD schema and the sample forest.
    #[default]
    OpenLdap,
    /// A Samba AD DC provisioned on a private loopback address, loaded with
    /// the sample forest through Samba's interfaces (`lab/samba.rs`).
    Samba,
}

/// What to start.
#[derive(Debug, Clone, Default)]
pub struct LabOptions {
    /// slapd (the default) or a Samba AD DC.
    pub directory: DirectoryKind,
    /// Extra LDIF loaded after the forest (the benchmark's many templates).
    pub extra_ldif: Option<String>,
    /// Leave slapd running when the [`Lab`] is dropped (for `lab up`).
    pub detach: bool,
    /// Also start a private KDC for the realm `CORP.EXAMPLE` (see [`kdc`]):
    /// principals and keytabs for the sample accounts, the directory and the
    /// CA, and SASL GSSAPI in slapd.
    pub kerberos: bool,
}

/// A running lab directory. Dropping it stops slapd unless detached.
pub struct Lab {
    pub dir: PathBuf,
    /// `ldap://127.0.0.1:<port>`.
    pub url: String,
    /// `ldaps://127.0.0.1:<port>`: LDAP over TLS from the first byte, with
    /// the same certificate as StartTLS (AD serves both; some tools only
    /// speak LDAPS).
    pub ldaps_url: String,
    /// `ldapi://` URL of the lab's socket.
    pub ldapi_url: String,
    /// PEM of the lab CA that signed slapd's TLS certificate.
    pub tls_ca_file: PathBuf,
    /// The directory administrator's password (written to `admin.secret`).
    pub admin_password: String,
    /// The realm's KDC when the lab was started with `kerberos`.
    pub kdc: Option<Kdc>,
    /// The directory administrator: slapd's rootdn ([`ADMIN_DN`]) or Samba's
    /// Administrator ([`SAMBA_ADMIN_DN`]).
    pub admin_dn: String,
    pub directory: DirectoryKind,
    child: Option<Child>,
    detach: bool,
    /// Samba's loopback address, given back after Samba stopped.
    samba_address: Option<samba::Address>,
}

struct Tools {
    slapd: PathBuf,
    slapadd: PathBuf,
    module_dir: PathBuf,
    schema_dir: PathBuf,
}

fn find_program(name: &str) -> Result<PathBuf, LabError> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| LabError::Missing {
            program: name.into(),
        })
}

fn tools() -> Result<Tools, LabError> {
    let first_dir = |candidates: &[&str], what: &str| {
        candidates
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_dir())
            .ok_or_else(|| LabError::Missing {
                program: what.to_string(),
            })
    };
    Ok(Tools {
        slapd: find_program("slapd")?,
        slapadd: find_program("slapadd")?,
        module_dir: match std::env::var_os("AUTOENROLL_SLAPD_MODULES") {
            Some(d) => PathBuf::from(d),
            None => first_dir(
                &["/usr/lib/ldap", "/usr/lib64/openldap", "/usr/lib/openldap"],
                "OpenLDAP's module folder (back_mdb, dynlist)",
            )?,
        },
        schema_dir: match std::env::var_os("AUTOENROLL_SLAPD_SCHEMA") {
            Some(d) => PathBuf::from(d),
            None => first_dir(
                &["/etc/ldap/schema", "/etc/openldap/schema"],
                "OpenLDAP's schema folder (core.schema)",
            )?,
        },
    })
}

/// Writes a file readable only by its owner, atomically enough for a lab.
fn write_private(path: &Path, content: &[u8]) -> Result<(), LabError> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io(path.display(), e))?;
    f.write_all(content).map_err(|e| io(path.display(), e))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(|e| io(path.display(), e))
}

fn free_port() -> Result<u16, LabError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| io("finding a free port", e))?;
    Ok(l.local_addr()
        .map_err(|e| io("finding a free port", e))?
        .port())
}

/// Percent-encodes a socket path for an `ldapi://` URL.
fn ldapi_url(socket: &Path) -> String {
    let mut out = String::from("ldapi://");
    for b in socket.as_os_str().as_encoded_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(b) {
            out.push(*b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A lab TLS CA (`ca_name`) and a server certificate for `names` (CN
/// dc01.corp.example) in `dir/tls/`: `ca.pem`, `<stem>.pem` and `<stem>.key`
/// (0600). slapd's covers localhost and 127.0.0.1, Samba's its own address.
fn write_tls_as(
    dir: &Path,
    ca_name: &str,
    names: &[&str],
    stem: &str,
) -> Result<(PathBuf, PathBuf, PathBuf), LabError> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let err = |e: rcgen::Error| LabError::Io(format!("lab TLS certificate: {e}"));
    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca.distinguished_name.push(DnType::CommonName, ca_name);
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).map_err(err)?;
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = KeyPair::generate().map_err(err)?;
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .map_err(err)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "dc01.corp.example");
    let cert = params.signed_by(&key, &issuer).map_err(err)?;
    let tls = dir.join("tls");
    fs::create_dir_all(&tls).map_err(|e| io(tls.display(), e))?;
    let (ca_pem, cert_pem, key_pem) = (
        tls.join("ca.pem"),
        tls.join(format!("{stem}.pem")),
        tls.join(format!("{stem}.key")),
    );
    fs::write(&ca_pem, ca_cert.pem()).map_err(|e| io(ca_pem.display(), e))?;
    fs::write(&cert_pem, cert.pem()).map_err(|e| io(cert_pem.display(), e))?;
    write_private(&key_pem, key.serialize_pem().as_bytes())?;
    Ok((ca_pem, cert_pem, key_pem))
}

impl Lab {
    /// A lab over the sample forest served elsewhere (the compose lab's
    /// `directory` container): nothing is started or stopped. `tls_ca` (the
    /// CA of the directory's TLS certificate) is copied to `dir/tls/ca.pem`,
    /// so that [`Lab::write_policies`] points every account at `url` with
    /// StartTLS as for a private lab. There is no ldapi socket and no admin
    /// password: only what an account may do can be done.
    pub fn attach(dir: &Path, url: &str, tls_ca: &Path) -> Result<Lab, LabError> {
        let tls = dir.join("tls");
        fs::create_dir_all(&tls).map_err(|e| io(tls.display(), e))?;
        let dir = dir.canonicalize().map_err(|e| io(dir.display(), e))?;
        let ca_pem = dir.join("tls").join("ca.pem");
        fs::copy(tls_ca, &ca_pem).map_err(|e| io(tls_ca.display(), e))?;
        Ok(Lab {
            dir,
            url: url.to_string(),
            ldapi_url: String::new(),
            ldaps_url: String::new(),
            tls_ca_file: ca_pem,
            admin_password: String::new(),
            admin_dn: ADMIN_DN.to_string(),
            directory: DirectoryKind::OpenLdap,
            kdc: None,
            child: None,
            detach: false,
            samba_address: None,
        })
    }

    /// Creates `dir` (it must not hold a running lab), loads the forest and
    /// starts slapd.
    pub fn start(dir: &Path, options: LabOptions) -> Result<Lab, LabError> {
        if options.directory == DirectoryKind::Samba {
            return samba::start(dir, &options);
        }
        let tools = tools()?;
        fs::create_dir_all(dir).map_err(|e| io(dir.display(), e))?;
        let dir = dir.canonicalize().map_err(|e| io(dir.display(), e))?;
        let ldif_dir = dir.join("ldif");
        let data_dir = dir.join("data");
        let run_dir = dir.join("run");
        for d in [&ldif_dir, &run_dir] {
            fs::create_dir_all(d).map_err(|e| io(d.display(), e))?;
        }
        // A fresh database every time: the lab is disposable.
        if data_dir.exists() {
            fs::remove_dir_all(&data_dir).map_err(|e| io(data_dir.display(), e))?;
        }
        fs::create_dir_all(&data_dir).map_err(|e| io(data_dir.display(), e))?;
        fs::set_permissions(&data_dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| io(data_dir.display(), e))?;
        for (name, content) in LDIF_FILES {
            let p = ldif_dir.join(name);
            fs::write(&p, content).map_err(|e| io(p.display(), e))?;
        }
        let admin_password = random_password()?;
        write_private(&dir.join("admin.secret"), admin_password.as_bytes())?;
        let (ca_pem, cert_pem, key_pem) = write_tls_as(
            &dir,
            "autoenroll lab TLS CA",
            &["localhost", "127.0.0.1"],
            "slapd",
        )?;
        // The realm first: slapd reads its keytab on the first GSSAPI bind.
        let (kdc, realm) = if options.kerberos {
            let kdc = Kdc::start(&dir, options.detach)?;
            let realm = kdc.provision(&dir)?;
            (Some(kdc), Some(realm))
        } else {
            (None, None)
        };
        let tls_lines = format!(
            "TLSCACertificateFile {}\nTLSCertificateFile {}\nTLSCertificateKeyFile {}\n",
            ca_pem.display(),
            cert_pem.display(),
            key_pem.display()
        );
        let conf = LDIF_FILES[3]
            .1
            .replace("@LDIF_DIR@", &ldif_dir.display().to_string())
            .replace("@SCHEMA_DIR@", &tools.schema_dir.display().to_string())
            .replace("@MODULE_DIR@", &tools.module_dir.display().to_string())
            .replace("@DATA_DIR@", &data_dir.display().to_string())
            .replace("@RUN_DIR@", &run_dir.display().to_string())
            .replace("@ROOT_PW@", &admin_password)
            .replace("@TLS@", &tls_lines)
            .replace(
                "@SASL_ACCESS@",
                if kdc.is_some() {
                    kdc::SLAPD_SASL_ACCESS
                } else {
                    ""
                },
            )
            .replace(
                "@SASL@",
                &kdc.as_ref()
                    .map(|_| kdc::slapd_sasl_config())
                    .unwrap_or_default(),
            );
        let conf_path = dir.join("slapd.conf");
        write_private(&conf_path, conf.as_bytes())?;

        slapadd(&tools, &conf_path, &ldif_dir.join("forest.ldif"))?;
        if let Some(extra) = &options.extra_ldif {
            let p = dir.join("extra.ldif");
            fs::write(&p, extra).map_err(|e| io(p.display(), e))?;
            slapadd(&tools, &conf_path, &p)?;
        }

        let socket = run_dir.join("ldapi");
        let mut last_error = String::new();
        for _attempt in 0..3 {
            let port = free_port()?;
            let url = format!("ldap://127.0.0.1:{port}");
            let ldaps_port = free_port()?;
            let ldaps = format!("ldaps://127.0.0.1:{ldaps_port}");
            let ldapi = ldapi_url(&socket);
            let log_path = dir.join("slapd.log");
            let log = fs::File::create(&log_path).map_err(|e| io(log_path.display(), e))?;
            let log2 = log.try_clone().map_err(|e| io(log_path.display(), e))?;
            let mut cmd = Command::new(&tools.slapd);
            cmd.arg("-f")
                .arg(&conf_path)
                .arg("-h")
                .arg(format!("{url}/ {ldaps}/ {ldapi}"))
                .arg("-d")
                .arg("0")
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log2);
            if options.detach {
                use std::os::unix::process::CommandExt;
                cmd.process_group(0);
            }
            if let (Some(kdc), Some(realm)) = (&kdc, &realm) {
                kdc.env(&mut cmd);
                cmd.env(
                    "KRB5_KTNAME",
                    format!("FILE:{}", realm.ldap_keytab.display()),
                );
            }
            let child = cmd.spawn().map_err(|e| io(tools.slapd.display(), e))?;
            // The guard owns the child before anything else can fail.
            let mut lab = Lab {
                dir: dir.clone(),
                url,
                ldaps_url: ldaps,
                ldapi_url: ldapi,
                tls_ca_file: ca_pem.clone(),
                admin_password: admin_password.clone(),
                kdc: None,
                admin_dn: ADMIN_DN.to_string(),
                directory: DirectoryKind::OpenLdap,
                child: Some(child),
                detach: false,
                samba_address: None,
            };
            match lab.wait_ready(&[port, ldaps_port]) {
                Ok(()) => {
                    fs::write(
                        dir.join("slapd.pid"),
                        lab.child.as_ref().map(|c| c.id()).unwrap_or(0).to_string(),
                    )
                    .map_err(|e| io("slapd.pid", e))?;
                    fs::write(dir.join("url"), &lab.url).map_err(|e| io("url", e))?;
                    fs::write(dir.join("ldaps_url"), &lab.ldaps_url)
                        .map_err(|e| io("ldaps_url", e))?;
                    lab.detach = options.detach;
                    lab.kdc = kdc;
                    return Ok(lab);
                }
                Err(e) => last_error = e,
            }
        }
        Err(LabError::Start(last_error))
    }

    /// Waits until every one of `ports` accepts (the LDAP and the LDAPS
    /// listener: a test may use either first), or slapd exits.
    fn wait_ready(&mut self, ports: &[u16]) -> Result<(), String> {
        for &port in ports {
            self.wait_listening(port)?;
        }
        Ok(())
    }

    fn wait_listening(&mut self, port: u16) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                let log = fs::read_to_string(self.dir.join("slapd.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(10).collect();
                return Err(format!(
                    "slapd exited ({status}); slapd.log ends with:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                ));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("nothing listens on {addr} after 10 s"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Writes `<account>.toml` and its password file for every sample account;
    /// returns the policy paths.
    pub fn write_policies(&self) -> Result<Vec<PathBuf>, LabError> {
        let secrets = self.dir.join("secrets");
        fs::create_dir_all(&secrets).map_err(|e| io(secrets.display(), e))?;
        fs::set_permissions(&secrets, fs::Permissions::from_mode(0o700))
            .map_err(|e| io(secrets.display(), e))?;
        let mut written = Vec::new();
        for account in SAMPLE_ACCOUNTS {
            let secret = secrets.join(format!("{}.secret", account.name));
            write_private(&secret, account.password().as_bytes())?;
            let password_policy = format!(
                "# Lab policy for {name}: {context} context, simple bind over StartTLS.\n\
                 context = \"{context}\"\n\
                 store = \"stores/{name}\"\n\n\
                 [directory]\n\
                 url = \"{url}\"\n\
                 starttls = true\n\
                 ca_file = \"tls/ca.pem\"\n\
                 timeout = \"10s\"\n\
                 bind = \"simple\"\n\
                 user = \"{dn}\"\n\
                 password_file = \"secrets/{name}.secret\"\n",
                name = account.name,
                context = account.context,
                url = self.url,
                dn = account.dn,
            );
            let Some(kerberos_url) = self.kerberos_url() else {
                let path = self.policy_path(account.name);
                fs::write(&path, password_policy).map_err(|e| io(path.display(), e))?;
                written.push(path);
                continue;
            };
            // With a realm: `<name>.toml` binds with Kerberos (no password
            // anywhere), `<name>-password.toml` keeps the simple bind.
            let path = self.dir.join(format!("{}-password.toml", account.name));
            fs::write(&path, password_policy).map_err(|e| io(path.display(), e))?;
            let credentials = match account.context {
                Context::Machine => format!("keytab = \"keytabs/{}.keytab\"\n", account.name),
                Context::User => format!("ccache = \"ccache/{}\"\n", account.name),
            };
            let kerberos_policy = format!(
                "# Lab policy for {name}: {context} context, Kerberos over StartTLS\n\
                 # (SASL GSSAPI with channel binding, credentials from {what}).\n\
                 context = \"{context}\"\n\
                 store = \"stores/{name}\"\n\
                 krb5_conf = \"krb5.conf\"\n\n\
                 [directory]\n\
                 url = \"{kerberos_url}\"\n\
                 starttls = true\n\
                 ca_file = \"tls/ca.pem\"\n\
                 timeout = \"10s\"\n\
                 bind = \"kerberos\"\n\
                 {credentials}",
                name = account.name,
                context = account.context,
                what = match account.context {
                    Context::Machine => "its keytab",
                    Context::User => "the user's ticket cache",
                },
            );
            let path = self.policy_path(account.name);
            fs::write(&path, kerberos_policy).map_err(|e| io(path.display(), e))?;
            written.push(path);
        }
        Ok(written)
    }

    /// Writes `<name>.toml` and its password file for an account of the
    /// lab's directory other than the samples (the fleet benchmark's
    /// hosts): the same simple bind over StartTLS as [`Lab::write_policies`],
    /// with its store at `store` (the benchmark may put the stores on
    /// another filesystem).
    pub fn write_password_policy(
        &self,
        name: &str,
        dn: &str,
        context: Context,
        password: &str,
        store: &Path,
    ) -> Result<PathBuf, LabError> {
        let secrets = self.dir.join("secrets");
        if !secrets.is_dir() {
            fs::create_dir_all(&secrets).map_err(|e| io(secrets.display(), e))?;
            fs::set_permissions(&secrets, fs::Permissions::from_mode(0o700))
                .map_err(|e| io(secrets.display(), e))?;
        }
        write_private(&secrets.join(format!("{name}.secret")), password.as_bytes())?;
        let policy = format!(
            "# Lab policy for {name}: {context} context, simple bind over StartTLS.\n\
             context = \"{context}\"\n\
             store = {store}\n\n\
             [directory]\n\
             url = \"{url}\"\n\
             starttls = true\n\
             ca_file = \"tls/ca.pem\"\n\
             timeout = \"30s\"\n\
             bind = \"simple\"\n\
             user = \"{dn}\"\n\
             password_file = \"secrets/{name}.secret\"\n",
            store = toml::Value::String(store.display().to_string()),
            url = self.url,
        );
        let path = self.policy_path(name);
        fs::write(&path, policy).map_err(|e| io(path.display(), e))?;
        Ok(path)
    }

    /// The pid of the lab's slapd (None for an attached or Samba lab).
    pub fn slapd_pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Writes `ca.toml` for the lab's CA (`corp-CA`, bound as `ca-svc`),
    /// listening on loopback ports (0 picks free ones) with its state in
    /// `ca/`. The forest's `certificateTemplates` are left as they are.
    pub fn write_ca_config(&self, https_port: u16, http_port: u16) -> Result<PathBuf, LabError> {
        let secrets = self.dir.join("secrets");
        fs::create_dir_all(&secrets).map_err(|e| io(secrets.display(), e))?;
        fs::set_permissions(&secrets, fs::Permissions::from_mode(0o700))
            .map_err(|e| io(secrets.display(), e))?;
        write_private(&secrets.join("ca-svc.secret"), b"ca-svc-Lab-Passw0rd")?;
        let https_port = if https_port == 0 {
            free_port()?
        } else {
            https_port
        };
        let http_port = if http_port == 0 {
            free_port()?
        } else {
            http_port
        };
        let config = format!(
            "# Lab CA: the forest's enterprise CA corp-CA, on loopback.\n\
             name = \"corp-CA\"\n\
             dns_host_name = \"ca.corp.example\"\n\
             listen = \"127.0.0.1:{https_port}\"\n\
             url = \"https://127.0.0.1:{https_port}\"\n\
             http_listen = \"127.0.0.1:{http_port}\"\n\
             http_url = \"http://127.0.0.1:{http_port}\"\n\
             state_dir = \"ca\"\n\
             key_algorithm = \"rsa3072\"\n\
             {kerberos}\n\
             [directory]\n\
             url = \"{url}\"\n\
             starttls = true\n\
             ca_file = \"tls/ca.pem\"\n\
             timeout = \"10s\"\n\
             bind = \"simple\"\n\
             user = \"CN=ca-svc,CN=Users,DC=corp,DC=example\"\n\
             password_file = \"secrets/ca-svc.secret\"\n",
            url = self.url,
            kerberos = self.http_keytab().map_or(String::new(), |keytab| format!(
                "# The Kerberos endpoint: HTTP/{host} from the realm's keytab.\n\
                 kerberos_keytab = \"{keytab}\"\n\
                 kerberos_url = \"https://{host}:{https_port}\"\n\
                 krb5_conf = \"{conf}\"\n",
                host = kdc::SERVICE_HOST,
                keytab = keytab.display(),
                conf = self.dir.join("krb5.conf").display(),
            )),
        );
        let path = self.ca_config_path();
        fs::write(&path, config).map_err(|e| io(path.display(), e))?;
        Ok(path)
    }

    /// Serves MS-ICPR from the lab's CA and sends the Kerberos policies
    /// there first: `ca.toml` gets `rpc_keytab` (the KDC's
    /// `host/ca.corp.example` keys), `rpc_listen` and `rpc_epm_listen` on
    /// loopback (the endpoint mapper on a free port: 135 needs privileges),
    /// and every `<account>.toml` that binds with Kerberos an `[enrollment]`
    /// table naming that port and the CA host's loopback address
    /// (`rpc_hosts`: the lab has no DNS). Returns the endpoint mapper's
    /// address; None without the lab's own KDC (Samba's realm has no
    /// `host/ca.corp.example`), and then nothing is changed.
    pub fn enable_rpc(&self) -> Result<Option<SocketAddr>, LabError> {
        let Some(kdc) = &self.kdc else {
            return Ok(None);
        };
        let epm = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let path = self.ca_config_path();
        let text = fs::read_to_string(&path).map_err(|e| io(path.display(), e))?;
        let lines = format!(
            "# MS-ICPR (DCE/RPC) with the keys of host/{host}.\n\
             rpc_keytab = \"{keytab}\"\n\
             rpc_listen = \"127.0.0.1:0\"\n\
             rpc_epm_listen = \"{epm}\"\n",
            host = kdc::CA_HOST,
            keytab = kdc.dir.join("ca-host.keytab").display(),
        );
        // Top-level keys go before the first table.
        let text = match text.find("\n[") {
            Some(i) => format!("{}\n{lines}{}", &text[..i], &text[i..]),
            None => format!("{text}\n{lines}"),
        };
        fs::write(&path, text).map_err(|e| io(path.display(), e))?;
        for account in SAMPLE_ACCOUNTS {
            let path = self.policy_path(account.name);
            let text = fs::read_to_string(&path).map_err(|e| io(path.display(), e))?;
            if !text.contains("bind = \"kerberos\"") || text.contains("\n[enrollment]") {
                continue;
            }
            let text = format!(
                "{text}\n[enrollment]\n\
                 # MS-ICPR first (the default order), at the lab CA's endpoint mapper.\n\
                 methods = [\"rpc\", \"ces-kerberos\", \"ces-password\"]\n\
                 rpc_port = {port}\n\
                 rpc_hosts = {{ \"{host}\" = \"127.0.0.1\" }}\n",
                port = epm.port(),
                host = kdc::CA_HOST,
            );
            fs::write(&path, text).map_err(|e| io(path.display(), e))?;
        }
        Ok(Some(epm))
    }

    /// The URL the Kerberos policies use when the lab has a realm: the
    /// directory by the name its SPN is registered under (`localhost` for
    /// the private KDC's `ldap/localhost`, the address for Samba's
    /// `ldap/<address>`).
    pub fn kerberos_url(&self) -> Option<String> {
        match (&self.kdc, self.directory) {
            (Some(_), _) => Some(format!("ldap://{}:{}", kdc::SERVICE_HOST, self.port())),
            (None, DirectoryKind::Samba) if self.dir.join("keytabs").is_dir() => {
                Some(self.url.clone())
            }
            _ => None,
        }
    }

    /// The keytab of the CA's `HTTP/localhost`, when the lab has a realm.
    fn http_keytab(&self) -> Option<PathBuf> {
        match &self.kdc {
            Some(kdc) => Some(kdc.dir.join("http.keytab")),
            None => Some(self.dir.join("keytabs").join("http.keytab")).filter(|p| p.exists()),
        }
    }

    /// The port of the directory's `ldap://` listener.
    pub fn port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(389)
    }

    /// LDIF records in the form of `ldif/forest.ldif` (e.g. from
    /// [`template_variant_ldif`]) as this lab's directory takes them: as they
    /// are for slapd; for Samba without what AD computes and with the forest's
    /// SIDs replaced by the ones Samba assigned.
    pub fn ldif_for(&self, ldif: &str) -> Result<String, LabError> {
        match self.directory {
            DirectoryKind::OpenLdap => Ok(ldif.to_string()),
            DirectoryKind::Samba => samba::adapt_ldif(&self.dir, ldif),
        }
    }

    /// `DIR/ca.toml`.
    pub fn ca_config_path(&self) -> PathBuf {
        self.dir.join("ca.toml")
    }

    /// The policy file of a sample account (after [`Lab::write_policies`]).
    pub fn policy_path(&self, account: &str) -> PathBuf {
        self.dir.join(format!("{account}.toml"))
    }

    /// Stops slapd and waits for it.
    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        if let Some(child) = self.child.take() {
            stop_child(child, &self.dir.join("slapd.pid"));
        }
        if self.directory == DirectoryKind::Samba {
            let _ = fs::remove_file(self.dir.join("samba.pid"));
            let _ = fs::remove_file(self.dir.join("samba.address"));
            // Dropping the address gives it back.
            self.samba_address = None;
        }
    }
}

/// Stops a server the lab started: SIGTERM, up to 5 s to exit, then SIGKILL;
/// its pid file goes either way.
fn stop_child(mut child: Child, pid_file: &Path) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            let _ = fs::remove_file(pid_file);
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = fs::remove_file(pid_file);
}

impl Drop for Lab {
    fn drop(&mut self) {
        if !self.detach {
            self.kill();
        }
    }
}

/// Stops a detached lab started in `dir` (`lab down`): its CA server, then
/// its slapd.
pub fn stop_detached(dir: &Path) -> Result<bool, LabError> {
    let ca = stop_pid_file(&dir.join("ca.pid"), &dir.join("ca.toml"))?;
    let slapd = stop_pid_file(&dir.join("slapd.pid"), &dir.join("slapd.conf"))?;
    let kdc = stop_pid_file(&dir.join("kdc").join("kdc.pid"), &dir.join("kdc"))?;
    let samba = samba::stop_detached(dir)?;
    Ok(ca || slapd || kdc || samba)
}

/// Runs `<exe> ca serve --config DIR/ca.toml` in its own process group,
/// leaving it running; its pid goes to `DIR/ca.pid` and its output to
/// `DIR/ca.log`. Returns once the HTTPS port accepts connections.
pub fn start_ca_detached(dir: &Path, exe: &Path, https_port: u16) -> Result<u32, LabError> {
    use std::os::unix::process::CommandExt;
    let log_path = dir.join("ca.log");
    let log = fs::File::create(&log_path).map_err(|e| io(log_path.display(), e))?;
    let log2 = log.try_clone().map_err(|e| io(log_path.display(), e))?;
    let mut child = Command::new(exe)
        .arg("ca")
        .arg("serve")
        .arg("--config")
        .arg(dir.join("ca.toml"))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .process_group(0)
        .spawn()
        .map_err(|e| io(exe.display(), e))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], https_port));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = fs::read_to_string(&log_path).unwrap_or_default();
            return Err(LabError::Start(format!("the CA exited ({status}): {log}")));
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(LabError::Start(format!("the CA does not listen on {addr}")));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    fs::write(dir.join("ca.pid"), child.id().to_string()).map_err(|e| io("ca.pid", e))?;
    Ok(child.id())
}

/// The HTTPS port of the lab's CA, from `DIR/ca.toml`.
pub fn ca_port(dir: &Path) -> Option<u16> {
    let text = fs::read_to_string(dir.join("ca.toml")).ok()?;
    let line = text.lines().find(|l| l.starts_with("listen"))?;
    line.rsplit(':').next()?.trim_end_matches('"').parse().ok()
}

/// Signals the process of a pid file if its command line names `marker`.
fn stop_pid_file(pid_file: &Path, marker: &Path) -> Result<bool, LabError> {
    let text = match fs::read_to_string(pid_file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io(pid_file.display(), e)),
    };
    let pid: i32 = text
        .trim()
        .parse()
        .map_err(|_| LabError::Io(format!("{}: not a process id", pid_file.display())))?;
    let pid = nix::unistd::Pid::from_raw(pid);
    // Only signal the process if it is the lab's slapd.
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let ours = String::from_utf8_lossy(&cmdline).contains(&*marker.to_string_lossy());
    if ours {
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && Path::new(&format!("/proc/{pid}")).exists() {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let _ = fs::remove_file(pid_file);
    Ok(ours)
}

/// LDIF for a copy of a sample template under a new cn, with some attributes
/// replaced (`(name, Some(ldif value line))`) or removed (`(name, None)`). The
/// tests build malformed templates with it and the benchmark many templates.
pub fn template_variant_ldif(
    base_cn: &str,
    new_cn: &str,
    overrides: &[(&str, Option<String>)],
) -> Option<String> {
    let forest = LDIF_FILES[2].1;
    let prefix = format!("dn: CN={base_cn},CN=Certificate Templates,");
    let block = forest
        .split("\n\n")
        .find(|b| b.lines().any(|l| l.starts_with(&prefix)))?;
    // Unfold continuation lines (RFC 2849: a line starting with one space).
    let mut lines: Vec<String> = Vec::new();
    for l in block.lines() {
        if let Some(rest) = l.strip_prefix(' ') {
            lines.last_mut()?.push_str(rest);
        } else if !l.starts_with('#') {
            lines.push(l.to_string());
        }
    }
    let attr_of = |l: &str| l.split(':').next().unwrap_or("").to_ascii_lowercase();
    let mut out = Vec::new();
    for l in lines {
        let attr = attr_of(&l);
        if attr == "dn" {
            out.push(l.replacen(&format!("CN={base_cn},"), &format!("CN={new_cn},"), 1));
        } else if attr == "cn" || attr == "name" || attr == "displayname" {
            out.push(format!("{}: {new_cn}", l.split(':').next().unwrap_or("")));
        } else if overrides.iter().any(|(a, _)| a.eq_ignore_ascii_case(&attr)) {
            continue;
        } else {
            out.push(l);
        }
    }
    for (attr, value) in overrides {
        if let Some(v) = value {
            out.push(format!("{attr}{v}"));
        }
    }
    Some(out.join("\n") + "\n\n")
}

/// LDIF for a computer account `CN=<name>,CN=Computers,DC=corp,DC=example`
/// of the sample domain with relative identifier `rid` (its objectSid is
/// `S-1-5-21-1000-2000-3000-<rid>`), primary group `primary_rid`, a DNS
/// name `<name>.corp.example` and the password `password`: the fleet
/// benchmark's hosts. The security descriptor is web01's.
pub fn computer_account_ldif(name: &str, rid: u32, primary_rid: u32, password: &str) -> String {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut sid = vec![1u8, 5, 0, 0, 0, 0, 0, 5];
    for sub in [21u32, 1000, 2000, 3000, rid] {
        sid.extend_from_slice(&sub.to_le_bytes());
    }
    // A GUID unique within the lab: a fixed prefix and the RID.
    let mut guid = *b"\x5e\x1f\x7a\x70fleetlab\0\0\0\0";
    guid[12..].copy_from_slice(&rid.to_be_bytes());
    let sd = "AQAEhIwAAACoAAAAAAAAABQAAAACAHgABAAAAAAAJAD/AQ8AAQUAAAAAAAUVAAAA6AMAANAHAAC4CwAAAAIAAAAAJAD/AQ8AAQUAAAAAAAUVAAAA6AMAANAHAAC4CwAABwIAAAAAFAD/AQ8AAQEAAAAAAAUSAAAAAAAUAJQAAgABAQAAAAAABQsAAAABBQAAAAAABRUAAADoAwAA0AcAALgLAAAAAgAAAQUAAAAAAAUVAAAA6AMAANAHAAC4CwAAAAIAAA==";
    format!(
        "dn: CN={name},CN=Computers,DC=corp,DC=example\n\
         objectClass: top\n\
         objectClass: user\n\
         objectClass: computer\n\
         objectClass: adEmulatedObject\n\
         cn: {name}\n\
         name: {name}\n\
         sAMAccountName: {upper}$\n\
         sAMAccountType: 805306369\n\
         primaryGroupID: {primary_rid}\n\
         userAccountControl: 4096\n\
         dNSHostName: {name}.corp.example\n\
         userPassword: {password}\n\
         objectGUID:: {guid}\n\
         objectSid:: {sid}\n\
         whenCreated: 20250106092200.0Z\n\
         whenChanged: 20250106092200.0Z\n\
         nTSecurityDescriptor:: {sd}\n\n",
        upper = name.to_ascii_uppercase(),
        guid = b64(&guid),
        sid = b64(&sid),
    )
}

fn slapadd(tools: &Tools, conf: &Path, ldif: &Path) -> Result<(), LabError> {
    let out = Command::new(&tools.slapadd)
        .arg("-q")
        .arg("-f")
        .arg(conf)
        .arg("-l")
        .arg(ldif)
        .output()
        .map_err(|e| io(tools.slapadd.display(), e))?;
    if !out.status.success() {
        return Err(LabError::Load {
            file: ldif.display().to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        });
    }
    Ok(())
}

/// A random password for the lab's directory administrator.
fn random_password() -> Result<String, LabError> {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    use base64::Engine;
    let mut b = [0u8; 18];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| LabError::Io("the system random generator failed".into()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldapi_urls_are_percent_encoded() {
        assert_eq!(
            ldapi_url(Path::new("/tmp/lab 1/ldapi")),
            "ldapi://%2Ftmp%2Flab%201%2Fldapi"
        );
    }

    #[test]
    fn computer_accounts_have_the_sid_of_their_rid() {
        let ldif = computer_account_ldif("host00007", 20007, 1101, "pw");
        use base64::Engine;
        let sid_line = ldif
            .lines()
            .find(|l| l.starts_with("objectSid:: "))
            .expect("objectSid");
        let sid = base64::engine::general_purpose::STANDARD
            .decode(&sid_line["objectSid:: ".len()..])
            .expect("base64");
        let sid = crate::model::Sid::from_bytes(&sid).expect("a SID");
        assert_eq!(sid.to_string(), "S-1-5-21-1000-2000-3000-20007");
        assert!(ldif.contains("sAMAccountName: HOST00007$\n"));
        assert!(ldif.contains("primaryGroupID: 1101\n"));
    }
}
