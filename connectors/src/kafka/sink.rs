//! The Kafka sink: messages written to a chosen partition of a topic, with their key.
//!
//! - **Topic.** [`KafkaSink::connect`] creates the topic with the wanted partition count when
//!   it is missing, and refuses one with fewer partitions (a message for partition `p` could
//!   not be placed).
//! - **Order.** Messages of one partition are delivered in the order they were sent when
//!   `max.in.flight.requests.per.connection=1` ([`SinkConfig::ordered`]): a retried batch
//!   cannot overtake a later one. The producer's `replay` relies on it.
//! - **Back-pressure.** [`KafkaSink::send`] waits for queue space when librdkafka's queue is
//!   full, serving delivery reports meanwhile; it never drops a message.
//! - **Failures.** A message librdkafka gives up on (after `message.timeout.ms`) is reported
//!   to the `on_failure` callback and counted; [`KafkaSink::flush`] then reports how many
//!   were lost, so a caller can say the topic is incomplete instead of claiming success.
//! - Records are sent uncompressed by default (some Kafka-protocol brokers cannot serve
//!   compressed batches back); option values are resolved like the source's
//!   ([`super::resolve_option`]) and never printed.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

/// Where and how to produce.
#[derive(Clone)]
pub struct SinkConfig {
    /// Bootstrap servers, `host:port[,host:port]`.
    pub brokers: String,
    /// Topic name.
    pub topic: String,
    /// `compression.type` (none, gzip, snappy, lz4, zstd).
    pub compression: String,
    /// Extra librdkafka properties, values already resolved (see [`super::resolve_option`]).
    pub options: Vec<(String, String)>,
}

impl fmt::Debug for SinkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Option values may be secrets: print their names only.
        let names: Vec<&str> = self.options.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("SinkConfig")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("compression", &self.compression)
            .field("options", &names)
            .finish()
    }
}

impl SinkConfig {
    /// The same destination with one request in flight per broker, so that each partition's
    /// messages arrive in the order they were sent, even across retries.
    pub fn ordered(&self) -> SinkConfig {
        let mut ordered = self.clone();
        ordered.options.insert(0, ("max.in.flight.requests.per.connection".into(), "1".into()));
        ordered
    }

    fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("compression.type", &self.compression)
            .set("partitioner", "murmur2_random")
            .set("linger.ms", "5")
            .set("queue.buffering.max.messages", "1000000")
            .set("message.timeout.ms", "120000");
        for (k, v) in &self.options {
            c.set(k, v);
        }
        c
    }

    fn error(&self, action: &str, e: impl fmt::Display) -> SinkError {
        SinkError(format!(
            "cannot {action} for topic {} on {}: {e} (check --brokers / KAFKA_BROKERS and --kafka-option)",
            self.topic, self.brokers
        ))
    }
}

/// Why the sink could not deliver; the message names the topic, the brokers and the fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SinkError(String);

/// Counts messages librdkafka gave up on and tells the caller's callback.
pub struct DeliveryContext {
    failed: AtomicU64,
    on_failure: Box<dyn Fn(&KafkaError) + Send + Sync>,
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        if let Err((e, _)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            (self.on_failure)(e);
        }
    }
}

/// A producer connected to one topic.
pub struct KafkaSink {
    producer: BaseProducer<DeliveryContext>,
    config: SinkConfig,
}

impl KafkaSink {
    /// A producer for `config`'s topic, which exists afterwards with at least `partitions`
    /// partitions (created when missing). `on_failure` hears of every message that could not
    /// be delivered (it runs on the thread that polls or flushes).
    pub fn connect(
        config: &SinkConfig, partitions: u32, on_failure: impl Fn(&KafkaError) + Send + Sync + 'static,
    ) -> Result<KafkaSink, SinkError> {
        let context = DeliveryContext { failed: AtomicU64::new(0), on_failure: Box::new(on_failure) };
        let producer: BaseProducer<DeliveryContext> =
            config.client_config().create_with_context(context).map_err(|e| config.error("create a producer", e))?;
        let sink = KafkaSink { producer, config: config.clone() };
        let existing = sink.topic_partitions()?;
        if existing == 0 {
            sink.create_topic(partitions)?;
            let deadline = Instant::now() + Duration::from_secs(10);
            while sink.topic_partitions()? == 0 {
                if Instant::now() >= deadline {
                    return Err(config.error("see the topic", "it was created but does not appear in the metadata"));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        } else if existing < partitions {
            return Err(SinkError(format!(
                "topic {} has {existing} partitions, fewer than the {partitions} wanted: use --partitions {existing} or a new topic",
                config.topic
            )));
        }
        Ok(sink)
    }

    /// Partitions of the topic, 0 when it does not exist.
    fn topic_partitions(&self) -> Result<u32, SinkError> {
        let metadata = self
            .producer
            .client()
            .fetch_metadata(Some(&self.config.topic), Duration::from_secs(10))
            .map_err(|e| self.config.error("reach the broker", e))?;
        Ok(metadata.topics().first().filter(|t| t.error().is_none()).map_or(0, |t| t.partitions().len() as u32))
    }

    fn create_topic(&self, partitions: u32) -> Result<(), SinkError> {
        let config = &self.config;
        let admin: AdminClient<DefaultClientContext> =
            config.client_config().create().map_err(|e| config.error("create an admin client", e))?;
        let topic = NewTopic::new(&config.topic, partitions as i32, TopicReplication::Fixed(1));
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = futures_executor::block_on(admin.create_topics([&topic], &options))
            .map_err(|e| config.error("create the topic", e))?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, e)) => return Err(config.error("create the topic", e)),
            }
        }
        tracing::info!(topic = %config.topic, partitions, "created topic");
        Ok(())
    }

    /// Queues one message for `partition`, waiting for queue space when librdkafka's queue is
    /// full (delivery reports are served meanwhile).
    pub fn send(&self, partition: u32, key: &[u8], payload: &[u8]) -> Result<(), SinkError> {
        let mut record = BaseRecord::to(&self.config.topic).partition(partition as i32).key(key).payload(payload);
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    self.producer.poll(Duration::from_millis(50));
                }
                Err((e, _)) => return Err(self.config.error(&format!("send to partition {partition}"), e)),
            }
        }
    }

    /// Serves delivery reports without waiting.
    pub fn poll(&self) {
        self.producer.poll(Duration::ZERO);
    }

    /// Waits until every queued message is delivered or given up on (at most `timeout`);
    /// an error if any message since [`KafkaSink::connect`] was not delivered.
    pub fn flush(&self, timeout: Duration) -> Result<(), SinkError> {
        self.producer
            .flush(timeout)
            .map_err(|e| self.config.error(&format!("deliver every message within {timeout:?}"), e))?;
        match self.failed() {
            0 => Ok(()),
            n => Err(SinkError(format!(
                "{n} messages could not be delivered to {} on {}: the topic does not hold all of them (see the warnings above)",
                self.config.topic, self.config.brokers
            ))),
        }
    }

    /// Messages librdkafka gave up on so far.
    pub fn failed(&self) -> u64 {
        self.producer.context().failed.load(Ordering::Relaxed)
    }
}

