//! The usage pass on Apache Spark, through Spark Connect. Spark reads the
//! usage where it lives and returns one row per account (or the rejected
//! rows); everything after that (accounts, features, base-wide functions,
//! rules, the commit) stays on this machine, in polars, so the labels come
//! from one implementation. [`sql`] lowers the plan; this module talks to
//! the server and brings its Arrow answer into polars.

pub mod sql;

use std::time::Duration;

use arrow::array::{Array, AsArray};
use arrow::datatypes as arrow_types;
use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;
use polars::prelude::*;
use spark_connect::SparkSession;
use spark_connect_core::ChannelBuilder;

use crate::config::Check;
use crate::engine::UsagePass;
use crate::engine::polars::Scan;
use crate::engine::polars::aggregates::{per_day, split_cycles};
use crate::error::{Context, Error, Result};
use crate::plan::Plan;

/// How long a connection to the server may take before the run fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A Spark Connect connection string, checked; shown without its
/// parameters (a `token` among them).
pub struct Remote {
    url: String,
    host: String,
    port: u16,
}

impl Remote {
    /// Checks a connection string as the client reads it
    /// (`sc://host:port/;key=value;...`).
    pub fn parse(url: &str) -> Result<Remote> {
        crate::redact::register_spark_remote(url);
        let shown = shown(url);
        let builder = ChannelBuilder::parse(url).map_err(|e| {
            Error::config(format!(
                "--spark-remote `{shown}` is not a Spark Connect connection string ({}): expected sc://HOST:PORT or sc://HOST:PORT/;token=...;use_ssl=true",
                crate::redact::text(&e.message())
            ))
        })?;
        if builder.token().is_some() && !builder.use_ssl() && !builder.is_loopback() {
            return Err(Error::config(format!(
                "--spark-remote `{shown}` has a token but no TLS: add `;use_ssl=true` (a token is sent in clear only to localhost)"
            )));
        }
        Ok(Remote {
            url: url.to_string(),
            host: builder.host().to_string(),
            port: builder.port(),
        })
    }

    /// Whether something accepts a connection at the remote's address
    /// within [`CONNECT_TIMEOUT`]; else the last connection error.
    fn probe(&self) -> std::result::Result<(), String> {
        use std::net::ToSocketAddrs;
        let addrs = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| format!("{}: {e}", self.host))?;
        let mut last_error = format!("{} resolves to no address", self.host);
        for addr in addrs {
            match std::net::TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                Ok(_) => return Ok(()),
                Err(e) => last_error = format!("{}:{}: {e}", self.host, self.port),
            }
        }
        Err(format!("{last_error} (waited up to {}s)", CONNECT_TIMEOUT.as_secs()))
    }

    /// `sc://host:port`, safe to show.
    pub fn shown(&self) -> String {
        format!("sc://{}:{}", self.host, self.port)
    }
}

/// A connection string without its parameters, for messages.
fn shown(url: &str) -> String {
    let head = url.split(';').next().unwrap_or(url).trim_end_matches('/');
    crate::redact::text(&crate::redact::uri(head)).into_owned()
}

/// The usage pass of one dataset, run by a Spark Connect server.
pub struct SparkUsage<'a> {
    session: SparkSession,
    remote: String,
    /// The server's Spark version.
    version: String,
    usage: &'a Scan,
    sql: sql::Usage,
    /// The undated rows do not depend on the cycle: asked once per run.
    undated: std::sync::OnceLock<DataFrame>,
}

