//! What an `apply` will do, decided before anything runs: which scripts are
//! pending, which are recorded `SKIPPED`, whether views and procedures are rebuilt,
//! and the refusals (gap, out of order, changed applied scripts).

use std::collections::BTreeSet;

use super::history::History;
use super::layout::Tree;
use super::script::Version;
use crate::{Error, Result};

/// Choices the user makes about what `apply` may do.
#[derive(Debug, Clone, Default)]
pub struct Permissions {
    /// Apply scripts whose version is below the current one and not installed.
    pub allow_out_of_order: bool,
    /// Applied scripts whose file changed and whose new content is accepted.
    pub accept_changed: BTreeSet<Version>,
}

/// What happens to one versioned script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Run it and record it `INSTALLED`.
    Run {
        /// Why it runs alone outside the run's transaction, if it must.
        alone: Option<String>,
    },
    /// Its content is installed already under this version: record it `SKIPPED`.
    Skip(Version),
}

/// One versioned script's fate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Index into [`Tree::scripts`].
    pub index: usize,
    pub version: Version,
    pub script: String,
    pub action: Action,
}

/// An applied script whose file is no longer what was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    pub version: Version,
    pub script: String,
    pub recorded: String,
    pub now: String,
}

impl Plan {
    /// The plan as one JSON document (`holdfast schema plan --json`): what
    /// the text lists, in apply's order.
    pub fn to_json(&self) -> String {
        let steps: Vec<serde_json::Value> = self
            .steps
            .iter()
            .map(|s| {
                let (action, alone) = match &s.action {
                    Action::Run { alone } => ("run", alone.clone()),
                    Action::Skip(_) => ("skip", None),
                };
                serde_json::json!({
                    "version": s.version.to_string(),
                    "script": s.script,
                    "action": action,
                    "alone": alone,
                    "installed_as": match &s.action {
                        Action::Skip(v) => Some(v.to_string()),
                        Action::Run { .. } => None,
                    },
                })
            })
            .collect();
        serde_json::json!({
            "version": 1,
            "fresh": self.fresh,
            "current_version": self.current.map(|v| v.to_string()),
            "base": self.base,
            "accepted_changes": self.accepted.iter().map(|c| serde_json::json!({
                "version": c.version.to_string(),
                "script": c.script,
                "recorded": c.recorded,
                "now": c.now,
            })).collect::<Vec<_>>(),
            "rebuild": self.rebuild,
            "rebuild_reason": self.rebuild_reason,
            "pre_upgrade": self.pre_upgrade,
            "steps": steps,
            "post_upgrade": self.post_upgrade,
            "digest": self.digest,
        })
        .to_string()
    }
}

/// What `apply` will do, in order.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The database is empty: load the base first.
    pub fresh: bool,
    /// The version the database is at (before the run; `None` when fresh).
    pub current: Option<Version>,
    pub steps: Vec<Step>,
    /// Changed applied scripts the user accepted: their checksums are updated.
    pub accepted: Vec<Changed>,
    /// Drop and recreate views and procedures (and run pre/post-upgrade).
    pub rebuild: bool,
    /// Why (or why not) the rebuild happens, for the user.
    pub rebuild_reason: String,
    /// Base files loaded first (only on a fresh database).
    pub base: Vec<String>,
    /// Scripts run before the versioned ones (only with a rebuild).
    pub pre_upgrade: Vec<String>,
    /// Scripts run after the rebuild (only with a rebuild).
    pub post_upgrade: Vec<String>,
    /// The digest of the tree, recorded at the end of the run.
    pub digest: String,
}

impl Plan {
    /// Whether the run changes nothing.
    pub fn is_noop(&self) -> bool {
        !self.fresh && self.steps.is_empty() && !self.rebuild && self.accepted.is_empty()
    }
}

/// Applied scripts whose file differs from what was applied, leaving out the
/// earlier contents the tree's maintainers declared (`accepted_checksums`).
pub fn changed_scripts(tree: &Tree, history: &History) -> Vec<Changed> {
    tree.scripts
        .iter()
        .filter_map(|s| {
            let row = history.applied(s.version)?;
            let recorded = row.checksum.as_deref().unwrap_or("").trim();
            // oVirt's seed row carries checksum '0': nothing to compare.
            if recorded.is_empty()
                || recorded == "0"
                || s.checksum.matches(recorded)
                || tree.layout.accepts(&s.rel, recorded)
            {
                return None;
            }
            Some(Changed {
                version: s.version,
                script: s.rel.clone(),
                recorded: recorded.to_string(),
                now: s.checksum.raw.clone(),
            })
        })
        .collect()
}

