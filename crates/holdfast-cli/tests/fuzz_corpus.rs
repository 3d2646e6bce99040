//! Replays the command-line fuzz corpora and crash reproducers
//! (`fuzz/corpus/<target>/`, `fuzz/regressions/<target>/`) through
//! `holdfast_cli::fuzzing`, on stable and without libFuzzer.

use std::path::{Path, PathBuf};

use holdfast::fuzzing::Outcome;
use holdfast_cli::fuzzing;

fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz")
        .join(kind)
        .join(target);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

fn replay(target: &str, entry: fn(&[u8]) -> Outcome) -> (usize, usize) {
    let mut counts = (0, 0);
    let corpus = inputs("corpus", target);
    assert!(!corpus.is_empty(), "fuzz/corpus/{target} is empty");
    for path in corpus.iter().chain(&inputs("regressions", target)) {
        let bytes = std::fs::read(path).unwrap();
        let outcome = std::panic::catch_unwind(|| entry(&bytes))
            .unwrap_or_else(|_| panic!("{} panicked", path.display()));
        match outcome {
            Outcome::Accepted => counts.0 += 1,
            Outcome::Refused => counts.1 += 1,
        }
    }
    eprintln!("{target}: {} accepted, {} refused", counts.0, counts.1);
    counts
}

#[test]
fn engine_backup_command_line_corpus() {
    let (_, refused) = replay("engine_backup_args", fuzzing::engine_backup_args);
    assert!(refused >= 1);
}

#[test]
fn holdfast_command_line_corpus() {
    let (accepted, refused) = replay("holdfast_args", fuzzing::holdfast_args);
    assert!(accepted >= 1 && refused >= 1);
}

#[test]
fn arguments_split_at_nul() {
    assert_eq!(
        fuzzing::args_from_bytes(b"--mode=backup\0--scope=db"),
        ["--mode=backup", "--scope=db"]
    );
    assert!(fuzzing::args_from_bytes(b"").is_empty());
}
