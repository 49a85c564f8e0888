//! The committer: turns the files the sinks wrote into committed epochs.
//!
//! Files: this one (the operator, which decides the epochs, and the thread that commits
//! them), `commit/compact.rs` (merging closed hours), `commit/fold.rs` (folding the records),
//! `commit/latency.rs` (window latency).
//!
//! The operator runs on worker 0 and never waits for the store: it decides each epoch's
//! record (files, frontier, resume points) and hands it to a committing thread, which writes
//! the records in order, then the renames, the folding and the compactions. When the input
//! ends, the operator waits for that thread, so a run ends only once its last epoch is
//! committed.
//!
//! The protocol (pending names, commit records, recovery, resume points) is explained in
//! `connectors::sink::commit`. This operator is its dataflow half:
//!
//! - every sink reports the final name of each file it wrote, at a time no later than the
//!   file's rows, and the source reports resume points at their times; all reports go to one
//!   worker (global index 0);
//! - when its input frontier advances, every reported file with a time before the frontier
//!   is complete (its sink will never add to it), so the operator commits them as the next
//!   epoch: the commit record (files, frontier, each partition's resume point: the last one
//!   reported below the frontier, and this process's read positions and watermarks for
//!   information), then the renames. The recorded frontier never goes back: after a restart
//!   the first frontiers can be below the previous record's, whose rows are committed. With `--commit-interval`, epochs are at least that much
//!   processing time apart (the files wait for the first frontier advance after it), unless
//!   the complete files waiting reach `--commit-max-mb`; when the input ends, everything left
//!   is committed;
//! - compaction (live runs, `--compact-after`): after a commit whose frontier is that far past
//!   the end of an hour, the hour's minute files of each table (`part-m<minute>-NNN`, in
//!   minute order) are merged into `part-cNNNNN.parquet` (at most `--rows-per-file` rows each,
//!   rows in the same order) and committed as an epoch of their own that replaces them (see
//!   `connectors::sink::commit`, "Compact"). An hour's files are final once the frontier
//!   passes its end: every row in an hour folder has a time within that hour. Minute files
//!   committed by an earlier run are compacted too, if the checkpoint still lists them
//!   (`connectors::sink::commit`, "Fold"). `daily_p95` (one file a day) is not;
//! - folding the commit records into a base every `--commit-fold-every` epochs;
//! - measuring each window file's commit latency (live runs);
//! - a store error is fatal: it is reported to the run's failure (`crate::failure`), nothing
//!   is committed after it, the process exits and the next start recovers (a commit is
//!   either recorded, and then rolled forward, or it never happened); so is any operator's
//!   failure, which the committer checks before every commit.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use connectors::sink::commit::{
    commit, CheckpointStore, CommitRecord, CommittedNames, ResumePoint, CHECKPOINT_VERSION,
};
use connectors::sink::TableStore;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::Operator;
use timely::dataflow::StreamVec;

use crate::counters::Counters;
use crate::failure::Fatal;

mod compact;
mod fold;
mod latency;

use compact::{merge_folder, minute_file};
use fold::Folder;
use latency::record_window_latencies;

/// What the committer hears about.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub enum CommitNote {
    /// A sink wrote this file (final name, size in bytes) under its pending name.
    File(String, u64),
    /// A partition's resume point (see the source operator).
    Resume(u32, ResumePoint),
}

/// How the committer commits.
#[derive(Clone)]
pub struct CommitConfig {
    /// Where the files are.
    pub store: Arc<dyn TableStore>,
    /// Where the commit records go.
    pub records: CheckpointStore,
    /// The input's identity, recorded in each commit record.
    pub input: String,
    /// The last record of an earlier run: its frontier and resume points.
    pub previous: Option<(Option<u64>, BTreeMap<u32, ResumePoint>)>,
    /// The epoch number of the first commit of this run.
    pub first_epoch: u64,
    /// Least processing time between two epochs.
    pub interval: Duration,
    /// Commit before `interval` has passed once this many bytes of complete files wait
    /// (0: no limit).
    pub max_bytes: u64,
    /// Shared counters (commit metrics; positions and watermarks for the record).
    pub counters: Arc<Counters>,
    /// Compaction of closed hours: how many minutes of event time after an hour's end
    /// (`None`: never); see the module header.
    pub compact_after_minutes: Option<u64>,
    /// Largest number of rows in one merged file.
    pub rows_per_file: usize,
    /// The names earlier runs committed and replaced, for folding the records (and, those
    /// not replaced yet, the minute files still to compact).
    pub committed: Arc<CommittedNames>,
    /// Fold the records into a base every this many epochs (`connectors::sink::commit::fold`).
    pub fold_every: u64,
    /// Set when a live run is stopping (Ctrl-C).
    pub stop: Arc<std::sync::atomic::AtomicBool>,
}

