//! Compaction of closed hours (live runs, `--compact-after`): the hour's minute files of a
//! table merged, rows in order, into `part-cNNNNN.parquet` files (see the committer's header
//! for when, and `connectors::sink::commit`, "Compact", for how the replacement is committed).

use connectors::sink::commit::pending_path;
use connectors::sink::{StoreError, TableStore};

use crate::operators::sink::live_file;

/// The hour folder and the end (minute) of that hour of a live minute file
/// (`<table>/…/hour=HH/part-m<minute>-NNN.parquet`), for the tables that compaction merges.
pub(super) fn minute_file(path: &str) -> Option<(&str, u64)> {
    let (folder, _) = path.rsplit_once('/')?;
    if path.starts_with("daily_p95/") {
        return None;
    }
    let (minute, _) = live_file(path)?;
    Some((folder, (minute / 60 + 1) * 60))
}

/// Why an hour could not be compacted.
#[derive(Debug, thiserror::Error)]
pub(super) enum CompactError {
    /// The folder already holds a merged file (a compaction that was not committed is
    /// removed at start, so this is a file of another writer).
    #[error("it already holds a merged file ({0})")]
    AlreadyMerged(String),
    /// A committed minute file is gone.
    #[error("committed file {0} disappeared")]
    Disappeared(String),
    /// A file could not be decoded or encoded.
    #[error("{0}: {1}")]
    Parquet(String, String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Merges the committed minute files of `folder` (see the module header); returns the merged
/// files written under their pending names and the files they replace.
pub(super) fn merge_folder(
    store: &dyn TableStore, folder: &str, rows_per_file: usize,
) -> Result<(Vec<String>, Vec<String>), CompactError> {
    use connectors::sink::tables::{decode_parquet, encode_parquet_batches};
    let mut inputs: Vec<((u64, u64), String)> = Vec::new();
    for path in store.list(folder)? {
        let Some(name) = path.strip_prefix(folder).map(|n| n.trim_start_matches('/')) else { continue };
        if name.contains('/') || !name.ends_with(".parquet") {
            continue;
        }
        if name.starts_with("part-c") {
            return Err(CompactError::AlreadyMerged(format!("{folder}/{name}")));
        }
        if let Some(key) = live_file(&path) {
            inputs.push((key, path.clone()));
        }
    }
    // Minute order, then file index (names compare by the number, not as text).
    inputs.sort();
    let inputs: Vec<String> = inputs.into_iter().map(|(_, path)| path).collect();
    if inputs.len() < 2 {
        return Ok((Vec::new(), Vec::new()));
    }
    let mut batches = Vec::new();
    for path in &inputs {
        let bytes = store.get(path)?.ok_or_else(|| CompactError::Disappeared(path.clone()))?;
        batches.extend(decode_parquet(bytes).map_err(|e| CompactError::Parquet(path.clone(), e.to_string()))?);
    }
    // Cut the rows, in order, into files of at most `rows_per_file` rows.
    let mut files = vec![Vec::new()];
    let mut rows_in_last = 0;
    for batch in batches {
        let mut offset = 0;
        while offset < batch.num_rows() {
            if rows_in_last == rows_per_file.max(1) {
                files.push(Vec::new());
                rows_in_last = 0;
            }
            let take = (batch.num_rows() - offset).min(rows_per_file.max(1) - rows_in_last);
            files.last_mut().expect("one file at least").push(batch.slice(offset, take));
            rows_in_last += take;
            offset += take;
        }
    }
    let mut merged = Vec::new();
    for (i, file) in files.iter().enumerate().filter(|(_, f)| !f.is_empty()) {
        let path = format!("{folder}/part-c{i:05}.parquet");
        let bytes = encode_parquet_batches(file).map_err(|e| CompactError::Parquet(path.clone(), e.to_string()))?;
        store.put(&pending_path(&path), &bytes)?;
        merged.push(path);
    }
    Ok((merged, inputs))
}
