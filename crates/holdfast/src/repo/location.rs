//! Where a repository lives: a local directory, a restic REST server or an
//! S3-compatible bucket, parsed from restic's location syntax, validated, and
//! shown without secrets.
//!
//! The forms are restic's:
//! - `/srv/backup/repo` or `local:/srv/backup/repo`;
//! - `rest:https://user@host:8000/path/` (the password never in the text on a
//!   command line: from [`RemoteOptions::rest_password`]);
//! - `s3:https://host:9000/bucket/path`, `s3:host/bucket/path` (https) or
//!   `s3:http://host/bucket/path`, keys from AWS_ACCESS_KEY_ID and
//!   AWS_SECRET_ACCESS_KEY, region from AWS_DEFAULT_REGION or AWS_REGION,
//!   or all of them from a credentials file ([`RemoteOptions::read_s3_credentials`]).
//!
//! Secrets are held as [`Password`]s (so the console and log redaction knows
//! them, also percent-encoded) and only reach rustic_backend's options, never
//! a [`fmt::Display`] of the location.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use url::Url;

use crate::secret::Redactor;
use crate::{Error, Password, Result};

/// Environment variables of the REST password, in order of preference.
pub const REST_PASSWORD_ENVS: [&str; 2] = ["HOLDFAST_REST_PASSWORD", "RESTIC_REST_PASSWORD"];
/// Environment variable of the REST user name (when the URL names none).
pub const REST_USERNAME_ENV: &str = "RESTIC_REST_USERNAME";
/// How often a failed request to a remote location is tried again by default
/// (exponential back-off from one second: 1 + 2 + 4 seconds of waiting).
pub const DEFAULT_RETRIES: u32 = 3;
/// Region of S3 locations when the environment names none (restic's default).
const DEFAULT_S3_REGION: &str = "us-east-1";

/// restic's location schemes that holdfast does not speak.
const UNSUPPORTED_SCHEMES: [&str; 7] = ["sftp", "b2", "azure", "gs", "swift", "rclone", "opendal"];

/// A parsed, validated repository location.
#[derive(Debug, Clone)]
pub enum RepoLocation {
    /// A directory (absolute).
    Local(PathBuf),
    /// A server of restic's REST protocol (restic's rest-server, `holdfast serve`).
    Rest(RestLocation),
    /// A bucket (and a path in it) of an S3-compatible object store.
    S3(S3Location),
}

/// A REST server location.
#[derive(Debug, Clone)]
pub struct RestLocation {
    /// The repository's URL, ending in '/', with the user name but never a password.
    url: Url,
    password: Option<Password>,
    cacert: Option<PathBuf>,
    retries: u32,
}

/// An S3 location.
#[derive(Debug, Clone)]
pub struct S3Location {
    /// `https://host[:port]` or `http://host[:port]`.
    endpoint: String,
    bucket: String,
    /// The path inside the bucket, `/` for the whole bucket.
    root: String,
    region: String,
    access_key_id: Option<String>,
    secret_access_key: Option<Password>,
    session_token: Option<Password>,
    retries: u32,
}

/// What a remote location takes from outside its text: credentials and
/// connection settings. [`RemoteOptions::from_env`] reads restic's variables.
#[derive(Debug, Clone, Default)]
pub struct RemoteOptions {
    /// User of a REST server whose URL names none.
    pub rest_username: Option<String>,
    pub rest_password: Option<Password>,
    /// PEM file of a private certificate authority for https REST servers.
    pub cacert: Option<PathBuf>,
    pub s3_access_key_id: Option<String>,
    pub s3_secret_access_key: Option<Password>,
    pub s3_session_token: Option<Password>,
    pub s3_region: Option<String>,
    /// Tries after a failed request; `None` for [`DEFAULT_RETRIES`].
    pub retries: Option<u32>,
}

