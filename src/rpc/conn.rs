//! DCE/RPC over TCP: reading and writing fragments, and the client side of
//! an association (bind with Kerberos at packet privacy, calls with their
//! fragments sealed one by one, faults as errors).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::SyntaxId;
use super::gss::Initiator;
use super::ndr::NdrError;
use super::pdu::{self, Auth, Bind, BindAck, ContextElem, Pdu, PduError, Request};
use crate::krb::{Credentials, KrbError};

/// The fragment size offered (Windows' for ncacn_ip_tcp).
pub const FRAGMENT: u16 = 5840;
/// The most a call's stub may grow to when reassembled.
pub const MAX_STUB: usize = 4 << 20;
/// Room kept in each fragment for the trailer and a Kerberos wrap token
/// (60 to 76 bytes with AES), rounded up.
const AUTH_ROOM: usize = pdu::SEC_TRAILER_LEN + 128;

#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Pdu(#[from] PduError),
    #[error("{0}")]
    Ndr(#[from] NdrError),
    #[error("{0}")]
    Kerberos(#[from] KrbError),
    /// The server answered a call with a fault.
    #[error("the server answered with a fault: {}", pdu::status_text(*.status))]
    Fault { status: u32 },
    /// The server refused the bind or answered out of protocol.
    #[error("{0}")]
    Protocol(String),
    #[error("{0} timed out")]
    Timeout(String),
}

impl RpcError {
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RpcError {
        let what = what.into();
        move |source| RpcError::Io { what, source }
    }

    /// The server could not be reached at all (nothing listens, or the
    /// connection was refused or reset before any answer): worth trying
    /// the next CA or method.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, RpcError::Io { .. } | RpcError::Timeout(_))
    }
}

/// Reads one fragment; `None` when the peer closed the connection between
/// fragments.
pub async fn read_pdu<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Pdu>, RpcError> {
    let mut head = [0u8; pdu::HEADER_LEN];
    match r.read_exact(&mut head[..1]).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(RpcError::io("reading a PDU")(e)),
    }
    r.read_exact(&mut head[1..])
        .await
        .map_err(RpcError::io("reading a PDU header"))?;
    let len = pdu::frag_length(&head)?;
    let mut bytes = head.to_vec();
    bytes.resize(len, 0);
    r.read_exact(&mut bytes[pdu::HEADER_LEN..])
        .await
        .map_err(RpcError::io("reading a PDU body"))?;
    Ok(Some(Pdu::parse(&bytes)?))
}

pub async fn write_pdu<W: AsyncWrite + Unpin>(w: &mut W, p: &Pdu) -> Result<(), RpcError> {
    w.write_all(&p.encode())
        .await
        .map_err(RpcError::io(format!("sending a {} PDU", p.name())))
}

/// Which protection a client asks for. Only [`Level::Privacy`] is of use
/// against a CA (Windows enforces it for ICertPassage); the others exist
/// to show the CA refusing them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// No authentication at all.
    None,
    /// Kerberos with integrity only (auth level 5).
    Integrity,
    /// Kerberos with packet privacy (auth level 6).
    Privacy,
}

/// How a client authenticates.
#[derive(Debug, Clone)]
pub struct ClientAuth {
    pub credentials: Credentials,
    /// `host/ca.corp.example`.
    pub spn: String,
    /// SPNEGO (auth type 9) rather than raw Kerberos (16).
    pub spnego: bool,
    pub level: Level,
}

struct Security {
    ctx: Initiator,
    auth_type: u8,
    level: u8,
    context_id: u32,
}

/// A bound association with one interface on one server.
pub struct Association {
    stream: TcpStream,
    call_id: u32,
    context_id: u16,
    max_xmit: usize,
    security: Option<Security>,
    peer: String,
}

impl std::fmt::Debug for Association {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Association({})", self.peer)
    }
}

