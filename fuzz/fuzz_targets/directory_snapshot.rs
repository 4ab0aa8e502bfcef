//! The directory snapshot a pulse keeps in the store
//! (`directory-snapshot.json`), read back by `status` when the directory is
//! unreachable: `SavedSnapshot::parse`, then the same decoders as live LDAP
//! data. What parses writes and parses back to the same.
#![no_main]

use autoenroll::directory::saved::SavedSnapshot;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(saved) = SavedSnapshot::parse(data) {
        let _ = saved.raw.decode();
        let again = saved.to_json().expect("a read snapshot encodes");
        assert_eq!(SavedSnapshot::parse(&again).as_ref(), Ok(&saved));
    }
});
