//! `holdfast schema apply|status|plan|refresh|baseline|drop|recreate`: the
//! command line of the schema upgrade runner ([`holdfast::schema`]). Output goes
//! to stdout.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use holdfast::pg::ConnParams;
use holdfast::schema::{self, Action, ApplyOptions, Permissions, Version};
use holdfast::{Error, IoContext, Password, Result};

/// Environment variable holding the database password.
pub const PASSWORD_ENV: &str = "HOLDFAST_DB_PASSWORD";

/// Arguments of `holdfast schema`.
#[derive(clap::Args, Debug)]
pub struct SchemaArgs {
    #[command(subcommand)]
    pub command: SchemaCommand,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Directory of the scripts tree: one the profile recognises (oVirt's engine
    /// and DWH dbscripts), one with a holdfast-schema.toml, or generic dbscripts.
    #[arg(long, default_value = ".", global = true)]
    pub dir: PathBuf,
    /// Profile whose script tree layouts are recognised (built-in name or TOML
    /// file) [default: $HOLDFAST_PROFILE, else the layouts of every built-in
    /// profile].
    #[arg(
        long,
        env = "HOLDFAST_PROFILE",
        value_name = "NAME|FILE",
        global = true
    )]
    pub profile: Option<String>,
    /// Seconds to wait for another schema runner on the same database.
    #[arg(long, value_name = "SECONDS", default_value_t = 300, global = true)]
    pub lock_timeout: u64,
}

/// The schema commands.
#[derive(clap::Subcommand, Debug)]
pub enum SchemaCommand {
    /// Load the base into an empty database, then apply the pending upgrade scripts.
    Apply(ApplyArgs),
    /// Show the current version, the history, and scripts pending, changed or missing.
    Status {
        /// Print one JSON object (current, applied, pending, changed, skipped, missing).
        #[arg(long)]
        json: bool,
    },
    /// Show what apply would do, touching nothing.
    Plan(PlanArgs),
    /// Drop and recreate views and stored procedures, keeping their grants.
    Refresh,
    /// Adopt a database made without these scripts as being at a version: record
    /// the scripts up to it as skipped, run none.
    Baseline {
        /// The version the database is at (04050330 or 04_05_0330).
        #[arg(long, value_name = "VERSION")]
        version: String,
    },
    /// Drop every table, view, sequence, function and type of the application.
    Drop {
        /// Confirm that everything in the database's public schema goes.
        #[arg(long)]
        yes: bool,
    },
    /// Drop everything, then apply as onto an empty database.
    Recreate(ApplyArgs),
}

/// Options of `apply` and `recreate`.
#[derive(clap::Args, Debug)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub permissions: PermissionArgs,
    /// Take a custom-format dump here first, and restore it if the upgrade fails.
    #[arg(long, value_name = "FILE")]
    pub backup_to: Option<PathBuf>,
    /// Run everything that can run inside one transaction, then roll it back.
    #[arg(long)]
    pub dry_run: bool,
}

/// What the user allows `apply` to do.
#[derive(clap::Args, Debug)]
pub struct PermissionArgs {
    /// Apply never-applied scripts whose version is below the current one.
    #[arg(long)]
    pub allow_out_of_order: bool,
    /// Accept the new content of an applied script that changed (repeatable).
    #[arg(long, value_name = "VERSION")]
    pub accept_changed: Vec<String>,
}

/// `holdfast schema plan`.
#[derive(clap::Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    pub permissions: PermissionArgs,
    /// Print one JSON document (version, fresh, current_version, base,
    /// rebuild, steps with their action, ...) instead of the lines.
    #[arg(long)]
    pub json: bool,
}

/// Where the database is. The password comes from --passfile, the
/// HOLDFAST_DB_PASSWORD environment variable, or a prompt (-W); never from argv.
#[derive(clap::Args, Debug)]
pub struct ConnectionArgs {
    #[arg(long, default_value = "localhost", global = true)]
    pub host: String,
    #[arg(long, default_value_t = 5432, global = true)]
    pub port: u16,
    /// Role to connect as (required).
    #[arg(long, global = true)]
    pub user: Option<String>,
    /// The database whose schema is upgraded (required).
    #[arg(long, global = true)]
    pub database: Option<String>,
    /// File whose first line is the password.
    #[arg(long, value_name = "FILE", global = true)]
    pub passfile: Option<PathBuf>,
    /// Ask for the password on the terminal (no echo).
    #[arg(short = 'W', long, global = true)]
    pub password_prompt: bool,
}

