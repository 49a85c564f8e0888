//! Object stores behind the one table-store interface, and the one place where an output URL
//! becomes a store ([`open`]).
//!
//! | URL | store |
//! |---|---|
//! | `PATH`, `file://PATH` | [`LocalStore`](super::LocalStore): a local folder (rename is atomic) |
//! | `s3://BUCKET[/PREFIX]` | any S3-compatible service through `object_store`: `S3_ENDPOINT` (or `AWS_ENDPOINT`), `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, path-style requests (`S3_VIRTUAL_HOSTED=true` for virtual-hosted style) |
//! | `memory://` | an in-memory store, for tests |
//!
//! Every request is retried with exponential backoff (100 ms doubling to 5 s) for up to
//! [`RETRY_FOR`] on transient errors (connection refused or reset, timeouts, 5xx), so a
//! server that restarts or pauses does not fail the job. Files larger than
//! [`MULTIPART_BYTES`] are uploaded in parts. An object store has no rename: `rename` copies
//! then deletes, which the commit protocol tolerates (publishing is idempotent).

use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{BackoffConfig, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig, WriteMultipart};

use super::store::{LocalStore, StoreError, TableStore};

/// How long a request is retried before the error is reported.
pub const RETRY_FOR: Duration = Duration::from_secs(180);

/// Files at least this large are uploaded with a multipart upload.
pub const MULTIPART_BYTES: usize = 16 << 20;

/// Opens the store an output URL names; the error says which URL forms are understood.
pub fn open(url: &str) -> Result<Arc<dyn TableStore>, StoreError> {
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(StoreError::Url { url: url.to_owned(), problem: "no bucket: use s3://BUCKET/PREFIX".into() });
        }
        let mut builder = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket).with_retry(retry());
        let endpoint = std::env::var("S3_ENDPOINT").or_else(|_| std::env::var("AWS_ENDPOINT")).ok();
        if let Some(endpoint) = endpoint {
            builder = builder.with_allow_http(endpoint.starts_with("http://")).with_endpoint(endpoint);
        }
        let virtual_hosted = std::env::var("S3_VIRTUAL_HOSTED").is_ok_and(|v| v == "true" || v == "1");
        builder = builder.with_virtual_hosted_style_request(virtual_hosted);
        if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_err() {
            builder = builder.with_region("us-east-1");
        }
        let store = builder.build().map_err(|e| StoreError::Url {
            url: url.to_owned(),
            problem: format!("{e} (set S3_ENDPOINT, AWS_REGION, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"),
        })?;
        return Ok(Arc::new(ObjectTableStore::new(Arc::new(store), prefix, url)?));
    }
    if url.starts_with("memory://") {
        return Ok(Arc::new(ObjectTableStore::new(Arc::new(object_store::memory::InMemory::new()), "", url)?));
    }
    if let Some((scheme, _)) = url.split_once("://") {
        if scheme != "file" {
            return Err(StoreError::Url { url: url.to_owned(), problem: format!("unknown scheme {scheme}://: use a path, file://PATH, s3://BUCKET/PREFIX or memory://") });
        }
    }
    Ok(Arc::new(LocalStore::new(url.strip_prefix("file://").unwrap_or(url))?))
}

fn retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig { init_backoff: Duration::from_millis(100), max_backoff: Duration::from_secs(5), base: 2.0 },
        max_retries: 100,
        retry_timeout: RETRY_FOR,
    }
}

/// A table store over an `object_store` store, under a key prefix. Calls block the caller
/// (a worker thread) on a small private runtime.
pub struct ObjectTableStore {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    url: String,
    runtime: tokio::runtime::Runtime,
}

impl ObjectTableStore {
    /// A store of the files under `prefix` in `store`; `url` names it in messages.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str, url: &str) -> Result<Self, StoreError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("object-store")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Url { url: url.to_owned(), problem: format!("cannot start the I/O runtime: {e}") })?;
        Ok(ObjectTableStore { store, prefix: prefix.trim_matches('/').to_owned(), url: url.to_owned(), runtime })
    }

    fn key(&self, path: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(path)
        } else {
            Path::from(format!("{}/{path}", self.prefix))
        }
    }

    fn relative(&self, key: &Path) -> String {
        let k = key.as_ref();
        if self.prefix.is_empty() {
            k.to_owned()
        } else {
            k.strip_prefix(&self.prefix).map(|r| r.trim_start_matches('/').to_owned()).unwrap_or_else(|| k.to_owned())
        }
    }

    fn error(&self, action: &'static str, path: &str, e: object_store::Error) -> StoreError {
        StoreError::Object { action, path: format!("{}/{path}", self.url.trim_end_matches('/')), message: e.to_string() }
    }
}

