//! A private DNS server for the tests: Debian's dnsmasq on 127.0.0.1 and a
//! random port, answering only from the records it is given (no upstream,
//! no hosts file), in the foreground, with its own pid and log files in its
//! own folder; killed when dropped.
//!
//! ```ignore
//! let dns = common::dns::Dnsmasq::start(
//!     &["corp.example"],
//!     &[common::dns::Srv::new("_ldap._tcp.dc._msdcs.corp.example", "dc1.corp.example", 389, 0, 100)],
//! );
//! let dcs = discover("corp.example", None, &[dns.addr], timeout).await?;
//! ```
//!
//! The SRV targets need not be in the server's zones: for a failover test
//! against private slapd instances, publish `localhost` with each
//! instance's port (the connection resolves the target with the system's
//! resolver, which knows `localhost`), e.g. the first DC at priority 0 on a
//! port nobody listens on and the second at priority 10.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// An SRV record (RFC 2782) for dnsmasq's `--srv-host`.
#[derive(Clone, Debug)]
pub struct Srv {
    /// The owner name, e.g. `_ldap._tcp.dc._msdcs.corp.example`.
    pub name: String,
    /// The target host; `None` publishes the "no service" record (target `.`).
    pub target: Option<String>,
    pub port: u16,
    pub priority: u16,
    pub weight: u16,
}

impl Srv {
    pub fn new(name: &str, target: &str, port: u16, priority: u16, weight: u16) -> Self {
        Self {
            name: name.into(),
            target: Some(target.into()),
            port,
            priority,
            weight,
        }
    }

    /// The record that says the service is decidedly not available: target
    /// `.` (dnsmasq publishes it for a `--srv-host` without a target).
    pub fn no_service(name: &str) -> Self {
        Self {
            name: name.into(),
            target: None,
            port: 0,
            priority: 0,
            weight: 0,
        }
    }

    fn arg(&self) -> String {
        match &self.target {
            // dnsmasq's order is target, port, priority, weight.
            Some(target) => format!(
                "--srv-host={},{},{},{},{}",
                self.name, target, self.port, self.priority, self.weight
            ),
            None => format!("--srv-host={}", self.name),
        }
    }
}

/// Other records the server can hold besides SRV records.
#[derive(Clone, Debug)]
pub enum Extra {
    /// An A/AAAA record (`--host-record`).
    Host(String, IpAddr),
    /// A TXT record (`--txt-record`): the name then exists without SRV
    /// records (NOERROR, no data, for an SRV question).
    Txt(String, String),
}

impl Extra {
    fn arg(&self) -> String {
        match self {
            Extra::Host(name, ip) => format!("--host-record={name},{ip}"),
            Extra::Txt(name, text) => format!("--txt-record={name},{text}"),
        }
    }
}

/// A running dnsmasq.
pub struct Dnsmasq {
    child: Option<Child>,
    /// Where it listens (UDP and TCP).
    pub addr: SocketAddr,
    /// Its folder: pid file, log file.
    pub dir: tempfile::TempDir,
    log: PathBuf,
}

/// The dnsmasq binary: on PATH, else Debian's /usr/sbin/dnsmasq.
fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("dnsmasq");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    PathBuf::from("/usr/sbin/dnsmasq")
}

/// A port free for both UDP and TCP on 127.0.0.1 (at the time of asking).
fn free_dns_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("a UDP port");
        let port = udp.local_addr().expect("UDP address").port();
        if std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

impl Dnsmasq {
    /// Serves `records` and answers every other name under `zones` with
    /// NXDOMAIN (`--local`); names outside the zones are refused.
    pub fn start(zones: &[&str], records: &[Srv]) -> Self {
        Self::start_with(zones, records, &[])
    }

    /// [`Dnsmasq::start`] with other records as well.
    pub fn start_with(zones: &[&str], records: &[Srv], extra: &[Extra]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("dnsmasq.log");
        let mut last_error = String::new();
        // A port free when asked may be taken before dnsmasq binds it: retry.
        for _ in 0..5 {
            let port = free_dns_port();
            let mut cmd = Command::new(binary());
            cmd.arg("-k")
                .arg("--conf-file=/dev/null")
                .arg("--no-resolv")
                .arg("--no-hosts")
                .arg("--bind-interfaces")
                .arg("--listen-address=127.0.0.1")
                .arg(format!("--port={port}"))
                .arg(format!(
                    "--pid-file={}",
                    dir.path().join("dnsmasq.pid").display()
                ))
                .arg(format!("--log-facility={}", log.display()))
                .arg("--log-queries")
                .arg("--cache-size=0");
            if running_as_root() {
                // Keep the privileges it starts with, so it can write its
                // files in the test's folder.
                cmd.arg("--user=root").arg("--group=root");
            }
            for zone in zones {
                cmd.arg(format!("--local=/{zone}/"));
            }
            for record in records {
                cmd.arg(record.arg());
            }
            for record in extra {
                cmd.arg(record.arg());
            }
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            let mut child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (is dnsmasq-base installed?)"));
            let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
            let started = Instant::now();
            loop {
                if let Some(status) = child.try_wait().expect("dnsmasq status") {
                    let mut stderr = String::new();
                    if let Some(mut pipe) = child.stderr.take() {
                        use std::io::Read;
                        let _ = pipe.read_to_string(&mut stderr);
                    }
                    last_error = format!("dnsmasq exited with {status}: {stderr}");
                    break;
                }
                if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    return Self {
                        child: Some(child),
                        addr,
                        dir,
                        log,
                    };
                }
                if started.elapsed() > Duration::from_secs(10) {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("dnsmasq did not listen on {addr} within 10 s");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("dnsmasq does not start: {last_error}");
    }

    fn pid(&self) -> nix::unistd::Pid {
        let child = self.child.as_ref().expect("dnsmasq is running");
        nix::unistd::Pid::from_raw(child.id() as i32)
    }

    /// Stops the process (SIGSTOP): its sockets stay open but nothing is
    /// answered, as with a server that hangs or a network that drops.
    pub fn pause(&self) {
        nix::sys::signal::kill(self.pid(), nix::sys::signal::Signal::SIGSTOP).expect("SIGSTOP");
    }

    /// Lets a paused server run again (SIGCONT).
    pub fn resume(&self) {
        nix::sys::signal::kill(self.pid(), nix::sys::signal::Signal::SIGCONT).expect("SIGCONT");
    }

    /// Kills the server: its port is then closed.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The names asked for with type `qtype` ("SRV", "A"...), in order, in
    /// lower case (DNS names compare without case), from the log
    /// (`--log-queries`).
    pub fn queries(&self, qtype: &str) -> Vec<String> {
        let marker = format!("query[{qtype}] ");
        self.log()
            .lines()
            .filter_map(|line| {
                let rest = &line[line.find(&marker)? + marker.len()..];
                rest.split_whitespace().next().map(str::to_ascii_lowercase)
            })
            .collect()
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        self.stop();
    }
}
