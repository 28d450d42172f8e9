//! URIs -> object_store: listing, reading, conditional puts and deletes on
//! `s3://`, `gs://`, `az://` / `abfss://`, `file://` and plain paths, so
//! that the same code serves the local disk and object storage.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use url::Url;

use crate::error::{Error, Result};

mod read_back;
pub use read_back::ReadBack;

/// The runtime that drives object_store's futures. polars runs its own, so
/// storage calls are always made from plain (non-async) code.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("cannot start the I/O runtime")
    })
}

/// Enters the I/O runtime, for libraries whose synchronous calls expect to
/// run inside one (delta-rs builds its log reader on the current runtime).
pub fn enter_runtime() -> tokio::runtime::EnterGuard<'static> {
    runtime().enter()
}

/// Runs a future of the storage or HTTP clients to completion.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    runtime().block_on(f)
}

/// Options for object stores from the pipeline's `[storage]` section, on
/// top of each cloud's standard environment variables. Credentials are
/// never among them: they come from the environment only.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StorageOptions {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub allow_http: Option<bool>,
    /// Any other object_store option, by its name (`virtual_hosted_style_request`, ...).
    pub extra: Vec<(String, String)>,
}

/// The object_store settings a pipeline file may set, by object_store's own
/// (canonical) key names: none carries a secret, names an identity, or says
/// where a credential is kept or exchanged (a file, a metadata, STS, MSI or
/// token endpoint). Credentials come from the environment only, because
/// every snapshot's manifest records the pipeline file. An option is allowed
/// when every store that knows its name (under any of its aliases:
/// `endpoint`, `aws_endpoint_url`, ...) reads it as one of these.
pub const NON_SECRET_KEYS: &[&str] = &[
    // Amazon S3 and S3-compatible stores
    "aws_region",
    "aws_default_region",
    "aws_endpoint",
    "aws_endpoint_url_s3",
    "aws_virtual_hosted_style_request",
    "aws_s3_express",
    "aws_imdsv1_fallback",
    "aws_unsigned_payload",
    "aws_checksum_algorithm",
    "aws_skip_signature",
    "aws_copy_if_not_exists",
    "aws_conditional_put",
    "aws_disable_tagging",
    "aws_request_payer",
    "aws_server_side_encryption",
    "aws_sse_kms_key_id",
    "aws_sse_bucket_key_enabled",
    // Azure Blob Storage / ADLS Gen2 (the account name is not a secret)
    "azure_storage_account_name",
    "azure_storage_endpoint",
    "azure_storage_use_emulator",
    "azure_use_fabric_endpoint",
    "azure_use_azure_cli",
    "azure_skip_signature",
    "azure_disable_tagging",
    // Google Cloud Storage
    "google_base_url",
    "google_skip_signature",
    // The HTTP client, for every store (a proxy URL without a password)
    "allow_http",
    "allow_invalid_certificates",
    "connect_timeout",
    "default_content_type",
    "http1_only",
    "http2_only",
    "http2_keep_alive_interval",
    "http2_keep_alive_timeout",
    "http2_keep_alive_while_idle",
    "http2_max_frame_size",
    "pool_idle_timeout",
    "pool_max_idle_per_host",
    "proxy_url",
    "proxy_ca_certificate",
    "proxy_excludes",
    "randomize_addresses",
    "timeout",
    "user_agent",
];

/// Settings that the URI already makes: set apart, they would send the
/// data to another bucket or container than the URI (and the manifest) names.
const FROM_URI_KEYS: &[&str] = &["aws_bucket", "google_bucket", "azure_container_name"];

/// What a `[storage]` option name is to quadrant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionKind {
    Allowed,
    /// An object_store option that carries a credential, names an identity
    /// or says where a credential is kept or exchanged.
    Credential,
    /// The bucket or container, which the URI names.
    FromUri,
    /// Not an object_store option at all.
    Unknown,
}

