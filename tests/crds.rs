//! The CRDs committed under `crds/` are exactly what the code generates.

use std::collections::BTreeSet;
use std::path::Path;

use orca::k8s::crd::crd_yaml_files;

const REGENERATE: &str = "run `cargo run -- crds --write crds/` to regenerate them";

#[test]
fn committed_crds_match_the_generated_ones() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let mut problems = Vec::new();
    for (name, generated) in crd_yaml_files() {
        match std::fs::read_to_string(dir.join(name)) {
            Ok(committed) if committed == generated => {}
            Ok(committed) => {
                let line = committed
                    .lines()
                    .zip(generated.lines())
                    .position(|(a, b)| a != b)
                    .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
                problems.push(format!(
                    "crds/{name} differs from the generated CRD (first at line {})",
                    line + 1
                ));
            }
            Err(e) => problems.push(format!("crds/{name} cannot be read: {e}")),
        }
    }
    assert!(
        problems.is_empty(),
        "{}\nThe CRDs changed: {REGENERATE}.",
        problems.join("\n")
    );
}

#[test]
fn crds_holds_no_stale_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let generated: BTreeSet<String> = crd_yaml_files()
        .into_iter()
        .map(|(name, _)| name.to_string())
        .collect();
    let entries = std::fs::read_dir(&dir).expect("crds/ exists");
    let stale: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml") && !generated.contains(name))
        .collect();
    assert!(
        stale.is_empty(),
        "crds/ holds files the code no longer generates: {stale:?}; remove them and {REGENERATE}"
    );
}

/// The generated CRDs pass the structural-schema check the sandbox API
/// server applies to every CRD it is given.
#[test]
fn generated_crds_are_structural() {
    use orca_sandbox::apiserver::structural::{crd_problems, structural_problems};
    for crd in orca::k8s::crd::all_crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let schema = schema_of(&crd);
        assert_eq!(structural_problems(&schema), Vec::<String>::new(), "{name}");
        assert_eq!(crd_problems(&crd), Vec::<String>::new(), "{name}");
    }
}

fn schema_of(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> serde_json::Value {
    orca::k8s::crd::schema_json(crd).expect("the CRD has a schema")
}

/// The sandbox API server refuses what a real one refuses, in its words.
#[test]
fn schema_rejects_what_the_api_server_rejects() {
    use orca::k8s::crd::{FailoverPolicy, MySQLCluster};
    use orca_sandbox::apiserver::schema::validate_object;
    use serde_json::json;

    let schema = schema_of(&<MySQLCluster as kube::CustomResourceExt>::crd());
    let object = json!({
        "apiVersion": "orca.dev/v1alpha1",
        "kind": "MySQLCluster",
        "metadata": {"name": "demo"},
        "spec": {"image": "mariadb:11.4", "replicas": 0, "flavor": "percona",
                 "semiSync": {"enabled": true, "waitCount": 0},
                 "storage": {"size": "ten gigs"}}
    });
    assert_eq!(
        validate_object(&schema, &object).1,
        vec![
            r#"spec.flavor: Unsupported value: "percona": supported values: "mysql", "mariadb""#,
            "spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1",
            "spec.semiSync.waitCount: Invalid value: 0: spec.semiSync.waitCount in body should be greater than or equal to 1",
            r#"spec.storage.size: Invalid value: "ten gigs": spec.storage.size in body should match '^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$'"#,
        ]
    );
    let missing = json!({"apiVersion": "orca.dev/v1alpha1", "kind": "MySQLCluster",
                         "metadata": {"name": "demo"}, "spec": {}});
    assert_eq!(
        validate_object(&schema, &missing).1,
        vec!["spec.image: Required value"]
    );

    let schema = schema_of(&<FailoverPolicy as kube::CustomResourceExt>::crd());
    let object = json!({
        "apiVersion": "orca.dev/v1alpha1",
        "kind": "FailoverPolicy",
        "metadata": {"name": "p"},
        "spec": {"antiFlapPeriod": "1 hour",
                 "promotionRules": [{"pod": "a", "rule": "prefer"}, {"pod": "a", "rule": "always"}],
                 "hooks": {"preFailover": [{"webhook": {"url": "ftp://x"}}]}}
    });
    assert_eq!(
        validate_object(&schema, &object).1,
        vec![
            r#"spec.antiFlapPeriod: Invalid value: "1 hour": spec.antiFlapPeriod in body should match '^([0-9]+(ms|s|m|h))+$'"#,
            r#"spec.hooks.preFailover[0].webhook.url: Invalid value: "ftp://x": spec.hooks.preFailover[0].webhook.url in body should match '^https?://'"#,
            r#"spec.promotionRules[1].rule: Unsupported value: "always": supported values: "prefer", "neutral", "prefer_not", "must_not""#,
            r#"spec.promotionRules[1]: Duplicate value: map[string]interface {}{"pod":"a"}"#,
        ]
    );
}
