//! The container's filesystem view: the spec's mounts, default devices, pivot_root, masked
//! and read-only paths. Runs in the container's init, in its new mount namespace.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use oci_spec::runtime::{Mount, Spec};

use crate::error::SysContext;
use crate::fs::{create_in_root, fd_path, open_in_root};
use crate::{Error, Result};

/// Mount flags, propagation and filesystem data parsed from a spec mount's options.
#[derive(Debug, PartialEq)]
pub struct MountOptions {
    /// Flags for mount(2).
    pub flags: MsFlags,
    /// Propagation changes applied after the mount (rprivate, shared, …).
    pub propagation: MsFlags,
    /// Options the filesystem itself reads (`mode=755,size=64k`).
    pub data: String,
}

/// Parses options as runc does: known flags set or clear bits, propagation names (with
/// an `r` prefix for recursive) go apart, the rest is filesystem data.
pub fn parse_options(options: &[String]) -> MountOptions {
    let mut parsed = MountOptions {
        flags: MsFlags::empty(),
        propagation: MsFlags::empty(),
        data: String::new(),
    };
    for option in options {
        if let Some((set, clear)) = flag_option(option) {
            parsed.flags = (parsed.flags | set) & !clear;
        } else if let Some(propagation) = propagation_option(option) {
            parsed.propagation |= propagation;
        } else if option != "defaults" {
            if !parsed.data.is_empty() {
                parsed.data.push(',');
            }
            parsed.data.push_str(option);
        }
    }
    parsed
}

/// The flags an option sets and clears.
fn flag_option(option: &str) -> Option<(MsFlags, MsFlags)> {
    let none = MsFlags::empty();
    Some(match option {
        "ro" => (MsFlags::MS_RDONLY, none),
        "rw" => (none, MsFlags::MS_RDONLY),
        "bind" => (MsFlags::MS_BIND, none),
        "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, none),
        "nosuid" => (MsFlags::MS_NOSUID, none),
        "suid" => (none, MsFlags::MS_NOSUID),
        "nodev" => (MsFlags::MS_NODEV, none),
        "dev" => (none, MsFlags::MS_NODEV),
        "noexec" => (MsFlags::MS_NOEXEC, none),
        "exec" => (none, MsFlags::MS_NOEXEC),
        "sync" => (MsFlags::MS_SYNCHRONOUS, none),
        "async" => (none, MsFlags::MS_SYNCHRONOUS),
        "noatime" => (MsFlags::MS_NOATIME, none),
        "nodiratime" => (MsFlags::MS_NODIRATIME, none),
        "relatime" => (MsFlags::MS_RELATIME, none),
        "strictatime" => (MsFlags::MS_STRICTATIME, none),
        "mand" => (MsFlags::MS_MANDLOCK, none),
        "remount" => (MsFlags::MS_REMOUNT, none),
        _ => return None,
    })
}

/// The propagation an option asks for: `private`, `shared`, `slave`, `unbindable`, and
/// their recursive `r…` forms.
fn propagation_option(option: &str) -> Option<MsFlags> {
    let kind = |name: &str| match name {
        "private" => Some(MsFlags::MS_PRIVATE),
        "shared" => Some(MsFlags::MS_SHARED),
        "slave" => Some(MsFlags::MS_SLAVE),
        "unbindable" => Some(MsFlags::MS_UNBINDABLE),
        _ => None,
    };
    kind(option).or_else(|| {
        option
            .strip_prefix('r')
            .and_then(kind)
            .map(|f| f | MsFlags::MS_REC)
    })
}

/// The propagation `linux.rootfsPropagation` asks for, refused unless it is one of the
/// spec's values; `None` when unset.
pub fn root_propagation(spec: &Spec) -> Result<Option<MsFlags>> {
    let Some(value) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref())
        .filter(|v| !v.is_empty())
    else {
        return Ok(None);
    };
    propagation_option(value)
        .map(Some)
        .ok_or_else(|| Error::Field {
            field: "linux.rootfsPropagation".into(),
            reason: format!(
                "{value:?} is not one of private, rprivate, slave, rslave, shared, rshared, \
             unbindable, runbindable"
            ),
        })
}