impl ConnectionArgs {
    /// Connection parameters with the password from the first source that has one.
    pub fn params(&self) -> Result<ConnParams> {
        // Required, but clap cannot require options shared by subcommands.
        let (Some(user), Some(database)) = (&self.user, &self.database) else {
            return Err(Error::usage(
                "schema needs the database to work on: pass --database NAME and --user ROLE",
            ));
        };
        let password = if let Some(path) = &self.passfile {
            Some(Password::from_file(path).context(|| format!("read {}", path.display()))?)
        } else if let Ok(value) = std::env::var(PASSWORD_ENV) {
            Some(Password::new(value))
        } else if self.password_prompt {
            if !std::io::stdin().is_terminal() {
                return Err(Error::usage(format!(
                    "-W needs a terminal to ask for the password; use --passfile or {PASSWORD_ENV}"
                )));
            }
            let prompt = format!("Password for {user}@{}: ", self.host);
            let value =
                rpassword::prompt_password(prompt).context(|| "read the password".to_string())?;
            Some(Password::new(value))
        } else {
            None
        };
        Ok(ConnParams {
            host: self.host.clone(),
            port: self.port,
            user: user.clone(),
            database: database.clone(),
            password,
            secured: false,
            secured_validation: false,
        })
    }
}

impl PermissionArgs {
    fn permissions(&self) -> Result<Permissions> {
        let accept_changed = self
            .accept_changed
            .iter()
            .map(|v| parse_version("--accept-changed", v))
            .collect::<Result<BTreeSet<_>>>()?;
        Ok(Permissions {
            allow_out_of_order: self.allow_out_of_order,
            accept_changed,
        })
    }
}

/// The script tree layouts of every built-in profile: without a profile,
/// any tree a built-in one knows is recognised by its own markers.
fn builtin_layouts() -> Result<Vec<holdfast::schema::Layout>> {
    let mut layouts = Vec::new();
    for name in holdfast::profile::builtin_names() {
        layouts.extend(holdfast::profile::Profile::load(name)?.schema_layouts);
    }
    Ok(layouts)
}

fn parse_version(flag: &str, v: &str) -> Result<Version> {
    Version::parse(&v.replace('_', "")).ok_or_else(|| {
        Error::usage(format!(
            "{flag} {v}: not a version; give it as 04050330 or 04_05_0330"
        ))
    })
}

/// Run one schema command, printing to stdout.
pub fn run(args: SchemaArgs) -> Result<()> {
    let params = args.connection.params()?;
    let lock_timeout = Duration::from_secs(args.lock_timeout);
    let layouts = match &args.profile {
        Some(p) => holdfast::profile::Profile::load(p)?.schema_layouts,
        None => builtin_layouts()?,
    };
    let mut say = |line: &str| println!("{line}");
    match args.command {
        SchemaCommand::Apply(a) => {
            let mut options = apply_options(&a, lock_timeout)?;
            options.layouts = layouts;
            let report = schema::apply(&params, &args.dir, &options, &mut say)?;
            print_report(&report);
        }
        SchemaCommand::Recreate(a) => {
            if a.dry_run {
                return Err(Error::usage(
                    "schema recreate has no --dry-run; use `holdfast schema plan` to see what it would run",
                ));
            }
            let mut options = apply_options(&a, lock_timeout)?;
            options.layouts = layouts;
            let report = schema::recreate(&params, &args.dir, &options, &mut say)?;
            print_report(&report);
        }
        SchemaCommand::Status { json } => {
            let status = schema::status(&params, &args.dir, &layouts)?;
            if json {
                println!("{}", status.to_json());
            } else {
                print_status(&params, &status);
            }
        }
        SchemaCommand::Plan(p) => {
            let tree = schema::Tree::load(&args.dir, &layouts)?;
            let plan = schema::plan(&params, &args.dir, &layouts, &p.permissions.permissions()?)?;
            if p.json {
                println!("{}", plan.to_json());
            } else {
                print_plan(&params, &tree, &plan);
            }
        }
        SchemaCommand::Baseline { version } => {
            let version = parse_version("--version", &version)?;
            let n = schema::baseline(
                &params,
                &args.dir,
                &layouts,
                version,
                lock_timeout,
                &mut say,
            )?;
            println!(
                "Database '{}' adopted at version {version}: {n} scripts recorded as skipped, none run.",
                params.database
            );
        }
        SchemaCommand::Refresh => {
            let outcome = schema::refresh(&params, &args.dir, &layouts, lock_timeout, &mut say)?;
            println!(
                "Views and stored procedures recreated; {} grants restored.",
                outcome.grants_restored
            );
            print_dropped_grants(&outcome.grants_dropped);
        }
        SchemaCommand::Drop { yes } => {
            if !yes {
                return Err(Error::usage(format!(
                    "schema drop removes every table, view, function and sequence of database \
                     '{}'; add --yes to confirm",
                    params.database
                )));
            }
            schema::drop(&params, lock_timeout, &mut say)?;
            println!("Database '{}' emptied.", params.database);
        }
    }
    Ok(())
}

