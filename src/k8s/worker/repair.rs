//! Replicas that repair themselves: the worker's side of a
//! re-provisioning by physical copy. What to copy, to where and from
//! where is [`crate::plan::repair`]'s; this carries it out over rounds,
//! through the orca agent in each pod:
//!
//! 1. the errant transactions recorded (an Event, the store), and a
//!    diverged member's binary log events saved on its volume by its
//!    agent (`POST /v1/save-tail`): nothing is discarded without a record;
//! 2. the target's agent armed with the sources' agents, best first;
//! 3. the target pod deleted (the fence checked first, the pod's uid as
//!    precondition): the StatefulSet makes it again, and its init
//!    container copies before `mysqld` starts, trying the next source
//!    when one fails;
//! 4. the progress (bytes, rate, source, attempt) read from the agent
//!    into `status.reprovision` and Events;
//! 5. once the server answers on the copy, it joins the primary from the
//!    GTID position the copy carries, and the agent forgets the copy.
//!
//! One copy at a time per cluster, bounded by [`COPY_TIMEOUT`]; a failed
//! one is tried again after [`RETRY_AFTER`] (automatic repairs only). A
//! run survives an operator restart: it is taken up from
//! `status.reprovision`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kube::api::{DeleteParams, Preconditions};

use super::*;
use crate::agent::client::AgentClient;
use crate::agent::{self, AgentState, CopyPhase};
use crate::k8s::crd::cluster::ReprovisionStatus;
use crate::k8s::crd::names::annotation;
use crate::plan::repair::{self, Hold, RepairReason};

/// The time limit of one re-provisioning, all attempts together.
pub const COPY_TIMEOUT: Duration = Duration::from_secs(3600);
/// What the worker allows on top of the copy's own limit (the pod's
/// restart, the server's start on the copy, the join) before it gives up.
const JOIN_MARGIN: Duration = Duration::from_secs(600);
/// After a failed automatic re-provisioning, how long until the same pod
/// is tried again.
pub const RETRY_AFTER: Duration = Duration::from_secs(60);
/// How often a copy's progress becomes an Event while it streams.
const PROGRESS_EVENTS: Duration = Duration::from_secs(30);

/// The phases of `status.reprovision.phase`.
pub mod phase {
    pub const SAVING: &str = "Saving";
    pub const COPYING: &str = "Copying";
    pub const JOINING: &str = "Joining";
    pub const SUCCEEDED: &str = "Succeeded";
    pub const FAILED: &str = "Failed";
}

/// A re-provisioning under way.
#[derive(Debug)]
pub(super) struct RepairRun {
    id: String,
    pod: String,
    /// The uid of the pod deleted for the copy: until the cache shows
    /// another, the pod seen is the old one.
    old_uid: Option<String>,
    started: Instant,
    status: ReprovisionStatus,
    last_event: Instant,
    last_seen: Option<(CopyPhase, u32)>,
}

/// The repair state a worker keeps between rounds.
#[derive(Debug, Default)]
pub(super) struct Repairs {
    run: Option<RepairRun>,
    /// Pods whose automatic re-provisioning failed, and when.
    failed: BTreeMap<String, Instant>,
    /// Holds already reported (pod, message), so each is an Event once.
    reported: BTreeSet<(String, String)>,
    /// The run that ended last, as status shows it.
    last: Option<ReprovisionStatus>,
    /// `status.reprovision` as last written.
    written: Option<ReprovisionStatus>,
}

impl Repairs {
    /// The pod being re-provisioned, which nothing else joins or touches.
    pub(super) fn target(&self) -> Option<&str> {
        self.run.as_ref().map(|r| r.pod.as_str())
    }
}

/// Whether `pod` carries the agent's sidecar.
fn has_agent(pod: &Pod) -> bool {
    pod.spec.as_ref().is_some_and(|s| {
        s.containers
            .iter()
            .any(|c| c.name == objects::AGENT_CONTAINER)
    })
}

fn agent_at(host: &str) -> String {
    format!("{host}:{}", agent::PORT)
}

impl Worker {
    /// The names of the cluster's pods that carry the agent.
    pub(super) fn pods_with_agent(&self) -> BTreeSet<String> {
        self.caches
            .pods_of(&self.namespace, &self.name)
            .iter()
            .filter(|p| has_agent(p))
            .filter_map(|p| p.metadata.name.clone())
            .collect()
    }

