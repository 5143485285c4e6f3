//! The container image (Dockerfile, scripts/image.sh): built offline with
//! buildah from the orca binary cargo built for this test, unpacked with
//! umoci, and the binary run from the unpacked root and nothing else
//! (`chroot`, as root): the image's configuration, its files (the binary,
//! its libraries, the CA bundle, passwd/group, /tmp; no shell) and their
//! times (SOURCE_DATE_EPOCH).

use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const TAG: &str = "test";

fn require(tool: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .expect("run sh")
        .status
        .success();
    assert!(
        found,
        "{tool} not found: this test builds the image with buildah and unpacks it with umoci; \
         `make deps` installs them (apt-get install buildah umoci skopeo)"
    );
}

fn check(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn json(path: &Path) -> serde_json::Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

fn blob(layout: &Path, digest: &str) -> serde_json::Value {
    let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
    json(&layout.join("blobs/sha256").join(hex))
}

/// The manifest digest of `reference` in the layout's index.
fn manifest_digest(index: &serde_json::Value, reference: &str) -> String {
    index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == reference)
        .and_then(|m| m["digest"].as_str())
        .unwrap_or_else(|| panic!("no ref {reference} in index.json: {index}"))
        .to_string()
}

/// The paths `ldd` names for `bin`: its libraries and the dynamic loader.
fn ldd_paths(bin: &str) -> BTreeSet<String> {
    let out = Command::new("ldd").arg(bin).output().expect("run ldd");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .filter(|w| w.starts_with('/'))
        .map(str::to_string)
        .collect()
}

/// Every entry under `root`, as an absolute path inside it.
fn walk(root: &Path) -> Vec<(String, std::fs::Metadata)> {
    let mut entries = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("read_dir") {
            let p = e.expect("dir entry").path();
            let md = std::fs::symlink_metadata(&p).expect("metadata");
            let inside = format!("/{}", p.strip_prefix(root).expect("under root").display());
            if md.is_dir() {
                stack.push(p.clone());
            }
            entries.push((inside, md));
        }
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries
}

/// `orca --version` run from the root alone, as `userspec` when given.
fn version_in(rootfs: &Path, userspec: Option<&str>) -> String {
    let mut cmd = Command::new("chroot");
    if let Some(u) = userspec {
        cmd.arg(format!("--userspec={u}"));
    }
    let out = cmd
        .arg(rootfs)
        .args(["/usr/local/bin/orca", "--version"])
        .env_clear()
        // To find chroot; orca itself is named by its path in the root.
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .expect("run chroot");
    check(&format!("chroot {} orca --version", rootfs.display()), out)
}

