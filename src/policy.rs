//! The local autoenrollment policy file: the Group Policy of this world.
//!
//! A TOML file names the directory to read, how to bind to it, the context
//! (machine or user) and the account. Loading validates everything up front; an
//! error names the file, the line, the key and what was expected.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;
use toml::Spanned;

use crate::model::Context;

/// A validated policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The file it was read from, for messages and relative paths.
    pub source: PathBuf,
    pub context: Context,
    /// The account whose certificates this policy manages: a DN, a
    /// `sAMAccountName` (`ws01$`), a UPN (`alice@corp.example`) or `DOMAIN\name`.
    /// None means the bind identity.
    pub account: Option<String>,
    /// Whether templates with USER_INTERACTION_REQUIRED may be enrolled (user
    /// context only; a worker has no one to prompt).
    pub allow_prompts: bool,
    pub directory: DirectorySettings,
    /// Root of the local store (`my/`, `archive/`, `request/`, `trust/`).
    pub store: PathBuf,
    /// A system trust anchors folder (`/usr/local/share/ca-certificates`,
    /// `/etc/pki/ca-trust/source/anchors`) that receives the directory's roots.
    pub trust_anchors_dir: Option<PathBuf>,
    /// What to run after the anchors folder changed (`trust_update`): the
    /// system's trust update tool, or a command of the policy's. None: the
    /// anchors are written and nothing is run.
    pub trust_update: Option<TrustUpdate>,
    /// A Prometheus text file written after each pulse (node_exporter's
    /// textfile collector folder).
    pub metrics_file: Option<PathBuf>,
    /// A krb5.conf of its own (the lab's) instead of `KRB5_CONFIG` or
    /// `/etc/krb5.conf`; set for the whole process before the first pulse.
    pub krb5_conf: Option<PathBuf>,
    /// The enrollment endpoint types the policy allows (`[enrollment]
    /// authentication`, default all: Kerberos preferred when there are
    /// Kerberos credentials).
    pub enrollment: crate::enroll::route::Allowed,
    /// Where CA hosts' endpoint mappers are (`[enrollment] rpc_port`,
    /// `rpc_hosts`).
    pub rpc: RpcSettings,
    pub autoenrollment: Autoenrollment,
    pub schedule: Schedule,
    /// Per-template settings, by template cn.
    pub templates: BTreeMap<String, TemplateSettings>,
    /// SCEP profiles (`[scep.<name>]`), by name.
    pub scep: BTreeMap<String, crate::scep::profile::ScepProfile>,
}

/// How the client reaches CA hosts over DCE/RPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcSettings {
    /// The endpoint mapper's TCP port (135; a lab's CA listens elsewhere).
    pub port: u16,
    /// Addresses of CA host names (lower case), used instead of DNS.
    pub hosts: BTreeMap<String, std::net::IpAddr>,
}

impl Default for RpcSettings {
    fn default() -> RpcSettings {
        RpcSettings {
            port: 135,
            hosts: BTreeMap::new(),
        }
    }
}

/// The autoenrollment switches of Windows' `AEPolicy`, named in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Autoenrollment {
    /// Off: the engine takes no action at all (`AEPolicy` 0x8000).
    pub enroll: bool,
    /// Renew expired certificates, update pending certificates, and remove
    /// revoked certificates (the housekeeping check box).
    pub renew_expired_update_pending_remove_revoked: bool,
    /// Re-enroll certificates whose template was superseded or got a new major
    /// version.
    pub update_certificates_that_use_templates: bool,
    /// Log an expiry notification when this percent of a certificate's
    /// lifetime or less remains.
    pub expiry_notification_percent: u8,
}

impl Default for Autoenrollment {
    fn default() -> Self {
        Autoenrollment {
            enroll: true,
            renew_expired_update_pending_remove_revoked: true,
            update_certificates_that_use_templates: true,
            expiry_notification_percent: 10,
        }
    }
}

/// When the worker pulses on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// Time between pulses (Windows: 8 hours). Also caps the failure backoff.
    pub interval: Duration,
    /// A cron expression (seconds first, 6 or 7 fields) replacing `interval`.
    pub cron: Option<String>,
    /// Random delay added to each scheduled pulse, so a fleet does not pulse in step.
    pub jitter: Duration,
    /// How often the worker asks the directory whether templates or
    /// enrollment services changed (one cheap search).
    pub directory_check: Duration,
    /// How often the worker looks at the policy file for changes.
    pub policy_check: Duration,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            interval: Duration::from_secs(8 * 3600),
            cron: None,
            jitter: Duration::from_secs(30 * 60),
            directory_check: Duration::from_secs(5 * 60),
            policy_check: Duration::from_secs(10),
        }
    }
}

/// The range each `[schedule]` duration must fall in. The upper bound is
/// Group Policy's longest refresh interval (44,640 minutes, 31 days): longer
/// than that no one would notice a broken worker, and any bound keeps the
/// worker's date arithmetic far from overflow. The lower bounds keep a typo
/// from pulsing (and asking the CA) in a tight loop.
pub const SCHEDULE_MAX: Duration = Duration::from_secs(44_640 * 60);
/// `interval`'s lower bound; it also caps the failure backoff.
pub const INTERVAL_MIN: Duration = Duration::from_secs(60);
/// `directory_check` and `policy_check`'s lower bound.
pub const CHECK_MIN: Duration = Duration::from_secs(1);

/// Refuses `[schedule]` durations outside their ranges, naming the line and key.
fn check_schedule_ranges(
    src: &Source<'_>,
    raw: &RawSchedule,
    schedule: &Schedule,
) -> Result<(), PolicyError> {
    let checks = [
        (
            &raw.interval,
            "schedule.interval",
            schedule.interval,
            INTERVAL_MIN,
        ),
        (
            &raw.jitter,
            "schedule.jitter",
            schedule.jitter,
            Duration::ZERO,
        ),
        (
            &raw.directory_check,
            "schedule.directory_check",
            schedule.directory_check,
            CHECK_MIN,
        ),
        (
            &raw.policy_check,
            "schedule.policy_check",
            schedule.policy_check,
            CHECK_MIN,
        ),
    ];
    for (value, key, got, min) in checks {
        let Some(value) = value else { continue };
        if !(min..=SCHEDULE_MAX).contains(&got) {
            return Err(src.invalid(
                value.span(),
                key,
                format!(
                    "a duration from {} to {}, found {:?}",
                    short_duration(min),
                    short_duration(SCHEDULE_MAX),
                    value.get_ref()
                ),
            ));
        }
    }
    Ok(())
}

/// A bound as a person writes it (`1m`, `31d`); humantime would print 31
/// days as months and hours.
fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "0s".into(),
        _ if s.is_multiple_of(86_400) => format!("{}d", s / 86_400),
        _ if s.is_multiple_of(60) => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

/// `trust_update`: what brings the system's trust store up to date after
/// the anchors folder changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustUpdate {
    /// `"auto"`: the tool this system has, `update-ca-certificates` (Debian,
    /// Ubuntu) or `update-ca-trust` (Fedora, RHEL).
    Auto,
    /// Any other text: a command run with `sh -c`.
    Command(String),
}

/// Settings of one template.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateSettings {
    /// Renew when this percent of the lifetime remains (as Intune does). It
    /// may only make renewal earlier than the template's own rule.
    pub renewal_threshold_percent: Option<u8>,
    /// Stable paths where the current certificate is exported for services.
    pub export: Option<Export>,
    /// A command run after a certificate of this template is installed.
    pub post_install: Option<String>,
    /// Where the template's keys are generated and kept (`key_storage`).
    pub key_storage: crate::keystore::KeyStorage,
}

/// What is exported for the services that use a template's certificate,
/// at stable paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Export {
    /// The certificate alone (PEM).
    pub certificate: Option<ExportFile>,
    /// The private key (PKCS#8 PEM); never for a key on a token.
    pub key: Option<ExportFile>,
    /// The certificate followed by its issuing chain (PEM).
    pub chain: Option<ExportFile>,
    /// Key, certificate and chain as a PKCS#12 bundle (NetworkManager
    /// 802.1X, wpa_supplicant, Java).
    pub pkcs12: Option<ExportFile>,
    /// The bundle's password, from a file only its owner can read; None:
    /// an empty password, as some consumers need.
    pub pkcs12_password_file: Option<PathBuf>,
    /// An NSS database (browsers) that receives the certificate and key.
    pub nss: Option<NssExport>,
}

