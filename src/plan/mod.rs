//! Plans as data: what to do, step by step, for a recovery, a takeover or a
//! refactoring, decided from a topology alone. Pure: no I/O. The engine
//! executes plans; `--dry-run`, the API and the UI print them.
//!
//! - [`bootstrap`]: the first primary of a cluster, or the replication
//!   adopted;
//! - [`candidate`]: which replica replaces a failed or departing source;
//! - [`legality`]: whether one instance may replicate from another;
//! - [`recovery`]: dead primary, force failover, force takeover, dead
//!   intermediate primary;
//! - [`loss`]: what a failover may lose (semi-sync quorum, GTIDs);
//! - [`takeover`]: graceful takeover (switchover);
//! - [`refactor`]: relocate, move up, move below, repoint, take siblings,
//!   regroup replicas;
//! - [`instance`]: start or stop replication, read only, writable, fix
//!   errant GTIDs, on one instance.

pub mod bootstrap;
pub mod candidate;
pub mod error;
pub mod instance;
pub mod legality;
pub mod loss;
pub mod membership;
pub mod operation;
pub mod recovery;
pub mod refactor;
pub mod repair;
pub mod step;
pub mod takeover;

pub use candidate::{CandidateChoice, CandidateOptions, PromotionRule, choose_candidate};
pub use error::PlanError;
pub use instance::{fix_errant, set_read_only, set_writable, start_replication, stop_replication};
pub use legality::{LegalityOptions, Refusal, can_replicate_from};
pub use recovery::{
    RecoveryOptions, dead_intermediate_primary, dead_primary, force_failover, force_takeover,
};
pub use refactor::{move_below, move_up, regroup_replicas, relocate, repoint, take_siblings};
pub use step::{
    HookEvent, Plan, PlanKind, SourcePosition, Step, fence_steps, unfence_steps,
    writable_without_epoch,
};
pub use takeover::{TakeoverOptions, graceful_takeover};
