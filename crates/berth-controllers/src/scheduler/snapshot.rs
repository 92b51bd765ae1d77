//! What the scheduler knows of the cluster during one pass: every node with what is
//! allocatable on it, what its pods request, its pods and the host ports they hold.
//! Placing a pod updates the snapshot at once, so the next pod of the pass sees it.

use std::collections::HashMap;
use std::sync::Arc;

use berth_runner::Cache;
use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;

use berth_quantity::milli;

use crate::cached_pod::CachedPod;

/// Amounts of the resources the scheduler counts, in thousandths (millicores, and one
/// pod is 1,000).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Amounts {
    pub cpu: i128,
    pub memory: i128,
    pub storage: i128,
    pub pods: i128,
}

impl Amounts {
    fn plus(self, other: Amounts) -> Amounts {
        Amounts {
            cpu: self.cpu + other.cpu,
            memory: self.memory + other.memory,
            storage: self.storage + other.storage,
            pods: self.pods + other.pods,
        }
    }

    fn minus(self, other: Amounts) -> Amounts {
        self.plus(Amounts {
            cpu: -other.cpu,
            memory: -other.memory,
            storage: -other.storage,
            pods: -other.pods,
        })
    }

    fn at_least(self, other: Amounts) -> Amounts {
        Amounts {
            cpu: self.cpu.max(other.cpu),
            memory: self.memory.max(other.memory),
            storage: self.storage.max(other.storage),
            pods: self.pods.max(other.pods),
        }
    }
}

/// What scoring counts a container as requesting when it requests nothing, as
/// kube-scheduler's non-zero requests: 100 millicores and 200 MiB. Without them, pods
/// that request nothing would all score alike and pile onto one node.
const SCORING_DEFAULTS: (i128, i128) = (100, 200 * 1024 * 1024 * 1000);

/// What a pod asks of a node: its requests as Kubernetes sums them (containers added,
/// init containers' largest if larger, plus the pod's overhead), and CPU and memory as
/// scoring counts them.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Demand {
    pub requests: Amounts,
    pub scored: (i128, i128),
}

impl Demand {
    pub(crate) fn of(pod: &CachedPod) -> Demand {
        let Some(spec) = pod.spec.as_ref() else {
            return Demand::default();
        };
        let mut requests = Amounts::default();
        let mut scored = (0, 0);
        for container in &spec.containers {
            let asked = container_requests(container);
            requests = requests.plus(asked);
            scored.0 += if asked.cpu == 0 {
                SCORING_DEFAULTS.0
            } else {
                asked.cpu
            };
            scored.1 += if asked.memory == 0 {
                SCORING_DEFAULTS.1
            } else {
                asked.memory
            };
        }
        for container in spec.extras().init_containers.iter().flatten() {
            requests = requests.at_least(container_requests(container));
        }
        for (key, quantity) in spec.extras().overhead.iter().flatten() {
            let amount = milli(&quantity.0).unwrap_or(0);
            match key.as_str() {
                "cpu" => requests.cpu += amount,
                "memory" => requests.memory += amount,
                _ => {}
            }
        }
        requests.pods = 1000;
        Demand { requests, scored }
    }
}

fn container_requests(container: &crate::cached_pod::Container) -> Amounts {
    let requests = container
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref());
    let get = |key: &str| {
        requests
            .and_then(|r| r.get(key))
            .and_then(|q| milli(&q.0))
            .unwrap_or(0)
    };
    Amounts {
        cpu: get("cpu"),
        memory: get("memory"),
        storage: get("ephemeral-storage"),
        pods: 0,
    }
}

/// A host port a pod holds: protocol, port and address (`0.0.0.0` for all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostPort {
    pub protocol: String,
    pub port: i32,
    pub ip: String,
}

impl HostPort {
    /// The host ports the pod's containers ask for.
    pub(crate) fn of(pod: &CachedPod) -> Vec<HostPort> {
        let containers = pod.spec.iter().flat_map(|s| &s.containers);
        containers
            .flat_map(|c| c.ports.iter().flatten())
            .filter(|p| p.host_port.unwrap_or(0) > 0)
            .map(|p| HostPort {
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                port: p.host_port.unwrap_or(0),
                ip: p
                    .host_ip
                    .clone()
                    .filter(|ip| !ip.is_empty())
                    .unwrap_or_else(|| "0.0.0.0".into()),
            })
            .collect()
    }

    /// Whether two pods asking for these could not share a node.
    pub(crate) fn clashes(&self, other: &HostPort) -> bool {
        let wildcard = |ip: &str| ip == "0.0.0.0" || ip == "::";
        self.protocol == other.protocol
            && self.port == other.port
            && (self.ip == other.ip || wildcard(&self.ip) || wildcard(&other.ip))
    }
}

/// One node as the scheduler sees it.
#[derive(Clone)]
pub(crate) struct NodeInfo {
    pub node: Arc<Node>,
    /// Its Ready condition is True.
    pub ready: bool,
    /// Marked unschedulable (`kubectl cordon`).
    pub cordoned: bool,
    pub allocatable: Amounts,
    pub requested: Amounts,
    /// CPU and memory requested as scoring counts them.
    pub scored: (i128, i128),
    /// The pods bound to it that have not finished (terminating ones still count).
    pub pods: Vec<Arc<CachedPod>>,
    pub ports: Vec<HostPort>,
}

