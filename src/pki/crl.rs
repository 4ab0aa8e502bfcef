//! Certificate revocation lists as the directory's CDP objects hold them: who
//! issued them, when they stop being current, and which serials they revoke.
//!
//! A CDP object can be written by more accounts than the CA (Cert Publishers,
//! and whoever was delegated the container), so a CRL read from it is only
//! believed when it verifies ([`Crl::verified`]): signed by the key of a CA
//! certificate the directory publishes with the CRL's issuer name, and
//! current. An unverifiable CRL revokes nothing; it is reported.

use std::collections::BTreeMap;

use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::{CertificateRevocationList, FromDer};

use super::keys::verify_signature;
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

/// Parses a CRL that must fill `der` exactly.
fn parse(der: &[u8]) -> Result<CertificateRevocationList<'_>, PkiError> {
    let (rest, crl) = CertificateRevocationList::from_der(der)
        .map_err(|e| PkiError::Certificate(format!("CRL: {e}")))?;
    if !rest.is_empty() {
        return Err(PkiError::Certificate(format!(
            "CRL: {} bytes after the CRL",
            rest.len()
        )));
    }
    Ok(crl)
}

impl Crl {
    /// Reads a CRL without checking who signed it (see [`Crl::verified`]).
    pub fn from_der(der: &[u8]) -> Result<Crl, PkiError> {
        Ok(Crl::read(&parse(der)?))
    }

    /// Reads a CRL and checks it before anything may act on it (RFC 5280
    /// 6.3.3): its signature verifies with the public key of one of
    /// `issuers` (DER CA certificates) whose subject is the CRL's issuer
    /// name, byte for byte, and whose key usage, if stated, includes
    /// cRLSign (RFC 5280 4.2.1.3); the outer and inner signature algorithms
    /// agree (5.1.1.2); and `now` lies within thisUpdate .. nextUpdate
    /// (5.1.2.4, 5.1.2.5). The error says which check failed.
    pub fn verified(der: &[u8], issuers: &[Vec<u8>], now: OffsetDateTime) -> Result<Crl, String> {
        let crl = parse(der).map_err(|e| e.to_string())?;
        let issuer = crl.issuer().to_string();
        let outer = &crl.signature_algorithm;
        let inner = &crl.tbs_cert_list.signature;
        if outer.algorithm != inner.algorithm || outer.parameters != inner.parameters {
            return Err(format!(
                "CRL of {issuer}: its signature algorithm differs from the one it names inside"
            ));
        }
        let named: Vec<X509Certificate<'_>> = issuers
            .iter()
            .filter_map(|d| X509Certificate::from_der(d).ok().map(|(_, c)| c))
            .filter(|c| c.subject().as_raw() == crl.issuer().as_raw())
            .collect();
        if named.is_empty() {
            return Err(format!(
                "CRL of {issuer}: the directory publishes no CA certificate of that name"
            ));
        }
        let algorithm = outer.algorithm.to_id_string();
        let signed_by = named.iter().find(|c| {
            may_sign_crls(c)
                && verify_signature(
                    c.public_key().raw,
                    &algorithm,
                    crl.tbs_cert_list.as_ref(),
                    &crl.signature_value.data,
                )
                .is_ok()
        });
        if signed_by.is_none() {
            return Err(format!(
                "CRL of {issuer}: not signed by the key of any CA certificate of that name the directory publishes"
            ));
        }
        let read = Crl::read(&crl);
        read.check_current(now)
            .map_err(|e| format!("CRL of {issuer}: {e}"))?;
        Ok(read)
    }

    /// Whether `now` is within the CRL's validity window.
    fn check_current(&self, now: OffsetDateTime) -> Result<(), String> {
        if self.this_update > now {
            return Err(format!(
                "issued in the future (thisUpdate {}): a clock is wrong",
                self.this_update
            ));
        }
        match self.next_update {
            Some(next) if next <= now => Err(format!(
                "out of date (nextUpdate {next} has passed): the CA has not published a newer one"
            )),
            _ => Ok(()),
        }
    }

