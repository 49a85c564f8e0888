//! The output side: the five Parquet tables and the store their files go to.
//!
//! - [`tables`]: row types, their Arrow schemas, hive partition paths and Parquet encoding;
//! - [`store`]: the one small interface ([`store::TableStore`]) through which part files are
//!   published, and its local-folder implementation;
//! - [`object`]: S3-compatible and in-memory stores, and [`object::open`], which turns an
//!   output URL into a store;
//! - [`commit`]: the epoch commit protocol and the checkpoint (commit records, recovery).
//!
//! File names are deterministic: a table's rows for one hive partition are written once,
//! when the dataflow frontier has passed that partition's period, as
//! `<table>/year=YYYY/month=MM/day=DD[/hour=HH]/part-<shard>.parquet`. Files being written
//! carry a name starting with `_`, so DuckDB, Spark and pyarrow never read them, until a
//! commit publishes them.

pub mod commit;
pub mod object;
pub mod store;
pub mod tables;

pub use store::{LocalStore, StoreError, TableStore};
pub use tables::{DailyRow, Table, WindowRow, DAILY_MIN_EVENTS, TABLE_NAMES};
