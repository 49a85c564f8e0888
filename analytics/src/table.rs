//! Reading a committed table through the engine's own store layer, with hive-partition
//! pruning by date and Parquet column projection.
//!
//! A table is a folder `year=YYYY/month=MM/day=DD[/hour=HH]/part-*.parquet` in a
//! [`TableStore`]: a local folder, or an object store (`s3://BUCKET/PREFIX`, `memory://`),
//! opened by [`connectors::sink::object::open`] exactly as the engine opens its output. A
//! file or folder whose name starts with `_` or `.` is uncommitted and skipped (as DuckDB,
//! Spark and pyarrow skip it). When the date range is bounded only the folders of its dates
//! are listed; otherwise the table is listed once and filtered by the date in each path.
//! Each file is fetched whole ([`TableStore::get`]) and only the requested columns are
//! decoded; files are decoded in parallel, and results always come back in file order, so
//! nothing depends on thread scheduling.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema};
use chrono::{Datelike, NaiveDate};
use connectors::sink::object::open;
use connectors::sink::TableStore;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;

/// Bounded ranges of at most this many days are listed one day folder at a time; longer
/// ones are listed whole and filtered (one listing beats thousands of empty ones).
const MAX_DAYS_LISTED_SEPARATELY: i64 = 400;

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

    /// Every date of a bounded range, if it has both ends and is short enough to list.
    fn dates(&self) -> Option<Vec<NaiveDate>> {
        let (from, to) = (self.from?, self.to?);
        if (to - from).num_days() >= MAX_DAYS_LISTED_SEPARATELY {
            return None;
        }
        Some(from.iter_days().take_while(|d| *d <= to).collect())
    }
}

/// The date a hive path's `year=/month=/day=` segments name, if they all appear.
pub fn path_date(relative: &str) -> Option<NaiveDate> {
    let mut ymd = [None; 3];
    for seg in relative.split('/') {
        for (i, key) in ["year=", "month=", "day="].iter().enumerate() {
            if let Some(v) = seg.strip_prefix(key) {
                ymd[i] = v.parse::<u32>().ok();
            }
        }
    }
    NaiveDate::from_ymd_opt(ymd[0]? as i32, ymd[1]?, ymd[2]?)
}

/// The hive folder of a date, as the engine names it (`year=2025/month=11/day=03`).
pub fn date_folder(d: NaiveDate) -> String {
    format!("year={:04}/month={:02}/day={:02}", d.year(), d.month(), d.day())
}

/// Whether a table-relative path is a committed Parquet file: no segment starts with `_`
/// or `.`, and it ends in `.parquet`.
pub fn is_committed(relative: &str) -> bool {
    relative.ends_with(".parquet") && relative.split('/').all(|s| !s.starts_with('_') && !s.starts_with('.'))
}

/// Opens the store a URL names, for reading: a path, `file://PATH`, `s3://BUCKET/PREFIX` or
/// `memory://`. A local folder must exist (opening a store would create it).
pub fn open_store(url: &str) -> crate::Result<Arc<dyn TableStore>> {
    if !url.contains("://") || url.starts_with("file://") {
        let path = std::path::Path::new(url.strip_prefix("file://").unwrap_or(url));
        if !path.is_dir() {
            return Err(crate::Error::Table(format!(
                "{} is not a folder (pass a table folder such as out/events, or an output folder such as out)",
                path.display()
            )));
        }
    }
    open(url).map_err(|e| crate::Error::read(format!("cannot open {url}"), e))
}

/// Which columns of a file to decode, and how.
#[derive(Copy, Clone, Debug, Default)]
pub struct Columns<'a> {
    /// These columns, in this order; `None`: every column, in file order.
    pub names: Option<&'a [&'a str]>,
    /// String columns among them to decode as dictionaries (`Int32` keys) rather than strings.
    pub dictionary: &'a [&'a str],
}

impl<'a> Columns<'a> {
    /// Every column, as written.
    pub const ALL: Columns<'static> = Columns { names: None, dictionary: &[] };

    /// Only `names`, in that order.
    pub fn only(names: &'a [&'a str]) -> Self {
        Columns { names: Some(names), dictionary: &[] }
    }
}

