//! Validation of a value against a CRD's OpenAPI v3 schema, the way the
//! Kubernetes API server validates a custom resource before it stores it,
//! with its wording (`spec.replicas: Invalid value: 0: spec.replicas in body
//! should be greater than or equal to 1`).
//!
//! Covered: `type`, `nullable`, `enum`, `required`, `properties`,
//! `additionalProperties`, `items`, `minimum`/`maximum` (and their
//! `exclusive*` flags), `multipleOf`, `minLength`/`maxLength`, `pattern`,
//! `format: date-time`, `minItems`/`maxItems`, `minProperties`/
//! `maxProperties`, `allOf`/`anyOf`/`oneOf`/`not`,
//! `x-kubernetes-int-or-string`, `x-kubernetes-preserve-unknown-fields`,
//! and duplicates in `x-kubernetes-list-type: map|set` lists.
//!
//! Not covered: CEL rules (`x-kubernetes-validations`), formats other than
//! `date-time`, defaulting and pruning. Unknown fields are not errors here,
//! as the API server prunes them; [`unknown_fields`] lists them, as a
//! strict field validation (`kubectl`'s default) would reject them.
//!
//! At the root (and in `x-kubernetes-embedded-resource` objects) the fields
//! `apiVersion`, `kind` and `metadata` are known even when the schema does
//! not list them, and are not validated unless it does.

use std::collections::HashMap;

use regex::Regex;
use serde_json::{Map, Value};

use super::field::{FieldPath, display_number};

/// Checks `value` (a whole object, e.g. a `MySQLCluster` with `apiVersion`,
/// `kind`, `metadata` and `spec`) against `schema` (a CRD version's
/// `openAPIV3Schema`). Returns one message per violation, in document
/// order; empty when the value is valid.
pub fn validate_against_schema(schema: &Value, value: &Value) -> Vec<String> {
    let mut v = Validator::default();
    v.node(schema, value, &FieldPath::root(), true);
    v.errors
}

/// Fields of `value` that `schema` does not know and the API server would
/// prune, as `unknown field "spec.foo"`. Fields under
/// `x-kubernetes-preserve-unknown-fields` or `additionalProperties` are known.
pub fn unknown_fields(schema: &Value, value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    unknown(schema, value, &FieldPath::root(), true, &mut out);
    out
}

/// Validates `value` found at `path` against `schema`, a subschema (not a
/// resource's root: `apiVersion`, `kind` and `metadata` get no special
/// treatment).
pub(crate) fn validate_node(schema: &Value, value: &Value, path: &FieldPath) -> Vec<String> {
    let mut v = Validator::default();
    v.node(schema, value, path, false);
    v.errors
}

/// [`unknown_fields`] of a value found at `path` under a subschema.
pub(crate) fn unknown_fields_at(schema: &Value, value: &Value, path: &FieldPath) -> Vec<String> {
    let mut out = Vec::new();
    unknown(schema, value, path, false, &mut out);
    out
}

const RESOURCE_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

fn is_true(schema: &Map<String, Value>, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool) == Some(true)
}

fn unknown(schema: &Value, value: &Value, path: &FieldPath, root: bool, out: &mut Vec<String>) {
    let Some(schema) = schema.as_object() else {
        return;
    };
    match value {
        Value::Object(fields) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            let resource = root || is_true(schema, "x-kubernetes-embedded-resource");
            let keeps_unknown = is_true(schema, "x-kubernetes-preserve-unknown-fields")
                || additional.is_some_and(|a| a.as_bool() == Some(true));
            for (name, field_value) in fields {
                let child = path.child(name);
                if let Some(prop) = props.and_then(|p| p.get(name)) {
                    unknown(prop, field_value, &child, false, out);
                } else if let Some(add) = additional.filter(|a| a.is_object()) {
                    unknown(add, field_value, &path.key(name), false, out);
                } else if !(keeps_unknown || resource && RESOURCE_FIELDS.contains(&name.as_str())) {
                    out.push(format!("unknown field {:?}", child.as_str()));
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    unknown(item_schema, item, &path.index(i), false, out);
                }
            }
        }
        _ => {}
    }
}

