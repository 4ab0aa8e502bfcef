//! What installing an enterprise CA writes to the directory, and the CRLs it
//! publishes afterwards (adcs.md section 1, [MS-ADTS] 6.1.1.2.x for where
//! Public Key Services objects live).
//!
//! Every write is idempotent: objects that exist are updated, values that are
//! present are left as they are, so running `ca init` again is harmless.
//!
//! OpenLDAP's core schema gives `cACertificate` and the CRL attributes the
//! certificate syntax, so values are written with the `;binary` option.
//! Objects the CA creates follow the sample forest: `container` + `pkiCA`
//! (core's `certificationAuthority` would demand CRLs on a root entry) with the
//! `adEmulatedObject` attributes every AD object carries.

use std::collections::HashSet;

use ldap3::{Mod, Scope};
use time::OffsetDateTime;

use crate::directory::connection::{describe, ldap_result_text};
use crate::directory::sddl::parse_sddl;
use crate::directory::{Directory, DirectoryError, NamingContexts};
use crate::model::Sid;
use crate::model::template::EnrollmentServer;

/// What `ca init` publishes.
#[derive(Debug, Clone)]
pub struct Publication<'a> {
    pub ca_name: &'a str,
    pub dns_host_name: &'a str,
    pub ca_certificate: &'a [u8],
    /// Subject of the CA certificate in RFC 4514 text (`cACertificateDN`).
    pub ca_subject: &'a str,
    /// The WSTEP endpoint (`msPKI-Enrollment-Servers`).
    pub endpoint_url: &'a str,
    /// The Kerberos WSTEP endpoint, published beside it with authentication
    /// 2 (Kerberos, certenroll's X509AuthKerberos; the attribute is
    /// [MS-ADA2] 2.612), when the CA has one.
    pub kerberos_endpoint_url: Option<&'a str>,
    /// Templates to publish; empty leaves `certificateTemplates` as it is.
    pub templates: &'a [String],
    /// A CRL for the CDP object.
    pub crl: &'a [u8],
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error("{dn}: {what}")]
    Write { dn: String, what: String },
}

/// Security descriptor of objects the CA creates: administrators and the
/// Cert Publishers group (RID 517) may write, everyone authenticated may read.
const CREATED_OBJECT_SDDL: &str = "O:DAG:DAD:AI(A;;CCDCLCSWRPWPDTLOCRSDRCWDWO;;;DA)(A;;CCDCLCSWRPWPDTLOCRSDRCWDWO;;;EA)(A;;CCDCLCSWRPWPDTLOCRSDRCWDWO;;;CA)(A;;LCRPLORC;;;AU)";

/// The first label of the CA's host name: the folder of its CDP object.
pub fn cdp_host(dns_host_name: &str) -> &str {
    dns_host_name.split('.').next().unwrap_or(dns_host_name)
}

pub fn enrollment_service_dn(naming: &NamingContexts, ca: &str) -> String {
    format!(
        "CN={ca},CN=Enrollment Services,{}",
        naming.public_key_services()
    )
}

pub fn aia_dn(naming: &NamingContexts, ca: &str) -> String {
    format!("CN={ca},CN=AIA,{}", naming.public_key_services())
}

pub fn cdp_dn(naming: &NamingContexts, ca: &str, host: &str) -> String {
    format!(
        "CN={ca},CN={},CN=CDP,{}",
        cdp_host(host),
        naming.public_key_services()
    )
}

/// LDAP URLs of the AIA and CDP objects as they appear inside certificates
/// (adcs.md section 1).
pub fn aia_ldap_url(naming: &NamingContexts, ca: &str) -> String {
    format!(
        "ldap:///{}?cACertificate?base?objectClass=certificationAuthority",
        aia_dn(naming, ca)
    )
}

pub fn cdp_ldap_url(naming: &NamingContexts, ca: &str, host: &str) -> String {
    format!(
        "ldap:///{}?certificateRevocationList?base?objectClass=cRLDistributionPoint",
        cdp_dn(naming, ca, host)
    )
}

