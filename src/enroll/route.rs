//! Which of a CA's enrollment endpoints to use, and how to authenticate to
//! each: a pure decision from the CA's `msPKI-Enrollment-Servers` entries,
//! the credentials the policy has and the methods it allows.
//!
//! Each entry carries the authentication its endpoint takes
//! (msPKI-Enrollment-Servers, [MS-ADA2] 2.612: priority, authentication type
//! and URI of each enrollment web service; the types are certenroll's
//! X509EnrollmentAuthFlags: 1 anonymous, 2 Kerberos, 4 user name and
//! password, 8 client certificate). The client
//! speaks Kerberos (HTTP Negotiate) and user name and password (a
//! WS-Security UsernameToken); a renewal, signed by the certificate it
//! renews, may also go to a user-name-and-password endpoint without any
//! credentials (the CA identifies the requester by the signing certificate).
//! Client-certificate (TLS) and anonymous endpoints are not used.

use serde::Serialize;

use crate::model::EnrollmentService;
use crate::model::template::EnrollmentServer;

/// `msPKI-Enrollment-Servers` authentication flags.
pub const AUTH_KERBEROS: u32 = 2;
pub const AUTH_USERNAME_PASSWORD: u32 = 4;

/// How a request is authenticated to an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Auth {
    /// MS-ICPR over DCE/RPC to the CA host (its `dNSHostName`), Kerberos
    /// at packet privacy: what Windows autoenrollment uses, preferred.
    Rpc,
    /// HTTP Negotiate (SPNEGO with Kerberos), no UsernameToken.
    Kerberos,
    /// A WS-Security UsernameToken with the account's password.
    Password,
    /// No credentials: only a renewal signed by the certificate it renews
    /// (or, with no credentials at all, whatever the CA accepts that way).
    None,
}

impl Auth {
    pub fn name(self) -> &'static str {
        match self {
            Auth::Rpc => "rpc",
            Auth::Kerberos => "kerberos",
            Auth::Password => "password",
            Auth::None => "none",
        }
    }
}

/// The credentials a policy has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Have {
    pub kerberos: bool,
    pub password: bool,
}

/// An enrollment method, as the policy names it (`[enrollment] methods`):
/// MS-ICPR over DCE/RPC, or a CES endpoint by its authentication type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Method {
    /// `"rpc"`: `ICertPassage` on the CA host, Kerberos at packet privacy.
    #[serde(rename = "rpc")]
    Rpc,
    /// `"ces-kerberos"`: a CES endpoint of authentication type 2.
    #[serde(rename = "ces-kerberos")]
    CesKerberos,
    /// `"ces-password"`: a CES endpoint of authentication type 4 (with the
    /// password's UsernameToken, or none for a signed renewal).
    #[serde(rename = "ces-password")]
    CesPassword,
}

impl Method {
    /// Every method, in the default order of preference (Windows' own: RPC
    /// first, it needs no web service).
    pub const ALL: [Method; 3] = [Method::Rpc, Method::CesKerberos, Method::CesPassword];

    pub fn name(self) -> &'static str {
        match self {
            Method::Rpc => "rpc",
            Method::CesKerberos => "ces-kerberos",
            Method::CesPassword => "ces-password",
        }
    }

    /// The policy's name of a method. The names of the older
    /// `[enrollment] authentication` key (`"kerberos"`, `"password"`) are
    /// read as the CES methods they meant.
    pub fn parse(name: &str) -> Option<Method> {
        match name {
            "rpc" => Some(Method::Rpc),
            "ces-kerberos" | "kerberos" => Some(Method::CesKerberos),
            "ces-password" | "password" => Some(Method::CesPassword),
            _ => None,
        }
    }

    /// The method an authentication belongs to.
    pub fn of(auth: Auth) -> Method {
        match auth {
            Auth::Rpc => Method::Rpc,
            Auth::Kerberos => Method::CesKerberos,
            Auth::Password | Auth::None => Method::CesPassword,
        }
    }
}

/// The methods a policy allows, in its order of preference
/// (`[enrollment] methods`, default [`Method::ALL`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowed {
    order: [Option<Method>; 3],
}

impl Default for Allowed {
    fn default() -> Allowed {
        Allowed {
            order: Method::ALL.map(Some),
        }
    }
}

