//! Error categories and their exit codes, in one place.
//!
//! Every failure of quadrant ends up as an [`Error`]; [`Error::exit_code`] is
//! the single mapping from category to the exit codes promised in SPEC.md
//! section 7, which orchestrators use to decide whether to retry.

use std::fmt;

/// The exit codes, as documented in the README.
pub mod exit {
    pub const OK: u8 = 0;
    /// Runtime or I/O failure: worth retrying.
    pub const RUNTIME: u8 = 1;
    /// Usage or configuration error: fix the command or the pipeline file.
    pub const CONFIG: u8 = 2;
    /// Data-quality failure: fix the input data or the `[quality]` policy.
    pub const DATA: u8 = 3;
    /// The cycle is already committed, or another run committed it first.
    pub const CONFLICT: u8 = 4;
    /// The inputs do not cover the cycle yet: retry later.
    pub const NOT_READY: u8 = 5;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line or the pipeline file is wrong. Holds every problem
    /// found, so the user can fix them all at once.
    #[error("{}", render_problems(.0))]
    Config(Vec<Problem>),

    /// An input does not have the shape the pipeline needs.
    #[error(transparent)]
    Schema(Box<SchemaError>),

    /// Data checks failed under the `error` policy, or too much was dropped.
    #[error(transparent)]
    Data(#[from] DataError),

    /// What was asked contradicts what the output root or the inputs
    /// hold, though the command and the pipeline file are well formed:
    /// another table format or pipeline in the root, a previous cycle that
    /// `--require-previous` needs and is missing, a column whose type the
    /// Delta table keeps otherwise, Spark reading other files than listed.
    #[error("{0}")]
    Refused(String),

    /// The cycle is committed already, or another run holds or won it.
    #[error(transparent)]
    Conflict(Box<ConflictError>),

    /// The inputs have not reached the cycle yet: a later run will find them.
    #[error(transparent)]
    NotReady(Box<NotReadyError>),

    /// Reading or writing storage failed.
    #[error("{context}: {cause}\n  help: {help}")]
    Storage {
        context: String,
        /// The first line of what the store answered.
        cause: String,
        help: String,
    },

    /// polars failed while running the plan.
    #[error("{context}: {source}")]
    Polars {
        context: String,
        #[source]
        source: polars::error::PolarsError,
    },

    /// The Spark Connect server could not be reached, or Spark failed.
    #[error(
        "Spark at {remote}: {context}: {message}\n  help: check that the Spark Connect server is up and reads the usage URI (see docs/scale-out.md); the run is safe to retry"
    )]
    Spark {
        /// The server, shown without its parameters (a token among them).
        remote: String,
        context: String,
        /// Spark's own message.
        message: String,
    },

    /// A stored snapshot file is not what quadrant wrote.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),

    /// A local file could not be read or written.
    #[error("cannot {action} `{path}`: {source}")]
    Io {
        action: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// An input that does not have the shape the pipeline needs: each names the
/// dataset, the file and the column at fault, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("{dataset} input `{uri}`: no Parquet files found (a file, a folder of .parquet files, or a glob such as `{}/**/*.parquet`)", uri.trim_end_matches('/'))]
    NoFiles { dataset: String, uri: String },
    #[error("{dataset} input `{uri}` does not exist{hint}")]
    Missing { dataset: String, uri: String, hint: String },
    #[error(
        "{dataset} input `{uri}` holds no Parquet files, only: {found}; quadrant reads Parquet (convert them, e.g. with DuckDB's COPY ... TO 'x.parquet')"
    )]
    NotParquetFolder {
        dataset: String,
        uri: String,
        found: String,
    },
    #[error("{dataset} `{uri}` has no rows ({files} file(s))")]
    NoRows { dataset: String, uri: String, files: usize },
    #[error("{dataset} file `{file}` cannot be read: {cause}")]
    Unreadable {
        dataset: String,
        file: String,
        cause: String,
    },
    #[error("{dataset} file `{file}` cannot be read as Parquet: {cause}")]
    NotParquet {
        dataset: String,
        file: String,
        cause: String,
    },
    #[error("{dataset} file `{file}`: column `{column}` is {found}, but {expected} in `{first_file}`")]
    FilesDisagree {
        dataset: String,
        file: String,
        column: String,
        found: String,
        expected: String,
        first_file: String,
    },
    #[error("{dataset} column `{column}` in `{file}`: expected {expected}, found {found}{hint}\n  columns in the data: {}", columns.join(", "))]
    WrongType {
        dataset: String,
        file: String,
        column: String,
        expected: String,
        found: String,
        hint: String,
        columns: Vec<String>,
    },
    #[error("{dataset} column `{column}` (mapped to `{mapped_to}`) is not in `{file}`{help}\n  columns in the data: {}", columns.join(", "))]
    MappedColumnMissing {
        dataset: String,
        file: String,
        column: String,
        mapped_to: String,
        help: String,
        columns: Vec<String>,
    },
    #[error("{dataset}: `{file}` has a column `{column}` and another column mapped to `{column}`")]
    DuplicateColumn {
        dataset: String,
        file: String,
        column: String,
    },
    #[error("{dataset} column `{column}` is missing in `{file}` (expected {expected}{why}){help}\n  columns in the data: {}", columns.join(", "))]
    MissingColumn {
        dataset: String,
        file: String,
        column: String,
        expected: String,
        why: String,
        help: String,
        columns: Vec<String>,
    },
    #[error(
        "usage `{uri}` has no rows in any aggregate window (dates after {after} through {through}, for as_of {as_of}): check the cycle and the dates of the usage data"
    )]
    NoUsageInWindows {
        uri: String,
        after: chrono::NaiveDate,
        through: chrono::NaiveDate,
        as_of: chrono::NaiveDate,
    },
    #[error("usage `{uri}` has no dated rows: pass --cycle")]
    NoDatedUsage { uri: String },
    #[error(
        "usage `{uri}` starts on {first}, after the first day of aggregate `{window}`'s window ({window_start}) for as_of {as_of} of cycle {cycle}: every account would look idle before {first}\n  help: choose a later cycle, load the older usage, or pass --allow-incomplete-usage (recorded in the manifest) if the usage really starts there"
    )]
    UsageStartsLate {
        uri: String,
        first: chrono::NaiveDate,
        window: String,
        window_start: chrono::NaiveDate,
        as_of: chrono::NaiveDate,
        cycle: String,
    },
}

