//! `quadrant run`: evaluates and commits one cycle or a range of cycles.

use std::collections::BTreeMap;

use chrono::{NaiveDate, Utc};
use serde::Serialize;

use crate::cli::RunArgs;
use crate::config::Pipeline;
use crate::cycle::Cycle;
use crate::engine::UsagePass;
use crate::engine::polars::history::Carried;
use crate::engine::polars::{Accounts, Evaluation, Scan};
use crate::error::{Error, Result};
use crate::integrations::lineage::{Lineage, LineageRun};
use crate::plan::{Coverage, UsageSpan};
use crate::snapshot::{self, Commit, InputInfo, Inputs, Manifest, PreviousRun, Snapshots};
use crate::storage::Store;
use crate::terminal;

use super::{Settings, parse_date};

/// The latest cycle the usage data covers completely.
fn latest_cycle(pipeline: &Pipeline, usage: UsageSpan) -> Cycle {
    let cycle = Cycle::latest_complete(pipeline.cadence, usage.last);
    tracing::info!(%cycle, last_usage_date = %usage.last, "no --cycle given: using the latest cycle the usage covers");
    cycle
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
    /// How the usage covered the windows (absent for snapshots committed
    /// before it was recorded).
    coverage: Option<Coverage>,
    timings: std::collections::BTreeMap<String, f64>,
    /// Committed before, and so not run again: the committed run's record.
    skipped: bool,
    /// A preview (`--as-of` inside the period): nothing was committed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    preview: bool,
}

impl RunSummary {
    /// What a manifest records, as a summary.
    fn of(manifest: &Manifest, store: &Store, cycle: &Cycle) -> RunSummary {
        RunSummary {
            cycle: manifest.cycle.clone(),
            as_of: manifest.as_of.clone(),
            run_id: manifest.run_id.clone(),
            snapshot: store.uri_of(&store.path(&snapshot::partition(cycle))),
            rows: manifest.rows,
            bytes: manifest
                .outputs
                .iter()
                .filter(|o| o.kind == snapshot::OutputKind::Segments)
                .map(|o| o.bytes)
                .sum(),
            segmentations: manifest.segmentations.clone(),
            quality: manifest.quality.clone(),
            replaced: manifest.replaced.clone(),
            coverage: manifest.coverage.clone(),
            timings: Default::default(),
            skipped: false,
            preview: false,
        }
    }
}

/// What the flags ask for: one cycle, a range, or the latest the usage
/// covers (`None` for both), and a preview's date.
struct Request {
    range: Option<Vec<Cycle>>,
    single: Option<Cycle>,
    as_of: Option<NaiveDate>,
    /// `--as-of` inside the period: evaluated, summarized, not committed.
    preview: bool,
}

impl Request {
    fn resolve(args: &RunArgs, pipeline: &Pipeline) -> Result<Request> {
        let as_of = args.as_of.as_deref().map(|v| parse_date("--as-of", v)).transpose()?;
        let range = match &args.cycles {
            Some(range) => {
                let cycles = Cycle::parse_range(range).map_err(Error::config)?;
                super::check_cadence(pipeline, cycles[0])?;
                Some(cycles)
            }
            None => None,
        };
        // Under Dagster, the run's partition key is the cycle.
        let partition = crate::integrations::pipes::get()
            .and_then(|p| p.partition_key())
            .filter(|_| range.is_none());
        let mut single = args
            .cycle
            .as_deref()
            .or(partition)
            .map(|c| super::pipeline_cycle(pipeline, c))
            .transpose()?;
        // A date inside a period previews that period; committing always
        // evaluates at the period's end.
        if let Some(date) = as_of {
            let cycle = *single.get_or_insert_with(|| Cycle::containing(pipeline.cadence, date));
            if date < cycle.start() || date > cycle.as_of() {
                return Err(Error::config(format!(
                    "--as-of {date} lies outside cycle {cycle} ({} to {}): a cycle is evaluated at a date of its own period",
                    cycle.start(),
                    cycle.as_of()
                )));
            }
        }
        let preview = match (as_of, single) {
            (Some(date), Some(cycle)) => date != cycle.as_of(),
            _ => false,
        };
        if args.to.is_some() && !preview {
            return Err(Error::config(format!(
                "--to writes the rows of a preview: --as-of {} is the cycle's last day, which a run commits",
                as_of.map(|d| d.to_string()).unwrap_or_default()
            )));
        }
        Ok(Request {
            range,
            single,
            as_of,
            preview,
        })
    }

