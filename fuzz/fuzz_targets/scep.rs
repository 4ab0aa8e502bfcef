//! SCEP (RFC 8894) as both sides receive it: GetCACaps bodies, GetCACert
//! bodies of both content types, pkiMessages (signature verified against the
//! message's own certificates, as the emulated NDES reads requests),
//! pkcsPKIEnvelopes (read, not decrypted) and CertPoll's IssuerAndSubject,
//! whose names build back to a message that reads the same.
#![no_main]

use autoenroll::scep::cacert::CaCerts;
use autoenroll::scep::caps::Caps;
use autoenroll::scep::{envelope, message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Caps::parse(data);
    let _ = CaCerts::parse("application/x-x509-ca-cert", data);
    let _ = CaCerts::parse("application/x-x509-ca-ra-cert", data);
    let _ = message::open(data, None);
    let _ = envelope::read(data);
    if let Ok((issuer, subject)) = message::read_issuer_and_subject(data) {
        let again = message::issuer_and_subject(&issuer, &subject).expect("names that read build");
        assert_eq!(
            message::read_issuer_and_subject(&again).ok(),
            Some((issuer, subject))
        );
    }
});
