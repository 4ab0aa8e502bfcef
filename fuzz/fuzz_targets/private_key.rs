//! Private keys (PEM in PKCS#8, PKCS#1 or SEC1, and PKCS#8 DER) and public keys
//! (SubjectPublicKeyInfo DER, from requests and certificates). A key that
//! loads signs, and its PEM loads back to the same key.
#![no_main]

use autoenroll::pki::keys::{KeyAlgorithm, PrivateKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(alg) = KeyAlgorithm::from_spki(data) {
        let _ = (alg.bits(), alg.describe());
    }
    for key in [PrivateKey::from_pem(data), PrivateKey::from_pkcs8_der(data)]
        .into_iter()
        .flatten()
    {
        let again = PrivateKey::from_pem(key.to_pem().as_bytes()).expect("our PEM loads");
        assert_eq!(again.pkcs8_der(), key.pkcs8_der());
        assert_eq!(
            KeyAlgorithm::from_spki(&key.public_key_der()).ok(),
            Some(key.algorithm())
        );
        key.sign(b"fuzz").expect("a loaded key signs");
    }
});
