//! GUIDs: 16 bytes in packet order (objectGUID, object ACEs) and the text
//! form (SDDL object ACEs). Both directions round-trip.
#![no_main]

use std::str::FromStr;

use autoenroll::model::Guid;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(guid) = Guid::from_bytes(data) {
        assert_eq!(guid.to_bytes(), data);
        assert_eq!(Guid::from_str(&guid.to_string()), Ok(guid));
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(guid) = Guid::from_str(text)
    {
        let printed = guid.to_string();
        assert_eq!(Guid::from_str(&printed), Ok(guid));
        assert_eq!(
            Guid::from_str(&format!("{{{}}}", printed.to_uppercase())),
            Ok(guid)
        );
        assert_eq!(Guid::from_bytes(&guid.to_bytes()), Ok(guid));
    }
});
