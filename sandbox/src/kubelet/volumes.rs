//! A pod's volumes as host directories, and a container's mounts as a map
//! from container paths to host paths.
//!
//! - `configMap`, `secret`, `downwardAPI` and `projected` volumes are files
//!   written into the pod's directory (items, keys and modes honoured),
//!   refreshed while the pod runs;
//! - `emptyDir` (and any volume type the sandbox does not know, such as
//!   `hostPath`) is a directory of the pod that lives as long as the pod;
//! - `persistentVolumeClaim` is the claim's directory
//!   (`<root>/volumes/pvc-<claim uid>`), which outlives pods and goes when
//!   the claim is deleted.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{
    Container, DownwardAPIVolumeFile, KeyToPath, PersistentVolumeClaim, Volume,
};
use kube::ResourceExt;
use kube::api::Api;

use super::env::{Lookup, PodFacts, configmap_entries, field_value, secret_entries};

/// The ServiceAccount tokens a pod's projected volumes hold, by volume and
/// path: the token and when to ask for a new one (at 80% of its life, as
/// the kubelet does).
pub type Tokens = HashMap<String, (String, std::time::Instant)>;

/// Asks the API server for a token of the pod's ServiceAccount (the
/// TokenRequest API), bound to the pod.
async fn request_token(
    lookup: &Lookup,
    facts: &PodFacts<'_>,
    audience: Option<&str>,
    expiration: i64,
) -> Result<(String, std::time::Duration), String> {
    use k8s_openapi::api::core::v1::ServiceAccount;
    let pod = facts.pod;
    let ns = pod.namespace().unwrap_or_default();
    let sa = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".to_string());
    let body = serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "audiences": audience.map(|a| vec![a.to_string()]).unwrap_or_default(),
            "expirationSeconds": expiration,
            "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod.name_any(), "uid": pod.uid()},
        }
    });
    let api: Api<ServiceAccount> = Api::namespaced(lookup.client(), &ns);
    let answer: serde_json::Value = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        api.create_subresource("token", &sa, &kube::api::PostParams::default(), &body),
    )
    .await
    .map_err(|_| "the token request timed out".to_string())?
    .map_err(|e| format!("failed to fetch token: {e}"))?;
    let token = answer["status"]["token"]
        .as_str()
        .ok_or_else(|| "failed to fetch token: the answer holds none".to_string())?;
    let life = std::time::Duration::from_secs(u64::try_from(expiration).unwrap_or(3600));
    Ok((token.to_string(), life))
}

/// Why a volume cannot be set up (the kubelet's `FailedMount`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountError(pub String);

/// The directory of a claim.
pub fn claim_dir(root: &Path, uid: &str) -> PathBuf {
    root.join("volumes").join(format!("pvc-{uid}"))
}

/// A file to project: relative path, content, mode.
type Projected = (PathBuf, Vec<u8>, u32);

fn relative(path: &str) -> Result<PathBuf, MountError> {
    let p = Path::new(path);
    if path.is_empty()
        || p.components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(MountError(format!("invalid path {path:?}")));
    }
    Ok(p.to_path_buf())
}

fn project_keys(
    entries: &BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    mode: u32,
    what: &str,
    optional: bool,
) -> Result<Vec<Projected>, MountError> {
    match items {
        None => entries
            .iter()
            .map(|(k, v)| Ok((relative(k)?, v.clone(), mode)))
            .collect(),
        Some(items) => {
            let mut out = Vec::new();
            for it in items {
                match entries.get(&it.key) {
                    Some(v) => out.push((
                        relative(&it.path)?,
                        v.clone(),
                        it.mode.map(|m| m as u32).unwrap_or(mode),
                    )),
                    None if optional => {}
                    None => {
                        return Err(MountError(format!(
                            "{what} references non-existent key {:?}",
                            it.key
                        )));
                    }
                }
            }
            Ok(out)
        }
    }
}

