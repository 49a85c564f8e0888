//! The Kafka sink: messages to their partition of a topic with their key, and `replay` of a
//! partition folder into a topic, preserving each partition's order.
//!
//! The topic is created with the wanted partition count when missing. Records are sent
//! uncompressed by default (`--compression` to change; some Kafka-protocol brokers cannot
//! serve compressed batches back); any librdkafka property can be given as `key=value`.

use std::io::BufRead;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

use crate::files::Summary;
use crate::generator::{Generator, GeneratorConfig};
use crate::metrics::ProducerMetrics;

/// Where and how to produce.
#[derive(Clone, Debug)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port[,host:port]`.
    pub brokers: String,
    /// Topic name.
    pub topic: String,
    /// `compression.type` (none, gzip, snappy, lz4, zstd).
    pub compression: String,
    /// Extra librdkafka properties.
    pub options: Vec<(String, String)>,
}

/// Counts delivery failures.
pub struct DeliveryCounter {
    metrics: Arc<ProducerMetrics>,
}

impl ClientContext for DeliveryCounter {}

impl ProducerContext for DeliveryCounter {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        if let Err((e, _)) = result {
            self.metrics.kafka_errors.inc();
            tracing::warn!(error = %e, "delivery failed");
        }
    }
}

fn client_config(config: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.brokers)
        .set("compression.type", &config.compression)
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000")
        .set("message.timeout.ms", "120000");
    for (k, v) in &config.options {
        c.set(k, v);
    }
    c
}

/// A producer connected to the topic, which exists with at least `partitions` partitions.
pub fn connect(
    config: &KafkaConfig,
    partitions: u32,
    metrics: Arc<ProducerMetrics>,
) -> anyhow::Result<BaseProducer<DeliveryCounter>> {
    let producer: BaseProducer<DeliveryCounter> = client_config(config)
        .create_with_context(DeliveryCounter { metrics })
        .with_context(|| format!("cannot create a Kafka producer for {}", config.brokers))?;
    let existing = topic_partitions(&producer, config)?;
    if existing == 0 {
        create_topic(config, partitions)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while topic_partitions(&producer, config)? == 0 {
            anyhow::ensure!(
                Instant::now() < deadline,
                "topic {} was created but does not appear in the metadata of {}",
                config.topic,
                config.brokers
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    } else if existing < partitions {
        anyhow::bail!("topic {} has {existing} partitions, fewer than the {partitions} wanted: use --partitions {existing} or a new topic", config.topic);
    }
    Ok(producer)
}

/// Partitions of the topic, 0 when it does not exist.
fn topic_partitions(producer: &BaseProducer<DeliveryCounter>, config: &KafkaConfig) -> anyhow::Result<u32> {
    let metadata =
        producer.client().fetch_metadata(Some(&config.topic), Duration::from_secs(10)).with_context(|| {
            format!("cannot reach the Kafka broker at {} (check --brokers / KAFKA_BROKERS)", config.brokers)
        })?;
    Ok(metadata.topics().first().filter(|t| t.error().is_none()).map_or(0, |t| t.partitions().len() as u32))
}

fn create_topic(config: &KafkaConfig, partitions: u32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> =
        client_config(config).create().context("cannot create a Kafka admin client")?;
    let topic = NewTopic::new(&config.topic, partitions as i32, TopicReplication::Fixed(1));
    let results = futures_executor::block_on(
        admin.create_topics([&topic], &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)))),
    )
    .with_context(|| format!("cannot create topic {}", config.topic))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => anyhow::bail!("cannot create topic {t}: {e}"),
        }
    }
    tracing::info!(topic = %config.topic, partitions, "created topic");
    Ok(())
}

/// Sends one record, waiting for queue space when librdkafka's queue is full.
pub fn send(
    producer: &BaseProducer<DeliveryCounter>,
    topic: &str,
    partition: u32,
    key: &[u8],
    payload: &[u8],
    metrics: &ProducerMetrics,
) -> anyhow::Result<()> {
    let mut record = BaseRecord::to(topic).partition(partition as i32).key(key).payload(payload);
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                producer.poll(Duration::from_millis(50));
            }
            Err((e, _)) => {
                metrics.kafka_errors.inc();
                anyhow::bail!("cannot send to {topic} partition {partition}: {e}");
            }
        }
    }
}

