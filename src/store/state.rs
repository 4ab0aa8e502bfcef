//! `state.toml`: the worker's memory between pulses (failure counts for the
//! backoff, the last pulse, the directory change marker).
//!
//! A missing file is a fresh state. A file that cannot be read is an error that
//! names the file and the problem: the backoff must not silently reset.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::error::{StoreError, io_err};
use super::meta;
use super::types::{State, TemplateFailures};

/// On-disk form of [`State`].
#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    last_pulse: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_pulse_ok: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    directory_marker: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    failures: Vec<FailureFile>,
}

#[derive(Debug, Serialize, Deserialize)]
struct FailureFile {
    template: String,
    count: u32,
    #[serde(with = "time::serde::rfc3339")]
    last_failure: OffsetDateTime,
    #[serde(default)]
    last_error: String,
}

/// Reads `state.toml` (missing: the default state).
pub(crate) fn read(path: &std::path::Path) -> Result<State, StoreError> {
    let corrupt = |problem: String| StoreError::Corrupt {
        path: path.to_path_buf(),
        problem,
    };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
        Err(e) => return Err(io_err("read", path)(e)),
    };
    let file: StateFile =
        meta::parse(&bytes).map_err(|p| corrupt(format!("not a valid state file: {p}")))?;
    Ok(State {
        failures: file
            .failures
            .into_iter()
            .map(|f| TemplateFailures {
                template: f.template,
                count: f.count,
                last_failure: f.last_failure,
                last_error: f.last_error,
            })
            .collect(),
        last_pulse: file.last_pulse,
        last_pulse_ok: file.last_pulse_ok,
        directory_marker: file.directory_marker,
    })
}

/// The text of `state.toml` for a state.
pub(crate) fn text(state: &State, path: &std::path::Path) -> Result<String, StoreError> {
    let file = StateFile {
        last_pulse: state.last_pulse,
        last_pulse_ok: state.last_pulse_ok,
        directory_marker: state.directory_marker.clone(),
        failures: state
            .failures
            .iter()
            .map(|f| FailureFile {
                template: f.template.clone(),
                count: f.count,
                last_failure: f.last_failure,
                last_error: f.last_error.clone(),
            })
            .collect(),
    };
    meta::to_text(&file, path)
}
