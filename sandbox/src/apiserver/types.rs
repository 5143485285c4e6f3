//! The resource types the server serves: the built-in kinds orca uses and
//! every served version of every established CustomResourceDefinition.
//! Discovery documents are written from here.

use std::sync::Arc;

use serde_json::{Value, json};

/// When `metadata.generation` moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    /// The kind has no generation (ConfigMap, Pod, ...).
    None,
    /// Bumped when `spec` changes (built-in kinds with a status subresource).
    Spec,
    /// Bumped on any change outside `metadata` (custom resources; their
    /// status is reset from the old object first when a status
    /// subresource exists).
    NonMetadata,
}

/// How a name is validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 subdomain (most kinds).
    Subdomain,
    /// RFC 1123 label (namespaces, services).
    Label,
    /// A path segment (RBAC kinds, which allow `:`).
    PathSegment,
}

/// One printer column of a custom resource.
#[derive(Debug, Clone, PartialEq)]
pub struct PrinterColumn {
    pub name: String,
    pub ty: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    pub json_path: String,
}

/// The scale subresource's paths.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleSpec {
    pub spec_replicas: String,
    pub status_replicas: String,
    pub label_selector: Option<String>,
}

/// One served resource at one group version.
#[derive(Debug, Clone)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Has a `status` subresource.
    pub status: bool,
    pub scale: Option<ScaleSpec>,
    /// Where objects live; shared by the versions (and, for events, the
    /// groups) that serve the same objects.
    pub storage: String,
    /// The apiVersion objects are stored with.
    pub storage_api_version: String,
    pub generation: Generation,
    pub name_rule: NameRule,
    /// Custom resource: its version's schema and printer columns.
    pub crd: Option<Arc<CrdVersion>>,
    /// Field selector keys beyond `metadata.name` and `metadata.namespace`.
    pub field_selectors: Vec<String>,
    /// PUT of a missing object creates it.
    pub create_on_update: bool,
    /// PUT without a resourceVersion is allowed.
    pub unconditional_update: bool,
    /// Only these verbs (e.g. `create` for reviews); empty = all.
    pub only_verbs: Vec<&'static str>,
    /// Extra subresources listed in discovery: (name, kind, verbs).
    /// (name, group/version of its kind ("" for the resource's own), kind, verbs)
    pub extra_subresources: Vec<(&'static str, &'static str, &'static str, Vec<&'static str>)>,
}

/// What a CustomResourceDefinition says of one of its versions.
#[derive(Debug, Clone)]
pub struct CrdVersion {
    /// The CRD's name (`plural.group`).
    pub crd_name: String,
    pub schema: Option<Value>,
    pub columns: Vec<PrinterColumn>,
    pub deprecated: Option<String>,
}

const ALL_VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

