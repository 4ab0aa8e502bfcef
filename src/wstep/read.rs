//! Reading WSTEP messages from the element tree of [`super::xml`].
//!
//! Every lookup goes through [`At`], an element plus its path, so each error says
//! where it happened. Elements are matched by namespace URI and local name.

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::xml::{self, Element, is_xml_space};
use super::{
    ACTION_RST, Disposition, E_FAIL, FaultCode, PASSWORD_TEXT, REQUEST_TYPE_ISSUE,
    REQUEST_TYPE_QUERY_TOKEN_STATUS, Reply, RequestKind, TOKEN_TYPE_X509V3, UsernameToken,
    WstepError, WstepFault, WstepRequest, WstepResponse, ns,
};

/// Standard alphabet; padding optional because some encoders drop it.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

impl WstepRequest {
    /// Reads a `RequestSecurityToken` message ([MS-WSTEP] 3.1.4.1.1.1).
    ///
    /// Requires the WS-Addressing Action (the WSTEP RST action) and MessageID; a
    /// Security header is read only for its UsernameToken. The Issue and
    /// QueryTokenStatus constraints are those of [MS-WSTEP] 3.1.4.2.1.1 and
    /// 3.1.4.2.1.2.
    pub fn from_xml(body: &[u8]) -> Result<WstepRequest, WstepError> {
        let root = xml::parse(body)?;
        let (header, body) = envelope(&root)?;
        let header = header.ok_or_else(|| WstepError::Missing {
            path: "Envelope".to_string(),
            what: "Header (WS-Addressing Action and MessageID)".to_string(),
        })?;

        let action = header.require(ns::WSA, "Action")?;
        if action.text() != ACTION_RST {
            return Err(WstepError::Unexpected {
                found: action.text().to_string(),
                expected: ACTION_RST.to_string(),
                path: action.path,
            });
        }
        let message_id = header
            .require(ns::WSA, "MessageID")?
            .nonempty_text()?
            .to_string();
        let to = header
            .child(ns::WSA, "To")
            .map(|t| t.text().to_string())
            .filter(|t| !t.is_empty());
        let credentials = match header.child(ns::WSSE, "Security") {
            Some(security) => username_token(&security)?,
            None => None,
        };

        let rst = body.must_be(ns::WST, "RequestSecurityToken")?;
        if let Some(token_type) = rst.child(ns::WST, "TokenType")
            && token_type.text() != TOKEN_TYPE_X509V3
        {
            return Err(token_type.invalid(format!(
                "unsupported TokenType {:?}; WSTEP issues {TOKEN_TYPE_X509V3}",
                token_type.text()
            )));
        }
        let request_type = rst.require(ns::WST, "RequestType")?;
        let kind = match request_type.nonempty_text()? {
            REQUEST_TYPE_ISSUE => {
                let token = rst.require(ns::WSSE, "BinarySecurityToken")?.base64()?;
                RequestKind::Issue { token }
            }
            REQUEST_TYPE_QUERY_TOKEN_STATUS => {
                let id = rst.require(ns::WSTEP, "RequestID")?;
                if id.el.is_nil() {
                    return Err(id.invalid(
                        "is nil; QueryTokenStatus needs the pending request's ID".to_string(),
                    ));
                }
                RequestKind::QueryTokenStatus {
                    request_id: id.number()?,
                }
            }
            other => {
                return Err(request_type.invalid(format!(
                    "unknown RequestType {other:?}; expected {REQUEST_TYPE_ISSUE} or \
                     {REQUEST_TYPE_QUERY_TOKEN_STATUS}"
                )));
            }
        };
        let context = match rst.child(ns::AUTH, "AdditionalContext") {
            Some(ac) => additional_context(&ac)?,
            None => Vec::new(),
        };
        Ok(WstepRequest {
            message_id,
            to,
            credentials,
            kind,
            context,
        })
    }
}

/// Reads what a server sent back: a response collection or a fault.
pub fn parse_reply(body: &[u8]) -> Result<Reply, WstepError> {
    let root = xml::parse(body)?;
    let (header, body) = envelope(&root)?;
    let relates_to = header
        .as_ref()
        .and_then(|h| h.child(ns::WSA, "RelatesTo"))
        .map(|r| r.text().to_string())
        .filter(|r| !r.is_empty());
    if body
        .el
        .is(ns::WST, "RequestSecurityTokenResponseCollection")
    {
        response(&body, relates_to).map(Reply::Response)
    } else if body.el.is(ns::SOAP12, "Fault") {
        fault(&body, relates_to).map(Reply::Fault)
    } else {
        Err(WstepError::Unexpected {
            path: body.path.clone(),
            expected: format!(
                "{{{}}}RequestSecurityTokenResponseCollection or {{{}}}Fault",
                ns::WST,
                ns::SOAP12
            ),
            found: body.el.describe(),
        })
    }
}