/// Data checks that failed under the `error` policy, and datasets of which
/// more than `max_reject_ratio` was dropped: all of them at once.
#[derive(Debug)]
pub struct DataError {
    pub failures: Vec<CheckFailure>,
    pub over_ratio: Vec<RatioFailure>,
}

#[derive(Debug)]
pub struct CheckFailure {
    pub check: String,
    pub dataset: String,
    pub rows: u64,
    /// A few account ids of the flagged rows.
    pub examples: Vec<String>,
}

#[derive(Debug)]
pub struct RatioFailure {
    pub dataset: String,
    pub dropped: u64,
    pub total: u64,
    pub max: f64,
}

impl std::error::Error for DataError {}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut lines = Vec::new();
        for c in &self.failures {
            let examples = if c.examples.is_empty() {
                String::new()
            } else {
                format!(" (e.g. {})", c.examples.join(", "))
            };
            lines.push(format!(
                "data check `{}` failed: {} {} row(s){examples}",
                c.check, c.rows, c.dataset
            ));
        }
        for r in &self.over_ratio {
            lines.push(format!(
                "{} of {} {} rows were dropped, more than max_reject_ratio = {}",
                r.dropped, r.total, r.dataset, r.max
            ));
        }
        write!(
            f,
            "{}\n  help: fix the input data, or set the check's policy in the pipeline's [quality] section (\"warn\" keeps the rows, \"drop\" leaves them out and writes them to rejects/)",
            lines.join("\n")
        )
    }
}

