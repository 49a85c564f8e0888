//! Fatal failures of a running dataflow, and how they reach `main`.
//!
//! An operator never panics or exits on a failure it can name (a store that refuses a write,
//! a committed file that is gone, a source that cannot be read, a broken invariant). It
//! reports a [`Fatal`] to the run's [`Failure`] (in [`crate::counters::Counters`], which every
//! operator holds) and stops its own work there:
//!
//! - the committer commits nothing once a failure is reported, so no commit record can name
//!   a frontier past a file that was never written;
//! - a sink whose write failed reports no more files and keeps its capabilities;
//! - every worker of the process then drops its dataflow (the other operators would wait
//!   forever for the failed one) and [`crate::pipeline::run`] returns the failure as an error;
//!   in a cluster (`-n` > 1) the workers keep it instead, since a process that winds down
//!   leaves the cluster cleanly and its peers would wait for it: there only the process's
//!   exit (below) ends the run.
//!
//! `main` also waits for the first failure ([`Failure::wait`]) next to the run, prints what
//! failed and the fix, and exits with code 1 at once, without waiting for the workers to wind
//! down: a pod must never look alive while doing nothing. Nothing is lost: the next start
//! resumes from the last commit. A panic (a bug) still ends the process through
//! `main`'s panic hook, with code 101.

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Condvar, Mutex};

/// What failed, and where.
#[derive(Debug, thiserror::Error)]
pub enum Fatal {
    /// A partition could not be read (the message names the partition and why).
    #[error("{0}")]
    Source(String),
    /// A restart could not read back the state it needs from the committed `events` table.
    #[error("cannot resume from the committed events: {0}")]
    Resume(String),
    /// A table file could not be encoded or stored.
    #[error("cannot write {path}: {error}")]
    Write {
        /// The file (its final name).
        path: String,
        /// Why.
        error: String,
    },
    /// A commit record could not be written.
    #[error("cannot commit epoch {epoch}: {error}")]
    Commit {
        /// The epoch.
        epoch: u64,
        /// Why.
        error: String,
    },
    /// Closed hours could not be compacted (or their compaction committed).
    #[error("cannot compact {folder}: {error}")]
    Compact {
        /// The hour's folder.
        folder: String,
        /// Why.
        error: String,
    },
    /// An operator found its own guarantee broken: writing on would write wrong rows.
    #[error("{0}")]
    Invariant(String),
}

/// The first fatal failure of a run, if any; shared by every operator and `main`.
#[derive(Debug, Default)]
pub struct Failure {
    failed: AtomicBool,
    first: Mutex<Option<Fatal>>,
    reported: Condvar,
}

impl Failure {
    /// Reports `fatal`; the first report is the one `main` prints, later ones are logged.
    pub fn fail(&self, fatal: Fatal) {
        tracing::error!(error = %fatal, "fatal");
        let mut first = self.first.lock().unwrap_or_else(|e| e.into_inner());
        if first.is_none() {
            *first = Some(fatal);
        }
        self.failed.store(true, SeqCst);
        self.reported.notify_all();
    }

    /// Whether a failure was reported.
    pub fn failed(&self) -> bool {
        self.failed.load(SeqCst)
    }

    /// Waits for the first failure and returns its message.
    pub fn wait(&self) -> String {
        let mut first = self.first.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(fatal) = first.as_ref() {
                return fatal.to_string();
            }
            first = self.reported.wait(first).unwrap_or_else(|e| e.into_inner());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn the_first_failure_is_the_one_reported_and_waiters_wake() {
        let failure = Arc::new(Failure::default());
        assert!(!failure.failed());
        let waiter = {
            let failure = Arc::clone(&failure);
            std::thread::spawn(move || failure.wait())
        };
        failure.fail(Fatal::Commit { epoch: 7, error: "disk full".into() });
        failure.fail(Fatal::Invariant("later".into()));
        assert!(failure.failed());
        assert_eq!(waiter.join().unwrap(), "cannot commit epoch 7: disk full");
        assert_eq!(failure.wait(), "cannot commit epoch 7: disk full");
    }
}
