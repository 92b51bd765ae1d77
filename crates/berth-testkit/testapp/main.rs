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
//! - `kv [PORT] [DIR]`: a key-value store over HTTP (default port 6379, values kept as
//!   files in DIR, default `/data`): `GET /KEY`, `PUT /KEY` with the value as body,
//!   `POST /KEY/incr` adds one and answers the new count; `GET /healthz` answers 200.
//! - `web [PORT]`: a web app (default port 8080) counting its visits in the `kv` store at
//!   `$STORE_URL` (default `http://kv:6379`, found through /etc/hosts or the DNS server of
//!   /etc/resolv.conf): `GET /` answers `seen N times`; `GET /healthz` answers 200.
//!   Both end on SIGTERM (the other modes ignore it, as PID 1 does by default).
//! - `udp-echo PORT`: answers every UDP datagram on PORT with the same bytes.
//! - `hostname`: prints the hostname the kernel reports (UTS namespace check).
//! - `exit CODE`: exits with that status.
//! - `syscall NR [ARG...]`: makes raw system call NR with integer arguments and prints
//!   `ok` or `errno N` (seccomp checks).

mod dns;
mod http;
mod kv;

use std::net::UdpSocket;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.first().map(String::as_str) {
        Some("serve") => serve(args.get(1).map(String::as_str).unwrap_or("8080")),
        Some("kv") => kv::serve_store(
            args.get(1).map(String::as_str).unwrap_or("6379"),
            Path::new(args.get(2).map(String::as_str).unwrap_or("/data")),
        ),
        Some("web") => kv::serve_counter(args.get(1).map(String::as_str).unwrap_or("8080")),
        Some("udp-echo") => udp_echo(args.get(1).map(String::as_str).unwrap_or("9000")),
        Some("hostname") => {
            println!("{}", hostname());
            0
        }
        Some("exit") => args.get(1).and_then(|c| c.parse().ok()).unwrap_or(1),
        Some("syscall") => raw_syscall(&args[1..]),
        _ => {
            eprintln!(
                "usage: testapp serve [PORT] | kv [PORT] [DIR] | web [PORT] | udp-echo PORT | hostname | exit CODE | syscall NR [ARG...]"
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
    let failing = Arc::new(AtomicBool::new(false));
    http::listen(port, move |request| {
        respond(&request.path, &request.line, &failing)
    })
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
