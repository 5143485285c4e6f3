//! The prober's lean client (`orca::mysql::wire`) against real `mariadbd`
//! on loopback and against the simulator: the probe's statements answer
//! exactly as they do over the full driver, a failed statement leaves the
//! connection usable, errors are classified as the driver's are (wrong
//! password, hung server, killed connection, dead server), and an account
//! this client cannot authenticate is told apart so the caller can fall
//! back to the driver.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use orca::mysql::conn::{self, Timeouts};
use orca::mysql::parse::TextRow;
use orca::mysql::wire::{WireConn, needs_fallback};
use orca::mysql::{Credentials, Dialect, MysqlError, dialect, heartbeat};
use orca::topology::{Flavor, InstanceKey};
use orca_sandbox::mysqld::admin_credentials;
use orca_sandbox::mysqlsim::{Addressing, SimBuilder};
use orca_sandbox::{LocalCluster, Mysqld, MysqldOptions, Shape};

fn timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(2),
        query: Duration::from_secs(5),
    }
}

const LIMIT: Duration = Duration::from_secs(5);

type Sets = Vec<Vec<TextRow>>;

/// The probe's statements for `d`, as `orca::mysql::probe` sends them on
/// a kept connection: the variables, status, replica status, (MySQL)
/// binlog status, replica hosts, the heartbeat's age.
fn probe_statements(d: &Dialect) -> Vec<String> {
    let mut v = vec![
        dialect::variables_query(),
        dialect::status_query(),
        d.replica_status().to_string(),
    ];
    if d.flavor == Flavor::MySql {
        v.push(d.binlog_status().to_string());
    }
    v.push(d.replica_hosts().to_string());
    v.push(heartbeat::age_query());
    v
}

async fn dialect_of(conn: &mut WireConn, key: &InstanceKey) -> Dialect {
    let vars = conn
        .query_rows(key, LIMIT, "reading variables", &dialect::variables_query())
        .await
        .unwrap();
    let vars = orca::mysql::parse::name_values(&vars);
    Dialect::detect(
        &vars["version"],
        vars.get("version_comment").map(String::as_str),
    )
    .unwrap()
}

/// The batch over both clients: the lean one, the driver, the lean one
/// again (the two lean answers tell which values did not move while the
/// driver answered). Returns the driver's answer.
async fn compare_batch(
    key: &InstanceKey,
    wire: &mut WireConn,
    driver: &mut mysql_async::Conn,
    stmts: &[String],
) -> (Sets, Option<MysqlError>) {
    let (w1, wf1) = wire
        .query_batch(key, LIMIT, "probing", stmts)
        .await
        .unwrap();
    let (d, df) = conn::query_batch(driver, key, LIMIT, "probing", stmts)
        .await
        .unwrap();
    let (w2, wf2) = wire
        .query_batch(key, LIMIT, "probing", stmts)
        .await
        .unwrap();
    let code = |f: &Option<MysqlError>| f.as_ref().map(|e| e.server_code());
    assert_eq!(code(&wf1), code(&df), "{key}: the failed statement");
    assert_eq!(code(&wf2), code(&df), "{key}: the failed statement");
    assert_eq!(w1.len(), d.len(), "{key}: answers");
    assert_eq!(w2.len(), d.len(), "{key}: answers");
    let mut compared = 0;
    for (i, ((a, b), c)) in w1.iter().zip(&d).zip(&w2).enumerate() {
        assert_eq!(a.len(), b.len(), "{key}: rows of {}", stmts[i]);
        assert_eq!(c.len(), b.len(), "{key}: rows of {}", stmts[i]);
        for ((ra, rb), rc) in a.iter().zip(b).zip(c) {
            let names = |r: &TextRow| r.keys().cloned().collect::<Vec<_>>();
            assert_eq!(names(ra), names(rb), "{key}: columns of {}", stmts[i]);
            assert_eq!(names(rc), names(rb), "{key}: columns of {}", stmts[i]);
            for (name, v) in ra {
                if rc.get(name) == Some(v) {
                    assert_eq!(rb.get(name), Some(v), "{key}: {name} of {}", stmts[i]);
                    compared += 1;
                }
            }
        }
    }
    // The variables do not move: they are all compared.
    assert_eq!(w1[0], d[0], "{key}: the variables");
    assert!(compared > 20, "{key}: only {compared} values compared");
    (d, df)
}

