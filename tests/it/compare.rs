//! `quadrant compare`: migration, retention and the ARR bridge.

use std::path::Path;

use polars::prelude::*;

use crate::*;

fn json(o: &std::process::Output) -> serde_json::Value {
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

#[test]
fn matrix_totals_equal_both_snapshots() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().to_str().unwrap();
    expect_code(&run(&["run", "--cycles", "2025-Q4..2026-Q3", "--output", out]), 0);
    let o = run(&[
        "compare", "--from", "2025-Q4", "--to", "2026-Q3", "--output", out, "--json",
    ]);
    expect_code(&o, 0);
    let c = json(&o);
    let start = read_parquet(&glob_partition(tmp.path(), "2025-Q4")[0]);
    let end = read_parquet(&glob_partition(tmp.path(), "2026-Q3")[0]);
    let arr = |f: &DataFrame| f.column("arr").unwrap().f64().unwrap().sum().unwrap();
    let close = |a: f64, b: f64| (a - b).abs() < 1e-6 * b.abs().max(1.0);
    let segs = c["segmentations"].as_array().unwrap();
    assert_eq!(segs.len(), 6);
    for seg in segs {
        let rows: Vec<&str> = seg["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        let cols: Vec<&str> = seg["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        assert_eq!(rows.last(), Some(&"new"));
        assert_eq!(cols.last(), Some(&"churned"));
        let cells = seg["cells"].as_array().unwrap();
        let (mut n_start, mut n_end, mut a_start, mut a_end) = (0u64, 0u64, 0.0, 0.0);
        for (r, row) in cells.iter().enumerate() {
            for (k, cell) in row.as_array().unwrap().iter().enumerate() {
                let n = cell["accounts"].as_u64().unwrap();
                if rows[r] != "new" {
                    n_start += n;
                    a_start += cell["arr_start"].as_f64().unwrap();
                }
                if cols[k] != "churned" {
                    n_end += n;
                    a_end += cell["arr_end"].as_f64().unwrap();
                }
            }
        }
        assert_eq!(n_start, start.height() as u64, "{}", seg["name"]);
        assert_eq!(n_end, end.height() as u64, "{}", seg["name"]);
        assert!(
            close(a_start, arr(&start)) && close(a_end, arr(&end)),
            "{}",
            seg["name"]
        );
        let starting: f64 = seg["retention"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["starting_arr"].as_f64().unwrap())
            .sum();
        assert!(close(starting, arr(&start)));
    }
    let b = &c["bridge"];
    let f = |k: &str| b[k].as_f64().unwrap();
    assert!(close(f("starting_arr"), arr(&start)) && close(f("ending_arr"), arr(&end)));
    assert!(close(
        f("starting_arr") + f("new_arr") + f("expansion") - f("contraction") - f("churned_arr"),
        f("ending_arr")
    ));

    // The tables are committed Parquet, with a manifest.
    let dir = tmp.path().join("compare/from=2025-Q4/to=2026-Q3");
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("_manifest.json")).unwrap()).unwrap();
    let kinds: Vec<&str> = m["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["transitions", "retention", "bridge", "moves"]);
    let text = stdout(&run(&[
        "compare", "--from", "2025-Q4", "--to", "2026-Q3", "--output", out,
    ]));
    assert!(
        text.contains("wallet_share_matrix: accounts") && text.contains("NRR") && text.contains("= ending ARR"),
        "{text}"
    );
    assert_eq!(tree(&dir).len(), 5, "a rerun replaces the files: {:?}", tree(&dir));
}

/// A small book whose retention is worked out by hand.
fn book(dir: &Path) -> String {
    // snapshot_date 2024-12-31 = day 20088, 2025-03-31 = day 20178.
    let (q4, q1) = (20_088i32, 20_178i32);
    let mut accounts = df! {
        "account_id" => ["A", "B", "C", "E", "A", "B", "C", "D", "E"],
        "snapshot_date" => [q4, q4, q4, q4, q1, q1, q1, q1, q1],
        "arr" => [100.0, 200.0, 300.0, 80.0, 150.0, 100.0, 300.0, 50.0, 80.0],
        "tier" => ["x", "x", "x", "y", "x", "y", "x", "y", "y"],
        "customer_since" => [19_000i32, 19_000, 19_000, 19_000, 19_000, 19_000, 19_000, 20_105, 19_000],
        "churned_on" => [None, None, None, None, None, None, Some(20_120i32), None, None],
    }
    .unwrap()
    .lazy()
    .with_columns([
        col("snapshot_date").cast(DataType::Date),
        col("customer_since").cast(DataType::Date),
        col("churned_on").cast(DataType::Date),
    ])
    .collect()
    .unwrap();
    write_parquet(&mut accounts, &dir.join("accounts.parquet"));
    let mut usage = df! { "account_id" => ["A"], "date" => [q4] }
        .unwrap()
        .lazy()
        .with_column(col("date").cast(DataType::Date))
        .collect()
        .unwrap();
    write_parquet(&mut usage, &dir.join("usage.parquet"));
    pipeline(dir, "p.toml", "X", "Y")
}

