//! The service proxy, `/api/v1/namespaces/{ns}/services/{name}[:{port}]/proxy[/{path}]`,
//! as kube-apiserver serves it: the caller needs the `proxy` subresource
//! of `services` (verb from the method, [`verb`]); the Service's port is
//! chosen by name or number ([`resolve`]), a ready address of its
//! Endpoints (hand-made ones of a selectorless Service too) takes the
//! request over plain HTTP, with the method, the path below `proxy`, the
//! query and the body, without `Authorization` and the hop-by-hop
//! headers; the answer is streamed back as it comes (a server-sent
//! events stream is never buffered).

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, header};
use axum::response::Response;
use serde_json::Value;

use super::error::ApiError;
use super::http::Shared;
use super::ops::{STORAGE_ENDPOINTS, STORAGE_SERVICES};

/// How long the backend may take to accept the connection.
const CONNECT_LIMIT: Duration = Duration::from_secs(10);
/// How long the backend may take to begin its answer (status and
/// headers). Longer than orca's own operation limit (300 s), whose
/// answer waits for the operation. The body then streams without limit.
const HEAD_LIMIT: Duration = Duration::from_secs(330);

/// A parsed service proxy path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyPath {
    pub namespace: String,
    /// The name segment as given (`name`, `name:port`,
    /// `scheme:name:port`): the name RBAC's `resourceNames` see, as on a
    /// real server.
    pub segment: String,
    pub service: String,
    /// The port's name or number; `None` for the Service's only (or
    /// first) port.
    pub port: Option<String>,
    /// The path below `proxy`, as sent (percent-encoded), from `/`.
    pub rest: String,
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// `None` when `path` is not a service proxy path; otherwise the target,
/// or why it cannot be served (a 400).
pub fn parse(path: &str) -> Option<Result<ProxyPath, String>> {
    let p = path.strip_prefix("/api/v1/namespaces/")?;
    let (ns, p) = p.split_once('/')?;
    let p = p.strip_prefix("services/")?;
    let (segment, p) = p.split_once('/')?;
    let rest = p.strip_prefix("proxy")?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    let rest = if rest.is_empty() { "/" } else { rest }.to_string();
    let (namespace, segment) = (decode(ns), decode(segment));
    let parts: Vec<&str> = segment.split(':').collect();
    let (scheme, name, port) = match parts.as_slice() {
        [name] => ("", *name, ""),
        [name, port] => ("", *name, *port),
        [scheme, name, port] => (*scheme, *name, *port),
        _ => return Some(Err(format!("invalid service request {segment:?}"))),
    };
    match scheme {
        "" | "http" => {}
        "https" => {
            return Some(Err(format!(
                "{segment:?}: the sandbox's service proxy speaks plain HTTP to its backends; https is not supported"
            )));
        }
        other => return Some(Err(format!("invalid scheme {other:?} in {segment:?}"))),
    }
    if name.is_empty() || namespace.is_empty() {
        return Some(Err(format!("invalid service request {segment:?}")));
    }
    Some(Ok(ProxyPath {
        namespace,
        service: name.to_string(),
        port: (!port.is_empty()).then(|| port.to_string()),
        segment,
        rest,
    }))
}

/// The RBAC verb of a proxied request, from its method, as kube-apiserver
/// names it.
pub fn verb(method: &Method) -> String {
    match method.as_str() {
        "GET" | "HEAD" => "get".into(),
        "POST" => "create".into(),
        "PUT" => "update".into(),
        "PATCH" => "patch".into(),
        "DELETE" => "delete".into(),
        other => other.to_lowercase(),
    }
}