fn project_downward(
    facts: &PodFacts<'_>,
    items: &[DownwardAPIVolumeFile],
    mode: u32,
) -> Result<Vec<Projected>, MountError> {
    let mut out = Vec::new();
    for it in items {
        let value = match (&it.field_ref, &it.resource_field_ref) {
            (Some(f), _) => field_value(
                facts.pod,
                &f.field_path,
                facts.node,
                facts.pod_ip,
                facts.host_ip,
            )
            .ok_or_else(|| MountError(format!("unsupported fieldRef {:?}", f.field_path)))?,
            (None, Some(_)) => "0".to_string(),
            (None, None) => String::new(),
        };
        out.push((
            relative(&it.path)?,
            value.into_bytes(),
            it.mode.map(|m| m as u32).unwrap_or(mode),
        ));
    }
    Ok(out)
}

/// Writes `files` under `dir`, rewriting only what changed and removing
/// files no longer projected.
fn write_files(dir: &Path, files: &[Projected]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut wanted: Vec<PathBuf> = Vec::new();
    for (rel, content, mode) in files {
        let path = dir.join(rel);
        wanted.push(path.clone());
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if std::fs::read(&path).ok().as_deref() != Some(content.as_slice()) {
            let tmp = path.with_extension("orca-tmp");
            std::fs::write(&tmp, content)?;
            std::fs::rename(&tmp, &path)?;
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode & 0o777))?;
    }
    remove_unwanted(dir, &wanted)
}

fn remove_unwanted(dir: &Path, wanted: &[PathBuf]) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            remove_unwanted(&path, wanted)?;
            if std::fs::read_dir(&path)?.next().is_none() {
                let _ = std::fs::remove_dir(&path);
            }
        } else if !wanted.contains(&path) {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

fn io_err(vol: &str) -> impl Fn(std::io::Error) -> MountError + '_ {
    move |e| MountError(format!("MountVolume.SetUp failed for volume {vol:?}: {e}"))
}

