//! The connection to an oVirt engine: its SSO token flow
//! (`POST /ovirt-engine/sso/oauth/token`, scope `ovirt-app-api`), the
//! engine's CA certificate as the only trusted root when one is given, and
//! one HTTP request of the REST API with the bearer token (a 401 fetches a
//! new token once: tokens cannot be refreshed).
//!
//! The password is a [`Password`]: it is sent in the token request's body
//! only, never logged, and masked in every error text.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::secret::Redactor;
use crate::{Error, Password, Result};

/// How to reach and log into the engine.
#[derive(Debug, Clone)]
pub struct EngineAccess {
    /// `https://ENGINE` or `https://ENGINE/ovirt-engine` (the API is under `/ovirt-engine/api`).
    pub url: String,
    /// `admin@internal` style user name.
    pub user: String,
    pub password: Password,
    /// PEM file of the engine's CA (it also signs the imageio daemons' certificates).
    pub ca_file: Option<PathBuf>,
}

/// A logged-in engine.
pub struct Engine {
    /// `…/ovirt-engine`, no trailing slash.
    base: String,
    agent: ureq::Agent,
    access: EngineAccess,
    token: Mutex<Option<String>>,
}

/// An HTTP method of the REST API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Delete,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }
}

/// What the REST API answered that was not a success.
#[derive(Debug)]
pub struct ApiFailure {
    pub status: u16,
    pub body: String,
}

impl Engine {
    /// Build the HTTP agent and log in.
    pub fn connect(access: EngineAccess) -> Result<Engine> {
        Redactor::global().remember(access.password.expose());
        let base = engine_base(&access.url)?;
        let agent = agent(access.ca_file.as_deref())?;
        let engine = Engine {
            base,
            agent,
            access,
            token: Mutex::new(None),
        };
        engine.login()?;
        Ok(engine)
    }

    /// The HTTP agent, with the same trusted roots (imageio's certificates
    /// are signed by the engine's CA).
    pub fn agent(&self) -> &ureq::Agent {
        &self.agent
    }

    fn login(&self) -> Result<String> {
        let url = format!("{}/sso/oauth/token", self.base);
        let form = [
            ("grant_type", "password"),
            ("scope", "ovirt-app-api"),
            ("username", self.access.user.as_str()),
            ("password", self.access.password.expose()),
        ];
        let answer = self
            .agent
            .post(&url)
            .set("Accept", "application/json")
            .send_form(&form);
        let body = match answer {
            Ok(r) => r.into_string(),
            Err(ureq::Error::Status(code, r)) => {
                let text = r.into_string().unwrap_or_default();
                return Err(Error::usage(format!(
                    "the engine refused the login of {} ({code}: {})",
                    self.access.user,
                    sso_error(&text)
                )));
            }
            Err(e) => return Err(transport_error(&url, e)),
        }
        .map_err(|e| Error::io(format!("read the answer of {url}"), e))?;
        let token = sso_token(&body).ok_or_else(|| {
            Error::failed(format!(
                "the engine's SSO answered without an access token: {}",
                sso_error(&body)
            ))
        })?;
        Redactor::global().remember(&token);
        *self.token.lock().expect("token lock") = Some(token.clone());
        Ok(token)
    }

    fn current_token(&self) -> Result<String> {
        let held = self.token.lock().expect("token lock").clone();
        match held {
            Some(t) => Ok(t),
            None => self.login(),
        }
    }

