//! Untrusted bytes to a small, namespace-resolved element tree.
//!
//! Messages are at most [`MAX_MESSAGE_BYTES`], so building a tree costs little and
//! lets the message readers look elements up by (namespace, local name) and name
//! the exact path in every error. The limits live here, before any WSTEP meaning:
//! size, UTF-8, no DOCTYPE (so no entity declarations, no billion laughs, no
//! external entities), only the five predefined entities and character
//! references, bounded depth and element count.

use std::borrow::Cow;

use quick_xml::XmlVersion;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{QName, ResolveResult};
use quick_xml::reader::NsReader;

use super::{MAX_DEPTH, MAX_ELEMENTS, MAX_MESSAGE_BYTES, WstepError, ns};

/// One element: its resolved name, attributes, element children and the
/// concatenation of its own character data (entities and CDATA resolved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Element {
    /// Namespace URI; `None` when the name is in no namespace.
    pub ns: Option<String>,
    pub name: String,
    pub attrs: Vec<Attr>,
    pub children: Vec<Element>,
    pub text: String,
    /// When the trimmed text is a prefixed QName (`s:Sender`), the namespace its
    /// prefix was bound to in this element's scope. SOAP fault codes are QNames in
    /// content, so their prefix has to be resolved where they appear.
    pub text_qname_ns: Option<String>,
}

/// An attribute other than a namespace declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attr {
    pub ns: Option<String>,
    pub name: String,
    pub value: String,
}

impl Element {
    /// Whether this element is `{ns}name`.
    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.name == name && self.ns.as_deref() == Some(ns)
    }

    /// First child `{ns}name`.
    pub fn child(&self, ns: &str, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(ns, name))
    }

    /// All children `{ns}name`, in order.
    pub fn children_named<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.is(ns, name))
    }

    /// Attribute value by namespace (`None`: unprefixed) and local name.
    pub fn attr(&self, ns: Option<&str>, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.name == name && a.ns.as_deref() == ns)
            .map(|a| a.value.as_str())
    }

    /// `xsi:nil="true"` (or `"1"`, the other xs:boolean spelling).
    pub fn is_nil(&self) -> bool {
        matches!(
            self.attr(Some(ns::XSI), "nil").map(str::trim),
            Some("true" | "1")
        )
    }

    /// Text with XML whitespace trimmed at both ends.
    pub fn trimmed_text(&self) -> &str {
        self.text.trim_matches(is_xml_space)
    }

    /// `{namespace}name` (or the bare name when in no namespace), for errors
    /// where the namespace is what was wrong.
    pub fn describe(&self) -> String {
        match &self.ns {
            Some(ns) => format!("{{{ns}}}{}", self.name),
            None => self.name.clone(),
        }
    }
}

/// XML whitespace (XML 1.0 production 3).
pub(crate) fn is_xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// XML 1.0 `Char` production (2.2): what a document may contain at all, raw or
/// as a character reference.
pub(crate) fn is_xml_char(c: char) -> bool {
    matches!(c,
        '\t' | '\n' | '\r'
        | '\u{20}'..='\u{d7ff}'
        | '\u{e000}'..='\u{fffd}'
        | '\u{10000}'..='\u{10ffff}')
}

/// Parses `input` into its root element under the limits described above.
pub(crate) fn parse(input: &[u8]) -> Result<Element, WstepError> {
    if input.len() > MAX_MESSAGE_BYTES {
        return Err(WstepError::TooLarge {
            size: input.len(),
            limit: MAX_MESSAGE_BYTES,
        });
    }
    let text = std::str::from_utf8(input).map_err(|e| WstepError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if let Some((offset, c)) = text.char_indices().find(|(_, c)| !is_xml_char(*c)) {
        return Err(WstepError::Xml {
            offset: offset as u64,
            reason: format!("character U+{:04X} is not allowed in XML", c as u32),
        });
    }
    Builder::new(text).run()
}

/// The event loop, with the stack of open elements.
struct Builder<'i> {
    reader: NsReader<&'i [u8]>,
    /// Open elements, outermost first.
    open: Vec<Element>,
    root: Option<Element>,
    count: usize,
}

