//! The table sink: writes a table's rows as Parquet part files, one hive partition at a time.
//!
//! Semantics (bounded mode): the rows of one hive partition (an hour, or a day for
//! `daily_p95`) are written once, when the frontier has passed the end of that period, as
//! `part-NNNNN.parquet` files of at most `rows_per_file` rows each, rows sorted by the
//! table's natural key. Since the period's rows are then complete and sorted, every file's
//! name and contents (but the `processing_time` column) are a function of the input alone,
//! whatever the worker count.
//!
//! Live mode: a row must not wait for its hour to close, so as soon as the frontier passes a
//! dataflow time `t` (an event-time minute) the rows stamped `t` are written, sorted, as
//! `part-m<t>-NNN.parquet` in their period's folder. Rows stamped `t` are final once the
//! frontier passes `t`, so these files too are a function of the input alone: a run that
//! restarts and recomputes writes the same names with the same rows. On stop (Ctrl-C) the
//! frontier jumps to the end; rows stamped at or after the last frontier seen before the stop
//! may be incomplete and are not written (a restart recomputes them).
//!
//! Rows are routed to workers by period, so each file has exactly one writer.
//!
//! Sorting, Parquet encoding and the store requests run on a thread of each sink operator's
//! own, job by job in order, so the worker goes on with the dataflow meanwhile. A job's files
//! are reported (below) only once they are stored, under a capability held since the job was
//! sent, so the committer never hears of a file before it exists and the frontier cannot pass
//! it first.
//!
//! Exactly-once: files are written under their pending names and reported (final name, at a
//! time no later than their rows) on the operator's output, which feeds the committer
//! ([`super::commit`]). A file whose final name an earlier run already committed is not
//! written again: after a restart the replay recomputes it identically.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

use connectors::schema::{EventTime, MICROS_PER_DAY, MICROS_PER_HOUR, MICROS_PER_MINUTE};
use connectors::sink::commit::{pending_path, CommittedNames};
use connectors::sink::tables::{encode_parquet, partition_path};
use connectors::sink::{Table, TableStore};
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::Operator;
use timely::dataflow::StreamVec;

use crate::counters::{table_index, Counters};
use crate::failure::Fatal;

/// The prefix of live minute files: `part-m<minute>-NNN.parquet` (see the module header).
const LIVE_PREFIX: &str = "part-m";

/// The minute and the index of a live minute file, from its name or path
/// (`…/part-m<minute>-NNN.parquet`); `None` for any other file.
pub fn live_file(path: &str) -> Option<(u64, u64)> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let (minute, index) = name.strip_prefix(LIVE_PREFIX)?.strip_suffix(".parquet")?.split_once('-')?;
    Some((minute.parse().ok()?, index.parse().ok()?))
}

/// How the sink writes.
#[derive(Clone)]
pub struct SinkConfig {
    /// Where part files go.
    pub store: Arc<dyn TableStore>,
    /// Largest number of rows in one part file.
    pub rows_per_file: usize,
    /// Shared counters.
    pub counters: Arc<Counters>,
    /// Write each time's rows as soon as the frontier passes it (see the module header).
    pub live: bool,
    /// Set when a live run is stopping.
    pub stop: Arc<AtomicBool>,
    /// The files already committed (by an earlier run).
    pub committed: Arc<CommittedNames>,
}

