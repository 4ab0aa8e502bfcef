//! `autoenroll plan` and `status` against a private slapd and a store holding
//! certificates copied in by hand (recognized by their template extension).

mod common;

use std::path::Path;
use std::process::Command;

use autoenroll::pki::template_ext::{encode_template_information, encode_template_name};
use time::{Duration, OffsetDateTime};

const WORKSTATION_OID: &str = "1.3.6.1.4.1.311.21.8.1000.2000.3000.4000.5000.6000.8782410.71273024";
const SHORT_LIVED_CN: &str = "ShortLived";

/// A self-signed certificate carrying a template identity, written into
/// `my/<name>/` the way an administrator would copy one in.
fn put_certificate(
    store: &Path,
    name: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    template: Option<(&str, u32)>,
    v1_name: Option<&str>,
    with_key: bool,
) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["ws01.corp.example".to_string()]).unwrap();
    params.not_before = not_before;
    params.not_after = not_after;
    if let Some((oid, major)) = template {
        params
            .custom_extensions
            .push(rcgen::CustomExtension::from_oid_content(
                &[1, 3, 6, 1, 4, 1, 311, 21, 7],
                encode_template_information(oid, major, 0).unwrap(),
            ));
    }
    if let Some(cn) = v1_name {
        params
            .custom_extensions
            .push(rcgen::CustomExtension::from_oid_content(
                &[1, 3, 6, 1, 4, 1, 311, 20, 2],
                encode_template_name(cn),
            ));
    }
    let cert = params.self_signed(&key).unwrap();
    let dir = store.join("my").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    if with_key {
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    } else {
        let other = rcgen::KeyPair::generate().unwrap();
        std::fs::write(dir.join("key.pem"), other.serialize_pem()).unwrap();
    }
}

fn run(args: &[&str], policy: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_autoenroll"))
        .args(args)
        .arg("--policy")
        .arg(policy)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.code().is_some(),
        "killed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.code().unwrap(),
        stdout + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn plan_and_status_of_a_hand_filled_store() {
    let lab = common::start(None);
    let policy = lab.lab.policy_path("ws01");
    let store = lab.lab.dir.join("stores/ws01");
    let now = OffsetDateTime::now_utc();

    // An empty store: every eligible template is missing (exit 2) and the plan enrolls it.
    let (code, out) = run(&["status"], &policy);
    assert_eq!(code, 2, "{out}");
    let (code, out) = run(&["plan", "--json"], &policy);
    assert_eq!(code, 0, "{out}");
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    let enrolls: Vec<&str> = plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "enroll")
        .map(|a| a["template"].as_str().unwrap())
        .collect();
    assert_eq!(enrolls, ["PendingMachine", "ShortLived", "WorkstationAuth"]);

    // Healthy certificates for every eligible template: status 0.
    put_certificate(
        &store,
        "wa",
        now - Duration::days(10),
        now + Duration::days(355),
        Some((WORKSTATION_OID, 101)),
        None,
        true,
    );
    put_certificate(
        &store,
        "pm",
        now - Duration::days(1),
        now + Duration::days(364),
        None,
        Some("PendingMachine"),
        true,
    );
    put_certificate(
        &store,
        "sl",
        now - Duration::minutes(5),
        now + Duration::minutes(55),
        None,
        Some(SHORT_LIVED_CN),
        true,
    );
    put_certificate(
        &store,
        "foreign",
        now - Duration::days(1),
        now + Duration::days(30),
        None,
        None,
        true,
    );
    let (code, out) = run(&["status"], &policy);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("foreign"), "{out}");

    // `plan --at` past the ShortLived renewal point (80% of 1 hour = 48 min): renew.
    let at = (now + Duration::minutes(45))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (_, out) = run(&["plan", "--json", "--at", &at], &policy);
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    let renew = plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["template"] == SHORT_LIVED_CN && a["action"] == "renew");
    assert!(renew.is_some(), "{out}");
    assert!(plan["next_wake"].is_string(), "{out}");

    // A renewal falls due: status 4. Then an expired one: status 3. Then a key mismatch: 5.
    std::fs::remove_dir_all(store.join("my/sl")).unwrap();
    put_certificate(
        &store,
        "sl",
        now - Duration::minutes(50),
        now + Duration::minutes(10),
        None,
        Some(SHORT_LIVED_CN),
        true,
    );
    let (code, out) = run(&["status"], &policy);
    assert_eq!(code, 4, "{out}");
    std::fs::remove_dir_all(store.join("my/sl")).unwrap();
    put_certificate(
        &store,
        "sl",
        now - Duration::minutes(70),
        now - Duration::minutes(10),
        None,
        Some(SHORT_LIVED_CN),
        true,
    );
    let (code, out) = run(&["status"], &policy);
    assert_eq!(code, 3, "{out}");
    put_certificate(
        &store,
        "mismatch",
        now - Duration::days(1),
        now + Duration::days(300),
        Some((WORKSTATION_OID, 101)),
        None,
        false,
    );
    let (code, out) = run(&["status", "--json"], &policy);
    assert_eq!(code, 5, "{out}");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        status["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["health"] == "key_mismatch"),
        "{out}"
    );
}

