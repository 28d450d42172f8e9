//! The subcommands: each turns checked arguments into calls of the stages
//! (config, source, evaluate, snapshot) and prints its result on stdout.

use chrono::{NaiveDate, Utc};
use polars::prelude::*;
use serde::Serialize;

use crate::cli::{Command, CompareArgs, CyclesArgs, ExplainArgs, Locations, ReportArgs, RunArgs, ValidateArgs};
use crate::config::Pipeline;
use crate::cycle::Cycle;
use crate::error::{Context, Error, Result};
use crate::evaluate::{self, Evaluation};
use crate::expr::lower;
use crate::lineage::{Lineage, LineageRun};
use crate::snapshot::{self, Commit, InputInfo, Inputs, Manifest};
use crate::source::{self, Dataset};
use crate::storage::Store;
use crate::{generate, table};

pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Run(args) => run_cycles(args),
        Command::Validate(args) => validate(args),
        Command::Explain(args) => explain(args),
        Command::Cycles(args) => cycles(args),
        Command::Compare(args) => compare(args),
        Command::Report(args) => report(args),
        Command::Generate(args) => generate::generate(&args),
    }
}

/// The pipeline and the locations a command works on, flags over file.
struct Setup {
    pipeline: Pipeline,
    accounts_uri: String,
    usage_uri: String,
    output_uri: String,
}

fn setup(locations: &Locations) -> Result<Setup> {
    let pipeline = Pipeline::load(locations.pipeline.as_deref())?;
    let pick = |flag: &Option<String>, file: &str| flag.clone().unwrap_or_else(|| file.to_string());
    Ok(Setup {
        accounts_uri: pick(&locations.accounts, &pipeline.accounts.uri),
        usage_uri: pick(&locations.usage, &pipeline.usage.uri),
        output_uri: pick(&locations.output, &pipeline.output_uri),
        pipeline,
    })
}

fn parse_date(flag: &str, value: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map_err(|_| Error::config(format!("{flag} `{value}` is not a date: use YYYY-MM-DD")))
}

fn parse_cycle(value: &str) -> Result<Cycle> {
    value.parse().map_err(Error::config)
}

/// The latest cycle the usage data covers completely.
fn latest_cycle(pipeline: &Pipeline, usage: &Dataset) -> Result<Cycle> {
    let max = usage
        .frame
        .clone()
        .select([col("date").max()])
        .collect_with_engine(Engine::Streaming)
        .map(|r| r.unwrap_single())
        .ctx(|| format!("cannot read usage dates of `{}`", usage.uri))?;
    let value = max.column("date").ctx(|| "date".into())?.get(0).ctx(|| "date".into())?;
    let AnyValue::Date(days) = value else {
        return Err(Error::Schema(format!(
            "usage `{}` has no dated rows: pass --cycle",
            usage.uri
        )));
    };
    let date = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid") + chrono::Duration::days(days as i64);
    let cycle = Cycle::latest_complete(pipeline.cadence, date);
    tracing::info!(%cycle, last_usage_date = %date, "no --cycle given: using the latest cycle the usage covers");
    Ok(cycle)
}

#[derive(Serialize)]
struct RunSummary {
    cycle: String,
    as_of: String,
    run_id: String,
    snapshot: String,
    rows: u64,
    bytes: u64,
    segmentations: Vec<snapshot::SegmentationSummary>,
    quality: Vec<crate::quality::Finding>,
    replaced: Option<snapshot::Replaced>,
    timings: std::collections::BTreeMap<String, f64>,
    skipped: bool,
}

