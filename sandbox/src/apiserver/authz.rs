//! Who a token is and what RBAC lets them do, as the API server answers a
//! `TokenReview` (authentication.k8s.io/v1) and a `SubjectAccessReview`
//! (authorization.k8s.io/v1) — what a component checks its own callers
//! with (orca's HTTP API does).
//!
//! Tokens: the sandbox's own (its kubeconfig's, in group
//! `system:masters`), and the long-lived ServiceAccount tokens of Secrets
//! of type `kubernetes.io/service-account-token`, which the sandbox fills
//! in when such a Secret is created, as the token controller does.
//! Decisions: `system:masters` may do everything; anyone else what the
//! rules of the Roles and ClusterRoles bound to them (by RoleBinding in
//! the namespace, or ClusterRoleBinding) allow.

use serde_json::{Value, json};

use super::store::Store;

/// The token of the sandbox's kubeconfig.
pub const ADMIN_TOKEN: &str = "orca-sandbox-token";
pub const ADMIN_USER: &str = "orca-sandbox";

pub const SA_TOKEN_TYPE: &str = "kubernetes.io/service-account-token";
const SA_NAME: &str = "kubernetes.io/service-account.name";

/// A user as authentication found them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn unb64(s: &str) -> Option<String> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
    String::from_utf8(bytes).ok()
}

/// Fills in a new ServiceAccount token Secret: its token, namespace and
/// `ca.crt`, as the token controller would. Other Secrets are left alone.
pub fn fill_token_secret(secret: &mut Value, ns: &str) {
    if secret["type"] != SA_TOKEN_TYPE {
        return;
    }
    let Some(sa) = secret["metadata"]["annotations"][SA_NAME].as_str() else {
        return;
    };
    let token = format!("sandbox-sa.{ns}.{sa}.{}", uuid::Uuid::new_v4().simple());
    let data = secret
        .as_object_mut()
        .map(|o| o.entry("data").or_insert_with(|| json!({})));
    if let Some(Value::Object(d)) = data {
        d.insert("token".into(), json!(b64(&token)));
        d.insert("namespace".into(), json!(b64(ns)));
        d.insert("ca.crt".into(), json!(b64("")));
    }
}

/// A token the TokenRequest API issued: whose, bound to which pod, until
/// when. Kept in memory: a restarted server forgets them, and kubelets
/// ask again.
#[derive(Debug, Clone)]
pub struct BoundToken {
    pub namespace: String,
    pub service_account: String,
    pub service_account_uid: String,
    /// The pod (name, uid) the token dies with.
    pub pod: Option<(String, String)>,
    pub expires: jiff::Timestamp,
}

/// The tokens issued, by token.
pub type Tokens = std::collections::HashMap<String, BoundToken>;

fn service_account_user(ns: &str, sa: &str) -> User {
    User {
        name: format!("system:serviceaccount:{ns}:{sa}"),
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{ns}"),
            "system:authenticated".into(),
        ],
    }
}

/// The sandbox's own user, its kubeconfig's.
pub fn admin() -> User {
    User {
        name: ADMIN_USER.into(),
        groups: vec!["system:masters".into(), "system:authenticated".into()],
    }
}

/// Who calls with no credentials.
pub fn anonymous() -> User {
    User {
        name: "system:anonymous".into(),
        groups: vec!["system:unauthenticated".into()],
    }
}

