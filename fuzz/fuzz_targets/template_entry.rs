//! A whole template (or enrollment service) entry as the directory returns it:
//! the snapshot's decoding from the entry's attributes (`template_from_entry`,
//! `service_from_entry`), then what a pulse does with a decoded template: the
//! key it would generate, the SDDL of its permissions, and the eligibility
//! rules (access check included) for a sample computer account.
//!
//! Input: records (`autoenroll_fuzz::records`) whose tags pick attribute names
//! from `autoenroll_fuzz::ATTRIBUTES`.
#![no_main]

use std::collections::BTreeMap;

use autoenroll::directory::sddl::to_sddl;
use autoenroll::directory::snapshot::{service_from_entry, template_from_entry};
use autoenroll::directory::{DirectorySnapshot, NamingContexts, Options, judge};
use autoenroll::model::{Account, Context, Sid, Token};
use autoenroll::pki::keys::KeyAlgorithm;
use libfuzzer_sys::fuzz_target;

const DN: &str = "CN=Fuzz,CN=Certificate Templates,CN=Public Key Services,CN=Services,\
                  CN=Configuration,DC=corp,DC=example";

fn account() -> Account {
    let domain = Sid::new(5, &[21, 1000, 2000, 3000]);
    let sid = domain.with_rid(1105);
    Account {
        dn: "CN=ws01,CN=Computers,DC=corp,DC=example".into(),
        sam_account_name: "ws01$".into(),
        sid: sid.clone(),
        dns_host_name: Some("ws01.corp.example".into()),
        user_principal_name: None,
        mail: None,
        user_certificates: Vec::new(),
        token: Token::new([
            sid,
            domain.with_rid(515),
            Sid::everyone(),
            Sid::authenticated_users(),
        ]),
    }
}

fuzz_target!(|data: &[u8]| {
    let entry = autoenroll_fuzz::entry_from_records(DN, data);
    let _ = service_from_entry(&entry);
    let Ok(template) = template_from_entry(&entry) else {
        return;
    };
    let _ = KeyAlgorithm::for_template(&template.template);
    let _ = KeyAlgorithm::template_minimum(&template.template);
    let _ = to_sddl(&template.security, None);
    let snapshot = DirectorySnapshot {
        naming: NamingContexts {
            default: "DC=corp,DC=example".into(),
            configuration: "CN=Configuration,DC=corp,DC=example".into(),
        },
        account: account(),
        templates: vec![template],
        unusable: Vec::new(),
        services: Vec::new(),
        roots: Vec::new(),
        ntauth: Vec::new(),
        aia: Vec::new(),
        crls: Vec::new(),
        warnings: Vec::new(),
        sid_names: BTreeMap::new(),
    };
    let options = Options {
        context: Context::Machine,
        allow_prompts: false,
    };
    let now = time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
    let verdicts = judge(&snapshot, options, now);
    assert_eq!(verdicts.len(), 1);
});
