//! The `autoenroll` command: parses arguments, calls the library, prints, and
//! maps errors to exit codes. Nothing here decides anything.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// `print!` and `println!` that never panic: the standard ones panic when
/// stdout is a closed pipe (`autoenroll status | head -1`).
macro_rules! out {
    ($($arg:tt)*) => { $crate::cli::write_stdout(format_args!($($arg)*)) };
}
macro_rules! outln {
    () => { $crate::cli::write_stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::cli::write_stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

mod cli;

#[derive(Parser)]
#[command(
    name = "autoenroll",
    version,
    about = "Active Directory certificate autoenrollment for Linux"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Every published template with its verdict for the policy's account.
    Templates {
        /// The local policy file.
        #[arg(long)]
        policy: PathBuf,
        /// Print JSON (an array of objects with cn, eligible, reason,
        /// reason_code, ...; schema in docs/schema/templates.json).
        #[arg(long)]
        json: bool,
    },
    /// What a pulse would do, now or at a given time, without doing it.
    Plan {
        /// The local policy file.
        #[arg(long)]
        policy: PathBuf,
        /// An RFC 3339 time to plan for, e.g. 2027-01-31T12:00:00Z.
        #[arg(long)]
        at: Option<String>,
        /// Print JSON ({"actions": [{"action", "reason", "reason_code", ...}],
        /// "next_wake"}; schema in docs/schema/plan.json).
        #[arg(long)]
        json: bool,
    },
    /// Every certificate of the store with its health; the exit code says the worst.
    Status {
        /// The local policy file.
        #[arg(long)]
        policy: PathBuf,
        /// Print JSON ({"directory", "as_of", "certificates", "missing",
        /// "exit_code", ...}; schema in docs/schema/status.json).
        #[arg(long)]
        json: bool,
    },
    /// One autoenrollment pass now (like `certutil -pulse`).
    Pulse {
        /// The policy file (default: /etc/autoenroll/machine.toml, or with
        /// --user ~/.config/autoenroll/user.toml).
        #[arg(long)]
        policy: Option<PathBuf>,
        /// The user context (the policy must say context = "user").
        #[arg(long)]
        user: bool,
        /// Plan and show, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON ({"planned", "outcomes", "ok",
        /// "next_wake", ...}; schema in docs/schema/pulse.json).
        #[arg(long)]
        json: bool,
        /// Act as if it were this RFC 3339 time (a rehearsal: the actions are real
        /// unless --dry-run is given too).
        #[arg(long, value_name = "TIME")]
        now: Option<String>,
    },
    /// Offboarding: archive every managed certificate of the context (template
    /// and SCEP), remove exported copies and the trust anchors autoenroll
    /// installed, and leave the store for a fresh start.
    Unenroll {
        /// The policy file (default: the context's, as for pulse).
        #[arg(long)]
        policy: Option<PathBuf>,
        /// The context to unenroll.
        #[arg(long, value_enum, default_value = "machine")]
        context: ContextArg,
        /// Ask each certificate's CA to revoke it (cessationOfOperation)
        /// first, where the protocol allows; otherwise name the serial for
        /// the CA's administrator and exit 1.
        #[arg(long)]
        revoke: bool,
        /// List what would be done, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON ({"steps", "outcomes", "ok", ...}).
        #[arg(long)]
        json: bool,
    },
    /// The worker: pulses at start, on schedule, on changes and when renewals fall due.
    Daemon {
        #[arg(long)]
        policy: Option<PathBuf>,
        #[arg(long)]
        user: bool,
    },
    /// Convert security descriptors between SDDL and the base64 of LDIF.
    Sddl {
        #[command(subcommand)]
        action: SddlAction,
    },
    /// The emulated enterprise CA.
    Ca {
        #[command(subcommand)]
        action: CaAction,
    },
    /// A disposable local lab: a private directory with the sample forest.
    Lab {
        #[command(subcommand)]
        action: LabAction,
    },
    /// Write the man pages and shell completions (bash, zsh, fish) generated
    /// from this command line's definition into DIR/man1 and DIR/completions
    /// (what the Debian package installs; scripts/package.sh runs it).
    #[command(hide = true)]
    GenerateAssets {
        #[arg(long)]
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum SddlAction {
    /// SDDL text to the base64 of its self-relative binary form.
    Encode {
        sddl: String,
        /// Domain SID for aliases such as DA, DU, DC.
        #[arg(long, default_value = "S-1-5-21-1000-2000-3000")]
        domain: String,
    },
    /// Base64 (as in LDIF `nTSecurityDescriptor::`) to SDDL text.
    Decode {
        base64: String,
        /// Domain SID printed as aliases such as DA, DU, DC.
        #[arg(long, default_value = "S-1-5-21-1000-2000-3000")]
        domain: String,
    },
}

#[derive(Subcommand)]
enum CaAction {
    /// Create the CA's key and certificates and publish the CA to the directory.
    Init {
        /// The CA's configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Print what was created and published as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Serve MS-WSTEP enrollment and CA certificate and CRL downloads.
    Serve {
        #[arg(long)]
        config: PathBuf,
    },
    /// The CA's requests, newest last.
    Requests {
        #[arg(long)]
        config: PathBuf,
        /// Only requests waiting for approval.
        #[arg(long)]
        pending: bool,
        /// Print the requests as a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Issue a pending request.
    Approve {
        #[arg(long)]
        config: PathBuf,
        id: u64,
    },
    /// Refuse a pending request.
    Deny {
        #[arg(long)]
        config: PathBuf,
        id: u64,
        #[arg(long)]
        reason: String,
    },
    /// Revoke an issued certificate (publish with `ca crl`).
    Revoke {
        #[arg(long)]
        config: PathBuf,
        /// Serial number in hex.
        serial: String,
        /// RFC 5280 reason code: 0 unspecified, 1 keyCompromise, 3 affiliationChanged,
        /// 4 superseded, 5 cessationOfOperation, 6 certificateHold, ...
        #[arg(long, default_value_t = 0)]
        reason: u8,
    },
    /// Sign a fresh CRL and publish it to the directory and the HTTP URL.
    Crl {
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum LabAction {
    /// Start the lab directory in DIR and write a policy per sample account.
    Up {
        #[arg(long)]
        dir: PathBuf,
        /// The directory server: `openldap` (a private slapd) or `samba` (a
        /// Samba AD DC on a private 127.0.0.x; needs Debian's samba packages
        /// and CAP_NET_ADMIN).
        #[arg(long, default_value = "openldap", value_parser = ["openldap", "samba"])]
        directory: String,
    },
    /// Stop the lab started in DIR.
    Down {
        #[arg(long)]
        dir: PathBuf,
    },
}

/// A context on the command line.
#[derive(Clone, Copy, clap::ValueEnum)]
enum ContextArg {
    Machine,
    User,
}

impl Command {
    /// Whether the command was asked for JSON (then its failure is JSON too).
    fn json(&self) -> bool {
        match self {
            Command::Templates { json, .. }
            | Command::Plan { json, .. }
            | Command::Status { json, .. }
            | Command::Pulse { json, .. }
            | Command::Unenroll { json, .. } => *json,
            Command::Ca {
                action: CaAction::Init { json, .. } | CaAction::Requests { json, .. },
            } => *json,
            _ => false,
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let json = args.command.json();
    cli::init_logging(match args.command {
        Command::Daemon { .. } | Command::Ca { .. } => "info",
        _ => "warn",
    });
    let result = match args.command {
        Command::Templates { policy, json } => cli::templates(&policy, json),
        Command::Plan { policy, at, json } => cli::plan::plan(&policy, at.as_deref(), json),
        Command::Status { policy, json } => cli::plan::status(&policy, json),
        Command::Pulse {
            policy,
            user,
            dry_run,
            json,
            now,
        } => cli::pulse::pulse(
            &cli::pulse::policy_path(policy, user),
            user,
            dry_run,
            json,
            now.as_deref(),
        ),
        Command::Unenroll {
            policy,
            context,
            revoke,
            dry_run,
            json,
        } => {
            let context = match context {
                ContextArg::Machine => autoenroll::model::Context::Machine,
                ContextArg::User => autoenroll::model::Context::User,
            };
            cli::unenroll::run(
                &cli::unenroll::policy_path(policy, context),
                context,
                revoke,
                dry_run,
                json,
            )
        }
        Command::Daemon { policy, user } => {
            cli::pulse::daemon(&cli::pulse::policy_path(policy, user), user)
        }
        Command::Sddl { action } => match action {
            SddlAction::Encode { sddl, domain } => cli::sddl_encode(&sddl, &domain),
            SddlAction::Decode { base64, domain } => cli::sddl_decode(&base64, &domain),
        },
        Command::Ca { action } => match action {
            CaAction::Init { config, json } => cli::ca::init(&config, json),
            CaAction::Serve { config } => cli::ca::serve(&config),
            CaAction::Requests {
                config,
                pending,
                json,
            } => cli::ca::requests(&config, pending, json),
            CaAction::Approve { config, id } => cli::ca::approve(&config, id),
            CaAction::Deny { config, id, reason } => cli::ca::deny(&config, id, &reason),
            CaAction::Revoke {
                config,
                serial,
                reason,
            } => cli::ca::revoke(&config, &serial, reason),
            CaAction::Crl { config } => cli::ca::crl(&config),
        },
        Command::GenerateAssets { dir } => cli::assets::generate(Args::command(), &dir),
        Command::Lab { action } => match action {
            LabAction::Up { dir, directory } => cli::lab_up(
                &dir,
                if directory == "samba" {
                    autoenroll::lab::DirectoryKind::Samba
                } else {
                    autoenroll::lab::DirectoryKind::OpenLdap
                },
            ),
            LabAction::Down { dir } => cli::lab_down(&dir),
        },
    };
    match result {
        Ok(code) => code,
        Err(e) => e.report(json),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `--json` option says what it prints (issue: stable
    /// machine-readable output), and every option of the public commands has
    /// help text at all.
    #[test]
    fn every_json_option_has_help_text() {
        fn walk(cmd: &clap::Command, path: &str, json: &mut usize, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                if id == "json" {
                    *json += 1;
                    if !help.contains("JSON") {
                        missing.push(format!("{path} --json"));
                    }
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), json, missing);
            }
        }
        let (mut json, mut missing) = (0, Vec::new());
        walk(&Args::command(), "autoenroll", &mut json, &mut missing);
        assert!(json >= 6, "only {json} --json options found");
        assert!(missing.is_empty(), "--json without help text: {missing:?}");
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Args::command().debug_assert();
    }
}
