//! Lost answers: the store does what was asked, but the answer never comes
//! back (a timeout, a dropped connection). A loopback proxy in front of the
//! S3 test server passes the snapshot's put on, reads the server's answer,
//! and drops the connection instead of passing the answer back. The run
//! must find out what is stored rather than guess: the snapshot is
//! committed, and nothing it lists is deleted. The same proxy also plays a
//! store that refuses every write, for readers without write access.

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::http::read_request;
use crate::target::Target;
use crate::*;

/// Passes every request on, one per connection; the first `drops` puts
/// whose path contains `needle` reach the server but get no answer.
struct LosingProxy {
    addr: SocketAddr,
    dropped: Arc<AtomicUsize>,
}

/// What the proxy does with a request.
#[derive(Clone, Copy)]
enum Mode {
    /// Lose the answer to the first `drops` puts whose path has `needle`.
    Lose { needle: &'static str, drops: usize },
    /// A store this client may only read: writes are refused with 403.
    ReadOnly,
}

impl LosingProxy {
    fn start(upstream: SocketAddr, mode: Mode) -> LosingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let dropped = Arc::new(AtomicUsize::new(0));
        let counter = dropped.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let counter = counter.clone();
                std::thread::spawn(move || {
                    let _ = serve(client, upstream, mode, &counter);
                });
            }
        });
        LosingProxy { addr, dropped }
    }
}

fn serve(mut client: TcpStream, upstream: SocketAddr, mode: Mode, dropped: &AtomicUsize) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let Some((lines, body)) = read_request(&mut reader)? else {
        return Ok(());
    };
    let writes = ["PUT ", "POST ", "DELETE "].iter().any(|m| lines[0].starts_with(m));
    if let (Mode::ReadOnly, true) = (mode, writes) {
        dropped.fetch_add(1, Ordering::SeqCst);
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
    if let Mode::Lose { needle, drops } = mode
        && lines[0].starts_with("PUT ")
        && lines[0].contains(needle)
        && dropped.fetch_add(1, Ordering::SeqCst) < drops
    {
        // The put happened; its answer is lost.
        return client.shutdown(std::net::Shutdown::Both);
    }
    client.write_all(&answer)
}

fn moto() -> SocketAddr {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("scripts/test sets AWS_ENDPOINT_URL for moto");
    endpoint.trim_start_matches("http://").parse().unwrap()
}

/// Regression: a lost answer to the commit's put was taken as a failure and
/// the run deleted the files of a snapshot that the store had committed.
#[test]
fn a_lost_answer_to_the_commit_is_resolved_by_reading_back() {
    for replace in [false, true] {
        let target = Target::s3();
        let out = target.uri();
        if replace {
            expect_code(&run(&["run", "--cycle", "2026-Q3", "--output", &out]), 0);
        }
        let proxy = LosingProxy::start(
            moto(),
            Mode::Lose {
                needle: "part-0.parquet",
                drops: 1,
            },
        );
        let mut args = vec!["run", "--cycle", "2026-Q3", "--output", &out, "--json"];
        if replace {
            args.push("--replace");
        }
        let o = quadrant()
            .args(&args)
            .env("AWS_ENDPOINT_URL", format!("http://{}", proxy.addr))
            .output()
            .unwrap();
        assert!(proxy.dropped.load(Ordering::SeqCst) >= 1, "the proxy dropped an answer");
        expect_code(&o, 0);
        let summary: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        let run_id = summary["run_id"].as_str().unwrap();
        let rows = target.glob_rows("2026-Q3").unwrap();
        assert_eq!(strings(&rows, "run_id")[0], run_id, "replace={replace}");
        assert_eq!(target.manifest("2026-Q3").unwrap()["run_id"], run_id);
        assert_eq!(target.partition_files("2026-Q3").len(), 1);
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
    let stderr_of_dead = dead.stderr.take().unwrap();
    for line in std::io::BufRead::lines(BufReader::new(stderr_of_dead)) {
        if line.unwrap().contains("paused at before-manifest") {
            break;
        }
    }
    dead.kill().unwrap();
    dead.wait().unwrap();
    let committed = strings(&target.glob_rows("2026-Q3").unwrap(), "run_id")[0].clone();
    let before = target.files();

    let proxy = LosingProxy::start(moto(), Mode::ReadOnly);
    let o = quadrant()
        .args(["cycles", "--output", &out, "--json"])
        .env("AWS_ENDPOINT_URL", format!("http://{}", proxy.addr))
        .output()
        .unwrap();
    expect_code(&o, 0);
    let listed: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(listed[0]["run_id"].as_str(), Some(committed.as_str()), "{}", stderr(&o));
    assert!(stderr(&o).contains("could not repair"), "{}", stderr(&o));
    assert!(
        proxy.dropped.load(Ordering::SeqCst) >= 1,
        "a write was tried and refused"
    );
    assert_eq!(target.files(), before, "nothing changed");
}
