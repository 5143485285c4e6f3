//! `orca operator`: the controller of `MySQLCluster` resources. The
//! reconciler keeps each cluster's objects in shape (credentials, config,
//! StatefulSet, Services, PodDisruptionBudget and, when the pods carry
//! the orca agent, the agent's NetworkPolicy, all owned by the cluster)
//! and runs one [`Worker`] per cluster for everything that needs the
//! servers; a finalizer stops the worker when the cluster goes.
//!
//! It is driven by watch events, not by a clock: the shared watch caches
//! ([`Caches`]) feed it the changes of clusters, of the objects they own,
//! of their Secrets and of their policies, and a cluster is reconciled
//! again on its own only every [`RESYNC`]. Each object is applied only
//! when what orca would apply differs from what it applied last: the hash
//! of the desired object is kept in its `orca.dev/applied-hash`
//! annotation, and the cached object that carries the same hash is left
//! alone ([`needs_apply`]); the NetworkPolicy is applied again also when
//! its spec or owner was edited ([`policy_drifted`]): what guards the
//! agent's port is not loosened by hand. The primary Service has one
//! writer, the worker, which pins its selector; the reconciler only
//! creates it when it is missing.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

use super::cache::{self, Caches};
use super::crd::cluster::MySQLCluster;
use super::crd::names::label;
use super::objects::{self, ObjectError};
use super::ordinal::pod_ordinal;
use super::worker::{KUBE_LIMIT, MANAGER, Worker};

/// How often a cluster is reconciled when nothing changes.
pub const RESYNC: Duration = Duration::from_secs(300);

/// How long [`Context::stop_all`] lets workers finish their round.
pub const STOP_GRACE: Duration = Duration::from_secs(20);

/// The annotation that keeps the hash of what orca last applied.
pub const APPLIED_HASH: &str = "orca.dev/applied-hash";

pub const FINALIZER: &str = "orca.dev/cleanup";

#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Objects(#[from] ObjectError),
    #[error("finalizer: {0}")]
    Finalizer(String),
    #[error("{0}")]
    Other(String),
}

/// Shared by every reconcile.
pub struct Context {
    pub client: Client,
    pub reporter: Reporter,
    workers: Mutex<HashMap<(String, String), JoinHandle<()>>>,
    /// Turned true to stop every worker after its current round.
    stopping: watch::Sender<bool>,
    /// The watch caches of the running [`run`].
    caches: std::sync::Mutex<Option<Arc<Caches>>>,
    /// The fencing epoch this operator acts in, when it runs with leader
    /// election.
    pub epoch: Option<i64>,
    /// The fence every worker checks before each round.
    pub fence: Option<crate::ha::Fence>,
    /// The store every worker feeds (one per operator process: a cheap
    /// handle on one shared writer), `None` without one.
    pub store: Option<crate::store::Store>,
    /// Where workers publish their views for the HTTP API, when it is
    /// served.
    pub published: std::sync::OnceLock<super::api::Published>,
    /// The Prometheus metrics, when they are served.
    pub metrics: std::sync::OnceLock<crate::metrics::Metrics>,
    /// The one namespace watched, when not every namespace is.
    pub scope: std::sync::OnceLock<String>,
    /// The orca agent the database pods carry, when the operator knows
    /// its image.
    pub agent: std::sync::OnceLock<objects::AgentSpec>,
    /// The namespace the operator runs in (`POD_NAMESPACE`), which the
    /// agent's NetworkPolicy admits; [`DEFAULT_NAMESPACE`] when unset.
    pub namespace: std::sync::OnceLock<String>,
}

/// The operator's namespace when it is not told
/// ([`Context::namespace`]), as `POD_NAMESPACE`'s default.
pub const DEFAULT_NAMESPACE: &str = "default";

impl Context {
    pub fn new(client: Client, identity: &str, epoch: Option<i64>) -> Arc<Context> {
        Self::with_fence(client, identity, epoch, None, None)
    }