impl RemoteOptions {
    /// Take the S3 keys (and region) from `text`, a credentials file as the
    /// AWS tools keep them (`~/.aws/credentials`, read as botocore reads it:
    /// `aws_access_key_id`, `aws_secret_access_key`, `aws_session_token`
    /// and, holdfast's addition, `region`) in its `[default]` section, or its
    /// only section. `file` names it in errors.
    pub fn read_s3_credentials(&mut self, text: &str, file: &Path) -> Result<()> {
        use crate::conf::Format;
        let ini = Format::Ini.handler();
        let sections: Vec<&str> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix('[')?.strip_suffix(']'))
            .collect();
        let section = match sections.as_slice() {
            [only] => *only,
            many if many.contains(&"default") => "default",
            _ => {
                return Err(Error::usage(format!(
                    "{} has no [default] section of S3 keys (it has: {}); write the keys under [default]",
                    file.display(),
                    if sections.is_empty() { "none".to_string() } else { sections.join(", ") }
                )))
            }
        };
        let read = |key: &str| -> Result<Option<String>> {
            ini.read(text, &format!("{section}.{key}"))
                .map(|v| v.filter(|v| !v.is_empty()))
                .map_err(|e| e.at(file))
        };
        let (Some(id), Some(secret)) = (read("aws_access_key_id")?, read("aws_secret_access_key")?)
        else {
            return Err(Error::usage(format!(
                "{} lacks aws_access_key_id or aws_secret_access_key in [{section}]; add both",
                file.display()
            )));
        };
        self.s3_access_key_id = Some(id);
        self.s3_secret_access_key = Some(Password::new(secret));
        self.s3_session_token = read("aws_session_token")?.map(Password::new);
        if let Some(region) = read("region")? {
            self.s3_region = Some(region);
        }
        Ok(())
    }

    /// Credentials and region from the environment, as restic reads them.
    pub fn from_env() -> RemoteOptions {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        RemoteOptions {
            rest_username: var(REST_USERNAME_ENV),
            rest_password: REST_PASSWORD_ENVS
                .iter()
                .find_map(|n| var(n))
                .map(Password::new),
            cacert: None,
            s3_access_key_id: var("AWS_ACCESS_KEY_ID"),
            s3_secret_access_key: var("AWS_SECRET_ACCESS_KEY").map(Password::new),
            s3_session_token: var("AWS_SESSION_TOKEN").map(Password::new),
            s3_region: var("AWS_DEFAULT_REGION").or_else(|| var("AWS_REGION")),
            retries: None,
        }
    }
}

/// Where the location text came from: a password inside it is refused on a
/// command line (argv is readable by every user of the machine) and accepted
/// from the environment, as restic does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocationSource {
    CommandLine,
    Environment,
}

impl RepoLocation {
    /// Parse `text` (restic's syntax). A relative local path is made absolute
    /// against the current directory.
    pub fn parse(text: &str, options: &RemoteOptions, source: LocationSource) -> Result<Self> {
        let text = text.trim();
        if text.is_empty() {
            return Err(Error::usage(
                "the repository location is empty; give a directory, rest:URL or s3:URL",
            ));
        }
        if let Some(rest) = text.strip_prefix("rest:") {
            return RestLocation::parse(rest, options, source).map(RepoLocation::Rest);
        }
        if let Some(s3) = text.strip_prefix("s3:") {
            if !cfg!(feature = "s3") {
                return Err(Error::usage(
                    "this holdfast was built without S3 support; rebuild it with the cargo feature s3",
                ));
            }
            return S3Location::parse(s3, options).map(RepoLocation::S3);
        }
        let path = text.strip_prefix("local:").unwrap_or(text);
        if let Some((scheme, _)) = path.split_once(':') {
            if UNSUPPORTED_SCHEMES.contains(&scheme) {
                return Err(Error::usage(format!(
                    "repository locations '{scheme}:…' are not supported; use a directory, rest:URL or s3:URL"
                )));
            }
        }
        let path = Path::new(path);
        let path = if path.is_absolute() {
            path.to_path_buf()
        } else {
            std::env::current_dir()
                .map_err(|e| Error::io("find the current directory", e))?
                .join(path)
        };
        if path.to_str().is_none() {
            return Err(Error::usage(format!(
                "the repository path {} is not UTF-8; choose another",
                path.display()
            )));
        }
        Ok(RepoLocation::Local(path))
    }

    /// A local directory, as it is (callers pass an absolute path).
    pub fn local(dir: impl Into<PathBuf>) -> RepoLocation {
        RepoLocation::Local(dir.into())
    }

    /// The directory of a local repository.
    pub fn local_dir(&self) -> Option<&Path> {
        match self {
            RepoLocation::Local(p) => Some(p),
            _ => None,
        }
    }

