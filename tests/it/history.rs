//! Segments over time: `prev(...)`, `<segmentation>_since` and
//! `cycles_since` on a small book computed by hand, backfill order, the
//! refusal to leave later cycles stale and `--cascade`, and the what-if
//! `diff` against an independent computation.

use std::path::Path;

use polars::prelude::*;
use serde_json::Value;

use crate::*;

const CYCLES: [&str; 4] = ["2025-Q1", "2025-Q2", "2025-Q3", "2025-Q4"];

/// Five accounts over four quarters: each quarter's `score` is a dated
/// account row (point in time); C is onboarded in the third quarter.
fn book(dir: &Path) {
    let scores: [(&str, &[f64]); 5] = [
        ("A", &[0.85, 0.75, 0.65, 0.85]),
        ("B", &[0.75, 0.82, 0.78, 0.69]),
        ("C", &[0.90, 0.90]),
        ("D", &[0.50, 0.50, 0.50, 0.90]),
        ("E", &[0.85, 0.72, 0.71, 0.79]),
    ];
    let dated = ["2025-01-15", "2025-04-15", "2025-07-15", "2025-10-15"];
    let (mut ids, mut score, mut dates, mut since) = (vec![], vec![], vec![], vec![]);
    for (id, values) in scores {
        let first = 4 - values.len();
        for (i, v) in values.iter().enumerate() {
            ids.push(id);
            score.push(*v);
            dates.push(dated[first + i]);
            since.push(if id == "C" { "2025-08-01" } else { "2020-01-01" });
        }
    }
    let n = ids.len();
    let mut accounts = df! {
        "account_id" => ids.clone(),
        "arr" => vec![1000.0; n],
        "customer_since" => since,
        "snapshot_date" => dates,
        "score" => score,
    }
    .unwrap()
    .lazy()
    .with_columns([
        col("customer_since").cast(DataType::Date),
        col("snapshot_date").cast(DataType::Date),
    ])
    .collect()
    .unwrap();
    write_parquet(&mut accounts, &dir.join("accounts.parquet"));
    // Usage covers every window of 2025-Q1..2025-Q4: from the first day of
    // Q1's 90-day window to Q4's last day (events 0 there: no sums change).
    let mut ids: Vec<&str> = ["A", "B", "C", "D", "E"].repeat(4);
    let mut dates: Vec<&str> = ["2025-03-01", "2025-06-01", "2025-09-01", "2025-12-01"]
        .iter()
        .flat_map(|d| [*d; 5])
        .collect();
    let mut events = vec![1i64; 20];
    ids.extend(["A", "A"]);
    dates.extend(["2025-01-01", "2025-12-31"]);
    events.extend([0, 0]);
    let mut usage = df! {
        "account_id" => ids,
        "date" => dates,
        "events" => events,
    }
    .unwrap()
    .lazy()
    .with_column(col("date").cast(DataType::Date))
    .collect()
    .unwrap();
    write_parquet(&mut usage, &dir.join("usage/u.parquet"));
}

