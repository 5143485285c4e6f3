//! The controllers that live beside a real API server and that clients
//! rely on: the garbage collector (owner references, background /
//! foreground / orphan propagation), the namespace lifecycle, CRD
//! cleanup, and the endpoints controller. They run after every write,
//! inside the same lock, until nothing changes.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Value, json};

use super::ops::{
    CRD_CLEANUP, ROOT_CA_CONFIGMAP, STORAGE_CONFIGMAPS, STORAGE_CRDS, STORAGE_ENDPOINTS,
    STORAGE_NAMESPACES, STORAGE_PDBS, STORAGE_PODS, STORAGE_SERVICES, State, finalizers,
    is_deleting, meta_str,
};
use super::selector::LabelSelector;
use super::time;

impl State {
    /// Runs the controllers until the store stops changing.
    pub fn settle(&mut self) {
        for _ in 0..64 {
            if self.settled_at == self.store.generation && self.deleted_services.is_empty() {
                return;
            }
            self.settled_at = self.store.generation;
            self.gc_pass();
            self.namespace_pass();
            self.root_ca_pass();
            self.crd_pass();
            self.endpoints_pass();
            self.disruption_pass();
        }
    }

    /// The disruption controller's part: each PodDisruptionBudget's status
    /// from the pods its selector picks (expected, healthy = Ready, the
    /// healthy count it needs, and the disruptions it allows now). Pods it
    /// allowed to be evicted a moment ago (`disruptedPods`) count as gone
    /// until they are.
    fn disruption_pass(&mut self) {
        let pdbs: Vec<Value> = self
            .store
            .list(STORAGE_PDBS, None)
            .into_iter()
            .cloned()
            .collect();
        for pdb in pdbs {
            let ns = meta_str(&pdb, "namespace").to_string();
            let Some(selector) = pdb
                .pointer("/spec/selector")
                .and_then(|s| LabelSelector::from_object(s).ok())
            else {
                continue;
            };
            let pods: Vec<&Value> = self
                .store
                .list(STORAGE_PODS, Some(&ns))
                .into_iter()
                .filter(|p| !selector.is_empty() && selector.matches(p))
                .collect();
            let disrupted = pdb
                .pointer("/status/disruptedPods")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let expected = pods.len() as i64;
            let healthy = pods
                .iter()
                .filter(|p| !is_deleting(p) && !disrupted.contains_key(meta_str(p, "name")))
                .filter(|p| {
                    p.pointer("/status/conditions")
                        .and_then(Value::as_array)
                        .is_some_and(|cs| {
                            cs.iter()
                                .any(|c| c["type"] == "Ready" && c["status"] == "True")
                        })
                })
                .count() as i64;
            let int_or_percent = |v: Option<&Value>| -> Option<i64> {
                match v? {
                    Value::Number(n) => n.as_i64(),
                    Value::String(s) => s
                        .strip_suffix('%')
                        .and_then(|p| p.parse::<i64>().ok())
                        .map(|p| (p * expected + 99) / 100),
                    _ => None,
                }
            };
            let desired = match (
                int_or_percent(pdb.pointer("/spec/minAvailable")),
                int_or_percent(pdb.pointer("/spec/maxUnavailable")),
            ) {
                (Some(min), _) => min,
                (None, Some(max)) => (expected - max).max(0),
                (None, None) => expected,
            };
            // Pods named in disruptedPods that are gone are no longer
            // pending evictions.
            let still: serde_json::Map<String, Value> = disrupted
                .into_iter()
                .filter(|(name, _)| {
                    pods.iter()
                        .any(|p| meta_str(p, "name") == name && !is_deleting(p))
                })
                .collect();
            let mut upd = pdb.clone();
            upd["status"]["expectedPods"] = json!(expected);
            upd["status"]["currentHealthy"] = json!(healthy);
            upd["status"]["desiredHealthy"] = json!(desired);
            upd["status"]["disruptionsAllowed"] = json!((healthy - desired).max(0));
            upd["status"]["disruptedPods"] = Value::Object(still);
            upd["status"]["observedGeneration"] = pdb
                .pointer("/metadata/generation")
                .cloned()
                .unwrap_or(json!(1));
            if upd.get("status") != pdb.get("status") {
                self.update_internal(STORAGE_PDBS, upd);
            }
        }
    }

