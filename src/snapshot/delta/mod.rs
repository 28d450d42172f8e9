//! The Delta Lake table format (`[output] format = "delta"`): its commit
//! protocol, and the repair that finishes or rolls back whatever a run that
//! died left behind.
//!
//! `segments/` is one Delta table partitioned by `cycle`; the rejects of
//! each dataset (`rejects/<dataset>/`) and each of compare's tables
//! (`compare/<table>/`) are Delta tables too. A run writes its files under
//! names that carry its run id, where no reader of the table looks until
//! the log names them. In order:
//!
//! 1. take the cycle's lock (a create-only put);
//! 2. repair what a dead run left (see [`committed_run`]);
//! 3. put this run's rejects files and its snapshot file (the manifest in
//!    its footer, as in the Parquet format) into their partitions;
//! 4. commit the snapshot file to `segments/`: one Delta commit that adds
//!    it and, for `--replace`, removes the files of the run it replaces (an
//!    overwrite with the predicate `cycle = 'C'`), with the run's record in
//!    the commit information. Delta's commit is the create-only put of
//!    `_delta_log/<version>.json`: **this is the commit point**. A reader of
//!    the table sees the cycle before it or after it, never in between;
//! 5. put `_manifest.json`, quadrant's catalog entry, a copy of the
//!    manifest in the committed file's footer;
//! 6. commit the rejects to each rejects table (the same kind of commit);
//!    release the lock.
//!
//! What is committed is always read from the log: the one active file of
//! the cycle's partition, and the manifest in its footer. The catalog entry
//! and the rejects tables are derived from it, so they cannot disagree with
//! it for longer than a dead run's repair takes: killed before step 4, the
//! run leaves files no version of the table names (removed by the next
//! repair); killed after it, the run is committed and the next repair
//! finishes steps 5 and 6. Files a replace removed stay for time travel
//! until `quadrant vacuum` (or any Delta writer's vacuum) deletes them.

pub mod table;

use std::collections::{BTreeSet, HashMap};

use object_store::ObjectMeta;
use polars::prelude::*;

use super::commit::{
    Commit, Prepared, compare_record, data_output, delete_all, embedded_manifest, encode_with_manifest, manifest_lags,
    pause_point, prepare, put_compare_manifest, put_manifest, put_rejects, read_json_manifest, remove_staged_puts,
};
use super::encode::put_parquet;
use super::layout;
use super::lock;
use super::manifest::{CompareManifest, Manifest, OutputFile, OutputKind, Replaced};
use super::protocol::{self, CycleFormat, Inspected};
use crate::config::Dataset;
use crate::cycle::Cycle;
use crate::error::{ConflictError, Context, Error, Result, SnapshotError};
use crate::storage::Store;
use table::{NewFile, Table};

pub use table::is_table;

/// The partition column of the snapshot and rejects tables.
const CYCLE: &str = "cycle";

/// The tables a cycle's commit touches.
struct Tables<'a> {
    segments: Table<'a>,
    rejects: Vec<(Dataset, Table<'a>)>,
}

fn open_tables(store: &Store) -> Result<Tables<'_>> {
    let mut rejects = Vec::new();
    for dataset in Dataset::ALL {
        rejects.push((dataset, Table::open(store, &layout::rejects_table(dataset))?));
    }
    Ok(Tables {
        segments: Table::open(store, layout::SEGMENTS)?,
        rejects,
    })
}

/// What a cycle's partitions hold, and what a repair would change.
struct State {
    /// The committed run, read from the footer of the file the log names.
    committed: Option<Manifest>,
    /// The log names a file for the cycle that is not there: the table is
    /// broken until a `--replace` commits the cycle anew.
    missing: Option<SnapshotError>,
    /// The cycle's active files in `segments/`, relative to the table.
    active: BTreeSet<String>,
    /// Files that no version of their table names and no committed run
    /// will: left by runs that died before their commit.
    stale: Vec<ObjectMeta>,
    /// Rejects tables whose files for the cycle are not the committed
    /// run's: (dataset, the committed run's file, if it has one).
    unpublished: Vec<(Dataset, Option<OutputFile>)>,
    /// `_manifest.json` is missing or describes another run.
    manifest_lags: bool,
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