    /// The first cycle asked for, if the flags name one.
    fn first(&self) -> Option<Cycle> {
        self.single.or(self.range.as_ref().and_then(|r| r.first().copied()))
    }

    /// The cycles to run, once the usage's last date is known.
    fn cycles(&self, pipeline: &Pipeline, span: UsageSpan) -> Vec<Cycle> {
        match (&self.range, self.single) {
            (Some(range), _) => range.clone(),
            (None, Some(cycle)) => vec![cycle],
            (None, None) => vec![latest_cycle(pipeline, span)],
        }
    }
}

/// The output root's snapshots, refused before any work when it holds
/// another pipeline or (for one cycle) a cycle the run may not replace.
fn open_root(setup: &Settings, request: &Request, replace: bool) -> Result<Snapshots> {
    let pipeline = &setup.pipeline;
    let snapshots = Snapshots::for_run(setup.output()?, pipeline.output_format)?;
    // One root, one pipeline: compare and report read one set of
    // segmentations (the same pipeline with other thresholds is normal).
    if let Some(other) = snapshots.pipeline_name()?.filter(|n| *n != pipeline.name) {
        return Err(Error::Refused(format!(
            "the output root {} holds snapshots of pipeline `{other}`, and this is pipeline `{}`: one root holds one pipeline, so that compare and report read one set of segmentations; write to another output root (--output), or give this pipeline the name `{other}` if it is that pipeline changed",
            snapshots.store().uri(),
            pipeline.name
        )));
    }
    if let (Some(cycle), false) = (request.single, request.preview) {
        // Fail before any work when the answer is known already.
        snapshots.check_replaceable(&cycle, replace)?;
    }
    Ok(snapshots)
}

/// Later cycles that read the last one replaced: refused, or recomputed
/// after it with --cascade, at the as_of each was committed with.
fn with_dependents(
    snapshots: &Snapshots,
    mut cycles: Vec<Cycle>,
    args: &RunArgs,
) -> Result<(Vec<Cycle>, BTreeMap<Cycle, NaiveDate>)> {
    let mut as_of_of = BTreeMap::new();
    let Some(last) = cycles.last().copied().filter(|_| args.replace) else {
        return Ok((cycles, as_of_of));
    };
    let dependents = dependents(snapshots, last)?;
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
    Ok((cycles, as_of_of))
}

