//! Services in the kernel, as kube-proxy's nftables mode puts them there: one table whose
//! verdict maps send a Service's cluster IP (and, on the node's addresses, its node
//! port) to a chain of its own, which picks one of its endpoints at random — the one a
//! client had, under ClientIP affinity — and DNATs to it. Traffic from outside the
//! node's pod range, to a node port, or from an endpoint to its own Service (hairpin) is
//! masqueraded; external traffic under `externalTrafficPolicy: Local` goes only to this
//! node's endpoints and keeps its source, as internal traffic under
//! `internalTrafficPolicy: Local` goes only to them; a Service without endpoints is
//! refused at once rather than left to time out.
//!
//! Each sync writes one `nft` transaction holding only what changed — the chains and map
//! elements of the Service ports that are new, different or gone — so an endpoint's
//! change costs the same with ten Services or ten thousand.
//!
//! Underneath [`ConnectBalancer`], when asked for: it takes TCP connections to cluster
//! IPs before they reach these rules, and leaves them the rest.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::firewall::{Protocol, nft};
use crate::{ConnectBalancer, Result};

/// The packet mark that asks the postrouting chain to masquerade.
const MASQUERADE_MARK: &str = "0x4000";

/// One endpoint of a Service port: a pod's address and the port it serves on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    /// The pod's address.
    pub ip: Ipv4Addr,
    /// The port the pod serves on.
    pub port: u16,
    /// Whether the pod runs on this node.
    pub local: bool,
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
    /// How long a client sticks to the endpoint it got (`sessionAffinity: ClientIP`'s
    /// timeout), in seconds; None for no affinity.
    pub affinity: Option<u32>,
    /// Traffic to the cluster IP goes only to this node's endpoints
    /// (`internalTrafficPolicy: Local`).
    pub internal_local: bool,
    /// Traffic to the node ports from elsewhere goes only to this node's endpoints, its
    /// source kept (`externalTrafficPolicy: Local`).
    pub external_local: bool,
}

/// The node's Service rules and what they hold now.
#[derive(Debug)]
pub struct ServiceProxy {
    table: String,
    /// Traffic from outside this range is masqueraded (kube-proxy's NodeCIDR local
    /// detection): the node's own pods keep their addresses.
    pod_range: Ipv4Net,
    applied: BTreeMap<String, ServiceRoute>,
    /// Connect-time balancing of what it can take over, once asked for.
    balancer: Option<ConnectBalancer>,
}

impl ServiceProxy {
    /// Starts the table `table` afresh (rules a previous agent left go; connections
    /// already made live on in conntrack), routing nothing yet.
    pub fn install(table: &str, pod_range: Ipv4Net) -> Result<Self> {
        let proxy = Self {
            table: table.to_string(),
            pod_range,
            applied: BTreeMap::new(),
            balancer: None,
        };
        let _ = nft(&format!("delete table ip {table}\n"));
        nft(&proxy.base())?;
        // Traffic to a Service is forwarded to its endpoints.
        crate::sysctl("net/ipv4/ip_forward", "1")?;
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

    /// Also balances TCP connections to cluster IPs when they are made, from this network
    /// namespace and from the processes under the cgroup `pods` (see
    /// [`ConnectBalancer`]); the rules stay underneath for everything else.
    pub fn balance_connects(&mut self, pods: &str) -> Result<()> {
        let mut balancer = ConnectBalancer::attach(pods)?;
        balancer.sync(&self.applied)?;
        self.balancer = Some(balancer);
        Ok(())
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
        if let Some(balancer) = &mut self.balancer {
            balancer.sync(&self.applied)?;
        }
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
            let new = new.map(|n| Layout::of(key, n, pod_range));
            withdraw(
                &mut script,
                table,
                &Layout::of(key, old, pod_range),
                new.as_ref(),
            );
            changed += 1;
        }
    }
    for (key, new) in wanted {
        if applied.get(key) != Some(new) {
            route(&mut script, table, &Layout::of(key, new, pod_range));
            changed += usize::from(!applied.contains_key(key));
        }
    }
    (script, changed)
}

/// Everything the rules of one Service port are made of.
#[derive(Debug, Default)]
struct Layout {
    /// Its cluster IP's key in the maps and sets.
    cluster: String,
    /// Its node ports' keys.
    node: Vec<String>,
    /// The chain the cluster IP leads to, and the one the node ports lead to; None when
    /// it has no endpoints (and is refused).
    entries: Option<(String, Option<String>)>,
    /// Its chains and their rules, endpoints' first.
    chains: Vec<(String, Vec<String>)>,
    /// Its affinity sets: (name, timeout in seconds).
    sets: Vec<(String, u32)>,
}

