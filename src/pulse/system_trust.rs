//! Bringing the system's trust store up to date after the anchors folder
//! changed, as Samba's and adsys's Group Policy trust integration do: the
//! directory's roots are in the folder (`export::write_anchors`), and the
//! distribution's tool rebuilds the bundles applications read.
//!
//! - Debian, Ubuntu: `update-ca-certificates` reads
//!   `/usr/local/share/ca-certificates/*.crt` (update-ca-certificates(8));
//! - Fedora, RHEL: `update-ca-trust extract` reads
//!   `/etc/pki/ca-trust/source/anchors/` (update-ca-trust(8)).
//!
//! `trust_update = "auto"` runs the one this system has; any other value is
//! a command of the policy's, run with `sh -c` and
//! `AUTOENROLL_TRUST_ANCHORS_DIR` set.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::events::Event;
use super::report::{Outcome, Report};
use crate::policy::TrustUpdate;

/// How long the trust update may run.
const TIMEOUT: Duration = Duration::from_secs(120);

/// Where the distributions install their tools, in the order tried.
const TOOLS: [(&str, &[&str]); 6] = [
    ("/usr/sbin/update-ca-certificates", &[]),
    ("/sbin/update-ca-certificates", &[]),
    ("/usr/bin/update-ca-certificates", &[]),
    ("/usr/bin/update-ca-trust", &["extract"]),
    ("/usr/sbin/update-ca-trust", &["extract"]),
    ("/bin/update-ca-trust", &["extract"]),
];

/// The system's trust update command: the first tool of [`TOOLS`] that
/// `exists`, with its arguments. Pure: `exists` is the file-system probe.
pub fn system_tool(exists: impl Fn(&Path) -> bool) -> Option<(PathBuf, Vec<String>)> {
    TOOLS
        .iter()
        .find(|(path, _)| exists(Path::new(path)))
        .map(|(path, args)| {
            (
                PathBuf::from(path),
                args.iter().map(|a| a.to_string()).collect(),
            )
        })
}

/// Runs the update; its success or failure is reported (a failure is a
/// `hook_failed` event: not fatal, like a failed post-install hook).
pub async fn update(update: &TrustUpdate, anchors: &Path, report: &mut Report) {
    let command = match update {
        TrustUpdate::Command(c) => c.clone(),
        TrustUpdate::Auto => match system_tool(|p| p.is_file()) {
            Some((tool, args)) => {
                let mut words = vec![shell_quote(&tool.display().to_string())];
                words.extend(args);
                words.join(" ")
            }
            None => {
                return report.note(Outcome::new(
                    Event::HookFailed,
                    None,
                    None,
                    "trust update: neither update-ca-certificates nor update-ca-trust is \
                     installed; the roots are in the anchors folder but the system's bundles \
                     are not rebuilt"
                        .into(),
                ));
            }
        },
    };
    let env = [(
        "AUTOENROLL_TRUST_ANCHORS_DIR".to_string(),
        anchors.display().to_string(),
    )];
    report.note(
        match super::export::run_hook(&command, &env, TIMEOUT).await {
            Ok(()) => Outcome::new(
                Event::TrustUpdated,
                None,
                None,
                format!("system trust updated: `{command}` ran"),
            ),
            Err(e) => Outcome::new(
                Event::HookFailed,
                None,
                None,
                format!("trust update `{command}`: {e}"),
            ),
        },
    );
}

/// A word for `sh -c`, single-quoted.
fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tool_of_each_distribution() {
        /// The tool found and its arguments.
        type Found = Option<(&'static str, &'static [&'static str])>;
        let cases: &[(&[&str], Found)] = &[
            (
                &["/usr/sbin/update-ca-certificates"],
                Some(("/usr/sbin/update-ca-certificates", &[])),
            ),
            (
                &["/usr/bin/update-ca-trust"],
                Some(("/usr/bin/update-ca-trust", &["extract"])),
            ),
            // Both present: Debian's first.
            (
                &["/usr/bin/update-ca-trust", "/sbin/update-ca-certificates"],
                Some(("/sbin/update-ca-certificates", &[])),
            ),
            (&[], None),
            (&["/usr/local/bin/update-ca-certificates"], None),
        ];
        for (present, wanted) in cases {
            let found = system_tool(|p| present.iter().any(|q| Path::new(q) == p));
            let wanted = wanted.map(|(p, a)| {
                (
                    PathBuf::from(p),
                    a.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                )
            });
            assert_eq!(found, wanted, "{present:?}");
        }
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("/usr/sbin/x"), "'/usr/sbin/x'");
        assert_eq!(shell_quote("a'b"), "'a'\\''b'");
    }
}
