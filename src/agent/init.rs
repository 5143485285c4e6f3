//! `orca agent init`: the pod's init container. Without an arming it
//! exits at once and `mysqld` starts on its data directory as it is.
//! Armed, it copies:
//!
//! 1. the arming marked begun (from then on it does not lapse);
//! 2. for each source in turn, until one succeeds or the time limit is
//!    reached: the staging directory emptied, the source's backup stream
//!    read into `mbstream -x`, then `mariadb-backup --prepare` on it;
//!    a stream cut short, a tool that fails, a source that does not
//!    answer: the next source;
//! 3. the prepared copy swapped in ([`super::copy::swap_in`]), the
//!    result written ([`super::Provisioned`]), the arming removed.
//!
//! Progress goes to [`super::PROGRESS`] every second and is served on
//! the agent's port (`GET /v1/state`). When no source gives a whole copy
//! in time, the staging directory is deleted and the arming removed: the
//! data directory was never touched, `mysqld` starts on it and the
//! operator sees the failure in the progress. The exit code is 1 only
//! for an error that leaves the directory unsafe to start on; the
//! kubelet then runs the container again.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use super::{
    AgentError, Arming, CopyPhase, CopyProgress, Files, MARKER, PROGRESS, PROVISIONED, Provisioned,
    SIZE_HEADER, copy, now,
};

#[derive(Debug, Clone)]
pub struct InitConfig {
    pub datadir: PathBuf,
    pub token: String,
    /// Where the copy's state is served.
    pub listen: SocketAddr,
    pub backup_tool: PathBuf,
    pub mbstream: PathBuf,
    /// How long a read of the stream may wait for the next bytes.
    pub stall: Duration,
}

