//! Dedup by `event_id`: each accepted event id appears once in the output.
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
//! would be late and never reach dedup), so memory is bounded by the ids of the last two
//! horizons of event time, not by the length of the stream: ids are held in two generations
//! of one horizon each (by the minute they were kept at), and a generation is cleared whole
//! once every id in it is forgotten, so no id is ever visited to be forgotten. Ids that are canonical UUIDs are held as 128-bit numbers ([`EventId::Uuid`]).
//!
//! After a restart, a second input brings back the events committed before the checkpoint's
//! frontier that this state depends on (see [`super::seed`]): each is an id already kept at
//! its minute (remembered for the same horizon), and, when its flag says so, a measurement
//! for the aggregates; it is never written as an `events` row again.
//!
//! The input is the stream of accepted events, each at a time no later than its event-time
//! minute, exchanged by event id ([`route`]); the outputs are the distinct events as `events`
//! table rows and, as an insert-only collection, their measurements for the aggregates (two
//! outputs of one operator, so no event is copied for its several consumers). Rows travel in
//! containers from the source to the `events` sink: the source groups them by the worker they
//! go to, so the exchange hands containers over whole, and dedup files each container under
//! its minute (a container of several minutes is first grouped into one container per minute,
//! [`by_minute`]) and passes it on without its duplicates.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use connectors::schema::{DeviceType, EventId, EventRow, EventTime, Position};
use differential_dataflow::collection::vec::Collection as VecCollection;
use differential_dataflow::AsCollection;
use rustc_hash::FxHashMap;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::Capability;
use timely::dataflow::StreamVec;

use crate::counters::Counters;
use crate::runs::{MinuteRun, Run};

use super::seed::Seed;

/// A stable hash of a string, the same in every process and build (used to route records):
/// XXH3-64 with seed 0, whose algorithm is fixed by its specification (unlike
/// `DefaultHasher`, which may change between Rust releases).
pub fn stable_hash(s: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(s.as_bytes())
}

/// Dedup decides an event on the worker of [`id_hash`] of its id (the source groups its rows
/// by it, see [`crate::route::ByWorker`]).
pub fn route(row: &EventRow) -> u64 {
    id_hash(&row.event.event_id)
}

/// The worker an event id is routed to is chosen by this hash: [`stable_hash`] of the id's
/// text, or of a UUID's 16 bytes (big-endian), which is cheaper than spelling it.
pub fn id_hash(id: &EventId<'_>) -> u64 {
    match id {
        EventId::Uuid(bits) => xxhash_rust::xxh3::xxh3_64(&bits.to_be_bytes()),
        EventId::Text(text) => stable_hash(text),
    }
}

/// What dedup produces: each distinct event once, as a table row and as a measurement.
pub struct Distinct<'s> {
    /// The distinct events, for the `events` table.
    pub rows: StreamVec<'s, u64, EventRow>,
    /// Their measurements, as an insert-only collection at each event's minute: one sorted
    /// run per (minute, device type) per worker (see [`crate::runs`]).
    pub measurements: VecCollection<'s, u64, MinuteRun>,
}

/// The dedup operator on a stream of accepted events.
///
/// # Examples
///
/// Two copies of one event id, two minutes apart (within a 60-minute horizon): the earlier
/// is kept, at its own minute, and the other is counted as a duplicate:
///
/// ```
/// use std::borrow::Cow;
/// use std::sync::Arc;
/// use connectors::schema::{DeviceType, Event, EventId, EventRow, EventTime, Position, Status};
/// use dataflow::counters::Counters;
/// use dataflow::operators::dedup::DedupByEventId;
/// use dataflow::operators::seed::Seed;
/// use timely::dataflow::operators::capture::{Capture, Event as Captured};
/// use timely::dataflow::operators::vec::ToStream;
///
/// let copy = |minute: i64, offset: u64| {
///     let event = Event {
///         event_id: EventId::Text(Cow::Borrowed("reading-1")),
///         device_id: Cow::Borrowed("sensor-7"),
///         device_type: DeviceType::ALL[0],
///         timestamp: EventTime(minute * 60_000_000),
///         event_duration: 12.5,
///         value: 3.0,
///         status: Status::Normal,
///         location: None,
///         firmware: None,
///     };
///     EventRow { position: Position { partition: 0, offset }, event }
/// };
/// let counters = Arc::new(Counters::new());
/// let c = Arc::clone(&counters);
/// let captured = timely::example(move |scope| {
///     let seeds = Vec::<Seed>::new().to_stream(scope);
///     let events = vec![copy(29_000_000, 0), copy(29_000_002, 1)].to_stream(scope);
///     events.dedup_by_event_id(seeds, 60, c).rows.capture()
/// });
/// let kept: Vec<_> = captured
///     .try_iter()
///     .flat_map(|event| match event {
///         Captured::Messages(stamp, rows) => rows.into_iter().map(|r| (*stamp.expect_singleton(), r.position.offset)).collect(),
///         Captured::Progress(_) => Vec::new(),
///     })
///     .collect();
/// assert_eq!(kept, vec![(29_000_000, 0)]);
/// assert_eq!(counters.duplicates.load(std::sync::atomic::Ordering::Relaxed), 1);
/// ```
pub trait DedupByEventId<'s> {
    /// Keeps the first copy of each event id; see the module header for the exact rule.
    /// `horizon_minutes` bounds how long an id is remembered after its event time; `seeds`
    /// are the committed events a restart reads back (see the module header).
    fn dedup_by_event_id(
        self, seeds: StreamVec<'s, u64, Seed>, horizon_minutes: u64, counters: Arc<Counters>,
    ) -> Distinct<'s>;
}

