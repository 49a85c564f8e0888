//! Reference test on crafted partitions: every table the engine writes, under 1, 2 and 4
//! workers, equals the naive recomputation of `common::reference`, and the crafted edge
//! cases come out as the design says:
//! - a type-day with exactly 499 distinct accepted events (plus duplicates, late copies and
//!   invalid lines that would push a naive count past 500) gets no daily row; one with
//!   exactly 500 does;
//! - events exactly on window and day boundaries fall in the window/day they start;
//! - an event exactly at its partition's watermark is on time, one a millisecond earlier is late;
//! - a partition that lags the others by an hour loses nothing to lateness.

mod common;

use std::fmt::Write as _;
use std::path::Path;

use common::{assert_tables_eq, read_table, reference, run_engine, Cell};

const MIN: i64 = 60_000_000;
/// 2025-11-03T00:00:00Z.
const DAY0: i64 = 1_762_128_000_000_000;
const DAY: i64 = 86_400_000_000;

fn ts(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros).unwrap().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn event(id: &str, ty: &str, t: i64, duration: f64, value: f64) -> String {
    format!(
        r#"{{"event_id":"{id}","device_id":"device-{:03}","device_type":"{ty}","timestamp":"{}","event_duration":{duration},"value":{value},"status":"normal","metadata":{{"location":"zone-A","firmware":"v1.0.0"}}}}"#,
        id.len() % 50 + 1,
        ts(t)
    )
}

/// Durations with a few big outliers, deterministic.
fn duration(i: usize) -> f64 {
    if i % 97 == 13 {
        5000.0 + i as f64
    } else {
        50.0 + ((i * 7919) % 450) as f64 + (i % 7) as f64 * 0.25
    }
}

fn write_crafted(dir: &Path) {
    let mut p0 = String::new();
    let mut p1 = String::new();
    let mut p2 = String::new();
    // Partition 0, day 0: humidity, exactly 499 distinct accepted events between 01:00 and 21:00,
    // each duplicated sometimes; then late copies with new ids and invalid humidity lines.
    for i in 0..499 {
        let t = DAY0 + 3600 * 1_000_000 + i as i64 * 144_000_000;
        let line = event(&format!("h-{i}"), "humidity", t, duration(i), i as f64 * 0.5);
        writeln!(p0, "{line}").unwrap();
        if i % 10 == 0 {
            writeln!(p0, "{line}").unwrap(); // byte copy, right after
        }
        if i % 50 == 7 {
            // A late event: new id, 30 minutes behind the partition's latest.
            writeln!(p0, "{}", event(&format!("h-late-{i}"), "humidity", t - 30 * MIN, 100.0, 1.0)).unwrap();
            // Invalid lines that look like humidity events.
            writeln!(
                p0,
                "{}",
                event(&format!("h-bad-{i}"), "humidity", t, 100.0, 1.0).replace("\"normal\"", "\"fine\"")
            )
            .unwrap();
            writeln!(p0, "{}", event(&format!("h-neg-{i}"), "humidity", t, -1.0, 1.0)).unwrap();
        }
    }
    // Partition 0: a late event exactly at the watermark (on time) and one just below (late).
    let last = DAY0 + 3600 * 1_000_000 + 498 * 144_000_000;
    writeln!(p0, "{}", event("at-watermark", "light", last - 10 * MIN, 123.0, 9.0)).unwrap();
    writeln!(p0, "{}", event("below-watermark", "light", last - 10 * MIN - 1000, 124.0, 9.0)).unwrap();
    // Partition 1, day 0: motion, exactly 500 distinct events, on window and day boundaries:
    // from 00:00:00.000 every 2 minutes, the last 20 at the last 20 minute starts of the day.
    for i in 0..500 {
        let t = if i < 480 { DAY0 + i as i64 * 2 * MIN } else { DAY0 + DAY - (500 - i as i64) * MIN };
        let line = event(&format!("m-{i}"), "motion", t, duration(i + 1000), (i % 2) as f64);
        writeln!(p1, "{line}").unwrap();
        if i % 25 == 0 {
            writeln!(p1, "{line}").unwrap();
        }
        if i == 300 {
            // A dense window: 40 pressure events in [10:00, 10:01), so that ranks matter.
            for j in 0..40 {
                let t = DAY0 + 600 * MIN + j as i64 * 1_500_000;
                writeln!(p1, "{}", event(&format!("p-{j}"), "pressure", t, duration(j * 31 + 7), 1000.0 + j as f64))
                    .unwrap();
            }
        }
    }
    // Partition 1: day 1 starts exactly at midnight, and the last instant of day 0.
    writeln!(p1, "{}", event("last-instant", "motion", DAY0 + DAY - 1000, 77.0, 0.0)).unwrap();
    writeln!(p1, "{}", event("midnight", "motion", DAY0 + DAY, 88.0, 1.0)).unwrap();
    writeln!(p1, "not json at all").unwrap();
    writeln!(p1, "{}", event("m-0", "motion", DAY0 + DAY + MIN, 99.0, 1.0)).unwrap(); // same id, a day later: kept (beyond horizon)
                                                                                      // Partition 2 lags the others by an hour: temperature every 30 s, one hour behind.
    for i in 0..2400 {
        let t = DAY0 + i as i64 * 30_000_000;
        writeln!(p2, "{}", event(&format!("t-{i}"), "temperature", t, duration(i + 5000), 20.0 + (i % 10) as f64))
            .unwrap();
    }
    let mut p2_bytes = p2.into_bytes();
    p2_bytes.extend_from_slice(b"\xff\xfe not utf8\n");
    std::fs::write(dir.join("partition-0.jsonl"), p0).unwrap();
    std::fs::write(dir.join("partition-1.jsonl"), p1).unwrap();
    std::fs::write(dir.join("partition-2.jsonl"), p2_bytes).unwrap();
}