/// Protect is entered at `enter` and kept at `keep`; `watch` flags accounts
/// in Other for two cycles or more.
fn pipeline(dir: &Path, file: &str, keep: f64) -> String {
    let text = format!(
        r#"
name = "book"
cadence = "quarter"
[inputs.accounts]
uri = "{d}/accounts.parquet"
[inputs.usage]
uri = "{d}/usage/"
[output]
uri = "{d}/out"
passthrough = ["score"]
[params]
enter = 0.8
keep = {keep}
[[aggregates]]
name = "events_90d"
column = "events"
agg = "sum"
window_days = 90
[[features]]
name = "score_change"
expr = "score - prev(score)"
[[segmentations]]
name = "tier"
default = "Other"
rules = [
  {{ name = "enter", label = "Protect", when = "score >= enter" }},
  {{ name = "keep", label = "Protect", when = "prev(tier) = 'Protect' AND score >= keep" }},
]
[[segmentations]]
name = "watch"
default = "-"
rules = [{{ name = "long_other", label = "Watch", when = "tier = 'Other' AND cycles_since(tier_since) >= 1" }}]
"#,
        d = dir.display()
    );
    let path = dir.join(file);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// Per account (sorted): (tier, tier_rule, tier_since, watch).
fn labels(out: &Path, cycle: &str) -> Vec<(String, String, String, String, String)> {
    let rows = glob_rows(out, cycle).unwrap();
    let ids = strings(&rows, "account_id");
    let (t, r, s, w) = (
        strings(&rows, "tier"),
        strings(&rows, "tier_rule"),
        strings(&rows, "tier_since"),
        strings(&rows, "watch"),
    );
    (0..ids.len())
        .map(|i| (ids[i].clone(), t[i].clone(), r[i].clone(), s[i].clone(), w[i].clone()))
        .collect()
}

fn row(id: &str, tier: &str, rule: &str, since: &str, watch: &str) -> (String, String, String, String, String) {
    (id.into(), tier.into(), rule.into(), since.into(), watch.into())
}

/// The book computed by hand, quarter by quarter.
fn expected(cycle: &str) -> Vec<(String, String, String, String, String)> {
    match cycle {
        "2025-Q1" => vec![
            row("A", "Protect", "enter", "2025-Q1", "-"),
            row("B", "Other", "default", "2025-Q1", "-"),
            row("D", "Other", "default", "2025-Q1", "-"),
            row("E", "Protect", "enter", "2025-Q1", "-"),
        ],
        "2025-Q2" => vec![
            row("A", "Protect", "keep", "2025-Q1", "-"),
            row("B", "Protect", "enter", "2025-Q2", "-"),
            row("D", "Other", "default", "2025-Q1", "Watch"),
            row("E", "Protect", "keep", "2025-Q1", "-"),
        ],
        "2025-Q3" => vec![
            row("A", "Other", "default", "2025-Q3", "-"),
            row("B", "Protect", "keep", "2025-Q2", "-"),
            row("C", "Protect", "enter", "2025-Q3", "-"),
            row("D", "Other", "default", "2025-Q1", "Watch"),
            row("E", "Protect", "keep", "2025-Q1", "-"),
        ],
        _ => vec![
            row("A", "Protect", "enter", "2025-Q4", "-"),
            row("B", "Other", "default", "2025-Q4", "-"),
            row("C", "Protect", "enter", "2025-Q3", "-"),
            row("D", "Protect", "enter", "2025-Q4", "-"),
            row("E", "Protect", "keep", "2025-Q1", "-"),
        ],
    }
}

fn run_ids(out: &Path) -> Vec<String> {
    CYCLES
        .iter()
        .map(|c| manifest(out, c).unwrap()["run_id"].as_str().unwrap().to_string())
        .collect()
}

/// A backfill evaluates in order, each cycle reading the one just
/// committed: hysteresis keeps A, B and E in Protect inside the band, `_since`
/// is the first cycle of the current stay (this cycle for a change or a new
/// account), `cycles_since` counts from it, and `prev(score)` is the last
/// quarter's score (null for an account that was not there).
#[test]
fn hysteresis_and_since_follow_a_hand_computed_book() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    book(dir);
    let p = pipeline(dir, "p.toml", 0.7);
    let o = run(&["run", "--pipeline", &p, "--cycles", "2025-Q1..2025-Q4"]);
    expect_code(&o, 0);
    let out = dir.join("out");
    for cycle in CYCLES {
        assert_eq!(labels(&out, cycle), expected(cycle), "{cycle}");
    }
    let q3 = glob_rows(&out, "2025-Q3").unwrap();
    let change = q3.column("score_change").unwrap().f64().unwrap().clone();
    let prev_score = q3.column("prev_score").unwrap().f64().unwrap().clone();
    // A, B, C (new), D, E
    let want_prev = [Some(0.75), Some(0.82), None, Some(0.50), Some(0.72)];
    for (i, want) in want_prev.iter().enumerate() {
        assert_eq!(prev_score.get(i), *want, "prev(score) of account {i}");
        let got = change.get(i);
        match want {
            Some(w) => assert!((got.unwrap() - ([0.65, 0.78, 0.0, 0.50, 0.71][i] - w)).abs() < 1e-12),
            None => assert_eq!(got, None, "a new account's prev is null"),
        }
    }
    let m = manifest(&out, "2025-Q3").unwrap();
    assert_eq!(m["previous"]["cycle"], "2025-Q2");
    assert_eq!(m["previous"]["run_id"], manifest(&out, "2025-Q2").unwrap()["run_id"]);
    assert!(manifest(&out, "2025-Q1").unwrap().get("previous").is_none());
    assert!(
        stderr(&o).contains("prev(...) is null for every account"),
        "the first cycle warns"
    );

    // Out of order, the fourth quarter alone reads no third quarter: no
    // hysteresis, and every stay starts now.
    let alone = tempfile::tempdir().unwrap();
    let out2 = alone.path().join("out");
    let o = run(&[
        "run",
        "--pipeline",
        &p,
        "--cycle",
        "2025-Q4",
        "--output",
        out2.to_str().unwrap(),
    ]);
    expect_code(&o, 0);
    assert!(stderr(&o).contains("prev(...) is null"), "{}", stderr(&o));
    let got = labels(&out2, "2025-Q4");
    assert_eq!(
        got[4],
        row("E", "Other", "default", "2025-Q4", "-"),
        "E is kept only through its history"
    );
    assert!(got.iter().all(|r| r.3 == "2025-Q4"));

    // --require-previous makes a missing previous cycle an error.
    let fresh = tempfile::tempdir().unwrap();
    let out3 = fresh.path().join("out");
    let o = run(&[
        "run",
        "--pipeline",
        &p,
        "--cycle",
        "2025-Q2",
        "--require-previous",
        "--output",
        out3.to_str().unwrap(),
    ]);
    expect_code(&o, 2);
    assert!(
        stderr(&o).contains("2025-Q1") && stderr(&o).contains("not committed"),
        "{}",
        stderr(&o)
    );
    assert!(tree(&out3).is_empty(), "{:?}", tree(&out3));
}

