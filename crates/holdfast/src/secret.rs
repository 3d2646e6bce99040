//! Passwords: kept out of `Debug` output, panics and logs.
//!
//! A [`Password`] shows as `[REDACTED]` when formatted; [`Redactor`] replaces
//! every known password in a line before the line reaches a log or the console.

use std::fmt;
use std::sync::{Mutex, OnceLock};

use secrecy::{ExposeSecret, SecretString};

#[derive(Clone)]
pub struct Password(SecretString);

impl Password {
    /// Wrap a password and remember it for redaction of log and console lines.
    pub fn new(value: impl Into<String>) -> Password {
        let value: String = value.into();
        Redactor::global().remember(&value);
        Password(SecretString::from(value))
    }

    /// The password itself: only for a pgpass file, a conf file or a connection.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }

    /// The first line of a password file (`--admin-passfile`, `--db-passfile`,
    /// `--password-file`, …): the rest of the file is ignored, and the text read
    /// is wiped from memory. The error is the operating system's, for each
    /// face to word with its option.
    pub fn from_file(path: &std::path::Path) -> std::io::Result<Password> {
        use secrecy::zeroize::Zeroize;
        let mut text = std::fs::read_to_string(path)?;
        let password = Password::new(text.lines().next().unwrap_or(""));
        text.zeroize();
        Ok(password)
    }

    /// The whole of a secret file (a credentials file of several lines).
    pub fn from_file_whole(path: &std::path::Path) -> std::io::Result<Password> {
        std::fs::read_to_string(path).map(Password::new)
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([REDACTED])")
    }
}

impl PartialEq for Password {
    fn eq(&self, other: &Password) -> bool {
        self.expose() == other.expose()
    }
}

/// Replaces known secrets in text on its way to a log or a terminal.
pub struct Redactor {
    secrets: Mutex<Vec<String>>,
}

impl Redactor {
    pub fn global() -> &'static Redactor {
        static GLOBAL: OnceLock<Redactor> = OnceLock::new();
        GLOBAL.get_or_init(|| Redactor {
            secrets: Mutex::new(Vec::new()),
        })
    }

    /// Remember a secret. Very short values are not redacted: masking every
    /// "1" in a log would hide more than it protects.
    pub fn remember(&self, secret: &str) {
        if secret.chars().count() < 3 {
            return;
        }
        let mut secrets = self.secrets.lock().unwrap_or_else(|e| e.into_inner());
        if !secrets.iter().any(|s| s == secret) {
            secrets.push(secret.to_string());
            // Longest first, so a secret that contains another is masked whole.
            secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    pub fn redact(&self, text: &str) -> String {
        let secrets = self.secrets.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = text.to_string();
        for s in secrets.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "********");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_password() {
        let p = Password::new("hunter2-debug");
        assert_eq!(format!("{p:?}"), "Password([REDACTED])");
        assert_eq!(p.expose(), "hunter2-debug");
    }

    #[test]
    fn a_password_file_gives_its_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "first-line-pw\nsecond\n").unwrap();
        assert_eq!(
            Password::from_file(&path).unwrap().expose(),
            "first-line-pw"
        );
        std::fs::write(&path, "").unwrap();
        assert_eq!(Password::from_file(&path).unwrap().expose(), "");
        assert!(Password::from_file(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn redactor_masks_remembered_passwords() {
        let _p = Password::new("dwh:fixture-pw-redact");
        let line = Redactor::global().redact("connecting with dwh:fixture-pw-redact now");
        assert_eq!(line, "connecting with ******** now");
    }
}
