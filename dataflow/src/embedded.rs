//! The embedded run (`dataflow` with neither `--input` nor `--brokers`): everything the
//! pipeline needs, in this process, with no services.
//!
//! - librdkafka's mock cluster stands in for Kafka: a real Kafka-protocol broker inside
//!   librdkafka, reached over loopback like any broker, holding the topic in memory;
//! - the built-in producer (the `producer` crate) sends realistic events to it, paced in wall
//!   clock time from now, with 2 % duplicates and a few late, invalid and outlier events;
//! - the engine reads the topic live like any other Kafka topic.
//!
//! The topic lives only as long as the process: the embedded run is for trying the product and
//! for demos. Point `--brokers` at a real cluster for anything that must survive a restart.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread::JoinHandle;

use connectors::kafka::SinkConfig;
use producer::files::Summary;
use producer::metrics::ProducerMetrics;
use producer::GeneratorConfig;
use producer::ProduceError;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

use crate::config::Args;

/// The in-process Kafka cluster; dropping it shuts it down.
pub type EmbeddedKafka = MockCluster<'static, DefaultProducerContext>;

/// Why the embedded run cannot start.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// librdkafka's mock cluster cannot start.
    #[error("cannot start the embedded Kafka (librdkafka mock cluster): {0}")]
    Cluster(rdkafka::error::KafkaError),
    /// The topic cannot be created in it.
    #[error("cannot create topic {topic} in the embedded Kafka: {error}")]
    Topic {
        /// The topic.
        topic: String,
        /// Why.
        error: rdkafka::error::KafkaError,
    },
    /// The built-in producer's settings are invalid (the message names the flag).
    #[error("{0}")]
    Producer(String),
    /// The built-in producer's metrics cannot be served.
    #[error("--producer-metrics-addr")]
    ProducerMetrics(#[from] connectors::http::ServeError),
    /// The producer's thread cannot start.
    #[error("cannot start the built-in producer's thread")]
    Thread(#[from] std::io::Error),
}

/// Starts a one-broker mock cluster holding `topic` with `partitions` partitions; returns it
/// and its bootstrap address.
pub fn start(topic: &str, partitions: u32) -> Result<(EmbeddedKafka, String), EmbeddedError> {
    let cluster = MockCluster::new(1).map_err(EmbeddedError::Cluster)?;
    cluster
        .create_topic(topic, partitions as i32, 1)
        .map_err(|error| EmbeddedError::Topic { topic: topic.to_owned(), error })?;
    let brokers = cluster.bootstrap_servers();
    Ok((cluster, brokers))
}

/// Runs the built-in producer against `brokers` on a thread until `stop`; its metrics are
/// served on `--producer-metrics-addr`.
pub fn spawn_producer(
    args: &Args, brokers: &str, stop: Arc<AtomicBool>,
) -> Result<JoinHandle<Result<Summary, ProduceError>>, EmbeddedError> {
    let generator = GeneratorConfig {
        seed: 1,
        rate: args.rate,
        count: None,
        duration: None,
        start: chrono::Utc::now(),
        partitions: args.partitions,
        duplicates: 0.02,
        late: 0.001,
        invalid: 0.001,
        outliers: 0.005,
        max_message_bytes: args.max_message_bytes,
    };
    generator.validate().map_err(EmbeddedError::Producer)?;
    let kafka = SinkConfig {
        brokers: brokers.to_owned(),
        topic: args.topic.clone(),
        compression: "none".into(),
        options: vec![],
    };
    let metrics = Arc::new(ProducerMetrics::new());
    let addr = producer::metrics::serve(&args.producer_metrics_addr, Arc::clone(&metrics))?;
    tracing::info!(%addr, "built-in producer serves /metrics");
    Ok(std::thread::Builder::new().name("producer".into()).spawn(move || {
        producer::kafka::produce(&generator, &kafka, producer::kafka::Pacing::EventTime, &metrics, &stop)
    })?)
}
