//! Consistency of the files in `ldif/`: every security descriptor agrees with
//! the SDDL comment above it, and the two schema forms define the same things.

use std::collections::BTreeSet;

use base64::Engine;

use autoenroll::directory::sd::SecurityDescriptor;
use autoenroll::directory::sddl::parse_sddl;
use autoenroll::model::Sid;

const FOREST: &str = include_str!("../ldif/forest.ldif");

/// Logical LDIF lines (continuations joined), keeping comments.
fn unfold(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for l in text.lines() {
        match (l.strip_prefix(' '), lines.last_mut()) {
            (Some(rest), Some(last)) if !last.starts_with('#') => last.push_str(rest),
            _ => lines.push(l.to_string()),
        }
    }
    lines
}

#[test]
fn every_security_descriptor_matches_its_sddl_comment() {
    let domain: Sid = "S-1-5-21-1000-2000-3000".parse().unwrap();
    let lines = unfold(FOREST);
    let mut checked = 0;
    for (i, line) in lines.iter().enumerate() {
        let Some(b64) = line.strip_prefix("nTSecurityDescriptor::") else {
            continue;
        };
        let comment = lines[..i]
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("# SDDL:"))
            .unwrap_or_else(|| panic!("line {}: no SDDL comment above", i + 1));
        // The comment must be the line right above the value.
        assert!(
            lines[i - 1].starts_with("# SDDL:"),
            "line {}: SDDL comment not directly above",
            i + 1
        );
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .unwrap_or_else(|e| panic!("line {}: base64: {e}", i + 1));
        let decoded = SecurityDescriptor::from_bytes(&bytes)
            .unwrap_or_else(|e| panic!("line {}: {e}", i + 1));
        let parsed = parse_sddl(comment.trim(), &domain)
            .unwrap_or_else(|e| panic!("line {}: SDDL {comment}: {e}", i + 1));
        assert_eq!(decoded, parsed, "line {}: {comment}", i + 1);
        assert_eq!(
            parsed.to_bytes(),
            bytes,
            "line {}: encoding of {comment}",
            i + 1
        );
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} descriptors found");
}

/// (kind, OID, lowercased NAME) of each definition in either schema form.
fn definitions(text: &str, attr_kw: &str, class_kw: &str) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    let flat = unfold(text).join("\n");
    for (kw, kind) in [(attr_kw, "attribute"), (class_kw, "class")] {
        for chunk in flat.split(kw).skip(1) {
            let body = chunk.trim_start_matches([':', ' ']).trim_start();
            let Some(body) = body.strip_prefix('(') else {
                continue;
            };
            let oid = body.split_whitespace().next().unwrap_or("").to_string();
            let name = body
                .split("NAME")
                .nth(1)
                .and_then(|n| n.split('\'').nth(1))
                .unwrap_or("")
                .to_ascii_lowercase();
            out.insert((kind.to_string(), oid, name));
        }
    }
    out
}

#[test]
fn both_schema_forms_define_the_same_things() {
    let schema = include_str!("../ldif/ad.schema");
    let ldif = include_str!("../ldif/ad.ldif");
    let a = definitions(schema, "\nattributetype", "\nobjectclass");
    let b = definitions(ldif, "\nolcAttributeTypes", "\nolcObjectClasses");
    assert!(a.len() >= 50, "{} definitions in ad.schema", a.len());
    assert_eq!(a, b);
}

#[test]
fn every_attribute_has_an_equality_rule() {
    let schema = include_str!("../ldif/ad.schema");
    let flat = unfold(schema).join("\n");
    for chunk in flat.split("\nattributetype").skip(1) {
        let def = chunk.split("\nobjectclass").next().unwrap_or(chunk);
        let def = def.split("\n\n").next().unwrap_or(def);
        assert!(
            def.contains("EQUALITY") || def.contains(" SUP "),
            "no EQUALITY rule: {def}"
        );
    }
}
