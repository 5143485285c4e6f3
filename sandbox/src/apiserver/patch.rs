//! Patches: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and the
//! strategic merge patch of the built-in kinds, approximated from their
//! patch strategies: lists of containers, volumes, env, ports, ... merge by
//! their key; `finalizers` merge as a set; other lists are replaced. The
//! `$patch`, `$retainKeys`, `$setElementOrder/` and
//! `$deleteFromPrimitiveList/` directives `kubectl apply` sends are
//! honoured.

use serde_json::{Map, Value};

use super::error::ApiError;

/// The patch types the server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Merge,
    Json,
    Strategic,
    Apply,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let base = ct.split(';').next().unwrap_or_default().trim();
        match base {
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/json-patch+json" => Some(PatchType::Json),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
                Some(PatchType::Apply)
            }
            _ => None,
        }
    }
}

/// The media types a PATCH of a custom resource accepts.
pub const CUSTOM_PATCH_TYPES: [&str; 3] = [
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
];

/// The media types a PATCH of a built-in resource accepts.
pub const BUILTIN_PATCH_TYPES: [&str; 4] = [
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];

pub fn merge_patch(doc: &Value, patch: &Value) -> Result<Value, ApiError> {
    if !patch.is_object() {
        return Err(ApiError::bad_request(
            "json: cannot unmarshal into Go value of type map[string]interface {}",
        ));
    }
    let mut out = doc.clone();
    json_patch::merge(&mut out, patch);
    Ok(out)
}

pub fn json_patch(doc: &Value, patch: &Value) -> Result<Value, ApiError> {
    // The API server's JSON patch library lets `test` of a missing path
    // against `null` pass (clients such as kube-rs' finalizer helper rely
    // on it to mean "absent"); the crate here would fail it, so such tests
    // are checked here and dropped.
    let mut patch = patch.clone();
    if let Some(ops) = patch.as_array_mut() {
        let mut kept = Vec::with_capacity(ops.len());
        for op in ops.drain(..) {
            let is_null_test = op.get("op").and_then(Value::as_str) == Some("test")
                && op.get("value").is_some_and(Value::is_null);
            if is_null_test {
                let path = op.get("path").and_then(Value::as_str).unwrap_or_default();
                match doc.pointer(path) {
                    None | Some(Value::Null) => continue,
                    Some(_) => {
                        return Err(ApiError::unprocessable(format!(
                            "testing value {path} failed: the value is not null"
                        )));
                    }
                }
            }
            kept.push(op);
        }
        *ops = kept;
    }
    let patch = &patch;
    let ops: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    let mut out = doc.clone();
    json_patch::patch(&mut out, &ops).map_err(|e| ApiError::unprocessable(e.to_string()))?;
    Ok(out)
}

/// The merge key of a list field of the built-in kinds, judged from the
/// field name and the elements; `None` for lists that are replaced.
pub fn builtin_merge_key(field: &str, sample: Option<&Value>) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims"
        | "readinessGates"
        | "schedulingGates" => {
            if field == "readinessGates" {
                Some("conditionType")
            } else {
                Some("name")
            }
        }
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        "ports" => {
            if sample.is_some_and(|s| s.get("containerPort").is_some()) {
                Some("containerPort")
            } else {
                Some("port")
            }
        }
        "conditions" => Some("type"),
        "ownerReferences" => Some("uid"),
        "hostAliases" => Some("ip"),
        "topologySpreadConstraints" => Some("topologyKey"),
        "taints" => Some("key"),
        _ => None,
    }
}

/// Lists of scalars that merge as sets.
pub fn builtin_set_list(field: &str) -> bool {
    field == "finalizers"
}

/// Applies a strategic merge patch to an object of a built-in kind.
pub fn strategic_merge(doc: &Value, patch: &Value) -> Result<Value, ApiError> {
    if !patch.is_object() {
        return Err(ApiError::bad_request(
            "json: cannot unmarshal into Go value of type map[string]interface {}",
        ));
    }
    Ok(smp_value(doc, patch))
}

