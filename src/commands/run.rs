//! `quadrant run`: evaluates and commits one cycle or a range of cycles.

use chrono::{NaiveDate, Utc};
use serde::Serialize;

use crate::cli::RunArgs;
use crate::config::Pipeline;
use crate::cycle::Cycle;
use crate::engine::polars::{self as engine, Dataset, Evaluation};
use crate::engine::{Choice, UsagePass};
use crate::error::{Error, Result};
use crate::integrations::lineage::{Lineage, LineageRun};
use crate::snapshot::{self, Commit, InputInfo, Inputs, Snapshots};
use crate::table;

use super::{Settings, parse_cycle, parse_date};

/// The latest cycle the usage data covers completely.
fn latest_cycle(pipeline: &Pipeline, usage: &dyn UsagePass) -> Result<Cycle> {
    let date = usage.last_date()?;
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
    quality: Vec<crate::plan::Finding>,
    replaced: Option<snapshot::Replaced>,
    timings: std::collections::BTreeMap<String, f64>,
    skipped: bool,
}

pub fn run(args: RunArgs) -> Result<()> {
    let setup = Settings::resolve(&args.locations)?;
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
    let partition = crate::integrations::pipes::get()
        .and_then(|p| p.partition_key())
        .filter(|_| range.is_none());
    let single = args.cycle.as_deref().or(partition).map(parse_cycle).transpose()?;
    let snapshots = Snapshots::for_run(setup.output()?, pipeline.output_format)?;
    let store = snapshots.store();
    if let Some(cycle) = single {
        // Fail before any work when the answer is known already.
        snapshots.check_replaceable(&cycle, args.replace)?;
    }

    let lineage = Lineage::configure(args.lineage_url.as_deref());
    let inputs = [setup.accounts_uri.as_str(), setup.usage_uri.as_str()];
    // The run failed before a cycle's run began: still say so.
    let failed_to_start = |e: Error| -> Error {
        if let (Some(lineage), Some(cycle)) = (&lineage, single.or(range.as_ref().and_then(|r| r.first().copied()))) {
            LineageRun::start(lineage, &pipeline.name, &cycle, cycle.as_of(), &inputs).fail(&e.to_string());
        }
        e
    };
    let (choice, accounts, usage) = (|| -> Result<(Choice, Dataset, Dataset)> {
        let choice = super::engine(&args.engine)?;
        let accounts = engine::scan_accounts(pipeline, &setup.accounts_uri)?;
        let usage = engine::scan_usage(pipeline, &setup.usage_uri)?;
        Ok((choice, accounts, usage))
    })()
    .map_err(failed_to_start)?;
    let (pass, cycles) = (|| -> Result<(Box<dyn UsagePass + '_>, Vec<Cycle>)> {
        let pass = choice.usage_pass(&usage)?;
        let cycles = match (&range, single) {
            (Some(range), _) => range.clone(),
            (None, Some(cycle)) => vec![cycle],
            (None, None) => vec![latest_cycle(pipeline, pass.as_ref())?],
        };
        Ok((pass, cycles))
    })()
    .map_err(failed_to_start)?;

    // Later cycles that read the last one replaced: refused, or recomputed
    // after it with --cascade (at the as_of each was committed with).
    let mut as_of_of = std::collections::BTreeMap::new();
    let mut cycles = cycles;
    if args.replace
        && let Some(last) = cycles.last().copied()
    {
        let dependents = dependents(&snapshots, last)?;
        if !dependents.is_empty() && !args.cascade {
            let names: Vec<String> = dependents.iter().map(|(c, _)| c.to_string()).collect();
            return Err(Error::config(format!(
                "replacing {last} would leave {} stale: committed later, they read it through prev(...) or `_since`; pass --cascade to recompute them in order (each as a replace)",
                names.join(", ")
            )));
        }
        for (cycle, as_of) in dependents {
            tracing::info!(%cycle, replaced = %last, "recomputed after the cycle it read (--cascade)");
            as_of_of.insert(cycle, as_of);
            cycles.push(cycle);
        }
    }

    let mut summaries = Vec::new();
    for cycle in cycles {
        if args.cycles.is_some() && !args.replace && snapshots.settle(&cycle)?.is_some() {
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
        let as_of = as_of_of
            .get(&cycle)
            .copied()
            .or(as_of_flag)
            .unwrap_or_else(|| cycle.as_of());
        if as_of < cycle.start() || as_of > cycle.as_of() {
            tracing::warn!(%cycle, %as_of, "--as-of lies outside the cycle's period");
        }
        let lineage_run = lineage
            .as_ref()
            .map(|l| LineageRun::start(l, &pipeline.name, &cycle, as_of, &inputs));
        match run_one(
            &setup,
            &snapshots,
            &accounts,
            (&usage, pass.as_ref()),
            cycle,
            as_of,
            (args.replace, args.require_previous),
        ) {
            Ok(summary) => {
                if let Some(l) = &lineage_run {
                    l.complete(&summary.snapshot, summary.rows, summary.bytes);
                }
                if let Some(pipes) = crate::integrations::pipes::get() {
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
        std::fs::write(path, format!("{}\n", crate::redact::text(&json)))
            .map_err(|e| Error::io("write the summary file", path, e))?;
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

/// The committed cycles after `cycle` that read it, each through the one
/// before: what a replace of `cycle` leaves stale. With the as_of each was
/// committed with.
fn dependents(snapshots: &Snapshots, cycle: Cycle) -> Result<Vec<(Cycle, NaiveDate)>> {
    let mut out = Vec::new();
    let mut read = cycle;
    loop {
        let next = read.next();
        let Some(m) = snapshots.settle(&next)? else { break };
        if m.previous.as_ref().is_none_or(|p| p.cycle != read.to_string()) {
            break;
        }
        let as_of = NaiveDate::parse_from_str(&m.as_of, "%Y-%m-%d").unwrap_or_else(|_| next.as_of());
        out.push((next, as_of));
        read = next;
    }
    Ok(out)
}

fn run_one(
    setup: &Settings,
    snapshots: &Snapshots,
    accounts: &Dataset,
    (usage, pass): (&Dataset, &dyn UsagePass),
    cycle: Cycle,
    as_of: NaiveDate,
    (replace, require_previous): (bool, bool),
) -> Result<RunSummary> {
    let started_at = Utc::now();
    let store = snapshots.store();
    let run_id = snapshot::new_run_id(started_at);
    let previous_run;
    let span = tracing::info_span!("run", %cycle, %run_id);
    let _enter = span.enter();
    tracing::info!(%as_of, pipeline = %setup.pipeline.name, output = %store.uri(), "evaluating cycle");
    let Evaluation {
        snapshot: frame,
        quality,
        accounts_rows,
        usage_rows_in_windows,
        mut timings,
    } = {
        let (history, previous) = super::history(snapshots, &setup.plan, cycle, require_previous)?;
        previous_run = previous;
        engine::evaluate(&setup.plan, accounts, pass, as_of, &history)?
    };
    let rejects = quality.rejects()?;
    crate::progress::started("write_and_commit");
    let commit_start = std::time::Instant::now();
    let manifest = snapshots.commit(Commit {
        pipeline: &setup.pipeline,
        plan: &setup.plan,
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
                read_by: None,
            },
            usage: InputInfo {
                uri: usage.uri.clone(),
                rows: usage_rows_in_windows,
                files: usage.files.clone(),
                read_by: pass.read_by(),
            },
        },
        quality: quality.findings.clone(),
        replace,
        previous: previous_run,
    })?;
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
    super::print_findings(&s.quality);
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
