//! Commit only what the inputs support: a cycle the usage has not reached
//! is "not ready" (exit 5), windows that start before the usage are refused
//! (exit 3), an account export older than the pipeline's freshness allows
//! is not ready either; cycles are the pipeline's own (cadence, fiscal
//! calendar); derived tables follow their sources; one root holds one
//! pipeline.

use std::path::Path;

use polars::prelude::*;
use serde_json::Value;

use crate::*;

/// A command (`args[0]`) with the output root set, from the project root.
fn run_in(out: &Path, args: &[&str]) -> std::process::Output {
    quadrant()
        .arg(args[0])
        .args(["--output", out.to_str().unwrap()])
        .args(&args[1..])
        .output()
        .unwrap()
}

fn json(o: &std::process::Output) -> Value {
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(o), stderr(o)))
}

/// The fixtures' usage ends on 2026-09-30: the next quarter is not ready,
/// for `run`, a backfill into it, `validate` and `plan` alike; nothing is
/// written for it, and a backfill commits (and says so) the cycles before.
/// The opt-out commits it, recorded in the manifest and the summary.
#[test]
fn a_cycle_past_the_end_of_the_usage_is_not_ready() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = run_in(&out, &["run", "--cycle", "2026-Q4"]);
    expect_code(&o, 5);
    let err = stderr(&o);
    for part in [
        "usage `fixtures/usage/`",
        "ends on 2026-09-30",
        "as_of 2026-12-31",
        "2026-Q4",
        "retry",
    ] {
        assert!(err.contains(part), "names `{part}`: {err}");
    }
    assert!(tree(&out).is_empty(), "nothing written: {:?}", tree(&out));
    for args in [["validate", "--cycle", "2026-Q4"], ["plan", "--cycle", "2026-Q4"]] {
        let o = run_in(&out, &args);
        expect_code(&o, 5);
        assert!(stderr(&o).contains("ends on 2026-09-30"), "{args:?}: {}", stderr(&o));
    }
    let o = run_in(&out, &["plan", "--cycle", "2026-Q3"]);
    expect_code(&o, 0);
    assert!(stdout(&o).contains("covered"), "{}", stdout(&o));

    // A backfill commits the cycles before the one that is not ready.
    let o = run_in(&out, &["run", "--cycles", "2026-Q2..2026-Q4", "--json"]);
    expect_code(&o, 5);
    let summary = json(&o);
    assert_eq!(cycles_of(&summary["runs"]), ["2026-Q2", "2026-Q3"]);
    assert_eq!(summary["stopped_at"]["cycle"], "2026-Q4");
    assert_eq!(summary["stopped_at"]["exit_code"], 5);
    assert!(glob_rows(&out, "2026-Q3").is_some());
    assert!(glob_rows(&out, "2026-Q4").is_none());
    let text = run_in(&out, &["run", "--cycles", "2026-Q2..2026-Q4"]);
    expect_code(&text, 5);
    assert!(
        stdout(&text).contains("stopped at cycle 2026-Q4: 2026-Q2, 2026-Q3 committed before it"),
        "{}",
        stdout(&text)
    );

    // The opt-out: committed, and said so (with a pipeline that sets no
    // freshness: the accounts' 2026-Q4 export has not landed either).
    let text = std::fs::read_to_string(root().join("pipelines/default.toml")).unwrap();
    let unchecked = tmp.path().join("no-freshness.toml");
    std::fs::write(
        &unchecked,
        text.replace(
            "[inputs.accounts.freshness]\nwarn_after_days = 7\nerror_after_days = 31\n",
            "",
        ),
    )
    .unwrap();
    let unchecked = unchecked.to_str().unwrap();
    let o = run_in(&out, &["run", "--cycle", "2026-Q4", "--pipeline", unchecked]);
    expect_code(&o, 5);
    let o = run_in(
        &out,
        &[
            "run",
            "--cycle",
            "2026-Q4",
            "--pipeline",
            unchecked,
            "--allow-incomplete-usage",
            "--json",
        ],
    );
    expect_code(&o, 0);
    let summary = json(&o);
    assert_eq!(summary["coverage"]["incomplete_allowed"], true);
    assert_eq!(summary["coverage"]["usage_last"], "2026-09-30");
    let m = manifest(&out, "2026-Q4").unwrap();
    assert_eq!(m["coverage"], summary["coverage"]);
    assert_eq!(
        manifest(&out, "2026-Q3").unwrap()["coverage"]["incomplete_allowed"],
        false
    );
}

