//! The operator highly available, end to end in the sandbox (real
//! `mariadbd`, `orca-sandbox --no-operator`, and two or three `orca
//! operator` processes competing for the Lease):
//!
//! - the leading operator killed (SIGKILL) after each phase of a graceful
//!   takeover (after the fence; after the candidate stopped replicating,
//!   the last step before the point of no return; right after the point of
//!   no return; after the promotion) and of a failover (after the point of
//!   no return; after the promotion), a kill at each place where what the
//!   next leader must do differs (roll back, roll forward to a successor
//!   that may not answer yet, finish the repointing):
//!   within 30 s another operator leads and exactly one instance is
//!   writable, named by `status.primary`, the role labels and the primary
//!   Service; the operation ends Succeeded or RolledBack, resumed once and
//!   never run again. One sandbox serves every case.
//! - the leader cut off while a slow preFailover webhook runs — from the
//!   API server only (a proxy between them, cut; MySQL still reachable),
//!   or frozen (SIGSTOP) beyond its lease and thawed once the hook has
//!   answered: at most one promotion, the cut leader takes no step after
//!   its hook, `orca_meta.epoch` on the primary equals `status.epoch` and
//!   never goes down.
//! - the primary's pod deleted twice in one operator lifetime: two graceful
//!   takeovers, the preStop hook holding the pod until it replicates from
//!   the new primary.
//!
//! Every test writes as the application account, through each pod's
//! address (persistent writers: what a pod accepts, at any time, is
//! recorded), and checks that every acknowledged write is on the final
//! primary and that no former primary acknowledged a write after its
//! successor's first.
//!
//! They take minutes: `#[ignore]`d in `cargo test`, run by `make
//! test-chaos` (which `make test` runs) one at a time.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::ResourceExt;
use mysql_async::prelude::Queryable;
use orca::k8s::crd::cluster::{OperationKind, OperationPhase, OperationStatus};
use orca::mysql::Credentials;
use orca::mysql::conn::Timeouts;
use orca::topology::InstanceKey;
use support::cluster::cluster_yaml;
use support::eventually;
use support::sandbox::Sandbox;
use support::writer::{Writer, assert_acked};

const BOOT: Duration = Duration::from_secs(90);
const PODS: [&str; 3] = ["db-0", "db-1", "db-2"];

/// Short timeouts for the test's own looks at servers (one may hang).
fn quick() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(1),
        query: Duration::from_secs(1),
    }
}

/// Persistent writers as the application account, one per pod address:
/// a replica refuses their writes (read_only), a primary takes them.
struct Writers {
    app: Credentials,
    /// By address: the pod then, and its writer.
    by_key: BTreeMap<InstanceKey, (String, Writer)>,
    /// What the writer that created the table wrote.
    first: Vec<u64>,
}

impl Writers {
    /// The table created through the primary `pkey`, then a writer on
    /// every pod.
    async fn start(sb: &Sandbox, pkey: &InstanceKey, app: &Credentials) -> Writers {
        let w = Writer::start_as(pkey.clone(), app.clone()).await;
        w.wait_acked(10).await;
        let first = w.finish().await;
        let mut ws = Writers {
            app: app.clone(),
            by_key: BTreeMap::new(),
            first,
        };
        ws.refresh(sb).await;
        ws
    }

    /// A writer for every pod address not written to yet (a pod
    /// recreated elsewhere).
    async fn refresh(&mut self, sb: &Sandbox) {
        for pod in PODS {
            let key = sb.pod_ip(pod).await;
            if !self.by_key.contains_key(&key) {
                let w = Writer::persistent_on(key.clone(), self.app.clone()).await;
                self.by_key.insert(key, (pod.to_string(), w));
            }
        }
    }

    /// The writer on `pod`'s current address.
    async fn of(&self, sb: &Sandbox, pod: &str) -> &Writer {
        self.on(&sb.pod_ip(pod).await)
    }

    /// The writer on `key`.
    fn on(&self, key: &InstanceKey) -> &Writer {
        &self
            .by_key
            .get(key)
            .unwrap_or_else(|| panic!("no writer on {key}"))
            .1
    }

    /// Stops the writer on `key`, keeping what it wrote.
    async fn stop_on(&mut self, key: &InstanceKey) {
        if let Some((_, w)) = self.by_key.remove(key) {
            self.first.extend(w.finish().await);
        }
    }

