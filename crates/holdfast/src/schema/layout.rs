//! Where an application keeps its scripts and what schema.sh-style runs do with
//! them: a `holdfast-schema.toml` manifest at the tree root, else a layout a
//! profile ships whose `detect` files the tree has (the ovirt-engine profile knows
//! oVirt's engine and DWH trees), else the generic dbscripts layout; and the tree
//! of files read from disk according to it. docs/schema.md describes the format.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};
use serde::Deserialize;

use super::script::{SqlFile, UpgradeScript};
use crate::{Error, IoContext, Result};

/// Name of the optional manifest at the root of a scripts tree.
pub const MANIFEST: &str = "holdfast-schema.toml";

/// Files that hold database objects by their names (views, procedures, seed
/// data): a tree's file matching one of these must be run by its layout or be
/// listed in `ignore`, so that no run reports success with objects left out.
const OBJECT_FILE_HINTS: &[&str] = &["**/create_*views*.sql", "**/*sp.sql", "**/*insert_*.sql"];

/// Which files play which part. Patterns are paths relative to the tree root whose
/// last component may hold `*` wildcards; a leading `**/` matches at any depth. A
/// pattern without a wildcard names a file that must exist.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Layout {
    /// What the layout is called in messages (`oVirt engine dbscripts`).
    pub name: String,
    /// Who maintains the files, when that is not the user (`oVirt`): changed
    /// applied scripts are then theirs to declare, not the user's to restore.
    pub upstream: Option<String>,
    /// A tree has this layout when every pattern matches a file (profiles only).
    pub detect: Vec<String>,
    /// `ALTER DATABASE … SET name = value` on a fresh install (schema.sh sets
    /// `client_min_messages = ERROR`).
    pub database_settings: BTreeMap<String, String>,
    /// Loaded once, in this order, into an empty database.
    pub base: Vec<String>,
    /// Per-install values substituted into base files on a fresh install.
    pub per_install: Vec<PerInstall>,
    /// Generic functions the upgrade scripts use, run right after the drop of
    /// views and functions.
    pub helpers: Vec<String>,
    /// Run after the helpers, before the pre-upgrade directory.
    pub before_pre_upgrade: Vec<Hook>,
    /// Directory of the scripts run before the versioned ones (re-entrant).
    pub pre_upgrade: String,
    /// Run after the pre-upgrade directory.
    pub after_pre_upgrade: Vec<Hook>,
    /// Directory of the versioned `MM_mm_nnnn…` scripts.
    pub upgrade: String,
    /// View definitions, recreated after the versioned scripts.
    pub views: Vec<String>,
    /// Stored procedure files, recreated after the views.
    pub procedures: Vec<String>,
    /// Directory of the scripts run after the rebuild of views and procedures.
    pub post_upgrade: String,
    /// Run after the post-upgrade directory.
    pub after_post_upgrade: Vec<Hook>,
    /// Files that look like views, procedures or data but are not run.
    pub ignore: Vec<String>,
    /// Earlier checksums of applied scripts their maintainers changed on purpose,
    /// by script path (`upgrade/03_05_0070_x.sql`): a database that applied one of
    /// them is not reported as changed.
    pub accepted_checksums: BTreeMap<String, Vec<String>>,
}

/// A value that differs per install: on a fresh install, every quoted
/// occurrence of `literal` in the base files matching `files` is replaced by
/// the first column of `value_sql`, evaluated once per run.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerInstall {
    pub literal: String,
    pub value_sql: String,
    pub files: Vec<String>,
}

/// One step of a hook: a file of the tree, or one SQL statement.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Hook {
    File { file: String },
    Sql { sql: String },
}

impl Default for Layout {
    /// Generic dbscripts, as oVirt's schema.sh lays them out.
    fn default() -> Layout {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect();
        Layout {
            name: "dbscripts".into(),
            upstream: None,
            detect: Vec::new(),
            database_settings: [("client_min_messages".to_string(), "ERROR".to_string())]
                .into_iter()
                .collect(),
            base: v(&[
                "create_tables.sql",
                "create_functions.sql",
                "common_sp.sql",
                "data/*.sql",
            ]),
            per_install: Vec::new(),
            helpers: v(&["create_functions.sql", "common_sp.sql"]),
            before_pre_upgrade: Vec::new(),
            pre_upgrade: "upgrade/pre_upgrade".into(),
            after_pre_upgrade: Vec::new(),
            upgrade: "upgrade".into(),
            views: v(&["create_views.sql", "create_*views.sql"]),
            procedures: v(&["**/*sp.sql", "common_sp.sql"]),
            post_upgrade: "upgrade/post_upgrade".into(),
            after_post_upgrade: Vec::new(),
            ignore: Vec::new(),
            accepted_checksums: BTreeMap::new(),
        }
    }
}

