//! No credential reaches anything quadrant prints or writes: stdout (`--json`
//! results), stderr (its own logs and its libraries', at `RUST_LOG=trace`
//! and `-vv`, as text and as JSON), error messages, the summary file, the
//! snapshot's files, lineage events. Every credential kind of each store
//! goes through the public CLI. Where no test server accepts the
//! credential, a loopback server answers in the store's (or its identity
//! service's) place, refuses with a 4xx that quotes the credential it was
//! sent, as real error bodies do, and keeps the request: the test checks
//! that the credential went out, that the run exits with the expected code
//! and names the URI that failed, and that the credential shows nowhere.

use std::path::Path;
use std::process::Output;

use base64::Engine;

use crate::http::{Echo, Request, header_value};
use crate::target::Target;
use crate::*;

/// Every byte quadrant printed and wrote: stdout, stderr, the summary
/// file, and every file under `dir`.
fn everything(o: &Output, dir: &Path) -> String {
    let mut all = format!("{}\n{}\n", stdout(o), stderr(o));
    for f in tree(dir) {
        all.push_str(&String::from_utf8_lossy(&std::fs::read(dir.join(f)).unwrap()));
    }
    all
}

/// Fails when `secret`, or any 12 characters of it, shows in `all` (a
/// message cut short may show part of it).
#[track_caller]
fn assert_absent(all: &str, secret: &str, what: &str) {
    let chars: Vec<char> = secret.chars().collect();
    let windows: Vec<String> = if chars.len() <= 12 {
        vec![secret.to_string()]
    } else {
        chars.windows(12).map(|w| w.iter().collect()).collect()
    };
    for part in windows {
        if let Some(at) = all.find(&part) {
            let from = all.floor_char_boundary(at.saturating_sub(300));
            let to = all.ceil_char_boundary((at + 300).min(all.len()));
            panic!("{what}: `{secret}` leaked:\n...{}...", &all[from..to]);
        }
    }
}

/// A Dagster Pipes parameter as the Pipes clients pass it: zlib-compressed
/// JSON, in base64.
fn pipes_param(value: serde_json::Value) -> String {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut z, value.to_string().as_bytes()).unwrap();
    base64::engine::general_purpose::STANDARD.encode(z.finish().unwrap())
}

/// Runs `quadrant run --json` with every log on (`-vv`, `RUST_LOG=trace`),
/// once with text logs and once with JSON logs, under Dagster Pipes, writing
/// its summary and Pipes messages into `scratch`; checks the exit code and
/// that no secret shows in anything it printed or wrote there. Returns the
/// outputs of both runs, text first.
fn run_with(env: &[(&str, &str)], args: &[&str], secrets: &[&str], code: i32, scratch: &Path) -> Vec<Output> {
    let mut outputs = Vec::new();
    for format in ["text", "json"] {
        let summary = scratch.join(format!("summary-{format}.json"));
        let messages = scratch.join(format!("pipes-{format}.jsonl"));
        let mut cmd = quadrant();
        // The GCS emulator's service account (scripts/test) would take the
        // place of the credentials under test.
        cmd.env_remove("GOOGLE_SERVICE_ACCOUNT")
            .env(
                "DAGSTER_PIPES_CONTEXT",
                pipes_param(serde_json::json!({ "env": { "asset_keys": ["segments"] } })),
            )
            .env(
                "DAGSTER_PIPES_MESSAGES",
                pipes_param(serde_json::json!({ "path": messages })),
            );
        // Never the default `out/` of the project, which the README's
        // first command may have committed.
        let output = scratch.join("out");
        let output = ["--output", output.to_str().unwrap()];
        cmd.args(["--log-format", format, "-vv", "run", "--json"])
            .args(if args.contains(&"--output") {
                &[][..]
            } else {
                &output[..]
            })
            .args(args)
            .args(["--summary-file", summary.to_str().unwrap()])
            .args(if format == "json" && code == 0 {
                &["--replace"][..]
            } else {
                &[]
            })
            .env("RUST_LOG", "trace");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let o = cmd.output().unwrap();
        expect_code(&o, code);
        let sent = std::fs::read_to_string(&messages).unwrap_or_default();
        assert!(sent.contains("\"closed\""), "Pipes messages written: {sent}");
        let all = everything(&o, scratch);
        for secret in secrets {
            assert_absent(&all, secret, format);
        }
        outputs.push(o);
    }
    outputs
}

