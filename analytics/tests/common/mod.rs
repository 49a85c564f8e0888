//! What the analytics tests share: events to order, and a table written as the engine lays
//! it out, through the engine's own table writer.
#![allow(dead_code)] // each test file uses its own part of this module

use std::collections::BTreeMap;
use std::path::Path;

use analytics::table::Table;

use connectors::schema::EventRow;
use connectors::schema::{DeviceType, Event, EventTime, Position, Status, MICROS_PER_DAY};
use connectors::sink::tables::{encode_parquet, partition_path};
use connectors::sink::{LocalStore, TableStore};

/// 2025-11-03, in days since 1970-01-01.
pub const DAY0: i64 = 20_395;

/// Event `i` (id, offset, second of the day) of type `ty` on `day` with `duration`.
pub fn event_row(i: usize, day: i64, ty: DeviceType, duration: f64) -> EventRow {
    EventRow {
        position: Position { partition: 0, offset: i as u64 },
        event: Event {
            event_id: format!("id-{i}").into(),
            device_id: "device-001".into(),
            device_type: ty,
            timestamp: EventTime(day * MICROS_PER_DAY + (i as i64 % 86_400) * 1_000_000),
            event_duration: duration,
            value: 1.0,
            status: Status::Normal,
            location: None,
            firmware: None,
        },
    }
}

/// Writes `rows` as the engine lays out a table: one part file per hive partition.
pub fn write_table<T: connectors::sink::Table>(store: &dyn TableStore, rows: &[T]) {
    let mut by_partition: BTreeMap<String, Vec<&T>> = BTreeMap::new();
    for r in rows {
        by_partition.entry(partition_path(r.partition_time(), T::DAILY)).or_default().push(r);
    }
    for (path, rows) in by_partition {
        let bytes = encode_parquet(&T::to_batch(&rows, EventTime(0))).unwrap();
        store.put(&format!("{}/{path}/part-00000.parquet", T::NAME), &bytes).unwrap();
    }
}

/// Whether `a` and `b` agree to 1e-12 relative.
pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
}

/// One (day, type)'s durations, in the order written.
pub type Group = (i64, DeviceType, Vec<f64>);

/// Writes an `events` table under `root` holding, for each `(day, type, n)` of `plan`, `n`
/// events with durations `duration(j, n)` for `j` in `0..n`; the table and each group.
pub fn write_groups(
    root: &Path, plan: &[(i64, DeviceType, usize)], duration: impl Fn(usize, usize) -> f64,
) -> (Table, Vec<Group>) {
    let (mut rows, mut groups) = (Vec::new(), Vec::new());
    for &(day, ty, n) in plan {
        let ds: Vec<f64> = (0..n).map(|j| duration(j, n)).collect();
        let first = rows.len();
        rows.extend(ds.iter().enumerate().map(|(j, d)| event_row(first + j, day, ty, *d)));
        groups.push((day, ty, ds));
    }
    write_table(&LocalStore::new(root).unwrap(), &rows);
    (Table::open(root.join("events").to_str().unwrap()).unwrap(), groups)
}

/// The header and records of CSV text.
pub fn csv_records(bytes: &[u8]) -> (Vec<String>, Vec<csv::StringRecord>) {
    let mut reader = csv::Reader::from_reader(bytes);
    let header = reader.headers().unwrap().iter().map(str::to_owned).collect();
    (header, reader.records().map(|r| r.unwrap()).collect())
}
