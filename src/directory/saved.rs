//! The last directory snapshot, as the pulse keeps it in the store
//! (`directory-snapshot.json`) so that `status` can answer while the
//! directory is unreachable. It holds the entries the snapshot was decoded
//! from, not the decoded snapshot: reading it back goes through the same
//! decoders as live LDAP data ([`RawSnapshot::decode`]), so a file edited by
//! hand is no more trusted than a directory would be.
//!
//! It also carries the markers Public Key Services was read at, with which a
//! later pulse finds its entries still current and does not read them again
//! ([`super::snapshot::reuse`]).
//!
//! Format (JSON, a stable interface for nothing but this program): `{"format":
//! 1, "taken_at": RFC 3339, "url", "markers": {"server", "pks"}, "naming":
//! {"default", "configuration"}, "account": E, "groups": [E], "entries":
//! [E]}` (`markers` and `server` optional: files from before them have
//! none) where `E` is `{"dn",
//! "attributes": {name: [base64 of each value]}}`. Parsing is defensive: a
//! wrong shape, a bad base64 value, an unknown format or more than
//! [`MAX_ENTRIES`] entries is an error naming the place, never a panic.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::entry::Entry;
use super::snapshot::{NamingContexts, PksMarkers, RawSnapshot};

/// The format this code writes and reads.
pub const FORMAT: u32 = 1;
/// Limits on what is read back (a forest has hundreds of PKS objects).
pub const MAX_ENTRIES: usize = 100_000;
/// Files larger than this are refused before parsing.
pub const MAX_BYTES: usize = 256 * 1024 * 1024;

/// A snapshot's entries and when and where they were read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedSnapshot {
    pub taken_at: OffsetDateTime,
    /// The URL of the directory server the entries came from.
    pub url: String,
    /// What Public Key Services was read at (None in a file from before
    /// markers were kept: its entries are then never reused).
    pub markers: Option<PksMarkers>,
    pub raw: RawSnapshot,
}