/// Why a cycle cannot be committed by this run.
#[derive(Debug, thiserror::Error)]
pub enum ConflictError {
    #[error(
        "cycle {cycle} is already committed under {root} (run {run_id}, {committed_at}); pass --replace to replace it"
    )]
    AlreadyCommitted {
        cycle: String,
        root: String,
        run_id: String,
        committed_at: String,
    },
    #[error(
        "cycle {cycle} is being committed by run {run_id} (host {host}, pid {pid}, since {since}); if that run is dead, its lock expires {lease_minutes} minutes after it was taken"
    )]
    BeingCommitted {
        cycle: String,
        run_id: String,
        host: String,
        pid: u32,
        since: String,
        lease_minutes: i64,
    },
    #[error("cycle {cycle} is being committed by another run")]
    LockHeld { cycle: String },
    #[error("cycle {cycle} was committed by another run first")]
    CommittedFirst { cycle: String },
    #[error("`{uri}` exists already")]
    Exists { uri: String },
}

/// Inputs that have not reached a cycle yet: the run is worth repeating
/// once they land (exit 5), never committed as they are.
#[derive(Debug, thiserror::Error)]
pub enum NotReadyError {
    #[error(
        "usage `{uri}` ends on {last}, before as_of {as_of} of cycle {cycle}: the cycle's usage has not all landed yet\n  help: retry once it has (exit code 5: not ready, retry later); if the usage is complete but sparse (no rows on its last days), pass --allow-incomplete-usage, which the manifest records"
    )]
    UsageBehind {
        uri: String,
        last: chrono::NaiveDate,
        as_of: chrono::NaiveDate,
        cycle: String,
    },
    #[error(
        "accounts `{uri}`: the newest snapshot_date on or before as_of {as_of} of cycle {cycle} is {newest}, {age_days} days old, more than error_after_days = {max_days} ([inputs.accounts.freshness]): the cycle's account export has not landed yet\n  help: retry once it has (exit code 5: not ready, retry later), or raise error_after_days if exports are that far apart"
    )]
    AccountsStale {
        uri: String,
        newest: chrono::NaiveDate,
        as_of: chrono::NaiveDate,
        cycle: String,
        age_days: i64,
        max_days: u32,
    },
    #[error(
        "accounts `{uri}` have no snapshot_date on or before as_of {as_of} of cycle {cycle}: the first export is from {first}\n  help: choose a later cycle"
    )]
    AccountsNotYet {
        uri: String,
        first: chrono::NaiveDate,
        as_of: chrono::NaiveDate,
        cycle: String,
    },
}

impl From<NotReadyError> for Error {
    fn from(e: NotReadyError) -> Self {
        Error::NotReady(Box::new(e))
    }
}

/// A stored snapshot file that is not what quadrant wrote.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("`{uri}` is not a Parquet file")]
    NotParquet { uri: String },
    #[error("cannot read the footer of `{uri}`: {cause}")]
    Footer { uri: String, cause: String },
    #[error(
        "`{uri}` has no quadrant manifest in its footer: it was not written by quadrant; move it out of the snapshot folder"
    )]
    NotQuadrant { uri: String },
    #[error("the manifest in `{uri}` is not valid: {source}")]
    BadManifest {
        uri: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("snapshot of cycle {cycle} lists no files")]
    NoFiles { cycle: String },
    #[error("Delta table `{uri}`: {source}")]
    Delta {
        uri: String,
        /// delta-rs' own error, or what quadrant found wrong with the table.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(
        "Delta table `{table}` is broken at version {version}: it names `{file}` as the data of cycle {cycle}, but that file is missing, so no Delta reader can read this version (it was deleted outside Delta: by an earlier quadrant that took an error answer to its own commit for a conflict, or by a vacuum with too short a retention)\n  help: commit the cycle anew with `quadrant run --cycle {cycle} --replace`: the new version removes the missing file from the table (versions before it stay unreadable for time travel)"
    )]
    MissingFile {
        table: String,
        version: u64,
        file: String,
        cycle: String,
    },
}

impl From<SchemaError> for Error {
    fn from(e: SchemaError) -> Self {
        Error::Schema(Box::new(e))
    }
}

