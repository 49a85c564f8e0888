//! The iot-etl engine: a timely/differential dataflow from partitioned messages (files or
//! Kafka) to exact, deterministic Parquet tables.
//!
//! - [`operators`]: the steps of the dataflow, one per file;
//! - [`pipeline`]: assembles them into the dataflow every worker runs;
//! - [`config`]: the command line;
//! - [`embedded`]: the no-services run (in-process Kafka and producer);
//! - [`counters`], [`metrics`], [`stats`]: shared counters, their Prometheus exposition, exact statistics;
//! - [`failure`]: fatal failures of operators, reported to `main` instead of panicking;
//! - [`route`]: an exchange that passes whole containers where it can;
//! - [`runs`]: sorted runs, what dedup hands the window and daily aggregates instead of one
//!   update per event.
#![deny(missing_docs)]

pub mod config;
pub mod counters;
pub mod embedded;
pub mod failure;
pub mod metrics;
pub mod operators;
pub mod pipeline;
pub mod route;
pub mod runs;
pub mod stats;
