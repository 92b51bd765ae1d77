//! A container's root filesystem: an overlayfs over its image's unpacked layers, with a
//! private upper directory for what the container writes.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The directories of one container's overlay.
pub(crate) struct Overlay {
    /// Where the root filesystem is mounted.
    pub target: PathBuf,
    upper: PathBuf,
    work: PathBuf,
}

impl Overlay {
    /// The overlay of the container whose directory is `dir`.
    pub(crate) fn of(dir: &Path) -> Self {
        Self {
            target: dir.join("rootfs"),
            upper: dir.join("upper"),
            work: dir.join("work"),
        }
    }

    /// Mounts `layers` (bottom first) under the upper directory at the target.
    pub(crate) fn mount(&self, layers: &[PathBuf]) -> Result<()> {
        for dir in [&self.target, &self.upper, &self.work] {
            std::fs::create_dir_all(dir).map_err(|e| Error::Io(dir.clone(), e))?;
        }
        if self.is_mounted() {
            return Ok(());
        }
        // overlayfs lists lower directories top first.
        let lower: Vec<String> = layers
            .iter()
            .rev()
            .map(|l| l.display().to_string())
            .collect();
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.join(":"),
            self.upper.display(),
            self.work.display()
        );
        nix::mount::mount(
            Some("overlay"),
            &self.target,
            Some("overlay"),
            nix::mount::MsFlags::empty(),
            Some(options.as_str()),
        )
        .map_err(|e| Error::Io(self.target.clone(), e.into()))
    }

    /// Unmounts the root filesystem if it is mounted.
    pub(crate) fn unmount(&self) -> Result<()> {
        if !self.is_mounted() {
            return Ok(());
        }
        nix::mount::umount2(&self.target, nix::mount::MntFlags::MNT_DETACH)
            .map_err(|e| Error::Io(self.target.clone(), e.into()))
    }

    /// The directory that holds what the container wrote.
    pub(crate) fn upper(&self) -> &Path {
        &self.upper
    }

    /// Whether the root filesystem is mounted at the target.
    pub(crate) fn is_mounted(&self) -> bool {
        let target = self.target.display().to_string();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .any(|line| line.split(' ').nth(4) == Some(target.as_str()))
    }
}

/// An image's filesystem for reading (a build's `COPY --from`): its layers stacked in a
/// read-only overlay, unmounted when dropped. One layer is its own directory, unmounted;
/// no layer is an empty directory.
pub struct ImageRoot {
    dir: tempfile::TempDir,
    path: PathBuf,
    mounted: bool,
}

impl ImageRoot {
    /// Stacks `layers` (bottom first) on a new directory under `parent`.
    pub(crate) fn mount(layers: &[PathBuf], parent: &Path) -> Result<Self> {
        std::fs::create_dir_all(parent).map_err(|e| Error::Io(parent.to_path_buf(), e))?;
        let dir = tempfile::Builder::new()
            .prefix("image-root-")
            .tempdir_in(parent)
            .map_err(|e| Error::Io(parent.to_path_buf(), e))?;
        let (path, mounted) = match layers {
            [] => (dir.path().to_path_buf(), false),
            [only] => (only.clone(), false),
            _ => {
                let lower: Vec<String> = layers
                    .iter()
                    .rev()
                    .map(|l| l.display().to_string())
                    .collect();
                let options = format!("lowerdir={}", lower.join(":"));
                nix::mount::mount(
                    Some("overlay"),
                    dir.path(),
                    Some("overlay"),
                    nix::mount::MsFlags::MS_RDONLY,
                    Some(options.as_str()),
                )
                .map_err(|e| Error::Io(dir.path().to_path_buf(), e.into()))?;
                (dir.path().to_path_buf(), true)
            }
        };
        Ok(Self { dir, path, mounted })
    }

    /// The root of the image's filesystem.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ImageRoot {
    fn drop(&mut self) {
        if self.mounted {
            let _ = nix::mount::umount2(self.dir.path(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}
