//! One directory entry as plain bytes, and typed readers for the value shapes
//! AD uses (signed 32-bit integers, periods, SIDs). Every reader returns an
//! [`AttrError`] naming the attribute and what was expected; none panics.

use std::collections::BTreeMap;

use ldap3::ResultEntry;

use crate::model::{Period, Sid};

/// An attribute value that is not what the schema promises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrError {
    pub attribute: String,
    pub expected: String,
}

impl std::fmt::Display for AttrError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.attribute, self.expected)
    }
}

impl std::error::Error for AttrError {}

/// A search result entry: attribute names lowercased, `;binary` dropped, every
/// value kept as bytes (a binary SID may well be valid UTF-8).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    pub dn: String,
    /// Lowercased names in order: a template has some thirty attributes,
    /// where ordered string comparison costs less than hashing each name,
    /// and the saved snapshot walks them sorted.
    attrs: BTreeMap<String, Vec<Vec<u8>>>,
}

impl Entry {
    pub fn new(dn: impl Into<String>) -> Self {
        Entry {
            dn: dn.into(),
            attrs: BTreeMap::new(),
        }
    }

    /// Adds values (used by tests and by the parser).
    pub fn with(mut self, name: &str, values: impl IntoIterator<Item = Vec<u8>>) -> Self {
        self.attrs
            .entry(normalize(name))
            .or_default()
            .extend(values);
        self
    }

    /// Decodes an LDAP SearchResultEntry ([RFC 4511] 4.5.2) without trusting its
    /// shape: a malformed one is an error, not a panic.
    pub fn from_result(re: ResultEntry) -> Result<Entry, String> {
        let parts =
            re.0.match_id(4)
                .and_then(|t| t.expect_constructed())
                .ok_or("search result entry is not a constructed [APPLICATION 4]")?;
        let mut parts = parts.into_iter();
        let dn = parts
            .next()
            .and_then(|t| t.expect_primitive())
            .ok_or("search result entry has no DN")?;
        let dn = String::from_utf8(dn).map_err(|_| "entry DN is not UTF-8")?;
        let mut entry = Entry::new(dn);
        let attrs = parts
            .next()
            .and_then(|t| t.expect_constructed())
            .ok_or_else(|| format!("{}: entry has no attribute list", entry.dn))?;
        for attr in attrs {
            let mut attr = attr
                .expect_constructed()
                .ok_or_else(|| format!("{}: malformed attribute", entry.dn))?
                .into_iter();
            let name = attr
                .next()
                .and_then(|t| t.expect_primitive())
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| format!("{}: malformed attribute name", entry.dn))?;
            let values = attr
                .next()
                .and_then(|t| t.expect_constructed())
                .ok_or_else(|| format!("{}: {name}: malformed value set", entry.dn))?;
            let values: Option<Vec<Vec<u8>>> =
                values.into_iter().map(|v| v.expect_primitive()).collect();
            let values = values.ok_or_else(|| format!("{}: {name}: malformed value", entry.dn))?;
            entry = entry.with(&name, values);
        }
        Ok(entry)
    }

    /// Every attribute (lowercased name) with its values, sorted by name:
    /// what [`crate::directory::saved`] keeps.
    pub fn attributes(&self) -> impl ExactSizeIterator<Item = (&str, &[Vec<u8>])> {
        self.attrs.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// Every value of an attribute (none when absent).
    pub fn values(&self, name: &str) -> &[Vec<u8>] {
        // The lowercased name in a buffer on the stack: a template's decoding
        // asks for some thirty attributes, and a pulse decodes every template.
        let base = name.split(';').next().unwrap_or(name);
        let mut buf = [0u8; 64];
        let found = match buf.get_mut(..base.len()) {
            Some(key) => {
                key.copy_from_slice(base.as_bytes());
                key.make_ascii_lowercase();
                // Lowercasing ASCII bytes keeps UTF-8 valid.
                std::str::from_utf8(key)
                    .ok()
                    .and_then(|key| self.attrs.get(key))
            }
            None => self.attrs.get(&normalize(name)),
        };
        found.map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn has(&self, name: &str) -> bool {
        !self.values(name).is_empty()
    }

    fn err(&self, name: &str, expected: impl Into<String>) -> AttrError {
        AttrError {
            attribute: name.to_string(),
            expected: expected.into(),
        }
    }

    /// The single value of a single-valued attribute.
    pub fn bytes(&self, name: &str) -> Result<Option<&[u8]>, AttrError> {
        match self.values(name) {
            [] => Ok(None),
            [one] => Ok(Some(one)),
            many => Err(self.err(name, format!("expected one value, found {}", many.len()))),
        }
    }

    pub fn string(&self, name: &str) -> Result<Option<String>, AttrError> {
        self.bytes(name)?
            .map(|b| utf8(b).map_err(|e| self.err(name, e)))
            .transpose()
    }

    pub fn strings(&self, name: &str) -> Result<Vec<String>, AttrError> {
        self.values(name)
            .iter()
            .map(|b| utf8(b).map_err(|e| self.err(name, e)))
            .collect()
    }

    /// An AD integer: a signed 32-bit decimal string. Values written unsigned
    /// (up to 4294967295) by other tools are accepted too; the bits are what count.
    pub fn int_bits(&self, name: &str) -> Result<Option<u32>, AttrError> {
        let Some(text) = self.string(name)? else {
            return Ok(None);
        };
        let n: i64 = text.trim().parse().map_err(|_| {
            self.err(
                name,
                format!("expected a signed 32-bit integer, found {text:?}"),
            )
        })?;
        if !(i64::from(i32::MIN)..=i64::from(u32::MAX)).contains(&n) {
            return Err(self.err(name, format!("{n} does not fit in 32 bits")));
        }
        Ok(Some(n as u32))
    }

    /// An integer that must not be negative (counts, sizes, versions).
    pub fn count(&self, name: &str) -> Result<Option<u32>, AttrError> {
        let Some(text) = self.string(name)? else {
            return Ok(None);
        };
        text.trim().parse::<u32>().map(Some).map_err(|_| {
            self.err(
                name,
                format!("expected a non-negative integer, found {text:?}"),
            )
        })
    }

    /// A signed integer such as `pKIMaxIssuingDepth` (-1 = no limit).
    pub fn signed(&self, name: &str) -> Result<Option<i32>, AttrError> {
        Ok(self.int_bits(name)?.map(|b| b as i32))
    }

    pub fn period(&self, name: &str) -> Result<Option<Period>, AttrError> {
        self.bytes(name)?
            .map(|b| Period::from_bytes(b).map_err(|e| self.err(name, e.to_string())))
            .transpose()
    }

    pub fn sid(&self, name: &str) -> Result<Option<Sid>, AttrError> {
        self.bytes(name)?
            .map(|b| Sid::from_bytes(b).map_err(|e| self.err(name, e.to_string())))
            .transpose()
    }

    pub fn sids(&self, name: &str) -> Result<Vec<Sid>, AttrError> {
        self.values(name)
            .iter()
            .map(|b| Sid::from_bytes(b).map_err(|e| self.err(name, e.to_string())))
            .collect()
    }

    /// Whether the entry has this objectClass (case-insensitive).
    pub fn is_a(&self, class: &str) -> bool {
        self.values("objectClass")
            .iter()
            .any(|v| v.eq_ignore_ascii_case(class.as_bytes()))
    }
}

fn normalize(name: &str) -> String {
    let base = name.split(';').next().unwrap_or(name);
    base.to_ascii_lowercase()
}

fn utf8(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|e| {
        format!(
            "expected UTF-8 text, found invalid byte at offset {}",
            e.utf8_error().valid_up_to()
        )
    })
}