#[derive(Default)]
struct Validator {
    errors: Vec<String>,
    regexes: HashMap<String, Option<Regex>>,
}

/// The JSON type name the API server reports for a value.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if is_integer(n) => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_integer(n: &serde_json::Number) -> bool {
    n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
}

fn type_matches(ty: &str, value: &Value) -> bool {
    match (ty, value) {
        ("object", Value::Object(_)) => true,
        ("array", Value::Array(_)) => true,
        ("string", Value::String(_)) => true,
        ("boolean", Value::Bool(_)) => true,
        ("number", Value::Number(_)) => true,
        ("integer", Value::Number(n)) => is_integer(n),
        _ => false,
    }
}

/// `spec.replicas in body`, or `body` at the root.
fn subject(path: &FieldPath) -> String {
    if path.is_root() {
        "body".to_string()
    } else {
        format!("{path} in body")
    }
}

fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn number(schema: &Map<String, Value>, key: &str) -> Option<f64> {
    schema.get(key).and_then(Value::as_f64)
}

fn count(schema: &Map<String, Value>, key: &str) -> Option<u64> {
    schema.get(key).and_then(Value::as_u64)
}

fn show(f: f64) -> String {
    serde_json::Number::from_f64(f)
        .map(|n| display_number(&n))
        .unwrap_or_else(|| f.to_string())
}

impl Validator {
    fn regex(&mut self, pattern: &str) -> Option<&Regex> {
        self.regexes
            .entry(pattern.to_string())
            .or_insert_with(|| Regex::new(pattern).ok())
            .as_ref()
    }

    /// Validates `value` against `schema` without recording anything;
    /// whether it passed.
    fn passes(&mut self, schema: &Value, value: &Value, path: &FieldPath) -> bool {
        let saved = std::mem::take(&mut self.errors);
        self.node(schema, value, path, false);
        let ok = self.errors.is_empty();
        self.errors = saved;
        ok
    }

    fn node(&mut self, schema: &Value, value: &Value, path: &FieldPath, root: bool) {
        let Some(schema) = schema.as_object() else {
            return;
        };
        let ty = schema.get("type").and_then(Value::as_str);
        let int_or_string = is_true(schema, "x-kubernetes-int-or-string");

        if value.is_null() {
            if !is_true(schema, "nullable") {
                if let Some(ty) = ty {
                    self.type_error(path, ty, value);
                } else if int_or_string {
                    self.type_error(path, "integer,string", value);
                }
            }
            return;
        }
        if int_or_string {
            if !matches!(value, Value::String(_)) && !type_matches("integer", value) {
                self.type_error(path, "integer,string", value);
                return;
            }
        } else if let Some(ty) = ty
            && !type_matches(ty, value)
        {
            self.type_error(path, ty, value);
            return;
        }

        if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
            && !allowed.iter().any(|a| json_equal(a, value))
        {
            self.errors.push(path.not_supported(value, allowed));
        }

        match value {
            Value::Number(n) => self.number(schema, n, value, path),
            Value::String(s) => self.string(schema, s, value, path),
            Value::Array(items) => self.array(schema, items, path),
            Value::Object(fields) => self.object(schema, fields, path, root),
            _ => {}
        }

        self.junctors(schema, value, path);
    }

    fn type_error(&mut self, path: &FieldPath, ty: &str, value: &Value) {
        let actual = type_name(value);
        self.errors.push(path.invalid(
            &Value::String(actual.to_string()),
            &format!("{} must be of type {ty}: {actual:?}", subject(path)),
        ));
    }