/// The same batch over the lean client and over the driver, each of
/// which must fail: their errors.
async fn both_fail(
    wire: &mut WireConn,
    driver: &mut mysql_async::Conn,
    key: &InstanceKey,
    stmts: &[String],
) -> (MysqlError, MysqlError) {
    let w = wire
        .query_batch(key, LIMIT, "probing", stmts)
        .await
        .unwrap_err();
    let d = conn::query_batch(driver, key, LIMIT, "probing", stmts)
        .await
        .unwrap_err();
    (w, d)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_batch_answers_as_over_the_driver() {
    let c = LocalCluster::start(Shape::primary_with_replicas(1))
        .await
        .unwrap();
    let admin = admin_credentials();
    for (i, m) in c.instances.iter().enumerate() {
        let key = m.key();
        let mut wire = WireConn::connect(&key, &admin, timeouts()).await.unwrap();
        let mut driver = conn::connect(&key, &admin, timeouts()).await.unwrap();
        let d = dialect_of(&mut wire, &key).await;
        assert_eq!(d.flavor, Flavor::MariaDb);
        let stmts = probe_statements(&d);

        // No heartbeat here yet: its statement, the last, fails.
        let (sets, failed) = compare_batch(&key, &mut wire, &mut driver, &stmts).await;
        assert_eq!(sets.len(), stmts.len() - 1);
        assert!(
            failed.as_ref().is_some_and(heartbeat::is_missing),
            "{failed:?}"
        );
        let replica_status = &sets[2];
        if i == 0 {
            assert!(replica_status.is_empty());
            assert_eq!(sets[3].len(), 1, "the primary's replica hosts");
        } else {
            assert_eq!(replica_status.len(), 1, "SHOW SLAVE STATUS of the replica");
            assert_eq!(
                replica_status[0]["Slave_IO_Running"].as_deref(),
                Some("Yes")
            );
        }
        // The lean connection's id is the server's.
        let ids = wire
            .query_rows(&key, LIMIT, "id", "SELECT CONNECTION_ID() AS id")
            .await
            .unwrap();
        assert_eq!(
            ids[0]["id"].as_deref(),
            Some(wire.id().to_string().as_str())
        );
        wire.close(LIMIT).await;
        let _ = driver.disconnect().await;
    }

    // With the heartbeat written on the primary (and replicated), every
    // statement answers.
    let key = c.instances[0].key();
    let mut driver = conn::connect(&key, &admin, timeouts()).await.unwrap();
    heartbeat::ensure_table(&mut driver, &key, LIMIT)
        .await
        .unwrap();
    heartbeat::write(&mut driver, &key, LIMIT).await.unwrap();
    let mut wire = WireConn::connect(&key, &admin, timeouts()).await.unwrap();
    let d = dialect_of(&mut wire, &key).await;
    let stmts = probe_statements(&d);
    let (sets, failed) = compare_batch(&key, &mut wire, &mut driver, &stmts).await;
    assert!(failed.is_none(), "{failed:?}");
    assert_eq!(sets.len(), stmts.len());
    assert!(heartbeat::age_from_rows(&sets[4]).is_some());
    wire.close(LIMIT).await;
    let _ = driver.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_tables_and_passwords_on_a_real_server() {
    let server = Mysqld::start(MysqldOptions::new(41)).await.unwrap();
    let key = server.key();
    let admin = admin_credentials();
    let mut wire = WireConn::connect(&key, &admin, timeouts()).await.unwrap();

    // A batch whose second statement fails: the first's rows, the error
    // with its code, nothing after it; the connection goes on.
    let stmts: Vec<String> = [
        "SELECT 1 AS one, NULL AS nothing, '' AS empty",
        "SELECT * FROM no_such_schema.t",
        "SELECT 3 AS three",
    ]
    .map(String::from)
    .to_vec();
    let (sets, failed) = wire
        .query_batch(&key, LIMIT, "a failing batch", &stmts)
        .await
        .unwrap();
    let want: TextRow = [
        ("one".to_string(), Some("1".to_string())),
        ("nothing".to_string(), None),
        ("empty".to_string(), Some(String::new())),
    ]
    .into_iter()
    .collect();
    assert_eq!(sets, vec![vec![want]]);
    let failed = failed.expect("the second statement failed");
    assert_eq!(failed.server_code(), Some(1146), "{failed}");
    assert!(!failed.is_unreachable());
    let rows = wire
        .query_rows(&key, LIMIT, "after the error", "SELECT 2 AS two")
        .await
        .unwrap();
    assert_eq!(rows[0]["two"].as_deref(), Some("2"));

    // query_drop: a table created and filled, then read back; a server
    // error is an error.
    for sql in [
        "CREATE DATABASE IF NOT EXISTS wire_test",
        "CREATE TABLE wire_test.t (id INT PRIMARY KEY, v VARCHAR(20000) NULL)",
        "INSERT INTO wire_test.t VALUES (1, 'a'), (2, NULL)",
        "REPLACE INTO wire_test.t VALUES (3, REPEAT('x', 20000))",
    ] {
        wire.query_drop(&key, LIMIT, "writing", sql).await.unwrap();
    }
    let e = wire
        .query_drop(
            &key,
            LIMIT,
            "writing",
            "INSERT INTO wire_test.t VALUES (1, 'b')",
        )
        .await
        .unwrap_err();
    assert_eq!(e.server_code(), Some(1062), "{e}");
    let rows = wire
        .query_rows(
            &key,
            LIMIT,
            "reading",
            "SELECT id, v FROM wire_test.t ORDER BY id",
        )
        .await
        .unwrap();
    let got: Vec<(Option<String>, Option<String>)> = rows
        .iter()
        .map(|r| (r["id"].clone(), r["v"].clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (Some("1".into()), Some("a".into())),
            (Some("2".into()), None),
            (Some("3".into()), Some("x".repeat(20000))),
        ]
    );
    // A large answer over several reads.
    let rows = wire
        .query_rows(
            &key,
            LIMIT,
            "reading",
            "SELECT seq, REPEAT('y', 1000) AS pad FROM wire_test.seq_1_to_2000",
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 2000);
    assert_eq!(rows[1999]["seq"].as_deref(), Some("2000"));

    // A wrong password: the server's 1045, as over the driver, and no
    // password in what is shown.
    let wrong = Credentials::new(admin.user.clone(), "not-the-password");
    let e = WireConn::connect(&key, &wrong, timeouts())
        .await
        .unwrap_err();
    assert_eq!(e.server_code(), Some(1045), "{e}");
    assert!(!e.is_unreachable() && !needs_fallback(&e));
    let d = conn::connect(&key, &wrong, timeouts()).await.unwrap_err();
    assert_eq!(d.server_code(), Some(1045));
    let shown = format!("{e} {e:?} {wire:?}");
    assert!(!shown.contains("not-the-password") && !shown.contains(admin.password()));

    // An account of a plugin this client does not speak: connect fails
    // with an answer that tells the caller to use the driver.
    server.exec("INSTALL SONAME 'auth_ed25519'").await.unwrap();
    server
        .exec("CREATE USER 'ed'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('ed-secret')")
        .await
        .unwrap();
    let ed = Credentials::new("ed", "ed-secret");
    let e = WireConn::connect(&key, &ed, timeouts()).await.unwrap_err();
    assert!(needs_fallback(&e), "{e:?}");
    assert!(e.to_string().contains("client_ed25519"), "{e}");
    assert!(!format!("{e} {e:?}").contains("ed-secret"));
    wire.close(LIMIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_server_times_out_and_a_dead_one_is_unreachable() {
    let mut server = Mysqld::start(MysqldOptions::new(42)).await.unwrap();
    let key = server.key();
    let admin = admin_credentials();
    let mut wire = WireConn::connect(&key, &admin, timeouts()).await.unwrap();
    let stmts = vec!["SELECT 1 AS one".to_string()];
    let limit = Duration::from_millis(500);

    // SIGSTOP: the kernel still accepts, nothing answers.
    server.pause().unwrap();
    wait_stopped(&server).await;
    let started = Instant::now();
    let e = wire
        .query_batch(&key, limit, "probing", &stmts)
        .await
        .unwrap_err();
    let waited = started.elapsed();
    assert!(
        matches!(e, MysqlError::Timeout { millis: 500, .. }),
        "{e:?}"
    );
    assert!(e.is_unreachable());
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    let short = Timeouts {
        connect: limit,
        query: limit,
    };
    let e = WireConn::connect(&key, &admin, short).await.unwrap_err();
    assert!(
        matches!(e, MysqlError::Timeout { millis: 500, .. }),
        "{e:?}"
    );
    server.resume().unwrap();

    // The timed-out connection was left in the middle of an answer: it is
    // not used again (the probe closes it); a new one works.
    let e = wire
        .query_batch(&key, LIMIT, "probing", &stmts)
        .await
        .unwrap_err();
    assert!(e.is_unreachable(), "{e:?}");
    wire.close(limit).await;
    let mut wire = WireConn::connect(&key, &admin, timeouts()).await.unwrap();
    let mut driver = conn::connect(&key, &admin, timeouts()).await.unwrap();

    // Killed on the server (as a fence kills every client): both clients
    // see the same kind of failure.
    let mut killer = conn::connect(&key, &admin, timeouts()).await.unwrap();
    for id in [wire.id(), driver.id()] {
        conn::exec(
            &mut killer,
            &key,
            LIMIT,
            "killing",
            &format!("KILL CONNECTION {id}"),
        )
        .await
        .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (w, d) = both_fail(&mut wire, &mut driver, &key, &stmts).await;
    assert_eq!(w.is_unreachable(), d.is_unreachable(), "{w:?} / {d:?}");
    assert_eq!(w.server_code(), d.server_code(), "{w:?} / {d:?}");
    let _ = killer.disconnect().await;

    // SIGKILL with connections open: both unreachable; connecting to the
    // dead server is refused, unreachable too.
    let mut wire = WireConn::connect(&key, &admin, timeouts()).await.unwrap();
    let mut driver = conn::connect(&key, &admin, timeouts()).await.unwrap();
    server.kill().unwrap();
    let (w, d) = both_fail(&mut wire, &mut driver, &key, &stmts).await;
    assert!(w.is_unreachable() && d.is_unreachable(), "{w:?} / {d:?}");
    assert_eq!(w.server_code(), d.server_code());
    let w = WireConn::connect(&key, &admin, timeouts())
        .await
        .unwrap_err();
    let d = conn::connect(&key, &admin, timeouts()).await.unwrap_err();
    assert!(w.is_unreachable() && d.is_unreachable(), "{w:?} / {d:?}");
    assert!(!matches!(w, MysqlError::Timeout { .. }), "{w:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_batch_works_against_the_simulator() {
    let mut b = SimBuilder::new(Addressing::Ports {
        ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        first_port: 0,
    });
    let maria = b.add_cluster(Flavor::MariaDb, 1, 1, 10, false);
    let mysql = b.add_cluster(Flavor::MySql, 1, 11, 10, false);
    let sim = b.start().await.unwrap();
    let creds = Credentials::new("orca", "anything");
    for (flavor, id) in [
        (Flavor::MariaDb, maria.primary),
        (Flavor::MariaDb, maria.replicas[0]),
        (Flavor::MySql, mysql.primary),
        (Flavor::MySql, mysql.replicas[0]),
    ] {
        let key = sim.key(id).unwrap();
        let mut wire = WireConn::connect(&key, &creds, timeouts()).await.unwrap();
        let mut driver = conn::connect(&key, &creds, timeouts()).await.unwrap();
        let d = dialect_of(&mut wire, &key).await;
        assert_eq!(d.flavor, flavor);
        let stmts = probe_statements(&d);
        let (sets, _) = compare_batch(&key, &mut wire, &mut driver, &stmts).await;
        assert!(
            sets.len() >= stmts.len() - 1,
            "{key}: {} answers",
            sets.len()
        );
        wire.close(LIMIT).await;
        let _ = driver.disconnect().await;
    }
}

/// Waits until every thread of the paused server has stopped (SIGSTOP is
/// delivered asynchronously).
async fn wait_stopped(server: &Mysqld) {
    let pid = server.pid().expect("a running server");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the server's threads");
        let all_stopped = tasks.flatten().all(|t| {
            std::fs::read_to_string(t.path().join("stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .map(|(_, rest)| rest.trim_start().starts_with('T'))
                })
                .unwrap_or(true)
        });
        if all_stopped {
            return;
        }
        assert!(Instant::now() < deadline, "the server did not stop");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn a_kept_connection_is_small() {
    let size = std::mem::size_of::<WireConn>();
    assert!(size <= 128, "{size} bytes");
}
