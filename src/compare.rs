//! Two committed snapshots -> how accounts and ARR moved between them: the
//! migration matrix per segmentation, net and gross revenue retention per
//! starting label, the ARR bridge, and the accounts whose label changed.
//! Over time: the pipeline is the same, the cycles differ ([`crate::diff`]
//! is the what-if: one cycle, two pipelines).
//!
//! Definitions (DOMAIN.md): accounts only in the later cycle are `new`,
//! accounts only in the earlier one `churned`. NRR of a group = ending ARR
//! of the accounts in it at the start / their starting ARR; GRR = sum of
//! min(ending, starting) / starting. Bridge: ending = starting + new +
//! expansion - contraction - churn.

use polars::prelude::*;
use serde::Serialize;

use crate::error::{Context, Error, Result};
use crate::snapshot::{self, CompareManifest, Manifest, Snapshots};

pub const NEW: &str = "new";
pub const CHURNED: &str = "churned";

/// The result of one comparison, as frames.
pub struct Comparison {
    pub segmentations: Vec<String>,
    /// segmentation, from_label, to_label, accounts, arr_start, arr_end
    pub transitions: DataFrame,
    /// segmentation, label, accounts_start, starting_arr, expansion,
    /// contraction, churned_arr, ending_arr, nrr, grr
    pub retention: DataFrame,
    /// One row: starting_arr, new_arr, expansion, contraction, churned_arr,
    /// ending_arr and the account counts.
    pub bridge: DataFrame,
    /// segmentation, account_id, from_label, to_label, from_rule, to_rule,
    /// arr_start, arr_end
    pub moves: DataFrame,
}

/// Which segmentations two snapshots share. Different segmentations, or the
/// same one with other labels, are refused unless one is named.
pub fn segmentations_to_compare(from: &Manifest, to: &Manifest, only: Option<&str>) -> Result<Vec<String>> {
    let labels = |m: &Manifest, name: &str| -> Option<Vec<String>> {
        m.segmentations
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.labels.iter().map(|l| l.label.clone()).collect())
    };
    if let Some(name) = only {
        for m in [from, to] {
            if labels(m, name).is_none() {
                let known: Vec<&str> = m.segmentations.iter().map(|s| s.name.as_str()).collect();
                let near = crate::error::did_you_mean(name, known.iter().copied())
                    .map(|h| format!(" ({h})"))
                    .unwrap_or_default();
                return Err(Error::config(format!(
                    "cycle {} has no segmentation `{name}`{near}; it has: {}",
                    m.cycle,
                    known.join(", ")
                )));
            }
        }
        return Ok(vec![name.to_string()]);
    }
    let names = |m: &Manifest| m.segmentations.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
    let mut problems = Vec::new();
    let (a, b) = (names(from), names(to));
    if a != b {
        problems.push(format!(
            "cycle {} has segmentations {}, cycle {} has {}",
            from.cycle,
            a.join(", "),
            to.cycle,
            b.join(", ")
        ));
    }
    for name in a.iter().filter(|n| b.contains(n)) {
        let (la, lb) = (
            labels(from, name).unwrap_or_default(),
            labels(to, name).unwrap_or_default(),
        );
        let (mut sa, mut sb) = (la.clone(), lb.clone());
        sa.sort();
        sb.sort();
        if sa != sb {
            problems.push(format!(
                "segmentation `{name}` has labels {} in {} but {} in {}",
                la.join(", "),
                from.cycle,
                lb.join(", "),
                to.cycle
            ));
        }
    }
    if !problems.is_empty() {
        return Err(Error::config(format!(
            "the snapshots of {} and {} were made by pipelines that segment differently:\n  {}\n  help: pass --segmentation NAME to compare one segmentation anyway",
            from.cycle,
            to.cycle,
            problems.join("\n  ")
        )));
    }
    Ok(a)
}