impl<'s> DedupByEventId<'s> for StreamVec<'s, u64, EventRow> {
    fn dedup_by_event_id(
        self, seeds: StreamVec<'s, u64, Seed>, horizon_minutes: u64, counters: Arc<Counters>,
    ) -> Distinct<'s> {
        let mut builder = OperatorBuilder::new("DedupByEventId".to_owned(), self.scope());
        let mut input = builder.new_input(self, crate::route::whole_containers(route));
        let mut seed_input = builder.new_input(seeds, Exchange::new(|(row, _, _): &Seed| route(row)));
        let (rows_out, rows) = builder.new_output();
        let (measurements_out, measurements) = builder.new_output();
        let mut rows_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<EventRow>>>::from(rows_out);
        let mut measurements_out =
            OutputBuilder::<_, CapacityContainerBuilder<Vec<(MinuteRun, u64, isize)>>>::from(measurements_out);
        builder.build(move |_capabilities| {
            // Per minute waiting for the frontier to pass it: capabilities for it, the
            // containers of its rows (each of rows of that minute only, as they arrived), and
            // its seeds.
            type Minute = ([Capability<u64>; 2], Vec<Vec<EventRow>>, Vec<(EventRow, bool)>);
            let mut pending: BTreeMap<u64, Minute> = BTreeMap::new();
            // Ids kept, with the minute they were kept at, in generations of one horizon.
            let mut seen = Generations::new(horizon_minutes);
            // The kept measurements of the minute being decided, per device type.
            let mut by_type: Vec<Vec<(u64, u64)>> = vec![Vec::new(); DeviceType::ALL.len()];
            // The minute's rows as (event time, position, container, index), and whether each
            // row (numbered container after container) is kept.
            let mut order: Vec<(EventTime, Position, u32, u32)> = Vec::new();
            let mut keep: Vec<bool> = Vec::new();
            move |frontiers| {
                let (frontier, seed_frontier) = (&frontiers[0], &frontiers[1]);
                input.for_each(|cap, data| {
                    for (minute, rows) in by_minute(std::mem::take(data)) {
                        pending
                            .entry(minute)
                            .or_insert_with(|| {
                                ([cap.delayed(&minute, 0), cap.delayed(&minute, 1)], Vec::new(), Vec::new())
                            })
                            .1
                            .push(rows);
                    }
                });
                seed_input.for_each(|cap, data| {
                    for (row, minute, measure) in data.drain(..) {
                        pending
                            .entry(minute)
                            .or_insert_with(|| {
                                ([cap.delayed(&minute, 0), cap.delayed(&minute, 1)], Vec::new(), Vec::new())
                            })
                            .2
                            .push((row, measure));
                    }
                });
                let mut duplicates = 0;
                let mut rows_out = rows_out.activate();
                let mut measurements_out = measurements_out.activate();
                while let Some(entry) = pending.first_entry() {
                    let minute = *entry.key();
                    if frontier.less_equal(&minute) || seed_frontier.less_equal(&minute) {
                        break;
                    }
                    let ([rows_cap, measurements_cap], containers, seeds) = entry.remove();
                    seen.advance_to(minute);
                    // Seeds were kept before the restart: remember them, never emit them as rows.
                    for (row, measure) in seeds {
                        seen.keep(&row.event.event_id, minute);
                        if measure {
                            by_type[row.event.device_type as usize].push(measurement(&row));
                        }
                    }
                    // Decide in (event time, partition, offset) order; emit in any order.
                    order.clear();
                    for (c, rows) in containers.iter().enumerate() {
                        order.extend(
                            rows.iter().enumerate().map(|(i, r)| (r.event.timestamp, r.position, c as u32, i as u32)),
                        );
                    }
                    order.sort_unstable();
                    let starts: Vec<usize> = containers
                        .iter()
                        .scan(0, |next, rows| {
                            let start = *next;
                            *next += rows.len();
                            Some(start)
                        })
                        .collect();
                    keep.clear();
                    keep.resize(order.len(), false);
                    for &(_, _, c, i) in &order {
                        let (c, i) = (c as usize, i as usize);
                        if seen.keep(&containers[c][i].event.event_id, minute) {
                            keep[starts[c] + i] = true;
                        } else {
                            duplicates += 1;
                        }
                    }
                    // Each container goes on whole, without its duplicates.
                    let mut session = rows_out.session(&rows_cap);
                    for (mut rows, start) in containers.into_iter().zip(starts) {
                        let kept = &keep[start..start + rows.len()];
                        for (row, _) in rows.iter().zip(kept).filter(|(_, k)| **k) {
                            by_type[row.event.device_type as usize].push(measurement(row));
                        }
                        if kept.contains(&false) {
                            let mut kept = kept.iter();
                            rows.retain(|_| *kept.next().expect("a flag per row"));
                        }
                        session.give_container(&mut rows);
                    }
                    drop(session);
                    let mut measurements = measurements_out.session(&measurements_cap);
                    for (&device_type, values) in DeviceType::ALL.iter().zip(by_type.iter_mut()) {
                        if !values.is_empty() {
                            let values = Run::from_values(std::mem::take(values));
                            measurements.give((MinuteRun { minute, device_type, values }, minute, 1isize));
                        }
                    }
                }
                counters.duplicates.fetch_add(duplicates, Relaxed);
            }
        });
        Distinct { rows, measurements: measurements.as_collection() }
    }
}

