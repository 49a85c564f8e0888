//! The producer's output, checked by reading the files it writes: determinism, the requested
//! fractions (within statistical tolerance on 100k events), every invalid kind (each parses to
//! the rejection the engine gives it), the partitioner, arrival order, and the metrics
//! endpoint scraped over HTTP.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use connectors::parse::{parse_event, RejectReason, DEFAULT_MAX_MESSAGE_BYTES};
use connectors::partition::partition_for_key;
use producer::files::write_partition_files_with;
use producer::metrics::{serve, ProducerMetrics};
use producer::{write_partition_files, GeneratorConfig};

fn config(seed: u64) -> GeneratorConfig {
    GeneratorConfig {
        seed,
        count: Some(100_000),
        duration: None,
        duplicates: 0.02,
        late: 0.01,
        invalid: 0.01,
        outliers: 0.01,
        ..Default::default()
    }
}

fn lines(dir: &Path, p: u32) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(dir.join(format!("partition-{p}.jsonl"))).unwrap();
    assert_eq!(bytes.last(), Some(&b'\n'));
    bytes[..bytes.len() - 1].split(|b| *b == b'\n').map(<[u8]>::to_vec).collect()
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
    let small = |seed| GeneratorConfig { count: Some(20_000), ..config(seed) };
    write_partition_files(&small(3), &a).unwrap();
    write_partition_files(&small(3), &b).unwrap();
    write_partition_files(&small(4), &c).unwrap();
    for p in 0..3 {
        let name = format!("partition-{p}.jsonl");
        assert_eq!(std::fs::read(a.join(&name)).unwrap(), std::fs::read(b.join(&name)).unwrap());
        assert_ne!(std::fs::read(a.join(&name)).unwrap(), std::fs::read(c.join(&name)).unwrap());
    }
}

#[test]
fn fractions_kinds_partitions_and_order() {
    let dir = tempfile::tempdir().unwrap();
    let summary = write_partition_files(&config(11), dir.path()).unwrap();
    let n = 100_000f64;
    let within = |got: u64, fraction: f64, what: &str| {
        let expected = n * fraction;
        let tolerance = 5.0 * (n * fraction * (1.0 - fraction)).sqrt();
        assert!((got as f64 - expected).abs() <= tolerance, "{what}: {got} vs expected {expected} ± {tolerance}");
    };
    within(summary.duplicates, 0.02, "duplicates");
    within(summary.late, 0.01, "late");
    within(summary.outliers, 0.01, "outliers");
    assert_eq!(summary.invalid, 1000, "invalid lines are exactly the fraction");
    assert_eq!(summary.on_time + summary.late, 100_000);

    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    let mut devices = BTreeSet::new();
    let mut types = BTreeSet::new();
    let mut reasons: BTreeMap<RejectReason, u64> = BTreeMap::new();
    let mut long_durations = 0u64;
    let mut valid = 0u64;
    let mut in_range = 0u64;
    for p in 0..3 {
        let mut ids = BTreeSet::new();
        let mut last_on_time = i64::MIN;
        let mut out_of_order = 0;
        for line in lines(dir.path(), p) {
            match parse_event(&line, DEFAULT_MAX_MESSAGE_BYTES) {
                Ok(e) => {
                    valid += 1;
                    assert_eq!(
                        partition_for_key(e.device_id.as_bytes(), 3),
                        p,
                        "{} is in the wrong partition",
                        e.device_id
                    );
                    let first_copy = ids.insert(e.event_id.to_string());
                    if first_copy {
                        *statuses.entry(e.status.to_string()).or_default() += 1;
                        devices.insert(e.device_id.to_string());
                        types.insert(e.device_type);
                        if e.event_duration > 1500.0 {
                            long_durations += 1;
                        }
                        if (50.0..=500.0).contains(&e.event_duration) {
                            in_range += 1;
                        }
                        let t = e.timestamp.micros();
                        if t < last_on_time {
                            out_of_order += 1; // a late arrival
                        }
                        last_on_time = last_on_time.max(t);
                    }
                }
                Err(r) => *reasons.entry(r).or_default() += 1,
            }
        }
        assert!(
            out_of_order as f64 <= 0.02 * 100_000.0 / 3.0,
            "partition {p}: {out_of_order} first copies out of order"
        );
    }
    assert_eq!(valid, 100_000 + summary.duplicates);
    let first_copies: u64 = statuses.values().sum();
    let share = |s: &str| statuses[s] as f64 / first_copies as f64;
    assert!(
        (share("normal") - 0.80).abs() < 0.01
            && (share("warning") - 0.15).abs() < 0.01
            && (share("critical") - 0.05).abs() < 0.01,
        "{statuses:?}"
    );
    assert_eq!(devices.len(), 50);
    assert_eq!(types.len(), 5);
    assert!(in_range as f64 / first_copies as f64 > 0.85, "most durations lie in 50-500 ms");
    assert!(long_durations as f64 >= 0.5 * 0.01 * first_copies as f64, "outliers are far out");
    assert_eq!(reasons.len(), RejectReason::ALL.len(), "every rejection reason occurs: {reasons:?}");
    assert_eq!(reasons.values().sum::<u64>(), 1000);
}

