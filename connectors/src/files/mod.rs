//! Partition files, the folder connector: a folder that holds a topic's messages, one file a
//! partition, read by the engine like a Kafka topic and written by the producer.
//!
//! Partition `p` is the file `partition-<p>.jsonl` ([`partition_file`]); its messages are the
//! `\n`-terminated lines in file order (the bytes between two newlines, whatever they are:
//! invalid UTF-8 or JSON is a message like any other), and a message's offset is its 0-based
//! line number.
//!
//! - `source.rs`: [`FileSource`], the engine's bounded input (and `producer replay`'s);
//! - `sink.rs`: [`FileSink`], the producer's folder output.

mod sink;
mod source;

use std::path::{Path, PathBuf};

pub use sink::{FileError, FileSink};
pub use source::FileSource;

/// The file of partition `partition` in `dir`.
pub fn partition_file(dir: &Path, partition: u32) -> PathBuf {
    dir.join(format!("partition-{partition}.jsonl"))
}

/// The partition whose file is named `name`, if it is a partition file's name.
pub fn partition_of(name: &str) -> Option<u32> {
    name.strip_prefix("partition-")?.strip_suffix(".jsonl")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_files_name_round_trips() {
        for p in [0, 7, 4_294_967_295] {
            let path = partition_file(Path::new("/d"), p);
            assert_eq!(partition_of(&path.file_name().unwrap().to_string_lossy()), Some(p));
        }
        for other in
            ["partition-.jsonl", "partition-1.json", "part-1.jsonl", "partition--1.jsonl", "partition-1.jsonl.tmp"]
        {
            assert_eq!(partition_of(other), None, "{other}");
        }
    }
}
