//! GSS-API failures in words: the krb5 error code in a GSS minor status
//! (MIT's com_err table, `krb5.h`) decides the message, which names the thing
//! at fault. GSS-API's own text ("Unspecified GSS failure. Minor code may
//! provide more information (Cannot contact any KDC for requested realm)")
//! is kept at the end for the record.

use thiserror::Error;

/// A Kerberos failure: what went wrong (`kind`) and a message that names
/// the file, principal, realm or service at fault.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("{message}")]
pub struct KrbError {
    pub kind: Kind,
    pub message: String,
}

/// What kind of failure, for callers that act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The keytab file is missing, unreadable or not a keytab.
    Keytab,
    /// The keytab does not hold the principal.
    PrincipalNotInKeytab,
    /// No credential cache, or no valid tickets in it.
    NoTickets,
    ClockSkew,
    KdcUnreachable,
    /// The KDC does not know the client or the service principal.
    UnknownPrincipal,
    /// The KDC or service refused the key (stale keytab, wrong password).
    KeyRefused,
    /// The account is disabled, locked or its password expired.
    AccountUnusable,
    /// krb5.conf is missing, unreadable or names no KDC for the realm.
    Configuration,
    /// A replayed authenticator.
    Replay,
    Other,
}

impl KrbError {
    pub fn new(kind: Kind, message: impl Into<String>) -> KrbError {
        KrbError {
            kind,
            message: message.into(),
        }
    }
}

/// What the failure involved, to name it in the message.
#[derive(Debug, Clone, Default)]
pub struct Context<'a> {
    /// The client principal (`WS01$@CORP.EXAMPLE`), when known.
    pub client: Option<&'a str>,
    /// The service principal asked for (`ldap/dc01.corp.example`).
    pub service: Option<&'a str>,
    /// Where the credentials come from (`keytab /etc/krb5.keytab`).
    pub source: Option<&'a str>,
}

// MIT krb5 error codes (krb5.h, generated from krb5_err.et).
const KDC_ERR_C_PRINCIPAL_UNKNOWN: i32 = -1765328378;
const KDC_ERR_S_PRINCIPAL_UNKNOWN: i32 = -1765328377;
const KDC_ERR_CLIENT_REVOKED: i32 = -1765328366;
const KDC_ERR_KEY_EXP: i32 = -1765328361;
const KDC_ERR_PREAUTH_FAILED: i32 = -1765328360;
const AP_ERR_TKT_EXPIRED: i32 = -1765328352;
const AP_ERR_TKT_NYV: i32 = -1765328351;
const AP_ERR_REPEAT: i32 = -1765328350;
const AP_ERR_SKEW: i32 = -1765328347;
const AP_ERR_MODIFIED: i32 = -1765328343;
const AP_ERR_BADKEYVER: i32 = -1765328340;
const AP_ERR_NOKEY: i32 = -1765328339;
const CONFIG_CANTOPEN: i32 = -1765328249;
const CC_NOTFOUND: i32 = -1765328243;
const CC_END: i32 = -1765328242;
const KDCREP_SKEW: i32 = -1765328236;
const REALM_UNKNOWN: i32 = -1765328230;
const KDC_UNREACH: i32 = -1765328228;
const KT_NOTFOUND: i32 = -1765328203;
const KT_END: i32 = -1765328202;
const FCC_PERM: i32 = -1765328190;
const FCC_NOFILE: i32 = -1765328189;
const KT_KVNONOTFOUND: i32 = -1765328154;
// GSS major status: the credentials have expired (RFC 2744 3.9.1).
const GSS_S_CREDENTIALS_EXPIRED: u32 = 11 << 16;
const GSS_S_NO_CRED: u32 = 7 << 16;

