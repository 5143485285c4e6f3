//! Structural-schema handling of custom objects, in the real server's
//! order: prune unknown fields (and nulls of non-nullable fields), apply
//! defaults, validate. Validation errors use the wording of the real
//! server (kube-openapi messages wrapped in field errors), so that
//! `kubectl` prints what it prints against a real cluster. This is the
//! one schema validator of the sandbox: the structural check of CRDs
//! validates defaults with it, and tests check objects through
//! [`validate_object`].
//!
//! Covered: `type`, `nullable`, `enum`, `required`, `properties`,
//! `additionalProperties`, `items`, the numeric bounds and `multipleOf`,
//! string lengths and `pattern`, `format: date-time`, item and property
//! counts, `allOf`/`anyOf`/`oneOf`/`not`, `x-kubernetes-int-or-string`,
//! `x-kubernetes-preserve-unknown-fields`, `x-kubernetes-embedded-resource`
//! and duplicates in `x-kubernetes-list-type: set|map` lists. Not
//! covered: CEL rules, formats other than `date-time`.

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
    validate(&body, &root_schema, "", "", &mut errors);
    list_duplicates(&body, &root_schema, "", &mut errors);
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

/// The type name kube-openapi reports for a value: JSON integers decode
/// to int64 and every other number to float64, so `2.0` is a `number`
/// (though it passes `type: integer`, see [`is_integer`]).
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

/// go-openapi's `swag.IsFloat64AJSONInteger`: whole, or within a
/// relative 1e-9 of a whole number.
fn is_float_integer(f: f64) -> bool {
    const EPSILON: f64 = 1e-9;
    const MAX_JSON_FLOAT: f64 = 9_007_199_254_740_991.0; // 2^53 - 1
    if !f.is_finite() || !(-MAX_JSON_FLOAT..=MAX_JSON_FLOAT).contains(&f) {
        return false;
    }
    let g = f.trunc();
    if f == g {
        return true;
    }
    let diff = (f - g).abs();
    if g == 0.0 || diff < f64::MIN_POSITIVE {
        return diff < EPSILON * f64::MIN_POSITIVE;
    }
    diff / (f.abs() + g.abs()) < EPSILON
}

/// Whether `v` passes `type: integer`: an int64, or a float64 that is a
/// JSON integer (`2.0`), as kube-openapi's type validator allows.
fn is_integer(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_i64() || n.is_u64() || n.as_f64().is_some_and(is_float_integer),
        _ => false,
    }
}

fn type_ok(want: &str, v: &Value) -> bool {
    match want {
        "integer,string" => is_integer(v) || v.is_string(),
        "integer" => is_integer(v),
        "number" => v.is_number(),
        other => type_name(v) == other,
    }
}

fn num(v: Option<&Value>) -> Option<f64> {
    v.and_then(Value::as_f64)
}

/// The field path of an error at `path` (relative to the validated
/// value) under `base`. The root of a custom object is the nil path,
/// which the real server prints as `<nil>`.
fn field(base: &str, path: &str) -> String {
    match (base.is_empty(), path.is_empty()) {
        (true, true) => "<nil>".to_string(),
        (true, false) => path.to_string(),
        (false, true) => base.to_string(),
        (false, false) => format!("{base}.{path}"),
    }
}

/// Go's `%q` of a path, as the junctor messages quote it.
fn quoted(path: &str) -> String {
    super::error::go_quote(path)
}

/// The RFC 3339 date-times strfmt's `date-time` accepts (closely).
const DATE_TIME: &str =
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})?$";

