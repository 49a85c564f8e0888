//! The five output tables: their rows' Arrow schemas, hive partitions and Parquet encoding
//! (the source's rows, `EventRow`, `LateRow` and `RejectedRow`, are defined with the event in
//! [`crate::schema`]; the aggregates' rows here).
//!
//! | table | one row per | partitioned by the hour of |
//! |---|---|---|
//! | `events` | accepted, deduplicated event | its event time |
//! | `windows` | (1-minute window, device type) with at least one event | `window_start` |
//! | `daily_p95` | (UTC date, device type) with at least 500 distinct events | `date` (day only) |
//! | `late` | accepted event that missed its partition's watermark | the watermark it missed |
//! | `rejected` | message that failed validation | its partition's watermark on arrival |
//!
//! Every timestamp column is microseconds, UTC. `processing_time` (wall clock at write) is
//! the only column that depends on when the engine ran. Rows within a file are sorted by
//! the table's natural key, so a file's contents are a function of the input alone.

use std::sync::Arc;

use arrow_array::builder::{BinaryBuilder, StringBuilder};
use arrow_array::{
    Array, ArrayRef, Date32Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::errors::ParquetError;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};

use crate::calendar::{civil_from_days, days_from_civil};
use crate::schema::{
    DeviceType, EventRow, EventTime, LateRow, OwnedEvent, Position, RejectedRow, MICROS_PER_DAY, MICROS_PER_HOUR,
    UUID_LEN,
};

/// A row type of one output table.
pub trait Table: Sized {
    /// The table's folder name under the output root.
    const NAME: &'static str;
    /// The Arrow schema of the table's files (hive partition columns are not in the files).
    fn schema() -> SchemaRef;
    /// Columns of `rows` in schema order; `processing_time` is the same for every row.
    fn to_batch(rows: &[&Self], processing_time: EventTime) -> RecordBatch;
    /// The instant whose hour (or day, for `daily_p95`) names the row's hive partition.
    fn partition_time(&self) -> EventTime;
    /// Whether the table is partitioned by day only (no `hour=` level).
    const DAILY: bool = false;
    /// The key that orders rows within a file (unique per row).
    type SortKey: Ord;
    /// This row's sort key.
    fn sort_key(&self) -> Self::SortKey;
}

/// Every table the engine writes, by name, in the order its counters and reports use: the
/// one list of them (each name is its row type's [`Table::NAME`]).
pub const TABLE_NAMES: [&str; 5] = [
    <EventRow as Table>::NAME,
    <WindowRow as Table>::NAME,
    <DailyRow as Table>::NAME,
    <LateRow as Table>::NAME,
    <RejectedRow as Table>::NAME,
];

/// The hive partition folder (`year=YYYY/month=MM/day=DD[/hour=HH]`) of an instant.
pub fn partition_path(t: EventTime, daily: bool) -> String {
    let micros = t.micros();
    let (y, m, d) = civil_from_days(micros.div_euclid(MICROS_PER_DAY));
    if daily {
        format!("year={y:04}/month={m:02}/day={d:02}")
    } else {
        let h = micros.rem_euclid(MICROS_PER_DAY) / MICROS_PER_HOUR;
        format!("year={y:04}/month={m:02}/day={d:02}/hour={h:02}")
    }
}

