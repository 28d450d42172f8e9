//! The five snapshot guarantees of SPEC.md section 6, on the local
//! filesystem, on S3 (moto) and on Azure (Azurite): runs killed with
//! SIGKILL at each step of the commit, two runs of one cycle at once, and
//! `--replace`.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

use crate::target::Target;
use crate::*;

pub(crate) const CYCLE: &str = "2026-Q3";

pub(crate) fn spawn_run(target: &Target, pause_at: Option<&str>, replace: bool) -> Child {
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

/// Waits until the run says it paused at `point`.
pub(crate) fn wait_for_pause(child: &mut Child, point: &str) {
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains(&format!("paused at {point}")) {
            // Keep draining stderr so the paused run never blocks on it.
            std::thread::spawn(move || lines.for_each(drop));
            return;
        }
    }
    panic!("the run ended without pausing at {point}:\n{seen}");
}

/// What a globbing reader sees: no rows, or exactly the rows of one
/// complete run. Returns that run's id.
fn glob_sees_one_run_or_none(target: &Target) -> Option<String> {
    let rows = target.glob_rows(CYCLE)?;
    let ids = rows
        .column("run_id")
        .unwrap()
        .as_materialized_series()
        .n_unique()
        .unwrap();
    assert_eq!(ids, 1, "{}: one run's rows only", target.name());
    let run_id = strings(&rows, "run_id")[0].clone();
    let ids = strings(&rows, "account_id");
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "{}: every account once", target.name());
    assert!(rows.height() > 0, "{}", target.name());
    Some(run_id)
}

