//! One-shot operations outside Kubernetes: graceful takeover, force
//! failover, force takeover, recover, and the refactorings. Each discovers
//! the topology from its seeds, plans, and — unless `--dry-run` — acts,
//! then prints the record of every step and exits. With `--store-dsn`,
//! the operation asked for (who, through the CLI) and its record are
//! written to the store after it ran.
//!
//! Exit codes: 0 done, 1 the operation failed (or was rolled back),
//! 2 bad input, 3 refused (illegal move, no candidate, nothing to do),
//! 4 vetoed by a hook.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::credentials::CredentialArgs;
use super::store::StoreArgs;
use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::engine::executor::{
    Executor, ExecutorConfig, OperationMeta, OperationRecord, Outcome, operation_id,
};
use crate::engine::hooks::{HookTarget, Hooks, parse_event_value};
use crate::engine::prober::Inventory;
use crate::engine::{ClusterEngine, EngineConfig};
use crate::k8s::crd::parse_duration;
use crate::mysql::Credentials;
use crate::mysql::conn::Timeouts;
use crate::plan::candidate::{CandidateOptions, PromotionRule};
use crate::plan::operation::{self, Operation, OperationKind};
use crate::plan::recovery::RecoveryOptions;
use crate::plan::takeover::TakeoverOptions;
use crate::plan::{Plan, PlanError};
use crate::topology::InstanceKey;
use crate::topology::graph::Topology;

pub const EXIT_REFUSED: u8 = 3;
pub const EXIT_VETOED: u8 = 4;

/// What every operation takes.
#[derive(Debug, Clone, Args)]
pub struct OpArgs {
    /// An instance of the topology (repeat to name more; name every
    /// instance when the primary is already dead, since its replicas are
    /// found through it).
    #[arg(long = "seed")]
    pub seeds: Vec<String>,
    #[command(flatten)]
    pub credentials: CredentialArgs,
    /// The replication user replicas connect as (default: the same as
    /// --user).
    #[arg(long, env = "ORCA_REPL_USER")]
    pub repl_user: Option<String>,
    /// File holding the replication password; otherwise ORCA_REPL_PASSWORD,
    /// otherwise the admin password.
    #[arg(long, value_name = "FILE")]
    pub repl_password_file: Option<PathBuf>,
    /// Print the plan and do nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the plan or the record as JSON.
    #[arg(long)]
    pub json: bool,
    /// Promotion rule of an instance: HOST:PORT=prefer|neutral|prefer_not|must_not.
    #[arg(long = "promotion-rule", value_name = "HOST:PORT=RULE")]
    pub promotion_rules: Vec<String>,
    /// Run a command at a hook event: EVENT=COMMAND (repeatable).
    #[arg(long = "hook", value_name = "EVENT=COMMAND")]
    pub hooks: Vec<String>,
    /// POST to a URL at a hook event: EVENT=URL (repeatable).
    #[arg(long = "webhook", value_name = "EVENT=URL")]
    pub webhooks: Vec<String>,
    /// Time limit of each hook.
    #[arg(long, default_value = "10s")]
    pub hook_timeout: String,
    /// Lag above which a replica may not be promoted or moved.
    #[arg(long, default_value = "10s")]
    pub max_lag: String,
    /// How long to wait for a candidate to apply its relay log.
    #[arg(long, default_value = "30s")]
    pub relay_apply_timeout: String,
    /// How long a takeover target may take to catch up.
    #[arg(long, default_value = "10s")]
    pub catch_up_timeout: String,
    /// Time limit of each connection and statement, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub timeout_ms: u64,
    /// The cluster's name in logs, hooks and the store (default: the
    /// first seed for `orca standalone`, the primary's address for a
    /// one-shot operation).
    #[arg(long)]
    pub cluster: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Subcommand)]
