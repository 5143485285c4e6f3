//! kill -9 of the primary of an asynchronous cluster with writes in
//! flight, on real mariadbd: the recovery record names the transactions
//! that may be lost, and they are exactly the ones missing on the new
//! primary.
//!
//! The guarantee checked: the record names every transaction the dead
//! primary's last seen position (its last probe) had that the successor
//! lacks, and nothing the successor has. A write acknowledged after that
//! probe is not known to orca; here none is (every acknowledged write
//! precedes the last probe), so the acknowledged writes missing on the
//! successor are exactly those of the named transactions. Transactions
//! orca itself writes after that probe (its heartbeat row) are lost with
//! the primary and not named.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use orca::engine::executor::Outcome;
use orca::engine::hooks::{HookTarget, Hooks};
use orca::plan::HookEvent;
use orca::topology::InstanceKey;
use orca_sandbox::mysqld::{admin_credentials, app_credentials};
use orca_sandbox::{LocalCluster, Shape};
use support::writer::{Writer, ids_on};
use support::*;

/// One transaction of a binary log: its GTID, the statements logged for
/// it (the row events' annotations), and the id an application write
/// inserted into `app.w`.
#[derive(Debug, Clone)]
struct Txn {
    gtid: String,
    statements: Vec<String>,
    app_id: Option<u64>,
}

/// The id a writer's `INSERT INTO app.w (id) VALUES (N)` inserted.
fn app_id(statement: &str) -> Option<u64> {
    let rest = statement.split("INSERT INTO app.w (id) VALUES (").nth(1)?;
    rest.split(')').next()?.trim().parse().ok()
}

/// The GTID a `Gtid` event's Info names (`BEGIN GTID 0-1-5`, `GTID 0-1-3`,
/// perhaps followed by a commit id).
fn gtid_of(info: &str) -> Option<String> {
    let rest = info.split("GTID ").nth(1)?;
    rest.split_whitespace().next().map(String::from)
}

/// Every transaction in the binary logs of `key`, in order.
async fn binlog(key: &InstanceKey) -> Vec<Txn> {
    let mut conn = orca::mysql::connect(key, &admin_credentials(), Default::default())
        .await
        .unwrap_or_else(|e| panic!("connect to {key}: {e}"));
    let files: Vec<mysql_async::Row> = conn.query("SHOW BINARY LOGS").await.unwrap();
    let mut txns: Vec<Txn> = Vec::new();
    for f in files {
        let name: String = f.get(0).unwrap();
        let events: Vec<mysql_async::Row> = conn
            .query(format!("SHOW BINLOG EVENTS IN '{name}'"))
            .await
            .unwrap();
        for ev in events {
            let kind: String = ev.get("Event_type").unwrap();
            let info: String = ev.get("Info").unwrap_or_default();
            match kind.as_str() {
                "Gtid" => txns.push(Txn {
                    gtid: gtid_of(&info).unwrap_or_else(|| panic!("GTID event: {info}")),
                    statements: Vec::new(),
                    app_id: None,
                }),
                "Annotate_rows" | "Query" => {
                    if let Some(t) = txns.last_mut() {
                        if t.app_id.is_none() {
                            t.app_id = app_id(&info);
                        }
                        t.statements.push(info);
                    }
                }
                _ => {}
            }
        }
    }
    let _ = conn.disconnect().await;
    txns
}

/// `gtid_binlog_pos` of `key`.
async fn binlog_pos(key: &InstanceKey) -> String {
    let mut conn = orca::mysql::connect(key, &admin_credentials(), Default::default())
        .await
        .unwrap_or_else(|e| panic!("connect to {key}: {e}"));
    let pos: Option<String> = conn
        .query_first("SELECT @@GLOBAL.gtid_binlog_pos")
        .await
        .unwrap();
    let _ = conn.disconnect().await;
    pos.unwrap_or_default()
}

