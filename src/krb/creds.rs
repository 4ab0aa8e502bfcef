//! Kerberos credentials for the engine and the CA.
//!
//! A machine context takes its keys from a keytab (`/etc/krb5.keytab` as
//! `adcli join` writes it) and keeps the tickets it gets in a cache of its
//! own (a file in the store, 0600): never the system's default cache nor a
//! user's. MIT's `gss_acquire_cred_from` with `client_keytab` and `ccache`
//! gets new tickets from the keytab whenever the cached ones have expired,
//! so renewal needs nothing from us. A user context uses the user's own
//! cache (`KRB5CCNAME`, or the default one of the logged-in user).
//!
//! Before GSS-API sees a keytab, we read it ourselves (`keytab`): a missing,
//! unreadable or foreign file, or one without the principal, is then one
//! clear error naming the file and what it holds.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::Mutex;

use libgssapi::context::{ClientCtx, CtxFlags};
use libgssapi::context::{SecurityContext, ServerCtx};
use libgssapi::credential::Cred;
use libgssapi::name::Name;
use libgssapi::oid::{GSS_MECH_KRB5, GSS_MECH_SPNEGO, GSS_NT_KRB5_PRINCIPAL, Oid};
use libgssapi_sys as sys;

use super::errors::{Context, Kind, KrbError, explain};
use super::keytab::{self, Principal};

/// Where the credentials come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// Keys from `keytab` for `principal` (default: the keytab's computer
    /// account, `NAME$@REALM`); tickets kept in the private cache `ccache`.
    Keytab {
        keytab: PathBuf,
        principal: Option<String>,
        ccache: PathBuf,
    },
    /// An existing credential cache (`FILE:/tmp/krb5cc_1000`, `KEYRING:...`);
    /// `None` is the default one (`KRB5CCNAME`, else krb5.conf's).
    Cache { ccache: Option<String> },
}

impl CredentialSource {
    /// How the source is named in messages.
    pub fn describe(&self) -> String {
        match self {
            CredentialSource::Keytab { keytab, .. } => format!("keytab {}", keytab.display()),
            CredentialSource::Cache { ccache: Some(c) } => format!("credential cache {c}"),
            CredentialSource::Cache { ccache: None } => match std::env::var("KRB5CCNAME") {
                Ok(c) if !c.is_empty() => format!("credential cache {c} (KRB5CCNAME)"),
                _ => "the default credential cache".to_string(),
            },
        }
    }
}

/// Acquired credentials, usable for GSS-API contexts (LDAP SASL GSSAPI, HTTP
/// Negotiate).
#[derive(Clone)]
pub struct Credentials {
    cred: Cred,
    principal: String,
    source: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({} from {})", self.principal, self.source)
    }
}

/// Sets `KRB5_CONFIG` for this process, for a policy that names its own
/// krb5.conf (the lab's). MIT krb5 reads the variable whenever it makes a
/// context, so one process can use one configuration: a second, different
/// one is refused. Call it before any thread that uses Kerberos exists (the
/// command line does so before it starts its runtime).
pub fn use_config(path: &Path) -> Result<(), KrbError> {
    static CHOSEN: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut chosen = CHOSEN.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(current) = chosen.as_ref() {
        if current == path {
            return Ok(());
        }
        return Err(KrbError::new(
            Kind::Configuration,
            format!(
                "this process already uses the Kerberos configuration {}; {} cannot be used \
                 beside it",
                current.display(),
                path.display()
            ),
        ));
    }
    if let Err(e) = std::fs::metadata(path) {
        return Err(KrbError::new(
            Kind::Configuration,
            format!("krb5_conf {}: {e}", path.display()),
        ));
    }
    // SAFETY: the command line calls this before it starts any thread; the
    // test suites that call it do so once, before any Kerberos call.
    unsafe { std::env::set_var("KRB5_CONFIG", path) };
    *chosen = Some(path.to_path_buf());
    Ok(())
}

