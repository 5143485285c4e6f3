//! The bounded queue in front of the store and its one writer task.
//!
//! [`Store::enqueue`] never awaits: it counts the record as pending and
//! hands it to a tokio channel, or refuses it when the queue is full
//! ([`super::record::admits`]: the newest record is refused, volatile ones
//! first). The writer takes up to a batch of records at a time and writes
//! them in one transaction; while the store does not answer it keeps the
//! batch (the rest waits in the channel) and tries again after a capped
//! exponential backoff with jitter (`backon`). A record counts as pending
//! from its enqueue until it is written, so [`Store::queue_depth`] is what
//! a crash of orca would lose. A record the server refuses as such (a value
//! too long) is retried alone a few times, then dropped and counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use backon::BackoffBuilder;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value};
use tokio::sync::mpsc;

use super::record::{Record, admits};
use super::{StoreConfig, StoreError, bounded, connect, schema};

/// How often a record the server refuses is tried before it is dropped.
const REFUSALS: u32 = 3;

struct Shared {
    config: StoreConfig,
    pending: AtomicUsize,
    dropped: AtomicU64,
    write_failures: AtomicU64,
    written: AtomicU64,
    /// Whether the drop of a record was logged since the queue last had
    /// room (one line per overflow, not one per record).
    overflow_told: AtomicBool,
    pool: mysql_async::Pool,
}

/// The store's handle: cheap to clone, shared by everything that writes
/// records or reads them.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Record>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dsn", &self.shared.config.dsn.to_string())
            .field("queue_depth", &self.queue_depth())
            .finish()
    }
}

impl Store {
    /// Applies the migrations, then starts the writer. A store that does
    /// not answer now does not stop orca: the writer migrates when it
    /// reaches it, and records wait in the queue meanwhile (said once in
    /// the log). A schema newer than this binary knows is an error.
    pub async fn open(config: StoreConfig) -> Result<Store, StoreError> {
        let migrated = match super::migrate(&config).await {
            Ok(v) => {
                tracing::info!(store = %config.dsn, schema = v, "store ready");
                true
            }
            Err(e @ StoreError::SchemaTooNew { .. }) => return Err(e),
            Err(e) => {
                tracing::warn!(store = %config.dsn, error = %e, "the store does not answer: orca runs on, its records wait in the queue until the store answers");
                false
            }
        };
        Ok(Store::start(config, migrated))
    }

    /// Starts the writer (on the current tokio runtime); `migrated` tells
    /// whether the schema is known to be current.
    pub fn start(config: StoreConfig, migrated: bool) -> Store {
        let capacity = config.queue_capacity.max(1);
        let (tx, rx) = mpsc::channel(capacity);
        let pool_opts = mysql_async::PoolOpts::default()
            .with_constraints(mysql_async::PoolConstraints::new(0, 4).unwrap_or_default());
        let pool = mysql_async::Pool::new(
            super::opts(&config, Some(&config.dsn.database)).pool_opts(pool_opts),
        );
        let shared = Arc::new(Shared {
            config,
            pending: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
            write_failures: AtomicU64::new(0),
            written: AtomicU64::new(0),
            overflow_told: AtomicBool::new(false),
            pool,
        });
        tokio::spawn(write_loop(shared.clone(), rx, migrated));
        Store { shared, tx }
    }

    pub fn config(&self) -> &StoreConfig {
        &self.shared.config
    }

    pub(crate) fn pool(&self) -> &mysql_async::Pool {
        &self.shared.pool
    }

