//! The few rtnetlink requests container networking needs, over a blocking netlink socket:
//! the messages are rtnetlink's builders, the socket is created in the calling thread's
//! network namespace and stays bound to it.

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

use rtnetlink::packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkMessage,
    NetlinkPayload,
};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::link::{InfoData, InfoVeth};
use rtnetlink::sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use rtnetlink::{
    AddressMessageBuilder, LinkBridge, LinkBridgePort, LinkMessageBuilder, LinkUnspec, LinkVeth,
    RouteMessageBuilder,
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
        let mut packet = NetlinkMessage::from(message);
        packet.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        self.sequence += 1;
        packet.header.sequence_number = self.sequence;
        packet.finalize();
        let mut buffer = vec![0; packet.buffer_len()];
        packet.serialize(&mut buffer);
        self.socket
            .send(&buffer, 0)
            .or_os(|| format!("{what}: send"))?;
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
                if let NetlinkPayload::Error(error) = reply.payload
                    && reply.header.sequence_number == self.sequence
                {
                    return match error.code {
                        None => Ok(()),
                        Some(code) => Err(std::io::Error::from_raw_os_error(-code.get()))
                            .or_os(|| what.to_string()),
                    };
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
