//! `holdfast profile`: what a profile says and what it finds on this machine.

use clap::{Args, Subcommand};
use holdfast::profile::{self, Component, Environment, InstallRoot, Profile};

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// List the built-in profiles.
    List,
    /// Check a profile and show its components as found under the install root
    /// (credentials without passwords).
    Show(ShowArgs),
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A built-in profile name or a TOML file.
    #[arg(default_value = "ovirt-engine", value_name = "NAME|FILE")]
    pub profile: String,
    /// Root of the application's files.
    #[arg(
        long,
        env = "HOLDFAST_INSTALL_ROOT",
        default_value = "/",
        value_name = "DIR"
    )]
    pub install_root: std::path::PathBuf,
}

pub fn run(c: ProfileCommand) -> holdfast::Result<()> {
    match c {
        ProfileCommand::List => {
            for name in profile::BUILTIN {
                let p = Profile::load(name)?;
                println!("{name}\t{}", p.description);
            }
            Ok(())
        }
        ProfileCommand::Show(a) => show(a),
    }
}

fn show(a: ShowArgs) -> holdfast::Result<()> {
    let p = Profile::load(&a.profile)?;
    let env = Environment::load(p, InstallRoot::new(&a.install_root)?)?;
    println!(
        "profile: {} ({})",
        env.profile.name, env.profile.description
    );
    println!("install root: {}", env.root.path().display());
    for scope in env.profile.scopes() {
        match env.component(scope) {
            Some(Component::Files) => {
                let present = env
                    .profile
                    .files
                    .include
                    .iter()
                    .filter(|p| env.root.join(p).exists())
                    .count();
                println!(
                    "  files: {present} of {} include paths present",
                    env.profile.files.include.len()
                );
            }
            Some(Component::Database(db)) => {
                let enabled = env.condition_holds(db.enabled_if.as_ref());
                match env.database_params(db)? {
                    Some(c) => println!(
                        "  {scope}: {} database {} ({}){}",
                        db.label,
                        c.display(),
                        if c.password.is_some() {
                            "password set"
                        } else {
                            "no password"
                        },
                        if enabled { "" } else { ", not enabled" }
                    ),
                    None => println!("  {scope}: {} database not configured", db.label),
                }
            }
            Some(Component::Sqlite(s)) => {
                let path = env.root.join(&s.path);
                println!(
                    "  {scope}: {} SQLite database {}{}",
                    s.label,
                    path.display(),
                    if path.exists() { "" } else { " (absent)" }
                );
            }
            None => {}
        }
    }
    Ok(())
}