impl Layout {
    fn of(key: &str, route: &ServiceRoute, pod_range: Ipv4Net) -> Self {
        let protocol = route.protocol.as_str();
        let mut ports = route.node_ports.clone();
        ports.sort_unstable();
        ports.dedup();
        let mut layout = Self {
            cluster: format!("{} . {protocol} . {}", route.cluster_ip, route.port),
            node: ports.iter().map(|p| format!("{protocol} . {p}")).collect(),
            ..Self::default()
        };
        if route.endpoints.is_empty() {
            return layout;
        }
        let chain = |kind: &str| format!("{kind}-{key}");
        let endpoint = |e: &Endpoint| format!("ep-{key}/{}/{}", e.ip, e.port);
        let affinity = |e: &Endpoint| format!("aff-{key}/{}/{}", e.ip, e.port);
        for e in &route.endpoints {
            let mut rules = vec![format!("ip saddr {} jump mark-for-masquerade", e.ip)];
            if let Some(timeout) = route.affinity {
                rules.push(format!("update @{} {{ ip saddr }}", affinity(e)));
                layout.sets.push((affinity(e), timeout));
            }
            rules.push(format!(
                "meta l4proto {protocol} dnat to {}:{}",
                e.ip, e.port
            ));
            layout.chains.push((endpoint(e), rules));
        }
        let pick = |endpoints: Vec<&Endpoint>| -> Vec<String> {
            if endpoints.is_empty() {
                return vec!["drop".into()];
            }
            let mut rules: Vec<String> = endpoints
                .iter()
                .filter(|_| route.affinity.is_some())
                .map(|e| format!("ip saddr @{} goto {}", affinity(e), endpoint(e)))
                .collect();
            let picks: Vec<String> = (0..endpoints.len())
                .map(|i| format!("{i} : goto {}", endpoint(endpoints[i])))
                .collect();
            rules.push(format!(
                "numgen random mod {} vmap {{ {} }}",
                picks.len(),
                picks.join(", ")
            ));
            rules
        };
        let (all, local) = (chain("all"), chain("local"));
        layout
            .chains
            .push((all.clone(), pick(route.endpoints.iter().collect())));
        if route.internal_local || route.external_local {
            let here = route.endpoints.iter().filter(|e| e.local).collect();
            layout.chains.push((local.clone(), pick(here)));
        }
        let service = chain("svc");
        let internal = if route.internal_local { &local } else { &all };
        let rules = vec![
            format!("ip saddr != {pod_range} jump mark-for-masquerade"),
            format!("goto {internal}"),
        ];
        layout.chains.push((service.clone(), rules));
        let external = (!layout.node.is_empty()).then(|| chain("ext"));
        if let Some(external) = &external {
            let rules = if route.external_local {
                vec![
                    format!("ip saddr {pod_range} goto {service}"),
                    "fib saddr type local jump mark-for-masquerade".into(),
                    format!("fib saddr type local goto {service}"),
                    format!("goto {local}"),
                ]
            } else {
                vec!["jump mark-for-masquerade".into(), format!("goto {all}")]
            };
            layout.chains.push((external.clone(), rules));
        }
        layout.entries = Some((service, external));
        layout
    }

    /// The map elements (or refusing set elements) that lead to its chains.
    fn elements(&self) -> Vec<(&'static str, String)> {
        let node = self.node.join(", ");
        match &self.entries {
            None => {
                let mut elements = vec![("no-endpoint-services", self.cluster.clone())];
                if !node.is_empty() {
                    elements.push(("no-endpoint-nodeports", node));
                }
                elements
            }
            Some((service, external)) => {
                let mut elements =
                    vec![("service-ips", format!("{} : goto {service}", self.cluster))];
                if let Some(external) = external {
                    let targets: Vec<String> = self
                        .node
                        .iter()
                        .map(|key| format!("{key} : goto {external}"))
                        .collect();
                    elements.push(("service-nodeports", targets.join(", ")));
                }
                elements
            }
        }
    }

    /// The keys of [`Self::elements`], which deletes name.
    fn keys(&self) -> Vec<(&'static str, String)> {
        let node = self.node.join(", ");
        let (cluster_map, node_map) = match self.entries {
            None => ("no-endpoint-services", "no-endpoint-nodeports"),
            Some(_) => ("service-ips", "service-nodeports"),
        };
        let mut keys = vec![(cluster_map, self.cluster.clone())];
        if !node.is_empty() {
            keys.push((node_map, node));
        }
        keys
    }
}

