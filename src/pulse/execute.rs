//! Carrying out a plan's actions, one at a time, in plan order.
//!
//! Every request goes through the store's request folder: key and request
//! are written (and synced) by `create_request` before the first byte is
//! sent, so a crash at any point leaves either nothing or a request the next
//! pulse sends again or retrieves.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use time::OffsetDateTime;

use super::events::Event;
use super::export;
use super::observe::Observation;
use super::report::{Outcome, Report};
use super::{CaCredentials, PulseError, PulseOptions};
use crate::enroll::route::{self, Auth};
use crate::enroll::transport::require_https;
use crate::enroll::{EnrollmentClient, Outcome as CaOutcome, check_issued};
use crate::enroll::{enrollment_request, renewal_refusal_needs_enrollment, renewal_request};
use crate::model::{EnrollmentService, Template};
use crate::pki::keys::{KeyAlgorithm, PrivateKey};
use crate::planner::{Action, ActionKind, ReenrollWhy};
use crate::policy::Policy;
use crate::store::{CertificateMeta, State, Store, StoreLock, TemplateFailures};

pub(super) struct Executor<'a> {
    policy: &'a Policy,
    store: &'a Store,
    lock: &'a StoreLock,
    observed: &'a Observation,
    credentials: CaCredentials,
    options: PulseOptions,
    client: Option<Result<EnrollmentClient, String>>,
    failures: BTreeMap<String, TemplateFailures>,
    /// CAs (lower-case cn) that did not answer in time in this pulse: they
    /// are not asked again before the next pulse.
    timed_out: BTreeSet<String>,
    /// Time spent in CA exchanges so far, against `options.ca_budget`.
    ca_spent: Duration,
    /// Enrollment URLs refused in this pulse (reported once each).
    refused: BTreeSet<String>,
}

/// What is asked of a CA endpoint.
#[derive(Clone, Copy)]
enum Ask<'t> {
    Submit { token: &'t [u8], template: &'t str },
    Query { request_id: u64 },
}

/// How an RPC target is named in reports: `rpc://<dNSHostName>:<port>`.
fn rpc_url(service: &EnrollmentService, policy: &Policy) -> String {
    format!(
        "rpc://{}:{}",
        service.dns_host_name.as_deref().unwrap_or(""),
        policy.rpc.port
    )
}

/// How a CA's answer was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
enum Settled {
    Done,
    /// The CA refused a renewal in a way that calls for a new enrollment
    /// (see [`renewal_refusal_needs_enrollment`]); the renewal request is
    /// abandoned and nothing is recorded as a failure yet.
    EnrollAnew,
}

/// Where a request goes: a CA, one of its enrollment URLs and how the
/// request is authenticated there.
struct Endpoint<'a> {
    service: &'a EnrollmentService,
    url: String,
    auth: Auth,
}

