//! The web page in a real browser: Debian's Chromium driven by
//! playwright-core (tests/web/ui.mjs) against an operator on the sandbox
//! with a store. The dashboard lists the cluster; the tree shows the
//! primary and both replicas; an illegal drop is refused with the
//! reason; a drag of a replica onto the other relocates it and the tree
//! shows the new shape; the primary's mysqld killed redraws the tree
//! with the new primary without a reload, while the application's
//! acknowledged writes survive; the history lists the operations with
//! their steps and takes an acknowledgement with a comment. The
//! screenshots it takes are the README's (docs/ui-*.png).

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::api::{account, token};
use support::cluster::cluster_yaml;
use support::sandbox::Sandbox;
use support::store::StoreServer;
use support::writer::{Writer, assert_acked};

const BOOT: Duration = Duration::from_secs(90);
const DB: &str = "orca_web";

fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web")
}

/// Node, Chromium and playwright-core, or a clear failure saying what
/// is missing and how `make deps` installs it.
fn browser_parts() {
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "node is not on PATH: the web test drives Chromium from Node.js (make deps installs nodejs)"
    );
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: make deps installs Debian's chromium"
    );
    assert!(
        web_dir()
            .join("node_modules/playwright-core/package.json")
            .exists(),
        "tests/web/node_modules has no playwright-core: make deps runs npm ci in tests/web"
    );
}

