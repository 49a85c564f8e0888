//! The file sink: messages appended to a folder's partition files (the format is
//! [`super`]'s), through a buffer per partition. The producer writes a week of events this way
//! in seconds.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::partition_file;

/// A file or folder that cannot be created or written.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {}", path.display())]
pub struct FileError {
    /// What failed: `create`, `write`.
    pub action: &'static str,
    /// The file or folder.
    pub path: PathBuf,
    /// Why.
    pub source: std::io::Error,
}

/// The error of a failure to `action` `path`.
fn failed<'p>(action: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> FileError + 'p {
    move |source| FileError { action, path: path.to_owned(), source }
}

/// Writers of the partition files `0..partitions` of a folder, created empty (a file that
/// exists is truncated).
pub struct FileSink {
    files: Vec<(PathBuf, BufWriter<File>)>,
}

impl FileSink {
    /// Creates `dir` if it is missing and the partition files in it.
    pub fn create(dir: &Path, partitions: u32) -> Result<Self, FileError> {
        std::fs::create_dir_all(dir).map_err(failed("create", dir))?;
        let files = (0..partitions)
            .map(|p| {
                let path = partition_file(dir, p);
                let file = File::create(&path).map_err(failed("create", &path))?;
                Ok((path, BufWriter::with_capacity(1 << 20, file)))
            })
            .collect::<Result<_, FileError>>()?;
        Ok(FileSink { files })
    }

    /// Appends `message` (without its `\n`) to `partition`'s file.
    ///
    /// # Panics
    ///
    /// If `partition` is not one of the sink's.
    pub fn write(&mut self, partition: u32, message: &[u8]) -> Result<(), FileError> {
        let (path, w) = &mut self.files[partition as usize];
        w.write_all(message).and_then(|()| w.write_all(b"\n")).map_err(failed("write", path))
    }

    /// Writes out what the buffers hold.
    pub fn finish(self) -> Result<(), FileError> {
        for (path, mut w) in self.files {
            w.flush().map_err(failed("write", &path))?;
        }
        Ok(())
    }
}
