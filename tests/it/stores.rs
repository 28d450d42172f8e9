//! Object storage beyond the commit: inputs read from the store, readers of
//! committed snapshots, `[storage]` options, failures and secrets.

use crate::target::Target;
use crate::*;

fn upload_fixtures(target: &Target) -> (String, String) {
    target.upload(&root().join("fixtures/accounts.parquet"), "in/accounts/part-0.parquet");
    target.upload(
        &root().join("fixtures/usage/part-00000.parquet"),
        "in/usage/month=all/part-0.parquet",
    );
    (
        format!("{}/in/accounts/", target.uri()),
        format!("{}/in/usage/**/*.parquet", target.uri()),
    )
}

#[test]
fn inputs_explain_and_cycles_work_on_every_store() {
    let local = Target::local();
    expect_code(&run(&["run", "--cycle", "2026-Q3", "--output", &local.uri()]), 0);
    let want = local.glob_rows("2026-Q3").unwrap().drop("run_id").unwrap();
    for target in Target::remotes() {
        let (accounts, usage) = upload_fixtures(&target);
        let out = format!("{}/out", target.uri());
        let o = run(&[
            "run",
            "--cycle",
            "2026-Q3",
            "--accounts",
            &accounts,
            "--usage",
            &usage,
            "--output",
            &out,
        ]);
        expect_code(&o, 0);
        let m: serde_json::Value =
            serde_json::from_slice(&target.read("out/segments/cycle=2026-Q3/_manifest.json").unwrap()).unwrap();
        let files = m["inputs"]["usage"]["files"].as_array().unwrap();
        assert_eq!(files.len(), 1, "{}", target.name());
        assert!(
            files[0]["uri"]
                .as_str()
                .unwrap()
                .ends_with("in/usage/month=all/part-0.parquet")
        );
        assert!(files[0]["etag"].is_string() || files[0]["modified"].is_string());

        // The same rows as from the local fixtures (the Hive key of the
        // usage path is not a column the pipeline uses).
        let part = target
            .files()
            .into_iter()
            .find(|f| f.starts_with("out/segments/cycle=2026-Q3/part-"))
            .unwrap();
        let got = target.read_parquet(&part).drop("run_id").unwrap();
        assert!(got.equals_missing(&want), "{}", target.name());

        // Readers of committed snapshots ignore orphaned files.
        target.upload(
            &root().join("fixtures/accounts.parquet"),
            "out/segments/cycle=2026-Q4/part-orphan-0.parquet",
        );
        let listed = run(&["cycles", "--output", &out, "--json"]);
        expect_code(&listed, 0);
        let cycles: serde_json::Value = serde_json::from_str(&stdout(&listed)).unwrap();
        assert_eq!(cycles.as_array().unwrap().len(), 1, "{}", target.name());
        let e = run(&["explain", "--output", &out, "--account", "A0000002", "--json"]);
        expect_code(&e, 0);
        let explained: serde_json::Value = serde_json::from_str(&stdout(&e)).unwrap();
        assert_eq!(explained["cycle"], "2026-Q3");
        assert!(explained["source"].as_str().unwrap().starts_with("committed run"));
    }
}