/// The GTIDs a MariaDB lost-transactions text names: one
/// `domain-server_id-first..last` or `domain-server_id-seq` per domain.
fn named_gtids(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let mut f = part.splitn(3, '-');
        let (d, s, seqs) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
        let (first, last) = match seqs.split_once("..") {
            Some((a, b)) => (a.parse::<u64>().unwrap(), b.parse::<u64>().unwrap()),
            None => {
                let n = seqs.parse::<u64>().unwrap();
                (n, n)
            }
        };
        out.extend((first..=last).map(|n| format!("{d}-{s}-{n}")));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_of_an_async_primary_names_exactly_the_lost_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let payload = dir.path().join("post.json");
    let env_file = dir.path().join("post.env");
    let mut hooks = Hooks::default();
    hooks.add(
        HookEvent::PostFailover,
        HookTarget::Command {
            command: format!(
                "cat > {}; printf %s \"$ORCA_LOST_TRANSACTIONS\" > {}",
                payload.display(),
                env_file.display()
            ),
            timeout: Duration::from_secs(5),
        },
    );
    let mut c = LocalCluster::start(Shape::primary_with_replicas(2))
        .await
        .expect("start an asynchronous primary with two replicas");
    let keys: Vec<_> = c.instances.iter().map(|m| m.key()).collect();
    let mut e = engine_with(&c, hooks, |_| {});
    let first = e.round().await;
    assert!(first.findings.is_empty(), "{:?}", first.findings);

    // Writes that reach the replicas...
    let w = Writer::start(&c.instances[0]).await;
    w.wait_acked(30).await;
    for k in &keys[1..] {
        eventually(Duration::from_secs(20), "writes replicated", || async {
            (ids_on(k, &admin_credentials()).await.len() >= 20).then_some(())
        })
        .await;
    }
    // ...then writes the primary acknowledges and no replica receives.
    for m in &c.instances[1..] {
        m.exec("STOP SLAVE IO_THREAD").await.unwrap();
    }
    let n = w.count();
    w.wait_acked(n + 40).await;
    // The writers stay in flight, held by a table lock: every write
    // acknowledged so far is committed, and no other will be.
    let mut lock = orca::mysql::connect(&keys[0], &admin_credentials(), Default::default())
        .await
        .unwrap();
    lock.query_drop("LOCK TABLES app.w WRITE").await.unwrap();
    let committed: u64 = lock
        .query_first("SELECT COUNT(*) FROM app.w")
        .await
        .unwrap()
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "every committed write acknowledged",
        || async { (w.count() as u64 == committed).then_some(()) },
    )
    .await;
    // The engine's last probe of the primary: it covers every
    // acknowledged write.
    let seen = e.round().await;
    assert!(seen.recovery.is_none(), "{:?}", seen.recovery);
    let last_seen = e.inventory.known[&keys[0]]
        .last_snapshot
        .as_ref()
        .and_then(|s| s.gtid.executed.clone())
        .expect("the primary's executed GTIDs at its last probe");
    c.instances[0].kill().unwrap();
    drop(lock);
    // The replicas try their source again and find it dead.
    for m in &c.instances[1..] {
        m.exec("START SLAVE IO_THREAD").await.unwrap();
    }
    let record = rounds_until(&mut e, Duration::from_secs(60), "a recovery", |r| {
        r.recovery.clone()
    })
    .await;
    assert_eq!(record.outcome, Outcome::Succeeded, "{record:#?}");
    assert_eq!(record.failed.as_ref(), Some(&keys[0]));
    let new = record.successor.clone().expect("successor");
    assert!(keys[1..].contains(&new), "{record:#?}");
    let acked: BTreeSet<u64> = w.finish().await.into_iter().collect();
    assert_eq!(acked.len() as u64, committed);
    let lost = record
        .lost_transactions
        .clone()
        .unwrap_or_else(|| panic!("no possibly lost transactions named: {record:#?}"));
    assert!(
        record.notes.iter().any(|n| n
            .contains(&format!("possibly lost: {} transaction(s)", lost.count))
            && n.contains(&lost.gtids)),
        "{:?}",
        record.notes
    );
    let named = named_gtids(&lost.gtids);
    assert_eq!(named.len() as u64, lost.count, "{}", lost.gtids);

    // The old primary comes back: the engine fences it, writes nothing on
    // it (not even its heartbeat), and it does not rejoin.
    c.instances[0].restart().await.unwrap();
    let returned = binlog_pos(&keys[0]).await;
    rounds_until(
        &mut e,
        Duration::from_secs(20),
        "the old primary fenced",
        |r| r.fenced.contains(&keys[0]).then_some(()),
    )
    .await;
    let old_snap = snapshot(&keys[0]).await;
    assert!(
        old_snap.is_read_only() && old_snap.replica.is_none(),
        "{old_snap:#?}"
    );
    e.round().await;
    assert_eq!(
        binlog_pos(&keys[0]).await,
        returned,
        "orca wrote on the fenced former primary"
    );

    // What each server really holds.
    let old = binlog(&keys[0]).await;
    let succ: BTreeSet<String> = binlog(&new).await.into_iter().map(|t| t.gtid).collect();
    let by_gtid: BTreeMap<&str, &Txn> = old.iter().map(|t| (t.gtid.as_str(), t)).collect();
    for g in &named {
        assert!(
            by_gtid.contains_key(g.as_str()),
            "{g} is named as lost but is not in the old primary's binlog"
        );
        assert!(
            !succ.contains(g),
            "{g} is named as lost but the successor {new} has it"
        );
    }
    // The old primary's transactions the successor lacks: the named ones,
    // and after them only orca's own heartbeat of its last round.
    let gap: Vec<&Txn> = old.iter().filter(|t| !succ.contains(&t.gtid)).collect();
    let unnamed: Vec<&&Txn> = gap.iter().filter(|t| !named.contains(&t.gtid)).collect();
    for t in &unnamed {
        assert!(
            t.app_id.is_none()
                && t.statements
                    .iter()
                    .all(|s| s.contains("orca_meta.heartbeat")),
            "a transaction the successor lacks is not named, and is not orca's heartbeat: {t:?}; named: {}",
            lost.gtids
        );
    }
    assert!(
        unnamed.len() <= 1,
        "more than the heartbeat of orca's last round before the kill: {unnamed:?}"
    );
    // The same set as the engine's last seen position minus the successor.
    let expected: BTreeSet<String> = gap
        .iter()
        .filter(|t| {
            let g =
                orca::topology::GtidSet::parse(orca::topology::Flavor::MariaDb, &t.gtid).unwrap();
            last_seen.contains(&g) == Some(true)
        })
        .map(|t| t.gtid.clone())
        .collect();
    assert_eq!(
        named, expected,
        "named vs last seen ({last_seen}) minus the successor"
    );

    // Acknowledged writes: all on the old primary, every committed write
    // was acknowledged, and the ones missing on the successor are exactly
    // those of the named transactions.
    let on_old: BTreeSet<u64> = old.iter().filter_map(|t| t.app_id).collect();
    assert_eq!(
        on_old, acked,
        "the old primary's writes vs the acknowledged ones"
    );
    let on_new = ids_on(&new, &app_credentials()).await;
    let missing: BTreeSet<u64> = acked.difference(&on_new).copied().collect();
    let named_ids: BTreeSet<u64> = named
        .iter()
        .filter_map(|g| by_gtid[g.as_str()].app_id)
        .collect();
    assert!(
        !missing.is_empty(),
        "nothing was lost: the test proves nothing"
    );
    assert_eq!(
        missing, named_ids,
        "acknowledged writes missing on {new} vs the writes of {}",
        lost.gtids
    );
    assert!(
        on_new.is_subset(&acked),
        "the successor holds writes never acknowledged"
    );
    eprintln!(
        "acknowledged {}, on the successor {}, lost {} (in {} named transactions: {}); \
         {} unnamed heartbeat transaction(s) after the last probe",
        acked.len(),
        on_new.len(),
        missing.len(),
        named.len(),
        lost.gtids,
        unnamed.len()
    );

    // The post-failover hook got the same set, as JSON and in the
    // environment.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&payload).unwrap()).unwrap();
    assert_eq!(json["event"], "postFailover");
    assert_eq!(json["lostTransactions"], lost.gtids.as_str());
    assert_eq!(std::fs::read_to_string(&env_file).unwrap(), lost.gtids);
}
