//! Emulation of the orca image (`ghcr.io/orca-dev/orca`, built from the
//! repository's `Dockerfile`): a container of it runs the `orca` binary
//! that sits beside the sandbox's own (or `ORCA_SANDBOX_ORCA_BIN`) in a
//! file system of its own, as a container runtime would run the image:
//!
//! - a private mount and UTS namespace, `chroot` into the container's
//!   root (`<pod dir>/rootfs/<container>`), the pod's name as host name;
//! - in that root what the image holds: `/usr/local/bin/orca`, the shared
//!   libraries it is linked with (the host's, read only), `/etc/passwd`
//!   and `/etc/group` with the image's user (65532, `nonroot`), the CA
//!   certificates (`/etc/ssl/certs`, the host's), MariaDB's physical-copy
//!   tools at `/usr/bin/` (`mariadb-backup`, `mbstream`, `mariadb-binlog`:
//!   the host's, read only, each if the host has it), and no shell; plus
//!   what the runtime adds: `/etc/hosts`, `/etc/hostname`,
//!   `/etc/resolv.conf` (the host's), `/dev` and `/proc`;
//! - every volume mount bound at its path (read only when asked), the
//!   ServiceAccount token's among them, so in-cluster configuration finds
//!   it where it looks; the data volume (`/var/lib/mysql`) also at its
//!   host path, which is the `datadir` the sandbox's `mariadbd` (a host
//!   process) reports, and which `mariadb-backup` goes by;
//! - `readOnlyRootFilesystem` honoured, and the user and group of the
//!   security context (the image's user by default).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Where the image keeps its binary (its entrypoint).
pub const BINARY: &str = "/usr/local/bin/orca";
/// The database tools the image carries, at these paths.
pub const TOOLS: [&str; 3] = [
    "/usr/bin/mariadb-backup",
    "/usr/bin/mbstream",
    "/usr/bin/mariadb-binlog",
];
/// The image's user and group (`USER 65532:65532`).
pub const IMAGE_USER: u32 = 65532;

/// Whether the sandbox runs this image as the orca image: its name (the
/// last path element, without tag or digest) is `orca`.
pub fn is_orca_image(image: &str) -> bool {
    let no_digest = image.split('@').next().unwrap_or(image);
    let last = no_digest.rsplit('/').next().unwrap_or(no_digest);
    last.split(':').next() == Some("orca")
}

/// The `orca` binary the image holds.
pub fn orca_binary() -> std::io::Result<PathBuf> {
    if let Some(p) = std::env::var_os("ORCA_SANDBOX_ORCA_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let candidates = exe
        .parent()
        .into_iter()
        .flat_map(|d| [d.join("orca"), d.join("../orca")]);
    for c in candidates {
        if c.is_file() {
            return Ok(c);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::NotFound,
        "the orca image's binary: no `orca` beside the sandbox (build it: cargo build -p orca), nor ORCA_SANDBOX_ORCA_BIN",
    ))
}

/// The arguments of the process, as the image's entrypoint and command
/// make them: `command` replaces the entrypoint (it must be the image's
/// binary: the image holds nothing else), `args` its default `operator`.
pub fn argv(command: &[String], args: &[String]) -> Result<Vec<String>, String> {
    let rest: Vec<String> = match command.split_first() {
        None => {
            if args.is_empty() {
                vec!["operator".to_string()]
            } else {
                args.to_vec()
            }
        }
        Some((first, more)) => {
            if first != BINARY && first != "orca" {
                return Err(format!(
                    "failed to create containerd task: exec: {first:?}: stat {first}: no such file or directory"
                ));
            }
            more.iter().chain(args).cloned().collect()
        }
    };
    Ok(rest)
}

/// One bind mount: a host path at a path inside the root.
#[derive(Debug, Clone)]
pub struct Bind {
    pub source: PathBuf,
    /// Inside the root, absolute (`/var/run/secrets/...`).
    pub target: String,
    pub read_only: bool,
}

/// A container's root, ready for [`super::spawn`].
#[derive(Debug, Clone)]
pub struct Root {
    pub dir: PathBuf,
    pub binds: Vec<Bind>,
    pub read_only: bool,
    pub hostname: String,
    pub uid: u32,
    pub gid: u32,
    pub workdir: String,
}

/// What a container's root is made of.
pub struct Layout<'a> {
    pub dir: PathBuf,
    pub binary: &'a Path,
    /// (container path, host path, read only) of each volume mount.
    pub mounts: Vec<(String, PathBuf, bool)>,
    pub hostname: &'a str,
    pub pod_ip: &'a str,
    pub read_only: bool,
    pub uid: u32,
    pub gid: u32,
    pub workdir: Option<String>,
}

