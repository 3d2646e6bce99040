//! `--notify`: a failing backup's reason reaches a real webhook (signed with
//! HMAC-SHA256), a healthchecks-style ping (`/start`, then `/fail`) and a
//! mail through a real SMTP server; a success is sent only when asked (pings
//! always); a webhook that is not there changes neither the exit status nor
//! the outcome line, and is counted in the run record that `status` reads.

#[path = "support/listeners.rs"]
mod listeners;
mod support;

use listeners::*;
use support::*;

const SECRET: &str = "webhook-signing-secret-7f3a";

fn last_log_line(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines().last().unwrap().to_string()
}

#[test]
fn a_failed_backup_tells_webhook_ping_and_mail_why() {
    let s = Sample::start();
    let http = HttpRecorder::start();
    let smtp = SmtpServer::start(s.dir.path());
    std::fs::write(s.path("hook.secret"), format!("{SECRET}\n")).unwrap();
    std::fs::create_dir(s.path("backups")).unwrap();
    s.cluster
        .execute(
            "postgres",
            "ALTER ROLE engine PASSWORD 'not-the-configured-one'",
        )
        .unwrap();
    let smtp_port = smtp.port.to_string();
    let hook = http.url("/hook");
    let ping = format!("hc+{}", http.url("/ping/abc"));
    let log = s.path("backup.log");
    let run = s.holdfast(&[
        "backup",
        "--file",
        "backups/night.backup",
        "--log",
        log.to_str().unwrap(),
        "--notify",
        &hook,
        "--notify",
        &ping,
        "--notify",
        "mailto:admin@example.org",
        "--smtp-host",
        "127.0.0.1",
        "--smtp-port",
        &smtp_port,
        "--smtp-from",
        "backups@example.org",
        "--notify-secret-file",
        "hook.secret",
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);

    // The ping: /start when it began, /fail with the reason when it failed.
    let paths: Vec<String> = http
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/ping"))
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(paths, ["/ping/abc/start", "/ping/abc/fail"]);
    let fail = &http.to("/ping/abc/fail")[0];
    assert!(
        fail.body.contains("password authentication failed"),
        "{}",
        fail.body
    );

    // The webhook: the JSON document, signed.
    let hooks = http.to("/hook");
    assert_eq!(hooks.len(), 1);
    let h = &hooks[0];
    assert_eq!(h.method, "POST");
    assert_eq!(h.header("content-type"), Some("application/json"));
    let doc: serde_json::Value = serde_json::from_str(&h.body).unwrap();
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["verb"], "backup");
    assert_eq!(doc["outcome"], "failed");
    assert_eq!(doc["exit_code"], 1);
    assert_eq!(doc["profile"], "ovirt-engine");
    assert!(
        doc["reason"]
            .as_str()
            .unwrap()
            .contains("password authentication failed"),
        "{doc}"
    );
    assert!(doc["duration_seconds"].as_f64().unwrap() >= 0.0);
    let expected = format!(
        "sha256={}",
        hmac_sha256(SECRET.as_bytes(), h.body.as_bytes())
    );
    assert_eq!(h.header("x-holdfast-signature"), Some(expected.as_str()));

    // The mail.
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1, "{mails:?}");
    let mail = &mails[0];
    assert!(mail.contains("To: admin@example.org"), "{mail}");
    assert!(mail.contains("From: backups@example.org"), "{mail}");
    assert!(mail.contains("Subject: holdfast backup failed"), "{mail}");
    assert!(mail.contains("password authentication failed"), "{mail}");

    // The log keeps its outcome line last and never shows the secret.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(SECRET));
    assert!(!run.stderr.contains(SECRET));
    assert!(last_log_line(&log).contains("Outcome: failed (exit 1): "));
}