fn side(snapshots: &Snapshots, manifest: &Manifest, segmentation: &str, suffix: &str) -> Result<LazyFrame> {
    Ok(snapshots.scan_committed(manifest)?.select([
        col("account_id"),
        col("arr").cast(DataType::Float64).alias(format!("arr_{suffix}")),
        col(segmentation).alias(format!("label_{suffix}")),
        col(format!("{segmentation}_rule")).alias(format!("rule_{suffix}")),
    ]))
}

/// Accounts of both cycles side by side for one segmentation.
fn joined(snapshots: &Snapshots, from: &Manifest, to: &Manifest, segmentation: &str) -> Result<LazyFrame> {
    let start = side(snapshots, from, segmentation, "start")?;
    let end = side(snapshots, to, segmentation, "end")?;
    Ok(start
        .join(
            end,
            [col("account_id")],
            [col("account_id")],
            JoinArgs::new(JoinType::Full).with_coalesce(JoinCoalesce::CoalesceColumns),
        )
        .with_columns([
            col("label_start").fill_null(lit(NEW)).alias("from_label"),
            col("label_end").fill_null(lit(CHURNED)).alias("to_label"),
            col("arr_start").fill_null(lit(0.0)),
            col("arr_end").fill_null(lit(0.0)),
            col("label_start").is_not_null().alias("in_start"),
            col("label_end").is_not_null().alias("in_end"),
        ]))
}

/// ARR gained by accounts present in both cycles.
fn expansion() -> Expr {
    let both = col("in_start").and(col("in_end"));
    (col("arr_end") - col("arr_start"))
        .clip_min(lit(0.0))
        .filter(both)
        .sum()
        .alias("expansion")
}

/// ARR lost by accounts present in both cycles.
fn contraction() -> Expr {
    let both = col("in_start").and(col("in_end"));
    (col("arr_start") - col("arr_end"))
        .clip_min(lit(0.0))
        .filter(both)
        .sum()
        .alias("contraction")
}

/// Starting ARR of the accounts that are gone at the end.
fn churned_arr() -> Expr {
    col("arr_start").filter(col("in_end").not()).sum().alias("churned_arr")
}