/// The value of a query parameter of a request.
fn query(request: &Request, name: &str) -> String {
    let target = request.0[0].split_whitespace().nth(1).unwrap_or_default();
    let query = target.split_once('?').map_or("", |(_, q)| q);
    query
        .split('&')
        .find_map(|p| p.strip_prefix(&format!("{name}=")))
        .unwrap_or_default()
        .to_string()
}

/// The value of a header of a request.
fn header(request: &Request, name: &str) -> String {
    request.0.iter().find_map(|l| header_value(l, name)).unwrap_or_default()
}

const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYQuadrantSecret";
const AWS_TOKEN: &str = "FwoGZXIvYXdzEQuadrantSessionToken0123456789abcdef";

#[test]
fn aws_secret_key_and_session_token_never_show() {
    let scratch = tempfile::tempdir().unwrap();
    let env = [("AWS_SECRET_ACCESS_KEY", AWS_SECRET), ("AWS_SESSION_TOKEN", AWS_TOKEN)];
    let secrets = [AWS_SECRET, AWS_TOKEN];
    // moto accepts any key pair: the run commits, with the token sent.
    let target = Target::s3();
    run_with(
        &env,
        &["--cycle", "2026-Q3", "--output", &target.uri()],
        &secrets,
        0,
        scratch.path(),
    );
    for f in target.files() {
        let text = String::from_utf8_lossy(&target.read(&f).unwrap()).into_owned();
        for s in secrets {
            assert_absent(&text, s, &f);
        }
    }
    // A store that refuses the token and quotes it back: exit 1, the URI
    // named, the token masked. (The secret key itself never leaves the
    // process: requests are signed with it.)
    let store = Echo::start("403 Forbidden", |r| {
        format!(
            "The security token included in the request is invalid: {}",
            header(r, "x-amz-security-token")
        )
    });
    let env = [
        ("AWS_SECRET_ACCESS_KEY", AWS_SECRET),
        ("AWS_SESSION_TOKEN", AWS_TOKEN),
        ("AWS_ENDPOINT_URL", store.url.as_str()),
    ];
    let o = &run_with(
        &env,
        &["--cycle", "2026-Q3", "--output", "s3://quadrant-test/refused"],
        &secrets,
        1,
        scratch.path(),
    )[0];
    assert!(stderr(o).contains("s3://quadrant-test/refused"), "{}", stderr(o));
    assert!(
        stderr(o).contains("security token included in the request is invalid: ***"),
        "{}",
        stderr(o)
    );
    assert!(store.header("x-amz-security-token").iter().all(|t| t == AWS_TOKEN));
    assert!(!store.header("x-amz-security-token").is_empty());
}

#[test]
fn an_azure_account_key_never_shows() {
    let scratch = tempfile::tempdir().unwrap();
    let key = "UXVhZHJhbnRBenVyZUFjY291bnRLZXlOZXZlclByaW50TWUxMjM0NTY3ODk=";
    let uri = format!("{}/secrets", std::env::var("QUADRANT_TEST_AZURE").unwrap());
    // Azurite checks the signature made with the key: refused, exit 1. The
    // key itself never leaves the process (requests are signed with it).
    let o = &run_with(
        &[("AZURE_STORAGE_ACCOUNT_KEY", key)],
        &["--cycle", "2026-Q3", "--output", uri.as_str()],
        &[key],
        1,
        scratch.path(),
    )[0];
    assert!(stderr(o).contains(&uri), "{}", stderr(o));
}

