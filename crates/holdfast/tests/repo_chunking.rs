//! The chunking presets: the `db` preset cuts smaller chunks than restic's,
//! and restic still verifies and dumps a repository written with it.

use std::path::Path;
use std::process::Command;

use holdfast::repo::engine::SnapshotLabels;
use holdfast::repo::{Chunking, Repo, RepoLocation};
use holdfast::Password;

const PASSWORD: &str = "chunking test password";

/// Bytes that compress poorly and have no repeats (splitmix64).
fn noise(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn restic(repo: &Path, password_file: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("restic")
        .arg("--repo")
        .arg(repo)
        .arg("--password-file")
        .arg(password_file)
        .arg("--no-cache")
        .args(args)
        .output()
        .expect("run restic (scripts/ensure-restic installs it)");
    assert!(
        out.status.success(),
        "restic {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Back a 16 MiB file up with `chunking`; returns its chunk count.
fn chunks_with(chunking: Chunking) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let repo_dir = dir.path().join("repo");
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, PASSWORD).unwrap();
    let staged = dir.path().join("staged");
    std::fs::create_dir_all(staged.join("db")).unwrap();
    // Large enough that the chunkers' random polynomials (one per
    // repository) cannot bring the two counts close by chance.
    let data = noise(16 << 20);
    std::fs::write(staged.join("db/engine_backup.db"), &data).unwrap();

    let mut repo = Repo::init(
        &RepoLocation::local(&repo_dir),
        &Password::new(PASSWORD),
        chunking,
    )
    .unwrap();
    let labels = SnapshotLabels {
        profile: "sample".into(),
        host: "backup.example".into(),
        scopes: vec!["db".into()],
        time: None,
    };
    let snap = repo.backup_dir(&staged, &labels).unwrap();

    let check =
        String::from_utf8(restic(&repo_dir, &password_file, &["check", "--read-data"])).unwrap();
    assert!(check.contains("no errors were found"), "{check}");
    let dumped = restic(
        &repo_dir,
        &password_file,
        &["dump", &snap.id, "/holdfast/sample/db/engine_backup.db"],
    );
    assert!(dumped == data, "restic dump returns the bytes stored");
    snap.data_blobs
}

#[test]
fn the_db_preset_cuts_smaller_chunks_that_restic_reads() {
    let restic_chunks = chunks_with(Chunking::Restic);
    let db_chunks = chunks_with(Chunking::Db);
    eprintln!("16 MiB of noise: {restic_chunks} chunks (restic preset), {db_chunks} (db preset)");
    // restic's minimum is 512 KiB, so at most 32 chunks; db averages 256 KiB.
    assert!(restic_chunks <= 32, "{restic_chunks}");
    assert!(
        db_chunks >= 2 * restic_chunks,
        "{db_chunks} vs {restic_chunks}"
    );
}
