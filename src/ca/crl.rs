//! The CA's certificate revocation lists (RFC 5280 5): a v2 CRL signed by the
//! CA key, with the CRL number and authority key identifier extensions every
//! conforming CRL carries (RFC 5280 5.2), and one entry per revoked
//! certificate with its revocation date and reason code (RFC 5280 5.3.1).
//!
//! The CA publishes it to the directory's CDP object, where clients (and
//! `crate::pki::crl`) read it.

use std::collections::BTreeSet;

use rcgen::{
    CertificateRevocationListParams, Issuer, KeyIdMethod, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SerialNumber, SigningKey,
};
use time::{OffsetDateTime, UtcOffset};

use super::db::{RevokedEntry, normalize_serial};

/// What one CRL says.
#[derive(Debug, Clone, Copy)]
pub struct CrlInput<'a> {
    /// The CRL number (RFC 5280 5.2.3), from `Database::next_crl_number`.
    pub number: u64,
    pub this_update: OffsetDateTime,
    /// When the next CRL will be issued (RFC 5280 5.1.2.5: always present).
    pub next_update: OffsetDateTime,
    pub revoked: &'a [RevokedEntry],
}

/// The CRL number (RFC 5280 5.2.3) of a DER CRL, when it has one that fits
/// 64 bits; the CA reads it from the CRL it published last so that the next
/// number is higher whatever its database says.
pub fn crl_number(der: &[u8]) -> Option<u64> {
    use x509_parser::prelude::{CertificateRevocationList, FromDer};
    let (_, crl) = CertificateRevocationList::from_der(der).ok()?;
    let digits = crl.crl_number()?.to_u64_digits();
    match digits.as_slice() {
        [] => Some(0),
        [n] => Some(*n),
        _ => None,
    }
}

/// Why a CRL could not be built.
#[derive(Debug, thiserror::Error)]
pub enum CrlError {
    #[error(
        "CRL {number}: nextUpdate {next_update} is not after thisUpdate {this_update} (RFC 5280 5.1.2.5)"
    )]
    Window {
        number: u64,
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
    },
    #[error(
        "CRL {number}: the CA certificate's key usage lacks cRLSign, so its key may not sign CRLs (RFC 5280 4.2.1.3)"
    )]
    NotCrlSigner { number: u64 },
    #[error("CRL {number}: revoked certificate {serial:?}: {problem}")]
    Entry {
        number: u64,
        serial: String,
        problem: String,
    },
    #[error("CRL {number}: writing the issuer name: {problem}")]
    IssuerName { number: u64, problem: String },
    #[error("CRL {number}: signing failed: {source}")]
    Sign {
        number: u64,
        #[source]
        source: rcgen::Error,
    },
}

/// Builds and signs a CRL (DER). The authority key identifier is the
/// truncated SHA-256 of the issuer's public key (RFC 7093 method 1), which is
/// what rcgen puts in the subject key identifier of a CA certificate it makes
/// with default parameters; for a CA certificate whose SKI was computed
/// otherwise use [`build_crl_with_key_id`], since clients match the CRL's AKI
/// to the CA's SKI (RFC 5280 5.2.1).
pub fn build_crl(
    input: &CrlInput<'_>,
    issuer: &Issuer<'_, impl SigningKey>,
) -> Result<Vec<u8>, CrlError> {
    sign(input, KeyIdMethod::Sha256, issuer)
}

/// Like [`build_crl`] with the authority key identifier given: the subject
/// key identifier of the CA certificate.
pub fn build_crl_with_key_id(
    input: &CrlInput<'_>,
    key_id: &[u8],
    issuer: &Issuer<'_, impl SigningKey>,
) -> Result<Vec<u8>, CrlError> {
    sign(input, KeyIdMethod::PreSpecified(key_id.to_vec()), issuer)
}

