//! `holdfast`: back up, verify, restore PostgreSQL-backed application environments.

use clap::Parser;

fn main() -> std::process::ExitCode {
    holdfast_cli::cmd::run(holdfast_cli::cmd::Cli::parse())
}
