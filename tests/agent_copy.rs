//! The orca agent's physical copy, on real `mariadbd` and the real
//! `mariadb-backup`/`mbstream`: `orca agent serve` on a healthy replica
//! streams its backup while the primary takes writes; `orca agent init`
//! on a stopped replica holding an errant transaction tries a source
//! that does not answer and one whose stream is cut part way (each fails
//! cleanly, the data directory untouched), then copies from the healthy
//! one, prepares and swaps it in. The server started on the copy has
//! none of its errant write, joins the primary from the copy's GTID
//! position and ends with every row the primary has. A diverged server's
//! tail (its events after the other's position) is saved to its data
//! directory with a record, and refused without the token.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use orca::agent::client::AgentClient;
use orca::agent::{Arming, CopyProgress, Files, MARKER, PROGRESS, PROVISIONED, Provisioned};
use orca_sandbox::mysqld::{ADMIN_USER, admin_credentials, app_credentials};
use support::{eventually, primary_and_two_replicas, snapshot, wait_replicating_from};

const TOKEN: &str = "agent-test-token";

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn agent_serve(datadir: &std::path::Path, ip: std::net::Ipv4Addr) -> Agent {
    let child = Command::new(env!("CARGO_BIN_EXE_orca"))
        .args(["agent", "serve", "--mysql-user", ADMIN_USER, "--datadir"])
        .arg(datadir)
        .env("ORCA_AGENT_TOKEN", TOKEN)
        .env("MARIADB_ROOT_PASSWORD", admin_credentials().password())
        .env("POD_IP", ip.to_string())
        .env("ORCA_LOG", "info")
        .stderr(Stdio::null())
        .spawn()
        .expect("start orca agent serve");
    Agent(child)
}

/// A source that answers a backup request with a chunked body cut short:
/// some bytes, then the connection closed without the last chunk.
fn cut_source() -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let at = l.local_addr().expect("addr").to_string();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: application/octet-stream\r\n\r\n10\r\nXBSTCK01XBSTCK01\r\n",
            );
            let _ = s.flush();
        }
    });
    at
}

