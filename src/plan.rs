//! What to compute for a cycle, engine-neutral: the aggregates and their
//! windows, the features in dependency order, the segmentations with their
//! rules in order, and the snapshot's columns. Built once from a checked
//! [`Pipeline`]; recorded in every snapshot's manifest, so that `explain` and
//! `report` read what was computed rather than recompiling old pipeline text
//! with today's checker.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::config::{Aggregate, Check, Dataset, Feature, Pipeline, Policy, Segmentation};
use crate::error::{NotReadyError, Result, SchemaError};
use crate::expr::Type;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// The pipeline's name.
    pub pipeline: String,
    pub aggregates: Vec<Aggregate>,
    /// In dependency order: each feature only uses columns before it.
    pub features: Vec<Feature>,
    pub segmentations: Vec<Segmentation>,
    /// Every data check with its policy, and the most a run may drop.
    #[serde(default)]
    pub checks: Vec<PlannedCheck>,
    #[serde(default)]
    pub max_reject_ratio: Option<f64>,
    /// The snapshot columns read through `prev(...)`, with their types.
    #[serde(default)]
    pub previous: Vec<(String, Type)>,
    /// The snapshot's columns, in order, without `run_id` and
    /// `pipeline_hash` (added when it is committed).
    pub columns: Vec<String>,
}

/// A column of the previous cycle's snapshot that a cycle reads: for
/// `prev(...)`, and each segmentation's label and `_since` (for the new
/// `_since`).
#[derive(Debug, Clone, PartialEq)]
pub struct PreviousColumn {
    /// The column in the previous snapshot.
    pub source: String,
    /// The column it is read into: [`prev_column`] of `source`.
    pub column: String,
    pub ty: Type,
}

/// A data check as planned: what it flags in which dataset, and the policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedCheck {
    pub check: Check,
    pub dataset: Dataset,
    pub policy: Policy,
}

/// Which usage rows a usage data check flags: named once here, lowered by
/// each engine with an exhaustive match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageRows {
    /// Rows in some window whose account id is null.
    NullAccountId,
    /// Rows without a date (they fall in no window).
    NullDate,
    /// Rows in some window of account ids the accounts do not know.
    UnknownAccount,
    /// Rows in some window with a negative metric the aggregates read.
    NegativeMetric,
}

impl UsageRows {
    /// The rows a check of the usage flags; `None` for checks of the accounts.
    pub fn of(check: Check) -> Option<UsageRows> {
        match check {
            Check::NullUsageAccountId => Some(UsageRows::NullAccountId),
            Check::NullUsageDate => Some(UsageRows::NullDate),
            Check::UnknownAccountUsage => Some(UsageRows::UnknownAccount),
            Check::NegativeUsage => Some(UsageRows::NegativeMetric),
            Check::NullAccountId
            | Check::DuplicateAccountId
            | Check::NullArr
            | Check::NullCustomerSince
            | Check::NegativeArr
            | Check::NegativeWallet
            | Check::NegativeSeats
            | Check::NpsOutOfRange => None,
        }
    }
}

impl Plan {
    /// Whether rows with a negative usage metric are left out of the
    /// aggregates (policy `drop` of `negative_usage`).
    pub fn drops_negative_usage(&self) -> bool {
        self.policy(Check::NegativeUsage) == Policy::Drop
    }

    /// The policy of a data check.
    pub fn policy(&self, check: Check) -> Policy {
        self.checks
            .iter()
            .find(|c| c.check == check)
            .map_or(check.default_policy(), |c| c.policy)
    }

    /// What a cycle reads of the previous cycle's snapshot.
    pub fn previous_columns(&self) -> Vec<PreviousColumn> {
        let mut out: Vec<PreviousColumn> = Vec::new();
        let labels = self
            .segmentations
            .iter()
            .flat_map(|s| [(s.name.clone(), Type::Str), (s.since_column(), Type::Str)]);
        for (source, ty) in self.previous.iter().cloned().chain(labels) {
            if !out.iter().any(|c| c.source == source) {
                out.push(PreviousColumn {
                    column: prev_column(&source),
                    source,
                    ty,
                });
            }
        }
        out
    }

