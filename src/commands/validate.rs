//! `quadrant validate`: the pipeline file, the input schemas and, with
//! `--cycle`, every data check; writes nothing.

use crate::cli::ValidateArgs;
use crate::engine::polars as engine;
use crate::error::Result;

use super::Settings;

pub fn validate(args: ValidateArgs) -> Result<()> {
    let setup = Settings::resolve(&args.locations)?;
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
    let choice = super::engine(&args.engine)?;
    let accounts = engine::scan_accounts(p, &setup.accounts_uri)?;
    // What the pipeline reads: the key, ARR and the dates that decide who
    // is in a cycle, the columns its expressions read, the passthrough.
    let core = ["account_id", "arr", "customer_since", "snapshot_date", "churned_on"];
    let used: Vec<&str> = accounts
        .in_data
        .iter()
        .map(String::as_str)
        .filter(|c| {
            core.contains(c) || p.account_columns.iter().any(|(n, _)| n == c) || p.passthrough.iter().any(|n| n == c)
        })
        .collect();
    crate::outln!(
        "accounts `{}`: {} file(s), columns used: {}",
        setup.accounts_uri,
        accounts.files.len(),
        used.join(", ")
    );
    let usage = engine::scan_usage(p, &setup.usage_uri)?;
    crate::outln!(
        "usage `{}`: {} file(s), columns used: {}",
        setup.usage_uri,
        usage.files.len(),
        usage.columns.join(", ")
    );
    // On Spark: the server answers, and reads the files listed above.
    let pass = choice.usage_pass(&usage)?;
    if let Some(read_by) = pass.read_by() {
        crate::outln!("usage pass: {read_by}, reading the same {} file(s)", usage.files.len());
    }
    if let Some(cycle) = &args.cycle {
        let cycle = super::pipeline_cycle(p, cycle)?;
        let span = tracing::info_span!("cycle", %cycle);
        let _enter = span.enter();
        let coverage =
            setup
                .plan
                .coverage(cycle.as_of(), pass.span()?)
                .check(&cycle, pass.uri(), args.allow_incomplete_usage)?;
        super::print_coverage(&coverage);
        super::check_freshness(p, &accounts, cycle, cycle.as_of(), false)?;
        let (eval, _) = super::evaluate_cycle(
            &setup,
            &setup.snapshots()?,
            &engine::Accounts::once(&accounts),
            pass.as_ref(),
            (cycle, cycle.as_of()),
            (false, None),
        )?;
        crate::outln!(
            "cycle {cycle}: {} accounts would be segmented; {} usage rows in the windows",
            eval.snapshot.height(),
            eval.usage_rows_in_windows
        );
        super::print_findings(&eval.quality.findings);
    }
    Ok(())
}
