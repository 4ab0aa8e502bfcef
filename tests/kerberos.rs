//! Kerberos against the lab's real MIT KDC and slapd's SASL GSSAPI: binds
//! from a keytab and from a user's credential cache, channel binding over
//! StartTLS, the confidentiality layer over plain `ldap://`, and every
//! failure (clock skew, a keytab without the principal or unreadable, the KDC
//! down) as one clear error that changes nothing.
//!
//! MIT krb5 reads `KRB5_CONFIG` per process, so each check runs the
//! `autoenroll` binary with the lab's policy (which names the lab's
//! krb5.conf), as an administrator would.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use autoenroll::lab::{Lab, LabOptions};

mod common;
use common::dns::{Dnsmasq, Srv};

struct KerberosLab {
    lab: Lab,
    _tmp: tempfile::TempDir,
}

fn start() -> KerberosLab {
    let tmp = tempfile::tempdir().expect("temp dir");
    let lab = Lab::start(
        &tmp.path().join("lab"),
        LabOptions {
            kerberos: true,
            ..LabOptions::default()
        },
    )
    .expect("a lab with a KDC starts");
    lab.write_policies().expect("policies");
    KerberosLab { lab, _tmp: tmp }
}

impl KerberosLab {
    fn dir(&self) -> &Path {
        &self.lab.dir
    }

    /// A copy of `<account>.toml` with `edit` applied, as `<name>.toml`.
    fn policy_variant(
        &self,
        account: &str,
        name: &str,
        edit: impl Fn(String) -> String,
    ) -> PathBuf {
        let text = std::fs::read_to_string(self.lab.policy_path(account)).expect("policy");
        let path = self.dir().join(format!("{name}.toml"));
        std::fs::write(&path, edit(text)).expect("write policy");
        path
    }
}

/// Runs `autoenroll <args>` with no Kerberos variables of this process.
fn autoenroll(args: &[&str]) -> Output {
    autoenroll_with(Command::new(env!("CARGO_BIN_EXE_autoenroll")), args)
}

fn autoenroll_with(mut cmd: Command, args: &[&str]) -> Output {
    cmd.args(args)
        .env_remove("KRB5_CONFIG")
        .env_remove("KRB5CCNAME")
        .env_remove("KRB5_KTNAME")
        .env_remove("KRB5_CLIENT_KTNAME")
        .env("RUST_LOG", "warn")
        .output()
        .expect("autoenroll runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn templates_json(policy: &Path) -> serde_json::Value {
    let out = autoenroll(&["templates", "--json", "--policy", policy.to_str().unwrap()]);
    assert!(out.status.success(), "templates failed: {}", text(&out));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[test]
fn a_keytab_bind_over_starttls_sees_what_the_password_bind_sees() {
    let lab = start();
    let policy = lab.lab.policy_path("ws01");
    let text_of_policy = std::fs::read_to_string(&policy).unwrap();
    assert!(text_of_policy.contains("bind = \"kerberos\""));
    assert!(!text_of_policy.contains("password"), "{text_of_policy}");
    let kerberos = templates_json(&policy);
    let password = templates_json(&lab.dir().join("ws01-password.toml"));
    assert_eq!(kerberos, password, "same verdicts for the same account");
    assert!(
        kerberos
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["eligible"] == true),
        "{kerberos}"
    );
    // The tickets went to the private cache in the store, owner-only.
    let cache = lab.dir().join("stores/ws01/krb5cc");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&cache)
        .expect("private cache")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "cache mode {mode:o}");
    // ... and nowhere else: the lab's default cache holds nothing.
    assert!(!lab.dir().join("kdc/ccache/default").exists());
}

#[test]
fn a_user_binds_with_her_credential_cache() {
    let lab = start();
    let kerberos = templates_json(&lab.lab.policy_path("alice"));
    let password = templates_json(&lab.dir().join("alice-password.toml"));
    assert_eq!(kerberos, password);
    // The account came from the authenticated identity: the header names it.
    let out = autoenroll(&[
        "templates",
        "--policy",
        lab.lab.policy_path("alice").to_str().unwrap(),
    ]);
    assert!(
        text(&out)
            .to_lowercase()
            .starts_with("cn=alice,cn=users,dc=corp,dc=example"),
        "{}",
        text(&out)
    );
}

