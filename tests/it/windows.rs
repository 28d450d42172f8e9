//! Window, aggregate and point-in-time semantics, checked against a plain
//! row-by-row reference computed here from the same files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::NaiveDate;
use polars::prelude::*;

use crate::*;

fn day(v: AnyValue) -> Option<i32> {
    match v {
        AnyValue::Date(d) => Some(d),
        _ => None,
    }
}

fn date_days(s: &str) -> i32 {
    let d: NaiveDate = s.parse().unwrap();
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32
}

fn num(v: AnyValue) -> Option<f64> {
    match v {
        AnyValue::Null => None,
        AnyValue::Int64(x) => Some(x as f64),
        AnyValue::Int32(x) => Some(x as f64),
        AnyValue::Float64(x) => Some(x),
        AnyValue::UInt32(x) => Some(x as f64),
        other => panic!("not a number: {other:?}"),
    }
}

/// Usage rows: (account, day, active_users, events), with some nulls and
/// ties added to the fixture so that the edge cases are exercised.
fn usage_rows(frame: &DataFrame) -> Vec<(String, i32, Option<f64>, Option<f64>)> {
    let ids = frame.column("account_id").unwrap();
    let dates = frame.column("date").unwrap();
    let users = frame.column("active_users").unwrap();
    let events = frame.column("events").unwrap();
    (0..frame.height())
        .map(|i| {
            (
                ids.get(i).unwrap().str_value().to_string(),
                day(dates.get(i).unwrap()).unwrap(),
                num(users.get(i).unwrap()),
                num(events.get(i).unwrap()),
            )
        })
        .collect()
}

const PIPELINE: &str = r#"
name = "windows"
[inputs.accounts]
uri = "fixtures/accounts.parquet"
[inputs.usage]
uri = "fixtures/usage/"
[output]
uri = "out/"
[[aggregates]]
name = "s"
column = "active_users"
agg = "sum"
window_days = 30
offset_days = 10
[[aggregates]]
name = "c"
column = "active_users"
agg = "count"
window_days = 30
offset_days = 10
[[aggregates]]
name = "m"
column = "active_users"
agg = "mean"
window_days = 30
offset_days = 10
[[aggregates]]
name = "lo"
column = "active_users"
agg = "min"
window_days = 30
offset_days = 10
[[aggregates]]
name = "hi"
column = "active_users"
agg = "max"
window_days = 30
offset_days = 10
[[aggregates]]
name = "u"
column = "active_users"
agg = "n_unique"
window_days = 30
offset_days = 10
[[aggregates]]
name = "l"
column = "active_users"
agg = "last"
window_days = 30
offset_days = 10
[[aggregates]]
name = "l2"
column = "events"
agg = "last"
window_days = 30
offset_days = 10
[[aggregates]]
name = "pd"
column = "events"
agg = "per_day"
window_days = 7
[[segmentations]]
name = "any"
default = "all"
"#;

/// The accounts in a cycle, by SPEC.md's definition, row by row: each
/// account's row valid at as_of (the latest with snapshot_date <= as_of)
/// has customer_since <= as_of and is not churned by as_of.
fn accounts_in_cycle(accounts: &DataFrame, as_of: &str) -> BTreeSet<String> {
    let as_of = date_days(as_of);
    let column = |name: &str| accounts.column(name).unwrap();
    let mut valid: BTreeMap<String, (i32, usize)> = BTreeMap::new();
    for i in 0..accounts.height() {
        let id = column("account_id").get(i).unwrap().str_value().to_string();
        let Some(at) = day(column("snapshot_date").get(i).unwrap()).filter(|d| *d <= as_of) else {
            continue;
        };
        if valid.get(&id).is_none_or(|(latest, _)| at > *latest) {
            valid.insert(id, (at, i));
        }
    }
    valid
        .into_iter()
        .filter(|(_, (_, i))| {
            let since = day(column("customer_since").get(*i).unwrap());
            let churned = day(column("churned_on").get(*i).unwrap());
            since.is_some_and(|d| d <= as_of) && churned.is_none_or(|d| d > as_of)
        })
        .map(|(id, _)| id)
        .collect()
}

