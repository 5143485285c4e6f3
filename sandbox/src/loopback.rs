//! Loopback addresses for local servers, one per server, all on port 3306.
//! An address is held by an exclusive lock on a file, so concurrent tests
//! and processes never share one; the lock dies with its process.

use std::fs::{File, OpenOptions};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// An address held for as long as this value lives.
#[derive(Debug)]
pub struct Lease {
    pub ip: Ipv4Addr,
    _lock: File,
}

/// Where lock files live.
pub fn lock_dir(root: &Path) -> PathBuf {
    root.join("locks")
}

/// Takes the first free address of `127.<net>.x.y` (x in 0..=255, y in
/// 1..=254), starting the scan at `start` so that independent users spread
/// out.
pub fn take(root: &Path, net: u8, start: u16) -> std::io::Result<Lease> {
    let dir = lock_dir(root);
    std::fs::create_dir_all(&dir)?;
    let total: u32 = 256 * 254;
    for i in 0..total {
        let n = (u32::from(start) + i) % total;
        let ip = Ipv4Addr::new(127, net, (n / 254) as u8, (n % 254 + 1) as u8);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(format!("{ip}.lock")))?;
        match file.try_lock() {
            Ok(()) => return Ok(Lease { ip, _lock: file }),
            Err(std::fs::TryLockError::WouldBlock) => continue,
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
    }
    Err(std::io::Error::other(format!(
        "no free loopback address in 127.{net}.0.0/16"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_leases_never_share_an_address() {
        let root = tempfile::tempdir().unwrap();
        let a = take(root.path(), 250, 0).unwrap();
        let b = take(root.path(), 250, 0).unwrap();
        assert_ne!(a.ip, b.ip);
        let a_ip = a.ip;
        drop(a);
        let c = take(root.path(), 250, 0).unwrap();
        assert_eq!(c.ip, a_ip, "a released address is reused");
    }
}