    fn broken(&mut self) -> Option<SnapshotError> {
        self.missing.take()
    }
}

/// The Delta format of one output root, for the shared protocol: its
/// tables at the version they were opened at.
struct Delta<'a> {
    store: &'a Store,
    tables: Tables<'a>,
}

impl<'a> Delta<'a> {
    fn open(store: &'a Store) -> Result<Delta<'a>> {
        Ok(Delta {
            store,
            tables: open_tables(store)?,
        })
    }
}

impl CycleFormat for Delta<'_> {
    type State = State;

    fn inspect(&self, cycle: &Cycle) -> Result<State> {
        inspect(self.store, &self.tables, cycle)
    }

    fn repair(&mut self, cycle: &Cycle, state: &State) -> Result<()> {
        repair(self.store, &mut self.tables, cycle, state)
    }
}

fn cycle_dir(cycle: &Cycle) -> String {
    layout::cycle_partition(cycle)
}

/// A path below the root, relative to a table's root.
fn in_table<'p>(table: &Table, rel: &'p str) -> Option<&'p str> {
    rel.strip_prefix(table.rel())?.strip_prefix('/')
}

fn inspect(store: &Store, tables: &Tables, cycle: &Cycle) -> Result<State> {
    let value = cycle.to_string();
    let partition = [(CYCLE, value.as_str())];
    let active = tables.segments.partition_files(&partition)?;
    let mut missing = None;
    let committed = match active.iter().collect::<Vec<_>>().as_slice() {
        [] => None,
        [file] => {
            let rel = tables.segments.store_rel(file);
            let manifest = embedded_manifest(store, &store.path(&rel))?;
            if manifest.is_none() {
                missing = Some(SnapshotError::MissingFile {
                    table: store.uri_of(&store.path(layout::SEGMENTS)),
                    version: tables.segments.version().unwrap_or_default(),
                    file: (*file).clone(),
                    cycle: cycle.to_string(),
                });
            }
            manifest
        }
        files => {
            return Err(SnapshotError::Delta {
                uri: store.uri_of(&store.path(layout::SEGMENTS)),
                source: format!(
                    "cycle {cycle} has {} files, but quadrant commits one per cycle: was the table written by another tool?",
                    files.len()
                )
                .into(),
            }
            .into());
        }
    };
    let mut unpublished = Vec::new();
    let mut pending = BTreeSet::new();
    if let Some(m) = &committed {
        for (dataset, table) in &tables.rejects {
            let want = m
                .outputs
                .iter()
                .find(|o| o.kind == OutputKind::Rejects && in_table(table, &o.path).is_some())
                .cloned();
            let want_files: BTreeSet<String> = want
                .iter()
                .filter_map(|o| in_table(table, &o.path).map(str::to_string))
                .collect();
            if table.partition_files(&partition)? != want_files {
                pending.extend(want.iter().map(|o| o.path.clone()));
                unpublished.push((*dataset, want));
            }
        }
    }
    let mut stale = Vec::new();
    let all = std::iter::once(&tables.segments).chain(tables.rejects.iter().map(|(_, t)| t));
    for table in all {
        let known: BTreeSet<String> = table
            .partition_files(&partition)?
            .into_iter()
            .chain(table.tombstones()?.iter().cloned())
            .collect();
        let dir = table.store_rel(&cycle_dir(cycle));
        for meta in store.list(&store.path(&dir))? {
            let rel = store.relative(&meta.location);
            let Some(path) = in_table(table, rel) else { continue };
            if rel == layout::manifest_file(cycle) || known.contains(path) || pending.contains(rel) {
                continue;
            }
            stale.push(meta);
        }
    }
    let json = read_json_manifest(store, cycle)?;
    if committed.is_none()
        && json.is_some()
        && let Some(meta) = store.head(&store.path(&layout::manifest_file(cycle)))?
    {
        stale.push(meta);
    }
    let manifest_lags = manifest_lags(committed.as_ref(), json.as_ref());
    Ok(State {
        committed,
        missing,
        active,
        stale,
        unpublished,
        manifest_lags,
        dead_lock: lock::is_dead(store, cycle)?,
    })
}

