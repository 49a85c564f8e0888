//! The engine over Kafka, in this process, against librdkafka's mock cluster (a
//! Kafka-protocol broker inside librdkafka; the real-broker test is `tests/e2e/kafka.sh`):
//!
//! - a bounded run over a topic that holds a generated folder's messages writes exactly the
//!   tables of a bounded run over the folder itself, with 1 and 2 workers;
//! - the embedded default run (`dataflow` with no input flags) commits window rows while
//!   live, and a SIGINT stops it with exit 0 and readable Parquet;
//! - a live run over a topic compacts a closed hour into the rows of the bounded run, and a
//!   second live run after a Ctrl-C resumes with every event exactly once.

//!
//! The mock cluster keeps at most 5 MB of message sets per partition and silently drops the
//! oldest beyond that (more message sets, so more overhead, when the machine is loaded and
//! batches are small): the data sets here stay well below, at about 2 MB per partition.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{assert_rows_eq, file_list, generate_mixed, read_table, read_tables, run_engine, run_engine_on, TABLES};
use connectors::kafka::{KafkaConfig, KafkaSource, StartFrom};
use rdkafka::mocking::MockCluster;

fn generate(dir: &Path) {
    generate_mixed(dir, 11, 5.0, 24_000, "2025-11-03T23:00:00Z");
}

#[test]
fn a_bounded_run_over_a_topic_equals_the_run_over_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    generate(&input);

    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("iot-events", 3, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let producer_config = connectors::kafka::SinkConfig {
        brokers: brokers.clone(),
        topic: "iot-events".into(),
        compression: "none".into(),
        options: vec![],
    };
    let sent = producer::kafka::replay(
        &input,
        &producer_config,
        Arc::new(producer::metrics::ProducerMetrics::new()),
        &AtomicBool::new(false),
    )
    .unwrap();
    let lines: Vec<u64> = (0..3)
        .map(|p| {
            std::fs::read(input.join(format!("partition-{p}.jsonl"))).unwrap().iter().filter(|&&b| b == b'\n').count()
                as u64
        })
        .collect();
    assert_eq!(sent, lines, "replay sends every line of every partition");

    let files_out = dir.path().join("files");
    let from_files = run_engine(&input, &files_out, 1);
    let expected = read_tables(&files_out);
    assert!(expected["windows"].len() > 100 && !expected["rejected"].is_empty() && !expected["late"].is_empty());
    for workers in [1, 2] {
        let source = KafkaSource::new(KafkaConfig {
            brokers: brokers.clone(),
            topic: "iot-events".into(),
            group: "test".into(),
            start_from: StartFrom::Earliest,
            options: vec![],
        })
        .unwrap();
        let out = dir.path().join(format!("kafka-w{workers}"));
        let summary = run_engine_on(Arc::new(source), &out, workers);
        assert_eq!(summary.read, from_files.read, "-w {workers}: messages read");
        for table in TABLES {
            assert_rows_eq(&format!("{table} (Kafka, -w {workers})"), &read_table(&out, table), &expected[table]);
        }
        assert_eq!(file_list(&out), file_list(&files_out), "-w {workers}: file names");
    }
}