/// 30 days of usage cannot serve the default pipeline's prior-90-day window:
/// exit 3 naming the window and the first usage date; the opt-out commits.
#[test]
fn windows_that_start_before_the_usage_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    expect_code(
        &run(&[
            "generate",
            "--out",
            data.to_str().unwrap(),
            "--accounts",
            "300",
            "--days",
            "30",
            "--end",
            "2026-09-30",
        ]),
        0,
    );
    let out = tmp.path().join("out");
    let accounts = data.join("accounts.parquet");
    let usage = format!("{}/", data.join("usage").display());
    let args = ["run", "--accounts", accounts.to_str().unwrap(), "--usage", &usage];
    let o = run_in(&out, &args);
    expect_code(&o, 3);
    let err = stderr(&o);
    for part in [
        "starts on 2026-09-01",
        "`events_per_day_prior_90d`",
        "2026-04-04",
        "as_of 2026-09-30",
    ] {
        assert!(err.contains(part), "names `{part}`: {err}");
    }
    assert!(tree(&out).is_empty());
    let mut allowed = args.to_vec();
    allowed.extend(["--allow-incomplete-usage", "--json"]);
    let o = run_in(&out, &allowed);
    expect_code(&o, 0);
    assert_eq!(json(&o)["coverage"]["incomplete_allowed"], true);
    assert!(stderr(&o).contains("does not cover every window"), "{}", stderr(&o));
}

/// Accounts whose newest snapshot at as_of is older than
/// `[inputs.accounts.freshness]` allows: past error_after_days not ready
/// (exit 5), past warn_after_days a warning; a preview only warns.
#[test]
fn a_stale_account_export_is_not_ready() {
    let tmp = tempfile::tempdir().unwrap();
    let accounts = read_parquet(&root().join("fixtures/accounts.parquet"));
    let day = |s: &str| lit(s).str().to_date(StrptimeOptions::default());
    // The 2026-Q3 export has not landed: the newest is 2026-06-30's.
    let mut missing = accounts
        .clone()
        .lazy()
        .filter(col("snapshot_date").lt_eq(day("2026-06-30")))
        .collect()
        .unwrap();
    let stale = tmp.path().join("stale.parquet");
    write_parquet(&mut missing, &stale);
    let out = tmp.path().join("out");
    let o = run_in(
        &out,
        &["run", "--cycle", "2026-Q3", "--accounts", stale.to_str().unwrap()],
    );
    expect_code(&o, 5);
    let err = stderr(&o);
    for part in ["stale.parquet", "2026-06-30", "92 days old", "error_after_days = 31"] {
        assert!(err.contains(part), "names `{part}`: {err}");
    }
    assert!(tree(&out).is_empty());
    let o = run_in(
        &out,
        &[
            "run",
            "--cycle",
            "2026-Q3",
            "--as-of",
            "2026-09-15",
            "--accounts",
            stale.to_str().unwrap(),
        ],
    );
    expect_code(&o, 0);
    assert!(
        stderr(&o).contains("older than [inputs.accounts.freshness]"),
        "{}",
        stderr(&o)
    );

    // Taken ten days early: a warning, and the cycle is committed.
    let mut early = accounts
        .lazy()
        .with_column(
            when(col("snapshot_date").eq(day("2026-09-30")))
                .then(day("2026-09-20"))
                .otherwise(col("snapshot_date"))
                .alias("snapshot_date"),
        )
        .collect()
        .unwrap();
    let early_path = tmp.path().join("early.parquet");
    write_parquet(&mut early, &early_path);
    let o = run_in(
        &out,
        &["run", "--cycle", "2026-Q3", "--accounts", early_path.to_str().unwrap()],
    );
    expect_code(&o, 0);
    assert!(
        stderr(&o).contains("older than [inputs.accounts.freshness]"),
        "{}",
        stderr(&o)
    );
}

