//! The bootstrap plan run by the executor on real mariadbd servers, as
//! the operator runs it: three read-only servers with no replication; a
//! leader fence that refuses changes nothing; the leader's run makes the
//! accounts (the replication account and the application's, from the
//! executor's configuration), records the epoch, turns the primary side
//! of semi-sync on under MariaDB's names and clears read_only last; the
//! replicas then join with the new replication account, and the
//! application account writes to its databases through semi-sync
//! replication, and nowhere else.

mod support;

use std::time::{Duration, Instant};

use orca::engine::executor::{OperationMeta, Outcome, StepOutcome, Stopped};
use orca::ha::{Fence, Leadership, read_epoch};
use orca::mysql::conn::{Timeouts, connect, exec, query_rows};
use orca::mysql::{Credentials, MysqlError};
use orca::plan::bootstrap::{BootstrapOptions, app_account, bootstrap};
use orca::plan::membership::join_members;
use orca::plan::{PlanKind, Step};
use orca::topology::InstanceKey;
use orca_sandbox::mysqld::admin_credentials;
use orca_sandbox::{LocalCluster, Shape};
use support::*;
use tokio::sync::watch;

/// Accounts the servers do not have yet (the sandbox's own are others).
fn repl() -> Credentials {
    Credentials::new("boot_repl", "boot-repl-'pw")
}

fn app() -> Credentials {
    Credentials::new("shop_app", "shop-app-\\pw")
}

fn databases() -> Vec<String> {
    vec!["shop".into(), "shop_2".into()]
}

fn meta(trigger: &str) -> OperationMeta {
    OperationMeta {
        id: format!("test-{trigger}"),
        cluster: "test".into(),
        trigger: trigger.into(),
    }
}

async fn scalar(key: &InstanceKey, creds: &Credentials, sql: &str) -> Option<String> {
    let mut conn = connect(key, creds, Timeouts::default())
        .await
        .unwrap_or_else(|e| panic!("connect to {key}: {e}"));
    let rows = query_rows(&mut conn, key, Duration::from_secs(5), "a test query", sql)
        .await
        .unwrap_or_else(|e| panic!("{sql} on {key}: {e}"));
    let _ = conn.disconnect().await;
    rows.into_iter()
        .next()
        .and_then(|r| r.into_values().next())
        .flatten()
}

/// Like [`scalar`], `None` on an error (a table not replicated yet).
async fn try_scalar(key: &InstanceKey, creds: &Credentials, sql: &str) -> Option<String> {
    let mut conn = connect(key, creds, Timeouts::default()).await.ok()?;
    let rows = query_rows(&mut conn, key, Duration::from_secs(5), "a test query", sql).await;
    let _ = conn.disconnect().await;
    rows.ok()?
        .into_iter()
        .next()
        .and_then(|r| r.into_values().next())
        .flatten()
}

async fn run(key: &InstanceKey, creds: &Credentials, sql: &str) -> Result<(), MysqlError> {
    let mut conn = connect(key, creds, Timeouts::default()).await?;
    let r = exec(
        &mut conn,
        key,
        Duration::from_secs(20),
        "a test statement",
        sql,
    )
    .await;
    let _ = conn.disconnect().await;
    r
}

async fn accounts_on(key: &InstanceKey) -> String {
    scalar(
        key,
        &admin_credentials(),
        "SELECT COUNT(*) FROM mysql.user WHERE user IN ('boot_repl', 'shop_app')",
    )
    .await
    .unwrap_or_default()
}

async fn variable(key: &InstanceKey, name: &str) -> String {
    scalar(
        key,
        &admin_credentials(),
        &format!("SELECT @@GLOBAL.{name}"),
    )
    .await
    .unwrap_or_default()
}

async fn epoch_on(key: &InstanceKey) -> Option<i64> {
    let mut conn = connect(key, &admin_credentials(), Timeouts::default())
        .await
        .expect("connect");
    let e = read_epoch(&mut conn, key, Duration::from_secs(3))
        .await
        .expect("read the epoch");
    let _ = conn.disconnect().await;
    e
}

