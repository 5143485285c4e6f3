//! Fidelity of the sandbox API server for the real `kubectl`: what a user
//! types against a cluster works, and prints, as against a real API server.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::sandbox::Sandbox;
use support::widget::WIDGET_CRD;

fn install_widgets(sb: &Sandbox) {
    let out = sb.kubectl().apply(WIDGET_CRD);
    assert_eq!(
        out,
        "customresourcedefinition.apiextensions.k8s.io/widgets.test.orca.dev created\n"
    );
    let out = sb.kubectl().ok(&[
        "wait",
        "--for=condition=Established",
        "crd/widgets.test.orca.dev",
        "--timeout=10s",
    ]);
    assert_eq!(
        out,
        "customresourcedefinition.apiextensions.k8s.io/widgets.test.orca.dev condition met\n"
    );
}

fn widget(name: &str, replicas: i64) -> String {
    format!(
        "apiVersion: test.orca.dev/v1\nkind: Widget\nmetadata:\n  name: {name}\nspec:\n  replicas: {replicas}\n"
    )
}

/// Columns of a table line.
fn cols(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// Reads lines of a child's stdout on a thread.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            match line {
                Ok(l) => {
                    if tx.send(l).is_err() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    });
    rx
}

fn wait_line(
    rx: &mpsc::Receiver<String>,
    what: impl Fn(&str) -> bool,
    seen: &mut Vec<String>,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => {
                seen.push(l.clone());
                if what(&l) {
                    return l;
                }
            }
            Err(_) => panic!("no such line; saw {seen:?}"),
        }
    }
}

#[test]
fn kubectl_version_and_api_resources() {
    let sb = Sandbox::api_server();
    let v = sb.kubectl().json(&["version"]);
    let server = v["serverVersion"]["gitVersion"]
        .as_str()
        .unwrap_or_default();
    assert!(server.starts_with("v1.33."), "{v}");
    let out = sb.kubectl().ok(&["api-resources"]);
    for (name, short, version, namespaced, kind) in [
        ("statefulsets", "sts", "apps/v1", "true", "StatefulSet"),
        ("leases", "", "coordination.k8s.io/v1", "true", "Lease"),
        (
            "customresourcedefinitions",
            "crd,crds",
            "apiextensions.k8s.io/v1",
            "false",
            "CustomResourceDefinition",
        ),
        (
            "poddisruptionbudgets",
            "pdb",
            "policy/v1",
            "true",
            "PodDisruptionBudget",
        ),
        ("pods", "po", "v1", "true", "Pod"),
    ] {
        let want: Vec<&str> = [name, short, version, namespaced, kind]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
        assert!(
            out.lines().any(|l| cols(l) == want),
            "{want:?} not in:\n{out}"
        );
    }
    install_widgets(&sb);
    let out = sb
        .kubectl()
        .ok(&["api-resources", "--api-group=test.orca.dev"]);
    assert!(
        out.lines()
            .any(|l| cols(l) == ["widgets", "wd", "test.orca.dev/v1", "true", "Widget"]),
        "{out}"
    );
}