impl<'a> Executor<'a> {
    pub(super) fn new(
        policy: &'a Policy,
        store: &'a Store,
        lock: &'a StoreLock,
        observed: &'a Observation,
        credentials: CaCredentials,
        options: PulseOptions,
    ) -> Result<Executor<'a>, PulseError> {
        let failures = observed
            .state
            .failures
            .iter()
            // A failure recorded in the future (a clock that was ahead, a crafted
            // state.toml) is kept as now, so the backoff ends after its length
            // from this pulse instead of after that future time.
            .map(|f| {
                let failure = TemplateFailures {
                    last_failure: crate::planner::failure_time(f.last_failure, options.now),
                    ..f.clone()
                };
                (f.template.to_ascii_lowercase(), failure)
            })
            .collect();
        Ok(Executor {
            policy,
            store,
            lock,
            observed,
            credentials,
            options,
            client: None,
            failures,
            timed_out: BTreeSet::new(),
            ca_spent: Duration::ZERO,
            refused: BTreeSet::new(),
        })
    }

    fn now(&self) -> OffsetDateTime {
        self.options.now
    }

    /// The WSTEP client, made on first use: it trusts the directory's roots.
    fn client(&mut self) -> Result<EnrollmentClient, String> {
        if self.client.is_none() {
            self.client = Some(
                EnrollmentClient::new(
                    &self.observed.directory.roots,
                    self.credentials.token.clone(),
                    self.options.ca_timeout,
                )
                .map(|c| c.with_kerberos(self.credentials.kerberos.clone()))
                .map_err(|e| e.to_string()),
            );
        }
        self.client
            .clone()
            .unwrap_or_else(|| Err("no client".into()))
    }

    pub(super) async fn run(&mut self, action: &Action, report: &mut Report) {
        let template = action.template.as_deref();
        let thumbprint = action.certificate.as_deref();
        match &action.kind {
            ActionKind::Enroll => self.new_request(action, None, report).await,
            ActionKind::Renew => self.renew(action, report).await,
            ActionKind::Reenroll(why) => self.new_request(action, Some(why), report).await,
            ActionKind::Retrieve => self.retrieve(action, report).await,
            ActionKind::Archive | ActionKind::Remove => {
                let event = if action.kind == ActionKind::Archive {
                    Event::Archived
                } else {
                    Event::Removed
                };
                let Some(th) = thumbprint else { return };
                match self
                    .store
                    .archive(self.lock, th, &action.reason, self.now())
                {
                    Ok(()) => report.note(Outcome::new(
                        event,
                        template,
                        Some(th),
                        action.reason.clone(),
                    )),
                    Err(e) => report.note(Outcome::new(
                        Event::Failed,
                        template,
                        Some(th),
                        format!("cannot archive: {e}"),
                    )),
                }
            }
            ActionKind::Notify => report.note(Outcome::new(
                Event::Expiring,
                template,
                thumbprint,
                action.reason.clone(),
            )),
            ActionKind::Keep | ActionKind::Skip => {}
        }
    }

    fn template(&self, cn: Option<&str>) -> Option<&'a Template> {
        let cn = cn?;
        self.observed
            .templates
            .iter()
            .find(|t| t.cn.eq_ignore_ascii_case(cn))
    }

    /// Enroll and Reenroll: a new key and a PKCS#10 sent with the account's
    /// credentials; the certificate it replaces (if any) is archived once the
    /// new one is installed.
    async fn new_request(
        &mut self,
        action: &Action,
        why: Option<&ReenrollWhy>,
        report: &mut Report,
    ) {
        let Some(template) = self.template(action.template.as_deref()) else {
            return self.fail(report, action, "the template is no longer in the directory");
        };
        let key = match self.new_key(template) {
            Ok(k) => k,
            Err(e) => return self.fail(report, action, &e),
        };
        let token = match enrollment_request(template, &key, None) {
            Ok(t) => t,
            Err(e) => return self.fail(report, action, &format!("no request: {e}")),
        };
        let replaces = why.and(action.certificate.as_deref());
        // Not a renewal: the CA's answer never calls for another enrollment.
        let _ = self.submit(template, key, token, replaces, report).await;
    }

    /// The fallback of a renewal the CA refused because the certificate
    /// cannot be renewed there: a new key and a PKCS#10 sent with the
    /// account's credentials, replacing the same certificate.
    async fn enroll_anew(
        &mut self,
        template: &Template,
        replaces: Option<&str>,
        report: &mut Report,
    ) {
        let key = match self.new_key(template) {
            Ok(k) => k,
            Err(e) => return self.fail_template(report, &template.cn, replaces, &e),
        };
        let token = match enrollment_request(template, &key, None) {
            Ok(t) => t,
            Err(e) => {
                return self.fail_template(
                    report,
                    &template.cn,
                    replaces,
                    &format!("no request: {e}"),
                );
            }
        };
        let _ = self.submit(template, key, token, replaces, report).await;
    }

    /// Renew: a new key, and a PKCS#10 wrapped in CMS signed with the current
    /// certificate's key (adcs.md section 6).
    async fn renew(&mut self, action: &Action, report: &mut Report) {
        let Some(template) = self.template(action.template.as_deref()) else {
            return self.fail(report, action, "the template is no longer in the directory");
        };
        let Some(held) = action.certificate.as_deref().and_then(|th| {
            self.observed
                .store
                .certificates
                .iter()
                .find(|c| c.info.thumbprint == th)
        }) else {
            return self.fail(report, action, "the certificate to renew is gone");
        };
        // Read through the store: a link planted in the entry is refused,
        // never followed (the key signs the renewal request).
        let held_files = self.store.held_files(held).map_err(|e| e.to_string());
        let (old_key, old_cert) = match held_files.and_then(|f| {
            // A key file, or the reference of a key on a token (opened there).
            crate::keystore::open(&f.key_pem)
                .map(|k| (k, f.certificate))
                .map_err(|e| format!("{}: the key: {e}", held.path.display()))
        }) {
            Ok(pair) => pair,
            Err(e) => {
                return self.fail(
                    report,
                    action,
                    &format!("cannot read the held certificate: {e}"),
                );
            }
        };
        let key = match self.new_key(template) {
            Ok(k) => k,
            Err(e) => return self.fail(report, action, &e),
        };
        let token = match renewal_request(template, &key, &old_cert, &old_key) {
            Ok(t) => t,
            Err(e) => return self.fail(report, action, &format!("no renewal request: {e}")),
        };
        let replaces = action.certificate.as_deref();
        if self.submit(template, key, token, replaces, report).await == Settled::EnrollAnew {
            self.enroll_anew(template, replaces, report).await;
        }
    }

    /// Writes the request to the store, then sends it.
    async fn submit(
        &mut self,
        template: &Template,
        key: PrivateKey,
        token: Vec<u8>,
        replaces: Option<&str>,
        report: &mut Report,
    ) -> Settled {
        let request = match self.store.create_request(
            self.lock,
            &template.cn,
            &key.stored_form(),
            &token,
            replaces,
            self.now(),
        ) {
            Ok(r) => r,
            Err(e) => {
                self.fail_template(
                    report,
                    &template.cn,
                    replaces,
                    &format!("cannot store the request: {e}"),
                );
                return Settled::Done;
            }
        };
        self.send(template, &request.id, &key, &token, replaces, report)
            .await
    }

    /// The CA that issued a held certificate, tried first for its renewal.
    fn issuer_of(&self, thumbprint: &str) -> Option<String> {
        self.observed
            .store
            .certificates
            .iter()
            .find(|c| c.info.thumbprint == thumbprint)
            .and_then(|c| c.meta.ca.clone())
    }

    /// Every CA publishing the template, in directory order (the one named
    /// `preferred` first), each with the enrollment URLs this policy can
    /// authenticate to ([`route::choose`]: Kerberos first when it has
    /// Kerberos credentials, then by priority). The second value says, for
    /// the report, why CAs publishing the template offer nothing usable.
    fn endpoints(
        &self,
        template: &str,
        renewal: bool,
        preferred: Option<&str>,
    ) -> (Vec<Endpoint<'a>>, Vec<String>) {
        let mut services: Vec<&EnrollmentService> = self
            .observed
            .directory
            .services
            .iter()
            .filter(|s| s.publishes(template))
            .collect();
        if let Some(p) = preferred {
            services.sort_by_key(|s| !s.cn.eq_ignore_ascii_case(p));
        }
        let have = self.credentials.have();
        let allowed = self.policy.enrollment;
        let mut out = Vec::new();
        let mut unusable = Vec::new();
        for service in services {
            // MS-ICPR first, as Windows does: every enterprise CA serves it.
            if route::uses_rpc(service.dns_host_name.as_deref(), have, allowed) {
                out.push(Endpoint {
                    service,
                    url: rpc_url(service, self.policy),
                    auth: Auth::Rpc,
                });
            }
            let chosen = route::choose(&service.enrollment_servers, have, allowed, renewal);
            if chosen.is_empty() && !service.enrollment_servers.is_empty() {
                unusable.push(format!(
                    "{}: {}",
                    service.cn,
                    route::nothing_usable(&service.enrollment_servers, have, allowed)
                ));
            }
            for (i, auth) in chosen {
                out.push(Endpoint {
                    service,
                    url: service.enrollment_servers[i].url.clone(),
                    auth,
                });
            }
        }
        (out, unusable)
    }

    /// Sends a stored request to the CAs in turn until one answers (the CA
    /// that issued the certificate it replaces first).
    async fn send(
        &mut self,
        template: &Template,
        id: &str,
        key: &PrivateKey,
        token: &[u8],
        replaces: Option<&str>,
        report: &mut Report,
    ) -> Settled {
        let renewal = is_signed_data(token);
        let preferred = replaces.and_then(|th| self.issuer_of(th));
        let (endpoints, unusable) = self.endpoints(&template.cn, renewal, preferred.as_deref());
        if endpoints.is_empty() {
            let why = if unusable.is_empty() {
                "no CA publishes an enrollment URL for this template (msPKI-Enrollment-Servers)"
                    .to_string()
            } else {
                unusable.join("; ")
            };
            self.fail_template(report, &template.cn, replaces, &why);
            return Settled::Done;
        }
        let client = match self.client() {
            Ok(c) => c,
            Err(e) => {
                self.fail_template(report, &template.cn, replaces, &e);
                return Settled::Done;
            }
        };
        let mut errors = Vec::new();
        let ask = Ask::Submit {
            token,
            template: &template.cn,
        };
        for endpoint in endpoints {
            match self
                .ask(
                    &client,
                    endpoint.service,
                    &endpoint.url,
                    endpoint.auth,
                    ask,
                    report,
                )
                .await
            {
                Ok(CaOutcome::Denied {
                    retryable: true,
                    hresult,
                    message,
                    ..
                }) => errors.push(internal_failure(
                    &endpoint.service.cn,
                    &endpoint.url,
                    hresult,
                    &message,
                )),
                Ok(outcome) => {
                    return self
                        .settle(
                            template,
                            id,
                            key,
                            endpoint.service,
                            outcome,
                            replaces,
                            renewal,
                            report,
                        )
                        .await;
                }
                Err(e) => errors.push(format!("{} ({}): {e}", endpoint.service.cn, endpoint.url)),
            }
        }
        // The request stays in request/: the next pulse sends it again.
        self.fail_template(
            report,
            &template.cn,
            replaces,
            &format!("no CA answered: {}", errors.join("; ")),
        );
        Settled::Done
    }

    /// One exchange with a CA endpoint, within this pulse's limits: only
    /// `https://` URLs (the request carries the account's password; any
    /// other is refused and reported once, and the next endpoint is tried),
    /// never a CA that already timed out in this pulse, and never beyond the
    /// pulse's budget for CA exchanges.
    async fn ask(
        &mut self,
        client: &EnrollmentClient,
        service: &EnrollmentService,
        url: &str,
        auth: Auth,
        ask: Ask<'_>,
        report: &mut Report,
    ) -> Result<CaOutcome, String> {
        if auth != Auth::Rpc
            && let Err(e) = require_https(url)
        {
            if self.refused.insert(url.to_string()) {
                report.note(Outcome::new(
                    Event::EndpointRefused,
                    None,
                    None,
                    format!(
                        "{} publishes {url} in msPKI-Enrollment-Servers: {e}; it is never sent to, the next endpoint is tried",
                        service.cn
                    ),
                ));
            }
            return Err(e.to_string());
        }
        let ca = service.cn.to_ascii_lowercase();
        if self.timed_out.contains(&ca) {
            return Err(format!(
                "{} did not answer in time earlier in this pulse: not asked again before the next pulse",
                service.cn
            ));
        }
        let left = self.options.ca_budget.saturating_sub(self.ca_spent);
        if left.is_zero() {
            return Err(format!(
                "this pulse's time for CA exchanges ({:?}) is spent: not sent before the next pulse",
                self.options.ca_budget
            ));
        }
        let limit = left.min(self.options.ca_timeout);
        let started = tokio::time::Instant::now();
        let result = if auth == Auth::Rpc {
            self.ask_rpc(service, ask, limit).await
        } else {
            match ask {
                Ask::Submit { token, template } => {
                    client.submit_as(url, auth, token, template, limit).await
                }
                Ask::Query { request_id } => client.query_as(url, auth, request_id, limit).await,
            }
        };
        self.ca_spent += started.elapsed();
        result.map_err(|e| {
            if e.is_timeout() {
                self.timed_out.insert(ca);
            }
            e.to_string()
        })
    }

    /// One `CertServerRequest` to the CA's host over DCE/RPC
    /// (`enroll::rpc`), with the policy's Kerberos credentials.
    async fn ask_rpc(
        &self,
        service: &EnrollmentService,
        ask: Ask<'_>,
        limit: std::time::Duration,
    ) -> Result<CaOutcome, crate::enroll::ClientError> {
        use crate::enroll::ClientError;
        use crate::enroll::rpc::{self, RpcTarget};
        let answer = |what: String| ClientError::Answer {
            url: rpc_url(service, self.policy),
            what,
        };
        let Some(creds) = &self.credentials.kerberos else {
            return Err(answer("RPC needs Kerberos credentials".into()));
        };
        let host = service.dns_host_name.clone().unwrap_or_default();
        let port = self.policy.rpc.port;
        let ip = match self.policy.rpc.hosts.get(&host.to_ascii_lowercase()) {
            Some(ip) => *ip,
            None => {
                let found =
                    tokio::time::timeout(limit, tokio::net::lookup_host((host.as_str(), port)))
                        .await
                        .map_err(|_| answer(format!("resolving {host} timed out")))?
                        .map_err(|e| answer(format!("{host} cannot be resolved: {e}")))?
                        .map(|a| a.ip())
                        .next();
                found.ok_or_else(|| answer(format!("{host} has no address")))?
            }
        };
        let target = RpcTarget {
            host,
            mapper: std::net::SocketAddr::new(ip, port),
            ca_name: service.cn.clone(),
        };
        match ask {
            Ask::Submit { token, template } => {
                rpc::submit(
                    creds,
                    &target,
                    token,
                    template,
                    is_signed_data(token),
                    limit,
                )
                .await
            }
            Ask::Query { request_id } => rpc::query(creds, &target, request_id, limit).await,
        }
    }

    /// Acts on a CA's answer.
    #[allow(clippy::too_many_arguments)]
    async fn settle(
        &mut self,
        template: &Template,
        id: &str,
        key: &PrivateKey,
        service: &EnrollmentService,
        outcome: CaOutcome,
        replaces: Option<&str>,
        renewal: bool,
        report: &mut Report,
    ) -> Settled {
        let now = self.now();
        match outcome {
            CaOutcome::Issued {
                request_id,
                certificate,
                chain,
            } => {
                let info = match check_issued(
                    &certificate,
                    key,
                    template,
                    &service.ca_certificates,
                    now,
                ) {
                    Ok(info) => info,
                    Err(rejected) => {
                        let _ =
                            self.store
                                .abandon_request(self.lock, id, &rejected.to_string(), now);
                        report.note(Outcome::new(
                            Event::Rejected,
                            Some(&template.cn),
                            replaces,
                            format!("{} (from {})", rejected, service.cn),
                        ));
                        self.record_failure(&template.cn, &rejected.to_string());
                        return Settled::Done;
                    }
                };
                let meta = CertificateMeta {
                    template: Some(template.cn.clone()),
                    ca: Some(service.cn.clone()),
                    request_id: Some(request_id.to_string()),
                    installed_at: Some(now),
                    ..CertificateMeta::default()
                };
                match self
                    .store
                    .complete_request(self.lock, id, &certificate, &meta)
                {
                    Ok(thumbprint) => {
                        self.failures.remove(&template.cn.to_ascii_lowercase());
                        let (event, message) = match replaces {
                            Some(old) => (
                                Event::Replaced,
                                format!(
                                    "{} issued certificate {} (serial {}), replacing {old}, which is archived",
                                    service.cn, thumbprint, info.serial
                                ),
                            ),
                            None => (
                                Event::Installed,
                                format!(
                                    "{} issued certificate {} (serial {}), valid until {}",
                                    service.cn, thumbprint, info.serial, info.not_after
                                ),
                            ),
                        };
                        report.note(Outcome::new(
                            event,
                            Some(&template.cn),
                            Some(&thumbprint),
                            message,
                        ));
                        let mut full_chain = vec![certificate.clone()];
                        full_chain.extend(chain.into_iter().filter(|c| *c != certificate));
                        export::after_install(
                            self.policy,
                            &template.cn,
                            &thumbprint,
                            &full_chain,
                            key,
                            report,
                        )
                        .await;
                    }
                    Err(e) => {
                        report.note(Outcome::new(
                            Event::Failed,
                            Some(&template.cn),
                            replaces,
                            format!("cannot install the issued certificate: {e}"),
                        ));
                        self.record_failure(&template.cn, &e.to_string());
                    }
                }
            }
            CaOutcome::Pending {
                request_id,
                message,
            } => {
                let id_text = request_id.to_string();
                if let Err(e) = self.store.update_request(
                    self.lock,
                    id,
                    Some(&service.cn),
                    Some(&id_text),
                    Some(now),
                ) {
                    self.fail_template(
                        report,
                        &template.cn,
                        replaces,
                        &format!("cannot record the pending request: {e}"),
                    );
                    return Settled::Done;
                }
                report.note(Outcome::new(
                    Event::Pending,
                    Some(&template.cn),
                    None,
                    format!("{} holds request {request_id}: {message}", service.cn),
                ));
            }
            CaOutcome::Denied {
                hresult, message, ..
            } => {
                let mut why = format!(
                    "{} denied the request (0x{hresult:08X}): {message}",
                    service.cn
                );
                let _ = self.store.abandon_request(self.lock, id, &why, now);
                if renewal && renewal_refusal_needs_enrollment(hresult) {
                    if self.credentials.any() {
                        report.note(Outcome::new(
                            Event::EnrollingAnew,
                            Some(&template.cn),
                            replaces,
                            format!(
                                "{} refused to renew (0x{hresult:08X}): {message}; enrolling anew with the account's credentials",
                                service.cn
                            ),
                        ));
                        return Settled::EnrollAnew;
                    }
                    why.push_str(
                        "; a new enrollment needs the account's password, which a SASL EXTERNAL bind does not have",
                    );
                }
                report.note(Outcome::new(
                    Event::Denied,
                    Some(&template.cn),
                    replaces,
                    why.clone(),
                ));
                self.record_failure(&template.cn, &why);
            }
        }
        Settled::Done
    }

    /// Retrieve: a pending request is asked about; one never sent (the last
    /// pulse stopped in between) is sent now, with the same bytes.
    async fn retrieve(&mut self, action: &Action, report: &mut Report) {
        let Some(request) = action
            .request
            .as_deref()
            .and_then(|id| self.observed.store.pending.iter().find(|p| p.id == id))
        else {
            return;
        };
        let Some(template) = self.template(Some(&request.template)) else {
            return self.fail(report, action, "the template is no longer in the directory");
        };
        let key = match self
            .store
            .request_key(&request.id)
            .map_err(|e| e.to_string())
            .and_then(|stored| crate::keystore::open(&stored))
        {
            Ok(k) => k,
            Err(e) => return self.fail(report, action, &format!("the request's key: {e}")),
        };
        let replaces = request.replaces.as_deref();
        match (&request.ca, &request.ca_request_id) {
            (Some(ca), Some(ca_id)) => {
                let Some(service) = self
                    .observed
                    .directory
                    .services
                    .iter()
                    .find(|s| s.cn.eq_ignore_ascii_case(ca))
                else {
                    return self.fail(
                        report,
                        action,
                        &format!("CA {ca} is no longer in the directory"),
                    );
                };
                let Ok(ca_id) = ca_id.parse::<u64>() else {
                    return self.fail(
                        report,
                        action,
                        &format!("request id {ca_id:?} is not a number"),
                    );
                };
                let client = match self.client() {
                    Ok(c) => c,
                    Err(e) => return self.fail(report, action, &e),
                };
                // A query needs the account's credentials whatever the
                // request was: chosen as for a new request.
                let mut servers: Vec<(String, Auth)> = Vec::new();
                if route::uses_rpc(
                    service.dns_host_name.as_deref(),
                    self.credentials.have(),
                    self.policy.enrollment,
                ) {
                    servers.push((rpc_url(service, self.policy), Auth::Rpc));
                }
                servers.extend(
                    route::choose(
                        &service.enrollment_servers,
                        self.credentials.have(),
                        self.policy.enrollment,
                        false,
                    )
                    .into_iter()
                    .map(|(i, auth)| (service.enrollment_servers[i].url.clone(), auth)),
                );
                if servers.is_empty() {
                    return self.fail(
                        report,
                        action,
                        &route::nothing_usable(
                            &service.enrollment_servers,
                            self.credentials.have(),
                            self.policy.enrollment,
                        ),
                    );
                }
                let renewal = self
                    .store
                    .request_der(&request.id)
                    .is_ok_and(|t| is_signed_data(&t));
                let mut errors = Vec::new();
                let ask = Ask::Query { request_id: ca_id };
                for (url, auth) in servers {
                    match self.ask(&client, service, &url, auth, ask, report).await {
                        Ok(CaOutcome::Pending { .. }) => {
                            let _ = self.store.update_request(
                                self.lock,
                                &request.id,
                                None,
                                None,
                                Some(self.now()),
                            );
                            report.note(Outcome::new(
                                Event::StillPending,
                                Some(&template.cn),
                                None,
                                format!("{ca} still holds request {ca_id}"),
                            ));
                            return;
                        }
                        Ok(CaOutcome::Denied {
                            retryable: true,
                            hresult,
                            message,
                            ..
                        }) => errors.push(internal_failure(ca, &url, hresult, &message)),
                        Ok(outcome) => {
                            let settled = self
                                .settle(
                                    template,
                                    &request.id,
                                    &key,
                                    service,
                                    outcome,
                                    replaces,
                                    renewal,
                                    report,
                                )
                                .await;
                            if settled == Settled::EnrollAnew {
                                self.enroll_anew(template, replaces, report).await;
                            }
                            return;
                        }
                        Err(e) => errors.push(format!("{url}: {e}")),
                    }
                }
                self.fail(
                    report,
                    action,
                    &format!("no answer from {ca}: {}", errors.join("; ")),
                );
            }
            _ => {
                let token = match self.store.request_der(&request.id) {
                    Ok(t) => t,
                    Err(e) => {
                        return self.fail(report, action, &format!("the stored request: {e}"));
                    }
                };
                let settled = self
                    .send(template, &request.id, &key, &token, replaces, report)
                    .await;
                if settled == Settled::EnrollAnew {
                    self.enroll_anew(template, replaces, report).await;
                }
            }
        }
    }

    fn fail(&mut self, report: &mut Report, action: &Action, why: &str) {
        let template = action.template.clone().unwrap_or_default();
        self.fail_template(report, &template, action.certificate.as_deref(), why);
    }

    fn fail_template(
        &mut self,
        report: &mut Report,
        template: &str,
        thumbprint: Option<&str>,
        why: &str,
    ) {
        report.note(Outcome::new(
            Event::Failed,
            Some(template),
            thumbprint,
            why.to_string(),
        ));
        self.record_failure(template, why);
    }

    fn record_failure(&mut self, template: &str, why: &str) {
        let now = self.now();
        let entry = self
            .failures
            .entry(template.to_ascii_lowercase())
            .or_insert_with(|| TemplateFailures {
                template: template.to_string(),
                count: 0,
                last_failure: now,
                last_error: String::new(),
            });
        entry.count += 1;
        entry.last_failure = now;
        entry.last_error = why.to_string();
    }

    /// The worker's memory after this pulse.
    pub(super) fn finish(self, now: OffsetDateTime, report: &Report) -> State {
        State {
            failures: self.failures.into_values().collect(),
            last_pulse: Some(now),
            last_pulse_ok: Some(report.ok),
            directory_marker: self.observed.state.directory_marker.clone(),
        }
    }
}

