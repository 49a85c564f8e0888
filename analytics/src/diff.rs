//! `analytics diff A B`: whether two outputs (folders or `s3://` prefixes) hold the same tables.
//!
//! Two runs of the engine over the same messages must write the same rows (whatever the worker
//! count, process count, source or interruptions) and, for bounded runs, the same file names.
//! This compares every table as a multiset of rows, ignoring `processing_time` (the only
//! column that depends on when a row was written), and the lists of committed part files.
//! Floats compare exactly (their shortest round-trip decimal form).
//!
//! `--prefix` compares a live run's output A with a bounded run's B over the same messages: a
//! live run cannot close the minutes (and the day) its frontier has not passed, so A must be
//! B up to A's committed frontier `F` (its checkpoint's last record): every row of A is in B,
//! and every row of B complete before `F` is in A. A row is complete before `F` when its
//! time is: an event's or a late row's minute (`timestamp`, `watermark`) below `F`, a
//! window's start minute below `F`, a day's end at or before `F`; a rejected row, whose
//! filing minute is only known to the hour of its folder, when that hour ends by `F`.

use std::collections::BTreeMap;

use arrow_array::{
    Array, BinaryArray, Date32Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};

use crate::table::{open_store, path_date, Columns, DateRange, Table};

/// The tables the engine writes.
pub use connectors::sink::TABLE_NAMES as TABLES;

/// What differs between two outputs.
#[derive(Debug, Default)]
pub struct Diff {
    /// Human-readable differences, most important first.
    pub lines: Vec<String>,
    /// Rows compared per table (of the first output).
    pub rows: BTreeMap<&'static str, usize>,
}

