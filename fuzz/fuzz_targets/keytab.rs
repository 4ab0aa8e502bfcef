//! The keytab reader (src/krb/keytab.rs): any bytes give entries or an error,
//! never a panic, and every principal read prints to a name that parses back
//! to the same principal.
#![no_main]

use autoenroll::krb::keytab::{Principal, computer_principal, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(entries) = parse(data) else {
        return;
    };
    let _ = computer_principal(&entries);
    for e in &entries {
        let printed = e.principal.to_string();
        if e.principal.components.iter().all(|c| !c.is_empty()) && !e.principal.realm.is_empty() {
            assert_eq!(Principal::parse(&printed, None).as_ref(), Ok(&e.principal), "{printed}");
        }
    }
});
