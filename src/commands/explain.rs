//! `quadrant explain`: one account's values and, per segmentation, the rule
//! that fired and why the earlier rules did not.

use polars::prelude::*;
use serde::Serialize;

use crate::cli::ExplainArgs;
use crate::engine::polars as engine;
use crate::error::{Context, Error, Result};
use crate::snapshot::{Manifest, Snapshots};
use crate::terminal;

use super::{Settings, parse_cycle, parse_date};

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
    /// The value of each base-wide function in the condition, for this
    /// cycle's base: (`quantile(arr, 0.5)`, `7570.0`).
    functions: Vec<(String, String)>,
}

#[derive(Serialize)]
struct SegmentationVerdict {
    segmentation: String,
    label: String,
    rule: String,
    /// The first cycle of the account's current stay in `label`.
    since: Option<String>,
    /// The account's label in the previous cycle's committed snapshot
    /// (`None`: not in it, or that cycle is not committed).
    previous_label: Option<String>,
    rules: Vec<RuleVerdict>,
}

/// The account's labels in the committed snapshot of the cycle before.
fn previous_labels(
    snapshots: &crate::snapshot::Snapshots,
    cycle: &str,
    account: &str,
) -> Result<(String, std::collections::BTreeMap<String, String>)> {
    let previous = parse_cycle(cycle)?.previous();
    let mut labels = std::collections::BTreeMap::new();
    if let Some(m) = snapshots.committed_run(&previous)? {
        let row = snapshots
            .scan_committed(&m)?
            .filter(col("account_id").eq(lit(account)))
            .collect()
            .ctx(|| format!("cannot read the snapshot of {previous}"))?;
        if row.height() > 0 {
            for s in &m.segmentations {
                if let Ok(v) = row.column(&s.name).and_then(|c| c.get(0))
                    && !v.is_null()
                {
                    labels.insert(s.name.clone(), terminal::value(&v));
                }
            }
        }
    }
    Ok((previous.to_string(), labels))
}

fn frame_ids(frame: &DataFrame) -> Result<Vec<String>> {
    let ids = frame
        .column("account_id")
        .ctx(|| "cannot read the account ids".into())?;
    Ok((0..ids.len())
        .filter_map(|i| match ids.get(i) {
            Ok(AnyValue::String(s)) => Some(s.to_string()),
            _ => None,
        })
        .collect())
}

/// Why an account is not in a cycle, as far as the accounts input tells:
/// churned (and when), not yet a customer, first exported later, dropped
/// by a data check, or not in the data at all (with a near id).
fn why_absent(setup: &Settings, account: &str, as_of: chrono::NaiveDate, ids: &[String], cycle: &str) -> String {
    let near = || {
        let exact_but_case: Vec<&str> = ids
            .iter()
            .filter(|id| id.eq_ignore_ascii_case(account))
            .map(String::as_str)
            .collect();
        match exact_but_case.as_slice() {
            [id, ..] => format!("; did you mean `{id}`? (ids are case-sensitive)"),
            [] => crate::error::did_you_mean(account, ids.iter().map(String::as_str))
                .map(|h| format!("; {h}"))
                .unwrap_or_default(),
        }
    };
    let rows = engine::scan_accounts(&setup.pipeline, &setup.accounts_uri).and_then(|d| {
        d.frame
            .filter(col("account_id").eq(lit(account)))
            .collect()
            .ctx(|| format!("cannot read `{}`", setup.accounts_uri))
    });
    let Ok(rows) = rows else {
        return format!(
            "the accounts input `{}` could not be read to say why{}",
            setup.accounts_uri,
            near()
        );
    };
    if rows.height() == 0 {
        return format!("no account has this id in `{}`{}", setup.accounts_uri, near());
    }
    let dates = |name: &str| -> Vec<Option<chrono::NaiveDate>> {
        let Ok(c) = rows.column(name) else {
            return vec![None; rows.height()];
        };
        (0..c.len())
            .map(|i| match c.get(i) {
                Ok(AnyValue::Date(d)) => Some(crate::cycle::from_epoch_days(d)),
                _ => None,
            })
            .collect()
    };
    let (snapshot, since, churned) = (dates("snapshot_date"), dates("customer_since"), dates("churned_on"));
    // The row valid at as_of: the latest export on or before it.
    let valid = (0..rows.height())
        .filter(|&i| snapshot[i].is_none_or(|d| d <= as_of))
        .max_by_key(|&i| snapshot[i]);
    let Some(i) = valid else {
        let first = snapshot
            .iter()
            .flatten()
            .min()
            .map(|d| d.to_string())
            .unwrap_or_default();
        return format!(
            "its first export in `{}` is from {first}, after as_of {as_of}",
            setup.accounts_uri
        );
    };
    match (since[i], churned[i]) {
        (_, Some(c)) if c <= as_of => format!("churned on {c}, on or before as_of {as_of}"),
        (Some(s), _) if s > as_of => format!("not yet a customer at as_of {as_of}: customer since {s}"),
        (None, _) => {
            "its customer_since is null, so the data checks left it out (see the manifest's data-check counts)".into()
        }
        _ => format!(
            "in the accounts input, but left out by a data check (its rows are under rejects/ for cycle {cycle})"
        ),
    }
}

/// The snapshot an account is explained in, with the plan that made it.
struct Explained {
    plan: crate::plan::Plan,
    frame: DataFrame,
    as_of: chrono::NaiveDate,
    cycle: String,
    /// Where the rows come from: a committed run, or the inputs.
    source: String,
}

