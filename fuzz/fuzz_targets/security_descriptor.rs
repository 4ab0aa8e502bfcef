//! Self-relative security descriptors ([MS-DTYP] 2.4.6), the nTSecurityDescriptor
//! of every template: decode, then encode and decode again to the same value;
//! print as SDDL and parse back to the same value when the descriptor holds no
//! ACE kept verbatim (those are printed for people only).
#![no_main]

use autoenroll::directory::sd::{AceType, SecurityDescriptor};
use autoenroll::directory::sddl::{parse_sddl, to_sddl};
use autoenroll::model::Sid;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(sd) = SecurityDescriptor::from_bytes(data) else {
        return;
    };
    let bytes = sd.try_to_bytes().expect("a decoded descriptor encodes");
    assert_eq!(SecurityDescriptor::from_bytes(&bytes), Ok(sd.clone()));
    let domain = Sid::new(5, &[21, 1000, 2000, 3000]);
    let text = to_sddl(&sd, Some(&domain));
    let verbatim = [&sd.dacl, &sd.sacl]
        .into_iter()
        .flatten()
        .flat_map(|acl| &acl.aces)
        .any(|ace| matches!(ace.ace_type, AceType::Other(_)));
    if !verbatim {
        assert_eq!(parse_sddl(&text, &domain), Ok(sd), "{text}");
    }
});
