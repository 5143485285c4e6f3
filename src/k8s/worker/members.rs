use super::*;

impl Worker {
    /// The application account on the primary, made (idempotently) when
    /// this worker starts and whenever it changes (the Secret's keys,
    /// `spec.appDatabases`): so a cluster from before the account gets it
    /// too. Only on a primary the last probe saw writable; a failure is
    /// an Event (once) and is retried next round, and holds up nothing
    /// else.
    pub(super) async fn ensure_app_account(
        &mut self,
        cluster: &MySQLCluster,
        pods: &[PodView],
        primary: Option<&str>,
        app: Option<&Credentials>,
    ) {
        // No keys yet: the reconciler adds them to the Secret.
        let Some(app) = app else { return };
        let dbs = &cluster.spec.app_databases;
        let fp = accounts::fingerprint(&app.user, app.password(), dbs);
        if self.app_account == Some(fp) {
            return;
        }
        if let Err(why) = accounts::check(&app.user, dbs) {
            return self.app_account_failed(cluster, fp, why).await;
        }
        let Some(pod) = primary.and_then(|n| pods.iter().find(|p| p.name == n)) else {
            return;
        };
        let Some(k) = pod.key.clone().filter(|_| !pod.deleting) else {
            return;
        };
        let writable = self
            .engine
            .topology()
            .get(&k)
            .and_then(|n| n.snapshot.as_ref())
            .is_some_and(|s| !s.is_read_only());
        if !writable {
            return;
        }
        // The executor holds the account (set each round from the Secret).
        let plan = crate::plan::bootstrap::app_account(&k, dbs);
        let meta = OperationMeta {
            id: operation_id(&self.name, plan.kind),
            cluster: self.name.clone(),
            trigger: "AppAccount".into(),
        };
        let record = self.engine_mut().executor.execute(&plan, &meta).await;
        match &record.outcome {
            Outcome::Succeeded => {
                self.app_account = Some(fp);
                self.event(
                    cluster,
                    false,
                    "AppAccountReady",
                    "Bootstrap",
                    format!(
                        "the application account {} has every privilege on {} and no other",
                        app.user,
                        if dbs.is_empty() {
                            "no database".to_string()
                        } else {
                            dbs.join(", ")
                        }
                    ),
                )
                .await;
            }
            // The new leader makes it.
            Outcome::Deposed(_) => {}
            Outcome::Failed(e) | Outcome::RolledBack(e) | Outcome::Vetoed(e) => {
                let why = format!("on {}: {e}", pod.name);
                self.app_account_failed(cluster, fp, why).await;
            }
        }
    }

    pub(super) async fn app_account_failed(
        &mut self,
        cluster: &MySQLCluster,
        fp: u64,
        why: String,
    ) {
        tracing::warn!(cluster = %self.name, "the application account: {why}");
        if self.app_account_reported != Some(fp) {
            self.app_account_reported = Some(fp);
            self.event(
                cluster,
                true,
                "AppAccountFailed",
                "Bootstrap",
                format!("the application account cannot be made: {why}"),
            )
            .await;
        }
    }

    /// The primary's server restarted (read only, as every server starts)
    /// without a failover: orca makes it writable again, provided it holds
    /// everything its replicas hold and nothing else takes writes.
    pub(super) async fn reopen_primary(
        &mut self,
        cluster: &MySQLCluster,
        pods: &[PodView],
        primary: Option<&str>,
    ) {
        let Some(pod) = primary.and_then(|n| pods.iter().find(|p| p.name == n)) else {
            return;
        };
        let Some(k) = pod.key.clone() else { return };
        if pod.deleting {
            return;
        }
        let semi_sync = cluster.spec.semi_sync.as_ref().is_some_and(|s| s.enabled);
        let Some(plan) = membership::reopen_primary(self.engine_mut().topology(), &k, semi_sync)
        else {
            return;
        };
        let meta = OperationMeta {
            id: operation_id(&self.name, plan.kind),
            cluster: self.name.clone(),
            trigger: "PrimaryRestarted".into(),
        };
        let record = self.engine_mut().executor.execute(&plan, &meta).await;
        if record.outcome.succeeded() {
            self.event(cluster, false, "PrimaryReopened", "Reopen", format!("the primary {} restarted read only and holds everything its replicas hold: writes enabled again", pod.name)).await;
        }
    }