#[test]
fn image_holds_orca_alone_and_runs_it() {
    require("buildah");
    require("umoci");
    let uid = check("id -u", Command::new("id").arg("-u").output().expect("id"));
    assert_eq!(
        uid.trim(),
        "0",
        "this test runs buildah (vfs storage) and chroot: run it as root"
    );

    let version = env!("CARGO_PKG_VERSION");
    let tmp = tempfile::tempdir().expect("tempdir");
    // A copy of the binary cargo built for this test: another cargo
    // build sharing the target directory may relink the original while
    // this test runs.
    let bin_copy = tmp.path().join("orca");
    std::fs::copy(env!("CARGO_BIN_EXE_orca"), &bin_copy).expect("copy the orca binary");
    let bin = bin_copy.to_str().expect("a UTF-8 temp path");
    let out = tmp.path().join("out");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/image.sh");

    let report = check(
        "scripts/image.sh",
        Command::new(&script)
            .arg(bin)
            .arg(format!("orca:{TAG}"))
            .arg(&out)
            .env("IMAGE_WORK", tmp.path().join("work"))
            .env("SOURCE_DATE_EPOCH", "0")
            .output()
            .expect("run scripts/image.sh"),
    );
    eprintln!("{report}");

    // The layout: both tags, one manifest, its configuration.
    let layout = out.join("oci");
    let index = json(&layout.join("index.json"));
    let digest = manifest_digest(&index, TAG);
    assert_eq!(
        manifest_digest(&index, version),
        digest,
        "tags {TAG} and {version} name different manifests"
    );
    let manifest = blob(&layout, &digest);
    let config = blob(
        &layout,
        manifest["config"]["digest"]
            .as_str()
            .expect("config digest"),
    );
    let c = &config["config"];
    assert_eq!(c["User"], "65532:65532", "image config: {config}");
    assert_eq!(
        c["Entrypoint"],
        serde_json::json!(["/usr/local/bin/orca"]),
        "image config: {config}"
    );
    assert_eq!(
        c["Cmd"],
        serde_json::json!(["operator"]),
        "image config: {config}"
    );
    let labels = &c["Labels"];
    assert_eq!(labels["org.opencontainers.image.title"], "orca");
    assert_eq!(labels["org.opencontainers.image.licenses"], "Apache-2.0");
    assert_eq!(labels["org.opencontainers.image.version"], version);
    assert_eq!(
        labels["org.opencontainers.image.source"],
        "https://github.com/orca-dev/orca"
    );
    assert_eq!(config["created"], "1970-01-01T00:00:00Z");

    // The size the script reports is the manifest's.
    let compressed: u64 = manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["size"].as_u64().expect("layer size"))
        .sum();
    assert!(
        report.contains(&format!("compressed layers: {compressed} bytes")),
        "report does not give the manifest's {compressed} bytes:\n{report}"
    );
    assert!(report.contains("unpacked root:"), "{report}");

    // Unpacked as a runtime bundle: the runtime configuration.
    let bundle = tmp.path().join("bundle");
    check(
        "umoci unpack",
        Command::new("umoci")
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:{TAG}", layout.display()))
            .arg(&bundle)
            .output()
            .expect("run umoci"),
    );
    let runtime = json(&bundle.join("config.json"));
    assert_eq!(runtime["process"]["user"]["uid"], 65532, "{runtime}");
    assert_eq!(runtime["process"]["user"]["gid"], 65532, "{runtime}");
    assert_eq!(
        runtime["process"]["args"],
        serde_json::json!(["/usr/local/bin/orca", "operator"])
    );

    // The root: these files and the directories that hold them, nothing
    // else; no symlinks, every time SOURCE_DATE_EPOCH.
    let rootfs = bundle.join("rootfs");
    let libs = ldd_paths(bin);
    assert!(
        libs.iter().any(|l| l.contains("ld-linux")),
        "ldd names no dynamic loader for {bin}: {libs:?}"
    );
    let mut want: BTreeSet<String> = [
        "/usr/local/bin/orca",
        "/etc/passwd",
        "/etc/group",
        "/etc/ssl/certs/ca-certificates.crt",
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    want.extend(libs);
    let entries = walk(&rootfs);
    let mut files = BTreeSet::new();
    for (path, md) in &entries {
        assert_eq!(
            md.mtime(),
            0,
            "{path} has a time of its own: {}",
            md.mtime()
        );
        if md.is_dir() {
            assert!(
                path == "/tmp" || want.iter().any(|f| f.starts_with(&format!("{path}/"))),
                "unexpected directory {path} in the image"
            );
        } else {
            assert!(md.is_file(), "{path} is not a regular file");
            files.insert(path.clone());
        }
    }
    assert_eq!(files, want, "the image's files");
    assert!(!rootfs.join("bin/sh").exists(), "the image has a shell");
    let tmp_mode = std::fs::metadata(rootfs.join("tmp"))
        .expect("/tmp")
        .permissions()
        .mode();
    assert_eq!(tmp_mode & 0o7777, 0o1777, "/tmp mode {tmp_mode:o}");
    assert!(
        std::fs::read_dir(rootfs.join("tmp"))
            .expect("/tmp")
            .next()
            .is_none(),
        "/tmp is not empty"
    );
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).expect("passwd");
    assert!(
        passwd.lines().any(|l| l.starts_with("orca:x:65532:65532:")),
        "{passwd}"
    );
    let group = std::fs::read_to_string(rootfs.join("etc/group")).expect("group");
    assert!(group.lines().any(|l| l == "orca:x:65532:"), "{group}");
    let image_bin: PathBuf = rootfs.join("usr/local/bin/orca");
    assert!(
        std::fs::read(&image_bin).expect("image's orca") == std::fs::read(bin).expect("orca"),
        "the image's orca is not the binary cargo built"
    );

    // orca runs from that root alone, as root and as the image's user.
    for user in [None, Some("65532:65532")] {
        let v = version_in(&rootfs, user);
        assert!(
            v.contains(version),
            "orca --version in the image ({user:?}) does not name {version}: {v}"
        );
    }
}
