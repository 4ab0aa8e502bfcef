//! Writes the seed corpora under `fuzz/seeds/<target>/` from the project's
//! own data: the lab forest (`ldif/forest.ldif`: SIDs, GUIDs, periods,
//! security descriptors and their SDDL, template and CA entries), the sample
//! policies, and certificates, keys, requests, CRLs and WSTEP messages made by
//! the library itself. A handful of files per target; run again to refresh:
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --example seeds
//! ```

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use autoenroll::ca::db::RevokedEntry;
use autoenroll::pki::cms::{build_renewal_request, certs_only};
use autoenroll::pki::csr::{CsrOptions, build_csr};
use autoenroll::pki::keys::{KeyAlgorithm, PrivateKey};
use autoenroll::pki::template_ext::{der_tlv, encode_template_information, encode_template_name};
use autoenroll::store::{State, Store, TemplateFailures};
use autoenroll::wstep::{
    RequestKind, UsernameToken, WstepError, WstepFault, WstepRequest, WstepResponse,
};
use autoenroll_fuzz::{ENTRY_META, REQUEST_META, attribute_tag, encode_records};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use time::OffsetDateTime;

/// At most this many seeds of one kind from the forest.
const HANDFUL: usize = 6;

type Ldif = Vec<LdifEntry>;

/// One LDIF entry: its attributes in order, and the `# SDDL:` comments in it.
#[derive(Default)]
struct LdifEntry {
    attrs: Vec<(String, Vec<u8>)>,
    sddl: Vec<String>,
}

impl LdifEntry {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.attrs
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    fn is_a(&self, class: &str) -> bool {
        self.values("objectClass")
            .any(|v| v.eq_ignore_ascii_case(class.as_bytes()))
    }
}

/// Reads LDIF: entries split by blank lines, folded lines joined, `name::`
/// values base64-decoded.
fn read_ldif(text: &str) -> Ldif {
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines() {
        match (line.strip_prefix(' '), lines.last_mut()) {
            (Some(rest), Some(last)) if !last.starts_with('#') => last.push_str(rest),
            _ => lines.push(line.to_string()),
        }
    }
    let mut entries = vec![LdifEntry::default()];
    for line in lines {
        let current = entries.last_mut().expect("one entry at least");
        if line.trim().is_empty() {
            if !current.attrs.is_empty() {
                entries.push(LdifEntry::default());
            }
        } else if let Some(sddl) = line.strip_prefix("# SDDL: ") {
            current.sddl.push(sddl.to_string());
        } else if line.starts_with('#') {
        } else if let Some((name, value)) = line.split_once(":: ") {
            let bytes = STANDARD.decode(value.trim()).expect("base64 in the LDIF");
            current.attrs.push((name.to_string(), bytes));
        } else if let Some((name, value)) = line.split_once(": ") {
            current
                .attrs
                .push((name.to_string(), value.as_bytes().to_vec()));
        }
    }
    entries.retain(|e| !e.attrs.is_empty());
    entries
}

/// Distinct values, first seen first, at most [`HANDFUL`].
fn handful<'a>(values: impl Iterator<Item = &'a [u8]>) -> Vec<Vec<u8>> {
    let mut seen = BTreeSet::new();
    values
        .filter(|v| seen.insert(v.to_vec()))
        .take(HANDFUL)
        .map(<[u8]>::to_vec)
        .collect()
}

struct Corpus {
    root: PathBuf,
}

impl Corpus {
    fn write(&self, target: &str, name: &str, bytes: impl AsRef<[u8]>) {
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir).expect("create a corpus folder");
        std::fs::write(dir.join(name), bytes).expect("write a seed");
    }

    fn write_all(&self, target: &str, prefix: &str, seeds: &[Vec<u8>]) {
        for (i, s) in seeds.iter().enumerate() {
            self.write(target, &format!("{prefix}-{i}"), s);
        }
    }
}

