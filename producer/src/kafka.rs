//! The producer's Kafka side: generated events into a topic, and `replay` of a partition
//! folder into a topic, preserving each partition's order. Both write through the shared
//! Kafka sink ([`connectors::kafka::KafkaSink`]: topic creation, back-pressure, delivery
//! failures) and count failures in [`ProducerMetrics`]; `replay` reads the folder with the
//! engine's file source, so a folder means the same messages to both.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use connectors::files::FileSource;
use connectors::kafka::{KafkaSink, SinkConfig};
use connectors::source::{MessageBatch, PollStatus, Source};

use crate::files::Summary;
use crate::generator::{Generator, GeneratorConfig};
use crate::metrics::ProducerMetrics;
use crate::ProduceError;

/// How long a flush waits for the last deliveries.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);

/// A sink whose delivery failures are logged and counted in `metrics`.
fn connect(config: &SinkConfig, partitions: u32, metrics: &Arc<ProducerMetrics>) -> Result<KafkaSink, ProduceError> {
    let m = Arc::clone(metrics);
    Ok(KafkaSink::connect(config, partitions, move |e| {
        m.kafka_errors.inc();
        tracing::warn!(error = %e, "delivery failed");
    })?)
}

/// `sink.send`, counting a refused message in `metrics`.
fn send(
    sink: &KafkaSink, partition: u32, key: &[u8], payload: &[u8], metrics: &ProducerMetrics,
) -> Result<(), ProduceError> {
    sink.send(partition, key, payload).inspect_err(|_| metrics.kafka_errors.inc())?;
    Ok(())
}

/// Writes a folder of `partition-<p>.jsonl` files into the topic, each file to its partition
/// in line order (the messages the file source reads: a last line without `\n` is not one
/// yet); returns the messages sent per partition. An error if any was not delivered.
pub fn replay(
    dir: &Path, config: &SinkConfig, metrics: Arc<ProducerMetrics>, stop: &AtomicBool,
) -> Result<Vec<u64>, ProduceError> {
    let source = FileSource::new(dir);
    let partitions = source.partitions()?;
    let count = partitions.iter().max().map_or(0, |p| p + 1);
    let sink = connect(&config.ordered(), count, &metrics)?;
    let mut sent = vec![0u64; count as usize];
    let mut batch = MessageBatch::default();
    'partitions: for p in partitions {
        warn_on_unterminated_line(&source.partition_path(p));
        let mut reader = source.open(p, None, true)?;
        loop {
            batch.clear();
            let status = reader.poll(&mut batch, 1 << 20)?;
            for (_, line) in batch.iter() {
                // The key is not needed for ordering (the partition is explicit); use the
                // device id when the line has one so that consumers see the usual key.
                send(&sink, p, device_key(line).as_bytes(), line, &metrics)?;
            }
            sent[p as usize] += batch.len() as u64;
            sink.poll();
            if status == PollStatus::Ended {
                break;
            }
            if stop.load(Ordering::Relaxed) {
                break 'partitions;
            }
        }
    }
    sink.flush(FLUSH_TIMEOUT)?;
    Ok(sent)
}

/// Warns when the file's last line has no `\n`: the file source does not count it as a
/// message yet (a writer may still be appending it), so it is not sent.
fn warn_on_unterminated_line(path: &Path) {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else { return };
    let mut last = [0u8; 1];
    if file.seek(SeekFrom::End(-1)).is_ok() && file.read_exact(&mut last).is_ok() && last[0] != b'\n' {
        tracing::warn!(file = %path.display(), "the last line has no newline: not a message yet, not sent");
    }
}

/// The `device_id` of a JSON line, or an empty key.
fn device_key(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    text.split("\"device_id\":\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("").to_owned()
}

/// How [`produce`] paces its sends in wall-clock time.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Pacing {
    /// Each message at its arrival time after the first (a live stream).
    EventTime,
    /// At most this many messages per second, whatever their event times.
    MessagesPerSecond(f64),
    /// As fast as the broker takes them.
    None,
}

/// Generates `config`'s events into the topic, paced as `pacing` says, until done or `stop`
/// is set; flushes.
pub fn produce(
    config: &GeneratorConfig, sink_config: &SinkConfig, pacing: Pacing, metrics: &Arc<ProducerMetrics>,
    stop: &AtomicBool,
) -> Result<Summary, ProduceError> {
    let sink = connect(sink_config, config.partitions, metrics)?;
    let mut summary = Summary::default();
    let wall_start = Instant::now();
    let mut first_arrival = None;
    let mut batch = Vec::with_capacity(256);
    for (i, m) in Generator::new(config.clone()).enumerate() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let due = match pacing {
            Pacing::EventTime => {
                let first = *first_arrival.get_or_insert(m.arrival_ms);
                Some(wall_start + Duration::from_millis((m.arrival_ms - first).max(0) as u64))
            }
            // Checked every 64 messages: a sleep per message would cost more than the send.
            Pacing::MessagesPerSecond(rate) if i % 64 == 0 => {
                Some(wall_start + Duration::from_secs_f64(i as f64 / rate))
            }
            Pacing::MessagesPerSecond(_) | Pacing::None => None,
        };
        if let Some(due) = due {
            let now = Instant::now();
            if due > now {
                metrics.record_sent(&batch);
                batch.clear();
                sink.poll();
                std::thread::sleep(due - now);
            }
        }
        send(&sink, m.partition, m.key.as_bytes(), &m.payload, metrics)?;
        summary.add(&m);
        batch.push(m);
        if batch.len() == batch.capacity() {
            metrics.record_sent(&batch);
            batch.clear();
            sink.poll();
        }
    }
    metrics.record_sent(&batch);
    sink.flush(FLUSH_TIMEOUT)?;
    Ok(summary)
}
