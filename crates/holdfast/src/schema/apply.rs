//! Carrying out a [`Plan`] on the one connection: base load, drop of views and
//! functions, pre-upgrade, versioned scripts with their history rows, recreation of
//! views and procedures with their grants, post-upgrade, all in one transaction
//! except around scripts that must run alone.

use std::path::Path;
use std::process::Stdio;

use postgres::error::ErrorPosition;
use postgres::Client;

use super::history::{self, Entry, State};
use super::layout::{LoadedHook, PerInstall, Tree};
use super::objects::{self, Grant};
use super::plan::{Action, Plan, Step};
use super::script::{ScriptBody, SqlFile, UpgradeScript};
use super::sql_text::Statement;
use crate::pg::{error_text, ConnParams};
use crate::{Error, IoContext, Result};

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Scripts run and recorded `INSTALLED`, in order.
    pub installed: Vec<String>,
    /// Scripts recorded `SKIPPED`, with the version that installed their content.
    pub skipped: Vec<(String, String)>,
    /// Whether views and procedures were dropped and recreated.
    pub rebuilt: bool,
    /// Grants given back after the rebuild.
    pub grants_restored: usize,
    /// Objects that had grants and no longer exist after the rebuild.
    pub grants_dropped: Vec<String>,
}

/// The state of one run on its connection.
pub struct Runner<'a> {
    pub(super) client: &'a mut Client,
    pub(super) params: &'a ConnParams,
    pub(super) tree: &'a Tree,
    pub(super) say: &'a mut dyn FnMut(&str),
    /// Whether a transaction is open on the connection.
    pub(super) in_transaction: bool,
    /// Whether some part of this run was committed already.
    pub(super) committed: bool,
    pub(super) outcome: Outcome,
    grants: Option<Vec<Grant>>,
    /// Roll everything back at the end; never commit.
    pub(super) dry_run: bool,
    /// Scripts a dry run could not try (they cannot run in a transaction).
    pub(super) not_tried: Vec<(String, String)>,
    /// The drop of views and procedures was committed and their recreation not yet.
    pub(super) views_dropped_committed: bool,
    views_dropped: bool,
}

