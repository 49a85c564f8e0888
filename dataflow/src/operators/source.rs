//! The partition source operator: reads this worker's partitions, validates each message and
//! applies the lateness rule, and stamps every record with an event-time minute.
//!
//! Semantics:
//! - Partitions are assigned statically: the `i`-th partition (in ascending order) belongs to
//!   the worker with global index `i % peers`. Each is read strictly in offset order.
//! - Every record has the event-time minute of [`Classified::minute`] (late and rejected rows
//!   travel at it; an accepted row at the operator's time, which is never later, and dedup
//!   files it under its minute); the operator's
//!   capability is the least `⌊W_p⌋` (in minutes) over the worker's partitions that have not
//!   ended, so the dataflow frontier is the minimum of the per-partition watermarks and a
//!   window or day closes only when every partition's watermark has passed it.
//! - A partition that ends (bounded mode reached the end offsets present at start) stops
//!   holding the frontier back; when all have ended the capability is dropped.
//! - Partitions are opened on their reading threads ([`prefetch`]), so a worker never waits on
//!   the broker; an unopened partition holds the frontier back like one that has read nothing,
//!   and one that cannot be opened (a Kafka open retries for two minutes) fails the run.
//! - Live mode: partitions added to the topic while running are discovered (by a background
//!   thread) and read from their start. A record of
//!   such a partition older than the dataflow frontier cannot join windows that are already
//!   closed: an on-time event is filed as `late` with the frontier as the watermark it missed,
//!   and late and rejected rows are filed under the frontier. (Partitions present at start,
//!   the only ones in bounded mode, are never affected: the frontier waits for them.)
//! - Idle partitions (live mode, `--idle-timeout`, like Flink's `withIdleness`): a partition
//!   that is caught up (its reading thread has nothing queued and, where the source knows,
//!   nothing is left below the high watermark) and has received no message for the timeout
//!   (processing time) stops holding the frontier back: the capability follows the least
//!   watermark of the worker's other partitions. A worker whose every open partition is idle
//!   follows the least watermark of the process's partitions that are not idle; when no
//!   partition of the process is active, the frontier holds (a pause of every producer
//!   closes nothing). When an idle partition receives messages again it is active again: a
//!   record older than the frontier is filed exactly like one of a newly discovered
//!   partition (below), the rest join normally. Bounded runs never idle: the end offsets
//!   decide. Which records count as late therefore depends on processing time in live mode
//!   only, and only for a partition that was idle. As with Flink's idleness, when every
//!   partition has been idle and they resume, records of one behind the watermark of another
//!   that resumed first are late: set the timeout above the longest pause of a live producer.
//! - Stop (Ctrl-C in live mode): the operator stops reading and drops its capability; the
//!   sinks then write only what the frontier had completed (see [`super::sink`]).
//!
//! Restart (see `connectors::sink::commit`, "Resume"): a partition with a resume point is
//! read again from that point with its watermark restored, and every message whose time is
//! before the checkpoint's frontier only moves the watermark: its rows are committed. The
//! operator reports **resume points** on a fourth output, for the committer: whenever a
//! partition's message reaches a new largest time `m`, the point `(offset, m, largest event
//! time before it)`, at time `m` (every message before it has a smaller time); and, when a
//! partition is opened without one, its start (`m = 0`: no message precedes it).
//!
//! Flow control: a partition whose watermark is more than `max_ahead_minutes` of event time
//! ahead of the source frontier of the whole dataflow (the least watermark over every
//! partition of every worker, read from a probe) is not read until the rest catches up.
//! Without it a worker whose partitions are quick would race ahead and every downstream
//! operator would buffer its output until the slowest partition's watermark arrives; with it,
//! memory is bounded by that many minutes of events. The partition that holds the frontier
//! back is never throttled, so this cannot deadlock, and it changes only when messages are
//! read, never what is computed. Output is finished once it is stored, too: the sinks hand
//! whole hours of rows to their writing threads, and a writing thread that falls behind (a
//! slow store, or a core shared by more threads than it can run) would otherwise gather hour
//! after hour of rows in memory. So a partition is not read either while its watermark is
//! more than `max_ahead_minutes` past the end of the hour after the oldest job still being
//! written ([`Counters::oldest_writing`]): one hour written and the next queued behind it
//! never slow reading, more do. Those writes finish without the dataflow, so this cannot
//! deadlock either.
//!
//! Mechanics: each activation reads at most a bounded number of bytes per partition and
//! re-activates itself while there is more, so it never blocks the worker. A reader that can
//! tell when messages arrive (Kafka) wakes the operator through a thread-safe activator; an
//! idle partition also re-activates the operator after a delay instead of spinning.
//!
//! Parts, in `source/`: [`prefetch`] (each partition read and parsed on a thread of its own),
//! [`validate`] (a message to an accepted, late or rejected row) and [`lateness`] (the
//! partition watermark that decides late).

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use connectors::calendar::HOUR_MINUTES;
use connectors::schema::{EventRow, LateRow, RejectedRow};
use connectors::schema::{EventTime, MICROS_PER_MINUTE};
use connectors::sink::commit::ResumePoint;
use connectors::source::{PollStatus, Source};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::{ProbeHandle, Scope, StreamVec};

