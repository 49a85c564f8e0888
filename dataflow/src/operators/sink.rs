//! The table sink: writes a table's rows as Parquet part files, one hive partition at a time.
//!
//! Semantics: the rows of one hive partition (an hour, or a day for `daily_p95`) are written
//! once, when the frontier has passed the end of that period, as `part-NNNNN.parquet` files
//! of at most `rows_per_file` rows each, rows sorted by the table's natural key. Since the
//! period's rows are then complete and sorted, every file's name and contents (but the
//! `processing_time` column) are a function of the input alone, whatever the worker count.
//!
//! Rows are routed to workers by period, so each file has exactly one writer.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use connectors::schema::{EventTime, MICROS_PER_DAY, MICROS_PER_HOUR, MICROS_PER_MINUTE};
use connectors::sink::tables::{encode_parquet, partition_path};
use connectors::sink::{Table, TableStore};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::Operator;
use timely::dataflow::StreamVec;

use crate::counters::{table_index, Counters};

/// How the sink writes.
#[derive(Clone)]
pub struct SinkConfig {
    /// Where part files go.
    pub store: Arc<dyn TableStore>,
    /// Largest number of rows in one part file.
    pub rows_per_file: usize,
    /// Shared counters.
    pub counters: Arc<Counters>,
}

/// The sink operator on a stream of table rows.
pub trait WriteTable<R> {
    /// Writes the rows to their table; see the module header.
    fn write_table(self, config: SinkConfig);
}

impl<'s, R> WriteTable<R> for StreamVec<'s, u64, R>
where
    R: Table + timely::ExchangeData,
{
    fn write_table(self, config: SinkConfig) {
        let period_micros = if R::DAILY { MICROS_PER_DAY } else { MICROS_PER_HOUR };
        let period = move |r: &R| r.partition_time().micros().div_euclid(period_micros);
        let exchange = Exchange::new(move |r: &R| period(r) as u64);
        // Per period, the containers of rows received (whole containers are kept when they
        // hold one period, as they usually do, so rows are not moved one by one).
        let mut buffered: BTreeMap<i64, Vec<Vec<R>>> = BTreeMap::new();
        let table = table_index(R::NAME);
        self.sink(exchange, &format!("Write {}", R::NAME), move |(input, frontier)| {
            input.for_each(|_cap, data| {
                let Some(first) = data.first().map(&period) else { return };
                if data.iter().all(|r| period(r) == first) {
                    buffered.entry(first).or_default().push(std::mem::take(data));
                } else {
                    for row in data.drain(..) {
                        let rows = buffered.entry(period(&row)).or_default();
                        match rows.last_mut() {
                            Some(last) => last.push(row),
                            None => rows.push(vec![row]),
                        }
                    }
                }
            });
            // A period is complete when no time before its end can still arrive.
            while let Some(entry) = buffered.first_entry() {
                let end_minute = ((*entry.key() + 1) * period_micros / MICROS_PER_MINUTE) as u64;
                if frontier.less_than(&end_minute) {
                    break;
                }
                let start = EventTime(*entry.key() * period_micros);
                let containers = entry.remove();
                let mut rows: Vec<&R> = containers.iter().flatten().collect();
                rows.sort_unstable_by_key(|r| r.sort_key());
                let folder = format!("{}/{}", R::NAME, partition_path(start, R::DAILY));
                let now = EventTime(chrono::Utc::now().timestamp_micros());
                for (i, chunk) in rows.chunks(config.rows_per_file.max(1)).enumerate() {
                    let bytes = encode_parquet(&R::to_batch(chunk, now))
                        .unwrap_or_else(|e| panic!("cannot encode {folder} as Parquet: {e}"));
                    let path = format!("{folder}/part-{i:05}.parquet");
                    if let Err(e) = config.store.put(&path, &bytes) {
                        panic!("cannot write {path}: {e}");
                    }
                    config.counters.files_written.fetch_add(1, Relaxed);
                    config.counters.bytes_written.fetch_add(bytes.len() as u64, Relaxed);
                    config.counters.table_files[table].fetch_add(1, Relaxed);
                    config.counters.table_bytes[table].fetch_add(bytes.len() as u64, Relaxed);
                }
                config.counters.rows_written[table].fetch_add(rows.len() as u64, Relaxed);
            }
        });
    }
}
