//! The epoch commit protocol: how part files become visible exactly once, and the checkpoint.
//!
//! Every table file has a **final name** that is a function of the input alone (see the
//! sink operator): `events/year=…/hour=…/part-00000.parquet` and the like. The protocol:
//!
//! 1. **Write.** A sink writes each file under its **pending name**, `_<name>.pending` in the
//!    same folder. Readers (DuckDB, Spark, pyarrow, `analytics`) ignore names starting with
//!    `_`, and pending files do not end in `.parquet`.
//! 2. **Commit.** When the dataflow frontier has passed the times of some written files, the
//!    committer (one, on worker 0) writes the next **commit record** `commit-<epoch>.json` in
//!    the checkpoint location (by default `OUT/_checkpoint/`) atomically: the epoch number, the
//!    files of the epoch, the frontier `F` (an event-time minute: every row of a time before
//!    `F` is in a committed file), each partition's **resume point** and, for information,
//!    each partition's read position and watermark. Writing the record is the commit point.
//! 3. **Publish.** The committer then renames the epoch's pending files to their final names.
//!    Only the files of the last record can still be pending when a process dies.
//! 4. **Recover** (at start, before any worker runs): load every record (one of an unknown
//!    version is an error naming the file), finish the renames of the last one (roll
//!    forward), and delete every other pending or in-progress file: those were written but
//!    never committed.
//! 5. **Resume** from the last record's frontier `F`. What is left to compute is every row
//!    of a time `≥ F`; what that needs is
//!    - the messages that can produce such rows: a partition's resume point is the first
//!      message whose time reached a new maximum below `F` (its offset, its time, and the
//!      partition's largest event time before it, which restores the watermark). Every
//!      message before it has a time below `F`, so its rows are committed. The partition is
//!      read again from there; a message of a time below `F` only moves the watermark;
//!    - the state those rows depend on, which the committed `events` table holds exactly:
//!      the ids kept by dedup in the last dedup horizon before `F`, and the distinct events
//!      of `F`'s day since midnight (for the daily p95). The engine reads them back
//!      (`seed` operator) instead of storing state in the record, so a record stays a few
//!      kilobytes whatever the state size.
//!
//!    Sinks skip every file whose final name is already committed. Since each file's name
//!    and rows depend on the input alone, the files written after a restart are exactly
//!    those an uninterrupted run would have written, and none twice. Restart cost is bounded
//!    by the open day, not by the length of the stream.
//!
//! 6. **Compact** (optional, live runs, `--compact-after`): once the frontier is past a closed
//!    hour, the committer merges that hour's minute files of a table into `part-cNNNNN.parquet`
//!    and commits an epoch that publishes the merged files and lists the minute files it
//!    **replaces**; publishing renames the merged files into place and then deletes the
//!    replaced ones (recovery repeats both). Replaced names stay committed, so a replay never
//!    writes them again. Caveat: object stores cannot swap several files atomically, so a
//!    reader that lists the folder between the rename and the deletes (milliseconds) sees an
//!    hour's rows twice; compaction is off unless asked for.
//!
//! 7. **Fold**: every [`FOLD_EVERY`] epochs the committer writes `base-<epoch>.json` (the
//!    names committed and replaced so far that a restart could still write), then deletes the
//!    older records, so a start reads one base and the records since, however long the run.
//!    A name is needed only while a restart could write its file again: a restart resumes
//!    at a frontier `F' ≥ F`, the folded record's (the recorded frontier never goes back),
//!    and writes rows of times `≥ F'`, plus the windows of `F'`'s day so far, recomputed
//!    from the seeds; so no row before the midnight that starts `F`'s day. A base keeps the
//!    names of the partitions (hours, days) that end after the midnight *before* that one,
//!    a day of margin, and forgets older ones ([`fold_cutoff`]): what a run holds and a
//!    start reads stays about two days of names, not the whole history. An hour forgotten
//!    before it was compacted keeps its minute files: a run without `--compact-after`, a
//!    `--compact-after` of a day or more, or a restart after a crash between a fold and the
//!    compaction of an hour it forgot (a restart compacts only the minute files it knows of).
//!
//! A reader therefore sees, at any instant, the files of the committed epochs (possibly all
//! but the last epoch's renames, which are completed by the next start): never a partial file,
//! a duplicate, or a file of an uncommitted epoch.
//!
//! **Durability** (a power loss, not only a crash). On a local folder a write or a rename is
//! durable only once the file's data and the folder's entry are synced (`LocalStore` does
//! both before it returns); an object store's completed request is durable. What each sync
//! protects:
//! - the pending file's data and name (step 1), before the record that lists it: otherwise a
//!   record could survive whose pending file did not, and recovery could not roll it forward;
//! - the record's data and name (step 2), before the first rename: otherwise the renamed files
//!   could survive while the record that commits them vanished, and a restart would recompute
//!   and skip nothing, leaving visible files no record names;
//! - each rename's target folder (step 3), before the next record: so the names a record
//!   published are in place when a later record assumes them;
//! - a newly created folder's entry in its parent, with the first file in it.
//!
//! **Input identity.** Every record names the input its commits belong to (a file folder's
//! absolute path, or a Kafka cluster id and topic: [`crate::source::Source::identity`]). A
//! start whose input differs from the last record's stops with an error naming both: resuming
//! would skip the new input's rows wherever a file name was committed for the old one, and
//! read its partitions from the old one's positions. The fix is a new `--output` (and
//! `--checkpoint`), or `--reset`, which says what it deletes and then deletes the tables'
//! files and the checkpoint ([`reset`]). Records written before identities were recorded
//! carry none and are accepted.
//!
//! Versions: this build writes version 2 and reads 1 and 2. A version-1 record has no resume
//! points; the engine then replays every partition from its start (what version 1 did). Any
//! other version is an error naming the record.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::store::{StoreError, TableStore};
use super::tables::partition_end;
use crate::calendar::DAY_MINUTES;
use crate::schema::{EventTime, MICROS_PER_DAY};