#[test]
fn the_embedded_run_commits_windows_live_and_stops_cleanly_on_sigint() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut child = Command::new(env!("CARGO_BIN_EXE_dataflow"))
        .args([
            "-w",
            "2",
            "--allowed-lateness",
            "2s",
            "--metrics-addr",
            "127.0.0.1:0",
            "--producer-metrics-addr",
            "127.0.0.1:0",
            "--progress",
            "never",
        ])
        .arg("--output")
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The first window closes once event time (= wall clock) passes the end of the current
    // minute plus the allowed lateness: at most about 62 s.
    let deadline = Instant::now() + Duration::from_secs(150);
    let windows = out.join("windows");
    let committed_window = || windows.exists() && file_list(&out).iter().any(|f| f.starts_with("windows/"));
    while !committed_window() {
        assert!(Instant::now() < deadline, "no window row was committed within 150 s");
        assert!(child.try_wait().unwrap().is_none(), "the embedded run exited early");
        std::thread::sleep(Duration::from_millis(500));
    }
    common::interrupt(&child);
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "exit {:?}\n{stdout}\n{}", output.status, String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("lines read"), "the summary is printed: {stdout}");
    let tables = read_tables(&out);
    assert!(!tables["windows"].is_empty() && !tables["events"].is_empty());
    // No temporary file is left behind, and every window's count is the number of distinct
    // events of its minute that were written (both tables hold only complete minutes).
    assert!(
        file_list(&out).iter().all(|f| !f.contains("inprogress") && f.ends_with(".parquet")),
        "{:?}",
        file_list(&out)
    );
    use common::Cell;
    let mut per_minute: std::collections::HashMap<(String, i64), i64> = std::collections::HashMap::new();
    for e in &tables["events"] {
        let (Cell::S(ty), Cell::I(ts)) = (&e[2], &e[3]) else { panic!("events row {e:?}") };
        *per_minute.entry((ty.clone(), ts.div_euclid(60_000_000) * 60_000_000)).or_default() += 1;
    }
    for w in &tables["windows"] {
        let (Cell::I(start), Cell::S(ty), Cell::I(count)) = (&w[0], &w[2], &w[3]) else { panic!("windows row {w:?}") };
        assert_eq!(
            per_minute.get(&(ty.clone(), *start)),
            Some(count),
            "window {ty} at {start}: count vs the events table"
        );
    }
}

