//! Object stores behind the one table-store interface, and the one place where an output URL
//! becomes a store ([`open`]).
//!
//! | URL | store |
//! |---|---|
//! | `PATH`, `file://PATH` | [`super::LocalStore`]: a local folder (rename is atomic) |
//! | `s3://BUCKET[/PREFIX]` | any S3-compatible service through `object_store`: `S3_ENDPOINT` (or `AWS_ENDPOINT`), `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, path-style requests (`S3_VIRTUAL_HOSTED=true` for virtual-hosted style) |
//! | `memory://` | an in-memory store, for tests |
//!
//! Every request is retried with exponential backoff (100 ms doubling to 5 s) for up to
//! [`RETRY_FOR`] on transient errors (connection refused or reset, timeouts, 5xx), so a
//! server that restarts or pauses does not fail the job. Files larger than
//! [`MULTIPART_BYTES`] are uploaded in parts. An object store has no rename: `rename` copies
//! then deletes, which the commit protocol tolerates (publishing is idempotent).
//!
//! Two layers of retries: `object_store` retries each HTTP request, but not one that timed
//! out if it deems the request non-idempotent (S3's DeleteObjects is a `POST`, and every
//! rename ends with one), nor a response cut off while its body is read. This store then
//! repeats the whole operation on any transport error, within the same [`RETRY_FOR`]. That is
//! safe because every operation here is idempotent by construction: puts write bytes that
//! depend on the input alone, deleting a missing key succeeds, and a rename whose source is
//! gone but whose target exists already happened (the copy of an earlier attempt landed).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{BlockingRetryable, ExponentialBuilder};

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{BackoffConfig, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig, WriteMultipart};

use super::store::{LocalStore, StoreError, TableStore};

/// How long a request is retried before the error is reported.
pub const RETRY_FOR: Duration = Duration::from_secs(180);

/// The first wait before a retry; each next wait doubles, up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_millis(100);

/// The longest wait between two retries.
const BACKOFF_MAX: Duration = Duration::from_secs(5);

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
            return Err(StoreError::Url {
                url: url.to_owned(),
                problem: format!(
                    "unknown scheme {scheme}://: use a path, file://PATH, s3://BUCKET/PREFIX or memory://"
                ),
            });
        }
    }
    Ok(Arc::new(LocalStore::new(url.strip_prefix("file://").unwrap_or(url))?))
}

fn retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig { init_backoff: BACKOFF_MIN, max_backoff: BACKOFF_MAX, base: 2.0 },
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
            .map_err(|e| StoreError::Url {
                url: url.to_owned(),
                problem: format!("cannot start the I/O runtime: {e}"),
            })?;
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
        StoreError::Object {
            action,
            path: format!("{}/{path}", self.url.trim_end_matches('/')),
            message: e.to_string(),
        }
    }

    /// Runs `op` to completion on the I/O runtime, again (with backoff) while it fails on the
    /// transport, for up to [`RETRY_FOR`] in all (see the module header: every operation of
    /// this store is idempotent).
    fn run<T, Fut>(&self, action: &'static str, path: &str, op: impl Fn() -> Fut) -> Result<T, object_store::Error>
    where
        Fut: Future<Output = Result<T, object_store::Error>>,
    {
        let started = Instant::now();
        let backoff = ExponentialBuilder::default()
            .with_min_delay(BACKOFF_MIN)
            .with_max_delay(BACKOFF_MAX)
            .with_factor(2.0)
            .without_max_times();
        (|| self.runtime.block_on(op()))
            .retry(backoff)
            .when(|e| is_transport(e) && started.elapsed() < RETRY_FOR)
            .notify(|e, after| tracing::warn!(store = %self.url, action, path, error = %e, retry_in = ?after, "object store request failed on the transport (retrying)"))
            .call()
    }
}

/// Whether `e` failed on the way to or from the server (a timeout, a reset or refused
/// connection, a response cut off), as opposed to an answer of the server.
fn is_transport(e: &object_store::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.downcast_ref::<object_store::client::HttpError>().is_some() {
            return true;
        }
        source = s.source();
    }
    false
}

impl TableStore for ObjectTableStore {
    fn put(&self, path: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let key = self.key(path);
        let payload = bytes::Bytes::copy_from_slice(bytes);
        self.run("write", path, || async {
            if payload.len() < MULTIPART_BYTES {
                self.store.put(&key, PutPayload::from(payload.clone())).await.map(|_| ())
            } else {
                let upload = self.store.put_multipart(&key).await?;
                let mut writer = WriteMultipart::new_with_chunk_size(upload, 8 << 20);
                writer.put(payload.clone());
                writer.finish().await.map(|_| ())
            }
        })
        .map_err(|e| self.error("write", path, e))
    }