/// The version of [`CommitRecord`] this build writes.
pub const CHECKPOINT_VERSION: u32 = 2;

/// The record versions this build reads (see the module header).
pub const READABLE_VERSIONS: [u32; 2] = [1, 2];

/// The folder of commit records inside the output, when no separate checkpoint location is given.
pub const CHECKPOINT_DIR: &str = "_checkpoint";

/// Where commit records live: a store and a folder in it.
#[derive(Clone)]
pub struct CheckpointStore {
    /// The store.
    pub store: Arc<dyn TableStore>,
    /// The folder of the records in it (`""`: its root).
    pub dir: String,
}

impl CheckpointStore {
    /// The default location: `_checkpoint/` in the output store.
    pub fn in_output(output: Arc<dyn TableStore>) -> Self {
        CheckpointStore { store: output, dir: CHECKPOINT_DIR.to_owned() }
    }

    /// The path of epoch `epoch`'s record.
    pub fn record_path(&self, epoch: u64) -> String {
        let name = format!("commit-{epoch:010}.json");
        if self.dir.is_empty() {
            name
        } else {
            format!("{}/{name}", self.dir)
        }
    }

    /// Names the location in messages.
    pub fn describe(&self) -> String {
        if self.dir.is_empty() {
            self.store.describe()
        } else {
            format!("{}/{}", self.store.describe(), self.dir)
        }
    }
}

/// Where a partition is read again after a restart (see the module header, "Resume").
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumePoint {
    /// Offset of the first message to read.
    pub offset: u64,
    /// That message's dataflow time (event-time minute); every message before it has a
    /// smaller time.
    pub minute: u64,
    /// The partition's largest valid event time before that message (microseconds), which
    /// restores its watermark; `None` before any valid event.
    pub max_event_micros: Option<i64>,
}

