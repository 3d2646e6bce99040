//! Telling someone how an unattended run ended: JSON webhooks, healthchecks.io
//! style pings and mail.
//!
//! A target is a URL:
//! - `https://…` or `http://…`: a webhook; the run's [`Event`] is POSTed as a
//!   JSON document, signed with HMAC-SHA256 when a secret is given
//!   (`X-Holdfast-Signature: sha256=<hex>`);
//! - `hc+https://…` or `hc+http://…`: a healthchecks.io-style check; the URL
//!   without `hc+` is pinged at `<url>/start` when the run begins, at `<url>`
//!   when it succeeds and at `<url>/fail` (the reason in the body) when it fails;
//! - `mailto:admin@example.org`: a plain-text report through SMTP ([`SmtpSettings`]).
//!
//! Webhooks and mail are sent on failure, and on success only when asked;
//! pings are sent always, since the check they feed waits for the success.
//! Delivery never blocks or fails the run: every attempt has a timeout, a
//! failed one is tried [`RETRIES`] more times, and what still fails is
//! returned as a [`Failure`] for the caller to log and count.

mod http;
mod mail;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Error, IoContext, Password, Result};

pub use mail::SmtpSettings;

/// How long one attempt may take (connect, send, answer).
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts after the first that failed.
pub const RETRIES: u32 = 2;
/// The pause between attempts.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// The webhook document's format version.
pub const EVENT_VERSION: u32 = 1;

/// How a run ended, as sent to every target.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Event {
    pub version: u32,
    /// The verb as typed (`backup`, `repo backup`, `verify --deep`, ...).
    pub verb: String,
    /// `success`, `warnings`, `failed`, `usage error` or `interrupted`.
    pub outcome: String,
    /// The reason of the `--log` outcome line (empty on success).
    pub reason: String,
    pub exit_code: u8,
    pub host: String,
    pub profile: Option<String>,
    /// The archive directory, repository or install root worked on.
    pub target: String,
    /// RFC 3339, UTC.
    pub started: String,
    pub finished: String,
    pub duration_seconds: f64,
    pub archive: Option<String>,
    pub size_bytes: Option<u64>,
    /// What the archive holds (`files`, `db`, ...), when one was written,
    /// verified or restored.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Deep verify: the tables whose rows and checksums were compared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tables_compared: Option<u64>,
}

impl Event {
    pub fn succeeded(&self) -> bool {
        self.exit_code == 0
    }

    /// `holdfast backup failed on host: reason`: a subject line.
    pub fn summary(&self) -> String {
        let mut s = format!("holdfast {} {} on {}", self.verb, self.outcome, self.host);
        if let Some(p) = &self.profile {
            s.push_str(&format!(" ({p})"));
        }
        if !self.reason.is_empty() {
            s.push_str(": ");
            s.push_str(&self.reason);
        }
        s
    }

    /// The plain-text report of mail and ping bodies.
    pub fn report(&self) -> String {
        let mut lines = vec![
            self.summary(),
            String::new(),
            format!("verb:      {}", self.verb),
            format!("outcome:   {} (exit {})", self.outcome, self.exit_code),
        ];
        if !self.reason.is_empty() {
            lines.push(format!("reason:    {}", self.reason));
        }
        lines.push(format!("host:      {}", self.host));
        if let Some(p) = &self.profile {
            lines.push(format!("profile:   {p}"));
        }
        lines.push(format!("target:    {}", self.target));
        lines.push(format!("started:   {}", self.started));
        lines.push(format!("finished:  {}", self.finished));
        lines.push(format!("duration:  {:.1} s", self.duration_seconds));
        if let Some(a) = &self.archive {
            lines.push(format!("archive:   {a}"));
        }
        if let Some(n) = self.size_bytes {
            lines.push(format!("size:      {n} bytes"));
        }
        lines.join("\n") + "\n"
    }
}

/// One place to tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Webhook(String),
    /// The check's base URL (without `hc+`).
    Ping(String),
    Mail(String),
}

impl Target {
    pub fn parse(url: &str) -> Result<Target> {
        let lower = url.to_ascii_lowercase();
        if let Some(rest) = url.strip_prefix("hc+") {
            if rest.starts_with("https://") || rest.starts_with("http://") {
                return Ok(Target::Ping(rest.trim_end_matches('/').to_string()));
            }
        } else if lower.starts_with("https://") || lower.starts_with("http://") {
            return Ok(Target::Webhook(url.to_string()));
        } else if lower.starts_with("mailto:") {
            let address = &url["mailto:".len()..];
            if address.contains('@') && !address.contains(['?', ',', ' ']) {
                return Ok(Target::Mail(address.to_string()));
            }
        }
        Err(Error::usage(format!(
            "cannot notify {url:?}: use https://… (webhook), hc+https://… (healthchecks ping) or mailto:user@host"
        )))
    }

