//! `orca operator`: the controller of `MySQLCluster` resources. The
//! reconciler keeps each cluster's objects in shape (credentials, config,
//! StatefulSet, Services, PodDisruptionBudget, all owned by the cluster)
//! and runs one [`Worker`] per cluster for everything that needs the
//! servers; a finalizer stops the worker when the cluster goes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use super::crd::cluster::MySQLCluster;
use super::objects::{self, ObjectError};
use super::ordinal::pod_ordinal;
use super::worker::{MANAGER, Worker};

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
    /// The fencing epoch this operator acts in, when it runs with leader
    /// election.
    pub epoch: Option<i64>,
    /// The fence every worker checks before each round.
    pub fence: Option<crate::ha::Fence>,
}

impl Context {
    pub fn new(client: Client, identity: &str, epoch: Option<i64>) -> Arc<Context> {
        Self::with_fence(client, identity, epoch, None)
    }

    pub fn with_fence(
        client: Client,
        identity: &str,
        epoch: Option<i64>,
        fence: Option<crate::ha::Fence>,
    ) -> Arc<Context> {
        let reporter = Reporter {
            controller: "orca".into(),
            instance: Some(identity.into()),
        };
        Arc::new(Context {
            client,
            reporter,
            workers: Mutex::new(HashMap::new()),
            epoch,
            fence,
        })
    }

    /// Stops every worker (on shutdown or loss of leadership).
    pub async fn stop_all(&self) {
        for (_, h) in self.workers.lock().await.drain() {
            h.abort();
        }
    }
}

async fn apply<K>(api: &Api<K>, name: &str, obj: &K) -> Result<(), OperatorError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await?;
    Ok(())
}

async fn ensure_secret(c: &MySQLCluster, client: &Client, ns: &str) -> Result<(), OperatorError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let password = || random_password().map_err(|e| OperatorError::Other(e.to_string()));
    if let Some(existing) = api.get_opt(&c.credentials_secret_name()).await? {
        // A Secret from before the application account, or the user's
        // without it: the missing keys are added, the others kept.
        if objects::lacks_app_keys(&existing)
            && let Some(patch) = objects::app_keys_patch(&existing, &password()?)
        {
            match api
                .patch(
                    &existing.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(patch),
                )
                .await
            {
                Ok(_) => {}
                // Changed meanwhile: the next reconcile looks again.
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
        return Ok(());
    }
    let (root, repl, app) = (password()?, password()?, password()?);
    match api
        .create(
            &PostParams::default(),
            &objects::credentials_secret(c, &root, &repl, &app)?,
        )
        .await
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

async fn apply_objects(c: &MySQLCluster, ctx: &Context) -> Result<Action, OperatorError> {
    let ns = c.namespace().ok_or(ObjectError::NoNamespace)?;
    let client = &ctx.client;
    if c.validate().is_err() {
        // The worker reports the problems in status; nothing is built
        // from an invalid spec.
        ensure_worker(c, ctx).await;
        return Ok(Action::requeue(Duration::from_secs(30)));
    }
    ensure_secret(c, client, &ns).await?;
    apply(
        &Api::<ConfigMap>::namespaced(client.clone(), &ns),
        &objects::config_map_name(c),
        &objects::config_map(c)?,
    )
    .await?;
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    apply(
        &services,
        &objects::headless_service_name(c),
        &objects::headless_service(c)?,
    )
    .await?;
    apply(
        &services,
        &objects::replicas_service_name(c),
        &objects::replicas_service(c)?,
    )
    .await?;
    let primary = c.status.as_ref().and_then(|s| s.primary.clone());
    apply(
        &services,
        &objects::primary_service_name(c),
        &objects::primary_service(c, primary.as_deref())?,
    )
    .await?;
    let mut sts = objects::stateful_set(c)?;
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
    apply(
        &Api::<StatefulSet>::namespaced(client.clone(), &ns),
        &c.name_any(),
        &sts,
    )
    .await?;
    apply(
        &Api::<PodDisruptionBudget>::namespaced(client.clone(), &ns),
        &c.name_any(),
        &objects::pod_disruption_budget(c)?,
    )
    .await?;
    ensure_worker(c, ctx).await;
    Ok(Action::requeue(Duration::from_secs(10)))
}

async fn ensure_worker(c: &MySQLCluster, ctx: &Context) {
    let ns = c.namespace().unwrap_or_default();
    let key = (ns.clone(), c.name_any());
    let mut workers = ctx.workers.lock().await;
    if workers.get(&key).is_some_and(|h| !h.is_finished()) {
        return;
    }
    let mut worker = Worker::new(ctx.client.clone(), ns, c.name_any(), ctx.reporter.clone());
    worker.epoch = ctx.epoch;
    worker.fence = ctx.fence.clone();
    let name = c.name_any();
    let handle = tokio::spawn(async move {
        loop {
            match worker.tick().await {
                Ok(Some(delay)) => tokio::time::sleep(delay).await,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(cluster = %name, error = %e, "cluster round failed");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        }
    });
    workers.insert(key, handle);
}

async fn cleanup(c: &MySQLCluster, ctx: &Context) -> Result<Action, OperatorError> {
    let key = (c.namespace().unwrap_or_default(), c.name_any());
    if let Some(h) = ctx.workers.lock().await.remove(&key) {
        h.abort();
    }
    tracing::info!(cluster = %c.name_any(), "cluster deleted: its objects go with it (owner references)");
    Ok(Action::await_change())
}

async fn reconcile(c: Arc<MySQLCluster>, ctx: Arc<Context>) -> Result<Action, OperatorError> {
    let ns = c.namespace().unwrap_or_default();
    let api: Api<MySQLCluster> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&api, FINALIZER, c, |event| async {
        match event {
            Finalizer::Apply(c) => apply_objects(&c, &ctx).await,
            Finalizer::Cleanup(c) => cleanup(&c, &ctx).await,
        }
    })
    .await
    .map_err(|e| OperatorError::Finalizer(e.to_string()))
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
    let client = ctx.client.clone();
    let clusters: Api<MySQLCluster> = Api::all(client.clone());
    Controller::new(clusters, watcher::Config::default())
        .owns(
            Api::<StatefulSet>::all(client.clone()),
            watcher::Config::default(),
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
}

#[cfg(test)]
mod tests {
    use super::random_password;

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
