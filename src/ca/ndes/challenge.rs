//! Challenge passwords: the one-time passwords of the `mscep_admin` page
//! (NDES's default: single use, 60 minutes, at most `PasswordMax` unused at
//! once), and the bookkeeping both kinds share. Only a challenge's SHA-256
//! is stored; using one marks it with the SCEP transaction that used it, so
//! a client that resends the same transaction is not refused as a reuse.

use aws_lc_rs::digest;
use time::OffsetDateTime;

use crate::ca::db::{Database, DbError};

/// The outcome of checking a challenge, with its stable diagnostic code
/// (the README lists them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Diagnostic {
    Verified,
    /// The request carries no challengePassword.
    Missing,
    /// A one-time password this CA never handed out.
    Unknown,
    /// Signature or sealing of a dynamic challenge does not verify.
    Forged,
    Expired,
    /// Already used by another transaction.
    Reused,
    SubjectMismatch,
    SanMismatch,
    KeyUsageMismatch,
}

impl Diagnostic {
    pub fn code(self) -> &'static str {
        match self {
            Diagnostic::Verified => "0x00000000",
            Diagnostic::Missing => "0x00000401",
            Diagnostic::Unknown => "0x00000402",
            Diagnostic::Forged => "0x00000403",
            Diagnostic::Expired => "0x00000404",
            Diagnostic::Reused => "0x00000405",
            Diagnostic::SubjectMismatch => "0x00000406",
            Diagnostic::SanMismatch => "0x00000407",
            Diagnostic::KeyUsageMismatch => "0x00000408",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Diagnostic::Verified => "the challenge is valid",
            Diagnostic::Missing => "the request carries no challenge password",
            Diagnostic::Unknown => "the challenge password is not one this service issued",
            Diagnostic::Forged => "the challenge's signature or sealing does not verify",
            Diagnostic::Expired => "the challenge has expired",
            Diagnostic::Reused => "the challenge was already used",
            Diagnostic::SubjectMismatch => {
                "the request's subject is not the one the challenge is for"
            }
            Diagnostic::SanMismatch => {
                "the request's subject alternative names are not those the challenge is for"
            }
            Diagnostic::KeyUsageMismatch => {
                "the request's key usage is not the one the challenge is for"
            }
        }
    }
}

/// What the database holds about a challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub expires_at: i64,
    /// The transaction that used it, if it was used.
    pub used_by: Option<String>,
}

/// The pure check of a stored challenge's state: unknown, expired, used by
/// another transaction, or fine. A resend of the transaction that used it
/// is fine (the answer to the first may have been lost).
pub fn judge_stored(stored: Option<&Stored>, transaction_id: &str, now: i64) -> Diagnostic {
    match stored {
        None => Diagnostic::Unknown,
        Some(s) if s.used_by.as_deref().is_some_and(|t| t != transaction_id) => Diagnostic::Reused,
        Some(s) if s.used_by.is_none() && now >= s.expires_at => Diagnostic::Expired,
        Some(_) => Diagnostic::Verified,
    }
}

/// The stored form of a challenge.
pub fn hash(challenge: &str) -> String {
    digest::digest(&digest::SHA256, challenge.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new one-time password: 16 upper-case hex digits (8 random bytes), the
/// form NDES hands out.
pub fn new_password() -> Result<String, String> {
    let mut bytes = [0u8; 8];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| "no randomness".to_string())?;
    Ok(bytes.iter().map(|b| format!("{b:02X}")).collect())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    OneTime,
    Dynamic,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::OneTime => "one-time",
            Kind::Dynamic => "dynamic",
        }
    }
}

/// Stores a new challenge unless `max_unused` unused, unexpired one-time
/// challenges are held already (`Ok(false)`: the password cache is full).
pub fn store(
    db: &Database,
    challenge: &str,
    kind: Kind,
    issued_to: &str,
    now: OffsetDateTime,
    expires: OffsetDateTime,
    max_unused: Option<u32>,
) -> Result<bool, DbError> {
    db.write_other("storing a challenge", |c| {
        if let Some(max) = max_unused {
            let held: i64 = c.query_row(
                "SELECT count(*) FROM ndes_challenges
                 WHERE kind = 'one-time' AND used_at IS NULL AND expires_at > ?1",
                [now.unix_timestamp()],
                |r| r.get(0),
            )?;
            if held >= i64::from(max) {
                return Ok(false);
            }
        }
        c.execute(
            "INSERT INTO ndes_challenges (hash, kind, issued_to, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![
                hash(challenge),
                kind.name(),
                issued_to,
                now.unix_timestamp(),
                expires.unix_timestamp()
            ],
        )?;
        Ok(true)
    })
}

