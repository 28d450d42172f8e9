//! The usage pass: window masks and every aggregate per account in one
//! streaming group-by, the counters the usage checks read, and the join of
//! the aggregates onto the accounts.
//!
//! An aggregate's window is the dates `d` with
//! `as_of - offset - window < d <= as_of - offset`. All aggregates are
//! computed in one streaming pass over the usage rows, grouped by account.

use chrono::NaiveDate;
use polars::prelude::*;

use super::lower::{date_lit, exact_div};
use super::parquet_pass::ParquetPass;
use super::source::Scan;
use crate::config::{Agg, Check};
use crate::engine::REASON;
use crate::engine::UsagePass;
use crate::error::{Context, Result};
use crate::plan::{Plan, UsageRows};

pub use crate::engine::{NEGATIVE_ROWS, ROWS};

pub use crate::plan::window;

/// True for usage rows with a negative value in a metric the aggregates read.
pub fn negative_metric(plan: &Plan) -> Expr {
    plan.usage_columns()
        .into_iter()
        .map(|c| col(c).lt(lit(0)))
        .reduce(|a, b| a.or(b))
        .unwrap_or(lit(false))
        .fill_null(lit(false))
}

/// Rows of usage that fall in some window.
pub fn in_range(usage: LazyFrame, plan: &Plan, as_of: NaiveDate) -> LazyFrame {
    match plan.usage_range(as_of) {
        Some((after, through)) => usage.filter(
            col("date")
                .gt(date_lit(after))
                .and(col("date").lt_eq(date_lit(through))),
        ),
        None => usage.filter(lit(false)),
    }
}

/// One row per account id found in the usage windows, with every
/// aggregate. With `drop_negative`, rows with a negative metric are left out
/// of the aggregates (they are still counted in [`NEGATIVE_ROWS`]).
///
/// Each aggregate's window is first applied as a masked column (the value
/// inside the window, null outside), so that the grouping itself uses only
/// plain aggregations, which polars' streaming engine runs in bounded memory.
pub fn aggregate_usage(usage: LazyFrame, plan: &Plan, as_of: NaiveDate, drop_negative: bool) -> LazyFrame {
    let negative = negative_metric(plan);
    let mut masks = Vec::new();
    let mut aggs: Vec<Expr> = Vec::new();
    for (i, a) in plan.aggregates.iter().enumerate() {
        let (after, through) = window(a, as_of);
        let mut keep = col("date")
            .gt(date_lit(after))
            .and(col("date").lt_eq(date_lit(through)));
        if drop_negative {
            keep = keep.and(negative.clone().not());
        }
        let masked = format!("__window_{i}");
        let value = col(a.column.as_str());
        // Sums add zero for a row outside the window and counts add a false,
        // so their masked columns carry no nulls the group-by must skip.
        let value = match a.agg {
            Agg::Sum | Agg::PerDay => when(keep.clone()).then(value).otherwise(lit(0)),
            Agg::Count => keep.clone().and(value.is_not_null()),
            _ => when(keep.clone()).then(value).otherwise(lit(NULL)),
        };
        let m = col(masked.as_str());
        let agg = match a.agg {
            Agg::Sum => m.sum(),
            Agg::Count => m.sum().cast(DataType::Int64),
            Agg::Mean => m.mean(),
            Agg::Min => m.min(),
            Agg::Max => m.max(),
            Agg::NUnique => m.drop_nulls().n_unique().cast(DataType::Int64),
            // The latest non-null value; on a tie of dates the largest: the
            // largest value among the rows on the latest date. (A sort_by
            // per group fails in polars 0.55 once two `last` aggregates share
            // the group-by.)
            Agg::Last => {
                let dated = format!("__window_{i}_date");
                masks.push(
                    when(keep.and(col(a.column.as_str()).is_not_null()))
                        .then(col("date"))
                        .otherwise(lit(NULL))
                        .alias(dated.as_str()),
                );
                let d = col(dated.as_str());
                m.filter(d.clone().eq(d.max())).max()
            }
            // Divided by the window after grouping (see `per_day`).
            Agg::PerDay => m.sum(),
        };
        masks.push(value.alias(masked.as_str()));
        aggs.push(agg.alias(a.name.as_str()));
    }
    aggs.push(len().cast(DataType::Int64).alias(ROWS));
    aggs.push(col(NEGATIVE_ROWS).sum().cast(DataType::Int64).alias(NEGATIVE_ROWS));
    masks.push(negative.alias(NEGATIVE_ROWS));
    let grouped = in_range(usage, plan, as_of)
        .with_columns(masks)
        .group_by([col("account_id")])
        .agg(aggs);
    per_day(grouped, plan)
}

