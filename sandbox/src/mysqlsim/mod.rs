//! A simulated MySQL/MariaDB server for benchmarks: one process serving
//! thousands of instances, each on its own loopback address or port,
//! speaking the real client/server protocol and answering orca's
//! discovery queries (`SHOW GLOBAL VARIABLES`, `SHOW GLOBAL STATUS`,
//! `SHOW SLAVE STATUS` / `SHOW REPLICA STATUS`, `SHOW MASTER STATUS` /
//! `SHOW BINARY LOG STATUS`, `SHOW SLAVE HOSTS` / `SHOW REPLICAS`, the
//! heartbeat) from a scripted replication state, with the column names
//! of MariaDB 10.11 and MySQL 8.
//!
//! What derives from the topology derives by itself: a replica registers
//! with its source (`SHOW SLAVE HOSTS`) while its IO thread runs, a dead
//! source turns its replicas' IO threads to `Connecting` with errno 2003,
//! a hung one stalls their streams (the heartbeat count stops), semi-sync
//! is active where both ends have it on and a stream flows. Faults and
//! state change at run time through [`Sim`]. Not a database: anything but
//! the probe's statements (and the heartbeat's) gets an error.
//!
//! For benchmarks and tests only; never part of the product.

mod answers;
mod protocol;
mod server;
mod spec;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Instant;

use orca::topology::instance::GtidChannelMode;
use orca::topology::{BinlogCoordinates, Flavor, InstanceKey};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use spec::{
    Gtids, Health, InstanceId, InstanceSpec, Replication, SemiSyncSpec, SourceRef, uuid_for,
};

/// Where the instances listen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressing {
    /// One loopback address per instance, `first` and up (an address
    /// whose last byte would be 0 or 255 is skipped), all on `port`. Any
    /// 127/8 address works on Linux without configuration.
    LoopbackAliases { first: Ipv4Addr, port: u16 },
    /// One port per instance on `ip`, `first_port` and up; with
    /// `first_port` 0 the system picks each (never a clash).
    Ports { ip: IpAddr, first_port: u16 },
}

impl Addressing {
    /// The address of the `n`th instance.
    pub fn addr(&self, n: usize) -> Result<SocketAddr, SimError> {
        match *self {
            Addressing::LoopbackAliases { first, port } => {
                let mut a = u32::from(first);
                let mut left = n;
                loop {
                    if a & 0xff != 0 && a & 0xff != 0xff {
                        if left == 0 {
                            break;
                        }
                        left -= 1;
                    }
                    a = a.checked_add(1).ok_or(SimError::OutOfAddresses)?;
                }
                let ip = Ipv4Addr::from(a);
                if ip.octets()[0] != first.octets()[0] {
                    return Err(SimError::OutOfAddresses);
                }
                Ok(SocketAddr::new(IpAddr::V4(ip), port))
            }
            Addressing::Ports { ip, first_port } => {
                if first_port == 0 {
                    return Ok(SocketAddr::new(ip, 0));
                }
                let port = u16::try_from(usize::from(first_port) + n)
                    .map_err(|_| SimError::OutOfAddresses)?;
                Ok(SocketAddr::new(ip, port))
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("no addresses left for that many instances")]
    OutOfAddresses,
    #[error("instance {0} did not take its new health in time (its address taken?)")]
    NotApplied(usize),
    #[error("instance {0} is not in the simulator")]
    NoSuchInstance(usize),
    #[error(
        "instance {replica} replicates from instance {upstream}, which is not in the simulator"
    )]
    NoSuchSource { replica: usize, upstream: usize },
}

/// The instances of a simulator before it starts.
#[derive(Debug)]
pub struct SimBuilder {
    addressing: Addressing,
    specs: Vec<InstanceSpec>,
    backlog: u32,
}

/// The instances [`SimBuilder::add_cluster`] added: the primary first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterIds {
    pub primary: InstanceId,
    pub replicas: Vec<InstanceId>,
}

impl ClusterIds {
    pub fn all(&self) -> Vec<InstanceId> {
        std::iter::once(self.primary)
            .chain(self.replicas.iter().copied())
            .collect()
    }
}

impl SimBuilder {
    pub fn new(addressing: Addressing) -> SimBuilder {
        SimBuilder {
            addressing,
            specs: Vec::new(),
            backlog: 128,
        }
    }

