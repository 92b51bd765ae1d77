//! Node IPAM, as kube-controller-manager's range allocator: every Node gets a pod range
//! of its own (`spec.podCIDR`, a /24 of the cluster CIDR — 10.42.0.0/16 by default, as
//! k3s's), which its agent puts its pods' addresses in. Ranges already given are kept;
//! a node gets the lowest free one.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use berth_runner::{Action, Controller, Informers};

use crate::lock;

/// The prefix length of each node's range, as kube-controller-manager's default.
const NODE_PREFIX: u8 = 24;

/// The cluster's pod addresses: an IPv4 network from which each node gets a /24.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterCidr {
    base: u32,
    prefix: u8,
}

impl std::str::FromStr for ClusterCidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let invalid =
            || format!("invalid cluster CIDR {text:?}: want an IPv4 network of /8 to /24");
        let (address, prefix) = text.split_once('/').ok_or_else(invalid)?;
        let address: Ipv4Addr = address.parse().map_err(|_| invalid())?;
        let prefix: u8 = prefix.parse().map_err(|_| invalid())?;
        if !(8..=NODE_PREFIX).contains(&prefix) {
            return Err(invalid());
        }
        let mask = u32::MAX << (32 - prefix);
        Ok(Self {
            base: u32::from(address) & mask,
            prefix,
        })
    }
}

impl std::fmt::Display for ClusterCidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

impl ClusterCidr {
    /// The node ranges, lowest first.
    fn ranges(self) -> impl Iterator<Item = String> {
        let count = 1u32 << (NODE_PREFIX - self.prefix);
        (0..count).map(move |i| {
            let network = Ipv4Addr::from(self.base + (i << (32 - NODE_PREFIX)));
            format!("{network}/{NODE_PREFIX}")
        })
    }
}

/// Runs the controller until the client's watches end: called for each node, one at a
/// time — two calls at once could both find the same range free.
pub async fn run(client: Client, informers: Informers, cluster: ClusterCidr) {
    let controller = Controller::<Node>::new(&informers).await.concurrency(1);
    let nodes = controller.cache().clone();
    let api: Api<Node> = Api::all(client);
    // Ranges written that the cache may not show yet, by node.
    let given: Mutex<BTreeMap<String, String>> = Mutex::default();
    let given = &given;
    let gone = |node: ObjectRef<Node>| async move {
        lock(given).remove(&node.name);
        Ok(Action::AwaitChange)
    };
    controller
        .run_or_gone(|node| {
            let (api, nodes) = (&api, &nodes);
            async move {
                if pod_cidr(&node).is_some() {
                    lock(given).remove(&node.name_any());
                    return Ok(Action::AwaitChange);
                }
                let mut taken: BTreeSet<String> =
                    nodes.state().iter().filter_map(|n| pod_cidr(n)).collect();
                taken.extend(lock(given).values().cloned());
                let Some(range) = cluster.ranges().find(|r| !taken.contains(r)) else {
                    tracing::warn!(node = %node.name_any(), "the cluster CIDR has no free node range left");
                    return Ok(Action::AwaitChange);
                };
                let patch = json!({"spec": {"podCIDR": range, "podCIDRs": [range]}});
                let params = PatchParams::default();
                api.patch(&node.name_any(), &params, &Patch::Merge(&patch))
                    .await?;
                lock(given).insert(node.name_any(), range);
                Ok(Action::AwaitChange)
            }
        }, gone)
        .await;
}

/// The node's pod range, once it has one.
fn pod_cidr(node: &Node) -> Option<String> {
    node.spec.as_ref().and_then(|s| s.pod_cidr.clone())
}

#[cfg(test)]
mod tests {
    use super::ClusterCidr;

    #[test]
    fn nodes_get_consecutive_24s_of_the_cluster_cidr() {
        let cidr: ClusterCidr = "10.42.0.0/16".parse().unwrap();
        let ranges: Vec<String> = cidr.ranges().take(2).collect();
        assert_eq!(ranges, ["10.42.0.0/24", "10.42.1.0/24"]);
        assert_eq!(cidr.ranges().count(), 256);
        assert!("10.42.0.0/25".parse::<ClusterCidr>().is_err());
        assert!("nonsense".parse::<ClusterCidr>().is_err());
    }
}
