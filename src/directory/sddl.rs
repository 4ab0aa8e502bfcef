//! SDDL, the text form of security descriptors ([MS-DTYP] 2.5.1).
//!
//! People read and write template permissions as SDDL:
//! `O:DAG:DAD:PAI(OA;;CR;0e10c968-78fb-11d2-90d4-00c04f79dc55;;DC)(A;;LCRPLORC;;;AU)`.
//! The lab and the tests describe templates this way, and `templates` shows them
//! this way, so this module turns SDDL into a [`SecurityDescriptor`] and back.
//!
//! Supported ([MS-DTYP] 2.5.1.1 grammar):
//! - parts `O:` owner, `G:` group, `D:` DACL, `S:` SACL, each at most once, any
//!   subset, in any order (printed in that order);
//! - ACL flags `P`, `AR`, `AI` and `NO_ACCESS_CONTROL` (a NULL ACL, which is the same
//!   as no ACL: `dacl: None`);
//! - ACEs `(type;flags;rights;object_guid;inherit_object_guid;sid)` with types `A`,
//!   `D`, `OA`, `OD`, `AU`, `OU`; flags `OI CI NP IO ID SA FA`; rights as two-letter
//!   names (`GA GR GW GX RC SD WD WO RP WP CC DC LC SW LO DT CR FA FR FW FX KA KR KW
//!   KX`) or a number (`0x1f01ff` or decimal);
//! - SIDs as `S-1-...` or two-letter aliases ([MS-DTYP] 2.5.1.1 `sid-token`).
//!   Domain-relative aliases (`DA`, `DU`, `DC`, `EA`, ...) use the domain SID
//!   passed in; the forest-root ones (`EA`, `SA`, `RO`, `EK`) use it too.
//!
//! Not supported: conditional ACEs and resource attributes (a seventh field or
//! nested parentheses), and the ACE types that need them.
//!
//! Lenient where it costs nothing: keywords and aliases in any case, whitespace
//! between tokens, and ACE flags also as a number (`0x13`), which the printer uses
//! for flag bits that have no name.

use std::fmt::Write as _;

use super::sd::{Ace, AceType, Acl, SdError, SecurityDescriptor, ace_flags, control, rights};
use crate::model::guid::GuidError;
use crate::model::sid::{MAX_SUB_AUTHORITIES, SidError};
use crate::model::{Guid, Sid};

/// Aliases of SIDs that do not depend on the domain ([MS-DTYP] 2.4.2.4, 2.5.1.1):
/// alias, identifier authority, sub-authorities.
const WELL_KNOWN: &[(&str, u64, &[u32])] = &[
    ("WD", 1, &[0]),
    ("CO", 3, &[0]),
    ("CG", 3, &[1]),
    ("OW", 3, &[4]),
    ("NU", 5, &[2]),
    ("IU", 5, &[4]),
    ("SU", 5, &[6]),
    ("AN", 5, &[7]),
    ("ED", 5, &[9]),
    ("PS", 5, &[10]),
    ("AU", 5, &[11]),
    ("RC", 5, &[12]),
    ("SY", 5, &[18]),
    ("LS", 5, &[19]),
    ("NS", 5, &[20]),
    ("BA", 5, &[32, 544]),
    ("BU", 5, &[32, 545]),
    ("BG", 5, &[32, 546]),
    ("PU", 5, &[32, 547]),
    ("AO", 5, &[32, 548]),
    ("SO", 5, &[32, 549]),
    ("PO", 5, &[32, 550]),
    ("BO", 5, &[32, 551]),
    ("RE", 5, &[32, 552]),
    ("RU", 5, &[32, 554]),
    ("RD", 5, &[32, 555]),
    ("NO", 5, &[32, 556]),
    ("MU", 5, &[32, 558]),
    ("LU", 5, &[32, 559]),
    ("IS", 5, &[32, 568]),
    ("CY", 5, &[32, 569]),
    ("ER", 5, &[32, 573]),
    ("CD", 5, &[32, 574]),
    ("RA", 5, &[32, 575]),
    ("ES", 5, &[32, 576]),
    ("MS", 5, &[32, 577]),
    ("HA", 5, &[32, 578]),
    ("AA", 5, &[32, 579]),
    ("RM", 5, &[32, 580]),
    ("AC", 15, &[2, 1]),
    ("LW", 16, &[4096]),
    ("ME", 16, &[8192]),
    ("MP", 16, &[8448]),
    ("HI", 16, &[12288]),
    ("SI", 16, &[16384]),
];

/// Aliases of SIDs relative to the domain SID: alias, RID.
const DOMAIN_RELATIVE: &[(&str, u32)] = &[
    ("RO", 498),
    ("LA", 500),
    ("LG", 501),
    ("DA", 512),
    ("DU", 513),
    ("DG", 514),
    ("DC", 515),
    ("DD", 516),
    ("CA", 517),
    ("SA", 518),
    ("EA", 519),
    ("PA", 520),
    ("CN", 522),
    ("AP", 525),
    ("KA", 526),
    ("EK", 527),
    ("RS", 553),
];

/// Rights with a name of their own, in the order the printer writes them
/// (ascending bits, as Windows does: `CCDCLCSWRPWPDTLOCRSDRCWDWO`).
const RIGHT_NAMES: &[(&str, u32)] = &[
    ("CC", rights::CREATE_CHILD),
    ("DC", rights::DELETE_CHILD),
    ("LC", rights::LIST_CHILDREN),
    ("SW", rights::SELF_WRITE),
    ("RP", rights::READ_PROPERTY),
    ("WP", rights::WRITE_PROPERTY),
    ("DT", rights::DELETE_TREE),
    ("LO", rights::LIST_OBJECT),
    ("CR", rights::CONTROL_ACCESS),
    ("SD", rights::DELETE),
    ("RC", rights::READ_CONTROL),
    ("WD", rights::WRITE_DAC),
    ("WO", rights::WRITE_OWNER),
    ("GA", rights::GENERIC_ALL),
    ("GX", rights::GENERIC_EXECUTE),
    ("GW", rights::GENERIC_WRITE),
    ("GR", rights::GENERIC_READ),
];

