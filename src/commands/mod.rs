//! The subcommands, one file each. [`Settings::resolve`] turns the flags,
//! the pipeline file and the environment into checked settings once; each
//! command then calls the stages and prints its result on stdout.

mod compare;
mod cycles;
mod diff;
mod explain;
mod plan;
mod report;
mod run;
mod vacuum;
mod validate;

use chrono::NaiveDate;

use crate::cli::{Command, EngineArgs, Locations};
use crate::config::Pipeline;
use crate::cycle::Cycle;
use crate::error::Context;
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::snapshot::{self, Manifest, Snapshots};
use crate::storage::Store;

pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Run(args) => run::run(args),
        Command::Validate(args) => validate::validate(args),
        Command::Explain(args) => explain::explain(args),
        Command::Cycles(args) => cycles::cycles(args),
        Command::Compare(args) => compare::compare(args),
        Command::Report(args) => report::report(args),
        Command::Generate(args) => crate::generate::generate(&args),
        Command::Plan(args) => plan::plan(args),
        Command::Vacuum(args) => vacuum::vacuum(args),
        Command::Diff(args) => diff::diff(args),
        Command::Completions(args) => {
            let mut command = <crate::cli::Cli as clap::CommandFactory>::command();
            let mut out = std::io::stdout().lock();
            clap_complete::generate(args.shell, &mut command, "quadrant", &mut out);
            Ok(())
        }
        Command::Man => {
            let command = <crate::cli::Cli as clap::CommandFactory>::command();
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(command)
                .render(&mut out)
                .map_err(|e| Error::io("write the man page", "stdout", e))
        }
    }
}

/// The pipeline and the locations a command works on: flags over the
/// pipeline file, the file over the built-in default.
pub struct Settings {
    pub pipeline: Pipeline,
    /// What the pipeline computes for a cycle, for the engine.
    pub plan: Plan,
    pub accounts_uri: String,
    pub usage_uri: String,
    pub output_uri: String,
}

impl Settings {
    pub fn resolve(locations: &Locations) -> Result<Settings> {
        let pipeline = Pipeline::load(locations.pipeline.as_deref())?;
        // Cycle ids are read and dated in the pipeline's calendar.
        crate::cycle::set_fiscal_year_start(pipeline.fiscal_year_start_month);
        let pick = |flag: &Option<String>, file: &str| flag.clone().unwrap_or_else(|| file.to_string());
        Ok(Settings {
            accounts_uri: pick(&locations.accounts, &pipeline.accounts.uri),
            usage_uri: pick(&locations.usage, &pipeline.usage.uri),
            output_uri: pick(&locations.output, &pipeline.output_uri),
            plan: Plan::new(&pipeline),
            pipeline,
        })
    }

    /// The output root's store.
    pub fn output(&self) -> Result<Store> {
        Store::open(&self.output_uri, &self.pipeline.storage)
    }

    /// The snapshots under the output root, in the format found there.
    pub fn snapshots(&self) -> Result<Snapshots> {
        Snapshots::open(self.output()?)
    }

    /// The snapshots of a root that must already exist (for commands that
    /// only read): a local root that does not is named as such.
    pub fn existing_snapshots(&self) -> Result<Snapshots> {
        let store = self.output()?;
        if store.is_local() && !std::path::Path::new(store.uri()).exists() {
            return Err(Error::config(format!(
                "the output root {} does not exist: pass --output with the root that holds the snapshots (the pipeline's [output] uri is `{}`)",
                store.uri(),
                self.pipeline.output_uri
            )));
        }
        Snapshots::open(store)
    }
}

/// The engine the flags ask for, checked before any input is read: the
/// engine layer gets a resolved choice, never a flag. `--engine spark` needs
/// a remote, from `--spark-remote` or `SPARK_REMOTE`.
pub fn engine(args: &EngineArgs) -> Result<crate::engine::Choice> {
    use crate::cli::EngineName;
    use crate::engine::Choice;
    let remote = args.spark_remote.as_deref();
    match args.engine {
        EngineName::Polars => {
            if remote.is_some_and(|r| !r.is_empty()) {
                tracing::debug!("a Spark remote is set but the engine is polars: it is not used");
            }
            Ok(Choice::Polars)
        }
        EngineName::Spark => {
            let remote = remote.filter(|r| !r.trim().is_empty()).ok_or_else(|| {
                Error::config(
                    "--engine spark needs a Spark Connect server: pass --spark-remote sc://HOST:PORT or set SPARK_REMOTE",
                )
            })?;
            crate::redact::register_spark_remote(remote);
            Ok(Choice::Spark {
                remote: remote.to_string(),
            })
        }
    }
}