/// compare refuses a cycle with itself and a reversed pair; a replace
/// removes the comparisons built on the run it replaced, and compare then
/// computes them anew from the replacing run.
#[test]
fn compare_follows_its_sources() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    expect_code(&run_in(&out, &["run", "--cycles", "2026-Q2..2026-Q3"]), 0);
    for (from, to, why) in [
        ("2026-Q3", "2026-Q3", "the same cycle"),
        ("2026-Q3", "2026-Q2", "--to comes before --from"),
    ] {
        let o = run_in(&out, &["compare", "--from", from, "--to", to]);
        expect_code(&o, 2);
        assert!(
            stderr(&o).contains(&format!("compare --from {from} --to {to}")) && stderr(&o).contains(why),
            "{}",
            stderr(&o)
        );
    }
    assert!(!out.join("compare").exists());
    expect_code(&run_in(&out, &["compare", "--from", "2026-Q2", "--to", "2026-Q3"]), 0);
    let record = out.join("compare/from=2026-Q2/to=2026-Q3/_manifest.json");
    let before: Value = serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    assert_eq!(before["to_run_id"], manifest(&out, "2026-Q3").unwrap()["run_id"]);

    let o = run_in(&out, &["run", "--cycle", "2026-Q3", "--replace"]);
    expect_code(&o, 0);
    assert!(
        stderr(&o).contains("removed the comparisons built on the replaced run"),
        "{}",
        stderr(&o)
    );
    assert!(
        !tree(&out).iter().any(|f| f.starts_with("compare/")),
        "no comparison of the replaced run is left: {:?}",
        tree(&out)
    );
    expect_code(&run_in(&out, &["compare", "--from", "2026-Q2", "--to", "2026-Q3"]), 0);
    let after: Value = serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    assert_eq!(after["to_run_id"], manifest(&out, "2026-Q3").unwrap()["run_id"]);
    assert_ne!(after["to_run_id"], before["to_run_id"]);
}

/// One output root holds one pipeline: another pipeline's run is refused
/// naming both; the same pipeline with other thresholds is normal.
#[test]
fn one_output_root_holds_one_pipeline() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    expect_code(&run_in(&out, &["run", "--cycle", "2026-Q2"]), 0);
    let text = std::fs::read_to_string(root().join("pipelines/default.toml")).unwrap();
    let other = tmp.path().join("other.toml");
    std::fs::write(&other, text.replace("name = \"default\"", "name = \"emea\"")).unwrap();
    let o = run_in(
        &out,
        &["run", "--cycle", "2026-Q3", "--pipeline", other.to_str().unwrap()],
    );
    expect_code(&o, 2);
    assert!(
        stderr(&o).contains("pipeline `default`") && stderr(&o).contains("pipeline `emea`"),
        "{}",
        stderr(&o)
    );
    assert!(glob_rows(&out, "2026-Q3").is_none());
    let changed = tmp.path().join("changed.toml");
    std::fs::write(&changed, text.replace("mature_share = 0.80 ", "mature_share = 0.75 ")).unwrap();
    assert_ne!(std::fs::read_to_string(&changed).unwrap(), text);
    expect_code(
        &run_in(
            &out,
            &["run", "--cycle", "2026-Q3", "--pipeline", changed.to_str().unwrap()],
        ),
        0,
    );
}

