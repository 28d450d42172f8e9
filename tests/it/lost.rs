//! Writes that succeed but answer an error: the store does what was asked,
//! then the answer is lost (a dropped connection) or is an error (`503`,
//! as S3's SlowDown and Azure's ServerBusy are sent after success), and
//! the client retries. A loopback proxy in front of the S3 (moto), GCS
//! (fake-gcs-server) or Azure (Azurite) test server passes each request on, reads the server's answer,
//! and then, for the writes it picks, drops the connection or answers 503
//! instead. Every command must find out what is stored rather than guess:
//! its own object means done, and nothing it committed is deleted. The same
//! proxy also plays a store that refuses every write, for readers without
//! write access.

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::http::read_request;
use crate::target::Target;
use crate::*;

/// What the client gets in place of the server's answer to a write that the
/// server performed.
#[derive(Clone, Copy, Debug)]
enum After {
    /// The connection drops: the answer is lost.
    Drop,
    /// `503 Service Unavailable`: an error after success.
    Unavailable,
}

/// Which writes (PUT, POST, DELETE) the proxy fails after the server did them.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// The first `count` writes whose request line has `needle`.
    Fail {
        needle: &'static str,
        count: usize,
        after: After,
    },
    /// `percent` of all writes, picked by a fixed sequence (the same for the
    /// same run), alternating lost answers and 503s.
    Rate { percent: usize },
    /// Writes whose request line has `needle` are refused with 403 and
    /// never reach the server (`""`: a store this client may only read).
    Refuse { needle: &'static str },
}

/// A loopback proxy in front of a test store; `failed` holds the request
/// lines of the writes it failed or refused.
struct Proxy {
    addr: SocketAddr,
    failed: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    fn start(upstream: SocketAddr, mode: Mode) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let failed = Arc::new(Mutex::new(Vec::new()));
        let writes = Arc::new(AtomicUsize::new(0));
        let (f, w) = (failed.clone(), writes.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let (failed, writes) = (f.clone(), w.clone());
                std::thread::spawn(move || {
                    let _ = serve(client, upstream, mode, &failed, &writes);
                });
            }
        });
        Proxy { addr, failed }
    }

    fn failed(&self) -> Vec<String> {
        self.failed.lock().unwrap().clone()
    }

    /// The environment that sends a store's requests through the proxy.
    fn env(&self, store: Store) -> (&'static str, String) {
        match store {
            Store::S3 => ("AWS_ENDPOINT_URL", format!("http://{}", self.addr)),
            Store::Gcs => ("GOOGLE_BASE_URL", format!("http://{}", self.addr)),
            Store::Azure => ("AZURITE_BLOB_STORAGE_URL", format!("http://{}", self.addr)),
        }
    }
}

/// Picks the writes a mode fails; `Some` says how.
fn pick(mode: Mode, request_line: &str, writes: &AtomicUsize, failed: &Mutex<Vec<String>>) -> Option<After> {
    let after = match mode {
        Mode::Fail { needle, count, after } => {
            let hits = failed.lock().unwrap().len();
            // S3 sends `=` in a key as `%3D`; GCS escapes `/`, `-`, `_` too.
            let line = quadrant::redact::percent_decode(request_line);
            (line.contains(needle) && hits < count).then_some(after)
        }
        Mode::Rate { percent } => {
            let n = writes.fetch_add(1, Ordering::SeqCst);
            // 37 is prime to 100: every hundred writes fail `percent` times.
            ((n * 37 + 11) % 100 < percent).then(|| {
                if failed.lock().unwrap().len().is_multiple_of(2) {
                    After::Unavailable
                } else {
                    After::Drop
                }
            })
        }
        Mode::Refuse { .. } => None,
    }?;
    failed.lock().unwrap().push(request_line.trim_end().to_string());
    Some(after)
}