    /// One REST call: `path` is relative to `/ovirt-engine/api` (e.g.
    /// `/vms/ID`). Ok(Err) is the engine's refusal, for the caller to word.
    pub fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
        all_content: bool,
    ) -> Result<std::result::Result<String, ApiFailure>> {
        let url = format!("{}/api{path}", self.base);
        let mut relogged = false;
        loop {
            let token = self.current_token()?;
            let mut request = self
                .agent
                .request(method.as_str(), &url)
                .set("Authorization", &format!("Bearer {token}"))
                .set("Version", "4")
                .set("Accept", "application/xml");
            if all_content {
                request = request.set("All-Content", "true");
            }
            let answer = match body {
                Some(b) => request
                    .set("Content-Type", "application/xml")
                    .send_string(b),
                None => request.call(),
            };
            return match answer {
                Ok(r) => Ok(Ok(r
                    .into_string()
                    .map_err(|e| Error::io(format!("read the answer of {url}"), e))?)),
                Err(ureq::Error::Status(401, _)) if !relogged => {
                    // An expired token: tokens cannot be refreshed, so log in again, once.
                    relogged = true;
                    *self.token.lock().expect("token lock") = None;
                    continue;
                }
                Err(ureq::Error::Status(status, r)) => Ok(Err(ApiFailure {
                    status,
                    body: r.into_string().unwrap_or_default(),
                })),
                Err(e) => Err(transport_error(&url, e)),
            };
        }
    }
}

/// `https://e` and `https://e/ovirt-engine[/api]` both name the engine `https://e/ovirt-engine`.
fn engine_base(url: &str) -> Result<String> {
    let trimmed = url.trim().trim_end_matches('/');
    if !(trimmed.starts_with("https://") || trimmed.starts_with("http://")) {
        return Err(Error::usage(format!(
            "--engine {url}: give the engine's https:// URL"
        )));
    }
    let trimmed = trimmed.strip_suffix("/api").unwrap_or(trimmed);
    Ok(if trimmed.ends_with("/ovirt-engine") {
        trimmed.to_string()
    } else {
        format!("{trimmed}/ovirt-engine")
    })
}

/// An agent trusting only `ca_file` when given (the engine's CA), else the
/// usual web roots.
fn agent(ca_file: Option<&Path>) -> Result<ureq::Agent> {
    let builder = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(30))
        .timeout_read(Duration::from_secs(300))
        .timeout_write(Duration::from_secs(300));
    let Some(path) = ca_file else {
        return Ok(builder.build());
    };
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
        .map_err(|e| Error::usage(format!("--ca-file {}: {e}", path.display())))?;
    for cert in certs {
        let cert = cert.map_err(|e| Error::usage(format!("--ca-file {}: {e}", path.display())))?;
        roots
            .add(cert)
            .map_err(|e| Error::usage(format!("--ca-file {}: {e}", path.display())))?;
    }
    if roots.is_empty() {
        return Err(Error::usage(format!(
            "--ca-file {} holds no PEM certificate",
            path.display()
        )));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::failed(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(builder.tls_config(Arc::new(config)).build())
}

/// The `access_token` of an SSO answer (a JSON object, or a one-element list of one).
fn sso_token(body: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    let object = match &value {
        serde_json::Value::Array(items) if items.len() == 1 => &items[0],
        other => other,
    };
    object
        .get("access_token")?
        .as_str()
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

/// The reason in an SSO error answer, masked.
fn sso_error(body: &str) -> String {
    let reason = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            let text = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
            text("error_description").or_else(|| text("error"))
        })
        .unwrap_or_else(|| body.chars().take(200).collect());
    Redactor::global().redact(&reason)
}

pub(crate) fn transport_error(url: &str, e: ureq::Error) -> Error {
    Error::failed(Redactor::global().redact(&format!("cannot reach {url}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_urls_name_the_engine_root() {
        for url in [
            "https://e.example",
            "https://e.example/",
            "https://e.example/ovirt-engine",
            "https://e.example/ovirt-engine/api/",
        ] {
            assert_eq!(engine_base(url).unwrap(), "https://e.example/ovirt-engine");
        }
        assert!(engine_base("e.example").is_err());
    }

    #[test]
    fn tokens_are_read_from_an_object_or_a_one_element_list() {
        assert_eq!(
            sso_token(r#"{"access_token":"t1","token_type":"bearer"}"#).as_deref(),
            Some("t1")
        );
        assert_eq!(
            sso_token(r#"[{"access_token":"t2"}]"#).as_deref(),
            Some("t2")
        );
        assert_eq!(sso_token(r#"{"error":"access_denied"}"#), None);
        assert_eq!(
            sso_error(r#"{"error_code":"access_denied","error":"Cannot authenticate user"}"#),
            "Cannot authenticate user"
        );
    }
}
