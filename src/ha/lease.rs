//! Leader election on a `coordination.k8s.io/v1` Lease.
//!
//! Each replica of the operator runs a [`LeaderElector`] on the same Lease.
//! A replica takes the Lease when it is absent, released (no holder) or
//! expired, renews it every retry period while it holds it, and releases
//! it on shutdown. Every write carries the resourceVersion the replica last
//! read or wrote, so of two replicas racing for the Lease one gets a 409
//! and reads again. `leaseTransitions` is the fencing epoch: every taking
//! of the Lease adds one.
//!
//! The replica's view is published on a `tokio::sync::watch` channel as a
//! [`Leadership`]. A leader's term is valid until the time its last
//! successful renew was *sent* plus `renew_deadline`; a renew that fails,
//! or that could not be done before that time, makes the replica a follower
//! at once. [`crate::ha::Fence`] reads the channel and compares that time
//! with the clock, so even a replica whose renew task is stuck stops
//! acting when its term runs out.
//!
//! Why the fence holds without trusting clocks to agree: the holder sent
//! its last renew at `s` (its clock) and counts its term until
//! `s + renew_deadline`. The renew reached the API server after `s`; a
//! contender first saw that version of the Lease later still, and takes
//! the Lease only when `leaseDurationSeconds` have passed on its own
//! monotonic clock since it first saw that version (and, as the Lease's
//! own rule says, `renewTime + leaseDurationSeconds` is past by its wall
//! clock). With `renew_deadline < lease_duration`, the holder's term has
//! ended before any contender can take over.

use std::future::Future;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::epoch::Fence;
use super::{HaError, api_code, bounded};

/// Timing of the election. `retry_period < renew_deadline < lease_duration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseConfig {
    /// How long a Lease stays with its holder after its last renew, for
    /// the other replicas (written as `leaseDurationSeconds`, whole
    /// seconds, rounded up).
    pub lease_duration: Duration,
    /// How long after sending a renew the holder still counts itself the
    /// leader. The margin to `lease_duration` absorbs the request's transit
    /// and the difference of clock rates.
    pub renew_deadline: Duration,
    /// How often the holder renews and the others look at the Lease.
    pub retry_period: Duration,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

impl LeaseConfig {
    /// Checks the ordering the fence relies on.
    pub fn validate(&self) -> Result<(), HaError> {
        if self.retry_period.is_zero() {
            return Err(HaError::Config("retry_period must be above zero".into()));
        }
        if self.retry_period >= self.renew_deadline {
            return Err(HaError::Config(format!(
                "retry_period ({:?}) must be shorter than renew_deadline ({:?})",
                self.retry_period, self.renew_deadline
            )));
        }
        if self.renew_deadline >= self.lease_duration {
            return Err(HaError::Config(format!(
                "renew_deadline ({:?}) must be shorter than lease_duration ({:?})",
                self.renew_deadline, self.lease_duration
            )));
        }
        if self.lease_duration_seconds().is_none() {
            return Err(HaError::Config(format!(
                "lease_duration ({:?}) does not fit leaseDurationSeconds",
                self.lease_duration
            )));
        }
        Ok(())
    }

    /// `leaseDurationSeconds`: the lease duration in whole seconds, rounded
    /// up (never shorter than what this replica assumes).
    pub fn lease_duration_seconds(&self) -> Option<i32> {
        let d = self.lease_duration;
        let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
        i32::try_from(secs).ok().filter(|s| *s > 0)
    }
}

/// What this replica knows of its role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leadership {
    /// Another replica holds the Lease (`holder`), or nobody does as far
    /// as this replica knows (`None`).
    Follower { holder: Option<String> },
    /// This replica holds the Lease in `epoch`, and counts itself the
    /// leader until `valid_until` unless it renews before.
    Leader { epoch: i64, valid_until: Instant },
}

impl Leadership {
    pub fn is_leader(&self) -> bool {
        matches!(self, Leadership::Leader { .. })
    }

