//! The help texts of both faces, pinned: `holdfast --help` and the `--help` of
//! every native verb and sub-verb, and `engine-backup --help` (oVirt's option
//! names, which scripts and runbooks rely on). A change here is a change to
//! the command line users see; review the snapshot diff as one.

use clap::CommandFactory;
use holdfast::profile::Profile;
use holdfast_cli::cmd::Cli;

/// The help text without what changes with the release or the caller's
/// environment: the version, and the values clap shows in `[env: NAME=value]`.
fn without_version(text: &str) -> String {
    text.replace(env!("CARGO_PKG_VERSION"), "[VERSION]")
        .lines()
        .map(|line| match line.split_once("[env: ") {
            Some((before, env)) => {
                let name = env.split(['=', ']']).next().unwrap_or(env);
                format!("{before}[env: {name}=…]")
            }
            None => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `(path, long help)` of `cmd` and every subcommand under it, depth first.
fn every_help(cmd: &mut clap::Command, path: &str, out: &mut Vec<(String, String)>) {
    out.push((path.to_string(), cmd.render_long_help().to_string()));
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        // clap's own `help` verb: not ours to pin.
        .filter(|name| name != "help")
        .collect();
    for name in names {
        let sub = cmd.find_subcommand_mut(&name).expect("listed subcommand");
        every_help(sub, &format!("{path} {name}"), out);
    }
}

#[test]
fn holdfast_help_of_every_verb() {
    let mut cli = Cli::command();
    // As the binary renders it: usage lines name the whole command path.
    cli.build();
    let mut helps = Vec::new();
    every_help(&mut cli, "holdfast", &mut helps);
    assert!(helps.len() > 10, "{} help texts", helps.len());
    for (path, text) in helps {
        let name = format!("help_{}", path.replace([' ', '-'], "_"));
        insta::assert_snapshot!(name, without_version(&text));
    }
}

#[test]
fn engine_backup_help() {
    let profile = Profile::load("ovirt-engine").unwrap();
    let prefixes: Vec<String> = profile
        .databases
        .iter()
        .map(|d| d.option_prefix.clone())
        .collect();
    let text = holdfast_cli::engine_backup::help::usage(&prefixes);
    insta::assert_snapshot!("engine_backup_help", without_version(&text));
}

#[test]
fn the_native_help_never_names_an_engine_backup_option() {
    let mut cli = Cli::command();
    cli.build();
    let mut helps = Vec::new();
    every_help(&mut cli, "holdfast", &mut helps);
    for (path, text) in helps {
        for option in ["--change-", "--db-", "--dwh-db-", "--mode"] {
            assert!(!text.contains(option), "{path} --help names {option}");
        }
    }
}
