//! The container monitor: one small process per running container, the `berth` binary in
//! `monitor` mode (as containerd-shim or conmon are), started by the daemon. It creates and
//! starts the container through the runtime library (it is single-threaded when it does,
//! as the runtime requires), holds the container's stdout and stderr, writes them to the
//! json-file log, waits for the exit and records it. The daemon can die or restart
//! meanwhile: the container and its log carry on.
//!
//! A container with `-t` gets a terminal (its master comes over a console socket, runc's
//! protocol); with `-i` its stdin stays open for attached clients.
//!
//! Protocol with the daemon: one line on the monitor's stdout, `started <pid>` or
//! `error <message>`; sockets in the container's directory for attached input
//! (`attach.sock`) and terminal resizes (`control.sock`, lines `resize ROWS COLUMNS`);
//! at the end, `exit.json` there.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

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
/// The monitor's sockets there: raw input for the container's stdin, and control lines
/// (`resize ROWS COLUMNS`) for its terminal.
pub(crate) const STDIN_SOCKET: &str = "attach.sock";
pub(crate) const CONTROL_SOCKET: &str = "control.sock";
const CONSOLE_SOCKET: &str = "console.sock";

/// A path of `dir` short enough for a unix socket's address, whatever `dir`'s length:
/// through the process's descriptor of it.
pub(crate) fn socket_path(dir: &OwnedFd, name: &str) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}/{name}", dir.as_raw_fd()))
}

