//! Host networking for containers and Services: bridges, veth pairs, IPAM, nftables rules
//! (outbound NAT, port publishing, Service virtual IPs), routes and the DNS server.
//!
//! Depends on nothing of ours; the engine and the node agent drive it.

/// Name of the default bridge that containers attach to, like Docker's `docker0`.
pub const DEFAULT_BRIDGE: &str = "berth0";

/// Longest name the kernel accepts for a network interface (IFNAMSIZ less the NUL).
pub const MAX_INTERFACE_NAME: usize = 15;

#[cfg(test)]
mod tests {
    #[test]
    fn default_bridge_name_fits_the_kernel_limit() {
        assert!(super::DEFAULT_BRIDGE.len() <= super::MAX_INTERFACE_NAME);
    }
}
