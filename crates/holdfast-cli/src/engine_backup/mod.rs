//! The `engine-backup` face: oVirt's command lines, console lines and log format
//! over holdfast's operations.

pub mod help;
pub mod hiargs;
pub mod lowargs;

use std::process::ExitCode;

use holdfast::archive::DumpFormat;
use holdfast::log::Log;
use holdfast::profile::Profile;

use hiargs::{HiArgs, Outside};

use crate::exit;

/// Run `engine-backup` with these arguments (without argv[0]).
pub fn main(args: &[String], outside: &dyn Outside) -> ExitCode {
    holdfast::interrupt::install();
    let fatal = |lines: &[String]| {
        for l in lines {
            eprintln!("FATAL: {l}");
        }
        ExitCode::from(1)
    };
    // The profile decides which per-database options exist, so it is found first.
    let profile_arg = args
        .iter()
        .rev()
        .find_map(|a| a.strip_prefix("--profile=").map(str::to_string))
        .unwrap_or_else(|| "ovirt-engine".into());
    let profile = match Profile::load(&profile_arg) {
        Ok(p) => p,
        Err(e) => return fatal(&[e.to_string()]),
    };
    let prefixes: Vec<String> = profile
        .databases
        .iter()
        .map(|d| d.option_prefix.clone())
        .collect();
    let prefix_refs: Vec<&str> = prefixes.iter().map(String::as_str).collect();
    let shortcuts: Vec<&str> = profile
        .databases
        .iter()
        .filter(|d| d.shortcuts)
        .map(|d| d.option_prefix.as_str())
        .collect();
    let spec = lowargs::ParseSpec {
        db_prefixes: &prefix_refs,
        shortcut_prefixes: &shortcuts,
    };
    let low = match lowargs::parse(args, &spec) {
        Ok(l) => l,
        Err(e) => return fatal(&[e]),
    };
    let scope_text = if low.scopes.is_empty() {
        "all".to_string()
    } else {
        low.scopes.join(",")
    };
    let hi = match hiargs::interpret(low, profile, outside) {
        Ok(h) => h,
        Err(f) => return fatal(&f.0),
    };
    match hi {
        HiArgs::Help => {
            print!("{}", help::usage(&prefixes));
            ExitCode::SUCCESS
        }
        HiArgs::Backup(req, log_path) => {
            let plain = req.dumps.iter().any(|(scope, d)| {
                d.format == DumpFormat::Plain && req.scopes.iter().any(|s| s == scope)
            });
            run("backup", &scope_text, &req.file, &log_path, plain, |log| {
                holdfast::ops::backup::run(&req, log).map(|_| ())
            })
        }
        HiArgs::Verify(req, log_path) => {
            run("verify", &scope_text, &req.file, &log_path, false, |log| {
                holdfast::ops::verify::run(&req, log).map(|_| ())
            })
        }
        HiArgs::Restore(req, log_path) => {
            run("restore", &scope_text, &req.file, &log_path, false, |log| {
                holdfast::ops::restore::run(&req, log).map(|_| ())
            })
        }
    }
}

fn run(
    mode: &str,
    scope: &str,
    file: &std::path::Path,
    log_path: &std::path::Path,
    plain_banner: bool,
    op: impl FnOnce(&Log) -> holdfast::Result<()>,
) -> ExitCode {
    if let Some(dir) = log_path.parent() {
        if !dir.as_os_str().is_empty() && !dir.is_dir() {
            eprintln!(
                "FATAL: the log directory {} does not exist; create it or pass --log=FILE",
                dir.display()
            );
            return ExitCode::from(1);
        }
    }
    let log = match Log::create(log_path) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("FATAL: {e}");
            return ExitCode::from(1);
        }
    };
    if plain_banner {
        let rule = "#".repeat(78);
        log.print(&rule);
        log.print("Please note: permissions are not backed up with a plain dump format, thus not restored during restore");
        log.print(&rule);
    }
    log.line(&format!(
        "Start of engine-backup mode {mode} scope {scope} file {}",
        file.display()
    ));
    log.output(&format!("Start of engine-backup with mode '{mode}'"));
    log.output(&format!("scope: {scope}"));
    log.output(&format!("archive file: {}", file.display()));
    log.output(&format!("log file: {}", log_path.display()));
    match op(&log) {
        Ok(()) => {
            log.output("Done.");
            ExitCode::SUCCESS
        }
        Err(e) => {
            log.fatal(&describe(&e));
            // oVirt's statuses (0, 1), and a shell's 128+N when interrupted.
            match holdfast::interrupt::requested_signal() {
                Some(sig) => exit::code(exit::interrupted(sig)),
                None => exit::code(exit::FAILURE),
            }
        }
    }
}

/// An error in engine-backup's words: its remedies name its own options.
pub fn describe(e: &holdfast::Error) -> String {
    match e {
        holdfast::Error::Remedied { error, remedy } => {
            let why = describe(error);
            match remedy {
                holdfast::Remedy::OtherTargetDatabase { option_prefix, .. } => format!(
                    "{why} (or pass --change-{option_prefix}-credentials to restore into another database)"
                ),
                holdfast::Remedy::AtLeastOneJob => {
                    format!("{why} (pass 1 or more to --db-restore-jobs and the like)")
                }
            }
        }
        other => other.to_string(),
    }
}
