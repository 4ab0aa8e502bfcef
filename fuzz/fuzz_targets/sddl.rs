//! SDDL ([MS-DTYP] 2.5.1), as the lab LDIF and the CA's publication write it:
//! a parsed descriptor prints to text that parses to the same value, and
//! encodes to bytes that decode to the same value.
#![no_main]

use autoenroll::directory::sd::SecurityDescriptor;
use autoenroll::directory::sddl::{parse_sddl, to_sddl};
use autoenroll::model::Sid;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let domain = Sid::new(5, &[21, 1000, 2000, 3000]);
    let Ok(sd) = parse_sddl(text, &domain) else {
        return;
    };
    let printed = to_sddl(&sd, Some(&domain));
    assert_eq!(parse_sddl(&printed, &domain), Ok(sd.clone()), "{printed}");
    assert_eq!(to_sddl(&sd, None).is_empty(), printed.is_empty());
    let bytes = sd.try_to_bytes().expect("a parsed descriptor encodes");
    assert_eq!(SecurityDescriptor::from_bytes(&bytes), Ok(sd));
});
