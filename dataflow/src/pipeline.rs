//! The dataflow every worker runs, and the bounded run that drives it.
//!
//! ```text
//! source (read + validate + lateness) ──► rejected table
//!        │                          └───► late table
//!        └─ accepted ─► dedup by event_id ─► events table
//!   seed (restart) ──┘                   ├─► 1-minute windows ─► windows table
//!                                        └─► daily p95 ───────► daily_p95 table
//! every table's files, the source's resume points ─► commit
//! ```
//!
//! Dataflow time is the event-time minute. Every output is a function of each partition's
//! message sequence alone, so any worker or process count writes the same tables.

use std::sync::Arc;
use std::time::Instant;

use connectors::sink::commit::CommittedNames;
use connectors::sink::TableStore;
use connectors::source::Source;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Concat, Probe};
use timely::dataflow::ProbeHandle;
use timely::dataflow::Scope;

use crate::counters::Counters;
use crate::operators::commit::{CommitConfig, CommitFiles, CommitNote};
use crate::operators::daily_p95::DailyP95;
use crate::operators::dedup::DedupByEventId;
use crate::operators::seed::SeedEvents;
use crate::operators::sink::{SinkConfig, WriteTable};
use crate::operators::source::{PartitionSource, SourceConfig};
use crate::operators::windows::MinuteWindows;

/// Everything a worker needs to build the dataflow.
#[derive(Clone)]
pub struct PipelineConfig {
    /// Where messages come from.
    pub source: Arc<dyn Source>,
    /// The source's identity, recorded in every commit record ([`Source::identity`]).
    pub input: String,
    /// Where tables go.
    pub store: Arc<dyn TableStore>,
    /// Where commit records go.
    pub records: connectors::sink::commit::CheckpointStore,
    /// How the source reads.
    pub source_config: SourceConfig,
    /// How long an event id is remembered after its event time, in minutes.
    pub dedup_horizon_minutes: u64,
    /// Event-time period of provisional daily values, in minutes.
    pub daily_refresh_minutes: u64,
    /// Log each provisional daily value.
    pub log_provisional: bool,
    /// Largest number of rows in one part file.
    pub rows_per_file: usize,
    /// The files committed by earlier runs that a restart could write again (from the
    /// checkpoint).
    pub committed: Arc<CommittedNames>,
    /// The epoch number of this run's first commit.
    pub first_epoch: u64,
    /// The last commit record of an earlier run, if any.
    pub previous: Option<connectors::sink::commit::CommitRecord>,
    /// Least processing time between two commits.
    pub commit_interval: std::time::Duration,
    /// Commit early once this many bytes of complete files wait (0: no limit).
    pub commit_max_bytes: u64,
    /// Live runs: compact an hour's minute files this many minutes after its end (`None`: never).
    pub compact_after_minutes: Option<u64>,
    /// Fold the commit records into a base every this many epochs.
    pub fold_every: u64,
}

/// Builds the dataflow in `scope`; returns a probe of the source frontier (the least
/// watermark of every partition).
pub fn build(scope: Scope<'_, u64>, config: &PipelineConfig, counters: Arc<Counters>) -> ProbeHandle<u64> {
    let sink = SinkConfig {
        store: Arc::clone(&config.store),
        rows_per_file: config.rows_per_file,
        counters: Arc::clone(&counters),
        live: !config.source_config.bounded,
        stop: Arc::clone(&config.source_config.stop),
        committed: Arc::clone(&config.committed),
    };
    let source_frontier = ProbeHandle::new();
    let streams = scope.partition_source(
        Arc::clone(&config.source),
        config.source_config.clone(),
        Arc::clone(&counters),
        source_frontier.clone(),
    );
    let rejected_files = streams.rejected.write_table(sink.clone());
    let late_files = streams.late.write_table(sink.clone());
    let seeds = scope.seed_events(
        Arc::clone(&config.store),
        config.source_config.resume.from_minute,
        config.dedup_horizon_minutes,
        Arc::clone(&counters),
    );
    // Flow control (see the source operator) follows the source's own frontier, the least
    // watermark of all partitions: the partition that holds it back is never throttled.
    let distinct = streams.accepted.probe_with(&source_frontier).dedup_by_event_id(
        seeds,
        config.dedup_horizon_minutes,
        Arc::clone(&counters),
    );
    let event_files = distinct.rows.write_table(sink.clone());
    let measurements = distinct.measurements;
    let window_files = measurements.clone().minute_windows().write_table(sink.clone());
    let daily_files = measurements
        .daily_p95(config.daily_refresh_minutes, config.log_provisional, Arc::clone(&counters))
        .write_table(sink);
    let files = event_files.concat(window_files).concat(daily_files).concat(late_files).concat(rejected_files);
    let notes = files
        .map(|(file, bytes)| CommitNote::File(file, bytes))
        .concat(streams.resume_points.map(|(p, point)| CommitNote::Resume(p, point)));
    notes.commit_files(CommitConfig {
        store: Arc::clone(&config.store),
        records: config.records.clone(),
        input: config.input.clone(),
        previous: config.previous.as_ref().map(|r| (r.frontier_minute, r.resume.clone())),
        first_epoch: config.first_epoch,
        interval: config.commit_interval,
        max_bytes: config.commit_max_bytes,
        compact_after_minutes: config.compact_after_minutes,
        rows_per_file: config.rows_per_file,
        committed: Arc::clone(&config.committed),
        fold_every: config.fold_every,
        stop: Arc::clone(&config.source_config.stop),
        counters: Arc::clone(&counters),
    });
    counters.started.store(true, std::sync::atomic::Ordering::Relaxed);
    source_frontier
}

