//! The engine's metrics endpoint, scraped over real HTTP: every metric named in
//! `dataflow::metrics::names` is exposed with the expected type and labels and the values of
//! the counters; `/healthz` answers while `/readyz` waits for the dataflow to start.

use std::io::{Read, Write};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use dataflow::counters::Counters;
use dataflow::metrics::{labels, names, serve, EngineMetrics};

fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

/// (name, type, label) for every metric the dashboard and alerts may use.
const EXPECTED: &[(&str, &str, Option<&str>)] = &[
    (names::EVENTS_READ, "counter", None),
    (names::EVENTS_ACCEPTED, "counter", None),
    (names::EVENTS_REJECTED, "counter", Some(labels::REASON)),
    (names::DUPLICATES, "counter", None),
    (names::LATE, "counter", None),
    (names::PARTITION_WATERMARK, "gauge", Some(labels::PARTITION)),
    (names::PARTITION_LAG, "gauge", Some(labels::PARTITION)),
    (names::FRONTIER_DELAY, "gauge", None),
    (names::WINDOWS_EMITTED, "counter", None),
    (names::DAYS_EMITTED, "counter", None),
    (names::ROWS_WRITTEN, "counter", Some(labels::TABLE)),
    (names::FILES_WRITTEN, "counter", Some(labels::TABLE)),
    (names::BYTES_WRITTEN, "counter", Some(labels::TABLE)),
    (names::DAILY_P95_PROVISIONAL, "gauge", Some(labels::DEVICE_TYPE)),
    (names::WORKERS, "gauge", None),
    (names::LAST_COMMITTED_EPOCH, "gauge", None),
    (names::LAST_COMMIT_TIMESTAMP, "gauge", None),
    (names::EPOCH_COMMIT_DURATION, "histogram", None),
    (names::WINDOW_COMMIT_LATENCY, "histogram", None),
    (names::CHECKPOINT_AGE, "gauge", None),
];

#[test]
fn metrics_are_served_with_their_names_types_labels_and_values() {
    let counters = Arc::new(Counters::new());
    let metrics = Arc::new(EngineMetrics::new(Arc::clone(&counters), 3));
    let addr = serve("127.0.0.1:0", metrics).unwrap();

    assert_eq!(get(addr, "/healthz").0, 200);
    assert_eq!(get(addr, "/readyz").0, 503, "not ready before the dataflow starts");
    assert_eq!(get(addr, "/nope").0, 404);

    counters.read.fetch_add(1234, Relaxed);
    counters.accepted.fetch_add(1000, Relaxed);
    counters.add_rejected(connectors::parse::RejectReason::BadTimestamp, 7);
    counters.duplicates.fetch_add(20, Relaxed);
    counters.late.fetch_add(5, Relaxed);
    counters.rows_written[1].fetch_add(60, Relaxed);
    counters.table_files[0].fetch_add(2, Relaxed);
    counters.partition_watermarks.lock().unwrap().insert(2, 1_762_128_000_000_000);
    counters.provisional_p95.lock().unwrap().insert("light", 412.5);
    counters.partition_lag.lock().unwrap().insert(1, 42);
    counters.last_epoch.store(17, Relaxed);
    counters.last_commit_micros.store(1_762_128_000_000_000, Relaxed);
    [0.002, 0.03].into_iter().for_each(|s| counters.commit_seconds.lock().unwrap().record(s));
    [0.02, 0.3, 1.5].into_iter().for_each(|s| counters.window_latencies.lock().unwrap().record(s));
    counters.started.store(true, Relaxed);

    let (status, body) = get(addr, "/metrics");
    assert_eq!(status, 200);
    for (name, kind, label) in EXPECTED {
        assert!(body.contains(&format!("# TYPE {name} {kind}\n")), "{name} is not a {kind}:\n{body}");
        let samples: Vec<&str> = body.lines().filter(|l| l.starts_with(name) && !l.starts_with('#')).collect();
        assert!(!samples.is_empty(), "{name} has no sample");
        for s in samples {
            if *kind == "histogram" {
                let ok = s.starts_with(&format!("{name}_bucket{{le=\""))
                    || s.starts_with(&format!("{name}_sum "))
                    || s.starts_with(&format!("{name}_count "));
                assert!(ok, "{s} is not a histogram sample without labels");
                continue;
            }
            match label {
                Some(l) => assert!(s.starts_with(&format!("{name}{{{l}=\"")), "{s} lacks label {l}"),
                None => assert!(s.starts_with(&format!("{name} ")), "{s} has labels"),
            }
        }
    }
    for line in [
        format!("{} 1234", names::EVENTS_READ),
        format!("{} 1000", names::EVENTS_ACCEPTED),
        format!("{}{{reason=\"bad_timestamp\"}} 7", names::EVENTS_REJECTED),
        format!("{}{{reason=\"not_utf8\"}} 0", names::EVENTS_REJECTED),
        format!("{} 20", names::DUPLICATES),
        format!("{} 5", names::LATE),
        format!("{} 60", names::WINDOWS_EMITTED),
        format!("{}{{table=\"events\"}} 2", names::FILES_WRITTEN),
        format!("{}{{partition=\"2\"}} 1762128000", names::PARTITION_WATERMARK),
        format!("{}{{device_type=\"light\"}} 412.5", names::DAILY_P95_PROVISIONAL),
        format!("{} 3", names::WORKERS),
        format!("{}{{partition=\"1\"}} 42", names::PARTITION_LAG),
        format!("{} 17", names::LAST_COMMITTED_EPOCH),
        format!("{} 1762128000", names::LAST_COMMIT_TIMESTAMP),
        format!("{}_count 2", names::EPOCH_COMMIT_DURATION),
        format!("{}_bucket{{le=\"0.0025\"}} 1", names::EPOCH_COMMIT_DURATION),
        format!("{}_count 3", names::WINDOW_COMMIT_LATENCY),
        format!("{}_bucket{{le=\"0.5\"}} 2", names::WINDOW_COMMIT_LATENCY),
    ] {
        assert!(body.lines().any(|l| l == line), "missing `{line}` in:\n{body}");
    }
    // Messages wait (lag 42) and the last commit is from 2025: stalled, not ready.
    let (status, why) = get(addr, "/readyz");
    assert_eq!(status, 503, "{why}");
    assert!(why.contains("42 messages waiting"), "{why}");
    counters.last_commit_micros.store(chrono::Utc::now().timestamp_micros(), Relaxed);
    assert_eq!(get(addr, "/readyz").0, 200);
    // Counters only grow: a second scrape shows the same totals.
    let (_, again) = get(addr, "/metrics");
    assert!(again.lines().any(|l| l == format!("{} 1234", names::EVENTS_READ)));
    // Histograms observe each duration once, however often they are scraped.
    [0.3, 20.0].into_iter().for_each(|s| counters.window_latencies.lock().unwrap().record(s));
    let (_, third) = get(addr, "/metrics");
    for line in [
        format!("{}_count 2", names::EPOCH_COMMIT_DURATION),
        format!("{}_count 5", names::WINDOW_COMMIT_LATENCY),
        format!("{}_bucket{{le=\"0.5\"}} 3", names::WINDOW_COMMIT_LATENCY),
        format!("{}_bucket{{le=\"10\"}} 4", names::WINDOW_COMMIT_LATENCY),
    ] {
        assert!(third.lines().any(|l| l == line), "missing `{line}` in:\n{third}");
    }
}