/// Validates `v` against `s`, appending errors, as kube-openapi's schema
/// validator followed by apiextensions' conversion to field errors.
/// `path` is relative to the validated value (empty at its root) and is
/// what messages name (`spec.replicas in body ...`, ` in body ...` at
/// the root); field paths are `path` under `base` (see [`field`]).
pub fn validate(v: &Value, s: &Value, path: &str, base: &str, errors: &mut Vec<FieldError>) {
    let Some(sm) = s.as_object() else {
        return;
    };
    let name = field(base, path);
    let ty = if truthy(s, "x-kubernetes-int-or-string") {
        Some("integer,string")
    } else {
        sm.get("type").and_then(Value::as_str)
    };
    if v.is_null() {
        if let Some(t) = ty
            && !truthy(s, "nullable")
        {
            errors.push(type_error(&name, path, t, v));
        }
        return;
    }
    // Every validator runs: a wrong type does not stop the others, which
    // apply by the kind of the value.
    if let Some(t) = ty
        && !type_ok(t, v)
    {
        errors.push(type_error(&name, path, t, v));
    }
    junctors(v, sm, path, base, errors);
    match v {
        Value::String(st) => string_checks(st, v, sm, &name, path, errors),
        Value::Number(_) => number_checks(v, sm, &name, path, errors),
        Value::Array(items) => {
            if let Some(is) = sm.get("items") {
                for (i, x) in items.iter().enumerate() {
                    validate(x, is, &format!("{path}[{i}]"), base, errors);
                }
            }
            let n = items.len() as u64;
            if let Some(min) = sm.get("minItems").and_then(Value::as_u64)
                && n < min
            {
                errors.push(FieldError::invalid(
                    &name,
                    Value::from(n),
                    &format!("{path} in body should have at least {min} items"),
                ));
            }
            if let Some(max) = sm.get("maxItems").and_then(Value::as_u64)
                && n > max
            {
                errors.push(FieldError::new(
                    FieldErrorType::TooMany,
                    &name,
                    Some(Value::from(n)),
                    &format!("must have at most {max} items"),
                ));
            }
            if truthy(s, "uniqueItems")
                && items
                    .iter()
                    .enumerate()
                    .any(|(i, a)| items[..i].contains(a))
            {
                errors.push(FieldError::invalid(
                    &name,
                    Value::from(""),
                    &format!("{path} in body shouldn't contain duplicates"),
                ));
            }
        }
        _ => {}
    }
    if let Some(Value::Array(allowed)) = sm.get("enum")
        && !allowed
            .iter()
            .any(|a| a == v || (a.is_number() && a.as_f64() == v.as_f64()))
    {
        let values: Vec<String> = allowed.iter().map(enum_text).collect();
        errors.push(FieldError::not_supported(&name, v.clone(), &values));
    }
    if let Value::Object(m) = v {
        object_checks(m, sm, &name, path, base, errors);
    }
}

fn type_error(name: &str, path: &str, want: &str, v: &Value) -> FieldError {
    let got = type_name(v);
    FieldError::new(
        FieldErrorType::TypeInvalid,
        name,
        Some(Value::String(got.into())),
        &format!("{path} in body must be of type {want}: \"{got}\""),
    )
}