pub fn parse_date(flag: &str, value: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map_err(|_| Error::config(format!("{flag} `{value}` is not a date: use YYYY-MM-DD")))
}

pub fn parse_cycle(value: &str) -> Result<Cycle> {
    value.parse().map_err(Error::config)
}

/// A cycle id of the pipeline's cadence; another cadence's id is refused
/// (a month committed into a quarterly root would compare as a quarter).
pub fn pipeline_cycle(pipeline: &Pipeline, value: &str) -> Result<Cycle> {
    let cycle = parse_cycle(value)?;
    check_cadence(pipeline, cycle)?;
    Ok(cycle)
}

pub fn check_cadence(pipeline: &Pipeline, cycle: Cycle) -> Result<()> {
    let fiscal = pipeline.fiscal_year_start_month > 1;
    if cycle.cadence() == pipeline.cadence && cycle.is_fiscal() == fiscal {
        return Ok(());
    }
    let example = Cycle::containing(pipeline.cadence, cycle.as_of());
    let runs = if fiscal {
        format!(
            "fiscal {} (cadence = \"{}\", fiscal_year_start_month = {})",
            pipeline.cadence.name(),
            pipeline.cadence.name(),
            pipeline.fiscal_year_start_month
        )
    } else {
        format!(
            "{} (cadence = \"{}\")",
            pipeline.cadence.name(),
            pipeline.cadence.name()
        )
    };
    Err(Error::config(format!(
        "cycle {cycle} is a {}, but pipeline `{}` runs every {runs}: name one such as {example}",
        cycle.describe(),
        pipeline.name,
    )))
}