/// The canonical object_store keys a name stands for, one per store that
/// knows it (`endpoint` is both S3's `aws_endpoint` and Azure's
/// `azure_storage_endpoint`; `token` is S3's session token and Azure's
/// bearer token).
fn canonical_keys(key: &str) -> Vec<String> {
    let key = key.to_ascii_lowercase();
    let mut keys = Vec::new();
    if let Ok(k) = key.parse::<object_store::aws::AmazonS3ConfigKey>() {
        keys.push(k.as_ref().to_string());
    }
    if let Ok(k) = key.parse::<object_store::azure::AzureConfigKey>() {
        keys.push(k.as_ref().to_string());
    }
    if let Ok(k) = key.parse::<object_store::gcp::GoogleConfigKey>() {
        keys.push(k.as_ref().to_string());
    }
    keys
}

pub fn option_kind(key: &str) -> OptionKind {
    let keys = canonical_keys(key);
    if keys.is_empty() {
        OptionKind::Unknown
    } else if keys.iter().all(|k| NON_SECRET_KEYS.contains(&k.as_str())) {
        OptionKind::Allowed
    } else if keys.iter().all(|k| FROM_URI_KEYS.contains(&k.as_str())) {
        OptionKind::FromUri
    } else {
        OptionKind::Credential
    }
}

/// The names a pipeline file may use, for suggestions: each allowed key
/// with and without its store's prefix.
pub fn allowed_option_names() -> Vec<String> {
    let mut names = Vec::new();
    for key in NON_SECRET_KEYS {
        names.push(key.to_string());
        for prefix in ["aws_", "azure_storage_", "azure_", "google_"] {
            if let Some(short) = key.strip_prefix(prefix)
                && option_kind(short) == OptionKind::Allowed
                && !names.iter().any(|n| n == short)
            {
                names.push(short.to_string());
            }
        }
    }
    names
}

/// Does a URI carry a user name or password (`s3://key:secret@bucket`)?
/// In `abfss://container@account.dfs.core.windows.net`, the part before `@`
/// is the container, not a user.
pub fn has_userinfo(uri: &str) -> bool {
    Url::parse(uri)
        .is_ok_and(|u| u.password().is_some() || (!u.username().is_empty() && !matches!(u.scheme(), "abfs" | "abfss")))
}

/// Does a value from the pipeline file carry a credential: a user name or
/// password in a URL, a SAS signature or token in a query, or anything else
/// that quadrant masks when it prints?
pub fn carries_credentials(value: &str) -> bool {
    has_userinfo(value) || crate::redact::text(value) != value
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cloud {
    S3,
    Gcs,
    Azure,
}

/// What to check when a store answers an error, by the kind of store.
fn what_to_check(cloud: Option<Cloud>) -> &'static str {
    match cloud {
        Some(Cloud::S3) => {
            "that the bucket exists, and AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), AWS_REGION and AWS_ENDPOINT_URL"
        }
        Some(Cloud::Gcs) => "that the bucket exists, and GOOGLE_APPLICATION_CREDENTIALS or GOOGLE_SERVICE_ACCOUNT",
        Some(Cloud::Azure) => {
            "that the container exists, and AZURE_STORAGE_ACCOUNT_NAME with AZURE_STORAGE_ACCOUNT_KEY (or another AZURE_* credential)"
        }
        None => "that the path exists and is readable and writable by this user",
    }
}

fn cloud_of(uri: &str) -> Option<Cloud> {
    let (scheme, _) = uri.split_once("://")?;
    match scheme.to_ascii_lowercase().as_str() {
        "s3" | "s3a" => Some(Cloud::S3),
        "gs" | "gcs" => Some(Cloud::Gcs),
        "az" | "azure" | "abfs" | "abfss" | "adl" => Some(Cloud::Azure),
        _ => None,
    }
}

