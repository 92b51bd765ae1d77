//! Test support shared by every Berth test: OCI images built at test time with no network
//! (from Debian's busybox-static and the workspace's static `testapp`), runtime bundles made
//! from them, and guards that remove what a test made even when it fails.
//!
//! A dev-dependency only: no production crate may depend on it. It depends on nothing of ours.

pub mod bundle;
mod error;
pub mod etcd;
pub mod guard;
pub mod images;
pub mod layer;
pub mod layout;
pub mod registry;

pub use error::Error;

/// Result type of the test kit.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Path of the static `testapp` executable built by this crate's build script: an HTTP echo
/// server that reports its hostname and can be told to fail its health check.
pub fn testapp_path() -> &'static std::path::Path {
    std::path::Path::new(env!("BERTH_TESTAPP"))
}

/// The lines a child process writes, as they come: a thread reads `output` and sends each
/// line, so a test can wait for one with a timeout instead of blocking on the pipe.
pub fn lines_of(output: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (sender, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(output)
            .lines()
            .map_while(Result::ok)
        {
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    lines
}
