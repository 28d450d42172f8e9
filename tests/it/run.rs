//! `quadrant run`, `validate`, `explain`, `cycles` and `generate` on the
//! bundled fixtures.

use polars::prelude::*;

use crate::*;

fn run_default(out: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["run", "--output", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn run_without_a_cycle_commits_the_latest_cycle_the_fixtures_cover() {
    let tmp = tempfile::tempdir().unwrap();
    let o = run_default(tmp.path(), &[]);
    expect_code(&o, 0);
    let text = stdout(&o);
    assert!(text.contains("cycle 2026-Q3 (as of 2026-09-30)"), "{text}");
    for label in [
        "Grow",
        "Protect",
        "Re-evaluate",
        "Manage",
        "Invest",
        "Enterprise",
        "High touch",
        "Strategic",
    ] {
        assert!(text.contains(label), "label {label} missing from\n{text}");
    }
    assert!(manifest(tmp.path(), "2026-Q3").is_some());
}

#[test]
fn snapshot_matches_the_golden_file_in_full() {
    let tmp = tempfile::tempdir().unwrap();
    expect_code(&run_default(tmp.path(), &["--cycle", "2026-Q3"]), 0);
    let files = glob_partition(tmp.path(), "2026-Q3");
    assert_eq!(files.len(), 1);
    let frame = read_parquet(&files[0]).drop("run_id").unwrap();
    let got = csv(&frame);
    let golden = root().join("tests/golden/default-2026-Q3.csv");
    if bless() {
        std::fs::write(&golden, &got).unwrap();
    }
    let want = std::fs::read_to_string(&golden).expect("golden file (QUADRANT_BLESS=1 writes it)");
    assert!(
        got == want,
        "snapshot differs from {}; rerun with QUADRANT_BLESS=1 after checking the change",
        golden.display()
    );
}

#[test]
fn snapshot_columns_types_and_order() {
    let tmp = tempfile::tempdir().unwrap();
    expect_code(&run_default(tmp.path(), &["--cycle", "2026-Q3"]), 0);
    let frame = read_parquet(&glob_partition(tmp.path(), "2026-Q3")[0]);
    let names: Vec<&str> = frame.get_column_names().iter().map(|n| n.as_str()).collect();
    assert_eq!(
        &names[..7],
        [
            "as_of",
            "account_id",
            "arr",
            "account_name",
            "industry",
            "region",
            "plan"
        ]
    );
    assert_eq!(&names[names.len() - 2..], ["run_id", "pipeline_hash"]);
    assert!(!names.contains(&"cycle"), "the partition column is in the path only");
    for seg in [
        "wallet_share_matrix",
        "growth_risk",
        "size_contract",
        "touch_tier",
        "strategic_accounts",
    ] {
        let i = names.iter().position(|n| *n == seg).unwrap();
        assert_eq!(names[i + 1], format!("{seg}_rule"));
        assert_eq!(frame.column(seg).unwrap().dtype(), &DataType::String);
        assert_eq!(frame.column(seg).unwrap().null_count(), 0, "every account gets a label");
    }
    // Every account column an expression uses, every aggregate and feature.
    for c in [
        "customer_since",
        "wallet",
        "employees",
        "nps",
        "seats",
        "events_per_day_90d",
        "wallet_share",
        "risk_score",
    ] {
        assert!(names.contains(&c), "{c} missing");
    }
    assert_eq!(frame.column("as_of").unwrap().dtype(), &DataType::Date);
    assert_eq!(frame.column("customer_since").unwrap().dtype(), &DataType::Date);
    assert_eq!(frame.column("arr").unwrap().dtype(), &DataType::Float64);
    let sorted = strings(&frame, "account_id");
    let mut expected = sorted.clone();
    expected.sort();
    assert_eq!(sorted, expected, "sorted by account_id");
}

#[test]
fn manifest_records_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    expect_code(&run_default(tmp.path(), &["--cycle", "2026-Q3"]), 0);
    let m = manifest(tmp.path(), "2026-Q3").unwrap();
    assert_eq!(m["format_version"], 2);
    assert_eq!(m["cycle"], "2026-Q3");
    assert_eq!(m["as_of"], "2026-09-30");
    assert_eq!(m["pipeline"]["name"], "default");
    assert_eq!(m["pipeline"]["hash"].as_str().unwrap().len(), 64);
    assert!(m["pipeline"]["source"].as_str().unwrap().contains("[[segmentations]]"));
    assert!(m["replaced"].is_null());
    let rows = m["rows"].as_u64().unwrap();
    let frame = read_parquet(&glob_partition(tmp.path(), "2026-Q3")[0]);
    assert_eq!(rows, frame.height() as u64);
    let arr_total: f64 = frame.column("arr").unwrap().f64().unwrap().sum().unwrap();
    for seg in m["segmentations"].as_array().unwrap() {
        let labels = seg["labels"].as_array().unwrap();
        let accounts: u64 = labels.iter().map(|l| l["accounts"].as_u64().unwrap()).sum();
        let arr: f64 = labels.iter().map(|l| l["arr"].as_f64().unwrap()).sum();
        assert_eq!(accounts, rows, "{}", seg["name"]);
        assert!((arr - arr_total).abs() < 1e-6 * arr_total, "{}", seg["name"]);
    }
    let outputs = m["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 1);
    assert_eq!(outputs[0]["rows"].as_u64(), Some(rows));
    let path = tmp.path().join(outputs[0]["path"].as_str().unwrap());
    assert_eq!(
        outputs[0]["bytes"].as_u64(),
        Some(std::fs::metadata(&path).unwrap().len())
    );
    // The commit record is in the data file's footer; the manifest file is a copy.
    let mut reader = ParquetReader::new(std::fs::File::open(&path).unwrap());
    let footer = reader.get_metadata().unwrap().key_value_metadata().clone().unwrap();
    let embedded = footer.iter().find(|kv| kv.key == "quadrant.manifest").unwrap();
    let mut embedded: serde_json::Value = serde_json::from_str(embedded.value.as_deref().unwrap()).unwrap();
    embedded["outputs"][0]["bytes"] = outputs[0]["bytes"].clone();
    assert_eq!(embedded, m, "the manifest file is a copy of the footer's");
    let accounts_files = m["inputs"]["accounts"]["files"].as_array().unwrap();
    assert_eq!(accounts_files.len(), 1);
    assert!(
        accounts_files[0]["uri"]
            .as_str()
            .unwrap()
            .ends_with("fixtures/accounts.parquet")
    );
    assert!(accounts_files[0]["size"].as_u64().unwrap() > 0);
    assert!(m["inputs"]["usage"]["rows"].as_u64().unwrap() > 0);
    assert!(m["started_at"].as_str().unwrap() <= m["finished_at"].as_str().unwrap());
}

/// Guarantee 1: after a run, the glob of the partition is exactly that run.
#[test]
fn a_reader_that_globs_the_partition_sees_exactly_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    expect_code(&run_default(tmp.path(), &["--cycle", "2026-Q3"]), 0);
    let m = manifest(tmp.path(), "2026-Q3").unwrap();
    let rows = glob_rows(tmp.path(), "2026-Q3").unwrap();
    assert_eq!(rows.height() as u64, m["rows"].as_u64().unwrap());
    let run_ids = rows
        .column("run_id")
        .unwrap()
        .as_materialized_series()
        .n_unique()
        .unwrap();
    assert_eq!(run_ids, 1);
    assert_eq!(
        rows.column("run_id").unwrap().str().unwrap().get(0),
        m["run_id"].as_str()
    );
    // After a replace too: the old run's rows are gone.
    expect_code(&run_default(tmp.path(), &["--cycle", "2026-Q3", "--replace"]), 0);
    let m2 = manifest(tmp.path(), "2026-Q3").unwrap();
    let rows = glob_rows(tmp.path(), "2026-Q3").unwrap();
    assert_eq!(rows.height() as u64, m2["rows"].as_u64().unwrap());
    assert_eq!(
        rows.column("run_id").unwrap().str().unwrap().get(0),
        m2["run_id"].as_str()
    );
    assert_eq!(glob_partition(tmp.path(), "2026-Q3").len(), 1);
}

/// Guarantee 3: a committed cycle is never overwritten without --replace.
#[test]
fn a_committed_cycle_is_kept_unless_replace_is_given() {
    let tmp = tempfile::tempdir().unwrap();
    expect_code(&run_default(tmp.path(), &["--cycle", "2026-Q3"]), 0);
    let before = tree(tmp.path());
    let bytes: Vec<Vec<u8>> = before
        .iter()
        .map(|f| std::fs::read(tmp.path().join(f)).unwrap())
        .collect();
    let first = manifest(tmp.path(), "2026-Q3").unwrap();

    let again = run_default(tmp.path(), &["--cycle", "2026-Q3"]);
    expect_code(&again, 4);
    assert!(
        stderr(&again).contains("cycle 2026-Q3 is already committed"),
        "{}",
        stderr(&again)
    );
    assert!(stderr(&again).contains("--replace"));
    assert_eq!(tree(tmp.path()), before);
    for (f, b) in before.iter().zip(&bytes) {
        assert_eq!(&std::fs::read(tmp.path().join(f)).unwrap(), b, "{f} changed");
    }

    let replaced = run_default(tmp.path(), &["--cycle", "2026-Q3", "--replace"]);
    expect_code(&replaced, 0);
    let second = manifest(tmp.path(), "2026-Q3").unwrap();
    assert_ne!(first["run_id"], second["run_id"]);
    assert_eq!(second["replaced"]["run_id"], first["run_id"]);
    assert_eq!(second["replaced"]["finished_at"], first["finished_at"]);
    assert!(stdout(&replaced).contains(&format!("replaced run {}", first["run_id"].as_str().unwrap())));
}

/// Guarantee 5: same inputs and pipeline, same rows and values.
#[test]
fn the_same_inputs_give_the_same_snapshot() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    expect_code(&run_default(a.path(), &["--cycle", "2026-Q3"]), 0);
    expect_code(&run_default(b.path(), &["--cycle", "2026-Q3"]), 0);
    let fa = glob_rows(a.path(), "2026-Q3").unwrap().drop("run_id").unwrap();
    let fb = glob_rows(b.path(), "2026-Q3").unwrap().drop("run_id").unwrap();
    assert!(fa.equals_missing(&fb));
    assert_eq!(csv(&fa), csv(&fb));
}

