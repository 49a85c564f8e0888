//! Folding the commit records: the committer notes every committed and replaced name, and
//! every `--commit-fold-every` epochs writes them as one base record, so that a restart reads
//! one base and the records after it instead of every record ever written (the record format
//! and the fold itself are `connectors::sink::commit`'s).

use std::collections::HashSet;

use connectors::sink::commit::{fold, CheckpointStore, CommitRecord};

/// The committed and replaced names so far, and folding them into a base record.
pub(super) struct Folder {
    pub(super) committed: HashSet<String>,
    pub(super) replaced: HashSet<String>,
    pub(super) every: u64,
}

impl Folder {
    /// Notes a record just committed; folds when its epoch is due. A failure is only logged:
    /// the records stay readable, there are just more of them.
    pub(super) fn committed(&mut self, records: &CheckpointStore, record: &CommitRecord) {
        self.committed.extend(record.files.iter().cloned());
        self.replaced.extend(record.replaced.iter().cloned());
        if self.every > 0 && record.epoch.is_multiple_of(self.every) {
            match fold(records, record.epoch, &self.committed, &self.replaced) {
                Ok(()) => tracing::info!(
                    epoch = record.epoch,
                    files = self.committed.len(),
                    "folded the commit records into a base"
                ),
                Err(e) => {
                    tracing::warn!(epoch = record.epoch, error = %e, "cannot fold the commit records (will retry at the next fold)")
                }
            }
        }
    }
}