/// Sets up (or refreshes) every volume of the pod; returns each volume's
/// host directory.
pub async fn prepare(
    lookup: &mut Lookup,
    facts: &PodFacts<'_>,
    pod_dir: &Path,
    root: &Path,
    tokens: &mut Tokens,
) -> Result<HashMap<String, PathBuf>, MountError> {
    let mut dirs = HashMap::new();
    let volumes: Vec<Volume> = facts
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .unwrap_or_default();
    let ns = facts.pod.namespace().unwrap_or_default();
    for vol in &volumes {
        let name = vol.name.as_str();
        let dir = pod_dir.join("volumes").join(name);
        let failed = |msg: String| {
            MountError(format!(
                "MountVolume.SetUp failed for volume {name:?} : {msg}"
            ))
        };
        if let Some(cm) = &vol.config_map {
            let mode = cm.default_mode.map(|m| m as u32).unwrap_or(0o644);
            let optional = cm.optional.unwrap_or(false);
            let entries = match lookup.configmap(&cm.name).await.map_err(|e| failed(e.0))? {
                Some(c) => configmap_entries(c),
                None if optional => BTreeMap::new(),
                None => return Err(failed(format!("configmap {:?} not found", cm.name))),
            };
            let what = format!("configMap {:?}", cm.name);
            let files = project_keys(&entries, cm.items.as_ref(), mode, &what, optional)?;
            write_files(&dir, &files).map_err(io_err(name))?;
        } else if let Some(s) = &vol.secret {
            let mode = s.default_mode.map(|m| m as u32).unwrap_or(0o644);
            let optional = s.optional.unwrap_or(false);
            let secret_name = s.secret_name.clone().unwrap_or_default();
            let entries = match lookup.secret(&secret_name).await.map_err(|e| failed(e.0))? {
                Some(sec) => secret_entries(sec),
                None if optional => BTreeMap::new(),
                None => return Err(failed(format!("secret {secret_name:?} not found"))),
            };
            let what = format!("secret {secret_name:?}");
            let files = project_keys(&entries, s.items.as_ref(), mode, &what, optional)?;
            write_files(&dir, &files).map_err(io_err(name))?;
        } else if let Some(d) = &vol.downward_api {
            let mode = d.default_mode.map(|m| m as u32).unwrap_or(0o644);
            let files = project_downward(facts, d.items.as_deref().unwrap_or_default(), mode)?;
            write_files(&dir, &files).map_err(io_err(name))?;
        } else if let Some(p) = &vol.projected {
            let mode = p.default_mode.map(|m| m as u32).unwrap_or(0o644);
            let mut files = Vec::new();
            for src in p.sources.iter().flatten() {
                if let Some(cm) = &src.config_map {
                    let optional = cm.optional.unwrap_or(false);
                    let entries = match lookup.configmap(&cm.name).await.map_err(|e| failed(e.0))? {
                        Some(c) => configmap_entries(c),
                        None if optional => BTreeMap::new(),
                        None => {
                            return Err(failed(format!("configmap {:?} not found", cm.name)));
                        }
                    };
                    let what = format!("configMap {:?}", cm.name);
                    files.extend(project_keys(
                        &entries,
                        cm.items.as_ref(),
                        mode,
                        &what,
                        optional,
                    )?);
                }
                if let Some(s) = &src.secret {
                    let optional = s.optional.unwrap_or(false);
                    let entries = match lookup.secret(&s.name).await.map_err(|e| failed(e.0))? {
                        Some(sec) => secret_entries(sec),
                        None if optional => BTreeMap::new(),
                        None => return Err(failed(format!("secret {:?} not found", s.name))),
                    };
                    let what = format!("secret {:?}", s.name);
                    files.extend(project_keys(
                        &entries,
                        s.items.as_ref(),
                        mode,
                        &what,
                        optional,
                    )?);
                }
                if let Some(d) = &src.downward_api {
                    files.extend(project_downward(
                        facts,
                        d.items.as_deref().unwrap_or_default(),
                        mode,
                    )?);
                }
                if let Some(t) = &src.service_account_token {
                    let key = format!("{name}/{}", t.path);
                    let fresh = tokens
                        .get(&key)
                        .filter(|(_, renew)| std::time::Instant::now() < *renew)
                        .map(|(tok, _)| tok.clone());
                    let token = match fresh {
                        Some(tok) => tok,
                        None => {
                            let expiration = t.expiration_seconds.unwrap_or(3600);
                            let (tok, life) =
                                request_token(lookup, facts, t.audience.as_deref(), expiration)
                                    .await
                                    .map_err(failed)?;
                            let renew = std::time::Instant::now() + life.mul_f64(0.8);
                            tokens.insert(key, (tok.clone(), renew));
                            tok
                        }
                    };
                    files.push((relative(&t.path)?, token.into_bytes(), mode));
                }
            }
            write_files(&dir, &files).map_err(io_err(name))?;
        } else if let Some(c) = &vol.persistent_volume_claim {
            let api: Api<PersistentVolumeClaim> = Api::namespaced(lookup.client(), &ns);
            let claim = api
                .get_opt(&c.claim_name)
                .await
                .map_err(|e| failed(e.to_string()))?
                .ok_or_else(|| {
                    failed(format!(
                        "persistentvolumeclaim {:?} not found",
                        c.claim_name
                    ))
                })?;
            let bound = claim.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
            let uid = claim.uid().unwrap_or_default();
            if !bound || claim.metadata.deletion_timestamp.is_some() {
                return Err(failed(format!(
                    "persistentvolumeclaim {:?} is not bound",
                    c.claim_name
                )));
            }
            let d = claim_dir(root, &uid);
            std::fs::create_dir_all(&d).map_err(io_err(name))?;
            dirs.insert(name.to_string(), d);
            continue;
        } else {
            // emptyDir and the types the sandbox does not emulate; writable
            // by any user, as the kubelet makes an emptyDir
            std::fs::create_dir_all(&dir).map_err(io_err(name))?;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
                .map_err(io_err(name))?;
        }
        dirs.insert(name.to_string(), dir);
    }
    Ok(dirs)
}

/// A container's view of the file system: container paths that map to
/// host paths.
#[derive(Debug, Clone, Default)]
pub struct Mounts {
    /// (container path, host path), longest container path first.
    entries: Vec<(String, PathBuf)>,
}

fn trim(p: &str) -> &str {
    let t = p.trim_end_matches('/');
    if t.is_empty() { "/" } else { t }
}

impl Mounts {
    /// The mounts of `c` given the pod's volume directories.
    pub fn of(c: &Container, volumes: &HashMap<String, PathBuf>) -> Mounts {
        let mut entries = Vec::new();
        for m in c.volume_mounts.iter().flatten() {
            let Some(dir) = volumes.get(&m.name) else {
                continue;
            };
            let sub = m.sub_path.clone().unwrap_or_default();
            let host = if sub.is_empty() {
                dir.clone()
            } else {
                dir.join(sub.trim_start_matches('/'))
            };
            entries.push((trim(&m.mount_path).to_string(), host));
        }
        entries.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        Mounts { entries }
    }

