//! Host networking for containers and Services: bridges, veth pairs, IPAM, nftables rules
//! (outbound NAT, port publishing, Service virtual IPs), routes and the DNS server.
//!
//! Synchronous on purpose: each operation is a handful of netlink requests or one `nft`
//! transaction, made from the engine's blocking threads; network namespaces are entered
//! on threads of their own, which a blocking API makes simple and safe.
//!
//! Depends on nothing of ours; the engine and the node agent drive it.

mod cluster_dns;
pub mod cni;
mod connect_balancer;
mod dns;
mod firewall;
mod ipam;
mod netlink;
pub mod netns;
mod overlay;
mod policy;
mod proxy;

use std::net::Ipv4Addr;
use std::path::Path;

pub use cluster_dns::{ClusterZone, NameTarget, ServiceNames};
pub use connect_balancer::{ConnectBalancer, cgroup2_root};
pub use dns::{Answers, DnsServer, NameTable, Names, host_resolvers};
pub use firewall::{Firewall, NetworkRules, PortMapping, Protocol};
pub use ipam::{Pool, default_subnets, host_routes};
pub use ipnet::Ipv4Net;
pub use overlay::{
    VXLAN_DEVICE, VXLAN_OVERHEAD, ensure_vxlan, on_a_shared_link, route_pods_over_vxlan, vxlan_mac,
};
pub use policy::{Allowance, Isolation, Peer, PolicyFirewall, PolicyRules, PortRange};
pub use proxy::{Endpoint, ServiceProxy, ServiceRoute};

/// Name of the default bridge that containers attach to, like Docker's `docker0`.
pub const DEFAULT_BRIDGE: &str = "berth0";

/// Longest name the kernel accepts for a network interface (IFNAMSIZ less the NUL).
pub const MAX_INTERFACE_NAME: usize = 15;

/// Why a network operation failed, naming what it was doing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call or netlink request failed.
    #[error("{what}: {source}")]
    Os {
        /// What was being done.
        what: String,
        /// The kernel's answer.
        source: std::io::Error,
    },
    /// The request itself is wrong or cannot be met (a full subnet, a bad address).
    #[error("{0}")]
    Invalid(String),
    /// `nft` refused a ruleset.
    #[error("nft: {0}")]
    Nft(String),
    /// A CNI plugin failed, in its own words.
    #[error("plugin type={plugin:?} failed ({operation}): {message}")]
    Cni {
        /// Its type.
        plugin: String,
        /// ADD, CHECK or DEL.
        operation: &'static str,
        /// What it said.
        message: String,
    },
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<berth_bpf::Error> for Error {
    fn from(error: berth_bpf::Error) -> Self {
        Self::Os {
            what: error.what,
            source: error.source,
        }
    }
}

