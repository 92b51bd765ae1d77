//! What the scheduler knows of the cluster: every node with what is allocatable on it,
//! what its pods request, its pods and the host ports they hold, kept between passes
//! and brought up to date from what changed. Placing a pod updates the snapshot at
//! once, so the next pod of the pass sees it.

use std::collections::HashMap;
use std::sync::Arc;

use berth_runner::Cache;
use k8s_openapi::api::core::v1::{Node, Taint};
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

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
    /// The node's taints, kept beside the rest so that judging a node reads no more
    /// than this: reaching into each `Node` for them was most of the filters' time
    /// (a cache miss per node judged).
    pub taints: Box<[Taint]>,
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
            taints: node
                .spec
                .as_ref()
                .and_then(|s| s.taints.clone())
                .unwrap_or_default()
                .into(),
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

    /// Stops counting the pod of `key` here.
    fn remove(&mut self, key: &ObjectRef<CachedPod>) {
        let Some(at) = self.pods.iter().position(|p| {
            p.metadata.name.as_deref() == Some(key.name.as_str())
                && p.metadata.namespace == key.namespace
        }) else {
            return;
        };
        let pod = self.pods.swap_remove(at);
        self.uncount(&Demand::of(&pod));
        if !HostPort::of(&pod).is_empty() {
            self.ports = self.pods.iter().flat_map(|p| HostPort::of(p)).collect();
        }
    }

    /// Takes away what a pod leaving the node had requested.
    fn uncount(&mut self, demand: &Demand) {
        self.requested = self.requested.minus(demand.requests);
        self.scored = (
            self.scored.0 - demand.scored.0,
            self.scored.1 - demand.scored.1,
        );
    }

    /// Gives back what [`NodeInfo::reserve`] held.
    pub(crate) fn release(&mut self, demand: &Demand) {
        self.requested = self.requested.minus(demand.requests);
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
                rest.uncount(&Demand::of(pod));
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

/// The pods placed by the scheduler whose binding the pod cache does not show yet, and
/// their nodes: kube-scheduler's assumed pods. Without them a pass right after a
/// placement would see the node without the pod and could overfill it.
#[derive(Default)]
pub(crate) struct Assumed {
    /// Pod → its uid (a pod made anew under the name is another pod) and its node.
    pods: HashMap<ObjectRef<CachedPod>, (String, String)>,
}

impl Assumed {
    pub(crate) fn insert(&mut self, key: ObjectRef<CachedPod>, pod: &CachedPod, node: String) {
        self.pods.insert(key, (pod.uid().unwrap_or_default(), node));
    }

    pub(crate) fn remove(&mut self, key: &ObjectRef<CachedPod>) {
        self.pods.remove(key);
    }

    pub(crate) fn contains(&self, key: &ObjectRef<CachedPod>) -> bool {
        self.pods.contains_key(key)
    }

    /// The node `pod` is assumed on; an assumption the cache has caught up with (the
    /// pod bound, gone or made anew) is forgotten.
    fn still_on(&mut self, key: &ObjectRef<CachedPod>, pod: Option<&CachedPod>) -> Option<String> {
        let (uid, node) = self.pods.get(key)?;
        let current = pod.filter(|p| p.uid().as_ref() == Some(uid) && node_of(p).is_none());
        if current.is_none() {
            self.pods.remove(key);
            return None;
        }
        Some(node.clone())
    }
}

/// Every node with the pods on it, kept between passes: brought up to date from the
/// pods and nodes changed since the last pass rather than counted anew from every pod
/// (at 10,000 pods counting anew took 10–17 ms a pass, and streaming pods runs a pass
/// every few milliseconds).
#[derive(Default)]
pub(crate) struct Snapshot {
    pub nodes: Vec<NodeInfo>,
    /// Node name → its place in `nodes`.
    index: HashMap<String, usize>,
    /// Pod → the place in `nodes` of the node it is counted on.
    placed: HashMap<ObjectRef<CachedPod>, usize>,
}

impl Snapshot {
    /// Every node and pod counted anew: at the start and after a relist.
    pub(crate) fn rebuild(
        &mut self,
        nodes: &Cache<Node>,
        pods: &Cache<CachedPod>,
        assumed: &mut Assumed,
    ) {
        self.nodes = nodes.state().into_iter().map(NodeInfo::new).collect();
        self.index = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, info)| (info.name(), i))
            .collect();
        self.placed.clear();
        for pod in pods.state() {
            let key = ObjectRef::from_obj(pod.as_ref());
            let assumed_on = assumed.still_on(&key, Some(&pod));
            self.count(key, pod, assumed_on);
        }
    }

    /// Brings one node up to date: false when it is gone, which takes a rebuild (the
    /// places of the others would shift).
    pub(crate) fn update_node(&mut self, name: &str, node: Option<Arc<Node>>) -> bool {
        let Some(node) = node else {
            return !self.index.contains_key(name);
        };
        match self.index.get(name) {
            Some(&at) => {
                let info = &mut self.nodes[at];
                let fresh = NodeInfo::new(node);
                info.node = fresh.node;
                info.taints = fresh.taints;
                info.ready = fresh.ready;
                info.cordoned = fresh.cordoned;
                info.allocatable = fresh.allocatable;
            }
            None => {
                self.index.insert(name.to_string(), self.nodes.len());
                self.nodes.push(NodeInfo::new(node));
            }
        }
        true
    }

    /// Counts one pod again as the cache (or an assumed binding) now places it.
    pub(crate) fn update_pod(
        &mut self,
        key: ObjectRef<CachedPod>,
        pod: Option<Arc<CachedPod>>,
        assumed: &mut Assumed,
    ) {
        if let Some(at) = self.placed.remove(&key) {
            self.nodes[at].remove(&key);
        }
        let assumed_on = assumed.still_on(&key, pod.as_deref());
        if let Some(pod) = pod {
            self.count(key, pod, assumed_on);
        }
    }

    /// Counts a pod this pass placed on the node at `at` (it is assumed there).
    pub(crate) fn place(&mut self, at: usize, key: ObjectRef<CachedPod>, pod: Arc<CachedPod>) {
        self.placed.insert(key, at);
        self.nodes[at].add(pod);
    }

    fn count(
        &mut self,
        key: ObjectRef<CachedPod>,
        pod: Arc<CachedPod>,
        assumed_on: Option<String>,
    ) {
        let node = node_of(&pod).map(str::to_string).or(assumed_on);
        let Some(&at) = node.and_then(|node| self.index.get(&node)) else {
            return;
        };
        if occupies(&pod) {
            self.placed.insert(key, at);
            self.nodes[at].add(pod);
        }
    }
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

    /// A pod of 100 millicores, `uid` u1, bound to `node` when one is given.
    fn versioned(node: Option<&str>, phase: &str) -> Arc<CachedPod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
                "spec": {"nodeName": node, "containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "100m"}}},
                ]},
                "status": {"phase": phase},
            }))
            .unwrap(),
        )
    }

    fn node(name: &str) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name},
                "status": {"allocatable": {"cpu": "2", "pods": "110"}},
            }))
            .unwrap(),
        )
    }

    #[test]
    fn the_snapshot_follows_a_pod_from_assumed_to_bound_to_gone() {
        let mut snapshot = Snapshot::default();
        let mut assumed = Assumed::default();
        assert!(snapshot.update_node("n1", Some(node("n1"))));
        assert!(snapshot.update_node("n2", Some(node("n2"))));
        let pending = versioned(None, "Pending");
        let key = ObjectRef::from_obj(pending.as_ref());
        snapshot.update_pod(key.clone(), Some(Arc::clone(&pending)), &mut assumed);
        assert!(snapshot.nodes.iter().all(|n| n.pods.is_empty()));

        // Placed by a pass: counted where it was assumed, also when it changes unbound.
        assumed.insert(key.clone(), &pending, "n2".into());
        snapshot.place(1, key.clone(), Arc::clone(&pending));
        snapshot.update_pod(key.clone(), Some(Arc::clone(&pending)), &mut assumed);
        assert_eq!(
            (
                snapshot.nodes[1].pods.len(),
                snapshot.nodes[1].requested.cpu
            ),
            (1, 100)
        );

        // Bound: counted once, where the cache says, and no longer assumed.
        let bound = versioned(Some("n1"), "Running");
        snapshot.update_pod(key.clone(), Some(bound), &mut assumed);
        assert!(!assumed.contains(&key));
        assert_eq!(snapshot.nodes[0].requested.cpu, 100);
        assert_eq!(
            (
                snapshot.nodes[1].pods.len(),
                snapshot.nodes[1].requested.cpu
            ),
            (0, 0)
        );

        // Finished pods hold nothing; a node changing keeps its pods.
        snapshot.update_pod(
            key.clone(),
            Some(versioned(Some("n1"), "Succeeded")),
            &mut assumed,
        );
        assert_eq!(snapshot.nodes[0].requested.cpu, 0);
        snapshot.update_pod(
            key.clone(),
            Some(versioned(Some("n1"), "Running")),
            &mut assumed,
        );
        assert!(snapshot.update_node("n1", Some(node("n1"))));
        assert_eq!(
            (
                snapshot.nodes[0].pods.len(),
                snapshot.nodes[0].requested.cpu
            ),
            (1, 100)
        );

        snapshot.update_pod(key, None, &mut assumed);
        assert!(snapshot.nodes[0].pods.is_empty());
        assert_eq!(snapshot.nodes[0].requested, Amounts::default());
        // A node gone shifts the others: that takes a rebuild.
        assert!(!snapshot.update_node("n1", None));
        assert!(snapshot.update_node("n3", None));
    }
}