    fn read(crl: &CertificateRevocationList<'_>) -> Crl {
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
        Crl {
            issuer: crl.issuer().to_string(),
            this_update: crl.last_update().to_datetime(),
            next_update: crl.next_update().map(|t| t.to_datetime()),
            revoked,
        }
    }
}

/// Whether a CA certificate's key may sign CRLs: no key usage extension, or
/// one with cRLSign (RFC 5280 4.2.1.3). An unreadable extension may not.
fn may_sign_crls(c: &X509Certificate<'_>) -> bool {
    match c.key_usage() {
        Ok(None) => true,
        Ok(Some(ku)) => ku.value.crl_sign(),
        Err(_) => false,
    }
}

/// Every revoked (issuer, serial) the directory's CRLs list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Revocations {
    revoked: BTreeMap<(String, String), Option<u8>>,
}

impl Revocations {
    /// Builds the set from CRLs (DER), each with where it was read (for the
    /// problems). Only CRLs that pass [`Crl::verified`] against `issuers` at
    /// `now` count; every other one is returned as a problem and ignored: an
    /// unverifiable CRL revokes nothing.
    pub fn from_crls<'a>(
        crls: impl IntoIterator<Item = (&'a str, &'a [u8])>,
        issuers: &[Vec<u8>],
        now: OffsetDateTime,
    ) -> (Revocations, Vec<String>) {
        let mut set = Revocations::default();
        let mut problems = Vec::new();
        for (source, der) in crls {
            match Crl::verified(der, issuers, now) {
                Ok(crl) => {
                    for (serial, (_, reason)) in crl.revoked {
                        set.revoked.insert((crl.issuer.clone(), serial), reason);
                    }
                }
                Err(e) => problems.push(format!("{source}: {e}")),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::crl::{CrlInput, build_crl};
    use crate::ca::db::RevokedEntry;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    use time::Duration;

    fn t0() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    /// A CA named `name` with a fresh key: (its certificate, its issuer).
    fn ca(name: &str, usages: Vec<KeyUsagePurpose>) -> (Vec<u8>, Issuer<'static, KeyPair>) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = usages;
        let cert = params.self_signed(&key).unwrap();
        (cert.der().to_vec(), Issuer::new(params, key))
    }

    fn crl_signer() -> Vec<KeyUsagePurpose> {
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign]
    }

    /// A CRL revoking serial 0x1234, current from t0 for a week.
    fn crl(issuer: &Issuer<'_, KeyPair>) -> Vec<u8> {
        let revoked = [RevokedEntry {
            serial: "1234".into(),
            revoked_at: t0(),
            reason: 1,
        }];
        build_crl(
            &CrlInput {
                number: 1,
                this_update: t0(),
                next_update: t0() + Duration::days(7),
                revoked: &revoked,
            },
            issuer,
        )
        .unwrap()
    }

    /// Interoperability: a CRL made by OpenSSL's own CA (`openssl ca
    /// -gencrl`, RSA with SHA-256, one revoked certificate) is believed
    /// against that CA's certificate, and refused against another CA
    /// certificate of the same name.
    #[test]
    fn an_openssl_crl_is_verified_against_its_issuer_only() {
        use crate::pki::keys::tests::openssl;
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
        let make_ca = |name: &str| {
            openssl(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=corp-CA",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-keyout",
                &p(&format!("{name}.key")),
                "-out",
                &p(&format!("{name}.pem")),
            ]);
            openssl(&["x509", "-in", &p(&format!("{name}.pem")), "-outform", "DER"])
        };
        let ca_der = make_ca("ca");
        let other_der = make_ca("other");
        std::fs::write(p("index.txt"), "").unwrap();
        std::fs::write(p("crlnumber"), "01\n").unwrap();
        let config = format!(
            "[ca]\ndefault_ca = d\n[d]\ndatabase = {}\ncrlnumber = {}\ndefault_md = sha256\n\
             default_crl_days = 1\nprivate_key = {}\ncertificate = {}\n",
            p("index.txt"),
            p("crlnumber"),
            p("ca.key"),
            p("ca.pem")
        );
        std::fs::write(p("ca.cnf"), config).unwrap();
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=ws01",
            "-set_serial",
            "0x5EED",
            "-keyout",
            &p("leaf.key"),
            "-out",
            &p("leaf.pem"),
        ]);
        openssl(&["ca", "-config", &p("ca.cnf"), "-revoke", &p("leaf.pem")]);
        openssl(&[
            "ca",
            "-config",
            &p("ca.cnf"),
            "-gencrl",
            "-out",
            &p("crl.pem"),
        ]);
        let crl_der = openssl(&["crl", "-in", &p("crl.pem"), "-outform", "DER"]);
        let now = OffsetDateTime::now_utc();
        let read = Crl::verified(&crl_der, &[ca_der], now).unwrap();
        assert_eq!(read.revoked.len(), 1, "{:?}", read.revoked);
        assert!(
            read.revoked
                .contains_key(&crate::pki::template_ext::serial_hex(&[0x5E, 0xED])),
            "{:?}",
            read.revoked
        );
        let e = Crl::verified(&crl_der, &[other_der], now).unwrap_err();
        assert!(e.contains("not signed by the key"), "{e}");
    }

    #[test]
    fn a_crl_signed_by_the_published_ca_is_believed() {
        let (cert, issuer) = ca("corp-CA", crl_signer());
        let der = crl(&issuer);
        let read = Crl::verified(&der, &[cert], t0() + Duration::hours(1)).unwrap();
        assert_eq!(read.revoked.len(), 1);
        assert!(read.revoked.contains_key("1234"), "{:?}", read.revoked);
    }

    #[test]
    fn a_crl_with_the_right_name_and_another_key_is_not() {
        let (cert, _) = ca("corp-CA", crl_signer());
        let (_, forger) = ca("corp-CA", crl_signer());
        let e = Crl::verified(&crl(&forger), &[cert], t0()).unwrap_err();
        assert!(e.contains("not signed by the key"), "{e}");
    }

    #[test]
    fn a_crl_of_an_unknown_issuer_is_not() {
        let (cert, _) = ca("corp-CA", crl_signer());
        let (_, other) = ca("other-CA", crl_signer());
        let e = Crl::verified(&crl(&other), &[cert], t0()).unwrap_err();
        assert!(e.contains("publishes no CA certificate"), "{e}");
        let e = Crl::verified(&crl(&other), &[], t0()).unwrap_err();
        assert!(e.contains("publishes no CA certificate"), "{e}");
    }

    #[test]
    fn a_crl_outside_its_validity_window_is_not() {
        let (cert, issuer) = ca("corp-CA", crl_signer());
        let der = crl(&issuer);
        let issuers = [cert];
        let e = Crl::verified(&der, &issuers, t0() + Duration::days(7)).unwrap_err();
        assert!(e.contains("out of date"), "{e}");
        let e = Crl::verified(&der, &issuers, t0() - Duration::seconds(1)).unwrap_err();
        assert!(e.contains("in the future"), "{e}");
        assert!(Crl::verified(&der, &issuers, t0()).is_ok());
    }

    #[test]
    fn a_crl_signed_by_a_key_not_allowed_to_sign_crls_is_not() {
        // The same key signs both; only its certificate's key usage differs.
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "corp-CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer_params = params.clone();
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let cert = params.self_signed(&key).unwrap().der().to_vec();
        let der = crl(&Issuer::new(issuer_params, key));
        let e = Crl::verified(&der, &[cert], t0()).unwrap_err();
        assert!(e.contains("not signed by the key"), "{e}");
    }

    #[test]
    fn only_verified_crls_revoke() {
        let (cert, issuer) = ca("corp-CA", crl_signer());
        let (_, forger) = ca("corp-CA", crl_signer());
        let good = crl(&issuer);
        let forged = crl(&forger);
        let garbage = b"not a CRL".to_vec();
        let (set, problems) = Revocations::from_crls(
            [
                ("CN=forged", forged.as_slice()),
                ("CN=garbage", garbage.as_slice()),
            ],
            std::slice::from_ref(&cert),
            t0(),
        );
        assert!(set.is_empty());
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("CN=forged: "), "{problems:?}");
        let (set, problems) = Revocations::from_crls([("CN=good", good.as_slice())], &[cert], t0());
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(set.len(), 1);
    }
}
