//! Security identifiers (SIDs), [MS-DTYP] 2.4.2.
//!
//! A SID names a security principal: an account, a group, or a well-known identity
//! such as Everyone. The directory hands them out in binary (`objectSid`,
//! `tokenGroups`, the trustees inside `nTSecurityDescriptor`), people and SDDL write
//! them as text (`S-1-5-21-1000-2000-3000-515`), and the access check compares them.
//! This module is the one place that knows both encodings.
//!
//! Binary layout ([MS-DTYP] 2.4.2.2): `Revision` (1 byte, always 1),
//! `SubAuthorityCount` (1 byte, at most 15), `IdentifierAuthority` (6 bytes,
//! big-endian), then `SubAuthorityCount` sub-authorities (u32, little-endian).
//!
//! Text form ([MS-DTYP] 2.4.2.1): `S-1-<authority>-<sub>-<sub>...`; the authority is
//! decimal below 2^32 and `0x` followed by 12 hexadecimal digits from there on.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The only SID revision defined ([MS-DTYP] 2.4.2.2 `SID_REVISION`).
const SID_REVISION: u8 = 1;
/// At most this many sub-authorities ([MS-DTYP] 2.4.2.2 `SID_MAX_SUB_AUTHORITIES`).
pub const MAX_SUB_AUTHORITIES: usize = 15;
/// The identifier authority is a 48-bit number.
const MAX_AUTHORITY: u64 = (1 << 48) - 1;
/// Revision, count and authority come before the sub-authorities.
const HEADER_LEN: usize = 8;

/// A security identifier ([MS-DTYP] 2.4.2).
///
/// Always well formed: revision 1, an authority below 2^48 and at most 15
/// sub-authorities, so every value can be written in binary and as text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sid {
    revision: u8,
    authority: u64,
    sub_authorities: Vec<u32>,
}

/// Why bytes or text are not a SID.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SidError {
    #[error("SID is {len} bytes, needs at least 8")]
    TooShort { len: usize },
    #[error("SID revision is {revision}, expected 1")]
    BadRevision { revision: u8 },
    #[error("SID has {count} sub-authorities, at most 15 are allowed")]
    TooManySubAuthorities { count: usize },
    #[error("SID announces {count} sub-authorities and needs {needed} bytes, only {len} present")]
    Truncated {
        count: usize,
        needed: usize,
        len: usize,
    },
    #[error("SID takes {used} bytes but the value is {len} bytes long")]
    TrailingBytes { used: usize, len: usize },
    #[error("bad SID text {text:?}: {reason}")]
    BadText { text: String, reason: &'static str },
}

impl Sid {
    /// A revision-1 SID from its identifier authority and sub-authorities.
    ///
    /// # Panics
    /// If `authority` does not fit in 48 bits or there are more than 15
    /// sub-authorities: such a SID cannot exist, so this is a programming error.
    /// Values from outside go through [`Sid::from_bytes`] or [`str::parse`].
    pub fn new(authority: u64, sub_authorities: &[u32]) -> Sid {
        assert!(
            authority <= MAX_AUTHORITY,
            "SID identifier authority {authority:#x} does not fit in 48 bits"
        );
        assert!(
            sub_authorities.len() <= MAX_SUB_AUTHORITIES,
            "a SID has at most 15 sub-authorities, not {}",
            sub_authorities.len()
        );
        Sid {
            revision: SID_REVISION,
            authority,
            sub_authorities: sub_authorities.to_vec(),
        }
    }

    /// Decodes a value that must be exactly one binary SID (e.g. `objectSid`).
    pub fn from_bytes(b: &[u8]) -> Result<Sid, SidError> {
        let (sid, used) = Sid::read(b)?;
        if used != b.len() {
            return Err(SidError::TrailingBytes { used, len: b.len() });
        }
        Ok(sid)
    }

    /// Decodes the binary SID at the start of `b` (inside an ACE or a security
    /// descriptor) and returns it with the number of bytes it took.
    pub fn read(b: &[u8]) -> Result<(Sid, usize), SidError> {
        if b.len() < HEADER_LEN {
            return Err(SidError::TooShort { len: b.len() });
        }
        let revision = b[0];
        if revision != SID_REVISION {
            return Err(SidError::BadRevision { revision });
        }
        let count = usize::from(b[1]);
        if count > MAX_SUB_AUTHORITIES {
            return Err(SidError::TooManySubAuthorities { count });
        }
        let needed = HEADER_LEN + 4 * count;
        if b.len() < needed {
            return Err(SidError::Truncated {
                count,
                needed,
                len: b.len(),
            });
        }
        let authority = b[2..8]
            .iter()
            .fold(0u64, |acc, &byte| (acc << 8) | u64::from(byte));
        let sub_authorities = b[HEADER_LEN..needed]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok((
            Sid {
                revision,
                authority,
                sub_authorities,
            },
            needed,
        ))
    }

