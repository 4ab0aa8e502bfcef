//! The compose lab across containers: `docker-compose.yml` brought up as a
//! user meets it (KDC, directory, CA, a host whose worker enrolls by itself
//! with its keytab), then
//! changed and broken from outside: a template change, the CA cut off the
//! host's network, the directory stopped, the CA restarted in the middle of a
//! fleet's enrollments, 20 more host containers with their own accounts.
//!
//! These tests need a Docker Engine with Compose and the images of
//! `scripts/images.sh`; `scripts/compose-test.sh` builds them and runs this
//! file with `AUTOENROLL_COMPOSE_TESTS=1`. Without that variable, or without a
//! reachable engine, each test says why it is skipped and passes.
//!
//! Every lab is its own Compose project (its own network, volumes and host
//! ports), removed with its volumes at the end, failed or not.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

const POLICY: &str = "/etc/autoenroll/machine.toml";
const CA_CONFIG: &str = "/var/lib/autoenroll-ca/ca.toml";
const STORE: &str = "/var/lib/autoenroll/machine";
const METRICS: &str = "/var/lib/autoenroll/autoenroll.prom";
const FLEET: usize = 20;

/// One lab at a time: the fleet alone is 20 containers on a shared engine.
static ONE_LAB: Mutex<()> = Mutex::new(());