/// Checks `challenge` for `transaction_id` and, when it is valid, marks it
/// used by that transaction, in one transaction (two requests cannot both
/// use it). `judge` decides from what is stored.
pub fn consume(
    db: &Database,
    challenge: &str,
    kind: Kind,
    transaction_id: &str,
    now: OffsetDateTime,
) -> Result<Diagnostic, DbError> {
    let h = hash(challenge);
    db.write_other("using a challenge", |c| {
        use rusqlite::OptionalExtension;
        let stored = c
            .query_row(
                "SELECT expires_at, used_by FROM ndes_challenges WHERE hash = ?1 AND kind = ?2",
                rusqlite::params![h, kind.name()],
                |r| {
                    Ok(Stored {
                        expires_at: r.get(0)?,
                        used_by: r.get(1)?,
                    })
                },
            )
            .optional()?;
        let verdict = judge_stored(stored.as_ref(), transaction_id, now.unix_timestamp());
        if verdict == Diagnostic::Verified && stored.is_some_and(|s| s.used_by.is_none()) {
            c.execute(
                "UPDATE ndes_challenges SET used_at = ?1, used_by = ?2 WHERE hash = ?3",
                rusqlite::params![now.unix_timestamp(), transaction_id, h],
            )?;
        }
        Ok(verdict)
    })
}

/// The admin page with a password, in the words and markup of NDES's.
pub fn page_with_password(ca_thumbprint: &str, password: &str, minutes: u64) -> String {
    page(&format!(
        "<P> To complete certificate enrollment for your network device you will need the following information:\r\n\
         <P> The thumbprint (hash value) for the CA certificate is: <B> {thumb} </B>\r\n\
         <P> The enrollment challenge password is: <B> {password} </B>\r\n\
         <P> This password can be used only once and will expire within {minutes} minutes.\r\n\
         <P> Each enrollment requires a new challenge password. You can refresh this web page to obtain a new challenge password.\r\n",
        thumb = ca_thumbprint.to_ascii_uppercase(),
    ))
}

/// The admin page when `PasswordMax` unused passwords are held.
pub fn page_cache_full() -> String {
    page(
        "<P> The password cache is full.\r\n\
          <P> This can occur when the password cache has reached its maximum size. Use one of the passwords already issued, or wait for them to expire.\r\n",
    )
}

/// The admin page for an account that may not have passwords.
pub fn page_no_permission() -> String {
    page(
        "<P> You do not have sufficient permission to enroll with SCEP. Please contact your system administrator.\r\n",
    )
}

fn page(body: &str) -> String {
    format!(
        "<HTML><Head><Meta HTTP-Equiv=\"Content-Type\" Content=\"text/html; charset=UTF-16\">\r\n\
         <Title>Network Device Enrollment Service</Title></Head>\r\n\
         <Body BgColor=#FFFFFF><Font ID=locPageFont Face=\"Arial\">\r\n\
         <P ID=locPageTitle> <B> Network Device Enrollment Service</B>\r\n\
         <P> Network Device Enrollment Service allows you to obtain certificates for routers or other network devices using the Simple Certificate Enrollment Protocol (SCEP).\r\n\
         {body}\
         </Font></Body></HTML>\r\n"
    )
}

/// UTF-16LE with a byte order mark, as NDES serves its pages.
pub fn utf16le(text: &str) -> Vec<u8> {
    let mut out = vec![0xFF, 0xFE];
    for unit in text.encode_utf16() {
        out.extend_from_slice(&unit.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_challenges_are_judged() {
        let fresh = Stored {
            expires_at: 100,
            used_by: None,
        };
        let used = Stored {
            expires_at: 100,
            used_by: Some("T1".into()),
        };
        let cases: &[(Option<&Stored>, &str, i64, Diagnostic)] = &[
            (None, "T1", 10, Diagnostic::Unknown),
            (Some(&fresh), "T1", 10, Diagnostic::Verified),
            (Some(&fresh), "T1", 99, Diagnostic::Verified),
            (Some(&fresh), "T1", 100, Diagnostic::Expired),
            (Some(&used), "T2", 10, Diagnostic::Reused),
            // Reuse is reported before expiry: it is the graver finding.
            (Some(&used), "T2", 500, Diagnostic::Reused),
            // The same transaction again is a resend.
            (Some(&used), "T1", 10, Diagnostic::Verified),
            (Some(&used), "T1", 500, Diagnostic::Verified),
        ];
        for (stored, tx, now, want) in cases {
            assert_eq!(
                judge_stored(*stored, tx, *now),
                *want,
                "{stored:?} {tx} {now}"
            );
        }
    }

    #[test]
    fn passwords_are_sixteen_hex_digits_and_hashed() {
        let p = new_password().unwrap();
        assert_eq!(p.len(), 16);
        assert!(p.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(p, new_password().unwrap());
        assert_eq!(hash(&p).len(), 64);
        assert!(!hash(&p).contains(&p));
    }

    #[test]
    fn the_page_reads_as_ndes_pages_do() {
        let page = page_with_password("ab12", "0123456789ABCDEF", 60);
        assert!(page.contains("The enrollment challenge password is: <B> 0123456789ABCDEF </B>"));
        assert!(page.contains("expire within 60 minutes"));
        let bytes = utf16le(&page);
        assert_eq!(&bytes[..2], &[0xFF, 0xFE]);
    }
}
