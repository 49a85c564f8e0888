//! `analytics`: batch queries over the engine's committed tables. See `analytics --help`.

use clap::{Parser, Subcommand};

use analytics::table::{DateRange, Table};

#[derive(Parser)]
#[command(
    name = "analytics",
    version,
    about = "Exact batch analytics over the engine's Parquet tables.",
    after_help = "EXAMPLES:
  analytics p95 --table out/events                       # daily p95 of every date, as a table
  analytics p95 --table out/events --from 2025-11-03 --to 2025-11-09 --csv p95.csv
  analytics p95 --table out/events --csv -               # CSV on stdout
  analytics check --output out                           # stream tables vs batch recomputation
  analytics outliers --table out/events --csv -          # 3-sigma and IQR outliers per date and type
  analytics diff out-a out-b                             # two runs wrote the same tables
  analytics p95 --table s3://iot/run1/events --csv -     # tables in S3 (or any S3-compatible store)
  analytics diff out s3://iot/run1

Tables and outputs are paths, file://PATH or s3://BUCKET/PREFIX URLs, read through the
engine's own store layer; S3 is configured by S3_ENDPOINT, AWS_REGION, AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY. ANALYTICS_THREADS sets the reader threads (default: every core)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What `p95` and `outliers` read and where they write.
#[derive(clap::Args)]
struct Query {
    /// The events table: OUT/events, file://OUT/events or s3://BUCKET/PREFIX/events.
    #[arg(long)]
    table: String,
    /// First UTC date included (YYYY-MM-DD).
    #[arg(long)]
    from: Option<chrono::NaiveDate>,
    /// Last UTC date included (YYYY-MM-DD).
    #[arg(long)]
    to: Option<chrono::NaiveDate>,
    /// Write CSV to this file (`-` for stdout) instead of printing a table.
    #[arg(long)]
    csv: Option<String>,
}

impl Query {
    /// The events table and the dates from `--from` to `--to` (an error that names the fix
    /// when they are swapped).
    fn open(&self) -> anyhow::Result<(Table, DateRange)> {
        if let (Some(f), Some(t)) = (self.from, self.to) {
            if f > t {
                anyhow::bail!("--from {f} is after --to {t}: swap them");
            }
        }
        Ok((Table::open(&self.table)?, DateRange { from: self.from, to: self.to }))
    }

    /// Prints rows as a table, or writes them as CSV to `--csv` (`-`: stdout).
    fn emit(
        &self, write_csv: impl FnOnce(&mut dyn std::io::Write) -> analytics::Result<()>, print_table: impl FnOnce(),
    ) -> anyhow::Result<()> {
        match self.csv.as_deref() {
            None => print_table(),
            Some("-") => write_csv(&mut std::io::stdout().lock())?,
            Some(path) => {
                write_csv(&mut std::fs::File::create(path).map_err(|e| anyhow::anyhow!("cannot create {path}: {e}"))?)?
            }
        }
        Ok(())
    }
}

#[derive(Subcommand)]
enum Command {
    /// Daily p95 per device type (>= 500 events, 3-sigma filter, nearest rank) from `events`.
    P95 {
        #[command(flatten)]
        query: Query,
    },
    /// Outliers of the durations per date and device type: 3-sigma (|x - mean| > 3 sd, what
    /// the daily p95 removes) and IQR (outside [Q1 - 1.5 IQR, Q3 + 1.5 IQR], nearest-rank
    /// quartiles), with both fences and counts.
    Outliers {
        #[command(flatten)]
        query: Query,
        /// Only (date, type) groups with at least this many events (the daily p95's 500 by
        /// default; at least 2, for the standard deviation).
        #[arg(long, default_value_t = analytics::daily::MIN_EVENTS)]
        min_events: usize,
    },
    /// Recompute daily p95 and windows from `events` and compare with the stream's tables.
    Check {
        /// The engine's output (holding events/, windows/, daily_p95/): a path, file:// or s3:// URL.
        #[arg(long)]
        output: String,
    },
    /// Compare two outputs: every table's rows (ignoring processing_time) and part files.
    Diff {
        /// The first output: a path, file:// or s3:// URL.
        a: String,
        /// The second output: a path, file:// or s3:// URL.
        b: String,
        /// Compare rows only, not the part file names (live runs name files by commit).
        #[arg(long)]
        rows_only: bool,
        /// A is a live run's output, B a bounded run's over the same messages: compare A with
        /// B up to A's committed frontier (every row of A in B, every row of B complete
        /// before the frontier in A).
        #[arg(long)]
        prefix: bool,
    },
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(2);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::P95 { query } => {
            let (events, range) = query.open()?;
            let rows = analytics::daily::daily_p95(&events, range)?;
            query.emit(|w| analytics::daily::write_csv(&rows, w), || analytics::daily::print_table(&rows))?;
        }
        Command::Outliers { query, min_events } => {
            let (events, range) = query.open()?;
            let rows = analytics::outliers::outliers(&events, range, min_events)?;
            query.emit(|w| analytics::outliers::write_csv(&rows, w), || analytics::outliers::print_table(&rows))?;
        }
        Command::Check { output } => {
            let diffs = analytics::check::check(&output)?;
            if diffs.is_empty() {
                println!("ok: daily_p95 and windows equal the batch recomputation from events");
            } else {
                for d in diffs.iter().take(50) {
                    println!("{d}");
                }
                if diffs.len() > 50 {
                    println!("... and {} more differences", diffs.len() - 50);
                }
                std::process::exit(1);
            }
        }
        Command::Diff { a, b, rows_only, prefix } => {
            let d =
                if prefix { analytics::diff::diff_prefix(&a, &b)? } else { analytics::diff::diff(&a, &b, !rows_only)? };
            let counts: Vec<String> = d.rows.iter().map(|(t, n)| format!("{t} {n}")).collect();
            if d.lines.is_empty() {
                println!("same tables: {}", counts.join(", "));
            } else {
                for l in &d.lines {
                    println!("{l}");
                }
                std::process::exit(1);
            }
        }
    }
    Ok(())
}
