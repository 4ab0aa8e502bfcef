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

/// The endpoint types a policy allows (`[enrollment] authentication`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowed {
    pub kerberos: bool,
    pub password: bool,
    /// MS-ICPR over DCE/RPC (`"rpc"`).
    pub rpc: bool,
}

impl Default for Allowed {
    fn default() -> Allowed {
        Allowed {
            kerberos: true,
            password: true,
            rpc: true,
        }
    }
}

/// Whether a CA is asked over RPC, before any of its CES endpoints: the
/// policy allows it, has Kerberos credentials (ICertPassage takes nothing
/// else) and the CA has a host name to reach and to name in the service
/// principal (`host/<dNSHostName>`). Every enterprise CA serves
/// ICertPassage, whether or not it publishes enrollment URLs.
pub fn uses_rpc(dns_host_name: Option<&str>, have: Have, allowed: Allowed) -> bool {
    allowed.rpc && have.kerberos && dns_host_name.is_some_and(|h| !h.is_empty())
}

/// The endpoints of one CA to try, in order, each with its authentication:
/// indexes into `servers`. Kerberos endpoints come first when the policy has
/// Kerberos credentials (each group by the entries' priority); entries that
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
                AUTH_KERBEROS if allowed.kerberos && have.kerberos => Auth::Kerberos,
                AUTH_USERNAME_PASSWORD if allowed.password && have.password => Auth::Password,
                AUTH_USERNAME_PASSWORD if allowed.password && (renewal || no_credentials) => {
                    Auth::None
                }
                _ => return None,
            };
            Some((i, auth, s.priority))
        })
        .collect();
    out.sort_by_key(|&(i, auth, priority)| (auth, priority, i));
    out.into_iter().map(|(i, auth, _)| (i, auth)).collect()
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
    let mut allows = Vec::new();
    if allowed.kerberos {
        allows.push("kerberos");
    }
    if allowed.password {
        allows.push("password");
    }
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
        kerberos: true,
        password: true,
        rpc: true,
    };
    const ONLY_PASSWORD: Allowed = Allowed {
        kerberos: false,
        password: true,
        rpc: false,
    };
    const ONLY_KERBEROS: Allowed = Allowed {
        kerberos: true,
        password: false,
        rpc: false,
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
    fn an_empty_choice_says_what_the_ca_offers() {
        let lab = [
            server(1, 4, false, "https://ca/P"),
            server(2, 2, false, "https://ca/K"),
            server(3, 8, false, "https://ca/C"),
        ];
        let text = nothing_usable(&lab, K, ONLY_PASSWORD);
        assert!(text.contains("(kerberos; allowed: password)"), "{text}");
        assert!(text.contains("password at https://ca/P"), "{text}");
        assert!(text.contains("kerberos at https://ca/K"), "{text}");
        assert!(
            text.contains("client certificate (not supported) at https://ca/C"),
            "{text}"
        );
    }
}
