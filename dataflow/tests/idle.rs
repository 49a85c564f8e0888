//! Idle partitions (live runs, `--idle-timeout`): an empty or silent partition does not stall
//! the pipeline, and what it receives later lands in exactly one table.
//!
//! A live run over a 3-partition topic of librdkafka's mock cluster (the file source reads
//! bounded only), partition 2 empty:
//! 1. without idleness (`--idle-timeout 0`) the empty partition holds the frontier at 0 and
//!    no window is committed (the problem this solves);
//! 2. with `--idle-timeout 4s`, while partitions 0 and 1 receive events continuously, every
//!    window their watermarks pass is committed within seconds;
//! 3. partition 2 then receives events older than the frontier and newer ones, the other
//!    partitions move on past them, and the run is stopped with SIGINT. Every event is in exactly one
//!    table: the older ones in `late` (filed under the frontier, like records of a newly
//!    discovered partition), the newer ones in `events`; every committed window's count
//!    equals a naive count of the events table's rows in that minute and type, and the
//!    counts of the minutes that received partition 2's newer events include them.
//!
//! Under 1, 2 and 3 workers: with 3, partition 2 is a worker's only partition, so that worker
//! follows the process's active partitions instead of its own.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::mocking::MockCluster;

mod common;
use common::Cell;

/// 2025-11-03T00:00:00Z in seconds.
const START: i64 = 1_762_128_000;
const TYPES: [&str; 5] = ["temperature", "pressure", "humidity", "motion", "light"];

/// An event line with id `id` at `START + second`.
fn line(id: &str, second: i64, i: usize) -> String {
    let t = chrono::DateTime::from_timestamp(START + second, 0).unwrap().format("%Y-%m-%dT%H:%M:%SZ");
    format!(
        r#"{{"event_id":"{id}","device_id":"device-{:03}","device_type":"{}","timestamp":"{t}","event_duration":{}.5,"value":1.0,"status":"normal"}}"#,
        i % 7,
        TYPES[i % TYPES.len()],
        i % 90
    )
}

/// Appends events `<prefix>-<second>` at every 10 s in `[from, to)` (seconds after START) to
/// the staging file of `partition` in `input` (sent to the topic by [`send`]).
fn append(input: &Path, partition: u32, prefix: &str, from: i64, to: i64) -> Vec<String> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(input.join(format!("partition-{partition}.jsonl")))
        .unwrap();
    let mut ids = Vec::new();
    for (i, second) in (from..to).step_by(10).enumerate() {
        let id = format!("{prefix}-{second}");
        writeln!(f, "{}", line(&id, second, i + partition as usize)).unwrap();
        ids.push(id);
    }
    ids
}

/// Sends the staged partition files of `staging` to `topic`, each to its partition.
fn send(brokers: &str, topic: &str, staging: &Path) {
    let config = connectors::kafka::SinkConfig {
        brokers: brokers.to_owned(),
        topic: topic.to_owned(),
        compression: "none".into(),
        options: vec![],
    };
    producer::kafka::replay(
        staging,
        &config,
        Arc::new(producer::metrics::ProducerMetrics::new()),
        &AtomicBool::new(false),
    )
    .unwrap();
}

