//! `orca agent serve`: the sidecar's HTTP door.
//!
//! - `GET /healthz` (no token): the agent runs.
//! - `GET /v1/state`: the arming, the last copy's progress and result.
//! - `GET /v1/backup`: the local server's physical backup, streamed as
//!   `mariadb-backup --backup --stream=mbstream` writes it; one at a time
//!   (a second is refused with 409). A backup that fails part way ends
//!   the response without its last chunk, so the receiver sees an error,
//!   never a short copy that looks whole.
//! - `POST /v1/reprovision`: arms this pod's re-provisioning
//!   ([`super::Arming`]); the operator then deletes the pod and its init
//!   container copies before `mysqld` starts.
//! - `POST /v1/save-tail`: saves what only this server has — the events
//!   of its binary logs after a GTID position (`mariadb-binlog
//!   --start-position`) — to `.orca-tail-ID.sql` beside a record
//!   `.orca-tail-ID.json` in the data directory, which a copy keeps:
//!   nothing of a diverged former primary is discarded without a record.
//! - `DELETE /v1/provisioned?id=ID`: the operator has joined the replica
//!   from the copy's position; the result is forgotten.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tokio::io::AsyncReadExt;
use tokio::sync::Semaphore;

use super::{
    ARMING_LIFETIME, AgentError, Arming, Files, MARKER, PROVISIONED, SIZE_HEADER, constant_time_eq,
    copy, now,
};

/// The local server the backups are taken of.
#[derive(Clone)]
pub struct LocalServer {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for LocalServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalServer")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub datadir: PathBuf,
    pub token: String,
    pub server: LocalServer,
    /// `mariadb-backup`, found on PATH unless given.
    pub backup_tool: PathBuf,
    /// `mariadb-binlog`, for saving a tail.
    pub binlog_tool: PathBuf,
}

struct Shared {
    files: Files,
    token: String,
    server: LocalServer,
    backup_tool: PathBuf,
    binlog_tool: PathBuf,
    one_backup: Arc<Semaphore>,
    mode: &'static str,
}

/// The router of the sidecar (`mode` "serve") or of the init container
/// during a copy (`mode` "init": only the state).
fn router(shared: Arc<Shared>) -> Router {
    let mut api = Router::new().route("/v1/state", get(state));
    if shared.mode == "serve" {
        api = api
            .route("/v1/backup", get(backup))
            .route("/v1/reprovision", post(reprovision))
            .route("/v1/provisioned", delete(provisioned_done))
            .route("/v1/save-tail", post(save_tail));
    }
    api.layer(middleware::from_fn_with_state(shared.clone(), authorize))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(shared)
}

pub async fn run(cfg: ServeConfig) -> Result<(), AgentError> {
    let shared = Arc::new(Shared {
        files: Files::new(&cfg.datadir),
        token: cfg.token,
        server: cfg.server,
        backup_tool: cfg.backup_tool,
        binlog_tool: cfg.binlog_tool,
        one_backup: Arc::new(Semaphore::new(1)),
        mode: "serve",
    });
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(super::io(format!("listening on {}", cfg.listen)))?;
    tracing::info!(listen = %cfg.listen, datadir = %cfg.datadir.display(), "the orca agent serves");
    axum::serve(listener, router(shared))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(super::io("serving"))
}

