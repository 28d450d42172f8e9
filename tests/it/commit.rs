//! The commit protocol on the local filesystem: runs killed at each step,
//! and two runs of one cycle at once.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};

use crate::*;

fn spawn_run(out: &Path, pause_at: Option<&str>, replace: bool) -> Child {
    let mut cmd = quadrant();
    cmd.args([
        "run",
        "--cycle",
        "2026-Q3",
        "--output",
        out.to_str().unwrap(),
    ]);
    if replace {
        cmd.arg("--replace");
    }
    if let Some(point) = pause_at {
        cmd.env("QUADRANT_PAUSE_AT", point);
    }
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
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

/// What a reader sees is either nothing, or exactly one committed run.
fn assert_consistent(out: &Path) {
    let files = glob_partition(out, "2026-Q3");
    match manifest(out, "2026-Q3") {
        Some(m) => {
            let rows = glob_rows(out, "2026-Q3").expect("a committed cycle has rows");
            assert_eq!(rows.height() as u64, m["rows"].as_u64().unwrap());
            let ids = rows
                .column("run_id")
                .unwrap()
                .as_materialized_series()
                .n_unique()
                .unwrap();
            assert_eq!(ids, 1, "one run's rows only");
        }
        None => {
            // No commit: quadrant lists nothing, and any file a dead run left
            // in the partition is whole (written in one atomic step).
            let listed = run(&["cycles", "--output", out.to_str().unwrap(), "--json"]);
            assert_eq!(stdout(&listed).trim(), "[]");
            for f in files {
                let frame = read_parquet(&f);
                assert!(frame.height() > 0);
            }
        }
    }
}

/// Guarantee 2: a run killed at any step leaves no partial snapshot, and
/// the next run cleans up and commits.
#[test]
fn a_killed_run_leaves_no_partial_snapshot_and_the_next_run_commits() {
    for point in [
        "before-lock",
        "before-data",
        "before-manifest",
        "after-manifest",
    ] {
        let tmp = tempfile::tempdir().unwrap();
        kill_when_paused(spawn_run(tmp.path(), Some(point), false), point);
        assert_consistent(tmp.path());
        let committed = manifest(tmp.path(), "2026-Q3").is_some();
        assert_eq!(committed, point == "after-manifest", "{point}");

        let args = [
            "run",
            "--cycle",
            "2026-Q3",
            "--output",
            tmp.path().to_str().unwrap(),
        ];
        let next = if committed {
            run(&[&args[..], &["--replace"]].concat())
        } else {
            run(&args)
        };
        expect_code(&next, 0);
        assert_consistent(tmp.path());
        let files = tree(tmp.path());
        assert_eq!(
            files.len(),
            2,
            "{point}: only the new run's data file and manifest remain: {files:?}"
        );
        assert!(files.iter().any(|f| f.ends_with("_manifest.json")));
    }
}

/// Guarantee 4: two runs of one cycle at once, exactly one commits.
#[test]
fn two_concurrent_runs_one_commits_the_other_exits_4_and_leaves_nothing() {
    for _ in 0..3 {
        let tmp = tempfile::tempdir().unwrap();
        let a = spawn_run(tmp.path(), None, false);
        let b = spawn_run(tmp.path(), None, false);
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        let mut codes = vec![a.status.code().unwrap(), b.status.code().unwrap()];
        codes.sort();
        assert_eq!(codes, [0, 4], "\n{}\n{}", stderr(&a), stderr(&b));
        let loser = if a.status.code() == Some(4) { &a } else { &b };
        let err = stderr(loser);
        assert!(
            err.contains("already committed") || err.contains("being committed"),
            "{err}"
        );
        assert_consistent(tmp.path());
        assert_eq!(tree(tmp.path()).len(), 2, "{:?}", tree(tmp.path()));
    }
}

/// A run that finds the cycle's lock held by a live run gives up at once.
#[test]
fn a_run_meeting_a_live_lock_exits_4_without_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut holder = spawn_run(tmp.path(), Some("before-data"), false);
    let stderr_pipe = holder.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr_pipe).lines();
    loop {
        let line = lines.next().expect("the holder pauses").unwrap();
        if line.contains("paused at before-data") {
            break;
        }
    }
    let before = tree(tmp.path());
    let second = run(&[
        "run",
        "--cycle",
        "2026-Q3",
        "--output",
        tmp.path().to_str().unwrap(),
    ]);
    expect_code(&second, 4);
    assert!(
        stderr(&second).contains("is being committed by run"),
        "{}",
        stderr(&second)
    );
    assert_eq!(tree(tmp.path()), before, "the loser wrote nothing");
    holder.kill().unwrap();
    holder.wait().unwrap();
}
