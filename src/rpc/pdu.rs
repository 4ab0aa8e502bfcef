//! Connection-oriented PDUs (C706 12.6, [MS-RPCE] 2.2.2): the common header,
//! the security trailer, bind / bind_ack / bind_nak / alter_context(_resp) /
//! auth3 / request / response / fault. Sans I/O: bytes in, typed values out.

use super::ndr::{NdrError, Reader, Writer};
use super::{SyntaxId, Uuid};

pub const REQUEST: u8 = 0;
pub const RESPONSE: u8 = 2;
pub const FAULT: u8 = 3;
pub const BIND: u8 = 11;
pub const BIND_ACK: u8 = 12;
pub const BIND_NAK: u8 = 13;
pub const ALTER_CONTEXT: u8 = 14;
pub const ALTER_CONTEXT_RESP: u8 = 15;
pub const AUTH3: u8 = 16;
pub const SHUTDOWN: u8 = 17;
pub const CO_CANCEL: u8 = 18;
pub const ORPHANED: u8 = 19;

/// `pfc_flags` (C706 12.6.3.1).
pub const PFC_FIRST_FRAG: u8 = 0x01;
pub const PFC_LAST_FRAG: u8 = 0x02;
pub const PFC_OBJECT_UUID: u8 = 0x80;

/// Authentication levels ([MS-RPCE] 2.2.1.1.8).
pub const AUTHN_LEVEL_NONE: u8 = 1;
pub const AUTHN_LEVEL_CONNECT: u8 = 2;
pub const AUTHN_LEVEL_PKT_INTEGRITY: u8 = 5;
pub const AUTHN_LEVEL_PKT_PRIVACY: u8 = 6;

/// Security providers ([MS-RPCE] 2.2.1.1.7): SPNEGO (what impacket and
/// `RPC_C_AUTHN_GSS_NEGOTIATE` clients send) and Kerberos.
pub const AUTHN_GSS_NEGOTIATE: u8 = 9;
pub const AUTHN_GSS_KERBEROS: u8 = 16;

/// Fault and reject statuses ([MS-RPCE] 2.2.2.11, [MS-ERREF] 2.2).
pub const STATUS_ACCESS_DENIED: u32 = 0x0000_0005;
pub const NCA_S_OP_RNG_ERROR: u32 = 0x1c01_0002;
pub const NCA_S_UNK_IF: u32 = 0x1c01_0003;
pub const NCA_S_PROTO_ERROR: u32 = 0x1c01_000b;
pub const NCA_S_FAULT_NDR: u32 = 0x0000_06f7;

/// The common header is 16 bytes, the security trailer 8.
pub const HEADER_LEN: usize = 16;
pub const SEC_TRAILER_LEN: usize = 8;

/// The largest fragment read from a peer (Windows offers 5840 on TCP; a
/// fragment's length field cannot exceed 65535 anyway).
pub const MAX_FRAGMENT: usize = 65535;

/// A PDU that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PduError {
    #[error("not a DCE/RPC 5.0 PDU: {0}")]
    Header(String),
    #[error("{ptype} PDU: {what}")]
    Body { ptype: &'static str, what: String },
    #[error(transparent)]
    Ndr(#[from] NdrError),
}

pub fn ptype_name(ptype: u8) -> &'static str {
    match ptype {
        REQUEST => "request",
        RESPONSE => "response",
        FAULT => "fault",
        BIND => "bind",
        BIND_ACK => "bind_ack",
        BIND_NAK => "bind_nak",
        ALTER_CONTEXT => "alter_context",
        ALTER_CONTEXT_RESP => "alter_context_resp",
        AUTH3 => "auth3",
        SHUTDOWN => "shutdown",
        CO_CANCEL => "co_cancel",
        ORPHANED => "orphaned",
        _ => "unknown",
    }
}

/// The security trailer and the credentials after it (`sec_trailer`,
/// [MS-RPCE] 2.2.2.11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    pub auth_type: u8,
    pub level: u8,
    /// Bytes of padding before the trailer, part of the body.
    pub pad_len: u8,
    pub context_id: u32,
    pub value: Vec<u8>,
}