fn from_forest(corpus: &Corpus, forest: &Ldif) {
    let all = |name: &'static str| forest.iter().flat_map(move |e| e.values(name));
    let sids = handful(all("objectSid"));
    corpus.write_all("sid", "objectSid", &sids);
    for (i, s) in sids.iter().enumerate().take(3) {
        let sid = autoenroll::model::Sid::from_bytes(s).expect("a forest SID");
        corpus.write("sid", &format!("text-{i}"), sid.to_string());
    }
    corpus.write("sid", "text-hex-authority", "S-1-0x0000FFFFFFFF-1-2");
    let guids = handful(all("objectGUID"));
    corpus.write_all("guid", "objectGUID", &guids[..guids.len().min(3)]);
    for (i, g) in guids.iter().enumerate().take(3) {
        let guid = autoenroll::model::Guid::from_bytes(g).expect("a forest GUID");
        corpus.write("guid", &format!("text-{i}"), format!("{{{guid}}}"));
    }
    let periods = handful(all("pKIExpirationPeriod").chain(all("pKIOverlapPeriod")));
    corpus.write_all("period", "period", &periods);
    corpus.write_all(
        "security_descriptor",
        "nTSecurityDescriptor",
        &handful(all("nTSecurityDescriptor")),
    );
    let sddl: Vec<&[u8]> = forest
        .iter()
        .flat_map(|e| e.sddl.iter().map(|s| s.as_bytes()))
        .collect();
    corpus.write_all("sddl", "forest", &handful(sddl.into_iter()));

    let templates = forest.iter().filter(|e| e.is_a("pKICertificateTemplate"));
    let services = forest.iter().filter(|e| e.is_a("pKIEnrollmentService"));
    for (i, e) in templates.take(HANDFUL).chain(services.take(2)).enumerate() {
        let records: Vec<(u8, &[u8])> = e
            .attrs
            .iter()
            .filter_map(|(n, v)| attribute_tag(n).map(|t| (t, v.as_slice())))
            .collect();
        corpus.write(
            "template_entry",
            &format!("entry-{i}"),
            encode_records(&records),
        );
    }
    let templates = forest.iter().filter(|e| e.is_a("pKICertificateTemplate"));
    let services = forest.iter().filter(|e| e.is_a("pKIEnrollmentService"));
    for (i, e) in templates.take(3).chain(services.take(1)).enumerate() {
        corpus.write("ldap_entry", &format!("entry-{i}"), search_result_entry(e));
    }
}

/// The entry as a SearchResultEntry ([RFC 4511] 4.5.2): [APPLICATION 4]
/// { objectName, attributes SEQUENCE OF { type, vals SET OF value } }.
fn search_result_entry(e: &LdifEntry) -> Vec<u8> {
    let dn = e.values("dn").next().unwrap_or_default();
    let mut names: Vec<&str> = Vec::new();
    for (n, _) in &e.attrs {
        if n != "dn" && !names.contains(&n.as_str()) {
            names.push(n);
        }
    }
    let attributes: Vec<u8> = names
        .iter()
        .flat_map(|n| {
            let vals: Vec<u8> = e.values(n).flat_map(|v| der_tlv(0x04, v)).collect();
            der_tlv(
                0x30,
                &[der_tlv(0x04, n.as_bytes()), der_tlv(0x31, &vals)].concat(),
            )
        })
        .collect();
    der_tlv(
        0x64,
        &[der_tlv(0x04, dn), der_tlv(0x30, &attributes)].concat(),
    )
}

fn policies(corpus: &Corpus, project: &Path) {
    for name in ["machine.toml", "user.toml", "lab.toml"] {
        let text = std::fs::read(project.join("policies").join(name)).expect("a sample policy");
        corpus.write("policy", name, text);
    }
    corpus.write(
        "policy",
        "ca.toml",
        "name = \"corp-CA\"\ndns_host_name = \"ca.corp.example\"\n\
         listen = \"127.0.0.1:8443\"\nurl = \"https://127.0.0.1:8443\"\n\
         http_listen = \"127.0.0.1:8080\"\nhttp_url = \"http://127.0.0.1:8080\"\n\
         state_dir = \"ca\"\nkey_algorithm = \"rsa3072\"\n\n[directory]\n\
         url = \"ldap://127.0.0.1:389\"\nstarttls = true\nca_file = \"tls/ca.pem\"\n\
         timeout = \"10s\"\nbind = \"simple\"\nuser = \"CN=ca-svc,CN=Users,DC=corp,DC=example\"\n\
         password_file = \"secrets/ca-svc.secret\"\n",
    );
}

/// A CA and a certificate it issued with the template extension, as the lab CA does.
struct Pki {
    ca_der: Vec<u8>,
    ca_pem: String,
    ca_issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    leaf_key: PrivateKey,
    leaf_der: Vec<u8>,
    leaf_pem: String,
}