pub enum Op {
    /// Hand the primary role to a replica with no write lost (switchover).
    GracefulTakeover {
        #[command(flatten)]
        args: OneShot,
        /// The new primary (default: the best candidate).
        #[arg(long)]
        to: Option<String>,
    },
    /// Treat the primary as dead now and promote the best candidate.
    ForceFailover {
        #[command(flatten)]
        args: OneShot,
    },
    /// Promote the given direct replica, discarding the primary.
    ForceTakeover {
        #[command(flatten)]
        args: OneShot,
        #[arg(long)]
        to: String,
    },
    /// Recover the failure the analysis finds now (ignores anti-flapping).
    Recover {
        #[command(flatten)]
        args: OneShot,
    },
    /// Move a replica below any other instance.
    Relocate {
        #[command(flatten)]
        args: OneShot,
        instance: String,
        #[arg(long)]
        below: String,
    },
    /// Move a replica up one level, below its source's source.
    MoveUp {
        #[command(flatten)]
        args: OneShot,
        instance: String,
    },
    /// Move a replica below one of its siblings.
    MoveBelow {
        #[command(flatten)]
        args: OneShot,
        instance: String,
        #[arg(long)]
        sibling: String,
    },
    /// Point a replica at an instance (default: its current source) again.
    Repoint {
        #[command(flatten)]
        args: OneShot,
        instance: String,
        #[arg(long)]
        to: Option<String>,
    },
    /// Make every sibling of a replica its replica.
    TakeSiblings {
        #[command(flatten)]
        args: OneShot,
        instance: String,
    },
    /// Choose the best replica of an instance and move the others below it.
    RegroupReplicas {
        #[command(flatten)]
        args: OneShot,
        instance: String,
    },
}

/// What a one-shot command takes: the settings to act on the servers
/// (`--seed`), or a running orca's API to ask instead (`--api`).
#[derive(Debug, Clone, Args)]
pub struct OneShot {
    #[command(flatten)]
    pub op: OpArgs,
    #[command(flatten)]
    pub api: super::client::ApiClientArgs,
}

impl Op {
    pub fn args(&self) -> &OpArgs {
        &self.one_shot().op
    }

    pub fn api(&self) -> &super::client::ApiClientArgs {
        &self.one_shot().api
    }

    fn one_shot(&self) -> &OneShot {
        match self {
            Op::GracefulTakeover { args, .. }
            | Op::ForceFailover { args }
            | Op::ForceTakeover { args, .. }
            | Op::Recover { args }
            | Op::Relocate { args, .. }
            | Op::MoveUp { args, .. }
            | Op::MoveBelow { args, .. }
            | Op::Repoint { args, .. }
            | Op::TakeSiblings { args, .. }
            | Op::RegroupReplicas { args, .. } => args,
        }
    }
}

/// Everything an operation needs, read from the command line.
pub struct Settings {
    pub seeds: Vec<InstanceKey>,
    pub admin: Credentials,
    pub repl: Credentials,
    pub timeouts: Timeouts,
    pub hooks: Hooks,
    pub recovery: RecoveryOptions,
    pub takeover: TakeoverOptions,
}

fn duration(name: &str, s: &str) -> Result<Duration, String> {
    parse_duration(s).map_err(|e| format!("--{name}: {e}"))
}

fn key(s: &str) -> Result<InstanceKey, String> {
    s.parse()
        .map_err(|e: crate::topology::ParseError| e.to_string())
}