/// File and registry rights: accepted when parsing, never printed (their bits
/// overlap the directory ones).
const COMPOSITE_RIGHT_NAMES: &[(&str, u32)] = &[
    ("FA", rights::FILE_ALL_ACCESS),
    ("FR", rights::FILE_GENERIC_READ),
    ("FW", rights::FILE_GENERIC_WRITE),
    ("FX", rights::FILE_GENERIC_EXECUTE),
    ("KA", rights::KEY_ALL_ACCESS),
    ("KR", rights::KEY_READ),
    ("KW", rights::KEY_WRITE),
    ("KX", rights::KEY_EXECUTE),
];

/// ACE flags in printing order.
const FLAG_NAMES: &[(&str, u8)] = &[
    ("OI", ace_flags::OBJECT_INHERIT),
    ("CI", ace_flags::CONTAINER_INHERIT),
    ("NP", ace_flags::NO_PROPAGATE_INHERIT),
    ("IO", ace_flags::INHERIT_ONLY),
    ("ID", ace_flags::INHERITED),
    ("SA", ace_flags::SUCCESSFUL_ACCESS),
    ("FA", ace_flags::FAILED_ACCESS),
];

/// The ACE types SDDL can carry here.
const TYPE_NAMES: &[(&str, AceType)] = &[
    ("A", AceType::AccessAllowed),
    ("D", AceType::AccessDenied),
    ("AU", AceType::SystemAudit),
    ("OA", AceType::AccessAllowedObject),
    ("OD", AceType::AccessDeniedObject),
    ("OU", AceType::SystemAuditObject),
];

/// SDDL names of ACE types the parser rejects; the printer shows them for ACEs
/// kept as [`AceType::Other`].
const OTHER_TYPE_NAMES: &[(&str, u8)] = &[
    ("AL", 0x03),
    ("OL", 0x08),
    ("XA", 0x09),
    ("XD", 0x0A),
    ("ZA", 0x0B),
    ("XU", 0x0D),
    ("ML", 0x11),
    ("RA", 0x12),
    ("SP", 0x13),
];

const NULL_ACL: &str = "NO_ACCESS_CONTROL";

/// The control bits of the ACL flags `P`, `AR` and `AI` ([MS-DTYP] 2.5.1.1
/// `dacl-flags`), for the DACL and for the SACL.
const DACL_FLAG_BITS: [u16; 3] = [
    control::DACL_PROTECTED,
    control::DACL_AUTO_INHERIT_REQ,
    control::DACL_AUTO_INHERITED,
];
const SACL_FLAG_BITS: [u16; 3] = [
    control::SACL_PROTECTED,
    control::SACL_AUTO_INHERIT_REQ,
    control::SACL_AUTO_INHERITED,
];

/// Why a SID token is not acceptable.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SidSyntax {
    #[error(
        "unknown SID alias {0:?}; expected S-1-... or an alias such as DA, DU, DC, AU, WD, SY, BA"
    )]
    UnknownAlias(String),
    #[error("{0}")]
    BadSid(SidError),
    #[error("expected a SID (S-1-...) or a two-letter alias such as DC, found {0}")]
    Missing(String),
    #[error(
        "alias {alias} is relative to the domain, but the domain SID {domain} has no room for a RID"
    )]
    DomainFull { alias: String, domain: Sid },
}

/// What is wrong inside one ACE string.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum AceSyntax {
    #[error("'(' has no matching ')'")]
    Unclosed,
    #[error("nested '(': conditional expressions and resource attributes are not supported")]
    Nested,
    #[error(
        "has {found} fields, expected 6: type;flags;rights;object_guid;inherit_object_guid;sid"
    )]
    FieldCount { found: usize },
    #[error("unknown ACE type {0:?}; expected A, D, OA, OD, AU or OU")]
    UnknownType(String),
    #[error("ACE type {0} is not supported; expected A, D, OA, OD, AU or OU")]
    UnsupportedType(String),
    #[error("unknown ACE flag {0:?}; expected OI, CI, NP, IO, ID, SA, FA or a number")]
    UnknownFlag(String),
    #[error(
        "unknown right {0:?}; expected two-letter names (GA GR GW GX RC SD WD WO RP WP CC DC LC SW LO DT CR FA FR FW FX KA KR KW KX) or a number such as 0x100"
    )]
    UnknownRight(String),
    #[error("{0:?} is not a number that fits in {1} bits")]
    BadNumber(String, u32),
    #[error("{field}: {source}")]
    BadGuid {
        field: &'static str,
        source: GuidError,
    },
    #[error("type {ace_type} takes no {field}; only OA, OD and OU do")]
    GuidNotAllowed {
        ace_type: &'static str,
        field: &'static str,
    },
    #[error("trustee: {0}")]
    Sid(SidSyntax),
}

/// Why a string is not SDDL this module accepts. Positions are byte offsets from
/// the start of the text, counting from 0; ACEs count from 0 within their ACL.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SddlError {
    #[error("at position {at}: expected {expected}, found {found}")]
    Expected {
        at: usize,
        expected: &'static str,
        found: String,
    },
    #[error("at position {at}: the {part} part appears a second time")]
    DuplicatePart { at: usize, part: &'static str },
    #[error("{part} at position {at}: {problem}")]
    Sid {
        part: &'static str,
        at: usize,
        problem: SidSyntax,
    },
    #[error("{acl} ACE {index} at position {at}: {problem}")]
    Ace {
        acl: &'static str,
        index: usize,
        at: usize,
        problem: AceSyntax,
    },
    #[error("{0}")]
    TooLarge(SdError),
}