fn sign(
    input: &CrlInput<'_>,
    key_identifier_method: KeyIdMethod,
    issuer: &Issuer<'_, impl SigningKey>,
) -> Result<Vec<u8>, CrlError> {
    let number = input.number;
    if input.next_update <= input.this_update {
        return Err(CrlError::Window {
            number,
            this_update: input.this_update,
            next_update: input.next_update,
        });
    }
    // rcgen refuses an issuer whose key usages are known and lack cRLSign;
    // checked here too so the message says which rule.
    let usages = issuer.key_usages();
    if !usages.is_empty() && !usages.contains(&KeyUsagePurpose::CrlSign) {
        return Err(CrlError::NotCrlSigner { number });
    }
    let mut seen = BTreeSet::new();
    let mut revoked_certs = Vec::with_capacity(input.revoked.len());
    for entry in input.revoked {
        let bad = |problem: String| CrlError::Entry {
            number,
            serial: entry.serial.clone(),
            problem,
        };
        let serial = normalize_serial(&entry.serial).map_err(|e| bad(e.problem))?;
        if !seen.insert(serial.clone()) {
            return Err(bad("listed twice".to_string()));
        }
        revoked_certs.push(RevokedCertParams {
            serial_number: SerialNumber::from_slice(&serial_bytes(&serial).map_err(bad)?),
            revocation_time: entry.revoked_at.to_offset(UtcOffset::UTC),
            reason_code: reason_code(entry.reason).map_err(bad)?,
            invalidity_date: None,
        });
    }
    let params = CertificateRevocationListParams {
        // UTCTime and GeneralizedTime in a CRL are UTC (RFC 5280 5.1.2.4).
        this_update: input.this_update.to_offset(UtcOffset::UTC),
        next_update: input.next_update.to_offset(UtcOffset::UTC),
        crl_number: SerialNumber::from(number),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method,
    };
    let crl = params.signed_by(issuer).map_err(|source| match source {
        rcgen::Error::IssuerNotCrlSigner => CrlError::NotCrlSigner { number },
        source => CrlError::Sign { number, source },
    })?;
    // The issuer name is the CA certificate's subject, byte for byte, also
    // when rcgen cannot write it (RFC 5280 5.1.2.3; see issue::ca_issuer).
    super::issue::restore_issuer_name(crl.der(), issuer.key())
        .map_err(|problem| CrlError::IssuerName { number, problem })
}

/// The reasonCode entry extension for a CRLReason code. Unspecified (0) is
/// left out: RFC 5280 5.3.1 says the extension SHOULD be absent rather than
/// carry unspecified.
fn reason_code(code: u8) -> Result<Option<RevocationReason>, String> {
    Ok(Some(match code {
        0 => return Ok(None),
        1 => RevocationReason::KeyCompromise,
        2 => RevocationReason::CaCompromise,
        3 => RevocationReason::AffiliationChanged,
        4 => RevocationReason::Superseded,
        5 => RevocationReason::CessationOfOperation,
        6 => RevocationReason::CertificateHold,
        8 => RevocationReason::RemoveFromCrl,
        9 => RevocationReason::PrivilegeWithdrawn,
        10 => RevocationReason::AaCompromise,
        other => {
            return Err(format!(
                "reason code {other} is not a CRLReason (RFC 5280 5.3.1)"
            ));
        }
    }))
}

