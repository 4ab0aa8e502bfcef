//! The lab's second directory: a Samba AD DC (Debian's `samba` packages)
//! provisioned as `corp.example` on a private loopback address, loaded with the
//! sample forest's accounts, groups and AD CS objects through Samba's own
//! interfaces.
//!
//! Samba binds its LDAP ports (389, 636, 3268, 3269) on the addresses of the
//! machine's interfaces only, so the lab claims a free `127.0.0.N` (N >= 2)
//! by adding it to `lo` (`ip addr add 127.0.0.N/32 dev lo`; an address that is
//! already there belongs to someone else, so the add doubles as a lock) and
//! removes it when Samba stops. Nothing else of the machine is touched:
//! Samba runs with its own `smb.conf` (every path inside the lab folder),
//! its own `krb5.conf` (`KRB5_CONFIG`) and state folder, and only its LDAP
//! and KDC services (`server services = ldap, kdc`), in one process (`-M single`) that
//! `lab down` stops by its PID.
//!
//! What is loaded and how:
//! - `samba-tool domain provision` (realm CORP.EXAMPLE, domain CORP, no DNS
//!   server) and `samba-tool domain passwordsettings`;
//! - accounts and groups of `ldif/forest.ldif` over LDAP (StartTLS) as the
//!   domain Administrator, with their lab passwords (`unicodePwd`) and nested
//!   memberships; `ca-svc` joins Cert Publishers and Enterprise Admins (AD CS
//!   is installed by an enterprise administrator);
//! - every object of the forest under Public Key Services (templates, OID
//!   objects, the enrollment service) over LDAP, without what AD computes
//!   (objectGUID, whenCreated, ...) and with security descriptors built from
//!   the forest's SDDL, whose SIDs are mapped to the ones Samba assigned
//!   (Samba picks its own domain SID: nothing here depends on the fixed SIDs
//!   of the forest).
//!
//! TLS uses a lab CA of its own (`tls/ca.pem`), whose server certificate
//! names `127.0.0.N`, so the lab's policies are the same as with slapd.

use std::collections::HashMap;
use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;

use super::{LDIF_FILES, Lab, LabError, LabOptions, io, random_password, write_private};
use crate::directory::sd::SecurityDescriptor;
use crate::directory::sddl::{parse_sddl, to_sddl};
use crate::model::Sid;

/// The administrator Samba provisions.
pub const SAMBA_ADMIN_DN: &str = "CN=Administrator,CN=Users,DC=corp,DC=example";

/// The domain SID of `ldif/forest.ldif`, which Samba replaces by its own.
const FOREST_DOMAIN: &str = "S-1-5-21-1000-2000-3000";

const PUBLIC_KEY_SERVICES: &str =
    "cn=public key services,cn=services,cn=configuration,dc=corp,dc=example";

fn base64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn missing(program: &str) -> LabError {
    LabError::MissingSamba {
        program: program.to_string(),
    }
}

fn program(name: &str) -> Result<PathBuf, LabError> {
    super::find_program(name).map_err(|_| missing(name))
}

/// A loopback address added to `lo` for one Samba; removed on drop unless
/// the lab is detached (then `lab down` removes it).
pub(super) struct Address {
    pub ip: String,
    pub keep: bool,
}

impl Drop for Address {
    fn drop(&mut self) {
        if !self.keep {
            remove_address(&self.ip);
        }
    }
}

