//! The daily p95 per device type, maintained continuously and finalized at midnight.
//!
//! Semantics, per UTC date and device type, over the distinct accepted events of that day,
//! and only where there are at least [`MIN_EVENTS`] of them:
//! - μ = mean of `event_duration`, σ = sample standard deviation (n − 1);
//! - kept = the values with |x − μ| ≤ 3σ; `outliers_removed` = n − kept;
//! - p95 = nearest rank: the kept value at 1-based rank ⌈0.95·k⌉ in ascending order;
//! - `avg_kept_duration` = mean of the kept values.
//!
//! Exact, not approximate: the whole day's multiset is held (sorted, with multiplicities) in
//! a differential arrangement, and `reduce` recomputes a group from it whenever it changes.
//! The minute runs of a (day, type) are routed to one worker ([`day_key`], a fixed function,
//! so any worker or process count routes alike), which holds the day so far as one sorted run
//! of durations (see [`crate::runs`]), replaced at the end of every refresh period (an hour of
//! event time by default) by the run that includes the period, so a provisional value exists,
//! and is logged, once per period while the day is open. The reduce reads that one run in
//! place (it merges runs only if it ever sees several). The final row is emitted once, when
//! the frontier passes the day's last minute. Every run is retracted at the next midnight, so
//! closed days leave the arrangement.

use std::collections::BTreeMap;

use connectors::calendar::DAY_MINUTES;
use connectors::schema::DeviceType;
use connectors::sink::DailyRow;
use differential_dataflow::collection::vec::Collection as VecCollection;
use differential_dataflow::AsCollection;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::{Capability, Operator};
use timely::dataflow::StreamVec;

use std::sync::Arc;

use crate::counters::Counters;
use crate::failure::Fatal;
use crate::runs::{merge, MinuteRun, Run, SharedRun};
use crate::stats::{p95_rank, value_at_rank, Sum};

/// The least number of distinct accepted events a (date, type) needs to get a row.
pub const MIN_EVENTS: i64 = connectors::sink::DAILY_MIN_EVENTS as i64;

/// Daily statistics with floats as bit patterns, so that differential can order them.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct DailyStats {
    event_count: i64,
    kept_count: i64,
    mean: u64,
    stddev: u64,
    p95: u64,
    avg_kept: u64,
}

/// The daily p95 operator on the collection of distinct accepted events' measurements.
///
/// # Examples
///
/// A day of 600 durations 1, 2, …, 600 ms (in one-minute runs) gets one final row at the
/// day's last minute; a day of 499 gets none:
///
/// ```
/// use std::sync::Arc;
/// use connectors::calendar::DAY_MINUTES;
/// use connectors::schema::DeviceType;
/// use dataflow::counters::Counters;
/// use dataflow::operators::daily_p95::DailyP95;
/// use dataflow::runs::{MinuteRun, Run};
/// use differential_dataflow::AsCollection;
/// use timely::dataflow::operators::capture::{Capture, Event};
/// use timely::dataflow::operators::vec::ToStream;
///
/// let day = 20_395u64; // 2025-11-03
/// let runs: Vec<_> = (0..1099u64)
///     .map(|i| {
///         let (day, duration) = if i < 600 { (day, i + 1) } else { (day + 1, i) };
///         let minute = day * DAY_MINUTES + i % DAY_MINUTES;
///         let values = Run::from_values(vec![((duration as f64).to_bits(), 0)]);
///         (MinuteRun { minute, device_type: DeviceType::ALL[0], values }, minute, 1isize)
///     })
///     .collect();
/// let captured = timely::example(move |scope| {
///     runs.to_stream(scope).as_collection().daily_p95(60, false, Arc::new(Counters::new())).capture()
/// });
/// let rows: Vec<_> = captured
///     .try_iter()
///     .flat_map(|event| match event {
///         Event::Messages(stamp, rows) => rows.into_iter().map(|r| (*stamp.expect_singleton(), r)).collect(),
///         Event::Progress(_) => Vec::new(),
///     })
///     .collect();
/// assert_eq!(rows.len(), 1);
/// let (time, row) = &rows[0];
/// assert_eq!((*time, row.date as u64, row.event_count), ((day + 1) * DAY_MINUTES - 1, day, 600));
/// assert_eq!((row.outliers_removed, row.p95_duration, row.mean_duration), (0, 570.0, 300.5));
/// ```
pub trait DailyP95<'s> {
    /// Final daily rows, emitted when the frontier passes each day. `refresh_minutes` is the
    /// event-time period of provisional values; `log_provisional` logs each one.
    fn daily_p95(
        self, refresh_minutes: u64, log_provisional: bool, counters: Arc<Counters>,
    ) -> StreamVec<'s, u64, DailyRow>;
}

