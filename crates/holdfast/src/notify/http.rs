//! Webhooks and pings: one HTTP(S) request each, with a bounded time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{Event, TIMEOUT};
use crate::Password;

/// The header that carries the webhook body's signature.
pub const SIGNATURE_HEADER: &str = "X-Holdfast-Signature";

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(TIMEOUT)
        .timeout(TIMEOUT)
        .user_agent(concat!("holdfast/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// POST the event as JSON, signed when there is a secret.
pub fn webhook(url: &str, event: &Event, secret: Option<&Password>) -> Result<(), String> {
    let body = serde_json::to_string(event).map_err(|e| e.to_string())?;
    let mut req = agent().post(url).set("Content-Type", "application/json");
    if let Some(secret) = secret {
        req = req.set(SIGNATURE_HEADER, &signature(secret, body.as_bytes()));
    }
    answer(url, req.send_string(&body))
}

/// POST a ping with a plain-text body (healthchecks.io shows it with the ping).
pub fn ping(url: &str, body: &str) -> Result<(), String> {
    let req = agent()
        .post(url)
        .set("Content-Type", "text/plain; charset=utf-8");
    answer(url, req.send_string(body))
}

/// `sha256=<hex HMAC-SHA256 of body>`.
pub fn signature(secret: &Password, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The answer as a result; an error names the URL without its query, which
/// may hold a token.
fn answer(url: &str, result: Result<ureq::Response, ureq::Error>) -> Result<(), String> {
    match result {
        Ok(_) => Ok(()),
        Err(ureq::Error::Status(code, r)) => {
            Err(format!("the server answered {code} {}", r.status_text()))
        }
        Err(ureq::Error::Transport(t)) => Err(t.to_string().replace(url, &super::strip_query(url))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_rfc_4231_hmac_sha256() {
        // RFC 4231 test case 2.
        let key = Password::new("Jefe");
        assert_eq!(
            signature(&key, b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
