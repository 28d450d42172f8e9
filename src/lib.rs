//! quadrant: segments a B2B customer base once per review cycle.
//!
//! A run reads accounts and usage from Parquet ([`source`]), checks the
//! data ([`quality`]), computes usage windows and features ([`features`]),
//! applies segment rules ([`rules`]) and commits an immutable snapshot
//! ([`snapshot`]). The pipeline file ([`config`]) and its expression
//! language ([`expr`]) say what is computed; [`commands`] holds the subcommands.

pub mod cli;
pub mod commands;
pub mod compare;
pub mod config;
pub mod cycle;
pub mod error;
pub mod evaluate;
pub mod expr;
pub mod features;
mod fuzz;
pub mod generate;
pub mod lineage;
pub mod logging;
pub mod output;
pub mod pipes;
pub mod plan;
pub mod progress;
pub mod quality;
pub mod redact;
pub mod report;
pub mod rules;
pub mod snapshot;
pub mod source;
pub mod storage;
pub mod table;
