//! The HTTP face: routing of the Kubernetes REST paths, content
//! negotiation (JSON, Table, PartialObjectMetadata, aggregated
//! discovery), and watch streams of JSON lines.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::error::ApiError;
use super::ops::{DeleteOpts, Deleted, ListQuery, State, WriteOpts, meta_str, to_request};
use super::patch::{self, PatchType};
use super::requests::{self, Counter, RequestKey};
use super::selector::{FieldSelector, LabelSelector};
use super::store::{Broadcast, Change, ChangeType};
use super::table::{self, Include};
use super::types::{ResourceType, sort_versions};

/// The Kubernetes version the server reports.
pub const GIT_VERSION: &str = "v1.33.1";

/// What the handlers share.
pub struct Shared {
    pub state: Mutex<State>,
    /// host:port clients reach the server at.
    pub address: String,
    /// Every request answered, counted ([`requests`]).
    pub requests: Mutex<Counter>,
    /// The last requests RBAC refused (at most [`FORBIDDEN_KEPT`]), as
    /// `GET /debug/forbidden` lists them: who, what, and the 403's message.
    pub forbidden: Mutex<std::collections::VecDeque<Value>>,
}

/// How many refused requests `/debug/forbidden` keeps.
pub const FORBIDDEN_KEPT: usize = 1000;
/// The path of the refused requests' list.
pub const FORBIDDEN_PATH: &str = "/debug/forbidden";

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn requests(&self) -> MutexGuard<'_, Counter> {
        self.requests.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The answer format a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Table(&'static str),
    Partial,
}

struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: Option<&str>) -> Self {
        Query(
            form_urlencoded::parse(q.unwrap_or_default().as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str())
    }

    fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true") | Some("1"))
    }

    fn list_query(&self) -> ListQuery {
        ListQuery {
            label_selector: self.get("labelSelector").map(String::from),
            field_selector: self.get("fieldSelector").map(String::from),
            limit: self.get("limit").and_then(|l| l.parse().ok()),
            continue_token: self.get("continue").map(String::from),
            resource_version: self.get("resourceVersion").map(String::from),
            resource_version_match: self.get("resourceVersionMatch").map(String::from),
        }
    }
}

fn media_params(m: &str) -> (String, Vec<(String, String)>) {
    let mut parts = m.split(';');
    let base = parts.next().unwrap_or_default().trim().to_lowercase();
    let params = parts
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    (base, params)
}

fn param<'a>(params: &'a [(String, String)], k: &str) -> Option<&'a str> {
    params.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str())
}

fn negotiate(headers: &HeaderMap) -> Result<Format, ApiError> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if accept.trim().is_empty() {
        return Ok(Format::Json);
    }
    for m in accept.split(',') {
        let (base, params) = media_params(m);
        if !matches!(base.as_str(), "application/json" | "*/*" | "application/*") {
            continue;
        }
        match param(&params, "as") {
            None => return Ok(Format::Json),
            Some("Table") if param(&params, "g") == Some("meta.k8s.io") => {
                match param(&params, "v") {
                    Some("v1") => return Ok(Format::Table("v1")),
                    Some("v1beta1") => return Ok(Format::Table("v1beta1")),
                    _ => continue,
                }
            }
            Some("PartialObjectMetadata") | Some("PartialObjectMetadataList")
                if param(&params, "g") == Some("meta.k8s.io") =>
            {
                return Ok(Format::Partial);
            }
            _ => continue,
        }
    }
    Err(ApiError::not_acceptable(&[
        "application/json",
        "application/yaml",
        "application/json;as=Table;v=v1;g=meta.k8s.io",
    ]))
}

fn content_type_of(f: Format) -> &'static str {
    match f {
        Format::Json => "application/json",
        Format::Table("v1beta1") => "application/json;as=Table;v=v1beta1;g=meta.k8s.io",
        Format::Table(_) => "application/json;as=Table;v=v1;g=meta.k8s.io",
        Format::Partial => "application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io",
    }
}

fn respond(code: StatusCode, body: &Value, content_type: &str, warnings: &[String]) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut r = Response::new(Body::from(bytes));
    *r.status_mut() = code;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    for w in warnings {
        let text = format!("299 - \"{}\"", w.replace('\\', "\\\\").replace('"', "\\\""));
        if let Ok(v) = HeaderValue::from_str(&text) {
            r.headers_mut().append(header::WARNING, v);
        }
    }
    r
}

fn error(e: &ApiError) -> Response {
    let code = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    respond(code, &e.status(), "application/json", &[])
}

fn text(code: StatusCode, body: &'static str) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The field manager of a request: `fieldManager`, else the User-Agent's
/// first word, as the real server does.
fn manager(q: &Query, headers: &HeaderMap) -> String {
    if let Some(m) = q.get("fieldManager").filter(|m| !m.is_empty()) {
        return m.to_string();
    }
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.split('/').next().unwrap_or_default().trim().to_string())
        .unwrap_or_default()
}

fn write_opts(q: &Query, headers: &HeaderMap) -> WriteOpts {
    WriteOpts {
        dry_run: q.get("dryRun").is_some_and(|d| d == "All"),
        manager: manager(q, headers),
        force: q.flag("force"),
        field_validation: q.get("fieldValidation").unwrap_or("Warn").to_string(),
    }
}

