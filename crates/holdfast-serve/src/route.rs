//! The protocol's request paths: which repository, which object type, which object.
//! Every component is validated here, so nothing below can name a file outside the
//! repository root.

use std::fmt;
use std::path::{Path, PathBuf};

/// The object types of a restic repository besides its config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectType {
    Data,
    Keys,
    Locks,
    Snapshots,
    Index,
}

impl ObjectType {
    pub const ALL: [ObjectType; 5] = [
        ObjectType::Data,
        ObjectType::Keys,
        ObjectType::Locks,
        ObjectType::Snapshots,
        ObjectType::Index,
    ];

    pub fn parse(s: &str) -> Option<ObjectType> {
        ObjectType::ALL.into_iter().find(|t| t.dir_name() == s)
    }

    /// The directory the type's objects live in.
    pub fn dir_name(self) -> &'static str {
        match self {
            ObjectType::Data => "data",
            ObjectType::Keys => "keys",
            ObjectType::Locks => "locks",
            ObjectType::Snapshots => "snapshots",
            ObjectType::Index => "index",
        }
    }

    /// Whether the protocol names the type's objects by the sha256 of their content.
    /// Lock files are named that way too by restic, but the brief (and rest-server's
    /// append-only rule) treats them as the one mutable kind, so they are not checked.
    pub fn content_addressed(self) -> bool {
        !matches!(self, ObjectType::Locks)
    }
}

/// A repository's path below the root: zero or more validated components.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoPath(Vec<String>);

impl RepoPath {
    pub fn components(&self) -> &[String] {
        &self.0
    }

    pub fn dir(&self, root: &Path) -> PathBuf {
        let mut dir = root.to_path_buf();
        dir.extend(&self.0);
        dir
    }
}

impl fmt::Display for RepoPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", self.0.join("/"))
    }
}

/// What a request path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /health`, served without authentication.
    Health,
    /// `/{repo}/`: `POST ?create=true` creates the repository.
    Repo(RepoPath),
    /// `/{repo}/config`
    Config(RepoPath),
    /// `/{repo}/{type}/`
    List(RepoPath, ObjectType),
    /// `/{repo}/{type}/{name}`
    Object(RepoPath, ObjectType, String),
}

impl Route {
    /// Parse a request path, or say in one line why it is refused.
    pub fn parse(path: &str) -> Result<Route, String> {
        if path == "/health" {
            return Ok(Route::Health);
        }
        let Some(rest) = path.strip_prefix('/') else {
            return Err("the path must start with /".into());
        };
        let trailing_slash = rest.ends_with('/') || rest.is_empty();
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let parts: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('/').collect()
        };
        let route = match parts.as_slice() {
            [repo @ .., last] if trailing_slash => match ObjectType::parse(last) {
                Some(kind) => Route::List(repo_path(repo)?, kind),
                None => Route::Repo(repo_path(&parts)?),
            },
            [] => Route::Repo(RepoPath(Vec::new())),
            [repo @ .., "config"] => Route::Config(repo_path(repo)?),
            [repo @ .., kind, name] if ObjectType::parse(kind).is_some() => {
                let kind = ObjectType::parse(kind).expect("matched above");
                Route::Object(repo_path(repo)?, kind, object_name(name)?)
            }
            [repo @ .., last] => match ObjectType::parse(last) {
                Some(kind) => Route::List(repo_path(repo)?, kind),
                None => return Err(format!("{path} names no repository file")),
            },
        };
        Ok(route)
    }

    /// The repository the route is in (none for the health check).
    pub fn repo(&self) -> Option<&RepoPath> {
        match self {
            Route::Health => None,
            Route::Repo(r) | Route::Config(r) | Route::List(r, _) | Route::Object(r, _, _) => {
                Some(r)
            }
        }
    }
}

/// Repository path components: letters, digits, `_`, `-` and `.` (not first), and
/// never a name the protocol gives a meaning to.
fn repo_path(parts: &[&str]) -> Result<RepoPath, String> {
    parts
        .iter()
        .map(|p| {
            let allowed = !p.is_empty()
                && p.len() <= 128
                && !p.starts_with('.')
                && p
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
            if !allowed {
                Err(format!(
                    "repository path component {p:?} is not allowed (letters, digits, _ - . and not starting with .)"
                ))
            } else if *p == "config" || ObjectType::parse(p).is_some() {
                Err(format!(
                    "repository path component {p:?} is reserved by the protocol"
                ))
            } else {
                Ok(p.to_string())
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map(RepoPath)
}

/// Object names are 64 lowercase hex digits (a sha256).
fn object_name(name: &str) -> Result<String, String> {
    if name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(name.to_string())
    } else {
        Err(format!(
            "object name {name:?} is not 64 lowercase hex digits"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn repo(parts: &[&str]) -> RepoPath {
        RepoPath(parts.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn parses_the_protocol_paths() {
        assert_eq!(Route::parse("/health"), Ok(Route::Health));
        assert_eq!(Route::parse("/"), Ok(Route::Repo(repo(&[]))));
        assert_eq!(Route::parse("/alice/"), Ok(Route::Repo(repo(&["alice"]))));
        assert_eq!(Route::parse("/config"), Ok(Route::Config(repo(&[]))));
        assert_eq!(
            Route::parse("/alice/app/config"),
            Ok(Route::Config(repo(&["alice", "app"])))
        );
        assert_eq!(
            Route::parse("/alice/data/"),
            Ok(Route::List(repo(&["alice"]), ObjectType::Data))
        );
        assert_eq!(
            Route::parse("/keys"),
            Ok(Route::List(repo(&[]), ObjectType::Keys))
        );
        assert_eq!(
            Route::parse(&format!("/alice/snapshots/{ID}")),
            Ok(Route::Object(
                repo(&["alice"]),
                ObjectType::Snapshots,
                ID.into()
            ))
        );
    }

    #[test]
    fn refuses_traversal_and_bad_names() {
        for bad in [
            "/../etc/config",
            "/alice/../bob/config",
            "/alice/./config",
            "/alice//config",
            "/alice/data/../../x",
            "/alice/data/ABCDEF",
            "/alice/keys/0123",
            "/.hidden/config",
            "/a%2e%2e/config",
            "/alice/whatever",
            "relative/config",
        ] {
            assert!(Route::parse(bad).is_err(), "{bad} was accepted");
        }
        let upper = ID.to_uppercase();
        assert!(Route::parse(&format!("/alice/data/{upper}")).is_err());
    }
}
