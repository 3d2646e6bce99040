//! `holdfast completions SHELL`: the shell completion script of the native
//! face, generated from its command line (clap_complete), on stdout.

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::Cli;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    #[arg(value_name = "SHELL")]
    pub shell: Shell,
}

pub fn run(a: CompletionsArgs) -> holdfast::Result<()> {
    let mut cli = Cli::command();
    clap_complete::generate(a.shell, &mut cli, "holdfast", &mut std::io::stdout());
    Ok(())
}
