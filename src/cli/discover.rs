//! `orca discover`: crawl from a seed and print the topology as a tree or
//! as JSON.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Duration;

use clap::Args;
use serde::Serialize;

use super::credentials::CredentialArgs;
use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::analysis::{Problem, Thresholds, instance_problems};
use crate::mysql::Credentials;
use crate::mysql::conn::Timeouts;
use crate::mysql::crawl::crawl;
use crate::topology::InstanceKey;
use crate::topology::graph::{Role, Topology, Unreached};
use crate::topology::instance::{Flavor, IoThreadState};

#[derive(Debug, Args)]
pub struct DiscoverArgs {
    /// Any instance of the topology, as `host[:port]` (port 3306 if absent).
    #[arg(long)]
    pub seed: String,
    #[command(flatten)]
    pub credentials: CredentialArgs,
    /// Print JSON instead of a tree.
    #[arg(long)]
    pub json: bool,
    /// Lag above which a replica is reported lagging, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub max_lag: f64,
    /// Time limit of each connection and query, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub timeout_ms: u64,
}

/// One instance as `orca discover` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceView {
    pub address: InstanceKey,
    pub role: Role,
    pub depth: usize,
    pub reachable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub source: Option<InstanceKey>,
    pub replicas: Vec<InstanceKey>,
    pub flavor: Option<Flavor>,
    pub version: Option<String>,
    pub server_id: Option<u32>,
    pub read_only: Option<bool>,
    pub io_thread: Option<IoThreadState>,
    pub sql_thread: Option<bool>,
    pub lag_seconds: Option<f64>,
    pub gtid_executed: Option<String>,
    pub binlog: Option<String>,
    pub errant_gtids: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_io_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_sql_error: Option<String>,
    pub problems: Vec<Problem>,
}

/// What `orca discover` found, instances in tree order.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub seed: InstanceKey,
    pub instances: Vec<InstanceView>,
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// Builds the report from a topology: instances in depth-first order from
/// each root, replicas in address order.
pub fn report(seed: InstanceKey, topo: &Topology, t: Thresholds) -> Report {
    let problems = instance_problems(topo, t);
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    fn visit(
        topo: &Topology,
        k: &InstanceKey,
        seen: &mut BTreeSet<InstanceKey>,
        order: &mut Vec<InstanceKey>,
    ) {
        if !seen.insert(k.clone()) {
            return;
        }
        order.push(k.clone());
        if let Some(n) = topo.get(k) {
            let mut children = n.replicas.clone();
            children.sort();
            for c in children
                .iter()
                .filter(|c| topo.get(c).is_some_and(|n| n.depth > 0))
            {
                visit(topo, c, seen, order);
            }
        }
    }
    for root in topo.roots() {
        visit(topo, &root.key, &mut seen, &mut order);
    }
    for k in topo.nodes.keys() {
        visit(topo, k, &mut seen, &mut order);
    }
    let instances = order
        .iter()
        .filter_map(|k| topo.get(k))
        .map(|n| {
            let s = n.snapshot.as_ref();
            let r = s.and_then(|s| s.replica.as_ref());
            let mut replicas = n.replicas.clone();
            replicas.sort();
            InstanceView {
                address: n.key.clone(),
                role: n.role,
                depth: n.depth,
                reachable: n.reachable(),
                error: n.error.clone(),
                source: n.source.clone(),
                replicas,
                flavor: s.map(|s| s.flavor),
                version: s.map(|s| s.version.raw.clone()),
                server_id: s.map(|s| s.server_id),
                read_only: s.map(|s| s.is_read_only()),
                io_thread: r.map(|r| r.io_running),
                sql_thread: r.map(|r| r.sql_running),
                lag_seconds: n.lag_ms.map(|ms| ms as f64 / 1000.0),
                gtid_executed: s
                    .and_then(|s| s.gtid.executed.as_ref())
                    .map(|g| g.to_string()),
                binlog: s.and_then(|s| s.binlog.as_ref()).map(|b| b.to_string()),
                errant_gtids: n.errant.as_ref().map(|g| g.to_string()),
                last_io_error: r.and_then(|r| non_empty(&r.last_io_error)),
                last_sql_error: r.and_then(|r| non_empty(&r.last_sql_error)),
                problems: problems.get(&n.key).cloned().unwrap_or_default(),
            }
        })
        .collect();
    Report { seed, instances }
}

