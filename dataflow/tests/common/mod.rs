//! Shared helpers of the engine tests: run the engine, read its tables back into comparable
//! rows, and a naive single-threaded recomputation of every table written from the design's
//! definitions (it shares only the message validator with the engine).

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use arrow_array::{
    Array, BinaryArray, Date32Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use connectors::files::FileSource;
use connectors::parse::{parse_event, DEFAULT_MAX_MESSAGE_BYTES};
use connectors::sink::tables::read_parquet_dir;
use connectors::sink::LocalStore;
use dataflow::counters::Counters;
use dataflow::operators::source::SourceConfig;
use dataflow::pipeline::{run, PipelineConfig, RunSummary};

/// Allowed lateness used by the tests (the default: 10 minutes).
pub const LATENESS_MICROS: i64 = 10 * 60 * 1_000_000;
/// Dedup horizon used by the tests, minutes.
pub const DEDUP_HORIZON_MINUTES: i64 = 60;

/// One cell of a table row.
#[derive(Clone, Debug, PartialEq, PartialOrd)]
pub enum Cell {
    Null,
    I(i64),
    F(f64),
    S(String),
    B(Vec<u8>),
}

/// A table: rows of cells in schema order, `processing_time` left out, sorted.
pub type Rows = Vec<Vec<Cell>>;

/// The five tables.
pub use connectors::sink::TABLE_NAMES as TABLES;

/// Writes generated partition files to `dir`: `count` events at `rate` per second from
/// `start` (RFC 3339) over 3 partitions, with 3 % duplicates and 1 % each of late, invalid and
/// outlier events.
pub fn generate_mixed(dir: &Path, seed: u64, rate: f64, count: u64, start: &str) {
    let config = producer::GeneratorConfig {
        seed,
        rate,
        count: Some(count),
        start: start.parse().unwrap(),
        partitions: 3,
        duplicates: 0.03,
        late: 0.01,
        invalid: 0.01,
        outliers: 0.01,
        ..Default::default()
    };
    producer::write_partition_files(&config, dir).expect("generate partition files");
}

/// Runs the engine in this process with `workers` threads over `input`, writing to `output`.
pub fn run_engine(input: &Path, output: &Path, workers: usize) -> RunSummary {
    run_engine_on(Arc::new(FileSource::new(input)), output, workers)
}

/// Runs the engine in this process with `workers` threads over any bounded source.
pub fn run_engine_on(source: Arc<dyn connectors::source::Source>, output: &Path, workers: usize) -> RunSummary {
    try_run_engine_on(source, output, workers).expect("engine run")
}

/// Like [`run_engine_on`], returning the run's failure instead of panicking.
pub fn try_run_engine_on(
    source: Arc<dyn connectors::source::Source>, output: &Path, workers: usize,
) -> Result<RunSummary, dataflow::pipeline::RunError> {
    let store: Arc<dyn connectors::sink::TableStore> = Arc::new(LocalStore::new(output).unwrap());
    let partitions = source.partitions().expect("list the partitions");
    let config = PipelineConfig {
        input: source.identity(),
        source,
        records: connectors::sink::commit::CheckpointStore::in_output(Arc::clone(&store)),
        store,
        source_config: SourceConfig {
            partitions,
            bounded: true,
            lateness_micros: LATENESS_MICROS,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            batch_bytes: 4096,
            stop: Default::default(),
            discover_every: None,
            idle_poll: std::time::Duration::from_millis(10),
            max_ahead_minutes: 180,
            resume: Default::default(),
            idle_timeout: None,
        },
        dedup_horizon_minutes: DEDUP_HORIZON_MINUTES as u64,
        daily_refresh_minutes: 60,
        log_provisional: false,
        rows_per_file: 1_000_000,
        committed: Default::default(),
        first_epoch: 1,
        previous: None,
        commit_interval: std::time::Duration::ZERO,
        commit_max_bytes: 0,
        compact_after_minutes: None,
        fold_every: connectors::sink::commit::FOLD_EVERY,
    };
    let comm =
        if workers == 1 { timely::CommunicationConfig::Thread } else { timely::CommunicationConfig::Process(workers) };
    run(config, comm, Arc::new(Counters::new()))
}

fn cells(batch: &RecordBatch, row: usize) -> Vec<Cell> {
    let mut out = Vec::new();
    for (field, col) in batch.schema().fields().iter().zip(batch.columns()) {
        if field.name() == "processing_time" {
            continue;
        }
        if col.is_null(row) {
            out.push(Cell::Null);
            continue;
        }
        let any = col.as_any();
        let cell = if let Some(a) = any.downcast_ref::<StringArray>() {
            Cell::S(a.value(row).to_owned())
        } else if let Some(a) = any.downcast_ref::<Int64Array>() {
            Cell::I(a.value(row))
        } else if let Some(a) = any.downcast_ref::<Int32Array>() {
            Cell::I(i64::from(a.value(row)))
        } else if let Some(a) = any.downcast_ref::<Float64Array>() {
            Cell::F(a.value(row))
        } else if let Some(a) = any.downcast_ref::<TimestampMicrosecondArray>() {
            Cell::I(a.value(row))
        } else if let Some(a) = any.downcast_ref::<Date32Array>() {
            Cell::I(i64::from(a.value(row)))
        } else if let Some(a) = any.downcast_ref::<BinaryArray>() {
            Cell::B(a.value(row).to_vec())
        } else {
            panic!("unexpected column type {:?}", field.data_type());
        };
        out.push(cell);
    }
    out
}

fn sort_rows(rows: &mut Rows) {
    rows.sort_by(|a, b| a.partial_cmp(b).expect("no NaN in tables"));
}

/// Reads a table written by the engine.
pub fn read_table(output: &Path, table: &str) -> Rows {
    let mut rows = Vec::new();
    for batch in read_parquet_dir(&output.join(table)).unwrap() {
        for r in 0..batch.num_rows() {
            rows.push(cells(&batch, r));
        }
    }
    sort_rows(&mut rows);
    rows
}

/// Reads all five tables.
pub fn read_tables(output: &Path) -> BTreeMap<&'static str, Rows> {
    TABLES.iter().map(|t| (*t, read_table(output, t))).collect()
}

