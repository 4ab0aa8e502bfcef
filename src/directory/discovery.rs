//! Finding the domain's controllers from DNS SRV records, as the AD DC
//! locator does.
//!
//! # What is asked, and of whom
//!
//! AD publishes an LDAP service record for every domain controller
//! ([MS-ADTS] 6.3.2.3, the records listed in [MS-ADTS] 6.3.6):
//!
//! - `_ldap._tcp.<site>._sites.dc._msdcs.<domain>`: the DCs that cover the
//!   site `<site>`;
//! - `_ldap._tcp.dc._msdcs.<domain>`: every DC of the domain.
//!
//! [`discover`] asks for the site record when a site is given and falls back
//! to the domain-wide record when the site has none (the name does not exist,
//! NXDOMAIN, or exists without SRV records); with no site it asks for the
//! domain-wide record only. Names are queried fully qualified, so the
//! resolver's search list plays no part.
//!
//! The questions go to the given name servers, or, when none is given, to
//! the system resolver's servers from `/etc/resolv.conf` (with its options,
//! except the timeout, which is the caller's), over UDP (TCP for a
//! truncated answer). All servers are asked at once (up to 8) and the first
//! answer counts, so a hung server does not hold up the next one; the
//! `timeout` bounds the whole discovery, the site question and the
//! domain-wide one together. Nothing is cached between discoveries and the
//! hosts file is not read. DNS over TLS, HTTPS or QUIC is not used (the
//! crate is built without them, so it brings no TLS stack of its own).
//!
//! # Order
//!
//! [`order`] puts the answer in the order to try, as RFC 2782 says ("Usage
//! rules"): lowest priority first; within a priority, a weighted random
//! order. The randomness is a [`Pick`] given by the caller, so the order is a
//! pure function of the records and the draws ([`discover`] uses
//! [`SystemPick`]). A single record whose target is `.` says that the service
//! is decidedly not available in the domain: that is an error
//! ([`DiscoveryError::NoService`]), never an empty list.
//!
//! # Errors
//!
//! Each error names the record asked for (and the site record that had
//! none, after a fallback), the servers asked and the cause: the name does
//! not exist (NXDOMAIN), it exists without SRV records, no answer within the
//! timeout, the servers refused or failed, or the service is not available.
//!
//! # Use
//!
//! ```no_run
//! # async fn f() -> Result<(), autoenroll::directory::discovery::DiscoveryError> {
//! use autoenroll::directory::discovery::discover;
//! let dcs = discover("corp.example", Some("Default-First-Site-Name"), &[],
//!                    std::time::Duration::from_secs(5)).await?;
//! for dc in &dcs {
//!     // try ldap://{dc.host}:{dc.port}, next one on failure
//! }
//! # Ok(()) }
//! ```
//!
//! The host names come without a trailing dot and in lower case: they are the
//! names to connect to and to build SPNs from (`ldap/<host>`).

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::{Resolver, TokioResolver};
use thiserror::Error;

/// A domain controller to try: an LDAP server's host name and port.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DomainController {
    /// The DNS name of the DC, without a trailing dot, in lower case.
    pub host: String,
    pub port: u16,
}

impl fmt::Display for DomainController {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// One SRV record as it came from DNS (RFC 2782).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrvRecord {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    /// The target host name as in the record (a trailing dot is allowed;
    /// `.` alone means "no service").
    pub target: String,
}

impl SrvRecord {
    pub fn new(priority: u16, weight: u16, port: u16, target: &str) -> Self {
        Self {
            priority,
            weight,
            port,
            target: target.to_string(),
        }
    }

    /// RFC 2782: 'A Target of "." means that the service is decidedly not
    /// available at this domain.'
    fn is_no_service(&self) -> bool {
        self.target == "." || self.target.is_empty()
    }
}

/// A source of uniform random numbers for the weighted order.
pub trait Pick {
    /// A number drawn uniformly from `0..=max`.
    fn pick(&mut self, max: u64) -> u64;
}

/// The system's random numbers (aws-lc-rs's `SystemRandom`).
#[derive(Default)]
pub struct SystemPick {
    rng: aws_lc_rs::rand::SystemRandom,
}

