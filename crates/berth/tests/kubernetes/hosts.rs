//! Test machines on one network: a switch (a network namespace holding a bridge) and
//! hosts (network namespaces) each plugged into it by a veth pair, as machines on one
//! LAN. A host's cable can be pulled and plugged back in to make a partition. Traffic
//! stays on these namespaces: none of them has a route anywhere else.

use std::process::Command;

use berth_testkit::guard::NetnsGuard;

/// The hosts' network: 10.203.0.0/24.
const PREFIX: &str = "10.203.0";

/// The switch; dropping it after its hosts removes every link.
pub(crate) struct Switch {
    ns: NetnsGuard,
}

/// A machine on the switch: its own network namespace, its address on the LAN, and the
/// switch port its cable is plugged into.
pub(crate) struct Host {
    ns: NetnsGuard,
    address: String,
    port: String,
}

impl Switch {
    /// A switch named after `label` and this process, with its bridge up.
    pub(crate) fn create(label: &str) -> Self {
        let ns = NetnsGuard::create(&format!("berth-{label}-sw-{}", std::process::id())).unwrap();
        ip(&["-n", ns.name(), "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", ns.name(), "link", "set", "br0", "up"]);
        Self { ns }
    }

    /// A new host plugged into switch port `number` (1–250), addressed 10.203.0.`number`;
    /// its end of the cable is `eth0`.
    pub(crate) fn plug(&self, label: &str, number: u8) -> Host {
        let ns =
            NetnsGuard::create(&format!("berth-{label}-{number}-{}", std::process::id())).unwrap();
        let port = format!("port{number}");
        let switch = self.ns.name();
        // Made in the switch with its other end straight in the host: no name is ever
        // taken in the machine's own namespace.
        ip(&[
            "-n",
            switch,
            "link",
            "add",
            &port,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            ns.name(),
        ]);
        ip(&["-n", switch, "link", "set", &port, "master", "br0", "up"]);
        let address = format!("{PREFIX}.{number}");
        ip(&[
            "-n",
            ns.name(),
            "addr",
            "add",
            &format!("{address}/24"),
            "dev",
            "eth0",
        ]);
        ip(&["-n", ns.name(), "link", "set", "eth0", "up"]);
        Host { ns, address, port }
    }

    /// Pulls `host`'s cable: nothing reaches it or leaves it until [`Switch::reconnect`].
    pub(crate) fn disconnect(&self, host: &Host) {
        ip(&["-n", self.ns.name(), "link", "set", &host.port, "down"]);
    }

    /// Plugs `host`'s cable back in.
    pub(crate) fn reconnect(&self, host: &Host) {
        ip(&["-n", self.ns.name(), "link", "set", &host.port, "up"]);
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
