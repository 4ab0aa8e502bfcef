//! The `--json` output of `pulse`, `plan`, `status`, `templates` and `unenroll` (and a
//! failure's) against the JSON Schemas in docs/schema/, on real output of the
//! program against a private slapd and the lab CA; and the stable reason
//! codes beside each action's text.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn autoenroll(args: &[&str], policy: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_autoenroll"))
        .args(args)
        .arg("--policy")
        .arg(policy)
        .output()
        .unwrap()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn validator(name: &str) -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("docs/schema/{name}.json"));
    let schema: Value = serde_json::from_slice(&std::fs::read(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        jsonschema::meta::is_valid(&schema),
        "{name}.json is not a valid JSON Schema"
    );
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{name}.json: {e}"))
}

/// Validates `value` against docs/schema/`name`.json, listing every error.
fn check(name: &str, value: &Value) {
    let v = validator(name);
    let errors: Vec<String> = v
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{name} output does not follow docs/schema/{name}.json:\n{}\n{value:#}",
        errors.join("\n")
    );
}

/// The schema would catch a change: the output with a field dropped, one
/// added, or a value of the wrong type is refused.
fn mutations_are_refused(name: &str, value: &Value, object: &str, field: &str) {
    let v = validator(name);
    let pick = |value: &mut Value| -> Option<serde_json::Map<String, Value>> {
        let target = if object.is_empty() {
            value
        } else {
            value.pointer_mut(object)?
        };
        target.as_object().cloned()
    };
    let mut dropped = value.clone();
    let mut obj = pick(&mut dropped).expect("the object is in the output");
    obj.remove(field).expect("the field is in the output");
    set(&mut dropped, object, Value::Object(obj));
    assert!(
        !v.is_valid(&dropped),
        "{name}: {object}/{field} dropped passes"
    );
    let mut added = value.clone();
    let mut obj = pick(&mut added).unwrap();
    obj.insert("surprise".into(), Value::Bool(true));
    set(&mut added, object, Value::Object(obj));
    assert!(!v.is_valid(&added), "{name}: an unknown field passes");
    let mut typed = value.clone();
    let mut obj = pick(&mut typed).unwrap();
    obj.insert(field.into(), Value::Array(vec![]));
    set(&mut typed, object, Value::Object(obj));
    assert!(
        !v.is_valid(&typed),
        "{name}: {object}/{field} as an array passes"
    );
}

