//! Batch analytics over the engine's committed Parquet tables.
//!
//! - [`table`]: lists a hive-partitioned table's committed files, pruned by date, in any
//!   store the engine writes to (a folder, `file://`, `s3://`), and reads only the needed
//!   columns, files in parallel;
//! - [`daily`]: the exact daily p95 of the design, computed in one batch pass;
//! - [`outliers`]: 3-sigma and IQR outliers per date and device type;
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
pub mod outliers;
pub mod table;
pub mod windows;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Why an analytics command failed; the message names the file, table or flag.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A store, folder or file could not be read: what, and why.
    #[error("{what}")]
    Read {
        /// What was being read.
        what: String,
        /// Why it failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A table holds something the engine does not write (a column of another type, an
    /// unknown device type, two rows for one key), or an argument cannot work: the message
    /// says which.
    #[error("{0}")]
    Table(String),
    /// Arrow could not process a batch.
    #[error(transparent)]
    Arrow(#[from] arrow_schema::ArrowError),
    /// Parquet could not be decoded.
    #[error(transparent)]
    Parquet(#[from] parquet::errors::ParquetError),
    /// A report could not be written.
    #[error(transparent)]
    Csv(#[from] csv::Error),
    /// A report could not be written.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A reading thread panicked (a bug).
    #[error("a worker thread panicked")]
    Panicked,
}

impl Error {
    /// A failure to read `what`.
    pub fn read(what: String, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Read { what, source: Box::new(source) }
    }
}

/// The result of an analytics operation.
pub type Result<T> = std::result::Result<T, Error>;

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

/// How many threads read and compute: the machine's cores, or `ANALYTICS_THREADS`.
pub fn threads() -> usize {
    std::env::var("ANALYTICS_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// `f` of every item, on up to [`threads`] threads taking the next item as they finish one;
/// the results in item order, or the first error (the other threads then stop).
pub fn parallel_map<I: Sync, T: Send>(items: &[I], f: impl Fn(&I) -> crate::Result<T> + Sync) -> crate::Result<Vec<T>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<T>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    let work = || -> crate::Result<()> {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else { return Ok(()) };
            match f(item) {
                Ok(out) => results.lock().expect("a worker thread panicked")[i] = Some(out),
                Err(e) => {
                    next.store(items.len(), Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
    };
    let n = threads().min(items.len()).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n).map(|_| s.spawn(work)).collect();
        handles.into_iter().try_for_each(|h| h.join().unwrap_or(Err(Error::Panicked)))
    })?;
    Ok(results
        .into_inner()
        .expect("a worker thread panicked")
        .into_iter()
        .map(|r| r.expect("every item was mapped"))
        .collect())
}

/// The 1-based nearest rank ⌈percent/100 · k⌉ of `k` values (at least 1).
fn nearest_rank(percent: usize, k: usize) -> usize {
    (percent * k).div_ceil(100).max(1)
}

/// The value at 1-based nearest rank ⌈0.95·k⌉ of `sorted` (ascending, non-empty).
pub fn p95_nearest_rank(sorted: &[f64]) -> f64 {
    sorted[nearest_rank(95, sorted.len()) - 1]
}

/// The value at 1-based nearest rank ⌈percent/100 · k⌉ of `values` in any order
/// (non-empty), by selection rather than a sort; reorders `values`.
pub fn percentile_nearest_rank_unsorted(values: &mut [f64], percent: usize) -> f64 {
    let rank = nearest_rank(percent, values.len());
    *values.select_nth_unstable_by(rank - 1, f64::total_cmp).1
}

/// [`p95_nearest_rank`] of `values` in any order (non-empty); reorders `values`.
pub fn p95_nearest_rank_unsorted(values: &mut [f64]) -> f64 {
    percentile_nearest_rank_unsorted(values, 95)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_equals_the_sorted_nearest_rank() {
        for k in 1..300usize {
            let mut v: Vec<f64> = (0..k).map(|i| ((i * 7919) % 1009) as f64 * 0.5).collect();
            let mut sorted = v.clone();
            sorted.sort_by(f64::total_cmp);
            assert_eq!(p95_nearest_rank_unsorted(&mut v), p95_nearest_rank(&sorted), "k = {k}");
            assert_eq!(nearest_rank(95, k), (0.95 * k as f64 - 1e-9).ceil() as usize);
            assert_eq!(nearest_rank(25, k), (0.25 * k as f64 - 1e-9).ceil() as usize);
        }
    }
}
