//! The issuance decision of the emulated enterprise CA: given a verified
//! request, the requester's directory account, the templates and what the CA
//! knows about itself, issue (with a [`CertificateProfile`]), pend for a CA
//! manager, or deny with the HRESULT a Windows CA would return.
//!
//! Pure: no I/O, no clock (the caller passes `now`). The server shell verifies
//! the request's signature, looks up the renewed certificate in the CA
//! database and the revocation list, and hands the findings in as
//! [`RenewalFacts`].
//!
//! The rules run in this fixed order; the first that fails decides, so a
//! request that breaks several gets the earliest one's answer:
//!
//! 1. **Template** ([MS-WCCE] 3.2.2.6.2.1.4.1): every identifier the request
//!    carries (the 1.3.6.1.4.1.311.21.7 OID, the 1.3.6.1.4.1.311.20.2 name,
//!    the `CertificateTemplate` request attribute) must name a template in the
//!    directory, and all the same one. None, or an unknown one:
//!    UNSUPPORTED_CERT_TYPE; two different ones: TEMPLATE_CONFLICT.
//! 2. **Published** by this CA (`certificateTemplates`, [MS-WCCE]
//!    3.2.2.6.2.1.4.7): else UNSUPPORTED_CERT_TYPE.
//! 3. **Renewal** (adcs.md section 6), in this order: the request's signature
//!    verifies with the old certificate's key (NTE_BAD_SIGNATURE); the old
//!    certificate was issued by this CA (BAD_RENEWAL_CERT_ATTRIBUTE); it is not
//!    revoked (CRYPT_E_REVOKED); it is inside its validity (CERT_E_EXPIRED);
//!    it is inside its renewal period, `now >= notAfter - pKIOverlapPeriod`
//!    (BAD_RENEWAL_CERT_ATTRIBUTE); it was requested by this same account
//!    (BAD_RENEWAL_SUBJECT); it is of the requested template
//!    (TEMPLATE_CONFLICT).
//! 4. **Enroll right** on the template's security descriptor for the
//!    requester's token ([MS-WCCE] 3.2.2.6.2.1.4.3): else TEMPLATE_DENIED.
//!    Skipped for a renewal (always key-based here: signed with the old key)
//!    when the template sets ALLOW_PREVIOUS_APPROVAL_KEYBASEDRENEWAL_VALIDATE_REENROLLMENT.
//! 5. **What this CA supports**: no CA templates (IS_CA, IS_CROSS_CA), no key
//!    archival, no key attestation, a minimum CA version in
//!    `msPKI-Private-Key-Flag` of at most [`SUPPORTED_CA_VERSION`].
//! 6. **Key**: family and size at least what the template asks
//!    (`msPKI-Minimal-Key-Size`; for schema v3/v4 the algorithm named in
//!    `msPKI-RA-Application-Policies`): else KEY_LENGTH.
//! 7. **Template version** ([MS-WCCE] 3.2.2.6.2.1.4.2): the (major, minor)
//!    version the request's 1.3.6.1.4.1.311.21.7 names is not newer than the
//!    directory's (`revision`, `msPKI-Template-Minor-Revision`): else
//!    BAD_TEMPLATE_VERSION.
//! 8. **Enrollment-agent signatures** (`msPKI-RA-Signature` > 0): this CA
//!    takes none, so SIGNATURE_POLICY_REQUIRED ([MS-WCCE] 3.2.2.6.2.1.4.5.1),
//!    except for a renewal of the same template under
//!    PREVIOUS_APPROVAL_VALIDATE_REENROLLMENT, which lifts that requirement
//!    ([MS-WCCE] 3.2.2.6.2.1.4.5.6, 3.2.2.6.2.1.4.8).
//! 9. **Names** ([MS-WCCE] 3.2.2.6.2.1.4.5.9, 3.2.2.6.2.1.4.4.1): subject and
//!    subjectAltName from the directory per `msPKI-Certificate-Name-Flag`; the
//!    request's own subject and SAN are ignored unless the template sets
//!    ENROLLEE_SUPPLIES_SUBJECT (subject and SAN) or
//!    ENROLLEE_SUPPLIES_SUBJECT_ALT_NAME (SAN). Missing directory data:
//!    SUBJECT_DNS_REQUIRED, SUBJECT_EMAIL_REQUIRED, SUBJECT_UPN_REQUIRED,
//!    SUBJECT_DIRECTORY_GUID_REQUIRED.
//! 10. **Validity**: `pKIExpirationPeriod` from `now`, never past the CA
//!     certificate's own end.
//! 11. **Approval**: PEND_ALL_REQUESTS pends the request for a CA manager,
//!     unless it renews a certificate that was approved before and the template
//!     sets PREVIOUS_APPROVAL_VALIDATE_REENROLLMENT.
//!
//! Not checked, on purpose: whether a MACHINE_TYPE template is requested by a
//! computer (the CA has no notion of the requesting context, only of the
//! account, as Windows); the minimum client version in
//! `msPKI-Private-Key-Flag` (the CA cannot know the client's version);
//! ISSUANCE_POLICIES_FROM_REQUEST (the issuance policies are always all of
//! `msPKI-Certificate-Policy`, [MS-WCCE] 3.2.2.6.2.1.4.5.8 without the
//! request's own list); the subject-name conditions of [MS-WCCE]
//! 3.2.2.6.2.1.4.8 for PREVIOUS_APPROVAL_VALIDATE_REENROLLMENT (the template
//! match of rule 3 stands in for them).

use std::fmt;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

use super::profile::{CertificateProfile, SubjectAltName, subject_attribute_name};
use crate::directory::TemplateEntry;
use crate::directory::access::{Right, check_right};
use crate::model::{Account, EnrollmentFlags, GeneralFlags, NameFlags, PrivateKeyFlags, Template};
use crate::pki::csr::ParsedCsr;
use crate::pki::keys::KeyAlgorithm;
use crate::pki::template_ext::CertificateInfo;

/// The highest minimum-CA-version (`msPKI-Private-Key-Flag` bits 16-19) a
/// template may ask for: the emulated CA claims the level of Windows Server
/// 2016 CAs.
pub const SUPPORTED_CA_VERSION: u32 = 6;

/// HRESULTs a Windows CA returns, checked against winerror.h and [MS-WCCE].
pub mod hresult {
    /// CERTSRV_E_BAD_REQUESTSUBJECT: the request subject name is invalid.
    pub const BAD_REQUESTSUBJECT: u32 = 0x8009_4001;
    /// CERTSRV_E_BAD_RENEWAL_CERT_ATTRIBUTE: the renewal certificate attribute
    /// names a certificate that cannot be renewed here ([MS-WCCE]
    /// 3.2.1.4.2.1.4.2.1 uses it for a missing or mismatched one).
    pub const BAD_RENEWAL_CERT_ATTRIBUTE: u32 = 0x8009_400E;
    /// CERTSRV_E_ENROLL_DENIED: the CA's own permissions refuse the requester.
    pub const ENROLL_DENIED: u32 = 0x8009_4011;
    /// CERTSRV_E_TEMPLATE_DENIED: no Enroll right on the template ([MS-WCCE] 3.2.2.6.2.1.4.3).
    pub const TEMPLATE_DENIED: u32 = 0x8009_4012;
    /// CERTSRV_E_ADMIN_DENIED_REQUEST: a CA manager denied the request.
    pub const ADMIN_DENIED_REQUEST: u32 = 0x8009_4014;
    /// CERTSRV_E_UNSUPPORTED_CERT_TYPE: no such template, or not published here
    /// ([MS-WCCE] 3.2.2.6.2.1.4.1).
    pub const UNSUPPORTED_CERT_TYPE: u32 = 0x8009_4800;
    /// CERTSRV_E_TEMPLATE_CONFLICT: the request names more than one template.
    pub const TEMPLATE_CONFLICT: u32 = 0x8009_4802;
    /// CERTSRV_E_ARCHIVED_KEY_REQUIRED: the template archives keys.
    pub const ARCHIVED_KEY_REQUIRED: u32 = 0x8009_4804;
    /// CERTSRV_E_BAD_RENEWAL_SUBJECT: a renewal from another account.
    pub const BAD_RENEWAL_SUBJECT: u32 = 0x8009_4806;
    /// CERTSRV_E_BAD_TEMPLATE_VERSION ([MS-WCCE] 3.2.2.6.2.1.4.2).
    pub const BAD_TEMPLATE_VERSION: u32 = 0x8009_4807;
    /// CERTSRV_E_SIGNATURE_POLICY_REQUIRED: enrollment-agent signatures missing.
    pub const SIGNATURE_POLICY_REQUIRED: u32 = 0x8009_4809;
    /// CERTSRV_E_SUBJECT_UPN_REQUIRED.
    pub const SUBJECT_UPN_REQUIRED: u32 = 0x8009_480D;
    /// CERTSRV_E_SUBJECT_DIRECTORY_GUID_REQUIRED.
    pub const SUBJECT_DIRECTORY_GUID_REQUIRED: u32 = 0x8009_480E;
    /// CERTSRV_E_SUBJECT_DNS_REQUIRED ([MS-WCCE] 3.2.2.6.2.1.4.4.1).
    pub const SUBJECT_DNS_REQUIRED: u32 = 0x8009_480F;
    /// CERTSRV_E_KEY_LENGTH.
    pub const KEY_LENGTH: u32 = 0x8009_4811;
    /// CERTSRV_E_SUBJECT_EMAIL_REQUIRED.
    pub const SUBJECT_EMAIL_REQUIRED: u32 = 0x8009_4812;
    /// CERTSRV_E_KEY_ATTESTATION: key attestation required or failed.
    pub const KEY_ATTESTATION: u32 = 0x8009_481A;
    /// NTE_BAD_SIGNATURE: the renewal request's signature does not verify.
    pub const BAD_SIGNATURE: u32 = 0x8009_0006;
    /// CRYPT_E_REVOKED.
    pub const REVOKED: u32 = 0x8009_2010;
    /// CERT_E_EXPIRED: not within its validity period.
    pub const CERT_EXPIRED: u32 = 0x800B_0101;

    /// The symbolic name of a code above, for logs and messages.
    pub fn name(code: u32) -> &'static str {
        match code {
            BAD_REQUESTSUBJECT => "CERTSRV_E_BAD_REQUESTSUBJECT",
            BAD_RENEWAL_CERT_ATTRIBUTE => "CERTSRV_E_BAD_RENEWAL_CERT_ATTRIBUTE",
            ENROLL_DENIED => "CERTSRV_E_ENROLL_DENIED",
            TEMPLATE_DENIED => "CERTSRV_E_TEMPLATE_DENIED",
            ADMIN_DENIED_REQUEST => "CERTSRV_E_ADMIN_DENIED_REQUEST",
            UNSUPPORTED_CERT_TYPE => "CERTSRV_E_UNSUPPORTED_CERT_TYPE",
            TEMPLATE_CONFLICT => "CERTSRV_E_TEMPLATE_CONFLICT",
            ARCHIVED_KEY_REQUIRED => "CERTSRV_E_ARCHIVED_KEY_REQUIRED",
            BAD_RENEWAL_SUBJECT => "CERTSRV_E_BAD_RENEWAL_SUBJECT",
            BAD_TEMPLATE_VERSION => "CERTSRV_E_BAD_TEMPLATE_VERSION",
            SIGNATURE_POLICY_REQUIRED => "CERTSRV_E_SIGNATURE_POLICY_REQUIRED",
            SUBJECT_UPN_REQUIRED => "CERTSRV_E_SUBJECT_UPN_REQUIRED",
            SUBJECT_DIRECTORY_GUID_REQUIRED => "CERTSRV_E_SUBJECT_DIRECTORY_GUID_REQUIRED",
            SUBJECT_DNS_REQUIRED => "CERTSRV_E_SUBJECT_DNS_REQUIRED",
            KEY_LENGTH => "CERTSRV_E_KEY_LENGTH",
            SUBJECT_EMAIL_REQUIRED => "CERTSRV_E_SUBJECT_EMAIL_REQUIRED",
            KEY_ATTESTATION => "CERTSRV_E_KEY_ATTESTATION",
            BAD_SIGNATURE => "NTE_BAD_SIGNATURE",
            REVOKED => "CRYPT_E_REVOKED",
            CERT_EXPIRED => "CERT_E_EXPIRED",
            _ => "unknown HRESULT",
        }
    }
}

/// What the CA knows about itself.
#[derive(Debug, Clone, Copy)]
pub struct CaFacts<'a> {
    /// The CA's name (`cn` of its enrollment service), for messages.
    pub name: &'a str,
    /// `certificateTemplates` of its enrollment service.
    pub published: &'a [String],
    /// End of the CA certificate: no certificate outlives it.
    pub certificate_not_after: OffsetDateTime,
}

/// Facts about a renewal request, established by the server shell before
/// calling [`decide`].
#[derive(Debug, Clone)]
pub struct RenewalFacts {
    /// The certificate that signed the CMS.
    pub old: CertificateInfo,
    pub signature_valid: bool,
    pub issued_by_this_ca: bool,
    pub revoked: bool,
    /// From the CA database record of the old certificate (or the old
    /// certificate's SID extension).
    pub original_requester_sid: Option<String>,
    /// The old certificate was issued after a manual approval.
    pub previously_approved: bool,
}