    /// The usage columns the aggregates read.
    pub fn usage_columns(&self) -> Vec<&str> {
        crate::config::usage_columns(&self.aggregates)
    }

    /// The range of dates any window covers: `(after, through]`.
    pub fn usage_range(&self, as_of: NaiveDate) -> Option<(NaiveDate, NaiveDate)> {
        let windows = self.aggregates.iter().map(|a| window(a, as_of));
        let after = windows.clone().map(|w| w.0).min()?;
        let through = windows.map(|w| w.1).max()?;
        Some((after, through))
    }

    /// How the usage covers the windows of a cycle evaluated at `as_of`.
    pub fn coverage(&self, as_of: NaiveDate, usage: UsageSpan) -> Coverage {
        let earliest = self
            .aggregates
            .iter()
            .map(|a| (window(a, as_of).0 + chrono::Duration::days(1), a))
            .min_by_key(|(start, _)| *start);
        Coverage {
            as_of,
            window_start: earliest.map(|(start, _)| start),
            window: earliest.map(|(_, a)| a.name.clone()),
            usage_first: usage.first,
            usage_last: usage.last,
            incomplete_allowed: false,
        }
    }

    pub fn new(pipeline: &Pipeline) -> Plan {
        Plan {
            pipeline: pipeline.name.clone(),
            aggregates: pipeline.aggregates.clone(),
            features: pipeline.features.clone(),
            segmentations: pipeline.segmentations.clone(),
            checks: Check::ALL
                .iter()
                .map(|c| PlannedCheck {
                    check: *c,
                    dataset: c.dataset(),
                    policy: pipeline.quality.policy(*c),
                })
                .collect(),
            max_reject_ratio: pipeline.quality.max_reject_ratio,
            previous: pipeline.previous.clone(),
            columns: snapshot_columns(pipeline),
        }
    }
}

/// The first and the last date of the usage data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageSpan {
    pub first: NaiveDate,
    pub last: NaiveDate,
}

/// Whether the usage covers every window a cycle reads: it reaches as_of,
/// and it starts on or before the first day of the earliest window.
/// Recorded in the manifest of every run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage {
    pub as_of: NaiveDate,
    /// The first day of the earliest window, and the aggregate that reads it
    /// (none when the pipeline reads no usage).
    pub window_start: Option<NaiveDate>,
    pub window: Option<String>,
    pub usage_first: NaiveDate,
    pub usage_last: NaiveDate,
    /// `--allow-incomplete-usage`: committed although the usage did not
    /// cover the windows.
    #[serde(default)]
    pub incomplete_allowed: bool,
}

impl Coverage {
    /// The usage has not reached as_of yet.
    pub fn behind(&self) -> bool {
        self.window_start.is_some() && self.usage_last < self.as_of
    }

    /// The usage starts after the first day of the earliest window.
    pub fn starts_late(&self) -> bool {
        self.window_start.is_some_and(|start| self.usage_first > start)
    }

    pub fn complete(&self) -> bool {
        !self.behind() && !self.starts_late()
    }

    /// Refuses a cycle the usage (at `uri`) does not cover: not reached
    /// yet is "not ready" (exit 5), started too late a data failure
    /// (exit 3). With `allow_incomplete`, warns and records the opt-out.
    /// (Logged inside the caller's span, which names the cycle.)
    pub fn check(mut self, cycle: &crate::cycle::Cycle, uri: &str, allow_incomplete: bool) -> Result<Coverage> {
        if self.complete() {
            return Ok(self);
        }
        if allow_incomplete {
            tracing::warn!(usage_first = %self.usage_first, usage_last = %self.usage_last, window_start = ?self.window_start, as_of = %self.as_of, "the usage does not cover every window; going on as --allow-incomplete-usage asks (recorded in the manifest)");
            self.incomplete_allowed = true;
            return Ok(self);
        }
        if self.behind() {
            return Err(NotReadyError::UsageBehind {
                uri: uri.to_string(),
                last: self.usage_last,
                as_of: self.as_of,
                cycle: cycle.to_string(),
            }
            .into());
        }
        Err(SchemaError::UsageStartsLate {
            uri: uri.to_string(),
            first: self.usage_first,
            window: self.window.clone().unwrap_or_default(),
            window_start: self.window_start.unwrap_or(self.as_of),
            as_of: self.as_of,
            cycle: cycle.to_string(),
        }
        .into())
    }
}

