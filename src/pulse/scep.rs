//! SCEP profiles in the pulse: what the store holds for each profile, the
//! planner's decisions (`planner::scep`), and carrying them out against the
//! profile's SCEP servers (RFC 8894) with the same crash-safe order as
//! templates: the new key and the pkiMessage are in `request/<id>/` before
//! anything is sent, the issued certificate is installed before the one it
//! replaces is archived.
//!
//! A SCEP certificate lives in `my/<thumbprint>/` like any other; its
//! `meta.toml` names the profile (`scep_profile`), which is what makes it
//! managed (it carries no template extension). Templates never see it.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use time::OffsetDateTime;

use super::events::Event;
use super::report::{Outcome, PlannedAction, Report};
use crate::pki::Revocations;
use crate::pki::keys::{KeyAlgorithm, PrivateKey};
use crate::planner::scep::{self as rules, ArchiveWhy, HeldScep, ProfileRule, ScepAction};
use crate::policy::Policy;
use crate::scep::challenge;
use crate::scep::challenge_fetch::{Auth, Binding};
use crate::scep::client::{self, ScepClient, Server};
use crate::scep::exchange::{self, Outcome as ScepOutcome, PendingRequest as PollState, SignWith};
use crate::scep::names::Variables;
use crate::scep::profile::ScepProfile;
use crate::store::{
    CertificateMeta, HeldCertificate, PendingRequest, Store, StoreLock, StoreSnapshot,
};

/// What the store holds for SCEP profiles, apart from the templates'.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScepStore {
    pub certificates: Vec<HeldCertificate>,
    pub pending: Vec<PendingRequest>,
}

/// Splits a store snapshot: the templates' part (what the template planner
/// and its checks see) and the SCEP profiles' part.
pub fn split(mut store: StoreSnapshot) -> (StoreSnapshot, ScepStore) {
    let (scep, certificates): (Vec<_>, Vec<_>) = store
        .certificates
        .into_iter()
        .partition(|c| c.meta.scep_profile.is_some());
    let (scep_pending, pending): (Vec<_>, Vec<_>) = store
        .pending
        .into_iter()
        .partition(|p| p.scep_profile.is_some());
    store.certificates = certificates;
    store.pending = pending;
    (
        store,
        ScepStore {
            certificates: scep,
            pending: scep_pending,
        },
    )
}

/// The planner's view of the SCEP certificates: `revoked` from the CRLs the
/// pulse verified (a SCEP CA's CRL is used when the directory publishes it).
pub fn held(store: &ScepStore, revocations: &Revocations) -> Vec<HeldScep> {
    store
        .certificates
        .iter()
        .filter_map(|c| {
            Some(HeldScep {
                profile: c.meta.scep_profile.clone()?,
                thumbprint: c.info.thumbprint.clone(),
                not_before: c.info.not_before,
                not_after: c.info.not_after,
                revoked: revocations.is_revoked(&c.info.issuer, &c.info.serial),
                revoke_on_remove: c.meta.revoke_on_remove,
            })
        })
        .collect()
}

/// The decisions for the policy's profiles and what the store holds.
pub fn plan(
    policy: &Policy,
    store: &ScepStore,
    revocations: &Revocations,
    now: OffsetDateTime,
) -> (Vec<ScepAction>, Option<OffsetDateTime>) {
    let profiles: BTreeMap<String, ProfileRule> = policy
        .scep
        .iter()
        .map(|(name, p)| {
            (
                name.clone(),
                ProfileRule {
                    renewal_threshold_percent: p.renewal_threshold_percent,
                },
            )
        })
        .collect();
    let pending: Vec<String> = store
        .pending
        .iter()
        .filter_map(|p| p.scep_profile.clone())
        .collect();
    rules::plan(&profiles, &held(store, revocations), &pending, now)
}

/// The report's lines for the due SCEP actions (keeps left out).
pub fn planned(actions: &[ScepAction]) -> Vec<PlannedAction> {
    actions
        .iter()
        .filter(|a| !matches!(a, ScepAction::Keep { .. }))
        .map(|a| PlannedAction {
            kind: a.kind(),
            template: None,
            certificate: a.certificate().map(str::to_string),
            reason: a.reason(),
            reason_code: a.code(),
            profile: Some(a.profile().to_string()),
        })
        .collect()
}

