//! What a cycle reads of the committed snapshot of the cycle before it:
//! `prev(...)` and each segmentation's `_since`, as polars columns.

use polars::prelude::*;

use super::History;
use crate::cycle::Cycle;
use crate::error::{Context, Error, Result};
use crate::plan::Plan;
use crate::snapshot::{PreviousRun, Snapshots};

/// What a backfill keeps of the snapshot it has just committed, for the
/// next cycle to read instead of the committed file: the columns a cycle
/// reads of the one before it, the same values.
pub struct Carried {
    cycle: Cycle,
    run: PreviousRun,
    frame: DataFrame,
}

impl Carried {
    /// Of a cycle's snapshot frame, as `run` committed it under `snapshots`
    /// (with the types the committed file has).
    pub fn of(
        snapshots: &Snapshots,
        plan: &Plan,
        cycle: Cycle,
        run: PreviousRun,
        snapshot: &DataFrame,
    ) -> Result<Carried> {
        let mut names = vec!["account_id".to_string()];
        for c in plan.previous_columns() {
            if snapshot.schema().contains(&c.source) && !names.contains(&c.source) {
                names.push(c.source);
            }
        }
        let frame = snapshot
            .select(names)
            .ctx(|| format!("cannot keep the snapshot of cycle {cycle}"))?;
        let frame = snapshots.as_stored(frame)?;
        Ok(Carried { cycle, run, frame })
    }
}

/// What a cycle reads of the committed snapshot of the cycle before it
/// (`prev(...)` and each segmentation's `_since`), and which run that was.
/// When it is not committed, `prev(...)` is null for every account: a
/// warning when the pipeline uses `prev`, an error with `require`. When
/// `carried` is that snapshot, kept in memory by the backfill that committed
/// it, it is read from there.
pub fn read_history(
    snapshots: &Snapshots,
    plan: &Plan,
    cycle: Cycle,
    require: bool,
    carried: Option<&Carried>,
) -> Result<(History, Option<PreviousRun>)> {
    let previous = cycle.previous();
    if let Some(carried) = carried.filter(|c| c.cycle == previous) {
        let frame = previous_columns(carried.frame.clone().lazy(), plan, previous)?;
        let history = History {
            cycle,
            previous: Some(frame),
        };
        return Ok((history, Some(carried.run.clone())));
    }
    let Some(m) = snapshots.committed_run(&previous)? else {
        if require {
            return Err(Error::Refused(format!(
                "--require-previous: cycle {previous}, the one before {cycle}, is not committed under {}: commit it first (or backfill with --cycles)",
                snapshots.store().uri()
            )));
        }
        if !plan.previous.is_empty() {
            tracing::warn!(%previous, "the previous cycle is not committed: prev(...) is null for every account (pass --require-previous to make this an error)");
        }
        return Ok((History { cycle, previous: None }, None));
    };
    let frame = previous_columns(snapshots.scan_committed(&m)?, plan, previous)?;
    let run = PreviousRun {
        cycle: m.cycle.clone(),
        run_id: m.run_id.clone(),
    };
    Ok((
        History {
            cycle,
            previous: Some(frame),
        },
        Some(run),
    ))
}

/// The columns a cycle reads of the previous cycle's snapshot, renamed to
/// their `prev` names.
fn previous_columns(mut frame: LazyFrame, plan: &Plan, previous: Cycle) -> Result<DataFrame> {
    let schema = frame
        .collect_schema()
        .ctx(|| format!("cannot read the snapshot of cycle {previous}"))?;
    let mut columns = vec![col("account_id")];
    for c in plan.previous_columns() {
        let label = c.source.strip_suffix("_since").filter(|l| schema.contains(l));
        columns.push(if schema.contains(&c.source) {
            col(c.source.as_str()).alias(c.column.as_str())
        } else if let Some(label) = label {
            // Made before `_since` existed: the stay began by then at least.
            when(col(label).is_not_null())
                .then(lit(previous.to_string()))
                .otherwise(lit(NULL).cast(DataType::String))
                .alias(c.column.as_str())
        } else {
            if plan.previous.iter().any(|(n, _)| *n == c.source) {
                tracing::warn!(%previous, column = %c.source, "the previous cycle's snapshot has no such column: prev({}) is null for every account", c.source);
            }
            super::missing_previous(c.ty, &c.column)
        });
    }
    frame
        .select(columns)
        .collect()
        .ctx(|| format!("cannot read the snapshot of cycle {previous}"))
}
