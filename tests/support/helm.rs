//! Real Helm for the tests: its Go library through PyPI's
//! helm-python-sdk (installed by `make deps` in `.venv-test/`), driven by
//! `tests/helm/driver.py`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The chart in the repository.
pub fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/orca")
}

fn python() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-test/bin/python");
    let ok = Command::new(&p)
        .args(["-c", "import helm_python"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "{} cannot import helm_python: run `make deps` (it installs helm-python-sdk there)",
        p.display()
    );
    p
}

/// A driver call's outcome.
pub struct Outcome {
    pub ok: bool,
    pub json: Value,
    pub stderr: String,
}

/// Runs `driver.py args…`.
pub fn helm(args: &[&str]) -> Outcome {
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/helm/driver.py");
    let out = Command::new(python())
        .arg(driver)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running the Helm driver: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    Outcome {
        ok: out.status.success(),
        json: serde_json::from_str(stdout.trim()).unwrap_or(Value::Null),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `helm template` of the chart with `values` into `out`; panics with
/// Helm's message if it fails.
pub fn template(release: &str, namespace: &str, values: &Value, out: &Path) -> String {
    let chart = chart_dir();
    let r = helm(&[
        "template",
        &chart.to_string_lossy(),
        release,
        namespace,
        &values.to_string(),
        &out.to_string_lossy(),
    ]);
    assert!(r.ok, "helm template with {values}: {}", r.stderr);
    std::fs::read_to_string(out).unwrap_or_else(|e| panic!("reading {}: {e}", out.display()))
}

/// `helm template` that must fail: Helm's message.
pub fn template_fails(values: &Value, out: &Path) -> String {
    let chart = chart_dir();
    let r = helm(&[
        "template",
        &chart.to_string_lossy(),
        "orca",
        "orca",
        &values.to_string(),
        &out.to_string_lossy(),
    ]);
    assert!(!r.ok, "helm template with {values} should have failed");
    r.stderr
}

/// install / upgrade of the chart as release `release` in `namespace`.
pub fn release(
    verb: &str,
    release: &str,
    namespace: &str,
    values: &Value,
    kubeconfig: &Path,
) -> Value {
    let chart = chart_dir();
    let r = helm(&[
        verb,
        &chart.to_string_lossy(),
        release,
        namespace,
        &values.to_string(),
        &kubeconfig.to_string_lossy(),
    ]);
    assert!(r.ok, "helm {verb}: {}", r.stderr);
    r.json
}

/// `helm uninstall`.
pub fn uninstall(release: &str, namespace: &str, kubeconfig: &Path) -> Value {
    let r = helm(&[
        "uninstall",
        release,
        namespace,
        &kubeconfig.to_string_lossy(),
    ]);
    assert!(r.ok, "helm uninstall: {}", r.stderr);
    r.json
}
