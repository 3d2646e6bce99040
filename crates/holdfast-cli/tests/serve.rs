//! `holdfast serve` as a real process on loopback: restic (the Debian package) backs
//! up to it, checks and restores; append-only, users, private repositories, content
//! hashes and TLS are enforced by the server whatever the client does.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use sha2::{Digest, Sha256};

const ALICE_PW: &str = "alice-web-pw";
const BOB_PW: &str = "bob-web-pw";
const REPO_PW: &str = "repository-password";

/// A `holdfast serve` child process, killed when dropped.
struct Server {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Server {
    /// `holdfast serve --repo-root <dir>/repos --listen 127.0.0.1:0 ARGS`; ARGS may
    /// use `{dir}` for the server's temp dir.
    fn start(args: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        Server::start_in(dir, args)
    }

    fn start_in(dir: tempfile::TempDir, args: &[&str]) -> Server {
        let root = dir.path().join("repos");
        std::fs::create_dir_all(&root).unwrap();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace("{dir}", &dir.path().display().to_string()))
            .collect();
        let mut child = Command::new(env!("CARGO_BIN_EXE_holdfast"))
            .args(["serve", "--listen", "127.0.0.1:0", "--repo-root"])
            .arg(&root)
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start holdfast serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("holdfast serve: listening on ")
            .unwrap_or_else(|| {
                let _ = child.wait();
                panic!(
                    "server did not start: {line:?}\n{}",
                    std::fs::read_to_string(dir.path().join("server.log")).unwrap()
                )
            })
            .to_string();
        Server { child, url, dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("repos")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap()
    }