/// The suffix of cycle `k`'s columns in a pass over several cycles (the
/// Spark engine's one query for a backfill).
pub fn cycle_suffix(k: usize) -> String {
    format!("__cycle_{k}")
}

/// Splits the grouped usage of several cycles (each aggregate and counter
/// once per cycle, named with [`cycle_suffix`]) into one frame per cycle,
/// as the pass of that cycle alone gives it: the accounts with a row in its
/// range, the aggregates under their own names, `per_day` divided.
pub fn split_cycles(wide: &DataFrame, plan: &Plan, cycles: usize) -> Result<Vec<DataFrame>> {
    (0..cycles)
        .map(|k| {
            let suffix = cycle_suffix(k);
            let rows = format!("{ROWS}{suffix}");
            let columns: Vec<Expr> = std::iter::once(col("account_id"))
                .chain(
                    plan.aggregates
                        .iter()
                        .map(|a| col(format!("{}{suffix}", a.name)).alias(a.name.as_str())),
                )
                .chain([
                    col(rows.as_str()).alias(ROWS),
                    col(format!("{NEGATIVE_ROWS}{suffix}")).alias(NEGATIVE_ROWS),
                ])
                .collect();
            per_day(
                wide.clone()
                    .lazy()
                    .filter(col(rows.as_str()).gt(lit(0)))
                    .select(columns),
                plan,
            )
            .collect()
            .ctx(|| "cannot split the usage aggregates by cycle".into())
        })
        .collect()
}

/// Divides each `per_day` aggregate, grouped as a sum, by its window: the
/// one step after the grouping, whichever engine grouped.
pub fn per_day(grouped: LazyFrame, plan: &Plan) -> LazyFrame {
    let per_day: Vec<Expr> = plan
        .aggregates
        .iter()
        .filter(|a| a.agg == Agg::PerDay)
        .map(|a| exact_div(col(a.name.as_str()), lit(a.window_days as f64)).alias(a.name.as_str()))
        .collect();
    if per_day.is_empty() {
        grouped
    } else {
        grouped.with_columns(per_day)
    }
}

/// Usage rows without a date, per account id: in no window, so not in the
/// usage pass; read in a pass of their own, which Parquet's null counts let
/// skip every row group without one.
pub fn undated(usage: LazyFrame) -> LazyFrame {
    usage
        .filter(col("date").is_null())
        .group_by([col("account_id")])
        .agg([len().cast(DataType::Int64).alias(ROWS)])
}

/// Joins the aggregates onto the accounts, filling the zero that an
/// account without usage in a window gets for sum, count, per_day and
/// n_unique.
pub fn join_aggregates(accounts: LazyFrame, grouped: LazyFrame, plan: &Plan) -> LazyFrame {
    let names: Vec<Expr> = std::iter::once(col("account_id"))
        .chain(plan.aggregates.iter().map(|a| col(a.name.as_str())))
        .collect();
    let fills: Vec<Expr> = plan
        .aggregates
        .iter()
        .filter(|a| a.agg.zero_when_empty())
        .map(|a| {
            let zero = if matches!(a.agg, Agg::PerDay) { lit(0.0) } else { lit(0) };
            col(a.name.as_str()).fill_null(zero)
        })
        .collect();
    let joined = accounts.join(
        grouped.select(names),
        [col("account_id")],
        [col("account_id")],
        JoinArgs {
            maintain_order: MaintainOrderJoin::Left,
            ..JoinArgs::new(JoinType::Left)
        },
    );
    if fills.is_empty() {
        joined
    } else {
        joined.with_columns(fills)
    }
}

