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
