//! A minority partition of a semi-sync cluster with three replicas: the
//! primary P, one replica R1 and the writers are cut off from orca and the
//! two other replicas R2 and R3 for 60 s, then the network heals.
//!
//! - R1 acknowledges (it is a semi-sync replica): the cut-off side goes on
//!   committing acknowledged writes that only P and R1 have, so orca must
//!   not fail over. It reports the dead primary, says why it does nothing
//!   (2 of 3 replicas reachable where 3 are needed), and after the heal P
//!   is still the primary with every acknowledged write, on R2 and R3 too.
//! - R1 does not acknowledge (its semi-sync replica side is off): the
//!   cut-off side cannot collect an acknowledgement, so every acknowledged
//!   write is on R2 or R3 and orca fails over to one of them. The old
//!   primary's writers get no acknowledgement after the new primary's
//!   first write, and after the heal orca fences P: their writes are
//!   refused. MariaDB always waits for one acknowledgement (it has no
//!   `rpl_semi_sync_master_wait_for_slave_count`); a replica that does not
//!   acknowledge is how "waitCount 2 with one replica on the cut-off side"
//!   looks on it: the cut-off side cannot ack, and the reachable replicas
//!   hold every acknowledged write.
//!
//! How the cut is made. Every server listens on its own loopback address,
//! but every connection between them comes from 127.0.0.1, so addresses
//! alone cannot tell R1's replication connection to P from R2's. The side
//! of a connection is the process that owns it: R2's and R3's `mariadbd`
//! and `orca standalone` run in a cgroup (v2) of their own, the majority
//! side, and two nftables rules drop every packet between a socket of
//! that cgroup and the minority's addresses (P and R1), in both directions
//! (`socket cgroupv2` on output matches the sending socket, on input the
//! receiving one). Everything else passes: R1 → P, the writers → P (they
//! run in the test process, outside the cgroup), and the test's own probes
//! of either side. A rule on the user id (as `tests/partition.rs` does for
//! orca alone) would need another user for R2 and R3 and would still let
//! P's packets to them through: a packet's owner on the way back is P, so
//! only its destination socket says which side it goes to, and the
//! cgroup match is the one that sees it. The in-process engine cannot be
//! used: it would share the test process (and its side) with the writers.

mod support;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use orca::topology::InstanceKey;
use orca_sandbox::mysqld::{admin_credentials, app_credentials, join_cgroup_at_exec};
use orca_sandbox::{LocalCluster, MysqldOptions, Shape};
use support::standalone::Standalone;
use support::writer::{Writer, assert_acked, assert_acked_replicated};
use support::*;

/// How long the minority is cut off.
const CUT: Duration = Duration::from_secs(60);

/// The cgroup (v2) of the majority side's processes; removed when dropped
/// (after the processes in it are gone).
struct Side {
    dir: PathBuf,
    /// The directory as nftables names it: relative to /sys/fs/cgroup.
    nft_path: String,
}

impl Side {
    fn new(name: &str) -> Side {
        let mounts = std::fs::read_to_string("/proc/self/mounts").expect("read /proc/self/mounts");
        let mount = mounts
            .lines()
            .map(|l| l.split(' ').collect::<Vec<_>>())
            .find(|f| f.len() > 2 && f[2] == "cgroup2")
            .map(|f| PathBuf::from(f[1]))
            .expect("no cgroup2 file system is mounted: this test puts processes in a cgroup (v2) of their own");
        let relative = mount
            .strip_prefix("/sys/fs/cgroup")
            .unwrap_or_else(|_| {
                panic!(
                    "cgroup2 is mounted on {}, not under /sys/fs/cgroup, where nftables looks for cgroups",
                    mount.display()
                )
            })
            .to_path_buf();
        let leaf = format!("orca-chaos-{}-{name}", std::process::id());
        let dir = mount.join(&leaf);
        let _ = std::fs::remove_dir(&dir);
        std::fs::create_dir(&dir)
            .unwrap_or_else(|e| panic!("create the cgroup {} (run as root): {e}", dir.display()));
        let nft_path = relative.join(&leaf).display().to_string();
        Side { dir, nft_path }
    }
}

