//! Data checks on dirty inputs: error, warn and drop policies, rejects, and
//! schema errors that name the dataset, file and column.

use std::path::Path;

use polars::prelude::*;

use crate::*;

/// Dirty accounts: a duplicate key, a null key, negative arr, nps 11, a
/// negative wallet; and usage of an unknown account and a negative metric.
fn dirty(dir: &Path) {
    let mut accounts = df! {
        "account_id" => [Some("A"), Some("B"), Some("B"), None, Some("C"), Some("D"), Some("E"), Some("F")],
        "arr" => [1000.0, 2000.0, 2500.0, 10.0, -5.0, 3000.0, 4000.0, 5000.0],
        "customer_since" => [0i32, 0, 0, 0, 0, 0, 0, 0],
        "wallet" => [Some(5000.0), None, None, None, None, Some(-1.0), None, None],
        "nps" => [Some(9i64), None, None, None, None, None, Some(11), None],
        "employees" => [Some(10i64), Some(20), Some(20), None, Some(5), Some(5), Some(5), Some(5)],
    }
    .unwrap()
    .lazy()
    .with_column(col("customer_since").cast(DataType::Date))
    .collect()
    .unwrap();
    write_parquet(&mut accounts, &dir.join("accounts.parquet"));
    let day = 20_080i32; // 2024-12-23, inside the 30-day window of 2024-Q4
    let mut usage = df! {
        "account_id" => ["A", "A", "ZZZ", "F"],
        "date" => [day, day - 1, day, day],
        "events" => [5i64, 6, 7, -3],
        "active_users" => [1i64, 1, 1, 1],
    }
    .unwrap()
    .lazy()
    .with_column(col("date").cast(DataType::Date))
    .collect()
    .unwrap();
    write_parquet(&mut usage, &dir.join("usage/u.parquet"));
}