/// One table of a store: its folder in the store and the URL that names it in messages.
#[derive(Clone)]
pub struct Table {
    store: Arc<dyn TableStore>,
    folder: String,
    url: String,
}

impl Table {
    /// The table at `url` (`out/events`, `file:///data/out/events`, `s3://bucket/run/events`).
    pub fn open(url: &str) -> crate::Result<Table> {
        Ok(Table { store: open_store(url)?, folder: String::new(), url: url.to_owned() })
    }

    /// The table in the folder `name` of an output store (`events`, `daily_p95`, ...);
    /// `output_url` names the store in messages.
    pub fn in_output(store: &Arc<dyn TableStore>, output_url: &str, name: &str) -> Table {
        Table { store: Arc::clone(store), folder: name.trim_matches('/').to_owned(), url: join_url(output_url, name) }
    }

    /// The URL of the table, for messages.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn key(&self, relative: &str) -> String {
        if self.folder.is_empty() {
            relative.to_owned()
        } else if relative.is_empty() {
            self.folder.clone()
        } else {
            format!("{}/{relative}", self.folder)
        }
    }

    fn list(&self, relative: &str) -> crate::Result<Vec<String>> {
        let strip = if self.folder.is_empty() { 0 } else { self.folder.len() + 1 };
        let listed = self
            .store
            .list(&self.key(relative))
            .map_err(|e| crate::Error::read(format!("cannot list {}", self.url), e))?;
        Ok(listed.into_iter().filter_map(|p| p.get(strip..).map(str::to_owned)).collect())
    }

    /// The committed part files whose partition date is in `range`, relative to the table
    /// folder, sorted.
    pub fn committed_files(&self, range: DateRange) -> crate::Result<Vec<String>> {
        let listed = match range.dates() {
            Some(dates) => {
                let mut all = Vec::new();
                for d in dates {
                    all.extend(self.list(&date_folder(d))?);
                }
                all
            }
            None => self.list("")?,
        };
        let mut files: Vec<String> =
            listed.into_iter().filter(|p| is_committed(p) && path_date(p).is_none_or(|d| range.contains(d))).collect();
        files.sort();
        files.dedup();
        Ok(files)
    }

    /// Reads `columns` of one file, as record batches.
    pub fn read_file(&self, file: &str, columns: Columns<'_>) -> crate::Result<Vec<RecordBatch>> {
        let url = join_url(&self.url, file);
        let bytes = self
            .store
            .get(&self.key(file))
            .map_err(|e| crate::Error::read(format!("cannot read {url}"), e))?
            .ok_or_else(|| crate::Error::Table(format!("{url} disappeared while reading")))?;
        let bytes = bytes::Bytes::from(bytes);
        let mut metadata = ArrowReaderMetadata::load(&bytes, ArrowReaderOptions::new())
            .map_err(|e| crate::Error::read(format!("{url} is not Parquet"), e))?;
        if !columns.dictionary.is_empty() {
            // Decode these string columns as dictionaries: keys and a few distinct values
            // instead of one string copied per row.
            let schema = metadata.schema();
            let fields: Vec<Field> = schema
                .fields()
                .iter()
                .map(|f| {
                    if columns.dictionary.contains(&f.name().as_str()) && f.data_type() == &DataType::Utf8 {
                        f.as_ref()
                            .clone()
                            .with_data_type(DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)))
                    } else {
                        f.as_ref().clone()
                    }
                })
                .collect();
            let hint = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
            metadata = ArrowReaderMetadata::try_new(
                Arc::clone(metadata.metadata()),
                ArrowReaderOptions::new().with_schema(hint),
            )?;
        }
        let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(bytes, metadata);
        let builder = match columns.names {
            Some(names) => {
                let mask = ProjectionMask::columns(builder.parquet_schema(), names.iter().copied());
                builder.with_projection(mask)
            }
            None => builder,
        };
        let mut batches = Vec::new();
        for b in builder.with_batch_size(64 * 1024).build()? {
            let b = b.map_err(|e| crate::Error::read(format!("cannot decode {url}"), e))?;
            match columns.names {
                Some(names) => {
                    // Reorder to the requested column order.
                    let schema = b.schema();
                    let indices: Vec<usize> = names
                        .iter()
                        .map(|c| {
                            schema.index_of(c).map_err(|e| crate::Error::read(format!("{url} has no column {c}"), e))
                        })
                        .collect::<crate::Result<_>>()?;
                    batches.push(b.project(&indices)?);
                }
                None => batches.push(b),
            }
        }
        Ok(batches)
    }

    /// Reads `columns` of every file and passes each file's batches to `f`, on up to
    /// [`threads`](crate::threads) threads; returns `f`'s results in file order.
    pub fn map_files<T: Send>(
        &self, files: &[String], columns: Columns<'_>, f: impl Fn(Vec<RecordBatch>) -> crate::Result<T> + Sync,
    ) -> crate::Result<Vec<T>> {
        crate::parallel_map(files, |file| self.read_file(file, columns).and_then(&f))
    }

    /// Reads `columns` of every file, as record batches in file order.
    pub fn read_columns(&self, files: &[String], columns: Columns<'_>) -> crate::Result<Vec<RecordBatch>> {
        Ok(self.map_files(files, columns, Ok)?.into_iter().flatten().collect())
    }
}