/// The SCEP certificates' lines of the metrics file, from what the pulse left.
pub fn metrics(
    policy: &Policy,
    observed: &super::Observation,
    now: OffsetDateTime,
) -> Vec<super::metrics::ScepMetric> {
    let (actions, _) = observed.scep_plan(policy, now);
    held(&observed.scep, &observed.revocations)
        .iter()
        .map(|h| {
            let (health, renew_at) = rules::health(&actions, h, now);
            super::metrics::ScepMetric {
                profile: h.profile.clone(),
                thumbprint: h.thumbprint.clone(),
                not_after: h.not_after,
                renew_at,
                health,
            }
        })
        .collect()
}

/// The variables a profile's names are made from: the host's (its name,
/// and its serial number where the system lets it be read), then, when the
/// host has a directory account, the account's, which take precedence.
pub fn variables(account: Option<&crate::model::Account>) -> Variables {
    let serial = std::fs::read_to_string("/sys/class/dmi/id/product_serial")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let mut vars = match account {
        Some(a) => Variables::for_account(a, serial.as_deref()),
        None => {
            let mut v = Variables::new();
            if let Some(s) = &serial {
                v.set("SERIALNUMBER", s.clone());
            }
            v
        }
    };
    if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let host = host.trim();
        let short = host.split('.').next().unwrap_or(host);
        vars.set_if_absent("DeviceName", short);
        if host.contains('.') {
            vars.set_if_absent("FullyQualifiedDomainName", host);
        }
    }
    vars
}

/// What carrying out SCEP actions needs.
pub(super) struct ScepExecutor<'a> {
    pub policy: &'a Policy,
    pub store: &'a Store,
    pub lock: &'a StoreLock,
    pub held: &'a ScepStore,
    pub variables: Variables,
    /// Extra roots for HTTPS SCEP URLs (the directory's roots); the
    /// profile's root is always trusted.
    pub tls_roots: Vec<Vec<u8>>,
    /// The host's credentials, for the challenge sources that fetch one.
    pub credentials: &'a super::CaCredentials,
    pub now: OffsetDateTime,
    pub timeout: Duration,
}

/// Reads a certificate file in PEM or DER.
pub(crate) fn read_root(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let bytes = crate::store::fsutil::read_regular(path)
        .map_err(|e| format!("the profile's root {}: {e}", path.display()))?;
    if crate::store::pem::is_pem(&bytes) {
        crate::store::pem::certificate_der(&bytes)
            .map_err(|e| format!("the profile's root {}: {e}", path.display()))
    } else {
        Ok(bytes)
    }
}

