//! Nulls in required columns are data checks, with the same error / warn /
//! drop policies as the others: a null `arr` or `customer_since` in the
//! accounts, a null `account_id` or `date` in the usage. Base-wide
//! functions ignore nulls (the quantile regression of issue 12).

use std::path::Path;

use polars::prelude::*;

use crate::*;

/// N1 has no arr, N2 no onboarding date, N3 no onboarding date but churned
/// before the cycle (not a finding); usage has a row without an account and
/// one without a date.
/// Sparse usage on one day: every run here passes --allow-incomplete-usage
/// (the tests are about null checks, not about coverage).
fn inputs(dir: &Path) {
    let day = 20_080i32; // 2024-12-23, inside the 30-day window of 2024-Q4
    let mut accounts = df! {
        "account_id" => ["A", "N1", "N2", "N3"],
        "arr" => [Some(1000.0), None, Some(2000.0), Some(3000.0)],
        "customer_since" => [Some(0i32), Some(0), None, None],
        "churned_on" => [None, None, None, Some(day - 400)],
    }
    .unwrap()
    .lazy()
    .with_columns([
        col("customer_since").cast(DataType::Date),
        col("churned_on").cast(DataType::Date),
    ])
    .collect()
    .unwrap();
    write_parquet(&mut accounts, &dir.join("accounts.parquet"));
    let mut usage = df! {
        "account_id" => [Some("A"), None, Some("A"), Some("N1")],
        "date" => [Some(day), Some(day), None, Some(day)],
        "events" => [5i64, 6, 7, 8],
    }
    .unwrap()
    .lazy()
    .with_column(col("date").cast(DataType::Date))
    .collect()
    .unwrap();
    write_parquet(&mut usage, &dir.join("usage/u.parquet"));
}

/// `run` of cycle 2024-Q4 with pipeline `p`: the usage is sparse (one day),
/// so with the recorded opt-out; these tests are about null checks.
fn run_q4(p: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["run", "--pipeline", p, "--cycle", "2024-Q4", "--allow-incomplete-usage"];
    args.extend_from_slice(extra);
    run(&args)
}

/// The pipeline of the other data-check tests, with the onboarding date in
/// a feature.
fn pipeline(dir: &Path, quality: &str) -> String {
    let path = crate::quality::pipeline(dir, quality);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("\n[[features]]\nname = \"tenure_days\"\nexpr = \"days_between(customer_since, as_of)\"\n");
    std::fs::write(&path, text).unwrap();
    path
}

fn finding(manifest: &serde_json::Value, check: &str) -> Option<(String, u64, String)> {
    manifest["quality"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == check)
        .map(|f| {
            (
                f["dataset"].as_str().unwrap().to_string(),
                f["rows"].as_u64().unwrap(),
                f["policy"].as_str().unwrap().to_string(),
            )
        })
}

/// Regression: a null arr went into the snapshot as is and a null
/// customer_since dropped the account from the cycle, silently.
#[test]
fn nulls_in_required_columns_fail_the_run_by_default() {
    let tmp = tempfile::tempdir().unwrap();
    inputs(tmp.path());
    let p = pipeline(tmp.path(), "");
    let o = run_q4(&p, &[]);
    expect_code(&o, 3);
    let err = stderr(&o);
    for want in [
        "data check `null_arr` failed: 1 accounts row(s) (e.g. N1)",
        "data check `null_customer_since` failed: 1 accounts row(s) (e.g. N2)",
        "data check `null_usage_account_id` failed: 1 usage row(s)",
        "data check `null_usage_date` failed: 1 usage row(s) (e.g. A)",
    ] {
        assert!(err.contains(want), "missing `{want}` in:\n{err}");
    }
    assert!(!tmp.path().join("out").exists(), "nothing written");
    // The default pipeline spells out the same defaults: the fixtures with
    // one account's arr missing fail.
    let mut fixtures = read_parquet(&root().join("fixtures/accounts.parquet"))
        .lazy()
        .with_column(
            when(col("account_id").eq(lit("A0000002")))
                .then(lit(NULL).cast(DataType::Float64))
                .otherwise(col("arr"))
                .alias("arr"),
        )
        .collect()
        .unwrap();
    let accounts = tmp.path().join("fixtures-null-arr.parquet");
    write_parquet(&mut fixtures, &accounts);
    let out = tmp.path().join("out2");
    let default = run(&[
        "run",
        "--accounts",
        &accounts.to_string_lossy(),
        "--output",
        &out.to_string_lossy(),
        "--cycle",
        "2026-Q3",
    ]);
    expect_code(&default, 3);
    assert!(
        stderr(&default).contains("`null_arr` failed: 1 accounts row(s) (e.g. A0000002)"),
        "{}",
        stderr(&default)
    );
}