    fn number(
        &mut self,
        schema: &Map<String, Value>,
        n: &serde_json::Number,
        value: &Value,
        path: &FieldPath,
    ) {
        let Some(x) = n.as_f64() else { return };
        if let Some(min) = number(schema, "minimum") {
            if is_true(schema, "exclusiveMinimum") {
                if x <= min {
                    self.errors.push(path.invalid(
                        value,
                        &format!("{} should be greater than {}", subject(path), show(min)),
                    ));
                }
            } else if x < min {
                self.errors.push(path.invalid(
                    value,
                    &format!(
                        "{} should be greater than or equal to {}",
                        subject(path),
                        show(min)
                    ),
                ));
            }
        }
        if let Some(max) = number(schema, "maximum") {
            if is_true(schema, "exclusiveMaximum") {
                if x >= max {
                    self.errors.push(path.invalid(
                        value,
                        &format!("{} should be less than {}", subject(path), show(max)),
                    ));
                }
            } else if x > max {
                self.errors.push(path.invalid(
                    value,
                    &format!(
                        "{} should be less than or equal to {}",
                        subject(path),
                        show(max)
                    ),
                ));
            }
        }
        if let Some(factor) = number(schema, "multipleOf")
            && factor > 0.0
        {
            let q = x / factor;
            if (q - q.round()).abs() > 1e-9 {
                self.errors.push(path.invalid(
                    value,
                    &format!("{} should be a multiple of {}", subject(path), show(factor)),
                ));
            }
        }
    }

