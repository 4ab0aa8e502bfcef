//! Where a template's private keys live: files in the store (the default) or
//! a PKCS#11 token, where they are generated, sign, and stay.
//!
//! The store keeps either the key (PKCS#8 PEM, `key.pem`) or a
//! [`KeyReference`] to it (`key.ref`); [`open`] turns either back into a
//! [`PrivateKey`] that signs, so requests, renewals and the checks of what a
//! CA sent back are the same for both.

pub mod pkcs11;

use crate::pki::keyref::{KeyReference, TokenSettings};
use crate::pki::keys::{KeyAlgorithm, PrivateKey};

/// A template's `key_storage`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum KeyStorage {
    /// Generated in memory and kept in the store as a 0600 PEM file.
    #[default]
    File,
    /// Generated on a PKCS#11 token; the store keeps a reference.
    Pkcs11(TokenSettings),
}

/// A new key of `algorithm` where `storage` says. `label` names it on a
/// token (CKA_LABEL), for an administrator listing the token's objects.
pub fn generate(
    storage: &KeyStorage,
    algorithm: KeyAlgorithm,
    label: &str,
) -> Result<PrivateKey, String> {
    match storage {
        KeyStorage::File => PrivateKey::generate(algorithm).map_err(|e| e.to_string()),
        KeyStorage::Pkcs11(token) => pkcs11::generate(token, algorithm, label),
    }
}

/// The key the store keeps (`key.pem` or `key.ref` bytes), ready to sign.
pub fn open(stored: &[u8]) -> Result<PrivateKey, String> {
    if KeyReference::is_reference(stored) {
        let reference = KeyReference::parse(stored)?;
        return pkcs11::open(&reference);
    }
    PrivateKey::from_pem(stored).map_err(|e| e.to_string())
}