fn run_cycles(args: RunArgs) -> Result<()> {
    let setup = setup(&args.locations)?;
    let pipeline = &setup.pipeline;
    let as_of_flag = args.as_of.as_deref().map(|v| parse_date("--as-of", v)).transpose()?;
    let range = match &args.cycles {
        Some(range) => Some(Cycle::parse_range(range).map_err(Error::config)?),
        None => None,
    };
    if as_of_flag.is_some() && range.is_some() {
        return Err(Error::config(
            "--as-of applies to one cycle: use it with --cycle, not --cycles",
        ));
    }
    // Under Dagster, the run's partition key is the cycle.
    let partition = crate::pipes::get()
        .and_then(|p| p.partition_key())
        .filter(|_| range.is_none());
    let single = args.cycle.as_deref().or(partition).map(parse_cycle).transpose()?;
    let store = Store::open(&setup.output_uri, &setup.pipeline.storage)?;
    if let Some(cycle) = single {
        // Fail before any work when the answer is known already.
        snapshot::check_replaceable(&store, &cycle, args.replace)?;
    }

    let lineage = Lineage::configure(args.lineage_url.as_deref());
    let inputs = [setup.accounts_uri.as_str(), setup.usage_uri.as_str()];
    let prepared: Result<(Dataset, Dataset, Vec<Cycle>)> = (|| {
        let accounts = source::scan_accounts(pipeline, &setup.accounts_uri)?;
        let usage = source::scan_usage(pipeline, &setup.usage_uri)?;
        let cycles = match (&range, single) {
            (Some(range), _) => range.clone(),
            (None, Some(cycle)) => vec![cycle],
            (None, None) => vec![latest_cycle(pipeline, &usage)?],
        };
        Ok((accounts, usage, cycles))
    })();
    let (accounts, usage, cycles) = match prepared {
        Ok(p) => p,
        Err(e) => {
            // The run failed before a cycle's run began: still say so.
            if let (Some(lineage), Some(cycle)) = (&lineage, single.or(range.as_ref().and_then(|r| r.first().copied())))
            {
                LineageRun::start(lineage, &pipeline.name, &cycle, cycle.as_of(), &inputs).fail(&e.to_string());
            }
            return Err(e);
        }
    };

    let mut summaries = Vec::new();
    for cycle in cycles {
        if args.cycles.is_some() && !args.replace && snapshot::settle(&store, &cycle)?.is_some() {
            tracing::info!(%cycle, "already committed: skipped (pass --replace to recompute)");
            summaries.push(RunSummary {
                cycle: cycle.to_string(),
                as_of: cycle.as_of().to_string(),
                run_id: String::new(),
                snapshot: store.uri_of(&store.path(&snapshot::partition(&cycle))),
                rows: 0,
                bytes: 0,
                segmentations: Vec::new(),
                quality: Vec::new(),
                replaced: None,
                timings: Default::default(),
                skipped: true,
            });
            continue;
        }
        let as_of = as_of_flag.unwrap_or_else(|| cycle.as_of());
        if as_of < cycle.start() || as_of > cycle.as_of() {
            tracing::warn!(%cycle, %as_of, "--as-of lies outside the cycle's period");
        }
        let lineage_run = lineage
            .as_ref()
            .map(|l| LineageRun::start(l, &pipeline.name, &cycle, as_of, &inputs));
        match run_one(&setup, &store, &accounts, &usage, cycle, as_of, args.replace) {
            Ok(summary) => {
                if let Some(l) = &lineage_run {
                    l.complete(&summary.snapshot, summary.rows, summary.bytes);
                }
                if let Some(pipes) = crate::pipes::get() {
                    pipes.materialized(&summary.metadata());
                }
                summaries.push(summary);
            }
            Err(e) => {
                if let Some(l) = &lineage_run {
                    l.fail(&e.to_string());
                }
                return Err(e);
            }
        }
    }

    let json = if summaries.len() == 1 {
        serde_json::to_string_pretty(&summaries[0])
    } else {
        serde_json::to_string_pretty(&serde_json::json!({ "runs": summaries }))
    }
    .expect("serializable");
    if let Some(path) = &args.summary_file {
        std::fs::write(path, format!("{json}\n"))
            .map_err(|e| Error::Runtime(format!("cannot write the summary file `{path}`: {e}")))?;
    }
    if args.json {
        crate::outln!("{json}");
    } else {
        for s in &summaries {
            print_summary(s);
        }
    }
    Ok(())
}