/// The default pipeline with another cadence, in its own output root.
fn pipeline_of_cadence(dir: &std::path::Path, cadence: &str) -> String {
    let text = std::fs::read_to_string(root().join("pipelines/default.toml")).unwrap();
    assert!(text.contains("cadence = \"quarter\""));
    let path = dir.join(format!("{cadence}.toml"));
    std::fs::write(
        &path,
        text.replace("cadence = \"quarter\"", &format!("cadence = \"{cadence}\"")),
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn cycles_of_every_cadence_and_as_of_previews() {
    let tmp = tempfile::tempdir().unwrap();
    for (cadence, cycle, as_of) in [
        ("month", "2026-06", "2026-06-30"),
        ("half", "2026-H1", "2026-06-30"),
        ("year", "2025", "2025-12-31"),
        ("quarter", "2026-Q2", "2026-06-30"),
    ] {
        let pipeline = pipeline_of_cadence(tmp.path(), cadence);
        let out = tmp.path().join(cadence);
        let o = run(&[
            "run",
            "--pipeline",
            &pipeline,
            "--output",
            out.to_str().unwrap(),
            "--cycle",
            cycle,
            "--json",
        ]);
        expect_code(&o, 0);
        let summary: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(summary["cycle"], cycle);
        assert_eq!(summary["as_of"], as_of);
    }
    // A month and a quarter with the same as_of give the same labels (their
    // `_since` columns name each its own cycle).
    let without_since = |f: DataFrame| {
        let since: Vec<String> = f
            .get_column_names()
            .iter()
            .filter(|n| n.ends_with("_since") && n.as_str() != "customer_since")
            .map(|n| n.to_string())
            .collect();
        assert_eq!(since.len(), 6);
        f.drop_many(since).drop_many(["run_id", "pipeline_hash"])
    };
    let month = without_since(read_parquet(&glob_partition(&tmp.path().join("month"), "2026-06")[0]));
    let quarter = without_since(read_parquet(&glob_partition(&tmp.path().join("quarter"), "2026-Q2")[0]));
    assert!(month.equals_missing(&quarter));

    // A cycle of another cadence than the pipeline's is refused, naming it.
    let out = tmp.path().join("quarter");
    for other in ["2026-11", "2026-H2", "2026"] {
        let o = run_default(&out, &["--cycle", other]);
        expect_code(&o, 2);
        assert!(
            stderr(&o).contains(&format!("cycle {other} is a")) && stderr(&o).contains("runs every quarter"),
            "{}",
            stderr(&o)
        );
    }
    let o = run_default(&out, &["--cycles", "2026-05..2026-07"]);
    expect_code(&o, 2);

    // --as-of inside the period previews it: printed, written with --to,
    // nothing committed; the end-of-period run then commits.
    let before = tree(&out);
    let rows = tmp.path().join("preview.parquet");
    let o = run_default(
        &out,
        &[
            "--cycle",
            "2026-Q3",
            "--as-of",
            "2026-08-15",
            "--to",
            rows.to_str().unwrap(),
            "--json",
        ],
    );
    expect_code(&o, 0);
    let summary: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(summary["as_of"], "2026-08-15");
    assert_eq!(summary["preview"], true);
    assert_eq!(tree(&out), before, "a preview commits nothing");
    let preview = read_parquet(&rows);
    assert_eq!(preview.height() as u64, summary["rows"].as_u64().unwrap());
    assert_eq!(
        preview.column("as_of").unwrap().get(0).unwrap().to_string(),
        "2026-08-15"
    );
    let o = run_default(&out, &["--cycle", "2026-Q3", "--as-of", "2026-08-15"]);
    expect_code(&o, 0);
    assert!(stdout(&o).contains("nothing committed"), "{}", stdout(&o));
    expect_code(&run_default(&out, &["--cycle", "2026-Q3"]), 0);
    assert_eq!(manifest(&out, "2026-Q3").unwrap()["as_of"], "2026-09-30");
    // Outside the period: refused.
    for (cycle, date) in [("2026-Q4", "2026-09-30"), ("2026-Q3", "2026-10-01")] {
        let o = run_default(&out, &["--cycle", cycle, "--as-of", date]);
        expect_code(&o, 2);
        assert!(stderr(&o).contains("lies outside cycle"), "{}", stderr(&o));
    }
    // --to without a preview is a usage error.
    expect_code(
        &run_default(&out, &["--cycle", "2026-Q3", "--to", rows.to_str().unwrap()]),
        2,
    );
}

#[test]
fn bad_cycle_ids_and_flags_are_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    for bad in ["2026-Q5", "../2026-Q1", "2026/Q1", "q4"] {
        let o = run_default(tmp.path(), &["--cycle", bad]);
        expect_code(&o, 2);
        assert!(stderr(&o).contains("is not a cycle id"), "{}", stderr(&o));
    }
    expect_code(
        &run_default(tmp.path(), &["--cycle", "2026-Q3", "--as-of", "30.09.2026"]),
        2,
    );
    expect_code(&run(&["run", "--no-such-flag"]), 2);
    assert!(tree(tmp.path()).is_empty(), "nothing written: {:?}", tree(tmp.path()));
}

#[test]
fn a_range_of_cycles_is_backfilled_and_reruns_skip_committed_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let o = run_default(tmp.path(), &["--cycles", "2025-Q4..2026-Q2", "--json"]);
    expect_code(&o, 0);
    let summary: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(summary["runs"].as_array().unwrap().len(), 3);
    for c in ["2025-Q4", "2026-Q1", "2026-Q2"] {
        assert!(manifest(tmp.path(), c).is_some(), "{c}");
    }
    let again = run_default(tmp.path(), &["--cycles", "2025-Q4..2026-Q3", "--json"]);
    expect_code(&again, 0);
    let summary: serde_json::Value = serde_json::from_str(&stdout(&again)).unwrap();
    let skipped: Vec<bool> = summary["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["skipped"].as_bool().unwrap())
        .collect();
    assert_eq!(skipped, [true, true, true, false]);
}

#[test]
fn cycles_lists_committed_snapshots() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().to_str().unwrap();
    let empty = run(&["cycles", "--output", out]);
    expect_code(&empty, 0);
    assert!(stdout(&empty).contains("no committed snapshots"));
    expect_code(&run_default(tmp.path(), &["--cycle", "2026-Q2"]), 0);
    expect_code(&run_default(tmp.path(), &["--cycle", "2026-Q3"]), 0);
    // An uncommitted leftover is not a cycle.
    std::fs::create_dir_all(tmp.path().join("segments/cycle=2026-Q4")).unwrap();
    std::fs::write(tmp.path().join("segments/cycle=2026-Q4/part-x-0.parquet"), b"junk").unwrap();
    let o = run(&["cycles", "--output", out, "--json"]);
    expect_code(&o, 0);
    let list: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let cycles: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["cycle"].as_str().unwrap())
        .collect();
    assert_eq!(cycles, ["2026-Q2", "2026-Q3"]);
    let text = stdout(&run(&["cycles", "--output", out]));
    assert!(text.contains("2026-Q3") && text.contains("run_id"), "{text}");
}

