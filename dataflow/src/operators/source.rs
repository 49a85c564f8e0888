//! The partition source operator: reads this worker's partitions, validates each message and
//! applies the lateness rule, and stamps every record with an event-time minute.
//!
//! Semantics:
//! - Partitions are assigned statically: the `i`-th partition (in ascending order) belongs to
//!   the worker with global index `i % peers`. Each is read strictly in offset order.
//! - Every record carries the event-time minute of [`Classified::minute`] (the time of its
//!   differential update), which is never earlier than the container it travels in; the operator's
//!   capability is the least `⌊W_p⌋` (in minutes) over the worker's partitions that have not
//!   ended, so the dataflow frontier is the minimum of the per-partition watermarks and a
//!   window or day closes only when every partition's watermark has passed it.
//! - A partition that ends (bounded mode reached the end offsets present at start) stops
//!   holding the frontier back; when all have ended the capability is dropped.
//! - Live mode: partitions added to the topic while running are discovered (by a background
//!   thread, so the worker never waits on the broker) and read from their start. A record of
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
//! read, never what is computed.
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

/// How the source reads.
#[derive(Clone, Debug)]
pub struct SourceConfig {
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
    /// The start point, to report in the first activation.
    start: Option<ResumePoint>,
    /// When the partition was opened or last delivered a message (processing time).
    last_message: Instant,
    /// Whether the last look found nothing queued and nothing left to read.
    caught_up: bool,
    /// Whether the partition is idle (see the module header).
    idle: bool,
}

/// The three streams the source produces.
pub struct SourceStreams<'s> {
    /// Valid, on-time events as collection updates `(row, event minute, +1)`.
    pub accepted: StreamVec<'s, u64, (EventRow, u64, isize)>,
    /// Late events.
    pub late: StreamVec<'s, u64, LateRow>,
    /// Rejected messages.
    pub rejected: StreamVec<'s, u64, RejectedRow>,
    /// Resume points `(partition, point)`, at the point's time; see the module header.
    pub resume_points: StreamVec<'s, u64, (u32, ResumePoint)>,
}

/// The source operator, as a source of a scope.
pub trait PartitionSource<'s> {
    /// Builds the source operator over the partitions of `source` assigned to this worker;
    /// `frontier` is the probe of the finished output that `--max-ahead` is measured from.
    fn partition_source(
        self,
        source: Arc<dyn Source>,
        config: SourceConfig,
        counters: Arc<Counters>,
        frontier: ProbeHandle<u64>,
    ) -> anyhow::Result<SourceStreams<'s>>;
}

impl<'s> PartitionSource<'s> for Scope<'s, u64> {
    fn partition_source(
        self,
        source: Arc<dyn Source>,
        config: SourceConfig,
        counters: Arc<Counters>,
        frontier: ProbeHandle<u64>,
    ) -> anyhow::Result<SourceStreams<'s>> {
        let scope = self;
        let (index, peers) = (scope.index(), scope.peers());
        let mut builder = OperatorBuilder::new("PartitionSource".to_owned(), scope);
        let activator = scope.activator_for(Rc::clone(&builder.operator_info().address));
        let sync_activator = scope.worker().sync_activator_for(builder.operator_info().address.to_vec());
        let waker: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
            let _ = sync_activator.activate(); // fails only once the worker has shut down
        });
        let open = {
            let (source, config, waker) = (Arc::clone(&source), config.clone(), Arc::clone(&waker));
            move |p: u32| -> anyhow::Result<Assigned> {
                let point = config.resume.points.get(&p).copied();
                let reader = source.open(p, point.map(|r| r.offset), config.bounded)?;
                let max_event = point.and_then(|r| r.max_event_micros).map(EventTime);
                let start =
                    point.unwrap_or(ResumePoint { offset: reader.position(), minute: 0, max_event_micros: None });
                let reader = Prefetcher::start(
                    reader,
                    config.batch_bytes,
                    config.max_message_bytes,
                    config.idle_poll,
                    Arc::clone(&waker),
                )?;
                let watermark = PartitionWatermark::resume(config.lateness_micros, max_event);
                Ok(Assigned {
                    reader,
                    watermark,
                    ended: false,
                    max_minute: None,
                    start: Some(start),
                    last_message: Instant::now(),
                    caught_up: false,
                    idle: false,
                })
            }
        };
        let from_minute = config.resume.from_minute;
        // Open this worker's partitions first: a failure must not leave a half-built operator.
        let mut known = source.partitions()?;
        let mut assigned = Vec::new();
        for (i, &p) in known.iter().enumerate() {
            if i % peers == index {
                assigned.push(open(p)?);
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
        let mut accepted_out =
            OutputBuilder::<_, CapacityContainerBuilder<Vec<(EventRow, u64, isize)>>>::from(accepted_out);
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
                            Err(e) => tracing::warn!(partition = p, error = %e, "cannot open a new partition (will retry)"),
                        }
                    }
                }
                let mut more = false;
                let mut idle = false;
                let mut throttled = false;
                let least = frontier.with_frontier(|f| f.first().copied());
                let mut accepted_out = accepted_out.activate();
                let mut late_out = late_out.activate();
                let mut rejected_out = rejected_out.activate();
                let mut points_out = points_out.activate();
                let mut accepted_session = accepted_out.session(&caps[0]);
                // Late and rejected rows (rare) are sent at their own minute, like accepted events,
                // so that every record's dataflow time is a function of the input alone.
                let (mut late_rows, mut rejected_rows, mut points) = (Vec::new(), Vec::new(), Vec::new());
                let floor = *caps[0].time();
                for part in assigned.iter_mut() {
                    if let Some(start) = part.start.take() {
                        points.push((start.minute.max(floor), (part.reader.partition(), start)));
                    }
                }
                for part in assigned.iter_mut().filter(|p| !p.ended) {
                    if let (Some(least), Some(w)) = (least, part.watermark.watermark()) {
                        if EventTime(w.micros().max(0)).minute() > least + config.max_ahead_minutes {
                            throttled = true;
                            continue;
                        }
                    }
                    let ParsedBatch { batch, mut parsed, status, .. } = match part.reader.next_batch() {
                        Next::Batch(b) => {
                            part.last_message = Instant::now();
                            part.caught_up = false;
                            b
                        }
                        Next::Empty => {
                            idle = true;
                            part.caught_up = part.reader.lag().is_none_or(|lag| lag == 0);
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
                                accepted_session.give((row, minute, 1isize));
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
                        positions.insert(p.reader.partition(), p.reader.position());
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
        Ok(SourceStreams { accepted, late, rejected, resume_points })
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
