//! The two halves of the Compose example: a key-value store keeping its values as files
//! (so a volume holds them across containers) and a web app counting its visits in it.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::http::{self, Request, Response};

unsafe extern "C" {
    fn signal(signum: i32, handler: extern "C" fn(i32)) -> usize;
    fn _exit(status: i32) -> !;
}

extern "C" fn exit_now(_signum: i32) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { _exit(0) }
}

/// Ends the process on SIGTERM, as a service should: as PID 1 of a container it would
/// otherwise ignore the signal, and every stop would wait out its grace period.
fn exit_on_sigterm() {
    const SIGTERM: i32 = 15;
    // SAFETY: the handler only calls _exit.
    unsafe { signal(SIGTERM, exit_now) };
}

/// `testapp kv PORT DIR`: the store.
pub fn serve_store(port: &str, dir: &Path) -> i32 {
    exit_on_sigterm();
    if let Err(e) = std::fs::create_dir_all(dir) {
        eprintln!("testapp: {}: {e}", dir.display());
        return 1;
    }
    let dir = dir.to_path_buf();
    // One writer at a time, so two increments never read the same count.
    let lock = Mutex::new(());
    http::listen(port, move |request| {
        let _held = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        store(&dir, request)
    })
}

fn store(dir: &Path, request: &Request) -> Response {
    if request.path == "/healthz" {
        return ("200 OK", "ok\n".to_string());
    }
    let (key, increment) = match request.path.strip_suffix("/incr") {
        Some(key) => (key, true),
        None => (request.path.as_str(), false),
    };
    let Some(file) = value_file(dir, key) else {
        return ("400 Bad Request", "keys are letters, digits, - and _\n".to_string());
    };
    let current = std::fs::read_to_string(&file).ok();
    let written = match (request.method.as_str(), increment) {
        ("GET", false) => {
            return match current {
                Some(value) => ("200 OK", value),
                None => ("404 Not Found", "no such key\n".to_string()),
            };
        }
        ("PUT", false) => String::from_utf8_lossy(&request.body).into_owned(),
        ("POST", true) => {
            let count: u64 = current.and_then(|c| c.trim().parse().ok()).unwrap_or(0);
            format!("{}\n", count + 1)
        }
        _ => return ("405 Method Not Allowed", "GET or PUT /KEY, POST /KEY/incr\n".to_string()),
    };
    match std::fs::write(&file, &written) {
        Ok(()) => ("200 OK", written),
        Err(e) => ("500 Internal Server Error", format!("{}: {e}\n", file.display())),
    }
}

fn value_file(dir: &Path, key: &str) -> Option<PathBuf> {
    let key = key.strip_prefix('/')?;
    let valid = !key.is_empty()
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    valid.then(|| dir.join(key))
}

/// `testapp web PORT`: the web app, counting visits in the store at `$STORE_URL`.
pub fn serve_counter(port: &str) -> i32 {
    exit_on_sigterm();
    let store = std::env::var("STORE_URL").unwrap_or_else(|_| "http://kv:6379".to_string());
    http::listen(port, move |request| match request.path.as_str() {
        "/healthz" => ("200 OK", "ok\n".to_string()),
        "/" => match http::call("POST", &format!("{store}/hits/incr")) {
            Ok((200, count)) => ("200 OK", format!("seen {} times\n", count.trim())),
            Ok((status, body)) => ("502 Bad Gateway", format!("store answered {status}: {body}")),
            Err(e) => ("502 Bad Gateway", format!("store unreachable: {e}\n")),
        },
        _ => ("404 Not Found", "GET / counts a visit\n".to_string()),
    })
}
