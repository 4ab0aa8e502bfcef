//! DER certificates (the store's, the directory's cACertificate values, what a
//! CA returns): the facts the engine decides on, and the two template
//! extensions on their own. The template extensions round-trip.
#![no_main]

use autoenroll::pki::CertificateInfo;
use autoenroll::pki::template_ext::{
    decode_template_information, decode_template_name, encode_template_information,
    encode_template_name,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = CertificateInfo::from_der(data) {
        let _ = info.is_valid_at(info.not_before);
    }
    if let Ok((oid, major, minor)) = decode_template_information(data)
        && let (Some(major), Some(minor)) = (major, minor)
    {
        let again = encode_template_information(&oid, major, minor).expect("a read OID encodes");
        assert_eq!(
            decode_template_information(&again),
            Ok((oid, Some(major), Some(minor)))
        );
    }
    if let Ok(name) = decode_template_name(data) {
        assert_eq!(decode_template_name(&encode_template_name(&name)), Ok(name));
    }
});
