//! The lab's Kerberos realm: a private MIT KDC (Debian's `krb5-kdc`) on a
//! free loopback port, with its own `krb5.conf` for the lab's processes only
//! (no DNS: the realm's KDC is named in the file), principals for every sample
//! account (computers as `WS01$`, users as `alice`), the directory's
//! `ldap/<host>` and the CA's `HTTP/<host>`, and their keytabs.
//!
//! Nothing here touches the machine's `/etc/krb5.conf`, keytab or caches:
//! every tool runs with `KRB5_CONFIG` and `KRB5_KDC_PROFILE` pointing into the
//! lab folder.

use std::fs;
use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{LabError, find_program, free_port, io, random_password, write_private};
use crate::model::Context;

/// The lab's realm: the forest's DNS name in capitals, as AD names it.
pub const REALM: &str = "CORP.EXAMPLE";

/// A running lab KDC. Dropping it stops the KDC unless detached.
pub struct Kdc {
    /// `<lab>/kdc`.
    pub dir: PathBuf,
    /// The `krb5.conf` every lab process uses (`KRB5_CONFIG`).
    pub krb5_conf: PathBuf,
    pub port: u16,
    child: Option<Child>,
    detach: bool,
}

/// What `krb5kdc` and `kadmin.local` need besides the environment.
struct KdcTools {
    krb5kdc: PathBuf,
    kadmin_local: PathBuf,
    kdb5_util: PathBuf,
}

fn kdc_tools() -> Result<KdcTools, LabError> {
    let missing = |e: LabError| match e {
        LabError::Missing { program } => LabError::MissingKerberos { program },
        other => other,
    };
    Ok(KdcTools {
        krb5kdc: find_program("krb5kdc").map_err(missing)?,
        kadmin_local: find_program("kadmin.local").map_err(missing)?,
        kdb5_util: find_program("kdb5_util").map_err(missing)?,
    })
}

/// `krb5.conf` for the lab: the realm's KDC on loopback, no DNS lookups of
/// KDCs or realms, no canonicalisation of host names (the SPN is the name in
/// the URL, never one found by reverse DNS), TCP first (no UDP
/// fragmentation of large tickets), and caches and keytabs inside the lab.
pub fn krb5_conf_text(dir: &Path, port: u16) -> String {
    krb5_conf_for(dir, &format!("127.0.0.1:{port}"))
}

/// The same for a realm whose KDC is at `kdc` (`127.0.0.5:88`: Samba's).
pub fn krb5_conf_for(dir: &Path, kdc: &str) -> String {
    format!(
        "# The lab's Kerberos configuration: used only through KRB5_CONFIG.\n\
         [libdefaults]\n\
         \tdefault_realm = {REALM}\n\
         \tdns_lookup_kdc = false\n\
         \tdns_lookup_realm = false\n\
         \tdns_canonicalize_hostname = false\n\
         \trdns = false\n\
         \tudp_preference_limit = 1\n\
         \tdefault_ccache_name = FILE:{dir}/ccache/default\n\
         \tdefault_keytab_name = FILE:{dir}/keytab/default.keytab\n\
         \tdefault_client_keytab_name = FILE:{dir}/keytab/default-client.keytab\n\
         \n\
         [realms]\n\
         \t{REALM} = {{\n\
         \t\tkdc = {kdc}\n\
         \t}}\n\
         \n\
         [domain_realm]\n\
         \t.corp.example = {REALM}\n\
         \tcorp.example = {REALM}\n\
         \tlocalhost = {REALM}\n",
        dir = dir.display()
    )
}

fn kdc_conf_text(dir: &Path, port: u16) -> String {
    format!(
        "[kdcdefaults]\n\
         \tkdc_listen = 127.0.0.1:{port}\n\
         \tkdc_tcp_listen = 127.0.0.1:{port}\n\
         \n\
         [realms]\n\
         \t{REALM} = {{\n\
         \t\tdatabase_name = {dir}/principal\n\
         \t\tkey_stash_file = {dir}/stash\n\
         \t\tacl_file = {dir}/kadm5.acl\n\
         \t\tmax_life = 10h\n\
         \t\tmax_renewable_life = 7d\n\
         \t}}\n\
         \n\
         [logging]\n\
         \tkdc = FILE:{dir}/kdc.log\n",
        dir = dir.display()
    )
}

