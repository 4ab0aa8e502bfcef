//! The MIT keytab file format (version 0x0501 and 0x0502), read to know which
//! principals a keytab holds before GSS-API is asked to use it: GSS-API's own
//! errors for a keytab without the principal ("Key table entry not found") or
//! an unreadable one name neither the file nor what it does hold.
//!
//! Only names, key version numbers and encryption types are kept; key bytes
//! are skipped and never copied. Format: MIT krb5 documentation, "Keytab file
//! format" (formats/keytab_file_format).

use std::fmt;

/// A Kerberos principal name: components and realm (`host/ws01.corp.example@CORP.EXAMPLE`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Principal {
    pub components: Vec<String>,
    pub realm: String,
}

impl Principal {
    /// Parses `a/b@REALM` (or `a@REALM`; without a realm, `default_realm`).
    /// Backslash escapes (`\/`, `\@`) are honoured as krb5_parse_name does.
    pub fn parse(text: &str, default_realm: Option<&str>) -> Result<Principal, String> {
        let mut components = vec![String::new()];
        let mut realm: Option<String> = None;
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            let in_realm = realm.is_some();
            let c = match c {
                '\\' => match chars.next() {
                    Some(e) => e,
                    None => return Err(format!("principal {text:?} ends with a backslash")),
                },
                '/' if !in_realm => {
                    components.push(String::new());
                    continue;
                }
                '@' if !in_realm => {
                    realm = Some(String::new());
                    continue;
                }
                '@' | '/' => {
                    return Err(format!("principal {text:?}: unexpected {c:?} in the realm"));
                }
                c => c,
            };
            match realm.as_mut() {
                Some(r) => r.push(c),
                None => components.last_mut().expect("one component").push(c),
            }
        }
        if components.iter().any(|c| c.is_empty()) {
            return Err(format!("principal {text:?} has an empty component"));
        }
        let realm = match realm {
            Some(r) if !r.is_empty() => r,
            Some(_) => return Err(format!("principal {text:?} has an empty realm")),
            None => default_realm.map(str::to_string).ok_or_else(|| {
                format!("principal {text:?} names no realm and none is configured")
            })?,
        };
        Ok(Principal { components, realm })
    }

    /// True for a computer account's own principal: one component ending in
    /// `$` (`WS01$`), as `adcli join` and `realm join` write it.
    pub fn is_computer_account(&self) -> bool {
        self.components.len() == 1 && self.components[0].ends_with('$')
    }

    /// The principal's name without the realm (`WS01$`, `host/ws01.corp.example`).
    pub fn name(&self) -> String {
        self.components.join("/")
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let escape = |s: &str| {
            s.replace('\\', "\\\\")
                .replace('/', "\\/")
                .replace('@', "\\@")
        };
        let parts: Vec<String> = self.components.iter().map(|c| escape(c)).collect();
        write!(f, "{}@{}", parts.join("/"), escape(&self.realm))
    }
}

/// One key of a keytab, without the key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeytabEntry {
    pub principal: Principal,
    pub kvno: u32,
    /// The RFC 3961 encryption type number (17, 18: AES; 23: RC4).
    pub enctype: u16,
}

/// The entries of a keytab file, in file order.
pub fn parse(bytes: &[u8]) -> Result<Vec<KeytabEntry>, String> {
    let version = match bytes {
        [5, 1, ..] => 1,
        [5, 2, ..] => 2,
        [a, b, ..] => {
            return Err(format!(
                "not a keytab: it starts with 0x{a:02x}{b:02x}, a keytab with 0x0502"
            ));
        }
        _ => return Err("not a keytab: shorter than its 2-byte header".into()),
    };
    // Version 1 is in the writer's byte order; MIT wrote it on big- and
    // little-endian hosts alike. Version 2 is big-endian.
    let big_endian = version == 2 || cfg!(target_endian = "big");
    let mut r = Reader {
        bytes,
        pos: 2,
        big_endian,
    };
    let mut entries = Vec::new();
    while r.remaining() > 0 {
        let at = r.pos;
        let size = r.u32().map_err(|e| format!("entry at byte {at}: {e}"))? as i32;
        if size == 0 {
            break;
        }
        let len = size.unsigned_abs() as usize;
        let body = r
            .take(len)
            .map_err(|e| format!("entry at byte {at} of {len} bytes: {e}"))?;
        if size < 0 {
            continue; // a hole left by a deleted entry
        }
        let entry = parse_entry(body, version, big_endian)
            .map_err(|e| format!("entry at byte {at}: {e}"))?;
        entries.push(entry);
    }
    Ok(entries)
}

