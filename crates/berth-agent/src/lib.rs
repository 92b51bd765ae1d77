//! The node agent: runs the Pods bound to its node through berth-engine, probes them,
//! reports their status and metrics, streams logs, exec and port-forward, and programs
//! Service rules through berth-net.
//!
//! Depends on berth-engine and berth-net, and on the Kubernetes API as a client.

pub mod simulate;

/// How often the agent renews its node Lease, as the kubelet does by default.
pub const LEASE_RENEW_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

#[cfg(test)]
mod tests {
    #[test]
    fn lease_renews_within_the_grace_period() {
        assert!(super::LEASE_RENEW_INTERVAL.as_secs() * 2 <= 20);
    }
}
