//! Node IPAM, as kube-controller-manager's range allocator: every Node gets a pod range
//! of its own (`spec.podCIDR`, a /24 of the cluster CIDR — 10.42.0.0/16 by default, as
//! k3s's), which its agent puts its pods' addresses in. Ranges already given are kept;
//! a node gets the lowest free one.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use berth_runner::Informers;

use crate::watched::Watched;

/// The prefix length of each node's range, as kube-controller-manager's default.
const NODE_PREFIX: u8 = 24;

/// How soon a node whose range could not be written is tried again.
const RETRY: Duration = Duration::from_secs(2);

/// How often the nodes are looked over when nothing changed.
const RECHECK: Duration = Duration::from_secs(60);

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

/// Runs the allocator until the client's watches end.
pub async fn run(client: Client, informers: Informers, cluster: ClusterCidr) {
    let mut watched = Watched::new(&informers);
    let nodes = watched.cache::<Node>().await;
    let api: Api<Node> = Api::all(client);
    loop {
        let current = nodes.state();
        let mut taken: BTreeSet<String> = current
            .iter()
            .filter_map(|n| n.spec.as_ref().and_then(|s| s.pod_cidr.clone()))
            .collect();
        let mut retry = false;
        for node in current
            .iter()
            .filter(|n| n.spec.as_ref().and_then(|s| s.pod_cidr.as_ref()).is_none())
        {
            let Some(range) = cluster.ranges().find(|r| !taken.contains(r)) else {
                tracing::warn!(node = %node.name_any(), "the cluster CIDR has no free node range left");
                break;
            };
            let patch = json!({"spec": {"podCIDR": range, "podCIDRs": [range]}});
            match api
                .patch(
                    &node.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
            {
                Ok(_) => {
                    taken.insert(range);
                }
                Err(error) => {
                    tracing::debug!(%error, node = %node.name_any(), "pod range not written");
                    retry = true;
                }
            }
        }
        let wait = if retry { RETRY } else { RECHECK };
        if !watched.next_change(wait).await {
            return;
        }
    }
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
