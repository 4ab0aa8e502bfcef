//! The CA's configuration file: which directory it publishes to and reads
//! templates from, the service account it binds as, where it listens, where its
//! key, certificates and database live, and what it publishes.
//!
//! Errors name file, line and key, like the policy file's (the `[directory]`
//! section is read by the same code).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::pki::keys::KeyAlgorithm;
use crate::policy::{DirectorySettings, PolicyError, RawDirectory, Source};

/// A validated CA configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaConfig {
    pub source: PathBuf,
    /// The CA's name: the cn of its enrollment service object and of its
    /// certificate's subject.
    pub name: String,
    /// Host name in the TLS certificate and the service object's `dNSHostName`.
    pub dns_host_name: String,
    /// Address the HTTPS server binds.
    pub listen: SocketAddr,
    /// Base URL clients use (`https://host:port`), written into the directory
    /// and into issued certificates. Defaults to `https://<dns_host_name>:<port>`.
    pub url: String,
    /// Optional plain-HTTP listener for CA certificate and CRL downloads
    /// (the usual CDP/AIA transport: HTTP avoids a TLS check that needs the CRL).
    pub http_listen: Option<SocketAddr>,
    /// Base URL of the plain-HTTP downloads.
    pub http_url: Option<String>,
    /// Keys, certificates and the current CRL.
    pub state_dir: PathBuf,
    pub database: PathBuf,
    /// Algorithm of a new CA key (RSA 3072 by default; P-384 as an option).
    pub key_algorithm: KeyAlgorithm,
    /// Lifetime of a new CA certificate.
    pub validity: Duration,
    /// Time from one CRL to its next update.
    pub crl_validity: Duration,
    /// Templates the CA publishes (`certificateTemplates`).
    pub templates: Vec<String>,
    pub directory: DirectorySettings,
    /// The Kerberos endpoint (`<CA>_CES_Kerberos`), when configured.
    pub kerberos: Option<KerberosEndpoint>,
    /// MS-ICPR over DCE/RPC (`ICertPassage` and an endpoint mapper), when
    /// configured.
    pub rpc: Option<RpcEndpoint>,
    /// `krb5_conf`: the krb5.conf of the CA process's Kerberos endpoints
    /// (the lab's), else `KRB5_CONFIG` or `/etc/krb5.conf`.
    pub krb5_conf: Option<PathBuf>,
    /// The NDES role (`[ndes]`), when configured.
    pub ndes: Option<NdesConfig>,
}

/// The NDES role: `/certsrv/mscep/mscep.dll` and its challenge pages. The
/// template keys mirror NDES's registry values under
/// `HKLM\Software\Microsoft\Cryptography\MSCEP` (template names, not
/// display names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NdesConfig {
    /// The account NDES submits requests as (its service account,
    /// `sAMAccountName`): the templates' Enroll right is checked for it.
    pub service_account: String,
    /// `SignatureTemplate`: requests whose key usage is signature only.
    pub signature_template: String,
    /// `EncryptionTemplate`: key (or data) encipherment only.
    pub encryption_template: String,
    /// `GeneralPurposeTemplate`: both, or no key usage.
    pub general_purpose_template: String,
    /// Who may fetch challenges: `sAMAccountName`s, or SIDs (`S-1-...`) of
    /// accounts or groups (nested membership counts), e.g. Domain Admins.
    pub admins: Vec<String>,
    /// How long a challenge is valid (NDES: 60 minutes).
    pub challenge_validity: Duration,
    /// Unused one-time challenges held at once (NDES's `PasswordMax`,
    /// 5 by default); past that the admin page says the cache is full.
    pub password_max: u32,
}

/// Where `ca serve` answers MS-ICPR ([MS-ICPR] 2.1: ncacn_ip_tcp, the port
/// told by the endpoint mapper) and with whose keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcEndpoint {
    /// Keytab holding `host/<dns_host_name>`, the principal Windows clients
    /// and impacket ask the KDC for.
    pub keytab: PathBuf,
    /// ICertPassage's listener (`0.0.0.0:0` by default: a free port, which
    /// the endpoint mapper tells).
    pub listen: SocketAddr,
    /// The endpoint mapper ([MS-RPCE] 2.1.1.1: port 135 by default).
    pub epm_listen: SocketAddr,
}

