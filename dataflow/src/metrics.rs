//! The engine's Prometheus metrics: every name and label in one place, and the exposition
//! of the process's [`Counters`] in the Prometheus text format.
//!
//! Operators count into [`Counters`] once per batch; a scrape copies them into the
//! registered Prometheus metrics ([`EngineMetrics::sync`]) and encodes the registry. Renaming
//! a metric here breaks the test that checks names, types and labels, not a dashboard.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

use connectors::http::{Answer, Endpoint, ServeError};
use connectors::sink::{DailyRow, Table, WindowRow};

use crate::counters::{table_index, Counters, TABLE_NAMES};

/// Metric names, each with its type and labels.
pub mod names {
    /// Counter: messages read from the source.
    pub const EVENTS_READ: &str = "iot_etl_events_read_total";
    /// Counter: valid, on-time events (before dedup).
    pub const EVENTS_ACCEPTED: &str = "iot_etl_events_accepted_total";
    /// Counter, label [`super::labels::REASON`]: rejected messages.
    pub const EVENTS_REJECTED: &str = "iot_etl_events_rejected_total";
    /// Counter: duplicate copies dropped by dedup.
    pub const DUPLICATES: &str = "iot_etl_duplicates_total";
    /// Counter: late events.
    pub const LATE: &str = "iot_etl_late_events_total";
    /// Gauge, label [`super::labels::PARTITION`]: event-time watermark, Unix seconds.
    pub const PARTITION_WATERMARK: &str = "iot_etl_partition_watermark_seconds";
    /// Gauge, label [`super::labels::PARTITION`]: 1 while the partition is idle (live runs; it
    /// does not hold the frontier back), else 0.
    pub const PARTITION_IDLE: &str = "iot_etl_partition_idle";
    /// Gauge, label [`super::labels::PARTITION`]: messages in the partition not yet read (Kafka).
    pub const PARTITION_LAG: &str = "iot_etl_partition_lag_messages";
    /// Gauge: wall clock minus the least watermark of this process, seconds.
    pub const FRONTIER_DELAY: &str = "iot_etl_frontier_delay_seconds";
    /// Counter: window rows written.
    pub const WINDOWS_EMITTED: &str = "iot_etl_windows_emitted_total";
    /// Counter: daily p95 rows written.
    pub const DAYS_EMITTED: &str = "iot_etl_days_emitted_total";
    /// Counter, label [`super::labels::TABLE`]: rows written.
    pub const ROWS_WRITTEN: &str = "iot_etl_rows_written_total";
    /// Counter, label [`super::labels::TABLE`]: part files written.
    pub const FILES_WRITTEN: &str = "iot_etl_files_written_total";
    /// Counter, label [`super::labels::TABLE`]: bytes of part files written.
    pub const BYTES_WRITTEN: &str = "iot_etl_bytes_written_total";
    /// Gauge, label [`super::labels::DEVICE_TYPE`]: provisional daily p95 of the open day, ms.
    pub const DAILY_P95_PROVISIONAL: &str = "iot_etl_daily_p95_provisional_milliseconds";
    /// Gauge: the last epoch this process committed.
    pub const LAST_COMMITTED_EPOCH: &str = "iot_etl_last_committed_epoch";
    /// Gauge: when this process last committed, Unix seconds (0: never).
    pub const LAST_COMMIT_TIMESTAMP: &str = "iot_etl_last_commit_timestamp_seconds";
    /// Histogram: time to commit an epoch (record + renames), seconds.
    pub const EPOCH_COMMIT_DURATION: &str = "iot_etl_epoch_commit_duration_seconds";
    /// Histogram: live runs, seconds from the frontier passing a window's end to the commit of
    /// its file.
    pub const WINDOW_COMMIT_LATENCY: &str = "iot_etl_window_commit_latency_seconds";
    /// Gauge: seconds since the last commit of this process (since start before the first).
    pub const CHECKPOINT_AGE: &str = "iot_etl_checkpoint_age_seconds";
    /// Gauge: worker threads of this process.
    pub const WORKERS: &str = "iot_etl_workers";
}

