//! The commands behind `main`: each loads what it needs through the library and
//! prints a table or JSON. Errors come back as one line of text for people.

use std::path::Path;
use std::process::ExitCode;

use base64::Engine;
use serde::Serialize;
use time::OffsetDateTime;

use autoenroll::directory::sd::SecurityDescriptor;
use autoenroll::directory::sddl::{parse_sddl, to_sddl};
use autoenroll::directory::{self, Directory, Verdict};
use autoenroll::lab::{Lab, LabOptions};
use autoenroll::model::{Sid, Template};
use autoenroll::policy::Policy;

pub mod ca;
pub mod plan;
pub mod pulse;
mod table;

/// Logs to stderr, filtered by `AUTOENROLL_LOG` (default `default_level`).
/// Under systemd (`JOURNAL_STREAM` set) lines carry no timestamp or colour:
/// journald adds its own, and the event fields stay greppable.
pub fn init_logging(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AUTOENROLL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder
            .without_time()
            .with_ansi(false)
            .with_target(false)
            .init();
    } else {
        builder.init();
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

pub use autoenroll::pulse::observe::policy_account;

/// Connects as the policy says and takes one directory snapshot for `account`.
pub fn read_directory(
    policy: &Policy,
    account: &str,
) -> Result<autoenroll::directory::DirectorySnapshot, String> {
    runtime()?.block_on(async {
        let mut dir = Directory::connect(&policy.directory)
            .await
            .map_err(|e| e.to_string())?;
        let snap = dir.snapshot(account).await.map_err(|e| e.to_string());
        dir.close().await;
        snap
    })
}

/// Prints a value as pretty JSON on stdout.
pub fn print_json(value: &impl Serialize) -> Result<(), String> {
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    println!("{text}");
    Ok(())
}

/// One row of `templates --json`; the field names are a stable interface.
#[derive(Serialize)]
struct TemplateRow {
    cn: String,
    display_name: Option<String>,
    schema_version: Option<u32>,
    published_by: Vec<String>,
    validity_seconds: Option<u64>,
    renewal_period_seconds: Option<u64>,
    eligible: bool,
    renewal_only: bool,
    reason: Option<String>,
    reason_code: Option<&'static str>,
}

fn row(v: &Verdict, t: Option<&Template>) -> TemplateRow {
    TemplateRow {
        cn: v.cn.clone(),
        display_name: t.and_then(|t| t.display_name.clone()),
        schema_version: t.map(|t| t.schema_version),
        published_by: v.published_by.clone(),
        validity_seconds: t.and_then(|t| t.validity).map(|p| p.seconds()),
        renewal_period_seconds: t.and_then(|t| t.renewal_period).map(|p| p.seconds()),
        eligible: v.is_eligible(),
        renewal_only: v.renewal_only,
        reason: v.reason.as_ref().map(|r| r.to_string()),
        reason_code: v.reason.as_ref().map(|r| r.code()),
    }
}

pub fn templates(policy_path: &Path, json: bool) -> Result<ExitCode, String> {
    let policy = Policy::load(policy_path).map_err(|e| e.to_string())?;
    let account = policy_account(&policy)?;
    let now = OffsetDateTime::now_utc();
    let snapshot = read_directory(&policy, &account)?;
    for w in &snapshot.warnings {
        tracing::warn!("{w}");
    }
    let options = directory::Options {
        context: policy.context,
        allow_prompts: policy.allow_prompts,
    };
    let verdicts = directory::judge(&snapshot, options, now);
    let find = |cn: &str| {
        snapshot
            .templates
            .iter()
            .map(|e| &e.template)
            .find(|t| t.cn == cn)
    };
    let rows: Vec<TemplateRow> = verdicts.iter().map(|v| row(v, find(&v.cn))).collect();
    if json {
        print_json(&rows)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} ({} context) at {}",
        snapshot.account.dn, policy.context, policy.directory.url
    );
    let mut t = table::Table::new([
        "TEMPLATE",
        "DISPLAY NAME",
        "V",
        "CA",
        "VALIDITY",
        "RENEWAL",
        "VERDICT",
    ]);
    for (v, r) in verdicts.iter().zip(&rows) {
        let tpl = find(&v.cn);
        t.row([
            r.cn.clone(),
            r.display_name.clone().unwrap_or_default(),
            r.schema_version.map(|s| s.to_string()).unwrap_or_default(),
            r.published_by.join(","),
            tpl.and_then(|t| t.validity)
                .map(|p| p.to_string())
                .unwrap_or_default(),
            tpl.and_then(|t| t.renewal_period)
                .map(|p| p.to_string())
                .unwrap_or_default(),
            match (&r.reason, r.renewal_only) {
                (None, false) => "eligible".to_string(),
                (None, true) => {
                    "eligible (renewal only: new requests need an agent signature)".into()
                }
                (Some(reason), _) => format!("skip: {reason}"),
            },
        ]);
    }
    print!("{t}");
    Ok(ExitCode::SUCCESS)
}