    /// Queues `record` for the writer without waiting; `false` when the
    /// queue was full and the record was dropped (counted).
    pub fn enqueue(&self, record: Record) -> bool {
        let s = &self.shared;
        let capacity = s.config.queue_capacity.max(1);
        let volatile = record.volatile();
        // Take a place first, so that two enqueuers cannot both take the
        // last one.
        let taken = s
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| {
                admits(volatile, p, capacity).then_some(p + 1)
            })
            .is_ok();
        let kind = record.kind();
        let sent = taken && self.tx.try_send(record).is_ok();
        if taken && !sent {
            s.pending.fetch_sub(1, Ordering::AcqRel);
        }
        if sent {
            return true;
        }
        let dropped = s.dropped.fetch_add(1, Ordering::AcqRel) + 1;
        if !s.overflow_told.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                store = %s.config.dsn,
                record = kind,
                queue_depth = s.pending.load(Ordering::Acquire),
                capacity,
                dropped,
                "store queue full: the newest records are dropped (snapshots first) until the store catches up"
            );
        }
        false
    }

    /// Records waiting to be written (queued, or in the batch being
    /// written).
    pub fn queue_depth(&self) -> usize {
        self.shared.pending.load(Ordering::Acquire)
    }

    /// Records dropped: refused by a full queue, or refused by the store.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Acquire)
    }

    /// Failed attempts to write a batch.
    pub fn write_failures(&self) -> u64 {
        self.shared.write_failures.load(Ordering::Acquire)
    }

    /// Records written.
    pub fn written(&self) -> u64 {
        self.shared.written.load(Ordering::Acquire)
    }

    /// Waits until every queued record is written, at most `limit`;
    /// returns the records still waiting (0 when all were written).
    pub async fn flush(&self, limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        loop {
            let left = self.queue_depth();
            if left == 0 || Instant::now() >= deadline {
                return left;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn write_loop(shared: Arc<Shared>, mut rx: mpsc::Receiver<Record>, mut migrated: bool) {
    let s = &*shared;
    let cfg = &s.config;
    let mut conn: Option<Conn> = None;
    let mut batch: Vec<Record> = Vec::with_capacity(cfg.batch);
    // Since when the store has not answered, and the error then.
    let mut down: Option<Instant> = None;
    loop {
        if rx.recv_many(&mut batch, cfg.batch.max(1)).await == 0 {
            return;
        }
        let mut backoff = cfg_backoff(cfg);
        // One record at a time after the server refused one of a batch.
        let mut alone = false;
        let mut refusals = 0;
        while !batch.is_empty() {
            let n = if alone { 1 } else { batch.len() };
            match write_batch(&mut conn, &mut migrated, cfg, &batch[..n]).await {
                Ok(()) => {
                    batch.drain(..n);
                    s.pending.fetch_sub(n, Ordering::AcqRel);
                    s.written.fetch_add(n as u64, Ordering::AcqRel);
                    refusals = 0;
                    if let Some(since) = down.take() {
                        tracing::info!(
                            store = %cfg.dsn,
                            down_ms = since.elapsed().as_millis() as u64,
                            queue_depth = s.pending.load(Ordering::Acquire),
                            dropped = s.dropped.load(Ordering::Acquire),
                            write_failures = s.write_failures.load(Ordering::Acquire),
                            "the store answers again: the queued records are being written"
                        );
                    }
                    if s.pending.load(Ordering::Acquire) < cfg.queue_capacity.max(1) / 2 {
                        s.overflow_told.store(false, Ordering::Release);
                    }
                }
                Err(e) => {
                    s.write_failures.fetch_add(1, Ordering::AcqRel);
                    conn = None;
                    if matches!(e, StoreError::SchemaTooNew { .. }) {
                        // Another orca upgraded the store: this one must
                        // not write there any more.
                        let n = batch.len();
                        batch.clear();
                        s.pending.fetch_sub(n, Ordering::AcqRel);
                        s.dropped.fetch_add(n as u64, Ordering::AcqRel);
                        tracing::error!(store = %cfg.dsn, error = %e, "records dropped");
                        continue;
                    }
                    if e.refuses_the_record() {
                        if n > 1 {
                            alone = true;
                            continue;
                        }
                        refusals += 1;
                        if refusals >= REFUSALS {
                            let r = batch.remove(0);
                            s.pending.fetch_sub(1, Ordering::AcqRel);
                            s.dropped.fetch_add(1, Ordering::AcqRel);
                            refusals = 0;
                            tracing::error!(store = %cfg.dsn, record = r.kind(), error = %e, "the store refuses a record: dropped");
                            continue;
                        }
                    } else if down.is_none() {
                        down = Some(Instant::now());
                        tracing::warn!(
                            store = %cfg.dsn,
                            error = %e,
                            queue_depth = s.pending.load(Ordering::Acquire),
                            "the store does not answer: records wait in the queue and are written when it answers"
                        );
                    } else {
                        tracing::debug!(store = %cfg.dsn, error = %e, "store write failed; retrying");
                    }
                    let wait = backoff.next().unwrap_or(cfg.retry_max);
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

fn cfg_backoff(cfg: &StoreConfig) -> impl Iterator<Item = Duration> {
    backon::ExponentialBuilder::default()
        .with_min_delay(cfg.retry_min)
        .with_max_delay(cfg.retry_max)
        .with_jitter()
        .without_max_times()
        .build()
}

/// Writes `records` in one transaction, connecting (and migrating) first
/// when needed.
async fn write_batch(
    conn: &mut Option<Conn>,
    migrated: &mut bool,
    cfg: &StoreConfig,
    records: &[Record],
) -> Result<(), StoreError> {
    let c = match conn {
        Some(c) => c,
        None => conn.insert(connect(cfg).await?),
    };
    let limit = cfg.timeouts.query;
    if !*migrated {
        let v = schema::migrate(c, limit).await?;
        tracing::info!(store = %cfg.dsn, schema = v, "store ready");
        *migrated = true;
    }
    bounded(
        limit,
        "starting a transaction",
        c.query_drop("START TRANSACTION"),
    )
    .await?;
    for r in records {
        let r = write_one(c, limit, r).await;
        if let Err(e) = r {
            if e.server_code() == Some(1146) {
                // A table is missing: migrate again on the next attempt.
                *migrated = false;
            }
            return Err(e);
        }
    }
    bounded(limit, "committing", c.query_drop("COMMIT")).await
}

async fn exec(
    c: &mut Conn,
    limit: Duration,
    what: &'static str,
    sql: &'static str,
    params: Vec<Value>,
) -> Result<(), StoreError> {
    bounded(limit, what, c.exec_drop(sql, params)).await
}

macro_rules! vals {
    ($($v:expr),* $(,)?) => { vec![$(Value::from($v)),*] };
}

async fn write_one(c: &mut Conn, limit: Duration, r: &Record) -> Result<(), StoreError> {
    match r {
        Record::Instance(i) => {
            exec(
                c,
                limit,
                "writing an instance",
                "INSERT INTO instances (cluster, instance, role, source, reachable, read_only, flavor, version, server_id, gtid_executed, lag_ms, error, snapshot, seen_at_ms)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                 ON DUPLICATE KEY UPDATE role = VALUES(role), source = VALUES(source), reachable = VALUES(reachable),
                   read_only = VALUES(read_only), flavor = COALESCE(VALUES(flavor), flavor),
                   version = COALESCE(VALUES(version), version), server_id = COALESCE(VALUES(server_id), server_id),
                   gtid_executed = COALESCE(VALUES(gtid_executed), gtid_executed), lag_ms = VALUES(lag_ms),
                   error = VALUES(error), snapshot = COALESCE(VALUES(snapshot), snapshot), seen_at_ms = VALUES(seen_at_ms)",
                vals![
                    i.cluster.as_str(),
                    i.instance.as_str(),
                    i.role.as_str(),
                    i.source.as_deref(),
                    i.reachable,
                    i.read_only,
                    i.flavor.as_deref(),
                    i.version.as_deref(),
                    i.server_id,
                    i.gtid_executed.as_deref(),
                    i.lag_ms,
                    i.error.as_deref(),
                    i.snapshot.as_deref(),
                    i.seen_at_ms,
                ],
            )
            .await
        }
        Record::FindingStarted(f) => {
            exec(
                c,
                limit,
                "writing a finding",
                "INSERT INTO findings (id, cluster, code, severity, instance, replicas, description, first_seen_ms, last_seen_ms)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                 ON DUPLICATE KEY UPDATE description = VALUES(description)",
                vals![
                    f.id.as_str(),
                    f.cluster.as_str(),
                    f.code.as_str(),
                    f.severity.as_str(),
                    f.instance.as_str(),
                    f.replicas.as_str(),
                    f.description.as_str(),
                    f.first_seen_ms,
                    f.first_seen_ms,
                ],
            )
            .await
        }
        Record::FindingSeen { id, at_ms } => {
            exec(
                c,
                limit,
                "writing a finding's last sight",
                "UPDATE findings SET last_seen_ms = GREATEST(last_seen_ms, ?) WHERE id = ?",
                vals![*at_ms, id.as_str()],
            )
            .await
        }
        Record::FindingEnded { id, at_ms } => {
            exec(
                c,
                limit,
                "writing a finding's end",
                "UPDATE findings SET last_seen_ms = GREATEST(last_seen_ms, ?), ended_ms = ? WHERE id = ?",
                vals![*at_ms, *at_ms, id.as_str()],
            )
            .await
        }
        Record::Recovery(r) => {
            exec(
                c,
                limit,
                "writing a recovery",
                "INSERT INTO recoveries (id, cluster, kind, trigger_name, failed_instance, successor, lost_replicas, lost_gtids, lost_count, outcome, outcome_detail, notes, hook_errors, epoch, started_ms, ended_ms)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                 ON DUPLICATE KEY UPDATE successor = VALUES(successor), lost_replicas = VALUES(lost_replicas),
                   lost_gtids = VALUES(lost_gtids), lost_count = VALUES(lost_count), outcome = VALUES(outcome),
                   outcome_detail = VALUES(outcome_detail), notes = VALUES(notes), hook_errors = VALUES(hook_errors),
                   epoch = VALUES(epoch), ended_ms = VALUES(ended_ms)",
                vals![
                    r.id.as_str(),
                    r.cluster.as_str(),
                    r.kind.as_str(),
                    r.trigger.as_str(),
                    r.failed_instance.as_deref(),
                    r.successor.as_deref(),
                    r.lost_replicas.as_str(),
                    r.lost_gtids.as_deref(),
                    r.lost_count,
                    r.outcome.as_str(),
                    r.outcome_detail.as_deref(),
                    r.notes.as_str(),
                    r.hook_errors.as_str(),
                    r.epoch,
                    r.started_ms,
                    r.ended_ms,
                ],
            )
            .await?;
            for st in &r.steps {
                exec(
                    c,
                    limit,
                    "writing a recovery step",
                    "INSERT INTO recovery_steps (recovery_id, phase, idx, description, step, started_ms, duration_ms, outcome, detail)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                     ON DUPLICATE KEY UPDATE description = VALUES(description), step = VALUES(step),
                       started_ms = VALUES(started_ms), duration_ms = VALUES(duration_ms),
                       outcome = VALUES(outcome), detail = VALUES(detail)",
                    vals![
                        r.id.as_str(),
                        st.phase.as_str(),
                        st.index,
                        st.description.as_str(),
                        st.step.as_str(),
                        st.started_ms,
                        st.duration_ms,
                        st.outcome.as_str(),
                        st.detail.as_deref(),
                    ],
                )
                .await?;
            }
            Ok(())
        }
        Record::Acknowledged {
            recovery_id,
            by,
            comment,
            at_ms,
        } => {
            exec(
                c,
                limit,
                "writing an acknowledgement",
                "UPDATE recoveries SET acknowledged_by = ?, acknowledged_ms = ?, acknowledged_comment = ? WHERE id = ?",
                vals![by.as_str(), *at_ms, comment.as_str(), recovery_id.as_str()],
            )
            .await
        }
        Record::Audit(a) => {
            exec(
                c,
                limit,
                "writing an audit record",
                "INSERT INTO audit (id, at_ms, cluster, action, target, requested_by, door, detail)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                 ON DUPLICATE KEY UPDATE id = id",
                vals![
                    a.id.as_str(),
                    a.at_ms,
                    a.cluster.as_str(),
                    a.action.as_str(),
                    a.target.as_deref(),
                    a.requested_by.as_str(),
                    a.door.name(),
                    a.detail.as_deref(),
                ],
            )
            .await
        }
        Record::Downtime(d) => {
            exec(
                c,
                limit,
                "writing a downtime",
                "INSERT INTO downtimes (id, cluster, instance, starts_ms, ends_ms, owner, reason)
                 VALUES (?, ?, ?, ?, ?, ?, ?)
                 ON DUPLICATE KEY UPDATE ends_ms = VALUES(ends_ms), reason = VALUES(reason)",
                vals![
                    d.id.as_str(),
                    d.cluster.as_str(),
                    d.instance.as_str(),
                    d.starts_ms,
                    d.ends_ms,
                    d.owner.as_str(),
                    d.reason.as_deref(),
                ],
            )
            .await
        }
    }
}