/// One commit: the files of an epoch and how far the committed output reaches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommitRecord {
    /// Format version ([`CHECKPOINT_VERSION`]).
    pub version: u32,
    /// Epoch number, from 1.
    pub epoch: u64,
    /// Every row with a time before this event-time minute is in a committed file (`None`:
    /// the input ended and everything is committed).
    pub frontier_minute: Option<u64>,
    /// Final names of the files this epoch publishes.
    pub files: Vec<String>,
    /// Per partition, where to read again after a restart (absent in version 1).
    #[serde(default)]
    pub resume: BTreeMap<u32, ResumePoint>,
    /// Committed files this epoch deletes because `files` replace them (compaction).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replaced: Vec<String>,
    /// Per partition, the offset of the next message read when the epoch was committed, as
    /// known to the committing process (for information).
    pub positions: BTreeMap<u32, u64>,
    /// Per partition, its event-time watermark then (microseconds).
    pub watermarks: BTreeMap<u32, i64>,
    /// Wall-clock time of the commit (microseconds since the epoch).
    pub committed_at_micros: i64,
    /// The input these commits belong to ([`crate::source::Source::identity`]; absent in
    /// records written before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
}

/// Why the checkpoint cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The checkpoint belongs to another input.
    #[error("the checkpoint in {checkpoint} belongs to another input: it records {recorded}, this run reads {input}. Resuming would skip this input's rows wherever the other's were committed: start with a new --output (and --checkpoint), or pass --reset to delete the old tables and checkpoint")]
    OtherInput {
        /// The input the checkpoint records.
        recorded: String,
        /// This run's input.
        input: String,
        /// The checkpoint location.
        checkpoint: String,
    },
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

/// What the commit records say.
#[derive(Debug, Default)]
pub struct Checkpoint {
    /// The newest record, if any.
    pub last: Option<CommitRecord>,
    /// The committed names a restart needs.
    pub names: CommittedNames,
}

impl Checkpoint {
    /// The next epoch number.
    pub fn next_epoch(&self) -> u64 {
        self.last.as_ref().map_or(1, |r| r.epoch + 1)
    }
}

/// The names of the committed files that a restart could write again, so that its sinks
/// skip them; older ones are forgotten by folds (see "Fold").
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CommittedNames {
    /// Final names of committed files, including those compaction replaced since.
    pub committed: HashSet<String>,
    /// Committed files that compaction replaced (deleted).
    pub replaced: HashSet<String>,
    /// Files of hive partitions that ended at or before this instant are committed but no
    /// longer listed.
    pub forgotten_before: Option<EventTime>,
}

impl CommittedNames {
    /// Whether a published file's name is accounted for: listed as committed, or of a
    /// partition older than the names a fold forgot.
    pub fn accounts_for(&self, name: &str) -> bool {
        self.committed.contains(name)
            || self.forgotten_before.zip(partition_end(name)).is_some_and(|(before, end)| end <= before)
    }

    /// Adds the names a record commits and replaces.
    pub fn add(&mut self, record: &CommitRecord) {
        self.committed.extend(record.files.iter().cloned());
        self.replaced.extend(record.replaced.iter().cloned());
    }

    /// Forgets the names of the files of partitions that ended at or before `cutoff` (and
    /// before any earlier cutoff): no restart writes them again.
    fn forget_before(&mut self, cutoff: EventTime) {
        let cutoff = self.forgotten_before.map_or(cutoff, |f| f.max(cutoff));
        self.committed.retain(|name| partition_end(name).is_none_or(|end| end > cutoff));
        self.replaced.retain(|name| partition_end(name).is_none_or(|end| end > cutoff));
        self.forgotten_before = Some(cutoff);
    }
}

/// Every `FOLD_EVERY` epochs the committer folds the records into a base (see [`fold`]).
pub const FOLD_EVERY: u64 = 1000;

/// The committed and replaced names of the epochs up to its own that a restart could still
/// write (see "Fold"), so that a start reads one base and the records since instead of every
/// record ever written.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BaseRecord {
    /// Format version ([`CHECKPOINT_VERSION`]).
    pub version: u32,
    /// The last epoch folded in.
    pub epoch: u64,
    /// Final names of the files committed up to that epoch, but those forgotten.
    pub committed: Vec<String>,
    /// Those that compaction replaced.
    pub replaced: Vec<String>,
    /// Names of files whose hive partition ended at or before this instant (microseconds)
    /// are not listed: they were committed, and no restart writes them again (see "Fold").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forgotten_before_micros: Option<i64>,
}