fn pipeline(dir: &Path, file: &str, x: &str, y: &str) -> String {
    let text = format!(
        r#"
name = "book"
[inputs.accounts]
uri = "{d}/accounts.parquet"
[inputs.usage]
uri = "{d}/usage.parquet"
[output]
uri = "{d}/out"
passthrough = ["tier"]
[[segmentations]]
name = "book_tier"
default = "{y}"
rules = [{{ name = "tier_x", label = "{x}", when = "tier = 'x'" }}]
"#,
        d = dir.display()
    );
    let path = dir.join(file);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn retention_and_bridge_match_a_hand_computed_example() {
    let tmp = tempfile::tempdir().unwrap();
    let p = book(tmp.path());
    expect_code(&run(&["run", "--pipeline", &p, "--cycles", "2024-Q4..2025-Q1"]), 0);
    let o = run(&[
        "compare",
        "--pipeline",
        &p,
        "--from",
        "2024-Q4",
        "--to",
        "2025-Q1",
        "--json",
    ]);
    expect_code(&o, 0);
    let c = json(&o);
    let seg = &c["segmentations"][0];
    assert_eq!(seg["rows"], serde_json::json!(["X", "Y", "new"]));
    assert_eq!(seg["columns"], serde_json::json!(["X", "Y", "churned"]));
    let cell = |r: usize, k: usize| {
        let c = &seg["cells"][r][k];
        (
            c["accounts"].as_u64().unwrap(),
            c["arr_start"].as_f64().unwrap(),
            c["arr_end"].as_f64().unwrap(),
        )
    };
    assert_eq!(cell(0, 0), (1, 100.0, 150.0)); // A stays X and expands
    assert_eq!(cell(0, 1), (1, 200.0, 100.0)); // B moves to Y and contracts
    assert_eq!(cell(0, 2), (1, 300.0, 0.0)); // C churns
    assert_eq!(cell(1, 1), (1, 80.0, 80.0)); // E stays
    assert_eq!(cell(2, 1), (1, 0.0, 50.0)); // D is new
    let x = &seg["retention"][0];
    assert_eq!(x["label"], "X");
    assert_eq!(x["starting_arr"], 600.0);
    assert_eq!(x["expansion"], 50.0);
    assert_eq!(x["contraction"], 100.0);
    assert_eq!(x["churned_arr"], 300.0);
    assert_eq!(x["ending_arr"], 250.0);
    assert!((x["nrr"].as_f64().unwrap() - 250.0 / 600.0).abs() < 1e-12);
    assert!((x["grr"].as_f64().unwrap() - 200.0 / 600.0).abs() < 1e-12);
    let y = &seg["retention"][1];
    assert_eq!((y["nrr"].as_f64(), y["grr"].as_f64()), (Some(1.0), Some(1.0)));
    let b = &c["bridge"];
    assert_eq!(
        [
            &b["starting_arr"],
            &b["new_arr"],
            &b["expansion"],
            &b["contraction"],
            &b["churned_arr"],
            &b["ending_arr"]
        ],
        [680.0, 50.0, 50.0, 100.0, 300.0, 380.0]
    );
    let moves_file = tree(&tmp.path().join("out"))
        .into_iter()
        .find(|f| f.contains("/moves/"))
        .unwrap();
    let moves = read_parquet(&tmp.path().join("out").join(moves_file));
    assert_eq!(strings(&moves, "account_id"), ["B", "C", "D"]);
    assert_eq!(strings(&moves, "from_label"), ["X", "X", "new"]);
    assert_eq!(strings(&moves, "to_label"), ["Y", "churned", "Y"]);
    assert_eq!(strings(&moves, "from_rule"), ["tier_x", "tier_x", ""]);
}

#[test]
fn snapshots_that_segment_differently_are_refused_unless_one_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let p = book(tmp.path());
    expect_code(&run(&["run", "--pipeline", &p, "--cycle", "2024-Q4"]), 0);
    let other = pipeline(tmp.path(), "other.toml", "X", "Z");
    expect_code(&run(&["run", "--pipeline", &other, "--cycle", "2025-Q1"]), 0);
    let o = run(&["compare", "--pipeline", &p, "--from", "2024-Q4", "--to", "2025-Q1"]);
    expect_code(&o, 2);
    let err = stderr(&o);
    assert!(
        err.contains("segmentation `book_tier` has labels X, Y in 2024-Q4 but X, Z in 2025-Q1"),
        "{err}"
    );
    assert!(err.contains("--segmentation"), "{err}");
    let o = run(&[
        "compare",
        "--pipeline",
        &p,
        "--from",
        "2024-Q4",
        "--to",
        "2025-Q1",
        "--segmentation",
        "book_tier",
        "--json",
    ]);
    expect_code(&o, 0);
    assert_eq!(
        json(&o)["segmentations"][0]["columns"],
        serde_json::json!(["X", "Z", "churned"])
    );
    let o = run(&["compare", "--pipeline", &p, "--from", "2024-Q4", "--to", "2026-Q1"]);
    expect_code(&o, 2);
    assert!(stderr(&o).contains("cycle 2026-Q1 is not committed"), "{}", stderr(&o));
}