/// Label names.
pub mod labels {
    /// A rejection reason code.
    pub const REASON: &str = "reason";
    /// A partition number.
    pub const PARTITION: &str = "partition";
    /// A table name.
    pub const TABLE: &str = "table";
    /// A device type.
    pub const DEVICE_TYPE: &str = "device_type";
}

/// The registered metrics of one engine process.
pub struct EngineMetrics {
    counters: Arc<Counters>,
    registry: Registry,
    read: IntCounter,
    accepted: IntCounter,
    rejected: IntCounterVec,
    duplicates: IntCounter,
    late: IntCounter,
    watermark: GaugeVec,
    idle: GaugeVec,
    lag: GaugeVec,
    frontier_delay: Gauge,
    windows: IntCounter,
    days: IntCounter,
    rows: IntCounterVec,
    files: IntCounterVec,
    bytes: IntCounterVec,
    provisional: GaugeVec,
    last_epoch: IntGauge,
    last_commit: Gauge,
    commit_duration: Histogram,
    window_latency: Histogram,
    /// What the histograms above have observed of the counters' durations.
    commit_durations_seen: std::sync::Mutex<crate::counters::Durations>,
    window_latencies_seen: std::sync::Mutex<crate::counters::Durations>,
    checkpoint_age: Gauge,
    started: std::time::Instant,
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    registry.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn counter_vec(registry: &Registry, name: &str, help: &str, label: &str) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid metric");
    registry.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, label: &str) -> GaugeVec {
    let g = GaugeVec::new(Opts::new(name, help), &[label]).expect("valid metric");
    registry.register(Box::new(g.clone())).expect("unique metric");
    g
}

fn register<M: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: M) -> M {
    registry.register(Box::new(metric.clone())).expect("unique metric");
    metric
}

/// Brings a counter up to `target` (counters only grow).
fn catch_up(c: &IntCounter, target: u64) {
    let now = c.get();
    if target > now {
        c.inc_by(target - now);
    }
}

