//! The sandbox API server's HTTPS face as pods meet it: its CA in every
//! namespace's `kube-root-ca.crt`, ServiceAccount tokens from the
//! TokenRequest API, RBAC deciding with the real server's 403 text, 401
//! for a bad token, TokenReview naming the token's ServiceAccount, and the
//! ServiceAccount admission giving pods the `kube-api-access-*` volume.

mod support;

use std::path::Path;

use base64::Engine;
use serde_json::Value;
use support::kubectl::Kubectl;
use support::sandbox::Sandbox;

fn kubeconfig(path: &Path, url: &str, ca_pem: &str, token: &str) {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    std::fs::write(
        path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {url}\n    certificate-authority-data: {ca}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u, namespace: default}}\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: {token}\n"
        ),
    )
    .expect("write kubeconfig");
}

async fn token_for(sb: &Sandbox, ns: &str, sa: &str) -> String {
    let answer = support::api::token_request(sb, ns, sa).await;
    assert!(
        answer["status"]["expirationTimestamp"].is_string(),
        "{answer}"
    );
    answer["status"]["token"]
        .as_str()
        .expect("a token")
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn service_account_tokens_are_authenticated_and_rbac_decides() {
    let sb = Sandbox::api_server();
    let admin = sb.kubectl();
    let server = sb.server();
    let ca = server.ca_pem().to_string();
    let url = server.https_url();

    // The CA, published in every namespace, new ones too.
    admin.ok(&["create", "namespace", "shop"]);
    for ns in ["default", "kube-system", "shop"] {
        let cm = admin.json(&[
            "-n",
            ns,
            "get",
            "configmap",
            "kube-root-ca.crt",
            "-o",
            "json",
        ]);
        assert_eq!(cm["data"]["ca.crt"], ca.as_str(), "{ns}");
    }

    admin.ok(&["-n", "shop", "create", "serviceaccount", "reader"]);
    let token = token_for(&sb, "shop", "reader").await;
    let kc = sb.dir.path().join("reader.kubeconfig");
    kubeconfig(&kc, &url, &ca, &token);
    let home = sb.dir.path().join("reader-home");
    std::fs::create_dir_all(&home).expect("home");
    let reader = Kubectl::new(&kc, &home);

    // Authenticated over TLS (the CA verifies the server), but no rule yet.
    let out = reader.run(&["-n", "shop", "get", "pods"], None);
    assert!(!out.success());
    assert!(
        out.stderr.contains(
            "pods is forbidden: User \"system:serviceaccount:shop:reader\" cannot list resource \"pods\" in API group \"\" in the namespace \"shop\""
        ),
        "{}",
        out.stderr
    );
    let out = reader.run(&["get", "deployments.apps", "web", "-n", "shop"], None);
    assert!(
        out.stderr.contains(
            "deployments.apps \"web\" is forbidden: User \"system:serviceaccount:shop:reader\" cannot get resource \"deployments\" in API group \"apps\" in the namespace \"shop\""
        ),
        "{}",
        out.stderr
    );

    // A Role and its binding open exactly what they name.
    admin.ok(&[
        "-n",
        "shop",
        "create",
        "role",
        "pod-reader",
        "--verb=get,list,watch",
        "--resource=pods",
    ]);
    admin.ok(&[
        "-n",
        "shop",
        "create",
        "rolebinding",
        "pod-reader",
        "--role=pod-reader",
        "--serviceaccount=shop:reader",
    ]);
    let out = reader.run(&["-n", "shop", "get", "pods"], None);
    assert!(out.success(), "{}", out.stderr);
    let out = reader.run(&["-n", "default", "get", "pods"], None);
    assert!(
        out.stderr.contains(
            "cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
        ),
        "{}",
        out.stderr
    );
    let out = reader.run(&["get", "pods", "-A"], None);
    assert!(
        out.stderr
            .contains("cannot list resource \"pods\" in API group \"\" at the cluster scope"),
        "{}",
        out.stderr
    );
    let out = reader.run(&["-n", "shop", "delete", "pod", "x"], None);
    assert!(
        out.stderr.contains("pods \"x\" is forbidden: User \"system:serviceaccount:shop:reader\" cannot delete resource \"pods\""),
        "{}",
        out.stderr
    );

    // A bad token is 401; no token on the HTTPS face is anonymous.
    let bad = sb.dir.path().join("bad.kubeconfig");
    kubeconfig(&bad, &url, &ca, "not-a-token");
    let out = Kubectl::new(&bad, &home).run(&["get", "pods"], None);
    assert!(
        out.stderr.contains("Unauthorized") || out.stderr.contains("You must be logged in"),
        "{}",
        out.stderr
    );

    // TokenReview names the token's ServiceAccount.
    let review = admin.ok_in(
        &["create", "-f", "-", "-o", "json"],
        Some(&format!(
            "{{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":\"TokenReview\",\"spec\":{{\"token\":\"{token}\"}}}}"
        )),
    );
    let review: Value = serde_json::from_str(&review).expect("review json");
    assert_eq!(review["status"]["authenticated"], true, "{review}");
    assert_eq!(
        review["status"]["user"]["username"],
        "system:serviceaccount:shop:reader"
    );

    // The ServiceAccount admission: the pod's volume and mount, and a pod
    // of a missing ServiceAccount refused.
    admin.apply("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: shop\nspec:\n  serviceAccountName: reader\n  containers:\n  - name: c\n    image: registry.k8s.io/pause:3.10\n");
    let p = admin.json(&["-n", "shop", "get", "pod", "p", "-o", "json"]);
    let vol = p["spec"]["volumes"]
        .as_array()
        .and_then(|v| {
            v.iter().find(|v| {
                v["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("kube-api-access-"))
            })
        })
        .cloned()
        .unwrap_or_else(|| panic!("no kube-api-access volume: {p}"));
    let sources = vol["projected"]["sources"].to_string();
    assert!(
        sources.contains("serviceAccountToken") && sources.contains("kube-root-ca.crt"),
        "{sources}"
    );
    assert_eq!(
        p["spec"]["containers"][0]["volumeMounts"][0]["mountPath"],
        "/var/run/secrets/kubernetes.io/serviceaccount"
    );
    let out = admin.fails(
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: Pod\nmetadata:\n  name: q\n  namespace: shop\nspec:\n  serviceAccountName: ghost\n  containers:\n  - name: c\n    image: registry.k8s.io/pause:3.10\n"),
    );
    assert!(
        out.stderr.contains(
            "error looking up service account shop/ghost: serviceaccount \"ghost\" not found"
        ),
        "{}",
        out.stderr
    );
}