/// Parses SDDL into a security descriptor; `domain` is the domain SID
/// (`S-1-5-21-a-b-c`) that domain-relative aliases such as `DC` extend.
///
/// The result's `control` holds the flags of the text plus SELF_RELATIVE and the
/// present bits, like a decoded descriptor, and each ACL has the revision its ACEs
/// need, so `SecurityDescriptor::from_bytes(&sd.to_bytes())` gives it back.
pub fn parse_sddl(text: &str, domain: &Sid) -> Result<SecurityDescriptor, SddlError> {
    let mut p = Parser {
        text,
        pos: 0,
        domain,
    };
    let mut sd = SecurityDescriptor {
        control: 0,
        owner: None,
        group: None,
        sacl: None,
        dacl: None,
    };
    let mut seen = [false; 4];
    loop {
        p.skip_ws();
        let at = p.pos;
        let Some(letter) = p.peek() else { break };
        let (slot, part) = match (letter.to_ascii_uppercase(), p.peek_at(1)) {
            (b'O', Some(b':')) => (0, "owner"),
            (b'G', Some(b':')) => (1, "group"),
            (b'D', Some(b':')) => (2, "DACL"),
            (b'S', Some(b':')) => (3, "SACL"),
            _ => {
                return Err(p.expected(at, "a part O:, G:, D: or S:"));
            }
        };
        if seen[slot] {
            return Err(SddlError::DuplicatePart { at, part });
        }
        seen[slot] = true;
        p.pos += 2;
        match slot {
            0 => sd.owner = Some(p.leading_sid(part)?),
            1 => sd.group = Some(p.leading_sid(part)?),
            2 => {
                let (bits, acl) = p.acl(part, DACL_FLAG_BITS)?;
                sd.control |= bits;
                sd.dacl = acl;
            }
            _ => {
                let (bits, acl) = p.acl(part, SACL_FLAG_BITS)?;
                sd.control |= bits;
                sd.sacl = acl;
            }
        }
    }
    sd.control = sd.normalized_control();
    // An ACL has a 16-bit size: refuse what could not be encoded.
    sd.try_to_bytes().map_err(SddlError::TooLarge)?;
    Ok(sd)
}

/// Writes `sd` as SDDL: `O:` `G:` `D:` `S:` in that order, aliases for well-known
/// SIDs and, when `domain` is given, for SIDs of that domain; rights as names when
/// the mask is exactly a set of named directory rights, else hex; GUIDs in lower
/// case.
///
/// A missing ACL is omitted, or written `NO_ACCESS_CONTROL` after its flags when
/// `control` has P/AR/AI flags for it. ACEs kept as [`AceType::Other`] are shown
/// with their SDDL type name (or `0xNN`) and the fields the decoder could read, for
/// people: [`parse_sddl`] does not accept them back.
pub fn to_sddl(sd: &SecurityDescriptor, domain: Option<&Sid>) -> String {
    let mut out = String::new();
    if let Some(owner) = &sd.owner {
        out.push_str("O:");
        out.push_str(&sid_text(owner, domain));
    }
    if let Some(group) = &sd.group {
        out.push_str("G:");
        out.push_str(&sid_text(group, domain));
    }
    let parts = [
        ("D:", &sd.dacl, DACL_FLAG_BITS),
        ("S:", &sd.sacl, SACL_FLAG_BITS),
    ];
    for (prefix, acl, [protected, auto_req, auto_inherited]) in parts {
        let mut flags = String::new();
        for (name, bit) in [("P", protected), ("AR", auto_req), ("AI", auto_inherited)] {
            if sd.control & bit != 0 {
                flags.push_str(name);
            }
        }
        match acl {
            Some(acl) => {
                out.push_str(prefix);
                out.push_str(&flags);
                for ace in &acl.aces {
                    write_ace(&mut out, ace, domain);
                }
            }
            None if !flags.is_empty() => {
                out.push_str(prefix);
                out.push_str(&flags);
                out.push_str(NULL_ACL);
            }
            None => {}
        }
    }
    out
}

fn write_ace(out: &mut String, ace: &Ace, domain: Option<&Sid>) {
    out.push('(');
    match TYPE_NAMES.iter().find(|(_, t)| *t == ace.ace_type) {
        Some((name, _)) => out.push_str(name),
        None => {
            let t = ace.ace_type.to_u8();
            match OTHER_TYPE_NAMES.iter().find(|(_, v)| *v == t) {
                Some((name, _)) => out.push_str(name),
                None => {
                    let _ = write!(out, "0x{t:02x}");
                }
            }
        }
    }
    out.push(';');
    if ace.flags & !FLAG_NAMES.iter().fold(0, |acc, (_, bit)| acc | bit) == 0 {
        for (name, bit) in FLAG_NAMES {
            if ace.flags & bit != 0 {
                out.push_str(name);
            }
        }
    } else {
        let _ = write!(out, "0x{:x}", ace.flags);
    }
    out.push(';');
    out.push_str(&rights_text(ace.mask));
    out.push(';');
    let object = ace.ace_type.is_object();
    for guid in [ace.object_type, ace.inherited_object_type] {
        if let (true, Some(guid)) = (object, guid) {
            let _ = write!(out, "{guid}");
        }
        out.push(';');
    }
    out.push_str(&sid_text(&ace.sid, domain));
    out.push(')');
}

/// Rights as names when the mask is exactly a set of named directory rights.
fn rights_text(mask: u32) -> String {
    let named = RIGHT_NAMES.iter().fold(0, |acc, (_, bit)| acc | bit);
    if mask == 0 || mask & !named != 0 {
        return format!("0x{mask:x}");
    }
    RIGHT_NAMES
        .iter()
        .filter(|(_, bit)| mask & bit != 0)
        .map(|(name, _)| *name)
        .collect()
}

/// The RID of `sid` if it is `domain` plus one sub-authority.
fn rid_in(sid: &Sid, domain: &Sid) -> Option<u32> {
    let (rid, prefix) = sid.sub_authorities().split_last()?;
    (sid.authority() == domain.authority() && prefix == domain.sub_authorities()).then_some(*rid)
}