impl Pick for SystemPick {
    fn pick(&mut self, max: u64) -> u64 {
        use aws_lc_rs::rand::SecureRandom;
        if max == 0 {
            return 0;
        }
        // Rejection sampling: values at or above the largest multiple of
        // `max + 1` are drawn again, so every result is equally likely.
        let span = max.checked_add(1);
        loop {
            let mut bytes = [0u8; 8];
            if self.rng.fill(&mut bytes).is_err() {
                // The system's generator failed: the priorities are still
                // honoured, only the spread within a priority is lost.
                return 0;
            }
            let value = u64::from_le_bytes(bytes);
            match span {
                None => return value, // max == u64::MAX: every value fits
                Some(span) => {
                    let limit = u64::MAX - (u64::MAX % span);
                    if value < limit {
                        return value % span;
                    }
                }
            }
        }
    }
}

/// Why the records give no controller to try.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum OrderError {
    /// The answer was the single record with target `.` (or held only such
    /// records): the service is not available (RFC 2782).
    #[error("the service is decidedly not available (SRV target \".\", RFC 2782)")]
    NoService,
}

/// Orders SRV records for contact, as RFC 2782 ("Usage rules") says.
///
/// - Records whose target is `.` are dropped; if nothing else is left (in
///   particular the single `.` record RFC 2782 describes), the service is not
///   available: [`OrderError::NoService`]. An empty input gives an empty list.
/// - Lowest priority first.
/// - Within a priority, repeatedly: place the records of weight 0 first,
///   keep a running sum of the weights, draw a number in `0..=sum` and take
///   the first record whose running sum is at least that number. When every
///   remaining weight is 0 (the sum is 0), RFC 2782 leaves the order free
///   ("in any order"): the next one is then drawn uniformly, so that
///   unweighted DCs share the load.
/// - A host and port that appear twice are kept once, at their first place.
///
/// `random` supplies every draw, so the result is a pure function of
/// `records` and the draws.
pub fn order(
    records: &[SrvRecord],
    random: &mut impl Pick,
) -> Result<Vec<DomainController>, OrderError> {
    let usable: Vec<&SrvRecord> = records.iter().filter(|r| !r.is_no_service()).collect();
    if usable.is_empty() && !records.is_empty() {
        return Err(OrderError::NoService);
    }
    let mut priorities: Vec<u16> = usable.iter().map(|r| r.priority).collect();
    priorities.sort_unstable();
    priorities.dedup();

    let mut out: Vec<DomainController> = Vec::with_capacity(usable.len());
    for priority in priorities {
        // Weight 0 first, then the others, each group in the order received.
        let mut unordered: Vec<&SrvRecord> = usable
            .iter()
            .copied()
            .filter(|r| r.priority == priority && r.weight == 0)
            .chain(
                usable
                    .iter()
                    .copied()
                    .filter(|r| r.priority == priority && r.weight != 0),
            )
            .collect();
        while !unordered.is_empty() {
            let sum: u64 = unordered.iter().map(|r| u64::from(r.weight)).sum();
            let index = if sum == 0 {
                let drawn = random.pick(unordered.len() as u64 - 1);
                usize::try_from(drawn).unwrap_or(0).min(unordered.len() - 1)
            } else {
                let drawn = random.pick(sum).min(sum);
                let mut running = 0u64;
                unordered
                    .iter()
                    .position(|r| {
                        running += u64::from(r.weight);
                        running >= drawn
                    })
                    .unwrap_or(unordered.len() - 1)
            };
            let chosen = unordered.remove(index);
            let dc = DomainController {
                host: host_name(&chosen.target),
                port: chosen.port,
            };
            if !out.contains(&dc) {
                out.push(dc);
            }
        }
    }
    Ok(out)
}

/// The host name to connect to: no trailing dot, lower case.
fn host_name(target: &str) -> String {
    target
        .strip_suffix('.')
        .unwrap_or(target)
        .to_ascii_lowercase()
}

