//! Replays the fuzz corpora and crash reproducers (`fuzz/corpus/<target>/`,
//! `fuzz/regressions/<target>/`) through the same entry functions the fuzz
//! targets call (`holdfast::fuzzing`), on stable and without libFuzzer: every
//! input must end in a value or a clear one-line refusal, never a panic.

use std::path::Path;

use holdfast::fuzzing::{self, Outcome};

/// Replay `target`'s corpus and reproducers (see `holdfast::fuzzing::replay_corpus`).
fn replay(target: &str, entry: fn(&[u8]) -> Outcome) -> (usize, usize) {
    let fuzz_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    holdfast::fuzzing::replay_corpus(&fuzz_dir, target, entry)
}

#[test]
fn archive_corpus() {
    let (accepted, refused) = replay("archive", fuzzing::archive);
    assert!(accepted >= 1, "no sound archive in the corpus");
    assert!(refused >= 1, "no hostile archive in the corpus");
}

#[test]
fn the_real_fixture_archives_pass_the_archive_entry() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/engine-backup-4.5");
    for name in [
        "default.backup",
        "uncompressed.backup",
        "small-size.backup",
        "db-and-files.backup",
    ] {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        assert_eq!(fuzzing::archive(&bytes), Outcome::Accepted, "{name}");
    }
}

#[test]
fn files_member_corpus() {
    let (accepted, _) = replay("files_member", fuzzing::files_member);
    assert!(accepted >= 1);
}

#[test]
fn manifest_corpus() {
    let (accepted, _) = replay("manifest", fuzzing::manifest);
    assert!(accepted >= 1);
}

#[test]
fn archive_config_corpus() {
    let (accepted, _) = replay("archive_config", fuzzing::archive_config);
    assert!(accepted >= 1);
}

#[test]
fn hash_list_corpus() {
    let (accepted, _) = replay("hash_list", fuzzing::hash_list);
    assert!(accepted >= 1);
}

#[test]
fn conf_corpus() {
    let (accepted, _) = replay("conf", fuzzing::conf);
    assert!(accepted >= 1);
}

#[test]
fn profile_corpus() {
    let (accepted, _) = replay("profile", fuzzing::profile);
    assert!(accepted >= 1);
}
