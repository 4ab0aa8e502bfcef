//! GetCACert (RFC 8894 4.2.1): the CA certificate alone
//! (`application/x-x509-ca-cert`), or a certs-only PKCS#7 with the RA and CA
//! certificates (`application/x-x509-ca-ra-cert`), as NDES sends: one RA
//! certificate for signing, one for encryption ([MS-WCCE]-era NDES keeps
//! them apart by key usage).
//!
//! GetCACert travels over plain HTTP, so what it returns is trusted only
//! when it chains to the root the profile names (RFC 8894 2.2: the CA
//! certificate is authenticated out of band).

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::FromDer;

use super::ScepError;
use crate::pki::cms::read_certs_only;
use crate::pki::keys::{KeyAlgorithm, verify_signature};

/// Largest GetCACert answer read.
pub const MAX_CA_CERT_BYTES: usize = 256 * 1024;

/// The certificates of a GetCACert answer, sorted out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaCerts {
    /// Every certificate, as received.
    pub all: Vec<Vec<u8>>,
    /// Where requests are enveloped to: the RA's encryption certificate, or
    /// the CA's when there is no RA.
    pub encryption: Vec<u8>,
    /// The CA that issues (the issuer of the RA certificates, or the one
    /// certificate): its subject goes into CertPoll (RFC 8894 3.3.3).
    pub issuer: Vec<u8>,
}

fn bad(m: impl Into<String>) -> ScepError {
    ScepError::CaCert(m.into())
}

struct Info<'a> {
    der: &'a [u8],
    is_ca: bool,
    key_encipherment: Option<bool>,
    rsa: bool,
    subject: &'a [u8],
    issuer: &'a [u8],
}

fn info(der: &[u8]) -> Result<Info<'_>, ScepError> {
    let (rest, c) =
        X509Certificate::from_der(der).map_err(|e| bad(format!("not a certificate: {e}")))?;
    if !rest.is_empty() {
        return Err(bad("bytes after a certificate"));
    }
    let mut is_ca = false;
    let mut key_encipherment = None;
    for ext in c.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::BasicConstraints(b) => is_ca = b.ca,
            ParsedExtension::KeyUsage(k) => key_encipherment = Some(k.key_encipherment()),
            _ => {}
        }
    }
    Ok(Info {
        der,
        is_ca,
        key_encipherment,
        rsa: matches!(
            KeyAlgorithm::from_spki(c.public_key().raw),
            Ok(KeyAlgorithm::Rsa { .. })
        ),
        subject: c.tbs_certificate.subject.as_raw(),
        issuer: c.tbs_certificate.issuer.as_raw(),
    })
}

impl CaCerts {
    /// Reads a GetCACert body by its content type (parameters after `;`
    /// ignored). A single certificate may also come as PEM, which some
    /// servers send.
    pub fn parse(content_type: &str, body: &[u8]) -> Result<CaCerts, ScepError> {
        if body.len() > MAX_CA_CERT_BYTES {
            return Err(bad(format!("{} bytes is too large", body.len())));
        }
        let media = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let all = match media.as_str() {
            "application/x-x509-ca-cert" => vec![single(body)?],
            "application/x-x509-ca-ra-cert" | "application/pkcs7-mime" => {
                read_certs_only(body).map_err(|e| bad(format!("the PKCS#7: {e}")))?
            }
            other => {
                return Err(bad(format!(
                    "content type {other:?} (expected application/x-x509-ca-cert or application/x-x509-ca-ra-cert)"
                )));
            }
        };
        Self::sort(all)
    }

    fn sort(all: Vec<Vec<u8>>) -> Result<CaCerts, ScepError> {
        if all.is_empty() {
            return Err(bad("no certificate"));
        }
        let infos = all.iter().map(|d| info(d)).collect::<Result<Vec<_>, _>>()?;
        let (encryption, issuer) = if infos.len() == 1 {
            (infos[0].der.to_vec(), infos[0].der.to_vec())
        } else {
            // An RA certificate is an end-entity certificate; the one for
            // encryption allows keyEncipherment (or says nothing).
            let ra = infos
                .iter()
                .filter(|i| !i.is_ca && i.rsa)
                .find(|i| i.key_encipherment != Some(false))
                .or_else(|| infos.iter().find(|i| !i.is_ca && i.rsa));
            match ra {
                Some(ra) => {
                    let issuer = infos
                        .iter()
                        .find(|i| i.is_ca && i.subject == ra.issuer)
                        .ok_or_else(|| bad("the CA that issued the RA certificate is missing"))?;
                    (ra.der.to_vec(), issuer.der.to_vec())
                }
                None => {
                    // Only CA certificates: the one no other one issued is
                    // the root; use the lowest one (issued by another).
                    let ca = infos
                        .iter()
                        .find(|i| {
                            i.rsa
                                && infos
                                    .iter()
                                    .all(|o| o.issuer != i.subject || o.der == i.der)
                        })
                        .ok_or_else(|| bad("no RSA certificate to encrypt to"))?;
                    (ca.der.to_vec(), ca.der.to_vec())
                }
            }
        };
        Ok(CaCerts {
            all,
            encryption,
            issuer,
        })
    }

    /// The certificates that chain to `root` (DER) within four links, each
    /// signature verified: only those may receive a request or sign a reply.
    /// Errors when the encryption certificate does not chain.
    pub fn trusted(&self, root: &[u8]) -> Result<Vec<Vec<u8>>, ScepError> {
        let mut trusted: Vec<Vec<u8>> = Vec::new();
        for cert in &self.all {
            if chains(cert, root, &self.all, 4)? {
                trusted.push(cert.clone());
            }
        }
        if !trusted.contains(&self.encryption) {
            return Err(bad(
                "the server's certificates do not chain to the root the profile trusts",
            ));
        }
        Ok(trusted)
    }
}

