//! The operator's watch caches: one reflector per kind it reads
//! (MySQLClusters, FailoverPolicies, Secrets, and the pods, Services,
//! StatefulSets, ConfigMaps, PodDisruptionBudgets and NetworkPolicies
//! labelled `orca.dev/cluster`), started once by [`super::operator::run`] and
//! shared by the reconciler and every worker: a round reads the cluster,
//! its Secret, its pods and its policy from memory, not from the API
//! server. The same watch streams drive the controller
//! ([`Triggers`]): a change of a cluster, of an object it owns, of its
//! Secret or of its policy reconciles it.
//!
//! Each cache knows whether it is ready (listed once) and whether it is
//! failing to list: a read from a cache that is not ready, or that cannot
//! list, is an error, never "absent" ([`Caches::policy`]). Policies are
//! cached as stored and decoded at each read, so that one orca cannot
//! decode is an error of its own clusters, as a read of it would be.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, watcher as watch};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::crd::cluster::MySQLCluster;
use super::crd::names::label;
use super::crd::policy::FailoverPolicy;
use super::policy;

/// Whether one cache is ready, and why its watch fails if it does.
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
    error: Mutex<Option<String>>,
}

impl Health {
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Why the last list failed, until one succeeds.
    pub fn error(&self) -> Option<String> {
        self.error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A list that fails leaves the cache incomplete or behind until one
    /// succeeds; a watch that breaks after a list is taken up again by
    /// the watcher from where it was (or relisted), the cache meanwhile
    /// what was last known, as a cache is.
    fn saw<K>(&self, r: &Result<Event<K>, watcher::Error>) {
        let mut error = self.error.lock().unwrap_or_else(PoisonError::into_inner);
        match r {
            Ok(Event::InitDone) => {
                self.ready.store(true, Ordering::SeqCst);
                *error = None;
            }
            Ok(_) => {}
            Err(e @ watcher::Error::InitialListFailed(_)) => *error = Some(e.to_string()),
            Err(e) => tracing::debug!(error = %e, "watch error"),
        }
    }

    /// `Ok` when reads from the cache can be trusted; why not otherwise.
    pub fn usable(&self, kind: &str) -> Result<(), String> {
        if !self.ready() {
            return Err(format!("the watch cache of {kind} is not ready yet"));
        }
        match self.error() {
            Some(e) => Err(format!("the list of {kind} fails: {e}")),
            None => Ok(()),
        }
    }
}

/// The caches (cheap to clone: every store is shared).
pub struct Caches {
    pub clusters: Store<MySQLCluster>,
    /// FailoverPolicies as they are stored, decoded at each read: a policy
    /// orca cannot decode is that policy's error ([`Caches::policy`]), and
    /// does not stop the cache from following the others.
    pub policies: Store<DynamicObject>,
    policy_resource: ApiResource,
    pub secrets: Store<Secret>,
    pub pods: Store<Pod>,
    pub services: Store<Service>,
    pub stateful_sets: Store<StatefulSet>,
    pub config_maps: Store<ConfigMap>,
    pub disruption_budgets: Store<PodDisruptionBudget>,
    /// The agent's NetworkPolicies (see [`super::objects::network_policy`]).
    pub network_policies: Store<NetworkPolicy>,
    health: Vec<(&'static str, Arc<Health>)>,
}

type Events<K> = BoxStream<'static, Result<Event<K>, watcher::Error>>;

/// The watch streams behind the caches, for the controller to drive (a
/// cache is filled as its stream is polled).
pub struct Triggers {
    pub clusters: Events<MySQLCluster>,
    pub policies: Events<DynamicObject>,
    pub secrets: Events<Secret>,
    pub pods: Events<Pod>,
    pub services: Events<Service>,
    pub stateful_sets: Events<StatefulSet>,
    pub config_maps: Events<ConfigMap>,
    pub disruption_budgets: Events<PodDisruptionBudget>,
    pub network_policies: Events<NetworkPolicy>,
}

fn reflected<K>(api: Api<K>, config: watcher::Config, health: Arc<Health>) -> (Store<K>, Events<K>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync,
    K: 'static,
{
    reflect(api, (), config, health)
}

/// [`reflected`] for objects read as they are stored.
/// An API over every namespace, or over one.
pub fn scoped<K>(client: &Client, scope: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as Resource>::DynamicType: Default,
{
    match scope {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn reflected_dynamic(
    api: Api<DynamicObject>,
    resource: ApiResource,
    config: watcher::Config,
    health: Arc<Health>,
) -> (Store<DynamicObject>, Events<DynamicObject>) {
    reflect(api, resource, config, health)
}

/// A watch of `api` filling a cache of objects of `kind`, with its health.
fn reflect<K>(
    api: Api<K>,
    kind: K::DynamicType,
    config: watcher::Config,
    health: Arc<Health>,
) -> (Store<K>, Events<K>)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    let writer = reflector::store::Writer::new(kind);
    let reader = writer.as_reader();
    let stream = watch(api, config)
        .default_backoff()
        .map(move |r| {
            health.saw(&r);
            r
        })
        .reflect(writer)
        .boxed();
    (reader, stream)
}

impl Caches {
    /// The caches over every namespace (or over `scope` alone), and the
    /// streams that fill them.
    pub fn start(client: &Client, scope: Option<&str>) -> (Arc<Caches>, Triggers) {
        let owned = || watcher::Config::default().labels(label::CLUSTER);
        let mut health = Vec::new();
        let mut h = |kind: &'static str| {
            let x = Arc::new(Health::default());
            health.push((kind, x.clone()));
            x
        };
        let (clusters, clusters_s) = reflected(
            scoped(client, scope),
            watcher::Config::default(),
            h("MySQLClusters"),
        );
        let policy_resource = ApiResource::erase::<FailoverPolicy>(&());
        let (policies, policies_s) = reflected_dynamic(
            match scope {
                Some(ns) => Api::namespaced_with(client.clone(), ns, &policy_resource),
                None => Api::all_with(client.clone(), &policy_resource),
            },
            policy_resource.clone(),
            watcher::Config::default(),
            h("FailoverPolicies"),
        );
        // Only the Secrets orca made for a cluster or was pointed at
        // (`spec.credentialsSecret`, which it labels when it first finds
        // it): never the namespace's other Secrets.
        let (secrets, secrets_s) = reflected(scoped(client, scope), owned(), h("Secrets"));
        let (pods, pods_s) = reflected(scoped(client, scope), owned(), h("Pods"));
        let (services, services_s) = reflected(scoped(client, scope), owned(), h("Services"));
        let (stateful_sets, sts_s) = reflected(scoped(client, scope), owned(), h("StatefulSets"));
        let (config_maps, cm_s) = reflected(scoped(client, scope), owned(), h("ConfigMaps"));
        let (disruption_budgets, pdb_s) =
            reflected(scoped(client, scope), owned(), h("PodDisruptionBudgets"));
        let (network_policies, np_s) =
            reflected(scoped(client, scope), owned(), h("NetworkPolicies"));
        let caches = Arc::new(Caches {
            clusters,
            policies,
            policy_resource,
            secrets,
            pods,
            services,
            stateful_sets,
            config_maps,
            disruption_budgets,
            network_policies,
            health,
        });
        let triggers = Triggers {
            clusters: clusters_s,
            policies: policies_s,
            secrets: secrets_s,
            pods: pods_s,
            services: services_s,
            stateful_sets: sts_s,
            config_maps: cm_s,
            disruption_budgets: pdb_s,
            network_policies: np_s,
        };
        (caches, triggers)
    }

    /// The health of the cache of `kind` (as [`Caches::start`] names it).
    fn health(&self, kind: &str) -> Option<&Health> {
        self.health
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, h)| h.as_ref())
    }

    /// Whether every cache has listed once.
    pub fn ready(&self) -> bool {
        self.health.iter().all(|(_, h)| h.ready())
    }

    /// The caches not ready yet.
    pub fn not_ready(&self) -> Vec<&'static str> {
        self.health
            .iter()
            .filter(|(_, h)| !h.ready())
            .map(|(k, _)| *k)
            .collect()
    }

