//! The running CA: its signing key, its database, its view of the directory
//! and its clock, and the operations on them: answering WSTEP requests,
//! approving, denying and revoking, and publishing CRLs.
//!
//! The decision itself is [`super::policy::decide`], a pure function; this
//! module gathers its inputs (who is asking, what the directory says, what the
//! database remembers about a certificate being renewed) and carries out the
//! outcome.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rcgen::{Issuer, KeyPair};
use time::OffsetDateTime;

use super::commit::GroupCommit;
use super::config::CaConfig;
use super::crl::{CrlInput, build_crl};
use super::db::{
    Authentication, Database, DbError, DbErrorKind, Disposition, NewRequest, Outcome,
    RequestRecord, Submitted,
};
use super::init::{random_serial, read_file};
use super::issue::{IssuerUrls, SignLater, build_certificate};
use super::policy::{CaFacts, Decision, Denial, IssuanceRequest, RenewalFacts, decide, hresult};
use super::pool::Pool;
use super::profile::CertificateProfile;
use super::publish::{PublishError, aia_ldap_url, cdp_ldap_url, publish_crl};
use crate::clock::Clock;
use crate::directory::entry::Entry;
use crate::directory::server_marker::ServerMarkerSource;
use crate::directory::{
    Directory, DirectoryError, DirectorySnapshot, NamingContexts, TemplateEntry,
};
use crate::model::{Account, EnrollmentService, Sid};
use crate::pki::cms::{RequestToken, certs_only, parse_request_token};
use crate::pki::keys::PrivateKey;
use crate::pki::template_ext::serial_hex;
use crate::pki::{CertificateInfo, PkiError};
use crate::policy::PolicyError;
use crate::store::fsutil::Fs;
use crate::wstep::{
    Disposition as WireDisposition, FaultCode, UsernameToken, WstepFault, WstepResponse,
};

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("{0}")]
    State(String),
    #[error(transparent)]
    Config(#[from] PolicyError),
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    Database(#[from] DbError),
    #[error(transparent)]
    Pki(#[from] PkiError),
}

/// HRESULTs of failures that are not issuance decisions.
pub mod failure {
    /// E_INVALIDARG: the request could not be read.
    pub const INVALID_ARGUMENT: u32 = 0x8007_0057;
    /// E_ACCESSDENIED: no or wrong credentials.
    pub const ACCESS_DENIED: u32 = 0x8007_0005;
    /// NTE_BAD_SIGNATURE: a request whose signature does not verify.
    pub const BAD_SIGNATURE: u32 = 0x8009_0006;
    /// E_FAIL: the CA could not do its part (directory down, disk full...).
    pub const INTERNAL: u32 = 0x8000_4005;
}

/// The CA's key and certificate.
pub struct Signer {
    key_pair: KeyPair,
    der: Vec<u8>,
    pem: String,
    info: CertificateInfo,
}

impl Signer {
    pub fn load(config: &CaConfig) -> Result<Signer, CaError> {
        let key = PrivateKey::from_pem(&read_file(&config.key_path(), "CA key")?)?;
        let cert = read_file(&config.certificate_path(), "CA certificate")?;
        let der = crate::store::pem::certificate_der(&cert)
            .map_err(|e| CaError::State(format!("{}: {e}", config.certificate_path().display())))?;
        let info = CertificateInfo::from_der(&der)?;
        let public = crate::store::pem::key_matches(&info.public_key, key.pkcs8_der());
        if !matches!(public, Ok(true)) {
            return Err(CaError::State(format!(
                "{} does not belong to {}",
                config.key_path().display(),
                config.certificate_path().display()
            )));
        }
        Ok(Signer {
            key_pair: key.rcgen_key_pair()?,
            pem: crate::store::pem::encode("CERTIFICATE", &der),
            der,
            info,
        })
    }

    /// The rcgen issuer of CRLs.
    pub fn issuer(&self) -> Result<Issuer<'_, &KeyPair>, CaError> {
        super::issue::ca_issuer(&self.der, &self.key_pair).map_err(CaError::State)
    }

    /// The rcgen issuer of certificates, which [`build_certificate`] signs
    /// once itself.
    pub fn certificate_issuer(&self) -> Result<Issuer<'_, SignLater<&KeyPair>>, CaError> {
        super::issue::ca_issuer(&self.der, SignLater(&self.key_pair)).map_err(CaError::State)
    }

    pub fn certificate_der(&self) -> &[u8] {
        &self.der
    }

    pub fn certificate_pem(&self) -> &str {
        &self.pem
    }

    pub fn info(&self) -> &CertificateInfo {
        &self.info
    }
}

