//! A container's environment as the kubelet builds it: `envFrom` first,
//! then `env` (literal values with `$(VAR)` references to earlier
//! variables, `fieldRef`, `resourceFieldRef`, `configMapKeyRef`,
//! `secretKeyRef`), and Kubernetes' `$(VAR)` expansion of command and
//! arguments.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::api::Api;
use kube::{Client, ResourceExt};

/// Why a container cannot be configured (the kubelet's
/// `CreateContainerConfigError`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

/// Expands `$(VAR)` references as Kubernetes does: `$$` is a literal `$`,
/// a reference to an unknown variable is left as written.
pub fn expand(input: &str, vars: &dyn Fn(&str) -> Option<String>) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut i = 0;
    let mut start = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && i + 1 < bytes.len() {
            match bytes[i + 1] {
                b'$' => {
                    out.push_str(&input[start..i]);
                    out.push('$');
                    i += 2;
                    start = i;
                    continue;
                }
                b'(' => {
                    if let Some(close) = input[i + 2..].find(')') {
                        let name = &input[i + 2..i + 2 + close];
                        out.push_str(&input[start..i]);
                        match vars(name) {
                            Some(v) => out.push_str(&v),
                            None => out.push_str(&input[i..i + 3 + close]),
                        }
                        i += 3 + close;
                        start = i;
                        continue;
                    }
                }
                _ => {}
            }
        }
        i += 1;
    }
    out.push_str(&input[start..]);
    out
}

/// Looks up the value a `fieldRef` names.
pub fn field_value(
    pod: &Pod,
    path: &str,
    node: &str,
    pod_ip: &str,
    host_ip: &str,
) -> Option<String> {
    let bracket = |prefix: &str| -> Option<String> {
        let rest = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(rest.to_string())
    };
    if let Some(k) = bracket("metadata.labels['") {
        return Some(pod.labels().get(&k).cloned().unwrap_or_default());
    }
    if let Some(k) = bracket("metadata.annotations['") {
        return Some(pod.annotations().get(&k).cloned().unwrap_or_default());
    }
    let spec = pod.spec.as_ref();
    Some(match path {
        "metadata.name" => pod.name_any(),
        "metadata.namespace" => pod.namespace().unwrap_or_default(),
        "metadata.uid" => pod.uid().unwrap_or_default(),
        "metadata.labels" => pod
            .labels()
            .iter()
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect::<Vec<_>>()
            .join("\n"),
        "metadata.annotations" => pod
            .annotations()
            .iter()
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect::<Vec<_>>()
            .join("\n"),
        "spec.nodeName" => spec
            .and_then(|s| s.node_name.clone())
            .unwrap_or_else(|| node.to_string()),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" | "status.podIPs" => pod_ip.to_string(),
        "status.hostIP" | "status.hostIPs" => host_ip.to_string(),
        _ => return None,
    })
}

/// ConfigMaps and Secrets read while building one environment.
pub struct Lookup {
    client: Client,
    ns: String,
    configmaps: HashMap<String, Option<ConfigMap>>,
    secrets: HashMap<String, Option<Secret>>,
}

impl Lookup {
    pub fn new(client: Client, ns: &str) -> Lookup {
        Lookup {
            client,
            ns: ns.to_string(),
            configmaps: HashMap::new(),
            secrets: HashMap::new(),
        }
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    pub async fn configmap(&mut self, name: &str) -> Result<Option<&ConfigMap>, ConfigError> {
        if !self.configmaps.contains_key(name) {
            let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.ns);
            let got = api
                .get_opt(name)
                .await
                .map_err(|e| ConfigError(format!("reading configmap {name:?}: {e}")))?;
            self.configmaps.insert(name.to_string(), got);
        }
        Ok(self.configmaps.get(name).and_then(Option::as_ref))
    }

    pub async fn secret(&mut self, name: &str) -> Result<Option<&Secret>, ConfigError> {
        if !self.secrets.contains_key(name) {
            let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.ns);
            let got = api
                .get_opt(name)
                .await
                .map_err(|e| ConfigError(format!("reading secret {name:?}: {e}")))?;
            self.secrets.insert(name.to_string(), got);
        }
        Ok(self.secrets.get(name).and_then(Option::as_ref))
    }
}

/// A ConfigMap's entries (data and binaryData).
pub fn configmap_entries(cm: &ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = cm
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect();
    for (k, v) in cm.binary_data.iter().flatten() {
        out.insert(k.clone(), v.0.clone());
    }
    out
}

/// A Secret's entries (decoded data; stringData is folded in by the API
/// server).
pub fn secret_entries(s: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = s
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    for (k, v) in s.string_data.iter().flatten() {
        out.insert(k.clone(), v.clone().into_bytes());
    }
    out
}

/// Where the pod's own addresses come from.
pub struct PodFacts<'a> {
    pub pod: &'a Pod,
    pub node: &'a str,
    pub pod_ip: &'a str,
    pub host_ip: &'a str,
}

fn resource_value(c: &Container, resource: &str) -> String {
    let res = c.resources.as_ref();
    let (kind, name) = resource.split_once('.').unwrap_or(("limits", resource));
    let map = match kind {
        "requests" => res.and_then(|r| r.requests.as_ref()),
        _ => res.and_then(|r| r.limits.as_ref()),
    };
    if let Some(q) = map.and_then(|m| m.get(name)) {
        return q.0.clone();
    }
    match (kind, name) {
        // unset limits are the node's allocatable
        ("limits", "cpu") => std::thread::available_parallelism()
            .map(|n| n.get().to_string())
            .unwrap_or_else(|_| "1".into()),
        ("limits", "memory") => "17179869184".into(),
        _ => "0".into(),
    }
}

