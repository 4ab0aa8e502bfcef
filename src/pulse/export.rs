//! After a certificate is installed: the per-template files services read
//! (stable paths, never the thumbprint folders), the post-install hook, and
//! the optional system trust anchors folder.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::events::Event;
use super::report::{Outcome, Report};
use crate::pki::CertificateInfo;
use crate::pki::keys::PrivateKey;
use crate::policy::Policy;
use crate::store::fsutil::{Fs, KEY_MODE};
use crate::store::pem::encode;

/// How long a post-install hook may run.
const HOOK_TIMEOUT: Duration = Duration::from_secs(120);

/// Writes the template's export files and runs its hook. Problems are
/// reported; none is fatal (the certificate is installed either way).
pub async fn after_install(
    policy: &Policy,
    template: &str,
    thumbprint: &str,
    chain: &[Vec<u8>],
    key: &PrivateKey,
    report: &mut Report,
) {
    let settings = policy.template(template);
    let mut paths: Vec<(&str, PathBuf)> = Vec::new();
    if let Some(export) = &settings.export {
        let fs = Fs::default();
        let pem_chain: String = chain.iter().map(|c| encode("CERTIFICATE", c)).collect();
        let files = [
            (
                "CERTIFICATE",
                export.certificate.as_ref(),
                chain.first().map(|c| encode("CERTIFICATE", c)),
                0o644,
            ),
            ("KEY", export.key.as_ref(), Some(key.to_pem()), KEY_MODE),
            ("CHAIN", export.chain.as_ref(), Some(pem_chain), 0o644),
        ];
        for (name, path, content, mode) in files {
            let (Some(path), Some(content)) = (path, content) else {
                continue;
            };
            if let Some(parent) = path.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            match fs.replace(path, content.as_bytes(), mode) {
                Ok(()) => paths.push((name, path.clone())),
                Err(e) => report.note(Outcome::new(
                    Event::HookFailed,
                    Some(template),
                    Some(thumbprint),
                    format!("cannot export to {}: {e}", path.display()),
                )),
            }
        }
        if !paths.is_empty() {
            report.note(Outcome::new(
                Event::Exported,
                Some(template),
                Some(thumbprint),
                paths
                    .iter()
                    .map(|(_, p)| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            ));
        }
    }
    if let Some(command) = &settings.post_install {
        let mut env = vec![
            ("AUTOENROLL_TEMPLATE".to_string(), template.to_string()),
            ("AUTOENROLL_THUMBPRINT".to_string(), thumbprint.to_string()),
            (
                "AUTOENROLL_CERTIFICATE_DIR".to_string(),
                policy
                    .store
                    .join("my")
                    .join(thumbprint)
                    .display()
                    .to_string(),
            ),
        ];
        for (name, path) in &paths {
            env.push((format!("AUTOENROLL_{name}"), path.display().to_string()));
        }
        if let Err(e) = run_hook(command, &env, HOOK_TIMEOUT).await {
            report.note(Outcome::new(
                Event::HookFailed,
                Some(template),
                Some(thumbprint),
                format!("post-install hook `{command}`: {e}"),
            ));
        }
    }
}

/// Runs `sh -c command` with the environment added; an exit status other
/// than 0, a signal or the timeout is an error with the command's stderr.
pub async fn run_hook(
    command: &str,
    env: &[(String, String)],
    timeout: Duration,
) -> Result<(), String> {
    let mut cmd = tokio::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(command)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().map_err(|e| format!("cannot start: {e}"))?;
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| format!("still running after {timeout:?}; killed"))?
        .map_err(|e| e.to_string())?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: String = stderr
        .trim()
        .chars()
        .rev()
        .take(400)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    Err(format!("{} {tail}", output.status))
}

