//! Reading and parsing off the worker thread: one thread per partition that polls the
//! partition's reader, parses every message ([`connectors::parse::parse_event`]) and hands
//! the batches, in offset order, to the source operator through a short bounded queue.
//!
//! Why: parsing JSON is the largest single cost of a message, and partitions are assigned to
//! workers statically (3 partitions on 2 workers give one worker two thirds of the parsing).
//! On their own threads the parsers run wherever a core is free, and reading a file or
//! waiting on the broker never blocks a worker. What the operator does with a message
//! (watermark, lateness, dedup) stays on the worker, in offset order, so nothing computed
//! depends on this thread's timing.
//!
//! Flow: the thread first opens the partition (a Kafka open fetches the partition's
//! watermarks and may retry while a broker restarts: a worker never waits on it), reports
//! the position it opened at, then polls, parses and sends a [`ParsedBatch`], and wakes the operator
//! through its activator. The queue holds [`QUEUE_BATCHES`] batches: when the operator does
//! not take them (flow control throttles the partition), the thread waits. An idle partition
//! (nothing to read now) parks the thread until the reader's waker or `idle_poll` passes.
//! The operator hands each batch's buffers back ([`Prefetcher::recycle`]), so that a
//! partition's thread reuses a few warm buffers instead of allocating (and faulting in) a
//! fresh one per batch.
//! The thread ends after the reader ends (bounded mode), after an open or read error (which it
//! hands to the operator), or once the [`Prefetcher`] is dropped.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::sync::Arc;
use std::time::Duration;

use connectors::parse::{parse_event, RejectReason};
use connectors::schema::OwnedEvent;
use connectors::source::{MessageBatch, PartitionReader, PollStatus, SourceError};

/// Batches a partition's thread may have read ahead of the operator.
pub const QUEUE_BATCHES: usize = 2;

/// The lag before the first poll (-1: polled, the reader does not know its lag).
const NOT_POLLED: i64 = -2;

/// A batch of messages, each parsed.
pub struct ParsedBatch {
    /// The raw messages (kept for rejected rows and byte counts).
    pub batch: MessageBatch,
    /// For each message, in order: the event, or why it is rejected.
    pub parsed: Vec<Result<OwnedEvent, RejectReason>>,
    /// What the poll that read the batch said.
    pub status: PollStatus,
    /// The reader's position after the batch: the offset of the next message.
    pub position: u64,
}

/// What a partition's thread hands the operator, in order.
enum Item {
    /// The partition is open; its first message is at this offset.
    Opened(u64),
    /// The next batch.
    Batch(ParsedBatch),
}

/// Opens a partition's reader, on the partition's thread.
pub type Open = Box<dyn FnOnce() -> Result<Box<dyn PartitionReader>, SourceError> + Send>;

/// The operator's end of a partition's reading thread.
pub struct Prefetcher {
    partition: u32,
    queue: Receiver<Result<Item, SourceError>>,
    /// The offset of the next message; `None` until the partition is open.
    position: Option<u64>,
    /// The offset the partition was opened at, until [`Prefetcher::take_opened`] takes it.
    opened: Option<u64>,
    /// The reader's lag after its last poll (-1: unknown; [`NOT_POLLED`]), updated by the
    /// reading thread after every poll, including those that found nothing.
    lag: Arc<AtomicI64>,
    closed: Arc<AtomicBool>,
    thread: std::thread::Thread,
    spare: SyncSender<Spare>,
}

/// The buffers of a used batch, emptied, on their way back to the reading thread.
struct Spare {
    batch: MessageBatch,
    parsed: Vec<Result<OwnedEvent, RejectReason>>,
}

/// What [`Prefetcher::next_batch`] found.
pub enum Next {
    /// A batch.
    Batch(ParsedBatch),
    /// Nothing yet; the operator is woken when a batch is queued.
    Empty,
    /// The reader failed (the message says how); the partition cannot go on.
    Failed(String),
}

