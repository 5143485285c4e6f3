//! The sandbox API server's service proxy, through the real server with
//! a small HTTP backend on loopback behind a selectorless Service and
//! hand-made Endpoints: method, path, query and body reach the backend,
//! `Authorization` does not while `X-Orca-Authorization` does, an answer
//! streams (its first chunk arrives while the backend still holds the
//! rest), RBAC asks for `services/proxy`, and a Service without
//! endpoints, or none at all, gets the real server's Status.

mod support;

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use serde_json::{Value, json};
use support::sandbox::Sandbox;
use tokio::sync::{mpsc, oneshot};

/// The backend: `/stream` answers one chunk, then the rest once told
/// to; every other path echoes the request as JSON.
async fn backend(release: oneshot::Receiver<()>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let release = Arc::new(Mutex::new(Some(release)));
    let app = axum::Router::new().fallback(move |req: Request| {
        let release = release.clone();
        async move {
            if req.uri().path() == "/stream" {
                let (tx, rx) = mpsc::channel::<Result<String, std::io::Error>>(4);
                let wait = release.lock().unwrap().take();
                tokio::spawn(async move {
                    tx.send(Ok("data: first\n\n".into())).await.unwrap();
                    if let Some(w) = wait {
                        let _ = w.await;
                    }
                    tx.send(Ok("data: last\n\n".into())).await.unwrap();
                });
                let stream = futures::stream::unfold(rx, |mut rx| async move {
                    rx.recv().await.map(|x| (x, rx))
                });
                return Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(Body::from_stream(stream))
                    .unwrap();
            }
            let (parts, body) = req.into_parts();
            let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
            let header = |n: &str| {
                parts
                    .headers
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .map(String::from)
            };
            let echo = json!({
                "method": parts.method.as_str(),
                "path": parts.uri.path(),
                "query": parts.uri.query(),
                "body": String::from_utf8_lossy(&body),
                "authorization": header("authorization"),
                "orcaAuthorization": header("x-orca-authorization"),
                "host": header("host"),
            });
            Response::builder()
                .status(201)
                .header("content-type", "application/json")
                .header("x-backend", "echo")
                .body(Body::from(echo.to_string()))
                .unwrap()
        }
    });
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    port
}

async fn token_for(sb: &Sandbox, sa: &str) -> String {
    sb.kubectl()
        .ok(&["create", "serviceaccount", sa, "-n", "default"]);
    let answer = support::api::token_request(sb, "default", sa).await;
    answer["status"]["token"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_service_proxy_forwards_streams_and_is_authorized() {
    let sb = Sandbox::api_server();
    let (release, released) = oneshot::channel();
    let port = backend(released).await;
    let manifests = format!(
        r#"{}
---
apiVersion: v1
kind: Service
metadata: {{name: empty, namespace: default}}
spec:
  ports: [{{name: http, port: 80}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: proxy, namespace: default}}
rules:
- apiGroups: [""]
  resources: [services/proxy]
  verbs: [get, create]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: proxy, namespace: default}}
subjects: [{{kind: ServiceAccount, name: prober, namespace: default}}]
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: proxy}}
"#,
        support::api::loopback_service("default", "echo", 80, port)
    );
    sb.kubectl().apply(&manifests);
    let prober = token_for(&sb, "prober").await;
    let nobody = token_for(&sb, "nobody").await;
    let http = orca::api::http_client(std::time::Duration::from_secs(30)).unwrap();
    let base = format!("{}/api/v1/namespaces/default/services", sb.url);

    // Method, path, query and body; Authorization stays behind.
    let r = http
        .post(format!("{base}/echo:http/proxy/some/path?a=1&b=x%20y"))
        .bearer_auth(&prober)
        .header("x-orca-authorization", "Bearer for-the-backend")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    assert_eq!(r.headers()["x-backend"], "echo");
    let echo: Value = r.json().await.unwrap();
    assert_eq!(echo["method"], "POST", "{echo}");
    assert_eq!(echo["path"], "/some/path", "{echo}");
    assert_eq!(echo["query"], "a=1&b=x%20y", "{echo}");
    assert_eq!(echo["body"], "hello", "{echo}");
    assert_eq!(echo["authorization"], Value::Null, "{echo}");
    assert_eq!(
        echo["orcaAuthorization"], "Bearer for-the-backend",
        "{echo}"
    );
    assert_eq!(echo["host"], format!("127.0.0.1:{port}"), "{echo}");
    // The port by number, and the Service's only port when none is named.
    for seg in ["echo:80", "echo"] {
        let r = http
            .get(format!("{base}/{seg}/proxy/"))
            .bearer_auth(&prober)
            .send()
            .await
            .unwrap();
        let echo: Value = r.json().await.unwrap();
        assert_eq!(
            (echo["method"].as_str(), echo["path"].as_str()),
            (Some("GET"), Some("/")),
            "{seg}: {echo}"
        );
    }

    // A stream: the first event comes while the backend holds the rest.
    let mut r = http
        .get(format!("{base}/echo:http/proxy/stream"))
        .bearer_auth(&prober)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let first = r.chunk().await.unwrap().expect("a first chunk");
    assert_eq!(&first[..], b"data: first\n\n");
    release.send(()).unwrap();
    let mut rest = Vec::new();
    while let Some(c) = r.chunk().await.unwrap() {
        rest.extend_from_slice(&c);
    }
    assert_eq!(rest, b"data: last\n\n");

    // RBAC: the proxy subresource, with the verb of the method.
    let r = http
        .get(format!("{base}/echo:http/proxy/"))
        .bearer_auth(&nobody)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let status: Value = r.json().await.unwrap();
    assert_eq!(status["kind"], "Status");
    assert_eq!(
        status["message"],
        "services \"echo:http\" is forbidden: User \"system:serviceaccount:default:nobody\" cannot get resource \"services/proxy\" in API group \"\" in the namespace \"default\"",
        "{status}"
    );
    let r = http
        .delete(format!("{base}/echo:http/proxy/x"))
        .bearer_auth(&prober)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403, "prober may not delete");
    let r = http
        .get(format!("{base}/echo:http/proxy/"))
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // No endpoints, no Service, no such port, https.
    for (seg, code, message) in [
        (
            "empty:http",
            503,
            "no endpoints available for service \"empty\"",
        ),
        ("nosuch", 404, "services \"nosuch\" not found"),
        (
            "echo:grpc",
            503,
            "no service port \"grpc\" found for service \"echo\"",
        ),
    ] {
        let r = http
            .get(format!("{base}/{seg}/proxy/"))
            .bearer_auth(&prober)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), code, "{seg}");
        let status: Value = r.json().await.unwrap();
        assert_eq!(status["kind"], "Status", "{seg}: {status}");
        assert_eq!(status["code"], code, "{seg}: {status}");
        assert_eq!(status["message"], message, "{seg}: {status}");
    }
    let r = http
        .get(format!("{base}/https:echo:443/proxy/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);

    // `kubectl get --raw` goes through it too.
    let out = sb.kubectl().ok(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/services/echo:http/proxy/raw?x=1",
    ]);
    let echo: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(echo["path"], "/raw", "{echo}");
    assert_eq!(echo["query"], "x=1", "{echo}");
}
