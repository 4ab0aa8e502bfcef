//! MS-WSTEP messages (SOAP 1.2 / WS-Trust 1.3), shared by the client and the CA.
//!
//! [MS-WSTEP] profiles WS-Trust 1.3 for certificate enrollment: the client sends a
//! `RequestSecurityToken` (RST) carrying a PKCS#10 or CMS request, the CA answers
//! with a `RequestSecurityTokenResponseCollection` (RSTRC) holding the certificate
//! (or a pending request ID), or with a SOAP 1.2 fault whose detail is a
//! `CertificateEnrollmentWSDetail`. Both sides of this crate use the same codec,
//! so what the client writes is exactly what the emulated CA reads and vice versa.
//!
//! Layout: this file holds the message types and wire constants; `xml` turns
//! untrusted bytes into a small element tree under hard limits; `read` maps that
//! tree onto the types; `write` serializes them.
//!
//! Parsing is for hostile input (the CA parses whatever the network sends): the
//! size is capped before any parsing, DTDs are refused outright, nesting and
//! element counts are bounded, and elements are matched by namespace URI and local
//! name, never by prefix.

mod read;
mod write;
mod xml;

#[cfg(test)]
mod tests;

pub use read::parse_reply;

/// Largest message either side parses. A certificate request or response is a few
/// kilobytes; 256 KiB leaves room for long chains while bounding the work a peer
/// can make us do.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Deepest element nesting accepted. Real messages nest about eight levels.
pub const MAX_DEPTH: usize = 64;

/// Most elements accepted in one message; bounds the memory of the parsed tree.
pub const MAX_ELEMENTS: usize = 4096;

/// SOAP action of a request ([MS-WSTEP] 3.1.4.1.1.1).
pub const ACTION_RST: &str =
    "http://schemas.microsoft.com/windows/pki/2009/01/enrollment/RST/wstep";

/// SOAP action of a response ([MS-WSTEP] 3.1.4.1.1.2).
pub const ACTION_RSTRC: &str =
    "http://schemas.microsoft.com/windows/pki/2009/01/enrollment/RSTRC/wstep";

/// SOAP action AD CS puts on a fault carrying a `CertificateEnrollmentWSDetail`.
pub const ACTION_FAULT: &str = "http://schemas.microsoft.com/windows/pki/2009/01/enrollment/RequestSecurityTokenCertificateEnrollmentWSDetailFault";

/// `RequestType` of a new or renewal request: WSTEP has no Renew type
/// ([MS-WSTEP] 3.1.4.2.1.1).
pub const REQUEST_TYPE_ISSUE: &str = "http://docs.oasis-open.org/ws-sx/ws-trust/200512/Issue";

/// `RequestType` that polls a pending request by ID ([MS-WSTEP] 3.1.4.2.1.2).
pub const REQUEST_TYPE_QUERY_TOKEN_STATUS: &str =
    "http://schemas.microsoft.com/windows/pki/2009/01/enrollment/QueryTokenStatus";

/// `TokenType` of every WSTEP exchange ([MS-WSTEP] 3.1.4.1.2.8).
pub const TOKEN_TYPE_X509V3: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3";

/// `ValueType` of a request token and of the chain in a response (used even for a
/// bare PKCS#10).
pub const VALUE_TYPE_PKCS7: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd#PKCS7";

/// `ValueType` of the issued certificate in `RequestedSecurityToken`.
pub const VALUE_TYPE_X509V3: &str = TOKEN_TYPE_X509V3;

/// `EncodingType` of every `BinarySecurityToken` we write.
pub const ENCODING_BASE64: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd#base64binary";

/// `Type` of a clear-text password in a WS-Security UsernameToken (the only kind
/// CES accepts over TLS).
pub const PASSWORD_TEXT: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText";

/// WS-Addressing anonymous reply address (the reply comes back on the HTTP response).
pub const ADDRESS_ANONYMOUS: &str = "http://www.w3.org/2005/08/addressing/anonymous";

/// Namespace URIs ([MS-WSTEP] 2.2).
pub mod ns {
    /// SOAP 1.2 envelope, the only one WSTEP uses.
    pub const SOAP12: &str = "http://www.w3.org/2003/05/soap-envelope";
    /// SOAP 1.1 envelope, recognized only to say it is not accepted.
    pub const SOAP11: &str = "http://schemas.xmlsoap.org/soap/envelope/";
    /// WS-Addressing 1.0.
    pub const WSA: &str = "http://www.w3.org/2005/08/addressing";
    /// WS-Trust 1.3.
    pub const WST: &str = "http://docs.oasis-open.org/ws-sx/ws-trust/200512";
    /// WS-Security 1.0 secext (BinarySecurityToken, Security, UsernameToken).
    pub const WSSE: &str =
        "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
    /// The WSTEP enrollment extensions (RequestID, DispositionMessage, fault detail).
    pub const WSTEP: &str = "http://schemas.microsoft.com/windows/pki/2009/01/enrollment";
    /// WS-Federation authorization (AdditionalContext).
    pub const AUTH: &str = "http://schemas.xmlsoap.org/ws/2006/12/authorization";
    /// XML Schema instance (`xsi:nil`).
    pub const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";
}

