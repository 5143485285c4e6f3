//! The HTTP API against its own OpenAPI document, checked by the real
//! `schemathesis` CLI: on a real topology of `mariadbd` with a real store,
//! `orca standalone --listen` with a token is fuzzed from
//! `/api/v1/openapi.json` (examples, the coverage phase and fuzzing, with
//! a fixed seed and a bounded number of cases), and no answer may be a
//! 5xx, a status or content type the document does not list, a body that
//! breaks its schema, or headers that break theirs.
//!
//! Operations with `dryRun: false` are real: this topology is thrown away
//! after the test. `make deps` installs schemathesis (pinned) in
//! `.venv-test/` at the repository's root.

mod support;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use support::api::{TOKEN, serve_standalone};
use support::primary_and_two_replicas;
use support::store::StoreServer;

/// The version `make deps` installs (SCHEMATHESIS_VERSION in the Makefile).
const SCHEMATHESIS_VERSION: &str = "4.32.5";

/// The checks run on every answer.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_schema_conformance,response_headers_conformance";

/// A guard against a hung run, far above what it takes; not a
/// measurement.
const RUN_LIMIT: Duration = Duration::from_secs(170);

/// The `st` binary of `.venv-test/`, at the pinned version.
fn schemathesis() -> PathBuf {
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-test/bin");
    let st = venv.join("st");
    assert!(
        st.exists(),
        "{} is missing: run `make deps` (it installs schemathesis {SCHEMATHESIS_VERSION} in .venv-test/)",
        st.display()
    );
    let out = std::process::Command::new(&st)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; run `make deps`", st.display()));
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(
        version.contains(SCHEMATHESIS_VERSION),
        "{} is {version:?}, not schemathesis {SCHEMATHESIS_VERSION}: run `make deps`",
        st.display()
    );
    st
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_conforms_to_its_openapi_document() {
    let st = schemathesis();
    let (_c, [p, r1, r2]) = primary_and_two_replicas().await;
    let store = StoreServer::start().await;
    let served = serve_standalone(
        "shop",
        &[p.clone(), r1.clone(), r2.clone()],
        Some((&store, "orca_schemathesis")),
    )
    .await;
    let api = &served.api;
    let base = api.base.clone();
    let dir = tempfile::tempdir().expect("tempdir");

    // Most cases name the cluster and its instances, so that they reach
    // past the 404s; the others are schemathesis' own.
    let keys = [&p, &r1, &r2].map(|k| format!("\"{k}\"")).join(", ");
    let config = dir.path().join("schemathesis.toml");
    std::fs::write(
        &config,
        format!(
            r#"[dictionaries]
namespaces = {{ values = ["standalone"] }}
names = {{ values = ["shop"] }}
instances = {{ values = [{keys}, "127.0.0.1:1"] }}

[parameters]
"path.namespace" = {{ dictionary = "namespaces", probability = 0.8 }}
"path.name" = {{ dictionary = "names", probability = 0.8 }}
"path.instance" = {{ dictionary = "instances", probability = 0.8 }}
"body.target" = {{ dictionary = "instances", probability = 0.8 }}
"body.destination" = {{ dictionary = "instances", probability = 0.8 }}

# Operations on this cluster only, so that they are carried out.
[[operations]]
include-operation-id = "operate"
parameters = {{ "path.namespace" = "standalone", "path.name" = "shop" }}
"#
        ),
    )
    .expect("write the schemathesis config");

    let mut run = tokio::process::Command::new(&st);
    run.arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(format!("{base}/api/v1/openapi.json"))
        .args(["--checks", CHECKS])
        .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", "50"])
        .args(["--seed", "20240601"])
        .args(["--request-timeout", "60"])
        .args(["--workers", "1"])
        .args(["--generation-database", "none"])
        .arg("--no-color")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(RUN_LIMIT, run.output())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "schemathesis did not end within {} s (killed)",
                RUN_LIMIT.as_secs()
            )
        })
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", st.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "schemathesis found answers that break the document ({}):\n{text}",
        out.status
    );
    // It ran cases on every operation, and the API still answers.
    assert!(text.contains("passed"), "no case ran:\n{text}");
    assert_eq!(api.anonymous().get("/healthz").await.0, 200);
    eprintln!("{text}");
    drop(served);
}