/// What one check found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finding {
    pub check: Check,
    pub dataset: Dataset,
    pub policy: Policy,
    pub rows: u64,
    #[serde(skip)]
    pub examples: Vec<String>,
}

pub use crate::config::prev_column;

/// An aggregate's window for a cycle: the dates `d` with
/// `after < d <= through`, that is
/// `as_of - offset - window < d <= as_of - offset`.
pub fn window(a: &Aggregate, as_of: NaiveDate) -> (NaiveDate, NaiveDate) {
    let through = as_of - chrono::Duration::days(a.offset_days as i64);
    (through - chrono::Duration::days(a.window_days as i64), through)
}

/// The snapshot's columns, in order: `as_of`, `account_id`, `arr`, the
/// passthrough columns, every account column an expression reads, what
/// expressions read through `prev(...)`, the aggregates, the features in the
/// file's order, then per segmentation its label, rule and `_since`.
pub fn snapshot_columns(pipeline: &Pipeline) -> Vec<String> {
    let mut cols: Vec<String> = vec!["as_of".into(), "account_id".into(), "arr".into()];
    let mut push = |c: &str| {
        if !cols.iter().any(|x| x == c) {
            cols.push(c.to_string());
        }
    };
    pipeline.passthrough.iter().for_each(|c| push(c));
    pipeline.account_columns.iter().for_each(|(c, _)| push(c));
    pipeline.previous.iter().for_each(|(c, _)| push(&prev_column(c)));
    pipeline.aggregates.iter().for_each(|a| push(&a.name));
    let mut by_position: Vec<_> = pipeline.features.iter().collect();
    by_position.sort_by_key(|f| f.position);
    by_position.iter().for_each(|f| push(&f.name));
    for s in &pipeline.segmentations {
        push(&s.name);
        push(&s.rule_column());
        push(&s.since_column());
    }
    cols
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_survives_its_record() {
        let pipeline = Pipeline::from_text(crate::config::DEFAULT_PIPELINE, "default.toml").unwrap();
        let plan = Plan::new(&pipeline);
        let text = serde_json::to_string(&plan).unwrap();
        let back: Plan = serde_json::from_str(&text).unwrap();
        assert_eq!(back.columns, plan.columns);
        assert_eq!(back.checks.len(), Check::ALL.len());
        assert!(
            back.checks
                .iter()
                .any(|c| c.check == Check::NullArr && c.policy == Policy::Error)
        );
        for (a, b) in back.segmentations.iter().zip(&plan.segmentations) {
            for (ra, rb) in a.rules.iter().zip(&b.rules) {
                assert_eq!(ra.when.to_string(), rb.when.to_string(), "{}", ra.name);
            }
        }
        for (a, b) in back.features.iter().zip(&plan.features) {
            assert_eq!(a.expr.to_string(), b.expr.to_string(), "{}", a.name);
        }
    }

    #[test]
    fn windows_end_at_as_of_less_the_offset() {
        let a = Aggregate {
            name: "x".into(),
            column: "events".into(),
            agg: crate::config::Agg::Sum,
            window_days: 90,
            offset_days: 90,
            description: String::new(),
        };
        let as_of = NaiveDate::from_ymd_opt(2026, 9, 30).unwrap();
        let (after, through) = window(&a, as_of);
        assert_eq!(through, NaiveDate::from_ymd_opt(2026, 7, 2).unwrap());
        assert_eq!(after, NaiveDate::from_ymd_opt(2026, 4, 3).unwrap());
    }
}
