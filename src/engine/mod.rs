//! How a cycle's plan is computed. polars computes every stage on this
//! machine ([`polars`]). The one stage that grows with the usage rows, the
//! usage pass, sits behind [`UsagePass`], so that it can run where the usage
//! lives instead: on Apache Spark through Spark Connect ([`spark`], built
//! with the `spark` feature), lowered from the same checked [`Plan`]. Every
//! other stage (accounts, features, base-wide functions, rules, the commit)
//! has one implementation, so the labels never depend on the engine.

pub mod polars;
#[cfg(feature = "spark")]
pub mod spark;

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use ::polars::prelude::DataFrame;
use chrono::NaiveDate;

use crate::config::Check;
use crate::error::Result;
use crate::plan::{Plan, UsageSpan};

/// The column contract of [`UsagePass`]: whatever engine ran the pass, the
/// grouped usage counts each account's rows in range in `ROWS` and those
/// with a negative metric in `NEGATIVE_ROWS`, and rejected rows say which
/// check flagged them in `REASON`.
pub const ROWS: &str = "__usage_rows";
pub const NEGATIVE_ROWS: &str = "__negative_usage_rows";
pub const REASON: &str = "reason";

/// The part of a cycle's work that reads usage rows. Each method returns a
/// frame bounded by the account base (or by the rejected rows), with the
/// same columns and types whichever engine computed it.
pub trait UsagePass: Sync {
    /// Where the pass ran, for the manifest, when not on this machine.
    fn read_by(&self) -> Option<String>;

    /// The usage input's URI, for messages.
    fn uri(&self) -> &str;

    /// The first and the last usage date.
    fn span(&self) -> Result<UsageSpan>;

    /// One row per account id with usage in some window (null ids
    /// included): `account_id`, every aggregate of the plan, and the row
    /// counters [`ROWS`] and
    /// [`NEGATIVE_ROWS`]. With `drop_negative`, rows
    /// with a negative metric are left out of the aggregates (still counted).
    fn aggregate(&self, plan: &Plan, as_of: NaiveDate, drop_negative: bool) -> Result<DataFrame>;

    /// Whether [`UsagePass::aggregate_cycles`] reads the usage once for all
    /// the cycles. On polars it does not: one group-by with every cycle's
    /// windows masked measured no faster than a pass per cycle
    /// (docs/performance.md).
    fn aggregates_cycles_in_one_pass(&self) -> bool {
        false
    }

    /// [`UsagePass::aggregate`] for each of several cycles, in order; by
    /// default one pass per cycle.
    fn aggregate_cycles(&self, plan: &Plan, as_ofs: &[NaiveDate], drop_negative: bool) -> Result<Vec<DataFrame>> {
        as_ofs.iter().map(|d| self.aggregate(plan, *d, drop_negative)).collect()
    }

    /// Usage rows without a date, counted per account id (column
    /// [`ROWS`]).
    fn undated(&self) -> Result<DataFrame>;

    /// The usage rows a check flags, with a `reason` column, for
    /// `rejects/`: the dataset's columns as [`polars::Scan`] types them.
    /// `unknown_ids` holds the account ids of the usage that the accounts do
    /// not know (for [`Check::UnknownAccountUsage`]).
    fn rejected(&self, plan: &Plan, as_of: NaiveDate, check: Check, unknown_ids: &DataFrame) -> Result<DataFrame>;
}

/// A usage pass for the cycles of a backfill. An engine that computes
/// several cycles' aggregates in one pass
/// ([`UsagePass::aggregates_cycles_in_one_pass`]: Spark, one query) computes
/// them all when the first is asked for and serves each cycle its own;
/// another computes each when asked. The rows without a date, which no
/// cycle's window holds, are read once. Everything else is the inner
/// pass's.
pub struct Prepared<'a> {
    inner: &'a dyn UsagePass,
    as_ofs: Vec<NaiveDate>,
    grouped: Mutex<Option<BTreeMap<NaiveDate, DataFrame>>>,
    undated: OnceLock<DataFrame>,
}

impl<'a> Prepared<'a> {
    /// For the cycles evaluated at `as_ofs`, in order.
    pub fn new(inner: &'a dyn UsagePass, as_ofs: &[NaiveDate]) -> Prepared<'a> {
        Prepared {
            inner,
            as_ofs: as_ofs.to_vec(),
            grouped: Mutex::new(None),
            undated: OnceLock::new(),
        }
    }
}

impl UsagePass for Prepared<'_> {
    fn read_by(&self) -> Option<String> {
        self.inner.read_by()
    }

    fn uri(&self) -> &str {
        self.inner.uri()
    }

    fn span(&self) -> Result<UsageSpan> {
        self.inner.span()
    }

    fn aggregate(&self, plan: &Plan, as_of: NaiveDate, drop_negative: bool) -> Result<DataFrame> {
        if !self.inner.aggregates_cycles_in_one_pass() || !self.as_ofs.contains(&as_of) {
            return self.inner.aggregate(plan, as_of, drop_negative);
        }
        let mut grouped = self.grouped.lock().unwrap_or_else(|e| e.into_inner());
        if grouped.is_none() {
            let frames = self.inner.aggregate_cycles(plan, &self.as_ofs, drop_negative)?;
            *grouped = Some(self.as_ofs.iter().copied().zip(frames).collect());
        }
        match grouped.as_mut().and_then(|g| g.remove(&as_of)) {
            Some(frame) => Ok(frame),
            None => self.inner.aggregate(plan, as_of, drop_negative),
        }
    }

    fn undated(&self) -> Result<DataFrame> {
        if let Some(frame) = self.undated.get() {
            return Ok(frame.clone());
        }
        let frame = self.inner.undated()?;
        Ok(self.undated.get_or_init(|| frame).clone())
    }

    fn rejected(&self, plan: &Plan, as_of: NaiveDate, check: Check, unknown_ids: &DataFrame) -> Result<DataFrame> {
        self.inner.rejected(plan, as_of, check, unknown_ids)
    }
}

/// Which engine computes the usage pass, as the user asked for it.
#[derive(Debug, Clone, Default)]
pub enum Choice {
    #[default]
    Polars,
    /// A Spark Connect server: `sc://host:port/;key=value...`.
    Spark { remote: String },
}

impl Choice {
    /// The usage pass over a scanned usage dataset.
    pub fn usage_pass<'a>(&self, usage: &'a polars::Scan) -> Result<Box<dyn UsagePass + 'a>> {
        match self {
            Choice::Polars => Ok(Box::new(polars::aggregates::LocalUsage::new(usage)?)),
            #[cfg(feature = "spark")]
            Choice::Spark { remote } => Ok(Box::new(spark::SparkUsage::connect(remote, usage)?)),
            #[cfg(not(feature = "spark"))]
            Choice::Spark { .. } => Err(not_built()),
        }
    }

    /// What would run for the usage pass of a cycle, for review, without
    /// running it.
    pub fn describe(&self, plan: &Plan, usage: &polars::Scan, as_of: NaiveDate) -> Result<String> {
        match self {
            Choice::Polars => polars::aggregates::describe(plan, usage, as_of),
            #[cfg(feature = "spark")]
            Choice::Spark { .. } => Ok(spark::sql::Usage::new(usage)?.describe(plan, as_of)),
            #[cfg(not(feature = "spark"))]
            Choice::Spark { .. } => Err(not_built()),
        }
    }
}

#[cfg(not(feature = "spark"))]
fn not_built() -> crate::error::Error {
    crate::error::Error::config(
        "this quadrant was built without the Spark engine: build it with `cargo build --release --features spark` (needs protoc)",
    )
}