/// The file's shape. Reading borrows the file's strings where they need no
/// unescaping (base64 values never do), so that parsing a large Public Key
/// Services allocates for the decoded bytes, not for each value's text too.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileForm<'a> {
    format: u32,
    #[serde(with = "time::serde::rfc3339")]
    taken_at: OffsetDateTime,
    url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    markers: Option<MarkersForm>,
    naming: NamingForm,
    #[serde(borrow)]
    account: EntryForm<'a>,
    #[serde(borrow)]
    groups: Vec<EntryForm<'a>>,
    #[serde(borrow)]
    entries: Vec<EntryForm<'a>>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MarkersForm {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    server: Option<String>,
    pks: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NamingForm {
    default: String,
    configuration: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryForm<'a> {
    #[serde(borrow)]
    dn: Cow<'a, str>,
    #[serde(borrow)]
    attributes: BTreeMap<Cow<'a, str>, Vec<Cow<'a, str>>>,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

impl<'a> EntryForm<'a> {
    fn of(e: &'a Entry) -> EntryForm<'a> {
        EntryForm {
            dn: Cow::Borrowed(&e.dn),
            attributes: e
                .attributes()
                .map(|(k, v)| {
                    (
                        Cow::Borrowed(k),
                        v.iter().map(|b| Cow::Owned(b64().encode(b))).collect(),
                    )
                })
                .collect(),
        }
    }

    fn entry(self, place: &str) -> Result<Entry, String> {
        let mut entry = Entry::new(self.dn.into_owned());
        for (name, values) in self.attributes {
            let bytes = values
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    b64().decode(v.as_bytes()).map_err(|e| {
                        format!(
                            "{place} {}: attribute {name}: value {}: not base64 ({e})",
                            entry.dn,
                            i + 1
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            entry = entry.with(&name, bytes);
        }
        Ok(entry)
    }
}

impl SavedSnapshot {
    /// The file's bytes (pretty JSON: a person may want to read it).
    pub fn to_json(&self) -> Result<Vec<u8>, String> {
        self.encode(self.taken_at)
    }

    /// Whether `file`, a saved snapshot's bytes, holds the same entries
    /// from the same server as this one: then it need not be written again
    /// (its `taken_at` is when that content was first read).
    pub fn same_content_as(&self, file: &[u8]) -> bool {
        self.to_json()
            .is_ok_and(|bytes| same_but_taken_at(&bytes, file))
    }

    /// The bytes to write in place of `file` (the saved snapshot's current
    /// bytes, if any): None when `file` holds the same content (see
    /// [`SavedSnapshot::same_content_as`]). One encoding, and no parse of
    /// the old file: a pulse that finds the directory unchanged spends a
    /// byte comparison, not a decode of every entry it saved.
    pub fn to_json_unless_same(&self, file: Option<&[u8]>) -> Result<Option<Vec<u8>>, String> {
        let bytes = self.to_json()?;
        Ok(match file {
            Some(file) if same_but_taken_at(&bytes, file) => None,
            _ => Some(bytes),
        })
    }

    /// Whether `other` holds what this holds but perhaps for `taken_at`:
    /// the same server, markers and entries (the Public Key Services entries
    /// of a reused read are the same allocation, compared at no cost).
    pub fn same_content(&self, other: &SavedSnapshot) -> bool {
        self.url == other.url && self.markers == other.markers && self.raw == other.raw
    }

    fn encode(&self, taken_at: OffsetDateTime) -> Result<Vec<u8>, String> {
        let form = FileForm {
            format: FORMAT,
            taken_at,
            url: self.url.clone(),
            markers: self.markers.as_ref().map(|m| MarkersForm {
                server: m.server.clone(),
                pks: m.pks.clone(),
            }),
            naming: NamingForm {
                default: self.raw.naming.default.clone(),
                configuration: self.raw.naming.configuration.clone(),
            },
            account: EntryForm::of(&self.raw.account),
            groups: self.raw.groups.iter().map(EntryForm::of).collect(),
            entries: self.raw.entries.iter().map(EntryForm::of).collect(),
        };
        serde_json::to_vec_pretty(&form).map_err(|e| format!("cannot encode the snapshot: {e}"))
    }

    /// Reads a file written by [`SavedSnapshot::to_json`]; anything else is an
    /// error saying what is wrong and where (never quoting values).
    pub fn parse(bytes: &[u8]) -> Result<SavedSnapshot, String> {
        if bytes.len() > MAX_BYTES {
            return Err(format!(
                "{} bytes, more than the {MAX_BYTES} a snapshot may have",
                bytes.len()
            ));
        }
        let form: FileForm = serde_json::from_slice(bytes).map_err(|e| {
            format!(
                "not a directory snapshot (line {}, column {}: {})",
                e.line(),
                e.column(),
                describe(&e)
            )
        })?;
        if form.format != FORMAT {
            return Err(format!(
                "format {} is not the format {FORMAT} this version reads",
                form.format
            ));
        }
        if form.entries.len() + form.groups.len() > MAX_ENTRIES {
            return Err(format!("more than {MAX_ENTRIES} entries"));
        }
        let account = form.account.entry("account")?;
        let groups = form
            .groups
            .into_iter()
            .map(|g| g.entry("group"))
            .collect::<Result<Vec<_>, _>>()?;
        let entries = form
            .entries
            .into_iter()
            .map(|g| g.entry("entry"))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SavedSnapshot {
            taken_at: form.taken_at,
            url: form.url,
            markers: form.markers.map(|m| PksMarkers {
                server: m.server,
                pks: m.pks,
            }),
            raw: RawSnapshot {
                naming: NamingContexts {
                    default: form.naming.default,
                    configuration: form.naming.configuration,
                },
                account,
                groups,
                entries: Arc::new(entries),
            },
        })
    }
}

/// The field before which the encoding holds nothing but the format.
const TAKEN_AT: &[u8] = b"\"taken_at\": \"";

/// Whether `file` is byte for byte `ours` (a file [`SavedSnapshot::encode`]
/// wrote) but for the value of `taken_at`, and that value is an RFC 3339
/// time written as `encode` writes it. Then `file` is exactly what `encode`
/// gives for our content at its own `taken_at`: the same answer as parsing
/// it and encoding it again, without either.
fn same_but_taken_at(ours: &[u8], file: &[u8]) -> bool {
    // `ours` = prefix, time, `"`, rest; the prefix and the time are ASCII
    // without quotes (the format's number, then RFC 3339).
    let Some(start) = find(ours, TAKEN_AT).map(|i| i + TAKEN_AT.len()) else {
        return false;
    };
    let (prefix, our_time_on) = ours.split_at(start);
    let Some(file_time_on) = file.strip_prefix(prefix) else {
        return false;
    };
    let (Some(ours_end), Some(file_end)) = (
        our_time_on.iter().position(|&b| b == b'"'),
        file_time_on.iter().position(|&b| b == b'"'),
    ) else {
        return false;
    };
    if our_time_on[ours_end..] != file_time_on[file_end..] {
        return false;
    }
    let written = &file_time_on[..file_end];
    let rfc3339 = time::format_description::well_known::Rfc3339;
    std::str::from_utf8(written)
        .ok()
        .and_then(|t| OffsetDateTime::parse(t, &rfc3339).ok())
        .and_then(|t| t.format(&rfc3339).ok())
        .is_some_and(|again| again.as_bytes() == written)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// serde_json's message without the value it quotes (a value could be
/// anything a person pasted in).
fn describe(e: &serde_json::Error) -> &'static str {
    use serde_json::error::Category;
    match e.classify() {
        Category::Io => "cannot be read",
        Category::Syntax => "not valid JSON",
        Category::Data => "a field is missing, unknown or of the wrong type",
        Category::Eof => "it ends too early",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SavedSnapshot {
        SavedSnapshot {
            taken_at: time::macros::datetime!(2026-12-01 10:00 UTC),
            url: "ldap://dc01.corp.example".into(),
            markers: Some(PksMarkers {
                server: Some("CN=NTDS Settings,CN=DC01/41234".into()),
                pks: "12/20261201095900.0Z/41200/".into(),
            }),
            raw: RawSnapshot {
                naming: NamingContexts {
                    default: "DC=corp,DC=example".into(),
                    configuration: "CN=Configuration,DC=corp,DC=example".into(),
                },
                account: Entry::new("CN=WS01,CN=Computers,DC=corp,DC=example")
                    .with("objectSid", [vec![1, 5, 0, 0, 0, 0, 0, 5, 21, 0, 0, 0]])
                    .with("sAMAccountName", [b"WS01$".to_vec()]),
                groups: vec![Entry::new("CN=G,DC=corp,DC=example").with("cn", [b"G".to_vec()])],
                entries: Arc::new(vec![
                    Entry::new("CN=T,CN=Public Key Services")
                        .with("nTSecurityDescriptor", [vec![0u8, 255, 10, 13], Vec::new()]),
                ]),
            },
        }
    }

    #[test]
    fn what_is_written_reads_back_the_same() {
        let s = sample();
        let bytes = s.to_json().unwrap();
        assert_eq!(SavedSnapshot::parse(&bytes).unwrap(), s);
    }

    #[test]
    fn a_file_of_the_same_content_is_the_same_whenever_it_was_taken() {
        let old = sample().to_json().unwrap();
        let mut later = sample();
        later.taken_at = time::macros::datetime!(2026-12-02 10:00 UTC);
        assert!(later.same_content_as(&old));
        let mut moved = later.clone();
        moved.url = "ldap://dc02.corp.example".into();
        assert!(!moved.same_content_as(&old));
        let mut changed = later.clone();
        changed.raw.groups.clear();
        assert!(!changed.same_content_as(&old));
        assert!(!later.same_content_as(b"not json"));
        assert!(!later.same_content_as(b""));
        // The same as a parse and a new encoding of the old file would say.
        let text = String::from_utf8(old.clone()).unwrap();
        let cases: Vec<(String, bool)> = vec![
            (text.clone(), true),
            (
                text.replace("2026-12-01T10:00:00Z", "2025-01-31T23:59:59Z"),
                true,
            ),
            (text.replace("2026-12-01T10:00:00Z", "soon"), false),
            (
                text.replace("2026-12-01T10:00:00Z", "2026-12-01T11:00:00+01:00"),
                true,
            ),
            (
                text.replace("2026-12-01T10:00:00Z", "2026-12-01T10:00:00.000Z"),
                false,
            ),
            (text.replace("2026-12-01T10:00:00Z", ""), false),
            (text.replace("\"format\": 1", "\"format\": 2"), false),
            (text.replace("CN=WS01,", "CN=WS02,"), false),
            (
                text.replace("\"taken_at\": \"2026-12-01T10:00:00Z\"", "\"taken_at\": \""),
                false,
            ),
            (format!("{text} "), false),
            (text[..text.len() - 1].to_string(), false),
        ];
        for (file, same) in cases {
            assert_eq!(later.same_content_as(file.as_bytes()), same, "{file}");
            let reparsed = SavedSnapshot::parse(file.as_bytes())
                .and_then(|f| later.encode(f.taken_at))
                .is_ok_and(|b| b == file.as_bytes());
            assert_eq!(reparsed, same, "{file}");
            assert_eq!(
                later.to_json_unless_same(Some(file.as_bytes())).unwrap(),
                (!same).then(|| later.to_json().unwrap())
            );
        }
        assert_eq!(
            later.to_json_unless_same(None).unwrap(),
            Some(later.to_json().unwrap())
        );
        // The same content as itself at another time, and as nothing else.
        assert!(later.same_content(&sample()));
        let s = sample();
        let mut variants = vec![moved, changed];
        let mut value = s.clone();
        Arc::make_mut(&mut value.raw.entries)[0] = Entry::new("CN=T,CN=Public Key Services")
            .with("nTSecurityDescriptor", [vec![0u8, 255, 10], vec![13]]);
        variants.push(value);
        let mut naming = s.clone();
        naming.raw.naming.default = "DC=corp,DC=example,DC=org".into();
        variants.push(naming);
        // The markers are content: entries read at other markers make
        // another file.
        for markers in [
            None,
            Some(PksMarkers {
                server: None,
                pks: "12/20261201095900.0Z/41200/".into(),
            }),
            Some(PksMarkers {
                server: Some("CN=NTDS Settings,CN=DC01/41234".into()),
                pks: "12/20261201095900.0Z/41201/".into(),
            }),
        ] {
            let mut m = s.clone();
            m.markers = markers;
            variants.push(m);
        }
        for (i, v) in variants.iter().enumerate() {
            assert!(!v.same_content(&s), "variant {i}");
            assert!(!v.same_content_as(&s.to_json().unwrap()), "variant {i}");
        }
    }

    #[test]
    fn a_file_from_before_the_markers_reads_with_none() {
        let mut s = sample();
        s.markers = None;
        let text = String::from_utf8(s.to_json().unwrap()).unwrap();
        assert!(!text.contains("markers"), "{text}");
        assert_eq!(SavedSnapshot::parse(text.as_bytes()).unwrap(), s);
        // Without the server's value (a server that shows none).
        let mut s = sample();
        s.markers.as_mut().unwrap().server = None;
        let bytes = s.to_json().unwrap();
        assert_eq!(SavedSnapshot::parse(&bytes).unwrap(), s);
    }

    #[test]
    fn bad_files_are_errors_that_say_what_is_wrong() {
        let good = String::from_utf8(sample().to_json().unwrap()).unwrap();
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "ends too early"),
            ("{".into(), "ends too early"),
            ("[1,2]".into(), "wrong type"),
            ("not json".into(), "not valid JSON"),
            (good.replace("\"format\": 1", "\"format\": 2"), "format 2"),
            (
                good.replace(
                    "\"taken_at\": \"2026-12-01T10:00:00Z\"",
                    "\"taken_at\": \"soon\"",
                ),
                "wrong type",
            ),
            (good.replacen("\"AP8KDQ==\"", "\"%%%\"", 1), "not base64"),
            (
                good.replacen("\"url\"", "\"extra\": 1, \"url\"", 1),
                "unknown",
            ),
            (
                good.replacen("\"groups\"", "\"groupz\"", 1),
                "missing, unknown",
            ),
            (good.replacen("\"pks\"", "\"pkz\"", 1), "missing, unknown"),
        ];
        for (text, want) in cases {
            let err = SavedSnapshot::parse(text.as_bytes()).unwrap_err();
            assert!(err.contains(want), "{text:.60}: {err}");
            assert!(!err.contains("%%%"), "the error quotes the value: {err}");
        }
    }
}