/// Reads the checkpoint of `records`: the newest base, if any, and the records since.
pub fn load(records: &CheckpointStore) -> Result<Checkpoint, CommitError> {
    let mut checkpoint = Checkpoint::default();
    let (base, all) = load_all(records)?;
    if let Some(base) = base {
        checkpoint.names.committed.extend(base.committed);
        checkpoint.names.replaced.extend(base.replaced);
        checkpoint.names.forgotten_before = base.forgotten_before_micros.map(EventTime);
    }
    for record in all {
        checkpoint.names.add(&record);
        checkpoint.last = Some(record);
    }
    Ok(checkpoint)
}

/// The commit records of `records` since the newest base (all of them without one), by epoch.
pub fn load_records(records: &CheckpointStore) -> Result<Vec<CommitRecord>, CommitError> {
    Ok(load_all(records)?.1)
}

/// `(epoch, path)` of each file of one kind in the records' folder.
type EpochPaths = Vec<(u64, String)>;

/// The names in the records' folder: `(epoch, path)` of the commit records and of the bases.
fn list_records(records: &CheckpointStore) -> Result<(EpochPaths, EpochPaths), CommitError> {
    let (mut commits, mut bases) = (Vec::new(), Vec::new());
    for path in records.store.list(&records.dir)? {
        let relative = path.strip_prefix(records.dir.as_str()).map_or(path.as_str(), |r| r.trim_start_matches('/'));
        if relative.contains('/') {
            continue; // not in the records' folder itself
        }
        let epoch = |prefix: &str| relative.strip_prefix(prefix)?.strip_suffix(".json")?.parse::<u64>().ok();
        if let Some(e) = epoch("commit-") {
            commits.push((e, path.clone()));
        } else if let Some(e) = epoch("base-") {
            bases.push((e, path.clone()));
        } // in-progress temporaries and foreign files are not records
    }
    commits.sort();
    bases.sort();
    Ok((commits, bases))
}

/// Reads one record or base, checking its format version.
fn read_versioned<T: serde::de::DeserializeOwned>(records: &CheckpointStore, path: &str) -> Result<T, CommitError> {
    let store = records.store.as_ref();
    let unreadable =
        |problem: String| CommitError::Unreadable { path: path.to_owned(), store: store.describe(), problem };
    let bytes = store.get(path)?.ok_or_else(|| unreadable("it disappeared while being read".into()))?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| unreadable(format!("not JSON: {e}")))?;
    match value.get("version").and_then(serde_json::Value::as_u64) {
        Some(v) if READABLE_VERSIONS.iter().any(|r| u64::from(*r) == v) => {}
        Some(v) => {
            return Err(unreadable(format!("format version {v}, this build reads versions {READABLE_VERSIONS:?}")))
        }
        None => return Err(unreadable("no format version".into())),
    }
    serde_json::from_value(value).map_err(|e| unreadable(format!("malformed: {e}")))
}

fn load_all(records: &CheckpointStore) -> Result<(Option<BaseRecord>, Vec<CommitRecord>), CommitError> {
    let (commits, bases) = list_records(records)?;
    let base: Option<BaseRecord> = match bases.last() {
        Some((_, path)) => Some(read_versioned(records, path)?),
        None => None,
    };
    let since = base.as_ref().map_or(0, |b| b.epoch);
    let mut all = Vec::new();
    for (_, path) in commits.iter().filter(|(e, _)| *e >= since) {
        all.push(read_versioned::<CommitRecord>(records, path)?);
    }
    Ok((base, all))
}

