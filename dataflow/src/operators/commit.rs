//! The committer: turns the files the sinks wrote into committed epochs.
//!
//! The protocol (pending names, commit records, recovery, resume by deterministic replay) is
//! explained in `connectors::sink::commit`. This operator is its dataflow half:
//!
//! - every sink reports the final name of each file it wrote, at a time no later than the
//!   file's rows; all reports go to one worker (global index 0);
//! - when its input frontier advances, every reported file with a time before the frontier
//!   is complete (its sink will never add to it), so the operator commits them as the next
//!   epoch: the commit record (files, frontier, this process's partition positions and
//!   watermarks), then the renames. With `--commit-interval`, epochs are at least that much
//!   processing time apart (the files wait for the first frontier advance after it); when
//!   the input ends, everything left is committed;
//! - a store error is fatal: the process exits and the next start recovers (a commit is
//!   either recorded, and then rolled forward, or it never happened).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use connectors::sink::commit::{commit, CommitRecord, CHECKPOINT_VERSION};
use connectors::sink::TableStore;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::Operator;
use timely::dataflow::StreamVec;

use crate::counters::Counters;

/// How the committer commits.
#[derive(Clone)]
pub struct CommitConfig {
    /// Where the commit records and files are.
    pub store: Arc<dyn TableStore>,
    /// The epoch number of the first commit of this run.
    pub first_epoch: u64,
    /// Least processing time between two epochs.
    pub interval: Duration,
    /// Shared counters (commit metrics; positions and watermarks for the record).
    pub counters: Arc<Counters>,
}

/// Commits the reported files; see the module header.
pub fn commit_files(files: StreamVec<'_, u64, String>, config: CommitConfig) {
    let mut pending: Vec<(u64, String)> = Vec::new();
    let mut epoch = config.first_epoch;
    let mut last_commit = Instant::now() - config.interval;
    files.sink(Exchange::new(|_: &String| 0), "Commit", move |(input, frontier)| {
        input.for_each(|cap, data| {
            let time = cap.least().copied().unwrap_or(0);
            pending.extend(data.drain(..).map(|f| (time, f)));
        });
        let done = frontier.is_empty();
        let limit = frontier.frontier().first().copied();
        if pending.is_empty() || (!done && last_commit.elapsed() < config.interval) {
            return;
        }
        let (ready, rest): (Vec<_>, Vec<_>) = pending.drain(..).partition(|(t, _)| limit.is_none_or(|l| *t < l));
        pending = rest;
        if ready.is_empty() {
            return;
        }
        let started = Instant::now();
        let c = &config.counters;
        let record = CommitRecord {
            version: CHECKPOINT_VERSION,
            epoch,
            frontier_minute: limit,
            files: ready.into_iter().map(|(_, f)| f).collect(),
            positions: c.partition_positions.lock().map(|p| p.clone()).unwrap_or_default(),
            watermarks: c.partition_watermarks.lock().map(|w| w.clone()).unwrap_or_default(),
            committed_at_micros: chrono::Utc::now().timestamp_micros(),
        };
        if let Err(e) = commit(config.store.as_ref(), &record) {
            eprintln!("error: cannot commit epoch {epoch}: {e} (the next start recovers)");
            std::process::exit(1);
        }
        tracing::debug!(epoch, files = record.files.len(), frontier = ?limit, "committed");
        c.last_epoch.store(epoch, Relaxed);
        c.last_commit_micros.store(record.committed_at_micros, Relaxed);
        if let Ok(mut d) = c.commit_seconds.lock() {
            d.push(started.elapsed().as_secs_f64());
        }
        epoch += 1;
        last_commit = Instant::now();
    });
}