fn smp_value(orig: &Value, patch: &Value) -> Value {
    match (orig, patch) {
        (Value::Object(o), Value::Object(p)) => Value::Object(smp_map(o, p)),
        (_, Value::Object(p)) => {
            // nothing to merge into: the patch minus its directives
            Value::Object(smp_map(&Map::new(), p))
        }
        (_, other) => other.clone(),
    }
}

fn smp_map(orig: &Map<String, Value>, patch: &Map<String, Value>) -> Map<String, Value> {
    if patch.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut m = patch.clone();
        m.remove("$patch");
        return strip_directives(m);
    }
    let mut out = orig.clone();
    let mut orders: Vec<(String, Vec<Value>)> = Vec::new();
    for (k, v) in patch {
        if let Some(field) = k.strip_prefix("$setElementOrder/") {
            if let Value::Array(order) = v {
                orders.push((field.to_string(), order.clone()));
            }
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(cur)), Value::Array(del)) = (out.get_mut(field), v) {
                cur.retain(|x| !del.contains(x));
            }
            continue;
        }
        if k == "$patch" || k == "$retainKeys" {
            continue;
        }
        if v.is_null() {
            out.remove(k);
            continue;
        }
        match (out.get(k), v) {
            (Some(Value::Object(_)), Value::Object(pm))
                if pm.get("$patch").and_then(Value::as_str) == Some("delete") =>
            {
                out.remove(k);
            }
            (Some(o @ Value::Object(_)), Value::Object(_)) => {
                let merged = smp_value(o, v);
                out.insert(k.clone(), merged);
            }
            (Some(Value::Array(o)), Value::Array(p)) => {
                let merged = smp_list(k, o, p);
                out.insert(k.clone(), Value::Array(merged));
            }
            (None, Value::Array(p)) => {
                let merged = smp_list(k, &[], p);
                out.insert(k.clone(), Value::Array(merged));
            }
            (_, Value::Object(pm)) => {
                if pm.get("$patch").and_then(Value::as_str) == Some("delete") {
                    out.remove(k);
                } else {
                    out.insert(k.clone(), Value::Object(smp_map(&Map::new(), pm)));
                }
            }
            (_, other) => {
                out.insert(k.clone(), other.clone());
            }
        }
    }
    if let Some(Value::Array(keep)) = patch.get("$retainKeys") {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        out.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (field, order) in orders {
        if let Some(Value::Array(list)) = out.get_mut(&field) {
            reorder(&field, list, &order);
        }
    }
    out
}

fn strip_directives(mut m: Map<String, Value>) -> Map<String, Value> {
    m.retain(|k, _| !k.starts_with('$'));
    m
}

fn key_value<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key)
}

fn smp_list(field: &str, orig: &[Value], patch: &[Value]) -> Vec<Value> {
    // a `$patch: replace` element replaces the whole list
    if patch
        .iter()
        .any(|p| p.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        return patch
            .iter()
            .filter(|p| p.get("$patch").is_none())
            .cloned()
            .collect();
    }
    let sample = patch.first().or(orig.first());
    if let Some(key) = builtin_merge_key(field, sample)
        && patch.iter().all(Value::is_object)
    {
        let mut out: Vec<Value> = orig.to_vec();
        for p in patch {
            let Some(kv) = key_value(p, key) else {
                out.push(p.clone());
                continue;
            };
            let pos = out.iter().position(|o| key_value(o, key) == Some(kv));
            let delete = p.get("$patch").and_then(Value::as_str) == Some("delete");
            match (pos, delete) {
                (Some(i), true) => {
                    out.remove(i);
                }
                (None, true) => {}
                (Some(i), false) => {
                    let merged = smp_value(&out[i], p);
                    out[i] = merged;
                }
                (None, false) => out.push(smp_value(&Value::Object(Map::new()), p)),
            }
        }
        return out;
    }
    if builtin_set_list(field) {
        let mut out: Vec<Value> = orig.to_vec();
        for p in patch {
            if !out.contains(p) {
                out.push(p.clone());
            }
        }
        return out;
    }
    patch.to_vec()
}

