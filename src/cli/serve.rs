//! The HTTP API of `orca standalone --listen`: the engine loop publishes
//! its view after every round and carries out the operations asked
//! through the API between rounds, one at a time (a request waits in a
//! short queue, refused when it is full).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use tokio::sync::{mpsc, oneshot, watch};

use crate::api::model::{ClusterId, OperationInProgress, STANDALONE_NAMESPACE, rfc3339_s};
use crate::api::{
    self, ApiError, ApiState, BoxFuture, Caller, ClusterView, LeaderView, OperationAnswer,
    OperationRequest, Operations, ReadModel, RequestHook, StaticToken,
};
use crate::engine::ClusterEngine;
use crate::k8s::crd::parse_duration;
use crate::plan::PromotionRule;
use crate::plan::operation::{self, Operation, OperationKind};
use crate::plan::takeover::TakeoverOptions;
use crate::store::feed::Feed;
use crate::store::{Door, DowntimeRow, Record, Store};
use crate::topology::InstanceKey;

#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// Serve the HTTP API (and /metrics) on this address, e.g.
    /// 127.0.0.1:8080.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// File whose first line is the bearer token the API asks for
    /// (at least 16 characters). Without one, the API takes no
    /// operation.
    #[arg(long, env = "ORCA_API_TOKEN_FILE", value_name = "FILE")]
    pub api_token_file: Option<PathBuf>,
    /// Answer reads without a token.
    #[arg(long)]
    pub api_open_reads: bool,
}

/// An operation asked through the API, on its way to the engine loop.
pub struct Asked {
    pub request: OperationRequest,
    pub caller: Caller,
    pub reply: oneshot::Sender<Result<OperationAnswer, ApiError>>,
}

/// Operations waiting for the engine loop, at most.
const QUEUED: usize = 4;

struct Door_ {
    tx: mpsc::Sender<Asked>,
}

impl Operations for Door_ {
    fn submit(
        &self,
        _cluster: ClusterId,
        request: OperationRequest,
        caller: Caller,
    ) -> BoxFuture<Result<OperationAnswer, ApiError>> {
        let tx = self.tx.clone();
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            tx.try_send(Asked {
                request,
                caller,
                reply,
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => ApiError::unavailable(format!(
                    "{QUEUED} operations are waiting already; ask again when they are done"
                )),
                mpsc::error::TrySendError::Closed(_) => ApiError::unavailable("orca is stopping"),
            })?;
            answer
                .await
                .map_err(|_| ApiError::unavailable("orca stopped before it answered"))?
        })
    }
}

/// The API of one standalone cluster: what the engine loop keeps.
pub struct Served {
    pub id: ClusterId,
    pub model: ReadModel,
    ready: Arc<AtomicBool>,
    pub asked: mpsc::Receiver<Asked>,
    /// Instances in downtime, until when, and the promotion rule each had
    /// before.
    downtimes: BTreeMap<InstanceKey, (Instant, PromotionRule)>,
}

/// Starts the API on `args.listen` (nothing without it). `on_request`
/// counts requests; `extra` is merged in (the metrics route).
pub async fn start(
    args: &ApiArgs,
    cluster: &str,
    store: Option<Store>,
    on_request: Option<RequestHook>,
    extra: Option<axum::Router>,
) -> Result<Option<Served>, String> {
    let Some(addr) = args.listen else {
        return Ok(None);
    };
    let auth = StaticToken::from_file(args.api_token_file.as_deref(), args.api_open_reads)?;
    let listener = api::bind(addr).await?;
    let (tx, asked) = mpsc::channel(QUEUED);
    let model = ReadModel::default();
    let ready = Arc::new(AtomicBool::new(false));
    let identity = format!("orca standalone (pid {})", std::process::id());
    let (_leader_tx, leader) = watch::channel(LeaderView {
        leader: Some(identity.clone()),
        identity,
        is_leader: true,
        epoch: None,
        leader_url: None,
    });
    let state = ApiState {
        model: model.clone(),
        store,
        operations: Arc::new(Door_ { tx }),
        auth: Arc::new(auth),
        leader,
        ready: ready.clone(),
        on_request,
    };
    let mut router = api::router(state);
    if let Some(extra) = extra {
        router = router.merge(extra);
    }
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        // The leader view never changes: its sender lives as long as the
        // server.
        let _keep = _leader_tx;
        if let Err(e) = api::serve(listener, router, std::future::pending()).await {
            tracing::error!(error = %e, "the API server stopped");
        }
    });
    tracing::info!(cluster = %cluster, address = %bound, "API listening");
    Ok(Some(Served {
        id: ClusterId::new(STANDALONE_NAMESPACE, cluster),
        model,
        ready,
        asked,
        downtimes: BTreeMap::new(),
    }))
}

