//! The man pages and shell completions, generated from the clap definition
//! (`autoenroll generate-assets --dir DIR`, hidden): the package ships what
//! the program really accepts, never a hand-written copy that drifts.

use std::path::Path;
use std::process::ExitCode;

use clap_complete::Shell;

use super::error::{CliError, setup};

/// Writes `DIR/man1/autoenroll.1` and one page per subcommand
/// (`autoenroll-pulse.1`, `autoenroll-ca-init.1`, ...), and
/// `DIR/completions/{autoenroll.bash,_autoenroll,autoenroll.fish}`.
pub fn generate(cmd: clap::Command, dir: &Path) -> Result<ExitCode, CliError> {
    let man = dir.join("man1");
    let completions = dir.join("completions");
    for d in [&man, &completions] {
        std::fs::create_dir_all(d)
            .map_err(|e| setup(format!("cannot create {}: {e}", d.display())))?;
    }
    // Hidden commands (this one) get no page; the completions skip them too.
    clap_mangen::generate_to(cmd.clone(), &man).map_err(|e| {
        setup(format!(
            "cannot write the man pages to {}: {e}",
            man.display()
        ))
    })?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut c = cmd.clone();
        clap_complete::generate_to(shell, &mut c, "autoenroll", &completions).map_err(|e| {
            setup(format!(
                "cannot write the {shell} completions to {}: {e}",
                completions.display()
            ))
        })?;
    }
    outln!(
        "man pages in {}, completions in {}",
        man.display(),
        completions.display()
    );
    Ok(ExitCode::SUCCESS)
}
