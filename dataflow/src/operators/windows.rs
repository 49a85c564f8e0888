//! 1-minute tumbling windows per device type, each row emitted once, when final.
//!
//! Semantics: for every minute `[start, start + 60 s)` and device type with at least one
//! distinct accepted event, one row: `event_count`, mean / min / max `event_duration`, mean
//! `value`, and the exact nearest-rank p95 of `event_duration` (the value at 1-based rank
//! ⌈0.95·n⌉ in ascending order). A row is final, and emitted, when the frontier passes the
//! window's end; nothing is ever emitted for a window twice.
//!
//! Mechanics: a differential `reduce` keyed by `(minute, type)` whose values are sorted runs
//! of `(duration bits, value bits)` (see [`crate::runs`]): one per worker that kept events of
//! the window, which the reduce merges into the window's whole multiset, sorted by duration
//! (non-negative `f64`s order like their bit patterns). Each run is also retracted one minute
//! after its window, so the arrangement forgets closed windows and memory does not grow with
//! the stream;
//! only the insertions' output (the `+1` updates at the window's own minute) is emitted, each
//! row at that minute (so a live run names the window's file after it, reproducibly).

use connectors::schema::{DeviceType, EventTime, MICROS_PER_MINUTE};
use connectors::sink::WindowRow;

use crate::runs::{merge, MinuteRun, Run};
use differential_dataflow::collection::vec::Collection as VecCollection;
use std::collections::BTreeMap;

use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::Operator;
use timely::dataflow::StreamVec;

use crate::stats::{p95_rank, value_at_rank, Sum};

/// Window statistics with floats as bit patterns, so that differential can order them.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
struct Stats {
    count: i64,
    avg_duration: u64,
    min_duration: u64,
    max_duration: u64,
    avg_value: u64,
    p95_duration: u64,
}

/// The window operator on the collection of distinct accepted events' measurements.
///
/// # Examples
///
/// Two runs of one window, as two workers' dedup would hand them over, make one row, emitted
/// at the window's minute:
///
/// ```
/// use connectors::schema::DeviceType;
/// use dataflow::operators::windows::MinuteWindows;
/// use dataflow::runs::{MinuteRun, Run};
/// use differential_dataflow::AsCollection;
/// use timely::dataflow::operators::capture::{Capture, Event};
/// use timely::dataflow::operators::vec::ToStream;
///
/// let run = |durations: &[f64]| Run::from_values(durations.iter().map(|d| (d.to_bits(), 1f64.to_bits())).collect());
/// let minute = 29_000_000; // 2025-02-19T06:40:00Z
/// let runs = vec![
///     (MinuteRun { minute, device_type: DeviceType::ALL[0], values: run(&[3.0, 1.0]) }, minute, 1isize),
///     (MinuteRun { minute, device_type: DeviceType::ALL[0], values: run(&[2.0]) }, minute, 1isize),
/// ];
/// let captured = timely::example(move |scope| runs.to_stream(scope).as_collection().minute_windows().capture());
/// let rows: Vec<_> = captured
///     .try_iter()
///     .flat_map(|event| match event {
///         Event::Messages(stamp, rows) => rows.into_iter().map(|r| (*stamp.expect_singleton(), r)).collect(),
///         Event::Progress(_) => Vec::new(),
///     })
///     .collect();
/// assert_eq!(rows.len(), 1);
/// let (time, row) = &rows[0];
/// assert_eq!(*time, minute);
/// assert_eq!((row.event_count, row.min_duration, row.max_duration, row.avg_duration, row.p95_duration), (3, 1.0, 3.0, 2.0, 3.0));
/// ```
pub trait MinuteWindows<'s> {
    /// One row per (minute, device type), emitted once the frontier passes the minute.
    fn minute_windows(self) -> StreamVec<'s, u64, WindowRow>;
}

impl<'s> MinuteWindows<'s> for VecCollection<'s, u64, MinuteRun> {
    fn minute_windows(self) -> StreamVec<'s, u64, WindowRow> {
        let keyed = self.map(|r| ((r.minute, r.device_type), r.values));
        keyed
            .clone()
            .concat(keyed.negate().delay(|m| m + 1))
            .reduce_named(
                "MinuteWindows",
                |_key: &(u64, DeviceType), runs: &[(&Run<(u64, u64)>, isize)], out: &mut Vec<(Stats, isize)>| {
                    let vals = merge(runs.iter().map(|&(r, w)| (r, w as i64)));
                    if !vals.is_empty() {
                        out.push((window_stats(&vals), 1));
                    }
                },
            )
            .inner
            .unary(Pipeline, "StampWindows", |_cap, _info| {
                move |input, output| {
                    // Each row at its own time (the window's minute), not at the time of the
                    // container differential sent it in, which depends on how the frontier
                    // advanced: live files are named by that time and must be reproducible.
                    input.for_each(|cap, data| {
                        let mut by_time: BTreeMap<u64, Vec<WindowRow>> = BTreeMap::new();
                        for (((minute, device_type), s), time, diff) in data.drain(..) {
                            if diff > 0 {
                                by_time.entry(time).or_default().push(WindowRow {
                                    window_start: EventTime(minute as i64 * MICROS_PER_MINUTE),
                                    device_type,
                                    event_count: s.count,
                                    avg_duration: f64::from_bits(s.avg_duration),
                                    min_duration: f64::from_bits(s.min_duration),
                                    max_duration: f64::from_bits(s.max_duration),
                                    avg_value: f64::from_bits(s.avg_value),
                                    p95_duration: f64::from_bits(s.p95_duration),
                                });
                            }
                        }
                        for (time, rows) in by_time {
                            output.session(&cap.delayed(&time, 0)).give_iterator(rows.into_iter());
                        }
                    });
                }
            })
    }
}