impl<'a> SparkUsage<'a> {
    /// Connects, failing fast when nothing answers at the remote's address
    /// (the client would otherwise retry for minutes).
    pub fn connect(remote: &str, usage: &'a Scan) -> Result<SparkUsage<'a>> {
        let remote = Remote::parse(remote)?;
        let sql = sql::Usage::new(usage)?;
        let shown = remote.shown();
        remote.probe().map_err(|cause| Error::Spark {
            remote: shown.clone(),
            context: "cannot reach the Spark Connect server".into(),
            message: cause,
        })?;
        let failed = |context: &str, e: spark_connect::SparkError| Error::Spark {
            remote: shown.clone(),
            context: context.to_string(),
            message: e.message(),
        };
        let session = SparkSession::builder()
            .remote(&remote.url)
            .get_or_create()
            .map_err(|e| failed("cannot open a Spark Connect session", e))?;
        // Timestamps are truncated to dates in UTC, as polars does.
        session
            .conf()
            .set("spark.sql.session.timeZone", "UTC")
            .map_err(|e| failed("cannot configure the Spark session", e))?;
        let version = session.version().unwrap_or_default();
        // Watched before the run says it is on Spark, so that a stop from
        // then on always interrupts (the signal handler is in place when
        // `Signals::new` returns).
        interrupt_when_stopped(session.clone(), shown.clone());
        tracing::info!(remote = %shown, spark = %version, "usage pass on Spark");
        let spark_files = session
            .read()
            .parquet(&sql.path)
            .input_files()
            .map_err(|e| failed(&format!("cannot list the usage files of `{}`", sql.path), e))?;
        same_files(usage, &spark_files)?;
        Ok(SparkUsage {
            session,
            version,
            remote: shown,
            usage,
            sql,
            undated: std::sync::OnceLock::new(),
        })
    }

    /// Runs a query and brings its answer into polars with the columns and
    /// types polars' own pass gives.
    fn run(&self, what: &str, query: sql::Query) -> Result<DataFrame> {
        tracing::debug!(remote = %self.remote, sql = %query.sql, "Spark SQL: {what}");
        let failed = |e: spark_connect::SparkError| Error::Spark {
            remote: self.remote.clone(),
            context: format!("{what} of `{}`", self.usage.uri),
            message: e.message(),
        };
        let frame = self.session.sql(&query.sql).map_err(failed)?;
        let batches = frame.collect_record_batches().map_err(failed)?;
        to_polars(&batches, &query.columns).ctx(|| format!("cannot read Spark's answer to {what}"))
    }
}

impl UsagePass for SparkUsage<'_> {
    fn read_by(&self) -> Option<String> {
        Some(format!("spark {} (Spark {})", self.remote, self.version))
    }

    fn uri(&self) -> &str {
        &self.usage.uri
    }

    fn span(&self) -> Result<crate::plan::UsageSpan> {
        let frame = self.run("the first and last usage dates", self.sql.span())?;
        let day = |name: &str| -> Result<NaiveDate> {
            match frame.column(name).and_then(|c| c.get(0)) {
                Ok(AnyValue::Date(days)) => Ok(crate::cycle::from_epoch_days(days)),
                _ => Err(crate::error::SchemaError::NoDatedUsage {
                    uri: self.usage.uri.clone(),
                }
                .into()),
            }
        };
        Ok(crate::plan::UsageSpan {
            first: day("first")?,
            last: day("last")?,
        })
    }

    fn aggregate(&self, plan: &Plan, as_of: NaiveDate, drop_negative: bool) -> Result<DataFrame> {
        let grouped = self.run("the usage aggregates", self.sql.aggregate(plan, as_of, drop_negative))?;
        per_day(grouped.lazy(), plan)
            .collect()
            .ctx(|| "cannot divide the per_day aggregates".into())
    }

    /// One query for a backfill: Spark reads the usage where it lives once,
    /// not once per cycle.
    fn aggregates_cycles_in_one_pass(&self) -> bool {
        true
    }

    fn aggregate_cycles(&self, plan: &Plan, as_ofs: &[NaiveDate], drop_negative: bool) -> Result<Vec<DataFrame>> {
        tracing::info!("one Spark query for the usage of {} cycles", as_ofs.len());
        let wide = self.run(
            "the usage aggregates of the cycles",
            self.sql.aggregate_cycles(plan, as_ofs, drop_negative),
        )?;
        split_cycles(&wide, plan, as_ofs.len())
    }

