//! The file work of a copy: the backup tools' command lines, the GTID
//! position a prepared backup carries, and the swap of a prepared copy
//! into the data directory.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{AgentError, OLD, STAGING, io};

/// The files in which `mariadb-backup` writes the binlog position of the
/// backup (10.x, then 11.x's name).
pub const BINLOG_INFO: [&str; 2] = ["xtrabackup_binlog_info", "mariadb_backup_binlog_info"];

/// The GTID position in the content of a binlog-info file: `file`,
/// `position`, then the GTID position (tab separated; empty on a server
/// that has written no GTID).
pub fn gtid_of_binlog_info(text: &str) -> Option<String> {
    let line = text.lines().find(|l| !l.trim().is_empty())?;
    let mut fields = line.split('\t');
    let _file = fields.next()?;
    let _pos = fields.next()?.trim().parse::<u64>().ok()?;
    Some(fields.next().unwrap_or("").trim().to_string())
}

/// The GTID position of a prepared backup in `dir`.
pub fn backup_gtid(dir: &Path) -> Result<String, AgentError> {
    for name in BINLOG_INFO {
        if let Ok(text) = std::fs::read_to_string(dir.join(name)) {
            return gtid_of_binlog_info(&text).ok_or_else(|| {
                AgentError::Copy(format!("{name} of the copy is not `file position gtid`"))
            });
        }
    }
    Err(AgentError::Copy(
        "the copy has no binlog position (no xtrabackup_binlog_info): the source's binary log is off?"
            .into(),
    ))
}

/// Whether an entry of the data directory is kept through a swap: the
/// agent's own files (the staging directory, a saved tail, the arming)
/// and `lost+found` of a fresh file system.
pub fn kept(name: &str) -> bool {
    name.starts_with(".orca-") || name == "lost+found"
}

/// The journal of a swap under way: which entries go aside, which come
/// in, and how far it got, so that a swap cut short (the container
/// killed) is finished by the next start rather than left half done.
pub const SWAP_JOURNAL: &str = ".orca-swap.json";

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Journal {
    /// Every old entry is aside; the new ones are coming in.
    moving_in: bool,
    old: Vec<String>,
    new: Vec<String>,
}

/// Whether a swap was cut short.
pub fn swap_pending(datadir: &Path) -> bool {
    datadir.join(SWAP_JOURNAL).exists()
}

/// Replaces the content of `datadir` with the prepared copy in its
/// staging directory: the previous content moved aside (on the same
/// volume, so by renames), the copy moved in, its files given the data
/// directory's owner, then the previous content deleted. Each phase is
/// journalled ([`SWAP_JOURNAL`]); called again after an interruption, it
/// finishes what the journal says.
pub fn swap_in(datadir: &Path) -> Result<(), AgentError> {
    let files = super::Files::new(datadir);
    let staging = datadir.join(STAGING);
    let old = datadir.join(OLD);
    let mut journal = match files.read::<Journal>(SWAP_JOURNAL) {
        Some(j) => j,
        None => {
            if old.exists() {
                std::fs::remove_dir_all(&old).map_err(io(format!("removing {}", old.display())))?;
            }
            let j = Journal {
                moving_in: false,
                old: entries(datadir)?.into_iter().filter(|n| !kept(n)).collect(),
                new: entries(&staging)?,
            };
            files.write(SWAP_JOURNAL, &j)?;
            j
        }
    };
    if !journal.moving_in {
        std::fs::create_dir_all(&old).map_err(io(format!("making {}", old.display())))?;
        for name in &journal.old {
            let (from, to) = (datadir.join(name), old.join(name));
            if std::fs::symlink_metadata(&from).is_ok() && std::fs::symlink_metadata(&to).is_err() {
                std::fs::rename(&from, &to).map_err(io(format!("moving {name} aside")))?;
            }
        }
        journal.moving_in = true;
        files.write(SWAP_JOURNAL, &journal)?;
    }
    let meta = std::fs::metadata(datadir).map_err(io("reading the data directory's owner"))?;
    for name in &journal.new {
        let (from, to) = (staging.join(name), datadir.join(name));
        if std::fs::symlink_metadata(&from).is_ok() {
            std::fs::rename(&from, &to).map_err(io(format!("moving {name} in")))?;
        }
        if std::fs::symlink_metadata(&to).is_ok() {
            chown_tree(&to, meta.uid(), meta.gid())?;
        }
    }
    remove_staging(datadir)?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(io("removing the previous content"))?;
    }
    files.remove(SWAP_JOURNAL)
}

/// Deletes the staging directory.
pub fn remove_staging(datadir: &Path) -> Result<(), AgentError> {
    let staging = datadir.join(STAGING);
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(io("removing the staging directory"))?;
    }
    Ok(())
}

/// Empties the staging directory (a failed or interrupted attempt).
pub fn clear_staging(datadir: &Path) -> Result<PathBuf, AgentError> {
    remove_staging(datadir)?;
    let staging = datadir.join(STAGING);
    std::fs::create_dir_all(&staging).map_err(io("making the staging directory"))?;
    Ok(staging)
}

