//! quadrant: segments a B2B customer base once per review cycle.
//!
//! The modules, in the order data flows through a run:
//! - [`cli`] and [`commands`]: what the user asked; `Settings::resolve`
//!   turns flags, the pipeline file and the environment into settings.
//! - [`config`] and [`expr`]: the pipeline file and its expression language,
//!   parsed and checked into a `Pipeline` (all problems at once).
//! - [`cycle`]: review cycles and their `as_of` dates.
//! - [`plan`]: what to compute for a cycle, engine-neutral.
//! - [`storage`]: URIs to object stores; [`engine`]: how polars computes the
//!   plan (inputs, data checks, aggregates, features, rules).
//! - [`snapshot`]: the one commit protocol, layout, manifest and encoding.
//! - [`compare`] and [`report`]: what is read back from committed snapshots.
//! - [`lineage`] and [`pipes`]: orchestrators; [`logging`], [`progress`],
//!   [`output`], [`table`] and [`redact`]: what is shown, and what never is.
//! - [`error`]: error categories and their exit codes.

pub mod cli;
pub mod commands;
pub mod compare;
pub mod config;
pub mod cycle;
pub mod engine;
pub mod error;
pub mod expr;
mod fuzz;
pub mod generate;
pub mod lineage;
pub mod logging;
pub mod output;
pub mod pipes;
pub mod plan;
pub mod progress;
pub mod redact;
pub mod report;
pub mod snapshot;
pub mod storage;
pub mod table;