/// One exported file: where, and whose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportFile {
    pub path: PathBuf,
    /// A user name or number; None: the process's own.
    pub owner: Option<String>,
    /// A group name or number; None: the process's own.
    pub group: Option<String>,
    /// Permission bits (0644 for certificates, 0600 for keys and bundles
    /// unless the policy says otherwise).
    pub mode: u32,
}

/// An NSS database export (`sql:` format, through Debian's NSS tools).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NssExport {
    /// The database folder (`~/.pki/nssdb`); created when missing.
    pub db: PathBuf,
    /// The certificate's nickname there (default: the template's name).
    pub nickname: Option<String>,
    pub owner: Option<String>,
    pub group: Option<String>,
}

/// How to reach and bind to the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectorySettings {
    /// `ldap://`, `ldaps://` or `ldapi://`; empty when the domain
    /// controllers are found in DNS (`discovery`).
    pub url: String,
    /// Finding the domain's controllers from DNS SRV records instead of a
    /// URL: a Kerberos bind without `url`.
    pub discovery: Option<Discovery>,
    /// Upgrade an `ldap://` connection with StartTLS before binding.
    pub starttls: bool,
    /// PEM file of the CAs that may sign the directory's TLS certificate; the
    /// system's roots when absent.
    pub ca_file: Option<PathBuf>,
    /// Limit for connecting and for each operation.
    pub timeout: Duration,
    pub bind: Bind,
    /// Allow a simple bind over plain `ldap://` (no StartTLS) to an address
    /// that is not loopback: the password then crosses the network in
    /// cleartext. Off unless the `[directory]` section says
    /// `allow_cleartext = true`; see `directory::connection`.
    pub allow_cleartext: bool,
}

/// Where DC discovery looks ([MS-ADTS] 6.3.6 locator records).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// The AD domain's DNS name; `None`: the realm of the Kerberos principal,
    /// in lower case (AD's realm is its domain's DNS name in capitals).
    pub domain: Option<String>,
    /// The AD site whose DCs come first (`_ldap._tcp.<site>._sites.dc._msdcs`).
    pub site: Option<String>,
    /// Name servers to ask (`127.0.0.1:5353`); empty: `/etc/resolv.conf`'s.
    pub dns_servers: Vec<std::net::SocketAddr>,
}

/// The bind method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bind {
    /// Simple bind; the password comes from a file only its owner can read.
    Simple {
        user: String,
        password_file: PathBuf,
    },
    /// SASL EXTERNAL: the identity of the TLS client certificate or of the
    /// `ldapi://` peer.
    SaslExternal,
    /// SASL GSSAPI (Kerberos): keys from a keytab (machine context: the host
    /// keytab, `NAME$@REALM`) or tickets from a credential cache (user
    /// context). The account is the authenticated identity unless the
    /// policy names one.
    Kerberos(crate::krb::CredentialSource),
}

#[derive(Debug, Error)]
pub enum PolicyError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Syntax { file: String, message: String },
    #[error("{file}:{line}: {key}: {expected}")]
    Invalid {
        file: String,
        line: usize,
        key: String,
        expected: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    context: Spanned<Context>,
    account: Option<Spanned<String>>,
    #[serde(default)]
    allow_prompts: Option<Spanned<bool>>,
    directory: RawDirectory,
    store: Option<Spanned<PathBuf>>,
    trust_anchors_dir: Option<PathBuf>,
    trust_update: Option<Spanned<String>>,
    metrics_file: Option<PathBuf>,
    krb5_conf: Option<PathBuf>,
    #[serde(default)]
    autoenrollment: Option<RawAutoenrollment>,
    #[serde(default)]
    schedule: Option<RawSchedule>,
    #[serde(default)]
    enrollment: Option<RawEnrollment>,
    #[serde(default)]
    templates: BTreeMap<String, RawTemplate>,
    #[serde(default)]
    scep: BTreeMap<String, crate::scep::profile::RawProfile>,
}

/// `[enrollment]`: `authentication = ["kerberos", "password"]`, the types of
/// enrollment endpoints (msPKI-Enrollment-Servers) the client may use.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnrollment {
    authentication: Option<Spanned<Vec<Spanned<String>>>>,
    /// The endpoint mapper's port on CA hosts (135).
    rpc_port: Option<Spanned<i64>>,
    /// CA host names and the addresses to reach them at, before DNS (a lab
    /// on loopback: `{ "ca.corp.example" = "127.0.0.1" }`).
    #[serde(default)]
    rpc_hosts: BTreeMap<String, Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAutoenrollment {
    enroll: Option<bool>,
    renew_expired_update_pending_remove_revoked: Option<bool>,
    update_certificates_that_use_templates: Option<bool>,
    expiry_notification_percent: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    interval: Option<Spanned<String>>,
    cron: Option<Spanned<String>>,
    jitter: Option<Spanned<String>>,
    directory_check: Option<Spanned<String>>,
    policy_check: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTemplate {
    renewal_threshold_percent: Option<Spanned<i64>>,
    export: Option<Spanned<RawExport>>,
    post_install: Option<Spanned<String>>,
    key_storage: Option<Spanned<String>>,
    pkcs11: Option<Spanned<RawPkcs11>>,
}

/// `[templates.<cn>.export]` (and `[scep.<name>.export]`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawExport {
    certificate: Option<RawExportFile>,
    key: Option<RawExportFile>,
    chain: Option<RawExportFile>,
    pkcs12: Option<RawExportFile>,
    pkcs12_password_file: Option<PathBuf>,
    nss_db: Option<PathBuf>,
    nss_nickname: Option<String>,
    /// Owner and group of every exported file that names none.
    owner: Option<String>,
    group: Option<String>,
}

/// A path, or `{ path = ..., owner = ..., group = ..., mode = "0640" }`.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawExportFile {
    Path(PathBuf),
    File {
        path: PathBuf,
        owner: Option<String>,
        group: Option<String>,
        mode: Option<String>,
    },
}

/// `[templates.<cn>.pkcs11]`: the token of `key_storage = "pkcs11"`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPkcs11 {
    module: PathBuf,
    token: String,
    pin_file: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDirectory {
    url: Option<Spanned<String>>,
    domain: Option<Spanned<String>>,
    site: Option<Spanned<String>>,
    dns_servers: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    starttls: bool,
    #[serde(default)]
    allow_cleartext: bool,
    ca_file: Option<Spanned<PathBuf>>,
    timeout: Option<Spanned<String>>,
    bind: Spanned<String>,
    user: Option<Spanned<String>>,
    password_file: Option<Spanned<PathBuf>>,
    keytab: Option<Spanned<PathBuf>>,
    principal: Option<Spanned<String>>,
    ccache: Option<Spanned<String>>,
}

/// What a Kerberos bind takes when the `[directory]` section does not say:
/// a keytab (machine context, or the CA's service) with its tickets in a
/// private cache, or the user's default credential cache.
pub(crate) struct KerberosDefaults {
    pub keytab_first: bool,
    pub private_ccache: PathBuf,
}

/// The host keytab, as `realm join` and `adcli join` write it.
pub const DEFAULT_KEYTAB: &str = "/etc/krb5.keytab";

/// A TOML file being validated: its text (for line numbers), its name and its
/// folder (relative paths are relative to the file). Shared by the policy file
/// and the CA's configuration, which has the same `[directory]` section.
pub(crate) struct Source<'a> {
    text: &'a str,
    file: String,
    base: PathBuf,
}