/// Copies the directory's roots into a system anchors folder (for
/// `update-ca-certificates` or `update-ca-trust`), as
/// `autoenroll-<thumbprint>.crt`, removing ours that are no longer published.
/// A root that cannot be written or removed is reported as a failure, never
/// as done.
pub fn write_anchors(dir: &Path, roots: &[Vec<u8>], report: &mut Report) {
    let fs = Fs::default();
    if let Err(e) = std::fs::create_dir_all(dir) {
        report.note(Outcome::new(
            Event::Failed,
            None,
            None,
            format!("trust anchors {}: {e}", dir.display()),
        ));
        return;
    }
    let mut wanted = Vec::new();
    for der in roots {
        let Ok(info) = CertificateInfo::from_der(der) else {
            continue;
        };
        let name = anchor_name(&info.thumbprint);
        let path = dir.join(&name);
        if !path.exists() {
            match fs.replace(&path, encode("CERTIFICATE", der).as_bytes(), 0o644) {
                Ok(()) => report.note(Outcome::new(
                    Event::TrustUpdated,
                    None,
                    Some(&info.thumbprint),
                    format!("root {} written to {}", info.subject, path.display()),
                )),
                Err(e) => report.note(Outcome::new(
                    Event::Failed,
                    None,
                    Some(&info.thumbprint),
                    format!("trust anchor {}: {e}", path.display()),
                )),
            }
        }
        wanted.push(name);
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            return report.note(Outcome::new(
                Event::Failed,
                None,
                None,
                format!(
                    "trust anchors {}: cannot list it to remove roots no longer published: {e}",
                    dir.display()
                ),
            ));
        }
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !is_anchor_name(&name) || wanted.contains(&name) {
            continue;
        }
        // remove_file unlinks a link itself, never what it points to.
        report.note(match std::fs::remove_file(entry.path()) {
            Ok(()) => Outcome::new(
                Event::TrustUpdated,
                None,
                None,
                format!(
                    "root {name} no longer published; removed from {}",
                    dir.display()
                ),
            ),
            Err(e) => Outcome::new(
                Event::Failed,
                None,
                None,
                format!(
                    "root {name} is no longer published but cannot be removed from {}: {e}",
                    dir.display()
                ),
            ),
        });
    }
}

/// The file name of a root in the anchors folder.
fn anchor_name(thumbprint: &str) -> String {
    format!("autoenroll-{thumbprint}.crt")
}

/// Whether a file of the anchors folder is one of ours ([`anchor_name`]).
fn is_anchor_name(name: &str) -> bool {
    name.starts_with("autoenroll-") && name.ends_with(".crt")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planner::Plan;
    use time::macros::datetime;

    fn report() -> Report {
        Report::new("ws01$", datetime!(2026-05-01 12:00 UTC), &Plan::default())
    }

    /// The finding: a root that could not be removed was reported as
    /// removed. Here it cannot be (a folder by its name is in the way): the
    /// report says it failed, and the pulse is not ok.
    #[test]
    fn a_root_that_cannot_be_removed_is_not_reported_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("anchors");
        let stuck = dir.join(anchor_name(&"ab".repeat(20)));
        std::fs::create_dir_all(stuck.join("in-the-way")).unwrap();
        let gone = dir.join(anchor_name(&"cd".repeat(20)));
        std::fs::write(&gone, "old root\n").unwrap();
        std::fs::write(dir.join("someone-elses.crt"), "kept\n").unwrap();

        let mut report = report();
        write_anchors(&dir, &[], &mut report);

        let about = |name: &Path| {
            let name = name.file_name().unwrap().to_string_lossy().into_owned();
            report
                .outcomes
                .iter()
                .filter(move |o| o.message.contains(&name))
                .cloned()
                .collect::<Vec<_>>()
        };
        let stuck_outcomes = about(&stuck);
        assert_eq!(stuck_outcomes.len(), 1, "{:#?}", report.outcomes);
        assert_eq!(stuck_outcomes[0].event, Event::Failed);
        assert!(
            stuck_outcomes[0].message.contains("cannot be removed"),
            "{stuck_outcomes:?}"
        );
        assert!(!report.ok);
        let gone_outcomes = about(&gone);
        assert_eq!(gone_outcomes.len(), 1);
        assert_eq!(gone_outcomes[0].event, Event::TrustUpdated);
        assert!(!gone.exists());
        assert!(dir.join("someone-elses.crt").exists());
    }
}
