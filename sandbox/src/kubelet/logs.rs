//! The kubelet's container-log endpoint, as the API server reaches it to
//! answer `pods/log` (what `kubectl logs` reads): `GET
//! /containerLogs/{namespace}/{pod}/{container}` on the port the Node's
//! `status.daemonEndpoints.kubeletEndpoint.Port` names, on the node's
//! address. Plain HTTP/1.1 on loopback, one request a connection.
//!
//! Each container keeps the output of its current instance in
//! `<pod dir>/<container>.log` and that of the instance before in
//! `<container>.previous.log` (the kubelet moves it at each restart), so
//! `previous=true` reads the one before, as on a real node.
//! `follow=true` streams what the instance writes until it ends.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A container's log as the endpoint knows it.
#[derive(Debug, Clone, Default)]
struct ContainerLog {
    /// Counts the container's instances: a follower of one instance stops
    /// when another starts.
    instance: u64,
    running: bool,
}

#[derive(Debug, Clone)]
struct PodLogs {
    dir: PathBuf,
    containers: HashMap<String, ContainerLog>,
}

/// Where the logs of the node's pods are, updated by the pod workers.
#[derive(Debug, Default)]
pub struct LogRegistry {
    pods: Mutex<HashMap<(String, String), PodLogs>>,
}

/// The current instance's log of a container in a pod directory.
pub fn current_log(dir: &Path, container: &str) -> PathBuf {
    dir.join(format!("{container}.log"))
}

/// The previous instance's log.
pub fn previous_log(dir: &Path, container: &str) -> PathBuf {
    dir.join(format!("{container}.previous.log"))
}

/// Before a container's next instance starts: the log of the one before
/// becomes the previous log.
pub fn rotate(dir: &Path, container: &str) {
    let _ = std::fs::rename(current_log(dir, container), previous_log(dir, container));
}

impl LogRegistry {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<(String, String), PodLogs>) -> T) -> T {
        f(&mut self.pods.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// A container instance started.
    pub fn started(&self, ns: &str, pod: &str, dir: &Path, container: &str) {
        self.with(|pods| {
            let p = pods
                .entry((ns.to_string(), pod.to_string()))
                .or_insert_with(|| PodLogs {
                    dir: dir.to_path_buf(),
                    containers: HashMap::new(),
                });
            let c = p.containers.entry(container.to_string()).or_default();
            c.instance += 1;
            c.running = true;
        });
    }

    /// A container instance ended.
    pub fn ended(&self, ns: &str, pod: &str, container: &str) {
        self.with(|pods| {
            if let Some(c) = pods
                .get_mut(&(ns.to_string(), pod.to_string()))
                .and_then(|p| p.containers.get_mut(container))
            {
                c.running = false;
            }
        });
    }

    /// The pod is gone from the node.
    pub fn forget(&self, ns: &str, pod: &str) {
        self.with(|pods| pods.remove(&(ns.to_string(), pod.to_string())));
    }

    fn lookup(&self, ns: &str, pod: &str, container: &str) -> Option<(PathBuf, ContainerLog)> {
        self.with(|pods| {
            let p = pods.get(&(ns.to_string(), pod.to_string()))?;
            Some((p.dir.clone(), p.containers.get(container)?.clone()))
        })
    }
}

/// What a request asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogQuery {
    pub previous: bool,
    pub follow: bool,
    pub tail_lines: Option<usize>,
    pub limit_bytes: Option<usize>,
}

impl LogQuery {
    /// Reads a query string (`previous=true&tailLines=10`).
    pub fn parse(query: &str) -> Result<LogQuery, String> {
        let mut q = LogQuery::default();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            let flag = || v == "true" || v == "1";
            let number = |what: &str| {
                v.parse::<usize>()
                    .map_err(|_| format!("{what}: invalid value {v:?}"))
            };
            match k.as_ref() {
                "previous" => q.previous = flag(),
                "follow" => q.follow = flag(),
                "tailLines" => q.tail_lines = Some(number("tailLines")?),
                "limitBytes" => q.limit_bytes = Some(number("limitBytes")?),
                _ => {}
            }
        }
        Ok(q)
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &[u8], n: usize) -> &[u8] {
    if n == 0 {
        return &[];
    }
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return &text[i + 1..];
            }
        }
    }
    text
}