/// A request whose PKCS#10 signature has been verified.
#[derive(Debug, Clone, Copy)]
pub struct IssuanceRequest<'a> {
    pub csr: &'a ParsedCsr,
    pub renewal: Option<&'a RenewalFacts>,
    /// `CertificateTemplate` from the request attributes (MS-WSTEP
    /// AdditionalContext): a template cn or OID.
    pub template_hint: Option<&'a str>,
}

/// What the CA does with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Issue(CertificateProfile),
    /// Wait for a CA manager; the profile is stored with the request and
    /// issued (re-dated) on approval.
    Pend {
        profile: CertificateProfile,
        reason: String,
    },
    Deny(Denial),
}

/// A refusal: the HRESULT returned to the client and a reason that names the
/// template and the account and says what would make the request pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub hresult: u32,
    pub reason: String,
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({} {:#010x})",
            self.reason,
            hresult::name(self.hresult),
            self.hresult
        )
    }
}

fn deny<T>(hresult: u32, reason: impl Into<String>) -> Result<T, Denial> {
    Err(Denial {
        hresult,
        reason: reason.into(),
    })
}

/// Decides a request; the rules and their order are in the module doc.
pub fn decide(
    request: &IssuanceRequest,
    requester: &Account,
    templates: &[TemplateEntry],
    ca: &CaFacts,
    now: OffsetDateTime,
) -> Decision {
    match evaluate(request, requester, templates, ca, now) {
        Ok(decision) => decision,
        Err(denial) => Decision::Deny(denial),
    }
}

fn evaluate(
    request: &IssuanceRequest,
    requester: &Account,
    templates: &[TemplateEntry],
    ca: &CaFacts,
    now: OffsetDateTime,
) -> Result<Decision, Denial> {
    let entry = resolve_template(request, requester, templates)?;
    let t = &entry.template;
    check_published(t, requester, ca)?;
    if let Some(renewal) = request.renewal {
        check_renewal(renewal, t, requester, ca, now)?;
    }
    check_enroll_right(entry, request, requester)?;
    check_supported(t, requester, ca)?;
    check_key(t, request.csr.key_algorithm, requester)?;
    check_template_version(t, request.csr, requester)?;
    check_ra_signatures(t, request.renewal, requester)?;
    let (subject, subject_alt_names) = names(t, request.csr, requester)?;
    let (not_before, not_after) = validity(t, requester, ca, now)?;

    let general = t.flags;
    let enrollment = t.enrollment_flags;
    let v2 = t.schema_version >= 2;
    let profile = CertificateProfile {
        template_cn: t.cn.clone(),
        subject,
        subject_alt_names,
        not_before,
        not_after,
        key_usage: t.key_usage.clone(),
        extended_key_usage: t.extended_key_usage.clone(),
        // msPKI-Certificate-Application-Policy exists from schema v2 on.
        application_policies: if v2 {
            t.application_policies.clone()
        } else {
            Vec::new()
        },
        issuance_policies: t.certificate_policies.clone(),
        critical_extensions: t.critical_extensions.clone(),
        template_information: if v2 {
            t.oid.clone().map(|oid| (oid, t.revision, t.minor_revision))
        } else {
            None
        },
        // v1 templates are named by cn; a v2+ template without an OID would
        // otherwise leave the certificate without any template identity.
        template_name: (!v2
            || t.oid.is_none()
            || general.contains(GeneralFlags::ADD_TEMPLATE_NAME))
        .then(|| t.cn.clone()),
        requester_sid: requester_sid_extension(t).then(|| requester.sid.to_string()),
        basic_constraints_end_entity: enrollment
            .contains(EnrollmentFlags::INCLUDE_BASIC_CONSTRAINTS_FOR_EE_CERTS),
        include_revocation_info: !enrollment
            .contains(EnrollmentFlags::NOREVOCATIONINFOINISSUEDCERTS),
        ocsp_nocheck: enrollment.contains(EnrollmentFlags::ADD_OCSP_NOCHECK),
    };

    // [MS-WCCE] 3.2.2.6.2.1.4.5.6: PEND_ALL_REQUESTS; a renewal of an approved
    // certificate skips approval under PREVIOUS_APPROVAL_VALIDATE_REENROLLMENT.
    if enrollment.contains(EnrollmentFlags::PEND_ALL_REQUESTS) {
        let approved_before = request.renewal.is_some_and(|r| r.previously_approved)
            && enrollment.contains(EnrollmentFlags::PREVIOUS_APPROVAL_VALIDATE_REENROLLMENT);
        if !approved_before {
            return Ok(Decision::Pend {
                profile,
                reason: format!(
                    "template {} requires CA manager approval (PEND_ALL_REQUESTS): the request of {} waits until a CA manager of {} issues or denies it",
                    t.cn,
                    who(requester),
                    ca.name
                ),
            });
        }
    }
    Ok(Decision::Issue(profile))
}

/// How messages name the requester.
fn who(a: &Account) -> String {
    format!("{} ({})", a.sam_account_name, a.sid)
}

fn ts(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// Rule 1, [MS-WCCE] 3.2.2.6.2.1.4.1.
fn resolve_template<'t>(
    request: &IssuanceRequest,
    requester: &Account,
    templates: &'t [TemplateEntry],
) -> Result<&'t TemplateEntry, Denial> {
    let by_name = |name: &str| {
        templates
            .iter()
            .find(|e| e.template.cn.eq_ignore_ascii_case(name))
    };
    let by_oid = |oid: &str| {
        templates
            .iter()
            .find(|e| e.template.oid.as_deref() == Some(oid))
    };
    let mut ids: Vec<(String, Option<&TemplateEntry>)> = Vec::new();
    if let Some(id) = &request.csr.template {
        if let Some(oid) = &id.oid {
            ids.push((
                format!("template OID {oid} (extension 1.3.6.1.4.1.311.21.7)"),
                by_oid(oid),
            ));
        }
        if let Some(name) = &id.name {
            ids.push((
                format!("template name {name:?} (extension 1.3.6.1.4.1.311.20.2)"),
                by_name(name),
            ));
        }
    }
    if let Some(hint) = request.template_hint {
        ids.push((
            format!("template {hint:?} (request attribute CertificateTemplate)"),
            by_name(hint).or_else(|| by_oid(hint)),
        ));
    }
    let Some((_, first)) = ids.first() else {
        return deny(
            hresult::UNSUPPORTED_CERT_TYPE,
            format!(
                "the request of {} names no certificate template: send the template extension 1.3.6.1.4.1.311.21.7 or the CertificateTemplate attribute",
                who(requester)
            ),
        );
    };
    if let Some((what, _)) = ids.iter().find(|(_, e)| e.is_none()) {
        return deny(
            hresult::UNSUPPORTED_CERT_TYPE,
            format!(
                "the request of {} names {what}, which is not a certificate template in the directory",
                who(requester)
            ),
        );
    }
    let Some(first) = *first else {
        // Unreachable: every identifier resolved above.
        return deny(hresult::UNSUPPORTED_CERT_TYPE, "no template resolved");
    };
    for (what, entry) in &ids[1..] {
        if let Some(other) = entry
            && other.template.cn != first.template.cn
        {
            return deny(
                hresult::TEMPLATE_CONFLICT,
                format!(
                    "the request of {} names two templates: {} by {} and {} by {what}; send one",
                    who(requester),
                    first.template.cn,
                    ids[0].0,
                    other.template.cn
                ),
            );
        }
    }
    Ok(first)
}

/// Rule 2, [MS-WCCE] 3.2.2.6.2.1.4.1 step 4 and 3.2.2.6.2.1.4.7.
fn check_published(t: &Template, requester: &Account, ca: &CaFacts) -> Result<(), Denial> {
    if ca.published.iter().any(|p| p.eq_ignore_ascii_case(&t.cn)) {
        return Ok(());
    }
    deny(
        hresult::UNSUPPORTED_CERT_TYPE,
        format!(
            "{} requested template {}, which is not published by {} (certificateTemplates of its enrollment service); publish it on the CA or request a published template",
            who(requester),
            t.cn,
            ca.name
        ),
    )
}

/// Rule 3: the checks of adcs.md section 6, in order.
fn check_renewal(
    r: &RenewalFacts,
    t: &Template,
    requester: &Account,
    ca: &CaFacts,
    now: OffsetDateTime,
) -> Result<(), Denial> {
    let old = &r.old;
    let serial = &old.serial;
    if !r.signature_valid {
        return deny(
            hresult::BAD_SIGNATURE,
            format!(
                "the renewal request of {} for {} is not validly signed with the key of certificate {serial}; sign it with that certificate's key or enroll anew",
                who(requester),
                t.cn
            ),
        );
    }
    if !r.issued_by_this_ca {
        return deny(
            hresult::BAD_RENEWAL_CERT_ATTRIBUTE,
            format!(
                "certificate {serial} (issuer {}) was not issued by {}; {} must enroll anew for {}",
                old.issuer,
                ca.name,
                who(requester),
                t.cn
            ),
        );
    }
    if r.revoked {
        return deny(
            hresult::REVOKED,
            format!(
                "certificate {serial} is revoked and cannot renew; {} must enroll anew for {}",
                who(requester),
                t.cn
            ),
        );
    }
    if now < old.not_before || now >= old.not_after {
        let when = if now < old.not_before {
            format!("is not valid before {}", ts(old.not_before))
        } else {
            format!("expired at {}", ts(old.not_after))
        };
        return deny(
            hresult::CERT_EXPIRED,
            format!(
                "certificate {serial} {when} and cannot sign a renewal; {} must enroll anew for {}",
                who(requester),
                t.cn
            ),
        );
    }
    if let Some(period) = t.renewal_period {
        let opens = old
            .not_after
            .checked_sub(period.duration())
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        if now < opens {
            return deny(
                hresult::BAD_RENEWAL_CERT_ATTRIBUTE,
                format!(
                    "certificate {serial} of {} enters its renewal period ({period}, pKIOverlapPeriod of template {}) at {}; renew from then on",
                    who(requester),
                    t.cn,
                    ts(opens)
                ),
            );
        }
    }
    let requester_sid = requester.sid.to_string();
    match &r.original_requester_sid {
        Some(sid) if sid.eq_ignore_ascii_case(&requester_sid) => {}
        Some(sid) => {
            return deny(
                hresult::BAD_RENEWAL_SUBJECT,
                format!(
                    "certificate {serial} was issued to {sid}, not to {}; only its own account may renew it, {} must enroll anew for {}",
                    who(requester),
                    requester.sam_account_name,
                    t.cn
                ),
            );
        }
        None => {
            return deny(
                hresult::BAD_RENEWAL_SUBJECT,
                format!(
                    "{} has no record of who requested certificate {serial}, so the renewal by {} cannot be matched to it; enroll anew for {}",
                    ca.name,
                    who(requester),
                    t.cn
                ),
            );
        }
    }
    let same_template = old
        .template
        .as_ref()
        .is_some_and(|id| id.matches(t.oid.as_deref(), &t.cn));
    if !same_template {
        let held = old
            .template
            .as_ref()
            .and_then(|id| id.name.clone().or_else(|| id.oid.clone()))
            .unwrap_or_else(|| "no template".into());
        return deny(
            hresult::TEMPLATE_CONFLICT,
            format!(
                "certificate {serial} of {} is of template {held}, not {}; a renewal keeps the template, enroll anew for {}",
                who(requester),
                t.cn,
                t.cn
            ),
        );
    }
    Ok(())
}

/// Rule 4, [MS-WCCE] 3.2.2.6.2.1.4.3.
fn check_enroll_right(
    entry: &TemplateEntry,
    request: &IssuanceRequest,
    requester: &Account,
) -> Result<(), Denial> {
    let t = &entry.template;
    if request.renewal.is_some()
        && t.enrollment_flags.contains(
            EnrollmentFlags::ALLOW_PREVIOUS_APPROVAL_KEYBASEDRENEWAL_VALIDATE_REENROLLMENT,
        )
    {
        return Ok(());
    }
    let decision = check_right(&entry.security, &requester.token, Right::Enroll);
    if decision.is_granted() {
        return Ok(());
    }
    deny(
        hresult::TEMPLATE_DENIED,
        format!(
            "{} may not enroll for template {}: Enroll {decision}; grant Enroll on the template to the account or to one of its groups",
            who(requester),
            t.cn
        ),
    )
}