/// Opens `dir` for [`socket_path`].
pub(crate) fn open_dir(dir: &Path) -> std::io::Result<OwnedFd> {
    use nix::fcntl::OFlag;
    let fd = nix::fcntl::open(
        dir,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    // SAFETY: a fresh descriptor from open.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// What the container's record asks of its stdio.
#[derive(Default)]
struct Stdio {
    tty: bool,
    open_stdin: bool,
    stdin_once: bool,
    rotation: Option<crate::logs::Rotation>,
}

impl Stdio {
    fn of(dir: &Path) -> Self {
        let record = std::fs::read(dir.join("container.json"))
            .ok()
            .and_then(|data| serde_json::from_slice::<crate::model::Container>(&data).ok());
        let Some(container) = record else {
            return Self::default();
        };
        let request = &container.request;
        Self {
            tty: request.tty,
            open_stdin: request.open_stdin,
            stdin_once: request.stdin_once,
            // Checked when the container was created.
            rotation: crate::logs::Rotation::of(&request.host_config.log_config)
                .ok()
                .flatten(),
        }
    }
}

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
    let stdio = Stdio::of(dir);
    let started = open_dir(dir)
        .map_err(|e| format!("open {}: {e}", dir.display()))
        .and_then(|dir_fd| {
            let mut started = start(runtime_root, dir, &dir_fd, id, &stdio)?;
            serve(&dir_fd, &mut started, &stdio)?;
            Ok(started)
        });
    let started = match started {
        Ok(started) => started,
        Err(error) => {
            let _ = writeln!(status, "error {}", error.replace('\n', " "));
            return 1;
        }
    };
    let _ = writeln!(status, "started {}", started.pid);
    drop(status);
    let log = match crate::logs::LogWriter::open(&dir.join(LOG_FILE), stdio.rotation) {
        Ok(log) => std::sync::Arc::new(std::sync::Mutex::new(log)),
        Err(_) => return 1,
    };
    let readers: Vec<_> = started
        .output
        .into_iter()
        .map(|(stream, pipe)| {
            let log = log.clone();
            std::thread::spawn(move || copy_to_log(pipe, stream, &log))
        })
        .collect();
    for reader in readers {
        let _ = reader.join();
    }
    let runtime = started.runtime;
    let code = runtime.wait(id).unwrap_or(255);
    let oom_killed = runtime.state(id).is_ok_and(|s| s.oom_killed);
    let record = ExitRecord {
        code,
        oom_killed,
        finished_at: berth_runtime::state::now_rfc3339(),
    };
    for socket in [STDIN_SOCKET, CONTROL_SOCKET] {
        let _ = std::fs::remove_file(dir.join(socket));
    }
    let partial = dir.join("exit.json.partial");
    let written = std::fs::write(&partial, serde_json::to_vec(&record).unwrap_or_default())
        .and_then(|()| std::fs::rename(&partial, dir.join(EXIT_FILE)));
    let _ = runtime.delete(id, true);
    if written.is_ok() { 0 } else { 1 }
}

/// A started container's ends of its stdio.
struct Started {
    pid: i32,
    runtime: berth_runtime::Runtime,
    /// Its stdout and stderr pipes, or its terminal as stdout.
    output: Vec<(&'static str, OwnedFd)>,
    /// Where its input goes: the write end of its stdin pipe, or its terminal.
    input: Option<OwnedFd>,
    /// Its terminal, for resizing.
    terminal: Option<OwnedFd>,
}

/// Creates and starts the container, its stdio pipes or a terminal.
fn start(
    runtime_root: &Path,
    dir: &Path,
    dir_fd: &OwnedFd,
    id: &str,
    stdio: &Stdio,
) -> Result<Started, String> {
    let runtime = berth_runtime::Runtime::new(runtime_root).map_err(|e| e.to_string())?;
    let text = |e: &dyn std::fmt::Display| e.to_string();
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| text(&e))?;
    if stdio.tty {
        // init makes the terminal its stdio; ours must not reach the container.
        for target in 0..3 {
            redirect(&null, target)?;
        }
        let console = socket_path(dir_fd, CONSOLE_SOCKET);
        let _ = std::fs::remove_file(&console);
        let listener = UnixListener::bind(&console).map_err(|e| text(&e))?;
        let options = berth_runtime::CreateOptions {
            console_socket: Some(console.clone()),
            ..Default::default()
        };
        let created = runtime.create(id, dir, &options);
        let _ = std::fs::remove_file(&console);
        let pid = created.map_err(|e| text(&e))?;
        let terminal = listener
            .accept()
            .map_err(|e| text(&e))
            .and_then(|(connection, _)| {
                berth_runtime::receive_terminal(&OwnedFd::from(connection)).map_err(|e| text(&e))
            });
        let terminal =
            match terminal.and_then(|t| runtime.start(id).map(|()| t).map_err(|e| text(&e))) {
                Ok(terminal) => terminal,
                Err(error) => {
                    let _ = runtime.delete(id, true);
                    return Err(error);
                }
            };
        let output = terminal.try_clone().map_err(|e| text(&e))?;
        let input = match stdio.open_stdin {
            true => Some(terminal.try_clone().map_err(|e| text(&e))?),
            false => None,
        };
        return Ok(Started {
            pid,
            runtime,
            output: vec![("stdout", output)],
            input,
            terminal: Some(terminal),
        });
    }
    let flags = nix::fcntl::OFlag::O_CLOEXEC;
    let (out_read, out_write) = nix::unistd::pipe2(flags).map_err(|e| text(&e))?;
    let (err_read, err_write) = nix::unistd::pipe2(flags).map_err(|e| text(&e))?;
    let mut input = None;
    // The container inherits descriptors 0, 1 and 2 from us.
    if stdio.open_stdin {
        let (in_read, in_write) = nix::unistd::pipe2(flags).map_err(|e| text(&e))?;
        redirect(&in_read, 0)?;
        input = Some(in_write);
    } else {
        redirect(&null, 0)?;
    }
    redirect(&out_write, 1)?;
    redirect(&err_write, 2)?;
    drop((out_write, err_write));
    let created = runtime.create(id, dir, &berth_runtime::CreateOptions::default());
    // From here on only the container holds the pipes' other ends.
    for target in 0..3 {
        redirect(&null, target)?;
    }
    let pid = created.map_err(|e| text(&e))?;
    if let Err(error) = runtime.start(id) {
        let _ = runtime.delete(id, true);
        return Err(error.to_string());
    }
    Ok(Started {
        pid,
        runtime,
        output: vec![("stdout", out_read), ("stderr", err_read)],
        input,
        terminal: None,
    })
}

/// Listens for the daemon's attached input and terminal resizes, on sockets bound before
/// the start is announced, so the daemon can connect as soon as it hears of it.
fn serve(dir_fd: &OwnedFd, started: &mut Started, stdio: &Stdio) -> Result<(), String> {
    let bind = |name: &str| {
        let path = socket_path(dir_fd, name);
        let _ = std::fs::remove_file(&path);
        UnixListener::bind(&path).map_err(|e| format!("listen on {name}: {e}"))
    };
    // The input's only holder from here on: with `StdinOnce`, dropping it is what closes
    // the container's stdin.
    if let Some(input) = started.input.take() {
        let listener = bind(STDIN_SOCKET)?;
        let once = stdio.stdin_once;
        std::thread::spawn(move || {
            let mut input = std::fs::File::from(input);
            for connection in listener.incoming().map_while(Result::ok) {
                let _ = std::io::copy(&mut { connection }, &mut input);
                if once {
                    // Dropping our end closes the container's stdin: it reads EOF.
                    return;
                }
            }
        });
    }
    if let Some(terminal) = &started.terminal {
        let listener = bind(CONTROL_SOCKET)?;
        let terminal = terminal.try_clone().map_err(|e| e.to_string())?;
        std::thread::spawn(move || {
            for connection in listener.incoming().map_while(Result::ok) {
                for line in std::io::BufRead::lines(std::io::BufReader::new(connection))
                    .map_while(Result::ok)
                {
                    if let Some((rows, columns)) = parse_resize(&line) {
                        berth_runtime::set_terminal_size(&terminal, rows, columns);
                    }
                }
            }
        });
    }
    Ok(())
}

/// `resize ROWS COLUMNS`.
fn parse_resize(line: &str) -> Option<(u16, u16)> {
    let mut words = line.split_whitespace();
    if words.next()? != "resize" {
        return None;
    }
    Some((words.next()?.parse().ok()?, words.next()?.parse().ok()?))
}

fn redirect(from: &impl AsRawFd, to: i32) -> Result<(), String> {
    nix::unistd::dup2(from.as_raw_fd(), to)
        .map(|_| ())
        .map_err(|e| format!("redirect descriptor {to}: {e}"))
}

fn copy_to_log(pipe: OwnedFd, stream: &str, log: &std::sync::Mutex<crate::logs::LogWriter>) {
    let mut pipe = std::fs::File::from(pipe);
    let mut buffer = vec![0u8; 32 * 1024];
    // A terminal's master reads EIO once the container's side has closed: an end too.
    while let Ok(n) = pipe.read(&mut buffer) {
        if n == 0 {
            break;
        }
        if let Ok(mut log) = log.lock() {
            let _ = log.append(stream, &buffer[..n]);
        }
    }
}
