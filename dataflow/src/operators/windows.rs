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
