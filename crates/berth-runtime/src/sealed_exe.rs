//! The defence against CVE-2019-5736: a container must never be able to overwrite the
//! runtime's binary on the host.
//!
//! Init is a fork of the runtime, so until it execs the user's program its
//! `/proc/<pid>/exe` is the runtime binary, and a program that is a `#!/proc/self/exe`
//! script makes init exec the runtime binary itself inside the container. A process of the
//! container holding that link can reopen it for writing once the runtime has exited.
//! So the runtime runs from a binary that cannot be written through any such link: before
//! it starts containers it re-executes itself from a read-only, detached bind mount of
//! its own file (as runc 1.2 does with its sealed overlay), or, on kernels without the new
//! mount API, from a sealed in-memory copy. Init also makes itself non-dumpable, so that
//! processes of the container cannot open its `/proc` entries at all.

use std::ffi::{CString, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;

use crate::error::SysContext;
use crate::{Error, Result};

/// `open_tree(2)` flag: a detached copy of the mount instead of the mount itself.
const OPEN_TREE_CLONE: libc::c_uint = 1;
/// `mount_setattr(2)` attribute: read-only.
const MOUNT_ATTR_RDONLY: u64 = 1;

/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Re-executes the current process from a sealed copy of its binary, with the same
/// arguments and environment, unless it already runs from one. Callers that start
/// containers (the `oci` commands that spawn processes, the engine at start-up) call it
/// first thing, while single-threaded.
pub fn run_from_sealed_binary() -> Result<()> {
    if running_sealed() {
        return Ok(());
    }
    let sealed = read_only_clone().or_else(|_| sealed_memory_copy())?;
    let args = c_strings(std::env::args_os());
    let env = c_strings(
        std::env::vars_os().map(|(key, value)| [key, "=".into(), value].into_iter().collect()),
    );
    let Err(error) = nix::unistd::fexecve(sealed.as_raw_fd(), &args, &env);
    Err(Error::Sys {
        what: "re-execute the runtime from its sealed binary".into(),
        source: error,
    })
}

/// Whether `/proc/self/exe` is on a read-only mount or a write-sealed memory file.
fn running_sealed() -> bool {
    let read_only = nix::sys::statvfs::statvfs("/proc/self/exe")
        .is_ok_and(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY));
    read_only
        || std::fs::File::open("/proc/self/exe").is_ok_and(|exe| {
            // SAFETY: fcntl on a descriptor we own, integer arguments only.
            let seals = unsafe { libc::fcntl(exe.as_raw_fd(), libc::F_GET_SEALS) };
            seals > 0 && seals & libc::F_SEAL_WRITE != 0
        })
}

/// A read-only bind mount of the binary, attached nowhere: no mount table shows it and
/// nothing can propagate to or from it.
fn read_only_clone() -> Result<OwnedFd> {
    // SAFETY: open_tree with a NUL-terminated path and integer flags.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c"/proc/self/exe".as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    let fd = nix::errno::Errno::result(fd).or_sys(|| "clone the runtime binary's mount".into())?;
    // SAFETY: a fresh descriptor from open_tree.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: mount_setattr on our descriptor with a valid struct and its size.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    nix::errno::Errno::result(rc).or_sys(|| "make the binary's mount read-only".into())?;
    Ok(fd)
}

/// The binary copied into a memory file sealed against every change.
fn sealed_memory_copy() -> Result<OwnedFd> {
    let memfd = nix::sys::memfd::memfd_create(
        c"berth",
        nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC
            | nix::sys::memfd::MemFdCreateFlag::MFD_ALLOW_SEALING,
    )
    .or_sys(|| "create a memory file for the runtime binary".into())?;
    let mut exe = std::fs::File::open("/proc/self/exe").map_err(|e| Error::Io {
        path: "/proc/self/exe".into(),
        source: e,
    })?;
    let mut copy = std::fs::File::from(memfd);
    std::io::copy(&mut exe, &mut copy).map_err(|e| Error::Io {
        path: "memfd:berth".into(),
        source: e,
    })?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: fcntl on a descriptor we own, integer arguments only.
    let rc = unsafe { libc::fcntl(copy.as_raw_fd(), libc::F_ADD_SEALS, seals) };
    nix::errno::Errno::result(rc).or_sys(|| "seal the runtime binary's copy".into())?;
    Ok(OwnedFd::from(copy))
}

fn c_strings(items: impl Iterator<Item = OsString>) -> Vec<CString> {
    items
        .filter_map(|item| CString::new(item.into_vec()).ok())
        .collect()
}

/// Makes the calling process non-dumpable: its `/proc/<pid>` entries then belong to root
/// and need CAP_SYS_PTRACE to open. execve of the user's program makes it dumpable again.
pub(crate) fn make_non_dumpable() -> Result<()> {
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    nix::errno::Errno::result(rc)
        .map(|_| ())
        .or_sys(|| "make init non-dumpable".into())
}
