//! The OCI distribution protocol: a registry server and the client that pushes and pulls.
//!
//! Depends on berth-image.

/// The path prefix of every distribution API route.
pub const API_PREFIX: &str = "/v2/";

#[cfg(test)]
mod tests {
    #[test]
    fn api_prefix_is_rooted_and_versioned() {
        assert!(super::API_PREFIX.starts_with("/v2"));
        assert!(super::API_PREFIX.ends_with(char::from(b'/')));
    }
}
