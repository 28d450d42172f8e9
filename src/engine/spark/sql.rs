//! The usage pass lowered to Spark SQL, from the same plan as polars' pass
//! (`engine::polars::aggregates`): the same window masks, aggregates and
//! row counters, one `SELECT ... GROUP BY account_id`. Only the part of SQL
//! where Spark and polars agree exactly is used: filters, `CASE`, group-by,
//! integer sums, counts, min/max, count distinct, and `max` of a
//! `(date, value)` struct for `last` (deterministic on ties, unlike
//! `max_by`). Pure text: unit-tested here, printed by `quadrant plan`.

use chrono::NaiveDate;
use polars::prelude::DataType;

use crate::config::{Agg, Check};
use crate::engine::polars::Scan;
use crate::engine::polars::aggregates::cycle_suffix;
use crate::engine::{NEGATIVE_ROWS, REASON, ROWS};
use crate::error::{Error, Result};
use crate::plan::{Plan, UsageRows, window};

/// One query and the columns (with the types polars' pass gives them) that
/// its result must have.
pub struct Query {
    pub sql: String,
    pub columns: Vec<(String, DataType)>,
}

/// The usage dataset as Spark reads it: the same files, its columns renamed
/// and conformed to the types polars' scan gives them.
pub struct Usage {
    /// What Spark reads: the usage URI as Hadoop names it.
    pub path: String,
    /// `account_id`, `date` and the metrics, with their types.
    columns: Vec<(String, DataType)>,
    /// The conforming subquery over the files.
    source: String,
}

impl Usage {
    pub fn new(usage: &Scan) -> Result<Usage> {
        let path = spark_path(&usage.uri)?;
        let mut select = Vec::new();
        let mut columns = Vec::new();
        for c in &usage.sources {
            select.push(format!(
                "CAST({} AS {}) AS {}",
                ident(&c.source),
                sql_type(&c.conformed)?,
                ident(&c.name)
            ));
            columns.push((c.name.clone(), c.conformed.clone()));
        }
        Ok(Usage {
            path: path.clone(),
            columns,
            source: format!("(SELECT {} FROM parquet.{}) AS usage", select.join(", "), ident(&path)),
        })
    }

    fn type_of(&self, column: &str) -> DataType {
        self.columns
            .iter()
            .find(|(n, _)| n == column)
            .map_or(DataType::Float64, |(_, t)| t.clone())
    }

    /// True for rows with a negative value in a metric the aggregates read
    /// (a null compares as false), as `aggregates::negative_metric`.
    fn negative(&self, plan: &Plan) -> String {
        let tests: Vec<String> = plan
            .usage_columns()
            .into_iter()
            .map(|c| format!("{} < 0", ident(c)))
            .collect();
        if tests.is_empty() {
            "FALSE".into()
        } else {
            format!("COALESCE({}, FALSE)", tests.join(" OR "))
        }
    }

    /// Rows in some window, as `aggregates::in_range`.
    fn in_range(plan: &Plan, as_of: NaiveDate) -> String {
        match plan.usage_range(as_of) {
            Some((after, through)) => between(after, through),
            None => "FALSE".into(),
        }
    }

    /// The grouped usage: one row per account id with every aggregate (a
    /// `per_day` as its sum, divided afterwards) and the row counters.
    pub fn aggregate(&self, plan: &Plan, as_of: NaiveDate, drop_negative: bool) -> Query {
        let negative = self.negative(plan);
        let mut select = vec!["account_id".to_string()];
        let mut columns = vec![("account_id".to_string(), DataType::String)];
        self.windowed(plan, as_of, drop_negative, "", (&mut select, &mut columns));
        select.push(format!("COUNT(*) AS {}", ident(ROWS)));
        select.push(format!("COUNT_IF({negative}) AS {}", ident(NEGATIVE_ROWS)));
        columns.push((ROWS.into(), DataType::Int64));
        columns.push((NEGATIVE_ROWS.into(), DataType::Int64));
        Query {
            sql: format!(
                "SELECT {}\nFROM {}\nWHERE {}\nGROUP BY account_id",
                select.join(",\n  "),
                self.source,
                Self::in_range(plan, as_of)
            ),
            columns,
        }
    }

