//! The nftables table of one engine: outbound NAT for its networks, isolation between
//! them, and published ports (DNAT through two maps, so publishing or withdrawing a
//! container's ports is one element change, not a rule rewrite). Rulesets go to the
//! `nft` binary in single transactions.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use ipnet::Ipv4Net;

use crate::{Context, Error, Result};

/// `tcp` or `udp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// Docker's and nft's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// One published port: traffic to `host_port` (on `host_ip`, or on every address of the
/// host) goes to `container_port` of `container_ip`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    /// The host address it answers on; None for all of them.
    pub host_ip: Option<Ipv4Addr>,
    /// The host port.
    pub host_port: u16,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The container's address.
    pub container_ip: Ipv4Addr,
    /// The container's port.
    pub container_port: u16,
}

impl PortMapping {
    /// The map and the element this mapping is in the table.
    fn element(&self) -> (&'static str, String) {
        let target = format!("{} . {}", self.container_ip, self.container_port);
        match self.host_ip {
            Some(ip) => (
                "published_on",
                format!(
                    "{ip} . {} . {} : {target}",
                    self.protocol.as_str(),
                    self.host_port
                ),
            ),
            None => (
                "published",
                format!("{} . {} : {target}", self.protocol.as_str(), self.host_port),
            ),
        }
    }
}

/// The rules one network needs: its subnet masqueraded on the way out, loopback traffic
/// to published ports masqueraded on the way in, and no traffic to other networks.
#[derive(Debug, Clone)]
pub struct NetworkRules {
    /// The bridge.
    pub bridge: String,
    /// The network's subnet.
    pub subnet: Ipv4Net,
    /// No way out of the host (`--internal`).
    pub internal: bool,
    /// Destinations reached without NAT (the cluster's pod range, routed between nodes).
    pub routed: Option<Ipv4Net>,
}

/// The table of one engine.
#[derive(Debug, Clone)]
pub struct Firewall {
    table: String,
}

impl Firewall {
    /// Makes sure the table `table` and its chains exist, with its port maps holding just
    /// `mappings` (the ports of the containers that still run), and lets the host forward
    /// packets.
    pub fn install(table: &str, mappings: &[PortMapping]) -> Result<Self> {
        let firewall = Self {
            table: table.to_string(),
        };
        let t = &firewall.table;
        let mut script = format!(
            "table ip {t} {{
  map published {{ type inet_proto . inet_service : ipv4_addr . inet_service; }}
  map published_on {{ type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }}
  chain publish {{
    dnat ip to ip daddr . meta l4proto . th dport map @published_on
    dnat ip to meta l4proto . th dport map @published
  }}
  chain prerouting {{ type nat hook prerouting priority dstnat; policy accept; fib daddr type local jump publish; }}
  chain output {{ type nat hook output priority -100; policy accept; fib daddr type local jump publish; }}
  chain postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}
  chain forward {{ type filter hook forward priority filter; policy accept; }}
}}
flush map ip {t} published
flush map ip {t} published_on
"
        );
        for mapping in mappings {
            let (map, element) = mapping.element();
            let _ = writeln!(script, "add element ip {t} {map} {{ {element} }}");
        }
        nft(&script)?;
        crate::sysctl("net/ipv4/ip_forward", "1")?;
        Ok(firewall)
    }

    /// Rewrites the per-network rules for exactly `networks`.
    pub fn set_networks(&self, networks: &[NetworkRules]) -> Result<()> {
        let t = &self.table;
        let mut script = format!("flush chain ip {t} postrouting\nflush chain ip {t} forward\n");
        let bridges: Vec<String> = networks
            .iter()
            .map(|n| format!("\"{}\"", n.bridge))
            .collect();
        for network in networks {
            let (bridge, subnet) = (&network.bridge, network.subnet);
            let _ = writeln!(
                script,
                "add rule ip {t} postrouting ip saddr 127.0.0.0/8 oifname \"{bridge}\" masquerade"
            );
            if network.internal {
                let _ = writeln!(
                    script,
                    "add rule ip {t} forward iifname \"{bridge}\" oifname != \"{bridge}\" drop"
                );
                continue;
            }
            let routed = network
                .routed
                .map(|range| format!("ip daddr != {range} "))
                .unwrap_or_default();
            let _ = writeln!(
                script,
                "add rule ip {t} postrouting ip saddr {subnet} {routed}oifname != \"{bridge}\" masquerade"
            );
            let others: Vec<&String> = bridges
                .iter()
                .filter(|b| **b != format!("\"{bridge}\""))
                .collect();
            if !others.is_empty() {
                let others: Vec<&str> = others.iter().map(|b| b.as_str()).collect();
                let _ = writeln!(
                    script,
                    "add rule ip {t} forward iifname \"{bridge}\" oifname {{ {} }} drop",
                    others.join(", ")
                );
            }
        }
        nft(&script)
    }

    /// Sends the host ports of `mappings` to their containers.
    pub fn publish(&self, mappings: &[PortMapping]) -> Result<()> {
        self.elements("add", mappings)
    }

    /// Withdraws `mappings`.
    pub fn unpublish(&self, mappings: &[PortMapping]) -> Result<()> {
        self.elements("delete", mappings)
    }

    fn elements(&self, verb: &str, mappings: &[PortMapping]) -> Result<()> {
        if mappings.is_empty() {
            return Ok(());
        }
        let mut script = String::new();
        for mapping in mappings {
            let (map, element) = mapping.element();
            let _ = writeln!(
                script,
                "{verb} element ip {} {map} {{ {element} }}",
                self.table
            );
        }
        nft(&script)
    }

    /// Deletes the whole table.
    pub fn remove(&self) -> Result<()> {
        nft(&format!("delete table ip {}\n", self.table))
    }
}

/// Runs one `nft` transaction.
pub(crate) fn nft(script: &str) -> Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .or_os(|| "run nft (is the nftables package installed?)".into())?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .or_os(|| "write to nft".into())?;
    }
    let output = child.wait_with_output().or_os(|| "wait for nft".into())?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::Nft(
            String::from_utf8_lossy(&output.stderr).trim().to_string(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_become_elements_of_the_right_map() {
        let mut mapping = PortMapping {
            host_ip: None,
            host_port: 8080,
            protocol: Protocol::Tcp,
            container_ip: Ipv4Addr::new(172, 17, 0, 2),
            container_port: 80,
        };
        assert_eq!(
            mapping.element(),
            ("published", "tcp . 8080 : 172.17.0.2 . 80".to_string())
        );
        mapping.host_ip = Some(Ipv4Addr::LOCALHOST);
        mapping.protocol = Protocol::Udp;
        assert_eq!(
            mapping.element(),
            (
                "published_on",
                "127.0.0.1 . udp . 8080 : 172.17.0.2 . 80".to_string()
            )
        );
    }
}