    /// The listen backlog of each instance (128 by default): how many
    /// connections a hung instance takes before connecting itself times
    /// out.
    pub fn backlog(mut self, backlog: u32) -> SimBuilder {
        self.backlog = backlog;
        self
    }

    pub fn add(&mut self, spec: InstanceSpec) -> InstanceId {
        self.specs.push(spec);
        InstanceId(self.specs.len() - 1)
    }

    pub fn len(&self) -> usize {
        self.specs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// The spec of an instance added, to change before the start.
    pub fn spec_mut(&mut self, id: InstanceId) -> Option<&mut InstanceSpec> {
        self.specs.get_mut(id.0)
    }

    /// A healthy cluster of `flavor`: a writable primary and `replicas`
    /// read-only replicas of it, caught up, with GTIDs (`transactions` of
    /// them, from the primary), MariaDB `MASTER_USE_GTID=slave_pos` or
    /// MySQL auto-position, semi-sync on both sides when `semi_sync`.
    /// Server ids are `first_server_id` and up.
    pub fn add_cluster(
        &mut self,
        flavor: Flavor,
        replicas: usize,
        first_server_id: u32,
        transactions: u64,
        semi_sync: bool,
    ) -> ClusterIds {
        let base = |id: u32| match flavor {
            Flavor::MariaDb => InstanceSpec::mariadb(id),
            Flavor::MySql => InstanceSpec::mysql(id),
        };
        let mut primary = base(first_server_id);
        let (file, pos) = match flavor {
            Flavor::MariaDb => ("mysql-bin.000001", 330 + 200 * transactions),
            Flavor::MySql => ("binlog.000001", 158 + 300 * transactions),
        };
        let coords = BinlogCoordinates::new(file, pos);
        primary.binlog = Some(coords.clone());
        let gtid = match flavor {
            Flavor::MariaDb => Gtids {
                binlog_pos: format!("0-{first_server_id}-{transactions}"),
                binlog_state: format!("0-{first_server_id}-{transactions}"),
                current_pos: format!("0-{first_server_id}-{transactions}"),
                ..Gtids::default()
            },
            Flavor::MySql => Gtids {
                executed: if transactions == 0 {
                    String::new()
                } else {
                    format!("{}:1-{transactions}", uuid_for(first_server_id))
                },
                ..Gtids::default()
            },
        };
        primary.gtid = gtid.clone();
        primary.semi_sync.primary_enabled = semi_sync;
        primary.semi_sync.replica_enabled = semi_sync;
        let primary = self.add(primary);
        let mut ids = Vec::new();
        for n in 0..replicas {
            let mut r = base(first_server_id + 1 + n as u32);
            r.read_only = true;
            r.super_read_only = flavor == Flavor::MySql;
            r.binlog = Some(coords.clone());
            r.gtid = Gtids {
                slave_pos: gtid.current_pos.clone(),
                ..gtid.clone()
            };
            r.semi_sync.primary_enabled = semi_sync;
            r.semi_sync.replica_enabled = semi_sync;
            let mut rep = Replication::new(SourceRef::Sim(primary));
            rep.read_pos = Some(coords.clone());
            rep.exec_pos = Some(coords.clone());
            match flavor {
                Flavor::MariaDb => {
                    rep.gtid_mode = GtidChannelMode::SlavePos;
                    rep.retrieved = gtid.current_pos.clone();
                }
                Flavor::MySql => {
                    rep.gtid_mode = GtidChannelMode::AutoPosition;
                    rep.retrieved = gtid.executed.clone();
                }
            }
            r.replication = Some(rep);
            ids.push(self.add(r));
        }
        ClusterIds {
            primary,
            replicas: ids,
        }
    }

    /// Binds every instance's listener and starts serving, on the current
    /// tokio runtime.
    pub async fn start(self) -> Result<Sim, SimError> {
        for (n, spec) in self.specs.iter().enumerate() {
            if let Some(Replication {
                source: SourceRef::Sim(s),
                ..
            }) = &spec.replication
                && s.0 >= self.specs.len()
            {
                return Err(SimError::NoSuchSource {
                    replica: n,
                    upstream: s.0,
                });
            }
        }
        let mut listeners = Vec::with_capacity(self.specs.len());
        let mut addrs = Vec::with_capacity(self.specs.len());
        for n in 0..self.specs.len() {
            let want = self.addressing.addr(n)?;
            let l = server::bind(want, self.backlog)?;
            let addr = l
                .local_addr()
                .map_err(|source| SimError::Bind { addr: want, source })?;
            addrs.push(addr);
            listeners.push(l);
        }
        let keys: Vec<InstanceKey> = addrs
            .iter()
            .map(|a| InstanceKey::new(a.ip().to_string(), a.port()))
            .collect();
        let by_key = keys
            .iter()
            .enumerate()
            .map(|(n, k)| (k.clone(), n))
            .collect();
        let insts = self
            .specs
            .into_iter()
            .map(|spec| Inst {
                state: Mutex::new(State {
                    spec,
                    stream: Stream::default(),
                    heartbeat_table: false,
                    heartbeat_at: None,
                }),
                health: watch::Sender::new(Health::Serving),
                applied: watch::Sender::new(Health::Serving),
            })
            .collect();
        let shared = Arc::new(Shared {
            keys,
            addrs,
            by_key,
            insts,
            replicas_of: RwLock::new(Vec::new()),
            next_conn_id: AtomicU32::new(1),
            backlog: self.backlog,
        });
        shared.reindex();
        for n in 0..shared.insts.len() {
            shared.refresh_stream(n);
        }
        let tasks = listeners
            .into_iter()
            .enumerate()
            .map(|(n, l)| tokio::spawn(server::serve(shared.clone(), n, l)))
            .collect();
        Ok(Sim { shared, tasks })
    }
}

/// A running simulator. Dropping it stops every instance.
pub struct Sim {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("instances", &self.shared.keys.len())
            .finish()
    }
}

