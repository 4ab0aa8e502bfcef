//! What the local store holds, as plain data: the input the planner decides on
//! and what `status` shows.

use std::path::PathBuf;

use time::OffsetDateTime;

use crate::pki::CertificateInfo;

/// Whether a certificate's private key is on disk and belongs to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    /// `key.pem` holds the private key of the certificate's public key.
    Paired,
    /// No `key.pem`.
    Missing,
    /// `key.pem` holds another key (or one that cannot be read).
    Mismatch,
}

/// What the engine recorded when it installed a certificate (`meta.toml`).
/// Absent for certificates copied in by hand: the template is then read from
/// the certificate's own extensions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertificateMeta {
    /// Template cn at the time of enrollment.
    pub template: Option<String>,
    /// CA (enrollment service cn) that issued it.
    pub ca: Option<String>,
    /// The CA's request ID.
    pub request_id: Option<String>,
    pub installed_at: Option<OffsetDateTime>,
    /// The SCEP profile it was enrolled for (no template extension then).
    pub scep_profile: Option<String>,
    /// Ask for revocation when its profile leaves the policy.
    pub revoke_on_remove: bool,
}

/// A certificate in `my/` (the personal store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldCertificate {
    /// Parsed facts: thumbprint, serial, issuer, dates, template identity
    /// (None = foreign: never touched).
    pub info: CertificateInfo,
    pub key: KeyStatus,
    pub meta: CertificateMeta,
    /// The entry's folder.
    pub path: PathBuf,
}

/// The files of a held certificate, as [`crate::store::Store::held_files`]
/// reads them for a renewal. Its `Debug` leaves the key out.
#[derive(Clone, PartialEq, Eq)]
pub struct HeldFiles {
    /// The certificate, DER.
    pub certificate: Vec<u8>,
    /// `key.pem` as it is on disk (secret).
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for HeldFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldFiles")
            .field(
                "certificate",
                &format_args!("{} bytes", self.certificate.len()),
            )
            .field("key_pem", &"(not shown)")
            .finish()
    }
}

/// A request in `request/<id>/`: its key and request are on disk; either not
/// yet sent (a crash between writing and sending) or pending at the CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRequest {
    /// The local folder name.
    pub id: String,
    /// Template cn.
    pub template: String,
    /// The CA (enrollment service cn) it was sent to; None if never sent.
    pub ca: Option<String>,
    /// The CA's request ID once the CA answered "under submission".
    pub ca_request_id: Option<String>,
    pub created_at: OffsetDateTime,
    /// When the engine last asked the CA about it.
    pub last_poll: Option<OffsetDateTime>,
    /// Thumbprint of the certificate this request renews or replaces, if any.
    pub replaces: Option<String>,
    /// A SCEP request's profile (then `template` repeats it) and poll state.
    pub scep_profile: Option<String>,
    pub scep_state: Option<String>,
    pub path: PathBuf,
}

/// A file or folder of the store that could not be read. Reported, never deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unparseable {
    pub path: PathBuf,
    pub problem: String,
}

/// The whole store at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreSnapshot {
    pub certificates: Vec<HeldCertificate>,
    pub pending: Vec<PendingRequest>,
    pub unparseable: Vec<Unparseable>,
    /// Number of entries in `archive/`.
    pub archived: usize,
}

/// Failures of one template, for the backoff (kept in `state.toml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateFailures {
    pub template: String,
    /// Consecutive failures (reset by a success).
    pub count: u32,
    pub last_failure: OffsetDateTime,
    pub last_error: String,
}

/// The worker's memory between pulses (`state.toml`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    pub failures: Vec<TemplateFailures>,
    pub last_pulse: Option<OffsetDateTime>,
    pub last_pulse_ok: Option<bool>,
    /// Marker of the directory's last observed change (highest modifyTimestamp).
    pub directory_marker: Option<String>,
}

impl State {
    pub fn failures_of(&self, template: &str) -> Option<&TemplateFailures> {
        self.failures
            .iter()
            .find(|f| f.template.eq_ignore_ascii_case(template))
    }
}