/// Refuses a private root with `--no-pivot`, as runc does: the host's root stays beneath
/// the moved one, and private, it would keep every host mount it holds busy.
pub fn refuse_private_without_pivot(spec: &Spec) -> Result<()> {
    match root_propagation(spec)? {
        Some(flags) if flags.contains(MsFlags::MS_PRIVATE) => Err(Error::Field {
            field: "linux.rootfsPropagation".into(),
            reason: "[r]private is not safe without pivot_root (--no-pivot)".into(),
        }),
        _ => Ok(()),
    }
}

/// Makes the rootfs a mount point of its own, cut off from the host (a slave of it, or
/// private when asked), and mounts the spec's mounts into it. The root gets the
/// propagation the spec asks for only after the pivot (`set_root_propagation`): shared
/// now would share the host's peer group, and pivot_root refuses a shared or unbindable
/// new root.
pub fn prepare_rootfs(spec: &Spec, rootfs: &Path, cgroup_path: &str) -> Result<()> {
    let private = root_propagation(spec)?.is_some_and(|f| f.contains(MsFlags::MS_PRIVATE));
    let root_flags = if private {
        MsFlags::MS_PRIVATE
    } else {
        MsFlags::MS_SLAVE
    };
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        root_flags | MsFlags::MS_REC,
        None::<&str>,
    )
    .or_sys(|| "make / private to the container".into())?;
    mount(
        Some(rootfs),
        rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .or_sys(|| format!("bind {} onto itself", rootfs.display()))?;
    let root =
        crate::fs::open_root(rootfs).or_sys(|| format!("open rootfs {}", rootfs.display()))?;
    let mut dev_is_tmpfs = false;
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        mount_one(&root, m, cgroup_path).map_err(|e| {
            Error::Init(format!("mounts[{i}] ({}): {e}", m.destination().display()))
        })?;
        dev_is_tmpfs |= m.destination() == Path::new("/dev") && m.typ().as_deref() == Some("tmpfs");
    }
    if dev_is_tmpfs {
        default_devices(&root, spec)?;
    }
    Ok(())
}

fn mount_one(root: &OwnedFd, m: &Mount, cgroup_path: &str) -> Result<()> {
    let options = parse_options(m.options().as_deref().unwrap_or_default());
    let kind = m.typ().clone().unwrap_or_default();
    let is_bind = options.flags.contains(MsFlags::MS_BIND) || kind == "bind";
    let source = m.source().clone().unwrap_or_default();
    let target_is_file = is_bind && source.exists() && !source.is_dir();
    let target = create_in_root(root.as_raw_fd(), m.destination(), target_is_file)
        .or_sys(|| "create mount point".into())?;
    let target_path = fd_path(&target);
    let data = (!options.data.is_empty()).then_some(options.data.as_str());
    match kind.as_str() {
        "cgroup" => return mount_cgroups(root, m, &options, cgroup_path),
        _ if is_bind => {
            let flags = MsFlags::MS_BIND | (options.flags & MsFlags::MS_REC);
            mount(
                Some(&source),
                &target_path,
                None::<&str>,
                flags,
                None::<&str>,
            )
            .or_sys(|| format!("bind {}", source.display()))?;
            let remount_flags =
                options.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
            if !remount_flags.is_empty() {
                remount(
                    root,
                    m.destination(),
                    remount_flags | MsFlags::MS_BIND,
                    None,
                )?;
            }
        }
        "sysfs" => {
            let result = mount(
                Some("sysfs"),
                &target_path,
                Some("sysfs"),
                options.flags,
                data,
            );
            if result == Err(nix::errno::Errno::EPERM) {
                // Without a network namespace of its own, sysfs cannot be mounted: bind the host's.
                mount(
                    Some("/sys"),
                    &target_path,
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )
                .or_sys(|| "bind /sys".into())?;
            } else {
                result.or_sys(|| "mount sysfs".into())?;
            }
        }
        _ => {
            let fs_source = if source.as_os_str().is_empty() {
                PathBuf::from(&kind)
            } else {
                source
            };
            mount(
                Some(&fs_source),
                &target_path,
                Some(kind.as_str()),
                options.flags,
                data,
            )
            .or_sys(|| format!("mount {kind}"))?;
        }
    }
    if !options.propagation.is_empty() {
        let mounted = open_in_root(root.as_raw_fd(), m.destination(), libc::O_PATH)
            .or_sys(|| "reopen mount".into())?;
        mount(
            None::<&str>,
            &fd_path(&mounted),
            None::<&str>,
            options.propagation,
            None::<&str>,
        )
        .or_sys(|| "set propagation".into())?;
    }
    Ok(())
}

