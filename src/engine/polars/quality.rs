//! Data checks and rejects. Each check flags rows; its policy decides
//! whether the run fails (`error`, exit 3), keeps them with a warning
//! (`warn`), or leaves them out and records them with a `reason` (`drop`).

use polars::prelude::*;

use chrono::NaiveDate;

use super::sum_u64;
use crate::config::{Check, Dataset, Policy};
use crate::engine::UsagePass;
use crate::error::{CheckFailure, Context, DataError, RatioFailure, Result};
use crate::plan::Finding;
use crate::plan::Plan;

pub use crate::engine::REASON;

/// Findings and rejected rows of one run.
#[derive(Default)]
pub struct Outcome {
    pub findings: Vec<Finding>,
    pub rejected_accounts: Vec<DataFrame>,
    pub rejected_usage: Vec<DataFrame>,
}

impl Outcome {
    /// The rejected rows per dataset, each in one frame (the columns of
    /// several checks unioned), for `rejects/`.
    pub fn rejects(&self) -> Result<Vec<(Dataset, DataFrame)>> {
        let mut out = Vec::new();
        for (dataset, frames) in [
            (Dataset::Accounts, &self.rejected_accounts),
            (Dataset::Usage, &self.rejected_usage),
        ] {
            if frames.is_empty() {
                continue;
            }
            let lazy: Vec<LazyFrame> = frames.iter().map(|f| f.clone().lazy()).collect();
            let frame = concat(lazy, UnionArgs::default())
                .and_then(|lf| lf.collect())
                .ctx(|| format!("cannot gather the rejected {dataset} rows"))?;
            out.push((dataset, frame));
        }
        Ok(out)
    }

    pub fn dropped(&self, dataset: Dataset) -> u64 {
        self.findings
            .iter()
            .filter(|f| f.dataset == dataset && f.policy == Policy::Drop)
            .map(|f| f.rows)
            .sum()
    }

    /// Fails the run when a check with the `error` policy found rows, or
    /// too large a share was dropped; names every failed check at once.
    pub fn enforce(&self, plan: &Plan, totals: &[(Dataset, u64)]) -> Result<()> {
        let failures: Vec<CheckFailure> = self
            .findings
            .iter()
            .filter(|f| f.policy == Policy::Error && f.rows > 0)
            .map(|f| CheckFailure {
                check: f.check.to_string(),
                dataset: f.dataset.to_string(),
                rows: f.rows,
                examples: f.examples.clone(),
            })
            .collect();
        let mut over_ratio = Vec::new();
        if let Some(max) = plan.max_reject_ratio {
            for (dataset, total) in totals {
                let dropped = self.dropped(*dataset);
                if *total > 0 && dropped as f64 / *total as f64 > max {
                    over_ratio.push(RatioFailure {
                        dataset: dataset.to_string(),
                        dropped,
                        total: *total,
                        max,
                    });
                }
            }
        }
        if failures.is_empty() && over_ratio.is_empty() {
            return Ok(());
        }
        Err(DataError { failures, over_ratio }.into())
    }
}

/// Applies one check to an in-memory frame of accounts: returns the rows to
/// keep and records what was found.
pub fn check_frame(
    frame: DataFrame,
    check: Check,
    flagged: Expr,
    plan: &Plan,
    outcome: &mut Outcome,
) -> Result<DataFrame> {
    let policy = plan.policy(check);
    let dataset = check.dataset();
    let flagged = flagged.fill_null(lit(false));
    let bad = frame
        .clone()
        .lazy()
        .filter(flagged.clone())
        .collect()
        .ctx(|| format!("data check {}", check.name()))?;
    if bad.height() == 0 {
        return Ok(frame);
    }
    let examples = examples(&bad);
    match policy {
        Policy::Warn => {
            tracing::warn!(check = check.name(), rows = bad.height(), examples = %examples.join(", "), "data check found {} {dataset} rows; kept (policy warn)", bad.height());
        }
        Policy::Drop => {
            tracing::warn!(
                check = check.name(),
                rows = bad.height(),
                "data check dropped {} {dataset} rows",
                bad.height()
            );
        }
        Policy::Error => {}
    }
    outcome.findings.push(Finding {
        check,
        dataset,
        policy,
        rows: bad.height() as u64,
        examples,
    });
    if policy == Policy::Drop {
        let rejected = bad
            .lazy()
            .with_column(lit(check.name()).alias(REASON))
            .collect()
            .ctx(|| format!("data check {}", check.name()))?;
        outcome.rejected_accounts.push(rejected);
        frame
            .lazy()
            .filter(flagged.not())
            .collect()
            .ctx(|| format!("data check {}", check.name()))
    } else {
        Ok(frame)
    }
}

