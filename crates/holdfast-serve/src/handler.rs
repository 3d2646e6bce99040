//! Serving one request of restic's REST protocol: authentication, access rules
//! (private repositories, append-only) and the answer for each route and method.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body_util::{combinators::BoxBody, BodyDataStream, BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use crate::access_log::RequestLog;
use crate::auth::{basic_credentials, Htpasswd};
use crate::route::{ObjectType, RepoPath, Route};
use crate::store::{self, Repo, UploadError, UploadRules};

pub type Body = BoxBody<Bytes, io::Error>;

const V2_MEDIA_TYPE: &str = "application/vnd.x.restic.rest.v2";
const V1_MEDIA_TYPE: &str = "application/vnd.x.restic.rest.v1";

/// What every request needs to know about the server.
pub struct State {
    pub root: PathBuf,
    pub append_only: bool,
    pub users: Option<Arc<Htpasswd>>,
    pub private_repos: bool,
}

/// Answer one request and log it.
pub async fn handle(state: Arc<State>, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let mut log = RequestLog::start(peer, req.method().as_str(), req.uri().path());
    let response = respond(&state, req, &mut log).await;
    log.finish(response.status().as_u16());
    response
}

async fn respond(state: &State, req: Request<Incoming>, log: &mut RequestLog) -> Response<Body> {
    let route = Route::parse(req.uri().path());
    if route == Ok(Route::Health) {
        return match *req.method() {
            Method::GET | Method::HEAD => text(StatusCode::OK, "ok"),
            _ => method_not_allowed(),
        };
    }
    if let Some(users) = &state.users {
        match authenticate(users, req.headers()).await {
            Some(user) => log.user = Some(user),
            None => return unauthorized(),
        }
    }
    let route = match route {
        Ok(route) => route,
        Err(why) => return text(StatusCode::BAD_REQUEST, why),
    };
    let repo_path = route
        .repo()
        .expect("only the health check has no repository")
        .clone();
    if state.private_repos && !owns(log.user.as_deref(), &repo_path) {
        return text(
            StatusCode::FORBIDDEN,
            format!("{repo_path} is not your repository (private repositories: /<user>/...)"),
        );
    }
    let repo = Repo::new(&state.root, &repo_path);
    let result = match route {
        Route::Health => unreachable!("answered above"),
        Route::Repo(_) => repository(&repo, req).await,
        Route::Config(_) => config(state, &repo, req, log).await,
        Route::List(_, kind) => list(&repo, kind, req).await,
        Route::Object(_, kind, name) => object(state, &repo, kind, &name, req, log).await,
    };
    match result {
        Ok(response) => {
            if let Some(len) = response
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
            {
                if log.bytes == 0 && response.status().is_success() {
                    log.bytes = len;
                }
            }
            response
        }
        Err(e) => {
            eprintln!("holdfast serve: repository {repo_path}: {e}");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; see the server's log",
            )
        }
    }
}

/// The user of valid Basic credentials, `None` when missing or wrong.
async fn authenticate(users: &Arc<Htpasswd>, headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (user, password) = basic_credentials(value)?;
    let users = users.clone();
    tokio::task::spawn_blocking(move || users.verify(&user, &password).then_some(user))
        .await
        .ok()
        .flatten()
}

/// With private repositories, user X reaches `/X` and what is below it.
fn owns(user: Option<&str>, repo: &RepoPath) -> bool {
    match (user, repo.components().first()) {
        (Some(user), Some(first)) => user == first,
        _ => false,
    }
}

/// `POST /{repo}/?create=true`
async fn repository(repo: &Repo, req: Request<Incoming>) -> io::Result<Response<Body>> {
    if req.method() != Method::POST {
        return Ok(method_not_allowed());
    }
    let create = req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "create=true"));
    if !create {
        return Ok(text(
            StatusCode::BAD_REQUEST,
            "POST /<repo>/?create=true creates a repository; nothing else is posted here",
        ));
    }
    repo.create().await?;
    Ok(text(StatusCode::OK, ""))
}

/// `HEAD|GET|POST|DELETE /{repo}/config`
async fn config(
    state: &State,
    repo: &Repo,
    req: Request<Incoming>,
    log: &mut RequestLog,
) -> io::Result<Response<Body>> {
    let path = repo.config_path();
    match *req.method() {
        Method::HEAD | Method::GET => download(&path, req).await,
        Method::POST => {
            if !repo.exists() {
                return refuse_upload(req, no_repository()).await;
            }
            let rules = UploadRules {
                expected_sha256: None,
                no_clobber: state.append_only,
            };
            upload(&path, req, rules, log).await
        }
        Method::DELETE if state.append_only => Ok(append_only_refusal()),
        Method::DELETE => delete(&path).await,
        _ => Ok(method_not_allowed()),
    }
}

