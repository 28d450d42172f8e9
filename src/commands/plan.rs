//! `quadrant plan`: what a cycle's usage pass would run on the chosen
//! engine, for review before it runs (for Spark, the SQL it would send).
//! Reads the input schemas, no rows; writes nothing.

use crate::cli::PlanArgs;
use crate::engine::polars as engine;
use crate::error::Result;

use super::{Settings, parse_date};

pub fn plan(args: PlanArgs) -> Result<()> {
    let setup = Settings::resolve(&args.locations)?;
    let choice = super::engine(&args.engine)?;
    let cycle = super::pipeline_cycle(&setup.pipeline, &args.cycle)?;
    let as_of = match &args.as_of {
        Some(d) => parse_date("--as-of", d)?,
        None => cycle.as_of(),
    };
    let usage = engine::scan_usage(&setup.pipeline, &setup.usage_uri)?;
    crate::outln!(
        "-- usage pass of cycle {cycle} (as of {as_of}), pipeline `{}`",
        setup.pipeline.name
    );
    for a in &setup.plan.aggregates {
        let (after, through) = crate::plan::window(a, as_of);
        crate::outln!(
            "-- {}: {}({}) over {after} < date <= {through}",
            a.name,
            a.agg.name(),
            a.column
        );
    }
    crate::outln!("{}", choice.describe(&setup.plan, &usage, as_of)?);
    // Whether a run would evaluate the cycle at all.
    let coverage = setup.plan.coverage(as_of, usage.span()?);
    super::print_coverage(&coverage);
    coverage.check(&cycle, &usage.uri, args.allow_incomplete_usage)?;
    Ok(())
}