/// A SID as an alias when it has one, else as `S-1-...`.
fn sid_text(sid: &Sid, domain: Option<&Sid>) -> String {
    let well_known = WELL_KNOWN
        .iter()
        .find(|(_, authority, subs)| {
            sid.authority() == *authority && sid.sub_authorities() == *subs
        })
        .map(|(alias, _, _)| *alias);
    let relative = || {
        let rid = rid_in(sid, domain?)?;
        DOMAIN_RELATIVE
            .iter()
            .find(|(_, r)| *r == rid)
            .map(|(alias, _)| *alias)
    };
    match well_known.or_else(relative) {
        Some(alias) => alias.to_string(),
        None => sid.to_string(),
    }
}

/// A SID token that is known to be whole: an alias or `S-1-...`.
fn sid_from_token(token: &str, domain: &Sid) -> Result<Sid, SidSyntax> {
    let bytes = token.as_bytes();
    if bytes.len() >= 2 && bytes[0].eq_ignore_ascii_case(&b'S') && bytes[1] == b'-' {
        return token.parse().map_err(SidSyntax::BadSid);
    }
    if token.is_empty() {
        return Err(SidSyntax::Missing("nothing".to_string()));
    }
    let upper = token.to_ascii_uppercase();
    if let Some((_, authority, subs)) = WELL_KNOWN.iter().find(|(a, _, _)| *a == upper) {
        return Ok(Sid::new(*authority, subs));
    }
    if let Some((alias, rid)) = DOMAIN_RELATIVE.iter().find(|(a, _)| *a == upper) {
        if domain.sub_authorities().len() >= MAX_SUB_AUTHORITIES {
            return Err(SidSyntax::DomainFull {
                alias: alias.to_string(),
                domain: domain.clone(),
            });
        }
        return Ok(domain.with_rid(*rid));
    }
    Err(SidSyntax::UnknownAlias(token.to_string()))
}

/// Parses two-letter names, each of which must be in `table`, OR-ing their values.
/// On failure returns the byte offset of the bad name and the name.
fn names<T: Copy + std::ops::BitOr<Output = T> + Default>(
    field: &str,
    tables: &[&[(&str, T)]],
) -> Result<T, (usize, String)> {
    if !field.is_ascii() {
        return Err((0, field.to_string()));
    }
    let mut value = T::default();
    for (i, chunk) in field.as_bytes().chunks(2).enumerate() {
        let name = String::from_utf8_lossy(chunk).to_ascii_uppercase();
        let found = tables
            .iter()
            .flat_map(|t| t.iter())
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v);
        match found {
            Some(v) => value = value | v,
            None => return Err((2 * i, String::from_utf8_lossy(chunk).into_owned())),
        }
    }
    Ok(value)
}

/// A number in hex (`0x...`) or decimal, if `field` is one.
fn number(field: &str) -> Option<Result<u64, ()>> {
    if let Some(hex) = field
        .strip_prefix("0x")
        .or_else(|| field.strip_prefix("0X"))
    {
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Some(Err(()));
        }
        return Some(u64::from_str_radix(hex, 16).map_err(|_| ()));
    }
    if !field.is_empty() && field.bytes().all(|b| b.is_ascii_digit()) {
        return Some(field.parse::<u64>().map_err(|_| ()));
    }
    None
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    domain: &'a Sid,
}