fn entries(dir: &Path) -> Result<Vec<String>, AgentError> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io(format!("listing {}", dir.display())))? {
        let e = e.map_err(io(format!("listing {}", dir.display())))?;
        names.push(e.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

fn chown_tree(path: &Path, uid: u32, gid: u32) -> Result<(), AgentError> {
    let meta = std::fs::symlink_metadata(path).map_err(io(format!("{}", path.display())))?;
    if meta.uid() != uid || meta.gid() != gid {
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))
            .map_err(io(format!("giving {} its owner", path.display())))?;
    }
    if meta.is_dir() {
        for e in std::fs::read_dir(path).map_err(io(format!("listing {}", path.display())))? {
            let e = e.map_err(io(format!("listing {}", path.display())))?;
            chown_tree(&e.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// The size of what is under `dir` (the source's estimate of its
/// stream), skipping the binary and relay logs, which a backup does not
/// carry.
pub fn estimate(dir: &Path) -> u64 {
    fn walk(p: &Path, top: bool) -> u64 {
        let Ok(rd) = std::fs::read_dir(p) else {
            return 0;
        };
        let mut sum = 0;
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if top && (kept(&name) || name.contains("-bin.") || name.contains("relay")) {
                continue;
            }
            match e.metadata() {
                Ok(m) if m.is_dir() => sum += walk(&e.path(), false),
                Ok(m) => sum += m.len(),
                Err(_) => {}
            }
        }
        sum
    }
    walk(dir, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gtid_position_of_a_backup() {
        let table = [
            ("bin.000001\t760\t0-1-3\n", Some("0-1-3")),
            (
                "mysql-bin.000004\t385\t0-11-9,1-12-4\n",
                Some("0-11-9,1-12-4"),
            ),
            ("bin.000001\t330\t\n", Some("")),
            ("bin.000001\t330\n", Some("")),
            ("\n\nbin.000002\t4\t0-1-1", Some("0-1-1")),
            ("garbage", None),
            ("bin.000001\tnot-a-number\t0-1-1", None),
            ("", None),
        ];
        for (text, want) in table {
            assert_eq!(gtid_of_binlog_info(text).as_deref(), want, "{text:?}");
        }
    }

    #[test]
    fn a_swap_replaces_the_content_and_keeps_the_agents_files() {
        let d = super::super::tests::tempdir();
        std::fs::create_dir_all(d.join("t")).expect("db dir");
        std::fs::write(d.join("t/a.ibd"), b"old").expect("old table");
        std::fs::write(d.join("ibdata1"), b"old").expect("old ibdata");
        std::fs::write(d.join(".orca-tail-x.binlog"), b"tail").expect("tail");
        std::fs::create_dir_all(d.join("lost+found")).expect("lost+found");
        let staging = clear_staging(&d).expect("staging");
        std::fs::create_dir_all(staging.join("u")).expect("new db dir");
        std::fs::write(staging.join("u/b.ibd"), b"new").expect("new table");
        std::fs::write(staging.join("ibdata1"), b"new").expect("new ibdata");
        std::fs::write(
            staging.join("xtrabackup_binlog_info"),
            "bin.000001\t10\t0-2-7\n",
        )
        .expect("info");
        swap_in(&d).expect("swap");
        assert!(!d.join("t").exists(), "the old database is gone");
        assert_eq!(std::fs::read(d.join("ibdata1")).expect("ibdata"), b"new");
        assert_eq!(std::fs::read(d.join("u/b.ibd")).expect("table"), b"new");
        assert_eq!(
            std::fs::read(d.join(".orca-tail-x.binlog")).expect("tail kept"),
            b"tail"
        );
        assert!(d.join("lost+found").is_dir());
        assert!(!d.join(STAGING).exists() && !d.join(OLD).exists());
        assert_eq!(backup_gtid(&d).expect("gtid"), "0-2-7");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_swap_cut_short_is_finished_by_the_next_start() {
        let d = super::super::tests::tempdir();
        std::fs::write(d.join("ibdata1"), b"old").expect("old ibdata");
        std::fs::write(d.join("old-only"), b"old").expect("old file");
        let staging = clear_staging(&d).expect("staging");
        std::fs::write(staging.join("ibdata1"), b"new").expect("new ibdata");
        std::fs::write(staging.join("new-only"), b"new").expect("new file");
        // Cut short after the old entries went aside and one new came in.
        let files = super::super::Files::new(&d);
        files
            .write(
                SWAP_JOURNAL,
                &Journal {
                    moving_in: true,
                    old: vec!["ibdata1".into(), "old-only".into()],
                    new: vec!["ibdata1".into(), "new-only".into()],
                },
            )
            .expect("journal");
        std::fs::create_dir_all(d.join(OLD)).expect("old dir");
        std::fs::rename(d.join("ibdata1"), d.join(OLD).join("ibdata1")).expect("aside");
        std::fs::rename(d.join("old-only"), d.join(OLD).join("old-only")).expect("aside");
        std::fs::rename(staging.join("ibdata1"), d.join("ibdata1")).expect("in");
        assert!(swap_pending(&d));
        swap_in(&d).expect("finished");
        assert!(!swap_pending(&d));
        assert_eq!(std::fs::read(d.join("ibdata1")).expect("ibdata"), b"new");
        assert_eq!(std::fs::read(d.join("new-only")).expect("new"), b"new");
        assert!(!d.join("old-only").exists() && !d.join(OLD).exists() && !d.join(STAGING).exists());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_copy_without_a_binlog_position_is_refused() {
        let d = super::super::tests::tempdir();
        assert!(matches!(backup_gtid(&d), Err(AgentError::Copy(_))));
        let _ = std::fs::remove_dir_all(&d);
    }
}
