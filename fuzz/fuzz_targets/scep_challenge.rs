//! SCEP challenges as both sides receive them: NDES admin pages (any
//! encoding) and dynamic challenge answers on the client; on the NDES role,
//! the challengePassword of a request taken as a dynamic challenge (signature
//! checked, then opened), and pkiMessages as `open_request` reads them
//! (SHA-1 signers accepted).
#![no_main]

use autoenroll::ca::ndes::dynamic;
use autoenroll::scep::challenge_fetch::{parse_dynamic_answer, parse_one_time_page};
use autoenroll::scep::message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(password) = parse_one_time_page(data) {
        assert!(!password.is_empty() && !password.chars().any(char::is_whitespace));
    }
    let _ = parse_dynamic_answer(data);
    if let Ok(text) = std::str::from_utf8(data) {
        // A key no input can know: every input is a forgery.
        assert!(dynamic::open(text, &[0u8; 32], b"not a key").is_err());
    }
    let _ = message::open_request(data);
});