fn inside(dir: &Path, target: &str) -> PathBuf {
    dir.join(target.trim_start_matches('/'))
}

/// Where the mount point of `target` is made before the container starts:
/// in the root, or, when an earlier (shorter) mount encloses it, in that
/// mount's source: the earlier bind hides the root's directories below
/// it, and a runtime makes a nested mount point inside the mounted file
/// system.
fn mount_point(dir: &Path, earlier: &[(String, PathBuf, bool)], target: &str) -> PathBuf {
    let t = Path::new(target);
    earlier
        .iter()
        .filter_map(|(at, source, _)| {
            let rest = t.strip_prefix(at).ok()?;
            Some((at.len(), source.join(rest)))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, p)| p)
        .unwrap_or_else(|| inside(dir, target))
}

/// The host files behind the image's [`TOOLS`] under `host` (`/`): each
/// that exists, symlinks resolved (the real file is bound, a link would
/// point nowhere in the container's root), with its path in the image.
pub fn host_tools(host: &Path) -> Vec<(PathBuf, &'static str)> {
    TOOLS
        .iter()
        .filter_map(|t| {
            let real = std::fs::canonicalize(inside(host, t)).ok()?;
            real.is_file().then_some((real, *t))
        })
        .collect()
}

/// Makes the container's root directory: the image's files and the
/// mount points, each bind to be made at the start.
pub fn prepare(l: &Layout<'_>) -> std::io::Result<Root> {
    let dir = &l.dir;
    std::fs::create_dir_all(dir)?;
    for d in ["etc", "tmp", "dev", "proc", "usr/local/bin", "home/nonroot"] {
        std::fs::create_dir_all(dir.join(d))?;
    }
    let mut binds = Vec::new();
    // The binary and the host's libraries, read only.
    let bin = inside(dir, BINARY);
    if !bin.exists() {
        std::fs::write(&bin, b"")?;
    }
    binds.push(Bind {
        source: l.binary.to_path_buf(),
        target: BINARY.into(),
        read_only: true,
    });
    // The database tools, read only, each on a file of its own.
    for (source, target) in host_tools(Path::new("/")) {
        let at = inside(dir, target);
        if let Some(p) = at.parent() {
            std::fs::create_dir_all(p)?;
        }
        if !at.exists() {
            std::fs::write(&at, b"")?;
        }
        binds.push(Bind {
            source,
            target: target.into(),
            read_only: true,
        });
    }
    for lib in ["lib", "lib64", "usr/lib", "usr/lib64"] {
        let host = Path::new("/").join(lib);
        let here = dir.join(lib);
        match std::fs::symlink_metadata(&host) {
            Ok(m) if m.file_type().is_symlink() => {
                let to = std::fs::read_link(&host)?;
                if std::fs::symlink_metadata(&here).is_err() {
                    std::os::unix::fs::symlink(to, &here)?;
                }
            }
            Ok(m) if m.is_dir() => {
                std::fs::create_dir_all(&here)?;
                binds.push(Bind {
                    source: host,
                    target: format!("/{lib}"),
                    read_only: true,
                });
            }
            _ => {}
        }
    }
    // The image's CA certificates (its `/etc/ssl/certs`): the host's.
    if Path::new("/etc/ssl/certs").is_dir() {
        std::fs::create_dir_all(dir.join("etc/ssl/certs"))?;
        binds.push(Bind {
            source: PathBuf::from("/etc/ssl/certs"),
            target: "/etc/ssl/certs".into(),
            read_only: true,
        });
    }
    for (t, ro) in [("/dev", false), ("/proc", false)] {
        binds.push(Bind {
            source: PathBuf::from(t),
            target: t.into(),
            read_only: ro,
        });
    }
    // What the image holds in /etc, and what the runtime writes there.
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n",
    )?;
    std::fs::write(dir.join("etc/group"), "root:x:0:\nnonroot:x:65532:\n")?;
    std::fs::write(dir.join("etc/nsswitch.conf"), "hosts: files dns\n")?;
    std::fs::write(dir.join("etc/hostname"), format!("{}\n", l.hostname))?;
    write_hosts(dir, &hosts_file(l.pod_ip, l.hostname, &[]))?;
    let resolv = std::fs::read("/etc/resolv.conf").unwrap_or_default();
    std::fs::write(dir.join("etc/resolv.conf"), resolv)?;
    // The volumes, longest path last so that nested mounts stack.
    let mut mounts = l.mounts.clone();
    mounts.sort_by_key(|(p, _, _)| p.len());
    for (i, (target, source, ro)) in mounts.iter().cloned().enumerate() {
        let at = mount_point(dir, &mounts[..i], &target);
        if source.is_dir() {
            std::fs::create_dir_all(&at)?;
        } else {
            if let Some(p) = at.parent() {
                std::fs::create_dir_all(p)?;
            }
            if !at.exists() {
                std::fs::write(&at, b"")?;
            }
        }
        binds.push(Bind {
            source,
            target,
            read_only: ro,
        });
    }
    Ok(Root {
        dir: dir.clone(),
        binds,
        read_only: l.read_only,
        hostname: l.hostname.to_string(),
        uid: l.uid,
        gid: l.gid,
        workdir: l.workdir.clone().unwrap_or_else(|| "/".into()),
    })
}

