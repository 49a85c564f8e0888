//! The seed operator: after a restart, reads back from the committed `events` table the state
//! that the rows still to be computed depend on (the protocol is in `connectors::sink::commit`,
//! "Resume").
//!
//! With the last commit's frontier `F` (rows of times before `F` are committed), a restart
//! reads each partition again only from its resume point and drops the messages of times
//! before `F`. What those dropped messages contributed to rows of times `≥ F` is exactly in
//! the committed `events` table, which holds every distinct event at its event-time minute:
//!
//! - dedup remembers an id for `horizon` minutes after the minute of its kept copy, so the
//!   events of minutes `[F − horizon, F)` are fed to dedup as ids already kept;
//! - the daily p95 of `F`'s day needs every distinct event of that day, so the events of
//!   minutes `[midnight before F, F)` are also fed to the aggregates (windows and daily).
//!
//! A seed travels at its event's minute, like the event did, and is never written again as
//! an `events` row (its file is committed). Windows recomputed from seeds lie before `F`, in
//! files that are committed, which the sinks skip. The hours to read are listed one folder at
//! a time (`events/year=…/hour=HH/`), and the files are shared among the workers.

use std::collections::BTreeMap;
use std::sync::Arc;

use connectors::calendar::DAY_MINUTES;
use connectors::schema::EventRow;
use connectors::schema::{EventTime, MICROS_PER_HOUR, MICROS_PER_MINUTE};
use connectors::sink::tables::{decode_events, partition_path};
use connectors::sink::TableStore;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::{Scope, StreamVec};

use crate::counters::Counters;
use crate::failure::Fatal;

/// A committed distinct event fed back after a restart: the row, its minute, and whether it
/// also goes to the aggregates (`false`: dedup only).
pub type Seed = (EventRow, u64, bool);

/// The minutes to read back for a restart at frontier `from_minute`: `(first minute read,
/// first minute that also feeds the aggregates)`, or `None` when there is nothing to read.
pub fn seed_range(from_minute: u64, horizon_minutes: u64) -> Option<(u64, u64)> {
    if from_minute == 0 || from_minute == u64::MAX {
        return None;
    }
    let midnight = from_minute / DAY_MINUTES * DAY_MINUTES;
    Some((midnight.min(from_minute.saturating_sub(horizon_minutes)), midnight))
}

/// The seeds of a restart, as a source of a scope.
///
/// # Examples
///
/// A restart at 10:30 with a one-hour dedup horizon: the committed events of 09:30-10:30
/// are read back, each at its minute, for dedup; those since midnight feed the daily p95 too.
/// Here one event at 10:05 (dedup and aggregates) and one at 09:10 (outside the horizon but
/// within the day: aggregates too, since the day so far starts at midnight):
///
/// ```
/// use std::sync::Arc;
/// use connectors::parse::parse_event;
/// use connectors::schema::{EventRow, Position};
/// use connectors::sink::store::LocalStore;
/// use connectors::sink::tables::encode_parquet;
/// use connectors::sink::{Table, TableStore};
/// use dataflow::counters::Counters;
/// use dataflow::operators::seed::SeedEvents;
/// use timely::dataflow::operators::capture::{Capture, Event};
///
/// let row = |offset: u64, t: &str| {
///     let line = format!(r#"{{"event_id":"e-{offset}","device_id":"d-1","device_type":"pressure","timestamp":"{t}","event_duration":3.0,"value":1.0,"status":"normal","metadata":{{}}}}"#);
///     EventRow { position: Position { partition: 0, offset }, event: parse_event(line.as_bytes(), 1 << 20).unwrap().into_owned() }
/// };
/// let dir = tempfile::tempdir().unwrap();
/// let store: Arc<dyn TableStore> = Arc::new(LocalStore::new(dir.path()).unwrap());
/// for (hour, r) in [("09", row(1, "2025-11-03T09:10:00Z")), ("10", row(2, "2025-11-03T10:05:00Z"))] {
///     let bytes = encode_parquet(&EventRow::to_batch(&[&r], r.event.timestamp)).unwrap();
///     store.put(&format!("events/year=2025/month=11/day=03/hour={hour}/part-00000.parquet"), &bytes).unwrap();
/// }
/// let from_minute = 1_762_165_800 / 60; // 2025-11-03T10:30:00Z
/// let seeds = timely::example(move |scope| scope.seed_events(store, from_minute, 60, Arc::new(Counters::new())).capture());
/// let mut seeds: Vec<(u64, u64, bool)> = seeds
///     .try_iter()
///     .flat_map(|event| match event {
///         Event::Messages(_, seeds) => seeds,
///         Event::Progress(_) => Vec::new(),
///     })
///     .map(|(row, minute, to_aggregates)| (row.position.offset, minute, to_aggregates))
///     .collect();
/// seeds.sort();
/// assert_eq!(seeds, [(1, from_minute - 80, true), (2, from_minute - 25, true)]);
/// ```
pub trait SeedEvents<'s> {
    /// Reads the seeds of a restart at `from_minute` (see the module header) on this worker;
    /// a failure to read them is reported to `counters.failure` (nothing is then committed).
    fn seed_events(
        self, store: Arc<dyn TableStore>, from_minute: u64, horizon_minutes: u64, counters: Arc<Counters>,
    ) -> StreamVec<'s, u64, Seed>;
}

