//! Routing records to workers a container at a time where the container allows it.
//!
//! Timely's [`Exchange`](timely::dataflow::channels::pact::Exchange) pact moves every record
//! into a buffer per target worker, one by one. Some streams arrive already grouped: dedup
//! emits a minute's rows in one session, and a minute lies in one hour, so a container of
//! `events` rows usually goes, whole, to the worker of its hour. [`whole_containers`] is the
//! same exchange (the same record goes to the same worker: `hash % workers`) that first checks
//! whether every record of a container goes to one worker and then hands over the container
//! itself, without copying its records; any other container is split record by record.
//! [`ByWorker`] builds such containers: records grouped by the worker they go to, so that a
//! stream whose records arrive mixed (the source's events, by id) is exchanged whole too.

use timely::communication::Push;
use timely::container::{CapacityContainerBuilder, ContainerBuilder, PushInto};
use timely::dataflow::channels::pact::DistributorPact;
use timely::dataflow::channels::pushers::exchange::Distributor;
use timely::dataflow::channels::Message;
use timely::progress::Stamp;

/// The worker of a record whose hash is `hash`, among `workers`: the same rule for
/// [`whole_containers`] and [`ByWorker`]. For a power of two, the remainder is taken with a
/// mask, as timely's own exchange does (a division costs tens of cycles per record).
fn worker_of(hash: u64, workers: usize) -> usize {
    match workers.is_power_of_two() {
        true => (hash & (workers as u64 - 1)) as usize,
        false => (hash % workers as u64) as usize,
    }
}

/// A [`Distributor`] that routes each record by `hash(record) % workers`, passing a container
/// whose records all go to one worker on whole.
pub struct WholeContainers<D, H> {
    builders: Vec<CapacityContainerBuilder<Vec<D>>>,
    hash: H,
}

impl<D: Clone + 'static, H: FnMut(&D) -> u64> Distributor<Vec<D>> for WholeContainers<D, H> {
    fn partition<T: Clone, P: Push<Message<T, Vec<D>>>>(
        &mut self, container: &mut Vec<D>, stamp: &Stamp<T>, pushers: &mut [P],
    ) {
        let workers = pushers.len();
        let hash = &mut self.hash;
        let mut target = |d: &D| worker_of(hash(d), workers);
        if let Some(first) = container.first().map(&mut target) {
            if container[1..].iter().all(|d| target(d) == first) {
                Message::push_at(container, stamp.clone(), &mut pushers[first]);
                return;
            }
        }
        for d in container.drain(..) {
            let t = target(&d);
            self.builders[t].push_into(d);
            while let Some(produced) = self.builders[t].extract() {
                Message::push_at(produced, stamp.clone(), &mut pushers[t]);
            }
        }
    }

    fn flush<T: Clone, P: Push<Message<T, Vec<D>>>>(&mut self, stamp: &Stamp<T>, pushers: &mut [P]) {
        for (builder, pusher) in self.builders.iter_mut().zip(pushers.iter_mut()) {
            while let Some(container) = builder.finish() {
                Message::push_at(container, stamp.clone(), pusher);
            }
        }
    }

    fn relax(&mut self) {
        for builder in &mut self.builders {
            builder.relax();
        }
    }
}

/// The pact that routes each record to worker `hash(record) % workers`, whole containers
/// where they allow it (see the module header).
pub type WholeContainersPact<D, H> = DistributorPact<Box<dyn FnOnce(usize) -> WholeContainers<D, H>>>;

/// Routes each record to worker `hash(record) % workers`, whole containers where they allow it.
pub fn whole_containers<D: Clone + 'static, H: FnMut(&D) -> u64 + 'static>(hash: H) -> WholeContainersPact<D, H> {
    DistributorPact(Box::new(move |workers| WholeContainers {
        builders: std::iter::repeat_with(Default::default).take(workers).collect(),
        hash,
    }))
}

/// Bytes of a container [`ByWorker`] builds: 8 times timely's usual 8 KiB, as its containers
/// travel whole (dedup and the sink hold on to them) and each one costs a message, an
/// allocation and the activations that move it. On the week benchmark at `-w 2`, 256 KiB ran
/// in 0.976x the wall time of 64 KiB but peaked at 153 MiB, past the 150 MB budget.
const CONTAINER_BYTES: usize = 1 << 16;

/// Records in a container of [`CONTAINER_BYTES`].
fn capacity<D>() -> usize {
    (CONTAINER_BYTES / std::mem::size_of::<D>().max(1)).max(1)
}

/// Containers of records grouped by the worker `hash(record) % workers` they go to, of up to
/// [`CONTAINER_BYTES`] each, for a stream exchanged by [`whole_containers`] with the same hash.
/// A container is allocated whole for its first record, and [`ByWorker::finish`] gives the
/// partly filled ones back without their unused capacity: a live run's batches may hold a
/// few messages, and operators downstream hold containers for minutes.
pub struct ByWorker<D, H> {
    containers: Vec<Vec<D>>,
    hash: H,
}