/// One fragment: header fields, the body (after the 16-byte header, up to
/// the security trailer, padding included) and the trailer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pdu {
    pub ptype: u8,
    pub flags: u8,
    pub call_id: u32,
    pub body: Vec<u8>,
    pub auth: Option<Auth>,
}

/// The fragment length a header announces, from its first 10 bytes.
pub fn frag_length(header: &[u8]) -> Result<usize, PduError> {
    if header.len() < 10 {
        return Err(PduError::Header("shorter than its header".into()));
    }
    if header[0] != 5 || header[1] != 0 {
        return Err(PduError::Header(format!(
            "version {}.{}, not 5.0",
            header[0], header[1]
        )));
    }
    if header[4] & 0xf0 != 0x10 {
        return Err(PduError::Header(
            "big-endian or non-ASCII data representation (only little-endian is spoken)".into(),
        ));
    }
    let len = u16::from_le_bytes([header[8], header[9]]) as usize;
    if len < HEADER_LEN {
        return Err(PduError::Header(format!("fragment length {len}")));
    }
    Ok(len)
}

impl Pdu {
    /// Encodes the fragment. With a trailer, `body` must already end with
    /// its `pad_len` bytes of padding and leave the trailer 4-aligned.
    pub fn encode(&self) -> Vec<u8> {
        let auth_len = self.auth.as_ref().map_or(0, |a| a.value.len());
        let trailer = if self.auth.is_some() {
            SEC_TRAILER_LEN
        } else {
            0
        };
        let frag_len = HEADER_LEN + self.body.len() + trailer + auth_len;
        let mut out = Vec::with_capacity(frag_len);
        out.extend_from_slice(&[5, 0, self.ptype, self.flags, 0x10, 0, 0, 0]);
        out.extend_from_slice(&(frag_len as u16).to_le_bytes());
        out.extend_from_slice(&(auth_len as u16).to_le_bytes());
        out.extend_from_slice(&self.call_id.to_le_bytes());
        out.extend_from_slice(&self.body);
        if let Some(a) = &self.auth {
            out.extend_from_slice(&[a.auth_type, a.level, a.pad_len, 0]);
            out.extend_from_slice(&a.context_id.to_le_bytes());
            out.extend_from_slice(&a.value);
        }
        out
    }

    /// Decodes one whole fragment (`bytes.len()` is its fragment length).
    pub fn parse(bytes: &[u8]) -> Result<Pdu, PduError> {
        let frag_len = frag_length(bytes)?;
        if frag_len != bytes.len() || bytes.len() < HEADER_LEN {
            return Err(PduError::Header(format!(
                "fragment length {frag_len}, {} bytes",
                bytes.len()
            )));
        }
        let ptype = bytes[2];
        let flags = bytes[3];
        let auth_len = u16::from_le_bytes([bytes[10], bytes[11]]) as usize;
        let call_id = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
        let bad = |what: String| PduError::Body {
            ptype: ptype_name(ptype),
            what,
        };
        let (body, auth) = if auth_len > 0 {
            let Some(trailer_at) = frag_len.checked_sub(auth_len + SEC_TRAILER_LEN) else {
                return Err(bad(format!(
                    "an authenticator of {auth_len} bytes in a fragment of {frag_len}"
                )));
            };
            if trailer_at < HEADER_LEN {
                return Err(bad(format!(
                    "an authenticator of {auth_len} bytes in a fragment of {frag_len}"
                )));
            }
            let t = &bytes[trailer_at..];
            let auth = Auth {
                auth_type: t[0],
                level: t[1],
                pad_len: t[2],
                context_id: u32::from_le_bytes([t[4], t[5], t[6], t[7]]),
                value: t[SEC_TRAILER_LEN..].to_vec(),
            };
            if (auth.pad_len as usize) > trailer_at - HEADER_LEN {
                return Err(bad(format!(
                    "{} bytes of padding in a body of {}",
                    auth.pad_len,
                    trailer_at - HEADER_LEN
                )));
            }
            (bytes[HEADER_LEN..trailer_at].to_vec(), Some(auth))
        } else {
            (bytes[HEADER_LEN..].to_vec(), None)
        };
        Ok(Pdu {
            ptype,
            flags,
            call_id,
            body,
            auth,
        })
    }