/// Pads `stub` to a multiple of `to` and returns the padding's length.
pub fn pad_to(stub: &mut Vec<u8>, to: usize) -> u8 {
    let pad = (to - stub.len() % to) % to;
    stub.resize(stub.len() + pad, 0);
    pad as u8
}

impl Association {
    /// Connects to `addr` and binds `interface`, authenticated as `auth`
    /// says (`None`: unauthenticated).
    pub async fn connect(
        addr: SocketAddr,
        interface: SyntaxId,
        auth: Option<ClientAuth>,
    ) -> Result<Association, RpcError> {
        let peer = addr.to_string();
        let stream = TcpStream::connect(addr)
            .await
            .map_err(RpcError::io(format!("connecting to {peer}")))?;
        let _ = stream.set_nodelay(true);
        let mut a = Association {
            stream,
            call_id: 1,
            context_id: 0,
            max_xmit: FRAGMENT as usize,
            security: None,
            peer,
        };
        a.bind(interface, auth).await?;
        Ok(a)
    }

    async fn bind(
        &mut self,
        interface: SyntaxId,
        auth: Option<ClientAuth>,
    ) -> Result<(), RpcError> {
        let body = Bind {
            max_xmit_frag: FRAGMENT,
            max_recv_frag: FRAGMENT,
            assoc_group_id: 0,
            contexts: vec![ContextElem {
                id: self.context_id,
                abstract_syntax: interface,
                transfer_syntaxes: vec![super::NDR20],
            }],
        }
        .encode();
        let mut security = None;
        let mut trailer = None;
        if let Some(auth) = auth.filter(|a| a.level != Level::None) {
            let creds = auth.credentials.clone();
            let spn = auth.spn.clone();
            let spnego = auth.spnego;
            let (ctx, token) =
                tokio::task::spawn_blocking(move || Initiator::start(&creds, &spn, spnego))
                    .await
                    .map_err(|e| RpcError::Protocol(format!("Kerberos task: {e}")))??;
            let s = Security {
                ctx,
                auth_type: if auth.spnego {
                    pdu::AUTHN_GSS_NEGOTIATE
                } else {
                    pdu::AUTHN_GSS_KERBEROS
                },
                level: match auth.level {
                    Level::Integrity => pdu::AUTHN_LEVEL_PKT_INTEGRITY,
                    _ => pdu::AUTHN_LEVEL_PKT_PRIVACY,
                },
                context_id: 0,
            };
            trailer = Some(Auth {
                auth_type: s.auth_type,
                level: s.level,
                pad_len: 0,
                context_id: s.context_id,
                value: token,
            });
            security = Some(s);
        }
        let call_id = self.next_call();
        write_pdu(
            &mut self.stream,
            &Pdu {
                ptype: pdu::BIND,
                flags: pdu::PFC_FIRST_FRAG | pdu::PFC_LAST_FRAG,
                call_id,
                body: body.clone(),
                auth: trailer,
            },
        )
        .await?;
        let answer = self.read().await?;
        let ack = match answer.ptype {
            pdu::BIND_ACK => BindAck::parse(&answer)?,
            pdu::BIND_NAK => {
                let reason = pdu::parse_bind_nak(&answer)?;
                return Err(RpcError::Protocol(format!(
                    "{}: the bind was refused (bind_nak, reason {reason})",
                    self.peer
                )));
            }
            pdu::FAULT => {
                return Err(RpcError::Fault {
                    status: pdu::fault_status(&answer)?,
                });
            }
            other => {
                return Err(RpcError::Protocol(format!(
                    "{}: a {} PDU in answer to a bind",
                    self.peer,
                    pdu::ptype_name(other)
                )));
            }
        };
        match ack.results.first() {
            Some(r) if r.result == 0 => {}
            Some(r) => {
                return Err(RpcError::Protocol(format!(
                    "{}: the interface {} was refused (result {}, reason {})",
                    self.peer, interface.uuid, r.result, r.reason
                )));
            }
            None => {
                return Err(RpcError::Protocol(format!(
                    "{}: the bind_ack has no result",
                    self.peer
                )));
            }
        }
        self.max_xmit = (ack.max_recv_frag as usize).clamp(1024, FRAGMENT as usize);
        if let Some(mut s) = security {
            let Some(token) = answer.auth.as_ref().map(|a| a.value.clone()) else {
                return Err(RpcError::Protocol(format!(
                    "{}: the bind_ack carries no Kerberos answer",
                    self.peer
                )));
            };
            let third = s.ctx.step(&token)?;
            // The third leg of DCE style: auth3 for raw Kerberos as Windows
            // sends it ([MS-RPCE] 3.3.1.5.2.2: no answer), alter_context for
            // SPNEGO (whose acceptor answers with its final token).
            if let Some(third) = third {
                let spnego = s.auth_type == pdu::AUTHN_GSS_NEGOTIATE;
                let auth = Some(Auth {
                    auth_type: s.auth_type,
                    level: s.level,
                    pad_len: 0,
                    context_id: s.context_id,
                    value: third,
                });
                if spnego {
                    let call_id = self.next_call();
                    write_pdu(
                        &mut self.stream,
                        &Pdu {
                            ptype: pdu::ALTER_CONTEXT,
                            flags: pdu::PFC_FIRST_FRAG | pdu::PFC_LAST_FRAG,
                            call_id,
                            body,
                            auth,
                        },
                    )
                    .await?;
                    let answer = self.read().await?;
                    if answer.ptype != pdu::ALTER_CONTEXT_RESP {
                        return Err(RpcError::Protocol(format!(
                            "{}: a {} PDU in answer to the alter_context",
                            self.peer,
                            answer.name()
                        )));
                    }
                    // SPNEGO's accept-completed, which proves the server
                    // ran the mechanism to its end.
                    if let Some(a) = answer.auth.as_ref().filter(|a| !a.value.is_empty())
                        && !s.ctx.is_complete()
                    {
                        s.ctx.step(&a.value)?;
                    }
                } else {
                    write_pdu(
                        &mut self.stream,
                        &Pdu {
                            ptype: pdu::AUTH3,
                            flags: pdu::PFC_FIRST_FRAG | pdu::PFC_LAST_FRAG,
                            call_id,
                            body: vec![0; 4],
                            auth,
                        },
                    )
                    .await?;
                }
            }
            s.ctx.check_ready()?;
            self.security = Some(s);
        }
        Ok(())
    }

