//! The health of what the store holds, for `autoenroll status`: one line per
//! held certificate, pending request and unreadable entry. It is computed by the
//! same evaluation as the plan, so `status` and `plan` never disagree.

use serde::Serialize;
use serde::ser::{SerializeStruct, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The state of one entry of the store, worst first in [`Health::severity`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Health {
    /// Valid and not yet due for renewal.
    Healthy,
    /// Due: the renewal time has passed, or a re-enrollment (superseded
    /// template, major version) is wanted.
    Due,
    /// Past its `notAfter`.
    Expired,
    /// On its issuer's CRL.
    Revoked,
    /// A request waiting at the CA (or never sent).
    Pending,
    /// Its template is no longer published, permitted, usable or present: it is
    /// kept until it expires and not renewed.
    Orphaned,
    /// Carries no template extension: not managed, never touched.
    Foreign,
    /// Its private key is missing or does not match the certificate.
    KeyMismatch,
    /// An entry of the store that could not be read.
    Unparseable,
}

impl Health {
    /// A stable name for scripts and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Due => "due",
            Health::Expired => "expired",
            Health::Revoked => "revoked",
            Health::Pending => "pending",
            Health::Orphaned => "orphaned",
            Health::Foreign => "foreign",
            Health::KeyMismatch => "key_mismatch",
            Health::Unparseable => "unparseable",
        }
    }

    /// How much attention it needs: 0 nothing (healthy, foreign), 1 wait
    /// (pending, due), 2 look at it (orphaned), 3 broken (expired, revoked, key
    /// mismatch, unparseable). `status` can take the worst as its exit code basis.
    pub fn severity(self) -> u8 {
        match self {
            Health::Healthy | Health::Foreign => 0,
            Health::Pending | Health::Due => 1,
            Health::Orphaned => 2,
            Health::Expired | Health::Revoked | Health::KeyMismatch | Health::Unparseable => 3,
        }
    }
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One line of `autoenroll status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateStatus {
    /// The certificate's thumbprint (None for pending requests and unreadable
    /// entries).
    pub thumbprint: Option<String>,
    /// Template cn (or the certificate's template name / OID when the directory
    /// no longer has it; None for foreign certificates and unreadable entries).
    pub template: Option<String>,
    pub health: Health,
    /// When it renews, if it renews.
    pub renew_at: Option<OffsetDateTime>,
    /// Local id of a pending request.
    pub request: Option<String>,
    /// What the planner thinks of it, for a person.
    pub detail: String,
}

impl Serialize for CertificateStatus {
    /// `{"thumbprint", "template", "health", "renew_at" (RFC 3339), "request", "detail"}`.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let renew_at = self
            .renew_at
            .map(|t| t.format(&Rfc3339).map_err(serde::ser::Error::custom))
            .transpose()?;
        let mut s = serializer.serialize_struct("CertificateStatus", 6)?;
        s.serialize_field("thumbprint", &self.thumbprint)?;
        s.serialize_field("template", &self.template)?;
        s.serialize_field("health", self.health.name())?;
        s.serialize_field("renew_at", &renew_at)?;
        s.serialize_field("request", &self.request)?;
        s.serialize_field("detail", &self.detail)?;
        s.end()
    }
}