/// A Service's address as the container resolves it: its names and the
/// address of one ready endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceHost {
    pub names: Vec<String>,
    pub ip: String,
}

/// The Service names a pod in `pod_ns` resolves for Service `svc` of
/// namespace `ns`: its cluster DNS names, and its short name in its own
/// namespace (the search path's first domain).
pub fn service_names(svc: &str, ns: &str, pod_ns: &str) -> Vec<String> {
    let mut v = vec![
        format!("{svc}.{ns}.svc.cluster.local"),
        format!("{svc}.{ns}.svc"),
        format!("{svc}.{ns}"),
    ];
    if ns == pod_ns {
        v.push(svc.to_string());
    }
    v
}

/// The container's `/etc/hosts`: the pod's own entries, then the Services.
/// The sandbox has no cluster DNS nor Service addresses: a Service's
/// names resolve here to one of its ready endpoints, rewritten as the
/// endpoints change.
pub fn hosts_file(pod_ip: &str, hostname: &str, services: &[ServiceHost]) -> String {
    let mut out = format!(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{pod_ip}\t{hostname}\n"
    );
    for s in services {
        out.push_str(&format!("{}\t{}\n", s.ip, s.names.join(" ")));
    }
    out
}

/// Writes the hosts file of the root at `dir` when it changed (in place:
/// the file is the container's own, read at each lookup).
pub fn write_hosts(dir: &Path, content: &str) -> std::io::Result<()> {
    let path = dir.join("etc/hosts");
    if std::fs::read_to_string(&path).ok().as_deref() == Some(content) {
        return Ok(());
    }
    let tmp = dir.join("etc/.hosts.orca-tmp");
    std::fs::write(&tmp, content)?;
    std::fs::rename(&tmp, &path)
}

fn cstr(p: &Path) -> std::io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(std::io::Error::other)
}