impl RunSummary {
    /// What an orchestrator shows about the committed cycle.
    fn metadata(&self) -> Vec<(&'static str, serde_json::Value)> {
        let labels: serde_json::Map<String, serde_json::Value> = self
            .segmentations
            .iter()
            .map(|s| {
                let counts: serde_json::Map<String, serde_json::Value> = s
                    .labels
                    .iter()
                    .map(|l| {
                        (
                            l.label.clone(),
                            serde_json::json!({"accounts": l.accounts, "arr": l.arr}),
                        )
                    })
                    .collect();
                (s.name.clone(), serde_json::Value::Object(counts))
            })
            .collect();
        vec![
            ("cycle", self.cycle.clone().into()),
            ("as_of", self.as_of.clone().into()),
            ("run_id", self.run_id.clone().into()),
            ("snapshot", self.snapshot.clone().into()),
            ("rows", self.rows.into()),
            ("bytes", self.bytes.into()),
            ("labels", serde_json::Value::Object(labels)),
            (
                "rejected_rows",
                self.quality
                    .iter()
                    .filter(|f| f.policy == crate::config::Policy::Drop)
                    .map(|f| f.rows)
                    .sum::<u64>()
                    .into(),
            ),
        ]
    }
}

fn run_one(
    setup: &Setup,
    store: &Store,
    accounts: &Dataset,
    usage: &Dataset,
    cycle: Cycle,
    as_of: NaiveDate,
    replace: bool,
) -> Result<RunSummary> {
    let started_at = Utc::now();
    let run_id = snapshot::new_run_id(started_at);
    let span = tracing::info_span!("run", %cycle, %run_id);
    let _enter = span.enter();
    tracing::info!(%as_of, pipeline = %setup.pipeline.name, output = %store.uri(), "evaluating cycle");
    let Evaluation {
        snapshot: frame,
        quality,
        accounts_rows,
        usage_rows_in_windows,
        mut timings,
    } = evaluate::evaluate(&setup.pipeline, accounts, usage, as_of)?;
    let mut rejects = Vec::new();
    if !quality.rejected_accounts.is_empty() {
        rejects.push(("accounts", concat_frames(quality.rejected_accounts.clone())?));
    }
    if !quality.rejected_usage.is_empty() {
        rejects.push(("usage", concat_frames(quality.rejected_usage.clone())?));
    }
    crate::progress::started("write_and_commit");
    let commit_start = std::time::Instant::now();
    let manifest = snapshot::commit(
        store,
        Commit {
            pipeline: &setup.pipeline,
            cycle,
            as_of,
            run_id,
            started_at,
            snapshot: frame,
            rejects,
            inputs: Inputs {
                accounts: InputInfo {
                    uri: accounts.uri.clone(),
                    rows: accounts_rows,
                    files: accounts.files.clone(),
                },
                usage: InputInfo {
                    uri: usage.uri.clone(),
                    rows: usage_rows_in_windows,
                    files: usage.files.clone(),
                },
            },
            quality: quality.findings.clone(),
            replace,
        },
    )?;
    let commit_seconds = commit_start.elapsed().as_secs_f64();
    crate::progress::stage_done(
        "write_and_commit",
        commit_seconds,
        &format!("{} rows committed", manifest.rows),
    );
    timings.push(("write_and_commit", commit_seconds));
    tracing::info!(rows = manifest.rows, "committed");
    Ok(RunSummary {
        cycle: manifest.cycle.clone(),
        as_of: manifest.as_of.clone(),
        run_id: manifest.run_id.clone(),
        snapshot: store.uri_of(&store.path(&snapshot::partition(&cycle))),
        rows: manifest.rows,
        bytes: manifest
            .outputs
            .iter()
            .filter(|o| o.kind == "segments")
            .map(|o| o.bytes)
            .sum(),
        segmentations: manifest.segmentations.clone(),
        quality: manifest.quality.clone(),
        replaced: manifest.replaced.clone(),
        timings: timings
            .into_iter()
            .map(|(k, v)| (k.to_string(), (v * 1000.0).round() / 1000.0))
            .collect(),
        skipped: false,
    })
}

/// Rejected rows of several checks, in one frame (columns unioned).
fn concat_frames(frames: Vec<DataFrame>) -> Result<DataFrame> {
    let lazy: Vec<LazyFrame> = frames.into_iter().map(|f| f.lazy()).collect();
    concat(lazy, UnionArgs::default())
        .and_then(|lf| lf.collect())
        .ctx(|| "rejects".into())
}

