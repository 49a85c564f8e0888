//! Kafka: the source (a topic's partitions read with librdkafka, each by its own reader) and
//! the sink the producer writes with ([`sink`]).
//!
//! - **Static assignment.** The engine decides which worker reads which partition; a reader
//!   `assign()`s exactly its partition at an explicit offset. There is no consumer-group
//!   rebalancing: the group (`--group`) only receives committed offsets, for lag monitoring.
//! - **Non-blocking.** A reader's partition queue is split off its consumer and polled with a
//!   zero timeout; when the queue becomes non-empty librdkafka calls the waker the engine
//!   installed ([`crate::source::PartitionReader::set_waker`]), which activates the timely operator, so an
//!   idle worker neither blocks nor spins (Materialize's Kafka source works the same way).
//!   The split can only follow `assign()`, so messages fetched in between arrive on the
//!   consumer's own queue; each poll takes those first, then the partition queue.
//! - **Bounded mode** reads each partition up to the high watermark fetched when the reader
//!   is opened and then ends, so a bounded run over a topic equals a bounded run over the
//!   same messages in `partition-<p>.jsonl` files.
//! - **Start positions.** The engine passes the offset to resume from (its checkpoint); with
//!   none the reader starts at `--start-from earliest|latest`.
//! - **Errors.** Transient broker errors (a broker restarting, a lost connection) are logged
//!   and retried by librdkafka; the reader reports `Idle` meanwhile. An unreachable broker
//!   at start is an error naming the address within [`METADATA_TIMEOUT`].
//!
//! Option values given as `@file:PATH` or `@env:NAME` are read from a file or an environment
//! variable, so that secrets (SASL passwords, TLS keys) never appear on a command line, and
//! [`KafkaConfig`]'s `Debug` prints option names only.
//!
//! Files: [`config`] (where and how to reach the topic, option values), [`source`] (the
//! partition readers), [`sink`] (a producer to chosen partitions, topic creation).

pub mod config;
pub mod sink;
pub mod source;

pub use config::{resolve_option, KafkaConfig, StartFrom};
pub use sink::{KafkaSink, SinkConfig, SinkError};
pub use source::{KafkaSource, ReaderContext, METADATA_TIMEOUT};
