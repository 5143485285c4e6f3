//! `orca standalone` as a child process, as a user runs it: recovery
//! records on stdout, findings and steps in its log (stderr), each to a
//! file the test reads.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use orca::topology::InstanceKey;
use orca_sandbox::mysqld::{admin_credentials, repl_credentials};

pub struct Standalone {
    pub child: Child,
    out: PathBuf,
    err: PathBuf,
    _dir: tempfile::TempDir,
}

impl Standalone {
    /// The command line of `orca standalone --cluster NAME --seed ...` with
    /// the sandbox's admin and replication accounts, run by `program`
    /// (the orca binary, or a copy another user can run).
    pub fn command(program: &std::path::Path, cluster: &str, seeds: &[InstanceKey]) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(["standalone", "--log", "info", "--cluster", cluster])
            .args(
                seeds
                    .iter()
                    .flat_map(|k| ["--seed".to_string(), k.to_string()]),
            )
            .env("ORCA_USER", admin_credentials().user)
            .env("ORCA_PASSWORD", admin_credentials().password())
            .env("ORCA_REPL_USER", repl_credentials().user)
            .env("ORCA_REPL_PASSWORD", repl_credentials().password());
        cmd
    }

    /// Runs `orca standalone` for `seeds`.
    pub fn start(cluster: &str, seeds: &[InstanceKey]) -> Standalone {
        Standalone::spawn(Standalone::command(
            std::path::Path::new(env!("CARGO_BIN_EXE_orca")),
            cluster,
            seeds,
        ))
    }

    /// Runs `cmd` with its output going to the files this reads.
    pub fn spawn(mut cmd: Command) -> Standalone {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("stdout");
        let err = dir.path().join("stderr");
        let child = cmd
            .stdout(std::fs::File::create(&out).expect("stdout file"))
            .stderr(std::fs::File::create(&err).expect("stderr file"))
            .stdin(Stdio::null())
            .spawn()
            .expect("start orca standalone");
        Standalone {
            child,
            out,
            err,
            _dir: dir,
        }
    }

    /// Its log so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// What it printed on stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// The recovery records printed so far.
    pub fn records(&self) -> Vec<serde_json::Value> {
        self.stdout()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad record ({e}): {l}")))
            .collect()
    }

    /// Waits (at most 60 s) for the `n`th record (counting from 1).
    pub async fn record(&self, n: usize, what: &str) -> serde_json::Value {
        super::eventually(Duration::from_secs(60), what, || async {
            self.records().get(n - 1).cloned()
        })
        .await
    }

    /// Waits until the log has a line containing every one of `needles`;
    /// returns it.
    pub async fn wait_log(&self, limit: Duration, needles: &[&str]) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let log = self.logs();
            if let Some(l) = log.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
                return l.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for orca logging a line with {needles:?}; log:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits (at most 30 s) until the log contains `needle`.
    pub async fn logged(&self, needle: &str) {
        self.wait_log(Duration::from_secs(30), &[needle]).await;
    }

    /// What a user does to acknowledge the last recovery: SIGUSR1.
    pub fn acknowledge(&self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("a pid"));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGUSR1).expect("SIGUSR1");
    }

    /// Stops it; returns its log and its stdout.
    pub fn stop(mut self) -> (String, String) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        (self.logs(), self.stdout())
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- orca standalone log ---\n{}\n--- stdout ---\n{}",
                self.logs(),
                self.stdout()
            );
        }
    }
}