/// The container's environment, in the order the kubelet builds it.
pub async fn container_env(
    lookup: &mut Lookup,
    facts: &PodFacts<'_>,
    c: &Container,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut vars: Vec<(String, String)> = Vec::new();
    let set = |vars: &mut Vec<(String, String)>, k: String, v: String| {
        vars.retain(|(n, _)| *n != k);
        vars.push((k, v));
    };
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            let optional = r.optional.unwrap_or(false);
            match lookup.configmap(&r.name).await? {
                Some(cm) => {
                    for (k, v) in configmap_entries(cm) {
                        set(
                            &mut vars,
                            format!("{prefix}{k}"),
                            String::from_utf8_lossy(&v).into_owned(),
                        );
                    }
                }
                None if optional => {}
                None => return Err(ConfigError(format!("configmap \"{}\" not found", r.name))),
            }
        }
        if let Some(r) = &from.secret_ref {
            let optional = r.optional.unwrap_or(false);
            match lookup.secret(&r.name).await? {
                Some(s) => {
                    for (k, v) in secret_entries(s) {
                        set(
                            &mut vars,
                            format!("{prefix}{k}"),
                            String::from_utf8_lossy(&v).into_owned(),
                        );
                    }
                }
                None if optional => {}
                None => return Err(ConfigError(format!("secret \"{}\" not found", r.name))),
            }
        }
    }
    let ns = facts.pod.namespace().unwrap_or_default();
    for e in c.env.iter().flatten() {
        let value = if let Some(from) = &e.value_from {
            if let Some(f) = &from.field_ref {
                field_value(
                    facts.pod,
                    &f.field_path,
                    facts.node,
                    facts.pod_ip,
                    facts.host_ip,
                )
                .ok_or_else(|| ConfigError(format!("unsupported fieldRef {:?}", f.field_path)))?
            } else if let Some(r) = &from.resource_field_ref {
                resource_value(c, &r.resource)
            } else if let Some(r) = &from.config_map_key_ref {
                let optional = r.optional.unwrap_or(false);
                match lookup.configmap(&r.name).await? {
                    Some(cm) => match configmap_entries(cm).get(&r.key) {
                        Some(v) => String::from_utf8_lossy(v).into_owned(),
                        None if optional => continue,
                        None => {
                            return Err(ConfigError(format!(
                                "couldn't find key {} in ConfigMap {ns}/{}",
                                r.key, r.name
                            )));
                        }
                    },
                    None if optional => continue,
                    None => {
                        return Err(ConfigError(format!("configmap \"{}\" not found", r.name)));
                    }
                }
            } else if let Some(r) = &from.secret_key_ref {
                let optional = r.optional.unwrap_or(false);
                match lookup.secret(&r.name).await? {
                    Some(s) => match secret_entries(s).get(&r.key) {
                        Some(v) => String::from_utf8_lossy(v).into_owned(),
                        None if optional => continue,
                        None => {
                            return Err(ConfigError(format!(
                                "couldn't find key {} in Secret {ns}/{}",
                                r.key, r.name
                            )));
                        }
                    },
                    None if optional => continue,
                    None => return Err(ConfigError(format!("secret \"{}\" not found", r.name))),
                }
            } else {
                String::new()
            }
        } else {
            let raw = e.value.clone().unwrap_or_default();
            let snapshot = vars.clone();
            expand(&raw, &|n| {
                snapshot
                    .iter()
                    .rev()
                    .find(|(k, _)| k == n)
                    .map(|(_, v)| v.clone())
            })
        };
        set(&mut vars, e.name.clone(), value);
    }
    Ok(vars)
}

/// Expands `$(VAR)` in each of `items` from `env`.
pub fn expand_all(items: &[String], env: &[(String, String)]) -> Vec<String> {
    items
        .iter()
        .map(|s| {
            expand(s, &|n| {
                env.iter()
                    .rev()
                    .find(|(k, _)| k == n)
                    .map(|(_, v)| v.clone())
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(n: &str) -> Option<String> {
        match n {
            "POD_INDEX" => Some("2".into()),
            "A" => Some("x".into()),
            _ => None,
        }
    }

    #[test]
    fn expansion_follows_kubernetes() {
        assert_eq!(expand("--server-id=1$(POD_INDEX)", &vars), "--server-id=12");
        assert_eq!(expand("$(A)$(A)", &vars), "xx");
        assert_eq!(expand("$$(A)", &vars), "$(A)");
        assert_eq!(expand("$(NOPE)", &vars), "$(NOPE)");
        assert_eq!(expand("$(A", &vars), "$(A");
        assert_eq!(expand("a$b", &vars), "a$b");
        assert_eq!(expand("end$", &vars), "end$");
        assert_eq!(expand("$$", &vars), "$");
    }

    #[test]
    fn field_paths() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "db-1", "namespace": "ns", "uid": "u",
                         "labels": {"apps.kubernetes.io/pod-index": "1"},
                         "annotations": {"a": "b"}},
            "spec": {"containers": [], "nodeName": "n"}
        }))
        .unwrap();
        let f = |p: &str| field_value(&pod, p, "n", "127.20.0.1", "127.0.0.1");
        assert_eq!(f("metadata.name").as_deref(), Some("db-1"));
        assert_eq!(
            f("metadata.labels['apps.kubernetes.io/pod-index']").as_deref(),
            Some("1")
        );
        assert_eq!(f("metadata.annotations['a']").as_deref(), Some("b"));
        assert_eq!(f("status.podIP").as_deref(), Some("127.20.0.1"));
        assert_eq!(f("status.hostIP").as_deref(), Some("127.0.0.1"));
        assert_eq!(f("spec.nodeName").as_deref(), Some("n"));
        assert_eq!(f("metadata.uid").as_deref(), Some("u"));
        assert_eq!(f("bogus"), None);
    }
}