impl Prefetcher {
    /// Starts the thread that opens `partition` with `open` and reads it in batches of about
    /// `batch_bytes`, parsing messages larger than `max_message_bytes` as oversize; `wake`
    /// activates the operator.
    pub fn start(
        partition: u32, open: Open, batch_bytes: usize, max_message_bytes: usize, idle_poll: Duration,
        wake: Arc<dyn Fn() + Send + Sync>,
    ) -> std::io::Result<Self> {
        // The opening position takes a slot until the operator's first look.
        let (sender, queue) = sync_channel(QUEUE_BATCHES);
        // Every batch in flight (queued, being read, being used) can come back at once.
        let (spare, spares) = sync_channel::<Spare>(QUEUE_BATCHES + 2);
        let closed = Arc::new(AtomicBool::new(false));
        let thread_closed = Arc::clone(&closed);
        let lag = Arc::new(AtomicI64::new(NOT_POLLED));
        let thread_lag = Arc::clone(&lag);
        let handle = std::thread::Builder::new().name(format!("read-p{partition}")).spawn(move || {
            let mut reader = match open() {
                Ok(reader) => reader,
                Err(e) => {
                    let _ = sender.send(Err(e));
                    wake();
                    return;
                }
            };
            if thread_closed.load(Relaxed) || sender.send(Ok(Item::Opened(reader.position()))).is_err() {
                return; // the operator is gone (dropping the reader closes it)
            }
            wake();
            let me = std::thread::current();
            reader.set_waker(Arc::new(move || me.unpark()));
            // The buffers of a poll that found nothing, for the next poll.
            let mut idle_buffers: Option<Spare> = None;
            loop {
                if thread_closed.load(Relaxed) {
                    return;
                }
                let Spare { mut batch, mut parsed } = idle_buffers
                    .take()
                    .or_else(|| spares.try_recv().ok())
                    .unwrap_or_else(|| Spare { batch: MessageBatch::with_capacity(batch_bytes), parsed: Vec::new() });
                let status = match reader.poll(&mut batch, batch_bytes) {
                    Ok(status) => status,
                    Err(e) => {
                        let _ = sender.send(Err(e));
                        wake();
                        return;
                    }
                };
                thread_lag.store(reader.lag().map_or(-1, |l| l as i64), Relaxed);
                if batch.is_empty() && status == PollStatus::Idle {
                    idle_buffers = Some(Spare { batch, parsed }); // unused: the next poll takes them
                    std::thread::park_timeout(idle_poll);
                    continue;
                }
                parsed.extend(batch.iter().map(|(_, raw)| parse_event(raw, max_message_bytes).map(|e| e.into_owned())));
                let out = ParsedBatch { batch, parsed, status, position: reader.position() };
                if sender.send(Ok(Item::Batch(out))).is_err() {
                    return; // the operator is gone
                }
                wake();
                if status == PollStatus::Ended {
                    return;
                }
            }
        })?;
        Ok(Prefetcher {
            partition,
            queue,
            position: None,
            opened: None,
            lag,
            closed,
            thread: handle.thread().clone(),
            spare,
        })
    }

    /// The partition read.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// The offset of the next message the operator will receive (`None`: not open yet).
    pub fn position(&self) -> Option<u64> {
        self.position
    }

    /// The offset the partition was opened at, once, after [`Prefetcher::next_batch`] found
    /// it open.
    pub fn take_opened(&mut self) -> Option<u64> {
        self.opened.take()
    }

    /// The reader's lag after its last poll, if it knows (`None` as well until it is open).
    pub fn lag(&self) -> Option<u64> {
        u64::try_from(self.lag.load(Relaxed)).ok()
    }

    /// Whether the partition's thread has polled it at least once (so [`Prefetcher::lag`]
    /// says what the reader knows).
    pub fn polled(&self) -> bool {
        self.lag.load(Relaxed) != NOT_POLLED
    }

    /// Hands a used batch's buffers back to the reading thread (`parsed` must be empty).
    pub fn recycle(&self, mut batch: MessageBatch, parsed: Vec<Result<OwnedEvent, RejectReason>>) {
        batch.clear();
        debug_assert!(parsed.is_empty());
        let _ = self.spare.try_send(Spare { batch, parsed }); // dropped if the thread has enough
    }

    /// The next batch, if one is queued.
    pub fn next_batch(&mut self) -> Next {
        loop {
            return match self.queue.try_recv() {
                Ok(Ok(Item::Opened(position))) => {
                    (self.position, self.opened) = (Some(position), Some(position));
                    continue;
                }
                Ok(Ok(Item::Batch(batch))) => {
                    self.position = Some(batch.position);
                    Next::Batch(batch)
                }
                Ok(Err(e)) if self.position.is_none() => {
                    Next::Failed(format!("cannot open partition {}: {e}", self.partition))
                }
                Ok(Err(e)) => Next::Failed(format!("cannot read partition {}: {e}", self.partition)),
                Err(TryRecvError::Empty) => Next::Empty,
                Err(TryRecvError::Disconnected) => Next::Failed(format!(
                    "the reading thread of partition {} ended before its partition",
                    self.partition
                )),
            };
        }
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        self.closed.store(true, Relaxed);
        self.thread.unpark();
    }
}
