//! The `meta.toml` files of entries, as written on disk.
//!
//! Times are RFC 3339 strings. Unknown keys are ignored when reading and kept
//! when the engine updates a file (it merges into the existing table), so a
//! newer version's fields survive an older one's update.
//!
//! Two fields record an *intent* before a folder is moved, so that recovery can
//! finish a move a crash interrupted: `archived_at`/`archived_why` in a `my/`
//! entry ("move me to archive/") and `abandoned_at`/`abandoned_why` in a
//! `request/` entry ("move me to archive/requests/").

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use std::path::Path;

use super::error::StoreError;
use super::types::{CertificateMeta, PendingRequest};

/// `my/<t>/meta.toml` and `archive/<t>/meta.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EntryMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    /// The CA's request ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub installed_at: Option<OffsetDateTime>,
    /// The `request/<id>` folder the certificate completed (its key came from there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_request: Option<String>,
    /// Thumbprint of the certificate this one renews or replaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub archived_at: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived_why: Option<String>,
    /// The SCEP profile (`[scep.<name>]`) the certificate was enrolled for;
    /// such a certificate has no template extension and is managed all the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scep_profile: Option<String>,
    /// The profile's `revoke_on_remove` at enrollment (once the profile is
    /// gone, the policy cannot say).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub revoke_on_remove: bool,
}

impl EntryMeta {
    pub fn from_certificate_meta(m: &CertificateMeta) -> EntryMeta {
        EntryMeta {
            template: m.template.clone(),
            ca: m.ca.clone(),
            request_id: m.request_id.clone(),
            installed_at: m.installed_at,
            scep_profile: m.scep_profile.clone(),
            revoke_on_remove: m.revoke_on_remove,
            ..EntryMeta::default()
        }
    }

    pub fn certificate_meta(&self) -> CertificateMeta {
        CertificateMeta {
            template: self.template.clone(),
            ca: self.ca.clone(),
            request_id: self.request_id.clone(),
            installed_at: self.installed_at,
            scep_profile: self.scep_profile.clone(),
            revoke_on_remove: self.revoke_on_remove,
        }
    }
}

/// `request/<id>/meta.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RequestMeta {
    pub template: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_request_id: Option<String>,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_poll: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub abandoned_at: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abandoned_why: Option<String>,
    /// For a SCEP request: its profile, and what polling it needs
    /// (`scep::exchange::PendingRequest` as JSON; no secret in it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scep_profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scep_state: Option<String>,
}

impl RequestMeta {
    pub fn pending(&self, id: &str, path: std::path::PathBuf) -> PendingRequest {
        PendingRequest {
            id: id.to_string(),
            template: self.template.clone(),
            ca: self.ca.clone(),
            ca_request_id: self.ca_request_id.clone(),
            created_at: self.created_at,
            last_poll: self.last_poll,
            replaces: self.replaces.clone(),
            scep_profile: self.scep_profile.clone(),
            scep_state: self.scep_state.clone(),
            path,
        }
    }
}

/// Parses a meta file (or `state.toml`); the error is the TOML problem with
/// its line and column, but never a piece of the file: the file may not be
/// ours (a hard link to a secret file in the store's place), so the parser's
/// excerpt of the offending line is left out and values quoted in its
/// message are masked (see [`without_values`]).
pub(crate) fn parse<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.valid_up_to()
        )
    })?;
    toml::from_str(text).map_err(|e| problem(text, &e))
}

/// A TOML error as [`parse`] reports it: position and masked message.
fn problem(text: &str, e: &toml::de::Error) -> String {
    let message = without_values(e.message().trim());
    match e.span() {
        Some(span) => {
            let (line, column) = position(text, span.start);
            format!("TOML error at line {line}, column {column}: {message}")
        }
        None => format!("TOML error: {message}"),
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let mut at = offset.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// A parser message with the values it quotes masked: text in double quotes
/// always (a string from the file), text in backticks unless it is grammar
/// (punctuation such as `=`) or a lower-case name (a field such as
/// `template`, a type such as `true`).
pub(crate) fn without_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find(['"', '`']) {
        let quote = rest[start..].chars().next().unwrap_or('"');
        out.push_str(&rest[..=start]);
        let after = &rest[start + 1..];
        let Some(len) = after.find(quote) else {
            out.push('…');
            return out;
        };
        let inner = &after[..len];
        let grammar = !inner.is_empty()
            && (inner.chars().all(|c| c.is_ascii_punctuation())
                || inner.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        if quote == '`' && grammar {
            out.push_str(inner);
        } else {
            out.push('…');
        }
        out.push(quote);
        rest = &after[len + 1..];
    }
    out.push_str(rest);
    out
}

/// Serializes a meta file that is to be written at `path`.
pub(crate) fn to_text<T: Serialize>(meta: &T, path: &Path) -> Result<String, StoreError> {
    toml::to_string(meta).map_err(|e| StoreError::Corrupt {
        path: path.to_path_buf(),
        problem: format!("cannot write the metadata as TOML: {e}"),
    })
}

/// A time as RFC 3339 text.
pub(crate) fn time_text(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// Sets `updates` in the TOML table `existing` (keeping its other keys) and
/// returns the new text. Err: `existing` is not a TOML table.
pub(crate) fn merge(existing: &[u8], updates: &[(&str, String)]) -> Result<String, String> {
    let text = std::str::from_utf8(existing).map_err(|_| "not UTF-8 text".to_string())?;
    let mut table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| problem(text, &e))?;
    for (k, v) in updates {
        table.insert((*k).to_string(), toml::Value::String(v.clone()));
    }
    toml::to_string(&table).map_err(|e| format!("cannot write the metadata as TOML: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The file may be a stranger's (a hard link to a secret): no error
    /// quotes it, yet line, column and the kind of problem are there.
    #[test]
    fn parse_errors_never_quote_the_file() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "root:$6$s3cr3tHash:19000:0:99999:7:::\n",
                "s3cr3tHash",
                "line 1, column 38: key with no value, expected `=`",
            ),
            (
                "template = \"t\"\ncreated_at = \"s3cr3t\"\n",
                "s3cr3t",
                "line 2, column 14:",
            ),
            (
                "template = 4242\ncreated_at = \"2026-01-01T00:00:00Z\"\n",
                "4242",
                "invalid type: integer `…`, expected a string",
            ),
            (
                "template = \"t\"\n",
                "template = ",
                "missing field `created_at`",
            ),
        ];
        for (text, secret, want) in cases {
            let err = parse::<RequestMeta>(text.as_bytes()).unwrap_err();
            assert!(!err.contains(secret), "{err:?} quotes {secret:?}");
            assert!(err.contains(want), "{err:?} should contain {want:?}");
        }
        let err = parse::<RequestMeta>(b"\xff\xfesecret").unwrap_err();
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn values_are_masked_in_messages() {
        assert_eq!(
            without_values("invalid type: string \"hunter2\", expected u32"),
            "invalid type: string \"…\", expected u32"
        );
        assert_eq!(
            without_values("unknown field `Hunter2`, expected `template`"),
            "unknown field `…`, expected `template`"
        );
        assert_eq!(without_values("unclosed `\"abc"), "unclosed `…");
    }
}
