//! One cycle, from the two datasets to the snapshot frame: point-in-time
//! accounts, data checks, usage aggregates, features and segment labels.
//! `run` writes what this returns; `explain` reads one account of it.

use std::sync::Mutex;

use chrono::NaiveDate;
use polars::prelude::*;

use super::aggregates as features;
use super::lower::date_lit;
use super::quality::{self, Outcome};
use super::rules;
use super::source::Scan;
use super::sum_u64;
use crate::config::{Check, Dataset};
use crate::cycle::Cycle;
use crate::engine::UsagePass;
use crate::error::{Context, Result, SchemaError};
use crate::expr::Type;
use crate::plan::Plan;

/// What a cycle reads of the cycle before it.
pub struct History {
    pub cycle: Cycle,
    /// The previous cycle's committed snapshot, when there is one: its
    /// `account_id` and each of [`Plan::previous_columns`], one row per
    /// account.
    pub previous: Option<DataFrame>,
}

/// The polars type a value of this type is read as when it is missing;
/// `None` when only the data tells (see [`with_previous`]).
fn dtype(ty: Type) -> Option<DataType> {
    match ty {
        Type::Num => Some(DataType::Float64),
        Type::Bool => Some(DataType::Boolean),
        Type::Date => Some(DataType::Date),
        Type::Str => Some(DataType::String),
        Type::Null | Type::Any => None,
    }
}

/// A column of the previous snapshot that is not there: null, typed when
/// the pipeline tells the type.
pub fn missing_previous(ty: Type, column: &str) -> Expr {
    match dtype(ty) {
        Some(t) => lit(NULL).cast(t),
        None => lit(NULL),
    }
    .alias(column)
}

/// Adds the previous cycle's columns to each account (null for an account
/// that was not in it, or when it is not committed). `prev(x)` of an input
/// column or an aggregate takes this cycle's type of `x`, whether the
/// previous snapshot has it or not and whichever type its table stored it
/// as (a Delta table stores a count as `long`): so `prev(x)`, and the
/// features computed from it, keep one type from cycle to cycle.
fn with_previous(mut frame: LazyFrame, plan: &Plan, history: &History) -> Result<LazyFrame> {
    let schema = frame
        .collect_schema()
        .ctx(|| "cannot read the accounts' columns".into())?;
    let typed: Vec<Expr> = plan
        .previous_columns()
        .iter()
        .filter_map(|c| Some(col(c.column.as_str()).cast(schema.get(&c.source)?.clone())))
        .collect();
    let joined = match &history.previous {
        Some(previous) => frame.join(
            previous.clone().lazy(),
            [col("account_id")],
            [col("account_id")],
            JoinArgs {
                maintain_order: MaintainOrderJoin::Left,
                ..JoinArgs::new(JoinType::Left)
            },
        ),
        None => frame.with_columns(
            plan.previous_columns()
                .iter()
                .map(|c| missing_previous(c.ty, &c.column))
                .collect::<Vec<_>>(),
        ),
    };
    Ok(if typed.is_empty() {
        joined
    } else {
        joined.with_columns(typed)
    })
}

/// A previous column still of no type after the features (`prev(f)` of a
/// feature whose type only the data tells, missing from the previous
/// snapshot) takes this cycle's type of `f`, so that the snapshot's column
/// keeps one type from cycle to cycle (Delta tables require it).
fn type_previous(mut frame: LazyFrame, plan: &Plan) -> Result<LazyFrame> {
    let schema = frame
        .collect_schema()
        .ctx(|| "cannot compute features and segments".into())?;
    let typed: Vec<Expr> = plan
        .previous_columns()
        .iter()
        .filter(|c| schema.get(&c.column) == Some(&DataType::Null))
        .filter_map(|c| Some(col(c.column.as_str()).cast(schema.get(&c.source)?.clone())))
        .collect();
    Ok(if typed.is_empty() {
        frame
    } else {
        frame.with_columns(typed)
    })
}

