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
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line or the pipeline file is wrong. Holds every problem
    /// found, so the user can fix them all at once.
    #[error("{}", render_problems(.0))]
    Config(Vec<Problem>),

    /// An input does not have the shape the pipeline needs.
    #[error("{0}")]
    Schema(String),

    /// A data check failed under the `error` policy.
    #[error("{0}")]
    Data(String),

    /// The cycle is committed already, or another run holds or won it.
    #[error("{0}")]
    Conflict(String),

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

    /// Any other runtime failure (local I/O, encoding).
    #[error("{0}")]
    Runtime(String),
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) => exit::CONFIG,
            Error::Schema(_) | Error::Data(_) => exit::DATA,
            Error::Conflict(_) => exit::CONFLICT,
            Error::Storage { .. } | Error::Polars { .. } | Error::Runtime(_) => exit::RUNTIME,
        }
    }

    /// A configuration error with a single problem.
    pub fn config(message: impl Into<String>) -> Self {
        Error::Config(vec![Problem::new(message)])
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

impl<T> Context<T> for std::result::Result<T, object_store::Error> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| {
            let context = context();
            Error::Storage {
                help: storage_help(&context, &source),
                cause: short_cause(&source),
                context,
            }
        })
    }
}

/// The first line of a store's error, without the XML body it may carry.
fn short_cause(e: &object_store::Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or(&text);
    let first = first.split(": <?xml").next().unwrap_or(first);
    let mut cut: String = first.chars().take(300).collect();
    if let Some(code) = text.split("<Code>").nth(1).and_then(|c| c.split("</Code>").next()) {
        cut.push_str(&format!(" ({code})"));
    }
    cut
}

/// What to check, for the kind of store the message names.
fn storage_help(context: &str, e: &object_store::Error) -> String {
    let missing = matches!(e, object_store::Error::NotFound { .. });
    let store = if context.contains("s3://") || context.contains("s3a://") {
        "that the bucket exists, and AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), AWS_REGION and AWS_ENDPOINT_URL"
    } else if context.contains("gs://") || context.contains("gcs://") {
        "that the bucket exists, and GOOGLE_APPLICATION_CREDENTIALS or GOOGLE_SERVICE_ACCOUNT"
    } else if ["az://", "azure://", "abfs://", "abfss://", "adl://"]
        .iter()
        .any(|s| context.contains(s))
    {
        "that the container exists, and AZURE_STORAGE_ACCOUNT_NAME with AZURE_STORAGE_ACCOUNT_KEY (or another AZURE_* credential)"
    } else {
        "that the path exists and is readable and writable by this user"
    };
    if missing {
        format!("not found: check {store}")
    } else {
        format!("check {store}; network errors and 5xx answers were retried with backoff before giving up")
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