    /// A REST server's password, when the location has one (for a child
    /// `holdfast` given it through a file, never argv or the environment).
    pub fn rest_password(&self) -> Option<&Password> {
        match self {
            RepoLocation::Rest(r) => r.password.as_ref(),
            _ => None,
        }
    }

    /// A REST server's private certificate authority file (`--cacert`).
    pub fn rest_cacert(&self) -> Option<&Path> {
        match self {
            RepoLocation::Rest(r) => r.cacert.as_deref(),
            _ => None,
        }
    }

    /// An S3 location's keys and region as a credentials file holds them
    /// (what [`RemoteOptions::read_s3_credentials`] reads back), for a
    /// process that must reach the bucket without them in its environment.
    pub fn s3_credentials_file(&self) -> Option<Password> {
        let RepoLocation::S3(s) = self else {
            return None;
        };
        let mut text = String::from("[default]\n");
        if let Some(id) = &s.access_key_id {
            text.push_str(&format!("aws_access_key_id = {id}\n"));
        }
        if let Some(key) = &s.secret_access_key {
            text.push_str(&format!("aws_secret_access_key = {}\n", key.expose()));
        }
        if let Some(token) = &s.session_token {
            text.push_str(&format!("aws_session_token = {}\n", token.expose()));
        }
        text.push_str(&format!("region = {}\n", s.region));
        Some(Password::new(text))
    }

    /// rustic_backend's location string and options for this location. Both
    /// may hold secrets: they go to the backend and nowhere else.
    pub(crate) fn backend_spec(&self) -> (String, BTreeMap<String, String>) {
        let mut options = BTreeMap::new();
        match self {
            RepoLocation::Local(dir) => (format!("local:{}", dir.display()), options),
            RepoLocation::Rest(r) => {
                let mut url = r.url.clone();
                if let Some(p) = &r.password {
                    // The URL was parsed with a host, so it can carry a password.
                    let _ = url.set_password(Some(p.expose()));
                }
                options.insert("retry".into(), r.retries.to_string());
                if let Some(ca) = &r.cacert {
                    options.insert("cacert".into(), ca.display().to_string());
                }
                (format!("rest:{url}"), options)
            }
            RepoLocation::S3(s) => {
                options.insert("bucket".into(), s.bucket.clone());
                options.insert("root".into(), s.root.clone());
                options.insert("endpoint".into(), s.endpoint.clone());
                options.insert("region".into(), s.region.clone());
                options.insert("retry".into(), s.retries.to_string());
                // Exactly restic's variables: no ~/.aws files, no instance
                // metadata service (which would hang off EC2).
                options.insert("disable_config_load".into(), "true".into());
                options.insert("disable_ec2_metadata".into(), "true".into());
                if let Some(k) = &s.access_key_id {
                    options.insert("access_key_id".into(), k.clone());
                }
                if let Some(k) = &s.secret_access_key {
                    options.insert("secret_access_key".into(), k.expose().to_string());
                }
                if let Some(t) = &s.session_token {
                    options.insert("session_token".into(), t.expose().to_string());
                }
                ("opendal:s3".to_string(), options)
            }
        }
    }
}

impl fmt::Display for RepoLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RepoLocation::Local(dir) => write!(f, "{}", dir.display()),
            RepoLocation::Rest(r) => write!(f, "rest:{}", r.url),
            RepoLocation::S3(s) => {
                let path = s.root.trim_start_matches('/');
                let sep = if path.is_empty() { "" } else { "/" };
                write!(f, "s3:{}/{}{sep}{path}", s.endpoint, s.bucket)
            }
        }
    }
}

