//! The LDAP connection: `ldap://` (optionally StartTLS), `ldaps://` and
//! `ldapi://`; simple bind, SASL GSSAPI (Kerberos) or SASL EXTERNAL; a
//! timeout on every operation.
//! Errors name the URL and the cause so an administrator can act on them.

use std::sync::Arc;
use std::time::Duration;

use ldap3::controls::RawControl;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope};
use thiserror::Error;

use super::entry::Entry;
use super::snapshot::NamingContexts;
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
    #[error("{url}: Kerberos: {cause}")]
    Kerberos { url: String, cause: String },
}

/// The TCP connection of an `ldap://` or `ldaps://` URL, opened here with
/// Nagle's algorithm off: LDAP sends small messages and waits for each
/// answer, and the LDAP library's own connection leaves Nagle on, so each
/// TLS handshake and bind stalled on delayed acknowledgements (about 40 ms
/// each). `None` for `ldapi://`, which the library opens itself.
async fn tcp_no_delay(
    url: &str,
    timeout: Duration,
) -> Result<Option<std::net::TcpStream>, DirectoryError> {
    let Some((host, port)) = tcp_target(url) else {
        return Ok(None);
    };
    let connect = |cause: String| DirectoryError::Connect {
        url: url.to_string(),
        cause,
    };
    let stream = tokio::time::timeout(
        timeout,
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    .map_err(|_| {
        connect(format!(
            "no connection within {}",
            humantime::format_duration(timeout)
        ))
    })?
    .map_err(|e| connect(format!("I/O error: {e}")))?;
    stream
        .set_nodelay(true)
        .and_then(|()| stream.into_std())
        .map(Some)
        .map_err(|e| connect(format!("I/O error: {e}")))
}

/// The host and port an `ldap://` or `ldaps://` URL names (389 and 636 by
/// default; `[v6]` literals; an empty host is `localhost`, as the LDAP
/// library takes it); `None` for any other scheme.
fn tcp_target(url: &str) -> Option<(String, u16)> {
    let lower = url.to_ascii_lowercase();
    let (rest, default_port) = if let Some(r) = lower.strip_prefix("ldap://") {
        (r, 389)
    } else if let Some(r) = lower.strip_prefix("ldaps://") {
        (r, 636)
    } else {
        return None;
    };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((h, p)) => (h, p.strip_prefix(':').and_then(|p| p.parse().ok())),
            None => (v6, None),
        },
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().ok()),
            None => (authority, None),
        },
    };
    let host = if host.is_empty() { "localhost" } else { host };
    Some((host.to_string(), port.unwrap_or(default_port)))
}

/// Signature algorithms whose certificates have a tls-server-end-point
/// channel binding (RFC 5929 4.1: MD5 and SHA-1 map to SHA-256): RSA
/// PKCS#1 v1.5 with MD5, SHA-1, SHA-256/384/512, and ECDSA with
/// SHA-256/384/512. The LDAP library hashes exactly these.
const CHANNEL_BINDING_ALGORITHMS: [&str; 8] = [
    "1.2.840.113549.1.1.4",
    "1.2.840.113549.1.1.5",
    "1.2.840.113549.1.1.11",
    "1.2.840.113549.1.1.12",
    "1.2.840.113549.1.1.13",
    "1.2.840.10045.4.3.2",
    "1.2.840.10045.4.3.3",
    "1.2.840.10045.4.3.4",
];

/// The host part of the directory's SPN (`ldap/<host>`): the host of the
/// URL as written. `ldapi://` has no host, and Kerberos does not run over it.
pub fn spn_host(url: &str) -> Result<String, String> {
    let lower = url.to_ascii_lowercase();
    let rest = ["ldap://", "ldaps://"]
        .iter()
        .find_map(|s| lower.starts_with(s).then(|| &url[s.len()..]))
        .ok_or_else(|| {
            "a Kerberos bind needs an ldap:// or ldaps:// URL naming the domain controller"
                .to_string()
        })?;
    let authority = rest.split('/').next().unwrap_or("");
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("").to_string()
    } else {
        authority.split(':').next().unwrap_or("").to_string()
    };
    if host.is_empty() {
        return Err("a Kerberos bind needs the domain controller's host name in the URL".into());
    }
    Ok(host.to_ascii_lowercase())
}

/// The account of an RFC 4532 authzId: `dn:<DN>` gives the DN, `u:<name>`
/// the name (AD answers `u:CORP\ws01$`).
pub fn identity_of_authzid(authzid: &str) -> Result<String, String> {
    let text = authzid.trim();
    let id = if let Some(dn) = text.strip_prefix("dn:") {
        dn.trim()
    } else if let Some(u) = text.strip_prefix("u:") {
        u.trim()
    } else {
        text
    };
    if id.is_empty() {
        return Err(format!(
            "the server says this connection is bound as {authzid:?}: no account"
        ));
    }
    Ok(id.to_string())
}

