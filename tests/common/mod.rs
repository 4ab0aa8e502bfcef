//! Shared setup of the integration tests: a private lab directory per test.

#![allow(dead_code)]

use autoenroll::directory::{self, Directory, DirectorySnapshot, Verdict};
use autoenroll::lab::{Lab, LabOptions};
use autoenroll::policy::Policy;

pub struct TestLab {
    // Field order matters: the lab (slapd) stops before its folder is removed.
    pub lab: Lab,
    pub tmp: tempfile::TempDir,
}

pub fn start(extra_ldif: Option<String>) -> TestLab {
    let tmp = tempfile::tempdir().expect("temp dir");
    let lab = Lab::start(
        &tmp.path().join("lab"),
        LabOptions {
            extra_ldif,
            detach: false,
        },
    )
    .expect("lab starts");
    lab.write_policies().expect("policies");
    TestLab { lab, tmp }
}

impl TestLab {
    pub fn policy(&self, account: &str) -> Policy {
        Policy::load(&self.lab.policy_path(account)).expect("lab policy loads")
    }

    pub async fn snapshot(&self, account: &str) -> DirectorySnapshot {
        let policy = self.policy(account);
        let mut dir = Directory::connect(&policy.directory)
            .await
            .expect("connects");
        let acct = match &policy.directory.bind {
            autoenroll::policy::Bind::Simple { user, .. } => user.clone(),
            _ => unreachable!("lab policies bind simply"),
        };
        dir.snapshot(&acct).await.expect("snapshot")
    }

    pub async fn verdicts(&self, account: &str) -> Vec<Verdict> {
        let policy = self.policy(account);
        let snap = self.snapshot(account).await;
        directory::judge(
            &snap,
            directory::Options {
                context: policy.context,
                allow_prompts: policy.allow_prompts,
            },
            time::OffsetDateTime::now_utc(),
        )
    }
}