impl Credentials {
    /// Acquires credentials from `source`. Blocking (reads files).
    pub fn acquire(source: &CredentialSource) -> Result<Credentials, KrbError> {
        let described = source.describe();
        match source {
            CredentialSource::Keytab {
                keytab,
                principal,
                ccache,
            } => {
                let principal = keytab_principal(keytab, principal.as_deref())?;
                let name = principal.to_string();
                prepare_private_cache(ccache)?;
                let store = [
                    ("client_keytab", format!("FILE:{}", keytab.display())),
                    ("ccache", format!("FILE:{}", ccache.display())),
                ];
                let cred = acquire_from(Some(&name), &store, sys::GSS_C_INITIATE).map_err(
                    |(major, minor, detail)| {
                        explain(
                            major,
                            minor,
                            &detail,
                            &Context {
                                client: Some(&name),
                                source: Some(&described),
                                ..Context::default()
                            },
                        )
                    },
                )?;
                Ok(Credentials {
                    cred,
                    principal: name,
                    source: described,
                })
            }
            CredentialSource::Cache { ccache } => {
                let store: Vec<(&str, String)> = match ccache {
                    Some(c) => vec![("ccache", c.clone())],
                    None => Vec::new(),
                };
                let cred = acquire_from(None, &store, sys::GSS_C_INITIATE).map_err(
                    |(major, minor, detail)| {
                        explain(
                            major,
                            minor,
                            &detail,
                            &Context {
                                client: Some("the user"),
                                source: Some(&described),
                                ..Context::default()
                            },
                        )
                    },
                )?;
                let principal = cred
                    .name()
                    .ok()
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "the user".into());
                Ok(Credentials {
                    cred,
                    principal,
                    source: described,
                })
            }
        }
    }

    /// Acquires credentials and a ticket for `service/host` (see
    /// [`Credentials::check_service`]). With a keytab, tickets of the private
    /// cache that cannot be used (expired, or not valid yet because the
    /// clock was set back) are thrown away and new ones are had from the
    /// keytab, once: the cache is ours, nothing else is lost. Blocking.
    pub fn acquire_for(
        source: &CredentialSource,
        service: &str,
        host: &str,
    ) -> Result<Credentials, KrbError> {
        let creds = Credentials::acquire(source)?;
        match (creds.check_service(service, host), source) {
            (Ok(()), _) => Ok(creds),
            (Err(e), CredentialSource::Keytab { ccache, .. })
                if matches!(e.kind, Kind::ClockSkew | Kind::NoTickets) && ccache.exists() =>
            {
                tracing::info!("{e}; getting new tickets from the keytab");
                std::fs::remove_file(ccache).map_err(|io| {
                    KrbError::new(
                        e.kind,
                        format!(
                            "{e} (and the private cache {} cannot be removed: {io})",
                            ccache.display()
                        ),
                    )
                })?;
                let creds = Credentials::acquire(source)?;
                creds.check_service(service, host)?;
                Ok(creds)
            }
            (Err(e), _) => Err(e),
        }
    }

    /// The client principal (`WS01$@CORP.EXAMPLE`, `alice@CORP.EXAMPLE`).
    pub fn principal(&self) -> &str {
        &self.principal
    }

    /// `keytab /etc/krb5.keytab`, `credential cache FILE:/tmp/krb5cc_1000`.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The GSS-API credential handle.
    pub fn gss(&self) -> Cred {
        self.cred.clone()
    }

    /// Makes sure a ticket for `service/host` can be had, getting it (and a
    /// TGT from the keytab when the cached one has expired) now, so that a
    /// failure is one clear error before any protocol runs: clock skew, an
    /// unreachable KDC, an unknown service principal, a refused key. The
    /// tickets stay in the cache for the protocol's own context. Blocking.
    pub fn check_service(&self, service: &str, host: &str) -> Result<(), KrbError> {
        let spn = format!("{service}/{host}");
        let cx = Context {
            client: Some(&self.principal),
            service: Some(&spn),
            source: Some(&self.source),
        };
        let fail =
            |e: libgssapi::error::Error| explain(e.major.bits(), e.minor, &e.to_string(), &cx);
        let target = Name::new(spn.as_bytes(), Some(&GSS_NT_KRB5_PRINCIPAL))
            .and_then(|n| n.canonicalize(Some(&GSS_MECH_KRB5)))
            .map_err(fail)?;
        let mut ctx = ClientCtx::new(
            Some(self.cred.clone()),
            target,
            CtxFlags::GSS_C_MUTUAL_FLAG,
            Some(&GSS_MECH_KRB5),
        );
        ctx.step(None, None).map_err(fail)?;
        Ok(())
    }
}

