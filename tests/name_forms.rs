//! Every Active Directory name form, in the CA's UsernameTokens and in the
//! client's directory binds and account resolution, against the lab (slapd,
//! which takes only DNs in simple binds and hides entries from anonymous
//! searches).
//!
//! - The CA resolves a DN, `CORP\name`, a UPN, the implicit UPN
//!   `sAMAccountName@corp.example` and a `sAMAccountName` with its own
//!   service account, then checks the password by binding as the DN.
//! - The client resolves `account` in every form after binding.
//! - The client's simple bind sends a name that is not a DN as given; slapd
//!   refuses it, and the error says what servers accept.

mod common;

use autoenroll::ca::authority::LOGIN_REFUSED;
use autoenroll::ca::db::ListFilter;
use autoenroll::directory::{Directory, DirectoryError};
use autoenroll::enroll::{Outcome, enrollment_request};
use autoenroll::lab::SAMPLE_ACCOUNTS;
use autoenroll::policy::Bind;
use common::{client_with, row_count, rsa, start_time, template};

const WS01_DN: &str = "CN=ws01,CN=Computers,DC=corp,DC=example";
const ALICE_DN: &str = "CN=alice,CN=Users,DC=corp,DC=example";

/// Each form of ws01's and alice's names, with the account it designates.
const FORMS: [(&str, &str); 8] = [
    (WS01_DN, WS01_DN),
    ("CORP\\ws01$", WS01_DN),
    ("ws01$@corp.example", WS01_DN),
    ("ws01$", WS01_DN),
    (ALICE_DN, ALICE_DN),
    ("CORP\\alice", ALICE_DN),
    ("alice@corp.example", ALICE_DN),
    ("alice", ALICE_DN),
];

/// Names that designate no single account: a wildcard, filter injections,
/// an escape sequence, another domain, a DN that is no account.
const NOBODY: [&str; 7] = [
    "*",
    "ws01$)(cn=*",
    "*)(objectClass=*",
    "a\\5c",
    "OTHER\\ws01$",
    "ws01$@other.example",
    "CN=admin,DC=corp,DC=example",
];

fn password(dn: &str) -> String {
    SAMPLE_ACCOUNTS
        .iter()
        .find(|a| a.dn == dn)
        .expect("a sample account")
        .password()
}

/// The template each sample account enrolls in here.
fn template_of(dn: &str) -> &'static str {
    if dn == WS01_DN {
        "WorkstationAuth"
    } else {
        "User"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ca_takes_every_name_form_and_refuses_all_alike() {
    let lab = common::start(None);
    let ca = lab.start_ca(start_time()).await;
    let workstation = template(&lab, "WorkstationAuth").await;
    let user = template(&lab, "User").await;
    let csr_for = |dn: &str| {
        let t = if dn == WS01_DN { &workstation } else { &user };
        enrollment_request(t, &rsa(), None).unwrap()
    };

    for (name, dn) in FORMS {
        let csr = csr_for(dn);
        let outcome = client_with(&ca, name, &password(dn))
            .submit(&ca.endpoint, &csr, template_of(dn))
            .await
            .unwrap();
        let Outcome::Issued { certificate, .. } = &outcome else {
            panic!("{name}: {outcome:?}");
        };
        assert!(!certificate.is_empty(), "{name}");
        // The request is the resolved account's, whatever the form.
        let last = ca
            .authority
            .db()
            .list(ListFilter::All)
            .unwrap()
            .into_iter()
            .max_by_key(|r| r.id)
            .unwrap();
        let sam = if dn == WS01_DN { "WS01$" } else { "alice" };
        assert_eq!(last.requester, sam, "{name}");
    }

    // A wrong password, in every form, and a name that designates no single
    // account: one answer, nothing recorded.
    let before = row_count(&ca);
    let csr = csr_for(WS01_DN);
    let refused = FORMS
        .iter()
        .map(|(name, _)| (*name, "not the password"))
        .chain(NOBODY.iter().map(|name| (*name, "any password")));
    for (name, pw) in refused {
        let outcome = client_with(&ca, name, pw)
            .submit(&ca.endpoint, &csr, "WorkstationAuth")
            .await
            .unwrap();
        let Outcome::Denied {
            hresult, message, ..
        } = &outcome
        else {
            panic!("{name}: {outcome:?}");
        };
        assert_eq!(*hresult, 0x8007_0005, "{name}: {message}");
        assert_eq!(message, LOGIN_REFUSED, "{name}");
    }
    assert_eq!(row_count(&ca), before, "a refused login records nothing");
}

/// `account` resolution after the bind (the policy binds as ws01 by DN).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_resolves_its_account_in_every_form() {
    let lab = common::start(None);
    let policy = lab.policy("ws01");
    let mut dir = Directory::connect(&policy.directory).await.unwrap();
    for (name, dn) in FORMS {
        let snap = dir
            .snapshot(name)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(snap.account.dn.eq_ignore_ascii_case(dn), "{name}");
    }
    for name in NOBODY {
        let Err(err) = dir.snapshot(name).await else {
            panic!("{name} resolved");
        };
        let text = err.to_string();
        assert!(
            matches!(err, DirectoryError::Content { .. }),
            "{name}: {text}"
        );
        if name != "CN=admin,DC=corp,DC=example" {
            assert!(text.contains("tried"), "{name}: the forms tried: {text}");
        }
    }
    let err = dir.snapshot("ws01$@other.example").await.unwrap_err();
    assert!(err.to_string().contains("no implicit UPN"), "{err}");
    let err = dir.snapshot("OTHER\\ws01$").await.unwrap_err();
    assert!(err.to_string().contains("NetBIOS name CORP"), "{err}");
}

/// slapd takes only DNs in a simple bind; the client sends any other form as
/// given (no anonymous lookup) and its error says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simple_bind_by_another_form_against_slapd_says_what_works() {
    let lab = common::start(None);
    let mut policy = lab.policy("ws01");
    for name in ["CORP\\ws01$", "ws01$@corp.example", "ws01$"] {
        if let Bind::Simple { user, .. } = &mut policy.directory.bind {
            *user = name.into();
        }
        let err = Directory::connect(&policy.directory)
            .await
            .err()
            .expect(name);
        let text = err.to_string();
        assert!(matches!(err, DirectoryError::Bind { .. }), "{name}: {text}");
        for part in [
            name,
            "invalidDNSyntax",
            "sent as given",
            "OpenLDAP",
            "a DN always works",
        ] {
            assert!(text.contains(part), "{name}: {part:?} in {text}");
        }
    }
    // The DN of the same policy binds.
    if let Bind::Simple { user, .. } = &mut policy.directory.bind {
        *user = WS01_DN.into();
    }
    Directory::connect(&policy.directory).await.unwrap();
}
