//! The single-host container engine: containers, images, networks and volumes, the
//! container monitor, restart policies, health checks, logs, stats and events. A library
//! with no HTTP in it; the Docker API crate serves it.
//!
//! Depends on berth-runtime, berth-image and berth-net.

use std::path::{Path, PathBuf};

use berth_image::ImageStore;

/// Default directory for state that must survive a reboot.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/berth";
/// Default directory for state that lives only as long as the boot (sockets, pid files).
pub const DEFAULT_RUN_DIR: &str = "/run/berth";

/// Why the engine refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// From the image store.
    #[error(transparent)]
    Image(#[from] berth_image::Error),
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where the engine keeps its state.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// State that survives a reboot: images, containers' records, volumes.
    pub data_dir: PathBuf,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
        }
    }
}

/// The engine of one host.
#[derive(Debug)]
pub struct Engine {
    data_dir: PathBuf,
    images: ImageStore,
}

impl Engine {
    /// Opens (or starts) the engine's state under `config.data_dir`.
    pub fn open(config: &EngineConfig) -> Result<Self> {
        Ok(Self {
            data_dir: config.data_dir.clone(),
            images: ImageStore::open(&config.data_dir.join("image"))?,
        })
    }

    /// The image store.
    pub fn images(&self) -> &ImageStore {
        &self.images
    }

    /// The data directory (`docker info`'s DockerRootDir).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn state_dirs_are_absolute_and_distinct() {
        use std::path::Path;
        assert!(Path::new(super::DEFAULT_DATA_DIR).is_absolute());
        assert!(Path::new(super::DEFAULT_RUN_DIR).is_absolute());
        assert_ne!(super::DEFAULT_DATA_DIR, super::DEFAULT_RUN_DIR);
    }
}
