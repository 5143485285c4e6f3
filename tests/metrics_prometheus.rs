//! Prometheus metrics, with the real tools: the sandbox's operator serves
//! `/metrics` beside its API; `promtool check metrics` passes on what it
//! exposes, and the real Prometheus server, scraping it, answers queries
//! of `orca_cluster_healthy` and `orca_instance_replication_lag_seconds`
//! through its HTTP API.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::api::{ApiClient, api_address};
use support::cluster::cluster_yaml;
use support::eventually;
use support::sandbox::Sandbox;

const BOOT: Duration = Duration::from_secs(90);

fn tool(name: &str) -> String {
    for dir in ["/usr/bin", "/usr/local/bin"] {
        let p = format!("{dir}/{name}");
        if std::path::Path::new(&p).exists() {
            return p;
        }
    }
    panic!("{name} is missing: install Debian's prometheus package (`make deps` does)")
}

/// `promtool check metrics` on `text`: its verdict and what it said.
fn promtool(text: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new(tool("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A free loopback port for Prometheus, which reports no port it chose.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

struct Prometheus {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn prometheus(target: &str) -> Prometheus {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n- job_name: orca\n  static_configs:\n  - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let child = Command::new(tool("prometheus"))
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .expect("start prometheus");
    Prometheus {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_scrapes_the_operator() {
    let sb = Sandbox::cluster(&["--operator-listen", "127.0.0.1:0"]).await;
    sb.kubectl().apply(&cluster_yaml("db", 3, false));
    sb.wait_healthy("db", BOOT).await;
    let base = eventually(
        Duration::from_secs(30),
        "the operator's API address",
        || async { api_address(&sb.log()) },
    )
    .await;
    let api = ApiClient::new(base.clone(), None);
    // The lag of both replicas is known once they replicate.
    let text = eventually(
        Duration::from_secs(60),
        "lag series for two replicas",
        || async {
            let (s, text) = api.get_text("/metrics").await;
            assert_eq!(s, 200);
            (text
                .lines()
                .filter(|l| l.starts_with("orca_instance_replication_lag_seconds{"))
                .count()
                == 2)
                .then_some(text)
        },
    )
    .await;
    assert!(
        text.contains("orca_cluster_healthy{cluster=\"db\",namespace=\"default\"} 1"),
        "{text}"
    );
    assert!(text.contains("orca_leader 1"), "{text}");
    let (ok, said) = promtool(&text);
    assert!(ok && said.trim().is_empty(), "promtool: {said}\n{text}");
    // promtool does fail on a bad exposition.
    let (ok, _) = promtool("orca_bad_total{x=\"1\"} one\n");
    assert!(!ok);

    let target = base.trim_start_matches("http://").to_string();
    let prom = prometheus(&target);
    let http = orca::api::http_client(Duration::from_secs(5)).unwrap();
    let query = |q: &'static str| {
        let http = http.clone();
        // The queries are bare metric names: nothing to escape.
        let url = format!("{}/api/v1/query?query={q}", prom.url);
        async move {
            let r = http.get(url).send().await.ok()?;
            let v: serde_json::Value = r.json().await.ok()?;
            v["data"]["result"].as_array().cloned()
        }
    };
    let healthy = eventually(
        Duration::from_secs(60),
        "orca_cluster_healthy in Prometheus",
        || async {
            query("orca_cluster_healthy")
                .await
                .filter(|r| !r.is_empty())
        },
    )
    .await;
    assert_eq!(healthy[0]["metric"]["cluster"], "db", "{healthy:?}");
    assert_eq!(healthy[0]["value"][1], "1", "{healthy:?}");
    let lag = eventually(
        Duration::from_secs(60),
        "the replicas' lag in Prometheus",
        || async {
            query("orca_instance_replication_lag_seconds")
                .await
                .filter(|r| r.len() == 2)
        },
    )
    .await;
    for series in &lag {
        let v: f64 = series["value"][1].as_str().unwrap().parse().unwrap();
        assert!(v >= 0.0 && v.is_finite(), "{series}");
        assert_eq!(series["metric"]["namespace"], "default");
    }
    let up = query("up").await.unwrap_or_default();
    assert_eq!(up[0]["value"][1], "1", "Prometheus scrapes orca: {up:?}");
}
