//! NDR 2.0 transfer syntax (C706 chapter 14), little-endian, the subset the
//! endpoint mapper and ICertPassage need: aligned primitives, UUIDs,
//! unique/full pointers (referent IDs), conformant byte arrays and
//! conformant varying UTF-16 strings.
//!
//! Alignment is relative to the start of the stub data (C706 14.2.2: every
//! primitive is aligned to its size). Readers return an [`NdrError`] naming
//! the offset and what was expected; nothing here panics on outside data.

use super::Uuid;

/// A stub that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("NDR stub at byte {at}: {what}")]
pub struct NdrError {
    pub at: usize,
    pub what: String,
}

/// Encodes a stub.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
    next_referent: u32,
}

impl Writer {
    pub fn new() -> Writer {
        Writer {
            buf: Vec::new(),
            // Windows' own referent IDs start at 0x00020000 and grow by 4.
            next_referent: 0x0002_0000,
        }
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Pads with zeros to a multiple of `n` (C706 14.2.2).
    pub fn align(&mut self, n: usize) {
        while !self.buf.len().is_multiple_of(n) {
            self.buf.push(0);
        }
    }

    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub fn u16(&mut self, v: u16) {
        self.align(2);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn u32(&mut self, v: u32) {
        self.align(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Raw bytes, no alignment (the body of a byte array).
    pub fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// A UUID as NDR's structure of u32, u16, u16, 8 bytes (aligned to 4).
    pub fn uuid(&mut self, u: &Uuid) {
        self.align(4);
        self.buf.extend_from_slice(&u.to_le_bytes());
    }

    /// The representation of a non-null unique or full pointer: a fresh
    /// referent ID (C706 14.3.11.3).
    pub fn referent(&mut self) {
        let id = self.next_referent;
        self.next_referent += 4;
        self.u32(id);
    }

    /// A given referent ID (the endpoint mapper of old Windows insists on
    /// 1 and 2 for `ept_map`'s two pointers, as impacket notes).
    pub fn referent_id(&mut self, id: u32) {
        self.u32(id);
    }

    /// A null pointer.
    pub fn null(&mut self) {
        self.u32(0);
    }

    /// A conformant array of bytes: its maximum count, then the bytes
    /// (C706 14.3.3.2).
    pub fn conformant_bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.bytes(b);
    }

    /// A `[string] wchar_t*` referent: a conformant varying array of UTF-16
    /// units with its terminating NUL (C706 14.3.4, 14.3.3.4).
    pub fn wide_string(&mut self, s: &str) {
        let units: Vec<u16> = s.encode_utf16().chain(std::iter::once(0)).collect();
        self.u32(units.len() as u32);
        self.u32(0);
        self.u32(units.len() as u32);
        for u in units {
            self.buf.extend_from_slice(&u.to_le_bytes());
        }
    }
}

/// Decodes a stub.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, at: 0 }
    }

    pub fn position(&self) -> usize {
        self.at
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.at
    }

    pub fn error(&self, what: impl Into<String>) -> NdrError {
        NdrError {
            at: self.at,
            what: what.into(),
        }
    }

    pub fn align(&mut self, n: usize) -> Result<(), NdrError> {
        let pad = (n - self.at % n) % n;
        self.take(pad, "alignment padding").map(|_| ())
    }

    pub fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], NdrError> {
        if self.remaining() < n {
            return Err(self.error(format!(
                "{what}: {n} bytes needed, {} left",
                self.remaining()
            )));
        }
        let out = &self.buf[self.at..self.at + n];
        self.at += n;
        Ok(out)
    }

    pub fn u8(&mut self, what: &str) -> Result<u8, NdrError> {
        Ok(self.take(1, what)?[0])
    }

    pub fn u16(&mut self, what: &str) -> Result<u16, NdrError> {
        self.align(2)?;
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    pub fn u32(&mut self, what: &str) -> Result<u32, NdrError> {
        self.align(4)?;
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn uuid(&mut self, what: &str) -> Result<Uuid, NdrError> {
        self.align(4)?;
        let b = self.take(16, what)?;
        let mut a = [0u8; 16];
        a.copy_from_slice(b);
        Ok(Uuid::from_le_bytes(a))
    }

    /// A pointer's representation: `Some(referent id)` or `None` for null.
    pub fn pointer(&mut self, what: &str) -> Result<Option<u32>, NdrError> {
        let id = self.u32(what)?;
        Ok((id != 0).then_some(id))
    }

    /// A conformant byte array of at most `limit` bytes whose count must be
    /// `expected` when the structure states it (`size_is(cb)`).
    pub fn conformant_bytes(
        &mut self,
        expected: Option<u32>,
        limit: usize,
        what: &str,
    ) -> Result<&'a [u8], NdrError> {
        let count = self.u32(what)?;
        if let Some(e) = expected
            && e != count
        {
            return Err(self.error(format!(
                "{what}: the array holds {count} bytes, its size field says {e}"
            )));
        }
        if count as usize > limit {
            return Err(self.error(format!(
                "{what}: {count} bytes, more than the {limit} allowed"
            )));
        }
        self.take(count as usize, what)
    }

    /// The bytes of a conformant array whose maximum count `max` came
    /// earlier (a conformant structure's, hoisted to its start, C706
    /// 14.3.7.1), checked against the structure's own size field.
    pub fn conformant_bytes_counted(
        &mut self,
        max: u32,
        expected: Option<u32>,
        limit: usize,
        what: &str,
    ) -> Result<&'a [u8], NdrError> {
        if let Some(e) = expected
            && e != max
        {
            return Err(self.error(format!(
                "{what}: the array holds {max} bytes, its size field says {e}"
            )));
        }
        if max as usize > limit {
            return Err(self.error(format!(
                "{what}: {max} bytes, more than the {limit} allowed"
            )));
        }
        self.take(max as usize, what)
    }

