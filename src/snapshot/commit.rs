//! What a commit is in every table format: the run's hand-over
//! ([`Commit`]), its record (the manifest, also embedded in the footer of
//! the snapshot's data file), the cycle lock around it, and the named pause
//! points that tests kill runs at. The formats ([`super::parquet`],
//! [`super::delta`]) differ only in where the files go and which write is
//! the commit point.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use polars::prelude::*;

use super::encode::{footer_value, parquet_bytes};
use super::layout;
use super::lock;
use super::manifest::{
    CompareManifest, FORMAT_VERSION, Inputs, Manifest, OutputFile, OutputKind, PipelineInfo, new_run_id, summarize,
};
use crate::config::{Dataset, Pipeline};
use crate::cycle::Cycle;
use crate::error::{ConflictError, Context, Error, Result, SnapshotError};
use crate::plan::{Finding, Plan};
use crate::storage::Store;

/// The footer key that holds a snapshot's manifest.
const MANIFEST_KEY: &str = "quadrant.manifest";

/// What a run hands over for commit.
pub struct Commit<'a> {
    pub pipeline: &'a Pipeline,
    /// What was computed, recorded in the manifest.
    pub plan: &'a Plan,
    pub cycle: Cycle,
    pub as_of: chrono::NaiveDate,
    pub run_id: String,
    pub started_at: DateTime<Utc>,
    pub snapshot: DataFrame,
    pub rejects: Vec<(Dataset, DataFrame)>,
    pub inputs: Inputs,
    pub quality: Vec<Finding>,
    pub replace: bool,
    /// The previous cycle's run that this one read.
    pub previous: Option<super::manifest::PreviousRun>,
    /// How the usage covered the cycle's windows.
    pub coverage: Option<crate::plan::Coverage>,
}

/// A commit made ready for a format: the snapshot with its `run_id` and
/// `pipeline_hash` columns, the rejects, and the manifest without outputs.
pub struct Prepared {
    pub cycle: Cycle,
    pub run_id: String,
    pub snapshot: DataFrame,
    pub rejects: Vec<(Dataset, DataFrame)>,
    pub manifest: Manifest,
}

/// Stamps the snapshot and writes its record; outputs and `replaced` are the
/// format's to fill in.
pub fn prepare(c: Commit) -> Result<Prepared> {
    let cycle = c.cycle;
    let mut snapshot = c.snapshot;
    let rows = snapshot.height();
    for (name, value) in [("run_id", &c.run_id), ("pipeline_hash", &c.pipeline.hash)] {
        let value = Scalar::new(DataType::String, AnyValue::StringOwned(value.as_str().into()));
        snapshot
            .with_column(Column::new_scalar(name.into(), value, rows))
            .ctx(|| format!("cannot add the `{name}` column to the snapshot of cycle {cycle}"))?;
    }
    let segmentations = summarize(&c.plan.segmentations, &snapshot)?;
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
        outputs: Vec::new(),
        rows: rows as u64,
        segmentations,
        quality: c.quality,
        replaced: None,
        previous: c.previous,
        coverage: c.coverage,
        plan: Some(c.plan.clone()),
    };
    Ok(Prepared {
        cycle,
        run_id: c.run_id,
        snapshot,
        rejects: c.rejects,
        manifest,
    })
}

/// The snapshot's data file as an output of its manifest; its size is
/// filled in by readers (a file cannot hold its own size).
pub fn data_output(path: String, rows: usize) -> OutputFile {
    OutputFile {
        path,
        kind: OutputKind::Segments,
        rows: rows as u64,
        bytes: 0,
    }
}

/// The record of a comparison of two snapshots.
pub fn compare_record(
    from: &Manifest,
    to: &Manifest,
    segmentations: &[String],
    outputs: Vec<OutputFile>,
) -> CompareManifest {
    CompareManifest {
        format_version: FORMAT_VERSION,
        quadrant_version: env!("CARGO_PKG_VERSION").to_string(),
        from: from.cycle.clone(),
        to: to.cycle.clone(),
        from_run_id: from.run_id.clone(),
        to_run_id: to.run_id.clone(),
        run_id: new_run_id(Utc::now()),
        finished_at: Utc::now().to_rfc3339(),
        segmentations: segmentations.to_vec(),
        outputs,
    }
}

/// Puts a comparison's record at `compare/from=C1/to=C2/_manifest.json`.
pub fn put_compare_manifest(store: &Store, manifest: &CompareManifest) -> Result<()> {
    let dir = layout::compare_dir(&manifest.from, &manifest.to);
    let body = Bytes::from(serde_json::to_vec_pretty(manifest).expect("serializable"));
    store.put(&store.path(&format!("{dir}/{}", layout::MANIFEST)), body, false)?;
    Ok(())
}

/// Puts a dataset's rejects create-only at `at` (a name no other run uses);
/// returns them as an output of the manifest, listed at `listed_as` (where
/// readers find them once published).
pub fn put_rejects(store: &Store, at: &str, listed_as: String, frame: &mut DataFrame) -> Result<OutputFile> {
    let bytes = super::encode::put_parquet(store, at, frame, true)?.ok_or_else(|| ConflictError::Exists {
        uri: store.uri_of(&store.path(at)),
    })?;
    Ok(OutputFile {
        path: listed_as,
        kind: OutputKind::Rejects,
        rows: frame.height() as u64,
        bytes,
    })
}