impl Drop for Side {
    fn drop(&mut self) {
        // The servers and orca were killed and waited for before; a
        // cgroup empties a moment after its last process exits.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The cut: an nftables table dropping every packet between the sockets
/// of `side` and the `minority` addresses. Deleted when dropped.
struct Cut {
    table: String,
}

impl Cut {
    fn new(name: &str, side: &Side, minority: &[&InstanceKey]) -> Cut {
        let table = format!("orca_chaos_{}_{name}", std::process::id());
        let ips = minority
            .iter()
            .map(|k| k.host.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let cg = &side.nft_path;
        let script = format!(
            "table inet {table} {{\n\
             \tchain out {{\n\
             \t\ttype filter hook output priority 0; policy accept;\n\
             \t\tsocket cgroupv2 level 1 \"{cg}\" ip daddr {{ {ips} }} drop\n\
             \t}}\n\
             \tchain in {{\n\
             \t\ttype filter hook input priority 0; policy accept;\n\
             \t\tsocket cgroupv2 level 1 \"{cg}\" ip saddr {{ {ips} }} drop\n\
             \t}}\n\
             }}\n"
        );
        let mut nft = Command::new("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nft is required for this test: apt-get install nftables (make deps does)");
        nft.stdin
            .take()
            .expect("nft's stdin")
            .write_all(script.as_bytes())
            .expect("write the nft script");
        let out = nft.wait_with_output().expect("nft");
        assert!(
            out.status.success(),
            "nft -f:\n{script}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Cut { table }
    }
}

impl Drop for Cut {
    fn drop(&mut self) {
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", &self.table])
            .status();
    }
}

/// Checks that the cut holds for `key`: a process on the majority side
/// cannot open a connection to it, the test process can.
async fn assert_cut(side: &Side, key: &InstanceKey) {
    let mut cmd = Command::new("timeout");
    cmd.args(["1", "bash", "-c"])
        .arg(format!("exec 3<>/dev/tcp/{}/{}", key.host, key.port))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    join_cgroup_at_exec(&mut cmd, &side.dir).expect("join the cgroup");
    let status = tokio::process::Command::from(cmd)
        .status()
        .await
        .expect("run timeout and bash");
    assert!(
        !status.success(),
        "a process in {} still connects to {key}: the cut did not take (the rules match the cgroup at level 1 of the cgroup2 hierarchy)",
        side.dir.display()
    );
    let direct = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect((key.host.as_str(), key.port)),
    )
    .await;
    assert!(
        matches!(direct, Ok(Ok(_))),
        "the test process cannot connect to {key} during the cut: {direct:?}"
    );
}

/// `orca standalone` on the majority side, in its cgroup.
fn start_orca(name: &str, side: &Side, seeds: &[InstanceKey]) -> Standalone {
    let mut cmd = Standalone::command(
        std::path::Path::new(env!("CARGO_BIN_EXE_orca")),
        name,
        seeds,
    );
    join_cgroup_at_exec(&mut cmd, &side.dir).expect("join the cgroup");
    Standalone::spawn(cmd)
}

/// Whether a recovery record changed the topology (promoted or moved a
/// replica).
fn promoted(record: &serde_json::Value) -> bool {
    record["steps"].as_array().into_iter().flatten().any(|s| {
        matches!(
            s["step"]["step"].as_str(),
            Some("reset_replica_all" | "change_source")
        ) && s["outcome"]["result"] == "done"
    })
}

/// A partition scenario: P (0), R1 (1), R2 (2), R3 (3), semi-sync; R2, R3
/// and orca on the majority side. Fields drop in order: the cut and orca
/// first, the cgroup last.
struct Scenario {
    cut: Option<Cut>,
    orca: Standalone,
    _cluster: LocalCluster,
    keys: Vec<InstanceKey>,
    _side: Side,
}

impl Scenario {
    /// `r1_acknowledges`: whether R1's semi-sync replica side is on.
    async fn start(name: &str, r1_acknowledges: bool) -> Scenario {
        let side = Side::new(name);
        let majority = side.dir.clone();
        let cluster =
            LocalCluster::start_with(Shape::primary_with_replicas(3), |i, o: MysqldOptions| {
                let mut o = o.with_semi_sync();
                if i == 1 && !r1_acknowledges {
                    for (k, v) in o.extra.iter_mut() {
                        if k == "rpl-semi-sync-slave-enabled" {
                            *v = "OFF".into();
                        }
                    }
                }
                if i >= 2 { o.in_cgroup(&majority) } else { o }
            })
            .await
            .expect("start a semi-sync primary with three replicas");
        let keys: Vec<InstanceKey> = cluster.instances.iter().map(|m| m.key()).collect();
        let orca = start_orca(name, &side, &keys);
        orca.wait_log(Duration::from_secs(15), &["orca standalone started"])
            .await;
        Scenario {
            cut: None,
            orca,
            _cluster: cluster,
            keys,
            _side: side,
        }
    }

    /// Waits until orca has seen the healthy cluster: its heartbeat row,
    /// written on the primary after a round probed every instance, has
    /// reached every replica.
    async fn wait_orca_saw_everything(&self) {
        for k in &self.keys {
            wait_heartbeat_after(k, "").await;
        }
    }

    /// Cuts P and R1 off; returns when.
    async fn cut(&mut self, name: &str) -> Instant {
        let (p, r1) = (&self.keys[0], &self.keys[1]);
        self.cut = Some(Cut::new(name, &self._side, &[p, r1]));
        let at = Instant::now();
        for k in [p, r1] {
            assert_cut(&self._side, k).await;
        }
        at
    }

    fn heal(&mut self) -> Instant {
        self.cut = None;
        Instant::now()
    }
}

/// The time of orca's heartbeat row on `key` (written on the primary, in
/// the primary's clock), if there is one.
async fn heartbeat(key: &InstanceKey) -> Option<String> {
    let mut conn = orca::mysql::connect(key, &admin_credentials(), Default::default())
        .await
        .ok()?;
    let ts: Option<String> = conn
        .query_first("SELECT CAST(MAX(ts) AS CHAR) FROM orca_meta.heartbeat")
        .await
        .ok()
        .flatten();
    let _ = conn.disconnect().await;
    ts
}

/// Waits until orca's heartbeat on `key` is later than `after` (a time
/// read from a heartbeat before; "" for any).
async fn wait_heartbeat_after(key: &InstanceKey, after: &str) {
    eventually(
        Duration::from_secs(20),
        &format!("orca's heartbeat on {key} after {after:?}"),
        || async { heartbeat(key).await.filter(|ts| ts.as_str() > after) },
    )
    .await;
}

/// An INSERT on `key` as the application account; the server's error if
/// it is refused.
async fn app_insert(key: &InstanceKey) -> Result<(), String> {
    let mut conn = orca::mysql::connect(key, &app_credentials(), Default::default())
        .await
        .map_err(|e| e.to_string())?;
    let r = conn
        .query_drop("INSERT INTO app.w (id) VALUES (999999999)")
        .await
        .map_err(|e| e.to_string());
    let _ = conn.disconnect().await;
    r
}

#[tokio::test(flavor = "multi_thread")]
async fn a_minority_that_still_acknowledges_is_not_failed_over() {
    let mut s = Scenario::start("acks", true).await;
    let [p, r1, r2, r3] = [0, 1, 2, 3].map(|i| s.keys[i].clone());
    let writer = Writer::persistent(p.clone(), app_credentials()).await;
    writer.wait_acked(50).await;
    s.wait_orca_saw_everything().await;

    let cut_at = s.cut("acks").await;
    // orca sees the primary dead (R2 and R3 cannot reach it, R1 is out of
    // reach too), and says why it does nothing.
    let finding = s
        .orca
        .wait_log(
            CUT / 2,
            &[
                "DeadPrimaryAndSomeReplicas",
                &p.to_string(),
                "no automatic failover",
            ],
        )
        .await;
    let seen_dead = Instant::now();
    for needle in [
        "2 of the 3 replicas",
        "every acknowledged write is on a reachable one only when 3 are",
        "nothing done",
        &format!("a force-failover may lose the acknowledged writes only {r1} has"),
    ] {
        assert!(
            finding.contains(needle),
            "{needle:?} not in the finding: {finding}"
        );
    }
    let refusal = eventually(CUT / 2, "a refused recovery record", || async {
        s.orca.records().into_iter().next()
    })
    .await;
    assert_eq!(refusal["outcome"]["result"], "failed", "{refusal:#}");
    let why = refusal["outcome"]["detail"].as_str().unwrap_or_default();
    assert!(why.contains("no automatic failover"), "{refusal:#}");
    tokio::time::sleep(CUT.saturating_sub(cut_at.elapsed())).await;

    // The minority went on committing: that is why a failover would have
    // split the cluster.
    let during = writer.acked_after(seen_dead);
    assert!(
        !during.is_empty(),
        "no write was acknowledged on the cut-off side after orca saw the primary dead: R1 did not acknowledge"
    );
    // orca wrote no heartbeat on P during the cut: a later one shows it
    // reached P again after the heal.
    let last_before = heartbeat(&p).await.unwrap_or_default();
    s.heal();
    wait_heartbeat_after(&p, &last_before).await;
    for r in [&r2, &r3] {
        wait_replicating_from(r, &p).await;
    }
    let records = s.orca.records();
    let acked = writer.finish().await;
    assert!(
        !records.iter().any(promoted),
        "a failover ran while the cut-off replica could acknowledge: {records:#?}"
    );
    // Every attempt was refused by the quorum rule, before any step.
    for r in &records {
        assert_eq!(r["outcome"]["result"], "failed", "{r:#}");
        let why = r["outcome"]["detail"].as_str().unwrap_or_default();
        assert!(why.contains("no automatic failover"), "{r:#}");
    }
    assert!(
        !snapshot(&p).await.is_read_only(),
        "the primary was touched"
    );
    assert_acked(&p, &admin_credentials(), &acked).await;
    // R1 acknowledged them; R2 and R3 are still catching up with the
    // writes of the cut.
    assert_acked_replicated(&r1, &admin_credentials(), &acked).await;
    eprintln!(
        "{} writes acknowledged, {} of them after orca saw the primary dead; {} refused recovery records",
        acked.len(),
        during.len(),
        records.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_minority_that_cannot_acknowledge_is_failed_over_and_fenced() {
    let mut s = Scenario::start("noack", false).await;
    let [p, _, r2, r3] = [0, 1, 2, 3].map(|i| s.keys[i].clone());
    let old = Writer::persistent(p.clone(), app_credentials()).await;
    old.wait_acked(50).await;
    s.wait_orca_saw_everything().await;

    let cut_at = s.cut("noack").await;
    let record = eventually(
        CUT.saturating_sub(Duration::from_secs(10)),
        "a failover",
        || async {
            s.orca
                .records()
                .into_iter()
                .find(|r| r["outcome"]["result"] == "succeeded")
        },
    )
    .await;
    let successor: InstanceKey = serde_json::from_value(record["successor"].clone())
        .unwrap_or_else(|e| panic!("no successor ({e}): {record:#}"));
    assert!(
        successor == r2 || successor == r3,
        "promoted {successor}, not a majority replica: {record:#}"
    );
    assert_eq!(record["failed"], p.to_string(), "{record:#}");
    let other = if successor == r2 { &r3 } else { &r2 };
    wait_replicating_from(other, &successor).await;
    let new = Writer::persistent(successor.clone(), app_credentials()).await;
    new.wait_acked(20).await;
    let first_new = new.first_ack().expect("a write on the new primary");
    tokio::time::sleep(CUT.saturating_sub(cut_at.elapsed())).await;

    // The old primary's writers block: nothing acknowledged to them after
    // the new primary took writes.
    let split = old.acked_after(first_new);
    assert!(
        split.is_empty(),
        "{} writes acknowledged on the old primary after the new one's first write: {:?}",
        split.len(),
        &split[..split.len().min(20)]
    );
    let healed_at = s.heal();
    // orca reaches the old primary again and fences it.
    s.orca
        .wait_log(
            Duration::from_secs(30),
            &["former primary answers again", &p.to_string()],
        )
        .await;
    assert!(
        snapshot(&p).await.is_read_only(),
        "the old primary is writable"
    );
    let refused = app_insert(&p).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("read-only") || e.contains("1290")),
        "a write on the fenced old primary: {refused:?}"
    );
    // The old writers keep trying (reconnecting): every write refused.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after_heal = old.acked_after(healed_at);
    let old_acked = old.finish().await;
    let new_acked = new.finish().await;
    assert!(
        after_heal.is_empty(),
        "{} writes acknowledged on the old primary after the heal",
        after_heal.len()
    );
    assert!(
        !snapshot(&successor).await.is_read_only(),
        "the new primary is read only"
    );
    // Every write acknowledged to either writer is on the new primary.
    assert_acked(&successor, &admin_credentials(), &old_acked).await;
    assert_acked(&successor, &admin_credentials(), &new_acked).await;
    assert_acked_replicated(other, &admin_credentials(), &new_acked).await;
    eprintln!(
        "old primary: {} writes acknowledged; new primary {successor}: {}; failover record: {}",
        old_acked.len(),
        new_acked.len(),
        serde_json::to_string(&record).unwrap_or_default()
    );
}