    pub fn name(&self) -> &'static str {
        ptype_name(self.ptype)
    }

    fn bad(&self, what: impl Into<String>) -> PduError {
        PduError::Body {
            ptype: self.name(),
            what: what.into(),
        }
    }
}

/// One presentation context of a bind (`p_cont_elem_t`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextElem {
    pub id: u16,
    pub abstract_syntax: SyntaxId,
    pub transfer_syntaxes: Vec<SyntaxId>,
}

/// The body of bind and alter_context (C706 12.6.4.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub max_xmit_frag: u16,
    pub max_recv_frag: u16,
    pub assoc_group_id: u32,
    pub contexts: Vec<ContextElem>,
}

fn syntax(w: &mut Writer, s: &SyntaxId) {
    w.uuid(&s.uuid);
    w.u16(s.major);
    w.u16(s.minor);
}

fn read_syntax(r: &mut Reader<'_>, what: &str) -> Result<SyntaxId, NdrError> {
    Ok(SyntaxId {
        uuid: r.uuid(what)?,
        major: r.u16(what)?,
        minor: r.u16(what)?,
    })
}

impl Bind {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u16(self.max_xmit_frag);
        w.u16(self.max_recv_frag);
        w.u32(self.assoc_group_id);
        w.u8(self.contexts.len() as u8);
        w.u8(0);
        w.u16(0);
        for c in &self.contexts {
            w.u16(c.id);
            w.u8(c.transfer_syntaxes.len() as u8);
            w.u8(0);
            syntax(&mut w, &c.abstract_syntax);
            for t in &c.transfer_syntaxes {
                syntax(&mut w, t);
            }
        }
        w.into_bytes()
    }

    pub fn parse(pdu: &Pdu) -> Result<Bind, PduError> {
        let mut r = Reader::new(&pdu.body);
        let max_xmit_frag = r.u16("max_xmit_frag")?;
        let max_recv_frag = r.u16("max_recv_frag")?;
        let assoc_group_id = r.u32("assoc_group_id")?;
        let n = r.u8("n_context_elem")?;
        r.take(3, "reserved")?;
        let mut contexts = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let id = r.u16("p_cont_id")?;
            let nt = r.u8("n_transfer_syn")?;
            r.u8("reserved")?;
            let abstract_syntax = read_syntax(&mut r, "abstract_syntax")?;
            let mut transfer_syntaxes = Vec::with_capacity(nt as usize);
            for _ in 0..nt {
                transfer_syntaxes.push(read_syntax(&mut r, "transfer_syntax")?);
            }
            contexts.push(ContextElem {
                id,
                abstract_syntax,
                transfer_syntaxes,
            });
        }
        if contexts.is_empty() {
            return Err(pdu.bad("no presentation context"));
        }
        Ok(Bind {
            max_xmit_frag,
            max_recv_frag,
            assoc_group_id,
            contexts,
        })
    }
}

/// A presentation context's result (`p_result_t`): 0 acceptance, 2
/// provider rejection (reason 1: abstract syntax not supported, 2: transfer
/// syntaxes not supported).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextResult {
    pub result: u16,
    pub reason: u16,
    pub transfer_syntax: SyntaxId,
}

/// The body of bind_ack and alter_context_resp (C706 12.6.4.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindAck {
    pub max_xmit_frag: u16,
    pub max_recv_frag: u16,
    pub assoc_group_id: u32,
    /// The secondary address (the port, as text); empty in an
    /// alter_context_resp.
    pub sec_addr: String,
    pub results: Vec<ContextResult>,
}

