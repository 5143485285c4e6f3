//! Starting container processes. Every process is started from one
//! dedicated thread with the parent-death signal set to SIGKILL, so that
//! when that thread ends (the kubelet is dropped, or the whole process
//! dies) the kernel kills whatever is left: no `mariadbd` outlives the
//! sandbox. Each process gets its own process group, so that a command's
//! children can be signalled with it. Processes are only ever signalled by
//! the pid orca started.

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::mpsc;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

/// What to start.
#[derive(Debug, Clone, Default)]
pub struct Spec {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The whole environment (nothing is inherited).
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
    /// stdout and stderr are appended to this file (else discarded).
    pub log: Option<PathBuf>,
    /// A file system of its own to run in (then `program` is a path
    /// inside it).
    pub root: Option<super::rootfs::Root>,
}

type Reply = oneshot::Sender<std::io::Result<tokio::process::Child>>;

/// The spawning thread.
pub struct Spawner {
    tx: Option<mpsc::Sender<(Spec, Reply)>>,
    thread: Option<JoinHandle<()>>,
}

impl Spawner {
    /// Starts the thread; processes are registered with the current tokio
    /// runtime (which reaps them).
    pub fn start() -> std::io::Result<Spawner> {
        let handle = tokio::runtime::Handle::current();
        let (tx, rx) = mpsc::channel::<(Spec, Reply)>();
        let thread = std::thread::Builder::new()
            .name("orca-kubelet-spawner".into())
            .spawn(move || {
                let _guard = handle.enter();
                let parent = std::process::id();
                while let Ok((spec, reply)) = rx.recv() {
                    let _ = reply.send(spawn_here(&spec, parent));
                }
            })?;
        Ok(Spawner {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Starts a process.
    pub async fn spawn(&self, spec: Spec) -> std::io::Result<tokio::process::Child> {
        let (reply, rx) = oneshot::channel();
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| std::io::Error::other("the kubelet is stopping"))?;
        tx.send((spec, reply))
            .map_err(|_| std::io::Error::other("the spawner thread is gone"))?;
        rx.await
            .map_err(|_| std::io::Error::other("the spawner thread is gone"))?
    }
}

impl Drop for Spawner {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn spawn_here(spec: &Spec, parent: u32) -> std::io::Result<tokio::process::Child> {
    let mut cmd = tokio::process::Command::new(&spec.program);
    cmd.args(&spec.args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .process_group(0);
    if let Some(dir) = &spec.cwd {
        cmd.current_dir(dir);
    }
    match &spec.log {
        Some(path) => {
            let out = OpenOptions::new().create(true).append(true).open(path)?;
            let err = out.try_clone()?;
            cmd.stdout(Stdio::from(out)).stderr(Stdio::from(err));
        }
        None => {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
    }
    let root = spec.root.as_ref().map(|r| r.prepared()).transpose()?;
    // SAFETY: the closure runs in the child between fork and exec and only
    // makes async-signal-safe system calls (prctl, getppid, _exit, and
    // those of entering a root, on strings made before the fork).
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(std::io::Error::from)?;
            // the parent may have died before the signal was armed
            if nix::unistd::getppid().as_raw() as u32 != parent {
                nix::libc::_exit(1);
            }
            if let Some(r) = &root {
                r.enter()?;
            }
            Ok(())
        });
    }
    cmd.spawn()
}
