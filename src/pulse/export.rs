//! After a certificate is installed: the per-template files services read
//! (stable paths, never the thumbprint folders: PEM certificate, key and
//! chain, a PKCS#12 bundle, an NSS database), each with the owner, group and
//! mode the policy asks for; the post-install hook; and the optional system
//! trust anchors folder.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::events::Event;
use super::report::{Outcome, Report};
use crate::pki::CertificateInfo;
use crate::pki::keys::PrivateKey;
use crate::policy::{Export, ExportFile, Policy};
use crate::store::fsutil::Fs;
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
    let who = Installed::Template(template);
    run_after_install(
        policy,
        who,
        settings.export.as_ref(),
        settings.post_install.as_deref(),
        thumbprint,
        chain,
        key,
        report,
    )
    .await;
}

/// [`after_install`] for a SCEP profile's certificate (its
/// `[scep.<name>.export]` and `post_install`); the hook gets
/// `AUTOENROLL_SCEP_PROFILE` instead of `AUTOENROLL_TEMPLATE`.
pub async fn after_scep_install(
    policy: &Policy,
    profile: &crate::scep::profile::ScepProfile,
    thumbprint: &str,
    chain: &[Vec<u8>],
    key: &PrivateKey,
    report: &mut Report,
) {
    run_after_install(
        policy,
        Installed::Scep(&profile.name),
        profile.export.as_ref(),
        profile.post_install.as_deref(),
        thumbprint,
        chain,
        key,
        report,
    )
    .await;
}

