//! Disk usage (`docker system df`): what each container wrote, and what each volume holds,
//! counted in bytes of the files' blocks as `du` counts them.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::Engine;
use crate::model::Container;

/// Bytes the files under `path` take on disk, without following symlinks; what cannot be
/// read counts as nothing.
pub(crate) fn disk_usage(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    let own = meta.blocks() * 512;
    if !meta.is_dir() {
        return own;
    }
    let children = std::fs::read_dir(path).into_iter().flatten().flatten();
    own + children.map(|entry| disk_usage(&entry.path())).sum::<u64>()
}

impl Engine {
    /// Bytes a container wrote over its image (its overlay's upper directory).
    pub fn container_size(&self, container: &Container) -> u64 {
        disk_usage(&self.container_dir(&container.id).join("upper"))
    }

    /// Bytes volume `name` holds, and how many containers use it.
    pub fn volume_usage(&self, name: &str) -> (u64, usize) {
        let size = self.volume(name).map_or(0, |v| disk_usage(&v.mountpoint));
        let users = self
            .containers(true)
            .iter()
            .filter(|c| crate::volumes::uses_volume(c, name))
            .count();
        (size, users)
    }
}
