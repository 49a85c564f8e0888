//! `dataflow`: the engine binary. Parses flags (see `dataflow --help`), checks the input and
//! output before starting, runs the timely workers and prints a summary.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use connectors::files::FileSource;
use connectors::kafka::{KafkaConfig, KafkaSource};
use connectors::sink::{commit, object, DailyRow, Table, WindowRow};
use connectors::source::Source;
use dataflow::config::Args;
use dataflow::counters::Counters;
use dataflow::counters::{table_index, TABLE_NAMES};
use dataflow::embedded;
use dataflow::metrics::{serve, EngineMetrics};
use dataflow::operators::source::{Resume, SourceConfig};
use dataflow::pipeline::{run, PipelineConfig, RunError};

fn main() {
    // Logs never stop the engine: a closed stderr (a pipe whose reader went away) loses the
    // lines, nothing else (`log_internal_errors(false)`: the subscriber would otherwise
    // report the failed write on the same closed stderr, which panics). Colour only on a
    // terminal.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .log_internal_errors(false)
        .init();
    exit_on_panic();
    let args = Args::parse();
    if let Err(e) = main_with(args) {
        say(format_args!("error: {e:#}\n"));
        std::process::exit(1);
    }
}

/// Writes to stderr, ignoring a closed stderr (unlike `eprintln!`, which panics).
fn say(message: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = std::io::stderr().write_fmt(message);
}

/// A panic on any thread (a worker, a reading thread, the committer) ends the whole process
/// at once with exit code 101 and a message naming the thread: the other workers would
/// otherwise wait forever for the failed one, and a pod would look alive while doing
/// nothing. Nothing is lost: the next start recovers from the last commit.
fn exit_on_panic() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        let thread = std::thread::current();
        say(format_args!(
            "error: thread '{}' failed; the engine stops (exit code 101) and the next start resumes from the last commit\n",
            thread.name().unwrap_or("unnamed")
        ));
        std::process::exit(101);
    }));
}

/// A fatal failure an operator reports (a store that refuses a write, a committed file that
/// is gone: see `dataflow::failure`) ends the process at once with exit code 1 and the
/// failure's message; nothing is committed after it, and the next start resumes from the
/// last commit. The watcher exits without waiting for the workers to wind down; `run` also
/// returns the failure, and whichever of the two comes first prints it.
fn exit_on_failure(counters: Arc<Counters>) -> anyhow::Result<()> {
    std::thread::Builder::new()
        .name("failure".into())
        .spawn(move || {
            let error = counters.failure.wait();
            exit_failed(&error);
        })
        .context("cannot start the failure watcher")?;
    Ok(())
}

/// Prints a run's fatal failure (once: whichever thread comes first prints it, and the other
/// waits until it is printed) and exits with code 1.
fn exit_failed(error: &str) -> ! {
    static REPORT: std::sync::Once = std::sync::Once::new();
    REPORT.call_once(|| {
        say(format_args!(
            "error: {error}; the engine stops (exit code 1) and the next start resumes from the last commit\n"
        ))
    });
    std::process::exit(1);
}

