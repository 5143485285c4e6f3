use super::*;
use crate::plan::bootstrap::{self as plan_bootstrap, BootstrapOptions};

impl Worker {
    /// First start, once every pod is ready: the plan of
    /// [`plan_bootstrap::bootstrap`] (pod 0 made the primary, or the
    /// replication that exists adopted), run by the executor like every
    /// other plan (its steps fenced by the epoch, its record logged), then
    /// every other pod joined to the primary.
    pub(super) async fn bootstrap(
        &mut self,
        cluster: &MySQLCluster,
        pods: &[PodView],
        app: Option<&Credentials>,
    ) -> Result<Option<Duration>, WorkerError> {
        let wanted = cluster.spec.replicas.max(1) as usize;
        let mut ready: Vec<&PodView> = pods
            .iter()
            .filter(|p| p.ready && p.key.is_some() && !p.deleting)
            .collect();
        if ready.len() < wanted {
            self.patch_status(json!({
                "observedGeneration": cluster.metadata.generation,
                "conditions": conditions(cluster, &[
                    (condition::RECONCILING, true, "WaitingForPods", format!("{} of {} pods ready", ready.len(), wanted)),
                    (condition::AVAILABLE, false, "Bootstrapping", "no primary yet".into()),
                ]),
            }))
            .await?;
            return Ok(Some(Duration::from_secs(1)));
        }
        ready.sort_by_key(|p| p.ordinal.unwrap_or(u32::MAX));
        let members: Vec<InstanceKey> = ready.iter().filter_map(|p| p.key.clone()).collect();
        self.engine_mut().round().await;
        // The application account, when it is in order; if not,
        // ensure_app_account reports it.
        let dbs = &cluster.spec.app_databases;
        let app = app.filter(|a| accounts::check(&a.user, dbs).is_ok());
        let opts = BootstrapOptions {
            semi_sync: cluster
                .spec
                .semi_sync
                .as_ref()
                .filter(|s| s.enabled)
                .map(|s| s.wait_count.max(1) as u32),
            app_databases: app.map(|_| dbs.clone()),
        };
        let decided = plan_bootstrap::bootstrap(self.engine_mut().topology(), &members, &opts);
        let b = match decided {
            Ok(b) => b,
            Err(e) => {
                self.bootstrap_failed(cluster, "BootstrapRefused", e.to_string())
                    .await;
                return Ok(Some(Duration::from_secs(5)));
            }
        };
        let primary_pod = pod_of(pods, &b.primary);
        if !b.adopted {
            let meta = OperationMeta {
                id: operation_id(&self.name, b.plan.kind),
                cluster: self.name.clone(),
                trigger: "Bootstrap".into(),
            };
            let record = self.engine_mut().executor.execute(&b.plan, &meta).await;
            tracing::info!(
                cluster = %self.name,
                operation = %record.id,
                outcome = ?record.outcome,
                steps = record.steps.len(),
                "bootstrap of {primary_pod}"
            );
            if !record.outcome.succeeded() {
                let why = match &record.outcome {
                    Outcome::Deposed(s) => format!("not the leader any more: {s}"),
                    Outcome::Failed(e) | Outcome::RolledBack(e) | Outcome::Vetoed(e) => e.clone(),
                    Outcome::Succeeded => String::new(),
                };
                self.bootstrap_failed(
                    cluster,
                    "BootstrapFailed",
                    format!("making {primary_pod} the primary: {why}"),
                )
                .await;
                return Ok(Some(Duration::from_secs(2)));
            }
            if let Some(a) = app {
                self.app_account = Some(accounts::fingerprint(&a.user, a.password(), dbs));
            }
        }
        self.bootstrap_reported = None;
        let how = if b.adopted {
            "adopted: it already had replicas"
        } else {
            "bootstrapped"
        };
        self.event(
            cluster,
            false,
            "PrimaryElected",
            "Bootstrap",
            format!("{primary_pod} is the primary ({how})"),
        )
        .await;
        self.patch_status(json!({ "primary": primary_pod, "epoch": self.epoch }))
            .await?;
        self.join_replicas(cluster, pods, Some(&primary_pod)).await;
        self.apply_roles(cluster, pods, Some(&primary_pod)).await?;
        self.write_status(cluster, pods, Some(&primary_pod)).await?;
        Ok(Some(Duration::from_millis(500)))
    }

    /// A bootstrap that could not be planned or run: an Event when the
    /// reason changes, and the Reconciling condition says why.
    async fn bootstrap_failed(&mut self, cluster: &MySQLCluster, reason: &str, why: String) {
        tracing::warn!(cluster = %self.name, reason, "{why}");
        if self.bootstrap_reported.as_deref() != Some(why.as_str()) {
            self.bootstrap_reported = Some(why.clone());
            self.event(cluster, true, reason, "Bootstrap", why.clone())
                .await;
        }
        if let Err(e) = self
            .patch_status(json!({
                "observedGeneration": cluster.metadata.generation,
                "conditions": conditions(cluster, &[
                    (condition::RECONCILING, true, reason, why),
                    (condition::AVAILABLE, false, "Bootstrapping", "no primary yet".into()),
                ]),
            }))
            .await
        {
            tracing::warn!(cluster = %self.name, error = %e, "cannot write the bootstrap's conditions");
        }
    }
}
