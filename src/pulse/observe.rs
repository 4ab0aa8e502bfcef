//! What a pulse (and `plan`, `status`) looks at: the directory snapshot, the
//! verdicts, the store, the worker's state and the CRLs, gathered into the
//! planner's input.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use crate::directory::{self, DirectorySnapshot, Verdict};
use crate::model::Template;
use crate::pki::Revocations;
use crate::planner::{self, PlanInput};
use crate::policy::{Bind, Policy};
use crate::store::{State, StoreSnapshot};

/// Everything a plan is made of, read once.
#[derive(Debug, Clone)]
pub struct Observation {
    pub directory: DirectorySnapshot,
    pub templates: Vec<Template>,
    pub verdicts: Vec<Verdict>,
    pub store: StoreSnapshot,
    pub state: State,
    pub revocations: Revocations,
    pub settings: planner::Settings,
    /// CRLs of the directory that could not be read (logged, not fatal).
    pub crl_problems: Vec<String>,
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
        let crls = directory
            .crls
            .iter()
            .flat_map(|c| c.base.iter().chain(c.delta.iter()))
            .map(Vec::as_slice);
        let (revocations, crl_problems) = Revocations::from_crls(crls);
        Observation {
            settings: planner_settings(policy),
            templates: directory
                .templates
                .iter()
                .map(|t| t.template.clone())
                .collect(),
            directory,
            verdicts,
            store,
            state,
            revocations,
            crl_problems,
        }
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

/// The account a policy manages: its `account`, else the bind identity.
pub fn policy_account(policy: &Policy) -> Result<String, String> {
    match (&policy.account, &policy.directory.bind) {
        (Some(a), _) => Ok(a.clone()),
        (None, Bind::Simple { user, .. }) => Ok(user.clone()),
        (None, Bind::SaslExternal) => Err(format!(
            "{}: account: SASL EXTERNAL needs the account named in the policy",
            policy.source.display()
        )),
    }
}