pub fn compare(
    snapshots: &Snapshots,
    from: &Manifest,
    to: &Manifest,
    segmentations: Vec<String>,
) -> Result<Comparison> {
    let mut transitions = Vec::new();
    let mut retention = Vec::new();
    let mut moves = Vec::new();
    for name in &segmentations {
        let j = joined(snapshots, from, to, name)?.cache();
        transitions.push(
            j.clone()
                .group_by([col("from_label"), col("to_label")])
                .agg([
                    len().cast(DataType::Int64).alias("accounts"),
                    col("arr_start").sum(),
                    col("arr_end").sum(),
                ])
                .with_column(lit(name.as_str()).alias("segmentation")),
        );
        retention.push(
            j.clone()
                .filter(col("in_start"))
                .group_by([col("from_label").alias("label")])
                .agg([
                    len().cast(DataType::Int64).alias("accounts_start"),
                    col("arr_start").sum().alias("starting_arr"),
                    expansion(),
                    contraction(),
                    churned_arr(),
                    col("arr_end").sum().alias("ending_arr"),
                    polars::lazy::dsl::min_horizontal([col("arr_start"), col("arr_end")])
                        .ctx(|| "cannot compute gross revenue retention".into())?
                        .sum()
                        .alias("kept_arr"),
                ])
                .with_columns([
                    lit(name.as_str()).alias("segmentation"),
                    when(col("starting_arr").gt(lit(0.0)))
                        .then(col("ending_arr") / col("starting_arr"))
                        .otherwise(lit(NULL))
                        .alias("nrr"),
                    when(col("starting_arr").gt(lit(0.0)))
                        .then(col("kept_arr") / col("starting_arr"))
                        .otherwise(lit(NULL))
                        .alias("grr"),
                ]),
        );
        moves.push(
            j.filter(col("from_label").neq(col("to_label")))
                .with_column(lit(name.as_str()).alias("segmentation"))
                .select([
                    col("segmentation"),
                    col("account_id"),
                    col("from_label"),
                    col("to_label"),
                    col("rule_start").alias("from_rule"),
                    col("rule_end").alias("to_rule"),
                    col("arr_start"),
                    col("arr_end"),
                ]),
        );
    }
    let stack = |frames: Vec<LazyFrame>, columns: &[&str], sort: &[&str]| -> Result<DataFrame> {
        concat(frames, UnionArgs::default())
            .and_then(|lf| {
                lf.select(columns.iter().map(|c| col(*c)).collect::<Vec<_>>())
                    .sort(sort.to_vec(), SortMultipleOptions::default())
                    .collect()
            })
            .ctx(|| format!("cannot compare {} and {}", from.cycle, to.cycle))
    };
    let transitions = stack(
        transitions,
        &[
            "segmentation",
            "from_label",
            "to_label",
            "accounts",
            "arr_start",
            "arr_end",
        ],
        &["segmentation", "from_label", "to_label"],
    )?;
    let retention = stack(
        retention,
        &[
            "segmentation",
            "label",
            "accounts_start",
            "starting_arr",
            "expansion",
            "contraction",
            "churned_arr",
            "ending_arr",
            "nrr",
            "grr",
        ],
        &["segmentation", "label"],
    )?;
    let moves = stack(
        moves,
        &[
            "segmentation",
            "account_id",
            "from_label",
            "to_label",
            "from_rule",
            "to_rule",
            "arr_start",
            "arr_end",
        ],
        &["segmentation", "account_id"],
    )?;
    let first = segmentations
        .first()
        .ok_or_else(|| Error::config("no segmentation to compare"))?;
    let bridge = joined(snapshots, from, to, first)?
        .select([
            col("arr_start").sum().alias("starting_arr"),
            col("arr_end").filter(col("in_start").not()).sum().alias("new_arr"),
            expansion(),
            contraction(),
            churned_arr(),
            col("arr_end").sum().alias("ending_arr"),
            col("in_start").cast(DataType::Int64).sum().alias("accounts_start"),
            col("in_start").not().cast(DataType::Int64).sum().alias("accounts_new"),
            col("in_end")
                .not()
                .cast(DataType::Int64)
                .sum()
                .alias("accounts_churned"),
            col("in_end").cast(DataType::Int64).sum().alias("accounts_end"),
        ])
        .collect()
        .ctx(|| "cannot compute the ARR bridge".into())?;
    Ok(Comparison {
        segmentations,
        transitions,
        retention,
        bridge,
        moves,
    })
}

/// Commits the comparison under `compare/from=C1/to=C2/` through the
/// snapshot store. A comparison derives from immutable snapshots, so a rerun
/// replaces it.
pub fn commit(snapshots: &Snapshots, from: &Manifest, to: &Manifest, c: &Comparison) -> Result<CompareManifest> {
    let [transitions, retention, bridge, moves] = snapshot::layout::COMPARE_TABLES;
    let tables = [
        (transitions, &c.transitions),
        (retention, &c.retention),
        (bridge, &c.bridge),
        (moves, &c.moves),
    ];
    snapshots.commit_comparison(from, to, &c.segmentations, &tables)
}

