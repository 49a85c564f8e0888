//! The Kafka source itself: [`KafkaSource`] lists a topic's partitions and opens a reader per
//! partition (see the module header of [`crate::kafka`] for how reading works).

use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::config::{KafkaConfig, StartFrom};
use crate::schema::Position;
use crate::source::{MessageBatch, PartitionReader, PollStatus, Source, SourceError};

/// How long metadata and watermark requests may take before the broker counts as unreachable.
pub const METADATA_TIMEOUT: Duration = Duration::from_secs(8);

/// How long opening a partition retries while the broker does not answer (it may be restarting).
const OPEN_RETRY_FOR: Duration = Duration::from_secs(120);

/// How often a reader commits its position to the consumer group (for lag monitoring only).
const GROUP_COMMIT_INTERVAL: Duration = Duration::from_secs(5);

/// The consumer context of a reader: keeps the partition's high watermark from librdkafka's
/// periodic statistics, so that lag is known without a blocking request.
#[derive(Default)]
pub struct ReaderContext {
    high_watermark: AtomicI64,
}

impl ClientContext for ReaderContext {
    fn stats(&self, statistics: Statistics) {
        for topic in statistics.topics.values() {
            for p in topic.partitions.values().filter(|p| p.partition >= 0 && p.hi_offset >= 0) {
                self.high_watermark.fetch_max(p.hi_offset, Relaxed);
            }
        }
    }
}

impl ConsumerContext for ReaderContext {}

/// A Kafka topic as a partitioned source.
pub struct KafkaSource {
    config: KafkaConfig,
    /// A consumer used for metadata only.
    metadata: BaseConsumer<ReaderContext>,
}

impl KafkaSource {
    /// Connects to the brokers; fails (naming the address) when they cannot be reached.
    pub fn new(config: KafkaConfig) -> Result<Self, SourceError> {
        let metadata = config.consumer(false)?;
        let source = KafkaSource { config, metadata };
        source.partitions()?;
        Ok(source)
    }
}

impl Source for KafkaSource {
    fn identity(&self) -> String {
        // The cluster id tells clusters apart whatever address they are reached at (and a
        // new in-memory cluster of the embedded run from the last one); the bootstrap
        // address stands in for a broker that does not report one.
        let cluster =
            self.metadata.client().fetch_cluster_id(METADATA_TIMEOUT).unwrap_or_else(|| self.config.brokers.clone());
        format!("kafka cluster {cluster} topic {}", self.config.topic)
    }

    fn partitions(&self) -> Result<Vec<u32>, SourceError> {
        let metadata = self
            .metadata
            .fetch_metadata(Some(&self.config.topic), METADATA_TIMEOUT)
            .map_err(|e| self.config.error("fetch metadata", e))?;
        let topic = metadata.topics().first().ok_or_else(|| {
            SourceError::Kafka(format!(
                "the brokers at {} returned no metadata for topic {}",
                self.config.brokers, self.config.topic
            ))
        })?;
        if let Some(e) = topic.error() {
            return Err(SourceError::Kafka(format!(
                "topic {} on {}: {:?} (create it, e.g. with `producer --brokers {} --topic {}`)",
                self.config.topic,
                self.config.brokers,
                rdkafka::types::RDKafkaErrorCode::from(e),
                self.config.brokers,
                self.config.topic
            )));
        }
        let mut parts: Vec<u32> = topic.partitions().iter().map(|p| p.id() as u32).collect();
        if parts.is_empty() {
            return Err(SourceError::Kafka(format!(
                "topic {} on {} has no partitions",
                self.config.topic, self.config.brokers
            )));
        }
        parts.sort_unstable();
        Ok(parts)
    }

