//! Why a template is not autoenrolled for an account. Every skip carries one of
//! these; its text is what `templates`, `plan` and the logs show, and its code is
//! the stable identifier for scripts.

use std::fmt;

use super::Context;

/// The reason a template is skipped, in the order of the rules of adcs.md
/// section 5 (the first rule that fails is the one reported).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// A value of the template could not be decoded; the template is not judged.
    Unusable { dn: String, problem: String },
    /// No enrollment service lists the template in `certificateTemplates`.
    NotPublished,
    /// A machine template in the user context or the other way round.
    WrongContext { template: Context, running: Context },
    /// IS_CA / IS_CROSS_CA templates are never autoenrolled.
    CaTemplate,
    /// Schema version 1 templates are never autoenrolled.
    SchemaVersion1,
    /// ENROLLEE_SUPPLIES_SUBJECT: the subject must come from the request.
    SubjectSuppliedInRequest,
    /// ENROLLEE_SUPPLIES_SUBJECT_ALT_NAME.
    SubjectAltNameSuppliedInRequest,
    /// `msPKI-RA-Signature` asks for enrollment-agent signatures.
    NeedsAgentSignatures(u32),
    /// USER_INTERACTION_REQUIRED (and the policy does not allow prompts).
    NeedsInteraction,
    /// The template requires a newer client than this engine is.
    ClientVersion { required: u32, supported: u32 },
    /// AUTO_ENROLLMENT is not set in `msPKI-Enrollment-Flag`.
    NotAutoenrollTemplate,
    /// The token holds no ACE granting the right.
    RightNotGranted { right: &'static str },
    /// An ACE denies the right to a SID of the token.
    RightDenied {
        right: &'static str,
        principal: String,
    },
    /// AUTO_ENROLLMENT_CHECK_USER_DS_CERTIFICATE and `userCertificate` already
    /// holds a valid certificate of the template.
    AlreadyInDirectory,
    /// An eligible template lists this one in `msPKI-Supersede-Templates`.
    SupersededBy(String),
    /// Eligible by every rule, but published templates that could not be used
    /// (`unusable`) list it in their `msPKI-Supersede-Templates`, or have a
    /// supersede list (or cn) that cannot be read and so may list it: a new
    /// enrollment could be one the administrator has replaced, so none is made
    /// until they are fixed. Like [`SkipReason::AlreadyInDirectory`] it only
    /// blocks new enrollments; a held certificate still renews.
    SupersedenceUnknown { unusable: Vec<UnusableSuccessor> },
}

/// A published template that cannot be used and supersedes, or may supersede,
/// the template a [`SkipReason::SupersedenceUnknown`] holds back.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct UnusableSuccessor {
    /// Its cn, or its DN when the cn cannot be read.
    pub template: String,
    /// True when its readable `msPKI-Supersede-Templates` names the held-back
    /// template; false when that list (or its cn) cannot be read, so that it
    /// may name any template.
    pub lists_it: bool,
    /// What to fix: the value that makes it unusable (`lists_it`), or why its
    /// supersede list or cn cannot be read ("attribute: problem").
    pub problem: String,
}

impl fmt::Display for UnusableSuccessor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lists_it {
            write!(
                f,
                "{} supersedes it but cannot be used ({})",
                self.template, self.problem
            )
        } else {
            write!(
                f,
                "{} may supersede it: its msPKI-Supersede-Templates is unknown ({})",
                self.template, self.problem
            )
        }
    }
}