fn decode_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let (base, _) = media_params(ct);
    match base.as_str() {
        "application/json" | "" => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding body: {e}"))),
        "application/yaml" | "application/x-yaml" | "text/yaml" => serde_yaml_ng::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}"))),
        "application/vnd.kubernetes.protobuf" => super::protobuf::decode(body),
        _ => Err(ApiError::unsupported_media_type(&[
            "application/json",
            "application/yaml",
        ])),
    }
}

/// A parsed resource path.
#[derive(Debug, Clone)]
struct Target {
    rt: ResourceType,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
    watch_path: bool,
}

enum Route {
    Version,
    ApiVersions,
    GroupList,
    Group(String),
    ResourceList(String, String),
    OpenApiV2,
    OpenApiV3,
    Health,
    Resource(Box<Target>),
    NotFound,
}

fn route(state: &State, path: &str) -> Route {
    let segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    match segs.as_slice() {
        ["version"] => Route::Version,
        ["healthz"] | ["livez"] | ["readyz"] => Route::Health,
        ["openapi", "v2"] => Route::OpenApiV2,
        ["openapi", "v3", ..] => Route::OpenApiV3,
        ["api"] => Route::ApiVersions,
        ["apis"] => Route::GroupList,
        ["api", "v1"] => Route::ResourceList(String::new(), "v1".into()),
        ["apis", g] => {
            if state.registry.groups().iter().any(|(x, _)| x == g) {
                Route::Group(g.to_string())
            } else {
                Route::NotFound
            }
        }
        ["apis", g, v] => {
            if state.registry.in_group_version(g, v).is_empty() {
                Route::NotFound
            } else {
                Route::ResourceList(g.to_string(), v.to_string())
            }
        }
        ["api", "v1", rest @ ..] => resource_route(state, "", "v1", rest),
        ["apis", g, v, rest @ ..] => resource_route(state, g, v, rest),
        _ => Route::NotFound,
    }
}

fn resource_route(state: &State, group: &str, version: &str, rest: &[&str]) -> Route {
    let (watch_path, rest) = match rest {
        ["watch", r @ ..] => (true, r),
        r => (false, r),
    };
    let find = |plural: &str| state.registry.find(group, version, plural).cloned();
    let (namespace, plural, tail) = match rest {
        ["namespaces", ns, plural, tail @ ..] if find(plural).is_some_and(|t| t.namespaced) => {
            (Some(ns.to_string()), *plural, tail)
        }
        [plural, tail @ ..] => (None, *plural, tail),
        [] => return Route::NotFound,
    };
    let Some(rt) = find(plural) else {
        return Route::NotFound;
    };
    if tail.len() > 2 || (watch_path && tail.len() > 1) {
        return Route::NotFound;
    }
    // a namespaced kind is only addressed by name within a namespace
    if rt.namespaced && namespace.is_none() && !tail.is_empty() {
        return Route::NotFound;
    }
    Route::Resource(Box::new(Target {
        rt,
        namespace,
        name: tail.first().map(|s| s.to_string()),
        sub: tail.get(1).map(|s| s.to_string()),
        watch_path,
    }))
}

/// The entry point of every request.
pub async fn handle(
    axum::extract::State(shared): axum::extract::State<Arc<Shared>>,
    req: axum::extract::Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, 64 << 20).await {
        Ok(b) => b,
        Err(e) => return error(&ApiError::bad_request(format!("reading the body: {e}"))),
    };
    let method = parts.method.clone();
    let path = parts.uri.path().to_string();
    let q = Query::parse(parts.uri.query());
    if path == requests::PATH {
        return request_log(&shared, &method);
    }
    if path == FORBIDDEN_PATH {
        let mut f = shared.forbidden.lock().unwrap_or_else(|e| e.into_inner());
        if method == Method::DELETE {
            f.clear();
        }
        let list: Vec<Value> = f.iter().cloned().collect();
        return respond(
            StatusCode::OK,
            &json!({ "items": list }),
            "application/json",
            &[],
        );
    }
    let https = parts.extensions.get::<Https>().is_some();
    if let Some(target) = super::proxy::parse(&path) {
        return service_proxy(&shared, https, &method, target, &parts, body).await;
    }
    let key = request_key(&shared, &method, &path, &q, &parts.headers);
    if let Err(e) = admit(&shared, https, &method, &path, &key, &parts.headers, &body) {
        shared.requests().add(key);
        return error(&e);
    }
    shared.requests().add(key);
    let resp = dispatch(&shared, &method, &path, &q, &parts.headers, &body).await;
    tracing::debug!(target: "orca::sandbox::apiserver", %method, %path, status = resp.status().as_u16(), "request");
    resp
}

/// Marks a request that came in over the HTTPS face.
#[derive(Debug, Clone, Copy)]
pub struct Https;