/// A container's rows grouped by event-time minute, each group in arrival order: the
/// container itself when its rows share one minute, else one vector of the exact size per
/// minute, each row moved once. A container of the source holds a few minutes of its
/// partitions, their rows interleaved near each minute's edges (on the week benchmark a
/// container of ~400 rows changes minute ~15 times but spans ~3 minutes), so grouping
/// allocates a vector per minute where cutting it at each change would allocate one per
/// change. A container passed on whole keeps its capacity: the source's containers come
/// full or already shrunk (`route::ByWorker::finish`), so none holds much spare room.
fn by_minute(rows: Vec<EventRow>) -> Vec<(u64, Vec<EventRow>)> {
    let minute = |r: &EventRow| r.event.timestamp.minute();
    let mut groups: Vec<(u64, Vec<EventRow>)> = Vec::new();
    let mut sizes: Vec<usize> = Vec::new();
    for m in rows.iter().map(minute) {
        match groups.iter().position(|(g, _)| *g == m) {
            Some(i) => sizes[i] += 1,
            None => {
                groups.push((m, Vec::new()));
                sizes.push(1);
            }
        }
    }
    if groups.len() < 2 {
        // No row or one minute: the container itself is the group.
        return groups.pop().map(|(m, _)| vec![(m, rows)]).unwrap_or_default();
    }
    for ((_, group), size) in groups.iter_mut().zip(sizes) {
        group.reserve_exact(size);
    }
    for row in rows {
        let m = minute(&row);
        groups.iter_mut().find(|(g, _)| *g == m).expect("every minute has its group").1.push(row);
    }
    groups
}

/// The ids dedup remembers, with the minute each was kept at, in two generations of one
/// horizon: `current` holds the ids kept at minutes of the generation being decided
/// (`minute / horizon`), `previous` those of the one before. An id kept at `m` is
/// remembered while `minute <= m + horizon`; ids of older generations are all forgotten
/// (their minutes are more than a horizon back), so advancing a generation clears the older
/// map whole instead of visiting its ids to forget them one by one.
struct Generations {
    horizon: u64,
    generation: u64,
    current: FxHashMap<EventId<'static>, u64>,
    previous: FxHashMap<EventId<'static>, u64>,
}

