//! Outliers of `event_duration` per UTC date and device type, by two rules, from the
//! `events` table in one batch pass (`analytics outliers`).
//!
//! Over the n distinct accepted events of a (date, type) with n ≥ `min_events`:
//!
//! - **3σ**: μ = mean, σ = sample standard deviation (n − 1); an outlier has |x − μ| > 3σ.
//!   These are exactly the values the daily p95 removes (`outliers_removed` of `daily_p95`).
//! - **IQR**: Q1 and Q3 are the nearest-rank quartiles (the values at 1-based ranks ⌈0.25·n⌉
//!   and ⌈0.75·n⌉ in ascending order, exact values of the data like the p95); an outlier lies
//!   outside [Q1 − 1.5·IQR, Q3 + 1.5·IQR], IQR = Q3 − Q1.
//!
//! Each row gives both fences and both counts, so a reader sees how far the rules disagree.

use connectors::schema::DeviceType;

use crate::daily::{date_of, durations_by_day, mean_and_stddev, within_3_sigma};
use crate::table::{DateRange, Table};

/// One (date, type)'s outlier report.
#[derive(Clone, Debug, PartialEq)]
pub struct OutlierRow {
    /// Days since 1970-01-01 (UTC).
    pub date: i32,
    /// The device type.
    pub device_type: DeviceType,
    /// Distinct accepted events.
    pub event_count: i64,
    /// μ of the durations.
    pub mean_duration: f64,
    /// σ of the durations (sample, n − 1).
    pub stddev_duration: f64,
    /// μ − 3σ.
    pub sigma_low: f64,
    /// μ + 3σ.
    pub sigma_high: f64,
    /// Durations with |x − μ| > 3σ.
    pub sigma_outliers: i64,
    /// Nearest-rank first quartile.
    pub q1_duration: f64,
    /// Nearest-rank third quartile.
    pub q3_duration: f64,
    /// Q1 − 1.5·IQR.
    pub iqr_low: f64,
    /// Q3 + 1.5·IQR.
    pub iqr_high: f64,
    /// Durations outside [`iqr_low`, `iqr_high`].
    pub iqr_outliers: i64,
}

/// The report of one group, `None` with fewer than `min_events` (or fewer than 2) durations.
pub fn outlier_row(date: i32, device_type: DeviceType, durations: &[f64], min_events: usize) -> Option<OutlierRow> {
    let n = durations.len();
    if n < min_events.max(2) {
        return None;
    }
    let (mean, stddev) = mean_and_stddev(durations);
    let sigma_outliers = durations.iter().filter(|x| !within_3_sigma(**x, mean, stddev)).count();
    let mut values = durations.to_vec();
    let q1 = crate::percentile_nearest_rank_unsorted(&mut values, 25);
    let q3 = crate::percentile_nearest_rank_unsorted(&mut values, 75);
    let (iqr_low, iqr_high) = (q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1));
    let iqr_outliers = durations.iter().filter(|x| **x < iqr_low || **x > iqr_high).count();
    Some(OutlierRow {
        date,
        device_type,
        event_count: n as i64,
        mean_duration: mean,
        stddev_duration: stddev,
        sigma_low: mean - 3.0 * stddev,
        sigma_high: mean + 3.0 * stddev,
        sigma_outliers: sigma_outliers as i64,
        q1_duration: q1,
        q3_duration: q3,
        iqr_low,
        iqr_high,
        iqr_outliers: iqr_outliers as i64,
    })
}

/// The outlier rows of the `events` table for dates in `range` and groups of at least
/// `min_events` events, ordered by date and type.
pub fn outliers(events: &Table, range: DateRange, min_events: usize) -> crate::Result<Vec<OutlierRow>> {
    let groups: Vec<_> = durations_by_day(events, range)?.into_iter().collect();
    let rows =
        crate::parallel_map(&groups, |((day, ty), durations)| Ok(outlier_row(*day, *ty, durations, min_events)))?;
    Ok(rows.into_iter().flatten().collect())
}

/// The CSV header of [`write_csv`], in column order.
pub const CSV_HEADER: [&str; 13] = [
    "date",
    "device_type",
    "event_count",
    "mean_duration",
    "stddev_duration",
    "sigma_low",
    "sigma_high",
    "sigma_outliers",
    "q1_duration",
    "q3_duration",
    "iqr_low",
    "iqr_high",
    "iqr_outliers",
];

/// Writes rows as CSV with [`CSV_HEADER`] (dates as YYYY-MM-DD, floats that parse back exactly).
pub fn write_csv<W: std::io::Write>(rows: &[OutlierRow], out: W) -> crate::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(CSV_HEADER)?;
    for r in rows {
        let floats = [r.mean_duration, r.stddev_duration, r.sigma_low, r.sigma_high];
        let quartiles = [r.q1_duration, r.q3_duration, r.iqr_low, r.iqr_high];
        let mut record = vec![date_of(r.date).to_string(), r.device_type.to_string(), r.event_count.to_string()];
        record.extend(floats.iter().map(f64::to_string));
        record.push(r.sigma_outliers.to_string());
        record.extend(quartiles.iter().map(f64::to_string));
        record.push(r.iqr_outliers.to_string());
        w.write_record(&record)?;
    }
    w.flush()?;
    Ok(())
}

/// Prints rows as an aligned text table.
pub fn print_table(rows: &[OutlierRow]) {
    println!(
        "{:<10}  {:<11}  {:>8}  {:>10}  {:>10}  {:>8}  {:>10}  {:>10}  {:>10}  {:>10}  {:>8}",
        "date", "device_type", "events", "mean", "stddev", "3σ out", "q1", "q3", "iqr_low", "iqr_high", "iqr out"
    );
    for r in rows {
        println!(
            "{:<10}  {:<11}  {:>8}  {:>10.3}  {:>10.3}  {:>8}  {:>10.2}  {:>10.2}  {:>10.2}  {:>10.2}  {:>8}",
            date_of(r.date).to_string(),
            r.device_type.as_str(),
            r.event_count,
            r.mean_duration,
            r.stddev_duration,
            r.sigma_outliers,
            r.q1_duration,
            r.q3_duration,
            r.iqr_low,
            r.iqr_high,
            r.iqr_outliers
        );
    }
}
