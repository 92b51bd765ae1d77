//! Just enough HTTP/1.1 for the test programs: a threaded server that hands each request
//! to a function, and a one-shot client.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// One request as the handler sees it.
pub struct Request {
    /// The request line without its line ending, e.g. `GET / HTTP/1.1`.
    pub line: String,
    /// `GET`, `PUT`, `POST`…
    pub method: String,
    /// The path, query included.
    pub path: String,
    /// The body, as long as its `Content-Length` said.
    pub body: Vec<u8>,
}

/// A status line's text and a plain-text body.
pub type Response = (&'static str, String);

/// Serves `handler` on every address at `port` until the process ends; 1 when the port
/// cannot be had.
pub fn listen(port: &str, handler: impl Fn(&Request) -> Response + Send + Sync + 'static) -> i32 {
    let listener = match TcpListener::bind(format!("0.0.0.0:{port}")) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("testapp: cannot listen on port {port}: {e}");
            return 1;
        }
    };
    eprintln!("testapp: listening on port {port}");
    let handler = Arc::new(handler);
    for stream in listener.incoming().flatten() {
        let handler = Arc::clone(&handler);
        std::thread::spawn(move || {
            let _ = answer(stream, &*handler);
        });
    }
    0
}

/// Answers the requests of one connection: one, then it closes (as its answer says),
/// unless the client asks `Connection: keep-alive` — so a client reading to the end of
/// the stream gets its answer whichever HTTP version it spoke.
fn answer(stream: TcpStream, handler: &dyn Fn(&Request) -> Response) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut stream = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut keep_alive = false;
        let mut length = 0;
        let mut header = String::new();
        while reader.read_line(&mut header)? > 2 {
            let lower = header.to_ascii_lowercase();
            if let Some(value) = lower.strip_prefix("connection:") {
                keep_alive = value.trim() == "keep-alive";
            }
            if let Some(value) = lower.strip_prefix("content-length:") {
                length = value.trim().parse().unwrap_or(0);
            }
            header.clear();
        }
        let mut words = line.split_whitespace();
        let method = words.next().unwrap_or("GET").to_string();
        let path = words.next().unwrap_or("/").to_string();
        if path == "/upgrade" {
            stream.write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
            )?;
            std::io::copy(&mut reader, &mut stream)?;
            return Ok(());
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let line = line.trim_end().to_string();
        let (status, body) = handler(&Request { line, method, path, body });
        let connection = if keep_alive { "keep-alive" } else { "close" };
        // One write: in pieces, Nagle's algorithm would hold the rest of a kept-alive
        // answer until the client's delayed ACK.
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: {connection}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(response.as_bytes())?;
        if !keep_alive {
            return Ok(());
        }
    }
}

/// Sends one request to an `http://HOST[:PORT]/PATH` URL and returns the status code and
/// the body; the host is looked up with [`crate::dns::resolve`].
pub fn call(method: &str, url: &str) -> Result<(u16, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs"))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().map_err(|_| format!("{url}: bad port"))?),
        None => (authority, 80),
    };
    let address = crate::dns::resolve(host)?;
    let mut stream = TcpStream::connect_timeout(&(address, port).into(), Duration::from_secs(5))
        .map_err(|e| format!("connect to {host} ({address}) port {port}: {e}"))?;
    let path = if path.is_empty() { "/" } else { path };
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let mut response = String::new();
    stream
        .write_all(request.as_bytes())
        .and_then(|()| stream.read_to_string(&mut response))
        .map_err(|e| format!("{url}: {e}"))?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("{url}: not an HTTP answer"))?;
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    Ok((status, body.to_string()))
}
