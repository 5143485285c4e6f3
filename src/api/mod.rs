//! The HTTP API (JSON), served by `orca standalone --listen` and by every
//! operator replica:
//!
//! - `GET /healthz`, `GET /readyz`, `GET /api/v1/leader`;
//! - `GET /api/v1/clusters`, `GET /api/v1/clusters/{namespace}/{name}`
//!   (from the read model the engines publish after every round: a read
//!   never waits for a probe);
//! - `GET /api/v1/clusters/{namespace}/{name}/recoveries` and `/audit`
//!   (from the store, paged; 503 without one);
//! - `GET /api/v1/instances/{host:port}`;
//! - `POST /api/v1/clusters/{namespace}/{name}/operations` (a dry run
//!   answers the plan; a real one, the record), carried out by whoever
//!   owns the cluster's engine ([`Operations`]);
//! - `GET /api/v1/openapi.json`, generated from the types ([`openapi`]).
//!
//! Every request has a size limit and a time limit; every error is a
//! status with a one-line reason ([`ApiError`]), a 4xx for anything a
//! caller sent.

pub mod auth;
pub mod error;
pub mod model;
pub mod openapi;
mod stream;
mod ui;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tokio::sync::watch;

pub use auth::{Access, Authorizer, BoxFuture, Caller, StaticToken};
pub use error::ApiError;
pub use model::{ClusterId, ClusterView, LeaderView, OperationAnswer, OperationRequest, ReadModel};

use crate::plan::operation::OperationKind;
use crate::store::{Page, Store};

/// Whoever carries out the operations asked for through the API: the
/// engine loop of `orca standalone`, the operator's leader.
pub trait Operations: Send + Sync {
    /// Carries out (or, for a dry run, plans) `request` on `cluster`,
    /// whose kind is known to parse.
    fn submit(
        &self,
        cluster: ClusterId,
        request: OperationRequest,
        caller: Caller,
    ) -> BoxFuture<Result<OperationAnswer, ApiError>>;
}

/// Called once per request with the matched route and the status (the
/// metrics count them).
pub type RequestHook = Arc<dyn Fn(&str, u16) + Send + Sync>;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub model: ReadModel,
    pub store: Option<Store>,
    pub operations: Arc<dyn Operations>,
    pub auth: Arc<dyn Authorizer>,
    pub leader: watch::Receiver<LeaderView>,
    /// Set once the engine published its first view (or the operator's
    /// caches are synced).
    pub ready: Arc<AtomicBool>,
    pub on_request: Option<RequestHook>,
}

/// The largest request body taken.
pub const BODY_LIMIT: usize = 64 * 1024;
/// The time limit of a read.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The time limit of an operation: it answers with the record, so it
/// waits for the operation to end (the operation goes on past it; its
/// record is in the store and in `recentOperations`).
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(300);

/// The routes, with their limits.
pub fn router(state: ApiState) -> Router {
    let reads = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/leader", get(leader))
        .route("/api/v1/openapi.json", get(openapi_document))
        .route("/api/v1/clusters", get(clusters))
        .route("/api/v1/clusters/{namespace}/{name}", get(cluster))
        .route(
            "/api/v1/clusters/{namespace}/{name}/recoveries",
            get(recoveries),
        )
        .route("/api/v1/clusters/{namespace}/{name}/audit", get(audit))
        .route(
            "/api/v1/clusters/{namespace}/{name}/findings",
            get(findings),
        )
        .route(
            "/api/v1/clusters/{namespace}/{name}/recoveries/{id}/steps",
            get(recovery_steps),
        )
        .route("/api/v1/instances/{instance}", get(instance))
        .layer(middleware::from_fn(|r, n| limit(READ_TIMEOUT, r, n)));
    // Streams last as long as their reader; only their start is bounded
    // (the authorization), by the reader's own time limit.
    let streams = Router::new()
        .route("/api/v1/stream/clusters", get(stream::clusters))
        .route(
            "/api/v1/stream/clusters/{namespace}/{name}",
            get(stream::cluster),
        );
    let operations = Router::new()
        .route(
            "/api/v1/clusters/{namespace}/{name}/operations",
            post(operate),
        )
        .layer(middleware::from_fn(|r, n| limit(OPERATION_TIMEOUT, r, n)));
    let hook = state.on_request.clone();
    reads
        .merge(streams)
        .merge(ui::router())
        .merge(operations)
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this route",
            )
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(move |r, n| count(hook.clone(), r, n)))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// An HTTP client with a time limit on every request (webhooks, the
/// CLI's API client). The TLS crypto provider is installed once for the
/// process; installing it again is a no-op.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| e.to_string())
}

