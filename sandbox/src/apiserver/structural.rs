//! Checks that a CRD schema is one the Kubernetes API server accepts: a
//! *structural* schema
//! (<https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#specifying-a-structural-schema>)
//! written in the subset of OpenAPI v3 that CustomResourceDefinitions allow.
//!
//! The rules follow the API server's own validation of a CRD
//! (`apiextensions-apiserver`: the schema language checks, the structural
//! invariants, completeness, and the defaults), with its wording, e.g.
//! `properties[spec].type: Required value: must not be empty for specified
//! object fields`. CEL rules are checked for shape only, not compiled.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::{Map, Value};

use super::error::FieldError;
use super::schema::{unknown_fields, validate_value};

/// The problems that would make the API server reject `schema` as the
/// `openAPIV3Schema` of a CRD version, sorted; empty when it is fine.
/// Paths are relative to the schema's root.
pub fn structural_problems(schema: &Value) -> Vec<String> {
    strings(structural_errors_at(&FieldPath::root(), schema))
}

/// [`structural_problems`] as field errors with paths under `path`, e.g.
/// `spec.versions[0].schema.openAPIV3Schema`, sorted by their text.
pub fn structural_errors_at(path: &FieldPath, schema: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    language(schema, path, Ctx::root(), &mut errs);
    if schema.is_object() {
        invariants(schema, Level::Root, path, &mut errs);
        completeness(schema, path, &mut errs);
    }
    errs.sort_by_cached_key(ToString::to_string);
    errs.dedup_by(|a, b| a.to_string() == b.to_string());
    errs
}

fn strings(errs: Vec<FieldError>) -> Vec<String> {
    errs.iter().map(ToString::to_string).collect()
}

/// The problems of a whole CRD's versions: [`structural_problems`] of each
/// version's schema, plus the rules that depend on the version (what the
/// root may hold with a status subresource, printer columns).
pub fn crd_problems(crd: &CustomResourceDefinition) -> Vec<String> {
    let mut errs: Vec<FieldError> = Vec::new();
    for (i, version) in crd.spec.versions.iter().enumerate() {
        let vpath = FieldPath::new("spec.versions").index(i);
        let spath = vpath.child("schema").child("openAPIV3Schema");
        let Some(schema) = version
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
        else {
            errs.push(spath.required("schemas are required"));
            continue;
        };
        let schema = match serde_json::to_value(schema) {
            Ok(v) => v,
            Err(e) => {
                errs.push(spath.forbidden(&format!("cannot serialize: {e}")));
                continue;
            }
        };
        errs.extend(structural_errors_at(&spath, &schema));
        let has_status = version
            .subresources
            .as_ref()
            .is_some_and(|s| s.status.is_some());
        if has_status && let Some(root) = schema.as_object() {
            for key in root.keys() {
                if !ROOT_FIELDS_WITH_STATUS.contains(&key.as_str()) {
                    errs.push(spath.child(key).forbidden(
                        "only description, type, format, title, the numeric, length and item limits, required, items, properties, externalDocs, example, x-kubernetes-preserve-unknown-fields and x-kubernetes-validations are allowed at the root of the schema if the status subresource is enabled",
                    ));
                }
            }
        }
        for (j, column) in version
            .additional_printer_columns
            .iter()
            .flatten()
            .enumerate()
        {
            let cpath = vpath.child("additionalPrinterColumns").index(j);
            let types = ["integer", "number", "string", "boolean", "date"];
            if !types.contains(&column.type_.as_str()) {
                let supported: Vec<Value> = types.iter().map(|t| Value::from(*t)).collect();
                errs.push(
                    cpath
                        .child("type")
                        .not_supported(&Value::from(column.type_.clone()), &supported),
                );
            }
            if !column.json_path.starts_with('.') {
                errs.push(cpath.child("jsonPath").invalid(
                    &Value::from(column.json_path.clone()),
                    "must be a simple json path starting with .",
                ));
            }
        }
    }
    strings(errs)
}

const ROOT_FIELDS_WITH_STATUS: [&str; 22] = [
    "description",
    "type",
    "format",
    "title",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "multipleOf",
    "required",
    "items",
    "properties",
    "externalDocs",
    "example",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-validations",
];

/// The keywords of `JSONSchemaProps`, the only ones a CRD schema may use.
const KNOWN_KEYWORDS: [&str; 44] = [
    "id",
    "$schema",
    "$ref",
    "description",
    "type",
    "format",
    "title",
    "default",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "multipleOf",
    "enum",
    "maxProperties",
    "minProperties",
    "required",
    "items",
    "allOf",
    "oneOf",
    "anyOf",
    "not",
    "properties",
    "additionalProperties",
    "patternProperties",
    "dependencies",
    "additionalItems",
    "definitions",
    "externalDocs",
    "example",
    "nullable",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-list-type",
    "x-kubernetes-map-type",
    "x-kubernetes-validations",
];

const TYPES: [&str; 6] = ["array", "boolean", "integer", "number", "object", "string"];

/// Where a schema node sits, for the rules that depend on it.
#[derive(Clone)]
struct Ctx {
    root: bool,
    inside_meta: bool,
    /// Why defaults are forbidden here, when they are.
    no_defaults: Option<String>,
}

impl Ctx {
    fn root() -> Self {
        Ctx {
            root: true,
            inside_meta: false,
            no_defaults: None,
        }
    }

    fn nested(&self) -> Self {
        Ctx {
            root: false,
            ..self.clone()
        }
    }
}

fn get_str<'a>(node: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    node.get(key).and_then(Value::as_str)
}

fn is_true(node: &Map<String, Value>, key: &str) -> bool {
    node.get(key).and_then(Value::as_bool) == Some(true)
}

fn type_of(node: &Map<String, Value>) -> &str {
    get_str(node, "type").unwrap_or("")
}

