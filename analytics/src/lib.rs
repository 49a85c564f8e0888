//! Batch analytics over the engine's committed Parquet tables.
//!
//! - [`table`]: lists a hive-partitioned table's committed files, pruned by date, in any
//!   store the engine writes to (a folder, `file://`, `s3://`), and reads only the needed
//!   columns, files in parallel;
//! - [`daily`]: the exact daily p95 of the design, computed in one batch pass;
//! - [`windows`]: the 1-minute window statistics, recomputed from `events`;
//! - [`check`]: compares the stream's `daily_p95` and `windows` tables with those
//!   recomputations;
//! - [`diff`]: whether two outputs hold the same tables (runs must agree).
//!
//! These are deliberately independent of the engine's incremental code: plain sorts and
//! sums over a whole group, so that `analytics check` is a real cross-check.
#![deny(missing_docs)]

pub mod check;
pub mod daily;
pub mod diff;
pub mod table;
pub mod windows;

/// A compensated (Neumaier) sum, so that means agree with any summation order to ~1e-15.
pub fn sum(xs: impl IntoIterator<Item = f64>) -> f64 {
    let (mut s, mut c) = (0.0f64, 0.0f64);
    for x in xs {
        let t = s + x;
        c += if s.abs() >= x.abs() { (s - t) + x } else { (x - t) + s };
        s = t;
    }
    s + c
}

/// The value at 1-based nearest rank ⌈0.95·k⌉ of `sorted` (ascending, non-empty).
pub fn p95_nearest_rank(sorted: &[f64]) -> f64 {
    let k = sorted.len();
    let rank = (95 * k).div_ceil(100).max(1);
    sorted[rank - 1]
}