pub mod lateness;
pub mod prefetch;
pub mod validate;

use self::lateness::PartitionWatermark;
use self::prefetch::{Next, ParsedBatch, Prefetcher};
use self::validate::{classify, Classified};
use crate::counters::Counters;
use crate::failure::Fatal;
use crate::route::ByWorker;

/// How the source reads.
#[derive(Clone, Debug)]
pub struct SourceConfig {
    /// The source's partitions at start, listed by the caller before the dataflow is built:
    /// a listing is a broker round trip, which a worker never waits on (new ones are found
    /// by `discover_every`, on a thread of its own).
    pub partitions: Vec<u32>,
    /// Stop at the end offsets present at start.
    pub bounded: bool,
    /// Allowed lateness `L`, microseconds.
    pub lateness_micros: i64,
    /// Messages larger than this are rejected as oversize.
    pub max_message_bytes: usize,
    /// Bytes read from one partition per activation.
    pub batch_bytes: usize,
    /// Set to stop reading (live mode); see the module header.
    pub stop: Arc<AtomicBool>,
    /// In live mode, how often to look for new partitions (`None`: never).
    pub discover_every: Option<Duration>,
    /// How long an idle partition waits before it is polled again (a waker may come sooner).
    pub idle_poll: Duration,
    /// Flow control: how far (event-time minutes) a partition may run ahead of the source
    /// frontier of the whole dataflow; see the module header.
    pub max_ahead_minutes: u64,
    /// Where a restart reads again (default: a first run).
    pub resume: Arc<Resume>,
    /// Live mode: how long a caught-up partition may receive nothing before it stops
    /// holding the frontier back (`None`: never; see the module header).
    pub idle_timeout: Option<Duration>,
}

/// What a restart resumes from: the last commit's frontier and resume points.
#[derive(Clone, Debug, Default)]
pub struct Resume {
    /// Rows of times before this minute are committed (0: none; `u64::MAX`: all).
    pub from_minute: u64,
    /// Per partition, where to read again; a partition without one starts as a new one.
    pub points: BTreeMap<u32, ResumePoint>,
}

struct Assigned {
    reader: Prefetcher,
    watermark: PartitionWatermark,
    ended: bool,
    /// The largest time of a message read so far (resume points are reported when it grows).
    max_minute: Option<u64>,
    /// The resume point it was opened at, to report in the first activation.
    start: Option<ResumePoint>,
    /// Opened without a resume point: its start (the position its thread opens it at) is
    /// reported when the open is seen.
    start_at_open: bool,
    /// When the partition was opened or last delivered a message (processing time).
    last_message: Instant,
    /// Whether the last look found nothing queued and nothing left to read.
    caught_up: bool,
    /// Whether the partition is idle (see the module header).
    idle: bool,
}

/// The three streams the source produces.
pub struct SourceStreams<'s> {
    /// Valid, on-time events, each at a time no later than its event-time minute, in
    /// containers grouped by the worker dedup routes them to ([`super::dedup::route`]), so
    /// that the exchange hands each over whole.
    pub accepted: StreamVec<'s, u64, EventRow>,
    /// Late events.
    pub late: StreamVec<'s, u64, LateRow>,
    /// Rejected messages.
    pub rejected: StreamVec<'s, u64, RejectedRow>,
    /// Resume points `(partition, point)`, at the point's time; see the module header.
    pub resume_points: StreamVec<'s, u64, (u32, ResumePoint)>,
}

/// The source operator, as a source of a scope.
///
/// # Examples
///
/// One partition file of three lines: an event, an event 20 minutes earlier (behind the
/// watermark, 10 minutes of lateness) and a line that is not an event. Each goes to its own
/// stream, the accepted event at its event-time minute:
///
/// ```
/// use std::sync::Arc;
/// use connectors::files::FileSource;
/// use dataflow::counters::Counters;
/// use dataflow::operators::source::{PartitionSource, SourceConfig};
/// use timely::dataflow::operators::capture::{Capture, Event};
/// use timely::dataflow::operators::Probe;
/// use timely::dataflow::ProbeHandle;
///
/// let event = |id: &str, t: &str| format!(r#"{{"event_id":"{id}","device_id":"d-1","device_type":"humidity","timestamp":"{t}","event_duration":12.5,"value":40.0,"status":"normal","metadata":{{"location":"zone-A","firmware":"v1"}}}}"#);
/// let dir = tempfile::tempdir().unwrap();
/// let lines = [event("a", "2025-11-03T10:30:15Z"), event("b", "2025-11-03T10:10:00Z"), "not json".to_owned()];
/// std::fs::write(dir.path().join("partition-0.jsonl"), lines.join("\n") + "\n").unwrap();
///
/// let source = Arc::new(FileSource::new(dir.path()));
/// let config = SourceConfig {
///     partitions: vec![0],
///     bounded: true,
///     lateness_micros: 10 * 60_000_000,
///     max_message_bytes: 1 << 20,
///     batch_bytes: 1 << 16,
///     stop: Default::default(),
///     discover_every: None,
///     idle_poll: std::time::Duration::from_millis(10),
///     max_ahead_minutes: 60,
///     resume: Default::default(),
///     idle_timeout: None,
/// };
/// let (accepted, late, rejected) = timely::example(move |scope| {
///     let probe = ProbeHandle::new();
///     let streams = scope.partition_source(source, config, Arc::new(Counters::new()), probe.clone());
///     (streams.accepted.probe_with(&probe).capture(), streams.late.capture(), streams.rejected.capture())
/// });
/// fn rows<T>(captured: std::sync::mpsc::Receiver<Event<u64, Vec<T>>>) -> Vec<T> {
///     let messages = captured.try_iter().map(|event| match event {
///         Event::Messages(_, rows) => rows,
///         Event::Progress(_) => Vec::new(),
///     });
///     messages.flatten().collect()
/// }
/// let accepted = rows(accepted);
/// assert_eq!(accepted.len(), 1);
/// assert!(accepted[0].event.event_id == "a");
/// let late = rows(late);
/// assert_eq!((late.len(), late[0].position.offset), (1, 1));
/// assert_eq!(late[0].watermark.to_string(), "2025-11-03T10:20:15.000000Z");
/// let rejected = rows(rejected);
/// assert_eq!((rejected.len(), rejected[0].raw.as_slice()), (1, &b"not json"[..]));
/// ```
pub trait PartitionSource<'s> {
    /// Builds the source operator over the partitions of `source` (`config.partitions`, and
    /// those discovered later) assigned to this worker; `frontier` is the probe of the
    /// finished output that `--max-ahead` is measured from.
    fn partition_source(
        self, source: Arc<dyn Source>, config: SourceConfig, counters: Arc<Counters>, frontier: ProbeHandle<u64>,
    ) -> SourceStreams<'s>;
}