/// Finishes what a dead run left: brings `_manifest.json` and the rejects
/// tables up to the committed run, and removes files no version of their
/// table names. The lock is held.
fn repair(store: &Store, tables: &mut Tables, cycle: &Cycle, state: &State) -> Result<()> {
    if let (true, Some(m)) = (state.manifest_lags, &state.committed) {
        tracing::info!(%cycle, run_id = %m.run_id, "writing the manifest of a run that died after it committed");
        put_manifest(store, cycle, m)?;
    }
    if let Some(m) = &state.committed {
        for (dataset, want) in &state.unpublished {
            let table = &mut tables
                .rejects
                .iter_mut()
                .find(|(d, _)| d == dataset)
                .expect("a dataset")
                .1;
            publish_rejects(store, table, cycle, m, want.as_ref())?;
        }
    }
    for meta in &state.stale {
        tracing::info!(%cycle, file = %store.relative(&meta.location), "removing a file that no version of its table names (left by a run that died)");
        store.delete(&meta.location)?;
    }
    let mut dirs = vec![tables.segments.store_rel(&cycle_dir(cycle))];
    dirs.extend(tables.rejects.iter().map(|(_, t)| t.store_rel(&cycle_dir(cycle))));
    remove_staged_puts(store, &dirs);
    Ok(())
}

/// Makes a rejects table's files for the cycle the committed run's: its
/// file, or none when it rejected no rows of that dataset.
fn publish_rejects(
    store: &Store,
    table: &mut Table,
    cycle: &Cycle,
    m: &Manifest,
    file: Option<&OutputFile>,
) -> Result<()> {
    let value = cycle.to_string();
    let (files, schema) = match file {
        Some(o) => {
            let path = in_table(table, &o.path).expect("a file of this table").to_string();
            let schema = file_schema(store, &o.path)?;
            (
                vec![NewFile {
                    path,
                    size: o.bytes,
                    rows: o.rows,
                }],
                schema,
            )
        }
        None if !table.exists() => return Ok(()),
        None => (Vec::new(), Schema::default()),
    };
    let info = HashMap::from([(
        "quadrant".to_string(),
        serde_json::json!({"run_id": m.run_id, "cycle": m.cycle, "rows": file.map_or(0, |o| o.rows)}),
    )]);
    table
        .replace(&[(CYCLE, &value)], &files, &schema, &info, None)?
        .map_err(|_| Error::from(ConflictError::CommittedFirst { cycle: value.clone() }))?;
    Ok(())
}

/// The schema in a Parquet file's footer.
fn file_schema(store: &Store, rel: &str) -> Result<Schema> {
    let uri = store.uri_of(&store.path(rel));
    let args = ScanArgsParquet {
        cloud_options: store.cloud_options()?,
        ..Default::default()
    };
    let schema = LazyFrame::scan_parquet(PlRefPath::new(uri.as_str()), args)
        .and_then(|mut lf| lf.collect_schema())
        .ctx(|| format!("cannot read the schema of `{uri}`"))?;
    let mut schema = (*schema).clone();
    // polars reads the partition from the path; it is not in the file.
    schema.shift_remove(CYCLE);
    Ok(schema)
}

/// The committed run of a cycle, if any, after repairing what a dead run
/// left (when no live run holds the cycle).
pub fn committed_run(store: &Store, cycle: &Cycle) -> Result<Option<Manifest>> {
    protocol::committed_run(store, cycle, || Delta::open(store))
}

