//! Which published templates an account may autoenroll, and why not
//! (adcs.md section 5; [MS-CRTD] 3.1 and the autoenrollment client behaviour).
//!
//! A pure function of a directory snapshot, the context and `now`. The rules are
//! checked in a fixed order and the first that fails is the reason reported:
//! template-intrinsic rules first (published, context, CA, schema, subject,
//! signatures, interaction, client version, autoenroll flag), then the rights
//! of the token, then the account's published certificates, and last
//! supersedence, which depends on the verdicts of the other templates.

use time::OffsetDateTime;

use super::access::{AccessDecision, Right, check_right};
use super::snapshot::{DirectorySnapshot, TemplateEntry};
use crate::model::{Context, EnrollmentFlags, GeneralFlags, NameFlags, SkipReason, Template};
use crate::pki::CertificateInfo;

/// The highest client version (`msPKI-Private-Key-Flag` bits 24-27) this engine
/// implements: 6, the Windows 10 / Server 2016 level.
pub const SUPPORTED_CLIENT_VERSION: u32 = 6;

/// The decision for one template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub cn: String,
    /// None when eligible.
    pub reason: Option<SkipReason>,
    /// cn's of the enrollment services that publish it.
    pub published_by: Vec<String>,
    /// Eligible, but a new enrollment needs one enrollment-agent signature, so
    /// only a renewal signed by a held certificate can satisfy it.
    pub renewal_only: bool,
}

impl Verdict {
    pub fn is_eligible(&self) -> bool {
        self.reason.is_none()
    }
}

/// What the local policy adds to the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub context: Context,
    /// USER_INTERACTION_REQUIRED templates are allowed (user context only).
    pub allow_prompts: bool,
}

/// Judges every template of the snapshot, unusable ones included, sorted by cn.
pub fn judge(snapshot: &DirectorySnapshot, options: Options, now: OffsetDateTime) -> Vec<Verdict> {
    let mut verdicts: Vec<Verdict> = snapshot
        .templates
        .iter()
        .map(|t| judge_one(snapshot, t, options, now))
        .collect();
    // Supersedence: a template listed in an eligible template's
    // msPKI-Supersede-Templates is replaced by it ([MS-CRTD] 2.21).
    let superseded: Vec<(String, String)> = snapshot
        .templates
        .iter()
        .zip(&verdicts)
        .filter(|(_, v)| v.is_eligible())
        .flat_map(|(t, _)| {
            t.template
                .supersedes
                .iter()
                .filter(|s| !s.eq_ignore_ascii_case(&t.template.cn))
                .map(|s| (s.clone(), t.template.cn.clone()))
        })
        .collect();
    for v in verdicts.iter_mut().filter(|v| v.is_eligible()) {
        if let Some((_, by)) = superseded
            .iter()
            .find(|(s, _)| s.eq_ignore_ascii_case(&v.cn))
        {
            v.reason = Some(SkipReason::SupersededBy(by.clone()));
        }
    }
    verdicts.extend(snapshot.unusable.iter().map(|u| Verdict {
        cn: u.cn.clone().unwrap_or_else(|| u.dn.clone()),
        reason: Some(SkipReason::Unusable {
            dn: u.dn.clone(),
            problem: u.problem.clone(),
        }),
        published_by: publishers(snapshot, u.cn.as_deref().unwrap_or("")),
        renewal_only: false,
    }));
    verdicts.sort_by(|a, b| a.cn.cmp(&b.cn));
    verdicts
}

fn publishers(snapshot: &DirectorySnapshot, cn: &str) -> Vec<String> {
    snapshot
        .services
        .iter()
        .filter(|s| s.publishes(cn))
        .map(|s| s.cn.clone())
        .collect()
}

fn judge_one(
    snapshot: &DirectorySnapshot,
    entry: &TemplateEntry,
    options: Options,
    now: OffsetDateTime,
) -> Verdict {
    let t = &entry.template;
    let published_by = publishers(snapshot, &t.cn);
    let reason = intrinsic_reason(t, !published_by.is_empty(), options)
        .or_else(|| rights_reason(snapshot, entry))
        .or_else(|| directory_certificate_reason(snapshot, t, now));
    Verdict {
        cn: t.cn.clone(),
        renewal_only: reason.is_none() && t.ra_signatures == 1,
        reason,
        published_by,
    }
}

