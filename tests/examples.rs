//! Every YAML document under `examples/` is a valid orca object: it reads
//! into the real types, passes their `validate()`, and passes the CRD
//! schema check of the sandbox API server (the very code that serves a
//! create), with no field the API server would drop.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use kube::CustomResourceExt;
use orca::k8s::crd::{FailoverPolicy, MySQLCluster};
use orca_sandbox::apiserver::schema::validate_object;
use serde::Deserialize;
use serde_json::Value;

fn schema_of<K: CustomResourceExt>() -> Value {
    orca::k8s::crd::schema_json(&K::crd()).expect("CRD has a schema")
}

fn example_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("examples/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    files
}

/// Problems of one document, an object of a known kind.
fn check_document(doc: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    if doc.get("apiVersion") != Some(&Value::from("orca.dev/v1alpha1")) {
        problems.push(format!(
            "apiVersion must be orca.dev/v1alpha1, not {}",
            doc.get("apiVersion").unwrap_or(&Value::Null)
        ));
    }
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
    let schema = match kind {
        "MySQLCluster" => {
            match serde_json::from_value::<MySQLCluster>(doc.clone()) {
                Ok(cluster) => problems.extend(cluster.validate().err().unwrap_or_default()),
                Err(e) => problems.push(format!("does not read as a MySQLCluster: {e}")),
            }
            schema_of::<MySQLCluster>()
        }
        "FailoverPolicy" => {
            match serde_json::from_value::<FailoverPolicy>(doc.clone()) {
                Ok(policy) => problems.extend(policy.spec.validate().err().unwrap_or_default()),
                Err(e) => problems.push(format!("does not read as a FailoverPolicy: {e}")),
            }
            schema_of::<FailoverPolicy>()
        }
        other => {
            problems.push(format!("unknown kind {other:?}"));
            return problems;
        }
    };
    let (unknown, errors) = validate_object(&schema, doc);
    problems.extend(errors);
    problems.extend(unknown);
    problems
}

/// kubectl reads YAML 1.1, where a bare `yes`, `no`, `on`, `off`, `y` or
/// `n` is a boolean: the examples must quote such strings.
fn yaml_1_1_booleans(text: &str) -> Vec<String> {
    let ambiguous = ["y", "n", "yes", "no", "on", "off"];
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(|line| {
            let item = line.trim_start().trim_start_matches("- ");
            let value = item.rsplit_once(": ").map_or(item, |(_, v)| v).trim();
            ambiguous
                .contains(&value.to_ascii_lowercase().as_str())
                .then(|| format!("quote {value:?} in line {line:?}: kubectl reads it as a boolean"))
        })
        .collect()
}

#[test]
fn every_example_is_valid() {
    let files = example_files();
    let names: Vec<String> = files
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    for expected in [
        "failoverpolicy-minimal.yaml",
        "failoverpolicy.yaml",
        "mysqlcluster-minimal.yaml",
        "mysqlcluster.yaml",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "examples/{expected} is missing"
        );
    }

    let mut problems = Vec::new();
    let mut documents = 0;
    for path in &files {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let text = std::fs::read_to_string(path).expect("readable example");
        for p in yaml_1_1_booleans(&text) {
            problems.push(format!("examples/{name}: {p}"));
        }
        for (i, de) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
            let doc = match Value::deserialize(de) {
                Ok(Value::Null) => continue,
                Ok(doc) => doc,
                Err(e) => {
                    problems.push(format!("examples/{name} document {i}: not YAML: {e}"));
                    continue;
                }
            };
            documents += 1;
            for p in check_document(&doc) {
                problems.push(format!("examples/{name} document {i}: {p}"));
            }
        }
    }
    assert!(documents >= 4, "only {documents} documents under examples/");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_full_examples_set_every_spec_field() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for (file, schema) in [
        ("mysqlcluster.yaml", schema_of::<MySQLCluster>()),
        ("failoverpolicy.yaml", schema_of::<FailoverPolicy>()),
    ] {
        let text = std::fs::read_to_string(dir.join(file)).expect("example");
        let doc: Value = serde_yaml_ng::from_str(&text).expect("one document");
        let mut declared = BTreeSet::new();
        let mut set = BTreeSet::new();
        fields(&schema["properties"]["spec"], None, "spec", &mut declared);
        fields(
            &schema["properties"]["spec"],
            Some(&doc["spec"]),
            "spec",
            &mut set,
        );
        let missing: Vec<_> = declared.difference(&set).collect();
        assert!(missing.is_empty(), "examples/{file} leaves out {missing:?}");
    }
}

/// The field paths the schema declares (`value` None) or that `value` sets
/// (lists as `[]`, each item counting). All hook lists share one item path,
/// `spec.hooks.*[]`, so that webhook and job hooks may be spread over the
/// events. Kubernetes' own types embedded in the spec are not followed.
fn fields(schema: &Value, value: Option<&Value>, path: &str, out: &mut BTreeSet<String>) {
    const KUBERNETES_TYPES: [&str; 1] = ["spec.resources"];
    if KUBERNETES_TYPES.contains(&path) {
        return;
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, sub) in props {
            let child = format!("{path}.{name}");
            match value {
                None => {
                    out.insert(child.clone());
                    fields(sub, None, &child, out);
                }
                Some(v) => {
                    if let Some(field) = v.get(name) {
                        out.insert(child.clone());
                        fields(sub, Some(field), &child, out);
                    }
                }
            }
        }
    }
    if let Some(items) = schema.get("items") {
        let item_path = if path.starts_with("spec.hooks.") {
            "spec.hooks.*[]".to_string()
        } else {
            format!("{path}[]")
        };
        match value {
            None => fields(items, None, &item_path, out),
            Some(v) => {
                for item in v.as_array().into_iter().flatten() {
                    fields(items, Some(item), &item_path, out);
                }
            }
        }
    }
}

#[test]
fn broken_examples_are_caught() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let text = std::fs::read_to_string(dir.join("mysqlcluster-minimal.yaml")).expect("example");
    let mut doc: Value = serde_yaml_ng::from_str(&text).expect("one document");
    doc["spec"]["replicas"] = Value::from(0);
    doc["spec"]["imagePullPolicy"] = Value::from("Always");
    let problems = check_document(&doc);
    assert!(
        problems.contains(
            &"spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1"
                .to_string()
        ),
        "{problems:#?}"
    );
    assert!(
        problems.contains(&r#"unknown field "spec.imagePullPolicy""#.to_string()),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("spec.replicas: must be at least 1")),
        "{problems:#?}"
    );
}
