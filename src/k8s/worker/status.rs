use super::*;

impl Worker {
    pub(super) async fn write_status(
        &mut self,
        cluster: &MySQLCluster,
        pods: &[PodView],
        primary: Option<&str>,
    ) -> Result<(), WorkerError> {
        let engine = self.engine_mut();
        let topo = engine.topology().clone();
        let findings = engine.findings().to_vec();
        let blocked = engine.blocked_by_anti_flap().or_else(|| {
            (!engine.config.auto_recover).then(|| "automatic failover is off in the FailoverPolicy: annotate orca.dev/recover=true".to_string())
        });
        let problems = crate::analysis::instance_problems(&topo, Default::default());
        let mut topology = Vec::new();
        let mut ready = 0;
        for p in pods {
            let Some(k) = &p.key else { continue };
            let node = topo.get(k);
            let snap = node.and_then(|n| n.snapshot.as_ref());
            let r = snap.and_then(|s| s.replica.as_ref());
            let role = match node.map(|n| n.role) {
                _ if Some(p.name.as_str()) == primary => InstanceRole::Primary,
                Some(Role::IntermediatePrimary) => InstanceRole::Intermediate,
                Some(Role::Replica) => InstanceRole::Replica,
                _ => InstanceRole::Unknown,
            };
            let healthy = match role {
                InstanceRole::Primary => snap.is_some_and(|s| !s.is_read_only()),
                _ => r.is_some_and(|r| r.is_replicating()),
            };
            if healthy && p.ready {
                ready += 1;
            }
            let mut probs: Vec<String> = problems
                .get(k)
                .map(|v| v.iter().map(|p| p.to_string()).collect())
                .unwrap_or_default();
            for f in findings.iter().filter(|f| &f.instance == k) {
                probs.push(f.code.to_string());
            }
            probs.sort();
            probs.dedup();
            topology.push(InstanceStatus {
                pod: p.name.clone(),
                address: k.to_string(),
                role,
                source: r.map(|r| pod_of(pods, &r.source)),
                io_thread: r.map(|r| match r.io_running {
                    IoThreadState::Yes => ThreadState::Running,
                    IoThreadState::Connecting => ThreadState::Connecting,
                    IoThreadState::No => ThreadState::Stopped,
                }),
                sql_thread: r.map(|r| {
                    if r.sql_running {
                        ThreadState::Running
                    } else {
                        ThreadState::Stopped
                    }
                }),
                lag_seconds: node.and_then(|n| n.lag_ms).map(|ms| ms as f64 / 1000.0),
                gtid_position: snap
                    .and_then(|s| s.gtid.executed.as_ref())
                    .map(|g| g.to_string()),
                errant_gtids: node.and_then(|n| n.errant.as_ref()).map(|g| g.to_string()),
                problems: probs,
            });
        }
        let available = primary
            .and_then(|n| key_of(pods, n))
            .and_then(|k| topo.get(&k).and_then(|n| n.snapshot.clone()))
            .is_some_and(|s| !s.is_read_only());
        let failure = findings.iter().find(|f| f.is_failure());
        let mut degraded: Vec<String> = findings
            .iter()
            .map(|f| format!("{} ({})", f.code, pod_of(pods, &f.instance)))
            .collect();
        degraded.extend(self.invalid_annotations.iter().cloned());
        let healthy = findings.is_empty()
            && ready == pods.len()
            && pods.len() as i32 == cluster.spec.replicas;
        let conds = conditions(
            cluster,
            &[
                (
                    condition::AVAILABLE,
                    available,
                    if available {
                        "PrimaryWritable"
                    } else {
                        "NoWritablePrimary"
                    },
                    primary
                        .map(|p| format!("{p} takes writes"))
                        .unwrap_or_else(|| "no primary".into()),
                ),
                (
                    condition::HEALTHY,
                    healthy,
                    if healthy {
                        "AllReplicating"
                    } else {
                        "Problems"
                    },
                    if healthy {
                        "every instance replicates as it should".into()
                    } else {
                        format!(
                            "{ready} of {} instances ready{}",
                            cluster.spec.replicas,
                            if degraded.is_empty() {
                                String::new()
                            } else {
                                format!("; {}", degraded.join(", "))
                            }
                        )
                    },
                ),
                (
                    condition::DEGRADED,
                    !degraded.is_empty(),
                    if !findings.is_empty() {
                        "Problems"
                    } else if !degraded.is_empty() {
                        "InvalidAnnotation"
                    } else {
                        "NoProblems"
                    },
                    degraded.join(", "),
                ),
                (
                    condition::FAILED,
                    failure.is_some() && blocked.is_some(),
                    if failure.is_some() {
                        "RecoveryBlocked"
                    } else {
                        "NoFailure"
                    },
                    failure
                        .map(|f| {
                            format!("{}; {}", f.description, blocked.clone().unwrap_or_default())
                        })
                        .unwrap_or_default(),
                ),
                (
                    condition::RECONCILING,
                    pods.len() as i32 != cluster.spec.replicas,
                    "Scaling",
                    format!("{} pods, {} wanted", pods.len(), cluster.spec.replicas),
                ),
            ],
        );
        let status = MySQLClusterStatus {
            conditions: conds,
            primary: primary.map(String::from),
            ready_replicas: ready as i32,
            epoch: self.epoch,
            topology,
            last_operation: cluster
                .status
                .as_ref()
                .and_then(|s| s.last_operation.clone()),
            observed_generation: cluster.metadata.generation,
            ..Default::default()
        };
        let mut v =
            serde_json::to_value(&status).map_err(|e| WorkerError::Credentials(e.to_string()))?;
        if let Some(o) = v.as_object_mut() {
            o.remove("lastOperation");
        }
        self.patch_status(v).await
    }
}

/// Conditions for status, keeping the transition time of those whose
/// status did not change.
pub(super) fn conditions(
    cluster: &MySQLCluster,
    wanted: &[(&str, bool, &str, String)],
) -> Vec<Condition> {
    let old = cluster
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut out: Vec<Condition> = old.clone();
    for (type_, on, reason, message) in wanted {
        let status = if *on { "True" } else { "False" };
        let previous = old.iter().find(|c| c.type_ == *type_);
        let since = match previous {
            Some(p) if p.status == status => p.last_transition_time.clone(),
            _ => Time(time::now()),
        };
        out.retain(|c| c.type_ != *type_);
        out.push(Condition {
            type_: type_.to_string(),
            status: status.into(),
            reason: reason.to_string(),
            message: message.clone(),
            last_transition_time: since,
            observed_generation: cluster.metadata.generation,
        });
    }
    out.sort_by(|a, b| a.type_.cmp(&b.type_));
    out
}