/// The DC locator's LDAP record for `domain`, site-specific when `site` is
/// given ([MS-ADTS] 6.3.6: `_ldap._tcp.<SiteName>._sites.dc._msdcs.<DnsDomainName>`
/// and `_ldap._tcp.dc._msdcs.<DnsDomainName>`). The name is returned
/// without a trailing dot.
pub fn locator_record(domain: &str, site: Option<&str>) -> Result<String, DiscoveryError> {
    let domain = check_domain(domain)?;
    Ok(match site {
        Some(site) => {
            let site = check_site(site)?;
            format!("_ldap._tcp.{site}._sites.dc._msdcs.{domain}")
        }
        None => format!("_ldap._tcp.dc._msdcs.{domain}"),
    })
}

fn check_label(label: &str) -> Result<(), String> {
    if label.is_empty() {
        return Err("it has an empty label".into());
    }
    if label.len() > 63 {
        return Err(format!(
            "its label {label:?} is longer than 63 octets (RFC 1035 2.3.4)"
        ));
    }
    if let Some(c) = label
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(if c.is_ascii() {
            format!(
                "its label {label:?} holds {c:?}; only letters, digits, '-' and '_' are allowed"
            )
        } else {
            format!("its label {label:?} holds the non-ASCII {c:?}; give the IDNA form (xn--...)")
        });
    }
    Ok(())
}

fn check_domain(domain: &str) -> Result<&str, DiscoveryError> {
    let invalid = |reason: String| DiscoveryError::InvalidName {
        what: "domain",
        value: domain.to_string(),
        reason,
    };
    let name = domain.strip_suffix('.').unwrap_or(domain);
    if name.is_empty() {
        return Err(invalid("it is empty".into()));
    }
    // 253 characters in text form make the 255 octets of RFC 1035 2.3.4;
    // the locator prefix must still fit.
    if name.len() + "_ldap._tcp.dc._msdcs.".len() > 253 {
        return Err(invalid(
            "it is too long for a DNS name once the locator labels are added (RFC 1035 2.3.4)"
                .into(),
        ));
    }
    for label in name.split('.') {
        check_label(label).map_err(invalid)?;
    }
    Ok(name)
}

fn check_site(site: &str) -> Result<&str, DiscoveryError> {
    let invalid = |reason: String| DiscoveryError::InvalidName {
        what: "site",
        value: site.to_string(),
        reason,
    };
    if site.contains('.') {
        return Err(invalid(
            "a site name is a single DNS label, it cannot hold '.'".into(),
        ));
    }
    check_label(site).map_err(invalid)?;
    Ok(site)
}

/// What was asked, of whom: the context of every lookup error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Asked {
    /// The SRV record asked for last (no trailing dot).
    pub record: String,
    /// The site record asked for first, when it had no records and the
    /// domain-wide `record` was asked next.
    pub site_record: Option<String>,
    /// The servers asked, as text ("127.0.0.1:53, ..." or the system
    /// resolver's).
    pub servers: String,
}

impl fmt::Display for Asked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SRV {}", self.record)?;
        if let Some(site) = &self.site_record {
            write!(f, " (after the site record {site} had none)")?;
        }
        write!(f, " asked of {}", self.servers)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DiscoveryError {
    #[error("DC discovery: invalid {what} name {value:?}: {reason}")]
    InvalidName {
        what: &'static str,
        value: String,
        reason: String,
    },
    #[error(
        "DC discovery: cannot read the system resolver's configuration (/etc/resolv.conf): {cause}"
    )]
    SystemResolver { cause: String },
    #[error("DC discovery: cannot set up a resolver for {servers}: {cause}")]
    Resolver { servers: String, cause: String },
    #[error("DC discovery: {asked}: the name does not exist (NXDOMAIN)")]
    NxDomain { asked: Asked },
    #[error("DC discovery: {asked}: the name exists but has no SRV records")]
    NoRecords { asked: Asked },
    #[error(
        "DC discovery: {asked}: the service is decidedly not available in the domain (a single SRV record with target \".\", RFC 2782)"
    )]
    NoService { asked: Asked },
    #[error("DC discovery: {asked}: no answer within {timeout:?}")]
    Timeout { asked: Asked, timeout: Duration },
    #[error("DC discovery: {asked}: {cause}")]
    Failed { asked: Asked, cause: String },
}

