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
use timely::dataflow::operators::generic::operator::source as timely_source;
use timely::dataflow::operators::generic::OperatorInfo;
use timely::container::CapacityContainerBuilder;
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

/// Builds the source operator over the partitions of `source` assigned to this worker.
pub fn partition_source<'s>(
    scope: Scope<'s, u64>,
    source: Arc<dyn Source>,
    config: SourceConfig,
    counters: Arc<Counters>,
) -> anyhow::Result<StreamVec<'s, u64, Classified>> {
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
    let scope_for_activator = scope.clone();
    Ok(timely_source::<_, CapacityContainerBuilder<Vec<Classified>>, _, _>(scope, "PartitionSource", move |capability, info: OperatorInfo| {
        let activator = scope_for_activator.activator_for(Rc::clone(&info.address));
        let mut capability = Some(capability);
        let mut batch = MessageBatch::default();
        let mut records: Vec<Classified> = Vec::new();
        move |output| {
            let Some(cap) = capability.as_mut() else { return };
            let mut more = false;
            let mut idle = false;
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
                records.clear();
                let (mut accepted, mut late) = (0, 0);
                for (pos, raw) in batch.iter() {
                    let rec = classify(pos, raw, &mut part.watermark, config.max_message_bytes);
                    match &rec {
                        Classified::Accepted(_) => accepted += 1,
                        Classified::Late(_) => late += 1,
                        Classified::Rejected(r) => counters.add_rejected(r.reason, 1),
                    }
                    records.push(rec);
                }
                counters.read.fetch_add(batch.len() as u64, Relaxed);
                counters.bytes_read.fetch_add((batch.bytes.len() + batch.len()) as u64, Relaxed);
                counters.accepted.fetch_add(accepted, Relaxed);
                counters.late.fetch_add(late, Relaxed);
                if !records.is_empty() {
                    // Every record's minute is at least the capability's (the least watermark).
                    let mut session = output.session(&*cap);
                    session.give_iterator(records.drain(..));
                }
            }
            // Follow the least watermark of the partitions that are still open.
            let open: Vec<_> = assigned.iter().filter(|p| !p.ended).collect();
            if open.is_empty() {
                capability = None;
                return;
            }
            let least = open.iter().map(|p| p.watermark.watermark().map_or(0, |w| w.micros().max(0))).min().unwrap_or(0);
            counters.watermark_micros.fetch_max(least, Relaxed);
            let minute = connectors::schema::EventTime(least).minute();
            if minute > *cap.time() {
                cap.downgrade(&minute);
            }
            if more {
                activator.activate();
            } else if idle {
                activator.activate_after(Duration::from_millis(50));
            }
        }
    }))
}
