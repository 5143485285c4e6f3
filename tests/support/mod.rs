//! The integration tests' kit: one sandbox fixture ([`sandbox`]), one
//! `kubectl` helper ([`kubectl`]), one writer that records acknowledged
//! writes and one check that they survived ([`writer`]), a MySQLCluster's
//! state in a sandbox ([`cluster`]), the test CRD ([`widget`]), and below,
//! helpers for local servers and the `orca` binary.
//! Each test binary uses a part of it.
#![allow(dead_code)]

pub mod api;
pub mod cluster;
pub mod helm;
pub mod kubectl;
pub mod proxy;
pub mod sandbox;
pub mod standalone;
pub mod store;
pub mod webhook;
pub mod widget;
pub mod writer;

use std::process::Command;
use std::time::{Duration, Instant};

use orca::topology::InstanceKey;
use orca_sandbox::mysqld::admin_credentials;

/// The `orca-sandbox` binary. Cargo builds it beside `orca` when the
/// whole workspace is tested (`cargo test --workspace`, which `make test`
/// runs); a test that needs it fails with this advice when it is missing.
pub fn sandbox_bin() -> std::path::PathBuf {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_orca")).with_file_name("orca-sandbox");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p orca-sandbox` (or run `make test`)",
        bin.display()
    );
    bin
}

/// Runs the real `orca` binary with the local admin credentials in the
/// environment; returns (exit code, stdout, stderr).
pub fn orca(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_orca"))
        .args(args)
        .env("ORCA_USER", admin_credentials().user)
        .env("ORCA_PASSWORD", admin_credentials().password())
        .output()
        .expect("run orca");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `orca discover --json` from `seed`, parsed.
pub fn discover_json(seed: &InstanceKey) -> serde_json::Value {
    let (code, out, err) = orca(&["discover", "--seed", &seed.to_string(), "--json"]);
    assert_eq!(code, 0, "orca discover failed: {err}\n{out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad JSON ({e}): {out}"))
}

/// `orca discover` (tree) from `seed`.
pub fn discover_tree(seed: &InstanceKey) -> String {
    let (code, out, err) = orca(&["discover", "--seed", &seed.to_string()]);
    assert_eq!(code, 0, "orca discover failed: {err}\n{out}");
    out
}

/// The JSON entry of one instance.
pub fn instance<'a>(report: &'a serde_json::Value, key: &InstanceKey) -> &'a serde_json::Value {
    report["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .find(|i| i["address"] == key.to_string())
        .unwrap_or_else(|| panic!("{key} not in report: {report:#}"))
}

/// The problems listed for one instance.
pub fn problems(report: &serde_json::Value, key: &InstanceKey) -> Vec<String> {
    instance(report, key)["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| p.as_str().expect("problem name").to_string())
        .collect()
}

/// The tree line of one instance.
pub fn line<'a>(tree: &'a str, key: &InstanceKey) -> &'a str {
    let needle = format!("{key} [");
    tree.lines()
        .find(|l| l.contains(&needle))
        .unwrap_or_else(|| panic!("{key} not in tree:\n{tree}"))
}

/// A local primary with two replicas, and their keys.
pub async fn primary_and_two_replicas() -> (orca_sandbox::LocalCluster, [InstanceKey; 3]) {
    let c = orca_sandbox::LocalCluster::start(orca_sandbox::Shape::primary_with_replicas(2))
        .await
        .expect("start a primary with two replicas");
    let keys = [0, 1, 2].map(|i| c.instances[i].key());
    (c, keys)
}

/// Polls `f` until it returns `Some`, at most `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An engine for a local cluster with the default settings, and hooks.
pub fn engine_with(
    c: &orca_sandbox::LocalCluster,
    hooks: orca::engine::hooks::Hooks,
    tune: impl FnOnce(&mut orca::engine::EngineConfig),
) -> orca::engine::ClusterEngine {
    use orca::engine::executor::{Executor, ExecutorConfig};
    let mut config = orca::engine::EngineConfig::new("test");
    tune(&mut config);
    let executor = Executor::new(
        ExecutorConfig {
            admin: admin_credentials(),
            repl: orca_sandbox::mysqld::repl_credentials(),
            app: None,
            timeouts: orca::mysql::conn::Timeouts::default(),
        },
        hooks,
    );
    orca::engine::ClusterEngine::new(config, executor, c.instances.iter().map(|m| m.key()))
}

pub fn engine(c: &orca_sandbox::LocalCluster) -> orca::engine::ClusterEngine {
    engine_with(c, Default::default(), |_| {})
}

/// Runs engine rounds (with the engine's own pacing) until `f` returns
/// `Some`, at most `limit`.
pub async fn rounds_until<T>(
    engine: &mut orca::engine::ClusterEngine,
    limit: Duration,
    what: &str,
    mut f: impl FnMut(&orca::engine::RoundReport) -> Option<T>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        let report = engine.round().await;
        if let Some(v) = f(&report) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last findings: {:?}",
            report
                .findings
                .iter()
                .map(|f| f.to_string())
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(engine.next_delay()).await;
    }
}

/// Runs engine rounds until one recovers something, at most `limit`: its
/// record.
pub async fn next_recovery(
    engine: &mut orca::engine::ClusterEngine,
    limit: Duration,
) -> orca::engine::executor::OperationRecord {
    rounds_until(engine, limit, "a recovery", |r| r.recovery.clone()).await
}

/// Runs engine rounds (with the engine's own pacing) for `span`.
pub async fn rounds_for(engine: &mut orca::engine::ClusterEngine, span: Duration) {
    let until = Instant::now() + span;
    while Instant::now() < until {
        engine.round().await;
        tokio::time::sleep(engine.next_delay()).await;
    }
}

/// A probe of one instance.
pub async fn snapshot(key: &InstanceKey) -> orca::topology::Snapshot {
    orca::mysql::probe::probe(
        key,
        &admin_credentials(),
        orca::mysql::conn::Timeouts::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("probe {key}: {e}"))
}

/// Waits until `replica` replicates from `source` with both threads running.
pub async fn wait_replicating_from(replica: &InstanceKey, source: &InstanceKey) {
    eventually(
        Duration::from_secs(20),
        &format!("{replica} replicating from {source}"),
        || async {
            let s = snapshot(replica).await;
            s.replica
                .as_ref()
                .filter(|r| &r.source == source && r.is_replicating())
                .map(|_| ())
        },
    )
    .await;
}

/// Names and sizes of every file under a directory.
pub fn listing(dir: &std::path::Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let e = e.expect("entry");
            let meta = e.metadata().expect("metadata");
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                out.push((e.path().display().to_string(), meta.len()));
            }
        }
    }
    out.sort();
    out
}

/// A primary with `replicas` semi-sync replicas on loopback.
pub async fn semi_sync_cluster(replicas: usize) -> orca_sandbox::LocalCluster {
    orca_sandbox::LocalCluster::start_with(
        orca_sandbox::Shape::primary_with_replicas(replicas),
        |_, o: orca_sandbox::MysqldOptions| o.with_semi_sync(),
    )
    .await
    .expect("start a semi-sync cluster")
}