    /// A new writer on `pod` (after [`Writers::stop_on`]) once it answers
    /// read only (fenced, for a former primary: a write it took before,
    /// never acknowledged with semi-sync, would still keep it from
    /// rejoining).
    async fn restart_on(&mut self, sb: &Sandbox, pod: &str) {
        let key = sb.pod_ip(pod).await;
        let root = sb.root("db").await;
        eventually(
            Duration::from_secs(20),
            &format!("{pod} answers, read only"),
            || async {
                let s = orca::mysql::probe::probe(&key, &root, quick()).await.ok()?;
                s.is_read_only().then_some(())
            },
        )
        .await;
        let w = Writer::persistent_on(key.clone(), self.app.clone()).await;
        self.by_key.insert(key, (pod.to_string(), w));
    }

    /// Stops writing; returns every acknowledged id.
    async fn finish(self) -> Vec<u64> {
        let mut all: Vec<u64> = self.first;
        for (_, (_, w)) in self.by_key {
            all.extend(w.finish().await);
        }
        all
    }
}

/// Asserts that `old` (the writer on the former primary) acknowledged
/// nothing after `new`'s first write since `since` (the new primary's).
fn no_write_after_successor(old: &Writer, new: &Writer, since: Instant, what: &str) {
    let Some(first) = new.first_ack_after(since) else {
        panic!("{what}: the new primary took no write");
    };
    let late = old.acked_after(first);
    assert!(
        late.is_empty(),
        "{what}: the former primary acknowledged {} writes after its successor's first: {:?}",
        late.len(),
        &late[..late.len().min(10)]
    );
}

/// The pods whose server answers and is writable, as root sees it
/// (`skip`: pods not to look at, hung ones).
async fn writable(sb: &Sandbox, skip: &[&str]) -> Vec<String> {
    let root = sb.root("db").await;
    let mut writable = Vec::new();
    for pod in PODS.iter().filter(|p| !skip.contains(p)) {
        let key = sb.pod_ip(pod).await;
        if let Ok(s) = orca::mysql::probe::probe(&key, &root, quick()).await
            && !s.is_read_only()
        {
            writable.push(pod.to_string());
        }
    }
    writable
}

/// The Events of `db`, by reason.
fn reason_counts(sb: &Sandbox) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for l in sb.event_reasons("db").lines().skip(1) {
        if let Some(r) = l.split_whitespace().next() {
            *counts.entry(r.to_string()).or_default() += 1;
        }
    }
    counts
}

fn delta(before: &BTreeMap<String, usize>, after: &BTreeMap<String, usize>, r: &str) -> usize {
    after.get(r).copied().unwrap_or(0) - before.get(r).copied().unwrap_or(0)
}

