//! The five snapshot guarantees of SPEC.md section 6, on the local
//! filesystem, on S3 (moto) and on Azure (Azurite): runs killed with
//! SIGKILL at each step of the commit, two runs of one cycle at once, and
//! `--replace`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

use crate::target::Target;
use crate::*;

const CYCLE: &str = "2026-Q3";

fn spawn_run(target: &Target, pause_at: Option<&str>, replace: bool) -> Child {
    let mut cmd = quadrant();
    cmd.args(["run", "--cycle", CYCLE, "--output", &target.uri()]);
    if replace {
        cmd.arg("--replace");
    }
    if let Some(point) = pause_at {
        cmd.env("QUADRANT_PAUSE_AT", point);
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

fn run_on(target: &Target, extra: &[&str]) -> std::process::Output {
    let uri = target.uri();
    let mut args = vec!["run", "--cycle", CYCLE, "--output", &uri];
    args.extend_from_slice(extra);
    run(&args)
}

/// Waits until the run says it paused, then kills it with SIGKILL.
fn kill_when_paused(mut child: Child, point: &str) {
    let stderr = child.stderr.take().unwrap();
    let mut seen = String::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains(&format!("paused at {point}")) {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            return;
        }
    }
    panic!("the run ended without pausing at {point}:\n{seen}");
}

/// What a reader sees is either no commit, or exactly one committed run.
fn assert_consistent(target: &Target) {
    match target.manifest(CYCLE) {
        Some(m) => {
            let rows = target.glob_rows(CYCLE).expect("a committed cycle has rows");
            assert_eq!(rows.height() as u64, m["rows"].as_u64().unwrap(), "{}", target.name());
            let ids = rows
                .column("run_id")
                .unwrap()
                .as_materialized_series()
                .n_unique()
                .unwrap();
            assert_eq!(ids, 1, "{}: one run's rows only", target.name());
            assert_eq!(strings(&rows, "run_id")[0], m["run_id"].as_str().unwrap());
        }
        None => {
            // No commit: quadrant lists nothing, and any file a dead run left
            // in the partition is whole (each object appears atomically).
            let listed = run(&["cycles", "--output", &target.uri(), "--json"]);
            assert_eq!(stdout(&listed).trim(), "[]", "{}", target.name());
            for f in target.partition_files(CYCLE) {
                assert!(target.read_parquet(&f).height() > 0);
            }
        }
    }
}

/// Guarantees 1 and 3: after a run the glob is exactly that run; a
/// committed cycle is kept unless --replace, which records what it replaced.
#[test]
fn commit_rerun_and_replace_on_every_store() {
    for target in Target::all() {
        let first = run_on(&target, &[]);
        expect_code(&first, 0);
        assert_consistent(&target);
        let m1 = target.manifest(CYCLE).unwrap();
        let files = target.files();

        let again = run_on(&target, &[]);
        expect_code(&again, 4);
        assert!(stderr(&again).contains("already committed"), "{}", stderr(&again));
        assert_eq!(target.files(), files, "{}: nothing changed", target.name());
        assert_eq!(target.manifest(CYCLE).unwrap(), m1);

        expect_code(&run_on(&target, &["--replace"]), 0);
        let m2 = target.manifest(CYCLE).unwrap();
        assert_eq!(m2["replaced"]["run_id"], m1["run_id"], "{}", target.name());
        assert_consistent(&target);
        assert_eq!(
            target.partition_files(CYCLE).len(),
            1,
            "{}: the replaced run's file is gone",
            target.name()
        );
        assert_eq!(target.files().len(), 2, "{}: {:?}", target.name(), target.files());
    }
}

/// Guarantee 2: a run killed at any step leaves no partial snapshot, and
/// the next run cleans up and commits.
#[test]
fn a_killed_run_leaves_no_partial_snapshot_and_the_next_run_commits() {
    for target_kind in ["local", "s3", "azure"] {
        for point in ["before-lock", "before-data", "before-manifest", "after-manifest"] {
            let target = match target_kind {
                "local" => Target::local(),
                "s3" => Target::s3(),
                _ => Target::azure(),
            };
            kill_when_paused(spawn_run(&target, Some(point), false), point);
            assert_consistent(&target);
            let committed = target.manifest(CYCLE).is_some();
            assert_eq!(committed, point == "after-manifest", "{target_kind} {point}");

            let next = run_on(&target, if committed { &["--replace"] } else { &[] });
            expect_code(&next, 0);
            assert_consistent(&target);
            let files = target.files();
            assert_eq!(
                files.len(),
                2,
                "{target_kind} {point}: only the new data file and manifest remain: {files:?}"
            );
        }
    }
}

/// Guarantee 4: two runs of one cycle at once, exactly one commits; the
/// other exits 4 and leaves nothing behind.
#[test]
fn two_concurrent_runs_one_commits_the_other_exits_4() {
    for target in Target::all() {
        for _ in 0..2 {
            let target = match target.name() {
                "local" => Target::local(),
                "s3" => Target::s3(),
                _ => Target::azure(),
            };
            let a = spawn_run(&target, None, false);
            let b = spawn_run(&target, None, false);
            let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
            let mut codes = vec![a.status.code().unwrap(), b.status.code().unwrap()];
            codes.sort();
            assert_eq!(codes, [0, 4], "{}\n{}\n{}", target.name(), stderr(&a), stderr(&b));
            let loser = if a.status.code() == Some(4) { &a } else { &b };
            let err = stderr(loser);
            assert!(
                err.contains("already committed") || err.contains("being committed"),
                "{err}"
            );
            assert_consistent(&target);
            assert_eq!(target.files().len(), 2, "{}: {:?}", target.name(), target.files());
        }
    }
}

/// A run that finds the cycle's lock held by a live run gives up at once
/// and writes nothing; when the holder dies, the next run takes over.
#[test]
fn a_live_lock_makes_a_run_exit_4_a_dead_one_is_taken_over() {
    for target in Target::all() {
        let mut holder = spawn_run(&target, Some("before-data"), false);
        let mut lines = BufReader::new(holder.stderr.take().unwrap()).lines();
        loop {
            let line = lines.next().expect("the holder pauses").unwrap();
            if line.contains("paused at before-data") {
                break;
            }
        }
        let before = target.files();
        let second = run_on(&target, &[]);
        expect_code(&second, 4);
        assert!(
            stderr(&second).contains("is being committed by run"),
            "{}",
            stderr(&second)
        );
        assert_eq!(target.files(), before, "{}: the loser wrote nothing", target.name());
        holder.kill().unwrap();
        holder.wait().unwrap();
        expect_code(&run_on(&target, &[]), 0);
        assert_consistent(&target);
    }
}

/// Guarantee 5: the same inputs and pipeline give the same rows and values.
#[test]
fn the_same_inputs_give_the_same_rows_on_every_store() {
    let local = Target::local();
    expect_code(&run_on(&local, &[]), 0);
    let want = local.glob_rows(CYCLE).unwrap().drop("run_id").unwrap();
    for target in [Target::s3(), Target::azure()] {
        expect_code(&run_on(&target, &[]), 0);
        let got = target.glob_rows(CYCLE).unwrap().drop("run_id").unwrap();
        assert!(got.equals_missing(&want), "{}", target.name());
    }
}