#[test]
fn dropped_nulls_are_rejects_counted_in_the_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    inputs(tmp.path());
    let p = pipeline(
        tmp.path(),
        "null_arr = \"drop\"\nnull_customer_since = \"drop\"\nnull_usage_account_id = \"drop\"\nnull_usage_date = \"drop\"\nunknown_account_usage = \"error\"",
    );
    let o = run_q4(&p, &[]);
    expect_code(&o, 0);
    let out = tmp.path().join("out");
    let snapshot = glob_rows(&out, "2024-Q4").unwrap();
    assert_eq!(strings(&snapshot, "account_id"), ["A"]);
    let m = manifest(&out, "2024-Q4").unwrap();
    assert_eq!(finding(&m, "null_arr"), Some(("accounts".into(), 1, "drop".into())));
    assert_eq!(
        finding(&m, "null_customer_since"),
        Some(("accounts".into(), 1, "drop".into()))
    );
    assert_eq!(
        finding(&m, "null_usage_account_id"),
        Some(("usage".into(), 1, "drop".into()))
    );
    assert_eq!(finding(&m, "null_usage_date"), Some(("usage".into(), 1, "drop".into())));
    // The null id is not counted again as an unknown account (policy error here).
    assert_eq!(finding(&m, "unknown_account_usage"), None);

    let accounts = read_parquet(&out.join("rejects/cycle=2024-Q4/dataset=accounts/part-0.parquet"))
        .sort(["account_id"], Default::default())
        .unwrap();
    assert_eq!(strings(&accounts, "account_id"), ["N1", "N2"]);
    assert_eq!(strings(&accounts, "reason"), ["null_arr", "null_customer_since"]);
    let usage = read_parquet(&out.join("rejects/cycle=2024-Q4/dataset=usage/part-0.parquet"));
    let mut reasons = strings(&usage, "reason");
    reasons.sort();
    assert_eq!(reasons, ["null_usage_account_id", "null_usage_date"]);
    // The undated row of A is in no window; A's events are its dated row.
    assert_eq!(
        snapshot.column("events_30d").unwrap().get(0).unwrap(),
        AnyValue::Int64(5)
    );
}

#[test]
fn warned_nulls_are_kept_and_logged() {
    let tmp = tempfile::tempdir().unwrap();
    inputs(tmp.path());
    let p = pipeline(
        tmp.path(),
        "null_arr = \"warn\"\nnull_customer_since = \"warn\"\nnull_usage_account_id = \"drop\"\nnull_usage_date = \"warn\"",
    );
    let o = run_q4(&p, &[]);
    expect_code(&o, 0);
    let err = stderr(&o);
    assert!(
        err.contains("null_arr") && err.contains("null_customer_since") && err.contains("null_usage_date"),
        "{err}"
    );
    let out = tmp.path().join("out");
    let snapshot = glob_rows(&out, "2024-Q4").unwrap();
    // N1 with an unknown arr, N2 with an unknown tenure; N3 churned before.
    assert_eq!(strings(&snapshot, "account_id"), ["A", "N1", "N2"]);
    assert_eq!(strings(&snapshot, "arr"), ["1000.0", "", "2000.0"]);
    assert_eq!(strings(&snapshot, "tenure_days")[2], "");
    assert_eq!(strings(&snapshot, "big_rule"), ["default", "default", "big"]);
    let m = manifest(&out, "2024-Q4").unwrap();
    assert_eq!(
        finding(&m, "null_customer_since"),
        Some(("accounts".into(), 1, "warn".into()))
    );

    // A row without an account id cannot be kept.
    let refused = pipeline(tmp.path(), "null_usage_account_id = \"warn\"");
    let v = run(&["validate", "--config-only", "--pipeline", &refused]);
    expect_code(&v, 2);
    assert!(
        stderr(&v).contains("`null_usage_account_id` cannot be `warn`"),
        "{}",
        stderr(&v)
    );
}

