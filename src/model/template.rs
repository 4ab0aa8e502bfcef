//! Certificate templates and the enterprise CAs (enrollment services) that
//! publish them, as the directory describes them ([MS-CRTD] 2, adcs.md sections 1-2).

use serde::Serialize;

use super::{EnrollmentFlags, GeneralFlags, NameFlags, Period, PrivateKeyFlags};

/// A certificate template (`pKICertificateTemplate`). Attribute names are kept in
/// the doc comments so an administrator can find each field in ADSI Edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub dn: String,
    /// `cn`: the short name used by `certificateTemplates`, supersedence and the
    /// v1 name extension.
    pub cn: String,
    /// `displayName`.
    pub display_name: Option<String>,
    /// `flags`.
    pub flags: GeneralFlags,
    /// `revision`: the major version. A held certificate with a smaller major
    /// version is re-enrolled.
    pub revision: u32,
    /// `msPKI-Template-Minor-Revision`; minor changes never trigger anything.
    pub minor_revision: u32,
    /// `msPKI-Template-Schema-Version` (absent means 1).
    pub schema_version: u32,
    /// `msPKI-Cert-Template-OID`, carried in issued certificates (1.3.6.1.4.1.311.21.7).
    pub oid: Option<String>,
    /// `pKIExpirationPeriod`: the validity the CA gives.
    pub validity: Option<Period>,
    /// `pKIOverlapPeriod`: the renewal period, the window before expiry in which
    /// the client renews.
    pub renewal_period: Option<Period>,
    /// `pKIKeyUsage`: the content bytes of the KeyUsage BIT STRING.
    pub key_usage: Option<Vec<u8>>,
    /// `pKIExtendedKeyUsage`.
    pub extended_key_usage: Vec<String>,
    /// `pKIDefaultKeySpec`: 1 key exchange, 2 signature.
    pub default_key_spec: Option<u32>,
    /// `pKIMaxIssuingDepth`; -1 means no limit.
    pub max_issuing_depth: Option<i32>,
    /// `pKICriticalExtensions`: OIDs of extensions to mark critical.
    pub critical_extensions: Vec<String>,
    /// `pKIDefaultCSPs`: `"<order>,<provider>"` strings.
    pub default_csps: Vec<String>,
    /// `msPKI-Minimal-Key-Size` in bits.
    pub minimal_key_size: u32,
    /// `msPKI-RA-Signature`: enrollment-agent signatures the CA requires.
    pub ra_signatures: u32,
    /// `msPKI-RA-Application-Policies`: plain OIDs (v1/v2) or, in v3/v4, backquote
    /// separated `name`type`value` triplets naming the key algorithm and hash.
    pub ra_application_policies: Vec<String>,
    /// `msPKI-Supersede-Templates`: cn's of the templates this one replaces.
    pub supersedes: Vec<String>,
    /// `msPKI-Certificate-Policy`: issuance policy OIDs.
    pub certificate_policies: Vec<String>,
    /// `msPKI-Certificate-Application-Policy`: application policy OIDs.
    pub application_policies: Vec<String>,
    /// `msPKI-Enrollment-Flag`.
    pub enrollment_flags: EnrollmentFlags,
    /// `msPKI-Private-Key-Flag`.
    pub private_key_flags: PrivateKeyFlags,
    /// `msPKI-Certificate-Name-Flag`.
    pub name_flags: NameFlags,
}

impl Template {
    /// Computer certificate (MACHINE_TYPE): requested only in the machine context.
    pub fn is_machine(&self) -> bool {
        self.flags.contains(GeneralFlags::MACHINE_TYPE)
    }

    /// The key algorithm a v3/v4 template names in `msPKI-RA-Application-Policies`
    /// (`msPKI-Asymmetric-Algorithm`), e.g. `RSA`, `ECDSA_P256`. None for v1/v2.
    pub fn asymmetric_algorithm(&self) -> Option<&str> {
        self.ra_application_policy("msPKI-Asymmetric-Algorithm")
    }

