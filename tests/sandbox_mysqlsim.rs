//! The simulated MySQL server of the benchmarks (`orca_sandbox::mysqlsim`)
//! probed by orca's real prober over TCP: the snapshots carry the scripted
//! state of both flavors, the answers have the column sets of the recorded
//! real servers, faults look to the prober as they would on a real server,
//! and thousands of instances run in one process.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use futures::StreamExt;
use mysql_async::prelude::Queryable;
use orca::mysql::conn::Timeouts;
use orca::mysql::probe::probe;
use orca::mysql::{Credentials, MysqlError, dialect};
use orca::topology::graph::{Role, Unreached};
use orca::topology::instance::{GtidChannelMode, IoThreadState};
use orca::topology::{Flavor, GtidSet, InstanceKey, Snapshot, Topology};
use orca_sandbox::mysqlsim::{Addressing, ClusterIds, Health, InstanceId, Sim, SimBuilder};

fn creds() -> Credentials {
    Credentials::new("orca", "anything")
}

fn timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_millis(500),
        query: Duration::from_millis(500),
    }
}

fn ports() -> Addressing {
    Addressing::Ports {
        ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        first_port: 0,
    }
}

async fn snap(sim: &Sim, id: InstanceId) -> Snapshot {
    let key = sim.key(id).unwrap();
    probe(&key, &creds(), timeouts())
        .await
        .unwrap_or_else(|e| panic!("probing {key}: {e}"))
}

/// A simulated MariaDB primary with one replica, and a connection to the
/// primary.
async fn mariadb_pair() -> (Sim, ClusterIds, InstanceKey, mysql_async::Conn) {
    let mut b = SimBuilder::new(ports());
    let c = b.add_cluster(Flavor::MariaDb, 1, 1, 10, false);
    let sim = b.start().await.unwrap();
    let key = sim.key(c.primary).unwrap();
    let conn = orca::mysql::connect(&key, &creds(), timeouts())
        .await
        .unwrap();
    (sim, c, key, conn)
}

