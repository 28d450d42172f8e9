//! The polars engine: reads the inputs ([`source`]), checks the data
//! ([`quality`]), computes the usage aggregates ([`aggregates`]), the
//! features ([`features`]) and the segment labels ([`rules`]), lowering the
//! expression language to polars ([`lower`]); [`evaluate`] runs a whole cycle.
//! This is the only place that turns the plan or an expression into polars.

pub mod aggregates;
pub mod evaluate;
pub mod features;
pub mod history;
pub mod lower;
pub mod parquet_pass;
pub mod quality;
pub mod rules;
pub mod source;

pub use evaluate::{Accounts, Evaluation, History, evaluate, missing_previous};
pub use history::read_history;
pub use source::{Scan, scan_accounts, scan_usage};

/// The total of a usage counter column ([`crate::engine::ROWS`], ...).
fn sum_u64(frame: &::polars::prelude::DataFrame, column: &str) -> crate::error::Result<u64> {
    use crate::error::Context;
    let total = frame
        .column(column)
        .ctx(|| format!("cannot sum the usage counter `{column}`"))?
        .as_materialized_series()
        .sum::<i64>()
        .ctx(|| format!("cannot sum the usage counter `{column}`"))?;
    Ok(total.max(0) as u64)
}
