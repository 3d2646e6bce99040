//! Replays the command-line fuzz corpora and crash reproducers
//! (`fuzz/corpus/<target>/`, `fuzz/regressions/<target>/`) through
//! `holdfast_cli::fuzzing`, on stable and without libFuzzer.

use std::path::Path;

use holdfast::fuzzing::Outcome;
use holdfast_cli::fuzzing;

/// Replay `target`'s corpus and reproducers (see `holdfast::fuzzing::replay_corpus`).
fn replay(target: &str, entry: fn(&[u8]) -> Outcome) -> (usize, usize) {
    let fuzz_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    holdfast::fuzzing::replay_corpus(&fuzz_dir, target, entry)
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