/// The realm of the principal a source authenticates as: from the keytab
/// (read, not used), or from the credential cache's default principal.
/// Blocking.
pub fn realm_of(source: &CredentialSource) -> Result<String, KrbError> {
    match source {
        CredentialSource::Keytab {
            keytab, principal, ..
        } => Ok(keytab_principal(keytab, principal.as_deref())?.realm),
        CredentialSource::Cache { .. } => {
            let creds = Credentials::acquire(source)?;
            Principal::parse(creds.principal(), None)
                .map(|p| p.realm)
                .map_err(|e| KrbError::new(Kind::Other, e))
        }
    }
}

/// The client side of one HTTP Negotiate exchange ([RFC 4559] 4.1, 4.2): SPNEGO
/// ([RFC 4178]) with the Kerberos mechanism and mutual authentication, so
/// that the server's final token proves it holds the service's key.
pub struct Negotiation {
    ctx: ClientCtx,
    spn: String,
    principal: String,
    source: String,
}

impl std::fmt::Debug for Negotiation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Negotiation({} to {})", self.principal, self.spn)
    }
}

impl Credentials {
    /// Starts a Negotiate exchange with `service/host` (`HTTP/ca.corp.example`:
    /// the host exactly as written in the URL, a krb5 principal name, never
    /// canonicalised through DNS). Returns the context and the first token,
    /// for `Authorization: Negotiate <base64>`. Blocking (may ask the KDC for
    /// a service ticket).
    pub fn negotiate(&self, service: &str, host: &str) -> Result<(Negotiation, Vec<u8>), KrbError> {
        let spn = format!("{service}/{host}");
        let cx = Context {
            client: Some(&self.principal),
            service: Some(&spn),
            source: Some(&self.source),
        };
        let fail =
            |e: libgssapi::error::Error| explain(e.major.bits(), e.minor, &e.to_string(), &cx);
        let target = Name::new(spn.as_bytes(), Some(&GSS_NT_KRB5_PRINCIPAL)).map_err(fail)?;
        let mut ctx = ClientCtx::new(
            Some(self.cred.clone()),
            target,
            CtxFlags::GSS_C_MUTUAL_FLAG,
            Some(&GSS_MECH_SPNEGO),
        );
        let token = ctx.step(None, None).map_err(fail)?.ok_or_else(|| {
            KrbError::new(
                Kind::Other,
                format!("GSS-API gave no initial token for {spn}"),
            )
        })?;
        Ok((
            Negotiation {
                ctx,
                spn,
                principal: self.principal.clone(),
                source: self.source.clone(),
            },
            token.to_vec(),
        ))
    }
}

impl Negotiation {
    /// The service principal the exchange is with.
    pub fn spn(&self) -> &str {
        &self.spn
    }

