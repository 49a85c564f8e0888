//! `producer`: generates IoT sensor events into Kafka or partition files. See `--help`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use connectors::kafka::SinkConfig;
use producer::files::write_partition_files_with;
use producer::kafka;
use producer::metrics::{serve, ProducerMetrics};
use producer::GeneratorConfig;

#[derive(Parser)]
#[command(
    name = "producer",
    version,
    about = "Generates realistic IoT sensor events (with duplicates, late, invalid and outlier events) into Kafka or partition files.",
    args_conflicts_with_subcommands = true,
    after_help = "EXAMPLES:
  # A week at 10 events/s with 2% duplicates into partition files (takes seconds, not a week)
  producer --out-dir data --duration 7d --rate 10 --duplicates 0.02 --start 2025-11-03T00:00:00Z

  # Every kind of trouble, reproducibly
  producer --out-dir data --count 100000 --seed 7 --duplicates 0.02 --late 0.01 --invalid 0.01 --outliers 0.01

  # Live into Kafka, paced in wall-clock time, metrics on :8082
  producer --brokers localhost:9092 --topic iot-events --rate 10

  # Replay a folder into a topic, each file into its partition, in order
  producer replay data --brokers localhost:9092 --topic iot-events"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    generate: GenerateArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Write a folder of partition-<p>.jsonl files into a topic, preserving each partition's order.
    Replay {
        /// The folder.
        dir: PathBuf,
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        common: CommonArgs,
    },
}

#[derive(Args)]
struct KafkaArgs {
    /// Kafka bootstrap servers.
    #[arg(long, env = "KAFKA_BROKERS")]
    brokers: Option<String>,
    /// Topic (created with --partitions partitions if missing).
    #[arg(long, env = "KAFKA_TOPIC", default_value = "iot-events")]
    topic: String,
    /// Record compression: none, gzip, snappy, lz4, zstd.
    #[arg(long, default_value = "none")]
    compression: String,
    /// Any librdkafka property, e.g. security.protocol=SASL_SSL (repeatable); a value
    /// @file:PATH or @env:NAME is read from that file or environment variable (for secrets).
    #[arg(long = "kafka-option", value_name = "KEY=VALUE", value_parser = connectors::kafka::resolve_option)]
    kafka_options: Vec<(String, String)>,
}

#[derive(Args)]
struct CommonArgs {
    /// Address of the /metrics and /healthz endpoint (port 0: any free port).
    #[arg(long, env = "PRODUCER_METRICS_ADDR", default_value = "127.0.0.1:8082")]
    metrics_addr: String,
}

#[derive(Args)]
struct GenerateArgs {
    /// Events per second of event time.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Number of events to generate.
    #[arg(long, conflicts_with = "duration")]
    count: Option<u64>,
    /// Event-time span to generate, e.g. 90m, 1d, 7d.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Event time of the first event (RFC 3339); default: now.
    #[arg(long)]
    start: Option<chrono::DateTime<chrono::Utc>>,
    /// Random seed: the same seed and flags give the same bytes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Partitions (files, or topic partitions when the topic is created).
    #[arg(long, default_value_t = 3)]
    partitions: u32,
    /// Fraction of events that get a byte copy arriving up to 5 minutes later.
    #[arg(long, default_value_t = 0.02)]
    duplicates: f64,
    /// Fraction of events that arrive 20-90 minutes late.
    #[arg(long, default_value_t = 0.0)]
    late: f64,
    /// Invalid lines per event (every rejection kind in turn).
    #[arg(long, default_value_t = 0.0)]
    invalid: f64,
    /// Fraction of events whose duration is multiplied by 20-50.
    #[arg(long, default_value_t = 0.0)]
    outliers: f64,
    /// The engine's message size limit (for the oversize kind).
    #[arg(long, default_value_t = connectors::parse::DEFAULT_MAX_MESSAGE_BYTES)]
    max_message_bytes: usize,
    /// Write partition-<p>.jsonl files into this folder instead of Kafka.
    #[arg(long, conflicts_with = "brokers")]
    out_dir: Option<PathBuf>,
    /// Do not pace sending to Kafka in wall-clock time.
    #[arg(long)]
    no_pace: bool,
    /// With --no-pace: send at most this many messages per second of wall-clock time
    /// (0: as fast as the broker takes them), e.g. a rate the job keeps up with in a soak.
    #[arg(long, default_value_t = 0.0, requires = "no_pace")]
    max_send_rate: f64,
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    common: CommonArgs,
}

fn kafka_config(args: &KafkaArgs) -> anyhow::Result<SinkConfig> {
    let brokers = args.brokers.clone().ok_or_else(|| {
        anyhow::anyhow!("no destination: pass --out-dir DIR, or --brokers HOST:PORT (or KAFKA_BROKERS)")
    })?;
    Ok(SinkConfig {
        brokers,
        topic: args.topic.clone(),
        compression: args.compression.clone(),
        options: args.kafka_options.clone(),
    })
}

fn main() {
    // Colour only on a terminal: a log file or pipe gets plain text.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let s = Arc::clone(&stop);
    ctrlc::set_handler(move || s.store(true, Ordering::Relaxed)).context("cannot install the Ctrl-C handler")?;
    let metrics = Arc::new(ProducerMetrics::new());
    let started = Instant::now();
    match cli.command {
        Some(Command::Replay { dir, kafka, common }) => {
            let config = kafka_config(&kafka)?;
            let addr = serve(&common.metrics_addr, Arc::clone(&metrics))?;
            tracing::info!(%addr, "serving /metrics");
            let sent = kafka::replay(&dir, &config, metrics, &stop)?;
            println!(
                "replayed {} messages into {} (per partition {sent:?}) in {:.1} s",
                sent.iter().sum::<u64>(),
                config.topic,
                started.elapsed().as_secs_f64()
            );
        }
        None => {
            let g = cli.generate;
            let config = GeneratorConfig {
                seed: g.seed,
                rate: g.rate,
                count: g.count,
                duration: g.duration,
                start: g.start.unwrap_or_else(chrono::Utc::now),
                partitions: g.partitions,
                duplicates: g.duplicates,
                late: g.late,
                invalid: g.invalid,
                outliers: g.outliers,
                max_message_bytes: g.max_message_bytes,
            };
            config.validate().map_err(anyhow::Error::msg)?;
            let addr = serve(&g.common.metrics_addr, Arc::clone(&metrics))?;
            tracing::info!(%addr, "serving /metrics");
            let summary = match &g.out_dir {
                Some(dir) => {
                    if config.count.is_none() && config.duration.is_none() {
                        anyhow::bail!("writing files needs an end: pass --count N or --duration D (e.g. 7d)");
                    }
                    write_partition_files_with(&config, dir, Some(&metrics), &stop)?
                }
                None => {
                    let pacing = match (g.no_pace, g.max_send_rate) {
                        (false, _) => kafka::Pacing::EventTime,
                        (true, r) if r > 0.0 => kafka::Pacing::MessagesPerSecond(r),
                        (true, _) => kafka::Pacing::None,
                    };
                    kafka::produce(&config, &kafka_config(&g.kafka)?, pacing, &metrics, &stop)?
                }
            };
            println!("{summary} in {:.1} s", started.elapsed().as_secs_f64());
        }
    }
    Ok(())
}