/// Serves the state only, while the init container copies; ends with
/// the process.
pub async fn serve_state(listen: SocketAddr, datadir: PathBuf, token: String) {
    let shared = Arc::new(Shared {
        files: Files::new(&datadir),
        token,
        server: LocalServer {
            host: String::new(),
            port: 0,
            user: String::new(),
            password: String::new(),
        },
        backup_tool: PathBuf::new(),
        binlog_tool: PathBuf::new(),
        one_backup: Arc::new(Semaphore::new(0)),
        mode: "init",
    });
    match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => {
            if let Err(e) = axum::serve(l, router(shared)).await {
                tracing::warn!("the copy's state door: {e}");
            }
        }
        Err(e) => tracing::warn!("the copy's state door on {listen}: {e}"),
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

async fn authorize(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Response {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(t) if constant_time_eq(t.as_bytes(), s.token.as_bytes()) => next.run(req).await,
        Some(_) => (StatusCode::FORBIDDEN, "the token is not this cluster's\n").into_response(),
        None => (StatusCode::UNAUTHORIZED, "a bearer token is needed\n").into_response(),
    }
}

async fn state(State(s): State<Arc<Shared>>) -> Json<super::AgentState> {
    Json(s.files.state(s.mode))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArmRequest {
    id: String,
    sources: Vec<String>,
    timeout_seconds: u64,
}

async fn reprovision(State(s): State<Arc<Shared>>, Json(r): Json<ArmRequest>) -> Response {
    if r.sources.is_empty() || r.id.is_empty() || r.timeout_seconds == 0 {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            "an arming needs an id, at least one source and a timeout\n",
        )
            .into_response();
    }
    let arming = Arming {
        id: r.id,
        sources: r.sources,
        expires_at: now() + ARMING_LIFETIME.as_secs(),
        timeout_seconds: r.timeout_seconds,
        begun_at: None,
    };
    match s.files.write(MARKER, &arming) {
        Ok(()) => {
            tracing::info!(id = %arming.id, sources = ?arming.sources, "re-provisioning armed: the copy runs at the next start");
            (StatusCode::ACCEPTED, Json(arming)).into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct IdQuery {
    id: String,
}

async fn provisioned_done(State(s): State<Arc<Shared>>, Query(q): Query<IdQuery>) -> Response {
    let current: Option<super::Provisioned> = s.files.read(PROVISIONED);
    match current {
        Some(p) if p.id == q.id => match s.files.remove(PROVISIONED) {
            Ok(()) => (StatusCode::OK, "forgotten\n").into_response(),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
        },
        _ => (StatusCode::NOT_FOUND, "no such copy result\n").into_response(),
    }
}

/// What a backup stream holds on to until its end: the one-backup
/// permit, the tool's process and its private files.
struct Running {
    child: tokio::process::Child,
    stdout: tokio::process::ChildStdout,
    scratch: PathBuf,
    /// The tool's last lines of standard error, once it has ended.
    said: Option<tokio::task::JoinHandle<Vec<String>>>,
    _permit: tokio::sync::OwnedSemaphorePermit,
    done: bool,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

async fn backup(State(s): State<Arc<Shared>>) -> Response {
    let Ok(permit) = s.one_backup.clone().try_acquire_owned() else {
        return (
            StatusCode::CONFLICT,
            "a backup of this server is already streaming\n",
        )
            .into_response();
    };
    match start_backup(&s).await {
        Ok((mut child, stdout, scratch)) => {
            let estimated = copy::estimate(&s.files.datadir);
            let said = child.stderr.take().map(|e| tokio::spawn(log_lines(e)));
            let running = Running {
                child,
                stdout,
                scratch,
                said,
                _permit: permit,
                done: false,
            };
            let body = futures::stream::unfold(running, next_chunk);
            let mut resp = Body::from_stream(body).into_response();
            if let Ok(v) = estimated.to_string().parse() {
                resp.headers_mut().insert(SIZE_HEADER, v);
            }
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/octet-stream"),
            );
            resp
        }
        Err(e) => {
            tracing::warn!("a backup could not start: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response()
        }
    }
}

async fn start_backup(
    s: &Shared,
) -> Result<(tokio::process::Child, tokio::process::ChildStdout, PathBuf), AgentError> {
    let scratch = std::env::temp_dir().join(format!("orca-backup-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(scratch.join("target")).map_err(super::io("a scratch directory"))?;
    let cnf = scratch.join("client.cnf");
    let text = format!(
        "[mariadb-backup]\nuser={}\npassword={}\nhost={}\nport={}\n",
        s.server.user, s.server.password, s.server.host, s.server.port
    );
    super::write_private(&cnf, text.as_bytes()).map_err(super::io("the backup's client file"))?;
    let mut cmd = tokio::process::Command::new(&s.backup_tool);
    cmd.arg(format!("--defaults-extra-file={}", cnf.display()))
        .arg("--backup")
        .arg("--stream=mbstream")
        .arg(format!("--datadir={}", s.files.datadir.display()))
        .arg(format!("--target-dir={}", scratch.join("target").display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(super::io(format!("starting {}", s.backup_tool.display())))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| AgentError::Copy("the backup tool has no output".into()))?;
    tracing::info!("a backup streams");
    Ok((child, stdout, scratch))
}

/// Logs the tool's standard error (at info: it is talkative); returns its
/// last lines, which a failure names.
async fn log_lines(err: tokio::process::ChildStderr) -> Vec<String> {
    use tokio::io::AsyncBufReadExt;
    const KEEP: usize = 5;
    let mut last = std::collections::VecDeque::with_capacity(KEEP);
    let mut lines = tokio::io::BufReader::new(err).lines();
    while let Ok(Some(l)) = lines.next_line().await {
        tracing::info!(target: "orca::agent::backup", "{l}");
        if last.len() == KEEP {
            last.pop_front();
        }
        last.push_back(l);
    }
    last.into()
}

async fn next_chunk(mut r: Running) -> Option<(Result<Bytes, std::io::Error>, Running)> {
    if r.done {
        return None;
    }
    let mut buf = vec![0u8; 256 * 1024];
    match r.stdout.read(&mut buf).await {
        Ok(0) => {
            r.done = true;
            match r.child.wait().await {
                Ok(st) if st.success() => {
                    tracing::info!("a backup streamed whole");
                    None
                }
                Ok(st) => {
                    let said = match r.said.take() {
                        Some(h) => tokio::time::timeout(std::time::Duration::from_secs(2), h)
                            .await
                            .ok()
                            .and_then(Result::ok)
                            .unwrap_or_default(),
                        None => Vec::new(),
                    };
                    tracing::warn!(
                        "the backup tool failed ({st}): the stream is cut; it said: {}",
                        said.join(" / ")
                    );
                    Some((
                        Err(std::io::Error::other(format!("backup failed: {st}"))),
                        r,
                    ))
                }
                Err(e) => Some((Err(e), r)),
            }
        }
        Ok(n) => {
            buf.truncate(n);
            Some((Ok(Bytes::from(buf)), r))
        }
        Err(e) => {
            r.done = true;
            Some((Err(e), r))
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TailRequest {
    id: String,
    /// The GTID position after which the events are this server's own.
    after: String,
    /// The transactions the tail holds, for the record.
    gtids: String,
}

async fn save_tail(State(s): State<Arc<Shared>>, Json(r): Json<TailRequest>) -> Response {
    let id_ok = !r.id.is_empty()
        && r.id.len() <= 64
        && r.id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let gtid_ok = r
        .after
        .chars()
        .all(|c| c.is_ascii_digit() || c == '-' || c == ',');
    if !id_ok || !gtid_ok {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            "a tail needs an id of letters, digits, - and _, and a GTID position\n",
        )
            .into_response();
    }
    match super::tail::save(&s.files, &s.binlog_tool, &r.id, &r.after, &r.gtids).await {
        Ok(t) => (StatusCode::OK, Json(t)).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}
