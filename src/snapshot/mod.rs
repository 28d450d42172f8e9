//! Snapshots: where they live ([`layout`]), what their commit record holds
//! ([`manifest`]), how they are encoded ([`encode`]), the cycle lock
//! ([`lock`]), what every commit shares ([`commit`]), and the two table
//! formats, each with its one commit protocol and repair: a folder of
//! Hive-partitioned Parquet ([`parquet`]) and Delta Lake tables ([`delta`]).
//! [`Snapshots`] is the seam the commands use: they never ask which format
//! an output root holds.

pub mod commit;
pub mod delta;
pub mod encode;
pub mod layout;
pub mod lock;
pub mod manifest;
pub mod parquet;
pub mod protocol;

use polars::prelude::*;

pub use commit::Commit;
pub use layout::partition;
pub use manifest::{
    CompareManifest, FORMAT_VERSION, InputInfo, Inputs, LabelSummary, Manifest, OutputFile, OutputKind, PipelineInfo,
    PreviousRun, Replaced, SegmentationSummary, new_run_id,
};

pub use crate::config::Format;
use crate::cycle::Cycle;
use crate::error::{Context, Error, Result, SnapshotError};
use crate::storage::Store;

/// The committed snapshots under an output root, in the format they were
/// written in.
pub struct Snapshots {
    store: Store,
    format: Format,
}

/// What an output root holds: a Delta table's log under `segments/`, or
/// Parquet partitions (their fixed-name data file, or a manifest), or
/// nothing yet. (A Delta run that died before the table's first commit
/// leaves a `part-<run>.parquet`, which is neither.)
fn detect(store: &Store) -> Result<Option<Format>> {
    if delta::is_table(store, layout::SEGMENTS)? {
        return Ok(Some(Format::Delta));
    }
    let parquet = store.list(&store.path(layout::SEGMENTS))?.iter().any(|m| {
        let rel = store.relative(&m.location);
        layout::cycle_of(rel).is_some() && (rel.ends_with(layout::DATA_FILE) || rel.ends_with(layout::MANIFEST))
    });
    Ok(parquet.then_some(Format::Parquet))
}

impl Snapshots {
    /// The snapshots under a root for reading (`cycles`, `compare`,
    /// `report`, `explain`): the format is the one found there.
    pub fn open(store: Store) -> Result<Snapshots> {
        let format = detect(&store)?.unwrap_or_default();
        Ok(Snapshots { store, format })
    }

    /// The snapshots under a root for a run that writes `format`; a root
    /// that holds the other format is refused (one root, one format).
    pub fn for_run(store: Store, format: Format) -> Result<Snapshots> {
        match detect(&store)? {
            Some(found) if found != format => Err(Error::Refused(format!(
                "the output root {} holds {} snapshots, but the pipeline's [output] format is \"{}\": set format = \"{}\", or write to another output root",
                store.uri(),
                match found {
                    Format::Delta => "Delta Lake",
                    Format::Parquet => "Parquet",
                },
                format.name(),
                found.name()
            ))),
            _ => Ok(Snapshots { store, format }),
        }
    }

