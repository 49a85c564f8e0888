//! The producer's Prometheus metrics (names in [`names`]) and their HTTP endpoint.
//! Messages are counted per batch, not per message.

use connectors::http::{Answer, Endpoint, ServeError};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use prometheus::{Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

use crate::generator::Message;

/// Metric names and labels.
pub mod names {
    /// Counter, labels `device_type` and `status` (`invalid` for invalid lines).
    pub const MESSAGES_SENT: &str = "producer_messages_sent_total";
    /// Histogram of message sizes in bytes.
    pub const MESSAGE_SIZE: &str = "producer_message_size_bytes";
    /// Counter of Kafka delivery and send errors.
    pub const KAFKA_ERRORS: &str = "producer_kafka_errors_total";
    /// Gauge: distinct devices that have sent an event.
    pub const ACTIVE_DEVICES: &str = "producer_active_devices";
    /// Label: device type.
    pub const DEVICE_TYPE: &str = "device_type";
    /// Label: status.
    pub const STATUS: &str = "status";
}

/// The producer's metrics.
pub struct ProducerMetrics {
    registry: Registry,
    sent: IntCounterVec,
    size: Histogram,
    /// Kafka errors (incremented by the Kafka sink's delivery callback).
    pub kafka_errors: IntCounter,
    active: IntGauge,
    devices: Mutex<BTreeSet<String>>,
}

impl Default for ProducerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ProducerMetrics {
    /// Registers the metrics.
    pub fn new() -> Self {
        let registry = Registry::new();
        let sent = IntCounterVec::new(
            Opts::new(names::MESSAGES_SENT, "Messages sent, by device type and status."),
            &[names::DEVICE_TYPE, names::STATUS],
        )
        .expect("valid");
        let size = Histogram::with_opts(
            HistogramOpts::new(names::MESSAGE_SIZE, "Size of each message in bytes.")
                .buckets(vec![128.0, 192.0, 256.0, 320.0, 384.0, 512.0, 1024.0, 4096.0, 16384.0, 65536.0]),
        )
        .expect("valid");
        let kafka_errors = IntCounter::new(names::KAFKA_ERRORS, "Kafka send and delivery errors.").expect("valid");
        let active = IntGauge::new(names::ACTIVE_DEVICES, "Distinct devices that have sent an event.").expect("valid");
        registry.register(Box::new(sent.clone())).expect("unique");
        registry.register(Box::new(size.clone())).expect("unique");
        registry.register(Box::new(kafka_errors.clone())).expect("unique");
        registry.register(Box::new(active.clone())).expect("unique");
        ProducerMetrics { registry, sent, size, kafka_errors, active, devices: Mutex::new(BTreeSet::new()) }
    }

    /// Counts a batch of sent messages.
    pub fn record_sent(&self, batch: &[Message]) {
        let mut by_label: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        let mut devices = self.devices.lock().expect("not poisoned");
        for m in batch {
            let labels = match (m.device_type, m.status) {
                (Some(t), Some(s)) => {
                    if !devices.contains(&m.key) {
                        devices.insert(m.key.clone());
                    }
                    (t.as_str(), s.as_str())
                }
                _ => ("invalid", "invalid"),
            };
            *by_label.entry(labels).or_default() += 1;
            self.size.observe(m.payload.len() as f64);
        }
        for ((t, s), n) in by_label {
            self.sent.with_label_values(&[t, s]).inc_by(n);
        }
        self.active.set(devices.len() as i64);
    }

    /// The metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out).expect("text encoding");
        String::from_utf8(out).expect("UTF-8")
    }
}

/// Serves `/metrics` and `/healthz` on `addr` from a background thread
/// ([`connectors::http`]); returns the bound address (pass port 0 for any free port).
pub fn serve(addr: &str, metrics: std::sync::Arc<ProducerMetrics>) -> Result<std::net::SocketAddr, ServeError> {
    connectors::http::serve(addr, Producer(metrics))
}

/// The producer's answers.
struct Producer(std::sync::Arc<ProducerMetrics>);

impl Endpoint for Producer {
    fn answer(&self, path: &str) -> Option<Answer> {
        match path {
            "/metrics" => Some(Answer::ok(self.0.render())),
            "/healthz" => Some(Answer::ok("ok\n")),
            _ => None,
        }
    }
    fn paths(&self) -> &'static [&'static str] {
        &["/metrics", "/healthz"]
    }
}