/// `GET /{repo}/{type}/`: v2 (names and sizes) when the client accepts it, else v1.
async fn list(repo: &Repo, kind: ObjectType, req: Request<Incoming>) -> io::Result<Response<Body>> {
    if req.method() != Method::GET {
        return Ok(method_not_allowed());
    }
    if !repo.exists() {
        return Ok(no_repository());
    }
    let objects = repo.list(kind).await?;
    let v2 = req
        .headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains(V2_MEDIA_TYPE));
    let (json, media_type) = if v2 {
        let entries: Vec<_> = objects
            .into_iter()
            .map(|(name, size)| serde_json::json!({ "name": name, "size": size }))
            .collect();
        (serde_json::to_vec(&entries), V2_MEDIA_TYPE)
    } else {
        let names: Vec<_> = objects.into_iter().map(|(name, _)| name).collect();
        (serde_json::to_vec(&names), V1_MEDIA_TYPE)
    };
    let json = json.map_err(io::Error::other)?;
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, media_type)
        .header(header::CONTENT_LENGTH, json.len())
        .body(full(json))
        .expect("valid response"))
}

/// `HEAD|GET|POST|DELETE /{repo}/{type}/{name}`
async fn object(
    state: &State,
    repo: &Repo,
    kind: ObjectType,
    name: &str,
    req: Request<Incoming>,
    log: &mut RequestLog,
) -> io::Result<Response<Body>> {
    let path = repo.object_path(kind, name);
    // Locks are the one kind a client must replace and remove, append-only or not.
    let protected = state.append_only && kind != ObjectType::Locks;
    match *req.method() {
        Method::HEAD | Method::GET => download(&path, req).await,
        Method::POST => {
            if !repo.exists() {
                return refuse_upload(req, no_repository()).await;
            }
            if protected && store::file_size(&path).await?.is_some() {
                return refuse_upload(req, append_only_refusal()).await;
            }
            let rules = UploadRules {
                expected_sha256: kind.content_addressed().then(|| name.to_string()),
                no_clobber: protected,
            };
            upload(&path, req, rules, log).await
        }
        Method::DELETE if protected => Ok(append_only_refusal()),
        Method::DELETE => delete(&path).await,
        _ => Ok(method_not_allowed()),
    }
}

async fn upload(
    path: &Path,
    req: Request<Incoming>,
    rules: UploadRules,
    log: &mut RequestLog,
) -> io::Result<Response<Body>> {
    let body = BodyDataStream::new(req.into_body());
    match store::upload(path, body, rules, &mut log.bytes).await {
        Ok(()) => Ok(text(StatusCode::OK, "")),
        Err(UploadError::HashMismatch { actual }) => Ok(text(
            StatusCode::BAD_REQUEST,
            format!("the content's sha256 is {actual}, not the object's name; nothing was kept"),
        )),
        Err(UploadError::Exists) => Ok(append_only_refusal()),
        Err(UploadError::Body(why)) => Ok(text(
            StatusCode::BAD_REQUEST,
            format!("the upload failed: {why}; nothing was kept"),
        )),
        Err(UploadError::Io(e)) => Err(e),
    }
}

/// Refuse an authenticated upload, reading (and dropping) its body first: a client
/// still writing when the connection closed would see a broken pipe, not the answer.
async fn refuse_upload(
    req: Request<Incoming>,
    answer: Response<Body>,
) -> io::Result<Response<Body>> {
    let mut body = req.into_body();
    while let Some(frame) = body.frame().await {
        if frame.is_err() {
            break;
        }
    }
    Ok(answer)
}

/// GET (with an optional single byte range) or HEAD of a file.
async fn download(path: &Path, req: Request<Incoming>) -> io::Result<Response<Body>> {
    let Some(size) = store::file_size(path).await? else {
        return Ok(text(StatusCode::NOT_FOUND, "not found"));
    };
    let builder = Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::ACCEPT_RANGES, "bytes");
    if req.method() == Method::HEAD {
        return Ok(builder
            .status(StatusCode::OK)
            .header(header::CONTENT_LENGTH, size)
            .body(empty())
            .expect("valid response"));
    }
    let range = req.headers().get(header::RANGE);
    let (status, start, len, builder) = match byte_range(range, size) {
        RangeAsked::Whole => (StatusCode::OK, 0, size, builder),
        RangeAsked::Part { start, len } => {
            let content_range = format!("bytes {start}-{}/{size}", start + len - 1);
            let builder = builder.header(header::CONTENT_RANGE, content_range);
            (StatusCode::PARTIAL_CONTENT, start, len, builder)
        }
        RangeAsked::Unsatisfiable => {
            return Ok(Response::builder()
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{size}"))
                .body(empty())
                .expect("valid response"))
        }
    };
    let stream = store::read_range(path, start, len).await?;
    Ok(builder
        .status(status)
        .header(header::CONTENT_LENGTH, len)
        .body(StreamBody::new(stream.map_ok(Frame::data)).boxed())
        .expect("valid response"))
}

