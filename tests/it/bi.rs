//! BI tools as real clients: DuckDB, pyarrow datasets and Python polars read
//! the snapshot tables with Hive partitioning and see the same rows, types
//! and cycles (tests/bi/readers.py).

use crate::*;

#[test]
fn duckdb_pyarrow_and_polars_read_the_same_snapshot_tables() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().to_str().unwrap();
    expect_code(&run(&["run", "--cycles", "2026-Q2..2026-Q3", "--output", out]), 0);
    // Leftovers a reader must not pick up.
    std::fs::write(tmp.path().join("segments/cycle=2026-Q3/_manifest.json.bak"), b"{}").unwrap();
    let o = std::process::Command::new("python3")
        .arg(root().join("tests/bi/readers.py"))
        .arg(out)
        .output()
        .expect("python3 runs; scripts/test installs duckdb, pyarrow and polars");
    assert!(o.status.success(), "{}", stderr(&o));
    let seen: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let rows: u64 = ["2026-Q2", "2026-Q3"]
        .iter()
        .map(|c| manifest(tmp.path(), c).unwrap()["rows"].as_u64().unwrap())
        .sum();
    let duck = &seen["duckdb"];
    assert_eq!(duck["rows"].as_u64(), Some(rows));
    assert_eq!(duck["cycles"], serde_json::json!(["2026-Q2", "2026-Q3"]));
    for (column, kind) in [
        ("as_of", "date"),
        ("customer_since", "date"),
        ("account_id", "string"),
        ("wallet_share_matrix", "string"),
        ("wallet_share_matrix_rule", "string"),
        ("arr", "number"),
        ("employees", "number"),
        ("risk_score", "number"),
        ("cycle", "string"),
        ("run_id", "string"),
    ] {
        for reader in ["duckdb", "pyarrow", "polars"] {
            assert_eq!(seen[reader]["types"][column], kind, "{reader}: {column}");
        }
    }
    for reader in ["pyarrow", "polars"] {
        for key in ["rows", "cycles", "arr", "by_label"] {
            assert_eq!(seen[reader][key], duck[key], "{reader} {key}");
        }
        assert_eq!(seen[reader]["types"], duck["types"], "{reader}: the same columns");
    }
}
