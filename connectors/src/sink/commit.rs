//! The epoch commit protocol: how part files become visible exactly once, and the checkpoint.
//!
//! Every table file has a **final name** that is a function of the input alone (see the
//! sink operator): `events/year=…/hour=…/part-00000.parquet` and the like. The protocol:
//!
//! 1. **Write.** A sink writes each file under its **pending name**, `_<name>.pending` in the
//!    same folder. Readers (DuckDB, Spark, pyarrow, `analytics`) ignore names starting with
//!    `_`, and pending files do not end in `.parquet`.
//! 2. **Commit.** When the dataflow frontier has passed the times of some written files, the
//!    committer (one, on worker 0) writes the next **commit record**
//!    `_checkpoint/commit-<epoch>.json` atomically: the epoch number, the files of the epoch,
//!    the frontier (event-time minute) it covers, each partition's read position and
//!    watermark. Writing the record is the commit point.
//! 3. **Publish.** The committer then renames the epoch's pending files to their final names.
//!    Only the files of the last record can still be pending when a process dies.
//! 4. **Recover** (at start, before any worker runs): load every record (one of an unknown
//!    version is an error naming the file), finish the renames of the last one (roll
//!    forward), and delete every other pending or in-progress file: those were written but
//!    never committed.
//! 5. **Resume.** The engine recomputes deterministically: it replays each partition and the
//!    sinks skip every file whose final name is already committed, writing only the others.
//!    Since each file's name and rows depend on the input alone, the files written after a
//!    restart are exactly those an uninterrupted run would have written, and none twice.
//!    (The record's positions and watermarks say how far the committed output reaches; the
//!    dedup, window and daily state are rebuilt by the replay rather than stored, so a
//!    checkpoint stays a few kilobytes whatever the state size.)
//!
//! A reader therefore sees, at any instant, the files of the committed epochs (possibly all
//! but the last epoch's renames, which are completed by the next start): never a partial file,
//! a duplicate, or a file of an uncommitted epoch.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use super::store::{StoreError, TableStore};

/// The version of [`CommitRecord`] this build writes and reads.
pub const CHECKPOINT_VERSION: u32 = 1;

/// The folder of commit records, relative to the checkpoint store.
pub const CHECKPOINT_DIR: &str = "_checkpoint";

/// One commit: the files of an epoch and how far the committed output reaches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommitRecord {
    /// Format version ([`CHECKPOINT_VERSION`]).
    pub version: u32,
    /// Epoch number, from 1.
    pub epoch: u64,
    /// Every file with a time before this event-time minute is committed (`None`: the input
    /// ended and everything is committed).
    pub frontier_minute: Option<u64>,
    /// Final names of the files this epoch publishes.
    pub files: Vec<String>,
    /// Per partition, the offset of the next message read when the epoch was committed.
    pub positions: BTreeMap<u32, u64>,
    /// Per partition, its event-time watermark then (microseconds).
    pub watermarks: BTreeMap<u32, i64>,
    /// Wall-clock time of the commit (microseconds since the epoch).
    pub committed_at_micros: i64,
}

/// Why the checkpoint cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A record is not readable by this build.
    #[error("checkpoint record {path} in {store}: {problem} (it was written by another version of the engine; use a matching build, or a new --checkpoint location to start over)")]
    Unreadable {
        /// The record.
        path: String,
        /// The store.
        store: String,
        /// What is wrong.
        problem: String,
    },
    /// A committed file is gone.
    #[error("checkpoint record {record} commits {file}, but neither it nor its pending file exists in {store}: the output was modified outside the engine")]
    Missing {
        /// The record.
        record: String,
        /// The file.
        file: String,
        /// The store.
        store: String,
    },
}

/// The pending name of a file: `_<name>.pending` in the same folder.
pub fn pending_path(final_path: &str) -> String {
    match final_path.rsplit_once('/') {
        Some((dir, name)) => format!("{dir}/_{name}.pending"),
        None => format!("_{final_path}.pending"),
    }
}

/// Whether `path` is a file that was written but never published (pending, or a store's
/// in-progress temporary).
pub fn is_uncommitted(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.starts_with('_') && (name.ends_with(".pending") || name.ends_with(".inprogress"))
}

/// The path of epoch `epoch`'s record.
pub fn record_path(epoch: u64) -> String {
    format!("{CHECKPOINT_DIR}/commit-{epoch:010}.json")
}

/// What the commit records say.
#[derive(Debug, Default)]
pub struct Checkpoint {
    /// The newest record, if any.
    pub last: Option<CommitRecord>,
    /// Final names of every committed file.
    pub committed: HashSet<String>,
}

impl Checkpoint {
    /// The next epoch number.
    pub fn next_epoch(&self) -> u64 {
        self.last.as_ref().map_or(1, |r| r.epoch + 1)
    }
}

/// Reads every commit record of `store`.
pub fn load(store: &dyn TableStore) -> Result<Checkpoint, CommitError> {
    let mut checkpoint = Checkpoint::default();
    for path in store.list(CHECKPOINT_DIR)? {
        let name = path.rsplit('/').next().unwrap_or(&path);
        if !(name.starts_with("commit-") && name.ends_with(".json")) {
            continue; // in-progress temporaries and foreign files
        }
        let unreadable = |problem: String| CommitError::Unreadable { path: path.clone(), store: store.describe(), problem };
        let bytes = store.get(&path)?.ok_or_else(|| unreadable("it disappeared while being read".into()))?;
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| unreadable(format!("not JSON: {e}")))?;
        match value.get("version").and_then(serde_json::Value::as_u64) {
            Some(v) if v == u64::from(CHECKPOINT_VERSION) => {}
            Some(v) => return Err(unreadable(format!("format version {v}, this build reads version {CHECKPOINT_VERSION}"))),
            None => return Err(unreadable("no format version".into())),
        }
        let record: CommitRecord = serde_json::from_value(value).map_err(|e| unreadable(format!("malformed: {e}")))?;
        checkpoint.committed.extend(record.files.iter().cloned());
        if checkpoint.last.as_ref().is_none_or(|l| l.epoch < record.epoch) {
            checkpoint.last = Some(record);
        }
    }
    Ok(checkpoint)
}

