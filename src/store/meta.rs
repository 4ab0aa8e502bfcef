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
}

impl EntryMeta {
    pub fn from_certificate_meta(m: &CertificateMeta) -> EntryMeta {
        EntryMeta {
            template: m.template.clone(),
            ca: m.ca.clone(),
            request_id: m.request_id.clone(),
            installed_at: m.installed_at,
            ..EntryMeta::default()
        }
    }

    pub fn certificate_meta(&self) -> CertificateMeta {
        CertificateMeta {
            template: self.template.clone(),
            ca: self.ca.clone(),
            request_id: self.request_id.clone(),
            installed_at: self.installed_at,
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
            path,
        }
    }
}

/// Parses a meta file; the error is the TOML problem (with line and column).
pub(crate) fn parse<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8 text: {e}"))?;
    toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())
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
    let text = std::str::from_utf8(existing).map_err(|e| format!("not UTF-8 text: {e}"))?;
    let mut table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| e.to_string().trim_end().to_string())?;
    for (k, v) in updates {
        table.insert((*k).to_string(), toml::Value::String(v.clone()));
    }
    toml::to_string(&table).map_err(|e| format!("cannot write the metadata as TOML: {e}"))
}