impl SinkConfig {
    /// Writes `rows` (sorted here) to `folder` as files `<prefix>NNNNN.parquet` (five
    /// digits) or `<prefix>NNN` (live minute files), at most `rows_per_file` rows each, under
    /// their pending names; appends the final names written, with their sizes, to `notes`.
    fn write<R: Table>(
        &self, folder: &str, prefix: &str, digits: usize, containers: &[Vec<R>], notes: &mut Vec<(String, u64)>,
    ) -> Result<(), Fatal> {
        // Sorting (key, row) pairs reads each row once instead of at every comparison.
        let mut keyed: Vec<(R::SortKey, &R)> = containers.iter().flatten().map(|r| (r.sort_key(), r)).collect();
        keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let rows: Vec<&R> = keyed.into_iter().map(|(_, r)| r).collect();
        let table = table_index(R::NAME);
        let now = EventTime(chrono::Utc::now().timestamp_micros());
        for (i, chunk) in rows.chunks(self.rows_per_file.max(1)).enumerate() {
            let path = format!("{folder}/{prefix}{i:0digits$}.parquet");
            if self.committed.accounts_for(&path) {
                continue;
            }
            let bytes = encode_parquet(&R::to_batch(chunk, now))
                .map_err(|e| Fatal::Write { path: path.clone(), error: format!("encoding it as Parquet: {e}") })?;
            if let Err(e) = self.store.put(&pending_path(&path), &bytes) {
                return Err(Fatal::Write { path, error: e.to_string() });
            }
            notes.push((path, bytes.len() as u64));
            self.counters.files_written.fetch_add(1, Relaxed);
            self.counters.bytes_written.fetch_add(bytes.len() as u64, Relaxed);
            self.counters.table_files[table].fetch_add(1, Relaxed);
            self.counters.table_bytes[table].fetch_add(bytes.len() as u64, Relaxed);
            self.counters.rows_written[table].fetch_add(chunk.len() as u64, Relaxed);
        }
        Ok(())
    }
}

/// The length of a table's hive partition: a day for `daily_p95`, an hour for the others.
const fn partition_micros<R: Table>() -> i64 {
    if R::DAILY {
        MICROS_PER_DAY
    } else {
        MICROS_PER_HOUR
    }
}

/// A set of rows to write as one folder's files.
struct Job<R> {
    folder: String,
    /// File names are `<prefix>` and a number of `digits` digits.
    prefix: String,
    digits: usize,
    rows: Vec<Vec<R>>,
    /// The dataflow time of the capability the job's files are reported under.
    time: u64,
}

/// What the writing thread reports per job: each file's final name and size.
type JobNotes = Vec<(String, u64)>;

/// Starts the thread that sorts, encodes and stores a sink's files, in the order the jobs
/// are sent, so that Parquet encoding and store requests never hold up the worker; each
/// job's notes (final names and sizes) come back on the returned receiver, and `wake`
/// activates the operator. The thread ends when the job sender is dropped, or at a failed
/// write, which it reports to the run's [`crate::failure::Failure`].
fn start_writer<R: Table + Send + 'static>(
    config: SinkConfig, wake: timely::scheduling::SyncActivator,
) -> (std::sync::mpsc::Sender<Job<R>>, std::sync::mpsc::Receiver<JobNotes>) {
    let (jobs, job_queue) = std::sync::mpsc::channel::<Job<R>>();
    let (done, results) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(format!("write-{}", R::NAME))
        .spawn(move || {
            for job in job_queue {
                let mut notes = Vec::new();
                if let Err(fatal) = config.write(&job.folder, &job.prefix, job.digits, &job.rows, &mut notes) {
                    // The job's capability stays held by the operator: nothing after the
                    // failed file is committed (see `crate::failure`).
                    return config.counters.failure.fail(fatal);
                }
                drop(job.rows);
                config.counters.writing_done(job.time);
                if done.send(notes).is_err() {
                    return;
                }
                let _ = wake.activate();
            }
        })
        .expect("cannot start a sink's writing thread");
    (jobs, results)
}

