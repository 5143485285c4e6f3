//! Lag from orca's heartbeat row: below a second of resolution, and still
//! counting while a replica's SQL thread is stopped (when
//! Seconds_Behind_Master says nothing).

mod support;

use std::time::Duration;

use orca::mysql::conn::{Timeouts, connect};
use orca::mysql::heartbeat;
use orca_sandbox::mysqld::admin_credentials;

use support::*;

#[tokio::test(flavor = "multi_thread")]
async fn heartbeat_lag_of_a_stalled_replica() {
    let (c, [p, r1, r2]) = primary_and_two_replicas().await;
    let limit = Duration::from_secs(2);
    let mut conn = connect(&p, &admin_credentials(), Timeouts::default())
        .await
        .unwrap();
    heartbeat::ensure_table(&mut conn, &p, limit).await.unwrap();
    heartbeat::write(&mut conn, &p, limit).await.unwrap();
    eventually(Duration::from_secs(10), "heartbeat replicated", || async {
        let r = discover_json(&p);
        let lag = |k| instance(&r, k)["lag_seconds"].as_f64();
        (lag(&r1).is_some() && lag(&r2).is_some()).then_some(())
    })
    .await;
    c.instances[1].exec("STOP SLAVE SQL_THREAD").await.unwrap();
    // Heartbeats every 100 ms for 1.5 s: r2 follows, r1 does not.
    for _ in 0..15 {
        heartbeat::write(&mut conn, &p, limit).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    heartbeat::write(&mut conn, &p, limit).await.unwrap();
    let report = discover_json(&p);
    let lag1 = instance(&report, &r1)["lag_seconds"]
        .as_f64()
        .expect("heartbeat lag while stalled");
    assert!(lag1 >= 1.2, "stalled replica lag {lag1}");
    let lag2 = instance(&report, &r2)["lag_seconds"].as_f64().unwrap();
    assert!(
        lag2 < lag1,
        "following replica lag {lag2} vs stalled {lag1}"
    );
    assert!(problems(&report, &r1).contains(&"SqlThreadStopped".to_string()));
    let (code, out, err) = orca(&[
        "discover",
        "--seed",
        &p.to_string(),
        "--max-lag",
        "1",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let strict: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        problems(&strict, &r1).contains(&"ReplicaLagging".to_string()),
        "{strict:#}"
    );
}