/// The end of the hive partition a table file is in: the instant after the hour (or the day,
/// for a folder without `hour=`) that [`partition_path`] named; `None` if `path` has no such
/// folder. Every row of the file has a partition time before it.
pub fn partition_end(path: &str) -> Option<EventTime> {
    let (mut year, mut month, mut day, mut hour) = (None, None, None, None);
    for segment in path.split('/') {
        let Some((key, value)) = segment.split_once('=') else { continue };
        let slot = match key {
            "year" => &mut year,
            "month" => &mut month,
            "day" => &mut day,
            "hour" => &mut hour,
            _ => continue,
        };
        *slot = Some(value.parse::<i64>().ok()?);
    }
    let (y, m, d) = (year?, month?, day?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hour.is_some_and(|h| !(0..24).contains(&h)) {
        return None;
    }
    let start = days_from_civil(y, m, d) * MICROS_PER_DAY;
    Some(EventTime(match hour {
        Some(h) => start + (h + 1) * MICROS_PER_HOUR,
        None => start + MICROS_PER_DAY,
    }))
}

/// Statistics of one 1-minute tumbling window `[window_start, window_start + 60 s)` of one type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowRow {
    /// Start of the window.
    pub window_start: EventTime,
    /// Device type.
    pub device_type: DeviceType,
    /// Number of distinct accepted events in the window.
    pub event_count: i64,
    /// Mean `event_duration`.
    pub avg_duration: f64,
    /// Smallest `event_duration`.
    pub min_duration: f64,
    /// Largest `event_duration`.
    pub max_duration: f64,
    /// Mean `value`.
    pub avg_value: f64,
    /// Nearest-rank 95th percentile of `event_duration` (1-based rank ⌈0.95·n⌉).
    pub p95_duration: f64,
}

/// The least number of distinct accepted events a (date, type) needs to get a [`DailyRow`]
/// (the product's rule; the engine and `analytics` both read it from here).
pub const DAILY_MIN_EVENTS: u64 = 500;

/// The daily 3-sigma-filtered p95 of one device type on one UTC date.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DailyRow {
    /// Days since 1970-01-01.
    pub date: i32,
    /// Device type.
    pub device_type: DeviceType,
    /// Distinct accepted events of the type that day (at least 500).
    pub event_count: i64,
    /// Events with |duration − mean| ≤ 3·stddev.
    pub kept_count: i64,
    /// `event_count − kept_count`.
    pub outliers_removed: i64,
    /// Mean `event_duration` of all events.
    pub mean_duration: f64,
    /// Sample standard deviation (n − 1) of all events.
    pub stddev_duration: f64,
    /// Nearest-rank 95th percentile of the kept durations.
    pub p95_duration: f64,
    /// Mean of the kept durations.
    pub avg_kept_duration: f64,
}

fn ts_field(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), nullable)
}

fn ts_array(values: impl Iterator<Item = i64>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from_iter_values(values).with_timezone("UTC"))
}

fn f64_array(values: impl Iterator<Item = f64>) -> ArrayRef {
    Arc::new(Float64Array::from_iter_values(values))
}

fn i64_array(values: impl Iterator<Item = i64>) -> ArrayRef {
    Arc::new(Int64Array::from_iter_values(values))
}

fn str_array<'a>(values: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(values.map(Some).collect::<StringArray>())
}

fn event_fields() -> Vec<Field> {
    vec![
        Field::new("event_id", DataType::Utf8, false),
        Field::new("device_id", DataType::Utf8, false),
        Field::new("device_type", DataType::Utf8, false),
        ts_field("timestamp", false),
        Field::new("event_duration", DataType::Float64, false),
        Field::new("value", DataType::Float64, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("location", DataType::Utf8, true),
        Field::new("firmware", DataType::Utf8, true),
        Field::new("partition", DataType::Int32, false),
        Field::new("offset", DataType::Int64, false),
    ]
}

/// The event columns, built in one pass over the rows (a row is read once, not once per
/// column: a part file's rows do not fit in a cache).
fn event_columns<'a>(rows: impl ExactSizeIterator<Item = (&'a Position, &'a OwnedEvent)>) -> Vec<ArrayRef> {
    let n = rows.len();
    let strings = || StringBuilder::with_capacity(n, n * 12);
    let (mut id, mut device_id, mut device_type, mut status, mut location, mut firmware) =
        (StringBuilder::with_capacity(n, n * UUID_LEN), strings(), strings(), strings(), strings(), strings());
    let (mut timestamp, mut duration, mut value, mut partition, mut offset) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let mut buf = [0; UUID_LEN];
    for (p, e) in rows {
        id.append_value(e.event_id.as_str(&mut buf));
        device_id.append_value(&e.device_id);
        device_type.append_value(e.device_type.as_str());
        timestamp.push(e.timestamp.micros());
        duration.push(e.event_duration);
        value.push(e.value);
        status.append_value(e.status.as_str());
        location.append_option(e.location.as_deref());
        firmware.append_option(e.firmware.as_deref());
        partition.push(p.partition as i32);
        offset.push(p.offset as i64);
    }
    vec![
        Arc::new(id.finish()),
        Arc::new(device_id.finish()),
        Arc::new(device_type.finish()),
        Arc::new(TimestampMicrosecondArray::from(timestamp).with_timezone("UTC")),
        Arc::new(Float64Array::from(duration)),
        Arc::new(Float64Array::from(value)),
        Arc::new(status.finish()),
        Arc::new(location.finish()),
        Arc::new(firmware.finish()),
        Arc::new(Int32Array::from(partition)),
        Arc::new(Int64Array::from(offset)),
    ]
}

