//! `[output] format = "delta"`: the snapshot, rejects and compare tables as
//! Delta Lake tables, read by the real Delta readers (the `deltalake`
//! package and Python polars' `scan_delta`, tests/delta/reader.py) on the
//! local disk, S3 (moto) and Azure (Azurite). The guarantees of SPEC.md
//! section 6, for Delta readers: runs killed on each side of the commit
//! point, concurrent runs, `--replace` as one commit with time travel to
//! what it replaced, checkpoints, schema growth, vacuum.

use std::process::{Child, Stdio};

use serde_json::Value;

use crate::commit::{CYCLE, STEPS, dirty_inputs, wait_for_pause};
use crate::target::Target;
use crate::*;

/// A copy of a pipeline file with `[output] format = "delta"`.
pub(crate) fn delta_pipeline(dir: &std::path::Path, from: &std::path::Path) -> String {
    let text = std::fs::read_to_string(from).unwrap();
    assert!(text.contains("\n[output]\n"), "{}", from.display());
    let path = dir.join("delta.toml");
    std::fs::write(&path, text.replace("\n[output]\n", "\n[output]\nformat = \"delta\"\n")).unwrap();
    path.to_string_lossy().into_owned()
}

fn default_delta_pipeline(dir: &std::path::Path) -> String {
    delta_pipeline(dir, &root().join("pipelines/default.toml"))
}

/// What the Delta readers see of the table at `rel` under the target, at
/// its latest version or at `version`; `None` when there is no table.
pub(crate) fn read_delta(target: &Target, rel: &str, version: Option<u64>) -> Option<Value> {
    if !target
        .files()
        .iter()
        .any(|f| f.starts_with(&format!("{rel}/_delta_log/")))
    {
        return None;
    }
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(root().join("tests/delta/reader.py"))
        .arg(format!("{}/{rel}", target.uri()));
    if let Some(v) = version {
        cmd.arg(v.to_string());
    }
    let o = cmd
        .output()
        .expect("python3 runs; scripts/test installs deltalake and polars");
    assert!(o.status.success(), "{} {rel}: {}", target.name(), stderr(&o));
    let seen: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        seen["polars"]["partitions"],
        seen["partitions"],
        "{} {rel}: polars' scan_delta sees what deltalake sees",
        target.name()
    );
    assert_eq!(seen["polars"]["rows"], seen["rows"]);
    Some(seen)
}

/// The run whose rows a Delta reader sees in the cycle (one run, every
/// account once), or `None`.
fn delta_run(seen: Option<&Value>, cycle: &str) -> Option<String> {
    let seen = seen?;
    let runs = seen["partitions"][cycle].as_object()?;
    assert_eq!(runs.len(), 1, "one run's rows in {cycle}: {runs:?}");
    let (run, rows) = runs.iter().next().unwrap();
    assert_eq!(
        Some(rows),
        seen["accounts"].get(cycle),
        "every account of {cycle} once: as many rows as distinct accounts"
    );
    Some(run.clone())
}

fn run_delta(target: &Target, pipeline: &str, extra: &[&str]) -> std::process::Output {
    let uri = target.uri();
    let mut args = vec!["run", "--pipeline", pipeline, "--output", &uri];
    args.extend_from_slice(extra);
    run(&args)
}