/// An open, bound connection. It counts its searches so that tests and the
/// benchmark can hold the snapshot to a fixed number of round trips.
pub struct Directory {
    ldap: Ldap,
    url: String,
    timeout: Duration,
    searches: usize,
    /// The account the server says this connection is bound as (LDAP Who am
    /// I?, RFC 4532), after a Kerberos bind.
    identity: Option<String>,
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
            Bind::SaslExternal | Bind::Kerberos(_) => None,
        };
        if let Bind::Kerberos(source) = &settings.bind {
            return match &settings.discovery {
                Some(discovery) => Directory::connect_discovered(settings, source, discovery).await,
                None => Directory::connect_kerberos(settings, source).await,
            };
        }
        let mut dir = Directory::open(settings).await?;
        match (&settings.bind, password) {
            (Bind::Simple { user, .. }, Some(pw)) => dir.simple_bind(user, &pw).await?,
            _ => dir.sasl_external_bind().await?,
        }
        Ok(dir)
    }

    /// Kerberos: credentials first (a keytab into the private cache, or the
    /// user's cache) and a ticket for `ldap/<host of the URL>`, so that a
    /// Kerberos failure is one error naming its cause before anything is
    /// sent; then the SASL GSSAPI bind, with tls-server-end-point channel
    /// binding on TLS (RFC 5929 4.1; what AD's LDAP channel binding
    /// enforcement checks) and the GSS-API confidentiality layer on plain
    /// `ldap://` (RFC 4752 3.3). The SPN's host is the one in the URL, never
    /// one found by reverse DNS.
    async fn connect_kerberos(
        settings: &DirectorySettings,
        source: &crate::krb::CredentialSource,
    ) -> Result<Directory, DirectoryError> {
        let url = settings.url.clone();
        let host = spn_host(&url).map_err(|what| DirectoryError::Setup {
            url: url.clone(),
            what,
        })?;
        let kerberos = |e: crate::krb::KrbError| DirectoryError::Kerberos {
            url: url.clone(),
            cause: e.to_string(),
        };
        let (source, spn_host) = (source.clone(), host.clone());
        let creds = tokio::task::spawn_blocking(move || {
            crate::krb::Credentials::acquire_for(&source, "ldap", &spn_host)
        })
        .await
        .map_err(|e| DirectoryError::Setup {
            url: url.clone(),
            what: format!("the Kerberos task failed: {e}"),
        })?
        .map_err(kerberos)?;
        let mut dir = Directory::open(settings).await?;
        let tls = settings.starttls || url.to_ascii_lowercase().starts_with("ldaps://");
        if tls {
            dir.check_channel_binding().await?;
        }
        let who = format!("{} (Kerberos, {})", creds.principal(), creds.source());
        let refused = |cause: String| DirectoryError::Bind {
            url: url.clone(),
            who: who.clone(),
            cause,
        };
        let result = dir
            .ldap
            .with_timeout(dir.timeout)
            .sasl_gssapi_cred_bind(creds.gss().into(), &host)
            .await
            .map_err(|e| refused(describe(&e)))?;
        if result.rc != 0 {
            return Err(refused(ldap_result_text(&result)));
        }
        // Samba answers Who am I? with "not supported": the principal's
        // own name is then the account (`WS01$@CORP.EXAMPLE` is the implicit
        // UPN of the computer, which `snapshot` resolves by sAMAccountName).
        dir.identity = Some(match dir.who_am_i().await.map_err(refused)? {
            Some(id) => id,
            None => creds.principal().to_string(),
        });
        Ok(dir)
    }

    /// A Kerberos bind to the domain's controllers found in DNS: the domain
    /// is the policy's, or the realm of the principal in lower case; the DCs
    /// are tried in the locator records' order (RFC 2782), the next one when
    /// one cannot be reached. A refused bind is not retried elsewhere: every
    /// DC of a domain would refuse it alike.
    async fn connect_discovered(
        settings: &DirectorySettings,
        source: &crate::krb::CredentialSource,
        discovery: &crate::policy::Discovery,
    ) -> Result<Directory, DirectoryError> {
        let setup = |what: String| DirectoryError::Setup {
            url: "DC discovery".into(),
            what,
        };
        let domain = match &discovery.domain {
            Some(d) => d.clone(),
            None => {
                let source = source.clone();
                let realm =
                    tokio::task::spawn_blocking(move || crate::krb::creds::realm_of(&source))
                        .await
                        .map_err(|e| setup(format!("the Kerberos task failed: {e}")))?
                        .map_err(|e| DirectoryError::Kerberos {
                            url: "DC discovery".into(),
                            cause: e.to_string(),
                        })?;
                realm.to_ascii_lowercase()
            }
        };
        let dcs = super::discovery::discover(
            &domain,
            discovery.site.as_deref(),
            &discovery.dns_servers,
            settings.timeout,
        )
        .await
        .map_err(|e| setup(e.to_string()))?;
        let mut unreachable = Vec::new();
        for dc in dcs {
            let mut one = settings.clone();
            one.url = format!("ldap://{}:{}", dc.host, dc.port);
            one.discovery = None;
            match Directory::connect_kerberos(&one, source).await {
                Ok(dir) => {
                    if !unreachable.is_empty() {
                        tracing::warn!(
                            "{} answered after {} did not: {}",
                            one.url,
                            unreachable.len(),
                            unreachable.join("; ")
                        );
                    }
                    return Ok(dir);
                }
                Err(DirectoryError::Connect { url, cause }) => {
                    unreachable.push(format!("{url}: {cause}"));
                }
                Err(e) => return Err(e),
            }
        }
        Err(DirectoryError::Connect {
            url: format!("every domain controller of {domain}"),
            cause: unreachable.join("; "),
        })
    }

    /// The channel binding of a TLS connection is the hash of the server's
    /// certificate with the hash of its signature algorithm (RFC 5929 4.1).
    /// For an algorithm without one (Ed25519, say) the LDAP library would
    /// bind without channel binding, silently: refuse instead, since a DC
    /// that enforces channel binding refuses such a bind and one that does
    /// not would be bound without it.
    async fn check_channel_binding(&mut self) -> Result<(), DirectoryError> {
        let fail = |what: String| DirectoryError::Setup {
            url: self.url.clone(),
            what,
        };
        let der = self
            .ldap
            .get_peer_certificate()
            .await
            .map_err(|e| fail(format!("reading the server's certificate: {e}")))?
            .ok_or_else(|| fail("the TLS server sent no certificate".into()))?;
        let oid = x509_parser::parse_x509_certificate(&der)
            .map(|(_, c)| c.signature_algorithm.algorithm.to_id_string())
            .map_err(|e| fail(format!("the server's certificate cannot be parsed: {e}")))?;
        if CHANNEL_BINDING_ALGORITHMS.contains(&oid.as_str()) {
            Ok(())
        } else {
            Err(fail(format!(
                "the server's certificate is signed with {oid}, for which there is no \
                 tls-server-end-point channel binding (RFC 5929 4.1): a Kerberos bind over TLS \
                 needs an RSA or ECDSA server certificate"
            )))
        }
    }

    /// LDAP "Who am I?" (RFC 4532): `dn:<DN>` (OpenLDAP) or `u:DOMAIN\name`
    /// (AD), returned as the DN or the name, both forms `snapshot` resolves;
    /// `None` from a server that does not support the operation (Samba:
    /// protocolError, or unwillingToPerform).
    async fn who_am_i(&mut self) -> Result<Option<String>, String> {
        let ldap3::result::ExopResult(exop, result) = self
            .ldap
            .with_timeout(self.timeout)
            .extended(ldap3::exop::WhoAmI)
            .await
            .map_err(|e| describe(&e))?;
        match result.rc {
            0 => {}
            2 | 53 => return Ok(None),
            _ => return Err(format!("Who am I? failed: {}", ldap_result_text(&result))),
        }
        let text = exop
            .val
            .map(|v| String::from_utf8_lossy(&v[..]).into_owned())
            .unwrap_or_default();
        identity_of_authzid(&text).map(Some)
    }

    /// The account this connection is bound as, after a Kerberos bind.
    pub fn identity(&self) -> Option<&str> {
        self.identity.as_deref()
    }

    /// The account a policy manages: the one it names, else the bound identity.
    pub fn account_for(&self, named: Option<&str>) -> Result<String, DirectoryError> {
        match (named, &self.identity) {
            (Some(a), _) => Ok(a.to_string()),
            (None, Some(id)) => Ok(id.clone()),
            (None, None) => Err(DirectoryError::Content {
                url: self.url.clone(),
                what: "the policy names no account and the bind has no identity".into(),
            }),
        }
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
        if let Some(stream) = tcp_no_delay(&url, settings.timeout).await? {
            conn = conn.set_std_stream(ldap3::StdStream::Tcp(stream));
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
            identity: None,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Searches issued on this connection so far.
    pub fn searches(&self) -> usize {
        self.searches
    }

    /// Simple bind, with the name exactly as given. A name that is not a DN
    /// (`alice@corp.example`, `ws01$@corp.example`, `CORP\alice`, `ws01$`)
    /// is not looked up first: that would take an anonymous search, which
    /// AD and the lab refuse. AD resolves those forms itself ([MS-ADTS]
    /// 5.1.1.1.1); a server that takes only DNs (OpenLDAP) refuses them, and
    /// the error then names the form used and what servers accept.
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
        let mut cause = ldap_result_text(&result);
        // 34 invalidDNSyntax (OpenLDAP: not a DN), 49 invalidCredentials.
        let form = NameForm::of(user);
        if matches!(result.rc, 34 | 49) && form != NameForm::Dn {
            cause.push_str(&non_dn_bind_hint(&form));
        }
        Err(refused(cause))
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

    /// Finds the one account `name` designates, in any AD name form (see
    /// [`NameForm`]), with one search of the domain NC (`naming.default`)
    /// in which every value is escaped (RFC 4515 3); `DOMAIN\name` first
    /// reads the domain's NetBIOS name from its crossRef. No match, several
    /// matches, a foreign domain or a malformed DN are all
    /// [`DirectoryError::Content`], whose text says which forms were tried.
    pub async fn resolve_account(
        &mut self,
        name: &str,
        naming: &NamingContexts,
    ) -> Result<ResolvedAccount, DirectoryError> {
        let form = NameForm::of(name);
        let netbios = match &form {
            NameForm::DownLevel { .. } => self.netbios_name(naming).await?,
            _ => None,
        };
        let domain = DomainNames {
            nc: naming.default.clone(),
            dns: dns_domain_of(&naming.default),
            netbios,
        };
        let url = self.url.clone();
        let no_match = |what: String| DirectoryError::Content {
            url: url.clone(),
            what,
        };
        let lookup = account_lookup(name, &form, &domain).map_err(no_match)?;
        // A DN is read whole (a base search, so AD computes tokenGroups): the
        // caller that reads the account next can take it from here.
        let base = lookup.scope == Scope::Base;
        let attrs: &[&str] = if base {
            &super::snapshot::ACCOUNT_ATTRS
        } else {
            &["sAMAccountName", "userPrincipalName"]
        };
        let found = match self
            .search(&lookup.base, lookup.scope, &lookup.filter, attrs, false)
            .await
        {
            Ok(found) => found,
            // A DN the server cannot parse designates no account.
            Err(DirectoryError::Search { cause, .. })
                if form == NameForm::Dn && cause.starts_with("result code 34") =>
            {
                Vec::new()
            }
            Err(e) => return Err(e),
        };
        let candidates: Vec<Candidate> = found.iter().map(Candidate::of).collect();
        let dn = pick_account(name, &form, &domain, &candidates)
            .map_err(|why| no_match(format!("{why} (tried {})", lookup.tried.join("; "))))?;
        let entry = if base {
            found.into_iter().find(|e| e.dn == dn)
        } else {
            None
        };
        Ok(ResolvedAccount { dn, form, entry })
    }

    /// The NetBIOS name of the domain: `nETBIOSName` of the crossRef under
    /// `CN=Partitions` of the Configuration NC whose `nCName` is the domain
    /// NC ([MS-ADTS] 6.1.1.2.1.1.5). `None` when the directory has none.
    pub async fn netbios_name(
        &mut self,
        naming: &NamingContexts,
    ) -> Result<Option<String>, DirectoryError> {
        let base = format!("CN=Partitions,{}", naming.configuration);
        let filter = format!(
            "(&(objectClass=crossRef)(nCName={}))",
            ldap3::ldap_escape(&naming.default)
        );
        let found = self
            .search(&base, Scope::OneLevel, &filter, &["nETBIOSName"], false)
            .await?;
        Ok(found
            .iter()
            .find_map(|e| e.string("nETBIOSName").ok().flatten()))
    }

    /// A marker that changes when anything a snapshot reads under `base`
    /// (Public Key Services) changes: the number of those entries and their
    /// highest `modifyTimestamp`, `uSNChanged` (AD) and `entryCSN`
    /// (OpenLDAP). One search of three attributes, cheap enough for every
    /// CA request and the worker's checks.
    ///
    /// It uses the snapshot's own filter, not `(objectClass=*)`: OpenLDAP's
    /// back-mdb answers a presence filter with every entry of the database
    /// as candidates and checks each one's ancestry against the scope, so
    /// that search cost grew with the number of accounts in the domain
    /// (more than half of slapd's CPU per issuance at 10,000 accounts),
    /// while an equality filter on the indexed `objectClass` yields only
    /// the PKI objects.
    pub async fn change_marker(&mut self, base: &str) -> Result<String, DirectoryError> {
        let entries = self
            .search(
                base,
                Scope::Subtree,
                super::snapshot::PKS_FILTER,
                &MARKER_ATTRS,
                true,
            )
            .await?;
        Ok(change_marker_of(&entries))
    }

    /// The rootDSE (base search of the empty DN), with the server's change
    /// value when it keeps one there (AD: [`super::server_marker`]).
    pub async fn root_dse(&mut self) -> Result<Entry, DirectoryError> {
        let attrs = [
            "defaultNamingContext",
            "configurationNamingContext",
            "rootDomainNamingContext",
            "dnsHostName",
            "namingContexts",
            super::server_marker::ROOT_ATTRS[0],
            super::server_marker::ROOT_ATTRS[1],
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

/// The forms of an account name that Active Directory accepts ([MS-ADTS]
/// 5.1.1.1.1 for simple binds; [MS-DRSR] 4.1.4.2.2 DS_NAME_FORMAT for the
/// names themselves), as this client and the CA tell them apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameForm {
    /// `CN=ws01,CN=Computers,DC=corp,DC=example`.
    Dn,
    /// `CORP\alice`: NetBIOS domain name, backslash, `sAMAccountName`.
    DownLevel { domain: String, name: String },
    /// `alice@corp.example` (a `userPrincipalName`) or the implicit UPN
    /// `sAMAccountName@<DNS domain>` that every account has, computers
    /// included (they have no `userPrincipalName`).
    Principal { name: String, domain: String },
    /// `ws01$`, `alice`: a `sAMAccountName` alone.
    SamAccountName,
}

impl NameForm {
    /// Tells the form by its shape: a DN has `type=` before its first
    /// separator (an attribute type is letters, digits and hyphens, or a
    /// dotted OID: RFC 4514 3), a `\` makes a down-level name, an `@` a
    /// principal name. A `sAMAccountName` may hold none of `\ = @` in AD
    /// ([MS-SAMR] 3.1.1.6 forbids `" / \ [ ] : ; | = , + * ? < >`), so the
    /// shapes do not overlap for real accounts.
    pub fn of(name: &str) -> NameForm {
        if looks_like_dn(name) {
            return NameForm::Dn;
        }
        if let Some((domain, user)) = name.split_once('\\') {
            return NameForm::DownLevel {
                domain: domain.to_string(),
                name: user.to_string(),
            };
        }
        if let Some((user, domain)) = name.rsplit_once('@') {
            return NameForm::Principal {
                name: user.to_string(),
                domain: domain.to_string(),
            };
        }
        NameForm::SamAccountName
    }

    /// The form's name in messages.
    pub fn describe(&self) -> &'static str {
        match self {
            NameForm::Dn => "a DN",
            NameForm::DownLevel { .. } => "a down-level name (DOMAIN\\name)",
            NameForm::Principal { .. } => "a user principal name (UPN or implicit UPN)",
            NameForm::SamAccountName => "a sAMAccountName alone",
        }
    }
}

fn looks_like_dn(name: &str) -> bool {
    let Some((attr, _)) = name.split_once('=') else {
        return false;
    };
    let attr = attr.trim();
    let keyword = attr.starts_with(|c: char| c.is_ascii_alphabetic())
        && attr.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    let oid = !attr.is_empty()
        && attr
            .split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    keyword || oid
}

/// An account found by [`Directory::resolve_account`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedAccount {
    pub dn: String,
    /// The form the name was given in.
    pub form: NameForm,
    /// The account's entry with every attribute a snapshot reads, when the
    /// name was a DN (read by a base search).
    pub entry: Option<Entry>,
}

/// What a name is resolved against: the domain NC, its DNS name and its
/// NetBIOS name (when the directory has a crossRef for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainNames {
    pub nc: String,
    pub dns: String,
    pub netbios: Option<String>,
}

