//! Self-relative security descriptors ([MS-DTYP] 2.4.6), the nTSecurityDescriptor
//! of every template: decode, then encode and decode again to the same value;
//! print as SDDL and parse back to the same value when the descriptor holds no
//! ACE kept verbatim (those are printed for people only), up to the control
//! bits SDDL has no words for (the *_DEFAULTED, DACL_TRUSTED, SERVER_SECURITY
//! and RM_CONTROL_VALID bits: [MS-DTYP] 2.5.1.1 names only P, AR and AI) and
//! the ACL revision, which SDDL does not state: parsing gives each ACL the
//! revision its ACEs need (4 with object ACEs, else 2).
#![no_main]

use autoenroll::directory::sd::{AceType, Acl, SecurityDescriptor, control};
use autoenroll::directory::sddl::{parse_sddl, to_sddl};
use autoenroll::model::Sid;
use libfuzzer_sys::fuzz_target;

/// The control bits SDDL carries: P, AR and AI of each ACL, plus the bits
/// every decoded descriptor has (SELF_RELATIVE and the present bits).
const SDDL_CONTROL: u16 = control::DACL_PROTECTED
    | control::DACL_AUTO_INHERIT_REQ
    | control::DACL_AUTO_INHERITED
    | control::SACL_PROTECTED
    | control::SACL_AUTO_INHERIT_REQ
    | control::SACL_AUTO_INHERITED
    | control::SELF_RELATIVE
    | control::DACL_PRESENT
    | control::SACL_PRESENT;

/// The ACL as SDDL gives it back: the revision its ACEs need.
fn sayable_acl(acl: Option<Acl>) -> Option<Acl> {
    acl.map(|acl| Acl {
        revision: if acl.aces.iter().any(|a| a.ace_type.is_object()) {
            4
        } else {
            2
        },
        ..acl
    })
}

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
        let sayable = SecurityDescriptor {
            control: sd.control & SDDL_CONTROL,
            sacl: sayable_acl(sd.sacl),
            dacl: sayable_acl(sd.dacl),
            ..sd
        };
        assert_eq!(parse_sddl(&text, &domain), Ok(sayable), "{text}");
    }
});
