//! Lost answers: the store does what was asked, but the answer never comes
//! back (a timeout, a dropped connection). A loopback proxy in front of the
//! S3 test server passes the snapshot's put on, reads the server's answer,
//! and drops the connection instead of passing the answer back. The run
//! must find out what is stored rather than guess: the snapshot is
//! committed, and nothing it lists is deleted.

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

impl LosingProxy {
    fn start(upstream: SocketAddr, needle: &'static str, drops: usize) -> LosingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let dropped = Arc::new(AtomicUsize::new(0));
        let counter = dropped.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let counter = counter.clone();
                std::thread::spawn(move || {
                    let _ = serve(client, upstream, needle, drops, &counter);
                });
            }
        });
        LosingProxy { addr, dropped }
    }
}

fn serve(
    mut client: TcpStream,
    upstream: SocketAddr,
    needle: &str,
    drops: usize,
    dropped: &AtomicUsize,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let Some((lines, body)) = read_request(&mut reader)? else {
        return Ok(());
    };
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
    let is_target = lines[0].starts_with("PUT ") && lines[0].contains(needle);
    if is_target && dropped.fetch_add(1, Ordering::SeqCst) < drops {
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
        let proxy = LosingProxy::start(moto(), "part-0.parquet", 1);
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