/// What a run did, as counted by this process.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// Messages read.
    pub read: u64,
    /// Bytes read.
    pub bytes_read: u64,
    /// Valid on-time events, before dedup.
    pub accepted: u64,
    /// Rejected messages per reason code (only reasons that occurred).
    pub rejected: Vec<(&'static str, u64)>,
    /// Late events.
    pub late: u64,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Messages read again after a restart whose rows were already committed.
    pub replayed: u64,
    /// Rows written per table, in the order events, windows, daily_p95, late, rejected.
    pub rows_written: [u64; 5],
    /// Part files written.
    pub files_written: u64,
    /// Live runs: window commit latency (p50, p99, window files), seconds; see
    /// `Counters::window_latencies`.
    pub window_latency: Option<(f64, f64, usize)>,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Peak resident set size in bytes, if known.
    pub peak_rss_bytes: Option<u64>,
}

impl RunSummary {
    /// Reads the counters.
    pub fn from_counters(c: &Counters, seconds: f64) -> Self {
        use std::sync::atomic::Ordering::Relaxed;
        RunSummary {
            read: c.read.load(Relaxed),
            bytes_read: c.bytes_read.load(Relaxed),
            accepted: c.accepted.load(Relaxed),
            rejected: connectors::parse::RejectReason::ALL
                .iter()
                .zip(&c.rejected)
                .map(|(r, n)| (r.as_str(), n.load(Relaxed)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            late: c.late.load(Relaxed),
            duplicates: c.duplicates.load(Relaxed),
            replayed: c.replayed.load(Relaxed),
            rows_written: std::array::from_fn(|i| c.rows_written[i].load(Relaxed)),
            files_written: c.files_written.load(Relaxed),
            window_latency: c
                .window_latencies
                .lock()
                .ok()
                .and_then(|l| Some((l.quantile(0.5)?, l.quantile(0.99)?, l.len() as usize))),
            seconds,
            peak_rss_bytes: crate::counters::peak_rss_bytes(),
        }
    }
}

impl std::fmt::Display for RunSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [events, windows, days, late_rows, rejected_rows] = self.rows_written;
        writeln!(
            f,
            "lines read      {:>12}  ({:.0} lines/s, {:.1} MB/s)",
            self.read,
            self.read as f64 / self.seconds,
            self.bytes_read as f64 / self.seconds / 1e6
        )?;
        if self.replayed > 0 {
            writeln!(
                f,
                "replayed        {:>12}  (read again after a restart; their rows were committed)",
                self.replayed
            )?;
        }
        writeln!(f, "accepted        {:>12}  (on time, before dedup)", self.accepted)?;
        writeln!(f, "duplicates      {:>12}", self.duplicates)?;
        writeln!(f, "late            {:>12}", self.late)?;
        let rejected: u64 = self.rejected.iter().map(|(_, n)| n).sum();
        writeln!(f, "rejected        {:>12}", rejected)?;
        for (reason, n) in &self.rejected {
            writeln!(f, "  {reason:<24}{n:>8}")?;
        }
        writeln!(f, "rows written    events {events}, windows {windows}, daily_p95 {days}, late {late_rows}, rejected {rejected_rows} ({} files)", self.files_written)?;
        if let Some((p50, p99, n)) = self.window_latency {
            writeln!(f, "window commits  p50 {:.0} ms, p99 {:.0} ms after the frontier passed the window's end ({n} window files)", p50 * 1e3, p99 * 1e3)?;
        }
        write!(
            f,
            "elapsed         {:.2} s, peak RSS {}",
            self.seconds,
            self.peak_rss_bytes.map_or("unknown".into(), |b| format!("{:.1} MB", b as f64 / 1e6))
        )
    }
}