/// The committer, on the stream of notes every sink and the source send it.
///
/// # Examples
///
/// A file a sink wrote under its pending name, and a partition's resume point: once the
/// input ends, the file is committed in a record with the point, and published under its
/// final name:
///
/// ```
/// use std::sync::Arc;
/// use connectors::sink::commit::{load, pending_path, CheckpointStore, ResumePoint};
/// use connectors::sink::store::LocalStore;
/// use connectors::sink::TableStore;
/// use dataflow::counters::Counters;
/// use dataflow::operators::commit::{CommitConfig, CommitFiles, CommitNote};
/// use timely::dataflow::operators::vec::ToStream;
///
/// let dir = tempfile::tempdir().unwrap();
/// let store: Arc<dyn TableStore> = Arc::new(LocalStore::new(dir.path()).unwrap());
/// let file = "events/year=2025/month=11/day=03/hour=10/part-00000.parquet";
/// store.put(&pending_path(file), b"parquet bytes").unwrap();
/// let records = CheckpointStore::in_output(Arc::clone(&store));
/// let config = CommitConfig {
///     store: Arc::clone(&store),
///     records: records.clone(),
///     input: "an input".into(),
///     previous: None,
///     first_epoch: 1,
///     interval: std::time::Duration::ZERO,
///     max_bytes: 0,
///     counters: Arc::new(Counters::new()),
///     compact_after_minutes: None,
///     rows_per_file: 1_000_000,
///     committed: Default::default(),
///     fold_every: 100,
///     stop: Default::default(),
/// };
/// let point = ResumePoint { offset: 42, minute: 7, max_event_micros: None };
/// let notes = vec![CommitNote::File(file.to_owned(), 13), CommitNote::Resume(0, point)];
/// timely::example(move |scope| notes.to_stream(scope).commit_files(config));
///
/// assert_eq!(store.get(file).unwrap().as_deref(), Some(&b"parquet bytes"[..]));
/// let checkpoint = load(&records).unwrap();
/// assert!(checkpoint.names.committed.contains(file));
/// let last = checkpoint.last.unwrap();
/// assert_eq!((last.epoch, last.resume[&0].offset), (1, 42));
/// ```
pub trait CommitFiles {
    /// Commits the reported files; see the module header.
    fn commit_files(self, config: CommitConfig);
}

