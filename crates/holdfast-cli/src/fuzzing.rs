//! Entry points for hostile command lines: the `engine-backup` parser (lowargs
//! then hiargs) and `holdfast`'s clap parser, shared by the fuzz targets
//! (`fuzz/`) and the corpus regression test (`tests/fuzz_corpus.rs`).
//!
//! A fuzz input is the argument list joined by NUL bytes (the one byte an
//! argument cannot hold). Not a stable API: hidden from the documentation.

use std::path::Path;

use clap::Parser;
use holdfast::fuzzing::Outcome;
use holdfast::profile::Profile;

use crate::cmd::Cli;
use crate::engine_backup::hiargs::{self, Outside};
use crate::engine_backup::lowargs::{self, ParseSpec};

/// Most arguments taken from one input.
const MAX_ARGS: usize = 64;

/// The argument list a fuzz input stands for: split at NUL bytes, each part
/// read as UTF-8 with invalid bytes replaced (argv reaches Rust as strings).
pub fn args_from_bytes(bytes: &[u8]) -> Vec<String> {
    if bytes.is_empty() {
        return Vec::new();
    }
    bytes
        .split(|b| *b == 0)
        .take(MAX_ARGS)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// A process environment with no variables and no terminal.
struct NoTerminal;

impl Outside for NoTerminal {
    fn var(&self, _name: &str) -> Option<String> {
        None
    }
    fn prompt_password(&self, _prompt: &str) -> Option<std::io::Result<String>> {
        None
    }
}

/// An `engine-backup` command line with the built-in oVirt profile: parsed,
/// then validated into a request, as `engine-backup` does before its first
/// write. Every refusal is one or more non-empty one-line FATAL messages.
///
/// To keep the run inside a private directory, the install root and the log
/// are pinned there and every password file is replaced by one of ours; the
/// rest of the line is checked as typed.
pub fn engine_backup_args(bytes: &[u8]) -> Outcome {
    let args = args_from_bytes(bytes);
    let profile = Profile::ovirt_engine();
    let prefixes: Vec<&str> = profile
        .databases
        .iter()
        .map(|d| d.option_prefix.as_str())
        .collect();
    let shortcuts: Vec<&str> = profile
        .databases
        .iter()
        .filter(|d| d.shortcuts)
        .map(|d| d.option_prefix.as_str())
        .collect();
    let spec = ParseSpec {
        db_prefixes: &prefixes,
        shortcut_prefixes: &shortcuts,
    };
    let mut low = match lowargs::parse(&args, &spec) {
        Ok(low) => low,
        Err(msg) => {
            assert_fatal_line(&msg);
            return Outcome::Refused;
        }
    };
    let sandbox = tempfile::Builder::new()
        .prefix("holdfast-fuzz-cli-")
        .tempdir()
        .expect("create a temporary directory");
    let root = sandbox.path().join("root");
    std::fs::create_dir(&root).expect("create the install root");
    let passfile = sandbox.path().join("password");
    std::fs::write(&passfile, "fuzz-password\n").expect("write the password file");
    pin_inside(&mut low, sandbox.path(), &root, &passfile);
    let profile = Profile::ovirt_engine();
    match hiargs::interpret(low, profile, &NoTerminal) {
        Ok(_) => Outcome::Accepted,
        Err(fatal) => {
            assert!(!fatal.0.is_empty(), "a refusal without a message");
            for line in &fatal.0 {
                assert_fatal_line(line);
            }
            Outcome::Refused
        }
    }
}

fn pin_inside(low: &mut lowargs::LowArgs, sandbox: &Path, root: &Path, passfile: &Path) {
    let text = |p: &Path| p.display().to_string();
    low.install_root = Some(text(root));
    low.log = Some(text(&sandbox.join("fuzz.log")));
    if low.admin_passfile.is_some() {
        low.admin_passfile = Some(text(passfile));
    }
    for db in low.db.values_mut() {
        if db.passfile.is_some() {
            db.passfile = Some(text(passfile));
        }
    }
}

fn assert_fatal_line(msg: &str) {
    assert!(!msg.trim().is_empty(), "empty FATAL message");
    assert!(
        !msg.contains(['\n', '\r']),
        "a FATAL message spans lines: {msg:?}"
    );
}

/// A `holdfast` command line through its clap parser (without running it). A
/// refusal renders its message without panicking.
pub fn holdfast_args(bytes: &[u8]) -> Outcome {
    let args = std::iter::once("holdfast".to_string()).chain(args_from_bytes(bytes));
    match Cli::try_parse_from(args) {
        Ok(_) => Outcome::Accepted,
        Err(e) => {
            assert!(!e.to_string().is_empty(), "a clap error without a message");
            Outcome::Refused
        }
    }
}