/// What recovery did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Files of the last epoch renamed to their final names (roll forward).
    pub published: usize,
    /// Uncommitted files deleted.
    pub deleted: usize,
}

/// Finishes the last commit and deletes uncommitted files under the `tables` folders.
pub fn recover(store: &dyn TableStore, checkpoint: &Checkpoint, tables: &[&str]) -> Result<Recovery, CommitError> {
    let mut report = Recovery::default();
    if let Some(last) = &checkpoint.last {
        publish(store, last).map_err(|e| match e {
            CommitError::Missing { file, .. } => CommitError::Missing { record: record_path(last.epoch), file, store: store.describe() },
            e => e,
        })?;
        report.published = last.files.len();
    }
    for table in tables {
        for path in store.list(table)? {
            if is_uncommitted(&path) {
                store.delete(&path)?;
                report.deleted += 1;
            }
        }
    }
    Ok(report)
}

/// Commits `record`: writes it (the commit point), then publishes its files.
pub fn commit(store: &dyn TableStore, record: &CommitRecord) -> Result<(), CommitError> {
    let bytes = serde_json::to_vec_pretty(record).expect("a commit record serializes");
    store.put(&record_path(record.epoch), &bytes)?;
    publish(store, record)
}

/// Renames the record's pending files to their final names (those already final are skipped).
fn publish(store: &dyn TableStore, record: &CommitRecord) -> Result<(), CommitError> {
    for file in &record.files {
        let pending = pending_path(file);
        if store.exists(&pending)? {
            store.rename(&pending, file)?;
        } else if !store.exists(file)? {
            return Err(CommitError::Missing { record: record_path(record.epoch), file: file.clone(), store: store.describe() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::LocalStore;

    fn record(epoch: u64, files: &[&str]) -> CommitRecord {
        CommitRecord {
            version: CHECKPOINT_VERSION,
            epoch,
            frontier_minute: Some(epoch * 60),
            files: files.iter().map(|f| f.to_string()).collect(),
            positions: BTreeMap::from([(0, 10 * epoch)]),
            watermarks: BTreeMap::new(),
            committed_at_micros: 0,
        }
    }

    #[test]
    fn pending_names_hide_from_readers() {
        assert_eq!(pending_path("t/year=2025/part-00000.parquet"), "t/year=2025/_part-00000.parquet.pending");
        assert!(is_uncommitted(&pending_path("t/a.parquet")) && is_uncommitted("t/_a.parquet.inprogress"));
        assert!(!is_uncommitted("t/a.parquet"));
    }

    #[test]
    fn commit_publishes_and_recovery_rolls_forward_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path()).unwrap();
        store.put(&pending_path("t/h=1/a.parquet"), b"a").unwrap();
        commit(&store, &record(1, &["t/h=1/a.parquet"])).unwrap();
        assert_eq!(store.list("t").unwrap(), vec!["t/h=1/a.parquet"]);
        // Epoch 2 is recorded but the process dies before publishing; a third file was
        // written but never committed.
        store.put(&pending_path("t/h=2/b.parquet"), b"b").unwrap();
        store.put(&pending_path("t/h=3/c.parquet"), b"c").unwrap();
        store.put(&record_path(2), &serde_json::to_vec(&record(2, &["t/h=2/b.parquet"])).unwrap()).unwrap();
        let checkpoint = load(&store).unwrap();
        assert_eq!(checkpoint.last.as_ref().map(|r| r.epoch), Some(2));
        assert_eq!(checkpoint.committed, HashSet::from(["t/h=1/a.parquet".to_string(), "t/h=2/b.parquet".to_string()]));
        assert_eq!(checkpoint.next_epoch(), 3);
        let report = recover(&store, &checkpoint, &["t"]).unwrap();
        assert_eq!(report, Recovery { published: 1, deleted: 1 });
        assert_eq!(store.list("t").unwrap(), vec!["t/h=1/a.parquet", "t/h=2/b.parquet"]);
        // Recovery is idempotent.
        assert_eq!(recover(&store, &load(&store).unwrap(), &["t"]).unwrap(), Recovery { published: 1, deleted: 0 });
    }

    #[test]
    fn an_unknown_version_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path()).unwrap();
        let mut r = serde_json::to_value(record(1, &[])).unwrap();
        r["version"] = 99.into();
        store.put(&record_path(1), &serde_json::to_vec(&r).unwrap()).unwrap();
        let err = load(&store).unwrap_err().to_string();
        assert!(err.contains("commit-0000000001.json") && err.contains("version 99"), "{err}");
        store.put(&record_path(1), b"{\"epoch\": 1}").unwrap();
        assert!(load(&store).unwrap_err().to_string().contains("no format version"));
    }

    #[test]
    fn a_committed_file_that_vanished_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path()).unwrap();
        store.put(&record_path(1), &serde_json::to_vec(&record(1, &["t/x.parquet"])).unwrap()).unwrap();
        let err = recover(&store, &load(&store).unwrap(), &["t"]).unwrap_err().to_string();
        assert!(err.contains("t/x.parquet") && err.contains("commit-0000000001.json"), "{err}");
    }
}