/// Accounts with history (`snapshot_date`): P1's old row has no arr and no
/// onboarding date but a later row does; P2's row without them is dated
/// after as_of; P3's and P4's rows valid at as_of lack arr and
/// customer_since; P5 lacks arr but is onboarded after as_of.
fn history(dir: &Path) {
    let date = |d: &str| d.parse::<chrono::NaiveDate>().unwrap();
    let mut accounts = df! {
        "account_id" => ["P1", "P1", "P2", "P2", "P3", "P3", "P4", "P5"],
        "snapshot_date" => [
            date("2024-01-01"), date("2024-10-01"),
            date("2024-10-01"), date("2025-02-01"),
            date("2024-06-01"), date("2024-11-01"),
            date("2024-11-01"), date("2024-11-01"),
        ],
        "arr" => [None, Some(500.0), Some(100.0), None, Some(200.0), None, Some(300.0), None],
        "customer_since" => [
            None, Some(date("2020-01-01")),
            Some(date("2020-01-01")), None,
            Some(date("2020-01-01")), Some(date("2020-01-01")),
            None, Some(date("2025-03-01")),
        ],
    }
    .unwrap();
    write_parquet(&mut accounts, &dir.join("accounts.parquet"));
    let mut usage = df! {
        "account_id" => ["P1"],
        "date" => [date("2024-12-23")],
        "events" => [5i64],
    }
    .unwrap();
    write_parquet(&mut usage, &dir.join("usage/u.parquet"));
}

/// The null checks look at the row valid at as_of of each account in the
/// cycle, as the other account checks do: not at superseded rows, rows
/// dated after as_of, or accounts onboarded later.
#[test]
fn null_checks_apply_to_the_rows_valid_for_the_cycle() {
    let tmp = tempfile::tempdir().unwrap();
    history(tmp.path());
    let p = crate::quality::pipeline(tmp.path(), "");
    let o = run_q4(&p, &[]);
    expect_code(&o, 3);
    let err = stderr(&o);
    for want in [
        "data check `null_arr` failed: 1 accounts row(s) (e.g. P3)",
        "data check `null_customer_since` failed: 1 accounts row(s) (e.g. P4)",
    ] {
        assert!(err.contains(want), "missing `{want}` in:\n{err}");
    }

    let p = crate::quality::pipeline(tmp.path(), "null_arr = \"drop\"\nnull_customer_since = \"drop\"");
    // validate --cycle reports the findings and writes nothing.
    let v = run(&[
        "validate",
        "--pipeline",
        &p,
        "--cycle",
        "2024-Q4",
        "--allow-incomplete-usage",
    ]);
    expect_code(&v, 0);
    let out = tmp.path().join("out");
    assert!(!out.exists(), "validate writes nothing");
    let o = run_q4(&p, &[]);
    expect_code(&o, 0);
    for (what, printed) in [("validate --cycle", stdout(&v)), ("run summary", stdout(&o))] {
        for want in [
            "data check null_arr: 1 accounts rows (Drop)",
            "data check null_customer_since: 1 accounts rows (Drop)",
        ] {
            assert!(printed.contains(want), "{what} lacks `{want}`:\n{printed}");
        }
    }
    let snapshot = glob_rows(&out, "2024-Q4").unwrap();
    assert_eq!(strings(&snapshot, "account_id"), ["P1", "P2"]);
    assert_eq!(strings(&snapshot, "arr"), ["500.0", "100.0"]);
    let m = manifest(&out, "2024-Q4").unwrap();
    assert_eq!(finding(&m, "null_arr"), Some(("accounts".into(), 1, "drop".into())));
    assert_eq!(
        finding(&m, "null_customer_since"),
        Some(("accounts".into(), 1, "drop".into()))
    );
    let rejects = read_parquet(&out.join("rejects/cycle=2024-Q4/dataset=accounts/part-0.parquet"))
        .sort(["account_id"], Default::default())
        .unwrap();
    assert_eq!(strings(&rejects, "account_id"), ["P3", "P4"]);
    assert_eq!(strings(&rejects, "reason"), ["null_arr", "null_customer_since"]);
    assert_eq!(strings(&rejects, "snapshot_date"), ["2024-11-01", "2024-11-01"]);

    // The JSON summary counts them too.
    let j = run_q4(&p, &["--replace", "--json"]);
    expect_code(&j, 0);
    let summary: serde_json::Value = serde_json::from_str(&stdout(&j)).unwrap();
    let checks: Vec<(&str, u64)> = summary["quality"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["check"].as_str().unwrap(), f["rows"].as_u64().unwrap()))
        .collect();
    assert!(
        checks.contains(&("null_arr", 1)) && checks.contains(&("null_customer_since", 1)),
        "{checks:?}"
    );
}