/// Why a run did not complete.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The workers could not start (a cluster's addresses cannot be bound or reached, ...).
    #[error("cannot start the timely workers: {0}")]
    Start(String),
    /// A worker thread panicked (a bug).
    #[error("a worker failed: {0}")]
    Panicked(String),
    /// An operator reported a failure ([`crate::failure`]); the message says what failed.
    #[error("{0}")]
    Failed(String),
}

/// Drops every dataflow of `worker`, so that it stops waiting for a failed one (see [`run`]).
fn drop_dataflows(worker: &mut timely::worker::Worker) {
    for dataflow in worker.installed_dataflows() {
        worker.drop_dataflow(dataflow);
    }
}

/// How often a parked worker looks for a failure (see [`run`]).
const FAILURE_CHECK: std::time::Duration = std::time::Duration::from_millis(100);

/// How long a worker with nothing to do polls its channels before it parks: not at all. The
/// workers share the cores with the partitions' reading threads and the table writers, which
/// a spinning worker would take the core from (timely's default, 10 µs, cost 3-4 % of the CPU
/// and of the wall time of the week benchmark at `-w 2` and at `-w 1` on one core).
const IDLE_SPIN: std::time::Duration = std::time::Duration::ZERO;

/// Runs the dataflow on `communication` until the (bounded) input is exhausted and every
/// table is written (or a live run is stopped); returns this process's summary. A failure
/// an operator reports ([`crate::failure`]) ends the run promptly: `run` returns it as an
/// error, having committed nothing after it. Except in a cluster (`-n` > 1), where the
/// process must exit on a failure instead (see below).
pub fn run(
    config: PipelineConfig, communication: timely::CommunicationConfig, counters: Arc<Counters>,
) -> Result<RunSummary, RunError> {
    let start = Instant::now();
    // In a cluster a failure is seen by its own process only: were its workers to wind down,
    // it would leave the cluster cleanly and the other processes would wait for it forever.
    // Its workers then keep their dataflow, and the process must end (the binary exits at
    // once, see `crate::failure`); its peers lose the connection.
    let wind_down = !matches!(communication, timely::CommunicationConfig::Cluster { .. });
    let timely_config = timely::Config { communication, worker: timely::WorkerConfig::default().idle_spin(IDLE_SPIN) };
    let c = Arc::clone(&counters);
    let guards = timely::execute(timely_config, move |worker| {
        let frontier = worker.dataflow::<u64, _, _>(|scope| build(scope, &config, Arc::clone(&c)));
        // Worker 0 (which also commits) notes when the source frontier reaches each value, for
        // the commit latency of windows (live runs only: bounded runs write hour files,
        // measure nothing and would only grow the map).
        let note_frontier = worker.index() == 0 && !config.source_config.bounded;
        let mut last = None;
        // A failure ends the run: each worker drops its dataflow (whose operators would
        // otherwise wait forever for the failed one) and `run` returns the failure. The park
        // timeout bounds how long a parked worker takes to notice.
        while worker.step_or_park(Some(FAILURE_CHECK)) {
            if wind_down && c.failure.failed() {
                drop_dataflows(worker);
                break;
            }
            if note_frontier {
                let now = frontier.with_frontier(|f| f.first().copied());
                if now != last {
                    if let (Some(f), Ok(mut reached)) = (now, c.frontier_reached.lock()) {
                        reached.insert(f, Instant::now());
                    }
                    last = now;
                }
            }
        }
    })
    .map_err(RunError::Start)?;
    for result in guards.join() {
        result.map_err(RunError::Panicked)?;
    }
    if counters.failure.failed() {
        return Err(RunError::Failed(counters.failure.wait()));
    }
    Ok(RunSummary::from_counters(&counters, start.elapsed().as_secs_f64()))
}