fn batch(schema: SchemaRef, columns: Vec<ArrayRef>) -> RecordBatch {
    RecordBatch::try_new(schema, columns).expect("columns are built in schema order")
}

impl Table for EventRow {
    const NAME: &'static str = "events";
    fn schema() -> SchemaRef {
        let mut fields = event_fields();
        fields.push(ts_field("processing_time", false));
        Arc::new(Schema::new(fields))
    }
    fn to_batch(rows: &[&Self], processing_time: EventTime) -> RecordBatch {
        let mut cols = event_columns(rows.iter().map(|r| (&r.position, &r.event)));
        cols.push(ts_array(rows.iter().map(|_| processing_time.micros())));
        batch(Self::schema(), cols)
    }
    fn partition_time(&self) -> EventTime {
        self.event.timestamp
    }
    type SortKey = (EventTime, Position);
    fn sort_key(&self) -> Self::SortKey {
        (self.event.timestamp, self.position)
    }
}

impl Table for LateRow {
    const NAME: &'static str = "late";
    fn schema() -> SchemaRef {
        let mut fields = event_fields();
        fields.push(ts_field("watermark", false));
        fields.push(ts_field("processing_time", false));
        Arc::new(Schema::new(fields))
    }
    fn to_batch(rows: &[&Self], processing_time: EventTime) -> RecordBatch {
        let mut cols = event_columns(rows.iter().map(|r| (&r.position, &r.event)));
        cols.push(ts_array(rows.iter().map(|r| r.watermark.micros())));
        cols.push(ts_array(rows.iter().map(|_| processing_time.micros())));
        batch(Self::schema(), cols)
    }
    fn partition_time(&self) -> EventTime {
        EventTime(self.watermark.micros().max(0))
    }
    type SortKey = Position;
    fn sort_key(&self) -> Self::SortKey {
        self.position
    }
}

impl Table for RejectedRow {
    const NAME: &'static str = "rejected";
    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("partition", DataType::Int32, false),
            Field::new("offset", DataType::Int64, false),
            Field::new("reason", DataType::Utf8, false),
            Field::new("raw", DataType::Binary, false),
            ts_field("processing_time", false),
        ]))
    }
    fn to_batch(rows: &[&Self], processing_time: EventTime) -> RecordBatch {
        let mut raw = BinaryBuilder::new();
        for r in rows {
            raw.append_value(&r.raw);
        }
        batch(
            Self::schema(),
            vec![
                Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.position.partition as i32))),
                i64_array(rows.iter().map(|r| r.position.offset as i64)),
                str_array(rows.iter().map(|r| r.reason.as_str())),
                Arc::new(raw.finish()),
                ts_array(rows.iter().map(|_| processing_time.micros())),
            ],
        )
    }
    fn partition_time(&self) -> EventTime {
        self.filed_under
    }
    type SortKey = Position;
    fn sort_key(&self) -> Self::SortKey {
        self.position
    }
}