/// The statistics of a window's multiset of `(duration bits, value bits)`, sorted, with
/// multiplicities.
fn window_stats(vals: &[((u64, u64), i64)]) -> Stats {
    let mut count = 0i64;
    let (mut durations, mut values) = (Sum::default(), Sum::default());
    for &((d, v), n) in vals {
        count += n;
        durations.add_n(f64::from_bits(d), n);
        values.add_n(f64::from_bits(v), n);
    }
    let sorted = vals.iter().map(|&((d, _), n)| (f64::from_bits(d), n));
    Stats {
        count,
        avg_duration: (durations.value() / count as f64).to_bits(),
        min_duration: vals[0].0 .0,
        max_duration: vals[vals.len() - 1].0 .0,
        avg_value: (values.value() / count as f64).to_bits(),
        p95_duration: value_at_rank(sorted, p95_rank(count)).to_bits(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operators::harness::{drive, Lcg};
    use std::collections::BTreeMap as Map;

    /// A few minutes and types of measurements, as runs split arbitrarily (as dedup's
    /// workers would hand them over), and the same measurements per window.
    type Windows = Map<(u64, DeviceType), Vec<(f64, f64)>>;

    fn input(seed: u64) -> (Vec<(MinuteRun, u64)>, Windows) {
        let mut rng = Lcg(seed);
        let (mut runs, mut windows) = (Vec::new(), Map::new());
        for _ in 0..60 {
            let minute = 29_000_000 + rng.below(5);
            let device_type = DeviceType::ALL[rng.below(DeviceType::ALL.len() as u64) as usize];
            let values: Vec<(f64, f64)> = (0..1 + rng.below(30))
                .map(|_| (rng.below(400) as f64 / 8.0, rng.below(1000) as f64 / 10.0 - 50.0))
                .collect();
            windows.entry((minute, device_type)).or_insert_with(Vec::new).extend(values.iter().copied());
            let bits = values.iter().map(|&(d, v)| (d.to_bits(), v.to_bits())).collect();
            runs.push((MinuteRun { minute, device_type, values: Run::from_values(bits) }, minute));
        }
        (runs, windows)
    }

    /// The naive answer for one window, written from the definition (plain sums, a sort).
    fn naive(minute: u64, device_type: DeviceType, values: &[(f64, f64)]) -> WindowRow {
        let n = values.len();
        let mut durations: Vec<f64> = values.iter().map(|&(d, _)| d).collect();
        durations.sort_by(f64::total_cmp);
        let rank = (95 * n).div_ceil(100); // ⌈0.95·n⌉, 1-based
        WindowRow {
            window_start: EventTime(minute as i64 * MICROS_PER_MINUTE),
            device_type,
            event_count: n as i64,
            avg_duration: durations.iter().sum::<f64>() / n as f64,
            min_duration: durations[0],
            max_duration: durations[n - 1],
            avg_value: values.iter().map(|&(_, v)| v).sum::<f64>() / n as f64,
            p95_duration: durations[rank - 1],
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * a.abs().max(1.0)
    }

    #[test]
    fn one_row_per_window_at_its_minute_equal_to_a_naive_recomputation_for_1_and_2_workers() {
        for seed in [1, 2, 3] {
            let (runs, windows) = input(seed);
            let mut by_workers = Vec::new();
            for workers in [1, 2] {
                let mut rows = drive(workers, runs.clone(), |c| c.minute_windows());
                rows.sort_by_key(|(r, _)| (r.window_start, r.device_type));
                assert_eq!(rows.len(), windows.len(), "one row per window (seed {seed}, -w {workers})");
                for ((row, time), ((minute, ty), values)) in rows.iter().zip(&windows) {
                    let want = naive(*minute, *ty, values);
                    assert_eq!(*time, *minute, "emitted at the window's minute");
                    assert_eq!(
                        (row.window_start, row.device_type, row.event_count),
                        (want.window_start, want.device_type, want.event_count)
                    );
                    assert_eq!(
                        (row.min_duration, row.max_duration, row.p95_duration),
                        (want.min_duration, want.max_duration, want.p95_duration)
                    );
                    assert!(
                        close(row.avg_duration, want.avg_duration) && close(row.avg_value, want.avg_value),
                        "{row:?} vs {want:?}"
                    );
                }
                by_workers.push(rows.iter().map(|(r, _)| format!("{r:?}")).collect::<Vec<_>>());
            }
            assert_eq!(by_workers[0], by_workers[1], "bit-identical for 1 and 2 workers (seed {seed})");
        }
    }
}