#[test]
fn an_azure_sas_token_never_shows_even_when_quoted_back() {
    let scratch = tempfile::tempdir().unwrap();
    let signature = "UXVhZHJhbnRTYXNTaWduYXR1cmUvK0FCQz0=";
    let sas = "sv=2021-08-06&ss=b&srt=sco&sp=rwdlacx&se=2030-01-01T00:00:00Z&st=2024-01-01T00:00:00Z&spr=https,http&sig=UXVhZHJhbnRTYXNTaWduYXR1cmUvK0FCQz0%3D";
    let secrets = [signature, "UXVhZHJhbnRTYXNTaWduYXR1cmUvK0FCQz0%3D"];
    let uri = format!("{}/secrets", std::env::var("QUADRANT_TEST_AZURE").unwrap());
    // The SAS token rides in every URL's query string; Azurite refuses it.
    let o = &run_with(
        &[("AZURE_STORAGE_SAS_KEY", sas)],
        &["--cycle", "2026-Q3", "--output", uri.as_str()],
        &secrets,
        1,
        scratch.path(),
    )[0];
    assert!(stderr(o).contains(&uri), "{}", stderr(o));
    // A store that quotes the signature it was sent.
    let store = Echo::start("403 Forbidden", |r| {
        format!("Signature did not match. sig={} is not valid", query(r, "sig"))
    });
    let env = [
        ("AZURE_STORAGE_USE_EMULATOR", "false"),
        ("AZURE_STORAGE_ACCOUNT_NAME", "quadrantaccount"),
        ("AZURE_STORAGE_ENDPOINT", store.url.as_str()),
        ("AZURE_STORAGE_SAS_KEY", sas),
    ];
    let o = &run_with(
        &env,
        &["--cycle", "2026-Q3", "--output", "az://quadrant-test/refused"],
        &secrets,
        1,
        scratch.path(),
    )[0];
    assert!(stderr(o).contains("az://quadrant-test/refused"), "{}", stderr(o));
    assert!(stderr(o).contains("sig=*** is not valid"), "{}", stderr(o));
    assert_eq!(query(&store.requests()[0], "sig"), secrets[1]);
}

#[test]
fn an_azure_client_secret_never_shows_even_when_quoted_back() {
    let scratch = tempfile::tempdir().unwrap();
    let secret = "Qu4~drant.ClientSecret_NeverPrint-0123456789";
    // The identity service refuses the secret and quotes the form it got.
    let authority = Echo::start("400 Bad Request", |(_, body)| {
        let form = String::from_utf8_lossy(body).into_owned();
        let secret = form
            .split('&')
            .find(|p| p.starts_with("client_secret="))
            .unwrap_or_default();
        format!("AADSTS7000215: Invalid client secret provided ({secret}). Request: {form}")
    });
    let env = [
        ("AZURE_STORAGE_USE_EMULATOR", "false"),
        ("AZURE_STORAGE_ACCOUNT_NAME", "quadrantaccount"),
        ("AZURE_CLIENT_ID", "00000000-0000-0000-0000-000000000001"),
        ("AZURE_TENANT_ID", "00000000-0000-0000-0000-000000000002"),
        ("AZURE_CLIENT_SECRET", secret),
        ("AZURE_AUTHORITY_HOST", authority.url.as_str()),
    ];
    let o = &run_with(
        &env,
        &["--cycle", "2026-Q3", "--output", "az://quadrant-test/x"],
        &[secret, &secret.replace('~', "%7E")],
        1,
        scratch.path(),
    )[0];
    assert!(stderr(o).contains("az://quadrant-test/x"), "{}", stderr(o));
    assert!(stderr(o).contains("client_secret=***"), "{}", stderr(o));
    let (_, form) = &authority.requests()[0];
    assert!(
        String::from_utf8_lossy(form).contains("client_secret=Qu4"),
        "the secret was sent"
    );
}