fn parse_domain(domain: &str) -> Result<Sid, String> {
    domain
        .parse()
        .map_err(|e| format!("--domain {domain:?}: {e}"))
}

pub fn sddl_encode(sddl: &str, domain: &str) -> Result<ExitCode, String> {
    let sd = parse_sddl(sddl, &parse_domain(domain)?).map_err(|e| format!("SDDL: {e}"))?;
    println!(
        "{}",
        base64::engine::general_purpose::STANDARD.encode(sd.to_bytes())
    );
    Ok(ExitCode::SUCCESS)
}

pub fn sddl_decode(b64: &str, domain: &str) -> Result<ExitCode, String> {
    let compact: String = b64.split_whitespace().collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|e| format!("base64: {e}"))?;
    let sd =
        SecurityDescriptor::from_bytes(&bytes).map_err(|e| format!("security descriptor: {e}"))?;
    println!("{}", to_sddl(&sd, Some(&parse_domain(domain)?)));
    Ok(ExitCode::SUCCESS)
}

pub fn lab_up(dir: &Path) -> Result<ExitCode, String> {
    if autoenroll::lab::stop_detached(dir).map_err(|e| e.to_string())? {
        eprintln!("stopped the lab that was running in {}", dir.display());
    }
    let lab = Lab::start(
        dir,
        LabOptions {
            detach: true,
            ..LabOptions::default()
        },
    )
    .map_err(|e| e.to_string())?;
    let policies = lab.write_policies().map_err(|e| e.to_string())?;
    let ca_config = lab.write_ca_config(0, 0).map_err(|e| e.to_string())?;
    let config = autoenroll::ca::CaConfig::load(&ca_config).map_err(|e| e.to_string())?;
    runtime()?
        .block_on(autoenroll::ca::init::init(
            &config,
            OffsetDateTime::now_utc(),
        ))
        .map_err(|e| format!("ca init: {e}"))?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    autoenroll::lab::start_ca_detached(&lab.dir, &exe, config.listen.port())
        .map_err(|e| e.to_string())?;
    println!(
        "lab CA:        {} ({}, config {})",
        config.name,
        config.endpoint_url(),
        ca_config.display()
    );
    println!(
        "lab directory: {} (StartTLS, CA {})",
        lab.url,
        lab.tls_ca_file.display()
    );
    println!("ldapi:         {}", lab.ldapi_url);
    println!(
        "admin:         {} (password in {}/admin.secret)",
        autoenroll::lab::ADMIN_DN,
        lab.dir.display()
    );
    println!("policies:");
    for p in &policies {
        println!("  {}", p.display());
    }
    println!("stop with:     autoenroll lab down --dir {}", dir.display());
    Ok(ExitCode::SUCCESS)
}

pub fn lab_down(dir: &Path) -> Result<ExitCode, String> {
    if autoenroll::lab::stop_detached(dir).map_err(|e| e.to_string())? {
        println!("lab in {} stopped", dir.display());
    } else {
        println!("no lab running in {}", dir.display());
    }
    Ok(ExitCode::SUCCESS)
}
