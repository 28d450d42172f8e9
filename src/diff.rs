//! What-if: a committed snapshot against a new pipeline's labels for the
//! same accounts. Per segmentation both have, the migration matrix
//! (committed label -> new label, accounts and ARR), the rules whose hit
//! counts change, and the accounts that move.
//!
//! `diff` holds the cycle still and changes the pipeline; [`crate::compare`]
//! holds the pipeline still and changes the cycle (two committed cycles).

use polars::prelude::*;
use serde::Serialize;

use crate::error::{Context, Result};

/// One cell of a what-if migration matrix.
#[derive(Debug, Clone, Serialize)]
pub struct Move {
    pub from: String,
    pub to: String,
    pub accounts: u64,
    pub arr: f64,
}

/// A rule whose number of accounts changes.
#[derive(Debug, Clone, Serialize)]
pub struct RuleChange {
    pub rule: String,
    pub committed: u64,
    pub new: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SegmentationDiff {
    pub name: String,
    pub moved_accounts: u64,
    pub moved_arr: f64,
    /// Every (committed, new) pair with accounts, moved or not.
    pub matrix: Vec<Move>,
    pub rules: Vec<RuleChange>,
}

/// The label of an account that only one side has.
pub const ABSENT: &str = "(absent)";

/// The name of one side's column of a segmentation in [`side_by_side`].
fn side_column(side: &str, what: &str, segmentation: &str) -> String {
    format!("{side}_{what}:{segmentation}")
}

/// One side's columns of [`side_by_side`]: `account_id`, `<side>_arr`, and
/// each segmentation's label and rule.
fn pick(frame: LazyFrame, side: &str, segmentations: &[String]) -> LazyFrame {
    let mut columns = vec![col("account_id"), col("arr").alias(format!("{side}_arr"))];
    for s in segmentations {
        columns.push(col(s.as_str()).alias(side_column(side, "label", s)));
        columns.push(col(format!("{s}_rule")).alias(side_column(side, "rule", s)));
    }
    frame.select(columns)
}

/// What [`side_by_side`] reads of the committed snapshot: only the columns
/// it compares.
pub fn committed_side(committed: LazyFrame, segmentations: &[String]) -> Result<DataFrame> {
    pick(committed, "committed", segmentations)
        .collect()
        .ctx(|| "cannot read the committed snapshot's labels".into())
}

/// The committed and new label and rule of every account, side by side, for
/// each of `segmentations`, with one join: `account_id`, `arr`, and per
/// segmentation its `committed_label`, `committed_rule`, `new_label` and
/// `new_rule` ([`side_column`]), in account id order. `committed` is
/// [`committed_side`].
pub fn side_by_side(committed: DataFrame, new: &DataFrame, segmentations: &[String]) -> Result<DataFrame> {
    let mut columns = vec![
        col("account_id"),
        coalesce(&[col("new_arr"), col("committed_arr")]).alias("arr"),
    ];
    for s in segmentations {
        for side in ["committed", "new"] {
            for what in ["label", "rule"] {
                columns.push(col(side_column(side, what, s)).fill_null(lit(ABSENT)));
            }
        }
    }
    committed
        .lazy()
        .join(
            pick(new.clone().lazy(), "new", segmentations),
            [col("account_id")],
            [col("account_id")],
            JoinArgs {
                coalesce: JoinCoalesce::CoalesceColumns,
                ..JoinArgs::new(JoinType::Full)
            },
        )
        .select(columns)
        .sort(["account_id"], Default::default())
        .collect()
        .ctx(|| "cannot compare the committed snapshot's labels with the new ones".into())
}

/// One segmentation's columns of [`side_by_side`]: `account_id`, `arr`,
/// `committed_label`, `committed_rule`, `new_label`, `new_rule`.
fn one_segmentation(both: &DataFrame, segmentation: &str) -> Result<DataFrame> {
    let mut columns = vec![col("account_id"), col("arr")];
    for side in ["committed", "new"] {
        for what in ["label", "rule"] {
            columns.push(col(side_column(side, what, segmentation)).alias(format!("{side}_{what}")));
        }
    }
    both.clone()
        .lazy()
        .select(columns)
        .collect()
        .ctx(|| format!("cannot compare the labels of segmentation `{segmentation}`"))
}

fn strings(frame: &DataFrame, column: &str) -> Result<Vec<String>> {
    let c = frame
        .column(column)
        .ctx(|| format!("no column `{column}`"))?
        .str()
        .ctx(|| format!("`{column}` is not a string column"))?
        .clone();
    Ok(c.iter().map(|v| v.unwrap_or_default().to_string()).collect())
}

/// Compares one segmentation of [`side_by_side`]; returns the summary and
/// the moving accounts (with a `segmentation` column).
pub fn segmentation(both: &DataFrame, name: &str) -> Result<(SegmentationDiff, DataFrame)> {
    let both = one_segmentation(both, name)?;
    let cells = both
        .clone()
        .lazy()
        .group_by([col("committed_label"), col("new_label")])
        .agg([len().alias("accounts"), col("arr").sum().alias("arr")])
        .sort(["committed_label", "new_label"], Default::default())
        .collect()
        .ctx(|| format!("cannot count the moves of segmentation `{name}`"))?;
    let from = strings(&cells, "committed_label")?;
    let to = strings(&cells, "new_label")?;
    let accounts = cells
        .column("accounts")
        .ctx(|| "counts".into())?
        .cast(&DataType::UInt64)
        .ctx(|| "counts".into())?;
    let arr = cells
        .column("arr")
        .ctx(|| "arr".into())?
        .cast(&DataType::Float64)
        .ctx(|| "arr".into())?;
    let (accounts, arr) = (accounts.u64().expect("cast").clone(), arr.f64().expect("cast").clone());
    let matrix: Vec<Move> = (0..cells.height())
        .map(|i| Move {
            from: from[i].clone(),
            to: to[i].clone(),
            accounts: accounts.get(i).unwrap_or(0),
            arr: arr.get(i).unwrap_or(0.0),
        })
        .collect();
    let moved: Vec<&Move> = matrix.iter().filter(|m| m.from != m.to).collect();

    let count = |column: &str| -> Result<Vec<(String, u64)>> {
        let counts = both
            .clone()
            .lazy()
            .group_by([col(column)])
            .agg([len().alias("n")])
            .collect()
            .ctx(|| format!("cannot count the rules of segmentation `{name}`"))?;
        let names = strings(&counts, column)?;
        let n = counts
            .column("n")
            .ctx(|| "n".into())?
            .cast(&DataType::UInt64)
            .ctx(|| "n".into())?;
        let n = n.u64().expect("cast").clone();
        Ok(names.into_iter().zip(n.iter().map(|v| v.unwrap_or(0))).collect())
    };
    let (before, after) = (count("committed_rule")?, count("new_rule")?);
    let mut rules: Vec<String> = before.iter().chain(&after).map(|(r, _)| r.clone()).collect();
    rules.sort();
    rules.dedup();
    let find = |list: &[(String, u64)], r: &str| list.iter().find(|(x, _)| x == r).map_or(0, |(_, n)| *n);
    let rules = rules
        .into_iter()
        .filter(|r| r != ABSENT)
        .map(|r| RuleChange {
            committed: find(&before, &r),
            new: find(&after, &r),
            rule: r,
        })
        .filter(|c| c.committed != c.new)
        .collect();

    let moving = both
        .lazy()
        .filter(col("committed_label").neq(col("new_label")))
        .select([
            lit(name).alias("segmentation"),
            col("account_id"),
            col("arr"),
            col("committed_label"),
            col("committed_rule"),
            col("new_label"),
            col("new_rule"),
        ])
        .collect()
        .ctx(|| format!("cannot list the moves of segmentation `{name}`"))?;
    Ok((
        SegmentationDiff {
            name: name.to_string(),
            moved_accounts: moved.iter().map(|m| m.accounts).sum(),
            moved_arr: moved.iter().map(|m| m.arr).sum(),
            matrix,
            rules,
        },
        moving,
    ))
}
