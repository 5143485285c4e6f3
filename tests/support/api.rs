//! A client of orca's HTTP API, as `curl` would be: real HTTP to a real
//! `orca standalone --listen` (or an operator), with or without the
//! bearer token.

use std::time::Duration;

use serde_json::{Value, json};

use super::sandbox::Sandbox;
use super::standalone::Standalone;

/// A token the tests give orca in a file.
pub const TOKEN: &str = "test-token-0123456789abcdef";

pub struct ApiClient {
    pub base: String,
    pub token: Option<String>,
    http: reqwest::Client,
}

impl ApiClient {
    pub fn new(base: impl Into<String>, token: Option<&str>) -> ApiClient {
        ApiClient {
            base: base.into(),
            token: token.map(str::to_string),
            http: orca::api::http_client(Duration::from_secs(120)).expect("an HTTP client"),
        }
    }

    /// The same server without a token.
    pub fn anonymous(&self) -> ApiClient {
        ApiClient::new(self.base.clone(), None)
    }

    pub fn with_token(&self, token: &str) -> ApiClient {
        ApiClient::new(self.base.clone(), Some(token))
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> (u16, String) {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let r = req.send().await.expect("the API answers");
        let status = r.status().as_u16();
        (status, r.text().await.expect("a body"))
    }

    /// GET `path`: the status and the body as text.
    pub async fn get_text(&self, path: &str) -> (u16, String) {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    /// GET `path`: the status and the body as JSON.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let (s, body) = self.get_text(path).await;
        (s, parse(&body))
    }

    /// POST a raw body with a JSON content type.
    pub async fn post_raw(&self, path: &str, body: String) -> (u16, Value) {
        let (s, body) = self
            .send(
                self.http
                    .post(format!("{}{path}", self.base))
                    .header("content-type", "application/json")
                    .body(body),
            )
            .await;
        (s, parse(&body))
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_raw(path, body.to_string()).await
    }
}

fn parse(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"))
}

/// The API's base URL from a log that says where it listens (`API
/// listening ... address=HOST:PORT`), colours or not.
pub fn api_address(log: &str) -> Option<String> {
    let plain: String = {
        // Without ANSI escapes (ESC [ ... m).
        let mut out = String::new();
        let mut chars = log.chars();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                for d in chars.by_ref() {
                    if d == 'm' {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    };
    let line = plain.lines().find(|l| l.contains("API listening"))?;
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("address="))?;
    Some(format!("http://{addr}"))
}

/// The address `orca standalone --listen 127.0.0.1:0` bound, from its
/// log.
pub async fn listening(orca: &Standalone) -> String {
    orca.wait_log(Duration::from_secs(30), &["API listening"])
        .await;
    api_address(&orca.logs()).unwrap_or_else(|| panic!("no address in the log:\n{}", orca.logs()))
}

/// A file holding [`TOKEN`].
pub fn token_file(dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("api-token");
    std::fs::write(&p, format!("{TOKEN}\n")).expect("write the token file");
    p
}

/// `orca standalone --listen` for `seeds`, with the test token and,
/// given one, a database of a real store; its API answers once this
/// returns (ready: the first round is published).
pub struct Served {
    pub orca: Standalone,
    pub api: ApiClient,
    _dir: tempfile::TempDir,
}

pub async fn serve_standalone(
    cluster: &str,
    seeds: &[orca::topology::InstanceKey],
    store: Option<(&super::store::StoreServer, &str)>,
) -> Served {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = token_file(dir.path());
    let mut cmd = Standalone::command(
        std::path::Path::new(env!("CARGO_BIN_EXE_orca")),
        cluster,
        seeds,
    );
    cmd.args(["--listen", "127.0.0.1:0", "--api-token-file"])
        .arg(&token);
    if let Some((s, db)) = store {
        cmd.args(["--store-dsn", &s.dsn(db)])
            .env("ORCA_STORE_PASSWORD", s.password());
    }
    let orca = Standalone::spawn(cmd);
    let api = ApiClient::new(listening(&orca).await, Some(TOKEN));
    super::eventually(Duration::from_secs(30), "ready", || async {
        (api.anonymous().get("/readyz").await.0 == 200).then_some(())
    })
    .await;
    Served {
        orca,
        api,
        _dir: dir,
    }
}

/// A ServiceAccount with a long-lived token Secret, and RBAC: `cluster_verbs`
/// on mysqlclusters everywhere (a ClusterRoleBinding), `ns_verbs` in
/// `default` (a RoleBinding).
pub fn account(name: &str, cluster_verbs: &[&str], ns_verbs: &[&str]) -> String {
    let rule = |verbs: &[&str]| json!([{"apiGroups": ["orca.dev"], "resources": ["mysqlclusters"], "verbs": verbs}]);
    let mut docs = vec![
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": "default"}}),
        json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
               "metadata": {"name": format!("{name}-token"), "namespace": "default",
                            "annotations": {"kubernetes.io/service-account.name": name}}}),
    ];
    let subject = json!([{"kind": "ServiceAccount", "name": name, "namespace": "default"}]);
    if !cluster_verbs.is_empty() {
        docs.push(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": format!("{name}-mysql")}, "rules": rule(cluster_verbs)}),
        );
        docs.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": format!("{name}-mysql")}, "subjects": subject,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": format!("{name}-mysql")}}));
    }
    if !ns_verbs.is_empty() {
        docs.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": format!("{name}-mysql"), "namespace": "default"}, "rules": rule(ns_verbs)}));
        docs.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": format!("{name}-mysql"), "namespace": "default"}, "subjects": subject,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": format!("{name}-mysql")}}));
    }
    docs.iter()
        .map(|d| serde_json::to_string(d).unwrap())
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// The token of `name`'s Secret, as `kubectl` reads it.
pub fn token(sb: &Sandbox, name: &str) -> String {
    let secret = sb
        .kubectl()
        .json(&["get", "secret", &format!("{name}-token"), "-o", "json"]);
    let b64 = secret["data"]["token"].as_str().expect("a token filled in");
    use base64::Engine as _;
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap()
}

/// A bound token for the ServiceAccount `sa` of `ns` from the
/// TokenRequest API, valid for an hour: the whole answer.
pub async fn token_request(sb: &Sandbox, ns: &str, sa: &str) -> Value {
    use k8s_openapi::api::core::v1::ServiceAccount;
    use kube::api::{Api, PostParams};
    let api: Api<ServiceAccount> = Api::namespaced(sb.client().await, ns);
    api.create_subresource(
        "token",
        sa,
        &PostParams::default(),
        &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"expirationSeconds": 3600}}),
    )
    .await
    .expect("TokenRequest")
}

/// A Service `name` in `namespace` with no selector, port `http`
/// (`service_port`), and hand-made Endpoints sending it to
/// `127.0.0.1:port`: a process on loopback behind the API server's
/// service proxy.
pub fn loopback_service(namespace: &str, name: &str, service_port: u16, port: u16) -> String {
    format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  ports: [{{name: http, port: {service_port}}}]
---
apiVersion: v1
kind: Endpoints
metadata: {{name: {name}, namespace: {namespace}}}
subsets:
- addresses: [{{ip: 127.0.0.1}}]
  ports: [{{name: http, port: {port}}}]
"#
    )
}