impl<'s> SeedEvents<'s> for Scope<'s, u64> {
    fn seed_events(
        self, store: Arc<dyn TableStore>, from_minute: u64, horizon_minutes: u64, counters: Arc<Counters>,
    ) -> StreamVec<'s, u64, Seed> {
        let scope = self;
        let (index, peers) = (scope.index(), scope.peers());
        source::<_, CapacityContainerBuilder<Vec<Seed>>, _, _>(scope, "SeedFromEvents", move |cap, _info| {
            let mut cap = Some(cap);
            // Kept after a failure, so that nothing downstream runs ahead of the missing seeds.
            let mut failed = None;
            move |output| {
                if failed.is_some() {
                    return;
                }
                let Some(cap) = cap.take() else { return };
                let Some((first, measured)) = seed_range(from_minute, horizon_minutes) else { return };
                let read = || -> Result<(usize, BTreeMap<u64, Vec<Seed>>), String> {
                    let files = files_to_read(store.as_ref(), first, from_minute)
                        .map_err(|e| format!("cannot list the events table: {e}"))?;
                    let mut by_minute: BTreeMap<u64, Vec<Seed>> = BTreeMap::new();
                    for path in files.iter().skip(index).step_by(peers) {
                        let bytes = match store.get(path) {
                            Ok(Some(bytes)) => bytes,
                            Ok(None) => return Err(format!("committed file {path} is gone from {}", store.describe())),
                            Err(e) => return Err(format!("reading {path}: {e}")),
                        };
                        let rows = decode_events(bytes).map_err(|e| format!("{path}: {e}"))?;
                        for row in rows {
                            let minute = row.event.timestamp.minute();
                            if (first..from_minute).contains(&minute) {
                                by_minute.entry(minute).or_default().push((row, minute, minute >= measured));
                            }
                        }
                    }
                    Ok((files.len(), by_minute))
                };
                let (files, by_minute) = match read() {
                    Ok(read) => read,
                    Err(e) => {
                        counters.failure.fail(Fatal::Resume(e));
                        failed = Some(cap);
                        return;
                    }
                };
                let seeds: usize = by_minute.values().map(Vec::len).sum();
                tracing::info!(
                    worker = index,
                    files = files.div_ceil(peers),
                    seeds,
                    "read back the committed events the open day and dedup need"
                );
                for (minute, rows) in by_minute {
                    output.session(&cap.delayed(&minute)).give_iterator(rows.into_iter());
                }
            }
        })
    }
}