impl Sim {
    pub fn len(&self) -> usize {
        self.shared.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.shared.keys.is_empty()
    }

    /// The address orca probes an instance at.
    pub fn key(&self, id: InstanceId) -> Option<InstanceKey> {
        self.shared.keys.get(id.0).cloned()
    }

    pub fn keys(&self) -> &[InstanceKey] {
        &self.shared.keys
    }

    /// The instance at `key`, if the simulator serves it.
    pub fn id(&self, key: &InstanceKey) -> Option<InstanceId> {
        self.shared.by_key.get(key).copied().map(InstanceId)
    }

    pub fn health(&self, id: InstanceId) -> Option<Health> {
        self.shared.insts.get(id.0).map(|i| *i.health.borrow())
    }

    /// Applies a fault (or [`Health::Serving`] to end one); returns once
    /// the instance's listener is in the state the fault calls for (open,
    /// or closed), so the next connection sees it.
    pub async fn set_health(&self, id: InstanceId, health: Health) -> Result<(), SimError> {
        let inst = self
            .shared
            .insts
            .get(id.0)
            .ok_or(SimError::NoSuchInstance(id.0))?;
        let mut applied = inst.applied.subscribe();
        inst.health.send_replace(health);
        let replicas = self.shared.replicas_of(id.0);
        for r in replicas {
            self.shared.refresh_stream(r);
        }
        match tokio::time::timeout(
            std::time::Duration::from_secs(10),
            applied.wait_for(|h| *h == health),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            _ => Err(SimError::NotApplied(id.0)),
        }
    }

    /// The scripted state of an instance.
    pub fn spec(&self, id: InstanceId) -> Option<InstanceSpec> {
        self.shared
            .insts
            .get(id.0)
            .map(|i| lock(&i.state).spec.clone())
    }

    /// Changes the scripted state of an instance (promote it, point it at
    /// another source, stop a thread, move its GTIDs...); what derives
    /// from it (registrations, streams) follows.
    pub fn update(
        &self,
        id: InstanceId,
        change: impl FnOnce(&mut InstanceSpec),
    ) -> Result<(), SimError> {
        let inst = self
            .shared
            .insts
            .get(id.0)
            .ok_or(SimError::NoSuchInstance(id.0))?;
        {
            let mut st = lock(&inst.state);
            change(&mut st.spec);
            if let Some(Replication {
                source: SourceRef::Sim(s),
                ..
            }) = &st.spec.replication
                && s.0 >= self.shared.insts.len()
            {
                return Err(SimError::NoSuchSource {
                    replica: id.0,
                    upstream: s.0,
                });
            }
        }
        self.shared.reindex();
        self.shared.refresh_stream(id.0);
        Ok(())
    }