#[test]
fn every_agg_matches_a_row_by_row_reference() {
    let tmp = tempfile::tempdir().unwrap();
    // The fixture usage plus edge cases: nulls, a tie on one day, rows on
    // the window's excluded first day and included last day.
    let fixture = read_parquet(&root().join("fixtures/usage/part-00000.parquet"));
    let as_of = "2026-09-30";
    let end = date_days(as_of) - 10; // offset 10: the window is (end - 30, end]
    let extra = df! {
        "account_id" => ["A0000001", "A0000001", "A0000002", "A0000002", "A0000003"],
        "date" => [end, end, end - 30, end - 29, end],
        "active_users" => [None, Some(500i64), Some(900), Some(901), Some(7)],
        "events" => [Some(1i64), None, Some(1), Some(1), Some(1)],
    }
    .unwrap()
    .lazy()
    .with_column(col("date").cast(DataType::Date))
    .collect()
    .unwrap();
    let mut usage = concat([fixture.lazy(), extra.lazy()], UnionArgs::default())
        .unwrap()
        .collect()
        .unwrap();
    write_parquet(&mut usage, &tmp.path().join("usage/part-0.parquet"));
    let pipeline = tmp.path().join("w.toml");
    std::fs::write(&pipeline, PIPELINE).unwrap();
    let out = tmp.path().join("out");
    let usage_uri = format!("{}/usage/", tmp.path().display());
    let o = run(&[
        "run",
        "--pipeline",
        pipeline.to_str().unwrap(),
        "--cycle",
        "2026-Q3",
        "--usage",
        &usage_uri,
        "--output",
        out.to_str().unwrap(),
    ]);
    expect_code(&o, 0);
    let snapshot = read_parquet(&glob_partition(&out, "2026-Q3")[0]);

    // The reference.
    let rows = usage_rows(&usage);
    let in_window = |d: i32, window: i32, end: i32| d > end - window && d <= end;
    let mut expected: BTreeMap<String, BTreeMap<&str, Option<f64>>> = BTreeMap::new();
    let ids = strings(&snapshot, "account_id");
    let in_cycle = accounts_in_cycle(&read_parquet(&root().join("fixtures/accounts.parquet")), as_of);
    assert_eq!(
        ids.iter().cloned().collect::<BTreeSet<_>>(),
        in_cycle,
        "the snapshot holds the accounts in the cycle, each once"
    );
    assert_eq!(ids.len(), in_cycle.len(), "each account once");
    for id in &in_cycle {
        let mine: Vec<_> = rows.iter().filter(|r| &r.0 == id).collect();
        let w: Vec<(i32, f64)> = mine
            .iter()
            .filter(|r| in_window(r.1, 30, end))
            .filter_map(|r| r.2.map(|v| (r.1, v)))
            .collect();
        let vals: Vec<f64> = w.iter().map(|x| x.1).collect();
        let mut e = BTreeMap::new();
        e.insert("s", Some(vals.iter().sum()));
        e.insert("c", Some(vals.len() as f64));
        e.insert(
            "m",
            (!vals.is_empty()).then(|| vals.iter().sum::<f64>() / vals.len() as f64),
        );
        e.insert("lo", vals.iter().cloned().reduce(f64::min));
        e.insert("hi", vals.iter().cloned().reduce(f64::max));
        let distinct: BTreeSet<i64> = vals.iter().map(|v| *v as i64).collect();
        e.insert("u", Some(distinct.len() as f64));
        // The latest non-null value; on a tie of dates the largest.
        let last = w.iter().cloned().max_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        e.insert("l", last.map(|x| x.1));
        // A second `last` in the same group-by (polars' per-group sort_by
        // failed on two).
        let last_events = mine
            .iter()
            .filter(|r| in_window(r.1, 30, end))
            .filter_map(|r| r.3.map(|v| (r.1, v)))
            .max_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        e.insert("l2", last_events.map(|x| x.1));
        let pd_end = date_days(as_of);
        let ev: f64 = mine
            .iter()
            .filter(|r| in_window(r.1, 7, pd_end))
            .filter_map(|r| r.3)
            .sum();
        e.insert("pd", Some(ev / 7.0));
        expected.insert(id.clone(), e);
    }
    for (i, id) in ids.iter().enumerate() {
        for name in ["s", "c", "m", "lo", "hi", "u", "l", "l2", "pd"] {
            let got = num(snapshot.column(name).unwrap().get(i).unwrap());
            let want = expected[id][name];
            let same = match (got, want) {
                (Some(g), Some(w)) => (g - w).abs() < 1e-9 * w.abs().max(1.0),
                (None, None) => true,
                _ => false,
            };
            assert!(same, "account {id}, aggregate {name}: got {got:?}, want {want:?}");
        }
    }
    // The edge cases landed where the window says.
    let at = |id: &str| ids.iter().position(|x| x == id).unwrap();
    assert_eq!(
        num(snapshot.column("l").unwrap().get(at("A0000001")).unwrap()),
        Some(500.0)
    );
}