/// Mints a token for ServiceAccount `ns/sa` (a TokenRequest):
/// `request` is its body; the answer is the TokenRequest with its status.
pub fn token_request(
    store: &Store,
    tokens: &mut Tokens,
    ns: &str,
    sa: &str,
    mut request: Value,
) -> Result<Value, super::error::ApiError> {
    let Some(account) = store.get("core/serviceaccounts", ns, sa) else {
        return Err(super::error::ApiError::not_found("", "serviceaccounts", sa));
    };
    let sa_uid = account["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let seconds = request["spec"]["expirationSeconds"]
        .as_i64()
        .unwrap_or(3600);
    if seconds < 600 {
        return Err(super::error::ApiError::invalid(
            "authentication.k8s.io",
            "TokenRequest",
            sa,
            &[super::error::FieldError::invalid(
                "spec.expirationSeconds",
                json!(seconds),
                "may not specify a duration less than 10 minutes",
            )],
        ));
    }
    let bound = &request["spec"]["boundObjectRef"];
    let pod = match bound["kind"].as_str() {
        Some("Pod") => {
            let name = bound["name"].as_str().unwrap_or_default();
            let Some(p) = store.get("core/pods", ns, name) else {
                return Err(super::error::ApiError::not_found("", "pods", name));
            };
            Some((
                name.to_string(),
                p["metadata"]["uid"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ))
        }
        _ => None,
    };
    // expired tokens are forgotten as new ones are made
    let now = jiff::Timestamp::now();
    tokens.retain(|_, t| t.expires > now);
    let expires = now
        .checked_add(jiff::SignedDuration::from_secs(seconds))
        .unwrap_or(now);
    let token = format!("sandbox-sa-v1.{}", uuid::Uuid::new_v4().simple());
    tokens.insert(
        token.clone(),
        BoundToken {
            namespace: ns.to_string(),
            service_account: sa.to_string(),
            service_account_uid: sa_uid,
            pod,
            expires,
        },
    );
    if request["spec"]["audiences"].is_null() {
        request["spec"]["audiences"] = json!(["https://kubernetes.default.svc.cluster.local"]);
    }
    request["spec"]["expirationSeconds"] = json!(seconds);
    request["apiVersion"] = json!("authentication.k8s.io/v1");
    request["kind"] = json!("TokenRequest");
    request["metadata"]["name"] = json!(sa);
    request["metadata"]["namespace"] = json!(ns);
    request["status"] = json!({
        "token": token,
        "expirationTimestamp": expires.round(jiff::Unit::Second).unwrap_or(expires).to_string(),
    });
    Ok(request)
}

/// Who `token` is.
pub fn authenticate(store: &Store, tokens: &Tokens, token: &str) -> Option<User> {
    if token == ADMIN_TOKEN {
        return Some(admin());
    }
    if let Some(t) = tokens.get(token) {
        if t.expires <= jiff::Timestamp::now() {
            return None;
        }
        let sa = store.get("core/serviceaccounts", &t.namespace, &t.service_account)?;
        if sa["metadata"]["uid"] != t.service_account_uid.as_str() {
            return None;
        }
        if let Some((pod, uid)) = &t.pod {
            let p = store.get("core/pods", &t.namespace, pod)?;
            if p["metadata"]["uid"] != uid.as_str() {
                return None;
            }
        }
        return Some(service_account_user(&t.namespace, &t.service_account));
    }
    store.list("core/secrets", None).into_iter().find_map(|s| {
        if s["type"] != SA_TOKEN_TYPE {
            return None;
        }
        let t = unb64(s["data"]["token"].as_str()?)?;
        if t != token {
            return None;
        }
        let ns = s["metadata"]["namespace"].as_str()?;
        let sa = s["metadata"]["annotations"][SA_NAME].as_str()?;
        Some(service_account_user(ns, sa))
    })
}

/// The answer to a TokenReview.
pub fn token_review(store: &Store, tokens: &Tokens, review: &mut Value) {
    let token = review["spec"]["token"].as_str().unwrap_or_default();
    review["status"] = match authenticate(store, tokens, token) {
        Some(u) => json!({
            "authenticated": true,
            "user": { "username": u.name, "groups": u.groups },
        }),
        None => json!({ "authenticated": false, "error": "invalid bearer token" }),
    };
}

/// What is asked of a SubjectAccessReview.
#[derive(Debug, Clone, Default)]
pub struct Attributes {
    pub namespace: String,
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
}

fn list_of(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn has(list: &[String], want: &str) -> bool {
    list.iter().any(|s| s == "*" || s == want)
}

/// Whether an RBAC rule allows `a`.
pub fn rule_allows(rule: &Value, a: &Attributes) -> bool {
    let resource = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let names = list_of(&rule["resourceNames"]);
    has(&list_of(&rule["apiGroups"]), &a.group)
        && has(&list_of(&rule["resources"]), &resource)
        && has(&list_of(&rule["verbs"]), &a.verb)
        && (names.is_empty() || (!a.name.is_empty() && names.contains(&a.name)))
}

fn bound(binding: &Value, user: &User) -> bool {
    binding["subjects"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|s| {
            let name = s["name"].as_str().unwrap_or_default();
            match s["kind"].as_str().unwrap_or_default() {
                "User" => name == user.name,
                "Group" => user.groups.iter().any(|g| g == name),
                "ServiceAccount" => {
                    let ns = s["namespace"].as_str().unwrap_or_default();
                    user.name == format!("system:serviceaccount:{ns}:{name}")
                }
                _ => false,
            }
        })
}

/// Whether `user` may do `a`, and why.
pub fn allowed(store: &Store, user: &User, a: &Attributes) -> (bool, String) {
    if user.groups.iter().any(|g| g == "system:masters") {
        return (true, "system:masters may do everything".into());
    }
    let role_rules = |kind: &str, name: &str, ns: &str| -> Vec<Value> {
        let obj = match kind {
            "ClusterRole" => store.get("rbac.authorization.k8s.io/clusterroles", "", name),
            "Role" => store.get("rbac.authorization.k8s.io/roles", ns, name),
            _ => None,
        };
        obj.and_then(|o| o["rules"].as_array().cloned())
            .unwrap_or_default()
    };
    let mut grants = Vec::new();
    for b in store.list("rbac.authorization.k8s.io/clusterrolebindings", None) {
        if bound(b, user) && b["roleRef"]["kind"] == "ClusterRole" {
            let name = b["roleRef"]["name"].as_str().unwrap_or_default();
            grants.push((
                format!(
                    "ClusterRoleBinding {}",
                    b["metadata"]["name"].as_str().unwrap_or_default()
                ),
                role_rules("ClusterRole", name, ""),
            ));
        }
    }
    if !a.namespace.is_empty() {
        for b in store.list("rbac.authorization.k8s.io/rolebindings", Some(&a.namespace)) {
            if bound(b, user) {
                let kind = b["roleRef"]["kind"].as_str().unwrap_or_default();
                let name = b["roleRef"]["name"].as_str().unwrap_or_default();
                grants.push((
                    format!(
                        "RoleBinding {}/{}",
                        a.namespace,
                        b["metadata"]["name"].as_str().unwrap_or_default()
                    ),
                    role_rules(kind, name, &a.namespace),
                ));
            }
        }
    }
    for (by, rules) in grants {
        if rules.iter().any(|r| rule_allows(r, a)) {
            return (true, format!("allowed by {by}"));
        }
    }
    (false, String::new())
}

/// Why the real server's 403 denies `a` to `user` (what follows
/// "... is forbidden: ").
pub fn forbidden_reason(user: &User, a: &Attributes) -> String {
    let resource = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let scope = if a.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace \"{}\"", a.namespace)
    };
    format!(
        "User \"{}\" cannot {} resource \"{resource}\" in API group \"{}\" {scope}",
        user.name, a.verb, a.group
    )
}

/// The answer to a SubjectAccessReview.
pub fn subject_access_review(store: &Store, review: &mut Value) {
    let spec = &review["spec"];
    let user = User {
        name: spec["user"].as_str().unwrap_or_default().to_string(),
        groups: list_of(&spec["groups"]),
    };
    let r = &spec["resourceAttributes"];
    let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
    let a = Attributes {
        namespace: s("namespace"),
        verb: s("verb"),
        group: s("group"),
        resource: s("resource"),
        subresource: s("subresource"),
        name: s("name"),
    };
    let (ok, reason) = allowed(store, &user, &a);
    review["status"] = if ok {
        json!({ "allowed": true, "reason": reason })
    } else {
        json!({ "allowed": false, "reason": format!("no RBAC rule lets {} {} {}", user.name, a.verb, a.resource) })
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_group_resource_verb_and_names() {
        let a = Attributes {
            namespace: "shop".into(),
            verb: "update".into(),
            group: "orca.dev".into(),
            resource: "mysqlclusters".into(),
            subresource: String::new(),
            name: "db".into(),
        };
        let rule = |g: &str, r: &str, v: &str, n: Value| json!({"apiGroups": [g], "resources": [r], "verbs": [v], "resourceNames": n});
        // (rule, allows)
        let table = [
            (rule("orca.dev", "mysqlclusters", "update", json!([])), true),
            (rule("*", "*", "*", json!(null)), true),
            (rule("orca.dev", "mysqlclusters", "get", json!([])), false),
            (rule("", "mysqlclusters", "update", json!([])), false),
            (rule("orca.dev", "pods", "update", json!([])), false),
            (
                rule("orca.dev", "mysqlclusters", "update", json!(["db"])),
                true,
            ),
            (
                rule("orca.dev", "mysqlclusters", "update", json!(["other"])),
                false,
            ),
        ];
        for (r, want) in table {
            assert_eq!(rule_allows(&r, &a), want, "{r}");
        }
    }
}