pub fn run(args: RunArgs) -> Result<()> {
    let setup = Settings::resolve(&args.locations)?;
    let pipeline = &setup.pipeline;
    let request = Request::resolve(&args, pipeline)?;
    let preview = request.preview;
    let snapshots = open_root(&setup, &request, args.replace)?;

    let lineage = Lineage::configure(args.lineage_url.as_deref()).filter(|_| !preview);
    let inputs = [setup.accounts_uri.as_str(), setup.usage_uri.as_str()];
    // The run failed before a cycle's run began: still say so.
    let failed_to_start = |e: Error| -> Error {
        if let (Some(lineage), Some(cycle)) = (&lineage, request.first()) {
            LineageRun::start(lineage, &pipeline.name, &cycle, cycle.as_of(), &inputs).fail(&e.to_string());
        }
        e
    };
    let opened = super::CycleInputs::open(&setup, &args.engine, &setup.accounts_uri, &setup.usage_uri)
        .map_err(failed_to_start)?;
    let (accounts, usage) = (&opened.accounts, &opened.usage);
    let (pass, span) = opened
        .pass()
        .and_then(|pass| pass.span().map(|span| (pass, span)))
        .map_err(failed_to_start)?;
    let (cycles, as_of_of) = with_dependents(&snapshots, request.cycles(pipeline, span), &args)?;
    // A range skips the cycles committed before; the others are evaluated
    // at the end of their period, or at the as_of they were committed with
    // (--cascade), or at --as-of.
    let mut committed = BTreeMap::new();
    if args.cycles.is_some() && !args.replace {
        for cycle in &cycles {
            if let Some(m) = snapshots.committed_run(cycle)? {
                committed.insert(*cycle, m);
            }
        }
    }
    let as_of_for = |cycle: Cycle| {
        as_of_of
            .get(&cycle)
            .copied()
            .or(request.as_of)
            .unwrap_or_else(|| cycle.as_of())
    };
    // A backfill reads the rows without a date once, and on an engine that
    // can, the usage of every cycle it evaluates in one pass.
    let as_ofs: Vec<NaiveDate> = cycles
        .iter()
        .filter(|c| !committed.contains_key(*c))
        .map(|c| as_of_for(*c))
        .collect();
    let prepared = crate::engine::Prepared::new(pass.as_ref(), &as_ofs);
    let pass: &dyn UsagePass = &prepared;
    let cycle_accounts = if as_ofs.len() > 1 {
        Accounts::kept(accounts)
    } else {
        Accounts::once(accounts)
    };

    let mut summaries = Vec::new();
    // The snapshot this run committed last, which the next cycle reads.
    let mut carried: Option<Carried> = None;
    std::thread::scope(|scope| -> Result<()> {
        // A cycle's commit runs on a thread of its own while the next cycle is
        // evaluated; the next is committed only once it has succeeded.
        let mut pending: Option<Pending> = None;
        for cycle in cycles {
            if let Some(committed) = committed.remove(&cycle) {
                settle(&args, pending.take(), &mut summaries)?;
                tracing::info!(%cycle, run_id = %committed.run_id, "already committed: skipped (pass --replace to recompute)");
                summaries.push(RunSummary {
                    skipped: true,
                    ..RunSummary::of(&committed, snapshots.store(), &cycle)
                });
                continue;
            }
            // Every log line of this cycle's work names it once, through the span.
            let cycle_span = tracing::info_span!("cycle", %cycle);
            let _enter = cycle_span.enter();
            let as_of = as_of_for(cycle);
            let lineage_run = lineage
                .as_ref()
                .map(|l| LineageRun::start(l, &pipeline.name, &cycle, as_of, &inputs));
            let evaluated = setup
                .plan
                .coverage(as_of, span)
                .check(&cycle, pass.uri(), args.allow_incomplete_usage)
                .and_then(|coverage| {
                    super::check_freshness(pipeline, accounts, cycle, as_of, preview)?;
                    let inputs = (&cycle_accounts, (usage, pass));
                    let when = (cycle, as_of, coverage);
                    if preview {
                        run_preview(&setup, &snapshots, inputs, when, args.to.as_deref())
                            .map(|s| Evaluated::Previewed(Box::new(s)))
                    } else {
                        let previous = (args.require_previous, carried.as_ref());
                        evaluate_one(&setup, &snapshots, inputs, when, (args.replace, previous))
                            .map(|r| Evaluated::Ready(Box::new(r)))
                    }
                });
            // The cycle before ends first: committed, or the cycle the backfill
            // stops at.
            if let Err(e) = settle(&args, pending.take(), &mut summaries) {
                if let Some(l) = &lineage_run {
                    l.fail(&format!("not committed: the cycle before it failed: {e}"));
                }
                return Err(e);
            }
            match evaluated {
                Ok(Evaluated::Ready(mut ready)) => {
                    carried = ready.carried.take();
                    let snapshots = &snapshots;
                    let span = tracing::Span::current();
                    pending = Some(Pending {
                        cycle,
                        lineage_run,
                        commit: scope.spawn(move || {
                            let _enter = span.enter();
                            commit_one(snapshots, *ready)
                        }),
                    });
                    if carried.is_none() {
                        // The next cycle reads this one from the store: once
                        // it is there.
                        settle(&args, pending.take(), &mut summaries)?;
                    }
                }
                Ok(Evaluated::Previewed(summary)) => {
                    finish(&args, cycle, lineage_run.as_ref(), Ok(*summary), &mut summaries)?;
                }
                Err(e) => finish(&args, cycle, lineage_run.as_ref(), Err(e), &mut summaries)?,
            }
        }
        settle(&args, pending.take(), &mut summaries)
    })?;
    report(&args, &summaries, None)
}

/// A cycle evaluated: ready to commit, or previewed.
enum Evaluated<'a> {
    Ready(Box<Ready<'a>>),
    Previewed(Box<RunSummary>),
}

/// A cycle's commit under way on its own thread.
struct Pending<'scope, 'l> {
    cycle: Cycle,
    lineage_run: Option<LineageRun<'l>>,
    commit: std::thread::ScopedJoinHandle<'scope, Result<RunSummary>>,
}

/// Waits for a cycle's commit to end, and records it.
fn settle(args: &RunArgs, pending: Option<Pending>, summaries: &mut Vec<RunSummary>) -> Result<()> {
    let Some(p) = pending else {
        return Ok(());
    };
    let done = p.commit.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    finish(args, p.cycle, p.lineage_run.as_ref(), done, summaries)
}

