//! The file source: a folder of partition files (the format is [`super`]'s) read like a
//! Kafka topic. A trailing line without `\n` is not yet a message (a writer may still be
//! appending it). In bounded mode a reader stops at the file length seen when it was opened.
//!
//! Reading: in bounded mode the reader maps a window of the file ([`MAP_BYTES`], from the
//! first unread line) and each poll hands out about `max_bytes` of its complete lines, which
//! stay where they lie in it, so a line is never copied (neither from the page cache nor out
//! of a read buffer). The batches taken from one window share it; it is unmapped once the
//! reader has moved past it and every batch holding it is cleared or dropped. One window for
//! several batches keeps unmaps rare: each one makes the kernel interrupt every other core
//! the process runs on to flush its TLB. A bounded run expects complete files: truncating a
//! file under it ends the process (SIGBUS), it never reads altered bytes silently. In live
//! mode the file may still grow, so lines are read through a buffer and copied into the batch.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{partition_file, partition_of};
use crate::schema::Position;
use crate::source::{MessageBatch, PartitionReader, PollStatus, Source, SourceError};

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
        partition_file(&self.dir, partition)
    }
}

impl Source for FileSource {
    fn identity(&self) -> String {
        // The folder's absolute path, so that `./in` and `/work/in` are the same input.
        let dir = std::fs::canonicalize(&self.dir).unwrap_or_else(|_| self.dir.clone());
        format!("files {}", dir.display())
    }