#[test]
fn success_is_told_when_asked_and_a_dead_webhook_changes_nothing() {
    let s = Sample::start();
    let http = HttpRecorder::start();
    let smtp = SmtpServer::start(s.dir.path());
    std::fs::create_dir(s.path("backups")).unwrap();
    let smtp_port = smtp.port.to_string();
    let hook = http.url("/hook");
    let dead = format!(
        "http://127.0.0.1:{}/nobody-listens?token=query-token-123",
        dead_port()
    );
    let ping = format!("hc+{}", http.url("/ping/ok"));
    let log = s.path("backup.log");

    // Without --notify-on-success: the ping's success only.
    let run = s.holdfast(&[
        "backup",
        "--file",
        "backups/one.backup",
        "--notify",
        &hook,
        "--notify",
        &ping,
        "--notify",
        "mailto:admin@example.org",
        "--smtp-host",
        "127.0.0.1",
        "--smtp-port",
        &smtp_port,
    ]);
    run.ok();
    let paths: Vec<String> = http.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/ping/ok/start", "/ping/ok"]);
    assert!(smtp.messages().is_empty());

    // With it, and a webhook nobody answers (config file for the rest).
    std::fs::write(
        s.path("notify.toml"),
        format!(
            "notify = [\"{hook}\", \"mailto:ops@example.org\"]\non_success = true\n\
             [smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}\n"
        ),
    )
    .unwrap();
    let run = s.holdfast(&[
        "backup",
        "--file",
        "backups/two.backup",
        "--log",
        log.to_str().unwrap(),
        "--notify-config",
        "notify.toml",
        "--notify",
        &dead,
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("not delivered"), "{}", run.stderr);
    let hooks = http.to("/hook");
    assert_eq!(hooks.len(), 1);
    let doc: serde_json::Value = serde_json::from_str(&hooks[0].body).unwrap();
    assert_eq!(doc["outcome"], "success");
    assert_eq!(doc["reason"], "");
    assert!(doc["archive"].as_str().unwrap().ends_with("two.backup"));
    assert!(doc["size_bytes"].as_u64().unwrap() > 0);
    assert!(hooks[0].header("x-holdfast-signature").is_none());
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1);
    assert!(
        mails[0].contains("Subject: holdfast backup success"),
        "{}",
        mails[0]
    );
    assert!(mails[0].contains("To: ops@example.org"));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("Notification to http://127.0.0.1:") && text.contains("not delivered"),
        "{text}"
    );
    assert!(!text.contains("WARNING"), "{text}");
    assert!(!text.contains("query-token-123"), "{text}");
    assert!(!run.stderr.contains("query-token-123"), "{}", run.stderr);
    assert_eq!(
        last_log_line(&log).split_once(": ").unwrap().1,
        "Outcome: success (exit 0)"
    );

    // The lost notification is counted where status shows it.
    let status = s.holdfast(&["status", "--archives", "backups", "--json"]);
    assert_eq!(status.code, 0, "{}{}", status.stdout, status.stderr);
    let doc: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(doc["notify_failures_total"], 1, "{doc}");
}

/// A notification setting that cannot be used is bad input: the run is
/// refused before its first step, the log says why, nothing is written.
#[test]
fn a_notify_url_that_cannot_be_used_refuses_the_run() {
    let s = Sample::start();
    let run = s.holdfast(&[
        "backup",
        "--file",
        "x.backup",
        "--log",
        "x.log",
        "--notify",
        "ftp://example.org/",
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("cannot notify"), "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(!s.path("x.backup").exists());
    let last = last_log_line(&s.path("x.log"));
    assert!(last.contains("cannot notify"), "{last}");
}

/// A CA of the test's own and a certificate it signed for localhost.
fn tls_files(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".into()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("smtp.pem"),
        dir.join("smtp.key"),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, leaf.pem()).unwrap();
    std::fs::write(&paths.2, leaf_key.serialize_pem()).unwrap();
    (paths.0, paths.1, paths.2)
}

#[test]
fn mail_goes_through_starttls_and_a_login() {
    let s = Sample::start();
    let (ca, cert, key) = tls_files(s.dir.path());
    let smtp = SmtpServer::start_tls(s.dir.path(), &cert, &key, "relay-user", "relay pw");
    std::fs::write(s.path("smtp.pw"), "relay pw\n").unwrap();
    std::fs::write(s.path("wrong.pw"), "not it\n").unwrap();
    s.cluster
        .execute(
            "postgres",
            "ALTER ROLE engine PASSWORD 'not-the-configured-one'",
        )
        .unwrap();
    let port = smtp.port.to_string();
    let ca = ca.display().to_string();
    let backup = |n: u32, extra: &[&str]| {
        let file = format!("night{n}.backup");
        let mut args = vec![
            "backup",
            "--file",
            &file,
            "--notify",
            "mailto:admin@example.org",
            "--smtp-host",
            "localhost",
            "--smtp-port",
            &port,
            "--smtp-starttls",
            "--smtp-user",
            "relay-user",
        ];
        args.extend_from_slice(extra);
        s.holdfast(&args)
    };
    // Without the CA the server's certificate is not trusted: not
    // delivered, said on stderr; the backup's own failure is unchanged.
    let untrusted = backup(1, &["--smtp-password-file", "smtp.pw"]);
    assert_eq!(untrusted.code, 1, "{}", untrusted.stderr);
    assert!(
        untrusted.stderr.contains("not delivered"),
        "{}",
        untrusted.stderr
    );
    // A wrong password: not delivered either.
    let refused = backup(
        2,
        &["--smtp-password-file", "wrong.pw", "--smtp-cacert", &ca],
    );
    assert!(
        refused.stderr.contains("not delivered"),
        "{}",
        refused.stderr
    );
    assert!(!refused.stderr.contains("not it"), "{}", refused.stderr);
    assert!(smtp.messages().is_empty());
    // With the CA and the right password the mail arrives, with the reason.
    let told = backup(
        3,
        &["--smtp-password-file", "smtp.pw", "--smtp-cacert", &ca],
    );
    assert_eq!(told.code, 1, "{}", told.stderr);
    assert!(!told.stderr.contains("not delivered"), "{}", told.stderr);
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert!(
        mails[0].contains("password authentication failed"),
        "{}",
        mails[0]
    );
    // A CA file that is not there refuses the run before it starts.
    let missing = backup(
        4,
        &[
            "--smtp-password-file",
            "smtp.pw",
            "--smtp-cacert",
            "nope.pem",
        ],
    );
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    assert!(
        missing
            .stderr
            .contains("cannot read --smtp-cacert nope.pem"),
        "{}",
        missing.stderr
    );
}
