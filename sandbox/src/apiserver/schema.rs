//! Structural-schema handling of custom objects, in the real server's
//! order: prune unknown fields (and nulls of non-nullable fields), apply
//! defaults, validate. Validation errors use the wording of the real
//! server (kube-openapi messages wrapped in field errors), so that
//! `kubectl` prints what it prints against a real cluster.

use regex::Regex;
use serde_json::{Map, Value};

use super::error::{FieldError, FieldErrorType, go_float};

/// Fields of `metadata` a custom object keeps.
const OBJECT_META: [&str; 16] = [
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
    "clusterName",
];

fn truthy(s: &Value, key: &str) -> bool {
    s.get(key).and_then(Value::as_bool) == Some(true)
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Prunes, defaults and validates a whole custom object. Returns the
/// unknown fields that were dropped (for warnings) and the validation
/// errors.
pub fn process(schema: &Value, obj: &mut Value) -> (Vec<String>, Vec<FieldError>) {
    let mut unknown = Vec::new();
    if let Value::Object(m) = obj {
        if let Some(Value::Object(meta)) = m.get_mut("metadata") {
            meta.retain(|k, _| OBJECT_META.contains(&k.as_str()));
        }
        let props = schema.get("properties").and_then(Value::as_object);
        let preserve = truthy(schema, "x-kubernetes-preserve-unknown-fields");
        let keys: Vec<String> = m.keys().cloned().collect();
        for k in keys {
            if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            match props.and_then(|p| p.get(&k)) {
                Some(ps) => {
                    if m.get(&k).is_some_and(Value::is_null) && !truthy(ps, "nullable") {
                        m.remove(&k);
                        continue;
                    }
                    if let Some(v) = m.get_mut(&k) {
                        prune(v, ps, &k, &mut unknown);
                    }
                }
                None if preserve => {}
                None => {
                    m.remove(&k);
                    unknown.push(k);
                }
            }
        }
    }
    default(obj, schema, true);
    let mut errors = Vec::new();
    // The root's apiVersion, kind and metadata are not the schema's.
    let mut body = obj.clone();
    if let Value::Object(m) = &mut body {
        m.remove("apiVersion");
        m.remove("kind");
        m.remove("metadata");
    }
    let mut root_schema = schema.clone();
    if let Some(Value::Object(p)) = root_schema.get_mut("properties") {
        p.remove("metadata");
        p.remove("apiVersion");
        p.remove("kind");
    }
    if let Some(Value::Array(req)) = root_schema.get_mut("required") {
        req.retain(|r| !matches!(r.as_str(), Some("metadata" | "apiVersion" | "kind")));
    }
    validate(&body, &root_schema, "", &mut errors);
    (unknown, errors)
}

fn prune(v: &mut Value, s: &Value, path: &str, unknown: &mut Vec<String>) {
    if !s.is_object() {
        return;
    }
    match v {
        Value::Object(m) => {
            let preserve = truthy(s, "x-kubernetes-preserve-unknown-fields");
            let embedded = truthy(s, "x-kubernetes-embedded-resource");
            let props = s.get("properties").and_then(Value::as_object);
            let addl = s.get("additionalProperties");
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                let p = child(path, &k);
                if let Some(ps) = props.and_then(|p| p.get(&k)) {
                    if m.get(&k).is_some_and(Value::is_null) && !truthy(ps, "nullable") {
                        m.remove(&k);
                        continue;
                    }
                    if let Some(x) = m.get_mut(&k) {
                        prune(x, ps, &p, unknown);
                    }
                } else if let Some(a @ Value::Object(_)) = addl {
                    if m.get(&k).is_some_and(Value::is_null) && !truthy(a, "nullable") {
                        m.remove(&k);
                        continue;
                    }
                    if let Some(x) = m.get_mut(&k) {
                        prune(x, a, &p, unknown);
                    }
                } else if addl == Some(&Value::Bool(true))
                    || preserve
                    || (embedded && matches!(k.as_str(), "apiVersion" | "kind" | "metadata"))
                {
                } else {
                    m.remove(&k);
                    unknown.push(p);
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = s.get("items") {
                for (i, x) in a.iter_mut().enumerate() {
                    prune(x, items, &format!("{path}[{i}]"), unknown);
                }
            }
        }
        _ => {}
    }
}

fn default(v: &mut Value, s: &Value, root: bool) {
    if !s.is_object() {
        return;
    }
    match v {
        Value::Object(m) => {
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                for (k, ps) in props {
                    if root && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                        continue;
                    }
                    if !m.contains_key(k)
                        && let Some(d) = ps.get("default")
                    {
                        m.insert(k.clone(), d.clone());
                    }
                    if let Some(x) = m.get_mut(k) {
                        default(x, ps, false);
                    }
                }
            }
            if let Some(a @ Value::Object(_)) = s.get("additionalProperties") {
                let keys: Vec<String> = m.keys().cloned().collect();
                let props = s.get("properties").and_then(Value::as_object);
                for k in keys {
                    if props.is_some_and(|p| p.contains_key(&k)) {
                        continue;
                    }
                    if let Some(x) = m.get_mut(&k) {
                        default(x, a, false);
                    }
                }
            }
        }
        Value::Array(arr) => {
            if let Some(items) = s.get("items") {
                for x in arr.iter_mut() {
                    default(x, items, false);
                }
            }
        }
        _ => {}
    }
}

