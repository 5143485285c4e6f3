//! `meta.k8s.io/v1` Tables, as the real server builds them for
//! `kubectl get`: the default columns of each built-in kind (priority 1
//! columns are the ones `-o wide` adds), and for custom resources their
//! `additionalPrinterColumns` (or Name and Age).

use serde_json::{Value, json};

use super::jsonpath::{JsonPath, text};
use super::selector::LabelSelector;
use super::time;
use super::types::ResourceType;

fn col(name: &str, ty: &str, priority: i64, description: &str) -> Value {
    json!({"name": name, "type": ty, "format": "", "description": description, "priority": priority})
}

fn name_col() -> Value {
    json!({"name": "Name", "type": "string", "format": "name",
           "description": "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
           "priority": 0})
}

/// The wide columns of the kinds with a pod template.
fn containers_col() -> Value {
    col(
        "Containers",
        "string",
        1,
        "Names of each container in the template.",
    )
}

fn images_col() -> Value {
    col(
        "Images",
        "string",
        1,
        "Images referenced by each container in the template.",
    )
}

fn age_col() -> Value {
    col(
        "Age",
        "string",
        0,
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    )
}

/// The column definitions of a type.
pub fn columns(rt: &ResourceType) -> Vec<Value> {
    if let Some(crd) = &rt.crd {
        let mut cols = vec![name_col()];
        if crd.columns.is_empty() {
            cols.push(json!({"name": "Age", "type": "date", "format": "",
                "description": "CreationTimestamp is a timestamp representing the server time when this object was created.",
                "priority": 0}));
        } else {
            for c in &crd.columns {
                cols.push(json!({"name": c.name, "type": c.ty, "format": c.format,
                                 "description": c.description, "priority": c.priority}));
            }
        }
        return cols;
    }
    let mut cols = vec![name_col()];
    let more: Vec<Value> = match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "pods") => vec![
            col(
                "Ready",
                "string",
                0,
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            col(
                "Status",
                "string",
                0,
                "The aggregate status of the containers in this pod.",
            ),
            col(
                "Restarts",
                "string",
                0,
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
            ),
            age_col(),
            col(
                "IP",
                "string",
                1,
                "IP address allocated to the pod. Routable at least within the cluster.",
            ),
            col(
                "Node",
                "string",
                1,
                "NodeName indicates in which node this pod is scheduled.",
            ),
            col(
                "Nominated Node",
                "string",
                1,
                "nominatedNodeName is set only when this pod preempts other pods on the node.",
            ),
            col(
                "Readiness Gates",
                "string",
                1,
                "If specified, all readiness gates will be evaluated for pod readiness.",
            ),
        ],
        ("apps", "controllerrevisions") => vec![
            col(
                "Controller",
                "string",
                0,
                "The controller that owns this revision.",
            ),
            col("Revision", "integer", 0, "The revision number."),
            age_col(),
        ],
        ("apps", "deployments") => vec![
            col("Ready", "string", 0, "Number of the pod with ready state"),
            col(
                "Up-to-date",
                "string",
                0,
                "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
            ),
            col(
                "Available",
                "string",
                0,
                "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
            ),
            age_col(),
            containers_col(),
            images_col(),
            col(
                "Selector",
                "string",
                1,
                "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.",
            ),
        ],
        ("apps", "replicasets") => vec![
            col(
                "Desired",
                "integer",
                0,
                "Replicas is the number of desired pods.",
            ),
            col(
                "Current",
                "integer",
                0,
                "Replicas is the most recently observed number of replicas.",
            ),
            col(
                "Ready",
                "integer",
                0,
                "The number of ready replicas for this replica set.",
            ),
            age_col(),
            containers_col(),
            images_col(),
            col(
                "Selector",
                "string",
                1,
                "Selector is a label query over pods that should match the replica count.",
            ),
        ],
        ("apps", "statefulsets") => vec![
            col("Ready", "string", 0, "Number of the pod with ready state"),
            age_col(),
            containers_col(),
            images_col(),
        ],
        ("", "services") => vec![
            col(
                "Type",
                "string",
                0,
                "type determines how the Service is exposed.",
            ),
            col(
                "Cluster-IP",
                "string",
                0,
                "clusterIP is the IP address of the service.",
            ),
            col(
                "External-IP",
                "string",
                0,
                "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.",
            ),
            col(
                "Port(s)",
                "string",
                0,
                "The list of ports that are exposed by this service.",
            ),
            age_col(),
            col(
                "Selector",
                "string",
                1,
                "Route service traffic to pods with label keys and values matching this selector.",
            ),
        ],
        ("", "endpoints") => vec![
            col(
                "Endpoints",
                "string",
                0,
                "Endpoints is the list of endpoints in this subset.",
            ),
            age_col(),
        ],
        ("", "configmaps") => vec![
            col(
                "Data",
                "integer",
                0,
                "Data contains the configuration data.",
            ),
            age_col(),
        ],
        ("", "secrets") => vec![
            col(
                "Type",
                "string",
                0,
                "Used to facilitate programmatic handling of secret data.",
            ),
            col("Data", "integer", 0, "Data contains the secret data."),
            age_col(),
        ],
        ("", "namespaces") => vec![
            col("Status", "string", 0, "The status of the namespace"),
            age_col(),
        ],
        ("", "serviceaccounts") => vec![age_col()],
        ("", "nodes") => vec![
            col("Status", "string", 0, "The status of the node"),
            col("Roles", "string", 0, "The roles of the node"),
            age_col(),
            col(
                "Version",
                "string",
                0,
                "Kubelet Version reported by the node.",
            ),
            col(
                "Internal-IP",
                "string",
                1,
                "List of addresses reachable to the node.",
            ),
            col(
                "External-IP",
                "string",
                1,
                "List of addresses reachable to the node.",
            ),
            col(
                "OS-Image",
                "string",
                1,
                "OS Image reported by the node from /etc/os-release.",
            ),
            col(
                "Kernel-Version",
                "string",
                1,
                "Kernel Version reported by the node.",
            ),
            col(
                "Container-Runtime",
                "string",
                1,
                "ContainerRuntime Version reported by the node.",
            ),
        ],
        ("", "persistentvolumeclaims") => vec![
            col(
                "Status",
                "string",
                0,
                "phase represents the current phase of PersistentVolumeClaim.",
            ),
            col(
                "Volume",
                "string",
                0,
                "volumeName is the binding reference to the PersistentVolume backing this claim.",
            ),
            col(
                "Capacity",
                "string",
                0,
                "capacity represents the actual resources of the underlying volume.",
            ),
            col(
                "Access Modes",
                "string",
                0,
                "accessModes contains the desired access modes the volume should have.",
            ),
            col(
                "StorageClass",
                "string",
                0,
                "storageClassName is the name of the StorageClass required by the claim.",
            ),
            col(
                "VolumeAttributesClass",
                "string",
                0,
                "volumeAttributesClassName may be used to set the VolumeAttributesClass used by this claim.",
            ),
            age_col(),
            col(
                "VolumeMode",
                "string",
                1,
                "volumeMode defines what type of volume is required by the claim.",
            ),
        ],
        ("", "events") | ("events.k8s.io", "events") => {
            return vec![
                col(
                    "Last Seen",
                    "string",
                    0,
                    "The time at which the most recent occurrence of this event was recorded.",
                ),
                col(
                    "Type",
                    "string",
                    0,
                    "Type of this event (Normal, Warning), new types could be added in the future",
                ),
                col(
                    "Reason",
                    "string",
                    0,
                    "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
                ),
                col(
                    "Object",
                    "string",
                    0,
                    "The object that this event is about.",
                ),
                col(
                    "Subobject",
                    "string",
                    1,
                    "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go-field access statement, such as desiredState.manifest.containers[2].",
                ),
                col(
                    "Source",
                    "string",
                    1,
                    "The component reporting this event. Should be a short machine understandable string.",
                ),
                col(
                    "Message",
                    "string",
                    0,
                    "A human-readable description of the status of this operation.",
                ),
                col(
                    "First Seen",
                    "string",
                    1,
                    "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
                ),
                col(
                    "Count",
                    "string",
                    1,
                    "The number of times this event has occurred.",
                ),
                name_col_p1(),
            ];
        }
        ("coordination.k8s.io", "leases") => vec![
            col("Holder", "string", 0, "The holder of the lease"),
            age_col(),
        ],
        ("networking.k8s.io", "networkpolicies") => vec![
            col(
                "Pod-Selector",
                "string",
                0,
                "podSelector selects the pods to which this NetworkPolicy object applies. The array of ingress rules is applied to any pods selected by this field. Multiple network policies can select the same set of pods. In this case, the ingress rules for each are combined additively. This field is NOT optional and follows standard label selector semantics. An empty podSelector matches all pods in this namespace.",
            ),
            age_col(),
        ],
        ("policy", "poddisruptionbudgets") => vec![
            col(
                "Min Available",
                "string",
                0,
                "The minimum number of pods that must be available.",
            ),
            col(
                "Max Unavailable",
                "string",
                0,
                "The maximum number of pods that may be unavailable.",
            ),
            col(
                "Allowed Disruptions",
                "integer",
                0,
                "Calculated number of pods that may be disrupted at this time.",
            ),
            age_col(),
        ],
        ("batch", "jobs") => vec![
            col("Status", "string", 0, "Status of the job."),
            col(
                "Completions",
                "string",
                0,
                "The completion status of the job.",
            ),
            col(
                "Duration",
                "string",
                0,
                "Time required to complete the job.",
            ),
            age_col(),
            containers_col(),
            images_col(),
            col(
                "Selector",
                "string",
                1,
                "A label query over pods that should match the pod count.",
            ),
        ],
        ("rbac.authorization.k8s.io", "rolebindings")
        | ("rbac.authorization.k8s.io", "clusterrolebindings") => vec![
            col(
                "Role",
                "string",
                0,
                "Role is the name of the role the binding refers to.",
            ),
            age_col(),
            col("Users", "string", 1, "Users in the binding."),
            col("Groups", "string", 1, "Groups in the binding."),
            col(
                "ServiceAccounts",
                "string",
                1,
                "ServiceAccounts in the binding.",
            ),
        ],
        _ => vec![json!({"name": "Created At", "type": "date", "format": "",
            "description": "CreationTimestamp is a timestamp representing the server time when this object was created.",
            "priority": 0})],
    };
    cols.extend(more);
    cols
}