    /// The epoch, when leading.
    pub fn epoch(&self) -> Option<i64> {
        match self {
            Leadership::Leader { epoch, .. } => Some(*epoch),
            Leadership::Follower { .. } => None,
        }
    }
}

/// The parts of a Lease the election reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    /// `None` when the Lease names no holder (never taken, or released).
    pub holder: Option<String>,
    pub duration: Option<Duration>,
    pub renew_time: Option<Timestamp>,
    pub transitions: i64,
}

impl LeaseRecord {
    pub fn from_lease(lease: &Lease) -> Self {
        let spec = lease.spec.clone().unwrap_or_default();
        LeaseRecord {
            holder: spec.holder_identity.filter(|h| !h.is_empty()),
            duration: spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map(Duration::from_secs),
            renew_time: spec.renew_time.map(|t| t.0),
            transitions: i64::from(spec.lease_transitions.unwrap_or(0)),
        }
    }
}

/// Whether the holder's term in `record` is over for a replica that first
/// saw this version of the Lease at `observed_at`.
///
/// Both clocks must agree: `renewTime + leaseDurationSeconds` is past by
/// the wall clock (`wall_now`), and `leaseDurationSeconds` have passed on
/// the monotonic clock since `observed_at`. The second is what the fence
/// relies on; the first keeps the Lease's own rule. A `renewTime` further
/// ahead of the wall clock than one lease duration comes from a skewed
/// clock and is ignored, so that it cannot hold the Lease for ever. A
/// missing duration counts as `fallback` (this replica's own).
pub fn is_expired(
    record: &LeaseRecord,
    fallback: Duration,
    wall_now: Timestamp,
    observed_at: Instant,
    now: Instant,
) -> bool {
    let duration = record.duration.unwrap_or(fallback);
    let by_observation = now.saturating_duration_since(observed_at) >= duration;
    let by_wall = match record.renew_time {
        None => true,
        Some(renewed) => {
            let since =
                i128::from(wall_now.as_microsecond()) - i128::from(renewed.as_microsecond());
            let d = i128::try_from(duration.as_micros()).unwrap_or(i128::MAX);
            since >= d || since < -d
        }
    };
    by_observation && by_wall
}

/// What a replica that is not leading does with the Lease it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowerAction {
    /// No Lease yet: create it, holding it.
    Create,
    /// Free or expired: take it.
    Acquire,
    /// Someone holds it: wait.
    Wait { holder: Option<String> },
}

/// The rule for a replica that does not hold a live term. The Lease is
/// taken when it is absent, names no holder, or is expired — even when it
/// still names this replica: a replica that stepped down (or restarted)
/// does not know what its earlier term left running, so it waits like any
/// other and starts a new epoch.
pub fn follower_action(record: Option<&LeaseRecord>, expired: bool) -> FollowerAction {
    match record {
        None => FollowerAction::Create,
        Some(r) if r.holder.is_none() || expired => FollowerAction::Acquire,
        Some(r) => FollowerAction::Wait {
            holder: r.holder.clone(),
        },
    }
}

/// The term a successful renew or acquire sent at `sent` gives.
pub fn leader_state(epoch: i64, sent: Instant, renew_deadline: Duration) -> Leadership {
    Leadership::Leader {
        epoch,
        valid_until: sent + renew_deadline,
    }
}

/// A renew that cannot start before the term ends is late: the replica
/// steps down instead.
pub fn renew_is_late(valid_until: Instant, now: Instant) -> bool {
    now >= valid_until
}

/// The spec of a Lease taken by `identity`: one more transition (the new
/// epoch; 1 for a new Lease), acquire and renew time now.
pub fn acquired_spec(
    old: Option<&LeaseSpec>,
    identity: &str,
    wall_now: Timestamp,
    duration_seconds: i32,
) -> Option<LeaseSpec> {
    let transitions = match old {
        None => 1,
        Some(spec) => spec.lease_transitions.unwrap_or(0).checked_add(1)?,
    };
    Some(LeaseSpec {
        holder_identity: Some(identity.to_string()),
        lease_duration_seconds: Some(duration_seconds),
        acquire_time: Some(MicroTime(wall_now)),
        renew_time: Some(MicroTime(wall_now)),
        lease_transitions: Some(transitions),
        ..old.cloned().unwrap_or_default()
    })
}