/// The glob shows one run or none, and quadrant's own record agrees with it
/// once a reader has looked (readers repair what a dead run left).
fn assert_consistent(target: &Target) {
    let seen = glob_sees_one_run_or_none(target);
    let listed = run(&["cycles", "--output", &target.uri(), "--json"]);
    expect_code(&listed, 0);
    let list: serde_json::Value = serde_json::from_str(&stdout(&listed)).unwrap();
    let listed_run = list
        .as_array()
        .unwrap()
        .first()
        .map(|c| c["run_id"].as_str().unwrap().to_string());
    assert_eq!(
        listed_run,
        seen,
        "{}: `cycles` lists the run a glob sees",
        target.name()
    );
    match (&seen, target.manifest(CYCLE)) {
        (Some(run_id), Some(m)) => {
            assert_eq!(m["run_id"].as_str().unwrap(), run_id, "{}", target.name());
            let rows = target.glob_rows(CYCLE).unwrap();
            assert_eq!(rows.height() as u64, m["rows"].as_u64().unwrap(), "{}", target.name());
        }
        (None, None) => {}
        (seen, m) => panic!("{}: glob sees {seen:?}, manifest {m:?}", target.name()),
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

/// Every step of the commit where a run can be killed, in order.
pub(crate) const STEPS: [&str; 5] = [
    "before-lock",
    "after-lock",
    "before-data",
    "before-manifest",
    "after-manifest",
];

/// Guarantee 2: at every step of a run or of a `--replace` run, and after a
/// SIGKILL there, a glob sees no rows or exactly one complete run; the data
/// file's appearance is the commit. The next run of the cycle, even one that
/// exits 4, first repairs what the dead run left: afterwards the folder holds
/// exactly the committed run's files.
#[test]
fn a_run_killed_at_any_step_leaves_one_run_or_none_and_the_next_run_repairs() {
    for make in [Target::local, Target::s3, Target::azure] {
        for replace in [false, true] {
            for (i, point) in STEPS.iter().enumerate() {
                let target = make();
                let name = format!("{} replace={replace} {point}", target.name());
                let first = if replace {
                    expect_code(&run_on(&target, &[]), 0);
                    glob_sees_one_run_or_none(&target)
                } else {
                    None
                };
                let mut child = spawn_run(&target, Some(point), replace);
                wait_for_pause(&mut child, point);
                let seen_paused = glob_sees_one_run_or_none(&target);
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                let seen = glob_sees_one_run_or_none(&target);
                assert_eq!(seen, seen_paused, "{name}: the kill changed nothing a reader sees");
                let committed = i >= STEPS.iter().position(|s| *s == "before-manifest").unwrap();
                if committed {
                    assert!(seen.is_some() && seen != first, "{name}: the killed run committed");
                } else {
                    assert_eq!(seen, first, "{name}: the previous state is what a reader sees");
                }

                // A plain rerun: exits 4 when a run is committed, after repairing.
                let next = run_on(&target, &[]);
                expect_code(&next, if seen.is_some() { 4 } else { 0 });
                assert_consistent(&target);
                let files = target.files();
                assert_eq!(
                    files,
                    [
                        format!("segments/cycle={CYCLE}/_manifest.json"),
                        format!("segments/cycle={CYCLE}/part-0.parquet")
                    ],
                    "{name}: only the committed run's files remain"
                );
                if seen.is_some() {
                    assert_eq!(
                        glob_sees_one_run_or_none(&target),
                        seen,
                        "{name}: the exit-4 run changed no rows"
                    );
                    let m = target.manifest(CYCLE).unwrap();
                    let replaced = m["replaced"]["run_id"].as_str().map(str::to_string);
                    assert_eq!(
                        replaced,
                        if replace && committed { first.clone() } else { None },
                        "{name}"
                    );
                }
            }
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
                "gcs" => Target::gcs(),
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

/// A lock another host left: within its lease it is a live run elsewhere
/// (exit 4, naming the host); past the lease it is taken over, with a
/// warning, and the run commits.
#[test]
fn a_lock_from_another_host_is_honoured_until_its_lease_ends() {
    for target in Target::all() {
        let name = target.name();
        let lock = |minutes_ago: i64| {
            let since = chrono::Utc::now() - chrono::Duration::minutes(minutes_ago);
            let body = serde_json::json!({
                "run_id": "20261201T000000Z-elsewhere", "host": "another-host.example",
                "pid": 1, "started_at": since.to_rfc3339(),
            });
            let tmp = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(tmp.path(), body.to_string()).unwrap();
            target.upload(tmp.path(), &format!("_quadrant/locks/cycle={CYCLE}.json"));
        };
        lock(1);
        let o = run_on(&target, &[]);
        expect_code(&o, 4);
        assert!(
            stderr(&o).contains("20261201T000000Z-elsewhere") && stderr(&o).contains("another-host.example"),
            "{name}: {}",
            stderr(&o)
        );
        assert!(target.glob_rows(CYCLE).is_none(), "{name}: nothing committed");
        lock(6);
        let o = run_on(&target, &[]);
        expect_code(&o, 0);
        assert!(
            stderr(&o).contains("taking over the lock of a run that died"),
            "{name}: {}",
            stderr(&o)
        );
        assert_consistent(&target);
        assert!(
            !target.files().iter().any(|f| f.starts_with("_quadrant/locks/")),
            "{name}: the lock is released"
        );
    }
}

/// A `--replace` overwrites the data file only if it is still the version
/// it read: another writer that changed it in between wins (exit 4), and
/// its file stands. S3 and Azure check the version; the local disk has only
/// the lock.
#[test]
fn a_replace_loses_to_another_writers_change_of_the_data_file() {
    for target in Target::remotes() {
        let name = target.name();
        expect_code(&run_on(&target, &[]), 0);
        // The other writer's file: another run of the cycle, elsewhere.
        let elsewhere = Target::local();
        expect_code(&run_on(&elsewhere, &[]), 0);
        let theirs = elsewhere.glob_rows(CYCLE).unwrap();

        let mut replace = quadrant();
        replace
            .args(["run", "--cycle", CYCLE, "--output", &target.uri(), "--replace"])
            .env("QUADRANT_PAUSE_AT", "before-data")
            .env("QUADRANT_PAUSE_SECONDS", "4")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut replace = replace.spawn().unwrap();
        wait_for_pause(&mut replace, "before-data");
        let data = format!("segments/cycle={CYCLE}/part-0.parquet");
        let path = elsewhere.uri();
        target.upload(&std::path::Path::new(&path).join(&data), &data);
        let o = replace.wait_with_output().unwrap();
        expect_code(&o, 4);
        let seen = target.glob_rows(CYCLE).unwrap();
        assert_eq!(
            strings(&seen, "run_id")[0],
            strings(&theirs, "run_id")[0],
            "{name}: the other writer's file stands"
        );
        assert!(
            !target.files().iter().any(|f| f.starts_with("_quadrant/")),
            "{name}: the loser left nothing: {:?}",
            target.files()
        );
    }
}

/// Guarantee 5: the same inputs and pipeline give the same rows and values.
#[test]
fn the_same_inputs_give_the_same_rows_on_every_store() {
    let local = Target::local();
    expect_code(&run_on(&local, &[]), 0);
    let want = local.glob_rows(CYCLE).unwrap().drop("run_id").unwrap();
    for target in Target::remotes() {
        expect_code(&run_on(&target, &[]), 0);
        let got = target.glob_rows(CYCLE).unwrap().drop("run_id").unwrap();
        assert!(got.equals_missing(&want), "{}", target.name());
    }
}

/// Accounts with a negative ARR on the accounts whose ids are in `ids`, and a
/// pipeline that drops such rows into rejects/.
pub(crate) fn dirty_inputs(dir: &std::path::Path, ids: &[&str]) -> (String, String) {
    let ids = Series::new("ids".into(), ids);
    let mut accounts = read_parquet(&root().join("fixtures/accounts.parquet"))
        .lazy()
        .with_column(
            when(col("account_id").is_in(lit(ids).implode(false), false))
                .then(-col("arr"))
                .otherwise(col("arr"))
                .alias("arr"),
        )
        .collect()
        .unwrap();
    let accounts_path = dir.join("accounts.parquet");
    write_parquet(&mut accounts, &accounts_path);
    let text = std::fs::read_to_string(root().join("pipelines/default.toml")).unwrap();
    let pipeline = dir.join("pipeline.toml");
    std::fs::write(
        &pipeline,
        text.replace("negative_arr = \"error\"", "negative_arr = \"drop\""),
    )
    .unwrap();
    (
        pipeline.to_string_lossy().into_owned(),
        accounts_path.to_string_lossy().into_owned(),
    )
}

/// The reject files under the target, relative.
fn rejects(target: &Target) -> Vec<String> {
    target
        .files()
        .into_iter()
        .filter(|f| f.starts_with("rejects/"))
        .collect()
}

/// Rejects are staged before the data file and published after it: a glob
/// of `rejects/` sees one run's rejects per dataset, never a run that did
/// not commit. A replace killed before its commit leaves the old run's
/// rejects, one killed after it the new run's once a reader has looked.
#[test]
fn rejects_follow_the_committed_run_through_a_killed_replace() {
    let inputs = tempfile::tempdir().unwrap();
    let (pipeline, old_accounts) = dirty_inputs(&inputs.path().join("old"), &["A0000001", "A0000002"]);
    let (_, new_accounts) = dirty_inputs(&inputs.path().join("new"), &["A0000003"]);
    for make in [Target::local, Target::s3, Target::azure] {
        for point in ["before-data", "before-manifest"] {
            let target = make();
            let uri = target.uri();
            let base = ["run", "--cycle", CYCLE, "--output", &uri, "--pipeline", &pipeline];
            let mut first = base.to_vec();
            first.extend(["--accounts", &old_accounts]);
            expect_code(&run(&first), 0);
            let old = rejects(&target);
            assert_eq!(old.len(), 1, "{}: {old:?}", target.name());

            let mut cmd = quadrant();
            cmd.args(base)
                .args(["--accounts", &new_accounts, "--replace"])
                .env("QUADRANT_PAUSE_AT", point)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child = cmd.spawn().unwrap();
            wait_for_pause(&mut child, point);
            assert_eq!(
                rejects(&target),
                old,
                "{} {point}: the new rejects wait in staging, out of a glob's sight",
                target.name()
            );
            let staged = target
                .files()
                .into_iter()
                .filter(|f| f.starts_with("_quadrant/staging/"))
                .count();
            assert_eq!(staged, 1, "{} {point}", target.name());
            child.kill().unwrap();
            child.wait().unwrap();

            expect_code(&run(&["cycles", "--output", &uri]), 0);
            let m = target.manifest(CYCLE).unwrap();
            let listed: Vec<String> = m["outputs"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|o| o["kind"] == "rejects")
                .map(|o| o["path"].as_str().unwrap().to_string())
                .collect();
            assert_eq!(rejects(&target), listed, "{} {point}", target.name());
            let rejected = target.read_parquet(&listed[0]);
            let want = if point == "before-data" { 2 } else { 1 };
            let ids = strings(&rejected, "account_id");
            let ids: BTreeSet<&String> = ids.iter().collect();
            assert_eq!(ids.len(), want, "{} {point}: {ids:?}", target.name());
            assert_eq!(glob_sees_one_run_or_none(&target).as_deref(), m["run_id"].as_str());
            let left: Vec<String> = target
                .files()
                .into_iter()
                .filter(|f| f.starts_with("_quadrant/"))
                .collect();
            assert!(left.is_empty(), "{} {point}: {left:?}", target.name());
        }
    }
}

/// Every command that reads a cycle repairs it first: after a run died
/// between its commit and its manifest, `cycles`, `explain`, `compare` and
/// `report` each bring the manifest up to the committed data file and
/// remove the dead run's lock.
#[test]
fn readers_repair_a_cycle_a_dead_run_left() {
    let report = tempfile::tempdir().unwrap();
    let report_path = report.path().join("r.html");
    let report_path = report_path.to_str().unwrap();
    type Reader<'a> = &'a [&'a str];
    let readers: [Reader; 4] = [
        &["cycles"],
        &["explain", "--account", "A0000002", "--cycle", CYCLE],
        &["compare", "--from", "2026-Q2", "--to", CYCLE],
        &["report", "--to", report_path],
    ];
    for reader in readers {
        let target = Target::local();
        let uri = target.uri();
        expect_code(&run(&["run", "--cycle", "2026-Q2", "--output", &uri]), 0);
        let mut child = spawn_run(&target, Some("before-manifest"), false);
        wait_for_pause(&mut child, "before-manifest");
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(target.manifest(CYCLE).is_none());
        let seen = glob_sees_one_run_or_none(&target).unwrap();

        let o = run(&[reader, &["--output", &uri]].concat());
        expect_code(&o, 0);
        assert_eq!(
            target.manifest(CYCLE).unwrap()["run_id"].as_str(),
            Some(seen.as_str()),
            "{reader:?}"
        );
        assert!(
            !target.files().iter().any(|f| f.starts_with("_quadrant/locks/")),
            "{reader:?}: {:?}",
            target.files()
        );
    }
}

/// A reader's repair holds the cycle's lock for a moment: a run that comes
/// then waits for it instead of exiting 4 (which an orchestrator would take
/// as done), and commits once the lock is free.
#[test]
fn a_run_waits_for_a_repair_instead_of_exiting_4() {
    let target = Target::local();
    let uri = target.uri();
    let mut dead = spawn_run(&target, Some("before-manifest"), false);
    wait_for_pause(&mut dead, "before-manifest");
    dead.kill().unwrap();
    dead.wait().unwrap();

    let mut reader = quadrant();
    reader
        .args(["cycles", "--output", &uri])
        .env("QUADRANT_PAUSE_AT", "repairing")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut reader = reader.spawn().unwrap();
    wait_for_pause(&mut reader, "repairing");

    let mut run = spawn_run(&target, None, true);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(run.try_wait().unwrap().is_none(), "the run waits for the repair");
    reader.kill().unwrap();
    reader.wait().unwrap();
    let out = run.wait_with_output().unwrap();
    expect_code(&out, 0);
    assert_consistent(&target);
}

/// On the local disk a put writes `name#N` and renames it; a put killed
/// halfway leaves that file, which no glob of `*.parquet` sees and the next
/// run removes.
#[test]
fn the_staging_file_of_a_killed_local_put_is_removed_by_the_next_run() {
    let target = Target::local();
    let dir = std::path::PathBuf::from(target.uri()).join(format!("segments/cycle={CYCLE}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("part-0.parquet#12"), b"half a file").unwrap();
    assert!(glob_sees_one_run_or_none(&target).is_none(), "a glob does not see it");
    expect_code(&run_on(&target, &[]), 0);
    assert!(!dir.join("part-0.parquet#12").exists());
    assert_consistent(&target);
}
