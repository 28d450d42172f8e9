//! The pipeline file: TOML -> raw serde types ([`raw`]) -> a checked
//! [`Pipeline`] ([`compile`]). Every problem in a file is reported at once,
//! with its line and column; after [`Pipeline::load`] no other module
//! re-validates the configuration.

mod compile;
mod raw;

use std::collections::BTreeMap;

use crate::cycle::Cadence;
use crate::error::{Error, Result};
use crate::expr::{Ast, Kind, Type};

/// The default pipeline, built into the binary: `quadrant run` with no
/// `--pipeline` runs it on the bundled fixtures.
pub const DEFAULT_PIPELINE: &str = include_str!("../../pipelines/default.toml");
pub const DEFAULT_PIPELINE_PATH: &str = "pipelines/default.toml";

/// A pipeline that has passed every check.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub name: String,
    pub description: String,
    pub cadence: Cadence,
    /// The first month of the fiscal year: 1 is the calendar; any other
    /// month makes the cycles fiscal periods (`FY2027-Q1`).
    pub fiscal_year_start_month: u32,
    /// Where the pipeline came from, for messages.
    pub path: String,
    /// The file's text, kept so that a snapshot can record what made it.
    pub source: String,
    /// Hash of the file's content with comments and layout removed.
    pub hash: String,
    pub accounts: Input,
    pub usage: Input,
    pub output_uri: String,
    /// How snapshots are stored: Parquet partitions or Delta Lake tables.
    pub output_format: Format,
    pub passthrough: Vec<String>,
    pub params: BTreeMap<String, Kind>,
    pub aggregates: Vec<Aggregate>,
    /// In dependency order: each feature only uses features before it.
    pub features: Vec<Feature>,
    pub segmentations: Vec<Segmentation>,
    pub quality: Quality,
    /// Object store options from `[storage]`.
    pub storage: crate::storage::StorageOptions,
    /// Account columns that expressions read, with the type they need.
    pub account_columns: Vec<(String, Type)>,
    /// The snapshot columns expressions read through `prev(...)`, in order
    /// of first use, with their types.
    pub previous: Vec<(String, Type)>,
}

#[derive(Debug, Clone)]
pub struct Input {
    pub uri: String,
    /// Our column name -> the name in the data.
    pub columns: BTreeMap<String, String>,
    /// For accounts with a `snapshot_date` history: how old the newest
    /// snapshot at as_of may be, as dbt's source freshness says it.
    pub freshness: Option<Freshness>,
}

/// Ages, in days, of the newest account snapshot at as_of: past
/// `warn_after_days` a run warns; past `error_after_days` the cycle's export
/// has not landed and the run exits 5 (not ready, retry later).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Freshness {
    pub warn_after_days: Option<u32>,
    pub error_after_days: Option<u32>,
}

