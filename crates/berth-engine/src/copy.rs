//! `docker cp`: files out of and into a container's root filesystem, resolved inside it
//! (openat2 RESOLVE_IN_ROOT: a symlink in the container cannot point the copy at the
//! host), through the running container's own view of its mounts, or its root mounted
//! for the copy when it is not running.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::model::{Container, Status};
use crate::rootfs::Overlay;
use crate::{Engine, Error, Result};

/// What `docker cp` learns of a path before copying (the `X-Docker-Container-Path-Stat`
/// header).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PathStat {
    /// Base name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Go's `os.FileMode`: permission bits, plus 1<<31 for a directory.
    pub mode: u32,
    /// Modification time, RFC 3339.
    pub mtime: String,
    /// Empty: links are resolved inside the container.
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

/// The container's root, mounted for as long as this lives if it was not already.
pub(crate) struct MountedRoot {
    overlay: Overlay,
    mounted_here: bool,
}

impl Drop for MountedRoot {
    fn drop(&mut self) {
        if self.mounted_here {
            let _ = self.overlay.unmount();
        }
    }
}

impl Engine {
    /// The container's root as its processes see it: through `/proc/<pid>/root` while it
    /// runs (its volumes and /etc/hosts binds included), else its overlay, mounted for
    /// the copy.
    fn mounted_root(&self, name: &str) -> Result<(MountedRoot, PathBuf)> {
        let container = self.container(name)?;
        if container.state.status == Status::Running && container.state.pid > 0 {
            let root = PathBuf::from(format!("/proc/{}/root", container.state.pid));
            let guard = MountedRoot {
                overlay: Overlay::of(&self.container_dir(&container.id)),
                mounted_here: false,
            };
            return Ok((guard, root));
        }
        self.overlay_root(&container)
    }

    /// The container's own root filesystem without its volumes: its overlay, mounted for
    /// as long as the guard lives unless it already was.
    pub(crate) fn overlay_root(&self, container: &Container) -> Result<(MountedRoot, PathBuf)> {
        let overlay = Overlay::of(&self.container_dir(&container.id));
        let mounted_here = !overlay.is_mounted();
        let image = self.images.resolve(&container.image_id)?;
        overlay.mount(&self.images.layer_dirs(&image))?;
        let target = overlay.target.clone();
        Ok((
            MountedRoot {
                overlay,
                mounted_here,
            },
            target,
        ))
    }

    /// The stat of `path` in the container and a tar of it (`GET …/archive`).
    pub fn copy_from(&self, name: &str, path: &str) -> Result<(PathStat, Vec<u8>)> {
        let (_root, rootfs) = self.mounted_root(name)?;
        let opened = open_in_root(&rootfs, path)?;
        let stat = path_stat(&opened, path)?;
        let source = format!("/proc/self/fd/{}", opened.as_raw_fd());
        let mut builder = tar::Builder::new(Vec::new());
        builder.follow_symlinks(false);
        // The magic link itself must never be archived (it would become a symlink to the
        // host's path): a directory is walked from `…/fd/N/.`, a file read from a
        // descriptor opened through it.
        let appended = if stat.name == "/" {
            // The root has no name of its own: its entries go in by theirs, as Docker's.
            append_root(&mut builder, Path::new(&format!("{source}/.")))
        } else if stat.mode & (1 << 31) != 0 {
            builder.append_dir_all(&stat.name, format!("{source}/."))
        } else {
            std::fs::File::open(&source).and_then(|mut file| {
                let mut header = tar::Header::new_gnu();
                header.set_metadata(&file.metadata()?);
                builder.append_data(&mut header, &stat.name, &mut file)
            })
        };
        appended
            .and_then(|()| builder.into_inner())
            .map(|tar| (stat, tar))
            .map_err(|e| Error::Io(PathBuf::from(path), e))
    }

    /// The stat of `path` in the container (`HEAD …/archive`).
    pub fn stat_path(&self, name: &str, path: &str) -> Result<PathStat> {
        let (_root, rootfs) = self.mounted_root(name)?;
        path_stat(&open_in_root(&rootfs, path)?, path)
    }

    /// Extracts a tar into directory `path` of the container (`PUT …/archive`).
    pub fn copy_into(&self, name: &str, path: &str, tar: impl std::io::Read) -> Result<()> {
        let (_root, rootfs) = self.mounted_root(name)?;
        let opened = open_in_root(&rootfs, path)?;
        if path_stat(&opened, path)?.mode & (1 << 31) == 0 {
            return Err(Error::Invalid(format!(
                "extraction point is not a directory: {path}"
            )));
        }
        let target = PathBuf::from(format!("/proc/self/fd/{}", opened.as_raw_fd()));
        berth_image::extract_into(tar, &target).map_err(Error::from)
    }
}

/// Kernel filesystems a running container has mounted at these paths: archived as
/// empty directories, as Docker, which never sees them, archives them.
const KERNEL_MOUNTS: &[&str] = &["dev", "proc", "sys"];

/// Appends everything under a container's root `root` to `builder`, by names relative to
/// it, in name order.
pub(crate) fn append_root<W: std::io::Write>(
    builder: &mut tar::Builder<W>,
    root: &Path,
) -> std::io::Result<()> {
    let mut names: Vec<_> = std::fs::read_dir(root)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()?;
    names.sort();
    for name in names {
        let source = root.join(&name);
        if KERNEL_MOUNTS.iter().any(|k| name == *k) {
            builder.append_dir(&name, &source)?;
        } else if source.symlink_metadata()?.is_dir() {
            builder.append_dir_all(&name, &source)?;
        } else {
            builder.append_path_with_name(&source, &name)?;
        }
    }
    Ok(())
}

/// Opens `path` of the container with `rootfs` as `/` for every symlink on the way.
fn open_in_root(rootfs: &Path, path: &str) -> Result<OwnedFd> {
    let root = std::fs::File::open(rootfs).map_err(|e| Error::Io(rootfs.to_path_buf(), e))?;
    match berth_image::open_in_root(&root, path, libc::O_PATH) {
        Ok(fd) => Ok(fd),
        Err(nix::errno::Errno::ENOENT) => Err(Error::NoSuchPath(path.to_string())),
        Err(e) => Err(Error::Io(PathBuf::from(path), e.into())),
    }
}

fn path_stat(opened: &OwnedFd, path: &str) -> Result<PathStat> {
    let stat = nix::sys::stat::fstat(opened.as_raw_fd())
        .map_err(|e| Error::Io(PathBuf::from(path), e.into()))?;
    let is_dir = stat.st_mode & libc::S_IFMT == libc::S_IFDIR;
    let name = Path::new(path)
        .file_name()
        .map_or_else(|| "/".to_string(), |n| n.to_string_lossy().into_owned());
    let mtime = std::time::UNIX_EPOCH + std::time::Duration::from_secs(stat.st_mtime.max(0) as u64);
    Ok(PathStat {
        name,
        size: stat.st_size as u64,
        mode: (stat.st_mode & 0o7777) | if is_dir { 1 << 31 } else { 0 },
        mtime: berth_runtime::state::rfc3339(mtime),
        link_target: String::new(),
    })
}