/// The RSTRC: one RSTR whose `RequestedSecurityToken` holds either the
/// certificate (issued) or a `SecurityTokenReference` (pending) ([MS-WSTEP]
/// 3.1.4.1.3.2). A response without `RequestedSecurityToken` is read as pending.
fn response(coll: &At<'_>, relates_to: Option<String>) -> Result<WstepResponse, WstepError> {
    let rstr = coll.require(ns::WST, "RequestSecurityTokenResponse")?;
    if coll
        .el
        .children_named(ns::WST, "RequestSecurityTokenResponse")
        .count()
        > 1
    {
        return Err(coll.invalid("more than one RequestSecurityTokenResponse".to_string()));
    }
    let message = rstr
        .child(ns::WSTEP, "DispositionMessage")
        .map(|m| m.text().to_string())
        .unwrap_or_default();
    let chain_pkcs7 = match rstr.child(ns::WSSE, "BinarySecurityToken") {
        Some(bst) => Some(bst.base64()?),
        None => None,
    };
    let certificate = match rstr
        .child(ns::WST, "RequestedSecurityToken")
        .and_then(|r| r.child(ns::WSSE, "BinarySecurityToken"))
    {
        Some(bst) => Some(bst.base64()?),
        None => None,
    };
    let request_id = rstr.require(ns::WSTEP, "RequestID")?.number()?;
    Ok(WstepResponse {
        relates_to,
        request_id,
        disposition: if certificate.is_some() {
            Disposition::Issued
        } else {
            Disposition::Pending
        },
        message,
        certificate,
        chain_pkcs7,
    })
}

/// A SOAP 1.2 fault, with the `CertificateEnrollmentWSDetail` when present
/// ([MS-WSTEP] 3.1.4.1.3.1). Faults without it (WCF dispatcher faults) get
/// [`E_FAIL`] and keep their reason text. Only a code of `Receiver` reads as
/// [`FaultCode::Receiver`]; `Sender` and the other SOAP codes (VersionMismatch,
/// MustUnderstand, ...) all mean the message was at fault.
fn fault(f: &At<'_>, relates_to: Option<String>) -> Result<WstepFault, WstepError> {
    let value = f
        .require(ns::SOAP12, "Code")?
        .require(ns::SOAP12, "Value")?;
    let code_text = value.text();
    let local = code_text.rsplit(':').next().unwrap_or(code_text);
    let in_soap_ns = value
        .el
        .text_qname_ns
        .as_deref()
        .is_none_or(|n| n == ns::SOAP12);
    let code = if local == "Receiver" && in_soap_ns {
        FaultCode::Receiver
    } else {
        FaultCode::Sender
    };
    let message = f
        .child(ns::SOAP12, "Reason")
        .and_then(|r| r.child(ns::SOAP12, "Text"))
        .map(|t| t.text().to_string())
        .unwrap_or_default();
    let detail = f
        .child(ns::SOAP12, "Detail")
        .and_then(|d| d.child(ns::WSTEP, "CertificateEnrollmentWSDetail"));
    let Some(detail) = detail else {
        return Ok(WstepFault {
            relates_to,
            code,
            hresult: E_FAIL,
            message,
            request_id: None,
            invalid_request: false,
            binary_response: None,
        });
    };
    let hresult = detail.require(ns::WSTEP, "ErrorCode")?.hresult()?;
    let invalid_request = match detail.child(ns::WSTEP, "InvalidRequest") {
        Some(b) if !b.el.is_nil() => b.boolean()?,
        _ => false,
    };
    let request_id = match detail.child(ns::WSTEP, "RequestID") {
        Some(id) if !id.el.is_nil() && !id.text().is_empty() => Some(id.number()?),
        _ => None,
    };
    let binary_response = match detail.child(ns::WSTEP, "BinaryResponse") {
        Some(b) if !b.el.is_nil() && !b.text().is_empty() => Some(b.base64()?),
        _ => None,
    };
    Ok(WstepFault {
        relates_to,
        code,
        hresult,
        message,
        request_id,
        invalid_request,
        binary_response,
    })
}

/// Checks the SOAP 1.2 envelope and returns (Header, the one element in Body).
fn envelope(root: &Element) -> Result<(Option<At<'_>>, At<'_>), WstepError> {
    if !root.is(ns::SOAP12, "Envelope") {
        if root.is(ns::SOAP11, "Envelope") {
            return Err(WstepError::Soap11);
        }
        return Err(WstepError::Unexpected {
            path: "(document)".to_string(),
            expected: format!("{{{}}}Envelope", ns::SOAP12),
            found: root.describe(),
        });
    }
    let env = At {
        el: root,
        path: root.name.clone(),
    };
    let header = env.child(ns::SOAP12, "Header");
    let body = env.require(ns::SOAP12, "Body")?;
    let mut content = body.el.children.iter();
    let first = content.next().ok_or_else(|| WstepError::Missing {
        path: body.path.clone(),
        what: "message element".to_string(),
    })?;
    if content.next().is_some() {
        return Err(body.invalid("more than one element; WSTEP sends exactly one".to_string()));
    }
    let first = At {
        el: first,
        path: format!("{}/{}", body.path, first.name),
    };
    Ok((header, first))
}

