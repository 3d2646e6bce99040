//! `holdfast man --dir DIR`: the manual pages of both faces. `holdfast.1` and
//! a page per verb (`holdfast-backup.1`, `holdfast-repo-forget.1`, ...) are
//! generated from the native command line (clap_mangen); `engine-backup.8`
//! from engine-backup's hand-written help (the text `engine-backup --help`
//! prints), kept as it is in a no-fill block.

use std::path::PathBuf;

use clap::{Args, CommandFactory};
use clap_mangen::roff::{bold, roman, Roff};
use holdfast::profile::Profile;

use super::Cli;

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Directory to write the pages into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
}

pub fn run(a: ManArgs) -> holdfast::Result<()> {
    std::fs::create_dir_all(&a.dir)
        .map_err(|e| holdfast::Error::io_path("create directory", &a.dir, e))?;
    let mut cli = Cli::command().disable_help_subcommand(true);
    cli.build();
    let mut pages = Vec::new();
    native_pages(cli, &mut pages)?;
    pages.push(("engine-backup.8".to_string(), engine_backup_page()?));
    for (name, page) in &pages {
        holdfast::durable::replace(&a.dir.join(name), ascii(page).as_bytes(), 0o644, None)?;
    }
    println!(
        "Wrote {} manual pages into {}",
        pages.len(),
        a.dir.display()
    );
    Ok(())
}

/// `(file name, page)` of `cmd` and of every verb under it, depth first:
/// `holdfast.1`, `holdfast-repo.1`, `holdfast-repo-forget.1`, ...
fn native_pages(cmd: clap::Command, out: &mut Vec<(String, String)>) -> holdfast::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        native_pages(sub.clone(), out)?;
    }
    let man = clap_mangen::Man::new(cmd).source(format!("holdfast {}", env!("CARGO_PKG_VERSION")));
    let mut page = Vec::new();
    man.render(&mut page)
        .map_err(|e| holdfast::Error::io(format!("render {}", man.get_filename()), e))?;
    out.push((
        man.get_filename(),
        String::from_utf8_lossy(&page).into_owned(),
    ));
    Ok(())
}

/// The page with every character outside ASCII as a roff escape (`…` as
/// `\[u2026]`): troff reads its input as Latin-1 unless preprocessed.
fn ascii(page: &str) -> String {
    let mut out = String::with_capacity(page.len());
    for c in page.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            out.push_str(&format!("\\[u{:04X}]", u32::from(c)));
        }
    }
    out
}

/// `engine-backup.8`: NAME, SYNOPSIS, and the help text as its DESCRIPTION.
pub fn engine_backup_page() -> holdfast::Result<String> {
    let profile = Profile::load("ovirt-engine")?;
    let prefixes: Vec<String> = profile
        .databases
        .iter()
        .map(|d| d.option_prefix.clone())
        .collect();
    let help = crate::engine_backup::help::usage(&prefixes);
    // The first line names the tool and the version; the usage block follows.
    let body: Vec<&str> = help.lines().skip(1).collect();
    let version = env!("CARGO_PKG_VERSION");
    let mut page = Roff::new();
    page.control("SH", ["NAME"])
        .text([roman(
            "engine-backup - back up and restore an oVirt engine environment (holdfast)",
        )])
        .control("SH", ["SYNOPSIS"])
        .text([
            bold("engine-backup"),
            roman(" [--mode=MODE] [--scope=SCOPE] [--file=FILE] [--log=FILE] [OPTION]..."),
        ])
        .control("SH", ["DESCRIPTION"])
        .text([roman(
            "A drop-in for oVirt's engine-backup: the same command lines, archive layout and \
         console lines. It is the holdfast executable called by the name engine-backup \
         (a link to it); see holdfast(1) for the native command line.",
        )])
        .control("SH", ["OPTIONS"])
        .control("nf", []);
    for line in body {
        page.text([roman(line)]);
    }
    page.control("fi", [])
        .control("SH", ["SEE ALSO"])
        .text([roman("holdfast(1), holdfast-schedule(1)")]);
    // The title line by hand: roff drops the empty date argument, which
    // would shift the others.
    Ok(format!(
        ".TH ENGINE-BACKUP 8 \"\" \"holdfast {version}\" \"System Administration\"\n{}",
        page.render()
    ))
}