impl RestLocation {
    fn parse(text: &str, options: &RemoteOptions, source: LocationSource) -> Result<Self> {
        let bad = |why: &str| {
            Error::usage(format!(
                "rest:{} is not a REST location ({why}); write rest:https://user@host:port/path/",
                without_userinfo(text)
            ))
        };
        if has_dot_segments(text) {
            return Err(bad("'.' and '..' are not allowed in the path"));
        }
        let mut url = Url::parse(text).map_err(|e| bad(&e.to_string()))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(bad("the scheme must be http or https"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("no host"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("a query or fragment has no place in it"));
        }
        let mut password = options.rest_password.clone();
        if let Some(in_url) = url.password() {
            let in_url = percent_decode(in_url);
            url.set_password(None).expect("the URL has a host");
            if source == LocationSource::CommandLine {
                Redactor::global().remember(&in_url);
                return Err(Error::usage(format!(
                    "the repository location rest:{url} holds a password, which the command line shows to every user; \
                     remove it and put it in {} or a --rest-password-file",
                    REST_PASSWORD_ENVS[0]
                )));
            }
            // From the environment, as restic accepts it; a password given
            // apart still wins.
            password = password.or(Some(Password::new(in_url)));
        }
        if url.username().is_empty() {
            if let Some(user) = &options.rest_username {
                url.set_username(user).expect("the URL has a host");
            }
        }
        if password.is_some() && url.username().is_empty() {
            return Err(bad(&format!(
                "a REST password is given but no user; name one in the URL or in {REST_USERNAME_ENV}"
            )));
        }
        if let Some(p) = &password {
            // The backend's errors may show the URL with its password, percent-encoded.
            let mut probe = url.clone();
            let _ = probe.set_password(Some(p.expose()));
            if let Some(encoded) = probe.password() {
                Redactor::global().remember(encoded);
            }
        }
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        if let Some(ca) = &options.cacert {
            if !ca.is_file() {
                return Err(Error::usage(format!(
                    "--cacert {} is not a file; give the PEM file of the server's certificate authority",
                    ca.display()
                )));
            }
            if url.scheme() != "https" {
                return Err(Error::usage(format!(
                    "--cacert is given but rest:{url} is not https; use https:// or drop --cacert"
                )));
            }
        }
        Ok(RestLocation {
            url,
            password,
            cacert: options.cacert.clone(),
            retries: options.retries.unwrap_or(DEFAULT_RETRIES),
        })
    }
}

impl S3Location {
    fn parse(text: &str, options: &RemoteOptions) -> Result<Self> {
        let shown = without_userinfo(text);
        let bad = |why: &str| {
            Error::usage(format!(
                "s3:{shown} is not an S3 location ({why}); write s3:https://host[:port]/bucket/path or s3:host/bucket/path"
            ))
        };
        let with_scheme = if text.starts_with("https://") || text.starts_with("http://") {
            text.to_string()
        } else if text.contains("://") {
            return Err(bad("the scheme must be http or https"));
        } else {
            format!("https://{text}")
        };
        if has_dot_segments(&with_scheme) {
            return Err(bad("'.' and '..' are not allowed in the path"));
        }
        let url = Url::parse(&with_scheme).map_err(|e| bad(&e.to_string()))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad(
                "keys do not go in the location; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("a query or fragment has no place in it"));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host"))?;
        let mut segments = url
            .path_segments()
            .map(|s| s.filter(|s| !s.is_empty()).collect::<Vec<_>>())
            .unwrap_or_default();
        if segments.is_empty() {
            return Err(bad("no bucket"));
        }
        let bucket = percent_decode(segments.remove(0));
        let root_parts: Vec<String> = segments.iter().map(|s| percent_decode(s)).collect();
        let endpoint = match url.port() {
            Some(port) => format!("{}://{host}:{port}", url.scheme()),
            None => format!("{}://{host}", url.scheme()),
        };
        if options.s3_access_key_id.is_none() || options.s3_secret_access_key.is_none() {
            return Err(Error::usage(format!(
                "no S3 keys for s3:{shown}; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or give --s3-credentials-file"
            )));
        }
        Ok(S3Location {
            endpoint,
            bucket,
            root: format!("/{}", root_parts.join("/")),
            region: options
                .s3_region
                .clone()
                .unwrap_or_else(|| DEFAULT_S3_REGION.to_string()),
            access_key_id: options.s3_access_key_id.clone(),
            secret_access_key: options.s3_secret_access_key.clone(),
            session_token: options.s3_session_token.clone(),
            retries: options.retries.unwrap_or(DEFAULT_RETRIES),
        })
    }
}

/// `text` with any `user:password@` after the scheme cut out, for error
/// messages about text that did not parse.
fn without_userinfo(text: &str) -> String {
    let (scheme, rest) = match text.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), text),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}{}", &rest[at + 1..]),
        None => text.to_string(),
    }
}

/// Whether a URL's path has `.` or `..` segments, which URL parsing would
/// silently resolve (`/bucket/../other` names the bucket `other`).
fn has_dot_segments(url: &str) -> bool {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    after_scheme.split('/').skip(1).any(|s| {
        let s = percent_decode(s);
        s == "." || s == ".."
    })
}