/// Rules 1-4 and 6-9 of adcs.md section 5: what the template itself says.
pub fn intrinsic_reason(t: &Template, published: bool, options: Options) -> Option<SkipReason> {
    let template_context = if t.is_machine() {
        Context::Machine
    } else {
        Context::User
    };
    let e = t.enrollment_flags;
    if !published {
        Some(SkipReason::NotPublished)
    } else if template_context != options.context {
        Some(SkipReason::WrongContext {
            template: template_context,
            running: options.context,
        })
    } else if t
        .flags
        .intersects(GeneralFlags::IS_CA | GeneralFlags::IS_CROSS_CA)
    {
        Some(SkipReason::CaTemplate)
    } else if t.schema_version < 2 {
        Some(SkipReason::SchemaVersion1)
    } else if t.name_flags.contains(NameFlags::ENROLLEE_SUPPLIES_SUBJECT) {
        Some(SkipReason::SubjectSuppliedInRequest)
    } else if t
        .name_flags
        .contains(NameFlags::ENROLLEE_SUPPLIES_SUBJECT_ALT_NAME)
    {
        Some(SkipReason::SubjectAltNameSuppliedInRequest)
    } else if t.ra_signatures > 1 {
        Some(SkipReason::NeedsAgentSignatures(t.ra_signatures))
    } else if e.contains(EnrollmentFlags::USER_INTERACTION_REQUIRED)
        && (options.context == Context::Machine || !options.allow_prompts)
    {
        Some(SkipReason::NeedsInteraction)
    } else if t.private_key_flags.client_version() > SUPPORTED_CLIENT_VERSION {
        Some(SkipReason::ClientVersion {
            required: t.private_key_flags.client_version(),
            supported: SUPPORTED_CLIENT_VERSION,
        })
    } else if !e.contains(EnrollmentFlags::AUTO_ENROLLMENT) {
        Some(SkipReason::NotAutoenrollTemplate)
    } else {
        None
    }
}

/// Rule 5: the token needs both Enroll and AutoEnroll ([MS-CRTD] 4.1.2.1).
fn rights_reason(snapshot: &DirectorySnapshot, entry: &TemplateEntry) -> Option<SkipReason> {
    for right in [Right::Enroll, Right::AutoEnroll] {
        let name = match right {
            Right::Enroll => "Enroll",
            Right::AutoEnroll => "AutoEnroll",
        };
        match check_right(&entry.security, &snapshot.account.token, right) {
            AccessDecision::Allowed { .. } | AccessDecision::NoDacl => {}
            AccessDecision::NotGranted => return Some(SkipReason::RightNotGranted { right: name }),
            AccessDecision::Denied { sid, .. } => {
                return Some(SkipReason::RightDenied {
                    right: name,
                    principal: snapshot.describe_sid(&sid),
                });
            }
        }
    }
    None
}

/// Rule 10: AUTO_ENROLLMENT_CHECK_USER_DS_CERTIFICATE skips a template whose
/// valid certificate is already in the account's `userCertificate`.
fn directory_certificate_reason(
    snapshot: &DirectorySnapshot,
    t: &Template,
    now: OffsetDateTime,
) -> Option<SkipReason> {
    if !t
        .enrollment_flags
        .contains(EnrollmentFlags::AUTO_ENROLLMENT_CHECK_USER_DS_CERTIFICATE)
    {
        return None;
    }
    let held = snapshot.account.user_certificates.iter().any(|der| {
        CertificateInfo::from_der(der).is_ok_and(|info| {
            info.is_valid_at(now)
                && info
                    .template
                    .is_some_and(|id| id.matches(t.oid.as_deref(), &t.cn))
        })
    });
    held.then_some(SkipReason::AlreadyInDirectory)
}