/// The sink operator on a stream of table rows.
///
/// # Examples
///
/// Three rejected rows of one hour, at most two rows per file: once the input ends (the
/// frontier passes the hour), two files are written under their pending names and reported
/// under their final names, for the committer:
///
/// ```
/// use std::sync::Arc;
/// use connectors::parse::RejectReason;
/// use connectors::schema::{EventTime, Position, RejectedRow};
/// use connectors::sink::store::LocalStore;
/// use dataflow::counters::Counters;
/// use dataflow::operators::sink::{SinkConfig, WriteTable};
/// use timely::dataflow::operators::capture::{Capture, Event};
/// use timely::dataflow::operators::vec::ToStream;
///
/// let dir = tempfile::tempdir().unwrap();
/// let config = SinkConfig {
///     store: Arc::new(LocalStore::new(dir.path()).unwrap()),
///     rows_per_file: 2,
///     counters: Arc::new(Counters::new()),
///     live: false,
///     stop: Default::default(),
///     committed: Default::default(),
/// };
/// let filed_under = EventTime(1_762_164_000_000_000); // 2025-11-03T10:00:00Z
/// let rows: Vec<RejectedRow> = (0..3)
///     .map(|offset| RejectedRow { position: Position { partition: 0, offset }, reason: RejectReason::ALL[0], raw: b"{".to_vec(), filed_under })
///     .collect();
/// let files = timely::example(move |scope| rows.to_stream(scope).write_table(config).capture());
/// let mut names: Vec<String> = files
///     .try_iter()
///     .flat_map(|event| match event {
///         Event::Messages(_, files) => files,
///         Event::Progress(_) => Vec::new(),
///     })
///     .map(|(name, _bytes)| name)
///     .collect();
/// names.sort();
/// let hour = "rejected/year=2025/month=11/day=03/hour=10";
/// assert_eq!(names, [format!("{hour}/part-00000.parquet"), format!("{hour}/part-00001.parquet")]);
/// assert!(dir.path().join(hour).join("_part-00000.parquet.pending").exists());
/// ```
pub trait WriteTable<'s, R> {
    /// Writes the rows to their table (see the module header); returns the final names (and
    /// sizes) of the files written, each at a time no later than its rows.
    fn write_table(self, config: SinkConfig) -> StreamVec<'s, u64, (String, u64)>;
}