impl<'i> Builder<'i> {
    fn new(text: &'i str) -> Builder<'i> {
        let mut reader = NsReader::from_str(text);
        let config = reader.config_mut();
        config.check_end_names = true;
        config.allow_unmatched_ends = false;
        config.expand_empty_elements = false;
        config.trim_text(false);
        Builder {
            reader,
            open: Vec::new(),
            root: None,
            count: 0,
        }
    }

    fn run(mut self) -> Result<Element, WstepError> {
        loop {
            let (resolved, event) = match self.reader.read_resolved_event() {
                Ok((r, e)) => (owned_ns(r), e),
                Err(e) => return Err(self.xml_error(e.to_string())),
            };
            match event {
                Event::Decl(d) => {
                    if let Some(enc) = d.encoding() {
                        let enc = enc.map_err(|e| self.xml_error(e.to_string()))?;
                        if !enc.eq_ignore_ascii_case("utf-8") {
                            return Err(WstepError::Encoding(enc.into_owned()));
                        }
                    }
                }
                Event::DocType(_) => return Err(WstepError::Doctype),
                Event::Start(e) => self.open_element(resolved, &e)?,
                Event::Empty(e) => {
                    self.open_element(resolved, &e)?;
                    self.close_element();
                }
                Event::End(_) => self.close_element(),
                Event::Text(t) => self.add_text(&t.xml10_content())?,
                Event::CData(c) => self.add_text(&c.xml10_content())?,
                Event::GeneralRef(r) => {
                    let resolved: Cow<'_, str> = if r.is_char_ref() {
                        match r.resolve_char_ref() {
                            Ok(Some(c)) if is_xml_char(c) => Cow::Owned(c.to_string()),
                            _ => {
                                return Err(WstepError::Invalid {
                                    path: self.path(),
                                    reason: format!("invalid character reference &{};", &*r),
                                });
                            }
                        }
                    } else {
                        match resolve_predefined_entity(&r) {
                            Some(s) => Cow::Borrowed(s),
                            None => {
                                return Err(WstepError::UnknownEntity {
                                    path: self.path(),
                                    name: r.to_string(),
                                });
                            }
                        }
                    };
                    self.add_text(&resolved)?;
                }
                Event::Comment(_) | Event::PI(_) => {}
                Event::Eof => {
                    if !self.open.is_empty() {
                        return Err(self.xml_error(format!("document ends inside {}", self.path())));
                    }
                    let no_root = self.xml_error("no root element".to_string());
                    return self.root.ok_or(no_root);
                }
            }
        }
    }

    fn open_element(
        &mut self,
        ns: Result<Option<String>, String>,
        e: &BytesStart<'_>,
    ) -> Result<(), WstepError> {
        if self.root.is_some() && self.open.is_empty() {
            return Err(self.xml_error("a second root element".to_string()));
        }
        if self.open.len() >= MAX_DEPTH {
            return Err(WstepError::TooDeep {
                path: self.path(),
                limit: MAX_DEPTH,
            });
        }
        self.count += 1;
        if self.count > MAX_ELEMENTS {
            return Err(WstepError::TooManyElements {
                limit: MAX_ELEMENTS,
            });
        }
        let name = e.local_name().as_ref().to_string();
        let here = if self.open.is_empty() {
            name.clone()
        } else {
            format!("{}/{name}", self.path())
        };
        let mut attrs = Vec::new();
        for a in e.attributes() {
            let a = a.map_err(|err| WstepError::Invalid {
                path: here.clone(),
                reason: format!("bad attribute: {err}"),
            })?;
            if a.key.as_namespace_binding().is_some() {
                continue;
            }
            let (attr_ns, local) = self.reader.resolver().resolve_attribute(a.key);
            let attr_ns = owned_ns(attr_ns).map_err(|prefix| WstepError::Invalid {
                path: format!("{here}/@{}", a.key.as_ref()),
                reason: format!("namespace prefix {prefix:?} is not declared"),
            })?;
            let local = local.as_ref().to_string();
            let value =
                a.normalized_value(XmlVersion::Implicit1_0)
                    .map_err(|err| WstepError::Invalid {
                        path: format!("{here}/@{local}"),
                        reason: format!("bad attribute value: {err}"),
                    })?;
            if let Some(c) = value.chars().find(|c| !is_xml_char(*c)) {
                return Err(WstepError::Invalid {
                    path: format!("{here}/@{local}"),
                    reason: format!("character U+{:04X} is not allowed in XML", c as u32),
                });
            }
            attrs.push(Attr {
                ns: attr_ns,
                name: local,
                value: value.into_owned(),
            });
        }
        let ns = ns.map_err(|prefix| WstepError::Invalid {
            path: here,
            reason: format!("namespace prefix {prefix:?} is not declared"),
        })?;
        self.open.push(Element {
            ns,
            name,
            attrs,
            children: Vec::new(),
            text: String::new(),
            text_qname_ns: None,
        });
        Ok(())
    }

    /// Closes the innermost element (quick-xml has already checked the end name).
    /// Called while the element's namespace scope is still in effect, which is
    /// what resolving a QName in its text needs.
    fn close_element(&mut self) {
        let Some(mut done) = self.open.pop() else {
            return;
        };
        done.text_qname_ns = self.resolve_text_qname(done.trimmed_text());
        match self.open.last_mut() {
            Some(parent) => parent.children.push(done),
            None => self.root = Some(done),
        }
    }

