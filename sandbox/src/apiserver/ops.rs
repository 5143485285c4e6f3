//! The REST verbs on the state: get, list, create, update, patch, apply,
//! delete, the status and scale subresources, pod binding and eviction.
//! Every write goes through the same pipeline the real server has:
//! preconditions, the kind's strategy, schema handling, generation,
//! managedFields, and "no change, no write".

use std::collections::HashSet;

use base64::Engine;
use serde_json::{Map, Value, json};

use super::builtin::{self, CreateCtx};
use super::error::{ApiError, FieldError};
use super::managed::{self, Scope, Shape, Writer};
use super::patch::{self, PatchType};
use super::schema;
use super::selector::{FieldSelector, LabelSelector};
use super::store::Store;
use super::table;
use super::time;
use super::types::{Generation, Registry, ResourceType, crd_types};

/// Finalizer the real server puts on CRDs until their objects are gone.
pub const CRD_CLEANUP: &str = "customresourcecleanup.apiextensions.k8s.io";
pub const STORAGE_CRDS: &str = "apiextensions.k8s.io/customresourcedefinitions";
pub const STORAGE_NAMESPACES: &str = "core/namespaces";
pub const STORAGE_SERVICES: &str = "core/services";
pub const STORAGE_ENDPOINTS: &str = "core/endpoints";
pub const STORAGE_PODS: &str = "core/pods";
pub const STORAGE_NODES: &str = "core/nodes";
pub const STORAGE_SERVICEACCOUNTS: &str = "core/serviceaccounts";
pub const STORAGE_CONFIGMAPS: &str = "core/configmaps";
/// The ConfigMap every namespace gets with the API server's CA.
pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";
pub const STORAGE_PDBS: &str = "policy/poddisruptionbudgets";

/// Namespaces that cannot be deleted.
const IMMORTAL: [&str; 3] = ["default", "kube-system", "kube-public"];

/// The whole server state behind one lock.
pub struct State {
    pub store: Store,
    pub registry: Registry,
    /// Services deleted since the endpoints pass last ran.
    pub deleted_services: Vec<(String, String)>,
    /// store.generation when the controllers last settled.
    pub settled_at: u64,
    /// The CA of the HTTPS face, published in every namespace's
    /// `kube-root-ca.crt` ConfigMap.
    pub root_ca: Option<String>,
    /// The tokens the TokenRequest API issued.
    pub tokens: super::authz::Tokens,
}

/// Options shared by the writes.
#[derive(Debug, Clone, Default)]
pub struct WriteOpts {
    pub dry_run: bool,
    /// The field manager (from `fieldManager` or the User-Agent).
    pub manager: String,
    pub force: bool,
    /// `Ignore`, `Warn` (default) or `Strict`.
    pub field_validation: String,
}

/// A write's answer.
#[derive(Debug, Clone)]
pub struct Written {
    pub object: Value,
    pub created: bool,
    pub warnings: Vec<String>,
}

/// Options of a delete.
#[derive(Debug, Clone, Default)]
pub struct DeleteOpts {
    pub propagation: Option<String>,
    pub grace: Option<i64>,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub dry_run: bool,
}

/// A delete's answer.
#[derive(Debug, Clone)]
pub enum Deleted {
    /// Still there: finalizers or a grace period hold it.
    Pending(Value),
    /// Gone; the last state.
    Gone(Value),
}

/// List parameters.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
}

pub fn meta_str<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get("metadata")
        .and_then(|m| m.get(key))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn meta_mut(v: &mut Value) -> Option<&mut Map<String, Value>> {
    let m = v.as_object_mut()?;
    let meta = m.entry("metadata").or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    meta.as_object_mut()
}

fn set_meta(v: &mut Value, key: &str, val: Value) {
    if let Some(m) = meta_mut(v) {
        m.insert(key.to_string(), val);
    }
}

fn remove_meta(v: &mut Value, key: &str) {
    if let Some(m) = meta_mut(v) {
        m.remove(key);
    }
}

pub fn finalizers(v: &Value) -> Vec<String> {
    v.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

fn set_finalizers(v: &mut Value, f: &[String]) {
    if f.is_empty() {
        remove_meta(v, "finalizers");
    } else {
        set_meta(v, "finalizers", json!(f));
    }
}

pub fn is_deleting(v: &Value) -> bool {
    v.pointer("/metadata/deletionTimestamp")
        .is_some_and(|x| !x.is_null())
}

fn new_uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn random_suffix() -> String {
    // the alphabet of apiserver's name generator (no vowels, no 0/1/3)
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    bytes
        .iter()
        .take(5)
        .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
        .collect()
}

/// The object as the request's version shows it.
pub fn to_request(rt: &ResourceType, stored: &Value) -> Value {
    if rt.group == "events.k8s.io" {
        return builtin::event_to_v1(stored);
    }
    let mut v = stored.clone();
    if let Some(m) = v.as_object_mut() {
        m.insert("apiVersion".into(), json!(rt.api_version()));
        m.insert("kind".into(), json!(rt.kind));
    }
    v
}

/// The object as it is stored.
fn to_storage(rt: &ResourceType, obj: &Value) -> Value {
    if rt.group == "events.k8s.io" {
        return builtin::event_from_v1(obj);
    }
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.insert("apiVersion".into(), json!(rt.storage_api_version));
    }
    v
}

fn shape(rt: &ResourceType) -> Shape<'_> {
    Shape {
        schema: rt.crd.as_ref().and_then(|c| c.schema.as_ref()),
        custom: rt.is_custom(),
    }
}

fn scope(rt: &ResourceType, sub: &str) -> Scope {
    if sub == "status" {
        Scope::Status
    } else if rt.status {
        Scope::Main
    } else {
        Scope::All
    }
}

/// Comparable form: no resourceVersion, managedFields without times.
fn comparable(v: &Value) -> Value {
    let mut c = v.clone();
    if let Some(m) = c.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
        if let Some(Value::Array(mf)) = m.get_mut("managedFields") {
            for e in mf.iter_mut() {
                if let Some(em) = e.as_object_mut() {
                    em.remove("time");
                }
            }
        }
    }
    c
}

fn non_metadata(v: &Value) -> Value {
    let mut c = v.clone();
    if let Some(m) = c.as_object_mut() {
        m.remove("metadata");
        m.remove("apiVersion");
        m.remove("kind");
    }
    c
}

/// How managedFields are written by a pipeline step.
enum Fields<'a> {
    /// Record an Update by this manager.
    Update(&'a str),
    /// Already computed (server-side apply).
    Precomputed,
}

/// Parses a continue token: (resourceVersion, last key).
fn parse_continue(token: &str) -> Result<(u64, String), ApiError> {
    let bad = || ApiError::bad_request(format!("continue key is not valid: {token}"));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(token))
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v["rv"].as_u64().ok_or_else(bad)?;
    let start = v["start"].as_str().ok_or_else(bad)?.to_string();
    Ok((rv, start))
}