impl ResourceType {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    pub fn verbs(&self) -> Vec<&'static str> {
        if self.only_verbs.is_empty() {
            ALL_VERBS.to_vec()
        } else {
            self.only_verbs.clone()
        }
    }

    pub fn is_custom(&self) -> bool {
        self.crd.is_some()
    }

    /// Keys a field selector may use for this resource.
    pub fn selectable(&self) -> Vec<&str> {
        let mut v = vec!["metadata.name", "metadata.namespace"];
        v.extend(self.field_selectors.iter().map(String::as_str));
        v
    }

    fn entry(&self) -> Value {
        let mut e = json!({
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": self.verbs(),
        });
        if !self.short_names.is_empty() {
            e["shortNames"] = json!(self.short_names);
        }
        if !self.categories.is_empty() {
            e["categories"] = json!(self.categories);
        }
        e
    }

    /// This resource's entries in its group version's APIResourceList.
    pub fn discovery_entries(&self) -> Vec<Value> {
        let mut v = vec![self.entry()];
        if self.status {
            v.push(json!({
                "name": format!("{}/status", self.plural),
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        if self.scale.is_some() {
            v.push(json!({
                "name": format!("{}/scale", self.plural),
                "singularName": "",
                "namespaced": self.namespaced,
                "group": "autoscaling",
                "version": "v1",
                "kind": "Scale",
                "verbs": ["get", "patch", "update"],
            }));
        }
        for (name, gv, kind, verbs) in &self.extra_subresources {
            let mut e = json!({
                "name": format!("{}/{}", self.plural, name),
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": kind,
                "verbs": verbs,
            });
            if let Some((g, ver)) = gv.split_once('/') {
                e["group"] = json!(g);
                e["version"] = json!(ver);
            }
            v.push(e);
        }
        v
    }

    /// This resource in aggregated discovery (apidiscovery.k8s.io/v2).
    pub fn aggregated_entry(&self) -> Value {
        let mut subs = Vec::new();
        if self.status {
            subs.push(json!({
                "subresource": "status",
                "responseKind": {"group": self.group, "version": self.version, "kind": self.kind},
                "verbs": ["get", "patch", "update"],
            }));
        }
        if self.scale.is_some() {
            subs.push(json!({
                "subresource": "scale",
                "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
                "verbs": ["get", "patch", "update"],
            }));
        }
        for (name, gv, kind, verbs) in &self.extra_subresources {
            let (g, ver) = gv
                .split_once('/')
                .unwrap_or((self.group.as_str(), self.version.as_str()));
            subs.push(json!({
                "subresource": name,
                "responseKind": {"group": g, "version": ver, "kind": kind},
                "verbs": verbs,
            }));
        }
        let mut e = json!({
            "resource": self.plural,
            "responseKind": {"group": self.group, "version": self.version, "kind": self.kind},
            "scope": if self.namespaced { "Namespaced" } else { "Cluster" },
            "singularResource": self.singular,
            "verbs": self.verbs(),
        });
        if !self.short_names.is_empty() {
            e["shortNames"] = json!(self.short_names);
        }
        if !self.categories.is_empty() {
            e["categories"] = json!(self.categories);
        }
        if !subs.is_empty() {
            e["subresources"] = Value::Array(subs);
        }
        e
    }
}

struct B {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    categories: &'static [&'static str],
    status: bool,
    generation: Generation,
}

fn builtin(b: B) -> ResourceType {
    let storage = format!(
        "{}/{}",
        if b.group.is_empty() { "core" } else { b.group },
        b.plural
    );
    let api_version = if b.group.is_empty() {
        b.version.to_string()
    } else {
        format!("{}/{}", b.group, b.version)
    };
    ResourceType {
        group: b.group.into(),
        version: b.version.into(),
        plural: b.plural.into(),
        singular: b.kind.to_lowercase(),
        kind: b.kind.into(),
        namespaced: b.namespaced,
        short_names: b.short.iter().map(|s| s.to_string()).collect(),
        categories: b.categories.iter().map(|s| s.to_string()).collect(),
        status: b.status,
        scale: None,
        storage,
        storage_api_version: api_version,
        generation: b.generation,
        name_rule: NameRule::Subdomain,
        crd: None,
        field_selectors: vec![],
        create_on_update: false,
        unconditional_update: true,
        only_verbs: vec![],
        extra_subresources: vec![],
    }
}

/// The built-in kinds, in the order discovery lists them.
pub fn builtin_types() -> Vec<ResourceType> {
    use Generation::{None as G0, Spec};
    let mut v = Vec::new();
    let mut ns = builtin(B {
        group: "",
        version: "v1",
        plural: "namespaces",
        kind: "Namespace",
        namespaced: false,
        short: &["ns"],
        categories: &[],
        status: true,
        generation: G0,
    });
    ns.name_rule = NameRule::Label;
    ns.field_selectors = vec!["status.phase".into()];
    ns.extra_subresources = vec![("finalize", "", "Namespace", vec!["update"])];
    v.push(ns);
    v.push(builtin(B {
        group: "",
        version: "v1",
        plural: "configmaps",
        kind: "ConfigMap",
        namespaced: true,
        short: &["cm"],
        categories: &[],
        status: false,
        generation: G0,
    }));
    let mut ep = builtin(B {
        group: "",
        version: "v1",
        plural: "endpoints",
        kind: "Endpoints",
        namespaced: true,
        short: &["ep"],
        categories: &[],
        status: false,
        generation: G0,
    });
    ep.singular = "endpoints".into();
    ep.create_on_update = true;
    v.push(ep);
    let mut ev = builtin(B {
        group: "",
        version: "v1",
        plural: "events",
        kind: "Event",
        namespaced: true,
        short: &["ev"],
        categories: &[],
        status: false,
        generation: G0,
    });
    ev.create_on_update = true;
    ev.field_selectors = event_fields();
    v.push(ev);
    let mut node = builtin(B {
        group: "",
        version: "v1",
        plural: "nodes",
        kind: "Node",
        namespaced: false,
        short: &["no"],
        categories: &[],
        status: true,
        generation: G0,
    });
    node.field_selectors = vec!["spec.unschedulable".into()];
    v.push(node);
    v.push(builtin(B {
        group: "",
        version: "v1",
        plural: "persistentvolumeclaims",
        kind: "PersistentVolumeClaim",
        namespaced: true,
        short: &["pvc"],
        categories: &[],
        status: true,
        generation: G0,
    }));
    let mut pod = builtin(B {
        group: "",
        version: "v1",
        plural: "pods",
        kind: "Pod",
        namespaced: true,
        short: &["po"],
        categories: &["all"],
        status: true,
        generation: G0,
    });
    pod.field_selectors = [
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    pod.extra_subresources = vec![
        ("binding", "", "Binding", vec!["create"]),
        ("eviction", "policy/v1", "Eviction", vec!["create"]),
        ("log", "", "Pod", vec!["get"]),
    ];
    v.push(pod);
    let mut secret = builtin(B {
        group: "",
        version: "v1",
        plural: "secrets",
        kind: "Secret",
        namespaced: true,
        short: &[],
        categories: &[],
        status: false,
        generation: G0,
    });
    secret.field_selectors = vec!["type".into()];
    v.push(secret);
    let mut sa = builtin(B {
        group: "",
        version: "v1",
        plural: "serviceaccounts",
        kind: "ServiceAccount",
        namespaced: true,
        short: &["sa"],
        categories: &[],
        status: false,
        generation: G0,
    });
    sa.extra_subresources = vec![(
        "token",
        "authentication.k8s.io/v1",
        "TokenRequest",
        vec!["create"],
    )];
    v.push(sa);
    let mut svc = builtin(B {
        group: "",
        version: "v1",
        plural: "services",
        kind: "Service",
        namespaced: true,
        short: &["svc"],
        categories: &["all"],
        status: true,
        generation: G0,
    });
    svc.name_rule = NameRule::Label;
    v.push(svc);

    let mut sts = builtin(B {
        group: "apps",
        version: "v1",
        plural: "statefulsets",
        kind: "StatefulSet",
        namespaced: true,
        short: &["sts"],
        categories: &["all"],
        status: true,
        generation: Spec,
    });
    sts.scale = Some(ScaleSpec {
        spec_replicas: ".spec.replicas".into(),
        status_replicas: ".status.replicas".into(),
        label_selector: None,
    });
    v.push(sts);

    let workloads: [(&str, &str, &'static [&'static str]); 2] = [
        ("deployments", "Deployment", &["deploy"]),
        ("replicasets", "ReplicaSet", &["rs"]),
    ];
    for (plural, kind, short) in workloads {
        let mut d = builtin(B {
            group: "apps",
            version: "v1",
            plural,
            kind,
            namespaced: true,
            short,
            categories: &["all"],
            status: true,
            generation: Spec,
        });
        d.scale = Some(ScaleSpec {
            spec_replicas: ".spec.replicas".into(),
            status_replicas: ".status.replicas".into(),
            label_selector: Some(".status.selector".into()),
        });
        v.push(d);
    }

    v.push(builtin(B {
        group: "apps",
        version: "v1",
        plural: "controllerrevisions",
        kind: "ControllerRevision",
        namespaced: true,
        short: &[],
        categories: &[],
        status: false,
        generation: G0,
    }));

    let mut ev2 = builtin(B {
        group: "events.k8s.io",
        version: "v1",
        plural: "events",
        kind: "Event",
        namespaced: true,
        short: &["ev"],
        categories: &[],
        status: false,
        generation: G0,
    });
    ev2.storage = "core/events".into();
    ev2.storage_api_version = "v1".into();
    ev2.create_on_update = true;
    v.push(ev2);

    let mut ssar = builtin(B {
        group: "authorization.k8s.io",
        version: "v1",
        plural: "selfsubjectaccessreviews",
        kind: "SelfSubjectAccessReview",
        namespaced: false,
        short: &[],
        categories: &[],
        status: false,
        generation: G0,
    });
    ssar.only_verbs = vec!["create"];
    v.push(ssar);
    // Reviews a component asks about its own callers: answered, not
    // stored (see authz).
    for (group, plural, kind) in [
        (
            "authorization.k8s.io",
            "subjectaccessreviews",
            "SubjectAccessReview",
        ),
        ("authentication.k8s.io", "tokenreviews", "TokenReview"),
    ] {
        let mut review = builtin(B {
            group,
            version: "v1",
            plural,
            kind,
            namespaced: false,
            short: &[],
            categories: &[],
            status: false,
            generation: G0,
        });
        review.only_verbs = vec!["create"];
        v.push(review);
    }

    let mut job = builtin(B {
        group: "batch",
        version: "v1",
        plural: "jobs",
        kind: "Job",
        namespaced: true,
        short: &[],
        categories: &["all"],
        status: true,
        generation: Spec,
    });
    job.field_selectors = vec!["status.successful".into()];
    v.push(job);

    v.push(builtin(B {
        group: "networking.k8s.io",
        version: "v1",
        plural: "networkpolicies",
        kind: "NetworkPolicy",
        namespaced: true,
        short: &["netpol"],
        categories: &[],
        status: false,
        generation: Spec,
    }));

    v.push(builtin(B {
        group: "policy",
        version: "v1",
        plural: "poddisruptionbudgets",
        kind: "PodDisruptionBudget",
        namespaced: true,
        short: &["pdb"],
        categories: &[],
        status: true,
        generation: Spec,
    }));

    for (plural, kind, namespaced) in [
        ("clusterrolebindings", "ClusterRoleBinding", false),
        ("clusterroles", "ClusterRole", false),
        ("rolebindings", "RoleBinding", true),
        ("roles", "Role", true),
    ] {
        let mut r = builtin(B {
            group: "rbac.authorization.k8s.io",
            version: "v1",
            plural,
            kind,
            namespaced,
            short: &[],
            categories: &[],
            status: false,
            generation: G0,
        });
        r.name_rule = NameRule::PathSegment;
        v.push(r);
    }

    let mut crd = builtin(B {
        group: "apiextensions.k8s.io",
        version: "v1",
        plural: "customresourcedefinitions",
        kind: "CustomResourceDefinition",
        namespaced: false,
        short: &["crd", "crds"],
        categories: &["api-extensions"],
        status: true,
        generation: Spec,
    });
    crd.singular = "customresourcedefinition".into();
    v.push(crd);

    v.push(builtin(B {
        group: "coordination.k8s.io",
        version: "v1",
        plural: "leases",
        kind: "Lease",
        namespaced: true,
        short: &[],
        categories: &[],
        status: false,
        generation: G0,
    }));
    v
}

fn event_fields() -> Vec<String> {
    [
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The group order of `/apis` (built-in groups first, as the real server
/// lists them; custom groups after, sorted).
const GROUP_ORDER: [&str; 10] = [
    "apps",
    "events.k8s.io",
    "authorization.k8s.io",
    "batch",
    "networking.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "apiextensions.k8s.io",
    "coordination.k8s.io",
    "autoscaling",
];

/// Every served type.
#[derive(Debug, Clone)]
pub struct Registry {
    types: Vec<ResourceType>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    pub fn new() -> Self {
        Registry {
            types: builtin_types(),
        }
    }

    #[cfg(test)]
    pub fn all(&self) -> &[ResourceType] {
        &self.types
    }

    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
    }

    /// The type a storage key is written through (its storage version).
    pub fn for_storage(&self, storage: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.storage == storage && t.api_version() == t.storage_api_version)
            .or_else(|| self.types.iter().find(|t| t.storage == storage))
    }

    /// Distinct storage keys of namespaced kinds.
    pub fn namespaced_storages(&self) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        for t in &self.types {
            if t.namespaced && !v.contains(&t.storage) {
                v.push(t.storage.clone());
            }
        }
        v
    }

    /// Groups (without the core group) with their versions, the
    /// preferred version first.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        let mut custom: Vec<String> = Vec::new();
        for t in &self.types {
            if t.group.is_empty() {
                continue;
            }
            if let Some((_, vs)) = out.iter_mut().find(|(g, _)| *g == t.group) {
                if !vs.contains(&t.version) {
                    vs.push(t.version.clone());
                }
            } else {
                out.push((t.group.clone(), vec![t.version.clone()]));
                if !GROUP_ORDER.contains(&t.group.as_str()) {
                    custom.push(t.group.clone());
                }
            }
        }
        for (_, vs) in out.iter_mut() {
            sort_versions(vs);
        }
        out.sort_by_key(|(g, _)| {
            GROUP_ORDER
                .iter()
                .position(|x| x == g)
                .map(|p| (0, p, String::new()))
                .unwrap_or((1, 0, g.clone()))
        });
        out
    }

    pub fn in_group_version(&self, group: &str, version: &str) -> Vec<&ResourceType> {
        self.types
            .iter()
            .filter(|t| t.group == group && t.version == version)
            .collect()
    }

    /// Replaces the types a CRD serves (removing them when `crd` is None).
    pub fn set_crd(&mut self, crd_name: &str, types: Vec<ResourceType>) {
        self.types
            .retain(|t| t.crd.as_ref().is_none_or(|c| c.crd_name != crd_name));
        self.types.extend(types);
    }
}

/// Kubernetes version priority: GA > beta > alpha, higher numbers first.
pub fn sort_versions(vs: &mut [String]) {
    fn key(v: &str) -> (i32, i64, i64, String) {
        let re = v.strip_prefix('v');
        if let Some(rest) = re {
            let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            if let Ok(major) = digits.parse::<i64>() {
                let tail = &rest[digits.len()..];
                if tail.is_empty() {
                    return (0, -major, 0, String::new());
                }
                for (prefix, rank) in [("beta", 1), ("alpha", 2)] {
                    if let Some(m) = tail.strip_prefix(prefix)
                        && let Ok(minor) = m.parse::<i64>()
                    {
                        return (rank, -major, -minor, String::new());
                    }
                }
            }
        }
        (3, 0, 0, v.to_string())
    }
    vs.sort_by_key(|v| key(v));
}

/// The types a CustomResourceDefinition object serves.
pub fn crd_types(crd: &Value) -> Vec<ResourceType> {
    let name = crd
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default().to_string();
    let names = &spec["names"];
    let plural = names["plural"].as_str().unwrap_or_default().to_string();
    let kind = names["kind"].as_str().unwrap_or_default().to_string();
    let singular = names["singular"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| kind.to_lowercase());
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    let short_names = strings(&names["shortNames"]);
    let categories = strings(&names["categories"]);
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    let storage_version = versions
        .iter()
        .find(|v| v["storage"].as_bool() == Some(true))
        .and_then(|v| v["name"].as_str())
        .unwrap_or_default()
        .to_string();
    let mut out = Vec::new();
    for v in versions {
        if v["served"].as_bool() != Some(true) {
            continue;
        }
        let version = v["name"].as_str().unwrap_or_default().to_string();
        let columns = v["additionalPrinterColumns"]
            .as_array()
            .map(|cols| {
                cols.iter()
                    .map(|c| PrinterColumn {
                        name: c["name"].as_str().unwrap_or_default().to_string(),
                        ty: c["type"].as_str().unwrap_or("string").to_string(),
                        format: c["format"].as_str().unwrap_or_default().to_string(),
                        description: c["description"].as_str().unwrap_or_default().to_string(),
                        priority: c["priority"].as_i64().unwrap_or(0),
                        json_path: c["jsonPath"].as_str().unwrap_or_default().to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let scale = v.pointer("/subresources/scale").map(|s| ScaleSpec {
            spec_replicas: s["specReplicasPath"]
                .as_str()
                .unwrap_or(".spec.replicas")
                .to_string(),
            status_replicas: s["statusReplicasPath"]
                .as_str()
                .unwrap_or(".status.replicas")
                .to_string(),
            label_selector: s["labelSelectorPath"].as_str().map(String::from),
        });
        let selectable: Vec<String> = v["selectableFields"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|f| f["jsonPath"].as_str())
                    .map(|p| p.trim_start_matches('.').to_string())
                    .collect()
            })
            .unwrap_or_default();
        out.push(ResourceType {
            group: group.clone(),
            version: version.clone(),
            plural: plural.clone(),
            singular: singular.clone(),
            kind: kind.clone(),
            namespaced,
            short_names: short_names.clone(),
            categories: categories.clone(),
            status: v.pointer("/subresources/status").is_some(),
            scale,
            storage: format!("{group}/{plural}"),
            storage_api_version: format!("{group}/{storage_version}"),
            generation: Generation::NonMetadata,
            name_rule: NameRule::Subdomain,
            crd: Some(Arc::new(CrdVersion {
                crd_name: name.clone(),
                schema: v.pointer("/schema/openAPIV3Schema").cloned(),
                columns,
                deprecated: if v["deprecated"].as_bool() == Some(true) {
                    Some(
                        v["deprecationWarning"]
                            .as_str()
                            .map(String::from)
                            .unwrap_or_else(|| format!("{group}/{version} {kind} is deprecated")),
                    )
                } else {
                    None
                },
            })),
            field_selectors: selectable,
            create_on_update: false,
            unconditional_update: false,
            only_verbs: vec![],
            extra_subresources: vec![],
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_by_kubernetes_priority() {
        let mut v: Vec<String> = ["v1alpha1", "v2beta1", "v1", "v1beta2", "v2", "foo"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        sort_versions(&mut v);
        assert_eq!(v, ["v2", "v1", "v2beta1", "v1beta2", "v1alpha1", "foo"]);
    }

    #[test]
    fn network_policies_are_served_where_the_real_server_serves_them() {
        let r = Registry::new();
        let np = r
            .find("networking.k8s.io", "v1", "networkpolicies")
            .expect("networkpolicies");
        assert_eq!(np.kind, "NetworkPolicy");
        assert_eq!(np.short_names, ["netpol"]);
        assert!(np.namespaced && !np.status);
        assert_eq!(np.generation, Generation::Spec);
        assert_eq!(np.discovery_entries().len(), 1);
        let groups: Vec<String> = r.groups().into_iter().map(|(g, _)| g).collect();
        let at = |g: &str| groups.iter().position(|x| x == g);
        assert_eq!(at("networking.k8s.io").map(|i| i + 1), at("policy"));
        assert_eq!(at("batch").map(|i| i + 1), at("networking.k8s.io"));
    }

    #[test]
    fn crd_serves_its_versions() {
        let crd = json!({
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com",
                "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
                "versions": [
                    {"name": "v1", "served": true, "storage": true,
                     "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.size", "statusReplicasPath": ".status.size"}}},
                    {"name": "v1beta1", "served": false, "storage": false}
                ]
            }
        });
        let t = crd_types(&crd);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].singular, "widget");
        assert!(t[0].status);
        assert_eq!(
            t[0].scale.as_ref().map(|s| s.spec_replicas.as_str()),
            Some(".spec.size")
        );
        let mut r = Registry::new();
        r.set_crd("widgets.example.com", t);
        assert!(r.find("example.com", "v1", "widgets").is_some());
        assert_eq!(r.groups().last().map(|g| g.0.as_str()), Some("example.com"));
        r.set_crd("widgets.example.com", vec![]);
        assert!(r.find("example.com", "v1", "widgets").is_none());
    }
}