impl Allowed {
    /// The methods in order of preference: at least one, each once.
    pub fn new(methods: &[Method]) -> Result<Allowed, String> {
        if methods.is_empty() {
            return Err("at least one method".into());
        }
        let mut order = [None; 3];
        for (i, m) in methods.iter().enumerate() {
            if methods[..i].contains(m) {
                return Err(format!("{:?} is listed twice", m.name()));
            }
            order[i] = Some(*m);
        }
        Ok(Allowed { order })
    }

    pub fn allows(&self, method: Method) -> bool {
        self.order.contains(&Some(method))
    }

    /// The place of a method in the order of preference (smaller first).
    pub fn rank(&self, method: Method) -> usize {
        self.order
            .iter()
            .position(|m| *m == Some(method))
            .unwrap_or(usize::MAX)
    }

    /// The allowed methods, preferred first.
    pub fn methods(&self) -> impl Iterator<Item = Method> + '_ {
        self.order.iter().flatten().copied()
    }
}

/// Whether a CA is asked over RPC: the policy allows it, has Kerberos
/// credentials (ICertPassage takes nothing else) and the CA has a host name
/// to reach and to name in the service principal (`host/<dNSHostName>`).
/// Every enterprise CA serves ICertPassage, whether or not it publishes
/// enrollment URLs.
pub fn uses_rpc(dns_host_name: Option<&str>, have: Have, allowed: Allowed) -> bool {
    allowed.allows(Method::Rpc) && have.kerberos && dns_host_name.is_some_and(|h| !h.is_empty())
}

/// What one CA publishing a template offers: its host name (for RPC) and
/// its `msPKI-Enrollment-Servers` entries (for CES).
#[derive(Debug, Clone, Copy)]
pub struct CaOffer<'a> {
    pub dns_host_name: Option<&'a str>,
    pub servers: &'a [EnrollmentServer],
}

/// One way to send a request: a CA (index into the offers), the method,
/// its authentication, and for CES the entry (index into its servers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub ca: usize,
    pub method: Method,
    pub auth: Auth,
    /// The `msPKI-Enrollment-Servers` entry; `None` for RPC.
    pub server: Option<usize>,
}

/// Every way to send a request, in the order to try them: CA by CA in the
/// order given (the issuer of a renewed certificate first, then directory
/// order), and within a CA by the policy's order of methods ([`uses_rpc`]
/// for RPC, [`choose`] for the CES entries). A failure of one route passes
/// the request to the next, so a CA whose RPC port is closed falls back to
/// its CES endpoints, then to the next CA.
pub fn routes(cas: &[CaOffer<'_>], have: Have, allowed: Allowed, renewal: bool) -> Vec<Route> {
    let mut out = Vec::new();
    for (ca, offer) in cas.iter().enumerate() {
        let mut here: Vec<Route> = Vec::new();
        if uses_rpc(offer.dns_host_name, have, allowed) {
            here.push(Route {
                ca,
                method: Method::Rpc,
                auth: Auth::Rpc,
                server: None,
            });
        }
        here.extend(
            choose(offer.servers, have, allowed, renewal)
                .into_iter()
                .map(|(i, auth)| Route {
                    ca,
                    method: Method::of(auth),
                    auth,
                    server: Some(i),
                }),
        );
        // Stable: `choose`'s order (priority) is kept within a method.
        here.sort_by_key(|r| allowed.rank(r.method));
        out.extend(here);
    }
    out
}

/// The endpoints of one CA to try, in order, each with its authentication:
/// indexes into `servers`, grouped by the policy's order of methods (by
/// default Kerberos endpoints first), each group by the entries' priority; entries that
/// only take renewals are skipped for a new request. A user-name-and-password
/// endpoint without a password is used only for a renewal, or when the
/// policy has no credentials at all (SASL EXTERNAL: the CA then says what it
/// needs); so a Kerberos host whose Kerberos endpoints fail never sends a
/// new request where it cannot authenticate.
pub fn choose(
    servers: &[EnrollmentServer],
    have: Have,
    allowed: Allowed,
    renewal: bool,
) -> Vec<(usize, Auth)> {
    let no_credentials = !have.kerberos && !have.password;
    let mut out: Vec<(usize, Auth, u32)> = servers
        .iter()
        .enumerate()
        .filter(|(_, s)| renewal || !s.renewal_only)
        .filter_map(|(i, s)| {
            let auth = match s.authentication {
                AUTH_KERBEROS if allowed.allows(Method::CesKerberos) && have.kerberos => {
                    Auth::Kerberos
                }
                AUTH_USERNAME_PASSWORD if allowed.allows(Method::CesPassword) && have.password => {
                    Auth::Password
                }
                AUTH_USERNAME_PASSWORD
                    if allowed.allows(Method::CesPassword) && (renewal || no_credentials) =>
                {
                    Auth::None
                }
                _ => return None,
            };
            Some((i, auth, s.priority))
        })
        .collect();
    out.sort_by_key(|&(i, auth, priority)| (allowed.rank(Method::of(auth)), auth, priority, i));
    out.into_iter().map(|(i, auth, _)| (i, auth)).collect()
}

/// The CAs publishing `template`, in directory order with the one named
/// `preferred` (the issuer of the certificate being replaced) first.
pub fn publishers<'s>(
    services: &'s [EnrollmentService],
    template: &str,
    preferred: Option<&str>,
) -> Vec<&'s EnrollmentService> {
    let mut out: Vec<&EnrollmentService> =
        services.iter().filter(|s| s.publishes(template)).collect();
    if let Some(p) = preferred {
        out.sort_by_key(|s| !s.cn.eq_ignore_ascii_case(p));
    }
    out
}

