//! The Parquet table format (`[output] format = "parquet"`, the default): its
//! commit protocol, and the repair that finishes or rolls back whatever a
//! run that died left behind. Used for every cycle a command touches.
//!
//! A cycle's partition holds one data file of a fixed name,
//! `segments/cycle=C/part-0.parquet`, with the run's manifest embedded in
//! its Parquet footer. Putting that object (create-only for a new cycle; for
//! `--replace`, an overwrite of the version that was read) is the commit:
//! object stores and the local disk (write, then rename) show an object
//! whole or not at all, so a reader that globs the partition sees no rows,
//! the old run's rows or the new run's rows, and never two runs. In order:
//!
//! 1. take the cycle's lock (a create-only put);
//! 2. repair what a dead run left (see [`committed_run`]);
//! 3. put this run's rejects under `_quadrant/staging/` (not visible to a
//!    glob of `rejects/`);
//! 4. put the data file: the commit point;
//! 5. put `_manifest.json`, a copy of the embedded manifest;
//! 6. publish the rejects: copy each to its fixed name under `rejects/`
//!    (one atomic overwrite per dataset), delete the rejects of datasets
//!    this run has none of, and the staged copies; release the lock.
//!
//! A run killed before step 4 leaves the previous state (plus staged files
//! that no committed run owns, removed by the next repair); killed after
//! it, the new run is committed and the next repair finishes steps 5 and 6,
//! which are derived from the data file and the staged rejects.

use std::collections::BTreeSet;

use object_store::ObjectMeta;
use polars::prelude::*;

use super::commit::{
    Commit, compare_record, data_output, delete_all, embedded_manifest, encode_with_manifest, manifest_lags,
    pause_point, prepare, put_compare_manifest, put_manifest, put_rejects, read_json_manifest, remove_staged_puts,
};
use super::encode::put_parquet;
use super::layout;
use super::lock;
use super::manifest::{CompareManifest, Manifest, OutputFile, OutputKind, Replaced};
use super::protocol::{self, CycleFormat, Inspected};
use crate::config::Dataset;
use crate::cycle::Cycle;
use crate::error::{ConflictError, Result};
use crate::storage::Store;

/// What a cycle's folders hold, and what a repair would change.
struct State {
    /// The committed run, read from the data file (or a format-1 manifest).
    committed: Option<Manifest>,
    /// The data file as listed, for a conditional replace.
    data: Option<ObjectMeta>,
    /// Files that no committed run owns.
    stale: Vec<ObjectMeta>,
    /// The committed run's staged rejects, not yet copied to `rejects/`:
    /// (staged, published) paths.
    unpublished: Vec<(String, String)>,
    /// `_manifest.json` is missing or describes another run.
    manifest_lags: bool,
    /// The cycle's lock was left by a run that died.
    dead_lock: bool,
}

impl Inspected for State {
    fn committed(&self) -> Option<&Manifest> {
        self.committed.as_ref()
    }

    fn into_committed(self) -> Option<Manifest> {
        self.committed
    }

    fn needs_repair(&self) -> bool {
        !self.stale.is_empty() || !self.unpublished.is_empty() || self.manifest_lags || self.dead_lock
    }
}

/// The Parquet format of one output root, for the shared protocol.
struct Parquet<'a>(&'a Store);

impl CycleFormat for Parquet<'_> {
    type State = State;

    fn inspect(&self, cycle: &Cycle) -> Result<State> {
        inspect(self.0, cycle)
    }

    fn repair(&mut self, cycle: &Cycle, state: &State) -> Result<()> {
        repair(self.0, cycle, state)
    }
}

