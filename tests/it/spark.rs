//! The usage pass on Apache Spark (`--engine spark`), against the real Spark
//! Connect server that `scripts/test` starts on loopback: what it commits
//! equals what the polars engine commits for every pipeline, on generated
//! data with point-in-time history, dirty usage under `drop` and `warn`, and
//! a backfill of several cycles; and its faults (unreachable, malformed,
//! failing server, a kill while Spark works, a token) end as promised.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use polars::prelude::*;

use crate::target::Target;
use crate::*;

/// The Spark Connect server of the test run.
fn remote() -> String {
    std::env::var("QUADRANT_TEST_SPARK_REMOTE").unwrap_or_else(|_| {
        panic!("QUADRANT_TEST_SPARK_REMOTE is not set: run the tests with `bash scripts/test`, which starts a Spark Connect server")
    })
}

/// `quadrant run --cycle 2026-Q3` with the usage pass on the test run's
/// Spark server, on the fixtures unless told otherwise.
fn run_on_spark() -> std::process::Command {
    let mut cmd = quadrant();
    cmd.args([
        "run",
        "--cycle",
        "2026-Q3",
        "--engine",
        "spark",
        "--spark-remote",
        &remote(),
    ]);
    cmd
}

/// An address where nothing listens.
fn nobody() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("sc://127.0.0.1:{port}")
}

const CYCLES: &str = "2025-Q4..2026-Q3";
const CYCLE_NAMES: [&str; 4] = ["2025-Q4", "2026-Q1", "2026-Q2", "2026-Q3"];

/// account_id, date, events, active_users, minutes.
type UsageRow<'a> = (Option<&'a str>, Option<i32>, Option<i64>, Option<i64>, Option<f64>);

/// Generated accounts with quarterly history, and their usage with a float
/// metric (`minutes`) and dirty rows, in two files: usage of unknown
/// accounts, negative metrics, a null account id, a null date, and a tie of
/// dates for `last`, in the windows of every cycle.
fn book(dir: &Path) {
    let out = run(&[
        "generate",
        "--out",
        dir.to_str().unwrap(),
        "--accounts",
        "300",
        "--days",
        "560",
        "--seed",
        "11",
        "--history",
    ]);
    expect_code(&out, 0);
    let usage = LazyFrame::scan_parquet(
        PlRefPath::new(dir.join("usage/part-00000.parquet").to_str().unwrap()),
        Default::default(),
    )
    .unwrap()
    .with_column(
        (col("events").cast(DataType::Float64) * lit(0.37) + col("active_users").cast(DataType::Float64) / lit(3.0))
            .alias("minutes"),
    )
    .collect()
    .unwrap();
    let half = usage.height() / 2;
    write_parquet(&mut usage.slice(0, half), &dir.join("usage-dirty/part-0.parquet"));
    write_parquet(
        &mut usage.slice(half as i64, usage.height() - half),
        &dir.join("usage-dirty/part-1.parquet"),
    );
    let known = strings(&usage, "account_id");
    let (a, b) = (known[0].as_str(), known[known.len() - 1].as_str());
    let mut ids: Vec<Option<&str>> = Vec::new();
    let mut dates: Vec<Option<i32>> = Vec::new();
    let mut events: Vec<Option<i64>> = Vec::new();
    let mut users: Vec<Option<i64>> = Vec::new();
    let mut minutes: Vec<Option<f64>> = Vec::new();
    // A day in the last month of each cycle (days since 1970-01-01):
    // 2025-12-15, 2026-03-15, 2026-06-15, 2026-09-15.
    for day in [20_437, 20_527, 20_619, 20_711] {
        let rows: [UsageRow; 7] = [
            (Some("ZZ-unknown-1"), Some(day), Some(4), Some(2), Some(1.5)),
            (Some("ZZ-unknown-2"), Some(day - 3), Some(9), Some(1), Some(0.25)),
            (Some(a), Some(day - 1), Some(-7), Some(3), Some(2.0)),
            (Some(b), Some(day - 2), Some(5), Some(2), Some(-1.25)),
            (None, Some(day), Some(3), Some(1), Some(1.0)),
            (Some(b), None, Some(2), Some(1), Some(1.0)),
            // The same date twice for one account: `last` takes the larger.
            (Some(a), Some(day + 5), Some(1), Some(7), Some(9.75)),
        ];
        for (id, date, e, u, m) in rows {
            ids.push(id);
            dates.push(date);
            events.push(e);
            users.push(u);
            minutes.push(m);
        }
        ids.push(Some(a));
        dates.push(Some(day + 5));
        events.push(Some(2));
        users.push(Some(5));
        minutes.push(Some(3.5));
    }
    let mut dirty = df! {
        "account_id" => ids,
        "date" => dates,
        "active_users" => users,
        "events" => events,
        "minutes" => minutes,
    }
    .unwrap()
    .lazy()
    .with_column(col("date").cast(DataType::Date))
    .collect()
    .unwrap();
    write_parquet(&mut dirty, &dir.join("usage-dirty/part-2.parquet"));
}