/// The endpoint, serving until the kubelet goes.
pub struct LogServer {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LogServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LogServer {
    pub async fn start(addr: &str, registry: Arc<LogRegistry>) -> std::io::Result<LogServer> {
        let listener = TcpListener::bind((addr, 0)).await?;
        let port = listener.local_addr()?.port();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let registry = registry.clone();
                tokio::spawn(async move {
                    let _ = serve(conn, &registry).await;
                });
            }
        });
        Ok(LogServer { port, task })
    }
}

async fn respond(conn: &mut TcpStream, code: u16, reason: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(body.as_bytes()).await
}

async fn serve(mut conn: TcpStream, registry: &LogRegistry) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
            .await
            .map_err(|_| std::io::Error::other("request timed out"))??;
        if n == 0 || head.len() > 8192 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let target = text
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let parts: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(|p| {
            percent_encoding::percent_decode_str(p)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let [kind, ns, pod, container] = parts.as_slice() else {
        return respond(&mut conn, 404, "Not Found", "404 page not found\n").await;
    };
    if kind != "containerLogs" {
        return respond(&mut conn, 404, "Not Found", "404 page not found\n").await;
    }
    let q = match LogQuery::parse(query) {
        Ok(q) => q,
        Err(e) => return respond(&mut conn, 400, "Bad Request", &e).await,
    };
    let Some((dir, log)) = registry.lookup(ns, pod, container) else {
        let msg = format!("container {container:?} in pod {pod:?} is not available");
        return respond(&mut conn, 404, "Not Found", &msg).await;
    };
    let path = if q.previous {
        previous_log(&dir, container)
    } else {
        current_log(&dir, container)
    };
    let content = match tokio::fs::read(&path).await {
        Ok(c) => c,
        Err(_) if q.previous => {
            let msg =
                format!("previous terminated container {container:?} in pod {pod:?} not found");
            return respond(&mut conn, 400, "Bad Request", &msg).await;
        }
        Err(_) => Vec::new(),
    };
    let mut body: &[u8] = &content;
    if let Some(n) = q.tail_lines {
        body = tail(body, n);
    }
    let mut budget = q.limit_bytes.unwrap_or(usize::MAX);
    let first = &body[..body.len().min(budget)];
    budget -= first.len();
    conn.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n",
    )
    .await?;
    conn.write_all(first).await?;
    if !q.follow || q.previous || budget == 0 {
        return Ok(());
    }
    // Follow this instance: what it writes, until it ends (or another
    // starts, or the pod goes), and what it wrote last.
    let mut offset = content.len() as u64;
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(_) => return Ok(()),
    };
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let now = registry.lookup(ns, pod, container);
        let over = !now
            .as_ref()
            .is_some_and(|(_, c)| c.instance == log.instance && c.running);
        file.seek(std::io::SeekFrom::Start(offset)).await?;
        loop {
            let n = file.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            let n = n.min(budget);
            conn.write_all(&chunk[..n]).await?;
            offset += n as u64;
            budget -= n;
            if budget == 0 {
                return Ok(());
            }
        }
        if over {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_takes_the_last_lines() {
        for (text, n, want) in [
            ("a\nb\nc\n", 2, "b\nc\n"),
            ("a\nb\nc\n", 5, "a\nb\nc\n"),
            ("a\nb\nc", 1, "c"),
            ("a\nb\nc\n", 0, ""),
            ("", 3, ""),
        ] {
            assert_eq!(tail(text.as_bytes(), n), want.as_bytes(), "{text:?} {n}");
        }
    }

    #[test]
    fn queries_are_read_as_the_api_server_passes_them() {
        let q = LogQuery::parse("follow=true&tailLines=10&limitBytes=5&timestamps=false").unwrap();
        assert_eq!(
            q,
            LogQuery {
                previous: false,
                follow: true,
                tail_lines: Some(10),
                limit_bytes: Some(5)
            }
        );
        assert!(LogQuery::parse("tailLines=x").is_err());
    }
}