/// Binds `addr` (a clear error when taken).
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))
}

async fn limit(after: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(after, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!("no answer within {} s", after.as_secs()),
        )
        .into_response(),
    }
}

async fn count(hook: Option<RequestHook>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let r = next.run(req).await;
    if let Some(h) = hook {
        h(&route, r.status().as_u16());
    }
    r
}

/// The header that carries the caller's token when `Authorization`
/// cannot: the Kubernetes API server's service proxy takes the
/// `Authorization` it authenticated off the request before passing it
/// on, so the web page and `kubectl orca` send their token here as well.
pub const TOKEN_HEADER: &str = "x-orca-authorization";

/// The bearer token of a request: `Authorization` first, then
/// [`TOKEN_HEADER`].
fn bearer(headers: &HeaderMap) -> Option<String> {
    [header::AUTHORIZATION.as_str(), TOKEN_HEADER]
        .into_iter()
        .find_map(|name| {
            let v = headers.get(name)?.to_str().ok()?;
            let (scheme, token) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_string())
        })
}

pub(crate) async fn authorize(
    s: &ApiState,
    headers: &HeaderMap,
    access: Access,
) -> Result<Caller, ApiError> {
    s.auth.authorize(bearer(headers), access).await
}

fn json_error(e: JsonRejection) -> ApiError {
    ApiError::new(e.status(), e.body_text())
}

pub(crate) fn path_error(e: PathRejection) -> ApiError {
    ApiError::bad_request(e.body_text())
}

fn query_error(e: QueryRejection) -> ApiError {
    ApiError::bad_request(e.body_text())
}

async fn healthz() -> Json<model::Health> {
    Json(model::Health {
        status: "ok".into(),
    })
}

async fn readyz(State(s): State<ApiState>) -> Result<Json<model::Health>, ApiError> {
    if s.ready.load(Ordering::Relaxed) {
        Ok(Json(model::Health {
            status: "ready".into(),
        }))
    } else {
        Err(ApiError::unavailable("not ready: no topology observed yet"))
    }
}