    /// The round's part of replica repair: a run under way goes on, or one
    /// starts when [`repair::decide`] says so (or the annotation
    /// `orca.dev/reprovision` asks). Errors are reported and end the run;
    /// only a status write or a deposition ends the round.
    pub(super) async fn repair_replicas(
        &mut self,
        cluster: &MySQLCluster,
        pods: &[PodView],
        primary: Option<&str>,
        token: Option<&str>,
    ) -> Result<(), WorkerError> {
        let cached: Vec<std::sync::Arc<Pod>> = self.caches.pods_of(&self.namespace, &self.name);
        let pkey = primary.and_then(|n| key_of(pods, n));
        if self.repairs.run.is_none() {
            self.repairs.run = self.run_from_status(cluster);
        }
        if let Some(run) = self.repairs.run.take() {
            let (Some(pkey), Some(token)) = (pkey.as_ref(), token) else {
                self.repairs.run = Some(run);
                return Ok(());
            };
            self.repairs.run = self.go_on(cluster, pods, &cached, pkey, token, run).await?;
            return self.write_reprovision().await;
        }
        let requested = cluster
            .annotations()
            .get(annotation::REPROVISION)
            .map(|v| v.trim().to_string());
        let Some(pkey) = pkey else {
            return Ok(());
        };
        let by = cluster
            .annotations()
            .get(crate::k8s::api::REQUESTED_BY)
            .cloned();
        let outcome = self
            .maybe_start(
                cluster,
                pods,
                &cached,
                &pkey,
                token,
                requested.as_deref(),
                by,
            )
            .await;
        if requested.is_some() {
            self.remove_annotation(annotation::REPROVISION).await?;
            if cluster
                .annotations()
                .contains_key(crate::k8s::api::REQUESTED_BY)
            {
                self.remove_annotation(crate::k8s::api::REQUESTED_BY)
                    .await?;
            }
        }
        outcome?;
        self.write_reprovision().await
    }

    /// A run left by an earlier worker (or operator), from status.
    fn run_from_status(&self, cluster: &MySQLCluster) -> Option<RepairRun> {
        let s = cluster.status.as_ref()?.reprovision.clone()?;
        if s.phase != phase::COPYING && s.phase != phase::JOINING {
            return None;
        }
        tracing::info!(cluster = %self.name, id = %s.id, pod = %s.pod, "taking up the re-provisioning under way");
        Some(RepairRun {
            id: s.id.clone(),
            pod: s.pod.clone(),
            old_uid: None,
            started: Instant::now(),
            status: s,
            last_event: Instant::now(),
            last_seen: None,
        })
    }

    async fn write_reprovision(&mut self) -> Result<(), WorkerError> {
        let current = match &self.repairs.run {
            Some(r) => Some(r.status.clone()),
            None => self.repairs.last.clone(),
        };
        if current.is_none() || current == self.repairs.written {
            return Ok(());
        }
        self.patch_status(json!({ "reprovision": current })).await?;
        self.repairs.written = current;
        Ok(())
    }

