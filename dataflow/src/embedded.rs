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

use anyhow::Context;
use connectors::kafka::SinkConfig;
use producer::files::Summary;
use producer::metrics::ProducerMetrics;
use producer::GeneratorConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

use crate::config::Args;

/// The in-process Kafka cluster; dropping it shuts it down.
pub type EmbeddedKafka = MockCluster<'static, DefaultProducerContext>;

/// Starts a one-broker mock cluster holding `topic` with `partitions` partitions; returns it
/// and its bootstrap address.
pub fn start(topic: &str, partitions: u32) -> anyhow::Result<(EmbeddedKafka, String)> {
    let cluster = MockCluster::new(1).context("cannot start the embedded Kafka (librdkafka mock cluster)")?;
    cluster
        .create_topic(topic, partitions as i32, 1)
        .with_context(|| format!("cannot create topic {topic} in the embedded Kafka"))?;
    let brokers = cluster.bootstrap_servers();
    Ok((cluster, brokers))
}

/// Runs the built-in producer against `brokers` on a thread until `stop`; its metrics are
/// served on `--producer-metrics-addr`.
pub fn spawn_producer(
    args: &Args,
    brokers: &str,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<JoinHandle<anyhow::Result<Summary>>> {
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
    generator.validate().map_err(anyhow::Error::msg)?;
    let kafka = SinkConfig {
        brokers: brokers.to_owned(),
        topic: args.topic.clone(),
        compression: "none".into(),
        options: vec![],
    };
    let metrics = Arc::new(ProducerMetrics::new());
    let addr = producer::metrics::serve(&args.producer_metrics_addr, Arc::clone(&metrics))
        .context("--producer-metrics-addr")?;
    tracing::info!(%addr, "built-in producer serves /metrics");
    Ok(std::thread::Builder::new().name("producer".into()).spawn(move || {
        producer::kafka::produce(&generator, &kafka, producer::kafka::Pacing::EventTime, &metrics, &stop)
    })?)
}