/// Folds every record up to `epoch` (the last one written, whose frontier is `frontier`)
/// into `base-<epoch>.json`, then deletes the older records and bases. `names` are the
/// checkpoint's up to that epoch; those a restart cannot write again are forgotten first (see
/// "Fold"). The base is written atomically before anything is deleted, so a crash at any
/// point leaves a readable checkpoint (older leftovers are ignored, as [`load`] reads only
/// the newest base and the records from its epoch on).
pub fn fold(
    records: &CheckpointStore, epoch: u64, frontier: Option<u64>, names: &mut CommittedNames,
) -> Result<(), CommitError> {
    if let Some(f) = frontier {
        names.forget_before(fold_cutoff(f));
    }
    let mut base = BaseRecord {
        version: CHECKPOINT_VERSION,
        epoch,
        committed: names.committed.iter().cloned().collect(),
        replaced: names.replaced.iter().cloned().collect(),
        forgotten_before_micros: names.forgotten_before.map(EventTime::micros),
    };
    base.committed.sort();
    base.replaced.sort();
    let name = format!("base-{epoch:010}.json");
    let path = if records.dir.is_empty() { name } else { format!("{}/{name}", records.dir) };
    records.store.put(&path, &serde_json::to_vec(&base).expect("a base record serializes"))?;
    let (commits, bases) = list_records(records)?;
    for (_, old) in commits.iter().chain(&bases).filter(|(e, _)| *e < epoch) {
        records.store.delete(old)?;
    }
    Ok(())
}

/// The instant before which a fold at frontier `frontier_minute` forgets names: the midnight
/// a day before the one that starts the frontier's day (see "Fold"). A file whose partition
/// ends at or before it is never written again.
pub fn fold_cutoff(frontier_minute: u64) -> EventTime {
    let day = (frontier_minute / DAY_MINUTES).saturating_sub(1);
    EventTime(i64::try_from(day).unwrap_or(i64::MAX).saturating_mul(MICROS_PER_DAY))
}

/// Checks that the checkpoint belongs to `input` (see "Input identity").
pub fn check_input(checkpoint: &Checkpoint, records: &CheckpointStore, input: &str) -> Result<(), CommitError> {
    match checkpoint.last.as_ref().and_then(|r| r.input.as_deref()) {
        Some(recorded) if recorded != input => Err(CommitError::OtherInput {
            recorded: recorded.to_owned(),
            input: input.to_owned(),
            checkpoint: records.describe(),
        }),
        _ => Ok(()),
    }
}

/// What [`reset`] deletes: every file under the `tables` folders of the output and every
/// file of the checkpoint.
#[derive(Debug, Default)]
pub struct ResetPlan {
    /// Table files (committed, pending or in progress), per table.
    pub tables: Vec<(String, Vec<String>)>,
    /// Checkpoint files.
    pub checkpoint: Vec<String>,
}

impl ResetPlan {
    /// Lists what a reset of `output` and `records` deletes.
    pub fn list(output: &dyn TableStore, records: &CheckpointStore, tables: &[&str]) -> Result<Self, CommitError> {
        let mut plan = ResetPlan::default();
        for table in tables {
            let files = output.list(table)?;
            if !files.is_empty() {
                plan.tables.push((table.to_string(), files));
            }
        }
        // Only the files of the records' folder itself: a checkpoint location may hold more.
        plan.checkpoint = records
            .store
            .list(&records.dir)?
            .into_iter()
            .filter(|p| !p.strip_prefix(records.dir.as_str()).unwrap_or(p).trim_start_matches('/').contains('/'))
            .collect();
        Ok(plan)
    }

    /// Whether there is nothing to delete.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty() && self.checkpoint.is_empty()
    }
}

impl std::fmt::Display for ResetPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tables: Vec<String> = self.tables.iter().map(|(t, files)| format!("{t} ({} files)", files.len())).collect();
        write!(
            f,
            "tables: {}; checkpoint: {} files",
            if tables.is_empty() { "none".to_owned() } else { tables.join(", ") },
            self.checkpoint.len()
        )
    }
}

/// Deletes what `plan` lists: the checkpoint first (so that a reset cut short leaves no
/// checkpoint naming deleted files: the next start begins afresh and rewrites them), then
/// the tables' files.
pub fn reset(output: &dyn TableStore, records: &CheckpointStore, plan: &ResetPlan) -> Result<(), CommitError> {
    for path in &plan.checkpoint {
        records.store.delete(path)?;
    }
    for (_, files) in &plan.tables {
        for path in files {
            output.delete(path)?;
        }
    }
    Ok(())
}