/// A pipeline file with the usage checks set to `policy`.
fn with_policy(pipeline: &Path, policy: &str, to: &Path) -> PathBuf {
    let keys = [
        "null_usage_account_id",
        "null_usage_date",
        "unknown_account_usage",
        "negative_usage",
    ];
    let text = std::fs::read_to_string(pipeline).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !keys.iter().any(|k| l.trim_start().starts_with(k)))
        .collect();
    let mut text = kept.join("\n");
    // A row without a key cannot be kept: null ids are dropped under `warn` too.
    let settings: String = keys
        .iter()
        .map(|k| {
            let policy = if *k == "null_usage_account_id" { "drop" } else { policy };
            format!("{k} = \"{policy}\"\n")
        })
        .collect();
    if text.contains("\n[quality]\n") {
        text = text.replacen("\n[quality]\n", &format!("\n[quality]\n{settings}"), 1);
    } else {
        text.push_str(&format!("\n[quality]\n{settings}"));
    }
    let name = format!("{}-{policy}.toml", pipeline.file_stem().unwrap().to_string_lossy());
    let path = to.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn commit(pipeline: &Path, data: &Path, out: &Path, engine: &[&str]) {
    commit_usage(pipeline, data, data.join("usage-dirty/").to_str().unwrap(), out, engine);
}

/// `commit` with the usage read from `usage` (a folder or a store's URI).
fn commit_usage(pipeline: &Path, data: &Path, usage: &str, out: &Path, engine: &[&str]) {
    let o = quadrant()
        .args(["run", "--pipeline", pipeline.to_str().unwrap()])
        .args(["--accounts", data.join("accounts.parquet").to_str().unwrap()])
        .args(["--usage", usage])
        .args(["--output", out.to_str().unwrap(), "--cycles", CYCLES])
        .args(engine)
        .output()
        .unwrap();
    expect_code(&o, 0);
    // On Spark, the backfill's usage is one query; on polars a pass per cycle.
    let one_query = stderr(&o).matches("one Spark query for the usage of 4 cycles").count();
    assert_eq!(one_query, usize::from(engine.contains(&"spark")), "{}", stderr(&o));
}

/// Two frames hold the same rows and columns: floats within `rel`
/// (relative; absolute below 1, where a feature such as `x / y - 1` turns
/// the last bit of a sum into an absolute difference), everything else
/// exactly, nulls in the same places.
#[track_caller]
fn assert_same(what: &str, a: &DataFrame, b: &DataFrame, rel: f64) {
    assert_eq!(a.get_column_names(), b.get_column_names(), "{what}: columns");
    assert_eq!(a.height(), b.height(), "{what}: rows");
    for (x, y) in a.columns().iter().zip(b.columns()) {
        assert_eq!(x.dtype(), y.dtype(), "{what}: type of {}", x.name());
        if x.dtype() == &DataType::Float64 && rel > 0.0 {
            let (x, y) = (x.f64().unwrap(), y.f64().unwrap());
            for (i, (p, q)) in x.iter().zip(y.iter()).enumerate() {
                match (p, q) {
                    (Some(p), Some(q)) => assert!(
                        p == q || (p - q).abs() <= rel * p.abs().max(q.abs()).max(1.0),
                        "{what}: {} row {i}: {p} vs {q}",
                        x.name()
                    ),
                    (p, q) => assert_eq!(p.is_none(), q.is_none(), "{what}: {} row {i}: {p:?} vs {q:?}", x.name()),
                }
            }
        } else {
            assert!(
                x.as_materialized_series().equals_missing(y.as_materialized_series()),
                "{what}: column {} differs",
                x.name()
            );
        }
    }
}