/// Rule 5: templates this CA cannot honour.
fn check_supported(t: &Template, requester: &Account, ca: &CaFacts) -> Result<(), Denial> {
    let of = who(requester);
    if t.flags
        .intersects(GeneralFlags::IS_CA | GeneralFlags::IS_CROSS_CA)
    {
        return deny(
            hresult::UNSUPPORTED_CERT_TYPE,
            format!(
                "{of} requested template {}, which issues CA certificates; {} issues end-entity certificates only",
                t.cn, ca.name
            ),
        );
    }
    let pk = t.private_key_flags;
    if pk.contains(PrivateKeyFlags::REQUIRE_PRIVATE_KEY_ARCHIVAL) {
        return deny(
            hresult::ARCHIVED_KEY_REQUIRED,
            format!(
                "{of} requested template {}, which archives private keys (REQUIRE_PRIVATE_KEY_ARCHIVAL); {} has no key recovery agent, clear the flag or use another template",
                t.cn, ca.name
            ),
        );
    }
    if pk.contains(PrivateKeyFlags::ATTEST_REQUIRED) {
        return deny(
            hresult::KEY_ATTESTATION,
            format!(
                "{of} requested template {}, which requires key attestation (ATTEST_REQUIRED); {} does not perform it, clear the flag",
                t.cn, ca.name
            ),
        );
    }
    if pk.server_version() > SUPPORTED_CA_VERSION {
        return deny(
            hresult::UNSUPPORTED_CERT_TYPE,
            format!(
                "{of} requested template {}, which needs CA version {} (msPKI-Private-Key-Flag); {} implements version {SUPPORTED_CA_VERSION}",
                t.cn,
                pk.server_version(),
                ca.name
            ),
        );
    }
    Ok(())
}

/// The family of a key, for comparing it with what a template names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Rsa,
    Ec,
}

fn describe_key(k: KeyAlgorithm) -> (Family, u32, String) {
    match k {
        KeyAlgorithm::Rsa { bits } => (Family::Rsa, bits, format!("RSA {bits}")),
        KeyAlgorithm::EcdsaP256 => (Family::Ec, 256, "ECDSA P-256".into()),
        KeyAlgorithm::EcdsaP384 => (Family::Ec, 384, "ECDSA P-384".into()),
    }
}

/// Rule 6: key family and size. `msPKI-Minimal-Key-Size` counts bits (the
/// modulus for RSA, the curve size for EC); a v3/v4 template may also name
/// the algorithm (`RSA`, `ECDSA_P256`, `ECDH_P384`...), which fixes the family
/// and, for a curve, its minimum size (a larger curve of the family passes).
fn check_key(t: &Template, key: KeyAlgorithm, requester: &Account) -> Result<(), Denial> {
    let (family, bits, described) = describe_key(key);
    let short = |why: String| {
        deny(
            hresult::KEY_LENGTH,
            format!(
                "the key of {}'s request for template {} is {described}; {why}",
                who(requester),
                t.cn
            ),
        )
    };
    if let Some(name) = t.asymmetric_algorithm() {
        let upper = name.to_ascii_uppercase();
        let wanted = if upper == "RSA" {
            Some((Family::Rsa, 0))
        } else {
            ["ECDSA_P", "ECDH_P"]
                .iter()
                .find_map(|p| upper.strip_prefix(p))
                .and_then(|size| size.parse::<u32>().ok())
                .map(|size| (Family::Ec, size))
        };
        let Some((want_family, want_bits)) = wanted else {
            return short(format!(
                "the template asks for algorithm {name} (msPKI-RA-Application-Policies), which this CA does not issue for"
            ));
        };
        if family != want_family || bits < want_bits {
            return short(format!(
                "the template asks for {name} (msPKI-RA-Application-Policies); generate a key of that algorithm"
            ));
        }
    }
    if bits < t.minimal_key_size {
        return short(format!(
            "the template needs at least {} bits (msPKI-Minimal-Key-Size); generate a larger key",
            t.minimal_key_size
        ));
    }
    Ok(())
}

/// Rule 7, [MS-WCCE] 3.2.2.6.2.1.4.2. The section compares major and minor
/// one by one; the pair is compared as a version here, so that a request for
/// an older major with a larger minor (older, not newer) passes.
fn check_template_version(
    t: &Template,
    csr: &ParsedCsr,
    requester: &Account,
) -> Result<(), Denial> {
    if t.schema_version < 2 {
        return Ok(());
    }
    let Some(id) = &csr.template else {
        return Ok(());
    };
    if id.oid.is_none() {
        return Ok(());
    }
    let requested = (id.major.unwrap_or(0), id.minor.unwrap_or(0));
    let directory = (t.revision, t.minor_revision);
    if requested > directory {
        return deny(
            hresult::BAD_TEMPLATE_VERSION,
            format!(
                "the request of {} is for template {} version {}.{}, newer than the directory's {}.{}; the CA reads templates from the directory, wait for replication and retry",
                who(requester),
                t.cn,
                requested.0,
                requested.1,
                directory.0,
                directory.1
            ),
        );
    }
    Ok(())
}

/// Rule 8: `msPKI-RA-Signature`.
fn check_ra_signatures(
    t: &Template,
    renewal: Option<&RenewalFacts>,
    requester: &Account,
) -> Result<(), Denial> {
    if t.ra_signatures == 0 {
        return Ok(());
    }
    // [MS-WCCE] 3.2.2.6.2.1.4.5.6 / 3.2.2.6.2.1.4.8: for a renewal whose old
    // certificate carries this template's OID, the flag lifts the signature
    // requirement. Rule 3 already matched the old certificate to the template.
    let lifted = renewal.is_some_and(|r| {
        t.enrollment_flags
            .contains(EnrollmentFlags::PREVIOUS_APPROVAL_VALIDATE_REENROLLMENT)
            && r.old
                .template
                .as_ref()
                .is_some_and(|id| id.oid.is_some() && id.oid == t.oid)
    });
    if lifted {
        return Ok(());
    }
    deny(
        hresult::SIGNATURE_POLICY_REQUIRED,
        format!(
            "{} requested template {}, which requires {} enrollment-agent signature(s) (msPKI-RA-Signature); this CA accepts no enrollment agents, set it to 0",
            who(requester),
            t.cn,
            t.ra_signatures
        ),
    )
}

/// Whether the certificate carries the requester's SID (extension
/// 1.3.6.1.4.1.311.25.2, szOID_NTDS_CA_SECURITY_EXT).
///
/// Microsoft KB5014754 ("Certificate-based authentication changes on Windows
/// domain controllers", May 2022): an updated AD CS adds the requester's SID
/// to certificates issued from *online* templates, those whose subject is
/// built from the directory. A template whose subject the enrollee supplies
/// (CT_FLAG_ENROLLEE_SUPPLIES_SUBJECT, "Supply in the request": an offline
/// template in AD CS terms) gets no SID extension: the names in the request
/// may be someone else's, so the requester's SID would bind a certificate for
/// that name to the requester's account. The domain controller then maps such
/// a certificate by its names, or by an explicit mapping (the SAN URL
/// `tag:microsoft.com,2022-09-14:sid:<SID>` the KB describes for offline
/// requests), never by the requester's SID. A template that lets the
/// enrollee supply only a subject alternative name keeps a subject from the
/// directory and is online: the SID stays. NO_SECURITY_EXTENSION
/// (msPKI-Enrollment-Flag 0x80000, [MS-CRTD] 2.26) removes it in any case.
fn requester_sid_extension(t: &Template) -> bool {
    !t.enrollment_flags
        .contains(EnrollmentFlags::NO_SECURITY_EXTENSION)
        && !t.name_flags.contains(NameFlags::ENROLLEE_SUPPLIES_SUBJECT)
}

/// A subject (attributes in certificate order) and subjectAltName entries.
type Names = (Vec<(String, String)>, Vec<SubjectAltName>);

/// Rule 9: subject (certificate order) and subjectAltName.
fn names(t: &Template, csr: &ParsedCsr, requester: &Account) -> Result<Names, Denial> {
    let nf = t.name_flags;
    let enrollee_subject = nf.contains(NameFlags::ENROLLEE_SUPPLIES_SUBJECT);
    let enrollee_san =
        enrollee_subject || nf.contains(NameFlags::ENROLLEE_SUPPLIES_SUBJECT_ALT_NAME);
    let account = &requester.sam_account_name;
    let dns_required = |why: &str| Denial {
        hresult: hresult::SUBJECT_DNS_REQUIRED,
        reason: format!(
            "account {} ({}) has no dNSHostName, and template {} puts it in the {why}; set dNSHostName on the account",
            account, requester.dn, t.cn
        ),
    };
    let dns_host = || {
        requester
            .dns_host_name
            .as_deref()
            .filter(|d| !d.trim().is_empty())
    };
    // An account may write its own dNSHostName (AD's validated write): what
    // goes into a certificate from it must be a host name, nothing more.
    let dns_in_subject = !enrollee_subject
        && !nf.contains(NameFlags::SUBJECT_REQUIRE_DIRECTORY_PATH)
        && (nf.contains(NameFlags::SUBJECT_REQUIRE_DNS_AS_CN)
            || (nf.contains(NameFlags::SUBJECT_REQUIRE_COMMON_NAME) && t.is_machine()));
    let dns_in_san = nf
        .intersects(NameFlags::SUBJECT_ALT_REQUIRE_DNS | NameFlags::SUBJECT_ALT_REQUIRE_DOMAIN_DNS);
    if let Some(host) = dns_host()
        && !is_host_name(host)
        && (dns_in_subject || dns_in_san)
    {
        return deny(
            hresult::BAD_REQUESTSUBJECT,
            format!(
                "the dNSHostName of account {} ({}) is {:?}, which is not a DNS host name (letters, digits and hyphens in dot-separated labels of at most 63 characters, 253 in all), and template {} builds names from it; correct dNSHostName on the account",
                account,
                requester.dn,
                host.chars().take(300).collect::<String>(),
                t.cn
            ),
        );
    }
    let mail = || requester.mail.as_deref().filter(|m| !m.trim().is_empty());

    let requested = if enrollee_subject || enrollee_san {
        Some(requested_names(csr, enrollee_subject).map_err(|problem| Denial {
            hresult: hresult::BAD_REQUESTSUBJECT,
            reason: format!(
                "template {} takes names from the request of {}, and they cannot be read: {problem}",
                t.cn,
                who(requester)
            ),
        })?)
    } else {
        None
    };

    let mut subject: Vec<(String, String)> = Vec::new();
    if enrollee_subject {
        if let Some((s, _)) = &requested {
            subject = s.clone();
        }
    } else if nf.contains(NameFlags::SUBJECT_REQUIRE_DIRECTORY_PATH) {
        let mut rdns = parse_ldap_dn(&requester.dn).map_err(|problem| Denial {
            hresult: hresult::BAD_REQUESTSUBJECT,
            reason: format!(
                "template {} uses the directory path as subject and the DN of {} cannot be read: {problem}",
                t.cn, account
            ),
        })?;
        rdns.reverse();
        subject = rdns;
    } else if nf
        .intersects(NameFlags::SUBJECT_REQUIRE_DNS_AS_CN | NameFlags::SUBJECT_REQUIRE_COMMON_NAME)
    {
        // Machine certificates get the DNS name as CN, user certificates the
        // account's cn ([MS-WCCE] 3.2.2.6.2.1.4.5.9); DNS_AS_CN always wants DNS.
        let cn = if nf.contains(NameFlags::SUBJECT_REQUIRE_DNS_AS_CN) || t.is_machine() {
            dns_host()
                .ok_or_else(|| dns_required("subject CN"))?
                .to_string()
        } else {
            account_cn(requester)
        };
        subject.push(("CN".into(), cn));
    }
    if !enrollee_subject && nf.contains(NameFlags::SUBJECT_REQUIRE_EMAIL) {
        let Some(m) = mail() else {
            return deny(
                hresult::SUBJECT_EMAIL_REQUIRED,
                format!(
                    "account {} ({}) has no mail, and template {} puts it in the subject; set mail on the account",
                    account, requester.dn, t.cn
                ),
            );
        };
        subject.push(("E".into(), m.to_string()));
    }

    // Directory SAN entries, in the order Windows CAs write them: UPN,
    // directory GUID, e-mail, DNS.
    let mut sans: Vec<SubjectAltName> = Vec::new();
    if nf.intersects(NameFlags::SUBJECT_ALT_REQUIRE_UPN | NameFlags::SUBJECT_ALT_REQUIRE_SPN) {
        // [MS-CRTD] 2.28 describes SUBJECT_ALT_REQUIRE_SPN as adding the UPN too.
        let Some(upn) = requester
            .user_principal_name
            .as_deref()
            .filter(|u| !u.trim().is_empty())
        else {
            return deny(
                hresult::SUBJECT_UPN_REQUIRED,
                format!(
                    "account {} ({}) has no userPrincipalName, and template {} puts it in the subject alternative name; set userPrincipalName on the account",
                    account, requester.dn, t.cn
                ),
            );
        };
        sans.push(SubjectAltName::Upn(upn.to_string()));
    }
    if nf.contains(NameFlags::SUBJECT_ALT_REQUIRE_DIRECTORY_GUID) {
        // The account as the directory reader delivers it carries no objectGUID.
        return deny(
            hresult::SUBJECT_DIRECTORY_GUID_REQUIRED,
            format!(
                "template {} puts the objectGUID of {} in the subject alternative name (SUBJECT_ALT_REQUIRE_DIRECTORY_GUID), which this CA cannot read; clear the flag",
                t.cn, account
            ),
        );
    }
    if nf.contains(NameFlags::SUBJECT_ALT_REQUIRE_EMAIL) {
        let Some(m) = mail() else {
            return deny(
                hresult::SUBJECT_EMAIL_REQUIRED,
                format!(
                    "account {} ({}) has no mail, and template {} puts it in the subject alternative name; set mail on the account",
                    account, requester.dn, t.cn
                ),
            );
        };
        sans.push(SubjectAltName::Email(m.to_string()));
    }
    if nf.intersects(NameFlags::SUBJECT_ALT_REQUIRE_DNS | NameFlags::SUBJECT_ALT_REQUIRE_DOMAIN_DNS)
    {
        let host = dns_host().ok_or_else(|| dns_required("subject alternative name"))?;
        sans.push(SubjectAltName::Dns(host.to_string()));
    }
    if nf.contains(NameFlags::SUBJECT_ALT_REQUIRE_DOMAIN_DNS) {
        // The domain's DNS name from the account's DN; the NetBIOS name
        // Windows also adds is not known here.
        if let Some(domain) = dn_domain(&requester.dn) {
            sans.push(SubjectAltName::Dns(domain));
        }
    }
    if let Some((_, requested_sans)) = &requested
        && enrollee_san
    {
        for san in requested_sans {
            if !sans.contains(san) {
                sans.push(san.clone());
            }
        }
    }

    if subject.is_empty() && sans.is_empty() {
        let why = if enrollee_subject || enrollee_san {
            format!(
                "template {} takes the subject from the request, and the request of {} names none; put a subject or subject alternative name in the request",
                t.cn,
                who(requester)
            )
        } else {
            format!(
                "template {} builds no subject and no subject alternative name for {} (msPKI-Certificate-Name-Flag {:#x}); set a subject name flag on the template",
                t.cn,
                who(requester),
                nf.bits()
            )
        };
        return deny(hresult::BAD_REQUESTSUBJECT, why);
    }
    Ok((subject, sans))
}