impl Kdc {
    /// Creates the realm's database in `<lab>/kdc` (a fresh one every time)
    /// and starts `krb5kdc` on a free loopback port (UDP and TCP).
    pub fn start(lab_dir: &Path, detach: bool) -> Result<Kdc, LabError> {
        let tools = kdc_tools()?;
        let dir = lab_dir.join("kdc");
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(|e| io(dir.display(), e))?;
        }
        for d in [dir.clone(), dir.join("keytab"), dir.join("ccache")] {
            fs::create_dir_all(&d).map_err(|e| io(d.display(), e))?;
            set_mode(&d, 0o700)?;
        }
        let mut last_error = String::new();
        for _attempt in 0..3 {
            let port = free_udp_and_tcp_port()?;
            let krb5_conf = lab_dir.join("krb5.conf");
            fs::write(&krb5_conf, krb5_conf_text(&dir, port))
                .map_err(|e| io(krb5_conf.display(), e))?;
            write_private(&dir.join("kdc.conf"), kdc_conf_text(&dir, port).as_bytes())?;
            fs::write(dir.join("kadm5.acl"), "").map_err(|e| io("kadm5.acl", e))?;
            let mut kdc = Kdc {
                dir: dir.clone(),
                krb5_conf,
                port,
                child: None,
                detach: false,
            };
            if !dir.join("principal").exists() {
                let master = random_password()?;
                kdc.run(
                    Command::new(&tools.kdb5_util)
                        .args(["create", "-s", "-r", REALM, "-P"])
                        .arg(&master),
                    None,
                )?;
            }
            let log_path = dir.join("krb5kdc.out");
            let log = fs::File::create(&log_path).map_err(|e| io(log_path.display(), e))?;
            let mut cmd = Command::new(&tools.krb5kdc);
            cmd.args(["-n", "-r", REALM, "-P"])
                .arg(dir.join("krb5kdc.pid"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().map_err(|e| io(log_path.display(), e))?)
                .stderr(log);
            kdc.env(&mut cmd);
            if detach {
                use std::os::unix::process::CommandExt;
                cmd.process_group(0);
            }
            kdc.child = Some(cmd.spawn().map_err(|e| io(tools.krb5kdc.display(), e))?);
            match kdc.wait_ready() {
                Ok(()) => {
                    fs::write(
                        dir.join("kdc.pid"),
                        kdc.child.as_ref().map(|c| c.id()).unwrap_or(0).to_string(),
                    )
                    .map_err(|e| io("kdc.pid", e))?;
                    kdc.detach = detach;
                    return Ok(kdc);
                }
                Err(e) => last_error = e,
            }
        }
        Err(LabError::Start(format!("krb5kdc: {last_error}")))
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                let log = fs::read_to_string(self.dir.join("krb5kdc.out")).unwrap_or_default();
                let klog = fs::read_to_string(self.dir.join("kdc.log")).unwrap_or_default();
                return Err(format!("exited ({status}): {log}{klog}"));
            }
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("nothing listens on {addr} after 10 s"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The environment every Kerberos tool of the lab runs with.
    pub fn env(&self, cmd: &mut Command) {
        cmd.env("KRB5_CONFIG", &self.krb5_conf)
            .env("KRB5_KDC_PROFILE", self.dir.join("kdc.conf"))
            .env("KRB5RCACHEDIR", &self.dir)
            .env(
                "KRB5CCNAME",
                format!("FILE:{}/ccache/default", self.dir.display()),
            );
    }

    fn run(&self, cmd: &mut Command, stdin: Option<&str>) -> Result<String, LabError> {
        self.env(cmd);
        let program = format!("{:?}", cmd.get_program());
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| io(&program, e))?;
        if let Some(mut pipe) = child.stdin.take() {
            pipe.write_all(stdin.unwrap_or("").as_bytes())
                .map_err(|e| io(&program, e))?;
        }
        let out = child.wait_with_output().map_err(|e| io(&program, e))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() {
            return Err(LabError::Kerberos(format!("{program} failed: {text}")));
        }
        Ok(text)
    }

    /// Runs `kadmin.local` queries (one per line) against the lab's realm.
    /// A query that fails fails the whole call with kadmin's output.
    pub fn kadmin(&self, queries: &[String]) -> Result<(), LabError> {
        let tools = kdc_tools()?;
        for q in queries {
            let out = self.run(Command::new(&tools.kadmin_local).arg("-q").arg(q), None)?;
            // kadmin.local exits 0 even when a query fails; its messages say so.
            let failed = out.lines().any(|l| {
                let l = l.to_ascii_lowercase();
                l.contains("error") || l.contains("cannot") || l.contains("failed")
            });
            if failed {
                return Err(LabError::Kerberos(format!("kadmin.local -q {q:?}: {out}")));
            }
        }
        Ok(())
    }

