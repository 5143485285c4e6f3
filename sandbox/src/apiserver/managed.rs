//! `metadata.managedFields` and server-side apply.
//!
//! Field sets are kept in the FieldsV1 form of the real server (`f:`
//! fields, `k:` items of keyed lists, `v:` items of sets). Lists are keyed
//! by their schema (`x-kubernetes-list-type`/`-map-keys`) for custom
//! resources and by the patch keys of the built-in kinds; every other list
//! is atomic. Apply merges the configuration into the live object, removes
//! what the manager applied before and no longer applies (unless another
//! manager owns it), and reports conflicts with other managers that own a
//! field the configuration sets to a different value (`force` takes the
//! fields over). An update records the fields it changed for its manager
//! and takes them from the others.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::patch::{builtin_merge_key, builtin_set_list};
use super::schema::list_type_at;
use super::time;

pub type FieldPath = Vec<String>;

/// A set of field paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet(pub BTreeSet<FieldPath>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum ListKind {
    Atomic,
    Set,
    Map(Vec<String>),
}

/// What decides list and map shapes for one kind.
#[derive(Debug, Clone, Copy)]
pub struct Shape<'a> {
    pub schema: Option<&'a Value>,
    pub custom: bool,
}

const BUILTIN_MAPS: [&str; 9] = [
    "labels",
    "annotations",
    "data",
    "binaryData",
    "stringData",
    "matchLabels",
    "nodeSelector",
    "limits",
    "requests",
];

impl Shape<'_> {
    fn list_kind(&self, spath: &[String], sample: Option<&Value>) -> ListKind {
        let field = spath.last().map(String::as_str).unwrap_or_default();
        if spath.len() == 2 && spath[0] == "metadata" {
            return match field {
                "finalizers" => ListKind::Set,
                "ownerReferences" => ListKind::Map(vec!["uid".into()]),
                _ => ListKind::Atomic,
            };
        }
        if self.custom {
            return match self.schema.and_then(|s| list_type_at(s, spath)) {
                Some((t, keys)) if t == "map" && !keys.is_empty() => ListKind::Map(keys),
                Some((t, _)) if t == "set" => ListKind::Set,
                _ => ListKind::Atomic,
            };
        }
        if builtin_set_list(field) {
            return ListKind::Set;
        }
        match builtin_merge_key(field, sample) {
            Some(k) if sample.is_none_or(Value::is_object) => ListKind::Map(vec![k.to_string()]),
            _ => ListKind::Atomic,
        }
    }

    fn is_map(&self, spath: &[String]) -> bool {
        let field = spath.last().map(String::as_str).unwrap_or_default();
        if spath.len() == 2 && spath[0] == "metadata" {
            return matches!(field, "labels" | "annotations");
        }
        if self.custom {
            let mut s = match self.schema {
                Some(s) => s,
                None => return false,
            };
            for p in spath {
                if let Some(x) = s.get("properties").and_then(|m| m.get(p)) {
                    s = x;
                } else if let Some(x) = s
                    .get("items")
                    .and_then(|i| i.get("properties"))
                    .and_then(|m| m.get(p))
                {
                    s = x;
                } else if let Some(a @ Value::Object(_)) = s.get("additionalProperties") {
                    s = a;
                } else {
                    return true;
                }
            }
            return s.get("additionalProperties").is_some()
                || (s.get("properties").is_none()
                    && s.get("x-kubernetes-preserve-unknown-fields").is_some());
        }
        BUILTIN_MAPS.contains(&field)
    }
}

fn item_key(item: &Value, keys: &[String]) -> Value {
    let mut m = Map::new();
    for k in keys {
        if let Some(v) = item.get(k) {
            m.insert(k.clone(), v.clone());
        }
    }
    Value::Object(m)
}

/// What parts of an object field sets cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everything but `status`.
    Main,
    /// Everything (kinds without a status subresource).
    All,
    /// Only `status`.
    Status,
}