fn spawn_delta(target: &Target, pipeline: &str, extra: &[&str], pause_at: Option<&str>) -> Child {
    let mut cmd = quadrant();
    cmd.args(["run", "--pipeline", pipeline, "--output", &target.uri()])
        .args(extra);
    if let Some(point) = pause_at {
        cmd.env("QUADRANT_PAUSE_AT", point);
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

/// A run of `CYCLE` that waits `seconds` before writing its data (the
/// moment another writer commits to the cycle), then goes on; returned once
/// it waits.
fn run_waiting_before_data(target: &Target, pipeline: &str, seconds: u32) -> Child {
    let mut child = quadrant();
    child
        .args([
            "run",
            "--pipeline",
            pipeline,
            "--output",
            &target.uri(),
            "--cycle",
            CYCLE,
        ])
        .env("QUADRANT_PAUSE_AT", "before-data")
        .env("QUADRANT_PAUSE_SECONDS", seconds.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = child.spawn().unwrap();
    wait_for_pause(&mut child, "before-data");
    child
}

fn cycles_json(target: &Target) -> Vec<Value> {
    let o = run(&["cycles", "--output", &target.uri(), "--json"]);
    expect_code(&o, 0);
    serde_json::from_str::<Value>(&stdout(&o))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// Files below the root that are not under `_delta_log/`.
fn data_files(target: &Target) -> Vec<String> {
    target
        .files()
        .into_iter()
        .filter(|f| !f.contains("/_delta_log/"))
        .collect()
}

/// quadrant's record, the Delta log and the readers agree: `cycles` lists
/// the run the readers see, `_manifest.json` is that run, and the log's
/// latest write of the cycle carries its run id.
fn assert_agree(target: &Target, cycle: &str) -> Option<String> {
    let seen = read_delta(target, "segments", None);
    let run_id = delta_run(seen.as_ref(), cycle);
    let listed: Option<String> = cycles_json(target)
        .iter()
        .find(|c| c["cycle"] == cycle)
        .map(|c| c["run_id"].as_str().unwrap().to_string());
    assert_eq!(
        listed,
        run_id,
        "{}: `cycles` lists the run the readers see",
        target.name()
    );
    let manifest = target
        .manifest(cycle)
        .map(|m| m["run_id"].as_str().unwrap().to_string());
    assert_eq!(manifest, run_id, "{}: the catalog is the committed run", target.name());
    if let (Some(seen), Some(run_id)) = (&seen, &run_id) {
        let last = seen["history"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .find(|h| h["quadrant"]["cycle"] == cycle)
            .unwrap();
        assert_eq!(last["quadrant"]["run_id"].as_str(), Some(run_id.as_str()));
    }
    run_id
}

/// A cycle committed, a rerun refused with nothing changed, a replace as one
/// Delta commit: readers see one run per cycle, the version before the
/// replace returns the replaced rows, and the history shows one commit per
/// run with its record.
#[test]
fn delta_commits_replaces_and_time_travels_on_every_store() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = default_delta_pipeline(dir.path());
    for target in Target::all() {
        let name = target.name();
        expect_code(&run_delta(&target, &pipeline, &["--cycle", "2026-Q2"]), 0);
        expect_code(&run_delta(&target, &pipeline, &["--cycle", CYCLE]), 0);
        let first = assert_agree(&target, CYCLE).unwrap();
        let before = read_delta(&target, "segments", None).unwrap();
        assert_eq!(before["partition_columns"], serde_json::json!(["cycle"]));
        for (column, kind) in [
            ("as_of", "Date"),
            ("account_id", "String"),
            ("arr", "Float64"),
            ("employees", "Int64"),
            ("wallet_share_matrix", "String"),
            ("cycle", "String"),
        ] {
            assert_eq!(before["types"][column], kind, "{name}: {column}");
        }
        let files = target.files();

        let again = run_delta(&target, &pipeline, &["--cycle", CYCLE]);
        expect_code(&again, 4);
        assert!(stderr(&again).contains("already committed"), "{}", stderr(&again));
        assert_eq!(target.files(), files, "{name}: nothing changed");

        expect_code(&run_delta(&target, &pipeline, &["--cycle", CYCLE, "--replace"]), 0);
        let second = assert_agree(&target, CYCLE).unwrap();
        assert_ne!(first, second);
        let after = read_delta(&target, "segments", None).unwrap();
        let version = after["version"].as_u64().unwrap();
        assert_eq!(
            version,
            before["version"].as_u64().unwrap() + 1,
            "{name}: a replace is one commit"
        );
        assert_eq!(delta_run(Some(&after), "2026-Q2"), delta_run(Some(&before), "2026-Q2"));
        let old = read_delta(&target, "segments", Some(version - 1)).unwrap();
        assert_eq!(
            delta_run(Some(&old), CYCLE).as_deref(),
            Some(first.as_str()),
            "{name}: time travel"
        );
        assert_eq!(old["partitions"][CYCLE][&first], after["partitions"][CYCLE][&second]);

        let writes: Vec<&Value> = after["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["operation"] == "WRITE")
            .collect();
        let runs: Vec<&str> = writes
            .iter()
            .map(|h| h["quadrant"]["run_id"].as_str().unwrap())
            .collect();
        assert_eq!(runs.len(), 3, "{name}: one commit per run: {runs:?}");
        assert_eq!(runs[1], first);
        assert_eq!(runs[2], second);
        let replace = writes[2];
        assert_eq!(replace["mode"], "Overwrite");
        assert_eq!(replace["predicate"], format!("cycle = '{CYCLE}'"));
        assert_eq!(replace["quadrant"]["replaced_run"], first.as_str());
        assert_eq!(writes[1]["mode"], "Append");
        let manifest = target.manifest(CYCLE).unwrap();
        assert_eq!(replace["quadrant"]["pipeline_hash"], manifest["pipeline"]["hash"]);
        assert_eq!(replace["quadrant"]["rows"], manifest["rows"]);
        assert_eq!(
            replace["quadrant"]["labels"]["wallet_share_matrix"]["Grow"],
            manifest["segmentations"][0]["labels"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["label"] == "Grow")
                .unwrap()["accounts"]
        );
        assert!(replace["userMetadata"].as_str().unwrap().contains(&second));
        // The replaced file stays for time travel; nothing else is left.
        let mut partition = target.partition_files(CYCLE);
        partition.sort();
        let mut want = vec![
            format!("segments/cycle={CYCLE}/part-{first}.parquet"),
            format!("segments/cycle={CYCLE}/part-{second}.parquet"),
        ];
        want.sort();
        assert_eq!(partition, want, "{name}");
    }
}

/// Guarantee 2 for Delta readers: a run killed at any step, before or
/// after the commit point (the put of the log entry, between `before-data`
/// and `before-manifest`), leaves readers on one version: the previous one
/// before it, the run's after it; the next run, even one that exits 4,
/// repairs the rest, and quadrant's record agrees with the log.
#[test]
fn a_delta_run_killed_at_any_step_leaves_readers_on_one_version() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = default_delta_pipeline(dir.path());
    for make in [Target::local, Target::s3, Target::azure] {
        for replace in [false, true] {
            for (i, point) in STEPS.iter().enumerate() {
                let target = make();
                let name = format!("{} replace={replace} {point}", target.name());
                let first = if replace {
                    expect_code(&run_delta(&target, &pipeline, &["--cycle", CYCLE]), 0);
                    delta_run(read_delta(&target, "segments", None).as_ref(), CYCLE)
                } else {
                    None
                };
                let extra: &[&str] = if replace {
                    &["--cycle", CYCLE, "--replace"]
                } else {
                    &["--cycle", CYCLE]
                };
                let mut child = spawn_delta(&target, &pipeline, extra, Some(point));
                wait_for_pause(&mut child, point);
                let paused = read_delta(&target, "segments", None);
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                let killed = read_delta(&target, "segments", None);
                assert_eq!(
                    killed.as_ref().map(|s| s["version"].clone()),
                    paused.as_ref().map(|s| s["version"].clone()),
                    "{name}: the kill changed nothing a reader sees"
                );
                let seen = delta_run(killed.as_ref(), CYCLE);
                let committed = i >= STEPS.iter().position(|s| *s == "before-manifest").unwrap();
                if committed {
                    assert!(seen.is_some() && seen != first, "{name}: the killed run committed");
                } else {
                    assert_eq!(seen, first, "{name}: readers stay on the previous version");
                }

                let next = run_delta(&target, &pipeline, &["--cycle", CYCLE]);
                expect_code(&next, if seen.is_some() { 4 } else { 0 });
                let now = assert_agree(&target, CYCLE);
                if seen.is_some() {
                    assert_eq!(now, seen, "{name}: the exit-4 run changed no rows");
                }
                let now = now.unwrap();
                // Only the committed run's file, and the replaced run's file
                // kept for time travel, remain.
                let mut want = vec![
                    format!("segments/cycle={CYCLE}/_manifest.json"),
                    format!("segments/cycle={CYCLE}/part-{now}.parquet"),
                ];
                if let Some(first) = first.as_ref().filter(|f| **f != now) {
                    want.push(format!("segments/cycle={CYCLE}/part-{first}.parquet"));
                }
                want.sort();
                assert_eq!(
                    data_files(&target),
                    want,
                    "{name}: only the committed runs' files remain"
                );
            }
        }
    }
}

/// Guarantee 4: two runs of one cycle at once, exactly one commits; the
/// other exits 4 and leaves nothing behind. Runs of different cycles at
/// once all commit: each retries on the version the other made.
#[test]
fn concurrent_delta_runs_one_cycle_one_commit_other_cycles_all_commit() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = default_delta_pipeline(dir.path());
    for target in Target::all() {
        let name = target.name();
        let a = spawn_delta(&target, &pipeline, &["--cycle", CYCLE], None);
        let b = spawn_delta(&target, &pipeline, &["--cycle", CYCLE], None);
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        let mut codes = vec![a.status.code().unwrap(), b.status.code().unwrap()];
        codes.sort();
        assert_eq!(codes, [0, 4], "{name}\n{}\n{}", stderr(&a), stderr(&b));
        assert_agree(&target, CYCLE).unwrap();
        assert_eq!(target.partition_files(CYCLE).len(), 1, "{name}: the loser left nothing");

        let others = ["2025-Q3", "2025-Q4", "2026-Q1", "2026-Q2"];
        let children: Vec<Child> = others
            .iter()
            .map(|c| spawn_delta(&target, &pipeline, &["--cycle", c], None))
            .collect();
        for child in children {
            let o = child.wait_with_output().unwrap();
            expect_code(&o, 0);
        }
        let seen = read_delta(&target, "segments", None).unwrap();
        for cycle in others.iter().chain([&CYCLE]) {
            assert!(delta_run(Some(&seen), cycle).is_some(), "{name}: {cycle}");
            assert_agree(&target, cycle);
        }
    }
}

/// The lock keeps two quadrant runs of a cycle apart; the Delta commit
/// itself refuses to replace files it did not read: when another writer
/// (here the `deltalake` package) commits to the cycle's partition while a
/// run waits before its commit, the run exits 4 and removes its files, and
/// the other writer's commit stands. On every store.
#[test]
fn a_delta_commit_loses_to_another_writers_commit_in_its_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = default_delta_pipeline(dir.path());
    for target in Target::all() {
        let name = target.name();
        expect_code(&run_delta(&target, &pipeline, &["--cycle", "2026-Q2"]), 0);
        let child = run_waiting_before_data(&target, &pipeline, 6);
        // Another writer appends 2026-Q2's rows as 2026-Q3.
        let o = std::process::Command::new("python3")
            .arg(root().join("tests/delta/other_writer.py"))
            .args([&format!("{}/segments", target.uri()), "2026-Q2", CYCLE])
            .output()
            .unwrap();
        assert!(o.status.success(), "{name}: {:?} {}", o.status, stderr(&o));
        let o = child.wait_with_output().unwrap();
        // (Its stderr went to wait_for_pause.)
        expect_code(&o, 4);
        let seen = read_delta(&target, "segments", None).unwrap();
        assert_eq!(
            delta_run(Some(&seen), CYCLE),
            delta_run(Some(&seen), "2026-Q2"),
            "{name}: the other writer's rows stand"
        );
        assert_eq!(
            target.partition_files(CYCLE).len(),
            1,
            "{name}: the losing run removed its file: {:?}",
            target.files()
        );
    }
}

/// Rejects and compare's tables are Delta tables: the rejects of a replace
/// are committed with it (its version before shows the old rejects), a
/// replace killed after its commit publishes its rejects once a reader has
/// looked; `compare` commits each table's pair as one partition that a rerun
/// replaces; `report` and `explain` read Delta output.
#[test]
fn rejects_and_compare_tables_are_delta_tables() {
    let inputs = tempfile::tempdir().unwrap();
    let (dirty, old_accounts) = dirty_inputs(&inputs.path().join("old"), &["A0000001", "A0000002"]);
    let (_, new_accounts) = dirty_inputs(&inputs.path().join("new"), &["A0000003"]);
    let pipeline = delta_pipeline(inputs.path(), std::path::Path::new(&dirty));
    let rejected = |seen: &Value| -> u64 {
        seen["partitions"][CYCLE]
            .as_object()
            .map_or(0, |runs| runs.values().map(|n| n.as_u64().unwrap()).sum())
    };
    for target in Target::all() {
        let name = target.name();
        let uri = target.uri();
        expect_code(&run_delta(&target, &pipeline, &["--cycle", "2026-Q2"]), 0);
        expect_code(
            &run_delta(&target, &pipeline, &["--cycle", CYCLE, "--accounts", &old_accounts]),
            0,
        );
        let old = read_delta(&target, "rejects/accounts", None).unwrap();
        assert_eq!(rejected(&old), 2, "{name}: {old}");
        assert!(old["types"]["reason"].is_string(), "{name}: {}", old["types"]);

        let mut child = spawn_delta(
            &target,
            &pipeline,
            &["--cycle", CYCLE, "--accounts", &new_accounts, "--replace"],
            Some("before-manifest"),
        );
        wait_for_pause(&mut child, "before-manifest");
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(
            read_delta(&target, "rejects/accounts", None).unwrap()["version"],
            old["version"],
            "{name}: not yet published"
        );
        assert_agree(&target, CYCLE);
        let new = read_delta(&target, "rejects/accounts", None).unwrap();
        assert_eq!(
            rejected(&new),
            1,
            "{name}: the committed run's rejects, published by the reader"
        );
        let manifest = target.manifest(CYCLE).unwrap();
        let reject_runs: Vec<&String> = new["partitions"][CYCLE].as_object().unwrap().keys().collect();
        assert_eq!(reject_runs, ["*"]);
        assert!(
            manifest["outputs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|o| o["kind"] == "rejects" && o["path"].as_str().unwrap().starts_with("rejects/accounts/cycle=")),
            "{manifest}"
        );
        let before = new["version"].as_u64().unwrap() - 1;
        assert_eq!(
            rejected(&read_delta(&target, "rejects/accounts", Some(before)).unwrap()),
            2,
            "{name}: the version before the replace has the old rejects"
        );

        for _ in 0..2 {
            let o = run(&["compare", "--from", "2026-Q2", "--to", CYCLE, "--output", &uri]);
            expect_code(&o, 0);
            assert!(stdout(&o).contains(&format!("{uri}/compare")), "{}", stdout(&o));
        }
        for table in ["transitions", "retention", "bridge", "moves"] {
            let seen = read_delta(&target, &format!("compare/{table}"), None).unwrap();
            assert_eq!(
                seen["partition_columns"],
                serde_json::json!(["from", "to"]),
                "{name} {table}"
            );
            let pairs = seen["partitions"].as_object().unwrap();
            assert_eq!(
                pairs.keys().collect::<Vec<_>>(),
                [&format!("2026-Q2/{CYCLE}")],
                "{name} {table}"
            );
            assert!(seen["rows"].as_u64().unwrap() > 0, "{name} {table}");
            let writes = seen["history"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|h| h["operation"] == "WRITE")
                .count();
            assert_eq!(writes, 2, "{name} {table}: one commit per compare");
            assert_eq!(seen["history"].as_array().unwrap().last().unwrap()["mode"], "Overwrite");
        }
        let moves = read_delta(&target, "compare/moves", None).unwrap();
        let version = moves["version"].as_u64().unwrap();
        assert_eq!(
            read_delta(&target, "compare/moves", Some(version - 1)).unwrap()["rows"],
            moves["rows"],
            "{name}: the same comparison twice"
        );

        let report = inputs.path().join(format!("{name}.html"));
        expect_code(&run(&["report", "--output", &uri, "--to", report.to_str().unwrap()]), 0);
        let html = std::fs::read_to_string(&report).unwrap();
        assert!(html.contains(CYCLE) && html.contains("2026-Q2"));
        let o = run(&["explain", "--account", "A0000004", "--cycle", CYCLE, "--output", &uri]);
        expect_code(&o, 0);
        assert!(
            stdout(&o).contains(manifest["run_id"].as_str().unwrap()),
            "{}",
            stdout(&o)
        );
    }
}

/// A pipeline that adds a column grows the table's schema in the commit
/// (older cycles read it as null); one that changes a column's type is
/// refused with exit 2, naming the column, before anything is written.
#[test]
fn the_delta_schema_grows_with_the_pipeline_and_refuses_a_changed_type() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = default_delta_pipeline(dir.path());
    let text = std::fs::read_to_string(&pipeline).unwrap();
    let feature = |file: &str, expr: &str| {
        let p = dir.path().join(file);
        let extra = format!("\n[[features]]\nname = \"arr_band\"\nexpr = \"{expr}\"\n");
        let at = text.find("\n[[segmentations]]").unwrap();
        std::fs::write(&p, format!("{}{extra}{}", &text[..at], &text[at..])).unwrap();
        p.to_string_lossy().into_owned()
    };
    let grown = feature("grown.toml", "arr / 1000");
    let changed = feature("changed.toml", "arr > 1000");
    let target = Target::local();
    expect_code(&run_delta(&target, &pipeline, &["--cycle", "2026-Q2"]), 0);
    let o = run_delta(&target, &grown, &["--cycle", CYCLE]);
    expect_code(&o, 0);
    let seen = read_delta(&target, "segments", None).unwrap();
    assert_eq!(seen["types"]["arr_band"], "Float64", "{}", seen["types"]);
    assert!(delta_run(Some(&seen), "2026-Q2").is_some());
    let rows_q2 = &seen["partitions"]["2026-Q2"];
    let rows_q2 = rows_q2.as_object().unwrap().values().next().unwrap();
    assert_eq!(
        &seen["nulls"]["2026-Q2"]["arr_band"], rows_q2,
        "the older cycle reads the new column as null"
    );
    assert!(seen["nulls"][CYCLE]["arr_band"].is_null(), "{}", seen["nulls"]);

    let files = target.files();
    let o = run_delta(&target, &changed, &["--cycle", CYCLE, "--replace"]);
    expect_code(&o, 2);
    let err = stderr(&o);
    assert!(
        err.contains("`arr_band`") && err.contains("double") && err.contains("boolean"),
        "{err}"
    );
    assert_eq!(target.files(), files, "nothing written");
}

/// Checkpoints every 10 commits, as Delta Lake does: after a dozen runs the
/// log has one, and readers read the table through it.
#[test]
fn delta_tables_get_checkpoints_that_readers_use() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = default_delta_pipeline(dir.path());
    let target = Target::local();
    expect_code(&run_delta(&target, &pipeline, &["--cycle", CYCLE]), 0);
    for _ in 0..10 {
        expect_code(&run_delta(&target, &pipeline, &["--cycle", CYCLE, "--replace"]), 0);
    }
    let files = target.files();
    assert!(
        files.contains(&"segments/_delta_log/00000000000000000009.checkpoint.parquet".to_string())
            && files.contains(&"segments/_delta_log/_last_checkpoint".to_string()),
        "{files:?}"
    );
    let seen = read_delta(&target, "segments", None).unwrap();
    assert_eq!(seen["version"], 11);
    assert_eq!(delta_run(Some(&seen), CYCLE), assert_agree(&target, CYCLE));
}

/// `vacuum` deletes the files replaced runs left once they are older than
/// the retention: a retention shorter than the table's needs --force;
/// --dry-run deletes nothing; afterwards the latest version reads as before
/// and the replaced run's file is gone. Parquet output has nothing to
/// vacuum.
#[test]
fn vacuum_deletes_replaced_files_after_the_retention() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = default_delta_pipeline(dir.path());
    let target = Target::local();
    let uri = target.uri();
    expect_code(&run_delta(&target, &pipeline, &["--cycle", CYCLE]), 0);
    let first = assert_agree(&target, CYCLE).unwrap();
    expect_code(&run_delta(&target, &pipeline, &["--cycle", CYCLE, "--replace"]), 0);
    let second = assert_agree(&target, CYCLE).unwrap();
    let old = format!("segments/cycle={CYCLE}/part-{first}.parquet");
    assert!(target.files().contains(&old));

    let o = run(&["vacuum", "--output", &uri]);
    expect_code(&o, 0);
    assert!(
        stdout(&o).contains("deleted 0 file(s) removed more than 168 hours ago"),
        "{}",
        stdout(&o)
    );
    let o = run(&["vacuum", "--output", &uri, "--retain-hours", "0"]);
    expect_code(&o, 2);
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    let o = run(&[
        "vacuum",
        "--output",
        &uri,
        "--retain-hours",
        "0",
        "--force",
        "--dry-run",
    ]);
    expect_code(&o, 0);
    assert!(stdout(&o).contains("would delete 1 file(s)"), "{}", stdout(&o));
    assert!(target.files().contains(&old));
    let o = run(&["vacuum", "--output", &uri, "--retain-hours", "0", "--force", "--json"]);
    expect_code(&o, 0);
    let done: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        done[0]["files"],
        serde_json::json!([format!("cycle={CYCLE}/part-{first}.parquet")])
    );
    assert!(!target.files().contains(&old));
    assert_eq!(assert_agree(&target, CYCLE), Some(second));

    let parquet = Target::local();
    expect_code(&run(&["run", "--cycle", CYCLE, "--output", &parquet.uri()]), 0);
    let o = run(&["vacuum", "--output", &parquet.uri()]);
    expect_code(&o, 0);
    assert!(stdout(&o).contains("nothing to vacuum"), "{}", stdout(&o));
}

