//! Round trips, hand-written messages in other producers' styles, a table of
//! hostile inputs, and property tests that nothing panics.

use super::read::parse_hresult;
use super::*;
use proptest::prelude::*;

const S12: &str = ns::SOAP12;

fn issue_request() -> WstepRequest {
    WstepRequest {
        message_id: "urn:uuid:0f3c1e52-8d0c-4a57-9b0e-2f4de1c7a001".to_string(),
        to: Some("https://ca.corp.example/CES/service.svc/CES".to_string()),
        credentials: Some(UsernameToken {
            username: "CORP\\ws01$".to_string(),
            password: " p<a>ss&\"word' ".to_string(),
        }),
        kind: RequestKind::Issue {
            token: (0u8..=255).collect(),
        },
        context: vec![
            (
                "CertificateTemplate".to_string(),
                "WorkstationAuth".to_string(),
            ),
            ("ccm".to_string(), "ws01.corp.example".to_string()),
        ],
    }
}

fn query_request() -> WstepRequest {
    WstepRequest {
        message_id: "urn:uuid:5b1f6a0e-21a4-4c0e-8f55-7f2f0a9c3b10".to_string(),
        to: None,
        credentials: None,
        kind: RequestKind::QueryTokenStatus { request_id: 65 },
        context: Vec::new(),
    }
}

fn issued_response() -> WstepResponse {
    WstepResponse::issued(
        Some("urn:uuid:0f3c1e52-8d0c-4a57-9b0e-2f4de1c7a001".to_string()),
        61,
        vec![0x30, 0x82, 0x01, 0x0a, 0xff],
        Some(vec![0x30, 0x80, 0x06, 0x09]),
    )
}

fn denied_fault() -> WstepFault {
    WstepFault {
        binary_response: Some(b"cmc response".to_vec()),
        ..WstepFault::denied(
            Some("urn:uuid:95d2dbd8-0000-4fe3-9bbb-e55d53286290".to_string()),
            0x8009_4807,
            "Denied by Policy Module",
            Some(368),
        )
    }
}