    /// Points pods that replicate from nothing (new pods, a returning
    /// former primary) or from an address no pod has any more at the
    /// primary, when they can follow it; reports those that cannot.
    pub(super) async fn join_replicas(
        &mut self,
        cluster: &MySQLCluster,
        pods: &[PodView],
        primary: Option<&str>,
    ) {
        let Some(primary) = primary else { return };
        let Some(pkey) = pods
            .iter()
            .find(|p| p.name == primary)
            .and_then(|p| p.key.clone())
        else {
            return;
        };
        let members: BTreeSet<InstanceKey> = pods.iter().filter_map(|p| p.key.clone()).collect();
        // The pod being re-provisioned is the repair's to join.
        let copying = self.repairs.target().map(str::to_string);
        let leaving: BTreeSet<InstanceKey> = pods
            .iter()
            .filter(|p| p.deleting || copying.as_deref() == Some(p.name.as_str()))
            .filter_map(|p| p.key.clone())
            .collect();
        let membership::Joining { plan, unjoinable } =
            membership::join_members(self.engine_mut().topology(), &pkey, &members, &leaving);
        let with_agent = self.pods_with_agent();
        for (k, extra) in unjoinable {
            let pod = pod_of(pods, &k);
            // A pod with the agent is the repair's to report and mend.
            if with_agent.contains(&pod) {
                continue;
            }
            if self.reported_unjoinable.insert(k.clone()) {
                self.event(
                    cluster,
                    true,
                    "CannotRejoin",
                    "Join",
                    format!("{pod} has transactions the primary {primary} lacks ({extra}); it stays out of replication until it is re-provisioned"),
                )
                .await;
            }
        }
        if plan.steps.is_empty() {
            return;
        }
        let joined: Vec<String> = plan
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::ChangeSource { on, .. } => Some(pod_of(pods, on)),
                _ => None,
            })
            .collect();
        let meta = OperationMeta {
            id: operation_id(&self.name, PlanKind::Repoint),
            cluster: self.name.clone(),
            trigger: "Join".into(),
        };
        let record = self.engine_mut().executor.execute(&plan, &meta).await;
        if record.outcome.succeeded() {
            self.event(
                cluster,
                false,
                "ReplicaJoined",
                "Join",
                format!("{} replicate from {primary}", joined.join(", ")),
            )
            .await;
        } else {
            self.event(
                cluster,
                true,
                "JoinFailed",
                "Join",
                format!("joining {}: {:?}", joined.join(", "), record.outcome),
            )
            .await;
        }
    }

    /// Labels: the old primary loses its role label first, then the new
    /// primary gets it, then the primary Service is pinned to it by pod
    /// name — two pods can never both receive writes through it. Only
    /// what the cached objects do not show already is written: the worker
    /// is the one writer of the role labels and of the primary Service's
    /// selector.
    pub(super) async fn apply_roles(
        &self,
        cluster: &MySQLCluster,
        pods: &[PodView],
        primary: Option<&str>,
    ) -> Result<(), WorkerError> {
        let api = self.pods();
        let set = |role: &'static str| {
            Patch::Merge(json!({ "metadata": { "labels": { label::ROLE: role } } }))
        };
        for p in pods.iter().filter(|p| Some(p.name.as_str()) != primary) {
            if p.role_label.as_deref() != Some(label::ROLE_REPLICA) {
                guarded::bounded(
                    "labelling a replica",
                    api.patch(&p.name, &PatchParams::default(), &set(label::ROLE_REPLICA)),
                )
                .await?;
            }
        }
        // Moved early this round (neither the round's pods nor the caches
        // may show it yet): done.
        let moved = self
            .moved_early
            .as_deref()
            .is_some_and(|m| Some(m) == primary);
        if let Some(pp) = primary.and_then(|n| pods.iter().find(|p| p.name == n))
            && pp.role_label.as_deref() != Some(label::ROLE_PRIMARY)
            && !moved
        {
            label_primary(&api, &pp.name).await?;
        }
        let svc = objects::primary_service(cluster, primary)?;
        let name = objects::primary_service_name(cluster);
        let cached = self.caches.service(&self.namespace, &name);
        if moved || !selector_differs(&svc, cached.as_deref()) {
            return Ok(());
        }
        let services: Api<Service> = Api::namespaced(self.client.clone(), &self.namespace);
        pin_primary_service(&services, &svc).await
    }
}

/// Labels the pod `pod` as the primary.
async fn label_primary(pods: &Api<Pod>, pod: &str) -> Result<(), WorkerError> {
    let role =
        Patch::Merge(json!({ "metadata": { "labels": { label::ROLE: label::ROLE_PRIMARY } } }));
    guarded::bounded(
        "labelling the primary",
        pods.patch(pod, &PatchParams::default(), &role),
    )
    .await?;
    Ok(())
}

/// Writes the primary Service `svc` (its selector pins the primary pod).
async fn pin_primary_service(services: &Api<Service>, svc: &Service) -> Result<(), WorkerError> {
    guarded::bounded(
        "pinning the primary Service",
        services.patch(
            &svc.name_any(),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(svc),
        ),
    )
    .await?;
    Ok(())
}

/// Sends the primary Service's traffic to the pod `pod`: labelled the
/// primary, and pinned by the Service's selector. The former primary
/// keeps its label until [`Worker::apply_roles`]: the pin alone takes it
/// out of the Service.
pub(super) async fn move_traffic(
    pods: &Api<Pod>,
    services: &Api<Service>,
    cluster: &MySQLCluster,
    pod: &str,
) -> Result<(), WorkerError> {
    label_primary(pods, pod).await?;
    pin_primary_service(services, &objects::primary_service(cluster, Some(pod))?).await
}

/// Whether the primary Service as cached (`None`: not there) lacks the
/// selector of `desired`.
pub(super) fn selector_differs(desired: &Service, cached: Option<&Service>) -> bool {
    let selector = |s: &Service| s.spec.as_ref().and_then(|s| s.selector.clone());
    cached.is_none_or(|c| selector(c) != selector(desired))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(selector: Option<&[(&str, &str)]>) -> Service {
        let mut s = Service::default();
        if let Some(sel) = selector {
            s.spec = Some(k8s_openapi::api::core::v1::ServiceSpec {
                selector: Some(
                    sel.iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            });
        }
        s
    }

    #[test]
    fn the_selector_is_written_only_when_it_differs() {
        let pinned: &[(&str, &str)] = &[("orca.dev/role", "primary"), ("pod", "db-0")];
        let other: &[(&str, &str)] = &[("orca.dev/role", "primary"), ("pod", "db-1")];
        let desired = svc(Some(pinned));
        let table = [
            (None, true),
            (Some(svc(Some(pinned))), false),
            (Some(svc(Some(other))), true),
            (Some(svc(Some(&pinned[..1]))), true),
            (Some(svc(None)), true),
        ];
        for (i, (cached, want)) in table.into_iter().enumerate() {
            assert_eq!(
                selector_differs(&desired, cached.as_ref()),
                want,
                "case {i}"
            );
        }
    }
}