impl<'s> PartitionSource<'s> for Scope<'s, u64> {
    fn partition_source(
        self, source: Arc<dyn Source>, config: SourceConfig, counters: Arc<Counters>, frontier: ProbeHandle<u64>,
    ) -> SourceStreams<'s> {
        let scope = self;
        let (index, peers) = (scope.index(), scope.peers());
        let mut known = config.partitions.clone();
        let mut builder = OperatorBuilder::new("PartitionSource".to_owned(), scope);
        let activator = scope.activator_for(Rc::clone(&builder.operator_info().address));
        let sync_activator = scope.worker().sync_activator_for(builder.operator_info().address.to_vec());
        let waker: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
            let _ = sync_activator.activate(); // fails only once the worker has shut down
        });
        // A partition is opened on its reading thread (a Kafka open may retry while a broker
        // restarts): the worker never waits for it, and its watermark holds the frontier back
        // until it has read. A partition that cannot be opened fails the run (`Fatal::Source`).
        let open = {
            let (source, config, waker) = (Arc::clone(&source), config.clone(), Arc::clone(&waker));
            move |p: u32| -> std::io::Result<Assigned> {
                let point = config.resume.points.get(&p).copied();
                let (source, bounded) = (Arc::clone(&source), config.bounded);
                let reader = Prefetcher::start(
                    p,
                    Box::new(move || source.open(p, point.map(|r| r.offset), bounded)),
                    config.batch_bytes,
                    config.max_message_bytes,
                    config.idle_poll,
                    Arc::clone(&waker),
                )?;
                let max_event = point.and_then(|r| r.max_event_micros).map(EventTime);
                let watermark = PartitionWatermark::resume(config.lateness_micros, max_event);
                Ok(Assigned {
                    reader,
                    watermark,
                    ended: false,
                    max_minute: None,
                    start: point,
                    start_at_open: point.is_none(),
                    last_message: Instant::now(),
                    caught_up: false,
                    idle: false,
                })
            }
        };
        let from_minute = config.resume.from_minute;
        let mut assigned = Vec::new();
        for (i, &p) in known.iter().enumerate() {
            if i % peers == index {
                match open(p) {
                    Ok(a) => assigned.push(a),
                    // The operator is half built: report, and let it stop at its first activation.
                    Err(e) => counters
                        .failure
                        .fail(Fatal::Source(format!("partition {p}: cannot start its reading thread: {e}"))),
                }
            }
        }
        let discovered = match config.discover_every {
            Some(every) if !config.bounded => {
                Some(watch_partitions(Arc::clone(&source), every, Arc::clone(&config.stop)))
            }
            _ => None,
        };
        let (accepted_out, accepted) = builder.new_output();
        let (late_out, late) = builder.new_output();
        let (rejected_out, rejected) = builder.new_output();
        let (points_out, resume_points) = builder.new_output();
        let mut accepted_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<EventRow>>>::from(accepted_out);
        let mut by_worker = ByWorker::new(peers, super::dedup::route);
        let mut late_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<LateRow>>>::from(late_out);
        let mut rejected_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<RejectedRow>>>::from(rejected_out);
        let mut points_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<(u32, ResumePoint)>>>::from(points_out);
        builder.build(move |capabilities| {
            // One capability per output, always at the same time.
            let mut capabilities = Some(capabilities);
            move |_frontiers| {
                let Some(caps) = capabilities.as_mut() else { return };
                if counters.failure.failed() {
                    // A failed run reads no more; it ends with the process (see `crate::failure`).
                    assigned.clear(); // ends the reading threads
                    return;
                }
                if config.stop.load(Relaxed) {
                    capabilities = None;
                    assigned.clear(); // ends the reading threads
                    return;
                }
                if let Some(list) = discovered.as_ref().and_then(|d| d.lock().ok().and_then(|mut l| l.take())) {
                    // Positions in the sorted list decide ownership, as at start; Kafka numbers
                    // new partitions upwards, so existing positions do not move.
                    for (i, &p) in list.iter().enumerate() {
                        if known.contains(&p) {
                            continue;
                        }
                        if i % peers != index {
                            known.push(p);
                            continue;
                        }
                        match open(p) {
                            Ok(a) => {
                                tracing::info!(partition = p, worker = index, "reading a new partition");
                                assigned.push(a);
                                known.push(p);
                            }
                            Err(e) => tracing::warn!(partition = p, error = %e, "cannot start a reading thread for a new partition (will retry)"),
                        }
                    }
                }
                let mut more = false;
                let mut idle = false;
                let mut throttled = false;
                let least = frontier.with_frontier(|f| f.first().copied());
                // The end of the hour after the oldest job still being written (see the
                // module header).
                let writing_end = counters.oldest_writing().map(|t| t + 2 * HOUR_MINUTES);
                let mut accepted_out = accepted_out.activate();
                let mut late_out = late_out.activate();
                let mut rejected_out = rejected_out.activate();
                let mut points_out = points_out.activate();
                let mut accepted_session = accepted_out.session(&caps[0]);
                // Late and rejected rows (rare) are sent at their own minute, so that their
                // dataflow time is a function of the input alone (dedup does the same for
                // accepted events, which it files under their minute).
                let (mut late_rows, mut rejected_rows, mut points) = (Vec::new(), Vec::new(), Vec::new());
                let floor = *caps[0].time();
                for part in assigned.iter_mut().filter(|p| !p.ended) {
                    if let Some(start) = part.start.take() {
                        points.push((start.minute.max(floor), (part.reader.partition(), start)));
                    }
                    if let Some(w) = part.watermark.watermark() {
                        let minute = EventTime(w.micros().max(0)).minute();
                        let ahead_of = |finished: Option<u64>| finished.is_some_and(|f| minute > f + config.max_ahead_minutes);
                        if ahead_of(least) || ahead_of(writing_end) {
                            throttled = true;
                            continue;
                        }
                    }
                    let next = part.reader.next_batch();
                    if let Some(offset) = part.reader.take_opened() {
                        // Opened just now: the time it took is not quiet time, and its start
                        // goes before its first batch's points.
                        part.last_message = Instant::now();
                        if part.start_at_open {
                            let start = ResumePoint { offset, minute: 0, max_event_micros: None };
                            points.push((floor, (part.reader.partition(), start)));
                        }
                    }
                    let ParsedBatch { batch, mut parsed, status, .. } = match next {
                        Next::Batch(b) => {
                            part.last_message = Instant::now();
                            part.caught_up = false;
                            b
                        }
                        Next::Empty => {
                            idle = true;
                            part.caught_up = part.reader.polled() && part.reader.lag().is_none_or(|lag| lag == 0);
                            continue;
                        }
                        Next::Failed(e) => return counters.failure.fail(Fatal::Source(e)),
                    };
                    match status {
                        PollStatus::Data | PollStatus::Idle => more = true,
                        PollStatus::Ended => part.ended = true,
                    }
                    let (mut accepted, mut late, mut replayed) = (0, 0, 0);
                    // Every record's minute is at least the capabilities' (the least watermark).
                    for ((pos, raw), parsed) in batch.iter().zip(parsed.drain(..)) {
                        let max_event_before = part.watermark.max_event_time();
                        let mut classified = classify(pos, raw, parsed, &mut part.watermark);
                        if classified.minute() < floor {
                            classified = behind_frontier(classified, floor);
                        }
                        let minute = classified.minute();
                        if part.max_minute.is_none_or(|m| minute > m) {
                            part.max_minute = Some(minute);
                            let point = ResumePoint { offset: pos.offset, minute, max_event_micros: max_event_before.map(EventTime::micros) };
                            points.push((minute, (pos.partition, point)));
                        }
                        if minute < from_minute {
                            replayed += 1; // its rows are committed (a restart)
                            continue;
                        }
                        match classified {
                            Classified::Accepted(row) => {
                                accepted += 1;
                                if let Some(mut full) = by_worker.push(row) {
                                    accepted_session.give_container(&mut full);
                                }
                            }
                            Classified::Late(row) => {
                                late += 1;
                                late_rows.push((minute, row));
                            }
                            Classified::Rejected(row) => {
                                counters.add_rejected(row.reason, 1);
                                rejected_rows.push((minute, row));
                            }
                        }
                    }
                    counters.read.fetch_add(batch.len() as u64, Relaxed);
                    counters.bytes_read.fetch_add((batch.payload_bytes() + batch.len()) as u64, Relaxed);
                    counters.accepted.fetch_add(accepted, Relaxed);
                    counters.late.fetch_add(late, Relaxed);
                    counters.replayed.fetch_add(replayed, Relaxed);
                    part.reader.recycle(batch, parsed);
                }
                for mut container in by_worker.finish() {
                    accepted_session.give_container(&mut container);
                }
                drop(accepted_session);
                for (minute, point) in points {
                    points_out.session(&caps[3].delayed(&minute)).give(point);
                }
                for (minute, row) in late_rows {
                    late_out.session(&caps[1].delayed(&minute)).give(row);
                }
                for (minute, row) in rejected_rows {
                    rejected_out.session(&caps[2].delayed(&minute)).give(row);
                }
                if let Some(timeout) = config.idle_timeout {
                    for part in assigned.iter_mut().filter(|p| !p.ended) {
                        let idle = part.caught_up && part.last_message.elapsed() >= timeout;
                        if idle != part.idle {
                            part.idle = idle;
                            let partition = part.reader.partition();
                            match idle {
                                true => tracing::info!(partition, timeout = %humantime::format_duration(timeout), "partition idle: it no longer holds the frontier back"),
                                false => tracing::info!(partition, "partition active again"),
                            }
                        }
                    }
                }
                if let (Ok(mut marks), Ok(mut idle)) = (counters.partition_watermarks.lock(), counters.partition_idle.lock()) {
                    for p in assigned.iter() {
                        if let Some(w) = p.watermark.watermark() {
                            marks.insert(p.reader.partition(), w.micros());
                        }
                        match p.ended {
                            true => idle.remove(&p.reader.partition()),
                            false => idle.insert(p.reader.partition(), p.idle),
                        };
                    }
                }
                // Follow the least watermark of the partitions that are still open and active.
                let open: Vec<_> = assigned.iter().filter(|p| !p.ended).collect();
                if open.is_empty() {
                    capabilities = None;
                    return;
                }
                let watermark = |p: &Assigned| p.watermark.watermark().map_or(0, |w| w.micros().max(0));
                let least = match open.iter().filter(|p| !p.idle).map(|p| watermark(p)).min() {
                    Some(least) => least,
                    // Every open partition of this worker is idle: follow the process's active ones
                    // (none active in the process: hold).
                    None => counters.least_active_watermark().unwrap_or(0),
                };
                counters.watermark_micros.fetch_max(least, Relaxed);
                let minute = connectors::schema::EventTime(least).minute();
                if minute > *caps[0].time() {
                    for cap in caps.iter_mut() {
                        cap.downgrade(&minute);
                    }
                }
                if let Ok(mut positions) = counters.partition_positions.lock() {
                    for p in assigned.iter() {
                        if let Some(position) = p.reader.position() {
                            positions.insert(p.reader.partition(), position);
                        }
                    }
                }
                if let Ok(mut lags) = counters.partition_lag.lock() {
                    for p in assigned.iter() {
                        if let Some(lag) = p.reader.lag() {
                            lags.insert(p.reader.partition(), lag);
                        }
                    }
                }
                if more {
                    activator.activate();
                } else if throttled {
                    activator.activate_after(Duration::from_millis(2));
                } else if idle || discovered.is_some() {
                    activator.activate_after(config.idle_poll);
                }
            }
        });
        SourceStreams { accepted, late, rejected, resume_points }
    }
}