fn set(value: &mut Value, pointer: &str, new: Value) {
    if pointer.is_empty() {
        *value = new;
    } else {
        *value.pointer_mut(pointer).unwrap() = new;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_output_follows_the_schemas_in_docs() {
    let lab = common::start(None);
    let _ca = lab.start_ca(common::start_time()).await;
    let policy = lab.lab.policy_path("ws01");

    // templates: every verdict, eligible or not.
    let templates = json(&autoenroll(&["templates", "--json"], &policy));
    check("templates", &templates);
    mutations_are_refused("templates", &templates, "/0", "reason_code");
    let skipped: Vec<(String, String)> = templates
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["eligible"] == false)
        .map(|t| {
            (
                t["cn"].as_str().unwrap().to_string(),
                t["reason_code"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        !skipped.is_empty(),
        "the sample forest skips some templates"
    );

    // plan before anything is held: enrolls and skips, each with a code; a
    // skip's code is its template verdict's.
    let plan = json(&autoenroll(&["plan", "--json"], &policy));
    check("plan", &plan);
    mutations_are_refused("plan", &plan, "/actions/0", "reason_code");
    let actions = plan["actions"].as_array().unwrap();
    assert!(
        actions
            .iter()
            .any(|a| a["action"] == "enroll" && a["reason_code"] == "not_held"),
        "{plan:#}"
    );
    for a in actions.iter().filter(|a| a["action"] == "skip") {
        let cn = a["template"].as_str().unwrap();
        if let Some((_, code)) = skipped.iter().find(|(c, _)| c == cn) {
            assert_eq!(a["reason_code"], code.as_str(), "skip of {cn}");
        }
    }

    // A dry run, then the real pulse (it enrolls).
    let dry = json(&autoenroll(&["pulse", "--dry-run", "--json"], &policy));
    check("pulse", &dry);
    let out = autoenroll(&["pulse", "--json"], &policy);
    let pulse = json(&out);
    check("pulse", &pulse);
    assert_eq!(pulse["ok"], true, "{pulse:#}");
    assert!(
        pulse["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["event"] == "installed"),
        "{pulse:#}"
    );
    assert!(
        pulse["planned"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["reason_code"].is_string()),
        "{pulse:#}"
    );
    mutations_are_refused("pulse", &pulse, "/planned/0", "reason_code");
    mutations_are_refused("pulse", &pulse, "/outcomes/0", "event_id");
    mutations_are_refused("pulse", &pulse, "", "next_wake");

    // What is held now is kept (valid), and renews or re-enrolls later.
    let plan = json(&autoenroll(&["plan", "--json"], &policy));
    check("plan", &plan);
    let keeps: Vec<&Value> = plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "keep")
        .collect();
    assert!(!keeps.is_empty(), "{plan:#}");
    assert!(
        keeps.iter().all(|a| a["reason_code"] == "valid"),
        "{plan:#}"
    );
    let later = json(&autoenroll(
        &["plan", "--at", "2100-01-01T00:00:00Z", "--json"],
        &policy,
    ));
    check("plan", &later);
    assert!(
        later["actions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["action"] == "reenroll" && a["reason_code"] == "expired"),
        "{later:#}"
    );

    // status, live.
    let out = autoenroll(&["status", "--json"], &policy);
    let status = json(&out);
    check("status", &status);
    assert_eq!(status["directory"], "reachable");
    assert_eq!(status["exit_code"], out.status.code().unwrap());
    mutations_are_refused("status", &status, "/certificates/0", "health");
    mutations_are_refused("status", &status, "", "as_of");

    // A failure's JSON.
    let out = autoenroll(&["plan", "--at", "yesterday", "--json"], &policy);
    let error = json(&out);
    check("error", &error);
    assert_eq!(error["kind"], "usage");
    mutations_are_refused("error", &error, "", "kind");
}

/// SCEP profiles in `plan`, `pulse` and `status`, and `unenroll`'s report,
/// against micromdm's scepserver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scep_profiles_and_unenroll_follow_the_schemas() {
    use std::os::unix::fs::PermissionsExt;
    let lab = common::start(None);
    let _ca = lab.start_ca(common::start_time()).await;
    let mm = common::micromdm::Micromdm::start();
    let challenge = lab.lab.dir.join("wifi.challenge");
    std::fs::write(&challenge, common::micromdm::CHALLENGE).unwrap();
    std::fs::set_permissions(&challenge, std::fs::Permissions::from_mode(0o600)).unwrap();
    let text = std::fs::read_to_string(lab.lab.policy_path("ws01")).unwrap();
    let policy = lab.lab.dir.join("ws01-scep.toml");
    std::fs::write(
        &policy,
        format!(
            "{text}\n[scep.wifi]\ntype = \"device\"\nsubject = \"CN={{{{DeviceName}}}}\"\n\
             root = \"{}\"\nurls = [\"{}\"]\nchallenge = \"file\"\nchallenge_file = \"{}\"\n",
            mm.ca_pem.display(),
            mm.url,
            challenge.display()
        ),
    )
    .unwrap();

    let plan = json(&autoenroll(&["plan", "--json"], &policy));
    check("plan", &plan);
    assert_eq!(
        plan["scep"][0]["reason_code"], "scep_no_certificate",
        "{plan:#}"
    );
    mutations_are_refused("plan", &plan, "/scep/0", "reason_code");

    let pulse = json(&autoenroll(&["pulse", "--json"], &policy));
    check("pulse", &pulse);
    assert!(
        pulse["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["event"] == "installed" && o["profile"] == "wifi"),
        "{pulse:#}"
    );

    let plan = json(&autoenroll(&["plan", "--json"], &policy));
    check("plan", &plan);
    assert_eq!(plan["scep"][0]["action"], "keep", "{plan:#}");

    let status = json(&autoenroll(&["status", "--json"], &policy));
    check("status", &status);
    assert_eq!(status["scep"][0]["health"], "healthy", "{status:#}");
    assert_eq!(status["scep_missing"], serde_json::json!([]));
    mutations_are_refused("status", &status, "/scep/0", "health");

    let dry = json(&autoenroll(&["unenroll", "--dry-run", "--json"], &policy));
    check("unenroll", &dry);
    assert!(
        dry["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["kind"] == "archive" && s["profile"] == "wifi"),
        "{dry:#}"
    );
    let out = autoenroll(&["unenroll", "--json"], &policy);
    let done = json(&out);
    check("unenroll", &done);
    assert_eq!(done["ok"], true, "{done:#}");
    assert_eq!(out.status.code(), Some(0));
    mutations_are_refused("unenroll", &done, "/steps/0", "kind");
}
