//! A webhook receiver for the policy's hooks: a plain HTTP server on a
//! loopback port that records each request's body and when it came, and
//! answers 200 (the first request after a delay, if asked).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the receiver saw: each request's arrival and body, in order.
pub type Calls = Arc<Mutex<Vec<(Instant, String)>>>;

/// Starts the receiver; the first request is answered after `first_delay`,
/// the others at once. Returns its URL (`http://…/hook`) and its calls.
pub async fn start(first_delay: Duration) -> (String, Calls) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the webhook receiver");
    let url = format!(
        "http://{}/hook",
        listener.local_addr().expect("receiver address")
    );
    let calls: Calls = Default::default();
    let c = calls.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let arrived = Instant::now();
            let index = {
                let mut calls = c.lock().unwrap();
                calls.push((arrived, String::new()));
                calls.len() - 1
            };
            let c = c.clone();
            tokio::spawn(async move {
                let Some(body) = read_request(&mut sock).await else {
                    return;
                };
                c.lock().unwrap()[index].1 = body;
                if index == 0 {
                    tokio::time::sleep(first_delay).await;
                }
                let _ = sock
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (url, calls)
}

/// Reads one request; returns its body once `content-length` bytes of it
/// came, or None if the peer closed first.
async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap_or(0))
                })
                .unwrap_or(0);
            if body.len() >= len {
                return Some(body.to_string());
            }
        }
    }
}

/// The bodies received whole so far.
pub fn bodies(calls: &Calls) -> Vec<String> {
    calls
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, b)| !b.is_empty())
        .map(|(_, b)| b.clone())
        .collect()
}
