//! Prometheus metrics, served at `/metrics` beside the HTTP API. Every
//! name starts with `orca_`. Each [`Metrics`] has a registry of its own
//! (not the process-wide default), so tests can make several.
//!
//! - per cluster (`namespace`, `cluster`): healthy, primary changes,
//!   operations by kind and outcome, failover duration, findings by code;
//! - per instance (`namespace`, `cluster`, `instance`): up, replication
//!   lag, IO/SQL thread running, read only, errant transactions, probe
//!   duration; an instance that leaves the topology loses its series;
//! - the process: leader, epoch, reconcile errors by kind, the store's
//!   queue (read from the store when scraped), API requests by route
//!   template and status.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::analysis::Finding;
use crate::engine::executor::OperationRecord;
use crate::plan::PlanKind;
use crate::store::Store;
use crate::topology::InstanceKey;
use crate::topology::graph::Topology;
use crate::topology::instance::IoThreadState;

/// The buckets of the failover duration, in seconds.
const FAILOVER_BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0,
];

struct Families {
    cluster_healthy: IntGaugeVec,
    primary_changes: IntCounterVec,
    operations: IntCounterVec,
    failover_seconds: HistogramVec,
    findings: IntGaugeVec,
    instance_up: IntGaugeVec,
    lag_seconds: GaugeVec,
    io_running: IntGaugeVec,
    sql_running: IntGaugeVec,
    read_only: IntGaugeVec,
    errant: IntGaugeVec,
    probe_seconds: GaugeVec,
    leader: IntGauge,
    epoch: IntGauge,
    reconcile_errors: IntCounterVec,
    store_queue: IntGauge,
    store_dropped: IntCounter,
    store_failures: IntCounter,
    store_written: IntCounter,
    api_requests: IntCounterVec,
}

/// What a cluster's series are, to remove those that go.
#[derive(Default)]
struct Seen {
    instances: BTreeSet<String>,
    codes: BTreeSet<String>,
}

struct Inner {
    registry: Registry,
    f: Families,
    seen: Mutex<BTreeMap<(String, String), Seen>>,
    store: Mutex<Option<Store>>,
    /// The store's counts as last added to the counters.
    store_counts: Mutex<(u64, u64, u64)>,
}

#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

const CLUSTER: &[&str] = &["namespace", "cluster"];
const INSTANCE: &[&str] = &["namespace", "cluster", "instance"];

fn family<T: prometheus::core::Collector + Clone + 'static>(
    r: &Registry,
    made: Result<T, prometheus::Error>,
) -> Result<T, prometheus::Error> {
    let m = made?;
    r.register(Box::new(m.clone()))?;
    Ok(m)
}