fn reorder(field: &str, list: &mut [Value], order: &[Value]) {
    let sample = order.first();
    let key = builtin_merge_key(field, sample);
    let pos = |v: &Value| -> usize {
        order
            .iter()
            .position(|o| match key {
                Some(k) if o.is_object() => o.get(k) == v.get(k),
                _ => o == v,
            })
            .unwrap_or(usize::MAX)
    };
    list.sort_by_key(|v| pos(v));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merges_containers_by_name() {
        let doc = json!({"spec": {"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
            {"name": "b", "image": "b:1"}
        ], "tolerations": [{"key": "t"}]}, "metadata": {"finalizers": ["x"]}});
        let patch = json!({"spec": {"containers": [
            {"name": "a", "image": "a:2", "env": [{"name": "Y", "value": "2"}]},
            {"name": "b", "$patch": "delete"},
            {"name": "c", "image": "c:1"}
        ], "tolerations": [{"key": "u"}]}, "metadata": {"finalizers": ["y"]}});
        let out = strategic_merge(&doc, &patch).unwrap();
        assert_eq!(
            out["spec"]["containers"],
            json!([
                {"name": "a", "image": "a:2", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]},
                {"name": "c", "image": "c:1"}
            ])
        );
        assert_eq!(out["spec"]["tolerations"], json!([{"key": "u"}]));
        assert_eq!(out["metadata"]["finalizers"], json!(["x", "y"]));
    }

    #[test]
    fn strategic_directives() {
        let doc = json!({"metadata": {"finalizers": ["a", "b"], "labels": {"x": "1", "y": "2"}},
                         "spec": {"ports": [{"port": 80}, {"port": 443}]}});
        let patch = json!({
            "$deleteFromPrimitiveList/finalizers": ["a"],
            "metadata": {"labels": {"x": null}, "$deleteFromPrimitiveList/finalizers": ["a"]},
            "spec": {"$setElementOrder/ports": [{"port": 443}, {"port": 80}], "ports": [{"port": 80, "name": "http"}]}
        });
        let out = strategic_merge(&doc, &patch).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
        assert_eq!(out["metadata"]["labels"], json!({"y": "2"}));
        assert_eq!(
            out["spec"]["ports"],
            json!([{"port": 443}, {"port": 80, "name": "http"}])
        );
        let replaced =
            strategic_merge(&doc, &json!({"spec": {"$patch": "replace", "other": 1}})).unwrap();
        assert_eq!(replaced["spec"], json!({"other": 1}));
    }

    #[test]
    fn json_and_merge_patches() {
        let doc = json!({"a": {"b": 1, "c": 2}});
        assert_eq!(
            merge_patch(&doc, &json!({"a": {"b": null}})).unwrap(),
            json!({"a": {"c": 2}})
        );
        assert_eq!(
            json_patch(
                &doc,
                &json!([{"op": "replace", "path": "/a/b", "value": 5}])
            )
            .unwrap(),
            json!({"a": {"b": 5, "c": 2}})
        );
        // A test of a missing path against null passes, as in the real
        // API server (kube-rs' finalizer helper relies on it).
        let added = json_patch(
            &json!({"metadata": {"name": "x"}}),
            &json!([{"op": "test", "path": "/metadata/finalizers", "value": null},
                    {"op": "add", "path": "/metadata/finalizers", "value": ["x"]}]),
        )
        .unwrap();
        assert_eq!(added.pointer("/metadata/finalizers/0"), Some(&json!("x")));
        let e = json_patch(&doc, &json!([{"op": "test", "path": "/a/b", "value": 9}])).unwrap_err();
        assert_eq!(e.code, 422);
        assert_eq!(json_patch(&doc, &json!({"op": 1})).unwrap_err().code, 400);
    }
}