/// Every committed snapshot, oldest cycle first: the cycles the table's
/// latest version has files for.
pub fn list_committed(store: &Store) -> Result<Vec<Manifest>> {
    let tables = open_tables(store)?;
    let cycles: BTreeSet<Cycle> = tables
        .segments
        .files()?
        .iter()
        .filter_map(|(_, values)| values.get(CYCLE)?.as_deref()?.parse().ok())
        .collect();
    let mut out = Vec::new();
    for cycle in cycles {
        let mut state = inspect(store, &tables, &cycle)?;
        if let Some(broken) = state.broken() {
            return Err(broken.into());
        }
        let committed = if state.needs_repair() {
            committed_run(store, &cycle)?
        } else {
            state.into_committed()
        };
        out.extend(committed);
    }
    Ok(out)
}

/// The run's record in the Delta commit's information: Spark's `DESCRIBE
/// HISTORY` shows `userMetadata`, delta-rs' `history()` every key.
fn commit_info(m: &Manifest) -> HashMap<String, serde_json::Value> {
    let labels: serde_json::Map<String, serde_json::Value> = m
        .segmentations
        .iter()
        .map(|s| {
            let counts: serde_json::Map<String, serde_json::Value> =
                s.labels.iter().map(|l| (l.label.clone(), l.accounts.into())).collect();
            (s.name.clone(), counts.into())
        })
        .collect();
    let checks: serde_json::Map<String, serde_json::Value> = m
        .quality
        .iter()
        .filter(|f| f.rows > 0)
        .map(|f| (format!("{}.{}", f.dataset, f.check), f.rows.into()))
        .collect();
    HashMap::from([
        (
            "quadrant".to_string(),
            serde_json::json!({
                "run_id": m.run_id, "cycle": m.cycle, "as_of": m.as_of,
                "pipeline": m.pipeline.name, "pipeline_hash": m.pipeline.hash,
                "rows": m.rows, "labels": labels, "data_checks": checks,
                "replaced_run": m.replaced.as_ref().map(|r| r.run_id.clone()),
                "previous_run": m.previous.as_ref().map(|p| p.run_id.clone()),
                "quadrant_version": m.quadrant_version,
            }),
        ),
        (
            "userMetadata".to_string(),
            format!(
                "quadrant run {}: cycle {}, pipeline {} ({}), {} accounts",
                m.run_id, m.cycle, m.pipeline.name, m.pipeline.hash, m.rows
            )
            .into(),
        ),
    ])
}