fn name_col_p1() -> Value {
    let mut c = name_col();
    c["priority"] = json!(1);
    c
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

fn or_none(x: String) -> String {
    if x.is_empty() { "<none>".into() } else { x }
}

fn age(v: &Value) -> Value {
    json!(time::age(
        v.pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str)
    ))
}

fn containers_and_images(spec: &Value) -> (String, String) {
    let cs = spec
        .get("containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = cs.iter().map(|c| s(c, "/name")).collect();
    let images: Vec<&str> = cs.iter().map(|c| s(c, "/image")).collect();
    (names.join(","), images.join(","))
}

fn pod_status(pod: &Value) -> (String, i64, String, usize, usize) {
    let phase = s(pod, "/status/phase");
    let mut reason = if s(pod, "/status/reason").is_empty() {
        phase.to_string()
    } else {
        s(pod, "/status/reason").to_string()
    };
    let total = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|a| a.len())
        .unwrap_or(0);
    let mut ready = 0;
    let mut restarts = 0i64;
    let mut last_restart: Option<String> = None;
    let mut initializing = false;
    let init_total = pod
        .pointer("/spec/initContainers")
        .and_then(Value::as_array)
        .map(|a| a.len())
        .unwrap_or(0);
    if let Some(ics) = pod
        .pointer("/status/initContainerStatuses")
        .and_then(Value::as_array)
    {
        for (i, c) in ics.iter().enumerate() {
            restarts += c["restartCount"].as_i64().unwrap_or(0);
            if let Some(t) = c.pointer("/state/terminated") {
                if t["exitCode"].as_i64() == Some(0) {
                    continue;
                }
                let r = t["reason"].as_str().unwrap_or_default();
                reason = if r.is_empty() {
                    match t["signal"].as_i64() {
                        Some(sig) if sig != 0 => format!("Init:Signal:{sig}"),
                        _ => format!("Init:ExitCode:{}", t["exitCode"].as_i64().unwrap_or(0)),
                    }
                } else {
                    format!("Init:{r}")
                };
                initializing = true;
            } else if let Some(w) = c.pointer("/state/waiting")
                && !w["reason"].as_str().unwrap_or_default().is_empty()
                && w["reason"] != json!("PodInitializing")
            {
                reason = format!("Init:{}", w["reason"].as_str().unwrap_or_default());
                initializing = true;
            } else {
                reason = format!("Init:{i}/{init_total}");
                initializing = true;
            }
            break;
        }
    }
    if !initializing {
        let mut has_running = false;
        if let Some(cs) = pod
            .pointer("/status/containerStatuses")
            .and_then(Value::as_array)
        {
            for c in cs.iter().rev() {
                restarts += c["restartCount"].as_i64().unwrap_or(0);
                if let Some(t) = c
                    .pointer("/lastState/terminated/finishedAt")
                    .and_then(Value::as_str)
                    && last_restart.as_deref().is_none_or(|l| l < t)
                {
                    last_restart = Some(t.to_string());
                }
                if let Some(w) = c.pointer("/state/waiting")
                    && !w["reason"].as_str().unwrap_or_default().is_empty()
                {
                    reason = w["reason"].as_str().unwrap_or_default().to_string();
                } else if let Some(t) = c.pointer("/state/terminated") {
                    let r = t["reason"].as_str().unwrap_or_default();
                    reason = if r.is_empty() {
                        match t["signal"].as_i64() {
                            Some(sig) if sig != 0 => format!("Signal:{sig}"),
                            _ => format!("ExitCode:{}", t["exitCode"].as_i64().unwrap_or(0)),
                        }
                    } else {
                        r.to_string()
                    };
                } else if c.pointer("/state/running").is_some() && c["ready"] == json!(true) {
                    has_running = true;
                    ready += 1;
                }
            }
        }
        if reason == "Completed" && has_running {
            let pod_ready = pod
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == json!("Ready") && c["status"] == json!("True"))
                });
            reason = if pod_ready {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }
    if pod.pointer("/metadata/deletionTimestamp").is_some() {
        reason = if s(pod, "/status/reason") == "NodeLost" {
            "Unknown".into()
        } else {
            "Terminating".into()
        };
    }
    let restarts_text = match last_restart {
        Some(t) if restarts > 0 => format!("{restarts} ({} ago)", time::age(Some(&t))),
        _ => restarts.to_string(),
    };
    (reason, restarts, restarts_text, ready, total)
}