/// The Compose command of this machine (`docker compose` or `docker-compose`),
/// or why the tests are skipped.
fn compose_command() -> Result<Vec<String>, String> {
    if std::env::var("AUTOENROLL_COMPOSE_TESTS").as_deref() != Ok("1") {
        return Err("AUTOENROLL_COMPOSE_TESTS is not 1 (scripts/compose-test.sh sets it after building the images)".into());
    }
    let info = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output();
    match info {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            return Err(format!(
                "no Docker engine is reachable: docker info: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
        Err(e) => return Err(format!("no Docker engine is reachable: docker: {e}")),
    }
    for candidate in [&["docker", "compose"][..], &["docker-compose"][..]] {
        let ok = Command::new(candidate[0])
            .args(&candidate[1..])
            .arg("version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if ok {
            return Ok(candidate.iter().map(|s| s.to_string()).collect());
        }
    }
    Err("neither `docker compose` nor `docker-compose` works".into())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_string()
}

/// Runs a command; panics with its output when it fails.
fn must(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn docker(args: &[&str]) -> Command {
    let mut c = Command::new("docker");
    c.args(args);
    c
}

/// Polls `probe` every second until it gives a value; panics after `limit`
/// with the last thing it saw.
fn wait_for<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    loop {
        match probe() {
            Ok(v) => return v,
            Err(last) if start.elapsed() > limit => {
                panic!("{what}: not within {limit:?}; last: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_secs(1)),
        }
    }
}

/// A certificate a host holds, from `autoenroll status --json`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Held {
    template: String,
    thumbprint: String,
    subject: String,
    health: String,
}

struct Status {
    code: i32,
    held: Vec<Held>,
    pending: Vec<String>,
}

impl Status {
    fn thumbprint(&self, template: &str) -> Option<&str> {
        self.held
            .iter()
            .find(|h| h.template == template)
            .map(|h| h.thumbprint.as_str())
    }
}

struct Lab {
    project: String,
    compose: Vec<String>,
    root: PathBuf,
    env: Vec<(String, String)>,
}

impl Lab {
    /// A new project; nothing runs yet. The worker's schedule is the tests':
    /// a backoff capped at one minute, no jitter, the directory watched every
    /// 5 seconds.
    fn new(compose: Vec<String>, tag: &str) -> Lab {
        let project = format!("aetest{tag}{}", std::process::id());
        let env = vec![
            ("HOST_INTERVAL".into(), "1m".into()),
            ("HOST_JITTER".into(), "0s".into()),
            ("HOST_DIRECTORY_CHECK".into(), "5s".into()),
            ("DIRECTORY_PORT".into(), free_port().to_string()),
            ("CA_HTTPS_PORT".into(), free_port().to_string()),
            ("CA_HTTP_PORT".into(), free_port().to_string()),
        ];
        Lab {
            project,
            compose,
            root: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
            env,
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.compose[0]);
        c.args(&self.compose[1..])
            .arg("-f")
            .arg(self.root.join("docker-compose.yml"))
            .args(["-p", &self.project])
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    fn up(&self, services: &[&str]) {
        let mut args = vec!["up", "-d", "--no-build"];
        args.extend_from_slice(services);
        must(&mut self.cmd(&args));
    }

    /// The container id of a service.
    fn id(&self, service: &str) -> String {
        let id = must(&mut self.cmd(&["ps", "-q", service]));
        assert!(!id.is_empty(), "{service} has no container");
        id
    }

    fn network(&self) -> String {
        format!("{}_default", self.project)
    }

    fn exec(&self, container: &str, args: &[&str]) -> Output {
        docker(&["exec", container])
            .args(args)
            .output()
            .expect("docker exec")
    }

    /// `autoenroll status --json` of a host container.
    fn status(&self, container: &str) -> Result<Status, String> {
        let out = self.exec(
            container,
            &["autoenroll", "status", "--policy", POLICY, "--json"],
        );
        let code = out.status.code().unwrap_or(-1);
        let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
            format!(
                "status of {container} (exit {code}) is not JSON ({e}): {}",
                text(&out.stderr)
            )
        })?;
        if v.get("error").is_some() {
            return Err(format!("status of {container}: {v}"));
        }
        let mut held = Vec::new();
        let mut pending = Vec::new();
        for c in v["certificates"].as_array().into_iter().flatten() {
            let template = c["template"].as_str().unwrap_or_default().to_string();
            if c["not_after"].is_string() {
                held.push(Held {
                    template,
                    thumbprint: c["certificate"].as_str().unwrap_or_default().to_string(),
                    subject: c["subject"].as_str().unwrap_or_default().to_string(),
                    health: c["health"].as_str().unwrap_or_default().to_string(),
                });
            } else if c["health"] == "pending" {
                pending.push(template);
            }
        }
        held.sort();
        Ok(Status {
            code,
            held,
            pending,
        })
    }

    /// Waits until a host holds a healthy certificate of each template and
    /// `status` exits 0.
    fn wait_enrolled(&self, container: &str, limit: Duration) -> Status {
        wait_for(&format!("{container} enrolled"), limit, || {
            let s = self.status(container)?;
            let healthy = |t: &str| {
                s.held
                    .iter()
                    .any(|h| h.template == t && h.health == "healthy")
            };
            if s.code == 0 && healthy("WorkstationAuth") && healthy("ShortLived") {
                Ok(s)
            } else {
                Err(format!(
                    "exit {}, held {:?}, pending {:?}",
                    s.code, s.held, s.pending
                ))
            }
        })
    }

    /// Every request of the CA's database (`ca requests --json`).
    fn ca_requests(&self) -> Vec<Value> {
        let ca = self.id("ca");
        let out = self.exec(
            &ca,
            &[
                "autoenroll",
                "ca",
                "requests",
                "--config",
                CA_CONFIG,
                "--json",
            ],
        );
        assert!(out.status.success(), "ca requests: {}", text(&out.stderr));
        match serde_json::from_slice(&out.stdout) {
            Ok(Value::Array(rows)) => rows,
            other => panic!("ca requests --json: not an array: {other:?}"),
        }
    }

    /// Sets WorkstationAuth's major version (`revision`) as the directory's
    /// administrator, over StartTLS.
    fn set_revision(&self, revision: u32) {
        let script = format!(
            "printf 'dn: CN=WorkstationAuth,CN=Certificate Templates,CN=Public Key Services,CN=Services,CN=Configuration,DC=corp,DC=example\\nchangetype: modify\\nreplace: revision\\nrevision: {revision}\\n' \
             | LDAPTLS_CACERT=/etc/ldap/tls/ca.pem ldapmodify -x -ZZ -H ldap://localhost/ \
               -D CN=admin,DC=corp,DC=example -w \"$(head -n 1 /run/secrets/directory-root-password)\""
        );
        let directory = self.id("directory");
        let out = self.exec(&directory, &["sh", "-c", &script]);
        assert!(out.status.success(), "ldapmodify: {}", text(&out.stderr));
    }

    /// The names under my/ and archive/ of a host's store.
    fn store_listing(&self, container: &str) -> BTreeSet<String> {
        let out = self.exec(
            container,
            &[
                "find",
                &format!("{STORE}/my"),
                &format!("{STORE}/archive"),
                "-mindepth",
                "1",
                "-maxdepth",
                "1",
            ],
        );
        assert!(
            out.status.success(),
            "find in the store: {}",
            text(&out.stderr)
        );
        text(&out.stdout).lines().map(str::to_string).collect()
    }

    /// The host's metrics file: (last pulse time, last pulse success,
    /// WorkstationAuth's consecutive failures).
    fn metrics(&self, container: &str) -> Result<(u64, bool, u32), String> {
        let out = self.exec(container, &["cat", METRICS]);
        if !out.status.success() {
            return Err(format!("no metrics file: {}", text(&out.stderr)));
        }
        let body = String::from_utf8_lossy(&out.stdout).to_string();
        let value = |prefix: &str| -> Option<&str> {
            body.lines()
                .find(|l| l.starts_with(prefix))
                .and_then(|l| l.rsplit(' ').next())
        };
        let at = value("autoenroll_last_pulse_timestamp_seconds ")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("no pulse time in {body}"))?;
        let ok = value("autoenroll_last_pulse_success ") == Some("1");
        let failures =
            value("autoenroll_template_consecutive_failures{template=\"WorkstationAuth\"} ")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
        Ok((at, ok, failures))
    }

    fn health(&self, container: &str) -> String {
        text(
            &docker(&["inspect", "-f", "{{.State.Health.Status}}", container])
                .output()
                .expect("docker inspect")
                .stdout,
        )
    }

    /// Starts a host container of the pool outside Compose, the way a fleet
    /// is run: the shared image, its own host name (so its own account) and
    /// address on the lab's network, the KDC's keytabs, the passwords secret
    /// and the lab CA read-only, the store in the container's own layer;
    /// `bind` is the entrypoint's HOST_BIND (`kerberos` or `simple`).
    fn start_pool_host(&self, name: &str, bind: &str) -> String {
        let container = format!("{}-fleet-{name}", self.project);
        let secrets = self.root.join("docker/secrets/host-passwords");
        let mut c = docker(&["run", "-d", "--name", &container, "--hostname", name]);
        c.args(["--network", &self.network()])
            .args(["--label", &format!("autoenroll.test={}", self.project)])
            .args([
                "-v",
                &format!("{}_lab-trust:/var/lib/autoenroll-trust:ro", self.project),
            ])
            .args([
                "-v",
                &format!("{}_kerberos:/var/lib/autoenroll-kerberos:ro", self.project),
            ])
            .arg("-v")
            .arg(format!(
                "{}:/run/secrets/host-passwords:ro",
                secrets.display()
            ))
            .args(["-e", &format!("HOST_BIND={bind}")])
            .args(["--entrypoint", "/usr/local/bin/host-entrypoint"]);
        for (k, v) in &self.env {
            if k.starts_with("HOST_") {
                c.args(["-e", &format!("{k}={v}")]);
            }
        }
        c.arg("autoenroll");
        must(&mut c);
        container
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Ok(o) = self.cmd(&["logs", "--no-color", "--tail", "60"]).output()
        {
            eprintln!(
                "--- compose logs of {} ---\n{}",
                self.project,
                text(&o.stdout)
            );
        }
        // The fleet's containers, by the label they carry.
        let label = format!("label=autoenroll.test={}", self.project);
        if let Ok(o) = docker(&["ps", "-aq", "--filter", &label]).output() {
            let ids = text(&o.stdout);
            if !ids.is_empty() {
                let _ = docker(&["rm", "-f", "-v"]).args(ids.lines()).output();
            }
        }
        let _ = self
            .cmd(&["down", "-v", "--remove-orphans", "-t", "5"])
            .output();
    }
}

/// A serial number in one spelling: upper-case hex without leading zeros.
fn hex_serial(s: &str) -> String {
    let s = s.trim().trim_start_matches('0').to_uppercase();
    if s.is_empty() { "0".into() } else { s }
}

fn skip_or_compose(test: &str) -> Option<Vec<String>> {
    match compose_command() {
        Ok(c) => Some(c),
        Err(why) => {
            eprintln!("{test}: skipped: {why}");
            None
        }
    }
}

fn tls_refused_without_lab_ca(lab: &Lab, host: &str) {
    // The lab CA verifies the directory's name `directory`; the system's roots
    // do not, so the hosts really check the directory's certificate.
    let search = |ca_file: &str| {
        lab.exec(
            host,
            &[
                "env",
                &format!("LDAPTLS_CACERT={ca_file}"),
                "ldapsearch",
                "-x",
                "-ZZ",
                "-o",
                "nettimeout=5",
                "-H",
                "ldap://directory/",
                "-b",
                "",
                "-s",
                "base",
                "namingContexts",
            ],
        )
    };
    let lab_ca = search("/var/lib/autoenroll-trust/ca.pem");
    assert!(
        lab_ca.status.success(),
        "StartTLS with the lab CA: {}",
        text(&lab_ca.stderr)
    );
    let system = search("/etc/ssl/certs/ca-certificates.crt");
    assert!(
        !system.status.success(),
        "StartTLS to the directory verified against the system's roots"
    );
}

#[test]
fn a_host_enrolls_follows_a_template_change_and_outlives_ca_and_directory_outages() {
    let Some(compose) = skip_or_compose("compose lab") else {
        return;
    };
    let _one = ONE_LAB.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::new(compose, "a");

    // 1. `up -d`: the host is healthy within a minute, by itself.
    let started = Instant::now();
    lab.up(&[]);
    let host = lab.id("host");
    let first = lab.wait_enrolled(&host, Duration::from_secs(60));
    let enrolled_after = started.elapsed();
    let healthy_after = wait_for(
        "the host's healthcheck",
        Duration::from_secs(60),
        || match lab.health(&host).as_str() {
            "healthy" => Ok(started.elapsed()),
            other => Err(other.to_string()),
        },
    );
    eprintln!("compose up to enrolled: {enrolled_after:?}; to healthy: {healthy_after:?}");
    assert!(
        healthy_after <= Duration::from_secs(75),
        "healthy after {healthy_after:?}"
    );
    for service in ["kdc", "directory", "ca"] {
        assert_eq!(lab.health(&lab.id(service)), "healthy", "{service}");
    }
    assert_eq!(first.pending, vec!["PendingMachine".to_string()]);
    for h in &first.held {
        assert_eq!(h.subject, "CN=ws01.corp.example", "{h:?}");
    }
    let requests = lab.ca_requests();
    let mut ws01: Vec<(String, String)> = requests
        .iter()
        .filter(|r| r["requester"] == "WS01$")
        .map(|r| {
            (
                r["template"].as_str().unwrap_or_default().to_string(),
                r["disposition"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    ws01.sort();
    let expected = [
        ("PendingMachine", "pending"),
        ("ShortLived", "issued"),
        ("WorkstationAuth", "issued"),
    ]
    .map(|(t, d)| (t.to_string(), d.to_string()));
    assert_eq!(ws01, expected, "ws01's requests: {requests:?}");
    // ws01 has no password: it bound to the directory and enrolled with the
    // keys of its keytab (SASL GSSAPI, then HTTP Negotiate to the CA).
    for r in requests.iter().filter(|r| r["requester"] == "WS01$") {
        assert_eq!(r["authentication"], "kerberos", "{r}");
    }
    let files = lab.exec(
        &host,
        &["sh", "-c", "stat -c '%a %n' /etc/autoenroll/*; grep -c '^bind = \"kerberos\"$' /etc/autoenroll/machine.toml"],
    );
    let files = text(&files.stdout);
    assert!(
        files.contains("600 /etc/autoenroll/krb5.keytab") && !files.contains("host.secret"),
        "the host's credentials: {files}"
    );
    tls_refused_without_lab_ca(&lab, &host);

    // 2. A template change reaches the host: a major version bump of
    // WorkstationAuth re-enrolls it, and the old certificate is archived.
    let old = first
        .thumbprint("WorkstationAuth")
        .expect("WorkstationAuth")
        .to_string();
    lab.set_revision(102);
    let second = wait_for(
        "re-enrollment after the template change",
        Duration::from_secs(60),
        || {
            let s = lab.status(&host)?;
            match s.thumbprint("WorkstationAuth") {
                Some(t) if t != old && s.code == 0 => Ok(s),
                t => Err(format!("WorkstationAuth {t:?}, exit {}", s.code)),
            }
        },
    );
    let listing = lab.store_listing(&host);
    assert!(
        listing.contains(&format!("{STORE}/archive/{old}")),
        "{old} not archived: {listing:?}"
    );

    // And a policy change: another trust anchors folder in the host's policy
    // file is filled by the pulse the change starts (the worker says why it
    // pulsed).
    let anchors = "/var/lib/autoenroll/anchors";
    let edit = format!(
        "mkdir -p {anchors} && sed -i 's|^trust_anchors_dir = .*|trust_anchors_dir = \"{anchors}\"|' {POLICY}"
    );
    let out = lab.exec(&host, &["sh", "-c", &edit]);
    assert!(out.status.success(), "policy edit: {}", text(&out.stderr));
    wait_for(
        "the root in the new anchors folder",
        Duration::from_secs(60),
        || {
            let out = lab.exec(&host, &["ls", anchors]);
            let names = text(&out.stdout);
            let log = docker(&["logs", &host])
                .output()
                .map_err(|e| e.to_string())?;
            let triggered =
                String::from_utf8_lossy(&log.stderr).contains("trigger=\"policy_changed\"");
            if triggered
                && names
                    .lines()
                    .any(|n| n.starts_with("autoenroll-") && n.ends_with(".crt"))
            {
                Ok(())
            } else {
                Err(format!("{anchors}: {names:?}"))
            }
        },
    );

    // 3. The CA cut off the host's network: the host keeps its certificates,
    // reports the failure, backs off, and completes once the CA is back.
    let held = second
        .thumbprint("WorkstationAuth")
        .expect("WorkstationAuth")
        .to_string();
    let ca = lab.id("ca");
    must(&mut docker(&["network", "disconnect", &lab.network(), &ca]));
    lab.set_revision(103);
    wait_for(
        "the failure reported",
        Duration::from_secs(60),
        || match lab.metrics(&host)? {
            (_, false, n) if n >= 1 => Ok(()),
            m => Err(format!("{m:?}")),
        },
    );
    let during = lab.status(&host).expect("status while the CA is away");
    assert_eq!(during.thumbprint("WorkstationAuth"), Some(held.as_str()));
    assert!(
        lab.store_listing(&host)
            .contains(&format!("{STORE}/my/{held}"))
    );
    let plan = lab.exec(&host, &["autoenroll", "plan", "--policy", POLICY, "--json"]);
    let plan: Value = serde_json::from_slice(&plan.stdout).expect("plan --json");
    let reason = plan["actions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["template"] == "WorkstationAuth" && a["certificate"] == held.as_str())
        .and_then(|a| a["reason"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(
        reason.contains("backing off"),
        "plan during the outage: {plan}"
    );
    must(&mut docker(&[
        "network",
        "connect",
        "--alias",
        "ca",
        &lab.network(),
        &ca,
    ]));
    let reconnected = Instant::now();
    let third = wait_for(
        "re-enrollment after the CA is back",
        Duration::from_secs(150),
        || {
            let s = lab.status(&host)?;
            match s.thumbprint("WorkstationAuth") {
                Some(t) if t != held && s.code == 0 => Ok(s),
                t => Err(format!("WorkstationAuth {t:?}, exit {}", s.code)),
            }
        },
    );
    eprintln!(
        "completed {:?} after the CA was reconnected",
        reconnected.elapsed()
    );
    wait_for(
        "a successful pulse reported",
        Duration::from_secs(30),
        || match lab.metrics(&host)? {
            (_, true, 0) => Ok(()),
            m => Err(format!("{m:?}")),
        },
    );

    // 4. The directory stopped: a pulse fails (a pulse that could not read
    // the directory writes no metrics: its log says so) and nothing is
    // archived or removed; the host is healthy again once the directory is back.
    let before = lab.store_listing(&host);
    must(&mut lab.cmd(&["stop", "-t", "5", "directory"]));
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
        .to_string();
    must(&mut docker(&["kill", "-s", "HUP", &host]));
    wait_for(
        "a failed pulse without the directory",
        Duration::from_secs(60),
        || {
            let out = docker(&["logs", "--since", &since, &host])
                .output()
                .map_err(|e| e.to_string())?;
            let log = String::from_utf8_lossy(&out.stderr).to_string();
            if log.contains("event=\"pulse_failed\"")
                && log.contains("the directory cannot be read")
            {
                Ok(())
            } else {
                Err(log)
            }
        },
    );
    assert_eq!(
        lab.store_listing(&host),
        before,
        "the store changed without the directory"
    );
    must(&mut lab.cmd(&["start", "directory"]));
    let after = lab.wait_enrolled(&host, Duration::from_secs(90));
    assert_eq!(
        after.held, third.held,
        "the certificates changed across the outage"
    );
    assert_eq!(lab.store_listing(&host), before);
}

#[test]
fn a_fleet_of_twenty_hosts_enrolls_once_each_across_a_ca_restart() {
    let Some(compose) = skip_or_compose("compose fleet") else {
        return;
    };
    let _one = ONE_LAB.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::new(compose, "f");
    lab.up(&[]);
    let ws01 = lab.id("host");
    lab.wait_enrolled(&ws01, Duration::from_secs(60));

    // The fleet starts one host after the other; as soon as the CA has
    // answered the first of them it is stopped (SIGTERM: requests in progress
    // finish, later ones find no CA), the rest of the fleet starts while it is
    // away, and it starts again.
    let names: Vec<String> = (1..=FLEET).map(|n| format!("host{n:02}")).collect();
    // Half the fleet binds with its keytab, half with its password.
    let binds: Vec<&str> = (1..=FLEET)
        .map(|n| if n % 2 == 1 { "kerberos" } else { "simple" })
        .collect();
    let from_fleet = |rows: &[Value]| {
        rows.iter()
            .filter(|r| {
                r["requester"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("HOST"))
            })
            .count()
    };
    let started = Instant::now();
    let ca = lab.id("ca");
    let (fleet, at_stop, stopped) = std::thread::scope(|scope| {
        let starter = scope.spawn(|| {
            names
                .iter()
                .zip(&binds)
                .map(|(name, bind)| lab.start_pool_host(name, bind))
                .collect::<Vec<_>>()
        });
        let at_stop = wait_for(
            "the CA answering the fleet",
            Duration::from_secs(60),
            || match from_fleet(&lab.ca_requests()) {
                0 => Err("no request from the fleet yet".into()),
                n => Ok(n),
            },
        );
        must(&mut docker(&["stop", "-t", "10", &ca]));
        let stopped = Instant::now();
        (
            starter.join().expect("starting the fleet"),
            at_stop,
            stopped,
        )
    });
    let at_stopped = from_fleet(&{
        // The database is in the CA's volume: read it with the CA stopped.
        let out = docker(&["run", "--rm", "--entrypoint", "autoenroll"])
            .args([
                "-v",
                &format!("{}_ca-state:/var/lib/autoenroll-ca", lab.project),
            ])
            .args([
                "autoenroll",
                "ca",
                "requests",
                "--config",
                CA_CONFIG,
                "--json",
            ])
            .output()
            .expect("docker run");
        assert!(out.status.success(), "ca requests: {}", text(&out.stderr));
        serde_json::from_slice::<Vec<Value>>(&out.stdout).expect("ca requests --json")
    });
    eprintln!(
        "the CA stopped with {at_stop} of the fleet's {} requests answered when it was asked, {at_stopped} in its database",
        3 * FLEET
    );
    assert!(
        at_stopped < 3 * FLEET,
        "the fleet had enrolled before the CA stopped"
    );
    // The hosts that had not enrolled find no CA, report it and back off.
    let failing = wait_for(
        "a host failing without the CA",
        Duration::from_secs(60),
        || {
            let n = fleet
                .iter()
                .filter(|c| {
                    docker(&["logs", c.as_str()])
                        .output()
                        .map(|o| String::from_utf8_lossy(&o.stderr).contains("event=\"failed\""))
                        .unwrap_or(false)
                })
                .count();
            if n > 0 {
                Ok(n)
            } else {
                Err("no host reported a failure".into())
            }
        },
    );
    must(&mut docker(&["start", &ca]));
    eprintln!(
        "the CA was away {:?}; {failing} hosts had reported a failure",
        stopped.elapsed()
    );

    // Every host enrolls; each has its own account and address.
    let mut addresses = BTreeMap::new();
    let mut fleet_held = Vec::new();
    for (name, container) in names.iter().zip(&fleet) {
        let s = lab.wait_enrolled(container, Duration::from_secs(240));
        for h in &s.held {
            assert_eq!(
                h.subject,
                format!("CN={name}.corp.example"),
                "{container}: {h:?}"
            );
        }
        fleet_held.push((name.clone(), container.clone(), s.held));
        let ip = must(&mut docker(&[
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            container,
        ]));
        assert!(
            addresses.insert(ip.clone(), name.clone()).is_none(),
            "{ip} twice"
        );
    }
    eprintln!(
        "fleet of {FLEET} enrolled {:?} after its first host started",
        started.elapsed()
    );

    // The CA's database: for every account one issued WorkstationAuth, one
    // issued ShortLived and one pending PendingMachine request; nothing lost,
    // nothing issued twice, every serial once. A host that enrolled its two
    // certificates may still be sending its PendingMachine request (kept on
    // disk and sent again after a failure): missing rows are waited for,
    // anything twice fails at once.
    let expected = [
        ("PendingMachine", "pending"),
        ("ShortLived", "issued"),
        ("WorkstationAuth", "issued"),
    ];
    let mut accounts: Vec<String> = names
        .iter()
        .map(|n| format!("{}$", n.to_uppercase()))
        .collect();
    accounts.push("WS01$".into());
    // How each account authenticated to the CA: as it bound to the directory.
    let mut authentication: BTreeMap<String, &str> = names
        .iter()
        .zip(&binds)
        .map(|(n, b)| {
            let how = if *b == "kerberos" {
                "kerberos"
            } else {
                "password"
            };
            (format!("{}$", n.to_uppercase()), how)
        })
        .collect();
    authentication.insert("WS01$".into(), "kerberos");
    let issued = wait_for(
        "every request in the CA's database",
        Duration::from_secs(150),
        || {
            let requests = lab.ca_requests();
            let mut by_account: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
            let mut serials = BTreeSet::new();
            let mut issued = BTreeMap::new();
            for r in &requests {
                let requester = r["requester"].as_str().unwrap_or_default().to_string();
                let template = r["template"].as_str().unwrap_or_default().to_string();
                let disposition = r["disposition"].as_str().unwrap_or_default().to_string();
                assert!(
                    accounts.contains(&requester),
                    "a request of {requester}: {r}"
                );
                assert!(
                    expected.contains(&(template.as_str(), disposition.as_str())),
                    "{requester}: {template} {disposition}: {r}"
                );
                assert_eq!(
                    r["authentication"].as_str(),
                    authentication.get(&requester).copied(),
                    "{requester}'s authentication: {r}"
                );
                if let Some(serial) = r["serial"].as_str() {
                    assert!(serials.insert(serial.to_string()), "serial {serial} twice");
                    issued.insert((requester.clone(), template.clone()), hex_serial(serial));
                }
                let rows = by_account.entry(requester.clone()).or_default();
                assert!(
                    !rows.iter().any(|(t, _)| *t == template),
                    "{requester}: two {template} requests: {requests:?}"
                );
                rows.push((template, disposition));
            }
            let incomplete: Vec<String> = accounts
                .iter()
                .filter(|a| by_account.get(*a).map_or(0, Vec::len) < expected.len())
                .map(|a| format!("{a}: {:?}", by_account.get(a)))
                .collect();
            if incomplete.is_empty() {
                Ok(issued)
            } else {
                Err(incomplete.join("; "))
            }
        },
    );
    // What each host holds is what the database issued to its account.
    assert_eq!(fleet_held.len(), FLEET);
    for (name, container, held) in &fleet_held {
        let account = format!("{}$", name.to_uppercase());
        for h in held {
            let pem = format!("{STORE}/my/{}/cert.pem", h.thumbprint);
            let out = must(&mut docker(&[
                "exec", container, "openssl", "x509", "-noout", "-serial", "-in", &pem,
            ]));
            let serial = hex_serial(out.trim_start_matches("serial="));
            assert_eq!(
                issued.get(&(account.clone(), h.template.clone())),
                Some(&serial),
                "{container} holds {} serial {serial}",
                h.template
            );
        }
    }

    // What a host costs: its writable layer (the store and its policy).
    let sizes = must(&mut docker(&[
        "ps",
        "-s",
        "--filter",
        &format!("label=autoenroll.test={}", lab.project),
        "--format",
        "{{.Names}} {{.Size}}",
    ]));
    eprintln!("fleet containers (writable layer, virtual = the shared image):\n{sizes}");
    let stats = must(
        docker(&[
            "stats",
            "--no-stream",
            "--format",
            "{{.Name}} {{.MemUsage}}",
        ])
        .args(fleet.iter().take(3)),
    );
    eprintln!("memory of three fleet hosts:\n{stats}");
}