    /// Checks the server's final token (`WWW-Authenticate: Negotiate
    /// <base64>`): the context must complete with it, mutually authenticated
    /// (the final leg a 2xx answer carries, [RFC 4559] 4.1: without it, the
    /// client cannot tell the answer came from the service). Blocking (no
    /// network).
    pub fn finish(mut self, token: Option<&[u8]>) -> Result<(), KrbError> {
        let unproven = |what: String| {
            KrbError::new(
                Kind::Other,
                format!(
                    "{} did not prove its identity (Kerberos mutual authentication): {what}",
                    self.spn
                ),
            )
        };
        let Some(token) = token else {
            return Err(unproven(
                "the answer carries no WWW-Authenticate: Negotiate token".into(),
            ));
        };
        let cx = Context {
            client: Some(&self.principal),
            service: Some(&self.spn),
            source: Some(&self.source),
        };
        match self.ctx.step(Some(token), None) {
            Ok(None) if self.ctx.is_complete() => {}
            Ok(_) => {
                return Err(unproven(
                    "the server's token does not complete the exchange".into(),
                ));
            }
            Err(e) => {
                let why = explain(e.major.bits(), e.minor, &e.to_string(), &cx);
                return Err(unproven(format!("its token is refused: {why}")));
            }
        }
        let flags = self.ctx.flags().map_err(|e| unproven(e.to_string()))?;
        if !flags.contains(CtxFlags::GSS_C_MUTUAL_FLAG) {
            return Err(unproven("the context is not mutually authenticated".into()));
        }
        Ok(())
    }
}

/// The acceptor side of HTTP Negotiate: the service's keys from its own
/// keytab, authenticators remembered in a private replay cache, so that a
/// token seen once is refused the second time (the replay cache of RFC 4120
/// 3.2.3).
pub struct Acceptor {
    cred: Cred,
    keytab: PathBuf,
}

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Acceptor(keytab {})", self.keytab.display())
    }
}

/// A client the acceptor authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// `WS01$@CORP.EXAMPLE`, `alice@CORP.EXAMPLE`.
    pub client: String,
    /// The token for the client's mutual authentication (`WWW-Authenticate:
    /// Negotiate <base64>` on the answer).
    pub reply: Option<Vec<u8>>,
}

impl Acceptor {
    /// Reads `keytab` (which must hold `service` when one is named, e.g.
    /// `HTTP/ca.corp.example`, in any realm) and acquires accepting
    /// credentials over it with the replay cache file `rcache` (its folder
    /// is created 0700). Blocking.
    pub fn from_keytab(
        keytab: &Path,
        service: Option<&str>,
        rcache: &Path,
    ) -> Result<Acceptor, KrbError> {
        let bad = |what: String| {
            KrbError::new(Kind::Keytab, format!("keytab {}: {what}", keytab.display()))
        };
        let bytes = std::fs::read(keytab).map_err(|e| bad(format!("cannot be read: {e}")))?;
        let entries = keytab::parse(&bytes).map_err(bad)?;
        if let Some(service) = service {
            let wanted: Vec<&str> = service.split('/').collect();
            if !entries.iter().any(|e| e.principal.components == wanted) {
                return Err(KrbError::new(
                    Kind::PrincipalNotInKeytab,
                    format!(
                        "keytab {} holds no key for {service}; it holds {}",
                        keytab.display(),
                        keytab::list(&entries)
                    ),
                ));
            }
        }
        prepare_private_cache(rcache)?;
        let store = [
            ("keytab", format!("FILE:{}", keytab.display())),
            ("rcache", format!("file2:{}", rcache.display())),
        ];
        let described = format!("keytab {}", keytab.display());
        let cred = acquire_from(None, &store, sys::GSS_C_ACCEPT).map_err(|(major, minor, d)| {
            explain(
                major,
                minor,
                &d,
                &Context {
                    client: service,
                    source: Some(&described),
                    ..Context::default()
                },
            )
        })?;
        Ok(Acceptor {
            cred,
            keytab: keytab.to_path_buf(),
        })
    }

    /// The accepting credential handle, for contexts of more than one
    /// round (DCE/RPC's three legs, `rpc::gss`).
    pub fn gss(&self) -> Cred {
        self.cred.clone()
    }