    /// Writes the current keys of `principals` into `keytab` (0600), without
    /// changing them (`-norandkey`, so that keytabs written earlier stay valid).
    pub fn write_keytab(&self, keytab: &Path, principals: &[&str]) -> Result<(), LabError> {
        let queries: Vec<String> = principals
            .iter()
            .map(|p| format!("ktadd -norandkey -k {} {p}", keytab.display()))
            .collect();
        self.kadmin(&queries)?;
        set_mode(keytab, 0o600)
    }

    /// `kinit` of `principal` with `password` into `ccache` (`FILE:` path).
    pub fn kinit(&self, principal: &str, password: &str, ccache: &Path) -> Result<(), LabError> {
        kinit(&self.krb5_conf, principal, password, ccache)
    }

    /// Stops the KDC and waits for it.
    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        if let Some(child) = self.child.take() {
            super::stop_child(child, &self.dir.join("kdc.pid"));
        }
    }
}

impl Drop for Kdc {
    fn drop(&mut self) {
        if !self.detach {
            self.kill();
        }
    }
}

/// The host name the lab's services are known by: the name in their URLs,
/// hence in their SPNs (`ldap/localhost`, `HTTP/localhost`), and in their TLS
/// certificates. No DNS is needed to resolve it.
pub const SERVICE_HOST: &str = "localhost";

/// The keytabs and caches [`Kdc::provision`] wrote.
#[derive(Debug, Clone)]
pub struct Realm {
    /// `ldap/localhost`, read by slapd (`KRB5_KTNAME`).
    pub ldap_keytab: PathBuf,
    /// `HTTP/localhost`, read by the CA for its Kerberos endpoint.
    pub http_keytab: PathBuf,
    /// `host/<CA host>` ([`CA_HOST`]), read by the CA for ICertPassage over
    /// DCE/RPC (Windows clients ask for the CA computer's host principal).
    pub host_keytab: PathBuf,
}

/// The lab CA's host name: its enrollment service's `dNSHostName`, the host
/// of its RPC service principal. The lab's processes reach it on loopback
/// through the policy's `[enrollment] rpc_hosts` override, not DNS.
pub const CA_HOST: &str = "ca.corp.example";

/// The Kerberos principal of a sample account: computers by their
/// sAMAccountName (`WS01$`, as AD and adcli name them), users by theirs.
pub fn account_principal(account: &super::SampleAccount) -> String {
    match account.context {
        Context::Machine => format!("{}$", account.name.to_ascii_uppercase()),
        Context::User => account.name.to_string(),
    }
}

/// `<lab>/keytabs/<name>.keytab`: a computer's keytab, as `adcli join` writes
/// `/etc/krb5.keytab` (`NAME$` and `host/<name>.corp.example`).
pub fn keytab_path(lab_dir: &Path, name: &str) -> PathBuf {
    lab_dir.join("keytabs").join(format!("{name}.keytab"))
}

/// `<lab>/ccache/<name>`: a user's credential cache, from `kinit`.
pub fn ccache_path(lab_dir: &Path, name: &str) -> PathBuf {
    lab_dir.join("ccache").join(name)
}