/// Point in time: the row valid at as_of is the latest with
/// snapshot_date <= as_of; accounts onboarded later or churned by then are
/// not in the cycle.
#[test]
fn backfills_read_accounts_as_they_were() {
    let tmp = tempfile::tempdir().unwrap();
    let o = run(&["run", "--cycle", "2025-Q2", "--output", tmp.path().to_str().unwrap()]);
    expect_code(&o, 0);
    let snapshot = read_parquet(&glob_partition(tmp.path(), "2025-Q2")[0]);
    let as_of = date_days("2025-06-30");

    let accounts = read_parquet(&root().join("fixtures/accounts.parquet"));
    let mut valid: BTreeMap<String, (i32, f64, i32, Option<i32>)> = BTreeMap::new();
    for i in 0..accounts.height() {
        let get = |c: &str| accounts.column(c).unwrap().get(i).unwrap();
        let Some(sd) = day(get("snapshot_date")) else {
            continue;
        };
        if sd > as_of {
            continue;
        }
        let id = get("account_id").str_value().to_string();
        let row = (
            sd,
            num(get("arr")).unwrap(),
            day(get("customer_since")).unwrap(),
            day(get("churned_on")),
        );
        if valid.get(&id).is_none_or(|v| v.0 < sd) {
            valid.insert(id, row);
        }
    }
    let expected: BTreeMap<String, f64> = valid
        .into_iter()
        .filter(|(_, (_, _, since, churned))| *since <= as_of && churned.is_none_or(|c| c > as_of))
        .map(|(id, (_, arr, _, _))| (id, arr))
        .collect();
    let got: BTreeMap<String, f64> = (0..snapshot.height())
        .map(|i| {
            (
                snapshot
                    .column("account_id")
                    .unwrap()
                    .get(i)
                    .unwrap()
                    .str_value()
                    .to_string(),
                num(snapshot.column("arr").unwrap().get(i).unwrap()).unwrap(),
            )
        })
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(got, expected);
    // The fixtures do change over time: the current snapshot differs.
    let later = tempfile::tempdir().unwrap();
    expect_code(
        &run(&["run", "--cycle", "2026-Q3", "--output", later.path().to_str().unwrap()]),
        0,
    );
    let now = read_parquet(&glob_partition(later.path(), "2026-Q3")[0]);
    assert_ne!(now.height(), snapshot.height());
}

/// The rejected rows of a cycle, by dataset, in a stable order: in Parquet
/// partitions, or in a Delta table per dataset.
fn rejected(out: &Path, cycle: &str) -> BTreeMap<String, DataFrame> {
    let mut found = BTreeMap::new();
    for dataset in ["accounts", "usage"] {
        let parquet = out.join(format!("rejects/cycle={cycle}/dataset={dataset}"));
        let delta = out.join(format!("rejects/{dataset}/cycle={cycle}"));
        let Ok(entries) = std::fs::read_dir(&parquet).or_else(|_| std::fs::read_dir(&delta)) else {
            continue;
        };
        for e in entries {
            let frame = read_parquet(&e.unwrap().path());
            let columns: Vec<String> = frame.get_column_names().iter().map(|c| c.to_string()).collect();
            let sorted = frame
                .sort(columns, SortMultipleOptions::default().with_nulls_last(true))
                .unwrap();
            found.insert(dataset.to_string(), sorted);
        }
    }
    found
}

