//! Probes and lifecycle hooks. `tcpSocket` connects; `httpGet` sends a GET
//! (2xx and 3xx succeed); `exec` commands that ask a MySQL server whether
//! it is alive (`mariadb-admin ping`, `mysqladmin ping`, `healthcheck.sh`,
//! a `mariadb`/`mysql` client call) are answered by reading the server's
//! greeting on the pod's address, since the command would otherwise talk
//! to the wrong server; any other command runs on the host with the
//! container's environment. `grpc` probes are not emulated and succeed.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, ExecAction, HTTPGetAction, Probe, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::spawn::{Spawner, Spec};

/// What a probe or hook runs against.
pub struct Target<'a> {
    pub pod_ip: &'a str,
    pub container: &'a Container,
    pub env: &'a [(String, String)],
    pub spawner: &'a Spawner,
    pub cwd: PathBuf,
}

/// The outcome of one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure(String),
}

/// An I/O error in the words of Go's net package, as the kubelet reports
/// probe failures.
fn go_error(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => "connect: connection refused".into(),
        ConnectionReset => "read: connection reset by peer".into(),
        TimedOut => "i/o timeout".into(),
        UnexpectedEof => "EOF".into(),
        HostUnreachable | NetworkUnreachable => "connect: no route to host".into(),
        _ => e.to_string(),
    }
}

fn port_of(port: &IntOrString, c: &Container) -> Option<u16> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(name) => {
            if let Ok(n) = name.parse::<u16>() {
                return Some(n);
            }
            c.ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok())
        }
    }
}

async fn tcp(t: &Target<'_>, a: &TCPSocketAction, timeout: Duration) -> Outcome {
    let Some(port) = port_of(&a.port, t.container) else {
        return Outcome::Failure(format!("unknown port {:?}", a.port));
    };
    let host = a.host.clone().unwrap_or_else(|| t.pod_ip.to_string());
    let addr = format!("{host}:{port}");
    match tokio::time::timeout(timeout, TcpStream::connect(&addr)).await {
        Ok(Ok(_)) => Outcome::Success,
        Ok(Err(e)) => Outcome::Failure(format!("dial tcp {addr}: {}", go_error(&e))),
        Err(_) => Outcome::Failure(format!("dial tcp {addr}: i/o timeout")),
    }
}

async fn http(t: &Target<'_>, a: &HTTPGetAction, timeout: Duration) -> Outcome {
    let Some(port) = port_of(&a.port, t.container) else {
        return Outcome::Failure(format!("unknown port {:?}", a.port));
    };
    if a.scheme.as_deref() == Some("HTTPS") {
        return Outcome::Failure("HTTPS probes are not emulated".into());
    }
    let host = a.host.clone().unwrap_or_else(|| t.pod_ip.to_string());
    let path = a.path.clone().unwrap_or_else(|| "/".into());
    let url = format!("http://{host}:{port}{path}");
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n"
    );
    for h in a.http_headers.iter().flatten() {
        req.push_str(&format!("{}: {}\r\n", h.name, h.value));
    }
    req.push_str("\r\n");
    let attempt = async {
        let mut s = TcpStream::connect(format!("{host}:{port}")).await?;
        s.write_all(req.as_bytes()).await?;
        let mut buf = [0u8; 64];
        let mut n = 0;
        while n < buf.len() {
            let got = s.read(&mut buf[n..]).await?;
            if got == 0 {
                break;
            }
            n += got;
            if buf[..n].contains(&b'\n') {
                break;
            }
        }
        Ok::<String, std::io::Error>(String::from_utf8_lossy(&buf[..n]).into_owned())
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(line)) => {
            let code = line
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse::<u16>().ok())
                .unwrap_or(0);
            if (200..400).contains(&code) {
                Outcome::Success
            } else {
                Outcome::Failure(format!("HTTP probe failed with statuscode: {code}"))
            }
        }
        Ok(Err(e)) => Outcome::Failure(format!(
            "Get \"{url}\": dial tcp {host}:{port}: {}",
            go_error(&e)
        )),
        Err(_) => Outcome::Failure(format!(
            "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        )),
    }
}

/// Whether an exec command asks a MySQL server if it is alive.
pub fn is_mysql_ping(command: &[String]) -> bool {
    let joined = command.join(" ");
    if joined.contains("healthcheck.sh") {
        return true;
    }
    if (joined.contains("mariadb-admin") || joined.contains("mysqladmin"))
        && joined.contains("ping")
    {
        return true;
    }
    // a client call (`mariadb -e 'SELECT 1'`), directly or through a shell
    let words: Vec<&str> = joined
        .split(|c: char| {
            c.is_whitespace() || c == ';' || c == '&' || c == '|' || c == '\'' || c == '"'
        })
        .filter(|w| !w.is_empty())
        .collect();
    words
        .iter()
        .any(|w| matches!(w.rsplit('/').next(), Some("mariadb" | "mysql")))
}

/// The port a ping command names (`-P N`, `--port=N`), else 3306.
fn ping_port(command: &[String]) -> u16 {
    let joined = command.join(" ");
    let words: Vec<&str> = joined.split_whitespace().collect();
    for (i, w) in words.iter().enumerate() {
        if let Some(p) = w.strip_prefix("--port=").and_then(|p| p.parse().ok()) {
            return p;
        }
        if *w == "-P"
            && let Some(p) = words.get(i + 1).and_then(|p| p.parse().ok())
        {
            return p;
        }
        if let Some(p) = w.strip_prefix("-P").and_then(|p| p.parse().ok()) {
            return p;
        }
    }
    3306
}