impl Input {
    /// The name of a column in the data.
    pub fn source_name<'a>(&'a self, column: &'a str) -> &'a str {
        self.columns.get(column).map(String::as_str).unwrap_or(column)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Agg {
    Sum,
    Count,
    Mean,
    Min,
    Max,
    NUnique,
    Last,
    PerDay,
}

impl Agg {
    pub const ALL: [(&'static str, Agg); 8] = [
        ("sum", Agg::Sum),
        ("count", Agg::Count),
        ("mean", Agg::Mean),
        ("min", Agg::Min),
        ("max", Agg::Max),
        ("n_unique", Agg::NUnique),
        ("last", Agg::Last),
        ("per_day", Agg::PerDay),
    ];

    /// The name the pipeline file uses.
    pub fn name(self) -> &'static str {
        Agg::ALL.iter().find(|(_, a)| *a == self).map_or("", |(n, _)| n)
    }

    /// Accounts with no rows in the window get 0 rather than null.
    pub fn zero_when_empty(self) -> bool {
        matches!(self, Agg::Sum | Agg::Count | Agg::PerDay | Agg::NUnique)
    }
}

/// The usage columns some aggregate reads, each once, in order.
pub fn usage_columns(aggregates: &[Aggregate]) -> Vec<&str> {
    let mut cols: Vec<&str> = Vec::new();
    for a in aggregates {
        if !cols.contains(&a.column.as_str()) {
            cols.push(&a.column);
        }
    }
    cols
}

/// A per-account aggregate of a usage column over the window of dates `d`
/// with `as_of - offset - window < d <= as_of - offset`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Aggregate {
    pub name: String,
    pub column: String,
    pub agg: Agg,
    pub window_days: u32,
    pub offset_days: u32,
    pub description: String,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Feature {
    pub name: String,
    /// Where the feature stands in the file: snapshot columns follow it.
    pub position: usize,
    pub expr: Ast,
    pub text: String,
    pub description: String,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Segmentation {
    pub name: String,
    pub description: String,
    pub default: String,
    pub rules: Vec<Rule>,
    pub x: Option<String>,
    pub y: Option<String>,
}

impl Segmentation {
    /// Every label this segmentation can give, in rule order, default last.
    pub fn labels(&self) -> Vec<&str> {
        let mut labels: Vec<&str> = Vec::new();
        for label in self
            .rules
            .iter()
            .map(|r| r.label.as_str())
            .chain([self.default.as_str()])
        {
            if !labels.contains(&label) {
                labels.push(label);
            }
        }
        labels
    }

    pub fn rule_column(&self) -> String {
        format!("{}_rule", self.name)
    }

    /// The column holding the first cycle of each account's current,
    /// unbroken stay in its label.
    pub fn since_column(&self) -> String {
        format!("{}_since", self.name)
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Rule {
    pub name: String,
    pub label: String,
    pub when: Ast,
    pub text: String,
    pub description: String,
}

/// What to do when a data check finds bad rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Fail the run with exit code 3.
    Error,
    /// Keep the rows, count them and log a warning.
    Warn,
    /// Leave the rows out and write them to `rejects/`.
    Drop,
}

/// The two input datasets: the account base and its usage rows. Recorded
/// by name in manifests, rejects tables and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dataset {
    Accounts,
    Usage,
}

impl Dataset {
    pub const ALL: [Dataset; 2] = [Dataset::Accounts, Dataset::Usage];

    pub fn name(self) -> &'static str {
        match self {
            Dataset::Accounts => "accounts",
            Dataset::Usage => "usage",
        }
    }
}

impl std::fmt::Display for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The data checks of SPEC.md section 7, recorded by name
/// ([`Check::name`]) in manifests and rejects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    NullAccountId,
    DuplicateAccountId,
    NullArr,
    NullCustomerSince,
    NegativeArr,
    NegativeWallet,
    NegativeSeats,
    NpsOutOfRange,
    NullUsageAccountId,
    NullUsageDate,
    UnknownAccountUsage,
    NegativeUsage,
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Check {
    pub const ALL: [Check; 12] = [
        Check::NullAccountId,
        Check::DuplicateAccountId,
        Check::NullArr,
        Check::NullCustomerSince,
        Check::NegativeArr,
        Check::NegativeWallet,
        Check::NegativeSeats,
        Check::NpsOutOfRange,
        Check::NullUsageAccountId,
        Check::NullUsageDate,
        Check::UnknownAccountUsage,
        Check::NegativeUsage,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Check::NullAccountId => "null_account_id",
            Check::DuplicateAccountId => "duplicate_account_id",
            Check::NullArr => "null_arr",
            Check::NullCustomerSince => "null_customer_since",
            Check::NegativeArr => "negative_arr",
            Check::NegativeWallet => "negative_wallet",
            Check::NegativeSeats => "negative_seats",
            Check::NpsOutOfRange => "nps_out_of_range",
            Check::NullUsageAccountId => "null_usage_account_id",
            Check::NullUsageDate => "null_usage_date",
            Check::UnknownAccountUsage => "unknown_account_usage",
            Check::NegativeUsage => "negative_usage",
        }
    }

    pub fn default_policy(self) -> Policy {
        match self {
            Check::UnknownAccountUsage => Policy::Warn,
            _ => Policy::Error,
        }
    }

    /// Keeping a row without a usable key is impossible, so `warn` is refused.
    pub fn allows_warn(self) -> bool {
        !matches!(
            self,
            Check::NullAccountId | Check::DuplicateAccountId | Check::NullUsageAccountId
        )
    }

    /// The dataset whose rows the check flags.
    pub fn dataset(self) -> Dataset {
        match self {
            Check::NullUsageAccountId | Check::NullUsageDate | Check::UnknownAccountUsage | Check::NegativeUsage => {
                Dataset::Usage
            }
            _ => Dataset::Accounts,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Quality {
    pub policies: BTreeMap<Check, Policy>,
    /// Fail the run when more than this share of a dataset's rows is dropped.
    pub max_reject_ratio: Option<f64>,
}

impl Quality {
    pub fn policy(&self, check: Check) -> Policy {
        self.policies.get(&check).copied().unwrap_or(check.default_policy())
    }
}

/// The account columns quadrant knows, with their types. Others can be used
/// when the pipeline maps or passes them through.
pub const ACCOUNT_COLUMNS: &[(&str, Type, bool)] = &[
    ("account_id", Type::Str, true),
    ("arr", Type::Num, true),
    ("customer_since", Type::Date, true),
    ("snapshot_date", Type::Date, false),
    ("churned_on", Type::Date, false),
    ("wallet", Type::Num, false),
    ("employees", Type::Num, false),
    ("employees_prior", Type::Num, false),
    ("annual_revenue", Type::Num, false),
    ("seats", Type::Num, false),
    ("nps", Type::Num, false),
    ("renewal_date", Type::Date, false),
];

/// Column names of the snapshot that a pipeline cannot define.
pub const RESERVED: &[&str] = &[
    "as_of",
    "account_id",
    "arr",
    "run_id",
    "pipeline_hash",
    "cycle",
    "reason",
];

impl Pipeline {
    /// Loads and checks a pipeline file; `None` means the built-in default.
    pub fn load(path: Option<&str>) -> Result<Pipeline> {
        match path {
            None => compile::compile(DEFAULT_PIPELINE, DEFAULT_PIPELINE_PATH),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| Error::config(format!("cannot read pipeline file `{path}`: {e}")))?;
                compile::compile(&text, path)
            }
        }
    }

    /// Checks pipeline text, as [`Pipeline::load`] does for a file.
    pub fn from_text(text: &str, path: &str) -> Result<Pipeline> {
        compile::compile(text, path)
    }

    pub fn aggregate(&self, name: &str) -> Option<&Aggregate> {
        self.aggregates.iter().find(|a| a.name == name)
    }

    /// The usage columns the aggregates read.
    pub fn usage_columns(&self) -> Vec<&str> {
        usage_columns(&self.aggregates)
    }
}

/// How snapshots are stored: `[output] format` in the pipeline file (the
/// snapshot layer implements each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One folder of Hive-partitioned Parquet per table; a glob reads it.
    #[default]
    Parquet,
    /// Delta Lake tables partitioned by `cycle`: atomic replaces, time travel.
    Delta,
}

impl Format {
    pub const NAMES: [&str; 2] = ["parquet", "delta"];

    pub fn name(self) -> &'static str {
        match self {
            Format::Parquet => "parquet",
            Format::Delta => "delta",
        }
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "parquet" => Ok(Format::Parquet),
            "delta" => Ok(Format::Delta),
            other => Err(format!(
                "`{other}` is not an output format: use \"parquet\" or \"delta\""
            )),
        }
    }
}

/// The snapshot column that holds what `prev(name)` read: the value of
/// `name` in the previous cycle's snapshot. (A pipeline may not define a
/// name of this form itself.)
pub fn prev_column(name: &str) -> String {
    format!("prev_{name}")
}
