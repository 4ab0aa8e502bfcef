//! `autoenroll ca ...`: the emulated enterprise CA's commands.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use serde::Serialize;

use autoenroll::ca::db::{Disposition, ListFilter, RequestRecord};
use autoenroll::ca::{Authority, CaConfig, CaError, init, server};
use autoenroll::clock::SystemClock;

use super::error::{CliError, config, config as config_error, internal};
use super::table::Table;
use super::{print_json, runtime};

fn load(path: &Path) -> Result<CaConfig, CliError> {
    CaConfig::load(path).map_err(config)
}

fn open(config: &Path) -> Result<Authority, CliError> {
    Ok(Authority::open(load(config)?, Arc::new(SystemClock))?)
}

pub fn init(config: &Path, json: bool) -> Result<ExitCode, CliError> {
    let config = load(config)?;
    let report = runtime()?.block_on(init::init(&config, time::OffsetDateTime::now_utc()))?;
    if json {
        print_json(&report)?;
    } else {
        outln!(
            "CA {} ({}): {}",
            config.name,
            report.ca_subject,
            if report.created_key {
                "new key and certificate"
            } else {
                "existing key and certificate kept"
            }
        );
        outln!("thumbprint {}", report.ca_thumbprint);
        for c in &report.changes {
            outln!("  {c}");
        }
        outln!("WSTEP endpoint {}", config.endpoint_url());
        if let Some(k) = config.kerberos_endpoint_url() {
            outln!("Kerberos WSTEP endpoint {k}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Serves until SIGTERM or SIGINT, then lets requests in progress finish.
pub fn serve(config: &Path) -> Result<ExitCode, CliError> {
    let authority = Arc::new(open(config)?);
    // Before the runtime's threads exist (MIT krb5 reads it per context).
    if let Some(conf) = authority.config().krb5_conf.as_ref() {
        autoenroll::krb::use_config(conf).map_err(config_error)?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| internal(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(async move {
        let endpoint = authority.config().endpoint_url();
        let kerberos = authority.config().kerberos_endpoint_url();
        let rpc = match authority.config().rpc.clone() {
            Some(rpc) => {
                let settings = autoenroll::ca::icpr::IcprSettings {
                    epm_listen: rpc.epm_listen,
                    listen: rpc.listen,
                    keytab: rpc.keytab,
                    rcache: authority.config().state_dir.join("rpc-replay.rcache"),
                };
                Some(autoenroll::ca::icpr::start(authority.clone(), settings).await?)
            }
            None => None,
        };
        let listening = server::start(authority).await?;
        outln!("listening on https://{} ({endpoint})", listening.https);
        if let Some(k) = kerberos {
            outln!("Kerberos endpoint {k}");
        }
        if let Some(http) = listening.http {
            outln!("downloads on http://{http}/CertEnroll/");
        }
        if let Some(rpc) = &rpc {
            outln!(
                "MS-ICPR (ICertPassage) on {}, endpoint mapper on {}",
                rpc.icpr,
                rpc.epm
            );
        }
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).map_err(internal)?;
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        listening.stop().await;
        if let Some(rpc) = rpc {
            rpc.stop().await;
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// One row of `ca requests --json`; the field names are a stable interface.
#[derive(Serialize)]
struct RequestRow {
    id: u64,
    requester: String,
    template: Option<String>,
    disposition: &'static str,
    disposition_code: u32,
    hresult: Option<String>,
    reason: String,
    serial: Option<String>,
    submitted_at: String,
    resolved_at: Option<String>,
    not_after: Option<String>,
    revoked_at: Option<String>,
    revocation_reason: Option<u8>,
    /// `kerberos`, `password`, `renewal` (signed by the renewed
    /// certificate, no credentials), or null when not recorded.
    authentication: Option<&'static str>,
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

fn row(r: &RequestRecord) -> RequestRow {
    RequestRow {
        id: r.id,
        requester: r.requester.clone(),
        template: r.template.clone(),
        disposition: r.disposition.name(),
        disposition_code: r.disposition.code(),
        hresult: r.hresult.map(|h| format!("0x{h:08X}")),
        reason: r.reason.clone(),
        serial: r.serial.clone(),
        submitted_at: rfc3339(r.submitted_at),
        resolved_at: r.resolved_at.map(rfc3339),
        not_after: r.not_after.map(rfc3339),
        revoked_at: r.revoked_at.map(rfc3339),
        revocation_reason: r.revocation_reason,
        authentication: r.authentication.map(|a| a.name()),
    }
}

pub fn requests(config: &Path, pending: bool, json: bool) -> Result<ExitCode, CliError> {
    let authority = open(config)?;
    let filter = if pending {
        ListFilter::Pending
    } else {
        ListFilter::All
    };
    let records = authority.db().list(filter).map_err(CaError::from)?;
    let rows: Vec<RequestRow> = records.iter().map(row).collect();
    if json {
        print_json(&rows)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = Table::new([
        "ID",
        "REQUESTER",
        "TEMPLATE",
        "DISPOSITION",
        "AUTH",
        "SERIAL",
        "SUBMITTED",
        "REASON",
    ]);
    for r in &rows {
        t.row([
            r.id.to_string(),
            r.requester.clone(),
            r.template.clone().unwrap_or_default(),
            match &r.hresult {
                Some(h) if r.disposition == Disposition::Denied.name() => {
                    format!("{} {h}", r.disposition)
                }
                _ => r.disposition.to_string(),
            },
            r.authentication.unwrap_or("-").to_string(),
            r.serial.clone().unwrap_or_default(),
            r.submitted_at.clone(),
            r.reason.clone(),
        ]);
    }
    out!("{t}");
    Ok(ExitCode::SUCCESS)
}

pub fn approve(config: &Path, id: u64) -> Result<ExitCode, CliError> {
    let authority = open(config)?;
    let record = runtime()?.block_on(authority.approve(id))?;
    outln!(
        "request {id} approved: certificate {} issued to {}",
        record.serial.unwrap_or_default(),
        record.requester
    );
    Ok(ExitCode::SUCCESS)
}

pub fn deny(config: &Path, id: u64, reason: &str) -> Result<ExitCode, CliError> {
    let record = open(config)?.deny(id, reason)?;
    outln!("request {id} of {} denied", record.requester);
    Ok(ExitCode::SUCCESS)
}

pub fn revoke(config: &Path, serial: &str, reason: u8) -> Result<ExitCode, CliError> {
    let record = open(config)?.revoke(serial, reason)?;
    outln!(
        "certificate {} of {} revoked (reason {reason}); run `autoenroll ca crl` to publish",
        record.serial.unwrap_or_default(),
        record.requester
    );
    Ok(ExitCode::SUCCESS)
}

pub fn crl(config: &Path) -> Result<ExitCode, CliError> {
    let authority = open(config)?;
    let crl = runtime()?.block_on(authority.publish_crl())?;
    let parsed = autoenroll::pki::Crl::from_der(&crl).map_err(CaError::from)?;
    outln!(
        "CRL published ({} revoked, next update {}) to the directory and {}",
        parsed.revoked.len(),
        parsed
            .next_update
            .map(rfc3339)
            .unwrap_or_else(|| "none".into()),
        authority.config().crl_url()
    );
    Ok(ExitCode::SUCCESS)
}