    /// Waits until every cache has listed once, at most `limit`.
    pub async fn wait_ready(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while !self.ready() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    }

    pub fn cluster(&self, namespace: &str, name: &str) -> Option<Arc<MySQLCluster>> {
        self.clusters.get(&ObjectRef::new(name).within(namespace))
    }

    pub fn secret(&self, namespace: &str, name: &str) -> Option<Arc<Secret>> {
        self.secrets.get(&ObjectRef::new(name).within(namespace))
    }

    pub fn service(&self, namespace: &str, name: &str) -> Option<Arc<Service>> {
        self.services.get(&ObjectRef::new(name).within(namespace))
    }

    /// The pods of a cluster (labelled `orca.dev/cluster=<cluster>`), by
    /// name.
    pub fn pods_of(&self, namespace: &str, cluster: &str) -> Vec<Arc<Pod>> {
        let mut pods = self.pods.state_filter(|p| {
            p.namespace().as_deref() == Some(namespace)
                && p.labels().get(label::CLUSTER).map(String::as_str) == Some(cluster)
        });
        pods.sort_by_key(|p| p.name_any());
        pods
    }

    /// The cached FailoverPolicy `name` as one read of it would answer
    /// ([`policy::cached_outcome`]): an error while the cache is not
    /// ready or its watch fails.
    pub fn policy(
        &self,
        namespace: &str,
        name: &str,
        explicit: bool,
    ) -> Result<Option<FailoverPolicy>, String> {
        let usable = self
            .health("FailoverPolicies")
            .map_or(Err("no cache of FailoverPolicies".to_string()), |h| {
                h.usable("FailoverPolicies")
            });
        let found = usable.map(|()| {
            self.policies
                .get(&ObjectRef::new_with(name, self.policy_resource.clone()).within(namespace))
        });
        match found {
            // As stored: decoded now, its error that of a read.
            Ok(Some(p)) => policy::read_outcome(name, explicit, decode_policy(&p)),
            Ok(None) => policy::cached_outcome(name, explicit, Ok(None)),
            Err(why) => policy::cached_outcome(name, explicit, Err(why)),
        }
    }