/// The schema language: known keywords with values of the right kind,
/// nothing the API server forbids, sound Kubernetes extensions, and
/// defaults that validate. Recurses into every subschema.
fn language(node: &Value, path: &FieldPath, ctx: Ctx, errs: &mut Vec<FieldError>) {
    let Some(obj) = node.as_object() else {
        errs.push(path.invalid(node, "must be a schema object"));
        return;
    };

    for (key, value) in obj {
        let kpath = path.child(key);
        match key.as_str() {
            "$ref" => errs.push(kpath.forbidden("$ref is not supported")),
            "id" => errs.push(kpath.forbidden("id is not supported")),
            "additionalItems" => errs.push(kpath.forbidden("additionalItems is not supported")),
            "patternProperties" => errs.push(kpath.forbidden("patternProperties is not supported")),
            "definitions" => errs.push(kpath.forbidden("definitions is not supported")),
            "$defs" => errs.push(kpath.forbidden("$defs is not supported")),
            "dependencies" => errs.push(kpath.forbidden("dependencies is not supported")),
            "uniqueItems" if value.as_bool() == Some(true) => errs.push(kpath.forbidden(
                "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
            )),
            k if !KNOWN_KEYWORDS.contains(&k) => errs.push(kpath.forbidden(
                "unknown keyword: not part of the schema language of CustomResourceDefinitions",
            )),
            _ => {}
        }
        keyword_kind(key, value, &kpath, errs);
    }

    if let Some(ty) = obj.get("type").and_then(Value::as_str) {
        if ty == "null" {
            errs.push(
                path.child("type")
                    .forbidden("type cannot be set to null, use nullable as an alternative"),
            );
        } else if !TYPES.contains(&ty) {
            let supported: Vec<Value> = TYPES.iter().map(|t| Value::from(*t)).collect();
            errs.push(
                path.child("type")
                    .not_supported(&Value::from(ty), &supported),
            );
        }
    }

    if let Some(pattern) = get_str(obj, "pattern")
        && let Err(e) = regex::Regex::new(pattern)
    {
        errs.push(path.child("pattern").invalid(
            &Value::from(pattern),
            &format!("must be a valid regular expression, but isn't: {e}"),
        ));
    }

    if obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(false)) {
        errs.push(
            path.child("x-kubernetes-preserve-unknown-fields")
                .invalid(&Value::Bool(false), "must be true or undefined"),
        );
    }
    if ctx.inside_meta && is_true(obj, "x-kubernetes-embedded-resource") {
        errs.push(
            path.child("x-kubernetes-embedded-resource")
                .forbidden("must not be used inside of resource meta"),
        );
    }

    let props = obj.get("properties").and_then(Value::as_object);
    if let Some(additional) = obj.get("additionalProperties")
        && props.is_some_and(|p| !p.is_empty())
        && (additional.as_bool() == Some(false) || additional.is_object())
    {
        errs.push(
            path.child("additionalProperties")
                .forbidden("additionalProperties and properties are mutual exclusive"),
        );
    }

    map_and_list_types(obj, path, errs);
    validations(obj, path, errs);
    default(obj, path, &ctx, errs);

    // Subschemas.
    if let Some(props) = props {
        for (name, sub) in props {
            let mut sub_ctx = ctx.nested();
            if (ctx.root || is_true(obj, "x-kubernetes-embedded-resource"))
                && ["metadata", "kind", "apiVersion"].contains(&name.as_str())
            {
                sub_ctx.inside_meta = true;
                if ctx.root {
                    sub_ctx.no_defaults = Some(format!("in top-level {name}"));
                }
            }
            language(sub, &path.child("properties").key(name), sub_ctx, errs);
        }
    }
    if let Some(additional) = obj.get("additionalProperties")
        && additional.is_object()
    {
        let mut sub_ctx = ctx.nested();
        if ctx.inside_meta {
            sub_ctx.no_defaults =
                Some("inside additionalProperties applying to object metadata".to_string());
        }
        language(
            additional,
            &path.child("additionalProperties"),
            sub_ctx,
            errs,
        );
    }
    match obj.get("items") {
        Some(items @ Value::Object(_)) => {
            language(items, &path.child("items"), ctx.nested(), errs);
        }
        Some(Value::Array(_)) => errs.push(
            path.child("items")
                .forbidden("items must be a schema object and not an array"),
        ),
        _ => {}
    }
    for junctor in ["allOf", "anyOf", "oneOf"] {
        if let Some(subs) = obj.get(junctor).and_then(Value::as_array) {
            for (i, sub) in subs.iter().enumerate() {
                language(sub, &path.child(junctor).index(i), ctx.nested(), errs);
            }
        }
    }
    if let Some(not) = obj.get("not") {
        language(not, &path.child("not"), ctx.nested(), errs);
    }
}

/// The JSON kind each keyword's value must have.
fn keyword_kind(key: &str, value: &Value, path: &FieldPath, errs: &mut Vec<FieldError>) {
    let ok = match key {
        "type"
        | "description"
        | "title"
        | "format"
        | "pattern"
        | "$schema"
        | "x-kubernetes-list-type"
        | "x-kubernetes-map-type" => value.is_string(),
        "nullable"
        | "exclusiveMaximum"
        | "exclusiveMinimum"
        | "uniqueItems"
        | "x-kubernetes-preserve-unknown-fields"
        | "x-kubernetes-embedded-resource"
        | "x-kubernetes-int-or-string" => value.is_boolean(),
        "maximum" | "minimum" | "multipleOf" => value.is_number(),
        "maxLength" | "minLength" | "maxItems" | "minItems" | "maxProperties" | "minProperties" => {
            value.is_u64()
        }
        "required" | "x-kubernetes-list-map-keys" => value
            .as_array()
            .is_some_and(|a| a.iter().all(Value::is_string)),
        "enum" | "allOf" | "anyOf" | "oneOf" | "x-kubernetes-validations" => value.is_array(),
        "properties" => value.is_object(),
        "additionalProperties" => value.is_object() || value.is_boolean(),
        "items" => value.is_object() || value.is_array(),
        "not" => value.is_object(),
        _ => true,
    };
    if !ok {
        let kind = match key {
            "type"
            | "description"
            | "title"
            | "format"
            | "pattern"
            | "$schema"
            | "x-kubernetes-list-type"
            | "x-kubernetes-map-type" => "a string",
            "maximum" | "minimum" | "multipleOf" => "a number",
            "maxLength" | "minLength" | "maxItems" | "minItems" | "maxProperties"
            | "minProperties" => "a non-negative integer",
            "required" | "x-kubernetes-list-map-keys" => "a list of strings",
            "enum" | "allOf" | "anyOf" | "oneOf" | "x-kubernetes-validations" => "a list",
            "properties" | "not" => "an object",
            "additionalProperties" => "a schema object or a boolean",
            "items" => "a schema object",
            _ => "a boolean",
        };
        errs.push(path.invalid(value, &format!("must be {kind}")));
    }
}

