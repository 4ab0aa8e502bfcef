//! The challenge password of a SCEP request (RFC 8894 3.3.1: the PKCS#10
//! challengePassword attribute), obtained from the profile's source at the
//! moment it is needed. A challenge is a secret: it is held in a type whose
//! `Debug` and `Display` never show it, and no error names it.

use std::time::Duration;

use super::challenge_fetch::{self, Auth, Binding};
use super::profile::ChallengeSource;

/// A challenge password. Shown as `(challenge)` everywhere.
#[derive(Clone, PartialEq, Eq)]
pub struct Challenge(String);

impl Challenge {
    /// The password itself, for the request only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Challenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("(challenge)")
    }
}

/// Why no challenge could be had; never carries the challenge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    /// The static challenge file cannot be used (not 0600, a link, empty...).
    #[error("the challenge file: {0}")]
    File(String),
    /// A fetched challenge needs the host's credentials (a Kerberos or a
    /// simple bind), and the policy's bind has none (SASL EXTERNAL).
    #[error("the {kind} challenge from {url} needs the host's credentials, and this bind has none")]
    NoCredentials { kind: &'static str, url: String },
    /// The request's names could not be read back for a dynamic challenge.
    #[error("the request the dynamic challenge is bound to: {0}")]
    Binding(String),
    /// The challenge page or the dynamic challenge endpoint failed.
    #[error("the {kind} challenge: {source}")]
    Fetch {
        kind: &'static str,
        #[source]
        source: challenge_fetch::ChallengeError,
    },
}

/// What fetching a challenge needs from the pulse: the host's credentials
/// and the roots the challenge URL's TLS server may chain to.
pub struct FetchContext<'a> {
    pub auth: Option<Auth<'a>>,
    pub tls_roots: &'a [Vec<u8>],
    pub timeout: Duration,
}

/// The challenge for one request from `source`; `None` when the profile
/// sends none. The one call point of every challenge source. `binding`
/// reads back what the request will ask for (subject, DNS names, key
/// usage), which a dynamic challenge is bound to; it is called only then.
pub async fn obtain(
    source: &ChallengeSource,
    fetch: FetchContext<'_>,
    binding: impl FnOnce() -> Result<Binding, String>,
) -> Result<Option<Challenge>, ChallengeError> {
    match source {
        ChallengeSource::None => Ok(None),
        ChallengeSource::File(path) => crate::policy::read_password_file(path)
            .map(|c| Some(Challenge(c)))
            .map_err(ChallengeError::File),
        // NDES's `mscep_admin` page: one password, used once.
        ChallengeSource::NdesAdmin { url } => {
            let kind = "one-time";
            let auth = fetch.auth.ok_or_else(|| ChallengeError::NoCredentials {
                kind,
                url: url.clone(),
            })?;
            challenge_fetch::one_time(url, fetch.tls_roots, auth, fetch.timeout)
                .await
                .map(|c| Some(Challenge(c)))
                .map_err(|source| ChallengeError::Fetch { kind, source })
        }
        // A challenge sealed by the validation service for exactly this
        // request's names.
        ChallengeSource::Dynamic { url } => {
            let kind = "dynamic";
            let auth = fetch.auth.ok_or_else(|| ChallengeError::NoCredentials {
                kind,
                url: url.clone(),
            })?;
            let binding = binding().map_err(ChallengeError::Binding)?;
            challenge_fetch::dynamic(url, fetch.tls_roots, auth, &binding, fetch.timeout)
                .await
                .map(|c| Some(Challenge(c.challenge)))
                .map_err(|source| ChallengeError::Fetch { kind, source })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn fetch() -> FetchContext<'static> {
        FetchContext {
            auth: None,
            tls_roots: &[],
            timeout: Duration::from_secs(5),
        }
    }

    fn obtain_now(source: &ChallengeSource) -> Result<Option<Challenge>, ChallengeError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(obtain(source, fetch(), || Err("not asked".into())))
    }

    #[test]
    fn static_challenges_are_read_private_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wifi.challenge");
        std::fs::write(&file, "0123-secret\n").unwrap();
        let source = ChallengeSource::File(file.clone());
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = obtain_now(&source).unwrap_err().to_string();
        assert!(e.contains("chmod 600") && !e.contains("0123-secret"), "{e}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = obtain_now(&source).unwrap().unwrap();
        assert_eq!(c.expose(), "0123-secret");
        assert_eq!(format!("{c:?}"), "(challenge)");
        // A FIFO is refused, never read (it would block).
        let fifo = dir.path().join("fifo.challenge");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        assert!(obtain_now(&ChallengeSource::File(fifo)).is_err());
        assert_eq!(obtain_now(&ChallengeSource::None).unwrap(), None);
    }

    #[test]
    fn fetched_challenges_need_the_hosts_credentials() {
        let url = "https://ndes.corp.example/certsrv/mscep_admin/".to_string();
        let e = obtain_now(&ChallengeSource::NdesAdmin { url: url.clone() }).unwrap_err();
        assert!(e.to_string().contains("one-time") && e.to_string().contains(&url));
        let e = obtain_now(&ChallengeSource::Dynamic { url }).unwrap_err();
        assert!(e.to_string().contains("dynamic"), "{e}");
    }
}