    /// Accepts a client's SPNEGO token (one round: Kerberos needs no more).
    /// A bad, expired or replayed authenticator is an error. Blocking (no
    /// network; the replay cache is a file).
    pub fn accept(&self, token: &[u8]) -> Result<Accepted, KrbError> {
        let mut ctx = ServerCtx::new(Some(self.cred.clone()));
        let fail = |e: libgssapi::error::Error| {
            explain(
                e.major.bits(),
                e.minor,
                &e.to_string(),
                &Context {
                    client: Some("the client"),
                    service: Some("this service"),
                    source: Some("the client's token"),
                },
            )
        };
        let reply = ctx.step(token).map_err(|e| {
            let explained = fail(e);
            match spnego_kind(&e.to_string()) {
                Some((kind, what)) => {
                    KrbError::new(kind, format!("{what} [GSS-API: {}]", e.to_string().trim()))
                }
                None => explained,
            }
        })?;
        if !ctx.is_complete() {
            return Err(KrbError::new(
                Kind::Other,
                "the token asks for a second round (a mechanism other than Kerberos): only \
                 Kerberos is accepted",
            ));
        }
        let client = ctx.source_name().map_err(fail)?.to_string();
        Ok(Accepted {
            client,
            reply: reply.map(|b| b.to_vec()),
        })
    }
}

/// The kind of an acceptor failure under SPNEGO, from the krb5 message in
/// GSS-API's text: MIT's mechanism glue replaces the minor status of a
/// mechanism reached through SPNEGO by a number of its own (GSS-API leaves
/// minor codes to each implementation), so the krb5 code [`explain`]
/// reads is gone; the krb5 message (krb5_err.et) stays in the text.
fn spnego_kind(text: &str) -> Option<(Kind, &'static str)> {
    const KNOWN: [(&str, Kind, &str); 4] = [
        (
            "Request is a replay",
            Kind::Replay,
            "the authenticator was already used (a replay)",
        ),
        (
            "Clock skew too great",
            Kind::ClockSkew,
            "the authenticator's time is outside the clock skew Kerberos allows",
        ),
        ("Ticket expired", Kind::NoTickets, "the ticket has expired"),
        (
            "Ticket not yet valid",
            Kind::ClockSkew,
            "the ticket is not valid yet (the clocks differ)",
        ),
    ];
    KNOWN
        .iter()
        .find(|(message, _, _)| text.contains(message))
        .map(|&(_, kind, what)| (kind, what))
}

/// The principal a keytab is used for, after checking the keytab holds it.
fn keytab_principal(path: &Path, wanted: Option<&str>) -> Result<Principal, KrbError> {
    let bad =
        |what: String| KrbError::new(Kind::Keytab, format!("keytab {}: {what}", path.display()));
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(bad(
                "does not exist: join the domain (realm join, adcli join) or set `keytab` in the \
                 policy"
                    .into(),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(bad(format!(
                "cannot be read by this user (uid {}): run the machine context as root",
                nix::unistd::getuid()
            )));
        }
        Err(e) => return Err(bad(format!("cannot be read: {e}"))),
    };
    let entries = keytab::parse(&bytes).map_err(bad)?;
    let principal = match wanted {
        None => keytab::computer_principal(&entries).map_err(|e| {
            KrbError::new(
                Kind::PrincipalNotInKeytab,
                format!("keytab {}: {e}", path.display()),
            )
        })?,
        Some(text) => {
            let realm = entries.first().map(|e| e.principal.realm.as_str());
            Principal::parse(text, realm)
                .map_err(|e| KrbError::new(Kind::Configuration, format!("principal: {e}")))?
        }
    };
    if !entries.iter().any(|e| e.principal == principal) {
        let near = entries.iter().find(|e| {
            e.principal
                .to_string()
                .eq_ignore_ascii_case(&principal.to_string())
        });
        let hint = match near {
            Some(e) => format!(
                " (principal names are case-sensitive: it has {})",
                e.principal
            ),
            None => String::new(),
        };
        return Err(KrbError::new(
            Kind::PrincipalNotInKeytab,
            format!(
                "keytab {} holds no key for {principal}{hint}; it holds {}",
                path.display(),
                keytab::list(&entries)
            ),
        ));
    }
    Ok(principal)
}

/// The private ticket cache: its folder must exist (the store's root, 0700);
/// MIT creates the file itself with mode 0600. A cache that is not a regular
/// file (a link planted there) is refused, never followed.
fn prepare_private_cache(path: &Path) -> Result<(), KrbError> {
    let fail = |what: String| {
        KrbError::new(
            Kind::Configuration,
            format!("private ticket cache {}: {what}", path.display()),
        )
    };
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
        && !parent.exists()
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| fail(format!("cannot create its folder: {e}")))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_file() => Err(fail(
            "is not a regular file (a link or something else): remove it".into(),
        )),
        _ => Ok(()),
    }
}

