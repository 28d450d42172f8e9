//! Data checks and rejects. Each check flags rows; its policy decides
//! whether the run fails (`error`, exit 3), keeps them with a warning
//! (`warn`), or leaves them out and records them with a `reason` (`drop`).

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::{Check, Policy, Quality};
use crate::error::{Context, Error, Result};

/// The column of a reject that says which check dropped it.
pub const REASON: &str = "reason";

/// What one check found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finding {
    pub check: String,
    pub dataset: String,
    pub policy: Policy,
    pub rows: u64,
    #[serde(skip)]
    pub examples: Vec<String>,
}

/// Findings and rejected rows of one run.
#[derive(Default)]
pub struct Outcome {
    pub findings: Vec<Finding>,
    pub rejected_accounts: Vec<DataFrame>,
    pub rejected_usage: Vec<DataFrame>,
}

impl Outcome {
    pub fn dropped(&self, dataset: &str) -> u64 {
        self.findings
            .iter()
            .filter(|f| f.dataset == dataset && f.policy == Policy::Drop)
            .map(|f| f.rows)
            .sum()
    }

    /// Fails the run when a check with the `error` policy found rows, or
    /// too large a share was dropped; names every failed check at once.
    pub fn enforce(&self, quality: &Quality, totals: &[(&str, u64)]) -> Result<()> {
        let mut failures = Vec::new();
        for f in &self.findings {
            if f.policy == Policy::Error && f.rows > 0 {
                let examples = if f.examples.is_empty() {
                    String::new()
                } else {
                    format!(" (e.g. {})", f.examples.join(", "))
                };
                failures.push(format!(
                    "data check `{}` failed: {} {} row(s){examples}",
                    f.check, f.rows, f.dataset
                ));
            }
        }
        if let Some(max) = quality.max_reject_ratio {
            for (dataset, total) in totals {
                let dropped = self.dropped(dataset);
                if *total > 0 && dropped as f64 / *total as f64 > max {
                    failures.push(format!(
                        "{dropped} of {total} {dataset} rows were dropped, more than max_reject_ratio = {max}"
                    ));
                }
            }
        }
        if failures.is_empty() {
            return Ok(());
        }
        Err(Error::Data(format!(
            "{}\n  help: fix the input data, or set the check's policy in the pipeline's [quality] section (\"warn\" keeps the rows, \"drop\" leaves them out and writes them to rejects/)",
            failures.join("\n")
        )))
    }
}

/// Applies one check to an in-memory frame of accounts: returns the rows to
/// keep and records what was found.
pub fn check_frame(
    frame: DataFrame,
    check: Check,
    dataset: &'static str,
    flagged: Expr,
    quality: &Quality,
    outcome: &mut Outcome,
) -> Result<DataFrame> {
    let policy = quality.policy(check);
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
        check: check.name().to_string(),
        dataset: dataset.to_string(),
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
