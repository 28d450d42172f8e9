//! A loopback HTTP proxy in front of the S3 test server that answers the
//! first attempts at each request with `503 Service Unavailable` instead of
//! passing them on, as a throttled or briefly unavailable store does. A
//! refused request never reaches the server, so retrying it is always safe.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub struct FlakyProxy {
    pub addr: SocketAddr,
    seen: Arc<Mutex<HashMap<String, usize>>>,
    refused: Arc<AtomicUsize>,
    passed: Arc<AtomicUsize>,
}

impl FlakyProxy {
    /// Refuses the first `refusals` attempts at each request (the same
    /// method, path and range), then passes it on.
    pub fn start(upstream: SocketAddr, refusals: usize) -> FlakyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(HashMap::new()));
        let refused = Arc::new(AtomicUsize::new(0));
        let passed = Arc::new(AtomicUsize::new(0));
        let (s, r, p) = (seen.clone(), refused.clone(), passed.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let (seen, refused, passed) = (s.clone(), r.clone(), p.clone());
                std::thread::spawn(move || {
                    let _ = serve(client, upstream, refusals, &seen, &refused, &passed);
                });
            }
        });
        FlakyProxy {
            addr,
            seen,
            refused,
            passed,
        }
    }

    /// Distinct requests seen.
    pub fn distinct(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }

    pub fn passed(&self) -> usize {
        self.passed.load(Ordering::SeqCst)
    }
}

/// One request per connection: refused, or passed on with
/// `Connection: close` and the server's whole answer copied back.
fn serve(
    client: TcpStream,
    upstream: SocketAddr,
    refusals: usize,
    seen: &Mutex<HashMap<String, usize>>,
    refused: &AtomicUsize,
    passed: &AtomicUsize,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = Vec::new();
    let mut key = String::new();
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            content_length = v.trim().parse().unwrap_or(0);
        }
        assert!(
            !lower.starts_with("transfer-encoding:"),
            "the proxy handles bodies with a Content-Length only: {line}"
        );
        if line == "\r\n" {
            head.extend_from_slice(b"Connection: close\r\n\r\n");
            break;
        }
        if key.is_empty() || lower.starts_with("range:") {
            key.push_str(line.trim_end());
        }
        if !lower.starts_with("connection:") {
            head.extend_from_slice(line.as_bytes());
        }
    }
    let mut body = vec![0; content_length];
    reader.read_exact(&mut body)?;
    let mut client = client;
    let attempt = {
        let mut seen = seen.lock().unwrap();
        let n = seen.entry(key).or_insert(0);
        *n += 1;
        *n
    };
    if attempt <= refusals {
        refused.fetch_add(1, Ordering::SeqCst);
        let reply = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        return client.write_all(reply.as_bytes());
    }
    let mut server = TcpStream::connect(upstream)?;
    server.write_all(&head)?;
    server.write_all(&body)?;
    let mut answer = Vec::new();
    server.read_to_end(&mut answer)?;
    passed.fetch_add(1, Ordering::SeqCst);
    client.write_all(&answer)
}
