//! The commit record of a snapshot: what ran, on which inputs, what it wrote
//! and what it found. It is embedded in the snapshot's data file (so the
//! data file alone proves what was committed) and copied to
//! `_manifest.json` beside it for people and tools.

use chrono::{DateTime, Utc};
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::{Pipeline, Segmentation};
use crate::error::{Context, Result};
use crate::plan::Finding;
use crate::plan::Plan;
use crate::storage::InputFile;

/// 1: data files named by run id, `_manifest.json` the commit point.
/// 2: one data file of a fixed name, its appearance the commit point, the
///    manifest embedded in its Parquet footer.
pub const FORMAT_VERSION: u32 = 2;

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
    /// The previous cycle's run this one read, if it was committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<PreviousRun>,
    /// How the usage covered the cycle's windows, and whether the run went
    /// on without full coverage (`--allow-incomplete-usage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<crate::plan::Coverage>,
    /// What was computed (format 2 on): `explain` and `report` read it
    /// instead of recompiling the pipeline text with today's checker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
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
    /// The engine that read it, when not this machine's polars (the usage
    /// pass on Spark: `spark sc://host:port (Spark 4.2.0)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_by: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutputFile {
    /// Relative to the output root.
    pub path: String,
    pub kind: OutputKind,
    pub rows: u64,
    pub bytes: u64,
}

/// What an output file holds: a cycle's snapshot, a dataset's rejects, or
/// one of compare's tables. Recorded by name in manifests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    Segments,
    Rejects,
    Transitions,
    Retention,
    Bridge,
    Moves,
}

impl OutputKind {
    /// The kind of one of compare's tables, by its name
    /// ([`super::layout::COMPARE_TABLES`]).
    pub fn compare_table(name: &str) -> Option<OutputKind> {
        Some(match name {
            "transitions" => OutputKind::Transitions,
            "retention" => OutputKind::Retention,
            "bridge" => OutputKind::Bridge,
            "moves" => OutputKind::Moves,
            _ => return None,
        })
    }
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

/// The committed run of the previous cycle that a run read (`prev(...)`,
/// `_since`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PreviousRun {
    pub cycle: String,
    pub run_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Replaced {
    pub run_id: String,
    pub finished_at: String,
}

impl Replaced {
    /// The record of the committed run a replace replaces.
    pub fn of(m: &Manifest) -> Replaced {
        Replaced {
            run_id: m.run_id.clone(),
            finished_at: m.finished_at.clone(),
        }
    }
}

/// The record of a committed comparison of two snapshots.
#[derive(Debug, Serialize, Deserialize)]
pub struct CompareManifest {
    pub format_version: u32,
    pub quadrant_version: String,
    pub from: String,
    pub to: String,
    pub from_run_id: String,
    pub to_run_id: String,
    pub run_id: String,
    pub finished_at: String,
    pub segmentations: Vec<String>,
    pub outputs: Vec<OutputFile>,
}

impl Manifest {
    /// What the snapshot was computed with: the recorded plan, or for a
    /// format-1 snapshot, its recorded pipeline text compiled again.
    pub fn recorded_plan(&self) -> Result<Plan> {
        match &self.plan {
            Some(plan) => Ok(plan.clone()),
            None => Ok(Plan::new(&Pipeline::from_text(
                &self.pipeline.source,
                &self.pipeline.path,
            )?)),
        }
    }
}

/// A new run id: sortable by time, unique by a random suffix.
pub fn new_run_id(now: DateTime<Utc>) -> String {
    let suffix: u32 = rand::random();
    format!("{}-{suffix:08x}", now.format("%Y%m%dT%H%M%SZ"))
}

/// Label counts and ARR per label, in the pipeline's label order.
pub fn summarize(segmentations: &[Segmentation], snapshot: &DataFrame) -> Result<Vec<SegmentationSummary>> {
    let mut out = Vec::new();
    for s in segmentations {
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
            .ctx(|| format!("cannot count the labels of segmentation `{}`", s.name))?
            .str()
            .ctx(|| format!("cannot count the labels of segmentation `{}`", s.name))?
            .clone();
        let counts = grouped
            .column("accounts")
            .ctx(|| format!("cannot count the labels of segmentation `{}`", s.name))?
            .i64()
            .ctx(|| format!("cannot count the labels of segmentation `{}`", s.name))?
            .clone();
        let arr = grouped
            .column("arr")
            .ctx(|| format!("cannot count the labels of segmentation `{}`", s.name))?
            .f64()
            .ctx(|| format!("cannot count the labels of segmentation `{}`", s.name))?
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