    /// The pipeline whose snapshots the root holds, read from a committed
    /// cycle's catalog entry; `None` for an empty root.
    pub fn pipeline_name(&self) -> Result<Option<String>> {
        let store = &self.store;
        for meta in store.list(&store.path(layout::SEGMENTS))? {
            let rel = store.relative(&meta.location);
            if let (Some(cycle), true) = (layout::cycle_of(rel), rel.ends_with(layout::MANIFEST))
                && let Some(m) = commit::read_json_manifest(store, &cycle)?
            {
                return Ok(Some(m.pipeline.name));
            }
        }
        Ok(None)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// The committed run of a cycle, if any, after repairing what a dead
    /// run left (when no live run holds the cycle: that one finishes its
    /// own work).
    pub fn committed_run(&self, cycle: &Cycle) -> Result<Option<Manifest>> {
        match self.format {
            Format::Parquet => parquet::committed_run(&self.store, cycle),
            Format::Delta => delta::committed_run(&self.store, cycle),
        }
    }

    /// Fails with the conflict code when a cycle is committed and `replace`
    /// is off, after repairing the cycle. Checked before the work starts,
    /// and again under the lock.
    pub fn check_replaceable(&self, cycle: &Cycle, replace: bool) -> Result<Option<Manifest>> {
        match self.committed_run(cycle) {
            Ok(Some(m)) if !replace => Err(commit::already_committed(&self.store, cycle, &m)),
            // A broken cycle (its data file gone) is what a replace repairs.
            Err(Error::Snapshot(SnapshotError::MissingFile { .. })) if replace => Ok(None),
            other => other,
        }
    }

    /// Every committed snapshot under the root, oldest cycle first.
    pub fn list_committed(&self) -> Result<Vec<Manifest>> {
        match self.format {
            Format::Parquet => parquet::list_committed(&self.store),
            Format::Delta => delta::list_committed(&self.store),
        }
    }

    /// Writes and commits a snapshot; returns its manifest. A replace also
    /// removes the comparisons built on the run it replaced: they describe
    /// a snapshot that no longer is (`compare` computes them again).
    pub fn commit(&self, c: Commit) -> Result<Manifest> {
        let manifest = match self.format {
            Format::Parquet => parquet::commit(&self.store, c),
            Format::Delta => delta::commit(&self.store, c),
        }?;
        if let Some(replaced) = &manifest.replaced {
            let dropped = self.drop_comparisons(&manifest.cycle)?;
            if !dropped.is_empty() {
                tracing::info!(cycle = %manifest.cycle, replaced_run = %replaced.run_id, comparisons = %dropped.join(", "), "removed the comparisons built on the replaced run; `quadrant compare` computes them again");
            }
        }
        Ok(manifest)
    }

    /// Removes every comparison that has `cycle` at either end (its tables
    /// and its record); returns the pairs, as `C1..C2`.
    fn drop_comparisons(&self, cycle: &str) -> Result<Vec<String>> {
        let store = &self.store;
        let (from, to) = (format!("from={cycle}"), format!("to={cycle}"));
        let mut pairs = std::collections::BTreeSet::new();
        if self.format == Format::Delta {
            pairs.extend(delta::drop_comparisons(store, cycle)?);
        }
        for meta in store.list(&store.path(layout::COMPARE))? {
            let rel = store.relative(&meta.location);
            let parts: Vec<&str> = rel.split('/').collect();
            // Parquet tables and every record: compare/from=C1/to=C2/...
            if let [_, f, t, ..] = parts.as_slice()
                && f.starts_with("from=")
                && (*f == from || *t == to)
            {
                pairs.insert(format!(
                    "{}..{}",
                    f.trim_start_matches("from="),
                    t.trim_start_matches("to=")
                ));
                store.delete(&meta.location)?;
            }
        }
        Ok(pairs.into_iter().collect())
    }

    /// Commits a comparison of two snapshots (`compare`'s tables and record).
    pub fn commit_comparison(
        &self,
        from: &Manifest,
        to: &Manifest,
        segmentations: &[String],
        tables: &[(&str, &DataFrame)],
    ) -> Result<CompareManifest> {
        match self.format {
            Format::Parquet => parquet::commit_comparison(&self.store, from, to, segmentations, tables),
            Format::Delta => delta::commit_comparison(&self.store, from, to, segmentations, tables),
        }
    }

    /// Deletes what replaced runs left in Delta tables once it is older than
    /// the retention; Parquet output keeps nothing to vacuum (`None`).
    pub fn vacuum(
        &self,
        retain_hours: Option<u64>,
        force: bool,
        dry_run: bool,
    ) -> Result<Option<Vec<delta::Vacuumed>>> {
        match self.format {
            Format::Parquet => Ok(None),
            Format::Delta => delta::vacuum(&self.store, retain_hours, force, dry_run).map(Some),
        }
    }

    /// Where a comparison's tables are, for messages.
    pub fn comparison_location(&self, from: &str, to: &str) -> String {
        let rel = match self.format {
            Format::Parquet => layout::compare_dir(from, to),
            Format::Delta => layout::COMPARE.to_string(),
        };
        self.store.uri_of(&self.store.path(&rel))
    }

    /// The rows of a committed snapshot, read through its manifest: the
    /// data file it names is the committed one in either format.
    /// A snapshot frame with the types its committed file has: a Delta
    /// table stores some types as others (unsigned integers as `long`).
    pub fn as_stored(&self, frame: DataFrame) -> Result<DataFrame> {
        match self.format {
            Format::Parquet => Ok(frame),
            Format::Delta => delta::table::conform(frame),
        }
    }

    pub fn scan_committed(&self, manifest: &Manifest) -> Result<LazyFrame> {
        let store = &self.store;
        let paths: Vec<PlRefPath> = manifest
            .outputs
            .iter()
            .filter(|o| o.kind == OutputKind::Segments)
            .map(|o| PlRefPath::new(store.uri_of(&store.path(&o.path)).as_str()))
            .collect();
        if paths.is_empty() {
            return Err(SnapshotError::NoFiles {
                cycle: manifest.cycle.clone(),
            }
            .into());
        }
        let args = ScanArgsParquet {
            cloud_options: store.cloud_options()?,
            ..Default::default()
        };
        LazyFrame::scan_parquet_files(paths.into_iter().collect(), args)
            .ctx(|| format!("cannot read the snapshot of cycle {}", manifest.cycle))
    }
}