impl OpArgs {
    pub fn settings(&self) -> Result<Settings, String> {
        if self.seeds.is_empty() {
            return Err("--seed HOST:PORT is required".into());
        }
        let seeds = self
            .seeds
            .iter()
            .map(|s| key(s))
            .collect::<Result<Vec<_>, _>>()?;
        let admin = self.credentials.resolve()?;
        let repl_password = match &self.repl_password_file {
            Some(p) => std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read {}: {e}", p.display()))?
                .lines()
                .next()
                .unwrap_or_default()
                .to_string(),
            None => {
                std::env::var("ORCA_REPL_PASSWORD").unwrap_or_else(|_| admin.password().to_string())
            }
        };
        let repl = Credentials::new(
            self.repl_user.clone().unwrap_or_else(|| admin.user.clone()),
            repl_password,
        );
        let hook_timeout = duration("hook-timeout", &self.hook_timeout)?;
        let mut hooks = Hooks::default();
        for h in &self.hooks {
            let (event, command) = parse_event_value(h).map_err(|e| format!("--hook {e}"))?;
            hooks.add(
                event,
                HookTarget::Command {
                    command,
                    timeout: hook_timeout,
                },
            );
        }
        for h in &self.webhooks {
            let (event, url) = parse_event_value(h).map_err(|e| format!("--webhook {e}"))?;
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!(
                    "--webhook {h}: the URL must start with http:// or https://"
                ));
            }
            hooks.add(
                event,
                HookTarget::Webhook {
                    url,
                    timeout: hook_timeout,
                },
            );
        }
        let mut rules = BTreeMap::new();
        for r in &self.promotion_rules {
            let (k, rule) = r
                .rsplit_once('=')
                .ok_or_else(|| format!("--promotion-rule {r:?}: expected HOST:PORT=RULE"))?;
            let rule: PromotionRule = rule
                .parse()
                .map_err(|_| format!("--promotion-rule {r:?}: the rule is one of prefer, neutral, prefer_not, must_not"))?;
            rules.insert(key(k)?, rule);
        }
        let max_lag = duration("max-lag", &self.max_lag)?;
        let candidate = CandidateOptions {
            rules,
            max_lag_ms: Some(max_lag.as_millis() as u64),
            semi_sync: false,
        };
        if self.timeout_ms == 0 {
            return Err("--timeout-ms must be above 0".into());
        }
        let ms = Duration::from_millis(self.timeout_ms);
        let recovery = RecoveryOptions {
            candidate: candidate.clone(),
            relay_apply_timeout: duration("relay-apply-timeout", &self.relay_apply_timeout)?,
            catch_up_timeout: duration("catch-up-timeout", &self.catch_up_timeout)?,
            last_seen: None,
        };
        let takeover = TakeoverOptions {
            candidate,
            max_lag_ms: max_lag.as_millis() as u64,
            catch_up_timeout: recovery.catch_up_timeout,
        };
        Ok(Settings {
            seeds,
            admin,
            repl,
            timeouts: Timeouts {
                connect: ms,
                query: ms,
            },
            hooks,
            recovery,
            takeover,
        })
    }
}

/// The cluster's name outside Kubernetes: its primary's address.
fn cluster_name(topo: &Topology, seed: &InstanceKey) -> String {
    topo.root_of(seed)
        .map(|n| n.key.to_string())
        .unwrap_or_else(|| seed.to_string())
}

fn primary_of(topo: &Topology, seed: &InstanceKey) -> Result<InstanceKey, String> {
    topo.root_of(seed)
        .map(|n| n.key.clone())
        .ok_or_else(|| format!("no primary found above {seed}"))
}

pub(crate) fn print_plan(plan: &Plan, json: bool) {
    if json {
        match serde_json::to_string_pretty(plan) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("orca: {e}"),
        }
    } else {
        print!("{plan}");
    }
}

pub(crate) fn print_record(record: &OperationRecord, json: bool) {
    if json {
        match serde_json::to_string_pretty(record) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("orca: {e}"),
        }
        return;
    }
    println!("operation {} ({}):", record.id, record.kind.name());
    for s in record.steps.iter().chain(record.rollback.iter()) {
        let result = match &s.outcome {
            crate::engine::executor::StepOutcome::Done => "done".to_string(),
            crate::engine::executor::StepOutcome::Failed(e) => format!("FAILED: {e}"),
            crate::engine::executor::StepOutcome::Skipped(why) => format!("skipped: {why}"),
        };
        println!(
            "  {:>2}. [{:>5} ms] {} — {result}",
            s.index + 1,
            s.duration_ms,
            s.description
        );
    }
    for (k, why) in &record.lost_replicas {
        println!("  lost replica {k}: {why}");
    }
    for e in &record.hook_errors {
        println!("  hook: {e}");
    }
    match &record.outcome {
        Outcome::Succeeded => println!(
            "succeeded in {} ms{}",
            record.duration_ms,
            record
                .successor
                .as_ref()
                .map(|k| format!("; {k} is the new source"))
                .unwrap_or_default()
        ),
        Outcome::Vetoed(e) => println!("vetoed: {e}"),
        Outcome::RolledBack(e) => println!("rolled back: {e}"),
        Outcome::Failed(e) => println!("failed: {e}"),
        Outcome::Deposed(stopped) => println!("not the leader any more: {stopped}"),
    }
}

fn exit_for(outcome: &Outcome) -> u8 {
    match outcome {
        Outcome::Succeeded => EXIT_OK,
        Outcome::Vetoed(_) => EXIT_VETOED,
        Outcome::RolledBack(_) | Outcome::Failed(_) | Outcome::Deposed(_) => EXIT_FAILED,
    }
}