fn reply(xml: &str) -> Reply {
    parse_reply(xml.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{xml}"))
}

#[test]
fn requests_round_trip() {
    for r in [
        issue_request(),
        query_request(),
        WstepRequest::new(RequestKind::Issue { token: vec![1] }),
    ] {
        let xml = r.to_xml();
        assert_eq!(WstepRequest::from_xml(xml.as_bytes()), Ok(r), "{xml}");
    }
}

#[test]
fn responses_round_trip() {
    let no_chain = WstepResponse {
        chain_pkcs7: None,
        message: "Issued & done".to_string(),
        ..issued_response()
    };
    let pending = WstepResponse::pending(None, 77);
    for r in [issued_response(), no_chain, pending] {
        let xml = r.to_xml();
        assert_eq!(reply(&xml), Reply::Response(r), "{xml}");
    }
    assert_eq!(WstepResponse::pending(None, 1).disposition.code(), 5);
    assert_eq!(issued_response().disposition.code(), 3);
}

#[test]
fn faults_round_trip() {
    let error = WstepRequest::from_xml(b"<nope/>").unwrap_err();
    let malformed = WstepFault::malformed(None, &error);
    assert_eq!(malformed.code, FaultCode::Sender);
    let minimal = WstepFault::denied(None, 0x8009_4012, "", None);
    for f in [denied_fault(), malformed, minimal] {
        let xml = f.to_xml();
        assert_eq!(reply(&xml), Reply::Fault(f), "{xml}");
    }
}

#[test]
fn fault_wire_shape() {
    let xml = denied_fault().to_xml();
    for needle in [
        "<s:Value>s:Receiver</s:Value>",
        "<ErrorCode>-2146875385</ErrorCode>",
        "<InvalidRequest>true</InvalidRequest>",
        "<RequestID>368</RequestID>",
        "<s:Text xml:lang=\"en-US\">Denied by Policy Module</s:Text>",
        ACTION_FAULT,
    ] {
        assert!(xml.contains(needle), "{needle} not in {xml}");
    }
    let sender = WstepFault::malformed(None, &WstepError::Doctype).to_xml();
    assert!(sender.contains("<s:Value>s:Sender</s:Value>"), "{sender}");
    assert!(sender.contains("<RequestID xsi:nil=\"true\"/>"), "{sender}");
    assert!(
        sender.contains("<BinaryResponse xsi:nil=\"true\"/>"),
        "{sender}"
    );
}

#[test]
fn request_wire_shape() {
    let xml = issue_request().to_xml();
    for needle in [
        ACTION_RST,
        REQUEST_TYPE_ISSUE,
        VALUE_TYPE_PKCS7,
        PASSWORD_TEXT,
        "<auth:ContextItem Name=\"CertificateTemplate\"><auth:Value>WorkstationAuth</auth:Value>",
        "<wstep:RequestID xsi:nil=\"true\"/>",
    ] {
        assert!(xml.contains(needle), "{needle} not in {xml}");
    }
    let q = query_request().to_xml();
    assert!(q.contains("<wstep:RequestID>65</wstep:RequestID>"), "{q}");
    assert!(!q.contains("BinarySecurityToken"), "{q}");
}

/// A request written the way another stack might: other prefixes, default
/// namespaces, an XML declaration, comments, CRLF-wrapped base64, a nil RequestID.
#[test]
fn hand_written_request_with_unusual_prefixes() {
    let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n\
<!-- written by hand -->\r\n\
<env:Envelope xmlns:env=\"http://www.w3.org/2003/05/soap-envelope\" xmlns:wsa=\"http://www.w3.org/2005/08/addressing\">\r\n\
 <env:Header>\r\n\
  <wsa:Action env:mustUnderstand=\"1\">\r\n   http://schemas.microsoft.com/windows/pki/2009/01/enrollment/RST/wstep\r\n  </wsa:Action>\r\n\
  <MessageID xmlns=\"http://www.w3.org/2005/08/addressing\">urn:uuid:11111111-2222-4333-8444-555555555555</MessageID>\r\n\
  <q:Security xmlns:q=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd\">\r\n\
   <q:UsernameToken><q:Username>alice</q:Username><q:Password>s3cret</q:Password></q:UsernameToken>\r\n\
  </q:Security>\r\n\
 </env:Header>\r\n\
 <env:Body xmlns:i=\"http://www.w3.org/2001/XMLSchema-instance\">\r\n\
  <t:RequestSecurityToken xmlns:t=\"http://docs.oasis-open.org/ws-sx/ws-trust/200512\">\r\n\
   <t:TokenType>http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3</t:TokenType>\r\n\
   <t:RequestType>http://docs.oasis-open.org/ws-sx/ws-trust/200512/Issue</t:RequestType>\r\n\
   <BinarySecurityToken xmlns=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd\" ValueType=\"x\">\r\n\
AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4v\r\n\
MDEyMzQ1Njc4OTo7PD0+P0BBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWltcXV5f\r\n\
YGFi\r\n\
</BinarySecurityToken>\r\n\
   <ac:AdditionalContext xmlns:ac=\"http://schemas.xmlsoap.org/ws/2006/12/authorization\">\r\n\
    <ac:ContextItem Name=\"CertificateTemplate\"><ac:Value>User</ac:Value></ac:ContextItem>\r\n\
    <ac:ContextItem Name=\"rmd\"><ac:Value>ws01.corp.example</ac:Value></ac:ContextItem>\r\n\
   </ac:AdditionalContext>\r\n\
   <RequestID xmlns=\"http://schemas.microsoft.com/windows/pki/2009/01/enrollment\" i:nil=\"true\"/>\r\n\
  </t:RequestSecurityToken>\r\n\
 </env:Body>\r\n\
</env:Envelope>\r\n";
    let r = WstepRequest::from_xml(xml.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r.message_id,
        "urn:uuid:11111111-2222-4333-8444-555555555555"
    );
    assert_eq!(r.to, None);
    assert_eq!(
        r.credentials,
        Some(UsernameToken {
            username: "alice".to_string(),
            password: "s3cret".to_string()
        })
    );
    assert_eq!(
        r.kind,
        RequestKind::Issue {
            token: (0u8..=0x62).collect()
        }
    );
    assert_eq!(
        r.context,
        vec![
            ("CertificateTemplate".to_string(), "User".to_string()),
            ("rmd".to_string(), "ws01.corp.example".to_string())
        ]
    );
}

/// Replies in the shape AD CS sends (default namespaces on each element,
/// wrapped base64, a diagnostics header we do not know).
#[test]
fn windows_shaped_replies() {
    let issued = format!(
        "<s:Envelope xmlns:s=\"{S12}\" xmlns:a=\"{}\">\n<s:Header>\n\
<a:Action s:mustUnderstand=\"1\">{ACTION_RSTRC}</a:Action>\n\
<ActivityId CorrelationId=\"x\" xmlns=\"http://schemas.microsoft.com/2004/09/ServiceModel/Diagnostics\">y</ActivityId>\n\
<a:RelatesTo>urn:uuid:abc</a:RelatesTo>\n</s:Header>\n<s:Body>\n\
<RequestSecurityTokenResponseCollection xmlns=\"{}\">\n<RequestSecurityTokenResponse>\n\
<TokenType>{TOKEN_TYPE_X509V3}</TokenType>\n\
<DispositionMessage xml:lang=\"en-US\" xmlns=\"{}\">Issued</DispositionMessage>\n\
<BinarySecurityToken ValueType=\"{VALUE_TYPE_PKCS7}\" EncodingType=\"{ENCODING_BASE64}\" xmlns=\"{}\">\nAQID\nBA==\n</BinarySecurityToken>\n\
<RequestedSecurityToken>\n<BinarySecurityToken ValueType=\"{VALUE_TYPE_X509V3}\" EncodingType=\"{ENCODING_BASE64}\" xmlns=\"{}\">\nBQYH\n</BinarySecurityToken>\n</RequestedSecurityToken>\n\
<RequestID xmlns=\"{}\">61</RequestID>\n\
</RequestSecurityTokenResponse>\n</RequestSecurityTokenResponseCollection>\n</s:Body>\n</s:Envelope>",
        ns::WSA,
        ns::WST,
        ns::WSTEP,
        ns::WSSE,
        ns::WSSE,
        ns::WSTEP
    );
    assert_eq!(
        reply(&issued),
        Reply::Response(WstepResponse {
            relates_to: Some("urn:uuid:abc".to_string()),
            request_id: 61,
            disposition: Disposition::Issued,
            message: "Issued".to_string(),
            certificate: Some(vec![5, 6, 7]),
            chain_pkcs7: Some(vec![1, 2, 3, 4]),
        })
    );

    let pending = format!(
        "<s:Envelope xmlns:s=\"{S12}\"><s:Body><RequestSecurityTokenResponseCollection xmlns=\"{}\">\
<RequestSecurityTokenResponse><DispositionMessage xmlns=\"{}\">Taken Under Submission</DispositionMessage>\
<RequestedSecurityToken><SecurityTokenReference xmlns=\"{}\"/></RequestedSecurityToken>\
<RequestID xmlns=\"{}\">42</RequestID></RequestSecurityTokenResponse>\
</RequestSecurityTokenResponseCollection></s:Body></s:Envelope>",
        ns::WST,
        ns::WSTEP,
        ns::WSSE,
        ns::WSTEP
    );
    let Reply::Response(p) = reply(&pending) else {
        panic!("not a response")
    };
    assert_eq!(
        (p.disposition, p.request_id, p.certificate),
        (Disposition::Pending, 42, None)
    );

    let denied = format!(
        "<s:Envelope xmlns:s=\"{S12}\" xmlns:a=\"{}\">\n<s:Header>\n<a:Action s:mustUnderstand=\"1\">{ACTION_FAULT}</a:Action>\n\
<a:RelatesTo>urn:uuid:def</a:RelatesTo>\n</s:Header>\n<s:Body>\n<s:Fault>\n<s:Code>\n<s:Value>s:Receiver</s:Value>\n</s:Code>\n\
<s:Reason>\n<s:Text xml:lang=\"en-US\">Denied by Policy Module</s:Text>\n</s:Reason>\n<s:Detail>\n\
<CertificateEnrollmentWSDetail xmlns=\"{}\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" xmlns:xsi=\"{}\">\n\
<BinaryResponse>Y21j</BinaryResponse>\n<ErrorCode>-2146875385</ErrorCode>\n<InvalidRequest>true</InvalidRequest>\n\
<RequestID>368</RequestID>\n</CertificateEnrollmentWSDetail>\n</s:Detail>\n</s:Fault>\n</s:Body>\n</s:Envelope>",
        ns::WSA,
        ns::WSTEP,
        ns::XSI
    );
    assert_eq!(
        reply(&denied),
        Reply::Fault(WstepFault {
            relates_to: Some("urn:uuid:def".to_string()),
            code: FaultCode::Receiver,
            hresult: 0x8009_4807,
            message: "Denied by Policy Module".to_string(),
            request_id: Some(368),
            invalid_request: true,
            binary_response: Some(b"cmc".to_vec()),
        })
    );

    // A WCF dispatcher fault: no enrollment detail, a subcode in another namespace.
    let dispatcher = format!(
        "<s:Envelope xmlns:s=\"{S12}\" xmlns:a=\"{}\"><s:Body><s:Fault><s:Code><s:Value>s:Sender</s:Value>\
<s:Subcode><s:Value>a:DestinationUnreachable</s:Value></s:Subcode></s:Code>\
<s:Reason><s:Text xml:lang=\"en-US\">AddressFilter mismatch</s:Text></s:Reason></s:Fault></s:Body></s:Envelope>",
        ns::WSA
    );
    let Reply::Fault(f) = reply(&dispatcher) else {
        panic!("not a fault")
    };
    assert_eq!(
        (
            f.code,
            f.hresult,
            f.message.as_str(),
            f.request_id,
            f.invalid_request
        ),
        (
            FaultCode::Sender,
            E_FAIL,
            "AddressFilter mismatch",
            None,
            false
        )
    );

    // The code's prefix is resolved where it appears, not assumed to be "s".
    let other_prefix = dispatcher
        .replace("s:Sender", "e:Receiver")
        .replace("<s:Value>e:", &format!("<s:Value xmlns:e=\"{S12}\">e:"));
    let Reply::Fault(f) = reply(&other_prefix) else {
        panic!("not a fault")
    };
    assert_eq!(f.code, FaultCode::Receiver);
}

const BILLION_LAUGHS: &str = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>&lol9;</s:Body></s:Envelope>"#;

const XXE: &str = r#"<?xml version="1.0"?>
<!DOCTYPE e [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>&xxe;</s:Body></s:Envelope>"#;

/// A request envelope around `rst_inner`, with `header_extra` in the header.
fn rst(header_extra: &str, rst_inner: &str) -> String {
    format!(
        "<s:Envelope xmlns:s=\"{S12}\" xmlns:a=\"{}\"><s:Header>\
<a:Action>{ACTION_RST}</a:Action><a:MessageID>urn:uuid:1</a:MessageID>{header_extra}</s:Header>\
<s:Body><RequestSecurityToken xmlns=\"{}\" xmlns:wsse=\"{}\" xmlns:e=\"{}\" xmlns:xsi=\"{}\">{rst_inner}\
</RequestSecurityToken></s:Body></s:Envelope>",
        ns::WSA,
        ns::WST,
        ns::WSSE,
        ns::WSTEP,
        ns::XSI
    )
}

fn issue(bst: &str) -> String {
    rst(
        "",
        &format!("<RequestType>{REQUEST_TYPE_ISSUE}</RequestType>{bst}"),
    )
}

fn query(id: &str) -> String {
    rst(
        "",
        &format!("<RequestType>{REQUEST_TYPE_QUERY_TOKEN_STATUS}</RequestType>{id}"),
    )
}

#[test]
fn hostile_and_malformed_requests_are_errors() {
    let oversized = format!(
        "{}{}",
        issue("<wsse:BinarySecurityToken>AAAA</wsse:BinarySecurityToken>"),
        " ".repeat(MAX_MESSAGE_BYTES)
    );
    let deep = rst("", &"<x>".repeat(MAX_DEPTH)).replace(
        "</RequestSecurityToken>",
        &format!("{}</RequestSecurityToken>", "</x>".repeat(MAX_DEPTH)),
    );
    let soap11 = issue("").replace(S12, ns::SOAP11);
    let mut not_utf8 =
        issue("<wsse:BinarySecurityToken>AAAA</wsse:BinarySecurityToken>").into_bytes();
    not_utf8.extend_from_slice(b"<!-- \xc3\x28 -->");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("billion laughs", BILLION_LAUGHS.into(), "document type declarations are refused"),
        ("external entity", XXE.into(), "document type declarations are refused"),
        ("undeclared entity", issue("<wsse:BinarySecurityToken>&xxe;</wsse:BinarySecurityToken>").into(), "unknown entity reference &xxe;"),
        ("oversized", oversized.into(), "more than the 262144-byte limit"),
        ("too deep", deep.into(), "nested deeper than 64"),
        ("not UTF-8", not_utf8, "not UTF-8"),
        ("not XML", b"hello".to_vec(), "malformed XML"),
        ("empty", Vec::new(), "no root element"),
        ("truncated", issue("").as_bytes()[..120].to_vec(), "malformed XML"),
        ("mismatched end", issue("<a></b>").into(), "malformed XML"),
        ("wrong root", b"<Envelope/>".to_vec(), "expected {http://www.w3.org/2003/05/soap-envelope}Envelope, found Envelope"),
        ("SOAP 1.1", soap11.into(), "only SOAP 1.2"),
        ("no body", format!("<s:Envelope xmlns:s=\"{S12}\"><s:Header/></s:Envelope>").into(), "Envelope: missing Body"),
        ("empty body", format!("<s:Envelope xmlns:s=\"{S12}\"><s:Header/><s:Body/></s:Envelope>").into(), "Envelope/Body: missing message element"),
        ("no header", format!("<s:Envelope xmlns:s=\"{S12}\"><s:Body><x/></s:Body></s:Envelope>").into(), "Envelope: missing Header"),
        ("wrong action", issue("").replace(ACTION_RST, ACTION_RSTRC).into(), "Envelope/Header/Action: expected"),
        ("no message id", issue("").replace("<a:MessageID>urn:uuid:1</a:MessageID>", "").into(), "Envelope/Header: missing MessageID"),
        ("wrong body element", issue("").replace("RequestSecurityToken", "RequestSecurityTokenResponse").into(), "Envelope/Body/RequestSecurityTokenResponse: expected"),
        ("wrong namespace", issue("").replace(&format!("xmlns=\"{}\"", ns::WST), "xmlns=\"urn:other\"").into(), "expected {http://docs.oasis-open.org/ws-sx/ws-trust/200512}RequestSecurityToken, found {urn:other}RequestSecurityToken"),
        ("missing RequestType", rst("", "").into(), "Envelope/Body/RequestSecurityToken: missing RequestType"),
        ("empty RequestType", rst("", "<RequestType/>").into(), "RequestType: missing value"),
        ("unknown RequestType", rst("", "<RequestType>http://docs.oasis-open.org/ws-sx/ws-trust/200512/Renew</RequestType>").into(), "unknown RequestType"),
        ("wrong TokenType", rst("", &format!("<TokenType>urn:saml</TokenType><RequestType>{REQUEST_TYPE_ISSUE}</RequestType>")).into(), "unsupported TokenType"),
        ("Issue without token", issue("").into(), "Envelope/Body/RequestSecurityToken: missing BinarySecurityToken"),
        ("empty token", issue("<wsse:BinarySecurityToken> \n </wsse:BinarySecurityToken>").into(), "BinarySecurityToken: empty"),
        ("bad base64", issue("<wsse:BinarySecurityToken>AAA*</wsse:BinarySecurityToken>").into(), "Envelope/Body/RequestSecurityToken/BinarySecurityToken: not valid base64"),
        ("token in wrong namespace", issue("<BinarySecurityToken>AAAA</BinarySecurityToken>").into(), "missing BinarySecurityToken"),
        ("query without id", query("").into(), "missing RequestID"),
        ("query with nil id", query("<e:RequestID xsi:nil=\"true\"/>").into(), "RequestID: is nil"),
        ("non-numeric id", query("<e:RequestID>12a</e:RequestID>").into(), "RequestID: \"12a\" is not a decimal number"),
        ("negative id", query("<e:RequestID>-1</e:RequestID>").into(), "is not a decimal number"),
        ("huge id", query("<e:RequestID>99999999999999999999</e:RequestID>").into(), "is not a request ID"),
        ("digest password", rst(&format!("<o:Security xmlns:o=\"{}\"><o:UsernameToken><o:Username>u</o:Username><o:Password Type=\"#PasswordDigest\">p</o:Password></o:UsernameToken></o:Security>", ns::WSSE), "").into(), "Password: password Type \"#PasswordDigest\" is not supported"),
        ("token without password", rst(&format!("<o:Security xmlns:o=\"{}\"><o:UsernameToken><o:Username>u</o:Username></o:UsernameToken></o:Security>", ns::WSSE), "").into(), "UsernameToken: missing Password"),
        ("context item without name", issue(&format!("<wsse:BinarySecurityToken>AAAA</wsse:BinarySecurityToken><c:AdditionalContext xmlns:c=\"{}\"><c:ContextItem><c:Value>v</c:Value></c:ContextItem></c:AdditionalContext>", ns::AUTH)).into(), "AdditionalContext/ContextItem[1]: missing Name attribute"),
        ("undeclared prefix", issue("<zz:BinarySecurityToken>AAAA</zz:BinarySecurityToken>").into(), "namespace prefix \"zz\" is not declared"),
        ("two body elements", issue("").replace("</s:Body>", "<x/></s:Body>").into(), "Envelope/Body: more than one element"),
        ("text after root", format!("{}trailing", issue("")).into(), "text outside the root element"),
        ("second root", format!("{}<x/>", issue("")).into(), "a second root element"),
        ("duplicate attribute", issue("<wsse:BinarySecurityToken a=\"1\" a=\"2\">AAAA</wsse:BinarySecurityToken>").into(), "bad attribute"),
        ("non-UTF-8 declaration", format!("<?xml version=\"1.0\" encoding=\"UTF-16\"?>{}", issue("")).into(), "only UTF-8"),
    ];
    for (what, input, expected) in cases {
        let started = std::time::Instant::now();
        let result = WstepRequest::from_xml(&input);
        assert!(started.elapsed().as_secs() < 2, "{what}: too slow");
        match result {
            Ok(r) => panic!("{what}: accepted as {r:?}"),
            Err(e) => assert!(
                e.to_string().contains(expected),
                "{what}: error {e:?} ({e}) does not say {expected:?}"
            ),
        }
        // The reply parser shares the front end and must refuse them as well
        // (some are valid SOAP but not replies).
        assert!(parse_reply(&input).is_err(), "{what}: accepted as a reply");
    }
}

#[test]
fn malformed_replies_are_errors() {
    let good = issued_response().to_xml();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "request as reply",
            issue_request().to_xml(),
            "expected {http://docs.oasis-open.org/ws-sx/ws-trust/200512}RequestSecurityTokenResponseCollection or",
        ),
        (
            "no RSTR",
            good.replace("wst:RequestSecurityTokenResponse>", "wst:Other>"),
            "missing RequestSecurityTokenResponse",
        ),
        (
            "no request id",
            good.replace("<wstep:RequestID>61</wstep:RequestID>", ""),
            "missing RequestID",
        ),
        (
            "bad certificate",
            good.replace("MIIBCv8=", "M!IBCv8="),
            "RequestedSecurityToken/BinarySecurityToken: not valid base64",
        ),
        (
            "two responses",
            good.replace(
                "</wst:RequestSecurityTokenResponseCollection>",
                "<wst:RequestSecurityTokenResponse/></wst:RequestSecurityTokenResponseCollection>",
            ),
            "more than one RequestSecurityTokenResponse",
        ),
        (
            "fault without code",
            denied_fault()
                .to_xml()
                .replace("<s:Code><s:Value>s:Receiver</s:Value></s:Code>", ""),
            "Envelope/Body/Fault: missing Code",
        ),
        (
            "fault without error code",
            denied_fault()
                .to_xml()
                .replace("<ErrorCode>-2146875385</ErrorCode>", ""),
            "CertificateEnrollmentWSDetail: missing ErrorCode",
        ),
        (
            "bad error code",
            denied_fault().to_xml().replace("-2146875385", "E_FAIL"),
            "ErrorCode: \"E_FAIL\" is not a 32-bit HRESULT",
        ),
        (
            "bad boolean",
            denied_fault().to_xml().replace(">true<", ">yes<"),
            "InvalidRequest: \"yes\" is not a boolean",
        ),
        (
            "bad fault request id",
            denied_fault().to_xml().replace(">368<", ">x<"),
            "RequestID: \"x\" is not a decimal number",
        ),
    ];
    assert!(good.contains("MIIBCv8="), "{good}");
    for (what, input, expected) in cases {
        match parse_reply(input.as_bytes()) {
            Ok(r) => panic!("{what}: accepted as {r:?}"),
            Err(e) => assert!(
                e.to_string().contains(expected),
                "{what}: error {e} does not say {expected:?}"
            ),
        }
    }
}