    fn next_call(&mut self) -> u32 {
        let id = self.call_id;
        self.call_id += 1;
        id
    }

    async fn read(&mut self) -> Result<Pdu, RpcError> {
        match read_pdu(&mut self.stream).await? {
            Some(p) => Ok(p),
            None => Err(RpcError::Io {
                what: format!("reading from {}", self.peer),
                source: std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                ),
            }),
        }
    }

    /// One call: the stub in, the response's stub out (reassembled,
    /// unsealed, padding removed). A fault is [`RpcError::Fault`].
    pub async fn call(&mut self, opnum: u16, stub: &[u8]) -> Result<Vec<u8>, RpcError> {
        let call_id = self.next_call();
        let chunk = if self.security.is_some() {
            (self.max_xmit - 24 - AUTH_ROOM) / 16 * 16
        } else {
            self.max_xmit - 24
        };
        for (flags, hint, part) in pdu::fragments(stub, chunk) {
            let mut body = Request::encode_head(hint, self.context_id, opnum);
            let mut data = part.to_vec();
            let auth = match &mut self.security {
                None => None,
                Some(s) => {
                    let pad_len = pad_to(&mut data, 16);
                    let value = if s.level == pdu::AUTHN_LEVEL_PKT_PRIVACY {
                        s.ctx.seal(&mut data)?
                    } else {
                        integrity_token(&mut s.ctx, &data)?
                    };
                    Some(Auth {
                        auth_type: s.auth_type,
                        level: s.level,
                        pad_len,
                        context_id: s.context_id,
                        value,
                    })
                }
            };
            body.extend_from_slice(&data);
            write_pdu(
                &mut self.stream,
                &Pdu {
                    ptype: pdu::REQUEST,
                    flags,
                    call_id,
                    body,
                    auth,
                },
            )
            .await?;
        }
        let mut out = Vec::new();
        loop {
            let answer = self.read().await?;
            if answer.call_id != call_id {
                return Err(RpcError::Protocol(format!(
                    "{}: an answer to call {} while waiting for {call_id}",
                    self.peer, answer.call_id
                )));
            }
            match answer.ptype {
                pdu::RESPONSE => {}
                pdu::FAULT => {
                    return Err(RpcError::Fault {
                        status: pdu::fault_status(&answer)?,
                    });
                }
                other => {
                    return Err(RpcError::Protocol(format!(
                        "{}: a {} PDU in answer to a request",
                        self.peer,
                        pdu::ptype_name(other)
                    )));
                }
            }
            let mut data = pdu::response_stub(&answer)?.to_vec();
            match (&mut self.security, &answer.auth) {
                (None, _) => {}
                (Some(s), Some(a)) if s.level == pdu::AUTHN_LEVEL_PKT_PRIVACY => {
                    s.ctx.unseal(&mut data, &a.value)?;
                    let keep = data.len().saturating_sub(a.pad_len as usize);
                    data.truncate(keep);
                }
                (Some(_), Some(a)) => {
                    let keep = data.len().saturating_sub(a.pad_len as usize);
                    data.truncate(keep);
                }
                (Some(_), None) => {
                    return Err(RpcError::Protocol(format!(
                        "{}: an unprotected response on a protected association",
                        self.peer
                    )));
                }
            }
            if out.len() + data.len() > MAX_STUB {
                return Err(RpcError::Protocol(format!(
                    "{}: a response larger than {MAX_STUB} bytes",
                    self.peer
                )));
            }
            out.extend_from_slice(&data);
            if answer.flags & pdu::PFC_LAST_FRAG != 0 {
                return Ok(out);
            }
        }
    }
}

