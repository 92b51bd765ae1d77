//! The few rtnetlink requests container networking needs, over a blocking netlink socket:
//! the messages are rtnetlink's builders, the socket is created in the calling thread's
//! network namespace and stays bound to it.

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

use rtnetlink::packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkMessage,
    NetlinkPayload,
};
use rtnetlink::packet_route::link::{InfoData, InfoVeth, LinkAttribute};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::route::RouteFlags;
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use rtnetlink::{
    AddressMessageBuilder, LinkBridge, LinkBridgePort, LinkMessageBuilder, LinkUnspec, LinkVeth,
    LinkVxlan, RouteMessageBuilder,
};

use crate::{Context, Result};

/// A netlink route socket of the namespace it was opened in.
pub(crate) struct Netlink {
    socket: Socket,
    sequence: u32,
}

/// The index of the interface `name` in the calling thread's network namespace.
pub(crate) fn index_of(name: &str) -> Result<u32> {
    nix::net::if_::if_nametoindex(name).or_os(|| format!("find interface {name}"))
}

impl Netlink {
    pub(crate) fn open() -> Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE).or_os(|| "open a netlink socket".into())?;
        socket
            .bind_auto()
            .or_os(|| "bind a netlink socket".into())?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .or_os(|| "connect a netlink socket".into())?;
        Ok(Self {
            socket,
            sequence: 0,
        })
    }

    /// Sends one request and reads the kernel's acknowledgement.
    fn request(&mut self, message: RouteNetlinkMessage, flags: u16, what: &str) -> Result<()> {
        self.send(message, NLM_F_ACK | flags, what)?;
        self.answer(what, |_| None)
    }

    fn send(&mut self, message: RouteNetlinkMessage, flags: u16, what: &str) -> Result<()> {
        let mut packet = NetlinkMessage::from(message);
        packet.header.flags = NLM_F_REQUEST | flags;
        self.sequence += 1;
        packet.header.sequence_number = self.sequence;
        packet.finalize();
        let mut buffer = vec![0; packet.buffer_len()];
        packet.serialize(&mut buffer);
        self.socket
            .send(&buffer, 0)
            .or_os(|| format!("{what}: send"))?;
        Ok(())
    }

    /// Reads the answers to the last request until `pick` takes one (a reply that
    /// carries data) or the kernel acknowledges or refuses it.
    fn answer<T: Default>(
        &mut self,
        what: &str,
        mut pick: impl FnMut(&RouteNetlinkMessage) -> Option<T>,
    ) -> Result<T> {
        loop {
            let (data, _) = self
                .socket
                .recv_from_full()
                .or_os(|| format!("{what}: receive"))?;
            let mut offset = 0;
            while offset < data.len() {
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[offset..])
                    .map_err(std::io::Error::other)
                    .or_os(|| format!("{what}: read the answer"))?;
                let length = reply.header.length as usize;
                if reply.header.sequence_number == self.sequence {
                    match &reply.payload {
                        NetlinkPayload::Error(error) => {
                            return match error.code {
                                None => Ok(T::default()),
                                Some(code) => Err(std::io::Error::from_raw_os_error(-code.get()))
                                    .or_os(|| what.to_string()),
                            };
                        }
                        NetlinkPayload::InnerMessage(message) => {
                            if let Some(found) = pick(message) {
                                return Ok(found);
                            }
                        }
                        _ => {}
                    }
                }
                if length == 0 {
                    break;
                }
                offset += length;
            }
        }
    }

    /// Adds a bridge; one of that name already there is kept.
    pub(crate) fn add_bridge(&mut self, name: &str) -> Result<()> {
        let message = RouteNetlinkMessage::NewLink(LinkBridge::new(name).build());
        already_there_is_fine(self.request(
            message,
            NLM_F_CREATE | NLM_F_EXCL,
            &format!("add bridge {name}"),
        ))
    }

    /// Adds a veth pair whose peer is made directly inside the namespace `netns` with its
    /// final name and MAC address: moving an interface between namespaces afterwards
    /// costs an RCU grace period (about 20 ms here).
    pub(crate) fn add_veth_into(
        &mut self,
        name: &str,
        netns: &std::fs::File,
        peer: &str,
        mac: [u8; 6],
    ) -> Result<()> {
        let peer_message = LinkMessageBuilder::<LinkUnspec>::new()
            .name(peer.to_string())
            .address(mac.to_vec())
            .setns_by_fd(netns.as_raw_fd())
            .build();
        let message = LinkVeth::new(name, peer)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_message)))
            .build();
        let message = RouteNetlinkMessage::NewLink(message);
        self.request(
            message,
            NLM_F_CREATE | NLM_F_EXCL,
            &format!("add veth pair {name}"),
        )
    }

    /// Adds an address; the same address already there is kept.
    pub(crate) fn add_address(&mut self, index: u32, address: Ipv4Addr, prefix: u8) -> Result<()> {
        let message = AddressMessageBuilder::<Ipv4Addr>::new()
            .index(index)
            .address(address, prefix)
            .build();
        already_there_is_fine(self.request(
            RouteNetlinkMessage::NewAddress(message),
            NLM_F_CREATE | NLM_F_EXCL,
            &format!("add address {address}/{prefix}"),
        ))
    }

    /// Gives a link a fixed MAC address.
    pub(crate) fn set_address(&mut self, index: u32, mac: [u8; 6]) -> Result<()> {
        let message = LinkUnspec::new_with_index(index)
            .address(mac.to_vec())
            .build();
        self.request(
            RouteNetlinkMessage::SetLink(message),
            0,
            "set the MAC address",
        )
    }

    pub(crate) fn set_up(&mut self, index: u32) -> Result<()> {
        let message = LinkUnspec::new_with_index(index).up().build();
        self.request(RouteNetlinkMessage::SetLink(message), 0, "set link up")
    }

    /// Makes the link a port of `bridge`, up, in hairpin mode: a frame may leave by the
    /// port it came in, so a pod reaches itself through its own Service (the kubelet's
    /// `hairpin-veth`).
    pub(crate) fn set_controller_and_up(&mut self, index: u32, bridge: u32) -> Result<()> {
        let message = LinkUnspec::new_with_index(index)
            .controller(bridge)
            .up()
            .build();
        self.request(
            RouteNetlinkMessage::SetLink(message),
            0,
            "attach the veth to its bridge",
        )?;
        let hairpin = LinkBridgePort::new(index).hairpin(true).build();
        self.request(
            RouteNetlinkMessage::NewLink(hairpin),
            0,
            "set the bridge port's hairpin mode",
        )
    }

    pub(crate) fn add_default_route(&mut self, gateway: Ipv4Addr) -> Result<()> {
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(gateway)
            .build();
        self.request(
            RouteNetlinkMessage::NewRoute(route),
            NLM_F_CREATE | NLM_F_EXCL,
            &format!("add the default route via {gateway}"),
        )
    }

    pub(crate) fn add_route_through(
        &mut self,
        destination: ipnet::Ipv4Net,
        index: u32,
    ) -> Result<()> {
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(destination.network(), destination.prefix_len())
            .output_interface(index)
            .build();
        already_there_is_fine(self.request(
            RouteNetlinkMessage::NewRoute(route),
            NLM_F_CREATE | NLM_F_EXCL,
            &format!("add the route to {destination}"),
        ))
    }

    /// Routes `destination` through `gateway`, replacing any route to it there was.
    pub(crate) fn replace_route_via(
        &mut self,
        destination: ipnet::Ipv4Net,
        gateway: Ipv4Addr,
    ) -> Result<()> {
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(destination.network(), destination.prefix_len())
            .gateway(gateway)
            .build();
        self.request(
            RouteNetlinkMessage::NewRoute(route),
            NLM_F_CREATE | NLM_F_REPLACE,
            &format!("route {destination} via {gateway}"),
        )
    }

    /// Deletes the route to `destination`; none there is no error.
    pub(crate) fn delete_route(&mut self, destination: ipnet::Ipv4Net) -> Result<()> {
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(destination.network(), destination.prefix_len())
            .build();
        match self.request(
            RouteNetlinkMessage::DelRoute(route),
            0,
            &format!("delete the route to {destination}"),
        ) {
            Err(crate::Error::Os { source, .. })
                if source.raw_os_error() == Some(nix::errno::Errno::ESRCH as i32) =>
            {
                Ok(())
            }
            other => other,
        }
    }

    /// Adds the VXLAN device `name` with network `vni` on UDP `port`, carried over the
    /// interface `underlay` from its address `local`, with its MAC and MTU; learning
    /// off: its neighbours and forwarding entries are written, never learnt. One of
    /// that name already there is kept.
    pub(crate) fn add_vxlan(
        &mut self,
        name: &str,
        (vni, port): (u32, u16),
        (underlay, local): (u32, Ipv4Addr),
        mac: [u8; 6],
        mtu: u32,
    ) -> Result<()> {
        let message = LinkVxlan::new(name, vni)
            .dev(underlay)
            .local(local)
            .port(port)
            .learning(false)
            .address(mac.to_vec())
            .mtu(mtu)
            .build();
        already_there_is_fine(self.request(
            RouteNetlinkMessage::NewLink(message),
            NLM_F_CREATE | NLM_F_EXCL,
            &format!("add VXLAN device {name}"),
        ))
    }

    /// Writes the permanent neighbour entry: `address` is at `mac` on interface `index`.
    pub(crate) fn replace_neighbour(
        &mut self,
        index: u32,
        address: Ipv4Addr,
        mac: [u8; 6],
    ) -> Result<()> {
        let mut message = NeighbourMessage::default();
        message.header.family = AddressFamily::Inet;
        message.header.ifindex = index;
        message.header.state = NeighbourState::Permanent;
        message.attributes = vec![
            NeighbourAttribute::Destination(NeighbourAddress::Inet(address)),
            NeighbourAttribute::LinkLayerAddress(mac.to_vec()),
        ];
        self.request(
            RouteNetlinkMessage::NewNeighbour(message),
            NLM_F_CREATE | NLM_F_REPLACE,
            &format!("write the neighbour {address}"),
        )
    }

    /// Writes the permanent forwarding entry of the VXLAN device `index`: frames for
    /// `mac` go to `remote` (`bridge fdb replace MAC dev DEVICE dst REMOTE self`).
    pub(crate) fn replace_forwarding(
        &mut self,
        index: u32,
        mac: [u8; 6],
        remote: Ipv4Addr,
    ) -> Result<()> {
        let mut message = NeighbourMessage::default();
        message.header.family = AddressFamily::Bridge;
        message.header.ifindex = index;
        message.header.state = NeighbourState::Permanent;
        message.header.flags = NeighbourFlags::Own;
        message.attributes = vec![
            NeighbourAttribute::LinkLayerAddress(mac.to_vec()),
            NeighbourAttribute::Destination(NeighbourAddress::Inet(remote)),
        ];
        self.request(
            RouteNetlinkMessage::NewNeighbour(message),
            NLM_F_CREATE | NLM_F_REPLACE,
            &format!("write the forwarding entry to {remote}"),
        )
    }

    /// Routes `destination` through `gateway` on interface `index`, the gateway taken
    /// as on the link whatever the interface's addresses say; replaces any route to it.
    pub(crate) fn replace_route_onlink(
        &mut self,
        destination: ipnet::Ipv4Net,
        gateway: Ipv4Addr,
        index: u32,
    ) -> Result<()> {
        let mut route = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(destination.network(), destination.prefix_len())
            .gateway(gateway)
            .output_interface(index)
            .build();
        route.header.flags |= RouteFlags::Onlink;
        self.request(
            RouteNetlinkMessage::NewRoute(route),
            NLM_F_CREATE | NLM_F_REPLACE,
            &format!("route {destination} via {gateway} on-link"),
        )
    }

    /// The MTU of interface `index` (read here: /sys/class/net shows the namespace that
    /// mounted /sys, not the caller's).
    pub(crate) fn mtu(&mut self, index: u32) -> Result<u32> {
        let message = LinkUnspec::new_with_index(index).build();
        let what = "read an interface's MTU";
        self.send(RouteNetlinkMessage::GetLink(message), 0, what)?;
        let mtu = self.answer(what, |message| match message {
            RouteNetlinkMessage::NewLink(link) => link.attributes.iter().find_map(|a| match a {
                LinkAttribute::Mtu(mtu) => Some(Some(*mtu)),
                _ => None,
            }),
            _ => None,
        })?;
        mtu.ok_or_else(|| crate::Error::Invalid(format!("interface {index} has no MTU")))
    }

    pub(crate) fn delete_link(&mut self, index: u32) -> Result<()> {
        let message = LinkUnspec::new_with_index(index).build();
        self.request(RouteNetlinkMessage::DelLink(message), 0, "delete link")
    }
}

/// EEXIST as success: for requests that make sure something is there.
fn already_there_is_fine(result: Result<()>) -> Result<()> {
    match result {
        Err(crate::Error::Os { source, .. })
            if source.raw_os_error() == Some(nix::errno::Errno::EEXIST as i32) =>
        {
            Ok(())
        }
        other => other,
    }
}