fn gtid(flavor: Flavor, s: &str) -> Option<GtidSet> {
    Some(GtidSet::parse(flavor, s).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_carry_the_scripted_state_of_both_flavors() {
    let mut b = SimBuilder::new(ports());
    let maria = b.add_cluster(Flavor::MariaDb, 2, 1, 100, true);
    let my = b.add_cluster(Flavor::MySql, 2, 11, 40, false);
    // The second MySQL replica lags, by its own account.
    b.spec_mut(my.replicas[1])
        .unwrap()
        .replication
        .as_mut()
        .unwrap()
        .seconds_behind = 7;
    // An old MySQL, with the old statement names and semi-sync plugins.
    let old = b.add(
        orca_sandbox::mysqlsim::InstanceSpec::mysql(21)
            .with_version("8.0.21", "MySQL Community Server - GPL"),
    );
    let sim = b.start().await.unwrap();
    let key = |id| sim.key(id).unwrap();

    // MariaDB primary: writable, its GTIDs, semi-sync active with two
    // clients, both replicas registered.
    let p = snap(&sim, maria.primary).await;
    assert_eq!(p.flavor, Flavor::MariaDb);
    assert_eq!((p.version.major, p.version.minor), (10, 11));
    assert_eq!(p.server_id, 1);
    assert!(!p.read_only && p.super_read_only.is_none());
    assert!(p.replica.is_none());
    assert_eq!(p.gtid.executed, gtid(Flavor::MariaDb, "0-1-100"));
    assert_eq!(p.gtid.binlog_pos, gtid(Flavor::MariaDb, "0-1-100"));
    assert_eq!(p.gtid.strict_mode, Some(true));
    assert_eq!(p.binlog.as_ref().unwrap().file, "mysql-bin.000001");
    assert!(p.semi_sync.primary_enabled && p.semi_sync.primary_active);
    assert_eq!(p.semi_sync.clients, 2);
    let mut want: Vec<InstanceKey> = maria.replicas.iter().map(|r| key(*r)).collect();
    want.sort();
    assert_eq!(p.registered_replicas, want);
    assert_eq!(p.heartbeat_age_ms, None);

    // MariaDB replicas: read-only, replicating with slave_pos, caught up,
    // semi-sync replica side active.
    for r in &maria.replicas {
        let s = snap(&sim, *r).await;
        assert!(s.read_only);
        assert_eq!(s.gtid.slave_pos, gtid(Flavor::MariaDb, "0-1-100"));
        let rs = s.replica.as_ref().unwrap();
        assert_eq!(rs.source, key(maria.primary));
        assert_eq!(rs.io_running, IoThreadState::Yes);
        assert!(rs.sql_running && rs.is_replicating());
        assert_eq!(rs.seconds_behind, Some(0));
        assert_eq!(rs.gtid_mode, GtidChannelMode::SlavePos);
        assert_eq!(rs.gtid_io_pos.as_deref(), Some("0-1-100"));
        assert_eq!(rs.source_server_id, Some(1));
        assert!(rs.received_heartbeats.is_some());
        assert!(s.semi_sync.replica_enabled && s.semi_sync.replica_active);
    }

    // MySQL 8.4: UUIDs, super_read_only, auto-position, no semi-sync.
    let mp = snap(&sim, my.primary).await;
    let uuid = orca_sandbox::mysqlsim::uuid_for(11);
    assert_eq!(mp.flavor, Flavor::MySql);
    assert_eq!(mp.server_uuid.as_deref(), Some(uuid.as_str()));
    assert_eq!(mp.super_read_only, Some(false));
    assert_eq!(mp.gtid.mode.as_deref(), Some("ON"));
    assert_eq!(
        mp.gtid.executed,
        gtid(Flavor::MySql, &format!("{uuid}:1-40"))
    );
    assert!(!mp.semi_sync.primary_enabled && !mp.semi_sync.primary_active);
    assert_eq!(mp.registered_replicas.len(), 2);
    let lagging = snap(&sim, my.replicas[1]).await;
    assert_eq!(lagging.super_read_only, Some(true));
    let rs = lagging.replica.as_ref().unwrap();
    assert_eq!(rs.source, key(my.primary));
    assert_eq!(rs.seconds_behind, Some(7));
    assert_eq!(rs.gtid_mode, GtidChannelMode::AutoPosition);
    assert_eq!(rs.source_uuid.as_deref(), Some(uuid.as_str()));
    assert_eq!(rs.executed_gtid_set, Some(format!("{uuid}:1-40")));

    // MySQL 8.0.21 answers under the old names (SHOW SLAVE STATUS, SHOW
    // MASTER STATUS, rpl_semi_sync_master_*).
    let o = snap(&sim, old).await;
    assert_eq!(
        (o.version.major, o.version.minor, o.version.patch),
        (8, 0, 21)
    );
    assert!(o.binlog.is_some() && o.replica.is_none());
    assert_eq!(o.semi_sync.wait_count, 1);

    // The topology orca builds from the snapshots.
    let mut snaps = Vec::new();
    for id in maria.all().into_iter().chain(my.all()) {
        snaps.push(snap(&sim, id).await);
    }
    let topo = Topology::build(snaps, Vec::new());
    assert_eq!(topo.nodes.len(), 6);
    for c in [&maria, &my] {
        let root = topo.get(&key(c.primary)).unwrap();
        assert_eq!(root.role, Role::Primary);
        assert_eq!(root.depth, 0);
        let mut replicas = root.replicas.clone();
        replicas.sort();
        let mut want: Vec<InstanceKey> = c.replicas.iter().map(|r| key(*r)).collect();
        want.sort();
        assert_eq!(replicas, want);
        for r in &c.replicas {
            let n = topo.get(&key(*r)).unwrap();
            assert_eq!(n.role, Role::Replica);
            assert_eq!(n.depth, 1);
            assert!(
                n.errant.as_ref().is_none_or(|e| e.is_empty()),
                "{:?}",
                n.errant
            );
        }
    }
    assert_eq!(topo.get(&key(my.replicas[1])).unwrap().lag_ms, Some(7000));
    assert_eq!(topo.get(&key(maria.replicas[0])).unwrap().lag_ms, Some(0));
}

/// Column names of a query's answer, in order.
async fn columns(conn: &mut mysql_async::Conn, sql: &str) -> (Vec<String>, Vec<mysql_async::Row>) {
    let mut result = conn.query_iter(sql).await.unwrap();
    let cols = result
        .columns()
        .map(|c| c.iter().map(|c| c.name_str().into_owned()).collect())
        .unwrap_or_default();
    let rows: Vec<mysql_async::Row> = result.collect().await.unwrap();
    (cols, rows)
}

fn fixture(name: &str) -> (serde_json::Value, String) {
    let path = format!(
        "{}/tests/fixtures/mysql/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap();
    (serde_json::from_str(&text).unwrap(), text)
}

/// The column names of the first row of `part`, in the recorded order
/// (read from the text: a JSON object keeps no order here).
fn fixture_columns(text: &str, part: &str) -> Vec<String> {
    let start = text.find(&format!("\"{part}\": [")).unwrap();
    let open = start + text[start..].find('{').unwrap();
    let close = open + text[open..].find('}').unwrap();
    let key = regex::Regex::new(r#""([A-Za-z_]+)":"#).unwrap();
    key.captures_iter(&text[open..close])
        .map(|c| c[1].to_string())
        .collect()
}

fn names(f: &serde_json::Value, part: &str) -> BTreeSet<String> {
    f[part]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Variable_name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_have_the_columns_of_the_recorded_servers() {
    let mut b = SimBuilder::new(ports());
    let maria = b.add_cluster(Flavor::MariaDb, 1, 1, 6, true);
    let my = b.add_cluster(Flavor::MySql, 1, 101, 6, true);
    let sim = b.start().await.unwrap();
    let cases = [
        (maria.primary, "mariadb1011_primary", Flavor::MariaDb, true),
        (
            maria.replicas[0],
            "mariadb1011_replica",
            Flavor::MariaDb,
            false,
        ),
        (my.primary, "mysql84_primary", Flavor::MySql, true),
        (my.replicas[0], "mysql84_replica", Flavor::MySql, false),
    ];
    for (id, name, flavor, primary) in cases {
        let (f, text) = fixture(name);
        let key = sim.key(id).unwrap();
        let opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname(key.host.clone())
            .tcp_port(key.port)
            .user(Some("orca"))
            .prefer_socket(false);
        let mut conn = mysql_async::Conn::new(opts).await.unwrap();
        let d = match flavor {
            Flavor::MariaDb => dialect::Dialect::detect("10.11.19-MariaDB", None).unwrap(),
            Flavor::MySql => dialect::Dialect::detect("8.4.3", None).unwrap(),
        };
        // The probe's variables: exactly the names the real server gave.
        let (_, rows) = columns(&mut conn, &dialect::variables_query()).await;
        let got: BTreeSet<String> = rows
            .iter()
            .map(|r| r.get::<String, _>("Variable_name").unwrap())
            .collect();
        assert_eq!(got, names(&f, "variables"), "{name} variables");
        // The status: at least the names the real server gave.
        let (_, rows) = columns(&mut conn, &dialect::status_query()).await;
        let got: BTreeSet<String> = rows
            .iter()
            .map(|r| r.get::<String, _>("Variable_name").unwrap())
            .collect();
        let want = names(&f, "status");
        assert!(
            got.is_superset(&want),
            "{name} status: {got:?} lacks some of {want:?}"
        );
        // Replica status, binlog status, replica hosts: the same columns
        // in the same order.
        if !primary {
            let (cols, rows) = columns(&mut conn, d.replica_status()).await;
            assert_eq!(cols, fixture_columns(&text, "replica_status"), "{name}");
            assert_eq!(rows.len(), 1);
        }
        let (cols, _) = columns(&mut conn, d.binlog_status()).await;
        assert_eq!(cols, fixture_columns(&text, "binlog_status"), "{name}");
        if primary {
            let (cols, rows) = columns(&mut conn, d.replica_hosts()).await;
            assert_eq!(cols, fixture_columns(&text, "replica_hosts"), "{name}");
            assert_eq!(rows.len(), 1);
        }
        // What the driver asked at connect, and the statements of other
        // versions, which this one refuses as a real one would.
        let (cols, _) = columns(&mut conn, "SELECT @@max_allowed_packet, @@wait_timeout").await;
        assert_eq!(cols, ["@@max_allowed_packet", "@@wait_timeout"]);
        let refused = match flavor {
            Flavor::MariaDb => "SHOW BINARY LOG STATUS",
            Flavor::MySql => "SHOW SLAVE STATUS",
        };
        let e = conn.query_drop(refused).await.unwrap_err();
        assert!(
            matches!(e, mysql_async::Error::Server(ref s) if s.code == 1064),
            "{e}"
        );
        conn.disconnect().await.unwrap();
    }
}

fn unreachable(r: Result<Snapshot, MysqlError>) -> MysqlError {
    match r {
        Ok(s) => panic!("{} answered", s.key),
        Err(e) => {
            assert!(e.is_unreachable(), "{e}");
            e
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_look_to_the_prober_as_on_a_real_server() {
    let mut b = SimBuilder::new(ports());
    let maria = b.add_cluster(Flavor::MariaDb, 2, 1, 10, false);
    let my = b.add_cluster(Flavor::MySql, 1, 11, 10, false);
    let sim = b.start().await.unwrap();
    let key = |id| sim.key(id).unwrap();
    let r1 = maria.replicas[0];

    // Hang: connecting times out (the greeting never comes), and so does
    // a query on a connection opened before.
    let mut open = orca::mysql::probe::ProbeConn::connect(&key(r1), &creds(), timeouts())
        .await
        .unwrap();
    sim.set_health(r1, Health::Hang).await.unwrap();
    let e = unreachable(probe(&key(r1), &creds(), timeouts()).await);
    assert!(
        matches!(
            e,
            MysqlError::Timeout {
                what: "connecting",
                ..
            }
        ),
        "{e}"
    );
    let e = orca::mysql::probe::probe_conn(&mut open, &key(r1), timeouts())
        .await
        .unwrap_err();
    assert!(matches!(e, MysqlError::Timeout { .. }), "{e}");
    drop(open);
    // Resumed, it answers again.
    sim.set_health(r1, Health::Serving).await.unwrap();
    snap(&sim, r1).await;

    // Refuse: connection refused, an I/O error, not a timeout.
    sim.set_health(r1, Health::Refuse).await.unwrap();
    let e = unreachable(probe(&key(r1), &creds(), timeouts()).await);
    assert!(matches!(e, MysqlError::Server { .. }), "{e}");
    sim.set_health(r1, Health::Serving).await.unwrap();
    snap(&sim, r1).await;

    // A hung primary: its replicas still say Yes, but their stream stalls.
    sim.set_health(maria.primary, Health::Hang).await.unwrap();
    let s = snap(&sim, r1).await;
    let rs = s.replica.as_ref().unwrap();
    assert_eq!(rs.io_running, IoThreadState::Yes);
    let again = snap(&sim, r1).await;
    assert_eq!(
        again.replica.as_ref().unwrap().received_heartbeats,
        rs.received_heartbeats
    );
    sim.set_health(maria.primary, Health::Serving)
        .await
        .unwrap();

    // Die: open connections are closed, connecting is refused, and the
    // replicas report their IO thread reconnecting with errno 2003.
    for c in [&maria, &my] {
        let mut open =
            orca::mysql::probe::ProbeConn::connect(&key(c.primary), &creds(), timeouts())
                .await
                .unwrap();
        sim.set_health(c.primary, Health::Dead).await.unwrap();
        let e = orca::mysql::probe::probe_conn(&mut open, &key(c.primary), timeouts())
            .await
            .unwrap_err();
        assert!(e.is_unreachable(), "{e}");
        let e = unreachable(probe(&key(c.primary), &creds(), timeouts()).await);
        let mut snaps = Vec::new();
        for r in &c.replicas {
            let s = snap(&sim, *r).await;
            let rs = s.replica.as_ref().unwrap();
            assert_eq!(rs.io_running, IoThreadState::Connecting);
            assert_eq!(rs.last_io_errno, 2003);
            assert!(rs.last_io_error.contains(&key(c.primary).host));
            assert_eq!(rs.seconds_behind, None);
            assert!(rs.source_unreachable());
            assert!(rs.sql_running);
            snaps.push(s);
        }
        // The graph keeps the dead primary in its place, unreached.
        let topo = Topology::build(snaps, vec![Unreached::new(key(c.primary), e.to_string())]);
        let root = topo.get(&key(c.primary)).unwrap();
        assert!(!root.reachable());
        assert_eq!(root.replicas.len(), c.replicas.len());
        // Back up: the replicas stream again and register.
        sim.set_health(c.primary, Health::Serving).await.unwrap();
        let p = snap(&sim, c.primary).await;
        assert_eq!(p.registered_replicas.len(), c.replicas.len());
        for r in &c.replicas {
            let s = snap(&sim, *r).await;
            assert!(s.replica.as_ref().unwrap().is_replicating());
        }
    }

    // Scripted changes at run time: promote a replica.
    let r2 = maria.replicas[1];
    sim.update(r2, |s| {
        s.replication = None;
        s.read_only = false;
    })
    .unwrap();
    let s = snap(&sim, r2).await;
    assert!(s.replica.is_none() && !s.read_only);
    let p = snap(&sim, maria.primary).await;
    assert_eq!(p.registered_replicas, vec![key(r1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_heartbeat_writer_and_reader_work() {
    let (sim, c, pk, mut conn) = mariadb_pair().await;
    let q = Duration::from_millis(500);
    // No table yet: the write fails as on a real server, then creating it
    // makes it work; the replica reads the row through replication.
    let e = orca::mysql::heartbeat::write(&mut conn, &pk, q)
        .await
        .unwrap_err();
    assert_eq!(e.server_code(), Some(1146));
    orca::mysql::heartbeat::ensure_table(&mut conn, &pk, q)
        .await
        .unwrap();
    orca::mysql::heartbeat::write(&mut conn, &pk, q)
        .await
        .unwrap();
    assert!(snap(&sim, c.primary).await.heartbeat_age_ms.is_some());
    assert!(snap(&sim, c.replicas[0]).await.heartbeat_age_ms.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_instances_in_one_process_each_answer_a_probe() {
    // 500 clusters of a primary and three replicas, both flavors, each
    // instance on its own loopback address, all on port 3306.
    let mut b = SimBuilder::new(Addressing::LoopbackAliases {
        first: Ipv4Addr::new(127, 77, 0, 1),
        port: 3306,
    });
    let mut clusters = Vec::new();
    for n in 0..500u32 {
        let flavor = if n % 2 == 0 {
            Flavor::MariaDb
        } else {
            Flavor::MySql
        };
        clusters.push(b.add_cluster(flavor, 3, 1 + 4 * n, 5, n % 4 < 2));
    }
    let sim = b.start().await.unwrap();
    assert_eq!(sim.len(), 2000);
    let distinct: BTreeSet<&str> = sim.keys().iter().map(|k| k.host.as_str()).collect();
    assert_eq!(distinct.len(), 2000);
    assert!(sim.keys().iter().all(|k| k.port == 3306));
    let relaxed = Timeouts {
        connect: Duration::from_secs(10),
        query: Duration::from_secs(10),
    };
    let c = creds();
    let results: Vec<(InstanceKey, Result<Snapshot, MysqlError>)> =
        futures::stream::iter(sim.keys().to_vec())
            .map(|k| {
                let c = c.clone();
                async move {
                    let r = probe(&k, &c, relaxed).await;
                    (k, r)
                }
            })
            .buffer_unordered(200)
            .collect()
            .await;
    let mut snaps = Vec::new();
    for (k, r) in results {
        let s = r.unwrap_or_else(|e| panic!("{k}: {e}"));
        let id = sim.id(&k).unwrap();
        assert_eq!(s.server_id, sim.spec(id).unwrap().server_id);
        snaps.push(s);
    }
    let topo = Topology::build(snaps, Vec::new());
    let roots = topo.roots();
    assert_eq!(roots.len(), 500);
    assert!(
        roots
            .iter()
            .all(|r| r.replicas.len() == 3 && r.role == Role::Primary)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_statements_in_one_query_are_answered_in_turn_until_one_fails() {
    let (_sim, _, key, mut conn) = mariadb_pair().await;
    let stmts = vec![
        "SELECT @@server_id".to_string(),
        "SHOW SLAVE STATUS".to_string(),
        orca::mysql::heartbeat::age_query(),
        "SELECT @@version".to_string(),
    ];
    let (sets, failed) =
        orca::mysql::conn::query_batch(&mut conn, &key, Duration::from_secs(2), "batch", &stmts)
            .await
            .unwrap();
    // The server id, no replica status, then the heartbeat is missing
    // (1146) and the last statement is not run.
    assert_eq!(sets.len(), 2, "{sets:?}");
    assert_eq!(sets[0][0]["@@server_id"].as_deref(), Some("1"));
    assert!(sets[1].is_empty());
    assert_eq!(failed.and_then(|e| e.server_code()), Some(1146));
    // The connection is still good for the next query.
    let (sets, failed) = orca::mysql::conn::query_batch(
        &mut conn,
        &key,
        Duration::from_secs(2),
        "batch",
        &stmts[..2],
    )
    .await
    .unwrap();
    assert_eq!((sets.len(), failed.is_none()), (2, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_probe_connection_to_a_hung_instance_times_out_and_is_dropped() {
    let mut b = SimBuilder::new(ports());
    let c = b.add_cluster(Flavor::MySql, 1, 1, 10, true);
    let sim = b.start().await.unwrap();
    let key = sim.key(c.primary).unwrap();
    let (r, kept) = orca::mysql::probe::probe_kept(&key, &creds(), timeouts(), None).await;
    assert_eq!(r.unwrap().server_id, 1);
    assert!(kept.is_some());
    let (r, kept) = orca::mysql::probe::probe_kept(&key, &creds(), timeouts(), kept).await;
    assert!(r.is_ok());
    sim.set_health(c.primary, Health::Hang).await.unwrap();
    let (r, kept) = orca::mysql::probe::probe_kept(&key, &creds(), timeouts(), kept).await;
    assert!(matches!(r, Err(MysqlError::Timeout { .. })), "{r:?}");
    assert!(kept.is_none());
    sim.set_health(c.primary, Health::Serving).await.unwrap();
    let (r, kept) = orca::mysql::probe::probe_kept(&key, &creds(), timeouts(), kept).await;
    assert_eq!(r.unwrap().server_id, 1);
    assert!(kept.is_some());
}