#[test]
fn explain_shows_the_rule_that_fired_and_why_earlier_ones_did_not() {
    let tmp = tempfile::tempdir().unwrap();
    expect_code(&run_default(tmp.path(), &["--cycle", "2026-Q3"]), 0);
    let frame = read_parquet(&glob_partition(tmp.path(), "2026-Q3")[0]);
    // An account that fell through to the default of the growth x risk matrix.
    let defaults = frame
        .lazy()
        .filter(col("growth_risk_rule").eq(lit("default")))
        .collect()
        .unwrap();
    let id = defaults
        .column("account_id")
        .unwrap()
        .str()
        .unwrap()
        .get(0)
        .unwrap()
        .to_string();
    let out = tmp.path().to_str().unwrap();
    let o = run(&[
        "explain",
        "--output",
        out,
        "--cycle",
        "2026-Q3",
        "--account",
        &id,
        "--json",
    ]);
    expect_code(&o, 0);
    let e: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(e["account_id"], id.as_str());
    let seg = e["segmentations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["segmentation"] == "growth_risk")
        .unwrap();
    assert_eq!(seg["rule"], "default");
    assert_eq!(seg["label"], "Sustain");
    let rules = seg["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 3, "every rule was tried");
    for r in rules {
        assert_ne!(r["matched"], true);
        let conditions = r["conditions"].as_array().unwrap();
        assert!(!conditions.is_empty());
        assert!(conditions[0]["condition"].is_string());
    }
    assert!(e["values"]["risk_score"].is_string());

    let text = stdout(&run(&[
        "explain",
        "--output",
        out,
        "--cycle",
        "2026-Q3",
        "--account",
        &id,
    ]));
    assert!(text.contains("no rule matched -> default Sustain"), "{text}");
    assert!(text.contains("risk_score >= 0.4 = false"), "{text}");

    let missing = run(&["explain", "--output", out, "--cycle", "2026-Q3", "--account", "nobody"]);
    expect_code(&missing, 2);
    assert!(stderr(&missing).contains("account `nobody` is not in cycle 2026-Q3"));
}

#[test]
fn explain_computes_an_uncommitted_cycle_from_the_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().to_str().unwrap();
    let o = run(&[
        "explain",
        "--output",
        out,
        "--cycle",
        "2026-Q3",
        "--account",
        "A0000001",
    ]);
    expect_code(&o, 0);
    assert!(
        stdout(&o).contains("not committed: computed from the inputs"),
        "{}",
        stdout(&o)
    );
    assert!(tree(tmp.path()).is_empty());
}

#[test]
fn validate_checks_config_and_schemas_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = run(&["validate", "--output", out.to_str().unwrap()]);
    expect_code(&o, 0);
    assert!(stdout(&o).contains("pipeline `default`"));
    assert!(
        stdout(&o).contains("accounts `fixtures/accounts.parquet`: 1 file(s)"),
        "{}",
        stdout(&o)
    );
    assert!(!out.exists());
    let o = run(&["validate", "--output", out.to_str().unwrap(), "--cycle", "2026-Q3"]);
    expect_code(&o, 0);
    assert!(
        stdout(&o).contains("cycle 2026-Q3: 186 accounts would be segmented"),
        "{}",
        stdout(&o)
    );
    assert!(!out.exists());

    let bad = tmp.path().join("bad.toml");
    let text = std::fs::read_to_string(root().join("pipelines/default.toml"))
        .unwrap()
        .replace("arr / wallet_estimate", "arr / walet_estimate")
        .replace("agg = \"mean\"", "agg = \"average\"");
    std::fs::write(&bad, text).unwrap();
    let o = run(&["validate", "--pipeline", bad.to_str().unwrap()]);
    expect_code(&o, 2);
    let err = stderr(&o);
    assert!(err.contains("2 problems"), "{err}");
    assert!(err.contains("unknown agg `average`"), "{err}");
    assert!(
        err.contains("unknown name `walet_estimate`") && err.contains("did you mean `wallet_estimate`"),
        "{err}"
    );
    assert!(err.contains("bad.toml:"), "{err}");

    let missing_column = run(&["validate", "--accounts", "fixtures/usage/"]);
    expect_code(&missing_column, 3);
    let err = stderr(&missing_column);
    assert!(
        err.contains("accounts column `arr` is missing") && err.contains("columns in the data: account_id, date"),
        "{err}"
    );
}