/// The browser's run: its steps as the script reports them, answering
/// its waits with `act`.
struct Browser {
    child: std::process::Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Browser {
    fn start(url: &str, token: &str, shots: &Path) -> Browser {
        let mut child = Command::new("node")
            .arg(web_dir().join("ui.mjs"))
            .args([url, token])
            .arg(shots)
            .current_dir(web_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start node");
        let out = child.stdout.take().expect("stdout");
        Browser {
            child,
            lines: BufReader::new(out).lines(),
        }
    }

    /// The next line the script prints: a step, or a wait.
    fn next(&mut self) -> Value {
        let line = self
            .lines
            .next()
            .expect("the browser script ended early")
            .expect("read the script's output");
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            v.get("error").is_none(),
            "the browser script failed: {}",
            v["error"]
        );
        v
    }

    fn step(&mut self, name: &str) -> Value {
        let v = self.next();
        assert_eq!(v["step"], name, "{v}");
        v
    }

    fn wait(&mut self, what: &str) {
        let v = self.next();
        assert_eq!(v["wait"], what, "{v}");
    }

    fn answer(&mut self) {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        writeln!(stdin, "go").expect("answer the script");
    }

    fn finish(mut self) {
        drop(self.child.stdin.take());
        let status = self.child.wait().expect("wait for node");
        assert!(status.success(), "the browser script exited with {status}");
    }
}

fn pods(nodes: &Value) -> Vec<(String, String, Option<String>)> {
    let mut v: Vec<_> = nodes
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            (
                n["pod"].as_str().unwrap_or_default().to_string(),
                n["role"].as_str().unwrap_or_default().to_string(),
                n["parent"].as_str().map(str::to_string),
            )
        })
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn the_web_page_draws_the_topology_live_and_acts_on_it() {
    browser_parts();
    let store = StoreServer::start().await;
    let mut sb = Sandbox::cluster(&["--no-operator", "--restart-delay", "20s"]).await;
    sb.wait_crds_or_install().await;
    sb.start_operator_with_store("orca-a", &store, DB);
    sb.kubectl().apply(&cluster_yaml("db", 3, true));
    let primary = sb.wait_healthy("db", BOOT).await;
    sb.kubectl()
        .apply(&account("web", &["get", "list", "update"], &[]));
    let web = token(&sb, "web");
    let url = sb.operator_api("orca-a").await;

    // Screenshots go to docs/ (the README shows them).
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    let mut b = Browser::start(&url, &web, &shots);

    let dash = b.step("dashboard");
    let text = dash["text"].as_str().unwrap();
    assert!(text.contains("db") && text.contains("Healthy"), "{dash}");
    assert!(
        text.contains(&primary),
        "the card names the primary: {dash}"
    );

    let tree = b.step("tree");
    let shape = pods(&tree["nodes"]);
    assert_eq!(shape.len(), 3, "{tree}");
    let replicas: Vec<String> = ["db-0", "db-1", "db-2"]
        .into_iter()
        .filter(|p| *p != primary)
        .map(str::to_string)
        .collect();
    for (pod, role, parent) in &shape {
        if *pod == primary {
            assert_eq!((role.as_str(), parent), ("primary", &None), "{tree}");
        } else {
            assert_eq!(parent.as_deref(), Some(primary.as_str()), "{tree}");
        }
    }
    let primary_box = tree["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["pod"] == primary.as_str())
        .unwrap();
    let boxed = primary_box["text"].as_str().unwrap();
    for part in ["writable", "GTID", "Running", "restarts", "10.11"] {
        assert!(
            boxed.contains(part),
            "{part} missing in the primary's box: {boxed}"
        );
    }

    let dialog = b.step("dialog");
    let text = dialog["text"].as_str().unwrap();
    for op in [
        "relocate",
        "move-up",
        "set-read-only",
        "begin-downtime",
        "stop-replication",
    ] {
        assert!(text.contains(op), "{op} missing in the dialog: {text}");
    }

    let refused = b.step("illegal-drop");
    let notice = refused["notice"].as_str().unwrap();
    assert!(notice.contains("refused"), "{refused}");
    assert!(
        notice.len() > format!("Relocating {primary} below {} is refused: ", replicas[0]).len(),
        "the reason is shown: {notice}"
    );
    assert_eq!(pods(&refused["nodes"]), shape, "nothing moved");
    assert_eq!(sb.primary("db").await, primary);

    let plan = b.step("plan");
    let text = plan["text"].as_str().unwrap();
    assert!(text.contains("Confirm: relocate"), "{plan}");
    assert!(
        text.contains("point of no return"),
        "the plan is shown: {plan}"
    );
    let relocated = b.step("relocated");
    let (moved, onto) = (&replicas[0], &replicas[1]);
    let now = pods(&relocated["nodes"]);
    assert!(
        now.iter()
            .any(|(p, _, parent)| p == moved && parent.as_deref() == Some(onto.as_str())),
        "{relocated}"
    );
    sb.wait_source("db", moved, onto).await;

    // The kill, under writes as the application account.
    b.wait("kill-primary");
    let pkey = sb.primary_endpoint("db", None).await;
    let app = sb.app("db").await;
    let w = Writer::start_as(pkey.clone(), app.clone()).await;
    w.wait_acked(30).await;
    sb.kubectl()
        .ok(&["annotate", "pod", &primary, "sandbox.orca.dev/fault=crash"]);
    b.answer();
    let failover = b.step("failover");
    assert_eq!(
        failover["mark"], "same page",
        "the page was reloaded: {failover}"
    );
    sb.wait_succeeded("db", "Failover", Duration::from_secs(60))
        .await;
    let acked = w.finish().await;
    let new = sb.primary("db").await;
    assert_ne!(new, primary);
    let drawn = pods(&failover["nodes"]);
    assert!(
        drawn
            .iter()
            .any(|(p, role, _)| *p == new && role == "primary"),
        "the tree shows {new} as the primary: {failover}"
    );
    let new_key = sb.primary_endpoint("db", Some(&pkey)).await;
    assert_acked(&new_key, &app, &acked).await;

    let history = b.step("history");
    let text = history["text"].as_str().unwrap();
    assert!(text.contains("relocate"), "{history}");
    assert!(text.contains("recover-dead-primary"), "{history}");
    assert_eq!(history["acked"], true, "{history}");
    assert!(text.contains("seen in the web test"), "{history}");
    let done = b.step("done");
    assert_eq!(
        done["errors"],
        serde_json::json!([]),
        "errors in the page: {done}"
    );
    b.finish();
    for shot in [
        "ui-clusters.png",
        "ui-cluster.png",
        "ui-instance.png",
        "ui-refused.png",
        "ui-confirm.png",
        "ui-failover.png",
        "ui-history.png",
    ] {
        let len = std::fs::metadata(shots.join(shot))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(len > 10_000, "{shot}: {len} bytes");
    }
    sb.shutdown();
}