    /// The grouped usage of several cycles in one query, as polars'
    /// `aggregates::aggregate_cycles` computes it: every aggregate and
    /// counter once per cycle, named with `cycle_suffix`, over the rows in
    /// any cycle's range (split per cycle by `split_cycles`).
    pub fn aggregate_cycles(&self, plan: &Plan, as_ofs: &[NaiveDate], drop_negative: bool) -> Query {
        let negative = self.negative(plan);
        let mut select = vec!["account_id".to_string()];
        let mut columns = vec![("account_id".to_string(), DataType::String)];
        let mut ranges = Vec::new();
        for (k, as_of) in as_ofs.iter().enumerate() {
            let suffix = cycle_suffix(k);
            self.windowed(plan, *as_of, drop_negative, &suffix, (&mut select, &mut columns));
            let in_cycle = Self::in_range(plan, *as_of);
            let (rows, negative_rows) = (format!("{ROWS}{suffix}"), format!("{NEGATIVE_ROWS}{suffix}"));
            select.push(format!("COUNT_IF({in_cycle}) AS {}", ident(&rows)));
            select.push(format!(
                "COUNT_IF({in_cycle} AND {negative}) AS {}",
                ident(&negative_rows)
            ));
            columns.push((rows, DataType::Int64));
            columns.push((negative_rows, DataType::Int64));
            ranges.push(format!("({in_cycle})"));
        }
        let any = if ranges.is_empty() {
            "FALSE".to_string()
        } else {
            ranges.join(" OR ")
        };
        Query {
            sql: format!(
                "SELECT {}\nFROM {}\nWHERE {any}\nGROUP BY account_id",
                select.join(",\n  "),
                self.source,
            ),
            columns,
        }
    }

    /// Every aggregate of a cycle evaluated at `as_of`, named with `suffix`:
    /// its select expression and its column.
    fn windowed(
        &self,
        plan: &Plan,
        as_of: NaiveDate,
        drop_negative: bool,
        suffix: &str,
        (select, columns): (&mut Vec<String>, &mut Vec<(String, DataType)>),
    ) {
        let negative = self.negative(plan);
        for a in &plan.aggregates {
            let (after, through) = window(a, as_of);
            let mut keep = between(after, through);
            if drop_negative {
                keep = format!("{keep} AND NOT {negative}");
            }
            let v = ident(&a.column);
            let metric = self.type_of(&a.column);
            let (expr, ty) = match a.agg {
                // A window whose values are all null sums to 0, as in polars.
                Agg::Sum | Agg::PerDay => (
                    format!("COALESCE(SUM(CASE WHEN {keep} THEN {v} ELSE 0 END), 0)"),
                    metric,
                ),
                Agg::Count => (format!("COUNT(CASE WHEN {keep} THEN {v} END)"), DataType::Int64),
                Agg::Mean => (format!("AVG(CASE WHEN {keep} THEN {v} END)"), DataType::Float64),
                Agg::Min => (format!("MIN(CASE WHEN {keep} THEN {v} END)"), metric),
                Agg::Max => (format!("MAX(CASE WHEN {keep} THEN {v} END)"), metric),
                Agg::NUnique => (
                    format!("COUNT(DISTINCT CASE WHEN {keep} THEN {v} END)"),
                    DataType::Int64,
                ),
                // The latest non-null value; on a tie of dates the largest.
                Agg::Last => (
                    format!("MAX(CASE WHEN {keep} AND {v} IS NOT NULL THEN named_struct('d', date, 'v', {v}) END).v"),
                    metric,
                ),
            };
            let name = format!("{}{suffix}", a.name);
            select.push(format!("{expr} AS {}", ident(&name)));
            columns.push((name, ty));
        }
    }