impl CommitFiles for StreamVec<'_, u64, CommitNote> {
    fn commit_files(self, config: CommitConfig) {
        let notes = self;
        let mut pending: Vec<(u64, String, u64)> = Vec::new();
        // Per partition, the resume points reported, by time.
        let mut points: BTreeMap<u32, BTreeMap<u64, ResumePoint>> = BTreeMap::new();
        let mut recorded_frontier = config.previous.as_ref().and_then(|(f, _)| *f).unwrap_or(0);
        for (p, point) in config.previous.iter().flat_map(|(_, r)| r) {
            points.entry(*p).or_default().insert(point.minute, *point);
        }
        let mut last_commit = Instant::now() - config.interval;
        // The store's half runs on a thread of its own (started by the worker that commits).
        let mut committer: Option<(Sender<CommitRecord>, JoinHandle<()>)> = None;
        notes.sink(Exchange::new(|_: &CommitNote| 0), "Commit", move |(input, frontier)| {
            input.for_each(|cap, data| {
                let time = cap.least().copied().unwrap_or(0);
                for note in data.drain(..) {
                    match note {
                        CommitNote::File(f, bytes) => pending.push((time, f, bytes)),
                        CommitNote::Resume(p, point) => {
                            points.entry(p).or_default().insert(point.minute, point);
                        }
                    }
                }
            });
            let done = frontier.is_empty();
            'decide: {
                // After a failure nothing more is committed (see `crate::failure`): a file of
                // the failed operator may be missing below the frontier.
                if config.counters.failure.failed() {
                    pending.clear();
                    break 'decide;
                }
                let limit = frontier.frontier().first().copied();
                let complete = |t: &u64| limit.is_none_or(|l| *t < l);
                let big_enough = || {
                    config.max_bytes > 0
                        && pending.iter().filter(|(t, _, _)| complete(t)).map(|(_, _, b)| b).sum::<u64>()
                            >= config.max_bytes
                };
                if pending.is_empty() || (!done && last_commit.elapsed() < config.interval && !big_enough()) {
                    break 'decide;
                }
                let (ready, rest): (Vec<_>, Vec<_>) = pending.drain(..).partition(|(t, _, _)| complete(t));
                pending = rest;
                if ready.is_empty() {
                    break 'decide;
                }
                let c = &config.counters;
                // Rows before the previous record's frontier are committed too: the frontier
                // never goes back. A point at time 0 has no message before it and is valid for
                // any frontier. A live run that stops (Ctrl-C) commits the files its sinks
                // completed, but claims no more than the previous record did: when the source
                // stops, the frontier runs to the end through intermediate values that say
                // nothing about completeness, and a sink may have dropped rows below one of
                // them. The next run recomputes from there and skips the files committed here.
                let stopped = done && config.stop.load(Relaxed);
                let frontier_minute =
                    if stopped { Some(recorded_frontier) } else { limit.map(|l| l.max(recorded_frontier)) };
                let mut resume = BTreeMap::new();
                for (p, by_minute) in points.iter_mut() {
                    let below = frontier_minute.map_or(u64::MAX, |f| f.max(1));
                    if let Some((&minute, &point)) = by_minute.range(..below).next_back() {
                        resume.insert(*p, point);
                        *by_minute = by_minute.split_off(&minute); // older points are never needed again
                    }
                }
                let record = CommitRecord {
                    version: CHECKPOINT_VERSION,
                    epoch: 0, // numbered by the committing thread, which also numbers compactions
                    frontier_minute,
                    files: ready.into_iter().map(|(_, f, _)| f).collect(),
                    resume,
                    replaced: Vec::new(),
                    positions: c.partition_positions.lock().map(|p| p.clone()).unwrap_or_default(),
                    watermarks: c.partition_watermarks.lock().map(|w| w.clone()).unwrap_or_default(),
                    committed_at_micros: 0,
                    input: Some(config.input.clone()),
                };
                let (records, _) = committer.get_or_insert_with(|| start_committer(config.clone()));
                // Refused only once the thread has failed, which ends the process.
                let _ = records.send(record);
                recorded_frontier = frontier_minute.unwrap_or(u64::MAX);
                last_commit = Instant::now();
            }
            if done {
                // The input has ended: the run ends once every epoch sent is committed.
                if let Some((records, thread)) = committer.take() {
                    drop(records);
                    if let Err(panic) = thread.join() {
                        std::panic::resume_unwind(panic);
                    }
                }
            }
        });
    }
}

/// Starts the thread that writes the commit records the operator decides, in order: each
/// record (numbered here), the renames, then the bookkeeping (window latency, folding,
/// counters) and the compaction of the hours the frontier has left far enough behind. Store
/// requests (an fsync, S3 round trips, a compaction's reads and writes) never hold up the
/// worker. A failure is reported to the run's failure and ends the thread: nothing is
/// committed after it.
fn start_committer(config: CommitConfig) -> (Sender<CommitRecord>, JoinHandle<()>) {
    let (records, queue) = std::sync::mpsc::channel::<CommitRecord>();
    let thread = std::thread::Builder::new()
        .name("commit".into())
        .spawn(move || {
            if let Err(fatal) = commit_all(&config, queue) {
                config.counters.failure.fail(fatal);
            }
        })
        .expect("cannot start the committing thread");
    (records, thread)
}