/// What a converged cluster shows: one writable instance, `primary`,
/// named by status, the role labels and the primary Service; no
/// operation in progress; the last one finished. Polls until `deadline`.
async fn converged(
    sb: &Sandbox,
    primary: &str,
    skip: &[&str],
    deadline: Instant,
    what: &str,
) -> OperationStatus {
    let pkey = sb.pod_ip(primary).await;
    loop {
        let c = sb.mysql_cluster("db").await;
        let s = c.status.clone().unwrap_or_default();
        let op = s.last_operation.clone().filter(|o| o.phase.is_finished());
        let mut roles = Vec::new();
        for pod in PODS {
            roles.push((pod, sb.pod_role(pod).await));
        }
        let labels = roles.iter().all(|(pod, role)| {
            (*pod == primary) == (role.as_deref() == Some("primary"))
                || (skip.contains(pod) && role.as_deref() != Some("primary"))
        });
        let eps = sb.endpoints("db-primary").await;
        let w = writable(sb, skip).await;
        if s.operation.is_none()
            && s.primary.as_deref() == Some(primary)
            && labels
            && eps == vec![pkey.clone()]
            && w == vec![primary.to_string()]
            && let Some(op) = op
        {
            return op;
        }
        let last = format!(
            "status primary {:?}, operation {:?}, last {:?}; roles {roles:?}; endpoints {eps:?}; writable {w:?}",
            s.primary, s.operation, s.last_operation
        );
        assert!(Instant::now() < deadline, "{what}: not converged: {last}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A kill case: what starts the operation, where the leader stops.
#[derive(Clone, Copy, Debug)]
enum Trigger {
    /// `orca.dev/graceful-takeover` to a replica.
    Takeover,
    /// The primary hung (SIGSTOP): a failover.
    Failover,
}

struct KillCase {
    name: &'static str,
    trigger: Trigger,
    /// The leader's pause (environment), and its log line.
    env: (&'static str, &'static str),
    pause_line: &'static str,
    /// How the operation ends, and whether the primary moves.
    phase: OperationPhase,
    moves: bool,
    /// Whether the primary Service sends the writes to the successor at
    /// the pause already (the plan has made it writable).
    traffic_at_pause: bool,
}

/// One kill case on a healthy cluster whose operators are `leader` (with
/// the case's pause) and followers; returns the primary after it.
async fn kill_case(
    sb: &mut Sandbox,
    writers: &mut Writers,
    case: &KillCase,
    leader: &str,
    primary: &str,
    returned: &[&str],
) -> String {
    let what = case.name;
    let before = reason_counts(sb);
    let target = PODS
        .into_iter()
        .find(|p| *p != primary && !returned.contains(p))
        .expect("a replica")
        .to_string();
    let started = Instant::now();
    let mut held_lock: Option<mysql_async::Conn> = None;
    let _ = match case.trigger {
        Trigger::Takeover => sb.kubectl().ok(&[
            "annotate",
            "mysql/db",
            &format!("orca.dev/graceful-takeover={target}"),
        ]),
        Trigger::Failover => {
            // No commit in flight on the primary when it hangs (the
            // application's, or orca's own heartbeat): one would stay in
            // its binlog, unacknowledged, and keep it from rejoining, as
            // orca rightly reports, and the next cases need three pods.
            // Its writer stops, and a global read lock held from here
            // until orca fences it holds back every later commit. Its
            // writer starts again once it is fenced, to catch any write
            // it takes.
            let key = sb.pod_ip(primary).await;
            writers.stop_on(&key).await;
            let mut conn = orca::mysql::connect(&key, &sb.root("db").await, Timeouts::default())
                .await
                .expect("connect to the primary");
            tokio::time::timeout(
                Duration::from_secs(10),
                conn.query_drop("FLUSH TABLES WITH READ LOCK"),
            )
            .await
            .expect("the read lock in time")
            .expect("the read lock");
            tokio::time::sleep(Duration::from_millis(300)).await;
            held_lock = Some(conn);
            sb.kubectl()
                .ok(&["annotate", "pod", primary, "sandbox.orca.dev/fault=hang"])
        }
    };
    sb.wait_operator_line(
        leader,
        case.pause_line,
        &format!("{what}: the leader at its pause"),
    )
    .await;
    let journal = sb.journal("db", what).await;
    let kind = match case.trigger {
        Trigger::Takeover => OperationKind::GracefulTakeover,
        Trigger::Failover => OperationKind::Failover,
    };
    assert_eq!(journal.kind, kind, "{what}: {journal:?}");
    let successor = journal.target.clone().expect("a successor in the journal");
    if let Trigger::Takeover = case.trigger {
        assert_eq!(successor, target, "{what}: {journal:?}");
    }
    // Made writable, the successor takes the writes while the plan goes
    // on; not before.
    let successor_ip = sb.pod_ip(&successor).await;
    if case.traffic_at_pause {
        let old_ip = sb.pod_ip(primary).await;
        let ep = sb.primary_endpoint("db", Some(&old_ip)).await;
        assert_eq!(ep, successor_ip, "{what}: the primary Service at the pause");
    } else {
        let eps = sb.endpoints("db-primary").await;
        assert!(
            !eps.contains(&successor_ip),
            "{what}: the primary Service sends to the successor before it is writable: {eps:?}"
        );
    }
    sb.kill_operator_named(leader);
    let killed = Instant::now();
    let hung: Vec<&str> = match case.trigger {
        Trigger::Failover => vec![primary],
        Trigger::Takeover => vec![],
    };
    let expected = if case.moves {
        successor.as_str()
    } else {
        primary
    };
    let op = converged(sb, expected, &hung, killed + Duration::from_secs(30), what).await;
    eprintln!(
        "{what}: converged {} ms after the kill: {:?}",
        killed.elapsed().as_millis(),
        op
    );
    assert_eq!(op.kind, kind, "{what}: {op:?}");
    assert_eq!(op.phase, case.phase, "{what}: {op:?}");
    // Someone else leads.
    let (holder, _) = sb.lease_holder().await.expect("a leader");
    assert_ne!(holder, leader, "{what}");
    // Resumed once, never run again.
    let after = reason_counts(sb);
    assert_eq!(
        delta(&before, &after, "OperationResumed"),
        1,
        "{what}: {after:?}"
    );
    for again in [
        "GracefulTakeover",
        "Failover",
        "GracefulTakeoverFailed",
        "FailoverFailed",
    ] {
        assert_eq!(
            delta(&before, &after, again),
            0,
            "{what}: ran again: {after:?}"
        );
    }
    let c = sb.mysql_cluster("db").await;
    assert!(
        !c.annotations().contains_key("orca.dev/graceful-takeover"),
        "{what}: the request is still there"
    );
    if let Trigger::Failover = case.trigger {
        // The former primary back: fenced, and a replica again.
        sb.kubectl()
            .ok(&["annotate", "pod", primary, "sandbox.orca.dev/fault=resume"]);
        writers.restart_on(sb, primary).await;
        // Fenced by now (its connections killed): the lock is orca's.
        if let Some(conn) = held_lock.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), conn.disconnect()).await;
        }
        settled_but(sb, expected, returned).await;
        converged(
            sb,
            expected,
            &[],
            Instant::now() + Duration::from_secs(30),
            what,
        )
        .await;
    }
    if case.moves {
        let old = writers.of(sb, primary).await;
        let new = writers.of(sb, expected).await;
        no_write_after_successor(old, new, started, what);
    }
    // Writes go on through the primary.
    let now = Instant::now();
    let w = writers.of(sb, expected).await;
    eventually(Duration::from_secs(20), "writes on the primary", || async {
        w.first_ack_after(now).map(|_| ())
    })
    .await;
    settled_but(sb, expected, returned).await;
    expected.to_string()
}