/// The type name kube-openapi reports for a value.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) => {
            if n.is_i64() || n.is_u64() {
                "integer"
            } else {
                "number"
            }
        }
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_ok(want: &str, v: &Value) -> bool {
    let got = type_name(v);
    match want {
        "integer" => {
            got == "integer" || (got == "number" && v.as_f64().is_some_and(|f| f.fract() == 0.0))
        }
        "number" => got == "number" || got == "integer",
        other => got == other,
    }
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn bound(v: &Value) -> String {
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.to_string()
            } else {
                go_float(n.as_f64().unwrap_or(0.0))
            }
        }
        other => other.to_string(),
    }
}

fn display_path(path: &str) -> &str {
    if path.is_empty() { "<root>" } else { path }
}

/// Validates `v` against `s` at `path`, appending errors.
pub fn validate(v: &Value, s: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let Some(sm) = s.as_object() else {
        return;
    };
    let name = display_path(path);
    if v.is_null() && truthy(s, "nullable") {
        return;
    }
    if truthy(s, "x-kubernetes-int-or-string") {
        if !(type_ok("integer", v) || v.is_string()) {
            errors.push(FieldError::new(
                FieldErrorType::TypeInvalid,
                name,
                Some(Value::String(type_name(v).into())),
                &format!(
                    "{name} in body must be of type integer,string: \"{}\"",
                    type_name(v)
                ),
            ));
            return;
        }
    } else if let Some(t) = sm.get("type").and_then(Value::as_str)
        && !type_ok(t, v)
    {
        errors.push(FieldError::new(
            FieldErrorType::TypeInvalid,
            name,
            Some(Value::String(type_name(v).into())),
            &format!("{name} in body must be of type {t}: \"{}\"", type_name(v)),
        ));
        return;
    }
    if let Some(Value::Array(allowed)) = sm.get("enum")
        && !allowed
            .iter()
            .any(|a| a == v || (a.as_f64().is_some() && a.as_f64() == v.as_f64()))
    {
        let values: Vec<String> = allowed
            .iter()
            .map(|a| match a {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        errors.push(FieldError::not_supported(name, v.clone(), &values));
    }
    match v {
        Value::String(st) => {
            let len = st.chars().count() as u64;
            if let Some(max) = sm.get("maxLength").and_then(Value::as_u64)
                && len > max
            {
                errors.push(FieldError::new(
                    FieldErrorType::TooLong,
                    name,
                    Some(v.clone()),
                    &format!(
                        "may not be more than {max} {}",
                        if max == 1 { "byte" } else { "bytes" }
                    ),
                ));
            }
            if let Some(min) = sm.get("minLength").and_then(Value::as_u64)
                && len < min
            {
                errors.push(FieldError::invalid(
                    name,
                    v.clone(),
                    &format!("{name} in body should be at least {min} chars long"),
                ));
            }
            if let Some(p) = sm.get("pattern").and_then(Value::as_str)
                && let Ok(re) = Regex::new(p)
                && !re.is_match(st)
            {
                errors.push(FieldError::invalid(
                    name,
                    v.clone(),
                    &format!("{name} in body should match '{p}'"),
                ));
            }
        }
        Value::Number(_) => {
            let x = num(v).unwrap_or(0.0);
            if let Some(maxv) = sm.get("maximum")
                && let Some(max) = num(maxv)
            {
                let excl = truthy(s, "exclusiveMaximum");
                if (excl && x >= max) || (!excl && x > max) {
                    let rel = if excl {
                        "less than"
                    } else {
                        "less than or equal to"
                    };
                    errors.push(FieldError::invalid(
                        name,
                        v.clone(),
                        &format!("{name} in body should be {rel} {}", bound(maxv)),
                    ));
                }
            }
            if let Some(minv) = sm.get("minimum")
                && let Some(min) = num(minv)
            {
                let excl = truthy(s, "exclusiveMinimum");
                if (excl && x <= min) || (!excl && x < min) {
                    let rel = if excl {
                        "greater than"
                    } else {
                        "greater than or equal to"
                    };
                    errors.push(FieldError::invalid(
                        name,
                        v.clone(),
                        &format!("{name} in body should be {rel} {}", bound(minv)),
                    ));
                }
            }
            if let Some(mv) = sm.get("multipleOf")
                && let Some(m) = num(mv)
                && m != 0.0
                && (x / m).fract() != 0.0
            {
                errors.push(FieldError::invalid(
                    name,
                    v.clone(),
                    &format!("{name} in body should be a multiple of {}", bound(mv)),
                ));
            }
        }
        Value::Array(items) => {
            let n = items.len() as u64;
            if let Some(max) = sm.get("maxItems").and_then(Value::as_u64)
                && n > max
            {
                errors.push(FieldError::new(
                    FieldErrorType::TooMany,
                    name,
                    Some(Value::from(n)),
                    &format!("must have at most {max} items"),
                ));
            }
            if let Some(min) = sm.get("minItems").and_then(Value::as_u64)
                && n < min
            {
                errors.push(FieldError::invalid(
                    name,
                    v.clone(),
                    &format!("{name} in body should have at least {min} items"),
                ));
            }
            if truthy(s, "uniqueItems") {
                let dup = items
                    .iter()
                    .enumerate()
                    .any(|(i, a)| items[..i].contains(a));
                if dup {
                    errors.push(FieldError::invalid(
                        name,
                        v.clone(),
                        &format!("{name} in body shouldn't contain duplicates"),
                    ));
                }
            }
            match sm.get("x-kubernetes-list-type").and_then(Value::as_str) {
                Some("set") => {
                    for (i, a) in items.iter().enumerate() {
                        if items[..i].contains(a) {
                            errors.push(FieldError::new(
                                FieldErrorType::Duplicate,
                                &format!("{path}[{i}]"),
                                Some(a.clone()),
                                "",
                            ));
                        }
                    }
                }
                Some("map") => {
                    let keys: Vec<String> = sm
                        .get("x-kubernetes-list-map-keys")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(Value::as_str)
                                .map(String::from)
                                .collect()
                        })
                        .unwrap_or_default();
                    let key_of = |x: &Value| -> Value {
                        let mut m = Map::new();
                        for k in &keys {
                            if let Some(kv) = x.get(k) {
                                m.insert(k.clone(), kv.clone());
                            }
                        }
                        Value::Object(m)
                    };
                    let ks: Vec<Value> = items.iter().map(key_of).collect();
                    for (i, k) in ks.iter().enumerate() {
                        if ks[..i].contains(k) {
                            errors.push(FieldError::new(
                                FieldErrorType::Duplicate,
                                &format!("{path}[{i}]"),
                                Some(k.clone()),
                                "",
                            ));
                        }
                    }
                }
                _ => {}
            }
            if let Some(is) = sm.get("items") {
                for (i, x) in items.iter().enumerate() {
                    validate(x, is, &format!("{path}[{i}]"), errors);
                }
            }
        }
        Value::Object(m) => {
            let n = m.len() as u64;
            if let Some(max) = sm.get("maxProperties").and_then(Value::as_u64)
                && n > max
            {
                errors.push(FieldError::new(
                    FieldErrorType::TooMany,
                    name,
                    Some(Value::from(n)),
                    &format!("must have at most {max} items"),
                ));
            }
            if let Some(min) = sm.get("minProperties").and_then(Value::as_u64)
                && n < min
            {
                errors.push(FieldError::invalid(
                    name,
                    v.clone(),
                    &format!("{name} in body should have at least {min} properties"),
                ));
            }
            if let Some(Value::Array(req)) = sm.get("required") {
                for r in req.iter().filter_map(Value::as_str) {
                    if !m.contains_key(r) {
                        errors.push(FieldError::required(&child(path, r), ""));
                    }
                }
            }
            let props = sm.get("properties").and_then(Value::as_object);
            for (k, x) in m {
                if let Some(ps) = props.and_then(|p| p.get(k)) {
                    validate(x, ps, &child(path, k), errors);
                } else if let Some(a @ Value::Object(_)) = sm.get("additionalProperties") {
                    validate(x, a, &child(path, k), errors);
                }
            }
        }
        _ => {}
    }
    if let Some(Value::Array(all)) = sm.get("allOf") {
        for sub in all {
            validate(v, sub, path, errors);
        }
    }
    if let Some(Value::Array(any)) = sm.get("anyOf") {
        let ok = any.iter().any(|sub| {
            let mut e = Vec::new();
            validate(v, sub, path, &mut e);
            e.is_empty()
        });
        if !ok {
            errors.push(FieldError::invalid(
                name,
                v.clone(),
                &format!("{name} in body must validate at least one schema (anyOf)"),
            ));
        }
    }
    if let Some(Value::Array(one)) = sm.get("oneOf") {
        let n = one
            .iter()
            .filter(|sub| {
                let mut e = Vec::new();
                validate(v, sub, path, &mut e);
                e.is_empty()
            })
            .count();
        if n != 1 {
            errors.push(FieldError::invalid(
                name,
                v.clone(),
                &format!("{name} in body must validate one and only one schema (oneOf)"),
            ));
        }
    }
    if let Some(not) = sm.get("not") {
        let mut e = Vec::new();
        validate(v, not, path, &mut e);
        if e.is_empty() {
            errors.push(FieldError::invalid(
                name,
                v.clone(),
                &format!("{name} in body must not validate the schema (not)"),
            ));
        }
    }
}

