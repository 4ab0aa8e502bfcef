//! The subject and SANs of a SCEP profile: a format with `{{variables}}` and
//! static text, read with Windows' CertStrToName rules, then filled in.
//!
//! CertStrToName (wincrypt.h, no flags): RDNs are separated by `,` or `;`,
//! `+` joins the values of a multi-valued RDN, whitespace around keys and
//! values is ignored, a value may be quoted with `"` and a quote inside a
//! quoted value is doubled (`CN="User ""one"""`), a value starting with `#`
//! is hex, and a key is an X.500 name (CN, O, OU, ...) or an OID (`1.2.3` or
//! `OID.1.2.3`).
//!
//! The format is parsed first and the variables filled into each value
//! after, so a value cannot change the structure of the name: a value that
//! would have (a `,` in an unquoted value, a `"` in a quoted one, leading or
//! trailing spaces where they would be trimmed) is an error naming the
//! variable, as is an unknown variable or one without a value. Pure.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::request::{NameAttribute, SanEntry};

/// The variables of SCEP profiles (Intune's names), matched without regard
/// to case.
pub const VARIABLES: &[&str] = &[
    "UserName",
    "UserPrincipalName",
    "EmailAddress",
    "OnPrem_Distinguished_Name",
    "onPremisesSamAccountName",
    "SERIALNUMBER",
    "DeviceName",
    "FullyQualifiedDomainName",
    "Domain",
    "AccountObjectSid",
];

/// The X.500 keys CertStrToName knows, and their OIDs.
const KEYS: &[(&str, &str)] = &[
    ("CN", "2.5.4.3"),
    ("SN", "2.5.4.4"),
    ("SERIALNUMBER", "2.5.4.5"),
    ("C", "2.5.4.6"),
    ("L", "2.5.4.7"),
    ("S", "2.5.4.8"),
    ("ST", "2.5.4.8"),
    ("STREET", "2.5.4.9"),
    ("O", "2.5.4.10"),
    ("OU", "2.5.4.11"),
    ("T", "2.5.4.12"),
    ("TITLE", "2.5.4.12"),
    ("DESCRIPTION", "2.5.4.13"),
    ("POSTALCODE", "2.5.4.17"),
    ("POBOX", "2.5.4.18"),
    ("PHONE", "2.5.4.20"),
    ("G", "2.5.4.42"),
    ("GIVENNAME", "2.5.4.42"),
    ("I", "2.5.4.43"),
    ("INITIALS", "2.5.4.43"),
    ("DNQUALIFIER", "2.5.4.46"),
    ("E", "1.2.840.113549.1.9.1"),
    ("EMAIL", "1.2.840.113549.1.9.1"),
    ("DC", "0.9.2342.19200300.100.1.25"),
    ("UID", "0.9.2342.19200300.100.1.1"),
];

/// Why a subject or SAN cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("subject format, at character {at}: {what}")]
    Syntax { at: usize, what: String },
    #[error("{{{{{0}}}}} is not a known variable (known: {known})", known = VARIABLES.join(", "))]
    UnknownVariable(String),
    #[error("{{{{{0}}}}} has no value for this account or host")]
    NoValue(String),
    #[error("the value of {{{{{variable}}}}} ({value:?}) would break the name: {why}")]
    BreaksName {
        variable: String,
        value: String,
        why: String,
    },
    #[error("{key}={value:?}: {why}")]
    BadValue {
        key: String,
        value: String,
        why: String,
    },
}

/// The values of the variables, keyed by name without regard to case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Variables(BTreeMap<String, String>);

impl Variables {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a variable (one of [`VARIABLES`]); an empty value counts as none.
    pub fn set(&mut self, name: &str, value: impl Into<String>) -> &mut Self {
        let value = value.into();
        if !value.is_empty() {
            self.0.insert(name.to_ascii_lowercase(), value);
        }
        self
    }

    /// Sets a variable unless it already has a value (the host's name
    /// under the directory's).
    pub fn set_if_absent(&mut self, name: &str, value: impl Into<String>) -> &mut Self {
        if !self.0.contains_key(&name.to_ascii_lowercase()) {
            self.set(name, value);
        }
        self
    }

