//! The command line: clap derive types only.

use clap::{Args, Parser, Subcommand, ValueEnum};

/// `quadrant --version`: what this binary is and what it was built with.
pub static LONG_VERSION: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let engines = if cfg!(feature = "spark") {
        "polars, spark (Spark Connect)"
    } else {
        "polars (built without the Spark engine: --features spark)"
    };
    format!(
        "{}\ncommit: {}\nengines: {engines}\ntable formats: parquet, delta\npolars: {}",
        env!("CARGO_PKG_VERSION"),
        env!("QUADRANT_COMMIT"),
        polars::VERSION,
    )
});

#[derive(Debug, Parser)]
#[command(
    name = "quadrant",
    version,
    long_version = LONG_VERSION.as_str(),
    about = "Segments a B2B customer base once per review cycle: Parquet in, immutable partitioned snapshots out."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// More log detail: -v for debug, -vv for trace. RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Only warnings and errors in the log.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Log format on stderr: `text` for people, `json` (one object per line) for orchestrators.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "QUADRANT_LOG_FORMAT")]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where the pipeline, its inputs and its snapshots are. Every subcommand
/// that reads them takes these, with the same meaning.
#[derive(Debug, Clone, Args)]
pub struct Locations {
    /// The pipeline file. Default: the built-in copy of pipelines/default.toml.
    #[arg(long, short = 'p')]
    pub pipeline: Option<String>,

    /// Accounts input (file, folder, glob or Hive tree); overrides the pipeline's.
    #[arg(long)]
    pub accounts: Option<String>,

    /// Usage input (file, folder, glob or Hive tree); overrides the pipeline's.
    #[arg(long)]
    pub usage: Option<String>,

    /// Output root of the snapshots; overrides the pipeline's.
    #[arg(long, short = 'o')]
    pub output: Option<String>,
}

/// Where the usage pass (the part of a cycle that reads usage rows) runs.
/// Everything else runs on this machine, whichever engine is chosen.
#[derive(Debug, Clone, Args)]
pub struct EngineArgs {
    /// `polars` on this machine, or `spark` on a Spark Connect server (Spark
    /// 4.2 or later; needs a quadrant built with `--features spark`).
    #[arg(long, value_enum, default_value_t = EngineName::Polars)]
    pub engine: EngineName,

    /// The Spark Connect server for `--engine spark`:
    /// `sc://HOST:PORT/;token=...;use_ssl=true`, as pyspark takes it.
    #[arg(long, env = "SPARK_REMOTE", hide_env_values = true)]
    pub spark_remote: Option<String>,
}