#[tokio::test(flavor = "multi_thread")]
async fn bootstrap_through_the_executor() {
    let c = LocalCluster::start_with(Shape::parse("-,-,-").expect("shape"), |_, mut o| {
        o.read_only = true;
        o.with_semi_sync()
    })
    .await
    .expect("three servers");
    let keys: Vec<InstanceKey> = c.instances.iter().map(|m| m.key()).collect();
    let [p, r1, r2] = [0, 1, 2].map(|i| keys[i].clone());
    let mut e = engine(&c);
    e.executor.config.repl = repl();
    e.executor.config.app = Some(app());
    e.round().await;
    let opts = BootstrapOptions {
        semi_sync: Some(1),
        app_databases: Some(databases()),
    };
    let b = bootstrap(e.topology(), &keys, &opts).expect("a bootstrap");
    assert!(!b.adopted);
    assert_eq!(b.primary, p);
    let plan = b.plan;
    assert_eq!(plan.kind, PlanKind::Bootstrap);
    // The plan's text, logged and recorded, names no password.
    let shown = format!("{plan}{}", serde_json::to_string(&plan).expect("json"));
    for secret in [repl().password(), app().password(), "boot-repl", "shop-app"] {
        assert!(!shown.contains(secret), "{shown}");
    }

    // A replica of orca that is not the leader changes nothing: it stops
    // before the first step.
    let (_follower, rx) = watch::channel(Leadership::Follower {
        holder: Some("orca-1".into()),
    });
    e.executor.set_fence(Some(Fence::new(rx)));
    let record = e.executor.execute(&plan, &meta("bootstrap-deposed")).await;
    assert_eq!(
        record.outcome,
        Outcome::Deposed(Stopped {
            index: 0,
            rollback: false,
            step: plan.steps[0].to_string(),
            reason: "not the leader (the lease is held by orca-1)".into(),
        }),
        "{record:#?}"
    );
    assert!(record.steps.is_empty(), "{record:#?}");
    assert_eq!(accounts_on(&p).await, "0");
    assert_eq!(variable(&p, "read_only").await, "1");
    assert_eq!(variable(&p, "rpl_semi_sync_master_enabled").await, "0");
    assert_eq!(epoch_on(&p).await, None);
    assert!(
        scalar(&p, &admin_credentials(), "SHOW DATABASES LIKE 'shop'")
            .await
            .is_none()
    );

    // The leader's run.
    let (_leader, rx) = watch::channel(Leadership::Leader {
        epoch: 4,
        valid_until: Instant::now() + Duration::from_secs(600),
    });
    e.executor.set_fence(Some(Fence::new(rx)));
    let record = e.executor.execute(&plan, &meta("bootstrap")).await;
    assert_eq!(record.outcome, Outcome::Succeeded, "{record:#?}");
    let ran: Vec<&Step> = record.steps.iter().map(|s| &s.step).collect();
    assert_eq!(
        ran,
        vec![
            &Step::EnsureReplicationAccount { on: p.clone() },
            &Step::EnsureAppAccount {
                on: p.clone(),
                databases: databases(),
            },
            &Step::RecordEpoch { on: p.clone() },
            &Step::SetSemiSyncPrimary {
                on: p.clone(),
                enabled: true,
                wait_count: 1,
            },
            &Step::SetReadOnly {
                on: p.clone(),
                read_only: false,
            },
        ]
    );
    assert!(
        record.steps.iter().all(|s| s.outcome == StepOutcome::Done),
        "{record:#?}"
    );
    let recorded = serde_json::to_string(&record).expect("json");
    for secret in [repl().password(), app().password()] {
        assert!(!recorded.contains(secret), "{recorded}");
    }
    assert_eq!(epoch_on(&p).await, Some(4));
    assert_eq!(variable(&p, "read_only").await, "0");
    // MariaDB's name of the primary side, and the timeout that never
    // falls back to asynchronous replication.
    assert_eq!(variable(&p, "rpl_semi_sync_master_enabled").await, "1");
    assert_eq!(
        variable(&p, "rpl_semi_sync_master_timeout").await,
        orca::mysql::dialect::semi_sync_timeout_max_ms(orca::topology::Flavor::MariaDb).to_string()
    );
    // The application account: every privilege on its databases, no
    // global one.
    let grants = {
        let mut conn = connect(&p, &app(), Timeouts::default())
            .await
            .expect("the application account connects");
        let rows = query_rows(
            &mut conn,
            &p,
            Duration::from_secs(5),
            "grants",
            "SHOW GRANTS",
        )
        .await
        .expect("grants");
        let _ = conn.disconnect().await;
        rows.into_iter()
            .filter_map(|r| r.into_values().next().flatten())
            .collect::<Vec<_>>()
    };
    assert_eq!(grants.len(), 3, "{grants:#?}");
    assert!(
        grants[0].starts_with("GRANT USAGE ON *.* TO `shop_app`@`%`"),
        "{grants:#?}"
    );
    assert!(
        grants
            .iter()
            .any(|g| g == "GRANT ALL PRIVILEGES ON `shop`.* TO `shop_app`@`%`"),
        "{grants:#?}"
    );
    assert!(
        grants
            .iter()
            .any(|g| g == "GRANT ALL PRIVILEGES ON `shop\\_2`.* TO `shop_app`@`%`"),
        "{grants:#?}"
    );

    // The replicas join with the new replication account.
    e.round().await;
    let members = keys.iter().cloned().collect();
    let joining = join_members(e.topology(), &p, &members, &Default::default());
    assert!(joining.unjoinable.is_empty(), "{:?}", joining.unjoinable);
    let record = e.executor.execute(&joining.plan, &meta("join")).await;
    assert_eq!(record.outcome, Outcome::Succeeded, "{record:#?}");
    for r in [&r1, &r2] {
        wait_replicating_from(r, &p).await;
        let s = snapshot(r).await;
        assert!(s.is_read_only(), "{s:#?}");
        let mut conn = connect(r, &admin_credentials(), Timeouts::default())
            .await
            .expect("connect");
        let status = query_rows(
            &mut conn,
            r,
            Duration::from_secs(5),
            "replica status",
            "SHOW SLAVE STATUS",
        )
        .await
        .expect("replica status");
        let _ = conn.disconnect().await;
        let user = status
            .first()
            .and_then(|row| row.get("Master_User").cloned().flatten());
        assert_eq!(user.as_deref(), Some("boot_repl"), "{r}");
    }

    // The application writes on the primary (acknowledged by a semi-sync
    // replica: the write returns), and its rows reach both replicas.
    let write = tokio::time::timeout(Duration::from_secs(30), async {
        run(
            &p,
            &app(),
            "CREATE TABLE shop.t (id INT PRIMARY KEY, v VARCHAR(10))",
        )
        .await?;
        run(&p, &app(), "INSERT INTO shop.t VALUES (1, 'a'), (2, 'b')").await
    })
    .await
    .expect("the writes are acknowledged");
    write.expect("the application writes its database");
    for r in [&r1, &r2] {
        eventually(Duration::from_secs(20), "the rows replicated", || async {
            (try_scalar(r, &admin_credentials(), "SELECT COUNT(*) FROM shop.t")
                .await
                .as_deref()
                == Some("2"))
            .then_some(())
        })
        .await;
    }
    let acknowledged = scalar(
        &p,
        &admin_credentials(),
        "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
         WHERE VARIABLE_NAME = 'RPL_SEMI_SYNC_MASTER_YES_TX'",
    )
    .await
    .and_then(|v| v.parse::<u64>().ok())
    .unwrap_or(0);
    assert!(
        acknowledged >= 2,
        "{acknowledged} acknowledged transactions"
    );
    // Nowhere else: no other database, and not on a read-only replica.
    let other = run(&p, &app(), "CREATE DATABASE elsewhere").await;
    assert_eq!(
        other.as_ref().err().and_then(MysqlError::server_code),
        Some(1044),
        "{other:?}"
    );
    let on_replica = run(&r1, &app(), "INSERT INTO shop.t VALUES (3, 'c')").await;
    assert_eq!(
        on_replica.as_ref().err().and_then(MysqlError::server_code),
        Some(1290),
        "read_only refuses it: {on_replica:?}"
    );

    // The application account alone, as the operator keeps it: a new
    // database is granted; without an account configured the step fails
    // and says so.
    let plan = app_account(&p, &["shop".into(), "shop_2".into(), "more".into()]);
    let record = e.executor.execute(&plan, &meta("app-account")).await;
    assert_eq!(record.outcome, Outcome::Succeeded, "{record:#?}");
    run(&p, &app(), "CREATE TABLE more.t (id INT PRIMARY KEY)")
        .await
        .expect("the new database is the application's");
    e.executor.config.app = None;
    let record = e.executor.execute(&plan, &meta("no-app-account")).await;
    assert_eq!(
        record.outcome,
        Outcome::Failed("step 1 failed: no application account is configured".into()),
        "{record:#?}"
    );
}