fn sorted(frame: DataFrame) -> DataFrame {
    let names: Vec<PlSmallStr> = frame.get_column_names().into_iter().cloned().collect();
    frame
        .sort(names, SortMultipleOptions::default().with_nulls_last(true))
        .unwrap()
}

/// One cycle committed by polars and by Spark agree: the snapshot (floats
/// within `rel`), the data-check counts, the usage rows and the rejected
/// rows. Returns both manifests and polars' rejected usage rows.
#[track_caller]
fn assert_same_cycle(
    what: &str,
    by_polars: &Path,
    by_spark: &Path,
    cycle: &str,
    rel: f64,
) -> (serde_json::Value, serde_json::Value, DataFrame) {
    let snapshot = |out: &Path| {
        let frame = read_parquet(&out.join(format!("segments/cycle={cycle}/part-0.parquet")));
        frame.drop("run_id").unwrap()
    };
    let a = snapshot(by_polars);
    assert!(a.height() > 100, "{what}: {} accounts", a.height());
    assert_same(what, &a, &snapshot(by_spark), rel);
    let (ma, mb) = (manifest(by_polars, cycle).unwrap(), manifest(by_spark, cycle).unwrap());
    assert_eq!(ma["quality"], mb["quality"], "{what}: data-check counts");
    assert_eq!(ma["inputs"]["usage"]["rows"], mb["inputs"]["usage"]["rows"], "{what}");
    let rejects = format!("rejects/cycle={cycle}/dataset=usage/part-0.parquet");
    let ra = sorted(read_parquet(&by_polars.join(&rejects)));
    let rb = sorted(read_parquet(&by_spark.join(&rejects)));
    assert_same(&format!("{what} rejects"), &ra, &rb, 0.0);
    (ma, mb, ra)
}

#[test]
fn spark_commits_what_polars_commits_for_every_pipeline_policy_and_cycle() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    book(&data);
    let spark = remote();
    let mut pipelines: Vec<(PathBuf, f64)> = std::fs::read_dir(root().join("pipelines"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| (p, 0.0))
        .collect();
    assert!(!pipelines.is_empty());
    // Spark's double sums depend on its partitioning: float aggregates
    // within a relative 1e-12 (docs/scale-out.md); integers exactly.
    pipelines.push((root().join("tests/spark/every_aggregate.toml"), 1e-12));
    for (pipeline, rel) in &pipelines {
        for policy in ["drop", "warn"] {
            let p = with_policy(pipeline, policy, tmp.path());
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            let (by_polars, by_spark) = (
                tmp.path().join(format!("{name}-polars")),
                tmp.path().join(format!("{name}-spark")),
            );
            commit(&p, &data, &by_polars, &[]);
            commit(&p, &data, &by_spark, &["--engine", "spark", "--spark-remote", &spark]);
            for cycle in CYCLE_NAMES {
                let what = format!("{name} {cycle}");
                let (ma, mb, ra) = assert_same_cycle(&what, &by_polars, &by_spark, cycle, *rel);
                assert_eq!(ma["inputs"]["usage"]["files"], mb["inputs"]["usage"]["files"], "{what}");
                assert!(ma["inputs"]["usage"].get("read_by").is_none(), "{what}");
                let read_by = mb["inputs"]["usage"]["read_by"].as_str().unwrap_or_default();
                assert!(
                    read_by.starts_with(&format!("spark {spark} (Spark 4.")),
                    "{what}: {read_by}"
                );
                let found: Vec<&str> = ma["quality"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|f| f["dataset"] == "usage")
                    .map(|f| f["check"].as_str().unwrap())
                    .collect();
                assert_eq!(found.len(), 4, "{what}: every usage check finds rows: {found:?}");
                let reasons = ra.column("reason").unwrap().n_unique().unwrap();
                assert_eq!(reasons, if policy == "drop" { 4 } else { 1 }, "{what}: {ra}");
            }
        }
    }
}