/// The field set of an object (or of an apply configuration).
pub fn fields_of(v: &Value, shape: Shape<'_>, scope: Scope) -> FieldSet {
    let mut out = BTreeSet::new();
    if let Value::Object(m) = v {
        for (k, x) in m {
            match k.as_str() {
                "apiVersion" | "kind" => continue,
                "status" if scope == Scope::Main => continue,
                "metadata" => {
                    if scope == Scope::Status {
                        continue;
                    }
                    if let Value::Object(meta) = x {
                        for (mk, mv) in meta {
                            if matches!(
                                mk.as_str(),
                                "labels" | "annotations" | "finalizers" | "ownerReferences"
                            ) {
                                collect(
                                    mv,
                                    &["f:metadata".into(), format!("f:{mk}")],
                                    &["metadata".into(), mk.clone()],
                                    &mut out,
                                    shape,
                                );
                            }
                        }
                    }
                    continue;
                }
                _ if scope == Scope::Status && k != "status" => continue,
                _ => {}
            }
            collect(
                x,
                &[format!("f:{k}")],
                std::slice::from_ref(k),
                &mut out,
                shape,
            );
        }
    }
    FieldSet(out)
}

fn collect(
    v: &Value,
    fpath: &[String],
    spath: &[String],
    out: &mut BTreeSet<FieldPath>,
    shape: Shape<'_>,
) {
    match v {
        Value::Object(m) => {
            if m.is_empty() || shape.is_map(spath) {
                out.insert(fpath.to_vec());
            }
            for (k, x) in m {
                let mut f = fpath.to_vec();
                f.push(format!("f:{k}"));
                let mut s = spath.to_vec();
                s.push(k.clone());
                collect(x, &f, &s, out, shape);
            }
        }
        Value::Array(a) => match shape.list_kind(spath, a.first()) {
            ListKind::Map(keys) => {
                for item in a {
                    let mut f = fpath.to_vec();
                    f.push(format!("k:{}", item_key(item, &keys)));
                    out.insert(f.clone());
                    if let Value::Object(m) = item {
                        for (k, x) in m {
                            let mut ff = f.clone();
                            ff.push(format!("f:{k}"));
                            let mut s = spath.to_vec();
                            s.push(k.clone());
                            collect(x, &ff, &s, out, shape);
                        }
                    }
                }
            }
            ListKind::Set => {
                out.insert(fpath.to_vec());
                for item in a {
                    let mut f = fpath.to_vec();
                    f.push(format!("v:{item}"));
                    out.insert(f);
                }
            }
            ListKind::Atomic => {
                out.insert(fpath.to_vec());
            }
        },
        _ => {
            out.insert(fpath.to_vec());
        }
    }
}

impl FieldSet {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The FieldsV1 JSON form.
    pub fn to_json(&self) -> Value {
        let mut root = Map::new();
        for p in &self.0 {
            let mut node = &mut root;
            for (i, e) in p.iter().enumerate() {
                let entry = node.entry(e.clone()).or_insert_with(|| json!({}));
                if !entry.is_object() {
                    *entry = json!({});
                }
                let Some(m) = entry.as_object_mut() else {
                    break;
                };
                if i == p.len() - 1 {
                    // a member with children gets ".", a leaf stays {}
                    if !m.is_empty() {
                        m.insert(".".into(), json!({}));
                    } else {
                        m.insert("\u{0}leaf".into(), json!({}));
                    }
                }
                node = m;
            }
        }
        finish(Value::Object(root))
    }

    pub fn from_json(v: &Value) -> FieldSet {
        let mut out = BTreeSet::new();
        fn walk(v: &Value, path: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
            if let Value::Object(m) = v {
                if m.is_empty() && !path.is_empty() {
                    out.insert(path.clone());
                }
                for (k, x) in m {
                    if k == "." {
                        out.insert(path.clone());
                        continue;
                    }
                    path.push(k.clone());
                    walk(x, path, out);
                    path.pop();
                }
            }
        }
        walk(v, &mut Vec::new(), &mut out);
        FieldSet(out)
    }

    fn has_descendant_or_self(&self, p: &FieldPath) -> bool {
        self.0
            .range(p.clone()..)
            .next()
            .is_some_and(|q| q.starts_with(p))
    }

    fn is_leaf(&self, p: &FieldPath) -> bool {
        !self
            .0
            .range(p.clone()..)
            .nth(1)
            .is_some_and(|q| q.starts_with(p))
    }
}