/// `base/name`, with one `/` between them (`memory://` + `events` is `memory://events`).
fn join_url(base: &str, name: &str) -> String {
    if base.is_empty() || base.ends_with('/') {
        format!("{base}{name}")
    } else {
        format!("{base}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_come_from_hive_segments() {
        let p = "year=2025/month=11/day=03/hour=04/part-00000.parquet";
        assert_eq!(path_date(p), NaiveDate::from_ymd_opt(2025, 11, 3));
        assert_eq!(path_date("year=2025/month=11"), None);
        let r = DateRange { from: NaiveDate::from_ymd_opt(2025, 11, 3), to: NaiveDate::from_ymd_opt(2025, 11, 4) };
        assert!(r.contains(NaiveDate::from_ymd_opt(2025, 11, 4).unwrap()));
        assert!(!r.contains(NaiveDate::from_ymd_opt(2025, 11, 5).unwrap()));
        assert_eq!(
            r.dates().unwrap().iter().map(|d| date_folder(*d)).collect::<Vec<_>>(),
            ["year=2025/month=11/day=03", "year=2025/month=11/day=04"]
        );
        assert!(DateRange { from: r.from, to: None }.dates().is_none());
    }

    #[test]
    fn uncommitted_names_are_skipped() {
        assert!(is_committed("year=2025/month=11/day=03/hour=04/part-00000.parquet"));
        assert!(!is_committed("year=2025/month=11/day=03/hour=04/_part-00000.parquet.pending"));
        assert!(!is_committed("year=2025/month=11/day=03/hour=04/_part-00000.parquet"));
        assert!(!is_committed("year=2025/.tmp/part-00000.parquet"));
        assert!(!is_committed("_checkpoint/commit-1.json"));
    }

    #[test]
    fn pruning_lists_only_the_dates_in_range_and_skips_uncommitted_files() {
        let store: Arc<dyn TableStore> = open("memory://").unwrap();
        for p in [
            "events/year=2025/month=11/day=03/hour=00/part-00000.parquet",
            "events/year=2025/month=11/day=04/hour=23/part-00000.parquet",
            "events/year=2025/month=11/day=04/hour=23/_part-00001.parquet.pending",
            "events/year=2025/month=11/day=05/hour=00/part-00000.parquet",
            "events_old/year=2025/month=11/day=04/hour=00/part-00000.parquet",
            "windows/year=2025/month=11/day=04/hour=00/part-00000.parquet",
        ] {
            store.put(p, b"x").unwrap();
        }
        let t = Table::in_output(&store, "memory://", "events");
        let day = |d| NaiveDate::from_ymd_opt(2025, 11, d);
        assert_eq!(
            t.committed_files(DateRange { from: day(4), to: day(4) }).unwrap(),
            ["year=2025/month=11/day=04/hour=23/part-00000.parquet"]
        );
        assert_eq!(t.committed_files(DateRange { from: day(4), to: None }).unwrap().len(), 2);
        assert_eq!(t.committed_files(DateRange::default()).unwrap().len(), 3);
        assert_eq!(t.url(), "memory://events");
    }
}
