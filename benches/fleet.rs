//! Benchmark: a fleet of simulated hosts enrolling against one directory and
//! one CA, with the baselines that make its figures ratios (the CA key's raw
//! signing rate, `openssl speed`, and an `ldapsearch` floor), all measured in
//! the same run.
//!
//! ```text
//! cargo bench --bench fleet -- [--hosts 100,1000] [--templates 0] [--concurrency 16]
//!                              [--svg docs/fleet.svg] [--json fleet.jsonl]
//!                              [--stores-in /dev/shm]
//! ```
//!
//! `--stores-in` puts the hosts' stores in a folder made there instead of
//! beside the lab (the CA's database and slapd's stay on the lab's disk):
//! a real host's store writes load its own disk, not the servers' machine,
//! and N stores on one filesystem cost more than N filesystems would.
//!
//! For each size it starts a private slapd holding the sample forest, N
//! computer accounts (primary group Servers, so each is granted the
//! ServerAuthECDSA template: P-256 requester keys) and T extra templates no
//! host may enroll in (read by every snapshot, so they measure the cost of a
//! large Public Key Services); runs `ca init` and the CA as its own process
//! (`autoenroll ca serve`, RSA-3072 key), then three waves of pulses, K at a
//! time, in this process:
//!
//! 1. first pulses: every host connects, binds and snapshots on its own LDAP
//!    connection, makes its own key, opens its own TLS connection to the CA
//!    and installs into its own store;
//! 2. a renewal wave 324 days on, inside the renewal period, the CA
//!    restarted with its clock there too (libfaketime): each renewal is a
//!    CMS request signed by the host's old key, and the CA must agree that
//!    it is due, or it refuses it;
//! 3. a no-op wave (nothing due);
//!
//! then no-op pulses of one host one at a time on each of the three ways a
//! pulse finds Public Key Services (unchanged, after a write elsewhere, read
//! in full), each against an `ldapsearch` of that pulse's largest search.
//!
//! Nothing a server sees is shared between hosts. After each issuing wave it
//! checks that every issued certificate is recorded exactly once in the CA
//! database and installed exactly once in a store. CPU times come from
//! `/proc/<pid>/stat` of the CA and of slapd, bytes from slapd's
//! `/proc/<pid>/io` (its socket writes and reads: LMDB reads are mapped, not
//! read). The CA's and slapd's CPU are their own processes'; the hosts'
//! CPU is this process's.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use autoenroll::ca::db::{Database, Disposition, ListFilter, normalize_serial};
use autoenroll::ca::{CaConfig, init};
use autoenroll::lab::{Lab, LabOptions, computer_account_ldif, template_variant_ldif};
use autoenroll::model::Context;
use autoenroll::pki::keys::PrivateKey;
use autoenroll::policy::Policy;
use autoenroll::pulse::{Event, PulseOptions, pulse};
use autoenroll::store::Store;

/// The Servers group (S-1-5-21-1000-2000-3000-1101), which ServerAuthECDSA
/// grants Enroll and AutoEnroll.
const SERVERS_RID: u32 = 1101;
const FIRST_RID: u32 = 20000;
/// How far after the first wave the renewal wave happens: 324 days on, inside
/// ServerAuthECDSA's six-week renewal period of a one-year certificate. The
/// CA (restarted under libfaketime) and the hosts both move there: a CA whose
/// clock does not agree refuses the renewal, and the host then enrolls anew.
/// Everything after the first wave happens at that time.
const RENEWAL_AFTER: time::Duration = time::Duration::days(324);
const FLOOR_ROUNDS: usize = 30;

struct Args {
    hosts: Vec<usize>,
    templates: Vec<usize>,
    concurrency: usize,
    svg: Option<PathBuf>,
    json: Option<PathBuf>,
    /// Where the hosts' stores go (a folder made in it), instead of the
    /// lab's folder.
    stores_in: Option<PathBuf>,
}

fn args() -> Args {
    let mut a = Args {
        hosts: vec![100, 1000],
        templates: vec![0],
        concurrency: 16,
        svg: None,
        json: None,
        stores_in: None,
    };
    let list = |v: &str| -> Vec<usize> {
        v.split(',')
            .map(|n| n.trim().parse().expect("a list of numbers"))
            .collect()
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--hosts" => a.hosts = list(&it.next().expect("--hosts N[,N...]")),
            "--templates" => a.templates = list(&it.next().expect("--templates T[,T...]")),
            "--concurrency" => {
                a.concurrency = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--concurrency K")
            }
            "--svg" => a.svg = it.next().map(PathBuf::from),
            "--json" => a.json = it.next().map(PathBuf::from),
            "--stores-in" => a.stores_in = it.next().map(PathBuf::from),
            _ => {} // `cargo bench` passes --bench
        }
    }
    a
}

/// The type of the filesystem holding `path` (its longest mount point in
/// `/proc/self/mounts`).
fn filesystem_of(path: &Path) -> String {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, point, kind) = (f.next()?, f.next()?, f.next()?);
            path.starts_with(point)
                .then(|| (point.len(), kind.to_string()))
        })
        .max()
        .map_or_else(|| "unknown".into(), |(_, kind)| kind)
}