/// Up to three account ids of flagged rows, for messages.
pub fn examples(bad: &DataFrame) -> Vec<String> {
    let Ok(ids) = bad.column("account_id") else {
        return Vec::new();
    };
    (0..ids.len().min(3))
        .map(|i| match ids.get(i) {
            Ok(AnyValue::Null) | Err(_) => "null".to_string(),
            Ok(AnyValue::String(s)) => s.to_string(),
            Ok(v) => v.to_string(),
        })
        .collect()
}

/// The checks of the accounts' values, on the accounts in the cycle.
pub fn account_values(mut frame: DataFrame, plan: &Plan, outcome: &mut Outcome) -> Result<DataFrame> {
    let checks = [
        (Check::NullArr, col("arr").is_null()),
        (Check::NegativeArr, col("arr").lt(lit(0))),
        (Check::NegativeWallet, col("wallet").lt(lit(0))),
        (Check::NegativeSeats, col("seats").lt(lit(0))),
        (Check::NpsOutOfRange, col("nps").lt(lit(0)).or(col("nps").gt(lit(10)))),
    ];
    for (check, flagged) in checks {
        frame = check_frame(frame, check, flagged, plan, outcome)?;
    }
    Ok(frame)
}

/// The usage checks: rows of unknown accounts and rows with negative
/// metrics, both counted from the grouped pass; rejected rows are read in a
/// second pass only when a `drop` policy needs them written.
pub fn usage_findings(
    plan: &Plan,
    usage: &dyn UsagePass,
    grouped: &DataFrame,
    known_ids: &DataFrame,
    as_of: NaiveDate,
    outcome: &mut Outcome,
) -> Result<()> {
    // An anti join keeps the usage of ids the accounts do not have (and of
    // null ids, which match nothing).
    let unknown = grouped
        .clone()
        .lazy()
        .join(
            known_ids.clone().lazy(),
            [col("account_id")],
            [col("account_id")],
            JoinArgs::new(JoinType::Anti),
        )
        .collect()
        .ctx(|| "unknown accounts in usage".into())?;
    let (null_ids, unknown): (DataFrame, DataFrame) = (
        unknown
            .clone()
            .lazy()
            .filter(col("account_id").is_null())
            .collect()
            .ctx(|| "usage rows without an account id".into())?,
        unknown
            .lazy()
            .filter(col("account_id").is_not_null())
            .collect()
            .ctx(|| "unknown accounts in usage".into())?,
    );
    let flagged_groups = |column: &str| -> Result<DataFrame> {
        grouped
            .clone()
            .lazy()
            .filter(col(column).gt(lit(0)))
            .collect()
            .ctx(|| format!("usage rows counted in {column}"))
    };
    let undated = usage.undated()?;
    let checks = [
        (
            Check::NullUsageAccountId,
            sum_u64(&null_ids, crate::engine::ROWS)?,
            Vec::new(),
        ),
        (
            Check::NullUsageDate,
            sum_u64(&undated, crate::engine::ROWS)?,
            examples(&undated),
        ),
        (
            Check::UnknownAccountUsage,
            sum_u64(&unknown, crate::engine::ROWS)?,
            examples(&unknown),
        ),
        (
            Check::NegativeUsage,
            sum_u64(grouped, crate::engine::NEGATIVE_ROWS)?,
            examples(&flagged_groups(crate::engine::NEGATIVE_ROWS)?),
        ),
    ];
    for (check, rows, examples) in checks {
        if rows == 0 {
            continue;
        }
        let policy = plan.policy(check);
        if policy != Policy::Error {
            tracing::warn!(
                check = check.name(),
                rows,
                "data check found {rows} usage rows ({policy:?})"
            );
        }
        outcome.findings.push(Finding {
            check,
            dataset: check.dataset(),
            policy,
            rows,
            examples,
        });
        if policy == Policy::Drop {
            outcome
                .rejected_usage
                .push(usage.rejected(plan, as_of, check, &unknown)?);
        }
    }
    Ok(())
}
