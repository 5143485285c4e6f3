//! IO-thread stops that go on after their step. On MariaDB, a semi-sync
//! replica's IO thread that stops connects to its source to end its dump
//! thread, and against a hung source it waits
//! `rpl_semi_sync_slave_kill_conn_timeout` (at least 1 s) for a greeting
//! that never comes. The replica receives nothing more from the moment
//! the stop signals the thread (the server shows the stopping statement
//! as `Killing slave`); the rest is cleanup, which every later statement
//! on the default connection waits for. The executor lets that cleanup
//! go on here while the steps that do not need the connection run, and
//! a replica to repoint replicates meanwhile through a second, named
//! connection (see [`crate::mysql::dialect::DETOUR`]), folded back once
//! the stop has ended.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::task::JoinHandle;

use crate::mysql::MysqlError;
use crate::topology::InstanceKey;

/// Where a replica whose IO thread stops in the background replicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detour {
    /// Not through the second connection.
    No,
    /// The second connection is to be used by the next change of source.
    Wanted,
    /// Through the second connection, from this source.
    Through(InstanceKey),
}

struct Entry {
    stop: Option<JoinHandle<Result<(), MysqlError>>>,
    detour: Detour,
}

/// The stops under way, by instance; clones share them.
#[derive(Clone, Default)]
pub struct Background {
    entries: Arc<Mutex<BTreeMap<InstanceKey, Entry>>>,
}

impl std::fmt::Debug for Background {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.lock().keys()).finish()
    }
}

impl Background {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<InstanceKey, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a stop that goes on in `stop`.
    pub fn insert(&self, key: &InstanceKey, stop: JoinHandle<Result<(), MysqlError>>) {
        self.lock().insert(
            key.clone(),
            Entry {
                stop: Some(stop),
                detour: Detour::No,
            },
        );
    }

    /// Where `key` replicates, if a stop of it is recorded.
    pub fn detour(&self, key: &InstanceKey) -> Option<Detour> {
        self.lock().get(key).map(|e| e.detour.clone())
    }

    pub fn set_detour(&self, key: &InstanceKey, detour: Detour) {
        if let Some(e) = self.lock().get_mut(key) {
            e.detour = detour;
        }
    }

    /// The stop of `key`, to wait for (taken: waited for once).
    pub fn take_stop(&self, key: &InstanceKey) -> Option<JoinHandle<Result<(), MysqlError>>> {
        self.lock().get_mut(key).and_then(|e| e.stop.take())
    }

    /// Forgets `key`, and says where it replicated.
    pub fn remove(&self, key: &InstanceKey) -> Option<Detour> {
        self.lock().remove(key).map(|e| e.detour)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn entries_follow_the_detour_and_are_waited_for_once() {
        let bg = Background::default();
        let k = InstanceKey::new("r", 3306);
        assert_eq!(bg.detour(&k), None);
        bg.insert(&k, tokio::spawn(async { Ok(()) }));
        assert_eq!(bg.detour(&k), Some(Detour::No));
        bg.set_detour(&k, Detour::Wanted);
        let shared = bg.clone();
        assert_eq!(shared.detour(&k), Some(Detour::Wanted));
        let stop = shared.take_stop(&k).expect("a stop");
        assert!(matches!(stop.await, Ok(Ok(()))));
        assert!(bg.take_stop(&k).is_none());
        bg.set_detour(&k, Detour::Through(InstanceKey::new("p", 3306)));
        assert_eq!(
            bg.remove(&k),
            Some(Detour::Through(InstanceKey::new("p", 3306)))
        );
        assert_eq!(bg.detour(&k), None);
        assert_eq!(bg.remove(&k), None);
    }
}
