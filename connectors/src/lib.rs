//! Connectors of the iot-etl engine: what crosses the edge of the dataflow.
//!
//! - [`schema`]: the event type and the explicit time types shared with the producer;
//! - [`parse`]: validation of raw message bytes into an event or one rejection reason;
//! - [`calendar`]: RFC 3339 timestamps, day numbers to dates, minutes per day;
//! - [`partition`]: Kafka's default key partitioner, used by the producer;
//! - [`source`]: what a partitioned message source is (the interface the engine reads);
//! - [`files`]: partition files, a folder: `source.rs` (the engine's bounded input) and
//!   `sink.rs` (the producer's folder output);
//! - [`kafka`]: Kafka, a folder: `config.rs` (where and how to reach a topic, `--kafka-option`
//!   values from files or the environment, shared with the producer), `source.rs` (the
//!   partition readers: static assignment, non-blocking) and `sink.rs` (the producer's
//!   writer: topic creation, back-pressure, delivery failures);
//! - [`sink`]: the Parquet tables the engine writes and the storage they go to;
//! - [`http`]: the `/metrics` and probe endpoint of the engine and the producer.
#![deny(missing_docs)]

pub mod calendar;
pub mod files;
pub mod http;
pub mod kafka;
pub mod parse;
pub mod partition;
pub mod schema;
pub mod sink;
pub mod source;
