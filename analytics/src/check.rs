//! `analytics check`: the stream's `daily_p95` and `windows` tables against a batch
//! recomputation from its `events` table. Counts must match exactly and floats to 1e-12
//! relative; every difference is reported as one readable line.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::{Date32Array, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};

use connectors::sink::TableStore;

use crate::daily::DAILY_COLUMNS;
use crate::table::{open_store, Columns, DateRange, Table};

/// One row of either table, keyed and flattened for comparison.
type Flat = BTreeMap<(i64, String), Vec<(&'static str, Value)>>;

#[derive(Clone, Debug, PartialEq)]
enum Value {
    I(i64),
    F(f64),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::I(v) => write!(f, "{v}"),
            Value::F(v) => write!(f, "{v}"),
        }
    }
}

fn close(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::F(x), Value::F(y)) => x == y || (x - y).abs() <= 1e-12 * x.abs().max(y.abs()),
        _ => a == b,
    }
}

const WINDOW_COLUMNS: [&str; 8] = [
    "window_start",
    "device_type",
    "event_count",
    "avg_duration",
    "min_duration",
    "max_duration",
    "avg_value",
    "p95_duration",
];

fn flatten(batches: &[RecordBatch], columns: &[&'static str]) -> crate::Result<Flat> {
    let mut out = Flat::new();
    for b in batches {
        for i in 0..b.num_rows() {
            let key0 = if let Some(a) = b.column(0).as_any().downcast_ref::<Date32Array>() {
                i64::from(a.value(i))
            } else if let Some(a) = b.column(0).as_any().downcast_ref::<TimestampMicrosecondArray>() {
                a.value(i)
            } else {
                return Err(crate::Error::Table(format!("unexpected type of column {}", columns[0])));
            };
            let ty = b
                .column(1)
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| crate::Error::Table("device_type is not a string".into()))?
                .value(i)
                .to_owned();
            let mut values = Vec::new();
            for (c, name) in columns.iter().enumerate().skip(2) {
                let col = b.column(c).as_any();
                let v = if let Some(a) = col.downcast_ref::<Int64Array>() {
                    Value::I(a.value(i))
                } else if let Some(a) = col.downcast_ref::<Float64Array>() {
                    Value::F(a.value(i))
                } else {
                    return Err(crate::Error::Table(format!("unexpected type of column {name}")));
                };
                values.push((*name, v));
            }
            if out.insert((key0, ty.clone()), values).is_some() {
                return Err(crate::Error::Table(format!("two rows for the same key ({key0}, {ty})")));
            }
        }
    }
    Ok(out)
}

fn compare(table: &str, stream: &Flat, batch: &Flat, diffs: &mut Vec<String>) {
    for (key, expected) in batch {
        match stream.get(key) {
            None => diffs.push(format!("{table}: missing row for {key:?} (batch has {})", render(expected))),
            Some(got) => {
                for ((name, g), (_, e)) in got.iter().zip(expected) {
                    if !close(g, e) {
                        diffs.push(format!(
                            "{table} {key:?}: {name} is {g} in the stream, {e} in the batch recomputation"
                        ));
                    }
                }
            }
        }
    }
    for key in stream.keys().filter(|k| !batch.contains_key(*k)) {
        diffs.push(format!("{table}: extra row for {key:?} (not in the batch recomputation)"));
    }
}

fn render(values: &[(&str, Value)]) -> String {
    values.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join(", ")
}

/// Compares the tables of the output at `output` (a path, `file://`, `s3://BUCKET/PREFIX`);
/// returns one line per difference (empty: all equal).
pub fn check(output: &str) -> crate::Result<Vec<String>> {
    check_store(&open_store(output)?, output)
}

/// [`check`] on an opened store; `url` names it in messages.
pub fn check_store(store: &Arc<dyn TableStore>, url: &str) -> crate::Result<Vec<String>> {
    let table = |name| Table::in_output(store, url, name);
    let all = DateRange::default();
    let events = table("events");
    let mut diffs = Vec::new();

    let recomputed_daily: Vec<RecordBatch> = {
        let rows = crate::daily::daily_p95(&events, all)?;
        let refs: Vec<_> = rows.iter().collect();
        vec![<connectors::sink::DailyRow as connectors::sink::Table>::to_batch(&refs, connectors::schema::EventTime(0))]
    };
    let daily = table("daily_p95");
    let stream_daily = daily.read_columns(&daily.committed_files(all)?, Columns::only(&DAILY_COLUMNS))?;
    let recomputed_daily =
        recomputed_daily.iter().map(|b| b.project(&(0..9).collect::<Vec<_>>())).collect::<Result<Vec<_>, _>>()?;
    compare(
        "daily_p95",
        &flatten(&stream_daily, &DAILY_COLUMNS)?,
        &flatten(&recomputed_daily, &DAILY_COLUMNS)?,
        &mut diffs,
    );

    let recomputed_windows = {
        let rows = crate::windows::windows(&events, all)?;
        let refs: Vec<_> = rows.iter().collect();
        let b =
            <connectors::sink::WindowRow as connectors::sink::Table>::to_batch(&refs, connectors::schema::EventTime(0));
        // Drop window_end so the columns line up with WINDOW_COLUMNS.
        b.project(&[0, 2, 3, 4, 5, 6, 7, 8])?
    };
    let windows = table("windows");
    let stream_windows = windows.read_columns(&windows.committed_files(all)?, Columns::only(&WINDOW_COLUMNS))?;
    compare(
        "windows",
        &flatten(&stream_windows, &WINDOW_COLUMNS)?,
        &flatten(&[recomputed_windows], &WINDOW_COLUMNS)?,
        &mut diffs,
    );
    Ok(diffs)
}