/// The committed `events` part files of the hours that overlap minutes `[first, end)`.
fn files_to_read(store: &dyn TableStore, first: u64, end: u64) -> Result<Vec<String>, connectors::sink::StoreError> {
    let hour_minutes = (MICROS_PER_HOUR / MICROS_PER_MINUTE) as u64;
    let mut files = Vec::new();
    let mut hour = first / hour_minutes;
    while hour * hour_minutes < end {
        let folder = format!("events/{}", partition_path(EventTime(hour as i64 * MICROS_PER_HOUR), false));
        for path in store.list(&folder)? {
            let name = path.rsplit('/').next().unwrap_or(&path);
            if name.ends_with(".parquet") && !name.starts_with('_') && !name.starts_with('.') {
                files.push(path);
            }
        }
        hour += 1;
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::sync::Mutex;

    use connectors::parse::parse_event;
    use connectors::schema::Position;
    use connectors::sink::store::LocalStore;
    use connectors::sink::tables::encode_parquet;
    use connectors::sink::Table;
    use timely::dataflow::operators::Inspect;

    use crate::operators::harness::{event_line, Lcg};

    #[test]
    fn the_range_covers_the_dedup_horizon_and_the_open_day() {
        let day = DAY_MINUTES;
        // Mid-day: the day since midnight (which covers the horizon).
        assert_eq!(seed_range(10 * day + 600, 60), Some((10 * day, 10 * day)));
        // Just after midnight: the horizon reaches into the day before, for dedup only.
        assert_eq!(seed_range(10 * day + 20, 60), Some((10 * day - 40, 10 * day)));
        // Nothing committed, or everything.
        assert_eq!(seed_range(0, 60), None);
        assert_eq!(seed_range(u64::MAX, 60), None);
    }

    /// Commits `events` (minute, offset) as the events table would hold them: one file per
    /// hour, plus a pending file (not committed) in each hour.
    fn commit_events(store: &LocalStore, events: &[(u64, u64)]) {
        let mut by_hour: BTreeMap<u64, Vec<EventRow>> = BTreeMap::new();
        for &(minute, offset) in events {
            let line = event_line(offset, minute as i64 * MICROS_PER_MINUTE + 1);
            let event = parse_event(line.as_bytes(), 1 << 20).unwrap().into_owned();
            by_hour
                .entry(minute / 60)
                .or_default()
                .push(EventRow { position: Position { partition: 0, offset }, event });
        }
        for (hour, rows) in by_hour {
            let folder = format!("events/{}", partition_path(EventTime(hour as i64 * MICROS_PER_HOUR), false));
            let refs: Vec<&EventRow> = rows.iter().collect();
            let bytes = encode_parquet(&EventRow::to_batch(&refs, EventTime(0))).unwrap();
            store.put(&format!("{folder}/part-00000.parquet"), &bytes).unwrap();
            store.put(&format!("{folder}/_part-00001.parquet.pending"), &bytes).unwrap();
        }
    }

    /// Runs the seed operator alone; returns `(offset, minute, measured, emitted at)` per seed.
    fn seeds(workers: usize, dir: &std::path::Path, from: u64, horizon: u64) -> (Vec<(u64, u64, bool, u64)>, bool) {
        let out = Arc::new(Mutex::new((Vec::new(), false)));
        let (collected, dir) = (Arc::clone(&out), dir.to_owned());
        let counters = Arc::new(Counters::new()); // one per process, as in `pipeline::run`
        timely::execute(timely::Config::process(workers), move |worker| {
            let (out, dir, c) = (Arc::clone(&collected), dir.clone(), Arc::clone(&counters));
            worker.dataflow::<u64, _, _>(|scope| {
                let store: Arc<dyn TableStore> = Arc::new(LocalStore::new(&dir).unwrap());
                scope.seed_events(store, from, horizon, Arc::clone(&c)).inspect_core(move |event| {
                    let Ok((stamp, seeds)) = event else { return };
                    let time = *stamp.expect_singleton();
                    for (row, minute, measured) in seeds {
                        out.lock().unwrap().0.push((row.position.offset, *minute, *measured, time));
                    }
                });
            });
            while worker.step_or_park(Some(std::time::Duration::from_millis(10))) {
                if c.failure.failed() {
                    collected.lock().unwrap().1 = true;
                    for dataflow in worker.installed_dataflows() {
                        worker.drop_dataflow(dataflow); // as `pipeline::run` does
                    }
                    return;
                }
            }
        })
        .expect("the computation runs");
        let out = std::mem::take(&mut *out.lock().unwrap());
        out
    }

    #[test]
    fn the_committed_events_of_the_horizon_and_the_open_day_once_each_under_1_and_2_workers() {
        let mut rng = Lcg(9);
        let midnight = 20_000 * DAY_MINUTES;
        // Events from 3 hours before midnight to 4 hours after it.
        let events: Vec<(u64, u64)> = (0..400).map(|i| (midnight - 180 + rng.below(420), i)).collect();
        for (from, horizon) in [(midnight + 200, 60), (midnight + 30, 120)] {
            let dir = tempfile::tempdir().unwrap();
            commit_events(&LocalStore::new(dir.path()).unwrap(), &events);
            // Naive: every committed event of a minute in [min(midnight, from − horizon), from),
            // fed to the aggregates from midnight on, emitted at its minute.
            let first = midnight.min(from - horizon);
            let want: BTreeSet<(u64, u64, bool, u64)> = events
                .iter()
                .filter(|(m, _)| (first..from).contains(m))
                .map(|&(m, offset)| (offset, m, m >= midnight, m))
                .collect();
            assert!(want.len() > 50 && want.len() < events.len());
            for workers in [1, 2] {
                let (got, failed) = seeds(workers, dir.path(), from, horizon);
                assert!(!failed, "-w {workers}: the seeds failed");
                assert_eq!(got.len(), want.len(), "-w {workers}, from {from}: a seed twice or missing");
                assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), want, "-w {workers}, from {from}");
            }
        }
    }

    #[test]
    fn an_unreadable_committed_file_fails_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let midnight = 20_000 * DAY_MINUTES;
        let store = LocalStore::new(dir.path()).unwrap();
        commit_events(&store, &[(midnight + 10, 1), (midnight + 70, 2)]);
        let folder = format!("events/{}", partition_path(EventTime((midnight + 60) as i64 * MICROS_PER_MINUTE), false));
        store.put(&format!("{folder}/part-00000.parquet"), b"not parquet").unwrap();
        for workers in [1, 2] {
            let (_, failed) = seeds(workers, dir.path(), midnight + 100, 60);
            assert!(failed, "-w {workers}: a corrupt committed file must fail the restart");
        }
    }
}