impl StorageOptions {
    /// The options as object_store keys for one cloud.
    fn pairs(&self, cloud: Cloud) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(endpoint) = &self.endpoint {
            let key = if cloud == Cloud::Gcs { "base_url" } else { "endpoint" };
            out.push((key.to_string(), endpoint.clone()));
        }
        if let (Some(region), Cloud::S3) = (&self.region, cloud) {
            out.push(("region".to_string(), region.clone()));
        }
        if let Some(allow) = self.allow_http {
            out.push(("allow_http".to_string(), allow.to_string()));
        }
        out.extend(self.extra.iter().cloned());
        out
    }
}

// Transient failures (timeouts, 5xx, throttling) are retried with
// exponential backoff, by the store and by polars' reads of the inputs alike
// (polars' own default is 2 retries within 10 s); 4xx answers such as 403 or
// 404 fail at once.
const MAX_RETRIES: usize = 6;
const RETRY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

fn retry_config() -> object_store::RetryConfig {
    object_store::RetryConfig {
        max_retries: MAX_RETRIES,
        retry_timeout: RETRY_TIMEOUT,
        ..Default::default()
    }
}

/// polars' options for scanning a URI, matching the store's.
pub fn polars_cloud_options(
    uri: &str,
    options: &StorageOptions,
) -> Result<Option<polars::prelude::cloud::CloudOptions>> {
    let Some(cloud) = cloud_of(uri) else {
        return Ok(None);
    };
    let scheme = polars::prelude::CloudScheme::from_path(uri);
    let mut cloud_options = polars::prelude::cloud::CloudOptions::from_untyped_config(scheme, options.pairs(cloud))
        .map_err(|e| Error::config(format!("[storage] options for `{uri}`: {e}")))?;
    cloud_options.retry_config.max_retries = Some(MAX_RETRIES);
    cloud_options.retry_config.retry_timeout = Some(RETRY_TIMEOUT);
    Ok(Some(cloud_options))
}

/// A folder in some store: where inputs are listed or snapshots written.
#[derive(Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    options: StorageOptions,
    /// The root as a URI, for messages and for polars (`s3://b/x`, or a
    /// plain absolute path on the local disk).
    root_uri: String,
    /// The root inside the store.
    root: Path,
    /// The cloud, or `None` for the local disk.
    cloud: Option<Cloud>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.root_uri)
    }
}

/// Does this URI name a place in object storage rather than the local disk?
pub fn is_cloud(uri: &str) -> bool {
    uri.split_once("://")
        .is_some_and(|(scheme, _)| !scheme.eq_ignore_ascii_case("file"))
}