/// Where a tree's layout came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayoutSource {
    Manifest,
    Known,
    Default,
}

impl Layout {
    /// The manifest of `root` if it has one, else the first of `known` whose
    /// `detect` files the tree has, else the default layout.
    pub fn of_tree(root: &Path, known: &[Layout]) -> Result<(Layout, LayoutSource)> {
        let path = root.join(MANIFEST);
        if path.exists() {
            let text =
                std::fs::read_to_string(&path).context(|| format!("read {}", path.display()))?;
            let layout: Layout = toml::from_str(&text).map_err(|e| {
                Error::invalid(format!(
                    "{}: {}",
                    path.display(),
                    e.message().lines().next().unwrap_or("invalid manifest")
                ))
            })?;
            return Ok((layout, LayoutSource::Manifest));
        }
        for layout in known {
            if layout.detects(root)? {
                return Ok((layout.clone(), LayoutSource::Known));
            }
        }
        Ok((Layout::default(), LayoutSource::Default))
    }

    fn detects(&self, root: &Path) -> Result<bool> {
        if self.detect.is_empty() {
            return Ok(false);
        }
        for pattern in &self.detect {
            if !pattern.contains('*') {
                if !root.join(pattern).exists() {
                    return Ok(false);
                }
            } else if expand(root, std::slice::from_ref(pattern), "")?.is_empty() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Whether `checksum` is an earlier content of `script` its maintainers
    /// declared.
    pub fn accepts(&self, script: &str, checksum: &str) -> bool {
        self.accepted_checksums
            .get(script)
            .is_some_and(|sums| sums.iter().any(|s| s.trim().eq_ignore_ascii_case(checksum)))
    }
}

/// A hook step read from the tree.
#[derive(Debug, Clone)]
pub enum LoadedHook {
    File(SqlFile),
    Sql(String),
}

/// Every file of a scripts tree, read, split and checked.
#[derive(Debug, Clone)]
pub struct Tree {
    pub root: PathBuf,
    pub layout: Layout,
    pub source: LayoutSource,
    pub base: Vec<SqlFile>,
    pub helpers: Vec<SqlFile>,
    pub views: Vec<SqlFile>,
    pub procedures: Vec<SqlFile>,
    pub pre_upgrade: Vec<SqlFile>,
    pub post_upgrade: Vec<SqlFile>,
    pub before_pre_upgrade: Vec<LoadedHook>,
    pub after_pre_upgrade: Vec<LoadedHook>,
    pub after_post_upgrade: Vec<LoadedHook>,
    /// Versioned scripts in version order.
    pub scripts: Vec<UpgradeScript>,
}

impl Tree {
    /// Read the tree at `root` with its layout (see [`Layout::of_tree`]). Refuses
    /// bad script names, duplicate versions, psql meta-commands, missing files and
    /// files holding objects the layout does not run, before anything runs.
    pub fn load(root: &Path, known: &[Layout]) -> Result<Tree> {
        if !root.is_dir() {
            return Err(Error::usage(format!(
                "{}: not a directory; pass the scripts directory with --dir",
                root.display()
            )));
        }
        let (layout, source) = Layout::of_tree(root, known)?;
        let fix = match source {
            LayoutSource::Manifest => format!("fix {MANIFEST}"),
            LayoutSource::Known => format!(
                "this tree was recognised as {}: write a {MANIFEST} describing its layout",
                layout.name
            ),
            LayoutSource::Default => {
                format!("write a {MANIFEST} describing the tree's layout (see docs/schema.md)")
            }
        };
        let read_all = |patterns: &[String]| -> Result<Vec<SqlFile>> {
            expand(root, patterns, &fix)?
                .iter()
                .map(|rel| SqlFile::read(root, rel))
                .collect()
        };
        let dir_sql = |dir: &str| -> Result<Vec<SqlFile>> {
            read_all(&[format!("{}/*.sql", dir.trim_end_matches('/'))])
        };
        let hooks = |steps: &[Hook]| -> Result<Vec<LoadedHook>> {
            steps
                .iter()
                .map(|h| match h {
                    Hook::Sql { sql } => Ok(LoadedHook::Sql(sql.clone())),
                    Hook::File { file } => {
                        if !root.join(file).is_file() {
                            return Err(Error::invalid(format!(
                                "{}: missing {file}, which the layout runs; add it or {fix}",
                                root.display()
                            )));
                        }
                        SqlFile::read(root, file).map(LoadedHook::File)
                    }
                })
                .collect()
        };
        let mut scripts = Vec::new();
        let upgrade_dir = root.join(&layout.upgrade);
        if upgrade_dir.is_dir() {
            for name in file_names(&upgrade_dir)? {
                if name.ends_with(".sql") || name.ends_with(".sh") {
                    let rel = format!("{}/{name}", layout.upgrade.trim_end_matches('/'));
                    scripts.push(UpgradeScript::read(root, &rel)?);
                }
            }
        }
        scripts.sort_by(|a, b| a.version.cmp(&b.version).then(a.rel.cmp(&b.rel)));
        if let Some(pair) = scripts.windows(2).find(|w| w[0].version == w[1].version) {
            return Err(Error::invalid(format!(
                "found duplicate version {}: {} and {}; give one of them a free number",
                pair[0].version, pair[0].rel, pair[1].rel
            )));
        }
        let tree = Tree {
            base: read_all(&layout.base)?,
            helpers: read_all(&layout.helpers)?,
            views: read_all(&layout.views)?,
            procedures: read_all(&layout.procedures)?,
            pre_upgrade: dir_sql(&layout.pre_upgrade)?,
            post_upgrade: dir_sql(&layout.post_upgrade)?,
            before_pre_upgrade: hooks(&layout.before_pre_upgrade)?,
            after_pre_upgrade: hooks(&layout.after_pre_upgrade)?,
            after_post_upgrade: hooks(&layout.after_post_upgrade)?,
            scripts,
            root: root.to_path_buf(),
            layout,
            source,
        };
        tree.refuse_unrun_objects(&fix)?;
        Ok(tree)
    }

    /// Refuse a tree whose view, procedure or data files the layout neither runs
    /// nor ignores: running it would leave those objects out and look like success.
    fn refuse_unrun_objects(&self, fix: &str) -> Result<()> {
        let hinted = expand(
            &self.root,
            &OBJECT_FILE_HINTS
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
            "",
        )?;
        let ignored: BTreeSet<String> = expand_patterns(&self.root, &self.layout.ignore)?
            .into_iter()
            .collect();
        let mut run: BTreeSet<&str> = BTreeSet::new();
        let files = self
            .base
            .iter()
            .chain(&self.helpers)
            .chain(&self.views)
            .chain(&self.procedures)
            .chain(&self.pre_upgrade)
            .chain(&self.post_upgrade);
        for f in files {
            run.insert(&f.rel);
        }
        for hook in self
            .before_pre_upgrade
            .iter()
            .chain(&self.after_pre_upgrade)
            .chain(&self.after_post_upgrade)
        {
            if let LoadedHook::File(f) = hook {
                run.insert(&f.rel);
            }
        }
        for s in &self.scripts {
            run.insert(&s.rel);
            for src in &s.sources {
                run.insert(&src.rel);
            }
        }
        let left: Vec<&String> = hinted
            .iter()
            .filter(|rel| !run.contains(rel.as_str()) && !ignored.contains(*rel))
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        Err(Error::invalid(format!(
            "{}: the {} layout does not run {} ({}), which hold{} views, procedures or data; \
             nothing was run: {fix}, listing {} under base, views, procedures or ignore",
            self.root.display(),
            self.layout.name,
            if left.len() == 1 {
                "this file".to_string()
            } else {
                format!("these {} files", left.len())
            },
            left.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            if left.len() == 1 { "s" } else { "" },
            if left.len() == 1 { "it" } else { "them" },
        )))
    }

    /// md5 over the names and checksums of everything a rebuild or upgrade runs:
    /// helpers, views, procedures, pre/post-upgrade and versioned scripts. When it
    /// matches the digest recorded by the last run and no script is pending, the
    /// drop and recreate of views and procedures is skipped.
    pub fn digest(&self) -> String {
        let mut entries: BTreeMap<&str, &str> = BTreeMap::new();
        let files = self
            .helpers
            .iter()
            .chain(&self.views)
            .chain(&self.procedures)
            .chain(&self.pre_upgrade)
            .chain(&self.post_upgrade);
        for f in files {
            entries.insert(&f.rel, &f.checksum.normalized);
        }
        for hook in self
            .before_pre_upgrade
            .iter()
            .chain(&self.after_pre_upgrade)
            .chain(&self.after_post_upgrade)
        {
            if let LoadedHook::File(f) = hook {
                entries.insert(&f.rel, &f.checksum.normalized);
            }
        }
        for s in &self.scripts {
            entries.insert(&s.rel, &s.checksum.normalized);
            for src in &s.sources {
                entries.insert(&src.rel, &src.checksum.normalized);
            }
        }
        let mut md5 = Md5::new();
        for (rel, sum) in entries {
            md5.update(format!("{sum}  {rel}\n"));
        }
        for hook in self
            .before_pre_upgrade
            .iter()
            .chain(&self.after_pre_upgrade)
            .chain(&self.after_post_upgrade)
        {
            if let LoadedHook::Sql(sql) = hook {
                md5.update(format!("sql {sql}\n"));
            }
        }
        hex::encode(md5.finalize())
    }

    /// Whether the layout defines views, so dropping the database's views is safe.
    pub fn owns_views(&self) -> bool {
        !self.views.is_empty()
    }

    /// Whether the layout defines functions, so dropping the database's functions is safe.
    pub fn owns_functions(&self) -> bool {
        !self.helpers.is_empty() || !self.procedures.is_empty()
    }
}

/// Relative paths of the files `patterns` match under `root` (none required).
pub fn expand_patterns(root: &Path, patterns: &[String]) -> Result<Vec<String>> {
    let wild: Vec<String> = patterns
        .iter()
        .filter(|p| p.contains('*') || root.join(p).is_file())
        .cloned()
        .collect();
    expand(root, &wild, "")
}

/// Sorted file names (not directories) directly in `dir`.
fn file_names(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).context(|| format!("list {}", dir.display()))? {
        let entry = entry.context(|| format!("list {}", dir.display()))?;
        if entry
            .file_type()
            .map(|t| t.is_file() || t.is_symlink())
            .unwrap_or(false)
            && entry.path().is_file()
        {
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_string());
            }
        }
    }
    names.sort();
    Ok(names)
}