/// The instance an operation is about, for the audit.
fn target(op: &Op) -> Option<String> {
    match op {
        Op::GracefulTakeover { to, .. } => to.clone(),
        Op::ForceTakeover { to, .. } => Some(to.clone()),
        Op::ForceFailover { .. } | Op::Recover { .. } => None,
        Op::Relocate { instance, .. }
        | Op::MoveUp { instance, .. }
        | Op::MoveBelow { instance, .. }
        | Op::Repoint { instance, .. }
        | Op::TakeSiblings { instance, .. }
        | Op::RegroupReplicas { instance, .. } => Some(instance.clone()),
    }
}

/// The operation a command asks for, its instances parsed.
fn operation_of(op: &Op) -> Result<Operation, String> {
    let k = |s: &String| key(s);
    let opt = |s: &Option<String>| s.as_ref().map(k).transpose();
    let (kind, target, destination) = match op {
        Op::GracefulTakeover { to, .. } => (OperationKind::GracefulTakeover, opt(to)?, None),
        Op::ForceFailover { .. } => (OperationKind::ForceFailover, None, None),
        Op::ForceTakeover { to, .. } => (OperationKind::ForceTakeover, Some(k(to)?), None),
        Op::Recover { .. } => (OperationKind::Recover, None, None),
        Op::Relocate {
            instance, below, ..
        } => (OperationKind::Relocate, Some(k(instance)?), Some(k(below)?)),
        Op::MoveUp { instance, .. } => (OperationKind::MoveUp, Some(k(instance)?), None),
        Op::MoveBelow {
            instance, sibling, ..
        } => (
            OperationKind::MoveBelow,
            Some(k(instance)?),
            Some(k(sibling)?),
        ),
        Op::Repoint { instance, to, .. } => (OperationKind::Repoint, Some(k(instance)?), opt(to)?),
        Op::TakeSiblings { instance, .. } => {
            (OperationKind::TakeSiblings, Some(k(instance)?), None)
        }
        Op::RegroupReplicas { instance, .. } => {
            (OperationKind::RegroupReplicas, Some(k(instance)?), None)
        }
    };
    Operation::new(kind, target, destination)
}

/// What an operation left for the store: its cluster, once known, and
/// its record, once it ran.
#[derive(Default)]
struct Ran {
    cluster: Option<String>,
    record: Option<OperationRecord>,
}

/// How long a one-shot operation waits for the store to take its records
/// once it is done.
const STORE_WAIT: Duration = Duration::from_secs(10);

/// Writes the audit of an operation asked for on the command line, and its
/// record, to the store; the operation is done by now, whatever the store
/// says.
async fn store_op(
    config: crate::store::StoreConfig,
    name: &str,
    target: Option<String>,
    asked_at_ms: i64,
    code: u8,
    ran: Ran,
) {
    use crate::store::{AuditRow, Door, Record, RecoveryRow, Store};
    let Some(cluster) = ran.cluster else {
        return;
    };
    let store = match Store::open(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("orca {name}: {e}");
            return;
        }
    };
    let detail = match &ran.record {
        Some(r) => format!("operation {}, exit {code}", r.id),
        None => format!("no operation ran, exit {code}"),
    };
    store.enqueue(Record::Audit(AuditRow {
        id: uuid::Uuid::new_v4().to_string(),
        at_ms: asked_at_ms,
        cluster,
        action: name.to_string(),
        target,
        requested_by: crate::store::feed::local_user(),
        door: Door::Cli,
        detail: Some(detail),
    }));
    if let Some(r) = &ran.record {
        store.enqueue(Record::Recovery(Box::new(RecoveryRow::of(r, None))));
    }
    let left = store.flush(STORE_WAIT).await;
    if left > 0 {
        eprintln!(
            "orca {name}: the store did not take {left} records within {STORE_WAIT:?}; they are lost (the operation itself is done)"
        );
    }
}