#[test]
fn storage_options_in_the_pipeline_file_reach_the_store() {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("scripts/test sets AWS_ENDPOINT_URL for moto");
    let target = Target::s3();
    let (accounts, usage) = upload_fixtures(&target);
    let tmp = tempfile::tempdir().unwrap();
    let pipeline = tmp.path().join("p.toml");
    let text = std::fs::read_to_string(root().join("pipelines/default.toml")).unwrap();
    std::fs::write(
        &pipeline,
        format!("{text}\n[storage]\nendpoint = \"{endpoint}\"\nregion = \"us-east-1\"\nallow_http = true\n"),
    )
    .unwrap();
    let out = format!("{}/out", target.uri());
    let o = quadrant()
        .args(["run", "--pipeline", pipeline.to_str().unwrap(), "--cycle", "2026-Q3"])
        .args(["--accounts", &accounts, "--usage", &usage, "--output", &out])
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ALLOW_HTTP")
        .env_remove("AWS_REGION")
        .output()
        .unwrap();
    expect_code(&o, 0);
    assert!(target.read("out/segments/cycle=2026-Q3/_manifest.json").is_some());

    std::fs::write(
        &pipeline,
        format!("{text}\n[storage]\noptions = {{ aws_secret_access_key = \"x\" }}\n"),
    )
    .unwrap();
    let o = run(&["validate", "--config-only", "--pipeline", pipeline.to_str().unwrap()]);
    expect_code(&o, 2);
    assert!(
        stderr(&o).contains("[storage] option `aws_secret_access_key` carries a credential"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_missing_bucket_fails_fast_with_exit_1_and_says_what_to_check() {
    for uri in [
        "s3://no-such-bucket-quadrant/x",
        "gs://no-such-bucket-quadrant/x",
        "az://nosuchcontainer/x",
    ] {
        let started = std::time::Instant::now();
        let o = quadrant()
            .args(["run", "--cycle", "2026-Q3", "--output", uri])
            .envs(crate::target::loopback_stores())
            .output()
            .unwrap();
        expect_code(&o, 1);
        let err = stderr(&o);
        assert!(err.contains(uri), "{err}");
        assert!(err.contains("check"), "says what to check: {err}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "no long retries on a 404"
        );
    }
}

/// The commit protocol rests on create-only puts: every store must refuse
/// the second one.
#[test]
fn create_only_puts_are_honoured_by_every_store() {
    for target in Target::all() {
        let store = quadrant::storage::Store::open(&target.uri(), &Default::default()).unwrap();
        let path = store.path("_quadrant/locks/probe.json");
        assert!(store.put(&path, "a".into(), true).unwrap(), "{}", target.name());
        assert!(
            !store.put(&path, "b".into(), true).unwrap(),
            "{}: second create refused",
            target.name()
        );
        assert_eq!(store.get(&path).unwrap().unwrap().as_ref(), b"a", "{}", target.name());
        store.delete(&path).unwrap();
        assert!(store.get(&path).unwrap().is_none());
    }
}

/// Repair publishes a dead run's staged files by copying them over
/// whatever is at the published name: every store must replace it.
#[test]
fn a_copy_replaces_the_object_on_every_store() {
    for target in Target::all() {
        let store = quadrant::storage::Store::open(&target.uri(), &Default::default()).unwrap();
        let (from, to) = (store.path("staged/a.json"), store.path("published/a.json"));
        store.put(&from, "new".into(), false).unwrap();
        store.copy(&from, &to).unwrap();
        assert_eq!(store.get(&to).unwrap().unwrap().as_ref(), b"new", "{}", target.name());
        store.put(&to, "old".into(), false).unwrap();
        store
            .copy(&from, &to)
            .unwrap_or_else(|e| panic!("{}: {e}", target.name()));
        assert_eq!(store.get(&to).unwrap().unwrap().as_ref(), b"new", "{}", target.name());
    }
}

#[test]
fn transient_store_failures_are_retried_and_persistent_ones_fail_with_exit_1() {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("scripts/test sets AWS_ENDPOINT_URL for moto");
    let upstream: std::net::SocketAddr = endpoint.trim_start_matches("http://").parse().unwrap();
    let local = Target::local();
    expect_code(&run(&["run", "--cycle", "2026-Q3", "--output", &local.uri()]), 0);
    let want = local.glob_rows("2026-Q3").unwrap().drop("run_id").unwrap();

    // Each request to the store is answered 503 three times before it goes
    // through: the inputs' listing and reads (by polars, whose own default
    // is two retries), the lock, the data and the manifest are all retried.
    let target = Target::s3();
    let (accounts, usage) = upload_fixtures(&target);
    let out = format!("{}/out", target.uri());
    let flaky = crate::http::FlakyProxy::start(upstream, 3);
    let through = |proxy: &crate::http::FlakyProxy, args: &[&str]| {
        quadrant()
            .env("AWS_ENDPOINT_URL", format!("http://{}", proxy.addr))
            .args(args)
            .output()
            .unwrap()
    };
    let args = [
        "run",
        "--cycle",
        "2026-Q3",
        "--accounts",
        &accounts,
        "--usage",
        &usage,
        "--output",
        &out,
    ];
    let o = through(&flaky, &args);
    expect_code(&o, 0);
    // Every distinct request was refused three times, then went through.
    assert!(flaky.distinct() >= 6, "{}", flaky.distinct());
    assert_eq!(flaky.refused(), 3 * flaky.distinct());
    assert!(flaky.passed() >= flaky.distinct());
    let part = target
        .files()
        .into_iter()
        .find(|f| f.starts_with("out/segments/cycle=2026-Q3/part-"))
        .unwrap();
    let got = target.read_parquet(&part).drop("run_id").unwrap();
    assert!(got.equals_missing(&want));
    let listed = through(&flaky, &["cycles", "--output", &out, "--json"]);
    expect_code(&listed, 0);
    assert!(stdout(&listed).contains("2026-Q3"));

    // A store that never answers but 503 fails the run once the retries are
    // spent, with exit 1 and the URI; nothing is written.
    let down = crate::http::FlakyProxy::start(upstream, usize::MAX);
    let other = Target::s3();
    let out = format!("{}/out", other.uri());
    let started = std::time::Instant::now();
    let o = through(&down, &["run", "--cycle", "2026-Q3", "--output", &out]);
    expect_code(&o, 1);
    assert!(stderr(&o).contains("after 6 retries"), "{}", stderr(&o));
    assert!(stderr(&o).contains(&out), "{}", stderr(&o));
    assert!(down.refused() >= 7 && down.passed() == 0, "refused {}", down.refused());
    assert!(started.elapsed() < std::time::Duration::from_secs(90));
    assert!(other.files().is_empty(), "{:?}", other.files());
}

/// `scripts/test` runs the tests in a network namespace with only loopback
/// (`unshare -n`): no client can leave the machine, and one that would (a
/// cloud client without credentials asks the metadata address
/// 169.254.169.254) fails at once instead. Only a run that was explicitly
/// allowed the machine's network (QUADRANT_TEST_ALLOW_NETWORK=1, for
/// machines without namespaces) is exempt.
#[test]
fn the_tests_reach_only_loopback() {
    if std::env::var("QUADRANT_TEST_NETNS").as_deref() != Ok("loopback") {
        assert_eq!(
            std::env::var("QUADRANT_TEST_ALLOW_NETWORK").as_deref(),
            Ok("1"),
            "run the tests with `bash scripts/test`, which runs them in a network namespace with only loopback"
        );
        return;
    }
    // This process's interfaces (/sys/class/net shows the namespace /sys
    // was mounted in).
    let dev = std::fs::read_to_string("/proc/self/net/dev").unwrap();
    let mut interfaces: Vec<&str> = dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    interfaces.sort();
    assert_eq!(interfaces, ["lo"]);
    let started = std::time::Instant::now();
    let metadata: std::net::SocketAddr = "169.254.169.254:80".parse().unwrap();
    let e = std::net::TcpStream::connect_timeout(&metadata, std::time::Duration::from_secs(5)).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NetworkUnreachable, "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
}
