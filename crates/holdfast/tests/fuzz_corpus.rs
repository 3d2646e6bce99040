//! Replays the fuzz corpora and crash reproducers (`fuzz/corpus/<target>/`,
//! `fuzz/regressions/<target>/`) through the same entry functions the fuzz
//! targets call (`holdfast::fuzzing`), on stable and without libFuzzer: every
//! input must end in a value or a clear one-line refusal, never a panic.

use std::path::{Path, PathBuf};

use holdfast::fuzzing::{self, Outcome};

/// The files of `fuzz/<kind>/<target>/`, sorted; none when the directory is absent.
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

/// Feed every corpus and regression input of `target` to `entry`; returns
/// (accepted, refused). A panic names the input that caused it.
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
