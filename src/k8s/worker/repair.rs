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
//! On MySQL, steps 2 to 4 are the clone plugin's instead
//! ([`super::clone`]): the plugin made ready on donor and recipient, the
//! donor list set, and `CLONE INSTANCE` run on the recipient in a task of
//! its own while the rounds read `clone_progress`; the recipient restarts
//! itself on the copy (or its pod is restarted, when `mysqld` has no
//! supervisor), and `clone_status` gives the verdict and the position.
//!
//! One copy at a time per cluster, bounded by [`COPY_TIMEOUT`]; a failed
//! one is tried again after [`RETRY_AFTER`] (automatic repairs only). A
//! run survives an operator restart: it is taken up from
//! `status.reprovision`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kube::api::{DeleteParams, Preconditions};

use super::clone::{self as cloning, Baseline, CloneRun, Ended, Next, Observed, Seen};
use super::*;
use crate::agent::client::AgentClient;
use crate::agent::{self, AgentState, CopyPhase, CopyProgress};
use crate::k8s::crd::cluster::ReprovisionStatus;
use crate::k8s::crd::names::annotation;
use crate::mysql::Dialect;
use crate::mysql::clone as mc;
use crate::plan::repair::{self, Hold, RepairReason};
use crate::topology::Flavor;

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
    /// Who copies.
    copy: Copier,
}

impl RepairRun {
    /// A run of `status`'s id and pod, starting now.
    fn new(status: ReprovisionStatus, old_uid: Option<String>, copy: Copier) -> RepairRun {
        RepairRun {
            id: status.id.clone(),
            pod: status.pod.clone(),
            old_uid,
            started: Instant::now(),
            status,
            last_event: Instant::now(),
            last_seen: None,
            copy,
        }
    }
}

/// Who carries a run's copy out.
#[derive(Debug)]
enum Copier {
    /// Not yet: the target's agent saves its tail first, in a task of
    /// its own (reading the binary logs may take a while, and the round
    /// goes on meanwhile); then the copy starts.
    Saving(Box<Saving>),
    /// The target's agent, in its init container (`mariadb-backup`).
    Agent,
    /// The worker, with MySQL's clone plugin.
    Clone(Box<CloneRun>),
}

/// A run whose target's tail is being saved, and what the copy needs
/// once it is.
#[derive(Debug)]
struct Saving {
    task: tokio::task::JoinHandle<Result<crate::agent::tail::Tail, crate::agent::AgentError>>,
    gtids: String,
    next: Proceed,
}

