//! Template periods (pKIExpirationPeriod, pKIOverlapPeriod; [MS-CRTD] 2.18,
//! 2.20): a decoded period encodes to bytes that decode to it again, and its
//! duration and text never panic.
#![no_main]

use autoenroll::model::Period;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(period) = Period::from_bytes(data) {
        assert_eq!(Period::from_bytes(&period.to_bytes()), Ok(period));
        assert!(period.duration().whole_seconds() >= 0);
        let _ = period.to_string();
    }
});