/// The UsernameToken of a `wsse:Security` header, if it has one (other tokens,
/// e.g. timestamps, are not ours to judge).
fn username_token(security: &At<'_>) -> Result<Option<UsernameToken>, WstepError> {
    let Some(token) = security.child(ns::WSSE, "UsernameToken") else {
        return Ok(None);
    };
    let username = token
        .require(ns::WSSE, "Username")?
        .nonempty_text()?
        .to_string();
    let password = token.require(ns::WSSE, "Password")?;
    if let Some(kind) = password.el.attr(None, "Type")
        && kind != PASSWORD_TEXT
    {
        return Err(password.invalid(format!(
            "password Type {kind:?} is not supported; only {PASSWORD_TEXT}"
        )));
    }
    Ok(Some(UsernameToken {
        username,
        // Exact text: leading or trailing spaces may be part of a password.
        password: password.el.text.clone(),
    }))
}

/// `auth:ContextItem` Name/Value pairs, in order.
fn additional_context(ac: &At<'_>) -> Result<Vec<(String, String)>, WstepError> {
    let mut items = Vec::new();
    for (i, item) in ac.el.children_named(ns::AUTH, "ContextItem").enumerate() {
        let at = At {
            el: item,
            path: format!("{}/ContextItem[{}]", ac.path, i + 1),
        };
        let name = item.attr(None, "Name").ok_or_else(|| WstepError::Missing {
            path: at.path.clone(),
            what: "Name attribute".to_string(),
        })?;
        let value = item
            .child(ns::AUTH, "Value")
            .map(|v| v.text.clone())
            .unwrap_or_default();
        items.push((name.to_string(), value));
    }
    Ok(items)
}

/// An element and its path, for lookups whose errors say where.
struct At<'a> {
    el: &'a Element,
    path: String,
}

impl<'a> At<'a> {
    fn child(&self, ns: &str, name: &str) -> Option<At<'a>> {
        self.el.child(ns, name).map(|el| At {
            el,
            path: format!("{}/{name}", self.path),
        })
    }

    fn require(&self, ns: &str, name: &str) -> Result<At<'a>, WstepError> {
        self.child(ns, name).ok_or_else(|| WstepError::Missing {
            path: self.path.clone(),
            what: format!("{name} element ({{{ns}}}{name})"),
        })
    }

    /// This element must be `{ns}name`.
    fn must_be(&self, ns: &str, name: &str) -> Result<&At<'a>, WstepError> {
        if self.el.is(ns, name) {
            Ok(self)
        } else {
            Err(WstepError::Unexpected {
                path: self.path.clone(),
                expected: format!("{{{ns}}}{name}"),
                found: self.el.describe(),
            })
        }
    }

    fn text(&self) -> &'a str {
        self.el.trimmed_text()
    }

    fn nonempty_text(&self) -> Result<&'a str, WstepError> {
        match self.text() {
            "" => Err(WstepError::Missing {
                path: self.path.clone(),
                what: "value (element is empty)".to_string(),
            }),
            t => Ok(t),
        }
    }

    fn invalid(&self, reason: String) -> WstepError {
        WstepError::Invalid {
            path: self.path.clone(),
            reason,
        }
    }

    /// Base64 content; whitespace anywhere is allowed because real clients wrap
    /// lines (64 columns, CRLF).
    fn base64(&self) -> Result<Vec<u8>, WstepError> {
        let compact: String = self.el.text.chars().filter(|c| !is_xml_space(*c)).collect();
        if compact.is_empty() {
            return Err(self.invalid("empty; expected base64 data".to_string()));
        }
        BASE64
            .decode(compact.as_bytes())
            .map_err(|e| self.invalid(format!("not valid base64: {e}")))
    }

    /// A request ID: unsigned decimal digits only.
    fn number(&self) -> Result<u64, WstepError> {
        let t = self.nonempty_text()?;
        if !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.invalid(format!("{t:?} is not a decimal number")));
        }
        t.parse::<u64>()
            .map_err(|e| self.invalid(format!("{t:?} is not a request ID: {e}")))
    }

    /// An xs:boolean.
    fn boolean(&self) -> Result<bool, WstepError> {
        match self.text() {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            t => Err(self.invalid(format!("{t:?} is not a boolean (true/false)"))),
        }
    }

    /// An HRESULT written as Windows does (signed decimal), as unsigned decimal,
    /// or as `0x` hex.
    fn hresult(&self) -> Result<u32, WstepError> {
        let t = self.nonempty_text()?;
        parse_hresult(t).ok_or_else(|| self.invalid(format!("{t:?} is not a 32-bit HRESULT")))
    }
}

/// See [`At::hresult`].
pub(crate) fn parse_hresult(t: &str) -> Option<u32> {
    if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        return u32::from_str_radix(hex, 16).ok();
    }
    if let Some(digits) = t.strip_prefix('-') {
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // Two's complement: the signed form is the same 32 bits.
        return t.parse::<i32>().ok().map(|v| v as u32);
    }
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse::<u32>().ok()
}