impl Store {
    /// Opens the folder (or file) a URI names. Credentials and endpoints come
    /// from each cloud's standard environment variables.
    pub fn open(uri: &str, options: &StorageOptions) -> Result<Store> {
        let trimmed = uri.trim_end_matches('/');
        if !is_cloud(trimmed) {
            let fs_path = match trimmed.strip_prefix("file://") {
                Some(_) => Url::parse(trimmed)
                    .ok()
                    .and_then(|u| u.to_file_path().ok())
                    .ok_or_else(|| Error::config(format!("`{uri}` is not a valid file:// URI")))?,
                None if trimmed.is_empty() => std::path::PathBuf::from("/"),
                None => std::path::absolute(trimmed)
                    .map_err(|e| Error::config(format!("`{uri}` is not a usable path: {e}")))?,
            };
            let root = Path::from_absolute_path(&fs_path)
                .map_err(|e| Error::config(format!("`{uri}` is not a usable path: {e}")))?;
            return Ok(Store {
                inner: Arc::new(ReadBack::new(Arc::new(object_store::local::LocalFileSystem::new()))),
                options: options.clone(),
                root_uri: fs_path.to_string_lossy().trim_end_matches('/').to_string(),
                root,
                cloud: None,
            });
        }
        if carries_credentials(trimmed) {
            return Err(Error::config(format!(
                "`{}`: credentials in a URI are not accepted; set them in the environment (AWS_*, GOOGLE_*, AZURE_*)",
                crate::redact::text(&crate::redact::uri(trimmed))
            )));
        }
        let url = Url::parse(trimmed).map_err(|e| Error::config(format!("`{uri}` is not a valid URI: {e}")))?;
        let scheme = url.scheme().to_ascii_lowercase();
        let build_error = |e: object_store::Error| Error::config(format!("cannot open `{uri}`: {e}"));
        let bad_option = |key: &str| {
            Error::config(format!(
                "[storage] option `{key}` is not an object_store option for `{scheme}://`"
            ))
        };
        let Some(cloud) = cloud_of(trimmed) else {
            return Err(Error::config(format!(
                "`{uri}`: unsupported scheme `{scheme}://`; use s3://, gs://, az://, abfss://, file:// or a plain path"
            )));
        };
        let pairs = options.pairs(cloud);
        let inner: Arc<dyn ObjectStore> = match cloud {
            Cloud::S3 => {
                let mut b = object_store::aws::AmazonS3Builder::from_env()
                    .with_url(trimmed)
                    .with_retry(retry_config());
                for (k, v) in &pairs {
                    b = b.with_config(k.parse().map_err(|_| bad_option(k))?, v);
                }
                Arc::new(b.build().map_err(build_error)?)
            }
            Cloud::Gcs => {
                let mut b = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_url(trimmed)
                    .with_retry(retry_config());
                for (k, v) in &pairs {
                    b = b.with_config(k.parse().map_err(|_| bad_option(k))?, v);
                }
                Arc::new(b.build().map_err(build_error)?)
            }
            Cloud::Azure => {
                let mut b = object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_url(trimmed)
                    .with_retry(retry_config());
                for (k, v) in &pairs {
                    b = b.with_config(k.parse().map_err(|_| bad_option(k))?, v);
                }
                Arc::new(b.build().map_err(build_error)?)
            }
        };
        let inner: Arc<dyn ObjectStore> = Arc::new(ReadBack::new(inner));
        // The bucket or container is the host; the rest is the root.
        let root =
            Path::from_url_path(url.path()).map_err(|e| Error::config(format!("`{uri}` is not a valid URI: {e}")))?;
        Ok(Store {
            inner,
            options: options.clone(),
            root_uri: trimmed.to_string(),
            root,
            cloud: Some(cloud),
        })
    }

    pub fn uri(&self) -> &str {
        &self.root_uri
    }

    /// polars' options for reading files of this store.
    pub fn cloud_options(&self) -> Result<Option<polars::prelude::cloud::CloudOptions>> {
        polars_cloud_options(&self.root_uri, &self.options)
    }

    pub fn is_local(&self) -> bool {
        self.cloud.is_none()
    }

