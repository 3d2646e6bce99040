//! `holdfast`: back up, verify, restore PostgreSQL-backed application environments.
//!
//! One executable for both faces: called by the name `engine-backup` (a link to
//! this binary, see the README's install step) it is oVirt's engine-backup
//! command line, under any other name the native `holdfast <verb>`.

use std::path::Path;
use std::process::ExitCode;

use holdfast_cli::engine_backup::{self, hiargs::RealOutside};

/// The name that selects the engine-backup face.
const ENGINE_BACKUP: &str = "engine-backup";

fn main() -> ExitCode {
    let mut args = std::env::args_os();
    let called_as = args.next();
    if called_as.as_deref().and_then(|a| Path::new(a).file_name()) == Some(ENGINE_BACKUP.as_ref()) {
        let args: Vec<String> = std::env::args().skip(1).collect();
        engine_backup::main(&args, &RealOutside)
    } else {
        holdfast_cli::cmd::main()
    }
}