/// The address a request for `port` of `service` goes to: the Service's
/// port (by name or number; the only one, or else the first, when none is
/// asked for), then the ready addresses of its Endpoints carrying that
/// port, `pick` choosing among them. Errors are the real server's 503s.
pub fn resolve(
    service: &Value,
    endpoints: Option<&Value>,
    port: Option<&str>,
    pick: usize,
) -> Result<(String, u16), String> {
    let name = service["metadata"]["name"].as_str().unwrap_or_default();
    let ports = service["spec"]["ports"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let chosen = match port {
        None => ports.first(),
        Some(p) => ports.iter().find(|sp| {
            sp["name"].as_str() == Some(p)
                || p.parse::<i64>()
                    .is_ok_and(|n| sp["port"].as_i64() == Some(n))
        }),
    };
    let Some(chosen) = chosen else {
        return Err(format!(
            "no service port {:?} found for service {name:?}",
            port.unwrap_or_default()
        ));
    };
    let port_name = chosen["name"].as_str().unwrap_or_default();
    let mut targets = Vec::new();
    for subset in endpoints
        .and_then(|e| e["subsets"].as_array())
        .into_iter()
        .flatten()
    {
        let sub_ports = subset["ports"].as_array().cloned().unwrap_or_default();
        let Some(p) = sub_ports
            .iter()
            .find(|ep| ep["name"].as_str().unwrap_or_default() == port_name)
            .and_then(|ep| ep["port"].as_u64())
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        for a in subset["addresses"].as_array().into_iter().flatten() {
            if let Some(ip) = a["ip"].as_str() {
                targets.push((ip.to_string(), p));
            }
        }
    }
    if targets.is_empty() {
        return Err(format!("no endpoints available for service {name:?}"));
    }
    let i = pick % targets.len();
    Ok(targets.swap_remove(i))
}

/// Headers that belong to one connection, never forwarded either way.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// `headers` without the hop-by-hop ones (and those `Connection` names),
/// and without `drop`.
pub fn forwardable(headers: &HeaderMap, drop: &[HeaderName]) -> HeaderMap {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    let mut out = HeaderMap::new();
    for (k, v) in headers {
        let n = k.as_str();
        if HOP_BY_HOP.contains(&n) || named.iter().any(|x| x == n) || drop.contains(k) {
            continue;
        }
        out.append(k.clone(), v.clone());
    }
    out
}

/// Forwards an admitted request to the Service's backend and streams the
/// answer back.
pub async fn forward(
    shared: &Arc<Shared>,
    target: &ProxyPath,
    method: &Method,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (ip, port) = {
        let state = shared.lock();
        let svc = state
            .store
            .get(STORAGE_SERVICES, &target.namespace, &target.service)
            .cloned()
            .ok_or_else(|| ApiError::not_found("", "services", &target.service))?;
        let eps = state
            .store
            .get(STORAGE_ENDPOINTS, &target.namespace, &target.service)
            .cloned();
        let pick = (uuid::Uuid::new_v4().as_u128() % 1024) as usize;
        resolve(&svc, eps.as_ref(), target.port.as_deref(), pick)
            .map_err(ApiError::service_unavailable)?
    };
    let authority = if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    };
    let path_and_query = match query {
        Some(q) if !q.is_empty() => format!("{}?{q}", target.rest),
        _ => target.rest.clone(),
    };
    let failed = |e: String| {
        ApiError::service_unavailable(format!(
            "error trying to reach service: {method} http://{authority}{}: {e}",
            target.rest
        ))
    };
    let stream = tokio::time::timeout(
        CONNECT_LIMIT,
        tokio::net::TcpStream::connect((ip.as_str(), port)),
    )
    .await
    .map_err(|_| failed("dial tcp: i/o timeout".into()))?
    .map_err(|e| failed(format!("dial tcp: {e}")))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| failed(e.to_string()))?;
    // Drives the connection for as long as the answer streams.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = Request::builder()
        .method(method.clone())
        .uri(&path_and_query)
        .body(Body::from(body))
        .map_err(|e| ApiError::bad_request(format!("the proxied request: {e}")))?;
    *req.headers_mut() = forwardable(headers, &[header::AUTHORIZATION, header::HOST]);
    if let Ok(h) = HeaderValue::from_str(&authority) {
        req.headers_mut().insert(header::HOST, h);
    }
    let answer = tokio::time::timeout(HEAD_LIMIT, sender.send_request(req))
        .await
        .map_err(|_| failed("timeout awaiting response headers".into()))?
        .map_err(|e| failed(e.to_string()))?;
    let (parts, incoming) = answer.into_parts();
    let mut r = Response::new(Body::new(incoming));
    *r.status_mut() = parts.status;
    *r.headers_mut() = forwardable(&parts.headers, &[]);
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn proxy_paths_parse() {
        let ok = |ns: &str, seg: &str, svc: &str, port: Option<&str>, rest: &str| {
            Some(Ok(ProxyPath {
                namespace: ns.into(),
                segment: seg.into(),
                service: svc.into(),
                port: port.map(String::from),
                rest: rest.into(),
            }))
        };
        let table = [
            (
                "/api/v1/namespaces/orca/services/orca/proxy",
                ok("orca", "orca", "orca", None, "/"),
            ),
            (
                "/api/v1/namespaces/orca/services/orca/proxy/",
                ok("orca", "orca", "orca", None, "/"),
            ),
            (
                "/api/v1/namespaces/orca/services/orca:http/proxy/api/v1/clusters",
                ok(
                    "orca",
                    "orca:http",
                    "orca",
                    Some("http"),
                    "/api/v1/clusters",
                ),
            ),
            (
                "/api/v1/namespaces/a/services/b:8080/proxy/x%2Fy/z",
                ok("a", "b:8080", "b", Some("8080"), "/x%2Fy/z"),
            ),
            (
                "/api/v1/namespaces/a/services/http:b:web/proxy/p",
                ok("a", "http:b:web", "b", Some("web"), "/p"),
            ),
            (
                "/api/v1/namespaces/a/services/b:/proxy",
                ok("a", "b:", "b", None, "/"),
            ),
            (
                "/api/v1/namespaces/a/services/http%3Ab%3Aweb/proxy",
                ok("a", "http:b:web", "b", Some("web"), "/"),
            ),
            // not proxy paths: the ordinary routes take them
            ("/api/v1/namespaces/a/services/b", None),
            ("/api/v1/namespaces/a/services/b/status", None),
            ("/api/v1/namespaces/a/services/b/proxyx", None),
            ("/api/v1/namespaces/a/pods/b/proxy", None),
            ("/apis/apps/v1/namespaces/a/services/b/proxy", None),
            ("/api/v1/services/b/proxy", None),
        ];
        for (path, want) in table {
            assert_eq!(parse(path), want, "{path}");
        }
        for bad in [
            "/api/v1/namespaces/a/services/https:b:443/proxy/",
            "/api/v1/namespaces/a/services/ftp:b:21/proxy/",
            "/api/v1/namespaces/a/services/a:b:c:d/proxy/",
            "/api/v1/namespaces/a/services/:http/proxy/",
        ] {
            assert!(matches!(parse(bad), Some(Err(_))), "{bad}");
        }
        let https = parse("/api/v1/namespaces/a/services/https:b:443/proxy/");
        assert!(
            matches!(&https, Some(Err(e)) if e.contains("https is not supported")),
            "{https:?}"
        );
    }

    #[test]
    fn verbs_come_from_methods() {
        for (m, v) in [
            (Method::GET, "get"),
            (Method::HEAD, "get"),
            (Method::POST, "create"),
            (Method::PUT, "update"),
            (Method::PATCH, "patch"),
            (Method::DELETE, "delete"),
            (Method::OPTIONS, "options"),
        ] {
            assert_eq!(verb(&m), v, "{m}");
        }
    }

    #[test]
    fn ports_and_endpoints_resolve() {
        let svc = json!({"metadata": {"name": "orca"}, "spec": {"ports": [
            {"name": "http", "port": 8080}, {"name": "metrics", "port": 9090}]}});
        let eps = json!({"subsets": [
            {"addresses": [{"ip": "127.0.0.5"}, {"ip": "127.0.0.6"}],
             "notReadyAddresses": [{"ip": "127.0.0.7"}],
             "ports": [{"name": "http", "port": 18080}, {"name": "metrics", "port": 19090}]}]});
        let one = json!({"metadata": {"name": "one"}, "spec": {"ports": [{"port": 80}]}});
        let one_eps =
            json!({"subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 8000}]}]});
        let none =
            Err::<(String, u16), String>("no endpoints available for service \"orca\"".into());
        // (Service, Endpoints, port asked, pick, where it goes)
        type Case<'a> = (
            &'a Value,
            Option<&'a Value>,
            Option<&'a str>,
            usize,
            Result<(String, u16), String>,
        );
        let table: [Case; 10] = [
            (
                &svc,
                Some(&eps),
                Some("http"),
                0,
                Ok(("127.0.0.5".into(), 18080)),
            ),
            (
                &svc,
                Some(&eps),
                Some("http"),
                1,
                Ok(("127.0.0.6".into(), 18080)),
            ),
            (
                &svc,
                Some(&eps),
                Some("http"),
                2,
                Ok(("127.0.0.5".into(), 18080)),
            ),
            (
                &svc,
                Some(&eps),
                Some("9090"),
                0,
                Ok(("127.0.0.5".into(), 19090)),
            ),
            (&svc, Some(&eps), None, 0, Ok(("127.0.0.5".into(), 18080))),
            (
                &svc,
                Some(&eps),
                Some("nope"),
                0,
                Err("no service port \"nope\" found for service \"orca\"".into()),
            ),
            (&svc, None, Some("http"), 0, none.clone()),
            (
                &svc,
                Some(
                    &json!({"subsets": [{"notReadyAddresses": [{"ip": "127.0.0.7"}], "ports": [{"name": "http", "port": 1}]}]}),
                ),
                Some("http"),
                0,
                none.clone(),
            ),
            (&one, Some(&one_eps), None, 0, Ok(("10.0.0.1".into(), 8000))),
            (
                &one,
                Some(&one_eps),
                Some("80"),
                3,
                Ok(("10.0.0.1".into(), 8000)),
            ),
        ];
        for (s, e, p, pick, want) in table {
            assert_eq!(resolve(s, e, p, pick), want, "{p:?} {pick}");
        }
    }

    #[test]
    fn hop_by_hop_headers_and_authorization_stay_behind() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("authorization", "Bearer secret"),
            ("x-orca-authorization", "Bearer mine"),
            ("connection", "keep-alive, x-private"),
            ("x-private", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("accept", "text/event-stream"),
        ] {
            h.append(k, HeaderValue::from_static(v));
        }
        let out = forwardable(&h, &[header::AUTHORIZATION]);
        let mut names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        names.sort();
        assert_eq!(names, ["accept", "x-orca-authorization"]);
    }
}
