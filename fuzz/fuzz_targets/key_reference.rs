//! The store's `key.ref` (a key on a PKCS#11 token): never panics, and a
//! reference read back writes and reads again to the same reference.
#![no_main]

use autoenroll::pki::keyref::KeyReference;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = KeyReference::is_reference(data);
    if let Ok(r) = KeyReference::parse(data) {
        let again = KeyReference::parse(r.to_text().as_bytes()).expect("written text reads");
        assert_eq!(again, r);
    }
});