    fn gc_pass(&mut self) {
        // uid -> (deleting, finalizers)
        let mut owners: HashMap<String, (bool, Vec<String>)> = HashMap::new();
        let mut dependents: HashMap<String, usize> = HashMap::new();
        let mut objs: Vec<(String, Value)> = Vec::new();
        for (storage, obj) in self.store.all() {
            let uid = meta_str(obj, "uid").to_string();
            owners.insert(uid, (is_deleting(obj), finalizers(obj)));
            if obj
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
            {
                objs.push((storage.clone(), obj.clone()));
            }
        }
        let mut deletes: Vec<(String, String, String, Option<&'static str>)> = Vec::new();
        let mut updates: Vec<(String, Value)> = Vec::new();
        for (storage, obj) in &objs {
            let refs: Vec<Value> = obj
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let ns = meta_str(obj, "namespace").to_string();
            let name = meta_str(obj, "name").to_string();
            let mut keep: Vec<Value> = Vec::new();
            let mut live = 0;
            let mut foreground = false;
            for r in &refs {
                let uid = r["uid"].as_str().unwrap_or_default();
                match owners.get(uid) {
                    None => {}
                    Some((deleting, fins)) => {
                        live += 1;
                        *dependents.entry(uid.to_string()).or_default() += 1;
                        if *deleting && fins.iter().any(|f| f == "orphan") {
                            // orphaned: the reference goes
                            continue;
                        }
                        if *deleting && fins.iter().any(|f| f == "foregroundDeletion") {
                            foreground = true;
                        }
                        keep.push(r.clone());
                    }
                }
            }
            if live == 0 {
                if !is_deleting(obj) {
                    deletes.push((storage.clone(), ns, name, None));
                }
                continue;
            }
            if foreground && !is_deleting(obj) {
                deletes.push((
                    storage.clone(),
                    ns.clone(),
                    name.clone(),
                    Some("Foreground"),
                ));
            }
            if keep.len() != refs.len() {
                let mut o = obj.clone();
                if keep.is_empty() {
                    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
                        m.remove("ownerReferences");
                    }
                } else {
                    o["metadata"]["ownerReferences"] = Value::Array(keep);
                }
                updates.push((storage.clone(), o));
            }
        }
        for (storage, o) in updates {
            self.update_internal(&storage, o);
        }
        for (storage, ns, name, prop) in deletes {
            self.delete_internal(&storage, &ns, &name, prop);
        }
        // owners waiting on their dependents
        let waiting: Vec<(String, Value)> = self
            .store
            .all()
            .filter(|(_, o)| {
                is_deleting(o)
                    && finalizers(o)
                        .iter()
                        .any(|f| f == "orphan" || f == "foregroundDeletion")
            })
            .map(|(s, o)| (s.clone(), o.clone()))
            .collect();
        for (storage, mut o) in waiting {
            let uid = meta_str(&o, "uid").to_string();
            let still = self.store.all().any(|(_, d)| {
                d.pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .is_some_and(|refs| refs.iter().any(|r| r["uid"] == json!(uid)))
            });
            let mut fins = finalizers(&o);
            let before = fins.len();
            if !still {
                fins.retain(|f| f != "orphan" && f != "foregroundDeletion");
            }
            if fins.len() != before {
                if fins.is_empty() {
                    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
                        m.remove("finalizers");
                    }
                } else {
                    o["metadata"]["finalizers"] = json!(fins);
                }
                self.update_internal(&storage, o);
            }
        }
    }

    fn namespace_pass(&mut self) {
        let terminating: Vec<Value> = self
            .store
            .list(STORAGE_NAMESPACES, None)
            .into_iter()
            .filter(|n| is_deleting(n))
            .cloned()
            .collect();
        if terminating.is_empty() {
            return;
        }
        let storages = self.registry.namespaced_storages();
        for ns in terminating {
            let name = meta_str(&ns, "name").to_string();
            let mut left = 0;
            let mut to_delete: Vec<(String, String)> = Vec::new();
            for storage in &storages {
                for o in self.store.list(storage, Some(&name)) {
                    left += 1;
                    if !is_deleting(o) {
                        to_delete.push((storage.clone(), meta_str(o, "name").to_string()));
                    }
                }
            }
            // objects of unregistered storages (a CRD already gone) count too
            for (storage, o) in self.store.all() {
                if meta_str(o, "namespace") == name && !storages.contains(storage) {
                    left += 1;
                }
            }
            for (storage, obj_name) in to_delete {
                self.delete_internal(&storage, &name, &obj_name, None);
            }
            if left == 0 {
                let mut n = ns.clone();
                if let Some(spec) = n.get_mut("spec").and_then(Value::as_object_mut) {
                    spec.remove("finalizers");
                }
                if finalizers(&n).is_empty() {
                    self.store.remove(STORAGE_NAMESPACES, "", &name);
                } else {
                    self.update_internal(STORAGE_NAMESPACES, n);
                }
            }
        }
    }

    /// The root CA publisher's part: a `kube-root-ca.crt` ConfigMap with
    /// the server's CA in each namespace that is not being deleted, put
    /// back when deleted or changed.
    fn root_ca_pass(&mut self) {
        let Some(ca) = self.root_ca.clone() else {
            return;
        };
        let namespaces: Vec<String> = self
            .store
            .list(STORAGE_NAMESPACES, None)
            .into_iter()
            .filter(|n| !is_deleting(n))
            .map(|n| meta_str(n, "name").to_string())
            .collect();
        for ns in namespaces {
            match self.store.get(STORAGE_CONFIGMAPS, &ns, ROOT_CA_CONFIGMAP).cloned() {
                Some(cm) if cm["data"]["ca.crt"] == ca.as_str() => {}
                Some(mut cm) => {
                    cm["data"] = json!({"ca.crt": ca});
                    self.update_internal(STORAGE_CONFIGMAPS, cm);
                }
                None => self.create_internal(
                    STORAGE_CONFIGMAPS,
                    json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": ROOT_CA_CONFIGMAP, "namespace": ns,
                            "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
                        "data": {"ca.crt": ca}}),
                ),
            }
        }
    }

    fn crd_pass(&mut self) {
        let deleting: Vec<Value> = self
            .store
            .list(STORAGE_CRDS, None)
            .into_iter()
            .filter(|c| is_deleting(c))
            .cloned()
            .collect();
        for crd in deleting {
            let group = crd
                .pointer("/spec/group")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let plural = crd
                .pointer("/spec/names/plural")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let storage = format!("{group}/{plural}");
            let instances: Vec<(String, String, bool)> = self
                .store
                .list(&storage, None)
                .into_iter()
                .map(|o| {
                    (
                        meta_str(o, "namespace").to_string(),
                        meta_str(o, "name").to_string(),
                        is_deleting(o),
                    )
                })
                .collect();
            let mut c = crd.clone();
            let conds = c
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if !conds.iter().any(|x| x["type"] == json!("Terminating")) {
                let mut conds = conds;
                conds.push(json!({"type": "Terminating", "status": "True",
                    "lastTransitionTime": time::now_string(), "reason": "InstanceDeletionInProgress",
                    "message": "CustomResource deletion is in progress"}));
                c["status"]["conditions"] = Value::Array(conds);
            }
            if instances.is_empty() {
                let fins: Vec<String> = finalizers(&c)
                    .into_iter()
                    .filter(|f| f != CRD_CLEANUP)
                    .collect();
                if fins.is_empty() {
                    if let Some(m) = c.get_mut("metadata").and_then(Value::as_object_mut) {
                        m.remove("finalizers");
                    }
                } else {
                    c["metadata"]["finalizers"] = json!(fins);
                }
            } else {
                for (ns, name, deleting) in instances {
                    if !deleting {
                        self.delete_internal(&storage, &ns, &name, None);
                    }
                }
            }
            let name = meta_str(&c, "name").to_string();
            if finalizers(&c).is_empty() {
                // drop_object unregisters the types
                self.store.remove(STORAGE_CRDS, "", &name);
                self.registry.set_crd(&name, Vec::new());
            } else {
                self.update_internal(STORAGE_CRDS, c);
            }
        }
    }

    fn endpoints_pass(&mut self) {
        for (ns, name) in std::mem::take(&mut self.deleted_services) {
            if self.store.get(STORAGE_SERVICES, &ns, &name).is_none()
                && self.store.get(STORAGE_ENDPOINTS, &ns, &name).is_some()
            {
                self.store.remove(STORAGE_ENDPOINTS, &ns, &name);
            }
        }
        let services: Vec<Value> = self
            .store
            .list(STORAGE_SERVICES, None)
            .into_iter()
            .filter(|s| {
                s.pointer("/spec/selector")
                    .and_then(Value::as_object)
                    .is_some_and(|m| !m.is_empty())
            })
            .cloned()
            .collect();
        for svc in services {
            let ns = meta_str(&svc, "namespace").to_string();
            let name = meta_str(&svc, "name").to_string();
            let desired = self.desired_endpoints(&svc);
            match self.store.get(STORAGE_ENDPOINTS, &ns, &name).cloned() {
                None => {
                    self.create_internal(STORAGE_ENDPOINTS, desired);
                }
                Some(cur) => {
                    if cur.get("subsets") != desired.get("subsets")
                        || cur.pointer("/metadata/labels") != desired.pointer("/metadata/labels")
                    {
                        let mut upd = cur.clone();
                        match desired.get("subsets") {
                            Some(s) => upd["subsets"] = s.clone(),
                            None => {
                                if let Some(m) = upd.as_object_mut() {
                                    m.remove("subsets");
                                }
                            }
                        }
                        match desired.pointer("/metadata/labels") {
                            Some(l) => upd["metadata"]["labels"] = l.clone(),
                            None => {
                                if let Some(m) =
                                    upd.get_mut("metadata").and_then(Value::as_object_mut)
                                {
                                    m.remove("labels");
                                }
                            }
                        }
                        self.update_internal(STORAGE_ENDPOINTS, upd);
                    }
                }
            }
        }
    }

    /// The Endpoints the endpoints controller derives from a Service and
    /// the pods its selector picks.
    fn desired_endpoints(&self, svc: &Value) -> Value {
        let ns = meta_str(svc, "namespace");
        let name = meta_str(svc, "name");
        let selector = svc
            .pointer("/spec/selector")
            .and_then(Value::as_object)
            .map(LabelSelector::from_map)
            .unwrap_or_default();
        let publish_not_ready = svc.pointer("/spec/publishNotReadyAddresses") == Some(&json!(true));
        let ports = svc
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        // port set (as JSON) -> (ready, not ready)
        let mut subsets: BTreeMap<String, Subset> = BTreeMap::new();
        for pod in self.store.list(STORAGE_PODS, Some(ns)) {
            if !selector.matches(pod) || is_deleting(pod) {
                continue;
            }
            let ip = pod
                .pointer("/status/podIP")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let phase = pod
                .pointer("/status/phase")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if ip.is_empty() || phase == "Succeeded" || phase == "Failed" {
                continue;
            }
            let ready = publish_not_ready
                || pod
                    .pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c["type"] == json!("Ready") && c["status"] == json!("True"))
                    });
            let mut eports: Vec<Value> = Vec::new();
            for p in &ports {
                let target = p.get("targetPort").or(p.get("port"));
                let port = match target {
                    Some(Value::Number(n)) => n.as_i64(),
                    Some(Value::String(named)) => named_port(pod, named),
                    _ => None,
                };
                let Some(port) = port else {
                    continue;
                };
                let mut e =
                    json!({"port": port, "protocol": p["protocol"].as_str().unwrap_or("TCP")});
                if let Some(n) = p["name"].as_str().filter(|n| !n.is_empty()) {
                    e["name"] = json!(n);
                }
                eports.push(e);
            }
            let mut addr = json!({
                "ip": ip,
                "targetRef": {"kind": "Pod", "namespace": ns, "name": meta_str(pod, "name"),
                              "uid": meta_str(pod, "uid")},
            });
            if let Some(node) = pod
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
            {
                addr["nodeName"] = json!(node);
            }
            let hostname = pod
                .pointer("/spec/hostname")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let subdomain = pod
                .pointer("/spec/subdomain")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !hostname.is_empty() && subdomain == name {
                addr["hostname"] = json!(hostname);
            }
            let key = serde_json::to_string(&eports).unwrap_or_default();
            let entry = subsets.entry(key).or_insert_with(|| Subset {
                ready: Vec::new(),
                not_ready: Vec::new(),
                ports: eports.clone(),
            });
            if ready {
                entry.ready.push(addr);
            } else {
                entry.not_ready.push(addr);
            }
        }
        let mut labels: serde_json::Map<String, Value> = svc
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if svc.pointer("/spec/clusterIP") == Some(&json!("None")) {
            labels.insert("service.kubernetes.io/headless".into(), json!(""));
        }
        let mut ep = json!({
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": name, "namespace": ns},
        });
        if !labels.is_empty() {
            ep["metadata"]["labels"] = Value::Object(labels);
        }
        let mut out: Vec<Value> = Vec::new();
        for (_, sub) in subsets {
            let Subset {
                mut ready,
                mut not_ready,
                ports,
            } = sub;
            let by_ip = |a: &Value, b: &Value| {
                a["ip"]
                    .as_str()
                    .unwrap_or_default()
                    .cmp(b["ip"].as_str().unwrap_or_default())
            };
            ready.sort_by(by_ip);
            not_ready.sort_by(by_ip);
            let mut s = json!({});
            if !ready.is_empty() {
                s["addresses"] = Value::Array(ready);
            }
            if !not_ready.is_empty() {
                s["notReadyAddresses"] = Value::Array(not_ready);
            }
            if !ports.is_empty() {
                s["ports"] = Value::Array(ports);
            }
            out.push(s);
        }
        if !out.is_empty() {
            ep["subsets"] = Value::Array(out);
        }
        ep
    }
}