    /// Usage rows without a date, counted per account id.
    pub fn undated(&self) -> Query {
        Query {
            sql: format!(
                "SELECT account_id, COUNT(*) AS {}\nFROM {}\nWHERE date IS NULL\nGROUP BY account_id",
                ident(ROWS),
                self.source
            ),
            columns: vec![("account_id".into(), DataType::String), (ROWS.into(), DataType::Int64)],
        }
    }

    /// The first and the last usage date.
    pub fn span(&self) -> Query {
        Query {
            sql: format!("SELECT MIN(date) AS first, MAX(date) AS last\nFROM {}", self.source),
            columns: vec![("first".into(), DataType::Date), ("last".into(), DataType::Date)],
        }
    }

    /// The usage rows a check flags, with the check's name as `reason`.
    pub fn rejected(&self, plan: &Plan, as_of: NaiveDate, check: Check, unknown_ids: &[String]) -> Query {
        let in_range = Self::in_range(plan, as_of);
        let flagged = match UsageRows::of(check) {
            Some(UsageRows::NullAccountId) => format!("{in_range} AND account_id IS NULL"),
            Some(UsageRows::NullDate) => "date IS NULL".to_string(),
            Some(UsageRows::UnknownAccount) => {
                let ids: Vec<String> = unknown_ids.iter().map(|id| string(id)).collect();
                if ids.is_empty() {
                    "FALSE".to_string()
                } else {
                    format!("{in_range} AND account_id IN ({})", ids.join(", "))
                }
            }
            Some(UsageRows::NegativeMetric) => format!("{in_range} AND {}", self.negative(plan)),
            // A check of the accounts flags no usage row.
            None => "FALSE".to_string(),
        };
        let mut select: Vec<String> = self.columns.iter().map(|(n, _)| ident(n)).collect();
        select.push(format!("{} AS {}", string(check.name()), ident(REASON)));
        let mut columns = self.columns.clone();
        columns.push((REASON.into(), DataType::String));
        Query {
            sql: format!("SELECT {}\nFROM {}\nWHERE {flagged}", select.join(", "), self.source),
            columns,
        }
    }

    /// What the usage pass of a cycle sends to Spark, for review.
    pub fn describe(&self, plan: &Plan, as_of: NaiveDate) -> String {
        let drop_negative = plan.drops_negative_usage();
        let mut out = format!(
            "SET spark.sql.session.timeZone = UTC;\n\n-- the files Spark reads, checked against quadrant's listing: {}\n\n-- the aggregates, per account id:\n{};\n\n-- usage rows without a date (data check null_usage_date):\n{};\n",
            self.path,
            self.aggregate(plan, as_of, drop_negative).sql,
            self.undated().sql
        );
        let usage_checks = [
            Check::NullUsageAccountId,
            Check::NullUsageDate,
            Check::UnknownAccountUsage,
            Check::NegativeUsage,
        ];
        for check in usage_checks {
            if plan.policy(check) != crate::config::Policy::Drop {
                continue;
            }
            let ids = ["<the unknown account ids the aggregates found>".to_string()];
            out.push_str(&format!(
                "\n-- when data check {} finds rows (policy drop), the rows it rejects:\n{};\n",
                check.name(),
                self.rejected(plan, as_of, check, &ids).sql
            ));
        }
        out
    }
}

fn between(after: NaiveDate, through: NaiveDate) -> String {
    format!("(date > DATE '{after}' AND date <= DATE '{through}')")
}

/// A Spark SQL identifier: backquoted, a backquote doubled.
pub fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A Spark SQL string literal: Spark reads backslash escapes in literals,
/// so both the quote and the backslash are escaped.
pub fn string(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn sql_type(ty: &DataType) -> Result<&'static str> {
    Ok(match ty {
        DataType::Int64 => "BIGINT",
        DataType::Float64 => "DOUBLE",
        DataType::Date => "DATE",
        DataType::String => "STRING",
        other => {
            return Err(Error::config(format!(
                "usage column type {other} has no Spark SQL equivalent in quadrant"
            )));
        }
    })
}

