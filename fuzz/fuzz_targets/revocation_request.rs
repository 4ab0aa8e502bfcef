//! The body of a requester revocation (`pki::revocation`), as the emulated
//! CA's endpoint reads it: never a panic, and what reads is a reason a
//! requester may give.
#![no_main]

use autoenroll::pki::revocation::{REQUESTER_REASONS, RevocationRequest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = RevocationRequest::parse(data) {
        assert!(REQUESTER_REASONS.contains(&r.reason));
    }
});
