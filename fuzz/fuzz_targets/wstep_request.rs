//! MS-WSTEP requests as the CA's endpoint reads them (SOAP 1.2, WS-Addressing,
//! WS-Security UsernameToken, RequestSecurityToken): a request that reads
//! writes to XML that reads the same.
#![no_main]

use autoenroll::wstep::WstepRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = WstepRequest::from_xml(data) else {
        return;
    };
    let xml = request.to_xml();
    assert_eq!(WstepRequest::from_xml(xml.as_bytes()), Ok(request), "{xml}");
});