/// A file's URI as both sides can compare it: `file:///x`, `file:/x` and a
/// plain `/x` are one file, and percent-escapes are decoded.
pub fn file_key(uri: &str) -> String {
    let decoded = crate::redact::percent_decode(uri);
    match decoded.strip_prefix("file:") {
        Some(path) => format!("/{}", path.trim_start_matches('/')),
        None => decoded,
    }
}

/// The URI Spark reads for one of quadrant's: Hadoop's connectors name the
/// stores differently (`s3a://`, `abfss://container@account...`), and a
/// local path must be absolute and say `file:` (a cluster would otherwise
/// resolve it on its default file system).
pub fn spark_path(uri: &str) -> Result<String> {
    let Some((scheme, rest)) = uri.split_once("://") else {
        let path = std::path::absolute(uri)
            .map_err(|e| Error::config(format!("usage input `{uri}`: cannot make the path absolute: {e}")))?;
        return Ok(format!("file://{}", path.display()));
    };
    Ok(match scheme.to_ascii_lowercase().as_str() {
        "s3" | "s3a" => format!("s3a://{rest}"),
        "gs" | "gcs" => format!("gs://{rest}"),
        "abfs" | "abfss" | "file" => uri.to_string(),
        "az" | "azure" | "adl" => {
            let account = std::env::var("AZURE_STORAGE_ACCOUNT_NAME")
                .or_else(|_| std::env::var("AZURE_STORAGE_ACCOUNT"))
                .map_err(|_| {
                    Error::config(format!(
                        "usage input `{uri}`: Spark reads Azure as abfss://CONTAINER@ACCOUNT.dfs.core.windows.net/...: set AZURE_STORAGE_ACCOUNT_NAME, or give the usage URI in that form"
                    ))
                })?;
            let (container, path) = rest.split_once('/').unwrap_or((rest, ""));
            format!("abfss://{container}@{account}.dfs.core.windows.net/{path}")
        }
        other => {
            return Err(Error::config(format!(
                "usage input `{uri}`: Spark cannot read `{other}://` URIs (use s3://, gs://, az://, abfss:// or a path)"
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_are_named_as_hadoop_names_them() {
        assert_eq!(spark_path("s3://lake/usage/").unwrap(), "s3a://lake/usage/");
        assert_eq!(spark_path("s3a://lake/usage").unwrap(), "s3a://lake/usage");
        assert_eq!(spark_path("gs://lake/u/*.parquet").unwrap(), "gs://lake/u/*.parquet");
        assert_eq!(
            spark_path("abfss://c@acct.dfs.core.windows.net/u").unwrap(),
            "abfss://c@acct.dfs.core.windows.net/u"
        );
        let local = spark_path("fixtures/usage").unwrap();
        assert!(
            local.starts_with("file:///") && local.ends_with("/fixtures/usage"),
            "{local}"
        );
        assert!(spark_path("http://host/u.parquet").is_err());
    }

    #[test]
    fn one_file_has_one_key_whoever_names_it() {
        let key = file_key("/data/usage/cycle=1/part 0.parquet");
        assert_eq!(file_key("file:/data/usage/cycle=1/part%200.parquet"), key);
        assert_eq!(file_key("file:///data/usage/cycle=1/part 0.parquet"), key);
        assert_eq!(file_key("s3a://b/u/p.parquet"), "s3a://b/u/p.parquet");
    }

    #[test]
    fn names_and_strings_cannot_break_out_of_their_quotes() {
        assert_eq!(ident("a`b"), "`a``b`");
        assert_eq!(string("it's"), "'it\\'s'");
        assert_eq!(string("a\\' OR 1=1 --"), "'a\\\\\\' OR 1=1 --'");
    }
}
