//! The SPNEGO framing ([RFC 4178] 4.2) around Kerberos tokens of DCE/RPC
//! auth type 9, read and written here so that the acceptor runs Kerberos
//! itself: MIT's SPNEGO acceptor refuses the NegTokenInit impacket (and so
//! Certipy) sends, a single Microsoft Kerberos OID with a DCE-style
//! mechToken, which Windows accepts. Only the fields DCE/RPC uses are read.

/// 1.2.840.48018.1.2.2 (Microsoft's Kerberos OID) and 1.2.840.113554.1.2.2.
const MS_KRB5: &[u8] = &[0x2a, 0x86, 0x48, 0x82, 0xf7, 0x12, 0x01, 0x02, 0x02];
const KRB5: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02];
/// 1.3.6.1.5.5.2
const SPNEGO: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x02];

/// One DER element: its tag and contents, and what follows it.
fn element(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = b.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |a, &x| (a << 8) | x as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The context-tagged fields of a SEQUENCE, by tag number.
fn fields(seq: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    let mut rest = seq;
    while let Some((tag, contents, next)) = element(rest) {
        out.push((tag & 0x1f, contents));
        rest = next;
    }
    out
}

/// What a client's first token offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Init {
    /// The Kerberos mechToken (a GSS-framed AP-REQ).
    pub mech_token: Vec<u8>,
    /// Whether the first mech offered is Microsoft's Kerberos OID (answered
    /// with the same, as Windows does).
    pub microsoft_oid: bool,
}

/// Reads a NegTokenInit whose first mech is Kerberos and which carries its
/// token; `None` for anything else.
pub fn parse_init(token: &[u8]) -> Option<Init> {
    let (0x60, body, _) = element(token)? else {
        return None;
    };
    let (0x06, oid, rest) = element(body)? else {
        return None;
    };
    if oid != SPNEGO {
        return None;
    }
    let (0xa0, inner, _) = element(rest)? else {
        return None;
    };
    let (0x30, seq, _) = element(inner)? else {
        return None;
    };
    let mut first_mech = None;
    let mut mech_token = None;
    for (n, contents) in fields(seq) {
        match n {
            0 => {
                let (0x30, mechs, _) = element(contents)? else {
                    return None;
                };
                let (0x06, oid, _) = element(mechs)? else {
                    return None;
                };
                first_mech = Some(oid);
            }
            2 => {
                let (0x04, t, _) = element(contents)? else {
                    return None;
                };
                mech_token = Some(t.to_vec());
            }
            _ => {}
        }
    }
    let first = first_mech?;
    if first != MS_KRB5 && first != KRB5 {
        return None;
    }
    Some(Init {
        mech_token: mech_token?,
        microsoft_oid: first == MS_KRB5,
    })
}

/// The raw AP-REQ inside a GSS-framed Kerberos token ([RFC 1964] 1.1:
/// `0x60`, the mech OID, TOK_ID 01 00), or `None` when the token is not
/// framed. MIT's acceptor takes a DCE-style context's AP-REQ only raw, as
/// DCE-style initiators are meant to send it ([MS-KILE] 3.4.5.1); impacket
/// frames it, and Windows takes both.
pub fn unframe_ap_req(token: &[u8]) -> Option<&[u8]> {
    let (0x60, body, _) = element(token)? else {
        return None;
    };
    let (0x06, oid, rest) = element(body)? else {
        return None;
    };
    if oid != KRB5 && oid != MS_KRB5 {
        return None;
    }
    rest.strip_prefix(&[0x01, 0x00])
}

/// The responseToken of a NegTokenResp, if any.
pub fn parse_resp_token(token: &[u8]) -> Option<Vec<u8>> {
    let (0xa1, inner, _) = element(token)? else {
        return None;
    };
    let (0x30, seq, _) = element(inner)? else {
        return None;
    };
    fields(seq)
        .into_iter()
        .find(|(n, _)| *n == 2)
        .and_then(|(_, c)| {
            let (0x04, t, _) = element(c)? else {
                return None;
            };
            Some(t.to_vec())
        })
}

fn der(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = contents.len();
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend_from_slice(&[0x81, n as u8]);
    } else if n < 0x10000 {
        out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
    } else {
        out.extend_from_slice(&[0x83, (n >> 16) as u8, (n >> 8) as u8, n as u8]);
    }
    out.extend_from_slice(contents);
    out
}

/// NegState values.
pub const ACCEPT_COMPLETED: u8 = 0;
pub const ACCEPT_INCOMPLETE: u8 = 1;

/// A NegTokenResp: the state, the mech chosen (in the first answer) and
/// the Kerberos token.
pub fn resp(state: u8, supported_mech: Option<bool>, response: Option<&[u8]>) -> Vec<u8> {
    let mut seq = der(0xa0, &der(0x0a, &[state]));
    if let Some(microsoft) = supported_mech {
        seq.extend(der(
            0xa1,
            &der(0x06, if microsoft { MS_KRB5 } else { KRB5 }),
        ));
    }
    if let Some(r) = response {
        seq.extend(der(0xa2, &der(0x04, r)));
    }
    der(0xa1, &der(0x30, &seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init(mech: &[u8], token: &[u8]) -> Vec<u8> {
        let mechs = der(0xa0, &der(0x30, &der(0x06, mech)));
        let mut seq = mechs;
        seq.extend(der(0xa2, &der(0x04, token)));
        let mut body = der(0x06, SPNEGO);
        body.extend(der(0xa0, &der(0x30, &seq)));
        der(0x60, &body)
    }

    #[test]
    fn init_tokens_give_their_kerberos_token() {
        let long = vec![0x60; 700];
        for (mech, ms) in [(MS_KRB5, true), (KRB5, false)] {
            let parsed = parse_init(&init(mech, &long)).unwrap();
            assert_eq!(parsed.mech_token, long);
            assert_eq!(parsed.microsoft_oid, ms);
        }
        // NTLMSSP first, garbage, truncation: not for us.
        let ntlm = [0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a];
        assert_eq!(parse_init(&init(&ntlm, b"x")), None);
        assert_eq!(parse_init(b"garbage"), None);
        let t = init(KRB5, &long);
        assert_eq!(parse_init(&t[..t.len() - 1]), None);
    }

    #[test]
    fn framed_ap_reqs_are_unframed() {
        let ap_req = [0x6e, 0x03, 0x30, 0x01, 0x00];
        let mut body = der(0x06, KRB5);
        body.extend_from_slice(&[0x01, 0x00]);
        body.extend_from_slice(&ap_req);
        assert_eq!(unframe_ap_req(&der(0x60, &body)), Some(&ap_req[..]));
        assert_eq!(unframe_ap_req(&ap_req), None, "already raw");
        let mut ap_rep = der(0x06, KRB5);
        ap_rep.extend_from_slice(&[0x02, 0x00, 0x6f]);
        assert_eq!(unframe_ap_req(&der(0x60, &ap_rep)), None, "not an AP-REQ");
    }

    #[test]
    fn responses_round_trip() {
        let r = resp(ACCEPT_INCOMPLETE, Some(true), Some(&[1, 2, 3]));
        assert_eq!(parse_resp_token(&r), Some(vec![1, 2, 3]));
        assert_eq!(parse_resp_token(&resp(ACCEPT_COMPLETED, None, None)), None);
        let big = vec![7u8; 300];
        assert_eq!(parse_resp_token(&resp(1, None, Some(&big))), Some(big));
    }
}
