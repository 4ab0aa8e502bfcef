//! The NSS database export (browsers, and anything else that reads a
//! `sql:` NSS database such as `~/.pki/nssdb`), through NSS's own tools
//! (Debian's `libnss3-tools`): `certutil` creates the database and removes
//! the previous certificate, `pk12util` imports the new one with its key from
//! a PKCS#12 bundle made for the purpose.
//!
//! NSS keeps one nickname per subject, so a renewed certificate (same
//! subject) would join the old one under the same nickname: the old
//! certificates and keys under the nickname are deleted first
//! (`certutil -F`), then the new pair is imported and checked to be there.
//! The database is changed by NSS itself (SQLite transactions); between
//! the deletion and the import it briefly holds no certificate of the
//! template. The database must have an empty password (as browsers make it
//! by default).

use std::path::Path;
use std::time::Duration;

use crate::pki::keys::PrivateKey;
use crate::policy::NssExport;

/// How long one NSS tool may run.
const TIMEOUT: Duration = Duration::from_secs(60);
/// At most this many old certificates are deleted under the nickname.
const MAX_DELETIONS: usize = 32;

/// Imports the certificate (with its chain) and key into the database.
pub(super) async fn import(
    nss: &NssExport,
    template: &str,
    chain: &[Vec<u8>],
    key: &PrivateKey,
) -> Result<(), String> {
    let nickname = nss.nickname.as_deref().unwrap_or(template);
    let leaf = chain.first().ok_or("no certificate")?;
    let db_arg = format!("sql:{}", nss.db.display());
    if !nss.db.join("cert9.db").exists() {
        create(&nss.db, &db_arg).await?;
    }
    // The bundle: in the database's folder (as private as the database),
    // 0600, with a one-time password, removed whatever happens.
    let mut secret = [0u8; 16];
    aws_lc_rs::rand::fill(&mut secret).map_err(|_| "no random bytes")?;
    let password: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let bundle = crate::pki::pkcs12::bundle(key.pkcs8_der(), chain, &password, nickname)
        .map_err(|e| e.to_string())?;
    let bundle_path = nss
        .db
        .join(format!(".autoenroll-import-{}.p12", &password[..8]));
    let password_path = nss
        .db
        .join(format!(".autoenroll-import-{}.pw", &password[..8]));
    let result = async {
        write_private(&bundle_path, &bundle)?;
        write_private(&password_path, format!("{password}\n").as_bytes())?;
        let empty_path = nss
            .db
            .join(format!(".autoenroll-import-{}.empty", &password[..8]));
        write_private(&empty_path, b"\n")?;
        let imported = async {
            for _ in 0..MAX_DELETIONS {
                if tool("certutil", &["-F", "-d", &db_arg, "-n", nickname])
                    .await
                    .is_err()
                    && tool("certutil", &["-D", "-d", &db_arg, "-n", nickname])
                        .await
                        .is_err()
                {
                    break;
                }
            }
            tool(
                "pk12util",
                &[
                    "-i",
                    &bundle_path.display().to_string(),
                    "-d",
                    &db_arg,
                    "-w",
                    &password_path.display().to_string(),
                    "-k",
                    &empty_path.display().to_string(),
                ],
            )
            .await
        }
        .await;
        let _ = std::fs::remove_file(&empty_path);
        imported
    }
    .await;
    let _ = std::fs::remove_file(&bundle_path);
    let _ = std::fs::remove_file(&password_path);
    result?;
    // pk12util names the certificate by a bag's friendlyName: ours, or the
    // subject's text. Renamed to the nickname when it is not that already.
    if found(&db_arg, nickname).await.as_deref() != Some(leaf.as_slice()) {
        let subject = p12_keystore::Certificate::from_der(leaf)
            .map(|c| c.subject().to_string())
            .unwrap_or_default();
        if found(&db_arg, &subject).await.as_deref() == Some(leaf.as_slice()) {
            tool(
                "certutil",
                &[
                    "--rename", "-d", &db_arg, "-n", &subject, "--new-n", nickname,
                ],
            )
            .await?;
        }
    }
    if found(&db_arg, nickname).await.as_deref() != Some(leaf.as_slice()) {
        return Err(format!(
            "pk12util imported the bundle but {nickname:?} is not the new certificate"
        ));
    }
    give(nss)?;
    Ok(())
}

/// A new, empty-password `sql:` database in `dir` (created 0700).
async fn create(dir: &Path, db_arg: &str) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("creating {}: {e}", dir.display()))?;
    tool("certutil", &["-N", "-d", db_arg, "--empty-password"])
        .await
        .map(|_| ())
}

/// The DER of the certificate the database holds under `nickname`.
async fn found(db_arg: &str, nickname: &str) -> Option<Vec<u8>> {
    if nickname.is_empty() {
        return None;
    }
    tool("certutil", &["-L", "-d", db_arg, "-n", nickname, "-r"])
        .await
        .ok()
}

/// The database's files (and folder) to the export's owner and group.
fn give(nss: &NssExport) -> Result<(), String> {
    if nss.owner.is_none() && nss.group.is_none() {
        return Ok(());
    }
    let (uid, gid) = super::export::resolve_ids(nss.owner.as_deref(), nss.group.as_deref())?;
    let (uid, gid) = (uid.map(|u| u.as_raw()), gid.map(|g| g.as_raw()));
    let mut paths = vec![nss.db.clone()];
    for name in ["cert9.db", "key4.db", "pkcs11.txt"] {
        paths.push(nss.db.join(name));
    }
    for path in paths.iter().filter(|p| p.exists()) {
        std::os::unix::fs::lchown(path, uid, gid)
            .map_err(|e| format!("giving {} away: {e}", path.display()))?;
    }
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Runs an NSS tool; its stdout, or an error with its stderr.
async fn tool(program: &str, args: &[&str]) -> Result<Vec<u8>, String> {
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e} (NSS's tools: Debian's libnss3-tools)"))?;
    let output = tokio::time::timeout(TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| format!("{program} still running after {TIMEOUT:?}; killed"))?
        .map_err(|e| format!("{program}: {e}"))?;
    if output.status.success() {
        Ok(output.stdout)
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        Err(format!(
            "{program} {}: {} {}",
            args.first().unwrap_or(&""),
            output.status,
            format!("{} {}", stdout.trim(), stderr.trim()).trim()
        ))
    }
}

/// Deletes what the database holds under the export's nickname (the
/// certificates and their keys), as `unenroll` does.
pub(super) async fn remove(nss: &NssExport, template: &str) -> Result<bool, String> {
    let nickname = nss.nickname.as_deref().unwrap_or(template);
    let db_arg = format!("sql:{}", nss.db.display());
    if !nss.db.join("cert9.db").exists() || found(&db_arg, nickname).await.is_none() {
        return Ok(false);
    }
    for _ in 0..MAX_DELETIONS {
        if tool("certutil", &["-F", "-d", &db_arg, "-n", nickname])
            .await
            .is_err()
            && tool("certutil", &["-D", "-d", &db_arg, "-n", nickname])
                .await
                .is_err()
        {
            break;
        }
    }
    match found(&db_arg, nickname).await {
        None => Ok(true),
        Some(_) => Err(format!("{nickname:?} is still in {}", nss.db.display())),
    }
}
