//! Where an application keeps its scripts: oVirt's dbscripts layout by default, or
//! the one a `holdfast-schema.toml` manifest at the tree root describes; and the
//! tree of files read from disk according to it.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};
use serde::Deserialize;

use super::script::{SqlFile, UpgradeScript};
use crate::{Error, IoContext, Result};

/// Name of the optional manifest at the root of a scripts tree.
pub const MANIFEST: &str = "holdfast-schema.toml";

/// Which files play which part. Patterns are paths relative to the tree root whose
/// last component may hold `*` wildcards; a leading `**/` matches at any depth. A
/// pattern without a wildcard names a file that must exist.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Layout {
    /// Loaded once, in this order, into an empty database.
    pub base: Vec<String>,
    /// Generic functions the upgrade scripts use, run right after the drop of
    /// views and functions.
    pub helpers: Vec<String>,
    /// View definitions, recreated after the versioned scripts.
    pub views: Vec<String>,
    /// Stored procedure files, recreated after the views.
    pub procedures: Vec<String>,
    /// Directory of the versioned `MM_mm_nnnn_Name.sql` scripts.
    pub upgrade: String,
    /// Directory of the scripts run before the versioned ones (re-entrant).
    pub pre_upgrade: String,
    /// Directory of the scripts run after the rebuild of views and procedures.
    pub post_upgrade: String,
}

impl Default for Layout {
    /// oVirt's `packaging/dbscripts`.
    fn default() -> Layout {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect();
        Layout {
            base: v(&[
                "create_tables.sql",
                "create_functions.sql",
                "common_sp.sql",
                "data/*.sql",
            ]),
            helpers: v(&["create_functions.sql", "common_sp.sql"]),
            views: v(&["create_views.sql", "create_*views.sql"]),
            procedures: v(&["**/*_sp.sql"]),
            upgrade: "upgrade".into(),
            pre_upgrade: "upgrade/pre_upgrade".into(),
            post_upgrade: "upgrade/post_upgrade".into(),
        }
    }
}

impl Layout {
    /// The manifest of `root` if it has one, else the default layout.
    pub fn of_tree(root: &Path) -> Result<Layout> {
        let path = root.join(MANIFEST);
        if !path.exists() {
            return Ok(Layout::default());
        }
        let text = std::fs::read_to_string(&path).context(|| format!("read {}", path.display()))?;
        toml::from_str(&text).map_err(|e| {
            Error::invalid(format!(
                "{}: {}",
                path.display(),
                e.message().lines().next().unwrap_or("invalid manifest")
            ))
        })
    }
}

/// Every file of a scripts tree, read, split and checked.
#[derive(Debug, Clone)]
pub struct Tree {
    pub root: PathBuf,
    pub layout: Layout,
    pub base: Vec<SqlFile>,
    pub helpers: Vec<SqlFile>,
    pub views: Vec<SqlFile>,
    pub procedures: Vec<SqlFile>,
    pub pre_upgrade: Vec<SqlFile>,
    pub post_upgrade: Vec<SqlFile>,
    /// Versioned scripts in version order.
    pub scripts: Vec<UpgradeScript>,
}

impl Tree {
    /// Read the tree at `root` with its layout. Refuses bad script names, duplicate
    /// versions, psql meta-commands and missing files before anything runs.
    pub fn load(root: &Path) -> Result<Tree> {
        if !root.is_dir() {
            return Err(Error::usage(format!(
                "{}: not a directory; pass the scripts directory with --dir",
                root.display()
            )));
        }
        let layout = Layout::of_tree(root)?;
        let read_all = |patterns: &[String]| -> Result<Vec<SqlFile>> {
            expand(root, patterns)?
                .iter()
                .map(|rel| SqlFile::read(root, rel))
                .collect()
        };
        let dir_sql = |dir: &str| -> Result<Vec<SqlFile>> {
            read_all(&[format!("{}/*.sql", dir.trim_end_matches('/'))])
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
        Ok(Tree {
            base: read_all(&layout.base)?,
            helpers: read_all(&layout.helpers)?,
            views: read_all(&layout.views)?,
            procedures: read_all(&layout.procedures)?,
            pre_upgrade: dir_sql(&layout.pre_upgrade)?,
            post_upgrade: dir_sql(&layout.post_upgrade)?,
            scripts,
            root: root.to_path_buf(),
            layout,
        })
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
fn expand(root: &Path, patterns: &[String]) -> Result<Vec<String>> {
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
                        "{}: missing {pattern}, which the layout lists; add it or fix {MANIFEST}",
                        root.display()
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
        let layout = Layout::of_tree(dir.path()).unwrap();
        assert_eq!(layout.upgrade, "migrations");
        assert_eq!(layout.pre_upgrade, "upgrade/pre_upgrade");
        std::fs::write(dir.path().join(MANIFEST), "bogus = 1\n").unwrap();
        assert!(Layout::of_tree(dir.path()).is_err());
    }
}
