//! The access check for the extended rights of a certificate template: may this
//! token Enroll, may it AutoEnroll?
//!
//! A template's security descriptor grants these rights with object ACEs naming
//! the right's GUID, or with plain ACEs whose mask carries the control-access bit.
//! This is the control-access part of the Windows access check ([MS-DTYP] 2.5.3.2,
//! [MS-ADTS] 5.1.3.3.4 "checking control access right-based access"), cut down to
//! what the autoenrollment decision (adcs.md section 4) and the CA's Enroll check
//! need:
//!
//! - no DACL grants everything; an empty DACL grants nothing;
//! - DACL ACEs are read in order; inherit-only ACEs and ACEs whose trustee is not in
//!   the token are skipped;
//! - an allowed/denied ACE matches when its mask holds CONTROL_ACCESS (0x100) or
//!   GENERIC_ALL (0x10000000, which maps to full control and so includes it); an
//!   object ACE must in addition name the right's GUID or no object type at all;
//! - the first matching ACE decides; ACEs of other types, and object ACEs about
//!   another GUID, are ignored.
//!
//! Every decision names the ACE that made it, so "why may I not enroll" has an answer.

use std::fmt;

use super::sd::{AceType, SecurityDescriptor, rights};
use crate::model::{Guid, Sid, Token};

/// An extended right on a certificate template ([MS-CRTD] 2.4, adcs.md section 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Right {
    /// Request a certificate of the template.
    Enroll,
    /// Have the template enrolled automatically.
    AutoEnroll,
}

impl Right {
    /// The rights-GUID that object ACEs name for this right.
    pub fn guid(self) -> Guid {
        match self {
            Right::Enroll => Guid::ENROLL,
            Right::AutoEnroll => Guid::AUTOENROLL,
        }
    }
}

impl fmt::Display for Right {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Right::Enroll => "Enroll",
            Right::AutoEnroll => "AutoEnroll",
        })
    }
}

/// The outcome of [`check_right`], with what decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessDecision {
    /// Granted by the allowed ACE at this index of the DACL (counting from 0).
    Allowed { ace: usize },
    /// Refused by the denied ACE at this index, whose trustee `sid` is in the token.
    Denied { ace: usize, sid: Sid },
    /// No ACE grants the right (this includes an empty DACL).
    NotGranted,
    /// The descriptor has no DACL, which grants everything.
    NoDacl,
}

impl AccessDecision {
    /// Whether the right is granted.
    pub fn is_granted(&self) -> bool {
        matches!(
            self,
            AccessDecision::Allowed { .. } | AccessDecision::NoDacl
        )
    }
}

impl fmt::Display for AccessDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccessDecision::Allowed { ace } => write!(f, "granted by DACL ACE {ace}"),
            AccessDecision::Denied { ace, sid } => write!(f, "denied to {sid} by DACL ACE {ace}"),
            AccessDecision::NotGranted => f.write_str("no ACE of the DACL grants it"),
            AccessDecision::NoDacl => f.write_str("granted: the security descriptor has no DACL"),
        }
    }
}