#[test]
fn hresult_forms() {
    let cases: &[(&str, Option<u32>)] = &[
        ("-2146875385", Some(0x8009_4807)),
        ("2148091911", Some(0x8009_4807)),
        ("0x80094807", Some(0x8009_4807)),
        ("0X80094807", Some(0x8009_4807)),
        ("0", Some(0)),
        ("-2147483648", Some(0x8000_0000)),
        ("4294967295", Some(u32::MAX)),
        ("4294967296", None),
        ("-2147483649", None),
        ("-", None),
        ("0x", None),
        ("0x+1", None),
        ("+5", None),
        ("", None),
        ("1e3", None),
    ];
    for (text, want) in cases {
        assert_eq!(parse_hresult(text), *want, "{text:?}");
    }
    for h in [0u32, 1, 0x8009_4807, u32::MAX, 0x7fff_ffff] {
        let f = WstepFault::denied(None, h, "x", None);
        let Reply::Fault(back) = reply(&f.to_xml()) else {
            panic!("not a fault")
        };
        assert_eq!(back.hresult, h);
    }
}

#[test]
fn message_ids_are_random_uuid_v4() {
    let a = new_message_id();
    let b = new_message_id();
    assert_ne!(a, b);
    let uuid = a.strip_prefix("urn:uuid:").expect("urn:uuid: prefix");
    let groups: Vec<&str> = uuid.split('-').collect();
    assert_eq!(
        groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
        [8, 4, 4, 4, 12]
    );
    assert!(
        uuid.chars()
            .all(|c| c == '-' || (c.is_ascii_hexdigit() && !c.is_ascii_uppercase()))
    );
    assert!(groups[2].starts_with('4'), "{a}");
    assert!(
        matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
        "{a}"
    );
}

