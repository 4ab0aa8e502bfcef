//! `state.toml`: the worker's memory between pulses (failure counts for the
//! backoff, the last pulse, the directory change marker).
//!
//! A missing file is a fresh state. A file that cannot be parsed holds
//! nothing that cannot be rebuilt (counts and times), so it must not stop
//! the worker until a person repairs it: it is read as a fresh state (with a
//! warning), and the next writer under the lock sets it aside as
//! `state.toml.unreadable` (`-2`, `-3`, … if taken) for a person to look at,
//! reporting that it did. A link or a file that is not a regular file is
//! not corruption but someone else's doing: that is an error, and nothing is
//! read through it.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use std::path::Path;

use super::error::{StoreError, io_err};
use super::types::{State, TemplateFailures};
use super::{fsutil, layout, meta};

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

/// Reads `state.toml`: Ok(Ok(state)) (missing: the default state),
/// Ok(Err(problem)) when the file exists but cannot be parsed, Err when it
/// cannot be read at all (I/O, a link, not a regular file).
pub(crate) fn load(path: &Path) -> Result<Result<State, String>, StoreError> {
    let bytes = match fsutil::read_regular(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Ok(State::default())),
        Err(_) if layout::is_link(path) => {
            return Err(StoreError::Link {
                path: path.to_path_buf(),
            });
        }
        Err(e) => return Err(io_err("read", path)(e)),
    };
    Ok(meta::parse::<StateFile>(&bytes).map(StateFile::into_state))
}

/// Reads `state.toml`; one that cannot be parsed reads as the default state,
/// with a warning (see the module doc).
pub(crate) fn read(path: &Path) -> Result<State, StoreError> {
    Ok(load(path)?.unwrap_or_else(|problem| {
        tracing::warn!(
            "{}: not a valid state file ({problem}); using an empty state until the next \
             pulse sets it aside",
            path.display()
        );
        State::default()
    }))
}

impl StateFile {
    fn into_state(self) -> State {
        State {
            failures: self
                .failures
                .into_iter()
                .map(|f| TemplateFailures {
                    template: f.template,
                    count: f.count,
                    last_failure: f.last_failure,
                    last_error: f.last_error,
                })
                .collect(),
            last_pulse: self.last_pulse,
            last_pulse_ok: self.last_pulse_ok,
            directory_marker: self.directory_marker,
        }
    }
}

/// The text of `state.toml` for a state.
pub(crate) fn text(state: &State, path: &Path) -> Result<String, StoreError> {
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