/// One cell of a migration matrix.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Cell {
    pub accounts: u64,
    pub arr_start: f64,
    pub arr_end: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Retention {
    pub label: String,
    pub accounts_start: u64,
    pub starting_arr: f64,
    pub expansion: f64,
    pub contraction: f64,
    pub churned_arr: f64,
    pub ending_arr: f64,
    pub nrr: Option<f64>,
    pub grr: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SegmentationReport {
    pub name: String,
    /// Start labels in the pipeline's order, then `new`.
    pub rows: Vec<String>,
    /// End labels in the pipeline's order, then `churned`.
    pub columns: Vec<String>,
    pub cells: Vec<Vec<Cell>>,
    pub retention: Vec<Retention>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Bridge {
    pub starting_arr: f64,
    pub new_arr: f64,
    pub expansion: f64,
    pub contraction: f64,
    pub churned_arr: f64,
    pub ending_arr: f64,
    pub accounts_start: u64,
    pub accounts_new: u64,
    pub accounts_churned: u64,
    pub accounts_end: u64,
}

/// A comparison arranged for people: matrices in label order.
pub struct Report {
    pub segmentations: Vec<SegmentationReport>,
    pub bridge: Bridge,
}

fn text(frame: &DataFrame, column: &str, i: usize) -> String {
    match frame.column(column).and_then(|c| c.get(i)) {
        Ok(AnyValue::String(s)) => s.to_string(),
        Ok(AnyValue::StringOwned(s)) => s.to_string(),
        _ => String::new(),
    }
}

fn number(frame: &DataFrame, column: &str, i: usize) -> Option<f64> {
    frame.column(column).ok()?.get(i).ok()?.extract::<f64>()
}

impl Report {
    pub fn new(from: &Manifest, to: &Manifest, c: &Comparison) -> Result<Report> {
        let order = |m: &Manifest, name: &str| -> Vec<String> {
            m.segmentations
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.labels.iter().map(|l| l.label.clone()).collect())
                .unwrap_or_default()
        };
        let mut segmentations = Vec::new();
        for name in &c.segmentations {
            let t = &c.transitions;
            let mine: Vec<usize> = (0..t.height())
                .filter(|&i| text(t, "segmentation", i) == *name)
                .collect();
            let mut rows = order(from, name);
            let mut columns = order(to, name);
            for &i in &mine {
                let (f, to_label) = (text(t, "from_label", i), text(t, "to_label", i));
                if f != NEW && !rows.contains(&f) {
                    rows.push(f);
                }
                if to_label != CHURNED && !columns.contains(&to_label) {
                    columns.push(to_label);
                }
            }
            rows.push(NEW.to_string());
            columns.push(CHURNED.to_string());
            let mut cells = vec![vec![Cell::default(); columns.len()]; rows.len()];
            for &i in &mine {
                let r = rows
                    .iter()
                    .position(|l| *l == text(t, "from_label", i))
                    .expect("row listed");
                let k = columns
                    .iter()
                    .position(|l| *l == text(t, "to_label", i))
                    .expect("column listed");
                cells[r][k] = Cell {
                    accounts: number(t, "accounts", i).unwrap_or(0.0) as u64,
                    arr_start: number(t, "arr_start", i).unwrap_or(0.0),
                    arr_end: number(t, "arr_end", i).unwrap_or(0.0),
                };
            }
            let rt = &c.retention;
            let mut retention: Vec<Retention> = (0..rt.height())
                .filter(|&i| text(rt, "segmentation", i) == *name)
                .map(|i| Retention {
                    label: text(rt, "label", i),
                    accounts_start: number(rt, "accounts_start", i).unwrap_or(0.0) as u64,
                    starting_arr: number(rt, "starting_arr", i).unwrap_or(0.0),
                    expansion: number(rt, "expansion", i).unwrap_or(0.0),
                    contraction: number(rt, "contraction", i).unwrap_or(0.0),
                    churned_arr: number(rt, "churned_arr", i).unwrap_or(0.0),
                    ending_arr: number(rt, "ending_arr", i).unwrap_or(0.0),
                    nrr: number(rt, "nrr", i),
                    grr: number(rt, "grr", i),
                })
                .collect();
            retention.sort_by_key(|r| rows.iter().position(|l| *l == r.label).unwrap_or(usize::MAX));
            segmentations.push(SegmentationReport {
                name: name.clone(),
                rows,
                columns,
                cells,
                retention,
            });
        }
        let b = &c.bridge;
        let get = |col: &str| number(b, col, 0).unwrap_or(0.0);
        let bridge = Bridge {
            starting_arr: get("starting_arr"),
            new_arr: get("new_arr"),
            expansion: get("expansion"),
            contraction: get("contraction"),
            churned_arr: get("churned_arr"),
            ending_arr: get("ending_arr"),
            accounts_start: get("accounts_start") as u64,
            accounts_new: get("accounts_new") as u64,
            accounts_churned: get("accounts_churned") as u64,
            accounts_end: get("accounts_end") as u64,
        };
        Ok(Report { segmentations, bridge })
    }
}
