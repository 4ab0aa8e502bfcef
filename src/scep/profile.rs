//! SCEP profiles of the local policy, `[scep.<name>]`: what an Intune SCEP
//! certificate profile names (certificate type, subject format, SANs, key
//! usage, key size, hash, EKUs, validity, the root to trust, the renewal
//! threshold, the SCEP server URLs) and where the challenge comes from.
//! Validated on load; errors name file, line, key and what was expected.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::names::{self, SanKind};
use crate::policy::{PolicyError, Source};

/// Whose certificate a profile makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateType {
    User,
    Device,
}

/// Where the challenge password comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChallengeSource {
    /// No challenge (a server that asks for none).
    None,
    /// A static challenge in a file that only its owner reads (0600).
    File(PathBuf),
    /// A one-time challenge fetched from NDES's admin page
    /// (`/certsrv/mscep_admin/`, HTTPS) with the host's credentials.
    NdesAdmin { url: String },
    /// A dynamic, integrity-bound challenge from the CA's validation service.
    Dynamic { url: String },
}

impl ChallengeSource {
    /// The static challenge of a `file` source, read as a password file is:
    /// a regular file of one line that group and others cannot read (0600);
    /// errors name the file, never its content. `None` for the other sources.
    pub fn read_static(&self) -> Option<Result<String, String>> {
        match self {
            ChallengeSource::File(path) => Some(crate::policy::read_password_file(path)),
            _ => None,
        }
    }
}

/// One `[scep.<name>]` profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScepProfile {
    pub name: String,
    pub certificate_type: CertificateType,
    /// The subject format, CertStrToName syntax with `{{variables}}`.
    pub subject: String,
    /// SAN templates by kind, in the order written.
    pub sans: Vec<(SanKind, String)>,
    /// KeyUsage bits (bit 0 = digitalSignature, RFC 5280 4.2.1.3).
    pub key_usage: u16,
    /// RSA key size: SCEP answers are encrypted to the requester's key.
    pub key_size: u32,
    /// Dotted OIDs.
    pub ekus: Vec<String>,
    /// The requested validity; honoured only where the CA allows requester
    /// end dates, and never beyond the template's or the CA's own end.
    pub validity: Option<Duration>,
    /// The root the server's GetCACert answer must chain to.
    pub root: PathBuf,
    pub renewal_threshold_percent: u8,
    /// SCEP server URLs, tried in order.
    pub urls: Vec<String>,
    pub challenge: ChallengeSource,
    /// Ask for revocation when the profile is removed from the policy.
    pub revoke_on_remove: bool,
    /// Files services read, as a template's (`[scep.<name>.export]`).
    pub export: Option<crate::policy::Export>,
    /// Run after a certificate of the profile is installed.
    pub post_install: Option<String>,
}