/// Runs the init container.
pub async fn run(cfg: InitConfig) -> Result<(), AgentError> {
    let files = Files::new(&cfg.datadir);
    if copy::swap_pending(&cfg.datadir) {
        tracing::warn!("a swap was interrupted: finishing it");
        copy::swap_in(&cfg.datadir)?;
    }
    let Some(mut arming) = files.read::<Arming>(MARKER) else {
        tracing::info!("no copy armed: the server starts on its data directory");
        return Ok(());
    };
    let started = now();
    if !arming.live(started) {
        tracing::warn!(id = %arming.id, "a lapsed arming is removed: nothing is copied");
        files.remove(MARKER)?;
        return Ok(());
    }
    if arming.begun_at.is_none() {
        arming.begun_at = Some(started);
        files.write(MARKER, &arming)?;
    }
    tokio::spawn(super::serve::serve_state(
        cfg.listen,
        cfg.datadir.clone(),
        cfg.token.clone(),
    ));
    let begun = arming.begun_at.unwrap_or(started);
    let deadline = begun + arming.timeout_seconds;
    let http = super::http_builder()
        .connect_timeout(Duration::from_secs(3))
        .read_timeout(cfg.stall)
        .build()
        .map_err(|e| AgentError::Config(format!("an HTTP client: {e}")))?;
    let mut attempt = files
        .read::<CopyProgress>(PROGRESS)
        .filter(|p| p.id == arming.id)
        .map(|p| p.attempt)
        .unwrap_or(0);
    let mut last_error = String::from("no source");
    // Why the attempt before failed, shown with the next one's progress.
    let mut failed: Option<String> = None;
    // Each source in turn, three rounds at most, within the time limit.
    'rounds: for _round in 0..3 {
        for source in &arming.sources {
            if now() >= deadline {
                break 'rounds;
            }
            attempt += 1;
            let t0 = Instant::now();
            let mut rep = Reporter {
                files: &files,
                arming: &arming,
                source,
                attempt,
                t0,
                estimated: None,
                previous: failed.clone(),
            };
            match one_attempt(&cfg, &http, &mut rep, deadline).await {
                Ok(bytes) => {
                    let gtid = copy::backup_gtid(&cfg.datadir)?;
                    let seconds = t0.elapsed().as_secs_f64();
                    files.write(
                        PROVISIONED,
                        &Provisioned {
                            id: arming.id.clone(),
                            source: source.clone(),
                            gtid: gtid.clone(),
                            bytes,
                            seconds,
                            finished_at: now(),
                        },
                    )?;
                    rep.report(bytes, CopyPhase::Done, None);
                    files.remove(MARKER)?;
                    tracing::info!(id = %arming.id, %source, bytes, seconds, %gtid, "copied: the server starts on the copy");
                    return Ok(());
                }
                Err(e) => {
                    last_error = e.to_string();
                    tracing::warn!(id = %arming.id, %source, attempt, "the copy failed: {e}");
                    rep.report(0, CopyPhase::Failed, Some(last_error.clone()));
                    failed = Some(format!("from {source}: {last_error}"));
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // No whole copy: the data directory is as it was.
    copy::remove_staging(&cfg.datadir)?;
    files.remove(MARKER)?;
    tracing::error!(id = %arming.id, "no source gave a whole copy in time ({last_error}): the server starts on its data directory as it was");
    Ok(())
}

/// Writes one attempt's progress.
struct Reporter<'a> {
    files: &'a Files,
    arming: &'a Arming,
    source: &'a str,
    attempt: u32,
    t0: Instant,
    estimated: Option<u64>,
    /// Why the attempt before this one failed.
    previous: Option<String>,
}

impl Reporter<'_> {
    fn report(&self, bytes: u64, phase: CopyPhase, error: Option<String>) {
        let secs = self.t0.elapsed().as_secs_f64().max(0.001);
        let p = CopyProgress {
            id: self.arming.id.clone(),
            phase,
            source: self.source.to_string(),
            attempt: self.attempt,
            bytes,
            estimated_bytes: self.estimated,
            rate: (bytes as f64 / secs) as u64,
            started_at: now().saturating_sub(self.t0.elapsed().as_secs()),
            updated_at: now(),
            error: error.or_else(|| self.previous.clone()),
        };
        if let Err(e) = self.files.write(PROGRESS, &p) {
            tracing::warn!("the copy's progress: {e}");
        }
    }
}

/// One attempt from one source: received, extracted and prepared in the
/// staging directory, then swapped in. Returns the bytes received.
async fn one_attempt(
    cfg: &InitConfig,
    http: &reqwest::Client,
    rep: &mut Reporter<'_>,
    deadline: u64,
) -> Result<u64, AgentError> {
    let source = rep.source;
    let staging = copy::clear_staging(&cfg.datadir)?;
    rep.report(0, CopyPhase::Streaming, None);
    let url = format!("http://{source}/v1/backup");
    let mut resp = http
        .get(&url)
        .bearer_auth(&cfg.token)
        .send()
        .await
        .map_err(|e| AgentError::Copy(format!("{source}: {e}")))?;
    if !resp.status().is_success() {
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        return Err(AgentError::Copy(format!(
            "{source} answered {status}: {}",
            text.trim()
        )));
    }
    rep.estimated = resp
        .headers()
        .get(SIZE_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut extract = tokio::process::Command::new(&cfg.mbstream)
        .arg("-x")
        .arg("-C")
        .arg(&staging)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(super::io(format!("starting {}", cfg.mbstream.display())))?;
    let mut stdin = extract
        .stdin
        .take()
        .ok_or_else(|| AgentError::Copy("mbstream has no input".into()))?;
    let mut bytes = 0u64;
    let mut reported = Instant::now();
    loop {
        if now() >= deadline {
            return Err(AgentError::Copy("the copy's time limit passed".into()));
        }
        let chunk = resp
            .chunk()
            .await
            .map_err(|e| AgentError::Copy(format!("the stream from {source} broke: {e}")))?;
        let Some(chunk) = chunk else { break };
        bytes += chunk.len() as u64;
        stdin
            .write_all(&chunk)
            .await
            .map_err(super::io("writing to mbstream"))?;
        if reported.elapsed() >= Duration::from_secs(1) {
            reported = Instant::now();
            rep.report(bytes, CopyPhase::Streaming, None);
        }
    }
    drop(stdin);
    let out = extract
        .wait_with_output()
        .await
        .map_err(super::io("waiting for mbstream"))?;
    if !out.status.success() {
        return Err(AgentError::Copy(format!(
            "mbstream failed ({}): {}",
            out.status,
            tail(&out.stderr)
        )));
    }
    rep.report(bytes, CopyPhase::Preparing, None);
    prepare(&cfg.backup_tool, &staging).await?;
    copy::backup_gtid(&staging)?;
    rep.report(bytes, CopyPhase::Swapping, None);
    copy::swap_in(&cfg.datadir)?;
    Ok(bytes)
}

async fn prepare(tool: &Path, dir: &Path) -> Result<(), AgentError> {
    let out = tokio::process::Command::new(tool)
        .arg("--prepare")
        .arg(format!("--target-dir={}", dir.display()))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(super::io(format!("starting {}", tool.display())))?;
    if !out.status.success() {
        return Err(AgentError::Copy(format!(
            "mariadb-backup --prepare failed ({}): {}",
            out.status,
            tail(&out.stderr)
        )));
    }
    Ok(())
}

fn tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().rev().take(3).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}
