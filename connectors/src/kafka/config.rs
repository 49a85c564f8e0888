//! Where and how to reach a Kafka topic: [`KafkaConfig`], the start position of a partition
//! without a checkpoint ([`StartFrom`]), and `--kafka-option key=value` properties whose
//! values may come from a file or an environment variable ([`resolve_option`]). Shared by the
//! engine's `--kafka-option` and the producer's.

use std::fmt;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::KafkaError;

use super::source::ReaderContext;
use crate::source::SourceError;

/// Where a partition without a checkpointed position starts.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum StartFrom {
    /// The oldest retained message.
    Earliest,
    /// Only messages produced after the reader is opened.
    Latest,
}

impl std::str::FromStr for StartFrom {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "earliest" => Ok(StartFrom::Earliest),
            "latest" => Ok(StartFrom::Latest),
            other => Err(format!("unknown start position {other:?}: use earliest or latest")),
        }
    }
}

/// How to reach the topic.
#[derive(Clone)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port[,host:port]`.
    pub brokers: String,
    /// Topic name.
    pub topic: String,
    /// Consumer group that receives committed offsets (lag monitoring only).
    pub group: String,
    /// Where a partition without a resume position starts.
    pub start_from: StartFrom,
    /// Extra librdkafka properties, values already resolved (see [`resolve_option`]).
    pub options: Vec<(String, String)>,
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Option values may be secrets: print their names only.
        let names: Vec<&str> = self.options.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("group", &self.group)
            .field("start_from", &self.start_from)
            .field("options", &names)
            .finish()
    }
}

/// Parses a `key=value` librdkafka property; a value `@file:PATH` is the file's contents
/// (trailing newline removed), `@env:NAME` the environment variable's value. Errors name the
/// option but never print a value.
pub fn resolve_option(spec: &str) -> Result<(String, String), String> {
    let Some((key, value)) = spec.split_once('=') else {
        return Err(format!(
            "--kafka-option {spec:?} is not key=value (e.g. --kafka-option security.protocol=SASL_SSL)"
        ));
    };
    let key = key.trim();
    if key.is_empty() {
        return Err("--kafka-option has an empty key: use key=value".to_owned());
    }
    let value = if let Some(path) = value.strip_prefix("@file:") {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("--kafka-option {key}: cannot read {path}: {e}"))?;
        text.trim_end_matches(['\n', '\r']).to_owned()
    } else if let Some(name) = value.strip_prefix("@env:") {
        std::env::var(name).map_err(|_| format!("--kafka-option {key}: environment variable {name} is not set"))?
    } else {
        value.to_owned()
    };
    Ok((key.to_owned(), value))
}

impl KafkaConfig {
    /// The librdkafka configuration of a reader of this topic.
    pub(super) fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("group.id", &self.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("auto.offset.reset", if self.start_from == StartFrom::Latest { "latest" } else { "earliest" })
            .set("fetch.wait.max.ms", "100")
            .set("queued.max.messages.kbytes", "65536")
            .set("client.id", "iot-etl");
        for (k, v) in &self.options {
            c.set(k, v);
        }
        c
    }

    /// A consumer; with `statistics`, librdkafka reports each partition's high watermark every
    /// second to [`ReaderContext`] — only for a consumer that is polled: the reports wait in
    /// its queue until then, so an unpolled one (the metadata consumer) would pile them up.
    pub(super) fn consumer(&self, statistics: bool) -> Result<BaseConsumer<ReaderContext>, SourceError> {
        let mut config = self.client_config();
        if statistics {
            config.set("statistics.interval.ms", "1000");
        }
        config.create_with_context(ReaderContext::default()).map_err(|e| self.error("create a consumer", e))
    }

    /// `e` as a source error that names the action, the topic and the brokers.
    pub(super) fn error(&self, action: &str, e: KafkaError) -> SourceError {
        // A rejected option's error ends with the option's value (and librdkafka may quote it
        // in the description): it may be a secret, so name the option only.
        let e = match e {
            KafkaError::ClientConfig(_, desc, key, value) if !value.is_empty() => {
                format!("client config error: {} (option {key})", desc.replace(&value, "<value hidden>"))
            }
            e => e.to_string(),
        };
        SourceError::Kafka(format!(
            "cannot {action} for topic {} on {}: {e} (check --brokers / KAFKA_BROKERS and --kafka-option)",
            self.topic, self.brokers
        ))
    }
}