fn inspect(store: &Store, cycle: &Cycle) -> Result<State> {
    let data_rel = layout::data_file(cycle);
    let manifest_rel = layout::manifest_file(cycle);
    let mut listed = store.list(&store.path(&layout::partition(cycle)))?;
    listed.extend(store.list(&store.path(&layout::rejects_dir(cycle)))?);
    let staged = store.list(&store.path(&layout::staging_dir(cycle)))?;
    let data = listed.iter().find(|m| store.relative(&m.location) == data_rel).cloned();
    let json = read_json_manifest(store, cycle)?;
    let committed = match &data {
        Some(meta) => embedded_manifest(store, &meta.location)?,
        // Snapshots of format 1 were committed by their manifest; they
        // stay readable as long as the files it lists are there.
        None => json.clone().filter(|m| {
            m.format_version == 1
                && m.outputs
                    .iter()
                    .all(|o| listed.iter().any(|meta| store.relative(&meta.location) == o.path))
        }),
    };
    let owned: BTreeSet<&str> = committed
        .iter()
        .flat_map(|m| m.outputs.iter().map(|o| o.path.as_str()))
        .collect();
    // The committed run's rejects wait in staging until they are published.
    let unpublished: Vec<(String, String)> = committed
        .iter()
        .flat_map(|m| {
            m.outputs
                .iter()
                .filter(|o| o.kind == OutputKind::Rejects)
                .filter_map(|o| {
                    let dataset = Dataset::ALL
                        .into_iter()
                        .find(|d| o.path == layout::rejects_file(cycle, *d))?;
                    let staged_rel = layout::staged_rejects(cycle, &m.run_id, dataset);
                    staged
                        .iter()
                        .any(|s| store.relative(&s.location) == staged_rel)
                        .then(|| (staged_rel, o.path.clone()))
                })
        })
        .collect();
    let stale = listed
        .iter()
        .filter(|m| {
            let rel = store.relative(&m.location);
            !owned.contains(rel) && (rel != manifest_rel || committed.is_none())
        })
        .chain(staged.iter().filter(|s| {
            let rel = store.relative(&s.location);
            !unpublished.iter().any(|(staged_rel, _)| staged_rel == rel)
        }))
        .cloned()
        .collect();
    let manifest_lags = manifest_lags(committed.as_ref(), json.as_ref());
    Ok(State {
        committed,
        data,
        stale,
        unpublished,
        manifest_lags,
        dead_lock: lock::is_dead(store, cycle)?,
    })
}

/// Finishes what a dead run left: brings `_manifest.json` up to the
/// committed data file, publishes the committed run's staged rejects, and
/// removes files no committed run owns. The lock is held.
fn repair(store: &Store, cycle: &Cycle, state: &State) -> Result<()> {
    if let (true, Some(m)) = (state.manifest_lags, &state.committed) {
        tracing::info!(%cycle, run_id = %m.run_id, "writing the manifest of a run that died after it committed");
        put_manifest(store, cycle, m)?;
    }
    for (staged, published) in &state.unpublished {
        store.copy(&store.path(staged), &store.path(published))?;
        store.delete(&store.path(staged))?;
    }
    for meta in &state.stale {
        tracing::info!(%cycle, file = %store.relative(&meta.location), "removing a file that no committed run owns (left by a run that died)");
        store.delete(&meta.location)?;
    }
    remove_staged_puts(
        store,
        &[
            layout::partition(cycle),
            layout::rejects_dir(cycle),
            layout::staging_dir(cycle),
        ],
    );
    Ok(())
}

/// The committed run of a cycle, if any, after repairing what a dead run
/// left (when no live run holds the cycle: that one will finish its work).
/// What is committed is read from the data file, so a reader that may not
/// write (a BI service account) gets the right answer; its repair is then
/// left to the next run, with a warning.
pub fn committed_run(store: &Store, cycle: &Cycle) -> Result<Option<Manifest>> {
    protocol::committed_run(store, cycle, || Ok(Parquet(store)))
}

/// Every committed snapshot under the root, oldest cycle first.
pub fn list_committed(store: &Store) -> Result<Vec<Manifest>> {
    let cycles: BTreeSet<Cycle> = store
        .list(&store.path("segments"))?
        .iter()
        .filter_map(|m| layout::cycle_of(store.relative(&m.location)))
        .collect();
    let mut out = Vec::new();
    for cycle in cycles {
        out.extend(committed_run(store, &cycle)?);
    }
    Ok(out)
}

/// Puts a table's data file at its fixed name, replacing any earlier one in
/// one atomic overwrite. For tables that are recomputed rather than
/// committed once (compare's).
pub fn put_table(store: &Store, rel: &str, kind: OutputKind, frame: &mut DataFrame) -> Result<OutputFile> {
    let bytes = put_parquet(store, rel, frame, false)?.expect("an overwrite always writes");
    Ok(OutputFile {
        path: rel.to_string(),
        kind,
        rows: frame.height() as u64,
        bytes,
    })
}

