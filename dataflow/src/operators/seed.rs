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
pub trait SeedEvents<'s> {
    /// Reads the seeds of a restart at `from_minute` (see the module header) on this worker;
    /// a failure to read them is reported to `counters.failure` (nothing is then committed).
    fn seed_events(
        self,
        store: Arc<dyn TableStore>,
        from_minute: u64,
        horizon_minutes: u64,
        counters: Arc<Counters>,
    ) -> StreamVec<'s, u64, Seed>;
}

impl<'s> SeedEvents<'s> for Scope<'s, u64> {
    fn seed_events(
        self,
        store: Arc<dyn TableStore>,
        from_minute: u64,
        horizon_minutes: u64,
        counters: Arc<Counters>,
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
}