    /// restic's repository location for a user (password in the URL: test only).
    fn rest(&self, user: &str, password: &str, repo: &str) -> String {
        let (scheme, hostport) = self.url.split_once("://").unwrap();
        format!("rest:{scheme}://{user}:{password}@{hostport}/{repo}/")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A temp dir with an htpasswd file of alice and bob (bcrypt, low cost for speed).
fn users_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "alice:{}\nbob:{}\n",
        bcrypt::hash(ALICE_PW, 4).unwrap(),
        bcrypt::hash(BOB_PW, 4).unwrap()
    );
    std::fs::write(dir.path().join("htpasswd"), text).unwrap();
    dir
}

fn restic(repo: &str, args: &[&str], extra: &[&str]) -> Output {
    let cache = tempfile::tempdir().unwrap();
    Command::new("restic")
        .args(["--no-cache", "-r", repo])
        .args(args)
        .args(extra)
        .env("RESTIC_PASSWORD", REPO_PW)
        .env("RESTIC_CACHE_DIR", cache.path())
        .stdin(Stdio::null())
        .output()
        .expect("run restic (scripts/ensure-restic installs it)")
}

fn restic_ok(repo: &str, args: &[&str], extra: &[&str]) -> String {
    let out = restic(repo, args, extra);
    assert!(
        out.status.success(),
        "restic {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A small tree of files with pseudo-random content, some of it compressible.
fn source_tree(dir: &Path) -> PathBuf {
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("etc")).unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut noise = vec![0u8; 1 << 20];
    for b in noise.iter_mut() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *b = state as u8;
    }
    std::fs::write(src.join("blob.bin"), &noise).unwrap();
    std::fs::write(src.join("etc/app.conf"), "ENGINE_DB_HOST=db\n".repeat(100)).unwrap();
    std::fs::write(src.join("empty"), "").unwrap();
    src
}

fn same_files(a: &Path, b: &Path) {
    for name in ["blob.bin", "etc/app.conf", "empty"] {
        assert_eq!(
            std::fs::read(a.join(name)).unwrap(),
            std::fs::read(b.join(name)).unwrap(),
            "{name} differs after restore"
        );
    }
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

/// The status of a raw request (`auth` as `user:password`).
fn status(method: &str, url: &str, auth: Option<(&str, &str)>, body: Option<&[u8]>) -> u16 {
    let mut req = ureq::request(method, url);
    if let Some((user, pw)) = auth {
        req = req.set("Authorization", &basic(user, pw));
    }
    let result = match body {
        Some(bytes) => req.send_bytes(bytes),
        None => req.call(),
    };
    match result {
        Ok(resp) => resp.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("{method} {url}: {e}"),
    }
}

/// The status of `GET path` sent byte for byte over a plain connection.
fn raw_get_status(url: &str, path: &str) -> u16 {
    use std::io::{Read, Write};
    let hostport = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(hostport).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex_string(&Sha256::digest(bytes))
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Files below `dir` whose name starts with `.upload-` (left-over partial uploads).
fn upload_leftovers(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else if e.file_name().to_string_lossy().starts_with(".upload-") {
                out.push(e.path());
            }
        }
    }
    out
}

#[test]
fn restic_backs_up_checks_and_restores_through_serve_with_private_repos() {
    let users = users_dir();
    let server = Server::start_in(users, &["--htpasswd", "{dir}/htpasswd", "--private-repos"]);
    let work = tempfile::tempdir().unwrap();
    let src = source_tree(work.path());
    let repo = server.rest("alice", ALICE_PW, "alice");

    restic_ok(&repo, &["init"], &[]);
    restic_ok(&repo, &["backup"], &[src.to_str().unwrap()]);
    let check = restic_ok(&repo, &["check", "--read-data"], &[]);
    assert!(check.contains("no errors were found"), "{check}");
    let target = work.path().join("restored");
    restic_ok(
        &repo,
        &["restore", "latest", "--target"],
        &[target.to_str().unwrap()],
    );
    same_files(&src, &target.join(src.strip_prefix("/").unwrap()));

    // The repository root is restic's local layout: restic opens it directly.
    let local = server.root().join("alice");
    assert!(local.join("config").is_file());
    let snapshots = restic_ok(local.to_str().unwrap(), &["snapshots", "--json"], &[]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&snapshots)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(upload_leftovers(&server.root()).is_empty());

    // Users: a wrong password, an unknown user and no credentials get 401;
    // bob reaches his own repository path but not alice's.
    let config = format!("{}/alice/config", server.url);
    assert_eq!(
        status("HEAD", &config, Some(("alice", ALICE_PW)), None),
        200
    );
    assert_eq!(status("HEAD", &config, Some(("alice", "wrong")), None), 401);
    assert_eq!(
        status("HEAD", &config, Some(("mallory", ALICE_PW)), None),
        401
    );
    assert_eq!(status("HEAD", &config, None, None), 401);
    assert_eq!(status("HEAD", &config, Some(("bob", BOB_PW)), None), 403);
    assert_eq!(
        status(
            "GET",
            &format!("{}/alice/keys/", server.url),
            Some(("bob", BOB_PW)),
            None
        ),
        403
    );
    assert_eq!(
        status(
            "POST",
            &format!("{}/bob/?create=true", server.url),
            Some(("bob", BOB_PW)),
            Some(b"")
        ),
        200
    );
    let bad = restic(&server.rest("alice", "wrong", "alice"), &["snapshots"], &[]);
    assert!(!bad.status.success());
    let stolen = restic(&server.rest("bob", BOB_PW, "alice"), &["snapshots"], &[]);
    assert!(!stolen.status.success());
    assert_eq!(
        status("GET", &format!("{}/health", server.url), None, None),
        200
    );

    // One line per request, with user, method, path, status, bytes and time.
    let log = server.log();
    let upload = log
        .lines()
        .find(|l| {
            l.contains("user=alice method=POST path=/alice/data/") && l.contains("status=200")
        })
        .unwrap_or_else(|| panic!("no data upload logged:\n{log}"));
    assert!(upload.contains(" ms="), "{upload}");
    assert!(!upload.contains(" bytes=0 "), "{upload}");
    assert!(
        log.contains("user=bob method=HEAD path=/alice/config status=403"),
        "{log}"
    );
    assert!(
        log.contains("user=- method=HEAD path=/alice/config status=401"),
        "{log}"
    );
    assert!(
        !log.contains(ALICE_PW) && !log.contains(BOB_PW),
        "a password reached the log"
    );
}

#[test]
fn append_only_refuses_prune_delete_and_overwrite_but_not_locks() {
    let users = users_dir();
    let server = Server::start_in(users, &["--htpasswd", "{dir}/htpasswd", "--append-only"]);
    let work = tempfile::tempdir().unwrap();
    let src = source_tree(work.path());
    let repo = server.rest("alice", ALICE_PW, "alice");
    restic_ok(&repo, &["init"], &[]);
    restic_ok(&repo, &["backup"], &[src.to_str().unwrap()]);
    std::fs::write(src.join("etc/app.conf"), "changed\n").unwrap();
    restic_ok(&repo, &["backup"], &[src.to_str().unwrap()]);

    let prune = restic(&repo, &["forget", "--keep-last", "1", "--prune"], &[]);
    assert!(
        !prune.status.success(),
        "forget --prune went through an append-only server"
    );
    let snapshots = restic_ok(&repo, &["snapshots", "--json"], &[]);
    let snapshots: serde_json::Value = serde_json::from_str(&snapshots).unwrap();
    assert_eq!(
        snapshots.as_array().unwrap().len(),
        2,
        "a snapshot was lost"
    );
    restic_ok(&repo, &["check", "--read-data"], &[]);

    let auth = Some(("alice", ALICE_PW));
    let snapshot_dir = server.root().join("alice/snapshots");
    let name = std::fs::read_dir(&snapshot_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    let name = name.to_str().unwrap();
    let url = format!("{}/alice/snapshots/{name}", server.url);
    assert_eq!(status("DELETE", &url, auth, None), 403);
    let content = std::fs::read(snapshot_dir.join(name)).unwrap();
    assert_eq!(
        status("POST", &url, auth, Some(&content)),
        403,
        "overwrite accepted"
    );
    assert_eq!(
        status(
            "DELETE",
            &format!("{}/alice/config", server.url),
            auth,
            None
        ),
        403
    );
    assert_eq!(
        status(
            "POST",
            &format!("{}/alice/config", server.url),
            auth,
            Some(b"x")
        ),
        403
    );
    assert!(snapshot_dir.join(name).is_file());

    // Locks stay mutable: restic must be able to release them.
    let lock = b"{\"pid\":1}";
    let lock_url = format!("{}/alice/locks/{}", server.url, sha256_hex(lock));
    assert_eq!(status("POST", &lock_url, auth, Some(lock)), 200);
    assert_eq!(status("POST", &lock_url, auth, Some(lock)), 200);
    assert_eq!(status("DELETE", &lock_url, auth, None), 200);
}

#[test]
fn uploads_are_checked_listed_and_ranged() {
    let server = Server::start(&[]);
    let base = format!("{}/team/app", server.url);
    assert_eq!(status("HEAD", &format!("{base}/config"), None, None), 404);
    let pack: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let id = sha256_hex(&pack);
    let data_url = format!("{base}/data/{id}");
    // No repository yet: uploads are refused until it is created.
    assert_eq!(status("POST", &data_url, None, Some(&pack)), 404);
    assert_eq!(
        status("POST", &format!("{base}/?create=true"), None, Some(b"")),
        200
    );
    assert!(server.root().join("team/app/data/00").is_dir());

    // A wrong content hash is refused and nothing is kept.
    let wrong = sha256_hex(b"something else");
    assert_eq!(
        status("POST", &format!("{base}/data/{wrong}"), None, Some(&pack)),
        400
    );
    assert_eq!(
        status("POST", &format!("{base}/index/{wrong}"), None, Some(&pack)),
        400
    );
    assert!(!server
        .root()
        .join(format!("team/app/data/{}/{wrong}", &wrong[..2]))
        .exists());
    assert!(upload_leftovers(&server.root()).is_empty());

    assert_eq!(status("POST", &data_url, None, Some(&pack)), 200);
    let stored = server
        .root()
        .join(format!("team/app/data/{}/{id}", &id[..2]));
    assert_eq!(std::fs::read(&stored).unwrap(), pack);

    // HEAD gives the size, GET with a range gives that slice.
    let head = ureq::head(&data_url).call().unwrap();
    assert_eq!(head.header("Content-Length"), Some("200000"));
    let part = ureq::get(&data_url)
        .set("Range", "bytes=1000-1999")
        .call()
        .unwrap();
    assert_eq!(part.status(), 206);
    let mut got = Vec::new();
    std::io::Read::read_to_end(&mut part.into_reader(), &mut got).unwrap();
    assert_eq!(got, pack[1000..2000]);

    // Lists: v1 (names) by default, v2 (names and sizes) when asked for.
    let v1: serde_json::Value = ureq::get(&format!("{base}/data/"))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(v1, serde_json::json!([id]));
    let v2 = ureq::get(&format!("{base}/data/"))
        .set("Accept", "application/vnd.x.restic.rest.v2")
        .call()
        .unwrap();
    assert_eq!(v2.content_type(), "application/vnd.x.restic.rest.v2");
    let v2: serde_json::Value = v2.into_json().unwrap();
    assert_eq!(v2, serde_json::json!([{ "name": id, "size": 200_000 }]));

    // Paths that could leave the repository root, and names that are not ids; sent
    // raw, as an HTTP client library would normalise the dots away.
    for bad in [
        "/../etc/config".to_string(),
        "/team/../../config".to_string(),
        "/team/%2e%2e/config".to_string(),
        format!("/team/app/data/{}", &id[..10]),
        format!("/team/app/data/{}", id.to_uppercase()),
        format!("/team/app/data/../../../{id}"),
        format!("/team/app/bogus/{id}"),
    ] {
        assert_eq!(raw_get_status(&server.url, &bad), 400, "{bad}");
    }
    assert_eq!(status("DELETE", &data_url, None, None), 200);
    assert!(!stored.exists());
    assert_eq!(status("GET", &data_url, None, None), 404);
}

#[test]
fn restic_over_tls_with_a_self_signed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), cert.key_pair.serialize_pem()).unwrap();
    let server = Server::start_in(
        dir,
        &["--tls-cert", "{dir}/cert.pem", "--tls-key", "{dir}/key.pem"],
    );
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let cacert = server.dir.path().join("cert.pem");
    let cacert = cacert.to_str().unwrap();
    let repo = server.rest("alice", "unused", "alice");
    let work = tempfile::tempdir().unwrap();
    let src = source_tree(work.path());
    restic_ok(&repo, &["init", "--cacert", cacert], &[]);
    restic_ok(
        &repo,
        &["backup", "--cacert", cacert],
        &[src.to_str().unwrap()],
    );
    restic_ok(&repo, &["check", "--cacert", cacert], &[]);
    // Without the certificate restic refuses the server.
    assert!(!restic(&repo, &["snapshots"], &[]).status.success());
}