/// Usage in object storage, read by the Spark server's own Hadoop
/// connectors (S3A against moto, ABFS against Azurite, Google's GCS
/// connector against fake-gcs-server; the credentials are the server's,
/// quadrant sends none): over a backfill of dirty usage,
/// `--engine spark` commits what polars commits from the same files on the
/// local disk, for the shipped pipeline and one with every aggregate; and a
/// file in the store that Spark would read and quadrant does not list is
/// refused, naming it, with nothing written.
#[test]
fn spark_reads_the_usage_from_s3_azure_and_gcs_as_polars_does_from_local_files() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    book(&data);
    let spark = remote();
    let (s3, azure) = (Target::s3(), Target::azure());
    let prefix = |t: &Target| {
        t.uri()
            .split_once("://")
            .unwrap()
            .1
            .split_once('/')
            .unwrap()
            .1
            .to_string()
    };
    // Hadoop's ABFS names an Azure folder by container and account host.
    let abfs = format!(
        "abfs://quadrant-test@devstoreaccount1.dfs.core.windows.net/{}",
        prefix(&azure)
    );
    let gcs = Target::gcs();
    let stores = [(&s3, s3.uri()), (&azure, abfs), (&gcs, gcs.uri())];
    for (target, _) in &stores {
        for part in ["part-0.parquet", "part-1.parquet", "part-2.parquet"] {
            target.upload(&data.join("usage-dirty").join(part), &format!("usage-dirty/{part}"));
        }
    }
    let pipelines = [
        (root().join("pipelines/default.toml"), 0.0),
        (root().join("tests/spark/every_aggregate.toml"), 1e-12),
    ];
    for (pipeline, rel) in &pipelines {
        let p = with_policy(pipeline, "drop", tmp.path());
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        let by_polars = tmp.path().join(format!("{name}-polars"));
        commit(&p, &data, &by_polars, &[]);
        for (target, root_uri) in &stores {
            let what = format!("{name} from {}", target.name());
            let usage = format!("{root_uri}/usage-dirty/");
            let by_spark = tmp.path().join(format!("{name}-spark-{}", target.name()));
            commit_usage(
                &p,
                &data,
                &usage,
                &by_spark,
                &["--engine", "spark", "--spark-remote", &spark],
            );
            for cycle in CYCLE_NAMES {
                let what = format!("{what} {cycle}");
                let (_, mb, _) = assert_same_cycle(&what, &by_polars, &by_spark, cycle, *rel);
                let files: Vec<&str> = mb["inputs"]["usage"]["files"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f["uri"].as_str().unwrap())
                    .collect();
                assert_eq!(files.len(), 3, "{what}: {files:?}");
                assert!(
                    files.iter().all(|f| f.starts_with(root_uri.as_str())),
                    "{what}: {files:?}"
                );
            }
        }
    }

    // A Parquet file without a `.parquet` name: Spark's listing of the
    // folder would read it, quadrant's does not.
    for ((target, root_uri), read_as) in stores.iter().zip(["s3a://", "abfs://", "gs://"]) {
        target.upload(&data.join("usage-dirty/part-1.parquet"), "usage-dirty/part-1-copy");
        let out = tmp.path().join(format!("refused-{}", target.name()));
        let o = run_on_spark()
            .args(["--usage", &format!("{root_uri}/usage-dirty/"), "--output"])
            .arg(&out)
            .output()
            .unwrap();
        expect_code(&o, 2);
        let err = stderr(&o);
        assert!(
            err.contains(&format!("Spark only: {read_as}")),
            "{}: {err}",
            target.name()
        );
        assert!(err.contains("usage-dirty/part-1-copy"), "{}: {err}", target.name());
        assert!(tree(&out).is_empty());
    }
}

