//! Where part files go: the [`TableStore`] interface and the local-folder store.
//!
//! A store publishes a whole file at a relative path (`events/year=2025/.../part-00000.parquet`)
//! so that a reader sees either nothing or the complete file: [`LocalStore`] writes to a
//! sibling name starting with `_` and renames it into place. The object-store layer
//! (S3, `memory://`) and the epoch commit protocol plug in behind the same trait.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Why a file could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A filesystem operation failed.
    #[error("cannot {action} {path}: {source} (check that the output folder exists and is writable)")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Publishes complete files at paths relative to a table root.
pub trait TableStore: Send + Sync {
    /// Stores `bytes` at `path` (relative, `/`-separated), replacing any previous file there.
    /// A reader never observes a partial file.
    fn put(&self, path: &str, bytes: &[u8]) -> Result<(), StoreError>;
}

/// A folder on the local filesystem.
#[derive(Clone, Debug)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// A store rooted at `root`, created if missing.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|source| StoreError::Io { action: "create folder", path: root.clone(), source })?;
        Ok(LocalStore { root })
    }

    /// The folder this store writes under.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl TableStore for LocalStore {
    fn put(&self, path: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let target = self.root.join(path);
        let dir = target.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&dir).map_err(|source| StoreError::Io { action: "create folder", path: dir.clone(), source })?;
        let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let temp = dir.join(format!("_{name}.inprogress"));
        let io = |action, path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { action, path, source }
        };
        let mut file = fs::File::create(&temp).map_err(io("create", &temp))?;
        file.write_all(bytes).map_err(io("write", &temp))?;
        file.sync_data().map_err(io("sync", &temp))?;
        fs::rename(&temp, &target).map_err(io("rename into place", &target))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_publishes_whole_files_and_leaves_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path().join("out")).unwrap();
        store.put("t/year=2025/part-00000.parquet", b"abc").unwrap();
        store.put("t/year=2025/part-00000.parquet", b"abcd").unwrap();
        let folder = dir.path().join("out/t/year=2025");
        let names: Vec<_> = fs::read_dir(&folder).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec!["part-00000.parquet"]);
        assert_eq!(fs::read(folder.join("part-00000.parquet")).unwrap(), b"abcd");
    }

    #[test]
    fn errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        fs::write(&blocker, b"x").unwrap();
        let err = LocalStore::new(blocker.join("sub")).unwrap_err().to_string();
        assert!(err.contains("file/sub"), "{err}");
    }
}