/// The spec of a renewed Lease: only the renew time moves.
pub fn renewed_spec(held: &LeaseSpec, wall_now: Timestamp) -> LeaseSpec {
    LeaseSpec {
        renew_time: Some(MicroTime(wall_now)),
        ..held.clone()
    }
}

/// The spec of a released Lease: no holder, transitions kept (the next
/// holder's epoch is one more), so a successor need not wait for expiry.
pub fn released_spec(held: &LeaseSpec) -> LeaseSpec {
    LeaseSpec {
        holder_identity: None,
        ..held.clone()
    }
}

/// The term this replica holds.
#[derive(Debug, Clone)]
struct Held {
    /// The Lease as the last successful write returned it.
    lease: Lease,
    epoch: i64,
    valid_until: Instant,
}

/// One replica's participant in the election.
pub struct LeaderElector {
    leases: Api<Lease>,
    namespace: String,
    name: String,
    identity: String,
    config: LeaseConfig,
    tx: watch::Sender<Leadership>,
    held: Option<Held>,
    /// The resourceVersion last seen, and when it was first seen.
    observed: Option<(String, Instant)>,
}

impl LeaderElector {
    /// An elector for the Lease `namespace/lease_name`, as `identity`
    /// (unique per replica, e.g. its pod name). It starts as a follower;
    /// nothing is sent until [`step`](Self::step) or [`run`](Self::run).
    pub fn new(
        client: Client,
        namespace: &str,
        lease_name: &str,
        identity: &str,
        config: LeaseConfig,
    ) -> Result<Self, HaError> {
        config.validate()?;
        if identity.is_empty() {
            return Err(HaError::Config("the identity must not be empty".into()));
        }
        let (tx, _) = watch::channel(Leadership::Follower { holder: None });
        Ok(LeaderElector {
            leases: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
            name: lease_name.to_string(),
            identity: identity.to_string(),
            config,
            tx,
            held: None,
            observed: None,
        })
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    pub fn config(&self) -> &LeaseConfig {
        &self.config
    }

    /// The state as it changes.
    pub fn subscribe(&self) -> watch::Receiver<Leadership> {
        self.tx.subscribe()
    }

    /// The fencing rule on this elector's state.
    pub fn fence(&self) -> Fence {
        Fence::new(self.tx.subscribe())
    }

    /// The state now.
    pub fn leadership(&self) -> Leadership {
        self.tx.borrow().clone()
    }

    /// One round: renew the term this replica holds, or else read the
    /// Lease and take it when it is free or expired. Returns the state
    /// after the round (also published). An error leaves the replica a
    /// follower.
    pub async fn step(&mut self) -> Result<Leadership, HaError> {
        if let Some(held) = &self.held {
            if renew_is_late(held.valid_until, Instant::now()) {
                warn!(
                    lease = %self.lease_ref(), identity = %self.identity, epoch = held.epoch,
                    "the lease was not renewed in time: stepping down"
                );
                self.step_down(None);
            } else {
                match self.renew().await {
                    Ok(state) => return Ok(state),
                    Err(e) if api_code(&e) == Some(409) => {
                        warn!(
                            lease = %self.lease_ref(), identity = %self.identity,
                            "the lease changed under us: stepping down"
                        );
                        self.step_down(None);
                    }
                    Err(e) => {
                        warn!(
                            lease = %self.lease_ref(), identity = %self.identity, error = %e,
                            "renewing the lease failed: stepping down"
                        );
                        self.step_down(None);
                        return Err(e);
                    }
                }
            }
        }
        self.follow().await
    }

    /// Releases the Lease if this replica holds it: steps down first, then
    /// clears the holder (keeping `leaseTransitions`) so a successor takes
    /// over at once.
    pub async fn release(&mut self) -> Result<(), HaError> {
        let Some(held) = self.held.take() else {
            return Ok(());
        };
        self.publish(Leadership::Follower { holder: None });
        let spec = held
            .lease
            .spec
            .as_ref()
            .map(released_spec)
            .unwrap_or_default();
        let lease = Lease {
            spec: Some(spec),
            ..held.lease.clone()
        };
        let r = bounded(
            self.config.renew_deadline,
            &format!("releasing the lease {}", self.lease_ref()),
            self.leases
                .replace(&self.name, &PostParams::default(), &lease),
        )
        .await;
        match r {
            Ok(_) => {
                info!(lease = %self.lease_ref(), identity = %self.identity, epoch = held.epoch, "released the lease");
                Ok(())
            }
            // Someone else wrote it since: it is not ours to release.
            Err(e) if api_code(&e) == Some(409) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Runs the election until `shutdown` completes, then releases the
    /// Lease. Errors of single rounds are logged and retried.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), HaError> {
        tokio::pin!(shutdown);
        loop {
            if let Err(e) = self.step().await {
                warn!(lease = %self.lease_ref(), identity = %self.identity, error = %e, "leader election round failed");
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(self.config.retry_period) => {}
            }
        }
        self.release().await
    }

    /// Runs the election in a task.
    pub fn spawn(self) -> ElectorHandle {
        let rx = self.subscribe();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(self.run(async move {
            let _ = stopped.await;
        }));
        ElectorHandle {
            rx,
            stop: Some(stop),
            task: Some(task),
        }
    }

    fn lease_ref(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    fn publish(&self, state: Leadership) {
        self.tx.send_if_modified(|cur| {
            if *cur == state {
                false
            } else {
                *cur = state;
                true
            }
        });
    }

    fn step_down(&mut self, holder: Option<String>) {
        self.held = None;
        self.publish(Leadership::Follower { holder });
    }

    /// Remembers when this version of the Lease was first seen.
    fn observe(&mut self, lease: &Lease, at: Instant) {
        let rv = lease.resource_version().unwrap_or_default();
        if self.observed.as_ref().map(|(v, _)| v) != Some(&rv) {
            self.observed = Some((rv, at));
        }
    }

    async fn renew(&mut self) -> Result<Leadership, HaError> {
        let Some(held) = self.held.clone() else {
            return Ok(self.leadership());
        };
        let sent = Instant::now();
        // A renew answered after the term ends is no renew.
        let limit = held.valid_until.saturating_duration_since(sent);
        let spec = held
            .lease
            .spec
            .as_ref()
            .map(|s| renewed_spec(s, Timestamp::now()))
            .unwrap_or_default();
        let lease = Lease {
            spec: Some(spec),
            ..held.lease.clone()
        };
        let written = bounded(
            limit,
            &format!("renewing the lease {}", self.lease_ref()),
            self.leases
                .replace(&self.name, &PostParams::default(), &lease),
        )
        .await?;
        self.observe(&written, Instant::now());
        let state = leader_state(held.epoch, sent, self.config.renew_deadline);
        if let Leadership::Leader { valid_until, .. } = state {
            self.held = Some(Held {
                lease: written,
                epoch: held.epoch,
                valid_until,
            });
        }
        debug!(lease = %self.lease_ref(), identity = %self.identity, epoch = held.epoch, "renewed the lease");
        self.publish(state.clone());
        Ok(state)
    }

    async fn read(&mut self) -> Result<Option<Lease>, HaError> {
        let current = bounded(
            self.config.renew_deadline,
            &format!("reading the lease {}", self.lease_ref()),
            self.leases.get_opt(&self.name),
        )
        .await?;
        if let Some(lease) = &current {
            self.observe(lease, Instant::now());
        }
        Ok(current)
    }

    async fn follow(&mut self) -> Result<Leadership, HaError> {
        let current = self.read().await?;
        let record = current.as_ref().map(LeaseRecord::from_lease);
        let expired = match (&record, &self.observed) {
            (Some(r), Some((_, seen))) => is_expired(
                r,
                self.config.lease_duration,
                Timestamp::now(),
                *seen,
                Instant::now(),
            ),
            _ => false,
        };
        match follower_action(record.as_ref(), expired) {
            FollowerAction::Wait { holder } => {
                let state = Leadership::Follower { holder };
                self.publish(state.clone());
                Ok(state)
            }
            FollowerAction::Create | FollowerAction::Acquire => self.acquire(current).await,
        }
    }

    async fn acquire(&mut self, current: Option<Lease>) -> Result<Leadership, HaError> {
        let duration_seconds = self
            .config
            .lease_duration_seconds()
            .ok_or_else(|| HaError::Config("lease_duration out of range".into()))?;
        let old_spec = current.as_ref().and_then(|l| l.spec.as_ref());
        let creating = current.is_none();
        let spec = acquired_spec(
            if creating {
                None
            } else {
                Some(old_spec.cloned().unwrap_or_default())
            }
            .as_ref(),
            &self.identity,
            Timestamp::now(),
            duration_seconds,
        )
        .ok_or_else(|| HaError::Answer {
            place: self.lease_ref(),
            detail: "leaseTransitions is at its maximum".into(),
        })?;
        let epoch = i64::from(spec.lease_transitions.unwrap_or(0));
        let lease = match current {
            Some(l) => Lease {
                spec: Some(spec),
                ..l
            },
            None => Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    namespace: Some(self.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(spec),
            },
        };
        let what = format!("taking the lease {}", self.lease_ref());
        let sent = Instant::now();
        let pp = PostParams::default();
        let r = if creating {
            bounded(
                self.config.renew_deadline,
                &what,
                self.leases.create(&pp, &lease),
            )
            .await
        } else {
            bounded(
                self.config.renew_deadline,
                &what,
                self.leases.replace(&self.name, &pp, &lease),
            )
            .await
        };
        match r {
            Ok(written) => {
                self.observe(&written, Instant::now());
                let state = leader_state(epoch, sent, self.config.renew_deadline);
                if let Leadership::Leader { valid_until, .. } = state {
                    self.held = Some(Held {
                        lease: written,
                        epoch,
                        valid_until,
                    });
                }
                info!(lease = %self.lease_ref(), identity = %self.identity, epoch, "took the lease: leading");
                self.publish(state.clone());
                Ok(state)
            }
            Err(e) if api_code(&e) == Some(409) => {
                // Someone else won: read again to name them.
                debug!(lease = %self.lease_ref(), identity = %self.identity, "lost the race for the lease");
                let holder = self
                    .read()
                    .await?
                    .and_then(|l| LeaseRecord::from_lease(&l).holder);
                let state = Leadership::Follower { holder };
                self.publish(state.clone());
                Ok(state)
            }
            Err(e) => Err(e),
        }
    }
}

/// A running elector task. Dropping it stops the election without
/// releasing the Lease, as [`abort`](Self::abort) does; use
/// [`shutdown`](Self::shutdown) to hand over at once.
pub struct ElectorHandle {
    rx: watch::Receiver<Leadership>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), HaError>>>,
}

impl ElectorHandle {
    pub fn subscribe(&self) -> watch::Receiver<Leadership> {
        self.rx.clone()
    }

    pub fn fence(&self) -> Fence {
        Fence::new(self.rx.clone())
    }

    pub fn leadership(&self) -> Leadership {
        self.rx.borrow().clone()
    }

    /// Stops the election and releases the Lease if held.
    pub async fn shutdown(mut self) -> Result<(), HaError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.unwrap_or_else(|e| {
                Err(HaError::Config(format!(
                    "the election task ended abnormally: {e}"
                )))
            }),
            None => Ok(()),
        }
    }