/// CPU seconds (user + system) of a process, from `/proc/<pid>/stat`.
fn cpu_of(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 (1-based), 12 and 13 here.
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    (ticks(11) + ticks(12)) / hz
}

/// Bytes a process wrote and read through system calls (`wchar`, `rchar`).
fn io_of(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (get("wchar:"), get("rchar:"))
}

fn self_cpu() -> f64 {
    cpu_of(std::process::id())
}

fn children_cpu() -> f64 {
    use nix::sys::resource::{UsageWho, getrusage};
    let u = getrusage(UsageWho::RUSAGE_CHILDREN).expect("getrusage");
    let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
    t(u.user_time()) + t(u.system_time())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// What one wave of pulses cost.
#[derive(Debug, Default, Clone)]
struct Wave {
    name: &'static str,
    pulses: usize,
    wall: Duration,
    failures: usize,
    installed: usize,
    searches: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
    ca_cpu: f64,
    slapd_cpu: f64,
    hosts_cpu: f64,
    slapd_out: u64,
    slapd_in: u64,
}

impl Wave {
    fn print(&self) {
        let n = self.pulses.max(1) as f64;
        println!(
            "  {:<8} {} pulses in {:.2} s ({:.1}/s), {} installed, {} failed; latency p50 {:.1} ms p99 {:.1} ms max {:.1} ms",
            self.name,
            self.pulses,
            self.wall.as_secs_f64(),
            self.pulses as f64 / self.wall.as_secs_f64(),
            self.installed,
            self.failures,
            ms(self.p50),
            ms(self.p99),
            ms(self.max),
        );
        println!(
            "           per pulse: {:.2} LDAP searches, slapd sent {:.0} B and received {:.0} B; CPU ms: CA {:.2}, slapd {:.2}, host {:.2}",
            self.searches as f64 / n,
            self.slapd_out as f64 / n,
            self.slapd_in as f64 / n,
            self.ca_cpu * 1e3 / n,
            self.slapd_cpu * 1e3 / n,
            self.hosts_cpu * 1e3 / n,
        );
        if self.installed > 0 {
            let i = self.installed as f64;
            println!(
                "           per issuance: CA {:.2} ms CPU, slapd {:.2} ms CPU; {:.1} issuances/s",
                self.ca_cpu * 1e3 / i,
                self.slapd_cpu * 1e3 / i,
                i / self.wall.as_secs_f64()
            );
        }
    }
}

struct Fleet {
    lab: Lab,
    /// Each host's name and policy file.
    hosts: Vec<(String, PathBuf)>,
    /// The folder holding the hosts' stores, one per host, by name.
    stores: PathBuf,
    ca_pid: u32,
    ca_port: u16,
    slapd_pid: u32,
    config: CaConfig,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        stop(self.ca_pid);
    }
}

fn host_name(i: usize) -> String {
    format!("host{i:05}")
}

fn password(name: &str) -> String {
    format!("{name}-Fleet-Passw0rd")
}

async fn setup(tmp: &Path, stores: &Path, hosts: usize, templates: usize) -> Fleet {
    let mut ldif = String::new();
    for i in 0..hosts {
        let name = host_name(i);
        ldif.push_str(&computer_account_ldif(
            &name,
            FIRST_RID + i as u32,
            SERVERS_RID,
            &password(&name),
        ));
    }
    for i in 0..templates {
        ldif.push_str(
            &template_variant_ldif("WorkstationAuth", &format!("Fleet{i:04}"), &[])
                .expect("sample template"),
        );
    }
    let lab = Lab::start(
        &tmp.join("lab"),
        LabOptions {
            extra_ldif: Some(ldif),
            ..LabOptions::default()
        },
    )
    .expect("lab");
    let https = free_port();
    let path = lab.write_ca_config(https, free_port()).expect("ca.toml");
    let config = CaConfig::load(&path).expect("ca.toml loads");
    init::init(&config, time::OffsetDateTime::now_utc())
        .await
        .expect("ca init");
    let ca_pid = autoenroll::lab::start_ca_detached(
        &lab.dir,
        Path::new(env!("CARGO_BIN_EXE_autoenroll")),
        https,
    )
    .expect("the CA serves");
    let hosts = (0..hosts)
        .map(|i| {
            let name = host_name(i);
            let dn = format!("CN={name},CN=Computers,DC=corp,DC=example");
            let p = lab
                .write_password_policy(
                    &name,
                    &dn,
                    Context::Machine,
                    &password(&name),
                    &stores.join(&name),
                )
                .expect("policy");
            (name, p)
        })
        .collect();
    let slapd_pid = lab.slapd_pid().expect("slapd's pid");
    Fleet {
        lab,
        hosts,
        stores: stores.to_path_buf(),
        ca_pid,
        ca_port: https,
        slapd_pid,
        config,
    }
}

