//! Orchestrators and lineage as real clients: OpenLineage events received
//! on a loopback HTTP server and validated with the official client, Dagster
//! materializing the example asset through Pipes, Airflow loading the example
//! DAG and running its task for each exit code, and the run summary file.

use std::io::{BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use crate::*;

/// A loopback HTTP server that records the JSON bodies POSTed to it.
fn lineage_server() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            stream
                .set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            let mut reader = BufReader::new(stream);
            // Several requests may come over one kept-alive connection.
            while let Ok(Some((head, body))) = crate::http::read_request(&mut reader) {
                assert!(head[0].starts_with("POST /api/v1/lineage"), "{}", head[0]);
                sink.lock().unwrap().push(serde_json::from_slice(&body).unwrap());
                reader
                    .get_mut()
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                    .unwrap();
            }
        }
    });
    (url, received)
}

fn validate_openlineage(events: &[serde_json::Value]) -> Vec<String> {
    let mut child = std::process::Command::new("python3")
        .arg(root().join("tests/clients/openlineage_validate.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 with openlineage-python (scripts/test installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(events).unwrap().as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "OpenLineage validation failed:\n{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn openlineage_start_and_complete_or_fail_events_are_valid() {
    let (url, received) = lineage_server();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().to_str().unwrap();
    expect_code(
        &run(&["run", "--cycle", "2026-Q3", "--output", out, "--lineage-url", &url]),
        0,
    );
    let events = received.lock().unwrap().clone();
    assert_eq!(validate_openlineage(&events), ["START", "COMPLETE"]);
    assert_eq!(events[0]["run"]["runId"], events[1]["run"]["runId"]);
    assert_eq!(events[0]["job"]["name"], "default.2026-Q3");
    let inputs: Vec<&str> = events[1]["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert!(
        inputs[0].ends_with("fixtures/accounts.parquet") && inputs[1].ends_with("fixtures/usage/"),
        "{inputs:?}"
    );
    let output = &events[1]["outputs"][0];
    assert_eq!(output["namespace"], "file");
    assert!(output["name"].as_str().unwrap().ends_with("segments/cycle=2026-Q3"));
    let rows = manifest(tmp.path(), "2026-Q3").unwrap()["rows"].clone();
    assert_eq!(output["outputFacets"]["outputStatistics"]["rowCount"], rows);

    // A failing run says so, through the standard environment variable.
    received.lock().unwrap().clear();
    let o = quadrant()
        .args([
            "run",
            "--cycle",
            "2026-Q2",
            "--output",
            out,
            "--usage",
            "/nowhere/usage/",
        ])
        .env("OPENLINEAGE_URL", &url)
        .output()
        .unwrap();
    expect_code(&o, 3);
    let events = received.lock().unwrap().clone();
    assert_eq!(validate_openlineage(&events), ["START", "FAIL"]);
    assert!(
        events[1]["run"]["facets"]["errorMessage"]["message"]
            .as_str()
            .unwrap()
            .contains("does not exist")
    );
}

#[test]
fn an_unreachable_lineage_backend_does_not_fail_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    // Nothing listens on port 9 of loopback.
    let o = run(&[
        "run",
        "--cycle",
        "2026-Q3",
        "--output",
        tmp.path().to_str().unwrap(),
        "--lineage-url",
        "http://127.0.0.1:9",
    ]);
    expect_code(&o, 0);
    assert!(
        stderr(&o).contains("could not send the OpenLineage event"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn dagster_materializes_the_cycle_through_pipes() {
    let tmp = tempfile::tempdir().unwrap();
    let o = std::process::Command::new("python3")
        .arg(root().join("tests/clients/dagster_run.py"))
        .arg("2026-Q3")
        .current_dir(root())
        .env("QUADRANT_BIN", env!("CARGO_BIN_EXE_quadrant"))
        .env("QUADRANT_OUTPUT", tmp.path())
        .env("DAGSTER_HOME", tmp.path())
        .output()
        .expect("python3 with dagster (scripts/test installs it)");
    assert!(o.status.success(), "{}", stderr(&o));
    let seen: serde_json::Value = serde_json::from_str(stdout(&o).lines().last().unwrap()).unwrap();
    assert_eq!(seen["success"], true, "{seen}");
    let m = &seen["materializations"][0];
    assert_eq!(m["asset_key"], "quadrant_segments");
    assert_eq!(m["partition"], "2026-Q3");
    let manifest = manifest(tmp.path(), "2026-Q3").expect("quadrant committed the partition's cycle");
    assert_eq!(m["metadata"]["cycle"], "2026-Q3");
    assert_eq!(m["metadata"]["rows"], manifest["rows"]);
    assert_eq!(m["metadata"]["run_id"], manifest["run_id"]);
    assert!(m["metadata"]["labels"].to_string().contains("Protect"), "{m}");
    let logs = seen["logs"].to_string();
    assert!(
        logs.contains("committed"),
        "quadrant's logs reach Dagster through Pipes: {logs}"
    );
}

/// A partition whose inputs have not landed (the usage ends before the
/// quarter does): quadrant exits 5, the example asset asks Dagster to retry
/// it later, and Dagster does, as often as the example allows; nothing is
/// committed.
#[test]
fn dagster_retries_a_cycle_whose_inputs_have_not_landed() {
    let tmp = tempfile::tempdir().unwrap();
    let o = std::process::Command::new("python3")
        .arg(root().join("tests/clients/dagster_run.py"))
        .arg("2026-Q4")
        .current_dir(root())
        .env("QUADRANT_BIN", env!("CARGO_BIN_EXE_quadrant"))
        .env("QUADRANT_OUTPUT", tmp.path())
        .env("QUADRANT_NOT_READY_RETRIES", "2")
        .env("QUADRANT_NOT_READY_WAIT_SECONDS", "0")
        .env("DAGSTER_HOME", tmp.path())
        .output()
        .expect("python3 with dagster (scripts/test installs it)");
    assert!(o.status.success(), "{}", stderr(&o));
    let seen: serde_json::Value = serde_json::from_str(stdout(&o).lines().last().unwrap()).unwrap();
    assert_eq!(seen["success"], false, "{seen}");
    assert_eq!(seen["retries"], 2, "retried as often as the example allows: {seen}");
    assert_eq!(seen["materializations"], serde_json::json!([]), "{seen}");
    assert!(manifest(tmp.path(), "2026-Q4").is_none(), "nothing committed");
}

#[test]
fn airflow_loads_the_example_dag() {
    let python = std::env::var("QUADRANT_AIRFLOW_PYTHON")
        .expect("QUADRANT_AIRFLOW_PYTHON is not set: run the tests with `bash scripts/test`, which installs Airflow in a virtualenv");
    let o = std::process::Command::new(python)
        .arg(root().join("tests/clients/airflow_dagbag.py"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let seen: serde_json::Value = serde_json::from_str(stdout(&o).lines().last().unwrap()).unwrap();
    assert_eq!(seen["import_errors"], serde_json::json!({}));
    assert_eq!(seen["dags"], serde_json::json!(["quadrant_quarterly"]));
    assert_eq!(seen["tasks"], serde_json::json!(["segment_cycle"]));
    assert_eq!(seen["catchup"], true);
    assert_eq!(seen["cycles"], serde_json::json!(["2025-Q1", "2025-Q2", "2025-Q4"]));
}

/// Runs `tests/clients/airflow_task.py` (Airflow's own task runner over the
/// example DAG) on `cases` with `python`: what it saw, and all it printed.
fn airflow_task(mut python: std::process::Command, cases: &serde_json::Value) -> (serde_json::Value, String) {
    let mut child = python
        .current_dir(root())
        .arg(root().join("tests/clients/airflow_task.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(cases.to_string().as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    let printed = format!("{}{}", stdout(&o), stderr(&o));
    assert!(o.status.success(), "{printed}");
    let seen = stdout(&o)
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .map(|l| serde_json::from_str(l).unwrap())
        .unwrap_or_else(|| panic!("no result from the Airflow driver:\n{printed}"));
    (seen, printed)
}

/// The example DAG executed by Airflow (`dag.test()`, Airflow's own task
/// runner and retry logic, the DAG's `retries`), its task running the real
/// binary: exit 0 succeeds and pushes the summary to XCom; 4 (a second run of
/// the cycle) succeeds; 2 (a broken pipeline file) and 3 (a failing data
/// check) fail at the first try; 1 (the store refuses connections) is retried
/// until the retries run out.
#[test]
fn airflow_runs_the_dag_task_and_maps_exit_codes_to_retries() {
    let python = std::env::var("QUADRANT_AIRFLOW_PYTHON")
        .expect("QUADRANT_AIRFLOW_PYTHON is not set: run the tests with `bash scripts/test`, which installs Airflow in a virtualenv");
    let tmp = tempfile::tempdir().unwrap();
    let default = std::fs::read_to_string(root().join("pipelines/default.toml")).unwrap();
    let usage = format!("uri = \"{}/\"", root().join("fixtures/usage").display());

    // A pipeline file that does not load (exit 2).
    let broken = tmp.path().join("broken.toml");
    std::fs::write(&broken, format!("{default}\n[no_such_table]\nx = 1\n")).unwrap();
    // Accounts with negative ARR, failing the data check negative_arr (exit 3).
    let negative = tmp.path().join("negative/accounts.parquet");
    let mut accounts = read_parquet(&root().join("fixtures/accounts.parquet"))
        .lazy()
        .with_column((lit(-1.0) * col("arr")).alias("arr"))
        .collect()
        .unwrap();
    write_parquet(&mut accounts, &negative);
    let bad_data = tmp.path().join("negative.toml");
    std::fs::write(
        &bad_data,
        default
            .replace(
                "uri = \"fixtures/accounts.parquet\"",
                &format!("uri = \"{}\"", negative.display()),
            )
            .replace("uri = \"fixtures/usage/\"", &usage),
    )
    .unwrap();
    assert!(std::fs::read_to_string(&bad_data).unwrap().contains(&usage));

    let out = tmp.path().join("out");
    let case = |name: &str, logical_date: &str, output: &str, pipeline: &Path, env: serde_json::Value| {
        let mut env = env;
        env["QUADRANT_BIN"] = env!("CARGO_BIN_EXE_quadrant").into();
        env["QUADRANT_OUTPUT"] = output.into();
        env["QUADRANT_PIPELINE"] = pipeline.to_str().unwrap().into();
        serde_json::json!({"name": name, "logical_date": logical_date, "env": env})
    };
    let default_toml = root().join("pipelines/default.toml");
    let local = out.to_str().unwrap();
    // The failing runs write elsewhere: the committed cycle would exit 4 first.
    let elsewhere = tmp.path().join("elsewhere");
    let elsewhere = elsewhere.to_str().unwrap();
    let no_env = serde_json::json!({});
    // Every run lands in 2026-Q3: the quarter before each logical date.
    let cases = serde_json::json!([
        case("committed", "2026-10-01T06:00:00", local, &default_toml, no_env.clone()),
        case("rerun", "2026-10-01T07:00:00", local, &default_toml, no_env.clone()),
        case(
            "broken_pipeline",
            "2026-10-01T08:00:00",
            elsewhere,
            &broken,
            no_env.clone()
        ),
        case(
            "data_check_fails",
            "2026-10-01T09:00:00",
            elsewhere,
            &bad_data,
            no_env.clone()
        ),
        // The quarter after the usage's last day: not ready (exit 5).
        case(
            "usage_not_landed",
            "2027-01-01T06:00:00",
            elsewhere,
            &default_toml,
            no_env.clone()
        ),
        case(
            "store_unreachable",
            "2026-10-01T10:00:00",
            "s3://quadrant-airflow/out",
            &default_toml,
            serde_json::json!({
                "AWS_ENDPOINT_URL": "http://127.0.0.1:{closed_port}",
                "AWS_ALLOW_HTTP": "true",
                "AWS_REGION": "us-east-1",
                "AWS_ACCESS_KEY_ID": "quadrant-airflow-key-id",
                "AWS_SECRET_ACCESS_KEY": "quadrant-airflow-secret",
            })
        ),
    ]);

    let (seen, printed) = airflow_task(std::process::Command::new(python), &cases);

    // The DAG's own retries, which exit 1 uses up and the others do not touch.
    let retries = seen["committed"]["retries"].as_u64().unwrap();
    assert!(retries >= 1, "{seen}");
    for (name, dag_run, tries) in [
        ("committed", "success", 1),
        ("rerun", "success", 1),
        ("broken_pipeline", "failed", 1),
        ("data_check_fails", "failed", 1),
        ("store_unreachable", "failed", retries + 1),
        ("usage_not_landed", "failed", retries + 1),
    ] {
        let c = &seen[name];
        assert_eq!(c["dag_run"], dag_run, "{name}: {c}");
        assert_eq!(c["state"], dag_run, "{name}: {c}");
        assert_eq!(c["tries"], tries, "{name}: {c}");
        assert_eq!(c["each_try"].as_array().unwrap().len() as u64, tries, "{name}: {c}");
    }

    // 0: the summary of the committed run in XCom, and the snapshot there.
    let summary = &seen["committed"]["xcom"]["summary"];
    assert_eq!(summary["cycle"], "2026-Q3", "{seen}");
    assert_eq!(summary["rows"], glob_rows(&out, "2026-Q3").unwrap().height(), "{seen}");
    // 4: done, nothing replaced.
    assert_eq!(seen["rerun"]["xcom"]["return_value"], "already committed", "{seen}");
    assert_eq!(seen["rerun"]["xcom"].get("summary"), None, "{seen}");
    assert_eq!(glob_partition(&out, "2026-Q3").len(), 1);
    // 2 and 3: failed for good at the first try, told why.
    for (name, code) in [("broken_pipeline", 2), ("data_check_fails", 3)] {
        let only = &seen[name]["each_try"][0];
        assert_eq!(only["state"], "failed", "{name}: {only}");
        let error = only["error"].as_str().unwrap();
        assert!(
            error.starts_with("AirflowFailException") && error.contains(&format!("quadrant exited {code}")),
            "{name}: {only}"
        );
    }
    assert!(printed.contains("unknown key `no_such_table`"), "{printed}");
    assert!(printed.contains("data check `negative_arr` failed"), "{printed}");
    assert!(glob_rows(Path::new(elsewhere), "2026-Q3").is_none());
    // 5: retried like 1, and nothing committed meanwhile.
    for t in seen["usage_not_landed"]["each_try"].as_array().unwrap() {
        assert!(t["error"].as_str().unwrap().contains("quadrant exited 5"), "{t}");
    }
    assert!(
        printed.contains("before as_of 2026-12-31 of cycle 2026-Q4"),
        "{printed}"
    );
    assert!(glob_rows(Path::new(elsewhere), "2026-Q4").is_none());
    // 1: up for retry after each try but the last.
    let each = seen["store_unreachable"]["each_try"].as_array().unwrap();
    for (i, t) in each.iter().enumerate() {
        let want = if i + 1 < each.len() { "up_for_retry" } else { "failed" };
        assert_eq!(t["state"], want, "try {}: {t}", i + 1);
        assert!(t["error"].as_str().unwrap().contains("quadrant exited 1"), "{t}");
    }
}

#[test]
fn the_summary_file_holds_the_json_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("summary.json");
    let o = run(&[
        "run",
        "--cycle",
        "2026-Q3",
        "--output",
        tmp.path().join("out").to_str().unwrap(),
        "--json",
        "--summary-file",
        file.to_str().unwrap(),
    ]);
    expect_code(&o, 0);
    let printed: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let written: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(printed, written);
    for key in [
        "cycle",
        "run_id",
        "snapshot",
        "rows",
        "segmentations",
        "quality",
        "timings",
    ] {
        assert!(!written[key].is_null(), "{key}");
    }
    for stage in [
        "scan_accounts",
        "aggregate_usage",
        "features_and_rules",
        "write_and_commit",
    ] {
        assert!(written["timings"][stage].is_number(), "{stage}");
    }
    // What it says is what was committed.
    let committed = manifest(&tmp.path().join("out"), "2026-Q3").unwrap();
    for key in ["cycle", "as_of", "run_id", "rows", "segmentations", "quality"] {
        assert_eq!(written[key], committed[key], "{key}");
    }
    assert!(
        written["snapshot"]
            .as_str()
            .unwrap()
            .ends_with("segments/cycle=2026-Q3")
    );
}

/// The wheel `scripts/test` builds with maturin and installs into a fresh
/// virtualenv (`QUADRANT_TEST_INSTALLED`): its `quadrant` is the one the
/// Dagster and Airflow examples find on PATH when `QUADRANT_BIN` is not set,
/// as on a worker whose image ran `pip install quadrant`; both commit the
/// cycle with it.
#[test]
fn the_installed_wheel_runs_both_orchestrator_examples_from_the_path() {
    let installed = std::path::PathBuf::from(std::env::var("QUADRANT_TEST_INSTALLED").expect(
        "QUADRANT_TEST_INSTALLED is not set: run the tests with `bash scripts/test`, which builds the wheel and installs it",
    ));
    assert!(
        !installed.starts_with(root().join("target/debug")) && !installed.starts_with(root().join("target/release"))
    );
    let bin = installed.parent().unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    // The installed binary is this checkout's, built without the Spark engine.
    let version = std::process::Command::new(&installed)
        .arg("--version")
        .output()
        .unwrap();
    let version = stdout(&version);
    let ours = stdout(&run(&["--version"]));
    assert_eq!(
        version.lines().take(2).collect::<Vec<_>>(),
        ours.lines().take(2).collect::<Vec<_>>(),
        "{version}"
    );
    assert!(version.contains("built without the Spark engine"), "{version}");

    // The Python with Dagster that the other tests use, found before the
    // wheel's virtualenv (which has a python3 of its own) goes first on PATH.
    let python3 = std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|dir| dir.join("python3"))
        .find(|p| p.is_file())
        .unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let dagster_out = tmp.path().join("dagster");
    let o = std::process::Command::new(python3)
        .arg(root().join("tests/clients/dagster_run.py"))
        .arg("2026-Q3")
        .current_dir(root())
        .env_remove("QUADRANT_BIN")
        .env("PATH", &path)
        .env("QUADRANT_OUTPUT", &dagster_out)
        .env("DAGSTER_HOME", tmp.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let seen: serde_json::Value = serde_json::from_str(stdout(&o).lines().last().unwrap()).unwrap();
    assert_eq!(seen["success"], true, "{seen}");
    assert!(
        manifest(&dagster_out, "2026-Q3").is_some(),
        "Dagster's run committed the cycle"
    );

    let python = std::env::var("QUADRANT_AIRFLOW_PYTHON").expect("QUADRANT_AIRFLOW_PYTHON: run `bash scripts/test`");
    let airflow_out = tmp.path().join("airflow");
    let cases = serde_json::json!([{
        "name": "committed",
        "logical_date": "2026-10-01T06:00:00",
        "env": {
            "QUADRANT_OUTPUT": airflow_out.to_str().unwrap(),
            "QUADRANT_PIPELINE": root().join("pipelines/default.toml").to_str().unwrap(),
        },
    }]);
    let mut airflow = std::process::Command::new(python);
    airflow.env_remove("QUADRANT_BIN").env("PATH", &path);
    let (seen, _) = airflow_task(airflow, &cases);
    assert_eq!(seen["committed"]["state"], "success", "{seen}");
    assert_eq!(seen["committed"]["xcom"]["summary"]["cycle"], "2026-Q3", "{seen}");
    assert!(
        manifest(&airflow_out, "2026-Q3").is_some(),
        "Airflow's task committed the cycle"
    );
}
