//! `orca-sandbox bench probe`: how many instances one orca process
//! watches. The simulated MySQL server ([`crate::mysqlsim`]) serves
//! `--instances` instances in `--clusters` clusters from a child process
//! of its own; this process runs one real [`ClusterEngine`] per cluster
//! (the real prober over TCP, the heartbeat, the analysis; no recovery,
//! nothing to recover), each round followed by its interval, as the
//! operator runs them. Measured over a steady window after a warm-up:
//! probe rounds per second per cluster, the CPU this process used (per
//! 1,000 instances), its resident memory per instance, the probes'
//! latency, and failed probes. Then the time from a kill -9 of a real
//! primary (a cluster of three `mariadbd` on loopback, recovered by its
//! own engine in this process) to a writable new primary with the other
//! replica following, without and with the simulated instances watched.
//! Not a test: the figures go to `docs/benchmarks.md`.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use tokio::io::AsyncReadExt;

use crate::mysqlsim::{Addressing, SimBuilder};
use orca::cli::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use orca::engine::executor::{Executor, ExecutorConfig};
use orca::engine::{ClusterEngine, EngineConfig};
use orca::mysql::Credentials;
use orca::topology::{Flavor, InstanceKey};

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Simulated instances to watch.
    #[arg(long, default_value_t = 1000)]
    pub instances: usize,
    /// Clusters they form: a primary and replicas each (at least two
    /// instances per cluster), MariaDB and MySQL in turn, semi-sync in
    /// every other one.
    #[arg(long, default_value_t = 250)]
    pub clusters: usize,
    /// Seconds of steady state measured, after a warm-up.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// Dead-primary failovers of a real three-server cluster to time,
    /// without and then with the simulated instances watched (0: none).
    #[arg(long, default_value_t = 3)]
    pub failovers: usize,
    /// The first loopback address of the simulated instances (one each).
    #[arg(long, default_value = "127.78.0.1")]
    pub first_address: std::net::Ipv4Addr,
    /// Also append the results as markdown to this file.
    #[arg(long)]
    pub write: Option<PathBuf>,
    /// Serve the simulated instances and print their clusters (the child
    /// processes this command starts).
    #[arg(long, hide = true)]
    pub serve_sim: bool,
    /// The index of a child's first cluster among all (its server ids).
    #[arg(long, hide = true, default_value_t = 0)]
    pub first_cluster: usize,
}

/// File descriptors a process of this bench needs: a simulator holds a
/// listener per instance and one end of each probe connection (`per`
/// 2), the engines the other end (`per` 1).
fn raise_fd_limit(instances: usize, per: usize) -> Result<(), String> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let want = (per * instances + FD_SPARE) as u64;
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| e.to_string())?;
    if soft >= want {
        return Ok(());
    }
    setrlimit(Resource::RLIMIT_NOFILE, want, hard.max(want)).map_err(|e| {
        format!("{instances} instances need {want} open files (the limit is {soft}/{hard}): {e}")
    })
}

/// The child: the simulator, its clusters on stdout (one line each, the
/// primary first), then `ready`; it serves until its stdin closes.
async fn serve_sim(args: &ProbeArgs) -> u8 {
    if let Err(e) = raise_fd_limit(args.instances, 2) {
        eprintln!("orca-sandbox bench probe: {e}");
        return EXIT_FAILED;
    }
    let per = args.instances / args.clusters;
    let mut b = SimBuilder::new(Addressing::LoopbackAliases {
        first: args.first_address,
        port: 3306,
    })
    .backlog(16);
    let mut clusters = Vec::new();
    for n in 0..args.clusters {
        let flavor = if (args.first_cluster + n).is_multiple_of(2) {
            Flavor::MariaDb
        } else {
            Flavor::MySql
        };
        let first_id = 1 + (per * (args.first_cluster + n)) as u32;
        clusters.push(b.add_cluster(
            flavor,
            per - 1,
            first_id,
            100,
            (args.first_cluster + n) % 4 < 2,
        ));
    }
    let sim = match b.start().await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("orca-sandbox bench probe: the simulator: {e}");
            return EXIT_FAILED;
        }
    };
    {
        let mut out = std::io::stdout().lock();
        for c in &clusters {
            let keys: Vec<String> = c
                .all()
                .into_iter()
                .filter_map(|id| sim.key(id))
                .map(|k| k.to_string())
                .collect();
            let _ = writeln!(out, "{}", keys.join(" "));
        }
        let _ = writeln!(out, "ready");
        let _ = out.flush();
    }
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 64];
    while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
    EXIT_OK
}

