//! The container monitor: one small process per running container, the `berth` binary in
//! `monitor` mode (as containerd-shim or conmon are), started by the daemon. It creates and
//! starts the container through the runtime library (it is single-threaded when it does,
//! as the runtime requires), holds the container's stdout and stderr, writes them to the
//! json-file log, waits for the exit and records it. The daemon can die or restart
//! meanwhile: the container and its log carry on.
//!
//! Protocol with the daemon: one line on the monitor's stdout, `started <pid>` or
//! `error <message>`; at the end, `exit.json` in the container's directory.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// How a container's run ended, as the monitor records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExitRecord {
    /// Exit status as a shell sees it (128+N for signal N).
    pub code: i32,
    /// Whether the OOM killer struck.
    pub oom_killed: bool,
    /// When it ended, RFC 3339.
    pub finished_at: String,
}

/// File names in the container's directory.
pub(crate) const EXIT_FILE: &str = "exit.json";
pub(crate) const LOG_FILE: &str = "container-json.log";

/// Runs the monitor for container `id` whose bundle is `dir`; returns the process's exit
/// status.
pub fn run_monitor(runtime_root: &Path, dir: &Path, id: &str) -> i32 {
    // The daemon reads the status line from our stdout; keep it on a descriptor of its
    // own, close-on-exec so the container never sees it.
    let status = nix::fcntl::fcntl(1, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3)).map(|fd| {
        // SAFETY: a fresh descriptor from fcntl.
        std::fs::File::from(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
    });
    let Ok(mut status) = status else {
        return 1;
    };
    let started = start(runtime_root, dir, id);
    let (pid, runtime, pipes) = match started {
        Ok(started) => started,
        Err(error) => {
            let _ = writeln!(status, "error {}", error.replace('\n', " "));
            return 1;
        }
    };
    let _ = writeln!(status, "started {pid}");
    drop(status);
    // The container's record says how its log rotates (checked when it was created).
    let rotation = std::fs::read(dir.join("container.json"))
        .ok()
        .and_then(|data| serde_json::from_slice::<crate::model::Container>(&data).ok())
        .and_then(|c| crate::logs::Rotation::of(&c.request.host_config.log_config).ok())
        .flatten();
    let log = match crate::logs::LogWriter::open(&dir.join(LOG_FILE), rotation) {
        Ok(log) => std::sync::Arc::new(std::sync::Mutex::new(log)),
        Err(_) => return 1,
    };
    let readers: Vec<_> = pipes
        .into_iter()
        .map(|(stream, pipe)| {
            let log = log.clone();
            std::thread::spawn(move || copy_to_log(pipe, stream, &log))
        })
        .collect();
    for reader in readers {
        let _ = reader.join();
    }
    let code = runtime.wait(id).unwrap_or(255);
    let oom_killed = runtime.state(id).is_ok_and(|s| s.oom_killed);
    let record = ExitRecord {
        code,
        oom_killed,
        finished_at: berth_runtime::state::now_rfc3339(),
    };
    let partial = dir.join("exit.json.partial");
    let written = std::fs::write(&partial, serde_json::to_vec(&record).unwrap_or_default())
        .and_then(|()| std::fs::rename(&partial, dir.join(EXIT_FILE)));
    let _ = runtime.delete(id, true);
    if written.is_ok() { 0 } else { 1 }
}

type Pipes = Vec<(&'static str, OwnedFd)>;

/// Creates and starts the container with pipes for stdout and stderr as its stdio.
fn start(
    runtime_root: &Path,
    dir: &Path,
    id: &str,
) -> Result<(i32, berth_runtime::Runtime, Pipes), String> {
    let runtime = berth_runtime::Runtime::new(runtime_root).map_err(|e| e.to_string())?;
    let flags = nix::fcntl::OFlag::O_CLOEXEC;
    let (out_read, out_write) = nix::unistd::pipe2(flags).map_err(|e| e.to_string())?;
    let (err_read, err_write) = nix::unistd::pipe2(flags).map_err(|e| e.to_string())?;
    let null = std::fs::File::open("/dev/null").map_err(|e| e.to_string())?;
    // The container inherits descriptors 0, 1 and 2 from us.
    redirect(&null, 0)?;
    redirect(&out_write, 1)?;
    redirect(&err_write, 2)?;
    drop((out_write, err_write));
    let created = runtime.create(id, dir, &berth_runtime::CreateOptions::default());
    // From here on only the container holds the pipes' write ends.
    let devnull = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .map_err(|e| e.to_string())?;
    redirect(&devnull, 1)?;
    redirect(&devnull, 2)?;
    let pid = created.map_err(|e| e.to_string())?;
    if let Err(error) = runtime.start(id) {
        let _ = runtime.delete(id, true);
        return Err(error.to_string());
    }
    Ok((
        pid,
        runtime,
        vec![("stdout", out_read), ("stderr", err_read)],
    ))
}

fn redirect(from: &impl AsRawFd, to: i32) -> Result<(), String> {
    nix::unistd::dup2(from.as_raw_fd(), to)
        .map(|_| ())
        .map_err(|e| format!("redirect descriptor {to}: {e}"))
}

fn copy_to_log(pipe: OwnedFd, stream: &str, log: &std::sync::Mutex<crate::logs::LogWriter>) {
    let mut pipe = std::fs::File::from(pipe);
    let mut buffer = vec![0u8; 32 * 1024];
    while let Ok(n) = pipe.read(&mut buffer) {
        if n == 0 {
            break;
        }
        if let Ok(mut log) = log.lock() {
            let _ = log.append(stream, &buffer[..n]);
        }
    }
}