#[test]
fn input_and_output_overrides_compose() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let o = run(&[
        "generate",
        "--out",
        data.to_str().unwrap(),
        "--accounts",
        "40",
        "--days",
        "200",
        "--seed",
        "3",
    ]);
    expect_code(&o, 0);
    let out = tmp.path().join("out");
    let accounts = data.join("accounts.parquet");
    let usage = format!("{}/usage/*.parquet", data.display());
    let o = run(&[
        "run",
        "--cycle",
        "2026-Q3",
        "--accounts",
        accounts.to_str().unwrap(),
        "--usage",
        &usage,
        "--output",
        out.to_str().unwrap(),
    ]);
    expect_code(&o, 0);
    let m = manifest(&out, "2026-Q3").unwrap();
    assert!(
        m["inputs"]["accounts"]["uri"]
            .as_str()
            .unwrap()
            .ends_with("data/accounts.parquet")
    );
    assert!(m["rows"].as_u64().unwrap() <= 40);
}

#[test]
fn generate_is_deterministic_by_seed() {
    let tmp = tempfile::tempdir().unwrap();
    let gen_into = |dir: &str, seed: &str| {
        let path = tmp.path().join(dir);
        expect_code(
            &run(&[
                "generate",
                "--out",
                path.to_str().unwrap(),
                "--accounts",
                "50",
                "--days",
                "120",
                "--seed",
                seed,
                "--history",
            ]),
            0,
        );
        (
            std::fs::read(path.join("accounts.parquet")).unwrap(),
            std::fs::read(path.join("usage/part-00000.parquet")).unwrap(),
        )
    };
    let a = gen_into("a", "9");
    let b = gen_into("b", "9");
    let c = gen_into("c", "10");
    assert!(a == b, "same seed, same bytes");
    assert!(a.0 != c.0 && a.1 != c.1, "another seed, other data");
    let accounts = read_parquet(&tmp.path().join("a/accounts.parquet"));
    for column in [
        "account_id",
        "snapshot_date",
        "arr",
        "customer_since",
        "churned_on",
        "wallet",
        "employees",
        "nps",
    ] {
        assert!(accounts.column(column).is_ok(), "{column}");
    }
    assert!(
        accounts.column("wallet").unwrap().null_count() > 0,
        "some wallets are missing"
    );
    assert!(
        accounts.column("churned_on").unwrap().null_count() < accounts.height(),
        "some accounts churned"
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    let tmp = tempfile::tempdir().unwrap();
    let o = run(&[
        "run",
        "--output",
        tmp.path().to_str().unwrap(),
        "--cycle",
        "2026-Q3",
        "--log-format",
        "json",
    ]);
    expect_code(&o, 0);
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines.len() >= 4, "{err}");
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["level"].is_string() && v["message"].is_string(), "{line}");
    }
    // Every stage's time, at info level, with the run's cycle and id.
    for stage in [
        "scan_accounts",
        "aggregate_usage",
        "features_and_rules",
        "write_and_commit",
    ] {
        let line = lines
            .iter()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|v| v["stage"] == stage)
            .unwrap_or_else(|| panic!("no log line for stage {stage}:\n{err}"));
        assert_eq!(line["level"], "INFO", "{line}");
        let seconds: f64 = line["seconds"].as_str().unwrap().parse().unwrap();
        assert!(seconds >= 0.0, "{line}");
        assert!(line.to_string().contains("\"cycle\":\"2026-Q3\""), "{line}");
    }
    assert!(stdout(&o).contains("cycle 2026-Q3"), "results stay on stdout");
}

