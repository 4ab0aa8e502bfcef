//! DC discovery against a real DNS server (a private dnsmasq on loopback):
//! the site record and the fallback to the domain-wide one, the RFC 2782
//! order over many draws, and each failure with its clear error.

mod common;

use std::time::{Duration, Instant};

use autoenroll::directory::discovery::{
    DiscoveryError, DomainController, Pick, discover, discover_with,
};
use common::dns::{Dnsmasq, Extra, Srv};

const DOMAIN: &str = "corp.example";
const DOMAIN_WIDE: &str = "_ldap._tcp.dc._msdcs.corp.example";
const TIMEOUT: Duration = Duration::from_secs(5);

fn site_record(site: &str) -> String {
    format!("_ldap._tcp.{site}._sites.dc._msdcs.corp.example")
}

fn dc(host: &str, port: u16) -> DomainController {
    DomainController {
        host: host.into(),
        port,
    }
}

/// A forest with three DCs: dc1 and dc2 for the whole domain, dc3 the only
/// one of the site "Lab"; the site "Empty" exists (a TXT record) but has no
/// SRV records.
fn forest() -> Dnsmasq {
    Dnsmasq::start_with(
        &[DOMAIN],
        &[
            Srv::new(DOMAIN_WIDE, "dc1.corp.example", 389, 0, 100),
            Srv::new(DOMAIN_WIDE, "dc2.corp.example", 389, 0, 100),
            Srv::new(DOMAIN_WIDE, "dc3.corp.example", 389, 0, 100),
            Srv::new(&site_record("Lab"), "dc3.corp.example", 389, 0, 100),
        ],
        &[Extra::Txt(site_record("Empty"), "no DC here".into())],
    )
}

fn sorted(mut dcs: Vec<DomainController>) -> Vec<DomainController> {
    dcs.sort_by(|a, b| a.host.cmp(&b.host));
    dcs
}

#[tokio::test]
async fn the_domain_wide_record_without_a_site() {
    let dns = forest();
    let found = discover(DOMAIN, None, &[dns.addr], TIMEOUT)
        .await
        .expect("discovered");
    assert_eq!(
        sorted(found),
        vec![
            dc("dc1.corp.example", 389),
            dc("dc2.corp.example", 389),
            dc("dc3.corp.example", 389)
        ]
    );
    assert_eq!(dns.queries("SRV"), vec![DOMAIN_WIDE.to_string()]);
}

#[tokio::test]
async fn the_site_record_when_the_site_has_dcs() {
    let dns = forest();
    let found = discover_with(
        DOMAIN,
        Some("Lab"),
        &[dns.addr],
        TIMEOUT,
        &mut Scripted(vec![]),
    )
    .await
    .expect("discovered");
    assert_eq!(found.controllers, vec![dc("dc3.corp.example", 389)]);
    assert_eq!(found.record, site_record("Lab"));
    assert_eq!(found.site_record_without_dcs, None);
    // The domain-wide record was not asked for.
    assert_eq!(dns.queries("SRV"), vec![site_record("lab")]);
}

#[tokio::test]
async fn a_site_without_records_falls_back_to_the_domain() {
    let dns = forest();
    // "Nowhere" does not exist (NXDOMAIN); "Empty" exists without SRV
    // records (NOERROR, no data): both fall back.
    for site in ["Nowhere", "Empty"] {
        let found = discover_with(
            DOMAIN,
            Some(site),
            &[dns.addr],
            TIMEOUT,
            &mut Scripted(vec![]),
        )
        .await
        .unwrap_or_else(|e| panic!("{site}: {e}"));
        assert_eq!(found.record, DOMAIN_WIDE, "{site}");
        assert_eq!(
            found.site_record_without_dcs,
            Some(site_record(site)),
            "{site}"
        );
        assert_eq!(
            found.controllers.len(),
            3,
            "{site}: {:?}",
            found.controllers
        );
    }
    assert_eq!(
        dns.queries("SRV"),
        vec![
            site_record("nowhere"),
            DOMAIN_WIDE.to_string(),
            site_record("empty"),
            DOMAIN_WIDE.to_string()
        ]
    );
}

/// Draws in turn from a list, then 0.
struct Scripted(Vec<u64>);

impl Pick for Scripted {
    fn pick(&mut self, max: u64) -> u64 {
        if self.0.is_empty() {
            0
        } else {
            self.0.remove(0).min(max)
        }
    }
}

fn weighted() -> Dnsmasq {
    Dnsmasq::start(
        &[DOMAIN],
        &[
            // Priority 0: light (100) and heavy (300); then backup at 5,
            // last-resort at 10, whatever the order published.
            Srv::new(DOMAIN_WIDE, "last-resort.corp.example", 389, 10, 0),
            Srv::new(DOMAIN_WIDE, "light.corp.example", 389, 0, 100),
            Srv::new(DOMAIN_WIDE, "backup.corp.example", 3389, 5, 0),
            Srv::new(DOMAIN_WIDE, "heavy.corp.example", 389, 0, 300),
        ],
    )
}