fn apply_options(a: &ApplyArgs, lock_timeout: Duration) -> Result<ApplyOptions> {
    Ok(ApplyOptions {
        permissions: a.permissions.permissions()?,
        lock_timeout,
        backup_to: a.backup_to.clone(),
        layouts: Vec::new(),
        dry_run: a.dry_run,
    })
}

fn version_text(v: Option<Version>) -> String {
    v.map(|v| v.to_string())
        .unwrap_or_else(|| "none".to_string())
}

fn print_report(r: &schema::ApplyReport) {
    let o = &r.outcome;
    if r.dry_run {
        println!(
            "Dry run: {} scripts ran and {} would be recorded as skipped without error, then \
             everything was rolled back; the database is unchanged.",
            o.installed.len(),
            o.skipped.len()
        );
        for (script, why) in &r.not_tried {
            println!("Not tried: {script} ({why}).");
        }
        return;
    }
    println!(
        "Schema at version {} (was {}): {} installed, {} recorded as skipped{}.",
        version_text(r.to),
        if r.fresh {
            "an empty database".to_string()
        } else {
            version_text(r.from)
        },
        holdfast::log::count(o.installed.len(), "script", "scripts"),
        o.skipped.len(),
        if o.rebuilt {
            format!(
                "; views and procedures recreated, {} restored",
                holdfast::log::count(o.grants_restored, "grant", "grants")
            )
        } else {
            String::new()
        }
    );
    for c in &r.accepted {
        println!(
            "Accepted the changed content of {} ({}).",
            c.script, c.version
        );
    }
    print_dropped_grants(&o.grants_dropped);
}

fn print_dropped_grants(objects: &[String]) {
    for object in objects {
        println!("Note: {object} had grants but no longer exists after the rebuild.");
    }
}

fn hook_lines(label: &str, hooks: &[schema::layout::LoadedHook]) {
    for h in hooks {
        match h {
            schema::layout::LoadedHook::File(f) => println!("  {label:<13}{}", f.rel),
            schema::layout::LoadedHook::Sql(sql) => println!("  {label:<13}SQL: {sql}"),
        }
    }
}

/// Every file in the order apply runs it.
fn print_plan(params: &ConnParams, tree: &schema::Tree, plan: &schema::Plan) {
    println!(
        "Plan for {} (tree {}, {} layout):",
        params.display(),
        tree.root.display(),
        tree.layout.name
    );
    if plan.is_noop() {
        println!("  nothing to do: the database is up to date");
        return;
    }
    if plan.fresh {
        for (name, value) in &tree.layout.database_settings {
            println!("  setting      ALTER DATABASE SET {name} = {value}");
        }
        for f in &plan.base {
            println!("  base         {f}");
        }
        for p in &tree.layout.per_install {
            println!(
                "               (in {}: '{}' replaced by a new value from {})",
                p.files.join(", "),
                p.literal,
                p.value_sql
            );
        }
        println!("  (scripts at or below the version the base records will be found applied)");
    } else {
        println!("  current version: {}", version_text(plan.current));
    }
    for c in &plan.accepted {
        println!(
            "  accept the changed content of {} ({})",
            c.script, c.version
        );
    }
    if plan.rebuild {
        println!(
            "  drop views and stored procedures ({})",
            plan.rebuild_reason
        );
        for f in &tree.helpers {
            println!("  helpers      {}", f.rel);
        }
        hook_lines("hook", &tree.before_pre_upgrade);
        for f in &plan.pre_upgrade {
            println!("  pre-upgrade  {f}");
        }
        hook_lines("hook", &tree.after_pre_upgrade);
    }
    for step in &plan.steps {
        match &step.action {
            Action::Run { alone: None } => println!("  run          {}", step.script),
            Action::Run { alone: Some(why) } => {
                println!(
                    "  run alone    {} (outside a transaction: {why})",
                    step.script
                )
            }
            Action::Skip(by) => println!(
                "  record SKIPPED {} (content installed already by {by})",
                step.script
            ),
        }
    }
    if plan.rebuild {
        for f in &tree.views {
            println!("  views        {}", f.rel);
        }
        for f in &tree.procedures {
            println!("  procedures   {}", f.rel);
        }
        println!("  restore the grants on views and procedures");
        for f in &plan.post_upgrade {
            println!("  post-upgrade {f}");
        }
        hook_lines("hook", &tree.after_post_upgrade);
    } else {
        println!(
            "  views and stored procedures stay ({})",
            plan.rebuild_reason
        );
    }
}