impl BindAck {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u16(self.max_xmit_frag);
        w.u16(self.max_recv_frag);
        w.u32(self.assoc_group_id);
        if self.sec_addr.is_empty() {
            w.u16(0);
        } else {
            w.u16(self.sec_addr.len() as u16 + 1);
            w.bytes(self.sec_addr.as_bytes());
            w.u8(0);
        }
        // The result list is 4-aligned from the PDU's start; the header is 16.
        w.align(4);
        w.u8(self.results.len() as u8);
        w.u8(0);
        w.u16(0);
        for r in &self.results {
            w.u16(r.result);
            w.u16(r.reason);
            syntax(&mut w, &r.transfer_syntax);
        }
        w.into_bytes()
    }

    pub fn parse(pdu: &Pdu) -> Result<BindAck, PduError> {
        let mut r = Reader::new(&pdu.body);
        let max_xmit_frag = r.u16("max_xmit_frag")?;
        let max_recv_frag = r.u16("max_recv_frag")?;
        let assoc_group_id = r.u32("assoc_group_id")?;
        let len = r.u16("sec_addr length")?;
        let raw = r.take(len as usize, "sec_addr")?;
        let sec_addr = String::from_utf8_lossy(raw.strip_suffix(&[0]).unwrap_or(raw)).into_owned();
        r.align(4)?;
        let n = r.u8("n_results")?;
        r.take(3, "reserved")?;
        let mut results = Vec::with_capacity(n as usize);
        for _ in 0..n {
            results.push(ContextResult {
                result: r.u16("result")?,
                reason: r.u16("reason")?,
                transfer_syntax: read_syntax(&mut r, "transfer_syntax")?,
            });
        }
        Ok(BindAck {
            max_xmit_frag,
            max_recv_frag,
            assoc_group_id,
            sec_addr,
            results,
        })
    }
}

/// A bind_nak's reason (C706 12.6.4.5): 0 not specified, 4 protocol
/// version not supported, 9 invalid checksum ([MS-RPCE] 2.2.2.5).
pub fn bind_nak(reason: u16) -> Vec<u8> {
    let mut w = Writer::new();
    w.u16(reason);
    // p_rt_versions_supported: one version, 5.0.
    w.u8(1);
    w.u8(5);
    w.u8(0);
    w.into_bytes()
}

pub fn parse_bind_nak(pdu: &Pdu) -> Result<u16, PduError> {
    Ok(Reader::new(&pdu.body).u16("provider_reject_reason")?)
}

/// The body of a request (C706 12.6.4.9) before its stub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub alloc_hint: u32,
    pub context_id: u16,
    pub opnum: u16,
    pub object: Option<Uuid>,
    /// The stub (padding included when there is a trailer).
    pub stub: Vec<u8>,
}

impl Request {
    pub fn encode_head(alloc_hint: u32, context_id: u16, opnum: u16) -> Vec<u8> {
        let mut w = Writer::new();
        w.u32(alloc_hint);
        w.u16(context_id);
        w.u16(opnum);
        w.into_bytes()
    }

    pub fn parse(pdu: &Pdu) -> Result<Request, PduError> {
        let mut r = Reader::new(&pdu.body);
        let alloc_hint = r.u32("alloc_hint")?;
        let context_id = r.u16("p_cont_id")?;
        let opnum = r.u16("opnum")?;
        let object = if pdu.flags & PFC_OBJECT_UUID != 0 {
            Some(r.uuid("object")?)
        } else {
            None
        };
        let at = r.position();
        Ok(Request {
            alloc_hint,
            context_id,
            opnum,
            object,
            stub: pdu.body[at..].to_vec(),
        })
    }
}

/// The body of a response (C706 12.6.4.10) before its stub.
pub fn response_head(alloc_hint: u32, context_id: u16) -> Vec<u8> {
    let mut w = Writer::new();
    w.u32(alloc_hint);
    w.u16(context_id);
    w.u8(0);
    w.u8(0);
    w.into_bytes()
}

/// A response's stub (padding included when there is a trailer).
pub fn response_stub(pdu: &Pdu) -> Result<&[u8], PduError> {
    if pdu.body.len() < 8 {
        return Err(pdu.bad("shorter than its 8-byte head"));
    }
    Ok(&pdu.body[8..])
}