/// File descriptors a process keeps beside the bench's sockets.
const FD_SPARE: usize = 1024;

/// The simulator's processes: killed when dropped.
struct SimChildren {
    children: Vec<std::process::Child>,
}

impl Drop for SimChildren {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl SimChildren {
    fn cpu_seconds(&self) -> Option<f64> {
        self.children
            .iter()
            .map(|c| cpu_seconds_of(&format!("/proc/{}/stat", c.id())))
            .sum()
    }
}

/// How many clusters one simulator process serves: as many as the open
/// files it may have allow (two per instance).
fn clusters_per_process(per_cluster: usize) -> Result<usize, String> {
    use nix::sys::resource::{Resource, getrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| e.to_string())?;
    let instances = (hard as usize).saturating_sub(FD_SPARE) / 2;
    match instances / per_cluster {
        0 => Err(format!(
            "a cluster of {per_cluster} instances needs {} open files (the limit is {hard})",
            2 * per_cluster + FD_SPARE
        )),
        n => Ok(n),
    }
}

/// Starts the simulator's processes (as many as the open-file limit
/// calls for, each on the next loopback addresses) and reads their
/// clusters.
fn start_sim(args: &ProbeArgs) -> Result<(SimChildren, Vec<Vec<InstanceKey>>), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let per = args.instances / args.clusters;
    let share = clusters_per_process(per)?;
    let addressing = Addressing::LoopbackAliases {
        first: args.first_address,
        port: 3306,
    };
    let mut sims = SimChildren {
        children: Vec::new(),
    };
    let mut outs = Vec::new();
    let mut first = 0;
    while first < args.clusters {
        let n = share.min(args.clusters - first);
        let address = match addressing.addr(first * per).map_err(|e| e.to_string())? {
            std::net::SocketAddr::V4(a) => *a.ip(),
            std::net::SocketAddr::V6(a) => return Err(format!("not IPv4: {a}")),
        };
        let mut child = Command::new(&exe)
            .args([
                "bench",
                "probe",
                "--serve-sim",
                "--instances",
                &(n * per).to_string(),
                "--clusters",
                &n.to_string(),
                "--first-cluster",
                &first.to_string(),
                "--first-address",
                &address.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting the simulator: {e}"))?;
        outs.push(child.stdout.take().ok_or("the simulator's stdout")?);
        sims.children.push(child);
        first += n;
    }
    let mut clusters = Vec::new();
    for stdout in outs {
        let mut ready = false;
        for line in BufReader::new(stdout).lines() {
            let line = line.map_err(|e| format!("reading the simulator: {e}"))?;
            if line == "ready" {
                ready = true;
                break;
            }
            let keys: Result<Vec<InstanceKey>, _> = line.split(' ').map(str::parse).collect();
            clusters.push(keys.map_err(|e| format!("the simulator's line {line:?}: {e}"))?);
        }
        if !ready {
            return Err("a simulator process stopped before it was ready".into());
        }
    }
    Ok((sims, clusters))
}

/// utime + stime of a process, from its `stat` file, in seconds.
fn cpu_seconds_of(path: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    Some((utime + stime) / ticks)
}

/// This process's resident memory, in bytes.
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Probe latencies in buckets 2% wide, from 1 µs to well past a minute.
struct Histogram {
    buckets: Vec<AtomicU64>,
}

const GROWTH: f64 = 1.02;

impl Histogram {
    fn new() -> Self {
        Histogram {
            buckets: (0..1024).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn record(&self, us: u64) {
        let i = ((us.max(1) as f64).ln() / GROWTH.ln()) as usize;
        let i = i.min(self.buckets.len() - 1);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
    }

    fn reset(&self) {
        for b in &self.buckets {
            b.store(0, Ordering::Relaxed);
        }
    }

    fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// The latency below which `q` of the probes fell, in µs.
    fn quantile(&self, q: f64) -> f64 {
        let total = self.count();
        if total == 0 {
            return 0.0;
        }
        let want = (q * total as f64).ceil() as u64;
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= want {
                return GROWTH.powi(i as i32 + 1);
            }
        }
        GROWTH.powi(self.buckets.len() as i32)
    }
}

#[derive(Default)]
struct Counters {
    rounds: AtomicU64,
    failed_probes: AtomicU64,
    findings: AtomicU64,
}

struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    counters: Arc<Counters>,
    latency: Arc<Histogram>,
    open_conns: Arc<AtomicU64>,
}

/// One engine per cluster, started spread over the first interval.
fn start_load(clusters: Vec<Vec<InstanceKey>>) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let latency = Arc::new(Histogram::new());
    let open_conns = Arc::new(AtomicU64::new(0));
    let n = clusters.len().max(1);
    let tasks = clusters
        .into_iter()
        .enumerate()
        .map(|(i, seeds)| {
            let stop = stop.clone();
            let counters = counters.clone();
            let latency = latency.clone();
            let open_conns = open_conns.clone();
            let mut config = EngineConfig::new(format!("sim-{i}"));
            config.auto_recover = false;
            let probe_timeouts = config.probe_timeouts;
            let executor = Executor::new(
                ExecutorConfig {
                    admin: Credentials::new("orca", "bench"),
                    repl: Credentials::new("repl", "bench"),
                    app: None,
                    timeouts: probe_timeouts,
                },
                Default::default(),
            );
            let mut engine = ClusterEngine::new(config, executor, seeds);
            let offset = Duration::from_millis((1000 * i / n) as u64);
            tokio::spawn(async move {
                tokio::time::sleep(offset).await;
                let mut conns = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let report = engine.round().await;
                    counters.rounds.fetch_add(1, Ordering::Relaxed);
                    counters
                        .findings
                        .fetch_add(report.new_findings.len() as u64, Ordering::Relaxed);
                    for k in engine.inventory.known.values() {
                        if let Some(t) = k.probe_took {
                            latency.record(t.as_micros() as u64);
                        }
                        if k.failures > 0 {
                            counters.failed_probes.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    let now = engine.inventory.open_conns() as u64;
                    if now >= conns {
                        open_conns.fetch_add(now - conns, Ordering::Relaxed);
                    } else {
                        open_conns.fetch_sub(conns - now, Ordering::Relaxed);
                    }
                    conns = now;
                    tokio::time::sleep(engine.next_delay()).await;
                }
            })
        })
        .collect();
    Load {
        stop,
        tasks,
        counters,
        latency,
        open_conns,
    }
}

impl Load {
    fn reset(&self) {
        self.counters.rounds.store(0, Ordering::Relaxed);
        self.counters.failed_probes.store(0, Ordering::Relaxed);
        self.counters.findings.store(0, Ordering::Relaxed);
        self.latency.reset();
    }

    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }
}

struct Figures {
    instances: usize,
    clusters: usize,
    rounds_per_s: f64,
    cores: f64,
    sim_cores: f64,
    rss_per_instance: f64,
    rss_total: u64,
    p50_us: f64,
    p99_us: f64,
    probes: u64,
    failed: u64,
    findings: u64,
    open_conns: u64,
    unloaded: Vec<Duration>,
    loaded: Vec<Duration>,
}

fn ms(d: &[Duration]) -> String {
    let v: Vec<String> = d.iter().map(|d| d.as_millis().to_string()).collect();
    v.join(", ")
}

impl Figures {
    fn markdown(&self) -> String {
        let dead = if self.unloaded.is_empty() || self.loaded.is_empty() {
            "not measured".to_string()
        } else {
            let (u, _) = super::bench::stats(self.unloaded.clone());
            let (l, _) = super::bench::stats(self.loaded.clone());
            format!(
                "{} ms → {} ms ({:+.0}%; runs {} / {})",
                u.as_millis(),
                l.as_millis(),
                100.0 * (l.as_secs_f64() / u.as_secs_f64().max(1e-9) - 1.0),
                ms(&self.unloaded),
                ms(&self.loaded)
            )
        };
        format!(
            "| {} | {} | {:.3} | {:.2} ({:.3} per 1,000) | {:.1} KiB ({} MiB) | {:.2} ms / {:.2} ms | {} ({} failed) | {} | {:.2} | {dead} |\n",
            self.instances,
            self.clusters,
            self.rounds_per_s,
            self.cores,
            self.cores * 1000.0 / self.instances as f64,
            self.rss_per_instance / 1024.0,
            self.rss_total / (1024 * 1024),
            self.p50_us / 1000.0,
            self.p99_us / 1000.0,
            self.probes,
            self.failed,
            self.open_conns,
            self.sim_cores,
        )
    }
}

const HEADER: &str = "| instances | clusters | rounds/s per cluster | CPU, cores | memory per instance (RSS) | probe p50 / p99 | probes (failed) | open connections | simulator, cores | kill -9 → writable new primary, alone → while watching |\n|---|---|---|---|---|---|---|---|---|---|\n";

async fn measure(args: &ProbeArgs) -> Result<Figures, String> {
    raise_fd_limit(args.instances, 1)?;
    let mut unloaded = Vec::new();
    for n in 0..args.failovers {
        let d = super::bench::failover_run(false, false).await?;
        eprintln!("  dead primary, nothing else watched, run {}: {d:?}", n + 1);
        unloaded.push(d);
    }
    let (sim, clusters) = start_sim(args)?;
    let instances: usize = clusters.iter().map(Vec::len).sum();
    eprintln!(
        "  simulator up: {instances} instances in {} clusters",
        clusters.len()
    );
    let rss0 = rss_bytes().ok_or("reading this process's memory")?;
    let load = start_load(clusters);
    // Warm-up: every engine's first rounds (connections made, heartbeat
    // tables created) are not what is measured.
    tokio::time::sleep(Duration::from_secs(5)).await;
    load.reset();
    let cpu0 = cpu_seconds_of("/proc/self/stat").ok_or("reading this process's CPU time")?;
    let sim0 = sim.cpu_seconds().unwrap_or(0.0);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let wall = t0.elapsed().as_secs_f64();
    let cpu1 = cpu_seconds_of("/proc/self/stat").ok_or("reading this process's CPU time")?;
    let sim1 = sim.cpu_seconds().unwrap_or(0.0);
    let rss1 = rss_bytes().ok_or("reading this process's memory")?;
    let rounds = load.counters.rounds.load(Ordering::Relaxed);
    let mut figures = Figures {
        instances,
        clusters: args.clusters,
        rounds_per_s: rounds as f64 / wall / args.clusters as f64,
        cores: (cpu1 - cpu0) / wall,
        sim_cores: (sim1 - sim0) / wall,
        rss_per_instance: rss1.saturating_sub(rss0) as f64 / instances as f64,
        rss_total: rss1,
        p50_us: load.latency.quantile(0.50),
        p99_us: load.latency.quantile(0.99),
        probes: load.latency.count(),
        failed: load.counters.failed_probes.load(Ordering::Relaxed),
        findings: load.counters.findings.load(Ordering::Relaxed),
        open_conns: load.open_conns.load(Ordering::Relaxed),
        unloaded,
        loaded: Vec::new(),
    };
    for n in 0..args.failovers {
        let d = super::bench::failover_run(false, false).await?;
        eprintln!(
            "  dead primary, {instances} simulated instances watched, run {}: {d:?}",
            n + 1
        );
        figures.loaded.push(d);
    }
    load.stop().await;
    drop(sim);
    Ok(figures)
}

pub async fn run(args: ProbeArgs) -> u8 {
    if args.serve_sim {
        return serve_sim(&args).await;
    }
    if args.clusters == 0 || args.instances < 2 * args.clusters {
        eprintln!(
            "orca-sandbox bench probe: {} instances in {} clusters: each cluster needs a primary and a replica",
            args.instances, args.clusters
        );
        return EXIT_USAGE;
    }
    let figures = match measure(&args).await {
        Ok(f) => f,
        Err(e) => {
            eprintln!("orca-sandbox bench probe: {e}");
            return EXIT_FAILED;
        }
    };
    let row = figures.markdown();
    print!("{HEADER}{row}");
    if figures.findings > 0 {
        eprintln!(
            "  note: {} findings appeared on the simulated clusters during the window",
            figures.findings
        );
    }
    if let Some(path) = &args.write {
        let mut f = match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            Ok(f) => f,
            Err(e) => {
                eprintln!("orca-sandbox bench probe: {}: {e}", path.display());
                return EXIT_FAILED;
            }
        };
        if let Err(e) = f.write_all(row.as_bytes()) {
            eprintln!("orca-sandbox bench probe: {}: {e}", path.display());
            return EXIT_FAILED;
        }
    }
    EXIT_OK
}