/// Writes and commits a snapshot; returns its manifest.
pub fn commit(store: &Store, c: Commit) -> Result<Manifest> {
    let cycle = c.cycle;
    let (_lock, delta, state) = protocol::begin(store, || Delta::open(store), &cycle, &c.run_id, c.replace)?;
    let mut tables = delta.tables;
    let previous = state.committed;
    let Prepared {
        run_id,
        snapshot,
        rejects,
        mut manifest,
        ..
    } = prepare(c)?;
    let mut snapshot = table::conform(snapshot)?;
    let value = cycle.to_string();
    let partition = [(CYCLE, value.as_str())];
    tables.segments.check(snapshot.schema(), &partition)?;

    let data_rel = layout::run_file(&layout::partition(&cycle), &run_id);
    manifest.outputs.push(data_output(data_rel.clone(), snapshot.height()));
    let mut ours = Vec::new();
    for (dataset, frame) in rejects {
        // The cycle is the partition's value, not a column of its files.
        let frame = frame.drop(CYCLE).unwrap_or(frame);
        let mut frame = table::conform(frame)?;
        let table = &tables.rejects.iter().find(|(d, _)| *d == dataset).expect("a dataset").1;
        table.check(frame.schema(), &partition)?;
        let rel = layout::run_file(&table.store_rel(&cycle_dir(&cycle)), &run_id);
        ours.push(store.path(&rel));
        manifest
            .outputs
            .push(put_rejects(store, &rel, rel.clone(), &mut frame)?);
    }
    manifest.replaced = previous.as_ref().map(Replaced::of);
    let bytes = encode_with_manifest(&mut snapshot, &manifest)?;
    // Encoded: only its schema is needed through the puts and the commit.
    let schema = snapshot.schema().clone();
    drop(snapshot);
    let size = bytes.len() as u64;
    let data_path = store.path(&data_rel);
    ours.push(data_path.clone());
    if !store.put(&data_path, bytes, true)? {
        delete_all(store, &ours[..ours.len() - 1]);
        return Err(ConflictError::Exists {
            uri: store.uri_of(&data_path),
        }
        .into());
    }

    pause_point("before-data");
    let file = NewFile {
        path: in_table(&tables.segments, &data_rel).expect("in segments/").to_string(),
        size,
        rows: manifest.rows,
    };
    let committed = tables.segments.replace(
        &partition,
        std::slice::from_ref(&file),
        &schema,
        &commit_info(&manifest),
        Some(&state.active),
    );
    // The commit point. The store settles a lost or wrong answer to the
    // commit's put by reading it back (`storage::ReadBack`); whatever error
    // is left, the log decides: our file active in the cycle means we
    // committed. Only another writer's commit is a conflict that removes our
    // files: after any other failure they stay, because no one can tell
    // whether a delayed put will yet name them; the next repair, under the
    // cycle's lock, removes them if no version does.
    match committed {
        Ok(Ok(version)) => {
            tracing::debug!(%cycle, version, file = %data_rel, bytes = size, "committed to the Delta table");
        }
        Ok(Err(_)) => {
            delete_all(store, &ours);
            return Err(ConflictError::CommittedFirst {
                cycle: cycle.to_string(),
            }
            .into());
        }
        Err(e) => match Table::open(store, layout::SEGMENTS).and_then(|t| t.partition_files(&partition)) {
            Ok(files) if files.contains(&file.path) => {
                tracing::warn!(%cycle, error = %e, "the store's answer to the Delta commit was lost; read back: it is committed");
            }
            _ => return Err(e),
        },
    }
    manifest.outputs[0].bytes = size;
    pause_point("before-manifest");
    put_manifest(store, &cycle, &manifest)?;
    pause_point("after-manifest");
    // Publish the rejects, on the tables as they are after the commit.
    protocol::publish(Delta::open(store)?, &cycle)?;
    Ok(manifest)
}

/// What `quadrant vacuum` did to one table.
#[derive(Debug, serde::Serialize)]
pub struct Vacuumed {
    pub table: String,
    pub retain_hours: u64,
    pub files: Vec<String>,
}

/// Vacuums every Delta table under the root (the snapshots, the rejects,
/// compare's tables), then repairs every committed cycle: that removes the
/// files of runs that died before their commit, under each cycle's lock,
/// so a run in progress keeps its files.
pub fn vacuum(store: &Store, retain_hours: Option<u64>, force: bool, dry_run: bool) -> Result<Vec<Vacuumed>> {
    let mut tables = vec![layout::SEGMENTS.to_string()];
    tables.extend(Dataset::ALL.map(layout::rejects_table));
    tables.extend(layout::COMPARE_TABLES.iter().map(|t| layout::compare_delta_table(t)));
    let mut done = Vec::new();
    for rel in tables {
        if !is_table(store, &rel)? {
            continue;
        }
        let mut table = Table::open(store, &rel)?;
        let (hours, files) = table.vacuum(retain_hours, force, dry_run)?;
        done.push(Vacuumed {
            table: store.uri_of(&store.path(&rel)),
            retain_hours: hours,
            files,
        });
    }
    if !dry_run {
        list_committed(store)?;
    }
    Ok(done)
}

