//! A SearchResultEntry as the directory sends it ([RFC 4511] 4.5.2, BER): the
//! LDAP library's decoding into tags, the engine's `Entry::from_result`,
//! which trusts no shape, then the template and CA decoding of the snapshot.
#![no_main]

use autoenroll::directory::entry::Entry;
use autoenroll::directory::snapshot::{service_from_entry, template_from_entry};
use ldap3::ResultEntry;
use ldap3::asn1::parse_tag;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok((_, tag)) = parse_tag(data) else {
        return;
    };
    let Ok(entry) = Entry::from_result(ResultEntry::new(tag)) else {
        return;
    };
    let _ = template_from_entry(&entry);
    let _ = service_from_entry(&entry);
});
