//! The `dataflow` command line. Every flag a deployment sets also reads an environment
//! variable; timely's own `-w/-n/-p/-h` keep their meaning.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Command-line flags of the engine.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "dataflow",
    version,
    about = "Exact, deterministic streaming ETL of IoT events: partitions in, Parquet tables out.",
    disable_help_flag = true,
    after_help = "EXAMPLES:
  # Everything in one process, no services: an embedded Kafka fed by the built-in producer,
  # processed live into ./output with 4 workers; metrics on 127.0.0.1:9187; Ctrl-C stops
  dataflow -w 4

  # Live from a Kafka topic, or a bounded backfill of what the topic holds now
  dataflow --brokers kafka:9092 --topic iot-events --output out -w 2
  dataflow --brokers kafka:9092 --topic iot-events --output out --bounded -w 2

  # Generate a day of events, then process it to completion with 2 workers
  producer --out-dir data --duration 1d --rate 10 --duplicates 0.02 --late 0.01 --invalid 0.01
  dataflow --input data --output out --bounded -w 2

  # Two processes on this machine (run both; they find each other on 127.0.0.1:2101-2102)
  dataflow --input data --output out --bounded -w 2 -n 2 -p 0 &
  dataflow --input data --output out --bounded -w 2 -n 2 -p 1

  # A cluster from a hostfile (one host:port per line, line i = process i)
  dataflow --input data --output out --bounded -w 4 -n 3 -p 0 -h hosts.txt

  # To an S3-compatible store (path-style requests)
  S3_ENDPOINT=http://127.0.0.1:9000 AWS_ACCESS_KEY_ID=key AWS_SECRET_ACCESS_KEY=secret \\
    dataflow --input data --output s3://bucket/iot --bounded -w 2

Tables are written under OUT/<table>/year=YYYY/month=MM/day=DD[/hour=HH]/part-NNNNN.parquet,
committed in epochs recorded under OUT/_checkpoint/ (or --checkpoint); a restart on the same
OUT resumes from the recorded positions and writes every file exactly once."
)]
pub struct Args {
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,

    /// Input folder of `partition-<p>.jsonl` files (a path or `file://` URL).
    #[arg(long, env = "INPUT_PATH", value_name = "DIR")]
    pub input: Option<String>,

    /// Kafka bootstrap servers (`host:port[,host:port]`): read the topic instead of files.
    /// Without --input and --brokers the engine runs embedded (see EXAMPLES).
    #[arg(long, env = "KAFKA_BROKERS", value_name = "HOST:PORT")]
    pub brokers: Option<String>,

    /// Kafka topic to read (and, embedded, to produce to).
    #[arg(long, env = "KAFKA_TOPIC", default_value = "iot-events")]
    pub topic: String,

    /// Consumer group that receives committed offsets, for lag monitoring only.
    #[arg(long, env = "KAFKA_GROUP", default_value = "iot-etl")]
    pub group: String,

    /// Where a partition without a checkpointed position starts: earliest or latest.
    #[arg(long, env = "KAFKA_START_FROM", default_value = "earliest")]
    pub start_from: connectors::kafka::StartFrom,

    /// A librdkafka property, `key=value` (repeatable; e.g. security.protocol=SASL_SSL). A value
    /// `@file:PATH` or `@env:NAME` is read from a file or variable; values are never printed.
    #[arg(long = "kafka-option", value_name = "KEY=VALUE", value_parser = connectors::kafka::resolve_option)]
    pub kafka_options: Vec<(String, String)>,

    /// Embedded run: events per second the built-in producer sends.
    #[arg(long, env = "PRODUCER_RATE", default_value_t = 10.0)]
    pub rate: f64,

    /// Embedded run: partitions of the built-in topic.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub partitions: u32,

    /// Embedded run: address of the built-in producer's /metrics (port 0: any free port).
    #[arg(long, env = "PRODUCER_METRICS_ADDR", default_value = "127.0.0.1:8082")]
    pub producer_metrics_addr: String,

    /// Where the tables (and the checkpoint, under `_checkpoint/`) go: a path, file://PATH,
    /// s3://BUCKET/PREFIX (S3_ENDPOINT, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)
    /// or memory://. Default: ./output; the embedded run (whose topic lives only as long as
    /// the process) writes to a new ./output/embedded-(UTC time) each run.
    #[arg(long, env = "OUTPUT_PATH", value_name = "DIR")]
    pub output: Option<String>,

    /// Delete the output's tables and the checkpoint before starting (the run starts afresh;
    /// what is deleted is printed first). Needed to reuse an output for another input.
    #[arg(long)]
    pub reset: bool,

    /// Where the commit records (the checkpoint) go, if not OUTPUT/_checkpoint/: a URL of the
    /// same kinds as --output. It belongs to one output: keep the pair together.
    #[arg(long, env = "CHECKPOINT_LOCATION", value_name = "URL")]
    pub checkpoint: Option<String>,

    /// Read only what is present at start, close every window and day, write, and exit.
    #[arg(long)]
    pub bounded: bool,

    /// Worker threads per process.
    #[arg(short = 'w', long = "workers", env = "TIMELY_WORKERS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: u16,

    /// Number of processes in the cluster.
    #[arg(short = 'n', long = "processes", env = "TIMELY_PROCESSES", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub processes: u16,

    /// Index of this process, 0-based.
    #[arg(short = 'p', long = "process", env = "TIMELY_PROCESS_INDEX", default_value_t = 0)]
    pub process: u16,

    /// File with one `host:port` per line, line i being process i (default: 127.0.0.1:2101+i).
    #[arg(short = 'h', long = "hostfile", env = "TIMELY_HOSTFILE", value_name = "FILE")]
    pub hostfile: Option<PathBuf>,