async fn query_one(key: &orca::topology::InstanceKey, sql: &str) -> String {
    use mysql_async::prelude::Queryable;
    let mut c = orca::mysql::conn::connect(
        key,
        &admin_credentials(),
        orca::mysql::conn::Timeouts::default(),
    )
    .await
    .expect("connect");
    let v: Option<String> = c.query_first(sql).await.expect(sql);
    let _ = c.disconnect().await;
    v.unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_is_reprovisioned_by_physical_copy_while_the_primary_takes_writes() {
    let (mut c, [p, healthy, target]) = primary_and_two_replicas().await;
    c.instances[0]
        .exec("CREATE DATABASE IF NOT EXISTS app; CREATE TABLE app.rows (id INT PRIMARY KEY, v VARCHAR(64)) ENGINE=InnoDB; INSERT INTO app.rows SELECT seq, REPEAT('x', 60) FROM test.seq_1_to_20000")
        .await
        .unwrap_or_else(|e| panic!("seed rows: {e}"));
    eventually(
        Duration::from_secs(20),
        "the replicas caught up",
        || async {
            let n = query_one(&target, "SELECT COUNT(*) FROM app.rows").await;
            let m = query_one(&healthy, "SELECT COUNT(*) FROM app.rows").await;
            (n == "20000" && m == "20000").then_some(())
        },
    )
    .await;
    // An errant write on the target, as root would make it.
    c.instances[2]
        .exec("SET GLOBAL read_only = OFF; INSERT INTO app.rows VALUES (99999999, 'errant'); SET GLOBAL read_only = ON")
        .await
        .unwrap_or_else(|e| panic!("errant write: {e}"));
    assert_eq!(
        query_one(&target, "SELECT COUNT(*) FROM app.rows WHERE v = 'errant'").await,
        "1"
    );

    let _serving = agent_serve(&c.instances[1].data_dir(), c.instances[1].ip());
    let healthy_agent = format!("{}:{}", c.instances[1].ip(), orca::agent::PORT);
    wait_serving(&healthy_agent).await;

    // The target's own agent arms its re-provisioning, as the operator
    // asks it to; a wrong token is refused.
    let target_agent = format!("{}:{}", c.instances[2].ip(), orca::agent::PORT);
    let client = AgentClient::new(TOKEN).expect("client");
    let sources = vec![
        "127.0.0.1:1".to_string(),
        cut_source(),
        healthy_agent.clone(),
    ];
    {
        let _target_serving = agent_serve(&c.instances[2].data_dir(), c.instances[2].ip());
        wait_serving(&target_agent).await;
        let wrong = AgentClient::new("wrong").expect("client");
        let refused = wrong
            .arm(&target_agent, "copy-1", &sources, Duration::from_secs(300))
            .await;
        assert!(refused.is_err_and(|e| e.to_string().contains("403")));
        let armed = client
            .arm(&target_agent, "copy-1", &sources, Duration::from_secs(300))
            .await
            .expect("arm");
        assert_eq!(armed.sources, sources);
        let state = client.state(&target_agent).await.expect("state");
        assert_eq!(state.armed, Some(armed));
        assert_eq!(state.mode, "serve");
    }
    c.instances[2].stop().await.expect("stop the target");
    let datadir = c.instances[2].data_dir();
    let files = Files::new(&datadir);
    let before = support::listing(&datadir);

    // Writes go on at the primary during the copy, as the application
    // account.
    let writing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let writer = {
        let writing = writing.clone();
        let primary = p.clone();
        tokio::spawn(async move {
            use mysql_async::prelude::Queryable;
            let mut conn = orca::mysql::conn::connect(
                &primary,
                &app_credentials(),
                orca::mysql::conn::Timeouts::default(),
            )
            .await
            .expect("writer connects");
            let mut id = 100_000;
            while writing.load(std::sync::atomic::Ordering::Relaxed) {
                id += 1;
                conn.query_drop(format!("INSERT INTO app.rows VALUES ({id}, 'during')"))
                    .await
                    .expect("a write during the copy");
            }
            id - 100_000
        })
    };

    let out = tokio::task::spawn_blocking({
        let datadir = datadir.clone();
        let listen = format!("{}:{}", c.instances[2].ip(), orca::agent::PORT);
        move || {
            Command::new(env!("CARGO_BIN_EXE_orca"))
                .args([
                    "agent",
                    "init",
                    "--stall",
                    "10s",
                    "--listen",
                    &listen,
                    "--datadir",
                ])
                .arg(&datadir)
                .env("ORCA_AGENT_TOKEN", TOKEN)
                .env("ORCA_LOG", "info")
                .output()
                .expect("run orca agent init")
        }
    })
    .await
    .expect("join");
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "agent init failed:\n{log}");
    writing.store(false, std::sync::atomic::Ordering::Relaxed);
    let written = writer.await.expect("writer");
    assert!(written > 0, "the primary took writes during the copy");

    // The failed sources were tried first, each failure clean.
    assert!(log.contains("127.0.0.1:1"), "{log}");
    assert!(log.contains("broke"), "the cut stream is an error:\n{log}");
    let progress: CopyProgress = files.read(PROGRESS).expect("progress");
    assert_eq!(progress.attempt, 3, "{progress:?}");
    assert_eq!(progress.source, healthy_agent);
    assert!(progress.bytes > 1_000_000, "{progress:?}");
    let done: Provisioned = files.read(PROVISIONED).expect("the copy's result");
    assert_eq!(done.id, "copy-1");
    eprintln!(
        "copied {} bytes in {:.2} s ({} B/s); {written} writes at the primary meanwhile",
        done.bytes, done.seconds, progress.rate
    );
    assert!(
        files.read::<Arming>(MARKER).is_none(),
        "the arming is removed"
    );
    assert!(!datadir.join(orca::agent::STAGING).exists());
    assert_ne!(support::listing(&datadir), before);

    // The server starts on the copy: the errant write is gone.
    c.instances[2].restart().await.expect("start on the copy");
    assert_eq!(
        query_one(&target, "SELECT COUNT(*) FROM app.rows WHERE v = 'errant'").await,
        "0"
    );
    // It joins the primary from the copy's position and catches up.
    c.instances[2]
        .exec(&format!("SET GLOBAL gtid_slave_pos = '{}'", done.gtid))
        .await
        .unwrap_or_else(|e| panic!("set the position: {e}"));
    c.replicate(2, 0).await.expect("replicate from the primary");
    wait_replicating_from(&target, &p).await;
    let want = query_one(&p, "SELECT COUNT(*) FROM app.rows").await;
    eventually(Duration::from_secs(30), "the copy caught up", || async {
        (query_one(&target, "SELECT COUNT(*) FROM app.rows").await == want).then_some(())
    })
    .await;
    let s = snapshot(&target).await;
    let r = s.replica.expect("replicating");
    assert!(r.is_replicating(), "{r:?}");
    assert_eq!(r.last_sql_errno, 0, "{}", r.last_sql_error);
    // The operator forgets the copy's result once joined.
    let _target_serving = agent_serve(&c.instances[2].data_dir(), c.instances[2].ip());
    wait_serving(&target_agent).await;
    let state = client.state(&target_agent).await.expect("state");
    assert_eq!(state.provisioned.map(|p| p.id), Some("copy-1".to_string()));
    client
        .forget_copy(&target_agent, "copy-1")
        .await
        .expect("forget");
    let state = client.state(&target_agent).await.expect("state");
    assert!(
        state.provisioned.is_none() && state.armed.is_none(),
        "{state:?}"
    );
}

