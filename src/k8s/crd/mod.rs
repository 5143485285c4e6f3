//! orca's custom resources, `MySQLCluster` and `FailoverPolicy`
//! (group `orca.dev`, version `v1alpha1`), with the names of their
//! conditions, annotations and labels, and tools to check their schemas.

mod checks;
pub mod cluster;
pub mod duration;
pub mod names;
pub mod policy;
pub mod schema;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use cluster::{
    FlavorHint, InstanceRole, InstanceStatus, MySQLCluster, MySQLClusterSpec, MySQLClusterStatus,
    OperationKind, OperationPhase, OperationStatus, SemiSyncSpec, StorageSpec, ThreadState,
};
pub use duration::{DURATION_PATTERN, parse_duration};
pub use names::{GROUP, VERSION, annotation, condition, label};
pub use policy::{
    DetectionSpec, FailoverPolicy, FailoverPolicySpec, FailoverPolicyStatus, Hook, HookEvent,
    HooksSpec, JobHook, PodPromotionRule, PromotionRule, WebhookHook,
};

/// Errors of the custom resource layer.
#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    #[error("invalid duration {input:?}: {reason} (examples: 30s, 1h30m, 500ms)")]
    InvalidDuration { input: String, reason: &'static str },

    #[error("cannot serialize CustomResourceDefinition {name}: {source}")]
    Serialize {
        name: String,
        #[source]
        source: serde_yaml_ng::Error,
    },
}

/// The CustomResourceDefinitions of orca, `MySQLCluster` first.
pub fn all_crds() -> Vec<CustomResourceDefinition> {
    vec![MySQLCluster::crd(), FailoverPolicy::crd()]
}

/// The OpenAPI v3 schema of a CRD's first version as JSON (what an API
/// server validates objects against), if it has one.
pub fn schema_json(crd: &CustomResourceDefinition) -> Option<serde_json::Value> {
    let schema = crd.spec.versions.first()?.schema.as_ref()?;
    serde_json::to_value(schema.open_api_v3_schema.as_ref()?).ok()
}

/// One CRD as YAML, as written to `crds/`.
pub fn crd_yaml(crd: &CustomResourceDefinition) -> Result<String, CrdError> {
    serde_yaml_ng::to_string(crd).map_err(|source| CrdError::Serialize {
        name: crd.metadata.name.clone().unwrap_or_default(),
        source,
    })
}

/// Every CRD as one multi-document YAML stream (`---` before each
/// document), in the order of [`all_crds`]. The output is deterministic.
pub fn crds_yaml() -> Result<String, CrdError> {
    let mut out = String::new();
    for crd in all_crds() {
        out.push_str("---\n");
        out.push_str(&crd_yaml(&crd)?);
    }
    Ok(out)
}

