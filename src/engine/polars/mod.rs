//! The polars engine: reads the inputs ([`source`]), checks the data
//! ([`quality`]), computes the usage aggregates ([`aggregates`]), the
//! features ([`features`]) and the segment labels ([`rules`]), lowering the
//! expression language to polars ([`lower`]); [`evaluate`] runs a whole cycle.
//! This is the only place that turns the plan or an expression into polars.

pub mod aggregates;
pub mod evaluate;
pub mod features;
pub mod lower;
pub mod quality;
pub mod rules;
pub mod source;

pub use evaluate::{Evaluation, History, evaluate, missing_previous};
pub use source::{Dataset, scan_accounts, scan_usage};