/// One output root holds one format: a run whose pipeline asks for the
/// other is refused with exit 2 before any work; a misspelt format is a
/// config error with a suggestion.
#[test]
fn an_output_root_keeps_its_format_and_a_bad_format_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = default_delta_pipeline(dir.path());
    let parquet = Target::local();
    expect_code(&run(&["run", "--cycle", "2026-Q2", "--output", &parquet.uri()]), 0);
    let files = parquet.files();
    let o = run_delta(&parquet, &pipeline, &["--cycle", CYCLE]);
    expect_code(&o, 2);
    assert!(stderr(&o).contains("holds Parquet snapshots"), "{}", stderr(&o));
    assert_eq!(parquet.files(), files);

    let delta = Target::local();
    expect_code(&run_delta(&delta, &pipeline, &["--cycle", "2026-Q2"]), 0);
    let o = run(&["run", "--cycle", CYCLE, "--output", &delta.uri()]);
    expect_code(&o, 2);
    assert!(stderr(&o).contains("holds Delta Lake snapshots"), "{}", stderr(&o));

    let bad = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(&pipeline).unwrap();
    std::fs::write(&bad, text.replace("format = \"delta\"", "format = \"detla\"")).unwrap();
    let o = run(&["validate", "--config-only", "--pipeline", bad.to_str().unwrap()]);
    expect_code(&o, 2);
    let err = stderr(&o);
    assert!(
        err.contains("bad.toml:")
            && err.contains("`detla` is not an output format")
            && err.contains("did you mean \"delta\"?"),
        "{err}"
    );
}

