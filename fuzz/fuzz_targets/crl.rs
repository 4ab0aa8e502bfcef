//! CRLs as the client reads them from the directory's CDP objects.
#![no_main]

use autoenroll::pki::{Crl, Revocations};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(crl) = Crl::from_der(data) {
        let (revocations, problems) = Revocations::from_crls([data]);
        assert!(problems.is_empty());
        assert_eq!(revocations.len(), crl.revoked.len());
        for serial in crl.revoked.keys() {
            assert!(revocations.is_revoked(&crl.issuer, serial));
        }
    }
});
