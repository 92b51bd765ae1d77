//! Services in the kernel, as kube-proxy's nftables mode puts them there: one table whose
//! verdict maps send a Service's cluster IP (and, on the node's addresses, its node
//! port) to a chain of its own, which picks one of its endpoints at random and DNATs to
//! it. Traffic from outside the node's pod range, to a node port, or from an endpoint to
//! its own Service (hairpin) is masqueraded; a Service without endpoints is refused at
//! once rather than left to time out.
//!
//! Each sync writes one `nft` transaction holding only what changed — the chains and map
//! elements of the Service ports that are new, different or gone — so an endpoint's
//! change costs the same with ten Services or ten thousand.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::Result;
use crate::firewall::{Protocol, nft};

/// The packet mark that asks the postrouting chain to masquerade.
const MASQUERADE_MARK: &str = "0x4000";

/// One endpoint of a Service port: a pod's address and the port it serves on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    /// The pod's address.
    pub ip: Ipv4Addr,
    /// The port the pod serves on.
    pub port: u16,
}

/// One port of a Service as this node routes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRoute {
    /// The Service's cluster IP.
    pub cluster_ip: Ipv4Addr,
    /// The Service's port.
    pub port: u16,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The ports it answers on every address of the node: its node port and, for a
    /// LoadBalancer, its own port (ServiceLB's).
    pub node_ports: Vec<u16>,
    /// Where its traffic goes: the ready endpoints (or, while none is, the terminating
    /// ones that still serve); none to refuse connections.
    pub endpoints: Vec<Endpoint>,
}

/// The node's Service rules and what they hold now.
#[derive(Debug)]
pub struct ServiceProxy {
    table: String,
    /// Traffic from outside this range is masqueraded (kube-proxy's NodeCIDR local
    /// detection): the node's own pods keep their addresses.
    pod_range: Ipv4Net,
    applied: BTreeMap<String, ServiceRoute>,
}

impl ServiceProxy {
    /// Starts the table `table` afresh (rules a previous agent left go; connections
    /// already made live on in conntrack), routing nothing yet.
    pub fn install(table: &str, pod_range: Ipv4Net) -> Result<Self> {
        let proxy = Self {
            table: table.to_string(),
            pod_range,
            applied: BTreeMap::new(),
        };
        let _ = nft(&format!("delete table ip {table}\n"));
        nft(&proxy.base())?;
        Ok(proxy)
    }

    /// The table with its maps and hooks, and no Service in it.
    fn base(&self) -> String {
        let t = &self.table;
        let local = "fib daddr type local";
        format!(
            "table ip {t} {{
  set no-endpoint-services {{ type ipv4_addr . inet_proto . inet_service; }}
  set no-endpoint-nodeports {{ type inet_proto . inet_service; }}
  map service-ips {{ type ipv4_addr . inet_proto . inet_service : verdict; }}
  map service-nodeports {{ type inet_proto . inet_service : verdict; }}
  chain mark-for-masquerade {{ meta mark set meta mark or {MASQUERADE_MARK}; }}
  chain services {{
    ip daddr . meta l4proto . th dport vmap @service-ips
    {local} meta l4proto . th dport vmap @service-nodeports
  }}
  chain nat-prerouting {{ type nat hook prerouting priority dstnat; policy accept; jump services; }}
  chain nat-output {{ type nat hook output priority -100; policy accept; jump services; }}
  chain nat-postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    meta mark & {MASQUERADE_MARK} == {MASQUERADE_MARK} meta mark set meta mark xor {MASQUERADE_MARK} masquerade fully-random
  }}
  chain reject-chain {{ reject; }}
  chain endpoints-check {{
    ip daddr . meta l4proto . th dport @no-endpoint-services goto reject-chain
    {local} meta l4proto . th dport @no-endpoint-nodeports goto reject-chain
  }}
  chain filter-input {{ type filter hook input priority -10; policy accept; ct state new jump endpoints-check; }}
  chain filter-forward {{ type filter hook forward priority -10; policy accept; ct state new jump endpoints-check; }}
  chain filter-output {{ type filter hook output priority -10; policy accept; ct state new jump endpoints-check; }}
}}
"
        )
    }

    /// Makes the rules route exactly `wanted` (keyed by `namespace/name/protocol/port`),
    /// changing only what differs from what they route now. How many Service ports
    /// changed.
    pub fn sync(&mut self, wanted: BTreeMap<String, ServiceRoute>) -> Result<usize> {
        let (script, changed) = transaction(&self.table, self.pod_range, &self.applied, &wanted);
        if changed > 0 {
            nft(&script)?;
        }
        self.applied = wanted;
        Ok(changed)
    }

    /// Deletes the table: the node no longer routes Services.
    pub fn remove(&self) -> Result<()> {
        nft(&format!("delete table ip {}\n", self.table))
    }
}