/// `gss_acquire_cred_from` ([RFC 2744] 5.2 with MIT's credential store
/// extension) for initiating or accepting (`usage`), with `name` (a krb5
/// principal) or the store's default one (for an acceptor: any key of the
/// keytab). Errors are (major, minor, GSS-API's text).
fn acquire_from(
    name: Option<&str>,
    store: &[(&str, String)],
    usage: u32,
) -> Result<Cred, (u32, u32, String)> {
    let text_error = |what: &str| (0u32, 0u32, what.to_string());
    let keys: Vec<CString> = store
        .iter()
        .map(|(k, _)| CString::new(*k).map_err(|_| text_error("a NUL in a key")))
        .collect::<Result<_, _>>()?;
    let values: Vec<CString> = store
        .iter()
        .map(|(_, v)| CString::new(v.as_str()).map_err(|_| text_error("a NUL in a path")))
        .collect::<Result<_, _>>()?;
    let mut elements: Vec<sys::gss_key_value_element_desc> = keys
        .iter()
        .zip(&values)
        .map(|(k, v)| sys::gss_key_value_element_desc {
            key: k.as_ptr(),
            value: v.as_ptr(),
        })
        .collect();
    let set = sys::gss_key_value_set_desc {
        count: elements.len() as u32,
        elements: elements.as_mut_ptr(),
    };
    let mut minor: u32 = 0;
    let mut gss_name: sys::gss_name_t = ptr::null_mut();
    if let Some(name) = name {
        let mut buffer = sys::gss_buffer_desc {
            length: name.len(),
            value: name.as_ptr() as *mut std::ffi::c_void,
        };
        // SAFETY: the buffer points into `name`, alive for the call; the OID
        // is a static `Oid`, a transparent wrapper of `gss_OID_desc`.
        let major = unsafe {
            sys::gss_import_name(
                &mut minor,
                &mut buffer,
                &GSS_NT_KRB5_PRINCIPAL as *const Oid as sys::gss_OID,
                &mut gss_name,
            )
        };
        if major != 0 {
            return Err((major, minor, format!("cannot import the name {name:?}")));
        }
    }
    let mut cred: sys::gss_cred_id_t = ptr::null_mut();
    // SAFETY: every pointer is valid for the call; `set` borrows `elements`,
    // `keys` and `values`, which outlive it. The name is released below.
    let major = unsafe {
        sys::gss_acquire_cred_from(
            &mut minor,
            gss_name,
            sys::_GSS_C_INDEFINITE,
            ptr::null_mut(),
            usage as sys::gss_cred_usage_t,
            &set,
            &mut cred,
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    if !gss_name.is_null() {
        let mut ignored = 0;
        // SAFETY: `gss_name` came from gss_import_name and is released once.
        unsafe { sys::gss_release_name(&mut ignored, &mut gss_name) };
    }
    if major != 0 {
        let detail = libgssapi::error::Error {
            major: libgssapi::error::MajorFlags::from_bits_retain(major),
            minor,
        }
        .to_string();
        return Err((major, minor, detail));
    }
    Ok(Cred::from(cred))
}

#[cfg(test)]
mod spnego_tests {
    use super::*;

    #[test]
    fn acceptor_failures_under_spnego_are_told_by_their_krb5_message() {
        let cases = [
            (
                "Unspecified GSS failure.  Minor code may provide more information (Request is a replay)",
                Some(Kind::Replay),
            ),
            ("... (Clock skew too great)", Some(Kind::ClockSkew)),
            ("... (Ticket expired)", Some(Kind::NoTickets)),
            ("Invalid token was supplied (Unknown error)", None),
        ];
        for (text, kind) in cases {
            assert_eq!(spnego_kind(text).map(|(k, _)| k), kind, "{text}");
        }
    }
}
