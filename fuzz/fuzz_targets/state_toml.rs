//! `state.toml` (failure counts for the backoff, the last pulse, the directory
//! marker): a file that reads writes back to one that reads the same.
#![no_main]

use autoenroll_fuzz::{put, scratch};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let scratch = scratch();
    let store = scratch.reset();
    put(&scratch.root.join("state.toml"), data);
    let Ok(state) = store.read_state() else {
        return;
    };
    // A time the TOML writer cannot carry (a year past 9999) may fail to write;
    // what is written must read back the same.
    if store.write_state(&scratch.lock, &state).is_ok() {
        assert_eq!(store.read_state().expect("written state reads"), state);
    }
});
