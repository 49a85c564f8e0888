//! The 1-minute window statistics, recomputed from the `events` table in one batch pass.

use std::collections::BTreeMap;

use arrow_array::{Float64Array, StringArray, TimestampMicrosecondArray};
use connectors::schema::{DeviceType, EventTime, MICROS_PER_MINUTE};
use connectors::sink::WindowRow;

use crate::table::{Columns, DateRange, Table};
use crate::{p95_nearest_rank, sum};

/// Every window row of the `events` table.
pub fn windows(events: &Table, range: DateRange) -> crate::Result<Vec<WindowRow>> {
    let files = events.committed_files(range)?;
    let mut groups: BTreeMap<(i64, DeviceType), Vec<(f64, f64)>> = BTreeMap::new();
    for batch in events.read_columns(&files, Columns::only(&["device_type", "timestamp", "event_duration", "value"]))? {
        let (Some(types), Some(times), Some(durations), Some(values)) = (
            batch.column(0).as_any().downcast_ref::<StringArray>(),
            batch.column(1).as_any().downcast_ref::<TimestampMicrosecondArray>(),
            batch.column(2).as_any().downcast_ref::<Float64Array>(),
            batch.column(3).as_any().downcast_ref::<Float64Array>(),
        ) else {
            return Err(crate::Error::Table("the events table does not have the expected column types".into()));
        };
        for i in 0..batch.num_rows() {
            let ty = DeviceType::from_str_exact(types.value(i))
                .ok_or_else(|| crate::Error::Table(format!("unknown device_type {:?}", types.value(i))))?;
            let start = times.value(i).div_euclid(MICROS_PER_MINUTE) * MICROS_PER_MINUTE;
            groups.entry((start, ty)).or_default().push((durations.value(i), values.value(i)));
        }
    }
    Ok(groups
        .into_iter()
        .map(|((start, ty), vals)| {
            let mut d: Vec<f64> = vals.iter().map(|v| v.0).collect();
            d.sort_by(f64::total_cmp);
            let n = d.len() as f64;
            WindowRow {
                window_start: EventTime(start),
                device_type: ty,
                event_count: d.len() as i64,
                avg_duration: sum(d.iter().copied()) / n,
                min_duration: d[0],
                max_duration: d[d.len() - 1],
                avg_value: sum(vals.iter().map(|v| v.1)) / n,
                p95_duration: p95_nearest_rank(&d),
            }
        })
        .collect())
}
