//! CRLs as the client reads them from the directory's CDP objects: parsing
//! never panics, and a CRL no known CA certificate verifies revokes nothing.
#![no_main]

use autoenroll::pki::{Crl, Revocations};
use libfuzzer_sys::fuzz_target;
use time::OffsetDateTime;

fuzz_target!(|data: &[u8]| {
    let _ = Crl::from_der(data);
    let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
    let (revocations, problems) = Revocations::from_crls([("fuzz", data)], &[], now);
    assert!(revocations.is_empty());
    assert_eq!(problems.len(), 1);
});