/// Decide what `apply` does on a database with `history` (empty when `fresh`) and
/// the rebuild digest recorded by its last run.
pub fn decide(
    tree: &Tree,
    history: &History,
    fresh: bool,
    recorded_digest: Option<&str>,
    permissions: &Permissions,
) -> Result<Plan> {
    let changed = changed_scripts(tree, history);
    let unaccepted: Vec<&Changed> = changed
        .iter()
        .filter(|c| !permissions.accept_changed.contains(&c.version))
        .collect();
    if !unaccepted.is_empty() {
        return Err(changed_error(tree, &unaccepted));
    }
    if let Some(v) = permissions
        .accept_changed
        .iter()
        .find(|v| !changed.iter().any(|c| c.version == **v))
    {
        return Err(Error::usage(format!(
            "--accept-changed {v}: no applied script of that version has changed; \
             check the version with `holdfast schema status`"
        )));
    }

    let current = history.current();
    let mut last = current;
    let mut installed_now: Vec<(String, Version)> = Vec::new();
    let mut steps = Vec::new();
    for (index, script) in tree.scripts.iter().enumerate() {
        if history.applied(script.version).is_some() {
            continue;
        }
        let below_current = current.is_some_and(|c| script.version <= c);
        if below_current && !permissions.allow_out_of_order {
            return Err(Error::failed(format!(
                "{} has version {}, below the database's current version {}, and was never \
                 applied; renumber it above {}, or pass --allow-out-of-order to apply it anyway",
                script.rel,
                script.version,
                current.map(|c| c.to_string()).unwrap_or_default(),
                current.map(|c| c.to_string()).unwrap_or_default(),
            )));
        }
        if !below_current {
            if let Some(prev) = last {
                let too_far = prev.series() == script.version.series()
                    && script.version.number() > prev.number() + 10;
                if too_far {
                    return Err(Error::failed(format!(
                        "{}: illegal version {}, more than 10 above the last installed version \
                         {prev}; renumber it between {:08} and {:08}",
                        script.rel,
                        script.version,
                        prev.number() + 1,
                        prev.number() + 10
                    )));
                }
            }
            last = Some(script.version);
        }
        let duplicate_of = history
            .installed_with_checksum(&script.checksum.raw)
            .or_else(|| {
                installed_now
                    .iter()
                    .find(|(sum, _)| *sum == script.checksum.raw)
                    .map(|(_, v)| *v)
            });
        let action = match duplicate_of {
            Some(by) => Action::Skip(by),
            None => {
                installed_now.push((script.checksum.raw.clone(), script.version));
                Action::Run {
                    alone: script.transaction_blocker(),
                }
            }
        };
        steps.push(Step {
            index,
            version: script.version,
            script: script.rel.clone(),
            action,
        });
    }

    let digest = tree.digest();
    let runs = steps.iter().any(|s| matches!(s.action, Action::Run { .. }));
    let (rebuild, rebuild_reason) = if fresh {
        (true, "fresh database".to_string())
    } else if runs {
        (true, "upgrade scripts are pending".to_string())
    } else if recorded_digest != Some(digest.as_str()) {
        (
            true,
            match recorded_digest {
                None => "no record of a previous rebuild".to_string(),
                Some(_) => {
                    "views, procedures or upgrade scripts changed since the last run".to_string()
                }
            },
        )
    } else {
        (false, "nothing changed since the last run".to_string())
    };
    let names = |files: &[super::script::SqlFile]| files.iter().map(|f| f.rel.clone()).collect();
    Ok(Plan {
        base: if fresh { names(&tree.base) } else { Vec::new() },
        pre_upgrade: if rebuild {
            names(&tree.pre_upgrade)
        } else {
            Vec::new()
        },
        post_upgrade: if rebuild {
            names(&tree.post_upgrade)
        } else {
            Vec::new()
        },
        fresh,
        current: if fresh { None } else { current },
        steps,
        accepted: changed,
        rebuild,
        rebuild_reason,
        digest,
    })
}

/// One error naming every changed applied script, with advice that fits whose
/// files they are.
fn changed_error(tree: &Tree, changed: &[&Changed]) -> Error {
    let list = changed
        .iter()
        .map(|c| {
            format!(
                "{} (checksum {} recorded, {} now)",
                c.script, c.recorded, c.now
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let versions = changed
        .iter()
        .map(|c| format!("--accept-changed {}", c.version))
        .collect::<Vec<_>>()
        .join(" ");
    let (what, advice) = match &tree.layout.upstream {
        Some(upstream) => (
            format!(
                "{} applied script{} of {} changed after {} applied",
                changed.len(),
                if changed.len() == 1 { "" } else { "s" },
                tree.layout.name,
                if changed.len() == 1 {
                    "it was"
                } else {
                    "they were"
                },
            ),
            format!(
                "these are {upstream}'s files: if {upstream} changed them on purpose, add the \
                 recorded checksums to accepted_checksums of the layout (profile or {}), or \
                 accept them for this database with {versions}",
                super::layout::MANIFEST
            ),
        ),
        None => (
            format!(
                "{} applied script{} changed after {} applied",
                changed.len(),
                if changed.len() == 1 { "" } else { "s" },
                if changed.len() == 1 {
                    "it was"
                } else {
                    "they were"
                },
            ),
            format!(
                "restore the applied content from version control, or, if the change is \
                 intended, accept it with {versions} (or list the recorded checksums under \
                 accepted_checksums in {})",
                super::layout::MANIFEST
            ),
        ),
    };
    Error::failed(format!("{what}: {list}; {advice}"))
}