/// The text of a CA's internal failure: like an unreachable CA, it is no
/// verdict on the request, which stays in `request/` for the next pulse.
fn internal_failure(ca: &str, url: &str, hresult: u32, message: &str) -> String {
    format!("{ca} ({url}) failed (0x{hresult:08X}, not a denial; the request is kept): {message}")
}

impl Executor<'_> {
    /// A fresh key of the algorithm and size the template asks for, where
    /// the policy keeps the template's keys (a file, or a PKCS#11 token).
    fn new_key(&self, template: &Template) -> Result<PrivateKey, String> {
        let algorithm = KeyAlgorithm::for_template(template).map_err(|e| format!("no key: {e}"))?;
        let storage = self.policy.template(&template.cn).key_storage;
        crate::keystore::generate(&storage, algorithm, &format!("autoenroll {}", template.cn))
            .map_err(|e| format!("no key: {e}"))
    }
}

/// Whether a request token is CMS SignedData (a renewal) rather than a bare
/// PKCS#10: its ContentInfo starts with the id-signedData OID
/// 1.2.840.113549.1.7.2 (RFC 5652 5.1).
fn is_signed_data(token: &[u8]) -> bool {
    const SIGNED_DATA: [u8; 11] = [
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02,
    ];
    token.len() > 16
        && token[..16]
            .windows(SIGNED_DATA.len())
            .any(|w| w == SIGNED_DATA)
}