/// The snapshot encoded as Parquet with its manifest in the footer.
pub fn encode_with_manifest(snapshot: &mut DataFrame, manifest: &Manifest) -> Result<Bytes> {
    let embedded = serde_json::to_string(manifest).expect("serializable");
    Ok(Bytes::from(parquet_bytes(snapshot, &[(MANIFEST_KEY, embedded)])?))
}

/// Stops the process at a named step of the commit when `QUADRANT_PAUSE_AT`
/// names it, so tests can kill a run there (or, with
/// `QUADRANT_PAUSE_SECONDS`, let it go on after acting in between). Debug
/// builds only: a release binary has no such hook.
#[cfg(debug_assertions)]
pub fn pause_point(name: &str) {
    if std::env::var("QUADRANT_PAUSE_AT").as_deref() == Ok(name) {
        eprintln!("quadrant: paused at {name}");
        let seconds = std::env::var("QUADRANT_PAUSE_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3600);
        std::thread::sleep(std::time::Duration::from_secs(seconds));
    }
}

#[cfg(not(debug_assertions))]
pub fn pause_point(_: &str) {}

/// The manifest embedded in a data file, with the file's own size filled in.
pub fn embedded_manifest(store: &Store, path: &object_store::path::Path) -> Result<Option<Manifest>> {
    let Some((value, size)) = footer_value(store, path, MANIFEST_KEY)? else {
        return Ok(None);
    };
    let uri = store.uri_of(path);
    let text = value.ok_or_else(|| SnapshotError::NotQuadrant { uri: uri.clone() })?;
    let mut manifest: Manifest = serde_json::from_str(&text).map_err(|e| SnapshotError::BadManifest {
        uri: uri.clone(),
        source: e,
    })?;
    let rel = store.relative(path).to_string();
    for o in manifest.outputs.iter_mut().filter(|o| o.path == rel) {
        o.bytes = size;
    }
    Ok(Some(manifest))
}

/// The copy of the committed manifest at `segments/cycle=C/_manifest.json`.
pub fn read_json_manifest(store: &Store, cycle: &Cycle) -> Result<Option<Manifest>> {
    let path = store.path(&layout::manifest_file(cycle));
    let Some(bytes) = store.get(&path)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        SnapshotError::BadManifest {
            uri: store.uri_of(&path),
            source: e,
        }
        .into()
    })
}

/// Is `_manifest.json` missing or another run's than the committed one?
pub fn manifest_lags(committed: Option<&Manifest>, json: Option<&Manifest>) -> bool {
    match (committed, json) {
        (Some(c), Some(j)) => c.run_id != j.run_id,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

pub fn put_manifest(store: &Store, cycle: &Cycle, manifest: &Manifest) -> Result<()> {
    let body = Bytes::from(serde_json::to_vec_pretty(manifest).expect("serializable"));
    store.put(&store.path(&layout::manifest_file(cycle)), body, false)?;
    Ok(())
}

pub fn already_committed(store: &Store, cycle: &Cycle, m: &Manifest) -> Error {
    ConflictError::AlreadyCommitted {
        cycle: cycle.to_string(),
        root: store.uri().to_string(),
        run_id: m.run_id.clone(),
        committed_at: m.finished_at.clone(),
    }
    .into()
}

/// Takes the cycle's lock for a commit. A repair holds it for a moment
/// only: wait for it; another run holding it is a conflict.
pub fn lock_for_commit<'a>(store: &'a Store, cycle: &Cycle, run_id: &str) -> Result<lock::Held<'a>> {
    let waited = std::time::Instant::now();
    loop {
        match lock::take(store, cycle, run_id)? {
            Ok(held) => return Ok(held),
            Err(holder) if holder.is_repair() && waited.elapsed() < std::time::Duration::from_secs(60) => {
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            Err(holder) => return Err(holder.conflict(cycle)),
        }
    }
}

/// Runs a repair under the cycle's lock, unless a live run holds it (that
/// one finishes its own work). A reader that may not write (a BI service
/// account) still gets its answer: the repair is then left to the next run,
/// with a warning.
pub fn repair_if_free<T>(store: &Store, cycle: &Cycle, unrepaired: T, repair: impl FnOnce() -> Result<T>) -> Result<T> {
    let repaired = (|| -> Result<Option<T>> {
        match lock::take(store, cycle, &lock::repair_id())? {
            Ok(_held) => {
                pause_point("repairing");
                repair().map(Some)
            }
            Err(_) => Ok(None),
        }
    })();
    match repaired {
        Ok(Some(t)) => Ok(t),
        Ok(None) => Ok(unrepaired),
        Err(e) => {
            tracing::warn!(%cycle, error = %e, "could not repair what a run that died left in this cycle (no write access?); the next run will");
            Ok(unrepaired)
        }
    }
}

/// Removes files of a run that did not commit.
pub fn delete_all(store: &Store, paths: &[object_store::path::Path]) {
    for path in paths {
        if let Err(e) = store.delete(path) {
            tracing::warn!(error = %e, "could not remove a file of this uncommitted run; the next run removes it");
        }
    }
}

/// The local disk stages each put in a hidden `name#N` file first; one left
/// by a killed put is not listed by the store, so it is removed here.
pub fn remove_staged_puts(store: &Store, rels: &[String]) {
    if store.is_local() {
        for rel in rels {
            remove_staged_puts_below(std::path::Path::new(&store.uri_of(&store.path(rel))));
        }
    }
}

fn remove_staged_puts_below(dir: &std::path::Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            remove_staged_puts_below(&path);
        } else if name
            .rsplit_once('#')
            .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        {
            tracing::info!(file = %path.display(), "removing the staging file of a put that was killed");
            let _ = std::fs::remove_file(&path);
        }
    }
}
