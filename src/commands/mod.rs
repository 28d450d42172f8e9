//! The subcommands, one file each. [`Settings::resolve`] turns the flags,
//! the pipeline file and the environment into checked settings once; each
//! command then calls the stages and prints its result on stdout.

mod compare;
mod cycles;
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
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::snapshot::{Manifest, Snapshots};
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
}

/// The engine the flags ask for, checked before any input is read.
pub fn engine(args: &EngineArgs) -> Result<crate::engine::Choice> {
    crate::engine::choose(args.engine, args.spark_remote.as_deref())
}

pub fn parse_date(flag: &str, value: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map_err(|_| Error::config(format!("{flag} `{value}` is not a date: use YYYY-MM-DD")))
}

pub fn parse_cycle(value: &str) -> Result<Cycle> {
    value.parse().map_err(Error::config)
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

/// The committed snapshot of a cycle, or a usage error saying how to make it.
pub fn committed(snapshots: &Snapshots, cycle: &str) -> Result<Manifest> {
    let c = parse_cycle(cycle)?;
    let store = snapshots.store();
    snapshots.settle(&c)?.ok_or_else(|| {
        Error::config(format!(
            "cycle {c} is not committed under {}: run `quadrant run --cycle {c}` first (`quadrant cycles` lists what is)",
            store.uri()
        ))
    })
}