impl Table for WindowRow {
    const NAME: &'static str = "windows";
    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            ts_field("window_start", false),
            ts_field("window_end", false),
            Field::new("device_type", DataType::Utf8, false),
            Field::new("event_count", DataType::Int64, false),
            Field::new("avg_duration", DataType::Float64, false),
            Field::new("min_duration", DataType::Float64, false),
            Field::new("max_duration", DataType::Float64, false),
            Field::new("avg_value", DataType::Float64, false),
            Field::new("p95_duration", DataType::Float64, false),
            ts_field("processing_time", false),
        ]))
    }
    fn to_batch(rows: &[&Self], processing_time: EventTime) -> RecordBatch {
        batch(
            Self::schema(),
            vec![
                ts_array(rows.iter().map(|r| r.window_start.micros())),
                ts_array(rows.iter().map(|r| r.window_start.micros() + crate::schema::MICROS_PER_MINUTE)),
                str_array(rows.iter().map(|r| r.device_type.as_str())),
                i64_array(rows.iter().map(|r| r.event_count)),
                f64_array(rows.iter().map(|r| r.avg_duration)),
                f64_array(rows.iter().map(|r| r.min_duration)),
                f64_array(rows.iter().map(|r| r.max_duration)),
                f64_array(rows.iter().map(|r| r.avg_value)),
                f64_array(rows.iter().map(|r| r.p95_duration)),
                ts_array(rows.iter().map(|_| processing_time.micros())),
            ],
        )
    }
    fn partition_time(&self) -> EventTime {
        self.window_start
    }
    type SortKey = (EventTime, DeviceType);
    fn sort_key(&self) -> Self::SortKey {
        (self.window_start, self.device_type)
    }
}

impl Table for DailyRow {
    const NAME: &'static str = "daily_p95";
    const DAILY: bool = true;
    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("date", DataType::Date32, false),
            Field::new("device_type", DataType::Utf8, false),
            Field::new("event_count", DataType::Int64, false),
            Field::new("kept_count", DataType::Int64, false),
            Field::new("outliers_removed", DataType::Int64, false),
            Field::new("mean_duration", DataType::Float64, false),
            Field::new("stddev_duration", DataType::Float64, false),
            Field::new("p95_duration", DataType::Float64, false),
            Field::new("avg_kept_duration", DataType::Float64, false),
            ts_field("processing_time", false),
        ]))
    }
    fn to_batch(rows: &[&Self], processing_time: EventTime) -> RecordBatch {
        batch(
            Self::schema(),
            vec![
                Arc::new(Date32Array::from_iter_values(rows.iter().map(|r| r.date))),
                str_array(rows.iter().map(|r| r.device_type.as_str())),
                i64_array(rows.iter().map(|r| r.event_count)),
                i64_array(rows.iter().map(|r| r.kept_count)),
                i64_array(rows.iter().map(|r| r.outliers_removed)),
                f64_array(rows.iter().map(|r| r.mean_duration)),
                f64_array(rows.iter().map(|r| r.stddev_duration)),
                f64_array(rows.iter().map(|r| r.p95_duration)),
                f64_array(rows.iter().map(|r| r.avg_kept_duration)),
                ts_array(rows.iter().map(|_| processing_time.micros())),
            ],
        )
    }
    fn partition_time(&self) -> EventTime {
        EventTime(i64::from(self.date) * MICROS_PER_DAY)
    }
    type SortKey = (i32, DeviceType);
    fn sort_key(&self) -> Self::SortKey {
        (self.date, self.device_type)
    }
}

/// Reads every batch of a Parquet file.
pub fn decode_parquet(bytes: Vec<u8>) -> Result<Vec<RecordBatch>, ParquetError> {
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))?.build()?;
    reader.map(|b| b.map_err(ParquetError::from)).collect()
}