/// Authentication and RBAC authorization of one request. A bearer token
/// must be valid (401 otherwise); without one, a caller on the plain HTTP
/// face (loopback, the sandbox's own tools) is the sandbox's admin and one
/// on the HTTPS face (pods) is `system:anonymous`. Then the subject's
/// Roles and ClusterRoles decide, with the real server's 403 text.
fn admit(
    shared: &Shared,
    https: bool,
    method: &Method,
    path: &str,
    key: &RequestKey,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), ApiError> {
    let state = shared.lock();
    let user = caller(&state, https, headers)?;
    if user.groups.iter().any(|g| g == "system:masters") {
        return Ok(());
    }
    let Route::Resource(t) = route(&state, path) else {
        // discovery, version and health: any authenticated user; health
        // and version for everyone
        let public = matches!(path, "/healthz" | "/livez" | "/readyz" | "/version")
            || path.starts_with("/healthz/")
            || path.starts_with("/livez/")
            || path.starts_with("/readyz/");
        if public || user.groups.iter().any(|g| g == "system:authenticated") {
            return Ok(());
        }
        return Err(ApiError::forbidden_path(
            &user.name,
            &method.as_str().to_lowercase(),
            path,
        ));
    };
    let verb = match key.verb.as_str() {
        "apply" => "patch",
        v => v,
    };
    let a = super::authz::Attributes {
        namespace: t.namespace.clone().unwrap_or_default(),
        verb: verb.to_string(),
        group: t.rt.group.clone(),
        resource: t.rt.plural.clone(),
        subresource: t.sub.clone().unwrap_or_default(),
        name: t.name.clone().unwrap_or_default(),
    };
    let (mut ok, _) = super::authz::allowed(&state.store, &user, &a);
    let mut a = a;
    // A server-side apply that creates the object is authorized as a
    // create as well.
    if ok
        && key.verb == "apply"
        && a.subresource.is_empty()
        && state
            .store
            .get(&t.rt.storage, &a.namespace, &a.name)
            .is_none()
    {
        a.verb = "create".into();
        ok = super::authz::allowed(&state.store, &user, &a).0;
        if ok {
            a.verb = "patch".into();
        }
    }
    let e = if !ok {
        ApiError::forbidden(
            &a.group,
            &a.resource,
            &a.name,
            &super::authz::forbidden_reason(&user, &a),
        )
    } else if matches!(a.verb.as_str(), "create" | "update" | "patch") && a.subresource.is_empty() {
        match owner_finalizers_denied(&state, &user, &t, body) {
            None => return Ok(()),
            Some(why) => ApiError::forbidden(&a.group, &a.resource, &a.name, &why),
        }
    } else {
        return Ok(());
    };
    drop(state);
    refused(shared, &user, &a, &e);
    Err(e)
}

/// Who a request comes from: a bearer token must be valid (401
/// otherwise); without one, the sandbox's admin on the plain HTTP face
/// and `system:anonymous` on the HTTPS face.
fn caller(state: &State, https: bool, headers: &HeaderMap) -> Result<super::authz::User, ApiError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    Ok(match bearer {
        Some(t) => super::authz::authenticate(&state.store, &state.tokens, t)
            .ok_or_else(ApiError::unauthorized)?,
        None if https => super::authz::anonymous(),
        None => super::authz::admin(),
    })
}

/// Keeps a refusal for `GET /debug/forbidden`.
fn refused(shared: &Shared, user: &super::authz::User, a: &super::authz::Attributes, e: &ApiError) {
    let mut f = shared.forbidden.lock().unwrap_or_else(|e| e.into_inner());
    if f.len() >= FORBIDDEN_KEPT {
        f.pop_front();
    }
    f.push_back(json!({
        "user": user.name,
        "verb": a.verb,
        "group": a.group,
        "resource": a.resource,
        "subresource": a.subresource,
        "namespace": a.namespace,
        "name": a.name,
        "message": e.message,
        "time": super::time::now_string(),
    }));
}

/// `services/{name}/proxy`: counted, authenticated, authorized for the
/// `proxy` subresource of `services` (the verb from the method), then
/// forwarded ([`super::proxy`]).
async fn service_proxy(
    shared: &Arc<Shared>,
    https: bool,
    method: &Method,
    target: Result<super::proxy::ProxyPath, String>,
    parts: &axum::http::request::Parts,
    body: Bytes,
) -> Response {
    let verb = super::proxy::verb(method);
    let agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.split('/').next().unwrap_or_default().trim().to_string())
        .unwrap_or_default();
    shared.requests().add(RequestKey {
        verb: verb.clone(),
        group: String::new(),
        resource: "services".into(),
        subresource: "proxy".into(),
        agent,
        field_manager: String::new(),
    });
    let admitted = (|| {
        let state = shared.lock();
        let user = caller(&state, https, &parts.headers)?;
        let target = target.map_err(ApiError::bad_request)?;
        let a = super::authz::Attributes {
            namespace: target.namespace.clone(),
            verb,
            group: String::new(),
            resource: "services".into(),
            subresource: "proxy".into(),
            name: target.segment.clone(),
        };
        if super::authz::allowed(&state.store, &user, &a).0 {
            return Ok(target);
        }
        drop(state);
        let e = ApiError::forbidden(
            "",
            "services",
            &a.name,
            &super::authz::forbidden_reason(&user, &a),
        );
        refused(shared, &user, &a, &e);
        Err(e)
    })();
    let target = match admitted {
        Ok(t) => t,
        Err(e) => return error(&e),
    };
    let resp = super::proxy::forward(
        shared,
        &target,
        method,
        parts.uri.query(),
        &parts.headers,
        body,
    )
    .await
    .unwrap_or_else(|e| error(&e));
    tracing::debug!(target: "orca::sandbox::apiserver", %method, path = %parts.uri.path(), status = resp.status().as_u16(), "proxied");
    resp
}

