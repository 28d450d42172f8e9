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
    #[error("{context}: {source}")]
    Storage {
        context: String,
        #[source]
        source: object_store::Error,
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
        self.map_err(|source| Error::Storage {
            context: context(),
            source,
        })
    }
}

/// The names closest to `wanted` among `known`, best first, for "did you
/// mean" hints.
pub fn nearest<'a>(wanted: &str, known: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let wanted = wanted.to_lowercase();
    let mut scored: Vec<(f64, &str)> = known
        .into_iter()
        .map(|k| (strsim::jaro_winkler(&wanted, &k.to_lowercase()), k))
        .filter(|(score, _)| *score >= 0.75)
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