/// Relative paths matching `patterns`, each pattern's matches sorted, first
/// occurrence kept.
fn expand(root: &Path, patterns: &[String], fix: &str) -> Result<Vec<String>> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for pattern in patterns {
        let matches = if let Some(name_pattern) = pattern.strip_prefix("**/") {
            let mut found = Vec::new();
            walk(root, "", name_pattern, &mut found)?;
            found.sort();
            found
        } else {
            let (dir, name_pattern) = match pattern.rsplit_once('/') {
                Some((d, n)) => (d, n),
                None => ("", pattern.as_str()),
            };
            if !name_pattern.contains('*') {
                if !root.join(pattern).is_file() {
                    return Err(Error::invalid(format!(
                        "{}: missing {pattern}, which the layout lists; add it or {}",
                        root.display(),
                        if fix.is_empty() {
                            format!("fix {MANIFEST}")
                        } else {
                            fix.to_string()
                        }
                    )));
                }
                vec![pattern.clone()]
            } else {
                let dir_path = root.join(dir);
                if !dir_path.is_dir() {
                    Vec::new()
                } else {
                    file_names(&dir_path)?
                        .into_iter()
                        .filter(|n| wildcard_match(name_pattern, n))
                        .map(|n| {
                            if dir.is_empty() {
                                n
                            } else {
                                format!("{dir}/{n}")
                            }
                        })
                        .collect()
                }
            }
        };
        for rel in matches {
            if seen.insert(rel.clone()) {
                out.push(rel);
            }
        }
    }
    Ok(out)
}