async fn leader(
    State(s): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<LeaderView>, ApiError> {
    authorize(&s, &headers, Access::Read(None)).await?;
    Ok(Json(s.leader.borrow().clone()))
}

async fn openapi_document() -> Json<serde_json::Value> {
    Json(openapi::document())
}

async fn clusters(
    State(s): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<model::ClusterList>, ApiError> {
    authorize(&s, &headers, Access::Read(None)).await?;
    Ok(Json(model::ClusterList {
        items: s.model.list().iter().map(|c| c.summary()).collect(),
    }))
}

pub(crate) fn known(s: &ApiState, id: &ClusterId) -> Result<Arc<ClusterView>, ApiError> {
    s.model
        .get(id)
        .ok_or_else(|| ApiError::not_found(format!("no cluster {id} here")))
}

async fn cluster(
    State(s): State<ApiState>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path((namespace, name)) = path.map_err(path_error)?;
    let id = ClusterId::new(namespace, name);
    authorize(&s, &headers, Access::Read(Some(id.clone()))).await?;
    let view = known(&s, &id)?;
    Ok(Json(&*view).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageQuery {
    #[serde(default)]
    page: u32,
    #[serde(default = "default_page_size")]
    page_size: u32,
}

fn default_page_size() -> u32 {
    50
}

impl PageQuery {
    fn page(&self) -> Result<Page, ApiError> {
        if self.page_size == 0 || self.page_size > Page::MAX {
            return Err(ApiError::bad_request(format!(
                "pageSize is 1 to {}",
                Page::MAX
            )));
        }
        Ok(Page::new(self.page, self.page_size))
    }
}

fn store_of(s: &ApiState) -> Result<&Store, ApiError> {
    s.store.as_ref().ok_or_else(|| {
        ApiError::unavailable("this orca has no store (--store-dsn): its history is not kept")
    })
}

fn store_failed(e: crate::store::StoreError) -> ApiError {
    ApiError::unavailable(format!("the store did not answer: {e}"))
}

/// A page of a cluster's records from the store, read by `read`.
async fn page_of<T, F, Fut>(
    s: &ApiState,
    headers: &HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<PageQuery>, QueryRejection>,
    read: F,
) -> Result<Json<model::RecordPage>, ApiError>
where
    T: serde::Serialize,
    F: FnOnce(Store, String, Page) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<T>, crate::store::StoreError>>,
{
    let Path((namespace, name)) = path.map_err(path_error)?;
    let Query(q) = query.map_err(query_error)?;
    let id = ClusterId::new(namespace, name);
    authorize(s, headers, Access::Read(Some(id.clone()))).await?;
    let page = q.page()?;
    let view = known(s, &id)?;
    let rows = read(store_of(s)?.clone(), view.store_key.clone(), page)
        .await
        .map_err(store_failed)?;
    Ok(Json(model::RecordPage::of(page.number, page.size, &rows)))
}

async fn recoveries(
    State(s): State<ApiState>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<model::RecordPage>, ApiError> {
    page_of(&s, &headers, path, query, |store, key, page| async move {
        store.recoveries(&key, page).await
    })
    .await
}

async fn audit(
    State(s): State<ApiState>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<model::RecordPage>, ApiError> {
    page_of(&s, &headers, path, query, |store, key, page| async move {
        store.audit(&key, page).await
    })
    .await
}

async fn findings(
    State(s): State<ApiState>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<model::RecordPage>, ApiError> {
    page_of(&s, &headers, path, query, |store, key, page| async move {
        store.findings(&key, page).await
    })
    .await
}

async fn recovery_steps(
    State(s): State<ApiState>,
    headers: HeaderMap,
    path: Result<Path<(String, String, String)>, PathRejection>,
) -> Result<Json<model::RecordPage>, ApiError> {
    let Path((namespace, name, recovery)) = path.map_err(path_error)?;
    let id = ClusterId::new(namespace, name);
    authorize(&s, &headers, Access::Read(Some(id.clone()))).await?;
    let view = known(&s, &id)?;
    let store = store_of(&s)?;
    // orca's ids are short printable ASCII; anything else names none
    // (and is never sent to the store).
    if recovery.is_empty()
        || recovery.len() > 255
        || !recovery.chars().all(|c| c.is_ascii_graphic())
    {
        return Err(ApiError::not_found(format!("no such recovery of {id}")));
    }
    let rows = store
        .cluster_recovery_steps(&view.store_key, &recovery)
        .await
        .map_err(store_failed)?;
    Ok(Json(model::RecordPage::of(0, rows.len() as u32, &rows)))
}

async fn instance(
    State(s): State<ApiState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<model::InstanceAnswer>, ApiError> {
    let Path(key) = path.map_err(path_error)?;
    authorize(&s, &headers, Access::Read(None)).await?;
    let key: crate::topology::InstanceKey = key
        .parse()
        .map_err(|e: crate::topology::ParseError| ApiError::bad_request(e.to_string()))?;
    let text = key.to_string();
    let (c, i) = s
        .model
        .instance(&text)
        .ok_or_else(|| ApiError::not_found(format!("no instance {text} in any cluster here")))?;
    Ok(Json(model::InstanceAnswer {
        namespace: c.namespace.clone(),
        cluster: c.name.clone(),
        findings: c
            .findings
            .iter()
            .filter(|f| f.instance == text || f.replicas.contains(&text))
            .cloned()
            .collect(),
        instance: i,
    }))
}

async fn operate(
    State(s): State<ApiState>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Json<OperationRequest>, JsonRejection>,
) -> Result<Json<OperationAnswer>, ApiError> {
    let Path((namespace, name)) = path.map_err(path_error)?;
    let id = ClusterId::new(namespace, name);
    let caller = authorize(&s, &headers, Access::Operate(id.clone())).await?;
    let Json(request) = body.map_err(json_error)?;
    request
        .kind
        .parse::<OperationKind>()
        .map_err(ApiError::bad_request)?;
    known(&s, &id)?;
    s.operations.submit(id, request, caller).await.map(Json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_comes_from_authorization_or_the_orca_header() {
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>);
        let table: [Case; 6] = [
            (&[], None),
            (&[("authorization", "Bearer abc")], Some("abc")),
            (&[("x-orca-authorization", "bearer  xyz ")], Some("xyz")),
            (
                &[
                    ("authorization", "Bearer first"),
                    ("x-orca-authorization", "Bearer second"),
                ],
                Some("first"),
            ),
            (
                &[
                    ("authorization", "Basic dXNlcg=="),
                    ("x-orca-authorization", "Bearer second"),
                ],
                Some("second"),
            ),
            (&[("x-orca-authorization", "token")], None),
        ];
        for (headers, want) in table {
            let mut h = HeaderMap::new();
            for (k, v) in headers {
                h.insert(*k, v.parse().unwrap());
            }
            assert_eq!(bearer(&h).as_deref(), want, "{headers:?}");
        }
    }
}