/// A table an earlier quadrant left broken (a version whose data file it
/// deleted after taking an error answer to its own commit for a conflict):
/// every command that reads the cycle names the table, the version, the
/// missing file and the way out, instead of "not found" from deep inside;
/// `run --replace` is that way out, and readers read the table again.
#[test]
fn a_delta_table_naming_a_missing_file_is_named_and_repaired_by_a_replace() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = default_delta_pipeline(dir.path());
    let target = Target::local();
    expect_code(&run_delta(&target, &pipeline, &["--cycle", "2026-Q2"]), 0);
    expect_code(&run_delta(&target, &pipeline, &["--cycle", CYCLE]), 0);
    let version = read_delta(&target, "segments", None).unwrap()["version"]
        .as_u64()
        .unwrap();
    let file = target.partition_files(CYCLE).pop().unwrap();
    std::fs::remove_file(std::path::Path::new(&target.uri()).join(&file)).unwrap();
    let out = target.uri();
    let page = dir.path().join("report.html");
    let page = page.to_str().unwrap();
    for args in [
        vec!["cycles", "--output", &out],
        vec!["run", "--pipeline", &pipeline, "--output", &out, "--cycle", CYCLE],
        vec!["compare", "--output", &out, "--from", "2026-Q2", "--to", CYCLE],
        vec!["report", "--output", &out, "--to", page],
        vec!["explain", "--output", &out, "--account", "A0000002", "--cycle", CYCLE],
    ] {
        let o = run(&args);
        expect_code(&o, 1);
        let err = stderr(&o);
        let named = file.trim_start_matches("segments/");
        for part in [
            format!("is broken at version {version}"),
            named.to_string(),
            format!("quadrant run --cycle {CYCLE} --replace"),
        ] {
            assert!(err.contains(&part), "{args:?} names `{part}`: {err}");
        }
    }
    expect_code(&run_delta(&target, &pipeline, &["--cycle", CYCLE, "--replace"]), 0);
    assert_agree(&target, CYCLE);
    expect_code(
        &run(&["compare", "--output", &out, "--from", "2026-Q2", "--to", CYCLE]),
        0,
    );
}

