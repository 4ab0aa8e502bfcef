//! Certificates and keys as the store reads them (PEM with any line ends and
//! several blocks, or DER; PKCS#8, PKCS#1 or SEC1 keys): the input is written
//! as a certificate file next to a valid key, as a key file next to a valid
//! certificate, and as a pending request's key. The snapshot reports what it
//! cannot read and never panics.
#![no_main]

use autoenroll_fuzz::{ENTRY_META, REQUEST_META, fixture, put, scratch};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let scratch = scratch();
    let store = scratch.reset();
    let fixture = fixture();
    let root = &scratch.root;
    put(&root.join("my/Machine/cert.pem"), data);
    put(&root.join("my/Machine/key.pem"), fixture.key_pem.as_bytes());
    put(&root.join("my/Web/cert.der"), data);
    put(&root.join("my/User/cert.pem"), fixture.cert_pem.as_bytes());
    put(&root.join("my/User/key.pem"), data);
    put(&root.join("my/User/meta.toml"), ENTRY_META.as_bytes());
    put(&root.join("request/r1/meta.toml"), REQUEST_META.as_bytes());
    put(&root.join("request/r1/key.pem"), data);
    let snapshot = store
        .snapshot()
        .expect("a snapshot fails only on I/O errors");
    // The entry with the valid certificate is always read.
    assert!(!snapshot.certificates.is_empty());
});