fn parse_entry(body: &[u8], version: u8, big_endian: bool) -> Result<KeytabEntry, String> {
    let mut r = Reader {
        bytes: body,
        pos: 0,
        big_endian,
    };
    let mut count = r.u16()? as usize;
    if version == 1 {
        // Version 1 counts the realm among the components.
        count = count.checked_sub(1).ok_or("a principal without a realm")?;
    }
    if count == 0 {
        return Err("a principal without components".into());
    }
    let realm = r.string()?;
    let mut components = Vec::with_capacity(count.min(16));
    for _ in 0..count {
        components.push(r.string()?);
    }
    if version == 2 {
        let _name_type = r.u32()?;
    }
    let _timestamp = r.u32()?;
    let vno8 = r.u8()?;
    let enctype = r.u16()?;
    let key_len = r.u16()? as usize;
    r.take(key_len).map_err(|e| format!("key: {e}"))?;
    // The 32-bit kvno follows when the entry has room for it, and wins over
    // the 8-bit one unless it is 0 (MIT's reader does the same).
    let kvno = match r.remaining() >= 4 {
        true => match r.u32()? {
            0 => vno8 as u32,
            v => v,
        },
        false => vno8 as u32,
    };
    Ok(KeytabEntry {
        principal: Principal { components, realm },
        kvno,
        enctype,
    })
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    big_endian: bool,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.remaining() < n {
            return Err(format!(
                "truncated: {n} bytes needed, {} left",
                self.remaining()
            ));
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, String> {
        let b: [u8; 2] = self.take(2)?.try_into().expect("2 bytes");
        Ok(if self.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b: [u8; 4] = self.take(4)?.try_into().expect("4 bytes");
        Ok(if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }

    fn string(&mut self) -> Result<String, String> {
        let len = self.u16()? as usize;
        let raw = self.take(len)?;
        String::from_utf8(raw.to_vec()).map_err(|_| "a name that is not UTF-8".to_string())
    }
}

/// The computer account principal a host's keytab holds (`NAME$@REALM`), as
/// `adcli join` writes it: the one single-component principal ending in `$`.
/// Several distinct ones (a keytab shared by two joins) is an error that lists
/// them, so that the policy names one.
pub fn computer_principal(entries: &[KeytabEntry]) -> Result<Principal, String> {
    let mut found: Vec<&Principal> = entries
        .iter()
        .map(|e| &e.principal)
        .filter(|p| p.is_computer_account())
        .collect();
    found.sort();
    found.dedup();
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(format!(
            "it holds no computer account principal (NAME$@REALM); it holds {}",
            list(entries)
        )),
        many => Err(format!(
            "it holds several computer account principals ({}); name one with `principal`",
            many.iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// The distinct principals of a keytab, for error messages.
pub fn list(entries: &[KeytabEntry]) -> String {
    let mut names: Vec<String> = entries.iter().map(|e| e.principal.to_string()).collect();
    names.dedup();
    if names.is_empty() {
        return "no keys at all".into();
    }
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version 2 entry as MIT writes it.
    fn entry_v2(realm: &str, components: &[&str], kvno: u32, enctype: u16) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend((components.len() as u16).to_be_bytes());
        body.extend((realm.len() as u16).to_be_bytes());
        body.extend(realm.as_bytes());
        for c in components {
            body.extend((c.len() as u16).to_be_bytes());
            body.extend(c.as_bytes());
        }
        body.extend(1u32.to_be_bytes()); // KRB5_NT_PRINCIPAL
        body.extend(1_700_000_000u32.to_be_bytes());
        body.push(kvno as u8);
        body.extend(enctype.to_be_bytes());
        body.extend(32u16.to_be_bytes());
        body.extend([0xAA; 32]);
        body.extend(kvno.to_be_bytes());
        let mut out = (body.len() as u32).to_be_bytes().to_vec();
        out.extend(body);
        out
    }

    fn keytab(entries: &[Vec<u8>]) -> Vec<u8> {
        let mut out = vec![5, 2];
        for e in entries {
            out.extend(e);
        }
        out
    }

    #[test]
    fn entries_holes_and_kvnos_are_read() {
        let mut bytes = keytab(&[
            entry_v2("CORP.EXAMPLE", &["WS01$"], 300, 18),
            entry_v2("CORP.EXAMPLE", &["host", "ws01.corp.example"], 2, 17),
        ]);
        // A hole of 6 bytes, then one more entry.
        bytes.extend((-6i32).to_be_bytes());
        bytes.extend([0; 6]);
        bytes.extend(entry_v2("CORP.EXAMPLE", &["WS01$"], 3, 17));
        let entries = parse(&bytes).unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].principal.to_string(), "WS01$@CORP.EXAMPLE");
        assert_eq!(
            entries[0].kvno, 300,
            "the 32-bit kvno wins over the 8-bit one"
        );
        assert_eq!(entries[1].principal.name(), "host/ws01.corp.example");
        assert_eq!(entries[1].enctype, 17);
        assert_eq!(
            computer_principal(&entries).unwrap().to_string(),
            "WS01$@CORP.EXAMPLE"
        );
    }

    #[test]
    fn bad_keytabs_are_errors_that_say_where() {
        let good = keytab(&[entry_v2("CORP.EXAMPLE", &["WS01$"], 2, 18)]);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![], "shorter than its 2-byte header"),
            (
                b"[libdefaults]".to_vec(),
                "not a keytab: it starts with 0x5b6c",
            ),
            (good[..good.len() - 10].to_vec(), "entry at byte 2 of"),
            (
                {
                    let mut b = vec![5, 2];
                    b.extend(8u32.to_be_bytes());
                    b.extend([0, 0, 0, 0, 0, 0, 0, 0]);
                    b
                },
                "a principal without components",
            ),
            (
                {
                    let mut b = vec![5, 2];
                    b.extend(0x7fff_ffffu32.to_be_bytes());
                    b
                },
                "truncated",
            ),
        ];
        for (bytes, expected) in cases {
            let err = parse(&bytes).unwrap_err();
            assert!(err.contains(expected), "{err:?} should say {expected:?}");
        }
        assert!(parse(&[5, 2]).unwrap().is_empty());
    }

    #[test]
    fn the_computer_principal_is_the_one_ending_in_dollar() {
        let e = |name: &[&str]| KeytabEntry {
            principal: Principal {
                components: name.iter().map(|s| s.to_string()).collect(),
                realm: "CORP.EXAMPLE".into(),
            },
            kvno: 2,
            enctype: 18,
        };
        let err = computer_principal(&[e(&["host", "ws01"])]).unwrap_err();
        assert!(err.contains("holds host/ws01@CORP.EXAMPLE"), "{err}");
        let err = computer_principal(&[e(&["WS01$"]), e(&["WS02$"])]).unwrap_err();
        assert!(err.contains("several") && err.contains("WS02$"), "{err}");
        assert!(
            computer_principal(&[])
                .unwrap_err()
                .contains("no keys at all")
        );
    }

    #[test]
    fn principal_names_parse_and_print_as_krb5_does() {
        let cases = [
            ("WS01$@CORP.EXAMPLE", None, Ok("WS01$@CORP.EXAMPLE")),
            ("WS01$", Some("CORP.EXAMPLE"), Ok("WS01$@CORP.EXAMPLE")),
            (
                "ldap/dc01.corp.example",
                Some("R"),
                Ok("ldap/dc01.corp.example@R"),
            ),
            ("a\\/b@R", None, Ok("a\\/b@R")),
            ("WS01$", None, Err("names no realm")),
            ("a//b@R", None, Err("empty component")),
            ("a@", None, Err("empty realm")),
            ("a@R@S", None, Err("unexpected '@'")),
            ("a\\", None, Err("backslash")),
        ];
        for (text, realm, expected) in cases {
            match (Principal::parse(text, realm), expected) {
                (Ok(p), Ok(want)) => assert_eq!(p.to_string(), want, "{text}"),
                (Err(e), Err(want)) => assert!(e.contains(want), "{text}: {e}"),
                (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
            }
        }
    }
}