/// The list type of the array at `path` in a schema (`atomic` when not
/// said), and its map keys.
pub fn list_type_at(schema: &Value, path: &[String]) -> Option<(String, Vec<String>)> {
    let mut s = schema;
    for p in path {
        if let Some(x) = s.get("properties").and_then(|m| m.get(p)) {
            s = x;
        } else if let Some(x) = s.get("items") {
            // path elements inside lists are keys; step into items then field
            if let Some(y) = x.get("properties").and_then(|m| m.get(p)) {
                s = y;
            } else {
                return None;
            }
        } else if let Some(a @ Value::Object(_)) = s.get("additionalProperties") {
            s = a;
        } else {
            return None;
        }
    }
    if s.get("type").and_then(Value::as_str) != Some("array") {
        return None;
    }
    let ty = s
        .get("x-kubernetes-list-type")
        .and_then(Value::as_str)
        .unwrap_or("atomic")
        .to_string();
    let keys = s
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    Some((ty, keys))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["replicas"],
                    "properties": {
                        "replicas": {"type": "integer", "minimum": 1, "maximum": 9},
                        "flavor": {"type": "string", "enum": ["mysql", "mariadb"]},
                        "image": {"type": "string", "minLength": 3, "maxLength": 10, "pattern": "^[a-z:.0-9]+$"},
                        "mode": {"type": "string", "default": "async"},
                        "port": {"x-kubernetes-int-or-string": true},
                        "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "opt": {"type": "string", "nullable": true}
                    }
                },
                "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}
            }
        })
    }

    fn run(obj: Value) -> (Value, Vec<String>, Vec<String>) {
        let mut o = obj;
        let (unknown, errs) = process(&schema(), &mut o);
        (o, unknown, errs.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn minimum_message_is_the_real_one() {
        let (_, _, errs) = run(
            json!({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "x"}, "spec": {"replicas": 0}}),
        );
        assert_eq!(
            errs,
            [
                "spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1"
            ]
        );
    }

    #[test]
    fn types_required_enum_strings() {
        let (_, _, errs) = run(json!({"spec": {"replicas": "3"}}));
        assert_eq!(
            errs,
            [
                "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\""
            ]
        );
        let (_, _, errs) = run(json!({"spec": {}}));
        assert_eq!(errs, ["spec.replicas: Required value"]);
        let (_, _, errs) = run(json!({"spec": {"replicas": 10, "flavor": "pg", "image": "AB"}}));
        assert_eq!(
            errs,
            [
                "spec.flavor: Unsupported value: \"pg\": supported values: \"mysql\", \"mariadb\"",
                "spec.image: Invalid value: \"AB\": spec.image in body should be at least 3 chars long",
                "spec.image: Invalid value: \"AB\": spec.image in body should match '^[a-z:.0-9]+$'",
                "spec.replicas: Invalid value: 10: spec.replicas in body should be less than or equal to 9",
            ]
        );
        let (_, _, errs) = run(json!({"spec": {"replicas": 1, "image": "abcdefghijk"}}));
        assert_eq!(
            errs,
            ["spec.image: Too long: may not be more than 10 bytes"]
        );
        let (_, _, errs) = run(json!({"spec": {"replicas": 1, "tags": ["a", "a", "b"]}}));
        assert_eq!(
            errs,
            [
                "spec.tags: Too many: 3: must have at most 2 items",
                "spec.tags[1]: Duplicate value: \"a\""
            ]
        );
        let (_, _, errs) = run(json!({"spec": {"replicas": 1, "port": true, "labels": {"a": 1}}}));
        assert_eq!(
            errs,
            [
                "spec.labels.a: Invalid value: \"integer\": spec.labels.a in body must be of type string: \"integer\"",
                "spec.port: Invalid value: \"boolean\": spec.port in body must be of type integer,string: \"boolean\"",
            ]
        );
    }

    #[test]
    fn prunes_and_defaults() {
        let (o, unknown, errs) = run(json!({
            "apiVersion": "x/v1", "kind": "X", "metadata": {"name": "x", "bogus": 1},
            "spec": {"replicas": 2, "junk": 1, "extra": {"any": {"thing": 1}}, "opt": null, "flavor": null, "port": "http"},
            "other": 1
        }));
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(unknown, ["other", "spec.junk"]);
        assert_eq!(o["spec"]["mode"], "async");
        assert_eq!(o["spec"]["extra"]["any"]["thing"], 1);
        assert!(o["spec"]["opt"].is_null() && o["spec"].get("opt").is_some());
        assert!(o["spec"].get("flavor").is_none());
        assert!(o["metadata"].get("bogus").is_none());
    }

    #[test]
    fn list_types_are_read_from_the_schema() {
        let s = schema();
        assert_eq!(
            list_type_at(&s, &["spec".into(), "tags".into()]),
            Some(("set".into(), vec![]))
        );
        assert_eq!(list_type_at(&s, &["spec".into(), "replicas".into()]), None);
    }
}
