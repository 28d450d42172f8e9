//! Conditional writes decided by what the store holds, not by its answer.
//!
//! A create-only or conditional put can land and still answer an error: S3
//! may send 500 or 503 after it has stored the object, and a connection can
//! drop after the store has acted. object_store then retries (a 5xx), and
//! the retry is refused because the object now exists ("already exists",
//! "precondition failed"); or it gives up (a dropped connection is not
//! retried for a conditional put) and reports a transport error. Either way
//! the answer says nothing about who wrote the object.
//!
//! [`ReadBack`] wraps every store quadrant opens, so that every conditional
//! write, quadrant's own and delta-rs' commits alike (the cycle lock, data
//! and rejects files, each Delta table's `_delta_log/N.json`, vacuum's
//! commits), is settled the same way: after any error, the object is read
//! back, and when it holds exactly the bytes this put sent, the put is this
//! writer's own and succeeded. Every object quadrant writes conditionally
//! carries its writer's identity (the run id in a lock, in a data file's
//! footer, in a Delta commit's information, with the time it was made), so
//! equal bytes mean the same writer. Anything else keeps the store's error,
//! and the caller decides (another run's object is a conflict).

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMode,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

/// A store whose conditional puts read back what is stored after an error.
#[derive(Debug)]
pub struct ReadBack {
    inner: Arc<dyn ObjectStore>,
}

impl ReadBack {
    pub fn new(inner: Arc<dyn ObjectStore>) -> ReadBack {
        ReadBack { inner }
    }

    /// The stored object's metadata when it holds exactly `sent`.
    async fn holds(&self, location: &Path, sent: &PutPayload) -> Result<Option<ObjectMeta>> {
        let got = match self.inner.get_opts(location, GetOptions::default()).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        if got.meta.size != sent.content_length() as u64 {
            return Ok(None);
        }
        let meta = got.meta.clone();
        let stored: Bytes = got.bytes().await?;
        let mut at = 0;
        for chunk in sent.iter() {
            if stored.get(at..at + chunk.len()) != Some(chunk.as_ref()) {
                return Ok(None);
            }
            at += chunk.len();
        }
        Ok(Some(meta))
    }
}

impl std::fmt::Display for ReadBack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReadBack({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for ReadBack {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        if matches!(opts.mode, PutMode::Overwrite) {
            // Repeating an overwrite is harmless: object_store retries it.
            return self.inner.put_opts(location, payload, opts).await;
        }
        let sent = payload.clone();
        let error = match self.inner.put_opts(location, payload, opts).await {
            Ok(done) => return Ok(done),
            Err(e) => e,
        };
        match self.holds(location, &sent).await {
            Ok(Some(meta)) => {
                tracing::warn!(
                    object = %location,
                    answer = %error,
                    "the store answered a conditional write with an error, but holds exactly what this run wrote: it is this run's, and done"
                );
                Ok(PutResult {
                    e_tag: meta.e_tag,
                    version: meta.version,
                })
            }
            Ok(None) => Err(error),
            Err(read) => {
                tracing::warn!(object = %location, answer = %error, read_back = %read, "a conditional write failed and what the store holds could not be read back");
                Err(error)
            }
        }
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;

    use super::*;

    /// A store whose first conditional put lands, then answers as if it had
    /// not (the retry that found its own object).
    #[derive(Debug)]
    struct LandsThenRefuses(InMemory);

    impl std::fmt::Display for LandsThenRefuses {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "LandsThenRefuses")
        }
    }

    #[async_trait]
    impl ObjectStore for LandsThenRefuses {
        async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
            self.0.put_opts(location, payload, opts).await?;
            Err(object_store::Error::AlreadyExists {
                path: location.to_string(),
                source: "the retry found the object".into(),
            })
        }
        async fn put_multipart_opts(&self, l: &Path, o: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
            self.0.put_multipart_opts(l, o).await
        }
        async fn get_opts(&self, l: &Path, o: GetOptions) -> Result<GetResult> {
            self.0.get_opts(l, o).await
        }
        fn delete_stream(&self, l: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
            self.0.delete_stream(l)
        }
        fn list(&self, p: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
            self.0.list(p)
        }
        async fn list_with_delimiter(&self, p: Option<&Path>) -> Result<ListResult> {
            self.0.list_with_delimiter(p).await
        }
        async fn copy_opts(&self, f: &Path, t: &Path, o: CopyOptions) -> Result<()> {
            self.0.copy_opts(f, t, o).await
        }
    }

    fn create() -> PutOptions {
        PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        }
    }

    #[test]
    fn a_refused_retry_of_a_put_that_landed_is_this_writers_success() {
        futures::executor::block_on(async {
            let store = ReadBack::new(Arc::new(LandsThenRefuses(InMemory::new())));
            let path = Path::from("locks/cycle=2026-Q3.json");
            let ours = PutPayload::from_iter([Bytes::from_static(b"run "), Bytes::from_static(b"a")]);
            store.put_opts(&path, ours, create()).await.unwrap();
            // Another writer's bytes at the same name stay a refusal.
            let theirs = PutPayload::from_static(b"run b");
            let refused = store.put_opts(&path, theirs, create()).await.unwrap_err();
            assert!(
                matches!(refused, object_store::Error::AlreadyExists { .. }),
                "{refused}"
            );
            assert_eq!(store.get(&path).await.unwrap().bytes().await.unwrap(), "run a");
        });
    }
}