/// An enum value as apiextensions lists it: strings as they are, other
/// values JSON-encoded (numbers as Go's encoding/json writes a float64).
fn enum_text(a: &Value) -> String {
    match a {
        Value::String(s) => s.clone(),
        Value::Number(n) if !(n.is_i64() || n.is_u64()) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e21 => format!("{f:.0}"),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// The string validator stops at its first failure: maxLength, then
/// minLength, then pattern. Then the format.
fn string_checks(
    st: &str,
    v: &Value,
    sm: &Map<String, Value>,
    name: &str,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
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
    } else if let Some(min) = sm.get("minLength").and_then(Value::as_u64)
        && len < min
    {
        errors.push(FieldError::invalid(
            name,
            v.clone(),
            &format!("{path} in body should be at least {min} chars long"),
        ));
    } else if let Some(p) = sm.get("pattern").and_then(Value::as_str)
        && let Ok(re) = Regex::new(p)
        && !re.is_match(st)
    {
        errors.push(FieldError::invalid(
            name,
            v.clone(),
            &format!("{path} in body should match '{p}'"),
        ));
    }
    if sm.get("format").and_then(Value::as_str) == Some("date-time")
        && let Ok(re) = Regex::new(DATE_TIME)
        && !re.is_match(st)
    {
        errors.push(FieldError::new(
            FieldErrorType::TypeInvalid,
            name,
            Some(v.clone()),
            &format!(
                "{path} in body must be of type date-time: {}",
                super::error::go_quote(st)
            ),
        ));
    }
}

/// multipleOf, minimum, maximum. An int64 value is checked against the
/// bounds truncated to int64, which the message then prints as integers;
/// a float64 value against the float64 bounds, printed as Go's `%v`
/// (`1e+07`).
fn number_checks(
    v: &Value,
    sm: &Map<String, Value>,
    name: &str,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    let int = v.as_i64();
    let x = v.as_f64().unwrap_or(0.0);
    let truthy = |k: &str| sm.get(k).and_then(Value::as_bool) == Some(true);
    let mut fail = |detail: String| errors.push(FieldError::invalid(name, v.clone(), &detail));
    if let Some(f) = num(sm.get("multipleOf")) {
        match int {
            Some(i) if f as i64 != 0 => {
                let fi = f as i64;
                if (i / fi) * fi != i {
                    fail(format!("{path} in body should be a multiple of {fi}"));
                }
            }
            _ if f > 0.0 => {
                let mult = if f < 1.0 { 1.0 / f * x } else { x / f };
                if !is_float_integer(mult) {
                    fail(format!(
                        "{path} in body should be a multiple of {}",
                        go_float(f)
                    ));
                }
            }
            _ => {}
        }
    }
    for (key, lower) in [("minimum", true), ("maximum", false)] {
        let Some(b) = num(sm.get(key)) else {
            continue;
        };
        let excl = truthy(if lower {
            "exclusiveMinimum"
        } else {
            "exclusiveMaximum"
        });
        let (bad, shown) = match int {
            Some(i) => {
                let bi = b as i64;
                let bad = match (lower, excl) {
                    (true, true) => i <= bi,
                    (true, false) => i < bi,
                    (false, true) => i >= bi,
                    (false, false) => i > bi,
                };
                (bad, bi.to_string())
            }
            None => {
                let bad = match (lower, excl) {
                    (true, true) => x <= b,
                    (true, false) => x < b,
                    (false, true) => x >= b,
                    (false, false) => x > b,
                };
                (bad, go_float(b))
            }
        };
        if bad {
            let rel = match (lower, excl) {
                (true, true) => "greater than",
                (true, false) => "greater than or equal to",
                (false, true) => "less than",
                (false, false) => "less than or equal to",
            };
            fail(format!("{path} in body should be {rel} {shown}"));
        }
    }
}

/// minProperties and maxProperties (either failing ends the object's
/// validation), then each field, then required.
fn object_checks(
    m: &Map<String, Value>,
    sm: &Map<String, Value>,
    name: &str,
    path: &str,
    base: &str,
    errors: &mut Vec<FieldError>,
) {
    let n = m.len() as u64;
    if let Some(min) = sm.get("minProperties").and_then(Value::as_u64)
        && n < min
    {
        errors.push(FieldError::invalid(
            name,
            Value::from(n),
            &format!("{path} in body should have at least {min} properties"),
        ));
        return;
    }
    if let Some(max) = sm.get("maxProperties").and_then(Value::as_u64)
        && n > max
    {
        errors.push(FieldError::new(
            FieldErrorType::TooMany,
            name,
            Some(Value::from(n)),
            &format!("must have at most {max} items"),
        ));
        return;
    }
    let props = sm.get("properties").and_then(Value::as_object);
    for (k, x) in m {
        if let Some(ps) = props.and_then(|p| p.get(k)) {
            validate(x, ps, &child(path, k), base, errors);
        } else if let Some(a @ Value::Object(_)) = sm.get("additionalProperties") {
            validate(x, a, &child(path, k), base, errors);
        }
    }
    if let Some(Value::Array(req)) = sm.get("required") {
        for r in req.iter().filter_map(Value::as_str) {
            if !m.contains_key(r) {
                errors.push(FieldError::required(&field(base, &child(path, r)), ""));
            }
        }
    }
}

/// The errors of validating `v` against `sub`.
fn errors_of(v: &Value, sub: &Value, path: &str, base: &str) -> Vec<FieldError> {
    let mut e = Vec::new();
    validate(v, sub, path, base, &mut e);
    e
}

/// anyOf, oneOf, allOf and not. Their own errors are plain errors in
/// kube-openapi, which apiextensions reports at the root of the
/// validation (`<nil>` for a custom object) with an empty value, the
/// path quoted in the message. A failed anyOf (or oneOf with no valid
/// branch) also reports the errors of one failed branch: kube-openapi
/// picks the branch with the most passing checks; here, the one with
/// the fewest errors.
fn junctors(
    v: &Value,
    sm: &Map<String, Value>,
    path: &str,
    base: &str,
    errors: &mut Vec<FieldError>,
) {
    let root = field(base, "");
    let plain = |msg: String| FieldError::invalid(&root, Value::from(""), &msg);
    let best = |results: Vec<Vec<FieldError>>| {
        results.into_iter().min_by_key(Vec::len).unwrap_or_default()
    };
    if let Some(Value::Array(any)) = sm.get("anyOf") {
        let results: Vec<Vec<FieldError>> =
            any.iter().map(|s| errors_of(v, s, path, base)).collect();
        if !results.iter().any(Vec::is_empty) {
            errors.push(plain(format!(
                "{} must validate at least one schema (anyOf)",
                quoted(path)
            )));
            errors.extend(best(results));
        }
    }
    if let Some(Value::Array(one)) = sm.get("oneOf") {
        let results: Vec<Vec<FieldError>> =
            one.iter().map(|s| errors_of(v, s, path, base)).collect();
        let valid = results.iter().filter(|e| e.is_empty()).count();
        if valid != 1 {
            let more = if valid == 0 {
                "Found none valid".to_string()
            } else {
                format!("Found {valid} valid alternatives")
            };
            errors.push(plain(format!(
                "{} must validate one and only one schema (oneOf). {more}",
                quoted(path)
            )));
            if valid == 0 {
                errors.extend(best(results));
            }
        }
    }
    if let Some(Value::Array(all)) = sm.get("allOf") {
        let mut valid = 0;
        for sub in all {
            let e = errors_of(v, sub, path, base);
            if e.is_empty() {
                valid += 1;
            }
            errors.extend(e);
        }
        if valid != all.len() {
            let more = if valid == 0 { ". None validated" } else { "" };
            errors.push(plain(format!(
                "{} must validate all the schemas (allOf){more}",
                quoted(path)
            )));
        }
    }
    if let Some(not) = sm.get("not")
        && errors_of(v, not, path, base).is_empty()
    {
        errors.push(plain(format!(
            "{} must not validate the schema (not)",
            quoted(path)
        )));
    }
}

/// Duplicates in `x-kubernetes-list-type: set` and `map` lists, which
/// apiextensions checks after the schema validation, over the whole
/// object: `spec.tags[1]: Duplicate value: "a"`.
fn list_duplicates(v: &Value, s: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let Some(sm) = s.as_object() else {
        return;
    };
    match v {
        Value::Array(items) => {
            let key_of = |x: &Value| -> Value {
                let mut m = Map::new();
                let keys = sm
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array);
                for k in keys.into_iter().flatten().filter_map(Value::as_str) {
                    if let Some(kv) = x.get(k) {
                        m.insert(k.to_string(), kv.clone());
                    }
                }
                Value::Object(m)
            };
            let ids: Option<Vec<Value>> =
                match sm.get("x-kubernetes-list-type").and_then(Value::as_str) {
                    Some("set") => Some(items.clone()),
                    Some("map") => Some(items.iter().map(key_of).collect()),
                    _ => None,
                };
            for (i, id) in ids.iter().flatten().enumerate() {
                if ids.as_ref().is_some_and(|all| all[..i].contains(id)) {
                    errors.push(FieldError::new(
                        FieldErrorType::Duplicate,
                        &format!("{path}[{i}]"),
                        Some(id.clone()),
                        "",
                    ));
                }
            }
            if let Some(is) = sm.get("items") {
                for (i, x) in items.iter().enumerate() {
                    list_duplicates(x, is, &format!("{path}[{i}]"), errors);
                }
            }
        }
        Value::Object(m) => {
            let props = sm.get("properties").and_then(Value::as_object);
            for (k, x) in m {
                if let Some(ps) = props.and_then(|p| p.get(k)) {
                    list_duplicates(x, ps, &child(path, k), errors);
                } else if let Some(a @ Value::Object(_)) = sm.get("additionalProperties") {
                    list_duplicates(x, a, &child(path, k), errors);
                }
            }
        }
        _ => {}
    }
}

