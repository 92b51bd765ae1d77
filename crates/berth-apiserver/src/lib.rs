//! The Kubernetes-compatible API server: authentication, authorization, validation,
//! defaulting, the watch cache, discovery, OpenAPI and subresources, over berth-store.
//!
//! Depends on berth-store and berth-ui.

/// The address `berth server` listens on when none is given (kube-apiserver's secure port).
pub const DEFAULT_BIND: &str = "127.0.0.1:6443";

#[cfg(test)]
mod tests {
    #[test]
    fn default_bind_is_a_socket_address() {
        let addr: std::net::SocketAddr = super::DEFAULT_BIND.parse().expect("valid address");
        assert_eq!(addr.port(), 6443);
    }
}