/// A program that runs `autoenroll` with its clock [`RENEWAL_AFTER`] on:
/// libfaketime preloaded (not the `faketime` command, which would stand
/// between this process and the one measured), the monotonic clock, which
/// timers follow, left alone.
fn autoenroll_later(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let library = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("faketime/libfaketime.so.1"))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("libfaketime is missing: apt-get install -y faketime"));
    let path = dir.join("autoenroll-later");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nexport LD_PRELOAD='{}' FAKETIME='+{}d' DONT_FAKE_MONOTONIC=1\nexec '{}' \"$@\"\n",
            library.display(),
            RENEWAL_AFTER.whole_days(),
            env!("CARGO_BIN_EXE_autoenroll")
        ),
    )
    .expect("the wrapper");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// Stops the CA and starts it again [`RENEWAL_AFTER`] on.
fn ca_later(fleet: &mut Fleet) {
    stop(fleet.ca_pid);
    fleet.ca_pid = autoenroll::lab::start_ca_detached(
        &fleet.lab.dir,
        &autoenroll_later(&fleet.lab.dir),
        fleet.ca_port,
    )
    .expect("the CA serves again, later");
}

fn stop(pid: u32) {
    if pid == 0 {
        return;
    }
    let pid = nix::unistd::Pid::from_raw(pid as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let _ = nix::sys::wait::waitpid(pid, None);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

async fn wave(fleet: &Fleet, name: &'static str, at: time::Duration, concurrency: usize) -> Wave {
    let limit = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let (ca0, sl0, me0, io0) = (
        cpu_of(fleet.ca_pid),
        cpu_of(fleet.slapd_pid),
        self_cpu(),
        io_of(fleet.slapd_pid),
    );
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (host, path) in &fleet.hosts {
        let (limit, host, path) = (limit.clone(), host.clone(), path.clone());
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await.expect("semaphore");
            let t = Instant::now();
            let policy = Policy::load(&path).expect("policy");
            let now = time::OffsetDateTime::now_utc() + at;
            let result = pulse(&policy, PulseOptions::at(now)).await;
            (host, t.elapsed(), result)
        });
    }
    let mut w = Wave {
        name,
        ..Wave::default()
    };
    let mut latencies = Vec::new();
    let mut first_failure = None;
    while let Some(done) = tasks.join_next().await {
        let (host, elapsed, result) = done.expect("a pulse task");
        latencies.push(elapsed);
        w.pulses += 1;
        match result {
            Ok(report) => {
                w.searches += report.directory_searches;
                w.installed += report.count(Event::Installed) + report.count(Event::Replaced);
                if !report.ok {
                    w.failures += 1;
                    first_failure.get_or_insert_with(|| format!("{host}: {}", report.summary()));
                }
            }
            Err(e) => {
                w.failures += 1;
                first_failure.get_or_insert_with(|| format!("{host}: {e}"));
            }
        }
    }
    w.wall = start.elapsed();
    let io1 = io_of(fleet.slapd_pid);
    w.ca_cpu = cpu_of(fleet.ca_pid) - ca0;
    w.slapd_cpu = cpu_of(fleet.slapd_pid) - sl0;
    w.hosts_cpu = self_cpu() - me0;
    w.slapd_out = io1.0 - io0.0;
    w.slapd_in = io1.1 - io0.1;
    latencies.sort();
    w.p50 = percentile(&latencies, 0.5);
    w.p99 = percentile(&latencies, 0.99);
    w.max = latencies.last().copied().unwrap_or_default();
    if let Some(f) = first_failure {
        println!("  first failure: {f}");
    }
    w
}

/// Every issued certificate once in the CA database and once in a store's
/// `my/`; each host holds exactly one certificate issued in `wave` and one
/// per earlier wave in `archive/`. Returns the problems found.
fn exactly_once(fleet: &Fleet, issuing_waves: usize) -> Vec<String> {
    let mut problems = Vec::new();
    let db = Database::open(&fleet.config.database).expect("CA database");
    let records = db.list(ListFilter::All).expect("CA requests");
    let mut issued: HashMap<String, usize> = HashMap::new();
    let mut per_requester: BTreeMap<String, usize> = BTreeMap::new();
    let renewals = records.iter().filter(|r| r.renewal_of.is_some()).count();
    let expected_renewals = fleet.hosts.len() * (issuing_waves - 1);
    if renewals != expected_renewals {
        problems.push(format!(
            "{renewals} renewals signed by the old key recorded, {expected_renewals} expected"
        ));
    }
    for r in &records {
        if r.disposition != Disposition::Issued {
            problems.push(format!(
                "request {} of {} was not issued: {}",
                r.id, r.requester, r.reason
            ));
            continue;
        }
        let serial = r.serial.as_deref().unwrap_or("");
        let serial = normalize_serial(serial).unwrap_or_else(|_| serial.to_string());
        *issued.entry(serial).or_default() += 1;
        *per_requester
            .entry(r.requester.to_ascii_lowercase())
            .or_default() += 1;
    }
    for (serial, n) in &issued {
        if *n != 1 {
            problems.push(format!("serial {serial} recorded {n} times"));
        }
    }
    let mut installed: HashMap<String, usize> = HashMap::new();
    for (host, _) in &fleet.hosts {
        let store = Store::open(&fleet.stores.join(host)).expect("store");
        let snap = store.snapshot().expect("store snapshot");
        if snap.certificates.len() != 1 {
            problems.push(format!(
                "{host} holds {} certificates",
                snap.certificates.len()
            ));
        }
        if snap.archived != issuing_waves - 1 {
            problems.push(format!("{host} archived {}", snap.archived));
        }
        for c in &snap.certificates {
            let s = normalize_serial(&c.info.serial).unwrap_or_else(|_| c.info.serial.clone());
            *installed.entry(s).or_default() += 1;
        }
        let requester = format!("{host}$");
        let n = per_requester.get(&requester).copied().unwrap_or(0);
        if n != issuing_waves {
            problems.push(format!(
                "{host}: {n} issued certificates in the CA database"
            ));
        }
    }
    for (serial, n) in &installed {
        match issued.get(serial) {
            None => problems.push(format!("installed serial {serial} not in the CA database")),
            Some(_) if *n != 1 => problems.push(format!("serial {serial} installed {n} times")),
            _ => {}
        }
    }
    if installed.len() != fleet.hosts.len() {
        problems.push(format!(
            "{} certificates installed for {} hosts",
            installed.len(),
            fleet.hosts.len()
        ));
    }
    problems
}