/// object_store 0.13 signs a JWT with the service account's private key and
/// sends it as the bearer token (it asks no token endpoint, so the key
/// file's `token_uri` plays no part): the store quotes that token back.
#[test]
fn a_gcs_service_account_key_never_shows_even_when_its_token_is_quoted_back() {
    let scratch = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let pem = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
        .output()
        .expect("openssl makes a test key");
    let pem = String::from_utf8(pem.stdout).unwrap();
    let key_id = "0123456789abcdef0123456789abcdef01234567";
    let key = serde_json::json!({
        "type": "service_account",
        "project_id": "quadrant-test",
        "private_key_id": key_id,
        "private_key": pem,
        "client_email": "quadrant@quadrant-test.iam.gserviceaccount.com",
    })
    .to_string();
    let key_file = keys.path().join("service-account.json");
    std::fs::write(&key_file, &key).unwrap();
    let mut owned: Vec<String> = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::to_string)
        .collect();
    owned.push(key_id.to_string());
    let secrets: Vec<&str> = owned.iter().map(String::as_str).collect();
    let store = Echo::start("401 Unauthorized", |r| {
        format!("Invalid Credentials: {}", header(r, "authorization"))
    });
    let pipeline = keys.path().join("gcs.toml");
    let text = std::fs::read_to_string(root().join("pipelines/default.toml")).unwrap();
    std::fs::write(
        &pipeline,
        format!("{text}\n[storage]\nendpoint = \"{}\"\nallow_http = true\n", store.url),
    )
    .unwrap();
    let args = [
        "--pipeline",
        pipeline.to_str().unwrap(),
        "--cycle",
        "2026-Q3",
        "--output",
        "gs://quadrant-test/x",
    ];
    for (variable, value) in [
        ("GOOGLE_SERVICE_ACCOUNT_KEY", key.as_str()),
        ("GOOGLE_APPLICATION_CREDENTIALS", key_file.to_str().unwrap()),
    ] {
        let before = store.requests().len();
        let outputs = run_with(&[(variable, value)], &args, &secrets, 1, scratch.path());
        // The bearer tokens the store got (signed with the key) show
        // nowhere either.
        let tokens: Vec<String> = store.requests()[before..]
            .iter()
            .map(|r| header(r, "authorization").trim_start_matches("Bearer ").to_string())
            .collect();
        assert!(
            !tokens.is_empty() && tokens.iter().all(|t| t.len() > 100),
            "{variable}: {tokens:?}"
        );
        for o in &outputs {
            assert!(stderr(o).contains("gs://quadrant-test/x"), "{}", stderr(o));
            let all = everything(o, scratch.path());
            for token in &tokens {
                assert_absent(&all, token, variable);
            }
        }
        assert!(
            stderr(&outputs[0]).contains("Invalid Credentials: Bearer ***"),
            "{}",
            stderr(&outputs[0])
        );
    }
}

#[test]
fn credentials_in_uris_are_refused_and_never_shown() {
    let scratch = tempfile::tempdir().unwrap();
    // A lineage backend: the run's START and FAIL events must not carry them.
    let lineage = Echo::start("200 OK", |_| String::new());
    let secret = "UriSecretNeverPrint99";
    for (flag, uri, shown) in [
        (
            "--output",
            "s3://AKIAQUADRANT:UriSecretNeverPrint99@quadrant-test/x",
            "s3://***@quadrant-test/x",
        ),
        (
            "--accounts",
            "az://user:UriSecretNeverPrint99@quadrant-test/accounts.parquet",
            "az://***@quadrant-test/accounts.parquet",
        ),
        (
            "--usage",
            "gs://key:UriSecretNeverPrint99@quadrant-test/usage/",
            "gs://***@quadrant-test/usage/",
        ),
        (
            "--accounts",
            "az://quadrant-test/accounts.parquet?sv=2021-08-06&sig=UriSecretNeverPrint99",
            "az://quadrant-test/accounts.parquet?sv=2021-08-06&sig=***",
        ),
    ] {
        let o = &run_with(
            &[],
            &["--cycle", "2026-Q3", flag, uri, "--lineage-url", &lineage.url],
            &[secret],
            2,
            scratch.path(),
        )[0];
        let err = stderr(o);
        assert!(err.contains("credentials in a URI are not accepted"), "{err}");
        assert!(err.contains(shown), "{err}");
    }
    let sent: Vec<String> = lineage
        .requests()
        .iter()
        .map(|(_, body)| String::from_utf8_lossy(body).into_owned())
        .collect();
    assert!(sent.len() >= 2, "the inputs' failures are reported as lineage events");
    assert_absent(&sent.concat(), secret, "lineage events");

    // In the pipeline file, `validate --config-only` refuses them as `run` does.
    let text = std::fs::read_to_string(root().join("pipelines/default.toml")).unwrap();
    let pipelines = tempfile::tempdir().unwrap();
    let pipeline = pipelines.path().join("p.toml");
    for (from, to, section) in [
        (
            "uri = \"fixtures/accounts.parquet\"",
            "uri = \"s3://AKIAQUADRANT:UriSecretNeverPrint99@quadrant-test/accounts.parquet\"",
            "[inputs.accounts] `uri` carries credentials (`s3://***@quadrant-test/accounts.parquet`)",
        ),
        (
            "uri = \"out/\"",
            "uri = \"abfss://c:UriSecretNeverPrint99@account.dfs.core.windows.net/out/\"",
            "[output] `uri` carries credentials (`abfss://***@account.dfs.core.windows.net/out/`)",
        ),
    ] {
        assert!(text.contains(from), "pipelines/default.toml has {from}");
        std::fs::write(&pipeline, text.replacen(from, to, 1)).unwrap();
        for args in [
            vec!["validate", "--config-only", "--pipeline", pipeline.to_str().unwrap()],
            vec!["run", "--cycle", "2026-Q3", "--pipeline", pipeline.to_str().unwrap()],
        ] {
            let o = &quadrant().args(&args).env("RUST_LOG", "trace").output().unwrap();
            expect_code(o, 2);
            assert!(stderr(o).contains(section), "{}", stderr(o));
            assert_absent(&format!("{}{}", stdout(o), stderr(o)), secret, args[0]);
        }
    }
}