impl Parser<'_> {
    fn bytes(&self) -> &[u8] {
        self.text.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.pos).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<u8> {
        self.bytes().get(self.pos + ahead).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    /// Whether the text at the cursor starts with `word`, ignoring case.
    fn at_word(&self, word: &str) -> bool {
        self.bytes()
            .get(self.pos..self.pos + word.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(word.as_bytes()))
    }

    /// A short quote of the text at `at`, for error messages.
    fn found(&self, at: usize) -> String {
        match self.bytes().get(at..) {
            None | Some([]) => "the end of the text".to_string(),
            Some(rest) => {
                let shown = &rest[..rest.len().min(16)];
                format!("{:?}", String::from_utf8_lossy(shown))
            }
        }
    }

    fn expected(&self, at: usize, expected: &'static str) -> SddlError {
        SddlError::Expected {
            at,
            expected,
            found: self.found(at),
        }
    }

    /// The SID after `O:` or `G:`, whose end is not delimited: `S-1-...` runs as far
    /// as its grammar goes, an alias is two letters.
    fn leading_sid(&mut self, part: &'static str) -> Result<Sid, SddlError> {
        self.skip_ws();
        let start = self.pos;
        let b = self.bytes();
        let end = if b.get(start).is_some_and(|c| c.eq_ignore_ascii_case(&b'S'))
            && b.get(start + 1) == Some(&b'-')
        {
            sid_text_end(b, start)
        } else if b
            .get(start..start + 2)
            .is_some_and(|s| s.iter().all(u8::is_ascii_alphabetic))
        {
            start + 2
        } else {
            return Err(SddlError::Sid {
                part,
                at: start,
                problem: SidSyntax::Missing(self.found(start)),
            });
        };
        // Both ends sit on ASCII characters, so the slice is on char boundaries.
        let token = &self.text[start..end];
        self.pos = end;
        sid_from_token(token, self.domain).map_err(|problem| SddlError::Sid {
            part,
            at: start,
            problem,
        })
    }

    /// ACL flags and ACEs after `D:` or `S:`; `bits` are the control bits of P, AR
    /// and AI for this ACL. Returns the control bits and the ACL (`None` for
    /// `NO_ACCESS_CONTROL`).
    fn acl(
        &mut self,
        which: &'static str,
        bits: [u16; 3],
    ) -> Result<(u16, Option<Acl>), SddlError> {
        let [protected, auto_req, auto_inherited] = bits;
        let mut control = 0;
        let mut null_at = None;
        loop {
            self.skip_ws();
            if self.at_word(NULL_ACL) {
                null_at = Some(self.pos);
                self.pos += NULL_ACL.len();
            } else if self.at_word("AR") {
                control |= auto_req;
                self.pos += 2;
            } else if self.at_word("AI") {
                control |= auto_inherited;
                self.pos += 2;
            } else if self.at_word("P") {
                control |= protected;
                self.pos += 1;
            } else {
                break;
            }
        }
        let mut aces = Vec::new();
        loop {
            self.skip_ws();
            if self.peek() != Some(b'(') {
                break;
            }
            if let Some(at) = null_at {
                return Err(SddlError::Expected {
                    at: self.pos,
                    expected: "no ACEs after NO_ACCESS_CONTROL (a NULL ACL)",
                    found: format!("an ACE (NO_ACCESS_CONTROL at position {at})"),
                });
            }
            let ace = self.ace(which, aces.len())?;
            aces.push(ace);
        }
        Ok((control, null_at.is_none().then(|| Acl::new(aces))))
    }

    /// One `(type;flags;rights;object;inherited_object;sid)` at the cursor.
    fn ace(&mut self, which: &'static str, index: usize) -> Result<Ace, SddlError> {
        let open = self.pos;
        let fail = |at, problem| SddlError::Ace {
            acl: which,
            index,
            at,
            problem,
        };
        let close = match self.bytes()[open + 1..]
            .iter()
            .position(|&c| c == b'(' || c == b')')
        {
            None => return Err(fail(open, AceSyntax::Unclosed)),
            Some(i) if self.bytes()[open + 1 + i] == b'(' => {
                return Err(fail(open + 1 + i, AceSyntax::Nested));
            }
            Some(i) => open + 1 + i,
        };
        // '(' and ')' are ASCII, so these are char boundaries.
        let inner = &self.text[open + 1..close];
        let mut fields = Vec::with_capacity(6);
        let mut at = open + 1;
        for raw in inner.split(';') {
            let lead = raw.len() - raw.trim_start().len();
            fields.push((at + lead, raw.trim()));
            at += raw.len() + 1;
        }
        let [
            (type_at, type_text),
            (flags_at, flags_text),
            (rights_at, rights_text),
            (object_at, object_text),
            (inherited_at, inherited_text),
            (sid_at, sid_text),
        ] = fields[..]
        else {
            return Err(fail(
                open,
                AceSyntax::FieldCount {
                    found: fields.len(),
                },
            ));
        };

        let upper_type = type_text.to_ascii_uppercase();
        let (type_name, ace_type) = match TYPE_NAMES.iter().find(|(n, _)| *n == upper_type) {
            Some((name, t)) => (*name, *t),
            None if OTHER_TYPE_NAMES.iter().any(|(n, _)| *n == upper_type) => {
                return Err(fail(type_at, AceSyntax::UnsupportedType(upper_type)));
            }
            None => return Err(fail(type_at, AceSyntax::UnknownType(type_text.to_string()))),
        };

        let flags = match number(flags_text) {
            Some(Ok(n)) => u8::try_from(n)
                .map_err(|_| fail(flags_at, AceSyntax::BadNumber(flags_text.to_string(), 8)))?,
            Some(Err(())) => {
                return Err(fail(
                    flags_at,
                    AceSyntax::BadNumber(flags_text.to_string(), 8),
                ));
            }
            None => names(flags_text, &[FLAG_NAMES])
                .map_err(|(off, name)| fail(flags_at + off, AceSyntax::UnknownFlag(name)))?,
        };

        let mask = match number(rights_text) {
            Some(Ok(n)) => u32::try_from(n)
                .map_err(|_| fail(rights_at, AceSyntax::BadNumber(rights_text.to_string(), 32)))?,
            Some(Err(())) => {
                return Err(fail(
                    rights_at,
                    AceSyntax::BadNumber(rights_text.to_string(), 32),
                ));
            }
            None => names(rights_text, &[RIGHT_NAMES, COMPOSITE_RIGHT_NAMES])
                .map_err(|(off, name)| fail(rights_at + off, AceSyntax::UnknownRight(name)))?,
        };

        let mut guids = [None, None];
        for (slot, (at, text, field)) in guids.iter_mut().zip([
            (object_at, object_text, "object type"),
            (inherited_at, inherited_text, "inherited object type"),
        ]) {
            if text.is_empty() {
                continue;
            }
            if !ace_type.is_object() {
                return Err(fail(
                    at,
                    AceSyntax::GuidNotAllowed {
                        ace_type: type_name,
                        field,
                    },
                ));
            }
            let guid: Guid = text
                .parse()
                .map_err(|source| fail(at, AceSyntax::BadGuid { field, source }))?;
            *slot = Some(guid);
        }

        let sid = sid_from_token(sid_text, self.domain)
            .map_err(|problem| fail(sid_at, AceSyntax::Sid(problem)))?;

        self.pos = close + 1;
        let [object_type, inherited_object_type] = guids;
        Ok(Ace {
            ace_type,
            flags,
            mask,
            object_type,
            inherited_object_type,
            sid,
            raw: None,
        })
    }
}