/// Compaction and a live restart: the topic first holds the first 75 % of each partition's
/// messages (23:00 to about 00:15). A live run with `--compact-after 2m` merges hour 23's
/// minute files of every table into `part-c` files once its frontier is past 00:02; the
/// merged folder holds exactly the rows a bounded run over all messages writes for that hour,
/// and the checkpoint commits exactly the visible files. It is stopped (Ctrl-C), the rest of
/// the messages (to 00:40) are produced, and a second live run on the same output resumes:
/// the events and windows committed before its last frontier are exactly the bounded run's.
#[test]
fn a_live_run_compacts_closed_hours_into_the_rows_of_the_bounded_run() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    generate_mixed(&input, 5, 3.0, 18_000, "2025-11-03T23:00:00Z");
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("iot-events", 3, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let producer_config = connectors::kafka::SinkConfig {
        brokers: brokers.clone(),
        topic: "iot-events".into(),
        compression: "none".into(),
        options: vec![],
    };
    let (first, rest) = (dir.path().join("first"), dir.path().join("rest"));
    for (d, p) in [(&first, 0), (&rest, 0), (&first, 1), (&rest, 1), (&first, 2), (&rest, 2)] {
        std::fs::create_dir_all(d).unwrap();
        let text = std::fs::read(input.join(format!("partition-{p}.jsonl"))).unwrap();
        let lines: Vec<&[u8]> = text.split_inclusive(|b| *b == b'\n').collect();
        let cut = lines.len() * 3 / 4;
        let part = if d == &first { &lines[..cut] } else { &lines[cut..] };
        std::fs::write(d.join(format!("partition-{p}.jsonl")), part.concat()).unwrap();
    }
    let replay = |dir: &Path| {
        producer::kafka::replay(
            dir,
            &producer_config,
            Arc::new(producer::metrics::ProducerMetrics::new()),
            &AtomicBool::new(false),
        )
        .unwrap()
    };
    replay(&first);
    let reference = dir.path().join("bounded");
    run_engine(&input, &reference, 1);

    let out = dir.path().join("live");
    // The live run's flags, the same for its first start and its restart.
    let live_args = [
        "--brokers",
        brokers.as_str(),
        "--topic",
        "iot-events",
        "--compact-after",
        "2m",
        "-w",
        "2",
        "--metrics-addr",
        "127.0.0.1:0",
        "--progress",
        "never",
    ];
    let mut child = Command::new(env!("CARGO_BIN_EXE_dataflow"))
        .args(live_args)
        .arg("--output")
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let hour = "year=2025/month=11/day=03/hour=23";
    let merged = |table: &str| out.join(table).join(hour).join("part-c00000.parquet");
    let deadline = Instant::now() + Duration::from_secs(180);
    while !["events", "windows", "late", "rejected"].iter().all(|t| merged(t).exists()) {
        assert!(Instant::now() < deadline, "hour 23 was not compacted within 180 s: {:?}", file_list(&out));
        assert!(child.try_wait().unwrap().is_none(), "the live run exited early");
        std::thread::sleep(Duration::from_millis(500));
    }
    common::interrupt(&child);
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    for table in ["events", "windows", "late", "rejected"] {
        let folder = format!("{table}/{hour}");
        let names: Vec<_> = file_list(&out).into_iter().filter(|f| f.starts_with(&folder)).collect();
        assert!(!names.is_empty() && names.iter().all(|f| f.contains("/part-c")), "{folder}: {names:?}");
        let parent = format!("{table}/year=2025/month=11/day=03");
        assert_rows_eq(
            &folder,
            &read_table(&out.join(&parent), "hour=23"),
            &read_table(&reference.join(&parent), "hour=23"),
        );
    }
    let store = connectors::sink::commit::CheckpointStore::in_output(Arc::new(
        connectors::sink::LocalStore::new(&out).unwrap(),
    ));
    let checkpoint = connectors::sink::commit::load(&store).unwrap();
    let live: std::collections::HashSet<String> =
        checkpoint.names.committed.difference(&checkpoint.names.replaced).cloned().collect();
    let visible: std::collections::HashSet<String> =
        file_list(&out).into_iter().filter(|f| f.ends_with(".parquet")).collect();
    assert_eq!(live, visible, "the checkpoint commits exactly the visible files");
    assert!(checkpoint.names.replaced.iter().any(|f| f.starts_with("events/") && f.contains("/part-m")));
    let first_frontier =
        checkpoint.last.as_ref().and_then(|r| r.frontier_minute).expect("a stop keeps the frontier of the last commit");

    // The rest of the messages arrive; restart live on the same output, stop once it has
    // read everything there is.
    replay(&rest);
    let mut child = Command::new(env!("CARGO_BIN_EXE_dataflow"))
        .args(live_args)
        .arg("--output")
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    let reached = || {
        connectors::sink::commit::load(&store).ok().and_then(|c| c.last).and_then(|r| r.frontier_minute).unwrap_or(0)
    };
    while reached() < first_frontier + 20 {
        assert!(Instant::now() < deadline, "the second run did not advance 20 minutes within 180 s");
        assert!(child.try_wait().unwrap().is_none(), "the second live run exited early");
        std::thread::sleep(Duration::from_millis(500));
    }
    common::interrupt(&child);
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let last = connectors::sink::commit::load(&store).unwrap().last.unwrap();
    let frontier = last.frontier_minute.unwrap();
    assert!(frontier > first_frontier && last.resume.len() == 3, "the second run went further: {last:?}");
    // Every committed event and window before that frontier, exactly once.
    let before = |rows: Vec<Vec<common::Cell>>, column: usize| -> Vec<Vec<common::Cell>> {
        rows.into_iter()
            .filter(|r| matches!(r[column], common::Cell::I(ts) if (ts.div_euclid(60_000_000) as u64) < frontier))
            .collect()
    };
    let (live, bounded) = (before(read_table(&out, "events"), 3), before(read_table(&reference, "events"), 3));
    assert!(live.len() > 12_000, "{} events", live.len());
    assert_rows_eq("events before the last frontier, after a live restart", &live, &bounded);
    let (live, bounded) = (before(read_table(&out, "windows"), 0), before(read_table(&reference, "windows"), 0));
    assert!(live.len() > 400, "{} windows", live.len());
    assert_rows_eq("windows before the last frontier, after a live restart", &live, &bounded);
}
