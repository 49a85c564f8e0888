//! Process-wide counters of what the dataflow has done, for the bounded-run summary and
//! the live progress line. Operators add to them once per batch, never per record.
//! (The Prometheus exposition of the same quantities is built on these.) They also carry the
//! run's [`Failure`], since every operator already holds them.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use connectors::parse::RejectReason;

use crate::failure::Failure;

/// Counters shared by every worker of one process.
#[derive(Debug, Default)]
pub struct Counters {
    /// Messages (lines) read from the source.
    pub read: AtomicU64,
    /// Bytes read from the source.
    pub bytes_read: AtomicU64,
    /// Valid, on-time events (before deduplication).
    pub accepted: AtomicU64,
    /// Rejected messages, indexed like [`RejectReason::ALL`].
    pub rejected: [AtomicU64; RejectReason::ALL.len()],
    /// Valid events behind their partition's watermark.
    pub late: AtomicU64,
    /// Accepted events dropped as copies of an earlier event id.
    pub duplicates: AtomicU64,
    /// Messages read again after a restart whose rows were already committed.
    pub replayed: AtomicU64,
    /// Rows written per table: events, windows, daily_p95, late, rejected.
    pub rows_written: [AtomicU64; TABLE_NAMES.len()],
    /// Part files written (all tables).
    pub files_written: AtomicU64,
    /// Bytes of part files written (all tables).
    pub bytes_written: AtomicU64,
    /// Part files written per table (indexed like `rows_written`).
    pub table_files: [AtomicU64; TABLE_NAMES.len()],
    /// Bytes written per table (indexed like `rows_written`).
    pub table_bytes: [AtomicU64; TABLE_NAMES.len()],
    /// Each partition's event-time watermark in microseconds, as last seen by its reader.
    pub partition_watermarks: std::sync::Mutex<std::collections::BTreeMap<u32, i64>>,
    /// Whether each open partition of this process is idle (see the source operator).
    pub partition_idle: std::sync::Mutex<std::collections::BTreeMap<u32, bool>>,
    /// Each partition's read position (offset of the next message).
    pub partition_positions: std::sync::Mutex<std::collections::BTreeMap<u32, u64>>,
    /// The last epoch this process committed (0: none yet).
    pub last_epoch: AtomicU64,
    /// When this process last committed, microseconds since the Unix epoch (0: never).
    pub last_commit_micros: AtomicI64,
    /// Durations of commits not yet observed by the metrics histogram, seconds.
    pub commit_seconds: std::sync::Mutex<Vec<f64>>,
    /// When (processing time) the source frontier of the dataflow first reached each value,
    /// as seen by worker 0; pruned by the committer once used.
    pub frontier_reached: std::sync::Mutex<std::collections::BTreeMap<u64, std::time::Instant>>,
    /// Live runs: for each committed window file, seconds from the frontier passing the
    /// window's end to the commit that published it. Every value stays here (for the
    /// summary's percentiles); `window_latency_observed` of them went to the histogram.
    pub window_latencies: std::sync::Mutex<Vec<f64>>,
    /// How many of `window_latencies` the metrics histogram has observed.
    pub window_latency_observed: AtomicU64,
    /// Each partition's consumer lag (messages available but not read), when the source knows.
    pub partition_lag: std::sync::Mutex<std::collections::BTreeMap<u32, u64>>,
    /// The provisional daily p95 of the newest open day, per device type (milliseconds).
    pub provisional_p95: std::sync::Mutex<std::collections::BTreeMap<&'static str, f64>>,
    /// Set once every worker has built its dataflow and opened its partitions.
    pub started: std::sync::atomic::AtomicBool,
    /// The least event-time watermark over this process's partitions, in microseconds
    /// (`i64::MIN` before any event).
    pub watermark_micros: AtomicI64,
    /// The first fatal failure of an operator (see [`crate::failure`]).
    pub failure: Failure,
}

impl Counters {
    /// Fresh counters.
    pub fn new() -> Self {
        let c = Counters::default();
        c.watermark_micros.store(i64::MIN, Relaxed);
        c
    }
    /// Adds `n` to the counter of `reason`.
    pub fn add_rejected(&self, reason: RejectReason, n: u64) {
        let i = RejectReason::ALL.iter().position(|r| *r == reason).expect("reason is in ALL");
        self.rejected[i].fetch_add(n, Relaxed);
    }
    /// Total rejected messages.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().map(|c| c.load(Relaxed)).sum()
    }
    /// The least watermark (microseconds, 0 for a partition without one yet) over the
    /// partitions of this process that are open and not idle, as the workers last published
    /// them: what holds the process's frontier back (the source operator's live frontier, the
    /// metrics' frontier delay). `None` if every open partition is idle, or none is open.
    /// Values may be a little stale, which only makes them smaller (watermarks only grow).
    pub fn least_active_watermark(&self) -> Option<i64> {
        let (marks, idle) = (self.partition_watermarks.lock().ok()?, self.partition_idle.lock().ok()?);
        idle.iter().filter(|(_, idle)| !**idle).map(|(p, _)| marks.get(p).copied().unwrap_or(0).max(0)).min()
    }
}

/// The tables in the order of [`Counters::rows_written`] (the list is `connectors`').
pub use connectors::sink::TABLE_NAMES;

/// Index of table `name` in [`Counters::rows_written`]; every table the engine writes has one.
pub fn table_index(name: &str) -> usize {
    TABLE_NAMES.iter().position(|t| *t == name).unwrap_or_else(|| unreachable!("{name} is not in TABLE_NAMES"))
}

/// Peak resident set size of this process in bytes (`VmHWM`), if the OS reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