    fn get(&self, path: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = self.key(path);
        match self.run("read", path, || async { self.store.get(&key).await?.bytes().await }) {
            Ok(b) => Ok(Some(b.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error("read", path, e)),
        }
    }

    fn rename(&self, from: &str, to: &str) -> Result<(), StoreError> {
        // Copy, then delete, each repeated on its own: a repeated whole rename would fail
        // to copy a source that its first attempt had already deleted.
        let (f, t) = (self.key(from), self.key(to));
        match self.run("rename", from, || self.store.copy(&f, &t)) {
            Ok(()) => {}
            // An earlier attempt's copy and delete landed, but their answers were lost.
            Err(object_store::Error::NotFound { .. }) if self.exists(to)? => return Ok(()),
            Err(e) => return Err(self.error("rename", from, e)),
        }
        self.delete(from)
    }

    fn delete(&self, path: &str) -> Result<(), StoreError> {
        let key = self.key(path);
        match self.run("delete", path, || self.store.delete(&key)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error("delete", path, e)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let key = self.key(prefix);
        let metas: Vec<object_store::ObjectMeta> = self
            .run("list", prefix, || self.store.list(Some(&key)).try_collect())
            .map_err(|e| self.error("list", prefix, e))?;
        let mut out: Vec<String> = metas.iter().map(|m| self.relative(&m.location)).collect();
        out.sort();
        Ok(out)
    }

    fn exists(&self, path: &str) -> Result<bool, StoreError> {
        let key = self.key(path);
        match self.run("look up", path, || self.store.head(&key)) {
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
    use crate::sink::commit::{
        commit, load, pending_path, recover, CheckpointStore, CommitRecord, CHECKPOINT_DIR, CHECKPOINT_VERSION,
    };

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
        let records = CheckpointStore {
            store: Arc::new(ObjectTableStore::new(memory, "checkpoints/run", "memory://").unwrap()),
            dir: String::new(),
        };
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
            input: None,
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

/// A store whose server performs requests but whose answers get lost on the way back (a
/// frozen or restarting S3 server, seen from the client): the retries of [`ObjectTableStore`]
/// must still leave exactly the intended objects.
#[cfg(test)]
mod lost_answers {
    use std::collections::HashMap;
    use std::fmt;
    use std::sync::Mutex;

    use futures::stream::{BoxStream, StreamExt};
    use object_store::client::{HttpError, HttpErrorKind};
    use object_store::memory::InMemory;
    use object_store::{
        CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, PutMultipartOptions, PutOptions,
        PutResult,
    };

    use super::*;

    /// Performs every request on an in-memory store, then reports a transport timeout
    /// instead of the answer for the first `lose[op]` requests of each kind.
    #[derive(Debug, Default)]
    struct LostAnswers {
        inner: InMemory,
        lose: Arc<Mutex<HashMap<&'static str, usize>>>,
    }

    impl LostAnswers {
        fn losing(lose: &[(&'static str, usize)]) -> Arc<Self> {
            Arc::new(LostAnswers { inner: InMemory::new(), lose: Arc::new(Mutex::new(lose.iter().copied().collect())) })
        }
    }

    fn lose<T>(
        lose: &Mutex<HashMap<&'static str, usize>>, op: &'static str, answer: object_store::Result<T>,
    ) -> object_store::Result<T> {
        let mut lose = lose.lock().unwrap();
        match lose.get_mut(op) {
            Some(n) if *n > 0 => {
                *n -= 1;
                let timeout = HttpError::new(HttpErrorKind::Timeout, std::io::Error::other("operation timed out"));
                Err(object_store::Error::Generic { store: "lost-answers", source: Box::new(timeout) })
            }
            _ => answer,
        }
    }

    impl fmt::Display for LostAnswers {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "LostAnswers")
        }
    }

    #[async_trait::async_trait]
    impl ObjectStore for LostAnswers {
        async fn put_opts(
            &self, location: &Path, payload: PutPayload, opts: PutOptions,
        ) -> object_store::Result<PutResult> {
            lose(&self.lose, "put", self.inner.put_opts(location, payload, opts).await)
        }
        async fn put_multipart_opts(
            &self, location: &Path, opts: PutMultipartOptions,
        ) -> object_store::Result<Box<dyn MultipartUpload>> {
            self.inner.put_multipart_opts(location, opts).await
        }
        async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
            self.inner.get_opts(location, options).await
        }
        fn delete_stream(
            &self, locations: BoxStream<'static, object_store::Result<Path>>,
        ) -> BoxStream<'static, object_store::Result<Path>> {
            let lost = self.lose.clone();
            self.inner.delete_stream(locations).map(move |answer| lose(&lost, "delete", answer)).boxed()
        }
        fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
            self.inner.list(prefix)
        }
        async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
            self.inner.list_with_delimiter(prefix).await
        }
        async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
            lose(&self.lose, "copy", self.inner.copy_opts(from, to, options).await)
        }
    }

    #[test]
    fn lost_answers_are_retried_and_leave_exactly_the_intended_objects() {
        let server = LostAnswers::losing(&[("put", 2), ("copy", 1), ("delete", 2)]);
        let store = ObjectTableStore::new(server.clone(), "out", "memory://lost").unwrap();
        store.put("t/_a.parquet.pending", b"rows").unwrap();
        store.rename("t/_a.parquet.pending", "t/a.parquet").unwrap();
        assert_eq!(store.list("t").unwrap(), vec!["t/a.parquet"]);
        assert_eq!(store.get("t/a.parquet").unwrap().as_deref(), Some(&b"rows"[..]));
        assert!(server.lose.lock().unwrap().values().all(|n| *n == 0), "every lost answer was met");
        // A rename repeated after its copy and delete both landed is done, not an error.
        store.rename("t/_a.parquet.pending", "t/a.parquet").unwrap();
        assert_eq!(store.list("t").unwrap(), vec!["t/a.parquet"]);
        // A rename of a file that never existed is still an error that names it.
        let err = store.rename("t/_b.parquet.pending", "t/b.parquet").unwrap_err().to_string();
        assert!(err.contains("memory://lost/t/_b.parquet.pending"), "{err}");
    }

    #[test]
    fn answers_of_the_server_are_not_retried() {
        assert!(!is_transport(&object_store::Error::NotFound { path: "x".into(), source: "no such key".into() }));
        assert!(!is_transport(&object_store::Error::Generic { store: "S3", source: "403 Forbidden".into() }));
        let timeout = HttpError::new(HttpErrorKind::Timeout, std::io::Error::other("timed out"));
        assert!(is_transport(&object_store::Error::Generic { store: "S3", source: Box::new(timeout) }));
    }
}