/// The addresses of one port set.
struct Subset {
    ready: Vec<Value>,
    not_ready: Vec<Value>,
    ports: Vec<Value>,
}

fn named_port(pod: &Value, named: &str) -> Option<i64> {
    let mut seen = HashSet::new();
    for c in pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for p in c
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if p["name"].as_str() == Some(named) && seen.insert(named) {
                return p["containerPort"].as_i64();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::ops::tests::{opts, rt};
    use super::super::ops::{DeleteOpts, Deleted};
    use super::super::patch::PatchType;
    use super::*;

    fn state() -> State {
        let mut s = State::new(1000);
        for ns in ["default", "other"] {
            s.create_internal(STORAGE_NAMESPACES, json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": ns}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}));
            // as the namespace's creation through the API makes it
            s.ensure_default_service_account(ns);
        }
        s
    }

    #[test]
    fn dependents_follow_their_owner() {
        let mut s = state();
        let cm = rt(&s, "", "configmaps");
        let owner = s
            .create(
                &cm,
                "default",
                json!({"metadata": {"name": "owner"}}),
                &opts(),
            )
            .unwrap()
            .object;
        let oref = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
                           "uid": owner["metadata"]["uid"], "controller": true}]);
        s.create(
            &cm,
            "default",
            json!({"metadata": {"name": "dep", "ownerReferences": oref}}),
            &opts(),
        )
        .unwrap();
        s.create(
            &cm,
            "default",
            json!({"metadata": {"name": "dep2", "ownerReferences": oref, "finalizers": ["hold"]}}),
            &opts(),
        )
        .unwrap();
        s.settle();
        assert!(s.get(&cm, "default", "dep").is_ok());
        s.delete(&cm, "default", "owner", &DeleteOpts::default())
            .unwrap();
        s.settle();
        assert!(s.get(&cm, "default", "dep").is_err());
        let held = s.get(&cm, "default", "dep2").unwrap();
        assert!(is_deleting(&held));
    }

    #[test]
    fn orphan_and_foreground() {
        let mut s = state();
        let cm = rt(&s, "", "configmaps");
        let owner = s
            .create(&cm, "default", json!({"metadata": {"name": "o"}}), &opts())
            .unwrap()
            .object;
        let oref = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": owner["metadata"]["uid"]}]);
        s.create(
            &cm,
            "default",
            json!({"metadata": {"name": "d", "ownerReferences": oref}}),
            &opts(),
        )
        .unwrap();
        let d = DeleteOpts {
            propagation: Some("Orphan".into()),
            ..DeleteOpts::default()
        };
        assert!(matches!(
            s.delete(&cm, "default", "o", &d).unwrap(),
            Deleted::Pending(_)
        ));
        s.settle();
        assert!(s.get(&cm, "default", "o").is_err());
        let dep = s.get(&cm, "default", "d").unwrap();
        assert!(dep.pointer("/metadata/ownerReferences").is_none());

        let owner = s
            .create(&cm, "default", json!({"metadata": {"name": "f"}}), &opts())
            .unwrap()
            .object;
        let oref = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "f", "uid": owner["metadata"]["uid"]}]);
        s.create(
            &cm,
            "default",
            json!({"metadata": {"name": "fd", "ownerReferences": oref, "finalizers": ["hold"]}}),
            &opts(),
        )
        .unwrap();
        let d = DeleteOpts {
            propagation: Some("Foreground".into()),
            ..DeleteOpts::default()
        };
        s.delete(&cm, "default", "f", &d).unwrap();
        s.settle();
        assert!(
            s.get(&cm, "default", "f").is_ok(),
            "owner waits for its dependent"
        );
        s.patch(
            &cm,
            "default",
            "fd",
            "",
            PatchType::Merge,
            json!({"metadata": {"finalizers": null}}),
            &opts(),
        )
        .unwrap();
        s.settle();
        assert!(s.get(&cm, "default", "fd").is_err());
        assert!(s.get(&cm, "default", "f").is_err());
    }

    #[test]
    fn namespace_deletion_empties_it() {
        let mut s = state();
        let cm = rt(&s, "", "configmaps");
        let ns = rt(&s, "", "namespaces");
        s.create(&cm, "other", json!({"metadata": {"name": "a"}}), &opts())
            .unwrap();
        s.create(
            &cm,
            "other",
            json!({"metadata": {"name": "b", "finalizers": ["hold"]}}),
            &opts(),
        )
        .unwrap();
        s.delete(&ns, "", "other", &DeleteOpts::default()).unwrap();
        s.settle();
        let n = s.get(&ns, "", "other").unwrap();
        assert_eq!(n["status"]["phase"], "Terminating");
        let e = s
            .create(&cm, "other", json!({"metadata": {"name": "c"}}), &opts())
            .unwrap_err();
        assert_eq!(e.code, 403);
        assert!(s.get(&cm, "other", "a").is_err());
        s.patch(
            &cm,
            "other",
            "b",
            "",
            PatchType::Merge,
            json!({"metadata": {"finalizers": null}}),
            &opts(),
        )
        .unwrap();
        s.settle();
        assert!(s.get(&ns, "", "other").is_err());
        assert_eq!(
            s.delete(&ns, "", "default", &DeleteOpts::default())
                .unwrap_err()
                .code,
            403
        );
    }

    #[test]
    fn endpoints_follow_ready_pods() {
        let mut s = state();
        let svc = rt(&s, "", "services");
        let pod = rt(&s, "", "pods");
        s.create(&svc, "default", json!({"metadata": {"name": "db"},
            "spec": {"selector": {"app": "db"}, "ports": [{"name": "mysql", "port": 3306, "targetPort": "mysql"}]}}), &opts()).unwrap();
        s.settle();
        let ep = rt(&s, "", "endpoints");
        assert!(
            s.get(&ep, "default", "db")
                .unwrap()
                .get("subsets")
                .is_none()
        );
        for (n, ready) in [("db-0", "True"), ("db-1", "False")] {
            s.create(&pod, "default", json!({"metadata": {"name": n, "labels": {"app": "db"}},
                "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"name": "mysql", "containerPort": 3306}]}]}}), &opts()).unwrap();
            s.patch(
                &pod,
                "default",
                n,
                "status",
                PatchType::Merge,
                json!({"status": {"phase": "Running",
                "podIP": format!("127.0.0.{}", if n == "db-0" { 2 } else { 3 }),
                "conditions": [{"type": "Ready", "status": ready}]}}),
                &opts(),
            )
            .unwrap();
        }
        s.settle();
        let e = s.get(&ep, "default", "db").unwrap();
        assert_eq!(e["subsets"][0]["addresses"][0]["ip"], "127.0.0.2");
        assert_eq!(e["subsets"][0]["notReadyAddresses"][0]["ip"], "127.0.0.3");
        assert_eq!(
            e["subsets"][0]["ports"],
            json!([{"name": "mysql", "port": 3306, "protocol": "TCP"}])
        );
        s.delete(&svc, "default", "db", &DeleteOpts::default())
            .unwrap();
        s.settle();
        assert!(s.get(&ep, "default", "db").is_err());
    }
}
