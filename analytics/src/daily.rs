//! The exact daily p95 of the design, from the `events` table in one batch pass.
//!
//! Per UTC date and device type, over the distinct accepted events (the `events` table is
//! already deduplicated), and only where there are at least [`MIN_EVENTS`]:
//! μ = mean, σ = sample standard deviation (n − 1), kept = values with |x − μ| ≤ 3σ,
//! p95 = the kept value at 1-based rank ⌈0.95·k⌉ in ascending order.

use std::collections::BTreeMap;

use arrow_array::types::Int32Type;
use arrow_array::{Array, DictionaryArray, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use connectors::schema::{DeviceType, MICROS_PER_DAY};
use connectors::sink::DailyRow;

use crate::table::{Columns, DateRange, Table};
use crate::{p95_nearest_rank_unsorted, sum};

/// The least number of events a (date, type) needs to get a row (the engine's rule).
pub const MIN_EVENTS: usize = connectors::sink::DAILY_MIN_EVENTS as usize;

/// The columns of `events` the daily p95 reads (`device_type` as a dictionary).
const COLUMNS: Columns<'static> =
    Columns { names: Some(&["device_type", "timestamp", "event_duration"]), dictionary: &["device_type"] };

/// Durations grouped by (days since epoch, device type).
pub type Groups = BTreeMap<(i32, DeviceType), Vec<f64>>;

const TYPES: usize = DeviceType::ALL.len();

/// Moves `values` to the end of `into` (without a copy when `into` is empty).
fn append(into: &mut Vec<f64>, values: &mut Vec<f64>) {
    if into.is_empty() {
        std::mem::swap(into, values);
    } else {
        into.append(values);
    }
}

/// Hands one day's per-type durations over to `groups`.
fn flush(day: i32, buckets: &mut [Vec<f64>; TYPES], groups: &mut Groups) {
    for (ty, bucket) in DeviceType::ALL.iter().zip(buckets.iter_mut()) {
        if !bucket.is_empty() {
            append(groups.entry((day, *ty)).or_default(), bucket);
        }
    }
}

/// Groups the durations of one file's batches, in row order.
fn group_file(batches: Vec<RecordBatch>) -> crate::Result<Groups> {
    let mut groups = Groups::new();
    // A file's rows are (nearly) all of one day: collect per type until the day changes.
    let mut day: Option<i32> = None;
    let mut buckets: [Vec<f64>; TYPES] = Default::default();
    for batch in batches {
        let types = batch
            .column(0)
            .as_any()
            .downcast_ref::<DictionaryArray<Int32Type>>()
            .ok_or_else(|| crate::Error::Table("device_type is not a string column".into()))?;
        let names = types
            .values()
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| crate::Error::Table("device_type is not a string column".into()))?;
        let times = batch
            .column(1)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .ok_or_else(|| crate::Error::Table("timestamp is not a microsecond timestamp column".into()))?;
        let durations = batch
            .column(2)
            .as_any()
            .downcast_ref::<Float64Array>()
            .ok_or_else(|| crate::Error::Table("event_duration is not a float64 column".into()))?;
        if types.null_count() + times.null_count() + durations.null_count() > 0 {
            return Err(crate::Error::Table("a required column is null in the events table".into()));
        }
        // The type of each distinct dictionary value (None: not a device type).
        let kind: Vec<Option<usize>> = (0..names.len())
            .map(|j| {
                if names.is_null(j) {
                    None
                } else {
                    DeviceType::ALL.iter().position(|t| t.as_str() == names.value(j))
                }
            })
            .collect();
        let (keys, times, durations) = (types.keys().values(), times.values(), durations.values());
        for i in 0..batch.num_rows() {
            let key = keys[i] as usize;
            let Some(ty) = kind[key] else {
                return Err(crate::Error::Table(format!(
                    "unknown device_type {:?} in the events table",
                    names.value(key)
                )));
            };
            let d = times[i].div_euclid(MICROS_PER_DAY) as i32;
            if day != Some(d) {
                if let Some(previous) = day {
                    flush(previous, &mut buckets, &mut groups);
                }
                day = Some(d);
            }
            buckets[ty].push(durations[i]);
        }
    }
    if let Some(d) = day {
        flush(d, &mut buckets, &mut groups);
    }
    Ok(groups)
}

