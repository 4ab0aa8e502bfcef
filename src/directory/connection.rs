//! The LDAP connection: `ldap://` (optionally StartTLS), `ldaps://` and
//! `ldapi://`; simple bind or SASL EXTERNAL; a timeout on every operation.
//! Errors name the URL and the cause so an administrator can act on them.

use std::sync::Arc;
use std::time::Duration;

use ldap3::controls::RawControl;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope};
use thiserror::Error;

use super::entry::Entry;
use crate::policy::{Bind, DirectorySettings, read_password_file};

#[derive(Debug, Error)]
pub enum DirectoryError {
    #[error("{url}: {what}")]
    Setup { url: String, what: String },
    #[error("{url}: cannot connect: {cause}")]
    Connect { url: String, cause: String },
    #[error("{url}: bind as {who} refused: {cause}")]
    Bind {
        url: String,
        who: String,
        cause: String,
    },
    #[error("{url}: search of {base:?} ({filter}) failed: {cause}")]
    Search {
        url: String,
        base: String,
        filter: String,
        cause: String,
    },
    #[error("{url}: {what}")]
    Content { url: String, what: String },
}

/// An open, bound connection. It counts its searches so that tests and the
/// benchmark can hold the snapshot to a fixed number of round trips.
pub struct Directory {
    ldap: Ldap,
    url: String,
    timeout: Duration,
    searches: usize,
}

/// SD-flags control ([MS-ADTS] 3.1.1.3.4.1.11): ask for owner, group and DACL.
/// Sent non-critical: OpenLDAP refuses it as critical, AD honours it either way.
const SD_FLAGS_OID: &str = "1.2.840.113556.1.4.801";
const SD_FLAGS_OWNER_GROUP_DACL: [u8; 5] = [0x30, 0x03, 0x02, 0x01, 0x07];

/// Page size for searches that may return many entries.
const PAGE_SIZE: i32 = 500;

impl Directory {
    /// Connects and binds as the policy says. A simple bind over plain
    /// `ldap://` is refused before the password file is even read unless it
    /// stays on this host or the policy allows it (see [`cleartext_bind`]).
    pub async fn connect(settings: &DirectorySettings) -> Result<Directory, DirectoryError> {
        let password = match &settings.bind {
            Bind::Simple { password_file, .. } => {
                allow_cleartext_bind(settings)?;
                Some(
                    read_password_file(password_file).map_err(|what| DirectoryError::Setup {
                        url: settings.url.clone(),
                        what,
                    })?,
                )
            }
            Bind::SaslExternal => None,
        };
        let mut dir = Directory::open(settings).await?;
        match (&settings.bind, password) {
            (Bind::Simple { user, .. }, Some(pw)) => dir.simple_bind(user, &pw).await?,
            _ => dir.sasl_external_bind().await?,
        }
        Ok(dir)
    }

    /// Connects over the settings' transport and binds as `user` with
    /// `password` instead: how the CA checks a WS-Security UsernameToken. An
    /// empty password is refused here, because LDAP treats a simple bind
    /// without one as anonymous (RFC 4513 5.1.2) and would "succeed".
    pub async fn connect_as(
        settings: &DirectorySettings,
        user: &str,
        password: &str,
    ) -> Result<Directory, DirectoryError> {
        allow_cleartext_bind(settings)?;
        let mut dir = Directory::open(settings).await?;
        dir.rebind(user, password).await?;
        Ok(dir)
    }

    /// Binds this connection again, as `user` with `password`: a pooled
    /// connection checks many passwords. Empty names and passwords are refused
    /// (an anonymous bind is not a login).
    pub async fn rebind(&mut self, user: &str, password: &str) -> Result<(), DirectoryError> {
        if password.is_empty() || user.is_empty() {
            return Err(DirectoryError::Bind {
                url: self.url.clone(),
                who: user.to_string(),
                cause: "an empty user name or password is an anonymous bind, not a login".into(),
            });
        }
        self.simple_bind(user, password).await
    }

