//! Pieces of the CRD schemas that the derive cannot produce on its own.

use schemars::{Schema, SchemaGenerator, json_schema};

/// The `pattern` Kubernetes gives quantities (`10Gi`, `500m`, `1e3`).
pub const QUANTITY_PATTERN: &str = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$";

/// An object the API server keeps as it is, without schema or pruning.
///
/// Used for embedded Kubernetes types whose full schema would make the CRD
/// very large (a Job template embeds a whole PodSpec); orca checks them when
/// it deserializes them, and the API server checks them again when orca
/// creates the object they describe.
pub fn preserve_unknown_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// Schema of an optional string enum `T`: `T`'s own schema, nullable.
///
/// What the derive makes of `Option<T>` lists `null` among the enum values;
/// this keeps the values to `T`'s and leaves the description to the field.
pub fn optional_enum<T: schemars::JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = T::json_schema(generator);
    schema.remove("description");
    schema.remove("title");
    schema.insert("nullable".to_string(), serde_json::Value::Bool(true));
    schema
}

/// Schema of a required-or-defaulted Kubernetes quantity: integer or
/// string, with Kubernetes' quantity pattern.
///
/// `nullable: false` is explicit so that the derive does not make the field
/// nullable: the API server then drops a `null` and applies the default,
/// instead of storing a `null` that orca could not read back.
pub fn quantity(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "x-kubernetes-int-or-string": true,
        "nullable": false,
        "pattern": QUANTITY_PATTERN,
    })
}