fn serve(
    mut client: TcpStream,
    upstream: SocketAddr,
    mode: Mode,
    failed: &Mutex<Vec<String>>,
    writes: &AtomicUsize,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let Some((lines, body)) = read_request(&mut reader)? else {
        return Ok(());
    };
    let write = ["PUT ", "POST ", "DELETE "].iter().any(|m| lines[0].starts_with(m));
    if let (Mode::Refuse { needle }, true) = (mode, write)
        && quadrant::redact::percent_decode(&lines[0]).contains(needle)
    {
        failed.lock().unwrap().push(lines[0].trim_end().to_string());
        let body = "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>read only</Message></Error>";
        let reply = format!(
            "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        return client.write_all(reply.as_bytes());
    }
    let mut head = Vec::new();
    for line in &lines {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            head.extend_from_slice(line.as_bytes());
        }
    }
    head.extend_from_slice(b"Connection: close\r\n\r\n");
    let mut server = TcpStream::connect(upstream)?;
    server.write_all(&head)?;
    server.write_all(&body)?;
    let mut answer = Vec::new();
    server.read_to_end(&mut answer)?;
    // The server has acted; now the answer.
    match write.then(|| pick(mode, &lines[0], writes, failed)).flatten() {
        None => client.write_all(&answer),
        Some(After::Drop) => client.shutdown(std::net::Shutdown::Both),
        Some(After::Unavailable) => {
            let body = "<?xml version=\"1.0\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
            let reply = format!(
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            client.write_all(reply.as_bytes())
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Store {
    S3,
    Gcs,
    Azure,
}

impl Store {
    fn target(self) -> Target {
        match self {
            Store::S3 => Target::s3(),
            Store::Gcs => Target::gcs(),
            Store::Azure => Target::azure(),
        }
    }

    /// The test server itself.
    fn upstream(self) -> SocketAddr {
        let var = match self {
            Store::S3 => "AWS_ENDPOINT_URL",
            Store::Gcs => "QUADRANT_TEST_GCS_URL",
            Store::Azure => "AZURITE_BLOB_STORAGE_URL",
        };
        let url = std::env::var(var).unwrap_or_else(|_| panic!("scripts/test sets {var}"));
        url.trim_start_matches("http://").trim_end_matches('/').parse().unwrap()
    }
}

/// The output formats, with the pipeline that writes each.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Format {
    Parquet,
    Delta,
}

/// Dirty inputs (three accounts with a negative ARR, dropped to
/// `rejects/`) and the pipeline for a format.
fn book_inputs(dir: &std::path::Path, format: Format) -> (String, String) {
    let (pipeline, accounts) = crate::commit::dirty_inputs(dir, &["A0000001", "A0000002", "A0000003"]);
    let pipeline = match format {
        Format::Parquet => pipeline,
        Format::Delta => crate::delta::delta_pipeline(dir, std::path::Path::new(&pipeline)),
    };
    (pipeline, accounts)
}

/// What a data engineer's orchestrator does: a backfill of two quarters, a
/// replace of the last, and the comparison of the two.
const BOOK: [&[&str]; 3] = [
    &["run", "--cycles", "2026-Q2..2026-Q3"],
    &["run", "--cycle", "2026-Q3", "--replace"],
    &["compare", "--from", "2026-Q2", "--to", "2026-Q3"],
];

/// Runs one command of the book against `target`, with `env` set.
fn book_command(
    target: &Target,
    (pipeline, accounts): &(String, String),
    args: &[&str],
    env: Option<(&str, String)>,
) -> std::process::Output {
    let out = target.uri();
    let mut cmd = quadrant();
    cmd.args(args)
        .args(["--pipeline", pipeline, "--accounts", accounts, "--output", &out]);
    if let Some((k, v)) = env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// Every table a reader sees under the root, by name, with the run ids
/// (which differ from run to run) left out and rows in a fixed order:
/// globs of the Parquet files for Parquet output, the `deltalake` package's
/// rows for Delta output. For Delta, also checks that every file any
/// version of any table names is there.
fn tables(target: &Target, format: Format) -> std::collections::BTreeMap<String, DataFrame> {
    let files = target.files();
    let mut out = std::collections::BTreeMap::new();
    let without_run_ids = |frame: DataFrame| {
        let keep: Vec<String> = frame
            .get_column_names()
            .iter()
            .filter(|c| !c.ends_with("run_id"))
            .map(|c| c.to_string())
            .collect();
        let frame = frame.select(keep.iter().map(|c| c.as_str())).unwrap();
        let by: Vec<String> = frame.get_column_names().iter().map(|c| c.to_string()).collect();
        frame.sort(by, SortMultipleOptions::default()).unwrap()
    };
    match format {
        Format::Parquet => {
            for f in files
                .iter()
                .filter(|f| f.ends_with(".parquet") && !f.starts_with("_quadrant/"))
            {
                out.insert(f.clone(), without_run_ids(target.read_parquet(f)));
            }
        }
        Format::Delta => {
            let logs: std::collections::BTreeSet<String> = files
                .iter()
                .filter_map(|f| f.split_once("/_delta_log/").map(|(table, _)| table.to_string()))
                .collect();
            for table in logs {
                for log in files
                    .iter()
                    .filter(|f| f.starts_with(&format!("{table}/_delta_log/")) && f.ends_with(".json"))
                {
                    let text = String::from_utf8(target.read(log).unwrap()).unwrap();
                    for line in text.lines() {
                        let action: serde_json::Value = serde_json::from_str(line).unwrap();
                        if let Some(path) = action["add"]["path"].as_str() {
                            let file = format!("{table}/{}", path.replace("%3D", "="));
                            assert!(
                                files.contains(&file),
                                "{}: {log} names {file}, which is missing",
                                target.name()
                            );
                        }
                    }
                }
                let dump = tempfile::NamedTempFile::new().unwrap();
                let o = std::process::Command::new("python3")
                    .arg(root().join("tests/delta/reader.py"))
                    .arg(format!("{}/{table}", target.uri()))
                    .arg("--dump")
                    .arg(dump.path())
                    .output()
                    .expect("python3 runs; scripts/test installs deltalake");
                assert!(o.status.success(), "{} {table}: {}", target.name(), stderr(&o));
                out.insert(table, without_run_ids(read_parquet(dump.path())));
            }
        }
    }
    out
}

/// The tables of the book run on the local disk, without a proxy.
fn reference(format: Format, inputs: &(String, String)) -> std::collections::BTreeMap<String, DataFrame> {
    let local = Target::local();
    for args in BOOK {
        expect_code(&book_command(&local, inputs, args, None), 0);
    }
    tables(&local, format)
}

#[track_caller]
fn assert_same_tables(
    seen: &std::collections::BTreeMap<String, DataFrame>,
    want: &std::collections::BTreeMap<String, DataFrame>,
    what: &str,
) {
    assert_eq!(
        seen.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{what}: the same tables"
    );
    for (name, frame) in want {
        assert!(
            seen[name].equals_missing(frame),
            "{what}: {name} differs\n--- seen\n{}\n--- on the local disk\n{frame}",
            seen[name]
        );
    }
}

/// Each conditional write a format makes, by a part of its path: every
/// write of it in a command is where the proxy fails the first two.
fn conditional_writes(format: Format) -> &'static [&'static str] {
    match format {
        // The lock (taken and released), the data file (the commit point:
        // create-only, and for a replace an overwrite of the version read),
        // the staged rejects (create-only, under the run's id).
        Format::Parquet => &["_quadrant/locks/", "/part-0.parquet", "_quadrant/staging/"],
        // The lock, the Delta commit of segments (its creation, appends and
        // the replace), the data file, the rejects table (file and commit),
        // compare's tables (files and commits).
        Format::Delta => &[
            "_quadrant/locks/",
            "segments/_delta_log/0",
            "segments/cycle=",
            "rejects/accounts/",
            "compare/",
        ],
    }
}

/// Every conditional write, answered with a lost answer and with a 503
/// after the store performed it: the book exits 0 at each step, says it
/// read back what the store holds, and readers see exactly the tables the
/// book commits on the local disk.
fn each_conditional_write_is_settled_by_reading_back(store: Store, format: Format) {
    let dir = tempfile::tempdir().unwrap();
    let inputs = book_inputs(dir.path(), format);
    let want = reference(format, &inputs);
    for needle in conditional_writes(format) {
        for after in [After::Unavailable, After::Drop] {
            let target = store.target();
            let what = format!("{store:?} {format:?}: {after:?} after `{needle}`");
            let mut failed = Vec::new();
            let mut read_back = false;
            for args in BOOK {
                let proxy = Proxy::start(
                    store.upstream(),
                    Mode::Fail {
                        needle,
                        count: 2,
                        after,
                    },
                );
                let o = book_command(&target, &inputs, args, Some(proxy.env(store)));
                expect_code(&o, 0);
                read_back |= stderr(&o).contains("holds exactly what this run wrote");
                failed.extend(proxy.failed());
            }
            assert!(!failed.is_empty(), "{what}: the proxy failed a write");
            assert!(
                read_back,
                "{what}: a command read back what the store holds ({failed:?})"
            );
            assert_same_tables(&tables(&target, format), &want, &what);
        }
    }
}

#[test]
fn each_conditional_write_answered_with_an_error_after_success_on_s3_parquet() {
    each_conditional_write_is_settled_by_reading_back(Store::S3, Format::Parquet);
}

#[test]
fn each_conditional_write_answered_with_an_error_after_success_on_s3_delta() {
    each_conditional_write_is_settled_by_reading_back(Store::S3, Format::Delta);
}

#[test]
fn each_conditional_write_answered_with_an_error_after_success_on_gcs_parquet() {
    each_conditional_write_is_settled_by_reading_back(Store::Gcs, Format::Parquet);
}

#[test]
fn each_conditional_write_answered_with_an_error_after_success_on_gcs_delta() {
    each_conditional_write_is_settled_by_reading_back(Store::Gcs, Format::Delta);
}

#[test]
fn each_conditional_write_answered_with_an_error_after_success_on_azure_parquet() {
    each_conditional_write_is_settled_by_reading_back(Store::Azure, Format::Parquet);
}

#[test]
fn each_conditional_write_answered_with_an_error_after_success_on_azure_delta() {
    each_conditional_write_is_settled_by_reading_back(Store::Azure, Format::Delta);
}

/// 30% of all writes answered by a lost answer or a 503 after the store
/// performed them: on S3, GCS and Azure, in both formats, every command of the
/// book exits 0 and readers see exactly what the local disk holds.
#[test]
fn thirty_percent_of_writes_answered_with_an_error_after_success() {
    for format in [Format::Parquet, Format::Delta] {
        let dir = tempfile::tempdir().unwrap();
        let inputs = book_inputs(dir.path(), format);
        let want = reference(format, &inputs);
        for store in [Store::S3, Store::Gcs, Store::Azure] {
            let target = store.target();
            let mut failed = 0;
            for args in BOOK {
                let proxy = Proxy::start(store.upstream(), Mode::Rate { percent: 30 });
                let o = book_command(&target, &inputs, args, Some(proxy.env(store)));
                expect_code(&o, 0);
                failed += proxy.failed().len();
            }
            assert!(failed >= 5, "{store:?} {format:?}: the proxy failed {failed} writes");
            assert_same_tables(&tables(&target, format), &want, &format!("{store:?} {format:?} at 30%"));
        }
    }
}

/// A reader that may not write (a BI service account) still lists what is
/// committed, read from the data files, when a dead run left a cycle to
/// repair; the repair waits for someone who may write.
#[test]
fn a_reader_without_write_access_reads_what_is_committed() {
    let target = Target::s3();
    let out = target.uri();
    let mut dead = quadrant()
        .args(["run", "--cycle", "2026-Q3", "--output", &out])
        .env("QUADRANT_PAUSE_AT", "before-manifest")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    crate::commit::wait_for_pause(&mut dead, "before-manifest");
    dead.kill().unwrap();
    dead.wait().unwrap();
    let committed = strings(&target.glob_rows("2026-Q3").unwrap(), "run_id")[0].clone();
    let before = target.files();

    let proxy = Proxy::start(Store::S3.upstream(), Mode::Refuse { needle: "" });
    let o = quadrant()
        .args(["cycles", "--output", &out, "--json"])
        .env("AWS_ENDPOINT_URL", format!("http://{}", proxy.addr))
        .output()
        .unwrap();
    expect_code(&o, 0);
    let listed: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(listed[0]["run_id"].as_str(), Some(committed.as_str()), "{}", stderr(&o));
    assert!(stderr(&o).contains("could not repair"), "{}", stderr(&o));
    assert!(!proxy.failed().is_empty(), "a write was tried and refused");
    assert_eq!(target.files(), before, "nothing changed");
}

/// A backfill commits a cycle only after the one before it is committed
/// (the commit of one cycle runs while the next is evaluated): when the
/// store refuses the commit of a middle cycle, the backfill stops there, the
/// cycle before it stays committed, and nothing of the cycle after it is
/// written.
#[test]
fn a_backfill_stops_at_a_refused_commit_and_writes_nothing_after_it() {
    let target = Target::s3();
    let out = target.uri();
    let proxy = Proxy::start(
        Store::S3.upstream(),
        Mode::Refuse {
            needle: "cycle=2026-Q2/",
        },
    );
    let o = quadrant()
        .args(["run", "--cycles", "2026-Q1..2026-Q3", "--output", &out, "--json"])
        .env("AWS_ENDPOINT_URL", format!("http://{}", proxy.addr))
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0), "{}", stderr(&o));
    let summary: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(cycles_of(&summary["runs"]), ["2026-Q1"], "{}", stderr(&o));
    assert_eq!(summary["stopped_at"]["cycle"], "2026-Q2");
    assert!(!proxy.failed().is_empty(), "a write was refused");
    assert!(target.glob_rows("2026-Q1").is_some());
    let after: Vec<String> = target.files().into_iter().filter(|f| f.contains("2026-Q3")).collect();
    assert!(after.is_empty(), "written for 2026-Q3: {after:?}");
    let o = quadrant()
        .args(["cycles", "--output", &out, "--json"])
        .output()
        .unwrap();
    expect_code(&o, 0);
    let listed: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(cycles_of(&listed), ["2026-Q1"]);
}