impl DiscoveryError {
    /// What was asked, when a lookup was made.
    pub fn asked(&self) -> Option<&Asked> {
        match self {
            Self::InvalidName { .. } | Self::SystemResolver { .. } | Self::Resolver { .. } => None,
            Self::NxDomain { asked }
            | Self::NoRecords { asked }
            | Self::NoService { asked }
            | Self::Timeout { asked, .. }
            | Self::Failed { asked, .. } => Some(asked),
        }
    }
}

/// The result of a discovery, with where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Discovered {
    /// The SRV record that answered (no trailing dot).
    pub record: String,
    /// The site record asked for first that had none, after a fallback.
    pub site_record_without_dcs: Option<String>,
    /// The DCs, in the order to try.
    pub controllers: Vec<DomainController>,
}

/// The DCs of `domain` (of `site` in it when given, else of the whole
/// domain), in the order to try. `nameservers` empty means the system
/// resolver (`/etc/resolv.conf`). `timeout` bounds the whole discovery.
pub async fn discover(
    domain: &str,
    site: Option<&str>,
    nameservers: &[SocketAddr],
    timeout: Duration,
) -> Result<Vec<DomainController>, DiscoveryError> {
    discover_with(
        domain,
        site,
        nameservers,
        timeout,
        &mut SystemPick::default(),
    )
    .await
    .map(|d| d.controllers)
}

/// [`discover`] with the draws of the weighted order from `random`, and the
/// record that answered.
pub async fn discover_with(
    domain: &str,
    site: Option<&str>,
    nameservers: &[SocketAddr],
    timeout: Duration,
    random: &mut impl Pick,
) -> Result<Discovered, DiscoveryError> {
    let domain_record = locator_record(domain, None)?;
    let site_record = site.map(|s| locator_record(domain, Some(s))).transpose()?;
    let (resolver, servers) = resolver(nameservers, timeout)?;
    let deadline = tokio::time::Instant::now() + timeout;

    let mut fell_back_from = None;
    if let Some(site_record) = site_record {
        let asked = Asked {
            record: site_record.clone(),
            site_record: None,
            servers: servers.clone(),
        };
        match lookup(&resolver, &asked, deadline, timeout).await {
            Ok(records) => {
                return Ok(Discovered {
                    controllers: order_or_error(&records, random, asked)?,
                    record: site_record,
                    site_record_without_dcs: None,
                });
            }
            // The site has no DCs of its own: ask for the domain's.
            Err(DiscoveryError::NxDomain { .. } | DiscoveryError::NoRecords { .. }) => {
                tracing::debug!(
                    record = %site_record,
                    "no SRV records for the site; asking for the domain-wide record"
                );
                fell_back_from = Some(site_record);
            }
            Err(e) => return Err(e),
        }
    }
    let asked = Asked {
        record: domain_record.clone(),
        site_record: fell_back_from.clone(),
        servers,
    };
    let records = lookup(&resolver, &asked, deadline, timeout).await?;
    Ok(Discovered {
        controllers: order_or_error(&records, random, asked)?,
        record: domain_record,
        site_record_without_dcs: fell_back_from,
    })
}

/// [`order`], its failure told with what was asked.
fn order_or_error(
    records: &[SrvRecord],
    random: &mut impl Pick,
    asked: Asked,
) -> Result<Vec<DomainController>, DiscoveryError> {
    match order(records, random) {
        Err(OrderError::NoService) => Err(DiscoveryError::NoService { asked }),
        Ok(controllers) if controllers.is_empty() => Err(DiscoveryError::NoRecords { asked }),
        Ok(controllers) => Ok(controllers),
    }
}