    /// Stops every instance (as [`Health::Dead`]) and their listeners.
    pub fn stop(&mut self) {
        for inst in &self.shared.insts {
            inst.health.send_replace(Health::Dead);
        }
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) struct Shared {
    pub(crate) keys: Vec<InstanceKey>,
    pub(crate) addrs: Vec<SocketAddr>,
    by_key: HashMap<InstanceKey, usize>,
    pub(crate) insts: Vec<Inst>,
    /// The replicas of each instance (by their scripted source).
    replicas_of: RwLock<Vec<Vec<usize>>>,
    pub(crate) next_conn_id: AtomicU32,
    pub(crate) backlog: u32,
}

pub(crate) struct Inst {
    pub(crate) state: Mutex<State>,
    pub(crate) health: watch::Sender<Health>,
    /// The health the listener last took (for [`Sim::set_health`] to wait
    /// on).
    pub(crate) applied: watch::Sender<Health>,
}

pub(crate) struct State {
    pub(crate) spec: InstanceSpec,
    pub(crate) stream: Stream,
    /// orca created its heartbeat table here.
    pub(crate) heartbeat_table: bool,
    /// When orca last wrote its heartbeat here.
    pub(crate) heartbeat_at: Option<Instant>,
}

/// A replica's stream from its source: heartbeats counted while it flows.
#[derive(Debug, Default)]
pub(crate) struct Stream {
    received: u64,
    flowing_since: Option<Instant>,
    pub(crate) stalled_at: Option<Instant>,
}

impl Stream {
    pub(crate) fn received(&self, period: std::time::Duration) -> u64 {
        let ms = period.as_millis().max(1);
        self.received
            + self
                .flowing_since
                .map(|t| (t.elapsed().as_millis() / ms) as u64)
                .unwrap_or(0)
    }

    pub(crate) fn flowing(&self) -> bool {
        self.flowing_since.is_some()
    }
}

impl Shared {
    pub(crate) fn health(&self, n: usize) -> Health {
        self.insts
            .get(n)
            .map(|i| *i.health.borrow())
            .unwrap_or(Health::Dead)
    }

    pub(crate) fn replicas_of(&self, n: usize) -> Vec<usize> {
        self.replicas_of
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(n)
            .cloned()
            .unwrap_or_default()
    }

    fn reindex(&self) {
        let mut index = vec![Vec::new(); self.insts.len()];
        for (n, inst) in self.insts.iter().enumerate() {
            if let Some(Replication {
                source: SourceRef::Sim(s),
                ..
            }) = &lock(&inst.state).spec.replication
                && let Some(list) = index.get_mut(s.0)
            {
                list.push(n);
            }
        }
        *self.replicas_of.write().unwrap_or_else(|e| e.into_inner()) = index;
    }

    /// Whether `n`'s scripted stream flows now: its IO thread runs and its
    /// source (when simulated) streams.
    fn stream_should_flow(&self, spec: &InstanceSpec) -> bool {
        match &spec.replication {
            Some(r) if r.io_running == orca::topology::instance::IoThreadState::Yes => {
                match &r.source {
                    SourceRef::Sim(s) => self.health(s.0).streams(),
                    SourceRef::External(_) => true,
                }
            }
            _ => false,
        }
    }

    /// Brings `n`'s stream accounting up to date with its source's health.
    fn refresh_stream(&self, n: usize) {
        let Some(inst) = self.insts.get(n) else {
            return;
        };
        let mut st = lock(&inst.state);
        let flow = self.stream_should_flow(&st.spec);
        let period = st
            .spec
            .replication
            .as_ref()
            .map(|r| r.heartbeat_period)
            .unwrap_or_default();
        let s = &mut st.stream;
        match (flow, s.flowing_since) {
            (true, None) => {
                s.flowing_since = Some(Instant::now());
                s.stalled_at = None;
            }
            (false, Some(_)) => {
                s.received = s.received(period);
                s.flowing_since = None;
                s.stalled_at = Some(Instant::now());
            }
            _ => {}
        }
    }

    pub(crate) fn conn_id(&self) -> u32 {
        self.next_conn_id.fetch_add(1, Ordering::Relaxed)
    }
}