#[test]
fn progress_shows_on_a_terminal_and_never_under_an_orchestrator() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    // `script` gives the run a pseudo-terminal, as a person's shell would.
    let command = format!(
        "{} run --cycle 2026-Q3 --output {}",
        env!("CARGO_BIN_EXE_quadrant"),
        out.display()
    );
    let o = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(root())
        .output()
        .expect("script(1) from util-linux");
    expect_code(&o, 0);
    let shown = stdout(&o);
    for stage in [
        "scan_accounts",
        "aggregate_usage",
        "features_and_rules",
        "write_and_commit",
    ] {
        assert!(shown.contains(&format!("ok {stage}")), "{stage} missing from:\n{shown}");
    }
    assert!(shown.contains("186 accounts segmented"), "{shown}");

    // Without a terminal: no progress, plain log lines.
    let o = run(&["run", "--cycle", "2026-Q2", "--output", out.to_str().unwrap()]);
    expect_code(&o, 0);
    assert!(
        !stderr(&o).contains('\r') && !stderr(&o).contains("ok scan_accounts"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("stage done stage=\"aggregate_usage\""),
        "{}",
        stderr(&o)
    );
    // Each field once: the cycle comes from the span, not again from the event.
    for line in stderr(&o).lines() {
        assert!(line.matches("cycle=").count() <= 1, "{line}");
        assert!(line.matches("stage=").count() <= 1, "{line}");
    }
}

