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
    /// An output URL cannot be used.
    #[error("output {url}: {problem}")]
    Url {
        /// The URL.
        url: String,
        /// What is wrong, and the fix.
        problem: String,
    },
    /// An object store request failed (after its retries).
    #[error("cannot {action} {path}: {message}")]
    Object {
        /// What was being done.
        action: &'static str,
        /// The object, as a URL.
        path: String,
        /// The store's error.
        message: String,
    },
}

/// Publishes complete files at paths relative to a table root.
pub trait TableStore: Send + Sync {
    /// Stores `bytes` at `path` (relative, `/`-separated), replacing any previous file there.
    /// A reader never observes a partial file.
    fn put(&self, path: &str, bytes: &[u8]) -> Result<(), StoreError>;
    /// The file at `path`, or `None` if there is none.
    fn get(&self, path: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Moves the file at `from` to `to`, replacing any file there.
    fn rename(&self, from: &str, to: &str) -> Result<(), StoreError>;
    /// Deletes the file at `path`; deleting a missing file is not an error.
    fn delete(&self, path: &str) -> Result<(), StoreError>;
    /// Every file under the folder `prefix` (relative paths, sorted), at any depth.
    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
    /// Whether a file exists at `path`.
    fn exists(&self, path: &str) -> Result<bool, StoreError>;
    /// Where this store is, for messages.
    fn describe(&self) -> String;
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
        fs::create_dir_all(&root).map_err(|source| StoreError::Io {
            action: "create folder",
            path: root.clone(),
            source,
        })?;
        Ok(LocalStore { root })
    }
}

/// Makes the entries of `dir` (names created, renamed or removed in it) survive a power loss.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|source| StoreError::Io {
        action: "sync folder",
        path: dir.to_path_buf(),
        source,
    })
}

/// Creates `dir` and its missing ancestors so that they survive a power loss: the folder
/// holding each newly created one is synced (a file synced into a folder whose own entry is
/// lost would be lost with it).
fn create_dir_durably(dir: &Path) -> Result<(), StoreError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing = vec![dir];
    while let Some(parent) =
        missing.last().and_then(|d| d.parent()).filter(|p| !p.as_os_str().is_empty() && !p.is_dir())
    {
        missing.push(parent);
    }
    fs::create_dir_all(dir).map_err(|source| StoreError::Io {
        action: "create folder",
        path: dir.to_path_buf(),
        source,
    })?;
    for created in missing.iter().rev() {
        if let Some(parent) = created.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// On a local filesystem a name is durable only once its folder is synced: `put` syncs the
/// file's data and then its folder, and `rename` the target's folder (and the source's, when
/// it differs), so what the commit protocol has been told is written survives a power loss,
/// not only a crash (see `super::commit`, "Durability"). Deletes are not synced: a file
/// whose delete is lost is an uncommitted leftover that the next start removes.
impl TableStore for LocalStore {
    fn put(&self, path: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let target = self.root.join(path);
        let dir = target.parent().unwrap_or(&self.root).to_path_buf();
        create_dir_durably(&dir)?;
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
        sync_dir(&dir)
    }

    fn get(&self, path: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let p = self.root.join(path);
        match fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io { action: "read", path: p, source }),
        }
    }

    fn rename(&self, from: &str, to: &str) -> Result<(), StoreError> {
        let (f, t) = (self.root.join(from), self.root.join(to));
        let target_dir = t.parent().unwrap_or(&self.root).to_path_buf();
        create_dir_durably(&target_dir)?;
        fs::rename(&f, &t).map_err(|source| StoreError::Io { action: "rename", path: f.clone(), source })?;
        sync_dir(&target_dir)?;
        match f.parent() {
            Some(source_dir) if source_dir != target_dir => sync_dir(source_dir),
            _ => Ok(()),
        }
    }

    fn delete(&self, path: &str) -> Result<(), StoreError> {
        let p = self.root.join(path);
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StoreError::Io { action: "delete", path: p, source }),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) -> Result<(), StoreError> {
            let entries = match fs::read_dir(dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(source) => return Err(StoreError::Io { action: "list", path: dir.to_path_buf(), source }),
            };
            for entry in entries {
                let entry =
                    entry.map_err(|source| StoreError::Io { action: "list", path: dir.to_path_buf(), source })?;
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, root, out)?;
                } else if let Ok(rel) = path.strip_prefix(root) {
                    out.push(rel.to_string_lossy().replace('\\', "/"));
                }
            }
            Ok(())
        }
        let mut out = Vec::new();
        walk(&self.root.join(prefix), &self.root, &mut out)?;
        out.sort();
        Ok(out)
    }

    fn exists(&self, path: &str) -> Result<bool, StoreError> {
        Ok(self.root.join(path).is_file())
    }

    fn describe(&self) -> String {
        self.root.display().to_string()
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
    fn get_rename_delete_and_list() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path()).unwrap();
        store.put("a/x/_f.pending", b"1").unwrap();
        store.put("a/y.txt", b"2").unwrap();
        store.put("b/z", b"3").unwrap();
        assert_eq!(store.list("a").unwrap(), vec!["a/x/_f.pending", "a/y.txt"]);
        assert_eq!(store.list("missing").unwrap(), Vec::<String>::new());
        store.rename("a/x/_f.pending", "a/x/y/f").unwrap();
        assert_eq!(store.get("a/x/y/f").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(store.get("a/x/_f.pending").unwrap(), None);
        assert!(store.exists("b/z").unwrap() && !store.exists("b/q").unwrap());
        store.delete("b/z").unwrap();
        store.delete("b/z").unwrap();
        assert_eq!(store.list("").unwrap(), vec!["a/x/y/f", "a/y.txt"]);
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
