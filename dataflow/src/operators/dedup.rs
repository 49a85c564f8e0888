//! Dedup by `event_id`: each accepted event id appears once in the output collection.
//!
//! Semantics: among the accepted (valid, on-time) copies of an event id, the output keeps the
//! one with the least `(event time, partition, offset)`; for byte-identical copies, which
//! share their event time, that is the first to arrive. Every other copy is a duplicate:
//! counted and dropped. The winner is emitted at its own event-time minute, once the frontier
//! has passed that minute, so the output is the same for every interleaving of partitions and
//! every worker count.
//!
//! State is retired as the frontier advances: the id of an event kept at minute `m` is
//! forgotten once the frontier passes `m + horizon`, so a copy at minute `m2` is a duplicate
//! exactly when `m2 ≤ m + horizon` (and is kept as a new first copy otherwise). A later copy of a forgotten id could only be
//! on time if its event time were more than the horizon after the first (a byte copy of it
//! would be late and never reach dedup), so memory is bounded by the ids of the last
//! `horizon` of event time, not by the length of the stream.
//!
//! The input is an insert-only differential collection of accepted events (every update
//! `+1`); the output is an insert-only collection of distinct events, exchanged by event id.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use connectors::schema::{EventTime, Position};
use connectors::sink::EventRow;
use rustc_hash::FxHashMap;
use differential_dataflow::collection::vec::Collection as VecCollection;
use differential_dataflow::AsCollection;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::{Capability, Operator};

use crate::counters::Counters;

/// A stable hash of a string, the same in every process (used to route records).
pub fn stable_hash(s: &str) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

/// The dedup operator on a collection of accepted events.
pub trait DedupByEventId<'s> {
    /// Keeps the first copy of each event id; see the module header for the exact rule.
    /// `horizon_minutes` bounds how long an id is remembered after its event time.
    fn dedup_by_event_id(self, horizon_minutes: u64, counters: Arc<Counters>) -> VecCollection<'s, u64, EventRow>;
}

impl<'s> DedupByEventId<'s> for VecCollection<'s, u64, EventRow> {
    fn dedup_by_event_id(self, horizon_minutes: u64, counters: Arc<Counters>) -> VecCollection<'s, u64, EventRow> {
        let exchange = Exchange::new(|(row, _, _): &(EventRow, u64, isize)| stable_hash(&row.event.event_id));
        self.inner
            .unary_frontier(exchange, "DedupByEventId", move |_cap, _info| {
                // Records waiting for the frontier to pass their minute, with a capability for it.
                let mut pending: BTreeMap<u64, (Capability<u64>, Vec<EventRow>)> = BTreeMap::new();
                // Ids seen, with the minute that retires them.
                let mut seen: FxHashMap<String, u64> = FxHashMap::default();
                let mut retire: BTreeMap<u64, Vec<String>> = BTreeMap::new();
                move |(input, frontier), output| {
                    input.for_each(|cap, data| {
                        for (row, minute, diff) in data.drain(..) {
                            debug_assert_eq!(diff, 1, "dedup expects an insert-only collection");
                            pending
                                .entry(minute)
                                .or_insert_with(|| (cap.delayed(&minute, 0), Vec::new()))
                                .1
                                .push(row);
                        }
                    });
                    let mut duplicates = 0;
                    while let Some(entry) = pending.first_entry() {
                        let minute = *entry.key();
                        if frontier.less_equal(&minute) {
                            break;
                        }
                        let (cap, mut rows) = entry.remove();
                        // Forget ids whose horizon ends before this minute, and only those, so
                        // the outcome does not depend on how far the frontier jumped.
                        while let Some(r) = retire.first_entry() {
                            if *r.key() >= minute {
                                break;
                            }
                            for id in r.remove() {
                                seen.remove(&id);
                            }
                        }
                        // Visit in (event time, partition, offset) order without moving rows around.
                        let mut order: Vec<(EventTime, Position, usize)> =
                            rows.iter().enumerate().map(|(i, r)| (r.event.timestamp, r.position, i)).collect();
                        order.sort_unstable();
                        let mut slots: Vec<Option<EventRow>> = rows.drain(..).map(Some).collect();
                        let mut session = output.session(&cap);
                        for row in order.into_iter().filter_map(|(_, _, i)| slots[i].take()) {
                            if seen.contains_key(row.event.event_id.as_ref()) {
                                duplicates += 1;
                                continue;
                            }
                            let id = row.event.event_id.to_string();
                            seen.insert(id.clone(), minute + horizon_minutes);
                            retire.entry(minute + horizon_minutes).or_default().push(id);
                            session.give((row, minute, 1isize));
                        }
                    }
                    counters.duplicates.fetch_add(duplicates, Relaxed);
                    // Forget ids whose horizon the frontier has passed.
                    while let Some(entry) = retire.first_entry() {
                        if frontier.less_equal(entry.key()) {
                            break;
                        }
                        for id in entry.remove() {
                            seen.remove(&id);
                        }
                    }
                }
            })
            .as_collection()
    }
}
