//! `holdfast completions SHELL` and `holdfast man --dir DIR`: the bash script
//! loads and registers the completion, every shell gets a script, and every
//! manual page (holdfast.1, one per verb, engine-backup.8) renders through
//! groff without a warning.

use std::path::Path;
use std::process::Command;

fn holdfast(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .args(args)
        .output()
        .expect("run holdfast")
}

#[test]
fn completion_scripts() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = holdfast(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {out:?}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(script.contains("holdfast"), "{shell}");
        assert!(script.contains("schedule"), "{shell}: the verbs are listed");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("holdfast.bash");
    std::fs::write(&file, holdfast(&["completions", "bash"]).stdout).unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source '{}' && complete -p holdfast",
            file.display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let registered = String::from_utf8(out.stdout).unwrap();
    assert!(
        registered.starts_with("complete ") && registered.trim_end().ends_with(" holdfast"),
        "{registered}"
    );
}

/// groff's warnings (all of them: -ww) about a page; empty when it is clean.
fn groff_warnings(page: &Path) -> String {
    let out = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .arg(page)
        .output()
        .expect("run groff (apt-get install groff-base)");
    assert!(out.status.success(), "{}: {out:?}", page.display());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn man_pages_render_without_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let out = holdfast(&["man", "--dir", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let mut pages: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    for expected in [
        "holdfast.1",
        "holdfast-backup.1",
        "holdfast-schedule.1",
        "holdfast-completions.1",
        "holdfast-repo-forget.1",
        "holdfast-repo-key-add.1",
        "engine-backup.8",
    ] {
        assert!(
            pages.iter().any(|p| p == expected),
            "{expected} in {pages:?}"
        );
    }
    assert!(pages.len() > 40, "{pages:?}");
    for page in &pages {
        let warnings = groff_warnings(&dir.path().join(page));
        assert!(warnings.is_empty(), "{page}:\n{warnings}");
    }

    // engine-backup.8 holds the help text engine-backup prints.
    let text = Command::new("groff")
        .args(["-man", "-Tutf8", "-P-c"])
        .arg(dir.path().join("engine-backup.8"))
        .env("GROFF_NO_SGR", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    for words in [
        "--mode=MODE",
        "--provision-all-databases",
        "--db-passfile=FILE",
        "ENGINE-BACKUP(8)",
    ] {
        assert!(text.contains(words), "{words} in\n{text}");
    }
}