/// The OwnerReferencesPermissionEnforcement admission plugin: a write
/// that sets `blockOwnerDeletion` on an owner reference needs the right to
/// update the owner's `finalizers` subresource. References the stored
/// object already holds are not checked again. `Some(reason)` when denied.
fn owner_finalizers_denied(
    state: &State,
    user: &super::authz::User,
    t: &Target,
    body: &[u8],
) -> Option<String> {
    let v: Value = serde_json::from_slice(body)
        .ok()
        .or_else(|| serde_yaml_ng::from_slice(body).ok())?;
    let refs = v.pointer("/metadata/ownerReferences")?.as_array()?;
    let ns = t.namespace.clone().unwrap_or_default();
    let name = t
        .name
        .clone()
        .or_else(|| {
            v.pointer("/metadata/name")
                .and_then(Value::as_str)
                .map(String::from)
        })
        .unwrap_or_default();
    let held: Vec<Value> = state
        .store
        .get(&t.rt.storage, &ns, &name)
        .and_then(|o| o.pointer("/metadata/ownerReferences").cloned())
        .and_then(|r| r.as_array().cloned())
        .unwrap_or_default();
    for r in refs {
        if r["blockOwnerDeletion"] != json!(true) {
            continue;
        }
        if held
            .iter()
            .any(|h| h["uid"] == r["uid"] && h["blockOwnerDeletion"] == json!(true))
        {
            continue;
        }
        let (group, version) = match r["apiVersion"].as_str().unwrap_or_default().split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (
                String::new(),
                r["apiVersion"].as_str().unwrap_or_default().to_string(),
            ),
        };
        let kind = r["kind"].as_str().unwrap_or_default();
        let Some(owner) = state
            .registry
            .in_group_version(&group, &version)
            .into_iter()
            .find(|rt| rt.kind == kind)
        else {
            continue;
        };
        let a = super::authz::Attributes {
            namespace: if owner.namespaced {
                ns.clone()
            } else {
                String::new()
            },
            verb: "update".into(),
            group: group.clone(),
            resource: owner.plural.clone(),
            subresource: "finalizers".into(),
            name: r["name"].as_str().unwrap_or_default().to_string(),
        };
        if !super::authz::allowed(&state.store, user, &a).0 {
            return Some(format!(
                "cannot set blockOwnerDeletion if an ownerReference refers to a resource you can't set finalizers on: {}",
                super::authz::forbidden_reason(user, &a)
            ));
        }
    }
    None
}

/// `GET /debug/requests`: the request log; `DELETE`: reset it.
fn request_log(shared: &Shared, method: &Method) -> Response {
    if *method == Method::DELETE {
        shared.requests().reset(super::time::now_string());
    } else if *method != Method::GET {
        return error(&ApiError::method_not_allowed());
    }
    let log = shared.requests().log();
    let body = serde_json::to_value(&log).unwrap_or(Value::Null);
    respond(StatusCode::OK, &body, "application/json", &[])
}

/// What the request log counts a request as.
fn request_key(
    shared: &Shared,
    method: &Method,
    path: &str,
    q: &Query,
    headers: &HeaderMap,
) -> RequestKey {
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.split('/').next().unwrap_or_default().trim().to_string())
        .unwrap_or_default();
    let field_manager = q.get("fieldManager").unwrap_or_default().to_string();
    let apply = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/apply-patch"));
    let r = {
        let state = shared.lock();
        route(&state, path)
    };
    let (group, resource, subresource, named, watch) = match r {
        Route::Resource(t) => {
            let watch = t.watch_path || (*method == Method::GET && q.flag("watch"));
            (
                t.rt.group.clone(),
                t.rt.plural.clone(),
                t.sub.clone().unwrap_or_default(),
                t.name.is_some(),
                watch,
            )
        }
        _ => (String::new(), path.to_string(), String::new(), true, false),
    };
    RequestKey {
        verb: requests::verb(method.as_str(), named, watch, apply).to_string(),
        group,
        resource,
        subresource,
        agent,
        field_manager,
    }
}

