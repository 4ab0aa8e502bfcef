//! The NDES role's RA certificates. SCEP clients encrypt their requests to
//! the encryption certificate and check the answers' signature with the
//! signing certificate (RFC 8894 2.2); NDES gets these from the CA as "CEP
//! Encryption" (keyEncipherment) and "Exchange Enrollment Agent (Offline
//! request)" (digitalSignature), both with the Certificate Request Agent
//! EKU. RSA keys whatever the CA's own key: SCEP's key transport is RSA.
//! Issued at `ca init` and whenever the server starts with a certificate
//! past two thirds of its life, missing, or from another CA certificate.

use std::path::PathBuf;
use std::time::Duration;

use rcgen::{
    CertificateParams, CustomExtension, DnType, ExtendedKeyUsagePurpose, KeyUsagePurpose,
    SerialNumber,
};
use time::OffsetDateTime;

use crate::ca::authority::{CaError, Signer};
use crate::ca::config::CaConfig;
use crate::ca::init::random_serial;
use crate::ca::issue::restore_issuer_name;
use crate::pki::keys::{KeyAlgorithm, PrivateKey};
use crate::store::fsutil::{DIR_MODE, Fs, KEY_MODE};

/// Certificate Request Agent (szOID_ENROLLMENT_AGENT), on both RA certificates.
const EKU_REQUEST_AGENT: &[u64] = &[1, 3, 6, 1, 4, 1, 311, 20, 2, 1];

/// How long an RA certificate is issued for (the NDES templates' two years),
/// never past the CA certificate.
const RA_VALIDITY: Duration = Duration::from_secs(2 * 365 * 86_400);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Signing,
    Encryption,
}

impl Role {
    fn file(self) -> &'static str {
        match self {
            Role::Signing => "ra-signing",
            Role::Encryption => "ra-encryption",
        }
    }
    fn common_name(self, ca: &str) -> String {
        match self {
            Role::Signing => format!("{ca}-MSCEP-RA"),
            Role::Encryption => format!("{ca}-MSCEP-RA Encryption"),
        }
    }
}

/// An RA identity, loaded.
pub struct RaIdentity {
    pub key: PrivateKey,
    pub certificate: Vec<u8>,
}

/// Both RA identities.
pub struct RaCertificates {
    pub signing: RaIdentity,
    pub encryption: RaIdentity,
}

fn paths(config: &CaConfig, role: Role) -> (PathBuf, PathBuf) {
    let dir = config.ndes_dir();
    (
        dir.join(format!("{}-key.pem", role.file())),
        dir.join(format!("{}.pem", role.file())),
    )
}

/// Issues the RA certificates that are missing or due; returns how many
/// were issued.
pub fn ensure(config: &CaConfig, signer: &Signer, now: OffsetDateTime) -> Result<usize, CaError> {
    let dir = config.ndes_dir();
    if !dir.exists() {
        std::fs::create_dir_all(&dir)
            .and_then(|()| {
                std::fs::set_permissions(
                    &dir,
                    std::os::unix::fs::PermissionsExt::from_mode(DIR_MODE),
                )
            })
            .map_err(|e| CaError::State(format!("{}: {e}", dir.display())))?;
    }
    let mut issued = 0;
    for role in [Role::Signing, Role::Encryption] {
        if !is_current(config, signer, role, now) {
            issue(config, signer, role, now)?;
            issued += 1;
        }
    }
    Ok(issued)
}

/// When the first of the two RA certificates is due (two thirds of its
/// life), as [`ensure`] judges it.
pub fn renew_at(ra: &RaCertificates) -> Option<OffsetDateTime> {
    [&ra.signing, &ra.encryption]
        .iter()
        .map(|id| {
            let (_, cert) = x509_parser::parse_x509_certificate(&id.certificate).ok()?;
            let start = cert.validity().not_before.to_datetime();
            let end = cert.validity().not_after.to_datetime();
            Some(end - (end - start) / 3)
        })
        .collect::<Option<Vec<_>>>()?
        .into_iter()
        .min()
}