#[test]
fn validate_and_explain_of_an_uncommitted_cycle_say_the_same_on_spark() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().to_str().unwrap();
    let spark = remote();
    for args in [
        vec!["validate", "--cycle", "2026-Q3"],
        vec![
            "explain",
            "--cycle",
            "2026-Q3",
            "--account",
            "A0000002",
            "--output",
            out,
        ],
    ] {
        let local = run(&args);
        expect_code(&local, 0);
        let mut on_spark = args.clone();
        on_spark.extend(["--engine", "spark", "--spark-remote", &spark]);
        let remote = run(&on_spark);
        expect_code(&remote, 0);
        let said = stdout(&remote);
        let (engine_line, rest): (Vec<&str>, Vec<&str>) = said.lines().partition(|l| l.starts_with("usage pass: "));
        if args[0] == "validate" {
            assert_eq!(engine_line.len(), 1, "{said}");
            assert!(
                engine_line[0].contains("(Spark 4.") && engine_line[0].contains("the same 1 file(s)"),
                "{said}"
            );
        }
        let rest: String = rest.iter().map(|l| format!("{l}\n")).collect();
        assert_eq!(stdout(&local), rest, "{args:?}");
    }
}

#[test]
fn the_remote_comes_from_spark_remote_as_pyspark_reads_it() {
    let tmp = tempfile::tempdir().unwrap();
    let o = quadrant()
        .args(["run", "--cycle", "2026-Q3", "--engine", "spark", "--output"])
        .arg(tmp.path())
        .env("SPARK_REMOTE", remote())
        .output()
        .unwrap();
    expect_code(&o, 0);
    assert!(stderr(&o).contains("usage pass on Spark"), "{}", stderr(&o));
}

#[test]
fn an_unreachable_remote_fails_fast_naming_it_without_its_token() {
    let tmp = tempfile::tempdir().unwrap();
    let token = "quadrant-spark-token-4f9c2e";
    let remote = format!("{}/;token={token}", nobody());
    let started = std::time::Instant::now();
    let o = quadrant()
        .args(["run", "--cycle", "2026-Q3", "--engine", "spark", "--output"])
        .arg(tmp.path())
        .args(["--spark-remote", &remote])
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    expect_code(&o, 1);
    // The client alone would retry for minutes before giving up.
    assert!(started.elapsed().as_secs() < 60, "took {:?}", started.elapsed());
    let err = stderr(&o);
    assert!(err.contains(&format!("Spark at {}", shown(&remote))), "{err}");
    assert!(!err.contains(token) && !stdout(&o).contains(token), "{err}");
    assert!(tree(tmp.path()).is_empty(), "{:?}", tree(tmp.path()));
}

/// `sc://host:port` of a connection string.
fn shown(remote: &str) -> &str {
    &remote[..remote.find("/;").unwrap_or(remote.len())]
}

#[test]
fn a_malformed_remote_or_none_is_a_usage_error() {
    for args in [
        vec!["--engine", "spark", "--spark-remote", "localhost:15002"],
        vec!["--engine", "spark", "--spark-remote", "sc://host:port"],
        vec![
            "--engine",
            "spark",
            "--spark-remote",
            "sc://spark.example:15002/;token=abcdefgh12",
        ],
        vec!["--engine", "spark"],
    ] {
        let o = quadrant()
            .args(["run", "--cycle", "2026-Q3", "--output", "/nonexistent/never-written"])
            .args(&args)
            .env_remove("SPARK_REMOTE")
            .output()
            .unwrap();
        expect_code(&o, 2);
        assert!(!stderr(&o).contains("abcdefgh12"), "{}", stderr(&o));
    }
}