impl<'a> Source<'a> {
    pub(crate) fn new(text: &'a str, path: &Path) -> Source<'a> {
        Source {
            text,
            file: path.display().to_string(),
            base: path.parent().unwrap_or(Path::new(".")).to_path_buf(),
        }
    }

    pub(crate) fn deserialize<T: serde::de::DeserializeOwned>(&self) -> Result<T, PolicyError> {
        toml::from_str(self.text).map_err(|e| PolicyError::Syntax {
            file: self.file.clone(),
            message: syntax_message(self.text, &e),
        })
    }

    pub(crate) fn invalid(&self, span: Range<usize>, key: &str, expected: String) -> PolicyError {
        PolicyError::Invalid {
            file: self.file.clone(),
            line: line_of(self.text, span.start),
            key: key.to_string(),
            expected,
        }
    }

    pub(crate) fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    pub(crate) fn duration(
        &self,
        value: &Option<Spanned<String>>,
        key: &str,
        default: Duration,
        zero_ok: bool,
    ) -> Result<Duration, PolicyError> {
        match value {
            None => Ok(default),
            Some(t) => humantime::parse_duration(t.get_ref())
                .ok()
                .filter(|d| zero_ok || !d.is_zero())
                .ok_or_else(|| {
                    self.invalid(
                        t.span(),
                        key,
                        format!(
                            "a duration such as \"10s\", \"30m\" or \"8h\", found {:?}",
                            t.get_ref()
                        ),
                    )
                }),
        }
    }

    /// The `[directory]` section.
    pub(crate) fn directory(
        &self,
        d: &RawDirectory,
        kerberos: &KerberosDefaults,
    ) -> Result<DirectorySettings, PolicyError> {
        let invalid =
            |span: Range<usize>, key: &str, expected: String| self.invalid(span, key, expected);
        let (url, url_span) = match &d.url {
            Some(u) => (u.get_ref().trim().to_string(), u.span()),
            None => (String::new(), d.bind.span()),
        };
        let scheme = url.split("://").next().unwrap_or("").to_ascii_lowercase();
        if d.url.is_some()
            && (!url.contains("://") || !matches!(scheme.as_str(), "ldap" | "ldaps" | "ldapi"))
        {
            return Err(invalid(
                url_span,
                "directory.url",
                format!("an ldap://, ldaps:// or ldapi:// URL, found {url:?}"),
            ));
        }
        if d.url.is_none() && d.bind.get_ref() != "kerberos" {
            return Err(invalid(
                url_span,
                "directory.url",
                "the directory's URL (only a Kerberos bind finds the domain controllers in DNS)"
                    .into(),
            ));
        }
        if d.url.is_some()
            && let Some(k) = [&d.domain, &d.site].into_iter().flatten().next()
        {
            return Err(invalid(
                k.span(),
                "directory.url",
                "`domain` and `site` are for DC discovery, which `url` turns off".into(),
            ));
        }
        let discovery = match &d.url {
            Some(_) => None,
            None => {
                let mut dns_servers = Vec::new();
                for server in d.dns_servers.iter().flatten() {
                    let text = server.get_ref().trim();
                    let addr = text
                        .parse::<std::net::SocketAddr>()
                        .or_else(|_| text.parse::<std::net::IpAddr>().map(|ip| (ip, 53).into()))
                        .map_err(|_| {
                            invalid(
                                server.span(),
                                "directory.dns_servers",
                                format!(
                                    "an address (192.0.2.53 or 127.0.0.1:5353), found {text:?}"
                                ),
                            )
                        })?;
                    dns_servers.push(addr);
                }
                Some(Discovery {
                    domain: d
                        .domain
                        .as_ref()
                        .map(|v| v.get_ref().trim().to_ascii_lowercase()),
                    site: d.site.as_ref().map(|v| v.get_ref().trim().to_string()),
                    dns_servers,
                })
            }
        };
        if d.starttls && scheme != "ldap" && d.url.is_some() {
            return Err(invalid(
                url_span,
                "directory.starttls",
                format!("StartTLS upgrades an ldap:// connection; {scheme}:// cannot take it"),
            ));
        }
        let timeout = self.duration(
            &d.timeout,
            "directory.timeout",
            Duration::from_secs(10),
            false,
        )?;
        let ca_file = d.ca_file.as_ref().map(|p| self.resolve(p.get_ref()));
        let bind = match d.bind.get_ref().as_str() {
            "simple" => {
                let user = d.user.as_ref().ok_or_else(|| {
                    invalid(
                        d.bind.span(),
                        "directory.user",
                        "simple bind needs `user` (a DN, name$, user@domain or DOMAIN\\name)"
                            .into(),
                    )
                })?;
                let pw = d.password_file.as_ref().ok_or_else(|| {
                    invalid(
                        d.bind.span(),
                        "directory.password_file",
                        "simple bind needs `password_file`, a file readable only by its owner"
                            .into(),
                    )
                })?;
                Bind::Simple {
                    user: user.get_ref().clone(),
                    password_file: self.resolve(pw.get_ref()),
                }
            }
            "sasl_external" => Bind::SaslExternal,
            "kerberos" => Bind::Kerberos(self.kerberos_source(d, kerberos)?),
            other => {
                return Err(invalid(
                    d.bind.span(),
                    "directory.bind",
                    format!("\"simple\", \"kerberos\" or \"sasl_external\", found {other:?}"),
                ));
            }
        };
        if !matches!(bind, Bind::Kerberos(_)) {
            let stray = [
                d.keytab.as_ref().map(|k| ("keytab", k.span())),
                d.principal.as_ref().map(|k| ("principal", k.span())),
                d.ccache.as_ref().map(|k| ("ccache", k.span())),
            ];
            if let Some((key, span)) = stray.into_iter().flatten().next() {
                return Err(invalid(
                    span,
                    &format!("directory.{key}"),
                    "only a Kerberos bind (bind = \"kerberos\") takes it".into(),
                ));
            }
        }
        Ok(DirectorySettings {
            url,
            discovery,
            starttls: d.starttls,
            ca_file,
            timeout,
            bind,
            allow_cleartext: d.allow_cleartext,
        })
    }
}

impl Source<'_> {
    /// The credentials of `bind = "kerberos"`: `ccache` names a credential
    /// cache (`TYPE:residual`, or a path taken as a `FILE:` cache relative to
    /// the file); `keytab` a keytab, with `principal` naming the key to use.
    fn kerberos_source(
        &self,
        d: &RawDirectory,
        defaults: &KerberosDefaults,
    ) -> Result<crate::krb::CredentialSource, PolicyError> {
        use crate::krb::CredentialSource;
        if let (Some(_), Some(c)) = (&d.keytab, &d.ccache) {
            return Err(self.invalid(
                c.span(),
                "directory.ccache",
                "a keytab or a credential cache, not both".into(),
            ));
        }
        if let Some(c) = &d.ccache {
            if let Some(p) = &d.principal {
                return Err(self.invalid(
                    p.span(),
                    "directory.principal",
                    "a credential cache holds its own principal; `principal` goes with `keytab`"
                        .into(),
                ));
            }
            let text = c.get_ref().trim();
            let has_type = text.split_once(':').is_some_and(|(t, _)| {
                !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric())
            });
            let ccache = if has_type {
                text.to_string()
            } else {
                format!("FILE:{}", self.resolve(Path::new(text)).display())
            };
            return Ok(CredentialSource::Cache {
                ccache: Some(ccache),
            });
        }
        let principal = d.principal.as_ref().map(|p| p.get_ref().clone());
        if let Some(p) = &d.principal
            && let Err(e) = crate::krb::Principal::parse(p.get_ref(), Some("REALM"))
        {
            return Err(self.invalid(p.span(), "directory.principal", e));
        }
        match (&d.keytab, defaults.keytab_first || principal.is_some()) {
            (Some(k), _) => Ok(CredentialSource::Keytab {
                keytab: self.resolve(k.get_ref()),
                principal,
                ccache: defaults.private_ccache.clone(),
            }),
            (None, true) => Ok(CredentialSource::Keytab {
                keytab: PathBuf::from(DEFAULT_KEYTAB),
                principal,
                ccache: defaults.private_ccache.clone(),
            }),
            (None, false) => Ok(CredentialSource::Cache { ccache: None }),
        }
    }
}

