//! The parse-only pass of `scripts/bench.sh`: reads every partition file of a folder through
//! the file source, exactly as the engine does, and validates every line with
//! [`parse_event`], on one thread, with no dataflow. Prints the lines, the valid events and
//! the seconds it took, so the bench can show how much of the engine's time is reading and
//! parsing and how much is the dataflow around them.
//!
//! ```text
//! cargo run --release -p connectors --example parse_files -- DIR
//! ```

use std::time::Instant;

use connectors::files::FileSource;
use connectors::parse::{parse_event, DEFAULT_MAX_MESSAGE_BYTES};
use connectors::source::{MessageBatch, PollStatus, Source};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: parse_files DIR (a folder of partition-<p>.jsonl files)")?;
    let source = FileSource::new(&dir);
    let start = Instant::now();
    let (mut lines, mut valid) = (0u64, 0u64);
    let mut batch = MessageBatch::default();
    for p in source.partitions()? {
        let mut reader = source.open(p, None, true)?;
        loop {
            batch.clear();
            let status = reader.poll(&mut batch, connectors::source::BATCH_BYTES)?;
            for (_, raw) in batch.iter() {
                lines += 1;
                valid += u64::from(parse_event(raw, DEFAULT_MAX_MESSAGE_BYTES).map(|e| e.into_owned()).is_ok());
            }
            if status == PollStatus::Ended {
                break;
            }
        }
    }
    println!("{lines} lines, {valid} valid, {:.3} s", start.elapsed().as_secs_f64());
    Ok(())
}