/// Takes out what routes `old` and what `new` (its replacement, if any) does not reuse:
/// its map elements always, chains and affinity sets `new` has too only emptied (so
/// clients keep their endpoints).
fn withdraw(script: &mut String, t: &str, old: &Layout, new: Option<&Layout>) {
    for (map, key) in old.keys() {
        let _ = writeln!(script, "delete element ip {t} {map} {{ {key} }}");
    }
    for (chain, _) in &old.chains {
        let _ = writeln!(script, "flush chain ip {t} {chain}");
    }
    let kept_chains: Vec<&String> = new.iter().flat_map(|n| &n.chains).map(|(c, _)| c).collect();
    for (chain, _) in &old.chains {
        if !kept_chains.contains(&chain) {
            let _ = writeln!(script, "delete chain ip {t} {chain}");
        }
    }
    for set in &old.sets {
        if !new.is_some_and(|n| n.sets.contains(set)) {
            let _ = writeln!(script, "delete set ip {t} {}", set.0);
        }
    }
}

/// Puts a Service port's rules in: its affinity sets and chains first (`add` keeps one
/// that is there, emptied by [`withdraw`]), then their rules, then the map elements that
/// lead to them.
fn route(script: &mut String, t: &str, layout: &Layout) {
    for (set, timeout) in &layout.sets {
        let _ = writeln!(
            script,
            "add set ip {t} {set} {{ type ipv4_addr; flags dynamic,timeout; timeout {timeout}s; }}"
        );
    }
    for (chain, _) in &layout.chains {
        let _ = writeln!(script, "add chain ip {t} {chain}");
    }
    for (chain, rules) in &layout.chains {
        for rule in rules {
            let _ = writeln!(script, "add rule ip {t} {chain} {rule}");
        }
    }
    for (map, element) in layout.elements() {
        let _ = writeln!(script, "add element ip {t} {map} {{ {element} }}");
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
                    local: *last < 6,
                })
                .collect(),
            affinity: None,
            internal_local: false,
            external_local: false,
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
            "add rule ip t svc-ns/web/tcp/80 goto all-ns/web/tcp/80",
            "add rule ip t all-ns/web/tcp/80 numgen random mod 2 vmap { 0 : goto ep-ns/web/tcp/80/10.42.0.5/8080, 1 : goto ep-ns/web/tcp/80/10.42.0.6/8080 }",
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

    #[test]
    fn affinity_keeps_a_client_on_its_endpoint_until_the_timeout() {
        let sticky = ServiceRoute {
            affinity: Some(10800),
            ..web(&[(5, 8080)])
        };
        let (text, _) = script(&[], &[("ns/web/tcp/80", sticky.clone())]);
        for line in [
            "add set ip t aff-ns/web/tcp/80/10.42.0.5/8080 { type ipv4_addr; flags dynamic,timeout; timeout 10800s; }",
            "add rule ip t ep-ns/web/tcp/80/10.42.0.5/8080 update @aff-ns/web/tcp/80/10.42.0.5/8080 { ip saddr }",
            "add rule ip t all-ns/web/tcp/80 ip saddr @aff-ns/web/tcp/80/10.42.0.5/8080 goto ep-ns/web/tcp/80/10.42.0.5/8080",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
        // A new endpoint beside it keeps the old one's set, and so its clients.
        let grown = ServiceRoute {
            affinity: Some(10800),
            ..web(&[(5, 8080), (6, 8080)])
        };
        let (text, _) = script(&[("ns/web/tcp/80", sticky)], &[("ns/web/tcp/80", grown)]);
        assert!(!text.contains("delete set"), "{text}");
    }

    #[test]
    fn local_traffic_policies_use_only_this_node_s_endpoints() {
        let local = ServiceRoute {
            internal_local: true,
            external_local: true,
            ..web(&[(5, 8080), (7, 8080)])
        };
        let (text, _) = script(&[], &[("ns/web/tcp/80", local)]);
        for line in [
            "add rule ip t svc-ns/web/tcp/80 goto local-ns/web/tcp/80",
            "add rule ip t local-ns/web/tcp/80 numgen random mod 1 vmap { 0 : goto ep-ns/web/tcp/80/10.42.0.5/8080 }",
            "add rule ip t ext-ns/web/tcp/80 ip saddr 10.42.0.0/24 goto svc-ns/web/tcp/80",
            "add rule ip t ext-ns/web/tcp/80 goto local-ns/web/tcp/80",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
        assert!(
            !text.contains("ext-ns/web/tcp/80 jump mark-for-masquerade\n"),
            "{text}"
        );
        let remote = ServiceRoute {
            internal_local: true,
            ..web(&[(7, 8080)])
        };
        let (text, _) = script(&[], &[("ns/web/tcp/80", remote)]);
        assert!(
            text.contains("add rule ip t local-ns/web/tcp/80 drop\n"),
            "{text}"
        );
    }
}