fn main_with(args: Args) -> anyhow::Result<()> {
    let communication = args.communication()?;
    let stop = Arc::new(AtomicBool::new(false));
    // Where messages come from: files, a Kafka topic, or (neither given) an embedded Kafka
    // fed by the built-in producer. `_embedded` keeps the mock cluster alive for the run.
    let mut _embedded = None;
    let mut producer_thread = None;
    let (source, bounded): (Arc<dyn Source>, bool) = match (&args.input, &args.brokers) {
        (Some(_), Some(_)) => anyhow::bail!(
            "both --input and --brokers are given: choose files (--input DIR) or Kafka (--brokers HOST:PORT)"
        ),
        (Some(input), None) => {
            if !args.bounded {
                anyhow::bail!("only bounded runs read files: add --bounded (live tailing of files is not supported; use Kafka for live runs)");
            }
            (Arc::new(FileSource::new(input)), true)
        }
        (None, Some(brokers)) => {
            let source = KafkaSource::new(kafka_config(&args, brokers.clone())).context("--brokers")?;
            tracing::info!(brokers = %brokers, topic = %args.topic, bounded = args.bounded, "reading Kafka");
            (Arc::new(source), args.bounded)
        }
        (None, None) => {
            if args.bounded {
                anyhow::bail!("--bounded needs something to bound: pass --input DIR or --brokers HOST:PORT (the embedded run is live)");
            }
            let (cluster, brokers) = embedded::start(&args.topic, args.partitions)?;
            _embedded = Some(cluster);
            producer_thread = Some(embedded::spawn_producer(&args, &brokers, Arc::clone(&stop))?);
            let source = KafkaSource::new(kafka_config(&args, brokers.clone()))?;
            tracing::info!(topic = %args.topic, partitions = args.partitions, rate = args.rate, "embedded Kafka with the built-in producer");
            (Arc::new(source), false)
        }
    };
    // Listed once, here: the workers never wait on the broker (see `SourceConfig::partitions`).
    let partitions = source.partitions().with_context(|| match (&args.input, &args.brokers) {
        (Some(input), _) => format!("--input {input}"),
        (_, Some(brokers)) => format!("--brokers {brokers} (topic {})", args.topic),
        _ => "the embedded Kafka".to_owned(),
    })?;
    tracing::info!(partitions = partitions.len(), "listed the input's partitions");
    let input = source.identity();
    let output = match (&args.output, _embedded.is_some()) {
        (Some(output), _) => output.clone(),
        (None, false) => "./output".to_owned(),
        (None, true) => format!("./output/embedded-{}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ")),
    };
    let store = object::open(&output).context("--output")?;
    let records = match &args.checkpoint {
        Some(url) => commit::CheckpointStore { store: object::open(url).context("--checkpoint")?, dir: String::new() },
        None => commit::CheckpointStore::in_output(Arc::clone(&store)),
    };
    // The checkpoint: what earlier runs committed. Process 0 finishes the last commit and
    // removes uncommitted files before any worker of any process starts (the others cannot
    // start their workers before process 0 has joined the cluster).
    let mut checkpoint = commit::load(&records)?;
    if args.reset {
        if args.processes > 1 {
            anyhow::bail!("--reset deletes the output before any worker starts, which a cluster cannot order: run it once with -n 1 (or delete {output}), then start the cluster without it");
        }
        let plan = commit::ResetPlan::list(store.as_ref(), &records, &TABLE_NAMES)?;
        if !plan.is_empty() {
            say(format_args!(
                "--reset: deleting the tables and checkpoint of {output} ({plan}; checkpoint at {})\n",
                records.describe()
            ));
            commit::reset(store.as_ref(), &records, &plan)?;
        }
        checkpoint = commit::load(&records)?;
    }
    commit::check_input(&checkpoint, &records, &input)?;
    if args.process == 0 {
        let report = commit::recover(store.as_ref(), &records, &checkpoint, &TABLE_NAMES)?;
        if checkpoint.last.is_some() || report.deleted > 0 {
            tracing::info!(
                checkpoint = %records.describe(),
                last_epoch = checkpoint.last.as_ref().map(|r| r.epoch),
                frontier = ?checkpoint.last.as_ref().and_then(|r| r.frontier_minute).map(|m| connectors::schema::EventTime(m as i64 * 60_000_000).to_string()),
                committed_files = checkpoint.names.committed.len(),
                published = report.published,
                deleted_uncommitted = report.deleted,
                "resuming from the checkpoint: committed files are not written again"
            );
        }
    }
    let resume = resume_from(checkpoint.last.as_ref());
    tracing::info!(output = %output, workers = args.workers, processes = args.processes, bounded, "starting");

    let config = PipelineConfig {
        input,
        source,
        store,
        source_config: SourceConfig {
            partitions,
            bounded,
            lateness_micros: args.allowed_lateness.as_micros() as i64,
            max_message_bytes: args.max_message_bytes,
            batch_bytes: connectors::source::BATCH_BYTES,
            stop: Arc::clone(&stop),
            discover_every: (!bounded).then_some(Duration::from_secs(10)),
            idle_poll: if bounded { Duration::from_millis(50) } else { Duration::from_millis(250) },
            max_ahead_minutes: Args::minutes(args.max_ahead, 60),
            resume: Arc::new(resume),
            idle_timeout: (!bounded && !args.idle_timeout.is_zero()).then_some(args.idle_timeout),
        },
        dedup_horizon_minutes: Args::minutes(args.dedup_horizon, 0),
        daily_refresh_minutes: Args::minutes(args.daily_refresh, 1),
        log_provisional: args.show_provisional,
        rows_per_file: args.rows_per_file as usize,
        first_epoch: checkpoint.next_epoch(),
        previous: checkpoint.last.clone(),
        records,
        committed: Arc::new(checkpoint.names),
        commit_interval: args.commit_interval,
        commit_max_bytes: args.commit_max_mb.saturating_mul(1_000_000),
        compact_after_minutes: args.compact_after.map(|d| Args::minutes(d, 0)),
        fold_every: args.fold_every,
    };
    let counters = Arc::new(Counters::new());
    exit_on_failure(Arc::clone(&counters))?;
    let metrics = Arc::new(EngineMetrics::new(Arc::clone(&counters), usize::from(args.workers)));
    let metrics_addr = serve(&args.metrics_addr, metrics).context("--metrics-addr")?;
    tracing::info!(%metrics_addr, "serving /metrics, /healthz and /readyz");
    install_ctrlc(bounded, Arc::clone(&stop))?;
    let show_progress = match args.progress.as_str() {
        "always" => true,
        "never" => false,
        _ => std::io::stderr().is_terminal(),
    };
    let done = Arc::new(AtomicBool::new(false));
    let progress = show_progress.then(|| spawn_progress(Arc::clone(&counters), Arc::clone(&done)));
    let result = run(config, communication, counters);
    done.store(true, Relaxed);
    stop.store(true, Relaxed);
    if let Some(handle) = progress {
        let _ = handle.join();
    }
    if let Some(handle) = producer_thread {
        match handle.join() {
            Ok(Ok(summary)) => tracing::info!(%summary, "built-in producer stopped"),
            Ok(Err(e)) => tracing::warn!(error = %e, "built-in producer failed"),
            Err(_) => tracing::warn!("built-in producer panicked"),
        }
    }
    let summary = match result {
        Ok(summary) => summary,
        Err(RunError::Failed(error)) => exit_failed(&error),
        Err(e) => return Err(e.into()),
    };
    {
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), "{summary}"); // a closed stdout loses the summary only
    }
    Ok(())
}