/// File names under `crds/` to the YAML each holds, in the order of
/// [`all_crds`]. `orca crds --write crds/` writes them; a test checks that
/// the committed files match.
///
/// A CRD that cannot be serialized (which the tests rule out) yields a file
/// holding the error, so that a comparison with it fails loudly.
pub fn crd_yaml_files() -> Vec<(&'static str, String)> {
    [
        ("mysqlcluster.yaml", MySQLCluster::crd()),
        ("failoverpolicy.yaml", FailoverPolicy::crd()),
    ]
    .into_iter()
    .map(|(file, crd)| {
        let yaml = crd_yaml(&crd).unwrap_or_else(|e| format!("# error: {e}\n"));
        (file, yaml)
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn schema_of(crd: &CustomResourceDefinition) -> Value {
        schema_json(crd).expect("schema")
    }

    #[test]
    fn crd_names_and_shape() {
        let crds = all_crds();
        let names: Vec<_> = crds.iter().map(|c| c.metadata.name.clone()).collect();
        assert_eq!(
            names,
            vec![
                Some("mysqlclusters.orca.dev".to_string()),
                Some("failoverpolicies.orca.dev".to_string())
            ]
        );
        for crd in &crds {
            assert_eq!(crd.spec.group, GROUP);
            assert_eq!(crd.spec.scope, "Namespaced");
            assert_eq!(crd.spec.versions.len(), 1);
            let v = &crd.spec.versions[0];
            assert_eq!(v.name, VERSION);
            assert!(v.served && v.storage);
            assert!(
                v.subresources
                    .as_ref()
                    .and_then(|s| s.status.as_ref())
                    .is_some()
            );
        }
        assert_eq!(
            crds[0].spec.names.short_names,
            Some(vec!["mysql".to_string()])
        );
        assert_eq!(crds[1].spec.names.short_names, Some(vec!["fp".to_string()]));
        let columns: Vec<(String, String, String)> = crds[0].spec.versions[0]
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| (c.name.clone(), c.type_.clone(), c.json_path.clone()))
            .collect();
        let expected = [
            ("Primary", "string", ".status.primary"),
            ("Ready", "integer", ".status.readyReplicas"),
            (
                "Healthy",
                "string",
                ".status.conditions[?(@.type==\"Healthy\")].status",
            ),
            ("Age", "date", ".metadata.creationTimestamp"),
        ];
        let expected: Vec<(String, String, String)> = expected
            .iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .collect();
        assert_eq!(columns, expected);
    }

    #[test]
    fn yaml_is_deterministic_and_multi_document() {
        let a = crds_yaml().expect("yaml");
        let b = crds_yaml().expect("yaml");
        assert_eq!(a, b);
        assert!(a.starts_with("---\n"));
        assert_eq!(a.matches("\n---\n").count() + 1, 2);
        let docs: Vec<CustomResourceDefinition> = serde_yaml_ng::Deserializer::from_str(&a)
            .map(|d| serde::Deserialize::deserialize(d).expect("crd"))
            .collect();
        assert_eq!(docs, all_crds());
        let files = crd_yaml_files();
        let names: Vec<_> = files.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, vec!["mysqlcluster.yaml", "failoverpolicy.yaml"]);
        for (_, yaml) in &files {
            assert!(!yaml.starts_with("# error"), "{yaml}");
            assert!(a.contains(yaml.as_str()));
        }
    }

    /// kubectl reads YAML 1.1, where a bare `yes`, `no`, `on`, `off`, `y`
    /// or `n` is a boolean: such strings must be quoted in what we emit.
    #[test]
    fn yaml_has_no_scalars_that_yaml_1_1_reads_as_booleans() {
        let yaml = crds_yaml().expect("yaml");
        let ambiguous = ["y", "n", "yes", "no", "on", "off"];
        for line in yaml.lines() {
            let value = line
                .trim_start()
                .trim_start_matches("- ")
                .rsplit_once(": ")
                .map_or(line.trim_start().trim_start_matches("- "), |(_, v)| v);
            assert!(
                !ambiguous.contains(&value.to_ascii_lowercase().as_str()),
                "ambiguous YAML scalar in line {line:?}"
            );
        }
    }

    /// The defaults in the schema (applied by the API server) are the
    /// defaults serde applies when orca reads an object without them.
    #[test]
    fn schema_defaults_match_serde_defaults() {
        let cluster: MySQLClusterSpec =
            serde_json::from_value(json!({"image": "mariadb:11.4"})).expect("spec");
        assert_eq!(cluster.replicas, 3);
        assert_eq!(cluster.storage.size.0, "1Gi");
        let schema = schema_of(&MySQLCluster::crd());
        let spec = &schema["properties"]["spec"]["properties"];
        assert_eq!(spec["replicas"]["default"], json!(3));
        assert_eq!(spec["storage"]["default"], json!({"size": "1Gi"}));
        let semi: SemiSyncSpec = serde_json::from_value(json!({})).expect("semi");
        assert_eq!(semi, SemiSyncSpec::default());
        assert_eq!(
            spec["semiSync"]["properties"]["waitCount"]["default"],
            json!(1)
        );

        let policy: FailoverPolicySpec = serde_json::from_value(json!({})).expect("policy");
        assert_eq!(policy, FailoverPolicySpec::default());
        let schema = schema_of(&FailoverPolicy::crd());
        let spec = &schema["properties"]["spec"]["properties"];
        assert_eq!(spec["autoFailover"]["default"], json!(true));
        assert_eq!(spec["antiFlapPeriod"]["default"], json!("1h"));
        assert_eq!(spec["maxCandidateLag"]["default"], json!("10s"));
        assert_eq!(spec["relayLogApplyTimeout"]["default"], json!("30s"));
        assert_eq!(
            spec["detection"]["default"],
            json!({"probeInterval": "1s", "failureThreshold": 1})
        );
    }

    #[test]
    fn hooks_carry_a_cel_rule_for_exactly_one_kind() {
        let schema = schema_of(&FailoverPolicy::crd());
        for event in HookEvent::ALL {
            let hook = &schema["properties"]["spec"]["properties"]["hooks"]["properties"]
                [event.name()]["items"];
            assert_eq!(
                hook["x-kubernetes-validations"][0]["rule"],
                json!("has(self.webhook) != has(self.job)"),
                "{event}"
            );
        }
    }
}
