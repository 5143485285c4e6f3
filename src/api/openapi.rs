//! The OpenAPI 3.0 document of the API, generated from the types of
//! [`super::model`]: the routes are listed here, every schema comes from
//! the types the handlers answer with. The server-sent-event streams
//! (`/api/v1/stream/...`) are left out: a generated client or fuzzer
//! cannot end them; their events carry the `ClusterList` and
//! `ClusterView` schemas.

use schemars::JsonSchema;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};

use super::model::{
    ClusterList, ClusterView, ErrorBody, Health, InstanceAnswer, LeaderView, OperationAnswer,
    OperationRequest, RecordPage,
};

/// One route's operation: its parameters, body and answers.
struct Route {
    path: &'static str,
    method: &'static str,
    id: &'static str,
    summary: &'static str,
    params: &'static [(&'static str, &'static str)],
    body: Option<Value>,
    answer: Value,
    /// The statuses of its errors, besides the 401 and 403 of a route
    /// that needs authorization.
    errors: &'static [u16],
    /// No authorization (probes, the document itself).
    open: bool,
}

/// What an error status says, in the document.
fn reason(status: u16) -> &'static str {
    match status {
        400 => {
            "Bad request: a parameter or a field that does not parse, or an operation that needs what was not given"
        }
        401 => "No bearer token",
        403 => "The token is not one that may do this",
        404 => "No such cluster or instance here",
        409 => "Refused: illegal for the topology as it is",
        413 => "The body is larger than the API takes",
        415 => "The body is not declared as JSON",
        422 => "The body is JSON but not an operation request",
        503 => "Not now: not ready, no store, not the leader, or busy",
        504 => "No answer within the time limit",
        _ => "An error",
    }
}

// Each route lists the errors it answers, no `default`: a client (and
// schemathesis' status check) knows every status it may see. Every route
// answers 504 past its time limit.
const READ: &[u16] = &[504];
const CLUSTER_READ: &[u16] = &[400, 404, 504];
const PAGED_READ: &[u16] = &[400, 404, 503, 504];
const OPERATE: &[u16] = &[400, 404, 409, 413, 415, 422, 503, 504];

fn schema<T: JsonSchema>(g: &mut SchemaGenerator) -> Value {
    serde_json::to_value(g.subschema_for::<T>()).unwrap_or(Value::Null)
}

const CLUSTER: &[(&str, &str)] = &[("namespace", "path"), ("name", "path")];
const PAGED: &[(&str, &str)] = &[
    ("namespace", "path"),
    ("name", "path"),
    ("page", "query"),
    ("pageSize", "query"),
];

fn parameter(name: &str, place: &str) -> Value {
    let schema = match name {
        "page" => json!({ "type": "integer", "minimum": 0, "maximum": u32::MAX }),
        "pageSize" => {
            json!({ "type": "integer", "minimum": 1, "maximum": crate::store::Page::MAX })
        }
        _ => json!({ "type": "string", "minLength": 1 }),
    };
    json!({
        "name": name,
        "in": place,
        "required": place == "path",
        "schema": schema,
    })
}

