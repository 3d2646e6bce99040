//! `holdfast`: back up, verify, restore PostgreSQL-backed application environments.

fn main() -> std::process::ExitCode {
    holdfast_cli::cmd::main()
}