async fn dispatch(
    shared: &Arc<Shared>,
    method: &Method,
    path: &str,
    q: &Query,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let r = {
        let state = shared.lock();
        route(&state, path)
    };
    if !matches!(r, Route::Resource(_)) && method != Method::GET {
        if matches!(r, Route::NotFound) {
            return error(&ApiError::no_route());
        }
        return error(&ApiError::method_not_allowed());
    }
    match r {
        Route::Version => respond(StatusCode::OK, &version(), "application/json", &[]),
        Route::Health => text(StatusCode::OK, "ok"),
        Route::OpenApiV2 => openapi_v2(headers),
        Route::OpenApiV3 => respond(
            StatusCode::OK,
            &json!({"paths": {}}),
            "application/json",
            &[],
        ),
        Route::ApiVersions => {
            if let Some(v) = wants_aggregated(headers) {
                let state = shared.lock();
                return aggregated(&state, true, v);
            }
            respond(
                StatusCode::OK,
                &json!({"kind": "APIVersions", "versions": ["v1"],
                        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": shared.address}]}),
                "application/json",
                &[],
            )
        }
        Route::GroupList => {
            let state = shared.lock();
            if let Some(v) = wants_aggregated(headers) {
                return aggregated(&state, false, v);
            }
            let groups: Vec<Value> = state
                .registry
                .groups()
                .into_iter()
                .map(|(g, vs)| group_json(&g, &vs))
                .collect();
            respond(
                StatusCode::OK,
                &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
                "application/json",
                &[],
            )
        }
        Route::Group(g) => {
            let state = shared.lock();
            let vs = state
                .registry
                .groups()
                .into_iter()
                .find(|(x, _)| *x == g)
                .map(|(_, v)| v)
                .unwrap_or_default();
            let mut gj = group_json(&g, &vs);
            gj["kind"] = json!("APIGroup");
            gj["apiVersion"] = json!("v1");
            respond(StatusCode::OK, &gj, "application/json", &[])
        }
        Route::ResourceList(g, v) => {
            let state = shared.lock();
            let resources: Vec<Value> = state
                .registry
                .in_group_version(&g, &v)
                .iter()
                .flat_map(|t| t.discovery_entries())
                .collect();
            let gv = if g.is_empty() {
                v.clone()
            } else {
                format!("{g}/{v}")
            };
            respond(
                StatusCode::OK,
                &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
                "application/json",
                &[],
            )
        }
        Route::NotFound => error(&ApiError::no_route()),
        Route::Resource(t)
            if t.rt.group.is_empty()
                && t.rt.plural == "pods"
                && t.sub.as_deref() == Some("log") =>
        {
            pod_log(shared, method, &t, q)
                .await
                .unwrap_or_else(|e| error(&e))
        }
        Route::Resource(t) => {
            let mut r = match resource(shared, method, &t, q, headers, body) {
                Ok(r) => r,
                Err(e) => error(&e),
            };
            if t.rt.group.is_empty() && t.rt.plural == "endpoints" {
                // what a 1.33 server says of every Endpoints request
                r.headers_mut().append(
                    header::WARNING,
                    HeaderValue::from_static(
                        "299 - \"v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice\"",
                    ),
                );
            }
            r
        }
    }
}

/// `pods/{name}/log`: see [`super::podlog`].
async fn pod_log(
    shared: &Arc<Shared>,
    method: &Method,
    t: &Target,
    q: &Query,
) -> Result<Response, ApiError> {
    let (Some(ns), Some(name)) = (t.namespace.as_deref(), t.name.as_deref()) else {
        return Err(ApiError::no_route());
    };
    if method != Method::GET {
        return Err(ApiError::method_not_allowed());
    }
    let pod = shared.lock().get(&t.rt, ns, name)?;
    super::podlog::pod_log(shared, pod, &q.0).await
}

fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "emulationMajor": "1",
        "emulationMinor": "33",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "32",
        "gitVersion": GIT_VERSION,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-05-15T00:00:00Z",
        "goVersion": "go1.24.2",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

fn openapi_v2(headers: &HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if accept.contains("protobuf") {
        // an empty openapi_v2.Document: clients find no models and skip
        // client-side validation
        let mut r = Response::new(Body::empty());
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/com.github.proto-openapi.spec.v2.v1.0+protobuf"),
        );
        return r;
    }
    respond(
        StatusCode::OK,
        &json!({"swagger": "2.0", "info": {"title": "Kubernetes", "version": GIT_VERSION},
                "paths": {}, "definitions": {}}),
        "application/json",
        &[],
    )
}

fn group_json(g: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
        .collect();
    let preferred = vs.first().cloned().unwrap_or(Value::Null);
    json!({"name": g, "versions": vs, "preferredVersion": preferred})
}

fn wants_aggregated(headers: &HeaderMap) -> Option<&'static str> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    for m in accept.split(',') {
        let (base, params) = media_params(m);
        if base != "application/json" {
            continue;
        }
        if param(&params, "as") == Some("APIGroupDiscoveryList")
            && param(&params, "g") == Some("apidiscovery.k8s.io")
        {
            match param(&params, "v") {
                Some("v2") => return Some("v2"),
                Some("v2beta1") => return Some("v2beta1"),
                _ => {}
            }
        }
        param(&params, "as")?;
    }
    None
}

fn aggregated(state: &State, core: bool, v: &'static str) -> Response {
    let groups: Vec<(String, Vec<String>)> = if core {
        vec![(String::new(), vec!["v1".to_string()])]
    } else {
        state.registry.groups()
    };
    let items: Vec<Value> = groups
        .iter()
        .map(|(g, vs)| {
            let mut vs = vs.clone();
            sort_versions(&mut vs);
            let versions: Vec<Value> = vs
                .iter()
                .map(|ver| {
                    let resources: Vec<Value> = state
                        .registry
                        .in_group_version(g, ver)
                        .iter()
                        .map(|t| t.aggregated_entry())
                        .collect();
                    json!({"version": ver, "resources": resources, "freshness": "Current"})
                })
                .collect();
            let mut meta = json!({"creationTimestamp": null});
            if !g.is_empty() {
                meta["name"] = json!(g);
            }
            json!({"metadata": meta, "versions": versions})
        })
        .collect();
    let body = json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{v}"),
        "metadata": {},
        "items": items,
    });
    let ct = format!("application/json;g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList");
    respond(StatusCode::OK, &body, &ct, &[])
}