/// Records how one cycle's run ended: its summary, or the error the backfill
/// stops at (the cycles before it stay committed).
fn finish(
    args: &RunArgs,
    cycle: Cycle,
    lineage_run: Option<&LineageRun>,
    done: Result<RunSummary>,
    summaries: &mut Vec<RunSummary>,
) -> Result<()> {
    match done {
        Ok(summary) => {
            if let Some(l) = lineage_run {
                l.complete(&summary.snapshot, summary.rows, summary.bytes);
            }
            // A preview commits nothing, so materializes nothing.
            if let (Some(pipes), false) = (crate::integrations::pipes::get(), summary.preview) {
                pipes.materialized(&summary.metadata());
            }
            summaries.push(summary);
            Ok(())
        }
        Err(e) => {
            if let Some(l) = lineage_run {
                l.fail(&e.to_string());
            }
            if !summaries.is_empty() {
                let done: Vec<&str> = summaries.iter().map(|s| s.cycle.as_str()).collect();
                tracing::error!(%cycle, committed = %done.join(", "), "the backfill stopped at this cycle; the cycles before it are committed");
                report(args, summaries, Some((&cycle, &e)))?;
            }
            Err(e)
        }
    }
}

/// Prints the summaries (and writes `--summary-file`): one run as an object,
/// a backfill as `{"runs": [...]}`, with the cycle it stopped at, if any.
fn report(args: &RunArgs, summaries: &[RunSummary], stopped: Option<(&Cycle, &Error)>) -> Result<()> {
    let stopped_at = stopped.map(|(cycle, e)| {
        serde_json::json!({"cycle": cycle.to_string(), "exit_code": e.exit_code(), "error": e.to_string()})
    });
    let json = if summaries.len() == 1 && stopped.is_none() {
        serde_json::to_string_pretty(&summaries[0])
    } else {
        let mut out = serde_json::json!({ "runs": summaries });
        if let Some(s) = &stopped_at {
            out["stopped_at"] = s.clone();
        }
        serde_json::to_string_pretty(&out)
    }
    .expect("serializable");
    if let Some(path) = &args.summary_file {
        std::fs::write(path, format!("{}\n", crate::redact::text(&json)))
            .map_err(|e| Error::io("write the summary file", path, e))?;
    }
    if args.json {
        crate::outln!("{json}");
    } else {
        for s in summaries {
            print_summary(s);
        }
        if let Some((cycle, _)) = stopped {
            let done: Vec<&str> = summaries.iter().map(|s| s.cycle.as_str()).collect();
            crate::outln!(
                "stopped at cycle {cycle}: {} committed before it (see the error below)",
                done.join(", ")
            );
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
        let Some(m) = snapshots.committed_run(&next)? else {
            break;
        };
        if m.previous.as_ref().is_none_or(|p| p.cycle != read.to_string()) {
            break;
        }
        let as_of = NaiveDate::parse_from_str(&m.as_of, "%Y-%m-%d").unwrap_or_else(|_| next.as_of());
        out.push((next, as_of));
        read = next;
    }
    Ok(out)
}

/// What a cycle is evaluated on: the accounts, and the usage with its pass.
type Sources<'a> = (&'a Accounts<'a>, (&'a Scan, &'a dyn UsagePass));

/// A cycle evaluated, with what its commit needs.
struct Ready<'a> {
    commit: Commit<'a>,
    timings: Vec<(&'static str, f64)>,
    /// The span of the cycle's run, which its commit logs in.
    span: tracing::Span,
    /// The columns the next cycle reads of this snapshot.
    carried: Option<Carried>,
}

/// Evaluates a cycle for its commit. `previous` is whether the previous
/// cycle must be committed, and that cycle's snapshot when this run has just
/// committed it (or is committing it: this cycle is committed after it).
fn evaluate_one<'a>(
    setup: &'a Settings,
    snapshots: &Snapshots,
    (accounts, (usage, pass)): Sources,
    (cycle, as_of, coverage): (Cycle, NaiveDate, Coverage),
    (replace, previous): (bool, (bool, Option<&Carried>)),
) -> Result<Ready<'a>> {
    let started_at = Utc::now();
    let run_id = snapshot::new_run_id(started_at);
    let span = tracing::info_span!("run", %run_id);
    let _enter = span.enter();
    let store = snapshots.store();
    tracing::info!(%as_of, pipeline = %setup.pipeline.name, output = %store.uri(), "evaluating cycle");
    let (
        Evaluation {
            snapshot: frame,
            quality,
            accounts_rows,
            usage_rows_in_windows,
            timings,
        },
        previous_run,
    ) = super::evaluate_cycle(setup, snapshots, accounts, pass, (cycle, as_of), previous)?;
    let rejects = quality.rejects()?;
    let run = PreviousRun {
        cycle: cycle.to_string(),
        run_id: run_id.clone(),
    };
    // One it cannot keep, the next cycle reads back from the store.
    let carried = Carried::of(snapshots, &setup.plan, cycle, run, &frame).ok();
    let commit = Commit {
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
                uri: accounts.scan.uri.clone(),
                rows: accounts_rows,
                files: accounts.scan.files.clone(),
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
        coverage: Some(coverage),
    };
    drop(_enter);
    Ok(Ready {
        commit,
        timings,
        span,
        carried,
    })
}

