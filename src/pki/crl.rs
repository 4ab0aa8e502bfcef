//! Certificate revocation lists as the directory's CDP objects hold them: who
//! issued them, when they stop being current, and which serials they revoke.

use std::collections::BTreeMap;

use time::OffsetDateTime;
use x509_parser::prelude::{CertificateRevocationList, FromDer};

use super::template_ext::{PkiError, serial_hex};

/// A parsed CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crl {
    /// Issuer in RFC 4514 text (compared with a certificate's issuer).
    pub issuer: String,
    pub this_update: OffsetDateTime,
    pub next_update: Option<OffsetDateTime>,
    /// serial (hex, see [`serial_hex`]) -> (revocation date, reason code).
    pub revoked: BTreeMap<String, (OffsetDateTime, Option<u8>)>,
}

impl Crl {
    pub fn from_der(der: &[u8]) -> Result<Crl, PkiError> {
        let (rest, crl) = CertificateRevocationList::from_der(der)
            .map_err(|e| PkiError::Certificate(format!("CRL: {e}")))?;
        if !rest.is_empty() {
            return Err(PkiError::Certificate(format!(
                "CRL: {} bytes after the CRL",
                rest.len()
            )));
        }
        let revoked = crl
            .iter_revoked_certificates()
            .map(|r| {
                let reason = r.reason_code().map(|(_, code)| code.0);
                (
                    serial_hex(r.raw_serial()),
                    (r.revocation_date.to_datetime(), reason),
                )
            })
            .collect();
        Ok(Crl {
            issuer: crl.issuer().to_string(),
            this_update: crl.last_update().to_datetime(),
            next_update: crl.next_update().map(|t| t.to_datetime()),
            revoked,
        })
    }
}

/// Every revoked (issuer, serial) the directory's CRLs list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Revocations {
    revoked: BTreeMap<(String, String), Option<u8>>,
}

impl Revocations {
    /// Builds the set from CRLs (DER). A CRL that cannot be parsed is returned
    /// as a problem and ignored: an unreadable CRL revokes nothing.
    pub fn from_crls<'a>(crls: impl IntoIterator<Item = &'a [u8]>) -> (Revocations, Vec<String>) {
        let mut set = Revocations::default();
        let mut problems = Vec::new();
        for der in crls {
            match Crl::from_der(der) {
                Ok(crl) => {
                    for (serial, (_, reason)) in crl.revoked {
                        set.revoked.insert((crl.issuer.clone(), serial), reason);
                    }
                }
                Err(e) => problems.push(e.to_string()),
            }
        }
        (set, problems)
    }

    /// Adds one revoked serial (tests, and CRLs read from elsewhere).
    pub fn insert(&mut self, issuer: &str, serial: &str, reason: Option<u8>) {
        self.revoked
            .insert((issuer.to_string(), serial.to_string()), reason);
    }

    /// Whether the certificate `serial` of `issuer` is revoked.
    pub fn is_revoked(&self, issuer: &str, serial: &str) -> bool {
        self.revoked
            .contains_key(&(issuer.to_string(), serial.to_string()))
    }

    pub fn len(&self) -> usize {
        self.revoked.len()
    }

    pub fn is_empty(&self) -> bool {
        self.revoked.is_empty()
    }
}