/// Asserts two tables are equal, floats to 1e-12 relative.
pub fn assert_rows_eq(table: &str, got: &Rows, expected: &Rows) {
    assert_eq!(got.len(), expected.len(), "{table}: row count differs");
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        assert_eq!(g.len(), e.len(), "{table} row {i}: column count");
        for (j, (a, b)) in g.iter().zip(e).enumerate() {
            let same = match (a, b) {
                (Cell::F(x), Cell::F(y)) => x == y || (x - y).abs() <= 1e-12 * x.abs().max(y.abs()),
                _ => a == b,
            };
            assert!(
                same,
                "{table} row {i} column {j}: engine {a:?} != reference {b:?}\n engine row {g:?}\n reference row {e:?}"
            );
        }
    }
}

/// Asserts every table of `output` equals the corresponding `expected` table.
pub fn assert_tables_eq(output: &Path, expected: &BTreeMap<&'static str, Rows>) {
    let got = read_tables(output);
    for t in TABLES {
        assert_rows_eq(t, &got[t], &expected[t]);
    }
}

/// The messages of each partition file: (partition, offset, bytes), in order.
fn messages(input: &Path) -> Vec<Vec<(u32, u64, Vec<u8>)>> {
    let mut parts: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir(input)
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            let p = name.strip_prefix("partition-")?.strip_suffix(".jsonl")?.parse().ok()?;
            Some((p, e.path()))
        })
        .collect();
    parts.sort();
    parts
        .into_iter()
        .map(|(p, path)| {
            let bytes = std::fs::read(path).unwrap();
            let mut lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
            lines.pop(); // after the last `\n`: not a message
            lines.into_iter().enumerate().map(|(i, l)| (p, i as u64, l.to_vec())).collect()
        })
        .collect()
}

fn f64_sum(xs: &[f64]) -> f64 {
    // Straightforward, in ascending order.
    xs.iter().sum()
}

fn nearest_rank_p95(sorted: &[f64]) -> f64 {
    let k = sorted.len();
    let rank = (0.95 * k as f64).ceil() as usize;
    // Guard against 0.95*k landing a hair above an integer in binary.
    let rank = if (rank as f64 - 1.0) * 100.0 >= 95.0 * k as f64 { rank - 1 } else { rank };
    sorted[rank.max(1) - 1]
}

