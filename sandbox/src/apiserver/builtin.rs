//! What the real server's strategies do for the built-in kinds: defaults
//! on create, fields a write may not change, the validation orca and
//! `kubectl` meet (a CRD's schemas must be structural), and the two
//! faces of Events (core v1 and events.k8s.io/v1 are one object).

use base64::Engine;
use serde_json::{Map, Value, json};

use super::error::FieldError;
use super::networkpolicy;
use super::selector::LabelSelector;
use super::structural;
use super::time;
use super::types::{NameRule, ResourceType};

/// Runs `f` on the object at `v[key]`, making it an object first.
fn with_obj<R: Default>(
    v: &mut Value,
    key: &str,
    f: impl FnOnce(&mut Map<String, Value>) -> R,
) -> R {
    let Some(parent) = v.as_object_mut() else {
        return R::default();
    };
    let entry = parent.entry(key).or_insert_with(|| json!({}));
    if !entry.is_object() {
        *entry = json!({});
    }
    match entry.as_object_mut() {
        Some(m) => f(m),
        None => R::default(),
    }
}

fn set_default(m: &mut Map<String, Value>, key: &str, v: Value) {
    if !m.contains_key(key) || m.get(key).is_some_and(Value::is_null) {
        m.insert(key.to_string(), v);
    }
}

pub(super) const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

pub(super) fn is_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_label)
}

/// Validates `metadata.name` for a kind.
pub fn validate_name(rt: &ResourceType, name: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let field = "metadata.name";
    let v = Value::String(name.to_string());
    match rt.name_rule {
        NameRule::Subdomain => {
            if name.len() > 253 {
                errs.push(FieldError::invalid(
                    field,
                    v.clone(),
                    "must be no more than 253 characters",
                ));
            }
            if !is_subdomain(name) {
                errs.push(FieldError::invalid(field, v, SUBDOMAIN_MSG));
            }
        }
        NameRule::Label => {
            if rt.plural == "services" {
                let ok = is_label(name) && name.starts_with(|c: char| c.is_ascii_lowercase());
                if !ok {
                    errs.push(FieldError::invalid(field, v, DNS1035_MSG));
                }
            } else {
                if name.len() > 63 {
                    errs.push(FieldError::invalid(
                        field,
                        v.clone(),
                        "must be no more than 63 characters",
                    ));
                }
                if !is_label(name) {
                    errs.push(FieldError::invalid(field, v, LABEL_MSG));
                }
            }
        }
        NameRule::PathSegment => {
            if name == "." || name == ".." {
                errs.push(FieldError::invalid(
                    field,
                    v,
                    &format!("may not be '{name}'"),
                ));
            } else if name.contains('/') || name.contains('%') {
                let bad = if name.contains('/') { "/" } else { "%" };
                errs.push(FieldError::invalid(
                    field,
                    v,
                    &format!("may not contain '{bad}'"),
                ));
            }
        }
    }
    errs
}

pub(super) const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

/// A label value's characters (its length is checked apart, as
/// `IsValidLabelValue` does).
pub(super) fn is_label_value(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && (s.is_empty()
            || (s.starts_with(|c: char| c.is_ascii_alphanumeric())
                && s.ends_with(|c: char| c.is_ascii_alphanumeric())))
}

/// Validates labels and annotations of any object.
pub fn validate_meta(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            let Some(s) = v.as_str() else {
                errs.push(FieldError::invalid(
                    &format!("metadata.labels.{k}"),
                    v.clone(),
                    "must be a string",
                ));
                continue;
            };
            if s.len() > 63 || !is_label_value(s) {
                errs.push(FieldError::invalid(
                    "metadata.labels",
                    Value::String(s.to_string()),
                    LABEL_VALUE_MSG,
                ));
            }
        }
    }
    errs
}

fn image_pull_policy(image: &str) -> &'static str {
    let last = image.rsplit('/').next().unwrap_or(image);
    let tag = last.split_once(':').map(|(_, t)| t);
    if image.contains('@') {
        return "IfNotPresent";
    }
    match tag {
        None | Some("latest") => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn default_containers(list: Option<&mut Value>) {
    let Some(Value::Array(cs)) = list else {
        return;
    };
    for c in cs.iter_mut() {
        let Some(m) = c.as_object_mut() else {
            continue;
        };
        set_default(m, "terminationMessagePath", json!("/dev/termination-log"));
        set_default(m, "terminationMessagePolicy", json!("File"));
        let image = m
            .get("image")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        set_default(m, "imagePullPolicy", json!(image_pull_policy(&image)));
        set_default(m, "resources", json!({}));
        for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
            if let Some(Value::Object(pm)) = m.get_mut(probe) {
                set_default(pm, "timeoutSeconds", json!(1));
                set_default(pm, "periodSeconds", json!(10));
                set_default(pm, "successThreshold", json!(1));
                set_default(pm, "failureThreshold", json!(3));
                if let Some(Value::Object(h)) = pm.get_mut("httpGet") {
                    set_default(h, "scheme", json!("HTTP"));
                }
            }
        }
        if let Some(Value::Array(ports)) = m.get_mut("ports") {
            for p in ports.iter_mut() {
                if let Some(pm) = p.as_object_mut() {
                    set_default(pm, "protocol", json!("TCP"));
                }
            }
        }
    }
}