/// A resolver for the given servers (or the system's), and their names for
/// errors.
fn resolver(
    nameservers: &[SocketAddr],
    timeout: Duration,
) -> Result<(TokioResolver, String), DiscoveryError> {
    let (config, mut options) = if nameservers.is_empty() {
        hickory_resolver::system_conf::read_system_conf().map_err(|e| {
            DiscoveryError::SystemResolver {
                cause: e.to_string(),
            }
        })?
    } else {
        let mut config = ResolverConfig::from_name_servers(Vec::new());
        for addr in nameservers {
            let mut udp = ConnectionConfig::udp();
            udp.port = addr.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = addr.port();
            config.add_name_server(NameServerConfig::new(addr.ip(), true, vec![udp, tcp]));
        }
        (config, ResolverOpts::default())
    };
    let mut listed: Vec<String> = Vec::new();
    for ns in config.name_servers() {
        for conn in &ns.connections {
            let text = SocketAddr::new(ns.ip, conn.port).to_string();
            if !listed.contains(&text) {
                listed.push(text);
            }
        }
    }
    let servers = if !nameservers.is_empty() {
        listed.join(", ")
    } else if listed.is_empty() {
        "the system resolver (/etc/resolv.conf lists no server)".to_string()
    } else {
        format!(
            "the system resolver (/etc/resolv.conf: {})",
            listed.join(", ")
        )
    };
    options.timeout = timeout;
    // Every server is asked at once (up to 8), so that a hung first server
    // does not use up the whole timeout before the next one is asked.
    options.num_concurrent_reqs = listed.len().clamp(2, 8);
    // One discovery is one question (or two); nothing is kept for the next.
    options.cache_size = 0;
    options.use_hosts_file = ResolveHosts::Never;
    let resolver = Resolver::builder_with_config(config, TokioRuntimeProvider::default())
        .with_options(options)
        .build()
        .map_err(|e| DiscoveryError::Resolver {
            servers: servers.clone(),
            cause: e.to_string(),
        })?;
    Ok((resolver, servers))
}

/// Asks for the SRV records of `asked.record`; the error says why none came.
async fn lookup(
    resolver: &TokioResolver,
    asked: &Asked,
    deadline: tokio::time::Instant,
    timeout: Duration,
) -> Result<Vec<SrvRecord>, DiscoveryError> {
    let fqdn = format!("{}.", asked.record);
    let answer = match tokio::time::timeout_at(deadline, resolver.srv_lookup(fqdn.as_str())).await {
        Err(_) => {
            return Err(DiscoveryError::Timeout {
                asked: asked.clone(),
                timeout,
            });
        }
        Ok(Err(e)) => return Err(classify(e, asked.clone(), timeout)),
        Ok(Ok(answer)) => answer,
    };
    let records: Vec<SrvRecord> = answer
        .answers()
        .iter()
        .filter_map(|record| match &record.data {
            RData::SRV(srv) => Some(SrvRecord {
                priority: srv.priority,
                weight: srv.weight,
                port: srv.port,
                target: srv.target.to_ascii(),
            }),
            _ => None,
        })
        .collect();
    if records.is_empty() {
        return Err(DiscoveryError::NoRecords {
            asked: asked.clone(),
        });
    }
    Ok(records)
}

fn classify(e: NetError, asked: Asked, timeout: Duration) -> DiscoveryError {
    if e.is_nx_domain() {
        return DiscoveryError::NxDomain { asked };
    }
    match &e {
        NetError::Dns(DnsError::NoRecordsFound(_)) => DiscoveryError::NoRecords { asked },
        NetError::Timeout => DiscoveryError::Timeout { asked, timeout },
        NetError::Dns(DnsError::ResponseCode(code)) => DiscoveryError::Failed {
            asked,
            cause: response_code_text(*code),
        },
        NetError::Io(io) => DiscoveryError::Failed {
            asked,
            cause: format!("cannot reach the server: {io}"),
        },
        NetError::NoConnections => DiscoveryError::Failed {
            asked,
            cause: "no server could be reached".into(),
        },
        other => DiscoveryError::Failed {
            asked,
            cause: other.to_string(),
        },
    }
}