impl Kdc {
    /// Creates the principals of every sample account and service, writes
    /// the computers' and services' keytabs and obtains each user's tickets.
    pub fn provision(&self, lab_dir: &Path) -> Result<Realm, LabError> {
        let keytabs = lab_dir.join("keytabs");
        let ccaches = lab_dir.join("ccache");
        for d in [&keytabs, &ccaches] {
            fs::create_dir_all(d).map_err(|e| io(d.display(), e))?;
            set_mode(d, 0o700)?;
        }
        let ldap = format!("ldap/{SERVICE_HOST}");
        let http = format!("HTTP/{SERVICE_HOST}");
        let mut queries = Vec::new();
        let ca_host = format!("host/{CA_HOST}");
        for service in [&ldap, &http, &ca_host] {
            queries.push(format!("addprinc -randkey {service}"));
        }
        for account in super::SAMPLE_ACCOUNTS {
            let principal = account_principal(&account);
            match account.context {
                Context::Machine => {
                    queries.push(format!("addprinc -randkey +requires_preauth {principal}"));
                    queries.push(format!(
                        "addprinc -randkey host/{}.corp.example",
                        account.name
                    ));
                }
                Context::User => queries.push(format!(
                    "addprinc -pw {} +requires_preauth {principal}",
                    account.password()
                )),
            }
        }
        self.kadmin(&queries)?;
        let realm = Realm {
            ldap_keytab: self.dir.join("ldap.keytab"),
            http_keytab: self.dir.join("http.keytab"),
            host_keytab: self.dir.join("ca-host.keytab"),
        };
        self.write_keytab(&realm.host_keytab, &[&ca_host])?;
        self.write_keytab(&realm.ldap_keytab, &[&ldap])?;
        self.write_keytab(&realm.http_keytab, &[&http])?;
        for account in super::SAMPLE_ACCOUNTS {
            let principal = account_principal(&account);
            match account.context {
                Context::Machine => {
                    let host = format!("host/{}.corp.example", account.name);
                    self.write_keytab(&keytab_path(lab_dir, account.name), &[&principal, &host])?
                }
                Context::User => self.kinit(
                    &principal,
                    &account.password(),
                    &ccache_path(lab_dir, account.name),
                )?,
            }
        }
        Ok(realm)
    }
}

/// slapd's SASL GSSAPI settings (global section): the realm, the host part of
/// its SPN, tls-server-end-point channel binding on TLS connections, and the
/// mapping of an authenticated principal (`uid=<name>,cn=<realm>,cn=gssapi,
/// cn=auth`) to the account whose sAMAccountName is the principal's name.
pub fn slapd_sasl_config() -> String {
    format!(
        "sasl-realm\t{REALM}\n\
         sasl-host\t{SERVICE_HOST}\n\
         sasl-cbinding\ttls-endpoint\n\
         authz-regexp\t\"^uid=([^,/]+),cn={realm_lower},cn=gssapi,cn=auth$\"\n\
         \t\"ldap:///DC=corp,DC=example??sub?(sAMAccountName=$1)\"\n",
        realm_lower = REALM.to_ascii_lowercase()
    )
}

/// The access rule the mapping search needs (database section, before every
/// other rule): slapd searches for the account as the anonymous identity
/// while the bind is in progress.
pub const SLAPD_SASL_ACCESS: &str = "access to dn.subtree=\"DC=corp,DC=example\" attrs=entry,sAMAccountName,objectClass\n\tby anonymous auth\n\tby * break\n";

/// `kinit` of `principal` with `password` into `ccache`, against the realm
/// of `krb5_conf` (the private KDC's, or Samba's).
pub fn kinit(
    krb5_conf: &Path,
    principal: &str,
    password: &str,
    ccache: &Path,
) -> Result<(), LabError> {
    let kinit = find_program("kinit").map_err(|_| LabError::MissingKerberos {
        program: "kinit".into(),
    })?;
    let mut child = Command::new(kinit)
        .arg("-c")
        .arg(ccache)
        .arg(principal)
        .env("KRB5_CONFIG", krb5_conf)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io("kinit", e))?;
    if let Some(mut pipe) = child.stdin.take() {
        pipe.write_all(format!("{password}\n").as_bytes())
            .map_err(|e| io("kinit", e))?;
    }
    let out = child.wait_with_output().map_err(|e| io("kinit", e))?;
    if !out.status.success() {
        return Err(LabError::Kerberos(format!(
            "kinit {principal}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    set_mode(ccache, 0o600)
}

pub(super) fn set_mode(path: &Path, mode: u32) -> Result<(), LabError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| io(path.display(), e))
}

/// A port free for both UDP and TCP on 127.0.0.1 (the KDC listens on both).
fn free_udp_and_tcp_port() -> Result<u16, LabError> {
    for _ in 0..20 {
        let port = free_port()?;
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(LabError::Io(
        "no port free for both UDP and TCP on 127.0.0.1".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lab_krb5_conf_never_asks_dns() {
        let text = krb5_conf_text(Path::new("/lab/kdc"), 8888);
        for line in [
            "dns_lookup_kdc = false",
            "dns_lookup_realm = false",
            "dns_canonicalize_hostname = false",
            "rdns = false",
            "kdc = 127.0.0.1:8888",
            "default_realm = CORP.EXAMPLE",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
