//! NetworkPolicy for this node's pods, as a network-policy controller (kube-router's,
//! Calico's) enforces it: the cluster's pods, namespaces and policies watched whole, and
//! on any change the node's policy table (berth-net) rewritten to isolate each local
//! pod that a policy selects — in the directions its policy types name — letting
//! through only what one of those policies' rules allows.
//!
//! Peers are pods selected by a rule's podSelector and namespaceSelector (the policy's
//! own namespace when it has none), by their addresses, or ipBlocks; ports are numbers,
//! ranges (endPort) or, for ingress, names of the pod's own container ports.

use std::sync::Arc;

use berth_net::{Allowance, Isolation, Peer, PolicyFirewall, PolicyRules, PortRange, Protocol};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Client, ResourceExt};
use tokio::sync::Notify;

/// The node's nftables table of NetworkPolicy rules.
pub const POLICY_TABLE: &str = "berth-policy";

/// Keeps this node's pods isolated as the cluster's NetworkPolicies say, until the
/// process ends.
pub(crate) async fn run(client: Client, node: String) {
    let installed = tokio::task::spawn_blocking(|| PolicyFirewall::install(POLICY_TABLE)).await;
    let firewall = match installed {
        Ok(Ok(firewall)) => Arc::new(firewall),
        Ok(Err(error)) => {
            tracing::error!(%error, "could not install the NetworkPolicy rules: policies are not enforced on this node");
            return;
        }
        Err(_) => return,
    };
    let changed = Arc::new(Notify::new());
    let policies = crate::reflected::<NetworkPolicy>(&client, &changed);
    let pods = crate::reflected::<Pod>(&client, &changed);
    let namespaces = crate::reflected::<Namespace>(&client, &changed);
    for ready in [
        policies.wait_until_ready().await,
        pods.wait_until_ready().await,
        namespaces.wait_until_ready().await,
    ] {
        ready.ok();
    }
    let mut applied: Option<PolicyRules> = None;
    loop {
        let cluster = Cluster {
            policies: policies.state(),
            pods: pods.state(),
            namespaces: namespaces.state(),
        };
        let wanted = cluster.rules(&node);
        if applied.as_ref() != Some(&wanted) {
            let (firewall, rules) = (Arc::clone(&firewall), wanted.clone());
            match tokio::task::spawn_blocking(move || firewall.apply(&rules)).await {
                Ok(Ok(())) => applied = Some(wanted),
                Ok(Err(error)) => tracing::warn!(%error, "could not apply the NetworkPolicy rules"),
                Err(_) => return,
            }
        }
        changed.notified().await;
    }
}

/// What the rules are made from.
struct Cluster {
    policies: Vec<Arc<NetworkPolicy>>,
    pods: Vec<Arc<Pod>>,
    namespaces: Vec<Arc<Namespace>>,
}

impl Cluster {
    /// The isolation of every pod of `node` that a policy selects.
    fn rules(&self, node: &str) -> PolicyRules {
        let mut rules = PolicyRules::default();
        for pod in self.pods.iter().filter(|p| on_node(p, node)) {
            let Some(ip) = address(pod) else { continue };
            let namespace = pod.namespace().unwrap_or_default();
            let selecting = self.policies.iter().filter(|policy| {
                policy.namespace().as_deref() == Some(namespace.as_str())
                    && policy.spec.as_ref().is_some_and(|s| {
                        // No podSelector, as `{}`: every pod of the namespace.
                        s.pod_selector.as_ref().is_none_or(|selector| {
                            berth_labels::selects(selector, &pod.metadata.labels)
                        })
                    })
            });
            let (mut ingress, mut egress) = (None::<Vec<Allowance>>, None::<Vec<Allowance>>);
            for policy in selecting {
                let spec = policy.spec.clone().unwrap_or_default();
                let types = policy_types(&spec);
                if types.contains(&"Ingress") {
                    let allowed = ingress.get_or_insert_default();
                    for rule in spec.ingress.iter().flatten() {
                        allowed.push(self.allowance(
                            policy,
                            (rule.from.as_deref(), rule.ports.as_deref()),
                            Some(pod),
                        ));
                    }
                }
                if types.contains(&"Egress") {
                    let allowed = egress.get_or_insert_default();
                    for rule in spec.egress.iter().flatten() {
                        allowed.push(self.allowance(
                            policy,
                            (rule.to.as_deref(), rule.ports.as_deref()),
                            None,
                        ));
                    }
                }
            }
            if let Some(allowed) = ingress {
                rules.ingress.push(Isolation { pod: ip, allowed });
            }
            if let Some(allowed) = egress {
                rules.egress.push(Isolation { pod: ip, allowed });
            }
        }
        rules
    }

