//! What a pulse (and `plan`, `status`) looks at: the directory snapshot, the
//! verdicts, the store, the worker's state and the CRLs, gathered into the
//! planner's input.

use std::collections::BTreeMap;
use std::sync::Arc;

use time::OffsetDateTime;

use crate::directory::{self, DirectorySnapshot, Verdict};
use crate::model::Template;
use crate::pki::Revocations;
use crate::planner::{self, PlanInput};
use crate::policy::{Bind, Policy};
use crate::store::{State, StoreSnapshot};

/// Everything a plan is made of, read once. What comes from the directory
/// is shared: [`Observation::with_store`] copies none of it.
#[derive(Debug, Clone)]
pub struct Observation {
    pub directory: Arc<DirectorySnapshot>,
    pub templates: Arc<Vec<Template>>,
    pub verdicts: Arc<Vec<Verdict>>,
    pub store: StoreSnapshot,
    pub state: State,
    pub revocations: Revocations,
    pub settings: planner::Settings,
    /// CRLs of the directory that could not be read or verified, each with
    /// its CDP object: ignored (they revoke nothing) and reported.
    pub crl_problems: Vec<String>,
    /// What the store holds for SCEP profiles (`store` holds the rest).
    pub scep: super::scep::ScepStore,
}

impl Observation {
    pub fn new(
        policy: &Policy,
        directory: DirectorySnapshot,
        store: StoreSnapshot,
        state: State,
        now: OffsetDateTime,
    ) -> Observation {
        let verdicts = directory::judge(
            &directory,
            directory::Options {
                context: policy.context,
                allow_prompts: policy.allow_prompts,
            },
            now,
        );
        let crls = directory.crls.iter().flat_map(|c| {
            c.base
                .iter()
                .chain(c.delta.iter())
                .map(|der| (c.dn.as_str(), der.as_slice()))
        });
        let (revocations, crl_problems) =
            Revocations::from_crls(crls, &crl_issuers(&directory), now);
        let (store, scep) = super::scep::split(store);
        Observation {
            scep,
            settings: planner_settings(policy),
            templates: Arc::new(
                directory
                    .templates
                    .iter()
                    .map(|t| t.template.clone())
                    .collect(),
            ),
            directory: Arc::new(directory),
            verdicts: Arc::new(verdicts),
            store,
            state,
            revocations,
            crl_problems,
        }
    }

    /// The AIA certificates that are intermediates: the self-signed ones are
    /// roots (published under AIA so that chains can be built, as AD CS does
    /// for a root CA), not intermediates, and whether a root is trusted is
    /// decided by Certification Authorities alone.
    pub fn intermediates(&self) -> Vec<Vec<u8>> {
        self.directory
            .aia
            .iter()
            .filter(|der| !is_self_signed(der))
            .cloned()
            .collect()
    }

    /// The same observation with the store and state as they are now.
    pub fn with_store(&self, store: StoreSnapshot, state: State) -> Observation {
        let (store, scep) = super::scep::split(store);
        Observation {
            store,
            scep,
            state,
            ..self.clone()
        }
    }

    /// The SCEP profiles' decisions and their next due time.
    pub fn scep_plan(
        &self,
        policy: &Policy,
        now: OffsetDateTime,
    ) -> (
        Vec<crate::planner::scep::ScepAction>,
        Option<OffsetDateTime>,
    ) {
        super::scep::plan(policy, &self.scep, &self.revocations, now)
    }

    pub fn input(&self, now: OffsetDateTime) -> PlanInput<'_> {
        PlanInput {
            settings: &self.settings,
            directory: planner::DirectoryView {
                templates: &self.templates,
                verdicts: &self.verdicts,
            },
            store: &self.store,
            revocations: &self.revocations,
            state: &self.state,
            now,
        }
    }
}

/// The certificates a CRL read from the directory may be signed by: those of
/// the enterprise CAs (`cACertificate` of their enrollment services, which
/// issue the certificates a host holds) and the trusted roots. AIA objects
/// are not among them: they only help build chains.
fn crl_issuers(directory: &DirectorySnapshot) -> Vec<Vec<u8>> {
    directory
        .services
        .iter()
        .flat_map(|s| s.ca_certificates.iter())
        .chain(directory.roots.iter())
        .cloned()
        .collect()
}

/// Whether a certificate is self-signed: issuer and subject are the same name
/// and its signature verifies with its own key (RFC 5280 6.1: a self-issued
/// certificate with another key, a key rollover, is not). A certificate that
/// cannot be read is not.
pub fn is_self_signed(der: &[u8]) -> bool {
    use x509_parser::prelude::FromDer;
    let Ok((_, cert)) = x509_parser::certificate::X509Certificate::from_der(der) else {
        return false;
    };
    cert.subject().as_raw() == cert.issuer().as_raw()
        && crate::pki::keys::verify_signature(
            cert.public_key().raw,
            &cert.signature_algorithm.algorithm.to_id_string(),
            cert.tbs_certificate.as_ref(),
            &cert.signature_value.data,
        )
        .is_ok()
}

/// The planner's settings from the policy file.
pub fn planner_settings(policy: &Policy) -> planner::Settings {
    let a = &policy.autoenrollment;
    planner::Settings {
        enabled: a.enroll,
        renew_expired_update_pending_remove_revoked: a.renew_expired_update_pending_remove_revoked,
        update_certificates_that_use_templates: a.update_certificates_that_use_templates,
        expiry_notification_percent: a.expiry_notification_percent,
        schedule_interval: time::Duration::try_from(policy.schedule.interval)
            .unwrap_or(time::Duration::hours(8)),
        renewal_threshold_percent: policy
            .templates
            .iter()
            .filter_map(|(cn, t)| t.renewal_threshold_percent.map(|p| (cn.clone(), p)))
            .collect::<BTreeMap<_, _>>(),
        ..planner::Settings::default()
    }
}

/// The account a policy manages, when it is known before binding: its
/// `account`, else the simple bind's user. `None` for a Kerberos bind
/// without `account`: the account is then the identity the directory
/// authenticated ([`crate::directory::Directory::account_for`]).
pub fn policy_account(policy: &Policy) -> Result<Option<String>, String> {
    match (&policy.account, &policy.directory.bind) {
        (Some(a), _) => Ok(Some(a.clone())),
        (None, Bind::Simple { user, .. }) => Ok(Some(user.clone())),
        (None, Bind::Kerberos(_)) => Ok(None),
        (None, Bind::SaslExternal) => Err(format!(
            "{}: account: SASL EXTERNAL needs the account named in the policy",
            policy.source.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

    fn params(name: &str) -> CertificateParams {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p
    }

    #[test]
    fn self_signed_certificates_are_told_from_intermediates() {
        let root_key = KeyPair::generate().unwrap();
        let root = params("root").self_signed(&root_key).unwrap();
        let issuer = Issuer::new(params("root"), root_key);
        let sub_key = KeyPair::generate().unwrap();
        let sub = params("sub").signed_by(&sub_key, &issuer).unwrap();
        // Same name as the root, another key: self-issued, not self-signed.
        let rollover_key = KeyPair::generate().unwrap();
        let rollover = params("root").signed_by(&rollover_key, &issuer).unwrap();
        assert!(is_self_signed(root.der()));
        assert!(!is_self_signed(sub.der()));
        assert!(!is_self_signed(rollover.der()));
        assert!(!is_self_signed(b"garbage"));
    }
}