/// What Delta Lake's own Spark reader sees of tables under the target
/// (tests/delta/spark_reader.py: delta-spark 4.4.0 on Spark 4.2.0, one
/// session for all of them), each `rel` or `rel@VERSION`.
fn read_delta_with_spark(target: &Target, tables: &[String]) -> Vec<Value> {
    let python = std::env::var("QUADRANT_TEST_DELTA_SPARK_PYTHON")
        .expect("scripts/test installs Delta Lake's Spark reader and sets QUADRANT_TEST_DELTA_SPARK_PYTHON");
    let o = std::process::Command::new(python)
        .arg(root().join("tests/delta/spark_reader.py"))
        .args(tables.iter().map(|t| format!("{}/{t}", target.uri())))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}: {}", target.name(), stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap()
}

/// Delta Lake's own Spark implementation, the reader of Databricks, Fabric
/// and most Delta users (stricter than delta-rs about protocol, partition
/// values and statistics), reads what delta-rs reads of quadrant's tables,
/// on the local disk and on every store: rows per cycle and run, the history (one
/// commit per run, the replace an overwrite of its cycle), `VERSION AS OF`
/// before the replace, and the rejects table.
#[test]
fn delta_lakes_spark_reader_reads_what_delta_rs_reads() {
    let inputs = tempfile::tempdir().unwrap();
    let (dirty, accounts) = dirty_inputs(inputs.path(), &["A0000001", "A0000002"]);
    let pipeline = delta_pipeline(inputs.path(), std::path::Path::new(&dirty));
    for target in Target::all() {
        let name = target.name();
        for extra in [
            &["--cycle", "2026-Q2"][..],
            &["--cycle", CYCLE],
            &["--cycle", CYCLE, "--replace", "--accounts", &accounts],
        ] {
            expect_code(&run_delta(&target, &pipeline, extra), 0);
        }
        let segments = read_delta(&target, "segments", None).unwrap();
        let latest = segments["version"].as_u64().unwrap();
        let before = read_delta(&target, "segments", Some(latest - 1)).unwrap();
        let rejects = read_delta(&target, "rejects/accounts", None).unwrap();
        let tables = [
            "segments".to_string(),
            format!("segments@{}", latest - 1),
            "rejects/accounts".to_string(),
        ];
        let spark = read_delta_with_spark(&target, &tables);
        for (what, by_spark, by_delta_rs) in [
            ("segments", &spark[0], &segments),
            ("segments before the replace", &spark[1], &before),
            ("rejects/accounts", &spark[2], &rejects),
        ] {
            assert_eq!(by_spark["version"], by_delta_rs["version"], "{name} {what}");
            assert_eq!(by_spark["partitions"], by_delta_rs["partitions"], "{name} {what}");
            assert_eq!(
                by_spark["partition_columns"], by_delta_rs["partition_columns"],
                "{name} {what}"
            );
        }
        assert_ne!(delta_run(Some(&segments), CYCLE), delta_run(Some(&before), CYCLE));
        assert!(spark[2]["partitions"][CYCLE].is_object(), "{name}: {}", spark[2]);
        let history = |seen: &Value| -> Vec<(Value, Value, Value)> {
            seen["history"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| (h["version"].clone(), h["operation"].clone(), h["mode"].clone()))
                .collect()
        };
        assert_eq!(history(&spark[0]), history(&segments), "{name}: the history");
        let replace = spark[0]["history"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(replace["mode"], "Overwrite", "{name}: {replace}");
        assert_eq!(replace["predicate"], format!("cycle = '{CYCLE}'"), "{name}");
        let second = delta_run(Some(&segments), CYCLE).unwrap();
        assert!(
            replace["userMetadata"].as_str().unwrap().contains(&second),
            "{name}: {replace}"
        );
        for (column, kind) in [
            ("as_of", "date"),
            ("account_id", "string"),
            ("arr", "double"),
            ("employees", "bigint"),
            ("cycle", "string"),
        ] {
            assert_eq!(spark[0]["types"][column], kind, "{name}: {column}");
        }
    }
}

/// Delta Lake's Spark reader on the rest of what quadrant writes: a table
/// whose schema grew (the older cycle reads the new column as null), read
/// through a checkpoint after a dozen commits, and the compare tables
/// (partitioned by `from` and `to`): the same version, rows, nulls and
/// partition columns as delta-rs.
#[test]
fn delta_lakes_spark_reader_reads_grown_checkpointed_and_compare_tables() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = default_delta_pipeline(dir.path());
    let text = std::fs::read_to_string(&pipeline).unwrap();
    let at = text.find("\n[[segmentations]]").unwrap();
    let grown = dir.path().join("grown.toml");
    let band = "\n[[features]]\nname = \"arr_band\"\nexpr = \"arr / 1000\"\n";
    std::fs::write(&grown, format!("{}{band}{}", &text[..at], &text[at..])).unwrap();
    let grown = grown.to_string_lossy().into_owned();
    let target = Target::local();
    expect_code(&run_delta(&target, &pipeline, &["--cycle", "2026-Q2"]), 0);
    expect_code(&run_delta(&target, &grown, &["--cycle", CYCLE]), 0);
    for _ in 0..10 {
        expect_code(&run_delta(&target, &grown, &["--cycle", CYCLE, "--replace"]), 0);
    }
    assert!(
        target
            .files()
            .contains(&"segments/_delta_log/00000000000000000009.checkpoint.parquet".to_string()),
        "{:?}",
        target.files()
    );
    expect_code(
        &run(&["compare", "--from", "2026-Q2", "--to", CYCLE, "--output", &target.uri()]),
        0,
    );
    let tables = [
        "segments",
        "compare/transitions",
        "compare/retention",
        "compare/bridge",
        "compare/moves",
    ];
    let spark = read_delta_with_spark(&target, &tables.map(String::from));
    for (table, by_spark) in tables.iter().zip(&spark) {
        let by_delta_rs = read_delta(&target, table, None).unwrap();
        for key in ["version", "partitions", "partition_columns", "nulls"] {
            assert_eq!(by_spark[key], by_delta_rs[key], "{table}: {key}");
        }
    }
    assert_eq!(
        spark[0]["version"], 12,
        "two runs and ten replaces after the table was made"
    );
    assert_eq!(spark[0]["types"]["arr_band"], "double");
    let q2 = spark[0]["partitions"]["2026-Q2"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap();
    assert_eq!(&spark[0]["nulls"]["2026-Q2"]["arr_band"], q2, "{}", spark[0]["nulls"]);
    assert!(spark[0]["nulls"][CYCLE]["arr_band"].is_null());
    assert_eq!(spark[1]["partition_columns"], serde_json::json!(["from", "to"]));
}

/// A Delta writer in Spark (Delta Lake's own) that commits to the cycle's
/// partition while a run waits before its data: the run exits 4, removes
/// its file, and the other writer's rows stand, for Spark and delta-rs.
#[test]
fn a_delta_commit_loses_to_a_spark_writers_commit_in_its_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = default_delta_pipeline(dir.path());
    let target = Target::local();
    expect_code(&run_delta(&target, &pipeline, &["--cycle", "2026-Q2"]), 0);
    let python = std::env::var("QUADRANT_TEST_DELTA_SPARK_PYTHON").expect("scripts/test sets it");
    let mut writer = std::process::Command::new(python)
        .arg(root().join("tests/delta/spark_writer.py"))
        .args([&format!("{}/segments", target.uri()), "2026-Q2", CYCLE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = std::io::BufReader::new(writer.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut said, &mut line).unwrap();
    assert_eq!(line.trim(), "ready");

    let child = run_waiting_before_data(&target, &pipeline, 30);
    let started = std::time::Instant::now();
    std::io::Write::write_all(writer.stdin.as_mut().unwrap(), b"go\n").unwrap();
    line.clear();
    std::io::BufRead::read_line(&mut said, &mut line).unwrap();
    assert_eq!(line.trim(), "done");
    assert!(writer.wait().unwrap().success());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "the Spark writer committed while the run waited"
    );
    let o = child.wait_with_output().unwrap();
    expect_code(&o, 4);

    let seen = read_delta(&target, "segments", None).unwrap();
    let theirs = delta_run(Some(&seen), "2026-Q2");
    assert_eq!(delta_run(Some(&seen), CYCLE), theirs, "the Spark writer's rows stand");
    let spark = read_delta_with_spark(&target, &["segments".to_string()]);
    assert_eq!(spark[0]["partitions"], seen["partitions"]);
    assert_eq!(spark[0]["version"], seen["version"]);
    assert_eq!(
        target.partition_files(CYCLE).len(),
        1,
        "the losing run removed its file: {:?}",
        target.files()
    );
}
