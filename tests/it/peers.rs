//! The golden snapshot checked by an independent computation: the default
//! pipeline written by hand as one DuckDB query per cycle
//! (`bench/peers.py`, the benchmark's peer), run on the same fixtures over a
//! backfill, each cycle reading the peer's own output for the cycle before.
//! Every account must get the same six labels, rules and `_since`, the same
//! `prev(...)` values, features and aggregates: hysteresis and escalation
//! meet an independent check too.

use std::path::Path;

use polars::prelude::*;

use crate::*;

const SEGMENTATIONS: [&str; 6] = [
    "wallet_share_matrix",
    "growth_risk",
    "size_contract",
    "touch_tier",
    "strategic_accounts",
    "re_evaluate_escalation",
];

const NUMBERS: [&str; 12] = [
    "arr",
    "tenure_months",
    "wallet_estimate",
    "wallet_share",
    "whitespace",
    "usage_recent",
    "usage_prior",
    "usage_growth",
    "seat_utilization",
    "employee_growth",
    "growth_potential",
    "risk_score",
];

fn sorted(frame: DataFrame) -> DataFrame {
    frame.sort(["account_id"], Default::default()).unwrap()
}

/// Backfills the cycles with quadrant into one root, runs the DuckDB peer
/// on the same accounts and usage cycle by cycle (each reading its own
/// output for the cycle before), and asserts they agree on every account.
fn agree(accounts: &Path, usage: &str, cycles: &[(&str, &str)]) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let range = format!("{}..{}", cycles[0].0, cycles[cycles.len() - 1].0);
    expect_code(
        &run(&[
            "run",
            "--cycles",
            &range,
            "--accounts",
            accounts.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ]),
        0,
    );
    let mut previous: Option<std::path::PathBuf> = None;
    for &(cycle, as_of) in cycles {
        let ours = sorted(glob_rows(&out, cycle).unwrap());
        let peer_out = tmp.path().join(format!("duckdb-{cycle}.parquet"));
        let mut peer = std::process::Command::new("python3");
        peer.current_dir(root())
            .args(["bench/peers.py", "duckdb", "--accounts"])
            .arg(accounts)
            .args(["--usage", usage, "--as-of", as_of, "--threads", "2"])
            .arg("--out")
            .arg(&peer_out);
        if let Some(p) = &previous {
            peer.arg("--previous").arg(p);
        }
        let o = peer.output().unwrap();
        assert!(o.status.success(), "bench/peers.py duckdb: {}", stderr(&o));
        let theirs = sorted(read_parquet(&peer_out));
        previous = Some(peer_out);

        assert_eq!(
            strings(&ours, "account_id"),
            strings(&theirs, "account_id"),
            "{cycle}: the same accounts"
        );
        let mut compared = vec!["prev_wallet_share_matrix".to_string()];
        for s in SEGMENTATIONS {
            compared.extend([s.to_string(), format!("{s}_rule"), format!("{s}_since")]);
        }
        for column in &compared {
            let (a, b) = (strings(&ours, column), strings(&theirs, column));
            let differ: Vec<String> = strings(&ours, "account_id")
                .into_iter()
                .zip(a.iter().zip(&b))
                .filter(|(_, (x, y))| x != y)
                .map(|(id, (x, y))| format!("{id}: {x} vs {y}"))
                .collect();
            assert!(differ.is_empty(), "{cycle} {column}: {differ:?}");
        }
        if previous.is_some() && cycle != cycles[0].0 {
            // The book is not trivial: some stays began before this cycle.
            let since = strings(&ours, "wallet_share_matrix_since");
            assert!(since.iter().any(|s| s != cycle), "{cycle}: {since:?}");
        }
        for c in NUMBERS {
            let a = ours.column(c).unwrap().cast(&DataType::Float64).unwrap();
            let b = theirs.column(c).unwrap().cast(&DataType::Float64).unwrap();
            let (a, b) = (a.f64().unwrap(), b.f64().unwrap());
            for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
                let same = match (x, y) {
                    (Some(x), Some(y)) => x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs()),
                    (None, None) => true,
                    _ => false,
                };
                assert!(
                    same,
                    "{cycle} {c} of {}: {x:?} vs {y:?}",
                    strings(&ours, "account_id")[i]
                );
            }
        }
    }
}

/// A backfill of four quarters: point-in-time rows (`snapshot_date`, SPEC
/// section 2) pick older values than the latest rows in the early ones,
/// and each quarter reads the one before (hysteresis, `_since`,
/// escalation after two quarters in Re-evaluate).
const CYCLES: [(&str, &str); 4] = [
    ("2025-Q4", "2025-12-31"),
    ("2026-Q1", "2026-03-31"),
    ("2026-Q2", "2026-06-30"),
    ("2026-Q3", "2026-09-30"),
];

#[test]
fn duckdb_computing_the_default_pipeline_agrees_on_every_account() {
    agree(
        &root().join("fixtures/accounts.parquet"),
        "fixtures/usage/*.parquet",
        &CYCLES,
    );
}

/// The fixtures date every row; undated rows must be read the same way too:
/// an undated row counts only for an account with no dated row valid at
/// `as_of`. Ten accounts get an extra undated row with another ARR (ignored),
/// two keep only undated rows (their one row, whatever its date).
#[test]
fn duckdb_agrees_on_undated_account_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let fixtures = read_parquet(&root().join("fixtures/accounts.parquet"));
    let undated = lit(NULL).cast(DataType::Date).alias("snapshot_date");
    let latest = col("snapshot_date").eq(col("snapshot_date").max().over([col("account_id")]).unwrap());
    let extra = fixtures
        .clone()
        .lazy()
        .filter(latest.and(col("account_id").lt_eq(lit("A0000010"))))
        .with_columns([undated.clone(), (col("arr") * lit(2.0) + lit(1.0)).alias("arr")]);
    let only_undated = col("account_id")
        .eq(lit("A0000071"))
        .or(col("account_id").eq(lit("A0000072")));
    let rows = fixtures.lazy().with_column(
        when(only_undated)
            .then(undated)
            .otherwise(col("snapshot_date"))
            .alias("snapshot_date"),
    );
    let mut accounts = concat([rows, extra], UnionArgs::default()).unwrap().collect().unwrap();
    assert_eq!(accounts.column("snapshot_date").unwrap().null_count(), 12);
    let path = tmp.path().join("accounts.parquet");
    write_parquet(&mut accounts, &path);
    agree(&path, "fixtures/usage/*.parquet", &CYCLES);
}
