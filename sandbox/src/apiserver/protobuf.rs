//! Decoding of the Kubernetes protobuf request bodies some `kubectl`
//! commands send (`kubectl create namespace|configmap|secret|
//! serviceaccount|service|role|rolebinding|clusterrole|
//! clusterrolebinding|poddisruptionbudget`, `kubectl auth can-i`, the
//! evictions of `kubectl drain`, bindings of typed clients): the
//! `k8s\0` envelope, a `runtime.Unknown` holding the object, decoded with
//! the field tables of the kinds listed here into the JSON the rest of
//! the server works on. Zero values are left out, as the JSON encoding
//! leaves them out. A kind without a table, or a set field the tables do
//! not know, is refused (415) rather than guessed.

use base64::Engine;
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::time;

#[derive(Debug, Clone, Copy)]
enum K {
    Str,
    Bytes,
    I32,
    I64,
    Bool,
    Msg(&'static [F]),
    RepStr,
    RepMsg(&'static [F]),
    MapStr,
    MapBytes,
    Time,
    IntOrStr,
}

#[derive(Debug, Clone, Copy)]
struct F(u32, &'static str, K);

static TYPE_META: &[F] = &[F(1, "apiVersion", K::Str), F(2, "kind", K::Str)];
static UNKNOWN: &[F] = &[
    F(1, "typeMeta", K::Msg(TYPE_META)),
    F(2, "raw", K::Bytes),
    F(3, "contentEncoding", K::Str),
    F(4, "contentType", K::Str),
];
static OWNER_REF: &[F] = &[
    F(1, "kind", K::Str),
    F(3, "name", K::Str),
    F(4, "uid", K::Str),
    F(5, "apiVersion", K::Str),
    F(6, "controller", K::Bool),
    F(7, "blockOwnerDeletion", K::Bool),
];
static OBJECT_META: &[F] = &[
    F(1, "name", K::Str),
    F(2, "generateName", K::Str),
    F(3, "namespace", K::Str),
    F(4, "selfLink", K::Str),
    F(5, "uid", K::Str),
    F(6, "resourceVersion", K::Str),
    F(7, "generation", K::I64),
    F(8, "creationTimestamp", K::Time),
    F(9, "deletionTimestamp", K::Time),
    F(10, "deletionGracePeriodSeconds", K::I64),
    F(11, "labels", K::MapStr),
    F(12, "annotations", K::MapStr),
    F(13, "ownerReferences", K::RepMsg(OWNER_REF)),
    F(14, "finalizers", K::RepStr),
];
static LOCAL_REF: &[F] = &[F(1, "name", K::Str)];
static OBJECT_REF: &[F] = &[
    F(1, "kind", K::Str),
    F(2, "namespace", K::Str),
    F(3, "name", K::Str),
    F(4, "uid", K::Str),
    F(5, "apiVersion", K::Str),
    F(6, "resourceVersion", K::Str),
    F(7, "fieldPath", K::Str),
];
static NOTHING: &[F] = &[];
static NAMESPACE_SPEC: &[F] = &[F(1, "finalizers", K::RepStr)];
static NAMESPACE: &[F] = &[
    F(1, "metadata", K::Msg(OBJECT_META)),
    F(2, "spec", K::Msg(NAMESPACE_SPEC)),
    F(3, "status", K::Msg(NOTHING)),
];
static CONFIGMAP: &[F] = &[
    F(1, "metadata", K::Msg(OBJECT_META)),
    F(2, "data", K::MapStr),
    F(3, "binaryData", K::MapBytes),
    F(4, "immutable", K::Bool),
];
static SECRET: &[F] = &[
    F(1, "metadata", K::Msg(OBJECT_META)),
    F(2, "data", K::MapBytes),
    F(3, "type", K::Str),
    F(4, "stringData", K::MapStr),
    F(5, "immutable", K::Bool),
];
static SERVICE_ACCOUNT: &[F] = &[
    F(1, "metadata", K::Msg(OBJECT_META)),
    F(2, "secrets", K::RepMsg(OBJECT_REF)),
    F(3, "imagePullSecrets", K::RepMsg(LOCAL_REF)),
    F(4, "automountServiceAccountToken", K::Bool),
];
static SERVICE_PORT: &[F] = &[
    F(1, "name", K::Str),
    F(2, "protocol", K::Str),
    F(3, "port", K::I32),
    F(4, "targetPort", K::IntOrStr),
    F(5, "nodePort", K::I32),
    F(6, "appProtocol", K::Str),
];
static SERVICE_SPEC: &[F] = &[
    F(1, "ports", K::RepMsg(SERVICE_PORT)),
    F(2, "selector", K::MapStr),
    F(3, "clusterIP", K::Str),
    F(4, "type", K::Str),
    F(5, "externalIPs", K::RepStr),
    F(7, "sessionAffinity", K::Str),
    F(8, "loadBalancerIP", K::Str),
    F(9, "loadBalancerSourceRanges", K::RepStr),
    F(10, "externalName", K::Str),
    F(11, "externalTrafficPolicy", K::Str),
    F(12, "healthCheckNodePort", K::I32),
    F(13, "publishNotReadyAddresses", K::Bool),
    F(17, "ipFamilyPolicy", K::Str),
    F(18, "clusterIPs", K::RepStr),
    F(19, "ipFamilies", K::RepStr),
    F(20, "allocateLoadBalancerNodePorts", K::Bool),
    F(21, "loadBalancerClass", K::Str),
    F(22, "internalTrafficPolicy", K::Str),
    F(23, "trafficDistribution", K::Str),
];
static SERVICE: &[F] = &[
    F(1, "metadata", K::Msg(OBJECT_META)),
    F(2, "spec", K::Msg(SERVICE_SPEC)),
    F(3, "status", K::Msg(NOTHING)),
];
static POLICY_RULE: &[F] = &[
    F(1, "verbs", K::RepStr),
    F(2, "apiGroups", K::RepStr),
    F(3, "resources", K::RepStr),
    F(4, "resourceNames", K::RepStr),
    F(5, "nonResourceURLs", K::RepStr),
];
static SELECTOR_REQ: &[F] = &[
    F(1, "key", K::Str),
    F(2, "operator", K::Str),
    F(3, "values", K::RepStr),
];
static LABEL_SELECTOR: &[F] = &[
    F(1, "matchLabels", K::MapStr),
    F(2, "matchExpressions", K::RepMsg(SELECTOR_REQ)),
];
static AGGREGATION_RULE: &[F] = &[F(1, "clusterRoleSelectors", K::RepMsg(LABEL_SELECTOR))];
static ROLE: &[F] = &[
    F(1, "metadata", K::Msg(OBJECT_META)),
    F(2, "rules", K::RepMsg(POLICY_RULE)),
];
static CLUSTER_ROLE: &[F] = &[
    F(1, "metadata", K::Msg(OBJECT_META)),
    F(2, "rules", K::RepMsg(POLICY_RULE)),
    F(3, "aggregationRule", K::Msg(AGGREGATION_RULE)),
];
static SUBJECT: &[F] = &[
    F(1, "kind", K::Str),
    F(2, "apiGroup", K::Str),
    F(3, "name", K::Str),
    F(4, "namespace", K::Str),
];
static ROLE_REF: &[F] = &[
    F(1, "apiGroup", K::Str),
    F(2, "kind", K::Str),
    F(3, "name", K::Str),
];
static ROLE_BINDING: &[F] = &[
    F(1, "metadata", K::Msg(OBJECT_META)),
    F(2, "subjects", K::RepMsg(SUBJECT)),
    F(3, "roleRef", K::Msg(ROLE_REF)),
];
static PDB_SPEC: &[F] = &[
    F(1, "minAvailable", K::IntOrStr),
    F(2, "selector", K::Msg(LABEL_SELECTOR)),
    F(3, "maxUnavailable", K::IntOrStr),
    F(4, "unhealthyPodEvictionPolicy", K::Str),
];
static PDB: &[F] = &[
    F(1, "metadata", K::Msg(OBJECT_META)),
    F(2, "spec", K::Msg(PDB_SPEC)),
    F(3, "status", K::Msg(NOTHING)),
];
static RESOURCE_ATTRIBUTES: &[F] = &[
    F(1, "namespace", K::Str),
    F(2, "verb", K::Str),
    F(3, "group", K::Str),
    F(4, "version", K::Str),
    F(5, "resource", K::Str),
    F(6, "subresource", K::Str),
    F(7, "name", K::Str),
];
static NON_RESOURCE_ATTRIBUTES: &[F] = &[F(1, "path", K::Str), F(2, "verb", K::Str)];
static SSAR_SPEC: &[F] = &[
    F(1, "resourceAttributes", K::Msg(RESOURCE_ATTRIBUTES)),
    F(2, "nonResourceAttributes", K::Msg(NON_RESOURCE_ATTRIBUTES)),
];
static SSAR: &[F] = &[
    F(1, "metadata", K::Msg(OBJECT_META)),
    F(2, "spec", K::Msg(SSAR_SPEC)),
    F(3, "status", K::Msg(NOTHING)),
];

static PRECONDITIONS: &[F] = &[F(1, "uid", K::Str), F(2, "resourceVersion", K::Str)];
static DELETE_OPTIONS: &[F] = &[
    F(1, "gracePeriodSeconds", K::I64),
    F(2, "preconditions", K::Msg(PRECONDITIONS)),
    F(3, "orphanDependents", K::Bool),
    F(4, "propagationPolicy", K::Str),
    F(5, "dryRun", K::RepStr),
];
static EVICTION: &[F] = &[
    F(1, "metadata", K::Msg(OBJECT_META)),
    F(2, "deleteOptions", K::Msg(DELETE_OPTIONS)),
];
static BINDING: &[F] = &[
    F(1, "metadata", K::Msg(OBJECT_META)),
    F(2, "target", K::Msg(OBJECT_REF)),
];

fn table(api_version: &str, kind: &str) -> Option<&'static [F]> {
    Some(match (api_version, kind) {
        ("v1", "Namespace") => NAMESPACE,
        ("v1", "ConfigMap") => CONFIGMAP,
        ("v1", "Secret") => SECRET,
        ("v1", "ServiceAccount") => SERVICE_ACCOUNT,
        ("v1", "Service") => SERVICE,
        ("rbac.authorization.k8s.io/v1", "Role") => ROLE,
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => CLUSTER_ROLE,
        ("rbac.authorization.k8s.io/v1", "RoleBinding")
        | ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => ROLE_BINDING,
        ("policy/v1", "PodDisruptionBudget") => PDB,
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview") => SSAR,
        ("policy/v1", "Eviction") => EVICTION,
        ("v1", "Binding") => BINDING,
        (_, "DeleteOptions") => DELETE_OPTIONS,
        _ => return None,
    })
}

fn refuse(what: String) -> ApiError {
    ApiError::unsupported_media_type(&["application/json", "application/yaml"]).with_message(
        format!(
            "the sandbox API server cannot decode this protobuf body ({what}); send JSON or YAML"
        ),
    )
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let Some(&byte) = self.b.get(self.i) else {
                return Err("truncated varint".into());
            };
            self.i += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.varint()? as usize;
        let end = self
            .i
            .checked_add(n)
            .filter(|e| *e <= self.b.len())
            .ok_or("truncated field")?;
        let s = &self.b[self.i..end];
        self.i = end;
        Ok(s)
    }

    fn skip(&mut self, wire: u64) -> Result<bool, String> {
        // returns whether the skipped value was a zero value
        match wire {
            0 => Ok(self.varint()? == 0),
            1 => {
                self.i += 8;
                Ok(false)
            }
            2 => Ok(self.bytes()?.is_empty()),
            5 => {
                self.i += 4;
                Ok(false)
            }
            w => Err(format!("unsupported wire type {w}")),
        }
    }
}

fn entry(raw: &[u8]) -> Result<(String, Vec<u8>), String> {
    let mut r = Reader { b: raw, i: 0 };
    let (mut k, mut v) = (String::new(), Vec::new());
    while r.i < raw.len() {
        let key = r.varint()?;
        match (key >> 3, key & 7) {
            (1, 2) => k = String::from_utf8_lossy(r.bytes()?).into_owned(),
            (2, 2) => v = r.bytes()?.to_vec(),
            (_, w) => {
                r.skip(w)?;
            }
        }
    }
    Ok((k, v))
}

fn time_of(raw: &[u8]) -> Result<Option<String>, String> {
    let mut r = Reader { b: raw, i: 0 };
    let (mut secs, mut nanos) = (0i64, 0i64);
    while r.i < raw.len() {
        let key = r.varint()?;
        match (key >> 3, key & 7) {
            (1, 0) => secs = r.varint()? as i64,
            (2, 0) => nanos = r.varint()? as i64,
            (_, w) => {
                r.skip(w)?;
            }
        }
    }
    if secs == 0 && nanos == 0 {
        return Ok(None);
    }
    let t = jiff::Timestamp::from_second(secs).map_err(|e| e.to_string())?;
    Ok(Some(time::rfc3339(t)))
}

fn int_or_string(raw: &[u8]) -> Result<Value, String> {
    let mut r = Reader { b: raw, i: 0 };
    let (mut ty, mut int, mut s) = (0u64, 0i64, String::new());
    while r.i < raw.len() {
        let key = r.varint()?;
        match (key >> 3, key & 7) {
            (1, 0) => ty = r.varint()?,
            (2, 0) => int = r.varint()? as i32 as i64,
            (3, 2) => s = String::from_utf8_lossy(r.bytes()?).into_owned(),
            (_, w) => {
                r.skip(w)?;
            }
        }
    }
    Ok(if ty == 1 { json!(s) } else { json!(int) })
}

fn message(raw: &[u8], desc: &'static [F], path: &str) -> Result<Map<String, Value>, String> {
    let mut r = Reader { b: raw, i: 0 };
    let mut out = Map::new();
    while r.i < raw.len() {
        let key = r.varint()?;
        let (num, wire) = ((key >> 3) as u32, key & 7);
        let Some(F(_, name, kind)) = desc.iter().find(|f| f.0 == num).copied() else {
            if !r.skip(wire)? {
                return Err(format!("field {num} of {path} is not known"));
            }
            continue;
        };
        let here = format!("{path}.{name}");
        match kind {
            K::Str => {
                let s = String::from_utf8_lossy(r.bytes()?).into_owned();
                if !s.is_empty() {
                    out.insert(name.into(), json!(s));
                }
            }
            K::Bytes => {
                let b = r.bytes()?;
                out.insert(
                    name.into(),
                    json!(base64::engine::general_purpose::STANDARD.encode(b)),
                );
            }
            K::I32 => {
                let v = r.varint()? as i32;
                if v != 0 {
                    out.insert(name.into(), json!(v));
                }
            }
            K::I64 => {
                let v = r.varint()? as i64;
                if v != 0 {
                    out.insert(name.into(), json!(v));
                }
            }
            K::Bool => {
                if r.varint()? != 0 {
                    out.insert(name.into(), json!(true));
                }
            }
            K::Msg(d) => {
                let m = message(r.bytes()?, d, &here)?;
                if !m.is_empty() {
                    out.insert(name.into(), Value::Object(m));
                }
            }
            K::RepStr => {
                let s = String::from_utf8_lossy(r.bytes()?).into_owned();
                push(&mut out, name, json!(s));
            }
            K::RepMsg(d) => {
                let m = message(r.bytes()?, d, &here)?;
                push(&mut out, name, Value::Object(m));
            }
            K::MapStr | K::MapBytes => {
                let (k, v) = entry(r.bytes()?)?;
                let val = match kind {
                    K::MapBytes => json!(base64::engine::general_purpose::STANDARD.encode(v)),
                    _ => json!(String::from_utf8_lossy(&v)),
                };
                let m = out.entry(name).or_insert_with(|| json!({}));
                if let Some(m) = m.as_object_mut() {
                    m.insert(k, val);
                }
            }
            K::Time => {
                if let Some(t) = time_of(r.bytes()?)? {
                    out.insert(name.into(), json!(t));
                }
            }
            K::IntOrStr => {
                let v = int_or_string(r.bytes()?)?;
                out.insert(name.into(), v);
            }
        }
    }
    Ok(out)
}

fn push(out: &mut Map<String, Value>, name: &str, v: Value) {
    let a = out.entry(name).or_insert_with(|| json!([]));
    if let Some(a) = a.as_array_mut() {
        a.push(v);
    }
}

/// Decodes a `application/vnd.kubernetes.protobuf` body into JSON.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let Some(rest) = body.strip_prefix(b"k8s\x00") else {
        return Err(refuse("no k8s envelope".into()));
    };
    let unknown = message(rest, UNKNOWN, "Unknown").map_err(refuse)?;
    let api_version = unknown
        .get("typeMeta")
        .and_then(|t| t.get("apiVersion"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let kind = unknown
        .get("typeMeta")
        .and_then(|t| t.get("kind"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let Some(desc) = table(&api_version, &kind) else {
        return Err(refuse(format!("{api_version} {kind}")));
    };
    let raw = unknown
        .get("raw")
        .and_then(Value::as_str)
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .unwrap_or_default();
    let mut obj = message(&raw, desc, &kind).map_err(refuse)?;
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        }
    }

    fn field(num: u64, wire: u64, payload: &[u8], out: &mut Vec<u8>) {
        varint(num << 3 | wire, out);
        if wire == 2 {
            varint(payload.len() as u64, out);
        }
        out.extend_from_slice(payload);
    }

    #[test]
    fn decodes_a_configmap_envelope() {
        let mut meta = Vec::new();
        field(1, 2, b"c1", &mut meta);
        field(2, 2, b"", &mut meta); // empty generateName, as Go writes it
        let mut label = Vec::new();
        field(1, 2, b"app", &mut label);
        field(2, 2, b"db", &mut label);
        field(11, 2, &label, &mut meta);
        let mut cm = Vec::new();
        field(1, 2, &meta, &mut cm);
        let mut kv = Vec::new();
        field(1, 2, b"k", &mut kv);
        field(2, 2, b"v", &mut kv);
        field(2, 2, &kv, &mut cm);
        let mut tm = Vec::new();
        field(1, 2, b"v1", &mut tm);
        field(2, 2, b"ConfigMap", &mut tm);
        let mut unknown = Vec::new();
        field(1, 2, &tm, &mut unknown);
        field(2, 2, &cm, &mut unknown);
        let mut body = b"k8s\x00".to_vec();
        body.extend_from_slice(&unknown);
        let v = decode(&body).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "c1", "labels": {"app": "db"}}, "data": {"k": "v"}})
        );
    }

    #[test]
    fn refuses_unknown_kinds_and_fields() {
        let mut tm = Vec::new();
        field(1, 2, b"v1", &mut tm);
        field(2, 2, b"Pod", &mut tm);
        let mut unknown = Vec::new();
        field(1, 2, &tm, &mut unknown);
        let mut body = b"k8s\x00".to_vec();
        body.extend_from_slice(&unknown);
        assert_eq!(decode(&body).unwrap_err().code, 415);
        assert_eq!(decode(b"{}").unwrap_err().code, 415);
    }
}