    /// The variables a directory account gives (adcs.md section 4: the
    /// account's attributes), plus the host's serial number when known:
    /// `UserName` and `UserPrincipalName` are the UPN (the implicit
    /// `sAMAccountName@domain` for a computer, which has none), `DeviceName`
    /// the computer's name without `$`, `FullyQualifiedDomainName` its
    /// `dNSHostName`, `Domain` the DNS domain of its DN.
    pub fn for_account(account: &crate::model::Account, serial_number: Option<&str>) -> Variables {
        let domain: Vec<&str> = account
            .dn
            .split(',')
            .filter_map(|rdn| {
                let (k, v) = rdn.split_once('=')?;
                k.trim().eq_ignore_ascii_case("DC").then_some(v.trim())
            })
            .collect();
        let domain = domain.join(".");
        let upn = account.user_principal_name.clone().or_else(|| {
            (!domain.is_empty()).then(|| format!("{}@{domain}", account.sam_account_name))
        });
        let mut v = Variables::new();
        if let Some(upn) = &upn {
            v.set("UserName", upn.clone())
                .set("UserPrincipalName", upn.clone());
        }
        if let Some(mail) = &account.mail {
            v.set("EmailAddress", mail.clone());
        }
        v.set("OnPrem_Distinguished_Name", account.dn.clone())
            .set("onPremisesSamAccountName", account.sam_account_name.clone())
            .set("Domain", domain)
            .set("AccountObjectSid", account.sid.to_string());
        if let Some(host) = &account.dns_host_name {
            v.set("FullyQualifiedDomainName", host.clone());
        }
        if account.sam_account_name.ends_with('$') {
            v.set(
                "DeviceName",
                account.sam_account_name.trim_end_matches('$').to_string(),
            );
        }
        if let Some(serial) = serial_number {
            v.set("SERIALNUMBER", serial.to_string());
        }
        v
    }

    fn get(&self, name: &str) -> Result<&str, NameError> {
        if !VARIABLES.iter().any(|v| v.eq_ignore_ascii_case(name)) {
            return Err(NameError::UnknownVariable(name.to_string()));
        }
        self.0
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
            .ok_or_else(|| NameError::NoValue(name.to_string()))
    }
}

/// A piece of a value: literal text or a variable.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Var(String),
}

/// Splits `text` into literal text and `{{name}}` variables.
fn pieces(text: &str, offset: usize) -> Result<Vec<Piece>, NameError> {
    let mut out = Vec::new();
    let mut rest = text;
    let mut at = offset;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            out.push(Piece::Text(rest[..start].to_string()));
        }
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| NameError::Syntax {
            at: at + start,
            what: "`{{` without its `}}`".into(),
        })?;
        let name = after[..end].trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(NameError::Syntax {
                at: at + start,
                what: format!("{:?} is not a variable name", &after[..end]),
            });
        }
        out.push(Piece::Var(name.to_string()));
        let consumed = start + 2 + end + 2;
        at += consumed;
        rest = &rest[consumed..];
    }
    if rest.contains("}}") {
        return Err(NameError::Syntax {
            at,
            what: "`}}` without its `{{`".into(),
        });
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest.to_string()));
    }
    Ok(out)
}

/// One `key=value` of the format, before filling in.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Component {
    key: String,
    oid: String,
    quoted: bool,
    value: Vec<Piece>,
}

fn key_oid(key: &str, at: usize) -> Result<String, NameError> {
    let upper = key.to_ascii_uppercase();
    if let Some((_, oid)) = KEYS.iter().find(|(k, _)| *k == upper) {
        return Ok((*oid).to_string());
    }
    let dotted = upper.strip_prefix("OID.").unwrap_or(&upper);
    let arcs: Vec<&str> = dotted.split('.').collect();
    if arcs.len() >= 2
        && arcs
            .iter()
            .all(|a| !a.is_empty() && a.chars().all(|c| c.is_ascii_digit()))
    {
        return Ok(dotted.to_string());
    }
    Err(NameError::Syntax {
        at,
        what: format!("{key:?} is not an X.500 key (CN, O, OU, E, C, L, S, DC, ...) or an OID"),
    })
}