fn service_ports(svc: &Value) -> String {
    let ports = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let parts: Vec<String> = ports
        .iter()
        .map(|p| {
            let port = p["port"].as_i64().unwrap_or(0);
            let proto = p["protocol"].as_str().unwrap_or("TCP");
            match p["nodePort"].as_i64() {
                Some(np) => format!("{port}:{np}/{proto}"),
                None => format!("{port}/{proto}"),
            }
        })
        .collect();
    or_none(parts.join(","))
}

fn external_ip(svc: &Value) -> String {
    let ty = s(svc, "/spec/type");
    let mut ips: Vec<String> = svc
        .pointer("/spec/externalIPs")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    match ty {
        "ExternalName" => s(svc, "/spec/externalName").to_string(),
        "LoadBalancer" => {
            if let Some(ing) = svc
                .pointer("/status/loadBalancer/ingress")
                .and_then(Value::as_array)
            {
                for i in ing {
                    let x = if s(i, "/ip").is_empty() {
                        s(i, "/hostname")
                    } else {
                        s(i, "/ip")
                    };
                    if !x.is_empty() {
                        ips.push(x.to_string());
                    }
                }
            }
            if ips.is_empty() {
                "<pending>".into()
            } else {
                ips.join(",")
            }
        }
        _ => or_none(ips.join(",")),
    }
}

