//! CMS SignedData: renewal requests as the CA receives them ([MS-WCCE]
//! 2.2.2.6: verify the signer, then the PKCS#10 inside) and certs-only chains
//! as the client receives them. A chain that reads builds to one that reads
//! the same.
#![no_main]

use autoenroll::pki::cms::{certs_only, open_signed_request, parse_request_token, read_certs_only};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = open_signed_request(data);
    let _ = parse_request_token(data);
    if let Ok(certs) = read_certs_only(data)
        && let Ok(again) = certs_only(&certs)
    {
        let mut unique: Vec<Vec<u8>> = Vec::new();
        for c in certs {
            if !unique.contains(&c) {
                unique.push(c);
            }
        }
        assert_eq!(read_certs_only(&again), Ok(unique));
    }
});