/// Who sends a WSTEP request, as the endpoint authenticated it.
#[derive(Debug, Clone, Copy)]
pub enum Caller<'a> {
    /// The UsernamePassword endpoint: the request's UsernameToken, if any
    /// (without one, only a renewal signed by a certificate this CA issued
    /// is accepted).
    Token(Option<&'a UsernameToken>),
    /// The Kerberos endpoint: the client principal HTTP Negotiate
    /// authenticated (`WS01$@CORP.EXAMPLE`).
    Kerberos(&'a str),
    /// ICertPassage over DCE/RPC ([MS-ICPR]): the client principal the
    /// Kerberos security context at packet privacy authenticated.
    Rpc(&'a str),
    /// The NDES role (`ca::ndes`) submitting for a SCEP client, as NDES
    /// submits under its service account: the account's `sAMAccountName`.
    /// The SCEP client itself is authenticated by its challenge.
    Ra(&'a str),
}

/// What a WSTEP exchange ends with.
#[derive(Debug)]
pub enum Answer {
    Response(WstepResponse),
    Fault(WstepFault),
}

/// The CA at work. Shared by the server's connections.
pub struct Authority {
    config: CaConfig,
    signer: Signer,
    db: Mutex<Database>,
    /// The writes of a request's issuance (submission, certificate), which
    /// concurrent requests commit together; `db` keeps the reads and the
    /// administrators' writes.
    commits: GroupCommit,
    clock: Arc<dyn Clock>,
    /// Connections bound as the CA's service account (read templates and
    /// accounts), one per request at a time.
    service: Pool,
    /// Connections used only to check requesters' passwords by binding.
    login: Pool,
    naming: Mutex<Option<NamingContexts>>,
    /// The last snapshot read in full, with the markers that tell it is
    /// still current: while they stand still, a request reads only its
    /// account and takes templates, CAs and CRLs from here.
    pks: Mutex<Option<CachedPks>>,
    /// Held by the one request reading Public Key Services in full: the
    /// requests that found `pks` stale meanwhile wait for its result
    /// instead of each reading (and decoding) every template themselves, as
    /// a whole wave of requests would after a start or a template change.
    refreshing: tokio::sync::Mutex<()>,
    /// How many times Public Key Services was read in full.
    full_reads: AtomicU64,
    /// Where the directory shows its database-wide change value, found on
    /// the first request.
    server_marker_source: Mutex<Option<ServerMarkerSource>>,
    /// Names of the groups seen in requesters' tokens, for messages only
    /// (a group's SID never changes; a stale name misleads no decision):
    /// a request whose groups are all named here costs no group search.
    /// Behind an `Arc` so that a request takes the map without copying it.
    group_names: Mutex<Arc<BTreeMap<Sid, String>>>,
}

/// Public Key Services as the CA last read it in full, and what tells that
/// it is still current.
struct CachedPks {
    /// The directory's database-wide change value
    /// ([`crate::directory::server_marker`]) last seen while `marker` stood
    /// still, when the directory shows one: unchanged, nothing at all
    /// changed, and `marker` need not be read.
    server: Option<String>,
    /// The change marker of Public Key Services the snapshot was read at.
    marker: String,
    snapshot: Arc<DirectorySnapshot>,
}

/// What one request sees of the directory: Public Key Services as the CA
/// last read it, shared by every request made at the same change marker,
/// and the requester's account, read for this request.
pub(super) struct RequestView {
    /// The snapshot Public Key Services was read with. Its `account` and
    /// `sid_names` are those of whichever request read it: never this
    /// request's, so they are not reachable from here. (The names of this
    /// request's SIDs go to [`Authority::group_names`] only.)
    pks: Arc<DirectorySnapshot>,
    pub account: Account,
}

impl RequestView {
    /// The certificate templates of Public Key Services.
    pub fn templates(&self) -> &[TemplateEntry] {
        &self.pks.templates
    }

    /// The enrollment services of Public Key Services.
    pub fn services(&self) -> &[EnrollmentService] {
        &self.pks.services
    }
}

/// A new request as [`Database::submit_decided`] records it, owned: it is
/// recorded by the committing thread, perhaps more than once (a serial drawn
/// again).
struct Submission {
    /// The account's sAMAccountName.
    requester: String,
    requester_sid: String,
    /// The CertificateTemplate attribute of the request, if any.
    template: Option<String>,
    request: Vec<u8>,
    /// The serial of the certificate a renewal replaces.
    renewal_of: Option<String>,
    authentication: Option<Authentication>,
    /// When the request came, which is when it was decided.
    at: OffsetDateTime,
}

impl Submission {
    fn new_request(&self) -> NewRequest<'_> {
        NewRequest {
            requester: &self.requester,
            requester_sid: Some(&self.requester_sid),
            template: self.template.as_deref(),
            request: &self.request,
            renewal_of: self.renewal_of.as_deref(),
            authentication: self.authentication,
        }
    }
}

/// The most group names [`Authority::group_names`] holds; past it, the
/// names are forgotten and read again.
const GROUP_NAMES: usize = 4096;

/// Idle directory connections kept per pool: at least the number of
/// requests the CA works on at once, or every burst opens connections (a
/// TLS handshake and a bind on both sides) only to close them after. With
/// 8, a wave of 16 hosts at a time opened a new connection for about one
/// request in four. A directory keeps an idle connection for little (AD
/// drops it after MaxConnIdleTime, 15 minutes; a broken pooled connection
/// is replaced on its next use).
const IDLE_CONNECTIONS: usize = 32;

impl Authority {
    /// Opens the CA's state. The directory is connected on first use, so the
    /// admin commands that need none (requests, approve, deny, revoke) work
    /// while the directory is down.
    pub fn open(config: CaConfig, clock: Arc<dyn Clock>) -> Result<Authority, CaError> {
        let signer = Signer::load(&config)?;
        let db = Database::open(&config.database)?;
        let commits = GroupCommit::open(&config.database)?;
        Ok(Authority {
            config,
            signer,
            db: Mutex::new(db),
            commits,
            clock,
            service: Pool::new(IDLE_CONNECTIONS),
            login: Pool::new(IDLE_CONNECTIONS),
            naming: Mutex::new(None),
            pks: Mutex::new(None),
            refreshing: tokio::sync::Mutex::new(()),
            full_reads: AtomicU64::new(0),
            server_marker_source: Mutex::new(None),
            group_names: Mutex::new(Arc::new(BTreeMap::new())),
        })
    }

    pub fn config(&self) -> &CaConfig {
        &self.config
    }

    /// How many times this CA has read Public Key Services in full (the
    /// other requests took it from the cache): a figure for diagnostics.
    pub fn full_directory_reads(&self) -> u64 {
        self.full_reads.load(Ordering::Relaxed)
    }

    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// The database; a poisoned lock only means another request panicked
    /// mid-way, and SQLite's transactions kept the file consistent.
    pub fn db(&self) -> MutexGuard<'_, Database> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current CRL as last written.
    pub fn current_crl(&self) -> Result<Vec<u8>, CaError> {
        read_file(&self.config.crl_path(), "CRL")
    }

    /// A service account connection: an idle one, or a new one when
    /// `fresh` or none is idle.
    async fn service_connection(&self, fresh: bool) -> Result<Directory, DirectoryError> {
        if !fresh && let Some(dir) = self.service.take() {
            return Ok(dir);
        }
        Directory::connect(&self.config.directory).await
    }

    /// Reads the directory as the service account, reconnecting once if the
    /// pooled connection broke.
    pub(super) async fn snapshot(&self, account: &str) -> Result<RequestView, DirectoryError> {
        self.snapshot_with(account, None).await
    }

    /// [`Self::snapshot`] with the account's entry when the login read it.
    async fn snapshot_with(
        &self,
        account: &str,
        mut entry: Option<Entry>,
    ) -> Result<RequestView, DirectoryError> {
        for attempt in 0..2 {
            let mut dir = self.service_connection(attempt == 1).await?;
            // A second attempt reads the account again rather than keep a
            // copy of the entry for a retry that rarely happens.
            match self.snapshot_on(&mut dir, account, entry.take()).await {
                Ok(s) => {
                    self.service.give(dir);
                    return Ok(s);
                }
                Err(e @ DirectoryError::Content { .. }) => {
                    self.service.give(dir);
                    return Err(e);
                }
                Err(e) if attempt == 1 || !is_broken_connection(&e) => return Err(e),
                Err(_) => {}
            }
        }
        unreachable!("the loop returns on its second attempt")
    }

    /// A view for `account`: Public Key Services from the cache while it is
    /// current, shared with every other request read at the same markers
    /// rather than copied (a copy costs as much CPU as there are templates,
    /// security descriptors and CRLs), and the account always read anew.
    ///
    /// Current means: the directory's database-wide change value stands
    /// still (one base search of one entry; nothing changed anywhere), or
    /// else the change marker of Public Key Services does (one search of
    /// three small attributes of each PKI object, a cost that grows with the
    /// template count). Each marker is read before what it vouches for, so a
    /// change made meanwhile shows as a moved marker on the next request.
    /// When neither vouches, one request at a time reads Public Key Services
    /// in full; the others wait for that read rather than repeat it.
    async fn snapshot_on(
        &self,
        dir: &mut Directory,
        account: &str,
        entry: Option<Entry>,
    ) -> Result<RequestView, DirectoryError> {
        let naming = match self.naming.lock().ok().and_then(|n| n.clone()) {
            Some(n) => n,
            None => {
                let n = dir.naming_contexts().await?;
                if let Ok(mut cached) = self.naming.lock() {
                    *cached = Some(n.clone());
                }
                n
            }
        };
        let pks_dn = naming.public_key_services();
        let server = self.server_marker(dir, &pks_dn).await?;
        let cached = |current: &dyn Fn(&CachedPks) -> bool| {
            self.pks.lock().ok().and_then(|c| {
                c.as_ref()
                    .filter(|c| current(c))
                    .map(|c| c.snapshot.clone())
            })
        };
        let mut pks = cached(&|c| server.is_some() && c.server == server);
        let mut marker = None;
        if pks.is_none() {
            let m = dir.change_marker(&pks_dn).await?;
            pks = cached(&|c| c.marker == m);
            if pks.is_some()
                && let Ok(mut c) = self.pks.lock()
                && let Some(c) = c.as_mut().filter(|c| c.marker == m)
            {
                c.server = server.clone();
            }
            marker = Some(m);
        }
        let mut refreshing = None;
        if pks.is_none() {
            // Another request may be reading it in full right now: wait for
            // it, then take what it read if it read it at the markers this
            // request saw (a change after those shows as a moved marker).
            refreshing = Some(self.refreshing.lock().await);
            pks = cached(&|c| {
                (server.is_some() && c.server == server) || marker.as_ref() == Some(&c.marker)
            });
        }
        if let Some(pks) = pks {
            drop(refreshing);
            let known = self.group_names();
            let (account, sid_names) = dir.account_view(account, &naming, &known, entry).await?;
            self.remember_group_names(&sid_names);
            return Ok(RequestView { pks, account });
        }
        self.full_reads.fetch_add(1, Ordering::Relaxed);
        let snapshot = dir.snapshot(account).await?;
        self.remember_group_names(&snapshot.sid_names);
        if let Ok(mut n) = self.naming.lock() {
            *n = Some(snapshot.naming.clone());
        }
        let view = RequestView {
            account: snapshot.account.clone(),
            pks: Arc::new(snapshot),
        };
        if let (Some(marker), Ok(mut c)) = (marker, self.pks.lock()) {
            *c = Some(CachedPks {
                server,
                marker,
                snapshot: view.pks.clone(),
            });
        }
        Ok(view)
    }

    /// The directory's database-wide change value now, if it shows one
    /// (where, is found on the first request). A value that cannot be read
    /// is no value: the change marker then decides.
    async fn server_marker(
        &self,
        dir: &mut Directory,
        pks_dn: &str,
    ) -> Result<Option<String>, DirectoryError> {
        let known = self
            .server_marker_source
            .lock()
            .ok()
            .and_then(|s| s.clone());
        let source = match known {
            Some(s) => s,
            None => {
                let s = match dir.server_marker_source(pks_dn).await {
                    Err(DirectoryError::Content { what, .. }) => {
                        tracing::debug!("no database-wide change value: {what}");
                        ServerMarkerSource::Unavailable
                    }
                    found => found?,
                };
                if let Ok(mut known) = self.server_marker_source.lock() {
                    *known = Some(s.clone());
                }
                s
            }
        };
        match dir.server_marker(&source).await {
            Err(DirectoryError::Content { what, .. }) => {
                tracing::debug!("the database-wide change value cannot be read: {what}");
                Ok(None)
            }
            read => read,
        }
    }

    /// The group names known so far, shared: copied only when a request
    /// brings a new one ([`Self::remember_group_names`]).
    fn group_names(&self) -> Arc<BTreeMap<Sid, String>> {
        self.group_names
            .lock()
            .map(|n| n.clone())
            .unwrap_or_default()
    }

    fn remember_group_names(&self, names: &BTreeMap<Sid, String>) {
        if let Ok(mut known) = self.group_names.lock() {
            let new = names
                .iter()
                .filter(|(sid, name)| known.get(*sid) != Some(*name))
                .count();
            if new == 0 {
                return;
            }
            let known = Arc::make_mut(&mut known);
            if known.len() + new > GROUP_NAMES {
                known.clear();
            }
            for (sid, name) in names {
                known.insert(sid.clone(), name.clone());
            }
        }
    }

    /// Checks a UsernameToken and returns the DN of its account. The name
    /// may be in any AD form (a DN, `DOMAIN\name`, a UPN, the implicit UPN
    /// `sAMAccountName@<DNS domain>`, a `sAMAccountName`): the CA resolves
    /// it with its own service account ([`Self::resolve_login`]), then
    /// checks the password by a simple bind as the resolved DN. A wrong
    /// password, an unknown, ambiguous or unresolvable name are the same
    /// [`LoginFailure::Refused`]; a directory that cannot be asked is
    /// [`LoginFailure::Unavailable`].
    pub(super) async fn check_password(
        &self,
        token: &UsernameToken,
    ) -> Result<String, LoginFailure> {
        self.check_password_reading(token).await.map(|(dn, _)| dn)
    }

    /// [`Self::check_password`], also returning the account's entry when
    /// resolving the name read it whole (a DN), for the snapshot to reuse.
    async fn check_password_reading(
        &self,
        token: &UsernameToken,
    ) -> Result<(String, Option<Entry>), LoginFailure> {
        // LDAP takes a simple bind without a password as anonymous (RFC 4513
        // 5.1.2): refused here, without asking the directory.
        if token.username.is_empty() || token.password.is_empty() {
            return Err(LoginFailure::Refused);
        }
        let (dn, entry) = self.resolve_login_reading(&token.username).await?;
        self.bind_as(&dn, &token.password).await?;
        Ok((dn, entry))
    }

    /// The DN of the account of a Kerberos client principal: `NAME@REALM`
    /// is the account whose sAMAccountName is `NAME` in the domain whose DNS
    /// name is `REALM` (AD's realm is its domain's DNS name in capitals),
    /// found by the service account, with no password
    /// bind. A principal of another realm, or a service principal
    /// (`host/name`), is [`LoginFailure::Refused`].
    pub(super) async fn resolve_principal(&self, principal: &str) -> Result<String, LoginFailure> {
        let naming = self.naming().await.map_err(|e| match e {
            CaError::Directory(e) => LoginFailure::Unavailable(e),
            other => LoginFailure::Unavailable(DirectoryError::Setup {
                url: self.config.directory.url.clone(),
                what: other.to_string(),
            }),
        })?;
        let domain = crate::directory::connection::dns_domain_of(&naming.default);
        let name = match principal_account(principal, &domain) {
            Ok(name) => name,
            Err(why) => {
                tracing::info!(principal, domain = %domain, "Kerberos client refused: {why}");
                return Err(LoginFailure::Refused);
            }
        };
        self.resolve_login(name).await
    }

    /// The DN of the one account a UsernameToken's name designates, found
    /// by the service account (a requester cannot search before it has
    /// logged in, and the directory hides accounts from anonymous
    /// searches). No match or several are [`LoginFailure::Refused`], and the
    /// CA's log (never the fault) says which forms were tried.
    async fn resolve_login(&self, name: &str) -> Result<String, LoginFailure> {
        self.resolve_login_reading(name).await.map(|(dn, _)| dn)
    }

    /// [`Self::resolve_login`] with the account's entry when the name was a
    /// DN (see [`crate::directory::connection::ResolvedAccount::entry`]).
    async fn resolve_login_reading(
        &self,
        name: &str,
    ) -> Result<(String, Option<Entry>), LoginFailure> {
        let naming = self.naming().await.map_err(|e| match e {
            CaError::Directory(e) => LoginFailure::Unavailable(e),
            other => LoginFailure::Unavailable(DirectoryError::Setup {
                url: self.config.directory.url.clone(),
                what: other.to_string(),
            }),
        })?;
        for attempt in 0..2 {
            let mut dir = self
                .service_connection(attempt == 1)
                .await
                .map_err(LoginFailure::Unavailable)?;
            let found = dir.resolve_account(name, &naming).await;
            if found.is_ok() || matches!(found, Err(DirectoryError::Content { .. })) {
                self.service.give(dir);
            }
            match found {
                Ok(found) => return Ok((found.dn, found.entry)),
                Err(DirectoryError::Content { what, .. }) => {
                    tracing::info!(
                        name,
                        why = %what,
                        "login refused: the user name designates no single account"
                    );
                    return Err(LoginFailure::Refused);
                }
                Err(e) if attempt == 1 || !is_broken_connection(&e) => {
                    return Err(LoginFailure::Unavailable(e));
                }
                Err(_) => {}
            }
        }
        unreachable!("the loop returns on its second attempt")
    }

    /// Checks `password` by a simple bind as `dn` on the pooled login
    /// connection (never the service account's).
    async fn bind_as(&self, dn: &str, password: &str) -> Result<(), LoginFailure> {
        if let Some(mut dir) = self.login.take() {
            match dir.rebind(dn, password).await {
                Ok(()) => {
                    self.login.give(dir);
                    return Ok(());
                }
                Err(e) => {
                    let failure = LoginFailure::of(e);
                    if matches!(failure, LoginFailure::Refused) {
                        self.login.give(dir);
                        return Err(failure);
                    }
                    // A pooled connection the server closed is retried once
                    // on a new one; a directory that did not answer in time
                    // is not waited for a second time.
                    if !failure.is_broken_connection() {
                        return Err(failure);
                    }
                }
            }
        }
        let dir = Directory::connect_as(&self.config.directory, dn, password)
            .await
            .map_err(LoginFailure::of)?;
        self.login.give(dir);
        Ok(())
    }

    async fn naming(&self) -> Result<NamingContexts, CaError> {
        if let Some(n) = self.naming.lock().ok().and_then(|n| n.clone()) {
            return Ok(n);
        }
        let mut dir = self.service_connection(false).await?;
        let naming = dir.naming_contexts().await?;
        self.service.give(dir);
        if let Ok(mut n) = self.naming.lock() {
            *n = Some(naming.clone());
        }
        Ok(naming)
    }

    /// URLs written into issued certificates: HTTP first (what clients try
    /// first), then LDAP.
    async fn issuer_urls(&self) -> Result<IssuerUrls, CaError> {
        let naming = self.naming().await?;
        let c = &self.config;
        Ok(IssuerUrls {
            crl: vec![
                c.crl_url(),
                cdp_ldap_url(&naming, &c.name, &c.dns_host_name),
            ],
            aia: vec![c.certificate_url(), aia_ldap_url(&naming, &c.name)],
        })
    }

    /// Answers an `Issue` request: a PKCS#10 (new enrollment) or a CMS
    /// SignedData around one (renewal signed with the old key).
    pub async fn issue(
        &self,
        token: &[u8],
        credentials: Option<&UsernameToken>,
        context: &[(String, String)],
    ) -> Answer {
        self.issue_as(token, Caller::Token(credentials), context)
            .await
    }

    /// [`Authority::issue`] for a caller as its endpoint authenticated it.
    pub async fn issue_as(
        &self,
        token: &[u8],
        caller: Caller<'_>,
        context: &[(String, String)],
    ) -> Answer {
        let now = self.now();
        let parsed = parse_request_token(token);
        let renewed = |parsed: &Result<RequestToken, PkiError>| match parsed {
            Ok(RequestToken::Renewal {
                signer_certificate, ..
            }) => self.record_of(signer_certificate),
            _ => None,
        };

        // Who is asking: the password's or the Kerberos principal's account,
        // or for a renewal without either, the account the renewed
        // certificate was issued to.
        let mut login_entry = None;
        let (requester, renewal_record, authentication) = match (&parsed, caller) {
            (_, Caller::Token(Some(creds))) => {
                let dn = match self.check_password_reading(creds).await {
                    Ok((dn, entry)) => {
                        login_entry = entry;
                        dn
                    }
                    Err(e) => return e.answer(),
                };
                (dn, renewed(&parsed), Some(Authentication::Password))
            }
            (_, Caller::Kerberos(principal)) => {
                let dn = match self.resolve_principal(principal).await {
                    Ok(dn) => dn,
                    Err(e) => return e.answer(),
                };
                (dn, renewed(&parsed), Some(Authentication::Kerberos))
            }
            (_, Caller::Rpc(principal)) => {
                let dn = match self.resolve_principal(principal).await {
                    Ok(dn) => dn,
                    Err(e) => return e.answer(),
                };
                (dn, renewed(&parsed), Some(Authentication::Rpc))
            }
            // Recorded without an authentication kind: the NDES tables link
            // the request to its SCEP transaction and challenge.
            (_, Caller::Ra(account)) => match self.resolve_login(account).await {
                Ok(dn) => (dn, None, None),
                Err(e) => return e.answer(),
            },
            (
                Ok(RequestToken::Renewal {
                    signer_certificate, ..
                }),
                Caller::Token(None),
            ) => match self.record_of(&signer_certificate[..]) {
                Some(r) => (r.requester.clone(), Some(r), Some(Authentication::Renewal)),
                None => {
                    return fault(
                        failure::ACCESS_DENIED,
                        "a renewal without credentials must be signed by a certificate this CA issued"
                            .into(),
                    );
                }
            },
            (_, Caller::Token(None)) => {
                return fault(failure::ACCESS_DENIED, NO_CREDENTIALS.into());
            }
        };

        let snapshot = match self.snapshot_with(&requester, login_entry).await {
            Ok(s) => s,
            Err(e) => return internal(DIRECTORY_UNAVAILABLE, &e),
        };
        let account = &snapshot.account;

        let template_hint = context
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("CertificateTemplate"))
            .map(|(_, v)| v.as_str());
        // The same bytes again (the client may have crashed after sending):
        // answer what was answered, to the same account only. The record of
        // the outcome checks this again, in the write.
        match self.db().by_request(token) {
            Ok(Some(record)) => {
                if !record
                    .requester
                    .eq_ignore_ascii_case(&account.sam_account_name)
                {
                    return another_account();
                }
                if record.disposition != Disposition::Pending || record.profile.is_some() {
                    return self.answer_from_record(&record);
                }
                // A row created but never decided (the CA stopped in
                // between): decided now, the outcome recorded onto it.
            }
            Ok(None) => {}
            Err(e) => return internal(DATABASE_UNAVAILABLE, &e),
        }
        let submission = Arc::new(Submission {
            requester: account.sam_account_name.clone(),
            requester_sid: account.sid.to_string(),
            template: template_hint.map(str::to_string),
            request: token.to_vec(),
            renewal_of: renewal_record.as_ref().and_then(|r| r.serial.clone()),
            authentication,
            at: now,
        });

        let denied = |hresult: u32, reason: String| Decision::Deny(Denial { hresult, reason });
        let (csr, renewal) = match parsed {
            Err(e) => {
                let decision = denied(
                    unreadable_request_code(&e),
                    format!("the request cannot be read: {e}"),
                );
                return self.carry_out(submission, decision, &[], None).await;
            }
            Ok(RequestToken::Pkcs10(csr)) => (csr, None),
            Ok(RequestToken::Renewal {
                csr,
                signer_certificate,
            }) => {
                let old = match CertificateInfo::from_der(&signer_certificate) {
                    Ok(o) => o,
                    Err(e) => {
                        let decision = denied(
                            failure::INVALID_ARGUMENT,
                            format!("the signing certificate cannot be read: {e}"),
                        );
                        return self.carry_out(submission, decision, &[], None).await;
                    }
                };
                let record = renewal_record
                    .as_ref()
                    .filter(|r| r.certificate.as_deref() == Some(&signer_certificate[..]));
                let facts = RenewalFacts {
                    old,
                    signature_valid: true,
                    issued_by_this_ca: record.is_some(),
                    revoked: record.is_some_and(|r| r.revoked_at.is_some()),
                    original_requester_sid: record.and_then(|r| r.requester_sid.clone()),
                    previously_approved: record.is_some_and(|r| r.approved),
                };
                (csr, Some(facts))
            }
        };
        let published = snapshot
            .services()
            .iter()
            .find(|s| s.cn.eq_ignore_ascii_case(&self.config.name))
            .map(|s| &s.templates[..])
            .unwrap_or_default();
        let decision = decide(
            &IssuanceRequest {
                csr: &csr,
                renewal: renewal.as_ref(),
                template_hint,
            },
            account,
            snapshot.templates(),
            &CaFacts {
                name: &self.config.name,
                published,
                certificate_not_after: self.signer.info.not_after,
            },
            now,
        );
        let publish_to = match &decision {
            Decision::Issue(p) if profile_publishes_to_ds(&snapshot, p) => Some(&account.dn[..]),
            _ => None,
        };
        self.carry_out(submission, decision, &csr.public_key, publish_to)
            .await
    }

    /// Records a new request with its decision in one write, signing first
    /// when it is issued: one durable commit per request (shared with the
    /// requests committed in the same group), and the answer, the
    /// certificate above all, only once that commit is done. A request that
    /// turns out to have been decided meanwhile (the same bytes sent twice
    /// at once) is answered from its record; the certificate signed here is
    /// then never sent. A certificate issued here is published to
    /// `publish_to`'s `userCertificate` when given (PUBLISH_TO_DS).
    async fn carry_out(
        &self,
        submission: Arc<Submission>,
        decision: Decision,
        public_key: &[u8],
        publish_to: Option<&str>,
    ) -> Answer {
        let at = submission.at;
        match decision {
            Decision::Deny(d) => {
                let reason = d.reason.clone();
                let recorded = self
                    .commits
                    .write(move |db| {
                        let outcome = Outcome::Denied {
                            hresult: d.hresult,
                            reason: &d.reason,
                        };
                        db.submit_decided(submission.new_request(), outcome, at)
                    })
                    .await;
                self.answer_recorded(recorded, |id| fault_for_id(id, d.hresult, reason))
            }
            Decision::Pend { profile, reason } => {
                let json = match serde_json::to_string(&profile) {
                    Ok(j) => j,
                    Err(e) => return internal(DATABASE_UNAVAILABLE, &e),
                };
                let message = reason.clone();
                let recorded = self
                    .commits
                    .write(move |db| {
                        let outcome = Outcome::Pending {
                            profile_json: &json,
                            reason: &reason,
                        };
                        db.submit_decided(submission.new_request(), outcome, at)
                    })
                    .await;
                self.answer_recorded(recorded, |id| {
                    Answer::Response(pending_response(id, &message))
                })
            }
            Decision::Issue(profile) => {
                let urls = match self.issuer_urls().await {
                    Ok(u) => u,
                    Err(e) => return internal(CANNOT_ISSUE, &e),
                };
                let not_after = profile.not_after;
                let signed = self
                    .sign_with_urls(&profile, public_key, &urls, move |db, der, serial| {
                        let outcome = Outcome::Issued {
                            certificate: der,
                            serial,
                            not_after,
                        };
                        db.submit_decided(submission.new_request(), outcome, at)
                    })
                    .await;
                match signed {
                    Ok((cert, Submitted::Recorded { id })) => {
                        if let Some(dn) = publish_to {
                            self.publish_user_certificate(dn, &cert).await;
                        }
                        self.issued_response(id, cert)
                    }
                    Ok((_, Submitted::Earlier(record))) => self.answer_from_record(&record),
                    Err(CaError::Database(DbError {
                        kind: DbErrorKind::RequesterMismatch { .. },
                        ..
                    })) => another_account(),
                    Err(e) => internal(CANNOT_ISSUE, &e),
                }
            }
        }
    }

    /// The answer to a request once [`Database::submit_decided`] recorded
    /// it: `recorded` names its ID.
    fn answer_recorded(
        &self,
        recorded: Result<Submitted, DbError>,
        recorded_as: impl FnOnce(u64) -> Answer,
    ) -> Answer {
        match recorded {
            Ok(Submitted::Recorded { id }) => recorded_as(id),
            Ok(Submitted::Earlier(record)) => self.answer_from_record(&record),
            Err(DbError {
                kind: DbErrorKind::RequesterMismatch { .. },
                ..
            }) => another_account(),
            Err(e) => internal(DATABASE_UNAVAILABLE, &e),
        }
    }

    /// Answers `QueryTokenStatus`: the state of a pending request. A request
    /// of another account gets the same answer as one that does not exist,
    /// so request ids cannot be probed.
    pub async fn query(&self, request_id: u64, credentials: Option<&UsernameToken>) -> Answer {
        self.query_as(request_id, Caller::Token(credentials)).await
    }

    /// [`Authority::query`] for a caller as its endpoint authenticated it.
    pub async fn query_as(&self, request_id: u64, caller: Caller<'_>) -> Answer {
        let found = match caller {
            Caller::Token(None) => {
                return fault(failure::ACCESS_DENIED, NO_CREDENTIALS.into());
            }
            Caller::Token(Some(creds)) => self.check_password(creds).await,
            Caller::Kerberos(principal) | Caller::Rpc(principal) => {
                self.resolve_principal(principal).await
            }
            Caller::Ra(account) => self.resolve_login(account).await,
        };
        let dn = match found {
            Ok(dn) => dn,
            Err(e) => return e.answer(),
        };
        let asker = match self.snapshot(&dn).await {
            Ok(s) => s.account.sam_account_name,
            Err(e) => return internal(DIRECTORY_UNAVAILABLE, &e),
        };
        let record = match self.db().get(request_id) {
            Ok(r) => r,
            Err(e) => return internal(DATABASE_UNAVAILABLE, &e),
        };
        match record {
            Some(r) if r.requester.eq_ignore_ascii_case(&asker) => self.answer_from_record(&r),
            _ => fault(
                failure::ACCESS_DENIED,
                format!("{asker} has no request {request_id} at this CA"),
            ),
        }
    }

    /// The answer the stored request `id` gives now (the NDES role's
    /// CertPoll), `None` when there is no such request.
    pub fn answer_of_request(&self, id: u64) -> Result<Option<Answer>, CaError> {
        Ok(self.db().get(id)?.map(|r| self.answer_from_record(&r)))
    }

    /// The account a user name and password log in as (a simple bind, as
    /// the UsernamePassword endpoint checks them): for the NDES admin page.
    pub async fn login_account(&self, user: &str, password: &str) -> Result<Account, String> {
        let token = UsernameToken {
            username: user.to_string(),
            password: password.to_string(),
        };
        let dn = self
            .check_password(&token)
            .await
            .map_err(|e| e.describe())?;
        self.snapshot(&dn)
            .await
            .map(|s| s.account)
            .map_err(|_| DIRECTORY_UNAVAILABLE.to_string())
    }

    /// The account of a Kerberos client principal (HTTP Negotiate).
    pub async fn principal_account_of(&self, principal: &str) -> Result<Account, String> {
        let dn = self
            .resolve_principal(principal)
            .await
            .map_err(|e| e.describe())?;
        self.snapshot(&dn)
            .await
            .map(|s| s.account)
            .map_err(|_| DIRECTORY_UNAVAILABLE.to_string())
    }

    /// The answer a stored record gives.
    fn answer_from_record(&self, record: &RequestRecord) -> Answer {
        match (&record.disposition, &record.certificate) {
            (Disposition::Issued | Disposition::Revoked, Some(cert)) => {
                self.issued_response(record.id, cert.clone())
            }
            (Disposition::Pending, _) => {
                Answer::Response(pending_response(record.id, &record.reason))
            }
            _ => fault_for(
                record,
                record.hresult.unwrap_or(hresult::ADMIN_DENIED_REQUEST),
                record.reason.clone(),
            ),
        }
    }

    /// A request whose sender could not be authenticated (a bad, expired or
    /// replayed Kerberos authenticator): recorded as a denied request of
    /// [`super::db::UNAUTHENTICATED`], and answered E_ACCESSDENIED with the
    /// reason (what was wrong with the authenticator, never a key or a
    /// ticket).
    pub fn deny_unauthenticated(
        &self,
        template: Option<&str>,
        request: &[u8],
        authentication: Authentication,
        reason: String,
    ) -> Answer {
        let recorded = self.db().record_unauthenticated(
            template,
            request,
            authentication,
            failure::ACCESS_DENIED,
            &reason,
            self.now(),
        );
        match recorded {
            Ok(record) => fault_for(&record, failure::ACCESS_DENIED, reason),
            Err(e) => {
                tracing::warn!(error = %e, "cannot record a refused authentication");
                fault(failure::ACCESS_DENIED, reason)
            }
        }
    }

    fn issued_response(&self, id: u64, certificate: Vec<u8>) -> Answer {
        let chain = certs_only(&[certificate.clone(), self.signer.der.clone()]).ok();
        Answer::Response(WstepResponse {
            relates_to: None,
            request_id: id,
            disposition: WireDisposition::Issued,
            message: "Issued".into(),
            certificate: Some(certificate),
            chain_pkcs7: chain,
        })
    }

    /// The record of a certificate this CA issued, found by its serial.
    fn record_of(&self, certificate: &[u8]) -> Option<RequestRecord> {
        let info = CertificateInfo::from_der(certificate).ok()?;
        if !info.issuer.eq_ignore_ascii_case(&self.signer.info.subject) {
            return None;
        }
        self.db().by_serial(&info.serial).ok().flatten()
    }

    /// Signs outside any lock (concurrent requests sign in parallel), then
    /// records the certificate with `record` (given the certificate and its
    /// serial) in the next group commit: the certificate is returned, and so
    /// sent, only once its record is durable. A serial already taken (a
    /// random 127-bit draw: in practice never) is drawn again and the
    /// certificate signed anew.
    async fn sign_with_urls<T: Send + 'static>(
        &self,
        profile: &CertificateProfile,
        public_key: &[u8],
        urls: &IssuerUrls,
        record: impl Fn(&Database, &[u8], &str) -> Result<T, DbError> + Clone + Send + 'static,
    ) -> Result<(Vec<u8>, T), CaError> {
        const DRAWS: usize = 4;
        let issuer = self.signer.certificate_issuer()?;
        for _ in 0..DRAWS {
            let serial = random_serial()?;
            let cert = build_certificate(profile, public_key, &serial, &issuer, urls)
                .map_err(|e| CaError::State(e.to_string()))?;
            let der = cert.clone();
            let record = record.clone();
            let recorded = self
                .commits
                .write(move |db| record(db, &der, &serial_hex(&serial)))
                .await;
            match recorded {
                Ok(out) => return Ok((cert, out)),
                Err(DbError {
                    kind: DbErrorKind::SerialInUse { .. },
                    ..
                }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(CaError::State(format!(
            "no free serial in {DRAWS} random draws"
        )))
    }

    /// PUBLISH_TO_DS: the certificate is added to the account's
    /// `userCertificate`. A failure is logged, not fatal: the certificate is
    /// issued either way, as on AD CS.
    async fn publish_user_certificate(&self, dn: &str, cert: &[u8]) {
        let Some(mut dir) = self.service.take() else {
            tracing::warn!(
                account = dn,
                "cannot publish the certificate to the directory: no connection"
            );
            return;
        };
        match super::publish::add_user_certificate(&mut dir, dn, cert).await {
            Ok(_) => self.service.give(dir),
            Err(e) => {
                tracing::warn!(account = dn, error = %e, "cannot publish the certificate to the directory")
            }
        }
    }

    /// `ca approve`: issues a pending request with the profile decided when it
    /// was submitted, dated from now.
    pub async fn approve(&self, id: u64) -> Result<RequestRecord, CaError> {
        let record = self.pending(id)?;
        let profile: CertificateProfile =
            serde_json::from_str(record.profile.as_deref().unwrap_or_default()).map_err(|e| {
                CaError::State(format!(
                    "request {id}: its stored profile cannot be read: {e}"
                ))
            })?;
        let profile = profile.redated(self.now(), self.signer.info.not_after);
        let public_key = match parse_request_token(&record.request)? {
            RequestToken::Pkcs10(csr) | RequestToken::Renewal { csr, .. } => csr.public_key,
        };
        let urls = self.issuer_urls().await?;
        let (not_after, now) = (profile.not_after, self.now());
        self.sign_with_urls(&profile, &public_key, &urls, move |db, der, serial| {
            db.record_issued(id, der, serial, not_after, true, now)
        })
        .await?;
        self.db()
            .get(id)?
            .ok_or_else(|| CaError::State(format!("request {id} vanished")))
    }

    /// `ca deny`: refuses a pending request.
    pub fn deny(&self, id: u64, reason: &str) -> Result<RequestRecord, CaError> {
        self.pending(id)?;
        self.db().record_denied(
            id,
            hresult::ADMIN_DENIED_REQUEST,
            &format!("denied by an administrator: {reason}"),
            self.now(),
        )?;
        self.db()
            .get(id)?
            .ok_or_else(|| CaError::State(format!("request {id} vanished")))
    }

    fn pending(&self, id: u64) -> Result<RequestRecord, CaError> {
        let record = self
            .db()
            .get(id)?
            .ok_or_else(|| CaError::State(format!("there is no request {id}")))?;
        if record.disposition != Disposition::Pending || record.profile.is_none() {
            return Err(CaError::State(format!(
                "request {id} is not pending (it is {})",
                record.disposition.name()
            )));
        }
        Ok(record)
    }

    /// `ca revoke`.
    pub fn revoke(&self, serial: &str, reason: u8) -> Result<RequestRecord, CaError> {
        Ok(self.db().revoke(serial, reason, self.now())?)
    }

    /// `ca crl`: signs a fresh CRL, writes it where the HTTP server serves it
    /// and publishes it to the CDP object.
    pub async fn publish_crl(&self) -> Result<Vec<u8>, CaError> {
        let now = self.now();
        let crl = {
            let db = self.db();
            let revoked = db.revoked()?;
            // Above the CRL published last, whatever the database counted.
            let published = self
                .current_crl()
                .ok()
                .and_then(|crl| super::crl::crl_number(&crl))
                .unwrap_or(0);
            let number = db.next_crl_number_above(published)?;
            build_crl(
                &CrlInput {
                    number,
                    this_update: now,
                    next_update: now + self.config.crl_validity,
                    revoked: &revoked,
                },
                &self.signer.issuer()?,
            )
            .map_err(|e| CaError::State(format!("cannot sign the CRL: {e}")))?
        };
        Fs::default()
            .replace(&self.config.crl_path(), &crl, 0o644)
            .map_err(|e| CaError::State(format!("CRL: {e}")))?;
        let naming = self.naming().await?;
        let mut dir = self.service_connection(false).await?;
        publish_crl(
            &mut dir,
            &naming,
            &self.config.name,
            &self.config.dns_host_name,
            &crl,
        )
        .await?;
        self.service.give(dir);
        Ok(crl)
    }
}

/// The sAMAccountName a Kerberos client principal stands for in the domain
/// whose DNS name is `domain`: `NAME@REALM` with REALM that DNS name (AD's
/// realm is its domain's DNS name in capitals; compared
/// without regard to case) and NAME one component (a user or computer
/// account, not a service principal `host/name`) that is no other name form.
pub fn principal_account<'p>(principal: &'p str, domain: &str) -> Result<&'p str, &'static str> {
    let Some((name, realm)) = principal.rsplit_once('@') else {
        return Err("the principal has no realm");
    };
    if domain.is_empty() || !realm.eq_ignore_ascii_case(domain) {
        return Err("a principal of another realm than this domain's");
    }
    if name.is_empty() || name.contains(['/', '\\', '=', '@', ',']) {
        return Err("not a user or computer principal (NAME@REALM)");
    }
    Ok(name)
}

/// A connection the server or the network closed, as opposed to one that
/// timed out: only the first is worth a second attempt at once.
fn is_broken_connection(e: &DirectoryError) -> bool {
    let text = e.to_string().to_ascii_lowercase();
    if text.contains("timed out") || text.contains("timeout") {
        return false;
    }
    ["connection", "broken pipe", "reset", "closed", "eof"]
        .iter()
        .any(|w| text.contains(w))
}

/// The fault text of a refused UsernameToken: one text for a wrong password,
/// an unknown account and a name the directory cannot resolve.
pub const LOGIN_REFUSED: &str = "authentication failed: the user name or password is not valid";

/// The fault text of a request without credentials that needs them.
const NO_CREDENTIALS: &str = "this endpoint needs a WS-Security UsernameToken";

/// What an internal failure tells the client: the part that failed, never
/// the directory's URL, bind DN or result codes, nor file paths (those are
/// logged at the CA).
const DIRECTORY_UNAVAILABLE: &str =
    "the CA cannot reach its directory now; the request was not decided, send it again later";
const DATABASE_UNAVAILABLE: &str =
    "the CA cannot use its request database now; send the request again later";
const CANNOT_ISSUE: &str =
    "the CA could not sign the certificate now; send the request again later";

/// An E_FAIL fault: the CA's own failure. InvalidRequest is false (the
/// request is fine and may be sent again); the detail goes to the CA's log.
fn internal(what: &'static str, detail: &dyn std::fmt::Display) -> Answer {
    tracing::warn!(error = %detail, "{what}");
    Answer::Fault(WstepFault {
        relates_to: None,
        hresult: failure::INTERNAL,
        message: what.into(),
        request_id: None,
        invalid_request: false,
        code: FaultCode::Receiver,
        binary_response: None,
    })
}

/// Why a UsernameToken was not accepted.
#[derive(Debug)]
pub(super) enum LoginFailure {
    /// The directory refused the name and password.
    Refused,
    /// The directory could not be asked (down, hung, busy, misconfigured).
    Unavailable(DirectoryError),
}

/// LDAP result codes of a bind that mean "not these credentials" (RFC 4511
/// 4.1.9): noSuchObject, invalidDNSyntax, inappropriateAuthentication,
/// invalidCredentials, insufficientAccessRights, unwillingToPerform (what
/// OpenLDAP answers to an unauthenticated bind). Every other code, and a
/// bind that got no result, is the directory's failure.
const REFUSING_RESULT_CODES: [u32; 6] = [32, 34, 48, 49, 50, 53];

impl LoginFailure {
    fn of(e: DirectoryError) -> LoginFailure {
        match &e {
            DirectoryError::Bind { cause, .. } if bind_refused(cause) => LoginFailure::Refused,
            _ => LoginFailure::Unavailable(e),
        }
    }

    /// What a person is told: the refusal in the endpoints' words, never
    /// the directory's own error.
    fn describe(&self) -> String {
        match self {
            LoginFailure::Refused => LOGIN_REFUSED.to_string(),
            LoginFailure::Unavailable(_) => DIRECTORY_UNAVAILABLE.to_string(),
        }
    }

    fn is_broken_connection(&self) -> bool {
        matches!(self, LoginFailure::Unavailable(e) if is_broken_connection(e))
    }

    fn answer(self) -> Answer {
        match self {
            LoginFailure::Refused => fault(failure::ACCESS_DENIED, LOGIN_REFUSED.into()),
            LoginFailure::Unavailable(e) => internal(DIRECTORY_UNAVAILABLE, &e),
        }
    }
}

/// Whether the cause of a failed bind is a refusal of the credentials: an
/// LDAP result in [`REFUSING_RESULT_CODES`] or an empty password.
fn bind_refused(cause: &str) -> bool {
    if let Some(rest) = cause.strip_prefix("result code ") {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        return digits
            .parse::<u32>()
            .is_ok_and(|rc| REFUSING_RESULT_CODES.contains(&rc));
    }
    cause.starts_with("an empty user name or password")
}

/// The HRESULT of a request token that cannot be read: a signature that does
/// not verify is NTE_BAD_SIGNATURE; an RSA key too small to verify at all
/// (the only [`PkiError::Key`] a request parse returns) is the key-length
/// denial the policy would give it; anything else E_INVALIDARG.
fn unreadable_request_code(e: &PkiError) -> u32 {
    match e {
        PkiError::Signature(_) => failure::BAD_SIGNATURE,
        PkiError::Key(_) => hresult::KEY_LENGTH,
        // The CMS layer wraps the verifier's error in its own variant.
        PkiError::Cms(m) if m.starts_with("signature:") => failure::BAD_SIGNATURE,
        _ => failure::INVALID_ARGUMENT,
    }
}

fn profile_publishes_to_ds(snapshot: &RequestView, profile: &CertificateProfile) -> bool {
    snapshot.templates().iter().any(|t| {
        t.template.cn.eq_ignore_ascii_case(&profile.template_cn)
            && t.template
                .enrollment_flags
                .contains(crate::model::EnrollmentFlags::PUBLISH_TO_DS)
    })
}

fn pending_response(id: u64, reason: &str) -> WstepResponse {
    WstepResponse {
        relates_to: None,
        request_id: id,
        disposition: WireDisposition::Pending,
        message: if reason.is_empty() {
            "Taken Under Submission".into()
        } else {
            format!("Taken Under Submission: {reason}")
        },
        certificate: None,
        chain_pkcs7: None,
    }
}

fn fault(hresult: u32, message: String) -> Answer {
    Answer::Fault(WstepFault {
        relates_to: None,
        hresult,
        message,
        request_id: None,
        invalid_request: true,
        code: FaultCode::Receiver,
        binary_response: None,
    })
}

fn fault_for(record: &RequestRecord, hresult: u32, message: String) -> Answer {
    fault_for_id(record.id, hresult, message)
}

fn fault_for_id(id: u64, hresult: u32, message: String) -> Answer {
    Answer::Fault(WstepFault {
        relates_to: None,
        hresult,
        message,
        request_id: Some(id),
        invalid_request: true,
        code: FaultCode::Receiver,
        binary_response: None,
    })
}

/// The answer to bytes another account submitted before: no request ID,
/// nothing of that request's outcome.
fn another_account() -> Answer {
    fault(
        hresult::ENROLL_DENIED,
        "this request was submitted by another account".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::pki::keys::KeyAlgorithm;
    use std::path::Path;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);

    /// A CA with its key, certificate and database in `dir` and a
    /// directory it never reaches: what happens once a request is decided
    /// needs none (the naming contexts, for the certificates' URLs, are
    /// set as if read).
    fn offline_authority(dir: &Path) -> Authority {
        let text = format!(
            r#"
name = "corp-CA"
dns_host_name = "ca.corp.example"
listen = "127.0.0.1:8443"
http_listen = "127.0.0.1:8080"
state_dir = "{}"
key_algorithm = "p384"
templates = ["WorkstationAuth"]

[directory]
url = "ldap://127.0.0.1:9"
bind = "simple"
user = "CN=ca-svc,CN=Users,DC=corp,DC=example"
password_file = "ca-svc.secret"
"#,
            dir.join("ca").display()
        );
        let config = CaConfig::parse(&text, &dir.join("ca.toml")).unwrap();
        std::fs::create_dir_all(&config.state_dir).unwrap();
        super::super::init::create_key(&config, "DC=corp,DC=example", NOW).unwrap();
        let ca = Authority::open(config, Arc::new(ManualClock::new(NOW))).unwrap();
        *ca.naming.lock().unwrap() = Some(NamingContexts {
            default: "DC=corp,DC=example".into(),
            configuration: "CN=Configuration,DC=corp,DC=example".into(),
        });
        ca
    }

    /// The durable commits in the database's write-ahead log: frames whose
    /// header holds the database's size after the commit (non-zero only in
    /// a transaction's last frame; SQLite file format, 4.1 "WAL File
    /// Format"), counted while their salt is the log's current one.
    fn wal_commits(database: &Path) -> usize {
        let mut wal = database.as_os_str().to_owned();
        wal.push("-wal");
        let Ok(wal) = std::fs::read(wal) else {
            return 0;
        };
        if wal.len() < 32 {
            return 0;
        }
        let word = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let page_size = word(&wal[8..12]);
        let salt = &wal[16..24];
        let (mut commits, mut at) = (0, 32);
        while at + 24 + page_size <= wal.len() && &wal[at + 8..at + 16] == salt {
            if word(&wal[at + 4..at + 8]) != 0 {
                commits += 1;
            }
            at += 24 + page_size;
        }
        commits
    }

    fn submission(request: &[u8]) -> Arc<Submission> {
        Arc::new(Submission {
            requester: "WS01$".into(),
            requester_sid: "S-1-5-21-1000-2000-3000-1201".into(),
            template: Some("WorkstationAuth".into()),
            request: request.to_vec(),
            renewal_of: None,
            authentication: Some(Authentication::Password),
            at: NOW,
        })
    }

    fn profile() -> CertificateProfile {
        CertificateProfile {
            template_cn: "WorkstationAuth".into(),
            subject: vec![("CN".into(), "ws01.corp.example".into())],
            subject_alt_names: Vec::new(),
            not_before: NOW,
            not_after: NOW + time::Duration::days(365),
            key_usage: Some(vec![0xa0, 0x00]),
            extended_key_usage: vec!["1.3.6.1.5.5.7.3.2".into()],
            application_policies: Vec::new(),
            issuance_policies: Vec::new(),
            critical_extensions: Vec::new(),
            template_information: None,
            template_name: Some("WorkstationAuth".into()),
            requester_sid: None,
            basic_constraints_end_entity: false,
            include_revocation_info: true,
            ocsp_nocheck: false,
        }
    }

    fn issued_certificate(answer: &Answer) -> (u64, Vec<u8>) {
        match answer {
            Answer::Response(WstepResponse {
                disposition: WireDisposition::Issued,
                request_id,
                certificate: Some(cert),
                ..
            }) => (*request_id, cert.clone()),
            other => panic!("expected a certificate, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_request_issued_at_once_is_one_durable_commit() {
        let dir = tempfile::tempdir().unwrap();
        let ca = offline_authority(dir.path());
        let database = ca.config.database.clone();
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();

        let before = wal_commits(&database);
        let answer = ca
            .carry_out(
                submission(b"pkcs10 of ws01"),
                Decision::Issue(profile()),
                &key.public_key_der(),
                None,
            )
            .await;
        assert_eq!(
            wal_commits(&database) - before,
            1,
            "the request and its certificate are one commit"
        );
        let (id, cert) = issued_certificate(&answer);
        let record = ca.db().get(id).unwrap().expect("the request is recorded");
        assert_eq!(record.disposition, Disposition::Issued);
        assert_eq!(record.certificate.as_deref(), Some(&cert[..]));
        assert_eq!(record.requester, "WS01$");
        assert_eq!(record.template.as_deref(), Some("WorkstationAuth"));
        assert_eq!(record.request, b"pkcs10 of ws01");
        assert_eq!(record.authentication, Some(Authentication::Password));
        assert_eq!(
            record.serial,
            Some(CertificateInfo::from_der(&cert).unwrap().serial)
        );

        // The same bytes decided meanwhile (sent twice at once): answered
        // with the first certificate, recorded once.
        let again = ca
            .carry_out(
                submission(b"pkcs10 of ws01"),
                Decision::Issue(profile()),
                &key.public_key_der(),
                None,
            )
            .await;
        assert_eq!(issued_certificate(&again), (id, cert));
        assert_eq!(
            ca.db()
                .list(super::super::db::ListFilter::All)
                .unwrap()
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn pending_and_denied_requests_are_recorded_in_one_commit_each() {
        let dir = tempfile::tempdir().unwrap();
        let ca = offline_authority(dir.path());
        let database = ca.config.database.clone();

        let before = wal_commits(&database);
        let pending = ca
            .carry_out(
                submission(b"needs approval"),
                Decision::Pend {
                    profile: profile(),
                    reason: "a CA manager decides".into(),
                },
                &[],
                None,
            )
            .await;
        assert_eq!(wal_commits(&database) - before, 1);
        let Answer::Response(WstepResponse {
            disposition: WireDisposition::Pending,
            request_id,
            ..
        }) = pending
        else {
            panic!("expected pending, got {pending:?}");
        };
        let record = ca.db().get(request_id).unwrap().unwrap();
        assert_eq!(record.disposition, Disposition::Pending);
        assert_eq!(record.reason, "a CA manager decides");
        let stored: CertificateProfile =
            serde_json::from_str(record.profile.as_deref().unwrap()).unwrap();
        assert_eq!(stored.template_cn, "WorkstationAuth");

        let before = wal_commits(&database);
        let denied = ca
            .carry_out(
                submission(b"not allowed"),
                Decision::Deny(Denial {
                    hresult: hresult::ENROLL_DENIED,
                    reason: "no Enroll right".into(),
                }),
                &[],
                None,
            )
            .await;
        assert_eq!(wal_commits(&database) - before, 1);
        let Answer::Fault(WstepFault {
            hresult: code,
            request_id: Some(id),
            ..
        }) = denied
        else {
            panic!("expected a denial, got {denied:?}");
        };
        assert_eq!(code, hresult::ENROLL_DENIED);
        let record = ca.db().get(id).unwrap().unwrap();
        assert_eq!(record.disposition, Disposition::Denied);
        assert_eq!(record.hresult, Some(hresult::ENROLL_DENIED));
        assert_eq!(record.reason, "no Enroll right");
        assert_ne!(id, request_id);
    }

    #[test]
    fn a_principal_stands_for_an_account_of_its_realms_domain_only() {
        let cases = [
            ("WS01$@CORP.EXAMPLE", Ok("WS01$")),
            ("alice@CORP.EXAMPLE", Ok("alice")),
            ("alice@corp.example", Ok("alice")),
            ("alice@OTHER.EXAMPLE", Err("another realm")),
            ("alice@EXAMPLE", Err("another realm")),
            ("alice", Err("no realm")),
            (
                "host/ws01.corp.example@CORP.EXAMPLE",
                Err("not a user or computer"),
            ),
            ("CN=x@CORP.EXAMPLE", Err("not a user or computer")),
            ("CORP\\alice@CORP.EXAMPLE", Err("not a user or computer")),
            ("a@b@CORP.EXAMPLE", Err("not a user or computer")),
            ("@CORP.EXAMPLE", Err("not a user or computer")),
        ];
        for (principal, expected) in cases {
            match (principal_account(principal, "corp.example"), expected) {
                (Ok(name), Ok(wanted)) => assert_eq!(name, wanted, "{principal}"),
                (Err(why), Err(wanted)) => assert!(why.contains(wanted), "{principal}: {why}"),
                (got, _) => panic!("{principal}: {got:?}"),
            }
        }
        assert!(principal_account("alice@", "").is_err());
    }
}
