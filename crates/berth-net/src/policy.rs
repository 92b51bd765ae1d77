//! NetworkPolicy in the kernel: one nftables table whose forward hook sends new
//! connections from an egress-isolated pod, and to an ingress-isolated one, through a
//! chain of that pod's that returns for what its policies allow and drops the rest.
//! Replies of allowed connections pass on conntrack. The forward hook sees pods'
//! traffic whether it is routed (another node, a Service's DNAT) or bridged between
//! pods of this node (br_netfilter), and never the node's own traffic to its pods, so
//! probes pass as Kubernetes requires.
//!
//! Each apply rewrites the table in one transaction: policies change seldom, and a
//! rewrite never leaves a pod half-isolated.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::Result;
use crate::firewall::{Protocol, nft};

/// Where traffic may come from (ingress) or go to (egress).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// A pod, by its address.
    Pod(Ipv4Addr),
    /// An ipBlock: a range, less its exceptions.
    Block {
        /// The range.
        cidr: Ipv4Net,
        /// What it leaves out.
        except: Vec<Ipv4Net>,
    },
}

/// Ports a rule allows: `first` to `last` of a protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The first port.
    pub first: u16,
    /// The last (the same as the first for one port; a policy's endPort otherwise).
    pub last: u16,
}

/// What one rule of a policy lets through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowance {
    /// From or to these peers; None for any.
    pub peers: Option<Vec<Peer>>,
    /// On these ports; None for all.
    pub ports: Option<Vec<PortRange>>,
}

/// One pod isolated in one direction, and what its policies allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Isolation {
    /// The pod's address.
    pub pod: Ipv4Addr,
    /// What is let through; nothing else is.
    pub allowed: Vec<Allowance>,
}

/// Every isolated pod of this node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyRules {
    /// Pods whose incoming connections policies limit.
    pub ingress: Vec<Isolation>,
    /// Pods whose outgoing connections policies limit.
    pub egress: Vec<Isolation>,
}

/// The node's NetworkPolicy table.
#[derive(Debug)]
pub struct PolicyFirewall {
    table: String,
}

impl PolicyFirewall {
    /// The table `table`, empty of isolation (a previous agent's rules go).
    pub fn install(table: &str) -> Result<Self> {
        let firewall = Self {
            table: table.to_string(),
        };
        firewall.apply(&PolicyRules::default())?;
        Ok(firewall)
    }

    /// Makes the table isolate exactly as `rules` say.
    pub fn apply(&self, rules: &PolicyRules) -> Result<()> {
        nft(&script(&self.table, rules))
    }

    /// Deletes the table: nothing is isolated any more.
    pub fn remove(&self) -> Result<()> {
        nft(&format!("delete table ip {}\n", self.table))
    }
}

/// The transaction that makes table `t` hold `rules`, from whatever it held.
fn script(t: &str, rules: &PolicyRules) -> String {
    let mut script = format!("table ip {t} {{}}\ndelete table ip {t}\n");
    let _ = writeln!(
        script,
        "table ip {t} {{
  map ingress {{ type ipv4_addr : verdict; }}
  map egress {{ type ipv4_addr : verdict; }}
  chain forward {{
    type filter hook forward priority -5; policy accept;
    ct state established,related accept
    ip saddr vmap @egress
    ip daddr vmap @ingress
  }}
}}"
    );
    let directions = [
        ("ingress", "in", "saddr", &rules.ingress),
        ("egress", "out", "daddr", &rules.egress),
    ];
    for (map, prefix, peer_field, isolated) in directions {
        for isolation in isolated {
            let chain = format!("{prefix}-{}", isolation.pod);
            let _ = writeln!(script, "add chain ip {t} {chain}");
            for allowance in &isolation.allowed {
                for rule in allowance_rules(allowance, peer_field) {
                    let _ = writeln!(script, "add rule ip {t} {chain} {rule} return");
                }
            }
            let _ = writeln!(script, "add rule ip {t} {chain} drop");
            let _ = writeln!(
                script,
                "add element ip {t} {map} {{ {} : jump {chain} }}",
                isolation.pod
            );
        }
    }
    script
}

/// The matches of one allowance: one per peer and port range (an ipBlock with
/// exceptions first returns past nothing for them).
fn allowance_rules(allowance: &Allowance, field: &str) -> Vec<String> {
    let peers: Vec<String> = match &allowance.peers {
        None => vec![String::new()],
        Some(peers) => peers
            .iter()
            .map(|peer| match peer {
                Peer::Pod(ip) => format!("ip {field} {ip} "),
                Peer::Block { cidr, except } if except.is_empty() => format!("ip {field} {cidr} "),
                Peer::Block { cidr, except } => {
                    let except: Vec<String> = except.iter().map(ToString::to_string).collect();
                    format!(
                        "ip {field} {cidr} ip {field} != {{ {} }} ",
                        except.join(", ")
                    )
                }
            })
            .collect(),
    };
    let ports: Vec<String> = match &allowance.ports {
        None => vec![String::new()],
        Some(ports) => ports
            .iter()
            .map(|range| {
                let protocol = range.protocol.as_str();
                if range.first == range.last {
                    format!("{protocol} dport {} ", range.first)
                } else {
                    format!("{protocol} dport {}-{} ", range.first, range.last)
                }
            })
            .collect(),
    };
    let mut rules = Vec::new();
    for peer in &peers {
        for port in &ports {
            rules.push(format!("{peer}{port}").trim_end().to_string());
        }
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_isolated_pod_gets_a_chain_that_returns_what_is_allowed_and_drops_the_rest() {
        let rules = PolicyRules {
            ingress: vec![Isolation {
                pod: Ipv4Addr::new(10, 42, 0, 5),
                allowed: vec![Allowance {
                    peers: Some(vec![
                        Peer::Pod(Ipv4Addr::new(10, 42, 0, 6)),
                        Peer::Block {
                            cidr: "192.168.0.0/16".parse().unwrap(),
                            except: vec!["192.168.1.0/24".parse().unwrap()],
                        },
                    ]),
                    ports: Some(vec![PortRange {
                        protocol: Protocol::Tcp,
                        first: 8080,
                        last: 8090,
                    }]),
                }],
            }],
            egress: vec![Isolation {
                pod: Ipv4Addr::new(10, 42, 0, 7),
                allowed: vec![],
            }],
        };
        let text = script("t", &rules);
        for line in [
            "add rule ip t in-10.42.0.5 ip saddr 10.42.0.6 tcp dport 8080-8090 return",
            "add rule ip t in-10.42.0.5 ip saddr 192.168.0.0/16 ip saddr != { 192.168.1.0/24 } tcp dport 8080-8090 return",
            "add rule ip t in-10.42.0.5 drop",
            "add element ip t ingress { 10.42.0.5 : jump in-10.42.0.5 }",
            "add rule ip t out-10.42.0.7 drop",
            "add element ip t egress { 10.42.0.7 : jump out-10.42.0.7 }",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
    }

    #[test]
    fn an_allowance_without_peers_or_ports_lets_everything_through() {
        let rules = allowance_rules(
            &Allowance {
                peers: None,
                ports: None,
            },
            "saddr",
        );
        assert_eq!(rules, [""]);
    }
}
