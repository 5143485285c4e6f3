//! Plans as data: what to do, step by step, for a recovery, a takeover or a
//! refactoring, decided from a topology alone. Pure: no I/O. The engine
//! executes plans; `--dry-run`, the API and the UI print them.

pub mod step;

pub use step::{HookEvent, Plan, PlanKind, SourcePosition, Step};
