//! MS-WSTEP replies as the client reads them (RequestSecurityTokenResponse
//! collections and SOAP faults): a reply that reads writes to XML that reads
//! the same.
#![no_main]

use autoenroll::wstep::{Reply, parse_reply};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(reply) = parse_reply(data) else {
        return;
    };
    let xml = match &reply {
        Reply::Response(r) => r.to_xml(),
        Reply::Fault(f) => f.to_xml(),
    };
    assert_eq!(parse_reply(xml.as_bytes()), Ok(reply), "{xml}");
});