    /// The clusters that name the Secret `name` in `namespace`.
    pub fn clusters_with_secret(&self, namespace: &str, name: &str) -> Vec<Arc<MySQLCluster>> {
        self.clusters.state_filter(|c| {
            c.namespace().as_deref() == Some(namespace) && c.credentials_secret_name() == name
        })
    }

    /// The clusters whose policy is `name` in `namespace`.
    pub fn clusters_with_policy(&self, namespace: &str, name: &str) -> Vec<Arc<MySQLCluster>> {
        self.clusters.state_filter(|c| {
            c.namespace().as_deref() == Some(namespace) && policy::policy_name(c).0 == name
        })
    }
}

/// A FailoverPolicy as stored, decoded (its kind and version added when
/// the watch left them out, as list items may).
fn decode_policy(p: &DynamicObject) -> Result<FailoverPolicy, kube::Error> {
    let mut v = serde_json::to_value(p).map_err(kube::Error::SerdeError)?;
    if let Some(o) = v.as_object_mut() {
        o.entry("apiVersion")
            .or_insert_with(|| FailoverPolicy::api_version(&()).into());
        o.entry("kind")
            .or_insert_with(|| FailoverPolicy::kind(&()).into());
    }
    serde_json::from_value(v).map_err(kube::Error::SerdeError)
}

/// Drives a stream to its end, ignoring its items (errors are logged).
pub async fn drive<T, E: std::fmt::Display>(s: impl Stream<Item = Result<T, E>>, kind: &str) {
    s.for_each(|r| async move {
        if let Err(e) = r {
            tracing::debug!(kind, error = %e, "watch error");
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(v: serde_json::Value) -> DynamicObject {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn policies_are_decoded_as_read_each_on_its_own() {
        let good = stored(serde_json::json!({
            "metadata": {"name": "default", "namespace": "ns"},
            "spec": {"autoFailover": false},
        }));
        let p = decode_policy(&good).unwrap();
        assert!(!p.spec.auto_failover);
        let bad = stored(serde_json::json!({
            "apiVersion": "orca.dev/v1alpha1", "kind": "FailoverPolicy",
            "metadata": {"name": "default", "namespace": "ns"},
            "spec": {"autoFailover": "https://hooks.example/T0KEN"},
        }));
        let why = policy::read_outcome("default", false, decode_policy(&bad)).unwrap_err();
        assert!(why.contains("cannot be decoded"), "{why}");
        assert!(!why.contains("T0KEN"), "{why}");
    }
}