/// Encodes a batch as one snappy-compressed Parquet file.
pub fn encode_parquet(batch: &RecordBatch) -> Result<Vec<u8>, ParquetError> {
    encode_parquet_batches(std::slice::from_ref(batch))
}

/// The columns of the tables whose values are (nearly) all distinct: written without a
/// dictionary.
const UNIQUE_COLUMNS: &[&str] =
    &["event_id", "timestamp", "event_duration", "value", "offset", "raw", "window_start", "window_end"];

/// The columns of random identifiers (see [`encode_parquet_batches`]).
const RANDOM_COLUMNS: &[&str] = &["event_id"];

/// The string columns of a few values that a file usually holds all of (an hour of readings
/// has every device, type, status, location and firmware of a fleet that reports steadily):
/// written without min/max statistics (see [`encode_parquet_batches`]), in every table. A
/// sparse fleet's files, or a live run's minute files, could have been pruned by `device_id`;
/// readers then scan them.
const REPEATED_COLUMNS: &[&str] = &["device_id", "device_type", "status", "location", "firmware"];

/// Encodes batches of one schema, in order, as one snappy-compressed Parquet file (the
/// `RANDOM_COLUMNS` excepted).
pub fn encode_parquet_batches(batches: &[RecordBatch]) -> Result<Vec<u8>, ParquetError> {
    let Some(first) = batches.first() else { return Err(ParquetError::General("no batch to encode".into())) };
    let mut props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        // Min/max per column chunk (what readers prune row groups by), not per page.
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_created_by(concat!("iot-etl ", env!("CARGO_PKG_VERSION")).to_owned());
    // Columns whose values are (nearly) all distinct gain nothing from a dictionary, which
    // the writer would build and then abandon for every page.
    for column in UNIQUE_COLUMNS {
        props = props.set_column_dictionary_enabled(ColumnPath::from(*column), false);
    }
    // Random identifiers: snappy saves ~10 % of their bytes (hex digits, no repeats) at the
    // cost of half the events file's compression time, and their min/max prune nothing
    // while costing a comparison per value. Written plain, without statistics.
    for column in RANDOM_COLUMNS {
        props = props
            .set_column_compression(ColumnPath::from(*column), Compression::UNCOMPRESSED)
            .set_column_statistics_enabled(ColumnPath::from(*column), EnabledStatistics::None);
    }
    // Strings repeated in every file: their min/max would span the same few values in every
    // file, pruning nothing, at the cost of a string comparison per value (without them, the
    // week benchmark at `-w 2` takes 0.977x the CPU).
    for column in REPEATED_COLUMNS {
        props = props.set_column_statistics_enabled(ColumnPath::from(*column), EnabledStatistics::None);
    }
    let props = props.build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, first.schema(), Some(props))?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.close()?;
    Ok(out)
}