fn pki() -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, CustomExtension, DnType, IsCa, KeyUsagePurpose,
    };
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.distinguished_name.push(DnType::CommonName, "corp-CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let ca_issuer = rcgen::Issuer::new(ca, ca_key);
    let leaf_key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).expect("leaf key");
    let mut leaf = CertificateParams::new(vec!["ws01.corp.example".to_string()]).expect("params");
    leaf.distinguished_name
        .push(DnType::CommonName, "ws01.corp.example");
    leaf.custom_extensions
        .push(CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 4, 1, 311, 21, 7],
            encode_template_information("1.3.6.1.4.1.311.21.8.1000.2000.14", 100, 3)
                .expect("template information"),
        ));
    leaf.custom_extensions
        .push(CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 4, 1, 311, 20, 2],
            encode_template_name("Machine"),
        ));
    let leaf_cert = leaf
        .signed_by(&leaf_key.rcgen_key_pair().expect("key pair"), &ca_issuer)
        .expect("leaf certificate");
    Pki {
        ca_der: ca_cert.der().to_vec(),
        ca_pem: ca_cert.pem(),
        ca_issuer,
        leaf_der: leaf_cert.der().to_vec(),
        leaf_pem: leaf_cert.pem(),
        leaf_key,
    }
}

fn crypto(corpus: &Corpus, pki: &Pki) {
    corpus.write("certificate", "leaf.der", &pki.leaf_der);
    corpus.write("certificate", "ca.der", &pki.ca_der);
    corpus.write(
        "certificate",
        "template-information",
        encode_template_information("1.3.6.1.4.1.311.21.8.7", 100, 2).expect("encodes"),
    );
    corpus.write(
        "certificate",
        "template-name",
        encode_template_name("WebServer"),
    );

    for (name, alg) in [
        ("p256", KeyAlgorithm::EcdsaP256),
        ("p384", KeyAlgorithm::EcdsaP384),
        ("rsa2048", KeyAlgorithm::Rsa { bits: 2048 }),
    ] {
        let key = PrivateKey::generate(alg).expect("a key");
        corpus.write("private_key", &format!("{name}.pem"), key.to_pem());
        corpus.write("private_key", &format!("{name}.pk8"), key.pkcs8_der());
        corpus.write("private_key", &format!("{name}.spki"), key.public_key_der());
    }

    let rsa = PrivateKey::generate(KeyAlgorithm::Rsa { bits: 2048 }).expect("a key");
    let dns = ["ws01.corp.example".to_string()];
    let csrs = [
        ("empty-subject", CsrOptions::default()),
        (
            "template",
            CsrOptions {
                template: Some(("1.3.6.1.4.1.311.21.8.1000.2000.14", 100, 3)),
                ..CsrOptions::default()
            },
        ),
        (
            "v1-name-and-san",
            CsrOptions {
                subject_common_name: Some("ws01.corp.example"),
                dns_names: &dns,
                template_name: Some("Machine"),
                ..CsrOptions::default()
            },
        ),
        (
            "renewal",
            CsrOptions {
                template: Some(("1.3.6.1.4.1.311.21.8.1000.2000.14", 100, 3)),
                renewal_certificate: Some(&pki.leaf_der),
                ..CsrOptions::default()
            },
        ),
    ];
    let mut renewal_csr = Vec::new();
    for (name, options) in csrs {
        let key = if name == "empty-subject" {
            &pki.leaf_key
        } else {
            &rsa
        };
        let der = build_csr(key, &options).expect("a request");
        if name == "renewal" {
            renewal_csr = der.clone();
        }
        corpus.write("csr", name, der);
    }

    let renewal =
        build_renewal_request(&renewal_csr, &pki.leaf_der, &pki.leaf_key).expect("renewal");
    corpus.write("cms", "renewal", &renewal);
    let chain = certs_only(&[pki.leaf_der.clone(), pki.ca_der.clone()]).expect("chain");
    corpus.write("cms", "certs-only", &chain);
    corpus.write(
        "cms",
        "certs-only-empty",
        certs_only(&[]).expect("empty chain"),
    );

    let now = OffsetDateTime::from_unix_timestamp(1_736_150_000).expect("a time");
    for (name, revoked) in [
        ("empty", vec![]),
        (
            "two-revoked",
            vec![
                RevokedEntry {
                    serial: "0123456789abcdef".into(),
                    revoked_at: now,
                    reason: 1,
                },
                RevokedEntry {
                    serial: "7f".into(),
                    revoked_at: now,
                    reason: 0,
                },
            ],
        ),
    ] {
        let input = autoenroll::ca::crl::CrlInput {
            number: 7,
            this_update: now,
            next_update: now + time::Duration::days(7),
            revoked: &revoked,
        };
        let der = autoenroll::ca::crl::build_crl(&input, &pki.ca_issuer).expect("a CRL");
        corpus.write("crl", name, der);
    }

    wstep(corpus, &renewal_csr, &renewal, &pki.leaf_der, &chain);
}

