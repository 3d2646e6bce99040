//! Users of the server: an htpasswd file of bcrypt hashes, HTTP Basic credentials
//! checked against it, and a short-lived cache of credentials already checked (restic
//! sends them with every request, and one bcrypt check costs tens of milliseconds).

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::error::{Result, ServeError};

/// How long a checked user/password pair is accepted without a new bcrypt check.
const CACHE_TTL: Duration = Duration::from_secs(300);
/// Bound on remembered pairs; the cache is emptied when it is reached.
const CACHE_MAX: usize = 4096;

/// The users of an htpasswd file, each with a bcrypt hash.
pub struct Htpasswd {
    users: HashMap<String, String>,
    /// Checked against when the user is unknown, so that an unknown user costs the
    /// same time as a wrong password.
    decoy_hash: String,
    /// Remembers sha256(key, user, password) of accepted pairs; the random key keeps
    /// the digests useless outside this process.
    cache: Mutex<HashMap<[u8; 32], Instant>>,
    cache_key: [u8; 32],
}

impl Htpasswd {
    /// Read an htpasswd file. Only bcrypt hashes (`htpasswd -B`) are accepted: any
    /// other kind is refused with the line and user named.
    pub fn load(path: &Path) -> Result<Htpasswd> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ServeError::io_path("read htpasswd file", path, e))?;
        Htpasswd::parse(&text, &path.display().to_string())
    }

    /// Parse htpasswd text; `source` names it in errors.
    pub fn parse(text: &str, source: &str) -> Result<Htpasswd> {
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let lineno = n + 1;
            let Some((user, hash)) = line.split_once(':') else {
                return Err(ServeError::usage(format!(
                    "{source} line {lineno}: expected user:hash"
                )));
            };
            if user.is_empty() {
                return Err(ServeError::usage(format!(
                    "{source} line {lineno}: the user name is empty"
                )));
            }
            if bcrypt::HashParts::from_str(hash).is_err() {
                return Err(ServeError::usage(format!(
                    "{source} line {lineno} (user {user}): not a bcrypt hash; only bcrypt is accepted, recreate the entry with `htpasswd -B {source} {user}`"
                )));
            }
            if users.insert(user.to_string(), hash.to_string()).is_some() {
                return Err(ServeError::usage(format!(
                    "{source} line {lineno}: user {user} appears twice"
                )));
            }
        }
        if users.is_empty() {
            return Err(ServeError::usage(format!(
                "{source} holds no users; add one with `htpasswd -B {source} NAME`"
            )));
        }
        let decoy_hash =
            bcrypt::hash("decoy", 10).map_err(|e| ServeError::usage(format!("bcrypt: {e}")))?;
        Ok(Htpasswd {
            users,
            decoy_hash,
            cache: Mutex::new(HashMap::new()),
            cache_key: random_key()?,
        })
    }

    /// Check credentials; `true` when the user exists and the password matches.
    /// Blocking (bcrypt): call from a blocking-capable thread.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        let digest = self.cache_digest(user, password);
        if self.cached(&digest) {
            return true;
        }
        let ok = match self.users.get(user) {
            Some(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            None => {
                let _ = bcrypt::verify(password, &self.decoy_hash);
                false
            }
        };
        if ok {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            cache.insert(digest, Instant::now());
        }
        ok
    }

    fn cached(&self, digest: &[u8; 32]) -> bool {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(digest).is_some_and(|at| at.elapsed() < CACHE_TTL)
    }

    fn cache_digest(&self, user: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.cache_key);
        h.update(user.as_bytes());
        h.update([0]);
        h.update(password.as_bytes());
        h.finalize().into()
    }
}

/// The user and password of an `Authorization: Basic` header value.
pub fn basic_credentials(header: &str) -> Option<(String, String)> {
    let encoded = header.strip_prefix("Basic ")?.trim();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn random_key() -> Result<[u8; 32]> {
    let mut key = [0u8; 32];
    let path = Path::new("/dev/urandom");
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut key))
        .map_err(|e| ServeError::io_path("read", path, e))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_bcrypt_and_checks_passwords() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let users = Htpasswd::parse(&format!("# users\nalice:{hash}\n"), "test").unwrap();
        assert!(users.verify("alice", "s3cret"));
        assert!(users.verify("alice", "s3cret"), "cached");
        assert!(!users.verify("alice", "wrong"));
        assert!(!users.verify("bob", "s3cret"));
    }

    #[test]
    fn refuses_other_hash_kinds() {
        for hash in [
            "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=",
            "$apr1$abc$def",
            "plaintext",
        ] {
            let err = Htpasswd::parse(&format!("alice:{hash}\n"), "users")
                .err()
                .expect("refused");
            assert!(err.to_string().contains("not a bcrypt hash"), "{err}");
        }
        assert!(Htpasswd::parse("", "users").is_err());
    }

    #[test]
    fn decodes_basic_credentials() {
        assert_eq!(
            basic_credentials("Basic YWxpY2U6cDpx"),
            Some(("alice".into(), "p:q".into()))
        );
        assert_eq!(basic_credentials("Bearer x"), None);
    }
}