    fn open(
        &self, partition: u32, offset: Option<u64>, bounded: bool,
    ) -> Result<Box<dyn PartitionReader>, SourceError> {
        let config = &self.config;
        let consumer = Arc::new(config.consumer(true)?);
        // The broker may be restarting: retry for a while before giving up.
        let deadline = Instant::now() + OPEN_RETRY_FOR;
        let mut backoff = Duration::from_millis(250);
        let (low, high) = loop {
            match consumer.fetch_watermarks(&config.topic, partition as i32, METADATA_TIMEOUT) {
                Ok(w) => break w,
                Err(e) if Instant::now() + backoff < deadline => {
                    tracing::warn!(partition, error = %e, retry_in = ?backoff, "cannot fetch the partition's watermarks (retrying)");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    return Err(config
                        .error(&format!("fetch the watermarks of partition {partition} (for {OPEN_RETRY_FOR:?})"), e))
                }
            }
        };
        let (low, high) = (low.max(0) as u64, high.max(0) as u64);
        consumer.context().high_watermark.store(high as i64, Relaxed);
        let start = match (offset, config.start_from) {
            (None, StartFrom::Latest) => high,
            (None, StartFrom::Earliest) => low,
            (Some(o), _) => {
                if o < low {
                    tracing::warn!(
                        partition,
                        offset = o,
                        first_retained = low,
                        "the resume offset is no longer retained by the topic: reading from the first retained message"
                    );
                }
                o.max(low)
            }
        };
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(&config.topic, partition as i32, Offset::Offset(start as i64))
            .map_err(|e| config.error("build an assignment", e))?;
        consumer.assign(&assignment).map_err(|e| config.error(&format!("assign partition {partition}"), e))?;
        let queue = consumer.split_partition_queue(&config.topic, partition as i32).ok_or_else(|| {
            SourceError::Kafka(format!("cannot open the queue of partition {partition} of topic {}", config.topic))
        })?;
        tracing::info!(topic = %config.topic, partition, start, end = bounded.then_some(high), "reading partition");
        Ok(Box::new(KafkaReader {
            topic: config.topic.clone(),
            partition,
            consumer,
            queue,
            next: start,
            end: bounded.then_some(high),
            committed: start,
            last_commit: Instant::now(),
        }))
    }
}

/// Takes one fetched message of `partition` into `out` unless it is a re-delivery (an
/// offset already read) or, in bounded mode, at or past the end; returns whether it did.
fn take(
    partition: u32, next: &mut u64, end: Option<u64>, offset: i64, payload: Option<&[u8]>, out: &mut MessageBatch,
) -> bool {
    let offset = offset as u64;
    if offset < *next {
        return false; // a re-delivery after a reconnect
    }
    if end.is_some_and(|end| offset >= end) {
        *next = offset;
        return false;
    }
    out.push(Position { partition, offset }, payload.unwrap_or_default());
    *next = offset + 1;
    true
}

struct KafkaReader {
    topic: String,
    partition: u32,
    consumer: Arc<BaseConsumer<ReaderContext>>,
    queue: PartitionQueue<ReaderContext>,
    /// Offset of the next message to read.
    next: u64,
    /// In bounded mode, the high watermark at open.
    end: Option<u64>,
    /// The last position committed to the group.
    committed: u64,
    last_commit: Instant,
}

impl KafkaReader {
    fn commit_to_group(&mut self) {
        if self.next == self.committed || self.last_commit.elapsed() < GROUP_COMMIT_INTERVAL {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        if tpl.add_partition_offset(&self.topic, self.partition as i32, Offset::Offset(self.next as i64)).is_ok() {
            if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
                tracing::debug!(partition = self.partition, error = %e, "offset commit to the group failed (lag monitoring only)");
            }
        }
        self.committed = self.next;
        self.last_commit = Instant::now();
    }
}

impl PartitionReader for KafkaReader {
    fn partition(&self) -> u32 {
        self.partition
    }