/// The DNS name of a domain NC: its `DC=` components joined by dots
/// (RFC 2247 4; AD names every domain NC so).
pub fn dns_domain_of(nc: &str) -> String {
    nc.split(',')
        .filter_map(|rdn| {
            let (attr, value) = rdn.split_once('=')?;
            attr.trim()
                .eq_ignore_ascii_case("dc")
                .then(|| value.trim().to_ascii_lowercase())
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// One search that finds the candidates for a name, and what it tries.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountLookup {
    pub base: String,
    pub scope: Scope,
    pub filter: String,
    /// The forms tried, for the message when nothing (or too much) matches.
    pub tried: Vec<String>,
}

/// Accounts only: users and computers (`computer` is a subclass of `user`
/// in AD and in the lab's schema). Groups also have a `sAMAccountName`.
const ACCOUNT_CLASS: &str = "(objectClass=user)";

/// The search for `name` in `form`: a base search of a DN, else a subtree
/// search of the domain NC. Every value is escaped (RFC 4515 3), so `*`,
/// `(`, `)` and `\` in a name match themselves only. Fails, without a
/// search, for a down-level name of another domain.
pub fn account_lookup(
    name: &str,
    form: &NameForm,
    domain: &DomainNames,
) -> Result<AccountLookup, String> {
    let esc = |s: &str| ldap3::ldap_escape(s).into_owned();
    let subtree = |filter: String, tried: Vec<String>| AccountLookup {
        base: domain.nc.clone(),
        scope: Scope::Subtree,
        filter: format!("(&{ACCOUNT_CLASS}{filter})"),
        tried,
    };
    Ok(match form {
        NameForm::Dn => AccountLookup {
            base: name.to_string(),
            scope: Scope::Base,
            filter: ACCOUNT_CLASS.to_string(),
            tried: vec![format!("the DN {name:?}")],
        },
        NameForm::SamAccountName => subtree(
            format!("(sAMAccountName={})", esc(name)),
            vec![format!("sAMAccountName={name:?} under {}", domain.nc)],
        ),
        NameForm::DownLevel { domain: d, name: n } => {
            let ours = domain
                .netbios
                .as_deref()
                .is_some_and(|nb| nb.eq_ignore_ascii_case(d))
                || domain.dns.eq_ignore_ascii_case(d);
            if !ours {
                let netbios = match &domain.netbios {
                    Some(nb) => format!("NetBIOS name {nb}"),
                    None => "no NetBIOS name in the directory (no crossRef under CN=Partitions)"
                        .to_string(),
                };
                return Err(format!(
                    "{name:?} is a down-level name of domain {d:?}, which is not this domain \
                     ({}: {netbios}, DNS name {}) (tried DOMAIN\\name against the domain's \
                     crossRef)",
                    domain.nc, domain.dns
                ));
            }
            subtree(
                format!("(sAMAccountName={})", esc(n)),
                vec![format!("{d}\\ as this domain, then sAMAccountName={n:?}")],
            )
        }
        NameForm::Principal { name: n, domain: d } => {
            if domain.dns.eq_ignore_ascii_case(d) {
                subtree(
                    format!(
                        "(|(userPrincipalName={})(sAMAccountName={}))",
                        esc(name),
                        esc(n)
                    ),
                    vec![
                        format!("userPrincipalName={name:?}"),
                        format!("the implicit UPN sAMAccountName={n:?} @ {}", domain.dns),
                    ],
                )
            } else {
                subtree(
                    format!("(userPrincipalName={})", esc(name)),
                    vec![format!(
                        "userPrincipalName={name:?} (no implicit UPN: {d} is not {})",
                        domain.dns
                    )],
                )
            }
        }
    })
}

/// An entry a lookup returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub dn: String,
    pub sam_account_name: Option<String>,
    pub upn: Option<String>,
}

impl Candidate {
    fn of(e: &Entry) -> Candidate {
        Candidate {
            dn: e.dn.clone(),
            sam_account_name: e.string("sAMAccountName").ok().flatten(),
            upn: e.string("userPrincipalName").ok().flatten(),
        }
    }
}

/// The one account among `found`. A principal name is first an explicit
/// `userPrincipalName`, then the implicit UPN (as AD tries them, [MS-ADTS]
/// 5.1.1.1.1); every other form needs exactly one entry. Several matches
/// are refused, never guessed between.
pub fn pick_account(
    name: &str,
    form: &NameForm,
    domain: &DomainNames,
    found: &[Candidate],
) -> Result<String, String> {
    let one = |list: Vec<&Candidate>, what: &str| match list.as_slice() {
        [c] => Ok(Some(c.dn.clone())),
        [] => Ok(None),
        many => Err(format!(
            "{} accounts match {name:?} as {what}, none is chosen",
            many.len()
        )),
    };
    let chosen = match form {
        NameForm::Principal { name: n, domain: d } => {
            let explicit = found
                .iter()
                .filter(|c| {
                    c.upn
                        .as_deref()
                        .is_some_and(|u| u.eq_ignore_ascii_case(name))
                })
                .collect();
            match one(explicit, "a userPrincipalName")? {
                Some(dn) => Some(dn),
                None if domain.dns.eq_ignore_ascii_case(d) => {
                    let implicit = found
                        .iter()
                        .filter(|c| {
                            c.sam_account_name
                                .as_deref()
                                .is_some_and(|s| s.eq_ignore_ascii_case(n))
                        })
                        .collect();
                    one(implicit, "an implicit UPN")?
                }
                None => None,
            }
        }
        _ => one(found.iter().collect(), form.describe())?,
    };
    chosen.ok_or_else(|| format!("no account matches {name:?} under {}", domain.nc))
}

/// What a refused simple bind with a name that is not a DN adds to its
/// error: the form used, and which forms which servers take.
fn non_dn_bind_hint(form: &NameForm) -> String {
    format!(
        "; the name was sent as given ({}), without any lookup: Active Directory takes a DN, \
         a UPN (alice@corp.example), the implicit UPN of any account (ws01$@corp.example) \
         or DOMAIN\\name in a simple bind; a server that takes only DNs (OpenLDAP, the lab) \
         refuses every other form; a DN always works",
        form.describe()
    )
}

/// What [`change_marker_of`] reads of each entry.
pub const MARKER_ATTRS: [&str; 3] = ["modifyTimestamp", "uSNChanged", "entryCSN"];

/// The change marker ([`Directory::change_marker`]) of `entries`, the result
/// of a search of Public Key Services that asked for [`MARKER_ATTRS`]: a
/// read of everything that asks for them too gives its own marker, exactly
/// as a marker search made at that moment would.
pub fn change_marker_of(entries: &[Entry]) -> String {
    let highest = |attr: &str| {
        entries
            .iter()
            .filter_map(|e| e.strings(attr).ok())
            .flatten()
            .max_by(|a, b| (a.len(), a).cmp(&(b.len(), b)))
            .unwrap_or_default()
    };
    format!(
        "{}/{}/{}/{}",
        entries.len(),
        highest("modifyTimestamp"),
        highest("uSNChanged"),
        highest("entryCSN")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str, starttls: bool, allow_cleartext: bool) -> DirectorySettings {
        DirectorySettings {
            url: url.into(),
            discovery: None,
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

    fn corp(netbios: Option<&str>) -> DomainNames {
        DomainNames {
            nc: "DC=corp,DC=example".into(),
            dns: dns_domain_of("DC=corp,DC=example"),
            netbios: netbios.map(str::to_string),
        }
    }

    #[test]
    fn name_forms_are_told_apart_by_shape() {
        let down = |d: &str, n: &str| NameForm::DownLevel {
            domain: d.into(),
            name: n.into(),
        };
        let upn = |n: &str, d: &str| NameForm::Principal {
            name: n.into(),
            domain: d.into(),
        };
        let cases = [
            ("CN=ws01,CN=Computers,DC=corp,DC=example", NameForm::Dn),
            ("cn=alice,cn=users,dc=corp,dc=example", NameForm::Dn),
            ("2.5.4.3=alice,DC=corp", NameForm::Dn),
            ("CORP\\ws01$", down("CORP", "ws01$")),
            ("corp.example\\alice", down("corp.example", "alice")),
            ("a\\5c", down("a", "5c")),
            ("ws01$@corp.example", upn("ws01$", "corp.example")),
            ("alice@corp.example", upn("alice", "corp.example")),
            ("ws01$", NameForm::SamAccountName),
            ("*", NameForm::SamAccountName),
            ("ws01$)(cn=*", NameForm::SamAccountName),
            ("=x", NameForm::SamAccountName),
        ];
        for (name, want) in cases {
            assert_eq!(NameForm::of(name), want, "{name}");
        }
        assert_eq!(dns_domain_of("CN=x,DC=Corp,DC=Example"), "corp.example");
    }

    #[test]
    fn lookups_escape_every_value_and_stay_in_the_domain() {
        let d = corp(Some("CORP"));
        let filter = |name: &str| {
            account_lookup(name, &NameForm::of(name), &d)
                .map(|l| (l.base, l.filter))
                .unwrap_or_else(|e| panic!("{name}: {e}"))
        };
        let nc = "DC=corp,DC=example".to_string();
        assert_eq!(
            filter("ws01$"),
            (
                nc.clone(),
                "(&(objectClass=user)(sAMAccountName=ws01$))".into()
            )
        );
        assert_eq!(
            filter("corp\\alice"),
            (
                nc.clone(),
                "(&(objectClass=user)(sAMAccountName=alice))".into()
            )
        );
        assert_eq!(
            filter("ws01$@CORP.example"),
            (
                nc.clone(),
                "(&(objectClass=user)(|(userPrincipalName=ws01$@CORP.example)(sAMAccountName=ws01$)))"
                    .into()
            )
        );
        // Another DNS domain: a UPN only, no implicit UPN.
        assert_eq!(
            filter("alice@other.example"),
            (
                nc.clone(),
                "(&(objectClass=user)(userPrincipalName=alice@other.example))".into()
            )
        );
        assert_eq!(
            filter("ws01$)(cn=*"),
            (
                nc.clone(),
                "(&(objectClass=user)(sAMAccountName=ws01$\\29\\28cn=\\2a))".into()
            )
        );
        assert_eq!(
            filter("CORP\\a*"),
            (
                nc.clone(),
                "(&(objectClass=user)(sAMAccountName=a\\2a))".into()
            )
        );
        let dn = "CN=ws01,CN=Computers,DC=corp,DC=example";
        let l = account_lookup(dn, &NameForm::Dn, &d).unwrap();
        assert_eq!((l.base.as_str(), l.scope), (dn, Scope::Base));
        // A down-level name of another domain is refused without a search.
        let err = account_lookup("OTHER\\alice", &NameForm::of("OTHER\\alice"), &d).unwrap_err();
        assert!(err.contains("OTHER") && err.contains("CORP"), "{err}");
        let err =
            account_lookup("CORP\\alice", &NameForm::of("CORP\\alice"), &corp(None)).unwrap_err();
        assert!(err.contains("no crossRef"), "{err}");
    }

    #[test]
    fn exactly_one_account_is_picked() {
        let d = corp(Some("CORP"));
        let c = |dn: &str, sam: &str, upn: Option<&str>| Candidate {
            dn: dn.into(),
            sam_account_name: Some(sam.into()),
            upn: upn.map(str::to_string),
        };
        let pick =
            |name: &str, found: &[Candidate]| pick_account(name, &NameForm::of(name), &d, found);
        let ws01 = c("CN=ws01", "WS01$", None);
        let alice = c("CN=alice", "alice", Some("alice@corp.example"));
        assert_eq!(
            pick("ws01$@corp.example", std::slice::from_ref(&ws01)),
            Ok("CN=ws01".into())
        );
        assert_eq!(
            pick("ws01$", std::slice::from_ref(&ws01)),
            Ok("CN=ws01".into())
        );
        // The explicit UPN wins over another account's implicit one.
        let squatter = c("CN=squatter", "alice", Some("s@corp.example"));
        assert_eq!(
            pick("alice@corp.example", &[squatter.clone(), alice.clone()]),
            Ok("CN=alice".into())
        );
        assert!(
            pick("ws01$", &[])
                .unwrap_err()
                .contains("no account matches")
        );
        assert!(
            pick("alice", &[alice.clone(), squatter])
                .unwrap_err()
                .contains("2 accounts")
        );
    }

    #[test]
    fn a_refused_non_dn_bind_says_which_forms_servers_take() {
        let hint = non_dn_bind_hint(&NameForm::of("ws01$@corp.example"));
        for part in [
            "as given",
            "implicit UPN",
            "DOMAIN\\name",
            "OpenLDAP",
            "a DN always works",
        ] {
            assert!(hint.contains(part), "{part}: {hint}");
        }
    }

    #[test]
    fn the_spn_host_is_the_url_host_as_written() {
        let cases = [
            ("ldap://DC01.corp.example:389", Ok("dc01.corp.example")),
            ("ldaps://dc01.corp.example/", Ok("dc01.corp.example")),
            ("ldap://localhost:3890", Ok("localhost")),
            ("ldap://[::1]:389", Ok("::1")),
            ("ldapi:///run/ldapi", Err("ldap:// or ldaps://")),
            ("ldap://:389", Err("host name")),
        ];
        for (url, expected) in cases {
            match (spn_host(url), expected) {
                (Ok(h), Ok(want)) => assert_eq!(h, want, "{url}"),
                (Err(e), Err(want)) => assert!(e.contains(want), "{url}: {e}"),
                (got, want) => panic!("{url}: {got:?} vs {want:?}"),
            }
        }
    }

    #[test]
    fn who_am_i_answers_become_accounts() {
        let cases = [
            (
                "dn:CN=ws01,CN=Computers,DC=corp,DC=example",
                Ok("CN=ws01,CN=Computers,DC=corp,DC=example"),
            ),
            ("u:CORP\\WS01$", Ok("CORP\\WS01$")),
            ("", Err("no account")),
            ("dn:", Err("no account")),
        ];
        for (authzid, expected) in cases {
            match (identity_of_authzid(authzid), expected) {
                (Ok(a), Ok(want)) => assert_eq!(a, want),
                (Err(e), Err(want)) => assert!(e.contains(want), "{e}"),
                (got, want) => panic!("{authzid}: {got:?} vs {want:?}"),
            }
        }
    }

    #[test]
    fn tcp_targets_of_urls() {
        let cases = [
            ("ldap://dc01.corp.example", Some(("dc01.corp.example", 389))),
            (
                "ldaps://DC01.corp.example/",
                Some(("dc01.corp.example", 636)),
            ),
            ("ldap://127.0.0.1:3890", Some(("127.0.0.1", 3890))),
            ("ldap://[::1]:3890/", Some(("::1", 3890))),
            ("ldaps://[2001:db8::1]", Some(("2001:db8::1", 636))),
            ("ldap:///", Some(("localhost", 389))),
            ("ldapi:///run/slapd/ldapi", None),
        ];
        for (url, expected) in cases {
            let got = tcp_target(url);
            assert_eq!(
                got.as_ref().map(|(h, p)| (h.as_str(), *p)),
                expected,
                "{url}"
            );
        }
    }
}