/// The secrets quadrant knows are masked in every channel even where no
/// store quotes them: here a missing input's path happens to hold one, and
/// the error (text and JSON logs), the Pipes messages and the lineage
/// events that name the path all show `***` instead.
#[test]
fn a_known_secret_is_masked_in_every_channel_even_in_a_path() {
    let scratch = tempfile::tempdir().unwrap();
    let secret = "QuadrantPathSecret0123456789";
    let lineage = Echo::start("200 OK", |_| String::new());
    let accounts = format!("/nonexistent/{secret}/accounts.parquet");
    let outputs = run_with(
        &[("AZURE_CLIENT_SECRET", secret)],
        &[
            "--cycle",
            "2026-Q3",
            "--accounts",
            &accounts,
            "--lineage-url",
            &lineage.url,
        ],
        &[secret],
        3,
        scratch.path(),
    );
    for o in &outputs {
        assert!(stderr(o).contains("/nonexistent/***/accounts.parquet"), "{}", stderr(o));
    }
    for format in ["text", "json"] {
        let sent = std::fs::read_to_string(scratch.path().join(format!("pipes-{format}.jsonl"))).unwrap();
        assert!(sent.contains("/nonexistent/***/accounts.parquet"), "{sent}");
    }
    let events: String = lineage
        .requests()
        .iter()
        .map(|(_, body)| String::from_utf8_lossy(body).into_owned())
        .collect();
    assert!(
        events.contains("FAIL") && events.contains("/nonexistent/***/accounts.parquet"),
        "{events}"
    );
    assert_absent(&events, secret, "lineage events");

    // A run that commits into such a path: the `--json` result, the summary
    // file and the Pipes materialization name the snapshot masked.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = elsewhere.path().join(secret).join("out");
    let outputs = run_with(
        &[("AZURE_CLIENT_SECRET", secret)],
        &["--cycle", "2026-Q3", "--output", out.to_str().unwrap()],
        &[secret],
        0,
        scratch.path(),
    );
    let summary = std::fs::read_to_string(scratch.path().join("summary-text.json")).unwrap();
    for text in [stdout(&outputs[0]), summary] {
        assert!(text.contains("/***/out/segments/cycle=2026-Q3"), "{text}");
    }
    let sent = std::fs::read_to_string(scratch.path().join("pipes-text.jsonl")).unwrap();
    assert!(
        sent.contains("report_asset_materialization") && sent.contains("/***/out/"),
        "{sent}"
    );
}