/// The bytes of a normalized serial (even-length lower-case hex).
fn serial_bytes(serial: &str) -> Result<Vec<u8>, String> {
    serial
        .as_bytes()
        .chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|digits| u8::from_str_radix(digits, 16).ok())
                .ok_or_else(|| format!("{serial:?} is not hexadecimal"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::process::Command;

    use aws_lc_rs::encoding::AsDer;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    use time::macros::datetime;
    use x509_parser::prelude::{FromDer, ParsedExtension, X509Certificate};

    use super::*;
    use crate::pki::Crl;

    const THIS: OffsetDateTime = datetime!(2025-03-01 12:00:00 UTC);
    const NEXT: OffsetDateTime = datetime!(2025-03-08 12:00:00 UTC);

    struct Ca {
        issuer: Issuer<'static, KeyPair>,
        der: Vec<u8>,
        pem: String,
    }

    fn ca_with(key: KeyPair, usages: Vec<KeyUsagePurpose>) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "Corp Issuing CA");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Corp");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = usages;
        let cert = params.self_signed(&key).unwrap();
        Ca {
            der: cert.der().to_vec(),
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    fn ca_usages() -> Vec<KeyUsagePurpose> {
        vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ]
    }

    fn ecdsa_ca() -> Ca {
        ca_with(
            KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap(),
            ca_usages(),
        )
    }

    fn rsa_ca() -> Ca {
        let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let pkcs8 = rsa.as_der().unwrap();
        ca_with(KeyPair::try_from(pkcs8.as_ref()).unwrap(), ca_usages())
    }

    fn entry(serial: &str, day: u8, reason: u8) -> RevokedEntry {
        RevokedEntry {
            serial: serial.to_string(),
            revoked_at: datetime!(2025-02-01 08:30:00 UTC) + time::Duration::days(day.into()),
            reason,
        }
    }

    fn three_entries() -> Vec<RevokedEntry> {
        vec![
            entry("1a2b3c", 0, 1),
            entry("80ff", 1, 4),
            entry("05", 2, 0),
        ]
    }

    /// Runs openssl; a missing binary fails the test with a clear message.
    fn openssl(args: &[&str], dir: &Path) -> (bool, String) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| panic!("running the openssl command (is it installed?): {e}"));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// Writes the CRL and the CA, has openssl print the CRL and verify its
    /// signature; returns the printout.
    fn openssl_check(ca: &Ca, crl: &[u8]) -> String {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("crl.der"), crl).unwrap();
        std::fs::write(dir.path().join("ca.pem"), &ca.pem).unwrap();
        let (ok, text) = openssl(
            &["crl", "-inform", "DER", "-in", "crl.der", "-noout", "-text"],
            dir.path(),
        );
        assert!(ok, "openssl crl -text: {text}");
        let (ok, verify) = openssl(
            &[
                "crl", "-inform", "DER", "-in", "crl.der", "-CAfile", "ca.pem", "-noout",
            ],
            dir.path(),
        );
        assert!(
            ok && verify.contains("verify OK"),
            "openssl verify: {verify}"
        );
        text
    }

    fn subject_key_id(ca_der: &[u8]) -> Vec<u8> {
        let (_, cert) = X509Certificate::from_der(ca_der).unwrap();
        cert.iter_extensions()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
                _ => None,
            })
            .expect("the CA certificate has a subject key identifier")
    }

    fn authority_key_id(crl_der: &[u8]) -> Vec<u8> {
        let (_, crl) = x509_parser::prelude::CertificateRevocationList::from_der(crl_der).unwrap();
        crl.extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(a) => {
                    a.key_identifier.as_ref().map(|k| k.0.to_vec())
                }
                _ => None,
            })
            .expect("the CRL has an authority key identifier")
    }

    #[test]
    fn crls_with_entries_for_rsa_and_ecdsa_issuers() {
        for (name, ca, algorithm) in [
            ("ECDSA P-384", ecdsa_ca(), "ecdsa-with-SHA384"),
            ("RSA", rsa_ca(), "sha256WithRSAEncryption"),
        ] {
            let revoked = three_entries();
            let input = CrlInput {
                number: 42,
                this_update: THIS,
                next_update: NEXT,
                revoked: &revoked,
            };
            let der = build_crl(&input, &ca.issuer).unwrap();
            let text = openssl_check(&ca, &der);
            for want in [
                "Version 2 (0x1)",
                algorithm,
                "CN = Corp Issuing CA",
                "Last Update: Mar  1 12:00:00 2025 GMT",
                "Next Update: Mar  8 12:00:00 2025 GMT",
                "X509v3 CRL Number:",
                "42",
                "X509v3 Authority Key Identifier:",
                "Serial Number: 1A2B3C",
                "Serial Number: 80FF",
                "Serial Number: 05",
                "Revocation Date: Feb  1 08:30:00 2025 GMT",
                "Key Compromise",
                "Superseded",
            ] {
                assert!(text.contains(want), "{name}: no {want:?} in\n{text}");
            }
            // Unspecified (0) is left out: two reason extensions, not three.
            assert_eq!(
                text.matches("X509v3 CRL Reason Code").count(),
                2,
                "{name}:\n{text}"
            );
            assert!(!text.contains("Unspecified"), "{name}:\n{text}");
            assert_eq!(authority_key_id(&der), subject_key_id(&ca.der), "{name}");

            // The crate's own parser reads what was built.
            let parsed = Crl::from_der(&der).unwrap();
            assert_eq!(parsed.issuer, "CN=Corp Issuing CA, O=Corp", "{name}");
            assert_eq!(parsed.this_update, THIS);
            assert_eq!(parsed.next_update, Some(NEXT));
            let got: Vec<(String, OffsetDateTime, Option<u8>)> = parsed
                .revoked
                .into_iter()
                .map(|(serial, (at, reason))| (serial, at, reason))
                .collect();
            let want = vec![
                ("05".to_string(), entry("05", 2, 0).revoked_at, None),
                ("1a2b3c".to_string(), entry("", 0, 0).revoked_at, Some(1)),
                ("80ff".to_string(), entry("", 1, 0).revoked_at, Some(4)),
            ];
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn an_empty_crl() {
        let ca = ecdsa_ca();
        let input = CrlInput {
            number: 1,
            // Times in another offset are written as UTC.
            this_update: THIS.to_offset(time::macros::offset!(+2)),
            next_update: NEXT,
            revoked: &[],
        };
        let der = build_crl(&input, &ca.issuer).unwrap();
        let text = openssl_check(&ca, &der);
        assert!(text.contains("No Revoked Certificates."), "{text}");
        assert!(text.contains("X509v3 CRL Number:"), "{text}");
        assert!(
            text.contains("Last Update: Mar  1 12:00:00 2025 GMT"),
            "{text}"
        );
        let parsed = Crl::from_der(&der).unwrap();
        assert!(parsed.revoked.is_empty());
        assert_eq!(parsed.this_update, THIS);
        assert_eq!(parsed.next_update, Some(NEXT));
    }

    #[test]
    fn every_reason_code_reads_back() {
        let ca = ecdsa_ca();
        let codes = [0u8, 1, 2, 3, 4, 5, 6, 8, 9, 10];
        let revoked: Vec<RevokedEntry> = codes
            .iter()
            .map(|c| entry(&format!("{:02x}", c + 0x10), 0, *c))
            .collect();
        let input = CrlInput {
            number: 7,
            this_update: THIS,
            next_update: NEXT,
            revoked: &revoked,
        };
        let der = build_crl(&input, &ca.issuer).unwrap();
        let text = openssl_check(&ca, &der);
        for name in [
            "Key Compromise",
            "CA Compromise",
            "Affiliation Changed",
            "Superseded",
            "Cessation Of Operation",
            "Certificate Hold",
            "Remove From CRL",
            "Privilege Withdrawn",
            "AA Compromise",
        ] {
            assert!(text.contains(name), "no {name:?} in\n{text}");
        }
        let parsed = Crl::from_der(&der).unwrap();
        for code in codes {
            let serial = format!("{:02x}", code + 0x10);
            let want = if code == 0 { None } else { Some(code) };
            assert_eq!(parsed.revoked[&serial].1, want, "reason {code}");
        }
    }

    #[test]
    fn another_cas_certificate_does_not_verify_the_crl() {
        let ca = ecdsa_ca();
        let other = ecdsa_ca();
        let input = CrlInput {
            number: 1,
            this_update: THIS,
            next_update: NEXT,
            revoked: &[],
        };
        let der = build_crl(&input, &ca.issuer).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("crl.der"), &der).unwrap();
        std::fs::write(dir.path().join("other.pem"), &other.pem).unwrap();
        let (ok, text) = openssl(
            &[
                "crl",
                "-inform",
                "DER",
                "-in",
                "crl.der",
                "-CAfile",
                "other.pem",
                "-noout",
            ],
            dir.path(),
        );
        assert!(!ok || !text.contains("verify OK"), "{text}");
    }

    #[test]
    fn a_given_key_identifier_is_used() {
        let ca = ecdsa_ca();
        let input = CrlInput {
            number: 3,
            this_update: THIS,
            next_update: NEXT,
            revoked: &[],
        };
        let der = build_crl_with_key_id(&input, &[0xab; 20], &ca.issuer).unwrap();
        assert_eq!(authority_key_id(&der), vec![0xab; 20]);
    }

    #[test]
    fn an_issuer_read_from_its_certificate() {
        let ca = rsa_ca();
        let key = KeyPair::try_from(ca.issuer.key().serialize_der()).unwrap();
        let issuer = Issuer::from_ca_cert_der(&ca.der.clone().into(), key).unwrap();
        let revoked = three_entries();
        let input = CrlInput {
            number: u64::MAX,
            this_update: THIS,
            next_update: NEXT,
            revoked: &revoked,
        };
        let der = build_crl(&input, &issuer).unwrap();
        let text = openssl_check(&ca, &der);
        // The largest number still encodes as a positive INTEGER.
        assert!(
            text.contains("X509v3 CRL Number: \n                18446744073709551615"),
            "{text}"
        );
        assert_eq!(authority_key_id(&der), subject_key_id(&ca.der));
    }

    #[test]
    fn refusals() {
        let ca = ecdsa_ca();
        let no_crl_sign = ca_with(
            KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap(),
            vec![KeyUsagePurpose::KeyCertSign],
        );
        let dup = vec![entry("0a", 0, 1), entry("00:0A", 1, 1)];
        let bad_reason = vec![entry("0a", 0, 7)];
        let bad_serial = vec![entry("xyz", 0, 1)];
        let cases: Vec<(&str, &Ca, OffsetDateTime, &[RevokedEntry], &str)> = vec![
            ("window", &ca, THIS, &[], "is not after thisUpdate"),
            ("signer", &no_crl_sign, NEXT, &[], "lacks cRLSign"),
            ("duplicate", &ca, NEXT, &dup, "listed twice"),
            (
                "reason",
                &ca,
                NEXT,
                &bad_reason,
                "reason code 7 is not a CRLReason",
            ),
            (
                "serial",
                &ca,
                NEXT,
                &bad_serial,
                "expected hexadecimal digits",
            ),
        ];
        for (name, ca, next_update, revoked, message) in cases {
            let input = CrlInput {
                number: 9,
                this_update: THIS,
                next_update,
                revoked,
            };
            let err = build_crl(&input, &ca.issuer).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(message), "{name}: {text}");
            assert!(text.starts_with("CRL 9"), "{name}: {text}");
        }
    }
}