fn include_of(q: &Query) -> Result<Include, ApiError> {
    match q.get("includeObject") {
        None | Some("") | Some("Metadata") => Ok(Include::Metadata),
        Some("Object") => Ok(Include::Object),
        Some("None") => Ok(Include::None),
        Some(x) => Err(ApiError::bad_request(format!(
            "unrecognized includeObject value: {x:?}"
        ))),
    }
}

/// Formats one object for a GET or a write answer.
fn render_one(
    rt: &ResourceType,
    obj: Value,
    format: Format,
    q: &Query,
) -> Result<(Value, &'static str), ApiError> {
    match format {
        Format::Json => Ok((obj, content_type_of(format))),
        Format::Partial => Ok((
            table::partial(&obj, "meta.k8s.io/v1"),
            content_type_of(format),
        )),
        Format::Table(v) => {
            let meta = json!({"resourceVersion": meta_str(&obj, "resourceVersion")});
            Ok((
                State::table(rt, &[obj], include_of(q)?, meta, v),
                content_type_of(format),
            ))
        }
    }
}

fn resource(
    shared: &Arc<Shared>,
    method: &Method,
    t: &Target,
    q: &Query,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let rt = &t.rt;
    let ns = t.namespace.clone().unwrap_or_default();
    let verbs = rt.verbs();
    let allowed = |v: &str| verbs.contains(&v);
    let sub = t.sub.clone().unwrap_or_default();
    match sub.as_str() {
        "" => {}
        "status" if rt.status => {}
        "scale" if rt.scale.is_some() => {}
        "binding" | "eviction" if rt.plural == "pods" && rt.group.is_empty() => {}
        "token" if rt.plural == "serviceaccounts" && rt.group.is_empty() => {}
        _ => return Err(ApiError::no_route()),
    }
    let watch = t.watch_path || (method == Method::GET && q.flag("watch"));
    if watch {
        if !allowed("watch") || !sub.is_empty() {
            return Err(ApiError::method_not_allowed());
        }
        let format = negotiate(headers)?;
        return watch_stream(shared, t, q, format);
    }
    match (method.clone(), t.name.as_deref()) {
        (Method::GET, None) => {
            if !allowed("list") {
                return Err(ApiError::method_not_allowed());
            }
            let format = negotiate(headers)?;
            let state = shared.lock();
            let (items, meta) = state.list(rt, t.namespace.as_deref(), &q.list_query())?;
            drop(state);
            let body = match format {
                Format::Json => State::list_object(rt, items, meta),
                Format::Table(v) => State::table(rt, &items, include_of(q)?, meta, v),
                Format::Partial => json!({
                    "kind": "PartialObjectMetadataList",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": meta,
                    "items": items.iter().map(|i| table::partial(i, "meta.k8s.io/v1")).collect::<Vec<_>>(),
                }),
            };
            Ok(respond(StatusCode::OK, &body, content_type_of(format), &[]))
        }
        (Method::GET, Some(name)) => {
            if !allowed("get") {
                return Err(ApiError::method_not_allowed());
            }
            let format = negotiate(headers)?;
            let state = shared.lock();
            let obj = state.get(rt, &ns, name)?;
            drop(state);
            if sub == "scale" {
                return Ok(respond(
                    StatusCode::OK,
                    &State::scale_of(rt, &obj),
                    "application/json",
                    &[],
                ));
            }
            let (b, ct) = render_one(rt, obj, format, q)?;
            Ok(respond(StatusCode::OK, &b, ct, &[]))
        }
        (Method::POST, None) => {
            if !allowed("create") {
                return Err(ApiError::method_not_allowed());
            }
            if rt.namespaced && t.namespace.is_none() {
                return Err(ApiError::method_not_allowed());
            }
            let format = negotiate(headers)?;
            let value = decode_body(headers, body)?;
            let opts = write_opts(q, headers);
            let mut state = shared.lock();
            let w = state.create(rt, &ns, value, &opts)?;
            state.settle();
            drop(state);
            let (b, ct) = render_one(rt, w.object, format, q)?;
            Ok(respond(StatusCode::CREATED, &b, ct, &w.warnings))
        }
        (Method::POST, Some(name)) if sub == "token" => {
            let value = decode_body(headers, body)?;
            let mut state = shared.lock();
            let state = &mut *state;
            let out =
                super::authz::token_request(&state.store, &mut state.tokens, &ns, name, value)?;
            Ok(respond(StatusCode::CREATED, &out, "application/json", &[]))
        }
        (Method::POST, Some(name)) if sub == "binding" || sub == "eviction" => {
            let value = decode_body(headers, body)?;
            let opts = write_opts(q, headers);
            let mut state = shared.lock();
            let out = if sub == "binding" {
                state.bind(&ns, name, &value, &opts)?
            } else {
                state.evict(&ns, name, &value, &opts)?
            };
            state.settle();
            Ok(respond(StatusCode::CREATED, &out, "application/json", &[]))
        }
        (Method::PUT, Some(name)) => {
            if !allowed("update") {
                return Err(ApiError::method_not_allowed());
            }
            let format = negotiate(headers)?;
            let value = decode_body(headers, body)?;
            let opts = write_opts(q, headers);
            let mut state = shared.lock();
            let w = state.replace(rt, &ns, name, &sub, value, &opts)?;
            state.settle();
            drop(state);
            let code = if w.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            if sub == "scale" {
                return Ok(respond(code, &w.object, "application/json", &w.warnings));
            }
            let (b, ct) = render_one(rt, w.object, format, q)?;
            Ok(respond(code, &b, ct, &w.warnings))
        }
        (Method::PATCH, Some(name)) => {
            if !allowed("patch") {
                return Err(ApiError::method_not_allowed());
            }
            let format = negotiate(headers)?;
            let ct = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let accepted: &[&str] = if rt.is_custom() {
                &patch::CUSTOM_PATCH_TYPES
            } else {
                &patch::BUILTIN_PATCH_TYPES
            };
            let Some(ptype) = PatchType::from_content_type(ct) else {
                return Err(ApiError::unsupported_media_type(accepted));
            };
            let value: Value = if ptype == PatchType::Apply {
                serde_yaml_ng::from_slice(body)
                    .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?
            } else {
                serde_json::from_slice(body)
                    .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?
            };
            let opts = write_opts(q, headers);
            let mut state = shared.lock();
            let w = state.patch(rt, &ns, name, &sub, ptype, value, &opts)?;
            state.settle();
            drop(state);
            let code = if w.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            if sub == "scale" {
                return Ok(respond(code, &w.object, "application/json", &w.warnings));
            }
            let (b, ct) = render_one(rt, w.object, format, q)?;
            Ok(respond(code, &b, ct, &w.warnings))
        }
        (Method::DELETE, Some(name)) if sub.is_empty() => {
            if !allowed("delete") {
                return Err(ApiError::method_not_allowed());
            }
            let d = delete_opts(q, headers, body)?;
            let mut state = shared.lock();
            let out = state.delete(rt, &ns, name, &d)?;
            state.settle();
            drop(state);
            Ok(match out {
                Deleted::Pending(o) => respond(StatusCode::OK, &o, "application/json", &[]),
                Deleted::Gone(o) => {
                    if rt.plural == "pods" && rt.group.is_empty() {
                        respond(StatusCode::OK, &o, "application/json", &[])
                    } else {
                        let mut details =
                            json!({"name": name, "kind": rt.plural, "uid": meta_str(&o, "uid")});
                        if !rt.group.is_empty() {
                            details["group"] = json!(rt.group);
                        }
                        respond(
                            StatusCode::OK,
                            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                                    "status": "Success", "details": details}),
                            "application/json",
                            &[],
                        )
                    }
                }
            })
        }
        (Method::DELETE, None) => {
            if !allowed("deletecollection") {
                return Err(ApiError::method_not_allowed());
            }
            let d = delete_opts(q, headers, body)?;
            let mut state = shared.lock();
            let (items, meta) = state.list(rt, t.namespace.as_deref(), &q.list_query())?;
            let mut out = Vec::new();
            for i in items {
                let n = meta_str(&i, "name").to_string();
                let ins = meta_str(&i, "namespace").to_string();
                match state.delete(rt, &ins, &n, &d) {
                    Ok(Deleted::Pending(o)) | Ok(Deleted::Gone(o)) => out.push(o),
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
            state.settle();
            drop(state);
            Ok(respond(
                StatusCode::OK,
                &State::list_object(rt, out, meta),
                "application/json",
                &[],
            ))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn delete_opts(q: &Query, headers: &HeaderMap, body: &[u8]) -> Result<DeleteOpts, ApiError> {
    let mut d = DeleteOpts {
        propagation: q.get("propagationPolicy").map(String::from),
        grace: q.get("gracePeriodSeconds").and_then(|g| g.parse().ok()),
        dry_run: q.get("dryRun").is_some_and(|x| x == "All"),
        ..DeleteOpts::default()
    };
    if q.get("orphanDependents") == Some("true") && d.propagation.is_none() {
        d.propagation = Some("Orphan".into());
    }
    if !body.iter().all(u8::is_ascii_whitespace) {
        let v = decode_body(headers, body)?;
        if let Some(p) = v["propagationPolicy"].as_str() {
            d.propagation = Some(p.to_string());
        }
        if let Some(g) = v["gracePeriodSeconds"].as_i64() {
            d.grace = Some(g);
        }
        if v["orphanDependents"] == json!(true) && d.propagation.is_none() {
            d.propagation = Some("Orphan".into());
        }
        if let Some(u) = v.pointer("/preconditions/uid").and_then(Value::as_str) {
            d.uid = Some(u.to_string());
        }
        if let Some(r) = v
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
        {
            d.resource_version = Some(r.to_string());
        }
        if v["dryRun"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == "All"))
        {
            d.dry_run = true;
        }
    }
    Ok(d)
}

// ---- watch -------------------------------------------------------------------

struct Watch {
    pending: VecDeque<Bytes>,
    rx: broadcast::Receiver<Broadcast>,
    rt: ResourceType,
    namespace: Option<String>,
    name: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    format: Format,
    include: Include,
    bookmarks: bool,
    columns_sent: bool,
    last_rv: u64,
    deadline: tokio::time::Instant,
    done: bool,
}

fn line(ty: &str, object: &Value) -> Bytes {
    let mut v = serde_json::to_vec(&json!({"type": ty, "object": object})).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

impl Watch {
    fn matches(&self, obj: &Value) -> bool {
        if let Some(n) = &self.name
            && meta_str(obj, "name") != n
        {
            return false;
        }
        let v = to_request(&self.rt, obj);
        self.labels.matches(&v) && self.fields.matches(&v)
    }

    fn render(&mut self, ty: &str, stored: &Value) -> Bytes {
        let obj = to_request(&self.rt, stored);
        let out = match self.format {
            Format::Json => obj,
            Format::Partial => table::partial(&obj, "meta.k8s.io/v1"),
            Format::Table(v) => {
                let with = !self.columns_sent;
                self.columns_sent = true;
                let meta = json!({"resourceVersion": meta_str(&obj, "resourceVersion")});
                table::table(&self.rt, &[obj], self.include, with, meta, v)
            }
        };
        line(ty, &out)
    }

    fn on_change(&mut self, c: &Change) {
        self.last_rv = c.rv;
        if c.storage != self.rt.storage {
            return;
        }
        if let Some(ns) = &self.namespace
            && &c.namespace != ns
        {
            return;
        }
        let now = self.matches(&c.object);
        let before = c.prev.as_ref().is_some_and(|p| self.matches(p));
        let ty = match c.ty {
            ChangeType::Added if now => "ADDED",
            ChangeType::Modified if now && before => "MODIFIED",
            ChangeType::Modified if now => "ADDED",
            ChangeType::Modified if before => "DELETED",
            ChangeType::Deleted if before || now => "DELETED",
            _ => return,
        };
        let b = self.render(ty, &c.object);
        self.pending.push_back(b);
    }

    fn bookmark(&mut self, rv: u64, annotations: Option<Value>) {
        let mut meta = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
        if let Some(a) = annotations {
            meta["annotations"] = a;
        }
        let obj =
            json!({"kind": self.rt.kind, "apiVersion": self.rt.api_version(), "metadata": meta});
        self.pending.push_back(line("BOOKMARK", &obj));
    }
}

async fn next_chunk(mut w: Watch) -> Option<(Result<Bytes, Infallible>, Watch)> {
    loop {
        if let Some(b) = w.pending.pop_front() {
            return Some((Ok(b), w));
        }
        if w.done {
            return None;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(w.deadline) => { w.done = true; }
            m = w.rx.recv() => match m {
                Ok(Broadcast::Change(c)) => w.on_change(&c),
                Ok(Broadcast::Progress(rv)) => {
                    if w.bookmarks && rv >= w.last_rv {
                        w.last_rv = rv;
                        w.bookmark(rv, None);
                    }
                }
                Ok(Broadcast::Shutdown) | Err(broadcast::error::RecvError::Closed) => w.done = true,
                Err(broadcast::error::RecvError::Lagged(_)) => w.done = true,
            }
        }
    }
}

fn watch_stream(
    shared: &Arc<Shared>,
    t: &Target,
    q: &Query,
    format: Format,
) -> Result<Response, ApiError> {
    let lq = q.list_query();
    let (labels, fields) = State::selectors(&t.rt, &lq)?;
    let include = include_of(q)?;
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(1800);
    let send_initial = q.flag("sendInitialEvents");
    let bookmarks = q.flag("allowWatchBookmarks");
    let name = t.name.clone().or_else(|| fields.name().map(String::from));
    let state = shared.lock();
    let rx = state.store.subscribe();
    let current = state.store.rv();
    let mut w = Watch {
        pending: VecDeque::new(),
        rx,
        rt: t.rt.clone(),
        namespace: t.namespace.clone(),
        name,
        labels,
        fields,
        format,
        include,
        bookmarks,
        columns_sent: false,
        last_rv: current,
        deadline: tokio::time::Instant::now() + Duration::from_secs(timeout),
        done: false,
    };
    let rv = lq.resource_version.as_deref().unwrap_or_default();
    let from: Option<u64> = match rv {
        "" | "0" => None,
        r => Some(
            r.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {r}")))?,
        ),
    };
    if send_initial || from.is_none() {
        let objs: Vec<Value> = state
            .store
            .list(&t.rt.storage, t.namespace.as_deref())
            .into_iter()
            .filter(|o| w.matches(o))
            .cloned()
            .collect();
        for o in &objs {
            let b = w.render("ADDED", o);
            w.pending.push_back(b);
        }
        if send_initial && bookmarks {
            w.bookmark(current, Some(json!({"k8s.io/initial-events-end": "true"})));
        }
    } else if let Some(from) = from {
        match state.store.since(from) {
            Ok(changes) => {
                for c in changes {
                    w.on_change(&c);
                }
                w.last_rv = current;
            }
            Err(oldest) => {
                let status =
                    ApiError::expired(format!("too old resource version: {from} ({oldest})"))
                        .status();
                w.pending.push_back(line("ERROR", &status));
                w.done = true;
            }
        }
    }
    drop(state);
    let stream = futures::stream::unfold(w, next_chunk);
    let mut r = Response::new(Body::from_stream(stream));
    if let Ok(v) = HeaderValue::from_str(content_type_of(format)) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    Ok(r)
}
