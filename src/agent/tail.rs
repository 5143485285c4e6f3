//! A diverged server's tail: the events of its binary logs after a GTID
//! position, saved to its data directory before it is re-provisioned.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde::{Deserialize, Serialize};

use super::{AgentError, Files, io, now};

/// What was saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tail {
    pub id: String,
    /// The transactions it holds (as the operator named them).
    pub gtids: String,
    /// The position after which the events were taken.
    pub after: String,
    /// The file in the data directory, and its size.
    pub file: String,
    pub bytes: u64,
    /// The binary logs read.
    pub binlogs: Vec<String>,
    pub saved_at: u64,
}

/// The server's binary logs, oldest first, from the index files in the
/// data directory (the relay log's excepted).
pub fn binlogs(datadir: &Path) -> Result<Vec<PathBuf>, AgentError> {
    let mut out = Vec::new();
    let rd = std::fs::read_dir(datadir).map_err(io("listing the data directory"))?;
    let mut indexes: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            name.is_some_and(|n| n.ends_with(".index") && !n.contains("relay"))
        })
        .collect();
    indexes.sort();
    for index in indexes {
        let text = std::fs::read_to_string(&index).map_err(io(format!("{}", index.display())))?;
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let p = Path::new(line);
            let p = if p.is_absolute() {
                p.to_path_buf()
            } else {
                datadir.join(line.trim_start_matches("./"))
            };
            if p.exists() {
                out.push(p);
            }
        }
    }
    Ok(out)
}

/// Saves the events after `after` to `.orca-tail-ID.sql`, and the
/// record beside it.
pub async fn save(
    files: &Files,
    tool: &Path,
    id: &str,
    after: &str,
    gtids: &str,
) -> Result<Tail, AgentError> {
    let logs = binlogs(&files.datadir)?;
    if logs.is_empty() {
        return Err(AgentError::Copy(
            "this server has no binary log: there is no tail to save".into(),
        ));
    }
    let name = format!(".orca-tail-{id}.sql");
    let path = files.path(&name);
    let out = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&path)
        .map_err(io(format!("creating {name}")))?;
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
    let mut cmd = tokio::process::Command::new(tool);
    // Row events also as commented pseudo-SQL (`### INSERT INTO ...`), so
    // that a person can read what the tail holds.
    cmd.arg("--verbose");
    if !after.is_empty() {
        cmd.arg(format!("--start-position={after}"));
    }
    let status = cmd
        .args(&logs)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(io(format!("running {}", tool.display())))?
        .wait_with_output();
    let done = tokio::time::timeout(std::time::Duration::from_secs(120), status)
        .await
        .map_err(|_| AgentError::Copy("reading the binary logs took over 120 s".into()))?
        .map_err(io(format!("running {}", tool.display())))?;
    if !done.status.success() {
        return Err(AgentError::Copy(format!(
            "{} failed ({}): {}",
            tool.display(),
            done.status,
            String::from_utf8_lossy(&done.stderr).trim()
        )));
    }
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let tail = Tail {
        id: id.to_string(),
        gtids: gtids.to_string(),
        after: after.to_string(),
        file: name,
        bytes,
        binlogs: logs
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect(),
        saved_at: now(),
    };
    files.write(&format!(".orca-tail-{id}.json"), &tail)?;
    tracing::info!(%id, bytes, "the tail is saved");
    Ok(tail)
}