fn endpoints_text(ep: &Value) -> String {
    let mut list: Vec<String> = Vec::new();
    let mut count = 0;
    for subset in ep
        .get("subsets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let ports: Vec<i64> = subset
            .get("ports")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|p| p["port"].as_i64()).collect())
            .unwrap_or_default();
        for a in subset
            .get("addresses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let ip = s(a, "/ip");
            if ports.is_empty() {
                count += 1;
                if list.len() < 3 {
                    list.push(ip.to_string());
                }
            }
            for p in &ports {
                count += 1;
                if list.len() < 3 {
                    list.push(format!("{ip}:{p}"));
                }
            }
        }
    }
    let mut out = list.join(",");
    if count > list.len() {
        out.push_str(&format!(" + {} more...", count - list.len()));
    }
    or_none(out)
}

fn ts_age(v: &Value, ptr: &str) -> Option<String> {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .filter(|x| !x.is_empty())
        .map(|t| time::age(Some(t)))
}

fn event_cells(e: &Value) -> Vec<Value> {
    let first = ts_age(e, "/firstTimestamp")
        .or_else(|| ts_age(e, "/eventTime"))
        .unwrap_or_else(|| "<unknown>".into());
    let mut last = ts_age(e, "/lastTimestamp").unwrap_or_else(|| first.clone());
    let mut count = e["count"].as_i64().unwrap_or(0);
    if e.get("series").is_some_and(Value::is_object) {
        last = ts_age(e, "/series/lastObservedTime").unwrap_or(last);
        count = e
            .pointer("/series/count")
            .and_then(Value::as_i64)
            .unwrap_or(count);
    } else if count == 0 {
        count = 1;
    }
    let kind = s(e, "/involvedObject/kind").to_lowercase();
    let name = s(e, "/involvedObject/name");
    let target = if name.is_empty() {
        kind
    } else {
        format!("{kind}/{name}")
    };
    let comp = s(e, "/source/component");
    let source = if !comp.is_empty() {
        let host = s(e, "/source/host");
        if host.is_empty() {
            comp.to_string()
        } else {
            format!("{comp}, {host}")
        }
    } else {
        let rc = s(e, "/reportingComponent");
        let ri = s(e, "/reportingInstance");
        match (rc.is_empty(), ri.is_empty()) {
            (true, _) => "<none>".to_string(),
            (false, true) => rc.to_string(),
            (false, false) => format!("{rc}, {ri}"),
        }
    };
    vec![
        json!(last),
        json!(s(e, "/type")),
        json!(s(e, "/reason")),
        json!(target),
        json!(s(e, "/involvedObject/fieldPath")),
        json!(source),
        json!(s(e, "/message").trim()),
        json!(first),
        json!(count.to_string()),
        json!(s(e, "/metadata/name")),
    ]
}

