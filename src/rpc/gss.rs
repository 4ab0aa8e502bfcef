//! Kerberos for DCE/RPC: DCE-style contexts (the three legs of [MS-KILE]
//! 3.4.5.1: AP-REQ in the bind, AP-REP in the bind_ack, the client's AP-REP
//! in auth3 or alter_context) and packet privacy ([MS-RPCE] 3.3.1.5.2:
//! the stub sealed in place, the token header in the auth_value; RFC 4121
//! 4.2.4 wrap tokens with the "DCE style" trailer in the header, as MIT's
//! `gss_wrap_iov` lays out HEADER | DATA).
//!
//! Both sides use MIT krb5 through `libgssapi` (its `iov` feature); the
//! acceptor takes SPNEGO (auth type 9, what impacket and Windows' Negotiate
//! send) and raw Kerberos (type 16) tokens alike.

use libgssapi::context::{ClientCtx, CtxFlags, SecurityContext, ServerCtx};
use libgssapi::name::Name;
use libgssapi::oid::{GSS_MECH_KRB5, GSS_MECH_SPNEGO, GSS_NT_KRB5_PRINCIPAL};
use libgssapi::util::{GssIov, GssIovType};

use crate::krb::errors::{Context, Kind, KrbError, explain};
use crate::krb::{Acceptor, Credentials};

/// `GSS_C_DCE_STYLE` (RFC 4757 7.1 / [MS-KILE] 3.2.5.2): a third leg, no
/// token framing on AP-REP, wrap tokens as DCE/RPC places them.
pub const GSS_C_DCE_STYLE: u32 = 0x1000;

/// The context flags a client asks for: mutual authentication, integrity,
/// confidentiality, sequencing and replay detection, DCE style.
fn client_flags() -> CtxFlags {
    CtxFlags::from_bits_retain(
        CtxFlags::GSS_C_MUTUAL_FLAG.bits()
            | CtxFlags::GSS_C_CONF_FLAG.bits()
            | CtxFlags::GSS_C_INTEG_FLAG.bits()
            | CtxFlags::GSS_C_SEQUENCE_FLAG.bits()
            | CtxFlags::GSS_C_REPLAY_FLAG.bits()
            | GSS_C_DCE_STYLE,
    )
}

fn gss_error(e: libgssapi::error::Error, cx: &Context<'_>) -> KrbError {
    explain(e.major.bits(), e.minor, &e.to_string(), cx)
}

/// The client side of an RPC security context with `host/<ca-host>`.
pub struct Initiator {
    ctx: ClientCtx,
    spn: String,
    principal: String,
    source: String,
}

impl std::fmt::Debug for Initiator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Initiator({} to {})", self.principal, self.spn)
    }
}

impl Initiator {
    /// Starts a context with `spn` (`host/ca.corp.example`) and returns the
    /// bind's token. `spnego`: wrap it in SPNEGO (auth type 9) rather than
    /// raw Kerberos (type 16). Blocking (may ask the KDC for a ticket).
    pub fn start(
        creds: &Credentials,
        spn: &str,
        spnego: bool,
    ) -> Result<(Initiator, Vec<u8>), KrbError> {
        let cx = Context {
            client: Some(creds.principal()),
            service: Some(spn),
            source: Some(creds.source()),
        };
        let target = Name::new(spn.as_bytes(), Some(&GSS_NT_KRB5_PRINCIPAL))
            .map_err(|e| gss_error(e, &cx))?;
        let mech = if spnego {
            &GSS_MECH_SPNEGO
        } else {
            &GSS_MECH_KRB5
        };
        let mut ctx = ClientCtx::new(Some(creds.gss()), target, client_flags(), Some(mech));
        let token = ctx
            .step(None, None)
            .map_err(|e| gss_error(e, &cx))?
            .ok_or_else(|| KrbError::new(Kind::Other, format!("no initial token for {spn}")))?;
        Ok((
            Initiator {
                ctx,
                spn: spn.to_string(),
                principal: creds.principal().to_string(),
                source: creds.source().to_string(),
            },
            token.to_vec(),
        ))
    }

    /// Feeds the server's token (from the bind_ack, or SPNEGO's final one
    /// from the alter_context_resp) and returns the next leg, if any.
    pub fn step(&mut self, token: &[u8]) -> Result<Option<Vec<u8>>, KrbError> {
        let cx = Context {
            client: Some(&self.principal),
            service: Some(&self.spn),
            source: Some(&self.source),
        };
        let out = self
            .ctx
            .step(Some(token), None)
            .map_err(|e| gss_error(e, &cx))?;
        Ok(out.map(|b| b.to_vec()).filter(|t| !t.is_empty()))
    }

    pub fn is_complete(&self) -> bool {
        self.ctx.is_complete()
    }

