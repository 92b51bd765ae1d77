//! The Docker Engine API over berth-engine: the server the daemon exposes on its unix
//! socket, and the client the `berth` CLI uses, so `docker` and its SDKs work unchanged.
//!
//! Depends on berth-engine, berth-build, berth-registry and berth-ui.

/// Oldest Docker Engine API version we answer.
pub const MIN_API_VERSION: (u32, u32) = (1, 41);
/// Newest Docker Engine API version we negotiate up to (what docker 28 asks for).
pub const MAX_API_VERSION: (u32, u32) = (1, 50);

#[cfg(test)]
mod tests {
    #[test]
    fn negotiation_range_is_not_empty() {
        assert!(super::MIN_API_VERSION <= super::MAX_API_VERSION);
    }
}