    /// Reports a hold once per pod and message.
    async fn report_hold(
        &mut self,
        cluster: &MySQLCluster,
        pod: &str,
        reason: &str,
        message: String,
    ) {
        if self
            .repairs
            .reported
            .insert((pod.to_string(), message.clone()))
        {
            self.event(cluster, true, reason, "Reprovision", message)
                .await;
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn maybe_start(
        &mut self,
        cluster: &MySQLCluster,
        pods: &[PodView],
        cached: &[std::sync::Arc<Pod>],
        pkey: &InstanceKey,
        token: Option<&str>,
        requested: Option<&str>,
        by: Option<String>,
    ) -> Result<(), WorkerError> {
        let with_agent: BTreeSet<&str> = cached
            .iter()
            .filter(|p| has_agent(p))
            .filter_map(|p| p.metadata.name.as_deref())
            .collect();
        let members: BTreeSet<InstanceKey> = pods.iter().filter_map(|p| p.key.clone()).collect();
        // Pods leaving, or without an agent, are neither copied to nor
        // from; under automatic repair, neither is a pod whose last copy
        // failed a moment ago.
        let leaving: BTreeSet<InstanceKey> = pods
            .iter()
            .filter(|p| {
                p.deleting
                    || !with_agent.contains(p.name.as_str())
                    || (requested.is_none()
                        && self
                            .repairs
                            .failed
                            .get(&p.name)
                            .is_some_and(|t| t.elapsed() < RETRY_AFTER))
            })
            .filter_map(|p| p.key.clone())
            .collect();
        let policy = cluster.spec.replica_repair.unwrap_or_default().policy();
        let asked: Option<(InstanceKey, String)> = match requested {
            None => None,
            Some(pod) => {
                let who = by
                    .clone()
                    .unwrap_or_else(|| format!("annotation on {}/{}", self.namespace, self.name));
                let Some(p) = pods.iter().find(|p| p.name == pod) else {
                    let m = format!(
                        "re-provisioning {pod:?} refused: no pod of this cluster has that name"
                    );
                    self.event(cluster, true, "ReprovisionRefused", "Reprovision", m)
                        .await;
                    return Ok(());
                };
                if !with_agent.contains(pod) {
                    let m = format!(
                        "re-provisioning {pod} refused: the pod has no orca agent (the operator runs without --agent-image, or the pod predates it)"
                    );
                    self.event(cluster, true, "ReprovisionRefused", "Reprovision", m)
                        .await;
                    return Ok(());
                }
                let Some(k) = p.key.clone() else {
                    let m = format!("re-provisioning {pod} refused: the pod has no address yet");
                    self.event(cluster, true, "ReprovisionRefused", "Reprovision", m)
                        .await;
                    return Ok(());
                };
                Some((k, who))
            }
        };
        let decided = repair::decide(
            self.engine.topology(),
            pkey,
            &members,
            &leaving,
            policy,
            false,
            asked.as_ref().map(|(k, by)| (k, by.as_str())),
        );
        let r = match decided {
            Ok(r) => r,
            Err(Hold::Nothing) | Err(Hold::CopyUnderWay) => return Ok(()),
            Err(Hold::Manual(k, why)) => {
                let pod = pod_of(pods, &k);
                let m = format!(
                    "{pod} needs re-provisioning ({why}); spec.replicaRepair is manual: annotate the cluster with {}={pod}",
                    annotation::REPROVISION
                );
                self.report_hold(cluster, &pod, "ReprovisionNeeded", m)
                    .await;
                return Ok(());
            }
            Err(hold) => {
                let pod = asked
                    .as_ref()
                    .map(|(k, _)| pod_of(pods, k))
                    .unwrap_or_default();
                let m = format!("re-provisioning {pod} refused: {hold}");
                if asked.is_some() {
                    self.event(cluster, true, "ReprovisionRefused", "Reprovision", m)
                        .await;
                } else {
                    self.report_hold(cluster, &pod, "ReprovisionHeld", m).await;
                }
                return Ok(());
            }
        };
        let target = pod_of(pods, &r.target);
        let Some(token) = token else {
            let m = format!(
                "{target} needs re-provisioning ({}), but the credentials Secret has no agent-token yet",
                r.reason.describe()
            );
            self.report_hold(cluster, &target, "ReprovisionHeld", m)
                .await;
            return Ok(());
        };
        let old_uid = cached
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(target.as_str()))
            .and_then(|p| p.metadata.uid.clone());
        let (who, door) = match &asked {
            Some((_, who)) if by.is_some() => (who.clone(), Door::Api),
            Some((_, who)) => (who.clone(), Door::Annotation),
            None => ("orca".to_string(), Door::Engine),
        };
        self.start(cluster, pods, pkey, r, target, old_uid, token, &who, door)
            .await;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn start(
        &mut self,
        cluster: &MySQLCluster,
        pods: &[PodView],
        pkey: &InstanceKey,
        r: repair::Repair,
        target: String,
        old_uid: Option<String>,
        token: &str,
        who: &str,
        door: Door,
    ) {
        if !self.leads() {
            return;
        }
        let id = format!(
            "{}-reprovision-{}-e{}",
            self.name,
            time::now().as_second(),
            self.epoch.unwrap_or(0)
        );
        let sources: Vec<String> = r.sources.iter().map(|k| agent_at(&k.host)).collect();
        let source_pods: Vec<String> = r.sources.iter().map(|k| pod_of(pods, k)).collect();
        // What the copy discards, whatever the reason (a person's request
        // too): recorded, and saved, first.
        let errant = match &r.reason {
            RepairReason::Errant(g) => Some(g.to_string()),
            _ => repair::discarded(self.engine.topology(), pkey, &r.target).map(|g| g.to_string()),
        };
        let discards = match (&r.reason, &errant) {
            (RepairReason::Errant(_), _) | (_, None) => String::new(),
            (_, Some(g)) => format!("; it holds transactions the primary lacks ({g})"),
        };
        let mut status = ReprovisionStatus {
            id: id.clone(),
            pod: target.clone(),
            reason: r.reason.name().to_string(),
            phase: phase::SAVING.into(),
            source: source_pods.first().cloned(),
            started_at: Some(time::now_string()),
            ..Default::default()
        };
        let detail = format!(
            "id {id}; {target}: {}{discards}; copied from {} (in that order)",
            r.reason.describe(),
            source_pods.join(", ")
        );
        self.feed_audit(
            "reprovision",
            Some(target.clone()),
            who,
            door,
            detail.clone(),
        );
        self.event(
            cluster,
            errant.is_some(),
            "ReprovisionStarted",
            "Reprovision",
            format!(
                "{target} is re-provisioned by a physical copy ({}): {}{discards}; from {}",
                r.reason.name(),
                r.reason.describe(),
                source_pods.join(", then ")
            ),
        )
        .await;
        let client = match AgentClient::new(token) {
            Ok(c) => c,
            Err(e) => {
                return self
                    .start_failed(cluster, status, format!("the agent client: {e}"))
                    .await;
            }
        };
        let at = agent_at(&r.target.host);
        if let Some(gtids) = &errant {
            match client.save_tail(&at, &id, "", gtids).await {
                Ok(t) => {
                    let m = format!(
                        "{target}'s binary log events ({} bytes, from {}) are saved in {} on its volume, with the record .orca-tail-{id}.json; its transactions the primary lacks: {gtids}",
                        t.bytes,
                        t.binlogs.join(", "),
                        t.file
                    );
                    self.feed_audit(
                        "save-tail",
                        Some(target.clone()),
                        "orca",
                        Door::Engine,
                        m.clone(),
                    );
                    self.event(cluster, false, "TailSaved", "Reprovision", m)
                        .await;
                }
                Err(e) if e.to_string().contains("no binary log") => {
                    let m = format!(
                        "{target} has no binary log: its transactions the primary lacks ({gtids}) are recorded by their GTIDs only"
                    );
                    self.feed_audit(
                        "save-tail",
                        Some(target.clone()),
                        "orca",
                        Door::Engine,
                        m.clone(),
                    );
                    self.event(cluster, true, "TailSaved", "Reprovision", m)
                        .await;
                }
                Err(e) => {
                    let m = format!(
                        "{target}'s binary log events cannot be saved ({e}): nothing is discarded, it is not re-provisioned"
                    );
                    return self.start_failed(cluster, status, m).await;
                }
            }
        }
        if let Err(e) = client.arm(&at, &id, &sources, COPY_TIMEOUT).await {
            let m = format!("arming the copy on {target}: {e}");
            return self.start_failed(cluster, status, m).await;
        }
        // The destructive step: the fence checked right before it.
        if !self.leads() {
            return;
        }
        let params = DeleteParams {
            preconditions: old_uid.clone().map(|uid| Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..Default::default()
        };
        if let Err(e) = guarded::bounded(
            "deleting the pod to re-provision",
            self.pods().delete(&target, &params),
        )
        .await
        {
            let m = format!("deleting {target} for its copy: {e}");
            return self.start_failed(cluster, status, m).await;
        }
        status.phase = phase::COPYING.into();
        status.message = Some(format!(
            "{target} deleted: its init container copies from {} before the server starts",
            source_pods.join(", then ")
        ));
        self.repairs.run = Some(RepairRun {
            id,
            pod: target,
            old_uid,
            started: Instant::now(),
            status,
            last_event: Instant::now(),
            last_seen: None,
        });
    }

    /// The fence of the epoch, checked before a step that changes
    /// something (a pod, an agent's arming).
    fn leads(&self) -> bool {
        match &self.fence {
            None => true,
            Some(f) => match f.check(ROUND_BUDGET) {
                Ok(_) => true,
                Err(e) => {
                    tracing::warn!(cluster = %self.name, reason = ?e, "not the leader of the current epoch: no re-provisioning");
                    false
                }
            },
        }
    }

    async fn start_failed(
        &mut self,
        cluster: &MySQLCluster,
        mut status: ReprovisionStatus,
        why: String,
    ) {
        self.repairs
            .failed
            .insert(status.pod.clone(), Instant::now());
        status.phase = phase::FAILED.into();
        status.message = Some(why.clone());
        status.finished_at = Some(time::now_string());
        self.feed_audit(
            "reprovision-failed",
            Some(status.pod.clone()),
            "orca",
            Door::Engine,
            format!("id {}: {why}", status.id),
        );
        self.event(
            cluster,
            true,
            "ReprovisionFailed",
            "Reprovision",
            format!("re-provisioning {}: {why}", status.pod),
        )
        .await;
        self.repairs.run = None;
        self.repairs.last = Some(status);
    }

    /// One round of a run under way; `None` once it ended.
    async fn go_on(
        &mut self,
        cluster: &MySQLCluster,
        pods: &[PodView],
        cached: &[std::sync::Arc<Pod>],
        pkey: &InstanceKey,
        token: &str,
        mut run: RepairRun,
    ) -> Result<Option<RepairRun>, WorkerError> {
        if run.started.elapsed() > COPY_TIMEOUT + JOIN_MARGIN {
            let why = format!("not done in {} s", (COPY_TIMEOUT + JOIN_MARGIN).as_secs());
            self.run_failed(cluster, run, why).await;
            return Ok(None);
        }
        let Some(pod) = cached
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(run.pod.as_str()))
        else {
            return Ok(Some(run));
        };
        if pod.metadata.deletion_timestamp.is_some()
            || (run.old_uid.is_some() && pod.metadata.uid == run.old_uid)
        {
            return Ok(Some(run));
        }
        let Some(ip) = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .filter(|ip| !ip.is_empty())
        else {
            return Ok(Some(run));
        };
        let client = match AgentClient::new(token) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(cluster = %self.name, error = %e, "the agent client");
                return Ok(Some(run));
            }
        };
        let at = agent_at(&ip);
        let state: AgentState = match client.state(&at).await {
            Ok(s) => s,
            // Not up yet (the pod starting), or restarting.
            Err(e) => {
                tracing::debug!(cluster = %self.name, pod = %run.pod, error = %e, "the agent does not answer yet");
                return Ok(Some(run));
            }
        };
        if let Some(done) = state.provisioned.clone().filter(|p| p.id == run.id) {
            return self
                .join_copy(cluster, pods, pkey, &client, &at, &ip, done, run)
                .await;
        }
        match state.copy.clone().filter(|c| c.id == run.id) {
            Some(c) => {
                run.status.bytes = c.bytes;
                run.status.estimated_bytes = c.estimated_bytes;
                run.status.rate = c.rate;
                run.status.attempt = c.attempt;
                run.status.source = Some(source_pod(pods, &c.source));
                run.status.message = c
                    .error
                    .clone()
                    .map(|e| format!("attempt {} failed: {e}", c.attempt));
                let seen = (c.phase, c.attempt);
                let changed = run.last_seen != Some(seen);
                if c.phase == CopyPhase::Failed && state.armed.is_none() {
                    let why = c
                        .error
                        .unwrap_or_else(|| "no source gave a whole copy".into());
                    self.run_failed(cluster, run, format!("the copy failed on every source ({why}); {} starts on its own data directory, untouched", source_pod(pods, &c.source))).await;
                    return Ok(None);
                }
                if changed
                    || (c.phase == CopyPhase::Streaming
                        && run.last_event.elapsed() >= PROGRESS_EVENTS)
                {
                    run.last_seen = Some(seen);
                    run.last_event = Instant::now();
                    let of = c
                        .estimated_bytes
                        .map(|e| format!(" of about {e}"))
                        .unwrap_or_default();
                    let m = format!(
                        "{}: copy {:?} from {} (attempt {}): {} bytes{of}, {} bytes/s{}",
                        run.pod,
                        c.phase,
                        source_pod(pods, &c.source),
                        c.attempt,
                        c.bytes,
                        c.rate,
                        c.error
                            .as_ref()
                            .map(|e| format!("; the last attempt failed: {e}"))
                            .unwrap_or_default()
                    );
                    self.event(cluster, false, "ReprovisionProgress", "Reprovision", m)
                        .await;
                }
                Ok(Some(run))
            }
            None if state.armed.is_none() && state.mode == "serve" => {
                self.run_failed(
                    cluster,
                    run,
                    "the pod started without the copy (its arming lapsed or was removed)".into(),
                )
                .await;
                Ok(None)
            }
            None => Ok(Some(run)),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn join_copy(
        &mut self,
        cluster: &MySQLCluster,
        pods: &[PodView],
        pkey: &InstanceKey,
        client: &AgentClient,
        at: &str,
        ip: &str,
        done: agent::Provisioned,
        mut run: RepairRun,
    ) -> Result<Option<RepairRun>, WorkerError> {
        run.status.phase = phase::JOINING.into();
        run.status.bytes = done.bytes;
        run.status.source = Some(source_pod(pods, &done.source));
        let key = InstanceKey::new(ip.to_string(), 3306);
        let answers = self
            .engine
            .topology()
            .get(&key)
            .and_then(|n| n.snapshot.as_ref())
            .is_some();
        if !answers {
            run.status.message = Some(format!(
                "copied; waiting for the server of {} to answer",
                run.pod
            ));
            return Ok(Some(run));
        }
        let plan = repair::join_copied(&key, pkey, &done.gtid);
        let meta = OperationMeta {
            id: run.id.clone(),
            cluster: self.name.clone(),
            trigger: "Reprovision".into(),
        };
        let record = self.engine_mut().executor.execute(&plan, &meta).await;
        self.feed_operation(&record);
        match &record.outcome {
            Outcome::Succeeded => {}
            Outcome::Deposed(_) => return Ok(Some(run)),
            Outcome::Failed(e) | Outcome::RolledBack(e) | Outcome::Vetoed(e) => {
                run.status.message = Some(format!("joining the primary from {}: {e}", done.gtid));
                tracing::warn!(cluster = %self.name, pod = %run.pod, error = %e, "a copied replica cannot join yet");
                return Ok(Some(run));
            }
        }
        if let Err(e) = client.forget_copy(at, &run.id).await {
            tracing::warn!(cluster = %self.name, pod = %run.pod, error = %e, "the agent keeps the copy's result");
        }
        let rate = if done.seconds > 0.0 {
            (done.bytes as f64 / done.seconds) as u64
        } else {
            0
        };
        run.status.phase = phase::SUCCEEDED.into();
        run.status.rate = rate;
        run.status.finished_at = Some(time::now_string());
        let m = format!(
            "{} is re-provisioned: {} bytes copied from {} in {:.1} s ({rate} bytes/s); it replicates from {} from {}",
            run.pod,
            done.bytes,
            source_pod(pods, &done.source),
            done.seconds,
            pod_of(pods, pkey),
            if done.gtid.is_empty() {
                "the start"
            } else {
                done.gtid.as_str()
            }
        );
        run.status.message = Some(m.clone());
        self.feed_audit(
            "reprovisioned",
            Some(run.pod.clone()),
            "orca",
            Door::Engine,
            format!("id {}: {m}", run.id),
        );
        self.event(cluster, false, "ReplicaReprovisioned", "Reprovision", m)
            .await;
        self.repairs.failed.remove(&run.pod);
        self.repairs.reported.retain(|(p, _)| p != &run.pod);
        self.reported_unjoinable.retain(|k| k.host != ip);
        self.repairs.last = Some(run.status);
        Ok(None)
    }

    async fn run_failed(&mut self, cluster: &MySQLCluster, run: RepairRun, why: String) {
        self.start_failed(cluster, run.status, why).await;
    }
}

/// The pod behind an agent address (`ip:port`), or the address.
fn source_pod(pods: &[PodView], at: &str) -> String {
    let host = at.rsplit_once(':').map(|(h, _)| h).unwrap_or(at);
    pods.iter()
        .find(|p| p.key.as_ref().is_some_and(|k| k.host == host))
        .map(|p| p.name.clone())
        .unwrap_or_else(|| at.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(name: &str, ip: &str) -> PodView {
        PodView {
            name: name.into(),
            ordinal: None,
            key: Some(InstanceKey::new(ip.to_string(), 3306)),
            ready: true,
            deleting: false,
            restarting: false,
            role_label: None,
            annotations: Default::default(),
            facts: Default::default(),
        }
    }

    #[test]
    fn an_agent_address_is_named_by_its_pod() {
        let pods = [view("db-0", "10.0.0.1"), view("db-1", "10.0.0.2")];
        let table = [
            ("10.0.0.2:3309", "db-1"),
            ("10.0.0.1:3309", "db-0"),
            ("10.0.0.9:3309", "10.0.0.9:3309"),
        ];
        for (at, want) in table {
            assert_eq!(source_pod(&pods, at), want, "{at}");
        }
    }
}