/// A lineage URL's user and password keep working (sent as HTTP basic
/// auth, from the flag or from `OPENLINEAGE_URL`) and show nowhere: not in
/// what is printed, not in the events.
#[test]
fn a_lineage_url_password_is_sent_as_basic_auth_and_never_shown() {
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("out");
    let password = "LineagePass/NeverPrint77";
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("lineage:{password}"))
    );
    let secrets = [password, "LineagePass%2FNeverPrint77", &basic[6..]];
    let backend = Echo::start("200 OK", |_| String::new());
    let url = backend
        .url
        .replace("http://", "http://lineage:LineagePass%2FNeverPrint77@");
    let args = ["--cycle", "2026-Q3", "--output", out.to_str().unwrap()];
    run_with(
        &[],
        &[&args[..], &["--lineage-url", &url]].concat(),
        &secrets,
        0,
        scratch.path(),
    );
    let other = scratch.path().join("other");
    run_with(
        &[("OPENLINEAGE_URL", &url)],
        &["--cycle", "2026-Q3", "--output", other.to_str().unwrap()],
        &secrets,
        0,
        scratch.path(),
    );
    let requests = backend.requests();
    // START and COMPLETE, for each of the four runs.
    assert_eq!(requests.len(), 8);
    for (head, body) in &requests {
        let auth: Vec<String> = head.iter().filter_map(|l| header_value(l, "authorization")).collect();
        assert_eq!(auth, std::slice::from_ref(&basic));
        for s in secrets {
            assert_absent(&String::from_utf8_lossy(body), s, "event");
        }
    }
    // A backend that refuses them and quotes the header back: a warning, never a failed run.
    let refusing = Echo::start("401 Unauthorized", |r| {
        format!("bad credentials: {}", header(r, "authorization"))
    });
    let url = refusing
        .url
        .replace("http://", "http://lineage:LineagePass%2FNeverPrint77@");
    let third = scratch.path().join("third");
    let o = &run_with(
        &[],
        &[
            "--cycle",
            "2026-Q3",
            "--output",
            third.to_str().unwrap(),
            "--lineage-url",
            &url,
        ],
        &secrets,
        0,
        scratch.path(),
    )[0];
    assert!(
        stderr(o).contains("could not send the OpenLineage event"),
        "{}",
        stderr(o)
    );
    assert!(stderr(o).contains("bad credentials: Basic ***"), "{}", stderr(o));
}

/// `OPENLINEAGE_API_KEY` is sent as the bearer token, alone (not next to a
/// URL's basic auth), and shows nowhere.
#[test]
fn the_openlineage_api_key_is_sent_as_a_bearer_token_and_never_shown() {
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("out");
    let key = "LineageApiKeyNeverPrint88";
    let backend = Echo::start("401 Unauthorized", |r| {
        format!(
            "{{\"error\": \"bad key\", \"authorization\": \"{}\"}}",
            header(r, "authorization")
        )
    });
    let url = backend
        .url
        .replace("http://", "http://lineage:LineagePassNeverPrint77@");
    let o = &run_with(
        &[("OPENLINEAGE_API_KEY", key)],
        &[
            "--cycle",
            "2026-Q3",
            "--output",
            out.to_str().unwrap(),
            "--lineage-url",
            &url,
        ],
        &[key, "LineagePassNeverPrint77"],
        0,
        scratch.path(),
    )[0];
    assert!(
        stderr(o).contains("could not send the OpenLineage event"),
        "{}",
        stderr(o)
    );
    let requests = backend.requests();
    assert!(!requests.is_empty(), "the event was sent to the backend");
    for (head, _) in requests {
        let auth: Vec<String> = head.iter().filter_map(|l| header_value(l, "authorization")).collect();
        assert_eq!(auth, [format!("Bearer {key}")]);
    }
}