/// The account's cn: the value of the first RDN of its DN when that is a CN,
/// else the sAMAccountName without the computer `$`.
fn account_cn(a: &Account) -> String {
    parse_ldap_dn(&a.dn)
        .ok()
        .and_then(|rdns| rdns.into_iter().next())
        .filter(|(ty, _)| ty == "CN")
        .map(|(_, v)| v)
        .unwrap_or_else(|| a.sam_account_name.trim_end_matches('$').to_string())
}

/// `corp.example` from the DC components of a DN.
fn dn_domain(dn: &str) -> Option<String> {
    let labels: Vec<String> = parse_ldap_dn(dn)
        .ok()?
        .into_iter()
        .filter(|(ty, _)| ty == "DC")
        .map(|(_, v)| v)
        .collect();
    (!labels.is_empty()).then(|| labels.join("."))
}

/// Parses an LDAP DN (RFC 4514) into (type, value) pairs in text order (most
/// specific first). Types become canonical short names (`cn` -> `CN`) or stay
/// dotted OIDs; a multi-valued RDN (`+`) yields one pair per value. Escapes
/// `\,` and `\2C` are undone; `#`-hex (BER) values are refused.
fn parse_ldap_dn(dn: &str) -> Result<Vec<(String, String)>, String> {
    let bytes = dn.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        // Attribute type up to '='.
        let start = i;
        while i < bytes.len() && bytes[i] != b'=' {
            if bytes[i] == b',' || bytes[i] == b'+' {
                return Err(format!("{dn:?}: an attribute without '=' at byte {start}"));
            }
            i += 1;
        }
        if i == bytes.len() {
            return Err(format!("{dn:?}: an attribute without '=' at byte {start}"));
        }
        let ty = dn[start..i].trim();
        let canonical = subject_attribute_name(ty)
            .ok_or_else(|| format!("{dn:?}: unknown attribute type {ty:?}"))?;
        i += 1;
        // Leading spaces of the value are not part of it.
        while i < bytes.len() && bytes[i] == b' ' {
            i += 1;
        }
        if bytes.get(i) == Some(&b'#') {
            return Err(format!(
                "{dn:?}: BER-encoded value for {ty} is not supported"
            ));
        }
        let mut value: Vec<u8> = Vec::new();
        let mut trailing_spaces = 0usize;
        while i < bytes.len() && bytes[i] != b',' && bytes[i] != b'+' {
            if bytes[i] == b'\\' {
                let next = *bytes
                    .get(i + 1)
                    .ok_or_else(|| format!("{dn:?}: a '\\' at the end"))?;
                if next.is_ascii_hexdigit() {
                    let pair = dn
                        .get(i + 1..i + 3)
                        .filter(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
                        .ok_or_else(|| format!("{dn:?}: a bad hex escape at byte {i}"))?;
                    let b = u8::from_str_radix(pair, 16)
                        .map_err(|_| format!("{dn:?}: a bad hex escape at byte {i}"))?;
                    value.push(b);
                    i += 3;
                } else {
                    value.push(next);
                    i += 2;
                }
                trailing_spaces = 0;
            } else {
                trailing_spaces = if bytes[i] == b' ' {
                    trailing_spaces + 1
                } else {
                    0
                };
                value.push(bytes[i]);
                i += 1;
            }
        }
        value.truncate(value.len() - trailing_spaces);
        let value = String::from_utf8(value)
            .map_err(|_| format!("{dn:?}: the value of {ty} is not UTF-8"))?;
        if value.is_empty() {
            return Err(format!("{dn:?}: empty value for {ty}"));
        }
        out.push((canonical, value));
        if i < bytes.len() {
            // Skip the separator.
            i += 1;
            if i == bytes.len() {
                return Err(format!("{dn:?}: ends with a separator"));
            }
        }
    }
    if out.is_empty() {
        return Err("the DN is empty".into());
    }
    Ok(out)
}