/// A published template that cannot be used (a bad `flags` value) but whose
/// `msPKI-Supersede-Templates` is readable holds back exactly the template it
/// names: that one is not newly enrolled (it may have been replaced), `plan`
/// and `templates` say which template to fix and why, and every other template
/// is enrolled as usual. Before, the template it superseded was enrolled on
/// partial knowledge; then, for a while, every new enrollment was held back.
/// (A supersede list that cannot be read still holds back every new
/// enrollment; slapd refuses the non-UTF-8 value that would make it so, so that
/// branch is covered by the eligibility and snapshot unit tests.)
#[test]
fn an_unusable_published_template_holds_back_what_it_supersedes() {
    let broken = autoenroll::lab::template_variant_ldif(
        "WorkstationAuth",
        "WorkstationAuthV2",
        &[
            ("flags", Some(": not-a-number".into())),
            (
                "msPKI-Supersede-Templates",
                Some(": workstationauth".into()),
            ),
        ],
    )
    .expect("WorkstationAuth is in the sample forest");
    let lab = common::start(Some(broken));
    lab.admin(
        "ldapmodify",
        "dn: CN=corp-CA,CN=Enrollment Services,CN=Public Key Services,CN=Services,CN=Configuration,DC=corp,DC=example\n\
         changetype: modify\n\
         add: certificateTemplates\n\
         certificateTemplates: WorkstationAuthV2\n",
    );
    let policy = lab.lab.policy_path("ws01");
    let (code, out) = run(&["plan", "--json"], &policy);
    assert_eq!(code, 0, "{out}");
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    let actions = plan["actions"].as_array().unwrap();
    let skip = actions
        .iter()
        .find(|a| a["template"] == "WorkstationAuth")
        .unwrap_or_else(|| panic!("WorkstationAuth has a line: {out}"));
    assert_eq!(skip["action"], "skip", "{out}");
    let reason = skip["reason"].as_str().unwrap();
    assert!(
        reason.contains("WorkstationAuthV2 supersedes it but cannot be used (flags:"),
        "{reason}"
    );
    assert!(
        reason.contains("waits until WorkstationAuthV2 is fixed"),
        "{reason}"
    );
    let enrolled: Vec<&str> = actions
        .iter()
        .filter(|a| a["action"] == "enroll")
        .filter_map(|a| a["template"].as_str())
        .collect();
    assert!(
        enrolled.contains(&"ShortLived"),
        "a template it does not name is enrolled: {out}"
    );
    assert!(!enrolled.contains(&"WorkstationAuth"), "{out}");

    // `templates` shows the same typed reason, and its table the same text.
    let (code, out) = run(&["templates", "--json"], &policy);
    assert_eq!(code, 0, "{out}");
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    let row = |cn: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["cn"] == cn)
            .unwrap_or_else(|| panic!("{cn} has a row: {out}"))
            .clone()
    };
    assert_eq!(
        row("WorkstationAuth")["reason_code"],
        "supersedence_unknown"
    );
    assert_eq!(row("ShortLived")["eligible"], true, "{out}");
    let (code, out) = run(&["templates"], &policy);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("skip: not enrolled: WorkstationAuthV2 supersedes it"),
        "{out}"
    );
}

