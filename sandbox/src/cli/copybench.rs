//! `orca-sandbox bench copy`: a replica re-provisioned by the orca
//! agent's physical copy (`orca agent serve` on a healthy replica, `orca
//! agent init` on the stopped target) while one client writes to the
//! primary without pause. Reports the copy's time, size and rate, and
//! the client's write rate before and during the copy. Not a test: the
//! figures go to `docs/benchmarks.md`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use mysql_async::prelude::Queryable;

use crate::mysqld::{ADMIN_USER, admin_credentials, app_credentials};
use crate::{LocalCluster, Shape};
use orca::agent::{Arming, Files, MARKER, PORT, PROVISIONED, Provisioned};
use orca::cli::{EXIT_FAILED, EXIT_OK};
use orca::mysql::conn::{Timeouts, connect};

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// Copies to measure (each on a fresh topology).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Rows of about 200 bytes in the table copied.
    #[arg(long, default_value_t = 200_000)]
    pub rows: u64,
    /// Also write the results as markdown to this file.
    #[arg(long)]
    pub write: Option<PathBuf>,
}

const TOKEN: &str = "bench-copy-token";

struct Figures {
    bytes: u64,
    seconds: f64,
    before: f64,
    during: f64,
}

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn count(c: &LocalCluster, i: usize) -> Result<u64, String> {
    let mut conn = connect(
        &c.instances[i].key(),
        &admin_credentials(),
        Timeouts::default(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let n: Option<u64> = conn
        .query_first("SELECT COUNT(*) FROM app.rows")
        .await
        .map_err(|e| e.to_string())?;
    let _ = conn.disconnect().await;
    Ok(n.unwrap_or(0))
}

async fn one(rows: u64) -> Result<Figures, String> {
    let orca = crate::kubelet::rootfs::orca_binary().map_err(|e| e.to_string())?;
    let mut c = LocalCluster::start(Shape::primary_with_replicas(2))
        .await
        .map_err(|e| e.to_string())?;
    c.instances[0]
        .exec(&format!(
            "CREATE DATABASE app; CREATE TABLE app.rows (id BIGINT PRIMARY KEY, v VARCHAR(200)) ENGINE=InnoDB; \
             INSERT INTO app.rows SELECT seq, REPEAT('x', 180) FROM test.seq_1_to_{rows}"
        ))
        .await
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while count(&c, 1).await.unwrap_or(0) < rows || count(&c, 2).await.unwrap_or(0) < rows {
        if Instant::now() > deadline {
            return Err("the replicas did not catch up in 120 s".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // One client writing without pause, as the application account.
    let written = Arc::new(AtomicU64::new(0));
    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let (written, writing) = (written.clone(), writing.clone());
        let key = c.instances[0].key();
        tokio::spawn(async move {
            let mut conn = connect(&key, &app_credentials(), Timeouts::default())
                .await
                .map_err(|e| e.to_string())?;
            let mut id = 10_000_000u64;
            while writing.load(Ordering::Relaxed) {
                id += 1;
                conn.query_drop(format!("INSERT INTO app.rows VALUES ({id}, 'w')"))
                    .await
                    .map_err(|e| e.to_string())?;
                written.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), String>(())
        })
    };
    let window = Duration::from_secs(3);
    let w0 = written.load(Ordering::Relaxed);
    tokio::time::sleep(window).await;
    let before = (written.load(Ordering::Relaxed) - w0) as f64 / window.as_secs_f64();

    let source = &c.instances[1];
    let _agent = Child(
        std::process::Command::new(&orca)
            .args(["agent", "serve", "--mysql-user", ADMIN_USER, "--datadir"])
            .arg(source.data_dir())
            .env("ORCA_AGENT_TOKEN", TOKEN)
            .env("MARIADB_ROOT_PASSWORD", admin_credentials().password())
            .env("POD_IP", source.ip().to_string())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("orca agent serve: {e}"))?,
    );
    let at = format!("{}:{PORT}", source.ip());
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&at).is_err() {
        if Instant::now() > deadline {
            return Err("the agent did not listen in 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.instances[2].stop().await.map_err(|e| e.to_string())?;
    let datadir = c.instances[2].data_dir();
    let files = Files::new(&datadir);
    files
        .write(
            MARKER,
            &Arming {
                id: "bench".into(),
                sources: vec![at],
                expires_at: orca::agent::now() + 600,
                timeout_seconds: 600,
                begun_at: None,
            },
        )
        .map_err(|e| e.to_string())?;
    let w1 = written.load(Ordering::Relaxed);
    let t1 = Instant::now();
    let listen = format!("{}:{PORT}", c.instances[2].ip());
    let out = tokio::process::Command::new(&orca)
        .args(["agent", "init", "--listen", &listen, "--datadir"])
        .arg(&datadir)
        .env("ORCA_AGENT_TOKEN", TOKEN)
        .output()
        .await
        .map_err(|e| format!("orca agent init: {e}"))?;
    let during = (written.load(Ordering::Relaxed) - w1) as f64 / t1.elapsed().as_secs_f64();
    writing.store(false, Ordering::Relaxed);
    writer
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("the writer: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "orca agent init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let done: Provisioned = files
        .read(PROVISIONED)
        .ok_or("the copy left no result (every source failed?)")?;
    Ok(Figures {
        bytes: done.bytes,
        seconds: done.seconds,
        before,
        during,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

pub async fn run(a: CopyArgs) -> u8 {
    let mut all = Vec::new();
    for i in 0..a.runs {
        match one(a.rows).await {
            Ok(f) => {
                eprintln!(
                    "copy run {}: {} bytes in {:.2} s; writes {:.0}/s before, {:.0}/s during",
                    i + 1,
                    f.bytes,
                    f.seconds,
                    f.before,
                    f.during
                );
                all.push(f);
            }
            Err(e) => {
                eprintln!("orca-sandbox bench copy: run {}: {e}", i + 1);
                return EXIT_FAILED;
            }
        }
    }
    let mb = |b: u64| b as f64 / 1_000_000.0;
    let size = median(all.iter().map(|f| mb(f.bytes)).collect());
    let secs = median(all.iter().map(|f| f.seconds).collect());
    let rate = median(
        all.iter()
            .map(|f| mb(f.bytes) / f.seconds.max(1e-3))
            .collect(),
    );
    let before = median(all.iter().map(|f| f.before).collect());
    let during = median(all.iter().map(|f| f.during).collect());
    let drop = if before > 0.0 {
        100.0 * (before - during) / before
    } else {
        0.0
    };
    let table = format!(
        "| copy | runs | size | copy time | copy rate | writes/s before | writes/s during | write rate drop |\n\
         |---|---|---|---|---|---|---|---|\n\
         | physical copy of a replica ({} rows), one client writing to the primary | {} | {size:.1} MB | {secs:.2} s | {rate:.1} MB/s | {before:.0} | {during:.0} | {drop:.0}% |\n",
        a.rows,
        all.len()
    );
    println!("{table}");
    if let Some(path) = a.write
        && let Err(e) = std::fs::write(&path, &table)
    {
        eprintln!(
            "orca-sandbox bench copy: cannot write {}: {e}",
            path.display()
        );
        return EXIT_FAILED;
    }
    EXIT_OK
}