/// Commits a comparison of two snapshots: each table is put at its fixed
/// name (one atomic overwrite, so a glob of a table sees one comparison),
/// then the record; files an earlier comparison left are removed.
pub fn commit_comparison(
    store: &Store,
    from: &Manifest,
    to: &Manifest,
    segmentations: &[String],
    tables: &[(&str, &DataFrame)],
) -> Result<CompareManifest> {
    let mut outputs = Vec::new();
    for (name, frame) in tables {
        let rel = layout::compare_table(&from.cycle, &to.cycle, name);
        let kind = OutputKind::compare_table(name).expect("one of compare's tables");
        outputs.push(put_table(store, &rel, kind, &mut (*frame).clone())?);
    }
    let manifest = compare_record(from, to, segmentations, outputs);
    put_compare_manifest(store, &manifest)?;
    let dir = layout::compare_dir(&from.cycle, &to.cycle);
    let listed: BTreeSet<&str> = manifest.outputs.iter().map(|o| o.path.as_str()).collect();
    for meta in store.list(&store.path(&dir))? {
        let rel = store.relative(&meta.location);
        if !rel.ends_with(layout::MANIFEST) && !listed.contains(rel) {
            store.delete(&meta.location)?;
        }
    }
    Ok(manifest)
}

/// Writes and commits a snapshot; returns its manifest.
pub fn commit(store: &Store, c: Commit) -> Result<Manifest> {
    let cycle = c.cycle;
    let (_lock, _, state) = protocol::begin(store, || Ok(Parquet(store)), &cycle, &c.run_id, c.replace)?;
    let previous = state.committed;
    let super::commit::Prepared {
        run_id,
        mut snapshot,
        rejects,
        mut manifest,
        ..
    } = prepare(c)?;

    // Rejects are staged first: when the data file appears, they are there
    // to be published.
    let mut ours = Vec::new();
    let data_rel = layout::data_file(&cycle);
    manifest.outputs.push(data_output(data_rel.clone(), snapshot.height()));
    for (dataset, mut frame) in rejects {
        let staged = layout::staged_rejects(&cycle, &run_id, dataset);
        ours.push(store.path(&staged));
        manifest.outputs.push(put_rejects(
            store,
            &staged,
            layout::rejects_file(&cycle, dataset),
            &mut frame,
        )?);
    }
    manifest.replaced = previous.as_ref().map(Replaced::of);
    let start = std::time::Instant::now();
    let bytes = encode_with_manifest(&mut snapshot, &manifest)?;
    // Encoded: its memory is not held through the puts (a backfill
    // evaluates the next cycle meanwhile).
    drop(snapshot);
    let size = bytes.len() as u64;
    let encoded = start.elapsed().as_secs_f64();

    pause_point("before-data");
    let data_path = store.path(&data_rel);
    let put = match &state.data {
        Some(meta) => store.put_if_unchanged(&data_path, bytes, meta),
        None => store.put(&data_path, bytes, true),
    };
    // The commit point. When the store's answer is lost, or says the object
    // exists, what is stored decides: our run id in its footer means we
    // committed (a retried put may find its own first attempt).
    let committed_by_us =
        || -> Result<bool> { Ok(embedded_manifest(store, &data_path)?.is_some_and(|m| m.run_id == run_id)) };
    match put {
        Ok(true) => {}
        Ok(false) => {
            if committed_by_us()? {
                tracing::warn!(%cycle, "the store answered that the snapshot exists: it is this run's (a retried put)");
            } else {
                delete_all(store, &ours);
                return Err(ConflictError::CommittedFirst {
                    cycle: cycle.to_string(),
                }
                .into());
            }
        }
        // Not another run's: our staged rejects stay for the next repair,
        // which alone can tell whether a delayed put still lands.
        Err(e) => match committed_by_us() {
            Ok(true) => {
                tracing::warn!(%cycle, error = %e, "the store's answer to the snapshot put was lost; read back: it is committed");
            }
            _ => return Err(e),
        },
    }
    tracing::debug!(file = %data_rel, bytes = size, encode_seconds = encoded, put_seconds = start.elapsed().as_secs_f64() - encoded, "committed");
    manifest.outputs[0].bytes = size;
    pause_point("before-manifest");
    put_manifest(store, &cycle, &manifest)?;
    pause_point("after-manifest");
    // Publish the rejects and remove the replaced run's files.
    protocol::publish(Parquet(store), &cycle)?;
    Ok(manifest)
}