impl TableStore for ObjectTableStore {
    fn put(&self, path: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let key = self.key(path);
        self.runtime
            .block_on(async {
                if bytes.len() < MULTIPART_BYTES {
                    self.store.put(&key, PutPayload::from(bytes.to_vec())).await.map(|_| ())
                } else {
                    let upload = self.store.put_multipart(&key).await?;
                    let mut writer = WriteMultipart::new_with_chunk_size(upload, 8 << 20);
                    writer.write(bytes);
                    writer.finish().await.map(|_| ())
                }
            })
            .map_err(|e| self.error("write", path, e))
    }

    fn get(&self, path: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = self.key(path);
        match self.runtime.block_on(async { self.store.get(&key).await?.bytes().await }) {
            Ok(b) => Ok(Some(b.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error("read", path, e)),
        }
    }

    fn rename(&self, from: &str, to: &str) -> Result<(), StoreError> {
        let (f, t) = (self.key(from), self.key(to));
        self.runtime.block_on(self.store.rename(&f, &t)).map_err(|e| self.error("rename", from, e))
    }

    fn delete(&self, path: &str) -> Result<(), StoreError> {
        match self.runtime.block_on(self.store.delete(&self.key(path))) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error("delete", path, e)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let key = self.key(prefix);
        let metas: Vec<object_store::ObjectMeta> = self.runtime.block_on(self.store.list(Some(&key)).try_collect()).map_err(|e| self.error("list", prefix, e))?;
        let mut out: Vec<String> = metas.iter().map(|m| self.relative(&m.location)).collect();
        out.sort();
        Ok(out)
    }

    fn exists(&self, path: &str) -> Result<bool, StoreError> {
        match self.runtime.block_on(self.store.head(&self.key(path))) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.error("look up", path, e)),
        }
    }

    fn describe(&self) -> String {
        self.url.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::commit::{commit, load, pending_path, recover, CheckpointStore, CommitRecord, CHECKPOINT_DIR, CHECKPOINT_VERSION};

    #[test]
    fn urls_resolve_in_one_place_and_bad_ones_name_the_fix() {
        assert!(open("memory://").is_ok());
        let dir = tempfile::tempdir().unwrap();
        assert!(open(&format!("file://{}", dir.path().display())).is_ok());
        let err = open("ftp://x/y").err().unwrap().to_string();
        assert!(err.contains("ftp://") && err.contains("s3://BUCKET/PREFIX"), "{err}");
        assert!(open("s3://").err().unwrap().to_string().contains("no bucket"));
    }

    #[test]
    fn the_commit_protocol_runs_on_an_object_store_under_a_prefix_with_a_separate_checkpoint() {
        let memory = Arc::new(object_store::memory::InMemory::new());
        let store = ObjectTableStore::new(memory.clone(), "out/run", "memory://").unwrap();
        let records = CheckpointStore { store: Arc::new(ObjectTableStore::new(memory, "checkpoints/run", "memory://").unwrap()), dir: String::new() };
        store.put(&pending_path("t/h=1/a.parquet"), b"a").unwrap();
        store.put(&pending_path("t/h=2/b.parquet"), b"b").unwrap();
        let big = vec![7u8; MULTIPART_BYTES + 1];
        store.put("t/big", &big).unwrap();
        assert_eq!(store.get("t/big").unwrap().map(|b| b.len()), Some(big.len()));
        store.delete("t/big").unwrap();
        let record = CommitRecord {
            version: CHECKPOINT_VERSION,
            epoch: 1,
            frontier_minute: None,
            files: vec!["t/h=1/a.parquet".into()],
            resume: Default::default(),
            replaced: vec![],
            positions: Default::default(),
            watermarks: Default::default(),
            committed_at_micros: 0,
        };
        commit(&store, &records, &record).unwrap();
        assert_eq!(records.store.list("").unwrap(), vec!["commit-0000000001.json"]);
        assert!(store.list(CHECKPOINT_DIR).unwrap().is_empty(), "the records live in the checkpoint location only");
        let checkpoint = load(&records).unwrap();
        assert_eq!(checkpoint.next_epoch(), 2);
        assert_eq!(recover(&store, &records, &checkpoint, &["t"]).unwrap().deleted, 1);
        assert_eq!(store.list("t").unwrap(), vec!["t/h=1/a.parquet"]);
        assert_eq!(store.get("t/h=1/a.parquet").unwrap().as_deref(), Some(&b"a"[..]));
        assert!(store.exists("t/h=1/a.parquet").unwrap() && !store.exists("t/h=2/b.parquet").unwrap());
    }
}
