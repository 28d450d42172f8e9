//! `quadrant diff`: a new pipeline evaluated on the inputs and as_of of a
//! committed cycle, against that cycle's committed labels. Commits nothing.

use chrono::NaiveDate;
use polars::prelude::*;

use crate::cli::DiffArgs;
use crate::diff::{self, SegmentationDiff};
use crate::error::{Context, Error, Result};
use crate::storage::InputFile;
use crate::terminal;

use super::{Settings, committed};

/// Do the files listed now differ from those the committed run read?
fn changed(recorded: &[InputFile], now: &[InputFile]) -> bool {
    let key = |f: &InputFile| (f.uri.clone(), f.size, f.etag.clone(), f.modified.clone());
    let mut a: Vec<_> = recorded.iter().map(key).collect();
    let mut b: Vec<_> = now.iter().map(key).collect();
    a.sort();
    b.sort();
    a != b
}

pub fn diff(args: DiffArgs) -> Result<()> {
    let setup = Settings::resolve(&args.locations)?;
    let snapshots = setup.snapshots()?;
    let m = match &args.cycle {
        Some(c) => committed(&snapshots, c)?,
        None => snapshots.list_committed()?.pop().ok_or_else(|| {
            Error::config(format!(
                "no committed snapshots under {}: `quadrant diff` compares with a committed cycle",
                snapshots.store().uri()
            ))
        })?,
    };
    let cycle = super::parse_cycle(&m.cycle)?;
    let as_of = NaiveDate::parse_from_str(&m.as_of, "%Y-%m-%d").unwrap_or_else(|_| cycle.as_of());
    // The committed run's inputs, unless the flags name others.
    let accounts_uri = args
        .locations
        .accounts
        .clone()
        .unwrap_or_else(|| m.inputs.accounts.uri.clone());
    let usage_uri = args
        .locations
        .usage
        .clone()
        .unwrap_or_else(|| m.inputs.usage.uri.clone());
    let inputs = super::CycleInputs::open(&setup, &args.engine, &accounts_uri, &usage_uri)?;
    let (accounts, usage) = (&inputs.accounts, &inputs.usage);
    let inputs_changed =
        changed(&m.inputs.accounts.files, &accounts.files) || changed(&m.inputs.usage.files, &usage.files);
    if inputs_changed {
        tracing::warn!(cycle = %m.cycle, "the input files differ from those the committed run read: the diff shows the data's changes as well as the pipeline's");
    }
    let pass = inputs.pass()?;
    let committed_names: Vec<String> = m.segmentations.iter().map(|s| s.name.clone()).collect();
    let new_names: Vec<String> = setup.plan.segmentations.iter().map(|s| s.name.clone()).collect();
    let both_have: Vec<String> = new_names
        .iter()
        .filter(|n| committed_names.contains(n))
        .cloned()
        .collect();
    // The committed labels are read while the cycle is evaluated.
    let span = tracing::Span::current();
    let (committed, new) = std::thread::scope(|scope| {
        let committed = scope.spawn(|| {
            let _enter = span.enter();
            diff::committed_side(snapshots.scan_committed(&m)?, &both_have)
        });
        let new = super::evaluate_cycle(
            &setup,
            &snapshots,
            &crate::engine::polars::Accounts::once(accounts),
            pass.as_ref(),
            (cycle, as_of),
            (false, None),
        );
        let committed = committed
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (committed, new)
    });
    let new = new?.0.snapshot;
    let both = diff::side_by_side(committed?, &new, &both_have)?;
    let mut results: Vec<SegmentationDiff> = Vec::new();
    let mut moving: Vec<LazyFrame> = Vec::new();
    for name in &both_have {
        let (summary, moves) = diff::segmentation(&both, name)?;
        results.push(summary);
        moving.push(moves.lazy());
    }
    let only_new: Vec<&String> = new_names.iter().filter(|n| !committed_names.contains(n)).collect();
    let only_committed: Vec<&String> = committed_names.iter().filter(|n| !new_names.contains(n)).collect();

    if let Some(path) = &args.to {
        let mut frame = if moving.is_empty() {
            DataFrame::empty()
        } else {
            concat(moving, UnionArgs::default())
                .and_then(|lf| lf.collect())
                .ctx(|| "cannot gather the accounts that move".into())?
        };
        super::write_rows(&mut frame, path)?;
    }

    if args.json {
        let json = serde_json::json!({
            "cycle": m.cycle, "as_of": m.as_of, "committed_run_id": m.run_id,
            "committed_pipeline_hash": m.pipeline.hash, "pipeline_hash": setup.pipeline.hash,
            "inputs_changed": inputs_changed,
            "segmentations": results,
            "only_in_new_pipeline": only_new, "only_in_committed": only_committed,
        });
        crate::outln!("{}", serde_json::to_string_pretty(&json).expect("serializable"));
        return Ok(());
    }
    crate::outln!(
        "{} (as of {}, committed run {}) against pipeline `{}`{}",
        m.cycle,
        m.as_of,
        m.run_id,
        setup.pipeline.path,
        if inputs_changed {
            " (the inputs changed since)"
        } else {
            ""
        }
    );
    for r in &results {
        // Labels in the pipeline's order, as `run` prints them.
        let order: Vec<String> = setup
            .pipeline
            .segmentations
            .iter()
            .find(|s| s.name == r.name)
            .map(|s| s.labels().into_iter().map(str::to_string).collect())
            .unwrap_or_default();
        print_segmentation(r, &order);
    }
    for n in only_new {
        crate::outln!("\n{n}: only in the new pipeline, nothing to compare with");
    }
    for n in only_committed {
        crate::outln!("\n{n}: not in the new pipeline");
    }
    if let Some(path) = &args.to {
        crate::outln!("\naccounts that move written to {path}");
    }
    Ok(())
}