/// SPEC §10: peak memory is bounded by the account base, not by the number
/// of usage rows. The same 5,000 accounts with 180 days of usage and with ten
/// years of it (18 million rows, 650 MB if they were held in memory): the
/// peak the run logs may not grow by more than a fraction of that.
#[test]
fn peak_memory_does_not_grow_with_the_usage_history() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let o = run(&[
        "generate",
        "--out",
        data.to_str().unwrap(),
        "--accounts",
        "5000",
        "--days",
        "1",
    ]);
    expect_code(&o, 0);
    let accounts = data.join("accounts.parquet");
    let peak_for = |days: u32| -> u64 {
        let usage = tmp.path().join(format!("usage-{days}.parquet"));
        // One row per account and day, through 2026-09-30, written by DuckDB.
        let sql = format!(
            "COPY (SELECT a.account_id, DATE '2026-09-30' - d::INTEGER AS date, \
             ((hash(a.account_id, d) % 50) + 1)::BIGINT AS events, \
             ((hash(d, a.account_id) % 9) + 1)::BIGINT AS active_users \
             FROM read_parquet('{}') a, range({days}) r(d)) TO '{}' (FORMAT parquet)",
            accounts.display(),
            usage.display()
        );
        let o = std::process::Command::new("python3")
            .args(["-c", "import duckdb, sys; duckdb.sql(sys.argv[1])", &sql])
            .output()
            .expect("python3 runs; scripts/test installs duckdb");
        assert!(o.status.success(), "{}", stderr(&o));
        let out = tmp.path().join(format!("out-{days}"));
        let o = run(&[
            "run",
            "--cycle",
            "2026-Q3",
            "--accounts",
            accounts.to_str().unwrap(),
            "--usage",
            usage.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--log-format",
            "json",
        ]);
        expect_code(&o, 0);
        stderr(&o)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["peak_rss_mib"].as_u64())
            .max()
            .expect("stage lines carry peak_rss_mib on Linux")
    };
    let short = peak_for(180);
    let long = peak_for(3650);
    assert!(
        long < short + 150,
        "peak RSS {long} MiB with ten years of usage against {short} MiB with 180 days"
    );
}