fn print_summary(s: &RunSummary) {
    if s.skipped {
        crate::outln!("cycle {}: already committed, skipped", s.cycle);
        return;
    }
    crate::outln!(
        "cycle {} (as of {}): {} accounts committed as run {}\n  {}",
        s.cycle,
        s.as_of,
        s.rows,
        s.run_id,
        s.snapshot
    );
    if let Some(r) = &s.replaced {
        crate::outln!("  replaced run {} of {}", r.run_id, r.finished_at);
    }
    for f in s.quality.iter().filter(|f| f.rows > 0) {
        crate::outln!(
            "  data check {}: {} {} rows ({:?})",
            f.check,
            f.rows,
            f.dataset,
            f.policy
        );
    }
    for seg in &s.segmentations {
        let total_accounts: u64 = seg.labels.iter().map(|l| l.accounts).sum();
        let total_arr: f64 = seg.labels.iter().map(|l| l.arr).sum();
        let rows: Vec<Vec<String>> = seg
            .labels
            .iter()
            .map(|l| {
                vec![
                    l.label.clone(),
                    l.accounts.to_string(),
                    table::percent(l.accounts as f64, total_accounts as f64),
                    table::money(l.arr),
                    table::percent(l.arr, total_arr),
                ]
            })
            .collect();
        crate::outln!("\n{}", seg.name);
        crate::out!(
            "{}",
            table::render(
                &["label", "accounts", "share", "arr", "arr share"],
                &rows,
                &[false, true, true, true, true]
            )
        );
    }
    crate::outln!();
}

fn validate(args: ValidateArgs) -> Result<()> {
    let setup = setup(&args.locations)?;
    let p = &setup.pipeline;
    crate::outln!(
        "pipeline `{}` ({}) is valid: {} params, {} aggregates, {} features, {} segmentations",
        p.name,
        p.path,
        p.params.len(),
        p.aggregates.len(),
        p.features.len(),
        p.segmentations.len()
    );
    if args.config_only {
        return Ok(());
    }
    let accounts = source::scan_accounts(p, &setup.accounts_uri)?;
    crate::outln!(
        "accounts `{}`: {} file(s), columns used: {}",
        setup.accounts_uri,
        accounts.files.len(),
        accounts.columns.join(", ")
    );
    let usage = source::scan_usage(p, &setup.usage_uri)?;
    crate::outln!(
        "usage `{}`: {} file(s), columns used: {}",
        setup.usage_uri,
        usage.files.len(),
        usage.columns.join(", ")
    );
    if let Some(cycle) = &args.cycle {
        let cycle = parse_cycle(cycle)?;
        let eval = evaluate::evaluate(p, &accounts, &usage, cycle.as_of())?;
        crate::outln!(
            "cycle {cycle}: {} accounts would be segmented; {} usage rows in the windows",
            eval.snapshot.height(),
            eval.usage_rows_in_windows
        );
        for f in eval.quality.findings.iter().filter(|f| f.rows > 0) {
            crate::outln!(
                "  data check {}: {} {} rows ({:?})",
                f.check,
                f.rows,
                f.dataset,
                f.policy
            );
        }
    }
    Ok(())
}

fn cycles(args: CyclesArgs) -> Result<()> {
    let setup = setup(&args.locations)?;
    let store = Store::open(&setup.output_uri, &setup.pipeline.storage)?;
    let manifests = snapshot::list_committed(&store)?;
    if args.json {
        let list: Vec<serde_json::Value> = manifests
            .iter()
            .map(|m| {
                serde_json::json!({
                    "cycle": m.cycle, "as_of": m.as_of, "run_id": m.run_id,
                    "finished_at": m.finished_at, "rows": m.rows,
                    "pipeline": m.pipeline.name, "pipeline_hash": m.pipeline.hash,
                    "replaced_run": m.replaced.as_ref().map(|r| r.run_id.clone()),
                })
            })
            .collect();
        crate::outln!("{}", serde_json::to_string_pretty(&list).expect("serializable"));
        return Ok(());
    }
    if manifests.is_empty() {
        crate::outln!("no committed snapshots under {}", store.uri());
        return Ok(());
    }
    let rows: Vec<Vec<String>> = manifests
        .iter()
        .map(|m| {
            vec![
                m.cycle.clone(),
                m.as_of.clone(),
                m.run_id.clone(),
                m.finished_at.clone(),
                m.rows.to_string(),
                m.pipeline.name.clone(),
            ]
        })
        .collect();
    crate::out!(
        "{}",
        table::render(
            &["cycle", "as_of", "run_id", "committed_at", "rows", "pipeline"],
            &rows,
            &[false, false, false, false, true, false]
        )
    );
    Ok(())
}