impl<D, H: Fn(&D) -> u64> ByWorker<D, H> {
    /// Containers for `workers` workers, records routed by `hash`.
    pub fn new(workers: usize, hash: H) -> Self {
        ByWorker { containers: std::iter::repeat_with(Vec::new).take(workers.max(1)).collect(), hash }
    }

    /// Adds `d` to the container of its worker; returns that container once it is full.
    pub fn push(&mut self, d: D) -> Option<Vec<D>> {
        let workers = self.containers.len();
        // One worker: no record needs hashing.
        let container = match workers {
            1 => &mut self.containers[0],
            _ => &mut self.containers[worker_of((self.hash)(&d), workers)],
        };
        if container.capacity() == 0 {
            container.reserve_exact(capacity::<D>());
        }
        container.push(d);
        (container.len() >= container.capacity()).then(|| std::mem::take(container))
    }

    /// Takes the containers that are not full, leaving none, each without its unused
    /// capacity (the allocator shrinks a block in place).
    pub fn finish(&mut self) -> impl Iterator<Item = Vec<D>> + '_ {
        self.containers.iter_mut().filter(|c| !c.is_empty()).map(|c| {
            let mut c = std::mem::take(c);
            c.shrink_to_fit();
            c
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use timely::dataflow::operators::{Concat, Operator, ToStream};

    use super::{whole_containers, ByWorker};

    /// Under 1, 2, 3 and 4 workers, each container holds records of one worker only, full
    /// ones come out as they fill, and every record comes out once.
    #[test]
    fn by_worker_groups_every_record_once() {
        let capacity = super::capacity::<u64>();
        for workers in [1u64, 2, 3, 4] {
            let mut grouped = ByWorker::new(workers as usize, |x: &u64| x / 7);
            let mut containers: Vec<Vec<u64>> = (0..10_000u64).filter_map(|x| grouped.push(x)).collect();
            assert!(containers.iter().all(|c| c.len() == capacity), "only full containers come out while pushing");
            let partial: Vec<Vec<u64>> = grouped.finish().collect();
            assert!(partial.iter().all(|c| c.capacity() == c.len()), "partly filled containers keep no spare room");
            containers.extend(partial);
            assert_eq!(grouped.finish().count(), 0, "finish leaves nothing");
            for c in &containers {
                assert!(c.iter().all(|x| (x / 7) % workers == (c[0] / 7) % workers), "{workers} workers: {c:?}");
            }
            let mut all: Vec<u64> = containers.into_iter().flatten().collect();
            all.sort_unstable();
            assert_eq!(all, (0..10_000).collect::<Vec<_>>(), "{workers} workers");
        }
    }

    /// Under 1, 2, 3 and 4 workers, every record arrives once, at worker `hash % workers`,
    /// whether its container goes whole (all records to one worker) or is split (4: a mask
    /// other than 1, as powers of two take the remainder with a mask).
    #[test]
    fn every_record_reaches_its_worker_once() {
        for workers in [1, 2, 3, 4] {
            let got = Arc::new(Mutex::new(Vec::new()));
            let sink = Arc::clone(&got);
            timely::execute(timely::Config::process(workers), move |worker| {
                let (me, sink) = (worker.index(), Arc::clone(&sink));
                worker.dataflow::<u64, _, _>(|scope| {
                    // Worker w sends a container of multiples of 3 plus w (one target when
                    // workers = 3), then a mixed one.
                    let uniform: Vec<u64> = (0..50).map(|i| 3 * i + me as u64).collect();
                    let mixed: Vec<u64> = (1000..1040).map(|i| i + 100 * me as u64).collect();
                    let sent = uniform.into_iter().to_stream(scope).concat(mixed.into_iter().to_stream(scope));
                    sent.sink(whole_containers(|x: &u64| *x), "Collect", move |(input, _frontier)| {
                        input.for_each(|_, data| sink.lock().unwrap().extend(data.drain(..).map(|x| (me, x))));
                    });
                });
            })
            .expect("the dataflow runs");
            let mut got = got.lock().unwrap().clone();
            for &(at, x) in &got {
                assert_eq!(at as u64, x % workers as u64, "{x} at worker {at} of {workers}");
            }
            let mut values: Vec<u64> = got.drain(..).map(|(_, x)| x).collect();
            values.sort_unstable();
            let mut expected: Vec<u64> = (0..workers as u64)
                .flat_map(|w| (0..50).map(move |i| 3 * i + w).chain((1000..1040).map(move |i| i + 100 * w)))
                .collect();
            expected.sort_unstable();
            assert_eq!(values, expected, "{workers} workers");
        }
    }
}