/// The integrity-only verifier a level-5 client sends: a wrap token
/// without confidentiality over a copy of the stub (the stub itself goes
/// in clear).
fn integrity_token(ctx: &mut Initiator, data: &[u8]) -> Result<Vec<u8>, RpcError> {
    let mut copy = data.to_vec();
    Ok(ctx.seal_integrity(&mut copy)?)
}

/// Asks the endpoint mapper at `addr` for the TCP port of `interface`.
pub async fn map_endpoint(
    addr: SocketAddr,
    interface: SyntaxId,
    limit: Duration,
) -> Result<u16, RpcError> {
    use super::epm::{EptMap, EptMapResponse, OPNUM_EPT_MAP, TcpTower};
    let work = async {
        let mut a = Association::connect(addr, super::EPMAPPER, None).await?;
        let stub = a
            .call(OPNUM_EPT_MAP, &EptMap::for_interface(interface).encode())
            .await?;
        let answer = EptMapResponse::decode(&stub)?;
        if answer.status != 0 {
            return Err(RpcError::Protocol(format!(
                "the endpoint mapper at {addr} knows no endpoint of {} ({})",
                interface.uuid,
                pdu::status_text(answer.status)
            )));
        }
        for t in &answer.towers {
            if let Ok(tower) = TcpTower::decode(t)
                && tower.interface == interface
            {
                return Ok(tower.port);
            }
        }
        Err(RpcError::Protocol(format!(
            "the endpoint mapper at {addr} answered no TCP tower for {}",
            interface.uuid
        )))
    };
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| RpcError::Timeout(format!("the endpoint mapper at {addr}")))?
}