fn wstep(corpus: &Corpus, csr: &[u8], renewal: &[u8], cert: &[u8], chain: &[u8]) {
    let mut issue = WstepRequest::new(RequestKind::Issue {
        token: csr.to_vec(),
    });
    issue.to = Some("https://ca.corp.example/corp-CA_CES_UsernamePassword/service.svc/CES".into());
    issue.credentials = Some(UsernameToken {
        username: "CN=ws01,CN=Computers,DC=corp,DC=example".into(),
        password: "not-a-real-password".into(),
    });
    issue.context = vec![("CertificateTemplate".into(), "Machine".into())];
    corpus.write("wstep_request", "issue", issue.to_xml());
    let renew = WstepRequest::new(RequestKind::Issue {
        token: renewal.to_vec(),
    });
    corpus.write("wstep_request", "renewal", renew.to_xml());
    let query = WstepRequest::new(RequestKind::QueryTokenStatus { request_id: 42 });
    corpus.write("wstep_request", "query", query.to_xml());

    let relates = Some(issue.message_id.clone());
    let issued = WstepResponse::issued(relates.clone(), 7, cert.to_vec(), Some(chain.to_vec()));
    corpus.write("wstep_reply", "issued", issued.to_xml());
    corpus.write(
        "wstep_reply",
        "pending",
        WstepResponse::pending(relates.clone(), 8).to_xml(),
    );
    let mut bare = WstepResponse::issued(None, 10, cert.to_vec(), None);
    bare.message = "Issued by corp-CA".into();
    corpus.write("wstep_reply", "issued-no-chain", bare.to_xml());
    let denied = WstepFault::denied(
        relates.clone(),
        0x8009_4800,
        "template not published",
        Some(9),
    );
    corpus.write("wstep_reply", "fault-denied", denied.to_xml());
    let malformed = WstepFault::malformed(relates, &WstepError::Doctype);
    corpus.write("wstep_reply", "fault-malformed", malformed.to_xml());
}

fn store(corpus: &Corpus, pki: &Pki) {
    let time = |s: &str| {
        OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).expect("a time")
    };
    let state = State {
        failures: vec![TemplateFailures {
            template: "Machine".into(),
            count: 3,
            last_failure: time("2025-01-06T09:31:00Z"),
            last_error: "the CA did not answer within 60 s".into(),
        }],
        last_pulse: Some(time("2025-01-06T09:31:00.123456789+01:00")),
        last_pulse_ok: Some(false),
        directory_marker: Some("20250106093100.0Z".into()),
    };
    let dir = std::env::temp_dir().join(format!("autoenroll-seeds-{}", std::process::id()));
    let scratch = Store::open(&dir).expect("a scratch store");
    let lock = scratch.lock().expect("its lock");
    scratch.write_state(&lock, &state).expect("write state");
    let state_text = std::fs::read(dir.join("state.toml")).expect("state.toml");
    drop(lock);
    let _ = std::fs::remove_dir_all(&dir);
    corpus.write("state_toml", "failures", &state_text);
    corpus.write(
        "state_toml",
        "fresh",
        "last_pulse = \"2025-01-06T09:31:00Z\"\nlast_pulse_ok = true\n",
    );

    let archived = format!(
        "{ENTRY_META}archived_at = \"2025-01-07T00:00:00Z\"\narchived_why = \"superseded\"\n"
    );
    let abandoned = format!(
        "{REQUEST_META}abandoned_at = \"2025-01-07T00:00:00Z\"\nabandoned_why = \"denied\"\n"
    );
    for (name, text) in [
        ("entry", ENTRY_META.to_string()),
        ("request", REQUEST_META.to_string()),
        ("archived", archived.clone()),
        ("abandoned", abandoned.clone()),
    ] {
        corpus.write("meta_toml", name, text);
    }

    let key_pem = pki.leaf_key.to_pem();
    let chain_pem = format!("{}{}", pki.leaf_pem, pki.ca_pem);
    corpus.write("store_pem", "cert.pem", &pki.leaf_pem);
    corpus.write("store_pem", "cert.der", &pki.leaf_der);
    corpus.write(
        "store_pem",
        "chain-crlf.pem",
        chain_pem.replace('\n', "\r\n"),
    );
    corpus.write("store_pem", "key.pem", &key_pem);
    corpus.write(
        "store_pem",
        "key-then-cert.pem",
        format!("{key_pem}{}", pki.leaf_pem),
    );

    // store_entry: tags 0 cert, 1 key, 2 entry meta, 3 request meta, 4 request key, 5 state.
    let entry = |items: &[(u8, &[u8])]| encode_records(items);
    corpus.write(
        "store_entry",
        "issued",
        entry(&[(0, pki.leaf_pem.as_bytes()), (1, key_pem.as_bytes())]),
    );
    corpus.write(
        "store_entry",
        "der-and-state",
        entry(&[(0, &pki.leaf_der), (5, &state_text)]),
    );
    corpus.write(
        "store_entry",
        "archive-intent",
        entry(&[(2, archived.as_bytes())]),
    );
    corpus.write(
        "store_entry",
        "abandon-intent",
        entry(&[(3, abandoned.as_bytes())]),
    );
    corpus.write(
        "store_entry",
        "request-for-installed-key",
        entry(&[
            (0, pki.leaf_pem.as_bytes()),
            (1, key_pem.as_bytes()),
            (4, key_pem.as_bytes()),
        ]),
    );
}