fn response_code_text(code: ResponseCode) -> String {
    match code {
        ResponseCode::ServFail => "the server failed to answer (SERVFAIL)".into(),
        ResponseCode::Refused => "the server refused the question (REFUSED)".into(),
        other => format!("the server answered {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Draws from a fixed list, and records the bounds asked for.
    struct Script {
        draws: Vec<u64>,
        bounds: Vec<u64>,
    }

    impl Script {
        fn new(draws: &[u64]) -> Self {
            Self {
                draws: draws.iter().rev().copied().collect(),
                bounds: Vec::new(),
            }
        }
    }

    impl Pick for Script {
        fn pick(&mut self, max: u64) -> u64 {
            self.bounds.push(max);
            self.draws.pop().expect("a draw was scripted")
        }
    }

    fn hosts(dcs: &[DomainController]) -> Vec<&str> {
        dcs.iter().map(|d| d.host.as_str()).collect()
    }

    #[test]
    fn order_by_priority_then_weight_table() {
        // (records, draws, expected order, bounds the draws were taken in)
        type Case = (
            Vec<SrvRecord>,
            Vec<u64>,
            Vec<&'static str>,
            Vec<u64>,
            &'static str,
        );
        let r = SrvRecord::new;
        let cases: Vec<Case> = vec![
            (vec![], vec![], vec![], vec![], "no records, no DCs"),
            (
                vec![r(0, 100, 389, "dc1.corp.example.")],
                vec![100],
                vec!["dc1.corp.example"],
                vec![100],
                "one record; the trailing dot is dropped",
            ),
            (
                vec![
                    r(10, 0, 389, "late.corp.example."),
                    r(0, 0, 389, "early.corp.example."),
                ],
                vec![0, 0],
                vec!["early.corp.example", "late.corp.example"],
                vec![0, 0],
                "lower priority first, whatever the order received",
            ),
            (
                vec![
                    r(0, 100, 389, "a."),
                    r(0, 300, 389, "b."),
                    r(0, 600, 389, "c."),
                ],
                // sum 1000: 0..=100 -> a; then sum 900: 301 -> c (300 < 301 <= 900).
                vec![50, 301, 0],
                vec!["a", "c", "b"],
                vec![1000, 900, 300],
                "running sums select the first record at or above the draw",
            ),
            (
                vec![
                    r(0, 100, 389, "a."),
                    r(0, 300, 389, "b."),
                    r(0, 600, 389, "c."),
                ],
                vec![1000, 400, 100],
                vec!["c", "b", "a"],
                vec![1000, 400, 100],
                "the top of the range picks the last record",
            ),
            (
                vec![
                    r(0, 100, 389, "a."),
                    r(0, 300, 389, "b."),
                    r(0, 600, 389, "c."),
                ],
                vec![101, 1, 600],
                vec!["b", "a", "c"],
                vec![1000, 700, 600],
                "just above a running sum picks the next record",
            ),
            (
                vec![r(0, 50, 389, "heavy."), r(0, 0, 389, "zero.")],
                // weight 0 goes first: only a draw of 0 selects it.
                vec![0, 0],
                vec!["zero", "heavy"],
                vec![50, 50],
                "a draw of 0 selects the weight-0 record placed first",
            ),
            (
                vec![r(0, 50, 389, "heavy."), r(0, 0, 389, "zero.")],
                vec![1, 0],
                vec!["heavy", "zero"],
                vec![50, 0],
                "any other draw passes over the weight-0 record",
            ),
            (
                vec![r(0, 0, 389, "x."), r(0, 0, 389, "y."), r(0, 0, 389, "z.")],
                // all weights 0: uniform pick among the rest.
                vec![2, 0, 0],
                vec!["z", "x", "y"],
                vec![2, 1, 0],
                "all weights 0: drawn uniformly by index",
            ),
            (
                vec![
                    r(1, 10, 389, "p1a."),
                    r(0, 10, 389, "p0a."),
                    r(1, 10, 389, "p1b."),
                    r(0, 10, 389, "p0b."),
                ],
                vec![20, 10, 5, 10],
                vec!["p0b", "p0a", "p1a", "p1b"],
                vec![20, 10, 20, 10],
                "each priority ordered on its own",
            ),
            (
                vec![
                    r(0, 10, 389, "DC1.Corp.Example."),
                    r(0, 10, 389, "dc1.corp.example."),
                    r(0, 10, 636, "dc1.corp.example."),
                ],
                vec![0, 0, 0],
                vec!["dc1.corp.example", "dc1.corp.example"],
                vec![30, 20, 10],
                "names are lower-cased; a repeated host and port is kept once",
            ),
            (
                vec![r(0, 0, 389, "."), r(0, 10, 389, "dc1.")],
                vec![10],
                vec!["dc1"],
                vec![10],
                "a '.' record among others is dropped",
            ),
            (
                vec![r(0, u16::MAX, 389, "a."), r(0, u16::MAX, 389, "b.")],
                vec![131_070, 0],
                vec!["b", "a"],
                vec![131_070, 65_535],
                "weights sum past u16 without overflow",
            ),
        ];
        for (records, draws, expected, bounds, why) in cases {
            let mut script = Script::new(&draws);
            let got = order(&records, &mut script).unwrap_or_else(|e| panic!("{why}: {e}"));
            assert_eq!(hosts(&got), expected, "{why}");
            assert_eq!(script.bounds, bounds, "{why}: bounds of the draws");
            assert!(script.draws.is_empty(), "{why}: every scripted draw used");
        }
    }

    #[test]
    fn ports_follow_their_records() {
        let records = [
            SrvRecord::new(0, 0, 3268, "gc.corp.example."),
            SrvRecord::new(1, 0, 389, "dc.corp.example."),
        ];
        let got = order(&records, &mut Script::new(&[0, 0])).unwrap();
        assert_eq!(
            got,
            vec![
                DomainController {
                    host: "gc.corp.example".into(),
                    port: 3268
                },
                DomainController {
                    host: "dc.corp.example".into(),
                    port: 389
                },
            ]
        );
    }

    #[test]
    fn a_single_dot_target_means_no_service() {
        for records in [
            vec![SrvRecord::new(0, 0, 0, ".")],
            vec![SrvRecord::new(0, 0, 389, "")],
            vec![SrvRecord::new(0, 0, 1, "."), SrvRecord::new(5, 5, 1, ".")],
        ] {
            assert_eq!(
                order(&records, &mut Script::new(&[])),
                Err(OrderError::NoService),
                "{records:?}"
            );
        }
    }

    #[test]
    fn out_of_range_draws_do_not_panic() {
        // A Pick that breaks its contract still yields every record once.
        struct Wild;
        impl Pick for Wild {
            fn pick(&mut self, _max: u64) -> u64 {
                u64::MAX
            }
        }
        let records = [
            SrvRecord::new(0, 0, 389, "a."),
            SrvRecord::new(0, 0, 389, "b."),
            SrvRecord::new(0, 7, 389, "c."),
        ];
        let got = order(&records, &mut Wild).unwrap();
        let mut names = hosts(&got);
        names.sort_unstable();
        assert_eq!(names, vec!["a", "b", "c"]);
    }

    #[test]
    fn system_pick_stays_in_range_and_covers_it() {
        let mut pick = SystemPick::default();
        assert_eq!(pick.pick(0), 0);
        let mut seen = [0u32; 4];
        for _ in 0..4000 {
            let v = pick.pick(3);
            assert!(v <= 3, "{v}");
            seen[v as usize] += 1;
        }
        // Each of 4 outcomes expected 1000 times; 700 is > 10 sigma away.
        assert!(seen.iter().all(|&n| n > 700), "{seen:?}");
        let _ = pick.pick(u64::MAX);
    }

    #[test]
    fn weighted_order_matches_rfc_2782_frequencies() {
        // Weights 100 and 300: RFC 2782's draw over 0..=400 selects the first
        // (weight 100) for 0..=100, i.e. 101 of 401 values.
        let records = [
            SrvRecord::new(0, 100, 389, "light."),
            SrvRecord::new(0, 300, 389, "heavy."),
        ];
        let mut pick = SystemPick::default();
        let runs = 20_000;
        let light_first = (0..runs)
            .filter(|_| order(&records, &mut pick).unwrap()[0].host == "light")
            .count();
        let expected = runs as f64 * 101.0 / 401.0;
        let sigma = (runs as f64 * (101.0 / 401.0) * (300.0 / 401.0)).sqrt();
        assert!(
            (light_first as f64 - expected).abs() < 6.0 * sigma,
            "light first {light_first} of {runs}, expected about {expected:.0}"
        );
    }

    proptest::proptest! {
        /// Whatever the records and the draws (in range or not), every usable
        /// record comes out exactly once, by priority; only '.' records give
        /// NoService, and only when nothing else is left.
        #[test]
        fn order_is_a_priority_sorted_permutation(
            records in proptest::collection::vec(
                (
                    0u16..4,
                    proptest::prop_oneof![
                        proptest::strategy::Just(0u16),
                        1u16..5,
                        proptest::strategy::Just(u16::MAX),
                    ],
                    proptest::bool::weighted(0.15),
                ),
                0..12,
            ),
            draws in proptest::collection::vec(proptest::num::u64::ANY, 1..40),
            in_range in proptest::bool::ANY,
        ) {
            use proptest::prelude::*;
            struct Cycle { draws: Vec<u64>, next: usize, in_range: bool }
            impl Pick for Cycle {
                fn pick(&mut self, max: u64) -> u64 {
                    let d = self.draws[self.next % self.draws.len()];
                    self.next += 1;
                    if self.in_range {
                        d % max.saturating_add(1).max(1)
                    } else {
                        d
                    }
                }
            }
            let records: Vec<SrvRecord> = records
                .iter()
                .enumerate()
                .map(|(i, (priority, weight, dot))| {
                    let target = if *dot { ".".to_string() } else { format!("h{i}.") };
                    SrvRecord::new(*priority, *weight, 389, &target)
                })
                .collect();
            let usable: Vec<&SrvRecord> = records.iter().filter(|r| r.target != ".").collect();
            let got = order(&records, &mut Cycle { draws, next: 0, in_range });
            if usable.is_empty() && !records.is_empty() {
                prop_assert_eq!(got, Err(OrderError::NoService));
            } else {
                let got = got.unwrap();
                let mut names: Vec<String> = got.iter().map(|d| d.host.clone()).collect();
                let priorities: Vec<u16> = got
                    .iter()
                    .map(|d| {
                        let from = usable.iter().find(|r| host_name(&r.target) == d.host);
                        from.unwrap().priority
                    })
                    .collect();
                prop_assert!(priorities.windows(2).all(|w| w[0] <= w[1]), "{:?}", priorities);
                names.sort();
                let mut expected: Vec<String> =
                    usable.iter().map(|r| host_name(&r.target)).collect();
                expected.sort();
                prop_assert_eq!(names, expected);
            }
        }
    }

    #[test]
    fn locator_record_names() {
        assert_eq!(
            locator_record("corp.example", None).unwrap(),
            "_ldap._tcp.dc._msdcs.corp.example"
        );
        assert_eq!(
            locator_record("corp.example.", Some("Default-First-Site-Name")).unwrap(),
            "_ldap._tcp.Default-First-Site-Name._sites.dc._msdcs.corp.example"
        );
        let bad: &[(&str, Option<&str>, &str)] = &[
            ("", None, "empty"),
            (".", None, "empty"),
            ("corp..example", None, "empty label"),
            ("corp example", None, "' '"),
            ("corp.exämple", None, "IDNA"),
            ("corp.example", Some("a.b"), "single DNS label"),
            ("corp.example", Some(""), "empty label"),
            ("corp.example", Some("site one"), "' '"),
        ];
        for (domain, site, needle) in bad {
            let e = locator_record(domain, *site).unwrap_err();
            assert!(
                matches!(e, DiscoveryError::InvalidName { .. }),
                "{domain:?} {site:?}: {e:?}"
            );
            assert!(e.to_string().contains(needle), "{domain:?} {site:?}: {e}");
        }
        let long_label = "a".repeat(64);
        assert!(locator_record(&long_label, None).is_err());
        let long_name = vec!["abcdefghi"; 25].join(".");
        assert!(locator_record(&long_name, None).is_err());
    }

    #[test]
    fn errors_name_record_servers_and_cause() {
        let asked = Asked {
            record: "_ldap._tcp.dc._msdcs.corp.example".into(),
            site_record: Some("_ldap._tcp.Lab._sites.dc._msdcs.corp.example".into()),
            servers: "127.0.0.1:5353".into(),
        };
        let text = DiscoveryError::NxDomain {
            asked: asked.clone(),
        }
        .to_string();
        for needle in [
            "_ldap._tcp.dc._msdcs.corp.example",
            "_ldap._tcp.Lab._sites.dc._msdcs.corp.example",
            "127.0.0.1:5353",
            "NXDOMAIN",
        ] {
            assert!(text.contains(needle), "{text}");
        }
        let text = DiscoveryError::Timeout {
            asked,
            timeout: Duration::from_secs(2),
        }
        .to_string();
        assert!(text.contains("no answer within 2s"), "{text}");
    }
}
