//! GUIDs, [MS-DTYP] 2.3.4.
//!
//! Extended rights such as Enroll and AutoEnroll are named by GUIDs, and object ACEs
//! carry them in binary. The binary ("packet") form of [MS-DTYP] 2.3.4.2 stores the
//! first three fields (`Data1` u32, `Data2` u16, `Data3` u16) little-endian and the
//! last eight bytes as they are, so the text `0e10c968-78fb-11d2-...` is stored
//! `68 c9 10 0e fb 78 d2 11 ...`. Getting this wrong silently makes every ACE miss,
//! so the byte order lives here and nowhere else.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A GUID, kept in its binary (packet) byte order ([MS-DTYP] 2.3.4.2).
///
/// Ordering compares those bytes; it is only meant for sorted containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Guid([u8; 16]);

/// Why bytes or text are not a GUID.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum GuidError {
    #[error("GUID is {len} bytes, expected 16")]
    BadLength { len: usize },
    #[error(
        "bad GUID text {text:?}: expected 8-4-4-4-12 hexadecimal digits such as 0e10c968-78fb-11d2-90d4-00c04f79dc55, braces optional"
    )]
    BadText { text: String },
}

impl Guid {
    /// The Enroll extended right, `0e10c968-78fb-11d2-90d4-00c04f79dc55`.
    pub const ENROLL: Guid = Guid::from_fields(
        0x0e10_c968,
        0x78fb,
        0x11d2,
        [0x90, 0xd4, 0x00, 0xc0, 0x4f, 0x79, 0xdc, 0x55],
    );

    /// The AutoEnroll extended right, `a05b8cc2-17bc-4802-a710-e7c15ab866a2`.
    pub const AUTOENROLL: Guid = Guid::from_fields(
        0xa05b_8cc2,
        0x17bc,
        0x4802,
        [0xa7, 0x10, 0xe7, 0xc1, 0x5a, 0xb8, 0x66, 0xa2],
    );

    /// A GUID from its four fields as written in text (`data1-data2-data3-data4`).
    pub const fn from_fields(data1: u32, data2: u16, data3: u16, data4: [u8; 8]) -> Guid {
        let a = data1.to_le_bytes();
        let b = data2.to_le_bytes();
        let c = data3.to_le_bytes();
        Guid([
            a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], data4[0], data4[1], data4[2], data4[3],
            data4[4], data4[5], data4[6], data4[7],
        ])
    }

    /// Decodes exactly 16 bytes in binary (packet) order.
    pub fn from_bytes(b: &[u8]) -> Result<Guid, GuidError> {
        <[u8; 16]>::try_from(b)
            .map(Guid)
            .map_err(|_| GuidError::BadLength { len: b.len() })
    }

    /// The 16 bytes in binary (packet) order, as they appear in an object ACE.
    pub fn to_bytes(&self) -> [u8; 16] {
        self.0
    }
}