/// Remounts what is now mounted at `dest` (inside `root`) with `flags`. The mount point is
/// opened again: a handle opened before the mount still points at the directory beneath.
fn remount(root: &OwnedFd, dest: &Path, flags: MsFlags, data: Option<&str>) -> Result<()> {
    let mounted = open_in_root(root.as_raw_fd(), dest, libc::O_PATH)
        .or_sys(|| format!("reopen {}", dest.display()))?;
    mount(
        None::<&str>,
        &fd_path(&mounted),
        None::<&str>,
        flags | MsFlags::MS_REMOUNT,
        data,
    )
    .or_sys(|| format!("remount {}", dest.display()))
}

/// A `cgroup` mount: the unified tree on v2; on v1 a tmpfs with each hierarchy's part that
/// belongs to the container bound beneath it, read-only when asked.
fn mount_cgroups(
    root: &OwnedFd,
    m: &Mount,
    options: &MountOptions,
    cgroup_path: &str,
) -> Result<()> {
    let target = open_in_root(root.as_raw_fd(), m.destination(), libc::O_PATH)
        .or_sys(|| "open cgroup mount point".into())?;
    let flags = options.flags
        & (MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC);
    if crate::cgroups::is_unified() {
        return mount(
            Some("cgroup2"),
            &fd_path(&target),
            Some("cgroup2"),
            flags,
            None::<&str>,
        )
        .or_sys(|| "mount cgroup2".into());
    }
    mount(
        Some("tmpfs"),
        &fd_path(&target),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=755"),
    )
    .or_sys(|| "mount tmpfs for cgroups".into())?;
    let hierarchies: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir() && !p.is_symlink())
                .collect()
        })
        .unwrap_or_default();
    for hierarchy in hierarchies {
        let Some(name) = hierarchy.file_name() else {
            continue;
        };
        let source = hierarchy.join(cgroup_path.trim_start_matches('/'));
        if !source.is_dir() {
            continue;
        }
        let dest = m.destination().join(name);
        let dest = create_in_root(root.as_raw_fd(), &dest, false)
            .or_sys(|| "create cgroup mount point".into())?;
        mount(
            Some(&source),
            &fd_path(&dest),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .or_sys(|| format!("bind {}", source.display()))?;
        remount(
            root,
            &m.destination().join(name),
            flags | MsFlags::MS_BIND,
            None,
        )?;
    }
    if flags.contains(MsFlags::MS_RDONLY) {
        remount(root, m.destination(), flags, Some("mode=755"))?;
    }
    Ok(())
}