pub(crate) trait Context<T> {
    fn or_os(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: Into<std::io::Error>> Context<T> for std::result::Result<T, E> {
    fn or_os(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::Os {
            what: what(),
            source: e.into(),
        })
    }
}

/// How a container's end of a veth pair is set up inside its network namespace.
#[derive(Debug, Clone)]
pub struct Interface {
    /// The host end's name (attached to the bridge).
    pub host_name: String,
    /// The name inside: `eth0` for a container's first network, `eth1`… for the networks
    /// it is connected to besides.
    pub name: String,
    /// Its address in the network.
    pub address: Ipv4Addr,
    /// The network's prefix length.
    pub prefix: u8,
    /// The default route's gateway (the bridge's address); None on an interface beside
    /// the first, which reaches only its own subnet.
    pub gateway: Option<Ipv4Addr>,
    /// Its MAC address.
    pub mac: [u8; 6],
}

/// Makes sure a bridge named `name` exists, holds `gateway/prefix` and is up; packets
/// from 127.0.0.0/8 may leave through it (`route_localnet`), which lets published
/// ports answer on the host's loopback without a userspace proxy.
///
/// Its MAC address is fixed, made from the gateway's address as containers' are from
/// theirs: a bridge left to itself takes the lowest MAC of its ports, so a container
/// joining would change it under the other containers' ARP caches, and the gateway
/// (their DNS server among others) would be out of their reach until those expire.
pub fn ensure_bridge(name: &str, gateway: Ipv4Addr, prefix: u8) -> Result<()> {
    let mut netlink = netlink::Netlink::open()?;
    netlink.add_bridge(name)?;
    let index = netlink::index_of(name)?;
    let [a, b, c, d] = gateway.octets();
    netlink.set_address(index, [0x02, 0x42, a, b, c, d])?;
    netlink.add_address(index, gateway, prefix)?;
    netlink.set_up(index)?;
    sysctl(&format!("net/ipv4/conf/{name}/route_localnet"), "1")
}

/// Removes a network interface (a bridge, or the host end of a veth pair); one that is
/// already gone is no error.
pub fn delete_link(name: &str) -> Result<()> {
    let mut netlink = netlink::Netlink::open()?;
    match netlink::index_of(name) {
        Ok(index) => netlink.delete_link(index),
        Err(_) => Ok(()),
    }
}

/// Wires the network namespace at `netns` to `bridge`: a veth pair whose host end joins
/// the bridge and whose other end is `interface.name` inside, with its address and, when
/// it has a gateway, the default route through the bridge.
pub fn attach(netns: &Path, bridge: &str, interface: &Interface) -> Result<()> {
    let namespace = std::fs::File::open(netns).or_os(|| format!("open {}", netns.display()))?;
    let mut host = netlink::Netlink::open()?;
    host.add_veth_into(
        &interface.host_name,
        &namespace,
        &interface.name,
        interface.mac,
    )?;
    let wired = (|| {
        let host_index = netlink::index_of(&interface.host_name)?;
        host.set_controller_and_up(host_index, netlink::index_of(bridge)?)?;
        let Interface {
            name,
            address,
            prefix,
            gateway,
            ..
        } = interface.clone();
        netns::run_in(netns, move || {
            let mut inside = netlink::Netlink::open()?;
            let index = netlink::index_of(&name)?;
            inside.add_address(index, address, prefix)?;
            inside.set_up(index)?;
            match gateway {
                Some(gateway) => inside.add_default_route(gateway),
                None => Ok(()),
            }
        })
    })();
    if wired.is_err() {
        let _ = delete_link(&interface.host_name);
    }
    wired
}

/// Routes the namespace at `netns` out through `gateway`, the address of a network one
/// of its interfaces is on: when the interface that held the default route has gone.
pub fn set_default_route(netns: &Path, gateway: Ipv4Addr) -> Result<()> {
    netns::run_in(netns, move || {
        netlink::Netlink::open()?.add_default_route(gateway)
    })
}

/// Routes `destination` out through the link `name`, unless a route to it is there: the
/// Service range through the pods' bridge, so the node reaches cluster IPs (which only
/// its nftables rules give a meaning) whether or not it has a default route.
pub fn route_through(destination: Ipv4Net, name: &str) -> Result<()> {
    let mut netlink = netlink::Netlink::open()?;
    let index = netlink::index_of(name)?;
    netlink.add_route_through(destination, index)
}

/// Routes another node's pod range through that node's address (flannel's host-gw),
/// replacing whatever route to it there was.
pub fn route_pods_via(range: Ipv4Net, node: Ipv4Addr) -> Result<()> {
    netlink::Netlink::open()?.replace_route_via(range, node)
}

/// Takes the route to a pod range out (its node is gone); none there is no error.
pub fn unroute_pods(range: Ipv4Net) -> Result<()> {
    netlink::Netlink::open()?.delete_route(range)
}

/// Makes `address` one of the host's own on the link `name` (as a /32), so packets to
/// it are delivered to the host wherever they come from: the cluster DNS address that
/// each node serves itself, as NodeLocal DNSCache binds its address.
pub fn add_local_address(address: Ipv4Addr, name: &str) -> Result<()> {
    let mut netlink = netlink::Netlink::open()?;
    let index = netlink::index_of(name)?;
    netlink.add_address(index, address, 32)
}

/// Sets a sysctl of the calling thread's network namespace (`net/ipv4/ip_forward`).
pub fn sysctl(key: &str, value: &str) -> Result<()> {
    let path = format!("/proc/sys/{key}");
    std::fs::write(&path, value).or_os(|| format!("write {path}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn default_bridge_name_fits_the_kernel_limit() {
        assert!(super::DEFAULT_BRIDGE.len() <= super::MAX_INTERFACE_NAME);
    }
}
