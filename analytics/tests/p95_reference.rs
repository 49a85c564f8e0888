//! `analytics p95` against a naive recomputation written here, on an `events` table written
//! through the engine's own table writer: type-days with exactly 499 and 500 events, outliers,
//! dates pruned by `--from/--to`, and CSV output that parses back to the same values.

mod common;

use analytics::table::DateRange;
use common::{close, csv_records, write_groups, DAY0};
use connectors::schema::DeviceType;

/// Naive: sort, mean, sample sd, filter, ceil(0.95 k) with floats.
fn naive(durations: &[f64]) -> Option<(usize, usize, f64, f64, f64, f64)> {
    if durations.len() < 500 {
        return None;
    }
    let mut d = durations.to_vec();
    d.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = d.len() as f64;
    let mean = d.iter().sum::<f64>() / n;
    let sd = (d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    let kept: Vec<f64> = d.into_iter().filter(|x| (x - mean).abs() <= 3.0 * sd).collect();
    let k = kept.len();
    let mut rank = (0.95 * k as f64).ceil() as usize;
    if (rank - 1) * 100 >= 95 * k {
        rank -= 1;
    }
    Some((durations.len(), k, mean, sd, kept[rank - 1], kept.iter().sum::<f64>() / k as f64))
}

#[test]
fn daily_p95_equals_the_naive_recomputation() {
    let dir = tempfile::tempdir().unwrap();
    let plan = [
        (DAY0, DeviceType::Humidity, 499),
        (DAY0, DeviceType::Motion, 500),
        (DAY0 + 1, DeviceType::Light, 2000),
        (DAY0 + 2, DeviceType::Light, 800),
    ];
    let (events, groups) = write_groups(dir.path(), &plan, |j, n| {
        if j % 101 == 5 {
            9000.0 + j as f64
        } else {
            50.0 + ((j * 7919 + n) % 450) as f64 * 1.01
        }
    });
    let got = analytics::daily::daily_p95(&events, DateRange::default()).unwrap();
    let expected: Vec<_> = groups.iter().filter_map(|(day, ty, ds)| naive(ds).map(|n| (*day, *ty, n))).collect();
    assert_eq!(got.len(), 3, "499 events make no row, 500 do");
    assert_eq!(got.len(), expected.len());
    for (g, (day, ty, (n, k, mean, sd, p95, avg))) in got.iter().zip(&expected) {
        assert_eq!((i64::from(g.date), g.device_type), (*day, *ty));
        assert_eq!((g.event_count, g.kept_count, g.outliers_removed), (*n as i64, *k as i64, (*n - *k) as i64));
        assert!(*k < *n, "the outliers were removed");
        assert!(close(g.mean_duration, *mean) && close(g.stddev_duration, *sd) && close(g.avg_kept_duration, *avg));
        assert_eq!(g.p95_duration, *p95);
    }

    // Date pruning: only the last day.
    let d = analytics::daily::date_of(DAY0 as i32 + 2);
    let pruned = analytics::daily::daily_p95(&events, DateRange { from: Some(d), to: Some(d) }).unwrap();
    assert_eq!(pruned.len(), 1);
    assert_eq!(pruned[0], got[2]);

    // CSV round trip.
    let mut csv = Vec::new();
    analytics::daily::write_csv(&got, &mut csv).unwrap();
    let (header, records) = csv_records(&csv);
    assert_eq!(header[7], "p95_duration");
    assert_eq!(records.len(), got.len());
    for (rec, g) in records.iter().zip(&got) {
        assert_eq!(&rec[0], analytics::daily::date_of(g.date).to_string());
        assert_eq!(&rec[1], g.device_type.as_str());
        assert_eq!(rec[2].parse::<i64>().unwrap(), g.event_count);
        assert_eq!(rec[7].parse::<f64>().unwrap(), g.p95_duration);
        assert_eq!(rec[5].parse::<f64>().unwrap(), g.mean_duration);
        assert_eq!(rec[8].parse::<f64>().unwrap(), g.avg_kept_duration);
    }
}