impl Policy {
    /// Reads and validates a policy file.
    /// Only a regular file is read (a FIFO would block the worker forever).
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        use std::io::Read as _;
        let mut text = String::new();
        crate::store::fsutil::open_regular(path, true)
            .and_then(|mut f| f.read_to_string(&mut text))
            .map_err(|source| PolicyError::Read {
                file: path.display().to_string(),
                source,
            })?;
        Policy::parse(&text, path)
    }

    /// Validates policy text; `path` names it in errors and anchors relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Policy, PolicyError> {
        let src = Source::new(text, path);
        let raw: RawPolicy = src.deserialize()?;
        let invalid =
            |span: Range<usize>, key: &str, expected: String| src.invalid(span, key, expected);
        let resolve = |p: &Path| src.resolve(p);
        let duration =
            |value: &Option<Spanned<String>>, key: &str, default: Duration, zero_ok: bool| {
                src.duration(value, key, default, zero_ok)
            };
        let percent = |value: &Spanned<i64>,
                       key: &str,
                       range: std::ops::RangeInclusive<i64>|
         -> Result<u8, PolicyError> {
            let v = *value.get_ref();
            if range.contains(&v) {
                Ok(v as u8)
            } else {
                Err(invalid(
                    value.span(),
                    key,
                    format!(
                        "a percentage from {} to {}, found {v}",
                        range.start(),
                        range.end()
                    ),
                ))
            }
        };
        let d = &raw.directory;
        let context = *raw.context.get_ref();
        let store = match &raw.store {
            Some(p) => resolve(p.get_ref()),
            None => default_store(context),
        };
        let directory = src.directory(
            d,
            &KerberosDefaults {
                keytab_first: context == Context::Machine,
                private_ccache: store.join(PRIVATE_CCACHE),
            },
        )?;
        let bind = directory.bind.clone();
        let account = raw.account.as_ref().map(|a| a.get_ref().clone());
        if account.is_none() && bind == Bind::SaslExternal {
            return Err(invalid(
                d.bind.span(),
                "account",
                "with SASL EXTERNAL the policy must name the account".into(),
            ));
        }
        let allow_prompts = raw.allow_prompts.as_ref().is_some_and(|b| *b.get_ref());
        if allow_prompts && *raw.context.get_ref() == Context::Machine {
            let span = raw.allow_prompts.as_ref().map(|b| b.span()).unwrap_or(0..0);
            return Err(invalid(
                span,
                "allow_prompts",
                "prompts exist only in the user context".into(),
            ));
        }
        let mut enrollment = crate::enroll::route::Allowed::default();
        if let Some(list) = raw
            .enrollment
            .as_ref()
            .and_then(|e| e.authentication.as_ref())
        {
            enrollment = crate::enroll::route::Allowed {
                kerberos: false,
                password: false,
                rpc: false,
            };
            for method in list.get_ref() {
                match method.get_ref().as_str() {
                    "kerberos" => enrollment.kerberos = true,
                    "password" => enrollment.password = true,
                    "rpc" => enrollment.rpc = true,
                    other => {
                        return Err(src.invalid(
                            method.span(),
                            "enrollment.authentication",
                            format!("\"rpc\", \"kerberos\" or \"password\", found {other:?}"),
                        ));
                    }
                }
            }
            if !enrollment.kerberos && !enrollment.password && !enrollment.rpc {
                return Err(src.invalid(
                    list.span(),
                    "enrollment.authentication",
                    "at least one of \"rpc\", \"kerberos\" and \"password\"".into(),
                ));
            }
        }
        let mut rpc = RpcSettings::default();
        if let Some(e) = &raw.enrollment {
            if let Some(port) = &e.rpc_port {
                rpc.port = match u16::try_from(*port.get_ref()) {
                    Ok(p) if p > 0 => p,
                    _ => {
                        return Err(src.invalid(
                            port.span(),
                            "enrollment.rpc_port",
                            format!("a TCP port (1 to 65535), found {}", port.get_ref()),
                        ));
                    }
                };
            }
            for (host, address) in &e.rpc_hosts {
                let parsed = address.get_ref().parse::<std::net::IpAddr>().map_err(|_| {
                    src.invalid(
                        address.span(),
                        "enrollment.rpc_hosts",
                        format!("an IP address for {host}, found {:?}", address.get_ref()),
                    )
                })?;
                rpc.hosts.insert(host.to_ascii_lowercase(), parsed);
            }
        }
        let mut autoenrollment = Autoenrollment::default();
        if let Some(a) = &raw.autoenrollment {
            let d = Autoenrollment::default();
            autoenrollment = Autoenrollment {
                enroll: a.enroll.unwrap_or(d.enroll),
                renew_expired_update_pending_remove_revoked: a
                    .renew_expired_update_pending_remove_revoked
                    .unwrap_or(d.renew_expired_update_pending_remove_revoked),
                update_certificates_that_use_templates: a
                    .update_certificates_that_use_templates
                    .unwrap_or(d.update_certificates_that_use_templates),
                expiry_notification_percent: match &a.expiry_notification_percent {
                    Some(p) => percent(p, "autoenrollment.expiry_notification_percent", 0..=100)?,
                    None => d.expiry_notification_percent,
                },
            };
        }
        let mut schedule = Schedule::default();
        if let Some(sc) = &raw.schedule {
            schedule.interval =
                duration(&sc.interval, "schedule.interval", schedule.interval, false)?;
            schedule.jitter = duration(&sc.jitter, "schedule.jitter", schedule.jitter, true)?;
            schedule.directory_check = duration(
                &sc.directory_check,
                "schedule.directory_check",
                schedule.directory_check,
                false,
            )?;
            schedule.policy_check = duration(
                &sc.policy_check,
                "schedule.policy_check",
                schedule.policy_check,
                false,
            )?;
            if let Some(c) = &sc.cron {
                let parsed = cron::Schedule::from_str(c.get_ref()).map_err(|e| {
                    invalid(
                        c.span(),
                        "schedule.cron",
                        format!(
                            "a cron expression with seconds first, e.g. \"0 0 */8 * * *\" ({e})"
                        ),
                    )
                })?;
                if parsed.upcoming(chrono::Utc).next().is_none() {
                    return Err(invalid(
                        c.span(),
                        "schedule.cron",
                        format!(
                            "a cron expression that fires again, found {:?}",
                            c.get_ref()
                        ),
                    ));
                }
                schedule.cron = Some(c.get_ref().clone());
            }
            check_schedule_ranges(&src, sc, &schedule)?;
        }
        let mut templates = BTreeMap::new();
        for (cn, t) in &raw.templates {
            let key = |k: &str| format!("templates.{cn}.{k}");
            let renewal_threshold_percent = match &t.renewal_threshold_percent {
                Some(p) => Some(percent(p, &key("renewal_threshold_percent"), 1..=99)?),
                None => None,
            };
            let post_install = match &t.post_install {
                Some(cmd) if cmd.get_ref().trim().is_empty() => {
                    return Err(invalid(
                        cmd.span(),
                        &key("post_install"),
                        "a command, found an empty string".into(),
                    ));
                }
                Some(cmd) => Some(cmd.get_ref().clone()),
                None => None,
            };
            let export = match &t.export {
                Some(e) => Some(export_settings(&src, e, &key("export"))?),
                None => None,
            };
            let key_storage = key_storage(&src, t, &key)?;
            templates.insert(
                cn.clone(),
                TemplateSettings {
                    renewal_threshold_percent,
                    export,
                    post_install,
                    key_storage,
                },
            );
        }
        let scep = crate::scep::profile::validate(&raw.scep, &src)?;
        let trust_update = match &raw.trust_update {
            None => None,
            Some(t) if t.get_ref().trim().is_empty() => {
                return Err(invalid(
                    t.span(),
                    "trust_update",
                    "\"auto\" or a command, found an empty string".into(),
                ));
            }
            Some(t) if raw.trust_anchors_dir.is_none() => {
                return Err(invalid(
                    t.span(),
                    "trust_update",
                    "`trust_anchors_dir` too: the update reads the roots written there".into(),
                ));
            }
            Some(t) if t.get_ref().trim() == "auto" => Some(TrustUpdate::Auto),
            Some(t) => Some(TrustUpdate::Command(t.get_ref().clone())),
        };
        Ok(Policy {
            scep,
            store,
            trust_anchors_dir: raw.trust_anchors_dir.as_ref().map(|p| resolve(p)),
            trust_update,
            metrics_file: raw.metrics_file.as_ref().map(|p| resolve(p)),
            krb5_conf: raw.krb5_conf.as_ref().map(|p| resolve(p)),
            enrollment,
            rpc,
            autoenrollment,
            schedule,
            templates,
            source: path.to_path_buf(),
            context: *raw.context.get_ref(),
            account,
            allow_prompts,
            directory,
        })
    }
}