impl NodeInfo {
    fn new(node: Arc<Node>) -> Self {
        let allocatable = node.status.as_ref().and_then(|s| s.allocatable.as_ref());
        let get = |key: &str| {
            allocatable
                .and_then(|a| a.get(key))
                .and_then(|q| milli(&q.0))
                .unwrap_or(0)
        };
        NodeInfo {
            ready: crate::nodes::is_ready(&node),
            cordoned: node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true),
            allocatable: Amounts {
                cpu: get("cpu"),
                memory: get("memory"),
                storage: get("ephemeral-storage"),
                pods: get("pods"),
            },
            node,
            requested: Amounts::default(),
            scored: (0, 0),
            pods: Vec::new(),
            ports: Vec::new(),
        }
    }

    pub(crate) fn name(&self) -> String {
        self.node.name_any()
    }

    /// The value of a node label, as topology keys read it.
    pub(crate) fn label(&self, key: &str) -> Option<&str> {
        self.node.labels().get(key).map(String::as_str)
    }

    /// Counts `pod` as running here.
    pub(crate) fn add(&mut self, pod: Arc<CachedPod>) {
        let demand = Demand::of(&pod);
        self.requested = self.requested.plus(demand.requests);
        self.scored = (
            self.scored.0 + demand.scored.0,
            self.scored.1 + demand.scored.1,
        );
        self.ports.extend(HostPort::of(&pod));
        self.pods.push(pod);
    }

    /// Holds `demand` here for a pod not placed yet (one nominated by preemption).
    pub(crate) fn reserve(&mut self, demand: &Demand) {
        self.requested = self.requested.plus(demand.requests);
    }

    /// This node as it would be without the pods `leaving` selects.
    pub(crate) fn without(&self, leaving: impl Fn(&CachedPod) -> bool) -> NodeInfo {
        let mut rest = NodeInfo::new(Arc::clone(&self.node));
        rest.requested = self.requested;
        rest.scored = self.scored;
        for pod in &self.pods {
            if leaving(pod) {
                let demand = Demand::of(pod);
                rest.requested = rest.requested.minus(demand.requests);
                rest.scored = (
                    rest.scored.0 - demand.scored.0,
                    rest.scored.1 - demand.scored.1,
                );
            } else {
                rest.ports.extend(HostPort::of(pod));
                rest.pods.push(Arc::clone(pod));
            }
        }
        rest
    }
}

/// Whether a pod still occupies its node: bound and not finished.
fn occupies(pod: &CachedPod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Succeeded" | "Failed"))
}

/// The node a pod is bound to, if any.
pub(crate) fn node_of(pod: &CachedPod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

/// Every node with the pods bound to it, in the caches' order — counting the pods
/// `assumed` bound (uid → node) that the cache does not show bound yet.
pub(crate) fn take(
    nodes: &Cache<Node>,
    pods: &[Arc<CachedPod>],
    assumed: &HashMap<String, String>,
) -> Vec<NodeInfo> {
    let mut infos: Vec<NodeInfo> = nodes.state().into_iter().map(NodeInfo::new).collect();
    let index: HashMap<String, usize> = infos
        .iter()
        .enumerate()
        .map(|(i, info)| (info.name(), i))
        .collect();
    for pod in pods {
        let node = node_of(pod).or_else(|| {
            let uid = pod.uid()?;
            assumed.get(&uid).map(String::as_str)
        });
        let Some(&at) = node.and_then(|node| index.get(node)) else {
            continue;
        };
        if occupies(pod) {
            infos[at].add(Arc::clone(pod));
        }
    }
    infos
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> CachedPod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).unwrap()
    }

    #[test]
    fn init_containers_count_when_larger() {
        let demand = Demand::of(&pod(json!({
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "100m"}}},
                {"name": "b", "resources": {"requests": {"cpu": "200m", "memory": "1Gi"}}},
            ],
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "500m"}}}],
            "overhead": {"cpu": "10m"},
        })));
        assert_eq!(demand.requests.cpu, 510);
        assert_eq!(demand.requests.memory, 1024 * 1024 * 1024 * 1000);
        assert_eq!(demand.requests.pods, 1000);
        assert_eq!(demand.scored.0, 300);
    }

    #[test]
    fn host_ports_clash_on_the_same_address_or_a_wildcard() {
        let port = |ip: &str, protocol: &str| HostPort {
            protocol: protocol.into(),
            port: 80,
            ip: ip.into(),
        };
        assert!(port("0.0.0.0", "TCP").clashes(&port("10.0.0.1", "TCP")));
        assert!(!port("10.0.0.2", "TCP").clashes(&port("10.0.0.1", "TCP")));
        assert!(!port("0.0.0.0", "UDP").clashes(&port("0.0.0.0", "TCP")));
    }
}