impl<'s> DailyP95<'s> for VecCollection<'s, u64, MinuteRun> {
    fn daily_p95(
        self, refresh_minutes: u64, log_provisional: bool, counters: Arc<Counters>,
    ) -> StreamVec<'s, u64, DailyRow> {
        let refresh = refresh_minutes.clamp(1, DAY_MINUTES);
        // End of the refresh period, never past the day's last minute: monotone and >= m.
        let period_end = move |m: u64| {
            ((m / refresh) * refresh + refresh - 1).min((m / DAY_MINUTES) * DAY_MINUTES + DAY_MINUTES - 1)
        };
        self.inner
            .unary_frontier(Exchange::new(|(run, _, _): &(MinuteRun, u64, isize)| day_key(run.minute, run.device_type)), "DailyRuns", move |_cap, _info| {
                // The (day, type)s routed here, each as one sorted run of duration bits:
                // at the end of every refresh period the run so far is replaced by the run
                // including the period (a retraction and an insertion at the period's end),
                // and at the next midnight it is retracted, so closed days leave the reduce.
                type Key = (i32, DeviceType);
                // Per period end: the capability to emit at it, and the runs to replace then.
                type Period = (Capability<u64>, Vec<(Key, Run<u64>)>);
                // Per day: the capability to retract at its end, and each type's run so far.
                type Day = (Capability<u64>, BTreeMap<DeviceType, SharedRun<u64>>);
                let mut periods: BTreeMap<u64, Period> = BTreeMap::new();
                let mut days: BTreeMap<i32, Day> = BTreeMap::new();
                move |(input, frontier), output| {
                    input.for_each(|cap, data| {
                        for (run, _time, diff) in data.drain(..) {
                            debug_assert_eq!(diff, 1, "the daily p95 expects an insert-only collection");
                            let day = (run.minute / DAY_MINUTES) as i32;
                            let end = period_end(run.minute);
                            let durations = run.values.project(|(d, _)| d);
                            periods.entry(end).or_insert_with(|| (cap.delayed(&end, 0), Vec::new())).1.push(((day, run.device_type), durations));
                            days.entry(day).or_insert_with(|| (cap.delayed(&((day as u64 + 1) * DAY_MINUTES), 0), BTreeMap::new()));
                        }
                    });
                    while let Some(entry) = periods.first_entry() {
                        if frontier.less_equal(entry.key()) {
                            break;
                        }
                        let (end, (cap, runs)) = entry.remove_entry();
                        let mut by_key: BTreeMap<Key, Vec<Run<u64>>> = BTreeMap::new();
                        for (key, run) in runs {
                            by_key.entry(key).or_default().push(run);
                        }
                        let mut session = output.session(&cap);
                        for ((day, ty), runs) in by_key {
                            let so_far = days.get_mut(&day).expect("a day is noted with its first run").1.entry(ty).or_default();
                            let old = std::mem::take(so_far);
                            let merged = merge(std::iter::once((&*old.0, 1)).chain(runs.iter().map(|r| (r, 1))));
                            *so_far = SharedRun(Arc::new(Run(merged.into_iter().map(|(v, n)| (v, n as u64)).collect())));
                            if !old.0.is_empty() {
                                session.give((((day, ty), old), end, -1isize));
                            }
                            session.give((((day, ty), so_far.clone()), end, 1isize));
                        }
                    }
                    while let Some(entry) = days.first_entry() {
                        let midnight = (*entry.key() as u64 + 1) * DAY_MINUTES;
                        if frontier.less_equal(&(midnight - 1)) {
                            break;
                        }
                        let (day, (cap, types)) = entry.remove_entry();
                        let mut session = output.session(&cap);
                        for (ty, run) in types.into_iter().filter(|(_, r)| !r.0.is_empty()) {
                            session.give((((day, ty), run), midnight, -1isize));
                        }
                    }
                }
            })
            .as_collection()
            .reduce_named("DailyP95", |_key: &(i32, DeviceType), runs: &[(&SharedRun<u64>, isize)], out: &mut Vec<(DailyStats, isize)>| {
                let stats = match runs {
                    // The one run of the day so far (see the exchange above): read in place.
                    [(run, 1)] => daily_stats(|| run.0 .0.iter().map(|&(bits, n)| (bits, n as i64))),
                    _ => {
                        let merged = merge(runs.iter().map(|&(r, w)| (&*r.0, w as i64)));
                        daily_stats(|| merged.iter().copied())
                    }
                };
                out.extend(stats.map(|stats| (stats, 1)));
            })
            .inner
            .unary_frontier(Pipeline, "DailyFinalize", move |_cap, _info| {
                // Per day: a capability at its last minute, and each key's accumulated updates.
                type Updates = Vec<(DailyStats, isize)>;
                let mut days: BTreeMap<i32, (Capability<u64>, BTreeMap<DeviceType, Updates>)> = BTreeMap::new();
                // The capabilities of days whose final values broke the invariant, held.
                let mut failed: Vec<Capability<u64>> = Vec::new();
                move |(input, frontier), output| {
                    input.for_each(|cap, data| {
                        for (((day, ty), stats), time, diff) in data.drain(..) {
                            let last_minute = (day as u64 + 1) * DAY_MINUTES - 1;
                            if time > last_minute {
                                continue; // the retraction of a closed day
                            }
                            let newest = days.keys().next_back().is_none_or(|d| *d <= day);
                            let entry = days.entry(day).or_insert_with(|| (cap.delayed(&last_minute, 0), BTreeMap::new()));
                            let updates = entry.1.entry(ty).or_default();
                            updates.push((stats, diff));
                            differential_dataflow::consolidation::consolidate(updates);
                            if let Some((s, _)) = updates.iter().find(|(_, d)| *d > 0) {
                                let row = to_row(day, ty, s);
                                if newest {
                                    if let Ok(mut gauge) = counters.provisional_p95.lock() {
                                        gauge.insert(ty.as_str(), row.p95_duration);
                                    }
                                }
                                if log_provisional {
                                    let as_of = connectors::schema::EventTime((time as i64 + 1) * connectors::schema::MICROS_PER_MINUTE);
                                    tracing::info!(date = %date_string(day), device_type = %ty, %as_of, event_count = row.event_count,
                                        p95_duration = row.p95_duration, mean_duration = row.mean_duration, "daily p95 provisional");
                                }
                            }
                        }
                    });
                    while let Some(entry) = days.first_entry() {
                        let day = *entry.key();
                        let last_minute = (day as u64 + 1) * DAY_MINUTES - 1;
                        if frontier.less_equal(&last_minute) {
                            break;
                        }
                        let (cap, types) = entry.remove();
                        // One final value per day and type; anything else is a bug that would
                        // write duplicate or missing rows: report it instead (the process ends
                        // and a restart recomputes the day), write nothing for the day, and keep
                        // its capability, so that no frontier past the day is ever committed.
                        let broken = types.iter().find_map(|(ty, updates)| {
                            let finals: isize = updates.iter().map(|(_, d)| *d).sum();
                            (finals != 1 || updates.len() != 1).then(|| format!("daily_p95 for {} and {ty}: {} final values with total weight {finals}, where one is expected; nothing is written for the day", date_string(day), updates.len()))
                        });
                        if let Some(message) = broken {
                            counters.failure.fail(Fatal::Invariant(message));
                            failed.push(cap);
                            continue;
                        }
                        let mut session = output.session(&cap);
                        for (ty, updates) in types {
                            session.give(to_row(day, ty, &updates[0].0));
                        }
                    }
                }
            })
    }
}

