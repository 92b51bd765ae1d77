//! Test machines on networks: a switch (a network namespace holding a bridge) and hosts
//! (network namespaces) each plugged into it by a veth pair, as machines on one LAN; a
//! router (a namespace forwarding between two switches) joins two LANs. A host's cable
//! can be pulled and plugged back in to make a partition. Traffic stays on these
//! namespaces: none of them has a route anywhere else.

use std::process::Command;

use berth_testkit::guard::NetnsGuard;

/// The switch of one LAN (`prefix.0/24`); dropping it removes every link to it.
pub(crate) struct Switch {
    ns: NetnsGuard,
    prefix: &'static str,
}

/// A router between two switches, at address 254 on each.
pub(crate) struct Router {
    _ns: NetnsGuard,
}

/// A machine on a switch: its own network namespace, its address on the LAN, and the
/// switch port its cable is plugged into.
pub(crate) struct Host {
    ns: NetnsGuard,
    address: String,
    port: String,
}

impl Switch {
    /// A switch for the LAN `prefix.0/24` (`10.203.0`), named `name` and after this
    /// process, with its bridge up.
    pub(crate) fn create(name: &str, prefix: &'static str) -> Self {
        let ns = NetnsGuard::create(&format!("berth-{name}-sw-{}", std::process::id())).unwrap();
        ip(&["-n", ns.name(), "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", ns.name(), "link", "set", "br0", "up"]);
        Self { ns, prefix }
    }

    /// A new host named `name` plugged into switch port `number` (1–250), addressed
    /// `prefix.number`; its end of the cable is `eth0`.
    pub(crate) fn plug(&self, name: &str, number: u8) -> Host {
        let ns =
            NetnsGuard::create(&format!("berth-{name}-{number}-{}", std::process::id())).unwrap();
        let (address, port) = (format!("{}.{number}", self.prefix), format!("port{number}"));
        self.cable(&ns, &port, "eth0", &address);
        Host { ns, address, port }
    }

    /// A router named `name` between this switch and `other`, at address 254 on both.
    pub(crate) fn route_to(&self, other: &Switch, name: &str) -> Router {
        let ns = NetnsGuard::create(&format!("berth-{name}-rt-{}", std::process::id())).unwrap();
        for (switch, device) in [(self, "eth0"), (other, "eth1")] {
            switch.cable(&ns, "router", device, &switch.gateway());
        }
        ip(&[
            "netns",
            "exec",
            ns.name(),
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ]);
        Router { _ns: ns }
    }

    /// The LAN this switch makes, as `a.b.c.0/24`.
    pub(crate) fn network(&self) -> String {
        format!("{}.0/24", self.prefix)
    }

    /// The address of a router on this LAN.
    pub(crate) fn gateway(&self) -> String {
        format!("{}.254", self.prefix)
    }

    /// Pulls `host`'s cable: nothing reaches it or leaves it until [`Switch::reconnect`].
    pub(crate) fn disconnect(&self, host: &Host) {
        ip(&["-n", self.ns.name(), "link", "set", &host.port, "down"]);
    }

    /// Plugs `host`'s cable back in.
    pub(crate) fn reconnect(&self, host: &Host) {
        ip(&["-n", self.ns.name(), "link", "set", &host.port, "up"]);
    }

    /// A cable from switch port `port` to `device` in `ns`, addressed `address`/24.
    fn cable(&self, ns: &NetnsGuard, port: &str, device: &str, address: &str) {
        let switch = self.ns.name();
        // Made in the switch with its other end straight in the host: no name is ever
        // taken in the machine's own namespace.
        ip(&[
            "-n",
            switch,
            "link",
            "add",
            port,
            "type",
            "veth",
            "peer",
            "name",
            device,
            "netns",
            ns.name(),
        ]);
        ip(&["-n", switch, "link", "set", port, "master", "br0", "up"]);
        ip(&[
            "-n",
            ns.name(),
            "addr",
            "add",
            &format!("{address}/24"),
            "dev",
            device,
        ]);
        ip(&["-n", ns.name(), "link", "set", device, "up"]);
    }
}

impl Host {
    /// The host's address on the switch.
    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    /// The host's network namespace.
    pub(crate) fn netns(&self) -> &NetnsGuard {
        &self.ns
    }

    /// Routes `network` through `gateway` (a router on the host's LAN).
    pub(crate) fn route(&self, network: &str, gateway: &str) {
        ip(&[
            "-n",
            self.ns.name(),
            "route",
            "add",
            network,
            "via",
            gateway,
        ]);
    }

    /// `program` run on this host.
    pub(crate) fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net={}", self.ns.path().display()))
            .arg(program);
        command
    }
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().unwrap();
    assert!(status.success(), "ip {args:?}");
}