/// CPU seconds (user + system) of the calling thread.
fn thread_cpu() -> f64 {
    use nix::sys::resource::{UsageWho, getrusage};
    let u = getrusage(UsageWho::RUSAGE_THREAD).expect("getrusage");
    let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
    t(u.user_time()) + t(u.system_time())
}

/// The CA key's raw signing rate (aws-lc-rs, 2 s in a loop), per CPU second
/// of the signing thread (the figure an issuance per CA CPU second compares
/// with: on shared cores a wall-clock rate counts other builds' time) and per
/// wall second, and `openssl speed`'s for the same key type (which divides
/// by user CPU time).
fn signing_baselines(config: &CaConfig) -> (f64, f64, Option<f64>) {
    let key = PrivateKey::from_pem(&std::fs::read(config.key_path()).expect("CA key"))
        .expect("CA key parses");
    // About the size of a certificate's to-be-signed part.
    let tbs = vec![0x5au8; 900];
    let start = Instant::now();
    let cpu0 = thread_cpu();
    let mut n = 0u32;
    while start.elapsed() < Duration::from_secs(2) {
        key.sign(&tbs).expect("signs");
        n += 1;
    }
    let raw_wall = f64::from(n) / start.elapsed().as_secs_f64();
    let raw = f64::from(n) / (thread_cpu() - cpu0).max(1e-6);
    let openssl = std::process::Command::new("openssl")
        .args(["speed", "-seconds", "2", "rsa3072"])
        .output()
        .ok()
        .and_then(|o| {
            // "rsa 3072 bits 0.001880s 0.000035s    531.9  28571.4"
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .find(|l| l.starts_with("rsa 3072 bits"))
                .and_then(|l| l.split_whitespace().nth(5)?.parse().ok())
        });
    (raw, raw_wall, openssl)
}

/// How a no-op pulse finds Public Key Services, each measured against its
/// own `ldapsearch` floor.
#[derive(Clone, Copy, Debug)]
enum NoopPath {
    /// Nothing was written since the last pulse: the server's change value
    /// stands still and Public Key Services is not searched at all.
    Unchanged,
    /// Something was written elsewhere (another account) before each pulse,
    /// as on an AD DC, whose USN moves with every write: the change marker
    /// of Public Key Services is read, and the saved entries stand.
    WrittenElsewhere,
    /// The saved snapshot is removed before each pulse (as after a template
    /// change): Public Key Services is read in full, and the saved snapshot
    /// written again.
    ReadInFull,
}

impl NoopPath {
    const ALL: [NoopPath; 3] = [
        NoopPath::Unchanged,
        NoopPath::WrittenElsewhere,
        NoopPath::ReadInFull,
    ];

    fn key(self) -> &'static str {
        match self {
            NoopPath::Unchanged => "unchanged",
            NoopPath::WrittenElsewhere => "written_elsewhere",
            NoopPath::ReadInFull => "read_in_full",
        }
    }

    /// The largest search such a pulse makes, as `ldapsearch` arguments:
    /// base, scope, filter, attributes.
    fn largest_search(self, host_dn: &str) -> [String; 4] {
        let pks = "CN=Public Key Services,CN=Services,CN=Configuration,DC=corp,DC=example";
        let filter = "(|(objectClass=pKICertificateTemplate)(objectClass=pKIEnrollmentService)(objectClass=certificationAuthority)(objectClass=pkiCA)(objectClass=cRLDistributionPoint))";
        let s = |x: &str| x.to_string();
        match self {
            // The account's entry, as the snapshot reads it.
            NoopPath::Unchanged => [
                s(host_dn),
                s("base"),
                s("(objectClass=*)"),
                s(
                    "objectClass objectSid primaryGroupID sAMAccountName dNSHostName userPrincipalName mail userCertificate memberOf tokenGroups sIDHistory cn",
                ),
            ],
            NoopPath::WrittenElsewhere => [
                s(pks),
                s("sub"),
                s(filter),
                s("modifyTimestamp uSNChanged entryCSN"),
            ],
            NoopPath::ReadInFull => [
                s(pks),
                s("sub"),
                s(filter),
                s(
                    "* nTSecurityDescriptor msPKI-Enrollment-Servers modifyTimestamp uSNChanged entryCSN",
                ),
            ],
        }
    }
}