/// One rule's verdict for the account, with the value of each condition
/// it is built from.
#[derive(Serialize)]
struct RuleVerdict {
    rule: String,
    label: String,
    when: String,
    matched: Option<bool>,
    conditions: Vec<ConditionValue>,
}

/// One condition of a rule and its value for the account (null: unknown).
#[derive(Serialize)]
struct ConditionValue {
    condition: String,
    value: Option<bool>,
}

#[derive(Serialize)]
struct SegmentationVerdict {
    segmentation: String,
    label: String,
    rule: String,
    rules: Vec<RuleVerdict>,
}

fn explain(args: ExplainArgs) -> Result<()> {
    let setup = setup(&args.locations)?;
    let store = Store::open(&setup.output_uri, &setup.pipeline.storage)?;
    let manifest: Option<Manifest> = match &args.cycle {
        Some(c) => snapshot::settle(&store, &parse_cycle(c)?)?,
        None => snapshot::list_committed(&store)?.pop(),
    };
    // A committed snapshot is explained with the pipeline that made it;
    // an uncommitted cycle is computed from the inputs.
    let (pipeline, frame, as_of, cycle, source) = match manifest {
        Some(m) => {
            let pipeline = Pipeline::from_text(&m.pipeline.source, &m.pipeline.path)?;
            let frame = snapshot::scan_committed(&store, &m)?
                .collect()
                .ctx(|| format!("cannot read the snapshot of {}", m.cycle))?;
            let as_of = parse_date("as_of", &m.as_of)?;
            (
                pipeline,
                frame,
                as_of,
                m.cycle.clone(),
                format!("committed run {}", m.run_id),
            )
        }
        None => {
            let Some(c) = &args.cycle else {
                return Err(Error::config(format!(
                    "no committed snapshots under {}: pass --cycle to explain from the inputs",
                    store.uri()
                )));
            };
            let cycle = parse_cycle(c)?;
            let accounts = source::scan_accounts(&setup.pipeline, &setup.accounts_uri)?;
            let usage = source::scan_usage(&setup.pipeline, &setup.usage_uri)?;
            let eval = evaluate::evaluate(&setup.pipeline, &accounts, &usage, cycle.as_of())?;
            (
                setup.pipeline.clone(),
                eval.snapshot,
                cycle.as_of(),
                cycle.to_string(),
                "not committed: computed from the inputs".to_string(),
            )
        }
    };

    // Every rule's condition and sub-conditions, evaluated over the whole
    // cycle (base-wide functions need it), then the one account picked.
    let mut exprs = Vec::new();
    for (si, s) in pipeline.segmentations.iter().enumerate() {
        for (ri, r) in s.rules.iter().enumerate() {
            exprs.push(lower(&r.when, as_of).alias(format!("__r{si}_{ri}")));
            for (ci, c) in r.when.conditions().iter().enumerate() {
                exprs.push(lower(c, as_of).alias(format!("__r{si}_{ri}_{ci}")));
            }
        }
    }
    let total = frame.height();
    let row = frame
        .lazy()
        .with_columns(exprs)
        .filter(col("account_id").eq(lit(args.account.as_str())))
        .collect()
        .ctx(|| "explain".into())?;
    if row.height() == 0 {
        return Err(Error::config(format!(
            "account `{}` is not in cycle {cycle} ({total} accounts): it may be churned, not yet onboarded, or dropped by a data check",
            args.account
        )));
    }
    let get_bool = |name: &str| -> Option<bool> {
        match row.column(name).ok()?.get(0).ok()? {
            AnyValue::Boolean(b) => Some(b),
            _ => None,
        }
    };
    let get_str = |name: &str| -> String {
        row.column(name)
            .ok()
            .and_then(|c| c.get(0).ok())
            .map(|v| table::value(&v))
            .unwrap_or_default()
    };
    let mut verdicts = Vec::new();
    for (si, s) in pipeline.segmentations.iter().enumerate() {
        let rule = get_str(&s.rule_column());
        let mut rules = Vec::new();
        for (ri, r) in s.rules.iter().enumerate() {
            let conditions = r
                .when
                .conditions()
                .iter()
                .enumerate()
                .map(|(ci, c)| ConditionValue {
                    condition: table::strip_parens(&c.to_string()),
                    value: get_bool(&format!("__r{si}_{ri}_{ci}")),
                })
                .collect();
            rules.push(RuleVerdict {
                rule: r.name.clone(),
                label: r.label.clone(),
                when: r.text.clone(),
                matched: get_bool(&format!("__r{si}_{ri}")),
                conditions,
            });
            if r.name == rule {
                break;
            }
        }
        verdicts.push(SegmentationVerdict {
            segmentation: s.name.clone(),
            label: get_str(&s.name),
            rule,
            rules,
        });
    }
    let hidden = |n: &str| {
        n.starts_with("__r")
            || pipeline
                .segmentations
                .iter()
                .any(|s| s.name == n || s.rule_column() == n)
    };
    let values: Vec<(String, String)> = row
        .get_column_names()
        .iter()
        .filter(|n| !hidden(n.as_str()))
        .map(|n| (n.to_string(), get_str(n.as_str())))
        .collect();

    if args.json {
        let json = serde_json::json!({
            "account_id": args.account, "cycle": cycle, "as_of": as_of.to_string(), "source": source,
            "values": values.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
            "segmentations": verdicts,
        });
        crate::outln!("{}", serde_json::to_string_pretty(&json).expect("serializable"));
        return Ok(());
    }
    crate::outln!("account {} in cycle {cycle} (as of {as_of}; {source})\n", args.account);
    let rows: Vec<Vec<String>> = values.into_iter().map(|(k, v)| vec![k, v]).collect();
    crate::out!("{}", table::render(&["column", "value"], &rows, &[false, false]));
    for v in verdicts {
        crate::outln!("\n{}: {} (rule {})", v.segmentation, v.label, v.rule);
        for r in &v.rules {
            let mark = match r.matched {
                Some(true) => "matched",
                Some(false) => "no match",
                None => "no match (null)",
            };
            crate::outln!("  {} -> {}: {mark}\n    when {}", r.rule, r.label, r.when.trim());
            for c in &r.conditions {
                let shown = c.value.map_or("null".to_string(), |b| b.to_string());
                crate::outln!("      {} = {shown}", c.condition);
            }
        }
        if v.rule == crate::rules::DEFAULT_RULE {
            crate::outln!("  no rule matched -> default {}", v.label);
        }
    }
    Ok(())
}