/// Recomputes every table naively from the partition files.
pub fn reference(input: &Path) -> BTreeMap<&'static str, Rows> {
    const MIN: i64 = 60_000_000;
    const DAY: i64 = 86_400_000_000;
    let mut events = Vec::new();
    let mut late = Vec::new();
    let mut rejected = Vec::new();
    // Validation and lateness, partition by partition.
    let mut accepted = Vec::new();
    for part in messages(input) {
        let mut max_t: Option<i64> = None;
        for (p, off, raw) in part {
            match parse_event(&raw, DEFAULT_MAX_MESSAGE_BYTES) {
                Err(reason) => rejected.push(vec![
                    Cell::I(p as i64),
                    Cell::I(off as i64),
                    Cell::S(reason.as_str().into()),
                    Cell::B(raw.clone()),
                ]),
                Ok(e) => {
                    let t = e.timestamp.micros();
                    if let Some(m) = max_t {
                        if t < m - LATENESS_MICROS {
                            late.push((p, off, e.into_owned(), m - LATENESS_MICROS));
                            continue;
                        }
                    }
                    max_t = Some(max_t.map_or(t, |m| m.max(t)));
                    accepted.push((p, off, e.into_owned()));
                }
            }
        }
    }
    // Dedup: per id, copies in (event time, partition, offset) order; a copy is a duplicate
    // when its minute is within the horizon of the last kept copy's minute.
    let mut by_id: HashMap<String, Vec<(i64, u32, u64, usize)>> = HashMap::new();
    for (i, (p, off, e)) in accepted.iter().enumerate() {
        by_id.entry(e.event_id.to_string()).or_default().push((e.timestamp.micros(), *p, *off, i));
    }
    let mut keep = vec![false; accepted.len()];
    for copies in by_id.values_mut() {
        copies.sort();
        let mut last_kept_minute: Option<i64> = None;
        for &(t, _, _, i) in copies.iter() {
            let minute = t.div_euclid(MIN);
            if last_kept_minute.is_some_and(|m| minute <= m + DEDUP_HORIZON_MINUTES) {
                continue;
            }
            last_kept_minute = Some(minute);
            keep[i] = true;
        }
    }
    let distinct: Vec<_> = accepted.iter().zip(&keep).filter(|(_, k)| **k).map(|(a, _)| a).collect();
    let event_cells = |p: u32, off: u64, e: &connectors::schema::OwnedEvent| {
        vec![
            Cell::S(e.event_id.to_string()),
            Cell::S(e.device_id.to_string()),
            Cell::S(e.device_type.as_str().into()),
            Cell::I(e.timestamp.micros()),
            Cell::F(e.event_duration),
            Cell::F(e.value),
            Cell::S(e.status.as_str().into()),
            e.location.as_ref().map_or(Cell::Null, |s| Cell::S(s.to_string())),
            e.firmware.as_ref().map_or(Cell::Null, |s| Cell::S(s.to_string())),
            Cell::I(p as i64),
            Cell::I(off as i64),
        ]
    };
    for (p, off, e) in &distinct {
        events.push(event_cells(*p, *off, e));
    }
    let mut late_rows: Rows = late
        .iter()
        .map(|(p, off, e, w)| {
            let mut r = event_cells(*p, *off, e);
            r.push(Cell::I(*w));
            r
        })
        .collect();
    // Windows.
    let mut windows: BTreeMap<(i64, &str), Vec<(f64, f64)>> = BTreeMap::new();
    for (_, _, e) in &distinct {
        let start = e.timestamp.micros().div_euclid(MIN) * MIN;
        windows.entry((start, e.device_type.as_str())).or_default().push((e.event_duration, e.value));
    }
    let mut window_rows = Vec::new();
    for ((start, ty), vals) in windows {
        let mut d: Vec<f64> = vals.iter().map(|v| v.0).collect();
        d.sort_by(f64::total_cmp);
        let v: Vec<f64> = vals.iter().map(|v| v.1).collect();
        let n = d.len() as f64;
        window_rows.push(vec![
            Cell::I(start),
            Cell::I(start + MIN),
            Cell::S(ty.into()),
            Cell::I(d.len() as i64),
            Cell::F(f64_sum(&d) / n),
            Cell::F(d[0]),
            Cell::F(d[d.len() - 1]),
            Cell::F(f64_sum(&v) / n),
            Cell::F(nearest_rank_p95(&d)),
        ]);
    }
    // Daily p95.
    let mut days: BTreeMap<(i64, &str), Vec<f64>> = BTreeMap::new();
    for (_, _, e) in &distinct {
        days.entry((e.timestamp.micros().div_euclid(DAY), e.device_type.as_str())).or_default().push(e.event_duration);
    }
    let mut daily_rows = Vec::new();
    for ((day, ty), mut d) in days {
        if d.len() < 500 {
            continue;
        }
        d.sort_by(f64::total_cmp);
        let n = d.len() as f64;
        let mean = f64_sum(&d) / n;
        let var = d.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
        let sd = var.sqrt();
        let kept: Vec<f64> = d.iter().copied().filter(|x| (x - mean).abs() <= 3.0 * sd).collect();
        daily_rows.push(vec![
            Cell::I(day),
            Cell::S(ty.into()),
            Cell::I(d.len() as i64),
            Cell::I(kept.len() as i64),
            Cell::I((d.len() - kept.len()) as i64),
            Cell::F(mean),
            Cell::F(sd),
            Cell::F(nearest_rank_p95(&kept)),
            Cell::F(f64_sum(&kept) / kept.len() as f64),
        ]);
    }
    let mut tables = BTreeMap::new();
    for (name, mut rows) in [
        ("events", events),
        ("windows", window_rows),
        ("daily_p95", daily_rows),
        ("late", std::mem::take(&mut late_rows)),
        ("rejected", rejected),
    ] {
        sort_rows(&mut rows);
        tables.insert(name, rows);
    }
    tables
}

/// Every committed file path under `output`, relative, sorted.
pub fn file_list(output: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                walk(&e.path(), root, out);
            } else {
                out.push(e.path().strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    if output.exists() {
        walk(output, output, &mut out);
    }
    // Table files only: not the commit records under `_checkpoint/`.
    out.retain(|f| !f.starts_with('_'));
    out.sort();
    out
}

/// Waits for `child` at most `limit`; kills it and fails the test if it is still running.
pub fn wait_at_most(
    child: &mut std::process::Child, limit: std::time::Duration, what: &str,
) -> std::process::ExitStatus {
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: the engine was still running after {limit:?} (a hang)");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Sends SIGINT (what Ctrl-C sends) to `child`.
pub fn interrupt(child: &std::process::Child) {
    let status = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success(), "kill -INT {} failed", child.id());
}