    /// The binary form ([MS-DTYP] 2.4.2.2).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.binary_len());
        out.push(self.revision);
        // Cannot truncate: the constructors keep the count at 15 or below.
        out.push(self.sub_authorities.len() as u8);
        out.extend_from_slice(&self.authority.to_be_bytes()[2..8]);
        for sub in &self.sub_authorities {
            out.extend_from_slice(&sub.to_le_bytes());
        }
        out
    }

    /// Length of the binary form: 8 + 4 per sub-authority.
    pub fn binary_len(&self) -> usize {
        HEADER_LEN + 4 * self.sub_authorities.len()
    }

    /// The 48-bit identifier authority (5 for NT AUTHORITY).
    pub fn authority(&self) -> u64 {
        self.authority
    }

    /// The sub-authorities, the last of which is the RID of an account SID.
    pub fn sub_authorities(&self) -> &[u32] {
        &self.sub_authorities
    }

    /// The relative identifier: the last sub-authority, if there is one.
    pub fn rid(&self) -> Option<u32> {
        self.sub_authorities.last().copied()
    }

    /// This SID with one more sub-authority: `domain.with_rid(515)` is Domain Computers.
    ///
    /// # Panics
    /// If this SID already has 15 sub-authorities (domain SIDs have 4).
    pub fn with_rid(&self, rid: u32) -> Sid {
        let mut subs = self.sub_authorities.clone();
        subs.push(rid);
        Sid::new(self.authority, &subs)
    }

    /// The domain of an account or group SID: for `S-1-5-21-a-b-c-RID` it is
    /// `S-1-5-21-a-b-c`; any other shape has no domain.
    pub fn domain(&self) -> Option<Sid> {
        match self.sub_authorities.as_slice() {
            [21, a, b, c, _rid] if self.authority == 5 => Some(Sid::new(5, &[21, *a, *b, *c])),
            _ => None,
        }
    }

    /// Everyone, `S-1-1-0` (alias `WD`).
    pub fn everyone() -> Sid {
        Sid::new(1, &[0])
    }

    /// Authenticated Users, `S-1-5-11` (alias `AU`).
    pub fn authenticated_users() -> Sid {
        Sid::new(5, &[11])
    }

    /// Local System, `S-1-5-18` (alias `SY`).
    pub fn local_system() -> Sid {
        Sid::new(5, &[18])
    }
}

impl fmt::Display for Sid {
    /// `S-1-<authority>-<sub>...`, authority in hex (`0x` + 12 digits) from 2^32 on,
    /// as [MS-DTYP] 2.4.2.1 prescribes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "S-{}-", self.revision)?;
        if self.authority < (1 << 32) {
            write!(f, "{}", self.authority)?;
        } else {
            write!(f, "0x{:012X}", self.authority)?;
        }
        for sub in &self.sub_authorities {
            write!(f, "-{sub}")?;
        }
        Ok(())
    }
}

impl FromStr for Sid {
    type Err = SidError;

    /// Parses `S-1-5-21-1000-2000-3000-515`; the authority may also be hexadecimal
    /// (`S-1-0x0000FFFFFFFF-...`). The leading `S` may be lower case.
    fn from_str(text: &str) -> Result<Sid, SidError> {
        let bad = |reason| SidError::BadText {
            text: text.to_string(),
            reason,
        };
        let rest = text
            .strip_prefix("S-")
            .or_else(|| text.strip_prefix("s-"))
            .ok_or_else(|| bad("expected it to start with \"S-\""))?;
        let mut parts = rest.split('-');
        match parts.next() {
            Some("1") => {}
            Some(p) if is_decimal(p) => return Err(bad("revision must be 1")),
            _ => return Err(bad("expected revision 1 after \"S-\"")),
        }
        let authority = match parts.next() {
            Some(p) => parse_authority(p).ok_or_else(|| {
                bad("identifier authority must be a decimal number below 2^48 or 0x and up to 12 hex digits")
            })?,
            None => return Err(bad("expected an identifier authority after \"S-1-\"")),
        };
        let mut subs = Vec::new();
        for p in parts {
            if !is_decimal(p) {
                return Err(bad("sub-authorities must be decimal numbers"));
            }
            let sub = p
                .parse::<u32>()
                .map_err(|_| bad("a sub-authority does not fit in 32 bits"))?;
            subs.push(sub);
        }
        if subs.len() > MAX_SUB_AUTHORITIES {
            return Err(SidError::TooManySubAuthorities { count: subs.len() });
        }
        Ok(Sid::new(authority, &subs))
    }
}