    fn poll(&mut self, out: &mut MessageBatch, max_bytes: usize) -> Result<PollStatus, SourceError> {
        let start_len = out.payload_bytes();
        let mut read_any = false;
        // Serve the consumer's own queue: events (errors, statistics) and the messages that
        // librdkafka fetched before the partition's queue was split off (assign() must come
        // first). Those precede everything on the split queue, so they are taken first;
        // dropping them would silently skip the first offsets.
        loop {
            match self.consumer.poll(Duration::ZERO) {
                None => break,
                Some(Err(e)) => {
                    tracing::warn!(partition = self.partition, error = %e, "Kafka consumer error (retrying)");
                    break;
                }
                Some(Ok(message)) => {
                    read_any |= take(self.partition, &mut self.next, self.end, message.offset(), message.payload(), out)
                }
            }
        }
        while out.payload_bytes() - start_len < max_bytes {
            if self.end.is_some_and(|end| self.next >= end) {
                return Ok(if read_any { PollStatus::Data } else { PollStatus::Ended });
            }
            match self.queue.poll(Duration::ZERO) {
                None => break,
                Some(Err(e)) => {
                    tracing::warn!(partition = self.partition, error = %e, "Kafka fetch error (retrying)");
                    break;
                }
                Some(Ok(message)) => {
                    read_any |= take(self.partition, &mut self.next, self.end, message.offset(), message.payload(), out)
                }
            }
        }
        if self.end.is_some_and(|end| self.next >= end) && !read_any {
            return Ok(PollStatus::Ended);
        }
        self.commit_to_group();
        Ok(if read_any { PollStatus::Data } else { PollStatus::Idle })
    }

    fn set_waker(&mut self, waker: Arc<dyn Fn() + Send + Sync>) {
        self.queue.set_nonempty_callback(move || waker());
    }

    fn lag(&self) -> Option<u64> {
        let high = self.consumer.context().high_watermark.load(Relaxed);
        (high >= 0).then(|| (high as u64).saturating_sub(self.next))
    }