fn single(body: &[u8]) -> Result<Vec<u8>, ScepError> {
    if body.starts_with(b"-----BEGIN") {
        let mut reader = body;
        let cert = rustls_pemfile::certs(&mut reader)
            .next()
            .ok_or_else(|| bad("no CERTIFICATE block in the PEM text"))?
            .map_err(|e| bad(format!("PEM: {e}")))?;
        return Ok(cert.to_vec());
    }
    info(body)?;
    Ok(body.to_vec())
}

/// Whether a certificate of `issuers` signed `cert` (names and signature).
pub(crate) fn signed_by_one_of(cert: &[u8], issuers: &[Vec<u8>]) -> bool {
    let Ok((_, c)) = X509Certificate::from_der(cert) else {
        return false;
    };
    issuers.iter().any(|issuer_der| {
        X509Certificate::from_der(issuer_der).is_ok_and(|(_, i)| {
            i.tbs_certificate.subject.as_raw() == c.tbs_certificate.issuer.as_raw()
                && verify_signature(
                    i.public_key().raw,
                    &c.signature_algorithm.algorithm.to_id_string(),
                    c.tbs_certificate.as_ref(),
                    &c.signature_value.data,
                )
                .is_ok()
        })
    })
}

/// Whether `cert` is `root` or is signed by a certificate of `pool` that
/// chains to it.
fn chains(cert: &[u8], root: &[u8], pool: &[Vec<u8>], depth: u32) -> Result<bool, ScepError> {
    if cert == root {
        return Ok(true);
    }
    if depth == 0 {
        return Ok(false);
    }
    let (_, c) = X509Certificate::from_der(cert).map_err(|e| bad(format!("{e}")))?;
    let issued_by = |issuer_der: &[u8]| -> bool {
        let Ok((_, i)) = X509Certificate::from_der(issuer_der) else {
            return false;
        };
        i.tbs_certificate.subject.as_raw() == c.tbs_certificate.issuer.as_raw()
            && verify_signature(
                i.public_key().raw,
                &c.signature_algorithm.algorithm.to_id_string(),
                c.tbs_certificate.as_ref(),
                &c.signature_value.data,
            )
            .is_ok()
    };
    if issued_by(root) {
        return Ok(true);
    }
    for p in pool {
        if p.as_slice() != cert && issued_by(p) && chains(p, root, pool, depth - 1)? {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scep::tests::rsa_identity;

    #[test]
    fn one_certificate_is_ca_and_ra() {
        let (_, cert) = rsa_identity("ca");
        let c = CaCerts::parse("application/x-x509-ca-cert", &cert).unwrap();
        assert_eq!(c.encryption, cert);
        assert_eq!(c.issuer, cert);
        assert_eq!(c.trusted(&cert).unwrap(), vec![cert.clone()]);
        let (_, other) = rsa_identity("other");
        assert!(c.trusted(&other).is_err());
    }

    /// A CA and, issued by it, NDES's two RA certificates: one for signing
    /// (digitalSignature), one for encryption (keyEncipherment).
    fn ndes_style() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let rsa = || -> KeyPair {
            crate::pki::keys::PrivateKey::generate(KeyAlgorithm::Rsa { bits: 2048 })
                .unwrap()
                .rcgen_key_pair()
                .unwrap()
        };
        let ca_key = rsa();
        let mut ca = CertificateParams::new(vec![]).unwrap();
        ca.distinguished_name.push(DnType::CommonName, "corp-CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let ra = |cn: &str, usage: KeyUsagePurpose| {
            let key = rsa();
            let mut p = CertificateParams::new(vec![]).unwrap();
            p.distinguished_name.push(DnType::CommonName, cn);
            p.is_ca = IsCa::ExplicitNoCa;
            p.key_usages = vec![usage];
            p.signed_by(&key, &issuer).unwrap().der().to_vec()
        };
        let sign = ra("NDES-MSCEP-RA sign", KeyUsagePurpose::DigitalSignature);
        let encrypt = ra("NDES-MSCEP-RA encrypt", KeyUsagePurpose::KeyEncipherment);
        (ca_cert.der().to_vec(), sign, encrypt)
    }

    #[test]
    fn ndes_ra_and_ca_certificates_are_sorted_out() {
        let (ca, sign, encrypt) = ndes_style();
        let p7 = crate::pki::cms::certs_only(&[sign.clone(), ca.clone(), encrypt.clone()]).unwrap();
        let c = CaCerts::parse("application/x-x509-ca-ra-cert", &p7).unwrap();
        assert_eq!(c.encryption, encrypt);
        assert_eq!(c.issuer, ca);
        let mut trusted = c.trusted(&ca).unwrap();
        trusted.sort();
        let mut all = vec![ca.clone(), sign, encrypt];
        all.sort();
        assert_eq!(trusted, all, "each RA certificate chains to the CA");
        // Without the CA in the answer, the RA certificate cannot be placed.
        let (_, s2, e2) = ndes_style();
        let p7 = crate::pki::cms::certs_only(&[s2, e2]).unwrap();
        assert!(CaCerts::parse("application/x-x509-ca-ra-cert", &p7).is_err());
    }

    #[test]
    fn refuses_other_types_and_garbage() {
        let (_, cert) = rsa_identity("ca");
        assert!(CaCerts::parse("text/html", &cert).is_err());
        assert!(CaCerts::parse("application/x-x509-ca-cert", b"<html>").is_err());
        assert!(CaCerts::parse("application/x-x509-ca-ra-cert", &cert).is_err());
        for n in 0..cert.len() {
            assert!(CaCerts::parse("application/x-x509-ca-cert", &cert[..n]).is_err());
        }
    }
}
