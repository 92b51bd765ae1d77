//! The single-host container engine: containers, images, networks and volumes, the
//! container monitor, restart policies, health checks, logs, stats and events. A library
//! with no HTTP in it; the Docker API crate serves it.
//!
//! Depends on berth-runtime, berth-image and berth-net.

/// Default directory for state that must survive a reboot.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/berth";
/// Default directory for state that lives only as long as the boot (sockets, pid files).
pub const DEFAULT_RUN_DIR: &str = "/run/berth";

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