/// WS-Security UsernameToken with a clear-text password (`PasswordText`); CES
/// accepts it only over TLS.
#[derive(Clone, PartialEq, Eq)]
pub struct UsernameToken {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for UsernameToken {
    /// Never prints the password (requests end up in logs).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsernameToken")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// What a request asks for ([MS-WSTEP] 3.1.4.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestKind {
    /// `RequestType` Issue, for new requests and renewals alike: `token` is the
    /// decoded `BinarySecurityToken`, a PKCS#10 or a CMS request.
    Issue { token: Vec<u8> },
    /// `RequestType` QueryTokenStatus: poll the pending request `request_id`.
    QueryTokenStatus { request_id: u64 },
}

/// A `RequestSecurityToken` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WstepRequest {
    /// `wsa:MessageID`, echoed by the server as `wsa:RelatesTo` (`urn:uuid:...`).
    pub message_id: String,
    /// `wsa:To`, the endpoint URL, when given.
    pub to: Option<String>,
    /// `wsse:Security` header with a UsernameToken, when the client authenticates
    /// by password rather than Kerberos or client certificate.
    pub credentials: Option<UsernameToken>,
    pub kind: RequestKind,
    /// `auth:AdditionalContext` items as (Name, Value), in document order, e.g.
    /// `("CertificateTemplate", "WorkstationAuth")`.
    pub context: Vec<(String, String)>,
}

impl WstepRequest {
    /// A request of `kind` with a fresh message ID and nothing else set.
    pub fn new(kind: RequestKind) -> WstepRequest {
        WstepRequest {
            message_id: new_message_id(),
            to: None,
            credentials: None,
            kind,
            context: Vec::new(),
        }
    }
}

/// Outcome of a request that did not fail; the codes are the CR_DISP_* values of
/// [MS-WCCE] 3.2.1.4.2.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// CR_DISP_ISSUED (3): the certificate is in the response.
    Issued,
    /// CR_DISP_UNDER_SUBMISSION (5): waiting for a CA manager; poll with
    /// QueryTokenStatus and the request ID.
    Pending,
}

impl Disposition {
    /// The CR_DISP_* code.
    pub fn code(self) -> u32 {
        match self {
            Disposition::Issued => 3,
            Disposition::Pending => 5,
        }
    }

    /// The `DispositionMessage` text AD CS sends for this outcome.
    pub fn default_message(self) -> &'static str {
        match self {
            Disposition::Issued => "Issued",
            Disposition::Pending => "Taken Under Submission",
        }
    }
}

/// A `RequestSecurityTokenResponseCollection` with one response.
///
/// On the wire the disposition is carried by what `RequestedSecurityToken` holds:
/// the certificate when issued, a `SecurityTokenReference` when pending. So
/// `certificate` is `Some` exactly when `disposition` is `Issued`; the
/// constructors keep that invariant and the parser produces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WstepResponse {
    /// `wsa:RelatesTo`: the request's message ID.
    pub relates_to: Option<String>,
    /// `wstep:RequestID`: the CA's request number.
    pub request_id: u64,
    pub disposition: Disposition,
    /// `wstep:DispositionMessage`.
    pub message: String,
    /// The issued certificate (DER), from `RequestedSecurityToken`.
    pub certificate: Option<Vec<u8>>,
    /// The `BinarySecurityToken` of ValueType `#PKCS7` beside it: a CMS structure
    /// holding the chain (opaque here).
    pub chain_pkcs7: Option<Vec<u8>>,
}

impl WstepResponse {
    /// An issued response with AD CS's default message.
    pub fn issued(
        relates_to: Option<String>,
        request_id: u64,
        certificate: Vec<u8>,
        chain_pkcs7: Option<Vec<u8>>,
    ) -> WstepResponse {
        WstepResponse {
            relates_to,
            request_id,
            disposition: Disposition::Issued,
            message: Disposition::Issued.default_message().to_string(),
            certificate: Some(certificate),
            chain_pkcs7,
        }
    }