/// Escapes a byte string for an LDAP filter value ([RFC 4515] 3): every byte
/// as `\xx`, the safe form for binary values such as SIDs.
pub fn escape_bytes(b: &[u8]) -> String {
    b.iter().map(|x| format!("\\{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e() -> Entry {
        Entry::new("CN=T,CN=Certificate Templates")
            .with("flags", [b"-1509949440".to_vec()])
            .with("revision", [b"100".to_vec()])
            .with("cACertificate;binary", [vec![0x30, 0x00]])
            .with("bad", [b"12x".to_vec()])
            .with("big", [b"4294967296".to_vec()])
            .with("two", [b"1".to_vec(), b"2".to_vec()])
            .with("latin", [vec![0xff, 0x41]])
            .with(
                "objectClass",
                [b"top".to_vec(), b"pKICertificateTemplate".to_vec()],
            )
    }

    #[test]
    fn typed_readers() {
        let e = e();
        assert_eq!(e.int_bits("flags").unwrap(), Some(0xA600_0000));
        assert_eq!(e.count("revision").unwrap(), Some(100));
        assert_eq!(e.count("absent").unwrap(), None);
        assert_eq!(e.values("cacertificate"), &[vec![0x30, 0x00]]);
        assert!(e.is_a("pkicertificatetemplate"));
    }

    #[test]
    fn errors_name_attribute_and_expectation() {
        let e = e();
        assert_eq!(
            e.int_bits("bad").unwrap_err().to_string(),
            "bad: expected a signed 32-bit integer, found \"12x\""
        );
        assert!(
            e.int_bits("big")
                .unwrap_err()
                .to_string()
                .contains("32 bits")
        );
        assert!(
            e.count("flags")
                .unwrap_err()
                .to_string()
                .contains("non-negative")
        );
        assert!(
            e.string("two")
                .unwrap_err()
                .to_string()
                .contains("one value")
        );
        assert!(e.string("latin").unwrap_err().to_string().contains("UTF-8"));
        assert!(
            e.period("revision")
                .unwrap_err()
                .to_string()
                .contains("8 bytes")
        );
        assert!(e.sid("revision").is_err());
    }

    #[test]
    fn escaping() {
        assert_eq!(escape_bytes(&[0x01, 0x2a, 0x00]), "\\01\\2a\\00");
    }
}