impl ScepExecutor<'_> {
    pub(super) async fn run(&self, action: &ScepAction, report: &mut Report) {
        match action {
            ScepAction::Keep { .. } => {}
            ScepAction::Archive {
                thumbprint,
                profile,
                why,
                revoke,
            } => self.archive(profile, thumbprint, *why, *revoke, action, report),
            ScepAction::Enroll { profile, .. } => {
                self.enroll(profile, None, action, report).await;
            }
            ScepAction::Renew {
                profile,
                thumbprint,
            } => self.enroll(profile, Some(thumbprint), action, report).await,
            ScepAction::Poll { profile } => self.poll(profile, report).await,
            ScepAction::Abandon { profile } => {
                for r in self
                    .held
                    .pending
                    .iter()
                    .filter(|r| r.scep_profile.as_deref() == Some(profile.as_str()))
                {
                    match self
                        .store
                        .abandon_request(self.lock, &r.id, action.code(), self.now)
                    {
                        Ok(()) => report.note(Outcome::scep(
                            Event::Removed,
                            profile,
                            None,
                            action.reason(),
                        )),
                        Err(e) => self.fail(profile, format!("request {}: {e}", r.id), report),
                    }
                }
            }
        }
    }

    fn fail(&self, profile: &str, what: String, report: &mut Report) {
        report.note(Outcome::scep(
            Event::Failed,
            profile,
            None,
            format!("SCEP profile {profile}: {what}"),
        ));
    }

    fn archive(
        &self,
        profile: &str,
        thumbprint: &str,
        why: ArchiveWhy,
        revoke: bool,
        action: &ScepAction,
        report: &mut Report,
    ) {
        if let Err(e) = self
            .store
            .archive(self.lock, thumbprint, action.code(), self.now)
        {
            return self.fail(profile, format!("archiving {thumbprint}: {e}"), report);
        }
        let event = match why {
            ArchiveWhy::Replaced => Event::Archived,
            _ => Event::Removed,
        };
        report.note(Outcome::scep(
            event,
            profile,
            Some(thumbprint),
            action.reason(),
        ));
        if revoke {
            let serial = self
                .held
                .certificates
                .iter()
                .find(|c| c.info.thumbprint == thumbprint)
                .map(|c| c.info.serial.clone())
                .unwrap_or_default();
            report.note(revocation_needed(profile, thumbprint, &serial));
        }
    }

    /// The profile's challenge. A dynamic one is bound to the request's names
    /// as the CA will read them: those of this key's request without a
    /// challenge, parsed back by the same reader.
    async fn challenge(
        &self,
        profile: &ScepProfile,
        key: &PrivateKey,
        spec: &crate::scep::request::CsrSpec,
    ) -> Result<Option<challenge::Challenge>, challenge::ChallengeError> {
        let mut roots = self.tls_roots.clone();
        if let Ok(root) = read_root(&profile.root) {
            roots.push(root);
        }
        let auth = match (&self.credentials.kerberos, &self.credentials.token) {
            (Some(k), _) => Some(Auth::Negotiate(k)),
            (None, Some(t)) => Some(Auth::Basic {
                user: &t.username,
                password: &t.password,
            }),
            (None, None) => None,
        };
        let fetch = challenge::FetchContext {
            auth,
            tls_roots: &roots,
            timeout: self.timeout,
        };
        challenge::obtain(&profile.challenge, fetch, || {
            let der =
                crate::scep::request::build_csr(key, spec, None).map_err(|e| e.to_string())?;
            let csr = crate::pki::csr::ParsedCsr::from_der(&der).map_err(|e| e.to_string())?;
            Ok(Binding {
                subject: csr.subject,
                dns_names: csr.requested_dns_names,
                key_usage: spec.key_usage,
            })
        })
        .await
    }

    async fn connect(&self, profile: &ScepProfile) -> Result<(ScepClient, Server), String> {
        let root = read_root(&profile.root)?;
        let mut roots = vec![root.clone()];
        roots.extend(self.tls_roots.iter().cloned());
        let mut problems = Vec::new();
        for url in &profile.urls {
            let attempt = async {
                let c = ScepClient::new(url, &roots, self.timeout)?;
                let s = client::discover(&c, &root).await?;
                Ok::<_, crate::scep::ScepError>((c, s))
            };
            match attempt.await {
                Ok(found) => return Ok(found),
                Err(e) => problems.push(e.to_string()),
            }
        }
        Err(format!("no SCEP server answered: {}", problems.join("; ")))
    }

    async fn enroll(
        &self,
        name: &str,
        renews: Option<&str>,
        action: &ScepAction,
        report: &mut Report,
    ) {
        let Some(profile) = self.policy.scep.get(name) else {
            return;
        };
        // The names first: a variable without a value is the profile's
        // problem, and nothing is sent.
        let spec = match profile.csr_spec(&self.variables) {
            Ok(s) => s,
            Err(e) => return self.fail(name, format!("the names cannot be made: {e}"), report),
        };
        let (client, server) = match self.connect(profile).await {
            Ok(s) => s,
            Err(e) => return self.fail(name, e, report),
        };
        // RFC 8894 3.3.1.2: a RenewalReq is signed by the current certificate
        // where the server lists Renewal; else a new PKCSReq.
        let current = match renews {
            Some(t) if server.caps.renewal => {
                let files = self
                    .held
                    .certificates
                    .iter()
                    .find(|c| c.info.thumbprint == t)
                    .ok_or_else(|| format!("{t} is no longer in the store"))
                    .and_then(|c| self.store.held_files(c).map_err(|e| e.to_string()))
                    .and_then(|f| {
                        PrivateKey::from_pem(&f.key_pem)
                            .map(|k| (f.certificate, k))
                            .map_err(|e| format!("the current key: {e}"))
                    });
                match files {
                    Ok(f) => Some(f),
                    Err(e) => return self.fail(name, e, report),
                }
            }
            _ => None,
        };
        let key = match PrivateKey::generate(KeyAlgorithm::Rsa {
            bits: profile.key_size,
        }) {
            Ok(k) => k,
            Err(e) => return self.fail(name, format!("key generation: {e}"), report),
        };
        let challenge = match self.challenge(profile, &key, &spec).await {
            Ok(c) => c,
            Err(e) => return self.fail(name, e.to_string(), report),
        };
        let sign_with = match &current {
            Some((certificate, key)) => SignWith::Current { certificate, key },
            None => SignWith::Transient,
        };
        let prepared = match exchange::prepare_enrollment(
            &server.caps,
            &server.ca,
            &key,
            &spec,
            challenge.as_ref().map(|c| c.expose()),
            sign_with,
            SystemTime::from(self.now),
        ) {
            Ok(p) => p,
            Err(e) => return self.fail(name, e.to_string(), report),
        };
        let state = match serde_json::to_string(&prepared.pending) {
            Ok(s) => s,
            Err(e) => return self.fail(name, format!("the request's state: {e}"), report),
        };
        // The key and the message on disk before the first byte is sent. The
        // message holds the challenge only inside the envelope to the CA.
        let request = match self.store.create_scep_request(
            self.lock,
            name,
            &state,
            key.to_pem().as_bytes(),
            &prepared.message,
            renews,
            self.now,
        ) {
            Ok(r) => r,
            Err(e) => return self.fail(name, format!("the request folder: {e}"), report),
        };
        let decrypt = current.as_ref().map(|(_, k)| k).unwrap_or(&key);
        let answer = match client.pki_operation(&server.caps, &prepared.message).await {
            Ok(reply) => exchange::read_reply(
                &reply,
                &prepared,
                &server.trusted,
                decrypt,
                &key.public_key_der(),
            ),
            Err(e) => Err(e),
        };
        self.settle(
            name,
            profile,
            &request.id,
            client.url(),
            renews,
            answer,
            Some(action),
            &key,
            report,
        )
        .await;
    }

    async fn poll(&self, name: &str, report: &mut Report) {
        let Some(profile) = self.policy.scep.get(name) else {
            return;
        };
        let Some(request) = self
            .held
            .pending
            .iter()
            .find(|p| p.scep_profile.as_deref() == Some(name))
        else {
            return;
        };
        let state: PollState = match request
            .scep_state
            .as_deref()
            .ok_or_else(|| "no poll state".to_string())
            .and_then(|s| serde_json::from_str(s).map_err(|e| e.to_string()))
        {
            Ok(s) => s,
            Err(e) => {
                return self.fail(name, format!("request {}: {e}", request.id), report);
            }
        };
        let key = match self
            .store
            .request_key(&request.id)
            .map_err(|e| e.to_string())
            .and_then(|k| PrivateKey::from_pem(&k).map_err(|e| e.to_string()))
        {
            Ok(k) => k,
            Err(e) => return self.fail(name, format!("request {}: {e}", request.id), report),
        };
        let current_key = if state.renewal {
            let files = request
                .replaces
                .as_deref()
                .and_then(|t| {
                    self.held
                        .certificates
                        .iter()
                        .find(|c| c.info.thumbprint == t)
                })
                .ok_or_else(|| "the renewed certificate is gone".to_string())
                .and_then(|c| self.store.held_files(c).map_err(|e| e.to_string()))
                .and_then(|f| PrivateKey::from_pem(&f.key_pem).map_err(|e| e.to_string()));
            match files {
                Ok(k) => Some(k),
                Err(e) => return self.fail(name, format!("request {}: {e}", request.id), report),
            }
        } else {
            None
        };
        let (client, server) = match self.connect(profile).await {
            Ok(s) => s,
            Err(e) => return self.fail(name, e, report),
        };
        let signer = current_key.as_ref().unwrap_or(&key);
        let answer = match exchange::prepare_poll(&server.caps, &server.ca, &state, signer) {
            Ok(prepared) => match client.pki_operation(&server.caps, &prepared.message).await {
                Ok(reply) => exchange::read_reply(
                    &reply,
                    &prepared,
                    &server.trusted,
                    signer,
                    &key.public_key_der(),
                ),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        let renews = request.replaces.clone();
        self.settle(
            name,
            profile,
            &request.id,
            client.url(),
            renews.as_deref(),
            answer,
            None,
            &key,
            report,
        )
        .await;
    }

    /// Records the server's answer: installs, keeps pending, or abandons.
    #[allow(clippy::too_many_arguments)]
    async fn settle(
        &self,
        name: &str,
        profile: &ScepProfile,
        id: &str,
        url: &str,
        renews: Option<&str>,
        answer: Result<ScepOutcome, crate::scep::ScepError>,
        action: Option<&ScepAction>,
        key: &PrivateKey,
        report: &mut Report,
    ) {
        match answer {
            Ok(ScepOutcome::Issued {
                certificate,
                others,
            }) => {
                let meta = CertificateMeta {
                    ca: Some(url.to_string()),
                    installed_at: Some(self.now),
                    scep_profile: Some(name.to_string()),
                    revoke_on_remove: profile.revoke_on_remove,
                    ..CertificateMeta::default()
                };
                match self
                    .store
                    .complete_request(self.lock, id, &certificate, &meta)
                {
                    Ok(thumbprint) => {
                        let (event, what) = match renews {
                            Some(old) => (Event::Replaced, format!("replaces {old}")),
                            None => (Event::Installed, "installed".to_string()),
                        };
                        let why = action.map(ScepAction::reason).unwrap_or_else(|| {
                            format!("SCEP profile {name}: the pending request was issued")
                        });
                        report.note(Outcome::scep(
                            event,
                            name,
                            Some(&thumbprint),
                            format!("{why}: {what} (from {url})"),
                        ));
                        let mut chain = vec![certificate];
                        chain.extend(others);
                        super::export::after_scep_install(
                            self.policy,
                            profile,
                            &thumbprint,
                            &chain,
                            key,
                            report,
                        )
                        .await;
                    }
                    Err(e) => self.fail(name, format!("installing: {e}"), report),
                }
            }
            Ok(ScepOutcome::Pending(_)) => {
                let _ =
                    self.store
                        .update_request(self.lock, id, Some(url), None, None, Some(self.now));
                report.note(Outcome::scep(
                    if action.is_some() {
                        Event::Pending
                    } else {
                        Event::StillPending
                    },
                    name,
                    None,
                    format!("SCEP profile {name}: {url} holds the request for approval"),
                ));
            }
            Ok(ScepOutcome::Refused { fail_info, text }) => {
                let why = format!(
                    "{url} refused the request: {}{}",
                    fail_info.describe(),
                    text.map(|t| format!(" ({})", sanitize(&t)))
                        .unwrap_or_default()
                );
                let _ = self.store.abandon_request(self.lock, id, &why, self.now);
                report.note(Outcome::scep(
                    Event::Denied,
                    name,
                    None,
                    format!("SCEP profile {name}: {why}"),
                ));
            }
            Err(e) => {
                // Nothing usable came back: the request stays in request/ and
                // the next pulse polls it (the server may have it).
                self.fail(name, e.to_string(), report);
            }
        }
    }
}

/// A server's failInfoText as one line of printable text, bounded.
fn sanitize(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(200).collect()
}

/// SCEP has no revocation request (RFC 8894 defines none): the CA's
/// administrator revokes, and is told the serial.
pub(crate) fn revocation_needed(profile: &str, thumbprint: &str, serial: &str) -> Outcome {
    Outcome::scep(
        Event::RevocationNeeded,
        profile,
        Some(thumbprint),
        format!(
            "SCEP profile {profile}: SCEP has no revocation request; the CA's administrator must revoke serial {serial}"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_fills_what_a_directory_would() {
        let vars = variables(None);
        // The host's name is always known on Linux.
        let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        let short = name.trim().split('.').next().unwrap().to_string();
        assert_eq!(
            crate::scep::names::render_subject("CN={{DeviceName}}", &vars).unwrap()[0].value,
            short
        );
    }

    #[test]
    fn text_from_a_server_is_one_bounded_line() {
        assert_eq!(sanitize("bad\nchallenge\u{7}"), "badchallenge");
        assert_eq!(sanitize(&"x".repeat(500)).len(), 200);
    }
}