impl Metrics {
    /// The families, registered. The names and labels are constants: an
    /// error here is a programming error, which the tests catch.
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let r = Registry::new();
        let gv = |name: &str, help: &str, labels: &[&str]| {
            family(&r, IntGaugeVec::new(Opts::new(name, help), labels))
        };
        let cv = |name: &str, help: &str, labels: &[&str]| {
            family(&r, IntCounterVec::new(Opts::new(name, help), labels))
        };
        let f = Families {
            cluster_healthy: gv(
                "orca_cluster_healthy",
                "1 when the cluster has no critical finding",
                CLUSTER,
            )?,
            primary_changes: cv(
                "orca_cluster_primary_changes_total",
                "Times another instance became the primary",
                CLUSTER,
            )?,
            operations: cv(
                "orca_operations_total",
                "Operations run, by kind and outcome",
                &["namespace", "cluster", "kind", "outcome"],
            )?,
            failover_seconds: family(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "orca_failover_duration_seconds",
                        "Duration of the promotions that succeeded (failovers and takeovers)",
                    )
                    .buckets(FAILOVER_BUCKETS.to_vec()),
                    &["namespace", "cluster", "kind"],
                ),
            )?,
            findings: gv(
                "orca_findings",
                "Current findings of the analysis, by code",
                &["namespace", "cluster", "code"],
            )?,
            instance_up: gv(
                "orca_instance_up",
                "1 when the instance answered its last probe",
                INSTANCE,
            )?,
            lag_seconds: family(
                &r,
                GaugeVec::new(
                    Opts::new(
                        "orca_instance_replication_lag_seconds",
                        "Replication lag: orca's heartbeat when both ends have it, else Seconds_Behind_Master",
                    ),
                    INSTANCE,
                ),
            )?,
            io_running: gv(
                "orca_instance_io_thread_running",
                "1 when the replication IO thread runs",
                INSTANCE,
            )?,
            sql_running: gv(
                "orca_instance_sql_thread_running",
                "1 when the replication SQL thread runs",
                INSTANCE,
            )?,
            read_only: gv(
                "orca_instance_read_only",
                "1 when read_only is on",
                INSTANCE,
            )?,
            errant: gv(
                "orca_instance_errant_transactions",
                "Transactions this replica has that its source does not",
                INSTANCE,
            )?,
            probe_seconds: family(
                &r,
                GaugeVec::new(
                    Opts::new(
                        "orca_instance_probe_duration_seconds",
                        "How long the last probe took",
                    ),
                    INSTANCE,
                ),
            )?,
            leader: family(&r, IntGauge::new("orca_leader", "1 while this orca leads"))?,
            epoch: family(
                &r,
                IntGauge::new(
                    "orca_epoch",
                    "The fencing epoch this orca leads in (0 when it does not)",
                ),
            )?,
            reconcile_errors: cv(
                "orca_reconcile_errors_total",
                "Failed cluster rounds, by kind of error",
                &["error"],
            )?,
            store_queue: family(
                &r,
                IntGauge::new("orca_store_queue_depth", "Records waiting for the store"),
            )?,
            store_dropped: family(
                &r,
                IntCounter::new(
                    "orca_store_dropped_total",
                    "Records refused by a full queue",
                ),
            )?,
            store_failures: family(
                &r,
                IntCounter::new(
                    "orca_store_write_failures_total",
                    "Failed writes to the store",
                ),
            )?,
            store_written: family(
                &r,
                IntCounter::new("orca_store_written_total", "Records written to the store"),
            )?,
            api_requests: cv(
                "orca_api_requests_total",
                "HTTP API requests, by route template and status",
                &["route", "status"],
            )?,
        };
        Ok(Metrics(Arc::new(Inner {
            registry: r,
            f,
            seen: Mutex::new(BTreeMap::new()),
            store: Mutex::new(None),
            store_counts: Mutex::new((0, 0, 0)),
        })))
    }

    fn f(&self) -> &Families {
        &self.0.f
    }

    /// A round of a cluster: its health, every instance's gauges and the
    /// findings by code; the series of instances and codes that went are
    /// removed.
    pub fn observe_round(
        &self,
        namespace: &str,
        cluster: &str,
        topology: &Topology,
        findings: &[Finding],
    ) {
        let f = self.f();
        let healthy = crate::api::model::healthy(findings);
        f.cluster_healthy
            .with_label_values(&[namespace, cluster])
            .set(i64::from(healthy));
        let mut now = Seen::default();
        for n in topology.nodes.values() {
            let key = n.key.to_string();
            let l = [namespace, cluster, key.as_str()];
            now.instances.insert(key.clone());
            f.instance_up
                .with_label_values(&l)
                .set(i64::from(n.reachable()));
            match n.lag_ms {
                Some(ms) => f.lag_seconds.with_label_values(&l).set(ms as f64 / 1000.0),
                None => {
                    let _ = f.lag_seconds.remove_label_values(&l);
                }
            }
            match n.snapshot.as_ref().and_then(|s| s.replica.as_ref()) {
                Some(r) => {
                    let io = matches!(r.io_running, IoThreadState::Yes);
                    f.io_running.with_label_values(&l).set(i64::from(io));
                    f.sql_running
                        .with_label_values(&l)
                        .set(i64::from(r.sql_running));
                }
                None => {
                    let _ = f.io_running.remove_label_values(&l);
                    let _ = f.sql_running.remove_label_values(&l);
                }
            }
            match &n.snapshot {
                Some(s) => f
                    .read_only
                    .with_label_values(&l)
                    .set(i64::from(s.read_only)),
                None => {
                    let _ = f.read_only.remove_label_values(&l);
                }
            }
            let errant = n.errant.as_ref().map_or(0, |e| e.count());
            f.errant
                .with_label_values(&l)
                .set(i64::try_from(errant).unwrap_or(i64::MAX));
        }
        for finding in findings {
            now.codes.insert(finding.code.to_string());
        }
        for code in &now.codes {
            let n = findings
                .iter()
                .filter(|x| x.code.to_string() == *code)
                .count();
            f.findings
                .with_label_values(&[namespace, cluster, code.as_str()])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let mut seen = self.0.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let before = seen
            .insert((namespace.to_string(), cluster.to_string()), now)
            .unwrap_or_default();
        let now = &seen[&(namespace.to_string(), cluster.to_string())];
        for gone in before.instances.difference(&now.instances) {
            self.remove_instance(namespace, cluster, gone);
        }
        for gone in before.codes.difference(&now.codes) {
            let _ = f
                .findings
                .remove_label_values(&[namespace, cluster, gone.as_str()]);
        }
    }

    /// An engine's round: its topology and findings, how long each probe
    /// took, and the operations the round ran.
    pub fn observe_engine(
        &self,
        namespace: &str,
        cluster: &str,
        engine: &crate::engine::ClusterEngine,
        report: &crate::engine::RoundReport,
    ) {
        self.observe_round(namespace, cluster, engine.topology(), engine.findings());
        self.observe_probes(
            namespace,
            cluster,
            engine
                .inventory
                .known
                .iter()
                .filter_map(|(k, v)| v.probe_took.map(|t| (k, t.as_millis() as u64))),
        );
        for r in report.recovery.iter().chain(&report.fence_records) {
            self.observe_operation(namespace, cluster, r);
        }
    }

    /// How long each instance's last probe took (milliseconds).
    pub fn observe_probes<'a>(
        &self,
        namespace: &str,
        cluster: &str,
        probes: impl IntoIterator<Item = (&'a InstanceKey, u64)>,
    ) {
        for (k, ms) in probes {
            let key = k.to_string();
            self.f()
                .probe_seconds
                .with_label_values(&[namespace, cluster, key.as_str()])
                .set(ms as f64 / 1000.0);
        }
    }

    fn remove_instance(&self, namespace: &str, cluster: &str, instance: &str) {
        let f = self.f();
        let l = [namespace, cluster, instance];
        for g in [
            &f.instance_up,
            &f.io_running,
            &f.sql_running,
            &f.read_only,
            &f.errant,
        ] {
            let _ = g.remove_label_values(&l);
        }
        let _ = f.lag_seconds.remove_label_values(&l);
        let _ = f.probe_seconds.remove_label_values(&l);
    }

    /// An operation ran: counted by kind and outcome; a promotion that
    /// succeeded changes the primary and is timed.
    pub fn observe_operation(&self, namespace: &str, cluster: &str, record: &OperationRecord) {
        let f = self.f();
        let (outcome, _) = crate::store::record::outcome_parts(&record.outcome);
        let kind = record.kind.name();
        f.operations
            .with_label_values(&[namespace, cluster, kind, outcome])
            .inc();
        let promotes = matches!(
            record.kind,
            PlanKind::RecoverDeadPrimary
                | PlanKind::ForceFailover
                | PlanKind::ForceTakeover
                | PlanKind::GracefulTakeover
        );
        if promotes && record.outcome.succeeded() && record.successor.is_some() {
            f.primary_changes
                .with_label_values(&[namespace, cluster])
                .inc();
            f.failover_seconds
                .with_label_values(&[namespace, cluster, kind])
                .observe(record.duration_ms as f64 / 1000.0);
        }
    }

    /// A cluster that went: every series of it.
    pub fn forget_cluster(&self, namespace: &str, cluster: &str) {
        let f = self.f();
        let seen = self
            .0
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(namespace.to_string(), cluster.to_string()))
            .unwrap_or_default();
        for i in &seen.instances {
            self.remove_instance(namespace, cluster, i);
        }
        for c in &seen.codes {
            let _ = f
                .findings
                .remove_label_values(&[namespace, cluster, c.as_str()]);
        }
        let _ = f.cluster_healthy.remove_label_values(&[namespace, cluster]);
    }

    pub fn set_leader(&self, leader: bool, epoch: Option<i64>) {
        self.f().leader.set(i64::from(leader));
        self.f()
            .epoch
            .set(if leader { epoch.unwrap_or(0) } else { 0 });
    }

    /// A failed round, by the error's [`metric_label`]
    /// (`crate::k8s::worker::WorkerError::metric_label`).
    pub fn reconcile_error(&self, label: &str) {
        self.f().reconcile_errors.with_label_values(&[label]).inc();
    }

    /// The store whose queue is read at each scrape.
    pub fn watch_store(&self, store: Store) {
        *self.0.store.lock().unwrap_or_else(PoisonError::into_inner) = Some(store);
    }

    pub fn api_request(&self, route: &str, status: u16) {
        self.f()
            .api_requests
            .with_label_values(&[route, &status.to_string()])
            .inc();
    }

    /// The store's figures as they are now.
    fn refresh_store(&self) {
        let store = self
            .0
            .store
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let Some(s) = store else { return };
        let f = self.f();
        f.store_queue
            .set(i64::try_from(s.queue_depth()).unwrap_or(i64::MAX));
        let mut last = self
            .0
            .store_counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let now = (s.dropped(), s.write_failures(), s.written());
        f.store_dropped.inc_by(now.0.saturating_sub(last.0));
        f.store_failures.inc_by(now.1.saturating_sub(last.1));
        f.store_written.inc_by(now.2.saturating_sub(last.2));
        *last = now;
    }

    /// The text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        self.refresh_store();
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.0.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "cannot encode the metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// `GET /metrics`.
pub fn router(metrics: Metrics) -> axum::Router {
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let m = metrics.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    m.render(),
                )
            }
        }),
    )
}