#[test]
fn a_spark_error_is_exit_1_with_sparks_message() {
    // Spark's ANSI mode refuses a sum that overflows 64 bits.
    let tmp = tempfile::tempdir().unwrap();
    let mut usage = df! {
        "account_id" => ["A0000002", "A0000002"],
        "date" => [20_700i32, 20_701],
        "events" => [i64::MAX - 1, i64::MAX - 1],
        "active_users" => [1i64, 1],
    }
    .unwrap()
    .lazy()
    .with_column(col("date").cast(DataType::Date))
    .collect()
    .unwrap();
    write_parquet(&mut usage, &tmp.path().join("usage/u.parquet"));
    // Two days of usage: past the coverage check only with the opt-out.
    let o = run_on_spark()
        .args(["--usage", tmp.path().join("usage/").to_str().unwrap()])
        .args(["--output", tmp.path().join("out").to_str().unwrap()])
        .arg("--allow-incomplete-usage")
        .output()
        .unwrap();
    expect_code(&o, 1);
    let err = stderr(&o);
    assert!(err.contains("Spark at sc://127.0.0.1:"), "{err}");
    assert!(
        err.contains("ARITHMETIC_OVERFLOW") || err.to_lowercase().contains("overflow"),
        "{err}"
    );
    assert!(glob_partition(&tmp.path().join("out"), "2026-Q3").is_empty());
}

/// A run on Spark into `out`, returned once it has reached Spark, with
/// the rest of its log lines.
fn spawn_until_spark(out: &Path) -> (std::process::Child, impl Iterator<Item = String>) {
    let mut child = run_on_spark()
        .arg("--output")
        .arg(out)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(|l| l.ok());
    assert!(
        lines.by_ref().any(|l| l.contains("usage pass on Spark")),
        "the run never reached Spark"
    );
    (child, lines)
}

/// Nothing under `segments/` or `rejects/`: what a reader would see.
#[track_caller]
fn assert_nothing_visible(out: &Path) {
    let files = tree(out);
    assert!(
        !files
            .iter()
            .any(|f| f.starts_with("segments/") || f.starts_with("rejects/")),
        "{files:?}"
    );
}

#[test]
fn a_run_killed_while_spark_works_leaves_nothing_visible_and_the_next_run_commits() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (mut child, _lines) = spawn_until_spark(&out);
    child.kill().unwrap(); // SIGKILL, while Spark computes the aggregates
    child.wait().unwrap();
    assert!(glob_partition(&out, "2026-Q3").is_empty());
    assert_nothing_visible(&out);

    let again = run_on_spark().arg("--output").arg(&out).output().unwrap();
    expect_code(&again, 0);
    let local = tmp.path().join("local");
    expect_code(
        &run(&["run", "--cycle", "2026-Q3", "--output", local.to_str().unwrap()]),
        0,
    );
    let committed = |o: &Path| glob_rows(o, "2026-Q3").unwrap().drop("run_id").unwrap();
    assert_same("after the kill", &committed(&out), &committed(&local), 0.0);
}

#[test]
fn a_token_reaches_neither_logs_results_nor_snapshots() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let token = "quadrant-spark-token-b7d31a";
    let summary = tmp.path().join("summary.json");
    let o = quadrant()
        .args([
            "run", "--cycle", "2026-Q3", "--engine", "spark", "--json", "-vv", "--output",
        ])
        .arg(&out)
        .arg("--summary-file")
        .arg(&summary)
        .env("SPARK_REMOTE", format!("{}/;token={token}", remote()))
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    expect_code(&o, 0);
    assert!(!stdout(&o).contains(token) && !stderr(&o).contains(token));
    for f in tree(tmp.path()) {
        let bytes = std::fs::read(tmp.path().join(&f)).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(token), "{f} holds the token");
    }
}

