//! The object store: every object as JSON, one global resourceVersion
//! counter, and the retained window of changes that watches replay.
//! Changes are broadcast while the state lock is held, so a watch that
//! reads the history and subscribes under the lock sees every change
//! exactly once and in order.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast;

/// (namespace, name); the namespace is empty for cluster-scoped objects.
pub type ObjKey = (String, String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeType {
    Added,
    Modified,
    Deleted,
}

/// One committed change.
#[derive(Debug)]
pub struct Change {
    pub rv: u64,
    pub ty: ChangeType,
    pub storage: String,
    pub namespace: String,
    /// The object after the change (for a deletion: its last state, with
    /// the deletion's resourceVersion).
    pub object: Value,
    /// The object before the change (for watch filtering).
    pub prev: Option<Value>,
}

/// What watches receive.
#[derive(Debug, Clone)]
pub enum Broadcast {
    Change(Arc<Change>),
    /// Every change up to this resourceVersion has been broadcast.
    Progress(u64),
    /// The server is stopping.
    Shutdown,
}

pub struct Store {
    rv: u64,
    objects: HashMap<String, BTreeMap<ObjKey, Value>>,
    history: VecDeque<Arc<Change>>,
    history_limit: usize,
    /// The history holds every change with rv > compacted.
    compacted: u64,
    tx: broadcast::Sender<Broadcast>,
    /// Bumped on every change (snapshot writer).
    pub generation: u64,
}

fn key_of(obj: &Value) -> ObjKey {
    let ns = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    (ns, name)
}

/// Sets `metadata.resourceVersion`.
pub fn set_rv(obj: &mut Value, rv: u64) {
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.insert("resourceVersion".into(), json!(rv.to_string()));
    }
}

impl Store {
    pub fn new(history_limit: usize) -> Self {
        let (tx, _) = broadcast::channel(16384);
        Store {
            rv: 1,
            objects: HashMap::new(),
            history: VecDeque::new(),
            history_limit,
            compacted: 1,
            tx,
            generation: 0,
        }
    }

    /// The current (newest) resourceVersion.
    pub fn rv(&self) -> u64 {
        self.rv
    }

    pub fn get(&self, storage: &str, ns: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(storage)?
            .get(&(ns.to_string(), name.to_string()))
    }

    /// Objects of a storage key, sorted by namespace then name; `ns`
    /// restricts to one namespace.
    pub fn list<'a>(&'a self, storage: &str, ns: Option<&'a str>) -> Vec<&'a Value> {
        match self.objects.get(storage) {
            None => Vec::new(),
            Some(m) => match ns {
                None => m.values().collect(),
                Some(ns) => m
                    .range((ns.to_string(), String::new())..)
                    .take_while(|((n, _), _)| n == ns)
                    .map(|(_, v)| v)
                    .collect(),
            },
        }
    }