    /// Allowed lateness L: an event earlier than (latest event time of its partition − L) is late.
    #[arg(long, env = "ALLOWED_LATENESS", default_value = "10m", value_parser = humantime::parse_duration)]
    pub allowed_lateness: Duration,

    /// How long an event id is remembered after its event time, for dedup.
    #[arg(long, env = "DEDUP_HORIZON", default_value = "1h", value_parser = humantime::parse_duration)]
    pub dedup_horizon: Duration,

    /// Event-time period between provisional daily p95 values.
    #[arg(long, env = "DAILY_REFRESH", default_value = "1h", value_parser = humantime::parse_duration)]
    pub daily_refresh: Duration,

    /// Log every provisional (not yet final) daily p95 value.
    #[arg(long)]
    pub show_provisional: bool,

    /// Messages larger than this many bytes are rejected as `oversize`.
    #[arg(long, env = "MAX_MESSAGE_BYTES", default_value_t = connectors::parse::DEFAULT_MAX_MESSAGE_BYTES)]
    pub max_message_bytes: usize,

    /// Largest number of rows in one part file.
    #[arg(long, env = "ROWS_PER_FILE", default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub rows_per_file: u64,

    /// Flow control: how far (event time) a partition may be read ahead of the finished output
    /// (the slowest partition, and the end of the hour after the oldest one still being stored).
    /// Smaller bounds memory more tightly; larger lets quick partitions run further ahead.
    /// The default, an hour, holds an hour of events per worker waiting for the slowest
    /// partition (3h cost ~20 MB more on the week benchmark and was no faster).
    #[arg(long, env = "MAX_AHEAD", default_value = "1h", value_parser = humantime::parse_duration)]
    pub max_ahead: Duration,

    /// Live runs: a partition that is caught up and receives nothing for this long stops
    /// holding the frontier back, so that an empty or quiet partition does not stall every
    /// window (0: never). Bounded runs never idle: their end offsets decide.
    #[arg(long, env = "IDLE_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,

    /// Least processing time between two commits (0: commit at every frontier advance).
    #[arg(long, env = "COMMIT_INTERVAL", default_value = "0s", value_parser = humantime::parse_duration)]
    pub commit_interval: Duration,

    /// Commit before --commit-interval has passed once the complete files waiting for the
    /// next epoch reach this many megabytes (0: no size limit).
    #[arg(long, env = "COMMIT_MAX_MB", default_value_t = 0)]
    pub commit_max_mb: u64,

    /// Live runs: merge each closed hour's minute files into one file per table once the
    /// frontier is this much event time past the hour's end (e.g. 10m). Off by default: a
    /// reader listing the folder at the instant of the swap can see that hour twice.
    #[arg(long, env = "COMPACT_AFTER", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub compact_after: Option<Duration>,

    /// Fold the commit records into one base record every this many epochs, so that a start
    /// reads a few files whatever the run's length (tests lower it).
    #[arg(long, env = "COMMIT_FOLD_EVERY", default_value_t = connectors::sink::commit::FOLD_EVERY, hide = true)]
    pub fold_every: u64,

    /// Address of the HTTP server for /metrics, /healthz and /readyz (port 0: any free port).
    #[arg(long, env = "METRICS_ADDR", default_value = "127.0.0.1:9187")]
    pub metrics_addr: String,

    /// Show a live progress line on stderr: auto (when stderr is a terminal), always, never.
    #[arg(long, default_value = "auto", value_parser = ["auto", "always", "never"])]
    pub progress: String,
}

/// A combination of flags that cannot run; the message names the fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `-p` is not below `-n`.
    #[error("-p {process} is out of range for -n {processes}: the process index must be below the process count")]
    ProcessOutOfRange {
        /// `-p`.
        process: usize,
        /// `-n`.
        processes: usize,
    },
    /// The hostfile cannot be read.
    #[error("cannot read the hostfile {}: {error} (pass -h FILE with one host:port per line)", path.display())]
    Hostfile {
        /// `-h`.
        path: std::path::PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The hostfile names fewer hosts than processes.
    #[error("the hostfile {} lists {hosts} hosts but -n is {processes}: add one host:port line per process", path.display())]
    ShortHostfile {
        /// `-h`.
        path: std::path::PathBuf,
        /// Hosts it lists.
        hosts: usize,
        /// `-n`.
        processes: usize,
    },
}

impl Args {
    /// The timely communication configuration these flags describe.
    pub fn communication(&self) -> Result<timely::CommunicationConfig, ConfigError> {
        let (threads, processes, process) =
            (usize::from(self.workers), usize::from(self.processes), usize::from(self.process));
        if process >= processes {
            return Err(ConfigError::ProcessOutOfRange { process, processes });
        }
        if processes == 1 {
            return Ok(if threads == 1 {
                timely::CommunicationConfig::Thread
            } else {
                timely::CommunicationConfig::Process(threads)
            });
        }
        let addresses = match &self.hostfile {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|error| ConfigError::Hostfile { path: path.clone(), error })?;
                let hosts: Vec<String> =
                    text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
                if hosts.len() < processes {
                    return Err(ConfigError::ShortHostfile { path: path.clone(), hosts: hosts.len(), processes });
                }
                hosts[..processes].to_vec()
            }
            None => (0..processes).map(|i| format!("127.0.0.1:{}", 2101 + i)).collect(),
        };
        Ok(timely::CommunicationConfig::Cluster { threads, process, addresses, report: false, zerocopy: false })
    }

    /// Minutes in a duration, at least `min`.
    pub fn minutes(d: Duration, min: u64) -> u64 {
        (d.as_secs() / 60).max(min)
    }
}