/// Decodes an `events` part file back into its rows (what a restart reads to rebuild the
/// dedup and daily state; see `commit`). An error names the column that does not fit.
pub fn decode_events(bytes: Vec<u8>) -> Result<Vec<EventRow>, ParquetError> {
    fn column<'b, A: 'static>(batch: &'b RecordBatch, name: &str) -> Result<&'b A, ParquetError> {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_any().downcast_ref::<A>())
            .ok_or_else(|| ParquetError::General(format!("events file: column {name} is missing or of another type")))
    }
    let mut rows = Vec::new();
    for batch in decode_parquet(bytes)? {
        let event_id = column::<StringArray>(&batch, "event_id")?;
        let device_id = column::<StringArray>(&batch, "device_id")?;
        let device_type = column::<StringArray>(&batch, "device_type")?;
        let timestamp = column::<TimestampMicrosecondArray>(&batch, "timestamp")?;
        let duration = column::<Float64Array>(&batch, "event_duration")?;
        let value = column::<Float64Array>(&batch, "value")?;
        let status = column::<StringArray>(&batch, "status")?;
        let location = column::<StringArray>(&batch, "location")?;
        let firmware = column::<StringArray>(&batch, "firmware")?;
        let partition = column::<Int32Array>(&batch, "partition")?;
        let offset = column::<Int64Array>(&batch, "offset")?;
        let text = |a: &StringArray, i: usize| (!a.is_null(i)).then(|| crate::schema::intern(a.value(i).into()));
        for i in 0..batch.num_rows() {
            let bad = |what: &str| ParquetError::General(format!("events file, row {i}: unknown {what}"));
            rows.push(EventRow {
                position: Position { partition: partition.value(i) as u32, offset: offset.value(i) as u64 },
                event: OwnedEvent {
                    event_id: event_id.value(i).to_owned().into(),
                    device_id: crate::schema::intern(device_id.value(i).into()),
                    device_type: DeviceType::from_str_exact(device_type.value(i)).ok_or_else(|| bad("device_type"))?,
                    timestamp: EventTime(timestamp.value(i)),
                    event_duration: duration.value(i),
                    value: value.value(i),
                    status: crate::schema::Status::from_str_exact(status.value(i)).ok_or_else(|| bad("status"))?,
                    location: text(location, i),
                    firmware: text(firmware, i),
                },
            });
        }
    }
    Ok(rows)
}

/// Reads every committed Parquet file under `dir` (recursively, skipping names that start
/// with `_` or `.`, as DuckDB and Spark do), in path order.
pub fn read_parquet_dir(dir: &std::path::Path) -> Result<Vec<RecordBatch>, ParquetError> {
    let mut files = Vec::new();
    collect_files(dir, &mut files).map_err(|e| ParquetError::External(Box::new(e)))?;
    files.sort();
    let mut batches = Vec::new();
    for f in files {
        let file = std::fs::File::open(&f).map_err(|e| ParquetError::External(Box::new(e)))?;
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)?.build()?;
        for b in reader {
            batches.push(b?);
        }
    }
    Ok(batches)
}