    /// The target as shown in the log: without a URL's query, which may hold a token.
    pub fn display(&self) -> String {
        match self {
            Target::Webhook(u) => strip_query(u),
            Target::Ping(u) => format!("hc+{}", strip_query(u)),
            Target::Mail(a) => format!("mailto:{a}"),
        }
    }
}

fn strip_query(url: &str) -> String {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    url[..end].to_string()
}

/// What to tell whom.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub targets: Vec<Target>,
    /// Webhooks and mail on success too (pings always).
    pub on_success: bool,
    /// The webhook signing key.
    pub secret: Option<Password>,
    pub smtp: SmtpSettings,
}

/// The notification part of a config file (`--notify-config`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    #[serde(default)]
    pub notify: Vec<String>,
    #[serde(default)]
    pub on_success: bool,
    pub secret_file: Option<PathBuf>,
    #[serde(default)]
    pub smtp: mail::FileSmtp,
}

impl FileSettings {
    pub fn load(path: &std::path::Path) -> Result<FileSettings> {
        let text = std::fs::read_to_string(path)
            .context(|| format!("read notification settings {}", path.display()))?;
        toml::from_str(&text)
            .map_err(|e| Error::usage(format!("{}: {}", path.display(), e.message())))
    }
}

/// A notification that could not be delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// [`Target::display`].
    pub target: String,
    pub reason: String,
}

/// Read a secret kept in a file: its first line, and remember it so that no
/// message shows it.
pub fn secret_from_file(path: &std::path::Path, option: &str) -> Result<Password> {
    let text =
        std::fs::read_to_string(path).context(|| format!("read {option} {}", path.display()))?;
    let line = text.lines().next().unwrap_or("").to_string();
    if line.is_empty() {
        return Err(Error::usage(format!(
            "{option} {} is empty; its first line is the secret",
            path.display()
        )));
    }
    crate::secret::Redactor::global().remember(&line);
    Ok(Password::new(line))
}

/// Tell the ping targets that a run begins.
pub fn started(settings: &Settings) -> Vec<Failure> {
    settings
        .targets
        .iter()
        .filter_map(|t| match t {
            Target::Ping(base) => attempt(t, || http::ping(&format!("{base}/start"), "")),
            _ => None,
        })
        .collect()
}

/// Tell every target how the run ended (webhooks and mail on success only
/// when asked).
pub fn finished(settings: &Settings, event: &Event) -> Vec<Failure> {
    let tell_all = !event.succeeded() || settings.on_success;
    let mut failures = Vec::new();
    for t in &settings.targets {
        let failure = match t {
            Target::Ping(base) if event.succeeded() => {
                attempt(t, || http::ping(base, &event.report()))
            }
            Target::Ping(base) => {
                attempt(t, || http::ping(&format!("{base}/fail"), &event.report()))
            }
            Target::Webhook(url) if tell_all => {
                attempt(t, || http::webhook(url, event, settings.secret.as_ref()))
            }
            Target::Mail(to) if tell_all => attempt(t, || mail::send(&settings.smtp, to, event)),
            _ => None,
        };
        failures.extend(failure);
    }
    failures
}

/// Run `send` until it succeeds, at most 1 + [`RETRIES`] times.
fn attempt(target: &Target, send: impl Fn() -> std::result::Result<(), String>) -> Option<Failure> {
    let mut last = String::new();
    for n in 0..=RETRIES {
        if n > 0 {
            std::thread::sleep(RETRY_PAUSE);
        }
        match send() {
            Ok(()) => return None,
            Err(why) => last = why,
        }
    }
    Some(Failure {
        target: target.display(),
        reason: crate::secret::Redactor::global()
            .redact(&format!("{last} (tried {} times)", RETRIES + 1)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_by_scheme() {
        assert_eq!(
            Target::parse("https://h/x?token=1").unwrap().display(),
            "https://h/x"
        );
        assert_eq!(
            Target::parse("hc+https://hc-ping.com/abc/").unwrap(),
            Target::Ping("https://hc-ping.com/abc".into())
        );
        assert_eq!(
            Target::parse("mailto:root@example.org").unwrap(),
            Target::Mail("root@example.org".into())
        );
        assert!(Target::parse("ftp://x").is_err());
        assert!(Target::parse("mailto:nobody").is_err());
    }
}
