//! Hooks: HTTP webhooks and local commands run at the moments of a
//! failover or takeover. Each gets the same JSON payload (on stdin for a
//! command, as the body of a POST for a webhook) and, for commands, the
//! same facts as `ORCA_*` environment variables. A hook of a veto event
//! (pre-failover, pre-graceful-takeover) that fails — non-zero exit,
//! non-2xx answer, timeout — stops the operation.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::io::AsyncWriteExt;

use crate::plan::{HookEvent, PlanError};
use crate::topology::InstanceKey;

/// A hook run by another layer (the Kubernetes adapter runs Jobs): the
/// engine only knows it succeeds or fails.
pub trait ExternalHook: Send + Sync + std::fmt::Debug {
    fn describe(&self) -> String;
    fn run<'a>(
        &'a self,
        payload: &'a HookPayload,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;
}

/// Where a hook goes.
#[derive(Debug, Clone)]
pub enum HookTarget {
    /// POST the payload to this URL.
    Webhook { url: String, timeout: Duration },
    /// Run this through `sh -c`.
    Command { command: String, timeout: Duration },
    /// Run by another layer.
    External(Arc<dyn ExternalHook>),
}

impl HookTarget {
    fn describe(&self) -> String {
        match self {
            HookTarget::Webhook { url, .. } => format!("webhook {url}"),
            HookTarget::Command { command, .. } => format!("command {command:?}"),
            HookTarget::External(h) => h.describe(),
        }
    }
}

/// What every hook is told.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HookPayload {
    pub event: HookEvent,
    pub cluster: String,
    /// The analysis code that started the operation, or the manual
    /// operation's name.
    pub failure_type: String,
    pub failed: Option<InstanceKey>,
    pub successor: Option<InstanceKey>,
    pub lost_replicas: Vec<InstanceKey>,
    /// Transactions the failed primary had at its last probe that the
    /// successor lacks, in the flavor's GTID notation (possibly lost).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost_transactions: Option<String>,
    pub recovery_id: String,
    /// Why the operation failed (failed-failover hooks only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{event} hook {target} failed: {reason}")]
pub struct HookError {
    pub event: &'static str,
    pub target: String,
    pub reason: String,
}

/// The hooks configured for each event.
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    pub by_event: BTreeMap<&'static str, (HookEvent, Vec<HookTarget>)>,
}

impl Hooks {
    pub fn add(&mut self, event: HookEvent, target: HookTarget) {
        self.by_event
            .entry(event.name())
            .or_insert_with(|| (event, Vec::new()))
            .1
            .push(target);
    }

    pub fn targets(&self, event: HookEvent) -> &[HookTarget] {
        self.by_event
            .get(event.name())
            .map(|(_, t)| t.as_slice())
            .unwrap_or(&[])
    }

    /// Runs every hook of `payload.event`, in order. Returns the failures;
    /// for a veto event the first failure stops the rest.
    pub async fn run(&self, payload: &HookPayload) -> Vec<HookError> {
        let mut errors = Vec::new();
        for target in self.targets(payload.event) {
            if let Err(reason) = run_one(target, payload).await {
                let err = HookError {
                    event: payload.event.name(),
                    target: target.describe(),
                    reason,
                };
                tracing::warn!(cluster = %payload.cluster, recovery = %payload.recovery_id, error = %err, "hook failed");
                errors.push(err);
                if payload.event.may_veto() {
                    break;
                }
            }
        }
        errors
    }
}

/// Parses `EVENT=VALUE` as the command line gives hooks
/// (`preFailover=/usr/local/bin/check`).
pub fn parse_event_value(s: &str) -> Result<(HookEvent, String), String> {
    let (event, value) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected EVENT=VALUE"))?;
    let event: HookEvent = event.parse().map_err(|e: PlanError| e.to_string())?;
    if value.is_empty() {
        return Err(format!("{s:?}: empty hook"));
    }
    Ok((event, value.to_string()))
}

