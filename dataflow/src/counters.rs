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
    /// Durations of the commits of this process, seconds.
    pub commit_seconds: std::sync::Mutex<Durations>,
    /// When (processing time) the source frontier of the dataflow first reached each value,
    /// as seen by worker 0; pruned by the committer once used.
    pub frontier_reached: std::sync::Mutex<std::collections::BTreeMap<u64, std::time::Instant>>,
    /// Live runs: for each committed window file, seconds from the frontier passing the
    /// window's end to the commit that published it (for the summary's percentiles and the
    /// metrics histogram).
    pub window_latencies: std::sync::Mutex<Durations>,
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
    /// The dataflow times of the jobs the sinks of this process have sent to their writing
    /// threads and that are not stored yet, with how many at each time: the source's flow
    /// control reads the oldest (see [`crate::operators::source`]).
    writing: std::sync::Mutex<std::collections::BTreeMap<u64, usize>>,
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
    /// A sink sent a job of rows at dataflow time `time` to its writing thread.
    pub fn writing_started(&self, time: u64) {
        *self.writing.lock().unwrap_or_else(|e| e.into_inner()).entry(time).or_default() += 1;
    }
    /// A job that [`Counters::writing_started`] announced at `time` is stored.
    pub fn writing_done(&self, time: u64) {
        let mut writing = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        if let std::collections::btree_map::Entry::Occupied(mut jobs) = writing.entry(time) {
            *jobs.get_mut() -= 1;
            if *jobs.get() == 0 {
                jobs.remove();
            }
        }
    }
    /// The least time of the jobs sinks have sent to their writing threads and that are not
    /// stored yet (`None`: all stored).
    pub fn oldest_writing(&self) -> Option<u64> {
        self.writing.lock().unwrap_or_else(|e| e.into_inner()).keys().next().copied()
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

/// Durations (seconds) observed during a run, in memory that does not grow with the run's
/// length: a count per tenth of a millisecond, so a run of months holds one entry per
/// distinct value (at most 10,000 per second of spread), not one per observation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Durations {
    counts: std::collections::BTreeMap<u64, u64>,
    total: u64,
}

impl Durations {
    /// Tenths of a millisecond per second: the resolution of the values kept.
    const TICKS_PER_SECOND: f64 = 10_000.0;

    /// Adds one observation (negative values count as 0).
    pub fn record(&mut self, seconds: f64) {
        *self.counts.entry((seconds.max(0.0) * Self::TICKS_PER_SECOND).round() as u64).or_default() += 1;
        self.total += 1;
    }

    /// How many observations there are.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The nearest-rank `q` quantile (the value at 1-based rank ⌈q·n⌉), `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total.max(1));
        let mut below = 0;
        for (&ticks, &n) in &self.counts {
            below += n;
            if below >= rank {
                return Some(ticks as f64 / Self::TICKS_PER_SECOND);
            }
        }
        None
    }

    /// The observations added since `earlier` (a copy taken before): `(seconds, count)`.
    pub fn since<'a>(&'a self, earlier: &'a Durations) -> impl Iterator<Item = (f64, u64)> + 'a {
        self.counts.iter().filter_map(move |(ticks, n)| {
            let new = n - earlier.counts.get(ticks).copied().unwrap_or(0).min(*n);
            (new > 0).then(|| (*ticks as f64 / Self::TICKS_PER_SECOND, new))
        })
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

#[cfg(test)]
mod tests {
    use super::Durations;

    #[test]
    fn durations_give_nearest_rank_quantiles_to_a_tenth_of_a_millisecond() {
        let mut x = 11u64;
        let mut values = Vec::new();
        let mut durations = Durations::default();
        for _ in 0..5000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let seconds = (x >> 40) as f64 / 1e6; // up to ~16.8 s, microsecond steps
            values.push(seconds);
            durations.record(seconds);
        }
        values.sort_by(f64::total_cmp);
        for q in [0.0, 0.01, 0.5, 0.95, 0.99, 1.0] {
            let naive = values[((q * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1];
            let kept = durations.quantile(q).unwrap();
            assert!((kept - naive).abs() <= 0.000_05 + 1e-12, "q {q}: {kept} vs {naive}");
        }
        assert_eq!(durations.len(), 5000);
        assert!(Durations::default().quantile(0.5).is_none());
        // What was added since a copy, with counts.
        let before = durations.clone();
        durations.record(values[0]);
        durations.record(99.0);
        durations.record(99.0);
        let mut new: Vec<(f64, u64)> = durations.since(&before).collect();
        new.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert_eq!(new, [((values[0] * 1e4).round() / 1e4, 1), (99.0, 2)]);
    }
}