fn map_and_list_types(obj: &Map<String, Value>, path: &FieldPath, errs: &mut Vec<FieldError>) {
    let ty = type_of(obj);
    if let Some(map_type) = obj.get("x-kubernetes-map-type") {
        if ty != "object" {
            errs.push(type_must_be(
                path,
                ty,
                "object if x-kubernetes-map-type is specified",
            ));
        }
        if let Some(m) = map_type.as_str()
            && m != "atomic"
            && m != "granular"
        {
            errs.push(
                path.child("x-kubernetes-map-type")
                    .not_supported(map_type, &[Value::from("atomic"), Value::from("granular")]),
            );
        }
    }

    let list_type = get_str(obj, "x-kubernetes-list-type");
    if obj.contains_key("x-kubernetes-list-type") && ty != "array" {
        errs.push(type_must_be(
            path,
            ty,
            "array if x-kubernetes-list-type is specified",
        ));
    }
    if let Some(l) = list_type
        && !["atomic", "set", "map"].contains(&l)
    {
        errs.push(path.child("x-kubernetes-list-type").not_supported(
            &Value::from(l),
            &[
                Value::from("atomic"),
                Value::from("set"),
                Value::from("map"),
            ],
        ));
    }
    let keys: Vec<&str> = obj
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .map(|k| k.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !keys.is_empty() {
        match list_type {
            None => errs.push(
                path.child("x-kubernetes-list-type")
                    .required("must be map if x-kubernetes-list-map-keys is non-empty"),
            ),
            Some("map") => {}
            Some(other) => errs.push(path.child("x-kubernetes-list-type").invalid(
                &Value::from(other),
                "must be map if x-kubernetes-list-map-keys is non-empty",
            )),
        }
    }
    let items = obj.get("items").and_then(Value::as_object);
    if matches!(list_type, Some("map") | Some("set"))
        && let Some(items) = items
        && is_true(items, "nullable")
    {
        errs.push(path.child("items").child("nullable").forbidden(&format!(
            "cannot be nullable when x-kubernetes-list-type is {}",
            list_type.unwrap_or_default()
        )));
    }
    if list_type != Some("map") {
        return;
    }
    if keys.is_empty() {
        errs.push(
            path.child("x-kubernetes-list-map-keys")
                .required("must not be empty if x-kubernetes-list-type is map"),
        );
    }
    let Some(items) = items else {
        errs.push(
            path.child("items")
                .required("must have a schema if x-kubernetes-list-type is map"),
        );
        return;
    };
    let item_type = type_of(items);
    if item_type != "object" {
        errs.push(path.child("items").child("type").invalid(
            &Value::from(item_type),
            "must be object if parent array's x-kubernetes-list-type is map",
        ));
        return;
    }
    let item_props = items.get("properties").and_then(Value::as_object);
    let required: Vec<&str> = items
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut seen = Vec::new();
    for key in &keys {
        if seen.contains(key) {
            errs.push(path.child("x-kubernetes-list-map-keys").invalid(
                &Value::from(keys.clone()),
                "must not contain duplicate entries",
            ));
        }
        seen.push(*key);
        let Some(prop) = item_props
            .and_then(|p| p.get(*key))
            .and_then(Value::as_object)
        else {
            errs.push(path.child("x-kubernetes-list-map-keys").invalid(
                &Value::from(keys.clone()),
                "entries must all be names of item properties",
            ));
            continue;
        };
        let kpath = path.child("items").child("properties").key(key);
        if matches!(type_of(prop), "array" | "object") {
            errs.push(kpath.child("type").invalid(
                &Value::from(type_of(prop)),
                "must be a scalar type if parent array's x-kubernetes-list-type is map",
            ));
        }
        if !required.contains(key) && !prop.contains_key("default") {
            errs.push(kpath.child("default").required(
                "this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property",
            ));
        }
        if is_true(prop, "nullable") {
            errs.push(kpath.child("nullable").forbidden(
                "this property is in x-kubernetes-list-map-keys, so it cannot be nullable",
            ));
        }
    }
}

fn type_must_be(path: &FieldPath, ty: &str, what: &str) -> FieldError {
    let detail = format!("must be {what}");
    if ty.is_empty() {
        path.child("type").required(&detail)
    } else {
        path.child("type").invalid(&Value::from(ty), &detail)
    }
}

/// The shape of `x-kubernetes-validations` (the CEL itself is not compiled).
fn validations(obj: &Map<String, Value>, path: &FieldPath, errs: &mut Vec<FieldError>) {
    let Some(rules) = obj
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    else {
        return;
    };
    for (i, rule) in rules.iter().enumerate() {
        let rpath = path.child("x-kubernetes-validations").index(i);
        let Some(rule) = rule.as_object() else {
            errs.push(rpath.invalid(rule, "must be an object with a rule"));
            continue;
        };
        let text = get_str(rule, "rule").unwrap_or("").trim();
        let message = get_str(rule, "message");
        if text.is_empty() {
            errs.push(rpath.child("rule").required("rule is not specified"));
        }
        if let Some(m) = message {
            if m.trim().is_empty() {
                errs.push(
                    rpath
                        .child("message")
                        .invalid(&Value::from(m), "message must be non-empty if specified"),
                );
            } else if m.trim().contains(['\n', '\r']) {
                errs.push(
                    rpath
                        .child("message")
                        .invalid(&Value::from(m), "message must not contain line breaks"),
                );
            }
        } else if text.contains(['\n', '\r']) {
            errs.push(
                rpath
                    .child("message")
                    .required("message must be specified if rule contains line breaks"),
            );
        }
        for key in rule.keys() {
            let known = [
                "rule",
                "message",
                "messageExpression",
                "reason",
                "fieldPath",
                "optionalOldSelf",
            ];
            if !known.contains(&key.as_str()) {
                errs.push(
                    rpath
                        .child(key)
                        .forbidden("unknown field of a validation rule"),
                );
            }
        }
        if let Some(reason) = get_str(rule, "reason") {
            let reasons = [
                "FieldValueDuplicate",
                "FieldValueForbidden",
                "FieldValueInvalid",
                "FieldValueRequired",
            ];
            if !reasons.contains(&reason) {
                let supported: Vec<Value> = reasons.iter().map(|r| Value::from(*r)).collect();
                errs.push(
                    rpath
                        .child("reason")
                        .not_supported(&Value::from(reason), &supported),
                );
            }
        }
    }
}

/// A default must be allowed where it is, have no field the schema would
/// prune (`must not have unknown fields`), and validate against its own
/// node, the way the real server validates it: as a custom object of its
/// own under the field path of the default, so that messages name paths
/// relative to the default (` in body ...` for a scalar).
fn default(obj: &Map<String, Value>, path: &FieldPath, ctx: &Ctx, errs: &mut Vec<FieldError>) {
    let Some(value) = obj.get("default") else {
        return;
    };
    let dpath = path.child("default");
    if let Some(reason) = &ctx.no_defaults {
        errs.push(dpath.forbidden(&format!("must not be set {reason}")));
        return;
    }
    let node = Value::Object(obj.clone());
    if !unknown_fields(&node, value).is_empty() {
        errs.push(dpath.invalid(value, "must not have unknown fields"));
    }
    errs.extend(validate_value(&node, value, dpath.as_str()));
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Root,
    Item,
    Field,
}

/// The structural invariants (`validateStructuralInvariants`).
fn invariants(node: &Value, level: Level, path: &FieldPath, errs: &mut Vec<FieldError>) {
    let Some(obj) = node.as_object() else {
        return;
    };
    let ty = type_of(obj);
    let int_or_string = is_true(obj, "x-kubernetes-int-or-string");
    let preserve = is_true(obj, "x-kubernetes-preserve-unknown-fields");
    let embedded = is_true(obj, "x-kubernetes-embedded-resource");

    if ty == "array" && !obj.contains_key("items") {
        errs.push(path.child("items").required("must be specified"));
    }
    if let Some(items) = obj.get("items").filter(|i| i.is_object()) {
        invariants(items, Level::Item, &path.child("items"), errs);
    }
    let props = obj.get("properties").and_then(Value::as_object);
    for (name, sub) in props.into_iter().flatten() {
        invariants(sub, Level::Field, &path.child("properties").key(name), errs);
    }
    if let Some(additional) = obj.get("additionalProperties") {
        if level == Level::Root {
            errs.push(
                path.child("additionalProperties")
                    .forbidden("must not be used at the root"),
            );
        }
        if additional.is_object() {
            invariants(
                additional,
                Level::Field,
                &path.child("additionalProperties"),
                errs,
            );
        }
    }

    if int_or_string && preserve {
        errs.push(path.child("x-kubernetes-preserve-unknown-fields").invalid(
            &Value::Bool(true),
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    if int_or_string && embedded {
        errs.push(path.child("x-kubernetes-embedded-resource").invalid(
            &Value::Bool(true),
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    if int_or_string && !ty.is_empty() {
        errs.push(path.child("type").invalid(
            &Value::from(ty),
            "must be empty if x-kubernetes-int-or-string is true",
        ));
    }

    // Value validations under logical junctors, with the two int-or-string
    // exceptions: `anyOf: [{type: integer}, {type: string}]`, also as the
    // first `allOf`'s `anyOf`.
    let skip_any_of = is_int_or_string_any_of(obj.get("anyOf"));
    let skip_first_all_of_any_of = obj
        .get("allOf")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .is_some_and(|first| is_int_or_string_any_of(first.get("anyOf")));
    value_validation(obj, skip_any_of, skip_first_all_of_any_of, path, errs);

    if embedded && ty != "object" {
        errs.push(type_must_be(
            path,
            ty,
            "object if x-kubernetes-embedded-resource is true",
        ));
    } else if ty.is_empty() && !int_or_string && !preserve {
        let detail = match level {
            Level::Root => "must not be empty at the root",
            Level::Item => "must not be empty for specified array items",
            Level::Field => "must not be empty for specified object fields",
        };
        errs.push(path.child("type").required(detail));
    }
    if embedded && obj.contains_key("additionalProperties") {
        errs.push(
            path.child("additionalProperties")
                .forbidden("must not be used if x-kubernetes-embedded-resource is set"),
        );
    }
    if level == Level::Root && !ty.is_empty() && ty != "object" {
        errs.push(
            path.child("type")
                .invalid(&Value::from(ty), "must be object at the root"),
        );
    }

    let check_metadata = level == Level::Root || embedded;
    if check_metadata && let Some(props) = props {
        for name in ["kind", "apiVersion"] {
            if let Some(p) = props.get(name).and_then(Value::as_object)
                && type_of(p) != "string"
            {
                errs.push(
                    path.child("properties")
                        .key(name)
                        .child("type")
                        .invalid(&Value::from(type_of(p)), "must be string"),
                );
            }
        }
        if let Some(m) = props.get("metadata").and_then(Value::as_object)
            && type_of(m) != "object"
        {
            errs.push(
                path.child("properties")
                    .key("metadata")
                    .child("type")
                    .invalid(&Value::from(type_of(m)), "must be object"),
            );
        }
    }
    if level == Level::Root
        && let Some(metadata) = props
            .and_then(|p| p.get("metadata"))
            .and_then(Value::as_object)
        && !metadata_restricts_only_names(metadata)
    {
        errs.push(path.child("properties").key("metadata").forbidden(
            "must not specify anything other than name and generateName, but metadata is implicitly specified",
        ));
    }

    if embedded && !preserve && props.is_none_or(|p| p.is_empty()) {
        errs.push(path.child("properties").required(
            "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
        ));
    }
}

/// At the root, `metadata` may only say `type: object` and restrict `name`
/// and `generateName` (its default is checked separately).
fn metadata_restricts_only_names(metadata: &Map<String, Value>) -> bool {
    metadata.iter().all(|(key, value)| match key.as_str() {
        "type" | "default" => true,
        "properties" => value
            .as_object()
            .is_some_and(|p| !p.is_empty() && p.keys().all(|k| k == "name" || k == "generateName")),
        _ => false,
    })
}

fn is_int_or_string_any_of(any_of: Option<&Value>) -> bool {
    let Some(list) = any_of.and_then(Value::as_array) else {
        return false;
    };
    let only_type = |v: &Value, ty: &str| {
        v.as_object()
            .is_some_and(|o| o.len() == 1 && get_str(o, "type") == Some(ty))
    };
    list.len() == 2 && only_type(&list[0], "integer") && only_type(&list[1], "string")
}

/// `validateValueValidation`: the junctors of a node.
fn value_validation(
    obj: &Map<String, Value>,
    skip_any_of: bool,
    skip_first_all_of_any_of: bool,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    if !skip_any_of && let Some(list) = obj.get("anyOf").and_then(Value::as_array) {
        for (i, sub) in list.iter().enumerate() {
            nested(sub, false, &path.child("anyOf").index(i), errs);
        }
    }
    if let Some(list) = obj.get("allOf").and_then(Value::as_array) {
        for (i, sub) in list.iter().enumerate() {
            let skip = skip_first_all_of_any_of && i == 0;
            nested(sub, skip, &path.child("allOf").index(i), errs);
        }
    }
    if let Some(list) = obj.get("oneOf").and_then(Value::as_array) {
        for (i, sub) in list.iter().enumerate() {
            nested(sub, false, &path.child("oneOf").index(i), errs);
        }
    }
    if let Some(not) = obj.get("not") {
        nested(not, false, &path.child("not"), errs);
    }
}

/// `validateNestedValueValidation`: under a junctor, a schema may only
/// validate values, not declare structure or metadata.
fn nested(node: &Value, skip_any_of: bool, path: &FieldPath, errs: &mut Vec<FieldError>) {
    let Some(obj) = node.as_object() else {
        return;
    };
    value_validation(obj, skip_any_of, false, path, errs);
    if let Some(items) = obj.get("items") {
        nested(items, false, &path.child("items"), errs);
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (name, sub) in props {
            nested(sub, false, &path.child("properties").key(name), errs);
        }
        if props.contains_key("metadata") {
            errs.push(
                path.child("properties")
                    .key("metadata")
                    .forbidden("must not be specified in a nested context"),
            );
        }
    }
    let forbidden: [(&str, &str); 13] = [
        ("type", "must be empty to be structural"),
        ("additionalProperties", "must be undefined to be structural"),
        ("default", "must be undefined to be structural"),
        ("title", "must be empty to be structural"),
        ("description", "must be empty to be structural"),
        ("nullable", "must be false to be structural"),
        (
            "x-kubernetes-preserve-unknown-fields",
            "must be false to be structural",
        ),
        (
            "x-kubernetes-embedded-resource",
            "must be false to be structural",
        ),
        (
            "x-kubernetes-int-or-string",
            "must be false to be structural",
        ),
        (
            "x-kubernetes-list-map-keys",
            "must be empty to be structural",
        ),
        (
            "x-kubernetes-list-type",
            "must be undefined to be structural",
        ),
        (
            "x-kubernetes-map-type",
            "must be undefined to be structural",
        ),
        ("x-kubernetes-validations", "must be empty to be structural"),
    ];
    for (key, detail) in forbidden {
        let Some(value) = obj.get(key) else { continue };
        let set = match value {
            Value::Bool(b) => *b,
            Value::String(s) => !s.is_empty(),
            Value::Array(a) => !a.is_empty(),
            Value::Null => false,
            _ => true,
        };
        if set {
            errs.push(path.child(key).forbidden(detail));
        }
    }
}

/// Completeness: every field or items schema named under a junctor is also
/// specified outside of it.
fn completeness(node: &Value, path: &FieldPath, errs: &mut Vec<FieldError>) {
    let Some(obj) = node.as_object() else {
        return;
    };
    junctor_completeness(obj, obj, path, path, errs);
    if let Some(items) = obj.get("items").filter(|i| i.is_object()) {
        completeness(items, &path.child("items"), errs);
    }
    for (name, sub) in obj
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        completeness(sub, &path.child("properties").key(name), errs);
    }
    if let Some(additional) = obj.get("additionalProperties").filter(|a| a.is_object()) {
        completeness(additional, &path.child("additionalProperties"), errs);
    }
}

/// Checks the junctors of `v` (found at `vpath`) against the structural
/// node `s` (at `spath`).
fn junctor_completeness(
    v: &Map<String, Value>,
    s: &Map<String, Value>,
    spath: &FieldPath,
    vpath: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    for junctor in ["allOf", "anyOf", "oneOf"] {
        if let Some(list) = v.get(junctor).and_then(Value::as_array) {
            for (i, sub) in list.iter().enumerate() {
                nested_completeness(sub, s, spath, &vpath.child(junctor).index(i), errs);
            }
        }
    }
    if let Some(not) = v.get("not") {
        nested_completeness(not, s, spath, &vpath.child("not"), errs);
    }
}

fn nested_completeness(
    v: &Value,
    s: &Map<String, Value>,
    spath: &FieldPath,
    vpath: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    let Some(v) = v.as_object() else {
        return;
    };
    junctor_completeness(v, s, spath, vpath, errs);
    if let Some(v_items) = v.get("items") {
        let ipath = spath.child("items");
        match s.get("items").and_then(Value::as_object) {
            Some(s_items) => {
                nested_completeness(v_items, s_items, &ipath, &vpath.child("items"), errs)
            }
            None => errs.push(ipath.required(&format!(
                "because it is defined in {}",
                vpath.child("items")
            ))),
        }
    }
    let s_props = s.get("properties").and_then(Value::as_object);
    for (name, v_prop) in v
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let ppath = spath.child("properties").key(name);
        let vppath = vpath.child("properties").key(name);
        match s_props.and_then(|p| p.get(name)).and_then(Value::as_object) {
            Some(s_prop) => nested_completeness(v_prop, s_prop, &ppath, &vppath, errs),
            None => errs.push(ppath.required(&format!("because it is defined in {vppath}"))),
        }
    }
}

/// A path to a field of a CRD: `spec.versions[0].schema.openAPIV3Schema`,
/// `properties[spec].properties[replicas].type`. The empty path is the
/// root. Its methods make the field errors of that path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldPath(String);

impl FieldPath {
    /// The root.
    pub fn root() -> Self {
        FieldPath(String::new())
    }

    /// A path from its text.
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

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn required(&self, detail: &str) -> FieldError {
        FieldError::required(&self.0, detail)
    }

    fn invalid(&self, value: &Value, detail: &str) -> FieldError {
        FieldError::invalid(&self.0, value.clone(), detail)
    }

    fn forbidden(&self, detail: &str) -> FieldError {
        FieldError::forbidden(&self.0, detail)
    }

    fn not_supported(&self, value: &Value, supported: &[Value]) -> FieldError {
        let supported: Vec<String> = supported
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), String::from))
            .collect();
        FieldError::not_supported(&self.0, value.clone(), &supported)
    }
}

impl std::fmt::Display for FieldPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn problems(schema: Value) -> Vec<String> {
        structural_problems(&schema)
    }

    /// A root with `spec` holding `field`.
    fn with_field(field: Value) -> Value {
        json!({
            "type": "object",
            "properties": {"spec": {"type": "object", "properties": {"f": field}}}
        })
    }

    fn assert_has(problems: &[String], expected: &str) {
        assert!(
            problems.iter().any(|p| p == expected),
            "expected {expected:?} in {problems:#?}"
        );
    }

    #[test]
    fn a_good_schema_has_no_problems() {
        let schema = json!({
            "type": "object",
            "description": "x",
            "required": ["spec"],
            "properties": {
                "metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20}}},
                "spec": {
                    "type": "object",
                    "properties": {
                        "n": {"type": "integer", "minimum": 1, "default": 3},
                        "size": {"x-kubernetes-int-or-string": true, "nullable": true},
                        "port": {"anyOf": [{"type": "integer"}, {"type": "string"}],
                                 "x-kubernetes-int-or-string": true},
                        "free": {"x-kubernetes-preserve-unknown-fields": true},
                        "map": {"type": "object", "additionalProperties": {"type": "string"}},
                        "list": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                        "rules": {"type": "array", "x-kubernetes-list-type": "map",
                                  "x-kubernetes-list-map-keys": ["pod"],
                                  "items": {"type": "object", "required": ["pod"],
                                            "properties": {"pod": {"type": "string"}}}},
                        "one": {
                            "type": "object",
                            "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                            "oneOf": [{"required": ["a"]}, {"required": ["b"]}],
                            "x-kubernetes-validations": [{"rule": "has(self.a)", "message": "a"}]
                        },
                        "job": {"type": "object", "x-kubernetes-embedded-resource": true,
                                "x-kubernetes-preserve-unknown-fields": true}
                    }
                }
            }
        });
        assert_eq!(problems(schema), Vec::<String>::new());
    }

    #[test]
    fn missing_type() {
        let p = problems(with_field(json!({"description": "no type"})));
        assert_eq!(
            p,
            vec![
                "properties[spec].properties[f].type: Required value: must not be empty for specified object fields"
            ]
        );
        let p = problems(with_field(
            json!({"type": "array", "items": {"minLength": 1}}),
        ));
        assert_eq!(
            p,
            vec![
                "properties[spec].properties[f].items.type: Required value: must not be empty for specified array items"
            ]
        );
        assert_eq!(
            problems(json!({"properties": {}})),
            vec!["type: Required value: must not be empty at the root"]
        );
    }

    #[test]
    fn nullable_without_type() {
        let p = problems(with_field(json!({"nullable": true})));
        assert_has(
            &p,
            "properties[spec].properties[f].type: Required value: must not be empty for specified object fields",
        );
    }

    #[test]
    fn refs_and_definitions() {
        let p = problems(json!({
            "type": "object",
            "definitions": {"A": {"type": "string"}},
            "$defs": {"B": {"type": "string"}},
            "properties": {"spec": {"$ref": "#/definitions/A"}}
        }));
        assert_has(&p, "definitions: Forbidden: definitions is not supported");
        assert_has(&p, "$defs: Forbidden: $defs is not supported");
        assert_has(
            &p,
            "properties[spec].$ref: Forbidden: $ref is not supported",
        );
    }

    #[test]
    fn items_must_be_one_schema() {
        let p = problems(with_field(
            json!({"type": "array", "items": [{"type": "string"}]}),
        ));
        assert_has(
            &p,
            "properties[spec].properties[f].items: Forbidden: items must be a schema object and not an array",
        );
        let p = problems(with_field(json!({"type": "array"})));
        assert_has(
            &p,
            "properties[spec].properties[f].items: Required value: must be specified",
        );
    }

    #[test]
    fn properties_and_additional_properties() {
        let p = problems(with_field(json!({
            "type": "object",
            "properties": {"a": {"type": "string"}},
            "additionalProperties": {"type": "string"}
        })));
        assert_eq!(
            p,
            vec![
                "properties[spec].properties[f].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive"
            ]
        );
        let p = problems(with_field(json!({
            "type": "object",
            "properties": {"a": {"type": "string"}},
            "additionalProperties": false
        })));
        assert_eq!(p.len(), 1, "{p:?}");
        let p = problems(json!({"type": "object", "additionalProperties": {"type": "string"}}));
        assert_eq!(
            p,
            vec!["additionalProperties: Forbidden: must not be used at the root"]
        );
    }

    #[test]
    fn type_values() {
        let p = problems(with_field(json!({"type": ["string", "null"]})));
        assert_has(
            &p,
            r#"properties[spec].properties[f].type: Invalid value: []interface {}{"string", "null"}: must be a string"#,
        );
        let p = problems(with_field(json!({"type": "null"})));
        assert_has(
            &p,
            "properties[spec].properties[f].type: Forbidden: type cannot be set to null, use nullable as an alternative",
        );
        let p = problems(with_field(json!({"type": "int"})));
        assert_has(
            &p,
            r#"properties[spec].properties[f].type: Unsupported value: "int": supported values: "array", "boolean", "integer", "number", "object", "string""#,
        );
        let p = problems(json!({"type": "string"}));
        assert_has(
            &p,
            r#"type: Invalid value: "string": must be object at the root"#,
        );
    }

    #[test]
    fn unknown_and_unsupported_keywords() {
        let p = problems(with_field(json!({
            "type": "string", "const": "a", "examples": ["a"], "uniqueItems": true,
            "patternProperties": {}, "dependencies": {}, "id": "x", "additionalItems": false
        })));
        let f = "properties[spec].properties[f]";
        assert_has(
            &p,
            &format!(
                "{f}.const: Forbidden: unknown keyword: not part of the schema language of CustomResourceDefinitions"
            ),
        );
        assert_has(
            &p,
            &format!(
                "{f}.examples: Forbidden: unknown keyword: not part of the schema language of CustomResourceDefinitions"
            ),
        );
        assert_has(
            &p,
            &format!(
                "{f}.uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic"
            ),
        );
        assert_has(
            &p,
            &format!("{f}.patternProperties: Forbidden: patternProperties is not supported"),
        );
        assert_has(
            &p,
            &format!("{f}.dependencies: Forbidden: dependencies is not supported"),
        );
        assert_has(&p, &format!("{f}.id: Forbidden: id is not supported"));
        assert_has(
            &p,
            &format!("{f}.additionalItems: Forbidden: additionalItems is not supported"),
        );
    }

    #[test]
    fn junctors_must_not_declare_structure() {
        let p = problems(with_field(json!({
            "type": "object",
            "properties": {"a": {"type": "string"}},
            "anyOf": [
                {"type": "object", "description": "d", "nullable": true, "default": {}},
                {"properties": {"a": {"title": "t", "x-kubernetes-preserve-unknown-fields": true}}}
            ],
            "not": {"properties": {"metadata": {}}}
        })));
        let f = "properties[spec].properties[f]";
        for expected in [
            format!("{f}.anyOf[0].type: Forbidden: must be empty to be structural"),
            format!("{f}.anyOf[0].description: Forbidden: must be empty to be structural"),
            format!("{f}.anyOf[0].nullable: Forbidden: must be false to be structural"),
            format!("{f}.anyOf[0].default: Forbidden: must be undefined to be structural"),
            format!("{f}.anyOf[1].properties[a].title: Forbidden: must be empty to be structural"),
            format!(
                "{f}.anyOf[1].properties[a].x-kubernetes-preserve-unknown-fields: Forbidden: must be false to be structural"
            ),
            format!(
                "{f}.not.properties[metadata]: Forbidden: must not be specified in a nested context"
            ),
            format!(
                "{f}.properties[metadata]: Required value: because it is defined in {f}.not.properties[metadata]"
            ),
        ] {
            assert_has(&p, &expected);
        }
    }

    #[test]
    fn int_or_string_exceptions() {
        let ok = with_field(json!({
            "x-kubernetes-int-or-string": true,
            "anyOf": [{"type": "integer"}, {"type": "string"}]
        }));
        assert_eq!(problems(ok), Vec::<String>::new());
        let ok = with_field(json!({
            "x-kubernetes-int-or-string": true,
            "allOf": [{"anyOf": [{"type": "integer"}, {"type": "string"}]}, {"pattern": "^a"}]
        }));
        assert_eq!(problems(ok), Vec::<String>::new());
        let p = problems(with_field(json!({
            "x-kubernetes-int-or-string": true,
            "x-kubernetes-preserve-unknown-fields": true,
            "type": "string"
        })));
        let f = "properties[spec].properties[f]";
        assert_has(
            &p,
            &format!(
                "{f}.x-kubernetes-preserve-unknown-fields: Invalid value: true: must be false if x-kubernetes-int-or-string is true"
            ),
        );
        assert_has(
            &p,
            &format!(
                "{f}.type: Invalid value: \"string\": must be empty if x-kubernetes-int-or-string is true"
            ),
        );
    }

    #[test]
    fn completeness_of_junctors() {
        let p = problems(with_field(json!({
            "type": "object",
            "anyOf": [{"properties": {"x": {"minLength": 1}}}, {"items": {"minLength": 1}}]
        })));
        let f = "properties[spec].properties[f]";
        assert_has(
            &p,
            &format!(
                "{f}.properties[x]: Required value: because it is defined in {f}.anyOf[0].properties[x]"
            ),
        );
        assert_has(
            &p,
            &format!("{f}.items: Required value: because it is defined in {f}.anyOf[1].items"),
        );
    }

    #[test]
    fn metadata_at_the_root() {
        let p = problems(json!({
            "type": "object",
            "properties": {"metadata": {"type": "object", "properties": {"labels": {"type": "object"}}}}
        }));
        assert_has(
            &p,
            "properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified",
        );
        let p = problems(json!({
            "type": "object",
            "properties": {"metadata": {"type": "string"}, "kind": {"type": "integer"}}
        }));
        assert_has(
            &p,
            r#"properties[metadata].type: Invalid value: "string": must be object"#,
        );
        assert_has(
            &p,
            r#"properties[kind].type: Invalid value: "integer": must be string"#,
        );
        let p = problems(json!({
            "type": "object",
            "properties": {"metadata": {"type": "object", "default": {"name": "x"}}}
        }));
        assert_has(
            &p,
            "properties[metadata].default: Forbidden: must not be set in top-level metadata",
        );
    }

    #[test]
    fn list_and_map_types() {
        let f = "properties[spec].properties[f]";
        let p = problems(with_field(json!({
            "type": "object", "x-kubernetes-list-type": "map", "x-kubernetes-map-type": "loose"
        })));
        assert_has(
            &p,
            &format!(
                "{f}.type: Invalid value: \"object\": must be array if x-kubernetes-list-type is specified"
            ),
        );
        assert_has(
            &p,
            &format!(
                "{f}.x-kubernetes-map-type: Unsupported value: \"loose\": supported values: \"atomic\", \"granular\""
            ),
        );
        let p = problems(with_field(json!({
            "type": "array", "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["pod", "zone"],
            "items": {"type": "object", "nullable": true, "properties": {
                "pod": {"type": "string", "nullable": true}, "other": {"type": "string"}}}
        })));
        assert_has(
            &p,
            &format!(
                "{f}.items.properties[pod].default: Required value: this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property"
            ),
        );
        assert_has(
            &p,
            &format!(
                "{f}.items.properties[pod].nullable: Forbidden: this property is in x-kubernetes-list-map-keys, so it cannot be nullable"
            ),
        );
        assert_has(
            &p,
            &format!(
                "{f}.x-kubernetes-list-map-keys: Invalid value: []interface {{}}{{\"pod\", \"zone\"}}: entries must all be names of item properties"
            ),
        );
        assert_has(
            &p,
            &format!(
                "{f}.items.nullable: Forbidden: cannot be nullable when x-kubernetes-list-type is map"
            ),
        );
        let p = problems(with_field(json!({
            "type": "array", "x-kubernetes-list-type": "map", "items": {"type": "string"}
        })));
        assert_has(
            &p,
            &format!(
                "{f}.x-kubernetes-list-map-keys: Required value: must not be empty if x-kubernetes-list-type is map"
            ),
        );
        assert_has(
            &p,
            &format!(
                "{f}.items.type: Invalid value: \"string\": must be object if parent array's x-kubernetes-list-type is map"
            ),
        );
    }

    #[test]
    fn defaults_must_validate() {
        let f = "properties[spec].properties[f]";
        let p = problems(with_field(
            json!({"type": "integer", "minimum": 1, "default": 0}),
        ));
        assert_eq!(
            p,
            vec![format!(
                "{f}.default: Invalid value: 0:  in body should be greater than or equal to 1"
            )]
        );
        let p = problems(with_field(json!({
            "type": "object", "properties": {"a": {"type": "string"}}, "default": {"b": "x"}
        })));
        assert_eq!(
            p,
            vec![format!(
                "{f}.default: Invalid value: map[string]interface {{}}{{\"b\":\"x\"}}: must not have unknown fields"
            )]
        );
        let p = problems(with_field(json!({"type": "string", "default": null})));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            problems(with_field(
                json!({"type": "string", "nullable": true, "default": null})
            ))
            .is_empty()
        );
    }

    #[test]
    fn bad_patterns_and_preserve_false() {
        let f = "properties[spec].properties[f]";
        let p = problems(with_field(json!({"type": "string", "pattern": "(a"})));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with(&format!(
                "{f}.pattern: Invalid value: \"(a\": must be a valid regular expression, but isn't"
            )),
            "{p:?}"
        );
        let p = problems(with_field(
            json!({"type": "object", "x-kubernetes-preserve-unknown-fields": false}),
        ));
        assert_eq!(
            p,
            vec![format!(
                "{f}.x-kubernetes-preserve-unknown-fields: Invalid value: false: must be true or undefined"
            )]
        );
    }

    #[test]
    fn embedded_resources() {
        let f = "properties[spec].properties[f]";
        let p = problems(with_field(json!({"x-kubernetes-embedded-resource": true})));
        assert_has(
            &p,
            &format!(
                "{f}.type: Required value: must be object if x-kubernetes-embedded-resource is true"
            ),
        );
        assert_has(
            &p,
            &format!(
                "{f}.properties: Required value: must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields"
            ),
        );
    }

    #[test]
    fn cel_rule_shape() {
        let f = "properties[spec].properties[f]";
        let p = problems(with_field(json!({
            "type": "object",
            "x-kubernetes-validations": [{"rule": " "}, {"rule": "a", "message": "x\ny"}]
        })));
        assert_has(
            &p,
            &format!("{f}.x-kubernetes-validations[0].rule: Required value: rule is not specified"),
        );
        assert_has(
            &p,
            &format!(
                "{f}.x-kubernetes-validations[1].message: Invalid value: \"x\\ny\": message must not contain line breaks"
            ),
        );
    }

    #[test]
    fn status_root_and_printer_columns() {
        use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceColumnDefinition;
        use kube::CustomResourceExt;

        let mut crd = orca::k8s::crd::MySQLCluster::crd();
        assert_eq!(crd_problems(&crd), Vec::<String>::new());
        let version = &mut crd.spec.versions[0];
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            schema.nullable = Some(true);
        }
        version
            .additional_printer_columns
            .get_or_insert_with(Vec::new)
            .push(CustomResourceColumnDefinition {
                name: "X".into(),
                type_: "text".into(),
                json_path: "status.x".into(),
                ..Default::default()
            });
        let p = crd_problems(&crd);
        assert_has(
            &p,
            "spec.versions[0].schema.openAPIV3Schema.nullable: Forbidden: only description, type, format, title, the numeric, length and item limits, required, items, properties, externalDocs, example, x-kubernetes-preserve-unknown-fields and x-kubernetes-validations are allowed at the root of the schema if the status subresource is enabled",
        );
        assert_has(
            &p,
            r#"spec.versions[0].additionalPrinterColumns[4].type: Unsupported value: "text": supported values: "integer", "number", "string", "boolean", "date""#,
        );
        assert_has(
            &p,
            r#"spec.versions[0].additionalPrinterColumns[4].jsonPath: Invalid value: "status.x": must be a simple json path starting with ."#,
        );
    }
}
