//! SIDs ([MS-DTYP] 2.4.2): the binary form (objectSid, ACE trustees, tokenGroups)
//! and the text form (SDDL, the policy file). Both directions round-trip.
#![no_main]

use std::str::FromStr;

use autoenroll::model::Sid;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((sid, used)) = Sid::read(data) {
        assert_eq!(sid.binary_len(), used);
        assert_eq!(sid.to_bytes(), data[..used]);
        assert_eq!(Sid::from_bytes(&data[..used]), Ok(sid.clone()));
        let _ = (sid.rid(), sid.domain());
        assert_eq!(Sid::from_str(&sid.to_string()), Ok(sid));
    }
    let _ = Sid::from_bytes(data);
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(sid) = Sid::from_str(text)
    {
        let printed = sid.to_string();
        let again = Sid::from_str(&printed).expect("a printed SID parses");
        assert_eq!(again, sid);
        assert_eq!(again.to_string(), printed);
        assert_eq!(Sid::from_bytes(&sid.to_bytes()), Ok(sid));
    }
});