impl fmt::Display for Guid {
    /// Lower case, no braces: `0e10c968-78fb-11d2-90d4-00c04f79dc55`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        let data1 = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let data2 = u16::from_le_bytes([b[4], b[5]]);
        let data3 = u16::from_le_bytes([b[6], b[7]]);
        write!(f, "{data1:08x}-{data2:04x}-{data3:04x}-")?;
        for byte in &b[8..10] {
            write!(f, "{byte:02x}")?;
        }
        f.write_str("-")?;
        for byte in &b[10..16] {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl FromStr for Guid {
    type Err = GuidError;

    /// Parses `0e10c968-78fb-11d2-90d4-00c04f79dc55`, in any case, with or
    /// without surrounding braces.
    fn from_str(text: &str) -> Result<Guid, GuidError> {
        let bad = || GuidError::BadText {
            text: text.to_string(),
        };
        let inner = match text.strip_prefix('{') {
            Some(rest) => rest.strip_suffix('}').ok_or_else(bad)?,
            None => text,
        };
        let groups: Vec<&str> = inner.split('-').collect();
        let lengths = [8, 4, 4, 4, 12];
        if groups.len() != lengths.len()
            || groups
                .iter()
                .zip(lengths)
                .any(|(g, n)| g.len() != n || !g.bytes().all(|c| c.is_ascii_hexdigit()))
        {
            return Err(bad());
        }
        // All digits are ASCII hex now, so the numeric conversions cannot fail.
        let data1 = u32::from_str_radix(groups[0], 16).map_err(|_| bad())?;
        let data2 = u16::from_str_radix(groups[1], 16).map_err(|_| bad())?;
        let data3 = u16::from_str_radix(groups[2], 16).map_err(|_| bad())?;
        let tail = format!("{}{}", groups[3], groups[4]);
        let mut data4 = [0u8; 8];
        for (i, byte) in data4.iter_mut().enumerate() {
            let pair = tail.get(2 * i..2 * i + 2).ok_or_else(bad)?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
        }
        Ok(Guid::from_fields(data1, data2, data3, data4))
    }
}

impl Serialize for Guid {
    /// As its text form.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Guid {
    /// From its text form.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Guid, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn enroll_packet_order() {
        let stored = [
            0x68, 0xc9, 0x10, 0x0e, 0xfb, 0x78, 0xd2, 0x11, 0x90, 0xd4, 0x00, 0xc0, 0x4f, 0x79,
            0xdc, 0x55,
        ];
        assert_eq!(Guid::ENROLL.to_bytes(), stored);
        assert_eq!(Guid::from_bytes(&stored), Ok(Guid::ENROLL));
        assert_eq!(
            Guid::ENROLL.to_string(),
            "0e10c968-78fb-11d2-90d4-00c04f79dc55"
        );
    }

    #[test]
    fn autoenroll() {
        let stored = [
            0xc2, 0x8c, 0x5b, 0xa0, 0xbc, 0x17, 0x02, 0x48, 0xa7, 0x10, 0xe7, 0xc1, 0x5a, 0xb8,
            0x66, 0xa2,
        ];
        assert_eq!(Guid::AUTOENROLL.to_bytes(), stored);
        assert_eq!(
            Guid::AUTOENROLL.to_string(),
            "a05b8cc2-17bc-4802-a710-e7c15ab866a2"
        );
        assert_eq!(
            "a05b8cc2-17bc-4802-a710-e7c15ab866a2".parse(),
            Ok(Guid::AUTOENROLL)
        );
    }

    #[test]
    fn text_forms() {
        for text in [
            "0e10c968-78fb-11d2-90d4-00c04f79dc55",
            "0E10C968-78FB-11D2-90D4-00C04F79DC55",
            "{0e10c968-78fb-11d2-90d4-00c04f79dc55}",
            "{0E10c968-78fb-11d2-90d4-00c04f79DC55}",
        ] {
            assert_eq!(text.parse(), Ok(Guid::ENROLL), "{text}");
        }
    }

    #[test]
    fn errors() {
        assert_eq!(
            Guid::from_bytes(&[0; 15]),
            Err(GuidError::BadLength { len: 15 })
        );
        assert_eq!(
            Guid::from_bytes(&[0; 17]),
            Err(GuidError::BadLength { len: 17 })
        );
        assert_eq!(
            Guid::from_bytes(&[]).unwrap_err().to_string(),
            "GUID is 0 bytes, expected 16"
        );
        for bad in [
            "",
            "{}",
            "0e10c968-78fb-11d2-90d4-00c04f79dc5",
            "0e10c968-78fb-11d2-90d4-00c04f79dc555",
            "0e10c968-78fb-11d2-90d400c04f79dc55",
            "0e10c968-78fb-11d2-90d4-00c04f79dc5g",
            "{0e10c968-78fb-11d2-90d4-00c04f79dc55",
            "0e10c968-78fb-11d2-90d4-00c04f79dc55}",
            "+e10c968-78fb-11d2-90d4-00c04f79dc55",
            "0e10c968-78fb-11d2-90d4-00c04f79dcé",
            "0e10c96878fb11d290d400c04f79dc55",
        ] {
            assert!(bad.parse::<Guid>().is_err(), "{bad:?} parsed");
        }
        let err = "nope".parse::<Guid>().unwrap_err().to_string();
        assert!(
            err.starts_with("bad GUID text \"nope\": expected 8-4-4-4-12"),
            "{err}"
        );
    }

    #[test]
    fn serde_is_text() {
        let json = serde_json::to_string(&Guid::ENROLL).unwrap();
        assert_eq!(json, "\"0e10c968-78fb-11d2-90d4-00c04f79dc55\"");
        assert_eq!(serde_json::from_str::<Guid>(&json).unwrap(), Guid::ENROLL);
    }

    proptest! {
        #[test]
        fn round_trips(bytes in any::<[u8; 16]>()) {
            let guid = Guid::from_bytes(&bytes).unwrap();
            prop_assert_eq!(guid.to_bytes(), bytes);
            prop_assert_eq!(guid.to_string().parse::<Guid>(), Ok(guid));
            prop_assert_eq!(guid.to_string().to_uppercase().parse::<Guid>(), Ok(guid));
        }

        #[test]
        fn random_text_never_panics(text in "\\PC{0,40}") {
            let _ = text.parse::<Guid>();
        }
    }
}