/// Where the destination is, for messages: `topic T on B`.
impl fmt::Display for KafkaSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "topic {} on {}", self.config.topic, self.config.brokers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::{KafkaConfig, KafkaSource, StartFrom};
    use crate::source::{MessageBatch, PollStatus, Source};
    use rdkafka::mocking::MockCluster;
    use std::sync::Arc;

    fn sink_config(brokers: &str, topic: &str) -> SinkConfig {
        SinkConfig { brokers: brokers.into(), topic: topic.into(), compression: "none".into(), options: vec![] }
    }

    /// Every message of partition `p`, read back with the engine's Kafka source.
    fn read_back(brokers: &str, topic: &str, p: u32) -> Vec<Vec<u8>> {
        let config = KafkaConfig {
            brokers: brokers.into(),
            topic: topic.into(),
            group: "test".into(),
            start_from: StartFrom::Earliest,
            options: vec![],
        };
        let mut reader = KafkaSource::new(config).unwrap().open(p, Some(0), true).unwrap();
        let (mut batch, mut out) = (MessageBatch::default(), Vec::new());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            batch.clear();
            let status = reader.poll(&mut batch, 1 << 16).unwrap();
            out.extend(batch.iter().map(|(_, m)| m.to_vec()));
            if status == PollStatus::Ended {
                return out;
            }
            assert!(Instant::now() < deadline, "partition {p} did not end");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn messages_reach_their_partition_in_order_and_a_missing_topic_is_created() {
        let cluster = MockCluster::new(1).unwrap();
        let brokers = cluster.bootstrap_servers();
        let failures = Arc::new(AtomicU64::new(0));
        let f = Arc::clone(&failures);
        let sink = KafkaSink::connect(&sink_config(&brokers, "new").ordered(), 3, move |_| {
            f.fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
        let messages: Vec<(u32, Vec<u8>)> =
            (0..500u32).map(|i| ((i * 7) % 3, format!("message {i}").into_bytes())).collect();
        for (p, m) in &messages {
            sink.send(*p, b"key", m).unwrap();
        }
        sink.flush(Duration::from_secs(30)).unwrap();
        assert_eq!((sink.failed(), failures.load(Ordering::Relaxed)), (0, 0));
        for p in 0..3 {
            let expected: Vec<Vec<u8>> = messages.iter().filter(|(q, _)| *q == p).map(|(_, m)| m.clone()).collect();
            assert_eq!(read_back(&brokers, "new", p), expected, "partition {p}");
        }
        // An existing topic with enough partitions is used as it is.
        KafkaSink::connect(&sink_config(&brokers, "new"), 2, |_| {}).unwrap();
    }

    #[test]
    fn a_topic_with_fewer_partitions_is_refused_with_the_fix() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("small", 2, 1).unwrap();
        let e = KafkaSink::connect(&sink_config(&cluster.bootstrap_servers(), "small"), 3, |_| {}).err().unwrap();
        assert!(e.to_string().contains("has 2 partitions, fewer than the 3 wanted: use --partitions 2"), "{e}");
    }

    #[test]
    fn undelivered_messages_are_counted_and_fail_the_flush() {
        let cluster = MockCluster::new(1).unwrap();
        let brokers = cluster.bootstrap_servers();
        let mut config = sink_config(&brokers, "t");
        config.options.push(("message.timeout.ms".into(), "300".into()));
        let failures = Arc::new(AtomicU64::new(0));
        let f = Arc::clone(&failures);
        let sink = KafkaSink::connect(&config, 1, move |_| {
            f.fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
        drop(cluster); // the broker goes away: nothing can be delivered
        for i in 0..5 {
            sink.send(0, b"", format!("m{i}").as_bytes()).unwrap();
        }
        let e = sink.flush(Duration::from_secs(20)).unwrap_err();
        assert_eq!((sink.failed(), failures.load(Ordering::Relaxed)), (5, 5));
        assert!(e.to_string().contains("5 messages could not be delivered to t"), "{e}");
    }
}