    pub fn with_fence(
        client: Client,
        identity: &str,
        epoch: Option<i64>,
        fence: Option<crate::ha::Fence>,
        store: Option<crate::store::Store>,
    ) -> Arc<Context> {
        let reporter = Reporter {
            controller: "orca".into(),
            instance: Some(identity.into()),
        };
        Arc::new(Context {
            client,
            reporter,
            workers: Mutex::new(HashMap::new()),
            stopping: watch::Sender::new(false),
            caches: std::sync::Mutex::new(None),
            epoch,
            fence,
            store,
            published: std::sync::OnceLock::new(),
            metrics: std::sync::OnceLock::new(),
            scope: std::sync::OnceLock::new(),
            agent: std::sync::OnceLock::new(),
            namespace: std::sync::OnceLock::new(),
        })
    }

    /// The namespace the operator runs in ([`Context::namespace`]).
    pub fn own_namespace(&self) -> &str {
        self.namespace
            .get()
            .map_or(DEFAULT_NAMESPACE, String::as_str)
    }

    /// The watch caches ([`run`] starts them).
    pub fn caches(&self) -> Option<Arc<Caches>> {
        self.caches
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Stops every worker (on shutdown or loss of leadership): each
    /// finishes the round it is in (an operation ends at a step boundary,
    /// its journal written), within [`STOP_GRACE`]; those still running
    /// then are aborted.
    pub async fn stop_all(&self) {
        self.stopping.send_replace(true);
        let handles: Vec<_> = self.workers.lock().await.drain().collect();
        let deadline = tokio::time::Instant::now() + STOP_GRACE;
        for ((ns, name), mut h) in handles {
            if tokio::time::timeout_at(deadline, &mut h).await.is_err() {
                tracing::warn!(cluster = %name, namespace = %ns, "the worker did not finish its round in time: aborted");
                h.abort();
            }
        }
    }
}

/// A kube call bounded by [`KUBE_LIMIT`].
async fn bounded<T>(
    what: &str,
    fut: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, OperatorError> {
    match tokio::time::timeout(KUBE_LIMIT, fut).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(OperatorError::Other(format!(
            "{what}: timed out after {} ms",
            KUBE_LIMIT.as_millis()
        ))),
    }
}

/// The hash of an object as orca would apply it (FNV-1a of its JSON,
/// without the [`APPLIED_HASH`] annotation), in hexadecimal.
pub fn desired_hash<K: serde::Serialize>(desired: &K) -> String {
    let mut v = serde_json::to_value(desired).unwrap_or_default();
    if let Some(a) = v
        .pointer_mut("/metadata/annotations")
        .and_then(|a| a.as_object_mut())
    {
        a.remove(APPLIED_HASH);
        if a.is_empty()
            && let Some(m) = v.pointer_mut("/metadata").and_then(|m| m.as_object_mut())
        {
            m.remove("annotations");
        }
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in v.to_string().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Whether `desired` must be applied, given the object as cached: yes when
/// there is none, or when it does not carry the hash of `desired`.
pub fn needs_apply<K: Resource + serde::Serialize>(desired: &K, cached: Option<&K>) -> bool {
    let Some(cached) = cached else { return true };
    cached
        .meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(APPLIED_HASH))
        != Some(&desired_hash(desired))
}

/// Whether the cached NetworkPolicy was changed by someone else since
/// orca applied `desired`: its spec is not what orca applies (the
/// server's defaults, `protocol: TCP` and `policyTypes`, orca writes
/// itself), or it lost orca's owner reference. Its hash alone would not
/// tell: an edit keeps the annotation.
pub fn policy_drifted(desired: &NetworkPolicy, cached: &NetworkPolicy) -> bool {
    let owners = cached.metadata.owner_references.as_deref().unwrap_or(&[]);
    cached.spec != desired.spec
        || desired
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| !owners.contains(o))
}

/// Applies `desired` (server-side, orca's field manager) unless the
/// cached object says it is applied already ([`needs_apply`]); whether it
/// was applied.
async fn apply_if_changed<K>(
    api: &Api<K>,
    store: &Store<K>,
    desired: K,
) -> Result<bool, OperatorError>
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    apply_unless_kept(api, store, desired, |_, _| false).await
}