    /// Looks up one named item of the v3/v4 `msPKI-RA-Application-Policies`
    /// triplet list (`name`type`value`, several triplets in one value).
    pub fn ra_application_policy(&self, name: &str) -> Option<&str> {
        if self.schema_version < 3 {
            return None;
        }
        self.ra_application_policies.iter().find_map(|value| {
            let parts: Vec<&str> = value.split('`').collect();
            parts
                .chunks(3)
                .find(|c| c.len() == 3 && c[0].eq_ignore_ascii_case(name))
                .map(|c| c[2])
        })
    }
}

/// One enrollment endpoint of a CA from `msPKI-Enrollment-Servers`: four
/// lines per entry, priority, authentication type, renewal-only flag and URL
/// ([MS-ADTS] 2.2.x, the CES publication format).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnrollmentServer {
    pub priority: u32,
    /// 1 anonymous, 2 Kerberos, 4 user name and password, 8 client certificate.
    pub authentication: u32,
    pub renewal_only: bool,
    pub url: String,
}

impl EnrollmentServer {
    /// Parses one `msPKI-Enrollment-Servers` value; it may hold several entries.
    pub fn parse_value(value: &str) -> Result<Vec<EnrollmentServer>, String> {
        let lines: Vec<&str> = value
            .split('\n')
            .map(|l| l.trim_end_matches('\r'))
            .filter(|l| !l.is_empty())
            .collect();
        if lines.is_empty() || !lines.len().is_multiple_of(4) {
            return Err(format!(
                "expected groups of 4 lines (priority, authentication, renewal-only, URL), found {} lines",
                lines.len()
            ));
        }
        lines
            .chunks(4)
            .map(|c| {
                let num = |s: &str, what: &str| {
                    s.trim()
                        .parse::<u32>()
                        .map_err(|_| format!("{what} must be a number, found {s:?}"))
                };
                Ok(EnrollmentServer {
                    priority: num(c[0], "priority")?,
                    authentication: num(c[1], "authentication type")?,
                    renewal_only: num(c[2], "renewal-only flag")? != 0,
                    url: c[3].trim().to_string(),
                })
            })
            .collect()
    }

    /// The value this entry takes in `msPKI-Enrollment-Servers`.
    pub fn to_value(&self) -> String {
        format!(
            "{}\n{}\n{}\n{}",
            self.priority, self.authentication, self.renewal_only as u8, self.url
        )
    }
}

/// An enterprise CA (`pKIEnrollmentService` under Enrollment Services).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnrollmentService {
    pub dn: String,
    /// `cn`: the CA's name.
    pub cn: String,
    pub display_name: Option<String>,
    /// `dNSHostName` of the CA's host.
    pub dns_host_name: Option<String>,
    /// `certificateTemplates`: cn's of the templates this CA issues.
    pub templates: Vec<String>,
    /// `cACertificate` (DER); empty until the CA publishes itself.
    #[serde(skip)]
    pub ca_certificates: Vec<Vec<u8>>,
    /// `msPKI-Enrollment-Servers`: where to send MS-WSTEP requests.
    pub enrollment_servers: Vec<EnrollmentServer>,
}

impl EnrollmentService {
    pub fn publishes(&self, template_cn: &str) -> bool {
        self.templates
            .iter()
            .any(|t| t.eq_ignore_ascii_case(template_cn))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enrollment_servers_value() {
        let v = "1\n4\n0\nhttps://ca.corp.example/corp-CA_CES_UsernamePassword/service.svc/CES\n";
        let s = EnrollmentServer::parse_value(v).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].authentication, 4);
        assert!(!s[0].renewal_only);
        assert_eq!(EnrollmentServer::parse_value(&s[0].to_value()).unwrap(), s);
        let two = format!("{}\n{}", s[0].to_value(), "2\n8\n1\nhttps://x/CES");
        assert_eq!(EnrollmentServer::parse_value(&two).unwrap().len(), 2);
        assert!(EnrollmentServer::parse_value("1\n4\nhttps://x").is_err());
        assert!(EnrollmentServer::parse_value("one\n4\n0\nhttps://x").is_err());
    }
}
