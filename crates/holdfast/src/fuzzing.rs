//! Entry points for hostile-input testing: each feeds untrusted bytes to one
//! parser of the library and panics if the outcome breaks a promise.
//!
//! The fuzz targets (`fuzz/`, libFuzzer) and the corpus regression test
//! (`tests/fuzz_corpus.rs`, stable `cargo test`) call the same functions, so a
//! crash found by fuzzing stays fixed. The promises checked:
//! - no panic, no unbounded allocation or wait (inputs are read within
//!   [`LIMITS`]);
//! - a refusal is an [`Error::Invalid`] (or [`Error::Usage`] where the input
//!   named something) with a one-line message;
//! - what parses writes back to text that parses to the same value;
//! - nothing is written outside the private temporary directory.
//!
//! Not a stable API: hidden from the documentation.

use std::path::Path;

use crate::archive::{ArchiveConfig, ArchiveReader, FilesPlan, HashKind, Manifest, ReadLimits};
use crate::conf::{render_assignment, ConfValue, ConfValues};
use crate::error::Error;
use crate::profile::Profile;

/// Small caps so that one fuzz input costs milliseconds and little memory.
pub const LIMITS: ReadLimits = ReadLimits {
    max_member_bytes: 8 << 20,
    max_total_bytes: 32 << 20,
    max_entries: 512,
};

/// What an input came to, for the regression test's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    Refused,
}

/// Panic unless `err` is a clear refusal of data: Invalid (or Usage), one line,
/// not empty.
pub fn assert_clear_refusal(err: &Error, input: &str) {
    assert!(
        matches!(err, Error::Invalid(_) | Error::Usage(_)),
        "{input}: refused with the wrong kind of error: {err:?}"
    );
    assert_one_line(&err.to_string(), input);
}

fn assert_one_line(msg: &str, input: &str) {
    assert!(!msg.trim().is_empty(), "{input}: empty error message");
    assert!(!msg.contains('\n'), "{input}: multi-line error: {msg:?}");
}

fn outcome<T>(result: &crate::Result<T>, input: &str) -> Outcome {
    match result {
        Ok(_) => Outcome::Accepted,
        Err(e) => {
            assert_clear_refusal(e, input);
            Outcome::Refused
        }
    }
}

/// `bytes` as an archive file: open it (extract, verify hashes, parse the
/// metadata), then read every member and plan the restore of `files` into an
/// empty install root. On refusal the reader's temporary directory must be
/// gone; in every case nothing may appear beside the archive.
pub fn archive(bytes: &[u8]) -> Outcome {
    let top = private_dir();
    let file = top.path().join("input.backup");
    std::fs::write(&file, bytes).expect("write the fuzz input");
    let temp_parent = top.path().join("tmp");
    std::fs::create_dir(&temp_parent).expect("create the temporary parent");
    let result = ArchiveReader::open_in(&file, &temp_parent, LIMITS);
    let outcome = outcome(&result, "archive");
    if let Ok(reader) = &result {
        read_every_member(reader);
        if let Some(files) = reader.member_path("files") {
            let root = top.path().join("root");
            std::fs::create_dir(&root).expect("create the install root");
            let plan = FilesPlan::new(&files, &root, &[], LIMITS);
            outcome_of_plan(&plan);
            assert_eq!(
                std::fs::read_dir(&root).expect("list the root").count(),
                0,
                "planning wrote into the install root"
            );
        }
    }
    drop(result);
    assert_eq!(
        std::fs::read_dir(&temp_parent)
            .expect("list the temporary parent")
            .count(),
        0,
        "the reader left its temporary directory behind"
    );
    assert_only(top.path(), &["input.backup", "root", "tmp"]);
    outcome
}

fn read_every_member(reader: &ArchiveReader) {
    let mut total = 0u64;
    for member in reader.members() {
        let path = reader
            .member_path(&member.name)
            .expect("a listed member has a path");
        assert!(
            path.starts_with(reader.dir()),
            "member path {} outside the extraction directory",
            path.display()
        );
        let meta = std::fs::symlink_metadata(&path).expect("an extracted member exists");
        assert!(
            meta.is_file(),
            "member '{}' is not a regular file",
            member.name
        );
        assert_eq!(meta.len(), member.size, "member '{}' size", member.name);
        assert!(member.size <= LIMITS.max_member_bytes);
        total += member.size;
        HashKind::Sha256
            .digest_file(&path)
            .expect("an extracted member is readable");
    }
    assert!(total <= LIMITS.max_total_bytes);
    assert!(reader.members().any(|m| m.name == "version"));
    assert!(reader.members().any(|m| m.name == "config"));
}

fn outcome_of_plan(plan: &crate::Result<FilesPlan>) -> Outcome {
    outcome(plan, "files member")
}