    /// Connects (and upgrades with StartTLS when asked) without binding.
    async fn open(settings: &DirectorySettings) -> Result<Directory, DirectoryError> {
        let url = settings.url.clone();
        let mut conn = LdapConnSettings::new()
            .set_conn_timeout(settings.timeout)
            .set_starttls(settings.starttls);
        let tls = settings.starttls || url.to_ascii_lowercase().starts_with("ldaps://");
        if tls {
            let config =
                tls_config(settings.ca_file.as_deref()).map_err(|what| DirectoryError::Setup {
                    url: url.clone(),
                    what,
                })?;
            conn = conn.set_config(Arc::new(config));
        }
        let (driver, ldap) = LdapConnAsync::with_settings(conn, &url)
            .await
            .map_err(|e| DirectoryError::Connect {
                url: url.clone(),
                cause: describe(&e),
            })?;
        ldap3::drive!(driver);
        Ok(Directory {
            ldap,
            url,
            timeout: settings.timeout,
            searches: 0,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Searches issued on this connection so far.
    pub fn searches(&self) -> usize {
        self.searches
    }

    /// Simple bind. A name that is not a DN (`ws01$`, `alice@corp.example`,
    /// `CORP\alice`) is tried as given first (AD accepts those forms), then
    /// resolved to a DN by an anonymous search where the server allows it.
    async fn simple_bind(&mut self, user: &str, password: &str) -> Result<(), DirectoryError> {
        let url = self.url.clone();
        let refused = |cause: String| DirectoryError::Bind {
            url: url.clone(),
            who: user.to_string(),
            cause,
        };
        let result = self
            .ldap
            .with_timeout(self.timeout)
            .simple_bind(user, password)
            .await
            .map_err(|e| refused(describe(&e)))?;
        if result.rc == 0 {
            return Ok(());
        }
        // 34 invalidDNSyntax: a server that wants a DN.
        if result.rc == 34 && !looks_like_dn(user) {
            let dn = self.resolve_name(user).await.map_err(|e| {
                refused(format!(
                    "the server wants a DN and the name could not be resolved ({e}); put the account's DN in the policy"
                ))
            })?;
            let result = self
                .ldap
                .with_timeout(self.timeout)
                .simple_bind(&dn, password)
                .await
                .map_err(|e| refused(describe(&e)))?;
            if result.rc == 0 {
                return Ok(());
            }
            return Err(refused(ldap_result_text(&result)));
        }
        Err(refused(ldap_result_text(&result)))
    }

    async fn sasl_external_bind(&mut self) -> Result<(), DirectoryError> {
        let result = self
            .ldap
            .with_timeout(self.timeout)
            .sasl_external_bind()
            .await
            .map_err(|e| DirectoryError::Bind {
                url: self.url.clone(),
                who: "SASL EXTERNAL".into(),
                cause: describe(&e),
            })?;
        if result.rc != 0 {
            return Err(DirectoryError::Bind {
                url: self.url.clone(),
                who: "SASL EXTERNAL".into(),
                cause: ldap_result_text(&result),
            });
        }
        Ok(())
    }

    /// Finds the DN of an account named by `sAMAccountName`, UPN or
    /// `DOMAIN\name`, under the default naming context.
    pub async fn resolve_name(&mut self, name: &str) -> Result<String, DirectoryError> {
        let root = self.root_dse().await?;
        let base = root
            .string("defaultNamingContext")
            .ok()
            .flatten()
            .ok_or_else(|| DirectoryError::Content {
                url: self.url.clone(),
                what: "the rootDSE has no defaultNamingContext".into(),
            })?;
        let filter = account_filter(name);
        let found = self
            .search(&base, Scope::Subtree, &filter, &["1.1"], false)
            .await?;
        match found.as_slice() {
            [one] => Ok(one.dn.clone()),
            [] => Err(DirectoryError::Content {
                url: self.url.clone(),
                what: format!("no account matches {name:?} under {base}"),
            }),
            many => Err(DirectoryError::Content {
                url: self.url.clone(),
                what: format!("{} accounts match {name:?} under {base}", many.len()),
            }),
        }
    }

    /// A marker that changes when anything under `base` changes: the number
    /// of entries and the highest `modifyTimestamp`, `uSNChanged` (AD) and
    /// `entryCSN` (OpenLDAP). One search of attributes only, cheap enough to
    /// run every few minutes.
    pub async fn change_marker(&mut self, base: &str) -> Result<String, DirectoryError> {
        let entries = self
            .search(
                base,
                Scope::Subtree,
                "(objectClass=*)",
                &["modifyTimestamp", "uSNChanged", "entryCSN"],
                true,
            )
            .await?;
        let highest = |attr: &str| {
            entries
                .iter()
                .filter_map(|e| e.strings(attr).ok())
                .flatten()
                .max_by(|a, b| (a.len(), a).cmp(&(b.len(), b)))
                .unwrap_or_default()
        };
        Ok(format!(
            "{}/{}/{}/{}",
            entries.len(),
            highest("modifyTimestamp"),
            highest("uSNChanged"),
            highest("entryCSN")
        ))
    }

    /// The rootDSE (base search of the empty DN).
    pub async fn root_dse(&mut self) -> Result<Entry, DirectoryError> {
        let attrs = [
            "defaultNamingContext",
            "configurationNamingContext",
            "rootDomainNamingContext",
            "dnsHostName",
            "namingContexts",
        ];
        let mut found = self
            .search("", Scope::Base, "(objectClass=*)", &attrs, false)
            .await?;
        found.pop().ok_or_else(|| DirectoryError::Content {
            url: self.url.clone(),
            what: "the server returned no rootDSE".into(),
        })
    }

    /// One search, paged when `paged` (for result sets that can be large).
    /// Entries come back as [`Entry`]; a malformed one fails the search with a
    /// message instead of panicking. The SD-flags control rides on every search.
    pub async fn search(
        &mut self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
        paged: bool,
    ) -> Result<Vec<Entry>, DirectoryError> {
        self.searches += 1;
        let fail = |cause: String| DirectoryError::Search {
            url: self.url.clone(),
            base: base.to_string(),
            filter: filter.to_string(),
            cause,
        };
        let attrs: Vec<String> = attrs.iter().map(|a| a.to_string()).collect();
        let control = RawControl {
            ctype: SD_FLAGS_OID.into(),
            crit: false,
            val: Some(SD_FLAGS_OWNER_GROUP_DACL.to_vec()),
        };
        let ldap = self
            .ldap
            .with_controls(vec![control])
            .with_timeout(self.timeout);
        let mut stream = if paged {
            ldap.streaming_search_with(
                ldap3::adapters::PagedResults::new(PAGE_SIZE),
                base,
                scope,
                filter,
                attrs,
            )
            .await
        } else {
            ldap.streaming_search(base, scope, filter, attrs).await
        }
        .map_err(|e| fail(describe(&e)))?;
        let mut entries = Vec::new();
        loop {
            match stream.next().await {
                Ok(Some(re)) => {
                    if re.is_ref() || re.is_intermediate() {
                        continue;
                    }
                    entries.push(Entry::from_result(re).map_err(&fail)?);
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = stream.finish().await;
                    return Err(fail(describe(&e)));
                }
            }
        }
        let result = stream.finish().await;
        // 0 success; 32 noSuchObject is an empty result for a base that does not exist.
        match result.rc {
            0 => Ok(entries),
            32 => Ok(Vec::new()),
            _ => Err(fail(ldap_result_text(&result))),
        }
    }

    /// Writes are for the CA and the lab; the engine itself only reads.
    pub fn ldap(&mut self) -> &mut Ldap {
        &mut self.ldap
    }

    pub async fn close(mut self) {
        let _ = self.ldap.unbind().await;
    }
}

/// What a simple bind over these settings means for its password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cleartext {
    /// TLS (`ldaps://`, StartTLS) or a local socket (`ldapi://`).
    Protected,
    /// Plain `ldap://` to a loopback address: unencrypted, but it never
    /// leaves the host. Allowed, with a warning.
    Loopback,
    /// Plain `ldap://` across the network, allowed by `allow_cleartext`.
    /// Allowed, with a warning.
    Allowed,
    /// Plain `ldap://` across the network without `allow_cleartext`: refused.
    Refused,
}

/// Decides whether a simple bind may send its password over `settings`
/// (RFC 4513 6.3.1: simple bind without TLS exposes the password; a client
/// should refuse it by default). Pure: the URL is read, no name is resolved
/// (a resolver may lie; only the name `localhost` and loopback literals
/// count as this host).
pub fn cleartext_bind(settings: &DirectorySettings) -> Cleartext {
    let url = settings.url.trim();
    let Some(rest) = url
        .split_once("://")
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("ldap"))
        .map(|(_, rest)| rest)
    else {
        return Cleartext::Protected;
    };
    if settings.starttls {
        return Cleartext::Protected;
    }
    if is_loopback_host(url_host(rest)) {
        Cleartext::Loopback
    } else if settings.allow_cleartext {
        Cleartext::Allowed
    } else {
        Cleartext::Refused
    }
}

/// The host of an LDAP URL's authority (`host`, `host:port`, `[v6]:port`).
fn url_host(after_scheme: &str) -> &str {
    let authority = after_scheme
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    }
}