fn set_owner_and_mode(
    dir: &OwnedFd,
    name: &std::ffi::OsStr,
    path: &Path,
    uid: u32,
    gid: u32,
    mode: u32,
) -> Result<()> {
    nix::unistd::fchownat(
        Some(dir.as_raw_fd()),
        name,
        Some(uid.into()),
        Some(gid.into()),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .or_sys(|| format!("chown {}", path.display()))?;
    // mknod's mode is cut by the umask: set it exactly.
    nix::sys::stat::fchmodat(
        Some(dir.as_raw_fd()),
        name,
        nix::sys::stat::Mode::from_bits_truncate(mode),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .or_sys(|| format!("chmod {}", path.display()))
}

/// Bind-mounts the host's device at `path` onto an empty file `name` in `dir`.
fn bind_host_device(dir: &OwnedFd, name: &std::ffi::OsStr, path: &Path) -> Result<()> {
    let target = nix::fcntl::openat(
        Some(dir.as_raw_fd()),
        name,
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .or_sys(|| format!("create {}", path.display()))?;
    // SAFETY: a fresh descriptor from openat.
    let target = unsafe { OwnedFd::from_raw_fd(target) };
    nix::mount::mount(
        Some(path),
        format!("/proc/self/fd/{}", target.as_raw_fd()).as_str(),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .or_sys(|| format!("bind the host's {}", path.display()))
}

/// The devices every container gets (null, zero, full, random, urandom, tty) plus the
/// spec's own, and the /dev symlinks programs expect.
fn default_devices(root: &OwnedFd, spec: &Spec) -> Result<()> {
    use nix::sys::stat::{SFlag, makedev};
    let mut devices: Vec<(PathBuf, SFlag, u64, u64, u32, u32, u32)> = [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ]
    .into_iter()
    .map(|(p, major, minor)| (PathBuf::from(p), SFlag::S_IFCHR, major, minor, 0o666, 0, 0))
    .collect();
    for d in spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().clone())
        .into_iter()
        .flatten()
    {
        let kind = match d.typ().as_str() {
            "b" => SFlag::S_IFBLK,
            "p" => SFlag::S_IFIFO,
            _ => SFlag::S_IFCHR,
        };
        let (uid, gid) = (d.uid().unwrap_or(0), d.gid().unwrap_or(0));
        devices.push((
            d.path().clone(),
            kind,
            d.major() as u64,
            d.minor() as u64,
            d.file_mode().unwrap_or(0o666),
            uid,
            gid,
        ));
    }
    for (path, kind, major, minor, mode, uid, gid) in devices {
        let Some(parent) = path.parent() else {
            continue;
        };
        let dir = create_in_root(root.as_raw_fd(), parent, false)
            .or_sys(|| format!("create {}", parent.display()))?;
        let name = path.file_name().unwrap_or_default();
        let _ = nix::unistd::unlinkat(
            Some(dir.as_raw_fd()),
            name,
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        );
        match nix::sys::stat::mknodat(
            Some(dir.as_raw_fd()),
            name,
            kind,
            nix::sys::stat::Mode::from_bits_truncate(mode),
            makedev(major, minor),
        ) {
            // A user namespace may not make device nodes: bind the host's instead, as runc.
            Err(nix::errno::Errno::EPERM) => bind_host_device(&dir, name, &path)?,
            made => {
                made.or_sys(|| format!("mknod {}", path.display()))?;
                set_owner_and_mode(&dir, name, &path, uid, gid, mode)?;
            }
        }
    }
    let dev = open_in_root(
        root.as_raw_fd(),
        Path::new("/dev"),
        libc::O_PATH | libc::O_DIRECTORY,
    )
    .or_sys(|| "open /dev".into())?;
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        match nix::unistd::symlinkat(target, Some(dev.as_raw_fd()), link) {
            Err(nix::errno::Errno::EEXIST) | Ok(()) => {}
            Err(e) => {
                return Err(Error::Sys {
                    what: format!("symlink /dev/{link}"),
                    source: e,
                });
            }
        }
    }
    Ok(())
}

/// Swaps the root: the rootfs becomes `/` and the host's root is detached.
pub fn pivot(rootfs: &Path, no_pivot: bool) -> Result<()> {
    nix::unistd::chdir(rootfs).or_sys(|| format!("chdir {}", rootfs.display()))?;
    if no_pivot {
        return move_root();
    }
    // pivot_root(".", ".") stacks the old root on top of the new one; detaching "." then
    // removes the old root without needing a directory for it inside the container.
    match nix::unistd::pivot_root(".", ".") {
        // The host's root is the initramfs (rootfs), which cannot be pivoted away from:
        // move the new root over / and chroot into it, as runc does there.
        Err(nix::errno::Errno::EINVAL) => return move_root(),
        other => other.or_sys(|| "pivot_root".into())?,
    }
    mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .or_sys(|| "make old root a slave".into())?;
    umount2(".", MntFlags::MNT_DETACH).or_sys(|| "detach the old root".into())?;
    nix::unistd::chdir("/").or_sys(|| "chdir /".into())
}

/// Gives the container's root, once in place, the propagation the spec asks for (crun
/// does the same; runc 1.1 leaves the root private).
pub fn set_root_propagation(spec: &Spec) -> Result<()> {
    let Some(flags) = root_propagation(spec)? else {
        return Ok(());
    };
    mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
        .or_sys(|| "set linux.rootfsPropagation on /".into())
}

/// The fallback where pivot_root cannot work: MS_MOVE of the current directory onto /,
/// then chroot. The old root stays reachable only through this mount namespace's
/// history, which the container cannot walk back up without CAP_SYS_CHROOT tricks, so
/// it is only used where pivot_root is refused, or asked for (`--no-pivot`).
fn move_root() -> Result<()> {
    mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
        .or_sys(|| "move the root filesystem onto /".into())?;
    nix::unistd::chroot(".").or_sys(|| "chroot".into())?;
    nix::unistd::chdir("/").or_sys(|| "chdir /".into())
}

/// Masks, read-only paths and a read-only root, applied after the pivot (paths are the
/// container's). Resolution stays inside the new root, and the /dev/null that masks files
/// must be the real character device 1:3, so a container cannot swap either for a symlink
/// or a file of its choosing (CVE-2025-31133).
pub fn harden(spec: &Spec) -> Result<()> {
    let root = crate::fs::open_root(Path::new("/")).or_sys(|| "open /".into())?;
    let linux = spec.linux().as_ref();
    let masked = linux
        .and_then(|l| l.masked_paths().clone())
        .unwrap_or_default();
    let dev_null = open_dev_null(&root)?;
    for (path, target) in existing_in_root(&root, &masked) {
        let is_dir = nix::sys::stat::fstat(target.as_raw_fd())
            .is_ok_and(|s| s.st_mode & libc::S_IFMT == libc::S_IFDIR);
        let result = if is_dir {
            mount(
                Some("tmpfs"),
                &fd_path(&target),
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                None::<&str>,
            )
        } else {
            mount(
                Some(&fd_path(&dev_null)),
                &fd_path(&target),
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
        };
        result.or_sys(|| format!("mask {path}"))?;
    }
    let readonly = linux
        .and_then(|l| l.readonly_paths().clone())
        .unwrap_or_default();
    for (path, target) in existing_in_root(&root, &readonly) {
        let target_path = fd_path(&target);
        mount(
            Some(&target_path),
            &target_path,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .or_sys(|| format!("bind {path}"))?;
        let ro = MsFlags::MS_BIND
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC;
        remount(&root, Path::new(path), ro, None)?;
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .or_sys(|| "make the root read-only".into())?;
    }
    Ok(())
}

/// The paths of `paths` that exist inside `root`, each with an O_PATH handle that does not
/// follow a final symlink; the spec says a missing masked or read-only path is skipped.
fn existing_in_root<'a>(
    root: &'a OwnedFd,
    paths: &'a [String],
) -> impl Iterator<Item = (&'a str, OwnedFd)> + 'a {
    paths.iter().filter_map(|path| {
        open_in_root(
            root.as_raw_fd(),
            Path::new(path),
            libc::O_PATH | libc::O_NOFOLLOW,
        )
        .ok()
        .map(|fd| (path.as_str(), fd))
    })
}

/// The container's /dev/null, refused unless it is the null device itself.
fn open_dev_null(root: &OwnedFd) -> Result<OwnedFd> {
    let fd = open_in_root(
        root.as_raw_fd(),
        Path::new("/dev/null"),
        libc::O_PATH | libc::O_NOFOLLOW,
    )
    .or_sys(|| "open /dev/null".into())?;
    let stat = nix::sys::stat::fstat(fd.as_raw_fd()).or_sys(|| "stat /dev/null".into())?;
    let is_null = stat.st_mode & libc::S_IFMT == libc::S_IFCHR
        && stat.st_rdev == nix::sys::stat::makedev(1, 3);
    if !is_null {
        return Err(Error::Init(
            "/dev/null in the container is not the null device: refusing to mask paths with it"
                .into(),
        ));
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_into_flags_propagation_and_data() {
        let opts: Vec<String> = [
            "nosuid",
            "strictatime",
            "mode=755",
            "size=65536k",
            "rprivate",
            "ro",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let parsed = parse_options(&opts);
        assert_eq!(
            parsed.flags,
            MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME | MsFlags::MS_RDONLY
        );
        assert_eq!(parsed.propagation, MsFlags::MS_PRIVATE | MsFlags::MS_REC);
        assert_eq!(parsed.data, "mode=755,size=65536k");
    }

    #[test]
    fn later_options_override_earlier_ones() {
        let parsed = parse_options(&["ro".to_string(), "rw".to_string()]);
        assert!(!parsed.flags.contains(MsFlags::MS_RDONLY));
    }
}
