//! Orchestrators and lineage as real clients: OpenLineage events received
//! on a loopback HTTP server and validated with the official client, Dagster
//! materializing the example asset through Pipes, Airflow loading the example
//! DAG, and the run summary file.

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
            .contains("no Parquet files")
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

/// The DAG's task, executed with the real binary: exit 0 pushes the summary
/// to XCom, 4 counts as done, 2 and 3 fail without retries, 1 is retried.
#[test]
fn the_airflow_task_maps_exit_codes_to_retries() {
    let python = std::env::var("QUADRANT_AIRFLOW_PYTHON")
        .expect("QUADRANT_AIRFLOW_PYTHON is not set: run the tests with `bash scripts/test`, which installs Airflow in a virtualenv");
    let tmp = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(python)
        .current_dir(root())
        .arg(root().join("tests/clients/airflow_task.py"))
        .arg(env!("CARGO_BIN_EXE_quadrant"))
        .arg(tmp.path().join("out"))
        .arg(root().join("pipelines/default.toml"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let seen: serde_json::Value = serde_json::from_str(stdout(&o).lines().last().unwrap()).unwrap();
    assert_eq!(seen["committed"]["outcome"], "success", "{seen}");
    assert_eq!(seen["committed"]["xcom_cycle"], "2026-Q3", "{seen}");
    assert_eq!(seen["rerun"]["outcome"], "success", "{seen}");
    assert_eq!(seen["rerun"]["returned"], "already committed", "{seen}");
    for (case, code) in [("bad_pipeline", 2), ("no_usage_in_windows", 3)] {
        assert_eq!(seen[case]["outcome"], "fail_without_retry", "{case}: {seen}");
        assert!(
            seen[case]["error"]
                .as_str()
                .unwrap()
                .contains(&format!("exited {code}")),
            "{case}: {seen}"
        );
    }
    assert_eq!(seen["store_unreachable"]["outcome"], "retry", "{seen}");
    assert!(
        seen["store_unreachable"]["error"]
            .as_str()
            .unwrap()
            .contains("exited 1"),
        "{seen}"
    );
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
}