/// Runs the cycles `cycles` names on polars' pool of `threads` threads, on
/// the accounts of book `data` and the usage at `usage`, into `out`; it must
/// commit.
fn run_at_threads(threads: &str, cycles: &[&str], data: &Path, usage: &Path, out: &Path) {
    let o = quadrant()
        .env("POLARS_MAX_THREADS", threads)
        .arg("run")
        .args(cycles)
        .arg("--accounts")
        .arg(data.join("accounts.parquet"))
        .arg("--usage")
        .arg(usage)
        .arg("--output")
        .arg(out)
        .output()
        .unwrap();
    expect_code(&o, 0);
}

/// The order of the accounts' rows does not change the snapshot: a book
/// whose accounts come sorted by id (read as they are) commits the same rows,
/// value for value (run_id aside), as the same rows in reverse order (sorted
/// first), with one row per account and with several dated rows each.
#[test]
fn the_snapshot_does_not_depend_on_the_order_of_the_accounts_rows() {
    let tmp = tempfile::tempdir().unwrap();
    for (book, more) in [
        ("one-row", &["--seed", "5"][..]),
        ("history", &["--seed", "5", "--history"]),
    ] {
        let data = tmp.path().join(book);
        generate(&data, "1500", more);
        let sorted = read_parquet(&data.join("accounts.parquet"));
        let ids = sorted.column("account_id").unwrap().as_materialized_series();
        assert!(ids.is_sorted(SortOptions::default()).unwrap(), "{book}");
        assert_eq!(ids.n_unique().unwrap() == ids.len(), book == "one-row", "{book}");
        let reversed = tmp.path().join(format!("{book}-reversed"));
        write_parquet(&mut sorted.reverse(), &reversed.join("accounts.parquet"));
        let committed = |accounts: &Path, out: &str| {
            let out = tmp.path().join(format!("{book}-{out}"));
            let cycles = ["--cycles", "2026-Q2..2026-Q3"];
            run_at_threads("2", &cycles, accounts, &data.join("usage"), &out);
            ["2026-Q2", "2026-Q3"].map(|c| glob_rows(&out, c).unwrap().drop("run_id").unwrap())
        };
        let (a, b) = (committed(&data, "out"), committed(&reversed, "out-reversed"));
        assert!(a[1].height() >= 1000, "{book}: {}", a[1].height());
        for (a, b) in a.iter().zip(&b) {
            assert!(a.equals_missing(b), "{book}: {a:?}\n{b:?}");
        }
    }
}

