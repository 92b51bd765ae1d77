//! Terminals. A process with `process.terminal` gets a pseudo-terminal made inside the
//! container's own devpts: init opens it, makes the slave its controlling terminal and
//! stdio, and hands the master over the console socket (runc's `--console-socket`
//! protocol: one SCM_RIGHTS message whose payload names the terminal). Without a socket, a
//! foreground `run` or `exec` receives the master itself and relays its own stdio, as
//! runc does.

use std::io::{IoSlice, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};

use crate::error::{IoContext, SysContext};
use crate::{Error, Result};

/// Connects to the console socket a caller listens on.
pub(crate) fn connect(path: &Path) -> Result<OwnedFd> {
    let stream = UnixStream::connect(path).at(path)?;
    Ok(OwnedFd::from(stream))
}

/// Both ends of a private console socket, for a runtime that relays the terminal itself.
pub(crate) fn private_pair() -> Result<(OwnedFd, OwnedFd)> {
    let (ours, theirs) = UnixStream::pair().at("socketpair")?;
    Ok((OwnedFd::from(ours), OwnedFd::from(theirs)))
}

/// In the container: opens a new terminal, gives its slave to `uid`:`gid`, sends the
/// master over `socket` and returns the slave.
pub(crate) fn open_and_send(socket: &OwnedFd, uid: u32, gid: u32) -> Result<OwnedFd> {
    use nix::fcntl::OFlag;
    let flags = OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
    let master = nix::pty::posix_openpt(flags).or_sys(|| "open /dev/ptmx".into())?;
    nix::pty::unlockpt(&master).or_sys(|| "unlock the terminal".into())?;
    let name = nix::pty::ptsname_r(&master).or_sys(|| "name the terminal".into())?;
    let slave = nix::fcntl::open(name.as_str(), flags, nix::sys::stat::Mode::empty())
        .or_sys(|| format!("open {name}"))?;
    // SAFETY: a fresh descriptor from open.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    nix::unistd::fchown(
        slave.as_raw_fd(),
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(gid)),
    )
    .or_sys(|| format!("chown {name}"))?;
    let fds = [master.as_raw_fd()];
    sendmsg::<()>(
        socket.as_raw_fd(),
        &[IoSlice::new(name.as_bytes())],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .or_sys(|| "send the terminal over the console socket".into())?;
    Ok(slave)
}

/// Makes `slave` the calling process's controlling terminal and its stdin, stdout and
/// stderr, in a new session.
pub(crate) fn attach(slave: &OwnedFd) -> Result<()> {
    nix::unistd::setsid().or_sys(|| "setsid".into())?;
    // SAFETY: TIOCSCTTY on a terminal descriptor we own, integer argument.
    let rc = unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) };
    nix::errno::Errno::result(rc).or_sys(|| "make the terminal controlling".into())?;
    for target in 0..3 {
        // SAFETY: dup2 onto the standard descriptors.
        let rc = unsafe { libc::dup2(slave.as_raw_fd(), target) };
        nix::errno::Errno::result(rc).or_sys(|| format!("dup the terminal onto {target}"))?;
    }
    Ok(())
}

/// Receives the terminal's master that a container's init sent over a console socket
/// (runc's protocol): what a `--console-socket` listener does with its connection.
pub fn receive_master(socket: &OwnedFd) -> Result<OwnedFd> {
    let mut name = [0u8; 256];
    let mut iov = [std::io::IoSliceMut::new(&mut name)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let message = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .or_sys(|| "receive the terminal".into())?;
    for cmsg in message
        .cmsgs()
        .or_sys(|| "read the terminal message".into())?
    {
        if let ControlMessageOwned::ScmRights(fds) = cmsg
            && let Some(&fd) = fds.first()
        {
            // SAFETY: the kernel installed this descriptor for us.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
    }
    Err(Error::Init("the container sent no terminal".into()))
}

/// Relays the runtime's stdin to the terminal and the terminal to its stdout until the
/// container's side is closed, with the runtime's own terminal (if any) in raw mode; the
/// terminal takes each size read from `resizes` (`ROWS COLUMNS` lines).
pub(crate) fn relay(master: OwnedFd, resizes: Option<std::fs::File>) {
    copy_window_size(&master);
    if let (Some(resizes), Ok(terminal)) = (resizes, master.try_clone()) {
        std::thread::spawn(move || follow_sizes(resizes, &terminal));
    }
    let raw = RawMode::enter();
    if let Ok(input) = master.try_clone() {
        // The copy of stdin ends with the process, or when the terminal is gone.
        std::thread::spawn(move || {
            let _ = std::io::copy(
                &mut std::io::stdin().lock(),
                &mut std::fs::File::from(input),
            );
        });
    }
    let mut output = std::fs::File::from(master);
    let mut buffer = [0u8; 8192];
    let mut stdout = std::io::stdout().lock();
    // Reading the master fails with EIO once every holder of the slave has closed it.
    while let Ok(n) = output.read(&mut buffer) {
        if n == 0
            || stdout
                .write_all(&buffer[..n])
                .and_then(|()| stdout.flush())
                .is_err()
        {
            break;
        }
    }
    drop(raw);
}

/// Sets the terminal's size to each `ROWS COLUMNS` line of `resizes` until it ends.
fn follow_sizes(resizes: std::fs::File, terminal: &OwnedFd) {
    use std::io::BufRead;
    for line in std::io::BufReader::new(resizes)
        .lines()
        .map_while(|l| l.ok())
    {
        let mut numbers = line.split_whitespace().map(|n| n.parse::<u16>());
        let (Some(Ok(rows)), Some(Ok(columns))) = (numbers.next(), numbers.next()) else {
            continue;
        };
        set_size(terminal, rows, columns);
    }
}

/// Sets a terminal's size: what a relay does with its client's resizes (the runtime's
/// own `--resize-fd`, and the engine's container monitors).
pub fn set_size(terminal: &OwnedFd, rows: u16, columns: u16) {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: columns,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ on a terminal descriptor we own, with a valid winsize.
    unsafe { libc::ioctl(terminal.as_raw_fd(), libc::TIOCSWINSZ, &size) };
}

/// Gives the container's terminal the size of the runtime's, when it has one.
fn copy_window_size(master: &OwnedFd) {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ/TIOCSWINSZ with a winsize struct on the stack.
    unsafe {
        if libc::ioctl(libc::STDIN_FILENO, libc::TIOCGWINSZ, &mut size) == 0 {
            libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size);
        }
    }
}

/// The runtime's terminal in raw mode for as long as this lives.
struct RawMode(Option<nix::sys::termios::Termios>);

impl RawMode {
    fn enter() -> Self {
        let stdin = std::io::stdin();
        let Ok(saved) = nix::sys::termios::tcgetattr(stdin.as_fd()) else {
            return Self(None);
        };
        let mut raw = saved.clone();
        nix::sys::termios::cfmakeraw(&mut raw);
        let _ =
            nix::sys::termios::tcsetattr(stdin.as_fd(), nix::sys::termios::SetArg::TCSANOW, &raw);
        Self(Some(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let stdin = std::io::stdin();
            let _ = nix::sys::termios::tcsetattr(
                stdin.as_fd(),
                nix::sys::termios::SetArg::TCSANOW,
                saved,
            );
        }
    }
}