/// Where the partitions are read again after a restart: the last record's frontier and
/// resume points. A version-1 record has none: every partition is replayed from its start.
fn resume_from(last: Option<&commit::CommitRecord>) -> Resume {
    match last {
        Some(r) if !r.resume.is_empty() => {
            Resume { from_minute: r.frontier_minute.unwrap_or(u64::MAX), points: r.resume.clone() }
        }
        _ => Resume::default(),
    }
}

fn kafka_config(args: &Args, brokers: String) -> KafkaConfig {
    KafkaConfig {
        brokers,
        topic: args.topic.clone(),
        group: args.group.clone(),
        start_from: args.start_from,
        options: args.kafka_options.clone(),
    }
}

/// Ctrl-C: a bounded run aborts at once (nothing partial is published; run it again); a live
/// run stops reading and writes what the frontier has completed, and a second Ctrl-C aborts.
fn install_ctrlc(bounded: bool, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    ctrlc::set_handler(move || {
        if bounded || stop.swap(true, Relaxed) {
            say(format_args!("\ninterrupted\n"));
            std::process::exit(130);
        }
        say(format_args!("\nstopping: writing what is complete (Ctrl-C again to abort)\n"));
    })
    .context("cannot install the Ctrl-C handler")
}

/// Prints a progress line to stderr every second until `done`.
fn spawn_progress(counters: Arc<Counters>, done: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let start = Instant::now();
        while !done.load(Relaxed) {
            std::thread::sleep(Duration::from_millis(250));
            let read = counters.read.load(Relaxed);
            let secs = start.elapsed().as_secs_f64().max(1e-9);
            let wm = counters.watermark_micros.load(Relaxed);
            let wm = if wm == i64::MIN { "-".to_owned() } else { connectors::schema::EventTime(wm).to_string() };
            let rows = &counters.rows_written;
            let lag = counters.partition_lag.lock().map(|l| l.values().sum::<u64>()).unwrap_or(0);
            say(format_args!(
                "\r{read} lines ({:.0}/s)  lag {lag}  rejected {}  late {}  duplicates {}  watermark {wm}  windows {}  days {}   ",
                read as f64 / secs,
                counters.rejected_total(),
                counters.late.load(Relaxed),
                counters.duplicates.load(Relaxed),
                rows[table_index(WindowRow::NAME)].load(Relaxed),
                rows[table_index(DailyRow::NAME)].load(Relaxed),
            ));
        }
        say(format_args!("\n"));
    })
}