    /// A `[string] wchar_t*` referent of at most `limit` units, without its
    /// terminating NUL.
    pub fn wide_string(&mut self, limit: usize, what: &str) -> Result<String, NdrError> {
        let max = self.u32(what)?;
        let offset = self.u32(what)?;
        let actual = self.u32(what)?;
        if offset != 0 || actual > max {
            return Err(self.error(format!(
                "{what}: a string of offset {offset}, {actual} units in an array of {max}"
            )));
        }
        if actual as usize > limit {
            return Err(self.error(format!(
                "{what}: {actual} characters, more than the {limit} allowed"
            )));
        }
        let raw = self.take(actual as usize * 2, what)?;
        let mut units: Vec<u16> = raw
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        if units.last() != Some(&0) {
            return Err(self.error(format!("{what}: the string has no terminating NUL")));
        }
        units.pop();
        String::from_utf16(&units).map_err(|_| self.error(format!("{what}: not UTF-16")))
    }
}

/// UTF-16LE with a terminating NUL: how ICertPassage carries texts inside
/// byte blobs (attributes, disposition messages).
pub fn utf16z(s: &str) -> Vec<u8> {
    s.encode_utf16()
        .chain(std::iter::once(0))
        .flat_map(|u| u.to_le_bytes())
        .collect()
}

/// The text of a UTF-16LE blob, up to its first NUL; an odd length or a
/// lone surrogate is an error.
pub fn from_utf16z(b: &[u8]) -> Result<String, String> {
    if !b.len().is_multiple_of(2) {
        return Err(format!("{} bytes: not UTF-16 (odd length)", b.len()));
    }
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    String::from_utf16(&units).map_err(|_| "not UTF-16 (a lone surrogate)".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitives_are_aligned_to_their_size() {
        let mut w = Writer::new();
        w.u8(1);
        w.u16(0x0203);
        w.u8(4);
        w.u32(0x05060708);
        assert_eq!(
            w.into_bytes(),
            [1, 0, 3, 2, 4, 0, 0, 0, 8, 7, 6, 5],
            "u16 at 2, u32 at 8"
        );
        let bytes = [1, 0, 3, 2, 4, 0, 0, 0, 8, 7, 6, 5];
        let mut r = Reader::new(&bytes);
        assert_eq!(r.u8("a").unwrap(), 1);
        assert_eq!(r.u16("b").unwrap(), 0x0203);
        assert_eq!(r.u8("c").unwrap(), 4);
        assert_eq!(r.u32("d").unwrap(), 0x05060708);
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn wide_strings_carry_max_offset_count_and_nul() {
        let mut w = Writer::new();
        w.wide_string("CA");
        let b = w.into_bytes();
        assert_eq!(
            b,
            [3, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, b'C', 0, b'A', 0, 0, 0]
        );
        assert_eq!(Reader::new(&b).wide_string(64, "s").unwrap(), "CA");
    }

    #[test]
    fn referents_count_up_from_windows_base() {
        let mut w = Writer::new();
        w.referent();
        w.referent();
        w.null();
        let b = w.into_bytes();
        let mut r = Reader::new(&b);
        assert_eq!(r.pointer("p").unwrap(), Some(0x20000));
        assert_eq!(r.pointer("p").unwrap(), Some(0x20004));
        assert_eq!(r.pointer("p").unwrap(), None);
    }

    #[test]
    fn bad_stubs_are_errors_naming_the_offset() {
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("truncated u32", vec![1, 2], "4 bytes needed"),
            (
                "string without NUL",
                vec![1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, b'A', 0],
                "no terminating NUL",
            ),
            (
                "string longer than its array",
                vec![1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, b'A', 0, 0, 0],
                "2 units in an array of 1",
            ),
            (
                "string with an offset",
                vec![2, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0],
                "offset 1",
            ),
            (
                "string count beyond the data",
                vec![9, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0],
                "18 bytes needed",
            ),
        ];
        for (what, bytes, expected) in cases {
            let err = Reader::new(&bytes).wide_string(64, "s").unwrap_err();
            assert!(err.to_string().contains(expected), "{what}: {err}");
        }
        let big = [0xff, 0xff, 0xff, 0x7f];
        let err = Reader::new(&big)
            .conformant_bytes(None, 1 << 20, "blob")
            .unwrap_err();
        assert!(err.to_string().contains("more than"), "{err}");
        let mismatch = [2, 0, 0, 0, 1, 2];
        let err = Reader::new(&mismatch)
            .conformant_bytes(Some(3), 16, "blob")
            .unwrap_err();
        assert!(err.to_string().contains("size field says 3"), "{err}");
    }

    #[test]
    fn utf16_blobs_round_trip() {
        let b = utf16z("CertificateTemplate:Machine");
        assert_eq!(b.len(), 28 * 2);
        assert_eq!(from_utf16z(&b).unwrap(), "CertificateTemplate:Machine");
        assert!(from_utf16z(&[0x41]).is_err());
        assert!(from_utf16z(&[0x00, 0xd8, 0x41, 0x00]).is_err());
    }
}