/// The defaults of a pod spec (pods and pod templates).
pub fn default_pod_spec(spec: &mut Value) {
    let Some(m) = spec.as_object_mut() else {
        return;
    };
    set_default(m, "restartPolicy", json!("Always"));
    set_default(m, "terminationGracePeriodSeconds", json!(30));
    set_default(m, "dnsPolicy", json!("ClusterFirst"));
    set_default(m, "securityContext", json!({}));
    set_default(m, "schedulerName", json!("default-scheduler"));
    default_containers(m.get_mut("containers"));
    default_containers(m.get_mut("initContainers"));
}

fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .filter_map(|k| spec.get(*k).and_then(Value::as_array))
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let req = c.pointer("/resources/requests").and_then(Value::as_object);
        let lim = c.pointer("/resources/limits").and_then(Value::as_object);
        if req.is_some_and(|r| !r.is_empty()) || lim.is_some_and(|l| !l.is_empty()) {
            any = true;
        }
        for res in ["cpu", "memory"] {
            let l = lim.and_then(|l| l.get(res));
            let r = req.and_then(|r| r.get(res)).or(l);
            if l.is_none() || r != l {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed && !containers.is_empty() {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn validate_containers(spec: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let Some(cs) = spec
        .get("containers")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
    else {
        errs.push(FieldError::required(&format!("{path}.containers"), ""));
        return;
    };
    let mut seen: Vec<&str> = Vec::new();
    for (i, c) in cs.iter().enumerate() {
        let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
        if name.is_empty() {
            errs.push(FieldError::required(
                &format!("{path}.containers[{i}].name"),
                "",
            ));
        } else if seen.contains(&name) {
            errs.push(FieldError::new(
                super::error::FieldErrorType::Duplicate,
                &format!("{path}.containers[{i}].name"),
                Some(json!(name)),
                "",
            ));
        }
        seen.push(name);
        if c.get("image")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .is_empty()
        {
            errs.push(FieldError::required(
                &format!("{path}.containers[{i}].image"),
                "",
            ));
        }
    }
}

fn template_labels_match(spec: &Value, errs: &mut Vec<FieldError>) {
    let Some(sel) = spec.get("selector").filter(|s| s.is_object()) else {
        errs.push(FieldError::required("spec.selector", ""));
        return;
    };
    let labels = spec
        .pointer("/template/metadata/labels")
        .cloned()
        .unwrap_or_else(|| json!({}));
    match LabelSelector::from_object(sel) {
        Ok(s) if s.is_empty() => errs.push(FieldError::invalid(
            "spec.selector",
            sel.clone(),
            "empty selector is invalid for deployment",
        )),
        Ok(s) => {
            if !s.matches(&json!({"metadata": {"labels": labels}})) {
                let shown: Vec<String> = labels
                    .as_object()
                    .map(|m| m.iter().map(|(k, v)| format!("{k:?}:{}", v)).collect())
                    .unwrap_or_default();
                errs.push(FieldError::new(
                    super::error::FieldErrorType::Invalid,
                    "spec.template.metadata.labels",
                    Some(Value::String(format!(
                        "map[string]string{{{}}}",
                        shown.join(", ")
                    ))),
                    "`selector` does not match template `labels`",
                ));
            }
        }
        Err(e) => errs.push(FieldError::invalid("spec.selector", sel.clone(), &e)),
    }
}

/// Context the create strategies need from the store.
pub struct CreateCtx<'a> {
    pub uid: &'a str,
    pub name: &'a str,
    pub alloc_cluster_ip: &'a mut dyn FnMut() -> String,
    pub alloc_node_port: &'a mut dyn FnMut() -> i64,
}

/// Defaults and validates an object of a built-in kind on create.
/// `status` has already been dropped for kinds with a status subresource.
pub fn prepare_create(
    rt: &ResourceType,
    obj: &mut Value,
    ctx: &mut CreateCtx<'_>,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "namespaces") => {
            with_obj(obj, "spec", |spec| {
                spec.insert("finalizers".into(), json!(["kubernetes"]));
            });
            obj["status"] = json!({"phase": "Active"});
            let name = ctx.name.to_string();
            with_obj(obj, "metadata", |meta| {
                let labels = meta.entry("labels").or_insert_with(|| json!({}));
                if let Some(l) = labels.as_object_mut() {
                    l.insert("kubernetes.io/metadata.name".into(), json!(name));
                }
            });
        }
        ("", "pods") => {
            if !obj.get("spec").is_some_and(Value::is_object) {
                obj["spec"] = json!({});
            }
            validate_containers(&obj["spec"], "spec", &mut errs);
            with_obj(obj, "spec", |spec| {
                let sa = spec
                    .get("serviceAccountName")
                    .or(spec.get("serviceAccount"))
                    .and_then(Value::as_str)
                    .unwrap_or("default")
                    .to_string();
                spec.insert("serviceAccountName".into(), json!(sa));
                spec.insert("serviceAccount".into(), json!(sa));
                set_default(spec, "enableServiceLinks", json!(true));
                set_default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
                set_default(spec, "priority", json!(0));
                let tolerations = spec.entry("tolerations").or_insert_with(|| json!([]));
                if let Value::Array(t) = tolerations {
                    for key in [
                        "node.kubernetes.io/not-ready",
                        "node.kubernetes.io/unreachable",
                    ] {
                        if !t.iter().any(|x| x["key"] == json!(key)) {
                            t.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
                        }
                    }
                }
            });
            default_pod_spec(&mut obj["spec"]);
            let qos = qos_class(&obj["spec"]);
            obj["status"] = json!({"phase": "Pending", "qosClass": qos});
        }
        ("", "services") => {
            with_obj(obj, "spec", |spec| service_create(spec, ctx, &mut errs));
            obj["status"] = json!({"loadBalancer": {}});
        }
        ("", "secrets") => {
            let m = obj.as_object_mut();
            if let Some(m) = m {
                set_default(m, "type", json!("Opaque"));
            }
            fold_string_data(obj, &mut errs);
        }
        ("", "configmaps") => {}
        ("", "persistentvolumeclaims") => {
            with_obj(obj, "spec", |spec| {
                set_default(spec, "volumeMode", json!("Filesystem"))
            });
            obj["status"] = json!({"phase": "Pending"});
        }
        ("apps", "statefulsets") => {
            with_obj(obj, "spec", sts_defaults);
            if obj.pointer("/spec/template/spec").is_some() {
                default_pod_spec(&mut obj["spec"]["template"]["spec"]);
            }
            validate_template(&obj["spec"], &mut errs, &["Always"]);
            template_labels_match(&obj["spec"], &mut errs);
            obj["status"] = json!({"replicas": 0, "availableReplicas": 0});
        }
        ("apps", "deployments") | ("apps", "replicasets") => {
            let deployment = rt.plural == "deployments";
            with_obj(obj, "spec", |spec| workload_defaults(spec, deployment));
            if obj.pointer("/spec/template/spec").is_some() {
                default_pod_spec(&mut obj["spec"]["template"]["spec"]);
            }
            validate_template(&obj["spec"], &mut errs, &["Always"]);
            template_labels_match(&obj["spec"], &mut errs);
            obj["status"] = json!({});
        }
        ("batch", "jobs") => {
            let uid = ctx.uid.to_string();
            let name = ctx.name.to_string();
            with_obj(obj, "spec", |spec| job_defaults(spec, &uid, &name));
            if obj.pointer("/spec/template/spec").is_some() {
                default_pod_spec(&mut obj["spec"]["template"]["spec"]);
                // jobs have no default restart policy: undo the pod default
                if let Some(s) = obj
                    .pointer_mut("/spec/template/spec")
                    .and_then(Value::as_object_mut)
                    && s.get("restartPolicy") == Some(&json!("Always"))
                {
                    errs.push(FieldError::not_supported(
                        "spec.template.spec.restartPolicy",
                        json!("Always"),
                        &["OnFailure".into(), "Never".into()],
                    ));
                }
            }
            validate_template(&obj["spec"], &mut errs, &["OnFailure", "Never"]);
            obj["status"] = json!({});
        }
        ("networking.k8s.io", "networkpolicies") => {
            errs.extend(networkpolicy::prepare(obj));
        }
        ("policy", "poddisruptionbudgets") => {
            let spec = &obj["spec"];
            if spec.get("minAvailable").is_some() && spec.get("maxUnavailable").is_some() {
                errs.push(FieldError::invalid(
                    "spec",
                    spec.clone(),
                    "minAvailable and maxUnavailable cannot be both set",
                ));
            }
            obj["status"] = json!({"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0});
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            errs.extend(crd_validate(obj, ctx.name));
            crd_defaults(obj);
            obj["status"] = crd_status(obj, None);
        }
        _ => {}
    }
    errs
}

fn service_create(
    spec: &mut Map<String, Value>,
    ctx: &mut CreateCtx<'_>,
    errs: &mut Vec<FieldError>,
) {
    set_default(spec, "type", json!("ClusterIP"));
    set_default(spec, "sessionAffinity", json!("None"));
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    if !["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"].contains(&ty.as_str()) {
        errs.push(FieldError::not_supported(
            "spec.type",
            json!(ty),
            &[
                "ClusterIP".into(),
                "ExternalName".into(),
                "LoadBalancer".into(),
                "NodePort".into(),
            ],
        ));
    }
    let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
    let ports_empty = spec
        .get("ports")
        .and_then(Value::as_array)
        .is_none_or(|a| a.is_empty());
    if ports_empty && !headless && ty != "ExternalName" {
        errs.push(FieldError::required("spec.ports", ""));
    }
    if let Some(Value::Array(ports)) = spec.get_mut("ports") {
        let many = ports.len() > 1;
        for (i, p) in ports.iter_mut().enumerate() {
            let Some(pm) = p.as_object_mut() else {
                continue;
            };
            set_default(pm, "protocol", json!("TCP"));
            if !pm.contains_key("targetPort")
                && let Some(port) = pm.get("port").cloned()
            {
                pm.insert("targetPort".into(), port);
            }
            if !pm.get("port").is_some_and(Value::is_i64) {
                errs.push(FieldError::required(&format!("spec.ports[{i}].port"), ""));
            }
            if many
                && pm
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .is_empty()
            {
                errs.push(FieldError::required(&format!("spec.ports[{i}].name"), ""));
            }
            if (ty == "NodePort" || ty == "LoadBalancer") && !pm.contains_key("nodePort") {
                pm.insert("nodePort".into(), json!((ctx.alloc_node_port)()));
            }
        }
    }
    if ty == "ExternalName" {
        if spec
            .get("externalName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .is_empty()
        {
            errs.push(FieldError::required("spec.externalName", ""));
        }
    } else {
        if !spec.contains_key("clusterIP") || spec["clusterIP"] == json!("") {
            let ip = (ctx.alloc_cluster_ip)();
            spec.insert("clusterIP".into(), json!(ip));
        }
        let ip = spec["clusterIP"].clone();
        spec.insert("clusterIPs".into(), json!([ip]));
        set_default(spec, "ipFamilies", json!(["IPv4"]));
        set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
        set_default(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if ty == "NodePort" || ty == "LoadBalancer" {
        set_default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if ty == "LoadBalancer" {
        set_default(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
}

/// `spec.selector` may not change (Deployments, ReplicaSets, Jobs).
fn selector_immutable(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    if old.pointer("/spec/selector") != new.pointer("/spec/selector") {
        errs.push(FieldError::invalid(
            "spec.selector",
            new.pointer("/spec/selector")
                .cloned()
                .unwrap_or(Value::Null),
            "field is immutable",
        ));
    }
}

/// The defaults of a Deployment's (or a ReplicaSet's) spec.
fn workload_defaults(spec: &mut Map<String, Value>, deployment: bool) {
    set_default(spec, "replicas", json!(1));
    if deployment {
        set_default(
            spec,
            "strategy",
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
        );
        set_default(spec, "revisionHistoryLimit", json!(10));
        set_default(spec, "progressDeadlineSeconds", json!(600));
    }
}

fn sts_defaults(spec: &mut Map<String, Value>) {
    set_default(spec, "replicas", json!(1));

    set_default(spec, "podManagementPolicy", json!("OrderedReady"));
    set_default(
        spec,
        "updateStrategy",
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
    );
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(
        spec,
        "persistentVolumeClaimRetentionPolicy",
        json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
    );
    if let Some(Value::Array(vcts)) = spec.get_mut("volumeClaimTemplates") {
        for v in vcts.iter_mut() {
            if let Some(m) = v.as_object_mut() {
                set_default(m, "apiVersion", json!("v1"));
                set_default(m, "kind", json!("PersistentVolumeClaim"));
                let s = m.entry("spec").or_insert_with(|| json!({}));
                if let Some(sm) = s.as_object_mut() {
                    set_default(sm, "volumeMode", json!("Filesystem"));
                }
                set_default(m, "status", json!({"phase": "Pending"}));
            }
        }
    }
}

fn job_defaults(spec: &mut Map<String, Value>, uid: &str, name: &str) {
    set_default(spec, "parallelism", json!(1));

    set_default(spec, "completions", json!(1));
    set_default(spec, "backoffLimit", json!(6));
    set_default(spec, "completionMode", json!("NonIndexed"));
    set_default(spec, "suspend", json!(false));
    set_default(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
    let manual = spec.get("manualSelector").and_then(Value::as_bool) == Some(true);
    if !manual {
        spec.insert(
            "selector".into(),
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
        );
        let tmpl = spec.entry("template").or_insert_with(|| json!({}));
        if let Some(t) = tmpl.as_object_mut() {
            let meta = t.entry("metadata").or_insert_with(|| json!({}));
            if let Some(mm) = meta.as_object_mut() {
                let labels = mm.entry("labels").or_insert_with(|| json!({}));
                if let Some(l) = labels.as_object_mut() {
                    l.insert("batch.kubernetes.io/controller-uid".into(), json!(uid));
                    l.insert("batch.kubernetes.io/job-name".into(), json!(name));
                    l.insert("controller-uid".into(), json!(uid));
                    l.insert("job-name".into(), json!(name));
                }
            }
        }
    }
}

fn validate_template(spec: &Value, errs: &mut Vec<FieldError>, restart: &[&str]) {
    let Some(t) = spec.pointer("/template/spec") else {
        errs.push(FieldError::required("spec.template.spec.containers", ""));
        return;
    };
    validate_containers(t, "spec.template.spec", errs);
    if let Some(rp) = t.get("restartPolicy").and_then(Value::as_str)
        && !restart.contains(&rp)
        && restart.len() == 1
    {
        errs.push(FieldError::not_supported(
            "spec.template.spec.restartPolicy",
            json!(rp),
            &restart.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        ));
    }
}

fn fold_string_data(obj: &mut Value, errs: &mut Vec<FieldError>) {
    let Some(m) = obj.as_object_mut() else {
        return;
    };
    if let Some(Value::Object(sd)) = m.remove("stringData") {
        let data = m.entry("data").or_insert_with(|| json!({}));
        if let Some(d) = data.as_object_mut() {
            for (k, v) in sd {
                let s = v.as_str().unwrap_or_default();
                d.insert(
                    k,
                    json!(base64::engine::general_purpose::STANDARD.encode(s.as_bytes())),
                );
            }
        }
    }
    if let Some(Value::Object(d)) = m.get("data") {
        for (k, v) in d {
            let ok = v
                .as_str()
                .is_some_and(|s| base64::engine::general_purpose::STANDARD.decode(s).is_ok());
            if !ok {
                errs.push(FieldError::invalid(
                    &format!("data[{k}]"),
                    v.clone(),
                    "illegal base64 data",
                ));
            }
        }
    }
}

fn without(v: &Value, keys: &[&str]) -> Value {
    let mut c = v.clone();
    if let Value::Object(m) = &mut c {
        for k in keys {
            m.remove(*k);
        }
    }
    c
}

fn images_masked(spec: &Value) -> Value {
    let mut s = without(
        spec,
        &[
            "activeDeadlineSeconds",
            "tolerations",
            "terminationGracePeriodSeconds",
        ],
    );
    for k in ["containers", "initContainers"] {
        if let Some(Value::Array(cs)) = s.get_mut(k) {
            for c in cs.iter_mut() {
                if let Value::Object(m) = c {
                    m.remove("image");
                }
            }
        }
    }
    s
}

/// What an update of a built-in kind may not do, and what it keeps from
/// the old object. `sub` is the subresource written ("" or "status").
pub fn prepare_update(
    rt: &ResourceType,
    old: &Value,
    new: &mut Value,
    sub: &str,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if sub == "status" {
        return errs;
    }
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "namespaces") => {
            if let Some(f) = old.pointer("/spec/finalizers").cloned() {
                with_obj(new, "spec", |spec| {
                    spec.insert("finalizers".into(), f);
                });
            }
            let name = old
                .pointer("/metadata/name")
                .cloned()
                .unwrap_or(Value::Null);
            with_obj(new, "metadata", |meta| {
                let labels = meta.entry("labels").or_insert_with(|| json!({}));
                if let Some(l) = labels.as_object_mut() {
                    l.insert("kubernetes.io/metadata.name".into(), name);
                }
            });
        }
        ("", "pods") => {
            let o = images_masked(&old["spec"]);
            let mut n = images_masked(&new["spec"]);
            // the bound node cannot change through an update
            if let (Some(on), Some(nm)) = (o.get("nodeName"), n.as_object_mut())
                && !nm.contains_key("nodeName")
            {
                nm.insert("nodeName".into(), on.clone());
            }
            if o != n {
                errs.push(FieldError::forbidden(
                    "spec",
                    "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
                ));
            }
        }
        ("", "services") => {
            let old_ip = old.pointer("/spec/clusterIP").cloned();
            if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
                let new_ip = spec.get("clusterIP").cloned();
                match (&old_ip, &new_ip) {
                    (Some(o), None) => {
                        spec.insert("clusterIP".into(), o.clone());
                        if let Some(ips) = old.pointer("/spec/clusterIPs") {
                            spec.insert("clusterIPs".into(), ips.clone());
                        }
                    }
                    (Some(o), Some(Value::String(s))) if s.is_empty() => {
                        spec.insert("clusterIP".into(), o.clone());
                        if let Some(ips) = old.pointer("/spec/clusterIPs") {
                            spec.insert("clusterIPs".into(), ips.clone());
                        }
                    }
                    (Some(o), Some(n)) if o != n => {
                        errs.push(FieldError::invalid(
                            "spec.clusterIPs[0]",
                            json!([n]),
                            "may not change once set",
                        ));
                    }
                    _ => {}
                }
                if !spec.contains_key("clusterIPs")
                    && let Some(ips) = old.pointer("/spec/clusterIPs")
                {
                    spec.insert("clusterIPs".into(), ips.clone());
                }
                for key in [
                    "ipFamilies",
                    "ipFamilyPolicy",
                    "internalTrafficPolicy",
                    "sessionAffinity",
                    "type",
                ] {
                    if !spec.contains_key(key)
                        && let Some(v) = old.pointer(&format!("/spec/{key}"))
                    {
                        spec.insert(key.into(), v.clone());
                    }
                }
                if let Some(Value::Array(ports)) = spec.get_mut("ports") {
                    for p in ports.iter_mut() {
                        if let Some(pm) = p.as_object_mut() {
                            set_default(pm, "protocol", json!("TCP"));
                            if !pm.contains_key("targetPort")
                                && let Some(port) = pm.get("port").cloned()
                            {
                                pm.insert("targetPort".into(), port);
                            }
                        }
                    }
                }
            }
        }
        ("", "configmaps") | ("", "secrets") => {
            if rt.plural == "secrets" {
                fold_string_data(new, &mut errs);
                if new.get("type").is_none()
                    && let Some(t) = old.get("type")
                {
                    new["type"] = t.clone();
                }
                if old.get("type") != new.get("type") {
                    errs.push(FieldError::invalid(
                        "type",
                        new.get("type").cloned().unwrap_or(Value::Null),
                        "field is immutable",
                    ));
                }
            }
            if old.get("immutable") == Some(&json!(true)) {
                if old.get("data") != new.get("data")
                    || old.get("binaryData") != new.get("binaryData")
                {
                    errs.push(FieldError::forbidden(
                        "data",
                        "field is immutable when `immutable` is set",
                    ));
                }
                if new.get("immutable") != Some(&json!(true)) {
                    errs.push(FieldError::forbidden(
                        "immutable",
                        "field is immutable when `immutable` is set",
                    ));
                }
            }
        }
        ("apps", "statefulsets") => {
            if new.pointer("/spec/template/spec").is_some() {
                default_pod_spec(&mut new["spec"]["template"]["spec"]);
            }
            // Compare as stored: an update that leaves defaulted fields out
            // (as a server-side apply of the same manifest does) changes
            // nothing.
            if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
                sts_defaults(spec);
            }
            let keep = [
                "replicas",
                "ordinals",
                "template",
                "updateStrategy",
                "persistentVolumeClaimRetentionPolicy",
                "minReadySeconds",
            ];
            let o = without(&old["spec"], &keep);
            let n = without(&new["spec"], &keep);
            if o != n {
                errs.push(FieldError::forbidden(
                    "spec",
                    "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
                ));
            }
            validate_template(&new["spec"], &mut errs, &["Always"]);
            template_labels_match(&new["spec"], &mut errs);
        }
        ("apps", "deployments") | ("apps", "replicasets") => {
            let deployment = rt.plural == "deployments";
            if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
                workload_defaults(spec, deployment);
            }
            if new.pointer("/spec/template/spec").is_some() {
                default_pod_spec(&mut new["spec"]["template"]["spec"]);
            }
            selector_immutable(old, new, &mut errs);
            validate_template(&new["spec"], &mut errs, &["Always"]);
            template_labels_match(&new["spec"], &mut errs);
        }
        ("batch", "jobs") => {
            if new.pointer("/spec/template/spec").is_some() {
                default_pod_spec(&mut new["spec"]["template"]["spec"]);
            }
            selector_immutable(old, new, &mut errs);
        }
        ("networking.k8s.io", "networkpolicies") => {
            errs.extend(networkpolicy::prepare(new));
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            let name = old
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            errs.extend(crd_validate(new, name));
            for (path, field) in [("/spec/group", "spec.group"), ("/spec/scope", "spec.scope")] {
                if old.pointer(path) != new.pointer(path) {
                    errs.push(FieldError::invalid(
                        field,
                        new.pointer(path).cloned().unwrap_or(Value::Null),
                        "field is immutable",
                    ));
                }
            }
            crd_defaults(new);
            new["status"] = crd_status(new, Some(old));
        }
        _ => {}
    }
    errs
}

fn crd_validate(obj: &Value, name: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = &obj["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let plural = spec
        .pointer("/names/plural")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if group.is_empty() {
        errs.push(FieldError::required("spec.group", ""));
    } else if !group.contains('.') {
        errs.push(FieldError::invalid(
            "spec.group",
            json!(group),
            "should be a domain with at least one dot",
        ));
    }
    if plural.is_empty() {
        errs.push(FieldError::required("spec.names.plural", ""));
    }
    if spec
        .pointer("/names/kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .is_empty()
    {
        errs.push(FieldError::required("spec.names.kind", ""));
    }
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        errs.push(FieldError::invalid(
            "metadata.name",
            json!(name),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    match spec["scope"].as_str() {
        Some("Namespaced") | Some("Cluster") => {}
        other => errs.push(FieldError::not_supported(
            "spec.scope",
            json!(other.unwrap_or_default()),
            &["Cluster".into(), "Namespaced".into()],
        )),
    }
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    if versions.is_empty() {
        errs.push(FieldError::invalid(
            "spec.versions",
            json!([]),
            "must have exactly one version marked as storage version",
        ));
    } else {
        let storage = versions
            .iter()
            .filter(|v| v["storage"].as_bool() == Some(true))
            .count();
        if storage != 1 {
            errs.push(FieldError::invalid(
                "spec.versions",
                Value::Array(versions.clone()),
                "must have exactly one version marked as storage version",
            ));
        }
        for (i, v) in versions.iter().enumerate() {
            match v.pointer("/schema/openAPIV3Schema") {
                None => errs.push(FieldError::required(
                    &format!("spec.versions[{i}].schema.openAPIV3Schema"),
                    "schemas are required",
                )),
                // A v1 CRD's schemas must be structural.
                Some(s) => errs.extend(structural::structural_errors_at(
                    &structural::FieldPath::new(format!(
                        "spec.versions[{i}].schema.openAPIV3Schema"
                    )),
                    s,
                )),
            }
        }
    }
    errs
}

fn crd_defaults(obj: &mut Value) {
    let kind = obj
        .pointer("/spec/names/kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if let Some(names) = obj
        .pointer_mut("/spec/names")
        .and_then(Value::as_object_mut)
    {
        set_default(names, "singular", json!(kind.to_lowercase()));
        set_default(names, "listKind", json!(format!("{kind}List")));
    }
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        set_default(spec, "conversion", json!({"strategy": "None"}));
    }
}

fn crd_status(obj: &Value, old: Option<&Value>) -> Value {
    let now = time::now_string();
    let names = obj
        .pointer("/spec/names")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let storage = obj
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .and_then(|vs| vs.iter().find(|v| v["storage"].as_bool() == Some(true)))
        .and_then(|v| v["name"].as_str())
        .unwrap_or_default()
        .to_string();
    let mut stored: Vec<Value> = old
        .and_then(|o| o.pointer("/status/storedVersions"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !stored.contains(&json!(storage)) {
        stored.push(json!(storage));
    }
    let conditions = match old.and_then(|o| o.pointer("/status/conditions")) {
        Some(c) => c.clone(),
        None => json!([
            {"type": "NamesAccepted", "status": "True", "lastTransitionTime": now,
             "reason": "NoConflicts", "message": "no conflicts found"},
            {"type": "Established", "status": "True", "lastTransitionTime": now,
             "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"}
        ]),
    };
    json!({"acceptedNames": names, "conditions": conditions, "storedVersions": stored})
}

/// A core/v1 Event as events.k8s.io/v1 shows it.
pub fn event_to_v1(core: &Value) -> Value {
    let mut out = Map::new();
    out.insert("apiVersion".into(), json!("events.k8s.io/v1"));
    out.insert("kind".into(), json!("Event"));
    let renames = [
        ("metadata", "metadata"),
        ("involvedObject", "regarding"),
        ("message", "note"),
        ("reason", "reason"),
        ("type", "type"),
        ("eventTime", "eventTime"),
        ("series", "series"),
        ("action", "action"),
        ("related", "related"),
        ("reportingComponent", "reportingController"),
        ("reportingInstance", "reportingInstance"),
        ("source", "deprecatedSource"),
        ("firstTimestamp", "deprecatedFirstTimestamp"),
        ("lastTimestamp", "deprecatedLastTimestamp"),
        ("count", "deprecatedCount"),
    ];
    for (from, to) in renames {
        if let Some(v) = core.get(from)
            && !v.is_null()
        {
            out.insert(to.into(), v.clone());
        }
    }
    if !out.contains_key("eventTime") {
        out.insert("eventTime".into(), Value::Null);
    }
    Value::Object(out)
}

/// An events.k8s.io/v1 Event as stored (core/v1).
pub fn event_from_v1(v1: &Value) -> Value {
    let mut out = Map::new();
    out.insert("apiVersion".into(), json!("v1"));
    out.insert("kind".into(), json!("Event"));
    let renames = [
        ("metadata", "metadata"),
        ("regarding", "involvedObject"),
        ("note", "message"),
        ("reason", "reason"),
        ("type", "type"),
        ("eventTime", "eventTime"),
        ("series", "series"),
        ("action", "action"),
        ("related", "related"),
        ("reportingController", "reportingComponent"),
        ("reportingInstance", "reportingInstance"),
        ("deprecatedSource", "source"),
        ("deprecatedFirstTimestamp", "firstTimestamp"),
        ("deprecatedLastTimestamp", "lastTimestamp"),
        ("deprecatedCount", "count"),
    ];
    for (from, to) in renames {
        if let Some(v) = v1.get(from)
            && !v.is_null()
        {
            out.insert(to.into(), v.clone());
        }
    }
    if !out.contains_key("involvedObject") {
        out.insert("involvedObject".into(), json!({}));
    }
    Value::Object(out)
}

/// The checks of an events.k8s.io/v1 create.
pub fn validate_v1_event(ev: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if ev.get("eventTime").is_none_or(Value::is_null) {
        errs.push(FieldError::required("eventTime", ""));
    }
    match ev.get("type").and_then(Value::as_str) {
        Some("Normal") | Some("Warning") => {}
        other => errs.push(FieldError::invalid(
            "type",
            json!(""),
            &format!("has invalid value: {}", other.unwrap_or_default()),
        )),
    }
    for f in [
        "reportingController",
        "reportingInstance",
        "action",
        "reason",
    ] {
        if ev
            .get(f)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .is_empty()
        {
            errs.push(FieldError::required(f, ""));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::types::builtin_types;

    fn rt(plural: &str) -> ResourceType {
        builtin_types()
            .into_iter()
            .find(|t| t.plural == plural && (t.group.is_empty() || plural != "events"))
            .unwrap()
    }

    fn create(plural: &str, mut obj: Value) -> (Value, Vec<String>) {
        let mut ip = || "10.96.0.42".to_string();
        let mut np = || 30001;
        let mut ctx = CreateCtx {
            uid: "u1",
            name: "x",
            alloc_cluster_ip: &mut ip,
            alloc_node_port: &mut np,
        };
        let errs = prepare_create(&rt(plural), &mut obj, &mut ctx);
        (obj, errs.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn pods_get_defaults_and_pending_status() {
        let (p, errs) = create(
            "pods",
            json!({"spec": {"containers": [{"name": "c", "image": "mariadb:11"}]}}),
        );
        assert!(errs.is_empty());
        assert_eq!(
            p["status"],
            json!({"phase": "Pending", "qosClass": "BestEffort"})
        );
        assert_eq!(p["spec"]["restartPolicy"], "Always");
        assert_eq!(p["spec"]["serviceAccountName"], "default");
        assert_eq!(
            p["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
        let (_, errs) = create("pods", json!({"spec": {"containers": [{"name": "c"}]}}));
        assert_eq!(errs, ["spec.containers[0].image: Required value"]);
    }

    #[test]
    fn services_get_an_ip_and_keep_it() {
        let (s, errs) = create(
            "services",
            json!({"spec": {"ports": [{"port": 3306}], "selector": {"a": "b"}}}),
        );
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(s["spec"]["clusterIP"], "10.96.0.42");
        assert_eq!(s["spec"]["ports"][0]["targetPort"], 3306);
        let mut upd = json!({"spec": {"ports": [{"port": 3307}], "selector": {"a": "c"}}});
        assert!(prepare_update(&rt("services"), &s, &mut upd, "").is_empty());
        assert_eq!(upd["spec"]["clusterIP"], "10.96.0.42");
        let mut bad = json!({"spec": {"clusterIP": "10.96.0.1", "ports": [{"port": 1}]}});
        assert_eq!(prepare_update(&rt("services"), &s, &mut bad, "").len(), 1);
        let (_, errs) = create("services", json!({"spec": {}}));
        assert_eq!(errs, ["spec.ports: Required value"]);
        let (h, errs) = create("services", json!({"spec": {"clusterIP": "None"}}));
        assert!(errs.is_empty());
        assert_eq!(h["spec"]["clusterIPs"], json!(["None"]));
    }

    #[test]
    fn statefulset_selector_must_match_and_spec_is_mostly_immutable() {
        let sts = json!({"spec": {"selector": {"matchLabels": {"app": "db"}},
            "serviceName": "db",
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        let (s, errs) = create("statefulsets", sts.clone());
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(s["spec"]["replicas"], 1);
        let mut bad = sts.clone();
        bad["spec"]["template"]["metadata"]["labels"]["app"] = json!("web");
        let (_, errs) = create("statefulsets", bad);
        assert_eq!(errs.len(), 1, "{errs:?}");
        let mut upd = s.clone();
        upd["spec"]["replicas"] = json!(3);
        assert!(prepare_update(&rt("statefulsets"), &s, &mut upd, "").is_empty());
        upd["spec"]["serviceName"] = json!("other");
        assert_eq!(
            prepare_update(&rt("statefulsets"), &s, &mut upd, "").len(),
            1
        );
    }

    #[test]
    fn names_are_validated() {
        assert!(validate_name(&rt("configmaps"), "a.b-c").is_empty());
        assert_eq!(validate_name(&rt("configmaps"), "Bad").len(), 1);
        assert_eq!(validate_name(&rt("namespaces"), "a.b").len(), 1);
        assert!(validate_name(&rt("clusterroles"), "system:x").is_empty());
    }

    #[test]
    fn events_convert_both_ways() {
        let v1 = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"},
            "regarding": {"kind": "Pod", "name": "p"}, "note": "hi", "reason": "R", "type": "Normal",
            "eventTime": "2024-01-01T00:00:00.000000Z", "reportingController": "orca", "reportingInstance": "i", "action": "A"});
        let core = event_from_v1(&v1);
        assert_eq!(core["involvedObject"]["name"], "p");
        assert_eq!(core["message"], "hi");
        assert_eq!(core["reportingComponent"], "orca");
        assert_eq!(event_to_v1(&core), v1);
        assert!(validate_v1_event(&v1).is_empty());
    }
}
