//! Field paths and error messages worded as the Kubernetes API server
//! words them (`k8s.io/apimachinery/pkg/util/validation/field`), so that
//! orca's checks read like `kubectl`'s answers.

use std::fmt;

use serde_json::Value;

/// A path to a field: `spec.promotionRules[0].pod`, or in a schema
/// `properties[spec].properties[replicas].type`. The empty path is the root.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldPath(String);

impl FieldPath {
    /// The root.
    pub fn root() -> Self {
        FieldPath(String::new())
    }

    /// A path from its text, e.g. `spec.versions[0].schema.openAPIV3Schema`.
    pub fn new(path: impl Into<String>) -> Self {
        FieldPath(path.into())
    }

    /// `path.name` (or `name` at the root).
    pub fn child(&self, name: &str) -> Self {
        if self.0.is_empty() {
            FieldPath(name.to_string())
        } else {
            FieldPath(format!("{}.{name}", self.0))
        }
    }

    /// `path[key]`.
    pub fn key(&self, key: &str) -> Self {
        FieldPath(format!("{}[{key}]", self.0))
    }

    /// `path[i]`.
    pub fn index(&self, i: usize) -> Self {
        FieldPath(format!("{}[{i}]", self.0))
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `path: detail`, or `detail` alone at the root.
    fn with(&self, detail: String) -> String {
        if self.0.is_empty() {
            detail
        } else {
            format!("{}: {detail}", self.0)
        }
    }

    /// `path: Required value[: detail]`.
    pub fn required(&self, detail: &str) -> String {
        if detail.is_empty() {
            self.with("Required value".to_string())
        } else {
            self.with(format!("Required value: {detail}"))
        }
    }

    /// `path: Invalid value: <value>: detail`.
    pub fn invalid(&self, value: &Value, detail: &str) -> String {
        self.with(format!("Invalid value: {}: {detail}", display_value(value)))
    }

    /// `path: Forbidden: detail`.
    pub fn forbidden(&self, detail: &str) -> String {
        self.with(format!("Forbidden: {detail}"))
    }

    /// `path: Unsupported value: <value>: supported values: "a", "b"`.
    pub fn not_supported(&self, value: &Value, supported: &[Value]) -> String {
        let list: Vec<String> = supported
            .iter()
            .map(|v| match v {
                Value::String(s) => format!("{s:?}"),
                other => display_value(other),
            })
            .collect();
        self.with(format!(
            "Unsupported value: {}: supported values: {}",
            display_value(value),
            list.join(", ")
        ))
    }

    /// `path: Too many: <actual>: must have at most <max> items`.
    pub fn too_many(&self, actual: usize, max: u64) -> String {
        self.with(format!("Too many: {actual}: must have at most {max} items"))
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A value as the API server prints it in `Invalid value: ...`: strings
/// quoted, numbers as Go prints them (`1`, not `1.0`), other values as JSON.
pub fn display_value(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Number(n) => display_number(n),
        Value::Null => "null".to_string(),
        other => other.to_string(),
    }
}

/// A JSON number without a needless `.0`.
pub fn display_number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        Some(f) => f.to_string(),
        None => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn paths() {
        let p = FieldPath::root()
            .child("spec")
            .child("rules")
            .index(2)
            .child("pod");
        assert_eq!(p.as_str(), "spec.rules[2].pod");
        let s = FieldPath::root()
            .child("properties")
            .key("spec")
            .child("type");
        assert_eq!(s.as_str(), "properties[spec].type");
    }

    #[test]
    fn messages() {
        let p = FieldPath::new("spec.replicas");
        assert_eq!(
            p.invalid(&json!(0), "x"),
            "spec.replicas: Invalid value: 0: x"
        );
        assert_eq!(p.required(""), "spec.replicas: Required value");
        assert_eq!(
            p.not_supported(&json!("x"), &[json!("a"), json!("b")]),
            r#"spec.replicas: Unsupported value: "x": supported values: "a", "b""#
        );
        assert_eq!(display_value(&json!(1.0)), "1");
        assert_eq!(display_value(&json!(1.5)), "1.5");
        assert_eq!(FieldPath::root().forbidden("no"), "Forbidden: no");
    }
}
