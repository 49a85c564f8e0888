//! The dataflow's operators, one per file, each with a header stating what it means.
//!
//! In pipeline order: [`source`] (partitions read and parsed on threads of their own, then
//! validated and checked for lateness: `source/prefetch.rs`, `validate.rs`, `lateness.rs`), [`seed`]
//! (a restart's state, read back from the committed events), [`dedup`], [`windows`], [`daily_p95`], [`sink`] for every table, and [`commit`] for the
//! files of all tables.
//! Dataflow time is the event-time minute (`u64` minutes since the Unix epoch).
//!
//! Every operator is an extension trait: on a `Scope` for the two that start streams
//! ([`source::PartitionSource`], [`seed::SeedEvents`]), on the stream or collection it
//! consumes for the rest. Their unit tests drive one operator alone (`harness`, compiled for tests only).

pub mod commit;
pub mod daily_p95;
pub mod dedup;
pub mod seed;
pub mod sink;
pub mod source;
pub mod windows;

/// Drives one operator alone, for the operators' unit tests: a timely computation of `workers`
/// threads in this process, an insert-only input collection, and every output record with
/// the time it was emitted at.
#[cfg(test)]
pub(crate) mod harness {
    use std::sync::{Arc, Mutex};

    use differential_dataflow::collection::vec::Collection as VecCollection;
    use differential_dataflow::AsCollection;
    use timely::dataflow::channels::pact::Pipeline;
    use timely::dataflow::operators::vec::Input;
    use timely::dataflow::operators::Operator;
    use timely::dataflow::StreamVec;

    /// Feeds `records` into an insert-only collection, each at its time (minute) and record
    /// `i` on worker `i % workers` (so every worker count splits the input differently),
    /// applies `operator`, and returns what it emitted with the emission times, in no order.
    pub fn drive<D, R>(
        workers: usize, records: Vec<(D, u64)>,
        operator: for<'s> fn(VecCollection<'s, u64, D>) -> StreamVec<'s, u64, R>,
    ) -> Vec<(R, u64)>
    where
        D: timely::ExchangeData + Clone + Sync,
        R: Clone + Send + 'static,
    {
        let updates = records.into_iter().map(|(d, t)| ((d, t, 1isize), t)).collect();
        drive_stream(workers, updates, move |stream| operator(stream.as_collection()))
    }

    /// Like [`drive`], for an operator on a stream: feeds each record at its time, and steps
    /// the worker at every new time, so that the operator sees the frontier advance.
    pub fn drive_stream<D, R, F>(workers: usize, records: Vec<(D, u64)>, operator: F) -> Vec<(R, u64)>
    where
        D: timely::ExchangeData + Clone + Sync,
        R: Clone + Send + 'static,
        F: for<'s> Fn(StreamVec<'s, u64, D>) -> StreamVec<'s, u64, R> + Send + Sync + 'static,
    {
        let out = Arc::new(Mutex::new(Vec::new()));
        let (records, collected) = (Arc::new(records), Arc::clone(&out));
        timely::execute(timely::Config::process(workers), move |worker| {
            let (index, peers) = (worker.index(), worker.peers());
            let collected = Arc::clone(&collected);
            let mut input = worker.dataflow::<u64, _, _>(|scope| {
                let (input, stream) = scope.new_input::<D>();
                operator(stream).sink(Pipeline, "Collect", move |(input, _)| {
                    input.for_each(|cap, data| {
                        let time = *cap.least().expect("a container travels at a time");
                        collected.lock().unwrap().extend(data.drain(..).map(|r| (r, time)));
                    })
                });
                input
            });
            let mut mine: Vec<(D, u64)> =
                records.iter().enumerate().filter(|(i, _)| i % peers == index).map(|(_, r)| r.clone()).collect();
            mine.sort_by_key(|(_, t)| *t);
            for (record, time) in mine {
                if time > *input.time() {
                    // Let the operator see the frontier move, time by time, as a run would.
                    input.advance_to(time);
                    for _ in 0..3 {
                        worker.step();
                    }
                }
                input.send(record);
            }
            input.close();
        })
        .expect("the computation runs");
        let out = std::mem::take(&mut *out.lock().unwrap());
        out
    }

    /// A valid event message: id `e-<id>`, event time `micros`, duration `id % 300 + 0.5`.
    pub fn event_line(id: u64, micros: i64) -> String {
        let t = connectors::schema::EventTime(micros);
        format!(
            r#"{{"event_id":"e-{id}","device_id":"d-{}","device_type":"temperature","timestamp":"{t}","event_duration":{}.5,"value":1.0,"status":"normal","metadata":{{"location":"zone-A","firmware":"v1"}}}}"#,
            id % 7,
            id % 300
        )
    }

    /// A small deterministic generator (an LCG) for the crate's unit tests, so a failing case
    /// can be replayed.
    pub struct Lcg(pub u64);

    impl Lcg {
        /// A number in `0..n`.
        pub fn below(&mut self, n: u64) -> u64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (self.0 >> 33) % n
        }
    }
}