/// A [`Root`] in the form the child uses between fork and exec: every
/// string made beforehand, so that only system calls remain.
pub struct Prepared {
    root: CString,
    /// (source, target, read only)
    binds: Vec<(CString, CString, bool)>,
    read_only: bool,
    hostname: CString,
    uid: u32,
    gid: u32,
    workdir: CString,
}

impl Root {
    pub fn prepared(&self) -> std::io::Result<Prepared> {
        let mut binds = Vec::new();
        for b in &self.binds {
            binds.push((
                cstr(&b.source)?,
                cstr(&inside(&self.dir, &b.target))?,
                b.read_only,
            ));
        }
        Ok(Prepared {
            root: cstr(&self.dir)?,
            binds,
            read_only: self.read_only,
            hostname: CString::new(self.hostname.clone()).map_err(std::io::Error::other)?,
            uid: self.uid,
            gid: self.gid,
            workdir: CString::new(self.workdir.clone()).map_err(std::io::Error::other)?,
        })
    }
}

fn check(r: nix::libc::c_int) -> std::io::Result<()> {
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

impl Prepared {
    /// Enters the root: in the child, between fork and exec.
    ///
    /// # Safety
    /// Only between fork and exec: it changes the process's namespaces,
    /// root and user. It makes system calls only.
    pub unsafe fn enter(&self) -> std::io::Result<()> {
        use nix::libc::{
            CLONE_NEWNS, CLONE_NEWUTS, MS_BIND, MS_PRIVATE, MS_RDONLY, MS_REC, MS_REMOUNT,
        };
        let null = std::ptr::null();
        // SAFETY: plain system calls on strings made before the fork.
        unsafe {
            check(nix::libc::unshare(CLONE_NEWNS | CLONE_NEWUTS))?;
            check(nix::libc::mount(
                null,
                c"/".as_ptr(),
                null,
                MS_REC | MS_PRIVATE,
                std::ptr::null(),
            ))?;
            // The root a mount of its own, so that it can be made read only.
            check(nix::libc::mount(
                self.root.as_ptr(),
                self.root.as_ptr(),
                null,
                MS_BIND | MS_REC,
                std::ptr::null(),
            ))?;
            for (source, target, ro) in &self.binds {
                check(nix::libc::mount(
                    source.as_ptr(),
                    target.as_ptr(),
                    null,
                    MS_BIND | MS_REC,
                    std::ptr::null(),
                ))?;
                if *ro {
                    check(nix::libc::mount(
                        null,
                        target.as_ptr(),
                        null,
                        MS_BIND | MS_REMOUNT | MS_RDONLY,
                        std::ptr::null(),
                    ))?;
                }
            }
            if self.read_only {
                check(nix::libc::mount(
                    null,
                    self.root.as_ptr(),
                    null,
                    MS_BIND | MS_REMOUNT | MS_RDONLY,
                    std::ptr::null(),
                ))?;
            }
            check(nix::libc::sethostname(
                self.hostname.as_ptr(),
                self.hostname.as_bytes().len(),
            ))?;
            check(nix::libc::chroot(self.root.as_ptr()))?;
            check(nix::libc::chdir(self.workdir.as_ptr()))?;
            check(nix::libc::setgroups(0, std::ptr::null()))?;
            check(nix::libc::setgid(self.gid))?;
            check(nix::libc::setuid(self.uid))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_orca_image_is_known_by_its_name() {
        for (image, orca) in [
            ("ghcr.io/orca-dev/orca:0.1.0", true),
            ("orca", true),
            ("localhost:5000/orca@sha256:abc", true),
            ("orca:dev", true),
            ("ghcr.io/orca-dev/orca-web:1", false),
            ("mariadb:11.4", false),
            ("orcas/mariadb", false),
        ] {
            assert_eq!(is_orca_image(image), orca, "{image}");
        }
    }

    #[test]
    fn a_nested_mount_point_is_made_inside_the_mount_that_encloses_it() {
        let root = Path::new("/r");
        let earlier = vec![
            ("/tmp".to_string(), PathBuf::from("/pods/p/tmp"), false),
            ("/tmp/a".to_string(), PathBuf::from("/vol/a"), false),
            (
                "/var/lib/mysql".to_string(),
                PathBuf::from("/vol/data"),
                false,
            ),
        ];
        let table = [
            ("/etc/x", "/r/etc/x"),
            ("/tmp/b/c", "/pods/p/tmp/b/c"),
            ("/tmp/a/d", "/vol/a/d"),
            ("/tmpx", "/r/tmpx"),
            ("/var/lib/mysql/x", "/vol/data/x"),
        ];
        for (target, want) in table {
            assert_eq!(
                mount_point(root, &earlier, target),
                PathBuf::from(want),
                "{target}"
            );
        }
    }

    #[test]
    fn the_database_tools_are_the_hosts_real_files() {
        let host = tempfile::tempdir().unwrap();
        let bin = host.path().join("usr/bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join("mariadb-backup"), b"backup").unwrap();
        // mariadb-binlog a link to the real file; no mbstream
        std::fs::write(bin.join("mysqlbinlog"), b"binlog").unwrap();
        std::os::unix::fs::symlink("mysqlbinlog", bin.join("mariadb-binlog")).unwrap();
        let found = host_tools(host.path());
        let real = std::fs::canonicalize(&bin).unwrap();
        assert_eq!(
            found,
            [
                (real.join("mariadb-backup"), "/usr/bin/mariadb-backup"),
                (real.join("mysqlbinlog"), "/usr/bin/mariadb-binlog"),
            ]
        );
    }

    #[test]
    fn the_root_has_a_mount_point_for_each_tool_of_the_host() {
        let dir = tempfile::tempdir().unwrap();
        let binary = dir.path().join("orca");
        std::fs::write(&binary, b"").unwrap();
        let root = prepare(&Layout {
            dir: dir.path().join("root"),
            binary: &binary,
            mounts: Vec::new(),
            hostname: "p",
            pod_ip: "127.20.0.9",
            read_only: true,
            uid: IMAGE_USER,
            gid: IMAGE_USER,
            workdir: None,
        })
        .unwrap();
        for (source, target) in host_tools(Path::new("/")) {
            let b = root
                .binds
                .iter()
                .find(|b| b.target == target)
                .unwrap_or_else(|| panic!("no bind at {target}"));
            assert_eq!(b.source, source);
            assert!(b.read_only, "{target}");
            assert!(inside(&root.dir, target).is_file(), "{target}");
        }
    }

    #[test]
    fn services_resolve_by_their_cluster_names() {
        assert_eq!(
            service_names("orca-store-primary", "orca", "orca"),
            [
                "orca-store-primary.orca.svc.cluster.local",
                "orca-store-primary.orca.svc",
                "orca-store-primary.orca",
                "orca-store-primary"
            ]
        );
        assert_eq!(service_names("db", "apps", "orca").len(), 3);
        let h = hosts_file(
            "127.20.0.5",
            "orca-abc",
            &[ServiceHost {
                names: vec!["db.apps.svc".into(), "db.apps".into()],
                ip: "127.20.0.9".into(),
            }],
        );
        assert!(h.contains("127.20.0.5\torca-abc\n"), "{h}");
        assert!(h.ends_with("127.20.0.9\tdb.apps.svc db.apps\n"), "{h}");
    }

    #[test]
    fn entrypoint_and_command_as_the_image_makes_them() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(argv(&[], &[]).unwrap(), s(&["operator"]));
        assert_eq!(
            argv(&[], &s(&["operator", "--lease-name=x"])).unwrap(),
            s(&["operator", "--lease-name=x"])
        );
        assert_eq!(
            argv(&s(&[BINARY, "standalone"]), &s(&["--listen", "a"])).unwrap(),
            s(&["standalone", "--listen", "a"])
        );
        let e = argv(&s(&["/bin/sh", "-c", "x"]), &[]).unwrap_err();
        assert!(e.contains("no such file or directory"), "{e}");
    }
}