#[test]
fn startup_refusals_are_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let refuse = |args: &[&str], needle: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_holdfast"))
            .args(["serve", "--repo-root", root])
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} started");
        assert!(err.contains(needle), "{args:?}: {err}");
    };
    refuse(&["--listen", "0.0.0.0:0"], "without authentication");
    let sha = dir.path().join("sha.htpasswd");
    std::fs::write(&sha, "alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n").unwrap();
    refuse(&["--htpasswd", sha.to_str().unwrap()], "not a bcrypt hash");
    refuse(&["--private-repos"], "--htpasswd");
    refuse(&["--tls-cert", "/nonexistent.pem"], "--tls-key");
    let missing = dir.path().join("missing");
    let out = Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .args(["serve", "--repo-root", missing.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("is missing or not a directory"));
}

#[test]
fn a_client_gone_mid_upload_leaves_nothing_and_the_server_goes_on() {
    use std::io::Write;
    let server = Server::start(&[]);
    let base = format!("{}/app", server.url);
    assert_eq!(
        status("POST", &format!("{base}/?create=true"), None, Some(b"")),
        200
    );
    let id = sha256_hex(b"the whole pack that never arrives");
    let hostport = server.url.trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&hostport).unwrap();
    write!(
        stream,
        "POST /app/data/{id} HTTP/1.1\r\nHost: {hostport}\r\nContent-Length: 10000000\r\n\r\n"
    )
    .unwrap();
    stream.write_all(&vec![7u8; 1 << 20]).unwrap();
    let fanout = server.root().join("app/data").join(&id[..2]);
    let partial_seen = wait_for(|| !upload_leftovers(&fanout).is_empty());
    assert!(partial_seen, "the upload never reached a temporary file");
    drop(stream);
    assert!(
        wait_for(|| upload_leftovers(&server.root()).is_empty()),
        "a temporary file outlived its client"
    );
    assert!(!fanout.join(&id).exists());
    // Logged as failed: 400 when hyper reports the cut body, 499 when the request
    // was dropped first.
    let logged = |code: &str| {
        server
            .log()
            .contains(&format!("path=/app/data/{id} status={code}"))
    };
    assert!(
        wait_for(|| logged("400") || logged("499")),
        "{}",
        server.log()
    );
    assert_eq!(
        status("GET", &format!("{}/health", server.url), None, None),
        200
    );
    let pack = b"a complete pack";
    let url = format!("{base}/data/{}", sha256_hex(pack));
    assert_eq!(status("POST", &url, None, Some(pack)), 200);
}

/// Poll `done` for up to ten seconds.
fn wait_for(done: impl Fn() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_secs(10) {
        if done() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    false
}