impl<'s, R> WriteTable<'s, R> for StreamVec<'s, u64, R>
where
    R: Table + timely::ExchangeData + Clone + Send,
{
    fn write_table(self, config: SinkConfig) -> StreamVec<'s, u64, (String, u64)> {
        let period_micros = partition_micros::<R>();
        // A constant divisor (not a captured one), so that no row costs an `idiv`: a division
        // by a constant compiles to a multiplication and shifts.
        let period = |r: &R| r.partition_time().micros().div_euclid(partition_micros::<R>());
        let exchange = crate::route::whole_containers(move |r: &R| period(r) as u64);
        // Per period, the containers of rows received with their time (whole containers are
        // kept, as they usually hold one period, so rows are not moved one by one).
        let mut buffered: BTreeMap<i64, Vec<(u64, Vec<R>)>> = BTreeMap::new();
        let folder =
            move |key: i64| format!("{}/{}", R::NAME, partition_path(EventTime(key * period_micros), R::DAILY));
        // The least frontier time seen while the input was open.
        let mut last_frontier = 0u64;
        // A capability at the least time of the buffered rows, for reporting files.
        let mut held: Option<Capability<u64>> = None;
        let scope = self.scope();
        self.unary_frontier(exchange, &format!("Write {}", R::NAME), move |_cap, info| {
            let (jobs, results) =
                start_writer::<R>(config.clone(), scope.worker().sync_activator_for(info.address.to_vec()));
            // A capability per job sent to the writing thread, in order: its files are
            // reported under it once written (the committer must not see a file before it is
            // stored), so the dataflow cannot move past them meanwhile.
            let mut in_flight: std::collections::VecDeque<Capability<u64>> = std::collections::VecDeque::new();
            move |(input, frontier), output| {
                while let Ok(notes) = results.try_recv() {
                    let cap = in_flight.pop_front().expect("a capability per job");
                    if !notes.is_empty() {
                        output.session(&cap).give_iterator(notes.into_iter());
                    }
                }
                input.for_each(|cap, data| {
                    let Some(&time) = cap.least() else { return };
                    if held.as_ref().is_none_or(|h| time < *h.time()) {
                        held = Some(cap.delayed(&time, 0));
                    }
                    let Some(first) = data.first().map(&period) else { return };
                    if data.iter().all(|r| period(r) == first) {
                        buffered.entry(first).or_default().push((time, std::mem::take(data)));
                    } else {
                        for row in data.drain(..) {
                            let rows = buffered.entry(period(&row)).or_default();
                            match rows.last_mut() {
                                Some((t, last)) if *t == time => last.push(row),
                                _ => rows.push((time, vec![row])),
                            }
                        }
                    }
                });
                let done = frontier.is_empty();
                // Once the run is stopping, the frontier runs to the end without the rows being
                // complete: only frontiers seen before that count.
                if let Some(&f) = frontier.frontier().first() {
                    if !config.stop.load(Relaxed) {
                        last_frontier = f;
                    }
                }
                let mut to_write: Vec<Job<R>> = Vec::new();
                // Jobs are reported under the held capability (rows are buffered only under
                // one, so every job has it).
                let time = held.as_ref().map_or(0, |cap| *cap.time());
                if config.live || (done && config.stop.load(Relaxed)) {
                    // Every time the frontier has passed, as one set of minute files.
                    let limit = if done && !config.stop.load(Relaxed) { u64::MAX } else { last_frontier };
                    for (key, containers) in buffered.iter_mut() {
                        let mut ready: BTreeMap<u64, Vec<Vec<R>>> = BTreeMap::new();
                        let mut i = 0;
                        while i < containers.len() {
                            if containers[i].0 < limit {
                                let (t, rows) = containers.swap_remove(i);
                                ready.entry(t).or_default().push(rows);
                            } else {
                                i += 1;
                            }
                        }
                        for (t, rows) in ready {
                            let prefix = format!("{LIVE_PREFIX}{t}-");
                            to_write.push(Job { folder: folder(*key), prefix, digits: 3, rows, time });
                        }
                    }
                    buffered.retain(|_, c| !c.is_empty());
                    if done {
                        buffered.clear(); // stopping: the rest is incomplete
                    }
                } else {
                    // A period is complete when no time before its end can still arrive.
                    while let Some(entry) = buffered.first_entry() {
                        let end_minute = ((*entry.key() + 1) * period_micros / MICROS_PER_MINUTE) as u64;
                        if frontier.less_than(&end_minute) {
                            break;
                        }
                        let key = *entry.key();
                        let containers = entry.remove();
                        to_write.push(Job {
                            folder: folder(key),
                            prefix: "part-".to_owned(),
                            digits: 5,
                            rows: containers.into_iter().map(|(_, rows)| rows).collect(),
                            time,
                        });
                    }
                }
                for job in to_write {
                    let cap = held.as_ref().expect("buffered rows have a held capability");
                    in_flight.push_back(cap.clone());
                    config.counters.writing_started(job.time);
                    // Refused only once the writing thread has failed: the job's capability
                    // then stays held, and the failure ends the process.
                    let _ = jobs.send(job);
                }
                if let Some(cap) = held.as_mut() {
                    match buffered.values().flatten().map(|(t, _)| *t).min() {
                        Some(least) => cap.downgrade(&least),
                        None => held = None,
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet};
    use std::sync::Arc;

    use arrow_array::{Array, Int64Array};
    use connectors::parse::RejectReason;
    use connectors::schema::{EventTime, Position, MICROS_PER_MINUTE};
    use connectors::sink::commit::pending_path;
    use connectors::sink::store::LocalStore;
    use connectors::sink::TableStore;

    use super::{live_file, SinkConfig, WriteTable};
    use crate::counters::Counters;
    use crate::operators::harness::{drive_stream, Lcg};
    use connectors::schema::RejectedRow;

    const ROWS_PER_FILE: usize = 7;

    /// Rejected rows (the simplest table) over three hours, each at its minute.
    fn rows(seed: u64) -> Vec<(RejectedRow, u64)> {
        let mut rng = Lcg(seed);
        let start = 29_000_040; // an hour's first minute
        (0..150u64)
            .map(|i| {
                let minute = start + rng.below(180);
                let row = RejectedRow {
                    position: Position { partition: rng.below(3) as u32, offset: i },
                    reason: RejectReason::ALL[(i % 3) as usize],
                    raw: format!("line {i}").into_bytes(),
                    filed_under: EventTime(minute as i64 * MICROS_PER_MINUTE),
                };
                (row, minute)
            })
            .collect()
    }

    /// The offsets stored in a pending file, in file order.
    fn offsets(dir: &std::path::Path, path: &str) -> Vec<i64> {
        let file = std::fs::File::open(dir.join(pending_path(path))).unwrap_or_else(|e| panic!("{path}: {e}"));
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(file, 1024).unwrap();
        reader
            .flat_map(|batch| {
                let batch = batch.unwrap();
                let column = batch.column_by_name("offset").unwrap().as_any().downcast_ref::<Int64Array>().unwrap();
                (0..column.len()).map(|i| column.value(i)).collect::<Vec<_>>()
            })
            .collect()
    }

    /// Writes `input` with the sink under `workers` workers; returns the store and what the
    /// sink reported, `(final name, time)`.
    fn write(
        workers: usize, input: Vec<(RejectedRow, u64)>, live: bool, committed: HashSet<String>,
    ) -> (tempfile::TempDir, LocalStore, Vec<(String, u64)>) {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path()).unwrap();
        let config = SinkConfig {
            store: Arc::new(LocalStore::new(dir.path()).unwrap()),
            rows_per_file: ROWS_PER_FILE,
            counters: Arc::new(Counters::new()),
            live,
            stop: Default::default(),
            committed: Arc::new(connectors::sink::commit::CommittedNames { committed, ..Default::default() }),
        };
        let notes = drive_stream(workers, input, move |rows| rows.write_table(config.clone()));
        let reported = notes.into_iter().map(|((name, _bytes), time)| (name, time)).collect();
        (dir, store, reported)
    }

    /// The naive expectation: per folder (hour) or, live, per (folder, minute), the rows'
    /// offsets sorted by (partition, offset) in chunks of ROWS_PER_FILE.
    fn expected(input: &[(RejectedRow, u64)], live: bool) -> BTreeMap<String, (Vec<i64>, u64)> {
        let mut groups: BTreeMap<(u64, u64), Vec<(u32, u64)>> = BTreeMap::new();
        for (row, minute) in input {
            let hour = minute / 60;
            let key = if live { (hour, *minute) } else { (hour, 0) };
            groups.entry(key).or_default().push((row.position.partition, row.position.offset));
        }
        let mut files = BTreeMap::new();
        for ((hour, minute), mut keys) in groups {
            keys.sort();
            let when = EventTime((hour * 60) as i64 * MICROS_PER_MINUTE);
            let folder = format!("rejected/{}", connectors::sink::tables::partition_path(when, false));
            for (i, chunk) in keys.chunks(ROWS_PER_FILE).enumerate() {
                let name = match live {
                    true => format!("{folder}/part-m{minute}-{i:03}.parquet"),
                    false => format!("{folder}/part-{i:05}.parquet"),
                };
                let first_minute =
                    input.iter().filter(|(r, _)| chunk.contains(&(r.position.partition, r.position.offset)));
                let least = first_minute.map(|(_, m)| *m).min().unwrap();
                files.insert(name, (chunk.iter().map(|(_, o)| *o as i64).collect(), least));
            }
        }
        files
    }

    #[test]
    fn each_hour_sorted_in_files_of_at_most_rows_per_file_under_1_and_2_workers() {
        for live in [false, true] {
            let input = rows(3);
            let want = expected(&input, live);
            assert!(want.len() > 10, "several files per folder");
            for workers in [1, 2] {
                let (dir, _store, reported) = write(workers, input.clone(), live, HashSet::new());
                let names: HashSet<_> = reported.iter().map(|(n, _)| n.clone()).collect();
                assert_eq!(names.len(), reported.len(), "live {live}, -w {workers}: a file reported twice");
                assert_eq!(names, want.keys().cloned().collect(), "live {live}, -w {workers}: the files");
                for (name, time) in &reported {
                    let (offsets, least) = &want[name];
                    assert_eq!(&self::offsets(dir.path(), name), offsets, "live {live}, -w {workers}: {name}");
                    assert!(time <= least, "live {live}, -w {workers}: {name} reported at {time}, after its rows");
                    assert!(live_file(name).is_some() == live);
                }
            }
        }
    }

    /// A store that notes, at each file it stores, the oldest job the process's writing
    /// threads have not finished ([`Counters::oldest_writing`]).
    struct Watching {
        inner: LocalStore,
        counters: Arc<Counters>,
        seen: std::sync::Mutex<Vec<(String, Option<u64>)>>,
    }

    impl TableStore for Watching {
        fn put(&self, path: &str, bytes: &[u8]) -> Result<(), connectors::sink::StoreError> {
            self.seen.lock().unwrap().push((path.to_owned(), self.counters.oldest_writing()));
            self.inner.put(path, bytes)
        }
        fn get(&self, path: &str) -> Result<Option<Vec<u8>>, connectors::sink::StoreError> {
            self.inner.get(path)
        }
        fn rename(&self, from: &str, to: &str) -> Result<(), connectors::sink::StoreError> {
            self.inner.rename(from, to)
        }
        fn delete(&self, path: &str) -> Result<(), connectors::sink::StoreError> {
            self.inner.delete(path)
        }
        fn list(&self, prefix: &str) -> Result<Vec<String>, connectors::sink::StoreError> {
            self.inner.list(prefix)
        }
        fn exists(&self, path: &str) -> Result<bool, connectors::sink::StoreError> {
            self.inner.exists(path)
        }
        fn describe(&self) -> String {
            self.inner.describe()
        }
    }

    /// While a file is stored its job counts as being written, at a time no later than its
    /// rows (what the source's flow control reads); once every file is stored, none does.
    #[test]
    fn a_job_counts_as_being_written_until_its_files_are_stored_under_1_and_2_workers() {
        for live in [false, true] {
            let input = rows(5);
            let want = expected(&input, live);
            for workers in [1, 2] {
                let dir = tempfile::tempdir().unwrap();
                let counters = Arc::new(Counters::new());
                let store = Arc::new(Watching {
                    inner: LocalStore::new(dir.path()).unwrap(),
                    counters: Arc::clone(&counters),
                    seen: Default::default(),
                });
                let config = SinkConfig {
                    store: Arc::clone(&store) as Arc<dyn TableStore>,
                    rows_per_file: ROWS_PER_FILE,
                    counters: Arc::clone(&counters),
                    live,
                    stop: Default::default(),
                    committed: Default::default(),
                };
                drive_stream(workers, input.clone(), move |rows| rows.write_table(config.clone()));
                let seen = std::mem::take(&mut *store.seen.lock().unwrap());
                assert_eq!(seen.len(), want.len(), "live {live}, -w {workers}: every file stored once");
                for (path, oldest) in seen {
                    let name = path.replace("/_", "/").replace(".pending", "");
                    let least = want[&name].1;
                    assert!(
                        oldest.is_some_and(|t| t <= least),
                        "live {live}, -w {workers}: {name} (rows from minute {least}) stored while the oldest job written was {oldest:?}"
                    );
                }
                assert_eq!(
                    counters.oldest_writing(),
                    None,
                    "live {live}, -w {workers}: a job still counts as being written"
                );
            }
        }
    }

    #[test]
    fn a_committed_file_is_not_written_again() {
        let input = rows(4);
        let want = expected(&input, false);
        let skipped = want.keys().nth(2).unwrap().clone();
        let (_dir, store, reported) = write(2, input, false, HashSet::from([skipped.clone()]));
        assert!(!reported.iter().any(|(n, _)| *n == skipped), "a committed file is reported again");
        assert_eq!(store.get(&pending_path(&skipped)).unwrap(), None, "a committed file is written again");
        assert_eq!(reported.len(), want.len() - 1);
    }

    #[test]
    fn live_file_names_give_their_minute_and_index() {
        assert_eq!(
            live_file("windows/year=2025/month=11/day=04/hour=00/part-m29370244-012.parquet"),
            Some((29370244, 12))
        );
        assert_eq!(live_file("part-m7-000.parquet"), Some((7, 0)));
        assert_eq!(live_file("events/year=2025/hour=00/part-00000.parquet"), None);
        assert_eq!(live_file("events/hour=00/part-c00000.parquet"), None);
        assert_eq!(live_file("events/hour=00/_part-m7-000.parquet.pending"), None);
    }
}