    fn position(&self) -> u64 {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::resolve_option;
    use rdkafka::config::ClientConfig;
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

    fn config(brokers: &str, topic: &str) -> KafkaConfig {
        KafkaConfig {
            brokers: brokers.to_owned(),
            topic: topic.to_owned(),
            group: "test".into(),
            start_from: StartFrom::Earliest,
            options: vec![],
        }
    }

    fn produce(brokers: &str, topic: &str, messages: &[(u32, Vec<u8>)]) {
        let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", brokers).create().unwrap();
        for (p, payload) in messages {
            producer.send(BaseRecord::<(), _>::to(topic).partition(*p as i32).payload(payload)).unwrap();
        }
        producer.flush(Duration::from_secs(10)).unwrap();
    }

    fn read_bounded(source: &KafkaSource, p: u32, offset: u64) -> Vec<(u64, Vec<u8>)> {
        drain(source.open(p, Some(offset), true).unwrap())
    }

    /// Polls a bounded reader, a few bytes at a time, until it ends.
    fn drain(mut reader: Box<dyn PartitionReader>) -> Vec<(u64, Vec<u8>)> {
        let mut batch = MessageBatch::default();
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            batch.clear();
            let status = reader.poll(&mut batch, 10).unwrap();
            out.extend(batch.iter().map(|(pos, b)| (pos.offset, b.to_vec())));
            if status == PollStatus::Ended {
                return out;
            }
            assert!(Instant::now() < deadline, "partition {} did not end", reader.partition());
            if status == PollStatus::Idle {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    #[test]
    fn bounded_readers_return_each_partition_in_order_up_to_the_high_watermark() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("t", 3, 1).unwrap();
        let brokers = cluster.bootstrap_servers();
        let messages: Vec<(u32, Vec<u8>)> = (0..300u32)
            .map(|i| (i % 3, format!("message {i}").into_bytes()))
            .chain([(1, Vec::new()), (1, b"\xff\n".to_vec())])
            .collect();
        produce(&brokers, "t", &messages);
        let source = KafkaSource::new(config(&brokers, "t")).unwrap();
        assert_eq!(source.partitions().unwrap(), vec![0, 1, 2]);
        for p in 0..3 {
            let expected: Vec<(u64, Vec<u8>)> = messages
                .iter()
                .filter(|(q, _)| *q == p)
                .map(|(_, m)| m.clone())
                .enumerate()
                .map(|(i, m)| (i as u64, m))
                .collect();
            assert_eq!(read_bounded(&source, p, 0), expected, "partition {p}");
            assert_eq!(read_bounded(&source, p, 50), expected[50..].to_vec(), "partition {p} from offset 50");
        }
        // Messages produced after a bounded reader opened are not part of its run.
        let reader = source.open(0, None, true).unwrap();
        produce(&brokers, "t", &[(0, b"later".to_vec())]);
        assert_eq!(drain(reader).len(), 100);
    }

    #[test]
    fn live_readers_wake_the_engine_and_report_lag() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("live", 1, 1).unwrap();
        let brokers = cluster.bootstrap_servers();
        let source = KafkaSource::new(config(&brokers, "live")).unwrap();
        let mut reader = source.open(0, None, false).unwrap();
        let woken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let w = Arc::clone(&woken);
        reader.set_waker(Arc::new(move || {
            w.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }));
        let mut batch = MessageBatch::default();
        assert_eq!(reader.poll(&mut batch, 1 << 20).unwrap(), PollStatus::Idle);
        produce(&brokers, "live", &[(0, b"a".to_vec()), (0, b"b".to_vec())]);
        let deadline = Instant::now() + Duration::from_secs(20);
        while batch.len() < 2 {
            assert!(Instant::now() < deadline, "messages did not arrive");
            std::thread::sleep(Duration::from_millis(10));
            reader.poll(&mut batch, 1 << 20).unwrap();
        }
        assert!(woken.load(std::sync::atomic::Ordering::SeqCst) > 0, "the waker was never called");
        assert_eq!(reader.position(), 2);
        assert_eq!(reader.lag(), Some(0));
    }

    #[test]
    fn an_unreachable_broker_is_an_error_naming_it_within_seconds() {
        let start = Instant::now();
        let err = KafkaSource::new(config("127.0.0.1:1", "t")).err().expect("no broker listens on port 1").to_string();
        assert!(err.contains("127.0.0.1:1") && err.contains("KAFKA_BROKERS"), "{err}");
        assert!(start.elapsed() < Duration::from_secs(15), "took {:?}", start.elapsed());
    }

    #[test]
    fn a_missing_topic_names_the_fix() {
        let cluster = MockCluster::new(1).unwrap();
        let err = KafkaSource::new(config(&cluster.bootstrap_servers(), "absent")).err().unwrap().to_string();
        assert!(err.contains("absent") && err.contains("create it"), "{err}");
    }

    #[test]
    fn option_values_come_from_files_and_env_and_are_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("password");
        std::fs::write(&secret, "s3cret\n").unwrap();
        assert_eq!(
            resolve_option(&format!("sasl.password=@file:{}", secret.display())).unwrap(),
            ("sasl.password".into(), "s3cret".into())
        );
        assert_eq!(
            resolve_option("security.protocol=SASL_SSL").unwrap(),
            ("security.protocol".into(), "SASL_SSL".into())
        );
        assert_eq!(resolve_option("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert!(resolve_option("nokey").unwrap_err().contains("key=value"));
        assert!(resolve_option("x=@env:IOT_ETL_SURELY_UNSET_VARIABLE")
            .unwrap_err()
            .contains("IOT_ETL_SURELY_UNSET_VARIABLE"));
        let mut c = config("b:9092", "t");
        c.options.push(("sasl.password".into(), "s3cret".into()));
        let printed = format!("{c:?}");
        assert!(printed.contains("sasl.password") && !printed.contains("s3cret"), "{printed}");
        // librdkafka rejects the value (its message quotes it): the error names the option only.
        let mut c = config("127.0.0.1:1", "t");
        c.options.push(("security.protocol".into(), "s3cret".into()));
        let err = KafkaSource::new(c).err().expect("an invalid security.protocol is rejected").to_string();
        assert!(err.contains("security.protocol") && !err.contains("s3cret"), "{err}");
    }
}