pub fn pipeline(dir: &Path, quality: &str) -> String {
    let text = format!(
        r#"
name = "dirty"
[inputs.accounts]
uri = "{d}/accounts.parquet"
[inputs.usage]
uri = "{d}/usage/"
[output]
uri = "{d}/out"
[[aggregates]]
name = "events_30d"
column = "events"
agg = "sum"
window_days = 30
[[features]]
name = "share"
expr = "arr / wallet"
[[segmentations]]
name = "big"
default = "small"
rules = [{{ name = "big", label = "big", when = "arr >= 2000" }}]
[quality]
{quality}
"#,
        d = dir.display()
    );
    let path = dir.join("p.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn failed_checks_stop_the_run_with_exit_3_and_name_every_check() {
    let tmp = tempfile::tempdir().unwrap();
    dirty(tmp.path());
    let p = pipeline(tmp.path(), "");
    // validate --cycle runs the same checks and writes nothing.
    let v = run(&[
        "validate",
        "--pipeline",
        &p,
        "--cycle",
        "2024-Q4",
        "--allow-incomplete-usage",
    ]);
    expect_code(&v, 3);
    assert!(
        stderr(&v).contains("data check `negative_arr` failed"),
        "{}",
        stderr(&v)
    );
    assert!(!tmp.path().join("out").exists());
    let o = run(&[
        "run",
        "--pipeline",
        &p,
        "--cycle",
        "2024-Q4",
        "--allow-incomplete-usage",
    ]);
    expect_code(&o, 3);
    let err = stderr(&o);
    for check in [
        "null_account_id",
        "duplicate_account_id",
        "negative_arr",
        "negative_wallet",
        "nps_out_of_range",
        "negative_usage",
    ] {
        assert!(
            err.contains(&format!("data check `{check}` failed")),
            "{check} missing from:\n{err}"
        );
    }
    assert!(err.contains("(e.g. B, B)"), "{err}");
    assert!(!tmp.path().join("out").exists(), "nothing written");
}

#[test]
fn drop_writes_rejects_with_a_reason_and_counts_them() {
    let tmp = tempfile::tempdir().unwrap();
    dirty(tmp.path());
    let policies = [
        "null_account_id",
        "duplicate_account_id",
        "negative_arr",
        "negative_wallet",
        "nps_out_of_range",
        "negative_usage",
        "unknown_account_usage",
    ]
    .iter()
    .map(|c| format!("{c} = \"drop\"\n"))
    .collect::<String>();
    let p = pipeline(tmp.path(), &policies);
    let o = run(&[
        "run",
        "--pipeline",
        &p,
        "--cycle",
        "2024-Q4",
        "--allow-incomplete-usage",
    ]);
    expect_code(&o, 0);
    let out = tmp.path().join("out");
    let snapshot = read_parquet(&glob_partition(&out, "2024-Q4")[0]);
    let ids = strings(&snapshot, "account_id");
    assert_eq!(ids, ["A", "F"], "the accounts without a bad row stay");
    // F's one usage row is negative: dropped, so F has no events; A keeps its own.
    let ev = |i: usize| {
        snapshot
            .column("events_30d")
            .unwrap()
            .get(i)
            .unwrap()
            .try_extract::<i64>()
            .unwrap()
    };
    assert_eq!((ev(0), ev(1)), (11, 0));

    let m = manifest(&out, "2024-Q4").unwrap();
    let counts: std::collections::BTreeMap<String, u64> = m["quality"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["check"].as_str().unwrap().to_string(), f["rows"].as_u64().unwrap()))
        .collect();
    assert_eq!(counts["null_account_id"], 1);
    assert_eq!(counts["duplicate_account_id"], 2);
    assert_eq!(counts["negative_arr"], 1);
    assert_eq!(counts["negative_wallet"], 1);
    assert_eq!(counts["nps_out_of_range"], 1);
    assert_eq!(counts["negative_usage"], 1);
    assert_eq!(counts["unknown_account_usage"], 1);

    let accounts_rejects = tree(&out)
        .into_iter()
        .find(|f| f.contains("rejects/cycle=2024-Q4/dataset=accounts/"))
        .unwrap();
    let rejects = read_parquet(&out.join(&accounts_rejects));
    assert_eq!(rejects.height(), 6);
    let reasons: std::collections::BTreeSet<String> = strings(&rejects, "reason").into_iter().collect();
    assert_eq!(reasons.len(), 5, "{reasons:?}");
    let usage_rejects = tree(&out).into_iter().find(|f| f.contains("dataset=usage/")).unwrap();
    assert_eq!(read_parquet(&out.join(usage_rejects)).height(), 2);
    let listed: Vec<&str> = m["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["segments", "rejects", "rejects"]);
}

#[test]
fn warn_keeps_the_rows_and_max_reject_ratio_fails_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    dirty(tmp.path());
    let p = pipeline(
        tmp.path(),
        "null_account_id = \"drop\"\nduplicate_account_id = \"drop\"\nnegative_arr = \"warn\"\nnegative_wallet = \"warn\"\nnps_out_of_range = \"warn\"\nnegative_usage = \"warn\"\n",
    );
    let o = run(&[
        "run",
        "--pipeline",
        &p,
        "--cycle",
        "2024-Q4",
        "--allow-incomplete-usage",
    ]);
    expect_code(&o, 0);
    let out = tmp.path().join("out");
    let snapshot = read_parquet(&glob_partition(&out, "2024-Q4")[0]);
    let ids = strings(&snapshot, "account_id");
    assert_eq!(ids, ["A", "C", "D", "E", "F"]);
    assert!(stderr(&o).contains("negative_arr"), "a warning is logged");

    let p = pipeline(
        tmp.path(),
        "null_account_id = \"drop\"\nduplicate_account_id = \"drop\"\nnegative_arr = \"drop\"\nmax_reject_ratio = 0.2\nnegative_wallet = \"warn\"\nnps_out_of_range = \"warn\"\nnegative_usage = \"warn\"\n",
    );
    let o = run(&[
        "run",
        "--pipeline",
        &p,
        "--cycle",
        "2024-Q4",
        "--allow-incomplete-usage",
        "--output",
        tmp.path().join("out2").to_str().unwrap(),
    ]);
    expect_code(&o, 3);
    assert!(
        stderr(&o).contains("more than max_reject_ratio = 0.2"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn schema_errors_name_dataset_file_column_and_types() {
    let tmp = tempfile::tempdir().unwrap();
    dirty(tmp.path());
    // customer_since stored as text.
    let mut accounts = df! {
        "account_id" => ["A"], "arr" => [1.0], "customer_since" => ["2024-01-01"],
    }
    .unwrap();
    write_parquet(&mut accounts, &tmp.path().join("text_dates.parquet"));
    let p = pipeline(tmp.path(), "");
    let accounts_uri = tmp.path().join("text_dates.parquet");
    let o = run(&[
        "validate",
        "--pipeline",
        &p,
        "--accounts",
        accounts_uri.to_str().unwrap(),
    ]);
    expect_code(&o, 3);
    let err = stderr(&o);
    assert!(
        err.contains("accounts column `customer_since`") && err.contains("text_dates.parquet"),
        "{err}"
    );
    assert!(err.contains("expected a date, found str"), "{err}");

    // Not Parquet at all.
    std::fs::write(tmp.path().join("usage/broken.parquet"), b"not parquet").unwrap();
    let o = run(&[
        "run",
        "--pipeline",
        &p,
        "--cycle",
        "2024-Q4",
        "--allow-incomplete-usage",
    ]);
    expect_code(&o, 3);
    assert!(
        stderr(&o).contains("broken.parquet` cannot be read as Parquet"),
        "{}",
        stderr(&o)
    );

    // Nothing there.
    let o = run(&[
        "validate",
        "--pipeline",
        &p,
        "--usage",
        tmp.path().join("nowhere/").to_str().unwrap(),
    ]);
    expect_code(&o, 3);
    assert!(stderr(&o).contains("nowhere/` does not exist"), "{}", stderr(&o));
    assert!(!tmp.path().join("out").exists());
}

#[test]
fn a_corrupt_or_truncated_file_is_named_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let usage = tmp.path().join("usage");
    std::fs::create_dir_all(&usage).unwrap();
    let good = std::fs::read(root().join("fixtures/usage/part-00000.parquet")).unwrap();
    std::fs::write(usage.join("a.parquet"), &good).unwrap();
    // Damaged data pages behind an intact footer.
    let mut damaged = good.clone();
    damaged[2000..60000].fill(0x5a);
    std::fs::write(usage.join("b.parquet"), &damaged).unwrap();
    let out = tmp.path().join("out");
    let run_on_usage = || {
        run(&[
            "run",
            "--cycle",
            "2026-Q3",
            "--usage",
            usage.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ])
    };
    let o = run_on_usage();
    expect_code(&o, 3);
    assert!(
        stderr(&o).contains("usage file") && stderr(&o).contains("b.parquet` cannot be read"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists(), "nothing written");

    // Cut short: no footer at all.
    std::fs::remove_file(usage.join("b.parquet")).unwrap();
    std::fs::write(usage.join("c.parquet"), &good[..good.len() / 2]).unwrap();
    let o = run_on_usage();
    expect_code(&o, 3);
    assert!(
        stderr(&o).contains("c.parquet` cannot be read as Parquet"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists(), "nothing written");
}

#[test]
fn empty_accounts_and_usage_outside_every_window_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let mut empty = read_parquet(&root().join("fixtures/accounts.parquet")).head(Some(0));
    write_parquet(&mut empty, &tmp.path().join("empty.parquet"));
    let out = tmp.path().join("out");
    let o = run(&[
        "run",
        "--cycle",
        "2026-Q3",
        "--accounts",
        tmp.path().join("empty.parquet").to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    expect_code(&o, 3);
    assert!(stderr(&o).contains("has no rows"), "{}", stderr(&o));

    // The fixtures' usage starts in October 2024: before it, no window is
    // covered, and the error names the window and the first usage date.
    let o = run(&["run", "--cycle", "2023-Q4", "--output", out.to_str().unwrap()]);
    expect_code(&o, 3);
    let err = stderr(&o);
    assert!(
        err.contains("starts on 2024-09-30")
            && err.contains("as_of 2023-12-31")
            && err.contains("`events_per_day_prior_90d`"),
        "{err}"
    );
    // With the opt-out, the run gets as far as the windows themselves.
    let o = run(&[
        "run",
        "--cycle",
        "2023-Q4",
        "--output",
        out.to_str().unwrap(),
        "--allow-incomplete-usage",
    ]);
    expect_code(&o, 3);
    let err = stderr(&o);
    assert!(
        err.contains("no rows in any aggregate window") && err.contains("as_of 2023-12-31"),
        "{err}"
    );
    assert!(!out.exists(), "nothing written");
}