    fn resolve_text_qname(&self, text: &str) -> Option<String> {
        let (prefix, local) = text.split_once(':')?;
        if prefix.is_empty() || local.is_empty() || text.contains(is_xml_space) {
            return None;
        }
        let prefix = QName(text).prefix()?;
        match self.reader.resolver().resolve_prefix(Some(prefix), false) {
            ResolveResult::Bound(ns) => Some(ns.0.to_string()),
            _ => None,
        }
    }

    fn add_text(&mut self, text: &str) -> Result<(), WstepError> {
        match self.open.last_mut() {
            Some(e) => {
                e.text.push_str(text);
                Ok(())
            }
            None if text.chars().all(is_xml_space) => Ok(()),
            None => Err(self.xml_error("text outside the root element".to_string())),
        }
    }

    /// Local names of the open elements, outermost first.
    fn path(&self) -> String {
        let names: Vec<&str> = self.open.iter().map(|e| e.name.as_str()).collect();
        if names.is_empty() {
            "(document)".to_string()
        } else {
            names.join("/")
        }
    }

    fn xml_error(&self, reason: String) -> WstepError {
        WstepError::Xml {
            offset: self
                .reader
                .error_position()
                .max(self.reader.buffer_position()),
            reason,
        }
    }
}

/// Resolved namespace as an owned string; `Err(prefix)` for an undeclared prefix.
fn owned_ns(r: ResolveResult<'_>) -> Result<Option<String>, String> {
    match r {
        ResolveResult::Bound(ns) => Ok(Some(ns.0.to_string())),
        ResolveResult::Unbound => Ok(None),
        ResolveResult::Unknown(prefix) => Err(prefix),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_namespaces_not_prefixes() {
        let doc = br#"<x:a xmlns:x="urn:one" xmlns="urn:two"><b y:k="v" xmlns:y="urn:three" plain="p"/><x:c>t&amp;&#65;<![CDATA[<z>]]></x:c></x:a>"#;
        let root = parse(doc).unwrap();
        assert!(root.is("urn:one", "a"));
        let b = root.child("urn:two", "b").unwrap();
        assert_eq!(b.attr(Some("urn:three"), "k"), Some("v"));
        assert_eq!(b.attr(None, "plain"), Some("p"));
        assert_eq!(root.child("urn:one", "c").unwrap().text, "t&A<z>");
    }

    #[test]
    fn qname_text_resolved_in_scope() {
        let doc = br#"<r xmlns:p="urn:p"><v>p:Sender</v><w xmlns:p="urn:other">p:Sender</w><u>q:Sender</u></r>"#;
        let root = parse(doc).unwrap();
        assert_eq!(root.children[0].text_qname_ns.as_deref(), Some("urn:p"));
        assert_eq!(root.children[1].text_qname_ns.as_deref(), Some("urn:other"));
        assert_eq!(root.children[2].text_qname_ns, None);
    }

    #[test]
    fn limits_and_refusals() {
        let deep = format!(
            "{}{}",
            "<a>".repeat(MAX_DEPTH + 1),
            "</a>".repeat(MAX_DEPTH + 1)
        );
        assert!(matches!(
            parse(deep.as_bytes()),
            Err(WstepError::TooDeep { .. })
        ));
        let ok_depth = format!("{}{}", "<a>".repeat(MAX_DEPTH), "</a>".repeat(MAX_DEPTH));
        assert!(parse(ok_depth.as_bytes()).is_ok());
        let many = format!("<r>{}</r>", "<a/>".repeat(MAX_ELEMENTS));
        assert!(matches!(
            parse(many.as_bytes()),
            Err(WstepError::TooManyElements { .. })
        ));
        assert_eq!(parse(b"<!DOCTYPE r><r/>"), Err(WstepError::Doctype));
        assert!(matches!(
            parse(b"<r>&nope;</r>"),
            Err(WstepError::UnknownEntity { ref name, .. }) if name == "nope"
        ));
        assert!(matches!(
            parse(b"<r a='&nope;'/>"),
            Err(WstepError::Invalid { .. })
        ));
        assert!(matches!(parse(b"<r/><r/>"), Err(WstepError::Xml { .. })));
        assert!(matches!(parse(b"<r/>junk"), Err(WstepError::Xml { .. })));
        assert!(matches!(parse(b"<r>"), Err(WstepError::Xml { .. })));
        assert!(matches!(parse(b"<r></s>"), Err(WstepError::Xml { .. })));
        assert!(matches!(parse(b""), Err(WstepError::Xml { .. })));
        assert!(matches!(parse(b"<p:r/>"), Err(WstepError::Invalid { .. })));
        assert!(matches!(
            parse(b"<r>\xff</r>"),
            Err(WstepError::NotUtf8 { offset: 3 })
        ));
        assert!(matches!(
            parse(b"<?xml version='1.0' encoding='ISO-8859-1'?><r/>"),
            Err(WstepError::Encoding(_))
        ));
        assert!(parse(b"\xef\xbb\xbf<?xml version='1.0' encoding='UTF-8'?><r/>").is_ok());
    }
}
