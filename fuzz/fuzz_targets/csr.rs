//! PKCS#10 requests as the CA receives them: parse and verify the
//! self-signature, the template extensions, the SAN and the renewal attribute.
#![no_main]

use autoenroll::pki::csr::ParsedCsr;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(csr) = ParsedCsr::from_der(data) {
        assert_eq!(csr.der, data);
    }
});