impl EngineMetrics {
    /// Registers every metric; `workers` is this process's worker count.
    pub fn new(counters: Arc<Counters>, workers: usize) -> Self {
        use names::*;
        let registry = Registry::new();
        let workers_gauge = IntGauge::new(WORKERS, "Worker threads of this process.").expect("valid metric");
        workers_gauge.set(workers as i64);
        registry.register(Box::new(workers_gauge)).expect("unique metric");
        let frontier_delay =
            Gauge::new(FRONTIER_DELAY, "Wall clock minus the least event-time watermark of this process, seconds.")
                .expect("valid metric");
        registry.register(Box::new(frontier_delay.clone())).expect("unique metric");
        let m = EngineMetrics {
            read: counter(&registry, EVENTS_READ, "Messages read from the source."),
            accepted: counter(&registry, EVENTS_ACCEPTED, "Valid, on-time events, before dedup."),
            rejected: counter_vec(&registry, EVENTS_REJECTED, "Messages rejected by validation, by reason.", labels::REASON),
            duplicates: counter(&registry, DUPLICATES, "Duplicate copies dropped by dedup."),
            late: counter(&registry, LATE, "Valid events behind their partition's watermark."),
            watermark: gauge_vec(&registry, PARTITION_WATERMARK, "Event-time watermark of each partition, Unix seconds.", labels::PARTITION),
            idle: gauge_vec(&registry, PARTITION_IDLE, "1 while the partition is idle: caught up and silent for --idle-timeout, it does not hold the frontier back.", labels::PARTITION),
            lag: gauge_vec(&registry, PARTITION_LAG, "Messages of each partition not yet read (from the broker's high watermark).", labels::PARTITION),
            frontier_delay,
            windows: counter(&registry, WINDOWS_EMITTED, "Window rows written."),
            days: counter(&registry, DAYS_EMITTED, "Daily p95 rows written."),
            rows: counter_vec(&registry, ROWS_WRITTEN, "Rows written, by table.", labels::TABLE),
            files: counter_vec(&registry, FILES_WRITTEN, "Part files written, by table.", labels::TABLE),
            bytes: counter_vec(&registry, BYTES_WRITTEN, "Bytes of part files written, by table.", labels::TABLE),
            provisional: gauge_vec(&registry, DAILY_P95_PROVISIONAL, "Provisional daily p95 of the newest open day, milliseconds.", labels::DEVICE_TYPE),
            last_epoch: register(&registry, IntGauge::new(LAST_COMMITTED_EPOCH, "The last epoch this process committed.").expect("valid metric")),
            last_commit: register(&registry, Gauge::new(LAST_COMMIT_TIMESTAMP, "When this process last committed, Unix seconds (0: never).").expect("valid metric")),
            commit_duration: register(
                &registry,
                Histogram::with_opts(
                    HistogramOpts::new(EPOCH_COMMIT_DURATION, "Time to commit an epoch (record and renames), seconds.")
                        .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
                )
                .expect("valid metric"),
            ),
            window_latency: register(
                &registry,
                Histogram::with_opts(
                    HistogramOpts::new(WINDOW_COMMIT_LATENCY, "Live runs: seconds from the frontier passing a window's end to the commit of its file.")
                        .buckets(vec![0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]),
                )
                .expect("valid metric"),
            ),
            commit_durations_seen: Default::default(),
            window_latencies_seen: Default::default(),
            checkpoint_age: register(&registry, Gauge::new(CHECKPOINT_AGE, "Seconds since this process last committed (since start before its first commit).").expect("valid metric")),
            started: std::time::Instant::now(),
            counters,
            registry,
        };
        // Every labelled series exists from the start, at zero.
        for r in connectors::parse::RejectReason::ALL {
            m.rejected.with_label_values(&[r.as_str()]);
        }
        for t in TABLE_NAMES {
            m.rows.with_label_values(&[t]);
            m.files.with_label_values(&[t]);
            m.bytes.with_label_values(&[t]);
        }
        m
    }

    /// Copies the counters into the registered metrics.
    pub fn sync(&self) {
        let c = &self.counters;
        catch_up(&self.read, c.read.load(Relaxed));
        catch_up(&self.accepted, c.accepted.load(Relaxed));
        for (r, n) in connectors::parse::RejectReason::ALL.iter().zip(&c.rejected) {
            catch_up(&self.rejected.with_label_values(&[r.as_str()]), n.load(Relaxed));
        }
        catch_up(&self.duplicates, c.duplicates.load(Relaxed));
        catch_up(&self.late, c.late.load(Relaxed));
        catch_up(&self.windows, c.rows_written[table_index(WindowRow::NAME)].load(Relaxed));
        catch_up(&self.days, c.rows_written[table_index(DailyRow::NAME)].load(Relaxed));
        for (i, t) in TABLE_NAMES.iter().enumerate() {
            catch_up(&self.rows.with_label_values(&[t]), c.rows_written[i].load(Relaxed));
            catch_up(&self.files.with_label_values(&[t]), c.table_files[i].load(Relaxed));
            catch_up(&self.bytes.with_label_values(&[t]), c.table_bytes[i].load(Relaxed));
        }
        if let (Ok(marks), Ok(idle)) = (c.partition_watermarks.lock(), c.partition_idle.lock()) {
            for (p, w) in marks.iter() {
                self.watermark.with_label_values(&[&p.to_string()]).set(*w as f64 / 1e6);
            }
            for (p, i) in idle.iter() {
                self.idle.with_label_values(&[&p.to_string()]).set(f64::from(u8::from(*i)));
            }
        }
        // The frontier follows the open partitions that are not idle; until each has an event
        // there is no delay to report.
        if let Some(least) = c.least_active_watermark().filter(|&w| w > 0) {
            let now = chrono::Utc::now().timestamp_micros();
            self.frontier_delay.set((now - least) as f64 / 1e6);
        }
        self.last_epoch.set(c.last_epoch.load(Relaxed) as i64);
        self.last_commit.set(c.last_commit_micros.load(Relaxed) as f64 / 1e6);
        self.checkpoint_age.set(self.commit_age(c).max(0.0));
        for (all, seen, histogram) in [
            (&c.commit_seconds, &self.commit_durations_seen, &self.commit_duration),
            (&c.window_latencies, &self.window_latencies_seen, &self.window_latency),
        ] {
            if let (Ok(all), Ok(mut seen)) = (all.lock(), seen.lock()) {
                for (seconds, n) in all.since(&seen) {
                    (0..n).for_each(|_| histogram.observe(seconds));
                }
                seen.clone_from(&all);
            }
        }
        if let Ok(lags) = c.partition_lag.lock() {
            for (p, lag) in lags.iter() {
                self.lag.with_label_values(&[&p.to_string()]).set(*lag as f64);
            }
        }
        if let Ok(p) = c.provisional_p95.lock() {
            for (ty, v) in p.iter() {
                self.provisional.with_label_values(&[ty]).set(*v);
            }
        }
    }