/// Percent-decoding of a URL component (invalid UTF-8 kept lossily).
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "s3")]
    fn s3_keys() -> RemoteOptions {
        RemoteOptions {
            s3_access_key_id: Some("AKIDEXAMPLE".into()),
            s3_secret_access_key: Some(Password::new("s3-secret-for-tests")),
            ..Default::default()
        }
    }

    fn parse(text: &str, options: &RemoteOptions) -> Result<RepoLocation> {
        RepoLocation::parse(text, options, LocationSource::CommandLine)
    }

    #[cfg(feature = "s3")]
    #[test]
    fn s3_keys_from_a_credentials_file_and_back() {
        let file = Path::new("/etc/holdfast/s3");
        let mut options = RemoteOptions::default();
        let text = "# the AWS tools' format\n[other]\naws_access_key_id = NOPE\n\n\
                    [default]\nAWS_ACCESS_KEY_ID = AKIDFILE\naws_secret_access_key = se/cr+et=\nregion = eu-west-3\n";
        options.read_s3_credentials(text, file).unwrap();
        assert_eq!(options.s3_access_key_id.as_deref(), Some("AKIDFILE"));
        assert_eq!(
            options.s3_secret_access_key.as_ref().unwrap().expose(),
            "se/cr+et="
        );
        assert_eq!(options.s3_region.as_deref(), Some("eu-west-3"));
        let location = parse("s3:http://127.0.0.1:9000/bucket/repo", &options).unwrap();
        let written = location.s3_credentials_file().unwrap();
        let mut again = RemoteOptions::default();
        again.read_s3_credentials(written.expose(), file).unwrap();
        assert_eq!(again.s3_access_key_id, options.s3_access_key_id);
        assert_eq!(again.s3_secret_access_key.unwrap().expose(), "se/cr+et=");
        assert_eq!(again.s3_region.as_deref(), Some("eu-west-3"));
        assert!(parse("/srv/repo", &options)
            .unwrap()
            .s3_credentials_file()
            .is_none());

        // One section of another name is taken; several without [default] are not.
        let mut single = RemoteOptions::default();
        single
            .read_s3_credentials(
                "[backup]\naws_access_key_id=A\naws_secret_access_key=B\n",
                file,
            )
            .unwrap();
        assert_eq!(single.s3_access_key_id.as_deref(), Some("A"));
        let e = RemoteOptions::default()
            .read_s3_credentials("[a]\naws_access_key_id=A\n[b]\naws_access_key_id=B\n", file)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no [default] section") && e.contains("a, b"),
            "{e}"
        );
        let e = RemoteOptions::default()
            .read_s3_credentials("[default]\naws_access_key_id=A\n", file)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("lacks aws_access_key_id or aws_secret_access_key"),
            "{e}"
        );
    }

    #[test]
    fn local_paths_plain_and_prefixed() {
        let none = RemoteOptions::default();
        let a = parse("/srv/repo", &none).unwrap();
        assert_eq!(a.local_dir(), Some(Path::new("/srv/repo")));
        let b = parse("local:/srv/repo", &none).unwrap();
        assert_eq!(b.to_string(), "/srv/repo");
        assert_eq!(b.backend_spec().0, "local:/srv/repo");
        // A colon inside a path is still a path, not a scheme.
        let c = parse("/srv/a:b", &none).unwrap();
        assert_eq!(c.backend_spec().0, "local:/srv/a:b");
        assert!(parse("relative/repo", &none)
            .unwrap()
            .local_dir()
            .unwrap()
            .is_absolute());
        let e = parse("sftp:host:/srv", &none).unwrap_err().to_string();
        assert!(e.contains("'sftp:…' are not supported"), "{e}");
        assert!(parse("  ", &none).is_err());
    }

    #[test]
    fn rest_password_never_from_the_command_line_nor_shown() {
        let e = parse(
            "rest:https://alice:hunter2-rest@backup.example:8000/alice/",
            &RemoteOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("HOLDFAST_REST_PASSWORD"), "{e}");
        assert!(!e.contains("hunter2-rest"), "{e}");
        assert!(
            e.contains("rest:https://alice@backup.example:8000/alice/"),
            "{e}"
        );

        // From the environment it is accepted, and still never shown.
        let env = RepoLocation::parse(
            "rest:https://alice:hunter2-rest@backup.example:8000/alice",
            &RemoteOptions::default(),
            LocationSource::Environment,
        )
        .unwrap();
        assert_eq!(
            env.to_string(),
            "rest:https://alice@backup.example:8000/alice/"
        );
        assert!(!format!("{env:?}").contains("hunter2-rest"));
        let (spec, options) = env.backend_spec();
        assert_eq!(
            spec,
            "rest:https://alice:hunter2-rest@backup.example:8000/alice/"
        );
        assert_eq!(options["retry"], DEFAULT_RETRIES.to_string());
    }

    #[test]
    fn rest_user_and_password_from_options() {
        let options = RemoteOptions {
            rest_username: Some("bob".into()),
            rest_password: Some(Password::new("p@ss/word")),
            retries: Some(0),
            ..Default::default()
        };
        let loc = parse("rest:http://127.0.0.1:8000/", &options).unwrap();
        assert_eq!(loc.to_string(), "rest:http://bob@127.0.0.1:8000/");
        let (spec, options) = loc.backend_spec();
        // Percent-encoded in the URL the backend gets, and redacted in that form too.
        assert_eq!(spec, "rest:http://bob:p%40ss%2Fword@127.0.0.1:8000/");
        assert_eq!(options["retry"], "0");
        assert_eq!(
            Redactor::global().redact(&spec),
            "rest:http://bob:********@127.0.0.1:8000/"
        );

        let no_user = RemoteOptions {
            rest_password: Some(Password::new("lonely-password")),
            ..Default::default()
        };
        let e = parse("rest:http://127.0.0.1:8000/", &no_user)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no user"), "{e}");
        for bad in ["rest:ftp://host/", "rest:nonsense", "rest:http://host/?x=1"] {
            assert!(parse(bad, &RemoteOptions::default()).is_err(), "{bad}");
        }
    }

    #[test]
    fn cacert_must_exist_and_needs_https() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        let mut options = RemoteOptions {
            cacert: Some(ca.clone()),
            ..Default::default()
        };
        let e = parse("rest:https://host/", &options)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not a file"), "{e}");
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").unwrap();
        let e = parse("rest:http://host/", &options)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not https"), "{e}");
        let ok = parse("rest:https://host/", &options).unwrap();
        assert_eq!(ok.backend_spec().1["cacert"], ca.display().to_string());
        options.cacert = None;
        assert!(!parse("rest:https://host/", &options)
            .unwrap()
            .backend_spec()
            .1
            .contains_key("cacert"));
    }

    #[cfg(feature = "s3")]
    #[test]
    fn s3_forms_of_restic() {
        let keys = s3_keys();
        let a = parse("s3:s3.amazonaws.com/bucket/some/path", &keys).unwrap();
        assert_eq!(
            a.to_string(),
            "s3:https://s3.amazonaws.com/bucket/some/path"
        );
        let (spec, o) = a.backend_spec();
        assert_eq!(spec, "opendal:s3");
        assert_eq!(o["bucket"], "bucket");
        assert_eq!(o["root"], "/some/path");
        assert_eq!(o["endpoint"], "https://s3.amazonaws.com");
        assert_eq!(o["region"], DEFAULT_S3_REGION);
        assert_eq!(o["secret_access_key"], "s3-secret-for-tests");
        assert!(!format!("{a:?}").contains("s3-secret-for-tests"));

        let b = parse(
            "s3:http://127.0.0.1:9000/bucket",
            &RemoteOptions {
                s3_region: Some("eu-west-3".into()),
                ..keys.clone()
            },
        )
        .unwrap();
        assert_eq!(b.to_string(), "s3:http://127.0.0.1:9000/bucket");
        let (_, o) = b.backend_spec();
        assert_eq!(o["root"], "/");
        assert_eq!(o["region"], "eu-west-3");

        for (bad, why) in [
            ("s3:https://host", "no bucket"),
            ("s3:ftp://host/b", "http or https"),
            ("s3:https://key:secret@host/b", "AWS_ACCESS_KEY_ID"),
            ("s3:https://host/b/../x", "'..'"),
        ] {
            let e = parse(bad, &keys).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(!e.contains("secret@"), "{e}");
        }
        let e = parse("s3:https://host/b", &RemoteOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("AWS_SECRET_ACCESS_KEY"), "{e}");
    }
}
