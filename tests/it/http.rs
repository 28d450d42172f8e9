//! Loopback HTTP for tests: reading a request off a connection, and a proxy
//! in front of the S3 test server that answers the first attempts at each
//! request with `503 Service Unavailable` instead of passing them on, as a
//! throttled or briefly unavailable store does. A refused request never
//! reaches the server, so retrying it is always safe.

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
    mut client: TcpStream,
    upstream: SocketAddr,
    refusals: usize,
    seen: &Mutex<HashMap<String, usize>>,
    refused: &AtomicUsize,
    passed: &AtomicUsize,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let Some((lines, body)) = read_request(&mut reader)? else {
        return Ok(());
    };
    // The request line and any range identify a request and its retries.
    let mut key = lines[0].trim_end().to_string();
    let mut head = Vec::new();
    for line in &lines {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("range:") {
            key.push_str(line.trim_end());
        }
        if !lower.starts_with("connection:") {
            head.extend_from_slice(line.as_bytes());
        }
    }
    head.extend_from_slice(b"Connection: close\r\n\r\n");
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

/// One HTTP/1.1 request read off a connection: its head lines, each with its
/// line end (the blank line that ends the head left out), and its body,
/// read by `Content-Length`. `None` when the client closed the connection.
pub fn read_request(reader: &mut impl BufRead) -> std::io::Result<Option<(Vec<String>, Vec<u8>)>> {
    let mut head = Vec::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        if line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        assert!(
            !lower.starts_with("transfer-encoding:"),
            "bodies with a Content-Length only: {line}"
        );
        head.push(line);
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(Some((head, body)))
}

/// A request as a loopback server got it: head lines and body.
pub type Request = (Vec<String>, Vec<u8>);

/// A loopback HTTP server that answers every request with one status and a
/// body quoting whatever part of the request `quote` picks (as a store's or
/// an identity service's error may quote the token, signature or form it
/// was sent), and keeps every request it got.
pub struct Echo {
    pub url: String,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Echo {
    pub fn start(status: &'static str, quote: fn(&Request) -> String) -> Echo {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let sink = requests.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { continue };
                let sink = sink.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(client.try_clone().unwrap());
                    while let Ok(Some(request)) = read_request(&mut reader) {
                        let body = quote(&request);
                        sink.lock().unwrap().push(request);
                        let reply = format!(
                            "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if client.write_all(reply.as_bytes()).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Echo { url, requests }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// The values of a header (by its name in any case) over every request.
    pub fn header(&self, name: &str) -> Vec<String> {
        self.requests()
            .iter()
            .flat_map(|(head, _)| head.iter().filter_map(|line| header_value(line, name)))
            .collect()
    }
}

/// The value of `line` when it is the header `name`.
pub fn header_value(line: &str, name: &str) -> Option<String> {
    let (n, v) = line.split_once(':')?;
    n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
}