/// Starts `leader` with `env`, waits until it leads, then `followers`.
async fn operators(sb: &mut Sandbox, leader: &str, env: &[(&str, &str)], followers: &[&str]) {
    sb.start_operator_with(leader, env);
    sb.wait_leader(leader, Duration::from_secs(40)).await;
    for f in followers {
        sb.start_operator(f);
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "minutes long: make test-chaos"]
async fn the_leader_killed_after_each_step_of_a_takeover_and_a_failover() {
    let t0 = Instant::now();
    let mut sb = Sandbox::cluster(&["--no-operator"]).await;
    sb.wait_crds_or_install().await;
    let cases = [
        KillCase {
            name: "a takeover, the leader killed after the fence",
            trigger: Trigger::Takeover,
            env: ("ORCA_TEST_PAUSE_BEFORE_STEP", "stop replication"),
            pause_line: "test pause before the step",
            phase: OperationPhase::RolledBack,
            moves: false,
            traffic_at_pause: false,
        },
        KillCase {
            name: "a takeover, the leader killed after the candidate stopped replicating",
            trigger: Trigger::Takeover,
            env: (
                "ORCA_TEST_PAUSE_BEFORE_STEP",
                "reset all replication settings",
            ),
            pause_line: "test pause before the step",
            phase: OperationPhase::RolledBack,
            moves: false,
            traffic_at_pause: false,
        },
        KillCase {
            name: "a takeover, the leader killed after the point of no return",
            trigger: Trigger::Takeover,
            env: ("ORCA_TEST_PAUSE_AFTER_POINT_OF_NO_RETURN_MS", "300000"),
            pause_line: "test pause after the point of no return",
            phase: OperationPhase::Succeeded,
            moves: true,
            traffic_at_pause: false,
        },
        KillCase {
            name: "a takeover, the leader killed after the promotion",
            trigger: Trigger::Takeover,
            env: ("ORCA_TEST_PAUSE_BEFORE_STEP", "replicate from"),
            pause_line: "test pause before the step",
            phase: OperationPhase::Succeeded,
            moves: true,
            traffic_at_pause: true,
        },
        KillCase {
            name: "a failover, the leader killed after the promotion",
            trigger: Trigger::Failover,
            env: ("ORCA_TEST_PAUSE_BEFORE_STEP", "replicate from"),
            pause_line: "test pause before the step",
            phase: OperationPhase::Succeeded,
            moves: true,
            traffic_at_pause: true,
        },
        KillCase {
            name: "a failover, the leader killed after the point of no return",
            trigger: Trigger::Failover,
            env: ("ORCA_TEST_PAUSE_AFTER_POINT_OF_NO_RETURN_MS", "300000"),
            pause_line: "test pause after the point of no return",
            phase: OperationPhase::Succeeded,
            moves: true,
            traffic_at_pause: false,
        },
    ];
    // ORCA_HA_CASES=2,3 runs only those cases (by index), to debug one.
    let only: Option<Vec<usize>> = std::env::var("ORCA_HA_CASES")
        .ok()
        .map(|v| v.split(',').filter_map(|i| i.trim().parse().ok()).collect());
    let cases: Vec<&KillCase> = cases
        .iter()
        .enumerate()
        .filter(|(i, _)| only.as_ref().is_none_or(|o| o.contains(i)))
        .map(|(_, c)| c)
        .collect();
    // Three operators for the first case, two for the others.
    operators(&mut sb, "a0", &[cases[0].env], &["b0", "c0"]).await;
    sb.kubectl().apply(&cluster_yaml("db", 3, true));
    let mut primary = sb.wait_healthy("db", BOOT).await;
    let pkey = sb.primary_endpoint("db", None).await;
    let app = sb.app("db").await;
    let mut writers = Writers::start(&sb, &pkey, &app).await;
    let returned: Vec<&str> = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let leader = format!("a{i}");
        if i > 0 {
            sb.stop_operator();
            operators(&mut sb, &leader, &[case.env], &[&format!("b{i}")]).await;
        }
        let t = Instant::now();
        primary = kill_case(&mut sb, &mut writers, case, &leader, &primary, &returned).await;
        eprintln!("{}: {} s", case.name, t.elapsed().as_secs());
    }
    sb.stop_operator();
    let acked = writers.finish().await;
    assert_acked(&sb.pod_ip(&primary).await, &app, &acked).await;
    eprintln!("kill cases: {} s in all", t0.elapsed().as_secs());
}