/// Waits until every queued record is delivered (or `timeout`).
pub fn flush(producer: &BaseProducer<DeliveryCounter>, timeout: Duration) -> anyhow::Result<()> {
    producer.flush(timeout).context("not every record was delivered before the flush timeout")
}

/// Writes a folder of `partition-<p>.jsonl` files into the topic, each file to its partition
/// in line order; returns the messages sent per partition.
pub fn replay(
    dir: &Path,
    config: &KafkaConfig,
    metrics: Arc<ProducerMetrics>,
    stop: &AtomicBool,
) -> anyhow::Result<Vec<u64>> {
    let source = connectors::source::file::FileSource::new(dir);
    let partitions = {
        use connectors::source::Source;
        source.partitions()?
    };
    let count = partitions.iter().max().map_or(0, |p| p + 1);
    // One request in flight per broker: a retried batch cannot overtake a later one, so each
    // partition's order survives broker errors.
    let mut ordered = config.clone();
    ordered.options.insert(0, ("max.in.flight.requests.per.connection".into(), "1".into()));
    let producer = connect(&ordered, count, Arc::clone(&metrics))?;
    let errors_before = metrics.kafka_errors.get();
    let mut sent = vec![0u64; count as usize];
    for p in partitions {
        let path = source.partition_path(p);
        let file = std::fs::File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
        let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
        let mut line = Vec::new();
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            if line.last() != Some(&b'\n') {
                tracing::warn!(file = %path.display(), bytes = line.len(), "the last line has no newline: not a message yet, not sent");
                break;
            }
            line.pop();
            // The key is not needed for ordering (the partition is explicit); use the device
            // id when the line has one so that consumers see the usual key.
            let key = device_key(&line);
            send(&producer, &config.topic, p, key.as_bytes(), &line, &metrics)?;
            sent[p as usize] += 1;
            if sent[p as usize].is_multiple_of(10_000) {
                producer.poll(Duration::ZERO);
                if stop.load(Ordering::Relaxed) {
                    break;
                }
            }
        }
    }
    flush(&producer, Duration::from_secs(60))?;
    let failed = metrics.kafka_errors.get() - errors_before;
    if failed > 0 {
        anyhow::bail!("{failed} messages could not be delivered to {} on {}: the topic does not hold the whole folder (see the warnings above)", config.topic, config.brokers);
    }
    Ok(sent)
}

/// The `device_id` of a JSON line, or an empty key.
fn device_key(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    text.split("\"device_id\":\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("").to_owned()
}

/// Generates `config`'s events into the topic, paced in wall-clock time (each message sent at
/// its arrival time after the first) when `pace`, until done or `stop` is set; flushes.
pub fn produce(
    config: &GeneratorConfig,
    kafka_config: &KafkaConfig,
    pace: bool,
    metrics: &Arc<ProducerMetrics>,
    stop: &AtomicBool,
) -> anyhow::Result<Summary> {
    let producer = connect(kafka_config, config.partitions, Arc::clone(metrics))?;
    let mut summary = Summary::default();
    let wall_start = Instant::now();
    let mut first_arrival = None;
    let mut batch = Vec::with_capacity(256);
    for m in Generator::new(config.clone()) {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if pace {
            let first = *first_arrival.get_or_insert(m.arrival_ms);
            let due = wall_start + Duration::from_millis((m.arrival_ms - first).max(0) as u64);
            let now = Instant::now();
            if due > now {
                metrics.record_sent(&batch);
                batch.clear();
                producer.poll(Duration::ZERO);
                std::thread::sleep(due - now);
            }
        }
        send(&producer, &kafka_config.topic, m.partition, m.key.as_bytes(), &m.payload, metrics)?;
        summary.add(&m);
        batch.push(m);
        if batch.len() == batch.capacity() {
            metrics.record_sent(&batch);
            batch.clear();
            producer.poll(Duration::ZERO);
        }
    }
    metrics.record_sent(&batch);
    flush(&producer, Duration::from_secs(60))?;
    Ok(summary)
}