/// What the CAs offer, for [`routes`].
pub fn offers<'s>(services: &[&'s EnrollmentService]) -> Vec<CaOffer<'s>> {
    services
        .iter()
        .map(|s| CaOffer {
            dns_host_name: s.dns_host_name.as_deref(),
            servers: &s.enrollment_servers,
        })
        .collect()
}

/// The CA and method a request for `template` is sent with first (what
/// `plan` shows): the first of [`routes`] over [`publishers`].
pub fn first_route<'s>(
    services: &'s [EnrollmentService],
    template: &str,
    have: Have,
    allowed: Allowed,
    renewal: bool,
    preferred: Option<&str>,
) -> Option<(&'s EnrollmentService, Method)> {
    let cas = publishers(services, template, preferred);
    let first = *routes(&offers(&cas), have, allowed, renewal).first()?;
    Some((cas[first.ca], first.method))
}

/// Why [`choose`] found nothing for a CA, for the report: what it offers and
/// what the policy has and allows.
pub fn nothing_usable(servers: &[EnrollmentServer], have: Have, allowed: Allowed) -> String {
    let offered: Vec<String> = servers
        .iter()
        .map(|s| {
            let kind = match s.authentication {
                AUTH_KERBEROS => "kerberos",
                AUTH_USERNAME_PASSWORD => "password",
                8 => "client certificate (not supported)",
                1 => "anonymous (not used)",
                _ => "unknown authentication",
            };
            format!("{kind} at {}", s.url)
        })
        .collect();
    let mut has = Vec::new();
    if have.kerberos {
        has.push("kerberos");
    }
    if have.password {
        has.push("password");
    }
    let allows: Vec<&str> = allowed.methods().map(Method::name).collect();
    format!(
        "no enrollment endpoint takes this policy's credentials ({}; allowed: {}); the CA \
         offers {}",
        if has.is_empty() {
            "none".to_string()
        } else {
            has.join(", ")
        },
        allows.join(", "),
        if offered.is_empty() {
            "nothing".to_string()
        } else {
            offered.join(", ")
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(
        priority: u32,
        authentication: u32,
        renewal_only: bool,
        url: &str,
    ) -> EnrollmentServer {
        EnrollmentServer {
            priority,
            authentication,
            renewal_only,
            url: url.into(),
        }
    }

    const K: Have = Have {
        kerberos: true,
        password: false,
    };
    const P: Have = Have {
        kerberos: false,
        password: true,
    };
    const BOTH: Have = Have {
        kerberos: true,
        password: true,
    };
    const NONE: Have = Have {
        kerberos: false,
        password: false,
    };
    const ALL: Allowed = Allowed {
        order: [
            Some(Method::Rpc),
            Some(Method::CesKerberos),
            Some(Method::CesPassword),
        ],
    };
    const ONLY_PASSWORD: Allowed = Allowed {
        order: [Some(Method::CesPassword), None, None],
    };
    const ONLY_KERBEROS: Allowed = Allowed {
        order: [Some(Method::CesKerberos), None, None],
    };
    const PASSWORD_FIRST: Allowed = Allowed {
        order: [
            Some(Method::CesPassword),
            Some(Method::CesKerberos),
            Some(Method::Rpc),
        ],
    };

    /// What, the CA's entries, the credentials, the methods allowed, whether
    /// it is a renewal, and the endpoints chosen.
    type Case<'a> = (
        &'a str,
        &'a [EnrollmentServer],
        Have,
        Allowed,
        bool,
        Vec<(usize, Auth)>,
    );

    #[test]
    fn endpoints_by_credentials_allowed_methods_and_kind_of_request() {
        // The lab's CA: UsernamePassword at priority 1, Kerberos at 2.
        let lab = [
            server(1, 4, false, "https://ca/P"),
            server(2, 2, false, "https://ca/K"),
        ];
        let mixed = [
            server(1, 8, false, "https://ca/C"),
            server(3, 2, false, "https://ca/K3"),
            server(2, 4, false, "https://ca/P2"),
            server(1, 2, true, "https://ca/K1-renewal-only"),
            server(1, 1, false, "https://ca/anonymous"),
            server(5, 16, false, "https://ca/unknown"),
        ];
        use Auth::{Kerberos as Krb, None as No, Password as Pw};
        let cases: Vec<Case<'_>> = vec![
            (
                "kerberos first, whatever the priority",
                &lab,
                BOTH,
                ALL,
                false,
                vec![(1, Krb), (0, Pw)],
            ),
            (
                "a Kerberos host: no password endpoint for a new request",
                &lab,
                K,
                ALL,
                false,
                vec![(1, Krb)],
            ),
            (
                "a Kerberos host renews on either",
                &lab,
                K,
                ALL,
                true,
                vec![(1, Krb), (0, No)],
            ),
            (
                "a password host never uses Kerberos",
                &lab,
                P,
                ALL,
                false,
                vec![(0, Pw)],
            ),
            (
                "password only: the Kerberos host has nothing new to send",
                &lab,
                K,
                ONLY_PASSWORD,
                false,
                vec![],
            ),
            (
                "password only: its renewals go unauthenticated",
                &lab,
                K,
                ONLY_PASSWORD,
                true,
                vec![(0, No)],
            ),
            (
                "both credentials, password only",
                &lab,
                BOTH,
                ONLY_PASSWORD,
                false,
                vec![(0, Pw)],
            ),
            (
                "kerberos only keeps a password host away",
                &lab,
                P,
                ONLY_KERBEROS,
                false,
                vec![],
            ),
            (
                "SASL EXTERNAL: the CA says what it needs",
                &lab,
                NONE,
                ALL,
                false,
                vec![(0, No)],
            ),
            (
                "SASL EXTERNAL renewal",
                &lab,
                NONE,
                ALL,
                true,
                vec![(0, No)],
            ),
            (
                "renewal-only entries, certificate, anonymous and unknown types",
                &mixed,
                BOTH,
                ALL,
                false,
                vec![(1, Krb), (2, Pw)],
            ),
            (
                "a renewal may use the renewal-only entry, by priority",
                &mixed,
                BOTH,
                ALL,
                true,
                vec![(3, Krb), (1, Krb), (2, Pw)],
            ),
            (
                "the policy prefers password endpoints",
                &lab,
                BOTH,
                PASSWORD_FIRST,
                false,
                vec![(0, Pw), (1, Krb)],
            ),
            ("nothing published", &[], BOTH, ALL, false, vec![]),
        ];
        for (what, servers, have, allowed, renewal, expected) in cases {
            assert_eq!(choose(servers, have, allowed, renewal), expected, "{what}");
        }
    }

    #[test]
    fn rpc_needs_kerberos_a_host_name_and_the_policy() {
        let cases = [
            (
                "a Kerberos host, a CA host name",
                Some("ca.corp.example"),
                K,
                ALL,
                true,
            ),
            (
                "no Kerberos credentials",
                Some("ca.corp.example"),
                P,
                ALL,
                false,
            ),
            ("no dNSHostName", None, K, ALL, false),
            ("an empty dNSHostName", Some(""), K, ALL, false),
            (
                "the policy leaves RPC out",
                Some("ca.corp.example"),
                BOTH,
                ONLY_KERBEROS,
                false,
            ),
        ];
        for (what, host, have, allowed, expected) in cases {
            assert_eq!(uses_rpc(host, have, allowed), expected, "{what}");
        }
    }

    #[test]
    fn routes_by_ca_then_the_policys_order_of_methods() {
        let lab = [
            server(1, 4, false, "https://ca/P"),
            server(2, 2, false, "https://ca/K"),
        ];
        let only_password = [server(1, 4, false, "https://ca2/P")];
        let with_ces = CaOffer {
            dns_host_name: Some("ca.corp.example"),
            servers: &lab,
        };
        let rpc_only = CaOffer {
            dns_host_name: Some("ca.corp.example"),
            servers: &[],
        };
        let no_host = CaOffer {
            dns_host_name: None,
            servers: &lab,
        };
        let second = CaOffer {
            dns_host_name: Some("ca2.corp.example"),
            servers: &only_password,
        };
        let rpc = |ca| Route {
            ca,
            method: Method::Rpc,
            auth: Auth::Rpc,
            server: None,
        };
        let krb = |ca, i| Route {
            ca,
            method: Method::CesKerberos,
            auth: Auth::Kerberos,
            server: Some(i),
        };
        let pw = |ca, i| Route {
            ca,
            method: Method::CesPassword,
            auth: Auth::Password,
            server: Some(i),
        };
        let unauth = |ca, i| Route {
            ca,
            method: Method::CesPassword,
            auth: Auth::None,
            server: Some(i),
        };
        let rpc_last = Allowed::new(&[Method::CesKerberos, Method::Rpc]).unwrap();
        type RouteCase<'a> = (&'a str, Vec<CaOffer<'a>>, Have, Allowed, bool, Vec<Route>);
        let cases: Vec<RouteCase<'_>> = vec![
            (
                "the default: RPC, CES Kerberos, CES password",
                vec![with_ces],
                BOTH,
                ALL,
                false,
                vec![rpc(0), krb(0, 1), pw(0, 0)],
            ),
            (
                "a CA with no CES URL: RPC alone",
                vec![rpc_only],
                K,
                ALL,
                false,
                vec![rpc(0)],
            ),
            (
                "RPC needs the CA's host name",
                vec![no_host],
                K,
                ALL,
                false,
                vec![krb(0, 1)],
            ),
            (
                "RPC needs Kerberos credentials",
                vec![with_ces],
                P,
                ALL,
                false,
                vec![pw(0, 0)],
            ),
            (
                "the policy's order: password, Kerberos, RPC",
                vec![with_ces],
                BOTH,
                PASSWORD_FIRST,
                false,
                vec![pw(0, 0), krb(0, 1), rpc(0)],
            ),
            (
                "RPC after CES Kerberos, password left out",
                vec![with_ces],
                BOTH,
                rpc_last,
                false,
                vec![krb(0, 1), rpc(0)],
            ),
            (
                "every method of the first CA before the next CA",
                vec![with_ces, second],
                K,
                ALL,
                false,
                vec![rpc(0), krb(0, 1), rpc(1)],
            ),
            (
                "a Kerberos host's renewal may go unauthenticated, last",
                vec![rpc_only, second],
                K,
                ALL,
                true,
                vec![rpc(0), rpc(1), unauth(1, 0)],
            ),
            (
                "only RPC allowed, a password host: nothing",
                vec![with_ces],
                P,
                Allowed::new(&[Method::Rpc]).unwrap(),
                false,
                vec![],
            ),
            ("no CA", vec![], BOTH, ALL, false, vec![]),
        ];
        for (what, cas, have, allowed, renewal, expected) in cases {
            assert_eq!(routes(&cas, have, allowed, renewal), expected, "{what}");
        }
    }

    #[test]
    fn methods_are_named_once_each() {
        assert_eq!(Allowed::new(&Method::ALL).unwrap(), Allowed::default());
        assert!(Allowed::new(&[]).unwrap_err().contains("at least one"));
        assert!(
            Allowed::new(&[Method::Rpc, Method::Rpc])
                .unwrap_err()
                .contains("\"rpc\" is listed twice")
        );
        for m in Method::ALL {
            assert_eq!(Method::parse(m.name()), Some(m));
        }
        assert_eq!(Method::parse("kerberos"), Some(Method::CesKerberos));
        assert_eq!(Method::parse("password"), Some(Method::CesPassword));
        assert_eq!(Method::parse("ntlm"), None);
    }

    #[test]
    fn an_empty_choice_says_what_the_ca_offers() {
        let lab = [
            server(1, 4, false, "https://ca/P"),
            server(2, 2, false, "https://ca/K"),
            server(3, 8, false, "https://ca/C"),
        ];
        let text = nothing_usable(&lab, K, ONLY_PASSWORD);
        assert!(text.contains("(kerberos; allowed: ces-password)"), "{text}");
        assert!(text.contains("password at https://ca/P"), "{text}");
        assert!(text.contains("kerberos at https://ca/K"), "{text}");
        assert!(
            text.contains("client certificate (not supported) at https://ca/C"),
            "{text}"
        );
    }
}