fn collect_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) -> std::io::Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('_') || name.starts_with('.') {
            continue;
        }
        if entry.file_type()?.is_dir() {
            collect_files(&entry.path(), out)?;
        } else if name.ends_with(".parquet") {
            out.push(entry.path());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::parse_timestamp;

    #[test]
    fn partition_paths_follow_utc_calendar() {
        let t = parse_timestamp("2024-02-29T23:59:59.999Z").unwrap();
        assert_eq!(partition_path(t, false), "year=2024/month=02/day=29/hour=23");
        assert_eq!(partition_path(t, true), "year=2024/month=02/day=29");
        assert_eq!(partition_path(EventTime(0), false), "year=1970/month=01/day=01/hour=00");
    }

    #[test]
    fn a_files_partition_ends_after_its_hour_or_day() {
        // Instants around leap days, year and century ends, and the epoch.
        let mut instants = vec![0, MICROS_PER_HOUR - 1, MICROS_PER_DAY, -1];
        for s in ["2024-02-29T23:59:59.999999Z", "2000-02-29T00:00:00Z", "1999-12-31T23:30:00Z", "2100-03-01T12:00:00Z"]
        {
            instants.push(parse_timestamp(s).unwrap().micros());
        }
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..1000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            instants.push((x >> 20) as i64 % (200 * 365 * MICROS_PER_DAY));
        }
        for t in instants {
            let hour_end = (t.div_euclid(MICROS_PER_HOUR) + 1) * MICROS_PER_HOUR;
            let day_end = (t.div_euclid(MICROS_PER_DAY) + 1) * MICROS_PER_DAY;
            let hourly = format!("events/{}/part-m00001-000.parquet", partition_path(EventTime(t), false));
            let daily = format!("daily_p95/{}/part-00000.parquet", partition_path(EventTime(t), true));
            assert_eq!(partition_end(&hourly), Some(EventTime(hour_end)), "{hourly}");
            assert_eq!(partition_end(&daily), Some(EventTime(day_end)), "{daily}");
        }
        for other in [
            "events/part-0.parquet",
            "events/year=2024/month=13/day=01/x",
            "t/hour=1/f.parquet",
            "year=x/month=1/day=1",
        ] {
            assert_eq!(partition_end(other), None, "{other}");
        }
    }

    #[test]
    fn event_rows_round_trip_through_parquet() {
        let line = br#"{"event_id":"e-1","device_id":"device-007","device_type":"motion","timestamp":"2025-11-03T10:15:00.5Z","event_duration":12.5,"value":-1.0,"status":"warning","metadata":{"location":"zone-B"}}"#;
        let event = crate::parse::parse_event(line, crate::parse::DEFAULT_MAX_MESSAGE_BYTES).unwrap().into_owned();
        let rows = vec![EventRow { position: Position { partition: 2, offset: 99 }, event }];
        let bytes = encode_parquet(&EventRow::to_batch(&rows.iter().collect::<Vec<_>>(), EventTime(1))).unwrap();
        assert_eq!(decode_events(bytes).unwrap(), rows);
    }

    /// An events file keeps min/max per column chunk where it can prune (times, numbers,
    /// positions) and has none on the random ids and the strings every file repeats.
    #[test]
    fn event_files_have_min_max_only_where_it_can_prune() {
        let line = br#"{"event_id":"e-1","device_id":"device-007","device_type":"motion","timestamp":"2025-11-03T10:15:00.5Z","event_duration":12.5,"value":-1.0,"status":"warning","metadata":{"location":"zone-B","firmware":"v1"}}"#;
        let event = crate::parse::parse_event(line, crate::parse::DEFAULT_MAX_MESSAGE_BYTES).unwrap().into_owned();
        let rows = [EventRow { position: Position { partition: 2, offset: 99 }, event }];
        let bytes = encode_parquet(&EventRow::to_batch(&rows.iter().collect::<Vec<_>>(), EventTime(1))).unwrap();
        let reader = parquet::file::reader::SerializedFileReader::new(bytes::Bytes::from(bytes)).unwrap();
        let metadata = parquet::file::reader::FileReader::metadata(&reader);
        let with_min_max: Vec<&str> = metadata
            .row_group(0)
            .columns()
            .iter()
            .filter(|c| c.statistics().is_some_and(|s| s.min_bytes_opt().is_some()))
            .map(|c| c.column_descr().name())
            .collect();
        let expected = ["timestamp", "event_duration", "value", "partition", "offset", "processing_time"];
        assert_eq!(with_min_max, expected);
    }

    #[test]
    fn window_rows_round_trip_through_parquet() {
        let start = parse_timestamp("2025-11-03T10:15:00Z").unwrap();
        let rows = [WindowRow {
            window_start: start,
            device_type: DeviceType::Light,
            event_count: 3,
            avg_duration: 1.5,
            min_duration: 1.0,
            max_duration: 2.0,
            avg_value: -4.25,
            p95_duration: 2.0,
        }];
        let bytes = encode_parquet(&WindowRow::to_batch(&rows.iter().collect::<Vec<_>>(), EventTime(1))).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<_> = reader.map(|b| b.unwrap()).collect();
        assert_eq!(batches.len(), 1);
        let b = &batches[0];
        assert_eq!(b.schema().fields().len(), 10);
        let end = b.column(1).as_any().downcast_ref::<TimestampMicrosecondArray>().unwrap().value(0);
        assert_eq!(end, start.micros() + 60_000_000);
        let avg_value = b.column(7).as_any().downcast_ref::<Float64Array>().unwrap().value(0);
        assert_eq!(avg_value, -4.25);
    }
}