#[test]
fn password_is_not_in_debug_output() {
    let shown = format!("{:?}", issue_request());
    assert!(shown.contains("ws01$"));
    assert!(!shown.contains("p<a>ss"), "{shown}");
}

#[test]
fn output_stays_well_formed_with_characters_xml_cannot_carry() {
    let f = WstepFault::denied(None, 1, "bad \u{0}\u{1b} byte", None);
    let Reply::Fault(back) = reply(&f.to_xml()) else {
        panic!("not a fault")
    };
    assert_eq!(back.message, "bad \u{fffd}\u{fffd} byte");
}

/// Strings XML 1.0 can carry, including the whitespace that escaping must keep.
fn xml_string() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just('\t'),
            Just('\n'),
            Just('\r'),
            Just(' '),
            Just('&'),
            Just('<'),
            Just('"'),
            Just(']'),
            any::<char>(),
        ],
        0..24,
    )
    .prop_map(|cs| cs.into_iter().filter(|c| xml::is_xml_char(*c)).collect())
}

/// Non-empty after trimming, with no XML whitespace at either end (the reader
/// trims single-line identifiers).
fn trimmed_string() -> impl Strategy<Value = String> {
    xml_string()
        .prop_map(|s| s.trim().to_string())
        .prop_filter("non-empty", |s| !s.is_empty())
}

