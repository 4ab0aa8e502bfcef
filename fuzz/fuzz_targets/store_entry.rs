//! A whole store as a pulse finds it: a certificate entry (`my/Machine`), a
//! request (`request/r1`) and `state.toml`, any of whose files the input
//! replaces. The store reads it (`snapshot`, `read_state`) and then recovers
//! it under the lock, as every pulse does first: nothing may panic, and a bad
//! file is reported, never fatal to the snapshot.
//!
//! Input: records (`autoenroll_fuzz::records`); the tag, modulo 6, picks the file.
#![no_main]

use autoenroll_fuzz::{ENTRY_META, REQUEST_META, fixture, put, records, scratch};
use libfuzzer_sys::fuzz_target;

const FILES: [&str; 6] = [
    "my/Machine/cert.pem",
    "my/Machine/key.pem",
    "my/Machine/meta.toml",
    "request/r1/meta.toml",
    "request/r1/key.pem",
    "state.toml",
];

fuzz_target!(|data: &[u8]| {
    let scratch = scratch();
    let store = scratch.reset();
    let fixture = fixture();
    let mut files: [Option<&[u8]>; 6] = [
        Some(fixture.cert_pem.as_bytes()),
        Some(fixture.key_pem.as_bytes()),
        Some(ENTRY_META.as_bytes()),
        Some(REQUEST_META.as_bytes()),
        Some(fixture.key_pem.as_bytes()),
        None,
    ];
    for (tag, value) in records(data) {
        files[usize::from(tag) % FILES.len()] = Some(value);
    }
    for (name, content) in FILES.iter().zip(files) {
        if let Some(content) = content {
            put(&scratch.root.join(name), content);
        }
    }
    store
        .snapshot()
        .expect("a snapshot fails only on I/O errors");
    let _ = store.read_state();
    let _ = store.recover(&scratch.lock);
    store
        .snapshot()
        .expect("a snapshot fails only on I/O errors");
});