/// Replaces the provisional leaf markers by the FieldsV1 shape.
fn finish(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let has_leaf = m.contains_key("\u{0}leaf");
            let mut out = Map::new();
            for (k, x) in m {
                if k == "\u{0}leaf" {
                    continue;
                }
                out.insert(k, finish(x));
            }
            if has_leaf && !out.is_empty() {
                out.insert(".".into(), json!({}));
            }
            Value::Object(out)
        }
        other => other,
    }
}

/// The value at a field path.
pub fn get_at<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = v;
    for e in path {
        cur = step(cur, e)?;
    }
    Some(cur)
}

fn step<'a>(cur: &'a Value, e: &str) -> Option<&'a Value> {
    if let Some(f) = e.strip_prefix("f:") {
        cur.get(f)
    } else if let Some(k) = e.strip_prefix("k:") {
        let key: Value = serde_json::from_str(k).ok()?;
        let km = key.as_object()?;
        cur.as_array()?
            .iter()
            .find(|item| km.iter().all(|(kk, kv)| item.get(kk) == Some(kv)))
    } else if let Some(val) = e.strip_prefix("v:") {
        let want: Value = serde_json::from_str(val).ok()?;
        cur.as_array()?.iter().find(|x| **x == want)
    } else if let Some(i) = e.strip_prefix("i:") {
        cur.as_array()?.get(i.parse::<usize>().ok()?)
    } else {
        None
    }
}

fn remove_at(v: &mut Value, path: &[String]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    for e in parent_path {
        let next = match step(cur, e) {
            Some(_) => step_mut(cur, e),
            None => None,
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(f) = last.strip_prefix("f:") {
        if let Value::Object(m) = cur {
            m.remove(f);
        }
    } else if let Value::Array(a) = cur {
        let target = step(&Value::Array(a.clone()), last).cloned();
        if let Some(t) = target
            && let Some(i) = a.iter().position(|x| *x == t)
        {
            a.remove(i);
        }
    }
}

fn step_mut<'a>(cur: &'a mut Value, e: &str) -> Option<&'a mut Value> {
    if let Some(f) = e.strip_prefix("f:") {
        cur.get_mut(f)
    } else if let Some(k) = e.strip_prefix("k:") {
        let key: Value = serde_json::from_str(k).ok()?;
        let km = key.as_object()?.clone();
        cur.as_array_mut()?
            .iter_mut()
            .find(|item| km.iter().all(|(kk, kv)| item.get(kk) == Some(kv)))
    } else if let Some(val) = e.strip_prefix("v:") {
        let want: Value = serde_json::from_str(val).ok()?;
        cur.as_array_mut()?.iter_mut().find(|x| **x == want)
    } else if let Some(i) = e.strip_prefix("i:") {
        cur.as_array_mut()?.get_mut(i.parse::<usize>().ok()?)
    } else {
        None
    }
}

/// A field path as the real server prints it in conflicts.
pub fn display(path: &[String]) -> String {
    let mut s = String::new();
    for e in path {
        if let Some(f) = e.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = e.strip_prefix("k:") {
            let key: Value = serde_json::from_str(k).unwrap_or(Value::Null);
            let parts: Vec<String> = key
                .as_object()
                .map(|m| m.iter().map(|(a, b)| format!("{a}={b}")).collect())
                .unwrap_or_default();
            s.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = e.strip_prefix("v:") {
            s.push_str(&format!("[={v}]"));
        } else if let Some(i) = e.strip_prefix("i:") {
            s.push_str(&format!("[{i}]"));
        }
    }
    s
}

/// One managedFields entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: String,
    pub set: FieldSet,
}

impl Entry {
    fn to_json(&self) -> Value {
        let mut e = json!({
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": self.set.to_json(),
        });
        if !self.subresource.is_empty() {
            e["subresource"] = json!(self.subresource);
        }
        e
    }

    fn same_slot(&self, manager: &str, operation: &str, subresource: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == subresource
    }
}