/// Connects and reads the server's first packet (the greeting, or an error
/// packet from a server that refuses the host): the server is alive.
pub async fn mysql_alive(ip: &str, port: u16, timeout: Duration) -> Outcome {
    let addr = format!("{ip}:{port}");
    let attempt = async {
        let mut s = TcpStream::connect(&addr).await?;
        let mut header = [0u8; 4];
        s.read_exact(&mut header).await?;
        let len =
            usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
        let mut first = [0u8; 1];
        if len > 0 {
            s.read_exact(&mut first).await?;
        }
        Ok::<u8, std::io::Error>(first[0])
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(10)) | Ok(Ok(0xff)) => Outcome::Success,
        Ok(Ok(other)) => Outcome::Failure(format!("unexpected greeting from {addr}: {other:#x}")),
        Ok(Err(e)) => Outcome::Failure(format!(
            "mariadb-admin: connect to server at '{ip}' failed: {}",
            go_error(&e)
        )),
        Err(_) => Outcome::Failure(format!(
            "command timed out: no answer from the server at {addr}"
        )),
    }
}

/// Runs a command on the host with the container's environment; exit 0
/// succeeds. The whole process group is killed at the timeout.
pub async fn run_command(t: &Target<'_>, command: &[String], timeout: Duration) -> Outcome {
    let Some(program) = command.first() else {
        return Outcome::Failure("empty command".into());
    };
    let mut env: Vec<(String, String)> = vec![
        (
            "PATH".into(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
        ),
        (
            "HOME".into(),
            std::env::var("HOME").unwrap_or_else(|_| "/root".into()),
        ),
    ];
    env.extend(t.env.iter().cloned());
    let spec = Spec {
        program: PathBuf::from(program),
        args: command[1..].to_vec(),
        env,
        cwd: Some(t.cwd.clone()),
        log: None,
        root: None,
    };
    let mut child = match t.spawner.spawn(spec).await {
        Ok(c) => c,
        Err(e) => return Outcome::Failure(format!("exec {program:?}: {e}")),
    };
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => Outcome::Success,
        Ok(Ok(status)) => Outcome::Failure(format!(
            "command {command:?} exited with {}",
            status.code().unwrap_or(-1)
        )),
        Ok(Err(e)) => Outcome::Failure(format!("waiting for {program:?}: {e}")),
        Err(_) => {
            if let Some(pid) = child.id() {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = child.wait().await;
            Outcome::Failure(format!("command {command:?} timed out"))
        }
    }
}

async fn exec(t: &Target<'_>, a: &ExecAction, timeout: Duration) -> Outcome {
    let command = a.command.clone().unwrap_or_default();
    if is_mysql_ping(&command) {
        return mysql_alive(t.pod_ip, ping_port(&command), timeout).await;
    }
    run_command(t, &command, timeout).await
}

/// Runs one probe once.
pub async fn run(t: &Target<'_>, p: &Probe) -> Outcome {
    let timeout = Duration::from_secs(p.timeout_seconds.unwrap_or(1).max(1) as u64);
    if let Some(a) = &p.tcp_socket {
        tcp(t, a, timeout).await
    } else if let Some(a) = &p.exec {
        exec(t, a, timeout).await
    } else if let Some(a) = &p.http_get {
        http(t, a, timeout).await
    } else {
        Outcome::Success
    }
}

/// Runs a `preStop` (or `postStart`) handler, bounded by `limit`.
pub async fn run_hook(
    t: &Target<'_>,
    h: &k8s_openapi::api::core::v1::LifecycleHandler,
    limit: Duration,
) -> Outcome {
    if let Some(a) = &h.exec {
        // A hook is a command to run, not a health check: it runs as
        // written (with the container's environment), even when it calls
        // the MySQL client.
        run_command(t, &a.command.clone().unwrap_or_default(), limit).await
    } else if let Some(a) = &h.http_get {
        http(t, a, limit).await
    } else if let Some(a) = &h.tcp_socket {
        tcp(t, a, limit).await
    } else if let Some(s) = &h.sleep {
        let d = Duration::from_secs(s.seconds.max(0) as u64).min(limit);
        tokio::time::sleep(d).await;
        Outcome::Success
    } else {
        Outcome::Success
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn pings_are_recognised() {
        assert!(is_mysql_ping(&s(&["mariadb-admin", "ping", "-uroot"])));
        assert!(is_mysql_ping(&s(&[
            "sh",
            "-c",
            "mysqladmin ping -h 127.0.0.1 -p$PW"
        ])));
        assert!(is_mysql_ping(&s(&[
            "healthcheck.sh",
            "--connect",
            "--innodb_initialized"
        ])));
        assert!(is_mysql_ping(&s(&[
            "bash",
            "-c",
            "mariadb -uroot -e 'SELECT 1'"
        ])));
        assert!(!is_mysql_ping(&s(&["sh", "-c", "test -f /tmp/ready"])));
        assert!(!is_mysql_ping(&s(&["cat", "/etc/mysql/conf.d/my.cnf"])));
        assert_eq!(ping_port(&s(&["mysqladmin", "ping", "-P", "3307"])), 3307);
        assert_eq!(ping_port(&s(&["mysqladmin", "ping", "--port=3308"])), 3308);
        assert_eq!(ping_port(&s(&["mysqladmin", "ping"])), 3306);
    }
}
