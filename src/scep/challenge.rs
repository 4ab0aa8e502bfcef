//! The challenge password of a SCEP request (RFC 8894 3.3.1: the PKCS#10
//! challengePassword attribute), obtained from the profile's source at the
//! moment it is needed. A challenge is a secret: it is held in a type whose
//! `Debug` and `Display` never show it, and no error names it.

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
    /// A fetched challenge (one-time from NDES's admin page, or dynamic from
    /// a validation service) that this build cannot fetch.
    #[error("the {kind} challenge from {url} cannot be fetched by this build")]
    NotAvailable { kind: &'static str, url: String },
}

/// The challenge for one request from `source`; `None` when the profile
/// sends none. The one call point of every challenge source.
pub fn obtain(source: &ChallengeSource) -> Result<Option<Challenge>, ChallengeError> {
    match source {
        ChallengeSource::None => Ok(None),
        ChallengeSource::File(path) => crate::policy::read_password_file(path)
            .map(|c| Some(Challenge(c)))
            .map_err(ChallengeError::File),
        // The one-time (NDES `mscep_admin`) and dynamic (validation
        // service) fetchers live in `scep::challenge_fetch`.
        ChallengeSource::NdesAdmin { url } => Err(ChallengeError::NotAvailable {
            kind: "one-time",
            url: url.clone(),
        }),
        ChallengeSource::Dynamic { url } => Err(ChallengeError::NotAvailable {
            kind: "dynamic",
            url: url.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn static_challenges_are_read_private_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wifi.challenge");
        std::fs::write(&file, "0123-secret\n").unwrap();
        let source = ChallengeSource::File(file.clone());
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = obtain(&source).unwrap_err().to_string();
        assert!(e.contains("chmod 600") && !e.contains("0123-secret"), "{e}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = obtain(&source).unwrap().unwrap();
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
        assert!(obtain(&ChallengeSource::File(fifo)).is_err());
        assert_eq!(obtain(&ChallengeSource::None).unwrap(), None);
    }

    #[test]
    fn fetched_challenges_say_what_is_missing() {
        let url = "https://ndes.corp.example/certsrv/mscep_admin/".to_string();
        let e = obtain(&ChallengeSource::NdesAdmin { url: url.clone() }).unwrap_err();
        assert!(e.to_string().contains("one-time") && e.to_string().contains(&url));
        let e = obtain(&ChallengeSource::Dynamic { url }).unwrap_err();
        assert!(e.to_string().contains("dynamic"), "{e}");
    }
}