    fn undated(&self) -> Result<DataFrame> {
        if let Some(frame) = self.undated.get() {
            return Ok(frame.clone());
        }
        let frame = self.run("the usage rows without a date", self.sql.undated())?;
        Ok(self.undated.get_or_init(|| frame).clone())
    }

    fn rejected(&self, plan: &Plan, as_of: NaiveDate, check: Check, unknown_ids: &DataFrame) -> Result<DataFrame> {
        let ids: Vec<String> = match unknown_ids.column("account_id") {
            Ok(c) => c
                .str()
                .ctx(|| "unknown account ids".into())?
                .iter()
                .flatten()
                .map(str::to_string)
                .collect(),
            Err(_) => Vec::new(),
        };
        self.run(
            &format!("the usage rows data check {} rejects", check.name()),
            self.sql.rejected(plan, as_of, check, &ids),
        )
    }
}

/// When the run is stopped (SIGTERM from an orchestrator, Ctrl-C), its
/// Spark operations are interrupted before the process exits, so that the
/// cluster does not go on computing for a run that is gone. The process
/// exits as a killed one would (128 + the signal); the commit protocol
/// holds for an exit at any point. A server that does not answer within
/// five seconds is not waited for.
fn interrupt_when_stopped(session: SparkSession, remote: String) {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = match signal_hook::iterator::Signals::new([SIGTERM, SIGINT]) {
        Ok(signals) => signals,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch for SIGTERM: a stopped run will leave its Spark operations to time out");
            return;
        }
    };
    std::thread::spawn(move || {
        let Some(signal) = signals.forever().next() else {
            return;
        };
        tracing::warn!(%remote, signal, "stopped: interrupting this run's Spark operations");
        let (done, interrupted) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = done.send(session.interrupt_all());
        });
        match interrupted.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(operations)) => {
                tracing::warn!(%remote, operations = operations.len(), "interrupted {} Spark operation(s)", operations.len())
            }
            Ok(Err(e)) => tracing::warn!(%remote, error = %e.message(), "cannot interrupt the Spark operations"),
            Err(_) => tracing::warn!(%remote, "Spark did not answer the interrupt within 5 s"),
        }
        std::process::exit(128 + signal);
    });
}

/// Spark must read the files quadrant lists and records in the manifest:
/// no more (a file without a `.parquet` name in a folder), no fewer.
fn same_files(usage: &Scan, spark_files: &[String]) -> Result<()> {
    use std::collections::BTreeSet;
    let ours: BTreeSet<String> = usage
        .files
        .iter()
        .map(|f| sql::spark_path(&f.uri).map(|p| sql::file_key(&p)))
        .collect::<Result<_>>()?;
    let theirs: BTreeSet<String> = spark_files.iter().map(|f| sql::file_key(f)).collect();
    if ours == theirs {
        return Ok(());
    }
    let only = |a: &BTreeSet<String>, b: &BTreeSet<String>| -> String {
        let names: Vec<&str> = a.difference(b).take(3).map(String::as_str).collect();
        let more = a.difference(b).count().saturating_sub(names.len());
        let extra = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        if names.is_empty() {
            "none".into()
        } else {
            format!("{}{extra}", names.join(", "))
        }
    };
    Err(Error::Refused(format!(
        "usage `{}`: Spark would read other files than quadrant lists (Spark only: {}; quadrant only: {})\n  help: keep only Parquet files named *.parquet in the usage folder, or name them with a glob",
        usage.uri,
        only(&theirs, &ours),
        only(&ours, &theirs)
    )))
}

