//! The store on a real `mariadbd` of its own: migrations (idempotent, two
//! migrators at once, a newer schema refused), records written and read
//! back paged, a full queue counted, and the store killed during a
//! failover of a cluster `orca standalone` manages: the failover happens
//! at full speed and its record reaches the store when it returns.

mod support;

use std::time::Duration;

use orca::engine::executor::{OperationRecord, Outcome, StepOutcome, StepRecord};
use orca::plan::{PlanKind, Step};
use orca::store::record::{AuditRow, Door, InstanceRow, Record, RecoveryRow};
use orca::store::{Page, Store, StoreError, schema};
use orca::topology::InstanceKey;
use orca_sandbox::mysqld::admin_credentials;
use support::standalone::Standalone;
use support::store::StoreServer;
use support::writer::{Writer, assert_acked};
use support::*;

const TABLES: [&str; 7] = [
    "audit",
    "downtimes",
    "findings",
    "instances",
    "recoveries",
    "recovery_steps",
    "schema_version",
];

async fn tables(s: &StoreServer, db: &str) -> Vec<String> {
    s.column(db, "SHOW TABLES")
        .await
        .into_iter()
        .flatten()
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn migrations_are_idempotent_and_two_migrators_at_once_apply_each_once() {
    let s = StoreServer::start().await;
    let c = s.config("orca_migrate");
    // Two orca processes starting at once: both succeed, each migration
    // is applied once (a second insert of a version would fail).
    let (a, b) = tokio::join!(orca::store::migrate(&c), orca::store::migrate(&c));
    let known = schema::known_version();
    assert_eq!(a.expect("first migrator"), known);
    assert_eq!(b.expect("second migrator"), known);
    assert_eq!(tables(&s, "orca_migrate").await, TABLES);
    let versions = s
        .column(
            "orca_migrate",
            "SELECT version FROM schema_version ORDER BY version",
        )
        .await;
    let want: Vec<Option<String>> = (1..=known).map(|v| Some(v.to_string())).collect();
    assert_eq!(versions, want);
    // Again, on a current schema: nothing to do.
    assert_eq!(orca::store::migrate(&c).await.expect("again"), known);
    assert_eq!(
        s.count("orca_migrate", "SELECT COUNT(*) FROM schema_version")
            .await,
        u64::from(known)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_newer_schema_is_refused_naming_both_versions() {
    let s = StoreServer::start().await;
    let c = s.config("orca_newer");
    orca::store::migrate(&c).await.expect("migrate");
    let newer = schema::known_version() + 1;
    s.mysqld
        .exec(&format!(
            "INSERT INTO orca_newer.schema_version VALUES ({newer}, 0, 'orca from the future')"
        ))
        .await
        .unwrap();
    let e = orca::store::migrate(&c).await.expect_err("a newer schema");
    assert!(
        matches!(e, StoreError::SchemaTooNew { found, known } if found == newer && known == schema::known_version()),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.contains(&newer.to_string()) && text.contains(&schema::known_version().to_string()),
        "{text}"
    );
    let opened = Store::open(c).await;
    assert!(
        matches!(opened, Err(StoreError::SchemaTooNew { .. })),
        "{opened:?}"
    );
}

fn key(host: &str) -> InstanceKey {
    InstanceKey::new(host, 3306)
}

fn operation(n: u64) -> OperationRecord {
    let step = |index: usize, step: Step, outcome: StepOutcome| StepRecord {
        index,
        description: step.to_string(),
        step,
        started_ms: 10 * index as u64,
        duration_ms: 3,
        outcome,
    };
    OperationRecord {
        id: format!("c-recover-{n}"),
        cluster: "c".into(),
        kind: PlanKind::RecoverDeadPrimary,
        trigger: "DeadPrimary".into(),
        failed: Some(key("10.0.0.1")),
        successor: Some(key("10.0.0.2")),
        lost_replicas: vec![(key("10.0.0.3"), "too far behind".into())],
        lost_transactions: None,
        notes: Vec::new(),
        started_at: 1_700_000_000 + n,
        duration_ms: 25,
        steps: vec![
            step(
                0,
                Step::StopReplicaIo {
                    on: key("10.0.0.2"),
                },
                StepOutcome::Done,
            ),
            step(
                1,
                Step::ResetReplicaAll {
                    on: key("10.0.0.2"),
                },
                StepOutcome::Done,
            ),
            step(
                2,
                Step::StartReplica {
                    on: key("10.0.0.3"),
                },
                StepOutcome::Failed("no".into()),
            ),
        ],
        rollback: Vec::new(),
        hook_errors: Vec::new(),
        outcome: Outcome::Failed("step 3 failed".into()),
    }
}

fn audit(n: i64, cluster: &str) -> Record {
    Record::Audit(AuditRow {
        id: format!("00000000-0000-0000-0000-{n:012}"),
        at_ms: 1_700_000_000_000 + n,
        cluster: cluster.into(),
        action: "graceful-takeover".into(),
        target: Some("10.0.0.2:3306".into()),
        requested_by: "alice".into(),
        door: Door::Cli,
        detail: None,
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn records_are_written_and_read_back_paged_newest_first() {
    let mut s = StoreServer::start().await;
    let store = Store::open(s.config("orca_rw")).await.expect("open");
    for n in 1..=7 {
        assert!(store.enqueue(Record::Recovery(Box::new(RecoveryRow::of(
            &operation(n),
            Some(3)
        )))));
    }
    // The same record again (a retried batch): still one row, one step each.
    assert!(store.enqueue(Record::Recovery(Box::new(RecoveryRow::of(
        &operation(7),
        Some(3)
    )))));
    for n in 1..=5 {
        store.enqueue(audit(n, "c"));
    }
    store.enqueue(audit(99, "other"));
    store.enqueue(Record::Acknowledged {
        recovery_id: "c-recover-6".into(),
        by: "bob".into(),
        comment: "looked at it".into(),
        at_ms: 1_700_000_100_000,
    });
    let row = |instance: &str, role: &str| InstanceRow {
        cluster: "c".into(),
        instance: instance.into(),
        role: role.into(),
        source: None,
        reachable: true,
        read_only: Some(role != "primary"),
        flavor: Some("mariadb".into()),
        version: Some("10.11.6-MariaDB".into()),
        server_id: Some(1),
        gtid_executed: Some("0-1-10".into()),
        lag_ms: None,
        error: None,
        snapshot: None,
        seen_at_ms: 1,
    };
    store.enqueue(Record::Instance(row("10.0.0.2:3306", "replica")));
    store.enqueue(Record::Instance(row("10.0.0.1:3306", "primary")));
    // A later snapshot of the same instance replaces the first.
    let mut gone = row("10.0.0.2:3306", "unknown");
    gone.reachable = false;
    gone.version = None;
    gone.error = Some("connection refused".into());
    store.enqueue(Record::Instance(gone));
    assert_eq!(store.flush(Duration::from_secs(20)).await, 0, "all written");
    assert_eq!(store.dropped(), 0);

    let ids = |rs: &[orca::store::read::StoredRecovery]| -> Vec<String> {
        rs.iter().map(|r| r.recovery.id.clone()).collect()
    };
    let first = store.recoveries("c", Page::new(0, 3)).await.unwrap();
    assert_eq!(ids(&first), ["c-recover-7", "c-recover-6", "c-recover-5"]);
    let last = store.recoveries("c", Page::new(2, 3)).await.unwrap();
    assert_eq!(ids(&last), ["c-recover-1"]);
    assert!(
        store
            .recoveries("other", Page::default())
            .await
            .unwrap()
            .is_empty()
    );
    let r6 = &first[1];
    assert_eq!(r6.acknowledged_by.as_deref(), Some("bob"));
    assert_eq!(r6.acknowledged_comment.as_deref(), Some("looked at it"));
    assert_eq!(first[0].acknowledged_by, None);
    assert_eq!(r6.recovery.epoch, Some(3));
    assert_eq!(r6.recovery.outcome, "failed");
    assert_eq!(r6.recovery.successor.as_deref(), Some("10.0.0.2:3306"));
    assert_eq!(r6.recovery.started_ms, 1_700_000_006_000);
    assert!(r6.recovery.lost_replicas.contains("too far behind"));

    let steps = store.recovery_steps("c-recover-7").await.unwrap();
    let want = RecoveryRow::of(&operation(7), Some(3)).steps;
    assert_eq!(steps, want);

    let audit = store.audit("c", Page::new(0, 2)).await.unwrap();
    let at: Vec<i64> = audit.iter().map(|a| a.at_ms - 1_700_000_000_000).collect();
    assert_eq!(at, [5, 4]);
    assert_eq!(audit[0].door, Door::Cli);
    assert_eq!(audit[0].requested_by, "alice");
    assert_eq!(store.audit("c", Page::new(2, 2)).await.unwrap().len(), 1);

    let instances = store.instances("c").await.unwrap();
    let seen: Vec<(&str, &str, bool, Option<&str>)> = instances
        .iter()
        .map(|i| {
            (
                i.instance.as_str(),
                i.role.as_str(),
                i.reachable,
                i.version.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("10.0.0.1:3306", "primary", true, Some("10.11.6-MariaDB")),
            // The version of an instance that stopped answering is kept.
            ("10.0.0.2:3306", "unknown", false, Some("10.11.6-MariaDB")),
        ]
    );
    assert_eq!(
        s.count("orca_rw", "SELECT COUNT(*) FROM recovery_steps")
            .await,
        21
    );
    // The store restarts: the pooled connections died with it, reads go on.
    s.kill();
    s.restart().await;
    let after = store.instances("c").await.expect("a read after a restart");
    assert_eq!(after.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_queue_drops_the_newest_and_counts_them_and_keeps_the_rest_for_the_store() {
    let mut s = StoreServer::start().await;
    let mut c = s.config("orca_overflow");
    c.queue_capacity = 4;
    s.kill();
    // The store is down at start: orca runs on.
    let store = Store::open(c).await.expect("open with the store down");
    let admitted: Vec<bool> = (1..=10).map(|n| store.enqueue(audit(n, "c"))).collect();
    assert_eq!(
        admitted,
        [
            true, true, true, true, false, false, false, false, false, false
        ]
    );
    assert_eq!(store.dropped(), 6);
    assert_eq!(store.queue_depth(), 4);
    // A volatile record is refused once the queue is half full.
    let snapshot = Record::Instance(InstanceRow {
        cluster: "c".into(),
        instance: "10.0.0.1:3306".into(),
        role: "primary".into(),
        source: None,
        reachable: true,
        read_only: None,
        flavor: None,
        version: None,
        server_id: None,
        gtid_executed: None,
        lag_ms: None,
        error: None,
        snapshot: None,
        seen_at_ms: 0,
    });
    assert!(!store.enqueue(snapshot));
    assert_eq!(store.dropped(), 7);
    eventually(Duration::from_secs(10), "failed writes", || async {
        (store.write_failures() >= 2).then_some(())
    })
    .await;
    assert_eq!(
        store.queue_depth(),
        4,
        "the records wait while the store is down"
    );
    s.restart().await;
    assert_eq!(store.flush(Duration::from_secs(20)).await, 0);
    let written = store.audit("c", Page::default()).await.unwrap();
    let at: Vec<i64> = written
        .iter()
        .map(|a| a.at_ms - 1_700_000_000_000)
        .collect();
    assert_eq!(at, [4, 3, 2, 1], "the first four, the oldest, were kept");
    assert_eq!(store.dropped(), 7);
    // Room again.
    assert!(store.enqueue(audit(11, "c")));
}

fn key_of(v: &serde_json::Value) -> InstanceKey {
    v.as_str()
        .unwrap_or_else(|| panic!("not an address: {v}"))
        .parse()
        .unwrap()
}

/// `line` without its terminal colours.
fn plain(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The number after `name=` in a log line.
fn field(line: &str, name: &str) -> u64 {
    let line = plain(line);
    let at = line
        .find(&format!("{name}="))
        .unwrap_or_else(|| panic!("no {name} in {line}"));
    line[at + name.len() + 1..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a number in {line}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_store_killed_during_a_failover_gets_the_recovery_when_it_returns() {
    let mut c = semi_sync_cluster(2).await;
    let keys: Vec<_> = c.instances.iter().map(|m| m.key()).collect();
    let mut s = StoreServer::start().await;
    let mut cmd = Standalone::command(
        std::path::Path::new(env!("CARGO_BIN_EXE_orca")),
        "stored",
        &keys,
    );
    cmd.args(["--store-dsn", &s.dsn("orca")])
        .env("ORCA_STORE_PASSWORD", s.password());
    let orca = Standalone::spawn(cmd);
    orca.logged("store ready").await;
    // The healthy topology reaches the store.
    eventually(
        Duration::from_secs(30),
        "the instances in the store",
        || async {
            let n = s
                .try_count(
                    "orca",
                    "SELECT COUNT(*) FROM instances WHERE cluster = 'stored' AND reachable",
                )
                .await?;
            (n == 3).then_some(())
        },
    )
    .await;
    assert!(
        !orca.logs().contains(&s.password()),
        "the store's password is in the log"
    );

    let w = Writer::start(&c.instances[0]).await;
    w.wait_acked(50).await;
    // The store dies first, then the primary.
    s.kill();
    c.instances[0].kill().unwrap();
    let record = orca.record(1, "the recovery").await;
    assert_eq!(record["outcome"]["result"], "succeeded", "{record:#}");
    assert_eq!(key_of(&record["failed"]), keys[0]);
    let new = key_of(&record["successor"]);
    assert!(keys[1..].contains(&new), "{record:#}");
    let acked = w.finish().await;
    let snap = snapshot(&new).await;
    assert!(
        !snap.is_read_only() && snap.replica.is_none(),
        "new primary writable, no replication left"
    );
    assert_acked(&new, &admin_credentials(), &acked).await;
    let other = keys[1..].iter().find(|k| **k != new).unwrap();
    wait_replicating_from(other, &new).await;

    // The record waits in the queue while the store is down.
    let id = record["id"].as_str().expect("an id").to_string();
    let queued = orca
        .wait_log(
            Duration::from_secs(10),
            &["operation record queued for the store", &id],
        )
        .await;
    assert!(field(&queued, "queue_depth") >= 1, "{queued}");
    orca.wait_log(Duration::from_secs(10), &["the store does not answer"])
        .await;
    assert_eq!(
        s.try_count("orca", "SELECT COUNT(*) FROM recoveries").await,
        None,
        "the store is down"
    );

    // The store returns: the recovery is there, with every step.
    s.restart().await;
    let steps =
        record["steps"].as_array().unwrap().len() + record["rollback"].as_array().unwrap().len();
    assert!(steps > 0, "{record:#}");
    let by_id = format!("recovery_id = '{id}'");
    eventually(
        Duration::from_secs(30),
        "the recovery in the store",
        || async {
            let n = s
                .try_count(
                    "orca",
                    &format!("SELECT COUNT(*) FROM recovery_steps WHERE {by_id}"),
                )
                .await?;
            (n == steps as u64).then_some(())
        },
    )
    .await;
    let row = s
        .column(
            "orca",
            &format!(
                "SELECT CONCAT_WS(' ', outcome, failed_instance, successor, cluster) FROM recoveries WHERE id = '{id}'"
            ),
        )
        .await;
    assert_eq!(
        row,
        [Some(format!("succeeded {} {new} stored", keys[0]))],
        "the recovery's row"
    );
    // Its findings and the instances after the failover came too.
    assert!(
        s.count(
            "orca",
            "SELECT COUNT(*) FROM findings WHERE cluster = 'stored' AND code = 'DeadPrimary'"
        )
        .await
            >= 1
    );
    eventually(Duration::from_secs(10), "the dead primary in the store", || async {
        let n = s
            .try_count(
                "orca",
                &format!(
                    "SELECT COUNT(*) FROM instances WHERE cluster = 'stored' AND instance = '{}' AND NOT reachable",
                    keys[0]
                ),
            )
            .await?;
        (n == 1).then_some(())
    })
    .await;
    let back = orca
        .wait_log(Duration::from_secs(10), &["the store answers again"])
        .await;
    assert_eq!(field(&back, "dropped"), 0, "{back}");
    let audit = s
        .column(
            "orca",
            "SELECT CONCAT_WS(' ', door, action, requested_by) FROM audit WHERE cluster = 'stored' ORDER BY at_ms",
        )
        .await;
    assert!(
        audit.contains(&Some("engine recover-dead-primary orca".into())),
        "{audit:?}"
    );
    assert!(
        audit.contains(&Some(format!(
            "cli standalone {}",
            orca::store::feed::local_user()
        ))),
        "{audit:?}"
    );

    // The acknowledgement a user sends (SIGUSR1) is audited, and written
    // on the recovery.
    orca.acknowledge();
    let by = eventually(Duration::from_secs(20), "the acknowledgement", || async {
        let ack = s
            .column(
                "orca",
                &format!("SELECT acknowledged_by FROM recoveries WHERE id = '{id}'"),
            )
            .await;
        ack.into_iter().next().flatten()
    })
    .await;
    assert!(by.contains("SIGUSR1"), "{by}");
    let acks = s
        .count(
            "orca",
            &format!(
                "SELECT COUNT(*) FROM audit WHERE door = 'signal' AND action = 'acknowledge' AND target = '{id}'"
            ),
        )
        .await;
    assert_eq!(acks, 1);

    // The killed primary comes back: the fence orca puts on it is an
    // operation too, with its steps.
    c.instances[0].restart().await.unwrap();
    orca.wait_log(
        Duration::from_secs(30),
        &["the former primary answers again", &keys[0].to_string()],
    )
    .await;
    let fence = eventually(Duration::from_secs(20), "the fence in the store", || async {
        s.column(
            "orca",
            &format!(
                "SELECT id FROM recoveries WHERE trigger_name = 'FormerPrimaryReturned' AND failed_instance = '{}'",
                keys[0]
            ),
        )
        .await
        .into_iter()
        .next()
        .flatten()
    })
    .await;
    assert!(
        s.count(
            "orca",
            &format!("SELECT COUNT(*) FROM recovery_steps WHERE recovery_id = '{fence}' AND outcome = 'done'")
        )
        .await
            > 0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_one_shot_operation_is_audited_with_its_record_and_a_dsn_with_a_password_is_refused() {
    let (c, keys) = primary_and_two_replicas().await;
    let s = StoreServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("store-password");
    std::fs::write(&pw, format!("{}\n", s.password())).unwrap();
    let pw = pw.display().to_string();
    let dsn = s.dsn("orca_cli");

    // A password in the DSN: refused before anything is done, and never
    // echoed.
    let with_password = dsn.replacen("@", ":hunter2@", 1);
    let (code, out, err) = orca(&[
        "graceful-takeover",
        "--seed",
        &keys[0].to_string(),
        "--store-dsn",
        &with_password,
    ]);
    assert_eq!(code, 2, "{err}{out}");
    assert!(err.contains("--store-password-file"), "{err}");
    assert!(
        !err.contains("hunter2") && !out.contains("hunter2"),
        "{err}{out}"
    );
    assert!(!snapshot(&keys[0]).await.is_read_only(), "nothing was done");

    let (code, out, err) = orca(&[
        "graceful-takeover",
        "--seed",
        &keys[0].to_string(),
        "--to",
        &keys[1].to_string(),
        "--cluster",
        "cli",
        "--store-dsn",
        &dsn,
        "--store-password-file",
        &pw,
    ]);
    assert_eq!(code, 0, "{err}{out}");
    assert!(!err.contains(&s.password()), "{err}");
    let audit = s
        .column(
            "orca_cli",
            "SELECT CONCAT_WS(' ', door, action, target) FROM audit WHERE cluster = 'cli'",
        )
        .await;
    assert_eq!(audit, [Some(format!("cli graceful-takeover {}", keys[1]))]);
    let recovery = s
        .column(
            "orca_cli",
            "SELECT CONCAT_WS(' ', kind, outcome, successor) FROM recoveries WHERE cluster = 'cli'",
        )
        .await;
    assert_eq!(
        recovery,
        [Some(format!("graceful-takeover succeeded {}", keys[1]))]
    );
    assert!(
        s.count("orca_cli", "SELECT COUNT(*) FROM recovery_steps")
            .await
            > 0
    );
    drop(c);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_store_orca_standalone_says_so_once_and_runs() {
    let c = orca_sandbox::LocalCluster::start(orca_sandbox::Shape::primary_with_replicas(1))
        .await
        .unwrap();
    let keys: Vec<_> = c.instances.iter().map(|m| m.key()).collect();
    let mut orca = Standalone::start("nostore", &keys);
    orca.logged("orca standalone started").await;
    orca.logged("no store (--store-dsn)").await;
    // A few rounds (one a second) later, the line was not said again.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert!(orca.child.try_wait().unwrap().is_none(), "orca stopped");
    let (log, _) = orca.stop();
    assert_eq!(log.matches("no store (--store-dsn)").count(), 1, "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_the_store_refuses_is_dropped_alone_and_counted() {
    let s = StoreServer::start().await;
    let store = Store::open(s.config("orca_refused")).await.expect("open");
    store.enqueue(audit(1, "c"));
    // Longer than the column: the server refuses it (strict mode), batch
    // after batch; the records around it are written.
    let Record::Audit(mut bad) = audit(2, "c") else {
        unreachable!()
    };
    bad.target = Some("x".repeat(300));
    store.enqueue(Record::Audit(bad));
    store.enqueue(audit(3, "c"));
    assert_eq!(store.flush(Duration::from_secs(20)).await, 0);
    assert_eq!(store.dropped(), 1);
    assert!(store.write_failures() >= 1);
    let at: Vec<i64> = store
        .audit("c", Page::default())
        .await
        .unwrap()
        .iter()
        .map(|a| a.at_ms - 1_700_000_000_000)
        .collect();
    assert_eq!(at, [3, 1]);
}
