//! MS-RPCE: connection-oriented DCE/RPC over TCP (C706 chapter 12, [MS-RPCE]
//! 2.2.2), with NDR stubs, Kerberos at packet privacy, the endpoint mapper
//! and the ICertPassage messages ([MS-ICPR]), shared by the enrollment
//! client and the emulated CA.
//!
//! No maintained Rust crate speaks connection-oriented DCE/RPC with
//! Kerberos sealing: the PDUs (`pdu`), NDR (`ndr`) and the two interfaces'
//! messages (`epm`, `icpr`) are written here, sans I/O; `gss` seals and
//! unseals through MIT krb5's `gss_wrap_iov` (the `libgssapi` crate the
//! directory already uses), and `conn` moves PDUs over a socket.

pub mod conn;
pub mod epm;
pub mod gss;
pub mod icpr;
pub mod ndr;
pub mod pdu;
pub mod spnego;

use std::fmt;

/// A DCE UUID (C706 appendix A), held as its 16 bytes in string order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// Parses `91ae6020-9e3c-11cf-8d7c-00aa00c091be`.
    pub const fn parse(s: &str) -> Uuid {
        let b = s.as_bytes();
        let mut out = [0u8; 16];
        let mut i = 0;
        let mut n = 0;
        while i < b.len() {
            if b[i] == b'-' {
                i += 1;
                continue;
            }
            out[n] = (hex(b[i]) << 4) | hex(b[i + 1]);
            n += 1;
            i += 2;
        }
        assert!(n == 16, "a UUID has 16 bytes");
        Uuid(out)
    }

    /// NDR's encoding: time_low, time_mid, time_hi_and_version little-endian,
    /// the last 8 bytes as they are.
    pub fn to_le_bytes(&self) -> [u8; 16] {
        let s = self.0;
        let mut o = s;
        o[0..4].copy_from_slice(&[s[3], s[2], s[1], s[0]]);
        o[4..6].copy_from_slice(&[s[5], s[4]]);
        o[6..8].copy_from_slice(&[s[7], s[6]]);
        o
    }

    pub fn from_le_bytes(b: [u8; 16]) -> Uuid {
        let mut s = b;
        s[0..4].copy_from_slice(&[b[3], b[2], b[1], b[0]]);
        s[4..6].copy_from_slice(&[b[5], b[4]]);
        s[6..8].copy_from_slice(&[b[7], b[6]]);
        Uuid(s)
    }
}

const fn hex(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => panic!("not a hex digit"),
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        for (i, x) in b.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                write!(f, "-")?;
            }
            write!(f, "{x:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// An interface or transfer syntax with its version (`p_syntax_id_t`,
/// C706 12.6.3.1): major in the low 16 bits, minor in the high.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntaxId {
    pub uuid: Uuid,
    pub major: u16,
    pub minor: u16,
}

/// NDR 2.0, the transfer syntax of every call here (C706 14).
pub const NDR20: SyntaxId = SyntaxId {
    uuid: Uuid::parse("8a885d04-1ceb-11c9-9fe8-08002b104860"),
    major: 2,
    minor: 0,
};

/// `ICertPassage` v0.0 ([MS-ICPR] 1.9).
pub const ICERT_PASSAGE: SyntaxId = SyntaxId {
    uuid: Uuid::parse("91ae6020-9e3c-11cf-8d7c-00aa00c091be"),
    major: 0,
    minor: 0,
};

/// The endpoint mapper v3.0 (C706 appendix O, [MS-RPCE] 2.2.1.2.4).
pub const EPMAPPER: SyntaxId = SyntaxId {
    uuid: Uuid::parse("e1af8308-5d1f-11c9-91a4-08002b14a0fa"),
    major: 3,
    minor: 0,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_print_as_parsed_and_encode_little_endian() {
        let u = ICERT_PASSAGE.uuid;
        assert_eq!(u.to_string(), "91ae6020-9e3c-11cf-8d7c-00aa00c091be");
        let le = u.to_le_bytes();
        assert_eq!(&le[..8], &[0x20, 0x60, 0xae, 0x91, 0x3c, 0x9e, 0xcf, 0x11]);
        assert_eq!(&le[8..], &u.0[8..]);
        assert_eq!(Uuid::from_le_bytes(le), u);
    }
}