/// A host name as RFC 1123 2.1 and RFC 5280 4.2.1.6 allow one in a
/// certificate: ASCII letters, digits and hyphens, labels of 1 to 63
/// characters not starting or ending with a hyphen, at most 253 characters,
/// no wildcard, no trailing dot.
fn is_host_name(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// The subject (certificate order, read only when `with_subject`) and
/// subjectAltName entries of the PKCS#10 request itself, for templates where
/// the enrollee supplies them.
fn requested_names(csr: &ParsedCsr, with_subject: bool) -> Result<Names, String> {
    let (rest, request) = X509CertificationRequest::from_der(&csr.der)
        .map_err(|e| format!("not a DER PKCS#10 request: {e}"))?;
    if !rest.is_empty() {
        return Err(format!("{} bytes after the PKCS#10 request", rest.len()));
    }
    let mut subject = Vec::new();
    let rdns = if with_subject {
        request.certification_request_info.subject.iter().collect()
    } else {
        Vec::new()
    };
    for rdn in rdns {
        for atv in rdn.iter() {
            let oid = atv.attr_type().to_id_string();
            let name = subject_attribute_name(&oid).unwrap_or(oid.clone());
            let value = match atv.attr_value().tag().0 {
                // BMPString: UTF-16BE, as Windows clients may send.
                30 => {
                    let data = atv.attr_value().data;
                    if data.len() % 2 != 0 {
                        return Err(format!("subject attribute {name}: odd BMPString length"));
                    }
                    let units: Vec<u16> = data
                        .chunks(2)
                        .map(|c| u16::from_be_bytes([c[0], c[1]]))
                        .collect();
                    String::from_utf16(&units)
                        .map_err(|_| format!("subject attribute {name}: bad BMPString"))?
                }
                _ => atv
                    .as_str()
                    .map_err(|e| format!("subject attribute {name}: {e}"))?
                    .to_string(),
            };
            subject.push((name, value));
        }
    }
    let mut sans = Vec::new();
    for ext in request.requested_extensions().into_iter().flatten() {
        let ParsedExtension::SubjectAlternativeName(san) = ext else {
            continue;
        };
        for name in &san.general_names {
            let entry = match name {
                GeneralName::DNSName(d) => SubjectAltName::Dns(d.to_string()),
                GeneralName::RFC822Name(m) => SubjectAltName::Email(m.to_string()),
                GeneralName::OtherName(oid, value)
                    if oid.to_id_string() == "1.3.6.1.4.1.311.20.2.3" =>
                {
                    SubjectAltName::Upn(decode_upn(value)?)
                }
                other => {
                    return Err(format!(
                        "subject alternative name {other} is not one this CA issues (DNS, e-mail, UPN)"
                    ));
                }
            };
            if !sans.contains(&entry) {
                sans.push(entry);
            }
        }
    }
    Ok((subject, sans))
}

/// The `[0] EXPLICIT UTF8String` value of a UPN otherName.
fn decode_upn(value: &[u8]) -> Result<String, String> {
    use x509_parser::asn1_rs::{Any, Tag};
    let bad = || "the UPN otherName is not [0] { UTF8String }".to_string();
    let (rest, outer) = Any::from_der(value).map_err(|_| bad())?;
    if !rest.is_empty() || outer.tag() != Tag(0) {
        return Err(bad());
    }
    let (rest, inner) = Any::from_der(outer.data).map_err(|_| bad())?;
    if !rest.is_empty() || inner.tag() != Tag::Utf8String {
        return Err(bad());
    }
    String::from_utf8(inner.data.to_vec()).map_err(|_| bad())
}

/// Rule 10: `pKIExpirationPeriod` from now, capped by the CA's own end.
fn validity(
    t: &Template,
    requester: &Account,
    ca: &CaFacts,
    now: OffsetDateTime,
) -> Result<(OffsetDateTime, OffsetDateTime), Denial> {
    let Some(period) = t.validity.filter(|p| p.seconds() > 0) else {
        return deny(
            hresult::UNSUPPORTED_CERT_TYPE,
            format!(
                "{} requested template {}, which has no validity period (pKIExpirationPeriod); set one",
                who(requester),
                t.cn
            ),
        );
    };
    if ca.certificate_not_after <= now {
        return deny(
            hresult::CERT_EXPIRED,
            format!(
                "the CA certificate of {} expired at {}, so the request of {} for template {} cannot be issued; renew the CA certificate",
                ca.name,
                ts(ca.certificate_not_after),
                who(requester),
                t.cn
            ),
        );
    }
    let end = now
        .checked_add(period.duration())
        .unwrap_or(ca.certificate_not_after)
        .min(ca.certificate_not_after);
    Ok((now, end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::sd::SecurityDescriptor;
    use crate::directory::sddl::parse_sddl;
    use crate::model::{Period, Sid, Token};
    use crate::pki::template_ext::TemplateIdentity;
    use time::Duration;
    use time::macros::datetime;

    const DOMAIN: &str = "S-1-5-21-1000-2000-3000";
    const ENROLL: &str = "0e10c968-78fb-11d2-90d4-00c04f79dc55";
    const AUTOENROLL: &str = "a05b8cc2-17bc-4802-a710-e7c15ab866a2";
    const CLIENT_AUTH: &str = "1.3.6.1.5.5.7.3.2";
    const SERVER_AUTH: &str = "1.3.6.1.5.5.7.3.1";
    const OID_BASE: &str = "1.3.6.1.4.1.311.21.8.1000.2000.3000.4000.5000.6000";

    fn now() -> OffsetDateTime {
        datetime!(2025-06-01 12:00 UTC)
    }

    fn sid(rid: u32) -> Sid {
        format!("{DOMAIN}-{rid}").parse().unwrap()
    }

    fn sd(sddl: &str) -> SecurityDescriptor {
        parse_sddl(sddl, &DOMAIN.parse().unwrap()).unwrap()
    }

    /// The admin ACEs every template of the sample forest ends with.
    const ADMINS: &str = "(A;;CCDCLCSWRPWPDTLOCRSDRCWDWO;;;DA)(A;;CCDCLCSWRPWPDTLOCRSDRCWDWO;;;EA)(A;;LCRPLORC;;;AU)";

    fn enroll_and_autoenroll(trustee: &str) -> String {
        format!(
            "O:DAG:DAD:PAI(OA;;RPWPCR;{ENROLL};;{trustee})(OA;;RPWPCR;{AUTOENROLL};;{trustee}){ADMINS}"
        )
    }

    /// A schema v2 machine template as the sample forest's WorkstationAuth.
    fn base_template(cn: &str, oid_tail: &str) -> Template {
        Template {
            dn: format!(
                "CN={cn},CN=Certificate Templates,CN=Public Key Services,CN=Services,CN=Configuration,DC=corp,DC=example"
            ),
            cn: cn.into(),
            display_name: Some(cn.into()),
            flags: GeneralFlags::from_bits_retain(131136),
            revision: 100,
            minor_revision: 1,
            schema_version: 2,
            oid: Some(format!("{OID_BASE}.{oid_tail}")),
            validity: Some(Period::from_days(365)),
            renewal_period: Some(Period::from_days(42)),
            key_usage: Some(vec![0xa0, 0x00]),
            extended_key_usage: vec![CLIENT_AUTH.into()],
            default_key_spec: Some(1),
            max_issuing_depth: Some(0),
            critical_extensions: vec!["2.5.29.15".into()],
            default_csps: vec!["1,Microsoft RSA SChannel Cryptographic Provider".into()],
            minimal_key_size: 2048,
            ra_signatures: 0,
            ra_application_policies: vec![],
            supersedes: vec![],
            certificate_policies: vec![],
            application_policies: vec![CLIENT_AUTH.into()],
            enrollment_flags: EnrollmentFlags::from_bits_retain(32),
            private_key_flags: PrivateKeyFlags::from_bits_retain(16842752),
            name_flags: NameFlags::from_bits_retain(402653184),
        }
    }

    /// The templates of the sample forest (ldif/forest.ldif) the CA sees.
    fn forest_templates() -> Vec<TemplateEntry> {
        let machine = Template {
            flags: GeneralFlags::from_bits_retain(66144),
            revision: 5,
            minor_revision: 1,
            schema_version: 1,
            extended_key_usage: vec![CLIENT_AUTH.into(), SERVER_AUTH.into()],
            application_policies: vec![],
            enrollment_flags: EnrollmentFlags::empty(),
            private_key_flags: PrivateKeyFlags::empty(),
            ..base_template("Machine", "3652291.14379546")
        };
        let workstation = Template {
            revision: 101,
            minor_revision: 4,
            supersedes: vec!["LegacyMachineAuth".into()],
            ..base_template("WorkstationAuth", "8782410.71273024")
        };
        let ecdsa = Template {
            minor_revision: 3,
            schema_version: 4,
            key_usage: Some(vec![0x80, 0x00]),
            extended_key_usage: vec![SERVER_AUTH.into()],
            default_key_spec: Some(2),
            default_csps: vec!["1,Microsoft Software Key Storage Provider".into()],
            minimal_key_size: 256,
            application_policies: vec![SERVER_AUTH.into()],
            ra_application_policies: vec![
                "msPKI-Asymmetric-Algorithm`PZPWSTR`ECDSA_P256`msPKI-Hash-Algorithm`PZPWSTR`SHA256`msPKI-Key-Usage`DWORD`2`".into(),
            ],
            private_key_flags: PrivateKeyFlags::from_bits_retain(50528256),
            ..base_template("ServerAuthECDSA", "5452940.97712535")
        };
        let web = Template {
            validity: Some(Period::from_days(730)),
            extended_key_usage: vec![SERVER_AUTH.into()],
            application_policies: vec![SERVER_AUTH.into()],
            enrollment_flags: EnrollmentFlags::empty(),
            name_flags: NameFlags::ENROLLEE_SUPPLIES_SUBJECT,
            ..base_template("WebServer", "4806987.61407990")
        };
        let pending = Template {
            enrollment_flags: EnrollmentFlags::from_bits_retain(34),
            ..base_template("PendingMachine", "9336517.20081878")
        };
        let user = Template {
            flags: GeneralFlags::from_bits_retain(131098),
            minor_revision: 2,
            extended_key_usage: vec![
                CLIENT_AUTH.into(),
                "1.3.6.1.5.5.7.3.4".into(),
                "1.3.6.1.4.1.311.10.3.4".into(),
            ],
            application_policies: vec![
                CLIENT_AUTH.into(),
                "1.3.6.1.5.5.7.3.4".into(),
                "1.3.6.1.4.1.311.10.3.4".into(),
            ],
            enrollment_flags: EnrollmentFlags::from_bits_retain(41),
            private_key_flags: PrivateKeyFlags::from_bits_retain(16842768),
            name_flags: NameFlags::from_bits_retain((-1_509_949_440i32) as u32),
            ..base_template("User", "9954817.13151832")
        };
        let unpublished = base_template("Unpublished", "8825795.27785980");
        let machine_sd = format!("O:DAG:DAD:PAI(OA;;RPWPCR;{ENROLL};;DC){ADMINS}");
        vec![
            TemplateEntry {
                template: machine,
                security: sd(&machine_sd),
            },
            TemplateEntry {
                template: workstation,
                security: sd(&enroll_and_autoenroll("DC")),
            },
            TemplateEntry {
                template: ecdsa,
                security: sd(&enroll_and_autoenroll(&format!("{DOMAIN}-1101"))),
            },
            TemplateEntry {
                template: web,
                security: sd(&machine_sd),
            },
            TemplateEntry {
                template: pending,
                security: sd(&enroll_and_autoenroll("DC")),
            },
            TemplateEntry {
                template: user,
                security: sd(&format!(
                    "O:DAG:DAD:PAI(OD;;CR;{AUTOENROLL};;{DOMAIN}-1103)(OA;;RPWPCR;{ENROLL};;DU)(OA;;RPWPCR;{AUTOENROLL};;DU){ADMINS}"
                )),
            },
            TemplateEntry {
                template: unpublished,
                security: sd(&enroll_and_autoenroll("DC")),
            },
        ]
    }

    fn account(
        dn: &str,
        sam: &str,
        rid: u32,
        primary: u32,
        groups: &[u32],
        dns: Option<&str>,
    ) -> Account {
        let mut token = Token::new([
            sid(rid),
            sid(primary),
            Sid::everyone(),
            Sid::authenticated_users(),
        ]);
        for g in groups {
            token.insert(sid(*g));
        }
        Account {
            dn: dn.into(),
            sam_account_name: sam.into(),
            sid: sid(rid),
            dns_host_name: dns.map(Into::into),
            user_principal_name: None,
            mail: None,
            user_certificates: vec![],
            token,
        }
    }

    fn ws01() -> Account {
        account(
            "CN=ws01,CN=Computers,DC=corp,DC=example",
            "WS01$",
            1201,
            515,
            &[],
            Some("ws01.corp.example"),
        )
    }

    /// Member of Web Servers (1101).
    fn web01() -> Account {
        account(
            "CN=web01,CN=Computers,DC=corp,DC=example",
            "WEB01$",
            1202,
            515,
            &[1101],
            Some("web01.corp.example"),
        )
    }

    fn nodns01() -> Account {
        account(
            "CN=nodns01,CN=Computers,DC=corp,DC=example",
            "NODNS01$",
            1203,
            515,
            &[],
            None,
        )
    }

    fn alice() -> Account {
        Account {
            user_principal_name: Some("alice@corp.example".into()),
            mail: Some("alice@corp.example".into()),
            ..account(
                "CN=alice,CN=Users,DC=corp,DC=example",
                "alice",
                1301,
                513,
                &[],
                None,
            )
        }
    }

    /// Member of Contractors (1103), who are denied AutoEnroll (not Enroll) on User.
    fn bob() -> Account {
        Account {
            user_principal_name: Some("bob@corp.example".into()),
            mail: Some("bob@corp.example".into()),
            ..account(
                "CN=bob,CN=Users,DC=corp,DC=example",
                "bob",
                1302,
                513,
                &[1103],
                None,
            )
        }
    }

    /// Everything one call of `decide` needs, owned.
    #[derive(Clone)]
    struct Req {
        csr: ParsedCsr,
        renewal: Option<RenewalFacts>,
        hint: Option<String>,
        account: Account,
        templates: Vec<TemplateEntry>,
        ca_not_after: OffsetDateTime,
    }

    fn identity_of(t: &Template) -> TemplateIdentity {
        TemplateIdentity {
            oid: t.oid.clone(),
            major: Some(t.revision),
            minor: Some(t.minor_revision),
            name: None,
        }
    }

    impl Req {
        /// A new request of `account` for template `cn`, identified by its
        /// 21.7 extension (20.2 for v1), with a key the template accepts.
        fn new(account: Account, cn: &str) -> Req {
            let templates = forest_templates();
            let t = templates
                .iter()
                .find(|e| e.template.cn == cn)
                .map(|e| &e.template);
            let template = t.map(|t| {
                if t.schema_version >= 2 {
                    identity_of(t)
                } else {
                    TemplateIdentity {
                        name: Some(t.cn.clone()),
                        ..TemplateIdentity::default()
                    }
                }
            });
            let key_algorithm = if cn == "ServerAuthECDSA" {
                KeyAlgorithm::EcdsaP256
            } else {
                KeyAlgorithm::Rsa { bits: 2048 }
            };
            Req {
                csr: ParsedCsr {
                    der: vec![],
                    subject: String::new(),
                    subject_common_name: None,
                    public_key: vec![],
                    key_algorithm,
                    template,
                    requested_dns_names: vec![],
                    renewal_certificate: None,
                },
                renewal: None,
                hint: None,
                account,
                templates,
                ca_not_after: datetime!(2035-01-01 0:00 UTC),
            }
        }

        fn key(mut self, k: KeyAlgorithm) -> Req {
            self.csr.key_algorithm = k;
            self
        }

        fn identity(mut self, id: Option<TemplateIdentity>) -> Req {
            self.csr.template = id;
            self
        }

        fn hint(mut self, h: &str) -> Req {
            self.hint = Some(h.into());
            self
        }

        fn with_template(mut self, cn: &str, change: impl FnOnce(&mut Template)) -> Req {
            let entry = self
                .templates
                .iter_mut()
                .find(|e| e.template.cn == cn)
                .unwrap();
            change(&mut entry.template);
            self
        }

        fn with_account(mut self, change: impl FnOnce(&mut Account)) -> Req {
            change(&mut self.account);
            self
        }

        /// A renewal of a certificate of the requested template, issued by this
        /// CA to this account 330 days ago and expiring in 35 days (inside the
        /// 6-week renewal period); `change` adjusts the facts.
        fn renewal(mut self, change: impl FnOnce(&mut RenewalFacts)) -> Req {
            let id = self.csr.template.clone();
            let mut facts = RenewalFacts {
                old: CertificateInfo {
                    thumbprint: "00".repeat(20),
                    serial: "1a2b3c".into(),
                    issuer: "CN=corp-CA, DC=corp, DC=example".into(),
                    subject: "CN=ws01.corp.example".into(),
                    public_key: vec![],
                    not_before: now() - Duration::days(330),
                    not_after: now() + Duration::days(35),
                    template: id,
                },
                signature_valid: true,
                issued_by_this_ca: true,
                revoked: false,
                original_requester_sid: Some(self.account.sid.to_string()),
                previously_approved: false,
            };
            change(&mut facts);
            self.renewal = Some(facts);
            self
        }

        fn run(&self) -> Decision {
            let published: Vec<String> = self
                .templates
                .iter()
                .map(|e| e.template.cn.clone())
                .filter(|cn| cn != "Unpublished")
                .collect();
            let ca = CaFacts {
                name: "corp-CA",
                published: &published,
                certificate_not_after: self.ca_not_after,
            };
            let request = IssuanceRequest {
                csr: &self.csr,
                renewal: self.renewal.as_ref(),
                template_hint: self.hint.as_deref(),
            };
            decide(&request, &self.account, &self.templates, &ca, now())
        }

        fn issued(&self) -> CertificateProfile {
            match self.run() {
                Decision::Issue(p) => p,
                other => panic!("expected Issue, got {other:?}"),
            }
        }
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Expect {
        Issue,
        Pend,
        Deny(u32),
    }

    fn outcome(d: &Decision) -> Expect {
        match d {
            Decision::Issue(_) => Expect::Issue,
            Decision::Pend { .. } => Expect::Pend,
            Decision::Deny(d) => Expect::Deny(d.hresult),
        }
    }

    fn ws(cn: &str) -> Req {
        Req::new(ws01(), cn)
    }

    fn ws_v(major: u32, minor: u32) -> Option<TemplateIdentity> {
        Some(TemplateIdentity {
            oid: Some(format!("{OID_BASE}.8782410.71273024")),
            major: Some(major),
            minor: Some(minor),
            name: None,
        })
    }

    /// Every rule, and which rule wins when several fail.
    #[test]
    fn decision_table() {
        use Expect::{Deny, Issue, Pend};
        use hresult::*;
        let rsa = |bits| KeyAlgorithm::Rsa { bits };
        let by_name = |n: &str| {
            Some(TemplateIdentity {
                name: Some(n.into()),
                ..TemplateIdentity::default()
            })
        };
        let cases: Vec<(&str, Req, Expect)> = vec![
            // 1. template resolution
            ("ws01 WorkstationAuth", ws("WorkstationAuth"), Issue),
            ("by request attribute only", ws("WorkstationAuth").identity(None).hint("WorkstationAuth"), Issue),
            ("by request attribute, any case", ws("WorkstationAuth").identity(None).hint("workstationauth"), Issue),
            ("by request attribute naming the OID", ws("WorkstationAuth").identity(None).hint(&format!("{OID_BASE}.8782410.71273024")), Issue),
            ("by v1 name extension", ws("WorkstationAuth").identity(by_name("WorkstationAuth")), Issue),
            ("OID and agreeing attribute", ws("WorkstationAuth").hint("WorkstationAuth"), Issue),
            ("no identifier", ws("WorkstationAuth").identity(None), Deny(UNSUPPORTED_CERT_TYPE)),
            ("unknown OID", ws("WorkstationAuth").identity(Some(TemplateIdentity { oid: Some("1.2.3.4".into()), ..TemplateIdentity::default() })), Deny(UNSUPPORTED_CERT_TYPE)),
            ("unknown attribute", ws("WorkstationAuth").identity(None).hint("NoSuchTemplate"), Deny(UNSUPPORTED_CERT_TYPE)),
            ("known OID, unknown attribute", ws("WorkstationAuth").hint("NoSuchTemplate"), Deny(UNSUPPORTED_CERT_TYPE)),
            ("OID and attribute disagree", ws("WorkstationAuth").hint("PendingMachine"), Deny(TEMPLATE_CONFLICT)),
            // 2. published
            ("unpublished", ws("Unpublished"), Deny(UNSUPPORTED_CERT_TYPE)),
            ("unpublished beats no Enroll", Req::new(alice(), "Unpublished"), Deny(UNSUPPORTED_CERT_TYPE)),
            ("unknown beats conflict order", ws("Unpublished").hint("WorkstationAuth"), Deny(TEMPLATE_CONFLICT)),
            // 3. renewal
            ("renewal", ws("WorkstationAuth").renewal(|_| {}), Issue),
            ("renewal, bad signature", ws("WorkstationAuth").renewal(|r| r.signature_valid = false), Deny(BAD_SIGNATURE)),
            ("renewal, other CA", ws("WorkstationAuth").renewal(|r| r.issued_by_this_ca = false), Deny(BAD_RENEWAL_CERT_ATTRIBUTE)),
            ("renewal, revoked", ws("WorkstationAuth").renewal(|r| r.revoked = true), Deny(REVOKED)),
            ("renewal, expired", ws("WorkstationAuth").renewal(|r| r.old.not_after = now() - Duration::seconds(1)), Deny(CERT_EXPIRED)),
            ("renewal, expires this instant", ws("WorkstationAuth").renewal(|r| r.old.not_after = now()), Deny(CERT_EXPIRED)),
            ("renewal, not yet valid", ws("WorkstationAuth").renewal(|r| r.old.not_before = now() + Duration::days(1)), Deny(CERT_EXPIRED)),
            ("renewal, before its renewal period", ws("WorkstationAuth").renewal(|r| r.old.not_after = now() + Duration::days(100)), Deny(BAD_RENEWAL_CERT_ATTRIBUTE)),
            ("renewal, renewal period opens now", ws("WorkstationAuth").renewal(|r| r.old.not_after = now() + Duration::days(42)), Issue),
            ("renewal, one second early", ws("WorkstationAuth").renewal(|r| r.old.not_after = now() + Duration::days(42) + Duration::seconds(1)), Deny(BAD_RENEWAL_CERT_ATTRIBUTE)),
            ("renewal, no renewal period on the template", ws("WorkstationAuth").with_template("WorkstationAuth", |t| t.renewal_period = None).renewal(|r| r.old.not_after = now() + Duration::days(100)), Issue),
            ("renewal by another account", ws("WorkstationAuth").renewal(|r| r.original_requester_sid = Some(sid(1202).to_string())), Deny(BAD_RENEWAL_SUBJECT)),
            ("renewal, SID compared without case", ws("WorkstationAuth").renewal(|r| r.original_requester_sid = Some(sid(1201).to_string().to_lowercase())), Issue),
            ("renewal, requester unknown", ws("WorkstationAuth").renewal(|r| r.original_requester_sid = None), Deny(BAD_RENEWAL_SUBJECT)),
            ("renewal of another template", ws("WorkstationAuth").renewal(|r| r.old.template = ws("PendingMachine").csr.template), Deny(TEMPLATE_CONFLICT)),
            ("renewal of a foreign certificate", ws("WorkstationAuth").renewal(|r| r.old.template = None), Deny(TEMPLATE_CONFLICT)),
            ("renewal matched by v1 name", ws("WorkstationAuth").renewal(|r| r.old.template = by_name("WorkstationAuth")), Issue),
            ("renewal: signature first", ws("WorkstationAuth").renewal(|r| { r.signature_valid = false; r.revoked = true; r.issued_by_this_ca = false; }), Deny(BAD_SIGNATURE)),
            ("renewal: revoked before expired", ws("WorkstationAuth").renewal(|r| { r.revoked = true; r.old.not_after = now() - Duration::days(1); }), Deny(REVOKED)),
            ("renewal: expired before other account", ws("WorkstationAuth").renewal(|r| { r.old.not_after = now() - Duration::days(1); r.original_requester_sid = None; }), Deny(CERT_EXPIRED)),
            ("renewal checks before Enroll", ws("ServerAuthECDSA").renewal(|r| r.revoked = true), Deny(REVOKED)),
            // 4. Enroll
            ("ws01 lacks Enroll on ServerAuthECDSA", ws("ServerAuthECDSA"), Deny(TEMPLATE_DENIED)),
            ("web01 via Web Servers", Req::new(web01(), "ServerAuthECDSA"), Issue),
            ("ws01 lacks Enroll on User (Domain Users only)", ws("User"), Deny(TEMPLATE_DENIED)),
            ("key-based renewal without Enroll, flag clear", ws("ServerAuthECDSA").renewal(|_| {}), Deny(TEMPLATE_DENIED)),
            ("key-based renewal without Enroll, flag set", ws("ServerAuthECDSA").with_template("ServerAuthECDSA", |t| t.enrollment_flags |= EnrollmentFlags::ALLOW_PREVIOUS_APPROVAL_KEYBASEDRENEWAL_VALIDATE_REENROLLMENT).renewal(|_| {}), Issue),
            ("flag set, but a new request", ws("ServerAuthECDSA").with_template("ServerAuthECDSA", |t| t.enrollment_flags |= EnrollmentFlags::ALLOW_PREVIOUS_APPROVAL_KEYBASEDRENEWAL_VALIDATE_REENROLLMENT), Deny(TEMPLATE_DENIED)),
            ("no Enroll beats a small key", ws("ServerAuthECDSA").key(rsa(1024)), Deny(TEMPLATE_DENIED)),
            // 5. what this CA supports
            ("CA template", ws("WorkstationAuth").with_template("WorkstationAuth", |t| t.flags |= GeneralFlags::IS_CA), Deny(UNSUPPORTED_CERT_TYPE)),
            ("cross-CA template", ws("WorkstationAuth").with_template("WorkstationAuth", |t| t.flags |= GeneralFlags::IS_CROSS_CA), Deny(UNSUPPORTED_CERT_TYPE)),
            ("key archival", ws("WorkstationAuth").with_template("WorkstationAuth", |t| t.private_key_flags |= PrivateKeyFlags::REQUIRE_PRIVATE_KEY_ARCHIVAL), Deny(ARCHIVED_KEY_REQUIRED)),
            ("attestation required", ws("WorkstationAuth").with_template("WorkstationAuth", |t| t.private_key_flags |= PrivateKeyFlags::ATTEST_REQUIRED), Deny(KEY_ATTESTATION)),
            ("attestation preferred", ws("WorkstationAuth").with_template("WorkstationAuth", |t| t.private_key_flags |= PrivateKeyFlags::ATTEST_PREFERRED), Issue),
            ("CA version 6", ws("WorkstationAuth").with_template("WorkstationAuth", |t| t.private_key_flags = PrivateKeyFlags::from_bits_retain(0x0106_0000)), Issue),
            ("CA version 7", ws("WorkstationAuth").with_template("WorkstationAuth", |t| t.private_key_flags = PrivateKeyFlags::from_bits_retain(0x0107_0000)), Deny(UNSUPPORTED_CERT_TYPE)),
            ("client version is not the CA's business", ws("WorkstationAuth").with_template("WorkstationAuth", |t| t.private_key_flags = PrivateKeyFlags::from_bits_retain(0x0F01_0000)), Issue),
            ("CA support before key", ws("WorkstationAuth").key(rsa(512)).with_template("WorkstationAuth", |t| t.flags |= GeneralFlags::IS_CA), Deny(UNSUPPORTED_CERT_TYPE)),
            // 6. key
            ("RSA 1024 for a 2048 template", ws("WorkstationAuth").key(rsa(1024)), Deny(KEY_LENGTH)),
            ("RSA 4096", ws("WorkstationAuth").key(rsa(4096)), Issue),
            ("P-256 for a 2048-bit template", ws("WorkstationAuth").key(KeyAlgorithm::EcdsaP256), Deny(KEY_LENGTH)),
            ("RSA for an ECDSA_P256 template", Req::new(web01(), "ServerAuthECDSA").key(rsa(2048)), Deny(KEY_LENGTH)),
            ("P-384 for an ECDSA_P256 template", Req::new(web01(), "ServerAuthECDSA").key(KeyAlgorithm::EcdsaP384), Issue),
            ("P-256 for an ECDSA_P384 template", Req::new(web01(), "ServerAuthECDSA").with_template("ServerAuthECDSA", |t| t.ra_application_policies = vec!["msPKI-Asymmetric-Algorithm`PZPWSTR`ECDSA_P384`".into()]), Deny(KEY_LENGTH)),
            ("ECDH_P256 names the same curve", Req::new(web01(), "ServerAuthECDSA").with_template("ServerAuthECDSA", |t| t.ra_application_policies = vec!["msPKI-Asymmetric-Algorithm`PZPWSTR`ECDH_P256`".into()]), Issue),
            ("ECDSA_P521: no such key here", Req::new(web01(), "ServerAuthECDSA").key(KeyAlgorithm::EcdsaP384).with_template("ServerAuthECDSA", |t| t.ra_application_policies = vec!["msPKI-Asymmetric-Algorithm`PZPWSTR`ECDSA_P521`".into()]), Deny(KEY_LENGTH)),
            ("unknown algorithm name", Req::new(web01(), "ServerAuthECDSA").with_template("ServerAuthECDSA", |t| t.ra_application_policies = vec!["msPKI-Asymmetric-Algorithm`PZPWSTR`DSA`".into()]), Deny(KEY_LENGTH)),
            ("RSA named, EC key", ws("WorkstationAuth").key(KeyAlgorithm::EcdsaP384).with_template("WorkstationAuth", |t| { t.schema_version = 3; t.minimal_key_size = 256; t.ra_application_policies = vec!["msPKI-Asymmetric-Algorithm`PZPWSTR`RSA`".into()]; }), Deny(KEY_LENGTH)),
            ("algorithm names ignored below schema 3", ws("WorkstationAuth").with_template("WorkstationAuth", |t| t.ra_application_policies = vec!["msPKI-Asymmetric-Algorithm`PZPWSTR`ECDSA_P256`".into()]), Issue),
            ("key before template version", ws("WorkstationAuth").key(rsa(1024)).identity(ws_v(102, 0)), Deny(KEY_LENGTH)),
            // 7. template version
            ("newer major", ws("WorkstationAuth").identity(ws_v(102, 0)), Deny(BAD_TEMPLATE_VERSION)),
            ("newer minor", ws("WorkstationAuth").identity(ws_v(101, 5)), Deny(BAD_TEMPLATE_VERSION)),
            ("older major, larger minor", ws("WorkstationAuth").identity(ws_v(100, 9)), Issue),
            ("no version in the extension", ws("WorkstationAuth").identity(ws_v(0, 0)).identity(Some(TemplateIdentity { major: None, minor: None, ..ws_v(0, 0).unwrap() })), Issue),
            ("v1 templates have no version check", ws("Machine").identity(Some(TemplateIdentity { oid: Some(format!("{OID_BASE}.3652291.14379546")), major: Some(99), minor: Some(0), name: None })), Issue),
            ("template version before RA signatures", ws("WorkstationAuth").identity(ws_v(102, 0)).with_template("WorkstationAuth", |t| t.ra_signatures = 1), Deny(BAD_TEMPLATE_VERSION)),
            // 8. enrollment agents
            ("RA signature required", ws("WorkstationAuth").with_template("WorkstationAuth", |t| t.ra_signatures = 1), Deny(SIGNATURE_POLICY_REQUIRED)),
            ("RA signature, renewal without flag", ws("WorkstationAuth").with_template("WorkstationAuth", |t| t.ra_signatures = 1).renewal(|_| {}), Deny(SIGNATURE_POLICY_REQUIRED)),
            ("RA signature lifted for a renewal", ws("WorkstationAuth").with_template("WorkstationAuth", |t| { t.ra_signatures = 1; t.enrollment_flags |= EnrollmentFlags::PREVIOUS_APPROVAL_VALIDATE_REENROLLMENT; }).renewal(|_| {}), Issue),
            ("RA signature, old certificate named by v1 name only", ws("WorkstationAuth").with_template("WorkstationAuth", |t| { t.ra_signatures = 1; t.enrollment_flags |= EnrollmentFlags::PREVIOUS_APPROVAL_VALIDATE_REENROLLMENT; }).renewal(|r| r.old.template = by_name("WorkstationAuth")), Deny(SIGNATURE_POLICY_REQUIRED)),
            ("RA signatures before names", Req::new(nodns01(), "WorkstationAuth").with_template("WorkstationAuth", |t| t.ra_signatures = 1), Deny(SIGNATURE_POLICY_REQUIRED)),
            // 9. names
            ("nodns01: no dNSHostName", Req::new(nodns01(), "WorkstationAuth"), Deny(SUBJECT_DNS_REQUIRED)),
            ("empty dNSHostName", ws("WorkstationAuth").with_account(|a| a.dns_host_name = Some(String::new())), Deny(SUBJECT_DNS_REQUIRED)),
            ("dNSHostName with a DN in it", ws("WorkstationAuth").with_account(|a| a.dns_host_name = Some("ws01.corp.example,CN=Administrator".into())), Deny(BAD_REQUESTSUBJECT)),
            ("wildcard dNSHostName", ws("WorkstationAuth").with_account(|a| a.dns_host_name = Some("*.corp.example".into())), Deny(BAD_REQUESTSUBJECT)),
            ("dNSHostName with a NUL", ws("WorkstationAuth").with_account(|a| a.dns_host_name = Some("ws01.corp.example\0.evil.example".into())), Deny(BAD_REQUESTSUBJECT)),
            ("SAN DNS only, no dNSHostName", Req::new(nodns01(), "WorkstationAuth").with_template("WorkstationAuth", |t| t.name_flags = NameFlags::SUBJECT_ALT_REQUIRE_DNS), Deny(SUBJECT_DNS_REQUIRED)),
            ("alice User", Req::new(alice(), "User"), Issue),
            ("bob may Enroll (AutoEnroll is what Contractors lack)", Req::new(bob(), "User"), Issue),
            ("alice without mail", Req::new(alice(), "User").with_account(|a| a.mail = None), Deny(SUBJECT_EMAIL_REQUIRED)),
            ("alice without UPN", Req::new(alice(), "User").with_account(|a| a.user_principal_name = None), Deny(SUBJECT_UPN_REQUIRED)),
            ("subject e-mail before SAN UPN", Req::new(alice(), "User").with_account(|a| { a.user_principal_name = None; a.mail = None; }), Deny(SUBJECT_EMAIL_REQUIRED)),
            ("SAN e-mail only, no mail", Req::new(alice(), "User").with_account(|a| a.mail = None).with_template("User", |t| t.name_flags = NameFlags::SUBJECT_ALT_REQUIRE_EMAIL), Deny(SUBJECT_EMAIL_REQUIRED)),
            ("SPN flag wants the UPN", ws("WorkstationAuth").with_template("WorkstationAuth", |t| t.name_flags |= NameFlags::SUBJECT_ALT_REQUIRE_SPN), Deny(SUBJECT_UPN_REQUIRED)),
            ("directory GUID", ws("WorkstationAuth").with_template("WorkstationAuth", |t| t.name_flags |= NameFlags::SUBJECT_ALT_REQUIRE_DIRECTORY_GUID), Deny(SUBJECT_DIRECTORY_GUID_REQUIRED)),
            ("no name flags at all", ws("WorkstationAuth").with_template("WorkstationAuth", |t| t.name_flags = NameFlags::empty()), Deny(BAD_REQUESTSUBJECT)),
            ("enrollee supplies, request unreadable", ws("WebServer"), Deny(BAD_REQUESTSUBJECT)),
            ("names before validity", Req::new(nodns01(), "WorkstationAuth").with_template("WorkstationAuth", |t| t.validity = None), Deny(SUBJECT_DNS_REQUIRED)),
            // 10. validity
            ("no validity period", ws("WorkstationAuth").with_template("WorkstationAuth", |t| t.validity = None), Deny(UNSUPPORTED_CERT_TYPE)),
            ("zero validity period", ws("WorkstationAuth").with_template("WorkstationAuth", |t| t.validity = Some(Period::from_seconds(0))), Deny(UNSUPPORTED_CERT_TYPE)),
            ("CA certificate expired", Req { ca_not_after: now(), ..ws("WorkstationAuth") }, Deny(CERT_EXPIRED)),
            // 11. approval
            ("PendingMachine pends", ws("PendingMachine"), Pend),
            ("pending: denial rules still come first", Req::new(nodns01(), "PendingMachine"), Deny(SUBJECT_DNS_REQUIRED)),
            ("pending renewal, approved before, no flag", ws("PendingMachine").renewal(|r| r.previously_approved = true), Pend),
            ("pending renewal, flag, not approved before", ws("PendingMachine").with_template("PendingMachine", |t| t.enrollment_flags |= EnrollmentFlags::PREVIOUS_APPROVAL_VALIDATE_REENROLLMENT).renewal(|_| {}), Pend),
            ("pending renewal, approved before, flag", ws("PendingMachine").with_template("PendingMachine", |t| t.enrollment_flags |= EnrollmentFlags::PREVIOUS_APPROVAL_VALIDATE_REENROLLMENT).renewal(|r| r.previously_approved = true), Issue),
            ("new request under the flag still pends", ws("PendingMachine").with_template("PendingMachine", |t| t.enrollment_flags |= EnrollmentFlags::PREVIOUS_APPROVAL_VALIDATE_REENROLLMENT), Pend),
            // Not checked: machine templates for users and user templates for computers.
            ("user account, machine template", Req::new(alice(), "WorkstationAuth").with_account(|a| { a.token.insert(sid(515)); a.dns_host_name = Some("alice-pc.corp.example".into()); }), Issue),
            ("v1 Machine", ws("Machine"), Issue),
        ];
        let mut failures = Vec::new();
        for (name, req, expected) in &cases {
            let decision = req.run();
            let got = outcome(&decision);
            if got != *expected {
                failures.push(format!("{name}: expected {expected:?}, got {decision:?}"));
                continue;
            }
            // Denials and pendings say which template and which account.
            let text = match &decision {
                Decision::Deny(d) => d.reason.clone(),
                Decision::Pend { reason, .. } => reason.clone(),
                Decision::Issue(_) => continue,
            };
            let names_template = req.templates.iter().any(|e| text.contains(&e.template.cn))
                || text.contains("names no certificate template")
                || text.contains("not a certificate template");
            let names_account = text.contains(&req.account.sam_account_name);
            if !names_template || !names_account {
                failures.push(format!("{name}: reason lacks template or account: {text}"));
            }
        }
        assert!(
            failures.is_empty(),
            "{} failures:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn workstation_profile() {
        let p = ws("WorkstationAuth").issued();
        assert_eq!(
            p,
            CertificateProfile {
                template_cn: "WorkstationAuth".into(),
                subject: vec![("CN".into(), "ws01.corp.example".into())],
                subject_alt_names: vec![SubjectAltName::Dns("ws01.corp.example".into())],
                not_before: now(),
                not_after: now() + Duration::days(365),
                key_usage: Some(vec![0xa0, 0x00]),
                extended_key_usage: vec![CLIENT_AUTH.into()],
                application_policies: vec![CLIENT_AUTH.into()],
                issuance_policies: vec![],
                critical_extensions: vec!["2.5.29.15".into()],
                template_information: Some((format!("{OID_BASE}.8782410.71273024"), 101, 4)),
                template_name: None,
                requester_sid: Some("S-1-5-21-1000-2000-3000-1201".into()),
                basic_constraints_end_entity: false,
                include_revocation_info: true,
                ocsp_nocheck: false,
            }
        );
    }

    /// KB5014754: the requester's SID goes into certificates of online
    /// templates only; never beside a subject the enrollee supplied.
    #[test]
    fn requester_sid_extension_follows_kb5014754() {
        let cases: &[(&str, NameFlags, EnrollmentFlags, bool)] = &[
            (
                "online template",
                NameFlags::SUBJECT_REQUIRE_DNS_AS_CN | NameFlags::SUBJECT_ALT_REQUIRE_DNS,
                EnrollmentFlags::empty(),
                true,
            ),
            (
                "subject supplied in the request",
                NameFlags::ENROLLEE_SUPPLIES_SUBJECT,
                EnrollmentFlags::empty(),
                false,
            ),
            (
                "subject supplied, NO_SECURITY_EXTENSION too",
                NameFlags::ENROLLEE_SUPPLIES_SUBJECT,
                EnrollmentFlags::NO_SECURITY_EXTENSION,
                false,
            ),
            (
                "only the SAN supplied: subject from the directory",
                NameFlags::SUBJECT_REQUIRE_DNS_AS_CN
                    | NameFlags::ENROLLEE_SUPPLIES_SUBJECT_ALT_NAME,
                EnrollmentFlags::empty(),
                true,
            ),
            (
                "online, NO_SECURITY_EXTENSION",
                NameFlags::SUBJECT_REQUIRE_DNS_AS_CN | NameFlags::SUBJECT_ALT_REQUIRE_DNS,
                EnrollmentFlags::NO_SECURITY_EXTENSION,
                false,
            ),
        ];
        for (case, name_flags, extra, expected) in cases {
            let mut req = ws("WorkstationAuth").with_template("WorkstationAuth", |t| {
                t.name_flags = *name_flags;
                t.enrollment_flags |= *extra;
            });
            // A request naming another host, as an enrollee-supplied one may.
            req.csr.der = rcgen_csr(&["CN=dc01.corp.example"], &[]);
            req.csr.subject = "CN=dc01.corp.example".into();
            req.csr.subject_common_name = Some("dc01.corp.example".into());
            req.csr.requested_dns_names = vec!["dc01.corp.example".into()];
            let p = req.issued();
            assert_eq!(p.requester_sid.is_some(), *expected, "{case}: {p:?}");
            if *expected {
                assert_eq!(
                    p.requester_sid.as_deref(),
                    Some(sid(1201).to_string().as_str()),
                    "{case}"
                );
            }
            if name_flags.contains(NameFlags::ENROLLEE_SUPPLIES_SUBJECT) {
                assert_eq!(
                    p.subject,
                    vec![("CN".to_string(), "dc01.corp.example".to_string())],
                    "{case}"
                );
            }
        }
    }

    #[test]
    fn csr_subject_is_ignored_unless_the_enrollee_supplies_it() {
        let mut req = ws("WorkstationAuth");
        req.csr.der = rcgen_csr(&["CN=evil.example"], &[]);
        req.csr.subject = "CN=evil.example".into();
        req.csr.subject_common_name = Some("evil.example".into());
        req.csr.requested_dns_names = vec!["evil.example".into()];
        let p = req.issued();
        assert_eq!(
            p.subject,
            vec![("CN".to_string(), "ws01.corp.example".to_string())]
        );
        assert_eq!(
            p.subject_alt_names,
            vec![SubjectAltName::Dns("ws01.corp.example".into())]
        );
    }

    #[test]
    fn user_profile_uses_the_directory_path() {
        let p = Req::new(alice(), "User").issued();
        let s = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(
            p.subject,
            vec![
                s("DC", "example"),
                s("DC", "corp"),
                s("CN", "Users"),
                s("CN", "alice"),
                s("E", "alice@corp.example"),
            ]
        );
        assert_eq!(
            p.subject_alt_names,
            vec![
                SubjectAltName::Upn("alice@corp.example".into()),
                SubjectAltName::Email("alice@corp.example".into()),
            ]
        );
        assert_eq!(p.extended_key_usage.len(), 3);
        assert_eq!(
            p.requester_sid.as_deref(),
            Some("S-1-5-21-1000-2000-3000-1301")
        );
    }

    #[test]
    fn common_name_and_domain_dns() {
        // A user template with SUBJECT_REQUIRE_COMMON_NAME: the account's cn.
        let p = Req::new(alice(), "User")
            .with_template("User", |t| {
                t.name_flags = NameFlags::SUBJECT_REQUIRE_COMMON_NAME
            })
            .issued();
        assert_eq!(p.subject, vec![("CN".to_string(), "alice".to_string())]);
        // A computer template with it: the DNS name ([MS-WCCE] 3.2.2.6.2.1.4.5.9).
        let p = ws("WorkstationAuth")
            .with_template("WorkstationAuth", |t| {
                t.name_flags = NameFlags::SUBJECT_REQUIRE_COMMON_NAME
                    | NameFlags::SUBJECT_ALT_REQUIRE_DOMAIN_DNS
            })
            .issued();
        assert_eq!(
            p.subject,
            vec![("CN".to_string(), "ws01.corp.example".to_string())]
        );
        assert_eq!(
            p.subject_alt_names,
            vec![
                SubjectAltName::Dns("ws01.corp.example".into()),
                SubjectAltName::Dns("corp.example".into()),
            ]
        );
        // A cn with an escaped comma, and the sAMAccountName fallback.
        let a = Account {
            dn: r"CN=Smith\, Jo,OU=Staff,DC=corp,DC=example".into(),
            ..alice()
        };
        assert_eq!(account_cn(&a), "Smith, Jo");
        let a = Account {
            dn: "OU=odd,DC=corp,DC=example".into(),
            sam_account_name: "WS09$".into(),
            ..alice()
        };
        assert_eq!(account_cn(&a), "WS09");
    }

    #[test]
    fn flags_shape_the_profile() {
        let p = ws("WorkstationAuth")
            .with_template("WorkstationAuth", |t| {
                t.enrollment_flags |= EnrollmentFlags::NO_SECURITY_EXTENSION
                    | EnrollmentFlags::NOREVOCATIONINFOINISSUEDCERTS
                    | EnrollmentFlags::ADD_OCSP_NOCHECK
                    | EnrollmentFlags::INCLUDE_BASIC_CONSTRAINTS_FOR_EE_CERTS;
                t.flags |= GeneralFlags::ADD_TEMPLATE_NAME;
                t.certificate_policies = vec!["1.3.6.1.4.1.311.21.8.1.400".into()];
            })
            .issued();
        assert_eq!(p.requester_sid, None);
        assert!(!p.include_revocation_info);
        assert!(p.ocsp_nocheck);
        assert!(p.basic_constraints_end_entity);
        assert_eq!(p.template_name.as_deref(), Some("WorkstationAuth"));
        assert!(p.template_information.is_some());
        assert_eq!(
            p.issuance_policies,
            vec!["1.3.6.1.4.1.311.21.8.1.400".to_string()]
        );

        // v1: the name extension only, no application policies.
        let p = ws("Machine").issued();
        assert_eq!(p.template_name.as_deref(), Some("Machine"));
        assert_eq!(p.template_information, None);
        assert!(p.application_policies.is_empty());
        assert_eq!(
            p.extended_key_usage,
            vec![CLIENT_AUTH.to_string(), SERVER_AUTH.to_string()]
        );

        // v2 without an OID still says which template it is.
        let p = ws("WorkstationAuth")
            .identity(None)
            .hint("WorkstationAuth")
            .with_template("WorkstationAuth", |t| t.oid = None)
            .issued();
        assert_eq!(p.template_information, None);
        assert_eq!(p.template_name.as_deref(), Some("WorkstationAuth"));
    }

    #[test]
    fn validity_is_capped_by_the_ca() {
        let end = now() + Duration::days(100);
        let p = Req {
            ca_not_after: end,
            ..ws("WorkstationAuth")
        }
        .issued();
        assert_eq!((p.not_before, p.not_after), (now(), end));
        let p = ws("WebServer")
            .with_template("WebServer", |t| {
                t.name_flags = NameFlags::SUBJECT_REQUIRE_DNS_AS_CN
            })
            .issued();
        assert_eq!(p.not_after, now() + Duration::days(730));
    }

    #[test]
    fn pend_carries_the_profile() {
        match ws("PendingMachine").run() {
            Decision::Pend { profile, reason } => {
                assert_eq!(profile.template_cn, "PendingMachine");
                assert_eq!(
                    profile.subject,
                    vec![("CN".to_string(), "ws01.corp.example".to_string())]
                );
                assert!(
                    reason.contains("PEND_ALL_REQUESTS") && reason.contains("corp-CA"),
                    "{reason}"
                );
            }
            other => panic!("expected Pend, got {other:?}"),
        }
    }

    /// A PKCS#10 request made by rcgen, with subject attributes in the given
    /// order and the given SANs.
    fn rcgen_csr(subject: &[&str], sans: &[rcgen::SanType]) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for attr in subject {
            let (ty, value) = attr.split_once('=').unwrap();
            let ty = match ty {
                "CN" => rcgen::DnType::CommonName,
                "O" => rcgen::DnType::OrganizationName,
                "C" => rcgen::DnType::CountryName,
                other => panic!("{other}"),
            };
            params.distinguished_name.push(ty, value);
        }
        params.subject_alt_names = sans.to_vec();
        let key = rcgen::KeyPair::generate().unwrap();
        params.serialize_request(&key).unwrap().der().to_vec()
    }

    fn ia5(s: &str) -> rcgen::string::Ia5String {
        s.try_into().unwrap()
    }

    #[test]
    fn enrollee_supplied_names() {
        let upn = rcgen::SanType::OtherName((
            vec![1, 3, 6, 1, 4, 1, 311, 20, 2, 3],
            rcgen::OtherNameValue::Utf8String("web@corp.example".into()),
        ));
        let sans = [
            rcgen::SanType::DnsName(ia5("www.corp.example")),
            rcgen::SanType::Rfc822Name(ia5("web@corp.example")),
            upn,
            rcgen::SanType::DnsName(ia5("www.corp.example")),
        ];
        let der = rcgen_csr(&["C=DE", "O=Corp", "CN=www.corp.example"], &sans);

        let mut req = ws("WebServer");
        req.csr.der = der.clone();
        let p = req.issued();
        let s = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(
            p.subject,
            vec![s("C", "DE"), s("O", "Corp"), s("CN", "www.corp.example")]
        );
        assert_eq!(
            p.subject_alt_names,
            vec![
                SubjectAltName::Dns("www.corp.example".into()),
                SubjectAltName::Email("web@corp.example".into()),
                SubjectAltName::Upn("web@corp.example".into()),
            ],
            "in request order, duplicates dropped"
        );

        // SAN from the request, subject from the directory.
        let mut req = ws("WorkstationAuth").with_template("WorkstationAuth", |t| {
            t.name_flags |= NameFlags::ENROLLEE_SUPPLIES_SUBJECT_ALT_NAME
        });
        req.csr.der = der;
        let p = req.issued();
        assert_eq!(p.subject, vec![s("CN", "ws01.corp.example")]);
        assert_eq!(
            p.subject_alt_names,
            vec![
                SubjectAltName::Dns("ws01.corp.example".into()),
                SubjectAltName::Dns("www.corp.example".into()),
                SubjectAltName::Email("web@corp.example".into()),
                SubjectAltName::Upn("web@corp.example".into()),
            ]
        );

        // An IP address SAN is not something this CA issues.
        let mut req = ws("WebServer");
        req.csr.der = rcgen_csr(
            &["CN=www.corp.example"],
            &[rcgen::SanType::IpAddress("10.0.0.1".parse().unwrap())],
        );
        match req.run() {
            Decision::Deny(d) => {
                assert_eq!(d.hresult, hresult::BAD_REQUESTSUBJECT);
                assert!(
                    d.reason.contains("IP") && d.reason.contains("WebServer"),
                    "{}",
                    d.reason
                );
            }
            other => panic!("{other:?}"),
        }

        // An empty request subject and no SAN: nothing to name the certificate.
        let mut req = ws("WebServer");
        req.csr.der = rcgen_csr(&[], &[]);
        match req.run() {
            Decision::Deny(d) => {
                assert_eq!(d.hresult, hresult::BAD_REQUESTSUBJECT);
                assert!(d.reason.contains("names none"), "{}", d.reason);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bmp_string_subject_from_a_request() {
        // CertificationRequest with subject CN as BMPString "ws", built by hand
        // around rcgen's request: swap the UTF8String CN for a BMPString.
        let der = rcgen_csr(&["CN=ws"], &[]);
        let utf8 = [0x0c, 0x02, b'w', b's'];
        let pos = der.windows(4).position(|w| w == utf8).unwrap();
        // Same length needs a 1-character BMPString: "w" = 00 77.
        let mut patched = der.clone();
        patched[pos..pos + 4].copy_from_slice(&[0x1e, 0x02, 0x00, 0x77]);
        let mut csr = ws("WebServer").csr;
        csr.der = patched;
        let (subject, _) = requested_names(&csr, true).unwrap();
        assert_eq!(subject, vec![("CN".to_string(), "w".to_string())]);
    }

    #[test]
    fn ldap_dn_parsing() {
        let s = |a: &str, b: &str| (a.to_string(), b.to_string());
        let ok: Vec<(&str, Vec<(String, String)>)> = vec![
            (
                "CN=ws01,CN=Computers,DC=corp,DC=example",
                vec![
                    s("CN", "ws01"),
                    s("CN", "Computers"),
                    s("DC", "corp"),
                    s("DC", "example"),
                ],
            ),
            ("cn=a , ou = b", vec![s("CN", "a"), s("OU", "b")]),
            (
                r"CN=Smith\, Jo\2B\\,DC=x",
                vec![s("CN", "Smith, Jo+\\"), s("DC", "x")],
            ),
            (r"CN=caf\C3\A9", vec![s("CN", "café")]),
            (r"CN=a\ ", vec![s("CN", "a ")]),
            ("CN=a+UID=b", vec![s("CN", "a"), s("UID", "b")]),
            ("2.5.4.3=x", vec![s("CN", "x")]),
        ];
        for (dn, expected) in ok {
            assert_eq!(parse_ldap_dn(dn).unwrap(), expected, "{dn}");
        }
        for bad in [
            "",
            "CN",
            "CN=",
            "CN=a,",
            "CN=a,,DC=b",
            "XYZ=a",
            r"CN=a\",
            r"CN=a\C",
            r"CN=\FF\FE",
            "CN=#0403616263",
        ] {
            assert!(parse_ldap_dn(bad).is_err(), "{bad:?} should not parse");
        }
        assert_eq!(
            dn_domain("CN=ws01,CN=Computers,DC=corp,DC=example").as_deref(),
            Some("corp.example")
        );
        assert_eq!(dn_domain("CN=x,O=y"), None);
    }

    #[test]
    fn hresult_values_and_names() {
        // Values from winerror.h; [MS-WCCE] names several of them.
        let table: [(u32, u32, &str); 20] = [
            (
                hresult::BAD_REQUESTSUBJECT,
                0x80094001,
                "CERTSRV_E_BAD_REQUESTSUBJECT",
            ),
            (
                hresult::BAD_RENEWAL_CERT_ATTRIBUTE,
                0x8009400E,
                "CERTSRV_E_BAD_RENEWAL_CERT_ATTRIBUTE",
            ),
            (
                hresult::ENROLL_DENIED,
                0x80094011,
                "CERTSRV_E_ENROLL_DENIED",
            ),
            (
                hresult::TEMPLATE_DENIED,
                0x80094012,
                "CERTSRV_E_TEMPLATE_DENIED",
            ),
            (
                hresult::ADMIN_DENIED_REQUEST,
                0x80094014,
                "CERTSRV_E_ADMIN_DENIED_REQUEST",
            ),
            (
                hresult::UNSUPPORTED_CERT_TYPE,
                0x80094800,
                "CERTSRV_E_UNSUPPORTED_CERT_TYPE",
            ),
            (
                hresult::TEMPLATE_CONFLICT,
                0x80094802,
                "CERTSRV_E_TEMPLATE_CONFLICT",
            ),
            (
                hresult::ARCHIVED_KEY_REQUIRED,
                0x80094804,
                "CERTSRV_E_ARCHIVED_KEY_REQUIRED",
            ),
            (
                hresult::BAD_RENEWAL_SUBJECT,
                0x80094806,
                "CERTSRV_E_BAD_RENEWAL_SUBJECT",
            ),
            (
                hresult::BAD_TEMPLATE_VERSION,
                0x80094807,
                "CERTSRV_E_BAD_TEMPLATE_VERSION",
            ),
            (
                hresult::SIGNATURE_POLICY_REQUIRED,
                0x80094809,
                "CERTSRV_E_SIGNATURE_POLICY_REQUIRED",
            ),
            (
                hresult::SUBJECT_UPN_REQUIRED,
                0x8009480D,
                "CERTSRV_E_SUBJECT_UPN_REQUIRED",
            ),
            (
                hresult::SUBJECT_DIRECTORY_GUID_REQUIRED,
                0x8009480E,
                "CERTSRV_E_SUBJECT_DIRECTORY_GUID_REQUIRED",
            ),
            (
                hresult::SUBJECT_DNS_REQUIRED,
                0x8009480F,
                "CERTSRV_E_SUBJECT_DNS_REQUIRED",
            ),
            (hresult::KEY_LENGTH, 0x80094811, "CERTSRV_E_KEY_LENGTH"),
            (
                hresult::SUBJECT_EMAIL_REQUIRED,
                0x80094812,
                "CERTSRV_E_SUBJECT_EMAIL_REQUIRED",
            ),
            (
                hresult::KEY_ATTESTATION,
                0x8009481A,
                "CERTSRV_E_KEY_ATTESTATION",
            ),
            (hresult::BAD_SIGNATURE, 0x80090006, "NTE_BAD_SIGNATURE"),
            (hresult::REVOKED, 0x80092010, "CRYPT_E_REVOKED"),
            (hresult::CERT_EXPIRED, 0x800B0101, "CERT_E_EXPIRED"),
        ];
        for (constant, value, name) in table {
            assert_eq!(constant, value, "{name}");
            assert_eq!(hresult::name(constant), name);
        }
        assert_eq!(hresult::name(1), "unknown HRESULT");
        let d = Denial {
            hresult: hresult::TEMPLATE_DENIED,
            reason: "WS01$ may not enroll".into(),
        };
        assert_eq!(
            d.to_string(),
            "WS01$ may not enroll (CERTSRV_E_TEMPLATE_DENIED 0x80094012)"
        );
    }

    #[test]
    fn denial_reasons_are_specific() {
        let reason = |r: Req| match r.run() {
            Decision::Deny(d) => d.reason,
            other => panic!("{other:?}"),
        };
        let r = reason(ws("ServerAuthECDSA"));
        assert!(
            r.contains("WS01$") && r.contains("ServerAuthECDSA") && r.contains("grant Enroll"),
            "{r}"
        );
        let r = reason(ws("Unpublished"));
        assert!(r.contains("not published by corp-CA"), "{r}");
        let r = reason(Req::new(nodns01(), "WorkstationAuth"));
        assert!(
            r.contains("NODNS01$") && r.contains("dNSHostName") && r.contains("WorkstationAuth"),
            "{r}"
        );
        let r = reason(ws("WorkstationAuth").key(KeyAlgorithm::Rsa { bits: 1024 }));
        assert!(r.contains("RSA 1024") && r.contains("2048"), "{r}");
        let r = reason(
            ws("WorkstationAuth").renewal(|r| r.old.not_after = now() + Duration::days(100)),
        );
        assert!(
            r.contains("2025-07-29T12:00:00Z") && r.contains("6 weeks"),
            "{r}"
        );
        let r = reason(ws("WorkstationAuth").hint("PendingMachine"));
        assert!(
            r.contains("WorkstationAuth") && r.contains("PendingMachine"),
            "{r}"
        );
    }
}