    /// Stops the election at once without releasing, as a crash would:
    /// the other replicas wait for the Lease to expire.
    pub fn abort(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Drop for ElectorHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(holder: Option<&str>, renewed_ago_s: i64, wall_now: Timestamp) -> LeaseRecord {
        LeaseRecord {
            holder: holder.map(String::from),
            duration: Some(Duration::from_secs(15)),
            renew_time: Some(
                wall_now
                    .checked_sub(jiff::SignedDuration::from_secs(renewed_ago_s))
                    .unwrap(),
            ),
            transitions: 3,
        }
    }

    #[test]
    fn config_defaults_and_ordering() {
        let c = LeaseConfig::default();
        assert_eq!(c.lease_duration, Duration::from_secs(15));
        assert_eq!(c.renew_deadline, Duration::from_secs(10));
        assert_eq!(c.retry_period, Duration::from_secs(2));
        c.validate().unwrap();
        assert_eq!(c.lease_duration_seconds(), Some(15));
        let bad = LeaseConfig {
            renew_deadline: Duration::from_secs(15),
            ..c
        };
        assert!(bad.validate().is_err());
        let bad = LeaseConfig {
            retry_period: Duration::from_secs(10),
            ..c
        };
        assert!(bad.validate().is_err());
        let bad = LeaseConfig {
            retry_period: Duration::ZERO,
            ..c
        };
        assert!(bad.validate().is_err());
        let odd = LeaseConfig {
            lease_duration: Duration::from_millis(2500),
            renew_deadline: Duration::from_secs(2),
            retry_period: Duration::from_millis(500),
        };
        odd.validate().unwrap();
        assert_eq!(odd.lease_duration_seconds(), Some(3), "rounded up");
    }

    #[test]
    fn expiry_needs_both_clocks() {
        let wall = Timestamp::now();
        let now = Instant::now();
        let d = Duration::from_secs(15);
        let long_ago = now.checked_sub(Duration::from_secs(20)).unwrap();
        let lately = now.checked_sub(Duration::from_secs(5)).unwrap();
        // renewed 20 s ago by the wall clock, seen 20 s ago: expired
        assert!(is_expired(
            &record(Some("a"), 20, wall),
            d,
            wall,
            long_ago,
            now
        ));
        // renewed 20 s ago by the wall clock but first seen 5 s ago (a
        // replica that just started, or a holder clock behind ours): not yet
        assert!(!is_expired(
            &record(Some("a"), 20, wall),
            d,
            wall,
            lately,
            now
        ));
        // seen long ago but renewed 5 s ago by the wall clock: not yet
        assert!(!is_expired(
            &record(Some("a"), 5, wall),
            d,
            wall,
            long_ago,
            now
        ));
        // exactly one duration: expired
        assert!(is_expired(
            &record(Some("a"), 15, wall),
            d,
            wall,
            now.checked_sub(d).unwrap(),
            now
        ));
        // a renewTime far in the future (skewed clock) does not hold it for ever
        assert!(is_expired(
            &record(Some("a"), -60, wall),
            d,
            wall,
            long_ago,
            now
        ));
        // but one slightly ahead does
        assert!(!is_expired(
            &record(Some("a"), -5, wall),
            d,
            wall,
            long_ago,
            now
        ));
        // no renewTime: the observation alone decides
        let mut r = record(Some("a"), 0, wall);
        r.renew_time = None;
        assert!(is_expired(&r, d, wall, long_ago, now));
        assert!(!is_expired(&r, d, wall, lately, now));
        // the Lease's own duration wins over ours
        let mut short = record(Some("a"), 3, wall);
        short.duration = Some(Duration::from_secs(2));
        assert!(is_expired(&short, d, wall, lately, now));
        // a missing duration is ours
        short.duration = None;
        assert!(!is_expired(&short, d, wall, lately, now));
    }

    #[test]
    fn follower_transitions() {
        let wall = Timestamp::now();
        assert_eq!(follower_action(None, false), FollowerAction::Create);
        let held = record(Some("b"), 1, wall);
        assert_eq!(
            follower_action(Some(&held), false),
            FollowerAction::Wait {
                holder: Some("b".into())
            }
        );
        assert_eq!(follower_action(Some(&held), true), FollowerAction::Acquire);
        let free = record(None, 1, wall);
        assert_eq!(follower_action(Some(&free), false), FollowerAction::Acquire);
        // naming this very replica changes nothing: it waits for expiry
        let mine = record(Some("me"), 1, wall);
        assert_eq!(
            follower_action(Some(&mine), false),
            FollowerAction::Wait {
                holder: Some("me".into())
            }
        );
    }

    #[test]
    fn leader_terms_count_from_the_send_time() {
        let sent = Instant::now();
        let state = leader_state(4, sent, Duration::from_secs(10));
        assert_eq!(
            state,
            Leadership::Leader {
                epoch: 4,
                valid_until: sent + Duration::from_secs(10)
            }
        );
        assert!(state.is_leader());
        assert_eq!(state.epoch(), Some(4));
        assert!(!renew_is_late(
            sent + Duration::from_secs(10),
            sent + Duration::from_secs(9)
        ));
        assert!(renew_is_late(
            sent + Duration::from_secs(10),
            sent + Duration::from_secs(10)
        ));
        assert!(renew_is_late(
            sent + Duration::from_secs(10),
            sent + Duration::from_secs(11)
        ));
        let f = Leadership::Follower { holder: None };
        assert!(!f.is_leader());
        assert_eq!(f.epoch(), None);
    }

    #[test]
    fn specs_of_each_write() {
        let wall = Timestamp::now();
        let new = acquired_spec(None, "a", wall, 15).unwrap();
        assert_eq!(new.holder_identity.as_deref(), Some("a"));
        assert_eq!(new.lease_transitions, Some(1), "the first epoch is 1");
        assert_eq!(new.lease_duration_seconds, Some(15));
        assert_eq!(new.acquire_time, Some(MicroTime(wall)));
        assert_eq!(new.renew_time, Some(MicroTime(wall)));

        let later = wall
            .checked_add(jiff::SignedDuration::from_secs(3))
            .unwrap();
        let renewed = renewed_spec(&new, later);
        assert_eq!(renewed.renew_time, Some(MicroTime(later)));
        assert_eq!(renewed.acquire_time, Some(MicroTime(wall)));
        assert_eq!(renewed.lease_transitions, Some(1));

        let released = released_spec(&renewed);
        assert_eq!(released.holder_identity, None);
        assert_eq!(released.lease_transitions, Some(1), "transitions kept");
        assert!(
            LeaseRecord::from_lease(&Lease {
                spec: Some(released.clone()),
                ..Lease::default()
            })
            .holder
            .is_none()
        );

        let taken = acquired_spec(Some(&released), "b", later, 20).unwrap();
        assert_eq!(taken.holder_identity.as_deref(), Some("b"));
        assert_eq!(taken.lease_transitions, Some(2));
        assert_eq!(taken.lease_duration_seconds, Some(20));
        assert_eq!(taken.acquire_time, Some(MicroTime(later)));

        let max = LeaseSpec {
            lease_transitions: Some(i32::MAX),
            ..LeaseSpec::default()
        };
        assert!(acquired_spec(Some(&max), "c", later, 15).is_none());
    }

    #[test]
    fn an_empty_holder_is_no_holder() {
        let lease = Lease {
            spec: Some(LeaseSpec {
                holder_identity: Some(String::new()),
                lease_duration_seconds: Some(7),
                lease_transitions: Some(5),
                ..LeaseSpec::default()
            }),
            ..Lease::default()
        };
        let r = LeaseRecord::from_lease(&lease);
        assert_eq!(r.holder, None);
        assert_eq!(r.duration, Some(Duration::from_secs(7)));
        assert_eq!(r.transitions, 5);
    }
}