#[tokio::test]
async fn priority_then_weight_order_over_many_draws() {
    let dns = weighted();
    let runs = 400;
    let mut heavy_first = 0;
    let started = Instant::now();
    for _ in 0..runs {
        let found = discover(DOMAIN, None, &[dns.addr], TIMEOUT)
            .await
            .expect("discovered");
        let hosts: Vec<&str> = found.iter().map(|d| d.host.as_str()).collect();
        assert_eq!(hosts.len(), 4, "{hosts:?}");
        let mut first_two = hosts[..2].to_vec();
        first_two.sort_unstable();
        assert_eq!(
            first_two,
            vec!["heavy.corp.example", "light.corp.example"],
            "priority 0 first: {hosts:?}"
        );
        assert_eq!(found[2], dc("backup.corp.example", 3389), "{hosts:?}");
        assert_eq!(hosts[3], "last-resort.corp.example", "{hosts:?}");
        if hosts[0] == "heavy.corp.example" {
            heavy_first += 1;
        }
    }
    eprintln!(
        "{runs} discoveries in {:?} ({:?} each); heavy first {heavy_first} times",
        started.elapsed(),
        started.elapsed() / runs as u32
    );
    // RFC 2782's draw in 0..=400 over the running sums puts heavy first for
    // 300 of the 401 values, whatever order the server returns them in
    // (light 100 first: 101..=400; heavy first: 0..=300). Allow 5 sigma.
    let p = 300.0 / 401.0;
    let expected = runs as f64 * p;
    let sigma = (runs as f64 * p * (1.0 - p)).sqrt();
    assert!(
        (heavy_first as f64 - expected).abs() < 5.0 * sigma,
        "heavy first {heavy_first} of {runs}, expected about {expected:.0}"
    );
    assert_eq!(dns.queries("SRV").len(), runs);
}

#[tokio::test]
async fn the_order_follows_the_draws() {
    let dns = weighted();
    // Priority 0 holds light (100) and heavy (300), sum 400. A draw in
    // 101..=300 selects heavy whichever of the two the server sends first
    // (running sums 100, 400 or 300, 400), so the whole order is fixed.
    for draw in [101, 200, 300] {
        let found = discover_with(
            DOMAIN,
            None,
            &[dns.addr],
            TIMEOUT,
            &mut Scripted(vec![draw]),
        )
        .await
        .expect("discovered");
        assert_eq!(found.record, DOMAIN_WIDE);
        assert_eq!(
            found.controllers,
            vec![
                dc("heavy.corp.example", 389),
                dc("light.corp.example", 389),
                dc("backup.corp.example", 3389),
                dc("last-resort.corp.example", 389),
            ],
            "draw {draw}"
        );
    }
}

#[tokio::test]
async fn a_domain_that_does_not_exist_is_nxdomain() {
    let dns = forest();
    let e = discover("other.corp.example", None, &[dns.addr], TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(e, DiscoveryError::NxDomain { .. }), "{e:?}");
    let text = e.to_string();
    for needle in [
        "_ldap._tcp.dc._msdcs.other.corp.example",
        &dns.addr.to_string(),
        "NXDOMAIN",
    ] {
        assert!(text.contains(needle), "{needle:?} in {text}");
    }
    // With a site: both records are named.
    let e = discover("other.corp.example", Some("Lab"), &[dns.addr], TIMEOUT)
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, DiscoveryError::NxDomain { .. }), "{e:?}");
    assert!(
        text.contains("_ldap._tcp.Lab._sites.dc._msdcs.other.corp.example")
            && text.contains("_ldap._tcp.dc._msdcs.other.corp.example"),
        "{text}"
    );
}