/// A no-op path's pulse and its floor, each wall, CPU and slapd's CPU per
/// round.
struct NoopFigure {
    path: NoopPath,
    pulse: (Duration, f64, f64),
    floor: (Duration, f64, f64),
}

impl NoopFigure {
    fn ratios(&self) -> (f64, f64) {
        (
            self.pulse.0.as_secs_f64() / self.floor.0.as_secs_f64(),
            self.pulse.1 / self.floor.1,
        )
    }
}

/// One `ldapsearch` process per round as host00000: StartTLS, the same
/// simple bind, and the largest search a pulse of `path` makes. Returns
/// wall and CPU (the child's) per round, and slapd's CPU per round.
fn ldapsearch_floor(fleet: &Fleet, path: NoopPath) -> (Duration, f64, f64) {
    let (host, _) = &fleet.hosts[0];
    let dn = format!("CN={host},CN=Computers,DC=corp,DC=example");
    let secret = fleet.lab.dir.join("secrets").join(format!("{host}.secret"));
    let [base, scope, filter, attrs] = path.largest_search(&dn);
    let (c0, s0) = (children_cpu(), cpu_of(fleet.slapd_pid));
    let start = Instant::now();
    for _ in 0..FLOOR_ROUNDS {
        run_ldap_tool(
            ldap_tool(fleet, "ldapsearch", &dn, &secret)
                .args([
                    "-LLL",
                    "-E",
                    "pr=500/noprompt",
                    "-b",
                    &base,
                    "-s",
                    &scope,
                    &filter,
                ])
                .args(attrs.split(' ')),
        );
    }
    let wall = start.elapsed() / FLOOR_ROUNDS as u32;
    (
        wall,
        (children_cpu() - c0) / FLOOR_ROUNDS as f64,
        (cpu_of(fleet.slapd_pid) - s0) / FLOOR_ROUNDS as f64,
    )
}

/// A write to an entry outside Public Key Services (another account's
/// description), by `ldapmodify` as the lab's administrator.
fn write_elsewhere(fleet: &Fleet, round: usize) {
    let (other, _) = &fleet.hosts[fleet.hosts.len() - 1];
    let ldif = format!(
        "dn: CN={other},CN=Computers,DC=corp,DC=example\nchangetype: modify\nreplace: description\ndescription: round {round}\n"
    );
    let file = fleet.lab.dir.join("elsewhere.ldif");
    std::fs::write(&file, ldif).expect("LDIF written");
    run_ldap_tool(
        ldap_tool(
            fleet,
            "ldapmodify",
            &fleet.lab.admin_dn,
            &fleet.lab.dir.join("admin.secret"),
        )
        .arg("-f")
        .arg(&file),
    );
}

/// One of OpenLDAP's tools against the lab: StartTLS (verified against the
/// lab's CA) and a simple bind as `dn` with the password in `secret`.
fn ldap_tool(fleet: &Fleet, tool: &str, dn: &str, secret: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(tool);
    cmd.env("LDAPTLS_CACERT", &fleet.lab.tls_ca_file)
        .args(["-ZZ", "-x", "-H", &fleet.lab.url, "-D", dn, "-y"])
        .arg(secret);
    cmd
}