/// Loopback: an empty host (the local default, as in `ldap:///`),
/// `localhost`, 127.0.0.0/8, `::1` or `::ffff:127.x.y.z`.
fn is_loopback_host(host: &str) -> bool {
    if host.is_empty() || host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => v4.is_loopback(),
        Ok(std::net::IpAddr::V6(v6)) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => false,
    }
}

/// Applies [`cleartext_bind`] before a simple bind: refused with an error
/// that names the setting, or allowed with a warning (once per URL in a
/// process: the worker reconnects every few minutes).
fn allow_cleartext_bind(settings: &DirectorySettings) -> Result<(), DirectoryError> {
    let warning = match cleartext_bind(settings) {
        Cleartext::Protected => return Ok(()),
        Cleartext::Refused => {
            return Err(DirectoryError::Setup {
                url: settings.url.clone(),
                what: "a simple bind over plain ldap:// would send the password in cleartext; \
                       use ldaps:// or `starttls = true`, or set `allow_cleartext = true` in \
                       the [directory] section (directory.allow_cleartext) to accept the risk \
                       (loopback addresses need neither)"
                    .into(),
            });
        }
        Cleartext::Loopback => {
            "simple bind over plain ldap:// to a loopback address: the password is not \
             encrypted, but stays on this host"
        }
        Cleartext::Allowed => {
            "simple bind over plain ldap:// across the network: the password crosses it in \
             cleartext (allowed by directory.allow_cleartext = true)"
        }
    };
    static WARNED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let first = WARNED.lock().map_or(true, |mut warned| {
        let first = !warned.contains(&settings.url);
        if first {
            warned.push(settings.url.clone());
        }
        first
    });
    if first {
        tracing::warn!(url = %settings.url, "{warning}");
    }
    Ok(())
}

