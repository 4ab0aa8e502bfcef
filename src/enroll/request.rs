//! What the client sends for a template, and what it accepts back.
//!
//! A new enrollment is a PKCS#10 with an empty subject (the CA builds subject
//! and SAN from the directory) and the template's identity as a requested
//! extension; a renewal wraps a new PKCS#10 in CMS SignedData signed with the
//! old key (adcs.md section 6, [MS-WCCE] 3.2.2.6.2.1.4.5.7).

use time::OffsetDateTime;
use x509_parser::prelude::FromDer;

use crate::model::Template;
use crate::pki::cms::build_renewal_request;
use crate::pki::csr::{CsrOptions, build_csr};
use crate::pki::keys::{PrivateKey, verify_signature};
use crate::pki::{CertificateInfo, PkiError};

/// The PKCS#10 of a new enrollment for `template` with `key`. Carries
/// 1.3.6.1.4.1.311.21.7 for templates with an OID (schema v2+), else the v1
/// name extension 1.3.6.1.4.1.311.20.2.
pub fn enrollment_request(
    template: &Template,
    key: &PrivateKey,
    renewed: Option<&[u8]>,
) -> Result<Vec<u8>, PkiError> {
    let identity = template
        .oid
        .as_deref()
        .filter(|_| template.schema_version >= 2);
    build_csr(
        key,
        &CsrOptions {
            subject_common_name: None,
            dns_names: &[],
            template: identity.map(|oid| (oid, template.revision, template.minor_revision)),
            template_name: identity.is_none().then_some(template.cn.as_str()),
            renewal_certificate: renewed,
        },
    )
}

/// A renewal: a new PKCS#10 for `new_key` naming the old certificate,
/// signed as CMS with the old certificate's key.
pub fn renewal_request(
    template: &Template,
    new_key: &PrivateKey,
    old_certificate: &[u8],
    old_key: &PrivateKey,
) -> Result<Vec<u8>, PkiError> {
    let csr = enrollment_request(template, new_key, Some(old_certificate))?;
    build_renewal_request(&csr, old_certificate, old_key)
}

/// Whether a CA's denial of a renewal means "this certificate cannot be
/// renewed here, enroll anew" rather than "you may not have this template".
/// On these the client falls back, in the same pulse, to a new enrollment with
/// the account's own credentials, as Windows autoenrollment does when a
/// renewal fails: the held certificate, not the account, is what the CA
/// refuses. The codes are those of [MS-WCCE] 3.2.2.6.2.1.4.5.7 (renewal
/// checks) and winerror.h:
/// - 0x8009400E CERTSRV_E_BAD_RENEWAL_CERT_ATTRIBUTE: not issued by this CA
///   (a CA migrated without its database, a certificate copied in from
///   another CA) or not renewable here;
/// - 0x80094806 CERTSRV_E_BAD_RENEWAL_SUBJECT: issued to another account (a
///   certificate copied in from another host);
/// - 0x80092010 CRYPT_E_REVOKED: the CA knows it revoked it;
/// - 0x800B0101 CERT_E_EXPIRED: the CA's clock says it is no longer valid.
///
/// Denials about the account or the template (no Enroll right, template not
/// published, key too short, ...) are not in the list: a new enrollment
/// would be refused for the same reason.
pub fn renewal_refusal_needs_enrollment(hresult: u32) -> bool {
    matches!(
        hresult,
        0x8009_400E | 0x8009_4806 | 0x8009_2010 | 0x800B_0101
    )
}

/// Why an issued certificate is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the CA's answer is refused: {0}")]
pub struct Rejected(pub String);

/// Checks what the CA sent before anything is installed: the certificate
/// holds our public key, names the template we asked for, is valid now and
/// is signed by one of `issuers` (the CA certificates the directory
/// publishes for that CA).
pub fn check_issued(
    certificate: &[u8],
    key: &PrivateKey,
    template: &Template,
    issuers: &[Vec<u8>],
    now: OffsetDateTime,
) -> Result<CertificateInfo, Rejected> {
    let info = CertificateInfo::from_der(certificate).map_err(|e| Rejected(e.to_string()))?;
    if info.public_key != key.public_key_der() {
        return Err(Rejected(
            "the certificate is for another key than the one we sent".into(),
        ));
    }
    let names_template = info
        .template
        .as_ref()
        .is_some_and(|t| t.matches(template.oid.as_deref(), &template.cn));
    if !names_template {
        return Err(Rejected(format!(
            "the certificate does not name template {}",
            template.cn
        )));
    }
    if info.not_after <= now {
        return Err(Rejected(format!(
            "the certificate expired at {}",
            info.not_after
        )));
    }
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(certificate)
        .map_err(|e| Rejected(format!("not a certificate: {e}")))?;
    let algorithm = cert.signature_algorithm.algorithm.to_id_string();
    let signed_by = issuers.iter().find(|issuer_der| {
        let Ok((_, issuer)) = x509_parser::certificate::X509Certificate::from_der(issuer_der)
        else {
            return false;
        };
        issuer.subject().as_raw() == cert.issuer().as_raw()
            && verify_signature(
                issuer.public_key().raw,
                &algorithm,
                cert.tbs_certificate.as_ref(),
                &cert.signature_value.data,
            )
            .is_ok()
    });
    if signed_by.is_none() {
        return Err(Rejected(format!(
            "the certificate (issuer {}) is not signed by the CA certificates the directory publishes",
            info.issuer
        )));
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_refusals_that_fall_back_to_enrollment() {
        use crate::ca::policy::hresult;
        for code in [
            hresult::BAD_RENEWAL_CERT_ATTRIBUTE,
            hresult::BAD_RENEWAL_SUBJECT,
            hresult::REVOKED,
            hresult::CERT_EXPIRED,
        ] {
            assert!(renewal_refusal_needs_enrollment(code), "{code:08X}");
        }
        for code in [
            hresult::TEMPLATE_DENIED,
            hresult::UNSUPPORTED_CERT_TYPE,
            hresult::KEY_LENGTH,
            hresult::BAD_SIGNATURE,
            hresult::ADMIN_DENIED_REQUEST,
            0x8000_4005,
        ] {
            assert!(!renewal_refusal_needs_enrollment(code), "{code:08X}");
        }
    }
}