/// A backfill (which reads the undated usage rows once, and on Spark the
/// usage of all its cycles in one query) commits exactly what running the
/// cycles one by one commits: the same
/// rows and values (every aggregate function, offsets, `prev`, `_since` and
/// hysteresis of the default pipeline), the same rejected rows of dirty
/// usage spread over the cycles, the same findings and coverage.
#[test]
fn a_backfill_commits_what_cycle_by_cycle_runs_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let cycles = [
        ("2025-Q4", "2025-12-31"),
        ("2026-Q1", "2026-03-31"),
        ("2026-Q2", "2026-06-30"),
        ("2026-Q3", "2026-09-30"),
    ];
    // Inside the 30-day window (offset 10) of each cycle, and of the default
    // pipeline's windows.
    let inside = |k: usize| date_days(cycles[k].1) - 15;
    let fixture = read_parquet(&root().join("fixtures/usage/part-00000.parquet"));
    let dirty = df! {
        "account_id" => [Some("A0000001"), Some("ZZZ0001"), None, Some("A0000002"), Some("A0000003"), Some("A0000003")],
        "date" => [Some(inside(0)), Some(inside(1)), Some(inside(2)), None, Some(inside(3)), Some(inside(3))],
        "active_users" => [Some(3i64), Some(1), Some(1), Some(1), Some(-2), Some(4)],
        "events" => [Some(-5i64), Some(1), Some(1), Some(1), Some(2), None],
    }
    .unwrap()
    .lazy()
    .with_column(col("date").cast(DataType::Date))
    .collect()
    .unwrap();
    let mut usage = concat([fixture.lazy(), dirty.lazy()], UnionArgs::default())
        .unwrap()
        .collect()
        .unwrap();
    write_parquet(&mut usage, &tmp.path().join("usage/part-0.parquet"));
    let usage_uri = format!("{}/usage/", tmp.path().display());
    let quality = "[quality]\nnull_usage_account_id = \"drop\"\nnull_usage_date = \"drop\"\nunknown_account_usage = \"drop\"\nnegative_usage = \"drop\"\n";
    let default = std::fs::read_to_string(root().join("pipelines/default.toml"))
        .unwrap()
        .replace("null_usage_account_id = \"error\"", "null_usage_account_id = \"drop\"")
        .replace("null_usage_date = \"error\"", "null_usage_date = \"drop\"")
        .replace("unknown_account_usage = \"warn\"", "unknown_account_usage = \"drop\"")
        .replace("negative_usage = \"error\"", "negative_usage = \"drop\"");
    assert!(
        default.contains("negative_usage = \"drop\""),
        "the default pipeline's checks were rewritten"
    );
    // `prev` of counts (unsigned in memory, `long` in a Delta table): the
    // backfill keeps each snapshot it commits for the next cycle to read,
    // and must read it as the committed file has it.
    let prev = "[[features]]\nname = \"c_change\"\nexpr = \"c - prev(c)\"\n[[features]]\nname = \"u_before\"\nexpr = \"prev(u)\"\n";
    let windows = format!("{PIPELINE}{quality}{prev}");
    let delta = windows.replace("[output]\n", "[output]\nformat = \"delta\"\n");
    assert_ne!(windows, delta);
    for (name, text) in [("windows", windows), ("delta", delta), ("default", default)] {
        let pipeline = tmp.path().join(format!("{name}.toml"));
        std::fs::write(&pipeline, text).unwrap();
        let backfill = tmp.path().join(format!("{name}-backfill"));
        let one_by_one = tmp.path().join(format!("{name}-one-by-one"));
        let args = |out: &Path| {
            vec![
                "run".to_string(),
                "--pipeline".into(),
                pipeline.to_string_lossy().into_owned(),
                "--usage".into(),
                usage_uri.clone(),
                "--output".into(),
                out.to_string_lossy().into_owned(),
            ]
        };
        let mut all = args(&backfill);
        all.extend(["--cycles".to_string(), format!("{}..{}", cycles[0].0, cycles[3].0)]);
        let o = run(&all.iter().map(String::as_str).collect::<Vec<_>>());
        expect_code(&o, 0);
        for (cycle, _) in cycles {
            let mut one = args(&one_by_one);
            one.extend(["--cycle".to_string(), cycle.to_string()]);
            let o = run(&one.iter().map(String::as_str).collect::<Vec<_>>());
            expect_code(&o, 0);
        }
        for (cycle, _) in cycles {
            // Run ids aside, every column value for value.
            let rows = |out: &Path| glob_rows(out, cycle).unwrap().drop("run_id").unwrap();
            let (a, b) = (rows(&backfill), rows(&one_by_one));
            assert!(a.height() > 0);
            assert_eq!(a.schema(), b.schema(), "{name} {cycle}");
            for column in a.get_column_names() {
                let (x, y) = (a.column(column).unwrap(), b.column(column).unwrap());
                assert!(
                    x.as_materialized_series().equals_missing(y.as_materialized_series()),
                    "{name} {cycle}: column `{column}` differs"
                );
            }
            let (ra, rb) = (rejected(&backfill, cycle), rejected(&one_by_one, cycle));
            assert_eq!(
                ra.keys().collect::<Vec<_>>(),
                rb.keys().collect::<Vec<_>>(),
                "{name} {cycle}"
            );
            for (dataset, frame) in &ra {
                assert!(
                    frame.equals_missing(&rb[dataset]),
                    "{name} {cycle} {dataset}:\n{frame}\n{}",
                    rb[dataset]
                );
            }
            // A Delta table's manifests are in its data files' footers.
            let (Some(ma), Some(mb)) = (manifest(&backfill, cycle), manifest(&one_by_one, cycle)) else {
                assert_eq!(name, "delta", "{cycle}: no manifest");
                continue;
            };
            for key in ["rows", "quality", "coverage", "inputs", "segmentations", "previous"] {
                let strip = |m: &serde_json::Value| {
                    let mut v = m[key].clone();
                    if let Some(p) = v.as_object_mut() {
                        p.remove("run_id");
                    }
                    v
                };
                assert_eq!(strip(&ma), strip(&mb), "{name} {cycle}: manifest `{key}`");
            }
        }
        // The dirty rows were found in the cycles they fall in.
        let usage_rejects: usize = cycles
            .iter()
            .map(|(c, _)| rejected(&backfill, c).get("usage").map_or(0, |f| f.height()))
            .sum();
        assert!(usage_rejects >= 4, "{name}: {usage_rejects} usage rows rejected");
    }
}