/// [`apply_if_changed`], applying also when `drifted(desired, cached)`
/// says the cached object was changed by someone else.
async fn apply_unless_kept<K>(
    api: &Api<K>,
    store: &Store<K>,
    mut desired: K,
    drifted: impl Fn(&K, &K) -> bool,
) -> Result<bool, OperatorError>
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let name = desired.meta().name.clone().unwrap_or_default();
    let ns = desired.meta().namespace.clone().unwrap_or_default();
    let cached = store.get(&ObjectRef::new(&name).within(&ns));
    let kept = cached
        .as_deref()
        .is_some_and(|cached| !drifted(&desired, cached));
    if kept && !needs_apply(&desired, cached.as_deref()) {
        return Ok(false);
    }
    let hash = desired_hash(&desired);
    desired
        .meta_mut()
        .annotations
        .get_or_insert_with(Default::default)
        .insert(APPLIED_HASH.to_string(), hash);
    tracing::debug!(kind = %K::kind(&()), name = %name, namespace = %ns, "applying");
    bounded(
        "applying an object",
        api.patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&desired),
        ),
    )
    .await?;
    Ok(true)
}

async fn ensure_secret(
    c: &MySQLCluster,
    client: &Client,
    ns: &str,
    caches: &Caches,
) -> Result<(), OperatorError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let password = || random_password().map_err(|e| OperatorError::Other(e.to_string()));
    // two passwords' worth of randomness
    let agent_token = || Ok::<_, OperatorError>(format!("{}{}", password()?, password()?));
    if let Some(existing) = caches.secret(ns, &c.credentials_secret_name()) {
        // A Secret from before the application account, or the user's
        // without it: the missing keys are added, the others kept.
        if objects::lacks_generated_keys(&existing)
            && let Some(patch) =
                objects::generated_keys_patch(&existing, &password()?, &agent_token()?)
        {
            match tokio::time::timeout(
                KUBE_LIMIT,
                api.patch(
                    &existing.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(patch),
                ),
            )
            .await
            .map_err(|_| OperatorError::Other("patching the Secret: timed out".into()))?
            {
                Ok(_) => {}
                // Changed meanwhile: the next reconcile looks again.
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
        return Ok(());
    }
    // A Secret the cluster points at (or one a user made under the
    // default name) is not in the cache, which holds labelled Secrets
    // only, until orca labels it as this cluster's. A patch needs no
    // read, and changes nothing else; a 404 says there is none to label.
    {
        let mark = json!({"metadata": {"labels": {(label::CLUSTER): c.name_any()}}});
        match tokio::time::timeout(
            KUBE_LIMIT,
            api.patch(
                &c.credentials_secret_name(),
                &PatchParams::default(),
                &Patch::Merge(mark),
            ),
        )
        .await
        .map_err(|_| OperatorError::Other("labelling the Secret: timed out".into()))?
        {
            // labelled: the cache gets it and the cluster is reconciled again
            Ok(_) => return Ok(()),
            // not there: orca makes it, as for a Secret of its own
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    let (root, repl, app) = (password()?, password()?, password()?);
    let secret = objects::credentials_secret(c, &root, &repl, &app, &agent_token()?)?;
    match tokio::time::timeout(KUBE_LIMIT, api.create(&PostParams::default(), &secret))
        .await
        .map_err(|_| OperatorError::Other("creating the Secret: timed out".into()))?
    {
        Ok(_) => Ok(()),
        // Someone else created it meanwhile: theirs stands.
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// A random password of 24 letters and digits, from the operating
/// system's randomness (bytes past the last whole multiple of the
/// alphabet's size are drawn again, so every letter is equally likely).
pub fn random_password() -> std::io::Result<String> {
    use std::io::Read;
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    const LIMIT: usize = 256 - 256 % ALPHABET.len();
    let mut random = std::fs::File::open("/dev/urandom")?;
    let mut out = String::with_capacity(24);
    let mut bytes = [0u8; 32];
    while out.len() < 24 {
        random.read_exact(&mut bytes)?;
        for b in bytes.iter().map(|b| *b as usize).filter(|b| *b < LIMIT) {
            if out.len() < 24 {
                out.push(ALPHABET[b % ALPHABET.len()] as char);
            }
        }
    }
    Ok(out)
}

/// Creates the primary Service when it is missing (its selector pinned
/// to the primary status names, or to no pod); never changes it: the
/// worker is its one writer.
async fn ensure_primary_service(
    c: &MySQLCluster,
    services: &Api<Service>,
    caches: &Caches,
    ns: &str,
) -> Result<(), OperatorError> {
    let name = objects::primary_service_name(c);
    if caches.service(ns, &name).is_some() {
        return Ok(());
    }
    let primary = c.status.as_ref().and_then(|s| s.primary.clone());
    let svc = objects::primary_service(c, primary.as_deref())?;
    let pp = PostParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    };
    match bounded("creating the primary Service", services.create(&pp, &svc)).await {
        Ok(_) => Ok(()),
        // There already (a cache behind): the worker keeps it.
        Err(OperatorError::Kube(kube::Error::Api(e))) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

async fn apply_objects(c: &MySQLCluster, ctx: &Context) -> Result<Action, OperatorError> {
    let ns = c.namespace().ok_or(ObjectError::NoNamespace)?;
    let client = &ctx.client;
    let Some(caches) = ctx.caches() else {
        return Err(OperatorError::Other(
            "the watch caches are not started".into(),
        ));
    };
    if !caches.ready() {
        tracing::debug!(cluster = %c.name_any(), waiting = ?caches.not_ready(), "the watch caches are not ready yet");
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    if c.validate().is_err() {
        // The worker reports the problems in status; nothing is built
        // from an invalid spec.
        ensure_worker(c, ctx, &caches).await;
        return Ok(Action::requeue(RESYNC));
    }
    ensure_secret(c, client, &ns, &caches).await?;
    apply_if_changed(
        &Api::<ConfigMap>::namespaced(client.clone(), &ns),
        &caches.config_maps,
        objects::config_map(c)?,
    )
    .await?;
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    apply_if_changed(&services, &caches.services, objects::headless_service(c)?).await?;
    apply_if_changed(&services, &caches.services, objects::replicas_service(c)?).await?;
    ensure_primary_service(c, &services, &caches, &ns).await?;
    // The agent's port guarded before the pods that open it.
    let policies = Api::<NetworkPolicy>::namespaced(client.clone(), &ns);
    if ctx.agent.get().is_some() {
        apply_unless_kept(
            &policies,
            &caches.network_policies,
            objects::network_policy(c, ctx.own_namespace())?,
            policy_drifted,
        )
        .await?;
    } else {
        remove_network_policy(c, &policies, &caches, &ns).await?;
    }
    let primary = c.status.as_ref().and_then(|s| s.primary.clone());
    let mut sts = objects::stateful_set(c, ctx.agent.get())?;
    // Never scale the primary away: keep its pod until the worker has
    // handed the role over.
    let primary_ordinal = primary
        .as_deref()
        .and_then(|p| pod_ordinal(&c.name_any(), p))
        .and_then(|o| i32::try_from(o).ok());
    if let (Some(o), Some(spec)) = (primary_ordinal, sts.spec.as_mut())
        && o >= c.spec.replicas
    {
        spec.replicas = Some(o + 1);
    }
    apply_if_changed(
        &Api::<StatefulSet>::namespaced(client.clone(), &ns),
        &caches.stateful_sets,
        sts,
    )
    .await?;
    apply_if_changed(
        &Api::<PodDisruptionBudget>::namespaced(client.clone(), &ns),
        &caches.disruption_budgets,
        objects::pod_disruption_budget(c)?,
    )
    .await?;
    ensure_worker(c, ctx, &caches).await;
    Ok(Action::requeue(RESYNC))
}

/// Without the agent, no NetworkPolicy: the one orca made while the pods
/// carried the agent (in the cache, owned by this cluster) is deleted.
async fn remove_network_policy(
    c: &MySQLCluster,
    policies: &Api<NetworkPolicy>,
    caches: &Caches,
    ns: &str,
) -> Result<(), OperatorError> {
    let name = objects::network_policy_name(c);
    let Some(cached) = caches
        .network_policies
        .get(&ObjectRef::new(&name).within(ns))
    else {
        return Ok(());
    };
    let uid = c.metadata.uid.as_deref();
    let owned = cached
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| Some(o.uid.as_str()) == uid && o.controller == Some(true));
    if !owned {
        return Ok(());
    }
    tracing::info!(cluster = %c.name_any(), policy = %name, "the pods carry no agent: its NetworkPolicy is deleted");
    match bounded(
        "deleting the NetworkPolicy",
        policies.delete(&name, &DeleteParams::default()),
    )
    .await
    {
        Ok(_) => Ok(()),
        // gone already (a cache behind)
        Err(OperatorError::Kube(kube::Error::Api(e))) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

async fn ensure_worker(c: &MySQLCluster, ctx: &Context, caches: &Arc<Caches>) {
    let ns = c.namespace().unwrap_or_default();
    let key = (ns.clone(), c.name_any());
    let mut workers = ctx.workers.lock().await;
    if *ctx.stopping.borrow() || workers.get(&key).is_some_and(|h| !h.is_finished()) {
        return;
    }
    let mut worker = Worker::new(
        ctx.client.clone(),
        ns,
        c.name_any(),
        ctx.reporter.clone(),
        caches.clone(),
    );
    worker.epoch = ctx.epoch;
    worker.fence = ctx.fence.clone();
    worker.feed = ctx.store.clone().map(|s| {
        crate::store::feed::Feed::new(s, format!("{}/{}", key.0, key.1)).with_epoch(ctx.epoch)
    });
    worker.published = ctx.published.get().cloned();
    worker.metrics = ctx.metrics.get().cloned();
    let metrics = worker.metrics.clone();
    let name = c.name_any();
    let mut stop = ctx.stopping.subscribe();
    let handle = tokio::spawn(async move {
        // Rounds run whole; a stop is seen between them.
        while !*stop.borrow_and_update() {
            let delay = match worker.tick().await {
                Ok(Some(delay)) => delay,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(cluster = %name, error = %e, "cluster round failed");
                    if let Some(m) = &metrics {
                        m.reconcile_error(e.metric_label());
                    }
                    Duration::from_secs(2)
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                r = stop.changed() => if r.is_err() { return },
            }
        }
        tracing::info!(cluster = %name, "worker stopped");
    });
    workers.insert(key, handle);
}

async fn cleanup(c: &MySQLCluster, ctx: &Context) -> Result<Action, OperatorError> {
    let key = (c.namespace().unwrap_or_default(), c.name_any());
    if let Some(h) = ctx.workers.lock().await.remove(&key) {
        h.abort();
    }
    if let Some(p) = ctx.published.get() {
        p.remove(&crate::api::ClusterId::new(key.0.clone(), key.1.clone()));
    }
    if let Some(m) = ctx.metrics.get() {
        m.forget_cluster(&key.0, &key.1);
    }
    tracing::info!(cluster = %c.name_any(), "cluster deleted: its objects go with it (owner references)");
    Ok(Action::await_change())
}

async fn reconcile(c: Arc<MySQLCluster>, ctx: Arc<Context>) -> Result<Action, OperatorError> {
    let ns = c.namespace().unwrap_or_default();
    let api: Api<MySQLCluster> = Api::namespaced(ctx.client.clone(), &ns);
    let reconciled = finalizer(&api, FINALIZER, c, |event| async {
        match event {
            Finalizer::Apply(c) => apply_objects(&c, &ctx).await,
            Finalizer::Cleanup(c) => cleanup(&c, &ctx).await,
        }
    });
    // Each call in it is bounded, but for the finalizer's own patch.
    match tokio::time::timeout(KUBE_LIMIT * 8, reconciled).await {
        Ok(r) => r.map_err(|e| OperatorError::Finalizer(e.to_string())),
        Err(_) => Err(OperatorError::Other("the reconcile timed out".into())),
    }
}

/// What in a cluster is the reconciler's business: its spec, its
/// deletion, its finalizers and its primary (which keeps its pod); not
/// the rest of its status, which the worker writes.
fn reconciled_part(c: &MySQLCluster) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    c.metadata.generation.hash(&mut h);
    c.metadata
        .deletion_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
        .hash(&mut h);
    c.metadata.finalizers.hash(&mut h);
    c.status
        .as_ref()
        .and_then(|s| s.primary.as_ref())
        .hash(&mut h);
    Some(h.finish())
}

fn refs<K>(found: Vec<Arc<K>>) -> Vec<ObjectRef<MySQLCluster>>
where
    K: Resource<DynamicType = ()>,
{
    found
        .iter()
        .map(|c| {
            ObjectRef::new(&c.meta().name.clone().unwrap_or_default())
                .within(&c.meta().namespace.clone().unwrap_or_default())
        })
        .collect()
}

fn error_policy(c: Arc<MySQLCluster>, e: &OperatorError, _ctx: Arc<Context>) -> Action {
    tracing::warn!(cluster = %c.name_any(), error = %e, "reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    ctx.stopping.send_replace(false);
    let (caches, t) = Caches::start(&ctx.client, ctx.scope.get().map(String::as_str));
    *ctx.caches.lock().unwrap_or_else(PoisonError::into_inner) = Some(caches.clone());
    // The pods' cache fills as this runs; nothing is reconciled from it.
    let pods = tokio::spawn(cache::drive(t.pods, "Pods"));
    let by_secret = {
        let caches = caches.clone();
        move |s: Secret| {
            refs(caches.clusters_with_secret(&s.namespace().unwrap_or_default(), &s.name_any()))
        }
    };
    let by_policy = {
        let caches = caches.clone();
        move |p: kube::api::DynamicObject| {
            refs(caches.clusters_with_policy(&p.namespace().unwrap_or_default(), &p.name_any()))
        }
    };
    let by_label = |p: NetworkPolicy| {
        let ns = p.namespace().unwrap_or_default();
        p.labels()
            .get(label::CLUSTER)
            .map(|name| ObjectRef::<MySQLCluster>::new(name).within(&ns))
    };
    let clusters = t
        .clusters
        .applied_objects()
        .predicate_filter(reconciled_part, Default::default());
    Controller::for_stream(clusters, caches.clusters.clone())
        .owns_stream(t.stateful_sets.touched_objects())
        .owns_stream(t.services.touched_objects())
        .owns_stream(t.config_maps.touched_objects())
        .owns_stream(t.disruption_budgets.touched_objects())
        // by label, not owner: one whose owner reference was taken off
        // is still its cluster's, and put back
        .watches_stream(t.network_policies.touched_objects(), by_label)
        .watches_stream(t.secrets.touched_objects(), by_secret)
        .watches_stream_with(
            t.policies.touched_objects(),
            by_policy,
            kube::api::ApiResource::erase::<super::crd::policy::FailoverPolicy>(&()),
        )
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "reconcile error");
            }
        })
        .await;
    ctx.stop_all().await;
    pods.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_map(data: &[(&str, &str)], annotations: &[(&str, &str)]) -> ConfigMap {
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some("db-config".into());
        cm.metadata.namespace = Some("ns".into());
        if !annotations.is_empty() {
            cm.metadata.annotations = Some(
                annotations
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            );
        }
        cm.data = Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        cm
    }

    #[test]
    fn an_object_is_applied_only_when_what_orca_applies_changed() {
        let desired = config_map(&[("my.cnf", "a")], &[]);
        let hash = desired_hash(&desired);
        assert_eq!(hash.len(), 16);
        assert_eq!(hash, desired_hash(&desired.clone()), "stable");
        let applied = config_map(&[("my.cnf", "a")], &[(APPLIED_HASH, &hash)]);
        assert_eq!(desired_hash(&applied), hash, "the annotation is not hashed");
        let changed = config_map(&[("my.cnf", "b")], &[]);
        assert_ne!(desired_hash(&changed), hash);
        // Someone else's annotation on the cached object: orca's hash stands.
        let annotated = config_map(
            &[("my.cnf", "a")],
            &[(APPLIED_HASH, &hash), ("kubectl.kubernetes.io/note", "x")],
        );
        let stale = config_map(&[("my.cnf", "a")], &[(APPLIED_HASH, "0123456789abcdef")]);
        let unmarked = config_map(&[("my.cnf", "a")], &[]);
        // (desired, cached, applied)
        let cases: &[(&ConfigMap, Option<&ConfigMap>, bool)] = &[
            (&desired, None, true),
            (&desired, Some(&applied), false),
            (&desired, Some(&annotated), false),
            (&changed, Some(&applied), true),
            (&desired, Some(&stale), true),
            (&desired, Some(&unmarked), true),
        ];
        for (i, (d, cached, want)) in cases.iter().enumerate() {
            assert_eq!(needs_apply(*d, *cached), *want, "case {i}");
        }
    }

    #[test]
    fn an_edited_or_disowned_network_policy_is_applied_again() {
        let spec = serde_yaml_ng::from_str("image: mariadb:10.11\n").unwrap();
        let mut c = MySQLCluster::new("db", spec);
        c.metadata.namespace = Some("ns".into());
        c.metadata.uid = Some("uid-1".into());
        let desired = objects::network_policy(&c, "orca").unwrap();
        let hash = desired_hash(&desired);
        let applied = {
            let mut p = desired.clone();
            p.metadata.annotations = Some([(APPLIED_HASH.to_string(), hash)].into());
            // what the server adds
            p.metadata.resource_version = Some("7".into());
            p
        };
        let edit = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut v = serde_json::to_value(&applied).unwrap();
            f(&mut v);
            serde_json::from_value::<NetworkPolicy>(v).unwrap()
        };
        // the agent's port opened to everyone: its `from` taken off
        let opened = edit(&|v| {
            v["spec"]["ingress"][1]
                .as_object_mut()
                .unwrap()
                .remove("from");
        });
        let widened = edit(&|v| {
            v["spec"]["ingress"][1]["from"][1]["namespaceSelector"] = json!({});
        });
        let no_types = edit(&|v| v["spec"]["policyTypes"] = json!(["Ingress", "Egress"]));
        let disowned = edit(&|v| v["metadata"]["ownerReferences"] = json!([]));
        let labelled = edit(&|v| v["metadata"]["labels"]["team"] = json!("db"));
        // (cached, applied again)
        let cases: &[(&str, &NetworkPolicy, bool)] = &[
            ("as applied", &applied, false),
            ("someone's label", &labelled, false),
            ("the agent's port opened", &opened, true),
            ("another namespace admitted", &widened, true),
            ("egress denied too", &no_types, true),
            ("the owner reference taken off", &disowned, true),
        ];
        for (what, cached, want) in cases {
            assert_eq!(policy_drifted(&desired, cached), *want, "{what}");
            assert!(
                !needs_apply(&desired, Some(*cached)),
                "{what}: the hash kept"
            );
        }
    }

    #[test]
    fn the_reconciler_looks_at_spec_deletion_finalizers_and_primary_only() {
        let spec = serde_yaml_ng::from_str("image: mariadb:10.11\nreplicas: 3\n").unwrap();
        let mut c = MySQLCluster::new("db", spec);
        c.metadata.generation = Some(1);
        let base = reconciled_part(&c);
        let mut status_only = c.clone();
        status_only.status = Some(Default::default());
        status_only.metadata.resource_version = Some("99".into());
        assert_eq!(reconciled_part(&status_only), base);
        let mut spec_changed = c.clone();
        spec_changed.metadata.generation = Some(2);
        assert_ne!(reconciled_part(&spec_changed), base);
        let mut primary = c.clone();
        primary.status = Some(crate::k8s::crd::cluster::MySQLClusterStatus {
            primary: Some("db-1".into()),
            ..Default::default()
        });
        assert_ne!(reconciled_part(&primary), base);
        let mut finalized = c.clone();
        finalized.metadata.finalizers = Some(vec![FINALIZER.into()]);
        assert_ne!(reconciled_part(&finalized), base);
    }

    #[test]
    fn passwords_are_24_characters_of_the_alphabet_and_differ() {
        let a = random_password().unwrap();
        let b = random_password().unwrap();
        assert_eq!(a.len(), 24);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()), "{a}");
        assert!(!a.contains(['0', '1', 'O', 'I', 'l']), "{a}");
        assert_ne!(a, b);
    }
}