fn walk(root: &Path, rel_dir: &str, name_pattern: &str, found: &mut Vec<String>) -> Result<()> {
    let dir = root.join(rel_dir);
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .context(|| format!("list {}", dir.display()))?
        .filter_map(|e| e.ok())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let rel = if rel_dir.is_empty() {
            name.clone()
        } else {
            format!("{rel_dir}/{name}")
        };
        let path = entry.path();
        if path.is_dir() {
            walk(root, &rel, name_pattern, found)?;
        } else if wildcard_match(name_pattern, &name) {
            found.push(rel);
        }
    }
    Ok(())
}

/// `*` matches any run of characters; everything else matches itself.
fn wildcard_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard_match("create_*views.sql", "create_dwh_views.sql"));
        assert!(wildcard_match("create_*views.sql", "create_views.sql"));
        assert!(wildcard_match("*_sp.sql", "common_sp.sql"));
        assert!(!wildcard_match("*_sp.sql", "common_sp.sql.orig"));
        assert!(wildcard_match("a*b*c", "aXbYc"));
        assert!(!wildcard_match("a*b*c", "aXc"));
    }

    #[test]
    fn manifest_overrides_the_default_layout() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(MANIFEST),
            "base = [\"schema.sql\"]\nhelpers = []\nviews = [\"views/*.sql\"]\nprocedures = []\nupgrade = \"migrations\"\n",
        )
        .unwrap();
        let (layout, source) = Layout::of_tree(dir.path(), &[]).unwrap();
        assert_eq!(source, LayoutSource::Manifest);
        assert_eq!(layout.upgrade, "migrations");
        assert_eq!(layout.pre_upgrade, "upgrade/pre_upgrade");
        std::fs::write(dir.path().join(MANIFEST), "bogus = 1\n").unwrap();
        assert!(Layout::of_tree(dir.path(), &[]).is_err());
    }
}
