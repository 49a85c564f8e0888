//! Reading a committed table: hive-partition pruning by date and Parquet column projection.
//!
//! A table folder holds `year=YYYY/month=MM/day=DD[/hour=HH]/part-*.parquet`; names starting
//! with `_` or `.` are uncommitted and skipped. Only the folders whose date lies in the
//! requested range are opened, and only the requested columns are decoded.

use std::path::{Path, PathBuf};

use anyhow::Context;
use arrow_array::RecordBatch;
use chrono::NaiveDate;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

/// An inclusive range of UTC dates; `None` ends are open.
#[derive(Copy, Clone, Debug, Default)]
pub struct DateRange {
    /// First date included.
    pub from: Option<NaiveDate>,
    /// Last date included.
    pub to: Option<NaiveDate>,
}

impl DateRange {
    /// Whether `d` is in the range.
    pub fn contains(&self, d: NaiveDate) -> bool {
        self.from.is_none_or(|f| d >= f) && self.to.is_none_or(|t| d <= t)
    }
}

/// The date a hive path's `year=/month=/day=` segments name, if they all appear.
pub fn path_date(relative: &Path) -> Option<NaiveDate> {
    let mut ymd = [None; 3];
    for seg in relative.iter() {
        let seg = seg.to_string_lossy();
        for (i, key) in ["year=", "month=", "day="].iter().enumerate() {
            if let Some(v) = seg.strip_prefix(key) {
                ymd[i] = v.parse::<u32>().ok();
            }
        }
    }
    NaiveDate::from_ymd_opt(ymd[0]? as i32, ymd[1]?, ymd[2]?)
}

/// The committed part files of the table at `root` whose partition date is in `range`, sorted.
pub fn committed_files(root: &Path, range: DateRange) -> anyhow::Result<Vec<PathBuf>> {
    fn walk(dir: &Path, root: &Path, range: DateRange, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
        for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('_') || name.starts_with('.') {
                continue;
            }
            let path = entry.path();
            let relative = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            if entry.file_type()?.is_dir() {
                // Prune a whole day (or month/year) folder as soon as its date is known.
                if let Some(d) = path_date(&relative) {
                    if !range.contains(d) {
                        continue;
                    }
                }
                walk(&path, root, range, out)?;
            } else if name.ends_with(".parquet") && path_date(&relative).is_none_or(|d| range.contains(d)) {
                out.push(path);
            }
        }
        Ok(())
    }
    if !root.is_dir() {
        anyhow::bail!("{} is not a table folder (expected OUT/<table>, e.g. out/events)", root.display());
    }
    let mut out = Vec::new();
    walk(root, root, range, &mut out)?;
    out.sort();
    Ok(out)
}

/// Reads `columns` (in that order) of every file, as record batches.
pub fn read_columns(files: &[PathBuf], columns: &[&str]) -> anyhow::Result<Vec<RecordBatch>> {
    let mut batches = Vec::new();
    for f in files {
        let file = std::fs::File::open(f).with_context(|| format!("cannot open {}", f.display()))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).with_context(|| format!("{} is not Parquet", f.display()))?;
        let mask = ProjectionMask::columns(builder.parquet_schema(), columns.iter().copied());
        let reader = builder.with_projection(mask).with_batch_size(64 * 1024).build()?;
        for b in reader {
            let b = b.with_context(|| format!("cannot decode {}", f.display()))?;
            // Reorder to the requested column order.
            let schema = b.schema();
            let indices: Vec<usize> = columns
                .iter()
                .map(|c| schema.index_of(c).with_context(|| format!("{} has no column {c}", f.display())))
                .collect::<anyhow::Result<_>>()?;
            batches.push(b.project(&indices)?);
        }
    }
    Ok(batches)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_come_from_hive_segments() {
        let p = Path::new("year=2025/month=11/day=03/hour=04/part-00000.parquet");
        assert_eq!(path_date(p), NaiveDate::from_ymd_opt(2025, 11, 3));
        assert_eq!(path_date(Path::new("year=2025/month=11")), None);
        let r = DateRange { from: NaiveDate::from_ymd_opt(2025, 11, 3), to: NaiveDate::from_ymd_opt(2025, 11, 4) };
        assert!(r.contains(NaiveDate::from_ymd_opt(2025, 11, 4).unwrap()));
        assert!(!r.contains(NaiveDate::from_ymd_opt(2025, 11, 5).unwrap()));
    }
}