/// TLS settings: roots from `ca_file` (PEM) or the system's store; aws-lc-rs.
fn tls_config(ca_file: Option<&std::path::Path>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem =
                std::fs::read(path).map_err(|e| format!("CA file {}: {e}", path.display()))?;
            let mut n = 0;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.map_err(|e| format!("CA file {}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("CA file {}: {e}", path.display()))?;
                n += 1;
            }
            if n == 0 {
                return Err(format!(
                    "CA file {}: no PEM certificate in it",
                    path.display()
                ));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err("no system CA certificates found; set directory.ca_file".into());
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The error with its causes, on one line (a TLS failure is often two levels down).
pub(crate) fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let t = s.to_string();
        if !text.contains(&t) {
            text.push_str(": ");
            text.push_str(&t);
        }
        source = s.source();
    }
    text
}

pub(crate) fn ldap_result_text(r: &ldap3::LdapResult) -> String {
    let name = match r.rc {
        32 => "noSuchObject",
        34 => "invalidDNSyntax",
        48 => "inappropriateAuthentication",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        53 => "unwillingToPerform",
        _ => "",
    };
    let mut text = format!("result code {}", r.rc);
    if !name.is_empty() {
        text = format!("{text} ({name})");
    }
    if !r.text.is_empty() {
        text = format!("{text}: {}", r.text);
    }
    text
}

fn looks_like_dn(name: &str) -> bool {
    name.contains('=')
}

/// The filter that finds an account by `sAMAccountName`, UPN or `DOMAIN\name`.
pub fn account_filter(name: &str) -> String {
    let short = name.rsplit('\\').next().unwrap_or(name);
    let esc = |s: &str| ldap3::ldap_escape(s).into_owned();
    if name.contains('@') {
        format!("(userPrincipalName={})", esc(name))
    } else {
        format!("(sAMAccountName={})", esc(short))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str, starttls: bool, allow_cleartext: bool) -> DirectorySettings {
        DirectorySettings {
            url: url.into(),
            starttls,
            ca_file: None,
            timeout: Duration::from_secs(1),
            bind: Bind::Simple {
                user: "u".into(),
                password_file: "/nonexistent/password".into(),
            },
            allow_cleartext,
        }
    }

    #[test]
    fn cleartext_simple_binds_only_to_loopback_or_when_allowed() {
        use Cleartext::*;
        let cases: &[(&str, bool, bool, Cleartext)] = &[
            ("ldaps://dc01.corp.example", false, false, Protected),
            ("ldap://dc01.corp.example", true, false, Protected),
            ("ldapi://%2Frun%2Fldapi", false, false, Protected),
            ("ldap://dc01.corp.example", false, false, Refused),
            ("LDAP://dc01.corp.example:389/", false, false, Refused),
            ("ldap://10.0.0.5", false, false, Refused),
            ("ldap://[fe80::1]:389", false, false, Refused),
            ("ldap://localhost.evil.example", false, false, Refused),
            ("ldap://127.0.0.1.nip.io", false, false, Refused),
            ("ldap://dc01.corp.example", false, true, Allowed),
            ("ldap://127.0.0.1:3389", false, false, Loopback),
            ("ldap://127.8.9.10", false, false, Loopback),
            ("ldap://localhost", false, false, Loopback),
            ("ldap://LOCALHOST:389/dc=x", false, false, Loopback),
            ("ldap://[::1]:389", false, false, Loopback),
            ("ldap://[::ffff:127.0.0.1]", false, false, Loopback),
            ("ldap:///", false, false, Loopback),
            ("ldap://127.0.0.1", false, true, Loopback),
        ];
        for (url, starttls, allow, want) in cases {
            assert_eq!(
                cleartext_bind(&settings(url, *starttls, *allow)),
                *want,
                "{url} starttls={starttls} allow_cleartext={allow}"
            );
        }
    }

    /// The refusal comes before anything is read or sent: the password file
    /// does not exist and 192.0.2.1 (TEST-NET-1) is never contacted.
    #[tokio::test]
    async fn a_cleartext_bind_across_the_network_is_refused_before_connecting() {
        let s = settings("ldap://192.0.2.1", false, false);
        let err = Directory::connect(&s).await.err().expect("refused");
        let text = err.to_string();
        assert!(
            text.contains("cleartext") && text.contains("directory.allow_cleartext"),
            "{text}"
        );
        let err = Directory::connect_as(&s, "u", "pw")
            .await
            .err()
            .expect("refused");
        assert!(err.to_string().contains("allow_cleartext"), "{err}");
        // Allowed: it goes on to read the password file (which is missing).
        let s = settings("ldap://192.0.2.1", false, true);
        let err = Directory::connect(&s)
            .await
            .err()
            .expect("no password file");
        assert!(err.to_string().contains("/nonexistent/password"), "{err}");
    }

    #[test]
    fn account_filters() {
        assert_eq!(account_filter("ws01$"), "(sAMAccountName=ws01$)");
        assert_eq!(account_filter("CORP\\alice"), "(sAMAccountName=alice)");
        assert_eq!(
            account_filter("alice@corp.example"),
            "(userPrincipalName=alice@corp.example)"
        );
        assert_eq!(account_filter("a*)(x"), "(sAMAccountName=a\\2a\\29\\28x)");
    }
}
