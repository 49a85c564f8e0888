//! `analytics outliers` against a naive recomputation written here (sort, then count), on an
//! `events` table written through the engine's own table writer: the 3σ counts equal the
//! daily p95's `outliers_removed`, the IQR fences use nearest-rank quartiles, groups below
//! `--min-events` get no row, and CSV output parses back to the same values.

mod common;

use analytics::table::DateRange;
use common::{close, csv_records, write_groups, DAY0};
use connectors::schema::DeviceType;

/// Naive: (n, 3σ outliers, q1, q3, IQR outliers) from a sorted copy, quartiles by the
/// nearest rank computed in floating point.
fn naive(durations: &[f64]) -> (usize, usize, f64, f64, usize) {
    let mut d = durations.to_vec();
    d.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = d.len() as f64;
    let mean = d.iter().sum::<f64>() / n;
    let sd = (d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    let sigma = d.iter().filter(|x| (**x - mean).abs() > 3.0 * sd).count();
    let rank = |p: f64| ((p * n - 1e-9).ceil() as usize).max(1);
    let (q1, q3) = (d[rank(0.25) - 1], d[rank(0.75) - 1]);
    let iqr = q3 - q1;
    let out = d.iter().filter(|x| **x < q1 - 1.5 * iqr || **x > q3 + 1.5 * iqr).count();
    (d.len(), sigma, q1, q3, out)
}

#[test]
fn outliers_equal_the_naive_recomputation() {
    let dir = tempfile::tempdir().unwrap();
    let plan = [
        (DAY0, DeviceType::Humidity, 499),
        (DAY0, DeviceType::Motion, 500),
        (DAY0 + 1, DeviceType::Light, 2003),
        (DAY0 + 2, DeviceType::Pressure, 801),
    ];
    // A body with two tails: far (both rules flag it) and mild (only the IQR rule does).
    let (events, groups) = write_groups(dir.path(), &plan, |j, n| match j % 97 {
        5 => 9000.0 + j as f64,
        11 | 23 => 1500.0 + j as f64 * 0.01,
        _ => 50.0 + ((j * 7919 + n) % 450) as f64 * 1.01,
    });
    let got = analytics::outliers::outliers(&events, DateRange::default(), 500).unwrap();
    assert_eq!(got.len(), 3, "499 events make no row, 500 do");
    let daily = analytics::daily::daily_p95(&events, DateRange::default()).unwrap();
    for ((g, (day, ty, ds)), p95) in got.iter().zip(groups.iter().skip(1)).zip(&daily) {
        let (n, sigma, q1, q3, iqr_out) = naive(ds);
        assert_eq!((i64::from(g.date), g.device_type, g.event_count), (*day, *ty, n as i64));
        assert_eq!(g.sigma_outliers, sigma as i64);
        assert_eq!(g.sigma_outliers, p95.outliers_removed, "3σ outliers are what the daily p95 removes");
        assert_eq!((g.q1_duration, g.q3_duration, g.iqr_outliers), (q1, q3, iqr_out as i64));
        assert!(close(g.iqr_high, q3 + 1.5 * (q3 - q1)) && close(g.iqr_low, q1 - 1.5 * (q3 - q1)));
        assert!(close(g.sigma_high - g.mean_duration, 3.0 * g.stddev_duration));
        assert!(
            g.sigma_outliers > 0 && g.iqr_outliers > g.sigma_outliers,
            "the IQR rule also flags the milder tail: {g:?}"
        );
    }

    // A lower threshold reports the 499-event group too; date pruning keeps only its day.
    let d = analytics::daily::date_of(DAY0 as i32);
    let small = analytics::outliers::outliers(&events, DateRange { from: Some(d), to: Some(d) }, 2).unwrap();
    assert_eq!(
        small.iter().map(|r| (r.device_type, r.event_count)).collect::<Vec<_>>(),
        vec![(DeviceType::Humidity, 499), (DeviceType::Motion, 500)]
    );
    assert_eq!(small[0].iqr_outliers, naive(&groups[0].2).4 as i64);

    // CSV round trip.
    let mut csv = Vec::new();
    analytics::outliers::write_csv(&got, &mut csv).unwrap();
    let (header, records) = csv_records(&csv);
    assert_eq!(header, analytics::outliers::CSV_HEADER);
    assert_eq!(records.len(), got.len());
    for (rec, g) in records.iter().zip(&got) {
        assert_eq!(&rec[0], analytics::daily::date_of(g.date).to_string());
        assert_eq!(&rec[1], g.device_type.as_str());
        assert_eq!(rec[2].parse::<i64>().unwrap(), g.event_count);
        assert_eq!(rec[3].parse::<f64>().unwrap(), g.mean_duration);
        assert_eq!(rec[7].parse::<i64>().unwrap(), g.sigma_outliers);
        assert_eq!(rec[8].parse::<f64>().unwrap(), g.q1_duration);
        assert_eq!(rec[11].parse::<f64>().unwrap(), g.iqr_high);
        assert_eq!(rec[12].parse::<i64>().unwrap(), g.iqr_outliers);
    }
}