impl ScepProfile {
    /// What the profile asks for with these variables: the subject and SANs
    /// rendered, key usage, EKUs and the requested validity in whole days.
    pub fn csr_spec(
        &self,
        vars: &names::Variables,
    ) -> Result<super::request::CsrSpec, names::NameError> {
        let subject = names::render_subject(&self.subject, vars)?;
        let sans = self
            .sans
            .iter()
            .map(|(kind, template)| names::render_san(*kind, template, vars))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(super::request::CsrSpec {
            subject,
            sans,
            key_usage: Some(self.key_usage),
            ekus: self.ekus.clone(),
            validity_days: self
                .validity
                .map(|d| u32::try_from(d.as_secs().div_ceil(86_400)).unwrap_or(u32::MAX)),
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProfile {
    #[serde(rename = "type")]
    certificate_type: Spanned<String>,
    subject: Spanned<String>,
    #[serde(default)]
    san: Vec<Spanned<String>>,
    #[serde(default)]
    key_usage: Option<Spanned<Vec<Spanned<String>>>>,
    key_size: Option<Spanned<i64>>,
    hash: Option<Spanned<String>>,
    #[serde(default)]
    ekus: Vec<Spanned<String>>,
    validity: Option<Spanned<String>>,
    root: Spanned<PathBuf>,
    renewal_threshold_percent: Option<Spanned<i64>>,
    urls: Spanned<Vec<Spanned<String>>>,
    challenge: Option<Spanned<String>>,
    challenge_file: Option<Spanned<PathBuf>>,
    challenge_url: Option<Spanned<String>>,
    #[serde(default)]
    revoke_on_remove: bool,
    export: Option<Spanned<crate::policy::RawExport>>,
    post_install: Option<Spanned<String>>,
}

/// KeyUsage names (RFC 5280 4.2.1.3) and their bits.
const KEY_USAGES: &[(&str, u16)] = &[
    ("digital_signature", 1 << 0),
    ("non_repudiation", 1 << 1),
    ("key_encipherment", 1 << 2),
    ("data_encipherment", 1 << 3),
    ("key_agreement", 1 << 4),
];

/// EKU names and their OIDs (RFC 5280 4.2.1.12, Microsoft's smart card logon).
const EKUS: &[(&str, &str)] = &[
    ("client_auth", "1.3.6.1.5.5.7.3.2"),
    ("server_auth", "1.3.6.1.5.5.7.3.1"),
    ("email_protection", "1.3.6.1.5.5.7.3.4"),
    ("code_signing", "1.3.6.1.5.5.7.3.3"),
    ("smart_card_logon", "1.3.6.1.4.1.311.20.2.2"),
];

fn is_dotted_oid(s: &str) -> bool {
    let arcs: Vec<&str> = s.split('.').collect();
    arcs.len() >= 2
        && arcs
            .iter()
            .all(|a| !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()))
}

/// Validates the `[scep.*]` tables.
pub(crate) fn validate(
    raw: &BTreeMap<String, RawProfile>,
    src: &Source<'_>,
) -> Result<BTreeMap<String, ScepProfile>, PolicyError> {
    let mut out = BTreeMap::new();
    for (name, p) in raw {
        let key = |k: &str| format!("scep.{name}.{k}");
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(src.invalid(
                p.subject.span(),
                &format!("scep.{name}"),
                "a profile name of letters, digits, - and _".into(),
            ));
        }
        let certificate_type = match p.certificate_type.get_ref().to_ascii_lowercase().as_str() {
            "user" => CertificateType::User,
            "device" => CertificateType::Device,
            other => {
                return Err(src.invalid(
                    p.certificate_type.span(),
                    &key("type"),
                    format!("\"user\" or \"device\", found {other:?}"),
                ));
            }
        };
        names::check_subject_format(p.subject.get_ref())
            .map_err(|e| src.invalid(p.subject.span(), &key("subject"), e.to_string()))?;
        let mut sans = Vec::new();
        for s in &p.san {
            let (kind, template) = s
                .get_ref()
                .split_once(':')
                .and_then(|(k, t)| SanKind::from_name(k.trim()).map(|k| (k, t.trim().to_string())))
                .ok_or_else(|| {
                    src.invalid(
                        s.span(),
                        &key("san"),
                        "\"dns:...\", \"email:...\", \"upn:...\", \"uri:...\" or \"ip:...\"".into(),
                    )
                })?;
            // Checks the variables now, with no values.
            if let Err(names::NameError::UnknownVariable(v)) =
                names::render_san(kind, &template, &names::Variables::new())
            {
                return Err(src.invalid(
                    s.span(),
                    &key("san"),
                    names::NameError::UnknownVariable(v).to_string(),
                ));
            }
            sans.push((kind, template));
        }
        let key_usage = match &p.key_usage {
            None => (1 << 0) | (1 << 2),
            Some(list) => {
                let mut bits = 0u16;
                for u in list.get_ref() {
                    let b = KEY_USAGES
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case(u.get_ref()))
                        .map(|(_, b)| *b)
                        .ok_or_else(|| {
                            src.invalid(
                                u.span(),
                                &key("key_usage"),
                                format!(
                                    "one of {}",
                                    KEY_USAGES
                                        .iter()
                                        .map(|(n, _)| *n)
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ),
                            )
                        })?;
                    bits |= b;
                }
                if bits == 0 {
                    return Err(src.invalid(
                        list.span(),
                        &key("key_usage"),
                        "at least one key usage".into(),
                    ));
                }
                bits
            }
        };
        let key_size = match &p.key_size {
            None => 2048,
            Some(s) => match *s.get_ref() {
                v @ (2048 | 3072 | 4096) => v as u32,
                v => {
                    return Err(src.invalid(
                        s.span(),
                        &key("key_size"),
                        format!("2048, 3072 or 4096 (an RSA key: SCEP encrypts the answer to it), found {v}"),
                    ));
                }
            },
        };
        if let Some(h) = &p.hash
            && !h.get_ref().eq_ignore_ascii_case("sha256")
            && !h.get_ref().eq_ignore_ascii_case("sha-256")
        {
            return Err(src.invalid(
                h.span(),
                &key("hash"),
                format!(
                    "\"sha256\" (SHA-1 and MD5 are not used), found {:?}",
                    h.get_ref()
                ),
            ));
        }
        let mut ekus = Vec::new();
        for e in &p.ekus {
            let v = e.get_ref();
            let oid = EKUS
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(v))
                .map(|(_, o)| (*o).to_string())
                .or_else(|| is_dotted_oid(v).then(|| v.clone()))
                .ok_or_else(|| {
                    src.invalid(
                        e.span(),
                        &key("ekus"),
                        format!(
                            "a dotted OID or one of {}",
                            EKUS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                        ),
                    )
                })?;
            ekus.push(oid);
        }
        let validity = match &p.validity {
            None => None,
            v @ Some(_) => Some(src.duration(v, &key("validity"), Duration::ZERO, false)?),
        };
        let renewal_threshold_percent = match &p.renewal_threshold_percent {
            None => 20,
            Some(v) => match *v.get_ref() {
                n @ 1..=99 => n as u8,
                n => {
                    return Err(src.invalid(
                        v.span(),
                        &key("renewal_threshold_percent"),
                        format!("a percentage from 1 to 99, found {n}"),
                    ));
                }
            },
        };
        let mut urls = Vec::new();
        for u in p.urls.get_ref() {
            let text = u.get_ref();
            let lower = text.to_ascii_lowercase();
            if !(lower.starts_with("http://") || lower.starts_with("https://"))
                || text.contains(['?', '#', ' '])
            {
                return Err(src.invalid(
                    u.span(),
                    &key("urls"),
                    "http:// or https:// URLs of the SCEP path, without a query".into(),
                ));
            }
            urls.push(text.clone());
        }
        if urls.is_empty() {
            return Err(src.invalid(
                p.urls.span(),
                &key("urls"),
                "at least one SCEP server URL".into(),
            ));
        }
        let https_url = |k: &str, v: &Option<Spanned<String>>, span| {
            let v = v.as_ref().ok_or_else(|| {
                src.invalid(span, &key(k), "the URL of the challenge service".into())
            })?;
            if !v.get_ref().to_ascii_lowercase().starts_with("https://") {
                return Err(src.invalid(
                    v.span(),
                    &key(k),
                    "an https:// URL (it takes the host's credentials)".into(),
                ));
            }
            Ok(v.get_ref().clone())
        };
        let challenge = match &p.challenge {
            None => ChallengeSource::None,
            Some(c) => match c.get_ref().as_str() {
                "none" => ChallengeSource::None,
                "file" => ChallengeSource::File(
                    p.challenge_file
                        .as_ref()
                        .map(|f| src.resolve(f.get_ref()))
                        .ok_or_else(|| {
                            src.invalid(
                                c.span(),
                                &key("challenge_file"),
                                "the file holding the challenge (mode 0600)".into(),
                            )
                        })?,
                ),
                "ndes-admin" => ChallengeSource::NdesAdmin {
                    url: https_url("challenge_url", &p.challenge_url, c.span())?,
                },
                "dynamic" => ChallengeSource::Dynamic {
                    url: https_url("challenge_url", &p.challenge_url, c.span())?,
                },
                other => {
                    return Err(src.invalid(
                        c.span(),
                        &key("challenge"),
                        format!(
                            "\"none\", \"file\", \"ndes-admin\" or \"dynamic\", found {other:?}"
                        ),
                    ));
                }
            },
        };
        out.insert(
            name.clone(),
            ScepProfile {
                name: name.clone(),
                certificate_type,
                subject: p.subject.get_ref().clone(),
                sans,
                key_usage,
                key_size,
                ekus,
                validity,
                root: src.resolve(p.root.get_ref()),
                renewal_threshold_percent,
                urls,
                challenge,
                revoke_on_remove: p.revoke_on_remove,
                export: match &p.export {
                    Some(e) => Some(crate::policy::export_settings(src, e, &key("export"))?),
                    None => None,
                },
                post_install: match &p.post_install {
                    Some(cmd) if cmd.get_ref().trim().is_empty() => {
                        return Err(src.invalid(
                            cmd.span(),
                            &key("post_install"),
                            "a command, found an empty string".into(),
                        ));
                    }
                    Some(cmd) => Some(cmd.get_ref().clone()),
                    None => None,
                },
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;
    use std::path::Path;

    const BASE: &str = r#"
context = "machine"
account = "ws01$"

[directory]
url = "ldap://dc01.corp.example"
starttls = true
ca_file = "corp-root.pem"
bind = "simple"
user = "CN=ws01,CN=Computers,DC=corp,DC=example"
password_file = "ws01.secret"
"#;

    const WIFI: &str = r#"
[scep.wifi]
type = "device"
subject = 'CN={{DeviceName}},OU=Mobile,O="Finance Group, Inc.",C=US'
san = ["dns:{{FullyQualifiedDomainName}}", "upn:{{UserName}}"]
key_usage = ["digital_signature", "key_encipherment"]
key_size = 3072
hash = "sha256"
ekus = ["client_auth", "1.3.6.1.4.1.311.20.2.2"]
validity = "180days"
root = "scep-root.pem"
renewal_threshold_percent = 25
urls = ["http://ndes.corp.example/certsrv/mscep/mscep.dll"]
challenge = "ndes-admin"
challenge_url = "https://ndes.corp.example/certsrv/mscep_admin/"
revoke_on_remove = true
"#;

    fn parse(extra: &str) -> Result<Policy, PolicyError> {
        Policy::parse(
            &format!("{BASE}{extra}"),
            Path::new("/etc/autoenroll/machine.toml"),
        )
    }

    #[test]
    fn a_full_profile() {
        let p = parse(WIFI).unwrap();
        let w = &p.scep["wifi"];
        assert_eq!(w.certificate_type, CertificateType::Device);
        assert_eq!(w.sans.len(), 2);
        assert_eq!(w.key_usage, 0b101);
        assert_eq!(w.key_size, 3072);
        assert_eq!(w.ekus, ["1.3.6.1.5.5.7.3.2", "1.3.6.1.4.1.311.20.2.2"]);
        assert_eq!(w.validity, Some(Duration::from_secs(180 * 86400)));
        assert_eq!(w.root, Path::new("/etc/autoenroll/scep-root.pem"));
        assert_eq!(w.renewal_threshold_percent, 25);
        assert!(w.revoke_on_remove);
        assert_eq!(
            w.challenge,
            ChallengeSource::NdesAdmin {
                url: "https://ndes.corp.example/certsrv/mscep_admin/".into()
            }
        );
    }

    #[test]
    fn a_profile_renders_its_request() {
        let p = parse(WIFI).unwrap();
        let mut vars = names::Variables::new();
        vars.set("DeviceName", "ws01")
            .set("FullyQualifiedDomainName", "ws01.corp.example")
            .set("UserName", "ws01$@corp.example");
        let spec = p.scep["wifi"].csr_spec(&vars).unwrap();
        let subject: Vec<(&str, &str)> = spec
            .subject
            .iter()
            .map(|a| (a.oid.as_str(), a.value.as_str()))
            .collect();
        assert_eq!(
            subject,
            [
                ("2.5.4.3", "ws01"),
                ("2.5.4.11", "Mobile"),
                ("2.5.4.10", "Finance Group, Inc."),
                ("2.5.4.6", "US"),
            ]
        );
        assert_eq!(
            spec.sans,
            [
                super::super::request::SanEntry::Dns("ws01.corp.example".into()),
                super::super::request::SanEntry::Upn("ws01$@corp.example".into()),
            ]
        );
        assert_eq!(spec.validity_days, Some(180));
        assert_eq!(spec.key_usage, Some(0b101));
        // Without an FQDN the DNS SAN cannot be made: the variable is named.
        let mut missing = names::Variables::new();
        missing.set("DeviceName", "ws01");
        let e = p.scep["wifi"].csr_spec(&missing).unwrap_err();
        assert_eq!(
            e,
            names::NameError::NoValue("FullyQualifiedDomainName".into())
        );
    }

    #[test]
    fn errors_name_the_key() {
        // (replace this, with that, the error names)
        let cases: &[(&str, &str, &str)] = &[
            ("{{DeviceName}}", "{{Nope}}", "scep.wifi.subject"),
            ("\"device\"", "\"phone\"", "scep.wifi.type"),
            ("key_size = 3072", "key_size = 1024", "scep.wifi.key_size"),
            ("hash = \"sha256\"", "hash = \"sha1\"", "scep.wifi.hash"),
            ("\"client_auth\"", "\"bogus\"", "scep.wifi.ekus"),
            ("= 25", "= 100", "scep.wifi.renewal_threshold_percent"),
            ("\"http://ndes", "\"ftp://ndes", "scep.wifi.urls"),
            ("\"dns:", "\"fax:", "scep.wifi.san"),
            ("upn:{{UserName}}", "upn:{{Who}}", "scep.wifi.san"),
            (
                "challenge_url = \"https://",
                "challenge_url = \"http://",
                "scep.wifi.challenge_url",
            ),
            ("\"ndes-admin\"", "\"maybe\"", "scep.wifi.challenge"),
            ("\"digital_signature\"", "\"sign\"", "scep.wifi.key_usage"),
        ];
        for (from, to, key) in cases {
            assert!(WIFI.contains(from), "{from}");
            let e = parse(&WIFI.replacen(from, to, 1)).unwrap_err().to_string();
            assert!(e.contains(key), "{to}: {e}");
            assert!(e.contains("machine.toml:"), "{e}");
        }
        let e = parse(&WIFI.replace("revoke_on_remove", "revoke_later")).unwrap_err();
        assert!(e.to_string().contains("revoke_later"), "{e}");
    }

    #[test]
    fn a_static_challenge_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wifi.challenge");
        std::fs::write(&file, "0123-secret\n").unwrap();
        let source = ChallengeSource::File(file.clone());
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = source.read_static().unwrap().unwrap_err();
        assert!(e.contains("chmod 600") && !e.contains("0123-secret"), "{e}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(source.read_static().unwrap().unwrap(), "0123-secret");
        assert!(ChallengeSource::None.read_static().is_none());
    }

    #[test]
    fn no_profiles_is_fine() {
        assert!(parse("").unwrap().scep.is_empty());
    }
}