/// A template's export section, validated: modes in octal without special
/// bits, and no key or bundle that every user could read.
pub(crate) fn export_settings(
    src: &Source<'_>,
    raw: &Spanned<RawExport>,
    key: &str,
) -> Result<Export, PolicyError> {
    let e = raw.get_ref();
    let file = |f: &Option<RawExportFile>,
                name: &str,
                default_mode: u32,
                secret: bool|
     -> Result<Option<ExportFile>, PolicyError> {
        let Some(f) = f else { return Ok(None) };
        let (path, owner, group, mode) = match f {
            RawExportFile::Path(p) => (p, None, None, None),
            RawExportFile::File {
                path,
                owner,
                group,
                mode,
            } => (path, owner.clone(), group.clone(), mode.clone()),
        };
        let mode = match mode {
            None => default_mode,
            Some(text) => parse_mode(&text).ok_or_else(|| {
                src.invalid(
                    raw.span(),
                    &format!("{key}.{name}.mode"),
                    format!("permission bits in octal such as \"0640\", found {text:?}"),
                )
            })?,
        };
        if secret && mode & 0o007 != 0 {
            return Err(src.invalid(
                raw.span(),
                &format!("{key}.{name}.mode"),
                format!(
                    "a mode that keeps the private key from other users (such as \"0640\"), found {mode:04o}"
                ),
            ));
        }
        Ok(Some(ExportFile {
            path: src.resolve(path),
            owner: owner.or_else(|| e.owner.clone()),
            group: group.or_else(|| e.group.clone()),
            mode,
        }))
    };
    if e.pkcs12_password_file.is_some() && e.pkcs12.is_none() {
        return Err(src.invalid(
            raw.span(),
            &format!("{key}.pkcs12_password_file"),
            "`pkcs12` too: the password is the bundle's".into(),
        ));
    }
    if e.nss_nickname.is_some() && e.nss_db.is_none() {
        return Err(src.invalid(
            raw.span(),
            &format!("{key}.nss_nickname"),
            "`nss_db` too: the nickname is the database's".into(),
        ));
    }
    Ok(Export {
        certificate: file(&e.certificate, "certificate", 0o644, false)?,
        key: file(&e.key, "key", crate::store::fsutil::KEY_MODE, true)?,
        chain: file(&e.chain, "chain", 0o644, false)?,
        pkcs12: file(&e.pkcs12, "pkcs12", crate::store::fsutil::KEY_MODE, true)?,
        pkcs12_password_file: e.pkcs12_password_file.as_ref().map(|p| src.resolve(p)),
        nss: e.nss_db.as_ref().map(|db| NssExport {
            db: src.resolve(db),
            nickname: e.nss_nickname.clone(),
            owner: e.owner.clone(),
            group: e.group.clone(),
        }),
    })
}

/// Permission bits in octal (`"0640"`, `"640"`), without setuid, setgid
/// or sticky bits.
fn parse_mode(text: &str) -> Option<u32> {
    let t = text.trim();
    let t = t.strip_prefix("0o").unwrap_or(t);
    if t.is_empty() || t.len() > 4 {
        return None;
    }
    u32::from_str_radix(t, 8).ok().filter(|m| *m <= 0o777)
}

/// `key_storage` ("file", the default, or "pkcs11" with a `pkcs11` table).
fn key_storage(
    src: &Source<'_>,
    t: &RawTemplate,
    key: &dyn Fn(&str) -> String,
) -> Result<crate::keystore::KeyStorage, PolicyError> {
    use crate::keystore::KeyStorage;
    let storage = t
        .key_storage
        .as_ref()
        .map(|s| (s.get_ref().as_str(), s.span()));
    match (storage, &t.pkcs11) {
        (None | Some(("file", _)), None) => Ok(KeyStorage::File),
        (None | Some(("file", _)), Some(p)) => Err(src.invalid(
            p.span(),
            &key("pkcs11"),
            "key_storage = \"pkcs11\" too: the token is used only then".into(),
        )),
        (Some(("pkcs11", span)), None) => Err(src.invalid(
            span,
            &key("pkcs11"),
            "a table with the token's `module`, `token` (label) and `pin_file`".into(),
        )),
        (Some(("pkcs11", _)), Some(p)) => {
            let raw = p.get_ref();
            if raw.token.trim().is_empty() {
                return Err(src.invalid(
                    p.span(),
                    &key("pkcs11.token"),
                    "the token's label, found an empty string".into(),
                ));
            }
            Ok(KeyStorage::Pkcs11(crate::pki::keyref::TokenSettings {
                module: src.resolve(&raw.module),
                token: raw.token.clone(),
                pin_file: src.resolve(&raw.pin_file),
            }))
        }
        (Some((other, span)), _) => Err(src.invalid(
            span,
            &key("key_storage"),
            format!("\"file\" or \"pkcs11\", found {other:?}"),
        )),
    }
}

/// The store of a context when the policy names none: the machine's under
/// `/var/lib/autoenroll`, a user's under `$XDG_DATA_HOME` (or `~/.local/share`).
/// The private ticket cache of a keytab bind, in the store's root.
pub const PRIVATE_CCACHE: &str = "krb5cc";

pub fn default_store(context: Context) -> PathBuf {
    match context {
        Context::Machine => PathBuf::from("/var/lib/autoenroll/machine"),
        Context::User => {
            let base = std::env::var_os("XDG_DATA_HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
                .unwrap_or_else(|| PathBuf::from(".local/share"));
            base.join("autoenroll")
        }
    }
}

impl Policy {
    /// The settings of a template (defaults when the policy names none).
    pub fn template(&self, cn: &str) -> TemplateSettings {
        self.templates
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(cn))
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }
}

/// Reads a password file, refusing one that others can read: a machine secret
/// left world- or group-readable is a finding an administrator must hear
/// about. Only a regular file is read: a FIFO would block the pulse forever
/// (and a device hand out endless data). The type and the mode are checked
/// on the open descriptor, so a file swapped in after a check is checked
/// too. A link is followed: the administrator names this path. Errors name
/// the file and never hold any of its content.
pub fn read_password_file(path: &Path) -> Result<String, String> {
    use std::io::Read as _;
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    let mut file = crate::store::fsutil::open_regular(path, true)
        .map_err(|e| format!("{shown}: password file: {e}"))?;
    let mode = file
        .metadata()
        .map_err(|e| format!("{shown}: {e}"))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "{shown}: mode {:o} lets others read the password; chmod 600 it",
            mode & 0o777
        ));
    }
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|e| format!("{shown}: {e}"))?;
    password_of(&text)
        .map(str::to_string)
        .map_err(|problem| format!("{shown}: password file: {problem}"))
}