fn print_segmentation(r: &SegmentationDiff, order: &[String]) {
    crate::outln!(
        "\n{}: {} accounts would move, {} of ARR (each account's ARR at as_of; cells: accounts (ARR))",
        r.name,
        r.moved_accounts,
        terminal::money(r.moved_arr)
    );
    if r.moved_accounts > 0 {
        // The pipeline's order, then labels only the committed run gave.
        let mut labels: Vec<&str> = order.iter().map(String::as_str).collect();
        for c in &r.matrix {
            for l in [c.from.as_str(), c.to.as_str()] {
                if !labels.contains(&l) {
                    labels.push(l);
                }
            }
        }
        labels.retain(|l| r.matrix.iter().any(|c| c.from == *l || c.to == *l));
        let header: Vec<&str> = std::iter::once("committed \\ new")
            .chain(labels.iter().copied())
            .collect();
        let rows: Vec<Vec<String>> = labels
            .iter()
            .filter(|from| r.matrix.iter().any(|c| c.from == **from))
            .map(|from| {
                std::iter::once(from.to_string())
                    .chain(labels.iter().map(|to| {
                        r.matrix
                            .iter()
                            .find(|c| c.from == *from && c.to == *to)
                            .map_or("-".into(), |c| format!("{} ({})", c.accounts, terminal::compact(c.arr)))
                    }))
                    .collect()
            })
            .collect();
        let right: Vec<bool> = header.iter().enumerate().map(|(i, _)| i > 0).collect();
        crate::out!("{}", terminal::render(&header, &rows, &right));
    }
    if !r.rules.is_empty() {
        crate::outln!("  rules whose counts change:");
        let rows: Vec<Vec<String>> = r
            .rules
            .iter()
            .map(|c| {
                let delta = c.new as i64 - c.committed as i64;
                vec![
                    c.rule.clone(),
                    c.committed.to_string(),
                    c.new.to_string(),
                    format!("{delta:+}"),
                ]
            })
            .collect();
        crate::out!(
            "{}",
            terminal::render(
                &["rule", "committed", "new", "change"],
                &rows,
                &[false, true, true, true]
            )
        );
    }
}
