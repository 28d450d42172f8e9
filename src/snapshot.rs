//! Snapshots: write, commit, list and read them.
//!
//! Layout under the output root:
//! ```text
//! segments/cycle=C/part-<run_id>-0.parquet    the snapshot rows
//! segments/cycle=C/_manifest.json             the commit
//! rejects/cycle=C/dataset=D/part-<run_id>-0.parquet
//! _quadrant/locks/cycle=C.json                held while a run commits
//! ```
//! The commit protocol, in order: take the cycle's lock (a create-only put,
//! so two runs cannot both hold it); delete files in the partition that no
//! manifest lists (left by a run that died); put the data files (each
//! appears whole or not at all); put the manifest, create-only unless
//! replacing: that is the commit; delete the replaced run's files; release
//! the lock. A committed snapshot is only ever read through its manifest's
//! file list, so files of an unfinished run are never read by quadrant.

use std::collections::BTreeSet;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use polars::prelude::*;
use polars_core::runtime::THREAD_POOL;
use polars_parquet::write::{
    CompressedPage, CompressionOptions, Encoding, ParquetType, Version, WriteOptions, ZstdLevel, array_to_columns,
    compress,
};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::Pipeline;
use crate::cycle::Cycle;
use crate::error::{Context, Error, Result};
use crate::quality::Finding;
use crate::storage::{InputFile, Store};

pub const FORMAT_VERSION: u32 = 1;
pub const MANIFEST: &str = "_manifest.json";