/// A committed snapshot is explained with the plan that made it; an
/// uncommitted cycle is computed from the inputs.
fn explained(setup: &Settings, snapshots: &Snapshots, args: &ExplainArgs) -> Result<Explained> {
    let manifest: Option<Manifest> = match &args.cycle {
        Some(c) => snapshots.committed_run(&parse_cycle(c)?)?,
        None => snapshots.list_committed()?.pop(),
    };
    if let Some(m) = manifest {
        let frame = snapshots
            .scan_committed(&m)?
            .collect()
            .ctx(|| format!("cannot read the snapshot of {}", m.cycle))?;
        return Ok(Explained {
            plan: m.recorded_plan()?,
            frame,
            as_of: parse_date("as_of", &m.as_of)?,
            cycle: m.cycle.clone(),
            source: format!("committed run {}", m.run_id),
        });
    }
    let Some(c) = &args.cycle else {
        return Err(Error::config(format!(
            "no committed snapshots under {}: pass --cycle to explain from the inputs",
            snapshots.store().uri()
        )));
    };
    let cycle = parse_cycle(c)?;
    let inputs = super::CycleInputs::open(setup, &args.engine, &setup.accounts_uri, &setup.usage_uri)?;
    let pass = inputs.pass()?;
    let (eval, _) = super::evaluate_cycle(
        setup,
        snapshots,
        &engine::Accounts::once(&inputs.accounts),
        pass.as_ref(),
        (cycle, cycle.as_of()),
        (false, None),
    )?;
    Ok(Explained {
        plan: setup.plan.clone(),
        frame: eval.snapshot,
        as_of: cycle.as_of(),
        cycle: cycle.to_string(),
        source: "not committed: computed from the inputs".to_string(),
    })
}

pub fn explain(args: ExplainArgs) -> Result<()> {
    let setup = Settings::resolve(&args.locations)?;
    let snapshots = setup.snapshots()?;
    let Explained {
        plan,
        frame,
        as_of,
        cycle,
        source,
    } = explained(&setup, &snapshots, &args)?;

    let total = frame.height();
    let row_source = frame
        .select(["account_id"])
        .ctx(|| "cannot read the account ids".into())?;
    let row = engine::rules::explain_account(frame, &plan.segmentations, &args.account, as_of)?;
    if row.height() == 0 {
        let ids: Vec<String> = frame_ids(&row_source)?;
        let why = why_absent(&setup, &args.account, as_of, &ids, &cycle);
        return Err(Error::config(format!(
            "account `{}` is not in cycle {cycle} ({total} accounts): {why}",
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
            .map(|v| terminal::value(&v))
            .unwrap_or_default()
    };
    let (previous_cycle, previous) = previous_labels(&snapshots, &cycle, &args.account)?;
    let mut verdicts = Vec::new();
    for (si, s) in plan.segmentations.iter().enumerate() {
        let rule = get_str(&s.rule_column());
        let mut rules = Vec::new();
        for (ri, r) in s.rules.iter().enumerate() {
            let conditions = r
                .when
                .conditions()
                .iter()
                .enumerate()
                .map(|(ci, c)| ConditionValue {
                    condition: terminal::strip_parens(&c.to_string()),
                    value: get_bool(&engine::rules::condition_column(si, ri, ci)),
                    functions: c
                        .base_wide_calls()
                        .iter()
                        .enumerate()
                        .map(|(k, call)| {
                            let value = row
                                .column(&engine::rules::function_column(si, ri, ci, k))
                                .ok()
                                .and_then(|col| col.get(0).ok())
                                .map(|v| match v {
                                    AnyValue::Float64(x) => terminal::number(x),
                                    other => terminal::value(&other),
                                })
                                .unwrap_or_default();
                            (terminal::strip_parens(&call.to_string()), value)
                        })
                        .collect(),
                })
                .collect();
            rules.push(RuleVerdict {
                rule: r.name.clone(),
                label: r.label.clone(),
                when: r.text.clone(),
                matched: get_bool(&engine::rules::verdict_column(si, ri)),
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
            since: Some(get_str(&s.since_column())).filter(|v| !v.is_empty()),
            previous_label: previous.get(&s.name).cloned(),
            rules,
        });
    }
    let hidden = |n: &str| {
        n.starts_with(engine::rules::EXPLAIN_PREFIX)
            || plan
                .segmentations
                .iter()
                .any(|s| s.name == n || s.rule_column() == n || s.since_column() == n)
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
    crate::out!("{}", terminal::render(&["column", "value"], &rows, &[false, false]));
    for v in verdicts {
        crate::outln!("\n{}: {} (rule {})", v.segmentation, v.label, v.rule);
        let before = match &v.previous_label {
            Some(l) => format!("{l} in {previous_cycle}"),
            None => format!("not in a committed {previous_cycle}"),
        };
        match &v.since {
            Some(since) => crate::outln!("  {} since {since}; {before}", v.label),
            None => crate::outln!("  {before}"),
        }
        for r in &v.rules {
            let mark = match r.matched {
                Some(true) => "matched",
                Some(false) => "no match",
                None => "no match (null)",
            };
            crate::outln!("  {} -> {}: {mark}\n    when {}", r.rule, r.label, r.when.trim());
            for c in &r.conditions {
                let shown = c.value.map_or("null".to_string(), |b| b.to_string());
                let functions = match c.functions.as_slice() {
                    [] => String::new(),
                    [(_, v)] => format!(" [{v}]"),
                    many => format!(
                        " [{}]",
                        many.iter()
                            .map(|(f, v)| format!("{f} = {v}"))
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                };
                crate::outln!("      {}{functions} = {shown}", c.condition);
            }
        }
        if v.rule == crate::engine::polars::rules::DEFAULT_RULE {
            crate::outln!("  no rule matched -> default {}", v.label);
        }
    }
    Ok(())
}
