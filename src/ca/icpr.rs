//! The CA's MS-ICPR front door: a small endpoint mapper and the
//! `ICertPassage` interface over DCE/RPC on TCP, each on its own port, as a
//! Windows enterprise CA serves them.
//!
//! ICertPassage takes Kerberos only (SPNEGO, auth type 9, or raw Kerberos,
//! 16) with the CA host's `host/<dNSHostName>` keys, and only at packet
//! privacy: a call on an unauthenticated or integrity-only association is
//! answered with the fault `rpc_s_access_denied`, as a CA with
//! `IF_ENFORCEENCRYPTICERTREQUEST` (the default since 2021) refuses it.
//! The client principal is mapped to its directory account and the
//! request goes through the same [`Authority::issue_as`] (and so the same
//! `ca::policy::decide`) as a CES request, recorded as `rpc-kerberos`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::authority::{Answer, Authority, CaError, Caller};
use crate::krb::Acceptor;
use crate::rpc::conn::{MAX_STUB, RpcError, pad_to, read_pdu, write_pdu};
use crate::rpc::epm::{EPT_S_NOT_REGISTERED, EptMap, EptMapResponse, OPNUM_EPT_MAP, TcpTower};
use crate::rpc::gss::AcceptorCtx;
use crate::rpc::icpr::{
    CR_DISP_ISSUED, CR_DISP_UNDER_SUBMISSION, CertServerRequest, CertServerResponse,
    OPNUM_CERT_SERVER_REQUEST,
};
use crate::rpc::pdu::{self, Auth, Bind, BindAck, ContextResult, Pdu, Request};
use crate::rpc::spnego;
use crate::rpc::{EPMAPPER, ICERT_PASSAGE, NDR20, SyntaxId};
use crate::wstep::Disposition;

/// Where the RPC front door listens and whose keys it uses.
#[derive(Debug, Clone)]
pub struct IcprSettings {
    /// The endpoint mapper (`0.0.0.0:135` on a real host; a free port in
    /// the lab).
    pub epm_listen: SocketAddr,
    /// ICertPassage's own port (port 0: a free one, told by the mapper).
    pub listen: SocketAddr,
    /// The keytab holding `host/<dns_host_name>`.
    pub keytab: PathBuf,
    /// The replay cache of the acceptor.
    pub rcache: PathBuf,
}

/// The running front door.
pub struct IcprListening {
    pub epm: SocketAddr,
    pub icpr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl IcprListening {
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Connections served at once, and how long one may live.
const MAX_CONNECTIONS: usize = 256;
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(120);
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts both listeners.
pub async fn start(
    authority: Arc<Authority>,
    settings: IcprSettings,
) -> Result<IcprListening, CaError> {
    let service = format!("host/{}", authority.config().dns_host_name);
    let keytab = settings.keytab.clone();
    let rcache = settings.rcache.clone();
    let acceptor = tokio::task::spawn_blocking(move || {
        Acceptor::from_keytab(&keytab, Some(&service), &rcache)
    })
    .await
    .map_err(|e| CaError::State(format!("the Kerberos thread failed: {e}")))?
    .map_err(|e| CaError::State(format!("the RPC endpoint: {e}")))?;
    let acceptor = Arc::new(acceptor);
    let bind = |addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|e| CaError::State(format!("cannot listen on {addr}: {e}")))
    };
    let icpr = bind(settings.listen).await?;
    let epm = bind(settings.epm_listen).await?;
    let icpr_addr = icpr
        .local_addr()
        .map_err(|e| CaError::State(format!("listener: {e}")))?;
    let epm_addr = epm
        .local_addr()
        .map_err(|e| CaError::State(format!("listener: {e}")))?;
    let (shutdown, stopped) = watch::channel(false);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut tasks = JoinSet::new();
    let icpr_service = Arc::new(Service::Icpr {
        authority,
        acceptor,
    });
    let epm_service = Arc::new(Service::Mapper { icpr: icpr_addr });
    tasks.spawn(accept_loop(
        icpr,
        icpr_service,
        slots.clone(),
        stopped.clone(),
    ));
    tasks.spawn(accept_loop(epm, epm_service, slots, stopped));
    Ok(IcprListening {
        epm: epm_addr,
        icpr: icpr_addr,
        shutdown,
        tasks,
    })
}