/// What starts the copy, once what it discards is recorded.
#[derive(Debug)]
struct Proceed {
    r: repair::Repair,
    clone_from: Option<Vec<InstanceKey>>,
    sources: Vec<String>,
    source_pods: Vec<String>,
    old_uid: Option<String>,
    token: String,
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

/// The client of the agents, with the cluster's token.
fn agent_client(token: &str) -> Result<AgentClient, String> {
    AgentClient::new(token).map_err(|e| format!("the agent client: {e}"))
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
            self.repairs.run = self.run_from_status(cluster, pods, pkey.as_ref());
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

    /// A run left by an earlier worker (or operator), from status. On
    /// MySQL it is a clone whose statement's connection went with the
    /// operator: it is judged by the recipient's clone tables. Taken up
    /// once the flavor is known (from the primary's or the pod's probe).
    fn run_from_status(
        &self,
        cluster: &MySQLCluster,
        pods: &[PodView],
        pkey: Option<&InstanceKey>,
    ) -> Option<RepairRun> {
        let s = cluster.status.as_ref()?.reprovision.clone()?;
        if s.phase != phase::COPYING && s.phase != phase::JOINING {
            return None;
        }
        let flavor_of = |k: &InstanceKey| {
            self.engine
                .topology()
                .get(k)
                .and_then(|n| n.snapshot.as_ref())
                .map(|snap| snap.flavor)
        };
        let flavor = pkey
            .and_then(flavor_of)
            .or_else(|| key_of(pods, &s.pod).as_ref().and_then(flavor_of))?;
        let copy = match flavor {
            Flavor::MariaDb => Copier::Agent,
            Flavor::MySql => {
                let donors: Vec<InstanceKey> = s
                    .source
                    .as_deref()
                    .and_then(|p| key_of(pods, p))
                    .into_iter()
                    .collect();
                let mut c = CloneRun::new(donors, time::now().as_second().max(0) as u64);
                c.attempt = s.attempt.max(1);
                c.baseline = Baseline::Unknown {
                    started_utc: s
                        .started_at
                        .as_deref()
                        .and_then(time::parse)
                        .map(|t| t.to_zoned(jiff::tz::TimeZone::UTC).datetime()),
                };
                Copier::Clone(Box::new(c))
            }
        };
        tracing::info!(cluster = %self.name, id = %s.id, pod = %s.pod, "taking up the re-provisioning under way");
        Some(RepairRun::new(s, None, copy))
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
        // MySQL copies with the clone plugin: the donors it can clone
        // from, checked before anything is saved or changed.
        let clone_from = match self.clone_donors(&r) {
            Ok(d) => d,
            Err(why) => return self.start_failed(cluster, status, why).await,
        };
        let client = match agent_client(token) {
            Ok(c) => c,
            Err(m) => return self.start_failed(cluster, status, m).await,
        };
        let at = agent_at(&r.target.host);
        let next = Proceed {
            r,
            clone_from,
            sources,
            source_pods,
            old_uid,
            token: token.to_string(),
        };
        let Some(gtids) = errant else {
            return self.proceed(cluster, pods, id, status, next).await;
        };
        let tail_id = id.clone();
        let tail_gtids = gtids.clone();
        let task =
            tokio::spawn(async move { client.save_tail(&at, &tail_id, "", &tail_gtids).await });
        status.message = Some(format!(
            "{target}'s binary log events are being saved on its volume before the copy"
        ));
        self.repairs.run = Some(RepairRun::new(
            status,
            None,
            Copier::Saving(Box::new(Saving { task, gtids, next })),
        ));
    }

    /// The tail saved (or not): recorded, then the copy starts, or the
    /// run fails when the tail could not be saved.
    async fn saved(
        &mut self,
        cluster: &MySQLCluster,
        pods: &[PodView],
        run: RepairRun,
        saving: Saving,
    ) -> Result<Option<RepairRun>, WorkerError> {
        let RepairRun { id, status, .. } = run;
        let target = status.pod.clone();
        let gtids = saving.gtids;
        let result = match saving.task.await {
            Ok(r) => r,
            Err(e) => Err(crate::agent::AgentError::Copy(format!("the task: {e}"))),
        };
        let (warning, m) = match result {
            Ok(t) => (
                false,
                format!(
                    "{target}'s binary log events ({} bytes, from {}) are saved in {} on its volume, with the record .orca-tail-{id}.json; its transactions the primary lacks: {gtids}",
                    t.bytes,
                    t.binlogs.join(", "),
                    t.file
                ),
            ),
            Err(e) if e.to_string().contains("no binary log") => (
                true,
                format!(
                    "{target} has no binary log: its transactions the primary lacks ({gtids}) are recorded by their GTIDs only"
                ),
            ),
            Err(e) => {
                let m = format!(
                    "{target}'s binary log events cannot be saved ({e}): nothing is discarded, it is not re-provisioned"
                );
                self.start_failed(cluster, status, m).await;
                return Ok(None);
            }
        };
        self.feed_audit(
            "save-tail",
            Some(target.clone()),
            "orca",
            Door::Engine,
            m.clone(),
        );
        self.event(cluster, warning, "TailSaved", "Reprovision", m)
            .await;
        self.proceed(cluster, pods, id, status, saving.next).await;
        Ok(self.repairs.run.take())
    }

    /// Starts the copy: a clone on MySQL, else the agent armed and the
    /// pod restarted (the fence checked before each).
    async fn proceed(
        &mut self,
        cluster: &MySQLCluster,
        pods: &[PodView],
        id: String,
        mut status: ReprovisionStatus,
        next: Proceed,
    ) {
        let Proceed {
            r,
            clone_from,
            sources,
            source_pods,
            old_uid,
            token,
        } = next;
        let target = status.pod.clone();
        if !self.leads() {
            return;
        }
        let client = match agent_client(&token) {
            Ok(c) => c,
            Err(m) => return self.start_failed(cluster, status, m).await,
        };
        let at = agent_at(&r.target.host);
        if let Some(donors) = clone_from {
            return self
                .start_clone(cluster, pods, r.target, donors, target, status)
                .await;
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
        self.repairs.run = Some(RepairRun::new(status, old_uid, Copier::Agent));
    }

    /// `None` when the target is no MySQL server (the agent copies);
    /// else the sources a clone can come from, in their order: those
    /// whose version fits the target's ([`mc::compatible`]), an error
    /// with the first source's reason when none does.
    fn clone_donors(&self, r: &repair::Repair) -> Result<Option<Vec<InstanceKey>>, String> {
        let topo = self.engine.topology();
        let dialect = |k: &InstanceKey| {
            topo.get(k)
                .and_then(|n| n.snapshot.as_ref())
                .map(|s| Dialect {
                    flavor: s.flavor,
                    version: s.version.clone(),
                })
        };
        let Some(recipient) = dialect(&r.target) else {
            return Err(format!(
                "{} has not been probed: its server is unknown",
                r.target
            ));
        };
        if recipient.flavor != Flavor::MySql {
            return Ok(None);
        }
        mc::supported(&recipient)
            .map_err(|e| format!("{} cannot be cloned into: {e}", r.target))?;
        let mut first_reason = None;
        let mut donors = Vec::new();
        for k in &r.sources {
            let fits = match dialect(k) {
                None => Err(format!("{k} has not been probed")),
                Some(d) => mc::compatible(&d, &recipient),
            };
            match fits {
                Ok(()) => donors.push(k.clone()),
                Err(e) => {
                    first_reason.get_or_insert(format!("{k} cannot be cloned from: {e}"));
                }
            }
        }
        if donors.is_empty() {
            return Err(first_reason.unwrap_or_else(|| "no donor to clone from".into()));
        }
        Ok(Some(donors))
    }

    /// The MySQL path of [`Self::start`], once the tail is saved: the
    /// clone started from the first donor, the run kept.
    #[allow(clippy::too_many_arguments)]
    async fn start_clone(
        &mut self,
        cluster: &MySQLCluster,
        pods: &[PodView],
        recipient: InstanceKey,
        donors: Vec<InstanceKey>,
        target: String,
        mut status: ReprovisionStatus,
    ) {
        let mut c = CloneRun::new(donors, time::now().as_second().max(0) as u64);
        match self.launch_clone(&recipient, &mut c).await {
            Ok(()) => {}
            Err(Some(why)) => return self.start_failed(cluster, status, why).await,
            Err(None) => return,
        }
        let donor = c.donor().map(|d| pod_of(pods, d)).unwrap_or_default();
        status.phase = phase::COPYING.into();
        status.source = Some(donor.clone());
        status.attempt = c.attempt;
        status.message = Some(format!(
            "{target} clones from {donor} (CLONE INSTANCE): its data directory is replaced, then it restarts on the copy"
        ));
        self.repairs.run = Some(RepairRun::new(status, None, Copier::Clone(Box::new(c))));
    }

    /// Starts the clone of `c`'s donor into `recipient`: the plugin made
    /// ready on both, the donor list set, then `CLONE INSTANCE` in a task
    /// of its own (the fence checked before each change). `Err(None)`:
    /// this operator no longer leads, and stops there, silent.
    async fn launch_clone(
        &self,
        recipient: &InstanceKey,
        c: &mut CloneRun,
    ) -> Result<(), Option<String>> {
        let r = self.launch_clone_steps(recipient, c).await;
        match r {
            Err(_) if !self.leads() => Err(None),
            r => r.map_err(Some),
        }
    }

    async fn launch_clone_steps(
        &self,
        recipient: &InstanceKey,
        c: &mut CloneRun,
    ) -> Result<(), String> {
        let Some(donor) = c.donor().cloned() else {
            return Err("no donor to clone from".into());
        };
        let creds = self.engine.executor.config.admin.clone();
        let t = self.engine.executor.config.timeouts;
        if !self.leads() {
            return Err("not the leader of the current epoch".into());
        }
        cloning::ensure_plugin(&donor, &creds, t, || self.leads())
            .await
            .map_err(|e| format!("the clone plugin on the donor {donor}: {e}"))?;
        cloning::ensure_plugin(recipient, &creds, t, || self.leads())
            .await
            .map_err(|e| format!("the clone plugin on {recipient}: {e}"))?;
        c.baseline = cloning::prepare_recipient(recipient, &creds, t, &c.donors, || self.leads())
            .await
            .map_err(|e| format!("preparing {recipient} for the clone: {e}"))?;
        let statement = mc::clone_instance(&donor, &creds, mc::Ssl::Default)
            .map_err(|e| format!("the clone from {donor}: {e}"))?;
        // The destructive step: the fence checked right before it.
        if !self.leads() {
            return Err("not the leader of the current epoch".into());
        }
        tracing::info!(cluster = %self.name, recipient = %recipient, statement = %statement, "cloning");
        c.task = Some(cloning::spawn(
            recipient.clone(),
            creds,
            t,
            statement,
            COPY_TIMEOUT,
        ));
        c.ended = Ended::Running;
        c.last_stage = None;
        c.sample = None;
        c.restarted = false;
        c.started_at = time::now().as_second().max(0) as u64;
        Ok(())
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
        if let Copier::Saving(saving) = &run.copy {
            if !saving.task.is_finished() {
                return Ok(Some(run));
            }
            let Copier::Saving(saving) = std::mem::replace(&mut run.copy, Copier::Agent) else {
                return Ok(Some(run));
            };
            return self.saved(cluster, pods, run, *saving).await;
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
        if matches!(run.copy, Copier::Clone(_)) {
            return self.clone_round(cluster, pods, cached, pkey, ip, run).await;
        }
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
                .join_copy(cluster, pods, pkey, Some((&client, &at)), &ip, done, run)
                .await;
        }
        match state.copy.clone().filter(|c| c.id == run.id) {
            Some(c) => {
                let message = c
                    .error
                    .clone()
                    .map(|e| format!("attempt {} failed: {e}", c.attempt));
                record_progress(&mut run, pods, &c, message);
                if c.phase == CopyPhase::Failed && state.armed.is_none() {
                    let why = c
                        .error
                        .unwrap_or_else(|| "no source gave a whole copy".into());
                    self.run_failed(cluster, run, format!("the copy failed on every source ({why}); {} starts on its own data directory, untouched", source_pod(pods, &c.source))).await;
                    return Ok(None);
                }
                self.progress_event(cluster, pods, &mut run, &c, "").await;
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

    /// A `ReprovisionProgress` Event at each phase and attempt, and every
    /// [`PROGRESS_EVENTS`] while the copy streams; `detail` ends it.
    async fn progress_event(
        &mut self,
        cluster: &MySQLCluster,
        pods: &[PodView],
        run: &mut RepairRun,
        c: &CopyProgress,
        detail: &str,
    ) {
        let seen = (c.phase, c.attempt);
        let changed = run.last_seen != Some(seen);
        if !(changed
            || (c.phase == CopyPhase::Streaming && run.last_event.elapsed() >= PROGRESS_EVENTS))
        {
            return;
        }
        run.last_seen = Some(seen);
        run.last_event = Instant::now();
        let of = c
            .estimated_bytes
            .map(|e| format!(" of about {e}"))
            .unwrap_or_default();
        let m = format!(
            "{}: copy {:?} from {} (attempt {}): {} bytes{of}, {} bytes/s{}{detail}",
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

    /// One round of a clone under way (MySQL): its statement's end read
    /// when its task ended, the recipient's clone tables read on a short
    /// connection, and [`cloning::next`]'s verdict carried out.
    async fn clone_round(
        &mut self,
        cluster: &MySQLCluster,
        pods: &[PodView],
        cached: &[std::sync::Arc<Pod>],
        pkey: &InstanceKey,
        ip: String,
        mut run: RepairRun,
    ) -> Result<Option<RepairRun>, WorkerError> {
        let Copier::Clone(mut c) = std::mem::replace(&mut run.copy, Copier::Agent) else {
            return Ok(Some(run));
        };
        if c.task.as_ref().is_some_and(|h| h.is_finished())
            && let Some(h) = c.task.take()
        {
            // A task that panicked or was cancelled: its answer is lost,
            // the recipient's tables judge.
            c.ended = h.await.unwrap_or(Ended::Unknown);
            tracing::info!(cluster = %self.name, pod = %run.pod, ended = ?c.ended, "CLONE INSTANCE ended");
        }
        let recipient = InstanceKey::new(ip.clone(), 3306);
        let creds = self.engine.executor.config.admin.clone();
        let t = self.engine.executor.config.timeouts;
        let read = cloning::read_tables(&recipient, &creds, t).await;
        let tables = match read {
            Ok((status, progress)) => Some(cloning::fresh(status, progress, &c.baseline)),
            Err(e) => {
                tracing::debug!(cluster = %self.name, pod = %run.pod, error = %e, "the recipient does not answer");
                None
            }
        };
        let seen = match &tables {
            None => Seen::Unreachable,
            Some((status, progress)) => Seen::Tables {
                status: status.as_ref(),
                progress,
            },
        };
        let now_ms = u64::try_from(run.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let next = cloning::next(Observed {
            ended: &c.ended,
            seen,
            last_stage: c.last_stage,
            restarted: c.restarted,
            now_ms,
            previous: c.sample,
        });
        if let Some((_, progress)) = &tables {
            c.last_stage = progress.stage().max(c.last_stage);
        }
        let status = tables.as_ref().and_then(|(s, _)| s.clone());
        let bytes = tables
            .as_ref()
            .map(|(_, p)| p.bytes())
            .filter(|b| *b > 0)
            .unwrap_or(run.status.bytes);
        let donor = c.donor().cloned();
        let donor_name = donor
            .as_ref()
            .map(|d| pod_of(pods, d))
            .or_else(|| run.status.source.clone())
            .unwrap_or_default();
        let attempt = mc::Attempt {
            id: &run.id,
            donor: donor.as_ref().unwrap_or(&recipient),
            attempt: c.attempt,
            started_at: c.started_at,
            updated_at: time::now().as_second().max(0) as u64,
        };
        match next {
            Next::Copying { summary, .. } => {
                let cp = mc::copy_progress(&attempt, status.as_ref(), &summary);
                c.sample = Some(summary.sample);
                let stage = summary
                    .stage
                    .map(|s| format!("; stage {s}"))
                    .unwrap_or_default();
                let percent = summary
                    .percent()
                    .map(|p| format!(", {p}%"))
                    .unwrap_or_default();
                record_progress(
                    &mut run,
                    pods,
                    &cp,
                    Some(format!(
                        "cloning from {donor_name} (attempt {}){stage}{percent}",
                        c.attempt
                    )),
                );
                run.status.source = Some(donor_name);
                self.progress_event(cluster, pods, &mut run, &cp, &stage)
                    .await;
            }
            Next::Restarting => {
                run.status.message = Some(format!(
                    "cloned from {donor_name}; waiting for {} to restart on the copy and answer",
                    run.pod
                ));
                let cp = CopyProgress {
                    phase: CopyPhase::Swapping,
                    bytes: run.status.bytes,
                    estimated_bytes: run.status.estimated_bytes,
                    rate: 0,
                    ..mc::copy_progress(
                        &attempt,
                        None,
                        &mc::CloneProgress::default().summary(now_ms, None),
                    )
                };
                self.progress_event(cluster, pods, &mut run, &cp, "; the recipient restarts")
                    .await;
            }
            Next::RestartPod => {
                // The copy is whole, mysqld has no supervisor to restart
                // it: the pod is restarted (the fence checked first).
                if !self.leads() {
                    run.copy = Copier::Clone(c);
                    return Ok(Some(run));
                }
                let uid = cached
                    .iter()
                    .find(|p| p.metadata.name.as_deref() == Some(run.pod.as_str()))
                    .and_then(|p| p.metadata.uid.clone());
                match self.delete_pod(&run.pod, uid.clone()).await {
                    Ok(()) => {
                        c.restarted = true;
                        run.old_uid = uid;
                        let m = format!(
                            "{}: the clone from {donor_name} is whole, but mysqld has no supervisor to restart it (3707): the pod is deleted, to start on the copy",
                            run.pod
                        );
                        run.status.message = Some(m.clone());
                        self.event(cluster, false, "ReprovisionProgress", "Reprovision", m)
                            .await;
                    }
                    Err(e) => {
                        run.status.message =
                            Some(format!("restarting {} on its copy: {e}", run.pod));
                    }
                }
            }
            Next::Completed(pos) => {
                c.abort();
                let seconds = status
                    .as_ref()
                    .and_then(|s| cloning::seconds(s.begin, s.end))
                    .unwrap_or_else(|| run.started.elapsed().as_secs_f64());
                let done = agent::Provisioned {
                    id: run.id.clone(),
                    source: donor.as_ref().map(|d| d.to_string()).unwrap_or(donor_name),
                    gtid: pos.gtid_executed.to_string(),
                    bytes,
                    seconds,
                    finished_at: time::now().as_second().max(0) as u64,
                };
                run.copy = Copier::Clone(c);
                return self
                    .join_copy(cluster, pods, pkey, None, &ip, done, run)
                    .await;
            }
            Next::Failed(e) => {
                c.abort();
                let failed = format!(
                    "the clone from {donor_name} (attempt {}) failed: {e}",
                    c.attempt
                );
                let next_donor = c.donors.get(c.donor + 1).cloned();
                if let (true, Some(d)) = (e.try_another_donor(), next_donor) {
                    c.donor += 1;
                    c.attempt += 1;
                    match self.launch_clone(&recipient, &mut c).await {
                        Ok(()) => {
                            let m = format!(
                                "{}: {failed}; cloning again from {}",
                                run.pod,
                                pod_of(pods, &d)
                            );
                            run.status.attempt = c.attempt;
                            run.status.source = Some(pod_of(pods, &d));
                            run.status.message = Some(m.clone());
                            run.last_seen = None;
                            self.event(cluster, true, "ReprovisionProgress", "Reprovision", m)
                                .await;
                        }
                        Err(None) => {}
                        Err(Some(why)) => {
                            self.run_failed(
                                cluster,
                                run,
                                format!("{failed}; the next donor: {why}"),
                            )
                            .await;
                            return Ok(None);
                        }
                    }
                } else {
                    self.run_failed(cluster, run, failed).await;
                    return Ok(None);
                }
            }
        }
        run.copy = Copier::Clone(c);
        Ok(Some(run))
    }

    /// Deletes `pod` (its uid as precondition, when known).
    async fn delete_pod(&self, pod: &str, uid: Option<String>) -> Result<(), WorkerError> {
        let params = DeleteParams {
            preconditions: uid.map(|uid| Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..Default::default()
        };
        guarded::bounded(
            "deleting the pod to re-provision",
            self.pods().delete(pod, &params),
        )
        .await
        .map(|_| ())
    }

    #[allow(clippy::too_many_arguments)]
    async fn join_copy(
        &mut self,
        cluster: &MySQLCluster,
        pods: &[PodView],
        pkey: &InstanceKey,
        agent: Option<(&AgentClient, &str)>,
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
        if let Some((client, at)) = agent
            && let Err(e) = client.forget_copy(at, &run.id).await
        {
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

    async fn run_failed(&mut self, cluster: &MySQLCluster, mut run: RepairRun, why: String) {
        if let Copier::Clone(c) = &mut run.copy {
            c.abort();
        }
        self.start_failed(cluster, run.status, why).await;
    }
}

/// A copy's progress into the run's status (`message` replaces its
/// message).
fn record_progress(
    run: &mut RepairRun,
    pods: &[PodView],
    c: &CopyProgress,
    message: Option<String>,
) {
    run.status.bytes = c.bytes;
    run.status.estimated_bytes = c.estimated_bytes;
    run.status.rate = c.rate;
    run.status.attempt = c.attempt;
    run.status.source = Some(source_pod(pods, &c.source));
    run.status.message = message;
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