/// A frame as CSV (RFC 4180: fields with a comma, quote or line break are
/// quoted); nulls are empty fields.
fn csv(frame: &polars::prelude::DataFrame) -> String {
    use polars::prelude::AnyValue;
    let field = |s: &str| {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let names: Vec<String> = frame.get_column_names().iter().map(|n| field(n.as_str())).collect();
    let mut out = names.join(",") + "\n";
    for i in 0..frame.height() {
        let row: Vec<String> = frame
            .columns()
            .iter()
            .map(|c| match c.get(i) {
                Ok(AnyValue::Null) | Err(_) => String::new(),
                Ok(AnyValue::String(s)) => field(s),
                Ok(v) => field(&v.to_string()),
            })
            .collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

/// Writes rows for a person or a spreadsheet (`--to`): Parquet or CSV, by
/// the file's extension.
pub fn write_rows(frame: &mut polars::prelude::DataFrame, path: &str) -> Result<()> {
    use polars::prelude::ParquetWriter;
    let lower = path.to_ascii_lowercase();
    let file = || std::fs::File::create(path).map_err(|e| Error::io("create", path, e));
    if lower.ends_with(".parquet") {
        ParquetWriter::new(file()?)
            .finish(frame)
            .ctx(|| format!("cannot write `{path}`"))?;
    } else if lower.ends_with(".csv") {
        std::fs::write(path, csv(frame)).map_err(|e| Error::io("write", path, e))?;
    } else {
        return Err(Error::config(format!("--to `{path}`: name a .parquet or a .csv file")));
    }
    Ok(())
}

/// Whether the accounts' newest snapshot at as_of is fresh enough for the
/// pipeline's `[inputs.accounts.freshness]`: past `warn_after_days` a
/// warning, past `error_after_days` not ready (exit 5), unless `preview`
/// (a mid-period preview reads the export before it, and commits nothing).
pub fn check_freshness(
    pipeline: &Pipeline,
    accounts: &crate::engine::polars::Scan,
    cycle: Cycle,
    as_of: NaiveDate,
    preview: bool,
) -> Result<()> {
    let Some(freshness) = pipeline.accounts.freshness else {
        return Ok(());
    };
    let Some(newest) = accounts.newest_snapshot(as_of)? else {
        return Ok(());
    };
    let age = (as_of - newest).num_days();
    let over = |limit: Option<u32>| limit.is_some_and(|l| age > i64::from(l));
    if over(freshness.error_after_days) && !preview {
        return Err(crate::error::NotReadyError::AccountsStale {
            uri: accounts.uri.clone(),
            newest,
            as_of,
            cycle: cycle.to_string(),
            age_days: age,
            max_days: freshness.error_after_days.unwrap_or_default(),
        }
        .into());
    }
    if over(freshness.warn_after_days) || over(freshness.error_after_days) {
        tracing::warn!(%as_of, newest_snapshot = %newest, age_days = age, "the newest account snapshot is older than [inputs.accounts.freshness] allows");
    }
    Ok(())
}

/// How the usage covers a cycle's windows, in one line.
pub fn print_coverage(c: &crate::plan::Coverage) {
    let Some(start) = c.window_start else {
        return;
    };
    let verdict = if c.complete() {
        "covered"
    } else if c.behind() {
        "NOT covered: the usage has not reached as_of"
    } else {
        "NOT covered: the usage starts after the earliest window's first day"
    };
    crate::outln!(
        "-- usage from {} to {}; the windows need {start} (`{}`) to {}: {verdict}",
        c.usage_first,
        c.usage_last,
        c.window.as_deref().unwrap_or_default(),
        c.as_of
    );
}

/// What the data checks found, one line per check that flagged rows.
pub fn print_findings(findings: &[crate::plan::Finding]) {
    for f in findings.iter().filter(|f| f.rows > 0) {
        crate::outln!(
            "  data check {}: {} {} rows ({:?})",
            f.check,
            f.rows,
            f.dataset,
            f.policy
        );
    }
}

/// A command's inputs, opened once: the accounts and usage scanned, and
/// the engine the flags chose for the usage pass.
pub struct CycleInputs {
    pub accounts: crate::engine::polars::Scan,
    pub usage: crate::engine::polars::Scan,
    choice: crate::engine::Choice,
}

impl CycleInputs {
    /// Resolves the engine (before any input is read), then scans both inputs.
    pub fn open(
        setup: &Settings,
        engine_args: &EngineArgs,
        accounts_uri: &str,
        usage_uri: &str,
    ) -> Result<CycleInputs> {
        let choice = engine(engine_args)?;
        let accounts = crate::engine::polars::scan_accounts(&setup.pipeline, accounts_uri)?;
        let usage = crate::engine::polars::scan_usage(&setup.pipeline, usage_uri)?;
        Ok(CycleInputs {
            accounts,
            usage,
            choice,
        })
    }

    /// The usage pass on the chosen engine (on Spark: connected).
    pub fn pass(&self) -> Result<Box<dyn crate::engine::UsagePass + '_>> {
        self.choice.usage_pass(&self.usage)
    }
}

/// Evaluates one cycle at `as_of`, the one way every command does: what
/// it reads of the previous cycle's committed snapshot (or of `carried`, that
/// snapshot as a backfill kept it), then the plan. Returns the evaluation
/// and the previous run it read.
pub fn evaluate_cycle(
    setup: &Settings,
    snapshots: &Snapshots,
    accounts: &crate::engine::polars::Accounts,
    pass: &dyn crate::engine::UsagePass,
    (cycle, as_of): (Cycle, NaiveDate),
    (require_previous, carried): (bool, Option<&crate::engine::polars::history::Carried>),
) -> Result<(crate::engine::polars::Evaluation, Option<snapshot::PreviousRun>)> {
    let (history, previous) =
        crate::engine::polars::read_history(snapshots, &setup.plan, cycle, require_previous, carried)?;
    let evaluation = crate::engine::polars::evaluate(&setup.plan, accounts, pass, as_of, &history)?;
    Ok((evaluation, previous))
}

/// The committed snapshot of a cycle, or a usage error saying how to make it.
pub fn committed(snapshots: &Snapshots, cycle: &str) -> Result<Manifest> {
    let c = parse_cycle(cycle)?;
    let store = snapshots.store();
    snapshots.committed_run(&c)?.ok_or_else(|| {
        Error::config(format!(
            "cycle {c} is not committed under {}: run `quadrant run --cycle {c}` first (`quadrant cycles` lists what is)",
            store.uri()
        ))
    })
}