fn request_strategy() -> impl Strategy<Value = WstepRequest> {
    (
        trimmed_string(),
        prop::option::of(trimmed_string()),
        prop::option::of((trimmed_string(), xml_string())),
        prop_oneof![
            prop::collection::vec(any::<u8>(), 1..64)
                .prop_map(|token| RequestKind::Issue { token }),
            any::<u64>().prop_map(|request_id| RequestKind::QueryTokenStatus { request_id }),
        ],
        prop::collection::vec((xml_string(), xml_string()), 0..4),
    )
        .prop_map(|(message_id, to, creds, kind, context)| WstepRequest {
            message_id,
            to,
            credentials: creds.map(|(username, password)| UsernameToken { username, password }),
            kind,
            context,
        })
}

fn valid_messages() -> Vec<Vec<u8>> {
    vec![
        issue_request().to_xml().into_bytes(),
        query_request().to_xml().into_bytes(),
        issued_response().to_xml().into_bytes(),
        WstepResponse::pending(None, 3).to_xml().into_bytes(),
        denied_fault().to_xml().into_bytes(),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    // Mostly printable ASCII, so most mutants still get past the UTF-8 check and
    // reach the XML and WSTEP layers.
    let byte = || prop_oneof![9 => 0x20u8..0x7f, 1 => any::<u8>()];
    let snippet = prop_oneof![
        prop::collection::vec(byte(), 1..8),
        prop::sample::select(vec![
            b"<".to_vec(),
            b">".to_vec(),
            b"</".to_vec(),
            b"&".to_vec(),
            b"&amp;".to_vec(),
            b"&#0;".to_vec(),
            b"&#x110000;".to_vec(),
            b"<!DOCTYPE x>".to_vec(),
            b"<![CDATA[".to_vec(),
            b"xmlns:s=\"\"".to_vec(),
            b"xmlns=\"urn:x\"".to_vec(),
            b"\"".to_vec(),
            b"\xff".to_vec(),
            b"<x>".to_vec(),
        ]),
    ];
    prop_oneof![
        3 => (any::<usize>(), byte()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        3 => (any::<usize>(), snippet).prop_map(|(i, s)| Mutation::Insert(i, s)),
        3 => (any::<usize>(), 1usize..32).prop_map(|(i, n)| Mutation::Delete(i, n)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len().max(1);
        match m {
            Mutation::Flip(i, b) => {
                if !bytes.is_empty() {
                    bytes[i % len] = *b;
                }
            }
            Mutation::Insert(i, s) => {
                let at = i % (bytes.len() + 1);
                bytes.splice(at..at, s.iter().copied());
            }
            Mutation::Delete(i, n) => {
                let at = i % len;
                let end = (at + n).min(bytes.len());
                if at < end {
                    bytes.drain(at..end);
                }
            }
            Mutation::Truncate(i) => bytes.truncate(i % len),
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = WstepRequest::from_xml(&bytes);
        let _ = parse_reply(&bytes);
    }

    /// Mutated valid messages never panic, and whatever is still accepted
    /// survives a write-read cycle unchanged.
    #[test]
    fn mutated_messages_never_panic(
        which in 0usize..5,
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let input = apply(valid_messages()[which].clone(), &mutations);
        if let Ok(r) = WstepRequest::from_xml(&input) {
            prop_assert_eq!(WstepRequest::from_xml(r.to_xml().as_bytes()), Ok(r));
        }
        match parse_reply(&input) {
            Ok(Reply::Response(r)) => {
                prop_assert_eq!(parse_reply(r.to_xml().as_bytes()), Ok(Reply::Response(r)));
            }
            Ok(Reply::Fault(f)) => {
                prop_assert_eq!(parse_reply(f.to_xml().as_bytes()), Ok(Reply::Fault(f)));
            }
            Err(_) => {}
        }
    }

    #[test]
    fn any_request_round_trips(r in request_strategy()) {
        let xml = r.to_xml();
        prop_assert_eq!(WstepRequest::from_xml(xml.as_bytes()), Ok(r));
    }

    #[test]
    fn any_fault_round_trips(
        message in xml_string(),
        hresult in any::<u32>(),
        request_id in prop::option::of(any::<u64>()),
        invalid_request in any::<bool>(),
        sender in any::<bool>(),
        binary_response in prop::option::of(prop::collection::vec(any::<u8>(), 1..32)),
    ) {
        let f = WstepFault {
            relates_to: Some(new_message_id()),
            code: if sender { FaultCode::Sender } else { FaultCode::Receiver },
            hresult,
            message: message.trim().to_string(),
            request_id,
            invalid_request,
            binary_response,
        };
        prop_assert_eq!(parse_reply(f.to_xml().as_bytes()), Ok(Reply::Fault(f)));
    }
}