/// The CA's Kerberos (HTTP Negotiate) endpoint: its `HTTP/<host>` keys and
/// the base URL published for it, whose host is the one clients name in the
/// service principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KerberosEndpoint {
    /// Keytab holding `HTTP/<host of url>`.
    pub keytab: PathBuf,
    /// Base URL (`https://ca.corp.example:8443`); defaults to the CA's `url`.
    pub url: String,
    /// A krb5.conf for the CA process (the lab's), else `KRB5_CONFIG` or
    /// `/etc/krb5.conf`.
    pub krb5_conf: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCaConfig {
    name: Spanned<String>,
    dns_host_name: Spanned<String>,
    listen: Spanned<String>,
    url: Option<Spanned<String>>,
    http_listen: Option<Spanned<String>>,
    http_url: Option<Spanned<String>>,
    state_dir: Spanned<PathBuf>,
    database: Option<Spanned<PathBuf>>,
    key_algorithm: Option<Spanned<String>>,
    validity: Option<Spanned<String>>,
    crl_validity: Option<Spanned<String>>,
    #[serde(default)]
    templates: Vec<String>,
    directory: RawDirectory,
    kerberos_keytab: Option<Spanned<PathBuf>>,
    kerberos_url: Option<Spanned<String>>,
    krb5_conf: Option<Spanned<PathBuf>>,
    rpc_keytab: Option<Spanned<PathBuf>>,
    rpc_listen: Option<Spanned<String>>,
    rpc_epm_listen: Option<Spanned<String>>,
    ndes: Option<RawNdes>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNdes {
    service_account: Spanned<String>,
    signature_template: Option<String>,
    encryption_template: Option<String>,
    general_purpose_template: Option<String>,
    #[serde(default)]
    admins: Vec<String>,
    challenge_validity: Option<Spanned<String>>,
    password_max: Option<u32>,
}

/// NDES's default for all three template values.
pub const NDES_DEFAULT_TEMPLATE: &str = "IPSECIntermediateOffline";

/// The path of the WSTEP endpoint, the one AD CS's enrollment web service
/// uses for user name and password authentication.
pub fn endpoint_path(name: &str) -> String {
    format!("/{name}_CES_UsernamePassword/service.svc/CES")
}

/// The path of the Kerberos (HTTP Negotiate) WSTEP endpoint, as AD CS's
/// enrollment web service names it.
pub fn kerberos_endpoint_path(name: &str) -> String {
    format!("/{name}_CES_Kerberos/service.svc/CES")
}

impl CaConfig {
    pub fn load(path: &Path) -> Result<CaConfig, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            file: path.display().to_string(),
            source,
        })?;
        CaConfig::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<CaConfig, PolicyError> {
        let src = Source::new(text, path);
        let raw: RawCaConfig = src.deserialize()?;
        let name = raw.name.get_ref().trim().to_string();
        if name.is_empty() || name.contains([',', '=', '+', '"', '\\', '<', '>', ';', '/']) {
            return Err(src.invalid(
                raw.name.span(),
                "name",
                format!("a CA name without DN special characters or '/', found {name:?}"),
            ));
        }
        let host = raw.dns_host_name.get_ref().trim().to_ascii_lowercase();
        if host.is_empty()
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-".contains(c))
        {
            return Err(src.invalid(
                raw.dns_host_name.span(),
                "dns_host_name",
                format!("a DNS host name, found {host:?}"),
            ));
        }
        let address = |v: &Spanned<String>, key: &str| -> Result<SocketAddr, PolicyError> {
            v.get_ref().parse().map_err(|_| {
                src.invalid(
                    v.span(),
                    key,
                    format!(
                        "an address and port such as \"0.0.0.0:8443\", found {:?}",
                        v.get_ref()
                    ),
                )
            })
        };
        let base_url =
            |v: &Spanned<String>, key: &str, scheme: &str| -> Result<String, PolicyError> {
                let u = v.get_ref().trim().trim_end_matches('/').to_string();
                if !u.starts_with(&format!("{scheme}://")) || u.len() <= scheme.len() + 3 {
                    return Err(src.invalid(
                        v.span(),
                        key,
                        format!("a {scheme}:// base URL, found {u:?}"),
                    ));
                }
                Ok(u)
            };
        let listen = address(&raw.listen, "listen")?;
        let url = match &raw.url {
            Some(u) => base_url(u, "url", "https")?,
            None => format!("https://{host}:{}", listen.port()),
        };
        let http_listen = raw
            .http_listen
            .as_ref()
            .map(|v| address(v, "http_listen"))
            .transpose()?;
        let http_url = match (&raw.http_url, http_listen) {
            (Some(u), _) => Some(base_url(u, "http_url", "http")?),
            (None, Some(a)) => Some(format!("http://{host}:{}", a.port())),
            (None, None) => None,
        };
        let key_algorithm = match raw
            .key_algorithm
            .as_ref()
            .map(|k| (k, k.get_ref().as_str()))
        {
            None | Some((_, "rsa3072")) => KeyAlgorithm::Rsa { bits: 3072 },
            Some((_, "rsa4096")) => KeyAlgorithm::Rsa { bits: 4096 },
            Some((_, "p384")) => KeyAlgorithm::EcdsaP384,
            Some((k, other)) => {
                return Err(src.invalid(
                    k.span(),
                    "key_algorithm",
                    format!("\"rsa3072\", \"rsa4096\" or \"p384\", found {other:?}"),
                ));
            }
        };
        let year = Duration::from_secs(365 * 86_400);
        let validity = src.duration(&raw.validity, "validity", 10 * year, false)?;
        let crl_validity = src.duration(
            &raw.crl_validity,
            "crl_validity",
            Duration::from_secs(7 * 86_400),
            false,
        )?;
        let state_dir = src.resolve(raw.state_dir.get_ref());
        let database = match &raw.database {
            Some(p) => src.resolve(p.get_ref()),
            None => state_dir.join("requests.sqlite"),
        };
        let directory = src.directory(
            &raw.directory,
            &crate::policy::KerberosDefaults {
                keytab_first: true,
                private_ccache: state_dir.join(crate::policy::PRIVATE_CCACHE),
            },
        )?;
        let kerberos = match (&raw.kerberos_keytab, &raw.kerberos_url, &raw.krb5_conf) {
            (Some(keytab), u, conf) => Some(KerberosEndpoint {
                keytab: src.resolve(keytab.get_ref()),
                url: match u {
                    Some(u) => base_url(u, "kerberos_url", "https")?,
                    None => url.clone(),
                },
                krb5_conf: conf.as_ref().map(|c| src.resolve(c.get_ref())),
            }),
            (None, Some(u), _) => {
                return Err(src.invalid(
                    u.span(),
                    "kerberos_url",
                    "kerberos_keytab as well: the endpoint needs the keys of HTTP/<host>".into(),
                ));
            }
            (None, None, Some(c)) if raw.rpc_keytab.is_none() => {
                return Err(src.invalid(
                    c.span(),
                    "krb5_conf",
                    "kerberos_keytab or rpc_keytab as well: only the Kerberos endpoints use it"
                        .into(),
                ));
            }
            (None, None, _) => None,
        };
        let rpc = match (&raw.rpc_keytab, &raw.rpc_listen, &raw.rpc_epm_listen) {
            (Some(keytab), l, e) => Some(RpcEndpoint {
                keytab: src.resolve(keytab.get_ref()),
                listen: match l {
                    Some(l) => address(l, "rpc_listen")?,
                    None => SocketAddr::from(([0, 0, 0, 0], 0)),
                },
                epm_listen: match e {
                    Some(e) => address(e, "rpc_epm_listen")?,
                    None => SocketAddr::from(([0, 0, 0, 0], 135)),
                },
            }),
            (None, Some(v), _) | (None, None, Some(v)) => {
                return Err(src.invalid(
                    v.span(),
                    if raw.rpc_listen.is_some() {
                        "rpc_listen"
                    } else {
                        "rpc_epm_listen"
                    },
                    "rpc_keytab as well: ICertPassage needs the keys of host/<dns_host_name>"
                        .into(),
                ));
            }
            (None, None, None) => None,
        };
        let ndes = match &raw.ndes {
            None => None,
            Some(n) => {
                let account = n.service_account.get_ref().trim().to_string();
                if account.is_empty() {
                    return Err(src.invalid(
                        n.service_account.span(),
                        "service_account",
                        "the sAMAccountName NDES submits as, found an empty name".into(),
                    ));
                }
                let template = |t: &Option<String>| {
                    t.as_deref()
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .unwrap_or(NDES_DEFAULT_TEMPLATE)
                        .to_string()
                };
                Some(NdesConfig {
                    service_account: account,
                    signature_template: template(&n.signature_template),
                    encryption_template: template(&n.encryption_template),
                    general_purpose_template: template(&n.general_purpose_template),
                    admins: n.admins.clone(),
                    challenge_validity: src.duration(
                        &n.challenge_validity,
                        "challenge_validity",
                        Duration::from_secs(3600),
                        false,
                    )?,
                    password_max: n.password_max.unwrap_or(5).max(1),
                })
            }
        };
        let krb5_conf_for_rpc = raw.krb5_conf.as_ref().map(|c| src.resolve(c.get_ref()));
        Ok(CaConfig {
            source: path.to_path_buf(),
            name,
            dns_host_name: host,
            listen,
            url,
            http_listen,
            http_url,
            state_dir,
            database,
            key_algorithm,
            validity,
            crl_validity,
            templates: raw.templates,
            directory,
            kerberos,
            rpc,
            krb5_conf: krb5_conf_for_rpc,
            ndes,
        })
    }

    /// The WSTEP endpoint URL published in `msPKI-Enrollment-Servers`.
    pub fn endpoint_url(&self) -> String {
        format!("{}{}", self.url, endpoint_path(&self.name))
    }

    /// The Kerberos endpoint URL published in `msPKI-Enrollment-Servers`
    /// (authentication 2), when there is one.
    pub fn kerberos_endpoint_url(&self) -> Option<String> {
        self.kerberos
            .as_ref()
            .map(|k| format!("{}{}", k.url, kerberos_endpoint_path(&self.name)))
    }

    /// The service principal of the Kerberos endpoint, `HTTP/<host of its
    /// URL>`: the name clients ask the KDC for.
    pub fn kerberos_service(&self) -> Option<String> {
        let k = self.kerberos.as_ref()?;
        let host = k.url.parse::<hyper::Uri>().ok()?.host()?.to_string();
        Some(format!("HTTP/{host}"))
    }

    /// The replay cache of the Kerberos endpoint: authenticators seen.
    pub fn replay_cache_path(&self) -> PathBuf {
        self.state_dir.join("krb5-replay.rcache")
    }

    /// Base URL of downloads written into certificates: plain HTTP when
    /// configured, else the HTTPS server.
    pub fn download_base(&self) -> &str {
        self.http_url.as_deref().unwrap_or(&self.url)
    }

    pub fn certificate_url(&self) -> String {
        format!("{}/CertEnroll/{}.crt", self.download_base(), self.name)
    }

    pub fn crl_url(&self) -> String {
        format!("{}/CertEnroll/{}.crl", self.download_base(), self.name)
    }

    pub fn key_path(&self) -> PathBuf {
        self.state_dir.join("ca-key.pem")
    }
    pub fn certificate_path(&self) -> PathBuf {
        self.state_dir.join("ca.pem")
    }
    /// The NDES role's RA keys and certificates, and the key that seals
    /// dynamic challenges.
    pub fn ndes_dir(&self) -> PathBuf {
        self.state_dir.join("ndes")
    }
    pub fn tls_key_path(&self) -> PathBuf {
        self.state_dir.join("tls-key.pem")
    }
    pub fn tls_certificate_path(&self) -> PathBuf {
        self.state_dir.join("tls.pem")
    }
    pub fn crl_path(&self) -> PathBuf {
        self.state_dir.join("current.crl")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "corp-CA"
dns_host_name = "ca.corp.example"
listen = "127.0.0.1:8443"
http_listen = "127.0.0.1:8080"
state_dir = "ca"
templates = ["WorkstationAuth", "User"]

[directory]
url = "ldap://dc01.corp.example"
starttls = true
bind = "simple"
user = "CN=ca-svc,CN=Users,DC=corp,DC=example"
password_file = "ca-svc.secret"
"#;

    fn parse(text: &str) -> Result<CaConfig, PolicyError> {
        CaConfig::parse(text, Path::new("/etc/autoenroll/ca.toml"))
    }

    #[test]
    fn good_config_and_defaults() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.name, "corp-CA");
        assert_eq!(c.url, "https://ca.corp.example:8443");
        assert_eq!(
            c.endpoint_url(),
            "https://ca.corp.example:8443/corp-CA_CES_UsernamePassword/service.svc/CES"
        );
        assert_eq!(
            c.crl_url(),
            "http://ca.corp.example:8080/CertEnroll/corp-CA.crl"
        );
        assert_eq!(c.database, Path::new("/etc/autoenroll/ca/requests.sqlite"));
        assert_eq!(c.key_algorithm, KeyAlgorithm::Rsa { bits: 3072 });
        assert_eq!(c.templates, ["WorkstationAuth", "User"]);
        assert_eq!(c.crl_validity, Duration::from_secs(7 * 86_400));
    }

    #[test]
    fn the_kerberos_endpoint_has_its_keytab_url_and_principal() {
        assert_eq!(parse(GOOD).unwrap().kerberos, None);
        assert_eq!(parse(GOOD).unwrap().kerberos_endpoint_url(), None);
        let text = GOOD.replace(
            "templates =",
            "kerberos_keytab = \"http.keytab\"\nkerberos_url = \"https://localhost:8443\"\nkrb5_conf = \"krb5.conf\"\ntemplates =",
        );
        let c = parse(&text).unwrap();
        let k = c.kerberos.as_ref().unwrap();
        assert_eq!(k.keytab, Path::new("/etc/autoenroll/http.keytab"));
        assert_eq!(
            k.krb5_conf.as_deref(),
            Some(Path::new("/etc/autoenroll/krb5.conf"))
        );
        assert_eq!(
            c.kerberos_endpoint_url().unwrap(),
            "https://localhost:8443/corp-CA_CES_Kerberos/service.svc/CES"
        );
        assert_eq!(c.kerberos_service().unwrap(), "HTTP/localhost");
        // Without its own URL, the CA's.
        let text = GOOD.replace(
            "templates =",
            "kerberos_keytab = \"http.keytab\"\ntemplates =",
        );
        let c = parse(&text).unwrap();
        assert_eq!(c.kerberos_service().unwrap(), "HTTP/ca.corp.example");
        for (extra, wanted) in [
            (
                "kerberos_url = \"https://x\"\n",
                "kerberos_url: kerberos_keytab as well",
            ),
            (
                "krb5_conf = \"k\"\n",
                "krb5_conf: kerberos_keytab or rpc_keytab as well",
            ),
            (
                "rpc_listen = \"127.0.0.1:0\"\n",
                "rpc_listen: rpc_keytab as well",
            ),
            (
                "rpc_keytab = \"h\"\nrpc_epm_listen = \"nowhere\"\n",
                "rpc_epm_listen: an address and port",
            ),
            (
                "kerberos_keytab = \"k\"\nkerberos_url = \"http://x\"\n",
                "kerberos_url: a https:// base URL",
            ),
        ] {
            let e = parse(&GOOD.replace("templates =", &format!("{extra}templates =")))
                .unwrap_err()
                .to_string();
            assert!(e.contains(wanted), "{extra}: {e}");
        }
    }

    #[test]
    fn errors_name_line_and_key() {
        let cases = [
            ("name = \"corp-CA\"", "name = \"corp,CA\"", ":2: name:"),
            (
                "listen = \"127.0.0.1:8443\"",
                "listen = \"here\"",
                ":4: listen:",
            ),
            (
                "state_dir = \"ca\"",
                "state_dir = \"ca\"\nkey_algorithm = \"dsa\"",
                ":7: key_algorithm:",
            ),
            (
                "starttls = true",
                "starttls = true\ntimeout = \"soon\"",
                "directory.timeout",
            ),
        ];
        for (from, to, wanted) in cases {
            let text = GOOD.replace(from, to);
            let e = parse(&text).unwrap_err().to_string();
            assert!(e.contains(wanted), "{to}: {e}");
        }
    }

    #[test]
    fn the_ndes_table_mirrors_ndes_settings() {
        assert_eq!(parse(GOOD).unwrap().ndes, None);
        let c = parse(&format!(
            "{GOOD}\n[ndes]\nservice_account = \"NDES-SVC$\"\ngeneral_purpose_template = \"WebServer\"\nadmins = [\"S-1-5-21-1-2-3-512\"]\n"
        ))
        .unwrap();
        let n = c.ndes.clone().unwrap();
        assert_eq!(n.service_account, "NDES-SVC$");
        assert_eq!(n.signature_template, NDES_DEFAULT_TEMPLATE);
        assert_eq!(n.encryption_template, NDES_DEFAULT_TEMPLATE);
        assert_eq!(n.general_purpose_template, "WebServer");
        assert_eq!(n.challenge_validity, Duration::from_secs(3600));
        assert_eq!(n.password_max, 5);
        assert_eq!(c.ndes_dir(), Path::new("/etc/autoenroll/ca/ndes"));
        for (extra, wanted) in [
            ("[ndes]\nservice_account = \" \"\n", "service_account"),
            (
                "[ndes]\nservice_account = \"X$\"\nchallenge_validity = \"0s\"\n",
                "challenge_validity",
            ),
            (
                "[ndes]\nservice_account = \"X$\"\nPasswordMax = 3\n",
                "PasswordMax",
            ),
            ("[ndes]\nadmins = []\n", "service_account"),
        ] {
            let e = parse(&format!("{GOOD}\n{extra}")).unwrap_err().to_string();
            assert!(e.contains(wanted), "{extra}: {e}");
        }
    }
}
