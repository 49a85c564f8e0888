//! The iot-etl event producer: realistic sensor events, with controlled fractions of
//! duplicates, late arrivals, invalid messages and outliers, written to Kafka or to a folder
//! of `partition-<p>.jsonl` files.
//!
//! - [`generator`]: the deterministic event stream (same seed and flags, same bytes);
//! - [`files`]: the partition-file sink;
//! - [`kafka`]: events into a topic and `replay` of a folder into a topic, through the
//!   shared Kafka sink (`connectors::kafka::sink`);
//! - [`metrics`]: the producer's Prometheus metrics and their HTTP endpoint.
#![deny(missing_docs)]

pub mod files;
pub mod generator;
pub mod kafka;
pub mod metrics;

pub use files::write_partition_files;

/// Why the producer stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    /// The generator's settings are invalid (the message names the flag).
    #[error("{0}")]
    Config(String),
    /// A partition file or its folder cannot be created or written.
    #[error(transparent)]
    Files(#[from] connectors::files::FileError),
    /// The folder to replay cannot be read.
    #[error(transparent)]
    Source(#[from] connectors::source::SourceError),
    /// Kafka refused a message or did not deliver every one.
    #[error(transparent)]
    Kafka(#[from] connectors::kafka::SinkError),
}
pub use generator::{Generator, GeneratorConfig, InvalidKind, Message, MessageKind};