/// Parses the format with the CertStrToName rules.
fn parse(format: &str) -> Result<Vec<Component>, NameError> {
    let chars: Vec<(usize, char)> = format.char_indices().collect();
    let mut i = 0;
    let mut out = Vec::new();
    let skip_ws = |i: &mut usize| {
        while *i < chars.len() && chars[*i].1.is_whitespace() {
            *i += 1;
        }
    };
    let pos = |i: usize| chars.get(i).map(|c| c.0).unwrap_or(format.len());
    loop {
        skip_ws(&mut i);
        if i >= chars.len() {
            break;
        }
        // The key, up to '='.
        let key_start = i;
        while i < chars.len() && chars[i].1 != '=' {
            if matches!(chars[i].1, ',' | ';' | '+' | '"') {
                return Err(NameError::Syntax {
                    at: pos(i),
                    what: format!("{:?} before the `=` of a key", chars[i].1),
                });
            }
            i += 1;
        }
        if i >= chars.len() {
            return Err(NameError::Syntax {
                at: pos(key_start),
                what: "a key without `=`".into(),
            });
        }
        let key = format[pos(key_start)..pos(i)].trim().to_string();
        if key.is_empty() {
            return Err(NameError::Syntax {
                at: pos(key_start),
                what: "an empty key".into(),
            });
        }
        let oid = key_oid(&key, pos(key_start))?;
        i += 1; // '='
        skip_ws(&mut i);
        let value_at = pos(i);
        let (quoted, raw) = if i < chars.len() && chars[i].1 == '"' {
            i += 1;
            let mut v = String::new();
            loop {
                if i >= chars.len() {
                    return Err(NameError::Syntax {
                        at: value_at,
                        what: "a quoted value without its closing quote".into(),
                    });
                }
                let c = chars[i].1;
                if c == '"' {
                    if chars.get(i + 1).map(|c| c.1) == Some('"') {
                        v.push('"');
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                v.push(c);
                i += 1;
            }
            skip_ws(&mut i);
            (true, v)
        } else {
            let start = i;
            while i < chars.len() && !matches!(chars[i].1, ',' | ';' | '+') {
                if chars[i].1 == '"' {
                    return Err(NameError::Syntax {
                        at: pos(i),
                        what: "a quote inside an unquoted value (quote the whole value)".into(),
                    });
                }
                i += 1;
            }
            (false, format[pos(start)..pos(i)].trim().to_string())
        };
        if !quoted && raw.starts_with('#') {
            return Err(NameError::Syntax {
                at: value_at,
                what: "hex (#) values are not supported in a profile".into(),
            });
        }
        if !quoted && raw.is_empty() {
            return Err(NameError::Syntax {
                at: value_at,
                what: format!("{key}= has an empty value"),
            });
        }
        out.push(Component {
            key,
            oid,
            quoted,
            value: pieces(&raw, value_at)?,
        });
        if i >= chars.len() {
            break;
        }
        match chars[i].1 {
            ',' | ';' => i += 1,
            '+' => {
                return Err(NameError::Syntax {
                    at: pos(i),
                    what: "multi-valued RDNs (`+`) are not supported".into(),
                });
            }
            c => {
                return Err(NameError::Syntax {
                    at: pos(i),
                    what: format!("{c:?} after a quoted value (expected `,` or `;`)"),
                });
            }
        }
    }
    Ok(out)
}

/// Fills one value; `quoted` says how the format wrote it.
fn fill(c: &Component, vars: &Variables) -> Result<String, NameError> {
    let mut out = String::new();
    let last = c.value.len().saturating_sub(1);
    for (n, piece) in c.value.iter().enumerate() {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Var(name) => {
                let value = vars.get(name)?;
                let breaks = |why: &str| NameError::BreaksName {
                    variable: name.clone(),
                    value: value.to_string(),
                    why: why.to_string(),
                };
                if value.chars().any(char::is_control) {
                    return Err(breaks("it holds a control character"));
                }
                if c.quoted {
                    if value.contains('"') {
                        return Err(breaks("a quote would end the quoted value"));
                    }
                } else {
                    if let Some(ch) = value.chars().find(|ch| matches!(ch, ',' | ';' | '+' | '"')) {
                        return Err(breaks(&format!(
                            "{ch:?} separates names; quote the value in the format ({}=\"...\")",
                            c.key
                        )));
                    }
                    let trims = (n == 0 && value.starts_with(char::is_whitespace))
                        || (n == last && value.ends_with(char::is_whitespace));
                    if trims {
                        return Err(breaks(
                            "leading or trailing spaces would be dropped; quote the value in the format",
                        ));
                    }
                    if n == 0 && value.starts_with('#') {
                        return Err(breaks("a value starting with # is read as hex"));
                    }
                }
                out.push_str(value);
            }
        }
    }
    if out.is_empty() {
        return Err(NameError::BadValue {
            key: c.key.clone(),
            value: out,
            why: "empty".into(),
        });
    }
    if out.chars().count() > 256 {
        return Err(NameError::BadValue {
            key: c.key.clone(),
            value: out.chars().take(32).collect::<String>() + "...",
            why: "longer than 256 characters".into(),
        });
    }
    Ok(out)
}

/// The subject of a profile: the format parsed, then filled in.
pub fn render_subject(format: &str, vars: &Variables) -> Result<Vec<NameAttribute>, NameError> {
    parse(format)?
        .iter()
        .map(|c| {
            Ok(NameAttribute {
                oid: c.oid.clone(),
                value: fill(c, vars)?,
            })
        })
        .collect()
}

/// Checks a subject format without values (policy validation): syntax and
/// variable names.
pub fn check_subject_format(format: &str) -> Result<(), NameError> {
    for c in parse(format)? {
        for p in &c.value {
            if let Piece::Var(v) = p
                && !VARIABLES.iter().any(|k| k.eq_ignore_ascii_case(v))
            {
                return Err(NameError::UnknownVariable(v.clone()));
            }
        }
    }
    Ok(())
}

/// The kinds of SAN a profile can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SanKind {
    Dns,
    Email,
    Upn,
    Uri,
    Ip,
}