    /// Seconds since the last commit, or since the start while nothing has been committed.
    fn commit_age(&self, c: &Counters) -> f64 {
        let last = c.last_commit_micros.load(Relaxed);
        if last > 0 {
            (chrono::Utc::now().timestamp_micros() - last) as f64 / 1e6
        } else {
            self.started.elapsed().as_secs_f64()
        }
    }

    /// Ready when the dataflow is built (its partitions are listed; each opens on its own
    /// reading thread, and one that cannot open fails the run) and, while messages are
    /// waiting to be read, the last commit is at most [`READY_MAX_COMMIT_AGE`] old.
    pub fn readiness(&self) -> Result<(), String> {
        let c = &self.counters;
        if !c.started.load(Relaxed) {
            return Err("starting: the dataflow is not built yet".into());
        }
        let lag: u64 = c.partition_lag.lock().map(|l| l.values().sum()).unwrap_or(0);
        let age = self.commit_age(c);
        if lag > 0 && age > READY_MAX_COMMIT_AGE.as_secs_f64() {
            return Err(format!("stalled: {lag} messages waiting and no commit for {age:.0} s"));
        }
        Ok(())
    }

    /// The metrics in the Prometheus text format, freshly synced.
    pub fn render(&self) -> String {
        self.sync();
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out).expect("text encoding cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }

    /// The registry (for tests that inspect metric families).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

/// How old the last commit may be, while messages wait, for `/readyz` to answer ready.
pub const READY_MAX_COMMIT_AGE: std::time::Duration = std::time::Duration::from_secs(600);

/// The paths the engine's HTTP server answers (Kubernetes probes must use these).
pub const HTTP_PATHS: [&str; 3] = ["/metrics", "/healthz", "/readyz"];

/// Serves `/metrics`, `/healthz` (the process is alive) and `/readyz` (see
/// [`EngineMetrics::readiness`]) over HTTP on `addr` from a background thread
/// ([`connectors::http`]); returns the bound address.
pub fn serve(addr: &str, metrics: Arc<EngineMetrics>) -> Result<std::net::SocketAddr, ServeError> {
    connectors::http::serve(addr, Engine(metrics))
}

/// The engine's answers on [`HTTP_PATHS`].
struct Engine(Arc<EngineMetrics>);

impl Endpoint for Engine {
    fn answer(&self, path: &str) -> Option<Answer> {
        Some(match path {
            "/metrics" => Answer::ok(self.0.render()),
            "/healthz" => Answer::ok("ok\n"),
            "/readyz" => match self.0.readiness() {
                Ok(()) => Answer::ok("ready\n"),
                Err(why) => Answer { status: 503, body: format!("{why}\n") },
            },
            _ => return None,
        })
    }
    fn paths(&self) -> &'static [&'static str] {
        &HTTP_PATHS
    }
}