    /// What one rule of `policy` allows; `target` names the ports of an ingress rule.
    fn allowance(
        &self,
        policy: &NetworkPolicy,
        (peers, ports): (Option<&[NetworkPolicyPeer]>, Option<&[NetworkPolicyPort]>),
        target: Option<&Pod>,
    ) -> Allowance {
        let peers = peers.filter(|p| !p.is_empty()).map(|peers| {
            peers
                .iter()
                .flat_map(|peer| self.peers(policy, peer))
                .collect()
        });
        let ports = ports.filter(|p| !p.is_empty()).map(|ports| {
            ports
                .iter()
                .filter_map(|port| port_range(port, target))
                .collect()
        });
        Allowance { peers, ports }
    }

    /// The addresses one peer of `policy` stands for.
    fn peers(&self, policy: &NetworkPolicy, peer: &NetworkPolicyPeer) -> Vec<Peer> {
        if let Some(block) = &peer.ip_block {
            let Ok(cidr) = block.cidr.parse() else {
                return Vec::new();
            };
            let except = block
                .except
                .iter()
                .flatten()
                .filter_map(|e| e.parse().ok())
                .collect();
            return vec![Peer::Block { cidr, except }];
        }
        let own = policy.namespace().unwrap_or_default();
        let in_namespace = |name: &str| match &peer.namespace_selector {
            None => name == own,
            Some(selector) => self
                .namespaces
                .iter()
                .find(|n| n.name_any() == name)
                .is_some_and(|n| berth_labels::selects(selector, &n.metadata.labels)),
        };
        self.pods
            .iter()
            .filter(|pod| in_namespace(&pod.namespace().unwrap_or_default()))
            .filter(|pod| {
                peer.pod_selector
                    .as_ref()
                    .is_none_or(|s| berth_labels::selects(s, &pod.metadata.labels))
            })
            .filter_map(|pod| address(pod).map(Peer::Pod))
            .collect()
    }
}

/// The directions a policy isolates: those it names, or Ingress and — when it has egress
/// rules — Egress.
fn policy_types(spec: &k8s_openapi::api::networking::v1::NetworkPolicySpec) -> Vec<&str> {
    match &spec.policy_types {
        Some(types) => types.iter().map(String::as_str).collect(),
        None if spec.egress.is_some() => vec!["Ingress", "Egress"],
        None => vec!["Ingress"],
    }
}

/// The ports of one policy port: a number, a range to its endPort, or a name of one of
/// `target`'s container ports (None when it names no port of it).
fn port_range(port: &NetworkPolicyPort, target: Option<&Pod>) -> Option<PortRange> {
    let protocol = match port.protocol.as_deref().unwrap_or("TCP") {
        "TCP" => Protocol::Tcp,
        "UDP" => Protocol::Udp,
        _ => return None,
    };
    let first = match &port.port {
        None => {
            return Some(PortRange {
                protocol,
                first: 1,
                last: u16::MAX,
            });
        }
        Some(IntOrString::Int(number)) => u16::try_from(*number).ok()?,
        Some(IntOrString::String(name)) => {
            let spec = target?.spec.as_ref()?;
            let container_port = spec
                .containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| p.name.as_deref() == Some(name.as_str()))?;
            u16::try_from(container_port.container_port).ok()?
        }
    };
    let last = port
        .end_port
        .and_then(|e| u16::try_from(e).ok())
        .unwrap_or(first);
    Some(PortRange {
        protocol,
        first,
        last,
    })
}

fn on_node(pod: &Pod, node: &str) -> bool {
    let spec = pod.spec.as_ref();
    spec.and_then(|s| s.node_name.as_deref()) == Some(node)
        && spec.and_then(|s| s.host_network) != Some(true)
}