#[test]
fn crafted_edge_cases_match_the_reference_under_1_2_4_workers() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    write_crafted(&input);
    let expected = reference(&input);

    // The reference itself says what the design says.
    let daily = &expected["daily_p95"];
    let types: Vec<&Cell> = daily.iter().map(|r| &r[1]).collect();
    assert!(types.contains(&&Cell::S("motion".into())), "500 distinct motion events make a row: {daily:?}");
    assert!(!types.contains(&&Cell::S("humidity".into())), "499 distinct humidity events make no row");
    let motion = daily.iter().find(|r| r[1] == Cell::S("motion".into()) && r[0] == Cell::I(DAY0 / DAY)).unwrap();
    assert_eq!(motion[2], Cell::I(501), "500 + the last instant of the day; midnight belongs to the next day");
    let late_ids: Vec<_> = expected["late"].iter().map(|r| r[0].clone()).collect();
    assert!(late_ids.contains(&Cell::S("below-watermark".into())));
    assert!(!late_ids.contains(&Cell::S("at-watermark".into())));
    assert!(late_ids.iter().all(|id| matches!(id, Cell::S(s) if s.starts_with("h-late") || s == "below-watermark")));
    assert_eq!(expected["rejected"].len(), 10 + 10 + 1 + 1);

    for workers in [1, 2, 4] {
        let output = dir.path().join(format!("out-{workers}"));
        let summary = run_engine(&input, &output, workers);
        assert_eq!(summary.duplicates, 50 + 20, "workers={workers}");
        assert_tables_eq(&output, &expected);
        // Windows are filed under the hour of their start.
        let windows = read_table(&output, "windows");
        assert!(windows.iter().any(|r| r[0] == Cell::I(DAY0 + DAY - MIN) && r[2] == Cell::S("motion".into())));
        let dense =
            windows.iter().find(|r| r[0] == Cell::I(DAY0 + 600 * MIN) && r[2] == Cell::S("pressure".into())).unwrap();
        assert_eq!(dense[3], Cell::I(40));
    }
}
