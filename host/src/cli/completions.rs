//! `roster completions SHELL` and `roster man`: shell completions and a man
//! page, generated from the same clap definitions the binary parses with, so
//! they cannot drift from the flags.

use super::Cli;
use crate::error::Failure;
use clap::CommandFactory;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Completions {
    /// bash, zsh, fish, elvish or powershell.
    shell: clap_complete::Shell,
}

impl Completions {
    pub fn run(self) -> Result<ExitCode, Failure> {
        let mut cmd = Cli::command();
        clap_complete::generate(self.shell, &mut cmd, "roster", &mut std::io::stdout());
        Ok(ExitCode::SUCCESS)
    }
}

/// The man page, roff on stdout: `roster man > roster.1`.
pub fn man() -> Result<ExitCode, Failure> {
    let page = clap_mangen::Man::new(Cli::command());
    page.render(&mut std::io::stdout())
        .map_err(|e| Failure::Input(format!("cannot write the man page: {e}")))?;
    Ok(ExitCode::SUCCESS)
}
