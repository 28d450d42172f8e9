//! Where a test writes snapshots: a local folder, or a fresh prefix on the
//! S3 (moto), Google Cloud Storage (fake-gcs-server) and Azure (Azurite)
//! servers that `scripts/test` starts on loopback. Reads go through quadrant's own storage layer, as a BI tool
//! would read the store.

use std::io::Cursor;
use std::sync::atomic::{AtomicU32, Ordering};

use polars::prelude::*;
use quadrant::storage::{StorageOptions, Store};

pub enum Target {
    Local(tempfile::TempDir),
    Remote { uri: String, name: &'static str },
}

fn unique() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "t{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn remote(var: &str, name: &'static str) -> Target {
    let base = std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: run the tests with `bash scripts/test`, which starts the S3, GCS and Azure test servers"
        )
    });
    Target::Remote {
        uri: format!("{}/{}", base.trim_end_matches('/'), unique()),
        name,
    }
}

/// The settings that send every S3, GCS and Azure request to the test servers
/// that `scripts/test` starts, checked to be on loopback: a command run
/// with them never leaves the machine, whatever the environment holds
/// (without them, a client falls back to the real cloud and, lacking
/// credentials, to the metadata address).
pub fn loopback_stores() -> Vec<(&'static str, String)> {
    let endpoint = |var: &str| {
        let url = std::env::var(var).unwrap_or_else(|_| {
            panic!(
                "{var} is not set: run the tests with `bash scripts/test`, which starts the S3, GCS and Azure test servers"
            )
        });
        assert!(url.starts_with("http://127.0.0.1:"), "{var}={url} is not on loopback");
        url
    };
    // The GCS client reads its endpoint from the service-account file.
    let service_account = std::env::var("GOOGLE_SERVICE_ACCOUNT").expect("scripts/test sets GOOGLE_SERVICE_ACCOUNT");
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(&service_account).unwrap()).unwrap();
    assert_eq!(
        file["gcs_base_url"].as_str(),
        Some(endpoint("QUADRANT_TEST_GCS_URL").as_str())
    );
    assert_eq!(file["disable_oauth"], true, "{service_account} must turn OAuth off");
    vec![
        ("AWS_ENDPOINT_URL", endpoint("AWS_ENDPOINT_URL")),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ALLOW_HTTP", "true".into()),
        ("AWS_ACCESS_KEY_ID", "quadrant-test-key-id".into()),
        ("AWS_SECRET_ACCESS_KEY", "quadrant-test-secret-key".into()),
        ("GOOGLE_SERVICE_ACCOUNT", service_account),
        ("GOOGLE_ALLOW_HTTP", "true".into()),
        ("AZURE_STORAGE_USE_EMULATOR", "true".into()),
        ("AZURITE_BLOB_STORAGE_URL", endpoint("AZURITE_BLOB_STORAGE_URL")),
        ("AZURE_ALLOW_HTTP", "true".into()),
    ]
}

impl Target {
    pub fn local() -> Target {
        Target::Local(tempfile::tempdir().unwrap())
    }

    pub fn s3() -> Target {
        remote("QUADRANT_TEST_S3", "s3")
    }

    pub fn azure() -> Target {
        remote("QUADRANT_TEST_AZURE", "azure")
    }

    pub fn gcs() -> Target {
        remote("QUADRANT_TEST_GCS", "gcs")
    }

    /// The object stores: S3, Google Cloud Storage and Azure.
    pub fn remotes() -> Vec<Target> {
        vec![Target::s3(), Target::gcs(), Target::azure()]
    }

    /// The local folder and every object store.
    pub fn all() -> Vec<Target> {
        let mut all = vec![Target::local()];
        all.extend(Target::remotes());
        all
    }

    pub fn name(&self) -> &'static str {
        match self {
            Target::Local(_) => "local",
            Target::Remote { name, .. } => name,
        }
    }

    pub fn uri(&self) -> String {
        match self {
            Target::Local(dir) => dir.path().to_string_lossy().into_owned(),
            Target::Remote { uri, .. } => uri.clone(),
        }
    }

    fn store(&self) -> Store {
        Store::open(&self.uri(), &StorageOptions::default()).unwrap()
    }

    /// Every object under the root, relative, sorted.
    pub fn files(&self) -> Vec<String> {
        let store = self.store();
        store
            .list(&store.path(""))
            .unwrap()
            .iter()
            .map(|m| store.relative(&m.location).to_string())
            .collect()
    }

    /// What a reader that globs `segments/cycle=C/*.parquet` sees.
    pub fn partition_files(&self, cycle: &str) -> Vec<String> {
        let dir = format!("segments/cycle={cycle}/");
        self.files()
            .into_iter()
            .filter(|f| {
                f.strip_prefix(&dir)
                    .is_some_and(|rest| !rest.contains('/') && rest.ends_with(".parquet"))
            })
            .collect()
    }

    pub fn read(&self, rel: &str) -> Option<Vec<u8>> {
        let store = self.store();
        store.get(&store.path(rel)).unwrap().map(|b| b.to_vec())
    }

    pub fn read_parquet(&self, rel: &str) -> DataFrame {
        let bytes = self.read(rel).unwrap_or_else(|| panic!("{rel} is missing"));
        ParquetReader::new(Cursor::new(bytes)).finish().unwrap()
    }

    pub fn manifest(&self, cycle: &str) -> Option<serde_json::Value> {
        self.read(&format!("segments/cycle={cycle}/_manifest.json"))
            .map(|b| serde_json::from_slice(&b).unwrap())
    }

    /// The rows a globbing reader sees, or None when there are no files.
    pub fn glob_rows(&self, cycle: &str) -> Option<DataFrame> {
        let frames: Vec<LazyFrame> = self
            .partition_files(cycle)
            .iter()
            .map(|f| self.read_parquet(f).lazy())
            .collect();
        if frames.is_empty() {
            return None;
        }
        Some(concat(frames, UnionArgs::default()).unwrap().collect().unwrap())
    }

    /// Writes a local file into the store.
    pub fn upload(&self, local: &std::path::Path, rel: &str) {
        let store = self.store();
        let bytes = std::fs::read(local).unwrap();
        store.put(&store.path(rel), bytes.into(), false).unwrap();
    }
}