#[test]
fn each_invalid_kind_is_rejected_with_its_reason() {
    let mut seen = BTreeMap::new();
    for m in producer::Generator::new(GeneratorConfig { invalid: 0.5, ..config(5) }).take(20_000) {
        if let producer::MessageKind::Invalid(kind) = m.kind {
            let got = parse_event(&m.payload, DEFAULT_MAX_MESSAGE_BYTES).err();
            assert_eq!(got, Some(kind.reason()), "{kind:?}: {}", String::from_utf8_lossy(&m.payload));
            *seen.entry(kind).or_insert(0) += 1;
        }
    }
    assert_eq!(seen.len(), producer::InvalidKind::ALL.len(), "every kind was generated: {seen:?}");
    let reasons: BTreeSet<RejectReason> = producer::InvalidKind::ALL.iter().map(|k| k.reason()).collect();
    assert_eq!(reasons.len(), RejectReason::ALL.len(), "every reason has a cause");
}

fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn metrics_are_scraped_over_http_and_match_what_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(ProducerMetrics::new());
    let addr = serve("127.0.0.1:0", Arc::clone(&metrics)).unwrap();
    let cfg = GeneratorConfig { count: Some(5_000), ..config(5) };
    let summary = write_partition_files_with(&cfg, dir.path(), Some(&metrics), &AtomicBool::new(false)).unwrap();
    let body = http_get(addr, "/metrics");
    assert!(body.starts_with("HTTP/1.0 200") || body.starts_with("HTTP/1.1 200"), "{body}");
    let value = |prefix: &str| -> f64 {
        body.lines()
            .filter(|l| l.starts_with(prefix))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    };
    assert_eq!(value("producer_messages_sent_total{") as u64, summary.total());
    assert_eq!(
        value("producer_messages_sent_total{device_type=\"invalid\",status=\"invalid\"}") as u64,
        summary.invalid
    );
    assert_eq!(value("producer_message_size_bytes_count") as u64, summary.total());
    assert_eq!(value("producer_active_devices"), 50.0);
    assert!(body.contains("# TYPE producer_kafka_errors_total counter"));
    assert!(body.contains("# TYPE producer_message_size_bytes histogram"));
    assert!(http_get(addr, "/healthz").contains("ok"));
}

#[test]
fn bad_fractions_are_refused_with_the_flag_name() {
    let err = GeneratorConfig { duplicates: 1.5, ..Default::default() }.validate().unwrap_err();
    assert!(err.contains("--duplicates"), "{err}");
    let err = GeneratorConfig { rate: 0.0, ..Default::default() }.validate().unwrap_err();
    assert!(err.contains("--rate"), "{err}");
}