/// The usage pass on this machine: the Parquet files read directly
/// ([`ParquetPass`]), every cycle of the run in one pass, or polars'
/// streaming engine over the scan when a file needs its conforming.
pub struct LocalUsage<'a> {
    scan: &'a Scan,
    direct: Option<ParquetPass>,
}

impl<'a> LocalUsage<'a> {
    pub fn new(scan: &'a Scan) -> Result<LocalUsage<'a>> {
        Ok(LocalUsage {
            scan,
            direct: ParquetPass::open(scan)?,
        })
    }
}

impl UsagePass for LocalUsage<'_> {
    fn read_by(&self) -> Option<String> {
        None
    }

    fn uri(&self) -> &str {
        &self.scan.uri
    }

    fn span(&self) -> Result<crate::plan::UsageSpan> {
        // The files' statistics give it without reading a row, when every
        // row group with dates has them.
        match self.direct.as_ref().and_then(|d| d.span()) {
            Some(Some((first, last))) => Ok(crate::plan::UsageSpan {
                first: crate::cycle::from_epoch_days(first),
                last: crate::cycle::from_epoch_days(last),
            }),
            Some(None) => Err(crate::error::SchemaError::NoDatedUsage {
                uri: self.scan.uri.clone(),
            }
            .into()),
            None => self.scan.span(),
        }
    }

    fn aggregate(&self, plan: &Plan, as_of: NaiveDate, drop_negative: bool) -> Result<DataFrame> {
        if let Some(direct) = &self.direct {
            let mut frames = direct.aggregate_cycles(plan, &[as_of], drop_negative)?;
            return Ok(frames.remove(0));
        }
        aggregate_usage(self.scan.frame.clone(), plan, as_of, drop_negative)
            .collect_with_engine(Engine::Streaming)
            .map(|r| r.unwrap_single())
            .map_err(|e| self.scan.read_error(e))
    }

    fn aggregates_cycles_in_one_pass(&self) -> bool {
        self.direct.is_some()
    }

    fn aggregate_cycles(&self, plan: &Plan, as_ofs: &[NaiveDate], drop_negative: bool) -> Result<Vec<DataFrame>> {
        match &self.direct {
            Some(direct) => direct.aggregate_cycles(plan, as_ofs, drop_negative),
            None => as_ofs.iter().map(|d| self.aggregate(plan, *d, drop_negative)).collect(),
        }
    }

    fn undated(&self) -> Result<DataFrame> {
        undated(self.scan.frame.clone())
            .collect_with_engine(Engine::Streaming)
            .map(|r| r.unwrap_single())
            .map_err(|e| self.scan.read_error(e))
    }

    fn rejected(&self, plan: &Plan, as_of: NaiveDate, check: Check, unknown_ids: &DataFrame) -> Result<DataFrame> {
        let usage = self.scan.frame.clone();
        let rows = in_range(usage.clone(), plan, as_of);
        let Some(which) = UsageRows::of(check) else {
            return Ok(DataFrame::empty());
        };
        let flagged = match which {
            UsageRows::NullAccountId => rows.filter(col("account_id").is_null()),
            UsageRows::NullDate => usage.filter(col("date").is_null()),
            UsageRows::UnknownAccount => rows.join(
                unknown_ids.clone().lazy().select([col("account_id")]),
                [col("account_id")],
                [col("account_id")],
                JoinArgs::new(JoinType::Semi),
            ),
            UsageRows::NegativeMetric => rows.filter(negative_metric(plan)),
        };
        flagged
            .with_column(lit(check.name()).alias(REASON))
            .collect_with_engine(Engine::Streaming)
            .map(|r| r.unwrap_single())
            .ctx(|| format!("cannot read rejected usage rows of `{}`", self.scan.uri))
    }
}

/// The usage pass of a cycle as it will run: the direct read of the
/// Parquet files, or polars' optimized plan.
pub fn describe(plan: &Plan, usage: &Scan, as_of: NaiveDate) -> Result<String> {
    if let Some(direct) = ParquetPass::open(usage)? {
        return Ok(direct.describe(plan, as_of));
    }
    aggregate_usage(usage.frame.clone(), plan, as_of, plan.drops_negative_usage())
        .describe_optimized_plan()
        .ctx(|| "cannot describe the usage pass".into())
}
