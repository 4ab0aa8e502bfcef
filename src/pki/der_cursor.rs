//! A cursor over the DER elements of the structures this crate reads by hand
//! (PKCS#8 headers, PKCS#10 attributes, CMS SignedData).
//!
//! Each element keeps its exact bytes as received: signatures are checked over
//! those bytes, and embedded certificates are handed on unchanged, never
//! re-encoded. Errors are plain text naming the structure, the element and what
//! was expected; callers wrap them in their own error variant.

use x509_parser::asn1_rs::{Any, Class, FromDer, Oid, Tag};

/// One DER element: its parsed header and content, and its full encoding.
#[derive(Debug, Clone)]
pub(crate) struct Element<'a> {
    pub any: Any<'a>,
    /// Tag, length and content, as received.
    pub raw: &'a [u8],
}

impl<'a> Element<'a> {
    /// The content octets.
    pub fn content(&self) -> &'a [u8] {
        self.any.data
    }

    /// Whether this is the universal type `tag`.
    pub fn is_universal(&self, tag: Tag) -> bool {
        self.any.class() == Class::Universal && self.any.tag() == tag
    }

    /// Whether this is the context-specific tag `[n]`.
    pub fn is_context(&self, n: u32) -> bool {
        self.any.class() == Class::ContextSpecific && self.any.tag().0 == n
    }

    /// A short description of the tag for error messages, e.g. `[0]` or `tag 16`.
    pub fn describe_tag(&self) -> String {
        match self.any.class() {
            Class::ContextSpecific => format!("[{}]", self.any.tag().0),
            Class::Universal => format!("universal tag {}", self.any.tag().0),
            c => format!("{c:?} tag {}", self.any.tag().0),
        }
    }

    /// A cursor over the content of this (constructed) element.
    pub fn children(&self, within: &str) -> Result<Cursor<'a>, String> {
        if !self.any.header.is_constructed() {
            return Err(format!("{within}: expected a constructed element"));
        }
        Ok(Cursor::new(self.any.data, within))
    }

    /// The dotted form of an OBJECT IDENTIFIER element.
    pub fn oid(&self, what: &str) -> Result<String, String> {
        if !self.is_universal(Tag::Oid) {
            return Err(format!(
                "{what}: expected an OBJECT IDENTIFIER, found {}",
                self.describe_tag()
            ));
        }
        let (_, oid) = Oid::from_der(self.raw).map_err(|e| format!("{what}: {e}"))?;
        Ok(oid.to_id_string())
    }
}

/// Reads consecutive elements from a byte string.
#[derive(Debug, Clone)]
pub(crate) struct Cursor<'a> {
    rest: &'a [u8],
    within: String,
}

impl<'a> Cursor<'a> {
    /// `within` names the enclosing structure in error messages.
    pub fn new(input: &'a [u8], within: &str) -> Self {
        Cursor {
            rest: input,
            within: within.to_string(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next element, whatever its tag.
    pub fn next(&mut self, what: &str) -> Result<Element<'a>, String> {
        if self.rest.is_empty() {
            return Err(format!("{}: {what} is missing", self.within));
        }
        let (rest, any) = Any::from_der(self.rest)
            .map_err(|e| format!("{}: {what}: malformed or truncated DER: {e}", self.within))?;
        let raw = &self.rest[..self.rest.len() - rest.len()];
        self.rest = rest;
        Ok(Element { any, raw })
    }

    /// The next element, which must be the universal type `tag`.
    pub fn expect(&mut self, tag: Tag, what: &str) -> Result<Element<'a>, String> {
        let e = self.next(what)?;
        if !e.is_universal(tag) {
            return Err(format!(
                "{}: {what}: expected universal tag {}, found {}",
                self.within,
                tag.0,
                e.describe_tag()
            ));
        }
        Ok(e)
    }

    /// The next element if it carries the context-specific tag `[n]`.
    pub fn optional_context(&mut self, n: u32, what: &str) -> Result<Option<Element<'a>>, String> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let mut probe = self.clone();
        let e = probe.next(what)?;
        if e.is_context(n) {
            *self = probe;
            Ok(Some(e))
        } else {
            Ok(None)
        }
    }

    /// Errors when bytes remain after the last expected element.
    pub fn finish(&self, after: &str) -> Result<(), String> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{}: {} unexpected bytes after {after}",
                self.within,
                self.rest.len()
            ))
        }
    }
}

/// The whole input as exactly one element of universal type `tag`.
pub(crate) fn single<'a>(input: &'a [u8], tag: Tag, what: &str) -> Result<Element<'a>, String> {
    let mut c = Cursor::new(input, what);
    let e = c.expect(tag, "the outer element")?;
    c.finish("the outer element")?;
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_elements_and_keeps_raw_bytes() {
        // SEQUENCE { OID 1.2.3, [0] { INTEGER 5 } }
        let der = [
            0x30, 0x09, 0x06, 0x02, 0x2a, 0x03, 0xa0, 0x03, 0x02, 0x01, 0x05,
        ];
        let seq = single(&der, Tag::Sequence, "test").unwrap();
        assert_eq!(seq.raw, &der[..]);
        let mut c = seq.children("test").unwrap();
        assert_eq!(c.next("oid").unwrap().oid("oid").unwrap(), "1.2.3");
        assert!(c.optional_context(1, "x").unwrap().is_none());
        let tagged = c.optional_context(0, "x").unwrap().unwrap();
        assert_eq!(tagged.raw, &der[6..]);
        c.finish("all").unwrap();
    }

    #[test]
    fn errors_name_the_place() {
        let err = single(&[0x30, 0x05, 0x06], Tag::Sequence, "thing").unwrap_err();
        assert!(err.contains("thing"), "{err}");
        let err = single(&[0x02, 0x01, 0x00], Tag::Sequence, "thing").unwrap_err();
        assert!(err.contains("expected universal tag 16"), "{err}");
        let err = single(&[0x05, 0x00, 0x05, 0x00], Tag::Null, "thing").unwrap_err();
        assert!(err.contains("2 unexpected bytes"), "{err}");
        let mut c = Cursor::new(&[], "empty");
        assert!(c.next("x").unwrap_err().contains("missing"));
    }
}
