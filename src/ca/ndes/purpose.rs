//! Which template NDES uses for a request: by the purpose its key usage
//! extension states, as NDES decides it. Signature only (digitalSignature
//! or nonRepudiation) takes `SignatureTemplate`; encipherment only
//! (keyEncipherment or dataEncipherment) takes `EncryptionTemplate`; both,
//! neither, or no key usage at all take `GeneralPurposeTemplate`.

use crate::ca::config::NdesConfig;

/// Key usage bits as x509-parser numbers them (RFC 5280 4.2.1.3).
const DIGITAL_SIGNATURE: u16 = 1 << 0;
const NON_REPUDIATION: u16 = 1 << 1;
const KEY_ENCIPHERMENT: u16 = 1 << 2;
const DATA_ENCIPHERMENT: u16 = 1 << 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Signature,
    Encryption,
    GeneralPurpose,
}

/// The purpose of a request whose key usage is `key_usage` (x509-parser's
/// bit numbering: bit 0 is digitalSignature), `None` without the extension.
pub fn of(key_usage: Option<u16>) -> Purpose {
    let Some(ku) = key_usage else {
        return Purpose::GeneralPurpose;
    };
    let signs = ku & (DIGITAL_SIGNATURE | NON_REPUDIATION) != 0;
    let enciphers = ku & (KEY_ENCIPHERMENT | DATA_ENCIPHERMENT) != 0;
    match (signs, enciphers) {
        (true, false) => Purpose::Signature,
        (false, true) => Purpose::Encryption,
        _ => Purpose::GeneralPurpose,
    }
}

/// The template name configured for `purpose`.
pub fn template(config: &NdesConfig, purpose: Purpose) -> &str {
    match purpose {
        Purpose::Signature => &config.signature_template,
        Purpose::Encryption => &config.encryption_template,
        Purpose::GeneralPurpose => &config.general_purpose_template,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purpose_by_key_usage() {
        let cases: &[(Option<u16>, Purpose)] = &[
            (None, Purpose::GeneralPurpose),
            (Some(0), Purpose::GeneralPurpose),
            (Some(DIGITAL_SIGNATURE), Purpose::Signature),
            (Some(NON_REPUDIATION), Purpose::Signature),
            (
                Some(DIGITAL_SIGNATURE | NON_REPUDIATION),
                Purpose::Signature,
            ),
            (Some(KEY_ENCIPHERMENT), Purpose::Encryption),
            (Some(DATA_ENCIPHERMENT), Purpose::Encryption),
            (
                Some(DIGITAL_SIGNATURE | KEY_ENCIPHERMENT),
                Purpose::GeneralPurpose,
            ),
            (
                Some(NON_REPUDIATION | DATA_ENCIPHERMENT),
                Purpose::GeneralPurpose,
            ),
            // keyAgreement (bit 4) alone states neither purpose.
            (Some(1 << 4), Purpose::GeneralPurpose),
        ];
        for (ku, want) in cases {
            assert_eq!(of(*ku), *want, "{ku:?}");
        }
    }
}