fn is_decimal(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn parse_authority(p: &str) -> Option<u64> {
    let value = if let Some(hex) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
        if hex.is_empty() || hex.len() > 12 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u64::from_str_radix(hex, 16).ok()?
    } else {
        if !is_decimal(p) || p.len() > 15 {
            return None;
        }
        p.parse::<u64>().ok()?
    };
    (value <= MAX_AUTHORITY).then_some(value)
}

impl Serialize for Sid {
    /// As its text form.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Sid {
    /// From its text form.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Sid, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dc() -> Sid {
        Sid::new(5, &[21, 1000, 2000, 3000, 515])
    }

    #[test]
    fn domain_computers_binary_and_text() {
        let bytes = [
            0x01, 0x05, 0, 0, 0, 0, 0, 0x05, // revision 1, 5 subs, authority 5
            0x15, 0, 0, 0, // 21
            0xe8, 0x03, 0, 0, // 1000
            0xd0, 0x07, 0, 0, // 2000
            0xb8, 0x0b, 0, 0, // 3000
            0x03, 0x02, 0, 0, // 515
        ];
        assert_eq!(Sid::from_bytes(&bytes), Ok(dc()));
        assert_eq!(dc().to_bytes(), bytes);
        assert_eq!(dc().to_string(), "S-1-5-21-1000-2000-3000-515");
        assert_eq!("S-1-5-21-1000-2000-3000-515".parse(), Ok(dc()));
    }

    #[test]
    fn well_known_binary_and_text() {
        let cases: [(Sid, &str, &[u8]); 3] = [
            (
                Sid::everyone(),
                "S-1-1-0",
                &[1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0],
            ),
            (
                Sid::authenticated_users(),
                "S-1-5-11",
                &[1, 1, 0, 0, 0, 0, 0, 5, 0x0b, 0, 0, 0],
            ),
            (
                Sid::local_system(),
                "S-1-5-18",
                &[
                    0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x12, 0x00, 0x00, 0x00,
                ],
            ),
        ];
        for (sid, text, bytes) in cases {
            assert_eq!(sid.to_string(), text);
            assert_eq!(sid.to_bytes(), bytes, "{text}");
            assert_eq!(Sid::from_bytes(bytes).as_ref(), Ok(&sid));
            assert_eq!(text.parse::<Sid>().as_ref(), Ok(&sid));
        }
    }

    #[test]
    fn read_reports_length_and_leaves_the_rest() {
        let mut bytes = Sid::everyone().to_bytes();
        bytes.extend_from_slice(&[0xaa, 0xbb]);
        assert_eq!(Sid::read(&bytes), Ok((Sid::everyone(), 12)));
        assert_eq!(
            Sid::from_bytes(&bytes),
            Err(SidError::TrailingBytes { used: 12, len: 14 })
        );
    }

    #[test]
    fn binary_errors() {
        assert_eq!(
            Sid::from_bytes(&[1, 1, 0, 0, 0, 0, 0]),
            Err(SidError::TooShort { len: 7 })
        );
        assert_eq!(
            Sid::from_bytes(&[1, 1, 0, 0, 0, 0, 0])
                .unwrap_err()
                .to_string(),
            "SID is 7 bytes, needs at least 8"
        );
        assert_eq!(Sid::from_bytes(&[]), Err(SidError::TooShort { len: 0 }));
        let mut many = vec![1, 16, 0, 0, 0, 0, 0, 5];
        many.extend(std::iter::repeat_n(0, 64));
        assert_eq!(
            Sid::from_bytes(&many),
            Err(SidError::TooManySubAuthorities { count: 16 })
        );
        // Announces two sub-authorities, carries one.
        assert_eq!(
            Sid::from_bytes(&[1, 2, 0, 0, 0, 0, 0, 5, 11, 0, 0, 0]),
            Err(SidError::Truncated {
                count: 2,
                needed: 16,
                len: 12
            })
        );
        assert_eq!(
            Sid::from_bytes(&[2, 1, 0, 0, 0, 0, 0, 5, 11, 0, 0, 0]),
            Err(SidError::BadRevision { revision: 2 })
        );
        let mut trailing = Sid::local_system().to_bytes();
        trailing.push(0);
        assert_eq!(
            Sid::from_bytes(&trailing),
            Err(SidError::TrailingBytes { used: 12, len: 13 })
        );
    }

    #[test]
    fn text_errors() {
        for bad in [
            "",
            "S",
            "S-",
            "S-1",
            "X-1-5-11",
            "S-2-5-11",
            "S-1--11",
            "S-1-5-",
            "S-1-5-11-",
            "S-1-5-+11",
            "S-1-5- 11",
            "S-1-5-4294967296",
            "S-1-281474976710656",
            "S-1-0x1000000000000",
            "S-1-0x",
            "S-1-0xG",
            "S-1-5-1-2-3-4-5-6-7-8-9-10-11-12-13-14-15-16",
        ] {
            assert!(bad.parse::<Sid>().is_err(), "{bad:?} parsed");
        }
        let err = "S-1-5-x".parse::<Sid>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "bad SID text \"S-1-5-x\": sub-authorities must be decimal numbers"
        );
    }

    #[test]
    fn large_authority_is_hex() {
        let sid = Sid::new(0x0000_1234_5678_9abc, &[7]);
        assert_eq!(sid.to_string(), "S-1-0x123456789ABC-7");
        assert_eq!("S-1-0x123456789abc-7".parse(), Ok(sid.clone()));
        assert_eq!(
            sid.to_bytes(),
            [1, 1, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 7, 0, 0, 0]
        );
        // Small authorities are decimal even when written in hex.
        assert_eq!(
            "S-1-0x000000000005-11".parse(),
            Ok(Sid::authenticated_users())
        );
        assert_eq!("s-1-5-11".parse(), Ok(Sid::authenticated_users()));
        // No sub-authorities at all is a valid SID (NT AUTHORITY itself).
        assert_eq!("S-1-5".parse(), Ok(Sid::new(5, &[])));
    }

    #[test]
    fn rid_domain_and_with_rid() {
        let domain = Sid::new(5, &[21, 1000, 2000, 3000]);
        assert_eq!(dc().rid(), Some(515));
        assert_eq!(dc().domain(), Some(domain.clone()));
        assert_eq!(domain.with_rid(515), dc());
        assert_eq!(domain.domain(), None);
        assert_eq!(Sid::everyone().domain(), None);
        assert_eq!(Sid::new(5, &[32, 544]).domain(), None);
        assert_eq!(Sid::new(5, &[]).rid(), None);
        assert_eq!(Sid::local_system().rid(), Some(18));
    }

    #[test]
    fn serde_is_text() {
        let json = serde_json::to_string(&dc()).unwrap();
        assert_eq!(json, "\"S-1-5-21-1000-2000-3000-515\"");
        assert_eq!(serde_json::from_str::<Sid>(&json).unwrap(), dc());
        assert!(serde_json::from_str::<Sid>("\"S-1-x\"").is_err());
    }

    fn any_sid() -> impl Strategy<Value = Sid> {
        (
            0..=MAX_AUTHORITY,
            proptest::collection::vec(any::<u32>(), 0..=MAX_SUB_AUTHORITIES),
        )
            .prop_map(|(a, subs)| Sid::new(a, &subs))
    }

    proptest! {
        #[test]
        fn binary_round_trip(sid in any_sid()) {
            let bytes = sid.to_bytes();
            prop_assert_eq!(bytes.len(), sid.binary_len());
            prop_assert_eq!(Sid::from_bytes(&bytes), Ok(sid));
        }

        #[test]
        fn text_round_trip(sid in any_sid()) {
            prop_assert_eq!(sid.to_string().parse::<Sid>(), Ok(sid));
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok((sid, used)) = Sid::read(&bytes) {
                prop_assert_eq!(&sid.to_bytes()[..], &bytes[..used]);
            }
        }

        #[test]
        fn random_text_never_panics(text in "[Ss0-9xXa-fA-F-]{0,40}") {
            let _ = text.parse::<Sid>();
        }
    }
}