/// A lock older than this is taken to belong to a run that died.
const LOCK_LEASE_SECONDS: i64 = 5 * 60;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub quadrant_version: String,
    pub pipeline: PipelineInfo,
    pub cycle: String,
    pub as_of: String,
    pub run_id: String,
    pub started_at: String,
    pub finished_at: String,
    pub inputs: Inputs,
    pub outputs: Vec<OutputFile>,
    /// Accounts in the snapshot.
    pub rows: u64,
    pub segmentations: Vec<SegmentationSummary>,
    pub quality: Vec<Finding>,
    pub replaced: Option<Replaced>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PipelineInfo {
    pub name: String,
    pub hash: String,
    pub path: String,
    /// The pipeline file as it was, so the snapshot explains itself.
    pub source: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Inputs {
    pub accounts: InputInfo,
    pub usage: InputInfo,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InputInfo {
    pub uri: String,
    /// accounts: rows read; usage: rows inside the aggregate windows.
    pub rows: u64,
    pub files: Vec<InputFile>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutputFile {
    /// Relative to the output root.
    pub path: String,
    /// `segments` or `rejects`.
    pub kind: String,
    pub rows: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SegmentationSummary {
    pub name: String,
    pub labels: Vec<LabelSummary>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabelSummary {
    pub label: String,
    pub accounts: u64,
    pub arr: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Replaced {
    pub run_id: String,
    pub finished_at: String,
}

/// A new run id: sortable by time, unique by a random suffix.
pub fn new_run_id(now: DateTime<Utc>) -> String {
    let suffix: u32 = rand::random();
    format!("{}-{suffix:08x}", now.format("%Y%m%dT%H%M%SZ"))
}

pub fn partition(cycle: &Cycle) -> String {
    format!("segments/cycle={cycle}")
}

fn manifest_path(store: &Store, cycle: &Cycle) -> object_store::path::Path {
    store.path(&format!("{}/{MANIFEST}", partition(cycle)))
}

/// The committed manifest of a cycle, if any.
pub fn read_manifest(store: &Store, cycle: &Cycle) -> Result<Option<Manifest>> {
    let path = manifest_path(store, cycle);
    let Some(bytes) = store.get(&path)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Error::Runtime(format!("manifest `{}` is not valid: {e}", store.uri_of(&path))))
}

/// Every committed snapshot under the root, oldest cycle first.
pub fn list_committed(store: &Store) -> Result<Vec<Manifest>> {
    let mut out = Vec::new();
    for meta in store.list(&store.path("segments"))? {
        let rel = store.relative(&meta.location).to_string();
        let Some(dir) = rel.strip_suffix(&format!("/{MANIFEST}")) else {
            continue;
        };
        let Some(cycle) = dir
            .strip_prefix("segments/cycle=")
            .and_then(|c| c.parse::<Cycle>().ok())
        else {
            continue;
        };
        if let Some(m) = read_manifest(store, &cycle)? {
            out.push((cycle, m));
        }
    }
    out.sort_by_key(|(c, _)| *c);
    Ok(out.into_iter().map(|(_, m)| m).collect())
}

/// The rows of a committed snapshot, read through its manifest.
pub fn scan_committed(store: &Store, manifest: &Manifest) -> Result<LazyFrame> {
    let paths: Vec<PlRefPath> = manifest
        .outputs
        .iter()
        .filter(|o| o.kind == "segments")
        .map(|o| PlRefPath::new(store.uri_of(&store.path(&o.path)).as_str()))
        .collect();
    if paths.is_empty() {
        return Err(Error::Runtime(format!(
            "snapshot of cycle {} lists no files",
            manifest.cycle
        )));
    }
    let args = ScanArgsParquet {
        cloud_options: store.cloud_options()?,
        ..Default::default()
    };
    LazyFrame::scan_parquet_files(paths.into_iter().collect(), args)
        .ctx(|| format!("cannot read the snapshot of cycle {}", manifest.cycle))
}

/// Writes a frame as one Parquet object that appears whole or not at all.
pub fn write_parquet(store: &Store, rel: &str, kind: &str, frame: &mut DataFrame) -> Result<OutputFile> {
    let start = std::time::Instant::now();
    let bytes = Bytes::from(parquet_bytes(frame)?);
    let encoded = start.elapsed().as_secs_f64();
    let path = store.path(rel);
    let size = bytes.len();
    if !store.put(&path, bytes, true)? {
        return Err(Error::Conflict(format!("`{}` exists already", store.uri_of(&path))));
    }
    tracing::debug!(
        file = rel,
        bytes = size,
        encode_seconds = encoded,
        put_seconds = start.elapsed().as_secs_f64() - encoded,
        "wrote"
    );
    Ok(OutputFile {
        path: rel.to_string(),
        kind: kind.to_string(),
        rows: frame.height() as u64,
        bytes: size as u64,
    })
}

/// Encodes a frame as Parquet: zstd at level 1 (a third less time than
/// polars' default level 3, for 8% more bytes), row groups of polars' default
/// size, each column's pages encoded and compressed in parallel.
///
/// polars 0.55's `ParquetWriter` encodes and compresses pages lazily, as its
/// file writer pulls them, so on one thread; for a snapshot of 40-odd
/// columns that was a fifth of a run. Here the same encoder and compressor
/// run per column on polars' thread pool and the file writer only lays the
/// finished pages out.
fn parquet_bytes(frame: &mut DataFrame) -> Result<Vec<u8>> {
    const ROW_GROUP_ROWS: usize = 512 * 512;
    let level = ZstdLevel::try_new(1).expect("1 is a zstd level");
    let options = WriteOptions {
        statistics: StatisticsOptions::default(),
        compression: CompressionOptions::Zstd(Some(level)),
        version: Version::V1,
        data_page_size: None,
    };
    let encodings = get_encodings(&frame.schema().to_arrow(CompatLevel::newest()));
    let mut buf = Vec::new();
    let mut writer = ParquetWriter::new(&mut buf)
        .with_compression(ParquetCompression::Zstd(Some(level)))
        .batched(frame.schema())
        .ctx(|| "cannot encode Parquet".into())?;
    let fields = writer.parquet_schema().fields().to_vec();
    frame.rechunk_mut_par();
    for offset in (0..frame.height()).step_by(ROW_GROUP_ROWS) {
        let part = frame.slice(offset as i64, ROW_GROUP_ROWS);
        for batch in part.iter_chunks(CompatLevel::newest(), false) {
            let columns = THREAD_POOL
                .install(|| {
                    batch
                        .columns()
                        .par_iter()
                        .zip(&fields)
                        .zip(encodings.as_slice())
                        .map(|((array, field), encoding)| encode_column(array, field, encoding, options))
                        .collect::<PolarsResult<Vec<_>>>()
                })
                .ctx(|| "cannot encode Parquet".into())?;
            let leaves: Vec<Vec<CompressedPage>> = columns.into_iter().flatten().collect();
            writer
                .write_row_group(batch.height() as u64, &leaves)
                .ctx(|| "cannot encode Parquet".into())?;
        }
    }
    writer.finish().ctx(|| "cannot encode Parquet".into())?;
    drop(writer);
    Ok(buf)
}

/// The compressed pages of one column, per leaf (one for a flat column).
fn encode_column(
    array: &ArrayRef,
    field: &ParquetType,
    encoding: &[Encoding],
    options: WriteOptions,
) -> PolarsResult<Vec<Vec<CompressedPage>>> {
    array_to_columns(array, field.clone(), options, encoding)?
        .into_iter()
        .map(|pages| {
            pages
                .map(|page| Ok(compress(page?, Vec::new(), options.compression)?))
                .collect()
        })
        .collect()
}

/// Label counts and ARR per label, in the pipeline's label order.
pub fn summarize(pipeline: &Pipeline, snapshot: &DataFrame) -> Result<Vec<SegmentationSummary>> {
    let mut out = Vec::new();
    for s in &pipeline.segmentations {
        let grouped = snapshot
            .clone()
            .lazy()
            .group_by([col(s.name.as_str())])
            .agg([
                len().cast(DataType::Int64).alias("accounts"),
                col("arr").cast(DataType::Float64).sum().alias("arr"),
            ])
            .collect()
            .ctx(|| format!("summary of {}", s.name))?;
        let labels = grouped
            .column(s.name.as_str())
            .ctx(|| s.name.clone())?
            .str()
            .ctx(|| s.name.clone())?
            .clone();
        let counts = grouped
            .column("accounts")
            .ctx(|| s.name.clone())?
            .i64()
            .ctx(|| s.name.clone())?
            .clone();
        let arr = grouped
            .column("arr")
            .ctx(|| s.name.clone())?
            .f64()
            .ctx(|| s.name.clone())?
            .clone();
        let mut rows: Vec<LabelSummary> = s
            .labels()
            .into_iter()
            .map(|l| LabelSummary {
                label: l.to_string(),
                accounts: 0,
                arr: 0.0,
            })
            .collect();
        for i in 0..grouped.height() {
            let label = labels.get(i).unwrap_or_default();
            if let Some(row) = rows.iter_mut().find(|r| r.label == label) {
                row.accounts = counts.get(i).unwrap_or(0) as u64;
                row.arr = arr.get(i).unwrap_or(0.0);
            }
        }
        out.push(SegmentationSummary {
            name: s.name.clone(),
            labels: rows,
        });
    }
    Ok(out)
}

/// What a run hands over for commit.
pub struct Commit<'a> {
    pub pipeline: &'a Pipeline,
    pub cycle: Cycle,
    pub as_of: chrono::NaiveDate,
    pub run_id: String,
    pub started_at: DateTime<Utc>,
    pub snapshot: DataFrame,
    pub rejects: Vec<(&'static str, DataFrame)>,
    pub inputs: Inputs,
    pub quality: Vec<Finding>,
    pub replace: bool,
}

/// Stops the process at a named point of the commit, when the test
/// variable `QUADRANT_PAUSE_AT` names it, so tests can kill a run there.
fn pause_point(name: &str) {
    if std::env::var("QUADRANT_PAUSE_AT").as_deref() == Ok(name) {
        eprintln!("quadrant: paused at {name}");
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

#[derive(Serialize, Deserialize)]
struct Lock {
    run_id: String,
    host: String,
    pid: u32,
    started_at: String,
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_default()
}

/// Is the run that holds this lock gone? Same host: its process has ended.
/// Elsewhere: the lock is older than the lease.
fn lock_is_stale(lock: &Lock) -> bool {
    let age = DateTime::parse_from_rfc3339(&lock.started_at)
        .map(|t| (Utc::now() - t.with_timezone(&Utc)).num_seconds())
        .unwrap_or(i64::MAX);
    if age > LOCK_LEASE_SECONDS {
        return true;
    }
    let proc = std::path::Path::new("/proc");
    lock.host == host_name() && proc.exists() && !proc.join(lock.pid.to_string()).exists()
}

struct Held<'a> {
    store: &'a Store,
    path: object_store::path::Path,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.store.delete(&self.path) {
            tracing::warn!(error = %e, "could not release the cycle lock");
        }
    }
}

fn take_lock<'a>(store: &'a Store, cycle: &Cycle, run_id: &str) -> Result<Held<'a>> {
    let path = store.path(&format!("_quadrant/locks/cycle={cycle}.json"));
    let lock = Lock {
        run_id: run_id.to_string(),
        host: host_name(),
        pid: std::process::id(),
        started_at: Utc::now().to_rfc3339(),
    };
    let body = Bytes::from(serde_json::to_vec_pretty(&lock).expect("serializable"));
    for attempt in 0..2 {
        if store.put(&path, body.clone(), true)? {
            return Ok(Held { store, path });
        }
        let holder: Option<Lock> = store.get(&path)?.and_then(|b| serde_json::from_slice(&b).ok());
        match holder {
            Some(h) if attempt == 0 && lock_is_stale(&h) => {
                tracing::warn!(%cycle, stale_run = %h.run_id, "taking over the lock of a run that died");
                store.delete(&path)?;
            }
            None if attempt == 0 => {
                // Released between our put and our read: try again.
            }
            Some(h) => {
                return Err(Error::Conflict(format!(
                    "cycle {cycle} is being committed by run {} (host {}, pid {}, since {}); \
                     if that run is dead, its lock expires {} minutes after it was taken",
                    h.run_id,
                    h.host,
                    h.pid,
                    h.started_at,
                    LOCK_LEASE_SECONDS / 60
                )));
            }
            None => {
                return Err(Error::Conflict(format!(
                    "cycle {cycle} is being committed by another run"
                )));
            }
        }
    }
    Err(Error::Conflict(format!(
        "cycle {cycle} is being committed by another run"
    )))
}

/// Fails with the conflict code when a cycle is committed and `replace` is
/// off. Checked before the work starts, and again under the lock.
pub fn ensure_replaceable(store: &Store, cycle: &Cycle, replace: bool) -> Result<Option<Manifest>> {
    let existing = read_manifest(store, cycle)?;
    match &existing {
        Some(m) if !replace => Err(Error::Conflict(format!(
            "cycle {cycle} is already committed under {} (run {}, {}); pass --replace to replace it",
            store.uri(),
            m.run_id,
            m.finished_at
        ))),
        _ => Ok(existing),
    }
}

/// Writes and commits a snapshot; returns its manifest.
pub fn commit(store: &Store, c: Commit) -> Result<Manifest> {
    let cycle = c.cycle;
    pause_point("before-lock");
    let _lock = take_lock(store, &cycle, &c.run_id)?;
    let previous = ensure_replaceable(store, &cycle, c.replace)?;

    // Anything in the partition that the committed manifest does not list
    // was left by a run that died: remove it before adding ours.
    let listed: BTreeSet<String> = previous
        .iter()
        .flat_map(|m| m.outputs.iter().map(|o| o.path.clone()))
        .collect();
    for dir in [partition(&cycle), format!("rejects/cycle={cycle}")] {
        for meta in store.list(&store.path(&dir))? {
            let rel = store.relative(&meta.location).to_string();
            if !rel.ends_with(MANIFEST) && !listed.contains(&rel) {
                tracing::info!(file = %rel, "removing a file left by an unfinished run");
                store.delete(&meta.location)?;
            }
        }
    }

    let mut outputs = Vec::new();
    let mut written = Vec::new();
    let result = (|| -> Result<Manifest> {
        let mut snapshot = c.snapshot;
        let rows = snapshot.height();
        for (name, value) in [("run_id", &c.run_id), ("pipeline_hash", &c.pipeline.hash)] {
            let value = Scalar::new(DataType::String, AnyValue::StringOwned(value.as_str().into()));
            snapshot
                .with_column(Column::new_scalar(name.into(), value, rows))
                .ctx(|| name.into())?;
        }
        let mut files: Vec<(String, &str, DataFrame)> = vec![(
            format!("{}/part-{}-0.parquet", partition(&cycle), c.run_id),
            "segments",
            snapshot,
        )];
        for (dataset, frame) in c.rejects {
            files.push((
                format!("rejects/cycle={cycle}/dataset={dataset}/part-{}-0.parquet", c.run_id),
                "rejects",
                frame,
            ));
        }
        pause_point("before-data");
        // The label summary for the manifest is counted while the files are
        // encoded and put.
        let snapshot = files[0].2.clone();
        let summary = std::thread::scope(|scope| {
            let summary = scope.spawn(|| summarize(c.pipeline, &snapshot));
            for (rel, kind, mut frame) in files {
                written.push(store.path(&rel));
                outputs.push(write_parquet(store, &rel, kind, &mut frame)?);
            }
            summary.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })?;
        pause_point("before-manifest");
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            quadrant_version: env!("CARGO_PKG_VERSION").to_string(),
            pipeline: PipelineInfo {
                name: c.pipeline.name.clone(),
                hash: c.pipeline.hash.clone(),
                path: c.pipeline.path.clone(),
                source: c.pipeline.source.clone(),
            },
            cycle: cycle.to_string(),
            as_of: c.as_of.to_string(),
            run_id: c.run_id.clone(),
            started_at: c.started_at.to_rfc3339(),
            finished_at: Utc::now().to_rfc3339(),
            inputs: c.inputs,
            outputs: outputs.clone(),
            rows: rows as u64,
            segmentations: summary,
            quality: c.quality,
            replaced: previous.as_ref().map(|p| Replaced {
                run_id: p.run_id.clone(),
                finished_at: p.finished_at.clone(),
            }),
        };
        let body = Bytes::from(serde_json::to_vec_pretty(&manifest).expect("serializable"));
        if !store.put(&manifest_path(store, &cycle), body, previous.is_none())? {
            return Err(Error::Conflict(format!(
                "cycle {cycle} was committed by another run first"
            )));
        }
        Ok(manifest)
    })();

    match result {
        Ok(manifest) => {
            pause_point("after-manifest");
            // The replaced run's files are no longer listed anywhere.
            for p in previous.iter().flat_map(|m| m.outputs.iter()) {
                store.delete(&store.path(&p.path))?;
            }
            Ok(manifest)
        }
        Err(e) => {
            for path in &written {
                let _ = store.delete(path);
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes, reads back and compares; returns the number of row groups.
    fn round_trip(frame: &DataFrame) -> usize {
        let bytes = parquet_bytes(&mut frame.clone()).unwrap();
        let mut reader = ParquetReader::new(std::io::Cursor::new(bytes));
        let row_groups = reader.get_metadata().unwrap().row_groups.len();
        assert!(reader.finish().unwrap().equals_missing(frame));
        row_groups
    }

    #[test]
    fn the_parallel_encoder_writes_what_polars_reads_back() {
        // Three row groups, the last one partial; nulls, strings long and
        // short, dates, a scalar column.
        let n = 2 * 512 * 512 + 1234;
        let mut frame = df! {
            "account_id" => (0..n).map(|i| format!("A{i:07}")).collect::<Vec<_>>(),
            "name" => (0..n).map(|i| format!("a longer account name {}", i % 977)).collect::<Vec<_>>(),
            "arr" => (0..n).map(|i| (i % 5 != 0).then_some(i as f64 * 1.5)).collect::<Vec<_>>(),
            "seats" => (0..n).map(|i| i as i64 % 300).collect::<Vec<_>>(),
            "since" => (0..n).map(|i| i as i32 % 20_000).collect::<Vec<_>>(),
        }
        .unwrap()
        .lazy()
        .with_column(col("since").cast(DataType::Date))
        .collect()
        .unwrap();
        let run_id = Scalar::new(DataType::String, AnyValue::StringOwned("run-1".into()));
        frame
            .with_column(Column::new_scalar("run_id".into(), run_id, n))
            .unwrap();
        assert_eq!(round_trip(&frame), 3);
    }

    #[test]
    fn an_empty_frame_is_a_valid_file() {
        let frame = df! { "account_id" => Vec::<String>::new(), "arr" => Vec::<f64>::new() }.unwrap();
        assert_eq!(round_trip(&frame), 0);
    }
}
