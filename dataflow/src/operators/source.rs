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
//!
//! Mechanics: each activation reads at most a bounded number of bytes per partition and
//! re-activates itself while there is more, so it never blocks the worker; an idle partition
//! re-activates the operator after a short delay instead of spinning.

use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use connectors::source::{MessageBatch, PartitionReader, PollStatus, Source};
use connectors::sink::{EventRow, LateRow, RejectedRow};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::{Scope, StreamVec};

use super::lateness::PartitionWatermark;
use super::validate::{classify, Classified};
use crate::counters::Counters;

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
}

struct Assigned {
    reader: Box<dyn PartitionReader>,
    watermark: PartitionWatermark,
    ended: bool,
}

/// The three streams the source produces.
pub struct SourceStreams<'s> {
    /// Valid, on-time events as collection updates `(row, event minute, +1)`.
    pub accepted: StreamVec<'s, u64, (EventRow, u64, isize)>,
    /// Late events.
    pub late: StreamVec<'s, u64, LateRow>,
    /// Rejected messages.
    pub rejected: StreamVec<'s, u64, RejectedRow>,
}

/// Builds the source operator over the partitions of `source` assigned to this worker.
pub fn partition_source<'s>(
    scope: Scope<'s, u64>,
    source: Arc<dyn Source>,
    config: SourceConfig,
    counters: Arc<Counters>,
) -> anyhow::Result<SourceStreams<'s>> {
    let (index, peers) = (scope.index(), scope.peers());
    let mut assigned = Vec::new();
    for (i, p) in source.partitions()?.into_iter().enumerate() {
        if i % peers == index {
            assigned.push(Assigned {
                reader: source.open(p, 0, config.bounded)?,
                watermark: PartitionWatermark::new(config.lateness_micros),
                ended: false,
            });
        }
    }
    let mut builder = OperatorBuilder::new("PartitionSource".to_owned(), scope.clone());
    let activator = scope.activator_for(Rc::clone(&builder.operator_info().address));
    let (accepted_out, accepted) = builder.new_output();
    let (late_out, late) = builder.new_output();
    let (rejected_out, rejected) = builder.new_output();
    let mut accepted_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<(EventRow, u64, isize)>>>::from(accepted_out);
    let mut late_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<LateRow>>>::from(late_out);
    let mut rejected_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<RejectedRow>>>::from(rejected_out);
    builder.build(move |capabilities| {
        // One capability per output, always at the same time.
        let mut capabilities = Some(capabilities);
        let mut batch = MessageBatch::default();
        move |_frontiers| {
            let Some(caps) = capabilities.as_mut() else { return };
            let mut more = false;
            let mut idle = false;
            let mut accepted_out = accepted_out.activate();
            let mut late_out = late_out.activate();
            let mut rejected_out = rejected_out.activate();
            let mut accepted_session = accepted_out.session(&caps[0]);
            let mut late_session = late_out.session(&caps[1]);
            let mut rejected_session = rejected_out.session(&caps[2]);
            for part in assigned.iter_mut().filter(|p| !p.ended) {
                batch.clear();
                let status = match part.reader.poll(&mut batch, config.batch_bytes) {
                    Ok(s) => s,
                    Err(e) => panic!("source failed: {e}"),
                };
                match status {
                    PollStatus::Data => more = true,
                    PollStatus::Idle => idle = true,
                    PollStatus::Ended => part.ended = true,
                }
                let (mut accepted, mut late) = (0, 0);
                // Every record's minute is at least the capabilities' (the least watermark).
                for (pos, raw) in batch.iter() {
                    match classify(pos, raw, &mut part.watermark, config.max_message_bytes) {
                        Classified::Accepted(row) => {
                            accepted += 1;
                            let minute = row.event.timestamp.minute();
                            accepted_session.give((row, minute, 1isize));
                        }
                        Classified::Late(row) => {
                            late += 1;
                            late_session.give(row);
                        }
                        Classified::Rejected(row) => {
                            counters.add_rejected(row.reason, 1);
                            rejected_session.give(row);
                        }
                    }
                }
                counters.read.fetch_add(batch.len() as u64, Relaxed);
                counters.bytes_read.fetch_add((batch.bytes.len() + batch.len()) as u64, Relaxed);
                counters.accepted.fetch_add(accepted, Relaxed);
                counters.late.fetch_add(late, Relaxed);
            }
            drop((accepted_session, late_session, rejected_session));
            if let Ok(mut marks) = counters.partition_watermarks.lock() {
                for p in assigned.iter() {
                    if let Some(w) = p.watermark.watermark() {
                        marks.insert(p.reader.partition(), w.micros());
                    }
                }
            }
            // Follow the least watermark of the partitions that are still open.
            let open: Vec<_> = assigned.iter().filter(|p| !p.ended).collect();
            if open.is_empty() {
                capabilities = None;
                return;
            }
            let least = open.iter().map(|p| p.watermark.watermark().map_or(0, |w| w.micros().max(0))).min().unwrap_or(0);
            counters.watermark_micros.fetch_max(least, Relaxed);
            let minute = connectors::schema::EventTime(least).minute();
            if minute > *caps[0].time() {
                for cap in caps.iter_mut() {
                    cap.downgrade(&minute);
                }
            }
            if more {
                activator.activate();
            } else if idle {
                activator.activate_after(Duration::from_millis(50));
            }
        }
    });
    Ok(SourceStreams { accepted, late, rejected })
}