/// Runs `cmd` to its end; a failure stops the bench with its message.
fn run_ldap_tool(cmd: &mut std::process::Command) {
    let out = cmd.output().expect("the LDAP tool runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// No-op pulses one at a time as host00000, each found on `path` (the
/// report says whether Public Key Services was reused; a pulse that does
/// otherwise fails the bench): wall, this process's CPU and slapd's CPU per
/// pulse, counted over the pulses alone (not the preparation of each).
async fn noop_sequential(fleet: &Fleet, path: NoopPath) -> (Duration, f64, f64) {
    let (_, policy_path) = &fleet.hosts[0];
    let policy = Policy::load(policy_path).expect("policy");
    let saved = policy.store.join("directory-snapshot.json");
    let (mut wall, mut cpu, mut slapd) = (Duration::ZERO, 0.0, 0.0);
    // One pulse first, so that each measured one follows a pulse of this
    // path (the first after a full read has a file to parse).
    for round in 0..=FLOOR_ROUNDS {
        match path {
            NoopPath::Unchanged => {}
            NoopPath::WrittenElsewhere => write_elsewhere(fleet, round),
            NoopPath::ReadInFull => std::fs::remove_file(&saved).expect("saved snapshot removed"),
        }
        let (c0, s0, start) = (self_cpu(), cpu_of(fleet.slapd_pid), Instant::now());
        let r = pulse(
            &policy,
            PulseOptions::at(time::OffsetDateTime::now_utc() + RENEWAL_AFTER),
        )
        .await
        .expect("a no-op pulse");
        let took = (
            start.elapsed(),
            self_cpu() - c0,
            cpu_of(fleet.slapd_pid) - s0,
        );
        assert!(r.ok && !r.changed_anything(), "{}", r.summary());
        let reused = !matches!(path, NoopPath::ReadInFull);
        assert_eq!(r.directory_reused, reused, "{path:?}: {}", r.summary());
        if round > 0 {
            wall += took.0;
            cpu += took.1;
            slapd += took.2;
        }
    }
    let n = FLOOR_ROUNDS as f64;
    (wall / FLOOR_ROUNDS as u32, cpu / n, slapd / n)
}

/// Context switches of all a process's threads: each wake-up of a sleeping
/// thread ends in one when it sleeps again.
fn switches_of(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .map(|t| {
            let text = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
            text.lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum()
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Anonymous resident memory (heap, stacks), from `/proc/<pid>/smaps_rollup`:
/// the rest of the resident set is the program's own pages, mapped from
/// its file and shared.
fn anon_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Anonymous:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The worker (`autoenroll daemon`) of host00000 once its start pulse is
/// done: its resident memory, and its context switches over `IDLE` with
/// timers an hour away and `policy_check = "1s"` (the polling period where
/// change notification is unavailable).
fn idle_worker(fleet: &Fleet) -> (u64, u64, u64, Duration) {
    const IDLE: Duration = Duration::from_secs(20);
    let (host, path) = &fleet.hosts[0];
    let policy = std::fs::read_to_string(path).expect("policy");
    let daemon_policy = fleet.lab.dir.join(format!("{host}-daemon.toml"));
    std::fs::write(
        &daemon_policy,
        format!(
            "{policy}\n[schedule]\ninterval = \"1h\"\njitter = \"0s\"\ndirectory_check = \"1h\"\npolicy_check = \"1s\"\n"
        ),
    )
    .expect("daemon policy");
    // At the renewal wave's time, where its certificate is current.
    let mut child = std::process::Command::new(autoenroll_later(&fleet.lab.dir))
        .args(["daemon", "--policy"])
        .arg(&daemon_policy)
        .env("AUTOENROLL_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the daemon starts");
    // The start pulse: a no-op for a host that holds its certificate.
    std::thread::sleep(Duration::from_secs(5));
    let pid = child.id();
    let before = switches_of(pid);
    std::thread::sleep(IDLE);
    let woke = switches_of(pid) - before;
    let rss = rss_kib(pid);
    let anon = anon_kib(pid);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
    (rss, anon, woke, IDLE)
}

/// One size's figures, for the summary, the JSON lines and the plot.
struct Run {
    hosts: usize,
    templates: usize,
    /// The filesystem type of the hosts' stores (`ext4`, `tmpfs`).
    stores_on: String,
    first: Wave,
    renewal: Wave,
    noop: Wave,
    raw_signing: f64,
    raw_signing_wall: f64,
    openssl: Option<f64>,
    noop_paths: Vec<NoopFigure>,
    db_bytes: u64,
    problems: usize,
    idle_rss_kib: u64,
    idle_anon_kib: u64,
    idle_switches: u64,
}

impl Run {
    fn json(&self) -> String {
        let wave = |w: &Wave| {
            format!(
                "{{\"pulses\":{},\"wall_s\":{:.3},\"failures\":{},\"installed\":{},\"searches_per_pulse\":{:.2},\"p50_ms\":{:.2},\"p99_ms\":{:.2},\"max_ms\":{:.2},\"ca_cpu_s\":{:.3},\"slapd_cpu_s\":{:.3},\"hosts_cpu_s\":{:.3},\"slapd_bytes_out\":{},\"slapd_bytes_in\":{}}}",
                w.pulses,
                w.wall.as_secs_f64(),
                w.failures,
                w.installed,
                w.searches as f64 / w.pulses.max(1) as f64,
                ms(w.p50),
                ms(w.p99),
                ms(w.max),
                w.ca_cpu,
                w.slapd_cpu,
                w.hosts_cpu,
                w.slapd_out,
                w.slapd_in
            )
        };
        format!(
            "{{\"hosts\":{},\"templates\":{},\"stores_on\":\"{}\",\"first\":{},\"renewal\":{},\"noop\":{},\"raw_signing_per_cpu_s\":{:.1},\"raw_signing_per_wall_s\":{:.1},\"openssl_signing_per_s\":{},\"noop_paths\":{{{}}},\"ca_db_bytes\":{},\"exactly_once_problems\":{},\"idle_worker_rss_kib\":{},\"idle_worker_anon_kib\":{},\"idle_worker_switches_20s\":{}}}",
            self.hosts,
            self.templates,
            self.stores_on,
            wave(&self.first),
            wave(&self.renewal),
            wave(&self.noop),
            self.raw_signing,
            self.raw_signing_wall,
            self.openssl
                .map_or("null".to_string(), |v| format!("{v:.1}")),
            self.noop_paths
                .iter()
                .map(|f| {
                    let t = |(wall, cpu, slapd): (Duration, f64, f64)| {
                        format!(
                            "{{\"wall_ms\":{:.2},\"cpu_ms\":{:.2},\"slapd_cpu_ms\":{:.2}}}",
                            ms(wall),
                            cpu * 1e3,
                            slapd * 1e3
                        )
                    };
                    format!(
                        "\"{}\":{{\"pulse\":{},\"ldapsearch_floor\":{}}}",
                        f.path.key(),
                        t(f.pulse),
                        t(f.floor)
                    )
                })
                .collect::<Vec<_>>()
                .join(","),
            self.db_bytes,
            self.problems,
            self.idle_rss_kib,
            self.idle_anon_kib,
            self.idle_switches
        )
    }
}

fn db_bytes(config: &CaConfig) -> u64 {
    let mut total = 0;
    for suffix in ["", "-wal", "-shm"] {
        let mut p = config.database.clone().into_os_string();
        p.push(suffix);
        total += std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
    }
    total
}

async fn run_one(
    hosts: usize,
    templates: usize,
    concurrency: usize,
    stores_in: Option<&Path>,
) -> Run {
    let tmp = tempfile::tempdir().expect("temp dir");
    let stores_tmp =
        stores_in.map(|dir| tempfile::tempdir_in(dir).expect("a folder for the stores"));
    let stores = match &stores_tmp {
        Some(dir) => dir.path().to_path_buf(),
        None => tmp.path().join("lab").join("stores"),
    };
    let t = Instant::now();
    let mut fleet = setup(tmp.path(), &stores, hosts, templates).await;
    let stores_on = filesystem_of(&stores);
    println!(
        "{hosts} hosts, {templates} extra templates, {concurrency} pulses at a time, stores on {stores_on} (set up in {:.1} s)",
        t.elapsed().as_secs_f64()
    );
    let (raw_signing, raw_signing_wall, openssl) = signing_baselines(&fleet.config);
    let first = wave(&fleet, "first", time::Duration::ZERO, concurrency).await;
    first.print();
    let mut problems = exactly_once(&fleet, 1);
    ca_later(&mut fleet);
    let renewal = wave(&fleet, "renewal", RENEWAL_AFTER, concurrency).await;
    renewal.print();
    problems.extend(exactly_once(&fleet, 2));
    let noop = wave(&fleet, "no-op", RENEWAL_AFTER, concurrency).await;
    noop.print();
    let mut noop_paths = Vec::new();
    for path in NoopPath::ALL {
        let floor = ldapsearch_floor(&fleet, path);
        let pulse = noop_sequential(&fleet, path).await;
        noop_paths.push(NoopFigure { path, pulse, floor });
    }
    let db = db_bytes(&fleet.config);
    // A host runs no CA: stopped, it no longer shares the program's pages
    // with the worker, which can then hand them back as it would on a host.
    stop(fleet.ca_pid);
    fleet.ca_pid = 0;
    let (rss, anon, woke, idle) = idle_worker(&fleet);
    println!(
        "  idle worker: {:.1} MiB resident ({:.1} MiB anonymous, the rest the program's mapped pages), {woke} context switches in {} s idle",
        rss as f64 / 1024.0,
        anon as f64 / 1024.0,
        idle.as_secs()
    );
    for p in problems.iter().take(10) {
        println!("  exactly-once problem: {p}");
    }
    println!(
        "  exactly once: {} (every certificate once in the CA database and once in a store)",
        if problems.is_empty() {
            "yes".to_string()
        } else {
            format!("NO, {} problems", problems.len())
        }
    );
    let issuance_cpu = first.ca_cpu / first.installed.max(1) as f64;
    println!(
        "  CA key RSA 3072: {raw_signing:.0} signatures per CPU second ({raw_signing_wall:.0} per wall second) (aws-lc-rs), openssl speed {}; issuance {:.0} per CA CPU second = {:.0}% of the raw rate",
        openssl.map_or("n/a".to_string(), |v| format!("{v:.0}/s")),
        1.0 / issuance_cpu,
        100.0 / issuance_cpu / raw_signing
    );
    for f in &noop_paths {
        let (wall, cpu) = f.ratios();
        println!(
            "  no-op pulse, {}: {:.2} ms wall, {:.2} ms CPU (+ slapd {:.2} ms); its ldapsearch floor {:.2} ms wall, {:.2} ms CPU (+ slapd {:.2} ms): {wall:.2}x wall, {cpu:.2}x CPU",
            f.path.key(),
            ms(f.pulse.0),
            f.pulse.1 * 1e3,
            f.pulse.2 * 1e3,
            ms(f.floor.0),
            f.floor.1 * 1e3,
            f.floor.2 * 1e3,
        );
    }
    println!("  CA database: {:.1} MiB", db as f64 / 1048576.0);
    Run {
        hosts,
        templates,
        stores_on,
        first,
        renewal,
        noop,
        raw_signing,
        raw_signing_wall,
        openssl,
        noop_paths,
        db_bytes: db,
        problems: problems.len(),
        idle_rss_kib: rss,
        idle_anon_kib: anon,
        idle_switches: woke,
    }
}

/// Two panels against N (log scale): the first wave's time, and the CA's
/// and slapd's CPU per host.
fn svg(runs: &[&Run]) -> String {
    let (w, h, pad) = (360.0, 260.0, 50.0);
    let xs: Vec<f64> = runs.iter().map(|r| (r.hosts as f64).log10()).collect();
    let (x0, x1) = (
        xs.iter().cloned().fold(f64::MAX, f64::min).floor(),
        xs.iter().cloned().fold(f64::MIN, f64::max).ceil().max(1.0),
    );
    let panel = |ox: f64, title: &str, unit: &str, series: &[(&str, &str, Vec<f64>)]| {
        let ymax = series
            .iter()
            .flat_map(|s| s.2.iter().cloned())
            .fold(0.0, f64::max)
            * 1.15;
        let ymax = if ymax > 0.0 { ymax } else { 1.0 };
        let px = |x: f64| ox + pad + (x - x0) / (x1 - x0).max(1e-9) * (w - 1.5 * pad);
        let py = |y: f64| h - pad + -(y / ymax) * (h - 1.8 * pad);
        let mut s = format!(
            "<text x=\"{}\" y=\"20\" font-size=\"13\" text-anchor=\"middle\">{title}</text>\n",
            ox + w / 2.0
        );
        s += &format!(
            "<line x1=\"{a}\" y1=\"{b}\" x2=\"{c}\" y2=\"{b}\" stroke=\"black\"/><line x1=\"{a}\" y1=\"{b}\" x2=\"{a}\" y2=\"{d}\" stroke=\"black\"/>\n",
            a = ox + pad,
            b = h - pad,
            c = ox + w - pad / 2.0,
            d = pad * 0.8
        );
        let mut e = x0;
        while e <= x1 + 1e-9 {
            s += &format!(
                "<text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">{}</text>\n",
                px(e),
                h - pad + 14.0,
                10f64.powf(e).round()
            );
            e += 1.0;
        }
        s += &format!(
            "<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">hosts (log)</text>\n",
            ox + w / 2.0,
            h - 12.0
        );
        for i in 0..=4 {
            let y = ymax * f64::from(i) / 4.0;
            s += &format!(
                "<text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">{y:.1}</text>\n",
                ox + pad - 4.0,
                py(y) + 3.0
            );
        }
        s += &format!(
            "<text x=\"{}\" y=\"{}\" font-size=\"10\">{unit}</text>\n",
            ox + 4.0,
            pad * 0.7
        );
        for (k, (name, color, ys)) in series.iter().enumerate() {
            let pts: Vec<String> = xs
                .iter()
                .zip(ys)
                .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
                .collect();
            s += &format!(
                "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>\n",
                pts.join(" ")
            );
            for p in &pts {
                let (cx, cy) = p.split_once(',').unwrap_or(("0", "0"));
                s += &format!("<circle cx=\"{cx}\" cy=\"{cy}\" r=\"3\" fill=\"{color}\"/>\n");
            }
            s += &format!(
                "<text x=\"{}\" y=\"{}\" font-size=\"10\" fill=\"{color}\">{name}</text>\n",
                ox + pad + 8.0,
                pad + 4.0 + 12.0 * k as f64
            );
        }
        s
    };
    let time: Vec<f64> = runs.iter().map(|r| r.first.wall.as_secs_f64()).collect();
    let per = |f: fn(&Run) -> f64| runs.iter().map(|r| f(r)).collect::<Vec<f64>>();
    let ca = per(|r| r.first.ca_cpu * 1e3 / r.hosts as f64);
    let slapd = per(|r| r.first.slapd_cpu * 1e3 / r.hosts as f64);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{h}\" font-family=\"sans-serif\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
        2.0 * w
    );
    out += &panel(
        0.0,
        "Time to enroll the fleet",
        "seconds",
        &[("first pulses", "#1f77b4", time)],
    );
    out += &panel(
        w,
        "Server CPU per host (first pulse)",
        "ms",
        &[("CA", "#d62728", ca), ("slapd", "#2ca02c", slapd)],
    );
    out + "</svg>\n"
}

fn main() {
    let args = args();
    // One runtime thread per host in flight: a simulated host's store writes
    // (files and fsyncs, synchronous as on a real host) block the thread
    // they run on, and must not hold up the other hosts' network I/O, as
    // they would not on separate machines.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.concurrency.max(2))
        .enable_all()
        .build()
        .expect("runtime");
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("fleet benchmark on {cores} cores");
    let mut runs = Vec::new();
    for &templates in &args.templates {
        for &hosts in &args.hosts {
            let run = rt.block_on(run_one(
                hosts,
                templates,
                args.concurrency,
                args.stores_in.as_deref(),
            ));
            if let Some(path) = &args.json {
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .expect("JSON file");
                writeln!(f, "{}", run.json()).expect("JSON written");
            }
            runs.push(run);
        }
    }
    if let Some(path) = &args.svg {
        let first_templates = args.templates[0];
        let plotted: Vec<&Run> = runs
            .iter()
            .filter(|r| r.templates == first_templates)
            .collect();
        std::fs::write(path, svg(&plotted)).expect("SVG written");
        println!("plot written to {}", path.display());
    }
    let failed: usize = runs
        .iter()
        .map(|r| r.first.failures + r.renewal.failures + r.noop.failures + r.problems)
        .sum();
    assert_eq!(failed, 0, "failures or exactly-once problems (see above)");
}
