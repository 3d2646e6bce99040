//! Mail: the plain-text report to a `mailto:` address through an SMTP server.

use std::path::PathBuf;

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};
use serde::Deserialize;

use super::{Event, TIMEOUT};
use crate::Password;

/// The SMTP server that sends the mail.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    /// Upgrade the connection with STARTTLS before anything else (required
    /// when set: a server that does not offer it is a failure).
    pub starttls: bool,
    /// PEM file of the private certificate authority that signed the
    /// server's certificate (beside the system's trusted roots).
    pub cacert: Option<PathBuf>,
    pub user: Option<String>,
    pub password: Option<Password>,
    /// The sender; default `holdfast@<host name>`.
    pub from: Option<String>,
}

impl Default for SmtpSettings {
    fn default() -> Self {
        SmtpSettings {
            host: "localhost".into(),
            port: 25,
            starttls: false,
            cacert: None,
            user: None,
            password: None,
            from: None,
        }
    }
}

/// The `[smtp]` table of a notification config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSmtp {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub starttls: Option<bool>,
    pub cacert: Option<PathBuf>,
    pub user: Option<String>,
    pub password_file: Option<PathBuf>,
    pub from: Option<String>,
}

/// Send the report of `event` to `to`.
pub fn send(smtp: &SmtpSettings, to: &str, event: &Event) -> Result<(), String> {
    let from = smtp
        .from
        .clone()
        .unwrap_or_else(|| format!("holdfast@{}", event.host));
    let message = Message::builder()
        .from(from.parse().map_err(|e| format!("sender {from:?}: {e}"))?)
        .to(to.parse().map_err(|e| format!("address {to:?}: {e}"))?)
        .subject(event.summary())
        .header(ContentType::TEXT_PLAIN)
        .body(event.report())
        .map_err(|e| e.to_string())?;
    let mut transport = SmtpTransport::builder_dangerous(&smtp.host)
        .port(smtp.port)
        .timeout(Some(TIMEOUT));
    if smtp.starttls {
        let mut tls = TlsParameters::builder(smtp.host.clone());
        if let Some(path) = &smtp.cacert {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read the CA certificate {}: {e}", path.display()))?;
            let ca = Certificate::from_pem(&pem)
                .map_err(|e| format!("{} is not a PEM certificate: {e}", path.display()))?;
            tls = tls.add_root_certificate(ca);
        }
        let tls = tls.build().map_err(|e| e.to_string())?;
        transport = transport.tls(Tls::Required(tls));
    }
    if let (Some(user), Some(password)) = (&smtp.user, &smtp.password) {
        transport = transport.credentials(Credentials::new(
            user.clone(),
            password.expose().to_string(),
        ));
    }
    transport
        .build()
        .send(&message)
        .map(|_| ())
        .map_err(|e| format!("SMTP {}:{}: {e}", smtp.host, smtp.port))
}