pub fn read_entries(obj: &Value) -> Vec<Entry> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|e| Entry {
                    manager: e["manager"].as_str().unwrap_or_default().to_string(),
                    operation: e["operation"].as_str().unwrap_or_default().to_string(),
                    api_version: e["apiVersion"].as_str().unwrap_or_default().to_string(),
                    time: e["time"].as_str().unwrap_or_default().to_string(),
                    subresource: e["subresource"].as_str().unwrap_or_default().to_string(),
                    set: FieldSet::from_json(&e["fieldsV1"]),
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn write_entries(obj: &mut Value, entries: &[Entry]) {
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        let list: Vec<Value> = entries
            .iter()
            .filter(|e| !e.set.is_empty())
            .map(Entry::to_json)
            .collect();
        if list.is_empty() {
            m.remove("managedFields");
        } else {
            m.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// Who writes, and how.
#[derive(Debug, Clone)]
pub struct Writer<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    pub subresource: &'a str,
    pub shape: Shape<'a>,
    pub scope: Scope,
}

/// Records an update (or a create, with `old` None) by `w`.
pub fn record_update(old: Option<&Value>, new: &mut Value, w: &Writer<'_>) {
    if w.manager.is_empty() {
        if let Some(o) = old {
            let entries = read_entries(o);
            write_entries(new, &entries);
        }
        return;
    }
    let new_set = fields_of(new, w.shape, w.scope);
    let (mut entries, changed, removed) = match old {
        None => (Vec::new(), new_set.clone(), FieldSet::default()),
        Some(o) => {
            let old_set = fields_of(o, w.shape, w.scope);
            let mut changed = BTreeSet::new();
            for p in &new_set.0 {
                if !old_set.0.contains(p) || (new_set.is_leaf(p) && get_at(o, p) != get_at(new, p))
                {
                    changed.insert(p.clone());
                }
            }
            let removed: BTreeSet<FieldPath> = old_set.0.difference(&new_set.0).cloned().collect();
            (read_entries(o), FieldSet(changed), FieldSet(removed))
        }
    };
    for e in entries.iter_mut() {
        e.set.0.retain(|p| !removed.0.contains(p));
        if !e.same_slot(w.manager, "Update", w.subresource) {
            e.set.0.retain(|p| !changed.0.contains(p));
        }
    }
    if !changed.is_empty() {
        let now = time::now_string();
        match entries
            .iter_mut()
            .find(|e| e.same_slot(w.manager, "Update", w.subresource))
        {
            Some(e) => {
                e.set.0.extend(changed.0);
                e.time = now;
                e.api_version = w.api_version.to_string();
            }
            None => entries.push(Entry {
                manager: w.manager.to_string(),
                operation: "Update".into(),
                api_version: w.api_version.to_string(),
                time: now,
                subresource: w.subresource.to_string(),
                set: changed,
            }),
        }
    }
    entries.retain(|e| !e.set.is_empty());
    write_entries(new, &entries);
}

/// Server-side apply of `config` onto `live` (None: the object is
/// created). Returns the merged object with its managedFields.
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    force: bool,
    w: &Writer<'_>,
) -> Result<Value, ApiError> {
    let new_set = fields_of(config, w.shape, w.scope);
    let now = time::now_string();
    let Some(live) = live else {
        let mut obj = strip_nulls(config.clone());
        let entries = vec![Entry {
            manager: w.manager.to_string(),
            operation: "Apply".into(),
            api_version: w.api_version.to_string(),
            time: now,
            subresource: w.subresource.to_string(),
            set: new_set,
        }];
        write_entries(&mut obj, &entries);
        return Ok(obj);
    };
    let mut entries = read_entries(live);
    // conflicts
    let mut conflicts: Vec<(String, String, String)> = Vec::new();
    let mut taken: Vec<(usize, FieldPath)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if e.same_slot(w.manager, "Apply", w.subresource) {
            continue;
        }
        for p in e.set.0.intersection(&new_set.0) {
            if !new_set.is_leaf(p) {
                continue;
            }
            // maps, structs and list items own their children, not a value
            let mine = get_at(config, p);
            if mine.is_some_and(Value::is_object) {
                continue;
            }
            if get_at(live, p) != mine {
                if force {
                    taken.push((i, p.clone()));
                } else {
                    conflicts.push((e.manager.clone(), e.api_version.clone(), display(p)));
                }
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(ApiError::apply_conflicts(&conflicts));
    }
    for (i, p) in taken {
        if let Some(e) = entries.get_mut(i) {
            e.set.0.remove(&p);
        }
    }
    // fields this manager applied before and no longer applies
    let prev = entries
        .iter()
        .find(|e| e.same_slot(w.manager, "Apply", w.subresource))
        .map(|e| e.set.clone())
        .unwrap_or_default();
    let others: FieldSet = FieldSet(
        entries
            .iter()
            .filter(|e| !e.same_slot(w.manager, "Apply", w.subresource))
            .flat_map(|e| e.set.0.iter().cloned())
            .collect(),
    );
    let mut dropped: Vec<&FieldPath> = prev
        .0
        .iter()
        .filter(|p| !new_set.0.contains(*p) && !others.has_descendant_or_self(p))
        .collect();
    // What goes with a dropped map or list item goes with it: removed
    // first, a keyed item's key fields would leave the item unfound (and
    // in the object, without its key).
    let whole: Vec<&FieldPath> = dropped.clone();
    dropped.retain(|p| !whole.iter().any(|q| q.len() < p.len() && p.starts_with(q)));
    dropped.sort_by_key(|p| std::cmp::Reverse(p.len()));
    let mut obj = live.clone();
    for p in dropped {
        remove_at(&mut obj, p);
    }
    let merged = merge(&obj, config, &mut Vec::new(), w.shape);
    let mut obj = merged;
    match entries
        .iter_mut()
        .find(|e| e.same_slot(w.manager, "Apply", w.subresource))
    {
        Some(e) => {
            if e.set != new_set {
                e.time = now;
            }
            e.set = new_set;
            e.api_version = w.api_version.to_string();
        }
        None => entries.push(Entry {
            manager: w.manager.to_string(),
            operation: "Apply".into(),
            api_version: w.api_version.to_string(),
            time: now,
            subresource: w.subresource.to_string(),
            set: new_set,
        }),
    }
    entries.retain(|e| !e.set.is_empty());
    write_entries(&mut obj, &entries);
    Ok(obj)
}

fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, x)| !x.is_null())
                .map(|(k, x)| (k, strip_nulls(x)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}

fn merge(live: &Value, config: &Value, spath: &mut Vec<String>, shape: Shape<'_>) -> Value {
    match (live, config) {
        (Value::Object(l), Value::Object(c)) => {
            let mut out = l.clone();
            for (k, cv) in c {
                if cv.is_null() {
                    out.remove(k);
                    continue;
                }
                if spath.is_empty() && k == "metadata" {
                    // identity fields of the live object win
                    let merged = merge_metadata(l.get("metadata"), cv, shape);
                    out.insert(k.clone(), merged);
                    continue;
                }
                spath.push(k.clone());
                let v = match l.get(k) {
                    Some(lv) => merge(lv, cv, spath, shape),
                    None => strip_nulls(cv.clone()),
                };
                spath.pop();
                out.insert(k.clone(), v);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(c)) => match shape.list_kind(spath, c.first().or(l.first()))
        {
            ListKind::Map(keys) => {
                let mut out = l.clone();
                for ci in c {
                    let key = item_key(ci, &keys);
                    match out.iter().position(|x| item_key(x, &keys) == key) {
                        Some(i) => {
                            let m = merge(&out[i], ci, spath, shape);
                            out[i] = m;
                        }
                        None => out.push(strip_nulls(ci.clone())),
                    }
                }
                Value::Array(out)
            }
            ListKind::Set => {
                let mut out = l.clone();
                for ci in c {
                    if !out.contains(ci) {
                        out.push(ci.clone());
                    }
                }
                Value::Array(out)
            }
            ListKind::Atomic => config.clone(),
        },
        (_, c) => strip_nulls(c.clone()),
    }
}

fn merge_metadata(live: Option<&Value>, config: &Value, shape: Shape<'_>) -> Value {
    let mut out = live.cloned().unwrap_or_else(|| json!({}));
    if let (Value::Object(o), Value::Object(c)) = (&mut out, config) {
        for key in ["labels", "annotations", "finalizers", "ownerReferences"] {
            if let Some(cv) = c.get(key) {
                let mut spath = vec!["metadata".to_string(), key.to_string()];
                let v = match o.get(key) {
                    Some(lv) => merge(lv, cv, &mut spath, shape),
                    None => cv.clone(),
                };
                o.insert(key.into(), v);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUILTIN: Shape<'static> = Shape {
        schema: None,
        custom: false,
    };

    fn writer(manager: &str) -> Writer<'_> {
        Writer {
            manager,
            api_version: "v1",
            subresource: "",
            shape: BUILTIN,
            scope: Scope::All,
        }
    }

    #[test]
    fn fields_v1_round_trips() {
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "x", "labels": {"a": "1"}, "finalizers": ["f"]},
            "data": {"k": "v"},
            "spec": {"containers": [{"name": "c", "image": "i"}], "empty": {}}});
        let set = fields_of(&obj, BUILTIN, Scope::All);
        let j = set.to_json();
        assert_eq!(j["f:metadata"]["f:labels"], json!({".": {}, "f:a": {}}));
        assert_eq!(
            j["f:metadata"]["f:finalizers"],
            json!({".": {}, "v:\"f\"": {}})
        );
        assert_eq!(j["f:data"], json!({".": {}, "f:k": {}}));
        assert_eq!(
            j["f:spec"]["f:containers"]["k:{\"name\":\"c\"}"],
            json!({".": {}, "f:image": {}, "f:name": {}})
        );
        assert_eq!(j["f:spec"]["f:empty"], json!({}));
        assert_eq!(FieldSet::from_json(&j), set);
    }

    #[test]
    fn apply_merges_removes_and_conflicts() {
        let live = apply(
            None,
            &json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "x"}, "data": {"a": "1", "b": "2"}}),
            false,
            &writer("alice"),
        )
        .unwrap();
        // bob changes a by update
        let mut upd = live.clone();
        upd["data"]["a"] = json!("9");
        record_update(Some(&live), &mut upd, &writer("bob"));
        let entries = read_entries(&upd);
        assert_eq!(entries.len(), 2);
        // alice re-applies a=1: conflict with bob
        let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "1"}});
        let err = apply(Some(&upd), &cfg, false, &writer("alice")).unwrap_err();
        assert_eq!(err.code, 409);
        assert_eq!(
            err.message,
            "Apply failed with 1 conflict: conflict with \"bob\" using v1: .data.a"
        );
        // forced: alice takes a, and b (which she dropped, nobody else owns) goes
        let out = apply(Some(&upd), &cfg, true, &writer("alice")).unwrap();
        assert_eq!(out["data"], json!({"a": "1"}));
        let entries = read_entries(&out);
        assert_eq!(entries.len(), 1, "{entries:?}");
        assert_eq!(entries[0].manager, "alice");
    }

    #[test]
    fn apply_keeps_fields_owned_by_others() {
        let live = apply(
            None,
            &json!({"metadata": {"name": "x"}, "data": {"a": "1"}}),
            false,
            &writer("alice"),
        )
        .unwrap();
        let mut upd = live.clone();
        upd["data"]["b"] = json!("2");
        record_update(Some(&live), &mut upd, &writer("bob"));
        let out = apply(
            Some(&upd),
            &json!({"metadata": {"name": "x"}, "data": {"c": "3"}}),
            false,
            &writer("alice"),
        )
        .unwrap();
        assert_eq!(out["data"], json!({"b": "2", "c": "3"}));
    }

    #[test]
    fn a_keyed_item_no_longer_applied_goes_whole() {
        let containers = |names: &[&str]| {
            let list: Vec<Value> = names
                .iter()
                .map(|n| json!({"name": n, "image": "i", "args": ["x"]}))
                .collect();
            json!({"metadata": {"name": "x"}, "spec": {"containers": list}})
        };
        let live = apply(None, &containers(&["a", "b"]), false, &writer("alice")).unwrap();
        // the server's defaults, owned by nobody
        let mut live = live;
        live["spec"]["containers"][1]["imagePullPolicy"] = json!("IfNotPresent");
        let out = apply(Some(&live), &containers(&["a"]), false, &writer("alice")).unwrap();
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "a", "image": "i", "args": ["x"]}])
        );
    }

    #[test]
    fn keyed_lists_merge_by_key() {
        let live = json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]}});
        let out = merge(
            &live,
            &json!({"spec": {"containers": [{"name": "b", "image": "2"}]}}),
            &mut Vec::new(),
            BUILTIN,
        );
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "a", "image": "1"}, {"name": "b", "image": "2"}])
        );
        let mut v = out.clone();
        remove_at(
            &mut v,
            &[
                "f:spec".into(),
                "f:containers".into(),
                "k:{\"name\":\"a\"}".into(),
            ],
        );
        assert_eq!(
            v["spec"]["containers"],
            json!([{"name": "b", "image": "2"}])
        );
    }
}