impl SanKind {
    pub fn from_name(name: &str) -> Option<SanKind> {
        Some(match name.to_ascii_lowercase().as_str() {
            "dns" => SanKind::Dns,
            "email" => SanKind::Email,
            "upn" => SanKind::Upn,
            "uri" => SanKind::Uri,
            "ip" => SanKind::Ip,
            _ => return None,
        })
    }
}

/// One SAN of a profile: `template` filled in, then checked for its kind.
pub fn render_san(kind: SanKind, template: &str, vars: &Variables) -> Result<SanEntry, NameError> {
    let mut value = String::new();
    for p in pieces(template, 0)? {
        match p {
            Piece::Text(t) => value.push_str(&t),
            Piece::Var(v) => value.push_str(vars.get(&v)?),
        }
    }
    let bad = |why: &str| NameError::BadValue {
        key: format!("{kind:?}").to_lowercase(),
        value: value.clone(),
        why: why.to_string(),
    };
    if value.is_empty() || value.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad("empty, or with spaces or control characters"));
    }
    Ok(match kind {
        SanKind::Dns => {
            let ok = value.len() <= 253
                && value.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '*')
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                });
            if !ok {
                return Err(bad("not a DNS name"));
            }
            SanEntry::Dns(value.to_ascii_lowercase())
        }
        SanKind::Email => {
            if !value.is_ascii()
                || value.matches('@').count() != 1
                || value.starts_with('@')
                || value.ends_with('@')
            {
                return Err(bad("not an email address (ASCII, one @)"));
            }
            SanEntry::Email(value)
        }
        SanKind::Upn => {
            if value.matches('@').count() != 1 || value.starts_with('@') || value.ends_with('@') {
                return Err(bad("not a user principal name (name@suffix)"));
            }
            SanEntry::Upn(value)
        }
        SanKind::Uri => {
            if !value.is_ascii() || !value.contains(':') {
                return Err(bad("not a URI (ASCII, scheme:...)"));
            }
            SanEntry::Uri(value)
        }
        SanKind::Ip => SanEntry::Ip(
            value
                .parse::<IpAddr>()
                .map_err(|_| bad("not an IP address"))?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Variables {
        let mut v = Variables::new();
        v.set("UserName", "alice@corp.example")
            .set("EmailAddress", "alice@corp.example")
            .set("onPremisesSamAccountName", "alice")
            .set(
                "OnPrem_Distinguished_Name",
                "CN=Alice,OU=Staff,DC=corp,DC=example",
            )
            .set("DeviceName", "ws01")
            .set("FullyQualifiedDomainName", "ws01.corp.example")
            .set("SERIALNUMBER", "5CG1234XYZ");
        v
    }

    fn pairs(attrs: &[NameAttribute]) -> Vec<(String, String)> {
        attrs
            .iter()
            .map(|a| (a.oid.clone(), a.value.clone()))
            .collect()
    }

    #[test]
    fn the_documented_example() {
        let got = render_subject(
            "CN={{UserName}},E={{EmailAddress}},OU=Mobile,O=Finance Group,L=Redmond,ST=Washington,C=US",
            &vars(),
        )
        .unwrap();
        let want = [
            ("2.5.4.3", "alice@corp.example"),
            ("1.2.840.113549.1.9.1", "alice@corp.example"),
            ("2.5.4.11", "Mobile"),
            ("2.5.4.10", "Finance Group"),
            ("2.5.4.7", "Redmond"),
            ("2.5.4.8", "Washington"),
            ("2.5.4.6", "US"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(pairs(&got), want);
    }

    #[test]
    fn table_of_formats() {
        // (format, Ok(values in order) | Err(substring of the error))
        let cases: &[(&str, Result<&[&str], &str>)] = &[
            ("CN={{DeviceName}}", Ok(&["ws01"])),
            ("  cn = {{devicename}} ; o = Corp ", Ok(&["ws01", "Corp"])),
            (
                r#"CN="Smith, {{onPremisesSamAccountName}}""#,
                Ok(&["Smith, alice"]),
            ),
            (r#"CN="User ""one""""#, Ok(&[r#"User "one""#])),
            (
                r#"CN="{{OnPrem_Distinguished_Name}}""#,
                Ok(&["CN=Alice,OU=Staff,DC=corp,DC=example"]),
            ),
            (
                "SERIALNUMBER={{SERIALNUMBER}},CN={{DeviceName}}-{{SERIALNUMBER}}",
                Ok(&["5CG1234XYZ", "ws01-5CG1234XYZ"]),
            ),
            ("OID.2.5.4.3=x,1.2.3.4=y", Ok(&["x", "y"])),
            (
                "CN={{OnPrem_Distinguished_Name}}",
                Err("would break the name"),
            ),
            ("CN={{Nope}}", Err("not a known variable")),
            ("CN={{AccountObjectSid}}", Err("has no value")),
            ("CN={{DeviceName}", Err("without its `}}`")),
            ("CN=a+O=b", Err("multi-valued")),
            ("CN=#0403", Err("hex")),
            ("XX=a", Err("not an X.500 key")),
            ("CN=", Err("empty value")),
            ("CN", Err("without `=`")),
            (r#"CN="open"#, Err("closing quote")),
            (r#"CN=a"b"#, Err("quote inside")),
            (r#"CN="a" x"#, Err("after a quoted value")),
        ];
        for (format, want) in cases {
            let got = render_subject(format, &vars());
            match (want, got) {
                (Ok(values), Ok(attrs)) => {
                    let v: Vec<&str> = attrs.iter().map(|a| a.value.as_str()).collect();
                    assert_eq!(&v, values, "{format}");
                }
                (Err(part), Err(e)) => {
                    assert!(e.to_string().contains(part), "{format}: {e}")
                }
                (want, got) => panic!("{format}: wanted {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn values_that_would_break_the_name() {
        let mut v = vars();
        v.set("DeviceName", "ws01,O=Evil");
        let e = render_subject("CN={{DeviceName}}", &v).unwrap_err();
        assert!(
            matches!(e, NameError::BreaksName { ref variable, .. } if variable == "DeviceName"),
            "{e}"
        );
        // Quoted, the comma is part of the value.
        assert_eq!(
            render_subject(r#"CN="{{DeviceName}}""#, &v).unwrap()[0].value,
            "ws01,O=Evil"
        );
        v.set("DeviceName", "a\"b");
        assert!(render_subject(r#"CN="{{DeviceName}}""#, &v).is_err());
        v.set("DeviceName", " padded");
        assert!(render_subject("CN={{DeviceName}}", &v).is_err());
        assert!(render_subject(r#"CN="{{DeviceName}}""#, &v).is_ok());
    }

    #[test]
    fn sans() {
        let v = vars();
        let cases: &[(SanKind, &str, Result<SanEntry, &str>)] = &[
            (
                SanKind::Dns,
                "{{FullyQualifiedDomainName}}",
                Ok(SanEntry::Dns("ws01.corp.example".into())),
            ),
            (
                SanKind::Dns,
                "{{DeviceName}}.Corp.Example",
                Ok(SanEntry::Dns("ws01.corp.example".into())),
            ),
            (
                SanKind::Upn,
                "{{UserName}}",
                Ok(SanEntry::Upn("alice@corp.example".into())),
            ),
            (
                SanKind::Email,
                "{{EmailAddress}}",
                Ok(SanEntry::Email("alice@corp.example".into())),
            ),
            (
                SanKind::Uri,
                "urn:device:{{SERIALNUMBER}}",
                Ok(SanEntry::Uri("urn:device:5CG1234XYZ".into())),
            ),
            (
                SanKind::Ip,
                "192.0.2.7",
                Ok(SanEntry::Ip("192.0.2.7".parse().unwrap())),
            ),
            (
                SanKind::Dns,
                "{{OnPrem_Distinguished_Name}}",
                Err("not a DNS name"),
            ),
            (SanKind::Email, "{{DeviceName}}", Err("not an email")),
            (SanKind::Dns, "{{Missing}}", Err("not a known variable")),
            (SanKind::Ip, "ws01", Err("not an IP")),
        ];
        for (kind, template, want) in cases {
            match (want, render_san(*kind, template, &v)) {
                (Ok(w), Ok(g)) => assert_eq!(&g, w, "{template}"),
                (Err(part), Err(e)) => assert!(e.to_string().contains(part), "{template}: {e}"),
                (w, g) => panic!("{template}: wanted {w:?}, got {g:?}"),
            }
        }
    }

    #[test]
    fn variables_from_a_computer_account() {
        use crate::model::{Account, Sid, Token};
        let account = Account {
            dn: "CN=ws01,CN=Computers,DC=corp,DC=example".into(),
            sam_account_name: "ws01$".into(),
            sid: "S-1-5-21-1-2-3-1105".parse::<Sid>().unwrap(),
            dns_host_name: Some("ws01.corp.example".into()),
            user_principal_name: None,
            mail: None,
            user_certificates: vec![],
            token: Token::new([]),
        };
        let v = Variables::for_account(&account, Some("5CG1234XYZ"));
        let subject = render_subject(
            r#"CN={{DeviceName}}, SERIALNUMBER={{SERIALNUMBER}}, OU="{{OnPrem_Distinguished_Name}}", DC={{Domain}}"#,
            &v,
        )
        .unwrap();
        let values: Vec<&str> = subject.iter().map(|a| a.value.as_str()).collect();
        assert_eq!(
            values,
            [
                "ws01",
                "5CG1234XYZ",
                "CN=ws01,CN=Computers,DC=corp,DC=example",
                "corp.example"
            ]
        );
        assert_eq!(
            render_san(SanKind::Upn, "{{UserName}}", &v).unwrap(),
            SanEntry::Upn("ws01$@corp.example".into())
        );
        assert_eq!(
            render_san(SanKind::Dns, "{{FullyQualifiedDomainName}}", &v).unwrap(),
            SanEntry::Dns("ws01.corp.example".into())
        );
        // A computer has no mail: the variable is named as having no value.
        let e = render_subject("E={{EmailAddress}}", &v).unwrap_err();
        assert_eq!(e, NameError::NoValue("EmailAddress".into()));
    }

    #[test]
    fn format_check_without_values() {
        assert!(check_subject_format("CN={{DeviceName}},O=x").is_ok());
        assert!(check_subject_format("CN={{Bogus}}").is_err());
        assert!(check_subject_format("CN=a+O=b").is_err());
    }
}
