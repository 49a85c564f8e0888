//! Partitioned message sources: the interface every source implements.
//!
//! A source is a set of numbered partitions, each an ordered sequence of messages (raw bytes)
//! with increasing offsets, exactly like a Kafka topic. The engine assigns partitions to
//! workers statically and reads each through a [`PartitionReader`] that never blocks: a
//! `poll` returns what is available now, says when nothing is, and says when a bounded
//! partition has ended.
//!
//! - [`crate::files`]: `partition-<p>.jsonl` files, one message per `\n`-terminated line, the
//!   offset being the 0-based line number;
//! - [`crate::kafka`]: a Kafka topic, through librdkafka.

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

/// A batch of messages read from one partition, stored back to back so that reading
/// allocates nothing per message: copied into the batch's buffer ([`MessageBatch::push`]),
/// or left where they lie in a mapped window of a file ([`MessageBatch::set_mapped`]), which
/// spares the copies from the page cache and from a read buffer.
#[derive(Debug, Default)]
pub struct MessageBatch {
    /// Message bytes copied in, back to back.
    bytes: Vec<u8>,
    /// A mapped window of a file the messages lie in, if they are not copied (shared with
    /// the reader and the other batches taken from the same window).
    mapped: Option<std::sync::Arc<memmap2::Mmap>>,
    /// For each message: where it came from and its byte range in [`MessageBatch::data`].
    messages: Vec<(Position, usize, usize)>,
    /// Payload bytes of all messages.
    payload_bytes: usize,
}

impl MessageBatch {
    /// An empty batch with room for about `bytes` of copied messages.
    pub fn with_capacity(bytes: usize) -> Self {
        // Room for one more message than asked, since a poll stops only past `bytes`.
        MessageBatch {
            bytes: Vec::with_capacity(bytes + (64 << 10)),
            messages: Vec::with_capacity(bytes / 128),
            ..Default::default()
        }
    }
    /// Removes every message (and lets go of the window), keeping the allocations.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.mapped = None;
        self.messages.clear();
        self.payload_bytes = 0;
    }
    /// Appends a copy of a message.
    pub fn push(&mut self, position: Position, payload: &[u8]) {
        if let Some(window) = self.mapped.take() {
            // Copies after mapped messages (a caller that does not clear between polls):
            // copy the mapped ones first, since a batch holds its messages in one place.
            for (_, start, end) in self.messages.iter_mut() {
                let copied = self.bytes.len();
                self.bytes.extend_from_slice(&window[*start..*end]);
                (*start, *end) = (copied, self.bytes.len());
            }
        }
        let start = self.bytes.len();
        self.bytes.extend_from_slice(payload);
        self.messages.push((position, start, self.bytes.len()));
        self.payload_bytes += payload.len();
    }
    /// Makes an empty batch hold messages that lie in `window` (see [`Self::push_mapped`]).
    pub fn set_mapped(&mut self, window: std::sync::Arc<memmap2::Mmap>) {
        assert!(self.is_empty(), "only an empty batch can take a mapped window");
        self.mapped = Some(window);
    }
    /// Appends the message at `range` of the mapped window.
    pub fn push_mapped(&mut self, position: Position, range: std::ops::Range<usize>) {
        let window = self.mapped.as_ref().expect("set_mapped comes first");
        assert!(range.end <= window.len(), "a message lies within the window");
        self.payload_bytes += range.len();
        self.messages.push((position, range.start, range.end));
    }
    /// The bytes the messages lie in.
    fn data(&self) -> &[u8] {
        self.mapped.as_deref().map_or(&self.bytes[..], |window| &window[..])
    }
    /// The messages in order, with their positions.
    pub fn iter(&self) -> impl Iterator<Item = (Position, &[u8])> {
        let data = self.data();
        self.messages.iter().map(move |&(pos, start, end)| (pos, &data[start..end]))
    }
    /// Number of messages.
    pub fn len(&self) -> usize {
        self.messages.len()
    }
    /// Whether there are no messages.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }
    /// Payload bytes of all messages.
    pub fn payload_bytes(&self) -> usize {
        self.payload_bytes
    }
}

/// The most bytes of messages the engine asks of one [`PartitionReader::poll`]. Each batch
/// costs the worker an activation and the reading thread a wake-up; on the week benchmark
/// 512 KiB ran in 0.966x the wall time of 256 KiB at `-w 2` and 0.974x at `-w 1` on one core,
/// at the same peak RSS at `-w 2` (+4 MiB at `-w 1`); 1 MiB ran in 0.952x at `-w 2` but
/// peaked 15 MiB higher.
pub const BATCH_BYTES: usize = 512 * 1024;

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
    /// What this input is, as recorded in the checkpoint: a restart over another input would
    /// skip rows (their files count as committed) and mix two inputs' positions, so the
    /// engine refuses it (see `connectors::sink::commit`, "Input identity").
    fn identity(&self) -> String;
    /// The partition numbers, ascending.
    fn partitions(&self) -> Result<Vec<u32>, SourceError>;
    /// Opens a reader on `partition` starting at `offset` (`None`: where a partition read for
    /// the first time starts, the first message, or for Kafka as `--start-from` says). In
    /// bounded mode the reader ends at the end of the partition as it is when opened.
    fn open(&self, partition: u32, offset: Option<u64>, bounded: bool)
        -> Result<Box<dyn PartitionReader>, SourceError>;
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