impl From<ConflictError> for Error {
    fn from(e: ConflictError) -> Self {
        Error::Conflict(Box::new(e))
    }
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) | Error::Refused(_) => exit::CONFIG,
            Error::Schema(_) | Error::Data(_) => exit::DATA,
            Error::Conflict(_) => exit::CONFLICT,
            Error::NotReady(_) => exit::NOT_READY,
            Error::Storage { .. }
            | Error::Polars { .. }
            | Error::Spark { .. }
            | Error::Snapshot(_)
            | Error::Io { .. } => exit::RUNTIME,
        }
    }

    /// A configuration error with a single problem.
    pub fn config(message: impl Into<String>) -> Self {
        Error::Config(vec![Problem::new(message)])
    }

    /// A local file operation that failed.
    pub fn io(action: &'static str, path: impl std::fmt::Display, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.to_string(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One problem in a pipeline file or on the command line: where it is, what
/// is wrong, and what to do about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// `file:line:column`, or empty when the problem has no place.
    pub place: String,
    pub message: String,
    pub help: Option<String>,
}

impl Problem {
    pub fn new(message: impl Into<String>) -> Self {
        Problem {
            place: String::new(),
            message: message.into(),
            help: None,
        }
    }

    pub fn at(mut self, place: impl Into<String>) -> Self {
        self.place = place.into();
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.place.is_empty() {
            write!(f, "{}", self.message)?;
        } else {
            write!(f, "{}: {}", self.place, self.message)?;
        }
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

fn render_problems(problems: &[Problem]) -> String {
    match problems {
        [one] => one.to_string(),
        many => {
            let mut out = format!("{} problems:", many.len());
            for p in many {
                out.push_str("\n- ");
                out.push_str(&p.to_string().replace('\n', "\n  "));
            }
            out
        }
    }
}

/// Adds context to polars and storage errors at the place they happen.
pub trait Context<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, polars::error::PolarsError> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Polars {
            context: context(),
            source,
        })
    }
}

/// The first line of a store's error, without the XML body it may carry.
/// Masked before it is cut: a secret cut in two would no longer be found.
fn short_cause(e: &object_store::Error) -> String {
    let text = crate::redact::text(&e.to_string()).into_owned();
    let first = text.lines().next().unwrap_or(&text);
    let first = first.split(": <?xml").next().unwrap_or(first);
    let mut cut: String = first.chars().take(300).collect();
    if let Some(code) = text.split("<Code>").nth(1).and_then(|c| c.split("</Code>").next()) {
        cut.push_str(&format!(" ({code})"));
    }
    cut
}

impl Error {
    /// A store's error: what was being done, the store's first line, and
    /// `check`, what to check on this kind of store.
    pub fn storage(context: String, source: &object_store::Error, check: &str) -> Error {
        let help = if matches!(source, object_store::Error::NotFound { .. }) {
            format!("not found: check {check}")
        } else {
            format!("check {check}; network errors and 5xx answers were retried with backoff before giving up")
        };
        Error::Storage {
            help,
            cause: short_cause(source),
            context,
        }
    }
}

/// The names closest to `wanted` among `known`, best first, for "did you
/// mean" hints.
pub fn nearest<'a>(wanted: &str, known: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let wanted = wanted.to_lowercase();
    let mut scored: Vec<(f64, &str)> = known
        .into_iter()
        .map(|k| {
            let k_lower = k.to_lowercase();
            // Close in spelling, or the same start (`employes` ~ `employees`).
            let edit = strsim::normalized_damerau_levenshtein(&wanted, &k_lower);
            let prefix = strsim::jaro_winkler(&wanted, &k_lower);
            (edit.max(if prefix >= 0.85 { prefix } else { 0.0 }), k)
        })
        .filter(|(score, _)| *score >= 0.6)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(3).map(|(_, k)| k).collect()
}

/// "did you mean `a`, `b`?" or None.
pub fn did_you_mean<'a>(wanted: &str, known: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let near = nearest(wanted, known);
    if near.is_empty() {
        None
    } else {
        let names: Vec<String> = near.iter().map(|n| format!("`{n}`")).collect();
        Some(format!("did you mean {}?", names.join(", ")))
    }
}