/// The password in a password file's text: one line, with at most one line
/// end (LF or CRLF) after it. A file of several lines is refused (pointed at a
/// PEM key or a configuration file by mistake, it would be sent whole as the
/// bind password), and so is an empty password: an LDAP simple bind with an
/// empty password is an unauthenticated bind ([RFC 4513] 5.1.2), never the
/// account's. The problem says what is wrong, never what the file holds.
fn password_of(text: &str) -> Result<&str, String> {
    let line = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(text);
    if line.contains(['\n', '\r']) {
        return Err(
            "it holds more than one line; it must hold the password alone, \
                    on one line (is it the right file?)"
                .into(),
        );
    }
    if line.is_empty() {
        return Err("the password is empty (an empty password would make the \
                    directory bind anonymous)"
            .into());
    }
    Ok(line)
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// toml's own message already names line, column and key; keep it on one line.
fn syntax_message(text: &str, e: &toml::de::Error) -> String {
    let detail = e.message().trim();
    match e.span() {
        Some(span) => format!("line {}: {detail}", line_of(text, span.start)),
        None => detail.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
context = "machine"
account = "ws01$"

[directory]
url = "ldap://dc01.corp.example"
starttls = true
ca_file = "corp-root.pem"
timeout = "5s"
bind = "simple"
user = "CN=ws01,CN=Computers,DC=corp,DC=example"
password_file = "ws01.secret"
"#;

    fn parse(text: &str) -> Result<Policy, PolicyError> {
        Policy::parse(text, Path::new("/etc/autoenroll/machine.toml"))
    }

    #[test]
    fn good_policy() {
        let p = parse(GOOD).unwrap();
        assert_eq!(p.context, Context::Machine);
        assert_eq!(p.account.as_deref(), Some("ws01$"));
        assert!(p.directory.starttls);
        assert_eq!(p.directory.timeout, Duration::from_secs(5));
        assert_eq!(
            p.directory.ca_file.as_deref(),
            Some(Path::new("/etc/autoenroll/corp-root.pem"))
        );
        assert_eq!(
            p.directory.bind,
            Bind::Simple {
                user: "CN=ws01,CN=Computers,DC=corp,DC=example".into(),
                password_file: "/etc/autoenroll/ws01.secret".into()
            }
        );
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let cases: &[(&str, &str)] = &[
            (
                "context = \"machine\"\n[directory]\nurl = \"http://x\"\nbind = \"simple\"\n",
                "machine.toml:3: directory.url: an ldap://",
            ),
            (
                "context = \"machine\"\n[directory]\nurl = \"ldap://x\"\nbind = \"gssapi\"\n",
                "machine.toml:4: directory.bind: \"simple\", \"kerberos\" or \"sasl_external\"",
            ),
            (
                "context = \"machine\"\n[directory]\nurl = \"ldap://x\"\nbind = \"kerberos\"\nkeytab = \"k\"\nccache = \"c\"\n",
                "machine.toml:6: directory.ccache: a keytab or a credential cache, not both",
            ),
            (
                "context = \"user\"\n[directory]\nurl = \"ldap://x\"\nbind = \"kerberos\"\nccache = \"c\"\nprincipal = \"a@R\"\n",
                "machine.toml:6: directory.principal: a credential cache holds its own principal",
            ),
            (
                "context = \"machine\"\n[directory]\nurl = \"ldap://x\"\nbind = \"kerberos\"\nprincipal = \"a//b\"\n",
                "machine.toml:5: directory.principal: principal \"a//b\" has an empty component",
            ),
            (
                "context = \"machine\"\n[directory]\nurl = \"ldap://x\"\nbind = \"simple\"\nuser = \"u\"\npassword_file = \"p\"\nkeytab = \"k\"\n",
                "machine.toml:7: directory.keytab: only a Kerberos bind",
            ),
            (
                "context = \"machine\"\n[directory]\nurl = \"ldap://x\"\nbind = \"kerberos\"\n[enrollment]\nauthentication = [\"kerberos\", \"ntlm\"]\n",
                "machine.toml:6: enrollment.authentication: \"rpc\", \"kerberos\" or \"password\", found \"ntlm\"",
            ),
            (
                "context = \"machine\"\n[directory]\nurl = \"ldap://x\"\nbind = \"kerberos\"\n[enrollment]\nauthentication = []\n",
                "machine.toml:6: enrollment.authentication: at least one of",
            ),
            (
                "context = \"machine\"\n[directory]\nurl = \"ldap://x\"\nbind = \"simple\"\n",
                "directory.user: simple bind needs `user`",
            ),
            (
                "context = \"machine\"\n[directory]\nurl = \"ldap://x\"\ntimeout = \"soon\"\nbind = \"sasl_external\"\n",
                "machine.toml:4: directory.timeout",
            ),
            (
                "context = \"machine\"\n[directory]\nurl = \"ldap://x\"\nbind = \"sasl_external\"\n",
                "account: with SASL EXTERNAL",
            ),
            (
                "context = \"computer\"\n[directory]\nurl = \"ldap://x\"\nbind = \"sasl_external\"\n",
                "machine.toml: line 1:",
            ),
            (
                "context = \"machine\"\ncolour = 1\n[directory]\nurl = \"ldap://x\"\nbind = \"sasl_external\"\n",
                "line 2: unknown field `colour`",
            ),
            (
                "context = \"machine\"\nallow_prompts = true\naccount = \"a\"\n[directory]\nurl = \"ldapi:///\"\nbind = \"sasl_external\"\n",
                "machine.toml:2: allow_prompts",
            ),
            (
                "context = \"machine\"\naccount = \"a\"\n[directory]\nurl = \"ldaps://x\"\nstarttls = true\nbind = \"sasl_external\"\n",
                "directory.starttls",
            ),
        ];
        for (text, want) in cases {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(want), "{err:?} should contain {want:?}");
        }
    }

    const FULL: &str = r#"
context = "user"
store = "store"

[directory]
url = "ldaps://dc01.corp.example"
bind = "simple"
user = "alice@corp.example"
password_file = "pw"

[autoenrollment]
enroll = true
renew_expired_update_pending_remove_revoked = false
expiry_notification_percent = 15

[schedule]
cron = "0 0 */4 * * *"
jitter = "0s"

[templates.User]
renewal_threshold_percent = 25
post_install = "systemctl --user restart mail-client"
export = { certificate = "/home/alice/.certs/user.pem", key = "keys/user.key" }
"#;

    #[test]
    fn options_schedule_and_templates() {
        let p = parse(FULL).unwrap();
        assert_eq!(p.store, Path::new("/etc/autoenroll/store"));
        assert!(p.autoenrollment.enroll);
        assert!(!p.autoenrollment.renew_expired_update_pending_remove_revoked);
        assert!(p.autoenrollment.update_certificates_that_use_templates);
        assert_eq!(p.autoenrollment.expiry_notification_percent, 15);
        assert_eq!(p.schedule.cron.as_deref(), Some("0 0 */4 * * *"));
        assert_eq!(p.schedule.interval, Duration::from_secs(8 * 3600));
        assert_eq!(p.schedule.jitter, Duration::ZERO);
        let user = p.template("user");
        assert_eq!(user.renewal_threshold_percent, Some(25));
        let export = user.export.unwrap();
        let key = export.key.unwrap();
        assert_eq!(key.path, Path::new("/etc/autoenroll/keys/user.key"));
        assert_eq!(key.mode, 0o600);
        assert_eq!(export.certificate.unwrap().mode, 0o644);
        assert_eq!(user.key_storage, crate::keystore::KeyStorage::File);
        assert_eq!(p.template("Other"), TemplateSettings::default());
    }

    #[test]
    fn defaults_follow_windows() {
        let p = parse(GOOD).unwrap();
        assert_eq!(p.autoenrollment, Autoenrollment::default());
        assert_eq!(p.autoenrollment.expiry_notification_percent, 10);
        assert_eq!(p.schedule.interval, Duration::from_secs(8 * 3600));
        assert_eq!(p.store, Path::new("/var/lib/autoenroll/machine"));
    }

    #[test]
    fn option_errors_name_line_and_key() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "expiry_notification_percent = 15",
                "expiry_notification_percent = 101",
                "autoenrollment.expiry_notification_percent: a percentage from 0 to 100, found 101",
            ),
            (
                "cron = \"0 0 */4 * * *\"",
                "cron = \"every day\"",
                "schedule.cron: a cron expression",
            ),
            (
                "jitter = \"0s\"",
                "jitter = \"soon\"",
                "schedule.jitter: a duration",
            ),
            (
                "renewal_threshold_percent = 25",
                "renewal_threshold_percent = 0",
                "templates.User.renewal_threshold_percent: a percentage from 1 to 99",
            ),
            (
                "post_install = \"systemctl --user restart mail-client\"",
                "post_install = \" \"",
                "templates.User.post_install: a command",
            ),
            (
                "jitter = \"0s\"",
                "interval = \"18446744073709551615s\"",
                "machine.toml:18: schedule.interval: a duration from 1m to 31d",
            ),
            (
                "jitter = \"0s\"",
                "interval = \"30s\"",
                "machine.toml:18: schedule.interval: a duration from 1m",
            ),
            (
                "jitter = \"0s\"",
                "jitter = \"32days\"",
                "machine.toml:18: schedule.jitter: a duration from 0s to 31d",
            ),
            (
                "jitter = \"0s\"",
                "directory_check = \"100years\"",
                "machine.toml:18: schedule.directory_check: a duration from 1s",
            ),
            (
                "jitter = \"0s\"",
                "policy_check = \"10ms\"",
                "machine.toml:18: schedule.policy_check: a duration from 1s",
            ),
            (
                "cron = \"0 0 */4 * * *\"",
                "cron = \"0 0 0 30 2 *\"",
                "schedule.cron: a cron expression that fires again",
            ),
            ("enroll = true", "enroll = \"yes\"", "invalid type"),
            (
                "[templates.User]",
                "[templates.User]\nrenew = 1",
                "unknown field `renew`",
            ),
        ];
        for (from, to, want) in cases {
            let text = FULL.replace(from, to);
            assert_ne!(text, FULL, "{from} not found");
            let err = parse(&text).unwrap_err().to_string();
            assert!(err.contains(want), "{err:?} should contain {want:?}");
            assert!(err.contains("machine.toml:"), "{err}");
        }
    }

    #[test]
    fn allow_cleartext_is_off_unless_the_directory_section_says_so() {
        assert!(!parse(GOOD).unwrap().directory.allow_cleartext);
        let text = GOOD.replace(
            "starttls = true",
            "starttls = false\nallow_cleartext = true",
        );
        assert!(parse(&text).unwrap().directory.allow_cleartext);
        let text = GOOD.replace("starttls = true", "allow_cleartext = \"yes\"");
        let err = parse(&text).unwrap_err().to_string();
        assert!(
            err.contains("machine.toml: line 7") && err.contains("invalid type"),
            "{err}"
        );
    }

    #[test]
    fn password_file_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("secret");
        std::fs::write(&f, "s3cret\n").unwrap();
        for mode in [0o644, 0o640, 0o604, 0o620, 0o602] {
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = read_password_file(&f).unwrap_err();
            assert!(
                err.contains("chmod 600") && err.contains("secret"),
                "{mode:o}: {err}"
            );
            assert!(!err.contains("s3cret"), "{err}");
        }
        for mode in [0o600, 0o400] {
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(read_password_file(&f).unwrap(), "s3cret");
        }
    }

    #[test]
    fn a_password_file_holds_one_line() {
        for (text, want) in [
            ("s3cret", "s3cret"),
            ("s3cret\n", "s3cret"),
            ("s3cret\r\n", "s3cret"),
            (" spaced out ", " spaced out "),
        ] {
            assert_eq!(password_of(text).as_deref(), Ok(want), "{text:?}");
        }
        for text in [
            "s3cret\nmore",
            "s3cret\n\n",
            "s3cret\r\n\r\n",
            "\ns3cret",
            "s3c\rret",
            "s3cret\r",
        ] {
            let err = password_of(text).unwrap_err();
            assert!(err.contains("more than one line"), "{text:?}: {err}");
        }
        for text in ["", "\n", "\r\n"] {
            let err = password_of(text).unwrap_err();
            assert!(
                err.contains("empty") && err.contains("anonymous"),
                "{text:?}: {err}"
            );
        }
    }

    /// The finding: a password file pointed at a PEM key was sent whole as the
    /// bind password. It is refused, naming the file, never quoting it.
    #[test]
    fn a_multi_line_or_empty_password_file_is_refused_without_quoting_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("secret");
        let pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n";
        for (content, problem) in [(pem, "more than one line"), ("\n", "empty")] {
            std::fs::write(&f, content).unwrap();
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
            let err = read_password_file(&f).unwrap_err();
            assert!(err.contains("secret") && err.contains(problem), "{err}");
            assert!(
                !err.contains("PRIVATE KEY") && !err.contains("MIIE"),
                "{err}"
            );
        }
    }

    /// The finding: a FIFO as `password_file` hung `pulse` forever. A writer
    /// waits at the FIFO with a password: the old code read it (and would
    /// have waited forever for a writer that never comes); now the file is
    /// refused for what it is, whether a writer is there or not.
    #[test]
    fn a_password_file_that_is_not_a_regular_file_is_refused() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let made = std::process::Command::new("mkfifo")
            .args(["-m", "600"])
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let writer = {
            let fifo = fifo.clone();
            std::thread::spawn(move || {
                // Blocks until a reader opens the FIFO; the reader may be gone
                // by the time it writes (EPIPE): either way it ends.
                if let Ok(mut w) = std::fs::OpenOptions::new().write(true).open(&fifo) {
                    let _ = w.write_all(b"s3cret\n");
                }
            })
        };
        let err = read_password_file(&fifo).unwrap_err();
        assert!(err.contains("FIFO") && err.contains("pipe"), "{err}");
        assert!(err.contains("not a regular file"), "{err}");
        // Release the writer: with a reader open, its open cannot block.
        let reader = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(nix::libc::O_NONBLOCK)
                .open(&fifo)
                .unwrap()
        };
        writer.join().unwrap();
        drop(reader);
        let err = read_password_file(dir.path()).unwrap_err();
        assert!(err.contains("a folder"), "{err}");
        let err = read_password_file(Path::new("/dev/zero")).unwrap_err();
        assert!(err.contains("a device"), "{err}");
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    #[test]
    fn the_shipped_examples_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        for name in ["machine.toml", "user.toml", "lab.toml"] {
            let path = dir.join(name);
            let p = Policy::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(p.source, path);
        }
    }

    #[test]
    fn enrollment_authentication_lists_the_endpoint_types_allowed() {
        use crate::enroll::route::Allowed;
        let base = "context = \"machine\"\nstore = \"/s\"\n[directory]\nurl = \"ldap://dc01\"\nbind = \"kerberos\"\n";
        let allowed = |extra: &str| {
            Policy::parse(
                &format!("{base}{extra}"),
                Path::new("/etc/autoenroll/p.toml"),
            )
            .unwrap()
            .enrollment
        };
        assert_eq!(allowed(""), Allowed::default());
        assert_eq!(
            allowed("[enrollment]\nauthentication = [\"password\"]\n"),
            Allowed {
                kerberos: false,
                password: true,
                rpc: false,
            }
        );
        assert_eq!(
            allowed("[enrollment]\nauthentication = [\"kerberos\"]\n"),
            Allowed {
                kerberos: true,
                password: false,
                rpc: false,
            }
        );
        assert_eq!(
            allowed("[enrollment]\nauthentication = [\"rpc\"]\n"),
            Allowed {
                kerberos: false,
                password: false,
                rpc: true,
            }
        );
        assert_eq!(
            allowed("[enrollment]\nauthentication = [\"password\", \"rpc\", \"kerberos\"]\n"),
            Allowed::default()
        );
    }

    #[test]
    fn rpc_settings_take_a_port_and_host_addresses() {
        let base = "context = \"machine\"\nstore = \"/s\"\n[directory]\nurl = \"ldap://dc01\"\nbind = \"kerberos\"\n";
        let parse = |extra: &str| {
            Policy::parse(
                &format!("{base}{extra}"),
                Path::new("/etc/autoenroll/p.toml"),
            )
        };
        let p = parse("").unwrap();
        assert_eq!(p.rpc, RpcSettings::default());
        assert_eq!(p.rpc.port, 135);
        let p = parse(
            "[enrollment]\nrpc_port = 10135\nrpc_hosts = { \"CA.corp.example\" = \"127.0.0.1\" }\n",
        )
        .unwrap();
        assert_eq!(p.rpc.port, 10135);
        assert_eq!(
            p.rpc.hosts.get("ca.corp.example"),
            Some(&"127.0.0.1".parse().unwrap())
        );
        for (extra, expected) in [
            (
                "[enrollment]\nrpc_port = 0\n",
                "enrollment.rpc_port: a TCP port",
            ),
            ("[enrollment]\nrpc_port = 70000\n", "found 70000"),
            (
                "[enrollment]\nrpc_hosts = { \"ca\" = \"not an address\" }\n",
                "enrollment.rpc_hosts: an IP address for ca",
            ),
        ] {
            let e = parse(extra).unwrap_err().to_string();
            assert!(e.contains(expected), "{extra}: {e}");
        }
    }

    #[test]
    fn kerberos_binds_take_the_host_keytab_or_the_users_cache_by_default() {
        use crate::krb::CredentialSource;
        let policy = |text: &str| {
            Policy::parse(text, Path::new("/etc/autoenroll/p.toml"))
                .unwrap()
                .directory
                .bind
        };
        let machine = "context = \"machine\"\nstore = \"/s\"\n[directory]\nurl = \"ldap://dc01\"\nbind = \"kerberos\"\n";
        assert_eq!(
            policy(machine),
            Bind::Kerberos(CredentialSource::Keytab {
                keytab: "/etc/krb5.keytab".into(),
                principal: None,
                ccache: "/s/krb5cc".into(),
            })
        );
        let user = "context = \"user\"\n[directory]\nurl = \"ldap://dc01\"\nbind = \"kerberos\"\n";
        assert_eq!(
            policy(user),
            Bind::Kerberos(CredentialSource::Cache { ccache: None })
        );
        let cache = format!("{user}ccache = \"cc/alice\"\n");
        assert_eq!(
            policy(&cache),
            Bind::Kerberos(CredentialSource::Cache {
                ccache: Some("FILE:/etc/autoenroll/cc/alice".into())
            })
        );
        let keyring = format!("{user}ccache = \"KEYRING:persistent:1000\"\n");
        assert_eq!(
            policy(&keyring),
            Bind::Kerberos(CredentialSource::Cache {
                ccache: Some("KEYRING:persistent:1000".into())
            })
        );
        let service = format!("{user}principal = \"svc@CORP.EXAMPLE\"\nkeytab = \"svc.keytab\"\n");
        assert!(matches!(
            policy(&service),
            Bind::Kerberos(CredentialSource::Keytab { keytab, principal: Some(p), .. })
                if keytab == Path::new("/etc/autoenroll/svc.keytab") && p == "svc@CORP.EXAMPLE"
        ));
    }
}

