//! Shared helpers of the integration tests.
#![allow(dead_code)]

use std::process::Command;
use std::time::{Duration, Instant};

use orca::sandbox::mysqld::admin_credentials;
use orca::topology::InstanceKey;

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
