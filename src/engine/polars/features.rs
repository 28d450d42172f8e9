//! Features: each one's expression lowered and added in dependency order.

use chrono::NaiveDate;
use polars::prelude::*;

use super::lower::lower;
use crate::plan::Plan;

/// Adds every feature, in dependency order.
pub fn add_features(frame: LazyFrame, plan: &Plan, as_of: NaiveDate) -> LazyFrame {
    plan.features.iter().fold(frame, |lf, f| {
        lf.with_column(lower(&f.expr, as_of).alias(f.name.as_str()))
    })
}