impl<'a> Runner<'a> {
    pub fn new(
        client: &'a mut Client,
        params: &'a ConnParams,
        tree: &'a Tree,
        say: &'a mut dyn FnMut(&str),
    ) -> Runner<'a> {
        Runner {
            client,
            params,
            tree,
            say,
            in_transaction: false,
            committed: false,
            outcome: Outcome::default(),
            grants: None,
            dry_run: false,
            not_tried: Vec::new(),
            views_dropped_committed: false,
            views_dropped: false,
        }
    }

    pub fn begin(&mut self) -> Result<()> {
        if !self.in_transaction {
            self.sql("BEGIN")?;
            self.in_transaction = true;
        }
        Ok(())
    }

    pub fn commit(&mut self) -> Result<()> {
        if self.dry_run {
            return Ok(());
        }
        if self.in_transaction {
            if self.views_dropped {
                self.views_dropped_committed = true;
            }
            self.sql("COMMIT")?;
            self.in_transaction = false;
            self.committed = true;
        }
        Ok(())
    }

    /// Roll back whatever is open; used on the way out of a failure.
    pub fn abort(&mut self) {
        // Also ends a transaction a failed non-transactional script left open.
        let _ = self.client.batch_execute("ROLLBACK");
        self.in_transaction = false;
    }

    /// Load the base files into the empty database, in the open transaction.
    pub fn load_base(&mut self) -> Result<()> {
        if let Some(f) = self
            .tree
            .base
            .iter()
            .find(|f| f.transaction_blocker.is_some())
        {
            return Err(Error::invalid(format!(
                "{}: base files are loaded in one transaction, but this one cannot run in a \
                 transaction ({}); move that statement into an upgrade script",
                f.rel,
                f.transaction_blocker.as_deref().unwrap_or("")
            )));
        }
        (self.say)("Creating fresh schema");
        let tree = self.tree;
        for (name, value) in &tree.layout.database_settings {
            // What schema.sh does first on a fresh install (client_min_messages).
            // A plain word is written bare, as schema.sh writes it, so PostgreSQL
            // stores it the same way (folded to lower case).
            let bare = value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && value.starts_with(|c: char| c.is_ascii_alphabetic());
            let sql = format!(
                "ALTER DATABASE {} SET {} = {}",
                quote_ident(&self.params.database),
                quote_ident(name),
                if bare {
                    value.clone()
                } else {
                    quote_literal(value)
                }
            );
            self.sql(&sql)?;
        }
        let rules: Vec<(Vec<String>, &PerInstall)> = tree
            .layout
            .per_install
            .iter()
            .map(|r| Ok((super::layout::expand_patterns(&tree.root, &r.files)?, r)))
            .collect::<Result<_>>()?;
        let mut values: Vec<Option<String>> = vec![None; rules.len()];
        for file in &tree.base {
            let mut substituted: Option<SqlFile> = None;
            for (i, (files, rule)) in rules.iter().enumerate() {
                if !files.contains(&file.rel) {
                    continue;
                }
                if values[i].is_none() {
                    // Evaluated when first needed: the generator may be a function
                    // an earlier base file created (oVirt's uuid_generate_v1).
                    values[i] = Some(self.per_install_value(rule)?);
                }
                let from = format!("'{}'", rule.literal);
                let to = format!("'{}'", values[i].as_deref().unwrap_or_default());
                let f = substituted.get_or_insert_with(|| file.clone());
                for st in &mut f.statements {
                    if st.text.contains(&from) {
                        st.text = st.text.replace(&from, &to);
                    }
                }
            }
            self.run_file(substituted.as_ref().unwrap_or(file))?;
        }
        history::ensure(self.client)
    }

    fn per_install_value(&mut self, rule: &PerInstall) -> Result<String> {
        let sql = format!(
            "SELECT per_install.v::text FROM ({}) AS per_install(v)",
            rule.value_sql.trim().trim_end_matches(';')
        );
        self.client
            .query_one(sql.as_str(), &[])
            .map(|r| r.get(0))
            .map_err(|e| {
                Error::postgres(format!(
                    "cannot compute the per-install value replacing '{}' ({}): {}",
                    rule.literal,
                    rule.value_sql,
                    error_text(&e)
                ))
            })
    }

    /// Run hook steps: tree files, or single statements.
    fn run_steps(&mut self, steps: &[LoadedHook]) -> Result<()> {
        for step in steps {
            match step {
                LoadedHook::File(f) => self.run_file(f)?,
                LoadedHook::Sql(sql) => {
                    self.client
                        .batch_execute(sql)
                        .map_err(|e| Error::postgres(format!("{sql}: {}", error_text(&e))))?;
                }
            }
        }
        Ok(())
    }

    /// Run the plan: transactional stretches of steps, split around scripts that
    /// must run alone.
    pub fn execute(&mut self, plan: &Plan) -> Result<()> {
        if plan.is_noop() {
            (self.say)("Database is up to date.");
            return Ok(());
        }
        if plan.rebuild && self.grants.is_none() {
            self.grants = Some(objects::saved_grants(self.client)?);
        }
        let stretches = stretches(&plan.steps);
        let count = stretches.len();
        for (i, stretch) in stretches.into_iter().enumerate() {
            match stretch {
                Stretch::Alone(step) => self.run_alone(step)?,
                Stretch::Together(steps) => {
                    self.run_together(plan, &steps, i == 0, i + 1 == count)?
                }
            }
        }
        Ok(())
    }

    fn run_together(
        &mut self,
        plan: &Plan,
        steps: &[&Step],
        first: bool,
        last: bool,
    ) -> Result<()> {
        self.begin()?;
        if first {
            for c in &plan.accepted {
                (self.say)(&format!("Accepting the changed content of {}", c.script));
                history::accept_checksum(self.client, c.version, &c.recorded, &c.now)?;
            }
        }
        // Views and procedures are dropped once, before the first upgrade script,
        // and recreated once, after the last, as schema.sh does: a script after a
        // non-transactional one may add what a view needs.
        if first && plan.rebuild {
            self.drop_views_and_functions()?;
            let tree = self.tree;
            self.run_steps(&tree.before_pre_upgrade)?;
            for file in &tree.pre_upgrade {
                (self.say)(&format!("Running pre-upgrade script '{}'...", file.rel));
                self.run_file(file)?;
            }
            self.run_steps(&tree.after_pre_upgrade)?;
        }
        for step in steps {
            self.run_step(step)?;
        }
        if last && plan.rebuild {
            self.create_views_and_procedures()?;
            let tree = self.tree;
            for file in &tree.post_upgrade {
                (self.say)(&format!("Running post-upgrade script '{}'...", file.rel));
                self.run_file(file)?;
            }
            self.run_steps(&tree.after_post_upgrade)?;
        }
        history::set_current(self.client)?;
        if last {
            history::record_digest(self.client, &plan.digest)?;
        }
        self.commit()
    }

    /// After a failure that left the views and procedures dropped in a committed
    /// part: recreate them (with their grants) in a transaction of their own.
    /// The digest is not recorded, so the next apply rebuilds them again.
    pub fn rebuild_after_failure(&mut self) -> Result<()> {
        let result = self
            .begin()
            .and_then(|_| self.create_views_and_procedures())
            .and_then(|_| self.commit());
        if result.is_err() {
            self.abort();
        }
        result
    }

    fn run_alone(&mut self, step: &Step) -> Result<()> {
        let why = match &step.action {
            Action::Run { alone: Some(why) } => why.clone(),
            _ => String::new(),
        };
        if self.dry_run {
            (self.say)(&format!(
                "Dry run: not trying '{}', which must run outside a transaction ({why})",
                step.script
            ));
            self.not_tried.push((step.script.clone(), why));
            return Ok(());
        }
        self.commit()?;
        (self.say)(&format!(
            "Running '{}' on its own, outside a transaction ({why})",
            step.script
        ));
        self.run_step(step)?;
        history::set_current(self.client)?;
        self.committed = true;
        Ok(())
    }

    fn run_step(&mut self, step: &Step) -> Result<()> {
        let tree = self.tree;
        let script: &UpgradeScript = &tree.scripts[step.index];
        let started = history::clock(self.client)?;
        let (state, comment) = match &step.action {
            Action::Skip(by) => {
                (self.say)(&format!(
                    "Skipping upgrade script {}, already installed by {by}",
                    script.rel
                ));
                self.outcome
                    .skipped
                    .push((script.rel.clone(), by.to_string()));
                (State::Skipped, format!("Installed already by {by}"))
            }
            Action::Run { .. } => {
                for source in &script.sources {
                    (self.say)(&format!(
                        "Running helper functions from '{}' for '{}'",
                        source.rel, script.rel
                    ));
                    self.run_file(source)?;
                }
                match &script.body {
                    ScriptBody::Sql(file) => {
                        (self.say)(&format!("Running upgrade sql script '{}'...", script.rel));
                        self.run_file(file)?;
                    }
                    ScriptBody::Executable(path) => {
                        (self.say)(&format!("Running upgrade executable '{}'...", script.rel));
                        self.run_executable(&script.rel, path)?;
                    }
                }
                self.outcome.installed.push(script.rel.clone());
                (State::Installed, String::new())
            }
        };
        history::record(
            self.client,
            &Entry {
                version: script.version,
                script: &script.rel,
                checksum: &script.checksum.raw,
                state,
                comment: &comment,
                started_at: &started,
            },
        )
    }

    /// Drop the views and functions the tree owns, then load the helpers the
    /// upgrade scripts use.
    pub fn drop_views_and_functions(&mut self) -> Result<()> {
        if self.grants.is_none() {
            self.grants = Some(objects::saved_grants(self.client)?);
        }
        objects::drop_views_and_functions(
            self.client,
            self.tree.owns_views(),
            self.tree.owns_functions(),
        )?;
        self.views_dropped = true;
        let tree = self.tree;
        for file in &tree.helpers {
            self.run_file(file)?;
        }
        Ok(())
    }

    /// Recreate views, then procedures, then give back the saved grants.
    pub fn create_views_and_procedures(&mut self) -> Result<()> {
        let tree = self.tree;
        if !tree.views.is_empty() {
            (self.say)("Creating views...");
        }
        for file in &tree.views {
            self.run_file(file)?;
        }
        if !tree.procedures.is_empty() {
            (self.say)("Creating stored functions...");
        }
        for file in &tree.procedures {
            self.run_file(file)?;
        }
        let grants = self.grants.clone().unwrap_or_default();
        let gone = objects::reapply_grants(self.client, &grants)?;
        self.outcome.grants_restored = grants.iter().filter(|g| !gone.contains(&g.object)).count();
        self.outcome.grants_dropped = gone;
        self.outcome.rebuilt = true;
        self.views_dropped = false;
        self.views_dropped_committed = false;
        Ok(())
    }

    /// Run a SQL file statement by statement, then reset the session as if the
    /// file had had a connection of its own (psql gives each file one).
    pub fn run_file(&mut self, file: &SqlFile) -> Result<()> {
        for statement in &file.statements {
            self.client
                .batch_execute(&statement.text)
                .map_err(|e| statement_error(&file.rel, statement, &e))?;
        }
        self.sql("RESET ALL")
    }

    fn run_executable(&mut self, rel: &str, path: &Path) -> Result<()> {
        let pgpass = match self.params.password {
            Some(_) => Some(crate::pg::PgPass::new([self.params])?),
            None => None,
        };
        let mut env = super::dump::client_env(self.params, pgpass.as_ref());
        let dbfunc: Vec<(String, String)> = env
            .iter()
            .filter_map(|(k, v)| {
                let name = match k.as_str() {
                    "PGHOST" => "DBFUNC_DB_HOST",
                    "PGPORT" => "DBFUNC_DB_PORT",
                    "PGUSER" => "DBFUNC_DB_USER",
                    "PGDATABASE" => "DBFUNC_DB_DATABASE",
                    "PGPASSFILE" => "DBFUNC_DB_PGPASSFILE",
                    _ => return None,
                };
                Some((name.to_string(), v.clone()))
            })
            .collect();
        env.extend(dbfunc);
        let out = crate::child::command(path)
            .current_dir(&self.tree.root)
            .env_remove("PGPASSWORD")
            .envs(env)
            .stdin(Stdio::null())
            .output()
            .context(|| format!("run {rel}"))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last = stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no message");
            return Err(Error::failed(format!(
                "{rel}: the executable script failed ({}): {}",
                out.status,
                crate::secret::Redactor::global().redact(last.trim())
            )));
        }
        Ok(())
    }

    fn sql(&mut self, sql: &str) -> Result<()> {
        self.client
            .batch_execute(sql)
            .map_err(|e| Error::postgres(format!("{sql} failed: {}", error_text(&e))))
    }
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// `<file> line <n>: <server message>; statement at line <m>: <first line>`.
fn statement_error(file: &str, statement: &Statement, e: &postgres::Error) -> Error {
    let db = e.as_db_error();
    let line = match db.and_then(|d| d.position()) {
        Some(ErrorPosition::Original(p)) => statement.line_of_position(*p as usize),
        _ => statement.line,
    };
    let context = db
        .and_then(|d| d.where_())
        .and_then(|w| w.lines().next())
        .map(|w| format!(" ({w})"))
        .unwrap_or_default();
    Error::postgres(format!(
        "{file} line {line}: {}{context}; failing statement (line {}): {}",
        error_text(e),
        statement.line,
        statement.summary()
    ))
}

/// A part of the run: steps that share a transaction, or one that runs alone.
enum Stretch<'p> {
    Together(Vec<&'p Step>),
    Alone(&'p Step),
}

/// Split the steps at the scripts that must run alone. The first and the last
/// stretch are always transactional ones (possibly without steps): they hold the
/// pre-upgrade, the post-upgrade and the rebuild.
fn stretches(steps: &[Step]) -> Vec<Stretch<'_>> {
    let mut out = Vec::new();
    let mut current: Vec<&Step> = Vec::new();
    for step in steps {
        if matches!(step.action, Action::Run { alone: Some(_) }) {
            if !current.is_empty() || out.is_empty() {
                out.push(Stretch::Together(std::mem::take(&mut current)));
            }
            out.push(Stretch::Alone(step));
        } else {
            current.push(step);
        }
    }
    out.push(Stretch::Together(current));
    out
}
