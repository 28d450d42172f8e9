//! Features: each one's expression lowered and added in dependency order.

use chrono::NaiveDate;
use polars::prelude::*;

use super::lower::lower;
use crate::config::Pipeline;

/// Adds every feature, in dependency order.
pub fn add_features(frame: LazyFrame, pipeline: &Pipeline, as_of: NaiveDate) -> LazyFrame {
    pipeline.features.iter().fold(frame, |lf, f| {
        lf.with_column(lower(&f.expr, as_of).alias(f.name.as_str()))
    })
}
