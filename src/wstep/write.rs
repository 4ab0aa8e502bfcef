//! Serializing WSTEP messages.
//!
//! Plain string building: the messages have a fixed shape, and every value that
//! comes from outside goes through [`text`] or [`attr`]. Prefixes follow the
//! usual WCF choices (`s`, `a`) and the spec's (`wst`, `wsse`, `wstep`, `auth`);
//! readers match on namespaces, so the choice is cosmetic.

use std::fmt::Write as _;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::xml::is_xml_char;
use super::{
    ACTION_FAULT, ACTION_RST, ACTION_RSTRC, ADDRESS_ANONYMOUS, ENCODING_BASE64, FaultCode,
    PASSWORD_TEXT, REQUEST_TYPE_ISSUE, REQUEST_TYPE_QUERY_TOKEN_STATUS, RequestKind,
    TOKEN_TYPE_X509V3, VALUE_TYPE_PKCS7, VALUE_TYPE_X509V3, WstepFault, WstepRequest,
    WstepResponse, ns,
};

impl WstepRequest {
    /// The `RequestSecurityToken` message ([MS-WSTEP] 3.1.4.1.1.1).
    pub fn to_xml(&self) -> String {
        let mut x = String::with_capacity(2048);
        envelope_open(&mut x);
        x.push_str("<s:Header>");
        action(&mut x, ACTION_RST);
        let _ = write!(x, "<a:MessageID>{}</a:MessageID>", text(&self.message_id));
        let _ = write!(
            x,
            "<a:ReplyTo><a:Address>{ADDRESS_ANONYMOUS}</a:Address></a:ReplyTo>"
        );
        if let Some(to) = &self.to {
            let _ = write!(x, "<a:To s:mustUnderstand=\"1\">{}</a:To>", text(to));
        }
        if let Some(c) = &self.credentials {
            let _ = write!(
                x,
                "<wsse:Security s:mustUnderstand=\"1\" xmlns:wsse=\"{}\"><wsse:UsernameToken>\
                 <wsse:Username>{}</wsse:Username>\
                 <wsse:Password Type=\"{PASSWORD_TEXT}\">{}</wsse:Password>\
                 </wsse:UsernameToken></wsse:Security>",
                ns::WSSE,
                text(&c.username),
                text(&c.password)
            );
        }
        x.push_str("</s:Header>");
        let _ = write!(
            x,
            "<s:Body xmlns:xsi=\"{}\"><wst:RequestSecurityToken xmlns:wst=\"{}\" \
             xmlns:wsse=\"{}\" xmlns:wstep=\"{}\" xmlns:auth=\"{}\">",
            ns::XSI,
            ns::WST,
            ns::WSSE,
            ns::WSTEP,
            ns::AUTH
        );
        let _ = write!(x, "<wst:TokenType>{TOKEN_TYPE_X509V3}</wst:TokenType>");
        match &self.kind {
            RequestKind::Issue { token } => {
                let _ = write!(x, "<wst:RequestType>{REQUEST_TYPE_ISSUE}</wst:RequestType>");
                binary_security_token(&mut x, VALUE_TYPE_PKCS7, token);
            }
            RequestKind::QueryTokenStatus { .. } => {
                let _ = write!(
                    x,
                    "<wst:RequestType>{REQUEST_TYPE_QUERY_TOKEN_STATUS}</wst:RequestType>"
                );
            }
        }
        if !self.context.is_empty() {
            x.push_str("<auth:AdditionalContext>");
            for (name, value) in &self.context {
                let _ = write!(
                    x,
                    "<auth:ContextItem Name=\"{}\"><auth:Value>{}</auth:Value></auth:ContextItem>",
                    attr(name),
                    text(value)
                );
            }
            x.push_str("</auth:AdditionalContext>");
        }
        match &self.kind {
            // [MS-WSTEP] 3.1.4.2.1.1: ignored for Issue; Windows sends it nil.
            RequestKind::Issue { .. } => x.push_str("<wstep:RequestID xsi:nil=\"true\"/>"),
            RequestKind::QueryTokenStatus { request_id } => {
                let _ = write!(x, "<wstep:RequestID>{request_id}</wstep:RequestID>");
            }
        }
        x.push_str("</wst:RequestSecurityToken></s:Body></s:Envelope>");
        x
    }
}

