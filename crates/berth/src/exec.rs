//! `berth exec`: a process in a running container through the daemon's exec endpoints,
//! as `docker exec` runs one — created, started on a hijacked connection that carries
//! its output (multiplexed, or raw on a TTY) and, with `-i`, our stdin; its exit status
//! becomes ours. On a TTY our terminal is put in raw mode while it runs and sized to ours.

use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use berth_dockerapi::client::Client;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::Outcome;
use crate::cli::{ContainerExecArgs, ExecFlags};
use crate::containers::{demultiplex, with_daemon};

/// What an exec runs and how.
pub(crate) struct Exec<'a> {
    /// Its flags.
    pub flags: &'a ExecFlags,
    /// The command and its arguments.
    pub command: &'a [String],
    /// Send our stdin to it.
    pub interactive: bool,
    /// On a pseudo-TTY.
    pub tty: bool,
}

/// `berth exec [OPTIONS] CONTAINER COMMAND [ARG...]`.
pub fn run(args: &ContainerExecArgs, host: Option<&str>) -> Result<ExitCode, Outcome> {
    if args.tty && !std::io::stdin().is_terminal() {
        return Err(anyhow!("the input device is not a TTY").into());
    }
    let exec = Exec {
        flags: &args.flags,
        command: &args.command,
        interactive: args.interactive,
        tty: args.tty,
    };
    let code = with_daemon(host, |client| async move {
        exec_in(&client, &args.container, &exec).await
    })?;
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// Runs `exec` in `container`; its exit status (0 when detached).
pub(crate) async fn exec_in(
    client: &Client,
    container: &str,
    exec: &Exec<'_>,
) -> anyhow::Result<i64> {
    let flags = exec.flags;
    let body = json!({
        "Cmd": exec.command,
        "Env": flags.env,
        "WorkingDir": flags.workdir.clone().unwrap_or_default(),
        "User": flags.user.clone().unwrap_or_default(),
        "Privileged": flags.privileged,
        "Tty": exec.tty,
        "AttachStdin": exec.interactive && !flags.detach,
        "AttachStdout": !flags.detach,
        "AttachStderr": !flags.detach,
    });
    let created = client
        .call(
            "POST",
            &format!("/containers/{container}/exec"),
            Some(&body),
        )
        .await
        .and_then(|a| a.ok())
        .map_err(|e| anyhow!(e))?;
    let id = created.json()["Id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if flags.detach {
        let start = json!({"Detach": true, "Tty": exec.tty});
        client
            .call("POST", &format!("/exec/{id}/start"), Some(&start))
            .await
            .and_then(|a| a.ok())
            .map_err(|e| anyhow!(e))?;
        return Ok(0);
    }
    let stream = client
        .hijack(&format!("/exec/{id}/start"))
        .await
        .map_err(|e| anyhow!(e))?;
    let _raw = if exec.tty {
        resize(client, &id).await;
        Some(RawTerminal::enter()?)
    } else {
        None
    };
    let (from_process, mut to_process) = tokio::io::split(stream);
    if exec.interactive {
        let mut input = stdin_chunks();
        tokio::spawn(async move {
            while let Some(chunk) = input.recv().await {
                if to_process.write_all(&chunk).await.is_err() {
                    return;
                }
            }
            let _ = to_process.shutdown().await;
        });
    }
    if exec.tty {
        let mut from_process = from_process;
        tokio::io::copy(&mut from_process, &mut tokio::io::stdout()).await?;
    } else {
        demultiplex(from_process).await;
    }
    let inspected = client
        .call("GET", &format!("/exec/{id}/json"), None)
        .await
        .and_then(|a| a.ok())
        .map_err(|e| anyhow!(e))?;
    inspected.json()["ExitCode"]
        .as_i64()
        .ok_or_else(|| anyhow!("the daemon gave no exit status for exec {id}"))
}

/// Our stdin as it comes, read on a thread of its own: a read of the async runtime's
/// would hold the runtime open past the process's end until the next keystroke.
fn stdin_chunks() -> tokio::sync::mpsc::Receiver<Vec<u8>> {
    let (sender, receiver) = tokio::sync::mpsc::channel(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buffer = vec![0u8; 8192];
        while let Ok(read @ 1..) = std::io::Read::read(&mut stdin, &mut buffer) {
            if sender.blocking_send(buffer[..read].to_vec()).is_err() {
                return;
            }
        }
    });
    receiver
}

/// Sizes the exec's TTY to our terminal's.
async fn resize(client: &Client, id: &str) {
    let Ok(size) =
        nix::sys::termios::tcgetattr(std::io::stdin().as_fd()).and_then(|_| window_size())
    else {
        return;
    };
    let path = format!("/exec/{id}/resize?h={}&w={}", size.ws_row, size.ws_col);
    let _ = client.call("POST", &path, None).await;
}

fn window_size() -> nix::Result<libc::winsize> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into the struct we own.
    let rc = unsafe { libc::ioctl(libc::STDIN_FILENO, libc::TIOCGWINSZ, &mut size) };
    nix::errno::Errno::result(rc).map(|_| size)
}

/// Our terminal in raw mode, as it was again when dropped.
struct RawTerminal {
    saved: nix::sys::termios::Termios,
}

impl RawTerminal {
    fn enter() -> anyhow::Result<Self> {
        use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        let saved = tcgetattr(stdin.as_fd()).context("read the terminal's settings")?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).context("make the terminal raw")?;
        Ok(Self { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        use nix::sys::termios::{SetArg, tcsetattr};
        let _ = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
    }
}