/// The transaction that turns the rules for `applied` into the rules for `wanted`, and
/// how many Service ports it touches.
fn transaction(
    table: &str,
    pod_range: Ipv4Net,
    applied: &BTreeMap<String, ServiceRoute>,
    wanted: &BTreeMap<String, ServiceRoute>,
) -> (String, usize) {
    let mut script = String::new();
    let mut changed = 0;
    for (key, old) in applied {
        let new = wanted.get(key);
        if new != Some(old) {
            withdraw(&mut script, table, key, (old, new));
            changed += 1;
        }
    }
    for (key, new) in wanted {
        if applied.get(key) != Some(new) {
            route(&mut script, (table, pod_range), key, new);
            changed += usize::from(!applied.contains_key(key));
        }
    }
    (script, changed)
}

fn service_chain(key: &str) -> String {
    format!("svc-{key}")
}

fn external_chain(key: &str) -> String {
    format!("ext-{key}")
}

fn endpoint_chain(key: &str, endpoint: &Endpoint) -> String {
    format!("ep-{key}/{}/{}", endpoint.ip, endpoint.port)
}

/// The map and set keys of a Service port: its cluster IP's, and its node ports' joined
/// (None when it has none).
fn elements(route: &ServiceRoute) -> (String, Option<String>) {
    let protocol = route.protocol.as_str();
    let mut ports = route.node_ports.clone();
    ports.sort_unstable();
    ports.dedup();
    let node: Vec<String> = ports.iter().map(|p| format!("{protocol} . {p}")).collect();
    (
        format!("{} . {protocol} . {}", route.cluster_ip, route.port),
        (!node.is_empty()).then(|| node.join(", ")),
    )
}

/// Takes out what routes `old` and what `new` (its replacement, if any) does not reuse:
/// its map elements always, chains `new` has too only emptied.
fn withdraw(
    script: &mut String,
    t: &str,
    key: &str,
    (old, new): (&ServiceRoute, Option<&ServiceRoute>),
) {
    let (cluster, node) = elements(old);
    if old.endpoints.is_empty() {
        let _ = writeln!(
            script,
            "delete element ip {t} no-endpoint-services {{ {cluster} }}"
        );
        if let Some(node) = &node {
            let _ = writeln!(
                script,
                "delete element ip {t} no-endpoint-nodeports {{ {node} }}"
            );
        }
        return;
    }
    let _ = writeln!(script, "delete element ip {t} service-ips {{ {cluster} }}");
    if let Some(node) = &node {
        let _ = writeln!(
            script,
            "delete element ip {t} service-nodeports {{ {node} }}"
        );
    }
    let routed = new.filter(|n| !n.endpoints.is_empty());
    let mut empty = |chain: String, kept: bool| {
        let _ = writeln!(script, "flush chain ip {t} {chain}");
        if !kept {
            let _ = writeln!(script, "delete chain ip {t} {chain}");
        }
    };
    if node.is_some() {
        empty(
            external_chain(key),
            routed.is_some_and(|n| !n.node_ports.is_empty()),
        );
    }
    empty(service_chain(key), routed.is_some());
    for endpoint in &old.endpoints {
        let kept = routed.is_some_and(|n| n.endpoints.contains(endpoint));
        empty(endpoint_chain(key, endpoint), kept);
    }
}

