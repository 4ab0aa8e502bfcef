//! `meta.toml` of a certificate entry and of a request, as the snapshot reads
//! them and as recovery acts on their intents (`archived_at`, `abandoned_at`).
#![no_main]

use autoenroll_fuzz::{fixture, put, scratch};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let scratch = scratch();
    let store = scratch.reset();
    let fixture = fixture();
    let root = &scratch.root;
    put(
        &root.join("my/Machine/cert.pem"),
        fixture.cert_pem.as_bytes(),
    );
    put(&root.join("my/Machine/key.pem"), fixture.key_pem.as_bytes());
    put(&root.join("my/Machine/meta.toml"), data);
    put(&root.join("request/r1/key.pem"), fixture.key_pem.as_bytes());
    put(&root.join("request/r1/meta.toml"), data);
    store
        .snapshot()
        .expect("a snapshot fails only on I/O errors");
    let _ = store.recover(&scratch.lock);
    store
        .snapshot()
        .expect("a snapshot fails only on I/O errors");
});