#[test]
fn plan_prints_the_spark_sql_without_running_it() {
    // Against an address where nothing listens: plan must not connect.
    let plan = |extra: &[&str]| -> String {
        let o = quadrant()
            .args([
                "plan",
                "--cycle",
                "2026-Q3",
                "--engine",
                "spark",
                "--spark-remote",
                &nobody(),
            ])
            .args(extra)
            .output()
            .unwrap();
        expect_code(&o, 0);
        stdout(&o)
    };
    let text = plan(&[]);
    assert!(text.contains("GROUP BY account_id"), "{text}");
    assert!(
        text.contains("date > DATE '2026-07-02' AND date <= DATE '2026-09-30'"),
        "{text}"
    );
    assert!(text.contains("FROM parquet.`file:///"), "{text}");
    assert!(text.contains("SET spark.sql.session.timeZone = UTC"), "{text}");
    assert!(
        !text.contains("rows it rejects"),
        "the default pipeline drops no usage: {text}"
    );
    // With `drop` policies, the queries of the rows each check rejects.
    let tmp = tempfile::tempdir().unwrap();
    let dropping = with_policy(&root().join("pipelines/default.toml"), "drop", tmp.path());
    let text = plan(&["--pipeline", dropping.to_str().unwrap()]);
    for check in [
        "null_usage_account_id",
        "null_usage_date",
        "unknown_account_usage",
        "negative_usage",
    ] {
        assert!(
            text.contains(&format!("when data check {check} finds rows"))
                && text.contains(&format!("'{check}' AS `reason`")),
            "{check}: {text}"
        );
    }
    let local = run(&["plan", "--cycle", "2026-Q3"]);
    expect_code(&local, 0);
    assert!(stdout(&local).contains("events_per_day_90d"), "{}", stdout(&local));
}

#[test]
fn spark_must_read_the_files_quadrant_records() {
    // A Parquet file without a `.parquet` name: quadrant's listing skips it,
    // Spark's would read it; the two would not describe the same input.
    let tmp = tempfile::tempdir().unwrap();
    let usage = tmp.path().join("usage");
    std::fs::create_dir_all(&usage).unwrap();
    let fixture = root().join("fixtures/usage/part-00000.parquet");
    std::fs::copy(&fixture, usage.join("part-0.parquet")).unwrap();
    std::fs::copy(&fixture, usage.join("part-1-copy")).unwrap();
    let out = tmp.path().join("out");
    let usage_uri = format!("{}/", usage.display());
    let commit = || {
        run_on_spark()
            .args(["--usage", &usage_uri, "--output"])
            .arg(&out)
            .output()
            .unwrap()
    };
    let o = commit();
    expect_code(&o, 2);
    assert!(stderr(&o).contains("part-1-copy"), "{}", stderr(&o));
    assert!(tree(&out).is_empty());

    std::fs::remove_file(usage.join("part-1-copy")).unwrap();
    expect_code(&commit(), 0);
}

#[test]
fn hive_trees_and_globs_read_the_same_rows_on_both_engines() {
    let tmp = tempfile::tempdir().unwrap();
    let usage = read_parquet(&root().join("fixtures/usage/part-00000.parquet"));
    for year in [2024, 2025, 2026] {
        let mut part = usage
            .clone()
            .lazy()
            .filter(col("date").dt().year().eq(lit(year)))
            .collect()
            .unwrap();
        write_parquet(&mut part, &tmp.path().join(format!("usage/year={year}/part-0.parquet")));
    }
    let tree_uri = format!("{}/usage/", tmp.path().display());
    let glob_uri = format!("{}/usage/year=202[56]/*.parquet", tmp.path().display());
    for (name, uri) in [("tree", tree_uri), ("glob", glob_uri)] {
        let committed = |engine: &[&str]| {
            let out = tmp.path().join(format!("{name}-{}", engine.len()));
            let o = quadrant()
                .args(["run", "--cycle", "2026-Q3", "--usage", &uri, "--output"])
                .arg(&out)
                .args(engine)
                .output()
                .unwrap();
            expect_code(&o, 0);
            glob_rows(&out, "2026-Q3").unwrap().drop("run_id").unwrap()
        };
        let local = committed(&[]);
        let spark = committed(&["--engine", "spark", "--spark-remote", &remote()]);
        assert_same(name, &local, &spark, 0.0);
    }
}

#[test]
fn a_stopped_run_interrupts_its_spark_work_and_leaves_nothing_visible() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (mut child, lines) = spawn_until_spark(&out);
    // What an orchestrator sends when it stops a task.
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let rest: Vec<String> = lines.collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(128 + 15), "{rest:?}");
    assert!(
        rest.iter()
            .any(|l| l.contains("interrupting this run's Spark operations")),
        "{rest:?}"
    );
    assert_nothing_visible(&out);
}