/// Replacing a cycle that later cycles read is refused, naming them; with
/// --cascade they are recomputed in order, each as a replace, and the result
/// is what a backfill with the new pipeline gives.
#[test]
fn replacing_the_past_refuses_without_cascade_and_recomputes_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    book(dir);
    let p = pipeline(dir, "p.toml", 0.7);
    let stricter = pipeline(dir, "stricter.toml", 0.75);
    expect_code(&run(&["run", "--pipeline", &p, "--cycles", "2025-Q1..2025-Q4"]), 0);
    let out = dir.join("out");
    let before = run_ids(&out);
    let files = tree(&out);

    let o = run(&["run", "--pipeline", &stricter, "--cycle", "2025-Q2", "--replace"]);
    expect_code(&o, 2);
    let err = stderr(&o);
    assert!(err.contains("2025-Q3, 2025-Q4") && err.contains("--cascade"), "{err}");
    assert_eq!(tree(&out), files, "nothing written");

    let o = run(&[
        "run",
        "--pipeline",
        &stricter,
        "--cycle",
        "2025-Q2",
        "--replace",
        "--cascade",
    ]);
    expect_code(&o, 0);
    let after = run_ids(&out);
    assert_eq!(after[0], before[0], "2025-Q1 is untouched");
    for i in 1..4 {
        assert_ne!(after[i], before[i], "{} recomputed", CYCLES[i]);
        let m = manifest(&out, CYCLES[i]).unwrap();
        assert_eq!(m["replaced"]["run_id"].as_str(), Some(before[i].as_str()));
        assert_eq!(m["previous"]["run_id"].as_str(), Some(after[i - 1].as_str()));
    }
    let fresh = tempfile::tempdir().unwrap();
    let out2 = fresh.path().join("out");
    expect_code(
        &run(&[
            "run",
            "--pipeline",
            &stricter,
            "--cycles",
            "2025-Q1..2025-Q4",
            "--output",
            out2.to_str().unwrap(),
        ]),
        0,
    );
    for cycle in CYCLES {
        assert_eq!(labels(&out, cycle), labels(&out2, cycle), "{cycle}");
    }
    // E leaves Protect at 0.72 < 0.75, never comes back, and is watched
    // from its second cycle in Other.
    assert_eq!(
        labels(&out, "2025-Q3")[4],
        row("E", "Other", "default", "2025-Q2", "Watch")
    );
    assert_eq!(
        labels(&out, "2025-Q4")[4],
        row("E", "Other", "default", "2025-Q2", "Watch")
    );
}