/// The value of `--engine`, as typed. `commands::engine` resolves it, with
/// the Spark remote, into the engine layer's `engine::Choice`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineName {
    Polars,
    Spark,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compute and commit the snapshot of one cycle (or a range of cycles).
    Run(RunArgs),
    /// Check the pipeline file and the input schemas; writes nothing.
    Validate(ValidateArgs),
    /// Show one account's features and which rule gave each label, and why
    /// the earlier rules did not.
    Explain(ExplainArgs),
    /// List the committed snapshots under the output root.
    Cycles(CyclesArgs),
    /// Compare two committed cycles: migration matrix, NRR / GRR per label,
    /// ARR bridge and per-account moves, written under compare/.
    Compare(CompareArgs),
    /// Write a self-contained HTML report of the committed cycles.
    Report(ReportArgs),
    /// Write realistic synthetic accounts and daily usage, deterministic by seed.
    Generate(GenerateArgs),
    /// Print what a cycle's usage pass would run on the chosen engine (for
    /// `--engine spark`, the Spark SQL), without running it.
    Plan(PlanArgs),
    /// Delete the files of Delta output that replaced runs left, once they
    /// are older than the retention (time travel to versions older than it
    /// stops working), and files of runs that died before their commit.
    Vacuum(VacuumArgs),
    /// What-if: evaluate a pipeline (`--pipeline NEW.toml`) on the inputs and
    /// as_of of a committed cycle and show which accounts and how much ARR
    /// would move, per segmentation, and which rules' counts change.
    /// Commits nothing.
    Diff(DiffArgs),
    /// Print a shell completion script: `quadrant completions bash >
    /// /etc/bash_completion.d/quadrant` (zsh: a file `_quadrant` on
    /// `$fpath`; fish: `~/.config/fish/completions/quadrant.fish`).
    Completions(CompletionsArgs),
    /// Print the man page (roff): `quadrant man > quadrant.1; man ./quadrant.1`.
    Man,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub locations: Locations,

    #[command(flatten)]
    pub engine: EngineArgs,

    /// The cycle whose windows to plan.
    #[arg(long, short = 'c')]
    pub cycle: String,

    /// Plan as of this date instead of the cycle's last day.
    #[arg(long)]
    pub as_of: Option<String>,

    /// Report the usage's coverage of the windows without failing on it, as
    /// `run --allow-incomplete-usage` would go on.
    #[arg(long)]
    pub allow_incomplete_usage: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub locations: Locations,

    #[command(flatten)]
    pub engine: EngineArgs,

    /// The cycle: `2026-Q4`, `2026-H2`, `2026-11` or `2026`. Default: the
    /// latest cycle of the pipeline's cadence that the usage data covers.
    #[arg(long, short = 'c', conflicts_with = "cycles")]
    pub cycle: Option<String>,

    /// A range of cycles to backfill, each committed on its own: `2025-Q1..2026-Q4`.
    #[arg(long)]
    pub cycles: Option<String>,

    /// A preview: evaluate as of this date inside the cycle's period instead
    /// of its last day, print the result and commit nothing. Without
    /// --cycle, the cycle that contains the date.
    #[arg(long, conflicts_with_all = ["cycles", "replace"])]
    pub as_of: Option<String>,

    /// With --as-of: also write the preview's rows to this .parquet or .csv file.
    #[arg(long, requires = "as_of")]
    pub to: Option<String>,

    /// Evaluate and commit a cycle although the usage does not cover every
    /// window (it ends before as_of, or starts after the earliest window's
    /// first day), for usage that is sparse but complete. Recorded in the
    /// manifest and the summary.
    #[arg(long)]
    pub allow_incomplete_usage: bool,

    /// Replace a committed snapshot of the cycle (the manifest records the replaced run).
    #[arg(long)]
    pub replace: bool,

    /// With --replace: also recompute, in order and each as a replace, the
    /// later committed cycles that read the replaced one (through `prev` or
    /// `_since`); without it such a replace is refused.
    #[arg(long, requires = "replace")]
    pub cascade: bool,

    /// Fail (exit 2) when the previous cycle is not committed, instead of
    /// reading `prev(...)` as null with a warning.
    #[arg(long)]
    pub require_previous: bool,

    /// Print the run summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,

    /// Also write the JSON summary to this file (for Airflow XCom and the like).
    #[arg(long)]
    pub summary_file: Option<String>,

    /// Send OpenLineage run events (START, COMPLETE, FAIL) to this URL.
    /// Default: the OPENLINEAGE_URL environment variable, if set.
    #[arg(long)]
    pub lineage_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub locations: Locations,

    #[command(flatten)]
    pub engine: EngineArgs,

    /// Check only the pipeline file, not the input schemas.
    #[arg(long, conflicts_with = "cycle")]
    pub config_only: bool,

    /// Also evaluate this cycle and run every data check on its rows
    /// (nothing is written).
    #[arg(long, short = 'c')]
    pub cycle: Option<String>,

    /// With --cycle: go on when the usage does not cover every window, as
    /// `run --allow-incomplete-usage` would.
    #[arg(long, requires = "cycle")]
    pub allow_incomplete_usage: bool,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub locations: Locations,

    #[command(flatten)]
    pub engine: EngineArgs,

    /// The cycle; default: the latest committed one.
    #[arg(long, short = 'c')]
    pub cycle: Option<String>,

    /// The account to explain.
    #[arg(long)]
    pub account: String,

    /// Print the explanation as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CyclesArgs {
    #[command(flatten)]
    pub locations: Locations,

    /// Print the list as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub locations: Locations,

    #[command(flatten)]
    pub engine: EngineArgs,

    /// The committed cycle to compare with. Default: the latest.
    #[arg(long, short = 'c')]
    pub cycle: Option<String>,

    /// Write the accounts that move (both labels and rules, per
    /// segmentation) to this file: `.parquet` or `.csv`.
    #[arg(long, value_name = "FILE")]
    pub to: Option<String>,

    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VacuumArgs {
    #[command(flatten)]
    pub locations: Locations,

    /// Keep removed files younger than this many hours. Default: each
    /// table's `delta.deletedFileRetentionDuration` (7 days unless set).
    #[arg(long, value_name = "HOURS")]
    pub retain_hours: Option<u64>,

    /// Allow a retention shorter than the table's own: readers that are
    /// reading an older version, or time travel to it, may then fail.
    #[arg(long)]
    pub force: bool,

    /// List what would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    #[command(flatten)]
    pub locations: Locations,

    /// The starting cycle.
    #[arg(long)]
    pub from: String,

    /// The ending cycle.
    #[arg(long)]
    pub to: String,

    /// Compare only this segmentation (also when the two pipelines differ).
    #[arg(long)]
    pub segmentation: Option<String>,

    /// Print the comparison as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub locations: Locations,

    /// The HTML file to write.
    #[arg(long, default_value = "quadrant-report.html")]
    pub to: String,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The folder to write `accounts.parquet` and `usage/` into.
    #[arg(long)]
    pub out: String,

    /// How many accounts.
    #[arg(long, default_value_t = 1000)]
    pub accounts: u32,

    /// Days of usage, ending on --end.
    #[arg(long, default_value_t = 365)]
    pub days: u32,

    /// The random seed: the same seed writes the same data.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// The last day of usage (YYYY-MM-DD).
    #[arg(long, default_value = "2026-09-30")]
    pub end: String,

    /// Write quarterly `snapshot_date` rows per account (history for backfills).
    #[arg(long)]
    pub history: bool,

    /// Replace what a folder that is not empty holds (accounts.parquet and
    /// usage/*.parquet); without it such a folder is refused.
    #[arg(long)]
    pub force: bool,
}
