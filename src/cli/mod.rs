//! The commands behind `main`: each loads what it needs through the library and
//! prints a table or JSON. Errors come back as a [`CliError`]: one line of
//! text for people and a kind for `--json`.

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

pub use error::CliError;
use error::{config, directory, internal, usage};

pub mod assets;
pub mod ca;
pub mod error;
pub mod plan;
pub mod pulse;
mod table;
pub mod unenroll;

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

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| internal(format!("cannot start the async runtime: {e}")))
}

/// The account the policy names, when it is known before binding (`None`:
/// the Kerberos identity; a policy that cannot name one is a configuration error).
pub fn policy_account(policy: &Policy) -> Result<Option<String>, CliError> {
    autoenroll::pulse::observe::policy_account(policy).map_err(config)
}

/// Reads and validates the policy file, and makes its krb5.conf (if it names
/// one) the process's: before the runtime and its threads exist.
pub fn load_policy(path: &Path) -> Result<Policy, CliError> {
    let policy = Policy::load(path).map_err(config)?;
    if let Some(conf) = &policy.krb5_conf {
        autoenroll::krb::use_config(conf).map_err(config)?;
    }
    Ok(policy)
}

/// Connects as the policy says and takes one directory snapshot for
/// `account` (`None`: the bound identity).
pub fn read_directory(
    policy: &Policy,
    account: Option<&str>,
) -> Result<autoenroll::directory::DirectorySnapshot, CliError> {
    runtime()?.block_on(async {
        let mut dir = Directory::connect(&policy.directory)
            .await
            .map_err(directory)?;
        let snap = match dir.account_for(account) {
            Ok(a) => dir.snapshot(&a).await.map_err(directory),
            Err(e) => Err(directory(e)),
        };
        dir.close().await;
        snap
    })
}

/// Writes to stdout; a write that fails ends the command (exit 1), quietly
/// when the reader has gone (a closed pipe), with the reason otherwise.
pub fn write_stdout(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            let _ = writeln!(
                std::io::stderr(),
                "autoenroll: cannot write the output: {e}"
            );
        }
        std::process::exit(1);
    }
}

/// Prints a value as pretty JSON on stdout.
pub fn print_json(value: &impl Serialize) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).map_err(internal)?;
    outln!("{text}");
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

pub fn templates(policy_path: &Path, json: bool) -> Result<ExitCode, CliError> {
    let policy = load_policy(policy_path)?;
    let account = policy_account(&policy)?;
    let now = OffsetDateTime::now_utc();
    let snapshot = read_directory(&policy, account.as_deref())?;
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
    outln!(
        "{} ({} context) at {}",
        snapshot.account.dn,
        policy.context,
        policy.directory.url
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
    out!("{t}");
    Ok(ExitCode::SUCCESS)
}

fn parse_domain(domain: &str) -> Result<Sid, CliError> {
    domain
        .parse()
        .map_err(|e| usage(format!("--domain {domain:?}: {e}")))
}

pub fn sddl_encode(sddl: &str, domain: &str) -> Result<ExitCode, CliError> {
    let sd = parse_sddl(sddl, &parse_domain(domain)?).map_err(|e| usage(format!("SDDL: {e}")))?;
    outln!(
        "{}",
        base64::engine::general_purpose::STANDARD.encode(sd.to_bytes())
    );
    Ok(ExitCode::SUCCESS)
}

pub fn sddl_decode(b64: &str, domain: &str) -> Result<ExitCode, CliError> {
    let compact: String = b64.split_whitespace().collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|e| usage(format!("base64: {e}")))?;
    let sd = SecurityDescriptor::from_bytes(&bytes)
        .map_err(|e| usage(format!("security descriptor: {e}")))?;
    outln!("{}", to_sddl(&sd, Some(&parse_domain(domain)?)));
    Ok(ExitCode::SUCCESS)
}

pub fn lab_up(dir: &Path, directory: autoenroll::lab::DirectoryKind) -> Result<ExitCode, CliError> {
    if autoenroll::lab::stop_detached(dir).map_err(error::lab)? {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "stopped the lab that was running in {}",
            dir.display()
        );
    }
    let lab = Lab::start(
        dir,
        LabOptions {
            detach: true,
            // A private KDC for OpenLDAP; Samba's own KDC for Samba.
            kerberos: true,
            directory,
            ..LabOptions::default()
        },
    )
    .map_err(error::lab)?;
    let policies = lab.write_policies().map_err(error::lab)?;
    let ca_config = lab.write_ca_config(0, 0).map_err(error::lab)?;
    let config = autoenroll::ca::CaConfig::load(&ca_config).map_err(error::lab)?;
    runtime()?
        .block_on(autoenroll::ca::init::init(
            &config,
            OffsetDateTime::now_utc(),
        ))
        .map_err(|e| error::lab(format!("ca init: {e}")))?;
    let exe =
        std::env::current_exe().map_err(|e| internal(format!("cannot find this program: {e}")))?;
    autoenroll::lab::start_ca_detached(&lab.dir, &exe, config.listen.port()).map_err(error::lab)?;
    outln!(
        "lab CA:        {} ({}, config {})",
        config.name,
        config.endpoint_url(),
        ca_config.display()
    );
    if let Some(k) = config.kerberos_endpoint_url() {
        outln!("lab CA (Kerberos): {k}");
    }
    outln!(
        "lab directory: {} ({:?}, StartTLS, CA {})",
        lab.url,
        lab.directory,
        lab.tls_ca_file.display()
    );
    outln!("ldaps:         {}", lab.ldaps_url);
    if let Some(kdc) = &lab.kdc {
        outln!(
            "kerberos:      realm {} (KDC 127.0.0.1:{}, {}); Kerberos policies use ldap://{}:{}",
            autoenroll::lab::REALM,
            kdc.port,
            kdc.krb5_conf.display(),
            autoenroll::lab::kdc::SERVICE_HOST,
            lab.port()
        );
    }
    outln!("ldapi:         {}", lab.ldapi_url);
    outln!(
        "admin:         {} (password in {}/admin.secret)",
        lab.admin_dn,
        lab.dir.display()
    );
    outln!("policies:");
    for p in &policies {
        outln!("  {}", p.display());
    }
    outln!("stop with:     autoenroll lab down --dir {}", dir.display());
    Ok(ExitCode::SUCCESS)
}

pub fn lab_down(dir: &Path) -> Result<ExitCode, CliError> {
    if autoenroll::lab::stop_detached(dir).map_err(error::lab)? {
        outln!("lab in {} stopped", dir.display());
    } else {
        outln!("no lab running in {}", dir.display());
    }
    Ok(ExitCode::SUCCESS)
}