/// A backfill's summary carries, for each cycle it skipped as committed,
/// the committed run's id, as_of, rows and labels.
#[test]
fn skipped_cycles_carry_the_committed_run() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let first = json(&run_in(&out, &["run", "--cycle", "2026-Q2", "--json"]));
    let o = run_in(&out, &["run", "--cycles", "2026-Q2..2026-Q3", "--json"]);
    expect_code(&o, 0);
    let runs = json(&o)["runs"].as_array().unwrap().clone();
    assert_eq!(runs[0]["skipped"], true);
    assert_eq!(runs[1]["skipped"], false);
    for key in ["run_id", "as_of", "rows", "segmentations", "quality"] {
        assert_eq!(runs[0][key], first[key], "{key}");
    }
    assert!(runs[0]["rows"].as_u64().unwrap() > 0);
}

/// A February-to-January fiscal year: cycles are `FY...` periods, dated,
/// backfilled, read back through `prev` and `_since`, and chosen by
/// default in that calendar; a calendar id is refused.
#[test]
fn fiscal_quarters_follow_the_fiscal_year() {
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("pipelines/default.toml")).unwrap();
    let fiscal = tmp.path().join("fiscal.toml");
    std::fs::write(
        &fiscal,
        text.replace(
            "cadence = \"quarter\"",
            "cadence = \"quarter\"\nfiscal_year_start_month = 2",
        ),
    )
    .unwrap();
    let fiscal = fiscal.to_str().unwrap();
    let out = tmp.path().join("out");
    let o = run_in(
        &out,
        &[
            "run",
            "--pipeline",
            fiscal,
            "--cycles",
            "FY2026-Q4..FY2027-Q2",
            "--json",
        ],
    );
    expect_code(&o, 0);
    let runs = json(&o)["runs"].as_array().unwrap().clone();
    let got: Vec<(&str, &str)> = runs
        .iter()
        .map(|r| (r["cycle"].as_str().unwrap(), r["as_of"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            ("FY2026-Q4", "2026-01-31"),
            ("FY2027-Q1", "2026-04-30"),
            ("FY2027-Q2", "2026-07-31")
        ]
    );
    let q2 = glob_rows(&out, "FY2027-Q2").unwrap();
    assert_eq!(q2.column("as_of").unwrap().get(0).unwrap().to_string(), "2026-07-31");
    let m = manifest(&out, "FY2027-Q2").unwrap();
    assert_eq!(m["previous"]["cycle"], "FY2027-Q1");
    // Every stay began in one of the three fiscal quarters.
    let since = strings(&q2, "wallet_share_matrix_since");
    assert!(
        since
            .iter()
            .all(|s| ["FY2026-Q4", "FY2027-Q1", "FY2027-Q2"].contains(&s.as_str())),
        "{since:?}"
    );
    assert!(
        since.iter().any(|s| s == "FY2026-Q4"),
        "some accounts stayed: {since:?}"
    );

    // The default cycle is the latest fiscal quarter the usage covers.
    let o = run_in(&out, &["run", "--pipeline", fiscal, "--json"]);
    expect_code(&o, 4);
    assert!(
        stderr(&o).contains("cycle FY2027-Q2 is already committed"),
        "{}",
        stderr(&o)
    );
    // A calendar id in a fiscal pipeline, and the other way round.
    let o = run_in(&out, &["run", "--pipeline", fiscal, "--cycle", "2026-Q3"]);
    expect_code(&o, 2);
    assert!(
        stderr(&o).contains("fiscal_year_start_month = 2") && stderr(&o).contains("FY2027-Q3"),
        "{}",
        stderr(&o)
    );
    let o = run_in(&tmp.path().join("calendar"), &["run", "--cycle", "FY2027-Q1"]);
    expect_code(&o, 2);
    assert!(stderr(&o).contains("is a fiscal quarter"), "{}", stderr(&o));
}