/// Whose certificate was installed.
#[derive(Clone, Copy)]
enum Installed<'a> {
    Template(&'a str),
    Scep(&'a str),
}

impl Installed<'_> {
    fn name(self) -> &'static str {
        match self {
            Installed::Template(_) => "AUTOENROLL_TEMPLATE",
            Installed::Scep(_) => "AUTOENROLL_SCEP_PROFILE",
        }
    }

    fn value(self) -> String {
        match self {
            Installed::Template(n) | Installed::Scep(n) => n.to_string(),
        }
    }

    fn outcome(self, event: Event, thumbprint: &str, message: String) -> Outcome {
        match self {
            Installed::Template(t) => Outcome::new(event, Some(t), Some(thumbprint), message),
            Installed::Scep(p) => Outcome::scep(event, p, Some(thumbprint), message),
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_after_install(
    policy: &Policy,
    who: Installed<'_>,
    export: Option<&Export>,
    post_install: Option<&str>,
    thumbprint: &str,
    chain: &[Vec<u8>],
    key: &PrivateKey,
    report: &mut Report,
) {
    let template = who.value();
    let template = template.as_str();
    let mut paths: Vec<(&str, PathBuf)> = Vec::new();
    if let Some(export) = export {
        let failed = |report: &mut Report, message: String| {
            report.note(who.outcome(Event::HookFailed, thumbprint, message))
        };
        for (name, file, content) in contents(export, template, chain, key) {
            let written = content.and_then(|bytes| write_exported(file, &bytes));
            match written {
                Ok(()) => paths.push((name, file.path.clone())),
                Err(e) => failed(
                    report,
                    format!("cannot export to {}: {e}", file.path.display()),
                ),
            }
        }
        if let Some(nss) = &export.nss {
            let imported = match key.exportable_pem() {
                None => Err(on_token()),
                Some(_) => super::nss::import(nss, template, chain, key).await,
            };
            match imported {
                Ok(()) => paths.push(("NSS_DB", nss.db.clone())),
                Err(e) => failed(
                    report,
                    format!(
                        "cannot export to the NSS database {}: {e}",
                        nss.db.display()
                    ),
                ),
            }
        }
        if !paths.is_empty() {
            report.note(
                who.outcome(
                    Event::Exported,
                    thumbprint,
                    paths
                        .iter()
                        .map(|(_, p)| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
            );
        }
    }
    if let Some(command) = post_install {
        let mut env = vec![
            (who.name().to_string(), template.to_string()),
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
            report.note(who.outcome(
                Event::HookFailed,
                thumbprint,
                format!("post-install hook `{command}`: {e}"),
            ));
        }
    }
}

/// Why a key cannot be exported: it lives on a token.
fn on_token() -> String {
    "the private key lives on a PKCS#11 token and never leaves it".into()
}

/// An exported file's variable name, the file, and its bytes or why none.
type Content<'e> = (&'static str, &'e ExportFile, Result<Vec<u8>, String>);

/// Each file the export asks for, with its bytes (or why there are none):
/// the hook's variable name (`AUTOENROLL_<name>`), the file, the bytes.
fn contents<'e>(
    export: &'e Export,
    template: &str,
    chain: &[Vec<u8>],
    key: &PrivateKey,
) -> Vec<Content<'e>> {
    let pem_chain: String = chain.iter().map(|c| encode("CERTIFICATE", c)).collect();
    let certificate = chain
        .first()
        .map(|c| encode("CERTIFICATE", c).into_bytes())
        .ok_or_else(|| "no certificate".to_string());
    let key_pem = key
        .exportable_pem()
        .map(String::into_bytes)
        .ok_or_else(on_token);
    let pkcs12 = || -> Result<Vec<u8>, String> {
        key.exportable_pem().ok_or_else(on_token)?;
        let password = match &export.pkcs12_password_file {
            Some(file) => crate::policy::read_password_file(file)?,
            None => String::new(),
        };
        crate::pki::pkcs12::bundle(key.pkcs8_der(), chain, &password, template)
            .map_err(|e| e.to_string())
    };
    let mut out = Vec::new();
    if let Some(f) = &export.certificate {
        out.push(("CERTIFICATE", f, certificate));
    }
    if let Some(f) = &export.key {
        out.push(("KEY", f, key_pem));
    }
    if let Some(f) = &export.chain {
        out.push(("CHAIN", f, Ok(pem_chain.into_bytes())));
    }
    if let Some(f) = &export.pkcs12 {
        out.push(("PKCS12", f, pkcs12()));
    }
    out
}

/// A user or group given by name or number.
pub(crate) fn resolve_ids(
    owner: Option<&str>,
    group: Option<&str>,
) -> Result<(Option<nix::unistd::Uid>, Option<nix::unistd::Gid>), String> {
    use nix::unistd::{Gid, Group, Uid, User};
    let uid = match owner {
        None => None,
        Some(o) => Some(match o.parse::<u32>() {
            Ok(n) => Uid::from_raw(n),
            Err(_) => {
                User::from_name(o)
                    .map_err(|e| format!("owner {o:?}: {e}"))?
                    .ok_or_else(|| format!("owner {o:?}: no such user"))?
                    .uid
            }
        }),
    };
    let gid = match group {
        None => None,
        Some(g) => Some(match g.parse::<u32>() {
            Ok(n) => Gid::from_raw(n),
            Err(_) => {
                Group::from_name(g)
                    .map_err(|e| format!("group {g:?}: {e}"))?
                    .ok_or_else(|| format!("group {g:?}: no such group"))?
                    .gid
            }
        }),
    };
    Ok((uid, gid))
}

/// Replaces an exported file atomically, owner, group and mode included:
/// a temporary file in the same folder is written (created 0600, never
/// through a link), given its owner, group and mode on the descriptor,
/// synced, renamed over the file, and the folder synced. A service reading
/// the path sees the old file or the new one, each with its ownership,
/// never a file in between. A temporary file that could not be completed
/// is removed.
pub fn write_exported(file: &ExportFile, bytes: &[u8]) -> Result<(), String> {
    use nix::libc;
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let (uid, gid) = resolve_ids(file.owner.as_deref(), file.group.as_deref())?;
    let path = &file.path;
    let name = path
        .file_name()
        .ok_or_else(|| "not a file path".to_string())?
        .to_string_lossy()
        .into_owned();
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let mut nonce = [0u8; 6];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| "no random bytes".to_string())?;
    let tmp = dir.join(format!(
        ".{name}.tmp-{}",
        nonce.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ));
    let result = (|| -> Result<(), String> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
            .map_err(|e| format!("creating {}: {e}", tmp.display()))?;
        f.write_all(bytes).map_err(|e| format!("writing: {e}"))?;
        if uid.is_some() || gid.is_some() {
            std::os::unix::fs::fchown(&f, uid.map(|u| u.as_raw()), gid.map(|g| g.as_raw()))
                .map_err(|e| {
                    format!(
                        "giving it to owner {} group {}: {e}",
                        file.owner.as_deref().unwrap_or("(unchanged)"),
                        file.group.as_deref().unwrap_or("(unchanged)")
                    )
                })?;
        }
        // After chown (which clears set-id bits), whatever the umask: fchmod.
        f.set_permissions(std::fs::Permissions::from_mode(file.mode))
            .map_err(|e| format!("mode {:04o}: {e}", file.mode))?;
        f.sync_all().map_err(|e| format!("sync: {e}"))?;
        std::fs::rename(&tmp, path).map_err(|e| format!("rename into place: {e}"))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return result;
    }
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("sync {}: {e}", dir.display()))
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
/// as done. Returns whether the folder changed (a root written or removed),
/// which is when the system's trust store must be brought up to date.
pub fn write_anchors(dir: &Path, roots: &[Vec<u8>], report: &mut Report) -> bool {
    let fs = Fs::default();
    let mut changed = false;
    if let Err(e) = std::fs::create_dir_all(dir) {
        report.note(Outcome::new(
            Event::Failed,
            None,
            None,
            format!("trust anchors {}: {e}", dir.display()),
        ));
        return false;
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
                Ok(()) => {
                    changed = true;
                    report.note(Outcome::new(
                        Event::TrustUpdated,
                        None,
                        Some(&info.thumbprint),
                        format!("root {} written to {}", info.subject, path.display()),
                    ))
                }
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
            report.note(Outcome::new(
                Event::Failed,
                None,
                None,
                format!(
                    "trust anchors {}: cannot list it to remove roots no longer published: {e}",
                    dir.display()
                ),
            ));
            return changed;
        }
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !is_anchor_name(&name) || wanted.contains(&name) {
            continue;
        }
        // remove_file unlinks a link itself, never what it points to.
        report.note(match std::fs::remove_file(entry.path()) {
            Ok(()) => {
                changed = true;
                Outcome::new(
                    Event::TrustUpdated,
                    None,
                    None,
                    format!(
                        "root {name} no longer published; removed from {}",
                        dir.display()
                    ),
                )
            }
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
    changed
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