/// Refiles a record of a partition discovered after the frontier passed its minute (see the
/// module header): it is stamped with the frontier minute `floor`.
fn behind_frontier(classified: Classified, floor: u64) -> Classified {
    let frontier = EventTime(floor as i64 * MICROS_PER_MINUTE);
    match classified {
        Classified::Accepted(row) => {
            Classified::Late(LateRow { position: row.position, event: row.event, watermark: frontier })
        }
        Classified::Late(row) => Classified::Late(LateRow { watermark: frontier, ..row }),
        Classified::Rejected(row) => Classified::Rejected(RejectedRow { filed_under: frontier, ..row }),
    }
}

/// Lists the source's partitions every `every` on a background thread, so that the worker
/// never waits on the broker; the operator takes each new list.
fn watch_partitions(source: Arc<dyn Source>, every: Duration, stop: Arc<AtomicBool>) -> Arc<Mutex<Option<Vec<u32>>>> {
    let slot = Arc::new(Mutex::new(None));
    let weak = Arc::downgrade(&slot);
    std::thread::spawn(move || loop {
        std::thread::sleep(every);
        let Some(slot) = weak.upgrade() else { return };
        if stop.load(Relaxed) {
            return;
        }
        match source.partitions() {
            Ok(list) => {
                if let Ok(mut s) = slot.lock() {
                    *s = Some(list);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list partitions (will retry)"),
        }
    });
    slot
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::atomic::{AtomicBool, AtomicUsize};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use connectors::calendar::HOUR_MINUTES;
    use connectors::files::FileSource;
    use connectors::schema::MICROS_PER_MINUTE;
    use connectors::sink::commit::ResumePoint;
    use connectors::source::{MessageBatch, PartitionReader, PollStatus, Source, SourceError};
    use timely::dataflow::operators::{Inspect, Probe};
    use timely::dataflow::ProbeHandle;

    use connectors::schema::{LateRow, RejectedRow};
    use timely::dataflow::StreamVec;

    use super::{PartitionSource, SourceConfig};
    use crate::counters::Counters;
    use crate::operators::harness::{event_line, Lcg};

    const LATENESS_MINUTES: i64 = 10;

    /// What the source emitted, as `(partition, offset)` keys with what the test checks.
    #[derive(Default)]
    struct Emitted {
        /// Accepted: the update's time (must be the event's minute).
        accepted: BTreeSet<(u32, u64, u64)>,
        /// Late: the watermark it missed, in microseconds, and the time it was sent at.
        late: BTreeSet<(u32, u64, i64, u64)>,
        /// Rejected: the minute it is filed under, and the time it was sent at.
        rejected: BTreeSet<(u32, u64, u64, u64)>,
        /// Resume points `(partition, offset, minute, largest event time before it)`.
        points: BTreeSet<(u32, u64, u64, Option<i64>)>,
    }

    /// `partitions` files of `lines` messages each: event times wander forwards with jumps
    /// back of up to 15 minutes (some beyond the 10 minutes of lateness) and some exactly at
    /// the watermark or one microsecond behind it, and one message in 20 is not an event. Returns each partition's messages as `Some(event time)` or `None`.
    fn generate(dir: &std::path::Path, partitions: u32, lines: u64, seed: u64) -> Vec<Vec<Option<i64>>> {
        let mut rng = Lcg(seed);
        let start = 29_000_000 * MICROS_PER_MINUTE; // 2025-02-20
        (0..partitions)
            .map(|p| {
                let (mut now, mut max, mut text, mut times) = (start, start, String::new(), Vec::new());
                for i in 0..lines {
                    now += rng.below(20_000_000) as i64;
                    let lateness = LATENESS_MINUTES * MICROS_PER_MINUTE;
                    let t = match rng.below(40) {
                        0 | 1 => {
                            text.push_str("not an event\n");
                            times.push(None);
                            continue;
                        }
                        2 => max - lateness,     // exactly at the watermark: on time
                        3 => max - lateness - 1, // just behind it: late
                        4..=13 => now - rng.below(15 * MICROS_PER_MINUTE as u64) as i64,
                        _ => now,
                    };
                    max = max.max(t);
                    text.push_str(&event_line(u64::from(p) * 1_000_000 + i, t));
                    text.push('\n');
                    times.push(Some(t));
                }
                std::fs::write(dir.join(format!("partition-{p}.jsonl")), text).unwrap();
                times
            })
            .collect()
    }

    /// The naive recomputation: each partition's messages in order against the largest
    /// event time before them (written from the lateness rule, not from the operator).
    fn expected(partitions: &[Vec<Option<i64>>]) -> Emitted {
        let mut out = Emitted::default();
        let minute = |micros: i64| (micros.max(0) / MICROS_PER_MINUTE) as u64;
        for (p, times) in partitions.iter().enumerate() {
            let p = p as u32;
            let (mut max_event, mut max_minute): (Option<i64>, Option<u64>) = (None, None);
            out.points.insert((p, 0, 0, None));
            for (offset, t) in times.iter().enumerate() {
                let offset = offset as u64;
                let watermark = max_event.map(|m| m - LATENESS_MINUTES * MICROS_PER_MINUTE);
                let at = match *t {
                    None => {
                        let filed = minute(watermark.unwrap_or(0));
                        out.rejected.insert((p, offset, filed, filed));
                        filed
                    }
                    Some(t) if watermark.is_some_and(|w| t < w) => {
                        let w = watermark.unwrap();
                        out.late.insert((p, offset, w, minute(w)));
                        minute(w)
                    }
                    Some(t) => {
                        out.accepted.insert((p, offset, minute(t)));
                        minute(t)
                    }
                };
                if max_minute.is_none_or(|m| at > m) {
                    out.points.insert((p, offset, at, max_event));
                    max_minute = Some(at);
                }
                if let Some(t) = *t {
                    max_event = Some(max_event.map_or(t, |m| m.max(t)));
                }
            }
        }
        out
    }

    fn config() -> SourceConfig {
        SourceConfig {
            partitions: Vec::new(), // `run` lists the source's
            bounded: true,
            lateness_micros: LATENESS_MINUTES * MICROS_PER_MINUTE,
            max_message_bytes: 65_536,
            batch_bytes: 2048,
            stop: Arc::new(AtomicBool::new(false)),
            discover_every: None,
            idle_poll: Duration::from_millis(5),
            max_ahead_minutes: 30,
            resume: Default::default(),
            idle_timeout: None,
        }
    }

    /// Runs the source operator alone over `source` with `workers` workers.
    fn run(workers: usize, source: Arc<dyn Source>, config: SourceConfig) -> Emitted {
        run_with(workers, source, config, Arc::new(Counters::new()))
    }

    /// [`run`] with the process's `counters` given.
    fn run_with(workers: usize, source: Arc<dyn Source>, config: SourceConfig, counters: Arc<Counters>) -> Emitted {
        let config = SourceConfig { partitions: source.partitions().unwrap(), ..config };
        let out = Arc::new(Mutex::new(Emitted::default()));
        let collected = Arc::clone(&out);
        // One set of counters for the process, as `pipeline::run` has: a worker whose
        // partitions are all idle follows the process's active partitions through them.
        timely::execute(timely::Config::process(workers), move |worker| {
            let out = Arc::clone(&collected);
            worker.dataflow::<u64, _, _>(|scope| {
                let probe = ProbeHandle::new();
                let counters = Arc::clone(&counters);
                let streams = scope.partition_source(Arc::clone(&source), config.clone(), counters, probe.clone());
                let o = Arc::clone(&out);
                streams.accepted.probe_with(&probe).inspect_core(move |event| {
                    let Ok((stamp, rows)) = event else { return };
                    for row in rows {
                        let minute = row.event.timestamp.minute();
                        assert!(*stamp.expect_singleton() <= minute, "a row at a time after its minute");
                        o.lock().unwrap().accepted.insert((row.position.partition, row.position.offset, minute));
                    }
                });
                let r = |r: &LateRow, t| (r.position.partition, r.position.offset, r.watermark.micros(), t);
                collect(streams.late, &out, r, |e| &mut e.late);
                let r = |r: &RejectedRow, t| (r.position.partition, r.position.offset, r.filed_under.minute(), t);
                collect(streams.rejected, &out, r, |e| &mut e.rejected);
                let o = Arc::clone(&out);
                streams.resume_points.inspect(move |(p, r): &(u32, ResumePoint)| {
                    o.lock().unwrap().points.insert((*p, r.offset, r.minute, r.max_event_micros));
                });
            });
        })
        .expect("the computation runs");
        let out = std::mem::take(&mut *out.lock().unwrap());
        out
    }

    #[test]
    fn every_message_once_as_the_lateness_rule_says_under_1_and_2_workers() {
        let dir = tempfile::tempdir().unwrap();
        let partitions = generate(dir.path(), 3, 2_000, 11);
        let want = expected(&partitions);
        assert!(want.late.len() > 10 && want.rejected.len() > 100, "the input exercises every output");
        for workers in [1, 2] {
            let got = run(workers, Arc::new(FileSource::new(dir.path())), config());
            same(&got.accepted, &want.accepted, &format!("-w {workers}: accepted"));
            same(&got.late, &want.late, &format!("-w {workers}: late"));
            same(&got.rejected, &want.rejected, &format!("-w {workers}: rejected"));
            same(&got.points, &want.points, &format!("-w {workers}: resume points"));
        }
    }

    /// A sink's writing thread holds a job of the first minute (as a slow store would): every
    /// partition reads until its watermark is `max_ahead` past the end of the hour after that
    /// job's, and no further, until the job is stored; then the run reads everything, as the
    /// lateness rule says.
    #[test]
    fn reading_waits_for_writes_more_than_two_hours_behind_under_1_and_2_workers() {
        let dir = tempfile::tempdir().unwrap();
        let partitions = generate(dir.path(), 3, 2_000, 17);
        let want = expected(&partitions);
        let first = partitions.iter().flatten().flatten().map(|&t| (t / MICROS_PER_MINUTE) as u64).min().unwrap();
        let last = partitions.iter().flatten().flatten().map(|&t| (t / MICROS_PER_MINUTE) as u64).max().unwrap();
        let bound = first + 2 * HOUR_MINUTES + config().max_ahead_minutes;
        assert!(last > bound + 60, "the input goes well past where reading must wait");
        for workers in [1, 2] {
            let counters = Arc::new(Counters::new());
            counters.writing_started(first);
            // Waits until no watermark has moved for 300 ms, takes the least, and stores the job.
            let watcher = {
                let counters = Arc::clone(&counters);
                std::thread::spawn(move || {
                    let (mut seen, mut since, began) = (BTreeMap::new(), Instant::now(), Instant::now());
                    loop {
                        assert!(began.elapsed() < Duration::from_secs(30), "reading never stopped");
                        let marks = counters.partition_watermarks.lock().unwrap().clone();
                        if marks != seen {
                            (seen, since) = (marks, Instant::now());
                        } else if seen.len() == 3 && since.elapsed() > Duration::from_millis(300) {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    counters.writing_done(first);
                    seen.values().map(|&w| (w / MICROS_PER_MINUTE) as u64).min().unwrap()
                })
            };
            let got = run_with(workers, Arc::new(FileSource::new(dir.path())), config(), counters);
            let stalled_at = watcher.join().expect("the watcher saw reading stop");
            assert!(
                stalled_at > bound && stalled_at <= bound + 10,
                "-w {workers}: reading stopped at minute {stalled_at}, not just past {bound}"
            );
            same(&got.accepted, &want.accepted, &format!("-w {workers}: accepted"));
            same(&got.late, &want.late, &format!("-w {workers}: late"));
            same(&got.rejected, &want.rejected, &format!("-w {workers}: rejected"));
        }
    }

    /// Adds `key(record, time)` of every record of `stream` to the set `set` of `out`.
    fn collect<R: 'static, T: Ord + 'static>(
        stream: StreamVec<'_, u64, R>, out: &Arc<Mutex<Emitted>>, key: impl Fn(&R, u64) -> T + 'static,
        set: fn(&mut Emitted) -> &mut BTreeSet<T>,
    ) {
        let out = Arc::clone(out);
        stream.inspect_core(move |event| {
            let Ok((stamp, records)) = event else { return };
            let time = *stamp.expect_singleton();
            set(&mut out.lock().unwrap()).extend(records.iter().map(|r| key(r, time)));
        });
    }

    /// Asserts two sets are equal, naming a few of the differences.
    fn same<T: Ord + std::fmt::Debug>(got: &BTreeSet<T>, want: &BTreeSet<T>, what: &str) {
        let missing: Vec<_> = want.difference(got).take(5).collect();
        let extra: Vec<_> = got.difference(want).take(5).collect();
        assert!(missing.is_empty() && extra.is_empty(), "{what}: missing {missing:?}, unexpected {extra:?}");
    }

    /// A file source whose partition 1 opens only `delay` after every other partition has
    /// been read to its end (bounded) or caught up (live): an operator that opened partitions
    /// on the worker thread would never read the others. Each reader counts, once, when it is
    /// first caught up.
    struct SlowOpen {
        files: FileSource,
        partitions: u32,
        others_done: Arc<AtomicUsize>,
        delay: Duration,
        slow_done: Arc<AtomicUsize>,
    }

    impl SlowOpen {
        fn new(dir: &std::path::Path, partitions: u32, delay: Duration) -> Self {
            SlowOpen {
                files: FileSource::new(dir),
                partitions,
                others_done: Default::default(),
                delay,
                slow_done: Default::default(),
            }
        }
    }

    struct Watched {
        reader: Box<dyn PartitionReader>,
        done: Option<Arc<AtomicUsize>>,
    }

    impl PartitionReader for Watched {
        fn partition(&self) -> u32 {
            self.reader.partition()
        }
        fn poll(&mut self, out: &mut MessageBatch, max_bytes: usize) -> Result<PollStatus, SourceError> {
            let status = self.reader.poll(out, max_bytes)?;
            if matches!(status, PollStatus::Ended | PollStatus::Idle) {
                if let Some(done) = self.done.take() {
                    done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
            Ok(status)
        }
        fn position(&self) -> u64 {
            self.reader.position()
        }
    }

    impl Source for SlowOpen {
        fn identity(&self) -> String {
            self.files.identity()
        }
        fn partitions(&self) -> Result<Vec<u32>, SourceError> {
            Ok((0..self.partitions).collect())
        }
        fn open(&self, p: u32, offset: Option<u64>, bounded: bool) -> Result<Box<dyn PartitionReader>, SourceError> {
            let reader = self.files.open(p, offset, bounded)?;
            if p != 1 {
                return Ok(Box::new(Watched { reader, done: Some(Arc::clone(&self.others_done)) }));
            }
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while self.others_done.load(std::sync::atomic::Ordering::SeqCst) + 1 < self.partitions as usize {
                if std::time::Instant::now() > deadline {
                    return Err(SourceError::Kafka("partition 1: the other partitions were never read".into()));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            std::thread::sleep(self.delay);
            Ok(Box::new(Watched { reader, done: Some(Arc::clone(&self.slow_done)) }))
        }
    }

    #[test]
    fn a_slow_open_does_not_hold_the_worker() {
        let dir = tempfile::tempdir().unwrap();
        let partitions = generate(dir.path(), 2, 500, 12);
        let want = expected(&partitions);
        // One worker owns both partitions. Flow control would hold partition 0 back for the
        // unopened one (as it should): not what this test is about.
        let source = SlowOpen::new(dir.path(), 2, Duration::ZERO);
        let (done, result) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = done.send(run(1, Arc::new(source), SourceConfig { max_ahead_minutes: 1 << 40, ..config() }));
        });
        let got = result.recv_timeout(Duration::from_secs(60)).expect("the worker waited for a partition to open");
        same(&got.accepted, &want.accepted, "accepted");
        same(&got.late, &want.late, "late");
        same(&got.rejected, &want.rejected, "rejected");
        same(&got.points, &want.points, "resume points");
    }

    /// Live: partitions 0, 2 and 3 are read, caught up and idle long before partition 1
    /// opens. Were a partition still opening idle too, nothing would hold the frontier back,
    /// and partition 1's events, older than the others' last ones, would be filed late once
    /// it opened. With two workers, partition 1 shares its worker with partition 3.
    #[test]
    fn a_partition_still_opening_never_goes_idle_under_1_and_2_workers() {
        let dir = tempfile::tempdir().unwrap();
        let partitions = generate(dir.path(), 4, 300, 13);
        let want = expected(&partitions);
        for workers in [1, 2] {
            let source = SlowOpen::new(dir.path(), 4, Duration::from_millis(300)); // 15 idle timeouts
            let (stop, caught_up) = (Arc::new(AtomicBool::new(false)), Arc::clone(&source.slow_done));
            let config = SourceConfig {
                bounded: false,
                idle_timeout: Some(Duration::from_millis(20)),
                stop: Arc::clone(&stop),
                max_ahead_minutes: 1 << 40,
                ..config()
            };
            // Stop once partition 1 has been read to its end, and its messages handled.
            std::thread::spawn(move || {
                while caught_up.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                    std::thread::sleep(Duration::from_millis(5));
                }
                std::thread::sleep(Duration::from_secs(2));
                stop.store(true, std::sync::atomic::Ordering::SeqCst);
            });
            let got = run(workers, Arc::new(source), config);
            same(&got.accepted, &want.accepted, &format!("-w {workers}: accepted"));
            same(&got.late, &want.late, &format!("-w {workers}: late"));
            same(&got.rejected, &want.rejected, &format!("-w {workers}: rejected"));
        }
    }
}