/// The worker-routing key of the (day, type) of an event-time minute: consecutive keys for
/// the types of a day, so the types of a day spread over the workers. Fixed arithmetic, not a
/// hasher that could change between builds (two processes must route a key alike).
pub fn day_key(minute: u64, device_type: DeviceType) -> u64 {
    (minute / DAY_MINUTES) * DeviceType::ALL.len() as u64 + device_type as u64
}

/// A day (days since 1970-01-01) as `YYYY-MM-DD`.
fn date_string(day: i32) -> String {
    let (y, m, d) = connectors::calendar::civil_from_days(day as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

fn to_row(date: i32, device_type: DeviceType, s: &DailyStats) -> DailyRow {
    DailyRow {
        date,
        device_type,
        event_count: s.event_count,
        kept_count: s.kept_count,
        outliers_removed: s.event_count - s.kept_count,
        mean_duration: f64::from_bits(s.mean),
        stddev_duration: f64::from_bits(s.stddev),
        p95_duration: f64::from_bits(s.p95),
        avg_kept_duration: f64::from_bits(s.avg_kept),
    }
}

/// The statistics of one day's sorted durations (bits, with multiplicities, each distinct
/// value once: `vals` gives them afresh at each call), `None` below [`MIN_EVENTS`].
fn daily_stats<I: Iterator<Item = (u64, i64)>>(vals: impl Fn() -> I) -> Option<DailyStats> {
    let xs = || vals().map(|(b, c)| (f64::from_bits(b), c));
    let (mut n, mut sum) = (0i64, Sum::default());
    for (x, c) in xs() {
        n += c;
        sum.add_n(x, c);
    }
    if n < MIN_EVENTS {
        return None;
    }
    let mean = sum.value() / n as f64;
    let mut squares = Sum::default();
    for (x, c) in xs() {
        squares.add_n((x - mean) * (x - mean), c);
    }
    let stddev = (squares.value() / (n - 1) as f64).sqrt();
    let kept = || xs().filter(move |(x, _)| (x - mean).abs() <= 3.0 * stddev);
    let (mut k, mut kept_sum) = (0i64, Sum::default());
    for (x, c) in kept() {
        k += c;
        kept_sum.add_n(x, c);
    }
    Some(DailyStats {
        event_count: n,
        kept_count: k,
        mean: mean.to_bits(),
        stddev: stddev.to_bits(),
        p95: value_at_rank(kept(), p95_rank(k)).to_bits(),
        avg_kept: (kept_sum.value() / k as f64).to_bits(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operators::harness::{drive, Lcg};
    // The oracle: the batch recomputation of `analytics` (written from the same definition,
    // sharing no code with this operator).
    use analytics::daily::daily_row;
    use std::collections::BTreeMap as Map;

    /// Durations of two days and three types, some days above [`MIN_EVENTS`] and some below,
    /// with outliers, as one-minute runs spread over each day.
    type Days = Map<(i32, DeviceType), Vec<f64>>;

    fn input(seed: u64) -> (Vec<(MinuteRun, u64)>, Days) {
        let mut rng = Lcg(seed);
        let first_day = 20_395u64;
        let (mut runs, mut days) = (Vec::new(), Map::new());
        for (day, ty, n) in [(0, 0, 700), (0, 1, 499), (1, 0, 520), (1, 2, 900)] {
            let device_type = DeviceType::ALL[ty];
            let mut left = n;
            while left > 0 {
                let k = left.min(1 + rng.below(40));
                left -= k;
                let minute = (first_day + day) * DAY_MINUTES + rng.below(DAY_MINUTES);
                let durations: Vec<f64> = (0..k)
                    .map(|_| {
                        if rng.below(100) == 0 {
                            5_000.0 + rng.below(100) as f64
                        } else {
                            rng.below(4_000) as f64 / 16.0
                        }
                    })
                    .collect();
                days.entry(((first_day + day) as i32, device_type)).or_insert_with(Vec::new).extend(&durations);
                let values = Run::from_values(durations.iter().map(|d| (d.to_bits(), 0)).collect());
                runs.push((MinuteRun { minute, device_type, values }, minute));
            }
        }
        (runs, days)
    }

    #[test]
    fn a_day_read_in_place_or_merged_from_any_split_gives_the_same_bits() {
        let (runs, days) = input(3);
        for (&(day, ty), _) in days.iter().filter(|(_, xs)| xs.len() as i64 >= MIN_EVENTS) {
            let minutes: Vec<Run<u64>> = runs
                .iter()
                .filter(|(r, _)| (r.minute / DAY_MINUTES) as i32 == day && r.device_type == ty)
                .map(|(r, _)| r.values.project(|(d, _)| d))
                .collect();
            let whole: Vec<(u64, i64)> = merge(minutes.iter().map(|r| (r, 1)));
            let one_run = Run(whole.iter().map(|&(b, n)| (b, n as u64)).collect());
            let in_place = daily_stats(|| one_run.0.iter().map(|&(b, n)| (b, n as i64)));
            // Split as two workers would hold it, with a stale run retracted against itself.
            let (odd, even): (Vec<_>, Vec<_>) = minutes.iter().enumerate().partition(|(i, _)| i % 2 == 1);
            let half = |part: Vec<(usize, &Run<u64>)>| -> Run<u64> {
                Run(merge(part.into_iter().map(|(_, r)| (r, 1))).into_iter().map(|(b, n)| (b, n as u64)).collect())
            };
            let (a, b) = (half(odd), half(even));
            let merged = merge([(&a, 1), (&b, 1), (&a, 1), (&a, -1)]);
            assert_eq!(in_place, daily_stats(|| merged.iter().copied()), "{day} {ty}");
            assert!(in_place.is_some());
        }
    }

    #[test]
    fn the_routing_key_is_pinned() {
        // Known vectors: a change here routes a day to another worker than older builds did.
        let minute = 20_395 * DAY_MINUTES + 17;
        assert_eq!(day_key(minute, DeviceType::Temperature), 101_975);
        assert_eq!(day_key(minute, DeviceType::Light), 101_979);
        assert_eq!(day_key(minute + DAY_MINUTES, DeviceType::Temperature), 101_980);
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * a.abs().max(1.0)
    }

    #[test]
    fn one_final_row_per_day_and_type_above_the_minimum_equal_to_the_batch_recomputation_for_1_and_2_workers() {
        for seed in [1, 2] {
            let (runs, days) = input(seed);
            let want: Vec<DailyRow> = days.iter().filter_map(|(&(d, ty), xs)| daily_row(d, ty, xs)).collect();
            assert_eq!(want.len(), 3, "the input has three days above the minimum and one below");
            assert!(want.iter().all(|r| r.outliers_removed > 0), "the input has outliers every day");
            let mut by_workers = Vec::new();
            for workers in [1, 2] {
                let mut rows = drive(workers, runs.clone(), |c| c.daily_p95(60, false, Arc::new(Counters::new())));
                rows.sort_by_key(|(r, _)| (r.date, r.device_type));
                assert_eq!(rows.len(), want.len(), "seed {seed}, -w {workers}: {rows:?}");
                for ((row, time), want) in rows.iter().zip(&want) {
                    assert_eq!(*time, (row.date as u64 + 1) * DAY_MINUTES - 1, "emitted at the day's last minute");
                    assert_eq!(
                        (
                            row.date,
                            row.device_type,
                            row.event_count,
                            row.kept_count,
                            row.outliers_removed,
                            row.p95_duration
                        ),
                        (
                            want.date,
                            want.device_type,
                            want.event_count,
                            want.kept_count,
                            want.outliers_removed,
                            want.p95_duration
                        )
                    );
                    assert!(
                        close(row.mean_duration, want.mean_duration)
                            && close(row.stddev_duration, want.stddev_duration)
                            && close(row.avg_kept_duration, want.avg_kept_duration),
                        "{row:?} vs {want:?}"
                    );
                }
                by_workers.push(rows.iter().map(|(r, _)| format!("{r:?}")).collect::<Vec<_>>());
            }
            assert_eq!(by_workers[0], by_workers[1], "bit-identical for 1 and 2 workers (seed {seed})");
        }
    }
}
