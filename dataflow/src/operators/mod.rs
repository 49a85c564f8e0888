//! The dataflow's operators, one per file, each with a header stating what it means.
//!
//! In pipeline order: [`source`] (partitions read and parsed on threads of their own, then
//! validated and checked for lateness: `source/prefetch.rs`, `validate.rs`, `lateness.rs`), [`seed`]
//! (a restart's state, read back from the committed events), [`dedup`], [`windows`], [`daily_p95`], [`sink`] for every table, and [`commit`] for the
//! files of all tables.
//! Dataflow time is the event-time minute (`u64` minutes since the Unix epoch).

pub mod commit;
pub mod daily_p95;
pub mod dedup;
pub mod seed;
pub mod sink;
pub mod source;
pub mod windows;