/// What a listener serves.
enum Service {
    Mapper {
        icpr: SocketAddr,
    },
    Icpr {
        authority: Arc<Authority>,
        acceptor: Arc<Acceptor>,
    },
}

impl Service {
    fn interface(&self) -> SyntaxId {
        match self {
            Service::Mapper { .. } => EPMAPPER,
            Service::Icpr { .. } => ICERT_PASSAGE,
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    service: Arc<Service>,
    slots: Arc<Semaphore>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    drop(stream);
                    continue;
                };
                let service = service.clone();
                connections.spawn(async move {
                    let _permit = permit;
                    let _ = stream.set_nodelay(true);
                    let served = tokio::time::timeout(
                        CONNECTION_TIMEOUT,
                        serve(stream, peer, &service),
                    )
                    .await;
                    match served {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => tracing::info!(%peer, "RPC connection: {e}"),
                        Err(_) => tracing::info!(%peer, "RPC connection: closed after {CONNECTION_TIMEOUT:?}"),
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.abort_all();
}

/// The security of one association.
struct Security {
    ctx: AcceptorCtx,
    /// Auth type 9: the SPNEGO framing read and written here
    /// (`rpc::spnego`), with whether the client named Kerberos by
    /// Microsoft's OID.
    spnego: Option<bool>,
    auth_type: u8,
    level: u8,
    context_id: u32,
}

/// A call being reassembled from its fragments.
struct Call {
    call_id: u32,
    opnum: u16,
    context_id: u16,
    stub: Vec<u8>,
}

/// One connection: binds, then calls, until the client closes.
async fn serve(mut stream: TcpStream, peer: SocketAddr, service: &Service) -> Result<(), RpcError> {
    let mut security: Option<Security> = None;
    let mut bound: Option<u16> = None;
    let mut call: Option<Call> = None;
    loop {
        let pdu = match tokio::time::timeout(IDLE_TIMEOUT, read_pdu(&mut stream)).await {
            Ok(Ok(Some(p))) => p,
            Ok(Ok(None)) | Err(_) => return Ok(()),
            Ok(Err(e)) => return Err(e),
        };
        match pdu.ptype {
            pdu::BIND | pdu::ALTER_CONTEXT => {
                let bind = match Bind::parse(&pdu) {
                    Ok(b) => b,
                    Err(e) => {
                        reply(
                            &mut stream,
                            pdu::BIND_NAK,
                            pdu.call_id,
                            pdu::bind_nak(0),
                            None,
                        )
                        .await?;
                        return Err(e.into());
                    }
                };
                let results: Vec<ContextResult> = bind
                    .contexts
                    .iter()
                    .map(|c| {
                        let ndr = c.transfer_syntaxes.contains(&NDR20);
                        if c.abstract_syntax != service.interface() {
                            ContextResult {
                                result: 2,
                                reason: 1,
                                transfer_syntax: SyntaxId {
                                    uuid: Default::default(),
                                    major: 0,
                                    minor: 0,
                                },
                            }
                        } else if !ndr {
                            ContextResult {
                                result: 2,
                                reason: 2,
                                transfer_syntax: SyntaxId {
                                    uuid: Default::default(),
                                    major: 0,
                                    minor: 0,
                                },
                            }
                        } else {
                            ContextResult {
                                result: 0,
                                reason: 0,
                                transfer_syntax: NDR20,
                            }
                        }
                    })
                    .collect();
                if let Some(i) = results.iter().position(|r| r.result == 0) {
                    bound = Some(bind.contexts[i].id);
                }
                let mut answer_auth = None;
                if let Some(a) = &pdu.auth {
                    // [MS-RPCE] 2.2.2.5: authentication type not recognized
                    // (the endpoint mapper takes none; ICertPassage Kerberos,
                    // raw or through SPNEGO).
                    let known = a.auth_type == pdu::AUTHN_GSS_NEGOTIATE
                        || a.auth_type == pdu::AUTHN_GSS_KERBEROS;
                    let (Service::Icpr { acceptor, .. }, true) = (service, known) else {
                        reply(
                            &mut stream,
                            pdu::BIND_NAK,
                            pdu.call_id,
                            pdu::bind_nak(8),
                            None,
                        )
                        .await?;
                        return Ok(());
                    };
                    let s = match &mut security {
                        Some(s) if pdu.ptype == pdu::ALTER_CONTEXT => s,
                        _ => security.insert(Security {
                            ctx: AcceptorCtx::new(acceptor),
                            spnego: None,
                            auth_type: a.auth_type,
                            level: a.level,
                            context_id: a.context_id,
                        }),
                    };
                    let (token, first) = match (a.auth_type, s.spnego) {
                        (pdu::AUTHN_GSS_NEGOTIATE, None) => match spnego::parse_init(&a.value) {
                            Some(init) => {
                                s.spnego = Some(init.microsoft_oid);
                                (init.mech_token, true)
                            }
                            None => (Vec::new(), true),
                        },
                        (pdu::AUTHN_GSS_NEGOTIATE, Some(_)) => (
                            spnego::parse_resp_token(&a.value).unwrap_or_default(),
                            false,
                        ),
                        _ => (a.value.clone(), false),
                    };
                    // A framed first token is handed to MIT raw (rpc::spnego).
                    let token = match spnego::unframe_ap_req(&token) {
                        Some(raw) if first || a.auth_type == pdu::AUTHN_GSS_KERBEROS => {
                            raw.to_vec()
                        }
                        _ => token,
                    };
                    let out = match s.ctx.step(&token) {
                        Ok(out) => out,
                        Err(e) => {
                            tracing::info!(%peer, "RPC bind refused: {e}");
                            // [MS-RPCE] 2.2.2.5: invalid checksum (a bad authenticator).
                            reply(
                                &mut stream,
                                pdu::BIND_NAK,
                                pdu.call_id,
                                pdu::bind_nak(9),
                                None,
                            )
                            .await?;
                            return Ok(());
                        }
                    };
                    let value = match s.spnego {
                        Some(microsoft) if first => {
                            spnego::resp(spnego::ACCEPT_INCOMPLETE, Some(microsoft), out.as_deref())
                        }
                        Some(_) => spnego::resp(
                            if s.ctx.is_complete() {
                                spnego::ACCEPT_COMPLETED
                            } else {
                                spnego::ACCEPT_INCOMPLETE
                            },
                            None,
                            out.as_deref(),
                        ),
                        None => out.unwrap_or_default(),
                    };
                    answer_auth = Some(Auth {
                        auth_type: s.auth_type,
                        level: s.level,
                        pad_len: 0,
                        context_id: s.context_id,
                        value,
                    });
                }
                let ack = BindAck {
                    max_xmit_frag: bind.max_recv_frag.min(crate::rpc::conn::FRAGMENT),
                    max_recv_frag: crate::rpc::conn::FRAGMENT,
                    assoc_group_id: if bind.assoc_group_id != 0 {
                        bind.assoc_group_id
                    } else {
                        0x5a5a
                    },
                    sec_addr: if pdu.ptype == pdu::BIND {
                        stream
                            .local_addr()
                            .map(|a| a.port().to_string())
                            .unwrap_or_default()
                    } else {
                        String::new()
                    },
                    results,
                };
                let ptype = if pdu.ptype == pdu::BIND {
                    pdu::BIND_ACK
                } else {
                    pdu::ALTER_CONTEXT_RESP
                };
                reply(&mut stream, ptype, pdu.call_id, ack.encode(), answer_auth).await?;
            }
            pdu::AUTH3 => {
                let (Some(s), Some(a)) = (&mut security, &pdu.auth) else {
                    return Ok(());
                };
                let token = match s.spnego {
                    Some(_) => spnego::parse_resp_token(&a.value).unwrap_or_default(),
                    None => a.value.clone(),
                };
                if let Err(e) = s.ctx.step(&token) {
                    tracing::info!(%peer, "RPC auth3 refused: {e}");
                    return Ok(());
                }
            }
            pdu::REQUEST => {
                let req = Request::parse(&pdu)?;
                if pdu.flags & pdu::PFC_FIRST_FRAG != 0 {
                    call = Some(Call {
                        call_id: pdu.call_id,
                        opnum: req.opnum,
                        context_id: req.context_id,
                        stub: Vec::new(),
                    });
                }
                let Some(c) = call.as_mut().filter(|c| c.call_id == pdu.call_id) else {
                    fault(
                        &mut stream,
                        pdu.call_id,
                        req.context_id,
                        pdu::NCA_S_PROTO_ERROR,
                    )
                    .await?;
                    return Ok(());
                };
                if bound != Some(req.context_id) {
                    fault(&mut stream, pdu.call_id, req.context_id, pdu::NCA_S_UNK_IF).await?;
                    call = None;
                    continue;
                }
                // Packet privacy or nothing ([MS-ICPR] 3.2.4.1: with
                // IF_ENFORCEENCRYPTICERTREQUEST, what is not encrypted is
                // refused with E_ACCESSDENIED / rpc_s_access_denied).
                let private = match (&security, &pdu.auth) {
                    (Some(s), Some(a)) => {
                        s.level == pdu::AUTHN_LEVEL_PKT_PRIVACY
                            && a.level == pdu::AUTHN_LEVEL_PKT_PRIVACY
                            && s.ctx.is_complete()
                    }
                    _ => false,
                };
                let mut data = req.stub.clone();
                if matches!(service, Service::Icpr { .. }) {
                    if !private {
                        tracing::info!(%peer, "ICertPassage call refused: not at packet privacy");
                        fault(
                            &mut stream,
                            pdu.call_id,
                            req.context_id,
                            pdu::STATUS_ACCESS_DENIED,
                        )
                        .await?;
                        call = None;
                        continue;
                    }
                    let (Some(s), Some(a)) = (&mut security, &pdu.auth) else {
                        continue;
                    };
                    if let Err(e) = s.ctx.unseal(&mut data, &a.value) {
                        tracing::info!(%peer, "ICertPassage call refused: {e}");
                        fault(
                            &mut stream,
                            pdu.call_id,
                            req.context_id,
                            pdu::STATUS_ACCESS_DENIED,
                        )
                        .await?;
                        call = None;
                        continue;
                    }
                    let keep = data.len().saturating_sub(a.pad_len as usize);
                    data.truncate(keep);
                } else if let Some(a) = &pdu.auth {
                    let keep = data.len().saturating_sub(a.pad_len as usize);
                    data.truncate(keep);
                }
                if c.stub.len() + data.len() > MAX_STUB {
                    fault(
                        &mut stream,
                        pdu.call_id,
                        req.context_id,
                        pdu::NCA_S_PROTO_ERROR,
                    )
                    .await?;
                    return Ok(());
                }
                c.stub.extend_from_slice(&data);
                if pdu.flags & pdu::PFC_LAST_FRAG == 0 {
                    continue;
                }
                let Some(c) = call.take() else { continue };
                let answer = match service {
                    Service::Mapper { icpr } => map(c.opnum, &c.stub, *icpr),
                    Service::Icpr { authority, .. } => {
                        let principal = match &mut security {
                            Some(s) => s.ctx.client().map_err(RpcError::from)?,
                            None => continue,
                        };
                        cert_server_request(authority, &principal, c.opnum, &c.stub).await
                    }
                };
                match answer {
                    Ok(stub) => {
                        respond(
                            &mut stream,
                            c.call_id,
                            c.context_id,
                            stub,
                            security.as_mut(),
                        )
                        .await?
                    }
                    Err(status) => fault(&mut stream, c.call_id, c.context_id, status).await?,
                }
            }
            // A client going away, or something no client sends a server.
            _ => return Ok(()),
        }
    }
}

async fn reply(
    stream: &mut TcpStream,
    ptype: u8,
    call_id: u32,
    body: Vec<u8>,
    auth: Option<Auth>,
) -> Result<(), RpcError> {
    write_pdu(
        stream,
        &Pdu {
            ptype,
            flags: pdu::PFC_FIRST_FRAG | pdu::PFC_LAST_FRAG,
            call_id,
            body,
            auth,
        },
    )
    .await
}

async fn fault(
    stream: &mut TcpStream,
    call_id: u32,
    context_id: u16,
    status: u32,
) -> Result<(), RpcError> {
    let mut flags = pdu::PFC_FIRST_FRAG | pdu::PFC_LAST_FRAG;
    if status == pdu::STATUS_ACCESS_DENIED {
        // The call was not executed ([MS-RPCE] 2.2.2.3).
        flags |= 0x20;
    }
    write_pdu(
        stream,
        &Pdu {
            ptype: pdu::FAULT,
            flags,
            call_id,
            body: pdu::fault(context_id, status),
            auth: None,
        },
    )
    .await
}

/// Sends a response stub in fragments, each sealed on its own.
async fn respond(
    stream: &mut TcpStream,
    call_id: u32,
    context_id: u16,
    stub: Vec<u8>,
    mut security: Option<&mut Security>,
) -> Result<(), RpcError> {
    for (flags, hint, part) in pdu::fragments(&stub, 4096) {
        let mut body = pdu::response_head(hint, context_id);
        let mut data = part.to_vec();
        let auth = match security.as_deref_mut() {
            Some(s) if s.level == pdu::AUTHN_LEVEL_PKT_PRIVACY && s.ctx.is_complete() => {
                let pad_len = pad_to(&mut data, 16);
                let value = s.ctx.seal(&mut data)?;
                Some(Auth {
                    auth_type: s.auth_type,
                    level: s.level,
                    pad_len,
                    context_id: s.context_id,
                    value,
                })
            }
            _ => None,
        };
        body.extend_from_slice(&data);
        write_pdu(
            stream,
            &Pdu {
                ptype: pdu::RESPONSE,
                flags,
                call_id,
                body,
                auth,
            },
        )
        .await?;
    }
    Ok(())
}

/// `ept_map`: ICertPassage's TCP tower, nothing else.
fn map(opnum: u16, stub: &[u8], icpr: SocketAddr) -> Result<Vec<u8>, u32> {
    if opnum != OPNUM_EPT_MAP {
        return Err(pdu::NCA_S_OP_RNG_ERROR);
    }
    let request = EptMap::decode(stub).map_err(|_| pdu::NCA_S_FAULT_NDR)?;
    let asked = TcpTower::decode(&request.tower).ok();
    let response = match asked {
        Some(t) if t.interface == ICERT_PASSAGE && t.transfer == NDR20 => EptMapResponse {
            towers: vec![
                TcpTower {
                    interface: ICERT_PASSAGE,
                    transfer: NDR20,
                    port: icpr.port(),
                    address: match icpr.ip() {
                        IpAddr::V4(a) if !a.is_unspecified() => a,
                        _ => Ipv4Addr::UNSPECIFIED,
                    },
                }
                .encode(),
            ],
            status: 0,
        },
        _ => EptMapResponse {
            towers: vec![],
            status: EPT_S_NOT_REGISTERED,
        },
    };
    Ok(response.encode(request.max_towers.clamp(1, 64)))
}

/// `CertServerRequest`: a new request (PKCS#10 or CMS) or, with an empty
/// request and a request ID, the state of that request ([MS-WCCE]
/// 3.2.1.4.3.1.1).
async fn cert_server_request(
    authority: &Authority,
    principal: &str,
    opnum: u16,
    stub: &[u8],
) -> Result<Vec<u8>, u32> {
    if opnum != OPNUM_CERT_SERVER_REQUEST {
        return Err(pdu::NCA_S_OP_RNG_ERROR);
    }
    let request = CertServerRequest::decode(stub).map_err(|e| {
        tracing::info!("CertServerRequest refused: {e}");
        pdu::NCA_S_FAULT_NDR
    })?;
    let answer = if request.request.is_empty() {
        authority
            .query_as(u64::from(request.request_id), Caller::Rpc(principal))
            .await
    } else {
        authority
            .issue_as(
                &request.request,
                Caller::Rpc(principal),
                &request.attributes,
            )
            .await
    };
    let response = match answer {
        Answer::Response(r) => CertServerResponse {
            request_id: r.request_id as u32,
            disposition: match r.disposition {
                Disposition::Issued => CR_DISP_ISSUED,
                Disposition::Pending => CR_DISP_UNDER_SUBMISSION,
            },
            chain: r.chain_pkcs7.unwrap_or_default(),
            certificate: r.certificate.unwrap_or_default(),
            message: r.message,
            status: 0,
        },
        // A denial or failure: its HRESULT as the disposition, as Windows
        // CAs answer (and impacket and Certipy read it).
        Answer::Fault(f) => CertServerResponse {
            request_id: f.request_id.unwrap_or(0) as u32,
            disposition: f.hresult,
            chain: Vec::new(),
            certificate: Vec::new(),
            message: f.message,
            status: 0,
        },
    };
    Ok(response.encode())
}