/// `bytes` as the inner `files` tar: plan its restore into an empty install
/// root, and when the plan is accepted apply it there. Everything written must
/// stay inside the root: a symlink may point anywhere, but nothing is ever
/// written through one.
pub fn files_member(bytes: &[u8]) -> Outcome {
    let top = private_dir();
    let member = top.path().join("files");
    std::fs::write(&member, bytes).expect("write the fuzz input");
    let root = top.path().join("root");
    let outside = top.path().join("outside");
    std::fs::create_dir(&root).expect("create the install root");
    std::fs::create_dir(&outside).expect("create the outside directory");
    let plan = FilesPlan::new(&member, &root, &[], LIMITS);
    let outcome = outcome_of_plan(&plan);
    if let Ok(plan) = plan {
        for entry in plan.entries() {
            assert!(
                entry.path.is_relative()
                    && entry
                        .path
                        .components()
                        .all(|c| matches!(c, std::path::Component::Normal(_))),
                "planned path {} is not a plain relative path",
                entry.path.display()
            );
        }
        // Applying may still fail (e.g. a file over a directory the same tar
        // made); it must fail clearly, and the outside stays untouched.
        if let Err(e) = plan.apply() {
            assert!(
                matches!(e, Error::Invalid(_) | Error::Io { .. }),
                "files apply: {e:?}"
            );
            assert_one_line(&e.to_string(), "files apply");
        }
    }
    assert_eq!(
        std::fs::read_dir(&outside)
            .expect("list the outside directory")
            .count(),
        0,
        "something was written outside the install root"
    );
    assert_only(top.path(), &["files", "outside", "root"]);
    outcome
}

/// `bytes` as `manifest.json`: a manifest that parses serializes to JSON that
/// parses to the same manifest.
pub fn manifest(bytes: &[u8]) -> Outcome {
    let parsed = Manifest::parse(bytes, "manifest.json");
    if let Ok(m) = &parsed {
        let again = Manifest::parse(m.to_json().as_bytes(), "rewritten manifest.json")
            .expect("a parsed manifest reparses");
        assert_eq!(&again, m, "manifest round trip");
    }
    outcome(&parsed, "manifest")
}

/// `bytes` as the archive's `config` member (the archive reader refuses
/// non-UTF-8 text before parsing). What parses renders to text that parses the
/// same.
pub fn archive_config(bytes: &[u8]) -> Outcome {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Outcome::Refused;
    };
    let parsed = ArchiveConfig::parse(text, "config");
    if let Ok(c) = &parsed {
        let again =
            ArchiveConfig::parse(&c.render(), "rendered config").expect("a rendered config parses");
        assert_eq!(&again, c, "config round trip");
    }
    outcome(&parsed, "config")
}

/// `bytes` as the text of `sha256sum` and `md5sum` members.
pub fn hash_list(bytes: &[u8]) -> Outcome {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Outcome::Refused;
    };
    let mut result = Outcome::Refused;
    for kind in [HashKind::Sha256, HashKind::Md5] {
        let parsed = crate::archive::checksum::parse(text, kind, kind.file_name());
        if let Ok(lines) = &parsed {
            let again =
                crate::archive::checksum::parse(&crate::archive::checksum::render(lines), kind, "")
                    .expect("rendered hash lines parse");
            assert_eq!(&again, lines, "hash list round trip");
            result = Outcome::Accepted;
        }
        outcome(&parsed, kind.file_name());
    }
    result
}

/// `bytes` as a shell-style conf file, read as the application does (never by a
/// shell). Every value read, written back quoted by the rewriter, reads back
/// the same.
pub fn conf(bytes: &[u8]) -> Outcome {
    let text = String::from_utf8_lossy(bytes);
    let mut values = ConfValues::new();
    let parsed = values.parse_str(&text, "fuzz.conf");
    if parsed.is_ok() {
        for (key, value) in values.iter() {
            let line = render_assignment(key, &ConfValue::Literal(value.to_string()));
            let mut again = ConfValues::new();
            again
                .parse_str(&line, "rewritten.conf")
                .unwrap_or_else(|e| panic!("rewritten line {line:?} does not parse: {e}"));
            assert_eq!(again.get(key), Some(value), "conf round trip of {line:?}");
        }
    }
    outcome(&parsed, "conf")
}

/// `bytes` as a TOML application profile (`--profile=FILE`).
pub fn profile(bytes: &[u8]) -> Outcome {
    let text = String::from_utf8_lossy(bytes);
    outcome(&Profile::parse(&text, "fuzz.toml"), "profile")
}

/// A 0700 temporary directory for one input.
fn private_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("holdfast-fuzz-")
        .tempdir()
        .expect("create a temporary directory")
}

/// Panic if `dir` holds anything but (some of) `allowed`.
fn assert_only(dir: &Path, allowed: &[&str]) {
    for entry in std::fs::read_dir(dir).expect("list the fuzz directory") {
        let name = entry.expect("read a directory entry").file_name();
        assert!(
            allowed.iter().any(|a| name == *a),
            "unexpected {name:?} written beside the input"
        );
    }
}

/// Feed every corpus and regression input of `target` (the files of
/// `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` below `fuzz_dir`)
/// to `entry`; returns (accepted, refused). A panic names the input that
/// caused it; an empty corpus is a panic too, since it would prove nothing.
pub fn replay_corpus(fuzz_dir: &Path, target: &str, entry: fn(&[u8]) -> Outcome) -> (usize, usize) {
    let inputs = |kind: &str| {
        let mut files: Vec<std::path::PathBuf> =
            match std::fs::read_dir(fuzz_dir.join(kind).join(target)) {
                Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
                Err(_) => Vec::new(),
            };
        files.sort();
        files
    };
    let mut counts = (0, 0);
    let corpus = inputs("corpus");
    assert!(!corpus.is_empty(), "fuzz/corpus/{target} is empty");
    for path in corpus.iter().chain(&inputs("regressions")) {
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