/// SCEP: capability lists, GetCACert bodies, a PKCSReq and CertReps (as
/// both sides receive them), an envelope and a CertPoll body.
fn scep(corpus: &Corpus, pki: &Pki) {
    use autoenroll::scep::caps::ContentCipher;
    use autoenroll::scep::envelope;
    use autoenroll::scep::message::{self, FailInfo, MessageType, PkiStatus, Transaction};
    use autoenroll::scep::request::{CsrSpec, NameAttribute, build_csr, transient_certificate};
    corpus.write(
        "scep",
        "caps-micromdm",
        "Renewal\nSHA-1\nSHA-256\nAES\nDES3\nSCEPStandard\nPOSTPKIOperation",
    );
    corpus.write(
        "scep",
        "caps-crlf",
        "POSTPKIOperation\r\nSHA-256\r\nDES3\r\n",
    );
    corpus.write("scep", "ca.der", &pki.ca_der);
    corpus.write(
        "scep",
        "ca-ra.p7b",
        certs_only(&[pki.ca_der.clone(), pki.leaf_der.clone()]).expect("certs-only"),
    );
    let key = PrivateKey::generate(KeyAlgorithm::Rsa { bits: 2048 }).expect("a key");
    let spec = CsrSpec {
        subject: vec![NameAttribute {
            oid: "2.5.4.3".into(),
            value: "ws01".into(),
        }],
        ..CsrSpec::default()
    };
    let csr = build_csr(&key, &spec, Some("challenge")).expect("a CSR");
    let signer = transient_certificate(&key, &spec.subject, std::time::SystemTime::now())
        .expect("a certificate");
    let sealed = envelope::seal(&csr, &signer, ContentCipher::Aes128Cbc).expect("an envelope");
    corpus.write("scep", "envelope-aes", &sealed);
    corpus.write(
        "scep",
        "envelope-3des",
        envelope::seal(&csr, &signer, ContentCipher::DesEde3Cbc).expect("an envelope"),
    );
    let tx = Transaction {
        message_type: MessageType::PkcsReq,
        transaction_id: message::transaction_id_for(&key.public_key_der()),
        sender_nonce: vec![1; 16],
        recipient_nonce: None,
        pki_status: None,
        fail_info: None,
        fail_info_text: None,
    };
    corpus.write(
        "scep",
        "pkcsreq",
        message::build(&tx, Some(&sealed), &signer, &key, &[]).expect("a message"),
    );
    let failure = Transaction {
        message_type: MessageType::CertRep,
        recipient_nonce: Some(vec![1; 16]),
        pki_status: Some(PkiStatus::Failure),
        fail_info: Some(FailInfo::BadRequest),
        fail_info_text: Some("challenge expired".into()),
        ..tx.clone()
    };
    corpus.write(
        "scep",
        "certrep-failure",
        message::build(&failure, None, &signer, &key, &[]).expect("a message"),
    );
    corpus.write(
        "scep",
        "issuer-and-subject",
        message::issuer_and_subject(&[0x30, 0x00], &[0x30, 0x00]).expect("names"),
    );
}

fn main() {
    let fuzz_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let project = fuzz_dir.parent().expect("the project folder");
    let corpus = Corpus {
        root: fuzz_dir.join("seeds"),
    };
    let forest = std::fs::read_to_string(project.join("ldif/forest.ldif")).expect("the forest");
    from_forest(&corpus, &read_ldif(&forest));
    policies(&corpus, project);
    let pki = pki();
    crypto(&corpus, &pki);
    store(&corpus, &pki);
    scep(&corpus, &pki);
    println!("seeds written under {}", corpus.root.display());
}