/// After failures, `plan` gives each template and certificate one line with
/// one reason (it listed a failing template as keep "backing off", notify and
/// skip with the same text), and a failure recorded in the future counts as
/// now (it held the template back until that future time plus the backoff).
#[test]
fn plan_after_failures_one_line_each_and_no_future_backoff() {
    use std::os::unix::fs::PermissionsExt;
    let lab = common::start(None);
    let policy = lab.lab.policy_path("ws01");
    let store = lab.lab.dir.join("stores/ws01");
    let now = OffsetDateTime::now_utc();
    let rfc = |t: OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    // A ShortLived certificate past its renewal time with 5 of its 60 minutes left.
    put_certificate(
        &store,
        "sl",
        now - Duration::minutes(55),
        now + Duration::minutes(5),
        None,
        Some(SHORT_LIVED_CN),
        true,
    );
    let state = format!(
        "[[failures]]\ntemplate = \"ShortLived\"\ncount = 1\nlast_failure = \"{}\"\nlast_error = \"the CA did not answer\"\n\n\
         [[failures]]\ntemplate = \"WorkstationAuth\"\ncount = 1\nlast_failure = \"{}\"\nlast_error = \"the CA did not answer\"\n",
        rfc(now - Duration::minutes(1)),
        rfc(now + Duration::days(365)),
    );
    let path = store.join("state.toml");
    std::fs::write(&path, state).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();

    let (code, out) = run(&["plan", "--json"], &policy);
    assert_eq!(code, 0, "{out}");
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    let actions = plan["actions"].as_array().unwrap();
    let of = |cn: &str| -> Vec<&serde_json::Value> {
        actions.iter().filter(|a| a["template"] == cn).collect()
    };
    let sl = of(SHORT_LIVED_CN);
    assert_eq!(sl.len(), 1, "one line for ShortLived: {out}");
    assert_eq!(sl[0]["action"], "notify", "{out}");
    let reason = sl[0]["reason"].as_str().unwrap();
    assert_eq!(reason.matches("backing off").count(), 1, "{reason}");
    let mut certs: Vec<&str> = actions
        .iter()
        .filter_map(|a| a["certificate"].as_str())
        .collect();
    let n = certs.len();
    certs.sort();
    certs.dedup();
    assert_eq!(certs.len(), n, "a certificate in two actions: {out}");

    let wa = of("WorkstationAuth");
    assert_eq!(wa.len(), 1, "{out}");
    assert_eq!(wa[0]["action"], "skip", "{out}");
    let reason = wa[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("later than now, so counted as now"),
        "{reason}"
    );
    let next_wake = OffsetDateTime::parse(
        plan["next_wake"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(
        next_wake <= now + Duration::hours(2),
        "the backoff ends about an hour from now, not a year: {out}"
    );

    // A pulse keeps the failure as now: the future time is not written back,
    // so the next pulses count the backoff from now too.
    let _ = run(&["pulse", "--json"], &policy);
    let state: toml::Value = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let kept = state["failures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["template"].as_str() == Some("WorkstationAuth"))
        .expect("the failure is kept");
    let at = OffsetDateTime::parse(
        kept["last_failure"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(
        at <= OffsetDateTime::now_utc() + Duration::minutes(1),
        "state.toml still holds a failure in the future: {at}"
    );
}
