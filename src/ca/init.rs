//! `ca init`: the CA's key and self-signed certificate, its TLS server
//! certificate, an empty CRL, and the publication to the directory. Running it
//! again keeps the existing key and certificate (a CA's identity never changes
//! by accident), renews the TLS certificate when its names changed, and
//! republishes: it is harmless.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyIdMethod, KeyUsagePurpose, SanType, SerialNumber,
};
use time::OffsetDateTime;

use super::authority::{CaError, Signer};
use super::config::CaConfig;
use super::crl::{CrlInput, build_crl};
use super::db::Database;
use super::issue::{encode_name, restore_issuer_name, stand_in_name_for};
use super::publish::{Publication, publish};
use crate::directory::Directory;
use crate::pki::keys::PrivateKey;
use crate::store::fsutil::{DIR_MODE, Fs, KEY_MODE};

/// What `ca init` did, for the operator.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InitReport {
    pub created_key: bool,
    pub ca_subject: String,
    pub ca_thumbprint: String,
    pub changes: Vec<String>,
}

/// The CA's subject as AD CS names an enterprise CA: its common name below
/// every DC component of the domain, `CN=corp-CA,DC=corp,DC=example` in
/// RFC 4514 text (as `cACertificateDN` shows it), that is the RDN sequence
/// DC=example, DC=corp, CN=corp-CA in the certificate (DER, most significant
/// first).
pub fn ca_subject(name: &str, default_naming_context: &str) -> Result<Vec<u8>, CaError> {
    let mut attributes: Vec<(String, String)> = default_naming_context
        .split(',')
        .rev()
        .filter_map(|part| {
            let (kind, value) = part.trim().split_once('=')?;
            kind.trim()
                .eq_ignore_ascii_case("DC")
                .then(|| ("DC".to_string(), value.trim().to_string()))
        })
        .collect();
    attributes.push(("CN".to_string(), name.to_string()));
    encode_name(&attributes).map_err(|e| CaError::State(format!("the CA's name: {e}")))
}

/// A certificate's subject in RFC 4514 text: most specific RDN first, no
/// spaces (`CN=corp-CA,DC=corp,DC=example`), as AD's `cACertificateDN`.
pub fn rfc4514_subject(der: &[u8]) -> Result<String, CaError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| CaError::State(format!("the CA certificate does not parse: {e}")))?;
    let mut rdns = Vec::new();
    for rdn in cert.subject().iter() {
        let mut parts = Vec::new();
        for attr in rdn.iter() {
            let oid = attr.attr_type().to_id_string();
            // RFC 4514 3: the short names of RFC 4519, else the dotted OID.
            let kind = match oid.as_str() {
                "2.5.4.3" => "CN",
                "2.5.4.6" => "C",
                "2.5.4.7" => "L",
                "2.5.4.8" => "ST",
                "2.5.4.9" => "STREET",
                "2.5.4.10" => "O",
                "2.5.4.11" => "OU",
                "0.9.2342.19200300.100.1.1" => "UID",
                "0.9.2342.19200300.100.1.25" => "DC",
                other => other,
            }
            .to_string();
            let value = attr.as_str().map_err(|e| {
                CaError::State(format!("the CA's name: {kind} is not a string: {e}"))
            })?;
            parts.push(format!("{kind}={}", escape_rdn_value(value)));
        }
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    Ok(rdns.join(","))
}

