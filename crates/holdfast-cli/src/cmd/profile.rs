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
    /// Write an editable copy of a built-in profile (with its comments), to
    /// adapt its paths to this machine and pass as --profile FILE.
    Init(InitArgs),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The built-in profile to copy (`holdfast profile list` names them).
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Where to write the copy (default NAME.toml in the current directory);
    /// an existing file is never replaced.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A built-in profile name or a TOML file [default: $HOLDFAST_PROFILE].
    #[arg(env = "HOLDFAST_PROFILE", value_name = "NAME|FILE")]
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
            for name in profile::builtin_names() {
                let p = Profile::load(name)?;
                println!("{name}\t{}", p.description);
            }
            Ok(())
        }
        ProfileCommand::Show(a) => show(a),
        ProfileCommand::Init(a) => init(a),
    }
}

fn init(a: InitArgs) -> holdfast::Result<()> {
    let Some(text) = profile::builtin_text(&a.name) else {
        return Err(holdfast::Error::usage(format!(
            "'{}' is not a built-in profile; choose one of {}",
            a.name,
            profile::builtin_names().collect::<Vec<_>>().join(", ")
        )));
    };
    let output = a
        .output
        .unwrap_or_else(|| format!("{}.toml", a.name).into());
    let dir = output
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    if !dir.is_dir() {
        return Err(holdfast::Error::usage(format!(
            "cannot write {}: the directory {} does not exist; create it or pass another --output",
            output.display(),
            dir.display()
        )));
    }
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    holdfast::conf::write_new(&output, &lines, 0o644)?;
    println!(
        "Wrote {}, a copy of the built-in profile {}: edit its paths, check it with \
         `holdfast profile show {} --install-root DIR`, then pass --profile {}",
        output.display(),
        a.name,
        output.display(),
        output.display()
    );
    Ok(())
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