/// `explain` shows the previous label, the stay's first cycle and what
/// prev(...) read.
#[test]
fn explain_shows_the_previous_label_since_and_prev_values() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    book(dir);
    let p = pipeline(dir, "p.toml", 0.7);
    expect_code(&run(&["run", "--pipeline", &p, "--cycles", "2025-Q1..2025-Q3"]), 0);
    let o = run(&["explain", "--pipeline", &p, "--account", "D", "--cycle", "2025-Q3"]);
    expect_code(&o, 0);
    let text = stdout(&o);
    assert!(text.contains("watch: Watch (rule long_other)"), "{text}");
    assert!(text.contains("Other since 2025-Q1; Other in 2025-Q2"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("prev_score") && l.contains("0.5")),
        "{text}"
    );
    let o = run(&[
        "explain",
        "--pipeline",
        &p,
        "--account",
        "C",
        "--cycle",
        "2025-Q3",
        "--json",
    ]);
    let json: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let tier = &json["segmentations"][0];
    assert_eq!(tier["since"], "2025-Q3");
    assert!(tier["previous_label"].is_null(), "C was not in 2025-Q2: {tier}");
}

/// `validate` checks prev's argument like any name, and a name that would
/// clash with the column keeping prev(x) is refused.
#[test]
fn prev_arguments_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    book(dir);
    let p = pipeline(dir, "p.toml", 0.7);
    let text = std::fs::read_to_string(&p).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, text.replace("prev(score)", "prev(scor)")).unwrap();
    let o = run(&["validate", "--config-only", "--pipeline", bad.to_str().unwrap()]);
    expect_code(&o, 2);
    let err = stderr(&o);
    assert!(err.contains("prev(scor)") && err.contains("`score`"), "{err}");
    let clash = dir.join("clash.toml");
    std::fs::write(
        &clash,
        format!("{text}\n[[features]]\nname = \"prev_score\"\nexpr = \"score\"\n"),
    )
    .unwrap();
    let o = run(&["validate", "--config-only", "--pipeline", clash.to_str().unwrap()]);
    expect_code(&o, 2);
    assert!(stderr(&o).contains("`prev_score`"), "{}", stderr(&o));
}

fn diff_json(args: &[&str]) -> Value {
    let o = run(&[&["diff", "--json"], args].concat());
    expect_code(&o, 0);
    serde_json::from_str(&stdout(&o)).unwrap()
}

