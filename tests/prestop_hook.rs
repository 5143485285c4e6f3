//! The StatefulSet's preStop hook (`objects::pre_stop_script`), run as
//! the kubelet runs it (`sh -c`, the container's environment) against
//! real servers: a replica stops at once, and so does a server that does
//! not answer; a primary waits — still when it is read only, as a
//! takeover leaves it before its successor has caught up — until it
//! replicates from another source, its IO thread running.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use orca::k8s::objects::pre_stop_script;
use orca_sandbox::mysqld::repl_credentials;
use support::*;

const PASSWORD: &str = "pre-stop-root";

/// The hook for the pod at `ip`, with the password in the environment
/// as the StatefulSet puts it there.
fn hook(ip: &str) -> Child {
    let script = if std::env::var("PRE_STOP_TRACE").is_ok() {
        format!("set -x\n{}", pre_stop_script())
    } else {
        pre_stop_script()
    };
    Command::new("sh")
        .args(["-c", &script])
        .env("POD_IP", ip)
        .env("MARIADB_ROOT_PASSWORD", PASSWORD)
        .env("MYSQL_ROOT_PASSWORD", PASSWORD)
        .env_remove("MYSQL_PWD")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sh")
}

/// Waits (at most `limit`) for the hook to end; its exit code and output,
/// or `None` if it still runs.
fn ended(child: &mut Child, limit: Duration) -> Option<(i32, String)> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            let mut out = String::new();
            for pipe in [
                child
                    .stdout
                    .take()
                    .map(|p| Box::new(p) as Box<dyn std::io::Read>),
                child
                    .stderr
                    .take()
                    .map(|p| Box::new(p) as Box<dyn std::io::Read>),
            ]
            .into_iter()
            .flatten()
            {
                let mut p = pipe;
                let _ = p.read_to_string(&mut out);
            }
            return Some((status.code().unwrap_or(-1), out));
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pre_stop_hook_waits_until_the_primary_replicates_from_its_successor() {
    let (c, [p, r, _]) = primary_and_two_replicas().await;
    // The hook connects as root, as in a pod.
    // (Local servers have their own root@127.0.0.1, which the hook's
    // connections from 127.0.0.1 match first.)
    let mut sqls = Vec::new();
    for host in ["%", "127.0.0.1"] {
        sqls.push(format!(
            "CREATE USER IF NOT EXISTS 'root'@'{host}' IDENTIFIED BY '{PASSWORD}'"
        ));
        sqls.push(format!(
            "ALTER USER 'root'@'{host}' IDENTIFIED BY '{PASSWORD}'"
        ));
        sqls.push(format!(
            "GRANT ALL PRIVILEGES ON *.* TO 'root'@'{host}' WITH GRANT OPTION"
        ));
    }
    for sql in sqls {
        c.instances[0].exec(&sql).await.expect("a root account");
    }
    wait_replicating_from(&r, &p).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A replica: at once.
    let mut h = hook(&r.host);
    let (code, out) = ended(&mut h, Duration::from_secs(5)).expect("a replica's hook ends");
    assert_eq!(code, 0, "{out}");
    assert!(
        std::env::var("PRE_STOP_TRACE").is_ok() || !out.contains(PASSWORD),
        "{out}"
    );
    // Nothing answers there: at once.
    let mut h = hook("127.0.0.254");
    assert_eq!(
        ended(&mut h, Duration::from_secs(5)).map(|(c, _)| c),
        Some(0)
    );

    // The primary waits: writable, then read only (fenced), ...
    let mut h = hook(&p.host);
    let early = ended(&mut h, Duration::from_secs(2));
    assert!(early.is_none(), "the primary's hook ended: {early:?}");
    c.instances[0]
        .exec("SET GLOBAL read_only = 1")
        .await
        .expect("read only");
    assert!(
        ended(&mut h, Duration::from_secs(2)).is_none(),
        "the hook ended when the primary was merely read only"
    );
    // ... until it replicates from its successor.
    let repl = repl_credentials();
    for sql in ["STOP SLAVE", "RESET SLAVE ALL", "SET GLOBAL read_only = 0"] {
        c.instances[1].exec(sql).await.expect("promote the replica");
    }
    for sql in [
        format!(
            "CHANGE MASTER TO MASTER_HOST='{}', MASTER_PORT=3306, MASTER_USER='{}', \
             MASTER_PASSWORD='{}', MASTER_USE_GTID=slave_pos",
            r.host,
            repl.user,
            repl.password()
        ),
        "START SLAVE".to_string(),
    ] {
        c.instances[0]
            .exec(&sql)
            .await
            .expect("repoint the old primary");
    }
    let started = Instant::now();
    let (code, out) = ended(&mut h, Duration::from_secs(10))
        .expect("the hook ends once the old primary replicates from its successor");
    assert_eq!(code, 0, "{out}");
    assert!(
        std::env::var("PRE_STOP_TRACE").is_ok() || !out.contains(PASSWORD),
        "{out}"
    );
    eprintln!(
        "the hook ended {} ms after the repointing",
        started.elapsed().as_millis()
    );
}
