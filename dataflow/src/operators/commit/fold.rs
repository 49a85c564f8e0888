//! Folding the commit records: the committer notes every committed and replaced name, and
//! every `--commit-fold-every` epochs writes those a restart could still write as one base
//! record, so that a restart reads one base and the records after it instead of every record
//! ever written, and the names held stay bounded (the record format, the fold and which names
//! it forgets are `connectors::sink::commit`'s, "Fold").

use connectors::sink::commit::{fold, CheckpointStore, CommitRecord, CommittedNames};

/// The committed and replaced names so far, and folding them into a base record.
pub(super) struct Folder {
    pub(super) names: CommittedNames,
    pub(super) every: u64,
}

impl Folder {
    /// Notes a record just committed; folds when its epoch is due. A failure is only logged:
    /// the records stay readable, there are just more of them.
    pub(super) fn committed(&mut self, records: &CheckpointStore, record: &CommitRecord) {
        self.names.add(record);
        if self.every > 0 && record.epoch.is_multiple_of(self.every) {
            match fold(records, record.epoch, record.frontier_minute, &mut self.names) {
                Ok(()) => tracing::info!(
                    epoch = record.epoch,
                    files = self.names.committed.len(),
                    "folded the commit records into a base"
                ),
                Err(e) => {
                    tracing::warn!(epoch = record.epoch, error = %e, "cannot fold the commit records (will retry at the next fold)")
                }
            }
        }
    }
}
