//! Progress bars: on a terminal (a pseudo-terminal made by `script`) a
//! backup of a database over 500 MB draws a bar that moves, and its restore
//! a bar of the dump's entries, as does a deep verify; with stderr not a
//! terminal nothing but the lines and the closing summary is printed.

mod support;

use std::collections::BTreeSet;
use std::process::Command;

use support::*;

/// What a terminal shows while `command` runs under `script(1)` (a
/// pseudo-terminal), which must succeed.
fn on_terminal(command: &str, state: &std::path::Path) -> String {
    let out = Command::new("script")
        .args(["-q", "-e", "-c", command, "/dev/null"])
        .env("TERM", "xterm")
        .env("HOLDFAST_STATE_DIR", state)
        .output()
        .expect("run script (util-linux)");
    let screen = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{screen}");
    screen
}

#[test]
fn a_large_backup_draws_a_moving_bar_on_a_terminal_and_none_elsewhere() {
    let c = pgsandbox::Cluster::start().unwrap();
    c.create_role("redmine", "pw").unwrap();
    c.create_database("redmine", "redmine").unwrap();
    let mut client = holdfast::pg::connect(&tcp(&c, "redmine", "pw", "redmine")).unwrap();
    // About 600 MB of table data: 1.1 million rows of 512 characters.
    client
        .batch_execute(
            "CREATE TABLE attachments (id bigint PRIMARY KEY, body text);
             ALTER TABLE attachments ALTER COLUMN body SET STORAGE EXTERNAL;
             INSERT INTO attachments SELECT g, repeat(md5(g::text), 16) FROM generate_series(1, 1100000) g;",
        )
        .unwrap();
    let size: i64 = client
        .query_one("SELECT pg_table_size('attachments')", &[])
        .unwrap()
        .get(0);
    assert!(size > 500 << 20, "only {size} bytes");

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("etc/redmine/default")).unwrap();
    std::fs::create_dir_all(root.join("usr/share/redmine/lib/redmine")).unwrap();
    std::fs::write(
        root.join("etc/redmine/default/database.yml"),
        format!(
            "production:\n  adapter: postgresql\n  database: redmine\n  host: 127.0.0.1\n  port: {}\n  username: redmine\n  password: pw\n",
            c.port()
        ),
    )
    .unwrap();
    std::fs::write(
        root.join("usr/share/redmine/lib/redmine/version.rb"),
        "MAJOR = 5\nMINOR = 0\nTINY = 4\n",
    )
    .unwrap();
    let holdfast = env!("CARGO_BIN_EXE_holdfast");
    let command = |file: &str| {
        format!(
            "{holdfast} backup --profile redmine --scope db --install-root {} --file {}",
            root.display(),
            dir.path().join(file).display()
        )
    };

    // On a terminal.
    let screen = on_terminal(&command("tty.backup"), &dir.path().join("state"));
    // Every redraw shows the bytes dumped so far: the bar moved when it
    // showed several different amounts.
    let amounts: BTreeSet<&str> = screen
        .split(['\r', '\n'])
        .filter(|l| l.contains("database 'redmine'") && l.contains(" of ~"))
        .filter_map(|l| l.split(']').nth(1))
        .filter_map(|rest| rest.split(" of ~").next())
        .map(str::trim)
        .collect();
    assert!(
        amounts.len() >= 3,
        "the bar did not move: {amounts:?}\n{screen}"
    );
    assert!(screen.contains("Backed up db into"), "{screen}");

    // Not on a terminal: the lines and the summary, no bar.
    let out = Command::new("sh")
        .args(["-c", &command("plain.backup")])
        .env("TERM", "xterm")
        .env("HOLDFAST_STATE_DIR", dir.path().join("state"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        !stderr.contains(" of ~") && !stdout.contains(" of ~"),
        "{stdout}\n{stderr}"
    );
    let last_lines: Vec<&str> = stdout.lines().rev().take(2).collect();
    assert_eq!(last_lines[0], "Done.");
    assert!(last_lines[1].starts_with("Backed up db into "), "{stdout}");

    // --progress draws them on a stderr that is no terminal too.
    let out = Command::new("sh")
        .args(["-c", &format!("{} --progress", command("forced.backup"))])
        .env("TERM", "xterm")
        .env("HOLDFAST_STATE_DIR", dir.path().join("state"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("database 'redmine'") && stderr.contains(" of ~"),
        "{stderr}"
    );

    // The restore of that archive, on a terminal: a bar of the dump's
    // entries as pg_restore works through them, and the summary.
    c.execute("postgres", "DROP DATABASE redmine WITH (FORCE)")
        .unwrap();
    c.create_database("redmine", "redmine").unwrap();
    let restore = format!(
        "{holdfast} restore --scope db --restore-permissions --install-root {} --file {}",
        root.display(),
        dir.path().join("tty.backup").display()
    );
    let screen = on_terminal(&restore, &dir.path().join("state"));
    assert!(
        screen
            .split(['\r', '\n'])
            .any(|l| l.contains("database 'redmine'") && l.contains(" entries ")),
        "no bar of the restore's entries:\n{screen}"
    );
    assert!(screen.contains("Restored database scope db in"), "{screen}");
    let rows: i64 = holdfast::pg::connect(&tcp(&c, "redmine", "pw", "redmine"))
        .unwrap()
        .query_one("SELECT count(*) FROM attachments", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows, 1_100_000);

    // A repository backup: the dump's bar, then the upload's.
    std::fs::write(dir.path().join("repo-pw"), "progress test\n").unwrap();
    let repo = dir.path().join("repo");
    let repo_args = format!(
        "--repo {} --password-file {}",
        repo.display(),
        dir.path().join("repo-pw").display()
    );
    let init = Command::new("sh")
        .args(["-c", &format!("{holdfast} repo init {repo_args}")])
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let upload = format!(
        "{holdfast} repo backup {repo_args} --profile redmine --scope db --install-root {}",
        root.display()
    );
    let screen = on_terminal(&upload, &dir.path().join("state"));
    assert!(
        screen
            .split(['\r', '\n'])
            .any(|l| l.contains("backing up...")),
        "no bar of the upload:\n{screen}"
    );

    // Reading the snapshot back for a restore draws its bar too.
    c.execute("postgres", "DROP DATABASE redmine WITH (FORCE)")
        .unwrap();
    c.create_database("redmine", "redmine").unwrap();
    let download = format!(
        "{holdfast} repo restore latest {repo_args} --profile redmine --scope db --restore-permissions --install-root {}",
        root.display()
    );
    let screen = on_terminal(&download, &dir.path().join("state"));
    assert!(
        screen
            .split(['\r', '\n'])
            .any(|l| l.contains("reading snapshot") && l.contains(" of ~")),
        "no bar of the download:\n{screen}"
    );

    // Deep verify's throwaway restore draws its bar of entries too.
    let verify = format!(
        "{holdfast} verify --deep {}",
        dir.path().join("tty.backup").display()
    );
    let screen = on_terminal(&verify, &dir.path().join("state"));
    assert!(
        screen
            .split(['\r', '\n'])
            .any(|l| l.contains("deep verify '") && l.contains(" entries ")),
        "no bar of deep verify's restore:\n{screen}"
    );
}