/// What recovery did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Files of the last epoch renamed to their final names (roll forward).
    pub published: usize,
    /// Uncommitted files deleted.
    pub deleted: usize,
}

/// Finishes the last commit and deletes uncommitted files under the `tables` folders of
/// `output`.
pub fn recover(
    output: &dyn TableStore, records: &CheckpointStore, checkpoint: &Checkpoint, tables: &[&str],
) -> Result<Recovery, CommitError> {
    let store = output;
    let mut report = Recovery::default();
    if let Some(last) = &checkpoint.last {
        publish(store, records, last)?;
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

/// Commits `record`: writes it to `records` (the commit point), then publishes its files in
/// `output`.
pub fn commit(output: &dyn TableStore, records: &CheckpointStore, record: &CommitRecord) -> Result<(), CommitError> {
    let bytes = serde_json::to_vec_pretty(record).expect("a commit record serializes");
    records.store.put(&records.record_path(record.epoch), &bytes)?;
    publish(output, records, record)
}

/// Renames the record's pending files to their final names (those already final are skipped).
fn publish(store: &dyn TableStore, records: &CheckpointStore, record: &CommitRecord) -> Result<(), CommitError> {
    for file in &record.files {
        let pending = pending_path(file);
        if store.exists(&pending)? {
            store.rename(&pending, file)?;
        } else if !store.exists(file)? {
            return Err(CommitError::Missing {
                record: records.record_path(record.epoch),
                file: file.clone(),
                store: store.describe(),
            });
        }
    }
    for file in &record.replaced {
        if store.exists(file)? {
            store.delete(file)?;
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
            resume: BTreeMap::from([(
                0,
                ResumePoint { offset: 7 * epoch, minute: epoch * 60 - 1, max_event_micros: Some(42) },
            )]),
            replaced: vec![],
            positions: BTreeMap::from([(0, 10 * epoch)]),
            watermarks: BTreeMap::new(),
            committed_at_micros: 0,
            input: None,
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
        let store = Arc::new(LocalStore::new(dir.path()).unwrap());
        let records = CheckpointStore::in_output(store.clone());
        store.put(&pending_path("t/h=1/a.parquet"), b"a").unwrap();
        commit(store.as_ref(), &records, &record(1, &["t/h=1/a.parquet"])).unwrap();
        assert_eq!(store.list("t").unwrap(), vec!["t/h=1/a.parquet"]);
        // Epoch 2 is recorded but the process dies before publishing; a third file was
        // written but never committed.
        store.put(&pending_path("t/h=2/b.parquet"), b"b").unwrap();
        store.put(&pending_path("t/h=3/c.parquet"), b"c").unwrap();
        store.put(&records.record_path(2), &serde_json::to_vec(&record(2, &["t/h=2/b.parquet"])).unwrap()).unwrap();
        let checkpoint = load(&records).unwrap();
        assert_eq!(checkpoint.last, Some(record(2, &["t/h=2/b.parquet"])));
        assert_eq!(
            checkpoint.names.committed,
            HashSet::from(["t/h=1/a.parquet".to_string(), "t/h=2/b.parquet".to_string()])
        );
        assert_eq!(checkpoint.next_epoch(), 3);
        let report = recover(store.as_ref(), &records, &checkpoint, &["t"]).unwrap();
        assert_eq!(report, Recovery { published: 1, deleted: 1 });
        assert_eq!(store.list("t").unwrap(), vec!["t/h=1/a.parquet", "t/h=2/b.parquet"]);
        // Recovery is idempotent.
        assert_eq!(
            recover(store.as_ref(), &records, &load(&records).unwrap(), &["t"]).unwrap(),
            Recovery { published: 1, deleted: 0 }
        );
    }

    #[test]
    fn a_compaction_epoch_replaces_files_and_recovery_finishes_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LocalStore::new(dir.path()).unwrap());
        let records = CheckpointStore::in_output(store.clone());
        for f in ["t/h=1/part-m1-000.parquet", "t/h=1/part-m2-000.parquet"] {
            store.put(&pending_path(f), b"m").unwrap();
        }
        commit(store.as_ref(), &records, &record(1, &["t/h=1/part-m1-000.parquet", "t/h=1/part-m2-000.parquet"]))
            .unwrap();
        // The merged file is written and its epoch recorded; the process dies before publishing.
        store.put(&pending_path("t/h=1/part-c00000.parquet"), b"c").unwrap();
        let mut compaction = record(2, &["t/h=1/part-c00000.parquet"]);
        compaction.replaced = vec!["t/h=1/part-m1-000.parquet".into(), "t/h=1/part-m2-000.parquet".into()];
        store.put(&records.record_path(2), &serde_json::to_vec(&compaction).unwrap()).unwrap();
        let checkpoint = load(&records).unwrap();
        assert_eq!(checkpoint.names.replaced.len(), 2);
        assert!(
            checkpoint.names.committed.contains("t/h=1/part-m1-000.parquet"),
            "replaced names stay committed: a replay must not write them"
        );
        recover(store.as_ref(), &records, &checkpoint, &["t"]).unwrap();
        assert_eq!(store.list("t").unwrap(), vec!["t/h=1/part-c00000.parquet"]);
        // Idempotent.
        recover(store.as_ref(), &records, &load(&records).unwrap(), &["t"]).unwrap();
        assert_eq!(store.list("t").unwrap(), vec!["t/h=1/part-c00000.parquet"]);
    }

    #[test]
    fn folding_keeps_the_checkpoint_and_drops_old_records() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LocalStore::new(dir.path()).unwrap());
        let records = CheckpointStore::in_output(store.clone());
        for e in 1..=4 {
            let f = format!("t/{e}.parquet");
            store.put(&pending_path(&f), b"x").unwrap();
            commit(store.as_ref(), &records, &record(e, &[f.as_str()])).unwrap();
        }
        let before = load(&records).unwrap();
        let mut names =
            CommittedNames { committed: (1..=3).map(|e| format!("t/{e}.parquet")).collect(), ..Default::default() };
        fold(&records, 3, Some(180), &mut names).unwrap();
        let mut names = store.list(CHECKPOINT_DIR).unwrap();
        names.sort();
        assert_eq!(
            names,
            [
                "_checkpoint/base-0000000003.json",
                "_checkpoint/commit-0000000003.json",
                "_checkpoint/commit-0000000004.json"
            ]
        );
        let after = load(&records).unwrap();
        assert_eq!(after.next_epoch(), 5);
        assert_eq!((after.last, after.names.committed), (before.last, before.names.committed));
        assert_eq!(load_records(&records).unwrap().iter().map(|r| r.epoch).collect::<Vec<_>>(), [3, 4]);
    }

    #[test]
    fn a_fold_forgets_only_names_no_restart_can_write_again() {
        use crate::schema::MICROS_PER_MINUTE;
        use crate::sink::tables::partition_path;
        let dir = tempfile::tempdir().unwrap();
        let records = CheckpointStore::in_output(Arc::new(LocalStore::new(dir.path()).unwrap()));
        // Files of every table kind at times over ten days, and names without a partition.
        let (mut names, mut times) = (CommittedNames::default(), Vec::new());
        let mut x = 7u64;
        for i in 0..3000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let minute = (x >> 33) % (10 * DAY_MINUTES);
            let t = EventTime((minute as i64) * MICROS_PER_MINUTE);
            let name = match i % 3 {
                0 => format!("windows/{}/part-m{minute:08}-000.parquet", partition_path(t, false)),
                1 => format!("events/{}/part-{i:05}.parquet", partition_path(t, false)),
                _ => format!("daily_p95/{}/part-00000.parquet", partition_path(t, true)),
            };
            names.committed.insert(name.clone());
            times.push((name, minute));
        }
        names.committed.insert("t/unpartitioned.parquet".to_owned());
        names.replaced = times.iter().step_by(7).map(|(n, _)| n.clone()).collect();
        // The last fold is at the end of the input (no frontier): it forgets nothing more.
        let frontiers = [Some(5 * DAY_MINUTES + 1), Some(6 * DAY_MINUTES + 700), Some(9 * DAY_MINUTES + 1439), None];
        for (epoch, frontier) in (1..).zip(frontiers) {
            fold(&records, epoch, frontier, &mut names).unwrap();
            let base: BaseRecord = read_versioned(&records, &format!("_checkpoint/base-{epoch:010}.json")).unwrap();
            let kept: HashSet<&str> = base.committed.iter().map(String::as_str).collect();
            let midnight = frontier.unwrap_or(9 * DAY_MINUTES + 1439) / DAY_MINUTES * DAY_MINUTES;
            for (name, minute) in &times {
                // A restart from any frontier from here on writes no row before `midnight`.
                if *minute >= midnight {
                    assert!(kept.contains(name.as_str()), "frontier {frontier:?}: {name} forgotten");
                }
                // Partitions that ended a day before it are gone: the set stays bounded.
                if *minute < midnight - DAY_MINUTES {
                    assert!(!kept.contains(name.as_str()), "frontier {frontier:?}: {name} kept");
                    assert!(!base.replaced.contains(name), "frontier {frontier:?}: replaced {name} kept");
                }
            }
            assert!(kept.contains("t/unpartitioned.parquet"));
            assert_eq!(kept.len(), names.committed.len(), "the names held are the base's");
            // A start still accounts for every committed file, listed or forgotten, and for
            // no file of a partition it could write.
            let loaded = load(&records).unwrap().names;
            assert_eq!(loaded, names);
            assert!(times.iter().all(|(name, _)| loaded.accounts_for(name)), "frontier {frontier:?}");
            let t = EventTime(midnight as i64 * MICROS_PER_MINUTE);
            assert!(!loaded.accounts_for(&format!("windows/{}/part-m0-000.parquet", partition_path(t, false))));
        }
    }

    #[test]
    fn an_unknown_version_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let records = CheckpointStore::in_output(Arc::new(LocalStore::new(dir.path()).unwrap()));
        let mut r = serde_json::to_value(record(1, &[])).unwrap();
        r["version"] = 99.into();
        records.store.put(&records.record_path(1), &serde_json::to_vec(&r).unwrap()).unwrap();
        let err = load(&records).unwrap_err().to_string();
        assert!(err.contains("_checkpoint/commit-0000000001.json") && err.contains("version 99"), "{err}");
        records.store.put(&records.record_path(1), b"{\"epoch\": 1}").unwrap();
        assert!(load(&records).unwrap_err().to_string().contains("no format version"));
    }

    #[test]
    fn a_version_1_record_is_read_without_resume_points() {
        let dir = tempfile::tempdir().unwrap();
        let records = CheckpointStore { store: Arc::new(LocalStore::new(dir.path()).unwrap()), dir: String::new() };
        let v1 = r#"{"version": 1, "epoch": 3, "frontier_minute": 120, "files": ["t/a.parquet"],
                     "positions": {"0": 10}, "watermarks": {"0": 5}, "committed_at_micros": 0}"#;
        records.store.put(&records.record_path(3), v1.as_bytes()).unwrap();
        assert_eq!(records.record_path(3), "commit-0000000003.json");
        let checkpoint = load(&records).unwrap();
        let last = checkpoint.last.unwrap();
        assert_eq!((last.version, last.epoch, last.frontier_minute, last.resume.len()), (1, 3, Some(120), 0));
        assert!(checkpoint.names.committed.contains("t/a.parquet"));
    }

    #[test]
    fn a_committed_file_that_vanished_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LocalStore::new(dir.path()).unwrap());
        let records = CheckpointStore::in_output(store.clone());
        store.put(&records.record_path(1), &serde_json::to_vec(&record(1, &["t/x.parquet"])).unwrap()).unwrap();
        let err = recover(store.as_ref(), &records, &load(&records).unwrap(), &["t"]).unwrap_err().to_string();
        assert!(err.contains("t/x.parquet") && err.contains("commit-0000000001.json"), "{err}");
    }
}