/// The hook the API calls for every request.
pub fn request_hook(metrics: &Metrics) -> crate::api::RequestHook {
    let m = metrics.clone();
    Arc::new(move |route: &str, status: u16| m.api_request(route, status))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{AnalysisContext, analyze};
    use crate::topology::testing::{behind, down, mariadb, replica_of, topology};

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    #[test]
    fn a_round_sets_the_gauges_and_removes_what_went() {
        let m = Metrics::new().unwrap();
        let r1 = behind(replica_of("r1", 2, "p"), 3);
        let topo = topology(vec![mariadb("p", 1), r1, replica_of("r2", 3, "p")], vec![]);
        let findings = analyze(&topo, &AnalysisContext::default());
        m.observe_round("ns", "db", &topo, &findings);
        let text = m.render();
        let s = |inst: &str, name: &str| {
            format!("{name}{{cluster=\"db\",instance=\"{inst}:3306\",namespace=\"ns\"}}")
        };
        assert_eq!(
            value(
                &text,
                "orca_cluster_healthy{cluster=\"db\",namespace=\"ns\"}"
            ),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            value(&text, &s("p", "orca_instance_up")),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            value(&text, &s("r1", "orca_instance_io_thread_running")),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            value(&text, &s("p", "orca_instance_read_only")),
            Some(0.0),
            "{text}"
        );
        assert!(
            value(&text, &s("p", "orca_instance_io_thread_running")).is_none(),
            "{text}"
        );
        assert!(
            value(&text, &s("r1", "orca_instance_replication_lag_seconds")).is_some(),
            "{text}"
        );

        // The primary dies, r2 leaves.
        let topo = topology(vec![replica_of("r1", 2, "p")], vec![down("p", None)]);
        let findings = analyze(&topo, &AnalysisContext::default());
        m.observe_round("ns", "db", &topo, &findings);
        let text = m.render();
        assert_eq!(
            value(&text, &s("p", "orca_instance_up")),
            Some(0.0),
            "{text}"
        );
        assert!(
            value(&text, &s("r2", "orca_instance_up")).is_none(),
            "{text}"
        );
        m.forget_cluster("ns", "db");
        let text = m.render();
        assert!(!text.contains("instance=\"r1:3306\""), "{text}");
    }

    #[test]
    fn operations_count_and_promotions_are_timed() {
        use crate::engine::executor::Outcome;
        let m = Metrics::new().unwrap();
        let record = |kind, outcome| OperationRecord {
            id: "x".into(),
            cluster: "db".into(),
            kind,
            trigger: "t".into(),
            failed: None,
            successor: Some("r1:3306".parse().unwrap()),
            lost_replicas: vec![],
            lost_transactions: None,
            notes: vec![],
            started_at: 0,
            duration_ms: 540,
            steps: vec![],
            rollback: vec![],
            hook_errors: vec![],
            outcome,
        };
        m.observe_operation(
            "ns",
            "db",
            &record(PlanKind::RecoverDeadPrimary, Outcome::Succeeded),
        );
        m.observe_operation("ns", "db", &record(PlanKind::Relocate, Outcome::Succeeded));
        m.observe_operation(
            "ns",
            "db",
            &record(PlanKind::ForceFailover, Outcome::Failed("x".into())),
        );
        let text = m.render();
        assert_eq!(
            value(
                &text,
                "orca_cluster_primary_changes_total{cluster=\"db\",namespace=\"ns\"}"
            ),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            value(
                &text,
                "orca_operations_total{cluster=\"db\",kind=\"force-failover\",namespace=\"ns\",outcome=\"failed\"}"
            ),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            value(
                &text,
                "orca_failover_duration_seconds_bucket{cluster=\"db\",kind=\"recover-dead-primary\",namespace=\"ns\",le=\"1\"}"
            ),
            Some(1.0),
            "{text}"
        );
        m.set_leader(true, Some(7));
        m.reconcile_error("kube");
        m.api_request("/api/v1/clusters", 200);
        let text = m.render();
        assert_eq!(value(&text, "orca_epoch"), Some(7.0));
        assert_eq!(
            value(&text, "orca_reconcile_errors_total{error=\"kube\"}"),
            Some(1.0)
        );
        assert_eq!(
            value(
                &text,
                "orca_api_requests_total{route=\"/api/v1/clusters\",status=\"200\"}"
            ),
            Some(1.0)
        );
    }
}