/// The epoch recorded on `key`, if it answers.
async fn epoch_on(key: &InstanceKey, root: &Credentials) -> Option<i64> {
    let mut conn = orca::mysql::connect(key, root, quick()).await.ok()?;
    let e = orca::ha::epoch::read_epoch(&mut conn, key, Duration::from_secs(1)).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), conn.disconnect()).await;
    e.ok().flatten()
}

/// How the leader is cut off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cut {
    /// From the API server only: a proxy between them, cut.
    Proxy,
    /// Frozen (SIGSTOP) beyond its lease, then thawed: its hook's answer
    /// waits for it, and it must not act on it.
    Stop,
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "minutes long: make test-chaos"]
async fn the_leader_cut_off_from_the_api_server_during_a_slow_pre_failover_hook() {
    cut_leader(Cut::Proxy).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "minutes long: make test-chaos"]
async fn the_leader_stopped_beyond_its_lease_during_a_slow_pre_failover_hook() {
    cut_leader(Cut::Stop).await;
}

/// A failover whose leader is cut off (`how`) while its slow
/// preFailover webhook runs: the other operator leads and fails over,
/// once; the cut one never acts again in its old epoch.
async fn cut_leader(how: Cut) {
    let t0 = Instant::now();
    let mut sb = Sandbox::cluster(&["--no-operator"]).await;
    sb.wait_crds_or_install().await;
    // The leader's hook outlasts its lease.
    let (url, calls) = support::webhook::start(Duration::from_secs(25)).await;
    sb.kubectl().apply(&format!(
        "apiVersion: orca.dev/v1alpha1\nkind: FailoverPolicy\nmetadata:\n  name: default\nspec:\n  hooks:\n    preFailover:\n    - webhook:\n        url: {url}\n        timeout: 60s\n"
    ));
    // The first operator reaches the API server through a proxy the test
    // cuts; MySQL it reaches directly.
    let upstream: std::net::SocketAddr = sb
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("the API server's address");
    let proxy = support::proxy::Proxy::start(upstream).await;
    let via = sb.dir.path().join("kubeconfig-via-proxy");
    orca_sandbox::apiserver::write_kubeconfig(&via, &format!("http://{}", proxy.addr))
        .expect("kubeconfig");
    match how {
        Cut::Proxy => sb.start_operator_via("cut", &via, &[]),
        Cut::Stop => sb.start_operator("cut"),
    }
    let first_epoch = sb.wait_leader("cut", Duration::from_secs(40)).await;
    sb.start_operator("other");
    sb.kubectl().apply(&cluster_yaml("db", 3, true));
    let primary = sb.wait_healthy("db", BOOT).await;
    let pkey = sb.primary_endpoint("db", None).await;
    let app = sb.app("db").await;
    let root = sb.root("db").await;
    let writers = Writers::start(&sb, &pkey, &app).await;
    let status_epoch = sb.mysql_cluster("db").await.status.and_then(|s| s.epoch);
    assert_eq!(status_epoch, Some(i64::from(first_epoch)));

    // The epoch on every pod, sampled throughout, with who was writable.
    let keys: Vec<(String, InstanceKey)> = {
        let mut v = Vec::new();
        for p in PODS {
            v.push((p.to_string(), sb.pod_ip(p).await));
        }
        v
    };
    let samples: Arc<Mutex<Vec<(String, i64)>>> = Default::default();
    let writable_seen: Arc<Mutex<Vec<String>>> = Default::default();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let sampler = {
        let (samples, writable_seen, root, keys) = (
            samples.clone(),
            writable_seen.clone(),
            root.clone(),
            keys.clone(),
        );
        tokio::spawn(async move {
            while !*stopped.borrow() {
                for (pod, key) in &keys {
                    if let Some(e) = epoch_on(key, &root).await {
                        samples.lock().unwrap().push((pod.clone(), e));
                    }
                    if let Ok(s) = orca::mysql::probe::probe(key, &root, quick()).await
                        && !s.is_read_only()
                    {
                        let mut w = writable_seen.lock().unwrap();
                        if !w.contains(pod) {
                            w.push(pod.clone());
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };

    let hung_at = Instant::now();
    sb.kubectl()
        .ok(&["annotate", "pod", &primary, "sandbox.orca.dev/fault=hang"]);
    // What the sampler saw before the hang took effect does not count.
    tokio::time::sleep(Duration::from_secs(2)).await;
    writable_seen.lock().unwrap().clear();
    eventually(
        Duration::from_secs(60),
        "the preFailover hook called",
        || async { (!calls.lock().unwrap().is_empty()).then_some(()) },
    )
    .await;
    // The leader is in its hook: cut it off from the API server.
    let journal = sb
        .mysql_cluster("db")
        .await
        .status
        .and_then(|s| s.operation);
    eprintln!("the leader in its preFailover hook; journal {journal:?}");
    match how {
        Cut::Proxy => proxy.cut(),
        Cut::Stop => sb.signal_operator("cut", nix::sys::signal::Signal::SIGSTOP),
    }
    let cut_at = Instant::now();
    let cut_log_from = sb.operator_log("cut").len();
    // The other operator leads once the lease expires, and fails over.
    let successor = eventually(
        Duration::from_secs(90),
        "a failover by the other operator",
        || async {
            let s = sb.mysql_cluster("db").await.status?;
            let op = s.last_operation?;
            (op.kind == OperationKind::Failover
                && op.phase == OperationPhase::Succeeded
                && s.operation.is_none())
            .then_some(s.primary?)
            .filter(|p| *p != primary)
        },
    )
    .await;
    eprintln!(
        "failed over to {successor} {} s after the cut",
        cut_at.elapsed().as_secs()
    );
    let (holder, epoch) = sb.lease_holder().await.expect("a leader");
    assert_eq!(holder, "other");
    assert!(epoch > first_epoch, "{epoch} after {first_epoch}");
    // The cut operator's hook ends while it is still cut off (25 s after
    // it began): whatever it does then, it must not act.
    let hook_end = calls.lock().unwrap()[0].0 + Duration::from_secs(27);
    tokio::time::sleep(hook_end.saturating_duration_since(Instant::now())).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    match how {
        Cut::Proxy => proxy.heal(),
        Cut::Stop => sb.signal_operator("cut", nix::sys::signal::Signal::SIGCONT),
    }
    // Who was writable while the old primary was hung: the successor
    // alone. (Resumed, the old primary answers writable for the moment
    // before orca fences it; with semi-sync and no replica it acknowledges
    // nothing, which the writers check.)
    let seen = writable_seen.lock().unwrap().clone();
    assert_eq!(seen, vec![successor.clone()], "writable while hung");
    // The old primary back: fenced, a replica of the successor.
    sb.kubectl()
        .ok(&["annotate", "pod", &primary, "sandbox.orca.dev/fault=resume"]);
    settled_but(&sb, &successor, &[primary.as_str()]).await;
    let op = converged(
        &sb,
        &successor,
        &[],
        Instant::now() + Duration::from_secs(30),
        "after the cut",
    )
    .await;
    assert_eq!(op.phase, OperationPhase::Succeeded, "{op:?}");
    // Give the cut operator, reconnected, time to do anything wrong.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let _ = stop.send(true);
    let _ = sampler.await;

    // At most one promotion: one failover, one pod ever writable after
    // the hang.
    let counts = reason_counts(&sb);
    assert_eq!(
        counts.get("Failover").copied().unwrap_or(0),
        1,
        "{counts:?}"
    );
    let cut_log = sb.operator_log("cut");
    let after_cut = &cut_log[cut_log_from.min(cut_log.len())..];
    assert!(
        !after_cut.contains("set read_only=OFF"),
        "the cut operator promoted:\n{after_cut}"
    );
    eprintln!("the cut operator after the cut:\n{after_cut}");
    // The epoch: status and the primary agree, the successor's; it never
    // went down on any pod.
    let status = sb.mysql_cluster("db").await.status.expect("status");
    assert_eq!(status.epoch, Some(i64::from(epoch)), "{status:?}");
    let skey = sb.pod_ip(&successor).await;
    assert_eq!(epoch_on(&skey, &root).await, Some(i64::from(epoch)));
    let samples = samples.lock().unwrap().clone();
    for pod in PODS {
        let seq: Vec<i64> = samples
            .iter()
            .filter(|(p, _)| p == pod)
            .map(|(_, e)| *e)
            .collect();
        assert!(
            seq.windows(2).all(|w| w[0] <= w[1]),
            "the epoch went down on {pod}: {seq:?}"
        );
    }
    // No write from the old epoch after the successor's first, none lost.
    let old = writers.of(&sb, &primary).await;
    let new = writers.of(&sb, &successor).await;
    no_write_after_successor(old, new, hung_at, "the cut leader");
    sb.stop_operator();
    let acked = writers.finish().await;
    assert_acked(&skey, &app, &acked).await;
    eprintln!("cut leader ({how:?}): {} s", t0.elapsed().as_secs());
}

/// Waits until every pod runs, with an address, and every one but
/// `primary` replicates from it (both threads running) per status, and
/// the cluster is healthy.
async fn settled(sb: &Sandbox, primary: &str) {
    settled_but(sb, primary, &[]).await
}

/// [`settled`], except that a pod of `returned` (a former primary back
/// after a failover, which may hold transactions its successor lacks and
/// then cannot rejoin) may instead stay out, read only.
async fn settled_but(sb: &Sandbox, primary: &str, returned: &[&str]) {
    use orca::k8s::crd::cluster::ThreadState;
    let root = sb.root("db").await;
    eventually(
        Duration::from_secs(90),
        &format!("every pod under {primary}"),
        || async {
            let mut keys = BTreeMap::new();
            for pod in PODS {
                let p = sb.pods().await.get_opt(pod).await.ok()??;
                if p.metadata.deletion_timestamp.is_some() {
                    return None;
                }
                keys.insert(pod, InstanceKey::new(p.status?.pod_ip?, 3306));
            }
            let s = sb.mysql_cluster("db").await.status?;
            let cond = |t: &str| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == t && c.status == "True")
            };
            let mut out = false;
            for pod in PODS.iter().filter(|p| **p != primary) {
                let under = s.topology.iter().any(|i| {
                    i.pod == *pod
                        && i.source.as_deref() == Some(primary)
                        && i.io_thread == Some(ThreadState::Running)
                        && i.sql_thread == Some(ThreadState::Running)
                        // caught up: a takeover to a lagging replica is
                        // refused, as it should be
                        && i.lag_seconds.is_some_and(|l| l < 2.0)
                });
                if under {
                    continue;
                }
                if !returned.contains(pod) {
                    return None;
                }
                let snap = orca::mysql::probe::probe(&keys[pod], &root, quick())
                    .await
                    .ok()?;
                if !snap.is_read_only() {
                    return None;
                }
                out = true;
            }
            let ok = if out {
                cond("Available")
            } else {
                cond("Healthy")
            };
            (ok && s.primary.as_deref() == Some(primary)).then_some(())
        },
    )
    .await;
}

/// Deletes `pod` (the primary) and waits for the graceful takeover that
/// follows; returns the new primary and how long the pod took to go.
async fn delete_primary(sb: &Sandbox, pod: &str) -> (String, Duration) {
    let uid = sb.pods().await.get(pod).await.expect("pod").metadata.uid;
    let deleted = Instant::now();
    sb.kubectl().ok(&["delete", "pod", pod, "--wait=false"]);
    let new = eventually(Duration::from_secs(60), "a graceful takeover", || async {
        let s = sb.mysql_cluster("db").await.status?;
        let op = s.last_operation?;
        (op.kind == OperationKind::GracefulTakeover && op.phase.is_finished())
            .then_some((s.primary?, op))
            .filter(|(p, _)| p != pod)
    })
    .await;
    assert_eq!(new.1.phase, OperationPhase::Succeeded, "{:?}", new.1);
    // The pod goes once it replicates from the new primary: well before
    // the preStop hook's bound.
    let gone = eventually(Duration::from_secs(40), "the pod replaced", || async {
        let p = sb.pods().await.get_opt(pod).await.ok()?;
        match p {
            None => Some(deleted.elapsed()),
            Some(p) if p.metadata.uid != uid => Some(deleted.elapsed()),
            Some(_) => None,
        }
    })
    .await;
    (new.0, gone)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "minutes long: make test-chaos"]
async fn the_primary_pod_deleted_twice_in_one_operator_lifetime() {
    let t0 = Instant::now();
    let mut sb = Sandbox::cluster(&["--no-operator"]).await;
    sb.wait_crds_or_install().await;
    sb.start_operator("only");
    sb.kubectl().apply(&cluster_yaml("db", 3, true));
    let primary = sb.wait_healthy("db", BOOT).await;
    let pkey = sb.primary_endpoint("db", None).await;
    let app = sb.app("db").await;
    let mut writers = Writers::start(&sb, &pkey, &app).await;

    let old_key = sb.pod_ip(&primary).await;
    let t = Instant::now();
    let (second, gone) = delete_primary(&sb, &primary).await;
    eprintln!("first deletion: {second} primary, the pod gone after {gone:?}");
    assert!(
        gone < Duration::from_secs(20),
        "the preStop hook held {primary} {gone:?}"
    );
    no_write_after_successor(
        writers.on(&old_key),
        writers.of(&sb, &second).await,
        t,
        "the first deletion",
    );
    settled(&sb, &second).await;
    writers.refresh(&sb).await;
    // Back to the first pod, by annotation.
    let t = Instant::now();
    sb.kubectl().ok(&[
        "annotate",
        "mysql/db",
        &format!("orca.dev/graceful-takeover={primary}"),
    ]);
    eventually(Duration::from_secs(60), "the takeover back", || async {
        let s = sb.mysql_cluster("db").await.status?;
        (s.primary.as_deref() == Some(primary.as_str()) && s.operation.is_none()).then_some(())
    })
    .await;
    settled(&sb, &primary).await;
    no_write_after_successor(
        writers.of(&sb, &second).await,
        writers.of(&sb, &primary).await,
        t,
        "the takeover back",
    );
    // Deleted again, in the same operator's lifetime: handed over again.
    let old_key = sb.pod_ip(&primary).await;
    let t = Instant::now();
    let (third, gone) = delete_primary(&sb, &primary).await;
    eprintln!("second deletion: {third} primary, the pod gone after {gone:?}");
    assert!(
        gone < Duration::from_secs(20),
        "the preStop hook held {primary} {gone:?}"
    );
    no_write_after_successor(
        writers.on(&old_key),
        writers.of(&sb, &third).await,
        t,
        "the second deletion",
    );
    settled(&sb, &third).await;
    writers.refresh(&sb).await;
    let counts = reason_counts(&sb);
    assert_eq!(counts.get("PrimaryLeaving").copied(), Some(2), "{counts:?}");
    for r in ["DeadPrimary", "Failover", "FailoverFailed"] {
        assert!(
            !counts.contains_key(r),
            "a deletion became a failover: {counts:?}"
        );
    }
    converged(
        &sb,
        &third,
        &[],
        Instant::now() + Duration::from_secs(30),
        "after two deletions",
    )
    .await;
    sb.stop_operator();
    let acked = writers.finish().await;
    assert_acked(&sb.pod_ip(&third).await, &app, &acked).await;
    eprintln!("two deletions: {} s", t0.elapsed().as_secs());
}