async fn run_one(target: &HookTarget, payload: &HookPayload) -> Result<(), String> {
    let body = serde_json::to_vec(payload).map_err(|e| e.to_string())?;
    match target {
        HookTarget::External(h) => h.run(payload).await,
        HookTarget::Webhook { url, timeout } => {
            let client = crate::api::http_client(*timeout)?;
            let resp = client
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if resp.status().is_success() {
                Ok(())
            } else {
                Err(format!("answered {}", resp.status()))
            }
        }
        HookTarget::Command { command, timeout } => {
            let join = |v: &[InstanceKey]| {
                v.iter()
                    .map(|k| k.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let opt =
                |k: &Option<InstanceKey>| k.as_ref().map(|k| k.to_string()).unwrap_or_default();
            let mut child = tokio::process::Command::new("sh")
                .arg("-c")
                .arg(command)
                .env("ORCA_EVENT", payload.event.name())
                .env("ORCA_CLUSTER", &payload.cluster)
                .env("ORCA_FAILURE_TYPE", &payload.failure_type)
                .env("ORCA_FAILED", opt(&payload.failed))
                .env("ORCA_SUCCESSOR", opt(&payload.successor))
                .env("ORCA_LOST_REPLICAS", join(&payload.lost_replicas))
                .env(
                    "ORCA_LOST_TRANSACTIONS",
                    payload.lost_transactions.clone().unwrap_or_default(),
                )
                .env("ORCA_RECOVERY_ID", &payload.recovery_id)
                .env("ORCA_ERROR", payload.error.clone().unwrap_or_default())
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| format!("cannot start: {e}"))?;
            if let Some(mut stdin) = child.stdin.take() {
                // A hook that does not read its input is fine.
                let _ = stdin.write_all(&body).await;
            }
            match tokio::time::timeout(*timeout, child.wait_with_output()).await {
                Err(_) => Err(format!("no exit within {timeout:?}")),
                Ok(Err(e)) => Err(e.to_string()),
                Ok(Ok(out)) if out.status.success() => Ok(()),
                Ok(Ok(out)) => {
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    let last = stderr.lines().last().unwrap_or_default();
                    Err(format!("exited with {} {last}", out.status))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(event: HookEvent) -> HookPayload {
        HookPayload {
            event,
            cluster: "c1".into(),
            failure_type: "DeadPrimary".into(),
            failed: Some(InstanceKey::new("10.0.0.1", 3306)),
            successor: Some(InstanceKey::new("10.0.0.2", 3306)),
            lost_replicas: vec![InstanceKey::new("10.0.0.3", 3306)],
            lost_transactions: Some("0-1-101..105".into()),
            recovery_id: "r-1".into(),
            error: None,
        }
    }

    fn cmd(c: &str) -> HookTarget {
        HookTarget::Command {
            command: c.into(),
            timeout: Duration::from_secs(5),
        }
    }

    #[tokio::test]
    async fn commands_get_env_and_json_and_can_veto() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let mut hooks = Hooks::default();
        hooks.add(
            HookEvent::PostFailover,
            cmd(&format!(
                "cat > {0}.json; echo \"$ORCA_EVENT $ORCA_FAILED $ORCA_SUCCESSOR $ORCA_LOST_REPLICAS $ORCA_RECOVERY_ID\" > {0}",
                out.display()
            )),
        );
        assert!(
            hooks
                .run(&payload(HookEvent::PostFailover))
                .await
                .is_empty()
        );
        let line = std::fs::read_to_string(&out).unwrap();
        assert_eq!(
            line.trim(),
            "postFailover 10.0.0.1:3306 10.0.0.2:3306 10.0.0.3:3306 r-1"
        );
        let json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(format!("{}.json", out.display())).unwrap(),
        )
        .unwrap();
        assert_eq!(json["failureType"], "DeadPrimary");
        assert_eq!(json["lostReplicas"][0], "10.0.0.3:3306");
        assert_eq!(json["lostTransactions"], "0-1-101..105");

        let mut veto = Hooks::default();
        veto.add(HookEvent::PreFailover, cmd("echo no >&2; exit 3"));
        veto.add(HookEvent::PreFailover, cmd("exit 0"));
        let errs = veto.run(&payload(HookEvent::PreFailover)).await;
        assert_eq!(errs.len(), 1);
        assert!(errs[0].reason.contains("no"), "{:?}", errs[0]);

        let mut slow = Hooks::default();
        slow.add(
            HookEvent::PreFailover,
            HookTarget::Command {
                command: "sleep 10".into(),
                timeout: Duration::from_millis(200),
            },
        );
        let errs = slow.run(&payload(HookEvent::PreFailover)).await;
        assert!(errs[0].reason.contains("no exit"), "{errs:?}");
    }

    /// A one-request HTTP server on loopback answering `status`; returns
    /// its URL and the request body it received.
    async fn one_shot_server(status: u16) -> (String, tokio::task::JoinHandle<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let n = sock.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        let reply = format!(
                            "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        );
                        sock.write_all(reply.as_bytes()).await.unwrap();
                        return body.to_string();
                    }
                }
                if n == 0 {
                    return String::new();
                }
            }
        });
        (url, task)
    }

    #[tokio::test]
    async fn webhooks_get_the_payload_and_can_veto() {
        let (url, body) = one_shot_server(200).await;
        let mut hooks = Hooks::default();
        hooks.add(
            HookEvent::PostFailover,
            HookTarget::Webhook {
                url,
                timeout: Duration::from_secs(5),
            },
        );
        assert!(
            hooks
                .run(&payload(HookEvent::PostFailover))
                .await
                .is_empty()
        );
        let json: serde_json::Value = serde_json::from_str(&body.await.unwrap()).unwrap();
        assert_eq!(json["event"], "postFailover");
        assert_eq!(json["successor"], "10.0.0.2:3306");
        assert_eq!(json["recoveryId"], "r-1");

        let (url, _body) = one_shot_server(503).await;
        let mut veto = Hooks::default();
        veto.add(
            HookEvent::PreFailover,
            HookTarget::Webhook {
                url,
                timeout: Duration::from_secs(5),
            },
        );
        let errs = veto.run(&payload(HookEvent::PreFailover)).await;
        assert_eq!(errs.len(), 1);
        assert!(errs[0].reason.contains("503"), "{errs:?}");

        // Nothing listens: the hook fails within its timeout.
        let mut dead = Hooks::default();
        dead.add(
            HookEvent::PreFailover,
            HookTarget::Webhook {
                url: "http://127.0.0.1:9/x".into(),
                timeout: Duration::from_secs(2),
            },
        );
        assert_eq!(dead.run(&payload(HookEvent::PreFailover)).await.len(), 1);
    }

    #[test]
    fn event_value_parsing() {
        assert_eq!(
            parse_event_value("preFailover=/bin/true").unwrap(),
            (HookEvent::PreFailover, "/bin/true".to_string())
        );
        assert!(parse_event_value("nope=/bin/true").is_err());
        assert!(parse_event_value("preFailover=").is_err());
        assert!(parse_event_value("preFailover").is_err());
    }
}