/// The tree, one line per instance.
pub fn render_tree(report: &Report) -> String {
    let mut out = String::new();
    for v in &report.instances {
        let indent = "  ".repeat(v.depth);
        let branch = if v.depth > 0 { "└─ " } else { "" };
        let _ = write!(out, "{indent}{branch}{} [{}]", v.address, v.role);
        if !v.reachable {
            let _ = write!(
                out,
                " unreachable: {}",
                v.error.as_deref().unwrap_or("no answer")
            );
        } else {
            if let Some(ver) = &v.version {
                let _ = write!(out, " {ver}");
            }
            let _ = write!(
                out,
                " {}",
                if v.read_only == Some(true) {
                    "ro"
                } else {
                    "rw"
                }
            );
            if let (Some(io), Some(sql)) = (v.io_thread, v.sql_thread) {
                let _ = write!(out, " io:{io} sql:{}", if sql { "Yes" } else { "No" });
                match v.lag_seconds {
                    Some(l) => {
                        let _ = write!(out, " lag:{l:.1}s");
                    }
                    None => out.push_str(" lag:-"),
                }
            }
            if let Some(g) = &v.gtid_executed {
                let _ = write!(out, " gtid:{}", if g.is_empty() { "-" } else { g });
            }
            if let Some(e) = &v.errant_gtids {
                let _ = write!(out, " errant:{e}");
            }
        }
        if !v.problems.is_empty() {
            let names: Vec<&str> = v.problems.iter().map(|p| p.name()).collect();
            let _ = write!(out, " problems:{}", names.join(","));
        }
        out.push('\n');
        for e in [&v.last_io_error, &v.last_sql_error].into_iter().flatten() {
            let _ = writeln!(out, "{indent}   ! {e}");
        }
    }
    out
}

/// Crawls and builds the report.
pub async fn discover(
    seed: &InstanceKey,
    creds: &Credentials,
    timeouts: Timeouts,
    t: Thresholds,
) -> Report {
    let found = crawl(seed, creds, timeouts).await;
    let topo = Topology::build(
        found.snapshots,
        found
            .unreachable
            .into_iter()
            .map(|u| Unreached::new(u.key, u.error))
            .collect(),
    );
    report(seed.clone(), &topo, t)
}

pub async fn run(args: DiscoverArgs) -> u8 {
    let seed: InstanceKey = match args.seed.parse() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("orca discover: {e}");
            return EXIT_USAGE;
        }
    };
    let creds = match args.credentials.resolve() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("orca discover: {e}");
            return EXIT_USAGE;
        }
    };
    if !(args.max_lag.is_finite() && args.max_lag >= 0.0) || args.timeout_ms == 0 {
        eprintln!("orca discover: --max-lag must be ≥ 0 and --timeout-ms > 0");
        return EXIT_USAGE;
    }
    let ms = Duration::from_millis(args.timeout_ms);
    let timeouts = Timeouts {
        connect: ms,
        query: ms,
    };
    let t = Thresholds {
        max_lag_ms: (args.max_lag * 1000.0) as u64,
    };
    let report = discover(&seed, &creds, timeouts, t).await;
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("orca discover: {e}");
                return EXIT_FAILED;
            }
        }
    } else {
        print!("{}", render_tree(&report));
    }
    let seed_reached = report
        .instances
        .iter()
        .any(|v| v.address == seed && v.reachable);
    if seed_reached {
        EXIT_OK
    } else {
        eprintln!("orca discover: the seed {seed} did not answer");
        EXIT_FAILED
    }
}
