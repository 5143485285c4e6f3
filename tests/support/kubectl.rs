//! The real `kubectl` against a sandbox: its own kubeconfig, cache and
//! home, so that nothing outside the test's directory is read or written.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What one kubectl run printed, and how it ended.
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == 0
    }
}

/// `kubectl` bound to one sandbox.
pub struct Kubectl {
    kubeconfig: PathBuf,
    home: PathBuf,
}

impl Kubectl {
    /// kubectl with `kubeconfig`, keeping its cache and home in `home`.
    pub fn new(kubeconfig: &Path, home: &Path) -> Kubectl {
        Kubectl {
            kubeconfig: kubeconfig.to_path_buf(),
            home: home.to_path_buf(),
        }
    }

    /// The command, for a test that runs it itself (a watch, a wait).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("kubectl");
        c.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.home.join("cache"))
            .args(args)
            .env("HOME", &self.home);
        c
    }

    /// Runs kubectl, `stdin` fed to it; whatever the outcome.
    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut c = self.command(args);
        c.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = c
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run kubectl (is it on PATH? make deps): {e}"));
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write stdin");
        }
        let out = child.wait_with_output().expect("kubectl output");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs kubectl and requires success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_in(args, None)
    }

    /// [`Kubectl::ok`] with `stdin` fed to kubectl.
    pub fn ok_in(&self, args: &[&str], stdin: Option<&str>) -> String {
        let o = self.run(args, stdin);
        assert!(
            o.success(),
            "kubectl {args:?} failed ({}):\n{}\n{}",
            o.code,
            o.stderr,
            o.stdout
        );
        o.stdout
    }

    /// Runs kubectl and requires it to fail as kubectl fails on an error
    /// (exit code 1); returns what it printed.
    pub fn fails(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let o = self.run(args, stdin);
        assert_eq!(
            o.code, 1,
            "kubectl {args:?} did not fail:\n{}\n{}",
            o.stderr, o.stdout
        );
        o
    }

    /// `kubectl apply -f -` of `yaml`; returns stdout.
    pub fn apply(&self, yaml: &str) -> String {
        self.apply_with(yaml, &[])
    }

    /// `kubectl apply -f -` with `extra` arguments.
    pub fn apply_with(&self, yaml: &str, extra: &[&str]) -> String {
        let mut args = vec!["apply", "-f", "-"];
        args.extend_from_slice(extra);
        self.ok_in(&args, Some(yaml))
    }

    /// `kubectl ... -o json`, parsed.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.extend_from_slice(&["-o", "json"]);
        serde_json::from_str(&self.ok(&a)).expect("kubectl -o json")
    }
}
