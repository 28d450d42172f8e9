//! Segmentations -> `when/then` chains: for each segmentation a label
//! column `<name>` and a rule column `<name>_rule`. The first rule whose
//! condition is true wins; a condition that is null does not match; an
//! account that matches no rule gets the default label and the rule name
//! `default`.

use chrono::NaiveDate;
use polars::prelude::*;

use crate::config::Segmentation;
use crate::expr::lower;

/// The rule name recorded for accounts that no rule matched.
pub const DEFAULT_RULE: &str = "default";

/// The condition of each rule, null counted as false.
fn conditions(segmentation: &Segmentation, as_of: NaiveDate) -> Vec<Expr> {
    segmentation
        .rules
        .iter()
        .map(|r| lower(&r.when, as_of).fill_null(lit(false)))
        .collect()
}

fn first_match(conditions: &[Expr], values: impl Iterator<Item = String>, default: &str) -> Expr {
    // Nested from the last rule outwards, so the first true condition wins.
    let pairs: Vec<(Expr, String)> = conditions.iter().cloned().zip(values).collect();
    pairs
        .into_iter()
        .rev()
        .fold(lit(default.to_string()), |rest, (c, v)| {
            when(c).then(lit(v)).otherwise(rest)
        })
}

/// The `<name>` and `<name>_rule` columns of one segmentation.
pub fn segment(segmentation: &Segmentation, as_of: NaiveDate) -> [Expr; 2] {
    let conditions = conditions(segmentation, as_of);
    let label = first_match(
        &conditions,
        segmentation.rules.iter().map(|r| r.label.clone()),
        &segmentation.default,
    )
    .alias(segmentation.name.as_str());
    let rule = first_match(
        &conditions,
        segmentation.rules.iter().map(|r| r.name.clone()),
        DEFAULT_RULE,
    )
    .alias(segmentation.rule_column());
    [label, rule]
}