/// The document served at `/api/v1/openapi.json`.
pub fn document() -> Value {
    let mut g = SchemaSettings::openapi3().into_generator();
    let error = schema::<ErrorBody>(&mut g);
    let routes = [
        Route {
            path: "/healthz",
            method: "get",
            id: "healthz",
            summary: "The process answers",
            params: &[],
            body: None,
            answer: schema::<Health>(&mut g),
            errors: READ,
            open: true,
        },
        Route {
            path: "/readyz",
            method: "get",
            id: "readyz",
            summary: "A topology was observed (503 until then)",
            params: &[],
            body: None,
            answer: schema::<Health>(&mut g),
            errors: &[503, 504],
            open: true,
        },
        Route {
            path: "/api/v1/openapi.json",
            method: "get",
            id: "openapi",
            summary: "This document",
            params: &[],
            body: None,
            answer: json!({ "type": "object" }),
            errors: READ,
            open: true,
        },
        Route {
            path: "/api/v1/leader",
            method: "get",
            id: "leader",
            summary: "Who leads, and the fencing epoch",
            params: &[],
            body: None,
            answer: schema::<LeaderView>(&mut g),
            errors: READ,
            open: false,
        },
        Route {
            path: "/api/v1/clusters",
            method: "get",
            id: "listClusters",
            summary: "Every cluster, in short",
            params: &[],
            body: None,
            answer: schema::<ClusterList>(&mut g),
            errors: READ,
            open: false,
        },
        Route {
            path: "/api/v1/clusters/{namespace}/{name}",
            method: "get",
            id: "getCluster",
            summary: "A cluster: every instance's snapshot, findings, the operation in progress",
            params: CLUSTER,
            body: None,
            answer: schema::<ClusterView>(&mut g),
            errors: CLUSTER_READ,
            open: false,
        },
        Route {
            path: "/api/v1/clusters/{namespace}/{name}/recoveries",
            method: "get",
            id: "listRecoveries",
            summary: "The cluster's operations, from the store, newest first",
            params: PAGED,
            body: None,
            answer: schema::<RecordPage>(&mut g),
            errors: PAGED_READ,
            open: false,
        },
        Route {
            path: "/api/v1/clusters/{namespace}/{name}/audit",
            method: "get",
            id: "listAudit",
            summary: "The operations asked for, by whom and through which door, newest first",
            params: PAGED,
            body: None,
            answer: schema::<RecordPage>(&mut g),
            errors: PAGED_READ,
            open: false,
        },
        Route {
            path: "/api/v1/clusters/{namespace}/{name}/operations",
            method: "post",
            id: "operate",
            summary: "Plan (dryRun) or carry out an operation",
            params: CLUSTER,
            body: Some(schema::<OperationRequest>(&mut g)),
            answer: schema::<OperationAnswer>(&mut g),
            errors: OPERATE,
            open: false,
        },
        Route {
            path: "/api/v1/instances/{instance}",
            method: "get",
            id: "getInstance",
            summary: "An instance (host:port) and the cluster it belongs to",
            params: &[("instance", "path")],
            body: None,
            answer: schema::<InstanceAnswer>(&mut g),
            errors: CLUSTER_READ,
            open: false,
        },
        Route {
            path: "/api/v1/clusters/{namespace}/{name}/findings",
            method: "get",
            id: "listFindings",
            summary: "The cluster's findings over time, from the store, newest first",
            params: PAGED,
            body: None,
            answer: schema::<RecordPage>(&mut g),
            errors: PAGED_READ,
            open: false,
        },
        Route {
            path: "/api/v1/clusters/{namespace}/{name}/recoveries/{id}/steps",
            method: "get",
            id: "listRecoverySteps",
            summary: "The steps of one of the cluster's operations, from the store",
            params: &[("namespace", "path"), ("name", "path"), ("id", "path")],
            body: None,
            answer: schema::<RecordPage>(&mut g),
            errors: PAGED_READ,
            open: false,
        },
    ];
    let mut paths = Map::new();
    for r in routes {
        let mut responses = Map::new();
        responses.insert(
            "200".into(),
            json!({
                "description": "OK",
                "content": { "application/json": { "schema": r.answer } }
            }),
        );
        let auth: &[u16] = if r.open { &[] } else { &[401, 403] };
        for status in auth.iter().chain(r.errors) {
            let mut answer = json!({
                "description": reason(*status),
                "content": { "application/json": { "schema": error.clone() } }
            });
            if *status == 401 {
                answer["headers"] = json!({
                    "WWW-Authenticate": {
                        "description": "The scheme to authenticate with",
                        "required": true,
                        "schema": { "type": "string", "enum": ["Bearer"] }
                    }
                });
            }
            responses.insert(status.to_string(), answer);
        }
        let mut op = json!({
            "operationId": r.id,
            "summary": r.summary,
            "parameters": r.params.iter().map(|(n, p)| parameter(n, p)).collect::<Vec<_>>(),
            "responses": responses,
        });
        if let Some(body) = r.body {
            op["requestBody"] = json!({
                "required": true,
                "content": { "application/json": { "schema": body } }
            });
        }
        if r.open {
            op["security"] = json!([]);
        }
        let entry = paths
            .entry(r.path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[r.method] = op;
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "orca",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Replication topology management for MySQL and MariaDB"
        },
        "paths": paths,
        "components": {
            "schemas": g.take_definitions(true),
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer" },
                "orcaHeader": {
                    "type": "apiKey", "in": "header", "name": "X-Orca-Authorization",
                    "description": "`Bearer TOKEN`, for callers behind the Kubernetes API server's service proxy, which takes `Authorization` off"
                }
            }
        },
        "security": [ { "bearer": [] }, { "orcaHeader": [] } ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_and_every_reference_is_there() {
        let d = document();
        let paths = d["paths"].as_object().unwrap();
        assert_eq!(paths.len(), 12);
        assert!(
            paths["/api/v1/clusters/{namespace}/{name}/operations"]["post"]["requestBody"]
                .is_object()
        );
        // Every status is listed, with the error's schema; a 401 says
        // how to authenticate.
        for (path, item) in paths {
            for (method, op) in item.as_object().unwrap() {
                let responses = op["responses"].as_object().unwrap();
                assert!(!responses.contains_key("default"), "{method} {path}");
                assert!(responses.contains_key("504"), "{method} {path}");
                if op.get("security").is_none() {
                    let h = &responses["401"]["headers"]["WWW-Authenticate"];
                    assert_eq!(h["required"], true, "{method} {path}");
                    assert!(responses.contains_key("403"), "{method} {path}");
                }
            }
        }
        let operate = &paths["/api/v1/clusters/{namespace}/{name}/operations"]["post"];
        for s in ["400", "404", "409", "413", "415", "422", "503"] {
            assert!(
                operate["responses"][s]["content"]["application/json"]["schema"]["$ref"]
                    .as_str()
                    .is_some_and(|r| r.ends_with("/ErrorBody")),
                "{s}"
            );
        }
        // Every $ref points at a schema of the document.
        let text = d.to_string();
        let schemas = d["components"]["schemas"].as_object().unwrap();
        for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = &part[..part.find('"').unwrap()];
            assert!(schemas.contains_key(name), "{name} missing");
        }
        // The operation kinds are listed.
        let req = &schemas["OperationRequest"]["properties"]["kind"]["enum"];
        assert!(
            req.as_array()
                .unwrap()
                .iter()
                .any(|k| k == "graceful-takeover")
        );
        // Component names are what OpenAPI takes.
        assert!(schemas.keys().all(|k| {
            k.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        }));
    }
}
