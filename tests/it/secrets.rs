//! No credential reaches anything quadrant prints or writes: stdout, stderr
//! (its own logs and its libraries', at `RUST_LOG=trace`, as text and as
//! JSON), error messages, the summary file, the snapshot's files. Every
//! credential kind of each store goes through the public CLI; where no test
//! server accepts the credential, a loopback server answers in its place
//! and echoes the request back (so the secret sits in the error body the
//! store returns), and the exit code and the message are checked too.

use std::io::{BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Output;

use crate::http::read_request;
use crate::target::Target;
use crate::*;

/// Answers every request with `status` and a body that repeats the request.
fn echo_server(status: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { continue };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(client.try_clone().unwrap());
                while let Ok(Some((head, body))) = read_request(&mut reader) {
                    let mut echo = head.concat().into_bytes();
                    echo.extend_from_slice(&body);
                    let reply = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
                        echo.len()
                    );
                    if client
                        .write_all(reply.as_bytes())
                        .and_then(|()| client.write_all(&echo))
                        .is_err()
                    {
                        break;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

/// Every byte quadrant printed and wrote: stdout, stderr, the summary
/// file, and every file under `dir` (the output root, when local).
fn everything(o: &Output, summary: &Path, dir: Option<&Path>) -> String {
    let mut all = format!("{}\n{}\n", stdout(o), stderr(o));
    all.push_str(&std::fs::read_to_string(summary).unwrap_or_default());
    if let Some(dir) = dir {
        for f in tree(dir) {
            all.push_str(&String::from_utf8_lossy(&std::fs::read(dir.join(f)).unwrap()));
        }
    }
    all
}

/// Runs quadrant with full logging in both formats and checks that no
/// secret shows; returns the text output of the first run.
fn run_with(env: &[(&str, &str)], args: &[&str], secrets: &[&str], code: i32, scratch: &Path) -> Output {
    let mut first = None;
    for format in ["text", "json"] {
        let summary = scratch.join(format!("summary-{format}.json"));
        let mut cmd = quadrant();
        cmd.args(["--log-format", format, "-vv"])
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
        let all = everything(&o, &summary, Some(scratch));
        for secret in secrets {
            assert!(
                !all.contains(secret),
                "{format}: `{secret}` leaked:\n{}",
                &all[..all.len().min(20_000)]
            );
        }
        first.get_or_insert(o);
    }
    first.unwrap()
}

const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYQuadrantSecret";
const AWS_TOKEN: &str = "FwoGZXIvYXdzEQuadrantSessionToken0123456789abcdef";

#[test]
fn aws_key_secret_and_session_token_never_show() {
    let scratch = tempfile::tempdir().unwrap();
    let target = Target::s3();
    let env = [("AWS_SECRET_ACCESS_KEY", AWS_SECRET), ("AWS_SESSION_TOKEN", AWS_TOKEN)];
    let secrets = [AWS_SECRET, AWS_TOKEN];
    // moto accepts any key pair: the run succeeds with the token sent.
    run_with(
        &env,
        &["run", "--cycle", "2026-Q3", "--output", &target.uri()],
        &secrets,
        0,
        scratch.path(),
    );
    for f in target.files() {
        let text = String::from_utf8_lossy(&target.read(&f).unwrap()).into_owned();
        for s in secrets {
            assert!(!text.contains(s), "{f}");
        }
    }
    // A failing store: exit 1, the URI named, no secret.
    let o = run_with(
        &env,
        &[
            "run",
            "--cycle",
            "2026-Q3",
            "--output",
            "s3://no-such-bucket-quadrant/x",
        ],
        &secrets,
        1,
        scratch.path(),
    );
    assert!(stderr(&o).contains("s3://no-such-bucket-quadrant/x"), "{}", stderr(&o));
}

#[test]
fn azure_account_key_and_sas_token_never_show() {
    let scratch = tempfile::tempdir().unwrap();
    let key = "UXVhZHJhbnRBenVyZUFjY291bnRLZXlOZXZlclByaW50TWUxMjM0NTY3ODk=";
    let sas = "sv=2021-08-06&ss=b&srt=sco&sp=rwdlacx&se=2030-01-01T00:00:00Z&st=2024-01-01T00:00:00Z&spr=https,http&sig=UXVhZHJhbnRTYXNTaWduYXR1cmUvK0FCQz0%3D";
    let uri = format!("{}/secrets", std::env::var("QUADRANT_TEST_AZURE").unwrap());
    let args = ["run", "--cycle", "2026-Q3", "--output", uri.as_str()];
    // Azurite checks the signature made with the key: refused, exit 1.
    let o = run_with(&[("AZURE_STORAGE_ACCOUNT_KEY", key)], &args, &[key], 1, scratch.path());
    assert!(stderr(&o).contains(&uri), "{}", stderr(&o));
    // A SAS token rides in every URL's query string; Azurite refuses it too.
    let o = run_with(
        &[("AZURE_STORAGE_SAS_KEY", sas)],
        &args,
        &[
            "UXVhZHJhbnRTYXNTaWduYXR1cmUvK0FCQz0",
            "UXVhZHJhbnRTYXNTaWduYXR1cmUvK0FCQz0=",
        ],
        1,
        scratch.path(),
    );
    assert!(stderr(&o).contains(&uri), "{}", stderr(&o));
}

#[test]
fn azure_client_secret_never_shows_even_when_echoed_back() {
    let scratch = tempfile::tempdir().unwrap();
    let secret = "Qu4~drant.ClientSecret_NeverPrint-0123456789";
    let authority = echo_server("400 Bad Request");
    let env = [
        ("AZURE_STORAGE_USE_EMULATOR", "false"),
        ("AZURE_STORAGE_ACCOUNT_NAME", "quadrantaccount"),
        ("AZURE_CLIENT_ID", "00000000-0000-0000-0000-000000000001"),
        ("AZURE_TENANT_ID", "00000000-0000-0000-0000-000000000002"),
        ("AZURE_CLIENT_SECRET", secret),
        ("AZURE_AUTHORITY_HOST", authority.as_str()),
    ];
    let o = run_with(
        &env,
        &["run", "--cycle", "2026-Q3", "--output", "az://quadrant-test/x"],
        &[secret, &secret.replace('~', "%7E")],
        1,
        scratch.path(),
    );
    assert!(stderr(&o).contains("az://quadrant-test/x"), "{}", stderr(&o));
}

#[test]
fn gcs_service_account_key_never_shows() {
    let scratch = tempfile::tempdir().unwrap();
    let pem = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
        .output()
        .expect("openssl makes a test key");
    let pem = String::from_utf8(pem.stdout).unwrap();
    let body_line = pem.lines().nth(5).unwrap().to_string();
    let key = serde_json::json!({
        "type": "service_account",
        "project_id": "quadrant-test",
        "private_key_id": "0123456789abcdef0123456789abcdef01234567",
        "private_key": pem,
        "client_email": "quadrant@quadrant-test.iam.gserviceaccount.com",
    })
    .to_string();
    let gcs = echo_server("401 Unauthorized");
    let pipeline = scratch.path().join("gcs.toml");
    let text = std::fs::read_to_string(root().join("pipelines/default.toml")).unwrap();
    std::fs::write(
        &pipeline,
        format!("{text}\n[storage]\nendpoint = \"{gcs}\"\nallow_http = true\n"),
    )
    .unwrap();
    let o = run_with(
        &[("GOOGLE_SERVICE_ACCOUNT_KEY", key.as_str())],
        &[
            "run",
            "--pipeline",
            pipeline.to_str().unwrap(),
            "--cycle",
            "2026-Q3",
            "--output",
            "gs://quadrant-test/x",
        ],
        &[&body_line, "0123456789abcdef0123456789abcdef01234567"],
        1,
        scratch.path(),
    );
    assert!(stderr(&o).contains("gs://quadrant-test/x"), "{}", stderr(&o));
}

#[test]
fn credentials_in_uris_are_refused_and_never_shown() {
    let scratch = tempfile::tempdir().unwrap();
    for (flag, uri) in [
        ("--output", "s3://AKIAQUADRANT:UriSecretNeverPrint99@quadrant-test/x"),
        (
            "--accounts",
            "az://user:UriSecretNeverPrint99@quadrant-test/accounts.parquet",
        ),
    ] {
        let o = run_with(
            &[],
            &["run", "--cycle", "2026-Q3", flag, uri],
            &["UriSecretNeverPrint99"],
            2,
            scratch.path(),
        );
        assert!(
            stderr(&o).contains("credentials in a URI are not accepted"),
            "{}",
            stderr(&o)
        );
    }
}

#[test]
fn lineage_url_password_and_api_key_never_show() {
    let scratch = tempfile::tempdir().unwrap();
    let backend = echo_server("401 Unauthorized");
    let url = backend.replace("http://", "http://lineage:LineagePassNeverPrint77@");
    let out = scratch.path().join("out");
    let o = run_with(
        &[("OPENLINEAGE_API_KEY", "LineageApiKeyNeverPrint88")],
        &[
            "run",
            "--cycle",
            "2026-Q3",
            "--output",
            out.to_str().unwrap(),
            "--lineage-url",
            &url,
        ],
        &["LineagePassNeverPrint77", "LineageApiKeyNeverPrint88"],
        0,
        scratch.path(),
    );
    // The backend refused the events: a warning, never a failed run.
    assert!(
        stderr(&o).contains("could not send the OpenLineage event"),
        "{}",
        stderr(&o)
    );
}

/// Every `[storage]` option that carries a credential, or says where one is
/// kept, is refused by name (exit 2), in `validate --config-only` as in
/// `run`, and its value is never shown.
#[test]
fn credential_options_in_the_pipeline_file_are_refused_by_name() {
    let scratch = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("pipelines/default.toml")).unwrap();
    let value = "OptionSecretNeverPrint55";
    for key in [
        "aws_secret_access_key",
        "secret_access_key",
        "aws_access_key_id",
        "aws_session_token",
        "token",
        "aws_sse_customer_key_base64",
        "aws_web_identity_token_file",
        "azure_storage_account_key",
        "account_key",
        "access_key",
        "master_key",
        "azure_storage_sas_key",
        "sas_token",
        "azure_client_secret",
        "client_secret",
        "bearer_token",
        "azure_fabric_session_token",
        "google_service_account_key",
        "service_account_key",
        "google_application_credentials",
        "service_account",
    ] {
        let pipeline = scratch.path().join("p.toml");
        std::fs::write(
            &pipeline,
            format!("{text}\n[storage]\noptions = {{ {key} = \"{value}\" }}\n"),
        )
        .unwrap();
        for args in [
            vec!["validate", "--config-only", "--pipeline", pipeline.to_str().unwrap()],
            vec!["run", "--cycle", "2026-Q3", "--pipeline", pipeline.to_str().unwrap()],
        ] {
            let o = run(&args);
            expect_code(&o, 2);
            let err = stderr(&o);
            assert!(err.contains(&format!("[storage] option `{key}`")), "{key}: {err}");
            assert!(!err.contains(value) && !stdout(&o).contains(value), "{key}");
        }
    }
    // Options without secrets pass.
    let pipeline = scratch.path().join("ok.toml");
    std::fs::write(
        &pipeline,
        format!("{text}\n[storage]\nregion = \"eu-central-1\"\noptions = {{ virtual_hosted_style_request = \"false\", timeout = \"30s\" }}\n"),
    )
    .unwrap();
    expect_code(
        &run(&["validate", "--config-only", "--pipeline", pipeline.to_str().unwrap()]),
        0,
    );
}