#[cfg(test)]
mod export_and_key_tests {
    use super::*;

    const BASE: &str = "context = \"machine\"\naccount = \"ws01$\"\n\n[directory]\n\
                        url = \"ldaps://dc01\"\nbind = \"simple\"\nuser = \"ws01$\"\n\
                        password_file = \"ws01.secret\"\n";

    fn parse(top: &str, tail: &str) -> Result<Policy, PolicyError> {
        Policy::parse(
            &format!("{top}\n{BASE}\n{tail}"),
            Path::new("/etc/autoenroll/machine.toml"),
        )
    }

    #[test]
    fn exports_keys_and_trust_update() {
        let p = parse(
            "trust_anchors_dir = \"/usr/local/share/ca-certificates\"\ntrust_update = \"auto\"",
            r#"
[templates.Web]
key_storage = "pkcs11"
pkcs11 = { module = "/usr/lib/softhsm/libsofthsm2.so", token = "web", pin_file = "token.pin" }

[templates.Web.export]
owner = "root"
group = "ssl-cert"
certificate = "web.pem"
key = { path = "/etc/ssl/private/web.key", group = "www-data", mode = "0640" }
pkcs12 = { path = "web.p12", mode = "600" }
pkcs12_password_file = "p12.secret"
nss_db = "/home/alice/.pki/nssdb"
"#,
        )
        .unwrap();
        assert_eq!(p.trust_update, Some(TrustUpdate::Auto));
        let web = p.template("web");
        assert_eq!(
            web.key_storage,
            crate::keystore::KeyStorage::Pkcs11(crate::pki::keyref::TokenSettings {
                module: "/usr/lib/softhsm/libsofthsm2.so".into(),
                token: "web".into(),
                pin_file: "/etc/autoenroll/token.pin".into(),
            })
        );
        let e = web.export.unwrap();
        let cert = e.certificate.unwrap();
        assert_eq!(cert.path, Path::new("/etc/autoenroll/web.pem"));
        assert_eq!(
            (cert.owner.as_deref(), cert.group.as_deref(), cert.mode),
            (Some("root"), Some("ssl-cert"), 0o644)
        );
        let key = e.key.unwrap();
        assert_eq!(
            (key.owner.as_deref(), key.group.as_deref(), key.mode),
            (Some("root"), Some("www-data"), 0o640)
        );
        assert_eq!(e.pkcs12.unwrap().mode, 0o600);
        assert_eq!(
            e.pkcs12_password_file.as_deref(),
            Some(Path::new("/etc/autoenroll/p12.secret"))
        );
        assert_eq!(e.nss.unwrap().db, Path::new("/home/alice/.pki/nssdb"));
        let p = parse(
            "trust_anchors_dir = \"anchors\"\ntrust_update = \"update-ca-trust extract\"",
            "",
        )
        .unwrap();
        assert_eq!(
            p.trust_update,
            Some(TrustUpdate::Command("update-ca-trust extract".into()))
        );
    }