    /// A pending response with AD CS's default message.
    pub fn pending(relates_to: Option<String>, request_id: u64) -> WstepResponse {
        WstepResponse {
            relates_to,
            request_id,
            disposition: Disposition::Pending,
            message: Disposition::Pending.default_message().to_string(),
            certificate: None,
            chain_pkcs7: None,
        }
    }
}

/// SOAP 1.2 fault code ([SOAP12-1] 5.4.6): whose fault it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultCode {
    /// `soap:Sender`: the message was malformed; resending it will fail again.
    Sender,
    /// `soap:Receiver`: the server could not or would not process it (denied,
    /// CA error). This is what AD CS uses for policy denials.
    Receiver,
}

/// HRESULT of an invalid argument, used for faults about malformed requests.
pub const E_INVALIDARG: u32 = 0x8007_0057;

/// HRESULT given to a fault that carries no `CertificateEnrollmentWSDetail`
/// (e.g. a WCF dispatcher fault): the reason text is all there is.
pub const E_FAIL: u32 = 0x8000_4005;

/// A SOAP 1.2 fault with a `CertificateEnrollmentWSDetail` ([MS-WSTEP] 3.1.4.1.3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WstepFault {
    /// `wsa:RelatesTo`: the request's message ID, when it could be read.
    pub relates_to: Option<String>,
    pub code: FaultCode,
    /// `ErrorCode`: the HRESULT. Written as the signed 32-bit decimal Windows uses
    /// (`-2146875385`), read from signed, unsigned or `0x` hex form.
    pub hresult: u32,
    /// `Reason/Text`.
    pub message: String,
    /// `RequestID`, when the CA assigned one before failing.
    pub request_id: Option<u64>,
    /// `InvalidRequest`: true when the request itself was refused.
    pub invalid_request: bool,
    /// `BinaryResponse`: the CA's CMC response, when it produced one (opaque).
    pub binary_response: Option<Vec<u8>>,
}

impl WstepFault {
    /// The CA refused the request (policy denial or CA error): `soap:Receiver`,
    /// InvalidRequest true, as AD CS does.
    pub fn denied(
        relates_to: Option<String>,
        hresult: u32,
        message: impl Into<String>,
        request_id: Option<u64>,
    ) -> WstepFault {
        WstepFault {
            relates_to,
            code: FaultCode::Receiver,
            hresult,
            message: message.into(),
            request_id,
            invalid_request: true,
            binary_response: None,
        }
    }

    /// The request could not be parsed: `soap:Sender`, E_INVALIDARG, with the
    /// parser's explanation as the reason.
    pub fn malformed(relates_to: Option<String>, error: &WstepError) -> WstepFault {
        WstepFault {
            relates_to,
            code: FaultCode::Sender,
            hresult: E_INVALIDARG,
            message: error.to_string(),
            request_id: None,
            invalid_request: true,
            binary_response: None,
        }
    }
}

/// What a client gets back for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Response(WstepResponse),
    Fault(WstepFault),
}

/// Why a message could not be read. Paths are local names from the root
/// (`Envelope/Body/RequestSecurityToken/BinarySecurityToken`), `@` marks an attribute.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WstepError {
    #[error("message is {size} bytes, more than the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("message is not UTF-8: invalid byte sequence at offset {offset}")]
    NotUtf8 { offset: usize },
    #[error("XML declaration names encoding {0:?}; only UTF-8 is accepted")]
    Encoding(String),
    #[error("document type declarations are refused (no DTD, no entity declarations)")]
    Doctype,
    #[error("malformed XML at byte {offset}: {reason}")]
    Xml { offset: u64, reason: String },
    #[error("{path}: unknown entity reference &{name}; (only the five predefined ones)")]
    UnknownEntity { path: String, name: String },
    #[error("{path}: elements nested deeper than {limit} levels")]
    TooDeep { path: String, limit: usize },
    #[error("more than {limit} elements")]
    TooManyElements { limit: usize },
    #[error("SOAP 1.1 envelope; only SOAP 1.2 ({}) is accepted", ns::SOAP12)]
    Soap11,
    #[error("{path}: expected {expected}, found {found}")]
    Unexpected {
        path: String,
        expected: String,
        found: String,
    },
    #[error("{path}: missing {what}")]
    Missing { path: String, what: String },
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
}

/// A fresh `urn:uuid:` message ID (random UUID version 4, RFC 9562 5.4).
pub fn new_message_id() -> String {
    let mut b = [0u8; 16];
    // The system generator failing means the host cannot do any cryptography
    // either; there is no sensible message ID to fall back to.
    aws_lc_rs::rand::fill(&mut b).expect("system random generator failed");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}