async fn delete(path: &Path) -> io::Result<Response<Body>> {
    Ok(if store::remove(path).await? {
        text(StatusCode::OK, "")
    } else {
        text(StatusCode::NOT_FOUND, "not found")
    })
}

#[derive(Debug, PartialEq, Eq)]
enum RangeAsked {
    Whole,
    Part { start: u64, len: u64 },
    Unsatisfiable,
}

/// A single `bytes=` range (restic asks for no other kind); anything this does not
/// understand is ignored, as HTTP allows, and the whole file is sent.
fn byte_range(header: Option<&HeaderValue>, size: u64) -> RangeAsked {
    let Some(spec) = header
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("bytes="))
    else {
        return RangeAsked::Whole;
    };
    if spec.contains(',') {
        return RangeAsked::Whole;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return RangeAsked::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let parsed = |s: &str| s.parse::<u64>().ok();
    let (start, end) = match (first.is_empty(), last.is_empty()) {
        (false, _) => {
            let Some(start) = parsed(first) else {
                return RangeAsked::Whole;
            };
            let end = if last.is_empty() {
                size.saturating_sub(1)
            } else {
                match parsed(last) {
                    Some(end) if end >= start => end.min(size.saturating_sub(1)),
                    _ => return RangeAsked::Whole,
                }
            };
            if start >= size {
                return RangeAsked::Unsatisfiable;
            }
            (start, end)
        }
        (true, false) => match parsed(last) {
            Some(0) => return RangeAsked::Unsatisfiable,
            Some(_) if size == 0 => return RangeAsked::Unsatisfiable,
            Some(suffix) => (size.saturating_sub(suffix), size - 1),
            None => return RangeAsked::Whole,
        },
        (true, true) => return RangeAsked::Whole,
    };
    RangeAsked::Part {
        start,
        len: end - start + 1,
    }
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

fn text(status: StatusCode, body: impl Into<String>) -> Response<Body> {
    let mut body = body.into();
    if !body.is_empty() {
        body.push('\n');
    }
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(full(body))
        .expect("valid response")
}

fn unauthorized() -> Response<Body> {
    let mut response = text(
        StatusCode::UNAUTHORIZED,
        "wrong or missing user name or password",
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"holdfast\""),
    );
    response
}

fn append_only_refusal() -> Response<Body> {
    text(
        StatusCode::FORBIDDEN,
        "the server is append-only: existing files cannot be deleted or replaced (lock files excepted)",
    )
}

fn no_repository() -> Response<Body> {
    text(
        StatusCode::NOT_FOUND,
        "no repository here; create one with POST /<repo>/?create=true (restic init)",
    )
}

fn method_not_allowed() -> Response<Body> {
    text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(v: &str, size: u64) -> RangeAsked {
        byte_range(Some(&HeaderValue::from_str(v).unwrap()), size)
    }

    #[test]
    fn byte_ranges() {
        assert_eq!(byte_range(None, 10), RangeAsked::Whole);
        assert_eq!(
            range("bytes=2-5", 10),
            RangeAsked::Part { start: 2, len: 4 }
        );
        assert_eq!(range("bytes=2-", 10), RangeAsked::Part { start: 2, len: 8 });
        assert_eq!(
            range("bytes=5-100", 10),
            RangeAsked::Part { start: 5, len: 5 }
        );
        assert_eq!(range("bytes=-3", 10), RangeAsked::Part { start: 7, len: 3 });
        assert_eq!(
            range("bytes=-30", 10),
            RangeAsked::Part { start: 0, len: 10 }
        );
        assert_eq!(range("bytes=10-", 10), RangeAsked::Unsatisfiable);
        assert_eq!(range("bytes=0-", 0), RangeAsked::Unsatisfiable);
        assert_eq!(range("bytes=1-2,4-5", 10), RangeAsked::Whole);
        assert_eq!(range("bytes=5-2", 10), RangeAsked::Whole);
        assert_eq!(range("items=1-2", 10), RangeAsked::Whole);
    }
}