#[tokio::test]
async fn a_name_without_srv_records_and_the_no_service_record() {
    let dns = Dnsmasq::start_with(
        &["empty.example", "closed.example"],
        &[Srv::no_service("_ldap._tcp.dc._msdcs.closed.example")],
        &[Extra::Txt(
            "_ldap._tcp.dc._msdcs.empty.example".into(),
            "nothing".into(),
        )],
    );
    let e = discover("empty.example", None, &[dns.addr], TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(e, DiscoveryError::NoRecords { .. }), "{e:?}");
    assert!(e.to_string().contains("has no SRV records"), "{e}");

    let e = discover("closed.example", None, &[dns.addr], TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(e, DiscoveryError::NoService { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("decidedly not available")
            && text.contains("_ldap._tcp.dc._msdcs.closed.example"),
        "{text}"
    );
}

#[tokio::test]
async fn a_refusing_server_is_named_with_its_answer() {
    let dns = forest();
    // Outside its zones and with no upstream, dnsmasq refuses.
    let e = discover("elsewhere.example", None, &[dns.addr], TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(e, DiscoveryError::Failed { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("REFUSED") && text.contains(&dns.addr.to_string()),
        "{text}"
    );
}

#[tokio::test]
async fn a_hung_server_times_out_with_a_clear_error() {
    let dns = forest();
    dns.pause();
    let timeout = Duration::from_secs(2);
    let started = Instant::now();
    let e = discover(DOMAIN, Some("Lab"), &[dns.addr], timeout)
        .await
        .unwrap_err();
    let took = started.elapsed();
    dns.resume();
    assert!(matches!(e, DiscoveryError::Timeout { .. }), "{e:?}");
    let text = e.to_string();
    for needle in [
        site_record("Lab").as_str(),
        &dns.addr.to_string(),
        "no answer within 2s",
    ] {
        assert!(text.contains(needle), "{needle:?} in {text}");
    }
    assert!(
        took >= timeout && took < timeout + Duration::from_secs(2),
        "took {took:?}"
    );
    // The same server answers once it runs again.
    let found = discover(DOMAIN, None, &[dns.addr], TIMEOUT).await.unwrap();
    assert_eq!(found.len(), 3);
}

#[tokio::test]
async fn a_server_that_is_gone_gives_a_clear_error_in_time() {
    let mut dns = forest();
    let addr = dns.addr;
    dns.stop();
    let timeout = Duration::from_secs(2);
    let started = Instant::now();
    let e = discover(DOMAIN, None, &[addr], timeout).await.unwrap_err();
    let took = started.elapsed();
    eprintln!("{e} (after {took:?})");
    assert!(
        matches!(
            e,
            DiscoveryError::Timeout { .. } | DiscoveryError::Failed { .. }
        ),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.contains(DOMAIN_WIDE) && text.contains(&addr.to_string()),
        "{text}"
    );
    assert!(took < timeout + Duration::from_secs(2), "took {took:?}");
}

#[tokio::test]
async fn the_next_server_answers_when_the_first_is_down() {
    let mut down = forest();
    let down_addr = down.addr;
    down.stop();
    let up = forest();
    let found = discover(DOMAIN, None, &[down_addr, up.addr], TIMEOUT)
        .await
        .expect("the second server answers");
    assert_eq!(found.len(), 3);
}

#[tokio::test]
async fn no_servers_given_means_the_system_resolver() {
    // The system's servers are asked (whatever they answer for a name that
    // cannot exist, RFC 6761 .invalid): the error says so.
    let e = discover("autoenroll-test.invalid", None, &[], Duration::from_secs(3))
        .await
        .unwrap_err();
    eprintln!("{e}");
    match &e {
        DiscoveryError::SystemResolver { .. } => {}
        other => {
            let asked = other.asked().expect("a lookup was made");
            assert!(
                asked
                    .servers
                    .starts_with("the system resolver (/etc/resolv.conf"),
                "{e}"
            );
            assert_eq!(asked.record, "_ldap._tcp.dc._msdcs.autoenroll-test.invalid");
        }
    }
}

#[tokio::test]
async fn bad_names_are_refused_before_any_question() {
    let dns = forest();
    for (domain, site) in [("corp example", None), (DOMAIN, Some("a.b")), ("", None)] {
        let e = discover(domain, site, &[dns.addr], TIMEOUT)
            .await
            .unwrap_err();
        assert!(matches!(e, DiscoveryError::InvalidName { .. }), "{e:?}");
    }
    assert!(dns.queries("SRV").is_empty(), "{}", dns.log());
}

#[tokio::test]
async fn the_next_server_answers_when_the_first_hangs() {
    let hung = forest();
    hung.pause();
    let up = forest();
    let timeout = Duration::from_secs(4);
    let started = Instant::now();
    let found = discover(DOMAIN, Some("Lab"), &[hung.addr, up.addr], timeout).await;
    let took = started.elapsed();
    hung.resume();
    let found = found.expect("the second server answers");
    assert_eq!(found, vec![dc("dc3.corp.example", 389)]);
    assert!(took < timeout, "took {took:?}");
    eprintln!("answered after {took:?} with the first server hung");
}

#[tokio::test]
async fn targets_outside_the_zone_such_as_localhost_for_private_servers() {
    // The shape of a failover test: two local LDAP servers on their own
    // ports, published as localhost at two priorities.
    let dns = Dnsmasq::start(
        &[DOMAIN],
        &[
            Srv::new(DOMAIN_WIDE, "localhost", 40_002, 10, 0),
            Srv::new(DOMAIN_WIDE, "localhost", 40_001, 0, 0),
        ],
    );
    let found = discover(DOMAIN, None, &[dns.addr], TIMEOUT).await.unwrap();
    assert_eq!(
        found,
        vec![dc("localhost", 40_001), dc("localhost", 40_002)]
    );
}