/// Writes and commits an evaluated cycle.
fn commit_one(snapshots: &Snapshots, ready: Ready) -> Result<RunSummary> {
    let Ready {
        commit,
        mut timings,
        span,
        ..
    } = ready;
    let _enter = span.enter();
    let cycle = commit.cycle;
    crate::progress::started("write_and_commit");
    let commit_start = std::time::Instant::now();
    let manifest = snapshots.commit(commit)?;
    let commit_seconds = commit_start.elapsed().as_secs_f64();
    crate::progress::stage_done(
        "write_and_commit",
        commit_seconds,
        &format!("{} rows committed", manifest.rows),
    );
    timings.push(("write_and_commit", commit_seconds));
    tracing::info!(rows = manifest.rows, "committed");
    Ok(RunSummary {
        timings: timings
            .into_iter()
            .map(|(k, v)| (k.to_string(), (v * 1000.0).round() / 1000.0))
            .collect(),
        ..RunSummary::of(&manifest, snapshots.store(), &cycle)
    })
}

/// A mid-period preview: the cycle evaluated at a date inside its period,
/// summarized (and with `--to`, its rows written to a file); nothing is
/// committed, so the period's real run later is not refused.
fn run_preview(
    setup: &Settings,
    snapshots: &Snapshots,
    (accounts, (_, pass)): Sources,
    (cycle, as_of, coverage): (Cycle, NaiveDate, Coverage),
    to: Option<&str>,
) -> Result<RunSummary> {
    tracing::info!(%as_of, "a preview at a date inside the period: nothing is committed");
    let (mut evaluation, _) = super::evaluate_cycle(setup, snapshots, accounts, pass, (cycle, as_of), (false, None))?;
    let segmentations = snapshot::manifest::summarize(&setup.plan.segmentations, &evaluation.snapshot)?;
    if let Some(path) = to {
        super::write_rows(&mut evaluation.snapshot, path)?;
        tracing::info!(
            file = path,
            rows = evaluation.snapshot.height(),
            "wrote the preview's rows"
        );
    }
    Ok(RunSummary {
        cycle: cycle.to_string(),
        as_of: as_of.to_string(),
        run_id: String::new(),
        snapshot: to.unwrap_or_default().to_string(),
        rows: evaluation.snapshot.height() as u64,
        bytes: 0,
        segmentations,
        quality: evaluation.quality.findings.clone(),
        replaced: None,
        coverage: Some(coverage),
        timings: evaluation
            .timings
            .into_iter()
            .map(|(k, v)| (k.to_string(), (v * 1000.0).round() / 1000.0))
            .collect(),
        skipped: false,
        preview: true,
    })
}

fn print_summary(s: &RunSummary) {
    if s.skipped {
        crate::outln!("cycle {}: already committed (run {}), skipped", s.cycle, s.run_id);
        return;
    }
    if s.preview {
        crate::outln!(
            "cycle {} previewed as of {}: {} accounts, nothing committed{}",
            s.cycle,
            s.as_of,
            s.rows,
            if s.snapshot.is_empty() {
                String::new()
            } else {
                format!("; rows written to {}", s.snapshot)
            }
        );
    } else {
        crate::outln!(
            "cycle {} (as of {}): {} accounts committed as run {}\n  {}",
            s.cycle,
            s.as_of,
            s.rows,
            s.run_id,
            s.snapshot
        );
    }
    if let Some(c) = s.coverage.as_ref().filter(|c| c.incomplete_allowed) {
        crate::outln!(
            "  usage {} to {} does not cover every window (from {}): committed as --allow-incomplete-usage asked",
            c.usage_first,
            c.usage_last,
            c.window_start.map(|d| d.to_string()).unwrap_or_default()
        );
    }
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
                    terminal::percent(l.accounts as f64, total_accounts as f64),
                    terminal::money(l.arr),
                    terminal::percent(l.arr, total_arr),
                ]
            })
            .collect();
        crate::outln!("\n{}", seg.name);
        crate::out!(
            "{}",
            terminal::render(
                &["label", "accounts", "share", "arr", "arr share"],
                &rows,
                &[false, true, true, true, true]
            )
        );
    }
    crate::outln!();
}
