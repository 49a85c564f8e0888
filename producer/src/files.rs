//! Generated events into a folder of partition files (`connectors::files`), in arrival order
//! per partition. It never paces: a week of events is written in seconds.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use connectors::files::FileSink;

use crate::generator::{Generator, GeneratorConfig, Message};
use crate::metrics::ProducerMetrics;
use crate::ProduceError;

/// What was written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Messages per partition.
    pub per_partition: Vec<u64>,
    /// Valid events arriving on time.
    pub on_time: u64,
    /// Late events.
    pub late: u64,
    /// Duplicate copies.
    pub duplicates: u64,
    /// Invalid lines.
    pub invalid: u64,
    /// Outlier events.
    pub outliers: u64,
}

impl Summary {
    /// Counts one message.
    pub fn add(&mut self, m: &Message) {
        use crate::generator::MessageKind::*;
        let p = m.partition as usize;
        if self.per_partition.len() <= p {
            self.per_partition.resize(p + 1, 0);
        }
        self.per_partition[p] += 1;
        match m.kind {
            OnTime => self.on_time += 1,
            Late => self.late += 1,
            Duplicate => self.duplicates += 1,
            Invalid(_) => self.invalid += 1,
        }
        if m.outlier && m.kind != Duplicate {
            self.outliers += 1;
        }
    }
    /// Total messages.
    pub fn total(&self) -> u64 {
        self.per_partition.iter().sum()
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} messages (on time {}, late {}, duplicates {}, invalid {}, outliers {}); per partition {:?}",
            self.total(),
            self.on_time,
            self.late,
            self.duplicates,
            self.invalid,
            self.outliers,
            self.per_partition
        )
    }
}

/// Writes the messages of `config` into `dir` (created if missing).
pub fn write_partition_files(config: &GeneratorConfig, dir: &Path) -> Result<Summary, ProduceError> {
    write_partition_files_with(config, dir, None, &AtomicBool::new(false))
}

/// As [`write_partition_files`], counting into `metrics` and stopping early when `stop` is set.
pub fn write_partition_files_with(
    config: &GeneratorConfig, dir: &Path, metrics: Option<&ProducerMetrics>, stop: &AtomicBool,
) -> Result<Summary, ProduceError> {
    config.validate().map_err(ProduceError::Config)?;
    let mut files = FileSink::create(dir, config.partitions)?;
    let mut summary = Summary { per_partition: vec![0; config.partitions as usize], ..Default::default() };
    let mut batch = Vec::with_capacity(1024);
    for m in Generator::new(config.clone()) {
        files.write(m.partition, &m.payload)?;
        summary.add(&m);
        batch.push(m);
        if batch.len() == batch.capacity() {
            if let Some(metrics) = metrics {
                metrics.record_sent(&batch);
            }
            batch.clear();
            if stop.load(Ordering::Relaxed) {
                break;
            }
        }
    }
    if let Some(metrics) = metrics {
        metrics.record_sent(&batch);
    }
    files.finish()?;
    Ok(summary)
}