/// RFC 4514 2.4 escaping of an attribute value.
fn escape_rdn_value(value: &str) -> String {
    let mut out = String::new();
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, '"' | '+' | ',' | ';' | '<' | '>' | '\\')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub async fn init(config: &CaConfig, now: OffsetDateTime) -> Result<InitReport, CaError> {
    let fs = Fs::default();
    let io = |what: &str, e: crate::store::StoreError| CaError::State(format!("{what}: {e}"));
    if !config.state_dir.exists() {
        std::fs::create_dir_all(&config.state_dir)
            .map_err(|e| CaError::State(format!("{}: {e}", config.state_dir.display())))?;
        std::fs::set_permissions(
            &config.state_dir,
            std::os::unix::fs::PermissionsExt::from_mode(DIR_MODE),
        )
        .map_err(|e| CaError::State(format!("{}: {e}", config.state_dir.display())))?;
    }

    let mut dir = Directory::connect(&config.directory).await?;
    let naming = dir.naming_contexts().await?;

    let created_key = !config.key_path().exists();
    if created_key {
        create_key(config, &naming.default, now)?;
    }
    let signer = Signer::load(config)?;

    write_tls_certificate(config, &signer, now)?;
    if config.ndes.is_some() {
        super::ndes::ra::ensure(config, &signer, now)?;
    }

    let crl = match std::fs::read(config.crl_path()) {
        Ok(bytes) => bytes,
        Err(_) => {
            // The number comes from the database, as every later CRL's: the
            // first `ca crl` then signs number 2, not number 1 again.
            let number = Database::open(&config.database)?.next_crl_number()?;
            let crl = build_crl(
                &CrlInput {
                    number,
                    this_update: now,
                    next_update: now + config.crl_validity,
                    revoked: &[],
                },
                &signer.issuer()?,
            )
            .map_err(|e| CaError::State(format!("cannot sign the first CRL: {e}")))?;
            fs.replace(&config.crl_path(), &crl, 0o644)
                .map_err(|e| io("CRL", e))?;
            crl
        }
    };

    let endpoint = config.endpoint_url();
    let kerberos_endpoint = config.kerberos_endpoint_url();
    let ca_dn = rfc4514_subject(signer.certificate_der())?;
    let changes = publish(
        &mut dir,
        &naming,
        &Publication {
            ca_name: &config.name,
            dns_host_name: &config.dns_host_name,
            ca_certificate: signer.certificate_der(),
            ca_subject: &ca_dn,
            endpoint_url: &endpoint,
            kerberos_endpoint_url: kerberos_endpoint.as_deref(),
            templates: &config.templates,
            crl: &crl,
        },
    )
    .await?;
    dir.close().await;
    Ok(InitReport {
        created_key,
        ca_subject: ca_dn,
        ca_thumbprint: signer.info().thumbprint.clone(),
        changes,
    })
}

/// Generates the CA's key and its self-signed certificate, for the domain
/// whose naming context is `default_nc`, and writes both to `config`'s
/// state directory.
pub(super) fn create_key(
    config: &CaConfig,
    default_nc: &str,
    now: OffsetDateTime,
) -> Result<(), CaError> {
    let fs = Fs::default();
    let io = |what: &str, e: crate::store::StoreError| CaError::State(format!("{what}: {e}"));
    let key = PrivateKey::generate(config.key_algorithm)?;
    let params = ca_params(config, default_nc, now)?;
    let key_pair = key.rcgen_key_pair()?;
    let cert = params
        .self_signed(&key_pair)
        .map_err(|e| CaError::State(format!("cannot sign the CA certificate: {e}")))?;
    let der = restore_issuer_name(cert.der(), &key_pair)
        .map_err(|e| CaError::State(format!("cannot sign the CA certificate: {e}")))?;
    let pem = crate::store::pem::encode("CERTIFICATE", &der);
    // The certificate first: the key's presence is what says the CA exists
    // (`init` creates both when the key is missing), so a certificate left
    // without its key by a crash is replaced on the next run, while a key
    // left without its certificate would never be.
    fs.replace(&config.certificate_path(), pem.as_bytes(), 0o644)
        .map_err(|e| io("CA certificate", e))?;
    fs.replace(&config.key_path(), key.to_pem().as_bytes(), KEY_MODE)
        .map_err(|e| io("CA key", e))?;
    Ok(())
}

fn ca_params(
    config: &CaConfig,
    default_nc: &str,
    now: OffsetDateTime,
) -> Result<CertificateParams, CaError> {
    let mut params = CertificateParams::default();
    // rcgen cannot write a name with two DC components: it signs a stand-in,
    // which restore_issuer_name replaces by the real name.
    params.distinguished_name = stand_in_name_for(&ca_subject(&config.name, default_nc)?);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    params.key_identifier_method = KeyIdMethod::Sha256;
    params.not_before = now;
    params.not_after = now + config.validity;
    params.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
    // szOID_CERTSRV_CA_VERSION ([MS-WCCE] 2.2.2.7.3): key and certificate index 0.
    params
        .custom_extensions
        .push(CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 4, 1, 311, 21, 1],
            vec![0x02, 0x01, 0x00],
        ));
    Ok(params)
}