/// A pod's address, once it has one.
fn address(pod: &Pod) -> Option<std::net::Ipv4Addr> {
    pod.status.as_ref()?.pod_ip.as_ref()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, namespace: &str, ip: &str, labels: serde_json::Value) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": namespace, "labels": labels},
                "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i",
                         "ports": [{"name": "http", "containerPort": 8080}]}]},
                "status": {"podIP": ip},
            }))
            .unwrap(),
        )
    }

    fn cluster(policies: serde_json::Value) -> Cluster {
        Cluster {
            policies: serde_json::from_value::<Vec<NetworkPolicy>>(policies)
                .unwrap()
                .into_iter()
                .map(Arc::new)
                .collect(),
            pods: vec![
                pod(
                    "web",
                    "shop",
                    "10.42.0.5",
                    serde_json::json!({"app": "web"}),
                ),
                pod(
                    "client",
                    "shop",
                    "10.42.0.6",
                    serde_json::json!({"app": "client"}),
                ),
                pod(
                    "other",
                    "shop",
                    "10.42.0.7",
                    serde_json::json!({"app": "other"}),
                ),
                pod(
                    "monitor",
                    "ops",
                    "10.42.0.8",
                    serde_json::json!({"app": "monitor"}),
                ),
            ],
            namespaces: ["shop", "ops"]
                .iter()
                .map(|n| {
                    Arc::new(
                        serde_json::from_value(serde_json::json!({
                            "metadata": {"name": n, "labels": {"kubernetes.io/metadata.name": n}},
                        }))
                        .unwrap(),
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn selected_pods_are_isolated_and_peers_resolve_to_addresses() {
        let cluster = cluster(serde_json::json!([
            {"metadata": {"name": "deny-all", "namespace": "shop"},
             "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}},
            {"metadata": {"name": "allow-client", "namespace": "shop"},
             "spec": {"podSelector": {"matchLabels": {"app": "web"}},
                      "ingress": [{"from": [
                          {"podSelector": {"matchLabels": {"app": "client"}}},
                          {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ops"}}}],
                        "ports": [{"port": "http"}]}]}},
        ]));
        let rules = cluster.rules("n1");
        assert!(rules.egress.is_empty());
        let web = rules
            .ingress
            .iter()
            .find(|i| i.pod == std::net::Ipv4Addr::new(10, 42, 0, 5))
            .unwrap();
        assert_eq!(web.allowed.len(), 1);
        assert_eq!(
            web.allowed[0].peers,
            Some(vec![
                Peer::Pod("10.42.0.6".parse().unwrap()),
                Peer::Pod("10.42.0.8".parse().unwrap())
            ])
        );
        assert_eq!(
            web.allowed[0].ports,
            Some(vec![PortRange {
                protocol: Protocol::Tcp,
                first: 8080,
                last: 8080
            }])
        );
        // Every pod of shop is isolated (deny-all), the pod of ops is not.
        assert_eq!(rules.ingress.len(), 3);
        assert!(
            rules
                .ingress
                .iter()
                .all(|i| i.pod != "10.42.0.8".parse::<std::net::Ipv4Addr>().unwrap())
        );
    }

    #[test]
    fn egress_rules_isolate_outgoing_traffic_too() {
        let cluster = cluster(serde_json::json!([
            {"metadata": {"name": "out", "namespace": "shop"},
             "spec": {"podSelector": {"matchLabels": {"app": "client"}},
                      "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.42.0.7/32"]}}],
                                  "ports": [{"port": 8000, "endPort": 8100, "protocol": "UDP"}]}]}},
        ]));
        let rules = cluster.rules("n1");
        assert_eq!(rules.ingress.len(), 1);
        let client = &rules.egress[0];
        assert_eq!(client.pod, std::net::Ipv4Addr::new(10, 42, 0, 6));
        assert_eq!(
            client.allowed[0].peers,
            Some(vec![Peer::Block {
                cidr: "10.0.0.0/8".parse().unwrap(),
                except: vec!["10.42.0.7/32".parse().unwrap()]
            }])
        );
        assert_eq!(
            client.allowed[0].ports,
            Some(vec![PortRange {
                protocol: Protocol::Udp,
                first: 8000,
                last: 8100
            }])
        );
    }
}