/// `diff` with the committed pipeline moves nothing; with one threshold
/// raised it moves exactly the accounts the committed snapshot says fall
/// below it (checked from the snapshot's own columns), writes them with both
/// labels and rules, and commits nothing.
#[test]
fn diff_moves_nothing_unchanged_and_exactly_the_accounts_a_threshold_moves() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let out_s = out.to_str().unwrap();
    expect_code(&run(&["run", "--cycles", "2026-Q2..2026-Q3", "--output", out_s]), 0);
    let files = tree(&out);

    let same = diff_json(&["--output", out_s]);
    assert_eq!(same["cycle"], "2026-Q3");
    for s in same["segmentations"].as_array().unwrap() {
        assert_eq!(s["moved_accounts"], 0, "{s}");
        assert_eq!(s["rules"], serde_json::json!([]), "{s}");
    }
    assert_eq!(same["segmentations"].as_array().unwrap().len(), 6);

    let text = std::fs::read_to_string(root().join("pipelines/default.toml")).unwrap();
    let raised = tmp.path().join("raised.toml");
    let changed = text.replace("grow_min_potential = 0.45", "grow_min_potential = 0.50");
    assert_ne!(changed, text);
    std::fs::write(&raised, changed).unwrap();
    let moves = tmp.path().join("moves.parquet");
    let seen = diff_json(&[
        "--output",
        out_s,
        "--pipeline",
        raised.to_str().unwrap(),
        "--cycle",
        "2026-Q3",
        "--to",
        moves.to_str().unwrap(),
    ]);

    // Independently: Grow by `untapped_potential` with a potential under the
    // new threshold falls through to the default, Manage.
    let committed = glob_rows(&out, "2026-Q3").unwrap();
    let want = committed
        .lazy()
        .filter(
            col("wallet_share_matrix_rule")
                .eq(lit("untapped_potential"))
                .and(col("growth_potential").lt(lit(0.50))),
        )
        .sort(["account_id"], Default::default())
        .collect()
        .unwrap();
    assert!(want.height() > 0, "the change moves someone");
    let want_ids = strings(&want, "account_id");
    let want_arr: f64 = want.column("arr").unwrap().f64().unwrap().sum().unwrap();

    for s in seen["segmentations"].as_array().unwrap() {
        if s["name"] == "wallet_share_matrix" {
            assert_eq!(s["moved_accounts"].as_u64(), Some(want_ids.len() as u64));
            assert!((s["moved_arr"].as_f64().unwrap() - want_arr).abs() < 1e-6);
            let moved: Vec<&Value> = s["matrix"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["from"] != c["to"])
                .collect();
            assert_eq!(moved.len(), 1, "{moved:?}");
            assert_eq!(
                (moved[0]["from"].as_str(), moved[0]["to"].as_str()),
                (Some("Grow"), Some("Manage"))
            );
            let rules: Vec<(String, i64)> = s["rules"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    (
                        r["rule"].as_str().unwrap().to_string(),
                        r["new"].as_i64().unwrap() - r["committed"].as_i64().unwrap(),
                    )
                })
                .collect();
            let n = want_ids.len() as i64;
            assert_eq!(
                rules,
                [("default".to_string(), n), ("untapped_potential".to_string(), -n)]
            );
        } else {
            assert_eq!(s["moved_accounts"], 0, "{s}");
        }
    }
    let written = read_parquet(&moves);
    assert_eq!(strings(&written, "account_id"), want_ids);
    assert!(
        strings(&written, "committed_rule")
            .iter()
            .all(|r| r == "untapped_potential")
    );
    assert!(strings(&written, "new_rule").iter().all(|r| r == "default"));
    assert!(strings(&written, "new_label").iter().all(|r| r == "Manage"));
    assert_eq!(tree(&out), files, "diff commits nothing");

    let csv_path = tmp.path().join("moves.csv");
    let o = run(&[
        "diff",
        "--output",
        out_s,
        "--pipeline",
        raised.to_str().unwrap(),
        "--to",
        csv_path.to_str().unwrap(),
    ]);
    expect_code(&o, 0);
    assert!(
        stdout(&o).contains(&format!("wallet_share_matrix: {} accounts would move", want_ids.len())),
        "{}",
        stdout(&o)
    );
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    assert_eq!(csv.lines().count(), want_ids.len() + 1, "{csv}");
    assert!(csv.starts_with("segmentation,account_id,arr,committed_label,committed_rule,new_label,new_rule\n"));
}

/// The same book on Delta output: each cycle's `prev_*` and `_since` columns
/// keep their types from the first cycle on (a Delta table refuses a column
/// that changes type), and the Delta readers see every cycle.
#[test]
fn segments_over_time_on_delta_output() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    book(dir);
    let p = pipeline(dir, "p.toml", 0.7);
    let p = crate::delta::delta_pipeline(dir, Path::new(&p));
    let target = crate::target::Target::local();
    let o = run(&[
        "run",
        "--pipeline",
        &p,
        "--cycles",
        "2025-Q1..2025-Q4",
        "--output",
        &target.uri(),
    ]);
    expect_code(&o, 0);
    let seen = crate::delta::read_delta(&target, "segments", None).unwrap();
    for cycle in CYCLES {
        assert!(seen["partitions"][cycle].is_object(), "{cycle}: {}", seen["partitions"]);
    }
    assert_eq!(seen["types"]["prev_score"], "Float64", "{}", seen["types"]);
    assert_eq!(seen["types"]["tier_since"], "String");
    assert_eq!(seen["nulls"]["2025-Q1"]["prev_score"], 4, "no previous cycle: all null");
}