/// The committing thread's loop (see [`start_committer`]).
fn commit_all(config: &CommitConfig, queue: Receiver<CommitRecord>) -> Result<(), Fatal> {
    let c = &config.counters;
    let mut epoch = config.first_epoch;
    let mut names = Folder { names: (*config.committed).clone(), every: config.fold_every };
    // Hour folders holding committed minute files, by the end (minute) of their hour.
    let mut to_compact: BTreeMap<u64, std::collections::BTreeSet<String>> = BTreeMap::new();
    let note_minute_files = |files: &[String], to_compact: &mut BTreeMap<u64, std::collections::BTreeSet<String>>| {
        for (folder, end) in files.iter().filter_map(|f| minute_file(f)) {
            to_compact.entry(end).or_default().insert(folder.to_owned());
        }
    };
    if config.compact_after_minutes.is_some() {
        // Minute files committed by earlier runs, not replaced yet and not forgotten by a fold.
        let earlier = &config.committed;
        let uncompacted: Vec<String> = earlier.committed.difference(&earlier.replaced).cloned().collect();
        note_minute_files(&uncompacted, &mut to_compact);
    }
    while let Ok(mut record) = queue.recv() {
        // Records decided while the previous commit was being written are committed as one
        // epoch (the last one's frontier and resume points, every one's files), as one
        // commit waiting for the store used to gather them: a slow store gets fewer, larger
        // epochs, not a backlog.
        while let Ok(mut next) = queue.try_recv() {
            let mut files = std::mem::take(&mut record.files);
            files.append(&mut next.files);
            record = CommitRecord { files, ..next };
        }
        if c.failure.failed() {
            return Ok(()); // reported elsewhere; nothing more is committed
        }
        let started = Instant::now();
        record.epoch = epoch;
        record.committed_at_micros = chrono::Utc::now().timestamp_micros();
        commit(config.store.as_ref(), &config.records, &record)
            .map_err(|e| Fatal::Commit { epoch, error: e.to_string() })?;
        tracing::debug!(epoch, files = record.files.len(), frontier = ?record.frontier_minute, "committed");
        record_window_latencies(c, &record.files);
        names.committed(&config.records, &record);
        c.last_epoch.store(epoch, Relaxed);
        c.last_commit_micros.store(record.committed_at_micros, Relaxed);
        if let Ok(mut d) = c.commit_seconds.lock() {
            d.record(started.elapsed().as_secs_f64());
        }
        epoch += 1;
        // Compaction of the hours the frontier has left far enough behind.
        let (Some(after), Some(frontier)) = (config.compact_after_minutes, record.frontier_minute) else { continue };
        note_minute_files(&record.files, &mut to_compact);
        while let Some(entry) = to_compact.first_entry() {
            if entry.key() + after > frontier {
                break;
            }
            for folder in entry.remove() {
                if c.failure.failed() {
                    return Ok(());
                }
                let started = Instant::now();
                let (merged, replaced) = merge_folder(config.store.as_ref(), &folder, config.rows_per_file)
                    .map_err(|e| Fatal::Compact { folder: folder.clone(), error: format!("{e:#}") })?;
                if merged.is_empty() {
                    continue;
                }
                let compaction = CommitRecord {
                    epoch,
                    files: merged,
                    replaced,
                    committed_at_micros: chrono::Utc::now().timestamp_micros(),
                    ..record.clone()
                };
                commit(config.store.as_ref(), &config.records, &compaction).map_err(|e| Fatal::Compact {
                    folder: folder.clone(),
                    error: format!("committing it (epoch {epoch}): {e}"),
                })?;
                tracing::info!(epoch, %folder, files = compaction.replaced.len(), merged = compaction.files.len(), seconds = started.elapsed().as_secs_f64(), "compacted a closed hour");
                names.committed(&config.records, &compaction);
                c.last_epoch.store(epoch, Relaxed);
                epoch += 1;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet};
    use std::sync::Arc;
    use std::time::Duration;

    use connectors::sink::commit::{load, load_records, pending_path, CheckpointStore, ResumePoint};
    use connectors::sink::store::LocalStore;
    use connectors::sink::TableStore;
    use timely::dataflow::operators::vec::Map;

    use super::{CommitConfig, CommitFiles, CommitNote};
    use crate::counters::Counters;
    use crate::operators::harness::{drive_stream, Lcg};

    /// 60 pending files at shuffled times in `100..150`, and resume points of 3 partitions
    /// at increasing minutes; returns the notes and each file's time.
    fn notes(store: &dyn TableStore, seed: u64) -> (Vec<(CommitNote, u64)>, BTreeMap<String, u64>) {
        let mut rng = Lcg(seed);
        let (mut notes, mut times) = (Vec::new(), BTreeMap::new());
        for i in 0..60 {
            let (name, time) = (format!("t/hour={:02}/f{i:03}.parquet", i % 4), 100 + rng.below(50));
            store.put(&pending_path(&name), name.as_bytes()).unwrap();
            notes.push((CommitNote::File(name.clone(), name.len() as u64), time));
            times.insert(name, time);
        }
        for p in 0..3u32 {
            let mut minute = 0;
            for offset in 0..10 {
                minute += 1 + rng.below(6);
                notes.push((CommitNote::Resume(p, ResumePoint { offset, minute, max_event_micros: None }), minute));
            }
        }
        (notes, times)
    }

    #[test]
    fn every_file_committed_once_by_the_record_whose_frontier_passes_it_under_1_and_2_workers() {
        for (workers, fold_every) in [(1, 4), (2, 4), (1, 1000), (2, 1000)] {
            let dir = tempfile::tempdir().unwrap();
            let store: Arc<dyn TableStore> = Arc::new(LocalStore::new(dir.path()).unwrap());
            let (input, times) = notes(store.as_ref(), 5);
            let records = CheckpointStore::in_output(Arc::clone(&store));
            let config = CommitConfig {
                store: Arc::clone(&store),
                records: records.clone(),
                input: "test input".into(),
                previous: None,
                first_epoch: 1,
                interval: Duration::ZERO,
                max_bytes: 0,
                counters: Arc::new(Counters::new()),
                compact_after_minutes: None,
                rows_per_file: 1000,
                committed: Default::default(),
                fold_every,
                stop: Default::default(),
            };
            let last_points: BTreeMap<u32, ResumePoint> = input
                .iter()
                .filter_map(|(n, _)| match n {
                    CommitNote::Resume(p, point) => Some((*p, *point)),
                    CommitNote::File(..) => None,
                })
                .collect(); // the last one per partition: minutes increase
            drive_stream(workers, input, move |notes| {
                notes.clone().commit_files(config.clone());
                notes.flat_map(|_| None::<()>)
            });
            // Published: every file under its final name, nothing pending.
            for name in times.keys() {
                assert!(store.get(name).unwrap().is_some(), "-w {workers}: {name} is not published");
                assert!(store.get(&pending_path(name)).unwrap().is_none(), "-w {workers}: {name} is still pending");
            }
            // Committed, through records folded every `fold_every` epochs.
            let checkpoint = load(&records).unwrap();
            assert_eq!(checkpoint.names.committed, times.keys().cloned().collect::<HashSet<_>>(), "-w {workers}");
            let last = checkpoint.last.expect("a last record");
            assert_eq!(last.frontier_minute, None, "-w {workers}: the input ended: every row is committed");
            assert_eq!(last.resume, last_points, "-w {workers}: the last point of each partition");
            assert_eq!(last.input.as_deref(), Some("test input"));
            let kept = load_records(&records).unwrap();
            if fold_every == 4 {
                assert!(kept.len() < 8, "-w {workers}: {} records kept: not folded", kept.len());
                continue;
            }
            // Unfolded, every record is kept: each file is in exactly one, and a record's
            // frontier F says every file of a time before F is in it or an earlier one.
            let mut seen = HashSet::new();
            for record in kept {
                for file in &record.files {
                    assert!(seen.insert(file.clone()), "-w {workers}: {file} committed twice");
                }
                let frontier = record.frontier_minute.unwrap_or(u64::MAX);
                for (file, time) in times.iter().filter(|(_, t)| **t < frontier) {
                    assert!(
                        seen.contains(file),
                        "-w {workers}: {file} (time {time}) not committed by frontier {frontier}"
                    );
                }
            }
            assert_eq!(seen.len(), times.len(), "-w {workers}");
        }
    }
}