/// The snapshot does not depend on the number of threads polars runs on:
/// the same rows in the same order, value for value (run_id aside), at 1, 2
/// and 3 threads, for a backfill of two quarters on a generated book large
/// enough to be split across threads.
#[test]
fn the_snapshot_is_the_same_at_one_two_and_three_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    generate(&data, "3000", &["--seed", "7", "--history"]);
    let committed = |threads: &str| {
        let out = tmp.path().join(format!("out-{threads}"));
        run_at_threads(
            threads,
            &["--cycles", "2026-Q2..2026-Q3"],
            &data,
            &data.join("usage"),
            &out,
        );
        ["2026-Q2", "2026-Q3"].map(|c| glob_rows(&out, c).unwrap().drop("run_id").unwrap())
    };
    let one = committed("1");
    assert!(one[1].height() >= 2500, "{}", one[1].height());
    for threads in ["2", "3"] {
        let other = committed(threads);
        for (a, b) in one.iter().zip(&other) {
            assert!(a.equals_missing(b), "{threads} threads: {a:?}\n{b:?}");
        }
    }
}

/// Float usage sums add up in one order at any thread count: every
/// account's rows spread over many row groups (usage ordered by date, small
/// row groups), `events` as floats of many magnitudes, so adding the row
/// groups' sums in another order changes the last bits.
#[test]
fn float_usage_sums_are_the_same_bits_at_one_two_and_three_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    generate(&data, "300", &["--seed", "11"]);
    let usage = data.join("usage");
    let mut files: Vec<_> = std::fs::read_dir(&usage).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let all = files
        .iter()
        .map(|f| read_parquet(f))
        .reduce(|a, b| a.vstack(&b).unwrap())
        .unwrap();
    // 1e-3 to 1e9 times a row's events, by its position.
    let factors: Vec<f64> = (0..all.height()).map(|i| 10f64.powi((i % 13) as i32 - 3)).collect();
    let events = all.column("events").unwrap().cast(&DataType::Float64).unwrap();
    let events = (events.as_materialized_series() * &Series::new("events".into(), factors)).unwrap();
    let mut all = all;
    all.replace("events", events.into_column()).unwrap();
    let mut rows = all
        .sort(["date"], SortMultipleOptions::default().with_maintain_order(true))
        .unwrap();
    std::fs::remove_dir_all(&usage).unwrap();
    std::fs::create_dir(&usage).unwrap();
    ParquetWriter::new(std::fs::File::create(usage.join("part-0.parquet")).unwrap())
        .with_row_group_size(Some(500))
        .finish(&mut rows)
        .unwrap();
    let committed = |threads: &str| {
        let out = tmp.path().join(format!("out-{threads}"));
        run_at_threads(threads, &["--cycle", "2026-Q3"], &data, &usage, &out);
        let rows = glob_rows(&out, "2026-Q3").unwrap();
        rows.column("events_per_day_90d").unwrap().f64().unwrap().clone()
    };
    let one = committed("1");
    assert!(one.len() >= 250, "{}", one.len());
    for threads in ["2", "3"] {
        let other = committed(threads);
        let differ = one
            .iter()
            .zip(other.iter())
            .filter(|(a, b)| a.map(f64::to_bits) != b.map(f64::to_bits))
            .count();
        assert_eq!(
            differ, 0,
            "{threads} threads: {differ} accounts' sums differ in their bits"
        );
    }
}