fn committed(store: &Store, cycle: &str) -> Result<Manifest> {
    let c = parse_cycle(cycle)?;
    snapshot::settle(store, &c)?.ok_or_else(|| {
        Error::config(format!(
            "cycle {c} is not committed under {}: run `quadrant run --cycle {c}` first (`quadrant cycles` lists what is)",
            store.uri()
        ))
    })
}

fn compare(args: CompareArgs) -> Result<()> {
    let setup = setup(&args.locations)?;
    let store = Store::open(&setup.output_uri, &setup.pipeline.storage)?;
    let from = committed(&store, &args.from)?;
    let to = committed(&store, &args.to)?;
    let names = crate::compare::segmentations_to_compare(&from, &to, args.segmentation.as_deref())?;
    let comparison = crate::compare::compare(&store, &from, &to, names)?;
    let written = crate::compare::commit(&store, &from, &to, &comparison)?;
    let location = store.uri_of(&store.path(&format!("compare/from={}/to={}", from.cycle, to.cycle)));
    let report = crate::compare::Report::new(&from, &to, &comparison)?;
    if args.json {
        let json = serde_json::json!({
            "from": from.cycle, "to": to.cycle, "run_id": written.run_id, "output": location,
            "segmentations": report.segmentations, "bridge": report.bridge,
        });
        crate::outln!("{}", serde_json::to_string_pretty(&json).expect("serializable"));
        return Ok(());
    }
    crate::outln!("{} -> {}: written to {location}", from.cycle, to.cycle);
    for seg in &report.segmentations {
        crate::outln!("\n{}: accounts (rows: {}, columns: {})", seg.name, from.cycle, to.cycle);
        let header: Vec<&str> = std::iter::once("")
            .chain(seg.columns.iter().map(String::as_str))
            .collect();
        let right: Vec<bool> = header.iter().enumerate().map(|(i, _)| i > 0).collect();
        let rows = |cell: &dyn Fn(&crate::compare::Cell) -> String| -> Vec<Vec<String>> {
            seg.rows
                .iter()
                .zip(&seg.cells)
                .map(|(label, cells)| std::iter::once(label.clone()).chain(cells.iter().map(cell)).collect())
                .collect()
        };
        crate::out!("{}", table::render(&header, &rows(&|c| c.accounts.to_string()), &right));
        crate::outln!("\n{}: ARR at {} -> ARR at {}", seg.name, from.cycle, to.cycle);
        crate::out!(
            "{}",
            table::render(
                &header,
                &rows(&|c| if c.accounts == 0 {
                    "-".into()
                } else {
                    format!("{} -> {}", table::compact(c.arr_start), table::compact(c.arr_end))
                }),
                &right
            )
        );
        crate::outln!("\n{}: retention by {} label", seg.name, from.cycle);
        let retention: Vec<Vec<String>> = seg
            .retention
            .iter()
            .map(|r| {
                vec![
                    r.label.clone(),
                    r.accounts_start.to_string(),
                    table::money(r.starting_arr),
                    table::money(r.expansion),
                    table::money(r.contraction),
                    table::money(r.churned_arr),
                    table::money(r.ending_arr),
                    r.nrr.map_or("-".into(), |v| format!("{:.1}%", v * 100.0)),
                    r.grr.map_or("-".into(), |v| format!("{:.1}%", v * 100.0)),
                ]
            })
            .collect();
        crate::out!(
            "{}",
            table::render(
                &[
                    "label",
                    "accounts",
                    "starting ARR",
                    "expansion",
                    "contraction",
                    "churned",
                    "ending ARR",
                    "NRR",
                    "GRR"
                ],
                &retention,
                &[false, true, true, true, true, true, true, true, true]
            )
        );
    }
    let b = &report.bridge;
    crate::outln!("\nARR bridge {} -> {}", from.cycle, to.cycle);
    let bridge = vec![
        vec![
            "starting ARR".to_string(),
            table::money(b.starting_arr),
            b.accounts_start.to_string(),
        ],
        vec!["+ new".to_string(), table::money(b.new_arr), b.accounts_new.to_string()],
        vec!["+ expansion".to_string(), table::money(b.expansion), String::new()],
        vec!["- contraction".to_string(), table::money(b.contraction), String::new()],
        vec![
            "- churn".to_string(),
            table::money(b.churned_arr),
            b.accounts_churned.to_string(),
        ],
        vec![
            "= ending ARR".to_string(),
            table::money(b.ending_arr),
            b.accounts_end.to_string(),
        ],
    ];
    crate::out!(
        "{}",
        table::render(&["", "ARR", "accounts"], &bridge, &[false, true, true])
    );
    Ok(())
}

fn report(args: ReportArgs) -> Result<()> {
    let setup = setup(&args.locations)?;
    let store = Store::open(&setup.output_uri, &setup.pipeline.storage)?;
    let html = crate::report::render(&store)?;
    std::fs::write(&args.to, html).map_err(|e| Error::Runtime(format!("cannot write `{}`: {e}", args.to)))?;
    crate::outln!("wrote {}", args.to);
    Ok(())
}