/// Durations of the `events` table grouped by (days since epoch, device type), each group
/// in file order.
pub fn durations_by_day(events: &Table, range: DateRange) -> crate::Result<Groups> {
    let files = events.committed_files(range)?;
    let mut groups = Groups::new();
    for file_groups in events.map_files(&files, COLUMNS, group_file)? {
        for (key, mut durations) in file_groups {
            append(groups.entry(key).or_default(), &mut durations);
        }
    }
    // Dates outside the range can appear when a file spans them; keep the range exact.
    groups.retain(|(day, _), _| range.contains(date_of(*day)));
    Ok(groups)
}

/// The UTC date of a day number.
pub fn date_of(day: i32) -> chrono::NaiveDate {
    chrono::DateTime::from_timestamp(i64::from(day) * 86_400, 0).expect("in range").date_naive()
}

/// μ and the sample σ (n − 1) of `durations` (at least 2 of them), summed with compensation.
pub fn mean_and_stddev(durations: &[f64]) -> (f64, f64) {
    let n = durations.len() as f64;
    let mean = sum(durations.iter().copied()) / n;
    (mean, (sum(durations.iter().map(|x| (x - mean) * (x - mean))) / (n - 1.0)).sqrt())
}

/// Whether the 3σ filter keeps `x`: |x − μ| ≤ 3σ.
pub fn within_3_sigma(x: f64, mean: f64, stddev: f64) -> bool {
    (x - mean).abs() <= 3.0 * stddev
}

/// The daily row of one group, `None` below [`MIN_EVENTS`].
pub fn daily_row(date: i32, device_type: DeviceType, durations: &[f64]) -> Option<DailyRow> {
    let n = durations.len();
    if n < MIN_EVENTS {
        return None;
    }
    let (mean, stddev) = mean_and_stddev(durations);
    let mut kept: Vec<f64> = durations.iter().copied().filter(|x| within_3_sigma(*x, mean, stddev)).collect();
    let k = kept.len();
    let avg_kept_duration = sum(kept.iter().copied()) / k as f64;
    Some(DailyRow {
        date,
        device_type,
        event_count: n as i64,
        kept_count: k as i64,
        outliers_removed: (n - k) as i64,
        mean_duration: mean,
        stddev_duration: stddev,
        p95_duration: p95_nearest_rank_unsorted(&mut kept),
        avg_kept_duration,
    })
}

/// The daily p95 rows of the `events` table, for dates in `range`, ordered by date and type.
pub fn daily_p95(events: &Table, range: DateRange) -> crate::Result<Vec<DailyRow>> {
    let groups: Vec<_> = durations_by_day(events, range)?.into_iter().collect();
    let rows = crate::parallel_map(&groups, |((day, ty), durations)| Ok(daily_row(*day, *ty, durations)))?;
    Ok(rows.into_iter().flatten().collect())
}

/// The columns of the `daily_p95` table, in order.
pub const DAILY_COLUMNS: [&str; 9] = [
    "date",
    "device_type",
    "event_count",
    "kept_count",
    "outliers_removed",
    "mean_duration",
    "stddev_duration",
    "p95_duration",
    "avg_kept_duration",
];

/// Writes rows as CSV with a header (the `daily_p95` column names, dates as YYYY-MM-DD).
pub fn write_csv<W: std::io::Write>(rows: &[DailyRow], out: W) -> crate::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(DAILY_COLUMNS)?;
    for r in rows {
        w.write_record([
            date_of(r.date).to_string(),
            r.device_type.to_string(),
            r.event_count.to_string(),
            r.kept_count.to_string(),
            r.outliers_removed.to_string(),
            // `{}` of an f64 is the shortest string that parses back to the same value.
            r.mean_duration.to_string(),
            r.stddev_duration.to_string(),
            r.p95_duration.to_string(),
            r.avg_kept_duration.to_string(),
        ])?;
    }
    w.flush()?;
    Ok(())
}

/// Prints rows as an aligned text table.
pub fn print_table(rows: &[DailyRow]) {
    println!(
        "{:<10}  {:<11}  {:>8}  {:>8}  {:>8}  {:>10}  {:>10}  {:>10}  {:>10}",
        "date", "device_type", "events", "kept", "outliers", "mean", "stddev", "p95", "avg_kept"
    );
    for r in rows {
        println!(
            "{:<10}  {:<11}  {:>8}  {:>8}  {:>8}  {:>10.3}  {:>10.3}  {:>10.2}  {:>10.3}",
            date_of(r.date).to_string(),
            r.device_type.as_str(),
            r.event_count,
            r.kept_count,
            r.outliers_removed,
            r.mean_duration,
            r.stddev_duration,
            r.p95_duration,
            r.avg_kept_duration
        );
    }
}
