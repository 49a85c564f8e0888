//! `p95`, `check` and `diff` read tables through the engine's store layer: the same tables in
//! an object store (`memory://`, as `s3://` is) and in a folder named by a path or a
//! `file://` URL give the same answers, uncommitted objects are never read, and `check`
//! reports a table that does not match its events.

use std::sync::Arc;

mod common;

use analytics::table::{DateRange, Table};
use common::{write_table, DAY0};
use connectors::schema::EventRow;
use connectors::schema::{DeviceType, Event, EventTime, Position, Status, MICROS_PER_DAY};
use connectors::sink::object::open;
use connectors::sink::{DailyRow, TableStore, WindowRow};

fn events() -> Vec<EventRow> {
    let types = [DeviceType::Temperature, DeviceType::Light];
    (0..3 * 1500)
        .map(|i: usize| EventRow {
            position: Position { partition: (i % 3) as u32, offset: i as u64 },
            event: Event {
                event_id: format!("id-{i}").into(),
                device_id: "device-001".into(),
                device_type: types[i % 2],
                // Three days, spread over every hour.
                timestamp: EventTime(
                    (DAY0 + (i / 1500) as i64) * MICROS_PER_DAY + (i as i64 * 57_123_457) % MICROS_PER_DAY,
                ),
                event_duration: if i % 211 == 3 { 50_000.0 } else { 10.0 + ((i * 7919) % 1000) as f64 * 0.37 },
                value: (i % 17) as f64,
                status: Status::Normal,
                location: None,
                firmware: None,
            },
        })
        .collect()
}

/// A complete output: events, and the daily and window tables recomputed from them (so
/// `check` must find nothing), plus uncommitted objects that are not Parquet at all.
fn write_output(store: &Arc<dyn TableStore>, events: &[EventRow]) {
    write_table(store.as_ref(), events);
    let table = Table::in_output(store, "test", "events");
    let daily: Vec<DailyRow> = analytics::daily::daily_p95(&table, DateRange::default()).unwrap();
    let windows: Vec<WindowRow> = analytics::windows::windows(&table, DateRange::default()).unwrap();
    write_table(store.as_ref(), &daily);
    write_table(store.as_ref(), &windows);
    store.put("events/year=2025/month=11/day=04/hour=00/_part-00001.parquet.pending", b"not parquet").unwrap();
    store.put("events/year=2025/month=11/day=04/.hidden/part-00001.parquet", b"not parquet").unwrap();
    store.put("_checkpoint/commit-1.json", b"{}").unwrap();
}

fn csv(rows: &[DailyRow]) -> String {
    let mut out = Vec::new();
    analytics::daily::write_csv(rows, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn object_store_and_folder_urls_give_the_same_answers() {
    let events = events();
    let memory = open("memory://").unwrap();
    write_output(&memory, &events);
    let dir = tempfile::tempdir().unwrap();
    let folder = open(dir.path().to_str().unwrap()).unwrap();
    write_output(&folder, &events);

    let all = DateRange::default();
    let in_memory = analytics::daily::daily_p95(&Table::in_output(&memory, "memory://", "events"), all).unwrap();
    assert_eq!(in_memory.len(), 6, "3 days x 2 types, 750 events each");
    assert!(in_memory.iter().all(|r| r.outliers_removed > 0));
    let path = dir.path().join("events").display().to_string();
    for url in [path.clone(), format!("file://{path}"), format!("{path}/")] {
        let got = analytics::daily::daily_p95(&Table::open(&url).unwrap(), all).unwrap();
        assert_eq!(csv(&got), csv(&in_memory), "{url}");
    }

    // Date pruning through the store: only the middle day.
    let d = analytics::daily::date_of(DAY0 as i32 + 1);
    let pruned = analytics::daily::daily_p95(
        &Table::in_output(&memory, "memory://", "events"),
        DateRange { from: Some(d), to: Some(d) },
    )
    .unwrap();
    assert_eq!(pruned, in_memory[2..4].to_vec());

    // check: both complete outputs are consistent, through the store and through URLs.
    assert_eq!(analytics::check::check_store(&memory, "memory://").unwrap(), Vec::<String>::new());
    assert_eq!(analytics::check::check(&format!("file://{}", dir.path().display())).unwrap(), Vec::<String>::new());
    assert_eq!(analytics::check::check(dir.path().to_str().unwrap()).unwrap(), Vec::<String>::new());

    // diff: a folder against itself by path and by URL.
    let d =
        analytics::diff::diff(dir.path().to_str().unwrap(), &format!("file://{}", dir.path().display()), true).unwrap();
    assert!(d.lines.is_empty(), "{:?}", d.lines);
    assert_eq!(d.rows["events"], events.len());

    // A daily row that does not match its events is reported.
    let mut wrong = in_memory.clone();
    wrong[0].p95_duration += 1.0;
    write_table(memory.as_ref(), &wrong[..2]); // rewrites the first day's file
    let diffs = analytics::check::check_store(&memory, "memory://").unwrap();
    assert_eq!(diffs.len(), 1, "{diffs:?}");
    assert!(diffs[0].starts_with("daily_p95") && diffs[0].contains("p95_duration"), "{diffs:?}");
}

#[test]
fn a_missing_folder_is_an_error_that_names_it() {
    let err = Table::open("/nonexistent/out/events").err().unwrap().to_string();
    assert!(err.contains("/nonexistent/out/events") && err.contains("not a folder"), "{err}");
    let err = analytics::check::check("file:///nonexistent/out").unwrap_err().to_string();
    assert!(err.contains("/nonexistent/out"), "{err}");
    assert!(!std::path::Path::new("/nonexistent").exists(), "reading never creates folders");
}
