//! `testapp`: the tiny static program that Berth's test images carry.
//!
//! It is compiled by berth-testkit's build script with `rustc -C target-feature=+crt-static`,
//! uses only `std`, and so runs in an image that holds nothing but busybox. Subcommands:
//!
//! - `serve [PORT]`: an HTTP server (default port 8080), keeping a connection alive when
//!   the client asks `Connection: keep-alive`. `GET /` answers with the hostname and
//!   the request line; `GET /healthz` answers 200, or 500 once `GET /fail` (or `POST /fail`)
//!   was called or the file `/tmp/unhealthy` exists; `GET /recover` undoes `/fail`;
//!   `GET /upgrade` switches protocols (101, `Upgrade: echo`) and then echoes every byte,
//!   as a WebSocket upgrade would hand the connection over.
//! - `udp-echo PORT`: answers every UDP datagram on PORT with the same bytes.
//! - `hostname`: prints the hostname the kernel reports (UTS namespace check).
//! - `exit CODE`: exits with that status.
//! - `syscall NR [ARG...]`: makes raw system call NR with integer arguments and prints
//!   `ok` or `errno N` (seccomp checks).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.first().map(String::as_str) {
        Some("serve") => serve(args.get(1).map(String::as_str).unwrap_or("8080")),
        Some("udp-echo") => udp_echo(args.get(1).map(String::as_str).unwrap_or("9000")),
        Some("hostname") => {
            println!("{}", hostname());
            0
        }
        Some("exit") => args.get(1).and_then(|c| c.parse().ok()).unwrap_or(1),
        Some("syscall") => raw_syscall(&args[1..]),
        _ => {
            eprintln!(
                "usage: testapp serve [PORT] | udp-echo PORT | hostname | exit CODE | syscall NR [ARG...]"
            );
            2
        }
    };
    std::process::exit(code);
}

unsafe extern "C" {
    fn syscall(number: i64, ...) -> i64;
}

fn raw_syscall(args: &[String]) -> i32 {
    let numbers: Vec<i64> = args.iter().filter_map(|a| parse_int(a)).collect();
    if numbers.is_empty() || numbers.len() != args.len() || numbers.len() > 7 {
        eprintln!("testapp: syscall takes a number and up to six integer arguments");
        return 2;
    }
    let arg = |i: usize| numbers.get(i).copied().unwrap_or(0);
    // SAFETY: the caller picks a syscall whose arguments are plain integers.
    let rc = unsafe { syscall(arg(0), arg(1), arg(2), arg(3), arg(4), arg(5), arg(6)) };
    if rc < 0 {
        println!("errno {}", std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    } else {
        println!("ok");
    }
    0
}

/// A decimal or 0x-prefixed hexadecimal integer.
fn parse_int(text: &str) -> Option<i64> {
    match text.strip_prefix("0x") {
        Some(hex) => i64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string())
}

fn udp_echo(port: &str) -> i32 {
    let socket = match UdpSocket::bind(format!("0.0.0.0:{port}")) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("testapp: bind udp port {port}: {e}");
            return 1;
        }
    };
    let mut buffer = [0u8; 2048];
    while let Ok((length, peer)) = socket.recv_from(&mut buffer) {
        let _ = socket.send_to(&buffer[..length], peer);
    }
    1
}

fn serve(port: &str) -> i32 {
    let listener = match TcpListener::bind(format!("0.0.0.0:{port}")) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("testapp: cannot listen on port {port}: {e}");
            return 1;
        }
    };
    eprintln!("testapp: listening on port {port}");
    let failing = Arc::new(AtomicBool::new(false));
    for stream in listener.incoming().flatten() {
        let failing = Arc::clone(&failing);
        std::thread::spawn(move || {
            let _ = answer(stream, &failing);
        });
    }
    0
}

/// Answers the requests of one connection: one, then it closes (as its answer says),
/// unless the client asks `Connection: keep-alive` — so a client reading to the end of
/// the stream gets its answer whichever HTTP version it spoke.
fn answer(stream: TcpStream, failing: &AtomicBool) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut stream = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let mut keep_alive = false;
        let mut header = String::new();
        while reader.read_line(&mut header)? > 2 {
            let lower = header.to_ascii_lowercase();
            if let Some(value) = lower.strip_prefix("connection:") {
                keep_alive = value.trim() == "keep-alive";
            }
            header.clear();
        }
        let path = request_line.split_whitespace().nth(1).unwrap_or("/");
        if path == "/upgrade" {
            stream.write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
            )?;
            std::io::copy(&mut reader, &mut stream)?;
            return Ok(());
        }
        let (status, body) = respond(path, &request_line, failing);
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

/// The status and body for a request of `path`.
fn respond(path: &str, request_line: &str, failing: &AtomicBool) -> (&'static str, String) {
    match path {
        "/healthz" if failing.load(Ordering::SeqCst) || Path::new("/tmp/unhealthy").exists() => {
            ("500 Internal Server Error", "unhealthy\n".to_string())
        }
        "/healthz" => ("200 OK", "ok\n".to_string()),
        "/fail" => {
            failing.store(true, Ordering::SeqCst);
            ("200 OK", "health check will now fail\n".to_string())
        }
        "/recover" => {
            failing.store(false, Ordering::SeqCst);
            ("200 OK", "health check will now pass\n".to_string())
        }
        _ => (
            "200 OK",
            format!("hostname: {}\nrequest: {}\n", hostname(), request_line.trim_end()),
        ),
    }
}