/// A TCP relay in front of slapd that records every byte in both directions.
fn recording_relay(target: u16) -> (u16, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let server = TcpStream::connect(("127.0.0.1", target)).unwrap();
            for (mut from, mut to) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ] {
                let record = record.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 || to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        record.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                    let _ = to.shutdown(std::net::Shutdown::Both);
                });
            }
        }
    });
    (port, seen)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn over_plain_ldap_the_kerberos_session_is_sealed() {
    let lab = start();
    let (port, seen) = recording_relay(lab.lab.port());
    let url = format!("url = \"ldap://localhost:{port}\"");
    let sealed = lab.policy_variant("ws01", "ws01-plain", |t| {
        t.replace("starttls = true", "starttls = false")
            .lines()
            .map(|l| {
                if l.starts_with("url =") {
                    url.clone()
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    let verdicts = templates_json(&sealed);
    assert!(!verdicts.as_array().unwrap().is_empty());
    let wire = std::mem::take(&mut *seen.lock().unwrap());
    assert!(
        contains(&wire, "GSSAPI"),
        "the SASL mechanism name is in clear"
    );
    for secret in [
        "pKICertificateTemplate",
        "Public Key Services",
        "WorkstationAuth",
    ] {
        assert!(
            !contains(&wire, secret),
            "{secret} crossed the wire in clear"
        );
    }
    // The same relay with a simple bind on loopback shows the check can fail.
    let clear = lab.policy_variant("ws01", "ws01-clear", |_| {
        std::fs::read_to_string(lab.dir().join("ws01-password.toml"))
            .unwrap()
            .replace("starttls = true", "starttls = false")
            .replace(&lab.lab.url, &format!("ldap://127.0.0.1:{port}"))
    });
    templates_json(&clear);
    let wire = std::mem::take(&mut *seen.lock().unwrap());
    assert!(contains(&wire, "pKICertificateTemplate"));
}

/// A relay that answers StartTLS itself and terminates TLS with its own
/// certificate (from a CA the client was told to trust), then speaks TLS to
/// slapd: a man in the middle that channel binding must catch.
fn starttls_interceptor(target: u16, dir: &Path) -> (u16, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    // The client trusts both the lab's CA and the interceptor's.
    let bundle = dir.join("mitm-bundle.pem");
    let lab_ca = std::fs::read_to_string(dir.join("tls/ca.pem")).unwrap();
    std::fs::write(&bundle, format!("{lab_ca}{}", ca_cert.pem())).unwrap();
    let lab_ca_der = rustls_pemfile::certs(&mut lab_ca.as_bytes())
        .next()
        .unwrap()
        .unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let cert_der = cert.der().clone();
    let key_der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    std::thread::spawn(move || {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let server_config = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![cert_der], key_der)
                .unwrap(),
        );
        let mut roots = rustls::RootCertStore::empty();
        roots.add(lab_ca_der).unwrap();
        let client_config = Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        );
        for mut client in listener.incoming().flatten() {
            let mut server = TcpStream::connect(("127.0.0.1", target)).unwrap();
            // The StartTLS request and its answer pass in clear.
            relay_one_message(&mut client, &mut server);
            relay_one_message(&mut server, &mut client);
            let sc = rustls::ServerConnection::new(server_config.clone()).unwrap();
            let cc = rustls::ClientConnection::new(
                client_config.clone(),
                "localhost".try_into().unwrap(),
            )
            .unwrap();
            let to_client = Arc::new(Mutex::new(rustls::StreamOwned::new(sc, client)));
            let to_server = Arc::new(Mutex::new(rustls::StreamOwned::new(cc, server)));
            // One LDAP message at a time, each way in turn: enough for a bind
            // and a few searches, which answer before the next request.
            std::thread::spawn(move || {
                loop {
                    let Some(req) = read_message(&mut *to_client.lock().unwrap()) else {
                        break;
                    };
                    let mut s = to_server.lock().unwrap();
                    if s.write_all(&req).is_err() {
                        break;
                    }
                    // Searches answer with several messages: pass all until done.
                    loop {
                        let Some(resp) = read_message(&mut *s) else {
                            return;
                        };
                        let _ = to_client.lock().unwrap().write_all(&resp);
                        if !is_search_entry_or_reference(&resp) {
                            break;
                        }
                    }
                }
            });
        }
    });
    (port, bundle)
}

/// Reads one BER-encoded LDAP message (SEQUENCE with a definite length).
fn read_message(r: &mut impl Read) -> Option<Vec<u8>> {
    let mut head = [0u8; 2];
    r.read_exact(&mut head).ok()?;
    let mut msg = head.to_vec();
    let len = if head[1] & 0x80 == 0 {
        head[1] as usize
    } else {
        let n = (head[1] & 0x7f) as usize;
        let mut b = vec![0u8; n];
        r.read_exact(&mut b).ok()?;
        msg.extend(&b);
        b.iter().fold(0usize, |acc, x| (acc << 8) | *x as usize)
    };
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).ok()?;
    msg.extend(body);
    Some(msg)
}

fn relay_one_message(from: &mut TcpStream, to: &mut TcpStream) {
    let m = read_message(from).expect("a message");
    to.write_all(&m).unwrap();
}

/// SearchResultEntry (0x64) or SearchResultReference (0x73) after the message id.
fn is_search_entry_or_reference(msg: &[u8]) -> bool {
    let mut i = 1;
    if msg[1] & 0x80 != 0 {
        i += (msg[1] & 0x7f) as usize;
    }
    i += 1; // the length byte(s) of the SEQUENCE were skipped; now the message id
    let id_len = msg.get(i + 1).copied().unwrap_or(0) as usize;
    let op = msg.get(i + 2 + id_len).copied().unwrap_or(0);
    matches!(op, 0x64 | 0x73)
}

#[test]
fn channel_binding_catches_a_tls_interceptor_the_password_bind_does_not() {
    let lab = start();
    let (port, bundle) = starttls_interceptor(lab.lab.port(), lab.dir());
    let swap = |t: String| {
        t.lines()
            .map(|l| {
                if l.starts_with("url =") {
                    format!("url = \"ldap://localhost:{port}\"")
                } else if l.starts_with("ca_file =") {
                    format!("ca_file = \"{}\"", bundle.display())
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    // Control: a simple bind passes through the interceptor unnoticed.
    let password = lab.policy_variant("ws01-password", "ws01-mitm-password", swap);
    templates_json(&password);
    // The Kerberos bind through it is refused by slapd's channel binding check.
    let kerberos = lab.policy_variant("ws01", "ws01-mitm", swap);
    let out = autoenroll(&["templates", "--policy", kerberos.to_str().unwrap()]);
    assert!(
        !out.status.success(),
        "bound through an interceptor: {}",
        text(&out)
    );
    assert!(
        text(&out).contains("bind as WS01$@CORP.EXAMPLE (Kerberos"),
        "{}",
        text(&out)
    );
}

/// Changes the maximum ticket life of every principal a pulse uses.
fn short_tickets(lab: &KerberosLab, life: &str) {
    let kdc = lab.lab.kdc.as_ref().unwrap();
    let queries: Vec<String> = ["krbtgt/CORP.EXAMPLE", "WS01$", "ldap/localhost"]
        .iter()
        .map(|p| format!("modprinc -maxlife \"{life}\" {p}"))
        .collect();
    kdc.kadmin(&queries).unwrap();
}

fn klist_times(lab: &KerberosLab, cache: &Path) -> String {
    let kdc = lab.lab.kdc.as_ref().unwrap();
    let mut cmd = Command::new("klist");
    kdc.env(&mut cmd);
    let out = cmd.arg("-c").arg(cache).output().expect("klist");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn tickets_that_expired_between_two_runs_are_renewed_from_the_keytab() {
    let lab = start();
    short_tickets(&lab, "6 seconds");
    let policy = lab.lab.policy_path("ws01");
    templates_json(&policy);
    let cache = lab.dir().join("stores/ws01/krb5cc");
    let first = klist_times(&lab, &cache);
    assert!(
        first.contains("krbtgt/CORP.EXAMPLE@CORP.EXAMPLE"),
        "{first}"
    );
    std::thread::sleep(std::time::Duration::from_secs(8));
    templates_json(&policy);
    let second = klist_times(&lab, &cache);
    assert_ne!(first, second, "new tickets were had from the keytab");
}

#[test]
fn a_clock_the_kdc_does_not_accept_is_one_clear_error() {
    if Command::new("faketime").arg("--version").output().is_err() {
        panic!("faketime is missing: apt-get install -y faketime");
    }
    let lab = start();
    // MIT corrects its clock by the KDC's (kdc_timesync, on by default); an
    // administrator can turn that off, and then the KDC refuses the skew.
    let conf = std::fs::read_to_string(lab.dir().join("krb5.conf")).unwrap();
    std::fs::write(
        lab.dir().join("krb5-nosync.conf"),
        conf.replace("[libdefaults]\n", "[libdefaults]\n\tkdc_timesync = 0\n"),
    )
    .unwrap();
    let policy = lab.policy_variant("ws01", "ws01-nosync", |t| {
        t.replace(
            "krb5_conf = \"krb5.conf\"",
            "krb5_conf = \"krb5-nosync.conf\"",
        )
    });
    let mut cmd = Command::new("faketime");
    cmd.args(["-f", "+1h", env!("CARGO_BIN_EXE_autoenroll")]);
    let out = autoenroll_with(cmd, &["pulse", "--policy", policy.to_str().unwrap()]);
    assert!(!out.status.success());
    let said = text(&out);
    assert!(
        said.contains("the clocks of this host and of the KDC"),
        "{said}"
    );
    assert!(said.contains("nothing was changed"), "{said}");
    assert!(
        dir_is_empty(&lab.dir().join("stores/ws01/my")),
        "nothing was enrolled"
    );
    // With the default (kdc_timesync), the same skew is corrected by MIT.
    let mut cmd = Command::new("faketime");
    cmd.args(["-f", "+1h", env!("CARGO_BIN_EXE_autoenroll")]);
    let out = autoenroll_with(
        cmd,
        &[
            "templates",
            "--policy",
            lab.lab.policy_path("ws01").to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
}

fn dir_is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true)
}

#[test]
fn keytab_problems_name_the_keytab_and_what_it_holds() {
    let lab = start();
    let garbage = lab.dir().join("garbage.keytab");
    std::fs::write(&garbage, "[libdefaults]\n").unwrap();
    let cases: Vec<(String, &str)> = vec![
        (
            "keytab = \"keytabs/web01.keytab\"\nprincipal = \"WS01$\"".into(),
            "holds no key for WS01$@CORP.EXAMPLE; it holds WEB01$@CORP.EXAMPLE, host/web01.corp.example@CORP.EXAMPLE",
        ),
        (
            "keytab = \"keytabs/ws01.keytab\"\nprincipal = \"ws01$\"".into(),
            "principal names are case-sensitive: it has WS01$@CORP.EXAMPLE",
        ),
        (
            "keytab = \"missing.keytab\"".into(),
            "missing.keytab: does not exist",
        ),
        (
            "keytab = \"garbage.keytab\"".into(),
            "garbage.keytab: not a keytab",
        ),
        (
            "keytab = \"keytabs/../kdc/ldap.keytab\"".into(),
            "holds no computer account principal (NAME$@REALM); it holds ldap/localhost@CORP.EXAMPLE",
        ),
    ];
    for (i, (keytab, expected)) in cases.into_iter().enumerate() {
        let policy = lab.policy_variant("ws01", &format!("ws01-kt{i}"), |t| {
            t.replace("keytab = \"keytabs/ws01.keytab\"", &keytab)
        });
        let out = autoenroll(&["pulse", "--policy", policy.to_str().unwrap()]);
        assert!(!out.status.success(), "{keytab}");
        assert!(text(&out).contains(expected), "{keytab}: {}", text(&out));
        assert!(
            dir_is_empty(&lab.dir().join("stores/ws01/my")),
            "nothing was enrolled"
        );
    }
}

#[test]
fn a_keytab_the_process_cannot_read_is_named() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to run the check as another user");
        return;
    }
    let lab = start();
    // A copy of the lab that user nobody can traverse, with a root-only keytab.
    use std::os::unix::fs::PermissionsExt;
    let open = tempfile::tempdir().unwrap();
    std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for f in ["krb5.conf", "tls/ca.pem"] {
        let to = open.path().join(f);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(lab.dir().join(f), &to).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    std::fs::set_permissions(
        open.path().join("tls"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::copy(
        lab.dir().join("keytabs/ws01.keytab"),
        open.path().join("ws01.keytab"),
    )
    .unwrap();
    let policy = std::fs::read_to_string(lab.lab.policy_path("ws01"))
        .unwrap()
        .replace("keytabs/ws01.keytab", "ws01.keytab")
        .replace("stores/ws01", "store");
    std::fs::write(open.path().join("ws01.toml"), policy).unwrap();
    std::fs::set_permissions(
        open.path().join("ws01.toml"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    // The binary too: the build folder's parents may be closed to others.
    let exe = open.path().join("autoenroll");
    std::fs::copy(env!("CARGO_BIN_EXE_autoenroll"), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(&exe);
    cmd.uid(65534).gid(65534).current_dir(open.path());
    let out = autoenroll_with(cmd, &["templates", "--policy", "ws01.toml"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("ws01.keytab: cannot be read by this user (uid 65534)"),
        "{}",
        text(&out)
    );
}

#[test]
fn with_the_kdc_down_cached_tickets_still_work_and_without_them_nothing_changes() {
    let mut lab = start();
    let policy = lab.lab.policy_path("ws01");
    templates_json(&policy);
    lab.lab.kdc.take().unwrap().stop();
    // The tickets in the private cache are still good: the directory is read.
    templates_json(&policy);
    // Without them, the pulse stops before it touches anything.
    std::fs::remove_file(lab.dir().join("stores/ws01/krb5cc")).unwrap();
    let out = autoenroll(&["pulse", "--policy", policy.to_str().unwrap()]);
    assert!(!out.status.success());
    let said = text(&out);
    assert!(
        said.contains("no KDC of WS01$@CORP.EXAMPLE's realm answers"),
        "{said}"
    );
    assert!(said.contains("nothing was changed"), "{said}");
    assert!(
        dir_is_empty(&lab.dir().join("stores/ws01/my")),
        "nothing was enrolled"
    );
}

#[test]
fn a_nearly_empty_policy_finds_the_dcs_in_dns_and_skips_one_that_is_down() {
    let lab = start();
    let dead = common::free_port();
    // Two DCs for the domain: the preferred one (priority 0) is down.
    let dns = Dnsmasq::start(
        &["corp.example"],
        &[
            Srv::new(
                "_ldap._tcp.dc._msdcs.corp.example",
                "localhost",
                dead,
                0,
                100,
            ),
            Srv::new(
                "_ldap._tcp.dc._msdcs.corp.example",
                "localhost",
                lab.lab.port(),
                10,
                100,
            ),
        ],
    );
    // No URL, no domain, no account: the realm comes from the keytab, the
    // domain from the realm, the DCs from DNS, the account from the bind.
    let policy = lab.dir().join("ws01-discovered.toml");
    std::fs::write(
        &policy,
        format!(
            "context = \"machine\"\nstore = \"stores/ws01\"\nkrb5_conf = \"krb5.conf\"\n\
             [directory]\nbind = \"kerberos\"\nkeytab = \"keytabs/ws01.keytab\"\n\
             starttls = true\nca_file = \"tls/ca.pem\"\ndns_servers = [\"{}\"]\n",
            dns.addr
        ),
    )
    .unwrap();
    let found = templates_json(&policy);
    assert_eq!(found, templates_json(&lab.lab.policy_path("ws01")));
    assert_eq!(
        dns.queries("SRV"),
        vec!["_ldap._tcp.dc._msdcs.corp.example".to_string()]
    );
    // With a site that has its own DC, that DC is asked first.
    let site_dns = Dnsmasq::start(
        &["corp.example"],
        &[
            Srv::new(
                "_ldap._tcp.Lab._sites.dc._msdcs.corp.example",
                "localhost",
                lab.lab.port(),
                0,
                0,
            ),
            Srv::new("_ldap._tcp.dc._msdcs.corp.example", "localhost", dead, 0, 0),
        ],
    );
    let edited = std::fs::read_to_string(&policy)
        .unwrap()
        .replace(&dns.addr.to_string(), &site_dns.addr.to_string())
        + "site = \"Lab\"\n";
    std::fs::write(&policy, edited).unwrap();
    templates_json(&policy);
    assert_eq!(
        site_dns.queries("SRV"),
        vec!["_ldap._tcp.lab._sites.dc._msdcs.corp.example".to_string()]
    );
    // Every DC down: one error that lists each one tried.
    let down = Dnsmasq::start(
        &["corp.example"],
        &[Srv::new(
            "_ldap._tcp.dc._msdcs.corp.example",
            "localhost",
            dead,
            0,
            0,
        )],
    );
    let edited = std::fs::read_to_string(&policy)
        .unwrap()
        .replace(&site_dns.addr.to_string(), &down.addr.to_string())
        .replace("site = \"Lab\"\n", "");
    std::fs::write(&policy, edited).unwrap();
    let out = autoenroll(&["pulse", "--policy", policy.to_str().unwrap()]);
    assert!(!out.status.success());
    let said = text(&out);
    assert!(
        said.contains("every domain controller of corp.example"),
        "{said}"
    );
    assert!(said.contains(&format!("ldap://localhost:{dead}")), "{said}");
}

/// A lab started as `lab up` starts it (slapd, the KDC and the CA, detached),
/// stopped with `lab down` when dropped.
struct UpLab {
    dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl UpLab {
    fn up() -> UpLab {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("lab");
        let out = autoenroll(&["lab", "up", "--dir", dir.to_str().unwrap()]);
        assert!(out.status.success(), "lab up: {}", text(&out));
        UpLab { dir, _tmp: tmp }
    }

    fn pulse(&self, policy: &Path, at: Option<time::OffsetDateTime>) -> serde_json::Value {
        let (ok, report) = self.try_pulse(policy, at);
        assert!(ok, "pulse: {report:#}");
        report
    }

    /// A pulse and whether it succeeded.
    fn try_pulse(
        &self,
        policy: &Path,
        at: Option<time::OffsetDateTime>,
    ) -> (bool, serde_json::Value) {
        let mut args = vec!["pulse", "--json", "--policy", policy.to_str().unwrap()];
        let at = at.map(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap()
        });
        if let Some(at) = &at {
            args.extend(["--now", at.as_str()]);
        }
        let out = autoenroll(&args);
        let report = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("a JSON report: {}", text(&out)));
        (out.status.success(), report)
    }

    fn requests(&self) -> Vec<serde_json::Value> {
        let config = self.dir.join("ca.toml");
        let out = autoenroll(&[
            "ca",
            "requests",
            "--json",
            "--config",
            config.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "ca requests: {}", text(&out));
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }
}

impl Drop for UpLab {
    fn drop(&mut self) {
        autoenroll(&["lab", "down", "--dir", self.dir.to_str().unwrap()]);
    }
}

/// The templates a pulse report says were installed.
fn installed(report: &serde_json::Value) -> Vec<String> {
    let mut t: Vec<String> = report["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["event"] == "installed")
        .filter_map(|o| o["template"].as_str().map(str::to_string))
        .collect();
    t.sort();
    t
}

#[test]
fn ws01_enrolls_and_retrieves_over_sealed_plain_ldap_and_negotiate_with_no_password() {
    let lab = UpLab::up();
    // No password of ws01 anywhere: its secret goes, its policy names none.
    std::fs::remove_file(lab.dir.join("secrets/ws01.secret")).unwrap();
    let kerberos = std::fs::read_to_string(lab.dir.join("ws01.toml")).unwrap();
    let plain = lab.dir.join("ws01-plain.toml");
    std::fs::write(
        &plain,
        // CES Kerberos (HTTP Negotiate) only: `lab up`'s policies would
        // ask over MS-ICPR first.
        kerberos
            .replace("starttls = true", "starttls = false")
            .replace(
                "methods = [\"rpc\", \"ces-kerberos\", \"ces-password\"]",
                "methods = [\"ces-kerberos\"]",
            ),
    )
    .unwrap();
    assert!(
        !std::fs::read_to_string(&plain)
            .unwrap()
            .contains("password")
    );

    let now = time::OffsetDateTime::now_utc();
    let first = lab.pulse(&plain, None);
    assert_eq!(
        installed(&first),
        ["ShortLived", "WorkstationAuth"],
        "{first:#}"
    );
    let requests = lab.requests();
    let pending = requests
        .iter()
        .find(|r| r["template"] == "PendingMachine")
        .expect("PendingMachine waits for approval");
    assert!(
        requests.iter().all(|r| r["authentication"] == "kerberos"),
        "{requests:#?}"
    );
    let config = lab.dir.join("ca.toml");
    let id = pending["id"].to_string();
    let out = autoenroll(&["ca", "approve", "--config", config.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", text(&out));

    // An hour on, the approved request is retrieved. (ShortLived, one hour
    // long, is then expired here and its new certificate, dated by the CA's
    // real clock, refused as expired at this simulated time: not the point.)
    let (_, retrieval) = lab.try_pulse(&plain, Some(now + time::Duration::minutes(62)));
    assert!(
        installed(&retrieval).contains(&"PendingMachine".to_string()),
        "{retrieval:#}"
    );
    assert!(
        lab.requests()
            .iter()
            .all(|r| r["authentication"] == "kerberos"),
        "every request of ws01 came over Kerberos"
    );
    // And every later pulse over StartTLS has nothing left to do.
    let again = lab.pulse(&lab.dir.join("ws01.toml"), None);
    assert!(installed(&again).is_empty(), "{again:#}");

    // `lab up` serves MS-ICPR and its Kerberos policies ask there first:
    // web01, with its policy as written, enrolls over RPC.
    let web01 = lab.pulse(&lab.dir.join("web01.toml"), None);
    assert!(
        installed(&web01).contains(&"WorkstationAuth".to_string()),
        "{web01:#}"
    );
    let of_web01: Vec<_> = lab
        .requests()
        .into_iter()
        .filter(|r| r["requester"] == "WEB01$")
        .collect();
    assert!(!of_web01.is_empty());
    assert!(
        of_web01
            .iter()
            .all(|r| r["authentication"] == "rpc-kerberos"),
        "{of_web01:#?}"
    );
}

/// The CA's Kerberos endpoint against an HTTP Negotiate client we did not
/// write (curl's SPNEGO): with tickets from ws01's keytab the request is
/// authenticated and its body judged (not WSTEP: 400 and a SOAP fault);
/// without, 401.
#[test]
fn curl_negotiates_with_the_cas_kerberos_endpoint() {
    let lab = UpLab::up();
    let ca_toml = std::fs::read_to_string(lab.dir.join("ca.toml")).unwrap();
    let port = ca_toml
        .lines()
        .find(|l| l.starts_with("listen"))
        .and_then(|l| l.rsplit(':').next())
        .map(|p| p.trim_end_matches('"').to_string())
        .expect("the CA's port");
    let url = format!("https://localhost:{port}/corp-CA_CES_Kerberos/service.svc/CES");
    let krb5 = lab.dir.join("krb5.conf");
    let cache = lab.dir.join("curl.ccache");
    let out = Command::new("kinit")
        .env("KRB5_CONFIG", &krb5)
        .arg("-k")
        .arg("-t")
        .arg(lab.dir.join("keytabs/ws01.keytab"))
        .arg("-c")
        .arg(&cache)
        .arg("WS01$")
        .output()
        .expect("kinit runs");
    assert!(out.status.success(), "kinit: {}", text(&out));
    let curl = |negotiate: bool| {
        let mut cmd = Command::new("curl");
        cmd.env("KRB5_CONFIG", &krb5)
            .env("KRB5CCNAME", format!("FILE:{}", cache.display()))
            .args(["-s", "-w", "\n%{http_code}", "--cacert"])
            .arg(lab.dir.join("ca/ca.pem"))
            .args([
                "-H",
                "Content-Type: application/soap+xml",
                "--data",
                "not soap",
            ]);
        if negotiate {
            cmd.args(["--negotiate", "-u", ":"]);
        }
        let out = cmd.arg(&url).output().expect("curl runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let answer = curl(true);
    assert!(answer.ends_with("\n400"), "{answer}");
    assert!(answer.contains("not a WSTEP request"), "{answer}");
    assert!(curl(false).ends_with("\n401"));
}
