//! PKCS#12 bundles (RFC 7292) of a key, its certificate and the chain, for
//! services that read one file (NetworkManager 802.1X, wpa_supplicant,
//! Java keystores, NSS's pk12util).
//!
//! Written with the `p12-keystore` crate: PBES2 with AES-256-CBC and
//! PBKDF2-HMAC-SHA256 for the key and certificate bags (RFC 8018 6.2,
//! what OpenSSL 3 writes by default), HMAC-SHA256 for the integrity MAC
//! (RFC 7292 appendix B). An empty password is allowed: some consumers
//! need one; the file's mode is what protects it then.

use super::PkiError;

/// The bundle of `key_pkcs8` (PKCS#8 DER) with `chain` (leaf first, then
/// its issuers), the key named `friendly_name`.
pub fn bundle(
    key_pkcs8: &[u8],
    chain: &[Vec<u8>],
    password: &str,
    friendly_name: &str,
) -> Result<Vec<u8>, PkiError> {
    let bad = |what: &str, e: p12_keystore::error::Error| {
        PkiError::Key(format!("PKCS#12 bundle: {what}: {e}"))
    };
    if chain.is_empty() {
        return Err(PkiError::Key(
            "PKCS#12 bundle: no certificate to put in it".into(),
        ));
    }
    let key = p12_keystore::PrivateKey::from_der(key_pkcs8).map_err(|e| bad("the key", e))?;
    let certs = chain
        .iter()
        .map(|c| p12_keystore::Certificate::from_der(c))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("a certificate", e))?;
    // localKeyId ties the key to its certificate (RFC 7292 4.2): the
    // SHA-1 of the certificate, as OpenSSL and NSS write it.
    let key_id = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &chain[0])
        .as_ref()
        .to_vec();
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry(
        friendly_name,
        p12_keystore::KeyStoreEntry::PrivateKeyChain(p12_keystore::PrivateKeyChain::new(
            key_id, key, certs,
        )),
    );
    store
        .writer(password)
        .encryption_algorithm(p12_keystore::EncryptionAlgorithm::PbeWithHmacSha256AndAes256)
        .mac_algorithm(p12_keystore::MacAlgorithm::HmacSha256)
        .write()
        .map_err(|e| bad("writing", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::keys::{KeyAlgorithm, PrivateKey};

    fn certificate(key: &PrivateKey) -> Vec<u8> {
        let params = rcgen::CertificateParams::new(vec!["ws01.corp.example".into()]).unwrap();
        params
            .self_signed(&key.rcgen_key_pair().unwrap())
            .unwrap()
            .der()
            .to_vec()
    }

    /// What is written reads back (through the same crate) with the same
    /// password, and holds the key and the whole chain; another password is
    /// refused by the MAC. (tests/exports.rs has OpenSSL read it.)
    #[test]
    fn bundle_round_trips() {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let issuer_key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let chain = vec![certificate(&key), certificate(&issuer_key)];
        for password in ["", "s3cret"] {
            let der = bundle(key.pkcs8_der(), &chain, password, "WorkstationAuth").unwrap();
            let read = p12_keystore::Pkcs12Archive::from_pkcs12(&der, password).unwrap();
            assert_eq!(read.keys.len(), 1);
            let bag = &read.keys[0];
            assert_eq!(bag.friendly_name.as_deref(), Some("WorkstationAuth"));
            assert_eq!(bag.key.as_der(), key.pkcs8_der());
            let certs: Vec<&[u8]> = read.certs.iter().map(|c| c.cert.as_der()).collect();
            assert_eq!(certs, [chain[0].as_slice(), chain[1].as_slice()]);
            // The key's localKeyId names the leaf (RFC 7292 4.2).
            assert_eq!(
                read.certs[0].local_key_id.as_deref(),
                bag.local_key_id.as_ref().map(|id| id.as_ref())
            );
            assert!(
                p12_keystore::KeyStore::from_pkcs12(
                    &der,
                    "wrong",
                    p12_keystore::Pkcs12ImportPolicy::Relaxed
                )
                .is_err()
            );
        }
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let e = bundle(key.pkcs8_der(), &[], "", "x").unwrap_err();
        assert!(e.to_string().contains("no certificate"), "{e}");
        let e = bundle(b"junk", &[certificate(&key)], "", "x").unwrap_err();
        assert!(e.to_string().contains("the key"), "{e}");
        let e = bundle(key.pkcs8_der(), &[b"junk".to_vec()], "", "x").unwrap_err();
        assert!(e.to_string().contains("a certificate"), "{e}");
    }
}
