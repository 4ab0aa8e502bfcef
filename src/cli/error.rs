//! A command's failure: one line of text for people and a stable kind for
//! scripts. With `--json` a failing command prints
//! `{"error": <the text>, "kind": <the kind>, "exit_code": <n>}` on stdout, so
//! a script that parses stdout always gets JSON; the text also goes to stderr.

use std::fmt;
use std::process::ExitCode;

use serde::Serialize;

use autoenroll::ca::CaError;
use autoenroll::pulse::PulseError;

/// What went wrong, by where; the names are a stable interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// A command-line value is malformed (`--at`, `--now`, `--domain`, SDDL).
    Usage,
    /// The policy file or the CA's configuration cannot be read or is invalid.
    Config,
    /// A local prerequisite the configuration names is unusable (a password
    /// file, the policy's account).
    Setup,
    /// The directory cannot be reached or read.
    Directory,
    /// The local certificate store cannot be read or written.
    Store,
    /// The CA's own state (key, database, certificates) or its publication.
    Ca,
    /// The lab could not be started or stopped.
    Lab,
    /// Anything else (the async runtime, writing the output).
    Internal,
}

impl ErrorKind {
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Usage => "usage",
            ErrorKind::Config => "config",
            ErrorKind::Setup => "setup",
            ErrorKind::Directory => "directory",
            ErrorKind::Store => "store",
            ErrorKind::Ca => "ca",
            ErrorKind::Lab => "lab",
            ErrorKind::Internal => "internal",
        }
    }
}

#[derive(Debug)]
pub struct CliError {
    pub kind: ErrorKind,
    pub message: String,
}

impl CliError {
    pub fn new(kind: ErrorKind, message: impl fmt::Display) -> CliError {
        CliError {
            kind,
            message: message.to_string(),
        }
    }

    /// Every failure exits 1 (the README's table); `status` uses 2 to 5 for
    /// findings, never for errors.
    pub fn exit_code(&self) -> u8 {
        1
    }

    /// Prints the failure: one line on stderr, and with `json` the error
    /// object on stdout. Returns the exit code.
    pub fn report(&self, json: bool) -> ExitCode {
        use std::io::Write;
        // Printing may fail too (a closed pipe); the exit code still says it.
        let _ = writeln!(std::io::stderr(), "autoenroll: {}", self.message);
        if json {
            let object = serde_json::json!({
                "error": self.message,
                "kind": self.kind.name(),
                "exit_code": self.exit_code(),
            });
            let _ = writeln!(std::io::stdout(), "{object}");
        }
        ExitCode::from(self.exit_code())
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Shorthands for `map_err`.
pub fn usage(e: impl fmt::Display) -> CliError {
    CliError::new(ErrorKind::Usage, e)
}
pub fn config(e: impl fmt::Display) -> CliError {
    CliError::new(ErrorKind::Config, e)
}
pub fn setup(e: impl fmt::Display) -> CliError {
    CliError::new(ErrorKind::Setup, e)
}
pub fn directory(e: impl fmt::Display) -> CliError {
    CliError::new(ErrorKind::Directory, e)
}
pub fn store(e: impl fmt::Display) -> CliError {
    CliError::new(ErrorKind::Store, e)
}
pub fn lab(e: impl fmt::Display) -> CliError {
    CliError::new(ErrorKind::Lab, e)
}
pub fn internal(e: impl fmt::Display) -> CliError {
    CliError::new(ErrorKind::Internal, e)
}

impl From<CaError> for CliError {
    fn from(e: CaError) -> CliError {
        let kind = match &e {
            CaError::Config(_) => ErrorKind::Config,
            CaError::Directory(_) => ErrorKind::Directory,
            _ => ErrorKind::Ca,
        };
        CliError::new(kind, e)
    }
}

impl From<PulseError> for CliError {
    fn from(e: PulseError) -> CliError {
        let kind = match &e {
            PulseError::Directory(_) => ErrorKind::Directory,
            PulseError::Store(_) => ErrorKind::Store,
            _ => ErrorKind::Setup,
        };
        CliError::new(kind, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_from_the_library_errors() {
        let e: CliError = PulseError::Setup("password file".into()).into();
        assert_eq!(e.kind, ErrorKind::Setup);
        let e: CliError = CaError::State("key".into()).into();
        assert_eq!(e.kind, ErrorKind::Ca);
        assert_eq!(e.exit_code(), 1);
        assert_eq!(
            serde_json::to_value(ErrorKind::Directory).unwrap(),
            serde_json::json!(ErrorKind::Directory.name())
        );
    }
}