    /// The context must be complete, mutually authenticated and able to
    /// seal before any call is sent.
    pub fn check_ready(&mut self) -> Result<(), KrbError> {
        if !self.ctx.is_complete() {
            return Err(KrbError::new(
                Kind::Other,
                format!(
                    "{}: the security context is not complete after the server's answer",
                    self.spn
                ),
            ));
        }
        let cx = Context {
            client: Some(&self.principal),
            service: Some(&self.spn),
            source: Some(&self.source),
        };
        let flags = self.ctx.flags().map_err(|e| gss_error(e, &cx))?;
        for (flag, what) in [
            (CtxFlags::GSS_C_MUTUAL_FLAG, "mutual authentication"),
            (CtxFlags::GSS_C_CONF_FLAG, "confidentiality"),
        ] {
            if !flags.contains(flag) {
                return Err(KrbError::new(
                    Kind::Other,
                    format!("{}: the security context has no {what}", self.spn),
                ));
            }
        }
        Ok(())
    }

    pub fn seal(&mut self, data: &mut [u8]) -> Result<Vec<u8>, KrbError> {
        seal(&mut self.ctx, data)
    }

    pub fn unseal(&mut self, data: &mut [u8], auth_value: &[u8]) -> Result<(), KrbError> {
        unseal(&mut self.ctx, data, auth_value)
    }

    /// A wrap token without confidentiality (what an integrity-only client
    /// sends; only to show the CA refusing it).
    pub fn seal_integrity(&mut self, data: &mut [u8]) -> Result<Vec<u8>, KrbError> {
        let mut iov = [
            GssIov::new_alloc(GssIovType::Header),
            GssIov::new(GssIovType::Data, data),
        ];
        self.ctx
            .wrap_iov(false, &mut iov)
            .map_err(|e| iov_error("signing the stub", e))?;
        Ok(iov[0].to_vec())
    }
}

/// The server side of an RPC security context.
pub struct AcceptorCtx {
    ctx: ServerCtx,
}

impl std::fmt::Debug for AcceptorCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AcceptorCtx")
    }
}

fn acceptor_cx() -> Context<'static> {
    Context {
        client: Some("the RPC client"),
        service: Some("this CA's host principal"),
        source: Some("the client's token"),
    }
}

impl AcceptorCtx {
    pub fn new(acceptor: &Acceptor) -> AcceptorCtx {
        AcceptorCtx {
            ctx: ServerCtx::new(Some(acceptor.gss())),
        }
    }

    /// One leg: the client's token in, the token to answer with out.
    pub fn step(&mut self, token: &[u8]) -> Result<Option<Vec<u8>>, KrbError> {
        let out = self
            .ctx
            .step(token)
            .map_err(|e| gss_error(e, &acceptor_cx()))?;
        Ok(out.map(|b| b.to_vec()))
    }

    pub fn is_complete(&self) -> bool {
        self.ctx.is_complete()
    }

    /// Whether the client asked for confidentiality (packet privacy needs
    /// it).
    pub fn confidential(&mut self) -> bool {
        self.ctx
            .flags()
            .map(|f| f.contains(CtxFlags::GSS_C_CONF_FLAG))
            .unwrap_or(false)
    }

    /// The authenticated client (`WS01$@CORP.EXAMPLE`).
    pub fn client(&mut self) -> Result<String, KrbError> {
        self.ctx
            .source_name()
            .map(|n| n.to_string())
            .map_err(|e| gss_error(e, &acceptor_cx()))
    }

    pub fn seal(&mut self, data: &mut [u8]) -> Result<Vec<u8>, KrbError> {
        seal(&mut self.ctx, data)
    }

    pub fn unseal(&mut self, data: &mut [u8], auth_value: &[u8]) -> Result<(), KrbError> {
        unseal(&mut self.ctx, data, auth_value)
    }
}

fn iov_error(what: &str, e: libgssapi::error::Error) -> KrbError {
    KrbError::new(Kind::Other, format!("{what}: {}", e.to_string().trim()))
}

/// Encrypts `data` (the stub and its padding, a multiple of 16 bytes) in
/// place and returns the auth_value (token header with the rotated
/// confounder, filler and checksum).
fn seal(ctx: &mut impl SecurityContext, data: &mut [u8]) -> Result<Vec<u8>, KrbError> {
    let mut iov = [
        GssIov::new_alloc(GssIovType::Header),
        GssIov::new(GssIovType::Data, data),
    ];
    ctx.wrap_iov(true, &mut iov)
        .map_err(|e| iov_error("sealing the stub", e))?;
    Ok(iov[0].to_vec())
}

/// Decrypts `data` in place with the `auth_value` of its PDU; a wrong
/// checksum, a replayed or out-of-order sequence number, or a token that
/// is not sealed, is an error.
fn unseal(
    ctx: &mut impl SecurityContext,
    data: &mut [u8],
    auth_value: &[u8],
) -> Result<(), KrbError> {
    let mut header = auth_value.to_vec();
    // A wrap token's flags ([RFC 4121] 4.2.2): bit 1 is Sealed. An
    // integrity-only token is refused here, before GSS-API accepts it.
    if header.len() < 16 || header[0..2] != [0x05, 0x04] || header[2] & 0x02 == 0 {
        return Err(KrbError::new(
            Kind::Other,
            "the stub is not sealed (not an RFC 4121 wrap token with confidentiality)",
        ));
    }
    let mut iov = [
        GssIov::new(GssIovType::Header, &mut header),
        GssIov::new(GssIovType::Data, data),
    ];
    ctx.unwrap_iov(&mut iov)
        .map_err(|e| iov_error("unsealing the stub", e))?;
    Ok(())
}