    /// The object store itself, rooted at the bucket, container or
    /// filesystem root (not at this store's root), for delta-rs.
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.inner.clone()
    }

    /// A path below the root; `rel` uses `/` between parts.
    pub fn path(&self, rel: &str) -> Path {
        let mut path = self.root.clone();
        for part in rel.split('/').filter(|p| !p.is_empty()) {
            path = path.clone().join(part);
        }
        path
    }

    /// The URI of a path in this store, as polars and messages want it.
    pub fn uri_of(&self, path: &Path) -> String {
        let rel = path
            .as_ref()
            .strip_prefix(self.root.as_ref())
            .unwrap_or(path.as_ref())
            .trim_start_matches('/');
        if rel.is_empty() {
            self.root_uri.clone()
        } else {
            format!("{}/{rel}", self.root_uri)
        }
    }

    /// The part of `path` below the root.
    pub fn relative<'a>(&self, path: &'a Path) -> &'a str {
        path.as_ref()
            .strip_prefix(self.root.as_ref())
            .unwrap_or(path.as_ref())
            .trim_start_matches('/')
    }

    /// A store's error, with what to check on this kind of store.
    fn error(&self, context: String) -> impl FnOnce(object_store::Error) -> Error {
        let check = what_to_check(self.cloud);
        move |source| Error::storage(context, &source, check)
    }

    /// Reads an object, or `None` when it does not exist.
    pub fn get(&self, path: &Path) -> Result<Option<Bytes>> {
        block_on(async {
            match self.inner.get(path).await {
                Ok(got) => got.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .map_err(self.error(format!("cannot read `{}`", self.uri_of(path))))
    }

    pub fn head(&self, path: &Path) -> Result<Option<ObjectMeta>> {
        block_on(async {
            match self.inner.head(path).await {
                Ok(meta) => Ok(Some(meta)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .map_err(self.error(format!("cannot read `{}`", self.uri_of(path))))
    }

    /// Reads a byte range of an object.
    pub fn get_range(&self, path: &Path, range: std::ops::Range<u64>) -> Result<Bytes> {
        block_on(self.inner.get_range(path, range)).map_err(self.error(format!("cannot read `{}`", self.uri_of(path))))
    }

    /// Reads several byte ranges of an object (near ones in one request).
    pub fn get_ranges(&self, path: &Path, ranges: &[std::ops::Range<u64>]) -> Result<Vec<Bytes>> {
        block_on(self.inner.get_ranges(path, ranges))
            .map_err(self.error(format!("cannot read `{}`", self.uri_of(path))))
    }

    /// Overwrites an object only if it is still the version `meta` describes
    /// (`Ok(false)` when it changed). Stores without conditional updates
    /// (the local disk) overwrite: callers hold the cycle's lock anyway.
    pub fn put_if_unchanged(&self, path: &Path, bytes: Bytes, meta: &ObjectMeta) -> Result<bool> {
        if self.is_local() || meta.e_tag.is_none() {
            return self.put(path, bytes, false);
        }
        let mut version = meta.version.clone();
        if version.is_none() && self.cloud == Some(Cloud::Gcs) {
            // GCS updates on the object's generation, which object_store's
            // listing does not give: read it, and if the object is no longer
            // the one `meta` describes, it changed. (A listing may give the
            // ETag without the quotes a HEAD gives.)
            let unquoted = |m: &ObjectMeta| m.e_tag.as_deref().map(|t| t.trim_matches('"').to_string());
            match block_on(self.inner.head(path)) {
                Ok(now) if unquoted(&now) == unquoted(meta) => version = now.version,
                Ok(_) | Err(object_store::Error::NotFound { .. }) => return Ok(false),
                Err(e) => return Err(e).map_err(self.error(format!("cannot read `{}`", self.uri_of(path)))),
            }
        }
        let opts = PutOptions {
            mode: PutMode::Update(object_store::UpdateVersion {
                e_tag: meta.e_tag.clone(),
                version,
            }),
            ..Default::default()
        };
        match block_on(self.inner.put_opts(path, PutPayload::from(bytes.clone()), opts)) {
            Ok(_) => Ok(true),
            Err(object_store::Error::Precondition { .. }) | Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(object_store::Error::NotImplemented { .. }) => self.put(path, bytes, false),
            Err(e) => Err(e).map_err(self.error(format!("cannot write `{}`", self.uri_of(path)))),
        }
    }

    /// Writes an object in one atomic step: readers see all of it or none.
    /// With `create_only`, fails with `Ok(false)` when the object exists.
    pub fn put(&self, path: &Path, bytes: Bytes, create_only: bool) -> Result<bool> {
        let mode = if create_only {
            PutMode::Create
        } else {
            PutMode::Overwrite
        };
        let opts = PutOptions {
            mode,
            ..Default::default()
        };
        let result = block_on(self.inner.put_opts(path, PutPayload::from(bytes), opts));
        match result {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) if create_only => Ok(false),
            Err(object_store::Error::Precondition { .. }) if create_only => Ok(false),
            Err(e) => Err(e).map_err(self.error(format!("cannot write `{}`", self.uri_of(path)))),
        }
    }

    /// Copies an object within the store, replacing any object at `to` in
    /// one step.
    pub fn copy(&self, from: &Path, to: &Path) -> Result<()> {
        use object_store::{CopyMode, CopyOptions};
        // object_store 0.13.2 sends GCS's two copy modes the wrong way round:
        // an overwrite goes out create-only (`x-goog-if-generation-match: 0`,
        // refused when `to` exists) and a create-only copy as an overwrite
        // (apache/arrow-rs-object-store#712, fixed after 0.13.2). Asking it
        // for the other mode sends what this method means;
        // `stores::a_copy_replaces_the_object_on_every_store` fails when
        // object_store is upgraded past the fix.
        let mode = match self.cloud {
            Some(Cloud::Gcs) => CopyMode::Create,
            _ => CopyMode::Overwrite,
        };
        block_on(self.inner.copy_opts(from, to, CopyOptions::new().with_mode(mode))).map_err(self.error(format!(
            "cannot copy `{}` to `{}`",
            self.uri_of(from),
            self.uri_of(to)
        )))
    }

    /// Deletes an object; one that is already gone is not an error.
    pub fn delete(&self, path: &Path) -> Result<()> {
        // A delete can be repeated. object_store retries S3's and Azure's
        // after a lost answer, but not GCS's (not marked idempotent there):
        // on GCS an error is tried again here.
        let mut tries = 0;
        loop {
            match block_on(self.inner.delete(path)) {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => return Ok(()),
                Err(object_store::Error::Generic { .. }) if self.cloud == Some(Cloud::Gcs) && tries < 3 => tries += 1,
                Err(e) => return Err(e).map_err(self.error(format!("cannot delete `{}`", self.uri_of(path)))),
            }
        }
    }

    /// Every object below `prefix`, at any depth, sorted by path.
    pub fn list(&self, prefix: &Path) -> Result<Vec<ObjectMeta>> {
        let mut found: Vec<ObjectMeta> = block_on(self.inner.list(Some(prefix)).try_collect())
            .map_err(self.error(format!("cannot list `{}`", self.uri_of(prefix))))?;
        found.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(found)
    }
}

/// For a relative path that does not exist: where it was looked for.
fn relative_hint(uri: &str) -> String {
    if is_cloud(uri) || uri.starts_with('/') || uri.starts_with("file://") {
        return String::new();
    }
    let cwd = std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let mut hint = format!(" (a relative path, read from the current directory {cwd})");
    if uri.starts_with("fixtures/") {
        hint.push_str("; the built-in default pipeline reads the bundled fixtures/ of a quadrant checkout: run it from there, or pass --accounts and --usage (or --pipeline)");
    }
    hint
}

/// One input file, as recorded in the manifest.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct InputFile {
    pub uri: String,
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    pub modified: String,
}

/// The files an input URI names: the file itself, every Parquet file below
/// a folder (Hive trees included), or the files a glob matches. Files and
/// folders whose names start with `_` or `.` (`_SUCCESS`, `.crc`) are
/// skipped, as Spark and Hive do.
pub fn resolve_input(dataset: &str, uri: &str, options: &StorageOptions) -> Result<Vec<InputFile>> {
    // Before the URI is cut at its first glob character (a `?` starts a
    // query, where a SAS token would be).
    if is_cloud(uri) && carries_credentials(uri) {
        return Err(Error::config(format!(
            "{dataset} input `{}`: credentials in a URI are not accepted; set them in the environment (AWS_*, GOOGLE_*, AZURE_*)",
            crate::redact::text(&crate::redact::uri(uri))
        )));
    }
    let glob_at = uri.find(['*', '?', '[']);
    let (base, pattern) = match glob_at {
        Some(i) => {
            let cut = uri[..i].rfind('/').map_or(0, |p| p + 1);
            (&uri[..cut], Some(&uri[cut..]))
        }
        None => (uri, None),
    };
    let store = Store::open(if base.is_empty() { "." } else { base }, options)?;
    let to_file = |m: &ObjectMeta| InputFile {
        uri: store.uri_of(&m.location),
        size: m.size,
        etag: m.e_tag.clone(),
        modified: m.last_modified.to_rfc3339(),
    };
    let hidden = |rel: &str| rel.split('/').any(|part| part.starts_with(['_', '.']));
    let files: Vec<InputFile> = match pattern {
        Some(pattern) => {
            let matcher = glob::Pattern::new(pattern)
                .map_err(|e| Error::config(format!("{dataset} input: `{uri}` is not a valid glob: {e}")))?;
            let options = glob::MatchOptions {
                case_sensitive: true,
                require_literal_separator: true,
                require_literal_leading_dot: true,
            };
            store
                .list(&store.path(""))?
                .iter()
                .filter(|m| {
                    let rel = store.relative(&m.location);
                    !hidden(rel) && matcher.matches_with(rel, options)
                })
                .map(to_file)
                .collect()
        }
        None => {
            let whole = store.path("");
            let single = if uri.ends_with('/') {
                None
            } else {
                store.head(&whole).ok().flatten()
            };
            match single {
                Some(meta) => vec![to_file(&meta)],
                None => {
                    let listed: Vec<ObjectMeta> = store
                        .list(&whole)?
                        .into_iter()
                        .filter(|m| !hidden(store.relative(&m.location)))
                        .collect();
                    let parquet = |m: &ObjectMeta| {
                        let rel = store.relative(&m.location);
                        rel.ends_with(".parquet") || rel.ends_with(".pq")
                    };
                    let others: Vec<String> = listed
                        .iter()
                        .filter(|m| !parquet(m))
                        .map(|m| store.relative(&m.location).to_string())
                        .collect();
                    if listed.is_empty() {
                        return Err(crate::error::SchemaError::Missing {
                            dataset: dataset.to_string(),
                            uri: uri.to_string(),
                            hint: relative_hint(uri),
                        }
                        .into());
                    }
                    if others.len() == listed.len() {
                        return Err(crate::error::SchemaError::NotParquetFolder {
                            dataset: dataset.to_string(),
                            uri: uri.to_string(),
                            found: others.iter().take(5).cloned().collect::<Vec<_>>().join(", "),
                        }
                        .into());
                    }
                    if !others.is_empty() {
                        tracing::warn!(%dataset, input = %uri, skipped = %others.iter().take(5).cloned().collect::<Vec<_>>().join(", "), count = others.len(), "files that are not Parquet (by their extension) are left out of the input");
                    }
                    listed.iter().filter(|m| parquet(m)).map(to_file).collect()
                }
            }
        }
    };
    if files.is_empty() {
        return Err(crate::error::SchemaError::NoFiles {
            dataset: dataset.to_string(),
            uri: uri.to_string(),
        }
        .into());
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every name object_store 0.13 reads (each alias of each key of S3,
    /// Azure and GCS, as its `FromStr` spells them), and what a pipeline
    /// file may do with it. A new object_store key is refused until it is
    /// added here and, if it carries no secret, to `NON_SECRET_KEYS`.
    #[test]
    fn every_object_store_option_is_allowed_or_refused_on_purpose() {
        let allowed = "aws_default_region default_region aws_region region aws_endpoint_url aws_endpoint \
             endpoint_url endpoint aws_endpoint_url_s3 aws_virtual_hosted_style_request \
             virtual_hosted_style_request aws_s3_express s3_express aws_imdsv1_fallback imdsv1_fallback \
             aws_unsigned_payload unsigned_payload aws_checksum_algorithm checksum_algorithm \
             aws_skip_signature skip_signature aws_copy_if_not_exists copy_if_not_exists \
             aws_conditional_put conditional_put aws_disable_tagging disable_tagging aws_request_payer \
             request_payer aws_allow_http aws_server_side_encryption server_side_encryption \
             aws_sse_kms_key_id sse_kms_key_id aws_sse_bucket_key_enabled sse_bucket_key_enabled \
             azure_storage_account_name account_name azure_storage_use_emulator use_emulator \
             azure_storage_endpoint azure_endpoint azure_use_fabric_endpoint use_fabric_endpoint \
             azure_use_azure_cli use_azure_cli azure_skip_signature azure_disable_tagging azure_allow_http \
             google_base_url base_url google_skip_signature \
             allow_http allow_invalid_certificates connect_timeout default_content_type http1_only \
             http2_only http2_keep_alive_interval http2_keep_alive_timeout http2_keep_alive_while_idle \
             http2_max_frame_size pool_idle_timeout pool_max_idle_per_host proxy_url proxy_ca_certificate \
             proxy_excludes randomize_addresses timeout user_agent aws_timeout azure_proxy_url google_user_agent";
        let credentials = "aws_access_key_id access_key_id aws_secret_access_key secret_access_key \
             aws_session_token aws_token session_token token aws_metadata_endpoint metadata_endpoint \
             aws_container_credentials_relative_uri container_credentials_relative_uri \
             aws_container_credentials_full_uri container_credentials_full_uri \
             aws_container_authorization_token_file container_authorization_token_file \
             aws_web_identity_token_file web_identity_token_file aws_role_arn role_arn \
             aws_role_session_name role_session_name aws_endpoint_url_sts endpoint_url_sts \
             aws_sse_customer_key_base64 sse_customer_key_base64 \
             azure_storage_account_key azure_storage_access_key azure_storage_master_key master_key \
             account_key access_key azure_storage_client_id azure_client_id client_id \
             azure_storage_client_secret azure_client_secret client_secret azure_storage_tenant_id \
             azure_storage_authority_id azure_tenant_id azure_authority_id tenant_id authority_id \
             azure_storage_authority_host azure_authority_host authority_host azure_storage_sas_key \
             azure_storage_sas_token sas_key sas_token azure_storage_token bearer_token \
             azure_msi_endpoint azure_identity_endpoint identity_endpoint msi_endpoint azure_object_id \
             object_id azure_msi_resource_id msi_resource_id azure_federated_token_file \
             federated_token_file azure_fabric_token_service_url fabric_token_service_url \
             azure_fabric_workload_host fabric_workload_host azure_fabric_session_token \
             fabric_session_token azure_fabric_cluster_identifier fabric_cluster_identifier \
             google_service_account service_account google_service_account_path service_account_path \
             google_service_account_key service_account_key google_application_credentials \
             application_credentials";
        let from_uri = "aws_bucket aws_bucket_name bucket_name bucket azure_container_name container_name \
             google_bucket google_bucket_name";
        for (names, kind) in [
            (allowed, OptionKind::Allowed),
            (credentials, OptionKind::Credential),
            (from_uri, OptionKind::FromUri),
        ] {
            for name in names.split_whitespace() {
                assert_eq!(option_kind(name), kind, "{name}");
                assert_eq!(option_kind(&name.to_ascii_uppercase()), kind, "{name}");
            }
        }
        assert_eq!(option_kind("colour"), OptionKind::Unknown);
        // Every allowed key is one object_store knows, and is suggested.
        let names = allowed_option_names();
        for key in NON_SECRET_KEYS {
            assert_eq!(option_kind(key), OptionKind::Allowed, "{key}");
            assert!(names.iter().any(|n| n == key));
        }
        assert!(names.iter().any(|n| n == "virtual_hosted_style_request"));
    }

    #[test]
    fn credentials_in_values_are_found() {
        for value in [
            "s3://AKIA:secret@bucket/x",
            "http://user:pw@proxy.internal:3128",
            "https://account.blob.core.windows.net/c?sv=2022-11-02&sig=abcdef%3D",
        ] {
            assert!(carries_credentials(value), "{value}");
        }
        for value in [
            "s3://bucket/x",
            "http://minio:9000",
            "eu-central-1",
            "30s",
            "abfss://c@a.dfs.core.windows.net/x",
        ] {
            assert!(!carries_credentials(value), "{value}");
        }
    }
}