impl SkipReason {
    /// A stable, machine-readable name for the reason.
    pub fn code(&self) -> &'static str {
        match self {
            SkipReason::Unusable { .. } => "unusable",
            SkipReason::NotPublished => "not_published",
            SkipReason::WrongContext { .. } => "wrong_context",
            SkipReason::CaTemplate => "ca_template",
            SkipReason::SchemaVersion1 => "schema_v1",
            SkipReason::SubjectSuppliedInRequest => "enrollee_supplies_subject",
            SkipReason::SubjectAltNameSuppliedInRequest => "enrollee_supplies_subject_alt_name",
            SkipReason::NeedsAgentSignatures(_) => "needs_agent_signatures",
            SkipReason::NeedsInteraction => "needs_interaction",
            SkipReason::ClientVersion { .. } => "client_version",
            SkipReason::NotAutoenrollTemplate => "not_autoenroll",
            SkipReason::RightNotGranted { .. } => "right_not_granted",
            SkipReason::RightDenied { .. } => "right_denied",
            SkipReason::AlreadyInDirectory => "already_in_directory",
            SkipReason::SupersededBy(_) => "superseded",
            SkipReason::SupersedenceUnknown { .. } => "supersedence_unknown",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::Unusable { dn, problem } => write!(f, "unusable: {dn} {problem}"),
            SkipReason::NotPublished => {
                f.write_str("not published: no enrollment service lists it in certificateTemplates")
            }
            SkipReason::WrongContext { template, running } => write!(
                f,
                "{template} template: not enrolled in the {running} context"
            ),
            SkipReason::CaTemplate => f.write_str("CA certificate template: never autoenrolled"),
            SkipReason::SchemaVersion1 => {
                f.write_str("schema version 1 template: version 1 templates are never autoenrolled")
            }
            SkipReason::SubjectSuppliedInRequest => f.write_str(
                "subject supplied in request (ENROLLEE_SUPPLIES_SUBJECT): autoenrollment takes the subject from the directory",
            ),
            SkipReason::SubjectAltNameSuppliedInRequest => f.write_str(
                "subject alternative name supplied in request (ENROLLEE_SUPPLIES_SUBJECT_ALT_NAME): autoenrollment takes names from the directory",
            ),
            SkipReason::NeedsAgentSignatures(n) => write!(
                f,
                "needs {n} enrollment agent signature(s) (msPKI-RA-Signature)"
            ),
            SkipReason::NeedsInteraction => f.write_str(
                "needs user interaction (USER_INTERACTION_REQUIRED) and prompts are not allowed",
            ),
            SkipReason::ClientVersion {
                required,
                supported,
            } => write!(
                f,
                "requires client version {required}, this engine supports up to {supported}"
            ),
            SkipReason::NotAutoenrollTemplate => f.write_str(
                "not an autoenrollment template (AUTO_ENROLLMENT not set in msPKI-Enrollment-Flag)",
            ),
            SkipReason::RightNotGranted { right } => write!(
                f,
                "no {right} right: no ACE of the template's security descriptor grants it to this account or its groups"
            ),
            SkipReason::RightDenied { right, principal } => {
                write!(f, "{right} right denied to {principal}")
            }
            SkipReason::AlreadyInDirectory => f.write_str(
                "a valid certificate of this template is already published in the account's userCertificate",
            ),
            SkipReason::SupersededBy(by) => write!(f, "superseded by {by}"),
            SkipReason::SupersedenceUnknown { unusable } => {
                let names: Vec<String> = unusable.iter().map(|u| u.template.clone()).collect();
                let items: Vec<String> = unusable.iter().map(ToString::to_string).collect();
                write!(
                    f,
                    "not enrolled: {}; a new enrollment waits until {} {} fixed",
                    bounded(&items, "; "),
                    name_list(&names),
                    if names.len() == 1 { "is" } else { "are" }
                )
            }
        }
    }
}

/// The first few items joined by `sep`, then "and N more": one readable line
/// however many templates are broken.
fn bounded(items: &[String], sep: &str) -> String {
    const SHOWN: usize = 3;
    if items.len() <= SHOWN {
        items.join(sep)
    } else {
        format!(
            "{}{sep}and {} more",
            items[..SHOWN].join(sep),
            items.len() - SHOWN
        )
    }
}

/// "A", "A and B", "A, B and C", "A, B, C and 4 more": the names of a reason,
/// bounded so that a directory with many broken templates gives one readable line.
fn name_list(names: &[String]) -> String {
    const SHOWN: usize = 3;
    match names {
        [] => "(none)".to_string(),
        [one] => one.clone(),
        [rest @ .., last] if names.len() <= SHOWN => format!("{} and {last}", rest.join(", ")),
        _ => format!(
            "{} and {} more",
            names[..SHOWN].join(", "),
            names.len() - SHOWN
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn successor(template: &str, lists_it: bool) -> UnusableSuccessor {
        UnusableSuccessor {
            template: template.to_string(),
            lists_it,
            problem: "flags: expected an integer, found \"x\"".to_string(),
        }
    }

    #[test]
    fn supersedence_unknown_names_what_to_fix() {
        let r = |items: Vec<UnusableSuccessor>| SkipReason::SupersedenceUnknown { unusable: items };
        assert_eq!(
            r(vec![successor("New", true)]).code(),
            "supersedence_unknown"
        );
        assert_eq!(
            r(vec![successor("New", true)]).to_string(),
            "not enrolled: New supersedes it but cannot be used (flags: expected an integer, found \"x\"); a new enrollment waits until New is fixed"
        );
        assert_eq!(
            r(vec![successor("Broken", false)]).to_string(),
            "not enrolled: Broken may supersede it: its msPKI-Supersede-Templates is unknown (flags: expected an integer, found \"x\"); a new enrollment waits until Broken is fixed"
        );
        let two = r(vec![successor("A", true), successor("B", false)]).to_string();
        assert!(two.starts_with("not enrolled: A supersedes it"), "{two}");
        assert!(two.contains("; B may supersede it"), "{two}");
        assert!(two.ends_with("until A and B are fixed"), "{two}");
        let many: Vec<UnusableSuccessor> = ["A", "B", "C", "D", "E"]
            .iter()
            .map(|n| successor(n, false))
            .collect();
        let many = r(many).to_string();
        assert!(many.contains("; and 2 more; a new enrollment"), "{many}");
        assert!(
            many.ends_with("until A, B, C and 2 more are fixed"),
            "{many}"
        );
    }
}