/// Decides whether `token` holds `right` under `sd` (rules in the module doc).
pub fn check_right(sd: &SecurityDescriptor, token: &Token, right: Right) -> AccessDecision {
    let Some(dacl) = &sd.dacl else {
        return AccessDecision::NoDacl;
    };
    let wanted = right.guid();
    for (index, ace) in dacl.aces.iter().enumerate() {
        if ace.is_inherit_only() || !token.contains(&ace.sid) {
            continue;
        }
        let (allow, object) = match ace.ace_type {
            AceType::AccessAllowed => (true, false),
            AceType::AccessAllowedObject => (true, true),
            AceType::AccessDenied => (false, false),
            AceType::AccessDeniedObject => (false, true),
            _ => continue,
        };
        // GENERIC_ALL maps to full control, which includes control access.
        let control_access = ace.mask & (rights::CONTROL_ACCESS | rights::GENERIC_ALL) != 0;
        // An object ACE without an ObjectType covers every extended right.
        let about_this_right = !object || ace.object_type.is_none_or(|g| g == wanted);
        if !control_access || !about_this_right {
            continue;
        }
        return if allow {
            AccessDecision::Allowed { ace: index }
        } else {
            AccessDecision::Denied {
                ace: index,
                sid: ace.sid.clone(),
            }
        };
    }
    AccessDecision::NotGranted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::sd::{Ace, Acl, ace_flags};

    fn domain_computers() -> Sid {
        "S-1-5-21-1000-2000-3000-515".parse().unwrap()
    }

    fn domain_users() -> Sid {
        "S-1-5-21-1000-2000-3000-513".parse().unwrap()
    }

    fn computer_token() -> Token {
        Token::new([
            "S-1-5-21-1000-2000-3000-1105".parse().unwrap(),
            domain_computers(),
            Sid::everyone(),
            Sid::authenticated_users(),
        ])
    }

    fn sd(aces: Vec<Ace>) -> SecurityDescriptor {
        SecurityDescriptor {
            control: 0,
            owner: None,
            group: None,
            sacl: None,
            dacl: Some(Acl::new(aces)),
        }
    }

    const CR: u32 = rights::CONTROL_ACCESS;

    fn enroll(sid: Sid) -> Ace {
        Ace::allowed_object(sid, CR, Some(Guid::ENROLL))
    }

    fn autoenroll(sid: Sid) -> Ace {
        Ace::allowed_object(sid, CR, Some(Guid::AUTOENROLL))
    }

    /// (name, ACEs or None for no DACL, expected Enroll, expected AutoEnroll).
    fn table() -> Vec<(
        &'static str,
        Option<Vec<Ace>>,
        AccessDecision,
        AccessDecision,
    )> {
        use AccessDecision::*;
        let dc = domain_computers;
        let denied = |ace| Denied { ace, sid: dc() };
        vec![
            ("no DACL grants", None, NoDacl, NoDacl),
            ("empty DACL denies", Some(vec![]), NotGranted, NotGranted),
            (
                "Enroll and AutoEnroll object ACEs",
                Some(vec![enroll(dc()), autoenroll(dc())]),
                Allowed { ace: 0 },
                Allowed { ace: 1 },
            ),
            (
                "Enroll granted but AutoEnroll not",
                Some(vec![enroll(dc())]),
                Allowed { ace: 0 },
                NotGranted,
            ),
            (
                "deny first wins",
                Some(vec![
                    Ace::denied_object(dc(), CR, Some(Guid::ENROLL)),
                    enroll(dc()),
                    autoenroll(dc()),
                ]),
                denied(0),
                Allowed { ace: 2 },
            ),
            (
                "allow first wins",
                Some(vec![
                    enroll(dc()),
                    Ace::denied_object(dc(), CR, Some(Guid::ENROLL)),
                ]),
                Allowed { ace: 0 },
                NotGranted,
            ),
            (
                "plain deny with control access denies every right",
                Some(vec![Ace::denied(dc(), CR), enroll(dc()), autoenroll(dc())]),
                denied(0),
                denied(0),
            ),
            (
                "object deny without GUID denies every right",
                Some(vec![Ace::denied_object(dc(), CR, None), enroll(dc())]),
                denied(0),
                denied(0),
            ),
            (
                "deny for another GUID is ignored",
                Some(vec![
                    Ace::denied_object(dc(), CR, Some(Guid::AUTOENROLL)),
                    enroll(dc()),
                ]),
                Allowed { ace: 1 },
                denied(0),
            ),
            (
                "deny without control access is ignored",
                Some(vec![
                    Ace::denied(dc(), rights::WRITE_PROPERTY | rights::WRITE_DAC),
                    enroll(dc()),
                ]),
                Allowed { ace: 1 },
                NotGranted,
            ),
            (
                "inherit-only ACEs are skipped",
                Some(vec![
                    Ace::denied(dc(), CR).with_flags(ace_flags::INHERIT_ONLY),
                    enroll(dc()).with_flags(ace_flags::INHERIT_ONLY | ace_flags::CONTAINER_INHERIT),
                    autoenroll(dc()),
                ]),
                NotGranted,
                Allowed { ace: 2 },
            ),
            (
                "inherited (not inherit-only) ACEs apply",
                Some(vec![enroll(dc()).with_flags(ace_flags::INHERITED)]),
                Allowed { ace: 0 },
                NotGranted,
            ),
            (
                "object ACE without GUID grants every extended right",
                Some(vec![Ace::allowed_object(dc(), CR, None)]),
                Allowed { ace: 0 },
                Allowed { ace: 0 },
            ),
            (
                "object ACE for another GUID is ignored",
                Some(vec![Ace::allowed_object(
                    dc(),
                    CR,
                    Some("00299570-246d-11d0-a768-00aa006e0529".parse().unwrap()),
                )]),
                NotGranted,
                NotGranted,
            ),
            (
                "object ACE needs control access in its mask",
                Some(vec![Ace::allowed_object(
                    dc(),
                    rights::READ_PROPERTY,
                    Some(Guid::ENROLL),
                )]),
                NotGranted,
                NotGranted,
            ),
            (
                "GenericAll grants",
                Some(vec![Ace::allowed(dc(), rights::GENERIC_ALL)]),
                Allowed { ace: 0 },
                Allowed { ace: 0 },
            ),
            (
                "full control 0xF01FF grants",
                Some(vec![Ace::allowed(dc(), 0x000F_01FF)]),
                Allowed { ace: 0 },
                Allowed { ace: 0 },
            ),
            (
                "plain allowed ACE with read rights only does not grant",
                Some(vec![Ace::allowed(
                    Sid::authenticated_users(),
                    rights::LIST_CHILDREN
                        | rights::READ_PROPERTY
                        | rights::LIST_OBJECT
                        | rights::READ_CONTROL
                        | rights::GENERIC_READ,
                )]),
                NotGranted,
                NotGranted,
            ),
            (
                "SID not in the token is ignored",
                Some(vec![
                    Ace::denied(domain_users(), CR),
                    enroll(domain_users()),
                    autoenroll(Sid::authenticated_users()),
                ]),
                NotGranted,
                Allowed { ace: 2 },
            ),
            (
                "Everyone in the token matches",
                Some(vec![Ace::allowed_object(
                    Sid::everyone(),
                    CR,
                    Some(Guid::ENROLL),
                )]),
                Allowed { ace: 0 },
                NotGranted,
            ),
            (
                "audit and unknown ACE types are ignored",
                Some(vec![
                    Ace {
                        ace_type: AceType::SystemAudit,
                        ..Ace::denied(dc(), CR)
                    },
                    Ace {
                        ace_type: AceType::Other(0x0a),
                        ..Ace::denied(dc(), CR)
                    },
                    Ace {
                        ace_type: AceType::SystemAuditObject,
                        ..Ace::denied_object(dc(), CR, None)
                    },
                    enroll(dc()),
                ]),
                Allowed { ace: 3 },
                NotGranted,
            ),
        ]
    }

    #[test]
    fn decision_table() {
        let token = computer_token();
        for (name, aces, want_enroll, want_auto) in table() {
            let sd = match aces {
                Some(aces) => sd(aces),
                None => SecurityDescriptor {
                    dacl: None,
                    ..sd(vec![])
                },
            };
            assert_eq!(
                check_right(&sd, &token, Right::Enroll),
                want_enroll,
                "{name}: Enroll"
            );
            assert_eq!(
                check_right(&sd, &token, Right::AutoEnroll),
                want_auto,
                "{name}: AutoEnroll"
            );
        }
    }

    #[test]
    fn empty_token_gets_nothing_from_a_dacl() {
        let sd = sd(vec![Ace::allowed(Sid::everyone(), rights::GENERIC_ALL)]);
        assert_eq!(
            check_right(&sd, &Token::default(), Right::Enroll),
            AccessDecision::NotGranted
        );
    }

    #[test]
    fn decisions_and_rights_read_well() {
        assert!(AccessDecision::Allowed { ace: 1 }.is_granted());
        assert!(AccessDecision::NoDacl.is_granted());
        assert!(!AccessDecision::NotGranted.is_granted());
        assert!(
            !AccessDecision::Denied {
                ace: 0,
                sid: Sid::everyone()
            }
            .is_granted()
        );
        assert_eq!(Right::Enroll.to_string(), "Enroll");
        assert_eq!(Right::AutoEnroll.to_string(), "AutoEnroll");
        assert_eq!(Right::Enroll.guid(), Guid::ENROLL);
        assert_eq!(Right::AutoEnroll.guid(), Guid::AUTOENROLL);
        assert_eq!(
            AccessDecision::Denied {
                ace: 2,
                sid: Sid::everyone()
            }
            .to_string(),
            "denied to S-1-1-0 by DACL ACE 2"
        );
    }
}