    /// Every (storage, object) pair.
    pub fn all(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.objects
            .iter()
            .flat_map(|(s, m)| m.values().map(move |v| (s, v)))
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Broadcast> {
        self.tx.subscribe()
    }

    /// Tells watches that everything up to now has been sent.
    pub fn progress(&self) {
        let _ = self.tx.send(Broadcast::Progress(self.rv));
    }

    pub fn shutdown(&self) {
        let _ = self.tx.send(Broadcast::Shutdown);
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.generation += 1;
        self.rv
    }

    fn record(&mut self, change: Change) {
        let change = Arc::new(change);
        self.history.push_back(change.clone());
        while self.history.len() > self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.compacted = old.rv;
            }
        }
        let _ = self.tx.send(Broadcast::Change(change));
    }

    /// Stores a new object, stamping its resourceVersion.
    pub fn insert(&mut self, storage: &str, mut obj: Value) -> Value {
        let rv = self.next_rv();
        set_rv(&mut obj, rv);
        let key = key_of(&obj);
        self.objects
            .entry(storage.to_string())
            .or_default()
            .insert(key.clone(), obj.clone());
        self.record(Change {
            rv,
            ty: ChangeType::Added,
            storage: storage.to_string(),
            namespace: key.0,
            object: obj.clone(),
            prev: None,
        });
        obj
    }

    /// Replaces an existing object, stamping its resourceVersion.
    pub fn update(&mut self, storage: &str, mut obj: Value) -> Value {
        let rv = self.next_rv();
        set_rv(&mut obj, rv);
        let key = key_of(&obj);
        let prev = self
            .objects
            .entry(storage.to_string())
            .or_default()
            .insert(key.clone(), obj.clone());
        self.record(Change {
            rv,
            ty: ChangeType::Modified,
            storage: storage.to_string(),
            namespace: key.0,
            object: obj.clone(),
            prev,
        });
        obj
    }

    /// Removes an object; returns its last state with the deletion's
    /// resourceVersion.
    pub fn remove(&mut self, storage: &str, ns: &str, name: &str) -> Option<Value> {
        let key = (ns.to_string(), name.to_string());
        let prev = self.objects.get_mut(storage)?.remove(&key)?;
        let rv = self.next_rv();
        let mut obj = prev.clone();
        set_rv(&mut obj, rv);
        self.record(Change {
            rv,
            ty: ChangeType::Deleted,
            storage: storage.to_string(),
            namespace: key.0,
            object: obj.clone(),
            prev: Some(prev),
        });
        Some(obj)
    }

    /// The retained changes after `rv`, or the oldest resourceVersion
    /// still retained when `rv` is older than the window.
    pub fn since(&self, rv: u64) -> Result<Vec<Arc<Change>>, u64> {
        if rv < self.compacted {
            return Err(self.compacted + 1);
        }
        Ok(self.history.iter().filter(|c| c.rv > rv).cloned().collect())
    }

    /// Forgets the history, as an etcd compaction would: watches from any
    /// older resourceVersion get 410 Gone.
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted = self.rv;
    }

    /// Every object, for a snapshot.
    pub fn dump(&self) -> Value {
        let mut m = serde_json::Map::new();
        for (storage, objs) in &self.objects {
            if objs.is_empty() {
                continue;
            }
            m.insert(
                storage.clone(),
                Value::Array(objs.values().cloned().collect()),
            );
        }
        json!({"resourceVersion": self.rv.to_string(), "objects": m})
    }

    /// Loads a snapshot into an empty store (no changes are recorded).
    pub fn load(&mut self, snapshot: &Value) {
        if let Some(rv) = snapshot["resourceVersion"]
            .as_str()
            .and_then(|s| s.parse::<u64>().ok())
        {
            self.rv = rv;
            self.compacted = rv;
        }
        if let Some(m) = snapshot["objects"].as_object() {
            for (storage, objs) in m {
                for obj in objs.as_array().into_iter().flatten() {
                    let key = key_of(obj);
                    self.objects
                        .entry(storage.clone())
                        .or_default()
                        .insert(key, obj.clone());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(ns: &str, name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"namespace": ns, "name": name, "uid": format!("{ns}-{name}")}})
    }

    #[test]
    fn versions_grow_and_history_replays() {
        let mut s = Store::new(3);
        let start = s.rv();
        let a = s.insert("core/configmaps", cm("a", "x"));
        s.insert("core/configmaps", cm("b", "y"));
        assert_eq!(
            a["metadata"]["resourceVersion"],
            json!((start + 1).to_string())
        );
        assert_eq!(s.list("core/configmaps", Some("a")).len(), 1);
        assert_eq!(s.list("core/configmaps", None).len(), 2);
        let gone = s.remove("core/configmaps", "a", "x").unwrap();
        assert_eq!(
            gone["metadata"]["resourceVersion"],
            json!((start + 3).to_string())
        );
        assert_eq!(s.since(start).map(|v| v.len()), Ok(3));
        s.update("core/configmaps", cm("b", "y"));
        // the window holds 3: the first change fell out
        assert!(s.since(start).is_err());
        assert_eq!(s.since(start + 1).map(|v| v.len()), Ok(3));
        s.compact();
        assert!(s.since(start + 1).is_err());
        assert_eq!(s.since(s.rv()).map(|v| v.len()), Ok(0));
    }
}