impl Generations {
    fn new(horizon: u64) -> Self {
        Generations { horizon, generation: 0, current: FxHashMap::default(), previous: FxHashMap::default() }
    }

    /// Moves to the generation of `minute` (minutes are decided in ascending order).
    fn advance_to(&mut self, minute: u64) {
        let generation = minute / self.horizon.max(1);
        // The maps are cleared, not dropped: each keeps its table for the next generation
        // (no allocation and no rehashing while it fills again).
        if generation == self.generation + 1 {
            std::mem::swap(&mut self.previous, &mut self.current);
            self.current.clear();
        } else if generation > self.generation {
            self.previous.clear();
            self.current.clear();
        }
        self.generation = self.generation.max(generation);
    }

    /// Keeps `id` at `minute` unless it is remembered: returns whether it was kept (a first
    /// copy) or is a duplicate.
    fn keep(&mut self, id: &EventId<'static>, minute: u64) -> bool {
        if self.current.contains_key(id) {
            return false; // kept in this generation: less than a horizon ago
        }
        if self.previous.get(id).is_some_and(|&kept| minute <= kept + self.horizon) {
            return false;
        }
        self.current.insert(id.clone(), minute);
        true
    }
}

/// What the aggregates need of a distinct event: `(event_duration bits, value bits)`.
fn measurement(row: &EventRow) -> (u64, u64) {
    (row.event.event_duration.to_bits(), row.event.value.to_bits())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operators::harness::{drive_stream, Lcg};
    use connectors::schema::{Event, Status, MICROS_PER_MINUTE};
    use std::borrow::Cow;
    use timely::dataflow::operators::ToStream;

    /// Copies of 300 event ids over 30 minutes: a copy of an id comes up to 8 minutes after
    /// it, from any of 3 partitions, so some are duplicates (within the 3-minute horizon of
    /// the kept copy) and some are kept again (beyond it); ids are UUIDs or other text.
    fn copies(seed: u64) -> Vec<(EventRow, u64)> {
        let mut rng = Lcg(seed);
        let mut out = Vec::new();
        for (offset, id) in (0..300u64).enumerate() {
            let first = 1_000 * MICROS_PER_MINUTE + rng.below(30 * 60) as i64 * 1_000_000;
            let event_id = if id % 2 == 0 {
                EventId::Uuid(id as u128 * 0x1234_5678_9abc)
            } else {
                EventId::Text(Cow::Owned(format!("id-{id}")))
            };
            for copy in 0..1 + rng.below(4) {
                let later = if copy == 0 { 0 } else { rng.below(8 * 60) as i64 * 1_000_000 };
                let event = Event {
                    event_id: event_id.clone(),
                    device_id: Cow::Borrowed("d"),
                    device_type: DeviceType::ALL[(id % 3) as usize],
                    timestamp: EventTime(first + later),
                    event_duration: (id % 17) as f64,
                    value: 1.0,
                    status: Status::Normal,
                    location: None,
                    firmware: None,
                };
                let position = Position { partition: rng.below(3) as u32, offset: (offset * 10) as u64 + copy };
                let minute = event.timestamp.minute();
                out.push((EventRow { position, event }, minute));
            }
        }
        out
    }

    /// The rule of the module header, naively: copies in (event time, partition, offset)
    /// order; a copy is kept unless its id was kept at most `horizon` minutes before.
    fn naive(copies: &[(EventRow, u64)], horizon: u64) -> Vec<(EventTime, Position)> {
        let mut sorted: Vec<&EventRow> = copies.iter().map(|(r, _)| r).collect();
        sorted.sort_by_key(|r| (r.event.timestamp, r.position));
        let mut kept_at: std::collections::HashMap<String, u64> = Default::default();
        let mut kept = Vec::new();
        for r in sorted {
            let (id, minute) = (format!("{:?}", r.event.event_id), r.event.timestamp.minute());
            if kept_at.get(&id).is_none_or(|&m| minute > m + horizon) {
                kept_at.insert(id, minute);
                kept.push((r.event.timestamp, r.position));
            }
        }
        kept.sort();
        kept
    }

    /// Containers cut from the copies (minutes interleaved, as the source's are): every row
    /// comes out once, under its minute, in arrival order within its minute, in vectors with
    /// no spare room; a container of one minute comes out as it is (not copied).
    #[test]
    fn by_minute_groups_every_row_once_in_arrival_order() {
        let rows: Vec<EventRow> = copies(4).into_iter().map(|(r, _)| r).collect();
        let key = |r: &EventRow| (r.position, r.event.timestamp);
        for size in [1, 7, 50, 400] {
            for container in rows.chunks(size) {
                let groups = by_minute(container.to_vec());
                let mut minutes: Vec<u64> = groups.iter().map(|(m, _)| *m).collect();
                minutes.sort_unstable();
                minutes.dedup();
                assert_eq!(minutes.len(), groups.len(), "one group per minute");
                for (minute, group) in &groups {
                    assert_eq!(group.len(), group.capacity(), "no spare room");
                    let want: Vec<_> =
                        container.iter().filter(|r| r.event.timestamp.minute() == *minute).map(key).collect();
                    assert_eq!(
                        group.iter().map(key).collect::<Vec<_>>(),
                        want,
                        "minute {minute}: its rows in arrival order"
                    );
                }
                assert_eq!(groups.iter().map(|(_, g)| g.len()).sum::<usize>(), container.len(), "every row once");
            }
        }
        let one: Vec<EventRow> =
            rows.iter().filter(|r| r.event.timestamp.minute() == rows[0].event.timestamp.minute()).cloned().collect();
        let at = one.as_ptr();
        let groups = by_minute(one);
        assert!(groups.len() == 1 && groups[0].1.as_ptr() == at, "a container of one minute is not copied");
    }

    /// Under 1, 2 and 4 workers, with each copy sent at its own minute and, so that
    /// containers hold rows of several minutes (as the source's do), at the start of its
    /// 5-minute block.
    #[test]
    fn keeps_the_first_copy_within_the_horizon_like_a_naive_pass_for_1_2_and_4_workers() {
        for seed in [1, 2, 3] {
            let input = copies(seed);
            let want = naive(&input, 3);
            assert!(want.len() > 300 && want.len() < input.len(), "the input has duplicates and ids kept twice");
            let coarse: Vec<(EventRow, u64)> = input.iter().map(|(r, m)| (r.clone(), m - m % 5)).collect();
            for (sent_at, input) in [("its minute", &input), ("its block", &coarse)] {
                for workers in [1, 2, 4] {
                    let rows = drive_stream(workers, input.clone(), |rows| {
                        let seeds = Vec::<Seed>::new().to_stream(rows.scope());
                        rows.dedup_by_event_id(seeds, 3, Arc::new(Counters::new())).rows
                    });
                    assert!(rows.iter().all(|(r, t)| r.event.timestamp.minute() == *t), "each row at its minute");
                    let mut got: Vec<(EventTime, Position)> =
                        rows.iter().map(|(r, _)| (r.event.timestamp, r.position)).collect();
                    got.sort();
                    assert_eq!(got, want, "seed {seed}, -w {workers}, each copy sent at {sent_at}");
                }
            }
        }
    }

    /// The generations decide like a naive map of every id ever kept, for random streams of
    /// ids over ascending minutes with gaps, at horizons 0, 1, 3 and 60.
    #[test]
    fn generations_remember_exactly_one_horizon() {
        let mut rng = Lcg(11);
        for horizon in [0, 1, 3, 60] {
            let mut gens = Generations::new(horizon);
            let mut naive: std::collections::HashMap<u64, u64> = Default::default();
            let mut minute = 0;
            for _ in 0..5_000 {
                minute += [0, 0, 0, 1, 1, 2, horizon, horizon + 1, 2 * horizon + 3][rng.below(9) as usize];
                gens.advance_to(minute);
                for _ in 0..rng.below(4) {
                    let id = rng.below(40);
                    let expected = match naive.get(&id) {
                        Some(&kept) if minute <= kept + horizon => false,
                        _ => {
                            naive.insert(id, minute);
                            true
                        }
                    };
                    let got = gens.keep(&EventId::from(format!("id-{id}")), minute);
                    assert_eq!(got, expected, "horizon {horizon}, minute {minute}, id {id}");
                }
            }
        }
    }

    #[test]
    fn routing_hash_is_pinned() {
        // XXH3-64, seed 0: known vectors of the specification's reference implementation.
        assert_eq!(stable_hash(""), 0x2d06800538d394c2);
        assert_eq!(stable_hash("a"), 0xe6c632b61e964e1f);
    }
}
