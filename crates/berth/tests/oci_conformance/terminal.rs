//! Terminals: with `process.terminal`, the process runs on a pseudo-terminal of the
//! container's devpts whose master arrives on the console socket (runc's protocol), for
//! `run --detach` and for `exec --tty`.

use std::io::{IoSliceMut, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;

use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};

use super::*;

/// Accepts one connection on the console socket and takes the terminal master from it.
fn receive_terminal(listener: &UnixListener) -> std::fs::File {
    let (stream, _) = listener.accept().unwrap();
    let mut name = [0u8; 128];
    let mut iov = [IoSliceMut::new(&mut name)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let message = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .unwrap();
    let fd = message
        .cmsgs()
        .unwrap()
        .find_map(|c| match c {
            ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
            _ => None,
        })
        .expect("no descriptor on the console socket");
    // SAFETY: the kernel installed this descriptor for us.
    std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Everything written to the terminal until its last slave holder is gone.
fn read_all(mut master: std::fs::File) -> String {
    let mut output = Vec::new();
    let mut buffer = [0u8; 4096];
    // The master reads EIO once the slave is closed everywhere.
    while let Ok(n) = master.read(&mut buffer) {
        if n == 0 {
            break;
        }
        output.extend_from_slice(&buffer[..n]);
    }
    String::from_utf8_lossy(&output).replace('\r', "")
}

const CHECK_TTY: &str = "tty; test -t 0 && test -t 1 && test -t 2 && echo all-on-tty";

/// Runs `args` (a command whose process gets a terminal) with a console socket given
/// right after the subcommand, and checks what the terminal showed; then deletes `id`.
fn expect_terminal_session(runtime: Runtime, scratch: &Scratch, args: &[&str], id: &str) {
    let socket = scratch.path().join("console.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let root = scratch.path().join("state");
    let mut full = vec![args[0], "--console-socket", socket.to_str().unwrap()];
    full.extend_from_slice(&args[1..]);
    ok_detached(runtime, &root, &full);
    let output = read_all(receive_terminal(&listener));
    assert_eq!(
        output.trim(),
        "/dev/pts/0\nall-on-tty",
        "under {}",
        runtime.name()
    );
    ok(runtime, &root, &["delete", "--force", id]);
}

#[test]
fn the_terminal_goes_to_the_console_socket() {
    for &runtime in runtimes() {
        let scratch = Scratch::new(&format!("tty-{}", runtime.name())).unwrap();
        let case = Case::shell("tty", CHECK_TTY).tweak(|c| c["process"]["terminal"] = json!(true));
        let (bundle, id, _cgroup) = case.bundle(&scratch, runtime);
        let bundle = bundle.to_str().unwrap();
        expect_terminal_session(
            runtime,
            &scratch,
            &["run", "--detach", "--bundle", bundle, &id],
            &id,
        );
    }
}

#[test]
fn exec_tty_gets_its_own_terminal() {
    for &runtime in runtimes().iter().filter(|r| **r != Runtime::Crun) {
        let scratch = Scratch::new(&format!("exec-tty-{}", runtime.name())).unwrap();
        let (bundle, id, _cgroup) =
            Case::new("exec-tty", &["sleep", "300"]).bundle(&scratch, runtime);
        run_detached(runtime, &scratch.path().join("state"), &bundle, &id);
        let args = ["exec", "--detach", "--tty", &id, "sh", "-c", CHECK_TTY];
        expect_terminal_session(runtime, &scratch, &args, &id);
    }
}

#[test]
fn a_terminal_without_a_console_socket_is_refused_when_detached() {
    let scratch = Scratch::new("tty-nosocket").unwrap();
    let case =
        Case::new("tty-nosocket", &["true"]).tweak(|c| c["process"]["terminal"] = json!(true));
    let (bundle, id, _cgroup) = case.bundle(&scratch, Runtime::Berth);
    let root = scratch.path().join("state");
    let output = Runtime::Berth
        .command(&root)
        .args(["create", "--bundle", bundle.to_str().unwrap(), &id])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--console-socket"), "{stderr}");
    assert!(
        state_of(Runtime::Berth, &root, &id).is_none(),
        "state left behind"
    );
}
