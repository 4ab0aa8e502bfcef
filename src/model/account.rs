//! The account a pulse acts for, and its token: the set of SIDs that the access
//! check of [MS-DTYP] 2.5.3.2 compares with a template's security descriptor.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::Sid;

/// Which certificate store and which templates a pulse deals with: computer
/// certificates (templates with MACHINE_TYPE) or user certificates (all others).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Context {
    Machine,
    User,
}

impl std::fmt::Display for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Context::Machine => "machine",
            Context::User => "user",
        })
    }
}

/// The security principals an access check compares ACEs with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Token {
    sids: BTreeSet<Sid>,
}

impl Token {
    pub fn new(sids: impl IntoIterator<Item = Sid>) -> Self {
        Token {
            sids: sids.into_iter().collect(),
        }
    }

    pub fn contains(&self, sid: &Sid) -> bool {
        self.sids.contains(sid)
    }

    pub fn insert(&mut self, sid: Sid) {
        self.sids.insert(sid);
    }

    pub fn iter(&self) -> impl Iterator<Item = &Sid> {
        self.sids.iter()
    }

    pub fn len(&self) -> usize {
        self.sids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sids.is_empty()
    }
}

/// A computer or user account as the directory describes it: what the engine and
/// the CA need to decide eligibility and to build subjects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Account {
    /// Distinguished name of the account object.
    pub dn: String,
    /// `sAMAccountName`; computers end in `$`.
    pub sam_account_name: String,
    pub sid: Sid,
    /// `dNSHostName` (computers); the CA needs it for DNS subject names.
    pub dns_host_name: Option<String>,
    pub user_principal_name: Option<String>,
    pub mail: Option<String>,
    /// DER certificates of `userCertificate`, for AUTO_ENROLLMENT_CHECK_USER_DS_CERTIFICATE.
    #[serde(skip)]
    pub user_certificates: Vec<Vec<u8>>,
    /// Every SID the account acts with: its own, its primary group, its nested
    /// groups, its `sIDHistory`, Everyone and Authenticated Users.
    #[serde(skip)]
    pub token: Token,
}