pub(super) fn remove_address(ip: &str) {
    let _ = Command::new("ip")
        .args(["addr", "del", &format!("{ip}/32"), "dev", "lo"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Claims a free 127.0.0.N: the first one, from a random start, that `ip
/// addr add` accepts (it refuses an address that is already there) and on
/// which nothing listens on 389.
fn claim_address() -> Result<Address, LabError> {
    let ip_tool = program("ip")?;
    let mut seed = [0u8; 1];
    aws_lc_rs::rand::fill(&mut seed)
        .map_err(|_| LabError::Io("the system random generator failed".into()))?;
    let start = 2 + usize::from(seed[0]) % 250;
    let mut last = String::new();
    for i in 0..250 {
        let n = 2 + (start - 2 + i) % 250;
        let ip = format!("127.0.0.{n}");
        let addr: SocketAddr = format!("{ip}:389")
            .parse()
            .map_err(|_| LabError::Io(format!("{ip} is not an address")))?;
        if TcpStream::connect_timeout(&addr, Duration::from_millis(50)).is_ok() {
            continue;
        }
        let out = Command::new(&ip_tool)
            .args(["addr", "add", &format!("{ip}/32"), "dev", "lo"])
            .output()
            .map_err(|e| io(ip_tool.display(), e))?;
        if out.status.success() {
            return Ok(Address { ip, keep: false });
        }
        last = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if !last.contains("exists") {
            break;
        }
    }
    if last.is_empty() {
        return Err(LabError::Start(
            "no loopback address for Samba: something answers on port 389 of every \
             127.0.0.N (a directory listening on 0.0.0.0:389?)"
                .into(),
        ));
    }
    Err(LabError::Start(format!(
        "no loopback address for Samba: `ip addr add 127.0.0.N/32 dev lo` failed ({last}); \
         the Samba lab needs CAP_NET_ADMIN"
    )))
}

/// Runs a command; its output goes into the error when it fails.
fn run(what: &str, cmd: &mut Command) -> Result<String, LabError> {
    let out = cmd.output().map_err(|e| io(what, e))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        return Err(LabError::Load {
            file: what.to_string(),
            output: text,
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The Samba configuration: every path inside `state`, LDAP only.
fn smb_conf(state: &Path, ip: &str, tls: &(PathBuf, PathBuf, PathBuf)) -> String {
    let s = state.display();
    format!(
        "# The lab's Samba AD DC (written by autoenroll lab; disposable).\n\
         [global]\n\
         \tnetbios name = DC01\n\
         \trealm = CORP.EXAMPLE\n\
         \tworkgroup = CORP\n\
         \tserver role = active directory domain controller\n\
         \tinterfaces = {ip}\n\
         \tbind interfaces only = yes\n\
         \tserver services = ldap, kdc\n\
         \tldap server require strong auth = allow_sasl_over_tls\n\
         \tprivate dir = {s}/private\n\
         \tlock directory = {s}\n\
         \tstate directory = {s}/state\n\
         \tcache directory = {s}/cache\n\
         \tbinddns dir = {s}/bind-dns\n\
         \tpid directory = {s}/run\n\
         \tncalrpc dir = {s}/run/ncalrpc\n\
         \twinbindd socket directory = {s}/run/winbindd\n\
         \tlog file = {s}/log.samba\n\
         \tlogging = file\n\
         \tlog level = 1\n\
         \ttls enabled = yes\n\
         \ttls cafile = {}\n\
         \ttls certfile = {}\n\
         \ttls keyfile = {}\n\
         \n\
         [sysvol]\n\
         \tpath = {s}/state/sysvol\n\
         \tread only = no\n",
        tls.0.display(),
        tls.1.display(),
        tls.2.display(),
    )
}

/// One LDIF record: its DN and (attribute, value) pairs, values decoded.
struct Record {
    dn: String,
    attrs: Vec<(String, Vec<u8>)>,
}

impl Record {
    fn values(&self, name: &str) -> impl Iterator<Item = &[u8]> {
        self.attrs
            .iter()
            .filter(move |(a, _)| a.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    fn text(&self, name: &str) -> Option<String> {
        self.values(name)
            .next()
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    fn is_a(&self, class: &str) -> bool {
        self.values("objectClass")
            .any(|v| v.eq_ignore_ascii_case(class.as_bytes()))
    }
}

/// Parses the forest's LDIF (RFC 2849: folded lines, `::` base64 values).
fn parse_ldif(text: &str) -> Result<Vec<Record>, LabError> {
    let bad = |m: String| LabError::Io(format!("forest.ldif: {m}"));
    let mut records = Vec::new();
    for block in text.split("\n\n") {
        let mut lines: Vec<String> = Vec::new();
        for l in block.lines() {
            if l.starts_with('#') {
                continue;
            } else if let Some(rest) = l.strip_prefix(' ') {
                match lines.last_mut() {
                    Some(last) => last.push_str(rest),
                    None => return Err(bad(format!("a continuation line begins a record: {l}"))),
                }
            } else if !l.trim().is_empty() {
                lines.push(l.to_string());
            }
        }
        let Some(first) = lines.first() else { continue };
        let dn = if let Some(dn) = first.strip_prefix("dn: ") {
            dn.to_string()
        } else if let Some(b64) = first.strip_prefix("dn:: ") {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| bad(format!("a base64 DN: {e}")))?;
            String::from_utf8(bytes).map_err(|_| bad("a DN that is not UTF-8".into()))?
        } else {
            return Err(bad(format!("a record does not begin with dn: {first}")));
        };
        let dn = dn.as_str();
        let mut attrs = Vec::new();
        for l in &lines[1..] {
            let (name, value) = if let Some((n, v)) = l.split_once(":: ") {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(v.trim())
                    .map_err(|e| bad(format!("{dn}: {n}: {e}")))?;
                (n, bytes)
            } else if let Some((n, v)) = l.split_once(": ") {
                (n, v.as_bytes().to_vec())
            } else if let Some(n) = l.strip_suffix(':') {
                (n, Vec::new())
            } else {
                return Err(bad(format!("{dn}: not an attribute line: {l}")));
            };
            attrs.push((name.to_string(), value));
        }
        records.push(Record {
            dn: dn.to_string(),
            attrs,
        });
    }
    Ok(records)
}

/// An LDIF line, base64 when the value is not plain text.
fn ldif_line(out: &mut String, name: &str, value: &[u8]) {
    let plain = !value.is_empty()
        && value
            .iter()
            .all(|b| (0x20..0x7f).contains(b) && !matches!(b, b':' | b'<'))
        && value[0] != b' '
        && value.last() != Some(&b' ');
    if plain {
        out.push_str(&format!("{name}: {}\n", String::from_utf8_lossy(value)));
    } else {
        out.push_str(&format!("{name}:: {}\n", base64(value)));
    }
}

/// The password AD's unicodePwd takes: the quoted password in UTF-16LE.
fn unicode_pwd(password: &str) -> Vec<u8> {
    format!("\"{password}\"")
        .encode_utf16()
        .flat_map(|u| u.to_le_bytes())
        .collect()
}

/// The RID at the end of a binary SID.
fn rid_of(sid: &[u8]) -> Option<u32> {
    Sid::from_bytes(sid).ok().and_then(|s| s.rid())
}

/// Accounts and groups of the forest that Samba does not provision itself,
/// in an order that adds members before the groups that name them.
fn accounts_ldif(forest: &[Record]) -> String {
    let mut out = String::new();
    let password = |name: &str| {
        super::SAMPLE_ACCOUNTS
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.password())
            .or_else(|| (name == "ca-svc").then(|| "ca-svc-Lab-Passw0rd".to_string()))
    };
    let principals: Vec<&Record> = forest
        .iter()
        .filter(|r| r.is_a("user") || r.is_a("computer"))
        .filter(|r| {
            r.values("objectSid")
                .next()
                .and_then(rid_of)
                .is_some_and(|rid| rid >= 1000)
        })
        .collect();
    for r in principals {
        let cn = r.text("cn").unwrap_or_default();
        out.push_str(&format!("dn: {}\n", r.dn));
        let computer = r.is_a("computer");
        out.push_str(if computer {
            "objectClass: computer\n"
        } else {
            "objectClass: user\n"
        });
        for attr in [
            "sAMAccountName",
            "userPrincipalName",
            "mail",
            "dNSHostName",
            "userAccountControl",
            "displayName",
            "description",
        ] {
            for v in r.values(attr) {
                ldif_line(&mut out, attr, v);
            }
        }
        if let Some(p) = password(&cn) {
            ldif_line(&mut out, "unicodePwd", &unicode_pwd(&p));
        }
        out.push('\n');
    }
    // Groups of the forest's own RIDs, each after the groups it contains.
    let mut groups: Vec<&Record> = forest
        .iter()
        .filter(|r| r.is_a("group"))
        .filter(|r| {
            r.values("objectSid")
                .next()
                .and_then(rid_of)
                .is_some_and(|rid| rid >= 1000)
        })
        .collect();
    let mut ordered: Vec<&Record> = Vec::new();
    while !groups.is_empty() {
        let pending: Vec<String> = groups.iter().map(|g| g.dn.to_ascii_lowercase()).collect();
        let (ready, waiting): (Vec<&Record>, Vec<&Record>) = groups.iter().partition(|g| {
            !g.values("member").any(|m| {
                let m = String::from_utf8_lossy(m).to_ascii_lowercase();
                m != g.dn.to_ascii_lowercase() && pending.contains(&m)
            })
        });
        if ready.is_empty() {
            // A cycle: add them in the forest's order.
            ordered.extend(waiting);
            break;
        }
        ordered.extend(ready);
        groups = waiting;
    }
    for g in ordered {
        out.push_str(&format!("dn: {}\nobjectClass: group\n", g.dn));
        for attr in ["sAMAccountName", "groupType", "description", "member"] {
            for v in g.values(attr) {
                ldif_line(&mut out, attr, v);
            }
        }
        out.push('\n');
    }
    out
}

/// The CA's service account is an enterprise administrator and a Cert
/// Publisher, as the account that installs AD CS and runs it.
const CA_SVC_GROUPS: &str = "dn: CN=Cert Publishers,CN=Users,DC=corp,DC=example\n\
changetype: modify\nadd: member\nmember: CN=ca-svc,CN=Users,DC=corp,DC=example\n\n\
dn: CN=Enterprise Admins,CN=Users,DC=corp,DC=example\n\
changetype: modify\nadd: member\nmember: CN=ca-svc,CN=Users,DC=corp,DC=example\n\n";

/// Attributes AD computes or the emulation adds, never written to Samba.
const COMPUTED: [&str; 6] = [
    "objectGUID",
    "objectSid",
    "whenCreated",
    "whenChanged",
    "name",
    "nTSecurityDescriptor",
];

/// Records in the forest's form (`ldif/`) as Samba takes them: no emulation
/// class, nothing AD computes, and security descriptors whose SIDs of the
/// forest's domain are replaced by Samba's (`map`). With `only_pki`, only the
/// objects under Public Key Services.
fn samba_ldif(
    records: &[Record],
    map: &HashMap<String, String>,
    domain: &Sid,
    only_pki: bool,
) -> Result<String, LabError> {
    let mut out = String::new();
    for r in records {
        let dn = r.dn.to_ascii_lowercase();
        if only_pki && !dn.ends_with(PUBLIC_KEY_SERVICES) {
            continue;
        }
        out.push_str(&format!("dn: {}\n", r.dn));
        for (name, value) in &r.attrs {
            if name.eq_ignore_ascii_case("nTSecurityDescriptor") {
                let sd = SecurityDescriptor::from_bytes(value)
                    .map_err(|e| LabError::Io(format!("{}: nTSecurityDescriptor: {e}", r.dn)))?;
                let mapped = map_sids(&to_sddl(&sd, None), map)?;
                let sd = parse_sddl(&mapped, domain)
                    .map_err(|e| LabError::Io(format!("{}: SDDL {mapped}: {e}", r.dn)))?;
                ldif_line(&mut out, name, &sd.to_bytes());
            } else if COMPUTED.iter().any(|c| c.eq_ignore_ascii_case(name))
                || (name.eq_ignore_ascii_case("objectClass")
                    && value.eq_ignore_ascii_case(b"adEmulatedObject"))
            {
                continue;
            } else {
                ldif_line(&mut out, name, value);
            }
        }
        out.push('\n');
    }
    Ok(out)
}

/// LDIF in the forest's form (records to add) as the Samba lab in `dir`
/// takes it (see [`samba_ldif`]), with the SID map `start` saved.
pub(super) fn adapt_ldif(dir: &Path, ldif: &str) -> Result<String, LabError> {
    let path = dir.join("samba").join("sid-map");
    let text = fs::read_to_string(&path).map_err(|e| io(path.display(), e))?;
    let map: HashMap<String, String> = text
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let domain: Sid = map
        .get(FOREST_DOMAIN)
        .and_then(|d| d.parse().ok())
        .ok_or_else(|| LabError::Io(format!("{}: no domain SID", path.display())))?;
    samba_ldif(&parse_ldif(ldif)?, &map, &domain, false)
}

/// Replaces every SID of the forest's domain in `sddl` by Samba's.
fn map_sids(sddl: &str, map: &HashMap<String, String>) -> Result<String, LabError> {
    let prefix = format!("{FOREST_DOMAIN}-");
    let mut out = String::new();
    let mut rest = sddl;
    while let Some(at) = rest.find(&prefix) {
        out.push_str(&rest[..at]);
        let tail = &rest[at + prefix.len()..];
        let digits = tail.chars().take_while(|c| c.is_ascii_digit()).count();
        let sid = &rest[at..at + prefix.len() + digits];
        let samba = map
            .get(sid)
            .ok_or_else(|| LabError::Io(format!("SDDL names {sid}, which Samba does not have")))?;
        out.push_str(samba);
        rest = &tail[digits..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The LDAP tools as the Administrator over StartTLS.
struct Admin<'a> {
    url: &'a str,
    ca: &'a Path,
    secret: &'a Path,
}

impl Admin<'_> {
    fn command(&self, tool: &str) -> Result<Command, LabError> {
        let mut cmd = Command::new(program(tool)?);
        cmd.env("LDAPTLS_CACERT", self.ca)
            .args(["-x", "-ZZ", "-H", self.url, "-D", SAMBA_ADMIN_DN, "-y"])
            .arg(self.secret);
        Ok(cmd)
    }

    /// Adds (or modifies) the records of `ldif`; an entry that exists already
    /// is left as it is, every other failure is an error.
    fn load(&self, tool: &str, what: &str, ldif: &str, file: &Path) -> Result<(), LabError> {
        fs::write(file, ldif).map_err(|e| io(file.display(), e))?;
        let out = self
            .command(tool)?
            .arg("-c")
            .arg("-f")
            .arg(file)
            .output()
            .map_err(|e| io(tool, e))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        let failures: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("ldap_") && !l.contains("Already exists (68)"))
            .collect();
        if !failures.is_empty() {
            return Err(LabError::Load {
                file: what.to_string(),
                output: stderr.into_owned(),
            });
        }
        Ok(())
    }

    /// (DN, objectSid) of every entry under `base` that has one.
    fn sids(&self, base: &str) -> Result<Vec<(String, Vec<u8>)>, LabError> {
        let text = run(
            "ldapsearch",
            self.command("ldapsearch")?
                .args(["-LLL", "-o", "ldif-wrap=no", "-b", base])
                .args(["(objectSid=*)", "objectSid"]),
        )?;
        let records = parse_ldif(&text.replace("\r\n", "\n"))?;
        Ok(records
            .into_iter()
            .filter_map(|r| {
                let sid = r.values("objectSid").next()?.to_vec();
                Some((r.dn, sid))
            })
            .collect())
    }
}

/// Provisions and starts Samba in `dir`, loads the forest, returns the lab.
pub(super) fn start(dir: &Path, options: &LabOptions) -> Result<Lab, LabError> {
    let samba = program("samba")?;
    let samba_tool = program("samba-tool")?;
    program("ldapadd")?;
    fs::create_dir_all(dir).map_err(|e| io(dir.display(), e))?;
    let dir = dir.canonicalize().map_err(|e| io(dir.display(), e))?;
    let state = dir.join("samba");
    if state.exists() {
        fs::remove_dir_all(&state).map_err(|e| io(state.display(), e))?;
    }
    for d in [state.join("run"), state.join("etc")] {
        fs::create_dir_all(&d).map_err(|e| io(d.display(), e))?;
    }
    // Given back when this function fails, or with the lab.
    let address = claim_address()?;
    let ip = address.ip.clone();
    let tls = super::write_tls_as(
        &dir,
        "autoenroll lab TLS CA (Samba)",
        &["dc01.corp.example", &ip],
        "samba",
    )?;

    // Its own Kerberos configuration: nothing reads /etc/krb5.conf.
    let krb5 = dir.join("krb5.conf");
    fs::write(
        &krb5,
        super::kdc::krb5_conf_for(&dir.join("kdc"), &format!("{ip}:88")),
    )
    .map_err(|e| io(krb5.display(), e))?;

    // A password Samba's complexity rule accepts whatever the random part.
    let admin_password = format!("{}-Aa1", random_password()?);
    write_private(&dir.join("admin.secret"), admin_password.as_bytes())?;
    let started = Instant::now();
    run(
        "samba-tool domain provision",
        Command::new(&samba_tool)
            .env("KRB5_CONFIG", &krb5)
            .args([
                "domain",
                "provision",
                "--realm=CORP.EXAMPLE",
                "--domain=CORP",
            ])
            .args(["--server-role=dc", "--dns-backend=NONE", "--host-name=dc01"])
            .arg(format!("--host-ip={ip}"))
            .arg(format!("--adminpass={admin_password}"))
            .arg(format!("--targetdir={}", state.display()))
            .arg(format!("--option=interfaces={ip}"))
            .arg("--option=bind interfaces only=yes")
            .arg(format!(
                "--option=log file={}/log.provision",
                state.display()
            )),
    )?;
    let conf = state.join("etc").join("smb.conf");
    write_private(&conf, smb_conf(&state, &ip, &tls).as_bytes())?;
    run(
        "samba-tool domain passwordsettings",
        Command::new(&samba_tool)
            .env("KRB5_CONFIG", &krb5)
            .args(["domain", "passwordsettings", "set", "--complexity=off"])
            .args(["--min-pwd-age=0", "--history-length=0"])
            .arg(format!("--configfile={}", conf.display())),
    )?;
    let provisioned = started.elapsed();

    let log_path = dir.join("samba.log");
    let log = fs::File::create(&log_path).map_err(|e| io(log_path.display(), e))?;
    let log2 = log.try_clone().map_err(|e| io(log_path.display(), e))?;
    let mut cmd = Command::new(&samba);
    cmd.env("KRB5_CONFIG", &krb5)
        .args(["-i", "-M", "single", "-s"])
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    if options.detach {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    let child = cmd.spawn().map_err(|e| io(samba.display(), e))?;
    let url = format!("ldap://{ip}:389");
    let ldaps_url = format!("ldaps://{ip}:636");
    let mut lab = Lab {
        dir: dir.clone(),
        url: url.clone(),
        ldaps_url: ldaps_url.clone(),
        ldapi_url: super::ldapi_url(&state.join("private").join("ldapi")),
        tls_ca_file: tls.0.clone(),
        admin_password,
        admin_dn: SAMBA_ADMIN_DN.to_string(),
        directory: super::DirectoryKind::Samba,
        kdc: None,
        child: Some(child),
        detach: false,
        samba_address: Some(address),
    };
    wait_ready(&mut lab, &ip, &log_path)?;

    let secret = dir.join("admin.secret");
    let admin = Admin {
        url: &url,
        ca: &tls.0,
        secret: &secret,
    };
    let forest = parse_ldif(LDIF_FILES[2].1)?;
    admin.load(
        "ldapadd",
        "the forest's accounts and groups",
        &accounts_ldif(&forest),
        &state.join("accounts.ldif"),
    )?;
    admin.load(
        "ldapmodify",
        "ca-svc's groups",
        CA_SVC_GROUPS,
        &state.join("ca-svc.ldif"),
    )?;

    // The forest's SIDs -> Samba's, by account name.
    let samba_sids: HashMap<String, Vec<u8>> = admin
        .sids("DC=corp,DC=example")?
        .into_iter()
        .map(|(dn, sid)| (dn.to_ascii_lowercase(), sid))
        .collect();
    let domain = samba_sids
        .get("dc=corp,dc=example")
        .and_then(|s| Sid::from_bytes(s).ok())
        .ok_or_else(|| LabError::Io("Samba's domain head has no objectSid".into()))?;
    let mut map = HashMap::new();
    for r in &forest {
        let Some(sid) = r
            .values("objectSid")
            .next()
            .and_then(|s| Sid::from_bytes(s).ok())
        else {
            continue;
        };
        let text = sid.to_string();
        if !text.starts_with(FOREST_DOMAIN) {
            continue;
        }
        if let Some(samba_sid) = samba_sids
            .get(&r.dn.to_ascii_lowercase())
            .and_then(|s| Sid::from_bytes(s).ok())
        {
            map.insert(text, samba_sid.to_string());
        }
    }
    map.insert(FOREST_DOMAIN.to_string(), domain.to_string());
    admin.load(
        "ldapadd",
        "the forest's Public Key Services objects",
        &samba_ldif(&forest, &map, &domain, true)?,
        &state.join("pki.ldif"),
    )?;
    let saved: String = map.iter().map(|(a, b)| format!("{a} {b}\n")).collect();
    fs::write(state.join("sid-map"), saved).map_err(|e| io("sid-map", e))?;
    if let Some(extra) = &options.extra_ldif {
        admin.load(
            "ldapadd",
            "the extra LDIF",
            &samba_ldif(&parse_ldif(extra)?, &map, &domain, false)?,
            &state.join("extra.ldif"),
        )?;
    }
    if options.kerberos {
        kerberos(&samba_tool, &conf, &krb5, &dir, &ip)?;
    }
    let pid = lab.child.as_ref().map(|c| c.id()).unwrap_or(0);
    fs::write(dir.join("samba.pid"), pid.to_string()).map_err(|e| io("samba.pid", e))?;
    fs::write(dir.join("samba.address"), &ip).map_err(|e| io("samba.address", e))?;
    fs::write(dir.join("url"), &url).map_err(|e| io("url", e))?;
    fs::write(dir.join("ldaps_url"), &ldaps_url).map_err(|e| io("ldaps_url", e))?;
    fs::write(
        dir.join("samba.timing"),
        format!(
            "provision {:.1} s, ready and loaded {:.1} s\n",
            provisioned.as_secs_f64(),
            started.elapsed().as_secs_f64()
        ),
    )
    .map_err(|e| io("samba.timing", e))?;
    if options.detach {
        lab.detach = true;
        if let Some(a) = lab.samba_address.as_mut() {
            a.keep = true;
        }
    }
    Ok(lab)
}

/// Kerberos through Samba's own KDC: `ldap/<address>` registered on the DC
/// (clients name the DC by the address in the URL: the lab has no DNS), each
/// computer's keys exported to `DIR/keytabs/<name>.keytab` as `adcli join`
/// would write them, and each user's tickets from `kinit` in `DIR/ccache/`.
fn kerberos(
    samba_tool: &Path,
    conf: &Path,
    krb5: &Path,
    dir: &Path,
    ip: &str,
) -> Result<(), LabError> {
    let keytabs = dir.join("keytabs");
    let ccaches = dir.join("ccache");
    for d in [&keytabs, &ccaches] {
        fs::create_dir_all(d).map_err(|e| io(d.display(), e))?;
        super::kdc::set_mode(d, 0o700)?;
    }
    let configfile = format!("--configfile={}", conf.display());
    run(
        "samba-tool spn add",
        Command::new(samba_tool)
            .env("KRB5_CONFIG", krb5)
            .args(["spn", "add", &format!("ldap/{ip}"), "DC01$"])
            .arg(&configfile),
    )?;
    // The CA's Kerberos endpoint: HTTP/localhost on its service account.
    let http = format!("HTTP/{}", super::kdc::SERVICE_HOST);
    run(
        "samba-tool spn add",
        Command::new(samba_tool)
            .env("KRB5_CONFIG", krb5)
            .args(["spn", "add", &http, "ca-svc"])
            .arg(&configfile),
    )?;
    // The keys of `principal`, as a keytab only its owner reads.
    let export = |keytab: &Path, principal: &str| {
        run(
            "samba-tool domain exportkeytab",
            Command::new(samba_tool)
                .env("KRB5_CONFIG", krb5)
                .args(["domain", "exportkeytab"])
                .arg(keytab)
                .arg(format!("--principal={principal}"))
                .arg(&configfile),
        )?;
        super::kdc::set_mode(keytab, 0o600)
    };
    export(&keytabs.join("http.keytab"), &http)?;
    for account in super::SAMPLE_ACCOUNTS {
        let principal = super::kdc::account_principal(&account);
        match account.context {
            crate::model::Context::Machine => {
                export(&super::kdc::keytab_path(dir, account.name), &principal)?
            }
            crate::model::Context::User => super::kdc::kinit(
                krb5,
                &principal,
                &account.password(),
                &super::kdc::ccache_path(dir, account.name),
            )?,
        }
    }
    Ok(())
}

fn wait_ready(lab: &mut Lab, ip: &str, log: &Path) -> Result<(), LabError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let ports = [389u16, 636];
    loop {
        if let Some(child) = lab.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            let text = fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(10).collect();
            return Err(LabError::Start(format!(
                "samba exited ({status}); samba.log ends with:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )));
        }
        let all = ports.iter().all(|p| {
            format!("{ip}:{p}")
                .parse::<SocketAddr>()
                .is_ok_and(|a| TcpStream::connect_timeout(&a, Duration::from_millis(100)).is_ok())
        });
        if all {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(LabError::Start(format!(
                "Samba does not listen on {ip}:389 and :636 after 60 s"
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stops a detached Samba of `dir` (`lab down`) by its PID and gives its
/// loopback address back. Samba rewrites its command line, so the process is
/// recognised by its executable and by the PID file Samba itself keeps in the
/// lab's `pid directory`.
pub(super) fn stop_detached(dir: &Path) -> Result<bool, LabError> {
    let pid_file = dir.join("samba.pid");
    let text = match fs::read_to_string(&pid_file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io(pid_file.display(), e)),
    };
    let pid: i32 = text
        .trim()
        .parse()
        .map_err(|_| LabError::Io(format!("{}: not a process id", pid_file.display())))?;
    let own = fs::read_to_string(dir.join("samba").join("run").join("samba.pid"))
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok());
    let exe = fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
    let ours = own == Some(pid) && exe.file_name().is_some_and(|n| n == "samba");
    if ours {
        let target = nix::unistd::Pid::from_raw(pid);
        let _ = nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && running(pid) {
            std::thread::sleep(Duration::from_millis(20));
        }
        if running(pid) {
            let _ = nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGKILL);
        }
    }
    let _ = fs::remove_file(&pid_file);
    if let Ok(ip) = fs::read_to_string(dir.join("samba.address")) {
        let ip = ip.trim();
        if ip.starts_with("127.0.0.") && ip != "127.0.0.1" {
            remove_address(ip);
        }
        let _ = fs::remove_file(dir.join("samba.address"));
    }
    Ok(ours)
}

/// True while the process exists and is not a zombie.
fn running(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forest_sids_are_mapped_and_unknown_ones_refused() {
        let mut map = HashMap::new();
        map.insert(
            "S-1-5-21-1000-2000-3000-1102".to_string(),
            "S-1-5-21-7-8-9-1105".to_string(),
        );
        assert_eq!(
            map_sids(
                "O:DAG:DAD:(A;;CR;;;S-1-5-21-1000-2000-3000-1102)(A;;RP;;;AU)",
                &map
            )
            .unwrap(),
            "O:DAG:DAD:(A;;CR;;;S-1-5-21-7-8-9-1105)(A;;RP;;;AU)"
        );
        assert!(map_sids("D:(A;;CR;;;S-1-5-21-1000-2000-3000-1999)", &map).is_err());
    }

    #[test]
    fn the_forest_parses_and_its_pki_objects_carry_nothing_computed() {
        let forest = parse_ldif(LDIF_FILES[2].1).unwrap();
        assert!(forest.iter().any(|r| r.is_a("pKICertificateTemplate")));
        let accounts = accounts_ldif(&forest);
        assert!(
            accounts
                .contains("dn: CN=ws01,CN=Computers,DC=corp,DC=example\nobjectClass: computer\n")
        );
        // Web Servers is added before Servers, which contains it.
        let web = accounts.find("dn: CN=Web Servers,").unwrap();
        let servers = accounts.find("dn: CN=Servers,").unwrap();
        assert!(web < servers, "{accounts}");
        let mut map = HashMap::new();
        for r in &forest {
            if let Some(sid) = r
                .values("objectSid")
                .next()
                .and_then(|s| Sid::from_bytes(s).ok())
            {
                map.insert(sid.to_string(), sid.to_string());
            }
        }
        let domain: Sid = FOREST_DOMAIN.parse().unwrap();
        let pki = samba_ldif(&forest, &map, &domain, true).unwrap();
        for computed in [
            "objectGUID",
            "whenCreated",
            "whenChanged",
            "adEmulatedObject",
            "\nname:",
        ] {
            assert!(!pki.contains(computed), "{computed} in the Samba LDIF");
        }
        assert!(pki.contains("nTSecurityDescriptor:: "));
    }

    #[test]
    fn ldif_parsing_reports_what_is_wrong() {
        let r = parse_ldif("dn:: Q049w6lsw6hu\ncn: x\nobjectSid:: AQE=\n").unwrap();
        assert_eq!(r[0].dn, "CN=\u{e9}l\u{e8}n");
        assert_eq!(r[0].values("objectSid").next(), Some(&[1u8, 1][..]));
        for (bad, says) in [
            ("cn: no dn\n", "does not begin with dn"),
            ("dn: CN=x\nobjectSid:: !!!\n", "objectSid"),
            ("dn: CN=x\nnot an attribute\n", "not an attribute line"),
        ] {
            let e = parse_ldif(bad).err().unwrap().to_string();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }

    #[test]
    fn unicode_pwd_is_quoted_utf16le() {
        assert_eq!(unicode_pwd("a"), vec![b'"', 0, b'a', 0, b'"', 0]);
    }
}