/// Arrow record batches from Spark as a polars frame with the given columns
/// and types. The answer is bounded by the account base (or the rejected
/// rows), so it is copied value by value: no unsafe FFI for a small frame.
fn to_polars(batches: &[RecordBatch], columns: &[(String, DataType)]) -> PolarsResult<DataFrame> {
    let mut out = Vec::with_capacity(columns.len());
    for (name, dtype) in columns {
        let mut parts: Vec<Series> = Vec::new();
        for batch in batches {
            let array = batch
                .column_by_name(name)
                .ok_or_else(|| polars_err!(ColumnNotFound: "Spark's answer has no column `{}`", name))?;
            parts.push(series(name, array.as_ref())?);
        }
        let mut column = match parts.split_first() {
            Some((first, rest)) => {
                let mut s = first.clone();
                for p in rest {
                    s.append(p)?;
                }
                s
            }
            None => Series::new_empty(name.as_str().into(), dtype),
        };
        if column.dtype() != dtype {
            column = column.strict_cast(dtype)?;
        }
        out.push(column.into_column());
    }
    DataFrame::new_infer_height(out)
}

/// An Arrow array of numbers as a polars series of the same numbers.
fn primitive<T: arrow_types::ArrowPrimitiveType>(name: PlSmallStr, array: &dyn Array) -> Series
where
    Series: NamedFrom<Vec<Option<T::Native>>, [Option<T::Native>]>,
{
    Series::new(name, array.as_primitive::<T>().iter().collect::<Vec<_>>())
}

/// One Arrow array as a polars series (the types Spark's answers use).
fn series(name: &str, array: &dyn Array) -> PolarsResult<Series> {
    use arrow::datatypes::DataType as A;
    let name: PlSmallStr = name.into();
    Ok(match array.data_type() {
        A::Utf8 => Series::new(name, array.as_string::<i32>().iter().collect::<Vec<_>>()),
        A::LargeUtf8 => Series::new(name, array.as_string::<i64>().iter().collect::<Vec<_>>()),
        A::Utf8View => Series::new(name, array.as_string_view().iter().collect::<Vec<_>>()),
        A::Int64 => primitive::<arrow_types::Int64Type>(name, array),
        A::Int32 => primitive::<arrow_types::Int32Type>(name, array),
        A::Float64 => primitive::<arrow_types::Float64Type>(name, array),
        A::Date32 => primitive::<arrow_types::Date32Type>(name, array).cast(&DataType::Date)?,
        A::Boolean => Series::new(name, array.as_boolean().iter().collect::<Vec<_>>()),
        A::Null => Series::full_null(name, array.len(), &DataType::Null),
        other => {
            polars_bail!(ComputeError: "Spark answered column `{}` as {}, which quadrant does not read", name, other)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remote_is_shown_without_its_token() {
        let remote = Remote::parse("sc://localhost:15002/;token=s3cr3t-t0ken;user_id=me").unwrap();
        assert_eq!(remote.shown(), "sc://localhost:15002");
        assert_eq!(
            shown("sc://spark.example:443/;token=s3cr3t-t0ken"),
            "sc://spark.example:443"
        );
    }

    #[test]
    fn a_malformed_remote_is_a_usage_error() {
        for bad in [
            "localhost:15002",
            "http://host:1",
            "sc://",
            "sc://host:notaport",
            "sc://host:1/;novalue",
        ] {
            let e = Remote::parse(bad).err().unwrap_or_else(|| panic!("{bad} accepted"));
            assert_eq!(e.exit_code(), crate::error::exit::CONFIG, "{bad}: {e}");
        }
    }

    #[test]
    fn a_token_is_not_sent_in_clear_to_another_host() {
        let e = Remote::parse("sc://spark.example:15002/;token=abcdefgh").err().unwrap();
        assert_eq!(e.exit_code(), crate::error::exit::CONFIG);
        assert!(!e.to_string().contains("abcdefgh"), "{e}");
        assert!(Remote::parse("sc://spark.example:443/;token=abcdefgh;use_ssl=true").is_ok());
    }
}
