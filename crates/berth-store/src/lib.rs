//! A revisioned key-value store with watch, in the etcd v3 model: an embedded SQLite
//! backend by default and a real etcd backend for clusters that outgrow one server.
//!
//! Depends on nothing of ours; the API server is its only user.

/// Prefix under which the API server keeps its objects, as kube-apiserver does in etcd.
pub const KEY_PREFIX: &str = "/registry/";

#[cfg(test)]
mod tests {
    #[test]
    fn key_prefix_is_a_directory() {
        assert!(
            super::KEY_PREFIX.starts_with(char::from(b'/'))
                && super::KEY_PREFIX.ends_with(char::from(b'/'))
        );
    }
}