/// Publishes the CA. Returns one line per change made, for the operator.
pub async fn publish(
    dir: &mut Directory,
    naming: &NamingContexts,
    p: &Publication<'_>,
) -> Result<Vec<String>, PublishError> {
    let pks = naming.public_key_services();
    let domain = domain_sid(dir, naming).await?;
    let mut changes = Vec::new();

    let service = enrollment_service_dn(naming, p.ca_name);
    if create(dir, &service, &["pKIEnrollmentService"], &domain, p.ca_name).await? {
        changes.push(format!("created {service}"));
    }
    let server = EnrollmentServer {
        priority: 1,
        authentication: 4,
        renewal_only: false,
        url: p.endpoint_url.to_string(),
    };
    let mut mods = vec![
        replace("cACertificate;binary", [p.ca_certificate.to_vec()]),
        replace("cACertificateDN", [p.ca_subject.as_bytes().to_vec()]),
        replace("dNSHostName", [p.dns_host_name.as_bytes().to_vec()]),
        replace(
            "msPKI-Enrollment-Servers",
            std::iter::once(server.to_value().into_bytes()).chain(p.kerberos_endpoint_url.map(
                |url| {
                    EnrollmentServer {
                        authentication: 2,
                        url: url.to_string(),
                        ..server.clone()
                    }
                    .to_value()
                    .into_bytes()
                },
            )),
        ),
        replace("flags", [b"10".to_vec()]),
    ];
    if !p.templates.is_empty() {
        mods.push(replace(
            "certificateTemplates",
            p.templates.iter().map(|t| t.as_bytes().to_vec()),
        ));
    }
    modify(dir, &service, mods).await?;
    changes.push(format!(
        "{service}: cACertificate, msPKI-Enrollment-Servers {}",
        p.endpoint_url
    ));

    let root = format!("CN={},CN=Certification Authorities,{pks}", p.ca_name);
    let ntauth = format!("CN=NTAuthCertificates,{pks}");
    let aia = aia_dn(naming, p.ca_name);
    for (dn, what) in [(&root, "trusted root"), (&ntauth, "NTAuth"), (&aia, "AIA")] {
        let cn = dn
            .strip_prefix("CN=")
            .and_then(|r| r.split(',').next())
            .unwrap_or(p.ca_name);
        if create(dir, dn, &["container", "pkiCA"], &domain, cn).await? {
            changes.push(format!("created {dn}"));
        }
        if add_value(dir, dn, "cACertificate;binary", p.ca_certificate).await? {
            changes.push(format!("{dn}: added the CA certificate ({what})"));
        }
    }

    let host = format!("CN={},CN=CDP,{pks}", cdp_host(p.dns_host_name));
    if create(
        dir,
        &host,
        &["container"],
        &domain,
        cdp_host(p.dns_host_name),
    )
    .await?
    {
        changes.push(format!("created {host}"));
    }
    let cdp = cdp_dn(naming, p.ca_name, p.dns_host_name);
    if create(dir, &cdp, &["cRLDistributionPoint"], &domain, p.ca_name).await? {
        changes.push(format!("created {cdp}"));
    }
    if !has_crl(dir, &cdp).await? {
        publish_crl(dir, naming, p.ca_name, p.dns_host_name, p.crl).await?;
        changes.push(format!("{cdp}: published an empty CRL"));
    }
    Ok(changes)
}

/// Replaces the CRL on the CA's CDP object.
pub async fn publish_crl(
    dir: &mut Directory,
    naming: &NamingContexts,
    ca: &str,
    host: &str,
    crl: &[u8],
) -> Result<(), PublishError> {
    let dn = cdp_dn(naming, ca, host);
    modify(
        dir,
        &dn,
        vec![
            replace("certificateRevocationList;binary", [crl.to_vec()]),
            replace("whenChanged", [generalized_time(OffsetDateTime::now_utc())]),
        ],
    )
    .await
}

async fn has_crl(dir: &mut Directory, dn: &str) -> Result<bool, PublishError> {
    let found = dir
        .search(
            dn,
            Scope::Base,
            "(objectClass=*)",
            &["certificateRevocationList"],
            false,
        )
        .await?;
    Ok(found
        .first()
        .is_some_and(|e| e.has("certificateRevocationList")))
}