/// Removes, from each of compare's tables, the partitions of every pair
/// with `cycle` at either end, one commit per pair (the files stay for time
/// travel until `vacuum`); returns the pairs, as `C1..C2`.
pub fn drop_comparisons(store: &Store, cycle: &str) -> Result<Vec<String>> {
    let mut dropped = BTreeSet::new();
    for name in layout::COMPARE_TABLES {
        let rel = layout::compare_delta_table(name);
        if !is_table(store, &rel)? {
            continue;
        }
        let mut table = Table::open(store, &rel)?;
        let pairs: BTreeSet<(String, String)> = table
            .files()?
            .into_iter()
            .filter_map(|(_, values)| {
                let from = values.get("from")?.clone()?;
                let to = values.get("to")?.clone()?;
                (from == cycle || to == cycle).then_some((from, to))
            })
            .collect();
        for (from, to) in pairs {
            let info = HashMap::from([(
                "quadrant".to_string(),
                serde_json::json!({"dropped": {"from": from, "to": to}, "because": format!("cycle {cycle} was replaced")}),
            )]);
            table
                .replace(&[("from", &from), ("to", &to)], &[], &Schema::default(), &info, None)?
                .map_err(|_| {
                    Error::from(ConflictError::CommittedFirst {
                        cycle: cycle.to_string(),
                    })
                })?;
            dropped.insert(format!("{from}..{to}"));
        }
    }
    Ok(dropped.into_iter().collect())
}

/// Commits a comparison: each of compare's tables gets the pair's rows in
/// one commit that replaces the pair's earlier rows (partitions `from` and
/// `to`); then the record. A comparison derives from committed snapshots,
/// so the latest one wins.
pub fn commit_comparison(
    store: &Store,
    from: &Manifest,
    to: &Manifest,
    segmentations: &[String],
    frames: &[(&str, &DataFrame)],
) -> Result<CompareManifest> {
    let mut record = compare_record(from, to, segmentations, Vec::new());
    let partition = [("from", from.cycle.as_str()), ("to", to.cycle.as_str())];
    let dir = layout::pair_partition(&from.cycle, &to.cycle);
    for (name, frame) in frames {
        let mut table = Table::open(store, &layout::compare_delta_table(name))?;
        let mut frame = table::conform((*frame).clone())?;
        table.check(frame.schema(), &partition)?;
        let path = layout::run_file(&dir, &record.run_id);
        let rel = table.store_rel(&path);
        let bytes = put_parquet(store, &rel, &mut frame, true)?.ok_or_else(|| ConflictError::Exists {
            uri: store.uri_of(&store.path(&rel)),
        })?;
        let info = HashMap::from([(
            "quadrant".to_string(),
            serde_json::json!({"run_id": record.run_id, "from": from.cycle, "to": to.cycle,
                "from_run_id": from.run_id, "to_run_id": to.run_id}),
        )]);
        let file = NewFile {
            path,
            size: bytes,
            rows: frame.height() as u64,
        };
        if table
            .replace(&partition, std::slice::from_ref(&file), frame.schema(), &info, None)?
            .is_err()
        {
            unreachable!("a commit without an expected partition is never refused");
        }
        // Files of comparisons killed before their commit.
        let known: BTreeSet<String> = table
            .partition_files(&partition)?
            .into_iter()
            .chain(table.tombstones()?.iter().cloned())
            .collect();
        for meta in store.list(&store.path(&table.store_rel(&dir)))? {
            if in_table(&table, store.relative(&meta.location)).is_some_and(|p| !known.contains(p)) {
                store.delete(&meta.location)?;
            }
        }
        record.outputs.push(OutputFile {
            path: rel,
            kind: OutputKind::compare_table(name).expect("one of compare's tables"),
            rows: file.rows,
            bytes,
        });
    }
    put_compare_manifest(store, &record)?;
    Ok(record)
}