/// Puts a Service port's rules in, into chains made or emptied here: the chains first
/// (`add chain` keeps one that is there), then their rules, then the map elements that
/// lead to them.
fn route(script: &mut String, (t, pod_range): (&str, Ipv4Net), key: &str, route: &ServiceRoute) {
    let (cluster, node) = elements(route);
    if route.endpoints.is_empty() {
        let _ = writeln!(
            script,
            "add element ip {t} no-endpoint-services {{ {cluster} }}"
        );
        if let Some(node) = &node {
            let _ = writeln!(
                script,
                "add element ip {t} no-endpoint-nodeports {{ {node} }}"
            );
        }
        return;
    }
    let protocol = route.protocol.as_str();
    let mut rules: Vec<(String, String)> = Vec::new();
    let mut picks = Vec::new();
    for (i, endpoint) in route.endpoints.iter().enumerate() {
        let chain = endpoint_chain(key, endpoint);
        let ip = endpoint.ip;
        rules.push((
            chain.clone(),
            format!("ip saddr {ip} jump mark-for-masquerade"),
        ));
        let dnat = format!("meta l4proto {protocol} dnat to {ip}:{}", endpoint.port);
        rules.push((chain.clone(), dnat));
        picks.push(format!("{i} : goto {chain}"));
    }
    let service = service_chain(key);
    let masquerade = format!("ip saddr != {pod_range} jump mark-for-masquerade");
    rules.push((service.clone(), masquerade));
    let pick = format!(
        "numgen random mod {} vmap {{ {} }}",
        picks.len(),
        picks.join(", ")
    );
    rules.push((service.clone(), pick));
    let mut elements = vec![format!("service-ips {{ {cluster} : goto {service} }}")];
    if let Some(node) = &node {
        let external = external_chain(key);
        rules.push((external.clone(), "jump mark-for-masquerade".into()));
        rules.push((external.clone(), format!("goto {service}")));
        let targets: Vec<String> = node
            .split(", ")
            .map(|key| format!("{key} : goto {external}"))
            .collect();
        elements.push(format!("service-nodeports {{ {} }}", targets.join(", ")));
    }
    let mut chains: Vec<&String> = rules.iter().map(|(chain, _)| chain).collect();
    chains.dedup();
    for chain in chains {
        let _ = writeln!(script, "add chain ip {t} {chain}");
    }
    for (chain, rule) in &rules {
        let _ = writeln!(script, "add rule ip {t} {chain} {rule}");
    }
    for element in elements {
        let _ = writeln!(script, "add element ip {t} {element}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web(endpoints: &[(u8, u16)]) -> ServiceRoute {
        ServiceRoute {
            cluster_ip: Ipv4Addr::new(10, 43, 0, 20),
            port: 80,
            protocol: Protocol::Tcp,
            node_ports: vec![30080],
            endpoints: endpoints
                .iter()
                .map(|(last, port)| Endpoint {
                    ip: Ipv4Addr::new(10, 42, 0, *last),
                    port: *port,
                })
                .collect(),
        }
    }

    fn script(
        applied: &[(&str, ServiceRoute)],
        wanted: &[(&str, ServiceRoute)],
    ) -> (String, usize) {
        let map = |routes: &[(&str, ServiceRoute)]| {
            routes
                .iter()
                .map(|(k, r)| (k.to_string(), r.clone()))
                .collect::<BTreeMap<_, _>>()
        };
        let range = "10.42.0.0/24".parse().unwrap();
        transaction("t", range, &map(applied), &map(wanted))
    }

    #[test]
    fn a_new_service_gets_a_chain_per_endpoint_and_its_map_elements() {
        let (script, changed) = script(&[], &[("ns/web/tcp/80", web(&[(5, 8080), (6, 8080)]))]);
        assert_eq!(changed, 1);
        for line in [
            "add rule ip t ep-ns/web/tcp/80/10.42.0.5/8080 meta l4proto tcp dnat to 10.42.0.5:8080",
            "add rule ip t svc-ns/web/tcp/80 ip saddr != 10.42.0.0/24 jump mark-for-masquerade",
            "add rule ip t svc-ns/web/tcp/80 numgen random mod 2 vmap { 0 : goto ep-ns/web/tcp/80/10.42.0.5/8080, 1 : goto ep-ns/web/tcp/80/10.42.0.6/8080 }",
            "add element ip t service-ips { 10.43.0.20 . tcp . 80 : goto svc-ns/web/tcp/80 }",
            "add element ip t service-nodeports { tcp . 30080 : goto ext-ns/web/tcp/80 }",
        ] {
            assert!(
                script.lines().any(|l| l == line),
                "{line} missing from\n{script}"
            );
        }
    }

    #[test]
    fn only_what_changed_is_written() {
        let other = ServiceRoute {
            cluster_ip: Ipv4Addr::new(10, 43, 0, 30),
            node_ports: vec![],
            ..web(&[(9, 53)])
        };
        let before = [
            ("ns/web/tcp/80", web(&[(5, 8080)])),
            ("ns/db/tcp/5432", other.clone()),
        ];
        let after = [
            ("ns/web/tcp/80", web(&[(6, 8080)])),
            ("ns/db/tcp/5432", other),
        ];
        let (text, _) = script(&before, &after);
        assert!(!text.contains("db"), "{text}");
        assert!(
            text.contains("delete chain ip t ep-ns/web/tcp/80/10.42.0.5/8080"),
            "{text}"
        );
        assert!(
            text.contains("add chain ip t ep-ns/web/tcp/80/10.42.0.6/8080"),
            "{text}"
        );
        let (unchanged, changed) = script(&after, &after);
        assert_eq!((unchanged.as_str(), changed), ("", 0));
    }

    #[test]
    fn a_service_without_endpoints_is_refused_not_routed() {
        let (script, _) = script(
            &[("ns/web/tcp/80", web(&[(5, 8080)]))],
            &[("ns/web/tcp/80", web(&[]))],
        );
        assert!(script.contains("delete element ip t service-ips { 10.43.0.20 . tcp . 80 }"));
        assert!(script.contains("add element ip t no-endpoint-services { 10.43.0.20 . tcp . 80 }"));
        assert!(script.contains("add element ip t no-endpoint-nodeports { tcp . 30080 }"));
        assert!(!script.contains("add chain"), "{script}");
    }
}
