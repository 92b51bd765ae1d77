//! openat2(2): opening paths that come from images, archives and containers, whose
//! symlinks must not lead out of the directory they belong to.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `struct open_how` of openat2(2).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// RESOLVE_* flags of openat2(2).
pub(crate) const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub(crate) const RESOLVE_NO_SYMLINKS: u64 = 0x04;
pub(crate) const RESOLVE_BENEATH: u64 = 0x08;
const RESOLVE_IN_ROOT: u64 = 0x10;

/// openat2 of `name` relative to `dir` with open `flags` (close-on-exec added) and
/// `resolve` rules.
pub(crate) fn openat2(
    dir: &impl AsRawFd,
    name: &CStr,
    flags: i32,
    resolve: u64,
) -> nix::Result<OwnedFd> {
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve,
    };
    // SAFETY: openat2 with a NUL-terminated name and an open_how of the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            name.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    // SAFETY: a fresh descriptor from openat2.
    nix::errno::Errno::result(fd).map(|fd| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Opens `path` with `root` taken as `/` for every symlink on the way (absolute links and
/// `..` stay inside it); magic links are refused. A NUL in `path` gives EINVAL.
pub fn open_in_root(root: &impl AsRawFd, path: &str, flags: i32) -> nix::Result<OwnedFd> {
    let name = std::ffi::CString::new(path).map_err(|_| nix::errno::Errno::EINVAL)?;
    openat2(root, &name, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
}