    fn partitions(&self) -> Result<Vec<u32>, SourceError> {
        let io = |source| SourceError::Io { path: self.dir.clone(), source };
        let mut parts = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io)? {
            if let Some(p) = partition_of(&entry.map_err(io)?.file_name().to_string_lossy()) {
                parts.push(p);
            }
        }
        if parts.is_empty() {
            return Err(SourceError::NoPartitions(self.dir.clone()));
        }
        parts.sort_unstable();
        Ok(parts)
    }

    fn open(
        &self, partition: u32, offset: Option<u64>, bounded: bool,
    ) -> Result<Box<dyn PartitionReader>, SourceError> {
        let path = self.partition_path(partition);
        let io = |source| SourceError::Io { path: path.clone(), source };
        let file = File::open(&path).map_err(io)?;
        let limit = if bounded { Some(file.metadata().map_err(io)?.len()) } else { None };
        let mut reader = FileReader {
            partition,
            path: path.clone(),
            reader: BufReader::with_capacity(1 << 20, file),
            offset: 0,
            consumed: 0,
            limit,
            line: Vec::new(),
            ends: Vec::new(),
            window: None,
        };
        // Skip to the requested line (a restart resumes mid-file).
        while reader.offset < offset.unwrap_or(0) {
            let n = reader.reader.read_until(b'\n', &mut reader.line).map_err(io)?;
            if n == 0
                || reader.line.last() != Some(&b'\n')
                || reader.limit.is_some_and(|l| reader.consumed + n as u64 > l)
            {
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
    /// The line ends found in a mapped window (kept to reuse the allocation).
    ends: Vec<usize>,
    /// In bounded mode, the window the next lines are taken from, and its offset in the file.
    window: Option<(Arc<memmap2::Mmap>, u64)>,
}

/// Mapped windows start at a multiple of this, which is a multiple of every page size in use.
const WINDOW_ALIGN: u64 = 64 << 10;

/// The length of a mapped window (less at the end of the file, more for a longer line).
pub const MAP_BYTES: u64 = 2 << 20;

/// Maps `range` of `file` read-only.
#[allow(unsafe_code)]
fn map_window(file: &File, range: Range<u64>) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: the map is read-only and private to this reader, and only complete lines below
    // the length the file had when the bounded run opened it are mapped. Those bytes are not
    // rewritten by any writer of partition files (they append); a file truncated under the
    // run raises SIGBUS on access, which ends the process rather than reading altered bytes.
    unsafe {
        memmap2::MmapOptions::new().offset(range.start).len((range.end - range.start) as usize).populate().map(file)
    }
}

impl FileReader {
    /// A bounded poll: takes the next complete lines, about `max_bytes` of them, from the
    /// current window, mapping the next one where it has none left (see the header).
    fn poll_mapped(&mut self, out: &mut MessageBatch, max_bytes: usize, limit: u64) -> Result<PollStatus, SourceError> {
        if self.consumed >= limit {
            self.window = None;
            return Ok(PollStatus::Ended);
        }
        let want = max_bytes.max(1);
        let mut map_len = MAP_BYTES;
        let (window, base, skip, end) = loop {
            if let Some((window, base)) = &self.window {
                let skip = (self.consumed - base) as usize;
                let stop = (skip + want).min(window.len());
                // The last line end within `want` bytes, or the first one after (a line
                // longer than `max_bytes`).
                let found = memchr::memrchr(b'\n', &window[skip..stop])
                    .map(|i| skip + i + 1)
                    .or_else(|| memchr::memchr(b'\n', &window[stop..]).map(|i| stop + i + 1));
                if let Some(end) = found {
                    break (Arc::clone(window), *base, skip, end);
                }
                if base + window.len() as u64 == limit {
                    // The file ends without `\n`: the fragment is not a message.
                    self.consumed = limit;
                    self.window = None;
                    return Ok(PollStatus::Ended);
                }
                // No line end left in this window: the next one, wider if a line is longer.
                map_len = map_len.max(2 * (window.len() - skip) as u64);
            }
            let base = self.consumed - self.consumed % WINDOW_ALIGN;
            let len = (self.consumed - base + map_len).min(limit - base);
            let window = map_window(self.reader.get_ref(), base..base + len)
                .map_err(|source| SourceError::Io { path: self.path.clone(), source })?;
            self.window = Some((Arc::new(window), base));
        };
        self.ends.clear();
        self.ends.extend(memchr::memchr_iter(b'\n', &window[skip..end]).map(|i| skip + i));
        let partition = self.partition;
        let lines = self.ends.iter().zip(self.offset..).scan(skip, |start, (&newline, offset)| {
            let line = *start..newline;
            *start = newline + 1;
            Some((Position { partition, offset }, line))
        });
        // An empty batch shares the window; one that already holds messages gets copies.
        if out.is_empty() {
            out.set_mapped(Arc::clone(&window));
            lines.for_each(|(position, line)| out.push_mapped(position, line));
        } else {
            lines.for_each(|(position, line)| out.push(position, &window[line]));
        }
        self.offset += self.ends.len() as u64;
        self.consumed = base + end as u64;
        Ok(PollStatus::Data)
    }
}

impl PartitionReader for FileReader {
    fn partition(&self) -> u32 {
        self.partition
    }

    fn position(&self) -> u64 {
        self.offset
    }

    fn poll(&mut self, out: &mut MessageBatch, max_bytes: usize) -> Result<PollStatus, SourceError> {
        if let Some(limit) = self.limit {
            return self.poll_mapped(out, max_bytes, limit);
        }
        let start_len = out.payload_bytes();
        let mut read_any = false;
        while out.payload_bytes() - start_len < max_bytes {
            // Lines are copied once, from the read buffer into the batch; only a line that
            // straddles two reads goes through `self.line`.
            let buf = self.reader.fill_buf().map_err(|source| SourceError::Io { path: self.path.clone(), source })?;
            if buf.is_empty() {
                // End of what is written so far: keep the partial line for later.
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
        assert_eq!(
            all,
            vec![(0, b"a".to_vec()), (1, b"\xff\xfe".to_vec()), (2, b"".to_vec()), (3, b"{\"x\":1}".to_vec())]
        );
        assert_eq!(read_all(&src, 0, 2), all[2..].to_vec());
        assert_eq!(read_all(&src, 0, 9), vec![]);
        assert_eq!(read_all(&src, 2, 0), vec![]);
    }

    #[test]
    fn a_batch_that_is_not_cleared_collects_copies() {
        let dir = tempfile::tempdir().unwrap();
        let lines: Vec<String> =
            (0..500).map(|i| format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(i % 97))).collect();
        std::fs::write(dir.path().join("partition-0.jsonl"), lines.join("\n") + "\n").unwrap();
        let src = FileSource::new(dir.path());
        for max_bytes in [1, 100, 4096, 1 << 20] {
            // Cleared after every poll: each batch maps its own window.
            let mapped: Vec<Vec<u8>> = read_all(&src, 0, 0).into_iter().map(|(_, b)| b).collect();
            assert_eq!(mapped.len(), lines.len());
            // Never cleared: the first poll maps a window, later ones copy into the batch.
            let mut r = src.open(0, Some(3), true).unwrap();
            let mut batch = MessageBatch::default();
            while r.poll(&mut batch, max_bytes).unwrap() != PollStatus::Ended {}
            let all: Vec<(u64, &[u8])> = batch.iter().map(|(p, b)| (p.offset, b)).collect();
            assert_eq!(all.len(), lines.len() - 3);
            for (i, (offset, bytes)) in all.into_iter().enumerate() {
                assert_eq!((offset, bytes), ((i + 3) as u64, lines[i + 3].as_bytes()), "max_bytes {max_bytes}");
            }
            assert_eq!(batch.payload_bytes(), lines[3..].iter().map(String::len).sum::<usize>());
        }
    }

    #[test]
    fn lines_across_mapped_windows_and_longer_than_one_are_read_whole_and_once() {
        let dir = tempfile::tempdir().unwrap();
        // About 2.5 windows of lines of varied lengths, one line longer than a window among
        // them, and a trailing fragment that is not a message.
        let mut lines: Vec<Vec<u8>> =
            (0..60_000).map(|i: usize| format!("{i}:{}", "y".repeat(i * 7 % 151)).into_bytes()).collect();
        lines.insert(20_000, vec![b'z'; MAP_BYTES as usize + 12_345]);
        let mut file = lines.join(&b'\n');
        file.extend_from_slice(b"\nfragment");
        assert!(file.len() as u64 > 2 * MAP_BYTES);
        std::fs::write(dir.path().join("partition-0.jsonl"), &file).unwrap();
        let src = FileSource::new(dir.path());
        for max_bytes in [1, 5_000, 256 << 10, 4 << 20] {
            let mut r = src.open(0, Some(0), true).unwrap();
            let mut batches = Vec::new();
            loop {
                let mut batch = MessageBatch::default();
                let status = r.poll(&mut batch, max_bytes).unwrap();
                batches.push(batch); // held: batches of one window share it
                if status == PollStatus::Ended {
                    break;
                }
            }
            let got: Vec<(u64, &[u8])> = batches.iter().flat_map(|b| b.iter().map(|(p, m)| (p.offset, m))).collect();
            assert_eq!(got.len(), lines.len(), "max_bytes {max_bytes}");
            for (i, (offset, bytes)) in got.into_iter().enumerate() {
                assert!(offset == i as u64 && bytes == &lines[i][..], "max_bytes {max_bytes}, line {i}");
            }
            assert_eq!(r.position(), lines.len() as u64);
        }
    }

    #[test]
    fn a_live_reader_takes_lines_as_they_are_completed() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("partition-1.jsonl");
        std::fs::write(&path, b"one\ntw").unwrap();
        let src = FileSource::new(dir.path());
        let mut r = src.open(1, None, false).unwrap();
        let mut batch = MessageBatch::default();
        assert_eq!(r.poll(&mut batch, 1 << 20).unwrap(), PollStatus::Data);
        assert_eq!(r.poll(&mut batch, 1 << 20).unwrap(), PollStatus::Idle);
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"o\nthree\n").unwrap();
        assert_eq!(r.poll(&mut batch, 1 << 20).unwrap(), PollStatus::Data);
        let got: Vec<(u64, &[u8])> = batch.iter().map(|(p, b)| (p.offset, b)).collect();
        assert_eq!(got, vec![(0, &b"one"[..]), (1, b"two"), (2, b"three")]);
        assert_eq!(r.position(), 3);
    }

    #[test]
    fn an_empty_folder_names_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let err = FileSource::new(dir.path()).partitions().unwrap_err().to_string();
        assert!(err.contains("producer --out-dir"), "{err}");
    }
}
