//! Which published templates an account may autoenroll, and why not
//! (adcs.md section 5; [MS-CRTD] 3.1 and the autoenrollment client behaviour).
//!
//! A pure function of a directory snapshot, the context and `now`. The rules are
//! checked in a fixed order and the first that fails is the reason reported:
//! template-intrinsic rules first (published, context, CA, schema, subject,
//! signatures, interaction, client version, autoenroll flag), then the rights
//! of the token, then the account's published certificates, and last
//! supersedence, which depends on the verdicts of the other templates: first
//! what readable templates supersede, then what unreadable ones might.

use time::OffsetDateTime;

use super::access::{AccessDecision, Right, check_right};
use super::snapshot::{DirectorySnapshot, TemplateEntry, UnusableTemplate};
use crate::model::{
    Context, EnrollmentFlags, GeneralFlags, NameFlags, SkipReason, Template, UnusableSuccessor,
};
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
    mark_unknown_supersedence(snapshot, &mut verdicts);
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

/// Supersedence on partial knowledge: a published template that cannot be
/// used may still supersede others ([MS-CRTD] 2.21: only an eligible, hence
/// published, template supersedes, and whether it would be eligible is
/// unknown). Its `msPKI-Supersede-Templates` is read apart from the rest:
///
/// - when that list and its cn are read, it holds back only the templates the
///   list names (case-insensitive cn, never itself);
/// - when either cannot be read, it may name any template, so it holds back
///   every new enrollment (and when its cn is unknown, so is whether it is
///   published).
///
/// Unpublished broken templates change nothing. Runs after the known
/// supersedence, which it never overrides.
fn mark_unknown_supersedence(snapshot: &DirectorySnapshot, verdicts: &mut [Verdict]) {
    let candidates: Vec<&UnusableTemplate> = snapshot
        .unusable
        .iter()
        .filter(|u| {
            u.cn.as_deref()
                .is_none_or(|cn| !publishers(snapshot, cn).is_empty())
        })
        .collect();
    if candidates.is_empty() {
        return;
    }
    for v in verdicts.iter_mut().filter(|v| v.is_eligible()) {
        let mut unusable: Vec<UnusableSuccessor> = candidates
            .iter()
            .filter_map(|u| holds_back(u, &v.cn))
            .collect();
        if !unusable.is_empty() {
            unusable.sort();
            unusable.dedup();
            v.reason = Some(SkipReason::SupersedenceUnknown { unusable });
        }
    }
}