pub async fn run(op: Op) -> u8 {
    let name = match &op {
        Op::GracefulTakeover { .. } => "graceful-takeover",
        Op::ForceFailover { .. } => "force-failover",
        Op::ForceTakeover { .. } => "force-takeover",
        Op::Recover { .. } => "recover",
        Op::Relocate { .. } => "relocate",
        Op::MoveUp { .. } => "move-up",
        Op::MoveBelow { .. } => "move-below",
        Op::Repoint { .. } => "repoint",
        Op::TakeSiblings { .. } => "take-siblings",
        Op::RegroupReplicas { .. } => "regroup-replicas",
    };
    match super::client::through_api(&op) {
        Err(e) => {
            eprintln!("orca {name}: {e}");
            return EXIT_USAGE;
        }
        Ok(true) => return super::client::operate_op(name, &op).await,
        Ok(false) => {}
    }
    let args = op.args().clone();
    let settings = match args.settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("orca {name}: {e}");
            return EXIT_USAGE;
        }
    };
    let store = match args.store.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("orca {name}: {e}");
            return EXIT_USAGE;
        }
    };
    let asked_at_ms = crate::store::now_ms();
    let target = target(&op);
    let mut ran = Ran::default();
    let code = match run_op(op, &args, settings, &mut ran).await {
        Ok(code) => code,
        Err((code, e)) => {
            eprintln!("orca {name}: {e}");
            code
        }
    };
    // A dry run asks for nothing.
    if let Some(config) = store.filter(|_| !args.dry_run) {
        store_op(config, name, target, asked_at_ms, code, ran).await;
    }
    code
}

async fn run_op(op: Op, args: &OpArgs, s: Settings, ran: &mut Ran) -> Result<u8, (u8, String)> {
    let usage = |e: String| (EXIT_USAGE, e);
    let refused = |e: PlanError| (EXIT_REFUSED, e.to_string());
    let seed = s.seeds[0].clone();
    let executor = Executor::new(
        ExecutorConfig {
            admin: s.admin.clone(),
            repl: s.repl.clone(),
            app: None,
            timeouts: s.timeouts,
        },
        s.hooks.clone(),
    );
    let mut inventory = Inventory::new(s.seeds.iter().cloned());
    let topo = inventory.probe_round(&s.admin, s.timeouts).await.topology;
    if !topo.nodes.values().any(|n| n.reachable()) {
        return Err((EXIT_FAILED, "no seed answered".into()));
    }
    let cluster = args
        .cluster
        .clone()
        .unwrap_or_else(|| cluster_name(&topo, &seed));
    ran.cluster = Some(cluster.clone());
    if let Op::Recover { .. } = &op {
        let mut config = EngineConfig::new(cluster.clone());
        config.auto_recover = false;
        config.heartbeat = false;
        config.probe_timeouts = s.timeouts;
        config.recovery = s.recovery.clone();
        let mut engine = ClusterEngine::new(config, executor, s.seeds.iter().cloned());
        let report = engine.round().await;
        let failure = operation::failure_to_recover(&report.findings)
            .map_err(|e| (EXIT_REFUSED, e))?
            .clone();
        eprintln!("{}", failure.description);
        if args.dry_run {
            let plan = operation::recovery_plan(engine.topology(), &failure, &s.recovery)
                .map_err(refused)?;
            print_plan(&plan, args.json);
            return Ok(EXIT_OK);
        }
        let record = engine.recover(&failure).await;
        print_record(&record, args.json);
        let code = exit_for(&record.outcome);
        ran.record = Some(record);
        return Ok(code);
    }
    let wanted = operation_of(&op).map_err(usage)?;
    let primary = match wanted.kind {
        OperationKind::GracefulTakeover
        | OperationKind::ForceFailover
        | OperationKind::ForceTakeover => Some(primary_of(&topo, &seed).map_err(usage)?),
        _ => None,
    };
    let plan = operation::plan(&topo, primary.as_ref(), &wanted, &s.recovery, &s.takeover)
        .map_err(refused)?;
    if args.dry_run {
        print_plan(&plan, args.json);
        return Ok(EXIT_OK);
    }
    let meta = OperationMeta {
        id: operation_id(&cluster, plan.kind),
        cluster,
        trigger: plan.kind.name().to_string(),
    };
    let record = executor.execute(&plan, &meta).await;
    print_record(&record, args.json);
    let code = exit_for(&record.outcome);
    ran.record = Some(record);
    Ok(code)
}