/// Where the `S-1-...` text starting at `start` ends: after `S`, repeated `-` and a
/// component, decimal, or `0x` and up to 12 hex digits. A hex digit right before a
/// `:` is left alone (it is the next part's letter, as in `...D:`).
fn sid_text_end(b: &[u8], start: usize) -> usize {
    let mut pos = start + 1;
    while b.get(pos) == Some(&b'-') {
        pos += 1;
        let hex = b.get(pos) == Some(&b'0') && matches!(b.get(pos + 1), Some(b'x' | b'X'));
        if hex {
            pos += 2;
            let digits_start = pos;
            while pos - digits_start < 12
                && b.get(pos).is_some_and(u8::is_ascii_hexdigit)
                && b.get(pos + 1) != Some(&b':')
            {
                pos += 1;
            }
        } else {
            while b.get(pos).is_some_and(u8::is_ascii_digit) {
                pos += 1;
            }
        }
    }
    pos
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn domain() -> Sid {
        "S-1-5-21-1000-2000-3000".parse().unwrap()
    }

    fn rid(r: u32) -> Sid {
        domain().with_rid(r)
    }

    const TEMPLATE: &str = "O:DAG:DAD:PAI(OA;;CR;0e10c968-78fb-11d2-90d4-00c04f79dc55;;DC)(OA;;CR;a05b8cc2-17bc-4802-a710-e7c15ab866a2;;DC)(A;;LCRPLORC;;;AU)(A;;CCDCLCSWRPWPDTLOCRSDRCWDWO;;;DA)";

    fn parse(text: &str) -> Result<SecurityDescriptor, SddlError> {
        parse_sddl(text, &domain())
    }

    #[test]
    fn typical_template() {
        let sd = parse(TEMPLATE).unwrap();
        assert_eq!(
            sd,
            SecurityDescriptor {
                control: 0x9404 | control::SELF_RELATIVE,
                owner: Some(rid(512)),
                group: Some(rid(512)),
                sacl: None,
                dacl: Some(Acl {
                    revision: 4,
                    aces: vec![
                        Ace::allowed_object(rid(515), 0x100, Some(Guid::ENROLL)),
                        Ace::allowed_object(rid(515), 0x100, Some(Guid::AUTOENROLL)),
                        Ace::allowed(Sid::authenticated_users(), 0x0002_0094),
                        Ace::allowed(rid(512), 0x000F_01FF),
                    ],
                }),
            }
        );
        assert_eq!(to_sddl(&sd, Some(&domain())), TEMPLATE);
        // Without the domain, its SIDs are written out.
        assert!(to_sddl(&sd, None).starts_with(
            "O:S-1-5-21-1000-2000-3000-512G:S-1-5-21-1000-2000-3000-512D:PAI(OA;;CR;"
        ));
        assert_eq!(
            parse_sddl(&to_sddl(&sd, None), &Sid::everyone()),
            Ok(sd.clone())
        );
        // And the binary form agrees.
        assert_eq!(SecurityDescriptor::from_bytes(&sd.to_bytes()), Ok(sd));
    }

    #[test]
    fn deny_inherit_and_audit_aces() {
        let text = "D:AI(OD;CIIO;CR;a05b8cc2-17bc-4802-a710-e7c15ab866a2;bf967a86-0de6-11d0-a285-00aa003049e2;DU)(D;ID;GA;;;AN)(A;OICI;0x1200a9;;;S-1-5-21-9-9-9-1105)S:PAR(AU;SAFA;WPWD;;;WD)(OU;CISA;CR;;;EA)";
        let sd = parse(text).unwrap();
        let dacl = sd.dacl.as_ref().unwrap();
        assert_eq!(dacl.revision, 4);
        assert_eq!(
            dacl.aces[0],
            Ace {
                inherited_object_type: Some(
                    "bf967a86-0de6-11d0-a285-00aa003049e2".parse().unwrap()
                ),
                ..Ace::denied_object(rid(513), 0x100, Some(Guid::AUTOENROLL))
                    .with_flags(ace_flags::CONTAINER_INHERIT | ace_flags::INHERIT_ONLY)
            }
        );
        assert_eq!(
            dacl.aces[1],
            Ace::denied(Sid::new(5, &[7]), rights::GENERIC_ALL).with_flags(ace_flags::INHERITED)
        );
        assert_eq!(dacl.aces[2].mask, 0x1200a9);
        assert_eq!(dacl.aces[2].sid.to_string(), "S-1-5-21-9-9-9-1105");
        let sacl = sd.sacl.as_ref().unwrap();
        assert_eq!(sacl.aces[0].ace_type, AceType::SystemAudit);
        assert_eq!(sacl.aces[0].flags, 0xc0);
        assert_eq!(sacl.aces[1].ace_type, AceType::SystemAuditObject);
        assert_eq!(sacl.aces[1].sid, rid(519));
        assert_eq!(
            sd.control,
            control::SELF_RELATIVE
                | control::DACL_PRESENT
                | control::SACL_PRESENT
                | control::DACL_AUTO_INHERITED
                | control::SACL_PROTECTED
                | control::SACL_AUTO_INHERIT_REQ
        );
        assert_eq!(to_sddl(&sd, Some(&domain())), text);
    }

    #[test]
    fn lenient_forms() {
        let spaced = " O: DA G:DA\n D: P AI ( OA ; ; CR ; {0E10C968-78FB-11D2-90D4-00C04F79DC55} ; ; dc ) (a;;lcrplorc;;;au)\t";
        let plain =
            "O:DAG:DAD:PAI(OA;;CR;0e10c968-78fb-11d2-90d4-00c04f79dc55;;DC)(A;;LCRPLORC;;;AU)";
        assert_eq!(parse(spaced), parse(plain));
        // Parts in another order, numbers for rights and flags.
        let sd = parse("D:(A;0x3;256;;;S-1-1-0)G:SYO:BA").unwrap();
        assert_eq!(sd.owner, Some(Sid::new(5, &[32, 544])));
        assert_eq!(sd.group, Some(Sid::local_system()));
        assert_eq!(
            sd.dacl.as_ref().unwrap().aces[0],
            Ace::allowed(Sid::everyone(), 0x100).with_flags(0x3)
        );
        assert_eq!(to_sddl(&sd, None), "O:BAG:SYD:(A;OICI;CR;;;WD)");
        // File and registry names are accepted.
        let sd = parse("D:(A;;FA;;;SY)(A;;KR;;;BU)").unwrap();
        let aces = &sd.dacl.as_ref().unwrap().aces;
        assert_eq!((aces[0].mask, aces[1].mask), (0x1f01ff, 0x20019));
        assert_eq!(to_sddl(&sd, None), "D:(A;;0x1f01ff;;;SY)(A;;CCSWRPRC;;;BU)");
        // Owner SID text directly followed by the next part.
        let sd = parse("O:S-1-5-21-1-2-3-500G:S-1-0x00ABCDEF1234-7D:").unwrap();
        assert_eq!(sd.owner.unwrap().to_string(), "S-1-5-21-1-2-3-500");
        assert_eq!(sd.group.unwrap().to_string(), "S-1-0x00ABCDEF1234-7");
        assert_eq!(sd.dacl, Some(Acl::new(vec![])));
        let sd = parse("O:S-1-0xABD:").unwrap();
        assert_eq!(sd.owner, Some(Sid::new(0xab, &[])));
        assert_eq!(sd.dacl, Some(Acl::new(vec![])));
    }

    #[test]
    fn empty_null_and_absent_dacls() {
        let empty = parse("D:").unwrap();
        assert_eq!(empty.dacl, Some(Acl::new(vec![])));
        assert_eq!(empty.control, 0x8004);
        assert_eq!(to_sddl(&empty, None), "D:");

        let absent = parse("O:SY").unwrap();
        assert_eq!(absent.dacl, None);
        assert_eq!(absent.control, 0x8000);

        let null = parse("D:NO_ACCESS_CONTROL").unwrap();
        assert_eq!(null, parse("").unwrap());
        let protected_null = parse("D:PNO_ACCESS_CONTROLS:AI").unwrap();
        assert_eq!(protected_null.dacl, None);
        assert_eq!(protected_null.sacl, Some(Acl::new(vec![])));
        assert_eq!(protected_null.control, 0x8000 | 0x1000 | 0x0010 | 0x0800);
        assert_eq!(to_sddl(&protected_null, None), "D:PNO_ACCESS_CONTROLS:AI");
    }

    #[test]
    fn other_ace_types_print_but_do_not_parse() {
        let sd = SecurityDescriptor {
            control: 0,
            owner: None,
            group: None,
            sacl: None,
            dacl: Some(Acl::new(vec![
                Ace {
                    ace_type: AceType::Other(0x09),
                    raw: Some(vec![0; 16]),
                    ..Ace::allowed(Sid::everyone(), 0x100)
                },
                Ace {
                    ace_type: AceType::Other(0x44),
                    ..Ace::allowed(Sid::everyone(), 1).with_flags(0x20)
                },
            ])),
        };
        let text = to_sddl(&sd, None);
        assert_eq!(text, "D:(XA;;CR;;;WD)(0x44;0x20;CC;;;WD)");
        assert_eq!(
            parse(&text).unwrap_err().to_string(),
            "DACL ACE 0 at position 3: ACE type XA is not supported; expected A, D, OA, OD, AU or OU"
        );
    }

    #[test]
    fn errors_name_position_and_expectation() {
        let cases: &[(&str, &str)] = &[
            (
                "O:XXG:DA",
                "owner at position 2: unknown SID alias \"XX\"; expected S-1-... or an alias such as DA, DU, DC, AU, WD, SY, BA",
            ),
            (
                "O:S-1-5-x",
                "owner at position 2: bad SID text \"S-1-5-\": sub-authorities must be decimal numbers",
            ),
            (
                "G:",
                "group at position 2: expected a SID (S-1-...) or a two-letter alias such as DC, found the end of the text",
            ),
            (
                "D:(A;;CR;;;QQ)",
                "DACL ACE 0 at position 11: trustee: unknown SID alias \"QQ\"; expected S-1-... or an alias such as DA, DU, DC, AU, WD, SY, BA",
            ),
            (
                "D:(A;;CR;;;DC)(OA;;CR;0e10c968-78fb-11d2-90d4-00c04f79dc5;;DC)",
                "DACL ACE 1 at position 22: object type: bad GUID text \"0e10c968-78fb-11d2-90d4-00c04f79dc5\": expected 8-4-4-4-12 hexadecimal digits such as 0e10c968-78fb-11d2-90d4-00c04f79dc55, braces optional",
            ),
            (
                "D:(A;;CR;;;DC",
                "DACL ACE 0 at position 2: '(' has no matching ')'",
            ),
            (
                "D:(A;;CR;;;DC(A;;CR;;;DU)",
                "DACL ACE 0 at position 13: nested '(': conditional expressions and resource attributes are not supported",
            ),
            (
                "D:(A;;CR;;;DC))",
                "at position 14: expected a part O:, G:, D: or S:, found \")\"",
            ),
            (
                "D:(A;;RPXXCR;;;DC)",
                "DACL ACE 0 at position 8: unknown right \"XX\"; expected two-letter names (GA GR GW GX RC SD WD WO RP WP CC DC LC SW LO DT CR FA FR FW FX KA KR KW KX) or a number such as 0x100",
            ),
            (
                "D:(A;;CRR;;;DC)",
                "DACL ACE 0 at position 8: unknown right \"R\"; expected two-letter names (GA GR GW GX RC SD WD WO RP WP CC DC LC SW LO DT CR FA FR FW FX KA KR KW KX) or a number such as 0x100",
            ),
            (
                "D:(A;;0x1FFFFFFFF;;;DC)",
                "DACL ACE 0 at position 6: \"0x1FFFFFFFF\" is not a number that fits in 32 bits",
            ),
            (
                "D:(A;;0xZ;;;DC)",
                "DACL ACE 0 at position 6: \"0xZ\" is not a number that fits in 32 bits",
            ),
            (
                "D:(A;CIXY;CR;;;DC)",
                "DACL ACE 0 at position 7: unknown ACE flag \"XY\"; expected OI, CI, NP, IO, ID, SA, FA or a number",
            ),
            (
                "D:(Q;;CR;;;DC)",
                "DACL ACE 0 at position 3: unknown ACE type \"Q\"; expected A, D, OA, OD, AU or OU",
            ),
            (
                "D:(A;;CR;0e10c968-78fb-11d2-90d4-00c04f79dc55;;DC)",
                "DACL ACE 0 at position 9: type A takes no object type; only OA, OD and OU do",
            ),
            (
                "D:(A;;CR;;DC)",
                "DACL ACE 0 at position 2: has 5 fields, expected 6: type;flags;rights;object_guid;inherit_object_guid;sid",
            ),
            (
                "S:(AU;SA;CR;;;WD;x)",
                "SACL ACE 0 at position 2: has 7 fields, expected 6: type;flags;rights;object_guid;inherit_object_guid;sid",
            ),
            (
                "O:DAO:DA",
                "at position 4: the owner part appears a second time",
            ),
            (
                "X:DA",
                "at position 0: expected a part O:, G:, D: or S:, found \"X:DA\"",
            ),
            (
                "D:NO_ACCESS_CONTROL(A;;CR;;;DC)",
                "at position 19: expected no ACEs after NO_ACCESS_CONTROL (a NULL ACL), found an ACE (NO_ACCESS_CONTROL at position 2)",
            ),
            (
                "D:(A;;CR;;;)",
                "DACL ACE 0 at position 11: trustee: expected a SID (S-1-...) or a two-letter alias such as DC, found nothing",
            ),
        ];
        for (text, message) in cases {
            let err = parse(text).expect_err(text);
            assert_eq!(&err.to_string(), message, "{text}");
        }
    }

    #[test]
    fn domain_without_room_is_an_error_not_a_panic() {
        let full = Sid::new(5, &[1; 15]);
        let err = parse_sddl("O:DA", &full).unwrap_err();
        assert!(matches!(
            err,
            SddlError::Sid {
                problem: SidSyntax::DomainFull { .. },
                ..
            }
        ));
        // Well-known aliases do not need the domain.
        assert!(parse_sddl("O:SY", &full).is_ok());
    }

    #[test]
    fn too_many_aces_is_an_error() {
        let text = format!(
            "D:{}",
            "(A;;CR;;;S-1-5-21-1-2-3-4-5-6-7-8-9-10-11-12-13)".repeat(1200)
        );
        assert!(matches!(parse(&text), Err(SddlError::TooLarge(_))));
    }

    fn any_sid() -> impl Strategy<Value = Sid> {
        prop_oneof![
            proptest::sample::select(WELL_KNOWN)
                .prop_map(|(_, authority, subs)| Sid::new(authority, subs)),
            proptest::sample::select(DOMAIN_RELATIVE).prop_map(|(_, r)| rid(r)),
            (
                0u64..(1 << 48),
                proptest::collection::vec(any::<u32>(), 0..=15)
            )
                .prop_map(|(a, subs)| Sid::new(a, &subs)),
        ]
    }

    fn any_guid() -> impl Strategy<Value = Option<Guid>> {
        proptest::option::of(any::<[u8; 16]>().prop_map(|b| Guid::from_bytes(&b).unwrap()))
    }

    fn any_ace() -> impl Strategy<Value = Ace> {
        (
            proptest::sample::select(TYPE_NAMES).prop_map(|(_, t)| t),
            any::<u8>(),
            prop_oneof![
                any::<u32>(),
                proptest::sample::subsequence(RIGHT_NAMES, 0..5)
                    .prop_map(|v| v.iter().fold(0, |acc, (_, bit)| acc | bit)),
            ],
            any_guid(),
            any_guid(),
            any_sid(),
        )
            .prop_map(|(ace_type, flags, mask, ot, iot, sid)| Ace {
                ace_type,
                flags,
                mask,
                object_type: ot.filter(|_| ace_type.is_object()),
                inherited_object_type: iot.filter(|_| ace_type.is_object()),
                sid,
                raw: None,
            })
    }

    fn any_acl() -> impl Strategy<Value = Option<Acl>> {
        proptest::option::of(proptest::collection::vec(any_ace(), 0..5).prop_map(Acl::new))
    }

    fn any_sd() -> impl Strategy<Value = SecurityDescriptor> {
        (
            proptest::option::of(any_sid()),
            proptest::option::of(any_sid()),
            any_acl(),
            any_acl(),
            0u16..64,
        )
            .prop_map(|(owner, group, dacl, sacl, bits)| {
                // P, AR, AI for each ACL.
                let all = [0x1000, 0x0100, 0x0400, 0x2000, 0x0200, 0x0800];
                let control = all
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| bits & (1 << i) != 0)
                    .fold(0, |acc, (_, b)| acc | b);
                let mut sd = SecurityDescriptor {
                    control,
                    owner,
                    group,
                    sacl,
                    dacl,
                };
                sd.control = sd.normalized_control();
                sd
            })
    }

    /// Bytes to splice into SDDL: its own characters and the start of a UTF-8
    /// sequence (which turns into a non-ASCII character).
    fn edit_byte() -> impl Strategy<Value = u8> {
        proptest::sample::select(&b"ODGSPAICRLW:;()0-9xS- \xc3"[..])
    }

    proptest! {
        #[test]
        fn print_then_parse_round_trips(sd in any_sd(), with_domain in any::<bool>()) {
            let text = to_sddl(&sd, with_domain.then(domain).as_ref());
            prop_assert_eq!(parse(&text), Ok(sd.clone()), "{}", text);
            // What SDDL describes, the binary form carries too.
            prop_assert_eq!(SecurityDescriptor::from_bytes(&sd.to_bytes()), Ok(sd));
        }

        #[test]
        fn parse_then_print_is_stable(sd in any_sd()) {
            let text = to_sddl(&sd, Some(&domain()));
            let again = to_sddl(&parse(&text).unwrap(), Some(&domain()));
            prop_assert_eq!(again, text);
        }

        #[test]
        fn edited_templates_never_panic_and_reprint_faithfully(
            edits in proptest::collection::vec((0..TEMPLATE.len(), edit_byte()), 1..5),
        ) {
            let mut text = TEMPLATE.as_bytes().to_vec();
            for (at, c) in edits {
                text[at] = c;
            }
            let text = String::from_utf8_lossy(&text).into_owned();
            if let Ok(sd) = parse(&text) {
                for d in [None, Some(domain())] {
                    let printed = to_sddl(&sd, d.as_ref());
                    prop_assert_eq!(parse(&printed), Ok(sd.clone()), "{} -> {}", text, printed);
                }
            }
        }

        #[test]
        fn random_text_never_panics(text in "[ODGSPAINCRLW:;()0-9a-fx -]{0,60}") {
            let _ = parse(&text);
        }

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,60}") {
            let _ = parse(&text);
        }
    }
}