/// Every `[storage]` option that carries a credential, names an identity or
/// says where a credential is kept is refused by name (exit 2), in
/// `validate --config-only` as in `run`, and its value is never shown; so
/// is a value with credentials in it, even of an allowed option.
#[test]
fn credential_options_in_the_pipeline_file_are_refused_by_name() {
    let scratch = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("pipelines/default.toml")).unwrap();
    let value = "OptionSecretNeverPrint55";
    let pipeline = scratch.path().join("p.toml");
    let check = |storage: &str, message: &str| {
        std::fs::write(&pipeline, format!("{text}\n[storage]\n{storage}\n")).unwrap();
        for args in [
            vec!["validate", "--config-only", "--pipeline", pipeline.to_str().unwrap()],
            vec!["run", "--cycle", "2026-Q3", "--pipeline", pipeline.to_str().unwrap()],
        ] {
            let o = &quadrant().args(&args).env("RUST_LOG", "trace").output().unwrap();
            expect_code(o, 2);
            let err = stderr(o);
            assert!(err.contains(message), "{storage}: {err}");
            assert_absent(&format!("{}{err}", stdout(o)), value, storage);
        }
    };
    for key in [
        "aws_secret_access_key",
        "secret_access_key",
        "aws_access_key_id",
        "aws_session_token",
        "session_token",
        "token",
        "aws_sse_customer_key_base64",
        "aws_web_identity_token_file",
        "aws_container_authorization_token_file",
        "aws_container_credentials_full_uri",
        "metadata_endpoint",
        "endpoint_url_sts",
        "role_arn",
        "azure_storage_account_key",
        "azure_storage_access_key",
        "account_key",
        "access_key",
        "master_key",
        "azure_storage_sas_key",
        "sas_key",
        "sas_token",
        "azure_client_secret",
        "client_secret",
        "client_id",
        "tenant_id",
        "authority_host",
        "bearer_token",
        "azure_storage_token",
        "federated_token_file",
        "msi_endpoint",
        "azure_fabric_session_token",
        "google_service_account_key",
        "service_account_key",
        "google_application_credentials",
        "service_account",
        "Account_Key",
    ] {
        check(
            &format!("options = {{ {key} = \"{value}\" }}"),
            &format!("[storage] option `{key}` carries a credential"),
        );
    }
    for key in ["bucket", "container_name"] {
        check(
            &format!("options = {{ {key} = \"{value}\" }}"),
            &format!("[storage] option `{key}` names the bucket or container"),
        );
    }
    check(
        &format!("options = {{ colour = \"{value}\" }}"),
        "[storage] option `colour` is not an option quadrant accepts",
    );
    // Outside `options`, an unknown key all the same.
    check(
        &format!("account_key = \"{value}\""),
        "unknown key `account_key` in [storage]",
    );
    // Allowed options whose value carries credentials.
    check(
        &format!("options = {{ proxy_url = \"http://user:{value}@proxy.internal:3128\" }}"),
        "[storage] option `proxy_url` carries credentials in its value",
    );
    check(
        &format!("endpoint = \"https://a.blob.core.windows.net/?sv=2022-11-02&sig={value}\""),
        "[storage] `endpoint` carries credentials",
    );

    // Options without secrets pass, under any of their names.
    std::fs::write(
        &pipeline,
        format!(
            "{text}\n[storage]\nregion = \"eu-central-1\"\noptions = {{ virtual_hosted_style_request = \"false\", aws_timeout = \"30s\", account_name = \"quadrant\", proxy_url = \"http://proxy.internal:3128\" }}\n"
        ),
    )
    .unwrap();
    expect_code(
        &run(&["validate", "--config-only", "--pipeline", pipeline.to_str().unwrap()]),
        0,
    );
}

/// clap quotes the arguments it cannot take: masked like every message.
#[test]
fn a_command_line_that_clap_refuses_never_shows_a_credential() {
    for args in [
        vec!["run", "--cycle", "2026-Q3", "s3://AKIA:ArgSecretNeverPrint66@bucket/x"],
        vec!["--log-format", "https://user:ArgSecretNeverPrint66@host", "run"],
    ] {
        let o = &quadrant().args(&args).output().unwrap();
        expect_code(o, 2);
        assert!(stderr(o).contains("://***@"), "{}", stderr(o));
        assert_absent(&format!("{}{}", stdout(o), stderr(o)), "ArgSecretNeverPrint66", args[0]);
    }
}

/// polars' own verbose messages bypass quadrant's masking: saying so is all
/// quadrant can do.
#[test]
fn polars_verbose_is_warned_about() {
    let o = &quadrant()
        .args(["validate", "--config-only"])
        .env("POLARS_VERBOSE", "1")
        .output()
        .unwrap();
    expect_code(o, 0);
    assert!(stderr(o).contains("POLARS_VERBOSE is set"), "{}", stderr(o));
    let o = &quadrant().args(["validate", "--config-only"]).output().unwrap();
    assert!(!stderr(o).contains("POLARS_VERBOSE"), "{}", stderr(o));
}