fn is_current(config: &CaConfig, signer: &Signer, role: Role, now: OffsetDateTime) -> bool {
    let (key_path, cert_path) = paths(config, role);
    let (Ok(pem), true) = (std::fs::read(&cert_path), key_path.exists()) else {
        return false;
    };
    let Ok(der) = crate::store::pem::certificate_der(&pem) else {
        return false;
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(&der) else {
        return false;
    };
    let start = cert.validity().not_before.to_datetime();
    let end = cert.validity().not_after.to_datetime();
    let ca = signer.certificate_der().to_vec();
    let issued_here = crate::scep::cacert::signed_by_one_of(&der, std::slice::from_ref(&ca));
    issued_here && now >= start && now < end - (end - start) / 3
}

fn issue(
    config: &CaConfig,
    signer: &Signer,
    role: Role,
    now: OffsetDateTime,
) -> Result<(), CaError> {
    let key = PrivateKey::generate(KeyAlgorithm::Rsa { bits: 2048 })?;
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, role.common_name(&config.name));
    params.key_usages = match role {
        Role::Signing => vec![KeyUsagePurpose::DigitalSignature],
        Role::Encryption => vec![
            KeyUsagePurpose::KeyEncipherment,
            KeyUsagePurpose::DataEncipherment,
        ],
    };
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::Other(EKU_REQUEST_AGENT.to_vec())];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now;
    params.not_after = (now + RA_VALIDITY).min(signer.info().not_after);
    params.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
    // The template name extension NDES's RA certificates carry
    // (szOID_ENROLL_CERTTYPE_EXTENSION, a BMPString).
    let name = match role {
        Role::Signing => "EnrollmentAgentOffline",
        Role::Encryption => "CEPEncryption",
    };
    let mut bmp = vec![0x1e, (name.len() * 2) as u8];
    for c in name.encode_utf16() {
        bmp.extend_from_slice(&c.to_be_bytes());
    }
    params
        .custom_extensions
        .push(CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 4, 1, 311, 20, 2],
            bmp,
        ));
    let issuer = signer.issuer()?;
    let cert = params
        .signed_by(&key.rcgen_key_pair()?, &issuer)
        .map_err(|e| CaError::State(format!("cannot sign the RA certificate: {e}")))?;
    let der = restore_issuer_name(cert.der(), issuer.key())
        .map_err(|e| CaError::State(format!("cannot sign the RA certificate: {e}")))?;
    let (key_path, cert_path) = paths(config, role);
    let fs = Fs::default();
    // The key first: a certificate without its key would be unusable.
    fs.replace(&key_path, key.to_pem().as_bytes(), KEY_MODE)
        .map_err(|e| CaError::State(format!("RA key: {e}")))?;
    fs.replace(
        &cert_path,
        crate::store::pem::encode("CERTIFICATE", &der).as_bytes(),
        0o644,
    )
    .map_err(|e| CaError::State(format!("RA certificate: {e}")))?;
    Ok(())
}

/// Loads both RA identities (after [`ensure`]).
pub fn load(config: &CaConfig) -> Result<RaCertificates, CaError> {
    let one = |role: Role| -> Result<RaIdentity, CaError> {
        let (key_path, cert_path) = paths(config, role);
        let key_pem = crate::ca::init::read_file(&key_path, "RA key")?;
        let key = PrivateKey::from_pem(&key_pem)?;
        let pem = crate::ca::init::read_file(&cert_path, "RA certificate")?;
        let certificate = crate::store::pem::certificate_der(&pem)
            .map_err(|e| CaError::State(format!("{}: {e}", cert_path.display())))?;
        Ok(RaIdentity { key, certificate })
    };
    Ok(RaCertificates {
        signing: one(Role::Signing)?,
        encryption: one(Role::Encryption)?,
    })
}
