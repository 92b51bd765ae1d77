//! Pod traffic between nodes, as flannel carries it with DirectRouting: each other node's
//! pod range is routed through that node's address when it shares a link with this one
//! (host-gw), and through the VXLAN device to it when a router stands between them
//! (berth-net's overlay), so pods reach each other by their own addresses (the bridge's
//! outbound NAT leaves the cluster's pod range alone). A node that goes, or changes
//! range or address, has its route replaced or taken out.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use berth_net::Ipv4Net;
use k8s_openapi::api::core::v1::Node;
use kube::{Client, ResourceExt};
use tokio::sync::Notify;

/// This node: its name, its address and its pod range.
pub(crate) struct OwnNode {
    pub(crate) name: String,
    pub(crate) address: Ipv4Addr,
    pub(crate) range: Ipv4Net,
}

/// Keeps the routes to the other nodes' pod ranges until the process ends.
pub(crate) async fn run(client: Client, own: OwnNode) {
    let own = Arc::new(own);
    let changed = Arc::new(Notify::new());
    let nodes = crate::reflected::<Node>(&client, &changed);
    nodes.wait_until_ready().await.ok();
    let mut routed: BTreeMap<Ipv4Net, Ipv4Addr> = BTreeMap::new();
    loop {
        let wanted = wanted_routes(&nodes.state(), &own.name);
        if wanted != routed {
            let (before, after, own) = (routed.clone(), wanted.clone(), Arc::clone(&own));
            let applied = tokio::task::spawn_blocking(move || apply(&own, &before, &after)).await;
            // What failed is tried again at the next change.
            routed = applied.unwrap_or_default();
        }
        changed.notified().await;
    }
}

/// Each other node's pod range and the address it is routed through.
fn wanted_routes(nodes: &[Arc<Node>], own: &str) -> BTreeMap<Ipv4Net, Ipv4Addr> {
    nodes
        .iter()
        .filter(|node| node.name_any() != own)
        .filter_map(|node| {
            let range = node.spec.as_ref()?.pod_cidr.as_ref()?.parse().ok()?;
            let addresses = node.status.as_ref()?.addresses.as_ref()?;
            let internal = addresses.iter().find(|a| a.type_ == "InternalIP")?;
            Some((range, internal.address.parse().ok()?))
        })
        .collect()
}

/// Changes the routes from `routed` to `wanted`; the routes now in place.
fn apply(
    own: &OwnNode,
    routed: &BTreeMap<Ipv4Net, Ipv4Addr>,
    wanted: &BTreeMap<Ipv4Net, Ipv4Addr>,
) -> BTreeMap<Ipv4Net, Ipv4Addr> {
    let mut now = routed.clone();
    for range in routed.keys().filter(|r| !wanted.contains_key(r)) {
        match berth_net::unroute_pods(*range) {
            Ok(()) => drop(now.remove(range)),
            Err(error) => tracing::warn!(%error, %range, "could not take a pod range's route out"),
        }
    }
    for (range, node) in wanted {
        if routed.get(range) == Some(node) {
            continue;
        }
        match route(own, *range, *node) {
            Ok(()) => drop(now.insert(*range, *node)),
            Err(error) => {
                tracing::warn!(%error, %range, %node, "could not route a node's pods");
                now.remove(range);
            }
        }
    }
    now
}

/// Routes `range` to `node`: directly on a shared link, else over VXLAN (the device
/// made on first need).
fn route(own: &OwnNode, range: Ipv4Net, node: Ipv4Addr) -> berth_net::Result<()> {
    if berth_net::on_a_shared_link(node)? {
        berth_net::route_pods_via(range, node)
    } else {
        berth_net::ensure_vxlan(own.address, own.range)?;
        berth_net::route_pods_over_vxlan(range, node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, range: &str, ip: &str) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name},
                "spec": {"podCIDR": range},
                "status": {"addresses": [{"type": "InternalIP", "address": ip}]},
            }))
            .unwrap(),
        )
    }

    #[test]
    fn every_other_node_s_range_goes_through_its_address() {
        let nodes = [
            node("a", "10.42.0.0/24", "192.168.5.1"),
            node("b", "10.42.1.0/24", "192.168.5.2"),
            node("c", "10.42.2.0/24", "192.168.5.3"),
        ];
        let routes = wanted_routes(&nodes, "a");
        let expected: BTreeMap<Ipv4Net, Ipv4Addr> = [
            (
                "10.42.1.0/24".parse().unwrap(),
                Ipv4Addr::new(192, 168, 5, 2),
            ),
            (
                "10.42.2.0/24".parse().unwrap(),
                Ipv4Addr::new(192, 168, 5, 3),
            ),
        ]
        .into();
        assert_eq!(routes, expected);
    }
}
