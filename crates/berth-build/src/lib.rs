//! Dockerfile builds: parses a Dockerfile, runs its steps through berth-engine with a
//! layer cache, and commits the result as an image.
//!
//! Depends on berth-engine and berth-image.

/// The file name a build context is searched for when none is given, as `docker build` does.
pub const DEFAULT_DOCKERFILE: &str = "Dockerfile";

#[cfg(test)]
mod tests {
    #[test]
    fn default_dockerfile_is_a_plain_file_name() {
        assert!(!super::DEFAULT_DOCKERFILE.contains(std::path::MAIN_SEPARATOR));
    }
}