async fn wait_serving(at: &str) {
    eventually(Duration::from_secs(10), "the agent serves", || async {
        std::net::TcpStream::connect(at).ok().map(|_| ())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diverged_servers_tail_is_saved_with_its_record() {
    let (c, [p, r1, _]) = primary_and_two_replicas().await;
    c.instances[0]
        .exec("CREATE DATABASE IF NOT EXISTS app; CREATE TABLE app.rows (id INT PRIMARY KEY, v VARCHAR(64)); INSERT INTO app.rows VALUES (1, 'shared')")
        .await
        .unwrap_or_else(|e| panic!("seed: {e}"));
    eventually(Duration::from_secs(20), "the replica caught up", || async {
        (query_one(&r1, "SELECT COUNT(*) FROM app.rows").await == "1").then_some(())
    })
    .await;
    c.instances[1]
        .exec("STOP SLAVE")
        .await
        .unwrap_or_else(|e| panic!("stop: {e}"));
    let common = query_one(&r1, "SELECT @@gtid_slave_pos").await;
    c.instances[0]
        .exec(
            "INSERT INTO app.rows VALUES (2, 'tail-one'); INSERT INTO app.rows VALUES (3, 'tail-two')",
        )
        .await
        .unwrap_or_else(|e| panic!("the tail: {e}"));
    let end = query_one(&p, "SELECT @@gtid_binlog_pos").await;
    let _serving = agent_serve(&c.instances[0].data_dir(), c.instances[0].ip());
    let at = format!("{}:{}", c.instances[0].ip(), orca::agent::PORT);
    wait_serving(&at).await;
    let wrong = AgentClient::new("not-the-token").expect("client");
    let refused = wrong.save_tail(&at, "r1", &common, &end).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("403")),
        "{refused:?}"
    );
    let client = AgentClient::new(TOKEN).expect("client");
    let bad = client.save_tail(&at, "../escape", &common, &end).await;
    assert!(bad.is_err(), "an id with a path is refused: {bad:?}");
    let tail = client
        .save_tail(&at, "recovery-7", &common, &end)
        .await
        .expect("save the tail");
    assert_eq!(tail.gtids, end);
    assert!(tail.bytes > 0, "{tail:?}");
    let dir = c.instances[0].data_dir();
    let text = std::fs::read_to_string(dir.join(&tail.file)).expect("the tail's file");
    let last: Vec<&str> = end.split('-').collect();
    let seq: u64 = last[2].parse().expect("seq");
    assert!(
        text.contains(&format!("GTID 0-{}-{seq}", last[1])),
        "{text}"
    );
    assert!(
        text.contains(&format!("GTID 0-{}-{}", last[1], seq - 1)),
        "{text}"
    );
    let before: u64 = common
        .rsplit('-')
        .next()
        .and_then(|s| s.parse().ok())
        .expect("seq");
    assert!(
        !text.contains(&format!("GTID 0-{}-{before} ", last[1])),
        "the shared transactions are not in the tail:\n{text}"
    );
    let record: orca::agent::tail::Tail = Files::new(&dir)
        .read(&format!(".orca-tail-{}.json", tail.id))
        .expect("the record");
    assert_eq!(record, tail);
}
