//! One real `mariadbd` on its own loopback address, port 3306, with its own
//! data directory, started from a prepared template so that a server is up
//! in about a second. Processes are signalled by the pid orca started,
//! never by name.

use std::fs;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::loopback::{self, Lease};
use orca::mysql::Credentials;
use orca::mysql::conn::{Timeouts, connect, exec};
use orca::topology::InstanceKey;

/// The administrative account every local server is created with.
pub const ADMIN_USER: &str = "orca";
/// The replication account every local server is created with.
pub const REPL_USER: &str = "repl";
/// An application account: all privileges on the `app` schema and none
/// that bypass read_only, as an application would have.
pub const APP_USER: &str = "app";
const ADMIN_PASSWORD: &str = "orca-sandbox-admin";
const REPL_PASSWORD: &str = "orca-sandbox-repl";
const APP_PASSWORD: &str = "orca-sandbox-app";

/// Credentials of the administrative account of local servers.
pub fn admin_credentials() -> Credentials {
    Credentials::new(ADMIN_USER, ADMIN_PASSWORD)
}

/// Credentials of the application account of local servers.
pub fn app_credentials() -> Credentials {
    Credentials::new(APP_USER, APP_PASSWORD)
}

/// Credentials of the replication account of local servers.
pub fn repl_credentials() -> Credentials {
    Credentials::new(REPL_USER, REPL_PASSWORD)
}