/// The message for a GSS-API failure with `major`/`minor` status; `detail`
/// is GSS-API's own text, kept at the end.
pub fn explain(major: u32, minor: u32, detail: &str, cx: &Context) -> KrbError {
    let client = cx.client.unwrap_or("this host's principal");
    let service = cx.service.unwrap_or("the service");
    let source = cx.source.unwrap_or("the credentials");
    let (kind, text) = match minor as i32 {
        AP_ERR_SKEW | KDCREP_SKEW => (
            Kind::ClockSkew,
            format!(
                "the clocks of this host and of the KDC (or of {service}) differ by more than \
                 Kerberos allows (5 minutes unless krb5.conf's clockskew says otherwise): \
                 synchronise this host's clock (chrony, systemd-timesyncd) with the domain"
            ),
        ),
        AP_ERR_TKT_NYV => (
            Kind::ClockSkew,
            format!(
                "the tickets of {client} in {source} are not valid yet: this host's clock is \
                 behind the time they were issued at (it was set back, or differs from the \
                 KDC's); synchronise the clock, then obtain new tickets"
            ),
        ),
        KDC_UNREACH => (
            Kind::KdcUnreachable,
            format!(
                "no KDC of {}'s realm answers: check that a domain controller is reachable \
                 (krb5.conf [realms] kdc, or the DNS SRV records _kerberos._tcp.<domain>)",
                client
            ),
        ),
        REALM_UNKNOWN | CONFIG_CANTOPEN => (
            Kind::Configuration,
            "krb5.conf cannot be read or names no KDC for the realm (KRB5_CONFIG, \
             /etc/krb5.conf, or the policy's krb5_conf)"
                .to_string(),
        ),
        KDC_ERR_C_PRINCIPAL_UNKNOWN => (
            Kind::UnknownPrincipal,
            format!("the KDC does not know {client}: the account does not exist in the realm"),
        ),
        KDC_ERR_S_PRINCIPAL_UNKNOWN => (
            Kind::UnknownPrincipal,
            format!(
                "the KDC knows no service principal {service}: it is made from the server's \
                 host name as written in the URL (or found in DNS), which must be the name the \
                 service is registered under, not an address or an alias"
            ),
        ),
        KDC_ERR_PREAUTH_FAILED | AP_ERR_MODIFIED | AP_ERR_BADKEYVER | AP_ERR_NOKEY => (
            Kind::KeyRefused,
            format!(
                "the key of {client} in {source} was refused: the keytab is out of date (the \
                 account's password changed since it was written; rejoin the domain or run \
                 `adcli update`) or the password is wrong"
            ),
        ),
        KDC_ERR_CLIENT_REVOKED => (
            Kind::AccountUnusable,
            format!("the KDC refuses {client}: the account is disabled or locked out"),
        ),
        KDC_ERR_KEY_EXP => (
            Kind::AccountUnusable,
            format!("the password of {client} has expired"),
        ),
        KT_NOTFOUND | KT_KVNONOTFOUND | KT_END => (
            Kind::PrincipalNotInKeytab,
            format!("{source} holds no key for {client}"),
        ),
        CC_NOTFOUND | CC_END | FCC_NOFILE => (
            Kind::NoTickets,
            format!("{source} holds no tickets for {client}: obtain them with kinit"),
        ),
        FCC_PERM => (
            Kind::NoTickets,
            format!("{source} cannot be read by this user"),
        ),
        AP_ERR_TKT_EXPIRED => (
            Kind::NoTickets,
            format!("the tickets of {client} in {source} have expired: renew them with kinit"),
        ),
        AP_ERR_REPEAT => (
            Kind::Replay,
            "the authenticator was already used (a replay)".to_string(),
        ),
        _ if major & 0x00ff_0000 == GSS_S_CREDENTIALS_EXPIRED => (
            Kind::NoTickets,
            format!("the tickets of {client} in {source} have expired: renew them with kinit"),
        ),
        _ if major & 0x00ff_0000 == GSS_S_NO_CRED => (
            Kind::NoTickets,
            format!("no usable Kerberos credentials for {client} in {source}"),
        ),
        _ => (
            Kind::Other,
            format!("Kerberos authentication of {client} to {service} failed"),
        ),
    };
    let detail = detail.trim();
    let message = if detail.is_empty() {
        text
    } else {
        format!("{text} [GSS-API: {detail}]")
    };
    KrbError::new(kind, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_krb5_code_names_the_thing_at_fault() {
        let cx = Context {
            client: Some("WS01$@CORP.EXAMPLE"),
            service: Some("ldap/dc01.corp.example"),
            source: Some("keytab /etc/krb5.keytab"),
        };
        let cases: [(u32, i32, Kind, &str); 13] = [
            (0xd0000, AP_ERR_TKT_NYV, Kind::ClockSkew, "not valid yet"),
            (
                0xd0000,
                AP_ERR_SKEW,
                Kind::ClockSkew,
                "synchronise this host's clock",
            ),
            (0xd0000, KDCREP_SKEW, Kind::ClockSkew, "clocks of this host"),
            (
                0xd0000,
                KDC_UNREACH,
                Kind::KdcUnreachable,
                "no KDC of WS01$@CORP.EXAMPLE's realm",
            ),
            (
                0xd0000,
                KT_NOTFOUND,
                Kind::PrincipalNotInKeytab,
                "keytab /etc/krb5.keytab holds no key for WS01$",
            ),
            (
                0xd0000,
                KDC_ERR_S_PRINCIPAL_UNKNOWN,
                Kind::UnknownPrincipal,
                "no service principal ldap/dc01.corp.example",
            ),
            (
                0xd0000,
                KDC_ERR_C_PRINCIPAL_UNKNOWN,
                Kind::UnknownPrincipal,
                "does not know WS01$@CORP.EXAMPLE",
            ),
            (
                0xd0000,
                KDC_ERR_PREAUTH_FAILED,
                Kind::KeyRefused,
                "adcli update",
            ),
            (
                0xd0000,
                KDC_ERR_CLIENT_REVOKED,
                Kind::AccountUnusable,
                "disabled or locked",
            ),
            (0xd0000, FCC_NOFILE, Kind::NoTickets, "kinit"),
            (0xd0000, AP_ERR_REPEAT, Kind::Replay, "replay"),
            (
                GSS_S_CREDENTIALS_EXPIRED,
                0,
                Kind::NoTickets,
                "have expired",
            ),
            (
                0xd0000,
                12345,
                Kind::Other,
                "to ldap/dc01.corp.example failed",
            ),
        ];
        for (major, minor, kind, text) in cases {
            let e = explain(major, minor as u32, "gss text", &cx);
            assert_eq!(e.kind, kind, "{minor}");
            assert!(e.message.contains(text), "{minor}: {}", e.message);
            assert!(e.message.ends_with("[GSS-API: gss text]"), "{}", e.message);
        }
    }
}