fn print_status(params: &ConnParams, s: &schema::Status) {
    println!("Database: {}", params.display());
    println!("Current version: {}", version_text(s.current));
    println!(
        "History ({}):",
        holdfast::log::count(s.history.rows.len(), "row", "rows")
    );
    for r in &s.history.rows {
        println!(
            "  {:>5}  {:<8}  {:<9}  {}  {}{}",
            r.id,
            r.version_text,
            r.state,
            r.started_at.as_deref().unwrap_or("-"),
            r.script,
            if r.comment.is_empty() {
                String::new()
            } else {
                format!("  ({})", r.comment)
            }
        );
    }
    println!("Scripts on disk not applied ({}):", s.pending.len());
    for (v, script) in &s.pending {
        println!("  {v}  {script}");
    }
    println!("Applied scripts changed since ({}):", s.changed.len());
    for c in &s.changed {
        println!(
            "  {}  {} (recorded {}, now {})",
            c.version, c.script, c.recorded, c.now
        );
    }
    println!("Applied scripts missing on disk ({}):", s.missing.len());
    for (v, script) in &s.missing {
        println!("  {v}  {script}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        command: Top,
    }

    #[derive(clap::Subcommand, Debug)]
    enum Top {
        Schema(SchemaArgs),
    }

    fn parse(args: &[&str]) -> SchemaArgs {
        let Top::Schema(a) = Cli::try_parse_from(args).unwrap().command;
        a
    }

    #[test]
    fn options_parse_before_and_after_the_subcommand() {
        let a = parse(&[
            "holdfast",
            "schema",
            "--port",
            "6543",
            "apply",
            "--dir",
            "/x",
            "--accept-changed",
            "04_05_0330",
            "--allow-out-of-order",
        ]);
        assert_eq!(a.connection.port, 6543);
        assert_eq!(a.dir, PathBuf::from("/x"));
        let SchemaCommand::Apply(apply) = a.command else {
            panic!()
        };
        let p = apply.permissions.permissions().unwrap();
        assert!(p.allow_out_of_order);
        assert_eq!(
            p.accept_changed.iter().next().unwrap().to_string(),
            "04050330"
        );
        assert!(Cli::try_parse_from(["holdfast", "schema", "apply", "--password", "x"]).is_err());
    }

    #[test]
    fn drop_needs_confirmation_and_bad_versions_are_named() {
        let err = run(parse(&[
            "holdfast",
            "schema",
            "drop",
            "--port",
            "1",
            "--database",
            "d",
            "--user",
            "u",
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("add --yes to confirm"), "{err}");
        let a = parse(&["holdfast", "schema", "plan", "--accept-changed", "4.5"]);
        let SchemaCommand::Plan(p) = a.command else {
            panic!()
        };
        assert_eq!(
            p.permissions.permissions().unwrap_err().to_string(),
            "--accept-changed 4.5: not a version; give it as 04050330 or 04_05_0330"
        );
    }

    #[test]
    fn apply_and_status_against_a_sandbox() {
        let cluster = pgsandbox::Cluster::start().unwrap();
        cluster.create_role("engine", "cli-test-pw").unwrap();
        cluster.create_database("engine", "engine").unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let tree = scratch.path().join("dbscripts");
        holdfast_sample::schema::SyntheticTree {
            series: vec![(4, 1, 3)],
        }
        .write(&tree)
        .unwrap();
        let passfile = scratch.path().join("pw");
        std::fs::write(&passfile, "cli-test-pw\n").unwrap();
        let port = cluster.port().to_string();
        let common = [
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "--user",
            "engine",
            "--database",
            "engine",
            "--passfile",
            passfile.to_str().unwrap(),
            "--dir",
            tree.to_str().unwrap(),
        ];
        let err = run(parse(&["holdfast", "schema", "status", "--dir", "."]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("pass --database NAME and --user ROLE"),
            "{err}"
        );
        for cmd in [
            &["plan"][..],
            &["plan", "--json"],
            &["apply", "--dry-run"],
            &["apply"],
            &["status", "--json"],
            &["refresh"],
            &["apply"],
        ] {
            let mut args = vec!["holdfast", "schema"];
            args.extend(cmd);
            args.extend(common);
            run(parse(&args)).unwrap();
        }
        let mut args = vec!["holdfast", "schema", "baseline", "--version", "04_01_0010"];
        args.extend(common);
        let err = run(parse(&args)).unwrap_err().to_string();
        assert!(
            err.contains("already has a schema_version history"),
            "{err}"
        );
        assert_eq!(
            cluster
                .query_text("engine", "SELECT version FROM schema_version WHERE current")
                .unwrap()
                .unwrap(),
            "04010030"
        );
    }
}