#[derive(Debug, thiserror::Error)]
pub enum MysqldError {
    #[error("{0} not found; install MariaDB (`make deps`, or apt-get install mariadb-server)")]
    Missing(&'static str),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("preparing the data directory template failed: {0}")]
    Template(String),
    #[error("mariadbd on {ip} did not become ready: {reason}\n--- error log ({log}) ---\n{tail}")]
    NotReady {
        ip: Ipv4Addr,
        reason: String,
        log: String,
        tail: String,
    },
    #[error("mariadbd on {ip}: {source}")]
    Sql {
        ip: Ipv4Addr,
        #[source]
        source: orca::mysql::MysqlError,
    },
    #[error("mariadbd on {ip} is not running")]
    NotRunning { ip: Ipv4Addr },
    #[error("signalling mariadbd on {ip}: {source}")]
    Signal {
        ip: Ipv4Addr,
        #[source]
        source: nix::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> MysqldError {
    let what = what.into();
    move |source| MysqldError::Io { what, source }
}

/// Where local servers keep their files: `$ORCA_LOCAL_ROOT`, else
/// `/tmp/orca-local`. Kept short: the Unix socket path must fit in 107
/// bytes.
pub fn local_root() -> PathBuf {
    std::env::var_os("ORCA_LOCAL_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/orca-local"))
}

/// Finds a MariaDB program on PATH or in the usual system directories.
pub fn find_binary(name: &'static str) -> Result<PathBuf, MysqldError> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/bin", "/usr/local/sbin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or(MysqldError::Missing(name))
}

/// InnoDB settings shared by the template and every server: the template's
/// files must match what the servers expect.
const INNODB_ARGS: &[&str] = &["--innodb-log-file-size=8M", "--innodb-buffer-pool-size=16M"];

/// Builds (once per machine, under a lock) a data directory holding the
/// system tables and orca's two accounts; servers start from a copy of it.
fn template(root: &Path) -> Result<PathBuf, MysqldError> {
    let sql = format!(
        "FLUSH PRIVILEGES;\n\
         CREATE USER '{ADMIN_USER}'@'%' IDENTIFIED BY '{ADMIN_PASSWORD}';\n\
         GRANT ALL PRIVILEGES ON *.* TO '{ADMIN_USER}'@'%' WITH GRANT OPTION;\n\
         CREATE USER '{REPL_USER}'@'%' IDENTIFIED BY '{REPL_PASSWORD}';\n\
         GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '{REPL_USER}'@'%';\n\
         CREATE USER '{APP_USER}'@'%' IDENTIFIED BY '{APP_PASSWORD}';\n\
         GRANT ALL PRIVILEGES ON app.* TO '{APP_USER}'@'%';\n"
    );
    // Bump the name when the template's content changes.
    build_template(root, "template-v2", "template.lock", &sql)
}

/// Builds (once per machine, under a lock) the data directory the official
/// `mariadb` image's entrypoint would leave before it sets passwords: the
/// system tables with `root@localhost` and `mariadb.sys@localhost` only,
/// no test database, no anonymous or host-named accounts. The sandbox's
/// pod runner starts from a copy of it; the InnoDB files match
/// [`IMAGE_INNODB_SETTINGS`].
pub fn image_template(root: &Path) -> Result<PathBuf, MysqldError> {
    let sql = "DELETE FROM mysql.global_priv WHERE NOT ((User = 'root' AND Host = 'localhost') OR User = 'mariadb.sys');\n\
               DELETE FROM mysql.proxies_priv WHERE NOT (User = 'root' AND Host = 'localhost');\n\
               DELETE FROM mysql.db WHERE User <> 'mariadb.sys';\n\
               DELETE FROM mysql.tables_priv WHERE User <> 'mariadb.sys';\n\
               DELETE FROM mysql.columns_priv;\n\
               DELETE FROM mysql.roles_mapping;\n";
    build_template(root, "image-template-v1", "image-template.lock", sql)
}

/// The InnoDB settings the image template's files were made with (a server
/// started from a copy must use the same redo log size).
pub const IMAGE_INNODB_SETTINGS: &[(&str, &str)] = &[
    ("innodb-log-file-size", "8M"),
    ("innodb-buffer-pool-size", "16M"),
];

fn build_template(
    root: &Path,
    name: &str,
    lock_name: &str,
    sql: &str,
) -> Result<PathBuf, MysqldError> {
    let dir = root.join(name);
    let ready = dir.join(".ready");
    if ready.exists() {
        return Ok(dir.join("data"));
    }
    fs::create_dir_all(root).map_err(io("creating the local root"))?;
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(root.join(lock_name))
        .map_err(io("opening the template lock"))?;
    lock.lock().map_err(io("locking the template"))?;
    if ready.exists() {
        return Ok(dir.join("data"));
    }
    let _ = fs::remove_dir_all(&dir);
    let data = dir.join("data");
    fs::create_dir_all(&data).map_err(io("creating the template directory"))?;
    let install = find_binary("mariadb-install-db")?;
    let out = Command::new(install)
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .args([
            "--user=root",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ])
        .args(INNODB_ARGS)
        .output()
        .map_err(io("running mariadb-install-db"))?;
    if !out.status.success() {
        return Err(MysqldError::Template(format!(
            "mariadb-install-db: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let mut child = Command::new(find_binary("mariadbd")?)
        .arg("--no-defaults")
        .arg("--bootstrap")
        .arg(format!("--datadir={}", data.display()))
        .args(["--user=root", "--skip-log-bin"])
        .arg(format!(
            "--log-error={}",
            dir.join("bootstrap.log").display()
        ))
        .args(INNODB_ARGS)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(io("starting mariadbd --bootstrap"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(sql.as_bytes())
            .map_err(io("writing the bootstrap SQL"))?;
    }
    let status = child
        .wait()
        .map_err(io("waiting for mariadbd --bootstrap"))?;
    if !status.success() {
        let log = fs::read_to_string(dir.join("bootstrap.log")).unwrap_or_default();
        return Err(MysqldError::Template(format!(
            "mariadbd --bootstrap failed:\n{log}"
        )));
    }
    let _ = fs::remove_file(data.join("ibtmp1"));
    fs::write(&ready, b"").map_err(io("marking the template ready"))?;
    Ok(data)
}

/// Copies a directory tree (regular files and directories).
pub fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// How to start one server.
#[derive(Debug, Clone)]
pub struct MysqldOptions {
    pub server_id: u32,
    /// `gtid_domain_id` (give co-primaries distinct domains).
    pub gtid_domain_id: u32,
    /// Start read only (every replica, and every server the operator starts).
    pub read_only: bool,
    /// Further `my.cnf` settings, `name = value`.
    pub extra: Vec<(String, String)>,
    /// A cgroup (v2) directory the server's process joins before it runs:
    /// every socket it opens carries that cgroup, which nftables' `socket
    /// cgroupv2` matches (a test cuts the network of some servers so).
    pub cgroup: Option<PathBuf>,
}

impl MysqldOptions {
    pub fn new(server_id: u32) -> Self {
        MysqldOptions {
            server_id,
            gtid_domain_id: 0,
            read_only: false,
            extra: Vec::new(),
            cgroup: None,
        }
    }

    /// Runs the server in the cgroup (v2) directory `dir` (see
    /// [`MysqldOptions::cgroup`]).
    pub fn in_cgroup(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cgroup = Some(dir.into());
        self
    }

    /// Semi-synchronous replication: the replica side everywhere, the
    /// primary side on a writable (primary) instance only — a replica with
    /// the primary side on would wait for acknowledgements of what it
    /// applies. Acknowledged after sync, with no fall-back to asynchronous
    /// replication: a write the client saw committed is on at least one
    /// replica. orca turns the primary side on when it promotes.
    pub fn with_semi_sync(mut self) -> Self {
        let primary_side = if self.read_only { "OFF" } else { "ON" };
        let timeout =
            orca::mysql::dialect::semi_sync_timeout_max_ms(orca::topology::Flavor::MariaDb)
                .to_string();
        for (k, v) in [
            ("rpl-semi-sync-master-enabled", primary_side),
            ("rpl-semi-sync-slave-enabled", "ON"),
            ("rpl-semi-sync-master-wait-point", "AFTER_SYNC"),
            ("rpl-semi-sync-master-timeout", timeout.as_str()),
            // Stopping the IO thread of a semi-sync replica connects to the
            // source to end its dump thread; against a hung source that
            // waits this long (seconds).
            ("rpl-semi-sync-slave-kill-conn-timeout", "1"),
        ] {
            self.extra.push((k.to_string(), v.to_string()));
        }
        self
    }
}

/// A running (or stopped, or paused) local server. Dropping it kills the
/// process and removes its files (set `ORCA_KEEP_LOCAL=1` to keep them).
#[derive(Debug)]
pub struct Mysqld {
    lease: Lease,
    dir: PathBuf,
    options: MysqldOptions,
    child: Option<Child>,
}

impl Mysqld {
    /// Starts a server on a fresh loopback address and waits until it
    /// accepts connections.
    pub async fn start(options: MysqldOptions) -> Result<Mysqld, MysqldError> {
        let root = local_root();
        let template = tokio::task::spawn_blocking({
            let root = root.clone();
            move || template(&root)
        })
        .await
        .map_err(|e| MysqldError::Template(e.to_string()))??;
        let start = (std::process::id() as u16).wrapping_mul(31);
        let lease = loopback::take(&root, 10, start).map_err(io("taking a loopback address"))?;
        let dir = root.join(lease.ip.to_string());
        kill_stale(&dir);
        let _ = fs::remove_dir_all(&dir);
        let data = dir.join("data");
        tokio::task::spawn_blocking({
            let data = data.clone();
            move || copy_dir(&template, &data)
        })
        .await
        .map_err(|e| MysqldError::Template(e.to_string()))?
        .map_err(io("copying the template"))?;
        let mut m = Mysqld {
            lease,
            dir,
            options,
            child: None,
        };
        m.write_config()?;
        m.start_process().await?;
        Ok(m)
    }

    pub fn ip(&self) -> Ipv4Addr {
        self.lease.ip
    }

    pub fn key(&self) -> InstanceKey {
        InstanceKey::new(self.ip().to_string(), 3306)
    }

    pub fn server_id(&self) -> u32 {
        self.options.server_id
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn error_log_path(&self) -> PathBuf {
        self.dir.join("error.log")
    }

    /// The last `lines` lines of the server's error log.
    pub fn error_log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(self.error_log_path()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn write_config(&self) -> Result<(), MysqldError> {
        let ip = self.ip();
        let o = &self.options;
        let mut cnf = format!(
            "[mariadbd]\n\
             user = root\n\
             datadir = {data}\n\
             socket = {dir}/s.sock\n\
             pid-file = {dir}/mysqld.pid\n\
             log-error = {dir}/error.log\n\
             bind-address = {ip}\n\
             port = 3306\n\
             server-id = {sid}\n\
             log-bin = mysql-bin\n\
             relay-log = relay-bin\n\
             log-slave-updates = ON\n\
             binlog-format = ROW\n\
             gtid-strict-mode = ON\n\
             gtid-domain-id = {domain}\n\
             report-host = {ip}\n\
             report-port = 3306\n\
             slave-net-timeout = 4\n\
             skip-name-resolve\n\
             read-only = {ro}\n\
             innodb-log-file-size = 8M\n\
             innodb-buffer-pool-size = 16M\n\
             performance-schema = OFF\n\
             max-connections = 200\n",
            data = self.data_dir().display(),
            dir = self.dir.display(),
            sid = o.server_id,
            domain = o.gtid_domain_id,
            ro = if o.read_only { "ON" } else { "OFF" },
        );
        for (k, v) in &o.extra {
            cnf.push_str(&format!("{k} = {v}\n"));
        }
        fs::write(self.dir.join("my.cnf"), cnf).map_err(io("writing my.cnf"))
    }

    async fn start_process(&mut self) -> Result<(), MysqldError> {
        let mut cmd = Command::new(find_binary("mariadbd")?);
        cmd.arg(format!(
            "--defaults-file={}",
            self.dir.join("my.cnf").display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        if let Some(cgroup) = &self.options.cgroup {
            join_cgroup_at_exec(&mut cmd, cgroup).map_err(io("joining the server's cgroup"))?;
        }
        let child = cmd.spawn().map_err(io("starting mariadbd"))?;
        self.child = Some(child);
        self.wait_ready(Duration::from_secs(30)).await
    }

    async fn wait_ready(&mut self, limit: Duration) -> Result<(), MysqldError> {
        let deadline = Instant::now() + limit;
        let key = self.key();
        let creds = admin_credentials();
        let timeouts = Timeouts {
            connect: Duration::from_millis(500),
            query: Duration::from_secs(2),
        };
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(self.not_ready(format!("exited with {status}")));
            }
            match connect(&key, &creds, timeouts).await {
                Ok(conn) => {
                    let _ = conn.disconnect().await;
                    return Ok(());
                }
                Err(e) if Instant::now() >= deadline => {
                    return Err(self.not_ready(format!("no connection within {limit:?}: {e}")));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    fn not_ready(&self, reason: String) -> MysqldError {
        MysqldError::NotReady {
            ip: self.ip(),
            reason,
            log: self.error_log_path().display().to_string(),
            tail: self.error_log_tail(30),
        }
    }

    fn signal(&self, sig: Signal) -> Result<(), MysqldError> {
        let pid = self
            .pid()
            .ok_or(MysqldError::NotRunning { ip: self.ip() })?;
        kill(Pid::from_raw(pid as i32), sig).map_err(|source| MysqldError::Signal {
            ip: self.ip(),
            source,
        })
    }

    /// SIGKILL: the server dies at once, as in a crash.
    pub fn kill(&mut self) -> Result<(), MysqldError> {
        self.signal(Signal::SIGKILL)?;
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
        Ok(())
    }

    /// SIGSTOP: the server hangs; connections are accepted by the kernel
    /// but never answered.
    pub fn pause(&self) -> Result<(), MysqldError> {
        self.signal(Signal::SIGSTOP)
    }

    /// SIGCONT after [`Mysqld::pause`].
    pub fn resume(&self) -> Result<(), MysqldError> {
        self.signal(Signal::SIGCONT)
    }

    /// SIGTERM and wait: a clean shutdown.
    pub async fn stop(&mut self) -> Result<(), MysqldError> {
        self.signal(Signal::SIGTERM)?;
        if let Some(mut c) = self.child.take() {
            let waited = tokio::task::spawn_blocking(move || c.wait()).await;
            if let Ok(Err(e)) = waited {
                return Err(io("waiting for mariadbd to stop")(e));
            }
        }
        Ok(())
    }

    /// Starts the server again on the same address and data directory.
    pub async fn restart(&mut self) -> Result<(), MysqldError> {
        if self.child.is_some() {
            self.stop().await?;
        }
        self.start_process().await
    }

    /// Runs statements as the administrative user.
    pub async fn exec(&self, sql: &str) -> Result<(), MysqldError> {
        let key = self.key();
        let ip = self.ip();
        let t = Timeouts::default();
        let sql_err = |source| MysqldError::Sql { ip, source };
        let mut conn = connect(&key, &admin_credentials(), t)
            .await
            .map_err(sql_err)?;
        let r = exec(&mut conn, &key, Duration::from_secs(10), "running SQL", sql)
            .await
            .map_err(sql_err);
        let _ = tokio::time::timeout(t.query, conn.disconnect()).await;
        r
    }
}

/// Makes the process `cmd` starts join the cgroup (v2) directory `dir`
/// before it runs its program, so that every socket it opens carries that
/// cgroup. The process must be allowed to write `dir/cgroup.procs` (root
/// is).
pub fn join_cgroup_at_exec(cmd: &mut Command, dir: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::process::CommandExt;
    let procs = std::ffi::CString::new(dir.join("cgroup.procs").as_os_str().as_bytes())
        .map_err(std::io::Error::other)?;
    // SAFETY: the closure runs in the child between fork and exec and only
    // makes async-signal-safe system calls (open, write, close) on a path
    // prepared before the fork; writing "0" moves the writing process.
    unsafe {
        cmd.pre_exec(move || {
            use nix::libc;
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let written = libc::write(fd, b"0".as_ptr().cast(), 1);
            let error = std::io::Error::last_os_error();
            libc::close(fd);
            if written != 1 {
                return Err(error);
            }
            Ok(())
        });
    }
    Ok(())
}

/// Kills a server left running by a process that died without cleaning up
/// (its pid file names it, and its command line must name this directory).
fn kill_stale(dir: &Path) {
    let Ok(text) = fs::read_to_string(dir.join("mysqld.pid")) else {
        return;
    };
    let Ok(pid) = text.trim().parse::<i32>() else {
        return;
    };
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let needle = dir.join("my.cnf");
    if String::from_utf8_lossy(&cmdline).contains(&*needle.to_string_lossy()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        for _ in 0..100 {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Mysqld {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- mariadbd {} (server_id {}) error log, last lines ---\n{}",
                self.ip(),
                self.options.server_id,
                self.error_log_tail(40)
            );
        }
        if let Some(mut c) = self.child.take() {
            let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGKILL);
            let _ = c.wait();
        }
        if std::env::var_os("ORCA_KEEP_LOCAL").is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