fn key(s: &Option<String>, what: &str) -> Result<Option<InstanceKey>, ApiError> {
    s.as_deref()
        .map(|v| {
            v.parse::<InstanceKey>()
                .map_err(|e| ApiError::bad_request(format!("{what}: {e}")))
        })
        .transpose()
}

fn primary(engine: &ClusterEngine) -> Option<InstanceKey> {
    let roots = engine.topology().roots();
    roots
        .iter()
        .find(|n| n.snapshot.as_ref().is_some_and(|s| !s.read_only))
        .or(roots.first())
        .map(|n| n.key.clone())
}

impl Served {
    /// Publishes the engine's view after a round; downtimes that ended
    /// are lifted first.
    pub fn publish(&mut self, engine: &mut ClusterEngine) {
        let now = Instant::now();
        let ended: Vec<InstanceKey> = self
            .downtimes
            .iter()
            .filter(|(_, (until, _))| *until <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in ended {
            self.lift(engine, &k);
        }
        let view = ClusterView::of(&self.id, engine.config.cluster.clone(), engine, &|_| None)
            .with_recent(&engine.records);
        self.model.publish(view);
        self.ready.store(true, Ordering::Relaxed);
    }

    fn lift(&mut self, engine: &mut ClusterEngine, k: &InstanceKey) -> bool {
        let Some((_, rule)) = self.downtimes.remove(k) else {
            return false;
        };
        engine.context.downtimed.remove(k);
        let rules = &mut engine.config.recovery.candidate.rules;
        match rule {
            PromotionRule::Neutral => rules.remove(k),
            r => rules.insert(k.clone(), r),
        };
        true
    }

    /// Carries out one operation asked through the API, audited with its
    /// caller, and answers it.
    pub async fn answer(
        &mut self,
        engine: &mut ClusterEngine,
        takeover: &TakeoverOptions,
        feed: Option<&Feed>,
        asked: Asked,
    ) {
        let Asked {
            request,
            caller,
            reply,
        } = asked;
        let r = self
            .carry_out(engine, takeover, feed, &request, &caller)
            .await;
        if let (Some(f), false) = (feed, request.dry_run) {
            let detail = match &r {
                Ok(a) => a.message.clone(),
                Err(e) => e.to_string(),
            };
            f.audit(
                &request.kind,
                request.target.clone(),
                &caller.name,
                Door::Api,
                Some(detail),
            );
        }
        // Whoever asked may have given up (a timeout): the operation is
        // done and recorded all the same.
        let _ = reply.send(r);
    }

    async fn carry_out(
        &mut self,
        engine: &mut ClusterEngine,
        takeover: &TakeoverOptions,
        feed: Option<&Feed>,
        request: &OperationRequest,
        caller: &Caller,
    ) -> Result<OperationAnswer, ApiError> {
        let kind: OperationKind = request.kind.parse().map_err(ApiError::bad_request)?;
        let op = Operation::new(
            kind,
            key(&request.target, "target")?,
            key(&request.destination, "destination")?,
        )
        .map_err(ApiError::bad_request)?;
        let dry = request.dry_run;
        let in_topology = |k: &InstanceKey| {
            engine
                .topology()
                .get(k)
                .map(|_| ())
                .ok_or_else(|| ApiError::refused(format!("{k} is not in the topology")))
        };
        match kind {
            OperationKind::Reprovision => Err(ApiError::refused(
                "reprovision is the operator's: it copies through the orca agent in each pod, which a standalone orca has not",
            )),
            OperationKind::Acknowledge => {
                let last = engine.records.last().map(|r| r.id.clone());
                let what = match &last {
                    Some(id) => format!("the last recovery, {id}"),
                    None => "the last recovery (there is none yet)".to_string(),
                };
                if !dry {
                    engine.acknowledge();
                    if let (Some(f), Some(id)) = (feed, &last) {
                        let comment = request.comment.as_deref().unwrap_or("acknowledged");
                        f.acknowledged(id, &caller.name, comment);
                    }
                }
                Ok(OperationAnswer::done(
                    kind,
                    dry,
                    format!(
                        "{} {what}",
                        if dry {
                            "would acknowledge"
                        } else {
                            "acknowledged"
                        }
                    ),
                ))
            }
            OperationKind::BeginDowntime => {
                let target = needs_target(&op)?;
                in_topology(&target)?;
                let span = match &request.duration {
                    None => Duration::from_secs(3600),
                    Some(d) => parse_duration(d)
                        .map_err(|e| ApiError::bad_request(format!("duration: {e}")))?,
                };
                if span.is_zero() || span > Duration::from_secs(366 * 24 * 3600) {
                    return Err(ApiError::bad_request("duration: between 1 s and a year"));
                }
                let message = format!(
                    "{target} in downtime for {} s: not recovered, not promoted",
                    span.as_secs()
                );
                if dry {
                    return Ok(OperationAnswer::done(kind, true, message));
                }
                let rule = engine.config.recovery.candidate.rule(&target);
                let rule = self.downtimes.get(&target).map(|(_, r)| *r).unwrap_or(rule);
                self.downtimes
                    .insert(target.clone(), (Instant::now() + span, rule));
                engine.context.downtimed.insert(target.clone());
                engine
                    .config
                    .recovery
                    .candidate
                    .rules
                    .insert(target.clone(), PromotionRule::MustNot);
                if let Some(f) = feed {
                    let now = crate::store::now_ms();
                    f.store().enqueue(Record::Downtime(DowntimeRow {
                        id: uuid::Uuid::new_v4().to_string(),
                        cluster: engine.config.cluster.clone(),
                        instance: target.to_string(),
                        starts_ms: now,
                        ends_ms: now.saturating_add(span.as_millis() as i64),
                        owner: caller.name.clone(),
                        reason: request.comment.clone(),
                    }));
                }
                Ok(OperationAnswer::done(kind, false, message))
            }
            OperationKind::EndDowntime => {
                let target = needs_target(&op)?;
                if !self.downtimes.contains_key(&target) {
                    return Err(ApiError::refused(format!("{target} is not in downtime")));
                }
                if !dry {
                    self.lift(engine, &target);
                }
                Ok(OperationAnswer::done(
                    kind,
                    dry,
                    format!("{target} out of downtime"),
                ))
            }
            OperationKind::Recover => {
                let failure = operation::failure_to_recover(engine.findings())
                    .map_err(ApiError::refused)?
                    .clone();
                let plan =
                    operation::recovery_plan(engine.topology(), &failure, &engine.config.recovery)
                        .map_err(|e| ApiError::refused(e.to_string()))?;
                if dry {
                    return Ok(OperationAnswer::planned(kind, &plan));
                }
                self.started(kind, &op, engine);
                let record = engine.recover(&failure).await;
                self.ended(engine);
                if let Some(f) = feed {
                    f.operation(&record, None);
                }
                Ok(OperationAnswer::ran(kind, Some(&plan), &record))
            }
            _ => {
                let primary = primary(engine);
                // The promotion rules as they stand (downtimes included).
                let takeover = TakeoverOptions {
                    candidate: engine.config.recovery.candidate.clone(),
                    ..takeover.clone()
                };
                let plan = operation::plan(
                    engine.topology(),
                    primary.as_ref(),
                    &op,
                    &engine.config.recovery,
                    &takeover,
                )
                .map_err(|e| ApiError::refused(e.to_string()))?;
                if dry {
                    return Ok(OperationAnswer::planned(kind, &plan));
                }
                self.started(kind, &op, engine);
                let record = engine.carry_out(&plan).await;
                self.ended(engine);
                if let Some(f) = feed {
                    f.operation(&record, None);
                }
                Ok(OperationAnswer::ran(kind, Some(&plan), &record))
            }
        }
    }

    fn started(&self, kind: OperationKind, op: &Operation, engine: &ClusterEngine) {
        let progress = OperationInProgress {
            id: format!("{}-{}", engine.config.cluster, kind),
            kind: kind.name().to_string(),
            target: op.target.as_ref().map(|k| k.to_string()),
            started_at: rfc3339_s(crate::store::now_ms() / 1000),
        };
        self.model
            .update(&self.id, |v| v.operation = Some(progress));
    }

    fn ended(&mut self, engine: &mut ClusterEngine) {
        self.publish(engine);
    }
}

/// The target [`Operation::new`] checked is there.
fn needs_target(op: &Operation) -> Result<InstanceKey, ApiError> {
    op.target
        .clone()
        .ok_or_else(|| ApiError::bad_request(format!("{} needs a target", op.kind)))
}