fn engine(brokers: &str, topic: &str, output: &Path, workers: usize, idle: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_dataflow"))
        .args(["--brokers", brokers, "--topic", topic])
        .arg("--output")
        .arg(output)
        .args([
            "-w",
            &workers.to_string(),
            "--idle-timeout",
            idle,
            "--allowed-lateness",
            "1m",
            "--metrics-addr",
            "127.0.0.1:0",
            "--progress",
            "never",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The committed windows' start minutes (relative to START).
fn window_minutes(output: &Path) -> BTreeSet<i64> {
    common::read_table(output, "windows").iter().map(|r| (cell_i(&r[0]) / 1_000_000 - START) / 60).collect()
}

fn cell_i(c: &Cell) -> i64 {
    match c {
        Cell::I(v) => *v,
        other => panic!("not an integer: {other:?}"),
    }
}

fn cell_s(c: &Cell) -> &str {
    match c {
        Cell::S(v) => v,
        other => panic!("not a string: {other:?}"),
    }
}

/// Waits until every window minute in `minutes` is committed, at most `limit`.
fn wait_for_windows(
    output: &Path, minutes: std::ops::RangeInclusive<i64>, limit: Duration, child: &mut Child, what: &str,
) {
    let start = Instant::now();
    loop {
        let have = window_minutes(output);
        if minutes.clone().all(|m| have.contains(&m)) {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{what}: the engine exited ({status}) before the windows were committed");
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("{what}: windows {minutes:?} not all committed after {limit:?}; committed: {have:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn stop(mut child: Child) -> String {
    common::interrupt(&child);
    let status = common::wait_at_most(&mut child, Duration::from_secs(30), "stopping with SIGINT");
    let mut log = String::new();
    child.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    assert!(status.success(), "SIGINT must end the run with 0: {status}; log:\n{log}");
    log
}

/// Partitions 0 and 1 as live producers: every 100 ms, 10 s more of event time (an event
/// every 10 s on each), until told to stop; returns the ids sent.
fn produce(
    brokers: String, topic: String, stop: Arc<AtomicBool>, clock: Arc<std::sync::atomic::AtomicI64>,
) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut ids = Vec::new();
        while !stop.load(Relaxed) {
            let staging = tempfile::tempdir().unwrap();
            let from = clock.load(Relaxed);
            ids.extend(append(staging.path(), 0, "p0", from, from + 10));
            ids.extend(append(staging.path(), 1, "p1", from + 5, from + 10));
            send(&brokers, &topic, staging.path());
            clock.store(from + 10, Relaxed);
            std::thread::sleep(Duration::from_millis(100));
        }
        ids
    })
}

#[test]
fn an_empty_partition_holds_nothing_back_once_idle() {
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    // The problem: without idleness an empty partition holds every window open.
    cluster.create_topic("no-idle", 3, 1).unwrap();
    let staging = tempfile::tempdir().unwrap();
    append(staging.path(), 0, "p0", 0, 21 * 60);
    append(staging.path(), 1, "p1", 5, 21 * 60);
    send(&brokers, "no-idle", staging.path());
    let output = tempfile::tempdir().unwrap();
    let child = engine(&brokers, "no-idle", output.path(), 1, "0s");
    std::thread::sleep(Duration::from_secs(8));
    let log = stop(child);
    assert!(window_minutes(output.path()).is_empty(), "without idleness no window can close; log:\n{log}");

    for workers in [1, 2, 3] {
        let topic = format!("idle-w{workers}");
        cluster.create_topic(&topic, 3, 1).unwrap();
        let what = format!("-w {workers}");
        let output = tempfile::tempdir().unwrap();
        let mut child = engine(&brokers, &topic, output.path(), workers, "4s");
        // Partitions 0 and 1 receive events continuously, partition 2 nothing: once it is
        // idle, windows close as the others' watermarks pass them (lateness 1 minute).
        let (stop_producing, clock) =
            (Arc::new(AtomicBool::new(false)), Arc::new(std::sync::atomic::AtomicI64::new(0)));
        let producer = produce(brokers.clone(), topic.clone(), Arc::clone(&stop_producing), Arc::clone(&clock));
        wait_for_windows(output.path(), 0..=5, Duration::from_secs(60), &mut child, &what);

        // Partition 2 wakes up with events behind the frontier (minute 1; windows up to 5
        // are committed) and ahead of the producers (3 to 5 minutes ahead of their clock).
        let mut ids: BTreeMap<String, &str> = BTreeMap::new(); // id -> the table it must end in
        let ahead = clock.load(Relaxed) / 60 + 3;
        let staging = tempfile::tempdir().unwrap();
        for id in append(staging.path(), 2, "p2-old", 60 + 2, 2 * 60) {
            ids.insert(id, "late");
        }
        for id in append(staging.path(), 2, "p2-new", ahead * 60 + 3, (ahead + 3) * 60) {
            ids.insert(id, "events");
        }
        send(&brokers, &topic, staging.path());
        // The producers run past partition 2's newest events; partition 2 idles again.
        while clock.load(Relaxed) < (ahead + 6) * 60 {
            std::thread::sleep(Duration::from_millis(100));
        }
        wait_for_windows(output.path(), 0..=ahead + 3, Duration::from_secs(60), &mut child, &what);
        stop_producing.store(true, Relaxed);
        for id in producer.join().unwrap() {
            ids.insert(id, "events");
        }
        let log = stop(child);
        assert!(log.contains("partition idle"), "{what}: the idle partition is logged:\n{log}");

        // Every event in exactly one table.
        let mut found: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        let events = common::read_table(output.path(), "events");
        for row in &events {
            found.entry(cell_s(&row[0]).to_owned()).or_default().push("events");
        }
        for row in common::read_table(output.path(), "late") {
            found.entry(cell_s(&row[0]).to_owned()).or_default().push("late");
        }
        assert!(common::read_table(output.path(), "rejected").is_empty(), "{what}: nothing is rejected");
        // A live run cannot close the minutes its frontier has not passed: events after the
        // last committed window are not committed (and must not be).
        let last = *window_minutes(output.path()).last().unwrap();
        for (id, table) in &ids {
            let minute = id.rsplit('-').next().unwrap().parse::<i64>().unwrap() / 60;
            let expected: &[&str] = if minute <= last || *table == "late" { &[*table] } else { &[] };
            assert_eq!(
                found.get(id).map_or(&[][..], Vec::as_slice),
                expected,
                "{what}: event {id} (minute {minute}, last window {last})"
            );
        }
        let stray: Vec<_> = found.keys().filter(|id| !ids.contains_key(*id)).collect();
        assert!(stray.is_empty(), "{what}: rows of unknown events: {stray:?}");

        // Every committed window counts the distinct events of its minute and type.
        let mut naive: BTreeMap<(i64, String), i64> = BTreeMap::new();
        for row in &events {
            let minute = (cell_i(&row[3]) / 1_000_000 - START) / 60;
            *naive.entry((minute, cell_s(&row[2]).to_owned())).or_default() += 1;
        }
        let windows = common::read_table(output.path(), "windows");
        for row in &windows {
            let minute = (cell_i(&row[0]) / 1_000_000 - START) / 60;
            let key = (minute, cell_s(&row[2]).to_owned());
            assert_eq!(
                Some(&cell_i(&row[3])),
                naive.get(&key),
                "{what}: window {key:?} counts the events of its minute"
            );
        }
        let p2_minutes: BTreeSet<i64> = ids
            .keys()
            .filter(|id| id.starts_with("p2-new"))
            .map(|id| id.rsplit('-').next().unwrap().parse::<i64>().unwrap() / 60)
            .collect();
        for m in p2_minutes {
            let total: i64 =
                windows.iter().filter(|r| (cell_i(&r[0]) / 1_000_000 - START) / 60 == m).map(|r| cell_i(&r[3])).sum();
            let expected = ids
                .iter()
                .filter(|(id, t)| **t == "events" && id.rsplit('-').next().unwrap().parse::<i64>().unwrap() / 60 == m)
                .count() as i64;
            assert_eq!(total, expected, "{what}: minute {m} counts partition 2's events too");
        }
    }
}
