//! The node agent, the kubelet of Berth. It joins a cluster with a token alone
//! ([`join`]); today it runs simulated nodes only: they register, heartbeat their Leases
//! and report the pods bound to them as running. Real
//! pods come next: run through berth-engine, probed, reported, with Service rules through
//! berth-net.
//!
//! Depends on nothing of ours yet (berth-engine and berth-net when real pods land), and on
//! the Kubernetes API as a client.

pub mod join;
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