    #[test]
    fn bad_exports_keys_and_trust_updates_are_named() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "trust_update = \"auto\"",
                "",
                "trust_update: `trust_anchors_dir` too",
            ),
            (
                "trust_anchors_dir = \"a\"\ntrust_update = \" \"",
                "",
                "trust_update: \"auto\" or a command",
            ),
            (
                "",
                "[templates.W.export]\nkey = { path = \"k\", mode = \"0644\" }",
                "templates.W.export.key.mode: a mode that keeps the private key from other users",
            ),
            (
                "",
                "[templates.W.export]\npkcs12 = { path = \"k\", mode = \"0604\" }",
                "templates.W.export.pkcs12.mode",
            ),
            (
                "",
                "[templates.W.export]\ncertificate = { path = \"c\", mode = \"4755\" }",
                "templates.W.export.certificate.mode: permission bits in octal",
            ),
            (
                "",
                "[templates.W.export]\ncertificate = { path = \"c\", mode = \"rw\" }",
                "permission bits in octal",
            ),
            (
                "",
                "[templates.W.export]\npkcs12_password_file = \"p\"",
                "templates.W.export.pkcs12_password_file: `pkcs12` too",
            ),
            (
                "",
                "[templates.W.export]\nnss_nickname = \"n\"",
                "templates.W.export.nss_nickname: `nss_db` too",
            ),
            (
                "",
                "[templates.W]\nkey_storage = \"tpm\"",
                "templates.W.key_storage: \"file\" or \"pkcs11\", found \"tpm\"",
            ),
            (
                "",
                "[templates.W]\nkey_storage = \"pkcs11\"",
                "templates.W.pkcs11: a table with the token's `module`",
            ),
            (
                "",
                "[templates.W]\npkcs11 = { module = \"m\", token = \"t\", pin_file = \"p\" }",
                "templates.W.pkcs11: key_storage = \"pkcs11\" too",
            ),
            (
                "",
                "[templates.W]\nkey_storage = \"pkcs11\"\npkcs11 = { module = \"m\", token = \"\", pin_file = \"p\" }",
                "templates.W.pkcs11.token: the token's label",
            ),
            (
                "",
                "[templates.W]\nkey_storage = \"pkcs11\"\npkcs11 = { module = \"m\", token = \"t\" }",
                "pin_file",
            ),
        ];
        for (top, tail, wanted) in cases {
            let e = parse(top, tail).unwrap_err().to_string();
            assert!(e.contains(wanted), "{e}\n  wanted: {wanted}");
            assert!(e.starts_with("/etc/autoenroll/machine.toml"), "{e}");
        }
    }

    #[test]
    fn modes() {
        for (text, wanted) in [
            ("0640", Some(0o640)),
            ("640", Some(0o640)),
            ("0o600", Some(0o600)),
            ("0777", Some(0o777)),
            ("1777", None),
            ("0999", None),
            ("", None),
            ("06400", None),
        ] {
            assert_eq!(parse_mode(text), wanted, "{text}");
        }
    }
}
