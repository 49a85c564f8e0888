//! Partitioned message sources: the interface every source implements, and the file source.
//!
//! A source is a set of numbered partitions, each an ordered sequence of messages (raw bytes)
//! with increasing offsets, exactly like a Kafka topic. The engine assigns partitions to
//! workers statically and reads each through a [`PartitionReader`] that never blocks: a
//! `poll` returns what is available now, says when nothing is, and says when a bounded
//! partition has ended.
//!
//! - [`file`]: `partition-<p>.jsonl` files, one message per `\n`-terminated line, the offset
//!   being the 0-based line number.
//! - [`crate::kafka`]: a Kafka topic, through librdkafka.

pub mod file;

use crate::schema::Position;

/// What a poll found.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PollStatus {
    /// Messages were appended; poll again soon.
    Data,
    /// Nothing is available right now; poll again when woken or later.
    Idle,
    /// The partition has no more messages (bounded mode reached its end offset).
    Ended,
}

/// A batch of messages read from one partition, stored back to back in one buffer so that
/// reading allocates nothing per message.
#[derive(Clone, Debug, Default)]
pub struct MessageBatch {
    /// The message bytes, concatenated.
    pub bytes: Vec<u8>,
    /// For each message: where it came from and its end offset in `bytes`.
    pub messages: Vec<(Position, usize)>,
}

impl MessageBatch {
    /// Removes every message, keeping the allocations.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.messages.clear();
    }
    /// Appends a message.
    pub fn push(&mut self, position: Position, payload: &[u8]) {
        self.bytes.extend_from_slice(payload);
        self.messages.push((position, self.bytes.len()));
    }
    /// The messages in order, with their positions.
    pub fn iter(&self) -> impl Iterator<Item = (Position, &[u8])> {
        let mut start = 0;
        self.messages.iter().map(move |&(pos, end)| {
            let payload = &self.bytes[start..end];
            start = end;
            (pos, payload)
        })
    }
    /// Number of messages.
    pub fn len(&self) -> usize {
        self.messages.len()
    }
    /// Whether there are no messages.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }
}

/// Reads one partition in order, without blocking.
pub trait PartitionReader: Send {
    /// The partition this reader reads.
    fn partition(&self) -> u32;
    /// Appends up to about `max_bytes` of the next messages to `out`.
    fn poll(&mut self, out: &mut MessageBatch, max_bytes: usize) -> Result<PollStatus, SourceError>;
    /// Installs a function to call (from any thread) when new messages become available, so
    /// that the engine need not poll an idle partition often. Sources that cannot tell do nothing.
    fn set_waker(&mut self, _waker: std::sync::Arc<dyn Fn() + Send + Sync>) {}
    /// Messages available but not yet read (consumer lag), if the source knows.
    fn lag(&self) -> Option<u64> {
        None
    }
    /// The offset of the next message this reader will return.
    fn position(&self) -> u64;
}

/// A partitioned source: lists its partitions and opens readers on them.
pub trait Source: Send + Sync {
    /// The partition numbers, ascending.
    fn partitions(&self) -> Result<Vec<u32>, SourceError>;
    /// Opens a reader on `partition` starting at `offset` (`None`: where a partition read for
    /// the first time starts, the first message, or for Kafka as `--start-from` says). In
    /// bounded mode the reader ends at the end of the partition as it is when opened.
    fn open(&self, partition: u32, offset: Option<u64>, bounded: bool) -> Result<Box<dyn PartitionReader>, SourceError>;
}

/// Why a source could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// An I/O error on a file or folder.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file or folder.
        path: std::path::PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The input folder has no `partition-<p>.jsonl` files.
    #[error("{0} holds no partition-<p>.jsonl files (generate some with `producer --out-dir {0}`)")]
    NoPartitions(std::path::PathBuf),
    /// The Kafka source failed; the message names the brokers, topic and fix.
    #[error("{0}")]
    Kafka(String),
}
