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
//! - [`integrations`]: OpenLineage and Dagster Pipes; [`logging`], [`progress`],
//!   [`output`], [`table`] and [`redact`]: what is shown, and what never is.
//! - [`error`]: error categories and their exit codes.

// In data-flow order (rustfmt keeps each group's order).
// What the user asked:
pub mod cli;
pub mod commands;

// What to compute: the pipeline file, its language, cycles, the plan.
pub mod config;

pub mod expr;

pub mod cycle;

pub mod plan;

// How it is computed, and where the data lives.
pub mod storage;

pub mod engine;

// How a result becomes a committed snapshot, and what reads it back.
pub mod snapshot;

pub mod compare;
pub mod diff;

pub mod report;

// Around a run: synthetic data, orchestrators, what is shown and never shown.
pub mod generate;

pub mod integrations;

pub mod logging;
pub mod output;
pub mod progress;
pub mod redact;
pub mod table;

// Errors and their exit codes.
pub mod error;

mod fuzz;