fn make_continue(rv: u64, last_key: &str) -> String {
    let v = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": format!("{last_key}\u{0}")});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

impl State {
    pub fn new(history_limit: usize) -> Self {
        State {
            store: Store::new(history_limit),
            registry: Registry::new(),
            deleted_services: Vec::new(),
            settled_at: u64::MAX,
            root_ca: None,
            tokens: Default::default(),
        }
    }

    /// Registers every stored CRD (after loading a snapshot).
    pub fn register_stored_crds(&mut self) {
        let crds: Vec<Value> = self
            .store
            .list(STORAGE_CRDS, None)
            .into_iter()
            .cloned()
            .collect();
        for crd in crds {
            let name = meta_str(&crd, "name").to_string();
            self.registry.set_crd(&name, crd_types(&crd));
        }
    }

    fn type_for_storage(&self, storage: &str) -> Option<ResourceType> {
        self.registry.for_storage(storage).cloned()
    }

    // ---- raw writes with their side effects -------------------------

    /// Stores a new object (storage form) and runs the hooks.
    fn put_new(&mut self, storage: &str, obj: Value) -> Value {
        let stored = self.store.insert(storage, obj);
        self.after_write(storage, Some(&stored));
        stored
    }

    fn put(&mut self, storage: &str, obj: Value) -> Value {
        let stored = self.store.update(storage, obj);
        self.after_write(storage, Some(&stored));
        stored
    }

    fn drop_object(&mut self, storage: &str, ns: &str, name: &str) -> Option<Value> {
        let gone = self.store.remove(storage, ns, name)?;
        if storage == STORAGE_SERVICES {
            self.deleted_services
                .push((ns.to_string(), name.to_string()));
        }
        if storage == STORAGE_CRDS {
            self.registry.set_crd(name, Vec::new());
        }
        Some(gone)
    }

    fn after_write(&mut self, storage: &str, obj: Option<&Value>) {
        if storage == STORAGE_CRDS
            && let Some(crd) = obj
        {
            let name = meta_str(crd, "name").to_string();
            self.registry.set_crd(&name, crd_types(crd));
        }
    }

    /// Writes an updated object (storage form): removes it instead when
    /// it is being deleted and has no finalizer left.
    fn put_or_finish(&mut self, storage: &str, obj: Value) -> Value {
        if is_deleting(&obj) && finalizers(&obj).is_empty() {
            let ns = meta_str(&obj, "namespace").to_string();
            let name = meta_str(&obj, "name").to_string();
            return self.drop_object(storage, &ns, &name).unwrap_or(obj);
        }
        self.put(storage, obj)
    }

    // ---- reads ------------------------------------------------------

    pub fn get(&self, rt: &ResourceType, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.store
            .get(&rt.storage, ns, name)
            .map(|o| to_request(rt, o))
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))
    }

    /// Parses the selectors of a list or watch.
    pub fn selectors(
        rt: &ResourceType,
        q: &ListQuery,
    ) -> Result<(LabelSelector, FieldSelector), ApiError> {
        let labels = LabelSelector::parse(q.label_selector.as_deref().unwrap_or_default())
            .map_err(ApiError::bad_request)?;
        let fields = FieldSelector::parse(
            q.field_selector.as_deref().unwrap_or_default(),
            &rt.selectable(),
        )
        .map_err(ApiError::bad_request)?;
        Ok((labels, fields))
    }

    /// A list, with its items in the request's version.
    pub fn list(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        q: &ListQuery,
    ) -> Result<(Vec<Value>, Value), ApiError> {
        let (labels, fields) = Self::selectors(rt, q)?;
        let mut rv = self.store.rv();
        if q.resource_version_match.as_deref() == Some("Exact")
            && let Some(want) = q
                .resource_version
                .as_deref()
                .and_then(|r| r.parse::<u64>().ok())
            && want != rv
        {
            return Err(ApiError::expired(format!(
                "too old resource version: {want} ({rv})"
            )));
        }
        let mut start_after: Option<String> = None;
        if let Some(tok) = q.continue_token.as_deref().filter(|t| !t.is_empty()) {
            let (trv, start) = parse_continue(tok)?;
            rv = trv;
            start_after = Some(start.trim_end_matches('\u{0}').to_string());
        }
        let key = |o: &Value| format!("{}\u{0}{}", meta_str(o, "namespace"), meta_str(o, "name"));
        let matching: Vec<&Value> = self
            .store
            .list(&rt.storage, ns)
            .into_iter()
            .filter(|o| {
                let v = to_request(rt, o);
                labels.matches(&v) && fields.matches(&v)
            })
            .filter(|o| {
                start_after
                    .as_ref()
                    .is_none_or(|s| key(o).as_str() > s.as_str())
            })
            .collect();
        let mut meta = json!({"resourceVersion": rv.to_string()});
        let items: Vec<Value> = match q.limit.filter(|l| *l > 0) {
            Some(limit) if matching.len() > limit => {
                let page = &matching[..limit];
                let last = page.last().map(|o| key(o)).unwrap_or_default();
                meta["continue"] = json!(make_continue(rv, &last));
                if labels.is_empty() && fields.0.is_empty() {
                    meta["remainingItemCount"] = json!(matching.len() - limit);
                }
                page.iter().map(|o| to_request(rt, o)).collect()
            }
            _ => matching.iter().map(|o| to_request(rt, o)).collect(),
        };
        Ok((items, meta))
    }

    /// The List object of a list answer.
    pub fn list_object(rt: &ResourceType, items: Vec<Value>, meta: Value) -> Value {
        let items: Vec<Value> = if rt.is_custom() {
            items
        } else {
            // typed lists of the real server carry no kind/apiVersion per item
            items
                .into_iter()
                .map(|mut i| {
                    if let Some(m) = i.as_object_mut() {
                        m.remove("kind");
                        m.remove("apiVersion");
                    }
                    i
                })
                .collect()
        };
        json!({
            "kind": rt.list_kind(),
            "apiVersion": rt.api_version(),
            "metadata": meta,
            "items": items,
        })
    }

    // ---- namespace checks --------------------------------------------

    fn check_namespace(&self, rt: &ResourceType, ns: &str, name: &str) -> Result<(), ApiError> {
        if !rt.namespaced {
            return Ok(());
        }
        match self.store.get(STORAGE_NAMESPACES, "", ns) {
            None => Err(ApiError::not_found("", "namespaces", ns)),
            Some(n) if is_deleting(n) => {
                let mut e = ApiError::forbidden(
                    &rt.group,
                    &rt.plural,
                    name,
                    &format!(
                        "unable to create new content in namespace {ns} because it is being terminated"
                    ),
                );
                if let Some(d) = e.details.as_mut() {
                    d["causes"] = json!([{"reason": "NamespaceTerminating",
                        "message": format!("namespace {ns} is being terminated"),
                        "field": "metadata.namespace"}]);
                }
                Err(e)
            }
            Some(_) => Ok(()),
        }
    }

    fn alloc_cluster_ip(&self) -> String {
        let used: HashSet<String> = self
            .store
            .list(STORAGE_SERVICES, None)
            .iter()
            .filter_map(|s| s.pointer("/spec/clusterIP").and_then(Value::as_str))
            .map(String::from)
            .collect();
        // 10.96.0.0/12: .0.1 is the kubernetes Service; start at a random spot
        let start = (uuid::Uuid::new_v4().as_u128() % 60000) as u32 + 10;
        for i in 0..65000u32 {
            let n = (start + i) % 65000 + 2;
            let ip = format!("10.96.{}.{}", n / 256, n % 256);
            if !n.is_multiple_of(256) && n % 256 != 255 && !used.contains(&ip) {
                return ip;
            }
        }
        "10.96.255.254".into()
    }

    fn alloc_node_port(&self) -> i64 {
        let used: HashSet<i64> = self
            .store
            .list(STORAGE_SERVICES, None)
            .iter()
            .flat_map(|s| {
                s.pointer("/spec/ports")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|p| p["nodePort"].as_i64())
            .collect();
        (30000..32768).find(|p| !used.contains(p)).unwrap_or(32767)
    }

    // ---- schema -------------------------------------------------------

    /// Prunes, defaults and validates a custom object; returns warnings.
    fn custom_schema(
        &self,
        rt: &ResourceType,
        obj: &mut Value,
        opts: &WriteOpts,
        errs: &mut Vec<FieldError>,
    ) -> Result<Vec<String>, ApiError> {
        let Some(crd) = &rt.crd else {
            return Ok(Vec::new());
        };
        let mut warnings = Vec::new();
        if let Some(w) = &crd.deprecated {
            warnings.push(w.clone());
        }
        let Some(s) = &crd.schema else {
            return Ok(warnings);
        };
        let (unknown, e) = schema::process(s, obj);
        errs.extend(e);
        match opts.field_validation.as_str() {
            "Strict" if !unknown.is_empty() => {
                let list: Vec<String> = unknown
                    .iter()
                    .map(|u| format!("unknown field \"{u}\""))
                    .collect();
                return Err(ApiError::bad_request(format!(
                    "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
                    list.join(", "),
                    kind = rt.kind,
                    version = rt.version,
                )));
            }
            "Ignore" => {}
            _ => warnings.extend(unknown.iter().map(|u| format!("unknown field \"{u}\""))),
        }
        Ok(warnings)
    }

    // ---- create ---------------------------------------------------------

    fn check_body_type(rt: &ResourceType, body: &mut Value) -> Result<(), ApiError> {
        let Some(m) = body.as_object_mut() else {
            return Err(ApiError::bad_request(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml",
            ));
        };
        let av = rt.api_version();
        match m.get("apiVersion").and_then(Value::as_str) {
            None | Some("") => {
                m.insert("apiVersion".into(), json!(av));
            }
            Some(x) if x != av => {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({x}) does not match the expected API version ({av})"
                )));
            }
            _ => {}
        }
        match m.get("kind").and_then(Value::as_str) {
            None | Some("") => {
                m.insert("kind".into(), json!(rt.kind));
            }
            Some(x) if x != rt.kind => {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({x}) does not match the expected kind ({})",
                    rt.kind
                )));
            }
            _ => {}
        }
        if !m.get("metadata").is_some_and(Value::is_object) {
            m.insert("metadata".into(), json!({}));
        }
        Ok(())
    }

    fn check_namespace_field(rt: &ResourceType, obj: &mut Value, ns: &str) -> Result<(), ApiError> {
        if rt.namespaced {
            let body_ns = meta_str(obj, "namespace").to_string();
            if !body_ns.is_empty() && body_ns != ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            set_meta(obj, "namespace", json!(ns));
        } else {
            remove_meta(obj, "namespace");
        }
        Ok(())
    }

    pub fn create(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        mut body: Value,
        opts: &WriteOpts,
    ) -> Result<Written, ApiError> {
        Self::check_body_type(rt, &mut body)?;
        if rt.plural == "selfsubjectaccessreviews" {
            // reviews are answered, not stored; everything is allowed here
            body["status"] = json!({"allowed": true,
                "reason": "the sandbox API server allows every request"});
            return Ok(Written {
                object: body,
                created: true,
                warnings: Vec::new(),
            });
        }
        if rt.plural == "tokenreviews" || rt.plural == "subjectaccessreviews" {
            if rt.plural == "tokenreviews" {
                super::authz::token_review(&self.store, &self.tokens, &mut body);
            } else {
                super::authz::subject_access_review(&self.store, &mut body);
            }
            return Ok(Written {
                object: body,
                created: true,
                warnings: Vec::new(),
            });
        }
        if rt.plural == "secrets" && rt.group.is_empty() {
            super::authz::fill_token_secret(&mut body, ns);
        }
        if rt.plural == "pods" && rt.group.is_empty() {
            self.admit_service_account(ns, &mut body)?;
        }
        if !meta_str(&body, "resourceVersion").is_empty() {
            return Err(ApiError::internal(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        self.create_object(rt, ns, body, opts, Fields::Update(&opts.manager.clone()))
    }

    fn create_object(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        mut obj: Value,
        opts: &WriteOpts,
        fields: Fields<'_>,
    ) -> Result<Written, ApiError> {
        Self::check_namespace_field(rt, &mut obj, ns)?;
        let mut name = meta_str(&obj, "name").to_string();
        let generate = meta_str(&obj, "generateName").to_string();
        if name.is_empty() && !generate.is_empty() {
            name = format!("{generate}{}", random_suffix());
            set_meta(&mut obj, "name", json!(name));
        }
        self.check_namespace(rt, ns, &name)?;
        if let Some(crd) = &rt.crd
            && self
                .store
                .get(STORAGE_CRDS, "", &crd.crd_name)
                .is_some_and(is_deleting)
        {
            return Err(ApiError::method_not_allowed_for(
                &rt.group,
                &rt.plural,
                &name,
                "create not allowed while custom resource definition is terminating",
            ));
        }
        let mut errs = Vec::new();
        if name.is_empty() {
            errs.push(FieldError::required(
                "metadata.name",
                "name or generateName is required",
            ));
        } else {
            errs.extend(builtin::validate_name(rt, &name));
        }
        errs.extend(builtin::validate_meta(&obj));
        // server-managed metadata
        let uid = new_uid();
        for k in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "selfLink",
            "resourceVersion",
        ] {
            remove_meta(&mut obj, k);
        }
        if !matches!(fields, Fields::Precomputed) {
            remove_meta(&mut obj, "managedFields");
        }
        if rt.status
            && let Some(m) = obj.as_object_mut()
        {
            m.remove("status");
        }
        if rt.group == "events.k8s.io" {
            errs.extend(builtin::validate_v1_event(&obj));
        }
        if !rt.is_custom() {
            let mut ip = || self.alloc_cluster_ip();
            let np_start = self.alloc_node_port();
            let mut np_next = np_start;
            let mut np = || {
                let p = np_next;
                np_next += 1;
                p
            };
            let mut ctx = CreateCtx {
                uid: &uid,
                name: &name,
                alloc_cluster_ip: &mut ip,
                alloc_node_port: &mut np,
            };
            errs.extend(builtin::prepare_create(rt, &mut obj, &mut ctx));
        }
        let warnings = self.custom_schema(rt, &mut obj, opts, &mut errs)?;
        if !errs.is_empty() {
            return Err(ApiError::invalid(&rt.group, &rt.kind, &name, &errs));
        }
        set_meta(&mut obj, "uid", json!(uid));
        set_meta(&mut obj, "creationTimestamp", json!(time::now_string()));
        if rt.generation != Generation::None {
            set_meta(&mut obj, "generation", json!(1));
        }
        if rt.storage == STORAGE_CRDS {
            let mut f = finalizers(&obj);
            if !f.iter().any(|x| x == CRD_CLEANUP) {
                f.push(CRD_CLEANUP.to_string());
            }
            set_finalizers(&mut obj, &f);
        }
        if let Fields::Update(manager) = fields {
            let w = Writer {
                manager,
                api_version: &rt.api_version(),
                subresource: "",
                shape: shape(rt),
                scope: scope(rt, ""),
            };
            managed::record_update(None, &mut obj, &w);
        }
        let key_ns = if rt.namespaced { ns } else { "" };
        if self.store.get(&rt.storage, key_ns, &name).is_some() {
            return Err(ApiError::already_exists(&rt.group, &rt.plural, &name));
        }
        if opts.dry_run {
            return Ok(Written {
                object: obj,
                created: true,
                warnings,
            });
        }
        let stored = self.put_new(&rt.storage, to_storage(rt, &obj));
        if rt.storage == STORAGE_NAMESPACES {
            self.ensure_default_service_account(&name);
        }
        Ok(Written {
            object: to_request(rt, &stored),
            created: true,
            warnings,
        })
    }

    /// Every namespace gets a `default` ServiceAccount.
    /// The ServiceAccount admission plugin: a pod runs as its
    /// ServiceAccount (`default` unless named), which must exist, and
    /// unless automounting is off it gets the `kube-api-access-*`
    /// projected volume (token, the cluster's CA, its namespace) mounted
    /// where in-cluster clients read it, in every container.
    fn admit_service_account(&self, ns: &str, pod: &mut Value) -> Result<(), ApiError> {
        const MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
        let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
            return Ok(());
        };
        let sa = spec
            .get("serviceAccountName")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .or_else(|| spec.get("serviceAccount").and_then(Value::as_str))
            .filter(|s| !s.is_empty())
            .unwrap_or("default")
            .to_string();
        spec.insert("serviceAccountName".into(), json!(sa));
        spec.insert("serviceAccount".into(), json!(sa));
        let Some(account) = self.store.get(STORAGE_SERVICEACCOUNTS, ns, &sa) else {
            return Err(ApiError::forbidden(
                "",
                "pods",
                "",
                &format!(
                    "error looking up service account {ns}/{sa}: serviceaccount \"{sa}\" not found"
                ),
            ));
        };
        let automount = spec
            .get("automountServiceAccountToken")
            .and_then(Value::as_bool)
            .or_else(|| account["automountServiceAccountToken"].as_bool())
            .unwrap_or(true);
        if !automount {
            return Ok(());
        }
        let mounted = ["containers", "initContainers"].iter().any(|k| {
            spec.get(*k)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .flat_map(|c| c["volumeMounts"].as_array().cloned().unwrap_or_default())
                .any(|m| m["mountPath"] == MOUNT)
        });
        if mounted {
            return Ok(());
        }
        let volume = format!("kube-api-access-{}", random_suffix());
        let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
        if let Some(v) = volumes.as_array_mut() {
            v.push(json!({
                "name": volume,
                "projected": {
                    "defaultMode": 420,
                    "sources": [
                        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                        {"configMap": {"name": ROOT_CA_CONFIGMAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                        {"downwardAPI": {"items": [{"path": "namespace",
                            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
                    ],
                },
            }));
        }
        for k in ["containers", "initContainers"] {
            if let Some(cs) = spec.get_mut(k).and_then(Value::as_array_mut) {
                for c in cs.iter_mut() {
                    if let Some(c) = c.as_object_mut() {
                        let mounts = c.entry("volumeMounts").or_insert_with(|| json!([]));
                        if let Some(m) = mounts.as_array_mut() {
                            m.push(json!({"name": volume, "mountPath": MOUNT, "readOnly": true}));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    pub fn ensure_default_service_account(&mut self, ns: &str) {
        if self
            .store
            .get(STORAGE_SERVICEACCOUNTS, ns, "default")
            .is_some()
        {
            return;
        }
        let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "default", "namespace": ns, "uid": new_uid(),
                         "creationTimestamp": time::now_string()}});
        self.put_new(STORAGE_SERVICEACCOUNTS, sa);
    }

    // ---- update ---------------------------------------------------------

    pub fn replace(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        sub: &str,
        mut body: Value,
        opts: &WriteOpts,
    ) -> Result<Written, ApiError> {
        if sub == "scale" {
            return self.write_scale(rt, ns, name, ScaleWrite::Replace(body), opts);
        }
        Self::check_body_type(rt, &mut body)?;
        let body_name = meta_str(&body, "name").to_string();
        if body_name.is_empty() {
            set_meta(&mut body, "name", json!(name));
        } else if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let key_ns = if rt.namespaced { ns } else { "" };
        let Some(existing) = self.store.get(&rt.storage, key_ns, name).cloned() else {
            if rt.create_on_update && sub.is_empty() {
                remove_meta(&mut body, "resourceVersion");
                return self.create_object(
                    rt,
                    ns,
                    body,
                    opts,
                    Fields::Update(&opts.manager.clone()),
                );
            }
            return Err(ApiError::not_found(&rt.group, &rt.plural, name));
        };
        Self::check_namespace_field(rt, &mut body, ns)?;
        self.commit_update(
            rt,
            &existing,
            body,
            sub,
            opts,
            Fields::Update(&opts.manager.clone()),
        )
    }

    /// The update pipeline: `new` (request version) replaces `existing`
    /// (storage form).
    fn commit_update(
        &mut self,
        rt: &ResourceType,
        existing: &Value,
        mut new: Value,
        sub: &str,
        opts: &WriteOpts,
        fields: Fields<'_>,
    ) -> Result<Written, ApiError> {
        let old = to_request(rt, existing);
        let name = meta_str(&old, "name").to_string();
        // preconditions
        let want_rv = meta_str(&new, "resourceVersion").to_string();
        let cur_rv = meta_str(&old, "resourceVersion").to_string();
        if !want_rv.is_empty() && want_rv != cur_rv {
            return Err(ApiError::stale(&rt.group, &rt.plural, &name));
        }
        if want_rv.is_empty() && !rt.unconditional_update && matches!(fields, Fields::Update(_)) {
            return Err(ApiError::invalid(
                &rt.group,
                &rt.kind,
                &name,
                &[FieldError::invalid(
                    "metadata.resourceVersion",
                    json!("0x0"),
                    "must be specified for an update",
                )],
            ));
        }
        let want_uid = meta_str(&new, "uid").to_string();
        let cur_uid = meta_str(&old, "uid").to_string();
        if !want_uid.is_empty() && want_uid != cur_uid {
            return Err(ApiError::conflict(
                &rt.group,
                &rt.plural,
                &name,
                &format!(
                    "Precondition failed: UID in precondition: {want_uid}, UID in object meta: {cur_uid}"
                ),
            ));
        }
        // server-managed metadata comes from the stored object
        for k in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "namespace",
            "name",
            "resourceVersion",
        ] {
            match old.pointer(&format!("/metadata/{k}")) {
                Some(v) => set_meta(&mut new, k, v.clone()),
                None => remove_meta(&mut new, k),
            }
        }
        remove_meta(&mut new, "selfLink");
        if matches!(fields, Fields::Update(_)) {
            // managedFields are the server's to compute
            match old.pointer("/metadata/managedFields") {
                Some(v) => set_meta(&mut new, "managedFields", v.clone()),
                None => remove_meta(&mut new, "managedFields"),
            }
        }
        let mut errs = Vec::new();
        if is_deleting(&old) {
            let before = finalizers(&old);
            let added: Vec<String> = finalizers(&new)
                .into_iter()
                .filter(|f| !before.contains(f))
                .collect();
            if !added.is_empty() {
                errs.push(FieldError::forbidden(
                    "metadata.finalizers",
                    &format!(
                        "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                        added.iter().map(|a| format!("{a:?}")).collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
        // what each endpoint may change
        if sub == "status" {
            let status = new.get("status").cloned();
            let mf = new.pointer("/metadata/managedFields").cloned();
            new = old.clone();
            if let Some(m) = new.as_object_mut() {
                match status {
                    Some(s) => m.insert("status".into(), s),
                    None => m.remove("status"),
                };
            }
            match mf {
                Some(v) => set_meta(&mut new, "managedFields", v),
                None => remove_meta(&mut new, "managedFields"),
            }
        } else if rt.status
            && let Some(m) = new.as_object_mut()
        {
            match old.get("status") {
                Some(s) => m.insert("status".into(), s.clone()),
                None => m.remove("status"),
            };
        }
        if sub.is_empty() {
            errs.extend(builtin::validate_meta(&new));
        }
        if !rt.is_custom() {
            errs.extend(builtin::prepare_update(rt, &old, &mut new, sub));
        }
        let warnings = self.custom_schema(rt, &mut new, opts, &mut errs)?;
        if !errs.is_empty() {
            return Err(ApiError::invalid(&rt.group, &rt.kind, &name, &errs));
        }
        // generation
        let generation = old.pointer("/metadata/generation").and_then(Value::as_i64);
        let bump = sub.is_empty()
            && match rt.generation {
                Generation::None => false,
                Generation::Spec => old.get("spec") != new.get("spec"),
                Generation::NonMetadata => non_metadata(&old) != non_metadata(&new),
            };
        if bump {
            set_meta(&mut new, "generation", json!(generation.unwrap_or(0) + 1));
        }
        if let Fields::Update(manager) = fields {
            let w = Writer {
                manager,
                api_version: &rt.api_version(),
                subresource: sub,
                shape: shape(rt),
                scope: scope(rt, sub),
            };
            managed::record_update(Some(&old), &mut new, &w);
        }
        let stored_new = to_storage(rt, &new);
        if comparable(&stored_new) == comparable(existing) {
            return Ok(Written {
                object: old,
                created: false,
                warnings,
            });
        }
        if opts.dry_run {
            return Ok(Written {
                object: new,
                created: false,
                warnings,
            });
        }
        let stored = self.put_or_finish(&rt.storage, stored_new);
        Ok(Written {
            object: to_request(rt, &stored),
            created: false,
            warnings,
        })
    }

    // ---- patch ----------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        sub: &str,
        ptype: PatchType,
        body: Value,
        opts: &WriteOpts,
    ) -> Result<Written, ApiError> {
        if ptype == PatchType::Strategic && rt.is_custom() {
            return Err(ApiError::unsupported_media_type(&patch::CUSTOM_PATCH_TYPES));
        }
        if sub == "scale" {
            return self.write_scale(rt, ns, name, ScaleWrite::Patch(ptype, body), opts);
        }
        if ptype == PatchType::Apply {
            return self.apply(rt, ns, name, sub, body, opts);
        }
        let key_ns = if rt.namespaced { ns } else { "" };
        let Some(existing) = self.store.get(&rt.storage, key_ns, name).cloned() else {
            return Err(ApiError::not_found(&rt.group, &rt.plural, name));
        };
        let current = to_request(rt, &existing);
        let patched = match ptype {
            PatchType::Merge => patch::merge_patch(&current, &body)?,
            PatchType::Json => patch::json_patch(&current, &body)?,
            PatchType::Strategic => patch::strategic_merge(&current, &body)?,
            PatchType::Apply => current.clone(),
        };
        let mut patched = patched;
        if !patched.is_object() {
            return Err(ApiError::bad_request("the patched object is not an object"));
        }
        if meta_str(&patched, "name") != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                meta_str(&patched, "name")
            )));
        }
        Self::check_body_type(rt, &mut patched)?;
        self.commit_update(
            rt,
            &existing,
            patched,
            sub,
            opts,
            Fields::Update(&opts.manager.clone()),
        )
    }

    fn apply(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        sub: &str,
        mut config: Value,
        opts: &WriteOpts,
    ) -> Result<Written, ApiError> {
        if opts.manager.is_empty() {
            return Err(ApiError::bad_request(
                "PATCH, which is used for server-side apply, requires the fieldManager query parameter",
            ));
        }
        if !config.is_object() {
            return Err(ApiError::bad_request(
                "the applied configuration is not an object",
            ));
        }
        let av = config["apiVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let kind = config["kind"].as_str().unwrap_or_default().to_string();
        if av.is_empty() || kind.is_empty() {
            return Err(ApiError::bad_request(format!(
                "invalid object type: {}, Kind={kind}",
                if av.is_empty() { "/" } else { &av }
            )));
        }
        Self::check_body_type(rt, &mut config)?;
        if config.pointer("/metadata/managedFields").is_some() {
            return Err(ApiError::bad_request("metadata.managedFields must be nil"));
        }
        let cfg_name = meta_str(&config, "name").to_string();
        if cfg_name.is_empty() {
            set_meta(&mut config, "name", json!(name));
        } else if cfg_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({cfg_name}) does not match the name on the URL ({name})"
            )));
        }
        Self::check_namespace_field(rt, &mut config, ns)?;
        let want_rv = meta_str(&config, "resourceVersion").to_string();
        // what this endpoint applies
        if sub == "status" {
            let status = config.get("status").cloned();
            let meta = json!({"name": name, "namespace": meta_str(&config, "namespace")});
            config = json!({"apiVersion": config["apiVersion"], "kind": config["kind"], "metadata": meta});
            if let Some(s) = status {
                config["status"] = s;
            }
        } else if rt.status
            && let Some(m) = config.as_object_mut()
        {
            m.remove("status");
        }
        let api_version = rt.api_version();
        let w = Writer {
            manager: &opts.manager,
            api_version: &api_version,
            subresource: sub,
            shape: shape(rt),
            scope: scope(rt, sub),
        };
        let key_ns = if rt.namespaced { ns } else { "" };
        match self.store.get(&rt.storage, key_ns, name).cloned() {
            None => {
                if !sub.is_empty() {
                    return Err(ApiError::not_found(&rt.group, &rt.plural, name));
                }
                remove_meta(&mut config, "resourceVersion");
                let obj = managed::apply(None, &config, opts.force, &w)?;
                self.create_object(rt, ns, obj, opts, Fields::Precomputed)
            }
            Some(existing) => {
                let live = to_request(rt, &existing);
                if !want_rv.is_empty() && want_rv != meta_str(&live, "resourceVersion") {
                    return Err(ApiError::stale(&rt.group, &rt.plural, name));
                }
                let merged = managed::apply(Some(&live), &config, opts.force, &w)?;
                self.commit_update(rt, &existing, merged, sub, opts, Fields::Precomputed)
            }
        }
    }

    // ---- scale ----------------------------------------------------------

    /// The autoscaling/v1 Scale of an object (request version).
    pub fn scale_of(rt: &ResourceType, obj: &Value) -> Value {
        let spec = rt.scale.clone().unwrap_or(super::types::ScaleSpec {
            spec_replicas: ".spec.replicas".into(),
            status_replicas: ".status.replicas".into(),
            label_selector: None,
        });
        let read = |p: &str| -> i64 {
            super::jsonpath::JsonPath::parse(p)
                .ok()
                .and_then(|jp| jp.first(obj).and_then(Value::as_i64))
                .unwrap_or(0)
        };
        let selector = if rt.is_custom() {
            spec.label_selector
                .as_deref()
                .and_then(|p| super::jsonpath::JsonPath::parse(p).ok())
                .and_then(|jp| jp.first(obj).and_then(Value::as_str).map(String::from))
        } else {
            obj.pointer("/spec/selector")
                .and_then(|s| LabelSelector::from_object(s).ok())
                .map(|s| s.canonical())
        };
        let mut meta = Map::new();
        for k in [
            "name",
            "namespace",
            "uid",
            "resourceVersion",
            "creationTimestamp",
        ] {
            if let Some(v) = obj.pointer(&format!("/metadata/{k}")) {
                meta.insert(k.into(), v.clone());
            }
        }
        let mut status = json!({"replicas": read(&spec.status_replicas)});
        if let Some(s) = selector {
            status["selector"] = json!(s);
        }
        json!({
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": meta,
            "spec": {"replicas": read(&spec.spec_replicas)},
            "status": status,
        })
    }

    fn write_scale(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        w: ScaleWrite,
        opts: &WriteOpts,
    ) -> Result<Written, ApiError> {
        let Some(spec) = rt.scale.clone() else {
            return Err(ApiError::no_route());
        };
        let key_ns = if rt.namespaced { ns } else { "" };
        let Some(existing) = self.store.get(&rt.storage, key_ns, name).cloned() else {
            return Err(ApiError::not_found(&rt.group, &rt.plural, name));
        };
        let current = to_request(rt, &existing);
        let scale = Self::scale_of(rt, &current);
        let new_scale = match w {
            ScaleWrite::Replace(b) => b,
            ScaleWrite::Patch(PatchType::Merge, b) => patch::merge_patch(&scale, &b)?,
            ScaleWrite::Patch(PatchType::Json, b) => patch::json_patch(&scale, &b)?,
            ScaleWrite::Patch(PatchType::Strategic, b) => patch::strategic_merge(&scale, &b)?,
            ScaleWrite::Patch(PatchType::Apply, b) => patch::merge_patch(&scale, &b)?,
        };
        let replicas = new_scale
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if replicas < 0 {
            return Err(ApiError::invalid(
                "autoscaling",
                "Scale",
                name,
                &[FieldError::invalid(
                    "spec.replicas",
                    json!(replicas),
                    "must be greater than or equal to 0",
                )],
            ));
        }
        let want_rv = meta_str(&new_scale, "resourceVersion").to_string();
        let mut obj = current.clone();
        if !want_rv.is_empty() {
            set_meta(&mut obj, "resourceVersion", json!(want_rv));
        }
        let path = super::jsonpath::JsonPath::parse(&spec.spec_replicas)
            .ok()
            .and_then(|p| p.fields())
            .unwrap_or_else(|| vec!["spec".into(), "replicas".into()]);
        let mut cur = &mut obj;
        for (i, f) in path.iter().enumerate() {
            let Some(m) = cur.as_object_mut() else {
                break;
            };
            if i == path.len() - 1 {
                m.insert(f.clone(), json!(replicas));
                break;
            }
            cur = m.entry(f.clone()).or_insert_with(|| json!({}));
        }
        let written = self.commit_update(
            rt,
            &existing,
            obj,
            "",
            opts,
            Fields::Update(&opts.manager.clone()),
        )?;
        Ok(Written {
            object: Self::scale_of(rt, &written.object),
            created: false,
            warnings: written.warnings,
        })
    }

    // ---- pods: binding and eviction -------------------------------------

    pub fn bind(
        &mut self,
        ns: &str,
        name: &str,
        body: &Value,
        opts: &WriteOpts,
    ) -> Result<Value, ApiError> {
        let node = body
            .pointer("/target/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if node.is_empty() {
            return Err(ApiError::invalid(
                "",
                "Binding",
                name,
                &[FieldError::required("target.name", "")],
            ));
        }
        let Some(existing) = self.store.get(STORAGE_PODS, ns, name).cloned() else {
            return Err(ApiError::not_found("", "pods", name));
        };
        let cur = existing
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !cur.is_empty() {
            return Err(ApiError::conflict(
                "",
                "pods/binding",
                name,
                &format!("pod {name} is already assigned to node \"{cur}\""),
            ));
        }
        if !opts.dry_run {
            let mut pod = existing.clone();
            pod["spec"]["nodeName"] = json!(node);
            if let Some(Value::Array(conds)) = pod.pointer_mut("/status/conditions") {
                conds.retain(|c| c["type"] != json!("PodScheduled"));
            }
            let cond = json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null,
                              "lastTransitionTime": time::now_string()});
            match pod.pointer_mut("/status/conditions") {
                Some(Value::Array(conds)) => conds.push(cond),
                _ => pod["status"]["conditions"] = json!([cond]),
            }
            self.put(STORAGE_PODS, pod);
        }
        Ok(
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        )
    }

    pub fn evict(
        &mut self,
        ns: &str,
        name: &str,
        body: &Value,
        opts: &WriteOpts,
    ) -> Result<Value, ApiError> {
        let Some(pod) = self.store.get(STORAGE_PODS, ns, name).cloned() else {
            return Err(ApiError::not_found("", "pods", name));
        };
        let pdbs: Vec<Value> = self
            .store
            .list(STORAGE_PDBS, Some(ns))
            .into_iter()
            .filter(|p| {
                p.pointer("/spec/selector")
                    .and_then(|s| LabelSelector::from_object(s).ok())
                    .is_some_and(|s| !s.is_empty() && s.matches(&pod))
            })
            .cloned()
            .collect();
        if pdbs.len() > 1 {
            return Err(ApiError::internal(
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            ));
        }
        if let Some(pdb) = pdbs.first() {
            let allowed = pdb
                .pointer("/status/disruptionsAllowed")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if allowed < 1 {
                let pdb_name = meta_str(pdb, "name");
                return Err(ApiError {
                    code: 429,
                    reason: "TooManyRequests".into(),
                    message: "Cannot evict pod as it would violate the pod's disruption budget."
                        .into(),
                    details: Some(json!({"causes": [{"reason": "DisruptionBudget",
                        "message": format!("The disruption budget {pdb_name} needs {} healthy pods and has {} currently",
                            pdb.pointer("/status/desiredHealthy").and_then(Value::as_i64).unwrap_or(0),
                            pdb.pointer("/status/currentHealthy").and_then(Value::as_i64).unwrap_or(0))}]})),
                });
            }
            if !opts.dry_run {
                let mut p = pdb.clone();
                p["status"]["disruptionsAllowed"] = json!(allowed - 1);
                let mut disrupted = p
                    .pointer("/status/disruptedPods")
                    .cloned()
                    .unwrap_or_else(|| json!({}));
                disrupted[name] = json!(time::now_string());
                p["status"]["disruptedPods"] = disrupted;
                self.put(STORAGE_PDBS, p);
            }
        }
        let grace = body
            .pointer("/deleteOptions/gracePeriodSeconds")
            .and_then(Value::as_i64);
        let rt = self
            .registry
            .find("", "v1", "pods")
            .cloned()
            .ok_or_else(ApiError::no_route)?;
        self.delete(
            &rt,
            ns,
            name,
            &DeleteOpts {
                grace,
                dry_run: opts.dry_run,
                ..DeleteOpts::default()
            },
        )?;
        Ok(
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        )
    }

    // ---- delete ---------------------------------------------------------

    pub fn delete(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        d: &DeleteOpts,
    ) -> Result<Deleted, ApiError> {
        let key_ns = if rt.namespaced { ns } else { "" };
        let Some(existing) = self.store.get(&rt.storage, key_ns, name).cloned() else {
            return Err(ApiError::not_found(&rt.group, &rt.plural, name));
        };
        if let Some(uid) = d.uid.as_deref().filter(|u| !u.is_empty()) {
            let cur = meta_str(&existing, "uid");
            if uid != cur {
                return Err(ApiError::conflict(
                    &rt.group,
                    &rt.plural,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {cur}"
                    ),
                ));
            }
        }
        if let Some(rv) = d.resource_version.as_deref().filter(|r| !r.is_empty()) {
            let cur = meta_str(&existing, "resourceVersion");
            if rv != cur {
                return Err(ApiError::conflict(
                    &rt.group,
                    &rt.plural,
                    name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {cur}"
                    ),
                ));
            }
        }
        if rt.storage == STORAGE_NAMESPACES && IMMORTAL.contains(&name) {
            return Err(ApiError::forbidden(
                "",
                "namespaces",
                name,
                "this namespace may not be deleted",
            ));
        }
        let mut obj = existing.clone();
        let mut fins = finalizers(&obj);
        let mut changed = false;
        match d.propagation.as_deref() {
            Some("Orphan") => {
                if !fins.iter().any(|f| f == "orphan") {
                    fins.push("orphan".into());
                    changed = true;
                }
            }
            Some("Foreground") => {
                if !fins.iter().any(|f| f == "foregroundDeletion") {
                    fins.push("foregroundDeletion".into());
                    changed = true;
                }
            }
            Some("Background") | None => {}
            Some(other) => {
                return Err(ApiError::invalid(
                    "meta.k8s.io",
                    "DeleteOptions",
                    "",
                    &[FieldError::not_supported(
                        "propagationPolicy",
                        json!(other),
                        &[
                            "Foreground".into(),
                            "Background".into(),
                            "Orphan".into(),
                            "nil".into(),
                        ],
                    )],
                ));
            }
        }
        // graceful pod deletion: a pod bound to an existing node waits for
        // its kubelet to confirm with a zero grace period
        let mut graceful = false;
        if rt.storage == STORAGE_PODS {
            let node = existing
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let phase = existing
                .pointer("/status/phase")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let grace = d.grace.unwrap_or_else(|| {
                existing
                    .pointer("/spec/terminationGracePeriodSeconds")
                    .and_then(Value::as_i64)
                    .unwrap_or(30)
            });
            let node_exists = !node.is_empty() && self.store.get(STORAGE_NODES, "", node).is_some();
            let terminal = phase == "Succeeded" || phase == "Failed";
            if node_exists && !terminal && grace > 0 {
                let current = existing
                    .pointer("/metadata/deletionGracePeriodSeconds")
                    .and_then(Value::as_i64);
                if current.is_none_or(|c| grace < c) {
                    let at = time::now()
                        .checked_add(jiff::SignedDuration::from_secs(grace))
                        .unwrap_or_else(|_| time::now());
                    set_meta(&mut obj, "deletionTimestamp", json!(time::rfc3339(at)));
                    set_meta(&mut obj, "deletionGracePeriodSeconds", json!(grace));
                    changed = true;
                }
                graceful = true;
            }
        }
        if rt.storage == STORAGE_NAMESPACES {
            if !is_deleting(&obj) {
                set_meta(&mut obj, "deletionTimestamp", json!(time::now_string()));
                obj["status"]["phase"] = json!("Terminating");
                changed = true;
            }
            set_finalizers(&mut obj, &fins);
            if d.dry_run || !changed {
                return Ok(Deleted::Pending(to_request(rt, &obj)));
            }
            let stored = self.put(&rt.storage, obj);
            return Ok(Deleted::Pending(to_request(rt, &stored)));
        }
        if !fins.is_empty() || graceful {
            if !is_deleting(&obj) {
                set_meta(&mut obj, "deletionTimestamp", json!(time::now_string()));
                set_meta(&mut obj, "deletionGracePeriodSeconds", json!(0));
                changed = true;
            }
            set_finalizers(&mut obj, &fins);
            if d.dry_run || !changed {
                return Ok(Deleted::Pending(to_request(rt, &obj)));
            }
            let stored = self.put(&rt.storage, obj);
            return Ok(Deleted::Pending(to_request(rt, &stored)));
        }
        if d.dry_run {
            return Ok(Deleted::Gone(to_request(rt, &existing)));
        }
        let gone = self
            .drop_object(&rt.storage, key_ns, name)
            .unwrap_or(existing);
        Ok(Deleted::Gone(to_request(rt, &gone)))
    }

    // ---- internal writes of the controllers ------------------------------

    /// Deletes an object as the garbage collector would (background).
    pub fn delete_internal(
        &mut self,
        storage: &str,
        ns: &str,
        name: &str,
        propagation: Option<&str>,
    ) {
        if let Some(rt) = self.type_for_storage(storage) {
            let _ = self.delete(
                &rt,
                ns,
                name,
                &DeleteOpts {
                    propagation: propagation.map(String::from),
                    ..DeleteOpts::default()
                },
            );
        }
    }

    /// Writes an object changed by a controller (storage form).
    pub fn update_internal(&mut self, storage: &str, obj: Value) {
        let ns = meta_str(&obj, "namespace").to_string();
        let name = meta_str(&obj, "name").to_string();
        match self.store.get(storage, &ns, &name) {
            Some(cur) if comparable(cur) == comparable(&obj) => {}
            Some(_) => {
                self.put_or_finish(storage, obj);
            }
            None => {}
        }
    }

    /// Creates an object for a controller (storage form, metadata set).
    pub fn create_internal(&mut self, storage: &str, mut obj: Value) {
        if meta_str(&obj, "uid").is_empty() {
            set_meta(&mut obj, "uid", json!(new_uid()));
        }
        if meta_str(&obj, "creationTimestamp").is_empty() {
            set_meta(&mut obj, "creationTimestamp", json!(time::now_string()));
        }
        self.put_new(storage, obj);
    }

    /// A Table answer for objects of a type.
    pub fn table(
        rt: &ResourceType,
        items: &[Value],
        include: table::Include,
        meta: Value,
        version: &str,
    ) -> Value {
        table::table(rt, items, include, true, meta, version)
    }
}

enum ScaleWrite {
    Replace(Value),
    Patch(PatchType, Value),
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    fn state() -> State {
        let mut s = State::new(1000);
        s.create_internal(STORAGE_NAMESPACES, json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "default"}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}));
        s
    }

    pub(in crate::apiserver) fn rt(s: &State, group: &str, plural: &str) -> ResourceType {
        s.registry
            .all()
            .iter()
            .find(|t| t.group == group && t.plural == plural)
            .cloned()
            .unwrap()
    }

    pub(in crate::apiserver) fn opts() -> WriteOpts {
        WriteOpts {
            manager: "test".into(),
            ..WriteOpts::default()
        }
    }

    #[test]
    fn create_get_update_conflict_delete() {
        let mut s = state();
        let cm = rt(&s, "", "configmaps");
        let w = s
            .create(
                &cm,
                "default",
                json!({"metadata": {"name": "a"}, "data": {"k": "v"}}),
                &opts(),
            )
            .unwrap();
        assert!(w.created);
        let rv = meta_str(&w.object, "resourceVersion").to_string();
        assert!(!meta_str(&w.object, "uid").is_empty());
        assert!(w.object.pointer("/metadata/generation").is_none());
        let e = s
            .create(&cm, "default", json!({"metadata": {"name": "a"}}), &opts())
            .unwrap_err();
        assert_eq!(e.code, 409);
        assert_eq!(e.reason, "AlreadyExists");
        let e = s
            .create(&cm, "nope", json!({"metadata": {"name": "a"}}), &opts())
            .unwrap_err();
        assert_eq!(e.message, "namespaces \"nope\" not found");
        let mut upd = w.object.clone();
        upd["data"]["k"] = json!("w");
        let w2 = s
            .replace(&cm, "default", "a", "", upd.clone(), &opts())
            .unwrap();
        assert_ne!(meta_str(&w2.object, "resourceVersion"), rv);
        let e = s
            .replace(&cm, "default", "a", "", upd, &opts())
            .unwrap_err();
        assert_eq!(e.reason, "Conflict");
        assert_eq!(
            e.message,
            "Operation cannot be fulfilled on configmaps \"a\": the object has been modified; please apply your changes to the latest version and try again"
        );
        // a no-op update keeps the resourceVersion
        let same = s
            .replace(&cm, "default", "a", "", w2.object.clone(), &opts())
            .unwrap();
        assert_eq!(
            meta_str(&same.object, "resourceVersion"),
            meta_str(&w2.object, "resourceVersion")
        );
        match s
            .delete(&cm, "default", "a", &DeleteOpts::default())
            .unwrap()
        {
            Deleted::Gone(_) => {}
            Deleted::Pending(_) => panic!("should be gone"),
        }
        assert_eq!(s.get(&cm, "default", "a").unwrap_err().code, 404);
    }

    #[test]
    fn finalizers_hold_deletion() {
        let mut s = state();
        let cm = rt(&s, "", "configmaps");
        s.create(
            &cm,
            "default",
            json!({"metadata": {"name": "f", "finalizers": ["x/y"]}}),
            &opts(),
        )
        .unwrap();
        let pending = match s
            .delete(&cm, "default", "f", &DeleteOpts::default())
            .unwrap()
        {
            Deleted::Pending(o) => o,
            Deleted::Gone(_) => panic!("finalizer ignored"),
        };
        assert!(is_deleting(&pending));
        let e = s
            .patch(
                &cm,
                "default",
                "f",
                "",
                PatchType::Merge,
                json!({"metadata": {"finalizers": ["x/y", "z"]}}),
                &opts(),
            )
            .unwrap_err();
        assert_eq!(e.code, 422);
        let w = s
            .patch(
                &cm,
                "default",
                "f",
                "",
                PatchType::Json,
                json!([{"op": "remove", "path": "/metadata/finalizers"}]),
                &opts(),
            )
            .unwrap();
        assert!(is_deleting(&w.object));
        assert!(s.get(&cm, "default", "f").is_err());
    }

    #[test]
    fn generate_name_and_list_paging() {
        let mut s = state();
        let cm = rt(&s, "", "configmaps");
        for _ in 0..5 {
            let w = s
                .create(
                    &cm,
                    "default",
                    json!({"metadata": {"generateName": "g-", "labels": {"a": "b"}}}),
                    &opts(),
                )
                .unwrap();
            let n = meta_str(&w.object, "name");
            assert!(n.starts_with("g-") && n.len() == 7, "{n}");
        }
        let q = ListQuery {
            limit: Some(2),
            ..ListQuery::default()
        };
        let (items, meta) = s.list(&cm, Some("default"), &q).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(meta["remainingItemCount"], 3);
        let mut all = items;
        let mut token = meta["continue"].as_str().map(String::from);
        while let Some(t) = token {
            let q = ListQuery {
                limit: Some(2),
                continue_token: Some(t),
                ..ListQuery::default()
            };
            let (items, meta) = s.list(&cm, Some("default"), &q).unwrap();
            all.extend(items);
            token = meta["continue"].as_str().map(String::from);
        }
        assert_eq!(all.len(), 5);
        let q = ListQuery {
            label_selector: Some("a=c".into()),
            ..ListQuery::default()
        };
        assert_eq!(s.list(&cm, None, &q).unwrap().0.len(), 0);
        // pages across namespaces whose names sort unlike "ns/name" strings
        for ns in ["a", "a-b"] {
            s.create_internal(
                STORAGE_NAMESPACES,
                json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": ns}, "spec": {}, "status": {"phase": "Active"}}),
            );
            for n in ["x", "z"] {
                s.create(&cm, ns, json!({"metadata": {"name": n}}), &opts())
                    .unwrap();
            }
        }
        let mut seen = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let q = ListQuery {
                limit: Some(1),
                continue_token: token.clone(),
                ..ListQuery::default()
            };
            let (items, meta) = s.list(&cm, None, &q).unwrap();
            seen.extend(
                items
                    .iter()
                    .map(|i| format!("{}/{}", meta_str(i, "namespace"), meta_str(i, "name"))),
            );
            token = meta["continue"].as_str().map(String::from);
            if token.is_none() {
                break;
            }
        }
        assert_eq!(seen.len(), 9, "{seen:?}");
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), 9);
    }

    #[test]
    fn statefulset_generation_status_and_scale() {
        let mut s = state();
        let sts = rt(&s, "apps", "statefulsets");
        let body = json!({"metadata": {"name": "db"}, "spec": {"selector": {"matchLabels": {"app": "db"}},
            "serviceName": "db", "template": {"metadata": {"labels": {"app": "db"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]}}}, "status": {"replicas": 9}});
        let w = s.create(&sts, "default", body, &opts()).unwrap();
        assert_eq!(w.object["metadata"]["generation"], 1);
        assert_eq!(w.object["status"]["replicas"], 0);
        let w = s
            .patch(
                &sts,
                "default",
                "db",
                "status",
                PatchType::Merge,
                json!({"status": {"replicas": 2}, "spec": {"replicas": 7}}),
                &opts(),
            )
            .unwrap();
        assert_eq!(w.object["status"]["replicas"], 2);
        assert_eq!(w.object["spec"]["replicas"], 1);
        assert_eq!(w.object["metadata"]["generation"], 1);
        let w = s
            .patch(
                &sts,
                "default",
                "db",
                "",
                PatchType::Merge,
                json!({"metadata": {"labels": {"x": "y"}}, "status": {"replicas": 5}}),
                &opts(),
            )
            .unwrap();
        assert_eq!(w.object["metadata"]["generation"], 1);
        assert_eq!(w.object["status"]["replicas"], 2);
        let w = s
            .patch(
                &sts,
                "default",
                "db",
                "scale",
                PatchType::Merge,
                json!({"spec": {"replicas": 3}}),
                &opts(),
            )
            .unwrap();
        assert_eq!(w.object["kind"], "Scale");
        assert_eq!(w.object["spec"]["replicas"], 3);
        assert_eq!(w.object["status"]["selector"], "app=db");
        let got = s.get(&sts, "default", "db").unwrap();
        assert_eq!(got["metadata"]["generation"], 2);
    }

    #[test]
    fn server_side_apply_creates_and_updates() {
        let mut s = state();
        let cm = rt(&s, "", "configmaps");
        let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"a": "1"}});
        let w = s
            .patch(&cm, "default", "ssa", "", PatchType::Apply, cfg, &opts())
            .unwrap();
        assert!(w.created);
        assert_eq!(
            w.object["metadata"]["managedFields"][0]["operation"],
            "Apply"
        );
        let other = WriteOpts {
            manager: "other".into(),
            ..WriteOpts::default()
        };
        let e = s
            .patch(&cm, "default", "ssa", "", PatchType::Apply,
                   json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"a": "2"}}), &other)
            .unwrap_err();
        assert_eq!(e.code, 409);
        let forced = WriteOpts {
            manager: "other".into(),
            force: true,
            ..WriteOpts::default()
        };
        let w = s
            .patch(&cm, "default", "ssa", "", PatchType::Apply,
                   json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"a": "2"}}), &forced)
            .unwrap();
        assert_eq!(w.object["data"]["a"], "2");
    }
}