impl WstepResponse {
    /// The `RequestSecurityTokenResponseCollection` message ([MS-WSTEP]
    /// 3.1.4.1.1.2). `RequestedSecurityToken` holds the certificate when there is
    /// one, otherwise a `SecurityTokenReference` naming the pending request.
    pub fn to_xml(&self) -> String {
        let mut x = String::with_capacity(4096);
        envelope_open(&mut x);
        x.push_str("<s:Header>");
        action(&mut x, ACTION_RSTRC);
        relates_to(&mut x, self.relates_to.as_deref());
        x.push_str("</s:Header><s:Body>");
        let _ = write!(
            x,
            "<wst:RequestSecurityTokenResponseCollection xmlns:wst=\"{}\" xmlns:wsse=\"{}\" \
             xmlns:wstep=\"{}\"><wst:RequestSecurityTokenResponse>\
             <wst:TokenType>{TOKEN_TYPE_X509V3}</wst:TokenType>\
             <wstep:DispositionMessage xml:lang=\"en-US\">{}</wstep:DispositionMessage>",
            ns::WST,
            ns::WSSE,
            ns::WSTEP,
            text(&self.message)
        );
        if let Some(chain) = &self.chain_pkcs7 {
            binary_security_token(&mut x, VALUE_TYPE_PKCS7, chain);
        }
        x.push_str("<wst:RequestedSecurityToken>");
        match &self.certificate {
            Some(cert) => binary_security_token(&mut x, VALUE_TYPE_X509V3, cert),
            None => {
                let _ = write!(
                    x,
                    "<wsse:SecurityTokenReference><wsse:Reference URI=\"urn:wstep:request-id:{}\"/>\
                     </wsse:SecurityTokenReference>",
                    self.request_id
                );
            }
        }
        let _ = write!(
            x,
            "</wst:RequestedSecurityToken><wstep:RequestID>{}</wstep:RequestID>\
             </wst:RequestSecurityTokenResponse></wst:RequestSecurityTokenResponseCollection>\
             </s:Body></s:Envelope>",
            self.request_id
        );
        x
    }
}

impl WstepFault {
    /// A SOAP 1.2 fault with a `CertificateEnrollmentWSDetail` ([MS-WSTEP]
    /// 3.1.4.1.3.1), shaped like the ones AD CS sends.
    pub fn to_xml(&self) -> String {
        let mut x = String::with_capacity(1024);
        envelope_open(&mut x);
        x.push_str("<s:Header>");
        action(&mut x, ACTION_FAULT);
        relates_to(&mut x, self.relates_to.as_deref());
        let code = match self.code {
            FaultCode::Sender => "s:Sender",
            FaultCode::Receiver => "s:Receiver",
        };
        let _ = write!(
            x,
            "</s:Header><s:Body><s:Fault><s:Code><s:Value>{code}</s:Value></s:Code>\
             <s:Reason><s:Text xml:lang=\"en-US\">{}</s:Text></s:Reason>\
             <s:Detail><CertificateEnrollmentWSDetail xmlns=\"{}\" xmlns:xsi=\"{}\">",
            text(&self.message),
            ns::WSTEP,
            ns::XSI
        );
        match &self.binary_response {
            Some(b) => {
                let _ = write!(x, "<BinaryResponse>{}</BinaryResponse>", STANDARD.encode(b));
            }
            None => x.push_str("<BinaryResponse xsi:nil=\"true\"/>"),
        }
        // Windows writes the HRESULT as a signed 32-bit decimal.
        let _ = write!(
            x,
            "<ErrorCode>{}</ErrorCode><InvalidRequest>{}</InvalidRequest>",
            self.hresult as i32, self.invalid_request
        );
        match self.request_id {
            Some(id) => {
                let _ = write!(x, "<RequestID>{id}</RequestID>");
            }
            None => x.push_str("<RequestID xsi:nil=\"true\"/>"),
        }
        x.push_str("</CertificateEnrollmentWSDetail></s:Detail></s:Fault></s:Body></s:Envelope>");
        x
    }
}

fn envelope_open(x: &mut String) {
    let _ = write!(
        x,
        "<s:Envelope xmlns:s=\"{}\" xmlns:a=\"{}\">",
        ns::SOAP12,
        ns::WSA
    );
}

fn action(x: &mut String, uri: &str) {
    let _ = write!(x, "<a:Action s:mustUnderstand=\"1\">{uri}</a:Action>");
}

fn relates_to(x: &mut String, id: Option<&str>) {
    if let Some(id) = id {
        let _ = write!(x, "<a:RelatesTo>{}</a:RelatesTo>", text(id));
    }
}

/// A `wsse:BinarySecurityToken` (prefix `wsse` must be in scope).
fn binary_security_token(x: &mut String, value_type: &str, data: &[u8]) {
    let _ = write!(
        x,
        "<wsse:BinarySecurityToken ValueType=\"{value_type}\" EncodingType=\"{ENCODING_BASE64}\">\
         {}</wsse:BinarySecurityToken>",
        STANDARD.encode(data)
    );
}

/// Escapes character data. `\r` becomes a character reference because a reader
/// would otherwise normalize it away (XML 1.0 2.11); characters XML 1.0 cannot
/// carry at all become U+FFFD so the output is always well-formed.
pub(crate) fn text(s: &str) -> String {
    escape(s, false)
}

/// Escapes an attribute value. Tab and newline become character references too,
/// because attribute-value normalization (XML 1.0 3.3.3) would turn them into
/// spaces.
pub(crate) fn attr(s: &str) -> String {
    escape(s, true)
}

fn escape(s: &str, in_attr: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            '\n' if in_attr => out.push_str("&#10;"),
            '\t' if in_attr => out.push_str("&#9;"),
            c if is_xml_char(c) => out.push(c),
            _ => out.push('\u{fffd}'),
        }
    }
    out
}