/// The domain's SID, from the domain head: owners and ACEs of created objects
/// name domain groups.
async fn domain_sid(dir: &mut Directory, naming: &NamingContexts) -> Result<Sid, PublishError> {
    let found = dir
        .search(
            &naming.default,
            Scope::Base,
            "(objectClass=*)",
            &["objectSid"],
            false,
        )
        .await?;
    found
        .first()
        .and_then(|e| e.sid("objectSid").ok().flatten())
        .ok_or_else(|| PublishError::Write {
            dn: naming.default.clone(),
            what: "the domain head has no objectSid".into(),
        })
}

fn replace(attr: &str, values: impl IntoIterator<Item = Vec<u8>>) -> Mod<Vec<u8>> {
    Mod::Replace(attr.as_bytes().to_vec(), values.into_iter().collect())
}

fn generalized_time(t: OffsetDateTime) -> Vec<u8> {
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}.0Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
    .into_bytes()
}

fn write_error(dn: &str, what: String) -> PublishError {
    PublishError::Write {
        dn: dn.to_string(),
        what,
    }
}

/// Adds the object unless it exists. True when it was created.
async fn create(
    dir: &mut Directory,
    dn: &str,
    classes: &[&str],
    domain: &Sid,
    cn: &str,
) -> Result<bool, PublishError> {
    let sd = parse_sddl(CREATED_OBJECT_SDDL, domain)
        .map_err(|e| write_error(dn, format!("security descriptor: {e}")))?;
    let mut guid = [0u8; 16];
    aws_lc_rs::rand::fill(&mut guid).map_err(|_| write_error(dn, "no randomness".into()))?;
    let now = generalized_time(OffsetDateTime::now_utc());
    let set = |v: Vec<Vec<u8>>| v.into_iter().collect::<HashSet<Vec<u8>>>();
    let mut object_classes = vec![b"top".to_vec(), b"adEmulatedObject".to_vec()];
    object_classes.extend(classes.iter().map(|c| c.as_bytes().to_vec()));
    let attrs = vec![
        (b"objectClass".to_vec(), set(object_classes)),
        (b"cn".to_vec(), set(vec![cn.as_bytes().to_vec()])),
        (b"name".to_vec(), set(vec![cn.as_bytes().to_vec()])),
        (b"objectGUID".to_vec(), set(vec![guid.to_vec()])),
        (b"nTSecurityDescriptor".to_vec(), set(vec![sd.to_bytes()])),
        (b"whenCreated".to_vec(), set(vec![now.clone()])),
        (b"whenChanged".to_vec(), set(vec![now])),
    ];
    let result = dir
        .ldap()
        .add(dn, attrs)
        .await
        .map_err(|e| write_error(dn, describe(&e)))?;
    match result.rc {
        0 => Ok(true),
        68 => Ok(false), // entryAlreadyExists
        _ => Err(write_error(
            dn,
            format!("cannot create: {}", ldap_result_text(&result)),
        )),
    }
}

async fn modify(
    dir: &mut Directory,
    dn: &str,
    mods: Vec<Mod<Vec<u8>>>,
) -> Result<(), PublishError> {
    let result = dir
        .ldap()
        .modify(dn, mods)
        .await
        .map_err(|e| write_error(dn, describe(&e)))?;
    if result.rc != 0 {
        return Err(write_error(
            dn,
            format!("cannot modify: {}", ldap_result_text(&result)),
        ));
    }
    Ok(())
}

/// Adds one value unless present. True when it was added.
async fn add_value(
    dir: &mut Directory,
    dn: &str,
    attr: &str,
    value: &[u8],
) -> Result<bool, PublishError> {
    let m = Mod::Add(
        attr.as_bytes().to_vec(),
        std::iter::once(value.to_vec()).collect(),
    );
    let result = dir
        .ldap()
        .modify(dn, vec![m])
        .await
        .map_err(|e| write_error(dn, describe(&e)))?;
    match result.rc {
        0 => Ok(true),
        20 => Ok(false), // attributeOrValueExists
        _ => Err(write_error(
            dn,
            format!("cannot add {attr}: {}", ldap_result_text(&result)),
        )),
    }
}

/// PUBLISH_TO_DS: adds an issued certificate to the account's
/// `userCertificate` (adcs.md section 2, msPKI-Enrollment-Flag 0x8).
pub async fn add_user_certificate(
    dir: &mut Directory,
    account_dn: &str,
    certificate: &[u8],
) -> Result<bool, PublishError> {
    add_value(dir, account_dn, "userCertificate;binary", certificate).await
}