fn crd_cell(ty: &str, v: Option<&Value>) -> Value {
    let Some(v) = v else {
        return Value::Null;
    };
    match ty {
        "integer" => v.as_f64().map(|f| json!(f as i64)).unwrap_or(Value::Null),
        "number" => v.as_f64().map(|f| json!(f)).unwrap_or(Value::Null),
        "boolean" => v.as_bool().map(Value::Bool).unwrap_or(Value::Null),
        "date" => match v.as_str() {
            Some(t) => match time::seconds_since(t) {
                Some(secs) => json!(time::human_duration(secs)),
                None => json!("<invalid>"),
            },
            None => Value::Null,
        },
        _ => json!(text(v)),
    }
}

/// The cells of one row.
pub fn cells(rt: &ResourceType, o: &Value) -> Vec<Value> {
    let name = json!(s(o, "/metadata/name"));
    if let Some(crd) = &rt.crd {
        let mut c = vec![name];
        if crd.columns.is_empty() {
            c.push(crd_cell("date", o.pointer("/metadata/creationTimestamp")));
        } else {
            for pc in &crd.columns {
                let v = JsonPath::parse(&pc.json_path)
                    .ok()
                    .and_then(|p| p.first(o).cloned());
                c.push(crd_cell(&pc.ty, v.as_ref()));
            }
        }
        return c;
    }
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "pods") => {
            let (reason, _, restarts, ready, total) = pod_status(o);
            let gates = o
                .pointer("/spec/readinessGates")
                .and_then(Value::as_array)
                .filter(|a| !a.is_empty())
                .map(|a| format!("0/{}", a.len()))
                .unwrap_or_else(|| "<none>".into());
            vec![
                name,
                json!(format!("{ready}/{total}")),
                json!(reason),
                json!(restarts),
                age(o),
                json!(or_none(s(o, "/status/podIP").to_string())),
                json!(or_none(s(o, "/spec/nodeName").to_string())),
                json!(or_none(s(o, "/status/nominatedNodeName").to_string())),
                json!(gates),
            ]
        }
        ("apps", "controllerrevisions") => {
            let controller = o
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .and_then(|refs| refs.iter().find(|r| r["controller"] == json!(true)))
                .map(|r| {
                    let group = r["apiVersion"]
                        .as_str()
                        .and_then(|v| v.split_once('/'))
                        .map(|(g, _)| g)
                        .unwrap_or("");
                    let kind = r["kind"].as_str().unwrap_or("").to_lowercase();
                    let n = r["name"].as_str().unwrap_or("");
                    if group.is_empty() {
                        format!("{kind}/{n}")
                    } else {
                        format!("{kind}.{group}/{n}")
                    }
                })
                .unwrap_or_else(|| "<none>".into());
            vec![
                name,
                json!(controller),
                json!(o["revision"].as_i64().unwrap_or(0)),
                age(o),
            ]
        }
        ("apps", "deployments") | ("apps", "replicasets") => {
            let (c, i) =
                containers_and_images(o.pointer("/spec/template/spec").unwrap_or(&Value::Null));
            let n = |p: &str| o.pointer(p).and_then(Value::as_i64).unwrap_or(0);
            let desired = o
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let selector = o
                .pointer("/spec/selector/matchLabels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            if rt.plural == "deployments" {
                vec![
                    name,
                    json!(format!("{}/{desired}", n("/status/readyReplicas"))),
                    json!(n("/status/updatedReplicas")),
                    json!(n("/status/availableReplicas")),
                    age(o),
                    json!(c),
                    json!(i),
                    json!(selector),
                ]
            } else {
                vec![
                    name,
                    json!(desired),
                    json!(n("/status/replicas")),
                    json!(n("/status/readyReplicas")),
                    age(o),
                    json!(c),
                    json!(i),
                    json!(selector),
                ]
            }
        }
        ("apps", "statefulsets") => {
            let (c, i) =
                containers_and_images(o.pointer("/spec/template/spec").unwrap_or(&Value::Null));
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    o.pointer("/status/readyReplicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(0),
                    o.pointer("/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                )),
                age(o),
                json!(c),
                json!(i),
            ]
        }
        ("", "services") => {
            let selector = o
                .pointer("/spec/selector")
                .and_then(Value::as_object)
                .map(|m| LabelSelector::from_map(m).canonical())
                .unwrap_or_default();
            vec![
                name,
                json!(s(o, "/spec/type")),
                json!(or_none(s(o, "/spec/clusterIP").to_string())),
                json!(external_ip(o)),
                json!(service_ports(o)),
                age(o),
                json!(or_none(selector)),
            ]
        }
        ("", "endpoints") => vec![name, json!(endpoints_text(o)), age(o)],
        ("", "configmaps") => {
            let n = o
                .get("data")
                .and_then(Value::as_object)
                .map(|m| m.len())
                .unwrap_or(0)
                + o.get("binaryData")
                    .and_then(Value::as_object)
                    .map(|m| m.len())
                    .unwrap_or(0);
            vec![name, json!(n), age(o)]
        }
        ("", "secrets") => {
            let n = o
                .get("data")
                .and_then(Value::as_object)
                .map(|m| m.len())
                .unwrap_or(0);
            vec![name, json!(s(o, "/type")), json!(n), age(o)]
        }
        ("", "namespaces") => vec![name, json!(s(o, "/status/phase")), age(o)],
        ("", "serviceaccounts") => vec![name, age(o)],
        ("", "nodes") => {
            let conds = o
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let ready = conds.iter().find(|c| c["type"] == json!("Ready"));
            let mut status = match ready.and_then(|c| c["status"].as_str()) {
                Some("True") => "Ready".to_string(),
                Some("False") => "NotReady".to_string(),
                _ => "Unknown".to_string(),
            };
            if o.pointer("/spec/unschedulable") == Some(&json!(true)) {
                status.push_str(",SchedulingDisabled");
            }
            let mut roles: Vec<String> = o
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.keys()
                        .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                        .filter(|r| !r.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default();
            roles.sort();
            let addr = |ty: &str| -> String {
                o.pointer("/status/addresses")
                    .and_then(Value::as_array)
                    .and_then(|a| a.iter().find(|x| x["type"] == json!(ty)))
                    .map(|x| s(x, "/address").to_string())
                    .unwrap_or_else(|| "<none>".into())
            };
            vec![
                name,
                json!(status),
                json!(or_none(roles.join(","))),
                age(o),
                json!(s(o, "/status/nodeInfo/kubeletVersion")),
                json!(addr("InternalIP")),
                json!(addr("ExternalIP")),
                json!(or_none(s(o, "/status/nodeInfo/osImage").to_string())),
                json!(or_none(s(o, "/status/nodeInfo/kernelVersion").to_string())),
                json!(or_none(
                    s(o, "/status/nodeInfo/containerRuntimeVersion").to_string()
                )),
            ]
        }
        ("", "persistentvolumeclaims") => {
            let modes: Vec<String> = o
                .pointer("/status/accessModes")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(|m| match m {
                            "ReadWriteOnce" => "RWO",
                            "ReadOnlyMany" => "ROX",
                            "ReadWriteMany" => "RWX",
                            "ReadWriteOncePod" => "RWOP",
                            x => x,
                        })
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default();
            vec![
                name,
                json!(s(o, "/status/phase")),
                json!(s(o, "/spec/volumeName")),
                json!(s(o, "/status/capacity/storage")),
                json!(modes.join(",")),
                json!(or_none(s(o, "/spec/storageClassName").to_string())),
                json!(or_none(s(o, "/spec/volumeAttributesClassName").to_string())),
                age(o),
                json!(s(o, "/spec/volumeMode")),
            ]
        }
        ("", "events") => event_cells(o),
        ("events.k8s.io", "events") => event_cells(&super::builtin::event_from_v1(o)),
        ("coordination.k8s.io", "leases") => {
            vec![name, json!(s(o, "/spec/holderIdentity")), age(o)]
        }
        ("networking.k8s.io", "networkpolicies") => {
            // metav1.FormatLabelSelector
            let selector = match o
                .pointer("/spec/podSelector")
                .map(LabelSelector::from_object)
            {
                Some(Err(_)) => "<error>".to_string(),
                Some(Ok(l)) => or_none(l.canonical()),
                None => "<none>".to_string(),
            };
            vec![name, json!(selector), age(o)]
        }
        ("policy", "poddisruptionbudgets") => {
            let show = |p: &str| -> String {
                match o.pointer(p) {
                    Some(Value::String(x)) => x.clone(),
                    Some(Value::Number(n)) => n.to_string(),
                    _ => "N/A".into(),
                }
            };
            vec![
                name,
                json!(show("/spec/minAvailable")),
                json!(show("/spec/maxUnavailable")),
                json!(
                    o.pointer("/status/disruptionsAllowed")
                        .and_then(Value::as_i64)
                        .unwrap_or(0)
                ),
                age(o),
            ]
        }
        ("batch", "jobs") => {
            let completions = o.pointer("/spec/completions").and_then(Value::as_i64);
            let succeeded = o
                .pointer("/status/succeeded")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let comp = match completions {
                Some(c) => format!("{succeeded}/{c}"),
                None => format!(
                    "{succeeded}/1 of {}",
                    o.pointer("/spec/parallelism")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                ),
            };
            let conds = o
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let has = |t: &str| {
                conds
                    .iter()
                    .any(|c| c["type"] == json!(t) && c["status"] == json!("True"))
            };
            let status = if has("Complete") {
                "Complete"
            } else if has("Failed") {
                "Failed"
            } else if o.pointer("/metadata/deletionTimestamp").is_some() {
                "Terminating"
            } else if has("Suspended") {
                "Suspended"
            } else {
                "Running"
            };
            let duration = match (
                o.pointer("/status/startTime")
                    .and_then(Value::as_str)
                    .and_then(time::parse),
                o.pointer("/status/completionTime")
                    .and_then(Value::as_str)
                    .and_then(time::parse),
            ) {
                (Some(st), Some(ct)) => time::human_duration(ct.as_second() - st.as_second()),
                (Some(st), None) => time::human_duration(time::now().as_second() - st.as_second()),
                _ => String::new(),
            };
            let (c, i) =
                containers_and_images(o.pointer("/spec/template/spec").unwrap_or(&Value::Null));
            let selector = o
                .pointer("/spec/selector")
                .and_then(|sel| LabelSelector::from_object(sel).ok())
                .map(|l| l.canonical())
                .unwrap_or_default();
            vec![
                name,
                json!(status),
                json!(comp),
                json!(duration),
                age(o),
                json!(c),
                json!(i),
                json!(selector),
            ]
        }
        ("rbac.authorization.k8s.io", "rolebindings")
        | ("rbac.authorization.k8s.io", "clusterrolebindings") => {
            let subjects = o
                .get("subjects")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let pick = |kind: &str| -> String {
                subjects
                    .iter()
                    .filter(|x| x["kind"] == json!(kind))
                    .map(|x| {
                        if kind == "ServiceAccount" {
                            format!("{}/{}", s(x, "/namespace"), s(x, "/name"))
                        } else {
                            s(x, "/name").to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    s(o, "/roleRef/kind"),
                    s(o, "/roleRef/name")
                )),
                age(o),
                json!(pick("User")),
                json!(pick("Group")),
                json!(pick("ServiceAccount")),
            ]
        }
        _ => vec![name, json!(s(o, "/metadata/creationTimestamp"))],
    }
}

/// How rows carry their object (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    None,
    Metadata,
    Object,
}