fn cell(col: &dyn Array, row: usize) -> String {
    if col.is_null(row) {
        return "null".into();
    }
    let any = col.as_any();
    if let Some(a) = any.downcast_ref::<StringArray>() {
        format!("{:?}", a.value(row))
    } else if let Some(a) = any.downcast_ref::<Int64Array>() {
        a.value(row).to_string()
    } else if let Some(a) = any.downcast_ref::<Int32Array>() {
        a.value(row).to_string()
    } else if let Some(a) = any.downcast_ref::<Float64Array>() {
        format!("{:?}", a.value(row))
    } else if let Some(a) = any.downcast_ref::<TimestampMicrosecondArray>() {
        a.value_as_datetime(row)
            .map_or_else(|| a.value(row).to_string(), |t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
    } else if let Some(a) = any.downcast_ref::<Date32Array>() {
        a.value_as_date(row).map_or_else(|| a.value(row).to_string(), |d| d.to_string())
    } else if let Some(a) = any.downcast_ref::<BinaryArray>() {
        format!("{:?}", String::from_utf8_lossy(a.value(row)))
    } else {
        format!("<{:?}>", col.data_type())
    }
}

fn rows(batches: &[RecordBatch]) -> Vec<String> {
    let mut out = Vec::new();
    for_each_row(batches, |_, row| out.push(row));
    out.sort();
    out
}

/// Calls `each(index in its batch, row)` with every row of `batches`, spelled as
/// `name=value` pairs.
fn for_each_row(batches: &[RecordBatch], mut each: impl FnMut(usize, String)) {
    for b in batches {
        let schema = b.schema();
        let cols: Vec<(String, &dyn Array)> = schema
            .fields()
            .iter()
            .zip(b.columns())
            .filter(|(f, _)| f.name() != "processing_time")
            .map(|(f, c)| (f.name().clone(), c.as_ref()))
            .collect();
        for r in 0..b.num_rows() {
            each(r, cols.iter().map(|(name, c)| format!("{name}={}", cell(*c, r))).collect::<Vec<_>>().join(" "));
        }
    }
}

/// For each row of `batch`, read from `file` of `table`: whether it is complete before
/// minute `f` (see the module header).
fn complete_before(table: &str, file: &str, batch: &RecordBatch, f: i64) -> Vec<bool> {
    let n = batch.num_rows();
    // `floor`: the least minute a row is filed at (late rows are filed at their watermark,
    // clamped to the epoch).
    let minutes_below = |column: &str, floor: i64| match batch
        .column_by_name(column)
        .and_then(|c| c.as_any().downcast_ref::<TimestampMicrosecondArray>())
    {
        Some(a) => (0..n).map(|r| a.value(r).div_euclid(60_000_000).max(floor) < f).collect(),
        None => vec![false; n],
    };
    match table {
        "events" => minutes_below("timestamp", i64::MIN),
        "windows" => minutes_below("window_start", i64::MIN),
        "late" => minutes_below("watermark", 0),
        "daily_p95" => match batch.column_by_name("date").and_then(|c| c.as_any().downcast_ref::<Date32Array>()) {
            Some(a) => (0..n).map(|r| (i64::from(a.value(r)) + 1) * 1440 <= f).collect(),
            None => vec![false; n],
        },
        _ => {
            // The hour folder the rows were filed under.
            let hour = file.split('/').find_map(|s| s.strip_prefix("hour=")).and_then(|h| h.parse::<i64>().ok());
            let day = path_date(file).map(|d| d.signed_duration_since(chrono::NaiveDate::default()).num_days());
            vec![matches!((day, hour), (Some(d), Some(h)) if (d * 24 + h + 1) * 60 <= f); n]
        }
    }
}

/// Compares a live run's output `a` with a bounded run's `b` up to `a`'s committed frontier
/// (see the module header); equal to [`diff`] without part files when `a` is complete.
pub fn diff_prefix(a: &str, b: &str) -> crate::Result<Diff> {
    let (store_a, store_b) = (open_store(a)?, open_store(b)?);
    let checkpoint = connectors::sink::commit::load(&connectors::sink::commit::CheckpointStore::in_output(
        std::sync::Arc::clone(&store_a),
    ))
    .map_err(|e| crate::Error::read(format!("cannot read the checkpoint of {a}"), e))?;
    let Some(frontier) = checkpoint.last.as_ref().map(|r| r.frontier_minute) else {
        return Err(crate::Error::Table(format!(
            "{a} has no checkpoint: --prefix compares a live run's committed output"
        )));
    };
    let Some(f) = frontier else { return diff(a, b, false) };
    let f = f as i64;
    let mut d = Diff::default();
    for table in TABLES {
        let (ta, tb) = (Table::in_output(&store_a, a, table), Table::in_output(&store_b, b, table));
        let (fa, fb) = (ta.committed_files(DateRange::default())?, tb.committed_files(DateRange::default())?);
        let ra = rows(&ta.read_columns(&fa, Columns::ALL)?);
        let (mut all_b, mut required_b) = (Vec::new(), Vec::new());
        for file in &fb {
            let batches = tb.read_columns(std::slice::from_ref(file), Columns::ALL)?;
            for batch in &batches {
                let complete = complete_before(table, file, batch, f);
                for_each_row(std::slice::from_ref(batch), |r, row| {
                    if complete[r] {
                        required_b.push(row.clone());
                    }
                    all_b.push(row);
                });
            }
        }
        all_b.sort();
        required_b.sort();
        d.rows.insert(table, ra.len());
        let (not_in_b, _) = multiset_difference(&ra, &all_b);
        let (_, missing) = multiset_difference(&ra, &required_b);
        for (what, list) in [
            (format!("in {a} but not in {b}"), not_in_b),
            (format!("in {b} before the frontier of {a} but not in {a}"), missing),
        ] {
            if list.is_empty() {
                continue;
            }
            d.lines.push(format!("{table}: {} rows {what}", list.len()));
            for r in list.iter().take(5) {
                d.lines.push(format!("  {r}"));
            }
        }
    }
    Ok(d)
}

/// Compares the tables of the outputs at `a` and `b` (paths, `file://` or `s3://` URLs);
/// with `files`, also the names of their part files.
pub fn diff(a: &str, b: &str, files: bool) -> crate::Result<Diff> {
    let (store_a, store_b) = (open_store(a)?, open_store(b)?);
    let mut d = Diff::default();
    for table in TABLES {
        let (ta, tb) = (Table::in_output(&store_a, a, table), Table::in_output(&store_b, b, table));
        let (fa, fb) = (ta.committed_files(DateRange::default())?, tb.committed_files(DateRange::default())?);
        let (ra, rb) = (rows(&ta.read_columns(&fa, Columns::ALL)?), rows(&tb.read_columns(&fb, Columns::ALL)?));
        d.rows.insert(table, ra.len());
        if ra != rb {
            d.lines.push(format!("{table}: {} rows in {a}, {} rows in {b}", ra.len(), rb.len()));
            let (only_a, only_b) = multiset_difference(&ra, &rb);
            for (which, only) in [(a, &only_a), (b, &only_b)] {
                for r in only.iter().take(5) {
                    d.lines.push(format!("  only in {which}: {r}"));
                }
                if only.len() > 5 {
                    d.lines.push(format!("  ... and {} more only in {which}", only.len() - 5));
                }
            }
        }
        if files && fa != fb {
            d.lines.push(format!(
                "{table}: different part files ({} vs {}); first of {a}: {:?}, of {b}: {:?}",
                fa.len(),
                fb.len(),
                fa.first(),
                fb.first()
            ));
        }
    }
    Ok(d)
}

/// Rows in `a` but not `b`, and in `b` but not `a` (both sorted), counting repeats.
fn multiset_difference(a: &[String], b: &[String]) -> (Vec<String>, Vec<String>) {
    let (mut i, mut j) = (0, 0);
    let (mut only_a, mut only_b) = (Vec::new(), Vec::new());
    while i < a.len() || j < b.len() {
        let order = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => x.cmp(y),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Equal => {
                i += 1;
                j += 1;
            }
            std::cmp::Ordering::Less => {
                only_a.push(a[i].clone());
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                only_b.push(b[j].clone());
                j += 1;
            }
        }
    }
    (only_a, only_b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiset_difference_counts_repeats() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let (a, b) = multiset_difference(&s(&["a", "b", "b", "d"]), &s(&["b", "c", "d", "d"]));
        assert_eq!((a, b), (s(&["a", "b"]), s(&["c", "d"])));
    }
}
