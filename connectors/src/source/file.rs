//! The file source: a folder of `partition-<p>.jsonl` files that behaves like a Kafka topic.
//!
//! Partition `p` is the file `partition-<p>.jsonl`; its messages are the `\n`-terminated
//! lines in file order (the bytes between two newlines, whatever they are: invalid UTF-8 or
//! JSON is a message like any other), and a message's offset is its 0-based line number.
//! A trailing line without `\n` is not yet a message (a writer may still be appending it).
//! In bounded mode a reader stops at the file length seen when it was opened.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::{MessageBatch, PartitionReader, PollStatus, Source, SourceError};
use crate::schema::Position;

/// A folder of partition files.
#[derive(Clone, Debug)]
pub struct FileSource {
    dir: PathBuf,
}

impl FileSource {
    /// A source over `dir` (a path or a `file://` URL).
    pub fn new(dir: impl AsRef<Path>) -> Self {
        let s = dir.as_ref().to_string_lossy();
        let dir = match s.strip_prefix("file://") {
            Some(rest) => PathBuf::from(rest),
            None => dir.as_ref().to_path_buf(),
        };
        FileSource { dir }
    }

    /// The file holding `partition`.
    pub fn partition_path(&self, partition: u32) -> PathBuf {
        self.dir.join(format!("partition-{partition}.jsonl"))
    }
}

impl Source for FileSource {
    fn partitions(&self) -> Result<Vec<u32>, SourceError> {
        let io = |source| SourceError::Io { path: self.dir.clone(), source };
        let mut parts = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io)? {
            let name = entry.map_err(io)?.file_name();
            let name = name.to_string_lossy();
            if let Some(p) = name.strip_prefix("partition-").and_then(|r| r.strip_suffix(".jsonl")) {
                if let Ok(p) = p.parse::<u32>() {
                    parts.push(p);
                }
            }
        }
        if parts.is_empty() {
            return Err(SourceError::NoPartitions(self.dir.clone()));
        }
        parts.sort_unstable();
        Ok(parts)
    }

    fn open(&self, partition: u32, offset: Option<u64>, bounded: bool) -> Result<Box<dyn PartitionReader>, SourceError> {
        let path = self.partition_path(partition);
        let io = |source| SourceError::Io { path: path.clone(), source };
        let file = File::open(&path).map_err(io)?;
        let limit = if bounded { Some(file.metadata().map_err(io)?.len()) } else { None };
        let mut reader = FileReader { partition, path: path.clone(), reader: BufReader::with_capacity(1 << 20, file), offset: 0, consumed: 0, limit, line: Vec::new() };
        // Skip to the requested line (a restart resumes mid-file).
        while reader.offset < offset.unwrap_or(0) {
            let n = reader.reader.read_until(b'\n', &mut reader.line).map_err(io)?;
            if n == 0 || reader.line.last() != Some(&b'\n') || reader.limit.is_some_and(|l| reader.consumed + n as u64 > l) {
                reader.line.clear();
                reader.reader.seek(SeekFrom::Start(reader.consumed)).map_err(io)?;
                break;
            }
            reader.consumed += n as u64;
            reader.offset += 1;
            reader.line.clear();
        }
        Ok(Box::new(reader))
    }
}

struct FileReader {
    partition: u32,
    path: PathBuf,
    reader: BufReader<File>,
    /// Offset (line number) of the next message.
    offset: u64,
    /// Bytes consumed from the file, counting only complete lines.
    consumed: u64,
    /// In bounded mode, the file length at open.
    limit: Option<u64>,
    /// A partial line carried over to the next poll.
    line: Vec<u8>,
}

impl PartitionReader for FileReader {
    fn partition(&self) -> u32 {
        self.partition
    }

    fn position(&self) -> u64 {
        self.offset
    }

    fn poll(&mut self, out: &mut MessageBatch, max_bytes: usize) -> Result<PollStatus, SourceError> {
        let start_len = out.bytes.len();
        let mut read_any = false;
        while out.bytes.len() - start_len < max_bytes {
            if let Some(limit) = self.limit {
                if self.consumed >= limit {
                    return Ok(if read_any { PollStatus::Data } else { PollStatus::Ended });
                }
            }
            // Lines are copied once, from the read buffer into the batch; only a line that
            // straddles two reads goes through `self.line`.
            let buf = self.reader.fill_buf().map_err(|source| SourceError::Io { path: self.path.clone(), source })?;
            if buf.is_empty() {
                // End of what is written so far: keep the partial line for later.
                if self.limit.is_some() && self.line.is_empty() {
                    return Ok(if read_any { PollStatus::Data } else { PollStatus::Ended });
                }
                if self.limit.is_some() {
                    // Bounded and the file ends without `\n`: the fragment is not a message.
                    self.consumed = self.limit.unwrap_or(self.consumed);
                    self.line.clear();
                    continue;
                }
                return Ok(if read_any { PollStatus::Data } else { PollStatus::Idle });
            }
            let position = Position { partition: self.partition, offset: self.offset };
            let Some(end) = memchr::memchr(b'\n', buf) else {
                let n = buf.len();
                self.line.extend_from_slice(buf);
                self.reader.consume(n);
                continue;
            };
            let carried = self.line.len();
            if carried == 0 {
                out.push(position, &buf[..end]);
            } else {
                self.line.extend_from_slice(&buf[..end]);
                out.push(position, &self.line);
                self.line.clear();
            }
            self.reader.consume(end + 1);
            self.consumed += (carried + end + 1) as u64;
            self.offset += 1;
            read_any = true;
        }
        Ok(PollStatus::Data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(src: &FileSource, p: u32, offset: u64) -> Vec<(u64, Vec<u8>)> {
        let mut r = src.open(p, Some(offset), true).unwrap();
        let mut batch = MessageBatch::default();
        let mut out = Vec::new();
        loop {
            batch.clear();
            let status = r.poll(&mut batch, 7).unwrap();
            out.extend(batch.iter().map(|(pos, b)| (pos.offset, b.to_vec())));
            if status == PollStatus::Ended {
                return out;
            }
        }
    }

    #[test]
    fn lines_are_messages_and_offsets_are_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("partition-0.jsonl"), b"a\n\xff\xfe\n\n{\"x\":1}\ntrailing").unwrap();
        std::fs::write(dir.path().join("partition-2.jsonl"), b"").unwrap();
        std::fs::write(dir.path().join("other.txt"), b"").unwrap();
        let src = FileSource::new(format!("file://{}", dir.path().display()));
        assert_eq!(src.partitions().unwrap(), vec![0, 2]);
        let all = read_all(&src, 0, 0);
        assert_eq!(all, vec![(0, b"a".to_vec()), (1, b"\xff\xfe".to_vec()), (2, b"".to_vec()), (3, b"{\"x\":1}".to_vec())]);
        assert_eq!(read_all(&src, 0, 2), all[2..].to_vec());
        assert_eq!(read_all(&src, 0, 9), vec![]);
        assert_eq!(read_all(&src, 2, 0), vec![]);
    }

    #[test]
    fn an_empty_folder_names_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let err = FileSource::new(dir.path()).partitions().unwrap_err().to_string();
        assert!(err.contains("producer --out-dir"), "{err}");
    }
}