/// The PartialObjectMetadata of an object.
pub fn partial(o: &Value, api_version: &str) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": api_version,
        "metadata": o.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// A Table of objects (already in the requested version).
pub fn table(
    rt: &ResourceType,
    objects: &[Value],
    include: Include,
    with_columns: bool,
    list_meta: Value,
    table_version: &str,
) -> Value {
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut row = json!({"cells": cells(rt, o)});
            match include {
                Include::None => {}
                Include::Metadata => row["object"] = partial(o, "meta.k8s.io/v1"),
                Include::Object => row["object"] = o.clone(),
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": format!("meta.k8s.io/{table_version}"),
        "metadata": list_meta,
        "columnDefinitions": if with_columns { Value::Array(columns(rt)) } else { Value::Null },
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::types::{builtin_types, crd_types};

    fn rt(plural: &str) -> ResourceType {
        builtin_types()
            .into_iter()
            .find(|t| t.plural == plural)
            .unwrap()
    }

    #[test]
    fn every_row_fits_its_columns() {
        let pod = json!({"metadata": {"name": "p", "creationTimestamp": time::now_string()},
            "spec": {"containers": [{"name": "c"}], "nodeName": "n1"},
            "status": {"phase": "Running", "podIP": "10.0.0.1",
                "containerStatuses": [{"name": "c", "ready": true, "restartCount": 2, "state": {"running": {}}}]}});
        for plural in [
            "pods",
            "statefulsets",
            "deployments",
            "replicasets",
            "services",
            "endpoints",
            "configmaps",
            "secrets",
            "namespaces",
            "serviceaccounts",
            "nodes",
            "persistentvolumeclaims",
            "events",
            "leases",
            "poddisruptionbudgets",
            "networkpolicies",
            "jobs",
            "rolebindings",
            "roles",
            "customresourcedefinitions",
        ] {
            let t = rt(plural);
            assert_eq!(columns(&t).len(), cells(&t, &pod).len(), "{plural}");
        }
        let c = cells(&rt("pods"), &pod);
        assert_eq!(c[1], "1/1");
        assert_eq!(c[2], "Running");
        assert_eq!(c[3], "2");
        assert_eq!(c[6], "n1");
    }

    #[test]
    fn network_policies_show_their_pod_selector() {
        let t = rt("networkpolicies");
        let cols = columns(&t);
        let names: Vec<&str> = cols.iter().filter_map(|c| c["name"].as_str()).collect();
        assert_eq!(names, ["Name", "Pod-Selector", "Age"]);
        let np = |sel: Value| {
            json!({"metadata": {"name": "np", "creationTimestamp": time::now_string()},
                "spec": {"podSelector": sel}})
        };
        let c = cells(&t, &np(json!({"matchLabels": {"b": "2", "a": "1"}})));
        assert_eq!(c[0], "np");
        assert_eq!(c[1], "a=1,b=2");
        assert_eq!(cells(&t, &np(json!({})))[1], "<none>");
        let exprs =
            json!({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["web"]}]});
        assert_eq!(cells(&t, &np(exprs))[1], "tier notin (web)");
    }

    #[test]
    fn custom_columns_use_json_paths() {
        let crd = json!({"metadata": {"name": "ws.example.com"}, "spec": {"group": "example.com", "scope": "Namespaced",
        "names": {"plural": "ws", "kind": "W"},
        "versions": [{"name": "v1", "served": true, "storage": true, "additionalPrinterColumns": [
            {"name": "Healthy", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Healthy\")].status"},
            {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
        ]}]}});
        let t = crd_types(&crd).remove(0);
        let o = json!({"metadata": {"name": "w1", "creationTimestamp": time::now_string()},
            "spec": {"replicas": 3}, "status": {"conditions": [{"type": "Healthy", "status": "True"}]}});
        let c = cells(&t, &o);
        assert_eq!(c[0], "w1");
        assert_eq!(c[1], "True");
        assert_eq!(c[2], 3);
        assert!(c[3].as_str().unwrap().ends_with('s'));
        let missing = cells(&t, &json!({"metadata": {"name": "w2"}}));
        assert_eq!(missing[1], Value::Null);
    }
}