/// The TLS server certificate, for `dns_host_name` and every host named in the
/// configured URLs (the lab serves on 127.0.0.1). Re-issued when those names
/// change or it has less than a third of its life left.
fn write_tls_certificate(
    config: &CaConfig,
    signer: &Signer,
    now: OffsetDateTime,
) -> Result<(), CaError> {
    let mut names = vec![config.dns_host_name.clone()];
    let kerberos_url = config.kerberos.as_ref().map(|k| &k.url);
    for url in std::iter::once(&config.url)
        .chain(config.http_url.iter())
        .chain(kerberos_url)
    {
        if let Some(host) = url_host(url)
            && !names.contains(&host)
        {
            names.push(host);
        }
    }
    if let Ok(pem) = std::fs::read(config.tls_certificate_path())
        && tls_certificate_is_current(&pem, &names, now)
        && config.tls_key_path().exists()
    {
        return Ok(());
    }
    let key = PrivateKey::generate(crate::pki::keys::KeyAlgorithm::EcdsaP256)?;
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, config.dns_host_name.clone());
    params.subject_alt_names = names
        .iter()
        .map(|n| match n.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => n
                .clone()
                .try_into()
                .map(SanType::DnsName)
                .map_err(|e| CaError::State(format!("TLS name {n:?}: {e}"))),
        })
        .collect::<Result<_, _>>()?;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now;
    params.not_after = (now + Duration::from_secs(365 * 86_400)).min(signer.info().not_after);
    params.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
    let issuer = signer.issuer()?;
    let cert = params
        .signed_by(&key.rcgen_key_pair()?, &issuer)
        .map_err(|e| CaError::State(format!("cannot sign the TLS certificate: {e}")))?;
    let der = restore_issuer_name(cert.der(), issuer.key())
        .map_err(|e| CaError::State(format!("cannot sign the TLS certificate: {e}")))?;
    let fs = Fs::default();
    fs.replace(&config.tls_key_path(), key.to_pem().as_bytes(), KEY_MODE)
        .map_err(|e| CaError::State(format!("TLS key: {e}")))?;
    let chain = format!(
        "{}{}",
        crate::store::pem::encode("CERTIFICATE", &der),
        signer.certificate_pem()
    );
    fs.replace(&config.tls_certificate_path(), chain.as_bytes(), 0o644)
        .map_err(|e| CaError::State(format!("TLS certificate: {e}")))?;
    Ok(())
}

fn tls_certificate_is_current(pem: &[u8], names: &[String], now: OffsetDateTime) -> bool {
    let Ok(der) = crate::store::pem::certificate_der(pem) else {
        return false;
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(&der) else {
        return false;
    };
    let validity = cert.validity();
    let (start, end) = (
        validity.not_before.to_datetime(),
        validity.not_after.to_datetime(),
    );
    if now > end - (end - start) / 3 {
        return false;
    }
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return false;
    };
    let present: Vec<String> = san
        .value
        .general_names
        .iter()
        .map(|g| match g {
            x509_parser::extensions::GeneralName::DNSName(d) => d.to_string(),
            x509_parser::extensions::GeneralName::IPAddress(b) => match b.len() {
                4 => IpAddr::from(<[u8; 4]>::try_from(*b).unwrap_or_default()).to_string(),
                16 => IpAddr::from(<[u8; 16]>::try_from(*b).unwrap_or_default()).to_string(),
                _ => String::new(),
            },
            _ => String::new(),
        })
        .collect();
    names.iter().all(|n| present.contains(n))
}

/// The host of an `https://host:port/...` URL (brackets of IPv6 removed).
fn url_host(url: &str) -> Option<String> {
    let rest = url.split("://").nth(1)?;
    let authority = rest.split('/').next()?;
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// A positive serial number of 16 random bytes (RFC 5280 4.1.2.2: at most
/// 20 octets; CA/B Forum asks for at least 64 random bits).
pub fn random_serial() -> Result<Vec<u8>, CaError> {
    let mut serial = vec![0u8; 16];
    aws_lc_rs::rand::fill(&mut serial).map_err(|_| CaError::State("no randomness".into()))?;
    serial[0] &= 0x7f;
    serial[0] |= 0x40; // positive and exactly 16 bytes long
    Ok(serial)
}

/// Reads a PEM or DER file for `what`, with the path in the error.
pub fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, CaError> {
    std::fs::read(path).map_err(|e| {
        CaError::State(format!(
            "{what} {}: {e} (has `autoenroll ca init` run?)",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_urls() {
        assert_eq!(url_host("https://127.0.0.1:8443"), Some("127.0.0.1".into()));
        assert_eq!(
            url_host("https://CA.corp.example/x"),
            Some("ca.corp.example".into())
        );
        assert_eq!(url_host("http://[::1]:80"), Some("::1".into()));
        assert_eq!(url_host("nonsense"), None);
    }

    #[test]
    fn serials_are_positive_and_sixteen_bytes() {
        for _ in 0..64 {
            let s = random_serial().unwrap();
            assert_eq!(s.len(), 16);
            assert_eq!(s[0] & 0xc0, 0x40);
        }
    }
}