    /// Adds a mount (the image's own volumes).
    pub fn add(&mut self, container_path: &str, host: PathBuf) {
        self.entries.push((trim(container_path).to_string(), host));
        self.entries
            .sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    }

    /// The host path of a container path, when it is on a mount.
    pub fn host_path(&self, path: &str) -> Option<PathBuf> {
        let path = trim(path);
        for (mount, host) in &self.entries {
            if path == mount {
                return Some(host.clone());
            }
            let prefix = if mount == "/" {
                "/".to_string()
            } else {
                format!("{mount}/")
            };
            if let Some(rest) = path.strip_prefix(&prefix) {
                return Some(host.join(rest));
            }
        }
        None
    }

    /// Whether something is mounted exactly at `path`.
    pub fn has(&self, path: &str) -> bool {
        self.entries.iter().any(|(m, _)| m == trim(path))
    }

    /// Mounts strictly below `dir` (single files mounted with subPath, for
    /// instance), as (container path, host path).
    pub fn below(&self, dir: &str) -> Vec<(String, PathBuf)> {
        let prefix = format!("{}/", trim(dir));
        let mut v: Vec<(String, PathBuf)> = self
            .entries
            .iter()
            .filter(|(m, _)| m.starts_with(&prefix))
            .cloned()
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_map_longest_prefix() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "c",
            "volumeMounts": [
                {"name": "data", "mountPath": "/var/lib/mysql"},
                {"name": "conf", "mountPath": "/etc/mysql/conf.d/"},
                {"name": "one", "mountPath": "/etc/mysql/mariadb.conf.d/x.cnf", "subPath": "x.cnf"}
            ]
        }))
        .unwrap();
        let mut vols = HashMap::new();
        vols.insert("data".to_string(), PathBuf::from("/h/data"));
        vols.insert("conf".to_string(), PathBuf::from("/h/conf"));
        vols.insert("one".to_string(), PathBuf::from("/h/one"));
        let m = Mounts::of(&c, &vols);
        assert_eq!(
            m.host_path("/var/lib/mysql"),
            Some(PathBuf::from("/h/data"))
        );
        assert_eq!(
            m.host_path("/var/lib/mysql/x/y"),
            Some(PathBuf::from("/h/data/x/y"))
        );
        assert_eq!(m.host_path("/var/lib/mysqlx"), None);
        assert_eq!(
            m.host_path("/etc/mysql/conf.d/my.cnf"),
            Some(PathBuf::from("/h/conf/my.cnf"))
        );
        assert!(m.has("/etc/mysql/conf.d"));
        assert_eq!(
            m.below("/etc/mysql/mariadb.conf.d"),
            vec![(
                "/etc/mysql/mariadb.conf.d/x.cnf".to_string(),
                PathBuf::from("/h/one/x.cnf")
            )]
        );
    }

    #[test]
    fn projections_honour_items_and_remove_stale_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut entries = BTreeMap::new();
        entries.insert("a".to_string(), b"1".to_vec());
        entries.insert("b".to_string(), b"2".to_vec());
        let all = project_keys(&entries, None, 0o644, "cm", false).unwrap();
        write_files(dir.path(), &all).unwrap();
        assert_eq!(std::fs::read(dir.path().join("b")).unwrap(), b"2");
        let items = vec![KeyToPath {
            key: "a".into(),
            path: "sub/x.cnf".into(),
            mode: Some(0o600),
        }];
        let some = project_keys(&entries, Some(&items), 0o644, "cm", false).unwrap();
        write_files(dir.path(), &some).unwrap();
        assert!(!dir.path().join("b").exists());
        assert_eq!(std::fs::read(dir.path().join("sub/x.cnf")).unwrap(), b"1");
        let mode = std::fs::metadata(dir.path().join("sub/x.cnf"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let missing = vec![KeyToPath {
            key: "zz".into(),
            path: "z".into(),
            mode: None,
        }];
        assert!(project_keys(&entries, Some(&missing), 0o644, "cm", false).is_err());
        assert!(relative("../x").is_err());
    }
}