/// What a cycle's evaluation produced.
pub struct Evaluation {
    /// The snapshot's rows and columns, sorted by account id.
    pub snapshot: DataFrame,
    pub quality: Outcome,
    pub accounts_rows: u64,
    pub usage_rows_in_windows: u64,
    pub timings: Vec<(&'static str, f64)>,
}

/// Runs a stage, logging and showing its time and what it counted.
fn timed<T>(
    timings: &mut Vec<(&'static str, f64)>,
    stage: &'static str,
    f: impl FnOnce() -> Result<T>,
    count: impl FnOnce(&T) -> String,
) -> Result<T> {
    crate::progress::started(stage);
    let start = std::time::Instant::now();
    let out = f()?;
    let secs = start.elapsed().as_secs_f64();
    let detail = count(&out);
    crate::progress::stage_done(stage, secs, &detail);
    timings.push((stage, secs));
    Ok(out)
}

/// The accounts dataset as the cycles of a command read it. Each cycle
/// selects its accounts from one read of the dataset, sorted by account id
/// once (stable, so rows of one id keep the data's order); a backfill keeps
/// that read for the cycles after the first instead of reading and sorting
/// the dataset again for each.
pub struct Accounts<'a> {
    pub scan: &'a Scan,
    /// The read kept between cycles; `None` when each cycle reads anew.
    kept: Option<Mutex<Option<AccountBase>>>,
}

/// Every row of the accounts dataset, sorted by account id.
#[derive(Clone)]
struct AccountBase {
    rows: DataFrame,
    /// Every account id of the dataset, for the unknown-account check.
    known_ids: DataFrame,
}

impl<'a> Accounts<'a> {
    /// For one cycle: the dataset is read for it and let go after it.
    pub fn once(scan: &'a Scan) -> Accounts<'a> {
        Accounts { scan, kept: None }
    }

    /// For several cycles: the dataset is read once, by the first.
    pub fn kept(scan: &'a Scan) -> Accounts<'a> {
        Accounts {
            scan,
            kept: Some(Mutex::new(None)),
        }
    }

    fn base(&self) -> Result<AccountBase> {
        let Some(kept) = &self.kept else {
            return read_base(self.scan);
        };
        let mut kept = kept.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(base) = &*kept {
            return Ok(base.clone());
        }
        let base = read_base(self.scan)?;
        *kept = Some(base.clone());
        Ok(base)
    }
}

/// Reads every row of the accounts dataset and sorts it by account id.
fn read_base(accounts: &Scan) -> Result<AccountBase> {
    let all_accounts = accounts.frame.clone().collect().map_err(|e| accounts.read_error(e))?;
    if all_accounts.height() == 0 {
        return Err(SchemaError::NoRows {
            dataset: Dataset::Accounts.to_string(),
            uri: accounts.uri.clone(),
            files: accounts.files.len(),
        }
        .into());
    }
    let known_ids = all_accounts
        .select(["account_id"])
        .ctx(|| format!("cannot read the account ids of `{}`", accounts.uri))?;
    // A fixed row order makes base-wide float sums, and so every feature, the
    // same from run to run; the selections below keep it.
    // Datasets often come sorted by id: checking costs one look at each
    // neighbour, sorting a string sort of the whole base.
    let sorted = all_accounts
        .column("account_id")
        .and_then(|ids| ids.as_materialized_series().is_sorted(SortOptions::default()))
        .ctx(|| format!("cannot sort the accounts of `{}`", accounts.uri))?;
    let rows = if sorted {
        all_accounts
    } else {
        all_accounts
            .sort(["account_id"], SortMultipleOptions::default().with_maintain_order(true))
            .ctx(|| format!("cannot sort the accounts of `{}`", accounts.uri))?
    };
    Ok(AccountBase { rows, known_ids })
}

/// The accounts valid for the cycle, after point-in-time selection and the
/// account checks.
struct CycleAccounts {
    /// Sorted by account id.
    frame: DataFrame,
    /// Every account id of the dataset, for the unknown-account check.
    known_ids: DataFrame,
    rows: u64,
    outcome: Outcome,
}

pub fn evaluate(
    plan: &Plan,
    accounts: &Accounts,
    usage: &dyn UsagePass,
    as_of: NaiveDate,
    history: &History,
) -> Result<Evaluation> {
    // The accounts are read and checked on a thread of their own while the
    // usage streams through the group-by: the two do not depend on each other,
    // and the group-by alone does not keep both cores busy.
    let drop_negative = plan.drops_negative_usage();
    let mut timings = Vec::new();
    let mut usage_timings = Vec::new();
    let span = tracing::Span::current();
    let (accounts, grouped) = std::thread::scope(|scope| {
        let accounts = scope.spawn(|| {
            let _run = span.enter();
            timed(
                &mut timings,
                "scan_accounts",
                || cycle_accounts(plan, accounts, as_of),
                |a| format!("{} account rows, {} in the cycle", a.rows, a.frame.height()),
            )
        });
        let grouped = timed(
            &mut usage_timings,
            "aggregate_usage",
            || usage.aggregate(plan, as_of, drop_negative),
            |g| format!("{} accounts with usage", g.height()),
        );
        (
            accounts.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            grouped,
        )
    });
    timings.extend(usage_timings);
    // An error in the accounts is reported before one in the usage, as if
    // they had been read one after the other.
    let CycleAccounts {
        frame,
        known_ids,
        rows: accounts_rows,
        mut outcome,
    } = accounts?;
    let grouped = grouped?;

    let usage_rows_in_windows = sum_u64(&grouped, crate::engine::ROWS)?;
    if usage_rows_in_windows == 0
        && let Some((after, through)) = plan.usage_range(as_of)
    {
        return Err(SchemaError::NoUsageInWindows {
            uri: usage.uri().to_string(),
            after,
            through,
            as_of,
        }
        .into());
    }
    quality::usage_findings(plan, usage, &grouped, &known_ids, as_of, &mut outcome)?;
    // Undated usage rows are in no window but are read all the same: a drop
    // of them weighs against them too.
    let undated_rows: u64 = outcome
        .findings
        .iter()
        .filter(|f| f.check == Check::NullUsageDate)
        .map(|f| f.rows)
        .sum();
    outcome.enforce(
        plan,
        &[
            (
                Dataset::Accounts,
                frame.height() as u64 + outcome.dropped(Dataset::Accounts),
            ),
            (Dataset::Usage, usage_rows_in_windows + undated_rows),
        ],
    )?;

    let snapshot = timed(
        &mut timings,
        "features_and_rules",
        || {
            let joined = features::join_aggregates(frame.lazy(), grouped.lazy(), plan);
            let joined = with_previous(joined, plan, history)?;
            let with_features = type_previous(super::features::add_features(joined, plan, as_of), plan)?;
            let mut columns: Vec<Expr> = plan.columns.iter().map(|c| col(c.as_str())).collect();
            columns[0] = date_lit(as_of).alias("as_of");
            rules::segment_all(with_features, &plan.segmentations, as_of, history.cycle)
                // Still in account id order: the join keeps the left order.
                .select(columns)
                .collect()
                .ctx(|| "cannot compute features and segments".into())
        },
        |f| format!("{} accounts segmented", f.height()),
    )?;

    Ok(Evaluation {
        snapshot,
        quality: outcome,
        accounts_rows,
        usage_rows_in_windows,
        timings,
    })
}

/// Selects the accounts' rows valid at `as_of` and runs the account checks.
fn cycle_accounts(plan: &Plan, accounts: &Accounts, as_of: NaiveDate) -> Result<CycleAccounts> {
    let mut outcome = Outcome::default();
    let AccountBase {
        rows: all_accounts,
        known_ids,
    } = accounts.base()?;
    let accounts = accounts.scan;
    let has_snapshot_date = accounts.columns.iter().any(|c| c == "snapshot_date");
    let rows = all_accounts.height() as u64;

    // Point in time: rows dated after as_of do not exist yet for this cycle.
    let candidates = if has_snapshot_date {
        all_accounts
            .lazy()
            .filter(
                col("snapshot_date")
                    .is_null()
                    .or(col("snapshot_date").lt_eq(date_lit(as_of))),
            )
            .collect()
            .ctx(|| {
                format!(
                    "cannot select the accounts valid at {as_of} (snapshot_date) in `{}`",
                    accounts.uri
                )
            })?
    } else {
        all_accounts
    };

    let mut frame = quality::check_frame(
        candidates,
        Check::NullAccountId,
        col("account_id").is_null(),
        plan,
        &mut outcome,
    )?;
    // Sorted by id, an id of several rows has equal neighbours; when none
    // has, every id has one row: it is the latest, and no id is duplicated.
    let one_row_per_id = !repeats_a_neighbour(&frame)
        .ctx(|| format!("cannot run data check duplicate_account_id on `{}`", accounts.uri))?;
    if has_snapshot_date && !one_row_per_id {
        // The row valid at as_of is the latest dated one; undated rows count
        // only for accounts with no dated row.
        let latest = col("snapshot_date").max().over([col("account_id")]).ctx(|| {
            format!(
                "cannot select the accounts valid at {as_of} (snapshot_date) in `{}`",
                accounts.uri
            )
        })?;
        frame = frame
            .lazy()
            .filter(col("snapshot_date").eq_missing(latest))
            .collect()
            .ctx(|| {
                format!(
                    "cannot select the accounts valid at {as_of} (snapshot_date) in `{}`",
                    accounts.uri
                )
            })?;
    }
    if !one_row_per_id {
        frame = quality::check_frame(
            frame,
            Check::DuplicateAccountId,
            len()
                .over([col("account_id")])
                .ctx(|| format!("cannot run data check duplicate_account_id on `{}`", accounts.uri))?
                .gt(lit(1)),
            plan,
            &mut outcome,
        )?;
    }
    // In the cycle: onboarded by as_of and not churned by then. An account
    // not churned by then without an onboarding date is a finding; kept
    // (policy warn), it is in the cycle with an unknown tenure.
    let as_of_lit = date_lit(as_of);
    let not_churned = col("churned_on").is_null().or(col("churned_on").gt(as_of_lit.clone()));
    frame = quality::check_frame(
        frame,
        Check::NullCustomerSince,
        col("customer_since").is_null().and(not_churned.clone()),
        plan,
        &mut outcome,
    )?;
    frame = frame
        .lazy()
        .filter(
            col("customer_since")
                .is_null()
                .or(col("customer_since").lt_eq(as_of_lit))
                .and(not_churned)
                .fill_null(lit(false)),
        )
        .collect()
        .ctx(|| {
            format!(
                "cannot select the accounts in the cycle of {as_of} in `{}`",
                accounts.uri
            )
        })?;
    let frame = quality::account_values(frame, plan, &mut outcome)?;
    Ok(CycleAccounts {
        frame,
        known_ids,
        rows,
        outcome,
    })
}

/// Whether some row's account id equals the next row's (two nulls are
/// equal, as the window functions group them).
fn repeats_a_neighbour(frame: &DataFrame) -> PolarsResult<bool> {
    let ids = frame.column("account_id")?.as_materialized_series();
    if ids.len() < 2 {
        return Ok(false);
    }
    let pairs = ids.len() - 1;
    Ok(ids.slice(0, pairs).equal_missing(&ids.slice(1, pairs))?.any())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(values: &[Option<&str>]) -> DataFrame {
        DataFrame::new_infer_height(vec![Column::new("account_id".into(), values)]).unwrap()
    }

    #[test]
    fn neighbours_repeat_when_two_rows_share_an_id_or_both_have_none() {
        assert!(!repeats_a_neighbour(&ids(&[])).unwrap());
        assert!(!repeats_a_neighbour(&ids(&[Some("A")])).unwrap());
        assert!(!repeats_a_neighbour(&ids(&[None, Some("A"), Some("B")])).unwrap());
        assert!(repeats_a_neighbour(&ids(&[Some("A"), Some("B"), Some("B")])).unwrap());
        // Two null ids are one group to the windows, so a repeat here too.
        assert!(repeats_a_neighbour(&ids(&[None, None, Some("A")])).unwrap());
    }
}