/// The body of a fault (C706 12.6.4.7).
pub fn fault(context_id: u16, status: u32) -> Vec<u8> {
    let mut w = Writer::new();
    w.u32(0);
    w.u16(context_id);
    w.u8(0);
    w.u8(0);
    w.u32(status);
    w.u32(0);
    w.into_bytes()
}

pub fn fault_status(pdu: &Pdu) -> Result<u32, PduError> {
    let mut r = Reader::new(&pdu.body);
    r.take(8, "fault head")?;
    Ok(r.u32("status")?)
}

/// What a fault or reject status means, for messages.
pub fn status_text(status: u32) -> String {
    let name = match status {
        STATUS_ACCESS_DENIED => "rpc_s_access_denied",
        NCA_S_OP_RNG_ERROR => "nca_s_op_rng_error",
        NCA_S_UNK_IF => "nca_s_unk_if",
        NCA_S_PROTO_ERROR => "nca_s_proto_error",
        NCA_S_FAULT_NDR => "rpc_x_bad_stub_data",
        0x1c00_001a => "nca_s_fault_remote_no_memory",
        _ => return format!("status 0x{status:08x}"),
    };
    format!("{name} (0x{status:08x})")
}

/// A call's stub cut into fragments of at most `chunk` bytes (C706 12.6.3.1:
/// the first carries PFC_FIRST_FRAG, the last PFC_LAST_FRAG, an empty stub is
/// one fragment with both): `(flags, alloc_hint, part)`, where `alloc_hint`
/// is what remains of the stub from this fragment on.
pub fn fragments(stub: &[u8], chunk: usize) -> Vec<(u8, u32, &[u8])> {
    let parts: Vec<&[u8]> = if stub.is_empty() {
        vec![&[]]
    } else {
        stub.chunks(chunk.max(1)).collect()
    };
    let last = parts.len() - 1;
    let mut remaining = stub.len();
    parts
        .into_iter()
        .enumerate()
        .map(|(i, part)| {
            let mut flags = 0;
            if i == 0 {
                flags |= PFC_FIRST_FRAG;
            }
            if i == last {
                flags |= PFC_LAST_FRAG;
            }
            let hint = remaining as u32;
            remaining -= part.len();
            (flags, hint, part)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::{ICERT_PASSAGE, NDR20};
    use super::*;

    #[test]
    fn bind_round_trips_with_its_trailer() {
        let bind = Bind {
            max_xmit_frag: 5840,
            max_recv_frag: 5840,
            assoc_group_id: 0,
            contexts: vec![ContextElem {
                id: 0,
                abstract_syntax: ICERT_PASSAGE,
                transfer_syntaxes: vec![NDR20],
            }],
        };
        let body = bind.encode();
        assert_eq!(body.len(), 12 + 44, "C706: 12 bytes, then 44 per context");
        let pdu = Pdu {
            ptype: BIND,
            flags: PFC_FIRST_FRAG | PFC_LAST_FRAG,
            call_id: 1,
            body,
            auth: Some(Auth {
                auth_type: AUTHN_GSS_KERBEROS,
                level: AUTHN_LEVEL_PKT_PRIVACY,
                pad_len: 0,
                context_id: 7,
                value: vec![0x60, 1, 2, 3, 4],
            }),
        };
        let bytes = pdu.encode();
        assert_eq!(frag_length(&bytes).unwrap(), bytes.len());
        assert_eq!(&bytes[10..12], &[5, 0], "auth_length");
        let back = Pdu::parse(&bytes).unwrap();
        assert_eq!(back, pdu);
        assert_eq!(Bind::parse(&back).unwrap(), bind);
    }

    #[test]
    fn bind_ack_aligns_its_results_after_the_secondary_address() {
        for sec_addr in ["", "1", "49668", "135"] {
            let ack = BindAck {
                max_xmit_frag: 5840,
                max_recv_frag: 5840,
                assoc_group_id: 0x1234,
                sec_addr: sec_addr.into(),
                results: vec![ContextResult {
                    result: 0,
                    reason: 0,
                    transfer_syntax: NDR20,
                }],
            };
            let pdu = Pdu {
                ptype: BIND_ACK,
                flags: 3,
                call_id: 1,
                body: ack.encode(),
                auth: None,
            };
            assert_eq!(pdu.body.len() % 4, 0, "{sec_addr:?}");
            let back = BindAck::parse(&Pdu::parse(&pdu.encode()).unwrap()).unwrap();
            assert_eq!(back, ack, "{sec_addr:?}");
        }
    }

    #[test]
    fn bad_fragments_are_errors() {
        let ok = Pdu {
            ptype: REQUEST,
            flags: 3,
            call_id: 2,
            body: vec![0; 8],
            auth: None,
        }
        .encode();
        let mut v4 = ok.clone();
        v4[0] = 4;
        let mut big_endian = ok.clone();
        big_endian[4] = 0;
        let mut long_auth = ok.clone();
        long_auth[10] = 200;
        let mut short_len = ok.clone();
        short_len[8] = 4;
        let mut pad = Pdu {
            ptype: REQUEST,
            flags: 3,
            call_id: 2,
            body: vec![0; 8],
            auth: Some(Auth {
                auth_type: 16,
                level: 6,
                pad_len: 0,
                context_id: 0,
                value: vec![0; 16],
            }),
        }
        .encode();
        pad[16 + 8 + 2] = 9;
        let cases = [
            ("version 4", v4, "not 5.0"),
            ("big-endian", big_endian, "big-endian"),
            (
                "authenticator longer than the fragment",
                long_auth,
                "200 bytes",
            ),
            (
                "fragment length below the header",
                short_len,
                "fragment length 4",
            ),
            ("padding longer than the body", pad, "9 bytes of padding"),
            ("truncated", ok[..12].to_vec(), "fragment length"),
        ];
        for (what, bytes, expected) in cases {
            let err = Pdu::parse(&bytes).unwrap_err().to_string();
            assert!(err.contains(expected), "{what}: {err}");
        }
    }

    #[test]
    fn requests_read_their_object_uuid_when_flagged() {
        let mut body = Request::encode_head(100, 1, 0);
        body.extend_from_slice(&ICERT_PASSAGE.uuid.to_le_bytes());
        body.extend_from_slice(&[9, 9]);
        let pdu = Pdu {
            ptype: REQUEST,
            flags: 3 | PFC_OBJECT_UUID,
            call_id: 3,
            body,
            auth: None,
        };
        let r = Request::parse(&pdu).unwrap();
        assert_eq!(r.object, Some(ICERT_PASSAGE.uuid));
        assert_eq!((r.alloc_hint, r.context_id, r.opnum), (100, 1, 0));
        assert_eq!(r.stub, [9, 9]);
    }

    #[test]
    fn faults_carry_their_status() {
        let pdu = Pdu {
            ptype: FAULT,
            flags: 3,
            call_id: 3,
            body: fault(0, STATUS_ACCESS_DENIED),
            auth: None,
        };
        assert_eq!(fault_status(&pdu).unwrap(), 5);
        assert_eq!(status_text(5), "rpc_s_access_denied (0x00000005)");
    }

    #[test]
    fn fragments_carry_first_last_and_what_remains() {
        let stub: Vec<u8> = (0..10).collect();
        let f = fragments(&stub, 4);
        let seen: Vec<(u8, u32, usize)> = f.iter().map(|(fl, h, p)| (*fl, *h, p.len())).collect();
        assert_eq!(
            seen,
            [(PFC_FIRST_FRAG, 10, 4), (0, 6, 4), (PFC_LAST_FRAG, 2, 2)]
        );
        assert_eq!(
            f.iter()
                .flat_map(|(_, _, p)| p.iter().copied())
                .collect::<Vec<u8>>(),
            stub
        );
        assert_eq!(
            fragments(&[], 4),
            [(PFC_FIRST_FRAG | PFC_LAST_FRAG, 0, &[][..])]
        );
        assert_eq!(fragments(&stub, 16).len(), 1);
    }
}