/// What creating `object` would answer, for tests: `object` pruned,
/// defaulted and validated by exactly the code that serves a create.
/// Returns the warnings of the fields pruned (`unknown field "spec.x"`)
/// and the validation errors as the server words them.
pub fn validate_object(schema: &Value, object: &Value) -> (Vec<String>, Vec<String>) {
    let mut obj = object.clone();
    let (unknown, errors) = process(schema, &mut obj);
    (
        unknown
            .iter()
            .map(|u| format!("unknown field \"{u}\""))
            .collect(),
        errors.iter().map(ToString::to_string).collect(),
    )
}

/// Validates a value that is not a custom object (a schema's default) as
/// the real server does: as a custom object of its own, with field
/// paths under `base`.
pub(crate) fn validate_value(schema: &Value, value: &Value, base: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    validate(value, schema, "", base, &mut errors);
    errors
}

/// The fields pruning would drop from `value` under `schema`.
pub(crate) fn unknown_fields(schema: &Value, value: &Value) -> Vec<String> {
    let mut unknown = Vec::new();
    prune(&mut value.clone(), schema, "", &mut unknown);
    unknown
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

    fn check(schema: Value, spec: Value) -> Vec<String> {
        let root = json!({"type": "object", "properties": {"spec": schema}});
        validate_object(&root, &json!({"spec": spec})).1
    }

    #[test]
    fn a_float_integer_passes_integer_but_is_named_number() {
        let int = json!({"type": "object", "properties": {"n": {"type": "integer"}}});
        assert!(check(int.clone(), json!({"n": 2.0})).is_empty());
        assert_eq!(
            check(int, json!({"n": 1.5})),
            [
                "spec.n: Invalid value: \"number\": spec.n in body must be of type integer: \"number\""
            ]
        );
        let string = json!({"type": "object", "properties": {"s": {"type": "string"}}});
        assert_eq!(
            check(string, json!({"s": 2.0})),
            [
                "spec.s: Invalid value: \"number\": spec.s in body must be of type string: \"number\""
            ]
        );
    }

    #[test]
    fn the_root_is_the_nil_path() {
        let schema = json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                            "oneOf": [{"required": ["a"]}, {"required": ["b"]}]});
        let (_, errs) = validate_object(&schema, &json!({"a": "x", "b": "y"}));
        assert_eq!(
            errs,
            [
                "<nil>: Invalid value: \"\": \"\" must validate one and only one schema (oneOf). Found 2 valid alternatives"
            ]
        );
        // A default is validated as an object of its own under its path.
        let errs: Vec<String> = validate_value(
            &json!({"type": "integer", "minimum": 1}),
            &json!(0),
            "x.default",
        )
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(
            errs,
            ["x.default: Invalid value: 0:  in body should be greater than or equal to 1"]
        );
    }

    #[test]
    fn bounds_print_as_go_prints_them_for_the_value() {
        let schema = json!({"type": "object", "properties": {"n": {"type": "number", "maximum": 1e7, "minimum": 1.5}}});
        assert_eq!(
            check(schema.clone(), json!({"n": 20000000})),
            [
                "spec.n: Invalid value: 20000000: spec.n in body should be less than or equal to 10000000"
            ]
        );
        assert_eq!(
            check(schema.clone(), json!({"n": 2.5e7})),
            [
                "spec.n: Invalid value: 2.5e+07: spec.n in body should be less than or equal to 1e+07"
            ]
        );
        // An int64 is checked against the bound truncated to int64.
        assert!(check(schema.clone(), json!({"n": 1})).is_empty());
        assert_eq!(
            check(schema, json!({"n": 1.2})),
            ["spec.n: Invalid value: 1.2: spec.n in body should be greater than or equal to 1.5"]
        );
    }

    #[test]
    fn multiples_tolerate_float_rounding() {
        let schema = json!({"type": "object", "properties": {
            "f": {"type": "number", "multipleOf": 0.1}, "i": {"type": "integer", "multipleOf": 5}}});
        assert!(check(schema.clone(), json!({"f": 0.3, "i": 10})).is_empty());
        assert_eq!(
            check(schema, json!({"f": 0.35, "i": 7})),
            [
                "spec.f: Invalid value: 0.35: spec.f in body should be a multiple of 0.1",
                "spec.i: Invalid value: 7: spec.i in body should be a multiple of 5",
            ]
        );
    }

    #[test]
    fn counts_are_the_invalid_values() {
        let schema = json!({"type": "object", "properties": {
            "tags": {"type": "array", "minItems": 1, "items": {"type": "string"}},
            "labels": {"type": "object", "minProperties": 1, "additionalProperties": {"type": "string"}}}});
        assert_eq!(
            check(schema, json!({"tags": [], "labels": {}})),
            [
                "spec.labels: Invalid value: 0: spec.labels in body should have at least 1 properties",
                "spec.tags: Invalid value: 0: spec.tags in body should have at least 1 items",
            ]
        );
    }

    #[test]
    fn formats_and_type_errors_beside_enums() {
        let schema = json!({"type": "object", "properties": {
            "when": {"type": "string", "format": "date-time"},
            "flavor": {"type": "string", "enum": ["a"]}}});
        assert!(check(schema.clone(), json!({"when": "2024-01-02T03:04:05Z"})).is_empty());
        assert_eq!(
            check(schema, json!({"when": "yesterday", "flavor": 3})),
            [
                "spec.flavor: Invalid value: \"integer\": spec.flavor in body must be of type string: \"integer\"",
                "spec.flavor: Unsupported value: 3: supported values: \"a\"",
                "spec.when: Invalid value: \"yesterday\": spec.when in body must be of type date-time: \"yesterday\"",
            ]
        );
    }

    #[test]
    fn junctors_report_at_the_root() {
        let schema = json!({"type": "object", "properties": {"a": {"type": "string"}, "c": {"type": "integer"}},
            "anyOf": [{"properties": {"a": {"minLength": 2}}}, {"required": ["b"]}],
            "allOf": [{"properties": {"a": {"maxLength": 3}}}],
            "not": {"required": ["c"]}});
        let spec = |v: Value| {
            validate_object(
                &json!({"type": "object", "properties": {"spec": schema.clone()}}),
                &json!({"spec": v}),
            )
            .1
        };
        assert!(spec(json!({"a": "xy"})).is_empty());
        assert_eq!(
            spec(json!({"a": "x"})),
            [
                "<nil>: Invalid value: \"\": \"spec\" must validate at least one schema (anyOf)",
                "spec.a: Invalid value: \"x\": spec.a in body should be at least 2 chars long",
            ]
        );
        assert_eq!(
            spec(json!({"a": "xxxx", "c": 1})),
            [
                "spec.a: Too long: may not be more than 3 bytes",
                "<nil>: Invalid value: \"\": \"spec\" must validate all the schemas (allOf). None validated",
                "<nil>: Invalid value: \"\": \"spec\" must not validate the schema (not)",
            ]
        );
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