/// Whether the unusable template `u` supersedes, or may supersede, `cn`, and
/// what to fix.
fn holds_back(u: &UnusableTemplate, cn: &str) -> Option<UnusableSuccessor> {
    let template = u.cn.clone().unwrap_or_else(|| u.dn.clone());
    // A template does not supersede itself ([MS-CRTD] 2.21 lists others).
    if u.cn
        .as_deref()
        .is_some_and(|own| own.eq_ignore_ascii_case(cn))
    {
        return None;
    }
    if u.supersedes_known() {
        u.supersedes
            .iter()
            .any(|s| s.eq_ignore_ascii_case(cn))
            .then(|| UnusableSuccessor {
                template,
                lists_it: true,
                problem: u.problem.clone(),
            })
    } else {
        Some(UnusableSuccessor {
            template,
            lists_it: false,
            problem: u
                .supersedes_problem
                .clone()
                .unwrap_or_else(|| u.problem.clone()),
        })
    }
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use time::macros::datetime;

    use super::*;
    use crate::directory::sd::SecurityDescriptor;
    use crate::directory::snapshot::NamingContexts;
    use crate::model::{Account, EnrollmentService, Sid, Token};

    const NOW: OffsetDateTime = datetime!(2026-04-01 00:00 UTC);

    /// A machine autoenrollment template that everyone may enroll (no DACL).
    fn entry(cn: &str, supersedes: &[&str]) -> TemplateEntry {
        TemplateEntry {
            template: Template {
                dn: format!("CN={cn},CN=Certificate Templates"),
                cn: cn.to_string(),
                flags: GeneralFlags::MACHINE_TYPE,
                oid: None,
                supersedes: supersedes.iter().map(|s| s.to_string()).collect(),
                enrollment_flags: EnrollmentFlags::AUTO_ENROLLMENT,
                ..crate::pki::keys::tests::template(2, 2048, None)
            },
            security: SecurityDescriptor {
                control: 0x8000,
                owner: None,
                group: None,
                sacl: None,
                dacl: None,
            },
        }
    }

    /// A supersede list that cannot be read.
    const UNREADABLE: Option<&[&str]> = None;

    /// An unusable template (a bad `flags`); `supersedes` is None when its
    /// `msPKI-Supersede-Templates` cannot be read.
    fn broken(cn: Option<&str>, supersedes: Option<&[&str]>) -> UnusableTemplate {
        UnusableTemplate {
            dn: format!("CN={},CN=Certificate Templates", cn.unwrap_or("\\00")),
            cn: cn.map(str::to_string),
            problem: "flags: expected an integer, found \"x\"".into(),
            supersedes: supersedes
                .unwrap_or_default()
                .iter()
                .map(|s| s.to_string())
                .collect(),
            supersedes_problem: supersedes.is_none().then(|| {
                "msPKI-Supersede-Templates: value 1 is not UTF-8 text (invalid byte at offset 0)"
                    .to_string()
            }),
        }
    }

    /// A snapshot whose one CA publishes `published`.
    fn snapshot(
        templates: Vec<TemplateEntry>,
        unusable: Vec<UnusableTemplate>,
        published: &[&str],
    ) -> DirectorySnapshot {
        let sid: Sid = "S-1-5-21-1-2-3-1104".parse().expect("SID");
        DirectorySnapshot {
            naming: NamingContexts {
                default: "DC=corp,DC=example".into(),
                configuration: "CN=Configuration,DC=corp,DC=example".into(),
            },
            account: Account {
                dn: "CN=ws01,CN=Computers,DC=corp,DC=example".into(),
                sam_account_name: "ws01$".into(),
                sid: sid.clone(),
                dns_host_name: Some("ws01.corp.example".into()),
                user_principal_name: None,
                mail: None,
                user_certificates: vec![],
                token: Token::new([sid]),
            },
            templates,
            unusable,
            services: vec![EnrollmentService {
                dn: "CN=corp-CA,CN=Enrollment Services".into(),
                cn: "corp-CA".into(),
                display_name: None,
                dns_host_name: None,
                templates: published.iter().map(|s| s.to_string()).collect(),
                ca_certificates: vec![],
                enrollment_servers: vec![],
            }],
            roots: vec![],
            ntauth: vec![],
            aia: vec![],
            crls: vec![],
            warnings: vec![],
            sid_names: BTreeMap::new(),
        }
    }

    fn codes(snapshot: &DirectorySnapshot) -> Vec<(String, Option<&'static str>)> {
        let options = Options {
            context: Context::Machine,
            allow_prompts: false,
        };
        judge(snapshot, options, NOW)
            .into_iter()
            .map(|v| (v.cn, v.reason.as_ref().map(SkipReason::code)))
            .collect()
    }

    fn row(cn: &str, code: Option<&'static str>) -> (String, Option<&'static str>) {
        (cn.to_string(), code)
    }

    #[test]
    fn a_published_unusable_template_holds_back_what_it_supersedes_or_may() {
        // Table: (case, readable templates, unusable ones, published, verdicts).
        type Row = (
            &'static str,
            Vec<TemplateEntry>,
            Vec<UnusableTemplate>,
            &'static [&'static str],
            Vec<(String, Option<&'static str>)>,
        );
        let table: Vec<Row> = vec![
            (
                "nothing unusable: eligible",
                vec![entry("Old", &[])],
                vec![],
                &["Old"],
                vec![row("Old", None)],
            ),
            (
                "the unusable successor names it: not enrolled",
                vec![entry("Old", &[])],
                vec![broken(Some("New"), Some(&["Old"]))],
                &["Old", "New"],
                vec![
                    row("New", Some("unusable")),
                    row("Old", Some("supersedence_unknown")),
                ],
            ),
            (
                "names are compared without case",
                vec![entry("Old", &[])],
                vec![broken(Some("New"), Some(&["OLD"]))],
                &["Old", "New"],
                vec![
                    row("New", Some("unusable")),
                    row("Old", Some("supersedence_unknown")),
                ],
            ),
            (
                "an unusable template with a readable list holds back only what it names",
                vec![entry("Old", &[]), entry("Other", &[])],
                vec![broken(Some("New"), Some(&["Old"]))],
                &["Old", "Other", "New"],
                vec![
                    row("New", Some("unusable")),
                    row("Old", Some("supersedence_unknown")),
                    row("Other", None),
                ],
            ),
            (
                "an unusable template that supersedes nothing holds back nothing",
                vec![entry("Old", &[])],
                vec![broken(Some("New"), Some(&[]))],
                &["Old", "New"],
                vec![row("New", Some("unusable")), row("Old", None)],
            ),
            (
                "an unreadable supersede list: every new enrollment waits",
                vec![entry("Old", &[]), entry("Other", &[])],
                vec![broken(Some("New"), UNREADABLE)],
                &["Old", "Other", "New"],
                vec![
                    row("New", Some("unusable")),
                    row("Old", Some("supersedence_unknown")),
                    row("Other", Some("supersedence_unknown")),
                ],
            ),
            (
                "an unreadable cn: whether it is published, and what it names, is unknown",
                vec![entry("Old", &[])],
                vec![broken(None, Some(&[]))],
                &["Old"],
                vec![
                    row("CN=\\00,CN=Certificate Templates", Some("unusable")),
                    row("Old", Some("supersedence_unknown")),
                ],
            ),
            (
                "an unpublished unusable template supersedes nothing",
                vec![entry("Old", &[])],
                vec![broken(Some("Draft"), UNREADABLE)],
                &["Old"],
                vec![row("Draft", Some("unusable")), row("Old", None)],
            ),
            (
                "known supersedence still decides first",
                vec![entry("Mid", &["Old"]), entry("Old", &[])],
                vec![broken(Some("New"), Some(&["Mid", "Old"]))],
                &["Mid", "Old", "New"],
                vec![
                    row("Mid", Some("supersedence_unknown")),
                    row("New", Some("unusable")),
                    row("Old", Some("superseded")),
                ],
            ),
            (
                "other reasons stay as they were",
                vec![entry("Old", &[])],
                vec![broken(Some("New"), UNREADABLE)],
                &["New"],
                vec![
                    row("New", Some("unusable")),
                    row("Old", Some("not_published")),
                ],
            ),
        ];
        for (case, templates, unusable, published, want) in table {
            let snap = snapshot(templates, unusable, published);
            assert_eq!(codes(&snap), want, "{case}");
        }
    }

    #[test]
    fn the_reason_names_the_unusable_templates_and_their_problem() {
        let snap = snapshot(
            vec![entry("Old", &[])],
            vec![
                broken(Some("New2"), UNREADABLE),
                broken(Some("New1"), Some(&["Old"])),
                broken(Some("Unrelated"), Some(&["Other"])),
            ],
            &["Old", "New1", "New2", "Unrelated"],
        );
        let options = Options {
            context: Context::Machine,
            allow_prompts: false,
        };
        let old = judge(&snap, options, NOW)
            .into_iter()
            .find(|v| v.cn == "Old")
            .expect("judged");
        assert_eq!(
            old.reason,
            Some(SkipReason::SupersedenceUnknown {
                unusable: vec![
                    UnusableSuccessor {
                        template: "New1".into(),
                        lists_it: true,
                        problem: "flags: expected an integer, found \"x\"".into(),
                    },
                    UnusableSuccessor {
                        template: "New2".into(),
                        lists_it: false,
                        problem: "msPKI-Supersede-Templates: value 1 is not UTF-8 text (invalid byte at offset 0)".into(),
                    },
                ]
            })
        );
        assert!(!old.is_eligible());
        let text = old.reason.expect("a reason").to_string();
        assert!(
            text.contains("New1 supersedes it but cannot be used (flags:"),
            "{text}"
        );
        assert!(text.contains("New2 may supersede it"), "{text}");
        assert!(!text.contains("Unrelated"), "{text}");
    }
}
