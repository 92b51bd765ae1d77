//! Paths inside a container's root resolved by the kernel as if the root were `/`
//! (openat2 with RESOLVE_IN_ROOT): a symlink in an image cannot point a mount, a mask or
//! a working directory at the host. Mounts then target `/proc/self/fd/N` of the resolved
//! file, so nothing can be swapped in between the check and the mount.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;

const RESOLVE_IN_ROOT: u64 = 0x10;
const RESOLVE_NO_MAGICLINKS: u64 = 0x02;

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// openat2(2) relative to `dir` with the path resolved inside it.
pub fn open_in_root(root: RawFd, path: &Path, flags: i32) -> nix::Result<OwnedFd> {
    let relative = relative(path);
    let c = CString::new(relative.as_os_str().as_encoded_bytes()).map_err(|_| Errno::EINVAL)?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: `c` and `how` are valid for the call; the kernel copies them.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root,
            c.as_ptr(),
            &how,
            std::mem::size_of::<OpenHow>(),
        )
    };
    let fd = Errno::result(fd)? as RawFd;
    // SAFETY: the kernel just returned this descriptor to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `path` without its leading `/` and with `.` dropped, as openat2 wants it; `/` itself is `.`.
fn relative(path: &Path) -> PathBuf {
    let rel: PathBuf = path
        .components()
        .filter(|c| !matches!(c, Component::RootDir | Component::CurDir))
        .collect();
    if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    }
}

/// Opens the directory `root` as an O_PATH handle.
pub fn open_root(root: &Path) -> nix::Result<OwnedFd> {
    let fd = nix::fcntl::open(
        root,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    // SAFETY: `open` returned a fresh descriptor we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Creates `path` inside `root` (directories, and the last component as an empty file
/// when `file` is set) without following any symlink out of the root, and returns an
/// O_PATH handle to it.
pub fn create_in_root(root: RawFd, path: &Path, file: bool) -> nix::Result<OwnedFd> {
    if let Ok(fd) = open_in_root(root, path, libc::O_PATH) {
        return Ok(fd);
    }
    let rel = relative(path);
    let mut done = PathBuf::new();
    let components: Vec<_> = rel.components().collect();
    for (i, component) in components.iter().enumerate() {
        let parent = open_in_root(
            root,
            if done.as_os_str().is_empty() {
                Path::new(".")
            } else {
                &done
            },
            libc::O_PATH | libc::O_DIRECTORY,
        )?;
        done.push(component);
        if open_in_root(root, &done, libc::O_PATH).is_ok() {
            continue;
        }
        let name =
            CString::new(component.as_os_str().as_encoded_bytes()).map_err(|_| Errno::EINVAL)?;
        let last = i + 1 == components.len();
        // SAFETY: `name` is a valid C string and `parent` an open directory handle.
        let rc = if last && file {
            let fd = unsafe {
                libc::openat(
                    parent.as_raw_fd(),
                    name.as_ptr(),
                    libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
                    0o644,
                )
            };
            if fd >= 0 {
                // SAFETY: closing the descriptor we just opened.
                unsafe { libc::close(fd) };
            }
            fd
        } else {
            unsafe { libc::mkdirat(parent.as_raw_fd(), name.as_ptr(), 0o755) }
        };
        if rc < 0 && Errno::last() != Errno::EEXIST {
            return Err(Errno::last());
        }
    }
    open_in_root(root, path, libc::O_PATH)
}

/// The `/proc/self/fd/N` path through which a mount targets exactly the opened file.
pub fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_cannot_leave_the_root() {
        let dir = std::env::temp_dir().join(format!("berth-fs-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        std::os::unix::fs::symlink("/../../../../etc", dir.join("escape")).unwrap();
        let root = open_root(&dir).unwrap();
        let made = create_in_root(
            root.as_raw_fd(),
            Path::new("/escape/berth-made-this"),
            false,
        )
        .unwrap();
        drop(made);
        assert!(
            dir.join("etc/berth-made-this").is_dir(),
            "not created inside the root"
        );
        assert!(
            !Path::new("/etc/berth-made-this").exists(),
            "created on the host"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