    fn string(&mut self, schema: &Map<String, Value>, s: &str, value: &Value, path: &FieldPath) {
        let chars = s.chars().count() as u64;
        if let Some(min) = count(schema, "minLength")
            && chars < min
        {
            self.errors.push(path.invalid(
                value,
                &format!("{} should be at least {min} chars long", subject(path)),
            ));
        }
        if let Some(max) = count(schema, "maxLength")
            && chars > max
        {
            self.errors.push(path.invalid(
                value,
                &format!("{} should be at most {max} chars long", subject(path)),
            ));
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
            && let Some(re) = self.regex(pattern)
            && !re.is_match(s)
        {
            let msg = format!("{} should match '{pattern}'", subject(path));
            self.errors.push(path.invalid(value, &msg));
        }
        if schema.get("format").and_then(Value::as_str) == Some("date-time") {
            const DATE_TIME: &str =
                r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$";
            if let Some(re) = self.regex(DATE_TIME)
                && !re.is_match(s)
            {
                let msg = format!("{} must be of type date-time: {s:?}", subject(path));
                self.errors.push(path.invalid(value, &msg));
            }
        }
    }

    fn array(&mut self, schema: &Map<String, Value>, items: &[Value], path: &FieldPath) {
        if let Some(min) = count(schema, "minItems")
            && (items.len() as u64) < min
        {
            self.errors.push(path.invalid(
                &Value::from(items.len()),
                &format!("{} should have at least {min} items", subject(path)),
            ));
        }
        if let Some(max) = count(schema, "maxItems")
            && (items.len() as u64) > max
        {
            self.errors.push(path.too_many(items.len(), max));
        }
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                self.node(item_schema, item, &path.index(i), false);
            }
        }
        match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("map") => {
                let keys: Vec<&str> = schema
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|k| k.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let identity = |item: &Value| -> Value {
                    let mut m = Map::new();
                    for k in &keys {
                        if let Some(v) = item.get(*k) {
                            m.insert((*k).to_string(), v.clone());
                        }
                    }
                    Value::Object(m)
                };
                self.duplicates(items, path, identity);
            }
            Some("set") => self.duplicates(items, path, Value::clone),
            _ => {}
        }
    }

    /// `path[i]: Duplicate value: <identity>` for each item whose identity
    /// an earlier item has.
    fn duplicates(
        &mut self,
        items: &[Value],
        path: &FieldPath,
        identity: impl Fn(&Value) -> Value,
    ) {
        let mut seen: Vec<Value> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let id = identity(item);
            if seen.iter().any(|s| json_equal(s, &id)) {
                self.errors
                    .push(format!("{}: Duplicate value: {id}", path.index(i)));
            } else {
                seen.push(id);
            }
        }
    }

    fn object(
        &mut self,
        schema: &Map<String, Value>,
        fields: &Map<String, Value>,
        path: &FieldPath,
        root: bool,
    ) {
        if let Some(min) = count(schema, "minProperties")
            && (fields.len() as u64) < min
        {
            self.errors.push(path.invalid(
                &Value::from(fields.len()),
                &format!("{} should have at least {min} properties", subject(path)),
            ));
        }
        if let Some(max) = count(schema, "maxProperties")
            && (fields.len() as u64) > max
        {
            self.errors.push(path.too_many(fields.len(), max));
        }
        let resource = root || is_true(schema, "x-kubernetes-embedded-resource");
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for name in required.iter().filter_map(Value::as_str) {
                if !fields.contains_key(name) {
                    self.errors.push(path.child(name).required(""));
                }
            }
        }
        let props = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties").filter(|a| a.is_object());
        for (name, field_value) in fields {
            if let Some(prop) = props.and_then(|p| p.get(name)) {
                self.node(prop, field_value, &path.child(name), false);
            } else if resource && RESOURCE_FIELDS.contains(&name.as_str()) {
                // Validated by the API server itself, not by the schema.
            } else if let Some(add) = additional {
                self.node(add, field_value, &path.key(name), false);
            }
        }
    }

    fn junctors(&mut self, schema: &Map<String, Value>, value: &Value, path: &FieldPath) {
        let shown = Value::String(type_name(value).to_string());
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            let mut failed = false;
            for sub in all {
                let before = self.errors.len();
                self.node(sub, value, path, false);
                failed |= self.errors.len() > before;
            }
            if failed {
                let msg = format!("{} must validate all the schemas (allOf)", subject(path));
                self.errors.push(path.invalid(&shown, &msg));
            }
        }
        if let Some(any) = schema.get("anyOf").and_then(Value::as_array)
            && !any.iter().any(|sub| self.passes(sub, value, path))
        {
            let msg = format!(
                "{} must validate at least one schema (anyOf)",
                subject(path)
            );
            self.errors.push(path.invalid(&shown, &msg));
        }
        if let Some(one) = schema.get("oneOf").and_then(Value::as_array) {
            let passing = one
                .iter()
                .filter(|sub| self.passes(sub, value, path))
                .count();
            if passing != 1 {
                let msg = format!(
                    "{} must validate one and only one schema (oneOf)",
                    subject(path)
                );
                self.errors.push(path.invalid(&shown, &msg));
            }
        }
        if let Some(not) = schema.get("not")
            && self.passes(not, value, path)
        {
            let msg = format!("{} must not validate the schema (not)", subject(path));
            self.errors.push(path.invalid(&shown, &msg));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn cluster_schema() -> Value {
        json!({
            "type": "object",
            "required": ["spec"],
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {
                        "image": {"type": "string", "minLength": 1, "maxLength": 20},
                        "replicas": {"type": "integer", "minimum": 1.0, "maximum": 9},
                        "ratio": {"type": "number", "minimum": 0, "exclusiveMinimum": true,
                                  "maximum": 1, "exclusiveMaximum": true},
                        "step": {"type": "integer", "multipleOf": 5},
                        "flavor": {"type": "string", "enum": ["mysql", "mariadb"], "nullable": true},
                        "period": {"type": "string", "pattern": "^([0-9]+(ms|s|m|h))+$"},
                        "size": {"x-kubernetes-int-or-string": true},
                        "config": {"type": "object", "additionalProperties": {"type": "string"}},
                        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 2,
                                 "x-kubernetes-list-type": "set"},
                        "rules": {
                            "type": "array",
                            "x-kubernetes-list-type": "map",
                            "x-kubernetes-list-map-keys": ["pod"],
                            "items": {
                                "type": "object",
                                "required": ["pod", "rule"],
                                "properties": {
                                    "pod": {"type": "string"},
                                    "rule": {"type": "string", "enum": ["prefer", "must_not"]}
                                }
                            }
                        },
                        "template": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "when": {"type": "string", "format": "date-time"},
                        "labels": {"type": "object", "maxProperties": 1, "minProperties": 1,
                                   "additionalProperties": {"type": "string"}}
                    }
                }
            }
        })
    }

    fn check(spec: Value) -> Vec<String> {
        validate_against_schema(
            &cluster_schema(),
            &json!({"apiVersion": "orca.dev/v1alpha1", "kind": "MySQLCluster",
                    "metadata": {"name": "a"}, "spec": spec}),
        )
    }

    #[test]
    fn valid_object_has_no_errors() {
        let errs = check(json!({
            "image": "mariadb:11", "replicas": 3, "ratio": 0.5, "step": 10,
            "flavor": null, "period": "1h30m", "size": "1Gi", "config": {"a": "b"},
            "tags": ["x"], "rules": [{"pod": "a", "rule": "prefer"}, {"pod": "b", "rule": "must_not"}],
            "template": {"anything": [1, 2]}, "when": "2024-01-02T03:04:05Z",
            "labels": {"a": "b"}
        }));
        assert_eq!(errs, Vec::<String>::new());
        let errs = check(json!({"image": "x", "size": 3}));
        assert_eq!(errs, Vec::<String>::new());
    }

    #[test]
    fn minimum_is_worded_like_the_api_server() {
        assert_eq!(
            check(json!({"image": "x", "replicas": 0})),
            vec![
                "spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1"
            ]
        );
        assert_eq!(
            check(json!({"image": "x", "replicas": 10})),
            vec![
                "spec.replicas: Invalid value: 10: spec.replicas in body should be less than or equal to 9"
            ]
        );
    }

    #[test]
    fn exclusive_bounds_and_multiples() {
        let errs = check(json!({"image": "x", "ratio": 0, "step": 7}));
        assert_eq!(
            errs,
            vec![
                "spec.ratio: Invalid value: 0: spec.ratio in body should be greater than 0",
                "spec.step: Invalid value: 7: spec.step in body should be a multiple of 5",
            ]
        );
        let errs = check(json!({"image": "x", "ratio": 1}));
        assert_eq!(
            errs,
            vec!["spec.ratio: Invalid value: 1: spec.ratio in body should be less than 1"]
        );
    }

    #[test]
    fn required_fields() {
        assert_eq!(check(json!({})), vec!["spec.image: Required value"]);
        let errs = validate_against_schema(&cluster_schema(), &json!({"kind": "MySQLCluster"}));
        assert_eq!(errs, vec!["spec: Required value"]);
        let errs = check(json!({"image": "x", "rules": [{"pod": "a"}]}));
        assert_eq!(errs, vec!["spec.rules[0].rule: Required value"]);
    }

    #[test]
    fn types() {
        assert_eq!(
            check(json!({"image": "x", "replicas": "3"})),
            vec![
                r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#
            ]
        );
        assert_eq!(
            check(json!({"image": "x", "replicas": 1.5})),
            vec![
                r#"spec.replicas: Invalid value: "number": spec.replicas in body must be of type integer: "number""#
            ]
        );
        assert_eq!(
            check(json!({"image": null})),
            vec![
                r#"spec.image: Invalid value: "null": spec.image in body must be of type string: "null""#
            ]
        );
        assert_eq!(
            check(json!({"image": "x", "size": true})),
            vec![
                r#"spec.size: Invalid value: "boolean": spec.size in body must be of type integer,string: "boolean""#
            ]
        );
        let errs = validate_against_schema(&cluster_schema(), &json!([]));
        assert_eq!(
            errs,
            vec![r#"Invalid value: "array": body must be of type object: "array""#]
        );
    }

    #[test]
    fn enums() {
        assert_eq!(
            check(json!({"image": "x", "flavor": "percona"})),
            vec![
                r#"spec.flavor: Unsupported value: "percona": supported values: "mysql", "mariadb""#
            ]
        );
        assert_eq!(
            check(json!({"image": "x", "rules": [{"pod": "a", "rule": "maybe"}]})),
            vec![
                r#"spec.rules[0].rule: Unsupported value: "maybe": supported values: "prefer", "must_not""#
            ]
        );
    }

    #[test]
    fn strings() {
        assert_eq!(
            check(json!({"image": ""})),
            vec![
                r#"spec.image: Invalid value: "": spec.image in body should be at least 1 chars long"#
            ]
        );
        assert_eq!(
            check(json!({"image": "x".repeat(21)})),
            vec![format!(
                "spec.image: Invalid value: {:?}: spec.image in body should be at most 20 chars long",
                "x".repeat(21)
            )]
        );
        assert_eq!(
            check(json!({"image": "x", "period": "1x"})),
            vec![
                r#"spec.period: Invalid value: "1x": spec.period in body should match '^([0-9]+(ms|s|m|h))+$'"#
            ]
        );
        assert_eq!(
            check(json!({"image": "x", "when": "yesterday"})),
            vec![
                r#"spec.when: Invalid value: "yesterday": spec.when in body must be of type date-time: "yesterday""#
            ]
        );
    }

    #[test]
    fn arrays_and_maps() {
        assert_eq!(
            check(json!({"image": "x", "tags": []})),
            vec!["spec.tags: Invalid value: 0: spec.tags in body should have at least 1 items"]
        );
        assert_eq!(
            check(json!({"image": "x", "tags": ["a", "b", "c"]})),
            vec!["spec.tags: Too many: 3: must have at most 2 items"]
        );
        assert_eq!(
            check(json!({"image": "x", "tags": ["a", "a"]})),
            vec![r#"spec.tags[1]: Duplicate value: "a""#]
        );
        assert_eq!(
            check(json!({"image": "x", "rules": [
                {"pod": "a", "rule": "prefer"}, {"pod": "a", "rule": "must_not"}]})),
            vec![r#"spec.rules[1]: Duplicate value: {"pod":"a"}"#]
        );
        assert_eq!(
            check(json!({"image": "x", "config": {"a": 1}})),
            vec![
                r#"spec.config[a]: Invalid value: "integer": spec.config[a] in body must be of type string: "integer""#
            ]
        );
        assert_eq!(
            check(json!({"image": "x", "labels": {}})),
            vec![
                "spec.labels: Invalid value: 0: spec.labels in body should have at least 1 properties"
            ]
        );
        assert_eq!(
            check(json!({"image": "x", "labels": {"a": "1", "b": "2"}})),
            vec!["spec.labels: Too many: 2: must have at most 1 items"]
        );
    }

    #[test]
    fn several_errors_in_document_order() {
        let errs = check(json!({"replicas": 0, "flavor": "x"}));
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert_eq!(errs[0], "spec.image: Required value");
    }

    #[test]
    fn junctors() {
        let schema = json!({
            "type": "object",
            "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
            "oneOf": [{"required": ["a"]}, {"required": ["b"]}],
            "not": {"required": ["c"]},
            "anyOf": [{"properties": {"a": {"minLength": 2}}}, {"required": ["b"]}],
            "allOf": [{"properties": {"a": {"maxLength": 3}}}]
        });
        assert!(validate_against_schema(&schema, &json!({"a": "xy"})).is_empty());
        let errs = validate_against_schema(&schema, &json!({"a": "x", "b": "y"}));
        assert_eq!(
            errs,
            vec![r#"Invalid value: "object": body must validate one and only one schema (oneOf)"#]
        );
        let errs = validate_against_schema(&schema, &json!({"a": "x"}));
        assert_eq!(
            errs,
            vec![r#"Invalid value: "object": body must validate at least one schema (anyOf)"#]
        );
        let errs = validate_against_schema(&schema, &json!({"a": "xx", "c": "z"}));
        assert_eq!(
            errs,
            vec![r#"Invalid value: "object": body must not validate the schema (not)"#]
        );
        let errs = validate_against_schema(&schema, &json!({"a": "xxxx"}));
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs[1].ends_with("must validate all the schemas (allOf)"),
            "{errs:?}"
        );
    }

    #[test]
    fn unknown_fields_are_listed_not_rejected() {
        let value = json!({
            "apiVersion": "orca.dev/v1alpha1", "kind": "MySQLCluster",
            "metadata": {"name": "a", "labels": {"x": "y"}},
            "spec": {"image": "x", "imagePullPolicy": "Always",
                     "rules": [{"pod": "a", "rule": "prefer", "weight": 1}],
                     "template": {"free": "form"}, "config": {"any": "key"}},
            "extra": 1
        });
        assert!(validate_against_schema(&cluster_schema(), &value).is_empty());
        assert_eq!(
            unknown_fields(&cluster_schema(), &value),
            vec![
                r#"unknown field "extra""#,
                r#"unknown field "spec.imagePullPolicy""#,
                r#"unknown field "spec.rules[0].weight""#,
            ]
        );
    }
}