/// Regression (issue 12): polars counted the null into the index, so
/// `quantile(wallet, 0.1)` over 0, 1 and a null was 0.10000000000000009
/// and the account whose arr sits exactly on 0.1 missed the rule.
#[test]
fn an_account_on_a_quantile_threshold_gets_the_label_numpy_gives() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut accounts = df! {
        "account_id" => ["A", "B", "C"],
        "arr" => [0.1, 5.0, 7.0],
        "wallet" => [Some(0.0), Some(1.0), None],
        "customer_since" => [0i32, 0, 0],
    }
    .unwrap()
    .lazy()
    .with_column(col("customer_since").cast(DataType::Date))
    .collect()
    .unwrap();
    write_parquet(&mut accounts, &dir.join("accounts.parquet"));
    let mut usage = df! { "account_id" => ["A"], "date" => [20_080i32], "events" => [1i64] }
        .unwrap()
        .lazy()
        .with_column(col("date").cast(DataType::Date))
        .collect()
        .unwrap();
    write_parquet(&mut usage, &dir.join("usage/u.parquet"));
    let p = crate::quality::pipeline(dir, "");
    let mut text = std::fs::read_to_string(&p).unwrap();
    text.push_str(
        r#"
[[features]]
name = "wallet_q10"
expr = "quantile(wallet, 0.1)"
[[features]]
name = "wallet_median"
expr = "median(wallet)"
[[segmentations]]
name = "threshold"
default = "below"
rules = [{ name = "at_or_above", label = "at_or_above", when = "arr >= wallet_q10" }]
"#,
    );
    std::fs::write(&p, text).unwrap();
    let o = run_q4(&p, &[]);
    expect_code(&o, 0);
    let snapshot = glob_rows(&dir.join("out"), "2024-Q4").unwrap();
    let value = |name: &str| snapshot.column(name).unwrap().f64().unwrap().get(0).unwrap();
    assert_eq!(value("wallet_q10").to_bits(), 0.1f64.to_bits());
    assert_eq!(value("wallet_median").to_bits(), 0.5f64.to_bits());
    assert_eq!(strings(&snapshot, "threshold"), ["at_or_above"; 3]);
}

/// Undated usage rows are in no window, but they are usage rows all the
/// same: `max_reject_ratio` weighs the dropped ones against every usage row
/// read (here 1 of 2, not 1 of the 1 row in the windows).
#[test]
fn dropped_undated_usage_counts_against_every_usage_row() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut accounts = df! { "account_id" => ["A"], "arr" => [1000.0], "customer_since" => [0i32] }
        .unwrap()
        .lazy()
        .with_column(col("customer_since").cast(DataType::Date))
        .collect()
        .unwrap();
    write_parquet(&mut accounts, &dir.join("accounts.parquet"));
    let mut usage = df! {
        "account_id" => ["A", "A"],
        "date" => [Some(20_080i32), None],
        "events" => [5i64, 6],
    }
    .unwrap()
    .lazy()
    .with_column(col("date").cast(DataType::Date))
    .collect()
    .unwrap();
    write_parquet(&mut usage, &dir.join("usage/u.parquet"));
    let p = crate::quality::pipeline(dir, "null_usage_date = \"drop\"\nmax_reject_ratio = 0.5");
    let o = run_q4(&p, &[]);
    expect_code(&o, 0);
    let m = manifest(&dir.join("out"), "2024-Q4").unwrap();
    assert_eq!(finding(&m, "null_usage_date"), Some(("usage".into(), 1, "drop".into())));
    let p = crate::quality::pipeline(dir, "null_usage_date = \"drop\"\nmax_reject_ratio = 0.4");
    let o = run(&[
        "validate",
        "--pipeline",
        &p,
        "--cycle",
        "2024-Q4",
        "--allow-incomplete-usage",
    ]);
    expect_code(&o, 3);
    assert!(stderr(&o).contains("1 of 2 usage rows"), "{}", stderr(&o));
}
