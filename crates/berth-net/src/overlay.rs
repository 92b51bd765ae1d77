//! Pod traffic to nodes on no shared link, as flannel's VXLAN backend carries it: one
//! VXLAN device per node (VNI 1, UDP 8472, learning off), addressed with the first
//! address of the node's pod range; another node's range is routed through that node's
//! first address on the device (on-link), whose neighbour entry names the node's device
//! MAC and whose forwarding entry sends frames for that MAC to the node's address. A
//! node's device MAC is made from its address, so no node has to publish it (flannel
//! writes it into a Node annotation).

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::netlink::{Netlink, index_of};
use crate::{Context, Result};

/// The VXLAN device: flannel's is `flannel.1`.
pub const VXLAN_DEVICE: &str = "berth.vxlan";

/// The bytes VXLAN adds to each packet (outer IPv4, UDP, VXLAN and Ethernet headers):
/// the device's MTU is its underlay's less this.
pub const VXLAN_OVERHEAD: u32 = 50;

/// flannel's network identifier and port, so captures and firewalls see what they
/// expect.
const VNI: u32 = 1;
const PORT: u16 = 8472;

/// The VXLAN device MAC of the node at `node`.
pub fn vxlan_mac(node: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = node.octets();
    [0x0e, 0xb7, a, b, c, d]
}

/// Whether `address` is on a network one of this namespace's interfaces is on, so it
/// is reached without a router (host-gw can route through it).
pub fn on_a_shared_link(address: Ipv4Addr) -> Result<bool> {
    let interfaces =
        nix::ifaddrs::getifaddrs().or_os(|| "list the interfaces' addresses".into())?;
    let networks: Vec<(Ipv4Addr, Ipv4Addr)> = interfaces
        .filter_map(|interface| {
            let own = interface.address?.as_sockaddr_in()?.ip();
            let mask = interface.netmask?.as_sockaddr_in()?.ip();
            Some((own, mask))
        })
        .collect();
    Ok(in_one_of(address, &networks))
}

/// Whether `address` is in one of the networks given as (an address, its netmask).
fn in_one_of(address: Ipv4Addr, networks: &[(Ipv4Addr, Ipv4Addr)]) -> bool {
    networks.iter().any(|(own, mask)| {
        let mask = u32::from(*mask);
        u32::from(*own) & mask == u32::from(address) & mask
    })
}

/// Makes sure the VXLAN device is there and up, carried over the interface holding
/// `node` (this node's address) and addressed with the first address of `range` (this
/// node's pod range); its MTU is that interface's less [`VXLAN_OVERHEAD`].
pub fn ensure_vxlan(node: Ipv4Addr, range: Ipv4Net) -> Result<()> {
    let mut netlink = Netlink::open()?;
    if index_of(VXLAN_DEVICE).is_err() {
        let (underlay, mtu) = interface_holding(node)?;
        let device = (index_of(&underlay)?, node);
        let mtu = mtu.saturating_sub(VXLAN_OVERHEAD);
        netlink.add_vxlan(VXLAN_DEVICE, (VNI, PORT), device, vxlan_mac(node), mtu)?;
    }
    let index = index_of(VXLAN_DEVICE)?;
    netlink.add_address(index, range.network(), 32)?;
    netlink.set_up(index)
}

/// Routes the pod range `range` of the node at `node` through the VXLAN device,
/// replacing whatever route to it there was.
pub fn route_pods_over_vxlan(range: Ipv4Net, node: Ipv4Addr) -> Result<()> {
    let mut netlink = Netlink::open()?;
    let index = index_of(VXLAN_DEVICE)?;
    let (vtep, mac) = (range.network(), vxlan_mac(node));
    netlink.replace_neighbour(index, vtep, mac)?;
    netlink.replace_forwarding(index, mac, node)?;
    netlink.replace_route_onlink(range, vtep, index)
}

/// The name and MTU of the interface that holds `address`.
fn interface_holding(address: Ipv4Addr) -> Result<(String, u32)> {
    let interfaces =
        nix::ifaddrs::getifaddrs().or_os(|| "list the interfaces' addresses".into())?;
    let name = interfaces
        .into_iter()
        .find(|i| {
            i.address
                .as_ref()
                .and_then(|a| a.as_sockaddr_in())
                .map(|a| a.ip())
                == Some(address)
        })
        .map(|i| i.interface_name)
        .ok_or_else(|| crate::Error::Invalid(format!("no interface holds {address}")))?;
    let mtu = Netlink::open()?.mtu(index_of(&name)?)?;
    Ok((name, mtu))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_s_mac_is_made_from_its_address_and_locally_administered() {
        let mac = vxlan_mac(Ipv4Addr::new(10, 203, 0, 11));
        assert_eq!(mac, [0x0e, 0xb7, 10, 203, 0, 11]);
        // Locally administered, unicast.
        assert_eq!(mac[0] & 0b11, 0b10);
    }

    #[test]
    fn an_address_is_on_a_shared_link_when_an_interface_s_network_holds_it() {
        let networks = [
            (Ipv4Addr::LOCALHOST, Ipv4Addr::new(255, 0, 0, 0)),
            (
                Ipv4Addr::new(10, 203, 0, 1),
                Ipv4Addr::new(255, 255, 255, 0),
            ),
        ];
        assert!(in_one_of(Ipv4Addr::new(10, 203, 0, 11), &networks));
        assert!(in_one_of(Ipv4Addr::new(127, 0, 0, 9), &networks));
        assert!(!in_one_of(Ipv4Addr::new(10, 204, 0, 11), &networks));
        assert!(!in_one_of(Ipv4Addr::new(10, 203, 1, 1), &networks));
    }
}