#[test]
fn kubectl_applies_a_crd_and_custom_objects() {
    let sb = Sandbox::api_server();
    install_widgets(&sb);
    assert_eq!(
        sb.kubectl().apply(&widget("w1", 3)),
        "widget.test.orca.dev/w1 created\n"
    );
    assert_eq!(
        sb.kubectl().apply(&widget("w1", 3)),
        "widget.test.orca.dev/w1 unchanged\n"
    );
    assert_eq!(
        sb.kubectl().apply(&widget("w1", 4)),
        "widget.test.orca.dev/w1 configured\n"
    );
    assert_eq!(
        sb.kubectl()
            .apply_with(&widget("w2", 2), &["--server-side"]),
        "widget.test.orca.dev/w2 serverside-applied\n"
    );
    assert_eq!(
        sb.kubectl()
            .apply_with(&widget("w2", 5), &["--server-side"]),
        "widget.test.orca.dev/w2 serverside-applied\n"
    );

    // the printer columns, with a condition filter
    sb.kubectl().ok(&[
            "patch",
            "wd",
            "w1",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"conditions":[{"type":"Ready","status":"False"},{"type":"Healthy","status":"True"}]}}"#,
        ],
    );
    let out = sb.kubectl().ok(&["get", "wd"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        cols(lines[0]),
        ["NAME", "REPLICAS", "HEALTHY", "AGE"],
        "{out}"
    );
    assert_eq!(&cols(lines[1])[..3], ["w1", "4", "True"], "{out}");
    // a column without a value is left blank, as kubectl shows a nil cell
    assert_eq!(cols(lines[2]).len(), 3, "{out}");
    assert_eq!(&cols(lines[2])[..2], ["w2", "5"], "{out}");
    let out = sb.kubectl().ok(&["get", "widgets", "-A"]);
    assert_eq!(
        cols(out.lines().next().unwrap_or_default()),
        ["NAMESPACE", "NAME", "REPLICAS", "HEALTHY", "AGE"]
    );

    // yaml and json carry the schema default and the status
    let y = sb.kubectl().ok(&["get", "widget", "w1", "-o", "yaml"]);
    assert!(
        y.contains("flavor: mariadb") && y.contains("replicas: 4") && y.contains("type: Healthy"),
        "{y}"
    );
    let j = sb.kubectl().json(&["get", "wd"]);
    assert_eq!(j["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(j["items"][0]["kind"], "Widget");
    assert_eq!(j["items"][1]["metadata"]["generation"], 2);

    // the category "all" includes the custom resource
    let out = sb.kubectl().ok(&["get", "all"]);
    assert!(out.contains("widget.test.orca.dev/w1"), "{out}");

    // scale subresource of the custom resource
    assert_eq!(
        sb.kubectl().ok(&["scale", "wd", "w1", "--replicas=6"]),
        "widget.test.orca.dev/w1 scaled\n"
    );
    assert_eq!(
        sb.kubectl()
            .ok(&["get", "wd", "w1", "-o", "jsonpath={.spec.replicas}"]),
        "6"
    );

    // deleting waits until the object is gone
    assert_eq!(
        sb.kubectl().ok(&["delete", "wd", "w2"]),
        "widget.test.orca.dev \"w2\" deleted\n"
    );
    let o = sb.kubectl().fails(&["get", "wd", "w2"], None);
    assert_eq!(
        o.stderr,
        "Error from server (NotFound): widgets.test.orca.dev \"w2\" not found\n"
    );
}

#[test]
fn kubectl_prints_the_real_invalid_message() {
    let sb = Sandbox::api_server();
    // the CRD itself, server-side this time; a second apply changes the schema
    assert_eq!(
        sb.kubectl().apply_with(WIDGET_CRD, &["--server-side"]),
        "customresourcedefinition.apiextensions.k8s.io/widgets.test.orca.dev serverside-applied\n"
    );
    sb.kubectl().apply_with(
        &WIDGET_CRD.replace("maximum: 9", "maximum: 8"),
        &["--server-side"],
    );
    sb.kubectl().apply_with(WIDGET_CRD, &["--server-side"]);
    let crd = sb.kubectl().json(&["get", "crd", "widgets.test.orca.dev"]);
    assert_eq!(crd["metadata"]["generation"], 3);
    sb.kubectl().ok(&[
        "wait",
        "--for=condition=Established",
        "crd/widgets.test.orca.dev",
        "--timeout=10s",
    ]);
    let want = "The Widget \"x\" is invalid: spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1\n";
    for extra in [&[][..], &["--server-side"][..]] {
        let mut args = vec!["apply", "-f", "-"];
        args.extend_from_slice(extra);
        let o = sb.kubectl().fails(&args, Some(&widget("x", 0)));
        assert_eq!(o.stderr, want, "apply {extra:?}");
    }
    let o = sb
        .kubectl()
        .run(&["create", "-f", "-"], Some(&widget("x", 0)));
    assert_eq!(o.stderr, want);
    // several errors are listed one per line
    let o = sb.kubectl().run(&["apply", "-f", "-"],
        Some(
            "apiVersion: test.orca.dev/v1\nkind: Widget\nmetadata:\n  name: yy\nspec:\n  replicas: 10\n  flavor: postgres\n",
        ),
    );
    assert_eq!(
        o.stderr,
        "The Widget \"yy\" is invalid: \n* spec.flavor: Unsupported value: \"postgres\": supported values: \"mysql\", \"mariadb\"\n* spec.replicas: Invalid value: 10: spec.replicas in body should be less than or equal to 9\n"
    );
    // an unknown field is refused under kubectl's strict validation
    let o = sb.kubectl().fails(&["apply", "-f", "-"],
        Some(
            "apiVersion: test.orca.dev/v1\nkind: Widget\nmetadata:\n  name: z\nspec:\n  replicas: 1\n  colour: red\n",
        ),
    );
    assert!(
        o.stderr.contains("unknown field \"spec.colour\""),
        "{}",
        o.stderr
    );
}

const CONFIGMAP: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c1\ndata:\n  a: \"1\"\n";

#[test]
fn kubectl_edits_a_configmap_every_way() {
    let sb = Sandbox::api_server();
    assert_eq!(sb.kubectl().apply(CONFIGMAP), "configmap/c1 created\n");
    assert_eq!(
        sb.kubectl().apply(&CONFIGMAP.replace("\"1\"", "\"2\"")),
        "configmap/c1 configured\n"
    );
    assert_eq!(
        sb.kubectl().ok(&["label", "cm", "c1", "tier=db"]),
        "configmap/c1 labeled\n"
    );
    assert_eq!(
        sb.kubectl().ok(&["annotate", "cm", "c1", "note=hello"]),
        "configmap/c1 annotated\n"
    );
    assert_eq!(
        sb.kubectl().ok(&[
            "patch",
            "cm",
            "c1",
            "--type=merge",
            "-p",
            r#"{"data":{"m":"merge"}}"#
        ]),
        "configmap/c1 patched\n"
    );
    sb.kubectl().ok(&[
        "patch",
        "cm",
        "c1",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/data/j","value":"json"}]"#,
    ]);
    sb.kubectl().ok(&[
        "patch",
        "cm",
        "c1",
        "--type=strategic",
        "-p",
        r#"{"data":{"s":"strategic"}}"#,
    ]);
    let out = sb.kubectl().ok(&[
        "patch",
        "cm",
        "c1",
        "--type=merge",
        "-p",
        r#"{"data":{"m":"merge"}}"#,
    ]);
    assert_eq!(out, "configmap/c1 patched (no change)\n");
    let c = sb.kubectl().json(&["get", "cm", "c1"]);
    assert_eq!(
        c["data"],
        serde_json::json!({"a": "2", "m": "merge", "j": "json", "s": "strategic"})
    );
    assert_eq!(c["metadata"]["labels"]["tier"], "db");
    assert_eq!(c["metadata"]["annotations"]["note"], "hello");
    let out = sb.kubectl().ok(&["get", "cm", "c1", "--show-labels"]);
    assert_eq!(
        cols(out.lines().nth(1).unwrap_or_default()).last(),
        Some(&"tier=db")
    );
    assert_eq!(cols(out.lines().nth(1).unwrap_or_default())[1], "4");

    // server-side apply takes the field over from client-side apply
    let ssa = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c2\ndata:\n  x: \"1\"\n";
    assert_eq!(
        sb.kubectl().apply_with(ssa, &["--server-side"]),
        "configmap/c2 serverside-applied\n"
    );
    sb.kubectl().ok(&[
        "patch",
        "cm",
        "c2",
        "--type=merge",
        "-p",
        r#"{"data":{"x":"2"}}"#,
    ]);
    let o = sb
        .kubectl()
        .fails(&["apply", "--server-side", "-f", "-"], Some(ssa));
    assert!(
        o.stderr
            .contains("Apply failed with 1 conflict: conflict with \"kubectl-patch\""),
        "{}",
        o.stderr
    );
    sb.kubectl()
        .apply_with(ssa, &["--server-side", "--force-conflicts"]);
    assert_eq!(
        sb.kubectl()
            .ok(&["get", "cm", "c2", "-o", "jsonpath={.data.x}"]),
        "1"
    );
    let y = sb
        .kubectl()
        .ok(&["get", "cm", "c2", "-o", "yaml", "--show-managed-fields"]);
    assert!(
        y.contains("manager: kubectl") && y.contains("operation: Apply"),
        "{y}"
    );
}

const STATEFULSET: &str = r#"apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  serviceName: db
  replicas: 1
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      containers:
      - name: mariadb
        image: mariadb:11.4
        ports:
        - {name: mysql, containerPort: 3306}
"#;

#[test]
fn kubectl_scales_a_statefulset() {
    let sb = Sandbox::api_server();
    assert_eq!(
        sb.kubectl().apply(STATEFULSET),
        "statefulset.apps/db created\n"
    );
    assert_eq!(
        sb.kubectl().apply(STATEFULSET),
        "statefulset.apps/db unchanged\n"
    );
    assert_eq!(
        sb.kubectl()
            .ok(&["scale", "statefulset", "db", "--replicas=3"]),
        "statefulset.apps/db scaled\n"
    );
    let s = sb.kubectl().json(&["get", "sts", "db"]);
    assert_eq!(s["spec"]["replicas"], 3);
    assert_eq!(s["metadata"]["generation"], 2);
    let out = sb.kubectl().ok(&["get", "sts"]);
    assert_eq!(
        cols(out.lines().next().unwrap_or_default()),
        ["NAME", "READY", "AGE"]
    );
    assert_eq!(
        &cols(out.lines().nth(1).unwrap_or_default())[..2],
        ["db", "0/3"]
    );
    let out = sb.kubectl().ok(&["get", "sts", "-o", "wide"]);
    assert_eq!(
        cols(out.lines().next().unwrap_or_default()),
        ["NAME", "READY", "AGE", "CONTAINERS", "IMAGES"]
    );
    assert!(out.contains("mariadb:11.4"), "{out}");
    // a forbidden spec change is refused as the real server refuses it
    let o = sb.kubectl().fails(
        &["apply", "-f", "-"],
        Some(&STATEFULSET.replace("serviceName: db", "serviceName: other")),
    );
    assert!(
        o.stderr.contains("The StatefulSet \"db\" is invalid: spec: Forbidden: updates to statefulset spec for fields other than"),
        "{}",
        o.stderr
    );
}

#[test]
fn kubectl_delete_lingers_until_the_finalizer_goes() {
    let sb = Sandbox::api_server();
    sb.kubectl().apply_with(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fin\n  finalizers: [test.orca.dev/hold]\n",
        &[],
    );
    assert_eq!(
        sb.kubectl().ok(&["delete", "cm", "fin", "--wait=false"]),
        "configmap \"fin\" deleted\n"
    );
    let ts = sb.kubectl().ok(&[
        "get",
        "cm",
        "fin",
        "-o",
        "jsonpath={.metadata.deletionTimestamp}",
    ]);
    assert!(ts.ends_with('Z'), "deletionTimestamp {ts:?}");
    // a delete that waits returns once the finalizer is removed
    let mut waiting = sb
        .kubectl()
        .command(&["delete", "cm", "fin", "--timeout=20s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl delete");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        waiting.try_wait().expect("try_wait").is_none(),
        "delete returned while the finalizer held"
    );
    sb.kubectl().ok(&[
        "patch",
        "cm",
        "fin",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ]);
    let out = waiting.wait_with_output().expect("delete output");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let o = sb.kubectl().run(&["get", "cm", "fin"], None);
    assert_eq!(
        o.stderr,
        "Error from server (NotFound): configmaps \"fin\" not found\n"
    );
}

#[test]
fn kubectl_get_watch_streams_changes() {
    let sb = Sandbox::api_server();
    sb.kubectl().apply(CONFIGMAP);
    let mut child = sb
        .kubectl()
        .command(&["get", "configmaps", "--watch"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl get --watch");
    let rx = lines_of(&mut child);
    let mut seen = Vec::new();
    wait_line(&rx, |l| cols(l) == ["NAME", "DATA", "AGE"], &mut seen);
    wait_line(&rx, |l| l.starts_with("c1 "), &mut seen);
    sb.kubectl().apply(&CONFIGMAP.replace("c1", "watched"));
    let line = wait_line(&rx, |l| l.starts_with("watched "), &mut seen);
    assert_eq!(cols(&line)[1], "1");
    sb.kubectl().ok(&["label", "cm", "watched", "seen=yes"]);
    wait_line(&rx, |l| l.starts_with("watched "), &mut seen);
    let _ = child.kill();
    let _ = child.wait();
    // header once, then rows only
    assert_eq!(
        seen.iter().filter(|l| l.starts_with("NAME")).count(),
        1,
        "{seen:?}"
    );
}

#[test]
fn kubectl_wait_for_condition_and_jsonpath() {
    let sb = Sandbox::api_server();
    install_widgets(&sb);
    sb.kubectl().apply(&widget("w1", 2));
    let waiting = sb
        .kubectl()
        .command(&["wait", "--for=condition=Ready", "wd/w1", "--timeout=20s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl wait");
    std::thread::sleep(Duration::from_millis(500));
    sb.kubectl().ok(&[
        "patch",
        "wd",
        "w1",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"replicas":2,"conditions":[{"type":"Ready","status":"True"}]}}"#,
    ]);
    let out = waiting.wait_with_output().expect("wait output");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "widget.test.orca.dev/w1 condition met\n"
    );
    let out = sb.kubectl().ok(&[
        "wait",
        "--for=jsonpath={.status.replicas}=2",
        "wd/w1",
        "--timeout=10s",
    ]);
    assert_eq!(out, "widget.test.orca.dev/w1 condition met\n");
    let o = sb.kubectl().fails(
        &["wait", "--for=condition=Healthy", "wd/w1", "--timeout=1s"],
        None,
    );
    assert!(
        o.stderr.contains("timed out waiting for the condition"),
        "{}",
        o.stderr
    );
}

#[test]
fn kubectl_get_events_shows_both_event_apis() {
    let sb = Sandbox::api_server();
    sb.kubectl().apply_with(
        r#"apiVersion: events.k8s.io/v1
kind: Event
metadata:
  name: promoted
eventTime: "2025-01-01T00:00:00.000000Z"
reportingController: orca.dev/operator
reportingInstance: orca-0
action: Failover
reason: Promoted
type: Normal
note: db-1 is the new primary
regarding: {kind: Pod, name: db-1, namespace: default}
---
apiVersion: v1
kind: Event
metadata:
  name: scaled
involvedObject: {kind: StatefulSet, name: db, namespace: default}
reason: Scaled
message: scaled to 3
type: Warning
firstTimestamp: "2025-01-01T00:00:00Z"
lastTimestamp: "2025-01-01T00:00:00Z"
count: 2
source: {component: test}
"#,
        &[],
    );
    let out = sb.kubectl().ok(&["get", "events"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        cols(lines[0]),
        ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        "{out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| cols(l)[1..5] == ["Normal", "Promoted", "pod/db-1", "db-1"]),
        "{out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| cols(l)[1..4] == ["Warning", "Scaled", "statefulset/db"]),
        "{out}"
    );
    let out = sb.kubectl().ok(&["get", "events", "-o", "wide"]);
    assert!(out.contains("orca.dev/operator, orca-0"), "{out}");
    let ev = sb
        .kubectl()
        .json(&["get", "events.events.k8s.io", "scaled"]);
    assert_eq!(ev["note"], "scaled to 3");
    assert_eq!(ev["regarding"]["name"], "db");
    assert_eq!(ev["deprecatedCount"], 2);
}

#[test]
fn kubectl_pods_services_and_endpoints() {
    let sb = Sandbox::api_server();
    sb.kubectl().apply_with(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: db-0
  labels: {app: db}
spec:
  containers:
  - name: mariadb
    image: mariadb:11.4
    ports: [{name: mysql, containerPort: 3306}]
---
apiVersion: v1
kind: Service
metadata:
  name: db
spec:
  selector: {app: db}
  ports: [{name: mysql, port: 3306, targetPort: mysql}]
"#,
        &[],
    );
    let out = sb.kubectl().ok(&["get", "pods"]);
    assert_eq!(
        cols(out.lines().next().unwrap_or_default()),
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    );
    assert_eq!(
        &cols(out.lines().nth(1).unwrap_or_default())[..4],
        ["db-0", "0/1", "Pending", "0"]
    );
    sb.kubectl().ok(&[
            "patch",
            "pod",
            "db-0",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"phase":"Running","podIP":"127.0.0.9","conditions":[{"type":"Ready","status":"True"}],
             "containerStatuses":[{"name":"mariadb","ready":true,"restartCount":0,"image":"mariadb:11.4","imageID":"","state":{"running":{"startedAt":"2025-01-01T00:00:00Z"}}}]}}"#,
        ],
    );
    let out = sb.kubectl().ok(&["get", "pods", "-o", "wide"]);
    let header = cols(out.lines().next().unwrap_or_default());
    assert_eq!(
        header[..7],
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    );
    assert_eq!(
        &cols(out.lines().nth(1).unwrap_or_default())[..4],
        ["db-0", "1/1", "Running", "0"]
    );
    assert!(out.contains("127.0.0.9"), "{out}");
    let out = sb.kubectl().ok(&["get", "svc", "db"]);
    assert_eq!(
        cols(out.lines().next().unwrap_or_default()),
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ]
    );
    let row = cols(out.lines().nth(1).unwrap_or_default());
    assert_eq!(
        (row[1], row[3], row[4]),
        ("ClusterIP", "<none>", "3306/TCP")
    );
    assert!(row[2].starts_with("10.96."), "{out}");
    let out = sb.kubectl().ok(&["get", "endpoints", "db"]);
    assert_eq!(
        &cols(out.lines().nth(1).unwrap_or_default())[..2],
        ["db", "127.0.0.9:3306"],
        "{out}"
    );
    // the pod stops being ready: its address moves to notReadyAddresses
    sb.kubectl().ok(&[
        "patch",
        "pod",
        "db-0",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"conditions":[{"type":"Ready","status":"False"}]}}"#,
    ]);
    let ep = sb.kubectl().json(&["get", "endpoints", "db"]);
    assert_eq!(ep["subsets"][0]["notReadyAddresses"][0]["ip"], "127.0.0.9");
    assert!(ep["subsets"][0].get("addresses").is_none());
}

