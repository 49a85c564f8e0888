//! `dataflow`: the engine binary. Parses flags (see `dataflow --help`), checks the input and
//! output before starting, runs the timely workers and prints a summary.

use std::io::IsTerminal;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use connectors::sink::LocalStore;
use connectors::source::file::FileSource;
use connectors::source::Source;
use dataflow::config::Args;
use dataflow::counters::Counters;
use dataflow::metrics::{serve, EngineMetrics};
use dataflow::operators::source::SourceConfig;
use dataflow::pipeline::{run, PipelineConfig};

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if let Err(e) = main_with(args) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn main_with(args: Args) -> anyhow::Result<()> {
    let communication = args.communication()?;
    let Some(input) = args.input.clone() else {
        anyhow::bail!("no input: pass --input DIR (a folder of partition-<p>.jsonl files, e.g. from `producer --out-dir DIR`)");
    };
    if !args.bounded {
        anyhow::bail!("only bounded runs read files: add --bounded (live tailing of files is not supported)");
    }
    let source = FileSource::new(&input);
    let partitions = source.partitions().with_context(|| format!("--input {input}"))?;
    let output = args.output.strip_prefix("file://").unwrap_or(&args.output).to_owned();
    if output.contains("://") {
        anyhow::bail!("--output {output}: only local folders are supported by this build (a path or file://PATH)");
    }
    let store = LocalStore::new(&output).with_context(|| format!("--output {output}"))?;
    tracing::info!(input = %input, partitions = partitions.len(), output = %output, workers = args.workers, processes = args.processes, "starting");

    let config = PipelineConfig {
        source: Arc::new(source),
        store: Arc::new(store),
        source_config: SourceConfig {
            bounded: true,
            lateness_micros: args.allowed_lateness.as_micros() as i64,
            max_message_bytes: args.max_message_bytes,
            batch_bytes: 256 * 1024,
        },
        dedup_horizon_minutes: Args::minutes(args.dedup_horizon, 0),
        daily_refresh_minutes: Args::minutes(args.daily_refresh, 1),
        log_provisional: args.show_provisional,
        rows_per_file: args.rows_per_file as usize,
    };
    let counters = Arc::new(Counters::new());
    let metrics = Arc::new(EngineMetrics::new(Arc::clone(&counters), usize::from(args.workers)));
    let metrics_addr = serve(&args.metrics_addr, metrics).context("--metrics-addr")?;
    tracing::info!(%metrics_addr, "serving /metrics, /healthz and /readyz");
    let show_progress = match args.progress.as_str() {
        "always" => true,
        "never" => false,
        _ => std::io::stderr().is_terminal(),
    };
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let progress = show_progress.then(|| spawn_progress(Arc::clone(&counters), Arc::clone(&done)));
    let result = run(config, communication, counters);
    done.store(true, Relaxed);
    if let Some(handle) = progress {
        let _ = handle.join();
    }
    let summary = result?;
    println!("{summary}");
    Ok(())
}

/// Prints a progress line to stderr every second until `done`.
fn spawn_progress(counters: Arc<Counters>, done: Arc<std::sync::atomic::AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let start = Instant::now();
        while !done.load(Relaxed) {
            std::thread::sleep(Duration::from_millis(250));
            let read = counters.read.load(Relaxed);
            let secs = start.elapsed().as_secs_f64().max(1e-9);
            let wm = counters.watermark_micros.load(Relaxed);
            let wm = if wm == i64::MIN { "-".to_owned() } else { connectors::schema::EventTime(wm).to_string() };
            let rows = &counters.rows_written;
            eprint!(
                "\r{read} lines ({:.0}/s)  rejected {}  late {}  duplicates {}  watermark {wm}  windows {}  days {}   ",
                read as f64 / secs,
                counters.rejected_total(),
                counters.late.load(Relaxed),
                counters.duplicates.load(Relaxed),
                rows[1].load(Relaxed),
                rows[2].load(Relaxed),
            );
        }
        eprintln!();
    })
}
