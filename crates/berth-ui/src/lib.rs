//! The web dashboard: its built assets and the HTTP handlers that serve them.
//!
//! Depends on nothing of ours.

/// The URL path under which the dashboard is served.
pub const MOUNT_PATH: &str = "/ui/";

#[cfg(test)]
mod tests {
    #[test]
    fn mount_path_is_rooted() {
        assert!(super::MOUNT_PATH.starts_with(char::from(b'/')));
    }
}
