//! The request log: every request the server answers, counted by verb,
//! resource and client (the User-Agent's first word, and the field
//! manager when one is named), served at `GET /debug/requests` as JSON
//! and reset by `DELETE /debug/requests`. What the benchmarks and the
//! tests of the operator's API traffic read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The path of the log.
pub const PATH: &str = "/debug/requests";

/// What one count is of.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestKey {
    /// get, list, watch, create, update, patch, apply, delete,
    /// deletecollection (a server-side apply is `apply`, not `patch`).
    pub verb: String,
    /// The API group (`""` for the core group).
    pub group: String,
    /// The resource's plural, or the path of a non-resource request.
    pub resource: String,
    /// `status`, `scale`, `binding`, `eviction`, or `""`.
    pub subresource: String,
    /// The User-Agent's first word (before `/`).
    pub agent: String,
    /// The `fieldManager` the request named, or `""`.
    pub field_manager: String,
}

impl RequestKey {
    /// Whether the request wrote (created, changed or deleted something).
    pub fn is_write(&self) -> bool {
        matches!(
            self.verb.as_str(),
            "create" | "update" | "patch" | "apply" | "delete" | "deletecollection"
        )
    }

    /// Whether it is of leader election's Leases.
    pub fn is_lease(&self) -> bool {
        self.group == "coordination.k8s.io" && self.resource == "leases"
    }
}

/// One line of the log as served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCount {
    #[serde(flatten)]
    pub key: RequestKey,
    pub count: u64,
}

/// The log as served: the counts since `since` (RFC 3339).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestLog {
    pub since: String,
    pub requests: Vec<RequestCount>,
}

impl RequestLog {
    /// The total of the lines `f` keeps.
    pub fn count(&self, f: impl Fn(&RequestKey) -> bool) -> u64 {
        self.requests
            .iter()
            .filter(|r| f(&r.key))
            .map(|r| r.count)
            .sum()
    }

    /// The lines `f` keeps.
    pub fn lines(&self, f: impl Fn(&RequestKey) -> bool) -> Vec<RequestCount> {
        self.requests
            .iter()
            .filter(|r| f(&r.key))
            .cloned()
            .collect()
    }

    /// Reads the log of the server `client` talks to.
    pub async fn fetch(client: &kube::Client) -> Result<RequestLog, kube::Error> {
        let req = axum::http::Request::get(PATH)
            .body(Vec::new())
            .map_err(kube::Error::HttpError)?;
        client.request(req).await
    }

    /// Resets the log of the server `client` talks to.
    pub async fn reset(client: &kube::Client) -> Result<(), kube::Error> {
        let req = axum::http::Request::delete(PATH)
            .body(Vec::new())
            .map_err(kube::Error::HttpError)?;
        client.request_text(req).await.map(|_| ())
    }
}

/// The counts the server keeps.
#[derive(Debug, Default)]
pub struct Counter {
    since: String,
    counts: BTreeMap<RequestKey, u64>,
}

impl Counter {
    pub fn new(now: String) -> Counter {
        Counter {
            since: now,
            counts: BTreeMap::new(),
        }
    }

    pub fn add(&mut self, key: RequestKey) {
        *self.counts.entry(key).or_default() += 1;
    }

    pub fn reset(&mut self, now: String) {
        self.since = now;
        self.counts.clear();
    }

    pub fn log(&self) -> RequestLog {
        RequestLog {
            since: self.since.clone(),
            requests: self
                .counts
                .iter()
                .map(|(k, c)| RequestCount {
                    key: k.clone(),
                    count: *c,
                })
                .collect(),
        }
    }
}

/// The verb of a request on a resource path.
pub fn verb(method: &str, named: bool, watch: bool, apply: bool) -> &'static str {
    match (method, named) {
        ("GET", _) if watch => "watch",
        ("GET", false) => "list",
        ("GET", true) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) if apply => "apply",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_of_requests() {
        let table = [
            ("GET", true, false, false, "get"),
            ("GET", false, false, false, "list"),
            ("GET", false, true, false, "watch"),
            ("GET", true, true, false, "watch"),
            ("POST", false, false, false, "create"),
            ("POST", true, false, false, "create"),
            ("PUT", true, false, false, "update"),
            ("PATCH", true, false, false, "patch"),
            ("PATCH", true, false, true, "apply"),
            ("DELETE", true, false, false, "delete"),
            ("DELETE", false, false, false, "deletecollection"),
            ("OPTIONS", true, false, false, "other"),
        ];
        for (m, named, watch, apply, want) in table {
            assert_eq!(verb(m, named, watch, apply), want, "{m} {named} {watch}");
        }
    }

    #[test]
    fn counts_add_up_and_reset() {
        let key = |verb: &str, group: &str, resource: &str| RequestKey {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: String::new(),
            agent: "orca-operator".into(),
            field_manager: String::new(),
        };
        let mut c = Counter::new("t0".into());
        c.add(key("get", "", "secrets"));
        c.add(key("get", "", "secrets"));
        c.add(key("update", "coordination.k8s.io", "leases"));
        let log = c.log();
        assert_eq!(log.count(|k| k.resource == "secrets"), 2);
        assert_eq!(log.count(|k| k.is_write() && !k.is_lease()), 0);
        assert_eq!(log.count(RequestKey::is_lease), 1);
        let json = serde_json::to_value(&log).unwrap();
        assert_eq!(json["requests"][0]["fieldManager"], "");
        let back: RequestLog = serde_json::from_value(json).unwrap();
        assert_eq!(back, log);
        c.reset("t1".into());
        assert!(c.log().requests.is_empty());
        assert_eq!(c.log().since, "t1");
    }
}