#[test]
fn kubectl_create_commands_and_auth() {
    // these kubectl commands send protobuf bodies
    let sb = Sandbox::api_server();
    for args in [
        &["create", "namespace", "demo"][..],
        &[
            "create",
            "configmap",
            "settings",
            "-n",
            "demo",
            "--from-literal=mode=async",
        ],
        &[
            "create",
            "secret",
            "generic",
            "creds",
            "-n",
            "demo",
            "--from-literal=user=orca",
            "--from-literal=password=s3cret",
        ],
        &["create", "serviceaccount", "robot", "-n", "demo"],
        &[
            "create",
            "service",
            "clusterip",
            "web",
            "-n",
            "demo",
            "--tcp=80:8080",
        ],
        &[
            "create",
            "role",
            "reader",
            "-n",
            "demo",
            "--verb=get,list",
            "--resource=pods",
        ],
        &[
            "create",
            "rolebinding",
            "reader",
            "-n",
            "demo",
            "--role=reader",
            "--serviceaccount=demo:robot",
        ],
        &[
            "create",
            "clusterrole",
            "node-reader",
            "--verb=get",
            "--resource=nodes",
        ],
        &[
            "create",
            "clusterrolebinding",
            "node-reader",
            "--clusterrole=node-reader",
            "--user=alice",
        ],
        &[
            "create",
            "poddisruptionbudget",
            "db",
            "-n",
            "demo",
            "--selector=app=db",
            "--min-available=1",
        ],
    ] {
        sb.kubectl().ok(args);
    }
    let ns = sb.kubectl().json(&["get", "ns", "demo"]);
    assert_eq!(ns["status"]["phase"], "Active");
    assert_eq!(
        ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "demo"
    );
    assert_eq!(
        sb.kubectl().ok(&[
            "get",
            "cm",
            "settings",
            "-n",
            "demo",
            "-o",
            "jsonpath={.data.mode}"
        ]),
        "async"
    );
    let s = sb.kubectl().json(&["get", "secret", "creds", "-n", "demo"]);
    assert_eq!(s["type"], "Opaque");
    assert_eq!(
        s["data"],
        serde_json::json!({"user": "b3JjYQ==", "password": "czNjcmV0"})
    );
    let svc = sb.kubectl().json(&["get", "svc", "web", "-n", "demo"]);
    assert_eq!(svc["spec"]["ports"][0]["port"], 80);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080);
    assert_eq!(svc["spec"]["selector"]["app"], "web");
    let rb = sb
        .kubectl()
        .json(&["get", "rolebinding", "reader", "-n", "demo"]);
    assert_eq!(rb["subjects"][0]["name"], "robot");
    assert_eq!(rb["roleRef"]["kind"], "Role");
    let pdb = sb.kubectl().json(&["get", "pdb", "db", "-n", "demo"]);
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(pdb["spec"]["selector"]["matchLabels"]["app"], "db");
    let sa = sb.kubectl().ok(&["get", "sa", "-n", "demo"]);
    assert!(sa.contains("default") && sa.contains("robot"), "{sa}");
    assert_eq!(
        sb.kubectl().ok(&["auth", "can-i", "create", "pods"]),
        "yes\n"
    );
    // deleting the namespace takes its contents along
    sb.kubectl()
        .ok(&["delete", "namespace", "demo", "--timeout=20s"]);
    sb.kubectl()
        .fails(&["get", "cm", "settings", "-n", "demo"], None);
}

#[test]
fn kubectl_drain_evicts_through_the_eviction_subresource() {
    let sb = Sandbox::api_server();
    sb.kubectl().apply_with(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: n1\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: p1\nspec:\n  nodeName: n1\n  terminationGracePeriodSeconds: 0\n  containers: [{name: c, image: busybox:1}]\n",
        &[],
    );
    let out = sb
        .kubectl()
        .ok(&["drain", "n1", "--force", "--timeout=20s"]);
    assert!(
        out.contains("pod/p1 evicted") && out.contains("node/n1 drained"),
        "{out}"
    );
    let node = sb.kubectl().json(&["get", "node", "n1"]);
    assert_eq!(node["spec"]["unschedulable"], true);
    sb.kubectl().fails(&["get", "pod", "p1"], None);
    assert_eq!(sb.kubectl().ok(&["uncordon", "n1"]), "node/n1 uncordoned\n");
}
